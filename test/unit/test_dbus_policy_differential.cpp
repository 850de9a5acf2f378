// Differential test of the kernel's policy evaluator (kernel/dbus/dbus_policy.c, compiled here as C)
// against policy/'s engine (PolicyImage::load, ConnectionChains::check_send / check_receive):
//  - decisions: random busconfig policies (every <allow>/<deny> message attribute, in every context,
//    values drawn from small pools so that rules and messages meet) and the real configs
//    (test/integration/policy-configs/*.conf, Debian's system bus policy when installed), each
//    connection's chains built by the C++ engine and handed to the C evaluator as rule indices, as the
//    daemon hands them to af_bus_dbus.ko; then random messages (marshalled, parsed by the kernel's
//    header parser, their facts taken by dbus_policy_msg_from_hdr) against random parties (names owned,
//    prefixes, foreign names, the bus itself): the deciding rule must be the same one, for send,
//    receive and eavesdrop, on the chain walked whole and on the chain indexed as the kernel keeps it;
//  - checking: dbus_policy_check must accept exactly the images PolicyImage::load accepts, on every
//    compiled image and on random corruptions, truncations and extensions of them.
// Seeded and reproducible: AFBUS_DIFF_SEED and AFBUS_DIFF_COUNT override the defaults.
#include <dirent.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "dbus_header.h"
#include "dbus_policy.h"
#include "policy_compiler.hpp"
#include "policy_engine.hpp"
#include "support/random_message.hpp"

