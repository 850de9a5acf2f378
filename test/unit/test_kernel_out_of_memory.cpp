// What kernel mode does when memory runs out during a turn of the event loop (issue 17, item 4), as
// test_broker_out_of_memory does for broker mode: the bus runs on a real KernelDelivery, the master of an
// AF_BUS bus in a temporary directory, with native clients on AF_BUS and unix clients bridged into it,
// and every allocation of one step fails once, in turn (support/failing_allocations), until the step
// makes fewer allocations than that. After each run, allocating normally again:
//   - nothing escaped the event loop (a std::bad_alloc out of it would end the daemon);
//   - the client the step was about was served in the end, told NoMemory or NoReply, or closed by the
//     bus: never left waiting;
//   - the bus still serves newcomers of both kinds, each calling a service of the other kind.
// It needs af_bus.ko and af_bus_dbus.ko, so it runs in the kernel-mode guest
// (kernel/vm/guest-kernel-mode-integration.sh); elsewhere it is skipped. Every client is driven on the
// test's own thread, between turns of the bus's loop: the kernel moves what they send at once, so each
// run makes the same allocations in the same order.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/af_bus.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "afbus/af_bus_socket.hpp"
#include "afbus/datagram_transport.hpp"
#include "afbus/error.hpp"
#include "afbus/types.hpp"
#include "bus.hpp"
#include "kernel_delivery.hpp"
#include "listener.hpp"
#include "support/denying_policy.hpp"
#include "support/failing_allocations.hpp"
#include "support/scripted_stream_peer.hpp"
#include "transport/af_bus_family.hpp"

namespace afbus::daemon {
namespace {

using namespace std::chrono_literals;
using test::driver_call_builder;
using test::FailingAllocations;
using UnixClient = test::ScriptedStreamPeer;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kUnixService = "org.x.UnixService";
constexpr std::string_view kNativeService = "org.x.NativeService";
// Longer than the daemon reads whole into its shared buffer (64 KiB): read into room made for it.
constexpr std::size_t kBigMessageBytes = 100 * 1024;

// A native client: an AF_BUS socket connected to the bus's master, driven as ScriptedStreamPeer drives a
// unix one. Its SASL lines and messages are datagrams; before the bus has joined it, what it sends goes
// to the master.
class NativeClient {
public:
    explicit NativeClient(const std::string& address) {
        FailingAllocations::Pause pause;
        auto entries = parse_address_list(address);
        EXPECT_TRUE(entries && entries->size() == 1);
        auto socket = connect_af_bus(entries->front());
        if (!socket) {
            ADD_FAILURE() << "connecting to " << address << ": " << socket.error().describe();
            closed_ = true;
            return;
        }
        transport_.emplace(std::move(socket->fd), socket->family);
    }

    // From now on, its SASL asks to pass fds (NEGOTIATE_UNIX_FD), and it sends and takes them.
    void pass_unix_fds() {
        passes_fds_ = true;
        if (transport_) transport_->set_unix_fd_passing(true);
    }
    // SASL (unless told not to), then `messages`, to the master.
    void say(std::vector<Message> messages, bool authenticate = true) {
        FailingAllocations::Pause pause;
        if (closed_) return;
        if (authenticate) {
            std::vector<std::string> lines{test::sasl_external()};
            if (passes_fds_) lines.emplace_back("NEGOTIATE_UNIX_FD\r\n");
            lines.emplace_back("BEGIN\r\n");
            for (const std::string& line : lines) {
                if (::send(transport_->fd(), line.data(), line.size(), MSG_NOSIGNAL) < 0) {
                    closed_ = true;
                    return;
                }
            }
        }
        for (Message& m : messages) transport_->enqueue(std::move(m), std::nullopt);
        flush();
    }
    // `message`, from this client (once the bus has named it: as its SENDER), straight to `address` through
    // the kernel, as libafbus sends once it knows where a name lives.
    void send_to(std::uint64_t address, MessageBuilder message, std::uint32_t serial) {
        FailingAllocations::Pause pause;
        if (closed_) return;
        transport_->enqueue(message.sender(unique_name_).build(serial).value(), address);
        flush();
    }
    // The address the bus told it `name` has (its NameAddress notice), if it did.
    [[nodiscard]] std::optional<std::uint64_t> address_of(std::string_view name) const {
        FailingAllocations::Pause pause;
        for (const ReceivedDatagram& d : received_) {
            if (d.message.type() != MessageType::Signal || d.message.member() != "NameAddress") continue;
            std::string told;
            std::uint64_t address = 0;
            MessageReader reader(d.message);
            if (afbus::read(reader, told, address) && told == name && address != 0) return address;
        }
        return std::nullopt;
    }
    // The method return to `call`, from this client (once the bus has named it), back where it came from;
    // carrying `fd` if there is one, and `text` if it is not empty.
    void answer(const ReceivedDatagram& call, std::uint32_t serial, Fd fd = {},
                const std::string& text = {}) {
        FailingAllocations::Pause pause;
        if (closed_) return;
        auto builder = MessageBuilder::method_return(call.message);
        if (fd) append(builder, UnixFd(std::move(fd)));
        if (!text.empty()) append(builder, text);
        auto reply = builder.sender(unique_name_).build(serial).value();
        const bool from_master = !call.source || *call.source == 0;
        transport_->enqueue(std::move(reply), from_master ? std::nullopt : call.source);
        flush();
    }
    // Takes what reached its socket so far.
    void read() {
        FailingAllocations::Pause pause;
        if (closed_) return;
        // OK, and AGREE_UNIX_FD where it asked to pass fds: a datagram each.
        while (sasl_lines_ < (passes_fds_ ? 2 : 1)) {
            char line[4096];
            const ssize_t n = ::recv(transport_->fd(), line, sizeof line, MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN)) closed_ = true;
            if (n <= 0) return;
            EXPECT_TRUE(std::string_view(line, static_cast<std::size_t>(n))
                            .starts_with(sasl_lines_++ == 0 ? "OK " : "AGREE_UNIX_FD"));
        }
        auto read = transport_->read();
        if (!read) {
            closed_ = true;
            return;
        }
        for (;;) {
            auto next = transport_->next();
            ASSERT_TRUE(next) << "the bus sent a bad datagram";
            if (!*next) break;
            if (next->value().message.type() == MessageType::MethodReturn && unique_name_.empty() &&
                next->value().message.reply_serial() == 1) {
                MessageReader reader(next->value().message);
                (void)afbus::read(reader, unique_name_);  // Hello's answer, serial 1 in every script here
            }
            received_.push_back(std::move(**next));
        }
    }
    // Closes its socket: it leaves the bus.
    void hang_up() {
        FailingAllocations::Pause pause;
        transport_.reset();
        closed_ = true;
    }

