#include <gtest/gtest.h>

#include <algorithm>

#include "afbus/types.hpp"
#include "match_registry.hpp"

namespace afbus::daemon {
namespace {

MatchRule rule(std::string_view text) { return MatchRule::parse(text).value(); }

Message signal(std::string_view member, std::string arg0, std::string_view destination = "") {
    auto b = MessageBuilder::signal("/org/example", "org.example.I", member);
    b.sender(":1.9");
    if (!destination.empty()) b.destination(destination);
    append(b, arg0);
    return b.build(1).value();
}

// Peer 9 is ":1.9" and owns "org.example.Owner".
bool named(PeerId peer, std::string_view name) {
    return peer == 9 && (name == ":1.9" || name == "org.example.Owner");
}

std::vector<PeerId> recipients(const MatchRegistry& r, const Message& m, std::optional<PeerId> addressed = std::nullopt) {
    std::vector<PeerId> out;
    r.recipients(m, PeerId{9}, addressed, named, out);
    return out;
}

TEST(MatchRegistry, FindsMatchingPeersOnceEach) {
    MatchRegistry r;
    r.add(1, rule("type='signal',member='Tick'"));
    r.add(1, rule("type='signal'"));  // a second rule of the same peer: still one delivery
    r.add(2, rule("member='Tock'"));
    r.add(3, rule("arg0='k7'"));
    r.add(4, rule("sender='org.example.Owner'"));
    r.add(5, rule("sender='org.example.Other'"));
    EXPECT_EQ(recipients(r, signal("Tick", "k7")), (std::vector<PeerId>{1, 3, 4}));
    EXPECT_EQ(recipients(r, signal("Tock", "k8")), (std::vector<PeerId>{1, 2, 4}));
    EXPECT_EQ(r.total(), 6u);
}

TEST(MatchRegistry, ManyArg0RulesCostOneLookup) {
    MatchRegistry r;
    for (int i = 0; i < 10000; ++i) r.add(1, rule("type='signal',arg0='k" + std::to_string(i) + "'"));
    r.add(2, rule("type='signal',arg0='k9999'"));
    EXPECT_EQ(recipients(r, signal("Tick", "k9999")), (std::vector<PeerId>{1, 2}));
    EXPECT_EQ(recipients(r, signal("Tick", "k0")), (std::vector<PeerId>{1}));
    EXPECT_TRUE(recipients(r, signal("Tick", "nobody")).empty());
}

TEST(MatchRegistry, AddressedMessagesReachOnlyEavesdroppers) {
    MatchRegistry r;
    r.add(1, rule("type='signal'"));
    r.add(2, rule("type='signal',eavesdrop='true'"));
    r.add(3, rule("type='signal',eavesdrop='true'"));
    // Addressed to peer 3: it receives it as addressee, not through its rule; 1 does not eavesdrop.
    EXPECT_EQ(recipients(r, signal("Tick", "x", ":1.3"), PeerId{3}), (std::vector<PeerId>{2}));
}

// One peer's answer is the one recipients() gives for it.
TEST(MatchRegistry, APeerMatchesWhereItIsARecipient) {
    MatchRegistry r;
    r.add(1, rule("type='signal',member='Tick'"));
    r.add(2, rule("member='Tick',eavesdrop='true'"));
    r.add(3, rule("member='Tock'"));
    const Message broadcast = signal("Tick", "k"), addressed = signal("Tick", "k", ":1.1");
    for (PeerId peer : {1, 2, 3, 4}) {
        for (const Message* m : {&broadcast, &addressed}) {
            for (std::optional<PeerId> to : {std::optional<PeerId>(), std::optional<PeerId>(1)}) {
                if (m == &broadcast && to) continue;
                const auto all = recipients(r, *m, to);
                const bool among = std::find(all.begin(), all.end(), peer) != all.end();
                EXPECT_EQ(r.peer_matches(peer, *m, PeerId{9}, to, named), among) << "peer " << peer;
            }
        }
    }
    EXPECT_TRUE(r.peer_matches(2, addressed, PeerId{9}, PeerId{1}, named));   // eavesdropping
    EXPECT_FALSE(r.peer_matches(1, addressed, PeerId{9}, PeerId{1}, named));  // its own: not a copy
    EXPECT_FALSE(r.peer_matches(3, broadcast, PeerId{9}, std::nullopt, named));
}

TEST(MatchRegistry, RemoveTakesOneOfEqualRules) {
    MatchRegistry r;
    r.add(1, rule("arg0='a'"));
    r.add(1, rule("arg0='a'"));
    EXPECT_TRUE(r.remove(1, rule("arg0='a'")));
    EXPECT_EQ(recipients(r, signal("Tick", "a")), (std::vector<PeerId>{1}));
    EXPECT_TRUE(r.remove(1, rule("arg0='a'")));
    EXPECT_FALSE(r.remove(1, rule("arg0='a'")));
    EXPECT_TRUE(recipients(r, signal("Tick", "a")).empty());
    r.add(2, rule("member='Tick'"));
    r.add(2, rule("arg0='b'"));
    r.remove_all(2);
    EXPECT_EQ(r.total(), 0u);
    EXPECT_TRUE(recipients(r, signal("Tick", "b")).empty());
}

TEST(MatchRegistry, ReusedSlotsForgetTheirOldRules) {
    // Freed slots are reused; the indexes must point at the new rule only, with keys viewing its text.
    MatchRegistry r;
    for (int i = 0; i < 100; ++i) r.add(1, rule("arg0='old" + std::to_string(i) + "'"));
    r.add(2, rule("member='Tock',arg1='x'"));
    r.remove_all(1);
    EXPECT_EQ(r.total(), 1u);
    // Long values (past the small-string buffer) and short ones, in the slots just freed.
    for (int i = 0; i < 100; ++i)
        r.add(3, rule("arg0='new" + std::to_string(i) + (i % 2 ? "-a-value-longer-than-sixteen-bytes" : "") + "'"));
    EXPECT_TRUE(recipients(r, signal("Tick", "old5")).empty());
    EXPECT_EQ(recipients(r, signal("Tick", "new4")), (std::vector<PeerId>{3}));
    EXPECT_EQ(recipients(r, signal("Tick", "new5-a-value-longer-than-sixteen-bytes")), (std::vector<PeerId>{3}));
    EXPECT_EQ(r.count(3), 100u);
    EXPECT_TRUE(r.remove(3, rule("arg0='new4'")));
    EXPECT_TRUE(recipients(r, signal("Tick", "new4")).empty());
    EXPECT_EQ(r.rules_of(2), (std::vector<std::string>{"member='Tock',arg1='x'"}));
}

// A peer at session.conf's limit of 50,000 rules, all equal (one key), leaves: every one of its rules
// goes and nobody else's, whichever entries of the key are whose. (Each rule used to be looked for by
// its own id among the key's entries: about 10^9 steps for this peer, the bus held for seconds.)
TEST(MatchRegistry, APeerWithManyEqualRulesLeavesAndOnlyItsRulesGo) {
    MatchRegistry r;
    for (int i = 0; i < 50000; ++i) {
        r.add(1, rule("type='signal',member='Tick'"));
        r.add(1, rule("type='signal'"));
        if (i % 10000 == 0) {
            r.add(3, rule("type='signal',member='Tick'"));
            r.add(4, rule("type='signal',path='/org/example'"));
        }
    }
    EXPECT_EQ(recipients(r, signal("Tick", "x")), (std::vector<PeerId>{1, 3, 4}));
    r.remove_all(1);
    EXPECT_EQ(r.total(), 10u);
    EXPECT_EQ(r.count(1), 0u);
    EXPECT_EQ(recipients(r, signal("Tick", "x")), (std::vector<PeerId>{3, 4}));
    EXPECT_EQ(recipients(r, signal("Tock", "x")), (std::vector<PeerId>{4}));
    // The others' index entries are whole: removing them one by one finds each.
    for (int i = 0; i < 5; ++i) {
        EXPECT_TRUE(r.remove(3, rule("type='signal',member='Tick'")));
        EXPECT_TRUE(r.remove(4, rule("type='signal',path='/org/example'")));
    }
    EXPECT_EQ(r.total(), 0u);
    EXPECT_TRUE(recipients(r, signal("Tick", "x")).empty());
}

}  // namespace
}  // namespace afbus::daemon
