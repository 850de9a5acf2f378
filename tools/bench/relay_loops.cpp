#include "relay_loops.hpp"

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
    std::size_t done = 0;
    while (done < static_cast<std::size_t>(n)) {
        iovec out{buffer + done, static_cast<std::size_t>(n) - done};
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

bool have_io_uring_relay() {
    // Built with liburing is not enough: a kernel may have io_uring disabled (sysctl
    // kernel.io_uring_disabled, seccomp in a container).
    io_uring ring;
    if (::io_uring_queue_init(2, &ring, 0) < 0) return false;
    ::io_uring_queue_exit(&ring);
    return true;
}

int relay_with_io_uring(int a, int b) {
    struct Side {
        int fd;
        int other;
        std::size_t sending;  // bytes of the send in flight from this side's buffer
        std::byte buffer[kBufferBytes];
    };
    Side sides[2] = {{a, b, 0, {}}, {b, a, 0, {}}};
    io_uring ring;
    // Task work (completing a receive) runs only when this process asks for completions, as a single
    // event loop would; falls back to the default on kernels before 6.1.
    if (::io_uring_queue_init(8, &ring, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN) < 0 &&
        ::io_uring_queue_init(8, &ring, 0) < 0)
        return 1;
    struct RingCloser {
        io_uring* ring;
        ~RingCloser() { ::io_uring_queue_exit(ring); }
    } closer{&ring};
    // user_data: the side's index for a receive, 2 + index for a send.
    auto receive = [&ring, &sides](unsigned side) {
        io_uring_sqe* sqe = ::io_uring_get_sqe(&ring);
        ::io_uring_prep_recv(sqe, sides[side].fd, sides[side].buffer, kBufferBytes, 0);
        ::io_uring_sqe_set_data64(sqe, side);
    };
    receive(0);
    receive(1);
    for (;;) {
        const int submitted = ::io_uring_submit_and_wait(&ring, 1);
        if (submitted < 0 && submitted != -EINTR) return 1;
        io_uring_cqe* cqe;
        unsigned head;
        unsigned seen = 0;
        bool closed = false;
        bool failed = false;
        io_uring_for_each_cqe(&ring, head, cqe) {
            ++seen;
            const auto tag = ::io_uring_cqe_get_data64(cqe);
            if (tag >= 2) {  // a send; short sends are not resumed: the relay carries one message at a time
                if (cqe->res != static_cast<int>(sides[tag - 2].sending)) failed = true;
                continue;
            }
            if (cqe->res == 0) closed = true;
            if (cqe->res < 0) failed = true;
            if (cqe->res <= 0) continue;
            const auto side = static_cast<unsigned>(tag);
            sides[side].sending = static_cast<std::size_t>(cqe->res);
            io_uring_sqe* send = ::io_uring_get_sqe(&ring);
            ::io_uring_prep_send(send, sides[side].other, sides[side].buffer, sides[side].sending,
                                 MSG_NOSIGNAL);
            ::io_uring_sqe_set_data64(send, 2 + side);
            send->flags |= IOSQE_IO_LINK;  // the next receive reuses the buffer once it is sent
            receive(side);
        }
        ::io_uring_cq_advance(&ring, seen);
        if (closed) return 0;
        if (failed) return 1;
    }
}

#else

bool have_io_uring_relay() {
    return false;
}

int relay_with_io_uring(int, int) {
    return 1;
}

#endif

}  // namespace afbus::bench
