// RecordingDelivery: a fake delivery mode for tests of the bus model through the delivery seam. No
// sockets, no SASL: what the model delivers is recorded per peer, with what it tells the delivery mode.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bus.hpp"

namespace afbus::test {

using daemon::ConnectionSettings;
using daemon::Delivery;
using daemon::DeliveryEvents;
using daemon::EventLoop;
using daemon::NameChange;
using daemon::PeerId;
using daemon::QueueLoad;

class RecordingDelivery : public Delivery {
public:
    RecordingDelivery(EventLoop&, DeliveryEvents&, ConnectionSettings) {}

    void configure(const ConnectionSettings&) override {}
    QueueLoad queued(PeerId peer) const override {
        QueueLoad q;
        if (auto it = inbox.find(peer); it != inbox.end()) {
            for (const auto& m : it->second) {
                ++q.messages;
                q.bytes += m->size();
            }
        }
        return q;
    }
    bool passes_fds(PeerId) const override { return true; }
    QueueLoad deliver(PeerId peer, std::shared_ptr<const Message> message) override {
        inbox[peer].push_back(std::move(message));
        return queued(peer);
    }
    QueueLoad deliver_copy(PeerId peer, std::shared_ptr<const Message> message) override {
        ++copies[peer];
        return deliver(peer, std::move(message));
    }
    void flush() override { ++flushes; }
    void detach(PeerId peer) override { detached.push_back(peer); }
    // (The test's bookkeeping: allocation failures in it end the test, which is what noexcept does.)
    void unique_name_assigned(PeerId peer, std::string_view name) noexcept override {
        unique_names[peer] = std::string(name);
    }
    void name_owner_changed(const NameChange& change) noexcept override { name_changes.push_back(change.name); }
    // (std::string's operator+ on a literal trips GCC 12's -Wrestrict false positive at -O3.)
    std::optional<Refusal> match_added(PeerId peer, const MatchRule& rule) noexcept override {
        match_changes.emplace_back(peer, std::string("+").append(rule.to_string()));
        return refuse_matches;
    }
    void match_removed(PeerId peer, const MatchRule& rule) noexcept override {
        match_changes.emplace_back(peer, std::string("-").append(rule.to_string()));
    }

    // Takes what was delivered to `peer` so far.
    std::vector<std::shared_ptr<const Message>> take(PeerId peer) { return std::exchange(inbox[peer], {}); }

    std::map<PeerId, std::vector<std::shared_ptr<const Message>>> inbox;
    std::map<PeerId, int> copies;  // of what inbox holds, how many came as others' (deliver_copy)
    std::vector<PeerId> detached;
    std::map<PeerId, std::string> unique_names;
    std::vector<std::string> name_changes;
    std::vector<std::pair<PeerId, std::string>> match_changes;
    // What match_added answers: a mode that cannot take rules, when set.
    std::optional<Refusal> refuse_matches;
    int flushes = 0;
};

}  // namespace afbus::test
