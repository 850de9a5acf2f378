#include "service_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <new>

namespace afbus::daemon {
namespace {

std::vector<char*> c_strings(const std::vector<std::string>& strings) {
    std::vector<char*> out;
    out.reserve(strings.size() + 1);
    for (const std::string& s : strings) out.push_back(const_cast<char*>(s.c_str()));
    out.push_back(nullptr);
    return out;
}

// Runs in the child between fork() and execve(): only async-signal-safe calls.
[[noreturn]] void exec_child(char* const* argv, char* const* envp, const rlimit* fd_limit, ProcessOutput output,
                             int error_pipe) {
    // The daemon blocks the signals it reads from a signalfd and ignores SIGPIPE; a service must start
    // with neither.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int signal = 1; signal < NSIG; ++signal) ::signal(signal, SIG_DFL);
    if (fd_limit) ::setrlimit(RLIMIT_NOFILE, fd_limit);

    const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null >= 0 && null != STDIN_FILENO) ::dup2(null, STDIN_FILENO);
    if (output.out >= 0) ::dup2(output.out, STDOUT_FILENO);
    if (output.err >= 0) ::dup2(output.err, STDERR_FILENO);
    // Nothing of the bus (sockets, epoll, listeners) leaks into the service.
    if (error_pipe > 3) ::close_range(3, static_cast<unsigned>(error_pipe) - 1, 0);
    ::close_range(static_cast<unsigned>(error_pipe) + 1, UINT_MAX, 0);

    ::execve(argv[0], argv, envp);
    const int error = errno;
    [[maybe_unused]] const ssize_t written = ::write(error_pipe, &error, sizeof error);
    ::_exit(127);
}

}  // namespace

Expected<std::unique_ptr<ServiceProcess>, int> ServiceProcess::spawn(EventLoop& loop, const std::vector<std::string>& argv,
                                                                     const std::vector<std::string>& environment,
                                                                     std::optional<rlimit> fd_limit, OnEnd on_end,
                                                                     ProcessOutput output) {
    if (argv.empty()) return Unexpected(EINVAL);
    // Everything the child needs is prepared before fork(): it must not allocate.
    const std::vector<char*> child_argv = c_strings(argv);
    const std::vector<char*> child_envp = c_strings(environment);
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return Unexpected(errno);
    Fd error_read(pipe_fds[0]), error_write(pipe_fds[1]);

    const pid_t pid = ::fork();
    if (pid < 0) return Unexpected(errno);
    if (pid == 0) {
        exec_child(child_argv.data(), child_envp.data(), fd_limit ? &*fd_limit : nullptr, output, error_write.get());
    }
    error_write.reset();

    Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!pidfd) {
        const int error = errno;
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        return Unexpected(error);
    }
    std::unique_ptr<ServiceProcess> process;
    try {
        process = std::make_unique<ServiceProcess>(Key{}, loop, pid, std::move(pidfd), std::move(error_read),
                                                   std::move(on_end));
    } catch (const std::bad_alloc&) {
        // Nobody would reap it: it ends now, and the start fails.
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        return Unexpected(ENOMEM);
    }
    if (!loop.watch(process->pidfd_.get(), EPOLLIN, [p = process.get()](std::uint32_t) { p->on_pidfd_ready(); })) {
        const int error = errno;
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        process->ended_ = true;
        return Unexpected(error);
    }
    return process;
}

ServiceProcess::ServiceProcess(Key, EventLoop& loop, pid_t pid, Fd pidfd, Fd exec_error, OnEnd on_end)
    : loop_(loop), pid_(pid), pidfd_(std::move(pidfd)), exec_error_(std::move(exec_error)), on_end_(std::move(on_end)) {}

ServiceProcess::~ServiceProcess() {
    if (pidfd_) loop_.unwatch(pidfd_.get());
}

void ServiceProcess::on_pidfd_ready() {
    siginfo_t info{};
    if (::waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &info, WEXITED | WNOHANG) != 0 || info.si_pid == 0) return;
    loop_.unwatch(pidfd_.get());
    ended_ = true;
    ProcessEnd end{.pid = pid_};
    // The process has ended, so the pipe's write end is closed: this read does not block.
    int exec_errno = 0;
    if (::read(exec_error_.get(), &exec_errno, sizeof exec_errno) == sizeof exec_errno) {
        end.kind = ProcessEnd::Kind::ExecFailed;
        end.code = exec_errno;
    } else if (info.si_code == CLD_EXITED) {
        end.kind = ProcessEnd::Kind::Exited;
        end.code = info.si_status;
    } else {
        end.kind = ProcessEnd::Kind::Signaled;
        end.code = info.si_status;
    }
    if (on_end_) {
        // The callback may destroy this object: nothing of it is touched afterwards.
        auto callback = std::move(on_end_);
        callback(end);
    }
}

}  // namespace afbus::daemon
