#include "expected_replies.hpp"

#include <algorithm>

namespace afbus::daemon {

ExpectedReplies::~ExpectedReplies() {
    for (auto& [caller, calls] : by_caller_)
        for (auto& [serial, call] : calls)
            if (call.timer) loop_.cancel_timer(call.timer);
}

void ExpectedReplies::expect(PeerId caller, std::uint32_t serial, PeerId callee, std::int64_t timeout_ms) {
    auto& calls = by_caller_[caller];
    auto [entry, added] = calls.try_emplace(serial);
    Call& call = entry->second;
    // A caller reusing a serial replaces its earlier call, as dbus-daemon's list would shadow it.
    if (!added) {
        if (call.timer) loop_.cancel_timer(call.timer);
        drop_owed(call.callee, caller, serial);
    }
    call = Call{caller, serial, callee, 0, next_order_++};
    if (timeout_ms > 0) {
        // The entry's node stays put until it is erased, which cancels this timer first; [this, &call] fits
        // std::function's own storage, where a copy of the ids would cost an allocation per call.
        call.timer = loop_.add_timer(Clock::now() + std::chrono::milliseconds(timeout_ms),
                                     [this, pending = &call] { time_out(*pending); });
    }
    by_callee_[callee].push_back(Owed{caller, serial});
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

std::vector<std::pair<PeerId, std::uint32_t>> ExpectedReplies::forget(PeerId peer) {
    // Its own calls: nobody will read their replies.
    if (auto calls = by_caller_.find(peer); calls != by_caller_.end()) {
        for (auto& [serial, call] : calls->second) {
            if (call.timer) loop_.cancel_timer(call.timer);
            drop_owed(call.callee, peer, serial);
        }
        by_caller_.erase(calls);
    }
    std::vector<std::pair<std::uint64_t, std::pair<PeerId, std::uint32_t>>> orphaned;
    if (auto owed = by_callee_.find(peer); owed != by_callee_.end()) {
        for (const Owed& o : owed->second) {
            auto calls = by_caller_.find(o.caller);
            auto call = calls->second.find(o.serial);
            if (call->second.timer) loop_.cancel_timer(call->second.timer);
            orphaned.push_back({call->second.order, {o.caller, o.serial}});
            calls->second.erase(call);
            if (calls->second.empty()) by_caller_.erase(calls);
        }
        by_callee_.erase(owed);
    }
    std::sort(orphaned.begin(), orphaned.end());
    std::vector<std::pair<PeerId, std::uint32_t>> out;
    out.reserve(orphaned.size());
    for (const auto& [order, call] : orphaned) out.push_back(call);
    return out;
}

}  // namespace afbus::daemon
