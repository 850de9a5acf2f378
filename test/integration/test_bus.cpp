#include "test_bus.hpp"

#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <stdexcept>

#include "afbus/address.hpp"
#include "afbus/types.hpp"
#include "support/child_process.hpp"

namespace afbus::test {

bool kernel_mode() {
    const char* on = std::getenv("AFBUS_TEST_KERNEL_MODE");
    return on && std::string_view(on) == "1";
}

namespace {

// With AFBUS_TEST_KERNEL_MODE=1 (the kernel-mode VM tests), the generated configuration listens on an
// AF_BUS socket first: the bus address then starts with it, so libafbus clients connect through the
// kernel, and standard clients, which skip the afbus: entry, take the unix one.
std::string kernel_mode_listen(const std::string& dir) {
    if (!kernel_mode()) return "";
    return "  <listen>afbus:path=" + dir + "/afbus_socket</listen>\n";
}

TestBusOptions with_extra_config(const std::string& extra_config) {
    TestBusOptions options;
    options.extra_config = extra_config;
    return options;
}

std::string read_whole_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// <program>-<suite>.<test>-<n>.pcapng: the n-th bus of that test (a test may start several).
std::string capture_file_name() {
    static std::map<std::string, int> buses_per_test;
    std::string test = "no_test";
    if (const auto* info = ::testing::UnitTest::GetInstance()->current_test_info())
        test = std::string(info->test_suite_name()) + "." + info->name();
    for (char& c : test)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
    return std::string(program_invocation_short_name) + "-" + test + "-" + std::to_string(buses_per_test[test]++) +
           ".pcapng";
}

}  // namespace

// The capture of one bus's traffic (AFBUS_TEST_CAPTURE_DIR): `afbusctl capture` writing straight into its
// file, so that nothing in the test has to drain a pipe while it runs. A capture is material for fuzz
// seeds, never a reason for a test to fail: whatever goes wrong is said on stderr and the capture dropped.
class BusCapture {
public:
    // Null when captures are off or this one could not start. Returns once afbusctl is a monitor (its
    // "Monitoring bus message stream." line), so that the capture has everything the test then sends.
    static std::unique_ptr<BusCapture> start(const std::string& address);
    // What start() made: the running afbusctl and its file.
    BusCapture(pid_t pid, Fd pidfd, Fd stderr_pipe, std::string path)
        : pid_(pid), pidfd_(std::move(pidfd)), stderr_(std::move(stderr_pipe)), path_(std::move(path)) {}
    // Before the bus ends: a marker call through the bus, waited for in the file (inotify, no sleep). The
    // bus hands a monitor its copy of a call before it answers, so everything sent before the marker is
    // in the file once the marker is, rather than lost in the daemon's queue when it is terminated.
    void drain(const std::string& address);
    // After the bus ended: afbusctl sees its connection end and exits.
    ~BusCapture();
    BusCapture(const BusCapture&) = delete;
    BusCapture& operator=(const BusCapture&) = delete;

private:
    static constexpr std::string_view kEndMarker = "org.afbus.test.CaptureEnd";
    pid_t pid_;
    Fd pidfd_;   // the pid alone could name another process once a test's subreaper collected this one
    Fd stderr_;  // kept open so that afbusctl's last words do not kill it with SIGPIPE
    std::string path_;
};

std::unique_ptr<BusCapture> BusCapture::start(const std::string& address) {
    const char* dir = std::getenv("AFBUS_TEST_CAPTURE_DIR");
    if (!dir || !*dir) return nullptr;
    const char* afbusctl_variable = std::getenv("AFBUSCTL");
    const std::string tool = afbusctl_variable && *afbusctl_variable ? afbusctl_variable : find_program("afbusctl");
    const std::string path = std::string(dir) + "/" + capture_file_name();
    const auto give_up = [&](const std::string& why) -> std::unique_ptr<BusCapture> {
        std::fprintf(stderr, "test bus: no capture into %s: %s\n", path.c_str(), why.c_str());
        std::error_code ignored;
        std::filesystem::remove(path, ignored);
        return nullptr;
    };
    if (tool.empty()) return give_up("no afbusctl (set AFBUSCTL)");
    const Fd out(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!out) return give_up(std::strerror(errno));
    Pipe err = make_pipe();
    const std::string address_arg = "--address=" + address;  // before fork: the child only execs
    const pid_t pid = ::fork();
    if (pid < 0) return give_up("fork failed");
    if (pid == 0) {
        ::dup2(out.get(), 1);
        ::dup2(err.write.get(), 2);
        // --size: whole messages up to the longest the bus model fuzzer takes (its raw op has a 16-bit length).
        ::execl(tool.c_str(), tool.c_str(), address_arg.c_str(), "capture", "--size=65535", static_cast<char*>(nullptr));
        ::_exit(127);
    }
    Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    err.write.reset();
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    std::string said;
    while (said.find("Monitoring bus message stream.") == std::string::npos) {
        pollfd p{err.read.get(), POLLIN, 0};
        char buffer[256];
        const ssize_t n = ::poll(&p, 1, remaining_ms(deadline)) > 0 ? ::read(err.read.get(), buffer, sizeof buffer) : 0;
        if (n <= 0) {
            kill_and_collect(pid);
            return give_up("afbusctl capture did not become a monitor: " + said);
        }
        said.append(buffer, static_cast<std::size_t>(n));
    }
    return std::make_unique<BusCapture>(pid, std::move(pidfd), std::move(err.read), path);
}

void BusCapture::drain(const std::string& address) {
    ConnectOptions options;
    options.timeout = std::chrono::seconds(5);
    auto connection = Connection::open(address, options);
    if (!connection) return;  // a bus the test left unable to take connections: what was captured stays
    auto call = MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                            "NameHasOwner");
    append(call, std::string(kEndMarker));
    auto message = call.build();
    if (!message || !(*connection)->call(std::move(*message), std::chrono::seconds(5))) return;
    const Fd watch(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
    if (!watch || ::inotify_add_watch(watch.get(), path_.c_str(), IN_MODIFY) < 0) return;
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (read_whole_file(path_).find(kEndMarker) == std::string::npos) {
        pollfd p{watch.get(), POLLIN, 0};
        if (::poll(&p, 1, remaining_ms(deadline)) <= 0) {
            std::fprintf(stderr, "test bus: %s may miss the end of the traffic\n", path_.c_str());
            return;
        }
        char events[4096];
        while (::read(watch.get(), events, sizeof events) > 0) {
        }
    }
}

BusCapture::~BusCapture() {
    if (!pidfd_) return;
    pollfd p{pidfd_.get(), POLLIN, 0};
    constexpr int kExitTimeoutMs = 10000;  // it exits as soon as it reads the end of its connection
    if (::poll(&p, 1, kExitTimeoutMs) <= 0) ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
    ::waitpid(pid_, nullptr, 0);  // fails harmlessly when a subreaper test collected it already
}

TestBus::TestBus(const std::string& extra_config) : TestBus(with_extra_config(extra_config)) {}

TestBus::TestBus(const TestBusOptions& options) {
    char dir_template[] = "/tmp/afbus-test-XXXXXX";
    if (!::mkdtemp(dir_template)) throw std::runtime_error("mkdtemp failed");
    dir_ = dir_template;
    if (options.world_accessible && ::chmod(dir_.c_str(), 0755) < 0) throw std::runtime_error("chmod failed");
    auto with_dir = [this](std::string text) {
        for (std::size_t at = text.find("@DIR@"); at != std::string::npos; at = text.find("@DIR@", at + dir_.size()))
            text.replace(at, 5, dir_);
        return text;
    };
    for (const auto& [path, content] : options.files) {
        const std::filesystem::path file = std::filesystem::path(dir_) / path;
        std::filesystem::create_directories(file.parent_path());
        std::ofstream(file) << with_dir(content);
    }
    const std::string config_path = dir_ + "/bus.conf";
    if (!options.config.empty()) {
        std::ofstream(config_path) << with_dir(options.config);
    } else {
        std::ofstream config(config_path);
        config << "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
                  " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
                  "<busconfig>\n"
                  "  <type>session</type>\n"
               << kernel_mode_listen(dir_) <<
                  "  <listen>" << (options.listen.empty() ? "unix:dir=" + dir_ : with_dir(options.listen)) << "</listen>\n"
               << (options.auth.empty() ? "" : "  <auth>" + options.auth + "</auth>\n")
               << "  <policy context=\"default\">\n"
                  "    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n"
                  "    <allow eavesdrop=\"true\"/>\n"
                  "    <allow own=\"*\"/>\n"
                  "  </policy>\n"
                  "  <limit name=\"max_message_size\">134217728</limit>\n"
                  "  <limit name=\"max_incoming_bytes\">1000000000</limit>\n"
                  "  <limit name=\"max_outgoing_bytes\">1000000000</limit>\n"
                  "  <limit name=\"reply_timeout\">60000</limit>\n"
               << with_dir(options.extra_config) << "</busconfig>\n";
    }
    const std::string binary = !options.daemon.empty() ? options.daemon : daemon_under_test();
    if (options.capture_log) log_path_ = dir_ + "/daemon.log";

    // Forked here rather than run as a ChildProcess: the daemon lives as long as the test and writes its log
    // to the test's stderr, where nothing has to drain it.
    const std::string config_arg = "--config-file=" + config_path;  // before fork: the child only execs
    std::vector<std::string> environment;
    for (const std::string& entry : options.environment) environment.push_back(with_dir(entry));
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) < 0) throw std::runtime_error("pipe failed");
    const int log_fd = log_path_.empty() ? -1 : ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (!log_path_.empty() && log_fd < 0) throw std::runtime_error("cannot create the daemon's log file");
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
        // The daemon writes its address to fd 3.
        ::dup2(pipefd[1], 3);
        if (log_fd >= 0) ::dup2(log_fd, 2);
        if (options.fd_limit > 0) {
            if (::geteuid() == 0) ::prctl(PR_CAPBSET_DROP, CAP_SYS_RESOURCE, 0, 0, 0);
            const rlimit limit{static_cast<rlim_t>(options.fd_limit), static_cast<rlim_t>(options.fd_limit)};
            if (::setrlimit(RLIMIT_NOFILE, &limit) < 0) ::_exit(126);
        }
        if (options.address_space_limit > 0) {
            const rlimit limit{static_cast<rlim_t>(options.address_space_limit), static_cast<rlim_t>(options.address_space_limit)};
            if (::setrlimit(RLIMIT_AS, &limit) < 0) ::_exit(126);
        }
        for (std::string& entry : environment) ::putenv(entry.data());
        ::execlp(binary.c_str(), binary.c_str(), config_arg.c_str(), "--nofork", "--print-address=3",
                 static_cast<char*>(nullptr));
        ::_exit(127);
    }
    ::close(pipefd[1]);
    if (log_fd >= 0) ::close(log_fd);
    // Read one line: the address. Bounded by a generous timeout so that a broken daemon fails the test.
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    std::string line;
    for (;;) {
        pollfd p{pipefd[0], POLLIN, 0};
        if (::poll(&p, 1, remaining_ms(deadline)) <= 0) break;
        char c;
        const ssize_t n = ::read(pipefd[0], &c, 1);
        if (n <= 0 || c == '\n') break;
        line += c;
    }
    ::close(pipefd[0]);
    if (line.empty()) {
        kill_and_collect(pid_);
        pid_ = -1;
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
        throw std::runtime_error("the bus daemon " + binary + " printed no address");
    }
    address_ = line;
    capture_ = BusCapture::start(address_);
}

