#include "name_registry.hpp"

#include <algorithm>

#include "afbus/names.hpp"
#include "room.hpp"

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

// Every change below takes its memory first (the result, the name's copy for by_peer_, room in the
// lists), then changes without allocating: out of memory, the registry is as it was (room.hpp).
NameRegistry::Result NameRegistry::request(const std::string& name, PeerId peer, std::uint32_t flags) {
    auto it = names_.find(name);
    auto& mine = by_peer_[peer];
    const auto forget_peer_if_new = [&] {
        if (mine.empty()) by_peer_.erase(peer);
    };
    if (it == names_.end() || it->second.empty()) {
        try {
            Result result{reply::kPrimaryOwner, {{name, std::nullopt, peer}}};
            std::string listed = name;
            make_room(mine);
            if (it == names_.end()) it = names_.try_emplace(name).first;
            it->second.push_back({peer, flags});
            mine.push_back(std::move(listed));
            return result;
        } catch (...) {
            if (it != names_.end() && it->second.empty()) names_.erase(it);
            forget_peer_if_new();
            throw;
        }
    }
    auto& queue = it->second;
    Entry& primary = queue.front();
    if (primary.peer == peer) {
        primary.flags = flags;  // dbus-daemon takes the new flags
        return {reply::kAlreadyOwner, {}};
    }
    auto queued = std::find_if(queue.begin() + 1, queue.end(), [peer](const Entry& e) { return e.peer == peer; });
    const bool was_queued = queued != queue.end();
    if ((flags & kReplaceExisting) && (primary.flags & kAllowReplacement)) {
        const Entry old = primary;
        std::deque<Entry> replaced;
        Result result;
        std::string listed;
        try {
            result = Result{reply::kPrimaryOwner, {{name, old.peer, peer}}};
            // The replaced owner waits at the head of the queue unless it asked never to queue.
            replaced.push_back({peer, flags});
            if (!(old.flags & kDoNotQueue)) replaced.push_back(old);
            for (auto e = queue.begin() + 1; e != queue.end(); ++e)
                if (e->peer != peer) replaced.push_back(*e);
            if (!was_queued) {
                listed = name;
                make_room(mine);
            }
        } catch (...) {
            forget_peer_if_new();
            throw;
        }
        queue.swap(replaced);
        if (old.flags & kDoNotQueue) forget(old.peer, name);
        if (!was_queued) mine.push_back(std::move(listed));
        return result;
    }
    if (flags & kDoNotQueue) {
        if (was_queued) {
            queue.erase(queued);
            forget(peer, name);  // (which may erase `mine`: not touched after)
        } else {
            forget_peer_if_new();
        }
        return {reply::kExists, {}};
    }
    if (was_queued) {
        queued->flags = flags;
        return {reply::kInQueue, {}};
    }
    try {
        std::string listed = name;
        make_room(mine);
        queue.push_back({peer, flags});
        mine.push_back(std::move(listed));
    } catch (...) {
        forget_peer_if_new();
        throw;
    }
    return {reply::kInQueue, {}};
}

NameRegistry::Result NameRegistry::release(const std::string& name, PeerId peer) {
    auto it = names_.find(name);
    if (it == names_.end() || it->second.empty()) return {reply::kNonExistent, {}};
    auto& queue = it->second;
    if (queue.front().peer == peer) {
        // The result's memory first: nothing below allocates.
        Result result{reply::kReleased, {{name, peer, std::nullopt}}};
        queue.pop_front();
        forget(peer, name);
        if (queue.empty()) names_.erase(it);
        else result.changes.front().new_owner = queue.front().peer;
        return result;
    }
    auto queued = std::find_if(queue.begin(), queue.end(), [peer](const Entry& e) { return e.peer == peer; });
    if (queued == queue.end()) return {reply::kNotOwner, {}};
    queue.erase(queued);
    forget(peer, name);
    return {reply::kReleased, {}};
}

void NameRegistry::release_all(PeerId peer, std::vector<NameChange>& changes) {
    auto it = by_peer_.find(peer);
    if (it == by_peer_.end()) return;
    // The one allocation, before any change: what follows only erases and moves.
    make_room(changes, it->second.size());
    std::vector<std::string> names = std::move(it->second);
    by_peer_.erase(it);
    for (auto name = names.rbegin(); name != names.rend(); ++name) {
        auto held = names_.find(*name);
        if (held == names_.end()) continue;
        auto& queue = held->second;
        if (!queue.empty() && queue.front().peer == peer) {
            queue.pop_front();
            const std::optional<PeerId> next = queue.empty() ? std::nullopt : std::optional<PeerId>(queue.front().peer);
            if (queue.empty()) names_.erase(held);
            changes.push_back({std::move(*name), peer, next});
        } else if (auto e = std::find_if(queue.begin(), queue.end(), [peer](const Entry& x) { return x.peer == peer; });
                   e != queue.end()) {
            queue.erase(e);
        }
    }
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