    [[nodiscard]] const Message* answer(std::uint32_t serial) const {
        for (const ReceivedDatagram& d : received_)
            if ((d.message.type() == MessageType::MethodReturn || d.message.type() == MessageType::Error) &&
                d.message.reply_serial() == serial)
                return &d.message;
        return nullptr;
    }
    [[nodiscard]] const ReceivedDatagram* call(std::string_view member) const {
        return find(MessageType::MethodCall, member);
    }
    [[nodiscard]] const ReceivedDatagram* signal(std::string_view member) const {
        return find(MessageType::Signal, member);
    }
    [[nodiscard]] bool closed() const { return closed_; }
    [[nodiscard]] const std::string& unique_name() const { return unique_name_; }
    // From now on, what the kernel cannot take yet stays queued here, sent by send_queued().
    void may_wait() { may_wait_ = true; }
    // Sends what stayed queued: whether all of it went.
    bool send_queued() {
        FailingAllocations::Pause pause;
        return !closed_ && flush();
    }
    // How many bytes wait in its receive queue in the kernel, unread (BUS_GET_QUEUED).
    [[nodiscard]] std::size_t queued_in_kernel() const {
        if (closed_) return 0;
        std::array<bus_queued, 16> queued{};
        socklen_t length = sizeof queued;
        if (::getsockopt(transport_->fd(), SOL_BUS, BUS_GET_QUEUED, queued.data(), &length) < 0) return 0;
        std::size_t bytes = 0;
        for (std::size_t i = 0; i < length / sizeof(bus_queued); ++i) bytes += queued[i].len;
        return bytes;
    }

private:
    [[nodiscard]] const ReceivedDatagram* find(MessageType type, std::string_view member) const {
        for (const ReceivedDatagram& d : received_)
            if (d.message.type() == type && d.message.member() == member) return &d;
        return nullptr;
    }
    // Sends what it queued (all of it, unless it may wait): whether all of it went.
    bool flush() {
        auto flushed = transport_->flush();
        if (!flushed) {
            closed_ = true;
        } else if (!may_wait_) {
            EXPECT_TRUE(*flushed) << "the test's datagrams did not fit the socket";
        }
        EXPECT_TRUE(transport_->take_refused().empty()) << "the kernel refused a datagram of the test's";
        return flushed && *flushed;
    }

    std::optional<DatagramTransport> transport_;
    bool passes_fds_ = false;
    bool may_wait_ = false;
    int sasl_lines_ = 0;
    std::vector<ReceivedDatagram> received_;
    std::string unique_name_;
    bool closed_ = false;
};

// A private directory for the bus's socket, removed with everything in it.
struct TemporaryDirectory {
    std::string path;
    TemporaryDirectory() {
        std::string pattern = (std::filesystem::temp_directory_path() / "afbus-kernel-oom-XXXXXX").string();
        if (::mkdtemp(pattern.data())) path = pattern;
    }
    ~TemporaryDirectory() {
        std::error_code ignored;
        if (!path.empty()) std::filesystem::remove_all(path, ignored);
    }
};

// A message the bus gives up on its way through a bridge (the kernel had it, the bus had no memory for
// it) is answered, where an answer is owed, at the reply timeout: a short one, so that the checks below
// see every caller answered.
BusSettings settings_with_a_short_reply_timeout() {
    BusSettings settings;
    settings.limits.reply_timeout = 300;
    return settings;
}

// What a scenario changes in its world.
struct WorldOptions {
    bool services_pass_fds = false;       // and answer a call of WithFd with an fd
    std::int64_t max_outgoing_bytes = 0;  // 0: the default
};

BusSettings settings_for(const WorldOptions& options) {
    BusSettings settings = settings_with_a_short_reply_timeout();
    if (options.max_outgoing_bytes > 0) settings.limits.max_outgoing_bytes = options.max_outgoing_bytes;
    return settings;
}

struct World {
    explicit World(const WorldOptions& options = {})
        : bus{loop, settings_for(options)}, services_pass_fds(options.services_pass_fds) {}

    TemporaryDirectory directory;
    EventLoop loop;
    Bus bus;
    KernelDelivery* kernel = nullptr;
    std::string address;  // the AF_BUS bus's
    std::optional<UnixClient> unix_service;
    std::optional<NativeClient> native_service;
    bool escaped = false, failed = false;
    std::size_t made = 0;
    bool services_pass_fds = false;

