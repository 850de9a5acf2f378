// What the bus model does when memory runs out part-way through a message (issue 17, item 4: "allocation
// failure on a message's path costs that message (error reply where one is owed), not the bus").
//
// Each scenario is one step a delivery mode hands the bus (a message, or a disconnection) on a bus with
// a service, a caller, a subscriber, an eavesdropper and a monitor. It runs again and again on a fresh
// bus, with allocation number 1, 2, … of the step failing (support/failing_allocations), until the step
// makes fewer allocations than that. After each run, allocating normally again:
//   - nothing escaped the bus (a std::bad_alloc out of the model would end the daemon);
//   - the step either took effect whole, or not at all and its sender was told NoMemory (if it owed an
//     answer); the bus never answers a call twice, and never leaves a caller waiting for a reply that
//     can no longer come;
//   - the bus still serves everyone: a newcomer says Hello and calls the service, which answers.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "afbus/error.hpp"
#include "afbus/types.hpp"
#include "bus.hpp"
#include "support/denying_policy.hpp"
#include "support/failing_allocations.hpp"
#include "support/recording_delivery.hpp"

namespace afbus::daemon {
namespace {

using test::FailingAllocations;
using test::RecordingDelivery;

constexpr std::string_view kService = "org.x.Service";

// The fake delivery mode: what it records of the model's notifications is the test's bookkeeping, not
// the bus's memory, and never fails. Its deliver() does fail: queueing a message takes memory in every
// delivery mode.
class Recording final : public RecordingDelivery {
public:
    using RecordingDelivery::RecordingDelivery;
    void detach(PeerId peer) override {
        FailingAllocations::Pause pause;
        RecordingDelivery::detach(peer);
    }
    void unique_name_assigned(PeerId peer, std::string_view name) noexcept override {
        FailingAllocations::Pause pause;
        RecordingDelivery::unique_name_assigned(peer, name);
    }
    void name_owner_changed(const NameChange& change) noexcept override {
        FailingAllocations::Pause pause;
        RecordingDelivery::name_owner_changed(change);
    }
    std::optional<Refusal> match_added(PeerId peer, const MatchRule& rule) noexcept override {
        FailingAllocations::Pause pause;
        return RecordingDelivery::match_added(peer, rule);
    }
    void match_removed(PeerId peer, const MatchRule& rule) noexcept override {
        FailingAllocations::Pause pause;
        RecordingDelivery::match_removed(peer, rule);
    }
};

template <class... Args>
MessageBuilder driver_call(std::string_view member, const Args&... args) {
    auto call = MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", member);
    if constexpr (sizeof...(Args) > 0) append(call, args...);
    return call;
}

MessageBuilder become_monitor_call() {
    auto call = MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                            "org.freedesktop.DBus.Monitoring", "BecomeMonitor");
    append(call, std::vector<std::string>{}, std::uint32_t{0});
    return call;
}

// A bus and its peers, all registered; every inbox empty.
struct World {
    EventLoop loop;
    Bus bus{loop, BusSettings{}};
    Recording& delivery = bus.use_delivery<Recording>();
    DeliveryEvents& events = bus;
    std::uint32_t serial = 1;
    PeerId service = 0, caller = 0, subscriber = 0, eavesdropper = 0, monitor = 0, observer = 0;
    std::string service_name, caller_name, observer_name;

    World() {
        service = connect_and_authenticate();
        service_name = hello(service);
        send(service, driver_call("RequestName", std::string(kService), std::uint32_t{0}));
        caller = connect_and_authenticate();
        caller_name = hello(caller);
        subscriber = connect_and_authenticate();
        hello(subscriber);
        add_match(subscriber, "type='signal',interface='org.x.I'");
        eavesdropper = connect_and_authenticate();
        hello(eavesdropper);
        add_match(eavesdropper, "eavesdrop='true'");
        observer = connect_and_authenticate();
        observer_name = hello(observer);
        send(observer, driver_call("RequestName", std::string("org.x.Observer"), std::uint32_t{0}));
        monitor = connect_and_authenticate();
        hello(monitor);
        send(monitor, become_monitor_call());
        delivery.inbox.clear();
    }

