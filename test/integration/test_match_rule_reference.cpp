// The match-rule parser must accept exactly the rules the bus daemon accepts: every text of the reference
// table (support/match_rule_texts.hpp) is sent to the daemon with AddMatch (dbus-daemon 1.14 unless
// AFBUS_TEST_DAEMON says otherwise), and its verdict must equal MatchRule::parse's.
#include <gtest/gtest.h>

#include "afbus/connection.hpp"
#include "afbus/match_rule.hpp"
#include "afbus/types.hpp"
#include "support/match_rule_texts.hpp"
#include "support/raw_peer.hpp"
#include "test_bus.hpp"

namespace afbus {
namespace {

// (On the unix socket in kernel mode too: an AF_BUS connection cannot eavesdrop, test_kernel_mode.)
TEST(MatchRuleReference, SameVerdictsAsTheBusDaemon) {
    test::TestBus bus;
    auto c = test::connect_over_unix(bus);
    ASSERT_TRUE(c);
    for (const char* text : test::kReferenceMatchRules) {
        auto reply = c->call(test::driver_call("AddMatch", text));
        const bool ours = static_cast<bool>(MatchRule::parse(text));
        EXPECT_EQ(ours, static_cast<bool>(reply))
            << "rule \"" << text << "\": daemon " << (reply ? "accepts" : "rejects: " + reply.error().message);
        if (!reply) {
            EXPECT_EQ(reply.error().name, error_names::kMatchRuleInvalid) << text;
        }
    }
    // Longer than 1024 bytes: refused with LimitsExceeded.
    auto reply = c->call(test::driver_call("AddMatch", "arg0='" + std::string(1100, 'x') + "'"));
    ASSERT_FALSE(reply);
    EXPECT_EQ(reply.error().name, error_names::kLimitsExceeded);
}

}  // namespace
}  // namespace afbus
