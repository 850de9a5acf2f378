// What broker mode does when memory runs out during a turn of the event loop, outside any one message's
// way through the model (issue 17, item 4): a connection being taken and authenticated, its bytes read
// and framed, a call routed and its answer written back (the flush after each turn), and the
// auth_timeout timer firing. test_bus_out_of_memory covers the model's own steps with a fake delivery;
// here the bus runs on a real BrokerDelivery and socket pairs, and every allocation of the step fails
// once, in turn (support/failing_allocations), until the step makes fewer allocations than that. After
// each run, allocating normally again:
//   - nothing escaped the event loop (a std::bad_alloc out of it would end the daemon);
//   - the connection the step was about was either served in the end, or told NoMemory, or closed by
//     the bus: never left waiting, and never served half (a call without an answer);
//   - the bus still serves a newcomer, whose call the service answers.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "afbus/error.hpp"
#include "afbus/framer.hpp"
#include "afbus/types.hpp"
#include "broker_delivery.hpp"
#include "bus.hpp"
#include "support/failing_allocations.hpp"
#include "support/scripted_stream_peer.hpp"

namespace afbus::daemon {
namespace {

using namespace std::chrono_literals;
using test::driver_call_builder;
using test::FailingAllocations;
using Client = test::ScriptedStreamPeer;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kService = "org.x.Service";

struct World {
    EventLoop loop;
    Bus bus{loop, BusSettings{}};
    BrokerDelivery& broker = bus.use_delivery<BrokerDelivery>();
    std::optional<Client> service;
    bool escaped = false, failed = false;
    std::size_t made = 0;

