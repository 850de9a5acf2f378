#include "peer_table.hpp"

#include <cassert>

namespace afbus::daemon {

Peer& PeerTable::add(PeerCredentials credentials) {
    const PeerId id = next_id_++;
    auto [it, inserted] = peers_.emplace(id, std::make_unique<Peer>(id, std::move(credentials)));
    assert(inserted);
    ++authenticating_;
    return *it->second;
}

void PeerTable::authenticated(Peer& peer, std::optional<uid_t> uid, std::shared_ptr<const policy::ConnectionChains> chains) {
    assert(peer.state_ == Peer::State::Authenticating);
    --authenticating_;
    ++active_;
    ++unregistered_;
    peer.state_ = Peer::State::Unregistered;
    peer.uid_ = uid;
    // TCP peers have no kernel credentials: the uid they proved with DBUS_COOKIE_SHA1 is who they are.
    if (!peer.credentials_.from_kernel && uid) peer.credentials_.uid = *uid;
    peer.policy_ = std::move(chains);
}

const std::string& PeerTable::register_unique_name(Peer& peer) {
    assert(peer.state_ == Peer::State::Unregistered);
    // What can fail to allocate comes first, undone if a later step fails: the table is unchanged then.
    std::string name = ":1." + std::to_string(next_unique_name_);
    auto named = unique_names_.emplace(name, peer.id_).first;
    try {
        ++registered_by_uid_[peer.credentials_.uid];
    } catch (...) {
        unique_names_.erase(named);
        throw;
    }
    ++next_unique_name_;
    --unregistered_;
    peer.state_ = Peer::State::Registered;
    peer.unique_name_ = std::move(name);
    return peer.unique_name_;
}

void PeerTable::make_monitor(Peer& peer) {
    assert(peer.state_ == Peer::State::Registered);
    leave_state(peer);
    ++active_;
    peer.state_ = Peer::State::Monitor;
}

void PeerTable::close(Peer& peer) {
    if (peer.state_ == Peer::State::Closing) return;
    leave_state(peer);
    peer.state_ = Peer::State::Closing;
}

void PeerTable::leave_state(Peer& peer) {
    switch (peer.state_) {
        case Peer::State::Authenticating: --authenticating_; break;
        case Peer::State::Registered: {
            unique_names_.erase(peer.unique_name_);
            auto it = registered_by_uid_.find(peer.credentials_.uid);
            if (--it->second == 0) registered_by_uid_.erase(it);
            --active_;
            break;
        }
        case Peer::State::Unregistered:
            --unregistered_;
            --active_;
            break;
        case Peer::State::Monitor: --active_; break;
        case Peer::State::Closing: break;
    }
}

std::unique_ptr<Peer> PeerTable::remove(PeerId id) {
    auto it = peers_.find(id);
    if (it == peers_.end()) return nullptr;
    assert(it->second->closing());
    auto peer = std::move(it->second);
    peers_.erase(it);
    return peer;
}

Peer* PeerTable::find(PeerId id) const {
    auto it = peers_.find(id);
    return it == peers_.end() || it->second->closing() ? nullptr : it->second.get();
}

Peer* PeerTable::find_unique(std::string_view unique_name) const {
    auto it = unique_names_.find(unique_name);
    return it == unique_names_.end() ? nullptr : find(it->second);
}

std::string PeerTable::unique_name_of(PeerId id) const {
    auto it = peers_.find(id);
    return it == peers_.end() ? std::string() : it->second->unique_name();
}

std::size_t PeerTable::registered_of(uid_t uid) const {
    auto it = registered_by_uid_.find(uid);
    return it == registered_by_uid_.end() ? 0 : it->second;
}

}  // namespace afbus::daemon
