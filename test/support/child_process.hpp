// ChildProcess: a program an integration test runs (a D-Bus client, a launcher, a bus daemon), with its
// stdout and stderr on non-blocking pipes and a pidfd that becomes readable when it exits. The test never
// sleeps: it polls fds() together with whatever else it waits for (its own connections, a notify
// socket), calls on_ready() after every poll, and is done with the child once finished(): it exited and
// both pipes reached end of file. wait() does that alone when there is nothing else to watch.
#pragma once

#include <poll.h>
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "afbus/fd.hpp"

namespace afbus::test {

using Clock = std::chrono::steady_clock;

// Milliseconds left until `deadline`, as poll() takes them: 0 once it has passed.
int remaining_ms(Clock::time_point deadline);

// The absolute path of `name` in $PATH, or "" when it is not installed.
std::string find_program(const std::string& name);

// This process's environment for a child: without any DBUS_* variable (so that the child can never find
// the machine's real buses), without the variables `set` replaces and those starting with one of
// `drop_prefixes` ("DISPLAY=", "PYTHON"); then `set` ("NAME=VALUE").
std::vector<std::string> child_environment(const std::vector<std::string>& set,
                                           const std::vector<std::string>& drop_prefixes = {});

// For a process the test forked to run its own code (ChildProcess runs programs): waits without
// sleeping, in poll() on a pidfd, for the child `pid` (not yet collected) to exit. Its wait status, or
// nothing if it still runs after `timeout` (it is then left as it is).
std::optional<int> wait_for_exit(pid_t pid, std::chrono::milliseconds timeout);
// SIGKILLs the child `pid` and collects it.
void kill_and_collect(pid_t pid);

// The children of this process (of its main thread): after PR_SET_CHILD_SUBREAPER, the processes it
// inherited too, such as a bus whose launcher exited.
std::vector<pid_t> child_pids();
// SIGKILLs and collects every child until none is left (what a subreaper test inherited and did not end).
void kill_and_collect_children();

// A pipe, both ends close-on-exec.
struct Pipe {
    Fd read, write;
};
Pipe make_pipe();
// Reads everything the non-blocking `fd` holds now; at end of file (or an error: nothing more will come)
// closes it.
void drain(Fd& fd, std::string& into);

struct ChildOptions {
    // stderr onto the stdout pipe, so that out() has both interleaved as they were written (err() stays
    // empty).
    bool merge_stderr = false;
    // Open fds the child gets as 3, 4, ... in this order (LISTEN_FDS sockets, --print-address pipes).
    std::vector<int> inherited_fds = {};
};

class ChildProcess {
public:
    // Starts argv[0] (an absolute path) with exactly `environment`; stdin is /dev/null.
    ChildProcess(std::vector<std::string> argv, std::vector<std::string> environment,
                 ChildOptions options = {});
    // A child still running is killed (SIGKILL) and reaped.
    ~ChildProcess();
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    // Adds what to poll: the pipes still open, and the pidfd until the exit has been collected.
    void fds(std::vector<pollfd>& into) const;
    // Reads what the pipes hold and collects the exit; call it after every poll.
    void on_ready();
    // Polls only this child until finished() or `timeout`. The wait status once it has exited (even if
    // something it left behind still holds a pipe at the deadline); nothing if it is still running.
    std::optional<int> wait(std::chrono::milliseconds timeout);

    [[nodiscard]] bool finished() const { return status_.has_value() && !out_fd_ && !err_fd_; }
    [[nodiscard]] const std::optional<int>& status() const { return status_; }
    [[nodiscard]] bool exited_with(int code) const;
    [[nodiscard]] bool succeeded() const { return exited_with(0); }
    [[nodiscard]] const std::string& out() const { return out_; }
    [[nodiscard]] const std::string& err() const { return err_; }
    [[nodiscard]] pid_t pid() const { return pid_; }
    [[nodiscard]] int pidfd() const { return pidfd_.get(); }
    // No-op once the exit has been collected: the pid may belong to another process by then.
    void send_signal(int number) const;
    // The command, how it ended and its output, for failure messages.
    [[nodiscard]] std::string report() const;

private:
    std::string command_;
    pid_t pid_ = -1;  // -1 once the exit has been collected
    Fd out_fd_;
    Fd err_fd_;
    Fd pidfd_;
    std::optional<int> status_;
    std::string out_, err_;
};

}  // namespace afbus::test
