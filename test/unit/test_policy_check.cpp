#include "policy_check.hpp"

#include <gtest/gtest.h>

#include "peer_table.hpp"
#include "policy_compiler.hpp"

namespace afbus::daemon {
namespace {

using Attrs = std::vector<std::pair<std::string, std::string>>;

std::shared_ptr<const policy::ConnectionChains> default_chains(std::vector<std::pair<bool, Attrs>> rules) {
    policy::SourceContext context{policy::SourceContext::Kind::Default, "", {}};
    for (auto& [allow, attributes] : rules) context.rules.push_back(policy::SourceRule{allow, attributes, "t.conf", 1});
    const policy::NameResolver resolver{[](const std::string&) -> std::optional<uid_t> { return std::nullopt; },
                                        [](const std::string&) -> std::optional<gid_t> { return std::nullopt; }};
    auto compiled = policy::compile_policy({context}, resolver);
    EXPECT_TRUE(compiled);
    auto engine = policy::PolicyEngine::load(std::move(compiled->image));
    EXPECT_TRUE(engine);
    return engine->chains_for(policy::Principal{1000, {}, false});
}

struct PolicyCheckTest : testing::Test {
    PeerTable peers;
    NameRegistry names;
    Peer& registered(std::shared_ptr<const policy::ConnectionChains> chains) {
        PeerCredentials c;
        c.uid = 1000;
        c.pid = 7;
        c.from_kernel = true;
        Peer& p = peers.add(std::move(c));
        peers.authenticated(p, 1000u, std::move(chains));
        peers.register_unique_name(p);
        return p;
    }
};

Message call_to(std::string_view destination, std::string_view interface) {
    return MessageBuilder::method_call(destination, "/x", interface, "M").build(3).value();
}

TEST_F(PolicyCheckTest, NoChainsAllowEverything) {
    Peer& a = registered(nullptr);
    Peer& b = registered(nullptr);
    const auto m = call_to(b.unique_name(), "org.x");
    EXPECT_TRUE(check_policy(names, PolicyQuestion{&a, &b, &m}).allowed());
    EXPECT_TRUE(check_policy(names, PolicyQuestion{nullptr, &b, &m}).allowed());
}

TEST_F(PolicyCheckTest, ASendRefusalNamesTheRuleCountAndBothParties) {
    auto chains = default_chains({{true, {{"send_destination", "*"}}},
                                  {true, {{"receive_sender", "*"}}},
                                  {false, {{"send_interface", "org.x.Denied"}}}});
    Peer& a = registered(chains);
    Peer& b = registered(chains);
    const auto allowed = call_to("org.x.Service", "org.x.Fine");
    names.request("org.x.Service", b.id(), 0);
    EXPECT_TRUE(check_policy(names, PolicyQuestion{&a, &b, &allowed}).allowed());

    const auto denied = call_to("org.x.Service", "org.x.Denied");
    const PolicyVerdict verdict = check_policy(names, PolicyQuestion{&a, &b, &denied});
    ASSERT_TRUE(verdict.rejected());
    EXPECT_EQ(verdict.error.name, "org.freedesktop.DBus.Error.AccessDenied");
    EXPECT_NE(verdict.error.message.find("Rejected send message"), std::string::npos);
    EXPECT_NE(verdict.error.message.find("interface=\"org.x.Denied\""), std::string::npos);
    EXPECT_NE(verdict.error.message.find("sender=\"" + a.unique_name() + "\" (uid=1000 pid=7)"), std::string::npos);
    EXPECT_NE(verdict.error.message.find("destination=\"org.x.Service\" (uid=1000 pid=7)"), std::string::npos);
}

TEST_F(PolicyCheckTest, ReceiveRulesOfTheRecipientApplyToo) {
    auto sender_chains = default_chains({{true, {{"send_destination", "*"}}}});
    auto recipient_chains = default_chains({{true, {{"send_destination", "*"}}}});  // no receive rule: default deny
    Peer& a = registered(sender_chains);
    Peer& b = registered(recipient_chains);
    const auto m = call_to(b.unique_name(), "org.x");
    const PolicyVerdict verdict = check_policy(names, PolicyQuestion{&a, &b, &m});
    ASSERT_FALSE(verdict.allowed());
    EXPECT_NE(verdict.error.message.find("Rejected receive message"), std::string::npos);
}

}  // namespace
}  // namespace afbus::daemon