    PeerId connect_and_authenticate() {
        PeerCredentials c;
        c.uid = ::getuid();
        c.pid = ::getpid();
        c.from_kernel = true;
        const PeerId id = events.peer_connected(std::move(c)).value();
        EXPECT_TRUE(events.peer_authenticated(id, ::getuid()));
        return id;
    }
    // Sends and returns the message's serial.
    std::uint32_t send(PeerId from, MessageBuilder builder) {
        const std::uint32_t s = serial++;
        events.peer_sent(from, builder.build(s).value());
        return s;
    }

    // The step under test: `action` runs with allocation number `fail_at` failing.
    std::size_t fail_at = 0;
    bool failed = false, escaped = false;
    std::size_t made = 0;
    template <class Action>
    void failing(Action&& action) {
        const test::FailingStep outcome = test::run_failing(fail_at, std::forward<Action>(action));
        escaped = outcome.escaped;
        failed = outcome.failed;
        made = outcome.made;
    }
    // Sends with allocation number `fail_at` of the bus's handling failing (the message is built before).
    std::uint32_t send_failing(PeerId from, MessageBuilder builder) {
        const std::uint32_t s = serial++;
        Message message = builder.build(s).value();
        failing([&] { events.peer_sent(from, std::move(message)); });
        return s;
    }

    // For a step of the loop's own (a timer firing): every inbox emptied, the caller's kept, so that
    // looking at it during the step allocates nothing.
    void await_for_caller() {
        delivery.inbox.clear();
        delivery.inbox[caller];
    }
    // That step: turns of the loop with allocation number `fail_at` failing, until the caller receives
    // something. (Only the loop's own allocations are counted: the test looks without allocating.)
    std::uint32_t run_loop_until_caller_receives() {
        const auto& caller_inbox = delivery.inbox.find(caller)->second;
        failing([&] {
            while (caller_inbox.empty() && loop.run_once(std::chrono::milliseconds(1000))) {
            }
        });
        return 0;
    }

    std::string hello(PeerId peer) {
        send(peer, driver_call("Hello"));
        auto got = delivery.take(peer);
        EXPECT_FALSE(got.empty());
        return got.empty() ? std::string() : std::get<0>(read_all<std::string>(*got.at(0)).value());
    }
    void add_match(PeerId peer, const std::string& rule) {
        send(peer, driver_call("AddMatch", rule));
        delivery.take(peer);
    }
    bool detached(PeerId peer) const {
        return std::find(delivery.detached.begin(), delivery.detached.end(), peer) != delivery.detached.end();
    }
    // The answers `peer` got to its message `call_serial` among what it received.
    std::vector<std::shared_ptr<const Message>> answers(PeerId peer, std::uint32_t call_serial) {
        std::vector<std::shared_ptr<const Message>> out;
        for (const auto& m : delivery.inbox[peer])
            if (m->reply_serial() == call_serial &&
                (m->type() == MessageType::MethodReturn || m->type() == MessageType::Error))
                out.push_back(m);
        return out;
    }
    std::size_t received(PeerId peer, MessageType type, std::string_view member) {
        std::size_t n = 0;
        for (const auto& m : delivery.inbox[peer])
            if (m->type() == type && m->member() == member) ++n;
        return n;
    }
    // Who owns `name`, asked of the bus by the caller (the answer taken out of its inbox, the rest left).
    std::string owner_of(std::string_view name) {
        const auto s = send(caller, driver_call("GetNameOwner", std::string(name)));
        auto got = answers(caller, s);
        std::erase_if(delivery.inbox[caller], [s](const auto& m) { return m->reply_serial() == s; });
        if (got.size() != 1 || got[0]->type() != MessageType::MethodReturn) return {};
        return std::get<0>(read_all<std::string>(*got[0]).value());
    }
    // A new service in place of one that left or gave up its name, for bus_still_serves().
    void replace_service() {
        if (detached(service)) {
            service = connect_and_authenticate();
            service_name = hello(service);
        }
        send(service, driver_call("RequestName", std::string(kService), std::uint32_t{0}));
        delivery.inbox.clear();
    }
    // A signal from the service: how many copies reach `peer`.
    std::size_t tick_reaches(PeerId peer) {
        delivery.take(peer);
        send(service, MessageBuilder::signal("/x", "org.x.I", "Tick"));
        const std::size_t n = received(peer, MessageType::Signal, "Tick");
        delivery.inbox.clear();
        return n;
    }
};

// How a step that owes its sender an answer ended.
enum class Ended { Answered, NoMemory, Disconnected, Unanswered };

Ended ending(World& w, PeerId sender, std::uint32_t call_serial) {
    if (w.detached(sender)) return Ended::Disconnected;
    auto got = w.answers(sender, call_serial);
    EXPECT_LE(got.size(), 1u) << "a call answered twice";
    if (got.empty()) return Ended::Unanswered;
    return got[0]->error_name() == error_names::kNoMemory ? Ended::NoMemory : Ended::Answered;
}

// A call that owes its sender an answer was answered, or refused with NoMemory: never left unanswered,
// nor its sender disconnected. Returns which.
Ended answered_or_no_memory(World& w, PeerId sender, std::uint32_t call_serial) {
    const Ended end = ending(w, sender, call_serial);
    EXPECT_TRUE(end == Ended::Answered || end == Ended::NoMemory);
    return end;
}

// For a call that changes the bus: whether it took effect and was answered; otherwise it must have been
// refused with NoMemory (and changed nothing, which the caller checks).
bool took_effect(World& w, PeerId sender, std::uint32_t call_serial) {
    return answered_or_no_memory(w, sender, call_serial) == Ended::Answered;
}

// The bus serves a newcomer, and the service answers it.
void bus_still_serves(World& w) {
    const PeerId newcomer = w.connect_and_authenticate();
    const std::string name = w.hello(newcomer);
    ASSERT_FALSE(name.empty());
    w.delivery.inbox.clear();
    const auto s = w.send(newcomer, MessageBuilder::method_call(kService, "/x", "org.x.I", "M"));
    auto calls = w.delivery.take(w.service);
    ASSERT_EQ(calls.size(), 1u);
    w.send(w.service, MessageBuilder::method_return(name, s));
    auto got = w.answers(newcomer, s);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0]->type(), MessageType::MethodReturn);
}

