#include "flow_control.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>

#include "afbus/types.hpp"
#include "peer.hpp"

namespace afbus::daemon {
namespace {

Message call_with_bytes(std::size_t n) {
    auto b = MessageBuilder::method_call("org.x", "/x", "org.x", "M");
    append(b, std::string(n, 'x'));
    return b.build(1).value();
}

TEST(FlowControl, AChargeLastsAsLongAsTheMessage) {
    auto load = std::make_shared<IncomingLoad>();
    PeerStats stats;
    auto message = call_with_bytes(100);
    const std::size_t size = message.size();
    auto charged = FlowControl::charge(load, stats, std::move(message));
    auto second_holder = charged;
    EXPECT_EQ(load->messages, 1u);
    EXPECT_EQ(load->bytes, size);
    EXPECT_EQ(stats.peak_incoming_bytes, size);
    charged.reset();
    EXPECT_EQ(load->bytes, size);  // still held by another queue
    second_holder.reset();
    EXPECT_EQ(load->messages, 0u);
    EXPECT_EQ(load->bytes, 0u);
    EXPECT_EQ(stats.peak_incoming_bytes, size);  // the peak stays
}

TEST(FlowControl, IncomingLimitsPauseTheSender) {
    Limits limits;
    limits.max_incoming_bytes = 1000;
    limits.max_incoming_unix_fds = 2;
    FlowControl flow(limits);
    EXPECT_FALSE(flow.over_incoming(IncomingLoad{1, 999, 1}));
    EXPECT_TRUE(flow.over_incoming(IncomingLoad{1, 1000, 0}));
    EXPECT_TRUE(flow.over_incoming(IncomingLoad{1, 0, 2}));
}

TEST(FlowControl, OutgoingLimitsNameTheLimit) {
    Limits limits;
    const auto message = call_with_bytes(100);
    limits.max_outgoing_bytes = static_cast<std::int64_t>(message.size()) + 10;
    limits.max_outgoing_unix_fds = 0;
    FlowControl flow(limits);
    EXPECT_EQ(flow.outgoing_exceeded(QueueLoad{}, message), nullptr);
    EXPECT_STREQ(flow.outgoing_exceeded(QueueLoad{1, 11, 0}, message), "max_outgoing_bytes");
}

TEST(FlowControl, PerMessageLimits) {
    Limits limits;
    const auto message = call_with_bytes(100);
    limits.max_message_size = static_cast<std::int64_t>(message.size());
    FlowControl flow(limits);
    EXPECT_EQ(flow.message_exceeds(message), nullptr);
    limits.max_message_size -= 1;
    EXPECT_STREQ(flow.message_exceeds(message), "max_message_size");

    auto b = MessageBuilder::method_call("org.x", "/x", "org.x", "M");
    for (int i = 0; i < 3; ++i) b.add_fd(Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC)));
    const auto with_fds = b.build(2).value();
    limits.max_message_unix_fds = 3;
    EXPECT_EQ(flow.message_exceeds(with_fds), nullptr);
    limits.max_message_unix_fds = 2;
    EXPECT_STREQ(flow.message_exceeds(with_fds), "max_message_unix_fds");
}

}  // namespace
}  // namespace afbus::daemon
