// Starting each bus daemon fresh on a private socket, with the same permissive configuration (or, for the
// policy scenario, the same given policy).
//
// dbus-daemon (and afbus-daemon, which takes the same command line) is started directly and prints its
// address on a pipe. dbus-broker is started the way systemd starts it: dbus-broker-launch inherits the
// listening socket as LISTEN_FDS and forks dbus-broker. Two things in the launcher need a stand-in outside
// systemd:
//   - it refuses to start unless it can connect a datagram socket to /run/systemd/journal/socket (its
//     log), so it runs in a private mount namespace where /run/systemd is a bind mount of a temporary
//     directory holding a datagram socket of ours, drained by a small reader process;
//   - it connects to "the regular bus" (sd_bus_open_user in --scope user) for activation requests, so
//     DBUS_SESSION_BUS_ADDRESS points at the bus it is launching: it becomes one idle client of its own bus.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "afbus/connection.hpp"
#include "afbus/fd.hpp"
#include "bench.hpp"
#include "policy_configs.hpp"

namespace afbus::bench {
namespace {

std::string errno_text(const char* what) {
    return std::string(what) + ": " + std::strerror(errno);
}

// The one configuration every daemon gets: allow everything, and limits far above what the scenarios
// use, so that no daemon is measured against its own quotas. dbus-broker-launch turns the per-connection
// limits into its per-user quotas by multiplying with max_connections_per_user. A non-empty `policy`
// replaces the permissive <policy> element (the policy scenario); the limits stay the same.
std::string config_text(const std::vector<std::string>& listen, const std::string& policy) {
    std::ostringstream c;
    c << "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
         " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
         "<busconfig>\n"
         "  <type>session</type>\n";
    for (const std::string& address : listen) c << "  <listen>" << address << "</listen>\n";
    c << "  <auth>EXTERNAL</auth>\n";
    c << (policy.empty() ? kOpenPolicy : std::string_view(policy));
    c << "  <limit name=\"max_incoming_bytes\">1000000000</limit>\n"
         "  <limit name=\"max_outgoing_bytes\">1000000000</limit>\n"
         "  <limit name=\"max_message_size\">134217728</limit>\n"
         "  <limit name=\"max_incoming_unix_fds\">1024</limit>\n"
         "  <limit name=\"max_outgoing_unix_fds\">1024</limit>\n"
         "  <limit name=\"max_completed_connections\">100000</limit>\n"
         "  <limit name=\"max_incomplete_connections\">10000</limit>\n"
         "  <limit name=\"max_connections_per_user\">100000</limit>\n"
         "  <limit name=\"max_pending_service_starts\">10000</limit>\n"
         "  <limit name=\"max_names_per_connection\">50000</limit>\n"
         "  <limit name=\"max_match_rules_per_connection\">50000</limit>\n"
         "  <limit name=\"max_replies_per_connection\">50000</limit>\n"
         "  <limit name=\"reply_timeout\">300000</limit>\n"
         "</busconfig>\n";
    return c.str();
}

std::string find_in_path(const std::string& name) {
    if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : std::string();
    const char* path = std::getenv("PATH");
    std::istringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':')) {
        const std::string candidate = dir + "/" + name;
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return {};
}

// Waits for `pid` to exit (it need not be our child), bounded; false on timeout.
bool wait_exit(pid_t pid, int timeout_ms) {
    // Through syscall(): glibc 2.36's <sys/pidfd.h> lacks extern "C", so its pidfd_open does not link from
    // C++.
    Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!pidfd) return errno == ESRCH;
    pollfd p{pidfd.get(), POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) > 0;
}

void terminate(pid_t pid) {
    if (pid <= 0) return;
    if (::kill(pid, SIGTERM) == 0 && !wait_exit(pid, 5000)) ::kill(pid, SIGKILL);
    // Reap it if it is our child (dbus-broker is, once reparented to us as the subreaper).
    ::waitpid(pid, nullptr, 0);
}

// The child of `parent` named `comm`, from /proc (dbus-broker-launch forks dbus-broker).
pid_t find_child(pid_t parent, const std::string& comm) {
    DIR* proc = ::opendir("/proc");
    if (!proc) return -1;
    pid_t found = -1;
    while (dirent* e = ::readdir(proc)) {
        const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
        if (pid <= 0) continue;
        std::ifstream stat("/proc/" + std::string(e->d_name) + "/stat");
        std::string line;
        if (!std::getline(stat, line)) continue;
        // "pid (comm) state ppid ...": comm may hold spaces, so split at the last ')'.
        const auto open = line.find('(');
        const auto close = line.rfind(')');
        if (open == std::string::npos || close == std::string::npos) continue;
        std::istringstream rest(line.substr(close + 2));
        char state;
        pid_t ppid = -1;
        rest >> state >> ppid;
        if (ppid == parent && line.substr(open + 1, close - open - 1) == comm) {
            found = pid;
            break;
        }
    }
    ::closedir(proc);
    return found;
}