    // The bus on AF_BUS; false where the kernel has none (the test is skipped then).
    bool open() {
        const auto family = af_bus_family();
        if (!family || directory.path.empty()) return false;
        auto entries = parse_address_list("afbus:path=" + directory.path + "/bus");
        if (!entries) return false;
        auto listeners = open_listeners(entries->front());
        if (!listeners || listeners->empty()) return false;
        Listener& listener = listeners->front();
        kernel = &bus.use_delivery<KernelDelivery>(listener.af_bus_family);
        if (!kernel->add_listener(std::move(listener.fd), listener.address)) return false;
        address = listener.address;
        return true;
    }
    // A unix client, its other end taken by the bus now (it is bridged into the AF_BUS bus at Hello).
    void connect(std::optional<UnixClient>& client) {
        int pair[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair), 0);
        {
            FailingAllocations::Pause pause;
            client.emplace(Fd(pair[0]));
        }
        kernel->broker().add_connection(Fd(pair[1]));
    }
    // A native client, connected to the master (the bus accepts it on its next turn).
    void connect(std::optional<NativeClient>& client) {
        FailingAllocations::Pause pause;
        client.emplace(address);
    }
    // A client, connected and registered (its Hello answered), outside the count; asking to pass fds if
    // `pass_unix_fds`.
    template <class Client>
    void register_client(std::optional<Client>& client, bool pass_unix_fds = false) {
        connect(client);
        if (pass_unix_fds) client->pass_unix_fds();
        client->say(test::one_message([] { return driver_call_builder("Hello"); }, 1));
        pump([&] {
            client->read();
            return client->answer(1) != nullptr;
        });
        ASSERT_TRUE(client->answer(1)) << "a client was not registered";
    }
    // Runs the loop until `done` (the clients read in between), for at most `limit`.
    template <class Done>
    void pump(Done&& done, std::chrono::milliseconds limit = 2000ms) {
        const auto deadline = Clock::now() + limit;
        while (!done() && Clock::now() < deadline) (void)loop.run_once(10ms);
    }
    // The services, each owning its name, and answering every call it is given (see serve()).
    void start_services() {
        connect(unix_service);
        connect(native_service);
        if (services_pass_fds) {
            unix_service->pass_unix_fds();
            native_service->pass_unix_fds();
        }
        unix_service->say(hello_and_request(kUnixService));
        native_service->say(hello_and_request(kNativeService));
        pump([&] {
            unix_service->read();
            native_service->read();
            return unix_service->answer(2) && native_service->answer(2);
        });
        ASSERT_TRUE(unix_service->answer(2) && native_service->answer(2)) << "a service did not get its name";
    }
    static std::vector<Message> hello_and_request(std::string_view name) {
        FailingAllocations::Pause pause;
        std::vector<Message> messages;
        messages.push_back(driver_call_builder("Hello").build(1).value());
        auto request = driver_call_builder("RequestName");
        append(request, std::string(name), std::uint32_t{0});
        messages.push_back(request.build(2).value());
        return messages;
    }
    // The services read, and answer a call of `member` once each.
    void serve(const std::string& member) {
        FailingAllocations::Pause pause;  // (the clients' work: the bus's runs between calls of this)
        unix_service->read();
        if (const Message* call = unix_service->call(member);
            call && answered_.insert("unix " + member).second)
            unix_service->answer(*call, 100);
        if (native_service->closed()) return;
        native_service->read();
        if (const ReceivedDatagram* call = native_service->call(member);
            call && answered_.insert("native " + member).second)
            native_service->answer(*call, 100, member == "WithFd" ? a_pipe_end() : Fd(),
                                   member == "Big" ? std::string(kBigMessageBytes, 'x') : std::string());
    }
    // The most any peer's queue in the bus holds (the worlds here have a handful of peers).
    std::size_t most_queued() const {
        std::size_t most = 0;
        for (PeerId id = 1; id < 64; ++id) most = std::max(most, kernel->queued(id).bytes);
        return most;
    }
    // `step` runs with allocation number `fail_at` failing.
    template <class Step>
    void failing(std::size_t fail_at, Step&& step) {
        const test::FailingStep outcome = test::run_failing(fail_at, std::forward<Step>(step));
        escaped = outcome.escaped;
        failed = outcome.failed;
        made = outcome.made;
    }

private:
    static Fd a_pipe_end() {
        int ends[2];
        if (::pipe2(ends, O_CLOEXEC) != 0) return Fd();
        ::close(ends[1]);
        return Fd(ends[0]);
    }
    std::set<std::string> answered_;
};

// What a client sends in one go: Hello (serial 1), then a call of `member` to `destination` (serial 2),
// made outside the count.
std::vector<Message> hello_and_call(std::string_view destination, std::string_view member) {
    FailingAllocations::Pause pause;
    std::vector<Message> messages;
    messages.push_back(driver_call_builder("Hello").build(1).value());
    messages.push_back(MessageBuilder::method_call(destination, "/x", "org.x.I", member).build(2).value());
    return messages;
}

// How a client's call ended.
struct Outcomes {
    int served = 0, refused = 0, closed = 0;
};

// Judges `client`'s call `serial` (after pumping until it was answered or closed): served, refused with
// one of the errors a bus short of memory gives, or closed.
template <class Client>
void judge(Client& client, std::uint32_t serial, Outcomes& outcomes) {
    if (client.closed()) {
        ++outcomes.closed;
        return;
    }
    const Message* answer = client.answer(serial);
    ASSERT_TRUE(answer) << "the caller waits for ever";
    if (answer->type() == MessageType::MethodReturn) {
        ++outcomes.served;
        return;
    }
    EXPECT_TRUE(answer->error_name() == error_names::kNoMemory ||
                answer->error_name() == error_names::kNoReply)
        << answer->error_name();
    ++outcomes.refused;
}

// Newcomers of both kinds say Hello and call the service of the other kind, which answers.
void bus_still_serves(World& w) {
    std::optional<NativeClient> native;
    std::optional<UnixClient> unix_client;
    w.connect(native);
    w.connect(unix_client);
    native->say(hello_and_call(kUnixService, "N"));
    if (!w.native_service->closed()) unix_client->say(hello_and_call(kNativeService, "N"));
    w.pump([&] {
        w.serve("N");
        native->read();
        unix_client->read();
        return native->answer(2) && (w.native_service->closed() || unix_client->answer(2));
    });
    const Message* answer = native->answer(2);
    ASSERT_TRUE(answer) << "the bus no longer serves a native newcomer";
    EXPECT_EQ(answer->type(), MessageType::MethodReturn) << answer->error_name();
    if (w.native_service->closed()) return;
    answer = unix_client->answer(2);
    ASSERT_TRUE(answer) << "the bus no longer serves a unix newcomer";
    EXPECT_EQ(answer->type(), MessageType::MethodReturn) << answer->error_name();
}

