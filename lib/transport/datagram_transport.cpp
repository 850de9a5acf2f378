#include "afbus/datagram_transport.hpp"

#include <linux/af_bus.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <utility>

#include "afbus/decoder.hpp"
#include "transport/socket_io.hpp"

namespace afbus {
namespace {

// The read buffer is kept between reads up to this size; a larger datagram gets a buffer of its own
// that is freed right after, so that one big message does not pin its memory.
constexpr std::size_t kKeptBufferBytes = 64 * 1024;

TransportError corrupt(WireError e) {
    return {TransportError::Kind::Corrupt, 0, e};
}

// Control data of a received datagram: its fds, and with BUS_RECV_QUEUED the count of those behind it.
struct ReceiveControl {
    alignas(cmsghdr) char bytes[CMSG_SPACE(sizeof(int) * kMaxMessageUnixFds) +
                                CMSG_SPACE(sizeof(std::uint32_t))];
};
// ... of one without fds.
struct CountControl {
    alignas(cmsghdr) char bytes[CMSG_SPACE(sizeof(std::uint32_t))];
};

// SCM_BUS_QUEUED in a received datagram's control data: how many datagrams were queued behind it.
std::optional<std::uint32_t> queued_behind(msghdr& msg) {
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_BUS || c->cmsg_type != SCM_BUS_QUEUED ||
            c->cmsg_len != CMSG_LEN(sizeof(std::uint32_t)))
            continue;
        std::uint32_t behind;
        std::memcpy(&behind, CMSG_DATA(c), sizeof behind);
        return behind;
    }
    return std::nullopt;
}

// One received datagram's header, control data and source address: what one recvmsg() fills.
struct OneDatagram {
    iovec iov{};
    ReceiveControl control;
    sockaddr_bus from{};
    msghdr msg{};
};

// Receives one datagram into `into` (fds close-on-exec): recvmsg's result, errno set when it failed; `d`
// holds the rest. Now: never blocks, retried on EINTR. Waiting: blocks as ReadStart says, and a signal
// ends it with EINTR.
ssize_t receive_datagram(int socket, std::span<std::byte> into, OneDatagram& d,
                         ReadStart start = ReadStart::Now) {
    d.iov = {into.data(), into.size()};
    d.msg = msghdr{};
    d.msg.msg_name = &d.from;
    d.msg.msg_namelen = sizeof d.from;
    d.msg.msg_iov = &d.iov;
    d.msg.msg_iovlen = 1;
    d.msg.msg_control = d.control.bytes;
    d.msg.msg_controllen = sizeof d.control.bytes;
    if (start == ReadStart::Waiting) return ::recvmsg(socket, &d.msg, MSG_CMSG_CLOEXEC);
    ssize_t n;
    do n = ::recvmsg(socket, &d.msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n;
}

// The sender's address recvmsg put in `msg`, if it gave one (AF_UNIX stand-ins do not).
std::optional<std::uint64_t> source_of(const msghdr& msg, const sockaddr_bus& from) {
    if (msg.msg_namelen < offsetof(sockaddr_bus, sbus_path)) return std::nullopt;
    return from.sbus_addr.s_addr;
}

// The REPLY_SERIAL and DESTINATION header fields of a whole message, read in place into `skipped` (no
// allocation: for one there was no memory to parse); left as they were (none) where the header cannot be
// read.
void header_fields_in_place(std::span<const std::byte> message, SkippedMessage& skipped) noexcept {
    constexpr std::uint8_t kDestinationField = 6;
    constexpr std::uint8_t kReplySerialField = 5;
    Decoder d(message, static_cast<Endian>(message[0]), 12);
    std::uint32_t fields_length = 0;
    if (!d.read_u32(fields_length) || fields_length > d.remaining()) return;
    const std::size_t end = d.pos() + fields_length;
    std::uint32_t reply_serial = 0;
    std::optional<std::string_view> destination;
    while (d.pos() < end) {
        std::uint8_t code = 0;
        std::string_view signature;
        if (!d.align(8) || !d.read_u8(code) || !d.read_signature(signature) || signature.size() != 1) return;
        std::string_view text;
        std::uint32_t number = 0;
        switch (signature[0]) {
            case 'u':
                if (!d.read_u32(number)) return;
                if (code == kReplySerialField) reply_serial = number;
                break;
            case 's':
            case 'o':
                if (!d.read_string(text)) return;
                if (code == kDestinationField) destination = text;
                break;
            case 'g':
                if (!d.read_signature(text)) return;
                break;
            default:
                return;  // no other type is a header field's
        }
    }
    skipped.reply_serial = reply_serial;
    if (destination) skipped.keep_destination(*destination);
}

// One whole read takes a datagram of up to this size into a buffer every connection of the thread shares
// (the message copies out what it keeps); a longer one stays queued for receive_batch.
constexpr std::size_t kWholeReadBytes = 64 * 1024;

}  // namespace