std::string tail(const std::string& path, std::size_t max) {
    std::ifstream f(path, std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (s.size() > max) s = "..." + s.substr(s.size() - max);
    return s;
}

// Redirects the child's stdout/stderr to `log` and its stdin from /dev/null, and makes it die with the
// driver (kept across exec), so that an interrupted run leaves no daemon behind.
void child_setup(const std::string& log) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    const int in = ::open("/dev/null", O_RDONLY);
    const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (in >= 0) ::dup2(in, 0);
    if (out >= 0) {
        ::dup2(out, 1);
        ::dup2(out, 2);
    }
}

}  // namespace

std::string unavailable_reason(const DaemonSpec& spec) {
    switch (spec.kind) {
        case DaemonKind::AfbusKernel:
        case DaemonKind::AfbusBridged:
            if (::access("/sys/module/af_bus_dbus", F_OK) != 0)
                return "not available: af_bus_dbus.ko is not loaded (kernel mode; the VM benchmark loads it)";
            [[fallthrough]];
        case DaemonKind::Afbus:
            if (spec.binary.empty())
                return "not available: no afbus-daemon binary given (pass --afbus-daemon=PATH)";
            if (find_in_path(spec.binary).empty())
                return "not available: " + spec.binary + " is not an executable";
            return {};
        case DaemonKind::DbusDaemon:
            if (find_in_path(spec.binary).empty()) return "not available: " + spec.binary + " not found";
            return {};
        case DaemonKind::DbusBroker:
            if (find_in_path(spec.binary).empty()) return "not available: " + spec.binary + " not found";
            if (find_in_path("dbus-broker").empty()) return "not available: dbus-broker not found";
            // The journal stand-in needs a private mount namespace.
            if (::geteuid() != 0)
                return "not available: launching dbus-broker needs root (private mount namespace)";
            return {};
    }
    return "not available: unknown daemon";
}

