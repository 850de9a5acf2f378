// Bus behaviour that clients rely on, checked the same way against dbus-daemon and afbus-daemon
// (AFBUS_TEST_DAEMON): signal order, NoReply texts, unrequested replies, Hello first, bad senders.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "afbus/connection.hpp"
#include "afbus/match_rule.hpp"
#include "afbus/types.hpp"
#include "support/pump.hpp"
#include "support/raw_peer.hpp"
#include "test_bus.hpp"

namespace afbus {
namespace {

using namespace std::chrono_literals;
using test::closed_by_bus;
using test::connect;
using test::driver_call;
using test::raw_connection;
using test::read_reply;
using test::send_all;
using test::send_message;
using test::stats_call;
using test::TestBus;

Message call(std::string_view dest, std::string_view member) {
    return MessageBuilder::method_call(dest, "/org/example", "org.example.I", member).build().value();
}

TEST(BusSemantics, NameAcquiredArrivesBeforeTheRequestNameReply) {
    TestBus bus;
    auto c = connect(bus);
    ASSERT_TRUE(c);
    std::vector<std::string> acquired;
    auto sub = c->subscribe("type='signal',sender='org.freedesktop.DBus',member='NameAcquired'",
                            [&acquired](const Message& m) { acquired.push_back(std::get<0>(*read_all<std::string>(m))); });
    ASSERT_TRUE(sub);
    ASSERT_EQ(*c->request_name("org.example.Order"), RequestNameReply::PrimaryOwner);
    // No waiting: the signal must already have been read together with (before) the reply.
    ASSERT_TRUE(c->process());
    EXPECT_NE(std::find(acquired.begin(), acquired.end(), "org.example.Order"), acquired.end());
}

TEST(BusSemantics, OwnerChangesAreBroadcast) {
    TestBus bus;
    auto watcher = connect(bus);
    auto a = connect(bus);
    auto b = connect(bus);
    ASSERT_TRUE(watcher && a && b);
    std::vector<std::tuple<std::string, std::string, std::string>> changes;
    auto sub = watcher->subscribe("type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',arg0='org.example.Moving'",
                                  [&changes](const Message& m) { changes.push_back(*read_all<std::string, std::string, std::string>(m)); });
    ASSERT_TRUE(sub);
    ASSERT_EQ(*a->request_name("org.example.Moving"), RequestNameReply::PrimaryOwner);
    ASSERT_EQ(*b->request_name("org.example.Moving"), RequestNameReply::InQueue);
    const std::string a_name = a->unique_name(), b_name = b->unique_name();
    a.reset();  // disconnecting passes the name to the queue
    ASSERT_TRUE(*watcher->run_until([&] { return changes.size() == 2; }, 10s));
    EXPECT_EQ(changes[0], std::make_tuple(std::string("org.example.Moving"), std::string(), a_name));
    EXPECT_EQ(changes[1], std::make_tuple(std::string("org.example.Moving"), a_name, b_name));
}

// A call waiting, undispatched, in a callee that will never answer it. The callee never processes its
// input (libafbus would answer UnknownObject). Owning a name first drains everything the bus sends a new
// connection (the reply to RequestName comes after NameAcquired), so the next thing in its socket is the
// call.
class UnansweredCall : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(caller && callee);
        ASSERT_EQ(*callee->request_name("org.example.Callee"), RequestNameReply::PrimaryOwner);
        ASSERT_TRUE(callee->process());
        slot = caller->call_async(call("org.example.Callee", "NeverAnswered"),
                                  [this](Expected<Message, Error> r) { result = std::move(r); }, 30s);
        ASSERT_TRUE(slot);
        pollfd p{callee->fd(), POLLIN, 0};
        ASSERT_EQ(::poll(&p, 1, 10000), 1);
    }
    // The caller's answer, once the bus gave it.
    const Expected<Message, Error>& answer() {
        EXPECT_TRUE(*caller->run_until([this] { return result.has_value(); }, 10s));
        if (!result) result = Unexpected(Error{"test.Timeout", "no answer"});
        return *result;
    }

    TestBus bus;
    std::unique_ptr<Connection> caller = connect(bus);
    std::unique_ptr<Connection> callee = connect(bus);
    std::optional<Expected<Message, Error>> result;
    Expected<Slot, Error> slot = Slot{};
};

