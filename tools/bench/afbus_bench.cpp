// afbus-bench: the side-by-side benchmark of afbus-daemon, dbus-daemon and dbus-broker.
//
// The driver starts each daemon fresh (on a private socket, with the same permissive configuration) for
// every scenario and repetition, runs the daemons interleaved (A B C A B C ...) so that their ratios come
// from the same minutes, and prints one JSON object per result and per summary row, then a table of
// medians and ratios. With --address it measures one already running bus instead. docs/performance.md
// says what each scenario does and does not measure.
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "bench.hpp"
#include "bench_client.hpp"

using namespace afbus::bench;

namespace {

const char kUsage[] =
    "usage: afbus-bench [options]\n"
    "  --daemons=LIST          dbus-daemon,dbus-broker,afbus-daemon (default: these three), afbus-kernel\n"
    "                          and afbus-bridged (afbus-daemon in kernel mode, the clients on AF_BUS or\n"
    "                          bridged from its unix socket; need af_bus_dbus.ko)\n"
    "  --afbus-daemon=PATH     the afbus-daemon binary; without it afbus-daemon is reported \"not "
    "available\"\n"
    "  --dbus-daemon=PATH      (default dbus-daemon)    --dbus-broker-launch=PATH (default "
    "dbus-broker-launch)\n"
    "  --client=LIBRARY        the client library of every peer: libafbus (default) or sd-bus\n"
    "  --address=ADDRESS       measure this running bus instead of starting daemons\n"
    "  --daemon-pid=PID        with --address: the bus process, for its CPU time and RSS\n"
    "  --scenarios=LIST        ping,ping-parallel,fanout,payload,connect,matches,idle,policy,floor,relay\n"
    "                          (default: all; fanout means every --fanout size, fanout-S one of them;\n"
    "                          floor measures the machine: a hop over a socketpair, no bus; relay,\n"
    "                          a relay process doing no work between the caller and an echo process,\n"
    "                          with an epoll loop and four io_uring ones: the least a daemon's loop\n"
    "                          costs)\n"
    "  --fanout=LIST           subscriber counts for fanout (default 1,10,50)\n"
    "  --repetitions=N         (default 3)\n"
    "  --duration=SECONDS      length of each timed phase (default 2)\n"
    "  --pin=CPU               run the driver, the daemons and every client process on this one CPU\n"
    "  --parallel-clients=N    ping-parallel client processes (default 4)\n"
    "  --in-flight=N           ping-parallel calls outstanding per client (default 32)\n"
    "  --batch-emits=0|1       fanout, matches: send each burst of 64 signals as one batch where the client\n"
    "                          library can (libafbus: Connection::batch_sends; sd-bus cannot) (default 0)\n"
    "  --payload-bytes=N       payload echo size (default 1048576)\n"
    "  --match-rules=N         matches: rules installed (default 10000)\n"
    "  --idle-clients=N        idle: clients connected (default 1000)\n"
    "  --policy-rules=N        policy: rules that cannot apply, added to the system policy (default 10000)\n"
    "  --timeout=SECONDS       bound on every wait for a daemon or a worker (default 120)\n"
    "  --count-events=LIST     perf events to count in the daemon during each measured phase, reported per\n"
    "                          message, connection, delivery or MiB (runs `perf stat`; e.g.\n"
    "                          task-clock,raw_syscalls:sys_enter,probe_libc:malloc; counting slows the\n"
    "                          daemon: use such a run for its counts, not its rates)\n"
    "  --quick                 a smoke run: --duration=0.1 --fanout=1,3 --match-rules=200 --idle-clients=20\n"
    "                          --policy-rules=200 --repetitions=1 (numbers meaningless, every code path\n"
    "                          exercised)\n"
    "  --json=FILE             one JSON object per line (results, then summary); '-' for stdout, and the\n"
    "                          table then goes to stderr\n";

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::string item;
    std::istringstream in(s);
    while (std::getline(in, item, sep))
        if (!item.empty()) out.push_back(item);
    return out;
}

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    return out + "\"";
}

std::string json_number(double v) {
    if (!std::isfinite(v)) return "null";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v);
    return buf;
}

