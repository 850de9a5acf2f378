#include "flood.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "afbus/address.hpp"
#include "afbus/types.hpp"
#include "afbus/unix_socket.hpp"
#include "child_process.hpp"
#include "raw_peer.hpp"

namespace afbus::test {

namespace {

std::string socket_path(const TestBus& bus) {
    auto entries = parse_address_list(bus.address()).value();
    auto unix_entry = std::find_if(entries.begin(), entries.end(), [](const AddressEntry& e) { return e.transport() == "unix"; });
    if (unix_entry == entries.end()) return {};
    return unix_socket_path(*unix_entry, process_environment()).value();
}

std::string handshake_bytes(FloodHandshake handshake) {
    if (handshake == FloodHandshake::Silent) return {};
    std::string hex;
    for (char c : std::to_string(::getuid())) {
        char b[3];
        std::snprintf(b, sizeof b, "%02x", static_cast<unsigned char>(c));
        hex += b;
    }
    std::string bytes = std::string(1, '\0') + "AUTH EXTERNAL " + hex + "\r\nBEGIN\r\n";
    if (handshake == FloodHandshake::AuthAndHello) {
        Message hello = driver_call("Hello");
        hello.set_serial(1);
        const auto wire = hello.wire();
        bytes.append(reinterpret_cast<const char*>(wire.data()), wire.size());
    }
    return bytes;
}

void take_messages(FloodConnection& c) {
    for (;;) {
        auto m = c.framer.next();
        if (!m) {  // garbage from the bus: count it as closed
            c.state = FloodConnection::State::Closed;
            c.fd = Fd();
            return;
        }
        if (!*m) return;
        if (c.state == FloodConnection::State::Waiting && (*m)->reply_serial() == 1u) {
            if ((*m)->type() == MessageType::MethodReturn) {
                c.state = FloodConnection::State::Registered;
            } else {
                c.state = FloodConnection::State::Refused;
                c.error_name = std::string((*m)->error_name());
                if (auto text = read_all<std::string>(**m)) c.error_name += ": " + std::get<0>(*text);
            }
        }
    }
}

// Takes what arrived on `c`: the SASL line, then messages.
void read_some(FloodConnection& c) {
    char buf[16384];
    for (;;) {
        const ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (n <= 0) {
            if (c.state == FloodConnection::State::Waiting) c.state = FloodConnection::State::Closed;
            c.fd = Fd();
            return;
        }
        std::string_view bytes(buf, static_cast<std::size_t>(n));
        if (!c.past_sasl) {
            c.sasl.append(bytes);
            const std::size_t eol = c.sasl.find("\r\n");
            if (eol == std::string::npos) continue;
            if (!c.sasl.starts_with("OK ")) {
                c.state = FloodConnection::State::Refused;
                c.error_name = c.sasl.substr(0, eol);
                continue;  // read on until the bus closes it
            }
            c.past_sasl = true;
            bytes = std::string_view(c.sasl).substr(eol + 2);
        }
        if (!bytes.empty()) {
            auto space = c.framer.prepare(bytes.size());
            std::memcpy(space.data(), bytes.data(), bytes.size());
            c.framer.commit(bytes.size());
        }
        if (c.past_sasl && c.sasl.size()) c.sasl.resize(c.sasl.find("\r\n") + 2);
        take_messages(c);
        if (!c.fd) return;
    }
}

}  // namespace

void open_flood(const TestBus& bus, std::size_t n, FloodHandshake handshake, std::vector<FloodConnection>& into) {
    const std::string path = socket_path(bus);
    const std::string bytes = handshake_bytes(handshake);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.data(), std::min(path.size(), sizeof addr.sun_path - 1));
    for (std::size_t i = 0; i < n; ++i) {
        FloodConnection& c = into.emplace_back();
        c.fd = Fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!c.fd || ::connect(c.fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0) {
            c.state = FloodConnection::State::NotConnected;
            c.fd = Fd();
            continue;
        }
        if (!bytes.empty() && ::send(c.fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(bytes.size()))
            c.state = FloodConnection::State::Closed;
    }
}

bool advance_flood(std::vector<FloodConnection>& flood, const std::function<bool()>& done, std::chrono::milliseconds timeout) {
    const auto deadline = Clock::now() + timeout;
    std::vector<pollfd> fds;
    std::vector<FloodConnection*> watched;
    for (;;) {
        if (done()) return true;
        fds.clear();
        watched.clear();
        for (FloodConnection& c : flood) {
            if (!c.fd) continue;
            fds.push_back({c.fd.get(), POLLIN, 0});
            watched.push_back(&c);
        }
        const int left = remaining_ms(deadline);
        if (left == 0) return done();
        // Wake up now and then for conditions that depend on more than these sockets (the daemon's fds).
        const int ready = ::poll(fds.data(), fds.size(), std::min(left, 100));
        if (ready < 0 && errno != EINTR) return false;
        for (std::size_t i = 0; i < fds.size(); ++i) {
            if (fds[i].revents) read_some(*watched[i]);
        }
    }
}

std::size_t count_in(const std::vector<FloodConnection>& flood, FloodConnection::State state) {
    return static_cast<std::size_t>(std::count_if(flood.begin(), flood.end(), [state](const FloodConnection& c) { return c.state == state; }));
}

}  // namespace afbus::test