bool carries_a_socket_af_bus_refuses(const Message& message, int af_bus_family) {
    for (const Fd& fd : message.fds()) {
        int domain = 0;
        socklen_t length = sizeof domain;
        if (::getsockopt(fd.get(), SOL_SOCKET, SO_DOMAIN, &domain, &length) == 0 &&
            (domain == AF_UNIX || domain == af_bus_family))
            return true;
    }
    return false;
}

DatagramTransport::DatagramTransport(Fd socket, int family) : socket_(std::move(socket)), family_(family) {
    // AF_UNIX and an older af_bus.ko refuse the option: reads then start with BUS_GET_QUEUED or a peek.
    const int flags = BUS_RECV_WHOLE | BUS_RECV_QUEUED;
    whole_reads_ = ::setsockopt(socket_.get(), SOL_BUS, BUS_SET_RECV_FLAGS, &flags, sizeof flags) == 0;
}

bool DatagramTransport::refuses_one_message(int error_number) noexcept {
    switch (error_number) {
        case EPERM:
        case EACCES:
        case EDQUOT:
        case EBADMSG:
        case EINVAL:
        case EMSGSIZE:
        case ETOOMANYREFS:
        case EHOSTUNREACH:
        case EXFULL:
        case ENOBUFS:
            return true;
        default:
            return false;
    }
}

Expected<std::optional<std::size_t>, TransportError> DatagramTransport::receive_one(
    std::vector<Fd>& fds, std::optional<std::uint64_t>& source) {
    // The length first (MSG_PEEK | MSG_TRUNC returns the whole datagram's length on AF_BUS and AF_UNIX
    // alike), so that the datagram is never truncated: a SEQPACKET read shorter than the datagram
    // discards the rest. Two system calls per message; the peek copies no bytes and installs no fds.
    ssize_t length;
    do length = ::recv(socket_.get(), nullptr, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
    while (length < 0 && errno == EINTR);
    if (length < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return std::optional<std::size_t>{};
        return Unexpected(transport_error_from_errno(errno));
    }
    // 0 is end of file. (An empty datagram reads the same; no D-Bus peer sends one, and af_bus_dbus.ko
    // refuses it as malformed.)
    if (length == 0) return Unexpected(TransportError{TransportError::Kind::Closed});
    // Out of memory before the datagram is taken: it stays queued, to be read later.
    if (!make_room(static_cast<std::size_t>(length)))
        return Unexpected(TransportError{TransportError::Kind::Io, ENOMEM});

    OneDatagram d;
    const std::span<std::byte> into(buffer_.data(), static_cast<std::size_t>(length));
    const ssize_t n = receive_datagram(socket_.get(), into, d);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return std::optional<std::size_t>{};
        return Unexpected(transport_error_from_errno(errno));
    }
    const bool kept_fds = take_fds(d.msg, fds);
    if (n == 0) return Unexpected(TransportError{TransportError::Kind::Closed});
    if (d.msg.msg_flags & MSG_CTRUNC) return Unexpected(corrupt(WireError::TooManyFds));
    if (!kept_fds) {
        note_skipped(into.first(static_cast<std::size_t>(n)), source_of(d.msg, d.from));
        return std::optional<std::size_t>(std::size_t{0});  // taken, as nothing
    }
    // Only one reader, so the datagram is the one peeked at; a longer one would be cut, and a cut message
    // is a corrupt one.
    if (d.msg.msg_flags & MSG_TRUNC) return Unexpected(corrupt(WireError::Truncated));
    source = source_of(d.msg, d.from);
    return std::optional<std::size_t>(static_cast<std::size_t>(n));
}