struct Scenario {
    // Unfailing preparation on the fresh bus.
    std::function<void(World&)> prepare;
    // The step whose allocations fail (World::send_failing or World::failing); returns the serial of the
    // message sent (0 for no message).
    std::function<std::uint32_t(World&)> step;
    // What must hold afterwards, allocating normally; `serial` is step's.
    std::function<void(World&, std::uint32_t serial)> check;
};

// Runs `scenario` with every allocation of its step failing once, in turn; returns how many allocations
// the step makes when none fails.
std::size_t fail_each_allocation(const Scenario& scenario) {
    return test::fail_each_allocation_in_turn([&scenario](std::size_t fail_at) {
        World w;
        if (scenario.prepare) scenario.prepare(w);
        w.fail_at = fail_at;
        const std::uint32_t serial = scenario.step(w);
        if (w.escaped) {
            ADD_FAILURE() << "std::bad_alloc escaped the bus";
            return test::FailingRun{};
        }
        scenario.check(w, serial);
        bus_still_serves(w);
        return test::FailingRun{w.failed, w.made};
    });
}

// A call to the service: delivered and answered once, or refused with NoMemory and never delivered.
TEST(BusOutOfMemory, ACallToAService) {
    const std::size_t made = fail_each_allocation({
        {},
        [](World& w) { return w.send_failing(w.caller, MessageBuilder::method_call(kService, "/x", "org.x.I", "M")); },
        [](World& w, std::uint32_t s) {
            const Ended end = ending(w, w.caller, s);
            auto calls = w.delivery.take(w.service);
            if (end == Ended::NoMemory) {
                EXPECT_TRUE(calls.empty()) << "refused, yet delivered";
                return;
            }
            ASSERT_EQ(end, Ended::Unanswered);
            ASSERT_EQ(calls.size(), 1u);
            w.send(w.service, MessageBuilder::method_return(w.caller_name, calls[0]->serial()));
            EXPECT_EQ(ending(w, w.caller, s), Ended::Answered);
        },
    });
    EXPECT_GT(made, 0u);
}

