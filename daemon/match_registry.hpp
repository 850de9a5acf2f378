// MatchRegistry: the match rules each peer added with AddMatch (duplicates count: each AddMatch adds one,
// each RemoveMatch removes one), and the recipients of a message among them.
#pragma once

#include <functional>
#include <map>
#include <string_view>
#include <vector>

#include "afbus/match_rule.hpp"
#include "name_registry.hpp"

namespace afbus::daemon {

class MatchRegistry {
public:
    // Whether `peer` is `name` (its unique name) or the primary owner of it.
    using IsNamedBy = std::function<bool(PeerId peer, std::string_view name)>;

    void add(PeerId peer, MatchRule rule);
    bool remove(PeerId peer, const MatchRule& rule);
    void remove_all(PeerId peer);
    [[nodiscard]] std::size_t count(PeerId peer) const;
    [[nodiscard]] std::vector<std::string> rules_of(PeerId peer) const;
    [[nodiscard]] std::size_t total() const noexcept { return total_; }

    // Peers other than `addressed` and `sender_peer`-independent with a rule matching `message`, as
    // dbus-daemon decides: sender= and destination= compare against name owners; a message addressed to
    // someone else only matches rules with eavesdrop='true'. Each peer appears once, in ascending id order.
    void recipients(const Message& message, std::optional<PeerId> sender, std::optional<PeerId> addressed,
                    const IsNamedBy& is_named_by, std::vector<PeerId>& out) const;

private:
    std::map<PeerId, std::vector<MatchRule>> rules_;
    std::size_t total_ = 0;
};

}  // namespace afbus::daemon
