// Quota blame (issue 17, item 3), against dbus-daemon and afbus-daemon (AFBUS_TEST_DAEMON): a client
// that calls and never reads the replies, one that subscribes to a busy signal and never reads, and one
// that keeps many fds in flight each use up only their own allowance. Other connections of the same
// user keep working, Debug.Stats shows what each connection holds, and (afbus-daemon) the log names the
// connection that was throttled or lost messages, once per episode rather than once per message.
//
// The limits are system.conf's proportions scaled down: max_incoming_bytes = max_outgoing_bytes, and
// max_incoming_unix_fds = max_outgoing_unix_fds. docs/reliability.md has the figures.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cstdio>
#include <map>

#include "afbus/connection.hpp"
#include "afbus/object.hpp"
#include "afbus/types.hpp"
#include "afbus/value.hpp"
#include "support/child_process.hpp"
#include "support/pump.hpp"
#include "support/raw_peer.hpp"
#include "test_bus.hpp"

namespace afbus {
namespace {

using namespace std::chrono_literals;
using test::connect;
using test::driver_call;
using test::raw_connection;
using test::read_reply;
using test::send_message;
using test::stats_call;
using test::TestBus;
using test::TestBusOptions;

constexpr std::size_t kQueueBytes = 64 * 1024;
constexpr std::size_t kQueueFds = 16;
constexpr std::size_t kPayload = 4096;

TestBusOptions quota_options() {
    TestBusOptions options;
    options.capture_log = true;
    options.extra_config = "<limit name=\"max_incoming_bytes\">" + std::to_string(kQueueBytes) + "</limit>\n" +
                           "<limit name=\"max_outgoing_bytes\">" + std::to_string(kQueueBytes) + "</limit>\n" +
                           "<limit name=\"max_incoming_unix_fds\">" + std::to_string(kQueueFds) + "</limit>\n" +
                           "<limit name=\"max_outgoing_unix_fds\">" + std::to_string(kQueueFds) + "</limit>\n" +
                           "<limit name=\"max_replies_per_connection\">100000</limit>\n";
    return options;
}

// dbus-daemon 1.14 charges replies and broadcasts to their sender while any queue holds them, so a
// reader that does not read stalls the service or the emitter for everyone (docs/reliability.md): the
// two tests below are skipped against it (test::skip_known_stall).

using Stats = std::map<std::string, Variant>;

Stats connection_stats(Connection& asker, const std::string& name) {
    auto reply = asker.call(stats_call("GetConnectionStats", name));
    EXPECT_TRUE(reply) << name;
    if (!reply) return {};
    return std::get<0>(read_all<Stats>(*reply).value());
}

std::uint32_t stat(const Stats& stats, const std::string& key) {
    auto it = stats.find(key);
    return it == stats.end() ? 0 : *it->second.get<std::uint32_t>();
}

void print_stats(const char* who, const std::string& name, const Stats& stats) {
    std::printf("%s %s: IncomingBytes %u IncomingFDs %u OutgoingBytes %u OutgoingFDs %u PeakIncomingBytes %u "
                "PeakOutgoingBytes %u DroppedMessages %u\n",
                who, name.c_str(), stat(stats, "IncomingBytes"), stat(stats, "IncomingFDs"), stat(stats, "OutgoingBytes"),
                stat(stats, "OutgoingFDs"), stat(stats, "PeakIncomingBytes"), stat(stats, "PeakOutgoingBytes"),
                stat(stats, "DroppedMessages"));
}

// Each connection of `deaf` (that never reads) holds no more than its own allowance and something of
// it; afbus-daemon also counted its drops and logged one line for the episode, naming the connection
// (not one per dropped message). Returns the daemon's log (afbus-daemon), for further checks.
//
// In kernel mode (docs/kernel-mode.md, "Full queues") the deaf connections are bridged: the bus writes
// what the kernel delivers for one to its unix socket until that holds its allowance (whole messages:
// one may go beyond), and the kernel drops what does not fit its queue there (the same allowance),
// which the bus counts and logs as the kernel's.
std::string expect_each_held_to_its_allowance(TestBus& bus, Connection& observer, const char* who,
                                              const std::vector<std::string>& deaf, std::size_t allowance) {
    const std::size_t one_message_beyond = test::kernel_mode() ? kPayload + 512 : 0;
    for (const std::string& name : deaf) {
        const auto stats = connection_stats(observer, name);
        print_stats(who, name, stats);
        EXPECT_LE(stat(stats, "OutgoingBytes"), allowance + one_message_beyond);
        // Its allowance was reached. In kernel mode what the bus forwarded may all fit in the unix socket's
        // own buffer, which OutgoingBytes does not count, when the kernel dropped the rest at its queue
        // (seen once in 2026-12: 48 of 400 replies forwarded, 352 dropped, nothing left queued).
        if (test::kernel_mode() && stat(stats, "OutgoingBytes") == 0) {
            EXPECT_GT(stat(stats, "DroppedMessages"), 0u);
        } else {
            EXPECT_GT(stat(stats, "OutgoingBytes"), 0u);
        }
    }
    if (!test::testing_afbus_daemon()) return {};
    const std::string log = bus.log();
    const std::string episode = test::kernel_mode() ? "receive queue of " : "outgoing queue of ";
    for (const std::string& name : deaf) {
        EXPECT_GT(stat(connection_stats(observer, name), "DroppedMessages"), 0u);
        EXPECT_EQ(test::count_lines_with(log, episode + name + " "), 1u) << log;
    }
    return log;
}

// A raw connection past Hello that will never read again; its unique name.
std::string hello(const Fd& fd) {
    send_message(fd, driver_call("Hello"), 1);
    auto reply = read_reply(fd, 1);
    if (!reply || reply->type() != MessageType::MethodReturn) return {};
    return std::get<0>(read_all<std::string>(*reply).value());
}

// A service whose Get method answers kPayload bytes; `handled` counts the calls.
Slot export_get(Connection& service, int& handled) {
    Interface iface{"org.example.Quota", {}, {}, {}};
    iface.methods.push_back(Method{"Get", {}, {{"data", "s"}}, [&handled](const Message&, MessageBuilder& reply) -> Expected<void, Error> {
                                       ++handled;
                                       append(reply, std::string(kPayload, 'r'));
                                       return {};
                                   }});
    auto slot = service.export_interface("/org/example/Quota", std::move(iface));
    EXPECT_TRUE(slot);
    return slot ? std::move(*slot) : Slot();
}

Message get_call(const std::string& destination) {
    return MessageBuilder::method_call(destination, "/org/example/Quota", "org.example.Quota", "Get").build().value();
}

// Two clients call a service 400 times each and never read the replies. The replies pile up in their
// own queues (then are dropped), not against the service: a third client of the same user is answered
// every time meanwhile.
TEST(QuotaBlame, CallersThatNeverReadRepliesDoNotStallTheService) {
    if (test::skip_known_stall()) GTEST_SKIP() << "dbus-daemon stalls the service here (2 of 100 calls answered in 20 s)";
    TestBus bus(quota_options());
    auto service = connect(bus);
    auto caller = connect(bus);
    auto observer = connect(bus);
    ASSERT_TRUE(service && caller && observer);
    int handled = 0;
    Slot exported = export_get(*service, handled);
    std::vector<Fd> deaf;
    std::vector<std::string> deaf_names;
    for (int i = 0; i < 2; ++i) {
        deaf.push_back(raw_connection(bus));
        deaf_names.push_back(hello(deaf.back()));
        ASSERT_FALSE(deaf_names.back().empty());
    }
    // 1.6 MB of replies each: far beyond a socket buffer and the queue. Sent 10 at a time as the test
    // goes, so that the service's own queue (the same limits) never overflows with calls.
    constexpr int kCalls = 400;
    int sent = 0;
    auto send_more = [&] {
        for (int i = 0; i < 10 && sent < kCalls; ++i, ++sent) {
            for (const Fd& fd : deaf) send_message(fd, get_call(service->unique_name()), 2 + sent);
        }
    };
    // The attentive caller calls again as soon as it has its answer; the service serves everybody.
    constexpr int kAttentiveCalls = 100;
    int answered = 0;
    std::optional<Slot> pending;
    std::function<void()> next_call = [&] {
        auto slot = caller->call_async(get_call(service->unique_name()), [&](Expected<Message, Error> r) {
            EXPECT_TRUE(r) << (r ? "" : r.error().name + ": " + r.error().message);
            if (r && ++answered < kAttentiveCalls) next_call();
        }, 10s);
        ASSERT_TRUE(slot);
        pending = std::move(*slot);
    };
    next_call();
    const auto start = test::Clock::now();
    ASSERT_TRUE(test::pump({service.get(), caller.get()}, [&] {
        send_more();
        return answered == kAttentiveCalls && handled == 2 * kCalls + kAttentiveCalls;
    }, 20s)) << answered << " of " << kAttentiveCalls << " calls answered, the service had " << handled
             << " calls: the service was held back by callers that do not read";
    std::printf("%d calls answered while 2 x %d went unread, %.2f s\n", kAttentiveCalls, kCalls,
                std::chrono::duration<double>(test::Clock::now() - start).count());
    const auto service_stats = connection_stats(*observer, service->unique_name());
    print_stats("service", service->unique_name(), service_stats);
    // What the bus holds for a deaf caller is bounded by its own allowance; the episode's line names the
    // limit.
    const std::string log = expect_each_held_to_its_allowance(bus, *observer, "deaf caller", deaf_names, kQueueBytes);
    if (test::testing_afbus_daemon()) {
        EXPECT_NE(log.find("max_outgoing_bytes"), std::string::npos) << log;
    }
}

// Two subscribers to a busy signal never read (one from the start, one from halfway). They lose signals
// (their own queues are full), but the emitter is not held back: a subscriber of the same user that reads gets every signal, in order.
TEST(QuotaBlame, SubscribersThatNeverReadDoNotStallTheEmitter) {
    if (test::skip_known_stall()) GTEST_SKIP() << "dbus-daemon stalls the emitter here (60 of 1000 signals in 20 s)";
    TestBus bus(quota_options());
    auto emitter = connect(bus);
    auto reader = connect(bus);
    auto observer = connect(bus);
    ASSERT_TRUE(emitter && reader && observer);
    std::vector<Fd> deaf;
    std::vector<std::string> deaf_names;
    for (int i = 0; i < 2; ++i) {
        deaf.push_back(raw_connection(bus));
        deaf_names.push_back(hello(deaf.back()));
        ASSERT_FALSE(deaf_names.back().empty());
    }
    // The first deaf subscriber from the start, the second from halfway: their queues hold different
    // signals, more than the emitter's max_incoming_bytes together.
    auto deafen = [&](int i) {
        send_message(deaf[i], driver_call("AddMatch", "type='signal',interface='org.example.Busy'"), 2);
        ASSERT_TRUE(read_reply(deaf[i], 2));
    };
    deafen(0);
    std::vector<std::uint32_t> received;
    auto sub = reader->subscribe("type='signal',interface='org.example.Busy'", [&received](const Message& m) {
        received.push_back(std::get<0>(read_all<std::uint32_t, std::string>(m).value()));
    });
    ASSERT_TRUE(sub);
    constexpr std::uint32_t kSignals = 1000;  // 4 MB
    const std::string payload(kPayload, 's');
    std::uint32_t emitted = 0;
    bool deafened_both = false;
    const auto start = test::Clock::now();
    // Emitting as fast as the reader reads, a few signals ahead (well within the reader's own queue).
    ASSERT_TRUE(test::pump({emitter.get(), reader.get()}, [&] {
        while (emitted < kSignals && emitted < received.size() + 8) {
            if (emitted == kSignals / 2 && received.size() == emitted && !deafened_both) {
                deafen(1);
                deafened_both = true;
            }
            if (emitted == kSignals / 2 && !deafened_both) break;
            auto signal = MessageBuilder::signal("/org/example", "org.example.Busy", "Tick");
            append(signal, emitted, payload);
            EXPECT_TRUE(emitter->send(signal.build().value()));
            ++emitted;
        }
        return received.size() == kSignals;
    }, 20s)) << received.size() << " of " << kSignals << " signals received: the emitter was held back by subscribers that do not read";
    std::printf("%u signals of %zu bytes to 1 reader and 2 deaf subscribers, %.2f s\n", kSignals, kPayload,
                std::chrono::duration<double>(test::Clock::now() - start).count());
    for (std::uint32_t i = 0; i < kSignals; ++i) ASSERT_EQ(received[i], i) << "out of order or lost";
    print_stats("emitter", emitter->unique_name(), connection_stats(*observer, emitter->unique_name()));
    (void)expect_each_held_to_its_allowance(bus, *observer, "deaf subscriber", deaf_names, kQueueBytes);
}

// A client keeps sending fds to a recipient that never reads: once the bus holds max_incoming_unix_fds
// of its fds it is not read from (its own allowance is used up), while another connection of the same
// user passes fds as usual. Debug.Stats shows the fds each holds; afbus-daemon logs the throttling once.
TEST(QuotaBlame, AClientWithManyFdsInFlightIsHeldBackAlone) {
    TestBus bus(quota_options());
    auto hoarder = connect(bus);
    auto sender = connect(bus);
    auto receiver = connect(bus);
    auto observer = connect(bus);
    ASSERT_TRUE(hoarder && sender && receiver && observer);
    Fd deaf = raw_connection(bus, true);
    const std::string deaf_name = hello(deaf);
    ASSERT_FALSE(deaf_name.empty());
    Fd dev_null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(dev_null);
    auto fd_signal = [&](const std::string& to, std::uint32_t n) {
        auto signal = MessageBuilder::signal("/org/example", "org.example.Fds", "Take");
        signal.destination(to);
        append(signal, n, std::string(1024, 'f'));  // fills the deaf socket's buffer sooner; 16 fit the queue
        signal.add_fd(dev_null);
        return signal.build().value();
    };
    constexpr std::uint32_t kSignals = 300;
    for (std::uint32_t n = 0; n < kSignals; ++n) ASSERT_TRUE(hoarder->send(fd_signal(deaf_name, n)));
    // The hoarder's messages stay queued for the deaf connection until its allowance is used up. (In
    // kernel mode the hoarder sends through the kernel, which holds them in the deaf connection's queue
    // until that is full and refuses the rest, counted as the recipient's drops, as the broker drops
    // what goes beyond a connection's max_outgoing_* allowance: the bus holds none of its fds, and
    // nothing is left for the hoarder's library to wait with.)
    ASSERT_TRUE(test::pump({hoarder.get()}, [&] {
        if (test::kernel_mode()) return (hoarder->poll_events() & POLLOUT) == 0;
        return stat(connection_stats(*observer, hoarder->unique_name()), "IncomingFDs") >= kQueueFds;
    }, 20s));
    const auto held = connection_stats(*observer, hoarder->unique_name());
    print_stats("hoarder", hoarder->unique_name(), held);
    print_stats("deaf recipient", deaf_name, connection_stats(*observer, deaf_name));
    EXPECT_LE(stat(held, "IncomingFDs"), kQueueFds + 16);  // at most one more message (max_message_unix_fds)

    // Same user, another connection: fds pass.
    int taken = 0;
    auto sub = receiver->subscribe("type='signal',interface='org.example.Fds'", [&taken](const Message& m) {
        EXPECT_EQ(m.fds().size(), 1u);
        ++taken;
    });
    ASSERT_TRUE(sub);
    for (std::uint32_t n = 0; n < 50; ++n) ASSERT_TRUE(sender->send(fd_signal(receiver->unique_name(), n)));
    ASSERT_TRUE(test::pump({sender.get(), receiver.get()}, [&] { return taken == 50; }, 20s)) << taken;

    if (test::kernel_mode()) {
        // Nobody is held back, the hoarder included; the deaf connection's losses are counted for it.
        ASSERT_TRUE(hoarder->call(driver_call("GetId"), 10s));
        ASSERT_TRUE(test::pump({observer.get()}, [&] {
            return stat(connection_stats(*observer, deaf_name), "DroppedMessages") > 0;
        }, 20s));
        return;
    }

    // The hoarder is held back: its call waits behind its own messages...
    std::optional<Expected<Message, Error>> answer;
    auto slot = hoarder->call_async(driver_call("GetId"), [&answer](Expected<Message, Error> r) { answer = std::move(r); });
    ASSERT_TRUE(slot);
    ASSERT_TRUE(observer->call(driver_call("GetId")));
    ASSERT_TRUE(hoarder->process());
    EXPECT_FALSE(answer.has_value());
    // ...until the deaf connection goes and its queue with it.
    deaf = Fd();
    ASSERT_TRUE(test::pump({hoarder.get()}, [&] { return answer.has_value(); }, 20s));
    EXPECT_TRUE(*answer);
    if (test::testing_afbus_daemon() && !test::kernel_mode()) {
        const std::string log = bus.log();
        EXPECT_EQ(test::count_lines_with(log, "connection " + hoarder->unique_name() + " "), 1u) << log;
        EXPECT_NE(log.find("max_incoming_unix_fds"), std::string::npos) << log;
    }
}

}  // namespace
}  // namespace afbus
