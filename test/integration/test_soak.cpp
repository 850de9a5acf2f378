// Soak (issue 17, item 1), against dbus-daemon and afbus-daemon (AFBUS_TEST_DAEMON): many clients, libafbus
// and sd-bus, for a bounded time — method calls with replies (some carrying an fd), broadcast signals
// through match rules, name acquisition and release — with every message accounted for: each call
// answered once with its own arguments, each signal received once by every subscriber, in the order its
// emitter sent it (the bus's ordering guarantee: one sender's messages reach a recipient in order), each
// RequestName/ReleaseName answered as it must be. Afterwards the daemon holds the fds it started with,
// and its resident memory is back within a stated margin.
//
// CI runs the short variant (200 clients, 10 s). The full one is
//   AFBUS_SOAK_CLIENTS=1000 AFBUS_SOAK_SECONDS=60 AFBUS_TEST_DAEMON=build/daemon/afbus-daemon build/test/test_soak
// (docs/reliability.md). Everything runs in this one thread: every client is polled together, no sleeps.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "afbus/connection.hpp"
#include "afbus/object.hpp"
#include "afbus/types.hpp"
#include "support/child_process.hpp"
#include "test_bus.hpp"

namespace afbus {
namespace {

using namespace std::chrono_literals;
using test::TestBus;

constexpr const char* kInterface = "org.example.Soak";
constexpr const char* kPath = "/org/example/Soak";
// What the daemon's RSS may have grown by once every client is gone (allocator caches, peak tables).
constexpr std::size_t kRssMarginKib = 16 * 1024;

int env_int(const char* name, int fallback) {
    const char* value = std::getenv(name);
    return value && *value ? std::atoi(value) : fallback;
}

struct SdBusDeleter {
    void operator()(sd_bus* bus) const { sd_bus_flush_close_unref(bus); }
};
struct SdSlotDeleter {
    void operator()(sd_bus_slot* slot) const { sd_bus_slot_unref(slot); }
};

// The soak's bookkeeping: what was sent and what came back, checked at the end.
struct Tally {
    std::uint64_t calls = 0, fd_calls = 0, replies = 0, wrong_replies = 0, failed_calls = 0;
    std::uint64_t signals = 0, deliveries = 0, out_of_order = 0;
    std::uint64_t name_ops = 0, wrong_name_replies = 0;
    std::uint64_t handled = 0;
};

struct Client;

struct Soak {
    bool running = true;
    Tally tally;
    std::vector<std::string> services;  // unique names
    std::vector<std::uint32_t> emitted;  // per emitter index
    std::vector<std::unique_ptr<Client>> clients;
    std::vector<Client*> subscribers;
    Fd dev_null;
};

// An emitter sends its next signal only while every subscriber has all but this many of its signals:
// the load is closed-loop, as real traffic is, so that the run measures accounting, not how long a queue
// an open-loop generator can build up in front of the method calls.
constexpr std::uint32_t kSignalWindow = 16;

enum class Role { Service, Emitter, Churner, Caller, FdCaller, SdCaller, SdSubscriber, Subscriber };

Role role_of(int i) {
    switch (i % 10) {
        case 0: return Role::Service;
        case 1: return Role::Emitter;
        case 2: return Role::Churner;
        case 3: return Role::FdCaller;
        case 4: case 5: return Role::Caller;
        case 6: case 7: return Role::SdCaller;
        case 8: return Role::SdSubscriber;
        default: return Role::Subscriber;
    }
}

struct Client {
    int id = 0;
    Role role = Role::Caller;
    std::unique_ptr<Connection> afbus;
    std::unique_ptr<sd_bus, SdBusDeleter> sd;
    std::vector<Slot> slots;
    std::unique_ptr<sd_bus_slot, SdSlotDeleter> sd_slot, sd_match;
    Soak* soak = nullptr;
    std::uint32_t seq = 0;
    bool in_flight = false;
    int emitter_index = -1;
    std::vector<std::uint32_t> next_tick;  // per emitter: the seq expected next
    std::vector<std::uint32_t> received;   // per emitter

