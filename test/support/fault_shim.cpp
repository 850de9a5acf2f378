// afbus-fault-shim: a preload library, for tests only, that makes chosen socket calls of a bus daemon fail.
// test_fault_injection starts a daemon with LD_PRELOAD naming it and AFBUS_FAULT_CONTROL naming a file;
// to inject a fault the test writes one rule into that file (atomically, by rename):
//
//     <what> <errno name> <times> <connection>
//
//   what        read (recvmsg, recvmmsg, recv, read, readv), write (sendmsg, sendmmsg, send, write,
//               writev), accept (accept4, accept), credentials, groups or pidfd (getsockopt of
//               SO_PEERCRED, SO_PEERGROUPS or SO_PEERPIDFD) or watch (epoll_ctl's EPOLL_CTL_ADD of the
//               connection's fd; EPOLL_CTL_MOD is not failed: the kernel's ep_modify allocates nothing and
//               fails only for a bad argument, which is the daemon's bug, not a fault to survive) or
//               queued (getsockopt of AF_BUS's BUS_GET_QUEUED: what a socket's receive queue holds)
//   errno name  EINTR, EAGAIN, ENOBUFS, ENOMEM, EMFILE, ENFILE, ECONNRESET, EPIPE or ENOSPC
//   times       how many consecutive calls fail
//   connection  for every call but accept: the Nth stream connection (unix, TCP) the daemon accepted
//               (from 1), bus:N, the Nth AF_BUS socket it accepted (a master side: a native client's, a
//               bridge's), or bridge:N, the Nth AF_BUS socket it connected itself (the client side of
//               the bridge it gives each unix client in kernel mode); ignored for accept
//
// Before each call it intercepts, the shim looks for the file; when there is one it takes the rule and
// deletes the file. A call that matches the rule fails with the errno (without reaching the kernel) until
// `times` calls have failed. Each armed rule and each injected failure is written to stderr (the daemon's
// log, which the test reads to know that the fault happened). Calls on other fds (pipes, config files,
// the listener's own fd for read/write, sockets the daemon connected that are not AF_BUS, such as the
// journal's) pass through untouched.
//
// Plain C library calls only: it runs inside another program, before and after its main().
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/af_bus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

