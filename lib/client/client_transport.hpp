// The socket side of a client connection: a byte stream (unix:, tcp:) or AF_BUS datagrams (afbus:).
// ConnectionState talks to this one interface; only AF_BUS connections use destinations, sources and
// refused messages, which a stream never has.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <variant>
#include <vector>

#include "afbus/datagram_transport.hpp"
#include "afbus/stream_transport.hpp"

namespace afbus::detail {

class ClientTransport {
public:
    explicit ClientTransport(StreamTransport stream) : transport_(std::move(stream)) {}
    explicit ClientTransport(DatagramTransport datagrams) : transport_(std::move(datagrams)) {}

    [[nodiscard]] bool datagrams() const noexcept {
        return std::holds_alternative<DatagramTransport>(transport_);
    }
    [[nodiscard]] int fd() const noexcept;
    void set_unix_fd_passing(bool on) noexcept;
    [[nodiscard]] bool unix_fd_passing() const noexcept;
    [[nodiscard]] bool wants_write() const noexcept;
    [[nodiscard]] std::size_t queued_messages() const noexcept;

    // Bytes read behind the SASL exchange: the start of the message stream. Streams only (a datagram
    // socket never carries SASL and a message in one datagram).
    void push_received(std::string_view bytes);
    Expected<std::size_t, TransportError> read(ReadStart start = ReadStart::Now);
    // Whether the next read may start with ReadStart::Waiting: AF_BUS only (see
    // DatagramTransport::can_wait_in_read()). A stream never waits in its read: on a unix socket, a
    // client blocked in recvmsg() instead of poll() made the daemon that woke it spend more per call
    // (docs/performance.md, "Kernel mode").
    [[nodiscard]] bool can_wait_in_read() const noexcept;
    // The next message read; its source address on AF_BUS, nullopt on streams.
    Expected<std::optional<ReceivedDatagram>, TransportError> next();
    // destination: where an AF_BUS datagram goes (ignored by streams).
    void enqueue(Message message, std::optional<std::uint64_t> destination);
    // A message the kernel refused, sent again elsewhere (AF_BUS only).
    void enqueue_again(std::shared_ptr<const Message> message, std::uint64_t destination);
    Expected<bool, TransportError> flush();
    // Messages the kernel refused (AF_BUS only; empty for streams).
    [[nodiscard]] std::vector<RefusedDatagram> take_refused();

private:
    std::variant<StreamTransport, DatagramTransport> transport_;
};

}  // namespace afbus::detail