    void on_tick(std::uint32_t emitter, std::uint32_t tick) {
        ++soak->tally.deliveries;
        if (emitter >= next_tick.size()) {
            next_tick.resize(emitter + 1, 0);
            received.resize(emitter + 1, 0);
        }
        if (tick != next_tick[emitter]) ++soak->tally.out_of_order;
        next_tick[emitter] = tick + 1;
        ++received[emitter];
    }

    // Starts what this client does next, if anything.
    void step() {
        if (in_flight || !soak->running) return;
        switch (role) {
            case Role::Emitter: {
                const std::uint32_t sent = soak->emitted[emitter_index];
                for (const Client* sub : soak->subscribers) {
                    const std::uint32_t got = static_cast<std::size_t>(emitter_index) < sub->received.size()
                                                  ? sub->received[emitter_index]
                                                  : 0;
                    if (sent - got >= kSignalWindow) return;
                }
                auto signal = MessageBuilder::signal(kPath, kInterface, "Tick");
                append(signal, static_cast<std::uint32_t>(emitter_index), soak->emitted[emitter_index]);
                if (afbus->send(signal.build().value())) {
                    ++soak->emitted[emitter_index];
                    ++soak->tally.signals;
                }
                break;
            }
            case Role::Churner: name_op(); break;
            case Role::Caller: case Role::FdCaller: afbus_call(); break;
            case Role::SdCaller: sd_call(); break;
            default: break;
        }
    }

    void afbus_call() {
        const std::string& service = soak->services[(id + seq) % soak->services.size()];
        const bool with_fd = role == Role::FdCaller;
        auto call = MessageBuilder::method_call(service, kPath, kInterface, with_fd ? "EchoFd" : "Echo");
        append(call, static_cast<std::uint32_t>(id), seq);
        if (with_fd) append(call, UnixFd(Fd(::fcntl(soak->dev_null.get(), F_DUPFD_CLOEXEC, 3))));
        const std::uint32_t expected = seq;
        auto slot = afbus->call_async(call.build().value(), [this, expected](Expected<Message, Error> reply) {
            in_flight = false;
            if (!reply) {
                ++soak->tally.failed_calls;
                ADD_FAILURE() << "call " << id << "/" << expected << ": " << reply.error().name << ": " << reply.error().message;
                return;
            }
            auto args = read_all<std::uint32_t, std::uint32_t>(*reply);
            if (!args || std::get<0>(*args) != static_cast<std::uint32_t>(id) || std::get<1>(*args) != expected)
                ++soak->tally.wrong_replies;
            ++soak->tally.replies;
            ++seq;
        }, 30s);
        ASSERT_TRUE(slot);
        slots.clear();
        slots.push_back(std::move(*slot));
        in_flight = true;
        ++soak->tally.calls;
        if (with_fd) ++soak->tally.fd_calls;
    }

    static int on_sd_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
        auto* self = static_cast<Client*>(userdata);
        self->in_flight = false;
        if (sd_bus_message_is_method_error(m, nullptr)) {
            ++self->soak->tally.failed_calls;
            ADD_FAILURE() << "sd-bus call " << self->id << ": " << sd_bus_message_get_error(m)->name;
            return 0;
        }
        std::uint32_t who = 0, seq = 0;
        if (sd_bus_message_read(m, "uu", &who, &seq) < 0 || who != static_cast<std::uint32_t>(self->id) || seq != self->seq)
            ++self->soak->tally.wrong_replies;
        ++self->soak->tally.replies;
        ++self->seq;
        return 0;
    }

    void sd_call() {
        const std::string& service = soak->services[(id + seq) % soak->services.size()];
        sd_bus_slot* slot = nullptr;
        const int r = sd_bus_call_method_async(sd.get(), &slot, service.c_str(), kPath, kInterface, "Echo", on_sd_reply, this,
                                               "uu", static_cast<std::uint32_t>(id), seq);
        ASSERT_GE(r, 0) << std::strerror(-r);
        sd_slot.reset(slot);
        in_flight = true;
        ++soak->tally.calls;
    }

