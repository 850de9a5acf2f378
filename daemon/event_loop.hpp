// EventLoop: single-threaded epoll loop with fd watches and timers. Callbacks may add or remove watches
// and timers (including their own) while the loop runs. With a ReceiveRing (use_receive_ring()), the
// watches are polled in the ring instead of epoll, level-triggered as epoll's are: one poll per watch at a
// time, made again after each event for as long as the watch wants events. The changes a turn of the loop
// makes to its watches then cost no system call of their own: they go with the ring's next wait, and a
// watch added and removed in the same turn is never polled at all.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <memory_resource>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "afbus/expected.hpp"
#include "afbus/fd.hpp"
#include "node_pool.hpp"
#include "receive_ring.hpp"

namespace afbus::daemon {

using Clock = std::chrono::steady_clock;

class EventLoop {
public:
    using FdCallback = std::function<void(std::uint32_t epoll_events)>;
    using TimerCallback = std::function<void()>;
    using TimerId = std::uint64_t;

    EventLoop();

    // Watches `fd` (not owned) for `events` (EPOLLIN, EPOLLOUT, ...). Returns false with errno on failure
    // (ENOMEM when there was no memory for the watch: nothing is registered then; EEXIST when `fd` is
    // watched already: that watch stays as it was).
    bool watch(int fd, std::uint32_t events, FdCallback callback);
    // Why watch() failed with `error`, for a log line ("epoll: …"). Allocates nothing (one buffer per
    // thread, valid until the next call): the failure is often for want of memory.
    [[nodiscard]] static std::string_view watch_failure(int error) noexcept;
    // Changes the events of a watched fd. It cannot fail for a watched fd (the kernel allocates nothing
    // for it): a failure is a programming error, and asserts.
    void modify(int fd, std::uint32_t events);
    // Stops watching `fd`. Its callback is not called again, though with a ring the kernel may hold the
    // fd's file until the next wait (a socket that is to end at once is shut down by its owner).
    void unwatch(int fd);

    TimerId add_timer(Clock::time_point deadline, TimerCallback callback);
    void cancel_timer(TimerId id);

    // Runs until stop(); returns false if epoll itself failed.
    bool run();
    // One iteration: waits at most `max_wait` for events or timers, then handles them.
    bool run_once(std::chrono::milliseconds max_wait);
    void stop() { stopping_ = true; }
    // Runs after every iteration's events and timers (the bus flushes its output queues there, so that
    // everything a batch of input produced for one peer leaves in one write).
    void set_after_iteration(std::function<void()> hook) { after_iteration_ = std::move(hook); }

    // From now on the loop waits in a ReceiveRing (receive_ring.hpp), with the watches above polled
    // there, so that its owner can receive from sockets there; `handler` gets what they bring. The errno
    // where io_uring cannot be used here, or ENOMEM: the loop then goes on with epoll alone.
    Expected<void, int> use_receive_ring(ReceiveRing::Handler handler);
    // Back to epoll alone: the ring is closed, and what it was receiving ends unseen. Its owner calls
    // this before the memory its receives write to, or its handler, goes away. (Out of memory for the
    // watches' epoll registrations, those are lost: this is for the end of the owner's life.)
    void stop_receive_ring() noexcept;
    // The ring, once use_receive_ring() succeeded.
    [[nodiscard]] ReceiveRing* receive_ring() const noexcept { return ring_.get(); }

private:
    struct Watch {
        FdCallback callback;
        std::uint32_t events = 0;
        // With a ring: the poll pending for it (its tag's generation, and the events it waits for), and
        // whether it is listed in to_poll_.
        bool polled = false;
        std::uint32_t polled_events = 0;
        std::uint32_t generation = 0;
        bool listed = false;
    };
    // With a ring: list the watch, to be polled (again) before the next wait.
    void repoll(Watch& watch, int fd);
    void poll_listed();
    void on_polled(std::uint64_t tag, int result);
    Fd epoll_;
    std::unordered_map<int, std::shared_ptr<Watch>> watches_;
    // Timers come and go with every call that has a reply_timeout and every connection (auth_timeout):
    // their nodes are recycled through a pool instead of costing two mallocs and two frees each.
    NodePool timer_nodes_;
    std::pmr::multimap<Clock::time_point, TimerId> timers_by_deadline_{&timer_nodes_};
    std::pmr::unordered_map<TimerId, std::pair<Clock::time_point, TimerCallback>> timers_{&timer_nodes_};
    TimerId next_timer_ = 1;
    bool stopping_ = false;
    std::function<void()> after_iteration_;
    std::unique_ptr<ReceiveRing> ring_;
    ReceiveRing::Handler on_received_;
    // Watches whose poll is to be made or changed; room for every watch is kept.
    std::vector<int> to_poll_;
    // A poll's tag is its fd and this count at the time: the end of a poll that was replaced, or of a
    // watch that is gone, is not taken for its successor's.
    std::uint32_t next_generation_ = 0;
};

}  // namespace afbus::daemon
