// AfBusRouting and NameAddressCache: which address each message of an AF_BUS client goes to, and which
// received messages are the master's NameAddress notifications (docs/sasl-and-addresses.md, "afbus:
// addresses").
#include <gtest/gtest.h>

#include <string>

#include "afbus/types.hpp"
#include "client/af_bus_routing.hpp"

namespace afbus::detail {
namespace {

constexpr std::uint64_t kPeer = 0x0000000000000005ULL;       // a unique address (prefix 0)
constexpr std::uint64_t kWellKnown = 0x0001000000000002ULL;  // a name's address (prefix 1)
constexpr std::uint64_t kSelf = 0x0000000000000007ULL;

Message call_to(std::string_view destination) {
    auto m = MessageBuilder::method_call(destination, "/p", "org.example.I", "M").build(1);
    EXPECT_TRUE(m);
    return std::move(*m);
}

Message name_address(std::string_view name, std::uint64_t address,
                     std::string_view sender = "org.freedesktop.DBus",
                     std::string_view interface = "org.afbus.Kernel") {
    auto b = MessageBuilder::signal("/org/freedesktop/DBus", interface, "NameAddress");
    b.sender(sender).destination(":1.7");
    append(b, std::string(name), address);
    auto m = b.build(3);
    EXPECT_TRUE(m);
    return std::move(*m);
}

AfBusRouting joined_routing() {
    AfBusRouting r;
    r.joined(":1.7", kSelf);
    return r;
}

TEST(AfBusRouting, EverythingGoesToTheMasterBeforeHello) {
    AfBusRouting r;
    ASSERT_TRUE(r.absorb(name_address("org.example.Peer", kWellKnown), AfBusRouting::kMaster));
    EXPECT_EQ(r.destination_for(call_to("org.freedesktop.DBus")), AfBusRouting::kMaster);
    EXPECT_EQ(r.destination_for(call_to("org.example.Peer")), AfBusRouting::kMaster);
    auto signal = MessageBuilder::signal("/p", "org.example.I", "S").build(1);
    ASSERT_TRUE(signal);
    EXPECT_EQ(r.destination_for(*signal), AfBusRouting::kMaster);
}

TEST(AfBusRouting, DriverAndUnknownNamesGoToTheMaster) {
    const AfBusRouting r = joined_routing();
    EXPECT_EQ(r.destination_for(call_to("org.freedesktop.DBus")), AfBusRouting::kMaster);
    EXPECT_EQ(r.destination_for(call_to("org.example.Unknown")), AfBusRouting::kMaster);
    EXPECT_EQ(r.destination_for(call_to(":1.99")), AfBusRouting::kMaster);
}

TEST(AfBusRouting, AForwardedMessageFencesUntilItsNoticeIsRead) {
    AfBusRouting r = joined_routing();
    // The bus's own calls, broadcasts and direct sends take no detour: no fence.
    r.sending(call_to("org.freedesktop.DBus"), AfBusRouting::kMaster);
    auto signal = MessageBuilder::signal("/p", "org.example.I", "S").build(1);
    ASSERT_TRUE(signal);
    r.sending(*signal, AfBusRouting::kBroadcast);
    ASSERT_TRUE(r.absorb(name_address("org.example.Peer", kWellKnown), AfBusRouting::kMaster));
    r.sending(call_to("org.example.Peer"), kWellKnown);
    EXPECT_FALSE(r.fenced());
    // Two forwarded messages: two notices, one each, in order; address 0 only closes the fence.
    r.sending(call_to("org.example.Unknown"), AfBusRouting::kMaster);
    r.sending(call_to(":1.99"), AfBusRouting::kMaster);
    EXPECT_TRUE(r.fenced());
    ASSERT_TRUE(r.absorb(name_address("org.example.Unknown", 0), AfBusRouting::kMaster));
    EXPECT_TRUE(r.fenced());
    EXPECT_EQ(r.destination_for(call_to("org.example.Unknown")), AfBusRouting::kMaster);
    ASSERT_TRUE(r.absorb(name_address(":1.99", kPeer), AfBusRouting::kMaster));
    EXPECT_FALSE(r.fenced());
    EXPECT_EQ(r.destination_for(call_to(":1.99")), kPeer);
    // A notice nobody waits for (the cache was dropped meanwhile) changes nothing.
    ASSERT_TRUE(r.absorb(name_address(":1.98", kPeer), AfBusRouting::kMaster));
    EXPECT_FALSE(r.fenced());
}

TEST(AfBusRouting, ClientsAreAnsweredWhereTheirMessagesCameFrom) {
    AfBusRouting r = joined_routing();
    // A call from a client, straight through the kernel: its source is where it lives.
    auto call = MessageBuilder::method_call(":1.7", "/p", "org.example.I", "M").sender(":1.42").build(5).value();
    EXPECT_FALSE(r.absorb(call, kPeer));
    EXPECT_EQ(r.destination_for(call_to(":1.42")), kPeer);
    // The master's copies (source 0) and multicast sources teach nothing.
    auto forwarded = MessageBuilder::method_call(":1.7", "/p", "org.example.I", "M").sender(":1.43").build(6).value();
    EXPECT_FALSE(r.absorb(forwarded, AfBusRouting::kMaster));
    EXPECT_EQ(r.destination_for(call_to(":1.43")), AfBusRouting::kMaster);
    // PeerAddress, told before a forwarded call, informs and opens or closes no fence.
    r.sending(call_to("org.example.Unknown"), AfBusRouting::kMaster);
    auto hint = MessageBuilder::signal("/org/freedesktop/DBus", "org.afbus.Kernel", "PeerAddress");
    hint.sender("org.freedesktop.DBus").destination(":1.7");
    append(hint, std::string(":1.43"), kPeer + 1);
    EXPECT_TRUE(r.absorb(hint.build(7).value(), AfBusRouting::kMaster));
    EXPECT_TRUE(r.fenced());
    EXPECT_EQ(r.destination_for(call_to(":1.43")), kPeer + 1);
}

TEST(AfBusRouting, BroadcastSignalsGoToEveryone) {
    const AfBusRouting r = joined_routing();
    auto signal = MessageBuilder::signal("/p", "org.example.I", "S").build(1);
    ASSERT_TRUE(signal);
    EXPECT_EQ(r.destination_for(*signal), 0x0000ffffffffffffULL);
    // A unicast signal is a unicast.
    auto b = MessageBuilder::signal("/p", "org.example.I", "S");
    b.destination("org.example.Unknown");
    auto unicast = b.build(1);
    ASSERT_TRUE(unicast);
    EXPECT_EQ(r.destination_for(*unicast), AfBusRouting::kMaster);
}

TEST(AfBusRouting, OwnUniqueNameGoesToOwnAddress) {
    const AfBusRouting r = joined_routing();
    EXPECT_EQ(r.destination_for(call_to(":1.7")), kSelf);
    AfBusRouting unknown_self;
    unknown_self.joined(":1.7", std::nullopt);
    EXPECT_EQ(unknown_self.destination_for(call_to(":1.7")), AfBusRouting::kMaster);
}

TEST(AfBusRouting, NameAddressIsAbsorbedAndRoutesTheNextMessage) {
    AfBusRouting r = joined_routing();
    EXPECT_TRUE(r.absorb(name_address("org.example.Peer", kWellKnown), AfBusRouting::kMaster));
    EXPECT_TRUE(r.absorb(name_address(":1.5", kPeer), AfBusRouting::kMaster));
    EXPECT_EQ(r.destination_for(call_to("org.example.Peer")), kWellKnown);
    EXPECT_EQ(r.destination_for(call_to(":1.5")), kPeer);
    // A newer notification replaces the entry (the name moved).
    EXPECT_TRUE(r.absorb(name_address("org.example.Peer", 0x0001000000000009ULL), AfBusRouting::kMaster));
    EXPECT_EQ(r.destination_for(call_to("org.example.Peer")), 0x0001000000000009ULL);
}

TEST(AfBusRouting, LookAlikesFromOthersAreOrdinaryMessages) {
    AfBusRouting r = joined_routing();
    // Not from address 0.
    EXPECT_FALSE(r.absorb(name_address("org.example.Peer", kWellKnown), kPeer));
    // No source known.
    EXPECT_FALSE(r.absorb(name_address("org.example.Peer", kWellKnown), std::nullopt));
    // Another sender, another interface.
    EXPECT_FALSE(r.absorb(name_address("org.example.Peer", kWellKnown, ":1.5"), AfBusRouting::kMaster));
    EXPECT_FALSE(
        r.absorb(name_address("org.example.Peer", kWellKnown, "org.freedesktop.DBus", "org.example.Kernel"),
                 AfBusRouting::kMaster));
    EXPECT_EQ(r.destination_for(call_to("org.example.Peer")), AfBusRouting::kMaster);
    // Other messages from the master are the application's.
    auto b = MessageBuilder::signal("/org/freedesktop/DBus", "org.freedesktop.DBus", "NameAcquired");
    b.sender("org.freedesktop.DBus");
    append(b, std::string(":1.7"));
    auto acquired = b.build(4);
    ASSERT_TRUE(acquired);
    EXPECT_FALSE(r.absorb(*acquired, AfBusRouting::kMaster));
}

TEST(AfBusRouting, UselessNotificationsAreSwallowedButNotStored) {
    AfBusRouting r = joined_routing();
    // The master's or a multicast address would misroute unicasts; an invalid name is nobody's.
    EXPECT_TRUE(r.absorb(name_address("org.example.A", 0), AfBusRouting::kMaster));
    EXPECT_TRUE(r.absorb(name_address("org.example.B", 0x0001ffffffffffffULL), AfBusRouting::kMaster));
    EXPECT_TRUE(r.absorb(name_address("not a name", kPeer), AfBusRouting::kMaster));
    EXPECT_TRUE(r.absorb(name_address("org.freedesktop.DBus", kPeer), AfBusRouting::kMaster));
    // Wrong signature.
    auto b = MessageBuilder::signal("/org/freedesktop/DBus", "org.afbus.Kernel", "NameAddress");
    b.sender("org.freedesktop.DBus");
    append(b, std::string("org.example.C"));
    auto m = b.build(5);
    ASSERT_TRUE(m);
    EXPECT_TRUE(r.absorb(*m, AfBusRouting::kMaster));
    EXPECT_EQ(r.cache().size(), 0u);
    EXPECT_EQ(r.destination_for(call_to("org.example.A")), AfBusRouting::kMaster);
    EXPECT_EQ(r.destination_for(call_to("org.example.B")), AfBusRouting::kMaster);
}

TEST(NameAddressCache, IsBoundedByDroppingEverything) {
    NameAddressCache cache;
    for (std::size_t i = 0; i < NameAddressCache::kMaxEntries; ++i)
        cache.store("org.example.N" + std::to_string(i), i + 1);
    EXPECT_EQ(cache.size(), NameAddressCache::kMaxEntries);
    EXPECT_EQ(cache.find("org.example.N0"), std::optional<std::uint64_t>(1));
    // Updating an entry does not grow it.
    cache.store("org.example.N0", 77);
    EXPECT_EQ(cache.size(), NameAddressCache::kMaxEntries);
    EXPECT_EQ(cache.find("org.example.N0"), std::optional<std::uint64_t>(77));
    // One more name: the cache starts over with it.
    cache.store("org.example.New", 5);
    EXPECT_EQ(cache.size(), 1u);
    EXPECT_FALSE(cache.find("org.example.N0"));
    EXPECT_EQ(cache.find("org.example.New"), std::optional<std::uint64_t>(5));
}

}  // namespace
}  // namespace afbus::detail