Result<std::unique_ptr<RunningDaemon>> RunningDaemon::start(const DaemonSpec& spec,
                                                            std::chrono::seconds timeout,
                                                            const std::string& policy) {
    std::unique_ptr<RunningDaemon> d(new RunningDaemon());
    char dir_template[] = "/tmp/afbus-bench-XXXXXX";
    if (!::mkdtemp(dir_template)) return failure(errno_text("mkdtemp"));
    d->dir_ = dir_template;
    const std::string socket_path = d->dir_ + "/bus";
    const std::string config_path = d->dir_ + "/bus.conf";
    const std::string log_path = d->dir_ + "/daemon.log";
    const std::string binary = find_in_path(spec.binary);
    if (binary.empty()) return failure(spec.binary + " not found");

    if (spec.kind != DaemonKind::DbusBroker) {
        {
            std::ofstream config(config_path);
            std::vector<std::string> listen{"unix:path=" + socket_path};
            // Kernel mode: the AF_BUS listener first, so that the printed address lists it first.
            if (spec.kind == DaemonKind::AfbusKernel || spec.kind == DaemonKind::AfbusBridged)
                listen.insert(listen.begin(), "afbus:path=" + d->dir_ + "/afbus");
            config << config_text(listen, policy);
        }
        int pipefd[2];
        if (::pipe2(pipefd, O_CLOEXEC) < 0) return failure(errno_text("pipe"));
        Fd read_end(pipefd[0]), write_end(pipefd[1]);
        const pid_t pid = ::fork();
        if (pid < 0) return failure(errno_text("fork"));
        if (pid == 0) {
            child_setup(log_path);
            ::dup2(write_end.get(), 3);  // --print-address=3; dup2 clears close-on-exec
            const std::string config_arg = "--config-file=" + config_path;
            ::execl(binary.c_str(), binary.c_str(), config_arg.c_str(), "--nofork", "--print-address=3",
                    static_cast<char*>(nullptr));
            ::_exit(127);
        }
        d->main_pid_ = d->measured_pid_ = pid;
        write_end.reset();
        // The address is the first line; the daemon is ready once it has printed it.
        std::string line;
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            pollfd p{read_end.get(), POLLIN, 0};
            if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
            char c;
            if (::read(read_end.get(), &c, 1) != 1 || c == '\n') break;
            line += c;
        }
        if (line.empty()) return failure(spec.name + " printed no address: " + d->log_tail());
        if (spec.kind == DaemonKind::AfbusKernel && !line.starts_with("afbus:"))
            return failure(spec.name + " is not in kernel mode: " + d->log_tail());
        // Bridged: the unix entry alone; kernel mode: the list (libafbus takes its afbus: entry).
        if (spec.kind == DaemonKind::AfbusBridged) line = line.substr(line.find(';') + 1);
        d->address_ = line;
        return d;
    }

    // dbus-broker through dbus-broker-launch.
    {
        std::ofstream config(config_path);
        config << config_text({}, policy);  // the launcher listens on the inherited socket only
    }
    const std::string run_dir = d->dir_ + "/run-systemd";
    if (::mkdir(run_dir.c_str(), 0755) < 0 || ::mkdir((run_dir + "/journal").c_str(), 0755) < 0)
        return failure(errno_text("mkdir"));

    // The journal stand-in: a datagram socket bound before the launcher starts (so it is always there to
    // connect to), drained by a reader process into journal.log so that logging never blocks the broker.
    Fd journal(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!journal) return failure(errno_text("socket"));
    sockaddr_un journal_addr{};
    journal_addr.sun_family = AF_UNIX;
    const std::string journal_path = run_dir + "/journal/socket";
    std::strncpy(journal_addr.sun_path, journal_path.c_str(), sizeof(journal_addr.sun_path) - 1);
    if (::bind(journal.get(), reinterpret_cast<sockaddr*>(&journal_addr), sizeof(journal_addr)) < 0)
        return failure(errno_text("bind journal socket"));
    d->journal_pid_ = ::fork();
    if (d->journal_pid_ < 0) return failure(errno_text("fork"));
    if (d->journal_pid_ == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        const int log =
            ::open((d->dir_ + "/journal.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        std::vector<char> buffer(256 * 1024);
        for (;;) {
            const ssize_t n = ::recv(journal.get(), buffer.data(), buffer.size(), 0);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) ::_exit(0);
            if (log >= 0 && ::write(log, buffer.data(), static_cast<std::size_t>(n)) < 0) ::_exit(1);
            if (log >= 0 && ::write(log, "\n", 1) < 0) ::_exit(1);
        }
    }
    journal.reset();

    Fd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!listener) return failure(errno_text("socket"));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_path.c_str(), sizeof(addr.sun_path) - 1);
    if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0 ||
        ::listen(listener.get(), 4096) < 0)
        return failure(errno_text("bind/listen"));
    d->address_ = "unix:path=" + socket_path;

    const pid_t pid = ::fork();
    if (pid < 0) return failure(errno_text("fork"));
    if (pid == 0) {
        child_setup(log_path);
        if (::unshare(CLONE_NEWNS) < 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0 ||
            ::mount(run_dir.c_str(), "/run/systemd", nullptr, MS_BIND, nullptr) < 0) {
            std::perror("afbus-bench: private /run/systemd for dbus-broker-launch");
            ::_exit(126);
        }
        // sd_listen_fds(): the socket is fd 3 and LISTEN_PID is the launcher (exec keeps our pid).
        if (listener.get() == 3) {
            ::fcntl(3, F_SETFD, 0);
        } else {
            ::dup2(listener.get(), 3);
        }
        ::setenv("LISTEN_FDS", "1", 1);
        ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
        ::unsetenv("LISTEN_FDNAMES");
        ::unsetenv("NOTIFY_SOCKET");
        ::setenv("DBUS_SESSION_BUS_ADDRESS", d->address_.c_str(), 1);
        ::execl(binary.c_str(), binary.c_str(), "--scope", "user", "--config-file", config_path.c_str(),
                static_cast<char*>(nullptr));
        ::_exit(127);
    }
    d->main_pid_ = pid;
    // Only the launcher holds the listening socket now: if it dies, connecting fails at once instead of
    // waiting in the backlog.
    listener.reset();

    // Ready when a client completes Hello; this also proves the broker is running.
    ConnectOptions options;
    options.timeout = timeout;
    auto probe = Connection::open(d->address_, options);
    if (!probe)
        return failure("dbus-broker did not come up (" + probe.error().message + "): " + d->log_tail());
    d->measured_pid_ = find_child(pid, "dbus-broker");
    if (d->measured_pid_ < 0) return failure("cannot find the dbus-broker process under dbus-broker-launch");
    return d;
}

void RunningDaemon::stop() noexcept {
    if (main_pid_ > 0) terminate(main_pid_);
    // The broker follows the launcher (PDEATHSIG); wait for it so that the next daemon starts on a quiet CPU.
    if (measured_pid_ > 0 && measured_pid_ != main_pid_) terminate(measured_pid_);
    if (journal_pid_ > 0) terminate(journal_pid_);
    main_pid_ = measured_pid_ = journal_pid_ = -1;
}

RunningDaemon::~RunningDaemon() {
    stop();
    if (!dir_.empty() && !std::getenv("AFBUS_BENCH_KEEP")) {
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }
}

std::string RunningDaemon::log_tail() const {
    std::string s = tail(dir_ + "/daemon.log", 1500);
    const std::string j = tail(dir_ + "/journal.log", 1500);
    if (!j.empty()) s += " [journal] " + j;
    return s;
}

}  // namespace afbus::bench
