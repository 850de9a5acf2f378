#include "child_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string_view>

extern char** environ;

namespace afbus::test {
namespace {

std::string describe(const std::vector<std::string>& argv) {
    std::string text;
    for (const auto& a : argv) text += (text.empty() ? "" : " ") + a;
    return text;
}

}  // namespace

void drain(Fd& fd, std::string& into) {
    if (!fd) return;
    char buffer[4096];
    for (;;) {
        const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n > 0) {
            into.append(buffer, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) return;
        fd.reset();
        return;
    }
}

Pipe make_pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0) throw std::runtime_error("pipe2 failed");
    return {Fd(fds[0]), Fd(fds[1])};
}

int remaining_ms(Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return 0;
    return static_cast<int>(std::min<long long>(left, std::numeric_limits<int>::max()));
}

std::optional<int> wait_for_exit(pid_t pid, std::chrono::milliseconds timeout) {
    // SYS_pidfd_open: see the constructor.
    const Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!pidfd) return std::nullopt;
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        pollfd p{pidfd.get(), POLLIN, 0};
        const int ready = ::poll(&p, 1, remaining_ms(deadline));
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) return std::nullopt;
        int status = 0;
        if (::waitpid(pid, &status, 0) != pid) return std::nullopt;
        return status;
    }
}

void kill_and_collect(pid_t pid) {
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
}

std::vector<pid_t> child_pids() {
    const std::string self = std::to_string(::getpid());
    std::ifstream in("/proc/" + self + "/task/" + self + "/children");
    std::vector<pid_t> pids;
    for (pid_t pid; in >> pid;) pids.push_back(pid);
    return pids;
}

void kill_and_collect_children() {
    for (std::vector<pid_t> left = child_pids(); !left.empty(); left = child_pids()) {
        for (pid_t pid : left) ::kill(pid, SIGKILL);
        for (pid_t pid : left) ::waitpid(pid, nullptr, 0);
    }
}

std::string find_program(const std::string& name) {
    const char* path = std::getenv("PATH");
    std::istringstream dirs(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
    for (std::string dir; std::getline(dirs, dir, ':');) {
        if (dir.empty()) continue;
        const std::string candidate = dir + "/" + name;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return "";
}

std::vector<std::string> child_environment(const std::vector<std::string>& set,
                                           const std::vector<std::string>& drop_prefixes) {
    std::vector<std::string> drop = drop_prefixes;
    drop.emplace_back("DBUS_");
    for (const std::string& variable : set) drop.push_back(variable.substr(0, variable.find('=') + 1));
    std::vector<std::string> env = set;
    for (char** e = environ; *e; ++e) {
        const std::string_view variable(*e);
        if (std::none_of(drop.begin(), drop.end(),
                         [&](const std::string& p) { return variable.starts_with(p); }))
            env.emplace_back(variable);
    }
    return env;
}

ChildProcess::ChildProcess(std::vector<std::string> argv, std::vector<std::string> environment,
                           ChildOptions options)
    : command_(describe(argv)) {
    // Everything is prepared before fork: the child only calls async-signal-safe functions.
    std::vector<char*> envp, args;
    for (auto& e : environment) envp.push_back(e.data());
    envp.push_back(nullptr);
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    Fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!null) throw std::runtime_error("cannot open /dev/null");
    Pipe out = make_pipe();
    Pipe err = options.merge_stderr ? Pipe{} : make_pipe();
    const int err_write = options.merge_stderr ? out.write.get() : err.write.get();
    const std::vector<int>& inherited = options.inherited_fds;
    const int first_free = 3 + static_cast<int>(inherited.size());
    std::vector<int> moved(inherited.size());  // allocated here: the child only fills it in

    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        // Every source first moves above the fds it is to become, so that placing one never closes
        // another; the moved copies are close-on-exec, the placed ones (dup2) are not.
        const int stdin_source = ::fcntl(null.get(), F_DUPFD_CLOEXEC, first_free);
        const int stdout_source = ::fcntl(out.write.get(), F_DUPFD_CLOEXEC, first_free);
        const int stderr_source = ::fcntl(err_write, F_DUPFD_CLOEXEC, first_free);
        for (std::size_t i = 0; i < inherited.size(); ++i)
            moved[i] = ::fcntl(inherited[i], F_DUPFD_CLOEXEC, first_free);
        ::dup2(stdin_source, 0);
        ::dup2(stdout_source, 1);
        ::dup2(stderr_source, 2);
        for (std::size_t i = 0; i < moved.size(); ++i) ::dup2(moved[i], 3 + static_cast<int>(i));
        ::execve(args[0], args.data(), envp.data());
        ::_exit(127);
    }
    out_fd_ = std::move(out.read);
    err_fd_ = std::move(err.read);
    for (const Fd* fd : {&out_fd_, &err_fd_}) {
        if (*fd) ::fcntl(fd->get(), F_SETFL, O_NONBLOCK);
    }
    // Not glibc 2.36's pidfd_open(): its <sys/pidfd.h> lacks extern "C", so C++ cannot link to it.
    pidfd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
    if (!pidfd_) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        throw std::runtime_error("pidfd_open failed");
    }
}

ChildProcess::~ChildProcess() {
    if (pid_ > 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
    }
}

void ChildProcess::fds(std::vector<pollfd>& into) const {
    for (const Fd* fd : {&out_fd_, &err_fd_}) {
        if (*fd) into.push_back({fd->get(), POLLIN, 0});
    }
    if (pid_ > 0) into.push_back({pidfd_.get(), POLLIN, 0});
}

void ChildProcess::on_ready() {
    drain(out_fd_, out_);
    drain(err_fd_, err_);
    if (pid_ > 0) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            status_ = status;
            pid_ = -1;
        }
    }
}

std::optional<int> ChildProcess::wait(std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    for (;;) {
        on_ready();
        if (finished() || Clock::now() >= deadline) return status_;
        std::vector<pollfd> watched;
        fds(watched);
        if (::poll(watched.data(), watched.size(), remaining_ms(deadline)) < 0 && errno != EINTR)
            throw std::runtime_error("poll failed");
    }
}

bool ChildProcess::exited_with(int code) const {
    return status_ && WIFEXITED(*status_) && WEXITSTATUS(*status_) == code;
}

void ChildProcess::send_signal(int number) const {
    if (pid_ > 0) ::kill(pid_, number);
}

std::string ChildProcess::report() const {
    std::string status = "still running";
    if (status_) {
        status = WIFEXITED(*status_)     ? "exit code " + std::to_string(WEXITSTATUS(*status_))
                 : WIFSIGNALED(*status_) ? "killed by signal " + std::to_string(WTERMSIG(*status_))
                                         : "wait status " + std::to_string(*status_);
    }
    return command_ + ": " + status + "\n--- stdout:\n" + out_ + "--- stderr:\n" + err_ + "---";
}

}  // namespace afbus::test
