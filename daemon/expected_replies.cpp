#include "expected_replies.hpp"

#include <algorithm>

#include "room.hpp"

namespace afbus::daemon {

ExpectedReplies::~ExpectedReplies() {
    for (auto& [caller, calls] : by_caller_)
        for (auto& [serial, call] : calls)
            if (call.timer) loop_.cancel_timer(call.timer);
}

void ExpectedReplies::expect(PeerId caller, std::uint32_t serial, PeerId callee, std::int64_t timeout_ms) {
    // A caller reusing a serial replaces its earlier call, as dbus-daemon's list would shadow it.
    if (auto calls = by_caller_.find(caller); calls != by_caller_.end()) {
        if (auto earlier = calls->second.find(serial); earlier != calls->second.end())
            settle(caller, serial, earlier->second.callee);
    }
    // Memory first, undone if any of it fails: out of memory, nothing is expected (room.hpp).
    std::pmr::vector<Owed>* owed = nullptr;
    std::pmr::unordered_map<std::uint32_t, Call>* calls = nullptr;
    try {
        owed = &by_callee_[callee];
        make_room(*owed);
        calls = &by_caller_[caller];
        Call& call = (*calls)[serial];
        call = Call{caller, serial, callee, 0, next_order_};
        if (timeout_ms > 0) {
            // The entry's node stays put until it is erased, which cancels this timer first; [this, &call]
            // fits std::function's own storage, where a copy of the ids would cost an allocation per call.
            call.timer = loop_.add_timer(Clock::now() + std::chrono::milliseconds(timeout_ms),
                                         [this, pending = &call] { time_out(*pending); });
        }
    } catch (...) {
        if (calls) {
            calls->erase(serial);
            if (calls->empty()) by_caller_.erase(caller);
        }
        if (owed && owed->empty()) by_callee_.erase(callee);
        throw;
    }
    ++next_order_;
    owed->push_back(Owed{caller, serial});
}

void ExpectedReplies::time_out(const Call& pending) {
    const PeerId caller = pending.caller;
    const std::uint32_t serial = pending.serial;
    auto calls = by_caller_.find(caller);
    drop_owed(pending.callee, caller, serial);
    calls->second.erase(serial);
    if (calls->second.empty()) by_caller_.erase(calls);
    on_timeout_(caller, serial);
}

bool ExpectedReplies::expected(PeerId caller, std::uint32_t serial, PeerId callee) const {
    auto calls = by_caller_.find(caller);
    if (calls == by_caller_.end()) return false;
    auto call = calls->second.find(serial);
    return call != calls->second.end() && call->second.callee == callee;
}

bool ExpectedReplies::settle(PeerId caller, std::uint32_t serial, PeerId callee) {
    auto calls = by_caller_.find(caller);
    if (calls == by_caller_.end()) return false;
    auto call = calls->second.find(serial);
    if (call == calls->second.end() || call->second.callee != callee) return false;
    if (call->second.timer) loop_.cancel_timer(call->second.timer);
    drop_owed(callee, caller, serial);
    calls->second.erase(call);
    if (calls->second.empty()) by_caller_.erase(calls);
    return true;
}

std::size_t ExpectedReplies::outstanding(PeerId caller) const {
    auto calls = by_caller_.find(caller);
    return calls == by_caller_.end() ? 0 : calls->second.size();
}

void ExpectedReplies::drop_owed(PeerId callee, PeerId caller, std::uint32_t serial) {
    auto owed = by_callee_.find(callee);
    if (owed == by_callee_.end()) return;
    auto& list = owed->second;
    if (auto it = std::find(list.begin(), list.end(), Owed{caller, serial}); it != list.end()) {
        *it = list.back();
        list.pop_back();
    }
    if (list.empty()) by_callee_.erase(owed);
}

ExpectedReplies::OwedCalls ExpectedReplies::forget(PeerId peer) {
    // Its own calls: nobody will read their replies.
    if (auto calls = by_caller_.find(peer); calls != by_caller_.end()) {
        for (auto& [serial, call] : calls->second) {
            if (call.timer) loop_.cancel_timer(call.timer);
            drop_owed(call.callee, peer, serial);
        }
        by_caller_.erase(calls);
    }
    auto owed = by_callee_.find(peer);
    if (owed == by_callee_.end()) return OwedCalls(&nodes_);
    // Taken out whole (same allocator: a move, no copy), sorted in place, and the calls erased.
    OwedCalls orphaned = std::move(owed->second);
    by_callee_.erase(owed);
    const auto order_of = [this](const Owed& o) { return by_caller_.find(o.caller)->second.find(o.serial)->second.order; };
    std::sort(orphaned.begin(), orphaned.end(), [&](const Owed& a, const Owed& b) { return order_of(a) < order_of(b); });
    for (const Owed& o : orphaned) {
        auto calls = by_caller_.find(o.caller);
        auto call = calls->second.find(o.serial);
        if (call->second.timer) loop_.cancel_timer(call->second.timer);
        calls->second.erase(call);
        if (calls->second.empty()) by_caller_.erase(calls);
    }
    return orphaned;
}

}  // namespace afbus::daemon