// A call to a name nobody owns and no .service file provides, with auto-start: activation looks for the
// name and finds nothing (ServiceUnknown), or memory runs out before it could queue the call (NoMemory).
// It changed nothing either way, so the caller is never disconnected.
TEST(BusOutOfMemory, ACallToANameNothingProvides) {
    fail_each_allocation({
        {},
        [](World& w) { return w.send_failing(w.caller, MessageBuilder::method_call("org.x.Nobody", "/x", "org.x.I", "M")); },
        [](World& w, std::uint32_t s) { answered_or_no_memory(w, w.caller, s); },
    });
}

// The same asked with StartServiceByName.
TEST(BusOutOfMemory, StartServiceByNameForANameNothingProvides) {
    fail_each_allocation({
        {},
        [](World& w) {
            return w.send_failing(w.caller, driver_call("StartServiceByName", std::string("org.x.Nobody"), std::uint32_t{0}));
        },
        [](World& w, std::uint32_t s) { answered_or_no_memory(w, w.caller, s); },
    });
}

// A call to a name nobody owns (without activation): NameHasNoOwner, or NoMemory.
TEST(BusOutOfMemory, ACallToANameNobodyOwns) {
    fail_each_allocation({
        {},
        [](World& w) {
            auto call = MessageBuilder::method_call("org.x.Nobody", "/x", "org.x.I", "M");
            call.no_auto_start();
            return w.send_failing(w.caller, std::move(call));
        },
        [](World& w, std::uint32_t s) { answered_or_no_memory(w, w.caller, s); },
    });
}

// A reply: reaches its caller once; if memory fails it, the caller is still owed one, and gets NoReply
// when the service leaves.
TEST(BusOutOfMemory, AReplyToACall) {
    static std::uint32_t call_serial = 0, delivered_serial = 0;
    fail_each_allocation({
        [](World& w) {
            call_serial = w.send(w.caller, MessageBuilder::method_call(kService, "/x", "org.x.I", "M"));
            delivered_serial = w.delivery.take(w.service).at(0)->serial();
        },
        [](World& w) { return w.send_failing(w.service, MessageBuilder::method_return(w.caller_name, delivered_serial)); },
        [](World& w, std::uint32_t) {
            if (ending(w, w.caller, call_serial) == Ended::Answered) return;
            w.events.peer_failed(w.service, "test");
            EXPECT_EQ(ending(w, w.caller, call_serial), Ended::Answered) << "the caller waits for ever";
            auto got = w.answers(w.caller, call_serial);
            ASSERT_EQ(got.size(), 1u);
            EXPECT_EQ(got[0]->error_name(), error_names::kNoReply);
            w.replace_service();
        },
    });
}

// A broadcast signal: at most one copy per subscriber; nobody answers it.
TEST(BusOutOfMemory, ASignalToSubscribers) {
    fail_each_allocation({
        {},
        [](World& w) {
            w.send_failing(w.caller, MessageBuilder::signal("/x", "org.x.I", "Changed"));
            return 0u;
        },
        [](World& w, std::uint32_t) {
            EXPECT_LE(w.received(w.subscriber, MessageType::Signal, "Changed"), 1u);
            EXPECT_LE(w.received(w.eavesdropper, MessageType::Signal, "Changed"), 1u);
            EXPECT_TRUE(w.delivery.inbox[w.caller].empty());
            EXPECT_FALSE(w.detached(w.caller));
        },
    });
}

// Hello: a unique name and the connection registered, or NoMemory and a Hello later succeeds.
TEST(BusOutOfMemory, Hello) {
    static PeerId newcomer = 0;
    fail_each_allocation({
        [](World& w) { newcomer = w.connect_and_authenticate(); },
        [](World& w) { return w.send_failing(newcomer, driver_call("Hello")); },
        [](World& w, std::uint32_t s) {
            const bool registered = took_effect(w, newcomer, s);
            EXPECT_EQ(w.events.registered(newcomer), registered);
            if (!registered) {
                w.delivery.take(newcomer);
                EXPECT_EQ(w.hello(newcomer).substr(0, 3), ":1.");
            }
        },
    });
}