namespace afbus::policy {
namespace {

using testgen::env_or;
using testgen::Generator;
using testgen::Parts;

const std::uint64_t kSeed = env_or("AFBUS_DIFF_SEED", 0x706f6c696379);
const std::uint64_t kCount = env_or("AFBUS_DIFF_COUNT", 1000);

// Small pools, so that rules, messages and parties share values often enough for every verdict.
const std::vector<std::string> kNames = {"org.example.Service", "org.example", "org.example.Service.Sub",
                                         "org.exampleX", "org.other", ":1.5", "org.freedesktop.DBus"};
const std::vector<std::string> kForeignNames = {"org.nobody.Mentions", "org.example.Servic", "com.example"};
const std::vector<std::string> kInterfaces = {"org.example.I", "org.example.J", "org.freedesktop.DBus"};
const std::vector<std::string> kMembers = {"Get", "Set", "Ping"};
const std::vector<std::string> kPaths = {"/", "/org/example", "/org/example/obj"};
const std::vector<std::string> kErrors = {"org.example.Error.A", "org.example.Error.B"};
const std::vector<std::string> kTypes = {"method_call", "method_return", "error", "signal", "*"};

template <class T>
const T& pick(Generator& g, const std::vector<T>& pool) {
    return pool[g.next(pool.size())];
}

NameResolver fake_resolver() {
    return NameResolver{[](const std::string& n) -> std::optional<uid_t> { return n == "alice" ? std::optional<uid_t>(1000) : std::nullopt; },
                        [](const std::string& n) -> std::optional<gid_t> { return n == "staff" ? std::optional<gid_t>(50) : std::nullopt; }};
}

SourceRule random_rule(Generator& g) {
    SourceRule rule;
    rule.allow = g.chance(55);
    rule.file = "random.conf";
    rule.line = 1;
    auto& a = rule.attributes;
    const bool send = g.chance(50);
    const std::string p = send ? "send_" : "receive_";
    if (g.chance(50)) {
        if (send && g.chance(30))
            a.emplace_back("send_destination_prefix", pick(g, kNames).starts_with(':') ? "org.example" : pick(g, kNames));
        else
            a.emplace_back(send ? "send_destination" : "receive_sender", g.chance(10) ? "*" : pick(g, kNames));
    }
    // What busconfig allows together: a member only with an interface or a path, an error name
    // without either, a broadcast only without a destination.
    const bool interface = g.chance(40), path = g.chance(25);
    if (interface) a.emplace_back(p + "interface", pick(g, kInterfaces));
    if (path) a.emplace_back(p + "path", pick(g, kPaths));
    if ((interface || path) && g.chance(50)) a.emplace_back(p + "member", pick(g, kMembers));
    else if (!interface && g.chance(25)) a.emplace_back(p + "error", pick(g, kErrors));
    if (g.chance(30)) a.emplace_back(p + "type", pick(g, kTypes));
    if (g.chance(20)) a.emplace_back(p + "requested_reply", g.chance(50) ? "true" : "false");
    if (send && g.chance(15)) {
        const bool has_destination = std::any_of(a.begin(), a.end(), [](const auto& kv) { return kv.first.starts_with("send_destination"); });
        a.emplace_back("send_broadcast", has_destination || g.chance(50) ? "false" : "true");
    }
    if (g.chance(20)) a.emplace_back("eavesdrop", g.chance(50) ? "true" : "false");
    if (g.chance(10)) a.emplace_back("max_fds", std::to_string(g.next(3)));
    if (g.chance(10)) a.emplace_back("min_fds", std::to_string(g.next(3)));
    if (g.chance(10)) a.emplace_back("log", "true");
    // An all-wildcard rule now and then (it erases the rules of its kind before it).
    const bool about_messages = std::any_of(a.begin(), a.end(), [](const auto& kv) {
        return kv.first.starts_with("send_") || kv.first.starts_with("receive_");
    });
    if (!about_messages) a.emplace_back(send ? "send_destination" : "receive_sender", "*");
    return rule;
}

std::vector<SourceContext> random_policy(Generator& g) {
    using Kind = SourceContext::Kind;
    const Kind kinds[] = {Kind::Default, Kind::Mandatory, Kind::User, Kind::Group, Kind::AtConsole, Kind::NotAtConsole};
    std::vector<SourceContext> contexts;
    const std::uint64_t n = 1 + g.next(5);
    for (std::uint64_t i = 0; i < n; ++i) {
        SourceContext c;
        c.kind = kinds[g.next(6)];
        c.who = c.kind == Kind::User ? "alice" : c.kind == Kind::Group ? "staff" : "";
        const std::uint64_t rules = g.next(12);
        for (std::uint64_t r = 0; r < rules; ++r) c.rules.push_back(random_rule(g));
        contexts.push_back(std::move(c));
    }
    return contexts;
}

// A message that the header parser accepts: each type with the fields it needs, the rest at random.
Parts random_message(Generator& g) {
    Parts p;
    const int type = 1 + static_cast<int>(g.next(4));
    p.type = static_cast<MessageType>(type);
    auto maybe = [&g](std::string& field, const std::vector<std::string>& pool, int percent) {
        if (g.chance(percent)) field = g.chance(90) ? pick(g, pool) : pick(g, kForeignNames);
    };
    if (type == 1 || type == 4) {
        p.path = pick(g, kPaths);
        p.member = pick(g, kMembers);
    }
    if (type == 4 || g.chance(60)) {
        p.interface = pick(g, kInterfaces);
        if (g.chance(5)) p.interface = "org.foreign.Interface";
    }
    if (type == 2 || type == 3) p.reply_serial = 1 + static_cast<std::uint32_t>(g.next(10));
    if (type == 3) p.error_name = g.chance(90) ? pick(g, kErrors) : "org.foreign.Error";
    maybe(p.destination, kNames, type == 4 ? 40 : 85);
    maybe(p.sender, kNames, 70);
    // Now and then a field longer than the verdict cache's key holds (120 bytes in all).
    if (p.interface.empty() && g.chance(3)) p.interface = "org.foreign." + std::string(120, 'x');
    if (!p.path.empty() && g.chance(3)) p.path = "/org/foreign/" + std::string(120, 'x');
    return p;
}

const u8* bytes(const std::vector<std::byte>& b) { return reinterpret_cast<const u8*>(b.data()); }

// The image as the kernel holds it: checked, its strings indexed.
struct CImage {
    std::vector<std::byte> bytes;
    std::vector<u32> index;
    dbus_policy pol{};

    explicit CImage(std::vector<std::byte> image) : bytes(std::move(image)) {
        EXPECT_EQ(dbus_policy_check(policy::bytes(bytes), static_cast<u32>(bytes.size()), &pol), 0);
        index.resize(pol.index_slots);
        EXPECT_EQ(dbus_policy_index_strings(&pol, index.data()), 0);
    }
};

// One party on both sides: the C++ view and the C view (interned once, as the module does per receiver).
struct BothParties {
    std::string unique_name;
    std::vector<std::string> names;
    std::vector<dbus_policy_str> c_names;
    dbus_policy_party c{};

