// test/fuzz/bus_model_seeds: a synthetic capture (messages as a monitor sees them, senders stitched in by
// the bus) becomes fuzz_bus_model's operations, with the capture's unique names renamed to the model's; and
// the fuzz target, replaying the input, delivers each call to the peer the capture delivered it to.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "afbus/types.hpp"
#include "fuzz/bus_model_seeds.hpp"
#include "fuzz/fuzz_bus_model.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***);

namespace afbus::fuzz {
namespace {

using ::testing::ElementsAre;

constexpr std::string_view kBus = "org.freedesktop.DBus";

Message hello(std::string_view sender, std::uint32_t serial = 1) {
    auto b = MessageBuilder::method_call(kBus, "/org/freedesktop/DBus", kBus, "Hello");
    b.sender(sender);
    return *b.build(serial);
}

Message driver_call(std::string_view sender, std::string_view member, std::string_view argument, std::uint32_t serial) {
    auto b = MessageBuilder::method_call(kBus, "/org/freedesktop/DBus", kBus, member);
    b.sender(sender);
    append(b, std::string(argument));
    if (member == "RequestName") append(b, std::uint32_t{0});
    return *b.build(serial);
}

Message call(std::string_view sender, std::string_view destination, std::string_view member, std::string_view argument,
             std::uint32_t serial) {
    auto b = MessageBuilder::method_call(destination, "/org/example", "org.example.I", member);
    b.sender(sender);
    append(b, std::string(argument));
    return *b.build(serial);
}

Message reply(std::string_view sender, std::string_view destination, std::uint32_t reply_serial, std::uint32_t serial) {
    auto b = MessageBuilder::method_return(destination, reply_serial);
    b.sender(sender);
    return *b.build(serial);
}

Message name_owner_changed(std::string_view name, std::string_view old_owner, std::string_view new_owner) {
    auto b = MessageBuilder::signal("/org/freedesktop/DBus", kBus, "NameOwnerChanged");
    b.sender(kBus);
    append(b, std::string(name), std::string(old_owner), std::string(new_owner));
    return *b.build(100);
}

// One operation of an input, read back the way fuzz_bus_model's step() reads it.
struct Op {
    int code;
    int peer;          // -1 for connect
    std::string what;  // send_raw: "member -> destination"
    std::vector<std::string> strings;  // send_raw: its string arguments
    friend bool operator==(const Op&, const Op&) = default;
};

std::vector<Op> ops(const std::vector<std::uint8_t>& input) {
    std::vector<Op> out;
    for (std::size_t at = 0; at < input.size();) {
        const int code = input[at++];
        if (code == 0) {
            EXPECT_EQ(input[at++], 1) << "connect as uid 1000";
            out.push_back({0, -1, "", {}});
        } else if (code == 1) {
            out.push_back({1, input[at++], "", {}});
        } else if (code == 3) {
            const int peer = input[at];
            const std::size_t length = input[at + 1] * 256u + input[at + 2];
            at += 3;
            auto m = Message::parse(std::as_bytes(std::span(input).subspan(at, length)));
            at += length;
            EXPECT_TRUE(m.has_value());
            if (!m) break;
            std::vector<std::string> strings;
            if (auto values = m->reader().read_all())
                for (const Value& v : *values)
                    if (v.type() == "s") strings.push_back(v.text());
            std::string what = m->type() == MessageType::MethodReturn ? "return" : std::string(m->member());
            out.push_back({3, peer, what + " -> " + std::string(m->destination()), strings});
        } else {
            ADD_FAILURE() << "unexpected operation " << code;
            break;
        }
    }
    return out;
}

std::vector<Message> capture_of_a_call() {
    std::vector<Message> capture;
    capture.push_back(hello(":1.7"));
    capture.push_back(reply(kBus, ":1.7", 1, 1));  // the bus's own messages are the model's to make
    capture.push_back(hello(":1.9"));
    capture.push_back(driver_call(":1.7", "RequestName", "org.example.Service", 2));
    capture.push_back(call(":1.9", ":1.7", "Echo", ":1.9", 2));
    capture.push_back(reply(":1.7", ":1.9", 2, 3));
    capture.push_back(driver_call(":1.9", "AddMatch", "type='signal',sender=':1.7'", 3));
    capture.push_back(call(":1.9", "org.example.Service", "Other", "x", 4));
    capture.push_back(name_owner_changed(":1.7", ":1.7", ""));
    return capture;
}

TEST(BusModelSeeds, ClientMessagesBecomeOperationsWithTheModelsNames) {
    const BusModelSeeds seeds = bus_model_seeds(capture_of_a_call());
    ASSERT_EQ(seeds.inputs.size(), 1u);
    EXPECT_EQ(seeds.messages_used, 7u);
    // The bytes of the first operations: connect as uid 1000, then peer 0's Hello.
    ASSERT_GE(seeds.inputs[0].size(), 4u);
    EXPECT_THAT(std::vector<std::uint8_t>(seeds.inputs[0].begin(), seeds.inputs[0].begin() + 4), ElementsAre(0, 1, 3, 0));
    // :1.7 said Hello first, so it is the model's :1.0; :1.9 is :1.1.
    EXPECT_THAT(ops(seeds.inputs[0]),
                ElementsAre(Op{0, -1, "", {}}, Op{3, 0, "Hello -> org.freedesktop.DBus", {}}, Op{0, -1, "", {}},
                            Op{3, 1, "Hello -> org.freedesktop.DBus", {}},
                            Op{3, 0, "RequestName -> org.freedesktop.DBus", {"org.example.Service"}},
                            Op{3, 1, "Echo -> :1.0", {":1.1"}}, Op{3, 0, "return -> :1.1", {}},
                            Op{3, 1, "AddMatch -> org.freedesktop.DBus", {"type='signal',sender=':1.0'"}},
                            Op{3, 1, "Other -> org.example.Service", {"x"}}, Op{1, 0, "", {}}));
}

TEST(BusModelSeeds, NamesInMatchRulesAreRenamedOnce) {
    // :1.2 becomes :1.5, which is itself a capture name that becomes :1.0: a rule naming both must not
    // end up naming :1.0 twice.
    const std::map<std::string, std::string> names{{":1.2", ":1.5"}, {":1.5", ":1.0"}};
    auto wire = rename_unique_names(driver_call(":1.2", "AddMatch", "sender=':1.2',destination=':1.5',arg0=':1.50'", 7),
                                    names);
    ASSERT_TRUE(wire.has_value());
    auto renamed = Message::parse(*wire);
    ASSERT_TRUE(renamed.has_value());
    EXPECT_EQ(renamed->sender(), ":1.5");
    EXPECT_EQ(renamed->serial(), 7u);
    auto rule = read_all<std::string>(*renamed);
    ASSERT_TRUE(rule.has_value());
    EXPECT_EQ(std::get<0>(*rule), "sender=':1.5',destination=':1.0',arg0=':1.50'");
}

TEST(BusModelSeeds, ALongCaptureIsSplitAndEachInputSaysHelloFirst) {
    std::vector<Message> capture;
    for (int client = 0; client < 3; ++client) capture.push_back(hello(":1." + std::to_string(10 + client)));
    capture.push_back(call(":1.12", ":1.10", "Ping", "", 2));
    capture.push_back(call(":1.10", ":1.12", "Ping", "", 2));
    const BusModelSeeds seeds = bus_model_seeds(capture, {.max_steps = 250, .max_peers = 2});
    ASSERT_EQ(seeds.inputs.size(), 2u);
    EXPECT_THAT(ops(seeds.inputs[0]),
                ElementsAre(Op{0, -1, "", {}}, Op{3, 0, "Hello -> org.freedesktop.DBus", {}}, Op{0, -1, "", {}},
                            Op{3, 1, "Hello -> org.freedesktop.DBus", {}}));
    // :1.12 starts the second input; :1.10, whose Hello was in the first, joins it (saying Hello again)
    // before the call addressed to it. Names are this input's.
    EXPECT_THAT(ops(seeds.inputs[1]),
                ElementsAre(Op{0, -1, "", {}}, Op{3, 0, "Hello -> org.freedesktop.DBus", {}}, Op{0, -1, "", {}},
                            Op{3, 1, "Hello -> org.freedesktop.DBus", {}}, Op{3, 0, "Ping -> :1.1", {""}},
                            Op{3, 1, "Ping -> :1.0", {""}}));
    for (const auto& input : seeds.inputs) EXPECT_LE(ops(input).size(), 250u);
}

TEST(BusModelSeeds, AServiceThatJoinsALaterInputAsksForItsNameThereAgain) {
    std::vector<Message> capture;
    capture.push_back(hello(":1.10"));
    capture.push_back(driver_call(":1.10", "RequestName", "org.example.Service", 2));
    capture.push_back(name_owner_changed("org.example.Service", "", ":1.10"));
    capture.push_back(driver_call(":1.10", "AddMatch", "type='signal'", 3));
    capture.push_back(hello(":1.11"));
    capture.push_back(hello(":1.12"));
    capture.push_back(call(":1.12", "org.example.Service", "Other", "", 2));
    const BusModelSeeds seeds = bus_model_seeds(capture, {.max_steps = 250, .max_peers = 2});
    ASSERT_EQ(seeds.inputs.size(), 2u);
    // The call by well-known name brings in its owner, with what it did in the first input.
    EXPECT_THAT(ops(seeds.inputs[1]),
                ElementsAre(Op{0, -1, "", {}}, Op{3, 0, "Hello -> org.freedesktop.DBus", {}}, Op{0, -1, "", {}},
                            Op{3, 1, "Hello -> org.freedesktop.DBus", {}},
                            Op{3, 1, "RequestName -> org.freedesktop.DBus", {"org.example.Service"}},
                            Op{3, 1, "AddMatch -> org.freedesktop.DBus", {"type='signal'"}},
                            Op{3, 0, "Other -> org.example.Service", {""}}));
}

TEST(BusModelSeeds, TheFuzzTargetDeliversConvertedCallsToTheIntendedPeers) {
    LLVMFuzzerInitialize(nullptr, nullptr);
    struct Delivery {
        std::size_t peer;
        std::string what;
        std::string sender;
    };
    std::vector<Delivery> deliveries;
    set_bus_model_delivery_trace([&](std::size_t peer, const Message& m) {
        if (m.sender() != kBus) deliveries.push_back({peer, std::string(m.member()), std::string(m.sender())});
    });
    const BusModelSeeds seeds = bus_model_seeds(capture_of_a_call());
    ASSERT_EQ(seeds.inputs.size(), 1u);
    LLVMFuzzerTestOneInput(seeds.inputs[0].data(), seeds.inputs[0].size());
    set_bus_model_delivery_trace({});
    std::vector<std::string> seen;
    for (const auto& d : deliveries) seen.push_back(std::to_string(d.peer) + " " + d.what + " from " + d.sender);
    // The call by unique name and the one by well-known name reach the service (peer 0), its reply the
    // caller (peer 1).
    EXPECT_THAT(seen, ElementsAre("0 Echo from :1.1", "1  from :1.0", "0 Other from :1.1"));
}

}  // namespace
}  // namespace afbus::fuzz
