// The kernel's policy evaluator (kernel/dbus/dbus_policy.c) against policy/'s engine on arbitrary bytes:
// dbus_policy_check (with the string index) must accept exactly the images PolicyImage::load accepts,
// and for an accepted image the C evaluator, given the chains ConnectionChains builds for a few
// principals, must pick the deciding rule the C++ engine picks for every hook, for a few messages and
// other ends (names the image holds and names it does not, the bus itself), walking each chain whole
// and through its index.
#include <cstdint>
#include <string>
#include <vector>

#include "dbus_policy.h"
#include "fuzz_check.hpp"
#include "policy_engine.hpp"

using afbus::fuzz::check;
namespace policy = afbus::policy;

namespace {

dbus_policy_str intern(const dbus_policy& pol, std::string_view s) {
    dbus_policy_str out{};
    dbus_policy_intern(&pol, reinterpret_cast<const u8*>(s.data()), static_cast<u32>(s.size()), &out);
    return out;
}

// The image's own strings serve as names and field values, so that rules match as often as not.
std::vector<std::string> strings_of(const policy::PolicyImage& image) {
    std::vector<std::string> out;
    for (const policy::RuleRecord& rule : image.rules()) {
        for (std::uint32_t offset : {rule.name, rule.interface, rule.member, rule.path, rule.error})
            if (offset != policy::kNoString && out.size() < 8) out.emplace_back(image.string(offset));
    }
    out.emplace_back("org.nowhere.Foreign");
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::vector<std::byte> bytes(size);
    for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<std::byte>(data[i]);
    auto engine = policy::PolicyEngine::load(bytes);

    dbus_policy pol{};
    bool c_ok = size <= UINT32_MAX && dbus_policy_check(data, static_cast<u32>(size), &pol) == 0;
    std::vector<u32> index;
    if (c_ok) {
        index.resize(pol.index_slots);
        c_ok = dbus_policy_index_strings(&pol, index.data()) == 0;
    }
    check(c_ok == engine.has_value(), "dbus_policy_check and PolicyImage::load disagree");
    if (!engine) return 0;

    const auto pool = strings_of(engine->image());
    const auto pick = [&pool](std::size_t i) -> const std::string& { return pool[i % pool.size()]; };
    const policy::Hook hooks[] = {policy::Hook::Send, policy::Hook::Receive, policy::Hook::Eavesdrop};
    for (const policy::Principal& principal :
         {policy::Principal{}, policy::Principal{0, {0}, true}, policy::Principal{1000, {50, 100}, false}}) {
        auto chains = engine->chains_for(principal);
        std::vector<u32> indices[3];
        std::vector<dbus_policy_index_entry> entries[3];
        dbus_policy_chain indexed[3];
        for (int h = 0; h < 3; ++h) {
            indices[h] = chains->rule_indices(hooks[h]);
            check(dbus_policy_chain_check(&pol, static_cast<dbus_policy_hook>(hooks[h]), indices[h].data(),
                                          static_cast<u32>(indices[h].size())) == 0,
                  "a chain the engine built is refused");
            entries[h].resize(indices[h].size());
            dbus_policy_chain_index(&pol, indices[h].data(), static_cast<u32>(indices[h].size()), entries[h].data(),
                                    &indexed[h]);
        }
        for (std::size_t k = 0; k < 8; ++k) {
            policy::MessageFacts m;
            m.type = static_cast<std::uint8_t>(1 + k % 4);
            m.path = pick(k);
            m.interface = k % 3 ? std::string_view(pick(k + 1)) : std::string_view();
            m.member = pick(k + 2);
            m.error_name = m.type == 3 ? std::string_view(pick(k + 3)) : std::string_view();
            m.destination = k % 5 ? std::string_view(pick(k + 4)) : std::string_view();
            m.sender = pick(k + 5);
            m.is_reply = m.type == 2 || m.type == 3;
            m.requested_reply = k % 2;
            m.fds = static_cast<std::uint32_t>(k % 3);
            dbus_policy_msg cm{};
            cm.type = m.type;
            cm.is_reply = m.is_reply;
            cm.requested_reply = m.requested_reply;
            cm.fds = m.fds;
            cm.path = intern(pol, m.path);
            cm.interface = intern(pol, m.interface);
            cm.member = intern(pol, m.member);
            cm.error_name = intern(pol, m.error_name);
            cm.destination = intern(pol, m.destination);
            cm.sender = intern(pol, m.sender);

            // A connection's names are never empty (the kernel refuses an empty one): an empty string
            // of the image stands for no name here.
            const auto name_or_foreign = [](const std::string& n) { return n.empty() ? std::string("org.nowhere.Foreign") : n; };
            const std::vector<std::string> names = {name_or_foreign(pick(k + 6)), name_or_foreign(pick(k + 7))};
            const policy::Party party{":1.7", names};
            const dbus_policy_str c_names[] = {intern(pol, names[0]), intern(pol, names[1])};
            const dbus_policy_party c_party{intern(pol, ":1.7"), c_names, 2};
            for (int h = 0; h < 3; ++h) {
                for (bool bus : {false, true}) {
                    const policy::Decision d = hooks[h] == policy::Hook::Send
                                                   ? chains->check_send(m, bus ? nullptr : &party)
                                                   : chains->check_receive(m, bus ? nullptr : &party, hooks[h] == policy::Hook::Eavesdrop);
                    const long rule = dbus_policy_decide(&pol, static_cast<dbus_policy_hook>(hooks[h]), indices[h].data(),
                                                         static_cast<u32>(indices[h].size()), &cm, bus ? nullptr : &c_party);
                    const long expected = d.rule ? static_cast<long>(d.rule - engine->image().rules().data()) : -1;
                    check(rule == expected, "the C evaluator decided by another rule");
                    check(dbus_policy_decide_indexed(&pol, static_cast<dbus_policy_hook>(hooks[h]), &indexed[h], &cm,
                                                     bus ? nullptr : &c_party) == expected,
                          "the indexed chain decided by another rule");
                }
            }
        }
    }
    return 0;
}