TEST_F(UnansweredCall, NoReplyWhenTheCalleeDisconnects) {
    callee.reset();
    ASSERT_FALSE(answer());
    EXPECT_EQ(answer().error().name, error_names::kNoReply);
    EXPECT_EQ(answer().error().message, "Message recipient disconnected from message bus without replying");
}

// A monitor may not send, so it cannot answer what it was called with before: the bus answers its
// callers NoReply at once (dbus-daemon expires those calls when the connection becomes a monitor).
TEST_F(UnansweredCall, NoReplyWhenTheCalleeBecomesAMonitor) {
    if (callee->transport() == "afbus") GTEST_SKIP() << "libafbus has no BecomeMonitor on AF_BUS (docs/kernel-mode.md)";
    // The call waits, undispatched, in the callee while it becomes a monitor (call() never dispatches).
    ASSERT_TRUE(callee->become_monitor({}, [](const Message&) {}));
    ASSERT_FALSE(answer());
    EXPECT_EQ(answer().error().name, error_names::kNoReply);
}

TEST(BusSemantics, NoReplyAfterTheBusReplyTimeout) {
    TestBus bus("<limit name=\"reply_timeout\">300</limit>\n");
    auto caller = connect(bus);
    auto callee = connect(bus);
    ASSERT_TRUE(caller && callee);
    auto r = caller->call(call(callee->unique_name(), "Slow"), 10s);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().name, error_names::kNoReply);
    EXPECT_EQ(r.error().message, "Message did not receive a reply (timeout by message bus)");
}

// dbus-daemon leaves unrequested replies to its policy, and session.conf lets them through; afbus drops
// them whatever the policy, as dbus-broker does (docs/daemon.md).
TEST(BusSemantics, UnrequestedReplies) {
    const bool afbus = std::getenv("AFBUS_TEST_DAEMON") != nullptr;
    TestBus bus;
    auto a = connect(bus);
    auto b = connect(bus);
    ASSERT_TRUE(a && b);
    std::vector<std::uint32_t> stray;
    auto sub = a->subscribe("type='method_return'", [&stray](const Message& m) { stray.push_back(m.reply_serial().value_or(0)); });
    ASSERT_TRUE(sub);
    // b answers a call a never made.
    auto bogus = MessageBuilder::method_return(a->unique_name(), 4242);
    ASSERT_TRUE(b->send(bogus.build().value()));
    // A round trip from b to a afterwards proves the bogus reply had its chance to arrive.
    auto ping = MessageBuilder::signal("/org/example", "org.example.I", "Marker");
    ping.destination(a->unique_name());
    bool marker = false;
    auto marker_sub = a->subscribe("type='signal',member='Marker'", [&marker](const Message&) { marker = true; });
    ASSERT_TRUE(b->send(ping.build().value()));
    // Both served: over AF_BUS, b's library holds the marker until the bus has routed the bogus reply.
    ASSERT_TRUE(test::pump({a.get(), b.get()}, [&] { return marker; }));
    const bool delivered = std::find(stray.begin(), stray.end(), 4242u) != stray.end();
    EXPECT_EQ(delivered, !afbus);
}

// Before Hello, a call to the bus gets AccessDenied (and the connection stays); a message for anyone
// else disconnects the sender.
TEST(BusSemantics, HelloMustComeFirst) {
    TestBus bus;
    Fd fd = raw_connection(bus);
    send_message(fd, driver_call("ListNames"), 1);
    std::vector<Message> before;
    auto reply = read_reply(fd, 1, &before);
    ASSERT_TRUE(reply);
    EXPECT_TRUE(before.empty()) << "the bus sent something else first";
    EXPECT_EQ(reply->type(), MessageType::Error);
    EXPECT_EQ(reply->error_name(), error_names::kAccessDenied);
    EXPECT_EQ(reply->reply_serial(), 1u);
    EXPECT_EQ(reply->destination(), ":not.active.yet");
    EXPECT_EQ(std::get<0>(*read_all<std::string>(*reply)),
              "Client tried to send a message other than Hello without being registered");

    send_message(fd, call("org.example.Anyone", "M"), 2);
    EXPECT_TRUE(closed_by_bus(fd));
}