Expected<DatagramTransport::WholeRead, TransportError> DatagramTransport::receive_whole(ReadStart start) {
    thread_local const std::unique_ptr<std::byte[]> buffer =
        std::make_unique_for_overwrite<std::byte[]>(kWholeReadBytes);
    OneDatagram d;
    const ssize_t n =
        receive_datagram(socket_.get(), std::span<std::byte>(buffer.get(), kWholeReadBytes), d, start);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return WholeRead{};
        if (errno == EMSGSIZE) return WholeRead{.too_long = true};
        return Unexpected(transport_error_from_errno(errno));
    }
    std::vector<Fd> fds;
    const bool kept_fds = take_fds(d.msg, fds);
    // 0 is end of file, as in receive_one.
    if (n == 0) return Unexpected(TransportError{TransportError::Kind::Closed});
    const auto behind = queued_behind(d.msg);
    if (d.msg.msg_flags & MSG_CTRUNC) {
        broken_ = corrupt(WireError::TooManyFds);
    } else if ((d.msg.msg_flags & MSG_TRUNC) || !behind) {
        broken_ = corrupt(WireError::Truncated);  // not possible with the flags the socket took
    } else if (!kept_fds) {
        note_skipped(std::span<const std::byte>(buffer.get(), static_cast<std::size_t>(n)),
                     source_of(d.msg, d.from));
    } else {
        take(std::span<const std::byte>(buffer.get(), static_cast<std::size_t>(n)), std::move(fds),
             source_of(d.msg, d.from));
    }
    return WholeRead{.bytes = static_cast<std::size_t>(n), .drained = behind == 0u};
}

namespace {

// The scratch space of one recvmmsg(), about 20 KiB, one per thread (as SendBatch below).
struct ReceiveBatch {
    std::array<bus_queued, DatagramTransport::kReceiveBatch> queued;
    std::array<mmsghdr, DatagramTransport::kReceiveBatch> headers;
    std::array<iovec, DatagramTransport::kReceiveBatch> iovecs;
    std::array<sockaddr_bus, DatagramTransport::kReceiveBatch> addresses;
    std::array<ReceiveControl, DatagramTransport::kReceiveBatchWithFds> controls;
    // Datagrams without fds, for SCM_BUS_QUEUED where the socket took BUS_RECV_QUEUED.
    std::array<CountControl, DatagramTransport::kReceiveBatch> counts;
};

}  // namespace

