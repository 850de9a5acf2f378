#include "scripted_stream_peer.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "support/failing_allocations.hpp"
#include "transport/socket_io.hpp"

namespace afbus::test {

MessageBuilder driver_call_builder(std::string_view member) {
    return MessageBuilder::method_call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus", member);
}

std::string sasl_external() {
    std::string hex;
    for (char c : std::to_string(::getuid())) {
        char b[3];
        std::snprintf(b, sizeof b, "%02x", static_cast<unsigned char>(c));
        hex += b;
    }
    return std::string(1, '\0') + "AUTH EXTERNAL " + hex + "\r\n";
}

void ScriptedStreamPeer::say(const std::vector<Message>& messages, bool authenticate) {
    FailingAllocations::Pause pause;
    std::string bytes;
    if (authenticate) bytes = sasl_external() + (passes_fds_ ? "NEGOTIATE_UNIX_FD\r\n" : "") + "BEGIN\r\n";
    std::span<const Fd> fds;  // (those of one message at most: they go with the write's first byte)
    for (const Message& m : messages) {
        auto wire = m.wire();
        bytes.append(reinterpret_cast<const char*>(wire.data()), wire.size());
        if (m.fds().empty()) continue;
        ASSERT_TRUE(fds.empty()) << "a script with fds in more than one message";
        fds = m.fds();
    }
    iovec iov{bytes.data(), bytes.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    ScmRightsBuffer control;
    if (!fds.empty()) attach_fds(msg, control, fds);
    // (A connection the bus refused at once is closed already.)
    const ssize_t sent = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL);
    if (sent < 0 && (errno == EPIPE || errno == ECONNRESET)) {
        closed_ = true;
        return;
    }
    ASSERT_EQ(sent, static_cast<ssize_t>(bytes.size()));
}

void ScriptedStreamPeer::answer(const Message& call, std::uint32_t serial) {
    std::vector<Message> reply;
    {
        FailingAllocations::Pause pause;
        reply.push_back(MessageBuilder::method_return(call).build(serial).value());
    }
    say(reply, false);
}

void ScriptedStreamPeer::read() {
    FailingAllocations::Pause pause;
    for (;;) {
        char buffer[65536];
        iovec iov{buffer, sizeof buffer};
        ScmRightsBuffer control;
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.bytes;
        msg.msg_controllen = sizeof control.bytes;
        const ssize_t n = ::recvmsg(fd_.get(), &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n == 0) closed_ = true;
        if (n <= 0) return;
        std::vector<Fd> fds;
        EXPECT_TRUE(take_fds(msg, fds));
        if (!fds.empty()) framer_.add_fds(std::move(fds));
        std::string_view bytes(buffer, static_cast<std::size_t>(n));
        if (!past_sasl_) {
            // OK, and AGREE_UNIX_FD where it asked to pass fds.
            sasl_.append(bytes);
            const std::size_t lines = passes_fds_ ? 2 : 1;
            std::size_t end = 0;
            for (std::size_t line = 0; line < lines && end != std::string::npos; ++line) {
                end = sasl_.find("\r\n", line == 0 ? 0 : end + 2);
            }
            if (end == std::string::npos) continue;
            if (passes_fds_) {
                EXPECT_NE(sasl_.find("AGREE_UNIX_FD\r\n"), std::string::npos) << sasl_;
            }
            past_sasl_ = true;
            bytes = std::string_view(sasl_).substr(end + 2);
        }
        while (!bytes.empty()) {
            auto space = framer_.prepare(bytes.size());
            const std::size_t taken = std::min(space.size(), bytes.size());
            std::memcpy(space.data(), bytes.data(), taken);
            framer_.commit(taken);
            bytes.remove_prefix(taken);
        }
        for (;;) {
            auto m = framer_.next();
            ASSERT_TRUE(m) << "the bus wrote a corrupt message";
            if (!*m) break;
            received_.push_back(std::move(**m));
        }
    }
}

const Message* ScriptedStreamPeer::answer(std::uint32_t serial) const {
    return answer_among(received_, serial);
}
const Message* ScriptedStreamPeer::call(std::string_view member) const {
    return call_among(received_, member);
}

const Message* answer_among(const std::vector<Message>& messages, std::uint32_t serial) {
    for (const Message& m : messages)
        if ((m.type() == MessageType::MethodReturn || m.type() == MessageType::Error) &&
            m.reply_serial() == serial)
            return &m;
    return nullptr;
}

const Message* call_among(const std::vector<Message>& messages, std::string_view member) {
    for (const Message& m : messages)
        if (m.type() == MessageType::MethodCall && m.member() == member) return &m;
    return nullptr;
}

}  // namespace afbus::test
