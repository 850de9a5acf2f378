// ExpectedReplies: the method calls the bus routed that still owe a reply, owned per caller, as
// dbus-daemon's requested_reply. A reply (return or error) passes only if its caller's call to that
// callee is outstanding; the caller's count is bounded by max_replies_per_connection; a call may time
// out (reply_timeout); when a callee leaves, each caller it owed is told NoReply. Counting a caller's
// calls and forgetting a peer cost what that peer has outstanding, never a scan of the bus.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory_resource>
#include <unordered_map>
#include <utility>
#include <vector>

#include "event_loop.hpp"
#include "name_registry.hpp"
#include "node_pool.hpp"

namespace afbus::daemon {

class ExpectedReplies {
public:
    // Called when a call's reply_timeout passes without its reply (the entry is gone by then).
    using Timeout = std::function<void(PeerId caller, std::uint32_t serial)>;

    ExpectedReplies(EventLoop& loop, Timeout on_timeout) : loop_(loop), on_timeout_(std::move(on_timeout)) {}
    ~ExpectedReplies();
    ExpectedReplies(const ExpectedReplies&) = delete;
    ExpectedReplies& operator=(const ExpectedReplies&) = delete;

    // `caller`'s call `serial` to `callee` now expects a reply, for at most `timeout_ms` (≤ 0: no limit).
    void expect(PeerId caller, std::uint32_t serial, PeerId callee, std::int64_t timeout_ms);
    // A reply from `callee` to `caller`'s call `serial`: true (and the call is settled) if it was expected.
    bool settle(PeerId caller, std::uint32_t serial, PeerId callee);
    // Whether the reply would be accepted, without settling it (the policy check comes in between).
    [[nodiscard]] bool expected(PeerId caller, std::uint32_t serial, PeerId callee) const;
    [[nodiscard]] std::size_t outstanding(PeerId caller) const;

    // A call owed a reply.
    struct Owed {
        PeerId caller;
        std::uint32_t serial;
        friend bool operator==(const Owed&, const Owed&) = default;
    };
    using OwedCalls = std::pmr::vector<Owed>;
    // `peer` is leaving: its own calls are forgotten; the calls it owed replies to are returned, in the
    // order they were made, for NoReply errors. Allocates nothing, so that a peer can always leave.
    [[nodiscard]] OwedCalls forget(PeerId peer);

private:
    struct Call {
        PeerId caller;
        std::uint32_t serial;
        PeerId callee;
        EventLoop::TimerId timer;
        std::uint64_t order;  // when it was made, for NoReply in call order
    };
    void drop_owed(PeerId callee, PeerId caller, std::uint32_t serial);

    void time_out(const Call& call);

    EventLoop& loop_;
    Timeout on_timeout_;
    // Every routed call adds to these maps and its reply takes it out again: their nodes and arrays are
    // recycled through a pool, so that a call and its reply cost no malloc in the steady state.
    NodePool nodes_;
    // caller → its outstanding calls by serial
    std::pmr::unordered_map<PeerId, std::pmr::unordered_map<std::uint32_t, Call>> by_caller_{&nodes_};
    // callee → the calls it owes a reply to
    std::pmr::unordered_map<PeerId, std::pmr::vector<Owed>> by_callee_{&nodes_};
    std::uint64_t next_order_ = 0;
};

}  // namespace afbus::daemon
