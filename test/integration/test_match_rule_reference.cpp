// The match-rule parser must accept exactly the rules the bus daemon accepts: every text below is sent to
// the daemon with AddMatch (dbus-daemon 1.14 unless AFBUS_TEST_DAEMON says otherwise), and its verdict
// must equal MatchRule::parse's.
#include <gtest/gtest.h>

#include "afbus/connection.hpp"
#include "afbus/match_rule.hpp"
#include "afbus/types.hpp"
#include "support/raw_peer.hpp"
#include "test_bus.hpp"

namespace afbus {
namespace {

const char* const kRules[] = {
    "", "type='signal'", "type=signal", "  member='Foo',type='signal'", "arg3='x',arg0='y'",
    "arg0='it'\\''s'", "arg0=it\\'s", "arg0='a\\b'", "arg0=a\\b", "arg0='a,b'", "arg2path='/a/'",
    "arg0namespace='org.example'", "arg0namespace='org'", "arg63='x'", "eavesdrop='true'", "eavesdrop='false'",
    "path_namespace='/org'", "path_namespace='/'", "destination=':1.4'", "destination='org.example.X'",
    "sender='org.freedesktop.DBus'", "sender=':1.0'", "type='method_call'", "type='method_return'", "type='error'",
    "type='signal", "type", "type='bogus'", "bogus='x'", "=x", "type ='signal'", "type='signal',type='signal'",
    "member='a',member='b'", "arg0='a',arg0='b'", "arg0='a',arg0path='/b'", "sender='no dots'",
    "interface='nodots'", "member='a.b'", "member='9a'", "path='a'", "path='/a/'", "path_namespace='/a/'",
    "path='/a',path_namespace='/a'", "destination='x'", "arg64='x'", "arg='x'", "arg1namespace='a.b'",
    "arg0junk='a'", "arg0namespace='a..b'", "arg0namespace=':1'", "eavesdrop='yes'", "type='signal' ,member='x'",
    "type='signal',", "type='signal',,member='x'", "arg0path='relative'", "arg0path=''", "arg0=''",
    "ty pe='signal'", "type\t='signal'", "type= 'signal'", "type='signal',=x,member='9'", "=", " = x",
    "member =x", "arg0 ='a'",
    "interface='org.example.I',member='M',path='/a/b',arg0='x',arg1path='/y/',arg0namespace='q'",
};

TEST(MatchRuleReference, SameVerdictsAsTheBusDaemon) {
    test::TestBus bus;
    auto c = Connection::open(bus.address());
    ASSERT_TRUE(c);
    for (const char* text : kRules) {
        auto reply = (*c)->call(test::driver_call("AddMatch", text));
        const bool ours = static_cast<bool>(MatchRule::parse(text));
        EXPECT_EQ(ours, static_cast<bool>(reply))
            << "rule \"" << text << "\": daemon " << (reply ? "accepts" : "rejects: " + reply.error().message);
        if (!reply) {
            EXPECT_EQ(reply.error().name, error_names::kMatchRuleInvalid) << text;
        }
    }
    // Longer than 1024 bytes: refused with LimitsExceeded.
    auto reply = (*c)->call(test::driver_call("AddMatch", "arg0='" + std::string(1100, 'x') + "'"));
    ASSERT_FALSE(reply);
    EXPECT_EQ(reply.error().name, error_names::kLimitsExceeded);
}

}  // namespace
}  // namespace afbus
