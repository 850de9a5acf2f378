// Fault injection (issue 17, item 4), against dbus-daemon and afbus-daemon (AFBUS_TEST_DAEMON):
// - clients killed at every stage of a connection (mid-SASL, mid-header, mid-body, with fds half sent,
//   owing a reply);
// - 100 reloads (ReloadConfig and SIGHUP) during sequenced traffic, and broken configurations at reload
//   and at start;
// - the daemon's own socket calls (read, write, accept) failing with EINTR, EAGAIN, ENOBUFS, ENOMEM,
//   EMFILE, ENFILE, through a preload shim (test/support/fault_shim.cpp);
// - a message the daemon has no memory for (RLIMIT_AS), and one announced beyond max_message_size.
// Each shows that only the affected client notices: the daemon lives, the clients already connected
// still get replies and signals, the daemon's fd count returns to where it was (fds passed with half a
// message are closed, not leaked), and a caller owed an answer by a client that went gets NoReply.
// docs/reliability.md (section 4) has the figures and where dbus-daemon differs.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "afbus/connection.hpp"
#include "afbus/error.hpp"
#include "afbus/framer.hpp"
#include "afbus/object.hpp"
#include "afbus/types.hpp"
#include "afbus/value.hpp"
#include "support/child_process.hpp"
#include "support/pump.hpp"
#include "support/raw_peer.hpp"
#include "test_bus.hpp"

namespace afbus {
namespace {

using namespace std::chrono_literals;
using test::connect;
using test::driver_call;
using test::raw_connection;
using test::read_reply;
using test::send_message;
using test::TestBus;
using test::TestBusOptions;

constexpr std::string_view kInterface = "org.example.Fault";

// ---------------------------------------------------------------------------------------------------
// A client process the test kills with SIGKILL. The child runs `script` on its own (raw sockets, no
// gtest: a failure is reported as a line starting with "FAIL"), reports each step as a line on a pipe,
// and then waits to be killed; the test reads the lines to know how far it got.
class DoomedClient {
public:
    using Report = std::function<void(const std::string&)>;

    explicit DoomedClient(const std::function<void(const Report&)>& script) {
        test::Pipe pipe = test::make_pipe();
        pid_ = ::fork();
        if (pid_ < 0) throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            pipe.read = Fd();
            const int out = pipe.write.get();
            script([out](const std::string& line) {
                const std::string text = line + "\n";
                (void)!::write(out, text.data(), text.size());
            });
            for (;;) ::pause();  // until the test kills it
        }
        pipe.write = Fd();
        reports_ = std::move(pipe.read);
    }
    ~DoomedClient() {
        if (pid_ > 0) test::kill_and_collect(pid_);
    }
    DoomedClient(const DoomedClient&) = delete;
    DoomedClient& operator=(const DoomedClient&) = delete;

    // The next line the child reports ("" if it reported nothing within 10 s or died).
    std::string next_report() {
        const auto deadline = test::Clock::now() + 10s;
        std::string line;
        for (;;) {
            pollfd p{reports_.get(), POLLIN, 0};
            if (::poll(&p, 1, test::remaining_ms(deadline)) != 1) return {};
            char c;
            if (::read(reports_.get(), &c, 1) != 1) return {};
            if (c == '\n') return line;
            line += c;
        }
    }
    void kill() {
        test::kill_and_collect(pid_);
        pid_ = -1;
    }

private:
    pid_t pid_ = -1;
    Fd reports_;
};

// The child's side: helpers that report failure instead of asserting.
void send_bytes(const Fd& fd, std::span<const std::byte> bytes, const std::vector<int>& fds = {}) {
    (void)test::send_with_fds(fd, bytes, fds);
}

void send_text(const Fd& fd, std::string_view text) {
    send_bytes(fd, std::as_bytes(std::span(text.data(), text.size())));
}

// Hello on a raw authenticated connection; the unique name ("" on failure).
std::string say_hello(const Fd& fd) {
    send_message(fd, driver_call("Hello"), 1);
    auto reply = read_reply(fd, 1);
    if (!reply || reply->type() != MessageType::MethodReturn) return {};
    return std::get<0>(read_all<std::string>(*reply).value());
}

// The next Ping call that arrives on the raw connection `fd` (none within 10 s: nothing).
std::optional<Message> next_ping(const Fd& fd) {
    MessageFramer framer;
    const auto deadline = test::Clock::now() + 10s;
    for (;;) {
        pollfd p{fd.get(), POLLIN, 0};
        if (::poll(&p, 1, test::remaining_ms(deadline)) != 1) return std::nullopt;
        auto space = framer.prepare();
        const ssize_t n = ::recv(fd.get(), space.data(), space.size(), 0);
        if (n <= 0) return std::nullopt;
        framer.commit(static_cast<std::size_t>(n));
        for (;;) {
            auto m = framer.next();
            if (!m || !*m) break;
            if ((*m)->type() == MessageType::MethodCall && (*m)->member() == "Ping") return std::move(**m);
        }
    }
}

Message ping(const std::string& destination) {
    return MessageBuilder::method_call(destination, "/org/example/Fault", kInterface, "Ping").build().value();
}

// A call with a body of `body_bytes` and `fds` (dup'd into the message).
Message bulky_call(const std::string& destination, std::size_t body_bytes, const std::vector<Fd>& fds = {}) {
    auto builder = MessageBuilder::method_call(destination, "/org/example/Fault", kInterface, "Bulky");
    append(builder, std::string(body_bytes, 'b'));
    for (const Fd& fd : fds) append(builder, UnixFd(Fd(::fcntl(fd.get(), F_DUPFD_CLOEXEC, 0))));
    return builder.build().value();
}

// The wire bytes of a small call to `destination` (serial 2) whose fixed header announces a body of
// `announced` bytes: the header that follows is whole, the body only begun.
std::vector<std::byte> call_announcing(const std::string& destination, std::uint32_t announced) {
    Message call = bulky_call(destination, 64);
    call.set_serial(2);
    auto wire = call.wire();
    // The body length is bytes 4-7, in the message's byte order: little-endian, as built here.
    EXPECT_EQ(wire[0], std::byte{'l'});
    for (int i = 0; i < 4; ++i) wire[4 + i] = static_cast<std::byte>((announced >> (8 * i)) & 0xff);
    return wire;
}

// ---------------------------------------------------------------------------------------------------
// The clients that were connected before a fault, and must not notice it: a service answering Ping, a
// caller, an emitter of a signal and a subscriber to it.
class Bystanders {
public:
    static constexpr int kConnections = 4;  // the connections it opens, one after another
    // How many of those the fault shim numbers: it numbers the daemon's stream connections (unix, TCP),
    // and in kernel mode libafbus clients connect over AF_BUS.
    static int numbered_connections() { return test::kernel_mode() ? 0 : kConnections; }
    explicit Bystanders(const TestBus& bus)
        : service_(connect(bus)), caller_(connect(bus)), emitter_(connect(bus)), subscriber_(connect(bus)) {
        if (!service_ || !caller_ || !emitter_ || !subscriber_) return;
        Interface iface{std::string(kInterface), {}, {}, {}};
        iface.methods.push_back(Method{"Ping", {}, {}, [](const Message&, MessageBuilder&) -> Expected<void, Error> { return {}; }});
        if (auto slot = service_->export_interface("/org/example/Fault", std::move(iface))) exported_ = std::move(*slot);
        auto subscribed = subscriber_->subscribe("type='signal',interface='org.example.Fault',member='Tick'",
                                                 [this](const Message&) { ++ticks_; });
        if (subscribed) subscription_ = std::move(*subscribed);
        ready_ = exported_.has_value() && subscription_.has_value();
    }

    [[nodiscard]] bool ready() const { return ready_; }
    Connection& caller() { return *caller_; }
    std::string service_name() const { return service_->unique_name(); }
    std::vector<Connection*> all() { return {service_.get(), caller_.get(), emitter_.get(), subscriber_.get()}; }

    // One call answered and one signal received, within 10 s.
    [[nodiscard]] bool still_served() {
        if (!ready_) return false;
        bool answered = false;
        auto slot = caller_->call_async(ping(service_->unique_name()), [&answered](Expected<Message, Error> r) {
            EXPECT_TRUE(r) << (r ? "" : r.error().name + ": " + r.error().message);
            answered = r.has_value();
        }, 10s);
        if (!slot) return false;
        const int ticks_before = ticks_;
        auto tick = MessageBuilder::signal("/org/example/Fault", kInterface, "Tick").build().value();
        if (!emitter_->send(std::move(tick))) return false;
        return test::pump({service_.get(), caller_.get(), emitter_.get(), subscriber_.get()},
                          [&] { return answered && ticks_ > ticks_before; });
    }

private:
    std::unique_ptr<Connection> service_, caller_, emitter_, subscriber_;
    std::optional<Slot> exported_, subscription_;
    int ticks_ = 0;
    bool ready_ = false;
};

// What the daemon's fds are (for a failure message): "3 -> socket:[123]" lines.
std::string open_fds_of(pid_t pid) {
    std::string out;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", error)) {
        const auto target = std::filesystem::read_symlink(entry.path(), error);
        out += entry.path().filename().string() + " -> " + (error ? "?" : target.string()) + "\n";
    }
    return out;
}