Expected<DatagramTransport::BatchRead, TransportError> DatagramTransport::receive_batch(std::size_t budget) {
    thread_local ReceiveBatch b;
    socklen_t queued_bytes = sizeof b.queued;
    if (::getsockopt(socket_.get(), SOL_BUS, BUS_GET_QUEUED, b.queued.data(), &queued_bytes) < 0) {
        // Not AF_BUS, or an af_bus.ko without the option: peek at each datagram instead, from now on.
        // Any other failure (EINTR, ENOMEM) is this read's only: it peeks, and the next one asks again.
        if (errno == ENOPROTOOPT || errno == EOPNOTSUPP || errno == EINVAL) batched_reads_ = false;
        return BatchRead{};
    }
    const std::size_t queued = queued_bytes / sizeof(bus_queued);

    // Every queued datagram that fits: the budget (at least one datagram), the scratch space, and one
    // buffer that is kept afterwards (a larger single datagram gets one of its own, as in receive_one).
    std::size_t count = 0, bytes = 0, with_fds = 0;
    for (; count < queued; ++count) {
        const bus_queued& q = b.queued[count];
        // An empty datagram reads as end of file: receive_one decides what it is.
        if (q.len == 0) break;
        if (count > 0 && (bytes + q.len > std::min(budget, kKeptBufferBytes) ||
                          (q.nfds > 0 && with_fds == kReceiveBatchWithFds)))
            break;
        // More fds than a message may carry cannot be a D-Bus message: read it alone, so that the
        // control data is cut and the datagram reported corrupt (receive_one).
        if (q.nfds > kMaxMessageUnixFds) {
            break;
        }
        bytes += q.len;
        if (q.nfds > 0) ++with_fds;
    }
    if (count == 0) return BatchRead{};
    // Out of memory before the datagrams are taken: they stay queued, to be read later.
    if (!make_room(bytes)) return Unexpected(TransportError{TransportError::Kind::Io, ENOMEM});
    std::size_t offset = 0, control = 0;
    for (std::size_t i = 0; i < count; ++i) {
        b.iovecs[i] = {buffer_.data() + offset, b.queued[i].len};
        offset += b.queued[i].len;
        msghdr& msg = b.headers[i].msg_hdr;
        msg = msghdr{};
        msg.msg_name = &b.addresses[i];
        msg.msg_namelen = sizeof b.addresses[i];
        msg.msg_iov = &b.iovecs[i];
        msg.msg_iovlen = 1;
        if (b.queued[i].nfds > 0) {
            msg.msg_control = b.controls[control++].bytes;
            msg.msg_controllen = sizeof(ReceiveControl::bytes);
        } else if (whole_reads_) {
            msg.msg_control = b.counts[i].bytes;
            msg.msg_controllen = sizeof(CountControl::bytes);
        }
        b.headers[i].msg_len = 0;
    }
    int n;
    do n = ::recvmmsg(socket_.get(), b.headers.data(), static_cast<unsigned>(count),
                      MSG_CMSG_CLOEXEC | MSG_DONTWAIT, nullptr);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        // Another reader took them (never ours: one reader per connection); receive_one looks again.
        if (errno == EAGAIN || errno == EWOULDBLOCK) return BatchRead{};
        return Unexpected(transport_error_from_errno(errno));
    }
    BatchRead result;
    // Without counts: drained when it read all there was, and the snapshot held all there was.
    result.drained = static_cast<std::size_t>(n) == queued && queued < b.queued.size();
    offset = 0;
    for (int i = 0; i < n; ++i) {
        msghdr& msg = b.headers[i].msg_hdr;
        // Every datagram's fds are owned at once, those after a bad datagram too (they close with it).
        std::vector<Fd> fds;
        const bool kept_fds = take_fds(msg, fds);
        const std::size_t length = b.headers[i].msg_len;
        const std::size_t start = offset;
        offset += b.queued[i].len;
        result.bytes += length;
        // The count the kernel gave with the last one read is exact, the snapshot only a lower bound.
        if (i == n - 1 && whole_reads_) result.drained = queued_behind(msg) == 0u;
        if (broken_) continue;
        // Cut data or fds: the datagram is not the one BUS_GET_QUEUED described, or not one message.
        if (msg.msg_flags & MSG_CTRUNC) {
            broken_ = corrupt(WireError::TooManyFds);
        } else if ((msg.msg_flags & MSG_TRUNC) || length != b.queued[i].len) {
            broken_ = corrupt(WireError::Truncated);
        } else if (!kept_fds) {
            note_skipped(std::span<const std::byte>(buffer_.data() + start, length),
                         source_of(msg, b.addresses[i]));
        } else {
            take(std::span<const std::byte>(buffer_.data() + start, length), std::move(fds),
                 source_of(msg, b.addresses[i]));
        }
    }
    if (buffer_.size() > kKeptBufferBytes) std::vector<std::byte>().swap(buffer_);
    result.messages = static_cast<std::size_t>(n);
    return result;
}

bool DatagramTransport::make_room(std::size_t bytes) noexcept {
    if (buffer_.size() >= bytes) return true;
    try {
        buffer_.resize(bytes);
        return true;
    } catch (const std::bad_alloc&) {
        return false;
    }
}

bool DatagramTransport::take(std::span<const std::byte> datagram, std::vector<Fd> fds,
                             std::optional<std::uint64_t> source) {
    if (!fds.empty() && !unix_fds_) {
        broken_ = TransportError{TransportError::Kind::FdsNotAllowed};
        return false;
    }
    // Exactly one valid message per datagram: parse() refuses a short one (Truncated) and trailing
    // bytes (TrailingBytes).
    const std::size_t received_fds = fds.size();
    try {
        auto message = Message::parse(datagram, std::move(fds));
        if (!message) {
            broken_ = corrupt(message.error());
            return false;
        }
        // The fds of a message travel in its datagram, all of them and no others.
        if (message->unix_fds() != received_fds) {
            broken_ = corrupt(WireError::TooManyFds);
            return false;
        }
        received_.push_back({std::move(*message), source});
    } catch (const std::bad_alloc&) {
        // No memory for the message (or for its place in the queue): it has left the kernel, and is
        // lost with its fds; what its fixed header says is kept, for its sender's sake.
        note_skipped(datagram, source);
        return !broken_;
    }
    ++taken_;
    return true;
}