std::string daemon_under_test() {
    const char* daemon = std::getenv("AFBUS_TEST_DAEMON");
    if (daemon && *daemon) return daemon;
    const std::string dbus_daemon = find_program("dbus-daemon");
    return dbus_daemon.empty() ? "dbus-daemon" : dbus_daemon;
}

bool testing_afbus_daemon() {
    return std::filesystem::path(daemon_under_test()).filename().string().starts_with("afbus-daemon");
}

bool skip_known_stall() {
    const char* show = std::getenv("AFBUS_TEST_SHOW_STALLS");
    return !testing_afbus_daemon() && !(show && std::string_view(show) == "1");
}

std::string TestBus::log() const {
    if (log_path_.empty()) return {};
    return read_whole_file(log_path_);
}

ProcessUsage process_usage(pid_t pid) {
    ProcessUsage usage;
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(status, line);) {
        if (line.starts_with("VmRSS:")) usage.rss_kib = std::stoul(line.substr(6));
    }
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    if (const std::size_t paren = text.rfind(')'); paren != std::string::npos) {
        // Fields after the command: state is field 3, utime 14, stime 15.
        std::istringstream fields(text.substr(paren + 2));
        std::string field;
        unsigned long long utime = 0, stime = 0;
        for (int n = 3; fields >> field; ++n) {
            if (n == 14) utime = std::stoull(field);
            if (n == 15) {
                stime = std::stoull(field);
                break;
            }
        }
        usage.cpu_seconds = static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
    }
    std::error_code ignored;
    for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ignored);
         it != std::filesystem::directory_iterator(); it.increment(ignored)) {
        if (ignored) break;
        ++usage.open_fds;
    }
    return usage;
}