bool daemon_alive(const TestBus& bus) {
    int status = 0;
    return ::waitpid(bus.pid(), &status, WNOHANG) == 0;
}

// Waits (checking the bystanders meanwhile, which also gives the daemon turns of its loop) until the
// daemon holds `fds` fds; false after 10 s.
bool fds_return_to(const TestBus& bus, Bystanders& bystanders, std::size_t fds) {
    const auto deadline = test::Clock::now() + 10s;
    while (test::process_usage(bus.pid()).open_fds != fds) {
        if (!bystanders.still_served() || test::Clock::now() >= deadline) return false;
    }
    return true;
}

// Waits until the daemon holds at least `fds` fds (it has received what a client sent); false after 10 s.
bool daemon_holds_at_least(const TestBus& bus, std::size_t fds) {
    const auto deadline = test::Clock::now() + 10s;
    while (test::process_usage(bus.pid()).open_fds < fds) {
        if (test::Clock::now() >= deadline) return false;
        pollfd none{-1, 0, 0};
        ::poll(&none, 1, 5);  // /proc has nothing to wait on: a short poll between looks
    }
    return true;
}

struct KillStage {
    const char* what;
    // Runs in the child; reports "ready" when the connection is where the test wants to kill it, after
    // anything else the test waits for.
    std::function<void(const TestBus&, const DoomedClient::Report&)> script;
    // Fds the child passed that the daemon must hold before the kill (then close after it).
    std::size_t fds_in_flight = 0;
};