    // A new connection: its client end in `client` (made in place: a framer's deque allocates when
    // made or moved), the other end taken by the bus now.
    void connect(std::optional<Client>& client) {
        int pair[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair), 0);
        {
            FailingAllocations::Pause pause;
            client.emplace(Fd(pair[0]));
        }
        broker.add_connection(Fd(pair[1]));
    }
    // A client, connected and registered (its Hello answered), outside the count.
    void register_client(std::optional<Client>& client) {
        connect(client);
        client->say(test::one_message([] { return driver_call_builder("Hello"); }, 1));
        pump([&] {
            client->read();
            return client->answer(1) != nullptr;
        });
        ASSERT_TRUE(client->answer(1)) << "a client was not registered";
    }
    // Runs the loop until `done` (the clients read in between), for at most `limit`. (A template: a
    // std::function could allocate, inside the step.)
    template <class Done>
    void pump(Done&& done, std::chrono::milliseconds limit = 2000ms) {
        const auto deadline = Clock::now() + limit;
        while (!done() && Clock::now() < deadline) (void)loop.run_once(10ms);
    }
    // The service: registered, owning kService, and answering every M call it is given.
    void start_service() {
        connect(service);
        std::vector<Message> hello_and_request;
        hello_and_request.push_back(driver_call_builder("Hello").build(1).value());
        auto request = driver_call_builder("RequestName");
        append(request, std::string(kService), std::uint32_t{0});
        hello_and_request.push_back(request.build(2).value());
        service->say(hello_and_request);
        pump([&] {
            service->read();
            return service->answer(2) != nullptr;
        });
        ASSERT_TRUE(service->answer(2)) << "the service did not get its name";
    }
    // `step` runs with allocation number `fail_at` failing.
    template <class Step>
    void failing(std::size_t fail_at, Step&& step) {
        const test::FailingStep outcome = test::run_failing(fail_at, std::forward<Step>(step));
        escaped = outcome.escaped;
        failed = outcome.failed;
        made = outcome.made;
    }
};

// Pumps until `client` is answered `serial` or closed, the service answering the M call it is given.
void until_answered_or_closed(World& w, Client& client, std::uint32_t serial) {
    bool service_answered = false;
    w.pump([&] {
        client.read();
        w.service->read();
        if (const Message* call = w.service->call("M"); call && !service_answered) {
            service_answered = true;
            w.service->answer(*call, 100);
        }
        return client.closed() || client.answer(serial) != nullptr;
    });
}

// A newcomer says Hello and calls the service, which answers.
void bus_still_serves(World& w) {
    std::optional<Client> newcomer;
    w.connect(newcomer);
    std::vector<Message> hello_and_call;
    hello_and_call.push_back(driver_call_builder("Hello").build(1).value());
    hello_and_call.push_back(MessageBuilder::method_call(kService, "/x", "org.x.I", "N").build(2).value());
    newcomer->say(hello_and_call);
    bool answered = false;
    w.pump([&] {
        newcomer->read();
        w.service->read();
        if (const Message* call = w.service->call("N"); call && !answered) {
            answered = true;
            w.service->answer(*call, 101);
        }
        return newcomer->answer(2) != nullptr;
    });
    const Message* answer = newcomer->answer(2);
    ASSERT_TRUE(answer) << "the bus no longer serves a newcomer";
    EXPECT_EQ(answer->type(), MessageType::MethodReturn);
}

// Runs `step` on a fresh bus with a service, with every allocation failing once in turn; `check` judges
// each run. Returns how many allocations the step makes when none fails.
std::size_t fail_each_allocation(const std::function<void(World&)>& prepare,
                                 const std::function<void(World&)>& step,
                                 const std::function<void(World&)>& check) {
    return test::fail_each_allocation_in_turn([&](std::size_t fail_at) {
        World w;
        w.start_service();
        if (prepare) prepare(w);
        if (testing::Test::HasFailure()) return test::FailingRun{};
        w.failing(fail_at, [&] { step(w); });
        if (w.escaped) {
            ADD_FAILURE() << "std::bad_alloc escaped the event loop";
            return test::FailingRun{};
        }
        check(w);
        bus_still_serves(w);
        return test::FailingRun{w.failed, w.made};
    });
}

// How the caller's call ended, over every run.
struct Outcomes {
    int served = 0, no_memory = 0, closed = 0;
    void print() const {
        std::printf("the caller: served %d times, told NoMemory %d times, closed %d times\n", served,
                    no_memory, closed);
    }
};

// After pumping until `caller` was answered `serial` or closed: answered by the service, told NoMemory
// by the bus, or closed; never left waiting.
void judge(Client& caller, std::uint32_t serial, Outcomes& outcomes) {
    if (caller.closed()) {
        ++outcomes.closed;
        return;
    }
    const Message* answer = caller.answer(serial);
    ASSERT_TRUE(answer) << "the caller waits for ever";
    if (answer->type() == MessageType::Error) {
        EXPECT_EQ(answer->error_name(), error_names::kNoMemory);
        ++outcomes.no_memory;
    } else {
        ++outcomes.served;
    }
}

// A connection's first turns: taken, authenticated, Hello, and a call to the service whose answer is
// written back, all sent at once. The caller is answered (by the service, or NoMemory by the bus), or
// its connection is closed; never left waiting.
TEST(BrokerOutOfMemory, AConnectionsFirstTurns) {
    std::optional<Client> caller;
    Outcomes outcomes;
    const std::size_t made = fail_each_allocation(
        {},
        [&](World& w) {
            std::vector<Message> hello_and_call;
            {
                FailingAllocations::Pause pause;
                hello_and_call.push_back(driver_call_builder("Hello").build(1).value());
                hello_and_call.push_back(
                    MessageBuilder::method_call(kService, "/x", "org.x.I", "M").build(2).value());
            }
            w.connect(caller);
            caller->say(hello_and_call);
            until_answered_or_closed(w, *caller, 2);
        },
        [&](World& w) {
            // Allocating normally again: a read put off for want of memory is made now.
            until_answered_or_closed(w, *caller, 2);
            judge(*caller, 2, outcomes);
        });
    EXPECT_GT(made, 0u);
    outcomes.print();
}

// A read put off for want of memory, made again kReadRetry later (a timer of the event loop): the timer
// watches the connection again and reads what waited, and every allocation of that turn and of routing
// what it read fails once, in turn. The caller is answered (by the service, or NoMemory by the bus), or
// its connection is closed; never left waiting, and nothing escapes the loop.
TEST(BrokerOutOfMemory, AReadMadeAgainLater) {
    std::optional<Client> caller;
    Outcomes outcomes;
    const std::size_t made = fail_each_allocation(
        [&](World& w) {
            w.register_client(caller);
            // The call arrives on a connection that gave its read buffer back (idle): making one again is
            // the first allocation of the turn that reads it, which fails, and the read is put off.
            caller->say(test::one_message(
                            [] { return MessageBuilder::method_call(kService, "/x", "org.x.I", "M"); }, 2),
                        false);
            w.failing(1, [&] { (void)w.loop.run_once(100ms); });
            ASSERT_TRUE(w.failed && !w.escaped);
            caller->read();
            ASSERT_FALSE(caller->closed() || caller->answer(2)) << "the read was not put off";
        },
        [&](World& w) { until_answered_or_closed(w, *caller, 2); },
        [&](World& w) {
            until_answered_or_closed(w, *caller, 2);
            judge(*caller, 2, outcomes);
        });
    EXPECT_GT(made, 0u);
    outcomes.print();
}

// auth_timeout passing for a connection that never authenticates (a timer of the event loop): the bus
// closes that connection, and nothing escapes the loop.
TEST(BrokerOutOfMemory, AnAuthTimeout) {
    std::optional<Client> silent;
    fail_each_allocation(
        [](World& w) {
            BusSettings settings;
            settings.limits.auth_timeout = 50;
            w.bus.set_settings(settings);
        },
        [&](World& w) {
            w.connect(silent);
            w.pump([&] {
                silent->read();
                return silent->closed();
            });
        },
        [&](World& w) {
            w.pump([&] {
                silent->read();
                return silent->closed();
            });
            EXPECT_TRUE(silent->closed()) << "a connection that never authenticated is kept";
        });
}

}  // namespace
}  // namespace afbus::daemon
