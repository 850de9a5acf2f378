#include "match_registry.hpp"

#include <algorithm>

namespace afbus::daemon {
namespace {

void erase_id(std::vector<std::uint64_t>& ids, std::uint64_t id) {
    auto it = std::find(ids.begin(), ids.end(), id);
    if (it != ids.end()) ids.erase(it);
}

// The first body argument when it is a string (what arg0='…' can match), or nullopt.
std::optional<std::string> first_string_argument(const Message& message) {
    if (!message.signature().starts_with('s')) return std::nullopt;
    MessageReader reader(message);
    auto v = reader.read_value();
    if (!v) return std::nullopt;
    return v->text();
}

}  // namespace

MatchRegistry::Bucket MatchRegistry::bucket_of(const MatchRule& rule, std::string* key) {
    for (const auto& a : rule.args()) {
        if (a.index == 0 && a.kind == MatchRule::ArgCondition::Kind::String) {
            *key = a.value;
            return Bucket::Arg0;
        }
    }
    if (rule.member()) {
        *key = *rule.member();
        return Bucket::Member;
    }
    return Bucket::Other;
}

void MatchRegistry::add(PeerId peer, MatchRule rule) {
    const RuleId id = next_id_++;
    std::string key;
    switch (bucket_of(rule, &key)) {
        case Bucket::Arg0: by_arg0_[key].push_back(id); break;
        case Bucket::Member: by_member_[key].push_back(id); break;
        case Bucket::Other: others_.push_back(id); break;
    }
    by_peer_[peer].push_back(id);
    rules_.emplace(id, Entry{peer, std::move(rule)});
}

void MatchRegistry::unindex(RuleId id, const Entry& entry) {
    std::string key;
    switch (bucket_of(entry.rule, &key)) {
        case Bucket::Arg0: {
            auto it = by_arg0_.find(key);
            erase_id(it->second, id);
            if (it->second.empty()) by_arg0_.erase(it);
            break;
        }
        case Bucket::Member: {
            auto it = by_member_.find(key);
            erase_id(it->second, id);
            if (it->second.empty()) by_member_.erase(it);
            break;
        }
        case Bucket::Other: erase_id(others_, id); break;
    }
}

bool MatchRegistry::remove(PeerId peer, const MatchRule& rule) {
    auto owner = by_peer_.find(peer);
    if (owner == by_peer_.end()) return false;
    std::vector<RuleId>& ids = owner->second;
    // The most recently added equal rule goes first, as in dbus-daemon.
    for (auto it = ids.rbegin(); it != ids.rend(); ++it) {
        auto entry = rules_.find(*it);
        if (entry->second.rule != rule) continue;
        unindex(*it, entry->second);
        rules_.erase(entry);
        ids.erase(std::next(it).base());
        if (ids.empty()) by_peer_.erase(owner);
        return true;
    }
    return false;
}

void MatchRegistry::remove_all(PeerId peer) {
    auto owner = by_peer_.find(peer);
    if (owner == by_peer_.end()) return;
    for (RuleId id : owner->second) {
        auto entry = rules_.find(id);
        unindex(id, entry->second);
        rules_.erase(entry);
    }
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
    for (RuleId id : owner->second) out.push_back(rules_.at(id).rule.to_string());
    return out;
}

bool MatchRegistry::matches(const Entry& entry, const Message& message, bool has_destination,
                            std::optional<PeerId> sender, std::optional<PeerId> addressed,
                            const IsNamedBy& is_named_by) const {
    // A message for someone else is only seen by eavesdropping rules.
    if (has_destination && !entry.rule.eavesdrop().value_or(false)) return false;
    return rule_matches(entry.rule, message, sender, addressed, is_named_by);
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
    auto consider = [&](const std::vector<RuleId>& ids) {
        for (RuleId id : ids) {
            const Entry& entry = rules_.at(id);
            if (addressed && entry.peer == *addressed) continue;  // it gets the message as its addressee
            if (matches(entry, message, has_destination, sender, addressed, is_named_by)) out.push_back(entry.peer);
        }
    };
    consider(others_);
    if (!by_member_.empty()) {
        if (auto it = by_member_.find(std::string(message.member())); it != by_member_.end()) consider(it->second);
    }
    if (!by_arg0_.empty()) {
        if (auto arg0 = first_string_argument(message)) {
            if (auto it = by_arg0_.find(*arg0); it != by_arg0_.end()) consider(it->second);
        }
    }
    std::sort(out.begin() + static_cast<std::ptrdiff_t>(start), out.end());
    out.erase(std::unique(out.begin() + static_cast<std::ptrdiff_t>(start), out.end()), out.end());
}

}  // namespace afbus::daemon