std::vector<KillStage> kill_stages() {
    std::vector<KillStage> stages;
    stages.push_back({"connected, nothing sent", [](const TestBus& bus, const DoomedClient::Report& report) {
        static Fd fd;
        fd = test::unauthenticated_connection(bus);
        report("ready");
    }});
    stages.push_back({"mid-SASL: half an AUTH line", [](const TestBus& bus, const DoomedClient::Report& report) {
        static Fd fd;
        fd = test::unauthenticated_connection(bus);
        send_text(fd, std::string(1, '\0') + "AUTH EXTERNAL " + test::sasl_hex(std::to_string(::getuid())).substr(0, 1));
        report("ready");
    }});
    stages.push_back({"mid-SASL: OK received, half a NEGOTIATE_UNIX_FD line", [](const TestBus& bus, const DoomedClient::Report& report) {
        static Fd fd;
        fd = test::unauthenticated_connection(bus);
        send_text(fd, std::string(1, '\0') + "AUTH EXTERNAL " + test::sasl_hex(std::to_string(::getuid())) + "\r\n");
        if (!test::read_sasl_line(fd).starts_with("OK ")) return report("FAIL: no OK");
        send_text(fd, "NEGOTIATE_UNIX");
        report("ready");
    }});
    // After Hello, a complete GetId call and the start of another message go in one write: once GetId is
    // answered, the bus has read the partial message too.
    auto partial_after_get_id = [](const Fd& fd, const Message& partial, std::size_t bytes, const std::vector<int>& fds,
                                   const DoomedClient::Report& report) {
        if (say_hello(fd).empty()) return report("FAIL: no Hello reply");
        Message get_id = driver_call("GetId");
        get_id.set_serial(2);
        const auto get_id_wire = get_id.wire();
        const auto partial_wire = partial.wire();
        if (!fds.empty()) {
            // The fds travel with the first byte of the half-sent message, in a write of its own.
            send_bytes(fd, get_id_wire);
            send_bytes(fd, std::span(partial_wire).first(bytes), fds);
        } else {
            std::vector<std::byte> both(get_id_wire.begin(), get_id_wire.end());
            both.insert(both.end(), partial_wire.begin(), partial_wire.begin() + static_cast<std::ptrdiff_t>(bytes));
            send_bytes(fd, both);
        }
        if (!read_reply(fd, 2)) return report("FAIL: GetId not answered");
        report("ready");
    };
    stages.push_back({"mid-header: 20 bytes of a call", [partial_after_get_id](const TestBus& bus, const DoomedClient::Report& report) {
        static Fd fd;
        fd = raw_connection(bus);
        Message call = bulky_call(":1.0", 4096);
        call.set_serial(3);
        partial_after_get_id(fd, call, 20, {}, report);
    }});
    stages.push_back({"mid-body: the header and half of a 4 KiB body", [partial_after_get_id](const TestBus& bus, const DoomedClient::Report& report) {
        static Fd fd;
        fd = raw_connection(bus);
        Message call = bulky_call(":1.0", 4096);
        call.set_serial(3);
        partial_after_get_id(fd, call, call.header_bytes().size() + 2048, {}, report);
    }});
    stages.push_back({"fds half sent: 3 fds with half of a 64 KiB call", [partial_after_get_id](const TestBus& bus, const DoomedClient::Report& report) {
        static Fd fd;
        fd = raw_connection(bus, true);
        std::vector<Fd> passed;
        for (int i = 0; i < 3; ++i) passed.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        Message call = bulky_call(":1.0", 64 * 1024, passed);
        call.set_serial(3);
        std::vector<int> raw;
        for (const Fd& f : call.fds()) raw.push_back(f.get());
        partial_after_get_id(fd, call, call.size() / 2, raw, report);
    }, 3});
    stages.push_back({"fds half sent: 3 fds with the first byte only", [](const TestBus& bus, const DoomedClient::Report& report) {
        static Fd fd;
        fd = raw_connection(bus, true);
        if (say_hello(fd).empty()) return report("FAIL: no Hello reply");
        std::vector<Fd> passed;
        for (int i = 0; i < 3; ++i) passed.emplace_back(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        Message call = bulky_call(":1.0", 16, passed);
        call.set_serial(3);
        std::vector<int> raw;
        for (const Fd& f : call.fds()) raw.push_back(f.get());
        const auto wire = call.wire();
        send_bytes(fd, std::span(wire).first(1), raw);
        report("ready");
    }, 3});
    return stages;
}

// A client is killed at each stage of its connection in turn; after each, the bus serves the clients
// that were there, and holds the fds it held before.
TEST(FaultInjection, ClientsKilledAtEveryStage) {
    TestBusOptions options;
    options.capture_log = true;
    TestBus bus(options);
    Bystanders bystanders(bus);
    ASSERT_TRUE(bystanders.ready());
    ASSERT_TRUE(bystanders.still_served());
    const std::size_t fds_before = test::process_usage(bus.pid()).open_fds;
    const auto start = test::Clock::now();
    for (const KillStage& stage : kill_stages()) {
        SCOPED_TRACE(stage.what);
        DoomedClient client([&](const DoomedClient::Report& report) { stage.script(bus, report); });
        ASSERT_EQ(client.next_report(), "ready");
        if (stage.fds_in_flight > 0) {
            // The bus has received the passed fds (with the message's first bytes) before the kill.
            ASSERT_TRUE(daemon_holds_at_least(bus, fds_before + 1 + stage.fds_in_flight))
                << test::process_usage(bus.pid()).open_fds << " fds, " << fds_before << " before";
        }
        const std::size_t fds_with_client = test::process_usage(bus.pid()).open_fds;
        client.kill();
        ASSERT_TRUE(daemon_alive(bus));
        EXPECT_TRUE(bystanders.still_served());
        EXPECT_TRUE(fds_return_to(bus, bystanders, fds_before))
            << test::process_usage(bus.pid()).open_fds << " fds, " << fds_before << " before";
        std::printf("%-55s daemon fds %zu -> %zu -> %zu\n", stage.what, fds_before, fds_with_client,
                    test::process_usage(bus.pid()).open_fds);
    }
    std::printf("%zu stages in %.2f s\n", kill_stages().size(),
                std::chrono::duration<double>(test::Clock::now() - start).count());
}

// A callee killed with a call it owes (before answering, and halfway through writing its answer): the
// caller gets NoReply from the bus, and the bus serves the others.
TEST(FaultInjection, ACalleeKilledOwingAReplyCostsItsCallerANoReply) {
    TestBus bus;
    Bystanders bystanders(bus);
    ASSERT_TRUE(bystanders.ready());
    const std::size_t fds_before = test::process_usage(bus.pid()).open_fds;
    for (const bool half_answered : {false, true}) {
        SCOPED_TRACE(half_answered ? "killed halfway through its reply" : "killed before replying");
        DoomedClient callee([&](const DoomedClient::Report& report) {
            static Fd fd;
            fd = raw_connection(bus);
            const std::string name = say_hello(fd);
            if (name.empty()) return report("FAIL: no Hello reply");
            report(name);
            // Wait for the call, then (maybe) write half of its reply.
            std::optional<Message> call = next_ping(fd);
            if (!call) return report("FAIL: no call");
            if (half_answered) {
                auto reply = MessageBuilder::method_return(*call).build().value();
                reply.set_serial(2);
                const auto wire = reply.wire();
                send_bytes(fd, std::span(wire).first(wire.size() / 2));
            }
            report("called");
        });
        const std::string name = callee.next_report();
        ASSERT_TRUE(name.starts_with(":")) << name;
        std::optional<Expected<Message, Error>> answer;
        auto slot = bystanders.caller().call_async(ping(name), [&answer](Expected<Message, Error> r) { answer = std::move(r); }, 30s);
        ASSERT_TRUE(slot);
        ASSERT_TRUE(bystanders.caller().process());
        ASSERT_EQ(callee.next_report(), "called");
        callee.kill();
        ASSERT_TRUE(*bystanders.caller().run_until([&] { return answer.has_value(); }, 10s));
        ASSERT_FALSE(*answer);
        EXPECT_EQ(answer->error().name, error_names::kNoReply);
        EXPECT_TRUE(bystanders.still_served());
        EXPECT_TRUE(fds_return_to(bus, bystanders, fds_before));
    }
}


// ---------------------------------------------------------------------------------------------------
// Reloading the configuration during traffic, and a broken configuration on reload.

// The bus's configuration for the reload tests: an <includedir> with one file in it that allows
// everything (the generated config does too); the tests put a broken or a denying file beside it.
TestBusOptions reloadable_options() {
    TestBusOptions options;
    options.capture_log = true;
    options.extra_config = "<includedir>@DIR@/conf.d</includedir>\n";
    options.files.push_back({"conf.d/base.conf",
                             "<busconfig>\n"
                             "  <policy context=\"default\">\n"
                             "    <allow send_interface=\"org.example.Fault\"/>\n"
                             "  </policy>\n"
                             "</busconfig>\n"});
    return options;
}

Message numbered(MessageBuilder builder, std::uint32_t n) {
    append(builder, n);
    return builder.build().value();
}

// 100 reloads, alternately ReloadConfig and SIGHUP, each of a changed policy, while a sender calls a
// receiver and emits signals to it (closed loop, 8 calls in flight): every call is answered exactly once
// with its own number, and the receiver sees every call and every signal once, in the order sent.
TEST(FaultInjection, ReloadingAHundredTimesDuringTrafficLosesNothing) {
    constexpr int kReloads = 100;
    constexpr std::uint32_t kWindow = 8;
    // Each reload waits for this many more answers since the last one: the reloads are spread through
    // the traffic, never all at once.
    constexpr std::uint32_t kAnswersPerReload = 20;
    TestBus bus(reloadable_options());
    auto sender = connect(bus);
    auto receiver = connect(bus);
    auto reloader = connect(bus);
    ASSERT_TRUE(sender && receiver && reloader);

    std::vector<std::uint32_t> calls_seen, signals_seen;
    Interface iface{std::string(kInterface), {}, {}, {}};
    iface.methods.push_back(Method{"Seq", {{"n", "u"}}, {{"n", "u"}}, [&](const Message& call, MessageBuilder& reply) -> Expected<void, Error> {
        const auto [n] = read_all<std::uint32_t>(call).value();
        calls_seen.push_back(n);
        append(reply, n);
        return {};
    }});
    auto exported = receiver->export_interface("/org/example/Fault", std::move(iface));
    ASSERT_TRUE(exported);
    auto subscription = receiver->subscribe("type='signal',interface='org.example.Fault',member='Seq'", [&](const Message& m) {
        signals_seen.push_back(std::get<0>(read_all<std::uint32_t>(m).value()));
    });
    ASSERT_TRUE(subscription);

    std::uint32_t next = 0, answered = 0, wrong_answers = 0, errors = 0;
    std::vector<Slot> in_flight;
    int reloads = 0, reload_calls_answered = 0, reload_errors = 0;
    // Traffic goes on until the last reload is done, then drains.
    auto send_more = [&] {
        while (reloads < kReloads && next - answered < kWindow) {
            const std::uint32_t n = next++;
            auto call = numbered(MessageBuilder::method_call(receiver->unique_name(), "/org/example/Fault", kInterface, "Seq"), n);
            auto slot = sender->call_async(std::move(call), [&, n](Expected<Message, Error> r) {
                ++answered;
                if (!r) {
                    ++errors;
                    ADD_FAILURE() << "call " << n << ": " << r.error().name << ": " << r.error().message;
                    return;
                }
                if (std::get<0>(read_all<std::uint32_t>(*r).value()) != n) ++wrong_answers;
            }, 10s);
            ASSERT_TRUE(slot);
            in_flight.push_back(std::move(*slot));
            ASSERT_TRUE(sender->send(numbered(MessageBuilder::signal("/org/example/Fault", kInterface, "Seq"), n)));
        }
    };

    bool reload_call_pending = false;
    std::uint32_t answered_at_last_reload = 0;
    std::optional<Slot> reload_slot;
    // Every reload has something to change: the included file alternates between the base policy and
    // one that also denies a method nobody calls during the traffic (written whole, by rename: the
    // daemon may reread the directory at any moment, since it watches it).
    const std::string included = bus.directory() + "/conf.d/base.conf";
    auto write_included = [&](bool deny_unused) {
        {
            std::ofstream(included + ".new") << "<busconfig>\n  <policy context=\"default\">\n"
                                                "    <allow send_interface=\"org.example.Fault\"/>\n"
                                             << (deny_unused ? "    <deny send_interface=\"org.example.Fault\" send_member=\"Unused\"/>\n" : "")
                                             << "  </policy>\n</busconfig>\n";
        }
        ASSERT_EQ(::rename((included + ".new").c_str(), included.c_str()), 0);
    };
    auto reload_when_due = [&] {
        if (reloads == kReloads || reload_call_pending || answered - answered_at_last_reload < kAnswersPerReload) return;
        answered_at_last_reload = answered;
        write_included(reloads % 2 == 1);
        if (reloads++ % 2 == 0) {
            reload_call_pending = true;
            auto slot = reloader->call_async(driver_call("ReloadConfig"), [&](Expected<Message, Error> r) {
                reload_call_pending = false;
                ++reload_calls_answered;
                if (!r) {
                    ++reload_errors;
                    ADD_FAILURE() << r.error().name << ": " << r.error().message;
                }
            }, 10s);
            ASSERT_TRUE(slot);
            reload_slot = std::move(*slot);
        } else {
            ASSERT_EQ(::kill(bus.pid(), SIGHUP), 0);
        }
    };
    const auto start = test::Clock::now();
    const std::size_t fds_before = test::process_usage(bus.pid()).open_fds;
    ASSERT_TRUE(test::pump({sender.get(), receiver.get(), reloader.get()}, [&] {
        send_more();
        reload_when_due();
        if (in_flight.size() > 4 * kWindow) in_flight.erase(in_flight.begin(), in_flight.end() - kWindow);
        return reloads == kReloads && !reload_call_pending && answered == next && signals_seen.size() == next &&
               answered >= kReloads * kAnswersPerReload;
    }, 60s)) << reloads << " reloads, " << answered << " of " << next << " calls answered, " << signals_seen.size()
             << " signals";
    const double seconds = std::chrono::duration<double>(test::Clock::now() - start).count();
    std::printf("%d reloads (%d ReloadConfig, %d SIGHUP) during %u calls and %u signals, %.2f s; daemon fds %zu -> %zu\n",
                reloads, reload_calls_answered, reloads - reload_calls_answered, next, next, seconds, fds_before,
                test::process_usage(bus.pid()).open_fds);
    EXPECT_EQ(reload_errors, 0);
    EXPECT_EQ(errors, 0u);
    EXPECT_EQ(wrong_answers, 0u);
    std::vector<std::uint32_t> in_order(next);
    for (std::uint32_t i = 0; i < next; ++i) in_order[i] = i;
    EXPECT_EQ(calls_seen, in_order) << "calls lost, duplicated or out of order";
    EXPECT_EQ(signals_seen, in_order) << "signals lost, duplicated or out of order";
    // The last reload (a SIGHUP) wrote the denying file; once more through ReloadConfig, to know it is
    // read: it is in force.
    ASSERT_TRUE(reloader->call(driver_call("ReloadConfig")));
    bool unused_answered = false;
    std::optional<Error> unused_error;
    auto unused = sender->call_async(MessageBuilder::method_call(receiver->unique_name(), "/org/example/Fault", kInterface, "Unused").build().value(),
                                     [&](Expected<Message, Error> r) {
                                         unused_answered = true;
                                         if (!r) unused_error = r.error();
                                     }, 10s);
    ASSERT_TRUE(unused);
    ASSERT_TRUE(test::pump({sender.get(), receiver.get()}, [&] { return unused_answered; }));
    ASSERT_TRUE(unused_error);
    EXPECT_EQ(unused_error->name, error_names::kAccessDenied) << "the last configuration is not in force";
    EXPECT_EQ(test::count_lines_with(bus.log(), "Unable to reload"), 0u) << bus.log();
    ASSERT_TRUE(daemon_alive(bus));
}

Message ping_call(const std::string& destination) { return ping(destination); }

// Whether `caller` may call Ping on `service` (false: the bus refused it with AccessDenied).
bool ping_allowed(Connection& caller, Connection& service) {
    bool done = false, allowed = false;
    auto slot = caller.call_async(ping_call(service.unique_name()), [&](Expected<Message, Error> r) {
        done = true;
        allowed = r.has_value();
        if (!r) {
            EXPECT_EQ(r.error().name, error_names::kAccessDenied) << r.error().message;
        }
    }, 10s);
    EXPECT_TRUE(slot);
    EXPECT_TRUE(test::pump({&caller, &service}, [&] { return done; }));
    return allowed;
}

// A configuration that is broken on reload (an unknown element in an included file, XML that does not
// parse in an included file, the main file overwritten with XML that does not parse) is refused:
// ReloadConfig answers an error, the log names the file, the line and the reason (for SIGHUP too), and
// the old configuration stays in force: the call the broken file would deny still goes through. The
// same file without its fault, reloaded, does deny it: the reload did read the new files.
TEST(FaultInjection, ABrokenConfigOnReloadLeavesTheOldOneInForce) {
    TestBus bus(reloadable_options());
    auto service = connect(bus);
    auto caller = connect(bus);
    auto reloader = connect(bus);
    ASSERT_TRUE(service && caller && reloader);
    Interface iface{std::string(kInterface), {}, {}, {}};
    iface.methods.push_back(Method{"Ping", {}, {}, [](const Message&, MessageBuilder&) -> Expected<void, Error> { return {}; }});
    auto exported = service->export_interface("/org/example/Fault", std::move(iface));
    ASSERT_TRUE(exported);
    ASSERT_TRUE(ping_allowed(*caller, *service));

    const std::string conf_d = bus.directory() + "/conf.d";
    const std::string deny_ping = "    <deny send_interface=\"org.example.Fault\" send_member=\"Ping\"/>\n";
    struct Broken {
        const char* what;
        std::string file;     // written into the temporary directory
        std::string content;
        int line;             // the line the daemon must name
        const char* reason;   // a word of the reason afbus-daemon gives
    };
    const std::string main_config = [&] {
        std::ifstream in(bus.directory() + "/bus.conf");
        return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }();
    const Broken cases[] = {
        {"an unknown element in an included file", conf_d + "/zz-broken.conf",
         "<busconfig>\n  <policy context=\"default\">\n" + deny_ping + "  </policy>\n  <no_such_element/>\n</busconfig>\n",
         5, "no_such_element"},
        {"XML that does not parse in an included file", conf_d + "/zz-broken.conf",
         "<busconfig>\n  <policy context=\"default\">\n" + deny_ping + "  </polisy>\n</busconfig>\n", 4, "mismatched tag"},
        {"the main file overwritten with XML that does not parse", bus.directory() + "/bus.conf",
         "<busconfig>\n  <policy context=\"default\">\n" + deny_ping + "</busconfig>\n", 4, "mismatched tag"},
    };
    for (const Broken& broken : cases) {
        SCOPED_TRACE(broken.what);
        { std::ofstream(broken.file) << broken.content; }
        auto reply = reloader->call(driver_call("ReloadConfig"));
        std::printf("%s: ReloadConfig answered %s\n", broken.what,
                    reply ? "success" : (reply.error().name + ": " + reply.error().message).c_str());
        if (!test::testing_afbus_daemon() && !broken.file.ends_with("bus.conf")) {
            // dbus-daemon skips a file of an <includedir> that does not parse (logging it) and takes
            // the rest: the reload succeeds, without the broken file's deny.
            EXPECT_TRUE(reply);
        } else {
            ASSERT_FALSE(reply) << "the broken configuration was accepted";
        }
        ASSERT_EQ(::kill(bus.pid(), SIGHUP), 0);
        // The old configuration stays: Ping still goes through (after the SIGHUP too: the round trip
        // comes after the daemon read the signal, which it handles in its loop before new input).
        EXPECT_TRUE(ping_allowed(*caller, *service));
        EXPECT_TRUE(reloader->call(driver_call("GetId")));
        const std::string where = broken.file + ":" + std::to_string(broken.line);
        if (test::testing_afbus_daemon()) {
            EXPECT_NE(reply.error().message.find(where), std::string::npos) << reply.error().message;
            const std::string log = bus.log();
            // One line for ReloadConfig and one for SIGHUP at least (a change in the <includedir> is
            // noticed and reloaded as well, failing the same way).
            EXPECT_GE(test::count_lines_with(log, where), 2u) << log;
            EXPECT_NE(log.find(broken.reason), std::string::npos) << log;
        }
        // Mended, the same file now reloads, and the deny in it takes effect.
        if (broken.file.ends_with("bus.conf")) {
            std::ofstream(broken.file) << main_config;
        } else {
            std::ofstream(broken.file) << "<busconfig>\n  <policy context=\"default\">\n" + deny_ping + "  </policy>\n</busconfig>\n";
        }
        ASSERT_TRUE(reloader->call(driver_call("ReloadConfig")));
        if (!broken.file.ends_with("bus.conf")) {
            EXPECT_FALSE(ping_allowed(*caller, *service)) << "the mended file was not read";
            ASSERT_EQ(::unlink(broken.file.c_str()), 0);
            ASSERT_TRUE(reloader->call(driver_call("ReloadConfig")));
        }
        EXPECT_TRUE(ping_allowed(*caller, *service));
    }
    std::printf("daemon log:\n%s\n", bus.log().c_str());
    ASSERT_TRUE(daemon_alive(bus));
}


// At start, a file of an <includedir> that does not parse is left out, with a logged file:line error,
// and the bus starts on the rest, as dbus-daemon does: one broken drop-in file must not keep a system bus
// from starting. (afbus-daemon refused to start before.) The file's deny is not in force; once mended
// and reloaded, it is.
TEST(FaultInjection, ABrokenIncludedFileAtStartIsLeftOut) {
    const std::string deny_ping = "    <deny send_interface=\"org.example.Fault\" send_member=\"Ping\"/>\n";
    TestBusOptions options = reloadable_options();
    options.files.push_back({"conf.d/zz-broken.conf", "<busconfig>\n  <policy context=\"default\">\n" + deny_ping +
                                                          "  </policy>\n  <no_such_element/>\n</busconfig>\n"});
    TestBus bus(options);
    auto service = connect(bus);
    auto caller = connect(bus);
    ASSERT_TRUE(service && caller);
    Interface iface{std::string(kInterface), {}, {}, {}};
    iface.methods.push_back(Method{"Ping", {}, {}, [](const Message&, MessageBuilder&) -> Expected<void, Error> { return {}; }});
    auto exported = service->export_interface("/org/example/Fault", std::move(iface));
    ASSERT_TRUE(exported);
    EXPECT_TRUE(ping_allowed(*caller, *service)) << "the broken file's deny is in force";
    const std::string log = bus.log();
    std::printf("daemon log:\n%s\n", log.c_str());
    const std::string file = bus.directory() + "/conf.d/zz-broken.conf";
    if (test::testing_afbus_daemon()) {
        EXPECT_EQ(test::count_lines_with(log, file + ":5: Element <no_such_element> not allowed"), 1u) << log;
    } else {
        EXPECT_EQ(test::count_lines_with(log, "while parsing '" + file + "'"), 1u) << log;
    }
    { std::ofstream(file) << "<busconfig>\n  <policy context=\"default\">\n" + deny_ping + "  </policy>\n</busconfig>\n"; }
    ASSERT_TRUE(caller->call(driver_call("ReloadConfig")));
    EXPECT_FALSE(ping_allowed(*caller, *service)) << "the mended file was not read";
}

// ---------------------------------------------------------------------------------------------------
// Syscall failures on the daemon's I/O path, through the preload shim test/support/fault_shim.cpp: it
// makes the daemon's read, write or accept calls on the Nth accepted connection fail with a chosen errno,
// a chosen number of times, when the test writes a rule into its control file.

// Skips the test when nobody said where the shim is (run by hand: meson test sets AFBUS_FAULT_SHIM).
#define SKIP_WITHOUT_FAULT_SHIM()                                                                               \
    if (!std::getenv("AFBUS_FAULT_SHIM"))                                                                       \
    GTEST_SKIP() << "AFBUS_FAULT_SHIM is not set: it names test/support/fault_shim.cpp's library (meson test " \
                    "sets it; docs/reliability.md, section 4)"

// Waits until the daemon's log is longer than `seen` bytes (an inotify watch on it, not a poll of it);
// false when `deadline` passes first.
bool log_grows_beyond(const TestBus& bus, std::size_t seen, test::Clock::time_point deadline) {
    const Fd watch(::inotify_init1(IN_CLOEXEC));
    if (!watch || ::inotify_add_watch(watch.get(), bus.log_path().c_str(), IN_MODIFY) < 0) return false;
    // Written between the caller's look and the watch: nothing more to wait for.
    if (bus.log().size() > seen) return true;
    pollfd p{watch.get(), POLLIN, 0};
    return ::poll(&p, 1, test::remaining_ms(deadline)) == 1;
}

// Waits until a line of the daemon's log (capture_log) holds both `needle` and `also`; false after 10 s.
bool log_line_appears(const TestBus& bus, std::string_view needle, std::string_view also = "") {
    const auto deadline = test::Clock::now() + 10s;
    for (;;) {
        const std::string log = bus.log();
        for (std::size_t start = 0; start < log.size();) {
            std::size_t end = log.find('\n', start);
            if (end == std::string::npos) end = log.size();
            const std::string_view line = std::string_view(log).substr(start, end - start);
            if (line.find(needle) != std::string_view::npos && line.find(also) != std::string_view::npos) return true;
            start = end + 1;
        }
        if (!log_grows_beyond(bus, log.size(), deadline)) return false;
    }
}

class ShimmedBus {
public:
    ShimmedBus() : bus_(options()) {}
    TestBus& bus() { return bus_; }

    // The shim numbers stream connections in the order the daemon accepted them; the tests connect one
    // at a time (libafbus's open returns after Hello), so each new connection is the next number. The
    // victims connect on the unix socket, also in kernel mode: the faults are the daemon's I/O on it.
    int connection_count() const { return connections_; }
    std::unique_ptr<Connection> connect() {
        auto c = test::connect_over_unix(bus_);
        if (c) ++connections_;
        return c;
    }
    Fd raw_connection() {
        Fd fd = test::raw_connection(bus_);
        if (fd) ++connections_;
        return fd;
    }
    // Connected, not authenticated: the daemon accepts it (and numbers it) whatever it does next.
    Fd unauthenticated_connection() {
        Fd fd = test::unauthenticated_connection(bus_);
        if (fd) ++connections_;
        return fd;
    }
    // The number the shim gives the next connection the daemon accepts.
    int next_connection_number() const { return Bystanders::numbered_connections() + connections_ + 1; }

    // The shim takes the rule at its next intercepted call (written whole, by rename).
    void arm(const std::string& rule) {
        const std::string control = bus_.directory() + "/fault-control";
        { std::ofstream(control + ".new") << rule << "\n"; }
        ASSERT_EQ(::rename((control + ".new").c_str(), control.c_str()), 0);
    }

    // Waits until a line of the daemon's log holds both `needle` and `also`; false after 10 s.
    bool log_shows(std::string_view needle, std::string_view also = "") const {
        return log_line_appears(bus_, needle, also);
    }

private:
    static TestBusOptions options() {
        TestBusOptions options;
        options.capture_log = true;
        if (const char* shim = std::getenv("AFBUS_FAULT_SHIM")) {
            std::string preload = shim;
            // The sanitizer build's afbus-daemon wants the ASan runtime first (test/meson.build);
            // dbus-daemon is not sanitized.
            const char* first = std::getenv("AFBUS_FAULT_PRELOAD_FIRST");
            if (first && test::testing_afbus_daemon()) preload = std::string(first) + ":" + preload;
            // The shim fails recvmsg: the daemon's connections are read with it, not through io_uring.
            options.environment = {"LD_PRELOAD=" + preload, "AFBUS_FAULT_CONTROL=@DIR@/fault-control",
                                   "AFBUS_DAEMON_IO_URING=0"};
        }
        return options;
    }

    TestBus bus_;
    int connections_ = 0;
};

// A Ping to the bystanders' service from `client`, answered within 10 s (pumping the bystanders too).
bool ping_answered(Connection& client, Bystanders& bystanders, const std::string& service) {
    bool answered = false;
    auto slot = client.call_async(ping(service), [&](Expected<Message, Error> r) {
        EXPECT_TRUE(r) << (r ? "" : r.error().name + ": " + r.error().message);
        answered = r.has_value();
    }, 10s);
    if (!slot) return false;
    auto all = bystanders.all();
    const auto deadline = test::Clock::now() + 10s;
    while (!answered && test::Clock::now() < deadline) {
        EXPECT_TRUE(client.process());
        for (Connection* c : all) EXPECT_TRUE(c->process());
        std::vector<pollfd> fds{{client.fd(), client.poll_events(), 0}};
        for (Connection* c : all) fds.push_back({c->fd(), c->poll_events(), 0});
        ::poll(fds.data(), fds.size(), 100);
    }
    return answered;
}

// EINTR and EAGAIN from the daemon's reads and writes of one connection, three times in a row: the
// daemon tries again, the connection's call is answered, and nobody notices.
TEST(FaultInjection, TransientSocketErrorsAreRetriedAndNobodyNotices) {
    SKIP_WITHOUT_FAULT_SHIM();
    ShimmedBus shimmed;
    Bystanders bystanders(shimmed.bus());
    ASSERT_TRUE(bystanders.ready());
    ASSERT_TRUE(bystanders.still_served());
    for (const char* what : {"read", "write"}) {
        for (const char* error : {"EINTR", "EAGAIN"}) {
            SCOPED_TRACE(std::string(what) + " " + error);
            auto victim = shimmed.connect();
            ASSERT_TRUE(victim);
            // Everything the bus had for the victim (NameAcquired) is written once this is answered: the
            // rule hits the call and its answer.
            ASSERT_TRUE(victim->call(driver_call("GetId")));
            const std::string number = std::to_string(Bystanders::numbered_connections() + shimmed.connection_count());
            shimmed.arm(std::string(what) + " " + error + " 3 " + number);
            // The daemon reads the victim's call (the read rule) and writes the answer to it (the write
            // rule), failing three times first.
            EXPECT_TRUE(ping_answered(*victim, bystanders, bystanders.service_name()));
            EXPECT_TRUE(shimmed.log_shows("on connection " + number + " (fd", std::string("fails with ") + error + " (0 left)"))
                << shimmed.bus().log();
            // Still connected and served; so are the others.
            EXPECT_TRUE(ping_answered(*victim, bystanders, bystanders.service_name()));
            EXPECT_TRUE(bystanders.still_served());
        }
    }
    std::printf("daemon log:\n%s\n", shimmed.bus().log().c_str());
}

// ENOBUFS and ENOMEM from the daemon's reads and writes of one connection: that connection is
// disconnected (it sees the end of its socket), a call it owed is answered NoReply, the daemon lets go of
// its fds, and the other connections notice nothing. afbus-daemon logs the loss as a warning naming the
// connection and the error. Except ENOMEM from a read (three in a row here): the kernel was short of
// memory, and both daemons read again later; the connection is answered and goes on.
TEST(FaultInjection, HardSocketErrorsDisconnectOnlyThatPeer) {
    SKIP_WITHOUT_FAULT_SHIM();
    ShimmedBus shimmed;
    Bystanders bystanders(shimmed.bus());
    ASSERT_TRUE(bystanders.ready());
    ASSERT_TRUE(bystanders.still_served());
    const std::size_t fds_before = test::process_usage(shimmed.bus().pid()).open_fds;
    for (const char* what : {"read", "write"}) {
        for (const char* error : {"ENOBUFS", "ENOMEM"}) {
            SCOPED_TRACE(std::string(what) + " " + error);
            Fd victim = shimmed.raw_connection();
            const std::string victim_name = say_hello(victim);
            ASSERT_FALSE(victim_name.empty());
            // dbus-daemon may write NameAcquired after the Hello reply, later: once a GetId is answered,
            // everything before it has been written, and the rule hits the write of the call.
            send_message(victim, driver_call("GetId"), 9);
            ASSERT_TRUE(read_reply(victim, 9));
            const bool reading = std::string_view(what) == "read";
            const bool read_again = reading && std::string_view(error) == "ENOMEM";
            const std::string rule = std::string(what) + " " + error + (read_again ? " 3 " : " 1 ") +
                                     std::to_string(Bystanders::numbered_connections() + shimmed.connection_count());
            if (!reading) shimmed.arm(rule);  // the daemon fails to write the call to the victim
            std::optional<Expected<Message, Error>> answer;
            auto slot = bystanders.caller().call_async(ping(victim_name), [&](Expected<Message, Error> r) { answer = std::move(r); }, 30s);
            ASSERT_TRUE(slot);
            ASSERT_TRUE(bystanders.caller().process());
            if (reading) {
                // The victim has the call; the daemon fails to read what it sends next.
                ASSERT_TRUE(next_ping(victim));
                shimmed.arm(rule);
                send_message(victim, driver_call("GetId"), 2);
            }
            if (read_again) {
                // The victim stays and is answered. Then it leaves, still owing its answer.
                const auto start = test::Clock::now();
                EXPECT_TRUE(read_reply(victim, 2)) << "the victim was disconnected";
                std::printf("read ENOMEM x3: answered after %.3f s\n",
                            std::chrono::duration<double>(test::Clock::now() - start).count());
                victim = Fd();
            } else {
                EXPECT_TRUE(test::closed_by_bus(victim)) << "the victim was not disconnected";
            }
            ASSERT_TRUE(*bystanders.caller().run_until([&] { return answer.has_value(); }, 10s));
            ASSERT_FALSE(*answer);
            EXPECT_EQ(answer->error().name, error_names::kNoReply);
            EXPECT_TRUE(shimmed.log_shows(std::string("fails with ") + error + " (0 left)"));
            if (test::testing_afbus_daemon() && !read_again) {
                const char* reason = std::strerror(std::string_view(error) == "ENOMEM" ? ENOMEM : ENOBUFS);
                EXPECT_TRUE(shimmed.log_shows("connection " + victim_name + " (uid=", reason)) << shimmed.bus().log();
            }
            victim = Fd();
            EXPECT_TRUE(bystanders.still_served());
            EXPECT_TRUE(fds_return_to(shimmed.bus(), bystanders, fds_before))
                << test::process_usage(shimmed.bus().pid()).open_fds << " fds, " << fds_before << " before";
        }
    }
    std::printf("daemon log:\n%s\n", shimmed.bus().log().c_str());
}

// The faults the kernel-mode tests inject into the daemon's calls on one AF_BUS socket, and whether the
// client it serves survives them: EINTR and EAGAIN are retried, ENOMEM on a read is read again later;
// ENOBUFS on a read and ENOMEM on a write cost the client its connection.
struct SocketFault {
    const char* rule;
    bool survives;
};
constexpr SocketFault kSocketFaults[] = {{"read EINTR 3", true},    {"read EAGAIN 3", true},  {"write EINTR 3", true},
                                         {"write EAGAIN 3", true},  {"read ENOMEM 3", true},  {"read ENOBUFS 1", false},
                                         {"write ENOMEM 1", false}};

// Waits until `victim` sees the bus hang up (serving `others` meanwhile), and checks that the daemon
// logged the loss, naming it and the errno of `fault`.
void expect_lost(ShimmedBus& shimmed, Connection& victim, const SocketFault& fault,
                 const std::vector<Connection*>& others = {}) {
    const auto deadline = test::Clock::now() + 10s;
    while (victim.connected() && test::Clock::now() < deadline) {
        (void)victim.process();
        for (Connection* c : others) EXPECT_TRUE(c->process());
        std::vector<pollfd> fds{{victim.fd(), POLLIN, 0}};
        for (Connection* c : others) fds.push_back({c->fd(), c->poll_events(), 0});
        ::poll(fds.data(), fds.size(), 100);
    }
    EXPECT_FALSE(victim.connected()) << "the victim was not disconnected";
    const bool no_memory = std::string_view(fault.rule).find("ENOMEM") != std::string_view::npos;
    const std::string reason = std::strerror(no_memory ? ENOMEM : ENOBUFS);
    EXPECT_TRUE(shimmed.log_shows("connection " + victim.unique_name() + " (uid=", reason)) << shimmed.bus().log();
}

// Kernel mode: the daemon's reads and writes of a native client's AF_BUS socket (its master side, which
// carries the client's Hello, its calls to the bus and their answers). EINTR and EAGAIN are retried, and
// ENOMEM from a read is read again later, as on a unix socket: the client is answered. ENOBUFS from a read
// and ENOMEM from a write cost that client its connection. Nobody else notices, and the daemon lets go of
// the client's fds.
TEST(FaultInjection, SocketErrorsOnANativeClientsAfBusSocketAffectOnlyIt) {
    SKIP_WITHOUT_FAULT_SHIM();
    if (!test::kernel_mode()) GTEST_SKIP() << "kernel mode only: native clients connect over AF_BUS";
    ShimmedBus shimmed;
    Bystanders bystanders(shimmed.bus());
    ASSERT_TRUE(bystanders.ready());
    ASSERT_TRUE(bystanders.still_served());
    const std::size_t fds_before = test::process_usage(shimmed.bus().pid()).open_fds;
    // The bystanders are native: AF_BUS sockets 1 to 4 of the daemon; each victim is the next one.
    int bus_sockets = Bystanders::kConnections;
    for (const SocketFault& fault : kSocketFaults) {
        SCOPED_TRACE(fault.rule);
        auto victim = test::connect(shimmed.bus());
        ASSERT_TRUE(victim);
        const std::string socket_number = std::to_string(++bus_sockets);
        // Everything the bus had for the victim (NameAcquired) is written once this is answered: the rule
        // hits the next call and its answer.
        ASSERT_TRUE(victim->call(driver_call("GetId")));
        shimmed.arm(std::string(fault.rule) + " bus:" + socket_number);
        auto answer = victim->call(driver_call("GetId"), 10s);
        EXPECT_TRUE(shimmed.log_shows("on AF_BUS socket " + socket_number + " (fd", "(0 left)"))
            << shimmed.bus().log();
        if (fault.survives) {
            EXPECT_TRUE(answer) << answer.error().name << ": " << answer.error().message;
            EXPECT_TRUE(victim->call(driver_call("GetId")));
        } else {
            // (A write that failed may still go out: the daemon flushes a client once more as it lets go
            // of it, so the answer may have arrived before the end.)
            expect_lost(shimmed, *victim, fault);
        }
        EXPECT_TRUE(bystanders.still_served());
        victim.reset();
        EXPECT_TRUE(fds_return_to(shimmed.bus(), bystanders, fds_before))
            << test::process_usage(shimmed.bus().pid()).open_fds << " fds, " << fds_before << " before";
    }
    std::printf("daemon log:\n%s\n", shimmed.bus().log().c_str());
}

// Kernel mode: the daemon's reads and writes of a bridge, the AF_BUS socket it connects for each unix
// client and through which that client's messages to other clients leave and theirs arrive. The victim
// (on the unix socket) calls a native service: the daemon writes the call into the kernel through the
// victim's bridge and reads the answer from it. EINTR and EAGAIN are retried, and ENOMEM from a read is
// read again later, as on the victim's unix socket: it is answered. ENOBUFS from a read and ENOMEM from a
// write cost the victim its connection, logged naming it. Nobody else notices, and the daemon lets go of
// the victim's fds (its unix socket and both sides of its bridge).
TEST(FaultInjection, SocketErrorsOnABridgeAffectOnlyItsClient) {
    SKIP_WITHOUT_FAULT_SHIM();
    if (!test::kernel_mode()) GTEST_SKIP() << "kernel mode only: unix clients are bridged into AF_BUS";
    ShimmedBus shimmed;
    Bystanders bystanders(shimmed.bus());
    ASSERT_TRUE(bystanders.ready());
    ASSERT_TRUE(bystanders.still_served());
    const std::size_t fds_before = test::process_usage(shimmed.bus().pid()).open_fds;
    for (const SocketFault& fault : kSocketFaults) {
        SCOPED_TRACE(fault.rule);
        // The bystanders are native; each victim is the next unix client, given the next bridge at Hello.
        auto victim = shimmed.connect();
        ASSERT_TRUE(victim);
        const std::string bridge = std::to_string(shimmed.connection_count());
        ASSERT_TRUE(ping_answered(*victim, bystanders, bystanders.service_name()));
        shimmed.arm(std::string(fault.rule) + " bridge:" + bridge);
        const auto start = test::Clock::now();
        if (fault.survives) {
            EXPECT_TRUE(ping_answered(*victim, bystanders, bystanders.service_name()));
            std::printf("%s: answered after %.3f s\n", fault.rule,
                        std::chrono::duration<double>(test::Clock::now() - start).count());
            EXPECT_TRUE(shimmed.log_shows("on bridge socket " + bridge + " (fd", "(0 left)")) << shimmed.bus().log();
            EXPECT_TRUE(ping_answered(*victim, bystanders, bystanders.service_name()));
        } else {
            // The call or its answer is lost with the bridge; the victim sees the bus hang up.
            std::optional<Expected<Message, Error>> answer;
            auto slot = victim->call_async(ping(bystanders.service_name()),
                                           [&](Expected<Message, Error> r) { answer = std::move(r); }, 10s);
            ASSERT_TRUE(slot);
            expect_lost(shimmed, *victim, fault, bystanders.all());
            EXPECT_FALSE(answer && *answer) << "answered through a broken bridge";
            EXPECT_TRUE(shimmed.log_shows("on bridge socket " + bridge + " (fd", "(0 left)")) << shimmed.bus().log();
        }
        EXPECT_TRUE(bystanders.still_served());
        victim.reset();
        EXPECT_TRUE(fds_return_to(shimmed.bus(), bystanders, fds_before))
            << test::process_usage(shimmed.bus().pid()).open_fds << " fds, " << fds_before << " before:\n"
            << open_fds_of(shimmed.bus().pid());
    }
    std::printf("daemon log:\n%s\n", shimmed.bus().log().c_str());
}

// Kernel mode: the daemon asks af_bus.ko what a native client's master side holds (getsockopt
// BUS_GET_QUEUED) to read a burst of its messages with one recvmmsg(). When that fails (EINTR, ENOMEM),
// that read takes one datagram at a time instead, and the next read asks again: the burst is answered
// whole, in order, and the client and the others go on.
TEST(FaultInjection, QueueCountsTheKernelCannotGiveCostNoMessage) {
    SKIP_WITHOUT_FAULT_SHIM();
    if (!test::kernel_mode()) GTEST_SKIP() << "kernel mode only: native clients connect over AF_BUS";
    ShimmedBus shimmed;
    Bystanders bystanders(shimmed.bus());
    ASSERT_TRUE(bystanders.ready());
    int bus_sockets = Bystanders::kConnections;
    for (const char* error : {"EINTR", "ENOMEM"}) {
        SCOPED_TRACE(error);
        auto victim = test::connect(shimmed.bus());
        ASSERT_TRUE(victim);
        const std::string socket_number = std::to_string(++bus_sockets);
        ASSERT_TRUE(victim->call(driver_call("GetId")));
        shimmed.arm(std::string("queued ") + error + " 2 bus:" + socket_number);
        // A burst: 16 calls sent at once, queued together on the daemon's side.
        std::vector<std::uint32_t> answered;
        std::vector<Slot> slots;
        for (int i = 0; i < 16; ++i) {
            auto call = driver_call("NameHasOwner", i % 2 ? "org.freedesktop.DBus" : "org.x.Nobody");
            auto slot = victim->call_async(std::move(call), [&answered, i](Expected<Message, Error> r) {
                EXPECT_TRUE(r) << r.error().message;
                answered.push_back(static_cast<std::uint32_t>(i));
            });
            ASSERT_TRUE(slot);
            slots.push_back(std::move(*slot));
        }
        const auto deadline = test::Clock::now() + 10s;
        while (answered.size() < 16 && test::Clock::now() < deadline) {
            ASSERT_TRUE(victim->process());
            std::vector<pollfd> fds{{victim->fd(), victim->poll_events(), 0}};
            ::poll(fds.data(), fds.size(), 100);
        }
        std::vector<std::uint32_t> in_order(16);
        std::iota(in_order.begin(), in_order.end(), 0u);
        EXPECT_EQ(answered, in_order);
        EXPECT_TRUE(
            shimmed.log_shows("getsockopt(BUS_GET_QUEUED) on AF_BUS socket " + socket_number, "(0 left)"))
            << shimmed.bus().log();
        EXPECT_TRUE(victim->call(driver_call("GetId")));
        EXPECT_TRUE(bystanders.still_served());
    }
}

// A connection in the middle of SASL whose next read by the daemon fails once with `error` (errno's
// name): `check` gets what the daemon answered its AUTH line ("" if it closed the connection). The
// others must be served, and the daemon's fds come back once the victim is gone.
void fail_a_read_during_authentication(const char* error,
                                       const std::function<void(ShimmedBus&, const std::string&)>& check) {
    ShimmedBus shimmed;
    Bystanders bystanders(shimmed.bus());
    ASSERT_TRUE(bystanders.ready());
    const std::size_t fds_before = test::process_usage(shimmed.bus().pid()).open_fds;
    Fd victim = test::unauthenticated_connection(shimmed.bus());
    ASSERT_TRUE(victim);
    shimmed.arm(std::string("read ") + error + " 1 " + std::to_string(Bystanders::numbered_connections() + 1));
    const auto start = test::Clock::now();
    send_text(victim, std::string(1, '\0') + "AUTH EXTERNAL " + test::sasl_hex(std::to_string(::getuid())) + "\r\n");
    EXPECT_TRUE(shimmed.log_shows(std::string("fails with ") + error + " (0 left)")) << shimmed.bus().log();
    const std::string line = test::read_sasl_line(victim);
    const double seconds = std::chrono::duration<double>(test::Clock::now() - start).count();
    std::printf("after %s in SASL: %s (%.2f s)\n", error, line.empty() ? "closed" : line.c_str(), seconds);
    check(shimmed, line);
    victim = Fd();
    EXPECT_TRUE(bystanders.still_served());
    EXPECT_TRUE(fds_return_to(shimmed.bus(), bystanders, fds_before));
}

// The same during authentication: ENOBUFS from the daemon's read of a connection in the middle of SASL.
// afbus-daemon ends that connection (logged as lost, naming it); the others are served.
TEST(FaultInjection, AHardSocketErrorDuringAuthenticationEndsOnlyThatConnection) {
    SKIP_WITHOUT_FAULT_SHIM();
    fail_a_read_during_authentication("ENOBUFS", [](ShimmedBus& shimmed, const std::string& line) {
        if (!test::testing_afbus_daemon()) return;
        EXPECT_EQ(line, "") << "the connection went on";
        EXPECT_TRUE(shimmed.log_shows("(unregistered) (uid=", std::strerror(ENOBUFS))) << shimmed.bus().log();
    });
}

// ENOMEM there instead: the kernel was short of memory for that read. afbus-daemon reads again later, as
// it does for an authenticated connection, and the client authenticates; dbus-daemon ends the connection.
TEST(FaultInjection, NoMemoryDuringAuthenticationIsRetried) {
    SKIP_WITHOUT_FAULT_SHIM();
    fail_a_read_during_authentication("ENOMEM", [](ShimmedBus&, const std::string& line) {
        if (test::testing_afbus_daemon()) {
            EXPECT_TRUE(line.starts_with("OK ")) << "answered: " << line;
        }
    });
}

// accept() failing once with EMFILE, ENFILE, ENOMEM or ENOBUFS (out of fds or memory), or EINTR or
// EAGAIN: the connection waits in the listen backlog and is taken when the daemon tries again (afbus-
// daemon: when a connection closes, or 10 ms later, the first retry of an episode), and everybody else is
// served meanwhile.
TEST(FaultInjection, AcceptFailuresLeaveTheListenerWorking) {
    SKIP_WITHOUT_FAULT_SHIM();
    ShimmedBus shimmed;
    Bystanders bystanders(shimmed.bus());
    ASSERT_TRUE(bystanders.ready());
    for (const char* error : {"EINTR", "EAGAIN", "EMFILE", "ENFILE", "ENOMEM", "ENOBUFS"}) {
        SCOPED_TRACE(error);
        shimmed.arm(std::string("accept ") + error + " 1 0");
        const auto start = test::Clock::now();
        auto newcomer = shimmed.connect();
        ASSERT_TRUE(newcomer) << "the listener stopped accepting";
        std::printf("accept failing with %-8s: the next connection served after %.3f s\n", error,
                    std::chrono::duration<double>(test::Clock::now() - start).count());
        EXPECT_TRUE(shimmed.log_shows(std::string("fails with ") + error + " (0 left)")) << shimmed.bus().log();
        EXPECT_TRUE(ping_answered(*newcomer, bystanders, bystanders.service_name()));
        EXPECT_TRUE(bystanders.still_served());
    }
    std::printf("daemon log:\n%s\n", shimmed.bus().log().c_str());
}

// A new connection the daemon cannot take in whole: the kernel cannot give its credentials (getsockopt
// SO_PEERCRED failing with ENOMEM or ENOBUFS), or the daemon cannot add it to its epoll set
// (EPOLL_CTL_ADD failing with ENOMEM, or ENOSPC: the user's fs.epoll.max_user_watches reached).
// afbus-daemon refuses that connection (it sees its socket closed), logs why, and serves the others and
// the next connection; its fds come back.
TEST(FaultInjection, ANewConnectionWithoutCredentialsOrAWatchIsRefusedAlone) {
    SKIP_WITHOUT_FAULT_SHIM();
    ShimmedBus shimmed;
    Bystanders bystanders(shimmed.bus());
    ASSERT_TRUE(bystanders.ready());
    const std::size_t fds_before = test::process_usage(shimmed.bus().pid()).open_fds;
    struct Case {
        const char* call;
        const char* error;
        int value;
        const char* logged;        // afbus-daemon's log line says this, and strerror(value)
        bool against_dbus_daemon;  // (without credentials, dbus-daemon takes 10 s to close: once is enough)
    };
    constexpr Case kCases[] = {
        {"credentials", "ENOMEM", ENOMEM, "refusing a connection: no peer credentials: ", true},
        {"credentials", "ENOBUFS", ENOBUFS, "refusing a connection: no peer credentials: ", false},
        {"watch", "ENOMEM", ENOMEM, "(unregistered) (uid=", true},
        {"watch", "ENOSPC", ENOSPC, "(unregistered) (uid=", true}};
    for (const Case& c : kCases) {
        if (!c.against_dbus_daemon && !test::testing_afbus_daemon()) continue;
        SCOPED_TRACE(std::string(c.call) + " " + c.error);
        shimmed.arm(std::string(c.call) + " " + c.error + " 1 " +
                    std::to_string(shimmed.next_connection_number()));
        const auto start = test::Clock::now();
        Fd victim = shimmed.unauthenticated_connection();
        ASSERT_TRUE(victim);
        send_text(victim, std::string(1, '\0') + "AUTH EXTERNAL " +
                              test::sasl_hex(std::to_string(::getuid())) + "\r\n");
        const std::string line = test::read_sasl_line(victim);
        std::printf("%s failing with %s: the connection %s after %.3f s\n", c.call, c.error,
                    line.empty() ? "was closed" : ("was answered " + line).c_str(),
                    std::chrono::duration<double>(test::Clock::now() - start).count());
        EXPECT_TRUE(shimmed.log_shows(std::string("fails with ") + c.error + " (0 left)"))
            << shimmed.bus().log();
        if (test::testing_afbus_daemon()) {
            EXPECT_EQ(line, "") << "the connection went on";
            EXPECT_TRUE(shimmed.log_shows(c.logged, std::strerror(c.value))) << shimmed.bus().log();
        }
        victim = Fd();
        auto newcomer = shimmed.connect();
        ASSERT_TRUE(newcomer) << "the next connection was not served";
        EXPECT_TRUE(ping_answered(*newcomer, bystanders, bystanders.service_name()));
        newcomer.reset();
        EXPECT_TRUE(bystanders.still_served());
        EXPECT_TRUE(fds_return_to(shimmed.bus(), bystanders, fds_before))
            << test::process_usage(shimmed.bus().pid()).open_fds << " fds, " << fds_before << " before";
    }
    std::printf("daemon log:\n%s\n", shimmed.bus().log().c_str());
}

// The account's groups, sorted (what a bus answers for a connection whose socket reports none).
std::vector<std::uint32_t> account_groups() {
    const passwd* account = ::getpwuid(::getuid());
    if (!account) return {};
    std::vector<gid_t> groups(64);
    int count = static_cast<int>(groups.size());
    if (::getgrouplist(account->pw_name, account->pw_gid, groups.data(), &count) < 0) {
        groups.resize(static_cast<std::size_t>(count));
        if (::getgrouplist(account->pw_name, account->pw_gid, groups.data(), &count) < 0) return {};
    }
    std::vector<std::uint32_t> sorted(groups.begin(), groups.begin() + count);
    std::sort(sorted.begin(), sorted.end());
    sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
    return sorted;
}

// Credentials the kernel gives only in part: SO_PEERGROUPS failing (ENOMEM) costs the connection its
// socket's groups, and both daemons judge it by its account's instead, as for a socket that reports none
// (afbus-daemon's GetConnectionCredentials answers those; dbus-daemon's leaves UnixGroupIDs out);
// SO_PEERPIDFD failing (afbus-daemon asks for it, dbus-daemon 1.14 does not) costs it the ProcessFD. Either
// way the connection is served.
TEST(FaultInjection, CredentialsTheKernelGivesInPartServeTheConnectionWithTheRest) {
    SKIP_WITHOUT_FAULT_SHIM();
    ShimmedBus shimmed;
    Bystanders bystanders(shimmed.bus());
    ASSERT_TRUE(bystanders.ready());
    for (const char* call : {"groups", "pidfd"}) {
        SCOPED_TRACE(call);
        const bool pidfd = std::string_view(call) == "pidfd";
        if (pidfd && !test::testing_afbus_daemon()) continue;
        shimmed.arm(std::string(call) + " ENOMEM 1 " + std::to_string(shimmed.next_connection_number()));
        auto victim = shimmed.connect();
        ASSERT_TRUE(victim) << shimmed.bus().log();
        EXPECT_TRUE(shimmed.log_shows("fails with ENOMEM (0 left)")) << shimmed.bus().log();
        auto reply = bystanders.caller().call(driver_call("GetConnectionCredentials", victim->unique_name()));
        ASSERT_TRUE(reply) << reply.error().message;
        auto [fields] = read_all<std::map<std::string, Variant>>(*reply).value();
        EXPECT_EQ(fields.at("UnixUserID"), Variant(static_cast<std::uint32_t>(::getuid())));
        EXPECT_TRUE(fields.contains("ProcessID"));
        if (pidfd) {
            EXPECT_FALSE(fields.contains("ProcessFD"));
        } else if (test::testing_afbus_daemon()) {
            // The groups its policy judges it by. (dbus-daemon leaves UnixGroupIDs out.)
            ASSERT_TRUE(fields.contains("UnixGroupIDs"));
            EXPECT_EQ(fields.at("UnixGroupIDs"), Variant(account_groups()));
        } else {
            std::printf("dbus-daemon's UnixGroupIDs: %s\n",
                        fields.contains("UnixGroupIDs") ? "given" : "left out");
        }
        EXPECT_TRUE(ping_answered(*victim, bystanders, bystanders.service_name()));
        EXPECT_TRUE(bystanders.still_served());
    }
}

// ---------------------------------------------------------------------------------------------------
// Allocation failure on a message's path.

// Writes all of `bytes` to `fd` while the reader takes them; false if it stops for 10 s.
bool send_while_read(const Fd& fd, std::span<const std::byte> bytes) {
    while (!bytes.empty()) {
        pollfd p{fd.get(), POLLOUT, 0};
        if (::poll(&p, 1, 10000) != 1) return false;
        const ssize_t n = ::send(fd.get(), bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n <= 0) return false;
        bytes = bytes.subspan(static_cast<std::size_t>(n));
    }
    return true;
}

// The daemon may allocate 96 MiB in all (RLIMIT_AS); a client sends a 120 MiB call (within
// max_message_size, 128 MiB here). Making room for it fails: that costs the message, not the bus nor
// the sender's connection. afbus-daemon reads the message's bytes and discards them, answers the call
// NoMemory, logs it naming the sender, and goes on serving the sender, the others, and a client that
// connects afterwards. (dbus-daemon keeps the connection and waits for room: the test sends it only the
// first bytes, and checks that it serves the others.)
TEST(FaultInjection, AMessageTooBigForTheBusMemoryCostsOnlyItself) {
    if (std::getenv("AFBUS_SANITIZED_BUILD")) GTEST_SKIP() << "RLIMIT_AS and the ASan runtime's shadow memory do not mix";
    constexpr std::size_t kAddressSpace = 96u << 20;
    constexpr std::uint32_t kAnnouncedBody = 120u << 20;
    TestBusOptions options;
    options.capture_log = true;
    options.address_space_limit = kAddressSpace;
    TestBus bus(options);
    Bystanders bystanders(bus);
    ASSERT_TRUE(bystanders.ready());
    ASSERT_TRUE(bystanders.still_served());
    const std::size_t fds_before = test::process_usage(bus.pid()).open_fds;

    Fd sender = raw_connection(bus);
    const std::string sender_name = say_hello(sender);
    ASSERT_FALSE(sender_name.empty());
    const std::vector<std::byte> begun = call_announcing(bystanders.service_name(), kAnnouncedBody);
    send_bytes(sender, begun);
    // A bystander's call to the bus is answered after the bus has read those bytes (the sender's socket
    // was readable first); the bus makes room for the whole message when more of it comes. (Not a call
    // between bystanders: in kernel mode those go through the kernel without the bus.)
    ASSERT_TRUE(bystanders.caller().call(driver_call("GetId")));
    if (!test::testing_afbus_daemon()) {
        send_text(sender, "b");
    } else {
        const std::size_t length =
            Message::frame_length(std::span<const std::byte, kFixedHeaderLength>(begun.data(), kFixedHeaderLength)).value();
        const std::vector<std::byte> rest(length - begun.size(), std::byte{0});
        const auto start = test::Clock::now();
        ASSERT_TRUE(send_while_read(sender, rest)) << "the bus stopped reading the sender:\n" << bus.log();
        std::vector<Message> before;
        auto answer = read_reply(sender, 2, &before);
        ASSERT_TRUE(answer) << bus.log();
        std::printf("120 MiB call skipped and answered after %.2f s\n",
                    std::chrono::duration<double>(test::Clock::now() - start).count());
        EXPECT_EQ(answer->type(), MessageType::Error);
        EXPECT_EQ(answer->error_name(), error_names::kNoMemory);
        // The sender goes on: the bus answers its next call.
        send_message(sender, driver_call("GetId"), 3);
        EXPECT_TRUE(read_reply(sender, 3)) << bus.log();
        EXPECT_TRUE(log_line_appears(bus, "out of memory: a " + std::to_string(length) + "-byte message from " +
                                              sender_name + " (uid=",
                                     "was skipped"))
            << bus.log();
    }
    // The bus lives and serves.
    ASSERT_TRUE(bystanders.still_served()) << "the bus stopped serving:\n" << bus.log();
    ASSERT_TRUE(daemon_alive(bus)) << "the bus died:\n" << bus.log();
    sender = Fd();
    EXPECT_TRUE(fds_return_to(bus, bystanders, fds_before));
    auto newcomer = connect(bus);
    ASSERT_TRUE(newcomer);
    EXPECT_TRUE(newcomer->call(driver_call("GetId")));
    std::printf("daemon log:\n%s\n", bus.log().c_str());
}

// A client announces a 100 MiB message to a bus whose max_message_size is 1 MiB: afbus-daemon refuses it
// as soon as the header says so, without making room for it (dbus-daemon makes no room either, and
// waits for the rest). Before, every connection could make the bus allocate (and zero) up to 128 MiB,
// whatever max_message_size said.
TEST(FaultInjection, AMessageAnnouncedBeyondMaxMessageSizeIsRefusedBeforeTheBusMakesRoom) {
    constexpr std::uint32_t kAnnouncedBody = 100u << 20;
    TestBusOptions options;
    options.capture_log = true;
    options.extra_config = "<limit name=\"max_message_size\">1048576</limit>\n";
    TestBus bus(options);
    Bystanders bystanders(bus);
    ASSERT_TRUE(bystanders.ready());
    ASSERT_TRUE(bystanders.still_served());
    const auto before = test::process_usage(bus.pid());

    Fd sender = raw_connection(bus);
    const std::string sender_name = say_hello(sender);
    ASSERT_FALSE(sender_name.empty());
    send_bytes(sender, call_announcing(bystanders.service_name(), kAnnouncedBody));
    ASSERT_TRUE(bystanders.still_served());
    send_text(sender, "b");  // the bus reads again: a bus that made room for the message has now
    ASSERT_TRUE(bystanders.still_served());
    const auto during = test::process_usage(bus.pid());
    std::printf("daemon RSS %zu KiB -> %zu KiB with a 100 MiB message announced\n", before.rss_kib, during.rss_kib);
    EXPECT_LT(during.rss_kib, before.rss_kib + 16 * 1024) << "the bus made room for a message beyond max_message_size";
    // dbus-daemon keeps the connection, waiting for more of the message, and makes no room for it either.
    if (test::testing_afbus_daemon()) {
        EXPECT_TRUE(test::closed_by_bus(sender)) << "the sender of an oversized message was not disconnected";
        EXPECT_EQ(test::count_lines_with(bus.log(), "connection " + sender_name + " (uid="), 1u) << bus.log();
        EXPECT_EQ(test::count_lines_with(bus.log(), "max_message_size=1048576"), 1u) << bus.log();
    }
}

}  // namespace
}  // namespace afbus
