#include "event_loop.hpp"

#include <sys/epoll.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "room.hpp"

namespace afbus::daemon {

EventLoop::EventLoop() : epoll_(::epoll_create1(EPOLL_CLOEXEC)) {}

namespace {

constexpr std::uint64_t poll_tag(int fd, std::uint32_t generation) {
    return (static_cast<std::uint64_t>(generation & 0x3fffffffu) << 32) | static_cast<std::uint32_t>(fd);
}

}  // namespace

bool EventLoop::watch(int fd, std::uint32_t events, FdCallback callback) {
    // An fd is watched once, as epoll refuses a second EPOLL_CTL_ADD (refused here, before the first
    // watch's callback would be replaced).
    if (watches_.contains(fd)) {
        errno = EEXIST;
        return false;
    }
    // The memory first: out of it, nothing is registered (an fd in epoll without its callback would be
    // woken for and never served).
    std::unordered_map<int, std::shared_ptr<Watch>>::iterator it;
    try {
        auto watch = std::make_shared<Watch>(Watch{std::move(callback), events});
        // (Each watch is listed at most once; those removed while listed stay listed until the wait.)
        make_room(to_poll_, watches_.size() + 1);
        it = watches_.insert_or_assign(fd, std::move(watch)).first;
    } catch (const std::bad_alloc&) {
        errno = ENOMEM;
        return false;
    }
    if (ring_) {
        repoll(*it->second, fd);
        return true;
    }
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) < 0) {
        const int error = errno;
        watches_.erase(it);
        errno = error;
        return false;
    }
    return true;
}

std::string_view EventLoop::watch_failure(int error) noexcept {
    thread_local char text[128];
    const int n = std::snprintf(text, sizeof text, "epoll: %s", std::strerror(error));
    return {text, n < 0 ? 0 : std::min(static_cast<std::size_t>(n), sizeof text - 1)};
}

void EventLoop::modify(int fd, std::uint32_t events) {
    if (ring_) {
        auto it = watches_.find(fd);
        assert(it != watches_.end());  // as EPOLL_CTL_MOD's failure below
        if (it == watches_.end()) return;
        it->second->events = events;
        return repoll(*it->second, fd);
    }
    if (auto it = watches_.find(fd); it != watches_.end()) it->second->events = events;
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    [[maybe_unused]] const int modified = ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev);
    // EPOLL_CTL_MOD fails only for an fd that is not watched (ENOENT) or not valid (EBADF): a caller's bug.
    // Left unnoticed, the fd would keep its old events, and a connection waiting to write would stall.
    assert(modified == 0);
}

void EventLoop::unwatch(int fd) {
    auto it = watches_.find(fd);
    if (it == watches_.end()) return;
    if (!ring_)
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
    else if (it->second->polled)
        ring_->stop_poll(poll_tag(fd, it->second->generation));
    // (Listed in to_poll_, it is skipped there: the fd is looked up afresh.)
    watches_.erase(it);
}

void EventLoop::repoll(Watch& watch, int fd) {
    if (watch.listed || (watch.polled && watch.polled_events == watch.events)) return;
    watch.listed = true;
    to_poll_.push_back(fd);  // room was made by watch()
}

void EventLoop::poll_listed() {
    for (int fd : to_poll_) {
        auto it = watches_.find(fd);
        if (it == watches_.end() || !it->second->listed) continue;  // gone, or gone and watched anew
        Watch& watch = *it->second;
        watch.listed = false;
        if (watch.polled) {
            if (watch.polled_events == watch.events) continue;
            ring_->stop_poll(poll_tag(fd, watch.generation));
        }
        // (Events 0 still polls for errors and the hang-up, as epoll reports them.)
        watch.generation = next_generation_++;
        watch.polled = true;
        watch.polled_events = watch.events;
        ring_->poll(fd, watch.events, poll_tag(fd, watch.generation));
    }
    to_poll_.clear();
}

void EventLoop::on_polled(std::uint64_t tag, int result) {
    const int fd = static_cast<int>(static_cast<std::uint32_t>(tag));
    auto it = watches_.find(fd);
    if (it == watches_.end()) return;
    const std::shared_ptr<Watch> watch = it->second;
    if (!watch->polled || poll_tag(fd, watch->generation) != tag) return;  // an earlier poll's end
    watch->polled = false;
    // Polled again before the next wait, as long as it wants to be (level-triggered, as epoll).
    repoll(*watch, fd);
    if (result == -ECANCELED) return;
    const std::uint32_t events = result < 0 ? EPOLLERR : static_cast<std::uint32_t>(result);
    const std::uint32_t wanted = events & (watch->events | EPOLLERR | EPOLLHUP);
    if (wanted) watch->callback(wanted);
}