std::size_t count_lines_with(const std::string& text, std::string_view needle) {
    std::size_t n = 0;
    for (std::size_t start = 0; start < text.size();) {
        std::size_t end = text.find('\n', start);
        if (end == std::string::npos) end = text.size();
        if (std::string_view(text).substr(start, end - start).find(needle) != std::string_view::npos) ++n;
        start = end + 1;
    }
    return n;
}

std::unique_ptr<Connection> connect(const TestBus& bus) {
    auto c = Connection::open(bus.address());
    EXPECT_TRUE(c) << c.error().name << ": " << c.error().message;
    return c ? std::move(*c) : nullptr;
}

std::unique_ptr<Connection> connect_over_unix(const TestBus& bus) {
    std::string unix_entries;
    const auto entries = parse_address_list(bus.address()).value();
    for (const AddressEntry& entry : entries) {
        if (entry.transport() != "unix") continue;
        if (!unix_entries.empty()) unix_entries += ';';
        unix_entries += entry.to_string();
    }
    EXPECT_FALSE(unix_entries.empty()) << bus.address();
    auto c = Connection::open(unix_entries);
    EXPECT_TRUE(c) << c.error().name << ": " << c.error().message;
    return c ? std::move(*c) : nullptr;
}

TestBus::~TestBus() {
    if (capture_) capture_->drain(address_);
    if (pid_ > 0) {
        ::kill(pid_, SIGTERM);
        if (!wait_for_exit(pid_, std::chrono::seconds(30))) kill_and_collect(pid_);
    }
    capture_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
}

}  // namespace afbus::test
