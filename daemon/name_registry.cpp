#include "name_registry.hpp"

#include <algorithm>

#include "afbus/names.hpp"

namespace afbus::daemon {

namespace reply {
constexpr std::uint32_t kPrimaryOwner = 1, kInQueue = 2, kExists = 3, kAlreadyOwner = 4;
constexpr std::uint32_t kReleased = 1, kNonExistent = 2, kNotOwner = 3;
}  // namespace reply

using name_flags::kAllowReplacement;
using name_flags::kDoNotQueue;
using name_flags::kReplaceExisting;

void NameRegistry::forget(PeerId peer, const std::string& name) {
    auto it = by_peer_.find(peer);
    if (it == by_peer_.end()) return;
    auto& list = it->second;
    list.erase(std::remove(list.begin(), list.end(), name), list.end());
    if (list.empty()) by_peer_.erase(it);
}

NameRegistry::Result NameRegistry::request(const std::string& name, PeerId peer, std::uint32_t flags) {
    auto [it, created] = names_.try_emplace(name);
    auto& queue = it->second;
    if (created || queue.empty()) {
        queue.push_back({peer, flags});
        by_peer_[peer].push_back(name);
        return {reply::kPrimaryOwner, {{name, std::nullopt, peer}}};
    }
    Entry& primary = queue.front();
    if (primary.peer == peer) {
        primary.flags = flags;  // dbus-daemon takes the new flags
        return {reply::kAlreadyOwner, {}};
    }
    auto queued = std::find_if(queue.begin() + 1, queue.end(), [peer](const Entry& e) { return e.peer == peer; });
    if ((flags & kReplaceExisting) && (primary.flags & kAllowReplacement)) {
        const Entry old = primary;
        if (queued != queue.end()) queue.erase(queued);
        queue.pop_front();
        // The replaced owner waits at the head of the queue unless it asked never to queue.
        if (!(old.flags & kDoNotQueue)) queue.push_front(old);
        else forget(old.peer, name);
        queue.push_front({peer, flags});
        if (std::find(by_peer_[peer].begin(), by_peer_[peer].end(), name) == by_peer_[peer].end())
            by_peer_[peer].push_back(name);
        return {reply::kPrimaryOwner, {{name, old.peer, peer}}};
    }
    if (flags & kDoNotQueue) {
        if (queued != queue.end()) {
            queue.erase(queued);
            forget(peer, name);
        }
        return {reply::kExists, {}};
    }
    if (queued != queue.end()) {
        queued->flags = flags;
    } else {
        queue.push_back({peer, flags});
        by_peer_[peer].push_back(name);
    }
    return {reply::kInQueue, {}};
}

NameRegistry::Result NameRegistry::release(const std::string& name, PeerId peer) {
    auto it = names_.find(name);
    if (it == names_.end() || it->second.empty()) return {reply::kNonExistent, {}};
    auto& queue = it->second;
    if (queue.front().peer == peer) {
        queue.pop_front();
        forget(peer, name);
        Result result{reply::kReleased, {}};
        if (queue.empty()) {
            names_.erase(it);
            result.changes.push_back({name, peer, std::nullopt});
        } else {
            result.changes.push_back({name, peer, queue.front().peer});
        }
        return result;
    }
    auto queued = std::find_if(queue.begin(), queue.end(), [peer](const Entry& e) { return e.peer == peer; });
    if (queued == queue.end()) return {reply::kNotOwner, {}};
    queue.erase(queued);
    forget(peer, name);
    return {reply::kReleased, {}};
}

std::vector<NameChange> NameRegistry::release_all(PeerId peer) {
    std::vector<NameChange> changes;
    auto it = by_peer_.find(peer);
    if (it == by_peer_.end()) return changes;
    const std::vector<std::string> names(it->second.rbegin(), it->second.rend());
    for (const std::string& name : names) {
        auto r = release(name, peer);
        for (auto& c : r.changes) changes.push_back(std::move(c));
    }
    return changes;
}

std::optional<PeerId> NameRegistry::owner(std::string_view name) const {
    auto it = names_.find(name);
    if (it == names_.end() || it->second.empty()) return std::nullopt;
    return it->second.front().peer;
}

std::vector<PeerId> NameRegistry::queue(std::string_view name) const {
    std::vector<PeerId> out;
    auto it = names_.find(name);
    if (it == names_.end()) return out;
    for (const Entry& e : it->second) out.push_back(e.peer);
    return out;
}

std::vector<std::string> NameRegistry::names() const {
    std::vector<std::string> out;
    out.reserve(names_.size());
    for (const auto& [name, queue] : names_)
        if (!queue.empty()) out.push_back(name);
    return out;
}

std::vector<std::string> NameRegistry::owned_by(PeerId peer) const {
    std::vector<std::string> out;
    auto it = by_peer_.find(peer);
    if (it == by_peer_.end()) return out;
    for (const std::string& name : it->second)
        if (owner(name) == peer) out.push_back(name);
    return out;
}

std::size_t NameRegistry::count_for(PeerId peer) const {
    auto it = by_peer_.find(peer);
    return it == by_peer_.end() ? 0 : it->second.size();
}

const std::vector<std::string>& NameRegistry::names_of(PeerId peer) const {
    static const std::vector<std::string> kNone;
    auto it = by_peer_.find(peer);
    return it == by_peer_.end() ? kNone : it->second;
}

}  // namespace afbus::daemon
