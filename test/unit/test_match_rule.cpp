#include "afbus/match_rule.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <span>
#include <vector>

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
    // As dbus-daemon: a message without PATH (a method return) is in no namespace, not even "/".
    auto reply = MessageBuilder::method_return(m).build();
    ASSERT_TRUE(reply);
    EXPECT_FALSE(rule("path_namespace='/'").matches(*reply));
    EXPECT_TRUE(rule("type='method_return'").matches(*reply));
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


// --- The compiled record ---

std::vector<std::byte> bytes_of(std::span<const std::byte> s) { return {s.begin(), s.end()}; }
std::vector<std::byte> bytes_of(std::initializer_list<int> values) {
    std::vector<std::byte> out;
    for (int v : values) out.push_back(static_cast<std::byte>(v));
    return out;
}
void put_u16(std::vector<std::byte>& record, std::size_t at, int value) {
    record[at] = static_cast<std::byte>(value & 0xff);
    record[at + 1] = static_cast<std::byte>(value >> 8);
}

TEST(MatchRecord, LayoutIsTheDocumentedOne) {
    const MatchRule r = rule("type='signal',member='Ping',arg1path='/p/'");
    // Header: version 1, type 4 (signal), eavesdrop unset, one argument condition, size 45 = 32 + 6 + 4 + 3.
    const std::vector<std::byte> expected = bytes_of({
        1, 4, 0, 1, 45, 0, 0, 0,
        0, 0, 0xff, 0xff,   // sender: absent
        0, 0, 0xff, 0xff,   // interface: absent
        38, 0, 4, 0,        // member: "Ping" at 38
        0, 0, 0xff, 0xff,   // path
        0, 0, 0xff, 0xff,   // path_namespace
        0, 0, 0xff, 0xff,   // destination
        1, 1, 42, 0, 3, 0,  // arg1path: "/p/" at 42
        'P', 'i', 'n', 'g', '/', 'p', '/'});
    EXPECT_EQ(bytes_of(r.compiled()), expected);
    EXPECT_EQ(MatchRule().compiled().size(), kMatchRecordHeaderSize);
}

TEST(MatchRecord, LoadingARecordGivesTheSameRule) {
    const Message m = signal("/aa/bb", "org.example.I", "S", {Value::string("org.example.Service"), Value::string("x")});
    for (std::string_view text :
         {"", "type='signal'", "sender=':1.5',destination='org.example.D',eavesdrop='false'",
          "interface='org.example.I',member='S',path='/aa/bb'", "path_namespace='/aa'",
          "arg0namespace='org.example',arg1='x'", "arg0='org.example.Service',arg63path='/a/'",
          "eavesdrop='true',arg1='it'\\''s'"}) {
        const MatchRule original = rule(text);
        auto loaded = MatchRule::load(original.compiled());
        ASSERT_TRUE(loaded) << text << ": " << loaded.error();
        EXPECT_EQ(*loaded, original) << text;
        EXPECT_EQ(loaded->to_string(), original.to_string()) << text;
        EXPECT_EQ(bytes_of(loaded->compiled()), bytes_of(original.compiled())) << text;
        EXPECT_EQ(loaded->matches(m), original.matches(m)) << text;
    }
}

// with_sender: the rule the bus installs in the kernel for a well-known sender, naming its owner.
TEST(MatchRecord, WithSenderReplacesOnlyTheSender) {
    EXPECT_EQ(rule("type='signal',sender='org.example.Calc',interface='org.example.Calc',arg0='x',arg2path='/a/'")
                  .with_sender(":1.42")
                  .to_string(),
              "type='signal',sender=':1.42',interface='org.example.Calc',arg0='x',arg2path='/a/'");
    EXPECT_EQ(rule("eavesdrop='true',member='Tick'").with_sender(":1.7"),
              rule("sender=':1.7',member='Tick',eavesdrop='true'"));
    const MatchRule replaced = rule("sender='org.example.Calc',path_namespace='/org'").with_sender(":1.5");
    EXPECT_EQ(replaced, rule("sender=':1.5',path_namespace='/org'"));
    EXPECT_EQ(bytes_of(replaced.compiled()), bytes_of(rule("sender=':1.5',path_namespace='/org'").compiled()));
    // A valid record: what the kernel will be given.
    ASSERT_TRUE(MatchRule::load(replaced.compiled()));
    EXPECT_TRUE(replaced.matches(signal("/org/x", "org.example.I", "S")));  // signal() sends from :1.5
    EXPECT_FALSE(rule("path_namespace='/org'").with_sender(":1.6").matches(signal("/org/x", "org.example.I", "S")));
}