std::string format_value(double v) {
    char buf[64];
    if (std::fabs(v) >= 1000) {
        std::snprintf(buf, sizeof buf, "%.0f", v);
    } else if (std::fabs(v) >= 10) {
        std::snprintf(buf, sizeof buf, "%.1f", v);
    } else {
        std::snprintf(buf, sizeof buf, "%.3g", v);
    }
    return buf;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct Machine {
    long cpus = 0;
    std::string cpu_model, kernel;
};

Machine machine() {
    Machine m;
    m.cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
    std::ifstream cpuinfo("/proc/cpuinfo");
    std::string line;
    while (std::getline(cpuinfo, line)) {
        if (line.starts_with("model name")) {
            m.cpu_model = line.substr(line.find(':') + 2);
            break;
        }
    }
    utsname u{};
    if (::uname(&u) == 0) m.kernel = u.release;
    return m;
}

struct Config {
    std::vector<std::string> daemons{"dbus-daemon", "dbus-broker", "afbus-daemon"};
    std::string afbus_daemon, dbus_daemon = "dbus-daemon", dbus_broker_launch = "dbus-broker-launch";
    std::string address;
    pid_t daemon_pid = -1;
    std::vector<std::string> scenarios;
    std::vector<int> fanout{1, 10, 50};
    int repetitions = 3;
    int pin = -1;
    std::string json_path;
    ScenarioOptions options;
};

std::optional<Config> parse(int argc, char** argv) {
    Config c;
    bool quick = false;
    std::map<std::string, std::string> given;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--quick") {
            quick = true;
            continue;
        }
        if (arg == "--help" || arg == "-h" || !arg.starts_with("--") || arg.find('=') == std::string::npos)
            return std::nullopt;
        const auto eq = arg.find('=');
        given[arg.substr(2, eq - 2)] = arg.substr(eq + 1);
    }
    if (quick) {
        c.options.duration_s = 0.1;
        c.fanout = {1, 3};
        c.options.match_rules = 200;
        c.options.idle_clients = 20;
        c.options.policy_rules = 200;
        c.repetitions = 1;
    }
    for (const auto& [key, value] : given) {
        char* end = nullptr;
        const double number = std::strtod(value.c_str(), &end);
        const bool numeric = end && *end == '\0' && !value.empty();
        if (key == "daemons") {
            c.daemons = split(value, ',');
        } else if (key == "afbus-daemon") {
            c.afbus_daemon = value;
        } else if (key == "dbus-daemon") {
            c.dbus_daemon = value;
        } else if (key == "dbus-broker-launch") {
            c.dbus_broker_launch = value;
        } else if (key == "client") {
            auto library = parse_client_library(value);
            if (!library) {
                std::fprintf(stderr, "afbus-bench: unknown client library %s\n", value.c_str());
                return std::nullopt;
            }
            c.options.client = *library;
        } else if (key == "address") {
            c.address = value;
        } else if (key == "json") {
            c.json_path = value;
        } else if (key == "scenarios") {
            c.scenarios = split(value, ',');
        } else if (key == "count-events") {
            c.options.count_events = split(value, ',');
        } else if (key == "fanout") {
            c.fanout.clear();
            for (const auto& s : split(value, ',')) c.fanout.push_back(std::atoi(s.c_str()));
        } else if (!numeric) {
            std::fprintf(stderr, "afbus-bench: bad option --%s=%s\n", key.c_str(), value.c_str());
            return std::nullopt;
        } else if (key == "daemon-pid") {
            c.daemon_pid = static_cast<pid_t>(number);
        } else if (key == "repetitions") {
            c.repetitions = std::max(1, static_cast<int>(number));
        } else if (key == "duration") {
            c.options.duration_s = number;
        } else if (key == "pin") {
            c.pin = static_cast<int>(number);
        } else if (key == "parallel-clients") {
            c.options.parallel_clients = static_cast<int>(number);
        } else if (key == "batch-emits") {
            c.options.batch_emits = number != 0;
        } else if (key == "in-flight") {
            c.options.in_flight = std::max(1, static_cast<int>(number));
        } else if (key == "payload-bytes") {
            c.options.payload_bytes = static_cast<std::size_t>(number);
        } else if (key == "match-rules") {
            c.options.match_rules = std::max(2, static_cast<int>(number));
        } else if (key == "timeout") {
            c.options.timeout = std::chrono::seconds(std::max(1, static_cast<int>(number)));
        } else if (key == "idle-clients") {
            c.options.idle_clients = std::max(1, static_cast<int>(number));
        } else if (key == "policy-rules") {
            c.options.policy_rules = std::max(1, static_cast<int>(number));
        } else {
            std::fprintf(stderr, "afbus-bench: unknown option --%s\n", key.c_str());
            return std::nullopt;
        }
    }
    // Expand the scenario list: "fanout" means every configured size.
    const auto all = all_scenarios(c.fanout);
    if (c.scenarios.empty()) {
        c.scenarios = all;
        // policy starts daemons with its own configurations: not something to do to a running bus.
        if (!c.address.empty()) std::erase(c.scenarios, std::string("policy"));
    } else {
        std::vector<std::string> expanded;
        for (const auto& s : c.scenarios) {
            if (s == "fanout") {
                for (int n : c.fanout) expanded.push_back("fanout-" + std::to_string(n));
            } else {
                expanded.push_back(s);
            }
        }
        c.scenarios = expanded;
    }
    return c;
}

