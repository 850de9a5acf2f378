#include "monitors.hpp"

#include <gtest/gtest.h>

namespace afbus::daemon {
namespace {

Message signal(std::string_view member) {
    return MessageBuilder::signal("/org/x", "org.x.Iface", member).build(1).value();
}

bool nobody_is_named(PeerId, std::string_view) { return false; }

std::vector<PeerId> wanting(const Monitors& m, const Message& message) {
    std::vector<PeerId> out;
    m.recipients(message, std::nullopt, std::nullopt, nobody_is_named, out);
    return out;
}

TEST(Monitors, NoRulesMeansEverythingAndOrderIsKept) {
    Monitors m;
    EXPECT_TRUE(m.empty());
    m.add(7, {});
    m.add(3, {MatchRule::parse("member='A'").value()});
    EXPECT_FALSE(m.empty());
    EXPECT_TRUE(m.contains(3));
    EXPECT_EQ(wanting(m, signal("A")), (std::vector<PeerId>{7, 3}));
    EXPECT_EQ(wanting(m, signal("B")), (std::vector<PeerId>{7}));
    m.remove(7);
    m.remove(7);  // twice is harmless
    EXPECT_EQ(wanting(m, signal("A")), (std::vector<PeerId>{3}));
    m.remove(3);
    EXPECT_TRUE(m.empty());
}

TEST(Monitors, AnyRuleOfAMonitorIsEnough) {
    Monitors m;
    m.add(1, {MatchRule::parse("member='A'").value(), MatchRule::parse("member='B'").value()});
    EXPECT_EQ(wanting(m, signal("B")), (std::vector<PeerId>{1}));
    EXPECT_TRUE(wanting(m, signal("C")).empty());
}

TEST(Monitors, SenderRulesAskWhoOwnsTheName) {
    Monitors m;
    m.add(1, {MatchRule::parse("sender='org.x.Service'").value()});
    const auto owns = [](PeerId p, std::string_view n) { return p == 5 && n == "org.x.Service"; };
    std::vector<PeerId> out;
    m.recipients(signal("A"), PeerId{5}, std::nullopt, owns, out);
    EXPECT_EQ(out, (std::vector<PeerId>{1}));
    out.clear();
    m.recipients(signal("A"), PeerId{6}, std::nullopt, owns, out);
    EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace afbus::daemon
