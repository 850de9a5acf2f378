#include "match_registry.hpp"

#include <algorithm>

#include "room.hpp"

namespace afbus::daemon {
namespace {

// The first body argument when it is a string (what arg0='…' can match), or nullopt.
std::optional<std::string> first_string_argument(const Message& message) {
    if (!message.signature().starts_with('s')) return std::nullopt;
    MessageReader reader(message);
    auto v = reader.read_value();
    if (!v) return std::nullopt;
    return v->text();
}

}  // namespace

MatchRegistry::Bucket MatchRegistry::bucket_of(const MatchRule& rule, std::string_view* key) {
    // A view into the rule's own storage: valid as long as the rule stays where it is (rules_ never moves
    // its elements).
    if (auto arg0 = rule.string_arg0()) {
        *key = *arg0;
        return Bucket::Arg0;
    }
    if (auto member = rule.member()) {
        *key = *member;
        return Bucket::Member;
    }
    return Bucket::Other;
}

void MatchRegistry::add(PeerId peer, MatchRule rule) {
    // Room first (room.hpp): if memory runs out, the registry is as it was. free_ always has room for every
    // slot, so that removing rules never allocates (a disconnecting peer's rules go whatever memory is left).
    std::vector<RuleId>& mine = by_peer_[peer];
    const auto forget_peer_if_new = [&] {
        if (mine.empty()) by_peer_.erase(peer);
    };
    try {
        make_room(mine);
        std::string_view key;
        const Bucket bucket = bucket_of(rule, &key);
        if (bucket == Bucket::Other) make_room(others_);
        if (free_.empty()) {
            make_room(free_, rules_.size() + 1 - free_.size());
            rules_.emplace_back();
        }
    } catch (...) {
        forget_peer_if_new();
        throw;
    }
    const RuleId id = free_.empty() ? static_cast<RuleId>(rules_.size() - 1) : free_.back();
    if (!free_.empty()) free_.pop_back();
    rules_[id] = Entry{peer, std::move(rule)};
    std::string_view key;
    const Bucket bucket = bucket_of(rules_[id].rule, &key);
    try {
        if (bucket == Bucket::Arg0) by_arg0_.emplace(key, id);
        if (bucket == Bucket::Member) by_member_.emplace(key, id);
    } catch (...) {
        vacate(id);
        free_.push_back(id);  // room was made
        forget_peer_if_new();
        throw;
    }
    if (bucket == Bucket::Other) others_.push_back(id);
    mine.push_back(id);
    ++live_;
}

void MatchRegistry::unindex(RuleId id, const Entry& entry) {
    auto erase_from = [id](Index& index, std::string_view key) {
        auto [first, last] = index.equal_range(key);
        for (auto it = first; it != last; ++it) {
            if (it->second == id) {
                index.erase(it);
                return;
            }
        }
    };
    std::string_view key;
    switch (bucket_of(entry.rule, &key)) {
        case Bucket::Arg0: erase_from(by_arg0_, key); break;
        case Bucket::Member: erase_from(by_member_, key); break;
        case Bucket::Other: others_.erase(std::find(others_.begin(), others_.end(), id)); break;
    }
}

void MatchRegistry::release(RuleId id) {
    unindex(id, rules_[id]);
    free_slot(id);
}

void MatchRegistry::free_slot(RuleId id) {
    vacate(id);
    free_.push_back(id);  // add() keeps room for every slot
    --live_;
}

void MatchRegistry::vacate(RuleId id) noexcept {
    // The rule's memory goes with the moved-out copy; the slot keeps an empty, moved-from rule (a new
    // MatchRule would allocate, and removing must not).
    { const Entry gone = std::move(rules_[id]); }
    rules_[id].peer = 0;
}

bool MatchRegistry::remove(PeerId peer, const MatchRule& rule) {
    auto owner = by_peer_.find(peer);
    if (owner == by_peer_.end()) return false;
    std::vector<RuleId>& ids = owner->second;
    // The most recently added equal rule goes first, as in dbus-daemon.
    for (auto it = ids.rbegin(); it != ids.rend(); ++it) {
        if (rules_[*it].rule != rule) continue;
        release(*it);
        ids.erase(std::next(it).base());
        if (ids.empty()) by_peer_.erase(owner);
        return true;
    }
    return false;
}

void MatchRegistry::remove_all(PeerId peer) {
    auto owner = by_peer_.find(peer);
    if (owner == by_peer_.end()) return;
    // Every rule of the peer goes, so any index entry of one of its rules under a key will do: the first
    // found. Removing each rule's own entry (release()) costs a walk of the key's entries per rule, which
    // for a peer with many rules under one key (50,000 equal ones under session.conf's limits) held the
    // bus for seconds as it left.
    const auto erase_one_of_peer = [this, peer](Index& index, std::string_view key) {
        for (auto it = index.find(key); it != index.end() && it->first == key; ++it) {
            if (rules_[it->second].peer == peer) {
                index.erase(it);
                return;
            }
        }
    };
    bool others = false;
    for (RuleId id : owner->second) {
        std::string_view key;
        switch (bucket_of(rules_[id].rule, &key)) {
            case Bucket::Arg0: erase_one_of_peer(by_arg0_, key); break;
            case Bucket::Member: erase_one_of_peer(by_member_, key); break;
            case Bucket::Other: others = true; break;
        }
    }
    if (others) std::erase_if(others_, [this, peer](RuleId id) { return rules_[id].peer == peer; });
    for (RuleId id : owner->second) free_slot(id);
    by_peer_.erase(owner);
}

std::size_t MatchRegistry::count(PeerId peer) const {
    auto owner = by_peer_.find(peer);
    return owner == by_peer_.end() ? 0 : owner->second.size();
}

std::vector<std::string> MatchRegistry::rules_of(PeerId peer) const {
    std::vector<std::string> out;
    auto owner = by_peer_.find(peer);
    if (owner == by_peer_.end()) return out;
    for (RuleId id : owner->second) out.push_back(rules_[id].rule.to_string());
    return out;
}

bool MatchRegistry::matches(const Entry& entry, const Message& message, bool has_destination,
                            std::optional<PeerId> sender, std::optional<PeerId> addressed,
                            const IsNamedBy& is_named_by) const {
    // A message for someone else is only seen by eavesdropping rules.
    if (has_destination && !entry.rule.eavesdrop().value_or(false)) return false;
    return rule_matches(entry.rule, message, sender, addressed, is_named_by);
}

bool MatchRegistry::peer_matches(PeerId peer, const Message& message, std::optional<PeerId> sender,
                                 std::optional<PeerId> addressed, const IsNamedBy& is_named_by) const {
    if (addressed && *addressed == peer) return false;  // it gets the message as its addressee
    const auto rules = by_peer_.find(peer);
    if (rules == by_peer_.end()) return false;
    const bool has_destination = !message.destination().empty();
    return std::any_of(rules->second.begin(), rules->second.end(), [&](RuleId id) {
        return matches(rules_[id], message, has_destination, sender, addressed, is_named_by);
    });
}

bool MatchRegistry::rule_matches(const MatchRule& rule, const Message& message, std::optional<PeerId> sender,
                                 std::optional<PeerId> addressed, const IsNamedBy& is_named_by) {
    if (rule.sender()) {
        if (*rule.sender() == "org.freedesktop.DBus") {
            if (sender) return false;  // from a peer, not from the bus
        } else if (!sender || !is_named_by(*sender, *rule.sender())) {
            return false;
        }
    }
    if (rule.destination()) {
        if (message.destination().empty()) return false;
        if (*rule.destination() == "org.freedesktop.DBus") {
            if (addressed) return false;
        } else if (!addressed || !is_named_by(*addressed, *rule.destination())) {
            return false;
        }
    }
    return rule.matches_except_names(message);
}

void MatchRegistry::recipients(const Message& message, std::optional<PeerId> sender, std::optional<PeerId> addressed,
                               const IsNamedBy& is_named_by, std::vector<PeerId>& out) const {
    const std::size_t start = out.size();
    const bool has_destination = !message.destination().empty();
    auto consider = [&](RuleId id) {
        const Entry& entry = rules_[id];
        if (addressed && entry.peer == *addressed) return;  // it gets the message as its addressee
        if (matches(entry, message, has_destination, sender, addressed, is_named_by)) out.push_back(entry.peer);
    };
    for (RuleId id : others_) consider(id);
    if (!by_member_.empty()) {
        auto [first, last] = by_member_.equal_range(message.member());
        for (auto it = first; it != last; ++it) consider(it->second);
    }
    if (!by_arg0_.empty()) {
        if (auto arg0 = first_string_argument(message)) {
            auto [first, last] = by_arg0_.equal_range(*arg0);
            for (auto it = first; it != last; ++it) consider(it->second);
        }
    }
    std::sort(out.begin() + static_cast<std::ptrdiff_t>(start), out.end());
    out.erase(std::unique(out.begin() + static_cast<std::ptrdiff_t>(start), out.end()), out.end());
}

}  // namespace afbus::daemon
