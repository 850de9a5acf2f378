// Monitors: the connections that called BecomeMonitor, each with the match rules it gave (none: every
// message). A monitor receives a copy of every message the bus handles that one of its rules matches —
// including what policy refuses and the errors the bus answers with — and never sends.
#pragma once

#include <optional>
#include <vector>

#include "afbus/match_rule.hpp"
#include "match_registry.hpp"

namespace afbus::daemon {

class Monitors {
public:
    // Room for one more monitor, so that the add() that follows cannot fail (room.hpp).
    void make_room_for_one();
    void add(PeerId monitor, std::vector<MatchRule> rules);
    void remove(PeerId monitor);
    [[nodiscard]] bool empty() const noexcept { return monitors_.empty(); }
    [[nodiscard]] bool contains(PeerId peer) const { return find(peer) != monitors_.end(); }

    // The monitors that want `message`, sent by `sender` and addressed to `addressed` (none: the bus),
    // in the order they became monitors. Their rules' sender= and destination= are names as is_named_by
    // resolves them, as for match rules.
    void recipients(const Message& message, std::optional<PeerId> sender, std::optional<PeerId> addressed,
                    const MatchRegistry::IsNamedBy& is_named_by, std::vector<PeerId>& out) const;

private:
    struct Monitor {
        PeerId peer;
        std::vector<MatchRule> rules;
    };
    [[nodiscard]] std::vector<Monitor>::const_iterator find(PeerId peer) const;

    // In the order they became monitors; a bus has few, so a vector (searched) beats a map.
    std::vector<Monitor> monitors_;
};

}  // namespace afbus::daemon
