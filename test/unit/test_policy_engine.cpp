// The policy evaluator, table-driven: dbus-daemon 1.14's semantics for each attribute, the order of
// contexts, last-match-wins, and its observable quirks (interface-less messages, the optimisation that
// lets an all-wildcard rule erase the rules before it).
#include "policy_engine.hpp"

#include <gtest/gtest.h>

#include "policy_compiler.hpp"

namespace afbus::policy {
namespace {

using Attrs = std::vector<std::pair<std::string, std::string>>;
using Kind = SourceContext::Kind;

constexpr std::uint8_t kCall = 1, kReturn = 2, kError = 3, kSignal = 4;

NameResolver fake_resolver() {
    return NameResolver{[](const std::string& n) -> std::optional<uid_t> { return n == "alice" ? std::optional<uid_t>(1000) : std::nullopt; },
                        [](const std::string& n) -> std::optional<gid_t> { return n == "staff" ? std::optional<gid_t>(50) : std::nullopt; }};
}

struct Rule {
    bool allow;
    Attrs attributes;
};

PolicyEngine engine_of(std::vector<std::pair<Kind, std::vector<Rule>>> contexts, std::string who = "") {
    std::vector<SourceContext> source;
    for (auto& [kind, rules] : contexts) {
        SourceContext c{kind, kind == Kind::User ? "alice" : kind == Kind::Group ? "staff" : who, {}};
        for (auto& r : rules) c.rules.push_back(SourceRule{r.allow, r.attributes, "t.conf", 1});
        source.push_back(std::move(c));
    }
    auto compiled = compile_policy(source, fake_resolver());
    EXPECT_TRUE(compiled) << (compiled ? "" : compiled.error().reason);
    auto engine = PolicyEngine::load(std::move(compiled->image));
    EXPECT_TRUE(engine);
    return std::move(*engine);
}

// The chains keep the engine's image alive; the engine itself may go.
std::shared_ptr<const ConnectionChains> chains(std::vector<Rule> default_rules) {
    return engine_of({{Kind::Default, std::move(default_rules)}}).chains_for(Principal{1000, {}, false});
}

MessageFacts call(std::string_view destination, std::string_view interface, std::string_view member,
                  std::string_view path = "/") {
    MessageFacts m;
    m.type = kCall;
    m.destination = destination;
    m.interface = interface;
    m.member = member;
    m.path = path;
    return m;
}

MessageFacts reply(std::uint8_t type, bool requested) {
    MessageFacts m;
    m.type = type;
    m.destination = ":1.1";
    m.is_reply = true;
    m.requested_reply = requested;
    if (type == kError) m.error_name = "org.x.Error";
    return m;
}

const std::vector<std::string> kServiceNames = {"org.example.Service", "org.example.Queued"};
const Party kService{":1.7", kServiceNames};

TEST(PolicyEngine, NothingMatchingMeansDenied) {
    auto c = chains({});
    const Decision d = c->check_send(call("org.example.Service", "org.x.I", "M"), &kService);
    EXPECT_FALSE(d.allowed());
    EXPECT_EQ(d.rule, nullptr);
    EXPECT_EQ(d.error_name, kAccessDeniedError);
}

TEST(PolicyEngine, LastMatchWins) {
    auto c = chains({{true, {{"send_destination", "*"}}},
                     {false, {{"send_destination", "org.example.Service"}, {"send_interface", "org.x.Secret"}}},
                     {true, {{"send_destination", "org.example.Service"}, {"send_member", "Open"}, {"send_path", "/"}}}});
    EXPECT_TRUE(c->check_send(call("org.example.Service", "org.x.I", "M"), &kService).allowed());
    EXPECT_FALSE(c->check_send(call("org.example.Service", "org.x.Secret", "M"), &kService).allowed());
    EXPECT_TRUE(c->check_send(call("org.example.Service", "org.x.Secret", "Open"), &kService).allowed());
    EXPECT_EQ(c->count_matching(Hook::Send, call("org.example.Service", "org.x.Secret", "Open"), &kService), 3u);
}

TEST(PolicyEngine, MissingInterfaceEscapesAllowRulesButNotDenyRules) {
    auto allow = chains({{true, {{"send_destination", "org.example.Service"}, {"send_interface", "org.x.I"}}}});
    EXPECT_TRUE(allow->check_send(call("org.example.Service", "org.x.I", "M"), &kService).allowed());
    EXPECT_FALSE(allow->check_send(call("org.example.Service", "", "M"), &kService).allowed());
    auto deny = chains({{true, {{"send_destination", "*"}}}, {false, {{"send_interface", "org.x.I"}}}});
    EXPECT_FALSE(deny->check_send(call("org.example.Service", "", "M"), &kService).allowed());
    EXPECT_TRUE(deny->check_send(call("org.example.Service", "org.x.Other", "M"), &kService).allowed());
}

TEST(PolicyEngine, MissingMemberPathOrErrorStillMatch) {
    auto c = chains({{true, {{"send_destination", "*"}}}, {false, {{"send_path", "/secret"}, {"send_member", "M"}}}});
    EXPECT_FALSE(c->check_send(call("a.b", "org.x.I", "M", "/secret"), nullptr).allowed());
    EXPECT_FALSE(c->check_send(call("a.b", "org.x.I", "", "/secret"), nullptr).allowed());
    EXPECT_TRUE(c->check_send(call("a.b", "org.x.I", "Other", "/secret"), nullptr).allowed());
    EXPECT_TRUE(c->check_send(call("a.b", "org.x.I", "M", "/public"), nullptr).allowed());
}

TEST(PolicyEngine, RequestedReplies) {
    // Debian's system.conf: replies are allowed only when the bus expected them.
    auto system = chains({{false, {{"send_type", "method_call"}}},
                          {true, {{"send_type", "signal"}}},
                          {true, {{"send_requested_reply", "true"}, {"send_type", "method_return"}}},
                          {true, {{"send_requested_reply", "true"}, {"send_type", "error"}}}});
    EXPECT_TRUE(system->check_send(reply(kReturn, true), nullptr).allowed());
    EXPECT_FALSE(system->check_send(reply(kReturn, false), nullptr).allowed());
    EXPECT_TRUE(system->check_send(reply(kError, true), nullptr).allowed());
    EXPECT_FALSE(system->check_send(reply(kError, false), nullptr).allowed());
    // A deny rule by default applies only to unrequested replies...
    auto deny = chains({{true, {{"send_destination", "*"}, {"send_requested_reply", "false"}}},
                        {false, {{"send_type", "method_return"}}}});
    EXPECT_TRUE(deny->check_send(reply(kReturn, true), nullptr).allowed());
    EXPECT_FALSE(deny->check_send(reply(kReturn, false), nullptr).allowed());
    // ... and to all of them with send_requested_reply="true".
    auto deny_all = chains({{true, {{"send_destination", "*"}, {"send_requested_reply", "false"}}},
                            {false, {{"send_type", "method_return"}, {"send_requested_reply", "true"}}}});
    EXPECT_FALSE(deny_all->check_send(reply(kReturn, true), nullptr).allowed());
}

TEST(PolicyEngine, DestinationsAreNamesTheRecipientOwnsOrQueuesFor) {
    auto c = chains({{true, {{"send_destination", "org.example.Queued"}}}});
    // Addressed by its unique name, still the owner of (queued for) the name: allowed.
    EXPECT_TRUE(c->check_send(call(":1.7", "org.x.I", "M"), &kService).allowed());
    const Party stranger{":1.9", {}};
    EXPECT_FALSE(c->check_send(call("org.example.Queued", "org.x.I", "M"), &stranger).allowed());
    // The bus itself has no connection: the destination field is compared.
    auto bus = chains({{true, {{"send_destination", "org.freedesktop.DBus"}, {"send_interface", "org.freedesktop.DBus"}}}});
    EXPECT_TRUE(bus->check_send(call("org.freedesktop.DBus", "org.freedesktop.DBus", "Hello"), nullptr).allowed());
    EXPECT_FALSE(bus->check_send(call("org.freedesktop.DBus", "org.freedesktop.DBus.Debug.Stats", "GetStats"), nullptr).allowed());
    // A unique name as destination.
    auto unique = chains({{true, {{"send_destination", ":1.7"}}}});
    EXPECT_TRUE(unique->check_send(call("org.example.Service", "org.x.I", "M"), &kService).allowed());
}

TEST(PolicyEngine, DestinationPrefixMatchesWholeWords) {
    auto c = chains({{true, {{"send_destination_prefix", "org.example"}}}});
    EXPECT_TRUE(c->check_send(call("org.example.Service", "org.x.I", "M"), &kService).allowed());
    const std::vector<std::string> other_names = {"org.examples.Service"};
    const Party other{":1.8", other_names};
    EXPECT_FALSE(c->check_send(call("org.examples.Service", "org.x.I", "M"), &other).allowed());
    EXPECT_TRUE(c->check_send(call("org.example", "org.x.I", "M"), nullptr).allowed());
    EXPECT_FALSE(c->check_send(call("org.exampleX", "org.x.I", "M"), nullptr).allowed());
}

TEST(PolicyEngine, BroadcastAndFds) {
    auto c = chains({{true, {{"send_type", "signal"}}},
                     {false, {{"send_type", "signal"}, {"send_broadcast", "false"}}},
                     {false, {{"send_type", "signal"}, {"min_fds", "1"}}}});
    MessageFacts broadcast;
    broadcast.type = kSignal;
    broadcast.interface = "org.x.I";
    broadcast.member = "S";
    EXPECT_TRUE(c->check_send(broadcast, nullptr).allowed());
    MessageFacts unicast = broadcast;
    unicast.destination = ":1.7";
    EXPECT_FALSE(c->check_send(unicast, &kService).allowed());
    broadcast.fds = 1;
    EXPECT_FALSE(c->check_send(broadcast, nullptr).allowed());
}

TEST(PolicyEngine, EavesdroppingNeedsRulesThatSaySo) {
    auto plain = chains({{true, {{"receive_type", "method_call"}}}});
    const MessageFacts m = call(":1.7", "org.x.I", "M");
    EXPECT_TRUE(plain->check_receive(m, &kService, false).allowed());
    EXPECT_FALSE(plain->check_receive(m, &kService, true).allowed());
    // session.conf
    auto session = chains({{true, {{"send_destination", "*"}, {"eavesdrop", "true"}}}, {true, {{"eavesdrop", "true"}}}});
    EXPECT_TRUE(session->check_receive(m, &kService, true).allowed());
    EXPECT_TRUE(session->check_receive(reply(kReturn, false), &kService, false).allowed());
    EXPECT_TRUE(session->check_send(reply(kReturn, false), &kService).allowed());
    // A deny marked eavesdrop only stops eavesdropping.
    auto deny = chains({{true, {{"eavesdrop", "true"}}}, {false, {{"receive_interface", "org.x.I"}, {"eavesdrop", "true"}}}});
    EXPECT_TRUE(deny->check_receive(m, &kService, false).allowed());
    EXPECT_FALSE(deny->check_receive(m, &kService, true).allowed());
}

TEST(PolicyEngine, ReceiveSenderIsANameTheSenderOwns) {
    auto c = chains({{true, {{"receive_sender", "org.example.Service"}}}});
    MessageFacts signal;
    signal.type = kSignal;
    signal.sender = ":1.7";
    EXPECT_TRUE(c->check_receive(signal, &kService, false).allowed());
    EXPECT_FALSE(c->check_receive(signal, nullptr, false).allowed());  // from the bus: compared as text
    auto bus = chains({{true, {{"receive_sender", "org.freedesktop.DBus"}}}});
    signal.sender = "org.freedesktop.DBus";
    EXPECT_TRUE(bus->check_receive(signal, nullptr, false).allowed());
}

TEST(PolicyEngine, AllWildcardRuleErasesEarlierRulesOfItsKind) {
    // dbus-daemon drops every earlier send rule when it meets a send rule without type, path, interface,
    // member, error or destination, even though send_broadcast narrows it: the allow below is gone.
    auto c = chains({{true, {{"send_destination", "org.example.Service"}}}, {false, {{"send_broadcast", "true"}}}});
    EXPECT_FALSE(c->check_send(call("org.example.Service", "org.x.I", "M"), &kService).allowed());
    EXPECT_EQ(c->size(Hook::Send), 1u);
    // Own rules are not send rules: untouched.
    auto own = chains({{true, {{"own", "a.b"}}}, {false, {{"send_broadcast", "true"}}}});
    EXPECT_TRUE(own->can_own("a.b"));
}

TEST(PolicyEngine, Ownership) {
    auto c = chains({{false, {{"own", "*"}}},
                     {true, {{"own_prefix", "org.example"}}},
                     {false, {{"own", "org.example.Forbidden"}}},
                     {true, {{"own", "com.other"}}}});
    EXPECT_TRUE(c->can_own("org.example"));
    EXPECT_TRUE(c->can_own("org.example.Service"));
    EXPECT_FALSE(c->can_own("org.examples"));
    EXPECT_FALSE(c->can_own("org.example.Forbidden"));
    EXPECT_TRUE(c->can_own("com.other"));
    EXPECT_FALSE(c->can_own("com.other.Child"));
}

TEST(PolicyEngine, ContextsApplyInDbusDaemonsOrder) {
    // default < group < user < at_console < mandatory, whatever the order in the file.
    auto engine = engine_of({{Kind::Mandatory, {{false, {{"own", "m.name"}}}}},
                             {Kind::AtConsole, {{true, {{"own", "m.name"}}}, {true, {{"own", "c.name"}}}}},
                             {Kind::User, {{false, {{"own", "c.name"}}}, {true, {{"own", "u.name"}}}}},
                             {Kind::Group, {{false, {{"own", "u.name"}}}, {true, {{"own", "g.name"}}}}},
                             {Kind::Default, {{false, {{"own", "g.name"}}}, {true, {{"own", "m.name"}}}}}});
    auto alice_at_console = engine.chains_for(Principal{1000, {50}, true});
    EXPECT_FALSE(alice_at_console->can_own("m.name"));
    EXPECT_TRUE(alice_at_console->can_own("c.name"));
    EXPECT_TRUE(alice_at_console->can_own("u.name"));
    EXPECT_TRUE(alice_at_console->can_own("g.name"));
    auto other = engine.chains_for(Principal{2000, {}, false});
    EXPECT_FALSE(other->can_own("g.name"));
    EXPECT_FALSE(other->can_own("c.name"));
    auto anonymous = engine.chains_for(Principal{});
    EXPECT_FALSE(anonymous->can_own("c.name"));  // no uid: no user or console rules
}

TEST(PolicyEngine, OnlyAtConsoleRulesMakeTheConsoleMatter) {
    // The daemon asks the seat manager at connect only when this says so.
    EXPECT_FALSE(engine_of({{Kind::Default, {{true, {{"own", "*"}}}}}, {Kind::User, {{true, {{"own", "u.name"}}}}}})
                     .depends_on_console());
    EXPECT_TRUE(engine_of({{Kind::Default, {{true, {{"own", "*"}}}}}, {Kind::AtConsole, {{true, {{"own", "c.name"}}}}}})
                    .depends_on_console());
    EXPECT_TRUE(engine_of({{Kind::NotAtConsole, {{false, {{"own", "c.name"}}}}}}).depends_on_console());
}

TEST(PolicyEngine, WhoMayConnect) {
    auto session = engine_of({{Kind::Default, {{true, {{"own", "*"}}}}}});
    EXPECT_TRUE(session.allows_connect(1000, {}, 1000));  // the bus's own user
    EXPECT_FALSE(session.allows_connect(2000, {}, 1000));
    auto system = engine_of({{Kind::Default, {{true, {{"user", "*"}}}, {false, {{"group", "staff"}}}}},
                             {Kind::Mandatory, {{true, {{"user", "alice"}}}}}});
    EXPECT_TRUE(system.allows_connect(2000, {}, 0));
    EXPECT_FALSE(system.allows_connect(2000, std::vector<std::uint32_t>{50}, 0));
    EXPECT_TRUE(system.allows_connect(1000, std::vector<std::uint32_t>{50}, 0));
}

TEST(PolicyEngine, DecisionsDoNotDependOnRulesAboutOtherNames) {
    // Thousands of rules about other services (a full system.d) and the answer for this one is the same.
    std::vector<Rule> rules = {{false, {{"send_type", "method_call"}}}};
    for (int i = 0; i < 5000; ++i)
        rules.push_back({true, {{"send_destination", "org.other.S" + std::to_string(i)}, {"send_interface", "org.x.I"}}});
    rules.push_back({true, {{"send_destination", "org.example.Service"}, {"send_interface", "org.x.I"}}});
    for (int i = 0; i < 5000; ++i)
        rules.push_back({false, {{"send_destination", "org.more.S" + std::to_string(i)}}});
    // Allow rules about an interface alone are filed under it (they cannot match another interface).
    for (int i = 0; i < 5000; ++i) rules.push_back({true, {{"send_interface", "org.other.I" + std::to_string(i)}}});
    rules.push_back({true, {{"send_interface", "org.x.Open"}}});
    auto c = chains(rules);
    EXPECT_TRUE(c->check_send(call("org.example.Service", "org.x.I", "M"), &kService).allowed());
    EXPECT_FALSE(c->check_send(call("org.example.Service", "org.x.Other", "M"), &kService).allowed());
    EXPECT_EQ(c->count_matching(Hook::Send, call("org.example.Service", "org.x.I", "M"), &kService), 2u);
    EXPECT_TRUE(c->check_send(call("org.example.Service", "org.x.Open", "M"), &kService).allowed());
    EXPECT_TRUE(c->check_send(call("org.other", "org.other.I42", "M"), nullptr).allowed());
    EXPECT_FALSE(c->check_send(call("org.other", "", "M"), nullptr).allowed());
}

}  // namespace
}  // namespace afbus::policy
