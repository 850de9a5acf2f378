// The policy compiler: which <allow>/<deny> attribute sets dbus-daemon 1.14 accepts, with its error texts,
// and what each becomes in the image.
#include "policy_compiler.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace afbus::policy {
namespace {

using ::testing::HasSubstr;

NameResolver fake_resolver() {
    return NameResolver{
        [](const std::string& name) -> std::optional<uid_t> {
            if (name == "root") return 0;
            if (name == "alice") return 1000;
            return std::nullopt;
        },
        [](const std::string& name) -> std::optional<gid_t> {
            if (name == "wheel") return 10;
            return std::nullopt;
        },
    };
}

SourceRule rule(bool allow, std::vector<std::pair<std::string, std::string>> attributes) {
    return SourceRule{allow, std::move(attributes), "test.conf", 7};
}

SourceContext context(SourceContext::Kind kind, std::vector<SourceRule> rules, std::string who = "") {
    return SourceContext{kind, std::move(who), std::move(rules)};
}

Expected<PolicyImage, std::string> compile_one(SourceRule r, SourceContext::Kind kind = SourceContext::Kind::Default,
                                               std::string who = "") {
    auto compiled = compile_policy({context(kind, {std::move(r)}, std::move(who))}, fake_resolver());
    if (!compiled) return Unexpected(compiled.error().reason);
    return PolicyImage::load(std::move(compiled->image));
}

std::string error_of(SourceRule r, SourceContext::Kind kind = SourceContext::Kind::Default, std::string who = "") {
    auto compiled = compile_policy({context(kind, {std::move(r)}, std::move(who))}, fake_resolver());
    if (compiled) return "(compiled)";
    EXPECT_EQ(compiled.error().file, "test.conf");
    EXPECT_EQ(compiled.error().line, 7);
    return compiled.error().reason;
}

TEST(PolicyCompiler, RefusesWhatDbusDaemonRefuses) {
    struct Case {
        std::vector<std::pair<std::string, std::string>> attributes;
        const char* reason;
    };
    const std::vector<Case> cases = {
        {{{"max_fds", "1"}}, "Element <deny> must have one or more attributes"},
        {{{"log", "true"}}, "Element <deny> must have one or more attributes"},
        {{{"send_member", "Hello"}}, "if you specify a member you must specify an interface or a path"},
        {{{"receive_member", "Hello"}}, "if you specify a member you must specify an interface or a path"},
        {{{"own", "a.b"}, {"user", "root"}}, "own, own_prefix, user, group and the message-related attributes cannot be combined"},
        {{{"own", "a.b"}, {"send_type", "signal"}}, "cannot be combined"},
        {{{"own_prefix", "a.b"}, {"eavesdrop", "true"}}, "cannot be combined"},
        {{{"send_type", "signal"}, {"receive_type", "signal"}}, "send and receive attributes cannot be combined"},
        {{{"send_error", "a.E"}, {"send_interface", "a.I"}}, "send_error cannot be combined with send_member or send_interface"},
        {{{"receive_error", "a.E"}, {"receive_interface", "a.I"}}, "receive_error cannot be combined"},
        {{{"send_destination", "a.b"}, {"send_destination_prefix", "a"}}, "send_destination cannot be combined with send_destination_prefix"},
        {{{"send_type", "bogus"}}, "Bad message type \"bogus\""},
        {{{"receive_type", "bogus"}}, "Bad message type \"bogus\""},
        {{{"send_type", "signal"}, {"eavesdrop", "yes"}}, "Bad value \"yes\" for eavesdrop attribute, must be true or false"},
        {{{"send_broadcast", "maybe"}}, "for send_broadcast attribute"},
        {{{"send_destination", "a.b"}, {"send_broadcast", "true"}}, "cannot match anything"},
        {{{"send_requested_reply", "1"}}, "for send_requested_reply attribute"},
        {{{"receive_requested_reply", "1"}}, "for receive_requested_reply attribute"},
        {{{"send_type", "signal"}, {"max_fds", "x"}}, "Bad value \"x\" for max_fds attribute, must be an integer in range 0 to 33554432 inclusive"},
        {{{"send_type", "signal"}, {"min_fds", "-1"}}, "for min_fds attribute"},
        {{{"send_type", "signal"}, {"max_fds", "33554433"}}, "for max_fds attribute"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.reason);
        EXPECT_THAT(error_of(rule(false, c.attributes)), HasSubstr(c.reason));
    }
}

TEST(PolicyCompiler, UserAndGroupRulesAreBusGlobal) {
    EXPECT_EQ(error_of(rule(true, {{"user", "*"}}), SourceContext::Kind::User, "root"),
              "<allow> rule cannot be per-user because it has bus-global semantics");
    EXPECT_EQ(error_of(rule(true, {{"group", "*"}}), SourceContext::Kind::Group, "wheel"),
              "<allow> rule cannot be per-group because it has bus-global semantics");
    EXPECT_TRUE(compile_one(rule(true, {{"user", "*"}}), SourceContext::Kind::Mandatory));
}

TEST(PolicyCompiler, WildcardsAndDefaults) {
    auto image = compile_one(rule(true, {{"send_destination", "*"}, {"send_interface", "*"}, {"send_type", "*"}}));
    ASSERT_TRUE(image) << image.error();
    ASSERT_EQ(image->rules().size(), 1u);
    const RuleRecord& r = image->rules()[0];
    EXPECT_EQ(r.kind, static_cast<std::uint8_t>(RuleKind::Send));
    EXPECT_EQ(r.verdict, static_cast<std::uint8_t>(Verdict::Accept));
    EXPECT_EQ(r.name, kNoString);
    EXPECT_EQ(r.interface, kNoString);
    EXPECT_EQ(r.message_type, 0);
    EXPECT_TRUE(r.flags & kRuleOverridesEarlier);
    // Allow rules default to requested replies only; deny rules to unrequested ones only.
    EXPECT_EQ(r.reply, static_cast<std::uint8_t>(ReplyCondition::RequestedOnly));
    EXPECT_EQ(r.max_fds, kMaxMessageFds);

    auto deny = compile_one(rule(false, {{"send_destination", "org.x"}, {"send_interface", "org.x.I"}}));
    ASSERT_TRUE(deny);
    const RuleRecord& d = deny->rules()[0];
    EXPECT_EQ(d.reply, static_cast<std::uint8_t>(ReplyCondition::UnrequestedOnly));
    EXPECT_EQ(deny->string(d.name), "org.x");
    EXPECT_EQ(d.name_match, static_cast<std::uint8_t>(NameMatch::Exact));
    EXPECT_FALSE(d.flags & kRuleInterfaceRequired);  // only allow rules skip interface-less messages
    EXPECT_EQ(deny->string(d.reject_error), "org.freedesktop.DBus.Error.AccessDenied");
    EXPECT_EQ(d.line, 7u);
    EXPECT_EQ(deny->string(d.file), "test.conf");

    // eavesdrop="true" lifts the requested-reply restriction of an allow rule.
    auto eavesdrop = compile_one(rule(true, {{"send_destination", "*"}, {"eavesdrop", "true"}}));
    ASSERT_TRUE(eavesdrop);
    EXPECT_EQ(eavesdrop->rules()[0].reply, static_cast<std::uint8_t>(ReplyCondition::Any));
}

TEST(PolicyCompiler, EavesdropAloneIsAReceiveRule) {
    auto image = compile_one(rule(true, {{"eavesdrop", "true"}}));
    ASSERT_TRUE(image);
    EXPECT_EQ(image->rules()[0].kind, static_cast<std::uint8_t>(RuleKind::Receive));
    EXPECT_TRUE(image->rules()[0].flags & kRuleEavesdrop);
    EXPECT_TRUE(image->rules()[0].flags & kRuleOverridesEarlier);
}

TEST(PolicyCompiler, PrefixIsNeverAWildcard) {
    auto image = compile_one(rule(true, {{"send_destination_prefix", "*"}}));
    ASSERT_TRUE(image);
    EXPECT_EQ(image->rules()[0].name_match, static_cast<std::uint8_t>(NameMatch::Prefix));
    EXPECT_FALSE(image->rules()[0].flags & kRuleOverridesEarlier);
    auto own = compile_one(rule(true, {{"own_prefix", "org.x"}}));
    ASSERT_TRUE(own);
    EXPECT_EQ(own->rules()[0].kind, static_cast<std::uint8_t>(RuleKind::Own));
    EXPECT_EQ(own->rules()[0].name_match, static_cast<std::uint8_t>(NameMatch::Prefix));
}

TEST(PolicyCompiler, FdCountsParseLikeStrtol) {
    auto image = compile_one(rule(true, {{"send_type", "method_call"}, {"max_fds", " 0x10"}, {"min_fds", "2trailing"}}));
    ASSERT_TRUE(image) << image.error();
    EXPECT_EQ(image->rules()[0].max_fds, 16u);
    EXPECT_EQ(image->rules()[0].min_fds, 2u);
}

// busconfig accepts min_fds above max_fds (the rule matches no message); the image must load with it.
TEST(PolicyCompiler, AnEmptyFdRangeCompilesAndLoads) {
    auto image = compile_one(rule(false, {{"send_type", "method_call"}, {"min_fds", "3"}, {"max_fds", "1"}}));
    ASSERT_TRUE(image) << image.error();
    EXPECT_EQ(image->rules()[0].min_fds, 3u);
    EXPECT_EQ(image->rules()[0].max_fds, 1u);
}

TEST(PolicyCompiler, UnknownUsersAndGroupsAreWarnedAboutAndLeftOut) {
    auto compiled = compile_policy(
        {context(SourceContext::Kind::User, {rule(true, {{"own", "a.b"}})}, "nobody-here"),
         context(SourceContext::Kind::Group, {rule(true, {{"own", "a.b"}})}, "no-group"),
         context(SourceContext::Kind::Default, {rule(true, {{"user", "ghost"}}), rule(true, {{"user", "alice"}})}),
         context(SourceContext::Kind::User, {rule(true, {{"own", "c.d"}})}, "1234")},
        fake_resolver());
    ASSERT_TRUE(compiled);
    ASSERT_EQ(compiled->warnings.size(), 3u);
    EXPECT_THAT(compiled->warnings[0], HasSubstr("Unknown username \"nobody-here\""));
    EXPECT_THAT(compiled->warnings[1], HasSubstr("Unknown group \"no-group\""));
    EXPECT_THAT(compiled->warnings[2], HasSubstr("Unknown username \"ghost\" on element <allow>"));
    auto image = PolicyImage::load(std::move(compiled->image));
    ASSERT_TRUE(image);
    ASSERT_EQ(image->rules().size(), 2u);  // alice's connect rule and uid 1234's own rule
    EXPECT_EQ(image->rules()[0].principal, 1000u);
    ASSERT_EQ(image->contexts().size(), 2u);
    EXPECT_EQ(image->contexts()[1].kind, static_cast<std::uint8_t>(ContextKind::User));
    EXPECT_EQ(image->contexts()[1].id, 1234u);
}

TEST(PolicyCompiler, RulesOfAnIgnoredContextAreStillChecked) {
    auto compiled = compile_policy({context(SourceContext::Kind::User, {rule(true, {{"send_type", "bogus"}})}, "ghost")},
                                   fake_resolver());
    ASSERT_FALSE(compiled);
    EXPECT_EQ(compiled.error().reason, "Bad message type \"bogus\"");
}

}  // namespace
}  // namespace afbus::policy
