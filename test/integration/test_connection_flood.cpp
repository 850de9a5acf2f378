// Connection floods (issue 17, item 2), the same way against dbus-daemon and afbus-daemon
// (AFBUS_TEST_DAEMON): one user opens connections until the bus's fd limit or max_connections_per_user
// stops it, or opens connections that never finish authenticating. The bus must stay up, refuse (or
// leave waiting) what it cannot take, keep serving the connections it has and other users, and take
// new connections once the flood is gone. docs/reliability.md has the figures.
#include <grp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <map>

#include "afbus/connection.hpp"
#include "afbus/types.hpp"
#include "afbus/value.hpp"
#include "support/child_process.hpp"
#include "support/flood.hpp"
#include "support/pump.hpp"
#include "support/raw_peer.hpp"
#include "test_bus.hpp"

namespace afbus {
namespace {

using namespace std::chrono_literals;
using test::advance_flood;
using test::connect;
using test::count_in;
using test::driver_call;
using test::FloodConnection;
using test::FloodHandshake;
using test::open_flood;
using test::TestBus;
using test::TestBusOptions;
using State = FloodConnection::State;

std::string limit(std::string_view name, long value) {
    return "<limit name=\"" + std::string(name) + "\">" + std::to_string(value) + "</limit>\n";
}

// One method call from `caller` to `callee` (Peer.Ping, which libafbus answers), answered.
bool round_trip(Connection& caller, Connection& callee) {
    auto ping = MessageBuilder::method_call(callee.unique_name(), "/", "org.freedesktop.DBus.Peer", "Ping").build().value();
    std::optional<Expected<Message, Error>> answer;
    auto slot = caller.call_async(std::move(ping), [&answer](Expected<Message, Error> r) { answer = std::move(r); }, 10s);
    if (!slot) return false;
    if (!test::pump({&caller, &callee}, [&] { return answer.has_value(); }, 10s)) return false;
    return answer->has_value();
}

bool daemon_alive(const TestBus& bus) { return ::kill(bus.pid(), 0) == 0 && ::waitpid(bus.pid(), nullptr, WNOHANG) == 0; }

// Connects to `bus` as uid/gid 65534 (nobody) in a child process and says Hello: whether that worked.
// Only as root; the bus's directory must be world accessible.
bool other_user_connects(const TestBus& bus) {
    const pid_t pid = ::fork();
    if (pid == 0) {
        if (::setgroups(0, nullptr) < 0 || ::setgid(65534) < 0 || ::setuid(65534) < 0) ::_exit(2);
        auto c = Connection::open(bus.address());
        ::_exit(c && (*c)->call(driver_call("GetId")) ? 0 : 1);
    }
    auto status = test::wait_for_exit(pid, 20s);
    if (!status) {
        test::kill_and_collect(pid);
        return false;
    }
    return WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
}

void report(const char* what, const std::vector<FloodConnection>& flood) {
    std::printf("%s: %zu connections: %zu registered, %zu refused, %zu closed, %zu waiting, %zu not connected\n", what,
                flood.size(), count_in(flood, State::Registered), count_in(flood, State::Refused),
                count_in(flood, State::Closed), count_in(flood, State::Waiting), count_in(flood, State::NotConnected));
    std::map<std::string, int> refusals;
    for (const FloodConnection& c : flood) {
        if (c.state == State::Refused) ++refusals[c.error_name];
    }
    for (const auto& [name, n] : refusals) std::printf("  refused %d times: %s\n", n, name.c_str());
}

// The daemon runs with RLIMIT_NOFILE 64; one user opens 120 connections that authenticate and say Hello.
// The bus takes what its fds allow, leaves the rest waiting, keeps serving the connections it had, and
// takes the waiting ones as the flood's connections go away; at the end it holds the fds it started with.
TEST(ConnectionFlood, FdLimitReachedTheBusStaysUpAndRecovers) {
    constexpr int kFdLimit = 64;
    constexpr std::size_t kFlood = 120;
    TestBusOptions options;
    options.fd_limit = kFdLimit;
    options.capture_log = true;
    options.extra_config = limit("max_connections_per_user", 1000) + limit("max_completed_connections", 1000) +
                           limit("max_incomplete_connections", 1000);
    TestBus bus(options);
    auto service = connect(bus);
    auto client = connect(bus);
    ASSERT_TRUE(service && client);
    ASSERT_TRUE(round_trip(*client, *service));
    const auto before = test::process_usage(bus.pid());

    std::vector<FloodConnection> flood;
    open_flood(bus, kFlood, FloodHandshake::AuthAndHello, flood);
    // The bus has taken all it can once its fd table is full and every connection it took is answered.
    auto connections_held = [&] {
        auto reply = client->call(test::stats_call("GetStats"));
        EXPECT_TRUE(reply);
        if (!reply) return std::size_t{0};
        auto [stats] = read_all<std::map<std::string, Variant>>(*reply).value();
        return std::size_t{*stats.at("ActiveConnections").get<std::uint32_t>()} +
               *stats.at("IncompleteConnections").get<std::uint32_t>();
    };
    ASSERT_TRUE(advance_flood(flood, [&] {
        return test::process_usage(bus.pid()).open_fds >= kFdLimit - 2 &&
               count_in(flood, State::Registered) + count_in(flood, State::Refused) + 2 >= connections_held();
    }, 30s)) << test::process_usage(bus.pid()).open_fds << " fds open";
    report("at the fd limit", flood);
    // What it took it answered (dbus-daemon refuses Hello once out of fds: it needs one to look up the
    // user's seats); the rest wait.
    EXPECT_GT(count_in(flood, State::Registered) + count_in(flood, State::Refused), 0u);
    EXPECT_GT(count_in(flood, State::Waiting) + count_in(flood, State::Closed), 0u);

    // Out of fds, the bus still serves what it has, many times over (and says how much CPU that took:
    // a daemon spinning on its listener shows here).
    const auto serving_from = test::process_usage(bus.pid());
    const auto serving_start = test::Clock::now();
    for (int i = 0; i < 200; ++i) ASSERT_TRUE(round_trip(*client, *service)) << i;
    std::printf("200 round trips out of fds: %.3f s, daemon CPU %.3f s\n",
                std::chrono::duration<double>(test::Clock::now() - serving_start).count(),
                test::process_usage(bus.pid()).cpu_seconds - serving_from.cpu_seconds);
    ASSERT_TRUE(client->call(driver_call("GetId")));
    ASSERT_TRUE(daemon_alive(bus));
    if (test::testing_afbus_daemon()) {
        // Once per episode, not once per attempt (a level-triggered listener would log in a loop).
        const std::string log = bus.log();
        EXPECT_EQ(test::count_lines_with(log, "Too many open files"), 1u) << log;
    }

    // The flood goes away connection by connection; every connection that waited is taken in turn.
    ASSERT_TRUE(advance_flood(flood, [&] {
        for (FloodConnection& c : flood) {
            if (c.state == State::Registered || c.state == State::Refused) c.fd = Fd();
        }
        return count_in(flood, State::Waiting) == 0;
    }, 30s));
    report("after the flood went away", flood);
    EXPECT_EQ(count_in(flood, State::Closed), 0u) << "connections that waited were closed instead of served";
    if (test::testing_afbus_daemon()) {
        // The connections taken one by one as fds came free were one episode: still the one line.
        const std::string log = bus.log();
        EXPECT_EQ(test::count_lines_with(log, "Too many open files"), 1u) << log;
    }
    auto late = connect(bus);
    ASSERT_TRUE(late);
    EXPECT_TRUE(round_trip(*late, *service));
    late.reset();
    for (FloodConnection& c : flood) c.fd = Fd();
    // The daemon lets go of every fd the flood took.
    const auto deadline = test::Clock::now() + 20s;
    while (test::process_usage(bus.pid()).open_fds > before.open_fds) {
        ASSERT_TRUE(round_trip(*client, *service));
        ASSERT_LT(test::Clock::now(), deadline) << test::process_usage(bus.pid()).open_fds << " fds, " << before.open_fds << " before";
    }
    const auto after = test::process_usage(bus.pid());
    std::printf("daemon fds %zu -> %zu, RSS %zu KiB -> %zu KiB\n", before.open_fds, after.open_fds, before.rss_kib, after.rss_kib);
}

// max_connections_per_user: one user's flood is refused at Hello beyond its allowance, its existing
// connections are served, another user still connects, and the user connects again once the flood ends.
TEST(ConnectionFlood, MaxConnectionsPerUserStopsOneUserNotOthers) {
    constexpr long kPerUser = 10;
    TestBusOptions options;
    options.world_accessible = true;
    // Other users may connect (without a <allow user> rule, only the bus's own user may).
    options.extra_config = limit("max_connections_per_user", kPerUser) +
                           "<policy context=\"default\"><allow user=\"*\"/></policy>\n";
    TestBus bus(options);
    auto service = connect(bus);
    auto client = connect(bus);
    ASSERT_TRUE(service && client);

    std::vector<FloodConnection> flood;
    open_flood(bus, 40, FloodHandshake::AuthAndHello, flood);
    ASSERT_TRUE(advance_flood(flood, [&] { return count_in(flood, State::Waiting) == 0; }, 30s));
    report("max_connections_per_user", flood);
    EXPECT_EQ(count_in(flood, State::Registered), static_cast<std::size_t>(kPerUser - 2));
    EXPECT_EQ(count_in(flood, State::Refused), flood.size() - (kPerUser - 2));
    for (const FloodConnection& c : flood) {
        if (c.state == State::Refused) {
            EXPECT_TRUE(c.error_name.starts_with("org.freedesktop.DBus.Error.LimitsExceeded")) << c.error_name;
        }
    }
    EXPECT_TRUE(round_trip(*client, *service));
    if (::geteuid() == 0) {
        EXPECT_TRUE(other_user_connects(bus)) << "another user was refused too";
    }

    flood.clear();
    // The refused and registered connections are gone: once the bus has seen that, the user has its
    // allowance back.
    const auto deadline = test::Clock::now() + 20s;
    for (;;) {
        std::vector<FloodConnection> probe;
        open_flood(bus, 1, FloodHandshake::AuthAndHello, probe);
        ASSERT_TRUE(advance_flood(probe, [&] { return probe[0].state != State::Waiting; }, 10s));
        if (probe[0].state == State::Registered) break;
        ASSERT_LT(test::Clock::now(), deadline) << "the user's allowance did not come back";
        ASSERT_TRUE(round_trip(*client, *service));
    }
}

// Connections that never say a word: max_incomplete_connections of them are taken at a time, each is
// closed after auth_timeout, the others wait their turn, and established connections are served all along.
TEST(ConnectionFlood, SilentConnectionsTimeOutInTurns) {
    TestBus bus(limit("max_incomplete_connections", 8) + limit("auth_timeout", 300));
    auto service = connect(bus);
    auto client = connect(bus);
    ASSERT_TRUE(service && client);
    std::vector<FloodConnection> flood;
    open_flood(bus, 24, FloodHandshake::Silent, flood);
    ASSERT_TRUE(advance_flood(flood, [&] {
        EXPECT_TRUE(round_trip(*client, *service));
        return count_in(flood, State::Waiting) == 0;
    }, 30s));
    report("silent", flood);
    EXPECT_EQ(count_in(flood, State::Closed), flood.size());
    auto late = connect(bus);
    ASSERT_TRUE(late);
    EXPECT_TRUE(round_trip(*late, *service));
}

// Connections that authenticate and then never say Hello are incomplete too (dbus-daemon counts them
// against max_incomplete_connections and closes them after auth_timeout): they cannot pile up beyond
// every limit.
TEST(ConnectionFlood, ConnectionsThatNeverSayHelloTimeOut) {
    TestBus bus(limit("max_incomplete_connections", 8) + limit("auth_timeout", 300));
    auto service = connect(bus);
    auto client = connect(bus);
    ASSERT_TRUE(service && client);
    std::vector<FloodConnection> flood;
    open_flood(bus, 24, FloodHandshake::AuthOnly, flood);
    ASSERT_TRUE(advance_flood(flood, [&] {
        EXPECT_TRUE(round_trip(*client, *service));
        return count_in(flood, State::Waiting) == 0;
    }, 30s));
    report("authenticated, no Hello", flood);
    EXPECT_EQ(count_in(flood, State::Closed), flood.size());
    auto late = connect(bus);
    ASSERT_TRUE(late);
    EXPECT_TRUE(round_trip(*late, *service));
}

}  // namespace
}  // namespace afbus