void DatagramTransport::note_skipped(std::span<const std::byte> datagram,
                                     std::optional<std::uint64_t> source) noexcept {
    if (datagram.size() < kFixedHeaderLength) {
        broken_ = corrupt(WireError::Truncated);
        return;
    }
    const std::span<const std::byte, kFixedHeaderLength> fixed(datagram.data(), kFixedHeaderLength);
    // As the stream framer's skip (MessageFramer::skip_message): a header that says nothing usable is
    // a corrupt datagram, out of memory or not.
    if (!Message::frame_length(fixed) || datagram[1] == std::byte{0}) {
        broken_ = corrupt(WireError::Truncated);
        return;
    }
    if (skip_count_ == kMaxSkips) {
        broken_ = TransportError{TransportError::Kind::NoMemory, ENOMEM};
        return;
    }
    SkippedMessage skipped;
    skipped.type = static_cast<MessageType>(datagram[1]);
    skipped.flags = static_cast<std::uint8_t>(datagram[2]);
    Decoder(fixed, static_cast<Endian>(datagram[0]), 8).read_u32(skipped.serial);
    skipped.length = datagram.size();
    header_fields_in_place(datagram, skipped);
    skipped.source = source.value_or(0);
    if (skipped.serial == 0) {
        broken_ = corrupt(WireError::Truncated);
        return;
    }
    skips_[skip_count_++] = Skip{skipped, taken_};
}

Expected<std::size_t, TransportError> DatagramTransport::read(std::size_t budget, ReadStart start) {
    assert(start == ReadStart::Now || can_wait_in_read());
    std::size_t total = 0;
    bool whole = can_wait_in_read();
    while (total < budget && !broken_) {
        // One datagram in one system call, where the kernel keeps what does not fit and says what is
        // behind it (AF_BUS with BUS_SET_RECV_FLAGS): a reader that gets one message at a time (a call
        // and its reply) reads each with one recvmsg().
        if (whole) {
            auto one = receive_whole(std::exchange(start, ReadStart::Now));
            if (!one) {
                if (total > 0) break;
                return Unexpected(one.error());
            }
            if (one->bytes == 0 && !one->too_long) break;  // nothing queued
            total += one->bytes;
            if (one->drained) break;
            // More is queued (or this one is longer than a whole read takes): read it in batches.
            whole = false;
            if (one->bytes > 0) bursts_ = true;
            continue;
        }
        // Many datagrams per system call where the socket says what is queued (AF_BUS), else two system
        // calls per datagram (receive_one). An empty queue goes to receive_one too: it tells EAGAIN from
        // end of file.
        if (batched_reads_) {
            auto batch = receive_batch(budget - total);
            if (!batch) {
                if (total > 0) break;
                return Unexpected(batch.error());
            }
            if (batch->bytes > 0) {
                total += batch->bytes;
                // A batch of one: messages come one at a time again.
                if (batch->messages == 1) bursts_ = false;
                // All that was queued is read: poll() says when more comes (two system calls fewer).
                if (batch->drained) break;
                continue;
            }
        }
        std::vector<Fd> fds;
        std::optional<std::uint64_t> source;
        auto n = receive_one(fds, source);
        if (!n) {
            if (n.error().kind == TransportError::Kind::Corrupt) {
                broken_ = n.error();
                break;
            }
            // Deliver what was read; the next read reports the close (EOF stays).
            if (total > 0) break;
            return Unexpected(n.error());
        }
        if (!*n) break;
        const std::size_t length = **n;
        if (length == 0) continue;  // skipped (receive_one noted it)
        total += length;
        const bool taken = take(std::span<const std::byte>(buffer_.data(), length), std::move(fds), source);
        if (buffer_.size() > kKeptBufferBytes) std::vector<std::byte>().swap(buffer_);
        if (!taken) break;
    }
    return total;
}

Expected<std::optional<ReceivedDatagram>, TransportError> DatagramTransport::next() {
    if (skip_count_ > 0 && skips_[0].after == returned_) {
        const SkippedMessage skipped = skips_[0].message;
        std::move(skips_.begin() + 1, skips_.begin() + static_cast<std::ptrdiff_t>(skip_count_),
                  skips_.begin());
        --skip_count_;
        return Unexpected(
            TransportError{TransportError::Kind::Skipped, ENOMEM, WireError::Truncated, skipped});
    }
    if (!received_.empty()) {
        ReceivedDatagram r = std::move(received_.front());
        received_.pop_front();
        ++returned_;
        return std::optional<ReceivedDatagram>(std::move(r));
    }
    if (broken_) return Unexpected(*broken_);
    return std::optional<ReceivedDatagram>{};
}

