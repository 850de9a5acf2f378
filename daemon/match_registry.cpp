#include "match_registry.hpp"

#include <algorithm>

namespace afbus::daemon {

void MatchRegistry::add(PeerId peer, MatchRule rule) {
    rules_[peer].push_back(std::move(rule));
    ++total_;
}

bool MatchRegistry::remove(PeerId peer, const MatchRule& rule) {
    auto it = rules_.find(peer);
    if (it == rules_.end()) return false;
    auto& list = it->second;
    // The most recently added equal rule goes first, as in dbus-daemon.
    for (auto r = list.rbegin(); r != list.rend(); ++r) {
        if (*r == rule) {
            list.erase(std::next(r).base());
            --total_;
            if (list.empty()) rules_.erase(it);
            return true;
        }
    }
    return false;
}

void MatchRegistry::remove_all(PeerId peer) {
    auto it = rules_.find(peer);
    if (it == rules_.end()) return;
    total_ -= it->second.size();
    rules_.erase(it);
}

std::size_t MatchRegistry::count(PeerId peer) const {
    auto it = rules_.find(peer);
    return it == rules_.end() ? 0 : it->second.size();
}

std::vector<std::string> MatchRegistry::rules_of(PeerId peer) const {
    std::vector<std::string> out;
    auto it = rules_.find(peer);
    if (it == rules_.end()) return out;
    for (const MatchRule& r : it->second) out.push_back(r.to_string());
    return out;
}

void MatchRegistry::recipients(const Message& message, std::optional<PeerId> sender, std::optional<PeerId> addressed,
                               const IsNamedBy& is_named_by, std::vector<PeerId>& out) const {
    const bool has_destination = !message.destination().empty();
    for (const auto& [peer, list] : rules_) {
        if (addressed && peer == *addressed) continue;  // it gets the message as its addressee
        for (const MatchRule& rule : list) {
            // A message for someone else is only seen by eavesdropping rules.
            if (has_destination && !rule.eavesdrop().value_or(false)) continue;
            if (rule.sender()) {
                if (*rule.sender() == "org.freedesktop.DBus") {
                    if (sender) continue;  // from a peer, not from the bus
                } else if (!sender || !is_named_by(*sender, *rule.sender())) {
                    continue;
                }
            }
            if (rule.destination()) {
                if (!has_destination) continue;
                if (*rule.destination() == "org.freedesktop.DBus") {
                    if (addressed) continue;
                } else if (!addressed || !is_named_by(*addressed, *rule.destination())) {
                    continue;
                }
            }
            if (!rule.matches_except_names(message)) continue;
            out.push_back(peer);
            break;
        }
    }
}

}  // namespace afbus::daemon
