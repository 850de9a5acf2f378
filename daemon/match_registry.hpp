// MatchRegistry: the match rules each peer added with AddMatch (duplicates count: each AddMatch adds one,
// each RemoveMatch removes one), and the recipients of a message among them.
//
// Rules are indexed so that routing a message looks only at rules that could match it: a rule with an
// arg0='…' condition is filed under that string, one with member='…' (and no arg0) under the member, the
// rest in a list every message checks. 10,000 arg0 rules of which one matches cost one bucket lookup, not
// 10,000 evaluations.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
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
    [[nodiscard]] std::size_t total() const noexcept { return live_; }

    // Peers other than `addressed` with a rule matching `message`, as dbus-daemon decides: sender= and
    // destination= compare against name owners; a message addressed to someone else only matches rules
    // with eavesdrop='true'. Each peer appears once, in ascending id order.
    void recipients(const Message& message, std::optional<PeerId> sender, std::optional<PeerId> addressed,
                    const IsNamedBy& is_named_by, std::vector<PeerId>& out) const;

    // Whether `peer` is among recipients(): a rule of its matches `message`, which is not addressed to it.
    [[nodiscard]] bool peer_matches(PeerId peer, const Message& message, std::optional<PeerId> sender,
                                    std::optional<PeerId> addressed, const IsNamedBy& is_named_by) const;

    // Whether `rule` matches `message` as the bus sees it: sender= and destination= are names the sending
    // and the addressed peer own (none: the bus itself). Eavesdropping is not considered here.
    static bool rule_matches(const MatchRule& rule, const Message& message, std::optional<PeerId> sender,
                             std::optional<PeerId> addressed, const IsNamedBy& is_named_by);

private:
    // Memory per rule is what a bus with many subscribers pays (dbus-daemon: ~0.3 KiB), so rules sit in a
    // deque (no per-rule node, no moves: index keys can view into them) with slots reused, and the
    // indexes are multimaps of views into the rules' own text.
    using RuleId = std::uint32_t;  // a slot of rules_
    struct Entry {
        PeerId peer = 0;  // 0: a free slot
        MatchRule rule;
    };
    using Index = std::unordered_multimap<std::string_view, RuleId>;
    enum class Bucket { Arg0, Member, Other };

    static Bucket bucket_of(const MatchRule& rule, std::string_view* key);
    void unindex(RuleId id, const Entry& entry);
    void release(RuleId id);
    // Frees slot `id` for reuse, its rule already out of the indexes; allocates nothing.
    void free_slot(RuleId id);
    // Frees slot `id`'s rule without allocating.
    void vacate(RuleId id) noexcept;
    bool matches(const Entry& entry, const Message& message, bool has_destination, std::optional<PeerId> sender,
                 std::optional<PeerId> addressed, const IsNamedBy& is_named_by) const;

    std::deque<Entry> rules_;
    std::vector<RuleId> free_;
    std::size_t live_ = 0;
    std::unordered_map<PeerId, std::vector<RuleId>> by_peer_;  // in the order added
    Index by_arg0_;
    Index by_member_;
    std::vector<RuleId> others_;
};

}  // namespace afbus::daemon
