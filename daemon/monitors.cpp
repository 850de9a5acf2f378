#include "monitors.hpp"

#include <algorithm>

#include "room.hpp"

namespace afbus::daemon {

std::vector<Monitors::Monitor>::const_iterator Monitors::find(PeerId peer) const {
    return std::find_if(monitors_.begin(), monitors_.end(), [peer](const Monitor& m) { return m.peer == peer; });
}

void Monitors::make_room_for_one() { make_room(monitors_); }

void Monitors::add(PeerId monitor, std::vector<MatchRule> rules) {
    make_room(monitors_);  // first: out of memory, nothing changes
    if (auto it = find(monitor); it != monitors_.end()) {
        monitors_[static_cast<std::size_t>(it - monitors_.begin())].rules = std::move(rules);
        return;
    }
    monitors_.push_back(Monitor{monitor, std::move(rules)});
}

void Monitors::remove(PeerId monitor) {
    if (auto it = find(monitor); it != monitors_.end()) monitors_.erase(it);
}

void Monitors::recipients(const Message& message, std::optional<PeerId> sender, std::optional<PeerId> addressed,
                          const MatchRegistry::IsNamedBy& is_named_by, std::vector<PeerId>& out) const {
    for (const Monitor& m : monitors_) {
        const bool wanted = m.rules.empty() || std::any_of(m.rules.begin(), m.rules.end(), [&](const MatchRule& rule) {
                                return MatchRegistry::rule_matches(rule, message, sender, addressed, is_named_by);
                            });
        if (wanted) out.push_back(m.peer);
    }
}

}  // namespace afbus::daemon
