// bench_policy: the cost of one policy decision in afbus-daemon's evaluator, without a bus around it.
//
// The configurations are those of afbus-bench's policy scenario (policy_configs.hpp): the permissive
// "open" policy, and Debian's system bus policy (system.conf's <policy> elements and whatever this
// machine has in /usr/share/dbus-1/system.d and /etc/dbus-1/system.d) with 0, 1,000 or 10,000 rules that
// cannot apply, named by destination ("dest") or by interface only ("iface"). Each is parsed by the
// daemon's own config loader (daemon/config.cpp, which compiles it with policy::compile_policy), loaded
// into a policy::PolicyEngine, and the chains of a root connection (policy_identity(0, {}, …), as the daemon
// builds them) are what the benchmarks evaluate.
//
// One iteration is what Bus::policy_denies asks the evaluator for one routed message: check_send on the
// sender's chains and check_receive on the recipient's (for a call to the bus driver, check_send only, as
// there is no recipient connection). Message facts and parties are built once, outside the loop; every
// decision is checked to be "allow", so that the path measured is the one real traffic takes.
//
//   build/tools/bench_policy [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "config.hpp"
#include "policy_configs.hpp"
#include "policy_engine.hpp"
#include "principal.hpp"

namespace {

using afbus::bench::ExtraRules;
namespace policy = afbus::policy;

struct Loaded {
    std::shared_ptr<policy::PolicyEngine> engine;
    std::shared_ptr<const policy::ConnectionChains> chains;  // a root connection's
    std::size_t send_rules = 0, receive_rules = 0;
};

Loaded load(const std::string& policy_xml) {
    const std::string text =
        "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n"
        " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
        "<busconfig>\n  <type>session</type>\n  <listen>unix:path=/tmp/bench-policy-unused</listen>\n"
        "  <auth>EXTERNAL</auth>\n" +
        policy_xml + "</busconfig>\n";
    auto config = afbus::daemon::parse_config(text, "bench_policy.conf", "/tmp");
    if (!config) {
        std::fprintf(stderr, "bench_policy: config: %s\n", config.error().to_string().c_str());
        std::exit(1);
    }
    auto engine = policy::PolicyEngine::load(config->policy_image);
    if (!engine) {
        std::fprintf(stderr, "bench_policy: image: %s\n", engine.error().c_str());
        std::exit(1);
    }
    Loaded l;
    l.engine = std::make_shared<policy::PolicyEngine>(std::move(*engine));
    afbus::daemon::AccountCache accounts;
    l.chains = l.engine->chains_for(afbus::daemon::policy_identity(0, {}, accounts, afbus::daemon::ConsoleCheck::Skip)->principal);
    l.send_rules = l.chains->size(policy::Hook::Send);
    l.receive_rules = l.chains->size(policy::Hook::Receive);
    return l;
}

// One routed message: its facts, who sends it, who receives it (null: the bus driver).
struct Case {
    const char* name;
    policy::MessageFacts facts;
    const policy::Party* sender;
    const policy::Party* recipient;
};

const std::vector<std::string> kClientNames;  // a client that owns no name
const std::vector<std::string> kLogindNames{"org.freedesktop.login1"};
const std::vector<std::string> kBenchNames{"org.afbus.Bench"};
const policy::Party kClient{":1.5", kClientNames};
const policy::Party kLogind{":1.7", kLogindNames};
const policy::Party kBenchServer{":1.9", kBenchNames};

std::vector<Case> cases() {
    std::vector<Case> c;
    {
        // A call to a service with many rules of its own: logind (88 rules in login1.conf).
        policy::MessageFacts f;
        f.type = 1;
        f.path = "/org/freedesktop/login1";
        f.interface = "org.freedesktop.login1.Manager";
        f.member = "ListSessions";
        f.destination = "org.freedesktop.login1";
        f.sender = ":1.5";
        c.push_back({"call_logind", f, &kClient, &kLogind});
    }
    {
        // Its reply, which the bus expected.
        policy::MessageFacts f;
        f.type = 2;
        f.destination = ":1.5";
        f.sender = ":1.7";
        f.is_reply = true;
        f.requested_reply = true;
        c.push_back({"reply_logind", f, &kLogind, &kClient});
    }
    {
        // afbus-bench's own call (the ping scenario's traffic).
        policy::MessageFacts f;
        f.type = 1;
        f.path = "/org/afbus/Bench";
        f.interface = "org.afbus.Bench";
        f.member = "Ping";
        f.destination = "org.afbus.Bench";
        f.sender = ":1.5";
        c.push_back({"call_bench", f, &kClient, &kBenchServer});
    }
    {
        // A call to the bus driver: send rules only.
        policy::MessageFacts f;
        f.type = 1;
        f.path = "/org/freedesktop/DBus";
        f.interface = "org.freedesktop.DBus";
        f.member = "GetNameOwner";
        f.destination = "org.freedesktop.DBus";
        f.sender = ":1.5";
        c.push_back({"call_driver", f, &kClient, nullptr});
    }
    {
        // A broadcast signal from logind to one subscriber (checked once per recipient).
        policy::MessageFacts f;
        f.type = 4;
        f.path = "/org/freedesktop/login1";
        f.interface = "org.freedesktop.login1.Manager";
        f.member = "SessionNew";
        f.sender = ":1.7";
        c.push_back({"signal_logind", f, &kLogind, &kClient});
    }
    return c;
}

void run(benchmark::State& state, const Loaded& loaded, const Case& c) {
    const policy::ConnectionChains& chains = *loaded.chains;  // sender and recipient are both root
    {
        const bool sent = chains.check_send(c.facts, c.recipient).allowed();
        const bool received = !c.recipient || chains.check_receive(c.facts, c.sender, false).allowed();
        if (!sent || !received) {
            state.SkipWithError("the policy does not allow this message");
            return;
        }
    }
    for (auto _ : state) {
        policy::Decision send = chains.check_send(c.facts, c.recipient);
        benchmark::DoNotOptimize(send);
        if (c.recipient) {
            policy::Decision receive = chains.check_receive(c.facts, c.sender, false);
            benchmark::DoNotOptimize(receive);
        }
    }
    state.counters["send_rules"] = static_cast<double>(loaded.send_rules);
    state.counters["receive_rules"] = static_cast<double>(loaded.receive_rules);
}

}  // namespace

int main(int argc, char** argv) {
    struct Config {
        std::string label;
        std::string xml;
    };
    std::vector<Config> configs{{"open", std::string(afbus::bench::kOpenPolicy)},
                                {"system", afbus::bench::system_policy()}};
    for (int n : {1000, 10000}) {
        configs.push_back({"system+" + std::to_string(n) + "dest",
                           afbus::bench::system_policy(ExtraRules::Destination, n)});
        configs.push_back(
            {"system+" + std::to_string(n) + "iface", afbus::bench::system_policy(ExtraRules::Interface, n)});
    }
    // Loaded once; kept alive for the whole run (the benchmarks refer to them).
    static std::vector<std::pair<std::string, Loaded>> loaded;
    for (const Config& c : configs) loaded.emplace_back(c.label, load(c.xml));
    static const std::vector<Case> all_cases = cases();
    for (const Case& c : all_cases)
        for (const auto& [label, l] : loaded)
            benchmark::RegisterBenchmark((std::string("decide/") + c.name + "/" + label).c_str(),
                                         [&l = l, &c](benchmark::State& s) { run(s, l, c); });
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