TEST(BusSemantics, AMalformedMessageDisconnectsOnlyItsSender) {
    TestBus bus;
    auto bystander = connect(bus);
    ASSERT_TRUE(bystander);
    Fd fd = raw_connection(bus);
    send_message(fd, driver_call("Hello"), 1);
    auto bad = call("org.example.Anyone", "M");
    bad.set_serial(2);
    auto wire = bad.wire();
    wire[3] = std::byte{9};  // protocol version 9
    send_all(fd, wire);
    EXPECT_TRUE(closed_by_bus(fd));
    EXPECT_TRUE(bystander->call(driver_call("ListNames")));
}

}  // namespace
}  // namespace afbus

namespace afbus {
namespace {

TEST(BusSemantics, DebugStatsCountsRulesAndNames) {
    TestBus bus;
    auto c = connect(bus);
    ASSERT_TRUE(c);
    auto sub = c->subscribe("type='signal',member='Counted'", [](const Message&) {});
    ASSERT_TRUE(sub);
    ASSERT_EQ(*c->request_name("org.example.Counted"), RequestNameReply::PrimaryOwner);
    auto reply = c->call(stats_call("GetConnectionStats", c->unique_name()));
    ASSERT_TRUE(reply) << reply.error().message;
    auto map = std::get<0>(*read_all<std::map<std::string, Variant>>(*reply));
    EXPECT_EQ(*map.at("UniqueName").get<std::string>(), c->unique_name());
    EXPECT_EQ(*map.at("MatchRules").get<std::uint32_t>(), 1u);
    auto rules = c->call(stats_call("GetAllMatchRules"));
    ASSERT_TRUE(rules);
    auto all = std::get<0>(*read_all<std::map<std::string, std::vector<std::string>>>(*rules));
    ASSERT_EQ(all.count(c->unique_name()), 1u);
    ASSERT_EQ(all[c->unique_name()].size(), 1u);
    EXPECT_EQ(MatchRule::parse(all[c->unique_name()][0]).value(), MatchRule::parse("type='signal',member='Counted'").value());
}

}  // namespace
}  // namespace afbus

namespace afbus {
namespace {

// An eavesdropping libafbus client sees calls addressed to others and must not answer them (it used to
// reply UnknownObject in the callee's place; dbus-daemon delivers such a reply under session.conf). In
// kernel mode it eavesdrops on the unix socket (AF_BUS connections cannot: test_kernel_mode).
TEST(BusSemantics, EavesdroppersDoNotAnswerOthersCalls) {
    TestBus bus;
    auto caller = connect(bus);
    auto callee = connect(bus);
    auto eavesdropper = test::connect_over_unix(bus);
    ASSERT_TRUE(caller && callee && eavesdropper);
    ASSERT_EQ(*callee->request_name("org.example.Quiet"), RequestNameReply::PrimaryOwner);
    bool seen = false;
    auto sub = eavesdropper->subscribe("type='method_call',member='Whisper',eavesdrop='true'",
                                       [&seen](const Message&) { seen = true; });
    ASSERT_TRUE(sub);
    std::optional<Expected<Message, Error>> result;
    auto slot = caller->call_async(call("org.example.Quiet", "Whisper"),
                                   [&result](Expected<Message, Error> r) { result = std::move(r); }, 500ms);
    ASSERT_TRUE(slot);
    ASSERT_TRUE(*eavesdropper->run_until([&] { return seen; }, 10s));
    // The callee never processes; the only possible answer is the client-side timeout.
    ASSERT_TRUE(*caller->run_until([&] { return result.has_value(); }, 10s));
    ASSERT_FALSE(*result);
    EXPECT_EQ(result->error().name, error_names::kNoReply);
}

}  // namespace
}  // namespace afbus

