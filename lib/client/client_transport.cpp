#include "client/client_transport.hpp"

#include <cassert>

namespace afbus::detail {

int ClientTransport::fd() const noexcept {
    return std::visit([](const auto& t) { return t.fd(); }, transport_);
}

void ClientTransport::set_unix_fd_passing(bool on) noexcept {
    std::visit([on](auto& t) { t.set_unix_fd_passing(on); }, transport_);
}

bool ClientTransport::unix_fd_passing() const noexcept {
    return std::visit([](const auto& t) { return t.unix_fd_passing(); }, transport_);
}

bool ClientTransport::wants_write() const noexcept {
    return std::visit([](const auto& t) { return t.wants_write(); }, transport_);
}

std::size_t ClientTransport::queued_messages() const noexcept {
    return std::visit([](const auto& t) { return t.queued_messages(); }, transport_);
}

void ClientTransport::push_received(std::string_view bytes) {
    if (auto* stream = std::get_if<StreamTransport>(&transport_)) stream->push_received(bytes);
}

Expected<std::size_t, TransportError> ClientTransport::read(ReadStart start) {
    if (auto* datagrams = std::get_if<DatagramTransport>(&transport_))
        return datagrams->read(DatagramTransport::kDefaultReadBudget, start);
    assert(start == ReadStart::Now);
    return std::get<StreamTransport>(transport_).read();
}

bool ClientTransport::can_wait_in_read() const noexcept {
    const auto* datagrams = std::get_if<DatagramTransport>(&transport_);
    return datagrams && datagrams->can_wait_in_read();
}

Expected<std::optional<ReceivedDatagram>, TransportError> ClientTransport::next() {
    if (auto* datagrams = std::get_if<DatagramTransport>(&transport_)) return datagrams->next();
    auto m = std::get<StreamTransport>(transport_).next();
    if (!m) return Unexpected(m.error());
    if (!*m) return std::optional<ReceivedDatagram>{};
    return std::optional<ReceivedDatagram>(ReceivedDatagram{std::move(**m), std::nullopt});
}

void ClientTransport::enqueue(Message message, std::optional<std::uint64_t> destination) {
    if (auto* datagrams = std::get_if<DatagramTransport>(&transport_))
        datagrams->enqueue(std::move(message), destination);
    else
        std::get<StreamTransport>(transport_).enqueue(std::move(message));
}

void ClientTransport::enqueue_again(std::shared_ptr<const Message> message, std::uint64_t destination) {
    auto* datagrams = std::get_if<DatagramTransport>(&transport_);
    assert(datagrams);  // only AF_BUS refuses single messages
    datagrams->enqueue(std::move(message), destination);
}

Expected<bool, TransportError> ClientTransport::flush() {
    return std::visit([](auto& t) { return t.flush(); }, transport_);
}

std::vector<RefusedDatagram> ClientTransport::take_refused() {
    if (auto* datagrams = std::get_if<DatagramTransport>(&transport_)) return datagrams->take_refused();
    return {};
}

}  // namespace afbus::detail
