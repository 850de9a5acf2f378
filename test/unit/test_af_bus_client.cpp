// Connection::open("afbus:abstract=...") against a fake AF_BUS master on the host. The modules cannot be
// loaded here, so the fake sysfs says the AF_BUS family is AF_UNIX (1): the library then creates
// socket(AF_UNIX, SOCK_SEQPACKET, 1) and connects to the sockaddr_bus bytes, which AF_UNIX reads as an
// abstract name (see test_af_bus_socket.cpp). The master, on a thread, binds the same bytes and speaks
// the afbus: protocol: SASL, Hello, one message per datagram. Its datagrams arrive from its bound
// address, whose sbus_addr bytes are zero: the client sees them as coming from the master (address 0).
// What AF_UNIX cannot show is the destination address the client chose (it ignores msg_name); that is
// test_af_bus_routing.cpp's.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "afbus/af_bus_socket.hpp"
#include "afbus/connection.hpp"
#include "afbus/datagram_transport.hpp"
#include "afbus/sasl.hpp"
#include "afbus/sasl_stream.hpp"
#include "afbus/types.hpp"
#include "client/connection_state.hpp"
#include "support/fake_sysfs.hpp"

namespace afbus {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr int kPollMs = 10000;  // a safety net: every wait is for an event the other side causes
constexpr std::string_view kBus = "org.freedesktop.DBus";
constexpr std::string_view kClientName = ":1.7";

bool wait_for(int fd, short events) {
    pollfd p{fd, events, 0};
    return ::poll(&p, 1, kPollMs) == 1;
}

// The master's side of one client connection.
class MasterConnection {
public:
    explicit MasterConnection(const Fd& listener) {
        if (!wait_for(listener.get(), POLLIN)) return;
        Fd fd(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (!fd) return;
        SaslServerConfig config;
        config.guid = std::string(32, 'a');
        config.peer_uid = ::geteuid();
        config.unix_fd_possible = true;
        SaslServer sasl(config);
        SaslStream stream;
        for (;;) {
            auto progress = stream.advance(fd.get(), sasl);
            if (!progress) return;
            if (progress->kind == SaslProgress::Kind::Authenticated) {
                // The client's first message must start a datagram of its own.
                if (!progress->leftover.empty()) return;
                break;
            }
            if (!wait_for(fd.get(), progress->kind == SaslProgress::Kind::WantRead ? POLLIN : POLLOUT))
                return;
        }
        transport_.emplace(std::move(fd), AF_UNIX);
        transport_->set_unix_fd_passing(sasl.unix_fd_agreed());
    }

    [[nodiscard]] bool ok() const { return transport_.has_value(); }

    std::optional<Message> receive() {
        for (;;) {
            auto m = transport_->next();
            if (!m) return std::nullopt;
            if (*m) return std::move((*m)->message);
            if (!wait_for(transport_->fd(), POLLIN)) return std::nullopt;
            if (!transport_->read()) return std::nullopt;
        }
    }

    bool send(Message message) {
        transport_->enqueue(std::move(message), std::nullopt);
        for (;;) {
            auto r = transport_->flush();
            if (!r) return false;
            if (*r) return true;
            if (!wait_for(transport_->fd(), POLLOUT)) return false;
        }
    }

    // Bytes as one datagram, bypassing the transport's framing.
    bool send_raw(const std::vector<std::byte>& bytes) {
        return ::send(transport_->fd(), bytes.data(), bytes.size(), MSG_NOSIGNAL) ==
               static_cast<ssize_t>(bytes.size());
    }

    // Answers the Hello the client sends first.
    bool welcome(std::string* hello_sender) {
        auto hello = receive();
        if (!hello || hello->member() != "Hello") return false;
        *hello_sender = std::string(hello->sender());
        return reply(*hello, kBus, [](MessageBuilder& b) { append(b, std::string(kClientName)); });
    }

    bool reply(const Message& call, std::string_view sender,
               const std::function<void(MessageBuilder&)>& body = {}) {
        auto b = MessageBuilder::method_return(kClientName, call.serial());
        b.sender(sender);
        if (body) body(b);
        auto m = b.build(next_serial_++);
        return m && send(std::move(*m));
    }

    bool signal(std::string_view sender, std::string_view interface, std::string_view member,
                const std::function<void(MessageBuilder&)>& body) {
        auto b = MessageBuilder::signal("/org/freedesktop/DBus", interface, member);
        b.sender(sender).destination(kClientName);
        body(b);
        auto m = b.build(next_serial_++);
        return m && send(std::move(*m));
    }

private:
    std::optional<DatagramTransport> transport_;
    std::uint32_t next_serial_ = 1;
};

class AfBusClient : public ::testing::Test {
protected:
    void SetUp() override {
        sysfs_.write_family(std::to_string(AF_UNIX) + "\n");
        detail::set_af_bus_sysfs_root(root_.string());

        static int counter = 0;
        address_ = "afbus:abstract=afbus-client-test-" + std::to_string(::getpid()) + "-" +
                   std::to_string(++counter);
        auto entries = parse_address_list(address_);
        ASSERT_TRUE(entries);
        auto bound = bus_socket_address(entries->front(), AF_UNIX);
        ASSERT_TRUE(bound);
        listener_ = Fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
        ASSERT_TRUE(listener_);
        ASSERT_EQ(::bind(listener_.get(), reinterpret_cast<const sockaddr*>(&bound->address), bound->length),
                  0)
            << std::strerror(errno);
        ASSERT_EQ(::listen(listener_.get(), 1), 0);
    }
    void TearDown() override {
        if (master_.joinable()) master_.join();
        detail::set_af_bus_sysfs_root("/sys");
    }
    void run_master(std::function<void(MasterConnection&)> script) {
        master_ = std::thread([this, script = std::move(script)] {
            MasterConnection master(listener_);
            if (master.ok()) script(master);
        });
    }

