// TestBus: a message bus daemon spawned for one test on a private socket in a temporary directory, never
// the machine's real buses. The daemon is dbus-daemon unless AFBUS_TEST_DAEMON names another binary with
// the same command line (afbus-daemon). Its address is read from --print-address on a pipe: no sleeps.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
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
};

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

private:
    std::string dir_;
    std::string address_;
    pid_t pid_ = -1;
};

// The bus daemon the integration tests run: $AFBUS_TEST_DAEMON if set, else dbus-daemon, by absolute path
// when it is in $PATH.
std::string daemon_under_test();

// A libafbus connection to `bus` (a test failure, and null, if it cannot connect).
std::unique_ptr<Connection> connect(const TestBus& bus);

}  // namespace afbus::test
