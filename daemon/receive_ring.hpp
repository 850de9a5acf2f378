// ReceiveRing: receives from stream sockets inside io_uring, and waits for those receives and for the
// readiness of other fds (the event loop's watches, polled in the ring) in one system call. A message that
// reaches the daemon this way costs it one system call fewer and about 3.5 µs less per call and reply than
// epoll_wait and recvmsg (docs/performance.md, "Which half of io_uring the gain is in").
//
// Each receive is one recvmsg, as one read of the epoll loop is: its owner starts the next once it has
// taken what this one brought, so that flow control looks at a connection between any two receives, as
// it does between two reads. (A multishot receive would take everything a busy sender has queued, up to
// every buffer of the ring, before its owner could hold the sender back.)
//
// An idle socket holds no buffer: the bytes go into one of a fixed set of buffers, which the kernel
// picks only when they arrive, and which comes back once the owner has taken them. When all are out, a
// receive ends with ENOBUFS and is started again at the next wait(); the socket keeps its bytes until
// then. Passed fds arrive as control data in room of the receive's own, which the kernel writes only
// when fds come: untouched, it costs no memory.
//
// Needs Linux 6.1 (IORING_SETUP_DEFER_TASKRUN): receives then run only while wait() is in the kernel, so
// that a socket with no receive pending can be read with recvmsg between two waits, in order. open()
// fails where that or provided-buffer rings are missing, or where io_uring is not allowed
// (kernel.io_uring_disabled, seccomp); the event loop then stays on epoll alone.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <memory_resource>
#include <span>
#include <unordered_map>
#include <vector>

#include "afbus/expected.hpp"
#include "afbus/fd.hpp"
#include "node_pool.hpp"

struct io_uring;
struct io_uring_buf_ring;
struct io_uring_cqe;
struct io_uring_sqe;

namespace afbus::daemon {

class ReceiveRing {
public:
    // What one receive brought; it has ended.
    struct Received {
        std::uint64_t tag = 0;
        // Bytes received (in a buffer of the ring's, valid during the handler; or, for start_into(), at
        // the start of the owner's room), and the fds that came with them, owned; control data cut short
        // (more fds than a message may carry) is flagged.
        std::span<const std::byte> bytes;
        std::vector<Fd> fds;
        bool control_truncated = false;
        // With nothing received: 0 at the end of the stream, ECANCELED after stop(), ENOMEM when there
        // was no memory to hold the fds received (closed; the bytes are lost too), else the socket's errno.
        int error = 0;
        // Received by start_into(): `bytes` are in the owner's room.
        bool in_place = false;
    };
    using Handler = std::function<void(Received&)>;
    // A poll() has ended: `result` is the events (poll(2)'s revents), or a negative errno.
    using PollHandler = std::function<void(std::uint64_t tag, int result)>;

    // A ring with `buffers` (a power of two) buffers of kBufferBytes. The errno when io_uring cannot be
    // used here.
    static Expected<std::unique_ptr<ReceiveRing>, int> open(unsigned buffers = kBuffers);
    ~ReceiveRing();
    ReceiveRing(const ReceiveRing&) = delete;
    ReceiveRing& operator=(const ReceiveRing&) = delete;

    // One receive from `fd` (a stream socket, not owned; open until the receive has ended) under `tag`,
    // made when the next wait() finds bytes there. A tag has at most one receive at a time. Out of memory
    // for its bookkeeping, std::bad_alloc and nothing started.
    void start(int fd, std::uint64_t tag);
    // A receive into `room`, the owner's, instead of a buffer of the ring's: for the rest of a long
    // message, straight into its storage. `room` must outlive the receive, until its handler has run,
    // even past stop().
    void start_into(int fd, std::uint64_t tag, std::span<std::byte> room);
    // Asks the receive under `tag` to end: it ends with ECANCELED, or with what it received before.
    void stop(std::uint64_t tag);
    [[nodiscard]] bool receiving(std::uint64_t tag) const { return receives_.contains(tag); }

    // One wait until `fd` has any of `events` (EPOLLIN, EPOLLOUT; its errors and hang-up always) under
    // `tag`, below kMaxPollTag (the polls' tags are apart from the receives': the same number may be
    // both). Nothing is allocated.
    void poll(int fd, std::uint32_t events, std::uint64_t tag);
    // Asks the poll under `tag` to end; it ends with -ECANCELED (or with the events, if they came first).
    void stop_poll(std::uint64_t tag);
    static constexpr std::uint64_t kMaxPollTag = std::uint64_t{1} << 62;

    // Submits what is queued and waits until a receive or a poll completes or `timeout` has passed; hands
    // every completed receive to `handler` and every poll to `polled`, in the order they completed. The
    // errno of the ring when it fails.
    Expected<void, int> wait(std::chrono::milliseconds timeout, const Handler& handler,
                             const PollHandler& polled);

    // The most one receive brings (an epoll read brings up to 1 MiB: the owner reads what a receive that
    // filled its buffer left behind itself, and the rest of a long message goes to its room: start_into()).
    static constexpr std::size_t kBufferBytes = 16 * 1024;
    // How many: a receive touches one page of a buffer for a small message, and every buffer serves in
    // turn, so that more buffers would cost an idle bus memory; more connections with bytes at once than
    // buffers are received from in the next turn of the loop.
    static constexpr unsigned kBuffers = 8;

private:
    // A receive's msghdr and where its fds go, at addresses that stay put while the kernel holds them.
    struct Slot {
        msghdr header;
        iovec payload;
    };
    struct Receive {
        int fd;
        std::size_t slot;
        bool stopping;
        bool in_place;
    };
    // (A chunk's control room, 258 KiB, is beyond malloc's mmap threshold: mapped apart, and untouched
    // until fds arrive, whatever the heap around it has been used for.)
    static constexpr std::size_t kSlotsPerChunk = 256;

    ReceiveRing() = default;
    void start_receive(int fd, std::uint64_t tag, std::span<std::byte> room, bool in_place);
    void queue_receive(std::uint64_t tag, const Receive& receive, std::span<std::byte> room);
    void complete(const io_uring_cqe& cqe, const Handler& handler, const PollHandler& polled);
    void give_back(unsigned buffer_id);
    // A free slot, made if need be (std::bad_alloc when it cannot be).
    std::size_t take_slot();
    // An entry to fill, submitting what is queued when the submission queue is full.
    io_uring_sqe* next_entry();

    std::unique_ptr<io_uring> ring_;
    io_uring_buf_ring* buffer_ring_ = nullptr;
    std::size_t buffer_ring_bytes_ = 0;
    std::unique_ptr<std::byte[]> buffers_;
    unsigned buffer_count_ = 0;
    // Slots in chunks that never move; each chunk's control room apart, so that the msghdrs the daemon
    // writes share few pages and the control room is paged in only where fds arrive.
    std::vector<std::unique_ptr<Slot[]>> slots_;
    std::vector<std::unique_ptr<std::byte[]>> control_;
    std::vector<std::size_t> free_slots_;
    // (Every receive adds its entry and its completion takes it away: the nodes are recycled.)
    NodePool receive_nodes_;
    std::pmr::unordered_map<std::uint64_t, Receive> receives_{&receive_nodes_};
    // Receives that found no buffer, to be made again at the next wait().
    std::vector<std::uint64_t> out_of_buffers_;
};

}  // namespace afbus::daemon