namespace afbus {
namespace {

// One number of the bus's Debug.Stats GetConnectionStats for `name`, asked by `asker`; nullopt where the
// bus has no such entry (dbus-daemon has no DroppedMessages).
std::optional<std::uint32_t> connection_stat(Connection& asker, const std::string& name, const std::string& key) {
    auto stats = asker.call(stats_call("GetConnectionStats", name));
    EXPECT_TRUE(stats) << name;
    if (!stats) return std::nullopt;
    auto map = std::get<0>(*read_all<std::map<std::string, Variant>>(*stats));
    if (!map.count(key)) return std::nullopt;
    return *map.at(key).get<std::uint32_t>();
}

// max_incoming_bytes: a sender whose messages pile up in a slow reader's queue is no longer read from
// until they drain (dbus-daemon's throttling); everyone else is served meanwhile.
TEST(BusSemantics, ASenderToASlowReaderIsHeldBackOthersAreNot) {
    TestBus bus("<limit name=\"max_incoming_bytes\">65536</limit>\n");
    auto sender = connect(bus);
    auto reader = connect(bus);
    auto bystander = connect(bus);
    ASSERT_TRUE(sender && reader && bystander);
    ASSERT_EQ(*reader->request_name("org.example.Slow"), RequestNameReply::PrimaryOwner);
    ASSERT_TRUE(reader->process());
    // 4 MiB of unicast signals: far more than the reader's socket buffer holds, so most of it stays in
    // the bus, charged to the sender.
    constexpr int kSignals = 1024;
    const std::string payload(4096, 'x');
    for (int i = 0; i < kSignals; ++i) {
        auto signal = MessageBuilder::signal("/org/example", "org.example.I", "Flood");
        signal.destination("org.example.Slow");
        append(signal, payload);
        ASSERT_TRUE(sender->send(signal.build().value()));
    }
    std::optional<Expected<Message, Error>> answer;
    auto slot = sender->call_async(driver_call("GetId"), [&answer](Expected<Message, Error> r) { answer = std::move(r); });
    ASSERT_TRUE(slot);
    // The bystander is answered at once, while the sender's call waits behind the flood.
    EXPECT_TRUE(bystander->call(driver_call("GetId"), 10s));
    ASSERT_TRUE(sender->process());
    EXPECT_FALSE(answer.has_value());

    int received = 0;
    auto sub = reader->subscribe("type='signal',member='Flood'", [&received](const Message&) { ++received; });
    ASSERT_TRUE(sub);
    // Once the reader drains its queue, the sender is read again, the rest of its flood gets through and
    // its call is answered.
    ASSERT_TRUE(test::pump({sender.get(), reader.get()}, [&] { return received == kSignals; }, 60s));
    const bool answered = test::pump({sender.get(), reader.get()}, [&] { return answer.has_value(); }, 10s);
    // dbus-daemon 1.14 now and then (1 to 3 runs in 100 here) reads the call while the sender is still
    // held back and then leaves it unanswered until the sender writes again: all sockets are empty, the
    // call sits in the daemon. afbus-daemon looks at what it has read once the sender is let go.
    if (!answered && test::skip_known_stall()) GTEST_SKIP() << "dbus-daemon left the sender's call unanswered";
    ASSERT_TRUE(answered);
    EXPECT_TRUE(*answer);
}

// pending_fd_timeout: fds sent with the first bytes of a message that never completes are not held
// forever; the sender is disconnected (dbus-daemon's fix for CVE-2014-3636).
TEST(BusSemantics, FdsOfAnIncompleteMessageAreHeldOnlyForPendingFdTimeout) {
    TestBus bus("<limit name=\"pending_fd_timeout\">300</limit>\n");
    auto bystander = connect(bus);
    ASSERT_TRUE(bystander);
    Fd fd = raw_connection(bus, true);
    send_message(fd, driver_call("Hello"), 1);
    // Hello's reply proves the bus is past authentication and its fd negotiation: fds sent earlier
    // could arrive while it still reads the SASL lines, which carry none.
    ASSERT_TRUE(read_reply(fd, 1));

    auto builder = MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId");
    Fd dev_null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(dev_null);
    builder.add_fd(dev_null);
    auto message = builder.build().value();
    message.set_serial(2);
    const auto wire = message.wire();
    // The header and one fd, but not the whole message.
    const auto part = std::span(wire).first(wire.size() - 1);
    ASSERT_EQ(test::send_with_fds(fd, part, {dev_null.get()}), static_cast<ssize_t>(part.size()));
    EXPECT_TRUE(closed_by_bus(fd));
    EXPECT_TRUE(bystander->call(driver_call("GetId")));
}

// max_outgoing_bytes: a reader that does not read loses messages (logged, counted) instead of holding
// up the sender or the bus. In kernel mode (native clients) the reader's queue is the kernel's, sized
// from max_outgoing_bytes; af_bus.ko drops the copies and afbus-daemon counts and logs what it reports.
TEST(BusSemantics, ASlowSubscriberLosesBroadcastsInsteadOfStallingTheSender) {
    test::TestBusOptions options;
    options.extra_config = "<limit name=\"max_outgoing_bytes\">65536</limit>\n";
    options.capture_log = true;
    TestBus bus(options);
    auto sender = connect(bus);
    auto reader = connect(bus);
    auto observer = connect(bus);
    ASSERT_TRUE(sender && reader && observer);
    int received = 0;
    auto sub = reader->subscribe("type='signal',member='Broadcast'", [&received](const Message&) { ++received; });
    ASSERT_TRUE(sub);
    constexpr int kSignals = 1024;
    const std::string payload(4096, 'x');
    for (int i = 0; i < kSignals; ++i) {
        auto signal = MessageBuilder::signal("/org/example", "org.example.I", "Broadcast");
        append(signal, payload);
        ASSERT_TRUE(sender->send(signal.build().value()));
    }
    // The sender is served at once: the bus has handled its whole stream, queueing or dropping each
    // signal for the reader, without holding the sender back.
    ASSERT_TRUE(sender->call(driver_call("GetId"), 10s));
    // The reader reads until the bus holds nothing more for it, then what is left in its socket.
    auto queued_for_reader = [&] { return connection_stat(*observer, reader->unique_name(), "OutgoingBytes"); };
    ASSERT_TRUE(test::pump({reader.get()}, [&] { return queued_for_reader() == 0u; }, 20s));
    for (pollfd p{reader->fd(), POLLIN, 0}; ::poll(&p, 1, 0) == 1; p.revents = 0) ASSERT_TRUE(reader->process());
    EXPECT_GT(received, 0);
    EXPECT_LT(received, kSignals);  // the rest were dropped
    // afbus-daemon also counts the loss in Debug.Stats (dbus-daemon has no such counter).
    if (auto dropped = connection_stat(*observer, reader->unique_name(), "DroppedMessages")) {
        EXPECT_EQ(*dropped, static_cast<std::uint32_t>(kSignals - received));
    }
    // afbus-daemon logs the episode, naming the reader (once per episode: in kernel mode an episode ends
    // after a second without drops, which a slow guest may take between two of the sender's bursts).
    if (test::testing_afbus_daemon()) {
        EXPECT_GE(test::count_lines_with(bus.log(), "queue of " + reader->unique_name() + " "), 1u) << bus.log();
    }
}

// max_outgoing_bytes for what is sent to one client: a call to a client whose queue is full fails at once
// with LimitsExceeded, as dbus-daemon answers it ("destination has a full message queue"), and what the
// caller sends next is not held up behind it. Policy is asked before the queue. In kernel mode (native
// clients) the refusal is af_bus.ko's (EXFULL), which the caller's library answers with the same error.
TEST(BusSemantics, ACallToAClientWhoseQueueIsFullFailsAtOnce) {
    test::TestBusOptions options;
    options.extra_config = "<limit name=\"max_outgoing_bytes\">65536</limit>\n"
                           "<policy context=\"default\">\n"
                           "  <deny send_interface=\"org.example.I\" send_member=\"Forbidden\"/>\n"
                           "</policy>\n";
    TestBus bus(options);
    auto caller = connect(bus);
    auto callee = connect(bus);
    auto observer = connect(bus);
    ASSERT_TRUE(caller && callee && observer);
    int after = 0;
    auto sub = observer->subscribe("type='signal',member='After'", [&after](const Message&) { ++after; });
    ASSERT_TRUE(sub);
    // The callee reads nothing from here on. Signals to it fill what the bus and its socket hold for it
    // (the rest is dropped: nobody waits for it), until what the bus holds stays put. (A broker routes a
    // burst before it writes it out, so its queue can overflow for a moment and then drain into the
    // socket; in kernel mode the queue is the kernel's, and the first burst fills it.)
    const std::string payload(4096, 'x');
    std::uint32_t held = 0;
    for (int round = 0; round < 64; ++round) {
        for (int i = 0; i < 32; ++i) {
            auto signal = MessageBuilder::signal("/org/example", "org.example.I", "Fill");
            signal.destination(callee->unique_name());
            append(signal, payload);
            ASSERT_TRUE(caller->send(signal.build().value()));
        }
        ASSERT_TRUE(caller->call(driver_call("GetId"), 10s));
        if (test::kernel_mode()) break;
        const auto now = connection_stat(*observer, callee->unique_name(), "OutgoingBytes").value_or(0);
        if (now > 0 && now == held) break;
        held = now;
    }
    // As large as a signal that did not fit: where the limit is "room for this message" (afbus-daemon's
    // broker), a small call could still fit in what is left.
    auto call = MessageBuilder::method_call(callee->unique_name(), "/org/example", "org.example.I", "Hello");
    append(call, payload);
    auto reply = caller->call(call.build().value(), 10s);
    ASSERT_FALSE(reply);
    EXPECT_EQ(reply.error().name, error_names::kLimitsExceeded) << reply.error().message;
    // Policy comes first: a call it refuses fails with AccessDenied, full queue or not (dbus-daemon looks at
    // the destination's queue after the send and receive rules).
    auto forbidden = MessageBuilder::method_call(callee->unique_name(), "/org/example", "org.example.I", "Forbidden");
    auto denied = caller->call(forbidden.build().value(), 10s);
    ASSERT_FALSE(denied);
    EXPECT_EQ(denied.error().name, error_names::kAccessDenied) << denied.error().message;
    // The caller's next message to somebody else goes through.
    auto next = MessageBuilder::signal("/org/example", "org.example.I", "After");
    next.destination(observer->unique_name());
    ASSERT_TRUE(caller->send(next.build().value()));
    ASSERT_TRUE(test::pump({caller.get(), observer.get()}, [&after] { return after == 1; }, 10s));
    // afbus-daemon counts what the callee lost (dbus-daemon has no such counter); in kernel mode the
    // count arrives from af_bus.ko beside the traffic, so it is read until it shows.
    auto dropped = [&] { return connection_stat(*observer, callee->unique_name(), "DroppedMessages"); };
    if (dropped()) {
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (dropped().value_or(0) == 0 && std::chrono::steady_clock::now() < deadline) {
        }
        EXPECT_GT(dropped().value_or(0), 0u);
    }
}

// Whether this kernel lets a process set up the ring afbus-daemon receives through (receive_ring.hpp:
// Linux 6.1's DEFER_TASKRUN, io_uring allowed).
bool io_uring_allowed() {
    io_uring_params params{};
    params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    const long fd = ::syscall(__NR_io_uring_setup, 4, &params);
    if (fd < 0) return false;
    ::close(static_cast<int>(fd));
    return true;
}

// The daemon's io_uring rings (at most one: broker mode's receives).
int io_uring_fds(pid_t pid) {
    int rings = 0;
    std::error_code error;
    for (const auto& entry :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", error)) {
        std::error_code unreadable;
        if (std::filesystem::read_symlink(entry.path(), unreadable) == "anon_inode:[io_uring]") ++rings;
    }
    return rings;
}

// Broker mode receives with epoll, and through io_uring where it is asked to (AFBUS_DAEMON_IO_URING=1,
// afbus-daemon(1)) and the kernel allows it; the bus serves the same either way (meson runs this suite,
// and others, both ways).
TEST(BusSemantics, BrokerModeReceivesThroughIoUringWhenAskedTo) {
    if (!test::testing_afbus_daemon() || test::kernel_mode())
        GTEST_SKIP() << "afbus-daemon in broker mode only";
    if (!io_uring_allowed()) GTEST_SKIP() << "io_uring cannot be used here: the daemon receives with epoll";
    for (const bool with_ring : {true, false}) {
        test::TestBusOptions options;
        options.environment.push_back(with_ring ? "AFBUS_DAEMON_IO_URING=1" : "AFBUS_DAEMON_IO_URING=0");
        TestBus bus(options);
        auto client = connect(bus);
        ASSERT_TRUE(client);
        auto reply = client->call(driver_call("GetId"));
        ASSERT_TRUE(reply) << reply.error().message;
        EXPECT_EQ(io_uring_fds(bus.pid()), with_ring ? 1 : 0);
    }
}

}  // namespace
}  // namespace afbus