// RequestName: the name owned and the reply said so, or NoMemory and the name free.
TEST(BusOutOfMemory, RequestName) {
    fail_each_allocation({
        {},
        [](World& w) { return w.send_failing(w.caller, driver_call("RequestName", std::string("org.x.New"), std::uint32_t{0})); },
        [](World& w, std::uint32_t s) {
            EXPECT_EQ(w.owner_of("org.x.New"), took_effect(w, w.caller, s) ? w.caller_name : std::string());
        },
    });
}

// ReleaseName: the name released and the reply said so, or NoMemory and the service still owns it.
TEST(BusOutOfMemory, ReleaseName) {
    fail_each_allocation({
        {},
        [](World& w) { return w.send_failing(w.service, driver_call("ReleaseName", std::string(kService))); },
        [](World& w, std::uint32_t s) {
            const bool released = took_effect(w, w.service, s);
            EXPECT_EQ(w.owner_of(kService), released ? std::string() : w.service_name);
            if (released) w.replace_service();
        },
    });
}

// AddMatch: the rule in force and answered, or NoMemory and not in force.
TEST(BusOutOfMemory, AddMatch) {
    fail_each_allocation({
        {},
        [](World& w) { return w.send_failing(w.caller, driver_call("AddMatch", std::string("type='signal',member='Tick'"))); },
        [](World& w, std::uint32_t s) { EXPECT_EQ(w.tick_reaches(w.caller), took_effect(w, w.caller, s) ? 1u : 0u); },
    });
}

// RemoveMatch: the rule gone and answered, or NoMemory and still in force.
TEST(BusOutOfMemory, RemoveMatch) {
    fail_each_allocation({
        {},
        [](World& w) {
            return w.send_failing(w.subscriber, driver_call("RemoveMatch", std::string("type='signal',interface='org.x.I'")));
        },
        [](World& w, std::uint32_t s) { EXPECT_EQ(w.tick_reaches(w.subscriber), took_effect(w, w.subscriber, s) ? 0u : 1u); },
    });
}

// Methods that change nothing: answered, or NoMemory.
TEST(BusOutOfMemory, QuestionsToTheBus) {
    for (std::string_view member : {"ListNames", "GetId", "GetConnectionCredentials", "GetAllMatchRules"}) {
        SCOPED_TRACE(std::string(member));
        static std::string_view asked;
        asked = member;
        fail_each_allocation({
            {},
            [](World& w) {
                MessageBuilder call = asked == "GetAllMatchRules"
                                          ? MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                                        "org.freedesktop.DBus.Debug.Stats", asked)
                                          : driver_call(asked);
                if (asked == "GetConnectionCredentials") append(call, w.service_name);
                return w.send_failing(w.caller, std::move(call));
            },
            [](World& w, std::uint32_t s) {
                const Ended end = ending(w, w.caller, s);
                EXPECT_TRUE(end == Ended::Answered || end == Ended::NoMemory);
            },
        });
    }
}

// BecomeMonitor: a monitor (its name given up), or NoMemory and still an ordinary connection with its name.
TEST(BusOutOfMemory, BecomeMonitor) {
    fail_each_allocation({
        {},
        [](World& w) { return w.send_failing(w.observer, become_monitor_call()); },
        [](World& w, std::uint32_t s) {
            // It becomes a monitor after its answer; nothing that needs may fail then.
            const bool monitor = took_effect(w, w.observer, s);
            w.delivery.inbox.clear();
            // A monitor sees the service's signal (as a monitor); an ordinary connection without a rule does not.
            EXPECT_EQ(w.tick_reaches(w.observer), monitor ? 1u : 0u);
            EXPECT_EQ(w.owner_of("org.x.Observer"), monitor ? std::string() : w.observer_name);
        },
    });
}

