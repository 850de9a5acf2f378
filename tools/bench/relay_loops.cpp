#include "relay_loops.hpp"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstddef>

#if AFBUS_BENCH_IO_URING
#include <liburing.h>
#endif

#include "afbus/fd.hpp"

namespace afbus::bench {
namespace {

constexpr std::size_t kBufferBytes = 4096;

// Writes all of buffer[0, size) to `to` with sendmsg (the system call every daemon here writes with).
bool send_all(int to, const std::byte* buffer, std::size_t size) {
    std::size_t done = 0;
    while (done < size) {
        iovec out{const_cast<std::byte*>(buffer) + done, size - done};
        msghdr sent{};
        sent.msg_iov = &out;
        sent.msg_iovlen = 1;
        const ssize_t w = ::sendmsg(to, &sent, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        done += static_cast<std::size_t>(w);
    }
    return true;
}

// Moves what is queued on `from` to `to`. False when `from` was closed or either call failed.
bool forward(int from, int to, std::byte* buffer) {
    iovec in{buffer, kBufferBytes};
    msghdr received{};
    received.msg_iov = &in;
    received.msg_iovlen = 1;
    ssize_t n;
    while ((n = ::recvmsg(from, &received, MSG_DONTWAIT | MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
    }
    if (n < 0) return errno == EAGAIN;
    if (n == 0) return false;
    return send_all(to, buffer, static_cast<std::size_t>(n));
}

}  // namespace

int relay_with_epoll(int a, int b) {
    Fd epoll(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll) return 1;
    for (int fd : {a, b}) {
        epoll_event event{};
        event.events = EPOLLIN;
        event.data.fd = fd;
        if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, fd, &event) < 0) return 1;
    }
    std::byte buffer[kBufferBytes];
    epoll_event ready[2];
    for (;;) {
        const int n = ::epoll_wait(epoll.get(), ready, 2, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return 1;
        for (int i = 0; i < n; ++i) {
            const int from = ready[i].data.fd;
            if (!forward(from, from == a ? b : a, buffer)) return 0;
        }
    }
}

#if AFBUS_BENCH_IO_URING

namespace {

// A small ring, closed with its owner.
class Ring {
public:
    Ring() {
        // Task work (completing a receive) runs only when this process asks for completions, as a
        // single event loop would; falls back to the default on kernels before 6.1.
        open_ =
            ::io_uring_queue_init(8, &ring_, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN) == 0 ||
            ::io_uring_queue_init(8, &ring_, 0) == 0;
    }
    ~Ring() {
        if (open_) ::io_uring_queue_exit(&ring_);
    }
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;
    [[nodiscard]] bool open() const { return open_; }
    io_uring* get() { return &ring_; }

private:
    io_uring ring_{};
    bool open_ = false;
};

// One socket of the two, with the buffer of what was last received on it.
struct Side {
    int fd;
    int other;
    std::size_t sending = 0;  // bytes of the send in flight from the buffer
    std::byte buffer[kBufferBytes];
};

// user_data: a side's index for its receive or poll, 2 + the index for its send.
void queue_receive(Ring& ring, Side& side, unsigned tag) {
    io_uring_sqe* sqe = ::io_uring_get_sqe(ring.get());
    ::io_uring_prep_recv(sqe, side.fd, side.buffer, kBufferBytes, 0);
    ::io_uring_sqe_set_data64(sqe, tag);
}

io_uring_sqe* queue_send(Ring& ring, Side& side, unsigned tag, std::size_t size) {
    side.sending = size;
    io_uring_sqe* sqe = ::io_uring_get_sqe(ring.get());
    ::io_uring_prep_send(sqe, side.other, side.buffer, size, MSG_NOSIGNAL);
    ::io_uring_sqe_set_data64(sqe, 2 + tag);
    return sqe;
}

// What one batch of completions said.
struct Completions {
    bool closed = false;
    bool failed = false;
};

// Submits what is queued, waits for at least one completion and hands each to `handle`, then retires
// them. False when the ring itself failed.
template <typename Handle>
bool complete(Ring& ring, Completions& seen_so_far, Handle&& handle) {
    const int submitted = ::io_uring_submit_and_wait(ring.get(), 1);
    if (submitted < 0 && submitted != -EINTR) return false;
    io_uring_cqe* cqe;
    unsigned head;
    unsigned seen = 0;
    io_uring_for_each_cqe(ring.get(), head, cqe) {
        ++seen;
        handle(*cqe, seen_so_far);
    }
    ::io_uring_cq_advance(ring.get(), seen);
    return true;
}

// The exit status once a batch has said the relay is over, or -1 to go on.
int outcome(const Completions& c) {
    return c.closed ? 0 : c.failed ? 1 : -1;
}

// A send's completion (short sends are not resumed: the relays carry one message at a time).
void check_send(const io_uring_cqe& cqe, Side (&sides)[2], Completions& c) {
    if (cqe.res != static_cast<int>(sides[::io_uring_cqe_get_data64(&cqe) - 2].sending)) c.failed = true;
}

// A receive's completion: the bytes received, or 0 when the relay is over (closed, or failed).
std::size_t received(const io_uring_cqe& cqe, Completions& c) {
    if (cqe.res == 0) c.closed = true;
    if (cqe.res < 0) c.failed = true;
    return cqe.res > 0 ? static_cast<std::size_t>(cqe.res) : 0;
}

}  // namespace

bool have_io_uring_relay() {
    // Built with liburing is not enough: a kernel may have io_uring disabled (sysctl
    // kernel.io_uring_disabled, seccomp in a container).
    return Ring().open();
}

namespace {

// A receive always pending on each socket; what it brings is sent in the ring (linked to the next
// receive, which reuses the buffer once it is sent) or by sendmsg before the next receive is queued.
int relay_with_pending_receives(int a, int b, bool sends_in_ring) {
    Side sides[2] = {{a, b, 0, {}}, {b, a, 0, {}}};
    Ring ring;
    if (!ring.open()) return 1;
    queue_receive(ring, sides[0], 0);
    queue_receive(ring, sides[1], 1);
    for (;;) {
        Completions c;
        const bool ok = complete(ring, c, [&](const io_uring_cqe& cqe, Completions& seen) {
            const auto tag = static_cast<unsigned>(::io_uring_cqe_get_data64(&cqe));
            if (tag >= 2) return check_send(cqe, sides, seen);
            const std::size_t size = received(cqe, seen);
            if (size == 0) return;
            if (sends_in_ring)
                queue_send(ring, sides[tag], tag, size)->flags |= IOSQE_IO_LINK;
            else if (!send_all(sides[tag].other, sides[tag].buffer, size))
                seen.failed = true;
            queue_receive(ring, sides[tag], tag);
        });
        if (!ok) return 1;
        if (const int status = outcome(c); status >= 0) return status;
    }
}

}  // namespace

int relay_with_io_uring_peeks(int a, int b) {
    Side sides[2] = {{a, b, 0, {}}, {b, a, 0, {}}};
    Ring ring;
    if (!ring.open()) return 1;
    std::byte peeked;
    auto peek = [&](unsigned tag) {
        io_uring_sqe* sqe = ::io_uring_get_sqe(ring.get());
        ::io_uring_prep_recv(sqe, sides[tag].fd, &peeked, 1, MSG_PEEK);
        ::io_uring_sqe_set_data64(sqe, tag);
    };
    peek(0);
    peek(1);
    for (;;) {
        Completions c;
        const bool ok = complete(ring, c, [&](const io_uring_cqe& cqe, Completions& seen) {
            const auto tag = static_cast<unsigned>(::io_uring_cqe_get_data64(&cqe));
            if (received(cqe, seen) == 0) return;
            if (!forward(sides[tag].fd, sides[tag].other, sides[tag].buffer)) seen.closed = true;
            peek(tag);
        });
        if (!ok) return 1;
        if (const int status = outcome(c); status >= 0) return status;
    }
}

int relay_with_io_uring(int a, int b) {
    return relay_with_pending_receives(a, b, true);
}

int relay_with_io_uring_receives(int a, int b) {
    return relay_with_pending_receives(a, b, false);
}

int relay_with_io_uring_polls(int a, int b) {
    Side sides[2] = {{a, b, 0, {}}, {b, a, 0, {}}};
    Ring ring;
    if (!ring.open()) return 1;
    for (unsigned tag = 0; tag < 2; ++tag) {
        io_uring_sqe* sqe = ::io_uring_get_sqe(ring.get());
        ::io_uring_prep_poll_multishot(sqe, sides[tag].fd, POLLIN);
        ::io_uring_sqe_set_data64(sqe, tag);
    }
    for (;;) {
        Completions c;
        const bool ok = complete(ring, c, [&](const io_uring_cqe& cqe, Completions& seen) {
            const auto tag = static_cast<unsigned>(::io_uring_cqe_get_data64(&cqe));
            if (tag >= 2) return check_send(cqe, sides, seen);
            if (cqe.res < 0 || !(cqe.flags & IORING_CQE_F_MORE)) {
                seen.failed = true;  // the poll ended: re-arming it is not worth the code in a benchmark
                return;
            }
            Side& side = sides[tag];
            ssize_t n;
            while ((n = ::recv(side.fd, side.buffer, kBufferBytes, MSG_DONTWAIT)) < 0 && errno == EINTR) {
            }
            if (n == 0) seen.closed = true;
            if (n < 0 && errno != EAGAIN) seen.failed = true;
            if (n > 0) queue_send(ring, side, tag, static_cast<std::size_t>(n));
        });
        if (!ok) return 1;
        if (const int status = outcome(c); status >= 0) return status;
    }
}

#else

bool have_io_uring_relay() {
    return false;
}

int relay_with_io_uring(int, int) {
    return 1;
}

int relay_with_io_uring_receives(int, int) {
    return 1;
}

int relay_with_io_uring_polls(int, int) {
    return 1;
}

#endif

}  // namespace afbus::bench