TEST(MatchRecord, LoadRejectsEveryInconsistency) {
    const std::vector<std::byte> good = bytes_of(rule("member='Ping',arg0namespace='org.ex'").compiled());
    ASSERT_TRUE(MatchRule::load(good));
    struct Case {
        const char* what;
        std::function<void(std::vector<std::byte>&)> corrupt;
    };
    const std::vector<Case> cases = {
        {"shorter than its header", [](auto& r) { r.resize(kMatchRecordHeaderSize - 1); }},
        {"unknown version", [](auto& r) { r[0] = std::byte{2}; }},
        {"size field disagrees", [](auto& r) { put_u16(r, kMatchRecordSize, static_cast<int>(r.size()) + 1); }},
        {"trailing byte", [](auto& r) { r.push_back(std::byte{0}); }},
        {"reserved", [](auto& r) { r[kMatchRecordReserved] = std::byte{1}; }},
        {"unknown message type", [](auto& r) { r[kMatchRecordType] = std::byte{5}; }},
        {"eavesdrop", [](auto& r) { r[kMatchRecordEavesdrop] = std::byte{3}; }},
        {"more than 64", [](auto& r) { r[kMatchRecordArgCount] = std::byte{65}; }},
        {"arguments past the end", [](auto& r) { r[kMatchRecordArgCount] = std::byte{9}; }},
        {"member past the end", [](auto& r) { put_u16(r, kMatchRecordSlices + 4 * kMatchFieldMember + 2, 200); }},
        {"member inside the header", [](auto& r) { put_u16(r, kMatchRecordSlices + 4 * kMatchFieldMember, 2); }},
        {"member shorter, leaving a gap", [](auto& r) { put_u16(r, kMatchRecordSlices + 4 * kMatchFieldMember + 2, 3); }},
        {"absent with an offset", [](auto& r) { put_u16(r, kMatchRecordSlices, 40); }},
        {"invalid member name", [](auto& r) { r[r.size() - 10] = std::byte{'.'}; }},
        {"argument index above 63", [](auto& r) { r[kMatchRecordHeaderSize] = std::byte{64}; }},
        {"namespace on arg1", [](auto& r) { r[kMatchRecordHeaderSize] = std::byte{1}; }},
        {"unknown argument kind", [](auto& r) { r[kMatchRecordHeaderSize + 1] = std::byte{3}; }},
        {"invalid namespace", [](auto& r) { r.back() = std::byte{'.'}; }},
    };
    for (const Case& c : cases) {
        std::vector<std::byte> bad = good;
        c.corrupt(bad);
        if (std::string_view(c.what) != "size field disagrees" && bad.size() >= 6)
            put_u16(bad, kMatchRecordSize, static_cast<int>(bad.size()));
        EXPECT_FALSE(MatchRule::load(bad)) << c.what;
    }

    // Two arguments in the wrong order, and path with path_namespace.
    std::vector<std::byte> two = bytes_of(rule("arg0='a',arg1='b'").compiled());
    two[kMatchRecordHeaderSize + kMatchRecordArgSize] = std::byte{0};
    EXPECT_FALSE(MatchRule::load(two));
    std::vector<std::byte> paths = bytes_of(rule("path='/a'").compiled());
    for (int i = 0; i < 4; ++i)
        paths[kMatchRecordSlices + 4 * kMatchFieldPathNamespace + i] = paths[kMatchRecordSlices + 4 * kMatchFieldPath + i];
    EXPECT_FALSE(MatchRule::load(paths));
    EXPECT_FALSE(MatchRule::load(std::vector<std::byte>(kMaxMatchRecordSize + 1)));
}

}  // namespace
}  // namespace afbus
