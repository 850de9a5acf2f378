// DatagramTransport: D-Bus messages over a connected, non-blocking SOCK_SEQPACKET socket, one message per
// datagram in both directions, fds by SCM_RIGHTS in the datagram of their message. This is how AF_BUS
// (docs/kernel.md) carries D-Bus: the client library uses it on its connection, the daemon on its
// master-side sockets. Every send may name a destination address (sockaddr_bus as msg_name); every
// received message comes with the address it came from. An AF_UNIX SEQPACKET socket works too (tests):
// it ignores msg_name on sends and reports no source address.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "afbus/expected.hpp"
#include "afbus/fd.hpp"
#include "afbus/framer.hpp"  // SkippedMessage
#include "afbus/message.hpp"
#include "afbus/stream_transport.hpp"  // TransportError

namespace afbus {

// How a read's first receive goes. Now: it never blocks. Waiting: on a socket whose file is blocking
// (SocketFileMode::Blocking), it waits until a message arrives, the socket's receive timeout
// (SO_RCVTIMEO) passes or a signal comes; a client waiting for a reply then makes one system call where
// poll() and a receive were two. The receives after it never block.
enum class ReadStart : bool { Now, Waiting };

// A message as it came off the socket.
struct ReceivedDatagram {
    Message message;
    // The sender's AF_BUS address (0: the master), from recvmsg's msg_name; nullopt when the socket
    // reported none (AF_UNIX stand-ins).
    std::optional<std::uint64_t> source;
};

// A message the kernel refused at sendmsg without anything being wrong with the socket (see
// DatagramTransport::refuses_one_message). It has left the queue; the owner decides what to tell whom.
struct RefusedDatagram {
    std::shared_ptr<const Message> message;
    std::optional<std::uint64_t> destination;
    int error_number;
};

// Whether `message` carries a socket af_bus.ko refuses to carry (AF_UNIX, or AF_BUS: `af_bus_family`),
// which could close a reference cycle through an AF_BUS queue (docs/kernel.md, "No sockets over AF_BUS").
[[nodiscard]] bool carries_a_socket_af_bus_refuses(const Message& message, int af_bus_family);

class DatagramTransport {
public:
    // What one read takes at most unless its owner says otherwise (so that one busy peer cannot starve
    // others).
    static constexpr std::size_t kDefaultReadBudget = 1024 * 1024;
    // `family` is put in the msg_name of addressed sends (the AF_BUS number in use; AF_UNIX ignores it).
    // On AF_BUS, asks for whole reads and queue counts (BUS_SET_RECV_FLAGS), so that a message read
    // alone costs one system call.
    DatagramTransport(Fd socket, int family);

    [[nodiscard]] int fd() const noexcept { return socket_.get(); }
    // Fd passing, once agreed during authentication.
    void set_unix_fd_passing(bool on) noexcept { unix_fds_ = on; }
    [[nodiscard]] bool unix_fd_passing() const noexcept { return unix_fds_; }

    // Reads the datagrams the socket has now, until about `budget` bytes were read (so one busy peer
    // cannot starve others). Returns the number of bytes read; 0 means nothing was available (EAGAIN).
    // Errors: Closed (EOF, EPIPE, ECONNRESET), Io. A datagram that is not exactly one valid message is
    // reported by next(), after the messages that came before it. ReadStart::Waiting only where
    // can_wait_in_read() (0 then also means nothing came while it waited).
    Expected<std::size_t, TransportError> read(std::size_t budget = kDefaultReadBudget,
                                               ReadStart start = ReadStart::Now);
    // The next read starts with one receive that can wait (a lone message at a time, on AF_BUS with
    // BUS_SET_RECV_FLAGS); not while messages come in bursts, which are sized before they are read.
    [[nodiscard]] bool can_wait_in_read() const noexcept { return whole_reads_ && !bursts_; }
    // The next message already read, if any; Corrupt / FdsNotAllowed once a bad datagram is reached
    // (the connection must be closed then, as for a corrupt stream). A datagram there was no memory to
    // take as a message is reported in its place as Skipped (what its fixed header says), and the
    // connection goes on: the datagram has left the kernel, so the message is lost, but its sender can
    // be answered (see take()). Skipped more often than this transport can note between two next(),
    // it is NoMemory, which ends the connection.
    Expected<std::optional<ReceivedDatagram>, TransportError> next();

    // destination: the address for msg_name; nullopt sends without one (a client's plain send() goes to
    // the master, a master-side socket's to its client).
    void enqueue(std::shared_ptr<const Message> message, std::optional<std::uint64_t> destination);
    void enqueue(Message message, std::optional<std::uint64_t> destination) {
        enqueue(std::make_shared<const Message>(std::move(message)), destination);
    }
    // Sends queued datagrams until the queue is empty (true) or the socket is full (false, EAGAIN: wait
    // for POLLOUT). A message the kernel refuses moves to refused() and the rest goes on; any other
    // failure is the connection's.
    Expected<bool, TransportError> flush();
    [[nodiscard]] bool wants_write() const noexcept { return !queue_.empty(); }
    [[nodiscard]] std::size_t queued_bytes() const noexcept { return queued_bytes_; }
    [[nodiscard]] std::size_t queued_messages() const noexcept { return queue_.size(); }
    [[nodiscard]] std::size_t queued_fds() const noexcept { return queued_fds_; }