    void name_op() {
        const std::string name = "org.example.Soak.Name" + std::to_string(id);
        const bool request = seq % 2 == 0;
        auto call = MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                                request ? "RequestName" : "ReleaseName");
        if (request) append(call, name, std::uint32_t{0});
        else append(call, name);
        auto slot = afbus->call_async(call.build().value(), [this](Expected<Message, Error> reply) {
            in_flight = false;
            // RequestName: 1 (primary owner); ReleaseName: 1 (released).
            auto code = reply ? read_all<std::uint32_t>(*reply) : Expected<std::tuple<std::uint32_t>, WireError>(Unexpected(WireError::Truncated));
            if (!code || std::get<0>(*code) != 1) ++soak->tally.wrong_name_replies;
            ++soak->tally.name_ops;
            ++seq;
        }, 30s);
        ASSERT_TRUE(slot);
        slots.clear();
        slots.push_back(std::move(*slot));
        in_flight = true;
    }

    [[nodiscard]] bool idle() const { return !in_flight; }
};

int on_sd_tick(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* self = static_cast<Client*>(userdata);
    std::uint32_t emitter = 0, tick = 0;
    if (sd_bus_message_read(m, "uu", &emitter, &tick) < 0) {
        ++self->soak->tally.out_of_order;
        return 0;
    }
    self->on_tick(emitter, tick);
    return 0;
}

Interface echo_interface(Soak& soak) {
    Interface iface{kInterface, {}, {}, {}};
    iface.methods.push_back(Method{"Echo", {{"who", "u"}, {"seq", "u"}}, {{"who", "u"}, {"seq", "u"}},
                                   [&soak](const Message& call, MessageBuilder& reply) -> Expected<void, Error> {
                                       auto [who, seq] = read_all<std::uint32_t, std::uint32_t>(call).value();
                                       ++soak.tally.handled;
                                       append(reply, who, seq);
                                       return {};
                                   }});
    iface.methods.push_back(Method{"EchoFd", {{"who", "u"}, {"seq", "u"}, {"fd", "h"}}, {{"who", "u"}, {"seq", "u"}},
                                   [&soak](const Message& call, MessageBuilder& reply) -> Expected<void, Error> {
                                       auto args = read_all<std::uint32_t, std::uint32_t, UnixFd>(call);
                                       if (!args || !std::get<2>(*args).fd())
                                           return Unexpected(make_error(error_names::kInvalidArgs, "no fd"));
                                       ++soak.tally.handled;
                                       append(reply, std::get<0>(*args), std::get<1>(*args));
                                       return {};
                                   }});
    return iface;
}