std::optional<DaemonSpec> spec_for(const Config& c, const std::string& name) {
    if (name == "dbus-daemon") return DaemonSpec{name, DaemonKind::DbusDaemon, c.dbus_daemon};
    if (name == "dbus-broker") return DaemonSpec{name, DaemonKind::DbusBroker, c.dbus_broker_launch};
    if (name == "afbus-daemon") return DaemonSpec{name, DaemonKind::Afbus, c.afbus_daemon};
    if (name == "afbus-kernel") return DaemonSpec{name, DaemonKind::AfbusKernel, c.afbus_daemon};
    if (name == "afbus-bridged") return DaemonSpec{name, DaemonKind::AfbusBridged, c.afbus_daemon};
    return std::nullopt;
}

// One row of the summary: a scenario's metric, its medians per daemon.
struct Row {
    std::string scenario, metric, unit;
    bool higher_is_better = true;
    std::map<std::string, std::vector<double>> values;  // daemon -> one value per repetition
};

}  // namespace

int main(int argc, char** argv) {
    auto parsed = parse(argc, argv);
    if (!parsed) {
        std::fputs(kUsage, stderr);
        return 2;
    }
    Config& config = *parsed;
    if (const auto why = client_library_unavailable_reason(config.options.client); !why.empty()) {
        std::fprintf(stderr, "afbus-bench: --client=%s: %s\n",
                     std::string(client_library_name(config.options.client)).c_str(), why.c_str());
        return 2;
    }
    // Workers and daemons may go away while we write to them; that is reported, not fatal.
    ::signal(SIGPIPE, SIG_IGN);
    // dbus-broker is the launcher's child: as subreaper we can reap it after the launcher exits.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (config.pin >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(config.pin, &set);
        // Inherited by everything forked from here on: daemons, the broker's launcher and all workers.
        if (::sched_setaffinity(0, sizeof set, &set) < 0) {
            std::fprintf(stderr, "afbus-bench: cannot pin to CPU %d: %s\n", config.pin, std::strerror(errno));
            return 2;
        }
    }

    FILE* json = nullptr;
    FILE* table = stdout;
    if (config.json_path == "-") {
        json = stdout;
        table = stderr;
    } else if (!config.json_path.empty()) {
        json = std::fopen(config.json_path.c_str(), "w");
        if (!json) {
            std::fprintf(stderr, "afbus-bench: cannot write %s\n", config.json_path.c_str());
            return 2;
        }
    }
    auto emit_json = [&](const std::string& line) {
        if (!json) return;
        std::fprintf(json, "%s\n", line.c_str());
        std::fflush(json);
    };

    const Machine m = machine();
    {
        std::ostringstream o;
        o << "{\"type\":\"config\",\"nproc\":" << m.cpus << ",\"cpu_model\":" << json_string(m.cpu_model)
          << ",\"kernel\":" << json_string(m.kernel) << ",\"pinned_cpu\":" << config.pin
          << ",\"client\":" << json_string(std::string(client_library_name(config.options.client)))
          << ",\"repetitions\":" << config.repetitions
          << ",\"duration_s\":" << json_number(config.options.duration_s)
          << ",\"match_rules\":" << config.options.match_rules
          << ",\"idle_clients\":" << config.options.idle_clients
          << ",\"policy_rules\":" << config.options.policy_rules
          << ",\"payload_bytes\":" << config.options.payload_bytes << "}";
        emit_json(o.str());
    }

    // Which daemons run; the others are reported with their reason.
    std::vector<std::pair<std::string, std::optional<DaemonSpec>>> daemons;  // name, spec when available
    std::map<std::string, std::string> unavailable;
    if (!config.address.empty()) {
        daemons.push_back({"external", std::nullopt});
    } else {
        for (const auto& name : config.daemons) {
            auto spec = spec_for(config, name);
            if (!spec) {
                std::fprintf(stderr, "afbus-bench: unknown daemon %s\n", name.c_str());
                return 2;
            }
            const std::string why = unavailable_reason(*spec);
            emit_json("{\"type\":\"daemon\",\"daemon\":" + json_string(name) +
                      ",\"available\":" + (why.empty() ? "true" : "false") +
                      (why.empty() ? "" : ",\"reason\":" + json_string(why)) + "}");
            if (!why.empty()) {
                std::fprintf(stderr, "afbus-bench: %s: %s\n", name.c_str(), why.c_str());
                unavailable[name] = why;
                continue;
            }
            daemons.push_back({name, spec});
        }
    }

    std::vector<Row> rows;
    auto row_for = [&](const std::string& scenario, const Metric& metric) -> Row& {
        for (auto& r : rows)
            if (r.scenario == scenario && r.metric == metric.name) return r;
        rows.push_back({scenario, metric.name, metric.unit, metric.higher_is_better, {}});
        return rows.back();
    };

    int errors = 0;
    for (int rep = 1; rep <= config.repetitions; ++rep) {
        for (const auto& scenario : config.scenarios) {
            // Interleaved: every daemon runs this scenario before any runs the next one.
            for (const auto& [name, spec] : daemons) {
                std::fprintf(stderr, "afbus-bench: rep %d/%d %-14s %-13s ", rep, config.repetitions,
                             scenario.c_str(), name.c_str());
                std::fflush(stderr);
                Result<ScenarioResult> result = failure("not run");
                if (spec && scenario == "policy") {
                    // Starts the daemon itself, once per configuration.
                    result = run_policy_scenario(*spec, config.options);
                } else if (spec) {
                    // Fresh for every run: RSS and CPU start from the same state for everyone.
                    auto daemon = RunningDaemon::start(*spec, config.options.timeout);
                    if (!daemon) {
                        result = failure("start: " + daemon.error());
                    } else {
                        result = run_scenario(scenario, (*daemon)->target(), config.options);
                        if (!result)
                            result = failure(result.error() + " [daemon log: " + (*daemon)->log_tail() + "]");
                    }
                } else {
                    result =
                        run_scenario(scenario, Target{config.address, config.daemon_pid}, config.options);
                }
                std::ostringstream o;
                o << "{\"type\":\"result\",\"daemon\":" << json_string(name)
                  << ",\"scenario\":" << json_string(scenario) << ",\"rep\":" << rep;
                if (result) {
                    o << ",\"status\":\"ok\",\"metrics\":{";
                    bool first = true;
                    std::string line;
                    for (const auto& metric : result->metrics) {
                        o << (first ? "" : ",") << json_string(metric.name) << ":"
                          << json_number(metric.value);
                        first = false;
                        row_for(scenario, metric).values[name].push_back(metric.value);
                        line += " " + metric.name + "=" + format_value(metric.value);
                    }
                    o << "}}";
                    std::fprintf(stderr, "%s\n", line.c_str());
                } else {
                    ++errors;
                    o << ",\"status\":\"error\",\"error\":" << json_string(result.error()) << "}";
                    std::fprintf(stderr, "ERROR %s\n", result.error().c_str());
                }
                emit_json(o.str());
            }
        }
    }

    // Ratios between the daemons that ran, as value(a) / value(b): read each against its "better" column.
    std::vector<std::pair<std::string, std::string>> pairs;
    auto selected = [&](const std::string& n) {
        return std::find(config.daemons.begin(), config.daemons.end(), n) != config.daemons.end();
    };
    for (const auto& [a, b] :
         std::vector<std::pair<std::string, std::string>>{{"dbus-broker", "dbus-daemon"},
                                                          {"afbus-daemon", "dbus-broker"},
                                                          {"afbus-daemon", "dbus-daemon"},
                                                          {"afbus-kernel", "dbus-broker"},
                                                          {"afbus-kernel", "dbus-daemon"},
                                                          {"afbus-kernel", "afbus-daemon"},
                                                          {"afbus-bridged", "afbus-daemon"}})
        if (config.address.empty() && selected(a) && selected(b)) pairs.push_back({a, b});
    std::vector<std::string> columns;
    if (config.address.empty()) {
        columns = config.daemons;
    } else {
        columns = {"external"};
    }

    std::fprintf(table,
                 "\nmachine: %ld CPUs, %s, kernel %s; %s; %s clients; %d repetition(s) of %.3g s phases; "
                 "medians\n\n",
                 m.cpus, m.cpu_model.c_str(), m.kernel.c_str(),
                 config.pin >= 0 ? ("all processes pinned to CPU " + std::to_string(config.pin)).c_str()
                                 : "not pinned",
                 std::string(client_library_name(config.options.client)).c_str(), config.repetitions, config.options.duration_s);
    std::fprintf(table, "| scenario | metric | better |");
    for (const auto& c : columns) std::fprintf(table, " %s |", c.c_str());
    for (const auto& [a, b] : pairs) std::fprintf(table, " %s / %s |", a.c_str(), b.c_str());
    std::fprintf(table, "\n|---|---|---|");
    for (std::size_t i = 0; i < columns.size() + pairs.size(); ++i) std::fprintf(table, "--:|");
    std::fprintf(table, "\n");
    for (const auto& row : rows) {
        std::map<std::string, double> medians;
        for (const auto& [daemon, values] : row.values) medians[daemon] = median(values);
        std::ostringstream o;
        o << "{\"type\":\"summary\",\"scenario\":" << json_string(row.scenario)
          << ",\"metric\":" << json_string(row.metric) << ",\"unit\":" << json_string(row.unit)
          << ",\"better\":\"" << (row.higher_is_better ? "higher" : "lower") << "\",\"median\":{";
        bool first = true;
        for (const auto& [daemon, value] : medians) {
            o << (first ? "" : ",") << json_string(daemon) << ":" << json_number(value);
            first = false;
        }
        o << "},\"ratios\":{";
        first = true;
        std::fprintf(table, "| %s | %s | %s |", row.scenario.c_str(),
                     (row.metric + " (" + row.unit + ")").c_str(), row.higher_is_better ? "higher" : "lower");
        for (const auto& c : columns) {
            if (medians.count(c)) {
                std::fprintf(table, " %s |", format_value(medians[c]).c_str());
            } else {
                std::fprintf(table, " %s |", unavailable.count(c) ? "not available" : "error");
            }
        }
        for (const auto& [a, b] : pairs) {
            if (medians.count(a) && medians.count(b) && medians[b] != 0) {
                const double ratio = medians[a] / medians[b];
                std::fprintf(table, " %.2f× |", ratio);
                o << (first ? "" : ",") << json_string(a + "/" + b) << ":" << json_number(ratio);
                first = false;
            } else {
                std::fprintf(table, " – |");
            }
        }
        std::fprintf(table, "\n");
        o << "}}";
        emit_json(o.str());
    }
    if (json && json != stdout) std::fclose(json);
    if (errors) std::fprintf(stderr, "afbus-bench: %d run(s) failed\n", errors);
    return errors ? 1 : 0;
}
