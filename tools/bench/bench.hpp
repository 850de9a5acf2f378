// afbus-bench: shared declarations of the scenarios (scenarios.cpp), the daemon launcher
// (daemon_launch.cpp) and the driver (afbus_bench.cpp).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "afbus/expected.hpp"

namespace afbus::bench {

// Errors as values: the text says what failed and why; the driver records it and goes on.
template <class T>
using Result = Expected<T, std::string>;
inline Unexpected<std::string> failure(std::string what) {
    return Unexpected(std::move(what));
}

struct Metric {
    std::string name;
    double value = 0;
    std::string unit;
    bool higher_is_better = true;
};

struct ScenarioResult {
    std::string scenario;
    std::vector<Metric> metrics;
};

// The client library every peer of a scenario uses (bench_client.hpp).
enum class ClientLibrary { Libafbus, SdBus };

struct ScenarioOptions {
    ClientLibrary client = ClientLibrary::Libafbus;
    double duration_s = 2.0;   // the measured window of each timed phase
    int parallel_clients = 4;  // ping-parallel
    int in_flight = 32;        // ping-parallel: calls outstanding per client
    // fanout and matches: the emitter sends each burst of signals as one batch where its library has a way
    // (BusClient::batch_sends)
    bool batch_emits = false;
    std::size_t payload_bytes = 1024 * 1024;
    int match_rules = 10000;   // matches
    int idle_clients = 1000;   // idle
    int policy_rules = 10000;  // policy: irrelevant rules added in its last two configurations
    // perf events counted in the daemon during each measured phase (--count-events; event_counter.hpp).
    std::vector<std::string> count_events;
    std::chrono::seconds timeout{
        120};  // bound on every wait, so that a broken daemon fails instead of hanging
};

// A bus to measure: its address, and the pid of the process doing the bus's work (for CPU and RSS from
// /proc), or -1 when unknown (then CPU and RSS metrics are left out).
struct Target {
    std::string address;
    pid_t daemon_pid = -1;
};

// The scenario names, in the order the driver runs them. "fanout-S" is the fanout scenario with S
// subscribers.
std::vector<std::string> all_scenarios(const std::vector<int>& fanout_sizes);
Result<ScenarioResult> run_scenario(const std::string& name, const Target& target,
                                    const ScenarioOptions& options);

// /proc readers.
Result<double> process_cpu_seconds(pid_t pid);  // utime + stime
Result<double> process_rss_kib(pid_t pid);      // VmRSS
// A "Name:  N kB" line of /proc/PID/status (RssAnon, VmRSS…), in KiB.
Result<double> process_status_kib(pid_t pid, std::string_view field);

// --- Daemons (daemon_launch.cpp) ---

// Afbus: afbus-daemon in broker mode. AfbusKernel: afbus-daemon in kernel mode (an afbus: listener
// beside the unix one; needs af_bus.ko and af_bus_dbus.ko), the clients on AF_BUS; AfbusBridged: the same
// bus, the clients on its unix socket, bridged into the kernel by the daemon (docs/kernel-mode.md).
enum class DaemonKind { DbusDaemon, DbusBroker, Afbus, AfbusKernel, AfbusBridged };

struct DaemonSpec {
    std::string name;  // as reported: dbus-daemon, dbus-broker, afbus-daemon, afbus-kernel, afbus-bridged
    DaemonKind kind;
    std::string binary;  // dbus-daemon / dbus-broker-launch / afbus-daemon path
};

// A daemon started fresh on a private socket in its own temporary directory; stopped by the destructor.
class RunningDaemon {
public:
    // `policy`: the <policy> / <includedir> elements of the configuration (the policy scenario); empty for
    // the permissive policy every other scenario runs with.
    static Result<std::unique_ptr<RunningDaemon>> start(const DaemonSpec& spec, std::chrono::seconds timeout,
                                                        const std::string& policy = {});
    ~RunningDaemon();
    RunningDaemon(const RunningDaemon&) = delete;
    RunningDaemon& operator=(const RunningDaemon&) = delete;

    [[nodiscard]] Target target() const { return {address_, measured_pid_}; }
    // Where the daemon's own messages went (stderr, and the journal stand-in for dbus-broker).
    [[nodiscard]] std::string log_tail() const;

private:
    RunningDaemon() = default;
    void stop() noexcept;

    std::string dir_;
    std::string address_;
    pid_t main_pid_ = -1;      // the process we started: dbus-daemon, afbus-daemon or dbus-broker-launch
    pid_t measured_pid_ = -1;  // the one doing the bus's work: the same, or the launcher's dbus-broker child
    pid_t journal_pid_ = -1;   // dbus-broker only: the journal stand-in's reader
};

// Empty when the daemon can be run here; otherwise why not ("not available: ...").
std::string unavailable_reason(const DaemonSpec& spec);

// --- The policy scenario (policy_scenario.cpp) ---

// Starts `spec` itself, once per configuration (permissive, Debian's system policy, and that plus
// options.policy_rules rules that cannot apply), and runs ping, ping-parallel and fanout-1 against each:
// the daemon's CPU per message under each, and the differences.
Result<ScenarioResult> run_policy_scenario(const DaemonSpec& spec, const ScenarioOptions& options);

}  // namespace afbus::bench