// A call's reply_timeout passing (a timer of the event loop, outside any peer's step): the caller gets its
// NoReply, and nothing escapes the loop.
TEST(BusOutOfMemory, AReplyTimeout) {
    static std::uint32_t call_serial = 0;
    fail_each_allocation({
        [](World& w) {
            BusSettings settings;
            settings.limits.reply_timeout = 1;
            w.bus.set_settings(settings);
            call_serial = w.send(w.caller, MessageBuilder::method_call(kService, "/x", "org.x.I", "M"));
            w.await_for_caller();
        },
        [](World& w) { return w.run_loop_until_caller_receives(); },
        [](World& w, std::uint32_t) {
            auto got = w.answers(w.caller, call_serial);
            ASSERT_EQ(got.size(), 1u) << "the caller waits for ever";
            EXPECT_EQ(got[0]->error_name(), error_names::kNoReply);
        },
    });
}

// A disconnection: the peer is gone whole (its name free), and a call it owed is answered NoReply.
TEST(BusOutOfMemory, ADisconnection) {
    static std::uint32_t call_serial = 0;
    fail_each_allocation({
        [](World& w) {
            call_serial = w.send(w.caller, MessageBuilder::method_call(kService, "/x", "org.x.I", "M"));
            w.delivery.take(w.service);
        },
        [](World& w) {
            w.failing([&] { w.events.peer_failed(w.service, "test"); });
            return 0u;
        },
        [](World& w, std::uint32_t) {
            EXPECT_TRUE(w.detached(w.service));
            EXPECT_EQ(w.owner_of(kService), "");
            EXPECT_EQ(ending(w, w.caller, call_serial), Ended::Answered) << "the caller waits for ever";
            w.replace_service();
        },
    });
}

// A temporary directory holding one .service file, removed with it when the test program ends.
class ServiceDirectory {
public:
    ServiceDirectory(const char* pattern, const std::string& file, const std::string& contents) {
        std::string path = (std::filesystem::temp_directory_path() / pattern).string();
        EXPECT_TRUE(::mkdtemp(path.data()));
        path_ = path;
        std::ofstream(path_ + "/" + file) << contents;
    }
    ~ServiceDirectory() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    ServiceDirectory(const ServiceDirectory&) = delete;
    ServiceDirectory& operator=(const ServiceDirectory&) = delete;
    [[nodiscard]] const std::string& path() const { return path_; }

private:
    std::string path_;
};

// The one for the activation tests: org.x.Started, whose Exec is /bin/true (it exits at once,
// successfully: the bus waits on for the name, as for a service that forks).
const std::string& service_directory() {
    static const ServiceDirectory directory("afbus-oom-services-XXXXXX", "org.x.Started.service",
                                            "[D-BUS Service]\nName=org.x.Started\nExec=/bin/true\n");
    return directory.path();
}

// Runs the bus's loop until every process it started has ended and been reaped (the loop reaps its
// services through their pidfds); false if one is still there after 10 s.
bool services_reaped(World& w) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
        siginfo_t info{};
        // ECHILD: no child at all, running or waiting to be reaped.
        if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) < 0 && errno == ECHILD) return true;
        if (std::chrono::steady_clock::now() > deadline) return false;
        (void)w.loop.run_once(std::chrono::milliseconds(10));
    }
}

