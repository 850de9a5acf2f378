// One process the bus starts to activate a service (a .service file's Exec=, or the setuid launch
// helper on the system bus), and how it ended. The bus does not wait for it: the process's exit is
// reported from the event loop, and the child is reaped then, whatever became of the activation.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "afbus/expected.hpp"
#include "afbus/fd.hpp"
#include "event_loop.hpp"

namespace afbus::daemon {

struct ProcessEnd {
    pid_t pid = 0;
    enum class Kind {
        Exited,      // `code` is the exit status
        Signaled,    // `code` is the signal
        ExecFailed,  // the program could not be started; `code` is the errno of execve()
    } kind = Kind::Exited;
    int code = 0;
};

struct ProcessOutput {
    int out = -1;
    int err = -1;
};

class ServiceProcess {
public:
    using OnEnd = std::function<void(ProcessEnd)>;

    // Forks and executes argv[0] (a path: there is no PATH lookup, as in dbus-daemon) with exactly
    // `environment`, stdin from /dev/null, stdout and stderr inherited or `output.out`/`output.err` when
    // given (borrowed; the journal streams of a daemon that logs to syslog), no other fds, the
    // default signal dispositions, an empty signal mask and, if given, `fd_limit` as its RLIMIT_NOFILE
    // (the daemon's limit before it raised it). `on_end` runs from `loop` once the process has ended;
    // it is not called after the ServiceProcess is destroyed. Returns errno on failure.
    static Expected<std::unique_ptr<ServiceProcess>, int> spawn(EventLoop& loop, const std::vector<std::string>& argv,
                                                                const std::vector<std::string>& environment,
                                                                std::optional<rlimit> fd_limit, OnEnd on_end,
                                                                ProcessOutput output = {});
    // Only spawn() can make the key: a ServiceProcess always stands for a child it started.
    class Key {
        friend class ServiceProcess;
        Key() = default;
    };
    ServiceProcess(Key, EventLoop& loop, pid_t pid, Fd pidfd, Fd exec_error, OnEnd on_end);
    ~ServiceProcess();
    ServiceProcess(const ServiceProcess&) = delete;
    ServiceProcess& operator=(const ServiceProcess&) = delete;

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    [[nodiscard]] bool ended() const noexcept { return ended_; }

private:
    void on_pidfd_ready();

    EventLoop& loop_;
    pid_t pid_;
    Fd pidfd_;
    Fd exec_error_;  // read end of a close-on-exec pipe: EOF without data means execve() succeeded
    OnEnd on_end_;
    bool ended_ = false;
};

}  // namespace afbus::daemon