EventLoop::TimerId EventLoop::add_timer(Clock::time_point deadline, TimerCallback callback) {
    const TimerId id = next_timer_++;
    // Both or neither: out of memory, no half-registered timer is left behind.
    auto by_deadline = timers_by_deadline_.emplace(deadline, id);
    try {
        timers_.emplace(id, std::make_pair(deadline, std::move(callback)));
    } catch (...) {
        timers_by_deadline_.erase(by_deadline);
        throw;
    }
    return id;
}

void EventLoop::cancel_timer(TimerId id) {
    auto it = timers_.find(id);
    if (it == timers_.end()) return;
    auto range = timers_by_deadline_.equal_range(it->second.first);
    for (auto t = range.first; t != range.second; ++t) {
        if (t->second == id) {
            timers_by_deadline_.erase(t);
            break;
        }
    }
    timers_.erase(it);
}

Expected<void, int> EventLoop::use_receive_ring(ReceiveRing::Handler handler) {
    auto ring = ReceiveRing::open();
    if (!ring) return Unexpected(ring.error());
    try {
        to_poll_.reserve(watches_.size());
    } catch (const std::bad_alloc&) {
        return Unexpected(ENOMEM);
    }
    ring_ = std::move(*ring);
    on_received_ = std::move(handler);
    // The watches made so far move from epoll to the ring.
    for (auto& [fd, watch] : watches_) {
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
        repoll(*watch, fd);
    }
    return {};
}

void EventLoop::stop_receive_ring() noexcept {
    if (!ring_) return;
    ring_.reset();  // (its polls end with it)
    on_received_ = nullptr;
    to_poll_.clear();
    for (auto& [fd, watch] : watches_) {
        watch->polled = watch->listed = false;
        epoll_event ev{};
        ev.events = watch->events;
        ev.data.fd = fd;
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev);
    }
}

bool EventLoop::run() {
    stopping_ = false;
    while (!stopping_) {
        if (!run_once(std::chrono::hours(1))) return false;
    }
    return true;
}

bool EventLoop::run_once(std::chrono::milliseconds max_wait) {
    auto wait = max_wait;
    if (!timers_by_deadline_.empty()) {
        const auto until = std::chrono::ceil<std::chrono::milliseconds>(timers_by_deadline_.begin()->first - Clock::now());
        if (until < wait) wait = until < std::chrono::milliseconds(0) ? std::chrono::milliseconds(0) : until;
    }
    epoll_event events[64];
    int n = 0;
    if (ring_) {
        // Receives and polls, in the order they completed (each socket's bytes in order).
        poll_listed();
        auto waited = ring_->wait(wait, on_received_,
                                  [this](std::uint64_t tag, int result) { on_polled(tag, result); });
        if (!waited) {
            errno = waited.error();
            return false;
        }
    } else {
        n = ::epoll_wait(epoll_.get(), events, 64, static_cast<int>(wait.count()));
    }
    if (n < 0 && errno != EINTR) return false;
    for (int i = 0; i < n; ++i) {
        // A callback may have removed (or replaced) a later fd's watch; look each one up afresh.
        auto it = watches_.find(events[i].data.fd);
        if (it == watches_.end()) continue;
        const std::shared_ptr<Watch> watch = it->second;
        watch->callback(events[i].events);
    }
    // Timers due now, earliest first. Those the callbacks add wait for the next turn (ids only grow, so
    // they are the ones from first_new on); callbacks may cancel others, so the map is walked afresh after
    // each. Nothing here allocates: a bus short of memory still runs its timers.
    const auto now = Clock::now();
    const TimerId first_new = next_timer_;
    for (auto t = timers_by_deadline_.begin(); t != timers_by_deadline_.end() && t->first <= now;) {
        if (t->second >= first_new) {
            ++t;
            continue;
        }
        const TimerId id = t->second;
        auto it = timers_.find(id);
        TimerCallback callback = std::move(it->second.second);
        cancel_timer(id);
        callback();
        t = timers_by_deadline_.begin();
    }
    if (after_iteration_) after_iteration_();
    return true;
}

}  // namespace afbus::daemon
