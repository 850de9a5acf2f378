#include "raw_peer.hpp"

#include <algorithm>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "afbus/address.hpp"
#include "afbus/framer.hpp"
#include "afbus/sasl.hpp"
#include "afbus/types.hpp"
#include "afbus/unix_socket.hpp"

namespace afbus::test {

namespace {

MessageBuilder bus_method(std::string_view interface, std::string_view member) {
    return MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus", interface, member);
}

}  // namespace

Message driver_call(std::string_view member) { return bus_method("org.freedesktop.DBus", member).build().value(); }

Message driver_call(std::string_view member, const std::string& argument) {
    auto builder = bus_method("org.freedesktop.DBus", member);
    append(builder, argument);
    return builder.build().value();
}

Message stats_call(std::string_view member) {
    return bus_method("org.freedesktop.DBus.Debug.Stats", member).build().value();
}

Message stats_call(std::string_view member, const std::string& name) {
    auto builder = bus_method("org.freedesktop.DBus.Debug.Stats", member);
    append(builder, name);
    return builder.build().value();
}

Fd unauthenticated_connection(const TestBus& bus) {
    // The unix entry: in kernel mode (AFBUS_TEST_KERNEL_MODE) an afbus: entry comes first.
    auto entries = parse_address_list(bus.address()).value();
    auto unix_entry = std::find_if(entries.begin(), entries.end(), [](const AddressEntry& e) { return e.transport() == "unix"; });
    EXPECT_NE(unix_entry, entries.end()) << bus.address();
    if (unix_entry == entries.end()) return Fd();
    auto path = unix_socket_path(*unix_entry, process_environment()).value();
    auto fd = connect_unix(path);
    EXPECT_TRUE(fd) << std::strerror(fd ? 0 : fd.error());
    return fd ? std::move(*fd) : Fd();
}

Fd raw_connection(const TestBus& bus, bool unix_fds) {
    Fd fd = unauthenticated_connection(bus);
    SaslClientConfig config;
    config.uid = ::getuid();
    config.negotiate_unix_fd = unix_fds;
    SaslClient sasl(config);
    std::string out = sasl.take_output();
    while (!sasl.authenticated() && !sasl.failed()) {
        if (!out.empty()) {
            EXPECT_EQ(::send(fd.get(), out.data(), out.size(), MSG_NOSIGNAL), static_cast<ssize_t>(out.size()));
            out.clear();
            if (sasl.authenticated()) break;
        }
        pollfd p{fd.get(), POLLIN, 0};
        EXPECT_EQ(::poll(&p, 1, 10000), 1);
        char buf[512];
        const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
        if (n <= 0) break;
        sasl.feed(std::string_view(buf, static_cast<std::size_t>(n)));
        out = sasl.take_output();
    }
    if (!out.empty()) {
        EXPECT_EQ(::send(fd.get(), out.data(), out.size(), MSG_NOSIGNAL), static_cast<ssize_t>(out.size()));
    }
    EXPECT_TRUE(sasl.authenticated());
    return fd;
}

void send_all(const Fd& fd, const std::vector<std::byte>& bytes) {
    ASSERT_EQ(::send(fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
}

ssize_t send_with_fds(const Fd& fd, std::span<const std::byte> bytes, const std::vector<int>& fds) {
    iovec iov{const_cast<std::byte*>(bytes.data()), bytes.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
    if (!fds.empty()) {
        msg.msg_control = control.data();
        msg.msg_controllen = control.size();
        cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
    }
    return ::sendmsg(fd.get(), &msg, MSG_NOSIGNAL);
}

void send_message(const Fd& fd, Message message, std::uint32_t serial, const std::vector<int>& fds) {
    message.set_serial(serial);
    const auto wire = message.wire();
    ASSERT_EQ(send_with_fds(fd, wire, fds), static_cast<ssize_t>(wire.size()));
}

std::string sasl_hex(std::string_view text) {
    std::string out;
    for (char c : text) {
        char b[3];
        std::snprintf(b, sizeof b, "%02x", static_cast<unsigned char>(c));
        out += b;
    }
    return out;
}

std::string read_sasl_line(const Fd& fd) {
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd p{fd.get(), POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) return {};
        char c;
        if (::recv(fd.get(), &c, 1, 0) != 1) return {};
        line += c;
        if (line.ends_with("\r\n")) return line;
    }
}

namespace {

// Reads messages until `done` says so; false when the bus closed the connection or 10 s passed.
template <class Done>
bool read_until(const Fd& fd, Done&& done, bool* closed) {
    MessageFramer framer;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd p{fd.get(), POLLIN, 0};
        if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) return false;
        auto space = framer.prepare();
        const ssize_t n = ::recv(fd.get(), space.data(), space.size(), 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            *closed = true;
            return false;
        }
        if (n < 0) return false;
        framer.commit(static_cast<std::size_t>(n));
        for (;;) {
            auto m = framer.next();
            if (!m || !*m) break;
            if (done(std::move(**m))) return true;
        }
    }
}

}  // namespace

std::optional<Message> read_reply(const Fd& fd, std::uint32_t serial, std::vector<Message>* before) {
    std::optional<Message> reply;
    bool closed = false;
    read_until(fd, [&](Message m) {
        if (m.reply_serial() != serial) {
            if (before) before->push_back(std::move(m));
            return false;
        }
        reply = std::move(m);
        return true;
    }, &closed);
    return reply;
}

bool closed_by_bus(const Fd& fd, std::vector<Message>* received) {
    bool closed = false;
    read_until(fd, [&](Message m) {
        if (received) received->push_back(std::move(m));
        return false;
    }, &closed);
    return closed;
}

}  // namespace afbus::test
