#include "afbus/match_rule.hpp"

#include <gtest/gtest.h>

#include "afbus/types.hpp"

namespace afbus {
namespace {

MatchRule rule(std::string_view text) {
    auto r = MatchRule::parse(text);
    EXPECT_TRUE(r) << text << ": " << to_string(r.error());
    return r ? *r : MatchRule{};
}

Message signal(std::string_view path, std::string_view interface, std::string_view member,
               const std::vector<Value>& args = {}, std::string_view sender = ":1.5") {
    auto b = MessageBuilder::signal(path, interface, member);
    b.sender(sender);
    for (const Value& v : args) b.append_value(v);
    return b.build(1).value();
}

TEST(MatchRule, ParsesWhatDbusDaemonAccepts) {
    EXPECT_EQ(rule("").to_string(), "");
    EXPECT_EQ(rule("type='signal'").to_string(), "type='signal'");
    EXPECT_EQ(rule("type=signal").to_string(), "type='signal'");  // unquoted values are allowed
    EXPECT_EQ(rule("  member='Foo',type='signal'").to_string(), "type='signal',member='Foo'");
    EXPECT_EQ(rule("arg3='x',arg0='y'").to_string(), "arg0='y',arg3='x'");
    EXPECT_EQ(rule("arg0='it'\\''s'").args()[0].value, "it's");
    EXPECT_EQ(rule("arg0=it\\'s").args()[0].value, "it's");
    EXPECT_EQ(rule("arg0='a\\b'").args()[0].value, "a\\b");
    EXPECT_EQ(rule("arg0=a\\b").args()[0].value, "a\\b");
    EXPECT_EQ(rule("arg0='a,b'").args()[0].value, "a,b");
    EXPECT_EQ(rule("arg2path='/a/'").args()[0].kind, MatchRule::ArgCondition::Kind::Path);
    EXPECT_EQ(rule("arg0namespace='org.example'").args()[0].kind, MatchRule::ArgCondition::Kind::Namespace);
    EXPECT_EQ(rule("arg0namespace='org'").args()[0].value, "org");
    EXPECT_EQ(rule("arg63='x'").args()[0].index, 63);
    EXPECT_EQ(rule("eavesdrop='true'").eavesdrop(), true);
    EXPECT_EQ(rule("path_namespace='/org'").path_namespace(), "/org");
    EXPECT_EQ(rule("destination=':1.4'").destination(), ":1.4");
    EXPECT_EQ(rule("type ='signal'").to_string(), "type='signal'");  // white space before '='
    EXPECT_EQ(rule("type='signal',=x,member='9'").to_string(), "type='signal'");  // empty key ends the rule
    EXPECT_EQ(rule("sender='org.freedesktop.DBus'").sender(), "org.freedesktop.DBus");
}

TEST(MatchRule, RejectsWhatDbusDaemonRejects) {
    const std::pair<const char*, MatchRuleError> cases[] = {
        {"type='signal", MatchRuleError::Syntax},
        {"type", MatchRuleError::Syntax},
        {"type='bogus'", MatchRuleError::BadType},
        {"bogus='x'", MatchRuleError::UnknownKey},
        {"ty pe='signal'", MatchRuleError::Syntax},
        {"type='signal',type='signal'", MatchRuleError::DuplicateKey},
        {"member='a',member='b'", MatchRuleError::DuplicateKey},
        {"arg0='a',arg0='b'", MatchRuleError::DuplicateKey},
        {"arg0='a',arg0path='/b'", MatchRuleError::DuplicateKey},
        {"sender='no dots'", MatchRuleError::BadSender},
        {"interface='nodots'", MatchRuleError::BadInterface},
        {"member='a.b'", MatchRuleError::BadMember},
        {"path='a'", MatchRuleError::BadPath},
        {"path_namespace='/a/'", MatchRuleError::BadPath},
        {"path='/a',path_namespace='/a'", MatchRuleError::PathAndNamespace},
        {"destination='x'", MatchRuleError::BadDestination},
        {"arg64='x'", MatchRuleError::ArgIndexTooLarge},
        {"arg='x'", MatchRuleError::ArgIndexTooLarge},
        {"arg1namespace='a.b'", MatchRuleError::UnknownKey},
        {"arg0junk='a'", MatchRuleError::UnknownKey},
        {"arg0namespace='a..b'", MatchRuleError::BadArg0Namespace},
        {"eavesdrop='yes'", MatchRuleError::BadEavesdrop},
        {"type='signal' ,member='x'", MatchRuleError::BadType},  // the space belongs to the value
    };
    for (const auto& [text, error] : cases) {
        auto r = MatchRule::parse(text);
        ASSERT_FALSE(r) << text;
        EXPECT_EQ(r.error(), error) << text << ": " << to_string(r.error());
    }
    EXPECT_EQ(MatchRule::parse("arg0='" + std::string(1100, 'x') + "'").error(), MatchRuleError::TooLong);
}

TEST(MatchRule, CanonicalFormRoundTripsAndDefinesEquality) {
    for (const char* text : {"type='signal',sender='org.a.B',interface='org.a.I',member='M',path='/p',destination=':1.3',arg0='x',arg1path='/a/',arg0namespace='q'",
                             "path_namespace='/a',eavesdrop='false',arg5='it'\\''s'"}) {
        auto first = MatchRule::parse(text);
        if (!first) continue;  // the first text has two conditions on arg0 and is rejected; checked above
        auto second = MatchRule::parse(first->to_string());
        ASSERT_TRUE(second) << first->to_string();
        EXPECT_EQ(*first, *second);
    }
    EXPECT_EQ(rule("member='M',type='signal'"), rule("type=signal,member=M"));
    EXPECT_NE(rule("arg0='a'"), rule("arg0path='a'"));
}

TEST(MatchRule, MatchesHeaderFields) {
    const Message m = signal("/org/example/obj", "org.example.I", "Changed");
    EXPECT_TRUE(rule("").matches(m));
    EXPECT_TRUE(rule("type='signal',interface='org.example.I',member='Changed'").matches(m));
    EXPECT_FALSE(rule("type='method_call'").matches(m));
    EXPECT_FALSE(rule("member='Other'").matches(m));
    EXPECT_TRUE(rule("path='/org/example/obj'").matches(m));
    EXPECT_FALSE(rule("path='/org/example'").matches(m));
    EXPECT_TRUE(rule("path_namespace='/org/example'").matches(m));
    EXPECT_TRUE(rule("path_namespace='/org/example/obj'").matches(m));
    EXPECT_TRUE(rule("path_namespace='/'").matches(m));
    EXPECT_FALSE(rule("path_namespace='/org/ex'").matches(m));
    EXPECT_TRUE(rule("sender=':1.5'").matches(m));
    EXPECT_FALSE(rule("sender=':1.6'").matches(m));
    EXPECT_FALSE(rule("sender='org.example.Owner'").matches(m));
    EXPECT_TRUE(rule("sender='org.example.Owner'").matches(m, false));
    EXPECT_FALSE(rule("destination=':1.9'").matches(m));
}

TEST(MatchRule, MatchesArguments) {
    const Message m = signal("/a", "org.example.I", "S",
                             {Value::string("org.example.Service"), Value::int32(4), Value::object_path("/aa/bb/cc"),
                              Value::string("/aa/bb/")});
    EXPECT_TRUE(rule("arg0='org.example.Service'").matches(m));
    EXPECT_FALSE(rule("arg0='org.example'").matches(m));
    EXPECT_FALSE(rule("arg1='4'").matches(m));  // only strings match argN
    EXPECT_TRUE(rule("arg0namespace='org.example'").matches(m));
    EXPECT_TRUE(rule("arg0namespace='org.example.Service'").matches(m));
    EXPECT_FALSE(rule("arg0namespace='org.exam'").matches(m));
    EXPECT_TRUE(rule("arg2path='/aa/bb/'").matches(m));   // object paths match argNpath
    EXPECT_TRUE(rule("arg2path='/aa/bb/cc'").matches(m));
    EXPECT_FALSE(rule("arg2path='/aa/b'").matches(m));
    EXPECT_TRUE(rule("arg3path='/aa/bb/cc/dd'").matches(m));  // the argument is the namespace
    EXPECT_TRUE(rule("arg3path='/aa/'").matches(m));
    EXPECT_FALSE(rule("arg3path='/aa/bb'").matches(m));
    EXPECT_FALSE(rule("arg7='x'").matches(m));  // beyond the last argument
    EXPECT_TRUE(rule("arg0='org.example.Service',arg3='/aa/bb/'").matches(m));
}

}  // namespace
}  // namespace afbus
