// NameRegistry: well-known bus names, their primary owners and queues, with the exact semantics of
// dbus-daemon's RequestName / ReleaseName (flags ALLOW_REPLACEMENT, REPLACE_EXISTING, DO_NOT_QUEUE).
// Pure bookkeeping: it reports ownership changes and the bus turns them into NameOwnerChanged, NameLost
// and NameAcquired.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace afbus::daemon {

using PeerId = std::uint64_t;

struct NameChange {
    std::string name;
    std::optional<PeerId> old_owner;
    std::optional<PeerId> new_owner;
};

class NameRegistry {
public:
    struct Result {
        std::uint32_t reply;  // the RequestName / ReleaseName reply code
        std::vector<NameChange> changes;
    };

    // `name` must be a valid well-known name (the driver checks).
    Result request(const std::string& name, PeerId peer, std::uint32_t flags);
    Result release(const std::string& name, PeerId peer);
    // Everything `peer` owned or queued for, as if released one by one (newest first, as dbus-daemon).
    // The changes are added to `changes`, which gets room for them before anything changes: one with
    // room for count_for(peer) more makes this allocate nothing.
    void release_all(PeerId peer, std::vector<NameChange>& changes);
    std::vector<NameChange> release_all(PeerId peer) {
        std::vector<NameChange> changes;
        release_all(peer, changes);
        return changes;
    }

    [[nodiscard]] std::optional<PeerId> owner(std::string_view name) const;
    // Primary owner first, then the queue.
    [[nodiscard]] std::vector<PeerId> queue(std::string_view name) const;
    [[nodiscard]] std::vector<std::string> names() const;
    [[nodiscard]] std::vector<std::string> owned_by(PeerId peer) const;  // primary ownership only
    [[nodiscard]] std::size_t count_for(PeerId peer) const;              // owned or queued
    [[nodiscard]] std::size_t owned() const noexcept { return names_.size(); }  // names with an owner
    // Owned or queued for, in the order asked (what policy rules about a destination look at).
    [[nodiscard]] const std::vector<std::string>& names_of(PeerId peer) const;

private:
    struct Entry {
        PeerId peer;
        std::uint32_t flags;
    };
    std::map<std::string, std::deque<Entry>, std::less<>> names_;
    // Per peer, the names it owns or queues for, in the order it asked.
    std::map<PeerId, std::vector<std::string>> by_peer_;

    void forget(PeerId peer, const std::string& name);
};

}  // namespace afbus::daemon
