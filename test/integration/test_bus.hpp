// TestBus: a message bus daemon spawned for one test on a private socket in a temporary directory, never
// the machine's real buses. The daemon is dbus-daemon unless AFBUS_TEST_DAEMON names another binary with
// the same command line (afbus-daemon). Its address is read from --print-address on a pipe: no sleeps.
// With AFBUS_TEST_CAPTURE_DIR set (off by default), each bus's traffic is captured as pcapng by
// `afbusctl capture` ($AFBUSCTL) into that directory: the raw material of the bus model fuzzer's seeds
// (test/fuzz/make-bus-model-seeds.sh).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "afbus/connection.hpp"

namespace afbus::test {

struct TestBusOptions {
    // Inserted into the <busconfig> element (limits, policies); "@DIR@" stands for the temporary directory.
    std::string extra_config;
    std::string listen;  // the <listen> address ("@DIR@": the temporary directory); empty: unix:dir=<it>
    std::string auth = "EXTERNAL";  // the one <auth> mechanism; empty: no <auth> element
    // The daemon binary; empty: $AFBUS_TEST_DAEMON if set, else dbus-daemon from PATH.
    std::string daemon;
    // A whole config file, used instead of the generated one (extra_config, listen and auth are then
    // ignored); every "@DIR@" in it stands for the temporary directory.
    std::string config;
    // chmod 0755 the temporary directory, so that clients running as other uids can reach the socket.
    bool world_accessible = false;
    // Files written into the temporary directory before the daemon starts (path relative to it, content,
    // in which "@DIR@" stands for the temporary directory).
    std::vector<std::pair<std::string, std::string>> files;
    // The daemon's stderr goes to log_path() in the temporary directory instead of the test's stderr,
    // for tests that check what the bus logs.
    bool capture_log = false;
    // RLIMIT_NOFILE (soft and hard) the daemon starts with. As root the daemon could raise it again
    // (both daemons raise it to 65536), so the child also drops CAP_SYS_RESOURCE from its bounding set.
    int fd_limit = 0;
    // "NAME=VALUE" entries added to the daemon's environment ("@DIR@" stands for the temporary
    // directory): LD_PRELOAD of test_fault_injection's shim and its control file.
    std::vector<std::string> environment;
    // RLIMIT_AS (soft and hard) the daemon starts with, in bytes (0: unchanged): what it may allocate in
    // all, for the tests of a failing allocation.
    std::size_t address_space_limit = 0;
};

class BusCapture;

class TestBus {
public:
    // `extra_config` is inserted into the <busconfig> element (limits, policies).
    explicit TestBus(const std::string& extra_config = "");
    explicit TestBus(const TestBusOptions& options);
    ~TestBus();
    TestBus(const TestBus&) = delete;
    TestBus& operator=(const TestBus&) = delete;

    [[nodiscard]] const std::string& address() const { return address_; }
    [[nodiscard]] const std::string& directory() const { return dir_; }
    [[nodiscard]] pid_t pid() const { return pid_; }
    // Where the daemon's log goes with capture_log (empty otherwise), and what it holds now.
    [[nodiscard]] const std::string& log_path() const { return log_path_; }
    [[nodiscard]] std::string log() const;

private:
    std::string log_path_;
    std::string dir_;
    std::string address_;
    pid_t pid_ = -1;
    std::unique_ptr<BusCapture> capture_;  // with AFBUS_TEST_CAPTURE_DIR only
};

// The bus daemon the integration tests run: $AFBUS_TEST_DAEMON if set, else dbus-daemon, by absolute path
// when it is in $PATH.
std::string daemon_under_test();

// Whether the daemon under test is afbus-daemon (some checks are of afbus-daemon's own log or counters).
bool testing_afbus_daemon();

// Whether a check that dbus-daemon is known to fail (a stall, docs/reliability.md) is skipped: against
// dbus-daemon, unless AFBUS_TEST_SHOW_STALLS=1 asks to see it fail.
bool skip_known_stall();

// What the daemon process `pid` holds now: resident memory (VmRSS), open fds (/proc/PID/fd), and the
// CPU time it has used.
struct ProcessUsage {
    std::size_t rss_kib = 0;
    std::size_t open_fds = 0;
    double cpu_seconds = 0;  // user + system time so far
};
ProcessUsage process_usage(pid_t pid);

// The number of lines of `text` that contain `needle`.
std::size_t count_lines_with(const std::string& text, std::string_view needle);

// A libafbus connection to `bus` (a test failure, and null, if it cannot connect).
std::unique_ptr<Connection> connect(const TestBus& bus);

// Whether the buses of this run are in kernel mode (AFBUS_TEST_KERNEL_MODE=1, the kernel-mode VM tests):
// they listen on AF_BUS first, so connect() gives a native client and raw_connection() a bridged one.
bool kernel_mode();
// The same, on `bus`'s unix listener whatever the mode: a standard client's way in.
std::unique_ptr<Connection> connect_over_unix(const TestBus& bus);

}  // namespace afbus::test
