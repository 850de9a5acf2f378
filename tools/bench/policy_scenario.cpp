// The policy scenario: what a system bus's policy costs per message, for each daemon.
//
// The daemon is started four times, each time fresh and with the same limits, differing only in policy:
//   open    the permissive policy every other scenario runs with (allow everything: 3 rules);
//   system  Debian 12's system bus policy: the <policy> elements of /usr/share/dbus-1/system.conf copied
//           verbatim, its <includedir>s (/usr/share/dbus-1/system.d and /etc/dbus-1/system.d, whatever
//           this machine has installed there), and a small policy that lets the benchmark's echo server
//           own org.afbus.Bench and be called;
//   dest    system + N rules that cannot apply: <allow send_destination="org.irrelevant.NameK"
//           send_interface="org.irrelevant.NameK.Iface"/> in the default context (nobody owns those names);
//   iface   system + N rules that cannot apply and name no destination: <allow
//           send_interface="org.irrelevant.IfaceK"/> (no message of the benchmark has such an interface).
// Against each, the traffic of three ordinary scenarios: ping (one call at a time), ping-parallel
// (pipelined calls) and fanout-1 (broadcast signals to one subscriber), and their daemon CPU per message
// (/proc/<pid>/stat utime + stime over the scenario's window, as everywhere in afbus-bench). Every routed
// message costs the daemon one send decision (for the sender) and one receive decision (for the
// recipient); a call is two messages (call and reply), a signal to one subscriber one.
//
// Reported per traffic T: T_us_open, T_us_system, T_us_system_N_dest, T_us_system_N_iface (daemon CPU µs
// per message), T_policy_cost_us = system - open (what the system policy adds per message),
// T_dest_rules_cost_us = dest - system and T_iface_rules_cost_us = iface - system (what N rules that
// cannot apply add). Before the traffic, a probe checks that the policy is in force: asking for a second
// name must be refused with AccessDenied under the system policies and granted under the open one.
#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "afbus/connection.hpp"
#include "afbus/error.hpp"
#include "bench.hpp"
#include "policy_configs.hpp"

namespace afbus::bench {
namespace {

std::string policy_text(bool system, ExtraRules extra, int rules) {
    if (!system) return std::string(kOpenPolicy);
    return system_policy(extra, rules);
}

struct Variant {
    std::string label;  // as in the metric names
    bool system;
    ExtraRules extra;
};

struct Traffic {
    const char* label;     // as in the metric names
    const char* scenario;  // the scenario whose traffic it is
    const char* metric;    // its daemon CPU metric
    double to_us_per_message;
};

// ping and ping-parallel report µs per call (two messages); fanout-1 seconds per 100,000 delivered
// signals (one message each): 1e6 / 1e5 = 10 µs per message per unit.
constexpr Traffic kTraffic[] = {
    {"call", "ping", "daemon_cpu_us_per_call", 0.5},
    {"pipelined", "ping-parallel", "daemon_cpu_us_per_call", 0.5},
    {"signal", "fanout-1", "daemon_cpu_s_per_100k", 10.0},
};

// Asks for a name the policy does not grant: refused (AccessDenied) under a system policy, granted under
// the open one. Proves that the configuration the daemon runs with is the one meant.
Result<void> probe(const Target& target, bool system) {
    auto c = Connection::open(target.address);
    if (!c) return failure("probe: connect: " + c.error().name + ": " + c.error().message);
    auto r = (*c)->request_name("org.afbus.BenchDenied", name_flags::kDoNotQueue);
    if (system) {
        if (r) return failure("probe: the system policy let a client own org.afbus.BenchDenied");
        if (r.error().name != error_names::kAccessDenied)
            return failure("probe: RequestName failed with " + r.error().name + " instead of AccessDenied");
    } else if (!r || *r != RequestNameReply::PrimaryOwner) {
        return failure("probe: the open policy did not let a client own org.afbus.BenchDenied");
    }
    return {};
}

}  // namespace

Result<ScenarioResult> run_policy_scenario(const DaemonSpec& spec, const ScenarioOptions& options) {
    const std::string n = std::to_string(options.policy_rules);
    const std::vector<Variant> variants{
        {"open", false, ExtraRules::None},
        {"system", true, ExtraRules::None},
        {"system_" + n + "_dest", true, ExtraRules::Destination},
        {"system_" + n + "_iface", true, ExtraRules::Interface},
    };
    // traffic -> variant -> daemon CPU µs per message
    std::map<std::string, std::map<std::string, double>> us;
    for (const Variant& v : variants) {
        auto daemon =
            RunningDaemon::start(spec, options.timeout, policy_text(v.system, v.extra, options.policy_rules));
        if (!daemon) return failure(v.label + ": start: " + daemon.error());
        const Target target = (*daemon)->target();
        if (target.daemon_pid <= 0) return failure("policy needs the daemon's pid");
        if (auto p = probe(target, v.system); !p)
            return failure(v.label + ": " + p.error() + " [daemon log: " + (*daemon)->log_tail() + "]");
        for (const Traffic& t : kTraffic) {
            auto r = run_scenario(t.scenario, target, options);
            if (!r)
                return failure(v.label + ": " + t.scenario + ": " + r.error() +
                               " [daemon log: " + (*daemon)->log_tail() + "]");
            auto m = std::find_if(r->metrics.begin(), r->metrics.end(),
                                  [&](const Metric& metric) { return metric.name == t.metric; });
            if (m == r->metrics.end())
                return failure(v.label + ": " + t.scenario + " reported no " + t.metric);
            us[t.label][v.label] = m->value * t.to_us_per_message;
        }
    }
    ScenarioResult result{"policy", {}};
    for (const Traffic& t : kTraffic) {
        auto& u = us[t.label];
        for (const Variant& v : variants)
            result.metrics.push_back({std::string(t.label) + "_us_" + v.label, u[v.label], "us/msg", false});
        const std::string traffic = t.label;
        result.metrics.push_back({traffic + "_policy_cost_us", u["system"] - u["open"], "us/msg", false});
        result.metrics.push_back(
            {traffic + "_dest_rules_cost_us", u[variants[2].label] - u["system"], "us/msg", false});
        result.metrics.push_back(
            {traffic + "_iface_rules_cost_us", u[variants[3].label] - u["system"], "us/msg", false});
    }
    return result;
}

}  // namespace afbus::bench