// Runs `step` on a fresh bus with both services, with every allocation failing once in turn; `check`
// judges each run. Returns how many allocations the step makes when none fails (0: skipped).
std::size_t fail_each_allocation(const std::function<void(World&)>& prepare,
                                 const std::function<void(World&)>& step,
                                 const std::function<void(World&)>& check, const WorldOptions& options = {}) {
    bool skipped = false;
    const std::size_t made = test::fail_each_allocation_in_turn([&](std::size_t fail_at) {
        World w(options);
        if (!w.open()) {
            skipped = true;
            return test::FailingRun{};
        }
        w.start_services();
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
    return skipped ? 0 : made;
}

#define SKIP_WITHOUT_AF_BUS()                                                           \
    do {                                                                                \
        if (!af_bus_family() && std::getenv("AFBUS_TEST_KERNEL_MODE")) {                \
            FAIL() << "AFBUS_TEST_KERNEL_MODE is set, but there is no AF_BUS";          \
        }                                                                               \
        if (!af_bus_family()) {                                                         \
            GTEST_SKIP() << "no AF_BUS here (af_bus.ko and af_bus_dbus.ko: the guest)"; \
        }                                                                               \
    } while (false)

// A client's first turns, sent at once: Hello and a call of M to `service`; the step and the checks
// pump until the caller is answered or closed. Prints how often each happened, as `who`.
template <class Client>
void first_turns(std::string_view service, const char* who) {
    std::optional<Client> caller;
    Outcomes outcomes;
    auto until_answered = [&](World& w) {
        w.pump([&] {
            w.serve("M");
            caller->read();
            return caller->closed() || caller->answer(2);
        });
    };
    const std::size_t made = fail_each_allocation(
        {},
        [&](World& w) {
            w.connect(caller);
            caller->say(hello_and_call(service, "M"));
            until_answered(w);
        },
        [&](World& w) {
            until_answered(w);  // allocating normally again
            judge(*caller, 2, outcomes);
        });
    EXPECT_GT(made, 0u);
    std::printf("%s: served %d times, refused %d times, closed %d times\n", who, outcomes.served,
                outcomes.refused, outcomes.closed);
}

// A native client's first turns: accepted on the master, SASL, Hello, and a call to the unix service,
// sent at once; the bus forwards the call, and the service's answer comes back through the kernel.
TEST(KernelOutOfMemory, ANativeClientsFirstTurns) {
    SKIP_WITHOUT_AF_BUS();
    first_turns<NativeClient>(kUnixService, "the native caller");
}

// A unix client's first turns: taken, SASL, Hello (its bridge made, named and joined in the kernel),
// and a call to the native service, sent at once; the native service answers through the kernel, to
// the bridge, which writes the answer to the unix socket.
TEST(KernelOutOfMemory, AUnixClientsFirstTurnsThroughItsBridge) {
    SKIP_WITHOUT_AF_BUS();
    first_turns<UnixClient>(kNativeService, "the unix caller");
}

// A registered unix client's call to the bus driver (GetId): the bus answers it through the kernel, to
// the client's bridge, which writes the answer to the unix side. Where the bridge has no memory for the
// answer, it is lost, and the bridge tells the client NoMemory in the bus's name: the client is served
// or told NoMemory, or closed; never left waiting.
TEST(KernelOutOfMemory, ABridgedClientsCallToTheBus) {
    SKIP_WITHOUT_AF_BUS();
    std::optional<UnixClient> caller;
    Outcomes outcomes;
    auto until_answered = [&](World& w) {
        w.pump([&] {
            caller->read();
            return caller->closed() || caller->answer(2);
        });
    };
    const std::size_t made = fail_each_allocation(
        [&](World& w) { w.register_client(caller); },
        [&](World& w) {
            caller->say(test::one_message([] { return driver_call_builder("GetId"); }, 2), false);
            until_answered(w);
        },
        [&](World& w) {
            until_answered(w);
            judge(*caller, 2, outcomes);
        });
    EXPECT_GT(made, 0u);
    std::printf("the bridged caller of the bus: served %d times, told NoMemory %d times, closed %d times\n",
                outcomes.served, outcomes.refused, outcomes.closed);
}

// A registered unix client becomes a monitor (BecomeMonitor, as busctl monitor and dbus-monitor do): the
// bus answers it through the kernel, to its bridge, then makes the bridge the bus's monitor. Where the
// bridge has no memory for that answer, it cannot tell the client the call failed (it is a monitor by
// then), and the bus ends it. So the client is a monitor that was told so and sees the traffic between
// clients, or was told NoMemory and is no monitor, or was closed; never left waiting.
TEST(KernelOutOfMemory, ABridgedClientBecomingAMonitor) {
    SKIP_WITHOUT_AF_BUS();
    std::optional<UnixClient> monitor;
    Outcomes outcomes;
    auto until_answered = [&](World& w, std::uint32_t serial) {
        w.pump([&] {
            monitor->read();
            return monitor->closed() || monitor->answer(serial);
        });
    };
    const std::size_t made = fail_each_allocation(
        [&](World& w) { w.register_client(monitor); },
        [&](World& w) {
            monitor->say(test::one_message(
                             [] {
                                 auto call = MessageBuilder::method_call(
                                     "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                     "org.freedesktop.DBus.Monitoring", "BecomeMonitor");
                                 append(call, std::vector<std::string>{}, std::uint32_t{0});
                                 return call;
                             },
                             2),
                         false);
            until_answered(w, 2);
        },
        [&](World& w) {
            until_answered(w, 2);
            judge(*monitor, 2, outcomes);
            const Message* answer = monitor->answer(2);
            if (!answer) return;
            if (answer->type() == MessageType::Error) {
                // No monitor: it calls the bus as before.
                monitor->say(test::one_message([] { return driver_call_builder("GetId"); }, 3), false);
                until_answered(w, 3);
                ASSERT_TRUE(monitor->answer(3)) << "a client that is no monitor was not answered";
                EXPECT_EQ(monitor->answer(3)->type(), MessageType::MethodReturn);
                return;
            }
            // A monitor: a native client's call to the unix service, through the kernel, is shown to it.
            std::optional<NativeClient> caller;
            w.connect(caller);
            caller->say(hello_and_call(kUnixService, "Watched"));
            w.pump([&] {
                w.serve("Watched");
                caller->read();
                monitor->read();
                return monitor->closed() || monitor->call("Watched");
            });
            EXPECT_TRUE(monitor->call("Watched")) << "the monitor does not see the traffic between clients";
        });
    EXPECT_GT(made, 0u);
    std::printf("the bridged monitor: served %d times, told NoMemory %d times, closed %d times\n",
                outcomes.served, outcomes.refused, outcomes.closed);
}

// A registered unix client with an eavesdropping match rule calls the bus (GetId) while another client's
// call to the native service goes through the model (as every bridged client's message does while an
// eavesdropper exists), so that the master sends it copies of that call and its answer as well as its own
// answer. Where the bridge has no memory for one of them, it tells its own answer (addressed to it) from
// the copies: the eavesdropper is served, told NoMemory for its own call, or closed; never left waiting,
// and never told NoMemory about another client's call.
TEST(KernelOutOfMemory, AnEavesdroppersCallToTheBus) {
    SKIP_WITHOUT_AF_BUS();
    std::optional<UnixClient> eavesdropper, other;
    Outcomes outcomes;
    auto until_answered = [&](World& w) {
        w.pump([&] {
            w.serve("M");
            eavesdropper->read();
            other->read();
            return (eavesdropper->closed() || eavesdropper->answer(3)) &&
                   (other->closed() || other->answer(7));
        });
    };
    const std::size_t made = fail_each_allocation(
        [&](World& w) {
            w.register_client(eavesdropper);
            w.register_client(other);
            eavesdropper->say(test::one_message(
                                  [] {
                                      auto call = driver_call_builder("AddMatch");
                                      append(call, std::string("eavesdrop='true'"));
                                      return call;
                                  },
                                  2),
                              false);
            w.pump([&] {
                eavesdropper->read();
                return eavesdropper->answer(2) != nullptr;
            });
            ASSERT_TRUE(eavesdropper->answer(2) &&
                        eavesdropper->answer(2)->type() == MessageType::MethodReturn)
                << "the eavesdropping rule was not added";
        },
        [&](World& w) {
            other->say(
                test::one_message(
                    [] { return MessageBuilder::method_call(kNativeService, "/x", "org.x.I", "M"); }, 7),
                false);
            eavesdropper->say(test::one_message([] { return driver_call_builder("GetId"); }, 3), false);
            until_answered(w);
        },
        [&](World& w) {
            until_answered(w);
            judge(*eavesdropper, 3, outcomes);
            // (Its Hello's answer is addressed to its unique name.)
            const std::string name(eavesdropper->answer(1)->destination());
            for (const Message& m : eavesdropper->received()) {
                EXPECT_FALSE(m.type() == MessageType::Error && m.destination() == name &&
                             m.reply_serial() != 3u)
                    << "the eavesdropper was told " << m.error_name() << " about a call it did not make";
            }
        });
    EXPECT_GT(made, 0u);
    std::printf(
        "the eavesdropper's call to the bus: served %d times, told NoMemory %d times, closed %d times\n",
        outcomes.served, outcomes.refused, outcomes.closed);
}

// A unix client that passes fds calls the native service with one (a pipe's end): its bridge sends the
// call, fd and all, through the kernel, and the service answers with an fd of its own, which comes back
// through the kernel to the bridge and is written to the unix side with the answer. The caller is served
// with the fd, told NoMemory, or closed; never left waiting. Every fd is closed once what held it is gone:
// none is kept by a message the bus gave up, or by a half-made one.
TEST(KernelOutOfMemory, FdsThroughABridge) {
    SKIP_WITHOUT_AF_BUS();
    const std::size_t fds_before = test::open_fds();
    std::optional<UnixClient> caller;
    Outcomes outcomes;
    auto until_answered = [&](World& w) {
        w.pump([&] {
            w.serve("WithFd");
            caller->read();
            return caller->closed() || caller->answer(2);
        });
    };
    const std::size_t made = fail_each_allocation(
        [&](World& w) { w.register_client(caller, true); },
        [&](World& w) {
            caller->say(test::one_message(
                            [] {
                                auto call =
                                    MessageBuilder::method_call(kNativeService, "/x", "org.x.I", "WithFd");
                                int ends[2];
                                EXPECT_EQ(::pipe2(ends, O_CLOEXEC), 0);
                                ::close(ends[0]);
                                append(call, UnixFd(Fd(ends[1])));
                                return call;
                            },
                            2),
                        false);
            until_answered(w);
        },
        [&](World& w) {
            until_answered(w);
            judge(*caller, 2, outcomes);
            if (const Message* answer = caller->answer(2);
                answer && answer->type() == MessageType::MethodReturn) {
                EXPECT_EQ(answer->fds().size(), 1u) << "the answer's fd did not come with it";
            }
            if (const ReceivedDatagram* call = w.native_service->call("WithFd")) {
                EXPECT_EQ(call->message.fds().size(), 1u) << "the call's fd did not come with it";
            }
        },
        WorldOptions{.services_pass_fds = true});
    EXPECT_GT(made, 0u);
    caller.reset();
    EXPECT_EQ(test::open_fds(), fds_before) << "an fd leaked";
    std::printf("the caller passing fds: served %d times, told NoMemory %d times, closed %d times\n",
                outcomes.served, outcomes.refused, outcomes.closed);
}

// The fence: a bridged client's message the model routes holds what it sends next until the master has
// put that one in the kernel, so that nothing overtakes it. Here the native service's receive queue is
// full of calls the master forwarded (it has not read them), so a unix client's call to it goes through
// the model and waits in the master's queue; its next call to the same service, sent in the same write,
// is held behind it. Then the service reads. Each call is served, told NoMemory or NoReply, or the caller
// is closed; never left waiting; and the service is never given the second before the first.
TEST(KernelOutOfMemory, CallsHeldBehindTheFence) {
    SKIP_WITHOUT_AF_BUS();
    std::optional<NativeClient> filler;
    std::optional<UnixClient> caller;
    Outcomes first, second;
    auto until_answered = [&](World& w) {
        w.pump([&] {
            w.serve("M");
            w.serve("M2");
            caller->read();
            return caller->closed() || (caller->answer(2) && caller->answer(3));
        });
    };
    const std::size_t made = fail_each_allocation(
        [&](World& w) {
            w.register_client(caller);
            w.register_client(filler);
            // Calls the master forwards (the filler sends everything to the master): the first two fill
            // the service's queue, the master keeps the third.
            std::vector<Message> calls;
            {
                FailingAllocations::Pause pause;
                for (std::uint32_t serial = 2; serial < 5; ++serial) {
                    auto call = MessageBuilder::method_call(kNativeService, "/x", "org.x.I", "Fill");
                    append(call, std::string(2500, 'x'));
                    calls.push_back(call.build(serial).value());
                }
            }
            // (Beyond what the master's side of the filler takes at once.)
            filler->may_wait();
            filler->say(std::move(calls), false);
            // Until the service's queue is full (two of them: beyond its 4 KiB) and the master keeps the
            // third (within the broker's 4 KiB, so that the next call is queued behind it, not refused).
            w.pump([&] {
                return filler->send_queued() && w.native_service->queued_in_kernel() >= 5000 &&
                       w.most_queued() >= 2500;
            });
            ASSERT_GE(w.native_service->queued_in_kernel(), 5000u) << "the service's queue did not fill";
            ASSERT_GE(w.most_queued(), 2500u) << "the master does not hold the third call";
        },
        [&](World& w) {
            std::vector<Message> calls;
            {
                FailingAllocations::Pause pause;
                for (const char* member : {"M", "M2"})
                    calls.push_back(MessageBuilder::method_call(kNativeService, "/x", "org.x.I", member)
                                        .build(member[1] == '\0' ? 2 : 3)
                                        .value());
            }
            caller->say(calls, false);
            until_answered(w);
        },
        [&](World& w) {
            until_answered(w);
            judge(*caller, 2, first);
            judge(*caller, 3, second);
            const ReceivedDatagram* m = w.native_service->call("M");
            const ReceivedDatagram* m2 = w.native_service->call("M2");
            if (m && m2) {
                EXPECT_LT(m, m2) << "the second call overtook the first";
            }
            // Where nothing failed: the first went through the master, the second straight through the
            // kernel once the first was there (the fence held it until then).
            if (!w.failed) {
                ASSERT_TRUE(m && m2);
                EXPECT_EQ(m->source.value_or(0), 0u) << "the first call did not go through the model";
                EXPECT_NE(m2->source.value_or(0), 0u)
                    << "the second call did not go straight through the kernel";
            }
        },
        WorldOptions{.max_outgoing_bytes = 4096});
    EXPECT_GT(made, 0u);
    std::printf("the call the model routes: served %d times, refused %d times, closed %d times\n",
                first.served, first.refused, first.closed);
    std::printf("the call held behind it: served %d times, refused %d times, closed %d times\n",
                second.served, second.refused, second.closed);
}

// Messages longer than the daemon reads into its shared buffer (64 KiB), for which it makes room as it
// reads: a native client's call with 100 KiB to the unix service (the master reads it, the service's
// bridge reads it from the kernel), and the native service's answer of 100 KiB to a unix client's call
// (the caller's bridge reads it). Without room, the datagram stays queued and is read again 100 ms later
// (retry_read_later, bridge_retry_read_later). Each caller is served, told NoMemory or NoReply, or
// closed; never left waiting.
TEST(KernelOutOfMemory, BigMessagesReadAgainLater) {
    SKIP_WITHOUT_AF_BUS();
    std::optional<NativeClient> native_caller;
    std::optional<UnixClient> unix_caller;
    Outcomes native_outcomes, unix_outcomes;
    auto until_answered = [&](World& w) {
        w.pump([&] {
            w.serve("Big");
            native_caller->read();
            unix_caller->read();
            return (native_caller->closed() || native_caller->answer(2)) &&
                   (unix_caller->closed() || unix_caller->answer(2));
        });
    };
    const std::size_t made = fail_each_allocation(
        [&](World& w) {
            w.register_client(native_caller);
            w.register_client(unix_caller);
        },
        [&](World& w) {
            native_caller->say(test::one_message(
                                   [] {
                                       auto call =
                                           MessageBuilder::method_call(kUnixService, "/x", "org.x.I", "Big");
                                       append(call, std::string(kBigMessageBytes, 'x'));
                                       return call;
                                   },
                                   2),
                               false);
            unix_caller->say(
                test::one_message(
                    [] { return MessageBuilder::method_call(kNativeService, "/x", "org.x.I", "Big"); }, 2),
                false);
            until_answered(w);
        },
        [&](World& w) {
            until_answered(w);
            judge(*native_caller, 2, native_outcomes);
            judge(*unix_caller, 2, unix_outcomes);
            if (const Message* answer = unix_caller->answer(2);
                answer && answer->type() == MessageType::MethodReturn) {
                EXPECT_GT(answer->size(), kBigMessageBytes) << "the big answer came cut";
            }
        });
    EXPECT_GT(made, 0u);
    std::printf("the native caller of 100 KiB: served %d times, refused %d times, closed %d times\n",
                native_outcomes.served, native_outcomes.refused, native_outcomes.closed);
    std::printf("the unix caller answered 100 KiB: served %d times, refused %d times, closed %d times\n",
                unix_outcomes.served, unix_outcomes.refused, unix_outcomes.closed);
}

// A native callee leaves while a bridged caller waits for its answer to a call the bridge sent it
// directly (to its unique name): the bus answers NoReply for it, or, with no memory for that, ends the
// caller's connection (KernelDelivery::detach); never leaves it waiting.
TEST(KernelOutOfMemory, ANativeCalleeLeavingWhileABridgedCallerWaits) {
    SKIP_WITHOUT_AF_BUS();
    std::optional<UnixClient> caller;
    Outcomes outcomes;
    const std::size_t made = fail_each_allocation(
        [&](World& w) {
            w.connect(caller);
            caller->say(hello_and_call(w.native_service->unique_name(), "Wait"));
            w.pump([&] {
                caller->read();
                w.native_service->read();
                return w.native_service->call("Wait") != nullptr;
            });
            ASSERT_TRUE(w.native_service->call("Wait")) << "the call did not reach the native service";
            // Sent by the bridge straight to the callee, not forwarded by the master.
            ASSERT_TRUE(w.native_service->call("Wait")->source.value_or(0) != 0);
        },
        [&](World& w) {
            w.native_service->hang_up();
            w.pump([&] {
                caller->read();
                return caller->closed() || caller->answer(2);
            });
        },
        [&](World& w) {
            w.pump([&] {
                caller->read();
                return caller->closed() || caller->answer(2);
            });
            judge(*caller, 2, outcomes);
            if (const Message* answer = caller->answer(2)) {
                EXPECT_EQ(answer->type(), MessageType::Error);
            }
        });
    EXPECT_GT(made, 0u);
    std::printf("the bridged caller: told NoReply %d times, closed %d times\n", outcomes.refused,
                outcomes.closed);
}

// A native client calls the unix service straight through the kernel, at the address the bus told it
// after its first call (forwarded by the master): the service's bridge reads the call and writes it to
// the unix side. Where the bridge has no memory for it, the call is given up and the bridge answers
// NoMemory in the service's name, at once: the caller is served, or told NoMemory, or closed; never left
// waiting (the kernel tracks a direct call, the bus does not).
TEST(KernelOutOfMemory, ADirectCallToABridgedService) {
    SKIP_WITHOUT_AF_BUS();
    std::optional<NativeClient> caller;
    std::uint64_t service_address = 0;
    Outcomes outcomes;
    auto until_answered = [&](World& w, std::uint32_t serial) {
        w.pump([&] {
            w.serve("M");
            w.serve("First");
            caller->read();
            return caller->closed() || caller->answer(serial);
        });
    };
    const std::size_t made = fail_each_allocation(
        [&](World& w) {
            w.connect(caller);
            caller->say(hello_and_call(kUnixService, "First"));
            until_answered(w, 2);
            ASSERT_TRUE(caller->answer(2)) << "the first call was not answered";
            w.pump([&] {
                caller->read();
                return caller->address_of(kUnixService).has_value();
            });
            ASSERT_TRUE(caller->address_of(kUnixService)) << "the bus did not say where the service lives";
            service_address = *caller->address_of(kUnixService);
        },
        [&](World& w) {
            MessageBuilder call = [] {
                FailingAllocations::Pause pause;
                return MessageBuilder::method_call(kUnixService, "/x", "org.x.I", "M");
            }();
            caller->send_to(service_address, std::move(call), 3);
            until_answered(w, 3);
        },
        [&](World& w) {
            until_answered(w, 3);
            judge(*caller, 3, outcomes);
            if (const Message* answer = caller->answer(3); answer && answer->type() == MessageType::Error) {
                EXPECT_EQ(answer->error_name(), error_names::kNoMemory);
            }
        });
    EXPECT_GT(made, 0u);
    std::printf("the direct caller: served %d times, told NoMemory %d times, closed %d times\n",
                outcomes.served, outcomes.refused, outcomes.closed);
}

// A registered native client asks for a match rule and a name at once: what the bus answers is what
// the kernel does. The rule and the name are mirrored in af_bus_dbus.ko (a match record; the name's
// address, moved to the client); a change the bus cannot mirror ends the client rather than leave the
// kernel routing differently from what the client was told. So after each run: a rule the client was
// told it has brings it the unix service's signal, and one it was refused does not; a name it was told
// it owns brings it a newcomer's call, and one it was refused gets the newcomer ServiceUnknown.
TEST(KernelOutOfMemory, ANativeClientsMatchRuleAndName) {
    SKIP_WITHOUT_AF_BUS();
    constexpr std::string_view kExtraName = "org.x.Extra";
    std::optional<NativeClient> client;
    Outcomes rule_outcomes, name_outcomes;
    auto until_answered = [&](World& w) {
        w.pump([&] {
            client->read();
            return client->closed() || (client->answer(2) && client->answer(3));
        });
    };
    const std::size_t made = fail_each_allocation(
        [&](World& w) { w.register_client(client); },
        [&](World& w) {
            std::vector<Message> requests;
            {
                FailingAllocations::Pause pause;
                auto add_match = driver_call_builder("AddMatch");
                append(add_match, std::string("type='signal',interface='org.x.I',member='Tick'"));
                requests.push_back(add_match.build(2).value());
                auto request_name = driver_call_builder("RequestName");
                append(request_name, std::string(kExtraName), std::uint32_t{0});
                requests.push_back(request_name.build(3).value());
            }
            client->say(std::move(requests), false);
            until_answered(w);
        },
        [&](World& w) {
            until_answered(w);
            if (client->closed()) {
                ++rule_outcomes.closed;
                ++name_outcomes.closed;
                return;
            }
            judge(*client, 2, rule_outcomes);
            judge(*client, 3, name_outcomes);
            const Message* rule = client->answer(2);
            const Message* name = client->answer(3);
            ASSERT_TRUE(rule && name);
            const bool has_rule = rule->type() == MessageType::MethodReturn;
            bool owns_name = false;
            if (name->type() == MessageType::MethodReturn) {
                std::uint32_t result = 0;
                MessageReader reader(*name);
                ASSERT_TRUE(read(reader, result));
                owns_name = result == 1;  // DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER
                EXPECT_TRUE(owns_name) << "RequestName answered " << result;
            }
            // The unix service signals; a newcomer calls the name.
            std::optional<UnixClient> newcomer;
            w.connect(newcomer);
            w.unix_service->say(
                test::one_message([] { return MessageBuilder::signal("/x", "org.x.I", "Tick"); }, 101),
                false);
            newcomer->say(hello_and_call(kExtraName, "Ping"));
            bool answered = false;
            w.pump([&] {
                client->read();
                newcomer->read();
                if (const ReceivedDatagram* ping = client->call("Ping"); ping && !answered) {
                    answered = true;
                    client->answer(*ping, 102);
                }
                return newcomer->answer(2) && (!has_rule || client->signal("Tick"));
            });
            EXPECT_EQ(client->signal("Tick") != nullptr, has_rule)
                << "the kernel's record and the bus's answer differ";
            const Message* ping_answer = newcomer->answer(2);
            ASSERT_TRUE(ping_answer) << "the newcomer's call to " << kExtraName << " was not answered";
            if (owns_name) {
                EXPECT_EQ(ping_answer->type(), MessageType::MethodReturn) << ping_answer->error_name();
            } else {
                EXPECT_EQ(ping_answer->error_name(), error_names::kServiceUnknown);
            }
        });
    EXPECT_GT(made, 0u);
    std::printf(
        "AddMatch: granted %d times, refused %d times; RequestName: granted %d times, refused %d times; "
        "the client closed %d times\n",
        rule_outcomes.served, rule_outcomes.refused, name_outcomes.served, name_outcomes.refused,
        rule_outcomes.closed);
}

// A configuration reload that brings a policy denying calls on org.x.Denied (Bus::set_settings, as
// ReloadConfig, SIGHUP and the directory watch make it): in kernel mode the policy is also installed in
// af_bus_dbus.ko, for the bus and for each client, which judges what clients send each other directly.
// Whole or not at all, in the model and in the kernel alike, and nobody ended: a call on org.x.Denied
// from a unix client to the native service (straight through the kernel, judged there) and one from a
// native client to the unix service (through the master, judged by the model) are both refused
// AccessDenied exactly when the reload took effect. (A client whose chains could not be made for the
// kernel used to be ended: a reload short of memory cost an arbitrary client its connection.)
TEST(KernelOutOfMemory, AReloadWithAPolicy) {
    SKIP_WITHOUT_AF_BUS();
    static bool threw = false;
    std::optional<UnixClient> unix_caller;
    std::optional<NativeClient> native_caller;
    int kept = 0, reloaded = 0;
    const std::size_t made = fail_each_allocation(
        [&](World& w) {
            w.register_client(unix_caller);
            w.register_client(native_caller);
        },
        [&](World& w) {
            BusSettings next = [] {
                FailingAllocations::Pause pause;
                BusSettings settings = settings_with_a_short_reply_timeout();
                settings.policy = test::denying_policy();
                return settings;
            }();
            threw = false;
            try {
                w.bus.set_settings(std::move(next));
            } catch (const std::bad_alloc&) {
                threw = true;
            }
        },
        [&](World& w) {
            const bool in_force = w.bus.settings().policy != nullptr;
            EXPECT_EQ(in_force, !threw) << "the reload " << (threw ? "failed" : "succeeded")
                                        << ", yet its policy is " << (in_force ? "" : "not ") << "in force";
            (threw ? kept : reloaded) += 1;
            const auto denied_call = [](std::string_view service) {
                return test::one_message(
                    [service] { return MessageBuilder::method_call(service, "/x", "org.x.Denied", "M"); }, 2);
            };
            unix_caller->say(denied_call(kNativeService), false);
            native_caller->say(denied_call(kUnixService), false);
            w.pump([&] {
                w.serve("M");
                unix_caller->read();
                native_caller->read();
                return (unix_caller->closed() || unix_caller->answer(2)) &&
                       (native_caller->closed() || native_caller->answer(2));
            });
            // Nobody is ended by a reload short of memory: each client's chains for the kernel are made
            // before anything changes (Delivery::stage_peer_policy).
            for (const auto& [closed, answer] :
                 {std::pair{unix_caller->closed(), unix_caller->answer(2)},
                  std::pair{native_caller->closed(), native_caller->answer(2)}}) {
                ASSERT_FALSE(closed) << "a client was ended by the reload";
                ASSERT_TRUE(answer) << "a caller waits for ever";
                const bool refused = answer->error_name() == error_names::kAccessDenied;
                EXPECT_EQ(refused, in_force) << "judged by the other policy: " << answer->error_name();
            }
        });
    EXPECT_GT(made, 0u);
    std::printf("the reload: failed whole %d times, in force whole %d times\n", kept, reloaded);
}

}  // namespace
}  // namespace afbus::daemon
