#include "flow_control.hpp"

#include <algorithm>

#include "peer.hpp"

namespace afbus::daemon {
namespace {

// A message and the charge it carries: the charge is lifted when the last queue lets go of it,
// whichever queue that is.
struct Charged {
    Message message;
    std::shared_ptr<IncomingLoad> load;
    Charged(Message m, std::shared_ptr<IncomingLoad> l) : message(std::move(m)), load(std::move(l)) {
        ++load->messages;
        load->bytes += message.size();
        load->fds += message.fds().size();
    }
    ~Charged() {
        --load->messages;
        load->bytes -= message.size();
        load->fds -= message.fds().size();
    }
    Charged(const Charged&) = delete;
    Charged& operator=(const Charged&) = delete;
};

}  // namespace

std::shared_ptr<const Message> FlowControl::charge(const std::shared_ptr<IncomingLoad>& load, PeerStats& stats,
                                                   Message message) {
    auto charged = std::make_shared<Charged>(std::move(message), load);
    stats.peak_incoming_bytes = std::max(stats.peak_incoming_bytes, load->bytes);
    stats.peak_incoming_fds = std::max(stats.peak_incoming_fds, load->fds);
    return std::shared_ptr<const Message>(charged, &charged->message);
}

const char* FlowControl::incoming_exceeded(const IncomingLoad& load) const noexcept {
    if (load.bytes >= static_cast<std::size_t>(limits_->max_incoming_bytes)) return "max_incoming_bytes";
    if (load.fds >= static_cast<std::size_t>(limits_->max_incoming_unix_fds)) return "max_incoming_unix_fds";
    return nullptr;
}

std::int64_t FlowControl::limit_value(std::string_view name) const noexcept {
    if (name == "max_incoming_bytes") return limits_->max_incoming_bytes;
    if (name == "max_incoming_unix_fds") return limits_->max_incoming_unix_fds;
    if (name == "max_outgoing_bytes") return limits_->max_outgoing_bytes;
    if (name == "max_outgoing_unix_fds") return limits_->max_outgoing_unix_fds;
    if (name == "max_message_size") return limits_->max_message_size;
    if (name == "max_message_unix_fds") return limits_->max_message_unix_fds;
    return -1;
}

const char* FlowControl::outgoing_exceeded(const QueueLoad& queued, const Message& message) const noexcept {
    if (queued.bytes + message.size() > static_cast<std::size_t>(limits_->max_outgoing_bytes)) return "max_outgoing_bytes";
    if (queued.fds + message.fds().size() > static_cast<std::size_t>(limits_->max_outgoing_unix_fds))
        return "max_outgoing_unix_fds";
    return nullptr;
}

const char* FlowControl::message_exceeds(const Message& message) const noexcept {
    if (message.size() > static_cast<std::size_t>(limits_->max_message_size)) return "max_message_size";
    if (message.fds().size() > static_cast<std::size_t>(limits_->max_message_unix_fds)) return "max_message_unix_fds";
    return nullptr;
}

}  // namespace afbus::daemon
