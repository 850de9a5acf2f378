#include "test_bus.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <poll.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

#include "support/child_process.hpp"

namespace afbus::test {

namespace {

// With AFBUS_TEST_KERNEL_MODE=1 (the kernel-mode VM tests), the generated configuration listens on an
// AF_BUS socket first: the bus address then starts with it, so libafbus clients connect through the
// kernel, and standard clients, which skip the afbus: entry, take the unix one.
std::string kernel_mode_listen(const std::string& dir) {
    const char* on = std::getenv("AFBUS_TEST_KERNEL_MODE");
    if (!on || std::string_view(on) != "1") return "";
    return "  <listen>afbus:path=" + dir + "/afbus_socket</listen>\n";
}

TestBusOptions with_extra_config(const std::string& extra_config) {
    TestBusOptions options;
    options.extra_config = extra_config;
    return options;
}

}  // namespace

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

std::string TestBus::log() const {
    if (log_path_.empty()) return {};
    std::ifstream in(log_path_);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
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

TestBus::~TestBus() {
    if (pid_ > 0) {
        ::kill(pid_, SIGTERM);
        if (!wait_for_exit(pid_, std::chrono::seconds(30))) kill_and_collect(pid_);
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
}

}  // namespace afbus::test