    test::FakeSysfs sysfs_;
    const fs::path& root_ = sysfs_.root();
    std::string address_;
    Fd listener_;
    std::thread master_;
};

Message method_call(std::string_view destination, std::string_view member) {
    auto m = MessageBuilder::method_call(destination, "/p", "org.example.I", member).build();
    EXPECT_TRUE(m);
    return std::move(*m);
}

TEST_F(AfBusClient, StitchesTheSenderAndSwallowsNameAddress) {
    std::string hello_sender = "unset", add_match_sender, call_sender, call_destination;
    run_master([&](MasterConnection& master) {
        if (!master.welcome(&hello_sender)) return;
        auto add_match = master.receive();
        if (!add_match || add_match->member() != "AddMatch") return;
        add_match_sender = add_match->sender();
        if (!master.reply(*add_match, kBus)) return;
        // What the daemon sends after forwarding a message of this client to com.example.Peer.
        if (!master.signal(kBus, "org.afbus.Kernel", "NameAddress", [](MessageBuilder& b) {
                append(b, std::string("com.example.Peer"), std::uint64_t{0x0001000000000002ULL});
            }))
            return;
        if (!master.signal(":1.9", "org.example.I", "Ping", [](MessageBuilder&) {})) return;
        auto call = master.receive();
        if (!call) return;
        call_sender = call->sender();
        call_destination = call->destination();
        master.reply(*call, ":1.9", [](MessageBuilder& b) { append(b, std::string("pong")); });
    });

    auto c = Connection::open(address_);
    ASSERT_TRUE(c) << c.error().name << ": " << c.error().message;
    EXPECT_EQ((*c)->transport(), "afbus");
    EXPECT_EQ((*c)->unique_name(), kClientName);
    EXPECT_TRUE((*c)->unix_fd_passing());

    std::vector<std::string> seen;
    auto slot = (*c)->subscribe("type='signal'", [&](const Message& m) { seen.emplace_back(m.member()); });
    ASSERT_TRUE(slot) << slot.error().message;
    auto ran = (*c)->run_until([&] { return !seen.empty(); }, 10s);
    ASSERT_TRUE(ran);
    EXPECT_TRUE(*ran);
    // NameAddress came first and matched the rule too, but it is the library's.
    EXPECT_EQ(seen, std::vector<std::string>{"Ping"});

    auto reply = (*c)->call(method_call("com.example.Peer", "Echo"));
    ASSERT_TRUE(reply) << reply.error().message;
    auto text = read_all<std::string>(*reply);
    ASSERT_TRUE(text);
    EXPECT_EQ(std::get<0>(*text), "pong");
    master_.join();

    EXPECT_EQ(hello_sender, "");  // no name yet: Hello goes to the master without SENDER
    EXPECT_EQ(add_match_sender, kClientName);
    EXPECT_EQ(call_sender, kClientName);
    EXPECT_EQ(call_destination, "com.example.Peer");
}

TEST_F(AfBusClient, RefusedCallGetsAnErrorReplyAndTheConnectionStays) {
    std::string hello_sender;
    std::vector<std::string> calls;
    run_master([&](MasterConnection& master) {
        if (!master.welcome(&hello_sender)) return;
        // The refused call never arrives; the next one does.
        auto call = master.receive();
        if (!call) return;
        calls.emplace_back(call->member());
        master.reply(*call, ":1.9");
    });

    auto c = Connection::open(address_);
    ASSERT_TRUE(c) << c.error().name << ": " << c.error().message;
    // A datagram larger than the send buffer is refused with EMSGSIZE, as on AF_BUS.
    int size = 4608;
    ASSERT_EQ(::setsockopt((*c)->fd(), SOL_SOCKET, SO_SNDBUF, &size, sizeof size), 0);
    auto b = MessageBuilder::method_call("com.example.Peer", "/p", "org.example.I", "Huge");
    append(b, std::string(64 * 1024, 'h'));
    auto huge = b.build();
    ASSERT_TRUE(huge);
    auto refused = (*c)->call(std::move(*huge));
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().name, "org.freedesktop.DBus.Error.LimitsExceeded");
    EXPECT_TRUE((*c)->connected());