TEST(Soak, EveryMessageAccountedForAndTheDaemonLetsGo) {
    const int n_clients = std::max(10, env_int("AFBUS_SOAK_CLIENTS", 200));
    const int seconds = std::max(1, env_int("AFBUS_SOAK_SECONDS", 10));
    // The clients' sockets (and sd-bus's) are this process's fds: the full run needs more than 1024.
    rlimit fd_limit{};
    if (::getrlimit(RLIMIT_NOFILE, &fd_limit) == 0 && fd_limit.rlim_cur < fd_limit.rlim_max) {
        fd_limit.rlim_cur = fd_limit.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &fd_limit);
    }
    // Room for every client of the one user this test runs as (the defaults allow 256).
    TestBus bus("<limit name=\"max_connections_per_user\">" + std::to_string(n_clients + 16) + "</limit>\n" +
                "<limit name=\"max_completed_connections\">" + std::to_string(n_clients + 16) + "</limit>\n");
    // One connection stays from start to end, to ask the bus (a round trip) when checking its fds.
    auto probe = test::connect(bus);
    ASSERT_TRUE(probe);
    ASSERT_TRUE(probe->call(MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                        "org.freedesktop.DBus", "GetId").build().value()));
    const auto before = test::process_usage(bus.pid());
    Soak soak;
    soak.dev_null = Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(soak.dev_null);

    // Connect everyone; services and subscribers are set up before the clock starts.
    for (int i = 0; i < n_clients; ++i) {
        auto c = std::make_unique<Client>();
        c->id = i;
        c->role = role_of(i);
        c->soak = &soak;
        if (c->role == Role::SdCaller || c->role == Role::SdSubscriber) {
            sd_bus* raw = nullptr;
            ASSERT_GE(sd_bus_new(&raw), 0);
            c->sd.reset(raw);
            ASSERT_GE(sd_bus_set_address(raw, bus.address().c_str()), 0);
            ASSERT_GE(sd_bus_set_bus_client(raw, 1), 0);
            ASSERT_GE(sd_bus_negotiate_fds(raw, 1), 0);
            ASSERT_GE(sd_bus_start(raw), 0);
            // sd_bus_start only begins: authentication and Hello happen as the bus is processed, and a
            // connection left incomplete that long would meet auth_timeout while the others connect.
            const char* unique = nullptr;
            ASSERT_GE(sd_bus_get_unique_name(raw, &unique), 0);
            if (c->role == Role::SdSubscriber) {
                sd_bus_slot* match = nullptr;
                ASSERT_GE(sd_bus_add_match(raw, &match, "type='signal',interface='org.example.Soak',member='Tick'", on_sd_tick,
                                           c.get()),
                          0);
                c->sd_match.reset(match);
            }
        } else {
            auto conn = Connection::open(bus.address());
            ASSERT_TRUE(conn) << conn.error().name << ": " << conn.error().message;
            c->afbus = std::move(*conn);
            if (c->role == Role::Service) {
                auto slot = c->afbus->export_interface(kPath, echo_interface(soak));
                ASSERT_TRUE(slot);
                c->slots.push_back(std::move(*slot));
                soak.services.push_back(c->afbus->unique_name());
            } else if (c->role == Role::Subscriber) {
                Client* self = c.get();
                auto sub = c->afbus->subscribe("type='signal',interface='org.example.Soak',member='Tick'", [self](const Message& m) {
                    auto args = read_all<std::uint32_t, std::uint32_t>(m);
                    if (!args) {
                        ++self->soak->tally.out_of_order;
                        return;
                    }
                    self->on_tick(std::get<0>(*args), std::get<1>(*args));
                });
                ASSERT_TRUE(sub);
                c->slots.push_back(std::move(*sub));
            } else if (c->role == Role::Emitter) {
                c->emitter_index = static_cast<int>(soak.emitted.size());
                soak.emitted.push_back(0);
            }
        }
        if (c->role == Role::Subscriber || c->role == Role::SdSubscriber) soak.subscribers.push_back(c.get());
        soak.clients.push_back(std::move(c));
    }
    const auto connected = test::process_usage(bus.pid());

    // Run: every client processes what arrived, then starts its next step; all are polled together.
    const auto start = test::Clock::now();
    const auto stop_at = start + std::chrono::seconds(seconds);
    const auto give_up = stop_at + 60s;
    std::vector<pollfd> fds(soak.clients.size());
    std::size_t peak_rss = connected.rss_kib, peak_fds = connected.open_fds;
    auto next_sample = start;
    for (;;) {
        for (auto& c : soak.clients) {
            if (c->afbus) {
                ASSERT_TRUE(c->afbus->process()) << "client " << c->id;
            } else {
                for (int r; (r = sd_bus_process(c->sd.get(), nullptr)) > 0;) {}
            }
            c->step();
        }
        const auto now = test::Clock::now();
        if (now >= next_sample) {
            const auto usage = test::process_usage(bus.pid());
            peak_rss = std::max(peak_rss, usage.rss_kib);
            peak_fds = std::max(peak_fds, usage.open_fds);
            next_sample = now + 1s;
        }
        if (soak.running && now >= stop_at) soak.running = false;
        if (!soak.running) {
            // Done once every call is answered and every subscriber has every signal.
            bool done = true;
            for (const auto& c : soak.clients) {
                if (!c->idle()) done = false;
                if (c->role == Role::Subscriber || c->role == Role::SdSubscriber) {
                    for (std::size_t e = 0; e < soak.emitted.size() && done; ++e)
                        done = e < c->received.size() && c->received[e] == soak.emitted[e];
                }
                if (!done) break;
            }
            if (done) break;
            ASSERT_LT(now, give_up) << "messages still missing a minute after the soak stopped";
        }
        for (std::size_t i = 0; i < soak.clients.size(); ++i) {
            const Client& c = *soak.clients[i];
            if (c.afbus) {
                fds[i] = {c.afbus->fd(), c.afbus->poll_events(), 0};
            } else {
                const int events = sd_bus_get_events(c.sd.get());
                fds[i] = {sd_bus_get_fd(c.sd.get()), static_cast<short>(events < 0 ? POLLIN : events), 0};
            }
        }
        ::poll(fds.data(), fds.size(), 100);
    }
    const double elapsed = std::chrono::duration<double>(test::Clock::now() - start).count();

    const Tally& t = soak.tally;
    std::size_t subscribers = 0;
    for (const auto& c : soak.clients) subscribers += c->role == Role::Subscriber || c->role == Role::SdSubscriber;
    std::printf("%d clients (%zu services, %zu emitters, %zu subscribers), %d s of load, %.1f s in all\n", n_clients,
                soak.services.size(), soak.emitted.size(), subscribers, seconds, elapsed);
    std::printf("calls %llu (with an fd %llu), replies %llu, handled %llu, wrong %llu, failed %llu; signals %llu, "
                "deliveries %llu (expected %llu), out of order %llu; name requests/releases %llu, wrong %llu\n",
                static_cast<unsigned long long>(t.calls), static_cast<unsigned long long>(t.fd_calls),
                static_cast<unsigned long long>(t.replies), static_cast<unsigned long long>(t.handled),
                static_cast<unsigned long long>(t.wrong_replies), static_cast<unsigned long long>(t.failed_calls),
                static_cast<unsigned long long>(t.signals), static_cast<unsigned long long>(t.deliveries),
                static_cast<unsigned long long>(t.signals * subscribers), static_cast<unsigned long long>(t.out_of_order),
                static_cast<unsigned long long>(t.name_ops), static_cast<unsigned long long>(t.wrong_name_replies));
    EXPECT_GT(t.calls, 0u);
    EXPECT_EQ(t.replies, t.calls);
    EXPECT_EQ(t.handled, t.calls);
    EXPECT_EQ(t.wrong_replies, 0u);
    EXPECT_EQ(t.failed_calls, 0u);
    EXPECT_GT(t.signals, 0u);
    EXPECT_EQ(t.deliveries, t.signals * subscribers);
    EXPECT_EQ(t.out_of_order, 0u);
    EXPECT_GT(t.name_ops, 0u);
    EXPECT_EQ(t.wrong_name_replies, 0u);

    // Everyone leaves; the daemon gives back every fd, and its memory comes back within the margin.
    soak.clients.clear();
    const auto deadline = test::Clock::now() + 20s;
    test::ProcessUsage after;
    for (;;) {
        ASSERT_TRUE(probe->call(MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                            "org.freedesktop.DBus", "GetId").build().value()));
        after = test::process_usage(bus.pid());
        if (after.open_fds <= before.open_fds) break;
        if (test::Clock::now() >= deadline) {
            std::string open;
            const std::string dir = "/proc/" + std::to_string(bus.pid()) + "/fd/";
            for (int fd = 0; fd < 4096; ++fd) {
                char target[256];
                const ssize_t n = ::readlink((dir + std::to_string(fd)).c_str(), target, sizeof target - 1);
                if (n > 0) open += std::to_string(fd) + " -> " + std::string(target, static_cast<std::size_t>(n)) + "\n";
            }
            FAIL() << after.open_fds << " fds open, " << before.open_fds << " before:\n" << open;
        }
    }
    probe.reset();
    std::printf("daemon: fds %zu before, %zu with the clients, peak %zu, %zu after; "
                "RSS %zu KiB before, %zu KiB with the clients, peak %zu KiB, %zu KiB after\n",
                before.open_fds, connected.open_fds, peak_fds, after.open_fds, before.rss_kib, connected.rss_kib, peak_rss,
                after.rss_kib);
#if defined(__SANITIZE_ADDRESS__)
    // AddressSanitizer keeps freed memory in quarantine (256 MB by default) and adds its shadow: the
    // daemon's RSS says nothing here; LeakSanitizer checks it at exit instead.
    (void)kRssMarginKib;
#else
    EXPECT_LE(after.rss_kib, before.rss_kib + kRssMarginKib);
#endif
}

}  // namespace
}  // namespace afbus
