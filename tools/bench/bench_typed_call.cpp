// bench_typed_call: what libafbus's typed layer costs a method call (issue 19), as a Google Benchmark.
// One round trip through a private dbus-daemon, two ways:
//   HandAssembled  MessageBuilder + append + Connection::call + read_all on the client, and a method
//                  exported as an Interface whose handler reads and appends by hand (signatures written
//                  out) on the service;
//   Typed          afbus::Proxy::call<double> on the client, and the same method registered with
//                  afbus::InterfaceBuilder from a lambda on the service.
// The service runs its own connection in a thread of its own. The two figures should be equal within the
// noise: the typed layer does at compile time what the hand-written code does at run time.
//
//   build/tools/bench_typed_call [--benchmark_repetitions=5]     (docs/performance.md, "Typed calls")
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "afbus/connection.hpp"
#include "afbus/proxy.hpp"
#include "afbus/typed_object.hpp"
#include "bench.hpp"

namespace {

using namespace std::chrono_literals;

constexpr const char* kService = "org.example.Bench";
constexpr const char* kPath = "/org/example/Bench";
constexpr const char* kTyped = "org.example.Typed";
constexpr const char* kHand = "org.example.Hand";

// The service: both interfaces on one object, served from a thread until `stop` is set.
class Service {
public:
    explicit Service(const std::string& address) {
        auto started = started_.get_future();
        thread_ = std::thread([this, address] { serve(address); });
        ok_ = started.get();
    }
    ~Service() {
        stop_ = true;
        thread_.join();
    }
    [[nodiscard]] bool ok() const { return ok_; }

private:
    void serve(const std::string& address) {
        auto connection = afbus::Connection::open(address);
        if (!connection) return fail("service connect: " + connection.error().message);
        afbus::Connection& c = **connection;

        afbus::Interface hand{kHand, {}, {}, {}};
        hand.methods.push_back({"Add",
                                {{"a", "d"}, {"b", "d"}},
                                {{"sum", "d"}},
                                [](const afbus::Message& call,
                                   afbus::MessageBuilder& reply) -> afbus::Expected<void, afbus::Error> {
                                    auto args = afbus::read_all<double, double>(call);
                                    if (!args)
                                        return afbus::Unexpected(afbus::make_error(
                                            afbus::error_names::kInvalidArgs, "Add takes two doubles"));
                                    afbus::append(reply, std::get<0>(*args) + std::get<1>(*args));
                                    return {};
                                }});
        afbus::InterfaceBuilder typed{kTyped};
        typed.method("Add", [](double a, double b) { return a + b; }, {"a", "b"}, {"sum"});

        afbus::Object object(c, kPath);
        if (auto r = object.add(std::move(hand)); !r) return fail("export: " + r.error().message);
        if (auto r = object.add(std::move(typed)); !r) return fail("export: " + r.error().message);
        if (auto r = c.request_name(kService); !r || *r != afbus::RequestNameReply::PrimaryOwner)
            return fail("cannot own " + std::string(kService));
        started_.set_value(true);
        ok_started_ = true;
        while (!stop_.load()) {
            auto served = c.run_until([this] { return stop_.load(); }, 100ms);
            if (!served) return fail("service: " + served.error().message);
        }
    }
    void fail(const std::string& why) {
        std::fprintf(stderr, "bench_typed_call: %s\n", why.c_str());
        if (!ok_started_) started_.set_value(false);
        ok_started_ = true;
    }

    std::promise<bool> started_;
    bool ok_started_ = false;  // (the service thread's: whether started_ has its value)
    bool ok_ = false;
    std::thread thread_;
    std::atomic<bool> stop_{false};
};

struct Bus {
    std::unique_ptr<afbus::bench::RunningDaemon> daemon;
    std::unique_ptr<Service> service;
    std::unique_ptr<afbus::Connection> client;
};

Bus start_bus() {
    Bus b;
    const afbus::bench::DaemonSpec spec{"dbus-daemon", afbus::bench::DaemonKind::DbusDaemon, "dbus-daemon"};
    auto daemon = afbus::bench::RunningDaemon::start(spec, 30s);
    if (!daemon) {
        std::fprintf(stderr, "bench_typed_call: %s\n", daemon.error().c_str());
        return b;
    }
    b.daemon = std::move(*daemon);
    b.service = std::make_unique<Service>(b.daemon->target().address);
    auto client = afbus::Connection::open(b.daemon->target().address);
    if (b.service->ok() && client) b.client = std::move(*client);
    return b;
}

// One bus for the whole run (benchmarks have no teardown hook): stopped at exit, client first.
Bus* bus() {
    static Bus instance = start_bus();
    return &instance;
}

void HandAssembled(benchmark::State& state) {
    const Bus* b = bus();
    if (!b->client) return state.SkipWithError("no bus");
    double a = 1;
    for (auto _ : state) {
        auto builder = afbus::MessageBuilder::method_call(kService, kPath, kHand, "Add");
        afbus::append(builder, a, 2.0);
        auto message = builder.build();
        if (!message) return state.SkipWithError("build failed");
        auto reply = b->client->call(std::move(*message));
        if (!reply) return state.SkipWithError(reply.error().message.c_str());
        auto sum = afbus::read_all<double>(*reply);
        if (!sum || std::get<0>(*sum) != a + 2.0) return state.SkipWithError("wrong answer");
        a += 1;
    }
}
BENCHMARK(HandAssembled)->UseRealTime();

void Typed(benchmark::State& state) {
    const Bus* b = bus();
    if (!b->client) return state.SkipWithError("no bus");
    afbus::Proxy proxy(*b->client, kService, kPath);
    double a = 1;
    for (auto _ : state) {
        auto sum = proxy.call<double>(kTyped, "Add", a, 2.0);
        if (!sum) return state.SkipWithError(sum.error().message.c_str());
        if (*sum != a + 2.0) return state.SkipWithError("wrong answer");
        a += 1;
    }
}
BENCHMARK(Typed)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
