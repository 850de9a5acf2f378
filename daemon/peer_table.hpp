// PeerTable: every connection of the bus, by id and by unique name, and the only place a Peer changes
// state. It keeps the counts the limits need (connections still authenticating, registered connections
// in all and per uid) as states change, so no limit is checked by scanning the bus.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "peer.hpp"

namespace afbus::daemon {

class PeerTable {
public:
    // A new connection, Authenticating, with a fresh id (ids are never reused).
    Peer& add(PeerCredentials credentials);
    // Authenticating → Unregistered: `uid` is who it proved to be (none: anonymous).
    void authenticated(Peer& peer, std::optional<uid_t> uid, std::shared_ptr<const policy::ConnectionChains> chains);
    // Unregistered → Registered: gives it the next unique name, ":1.N" counted from 0 as dbus-daemon does.
    const std::string& register_unique_name(Peer& peer);
    // Registered → Monitor: its unique name leaves the name table (nobody can address a monitor).
    void make_monitor(Peer& peer);
    // Any state → Closing. The peer stays findable by id (not by name) with closing() true until remove().
    void close(Peer& peer);
    // Takes a Closing peer out of the table; the caller keeps it alive while it may still be referenced.
    [[nodiscard]] std::unique_ptr<Peer> remove(PeerId id);

    // A peer that is not closing, or null.
    [[nodiscard]] Peer* find(PeerId id) const;
    [[nodiscard]] Peer* find_unique(std::string_view unique_name) const;
    // The registered peers, by unique name (ListNames, GetAllMatchRules).
    [[nodiscard]] const std::map<std::string, PeerId, std::less<>>& unique_names() const noexcept { return unique_names_; }
    [[nodiscard]] std::string unique_name_of(PeerId id) const;

    // Every peer that is not closing (a configuration reload recomputes their policy).
    template <class F>
    void for_each(F&& f) {
        for (auto& [id, peer] : peers_)
            if (!peer->closing()) f(*peer);
    }

    [[nodiscard]] std::size_t authenticating() const noexcept { return authenticating_; }
    // Connections that have not said Hello yet, authenticated or not: dbus-daemon's incomplete connections
    // (max_incomplete_connections, Debug.Stats's IncompleteConnections).
    [[nodiscard]] std::size_t incomplete() const noexcept { return authenticating_ + unregistered_; }
    // Connections past authentication that are not closing (Debug.Stats's ActiveConnections).
    [[nodiscard]] std::size_t active() const noexcept { return active_; }
    // Connections with a unique name (monitors excluded), in all and of one uid: what dbus-daemon's
    // max_completed_connections and max_connections_per_user count.
    [[nodiscard]] std::size_t registered() const noexcept { return unique_names_.size(); }
    // Every peer in the table, closing ones included.
    [[nodiscard]] std::size_t size() const noexcept { return peers_.size(); }
    [[nodiscard]] std::size_t registered_of(uid_t uid) const;

private:
    void leave_state(Peer& peer);

    std::unordered_map<PeerId, std::unique_ptr<Peer>> peers_;
    std::map<std::string, PeerId, std::less<>> unique_names_;
    std::unordered_map<uid_t, std::size_t> registered_by_uid_;
    std::size_t authenticating_ = 0;
    std::size_t unregistered_ = 0;
    std::size_t active_ = 0;
    PeerId next_id_ = 1;
    std::uint64_t next_unique_name_ = 0;
};

}  // namespace afbus::daemon