    // Also through call_async.
    auto b2 = MessageBuilder::method_call("com.example.Peer", "/p", "org.example.I", "Huge");
    append(b2, std::string(64 * 1024, 'h'));
    auto huge2 = b2.build();
    ASSERT_TRUE(huge2);
    std::optional<Expected<Message, Error>> async_result;
    auto slot =
        (*c)->call_async(std::move(*huge2), [&](Expected<Message, Error> r) { async_result = std::move(r); });
    ASSERT_TRUE(slot);
    auto ran = (*c)->run_until([&] { return async_result.has_value(); }, 10s);
    ASSERT_TRUE(ran && *ran);
    ASSERT_FALSE(*async_result);
    EXPECT_EQ(async_result->error().name, "org.freedesktop.DBus.Error.LimitsExceeded");

    auto ok = (*c)->call(method_call("com.example.Peer", "Small"));
    EXPECT_TRUE(ok) << ok.error().message;
    master_.join();
    EXPECT_EQ(calls, std::vector<std::string>{"Small"});
}

TEST_F(AfBusClient, FdsTravelWithTheStitchedMessage) {
    std::string hello_sender, sender;
    std::size_t fds = 0;
    bool readable_through_it = false;
    run_master([&](MasterConnection& master) {
        if (!master.welcome(&hello_sender)) return;
        auto m = master.receive();
        if (!m) return;
        sender = m->sender();
        fds = m->fds().size();
        char c = 0;
        readable_through_it = fds == 1 && ::read(m->fds()[0].get(), &c, 1) == 1 && c == 'f';
    });

    auto c = Connection::open(address_);
    ASSERT_TRUE(c) << c.error().name << ": " << c.error().message;
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    Fd read_end(p[0]), write_end(p[1]);
    ASSERT_EQ(::write(write_end.get(), "f", 1), 1);
    auto b = MessageBuilder::signal("/p", "org.example.I", "WithFd");
    b.destination("com.example.Peer");
    append(b, UnixFd(std::move(read_end)));
    auto m = b.build();
    ASSERT_TRUE(m);
    ASSERT_TRUE((*c)->send(std::move(*m)));
    master_.join();
    EXPECT_EQ(sender, kClientName);
    EXPECT_EQ(fds, 1u);
    EXPECT_TRUE(readable_through_it);
}

TEST_F(AfBusClient, CorruptDatagramDisconnects) {
    std::string hello_sender;
    run_master([&](MasterConnection& master) {
        if (!master.welcome(&hello_sender)) return;
        auto call = master.receive();
        if (!call) return;
        // The reply twice in one datagram: not one message per datagram.
        auto b = MessageBuilder::method_return(kClientName, call->serial());
        b.sender(":1.9");
        auto m = b.build(9);
        if (!m) return;
        auto wire = m->wire();
        const auto copy = wire;
        wire.insert(wire.end(), copy.begin(), copy.end());
        (void)master.send_raw(wire);
    });

    auto c = Connection::open(address_);
    ASSERT_TRUE(c) << c.error().name << ": " << c.error().message;
    auto reply = (*c)->call(method_call("com.example.Peer", "Q"));
    ASSERT_FALSE(reply);
    EXPECT_EQ(reply.error().name, "org.freedesktop.DBus.Error.Disconnected");
    EXPECT_FALSE((*c)->connected());
}

TEST_F(AfBusClient, WithoutTheModuleTheEntryIsNotSupported) {
    detail::set_af_bus_sysfs_root((root_ / "absent").string());
    auto c = Connection::open(address_);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().name, "org.freedesktop.DBus.Error.NotSupported");
    EXPECT_NE(c.error().message.find("AF_BUS not available (af_bus.ko is not loaded)"), std::string::npos)
        << c.error().message;
}

TEST_F(AfBusClient, AnUnreachableAfbusEntryFallsThroughToTheNext) {
    std::string hello_sender;
    run_master([&](MasterConnection& master) { master.welcome(&hello_sender); });
    auto c = Connection::open("afbus:path=" + (root_ / "no-bus").string() + ";" + address_);
    ASSERT_TRUE(c) << c.error().name << ": " << c.error().message;
    EXPECT_EQ((*c)->unique_name(), kClientName);
}

}  // namespace
}  // namespace afbus