namespace {

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77  // Linux 6.5; glibc 2.36 does not know it yet
#endif

enum class What { None, Read, Write, Accept, Credentials, Groups, Pidfd, Watch, Queued };

struct Rule {
    What what = What::None;
    int error = 0;
    int times = 0;
    int connection = 0;  // one of the numbers connection_of_fd holds
};

Rule rule;
// Which socket each fd holds: 0, not one the daemon accepted or connected; N > 0, the Nth stream
// connection accepted; kBusBase + N, the Nth AF_BUS socket accepted; kBridgeBase + N, the Nth AF_BUS
// socket connected. Fds beyond the table are never targeted.
constexpr int kMaxFd = 65536;
constexpr int kBusBase = 1 << 20;
constexpr int kBridgeBase = 2 << 20;
int connection_of_fd[kMaxFd];
int accepted = 0;
int accepted_bus = 0;
int connected_bus = 0;

// "3" is stream connection 3, "bus:3" AF_BUS socket 3, "bridge:3" bridge socket 3; 0 (none) otherwise.
int parse_connection(const char* text) {
    if (strncmp(text, "bus:", 4) == 0) return kBusBase + atoi(text + 4);
    if (strncmp(text, "bridge:", 7) == 0) return kBridgeBase + atoi(text + 7);
    return atoi(text);
}

void describe_connection(int connection, char* out, size_t size) {
    if (connection > kBridgeBase) snprintf(out, size, "bridge socket %d", connection - kBridgeBase);
    else if (connection > kBusBase) snprintf(out, size, "AF_BUS socket %d", connection - kBusBase);
    else snprintf(out, size, "connection %d", connection);
}

// The libc function the intercepted one stands in front of (`f` only gives its type).
template <class F>
F* next_symbol(F&, const char* name) {
    return reinterpret_cast<F*>(::dlsym(RTLD_NEXT, name));
}

// To stderr through libc's own write: the shim's write would look at the rule again.
void say(const char* text) {
    static auto real_write = reinterpret_cast<decltype(&::write)>(::dlsym(RTLD_NEXT, "write"));
    (void)!real_write(2, text, strlen(text));
}

struct ErrnoName {
    const char* name;
    int value;
};
constexpr ErrnoName kErrnos[] = {{"EINTR", EINTR},           {"EAGAIN", EAGAIN}, {"ENOBUFS", ENOBUFS},
                                 {"ENOMEM", ENOMEM},         {"EMFILE", EMFILE}, {"ENFILE", ENFILE},
                                 {"ECONNRESET", ECONNRESET}, {"EPIPE", EPIPE},   {"ENOSPC", ENOSPC}};

const char* errno_name(int value) {
    for (const ErrnoName& e : kErrnos)
        if (e.value == value) return e.name;
    return "?";
}

const char* what_name(What what) {
    switch (what) {
        case What::Read: return "read";
        case What::Write: return "write";
        case What::Accept: return "accept";
        case What::Credentials: return "credentials";
        case What::Groups: return "groups";
        case What::Pidfd: return "pidfd";
        case What::Watch: return "watch";
        case What::Queued: return "queued";
        case What::None: break;
    }
    return "none";
}

// Takes a rule from the control file, if the test wrote one.
void take_rule() {
    static const char* control = ::getenv("AFBUS_FAULT_CONTROL");
    if (!control || ::access(control, F_OK) != 0) return;
    static decltype(&::read) real_read = reinterpret_cast<decltype(&::read)>(::dlsym(RTLD_NEXT, "read"));
    static decltype(&::close) real_close = reinterpret_cast<decltype(&::close)>(::dlsym(RTLD_NEXT, "close"));
    const int fd = ::open(control, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char text[256] = {};
    const ssize_t n = real_read(fd, text, sizeof text - 1);
    real_close(fd);
    ::unlink(control);
    if (n <= 0) return;
    char what[32] = {}, error[32] = {}, connection[32] = {};
    Rule next;
    if (sscanf(text, "%31s %31s %d %31s", what, error, &next.times, connection) != 4) {
        say("afbus-fault-shim: unreadable rule\n");
        return;
    }
    next.connection = parse_connection(connection);
    next.what = What::None;
    constexpr What kCalls[] = {What::Read,   What::Write, What::Accept, What::Credentials,
                               What::Groups, What::Pidfd, What::Watch,  What::Queued};
    for (What w : kCalls)
        if (strcmp(what, what_name(w)) == 0) next.what = w;
    for (const ErrnoName& e : kErrnos)
        if (strcmp(e.name, error) == 0) next.error = e.value;
    if (next.what == What::None || next.error == 0) {
        say("afbus-fault-shim: unknown call or errno in rule\n");
        return;
    }
    rule = next;
    char target[48], line[200];
    describe_connection(rule.connection, target, sizeof target);
    snprintf(line, sizeof line, "afbus-fault-shim: armed: %s on %s fails %d times with %s\n",
             what_name(rule.what), target, rule.times, errno_name(rule.error));
    say(line);
}

// Whether this call fails (errno set); `fd` is the connection's fd (for accept: the listener).
bool inject(What what, int fd, const char* call) {
    take_rule();
    if (rule.times <= 0 || rule.what != what) return false;
    if (what != What::Accept) {
        // (Connection 0 names none: fds that are not accepted connections are never failed.)
        if (fd < 0 || fd >= kMaxFd || rule.connection == 0) return false;
        if (connection_of_fd[fd] != rule.connection) return false;
    }
    --rule.times;
    char target[48], line[200];
    describe_connection(what == What::Accept ? accepted + 1 : rule.connection, target, sizeof target);
    snprintf(line, sizeof line, "afbus-fault-shim: %s on %s (fd %d) fails with %s (%d left)\n", call, target,
             fd, errno_name(rule.error), rule.times);
    say(line);
    errno = rule.error;
    return true;
}

// AF_BUS has no fixed family number: a datagram socket of a family other than AF_UNIX is one.
bool is_af_bus(int fd, int type) {
    int domain = 0;
    socklen_t length = sizeof domain;
    return type == SOCK_SEQPACKET && getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &length) == 0 &&
           domain != AF_UNIX;
}

// Stream connections (unix, TCP) and AF_BUS sockets (a daemon in kernel mode accepts native clients and
// the master sides of its bridges) are numbered apart, so that the stream numbers do not depend on the mode.
void accepted_socket(int fd) {
    int type = 0;
    socklen_t length = sizeof type;
    if (fd < 0 || fd >= kMaxFd || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0) return;
    if (type == SOCK_STREAM) {
        connection_of_fd[fd] = ++accepted;
        return;
    }
    if (is_af_bus(fd, type)) connection_of_fd[fd] = kBusBase + ++accepted_bus;
}

// A socket the daemon connected itself: in kernel mode, the AF_BUS side of a unix client's bridge.
void connected_socket(int fd) {
    int type = 0;
    socklen_t length = sizeof type;
    if (fd < 0 || fd >= kMaxFd || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) != 0) return;
    if (is_af_bus(fd, type)) connection_of_fd[fd] = kBridgeBase + ++connected_bus;
}

}  // namespace

