#include "scripted_stream_peer.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "support/failing_allocations.hpp"

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
    std::string bytes = authenticate ? sasl_external() + "BEGIN\r\n" : std::string();
    for (const Message& m : messages) {
        auto wire = m.wire();
        bytes.append(reinterpret_cast<const char*>(wire.data()), wire.size());
    }
    // (A connection the bus refused at once is closed already.)
    const ssize_t sent = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
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
        const ssize_t n = ::recv(fd_.get(), buffer, sizeof buffer, MSG_DONTWAIT);
        if (n == 0) closed_ = true;
        if (n <= 0) return;
        std::string_view bytes(buffer, static_cast<std::size_t>(n));
        if (!past_sasl_) {
            sasl_.append(bytes);
            const auto end = sasl_.find("\r\n");
            if (end == std::string::npos) continue;
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
