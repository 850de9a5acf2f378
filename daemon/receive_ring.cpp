#include "receive_ring.hpp"

#include <liburing.h>
#include <sys/mman.h>

#include <cassert>
#include <cerrno>
#include <new>
#include <utility>

#include "transport/socket_io.hpp"

namespace afbus::daemon {
namespace {

// user_data of the entries that are not receives (the receives' tags are peer ids, from 1): polls, with
// their owner's tag below, and cancels, whose completions say nothing.
constexpr std::uint64_t kPollBit = ReceiveRing::kMaxPollTag;
constexpr std::uint64_t kStopTag = ~std::uint64_t{0};
constexpr unsigned kEntries = 256;
// Beyond this many completions at once (one per connection with bytes), the kernel keeps the rest aside
// until there is room; the ring's pages are the daemon's memory, touched in turn.
constexpr unsigned kCompletionEntries = 1024;
constexpr unsigned kBufferGroup = 0;
// Room for the fds of one message, as StreamTransport::read has.
constexpr std::size_t kControlBytes = sizeof(ScmRightsBuffer);

}  // namespace

Expected<std::unique_ptr<ReceiveRing>, int> ReceiveRing::open(unsigned buffers) {
    assert(buffers > 0 && (buffers & (buffers - 1)) == 0);
    std::unique_ptr<ReceiveRing> ring(new (std::nothrow) ReceiveRing());
    if (!ring) return Unexpected(ENOMEM);
    ring->ring_.reset(new (std::nothrow) io_uring{});
    if (!ring->ring_) return Unexpected(ENOMEM);
    io_uring_params params{};
    // DEFER_TASKRUN (6.1; it requires SINGLE_ISSUER): receives run only inside wait(), see the header.
    params.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
    params.cq_entries = kCompletionEntries;
    if (const int r = ::io_uring_queue_init_params(kEntries, ring->ring_.get(), &params); r < 0) {
        ring->ring_.reset();
        return Unexpected(-r);
    }
    // The buffer ring's entries live in page-aligned memory that the kernel reads.
    ring->buffer_ring_bytes_ = buffers * sizeof(io_uring_buf);
    void* entries =
        ::mmap(nullptr, ring->buffer_ring_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (entries == MAP_FAILED) return Unexpected(errno);
    ring->buffer_ring_ = static_cast<io_uring_buf_ring*>(entries);
    // (Not zeroed: a buffer's pages are touched only once the kernel has put bytes there.)
    ring->buffers_.reset(new (std::nothrow) std::byte[static_cast<std::size_t>(buffers) * kBufferBytes]);
    if (!ring->buffers_) return Unexpected(ENOMEM);
    ring->buffer_count_ = buffers;
    io_uring_buf_reg registration{};
    registration.ring_addr = reinterpret_cast<std::uintptr_t>(entries);
    registration.ring_entries = buffers;
    registration.bgid = kBufferGroup;
    if (const int r = ::io_uring_register_buf_ring(ring->ring_.get(), &registration, 0); r < 0)
        return Unexpected(-r);
    ::io_uring_buf_ring_init(ring->buffer_ring_);
    for (unsigned id = 0; id < buffers; ++id)
        ::io_uring_buf_ring_add(ring->buffer_ring_, ring->buffers_.get() + id * kBufferBytes, kBufferBytes,
                                id, ::io_uring_buf_ring_mask(buffers), static_cast<int>(id));
    ::io_uring_buf_ring_advance(ring->buffer_ring_, static_cast<int>(buffers));
    return ring;
}

ReceiveRing::~ReceiveRing() {
    if (ring_) ::io_uring_queue_exit(ring_.get());  // cancels what is pending, and lets go of the sockets
    if (buffer_ring_) ::munmap(buffer_ring_, buffer_ring_bytes_);
}

io_uring_sqe* ReceiveRing::next_entry() {
    io_uring_sqe* entry = ::io_uring_get_sqe(ring_.get());
    if (entry) return entry;
    // Full: submitting empties it (without waiting: receives still run only in wait()).
    ::io_uring_submit(ring_.get());
    entry = ::io_uring_get_sqe(ring_.get());
    assert(entry);  // the kernel took every entry of the submission queue
    return entry;
}

std::size_t ReceiveRing::take_slot() {
    if (free_slots_.empty()) {
        // All or nothing: the chunk's slots are listed free only once both parts are made.
        auto slots = std::make_unique<Slot[]>(kSlotsPerChunk);
        auto control = std::make_unique_for_overwrite<std::byte[]>(kSlotsPerChunk * kControlBytes);
        slots_.reserve(slots_.size() + 1);
        control_.reserve(control_.size() + 1);
        free_slots_.reserve(kSlotsPerChunk);
        const std::size_t first = slots_.size() * kSlotsPerChunk;
        slots_.push_back(std::move(slots));
        control_.push_back(std::move(control));
        for (std::size_t i = kSlotsPerChunk; i-- > 0;) free_slots_.push_back(first + i);
    }
    const std::size_t slot = free_slots_.back();
    free_slots_.pop_back();
    return slot;
}

void ReceiveRing::queue_receive(std::uint64_t tag, const Receive& receive, std::span<std::byte> room) {
    Slot& slot = slots_[receive.slot / kSlotsPerChunk][receive.slot % kSlotsPerChunk];
    // Without a room of the owner's, the kernel picks one of the ring's buffers.
    if (receive.in_place)
        slot.payload = {room.data(), room.size()};
    else
        slot.payload = {nullptr, kBufferBytes};
    slot.header = {};
    slot.header.msg_iov = &slot.payload;
    slot.header.msg_iovlen = 1;
    slot.header.msg_control =
        control_[receive.slot / kSlotsPerChunk].get() + (receive.slot % kSlotsPerChunk) * kControlBytes;
    slot.header.msg_controllen = kControlBytes;
    io_uring_sqe* entry = next_entry();
    ::io_uring_prep_recvmsg(entry, receive.fd, &slot.header, MSG_CMSG_CLOEXEC);
    if (!receive.in_place) {
        entry->flags |= IOSQE_BUFFER_SELECT;
        entry->buf_group = kBufferGroup;
    }
    ::io_uring_sqe_set_data64(entry, tag);
}

void ReceiveRing::start(int fd, std::uint64_t tag) {
    start_receive(fd, tag, {}, false);
}

void ReceiveRing::start_into(int fd, std::uint64_t tag, std::span<std::byte> room) {
    assert(!room.empty());
    start_receive(fd, tag, room, true);
}

void ReceiveRing::start_receive(int fd, std::uint64_t tag, std::span<std::byte> room, bool in_place) {
    assert(tag < kPollBit && !receives_.contains(tag));
    // Room first for the receive's retry after a lack of buffers: complete() cannot fail. (Doubled: an
    // exact reserve() would reallocate at every new connection.)
    if (const std::size_t needed = receives_.size() + 1; !in_place && out_of_buffers_.capacity() < needed)
        out_of_buffers_.reserve(2 * needed);
    const std::size_t slot = take_slot();
    try {
        const Receive& receive = receives_.emplace(tag, Receive{fd, slot, false, in_place}).first->second;
        queue_receive(tag, receive, room);
    } catch (...) {
        free_slots_.push_back(slot);  // (room was made for it when its chunk was)
        throw;
    }
}

void ReceiveRing::stop(std::uint64_t tag) {
    auto it = receives_.find(tag);
    if (it == receives_.end() || it->second.stopping) return;
    it->second.stopping = true;
    // Submitted with the next wait(), which the receive's end waits for anyway.
    io_uring_sqe* entry = next_entry();
    ::io_uring_prep_cancel64(entry, tag, 0);
    ::io_uring_sqe_set_data64(entry, kStopTag);
}

void ReceiveRing::poll(int fd, std::uint32_t events, std::uint64_t tag) {
    assert(tag < kMaxPollTag);
    io_uring_sqe* entry = next_entry();
    ::io_uring_prep_poll_add(entry, fd, events);
    ::io_uring_sqe_set_data64(entry, tag | kPollBit);
}

void ReceiveRing::stop_poll(std::uint64_t tag) {
    io_uring_sqe* entry = next_entry();
    ::io_uring_prep_poll_remove(entry, tag | kPollBit);
    ::io_uring_sqe_set_data64(entry, kStopTag);
}

void ReceiveRing::give_back(unsigned buffer_id) {
    ::io_uring_buf_ring_add(buffer_ring_, buffers_.get() + buffer_id * kBufferBytes, kBufferBytes, buffer_id,
                            ::io_uring_buf_ring_mask(buffer_count_), 0);
    ::io_uring_buf_ring_advance(buffer_ring_, 1);
}

Expected<void, int> ReceiveRing::wait(std::chrono::milliseconds timeout, const Handler& handler,
                                      const PollHandler& polled) {
    // Receives that found no buffer are made again: the buffers have come back since. One stopped
    // meanwhile has nothing pending in the kernel: it ends here.
    // (By index, and cleared, not swapped: it keeps the room start() made. The handler below starts and
    // stops receives, which leave it alone.)
    for (std::size_t i = 0; i < out_of_buffers_.size(); ++i) {
        const std::uint64_t tag = out_of_buffers_[i];
        auto it = receives_.find(tag);
        if (it == receives_.end()) continue;
        if (!it->second.stopping) {
            queue_receive(tag, it->second, {});
            continue;
        }
        free_slots_.push_back(it->second.slot);
        receives_.erase(it);
        Received ended;
        ended.tag = tag;
        ended.error = ECANCELED;
        handler(ended);
    }
    out_of_buffers_.clear();
    __kernel_timespec wait_for{};
    wait_for.tv_sec = timeout.count() / 1000;
    wait_for.tv_nsec = (timeout.count() % 1000) * 1'000'000;
    io_uring_cqe* first = nullptr;
    const int waited = ::io_uring_submit_and_wait_timeout(ring_.get(), &first, 1, &wait_for, nullptr);
    if (waited < 0 && waited != -ETIME && waited != -EINTR && waited != -EAGAIN && waited != -EBUSY)
        return Unexpected(-waited);
    // One at a time: a handler may queue entries (which may submit), and what they make comes after.
    io_uring_cqe* cqe = nullptr;
    while (::io_uring_peek_cqe(ring_.get(), &cqe) == 0) {
        const io_uring_cqe copy = *cqe;
        ::io_uring_cqe_seen(ring_.get(), cqe);
        complete(copy, handler, polled);
    }
    return {};
}

void ReceiveRing::complete(const io_uring_cqe& cqe, const Handler& handler, const PollHandler& polled) {
    const std::uint64_t tag = ::io_uring_cqe_get_data64(&cqe);
    if (tag == kStopTag) return;
    if (tag & kPollBit) return polled(tag & ~kPollBit, cqe.res);
    auto it = receives_.find(tag);
    assert(it != receives_.end());
    const Receive receive = it->second;
    if (cqe.res == -ENOBUFS && !receive.stopping && !receive.in_place) {
        out_of_buffers_.push_back(tag);  // (room was made by start())
        return;
    }
    // The receive has ended: its owner may start the next one from the handler.
    receives_.erase(it);
    free_slots_.push_back(receive.slot);
    Received received;
    received.tag = tag;
    const bool with_buffer = cqe.flags & IORING_CQE_F_BUFFER;
    const unsigned buffer_id = cqe.flags >> IORING_CQE_BUFFER_SHIFT;
    if (cqe.res > 0) {
        Slot& slot = slots_[receive.slot / kSlotsPerChunk][receive.slot % kSlotsPerChunk];
        // The fds first, owned at once: whatever happens next, none is left open. (Out of memory to
        // hold them, they are closed, and the message they came with has lost them.)
        if (!take_fds(slot.header, received.fds)) received.error = ENOMEM;
        received.control_truncated = slot.header.msg_flags & MSG_CTRUNC;
        if (received.error != ENOMEM && with_buffer)
            received.bytes = {buffers_.get() + buffer_id * kBufferBytes, static_cast<std::size_t>(cqe.res)};
        else if (received.error != ENOMEM && receive.in_place)
            received.bytes = {static_cast<const std::byte*>(slot.payload.iov_base),
                              static_cast<std::size_t>(cqe.res)};
        received.in_place = receive.in_place;
    } else {
        // (Stopped, it ends as asked, whether the cancel or the lack of a buffer came first.)
        const bool as_asked = receive.stopping && (cqe.res == -ECANCELED || cqe.res == -ENOBUFS);
        received.error = as_asked ? ECANCELED : -cqe.res;
    }
    handler(received);
    if (with_buffer) give_back(buffer_id);
}

}  // namespace afbus::daemon