extern "C" {

int accept4(int listener, sockaddr* address, socklen_t* length, int flags) {
    static auto real = next_symbol(accept4, "accept4");
    if (inject(What::Accept, listener, "accept4")) return -1;
    const int fd = real(listener, address, length, flags);
    accepted_socket(fd);
    return fd;
}

int accept(int listener, sockaddr* address, socklen_t* length) {
    static auto real = next_symbol(accept, "accept");
    if (inject(What::Accept, listener, "accept")) return -1;
    const int fd = real(listener, address, length);
    accepted_socket(fd);
    return fd;
}

int connect(int fd, const sockaddr* address, socklen_t length) {
    static auto real = next_symbol(connect, "connect");
    const int r = real(fd, address, length);
    const int saved = errno;
    if (r == 0 || saved == EINPROGRESS) connected_socket(fd);
    errno = saved;
    return r;
}

int close(int fd) {
    static auto real = next_symbol(close, "close");
    if (fd >= 0 && fd < kMaxFd) connection_of_fd[fd] = 0;
    return real(fd);
}

ssize_t recvmsg(int fd, msghdr* message, int flags) {
    static auto real = next_symbol(recvmsg, "recvmsg");
    if (inject(What::Read, fd, "recvmsg")) return -1;
    return real(fd, message, flags);
}

int recvmmsg(int fd, mmsghdr* messages, unsigned int count, int flags, timespec* timeout) {
    static auto real = next_symbol(recvmmsg, "recvmmsg");
    if (inject(What::Read, fd, "recvmmsg")) return -1;
    return real(fd, messages, count, flags, timeout);
}

int sendmmsg(int fd, mmsghdr* messages, unsigned int count, int flags) {
    static auto real = next_symbol(sendmmsg, "sendmmsg");
    if (inject(What::Write, fd, "sendmmsg")) return -1;
    return real(fd, messages, count, flags);
}

ssize_t recv(int fd, void* buffer, size_t length, int flags) {
    static auto real = next_symbol(recv, "recv");
    if (inject(What::Read, fd, "recv")) return -1;
    return real(fd, buffer, length, flags);
}

ssize_t read(int fd, void* buffer, size_t length) {
    static auto real = next_symbol(read, "read");
    if (inject(What::Read, fd, "read")) return -1;
    return real(fd, buffer, length);
}

ssize_t readv(int fd, const iovec* iov, int count) {
    static auto real = next_symbol(readv, "readv");
    if (inject(What::Read, fd, "readv")) return -1;
    return real(fd, iov, count);
}

ssize_t sendmsg(int fd, const msghdr* message, int flags) {
    static auto real = next_symbol(sendmsg, "sendmsg");
    if (inject(What::Write, fd, "sendmsg")) return -1;
    return real(fd, message, flags);
}

ssize_t send(int fd, const void* buffer, size_t length, int flags) {
    static auto real = next_symbol(send, "send");
    if (inject(What::Write, fd, "send")) return -1;
    return real(fd, buffer, length, flags);
}

ssize_t write(int fd, const void* buffer, size_t length) {
    static auto real = next_symbol(write, "write");
    if (inject(What::Write, fd, "write")) return -1;
    return real(fd, buffer, length);
}

ssize_t writev(int fd, const iovec* iov, int count) {
    static auto real = next_symbol(writev, "writev");
    if (inject(What::Write, fd, "writev")) return -1;
    return real(fd, iov, count);
}

// (The shim's own SO_TYPE and SO_DOMAIN questions pass through here untouched.)
int getsockopt(int fd, int level, int name, void* value, socklen_t* length) {
    static auto real = next_symbol(getsockopt, "getsockopt");
    if (level == SOL_SOCKET) {
        if (name == SO_PEERCRED && inject(What::Credentials, fd, "getsockopt(SO_PEERCRED)")) return -1;
        if (name == SO_PEERGROUPS && inject(What::Groups, fd, "getsockopt(SO_PEERGROUPS)")) return -1;
        if (name == SO_PEERPIDFD && inject(What::Pidfd, fd, "getsockopt(SO_PEERPIDFD)")) return -1;
    }
    if (level == SOL_BUS) {
        if (name == BUS_GET_QUEUED && inject(What::Queued, fd, "getsockopt(BUS_GET_QUEUED)")) return -1;
    }
    return real(fd, level, name, value, length);
}

int epoll_ctl(int epoll, int operation, int fd, epoll_event* event) {
    static auto real = next_symbol(epoll_ctl, "epoll_ctl");
    if (operation == EPOLL_CTL_ADD && inject(What::Watch, fd, "epoll_ctl(EPOLL_CTL_ADD)")) return -1;
    return real(epoll, operation, fd, event);
}

}  // extern "C"