    // Messages refused by flush() since the last call, oldest first.
    [[nodiscard]] std::vector<RefusedDatagram> take_refused() { return std::exchange(refused_, {}); }

    // sendmsg errnos that refuse one message and leave the socket usable: EPERM (af_bus_dbus: wrong
    // SENDER; not joined), EACCES (filter REJECT), EDQUOT (too many calls awaiting replies), EBADMSG and
    // EINVAL (the kernel's D-Bus parser refused the header; bad fds in SCM_RIGHTS), EMSGSIZE (larger than
    // the send buffer), ETOOMANYREFS (fds in flight), EHOSTUNREACH (master: nobody holds the address),
    // EXFULL (af_bus_dbus: the receiving client's queue is full), ENOBUFS (af_bus_dbus: no memory).
    [[nodiscard]] static bool refuses_one_message(int error_number) noexcept;

    // Datagrams per sendmmsg() at most.
    static constexpr std::size_t kSendBatch = 64;
    // Datagrams per recvmmsg() at most, and of them carrying fds.
    static constexpr std::size_t kReceiveBatch = 64;
    static constexpr std::size_t kReceiveBatchWithFds = 4;

private:
    struct Queued {
        std::shared_ptr<const Message> message;
        std::optional<std::uint64_t> destination;
    };
    // The queued datagrams at the front that one sendmmsg() may take (none carries fds), at most
    // kSendBatch.
    [[nodiscard]] std::size_t batchable() const noexcept;
    void sent_front();
    // Receives one datagram into buffer_; its length, or nullopt at EAGAIN.
    Expected<std::optional<std::size_t>, TransportError> receive_one(std::vector<Fd>& fds,
                                                                     std::optional<std::uint64_t>& source);
    struct WholeRead {
        std::size_t bytes = 0;  // 0: nothing was queued, or the next message did not fit (too_long)
        bool too_long = false;  // longer than one read takes: receive_batch sizes a buffer for it
        bool drained = false;   // nothing was queued behind it
    };
    // Reads and takes the next datagram with one recvmsg() (whole_reads_ only): a message longer than
    // the read buffer stays queued (BUS_RECV_WHOLE), and the kernel says what is queued behind it
    // (BUS_RECV_QUEUED).
    // Waiting: blocks as ReadStart says; a signal then reads as nothing queued.
    Expected<WholeRead, TransportError> receive_whole(ReadStart start);
    struct BatchRead {
        // 0: nothing was queued, or the socket cannot tell (then batched_reads_ is off)
        std::size_t bytes = 0;
        std::size_t messages = 0;
        bool drained = false;   // every datagram queued when it looked was read
    };
    // Reads the datagrams queued now, up to about `budget` bytes, with one recvmmsg() whose buffers
    // BUS_GET_QUEUED sized (AF_BUS only), and takes them as take() does.
    Expected<BatchRead, TransportError> receive_batch(std::size_t budget);
    // Takes one received datagram as a message into received_; false once the datagram broke the
    // connection (broken_ says why). Out of memory, the datagram is noted as skipped instead.
    bool take(std::span<const std::byte> datagram, std::vector<Fd> fds, std::optional<std::uint64_t> source);
    void note_skipped(std::span<const std::byte> datagram, std::optional<std::uint64_t> source) noexcept;
    // buffer_ holds at least `bytes`; false when there was no memory for it.
    [[nodiscard]] bool make_room(std::size_t bytes) noexcept;

    Fd socket_;
    int family_;
    std::vector<std::byte> buffer_;  // one datagram, or one recvmmsg()'s, at a time
    std::deque<ReceivedDatagram> received_;
    std::optional<TransportError> broken_;  // the bad datagram next() reports after received_
    // Datagrams skipped for want of memory, oldest first, each reported by next() once the messages
    // taken before it are (`after`: how many messages had been taken then). A fixed few: noting one
    // must not allocate.
    struct Skip {
        SkippedMessage message;
        std::uint64_t after = 0;
    };
    static constexpr std::size_t kMaxSkips = 4;
    std::array<Skip, kMaxSkips> skips_{};
    std::size_t skip_count_ = 0;
    std::uint64_t taken_ = 0;     // messages put into received_, ever
    std::uint64_t returned_ = 0;  // messages next() gave, ever
    std::deque<Queued> queue_;
    std::vector<RefusedDatagram> refused_;
    std::size_t queued_bytes_ = 0;
    std::size_t queued_fds_ = 0;
    bool unix_fds_ = false;
    // BUS_GET_QUEUED answers; off for good once the socket says it has no such option (AF_UNIX, an older
    // af_bus.ko).
    bool batched_reads_ = true;
    // BUS_SET_RECV_FLAGS took BUS_RECV_WHOLE | BUS_RECV_QUEUED: a read may start with receive_whole().
    bool whole_reads_ = false;
    // The last read found several messages queued: the next starts with receive_batch(), which reads
    // them all in two system calls, until a batch finds only one.
    bool bursts_ = false;
};

}  // namespace afbus