void DatagramTransport::enqueue(std::shared_ptr<const Message> message,
                                std::optional<std::uint64_t> destination) {
    queued_bytes_ += message->size();
    queued_fds_ += message->fds().size();
    queue_.push_back({std::move(message), destination});
}

namespace {

// The scratch space of one sendmmsg(), about 14 KiB: one per thread rather than per connection (a daemon
// has thousands) or on the stack of whatever calls flush().
struct SendBatch {
    std::array<mmsghdr, DatagramTransport::kSendBatch> headers;
    std::array<std::array<iovec, 2>, DatagramTransport::kSendBatch> iovecs;
    std::array<sockaddr_bus, DatagramTransport::kSendBatch> addresses;
};

// Describes a queued message to `msg`: its header and body as two iovecs, the destination (if any)
// without a path. The fds are the caller's.
void describe(const Message& m, std::optional<std::uint64_t> destination, int family, msghdr& msg,
              std::array<iovec, 2>& iov, sockaddr_bus& to) {
    std::size_t iovcnt = 0;
    for (std::span<const std::byte> part : {m.header_bytes(), m.body_bytes()})
        if (!part.empty()) iov[iovcnt++] = {const_cast<std::byte*>(part.data()), part.size()};
    msg = msghdr{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = iovcnt;
    if (destination) {
        // No path: the kernel needs only the family and the address.
        to = sockaddr_bus{};
        to.sbus_family = static_cast<__kernel_sa_family_t>(family);
        to.sbus_addr.s_addr = *destination;
        msg.msg_name = &to;
        msg.msg_namelen = offsetof(sockaddr_bus, sbus_path);
    }
}

}  // namespace

void DatagramTransport::sent_front() {
    const Message& m = *queue_.front().message;
    queued_bytes_ -= m.size();
    queued_fds_ -= m.fds().size();
    queue_.pop_front();
}

std::size_t DatagramTransport::batchable() const noexcept {
    std::size_t n = 0;
    while (n < kSendBatch && n < queue_.size() && queue_[n].message->fds().empty()) ++n;
    return n;
}

Expected<bool, TransportError> DatagramTransport::flush() {
    while (!queue_.empty()) {
        const Queued& q = queue_.front();
        const Message& m = *q.message;
        if (!m.fds().empty() && !unix_fds_)
            return Unexpected(TransportError{TransportError::Kind::FdsNotAllowed});

        // Several datagrams without fds: one sendmmsg(). af_bus.ko then wakes each receiver once for the
        // whole batch instead of once per message (docs/kernel.md, "Batched sends"). A datagram the kernel
        // refuses stops the batch there; it goes through sendmsg() below, which says why.
        if (const std::size_t n = batchable(); n > 1) {
            thread_local SendBatch b;
            for (std::size_t i = 0; i < n; ++i) {
                describe(*queue_[i].message, queue_[i].destination, family_, b.headers[i].msg_hdr, b.iovecs[i],
                         b.addresses[i]);
                b.headers[i].msg_len = 0;
            }
            const int sent = ::sendmmsg(socket_.get(), b.headers.data(), static_cast<unsigned>(n),
                                        MSG_NOSIGNAL | MSG_DONTWAIT);
            if (sent > 0) {
                for (int i = 0; i < sent; ++i) sent_front();
                continue;
            }
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
        }

        std::array<iovec, 2> iov;
        sockaddr_bus to;
        msghdr msg;
        describe(m, q.destination, family_, msg, iov, to);
        ScmRightsBuffer control;
        if (!m.fds().empty()) attach_fds(msg, control, m.fds());
        // A datagram goes whole or not at all: no partial writes to keep track of.
        const ssize_t n = ::sendmsg(socket_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
            if (!refuses_one_message(errno)) return Unexpected(transport_error_from_errno(errno));
            refused_.push_back({q.message, q.destination, errno});
        }
        sent_front();
    }
    return true;
}

}  // namespace afbus