// A call to a name nobody owns that a .service file provides: activation queues the call with a pending
// start and its timer, and starts the service (fork and exec). Out of memory before the service is
// forked, the start fails and the caller is told NoMemory; after, the forked process is ended and the
// caller told Spawn.ForkFailed; once the start is made, the call is the activation's. Never is the caller
// disconnected (the call changed the bus, but a failed start is an answer). Then the service appears
// and takes the name: it gets the call exactly when the caller was not answered, the caller is answered
// once, and every process the bus started is reaped, none left behind.
TEST(BusOutOfMemory, ACallThatStartsAService) {
    int no_memory = 0, fork_failed = 0, queued = 0;
    const std::size_t made = fail_each_allocation({
        [](World& w) {
            BusSettings settings;
            settings.service_directories = {SearchDirectory{service_directory()}};
            w.bus.set_settings(settings);
        },
        [](World& w) {
            return w.send_failing(w.caller,
                                  MessageBuilder::method_call("org.x.Started", "/x", "org.x.I", "M"));
        },
        [&](World& w, std::uint32_t s) {
            const Ended end = ending(w, w.caller, s);
            ASSERT_NE(end, Ended::Disconnected) << "the caller lost its connection";
            if (end == Ended::Answered) {
                // Out of memory once the service was forked: it is ended, and the start fails.
                const auto got = w.answers(w.caller, s);
                EXPECT_EQ(got.at(0)->error_name(), error_names::kSpawnForkFailed);
                ++fork_failed;
            }
            // The service starts and takes its name.
            const PeerId started = w.connect_and_authenticate();
            w.hello(started);
            w.send(started, driver_call("RequestName", std::string("org.x.Started"), std::uint32_t{0}));
            std::vector<std::shared_ptr<const Message>> calls;
            for (const auto& m : w.delivery.take(started))
                if (m->type() == MessageType::MethodCall && m->member() == "M") calls.push_back(m);
            if (end != Ended::Unanswered) {
                no_memory += end == Ended::NoMemory;
                EXPECT_TRUE(calls.empty()) << "refused, yet delivered";
            } else {
                ++queued;
                ASSERT_EQ(calls.size(), 1u) << "the queued call was not handed to the service";
                w.send(started, MessageBuilder::method_return(w.caller_name, calls[0]->serial()));
                EXPECT_EQ(ending(w, w.caller, s), Ended::Answered);
            }
            EXPECT_TRUE(services_reaped(w)) << "a service process the bus started was never reaped";
        },
    });
    EXPECT_GT(made, 0u);
    std::printf(
        "the caller: told NoMemory %d times, Spawn.ForkFailed %d times; its call queued and delivered %d "
        "times\n",
        no_memory, fork_failed, queued);
}

// The directory of a .service file that systemd starts (SystemdService=).
const std::string& systemd_service_directory() {
    static const ServiceDirectory directory(
        "afbus-oom-units-XXXXXX", "org.x.Unit.service",
        "[D-BUS Service]\nName=org.x.Unit\nExec=/bin/false\nSystemdService=x-unit.service\n");
    return directory.path();
}

// A call to a name that systemd starts (systemd activation on, a peer owning org.freedesktop.systemd1):
// activation queues the call and sends systemd an ActivationRequest for the unit. Out of memory before
// the start is asked for, the caller is told NoMemory and systemd asked nothing; once asked, the call is
// the activation's, and systemd has the request exactly once. Then the unit's service takes the name: it
// gets the call exactly when the caller was not answered, and the caller is answered once. Never is the
// caller disconnected.
TEST(BusOutOfMemory, ACallThatAsksSystemdToStartAUnit) {
    static PeerId systemd = 0;
    int no_memory = 0, asked = 0;
    const std::size_t made = fail_each_allocation({
        [](World& w) {
            BusSettings settings;
            settings.service_directories = {SearchDirectory{systemd_service_directory()}};
            settings.systemd_activation = true;
            w.bus.set_settings(settings);
            systemd = w.connect_and_authenticate();
            w.hello(systemd);
            w.send(systemd,
                   driver_call("RequestName", std::string("org.freedesktop.systemd1"), std::uint32_t{0}));
            w.delivery.inbox.clear();
        },
        [](World& w) {
            return w.send_failing(w.caller, MessageBuilder::method_call("org.x.Unit", "/x", "org.x.I", "M"));
        },
        [&](World& w, std::uint32_t s) {
            const Ended end = ending(w, w.caller, s);
            ASSERT_NE(end, Ended::Disconnected) << "the caller lost its connection";
            std::vector<std::string> units;
            for (const auto& m : w.delivery.take(systemd)) {
                if (m->type() != MessageType::Signal || m->member() != "ActivationRequest") continue;
                units.push_back(std::get<0>(read_all<std::string>(*m).value()));
            }
            if (end == Ended::NoMemory) {
                ++no_memory;
                EXPECT_TRUE(units.empty()) << "refused, yet systemd was asked to start the unit";
                return;
            }
            ASSERT_EQ(end, Ended::Unanswered) << "neither refused nor queued";
            ASSERT_EQ(units, std::vector<std::string>{"x-unit.service"})
                << "queued, but systemd was not asked once";
            ++asked;
            // The unit's service starts and takes its name.
            const PeerId started = w.connect_and_authenticate();
            w.hello(started);
            w.send(started, driver_call("RequestName", std::string("org.x.Unit"), std::uint32_t{0}));
            std::vector<std::shared_ptr<const Message>> calls;
            for (const auto& m : w.delivery.take(started))
                if (m->type() == MessageType::MethodCall && m->member() == "M") calls.push_back(m);
            ASSERT_EQ(calls.size(), 1u) << "the queued call was not handed to the service";
            w.send(started, MessageBuilder::method_return(w.caller_name, calls[0]->serial()));
            EXPECT_EQ(ending(w, w.caller, s), Ended::Answered);
        },
    });
    EXPECT_GT(made, 0u);
    std::printf("the caller: told NoMemory %d times; systemd asked and the call delivered %d times\n",
                no_memory, asked);
}

