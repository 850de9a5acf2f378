// ServiceProcess: how an activated service is started, and how its end is reported.
#include "service_process.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>

#include "event_loop.hpp"
#include "fd_limit.hpp"
#include "support/child_process.hpp"

namespace afbus::daemon {
namespace {

using namespace std::chrono_literals;

// Runs `argv` with `environment` and waits (on the loop, for the pidfd) for its end.
std::optional<ProcessEnd> run(const std::vector<std::string>& argv, const std::vector<std::string>& environment = {},
                              std::optional<rlimit> fd_limit = std::nullopt) {
    EventLoop loop;
    std::optional<ProcessEnd> end;
    auto process = ServiceProcess::spawn(loop, argv, environment, fd_limit, [&end](ProcessEnd e) { end = e; });
    EXPECT_TRUE(process) << argv[0];
    if (!process) return std::nullopt;
    const auto deadline = Clock::now() + 20s;
    while (!end && Clock::now() < deadline) loop.run_once(1000ms);
    if (end) {
        EXPECT_EQ(end->pid, (*process)->pid());
    }
    return end;
}

TEST(ServiceProcess, ReportsTheExitStatus) {
    auto end = run({"/bin/sh", "-c", "exit 0"});
    ASSERT_TRUE(end);
    EXPECT_EQ(end->kind, ProcessEnd::Kind::Exited);
    EXPECT_EQ(end->code, 0);
    end = run({"/bin/sh", "-c", "exit 7"});
    ASSERT_TRUE(end);
    EXPECT_EQ(end->kind, ProcessEnd::Kind::Exited);
    EXPECT_EQ(end->code, 7);
}

TEST(ServiceProcess, ReportsAFailedExecWithItsErrno) {
    auto end = run({"/nonexistent/program"});
    ASSERT_TRUE(end);
    EXPECT_EQ(end->kind, ProcessEnd::Kind::ExecFailed);
    EXPECT_EQ(end->code, ENOENT);
    // No PATH lookup, as in dbus-daemon: a bare name is a relative path.
    end = run({"sh", "-c", "exit 0"});
    ASSERT_TRUE(end);
    EXPECT_EQ(end->kind, ProcessEnd::Kind::ExecFailed);
}

TEST(ServiceProcess, ReportsTheSignalThatEndedIt) {
    // The daemon blocks SIGTERM (it reads it from a signalfd); the child must not inherit that.
    sigset_t blocked, old;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGTERM);
    ASSERT_EQ(::sigprocmask(SIG_BLOCK, &blocked, &old), 0);
    auto end = run({"/bin/sh", "-c", "kill -TERM $$; exit 3"});
    ::sigprocmask(SIG_SETMASK, &old, nullptr);
    ASSERT_TRUE(end);
    EXPECT_EQ(end->kind, ProcessEnd::Kind::Signaled);
    EXPECT_EQ(end->code, SIGTERM);
}

TEST(ServiceProcess, GetsExactlyTheGivenEnvironment) {
    auto end = run({"/bin/sh", "-c", "test \"$AFBUS_X\" = 'a b' && test -z \"${HOME+set}\""}, {"AFBUS_X=a b"});
    ASSERT_TRUE(end);
    EXPECT_EQ(end->kind, ProcessEnd::Kind::Exited);
    EXPECT_EQ(end->code, 0);
}

TEST(ServiceProcess, InheritsNoFdsButStandardOutputAndError) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);  // not close-on-exec: only the spawner's closing keeps it out
    const std::string probe = "test ! -e /proc/self/fd/" + std::to_string(fds[0]) + " && test -e /proc/self/fd/1 && "
                              "read line; test -z \"$line\"";  // stdin is /dev/null
    auto end = run({"/bin/sh", "-c", probe});
    ::close(fds[0]);
    ::close(fds[1]);
    ASSERT_TRUE(end);
    EXPECT_EQ(end->kind, ProcessEnd::Kind::Exited);
    EXPECT_EQ(end->code, 0);
}

TEST(ServiceProcess, GetsTheFdLimitItIsGiven) {
    const auto current = current_fd_limit();
    ASSERT_TRUE(current);
    rlimit lower = *current;
    lower.rlim_cur = 100;
    auto end = run({"/bin/sh", "-c", "test \"$(ulimit -n)\" = 100"}, {}, lower);
    ASSERT_TRUE(end);
    EXPECT_EQ(end->kind, ProcessEnd::Kind::Exited);
    EXPECT_EQ(end->code, 0);
}

TEST(FdLimit, RaisesTheSoftLimitWithinTheHardOne) {
    // In a child, so that this test process keeps its limits.
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        rlimit limit{};
        ::getrlimit(RLIMIT_NOFILE, &limit);
        if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < 200) ::_exit(0);  // nothing to check
        limit.rlim_cur = 100;
        ::setrlimit(RLIMIT_NOFILE, &limit);
        if (!raise_fd_limit(200)) ::_exit(1);
        ::getrlimit(RLIMIT_NOFILE, &limit);
        if (limit.rlim_cur != 200) ::_exit(2);
        if (!raise_fd_limit(150)) ::_exit(3);  // already enough: unchanged
        ::getrlimit(RLIMIT_NOFILE, &limit);
        ::_exit(limit.rlim_cur == 200 ? 0 : 4);
    }
    const auto status = test::wait_for_exit(child, std::chrono::seconds(30));
    if (!status) test::kill_and_collect(child);
    ASSERT_TRUE(status) << "the child did not exit";
    ASSERT_TRUE(WIFEXITED(*status));
    EXPECT_EQ(WEXITSTATUS(*status), 0);
}

}  // namespace
}  // namespace afbus::daemon