    BothParties(const dbus_policy& pol, std::string unique, std::vector<std::string> owned)
        : unique_name(std::move(unique)), names(std::move(owned)) {
        dbus_policy_intern(&pol, reinterpret_cast<const u8*>(unique_name.data()), static_cast<u32>(unique_name.size()),
                           &c.unique_name);
        c_names.resize(names.size());
        for (std::size_t i = 0; i < names.size(); ++i)
            dbus_policy_intern(&pol, reinterpret_cast<const u8*>(names[i].data()), static_cast<u32>(names[i].size()),
                               &c_names[i]);
        c.names = c_names.data();
        c.name_count = static_cast<u32>(c_names.size());
    }
    [[nodiscard]] Party cpp() const { return Party{unique_name, names}; }
};

BothParties random_party(Generator& g, const dbus_policy& pol) {
    std::vector<std::string> owned;
    const std::uint64_t n = g.next(4);
    for (std::uint64_t i = 0; i < n; ++i) {
        const std::string& name = g.chance(85) ? pick(g, kNames) : pick(g, kForeignNames);
        if (!name.starts_with(':')) owned.push_back(name);
    }
    return BothParties(pol, g.chance(50) ? ":1.5" : ":1.77", std::move(owned));
}

std::int64_t index_of(const PolicyImage& image, const Decision& d) {
    return d.rule ? d.rule - image.rules().data() : -1;
}

struct Tally {
    std::uint64_t decisions = 0, accepts = 0, denials_by_rule = 0, defaults = 0;
    std::uint64_t messages = 0, keyed = 0;  // messages whose facts fit the verdict cache's key
};

// Every hook of every principal's chains, for `messages` random messages each against a random party
// and against the bus itself: the C evaluator must pick the rule the C++ engine picks.
void compare_decisions(const std::string& what, std::vector<std::byte> image_bytes, Generator& g, std::uint64_t messages,
                       Tally& tally) {
    auto engine = PolicyEngine::load(image_bytes);
    ASSERT_TRUE(engine) << what << ": " << engine.error();
    CImage c(image_bytes);
    const PolicyImage& image = engine->image();
    const Principal principals[] = {{1000, {50}, false}, {1000, {50}, true}, {0, {}, false}, {std::nullopt, {}, false}};
    for (const Principal& principal : principals) {
        auto chains = engine->chains_for(principal);
        const Hook hooks[] = {Hook::Send, Hook::Receive, Hook::Eavesdrop};
        std::vector<std::vector<u32>> indices;
        std::vector<std::vector<dbus_policy_index_entry>> entries;
        std::vector<dbus_policy_chain> indexed(3);
        for (Hook hook : hooks) {
            indices.push_back(chains->rule_indices(hook));
            ASSERT_EQ(dbus_policy_chain_check(&c.pol, static_cast<dbus_policy_hook>(hook), indices.back().data(),
                                              static_cast<u32>(indices.back().size())),
                      0)
                << what;
        }
        for (std::size_t h = 0; h < 3; ++h) {
            entries.emplace_back(indices[h].size());
            dbus_policy_chain_index(&c.pol, indices[h].data(), static_cast<u32>(indices[h].size()), entries[h].data(),
                                    &indexed[h]);
        }
        for (std::uint64_t i = 0; i < messages; ++i) {
            const Parts parts = random_message(g);
            ++tally.messages;
            const std::uint32_t fds = g.chance(20) ? static_cast<std::uint32_t>(g.next(4)) : 0;
            std::vector<std::pair<std::uint8_t, Value>> extra;
            if (fds) extra.emplace_back(9, Value::uint32(fds));  // UNIX_FDS
            const Endian endian = g.chance(50) ? Endian::Little : Endian::Big;
            const auto wire = testgen::afbus_marshal(parts, endian, true, extra);
            dbus_hdr hdr{};
            dbus_hdr_reason reason = DBUS_HDR_OK;
            ASSERT_EQ(dbus_hdr_parse(bytes(wire), wire.size(), &hdr, &reason), 0) << what << ": reason " << reason;
            dbus_policy_msg cm{};
            dbus_policy_msg_from_hdr(&c.pol, bytes(wire), &hdr, true, &cm);
            cm.requested_reply = cm.is_reply && g.chance(50);
            // As the kernel takes them: without DESTINATION and SENDER, never asked about the bus itself.
            dbus_policy_msg kernel_cm{};
            dbus_policy_msg_from_hdr(&c.pol, bytes(wire), &hdr, false, &kernel_cm);
            kernel_cm.requested_reply = cm.requested_reply;
            // ... and as its verdict cache keeps them: the key's facts decide as the message's.
            dbus_policy_key key{};
            dbus_policy_msg key_cm{};
            const bool keyed = dbus_policy_key_from_hdr(&c.pol, bytes(wire), &hdr, &key);
            if (keyed) {
                if (cm.requested_reply) key.bits |= DBUS_POLICY_KEY_REQUESTED;
                dbus_policy_msg_from_key(&c.pol, &key, &key_cm);
                ++tally.keyed;
            }

            MessageFacts m;
            m.type = static_cast<std::uint8_t>(parts.type);
            m.path = parts.path;
            m.interface = parts.interface;
            m.member = parts.member;
            m.error_name = parts.error_name;
            m.destination = parts.destination;
            m.sender = parts.sender;
            m.is_reply = parts.reply_serial != 0;
            m.requested_reply = cm.requested_reply;
            m.fds = fds;

            const BothParties party = random_party(g, c.pol);
            const Party cpp_party = party.cpp();
            for (std::size_t h = 0; h < 3; ++h) {
                for (bool bus_itself : {false, true}) {
                    const Party* other = bus_itself ? nullptr : &cpp_party;
                    const Decision d = hooks[h] == Hook::Send ? chains->check_send(m, other)
                                                              : chains->check_receive(m, other, hooks[h] == Hook::Eavesdrop);
                    const long rule = dbus_policy_decide(&c.pol, static_cast<dbus_policy_hook>(hooks[h]), indices[h].data(),
                                                         static_cast<u32>(indices[h].size()), &cm, bus_itself ? nullptr : &party.c);
                    ASSERT_EQ(rule, index_of(image, d))
                        << what << ": hook " << static_cast<int>(hooks[h]) << (bus_itself ? " (the bus)" : "")
                        << ", message type " << int(m.type) << " path '" << m.path << "' interface '" << m.interface
                        << "' member '" << m.member << "' error '" << m.error_name << "' destination '" << m.destination
                        << "' sender '" << m.sender << "' reply " << m.is_reply << "/" << m.requested_reply << " fds " << fds;
                    ASSERT_EQ(dbus_policy_verdict(&c.pol, rule), static_cast<int>(d.verdict)) << what;
                    ASSERT_EQ(dbus_policy_decide_indexed(&c.pol, static_cast<dbus_policy_hook>(hooks[h]), &indexed[h], &cm,
                                                         bus_itself ? nullptr : &party.c),
                              rule)
                        << what << ": the indexed chain decided otherwise, hook " << static_cast<int>(hooks[h]);
                    if (!bus_itself) {
                        ASSERT_EQ(dbus_policy_decide_indexed(&c.pol, static_cast<dbus_policy_hook>(hooks[h]), &indexed[h],
                                                             &kernel_cm, &party.c),
                                  rule)
                            << what << ": the kernel's facts decided otherwise, hook " << static_cast<int>(hooks[h]);
                        if (keyed) {
                            ASSERT_EQ(dbus_policy_decide_indexed(&c.pol, static_cast<dbus_policy_hook>(hooks[h]),
                                                                 &indexed[h], &key_cm, &party.c),
                                      rule)
                                << what << ": the verdict cache's key decided otherwise, hook "
                                << static_cast<int>(hooks[h]) << ", interface '" << m.interface << "' member '"
                                << m.member << "'";
                        }
                    }
                    ++tally.decisions;
                    if (d.allowed()) ++tally.accepts;
                    else if (d.rule) ++tally.denials_by_rule;
                    else ++tally.defaults;
                }
            }
        }
    }
}

TEST(DbusPolicyDifferential, RandomPoliciesDecideAlike) {
    Generator g(kSeed);
    Tally tally;
    for (std::uint64_t i = 0; i < kCount; ++i) {
        auto compiled = compile_policy(random_policy(g), fake_resolver());
        // Every policy the generator writes is one busconfig accepts.
        ASSERT_TRUE(compiled) << compiled.error().reason;
        compare_decisions("random policy " + std::to_string(i), std::move(compiled->image), g, 40, tally);
        if (HasFatalFailure()) return;
    }
    // Every kind of outcome occurred, so the comparison said something.
    EXPECT_GT(tally.accepts, tally.decisions / 20);
    EXPECT_GT(tally.denials_by_rule, tally.decisions / 20);
    EXPECT_GT(tally.defaults, tally.decisions / 20);
    // Most messages fit the key, and some do not (their decisions are compared without one).
    EXPECT_GT(tally.keyed, tally.messages / 2);
    EXPECT_LT(tally.keyed, tally.messages);
}

std::vector<std::string> real_configs() {
    std::vector<std::string> paths;
    const std::string dir = POLICY_CONFIG_DIR;
    if (DIR* d = opendir(dir.c_str())) {
        while (dirent* e = readdir(d))
            if (std::string_view(e->d_name).ends_with(".conf")) paths.push_back(dir + "/" + e->d_name);
        closedir(d);
    }
    std::sort(paths.begin(), paths.end());
    if (access("/usr/share/dbus-1/system.conf", R_OK) == 0) paths.push_back("/usr/share/dbus-1/system.conf");
    return paths;
}

TEST(DbusPolicyDifferential, RealConfigsDecideAlike) {
    Generator g(kSeed + 1);
    Tally tally;
    const auto paths = real_configs();
    ASSERT_GE(paths.size(), 10u) << "policy-configs not found in " << POLICY_CONFIG_DIR;
    for (const std::string& path : paths) {
        auto config = daemon::load_config(path);
        ASSERT_TRUE(config) << config.error().to_string();
        compare_decisions(path, std::move(config->policy_image), g, 200, tally);
        if (HasFatalFailure()) return;
    }
    EXPECT_GT(tally.accepts, 0u);
    EXPECT_GT(tally.denials_by_rule + tally.defaults, 0u);
}

// dbus_policy_check accepts exactly what PolicyImage::load accepts.
void compare_check(const std::vector<std::byte>& image, const std::string& what) {
    const bool cpp_ok = PolicyImage::load(image).has_value();
    dbus_policy pol{};
    bool c_ok = dbus_policy_check(bytes(image), static_cast<u32>(image.size()), &pol) == 0;
    if (c_ok) {
        // The kernel also refuses an image holding a string twice; so does PolicyImage::load.
        std::vector<u32> index(pol.index_slots);
        c_ok = dbus_policy_index_strings(&pol, index.data()) == 0;
    }
    ASSERT_EQ(c_ok, cpp_ok) << what;
}

TEST(DbusPolicyDifferential, ImageChecksAgree) {
    Generator g(kSeed + 2);
    std::uint64_t valid = 0, corrupt = 0;
    for (std::uint64_t i = 0; i < kCount; ++i) {
        auto compiled = compile_policy(random_policy(g), fake_resolver());
        ASSERT_TRUE(compiled) << compiled.error().reason;
        const std::vector<std::byte>& image = compiled->image;
        compare_check(image, "compiled image " + std::to_string(i));
        ++valid;
        for (int k = 0; k < 20; ++k) {
            std::vector<std::byte> bad = image;
            const std::uint64_t how = g.next(4);
            if (how == 0) {
                bad[g.next(bad.size())] = static_cast<std::byte>(g.next(256));
            } else if (how == 1) {
                // A byte of a record's fields, where the interesting checks are.
                const std::size_t at = 40 + g.next(std::min<std::size_t>(bad.size() - 40, 52 * 4 + 16));
                bad[at] = static_cast<std::byte>(g.chance(50) ? g.next(8) : 0xff);
            } else if (how == 2) {
                bad.resize(g.next(bad.size()));
            } else {
                bad.push_back(static_cast<std::byte>(g.next(256)));
            }
            compare_check(bad, "corrupted image " + std::to_string(i) + "." + std::to_string(k));
            if (HasFatalFailure()) return;
            ++corrupt;
        }
    }
    EXPECT_EQ(valid, kCount);
}

TEST(DbusPolicyDifferential, DuplicateStringsAreRefusedByBoth) {
    // A hand-built image whose string section holds "a" twice (the compiler never writes one).
    ImageBuilder builder;
    RuleRecord rule{};
    rule.kind = static_cast<std::uint8_t>(RuleKind::Send);
    rule.name = rule.path = rule.interface = rule.member = rule.error = rule.reject_error = rule.file = kNoString;
    rule.max_fds = kMaxMessageFds;
    rule.name_match = static_cast<std::uint8_t>(NameMatch::Exact);
    rule.name = builder.add_string("a");
    builder.begin_context(ContextKind::Default, 0);
    builder.add_rule(rule);
    std::vector<std::byte> image = std::move(builder).finish();
    // Append "a\0" to the string section and fix the sizes up.
    image.push_back(std::byte{'a'});
    image.push_back(std::byte{0});
    ImageHeader header;
    std::memcpy(&header, image.data(), sizeof header);
    header.strings_size += 2;
    header.total_size += 2;
    std::memcpy(image.data(), &header, sizeof header);
    EXPECT_FALSE(PolicyImage::load(image));
    compare_check(image, "duplicate strings");
}

TEST(DbusPolicyDifferential, AStringLongerThanTheBoundIsRefusedByBothReferencedOrNot) {
    // Checked once for the whole section, so that many rules naming one long string cost one pass.
    for (const std::size_t length : {std::size_t{kMaxStringLength}, std::size_t{kMaxStringLength} + 1}) {
        ImageBuilder builder;
        RuleRecord rule{};
        rule.kind = static_cast<std::uint8_t>(RuleKind::Send);
        rule.name = rule.path = rule.interface = rule.member = rule.error = rule.reject_error = rule.file = kNoString;
        rule.max_fds = kMaxMessageFds;
        builder.begin_context(ContextKind::Default, 0);
        builder.add_rule(rule);
        (void)builder.add_string(std::string(length, 'x'));  // referenced by no rule
        const std::vector<std::byte> image = std::move(builder).finish();
        EXPECT_EQ(PolicyImage::load(image).has_value(), length == kMaxStringLength);
        compare_check(image, "a string of " + std::to_string(length) + " bytes");
    }
}

TEST(DbusPolicyDifferential, ChainsOfTheWrongKindAreRefused) {
    auto compiled = compile_policy({SourceContext{SourceContext::Kind::Default, "",
                                                  {SourceRule{true, {{"send_destination", "org.a"}}, "t.conf", 1},
                                                   SourceRule{true, {{"receive_sender", "org.a"}}, "t.conf", 2}}}},
                                   fake_resolver());
    ASSERT_TRUE(compiled);
    CImage c(compiled->image);
    const u32 send[] = {0}, receive[] = {1}, outside[] = {2};
    EXPECT_EQ(dbus_policy_chain_check(&c.pol, DBUS_POLICY_SEND, send, 1), 0);
    EXPECT_EQ(dbus_policy_chain_check(&c.pol, DBUS_POLICY_RECEIVE, receive, 1), 0);
    EXPECT_EQ(dbus_policy_chain_check(&c.pol, DBUS_POLICY_EAVESDROP, receive, 1), 0);
    EXPECT_EQ(dbus_policy_chain_check(&c.pol, DBUS_POLICY_SEND, receive, 1), -EINVAL);
    EXPECT_EQ(dbus_policy_chain_check(&c.pol, DBUS_POLICY_RECEIVE, send, 1), -EINVAL);
    EXPECT_EQ(dbus_policy_chain_check(&c.pol, DBUS_POLICY_SEND, outside, 1), -EINVAL);
    EXPECT_EQ(dbus_policy_chain_check(&c.pol, static_cast<dbus_policy_hook>(1), send, 1), -EINVAL);
}

}  // namespace
}  // namespace afbus::policy