// A service that is started and never takes its name: service_start_timeout passes (a timer of the event
// loop, which also reaps the service's process). The caller is answered once, TimedOut, and nothing
// escapes the loop.
TEST(BusOutOfMemory, AServiceStartTimingOut) {
    static std::uint32_t call_serial = 0;
    const std::size_t made = fail_each_allocation({
        [](World& w) {
            BusSettings settings;
            settings.service_directories = {SearchDirectory{service_directory()}};
            settings.limits.service_start_timeout = 1;
            w.bus.set_settings(settings);
            call_serial =
                w.send(w.caller, MessageBuilder::method_call("org.x.Started", "/x", "org.x.I", "M"));
            w.await_for_caller();
        },
        [](World& w) { return w.run_loop_until_caller_receives(); },
        [](World& w, std::uint32_t) {
            auto got = w.answers(w.caller, call_serial);
            ASSERT_EQ(got.size(), 1u) << "the caller waits for ever";
            EXPECT_EQ(got[0]->error_name(), error_names::kTimedOut);
            EXPECT_TRUE(services_reaped(w)) << "a service process the bus started was never reaped";
        },
    });
    EXPECT_GT(made, 0u);
}

// A configuration reload (Bus::set_settings, as ReloadConfig, SIGHUP and the directory watch make it)
// that brings a policy and a service directory. Out of memory, it throws for the reload's caller to
// report, and nothing changed: no policy, the old services, for every connection; else all of it is in
// force for every connection. Never some connections judged by the new policy and others by the old.
TEST(BusOutOfMemory, AReload) {
    static bool threw = false;
    int kept = 0, reloaded = 0;
    const std::size_t made = fail_each_allocation({
        {},
        [](World& w) {
            BusSettings next;
            next.policy = test::denying_policy();
            next.service_directories = {SearchDirectory{service_directory()}};
            threw = false;
            w.failing([&] {
                try {
                    w.bus.set_settings(std::move(next));
                } catch (const std::bad_alloc&) {
                    threw = true;
                }
            });
            return 0u;
        },
        [&](World& w, std::uint32_t) {
            const bool in_force = w.bus.settings().policy != nullptr;
            EXPECT_EQ(in_force, !threw) << "the reload " << (threw ? "failed" : "succeeded")
                                        << ", yet its policy is " << (in_force ? "" : "not ") << "in force";
            (threw ? kept : reloaded) += 1;
            for (const PeerId from : {w.caller, w.observer}) {
                const auto s = w.send(from, MessageBuilder::method_call(kService, "/x", "org.x.Denied", "M"));
                const auto got = w.answers(from, s);
                const bool refused = got.size() == 1 && got[0]->error_name() == error_names::kAccessDenied;
                EXPECT_EQ(refused, in_force) << "connection " << from << " judged by the other policy";
            }
            const auto s = w.send(w.caller, driver_call("ListActivatableNames"));
            const auto got = w.answers(w.caller, s);
            ASSERT_EQ(got.size(), 1u);
            const auto [names] = read_all<std::vector<std::string>>(*got[0]).value();
            EXPECT_EQ(std::find(names.begin(), names.end(), "org.x.Started") != names.end(), in_force)
                << "the services of the other configuration";
            w.delivery.inbox.clear();
        },
    });
    EXPECT_GT(made, 0u);
    std::printf("the reload: failed whole %d times, in force whole %d times\n", kept, reloaded);
}

}  // namespace
}  // namespace afbus::daemon
