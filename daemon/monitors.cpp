#include "monitors.hpp"

#include <algorithm>

namespace afbus::daemon {

void Monitors::add(PeerId monitor, std::vector<MatchRule> rules) {
    if (rules_.insert_or_assign(monitor, std::move(rules)).second) order_.push_back(monitor);
}

void Monitors::remove(PeerId monitor) {
    if (rules_.erase(monitor) == 0) return;
    order_.erase(std::find(order_.begin(), order_.end(), monitor));
}

void Monitors::recipients(const Message& message, std::optional<PeerId> sender, std::optional<PeerId> addressed,
                          const MatchRegistry::IsNamedBy& is_named_by, std::vector<PeerId>& out) const {
    for (PeerId id : order_) {
        const std::vector<MatchRule>& rules = rules_.at(id);
        const bool wanted = rules.empty() || std::any_of(rules.begin(), rules.end(), [&](const MatchRule& rule) {
                                return MatchRegistry::rule_matches(rule, message, sender, addressed, is_named_by);
                            });
        if (wanted) out.push_back(id);
    }
}

}  // namespace afbus::daemon
