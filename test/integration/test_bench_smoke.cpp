// afbus-bench smoke test: every scenario, very briefly (--quick), against daemons the tool starts itself,
// and every scenario must produce a result. The numbers of such a short run mean nothing; this checks
// that the driver, the daemon launch paths and the scenarios work. The binary comes from AFBUS_BENCH
// (set by tools/meson.build); AFBUS_TEST_DAEMON, when set, adds afbus-daemon to the run. The SdBus* cases
// run the same scenarios with sd-bus clients (--client=sd-bus); tools/meson.build registers them as their
// own test, bench_smoke_sd_bus, when afbus-bench was built with libsystemd.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

const std::vector<std::string> kScenarios = {"ping",    "ping-parallel", "fanout-1", "fanout-3", "payload",
                                             "connect", "matches",       "idle",     "floor",
                                             "relay"};

struct BenchRun {
    int status = -1;
    std::vector<std::string> lines;
};

// Runs afbus-bench with `args` and returns its exit status and JSON lines.
BenchRun run_bench(const std::vector<std::string>& args) {
    const char* bench = std::getenv("AFBUS_BENCH");
    EXPECT_TRUE(bench) << "AFBUS_BENCH is not set";
    BenchRun run;
    if (!bench) return run;
    char path[] = "/tmp/afbus-bench-smoke-XXXXXX";
    const int fd = ::mkstemp(path);
    EXPECT_GE(fd, 0);
    ::close(fd);
    std::vector<std::string> argv_strings{bench, "--quick", std::string("--json=") + path};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : argv_strings) argv.push_back(s.data());
    argv.push_back(nullptr);
    // Forked by hand, not a support/ChildProcess: tools/meson.build builds this test with gtest alone.
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    EXPECT_GT(pid, 0) << "fork failed";
    // Its exit, seen through a pidfd, well within the 300 s meson gives the whole test.
    const int pidfd = pid > 0 ? static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)) : -1;
    EXPECT_TRUE(pid <= 0 || pidfd >= 0) << "pidfd_open failed";
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(240);
    bool exited = false;
    for (pollfd p{pidfd, POLLIN, 0}; pidfd >= 0 && !exited;) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        const int ready = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 0)));
        if (ready < 0 && errno == EINTR) continue;
        exited = ready == 1;
        if (ready <= 0) break;
    }
    if (pidfd >= 0) ::close(pidfd);
    EXPECT_TRUE(pid <= 0 || exited) << "afbus-bench did not finish within 240 s";
    if (pid > 0 && !exited) ::kill(pid, SIGKILL);
    int status = 0;
    if (pid > 0) ::waitpid(pid, &status, 0);
    run.status = exited && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) run.lines.push_back(line);
    std::filesystem::remove(path);
    return run;
}

bool has_line(const BenchRun& run, const std::vector<std::string>& parts) {
    for (const auto& line : run.lines) {
        bool all = true;
        for (const auto& p : parts) all = all && line.find(p) != std::string::npos;
        if (all) return true;
    }
    return false;
}

void expect_every_scenario(const BenchRun& run, const std::string& daemon) {
    for (const auto& scenario : kScenarios) {
        EXPECT_TRUE(
            has_line(run, {"\"type\":\"result\"", "\"daemon\":\"" + daemon + "\"",
                           "\"scenario\":\"" + scenario + "\"", "\"status\":\"ok\"", "\"metrics\":{\""}))
            << daemon << " produced no result for " << scenario;
        EXPECT_TRUE(has_line(
            run, {"\"type\":\"summary\"", "\"scenario\":\"" + scenario + "\"", "\"" + daemon + "\":"}))
            << "no summary for " << scenario;
    }
}

std::string dump(const BenchRun& run) {
    std::string s;
    for (const auto& l : run.lines) s += l + "\n";
    return s;
}

TEST(BenchSmoke, EveryScenarioAgainstDbusDaemon) {
    std::vector<std::string> args{"--daemons=dbus-daemon,afbus-daemon"};
    const char* afbus = std::getenv("AFBUS_TEST_DAEMON");
    if (afbus && *afbus) args.push_back(std::string("--afbus-daemon=") + afbus);
    const BenchRun run = run_bench(args);
    EXPECT_EQ(run.status, 0) << dump(run);
    expect_every_scenario(run, "dbus-daemon");
    if (afbus && *afbus) {
        expect_every_scenario(run, "afbus-daemon");
    } else {
        // Without a path to afbus-daemon (AFBUS_TEST_DAEMON unset), the bench must say it could not run
        // it rather than silently leave it out.
        EXPECT_TRUE(
            has_line(run, {"\"type\":\"daemon\"", "\"daemon\":\"afbus-daemon\"", "\"available\":false"}))
            << dump(run);
    }
}

// Every scenario but policy (whose traffic is ping, ping-parallel and fanout-1 again, four daemons
// later) with sd-bus peers: the sd-bus implementation of every client role, against the three daemons
// (dbus-broker where it can be launched), in a few seconds.
TEST(BenchSmoke, SdBusClientsEveryScenario) {
    std::string scenarios = "--scenarios=";
    for (const auto& s : kScenarios) scenarios += s + ",";
    std::vector<std::string> args{"--client=sd-bus", "--daemons=dbus-daemon,dbus-broker,afbus-daemon",
                                  scenarios};
    const char* afbus = std::getenv("AFBUS_TEST_DAEMON");
    if (afbus && *afbus) args.push_back(std::string("--afbus-daemon=") + afbus);
    const BenchRun run = run_bench(args);
    EXPECT_EQ(run.status, 0) << dump(run);
    EXPECT_TRUE(has_line(run, {"\"type\":\"config\"", "\"client\":\"sd-bus\""})) << dump(run);
    expect_every_scenario(run, "dbus-daemon");
    if (!has_line(run, {"\"daemon\":\"dbus-broker\"", "\"available\":false"}))
        expect_every_scenario(run, "dbus-broker");
    if (afbus && *afbus) expect_every_scenario(run, "afbus-daemon");
}

TEST(BenchSmoke, EveryScenarioAgainstDbusBroker) {
    const BenchRun run = run_bench({"--daemons=dbus-broker"});
    if (has_line(run, {"\"daemon\":\"dbus-broker\"", "\"available\":false"}))
        GTEST_SKIP() << "dbus-broker cannot be launched here: " << dump(run);
    EXPECT_EQ(run.status, 0) << dump(run);
    expect_every_scenario(run, "dbus-broker");
}

}  // namespace
