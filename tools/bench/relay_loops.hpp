// Two ways for a process to relay bytes between two sockets, doing nothing else: the least any bus
// daemon built on that kind of loop can cost per routed message (afbus-bench's `relay` scenario,
// docs/performance.md "Where the time goes").
#pragma once

namespace afbus::bench {

// Forwards whatever arrives on either socket to the other, until either is closed. Both loops keep the
// shape of a readiness-driven or completion-driven daemon and do no work of their own per message.
// Each returns a process exit status: 0 once a peer hung up, 1 on an error.

// epoll_wait, then one recvmsg and one sendmsg per message: three system calls, as afbus-daemon,
// dbus-broker and dbus-daemon make per routed message when messages come one at a time.
int relay_with_epoll(int a, int b);

// io_uring (liburing): one receive is always pending on each socket; a completed receive is answered
// with a send linked to the next receive on the same socket, submitted together with the wait for the
// next completion: one system call per message.
int relay_with_io_uring(int a, int b);

// io_uring as a readiness loop: a multishot poll on each socket, then one recv (a system call of its own)
// and a send submitted with the wait for the next completion: two system calls per message, what a
// daemon that keeps its reads and swaps only epoll_wait and its writes for io_uring would make.
int relay_with_io_uring_polls(int a, int b);

// io_uring for the receives only: one pending on each socket, as in relay_with_io_uring, and each send a
// send() of its own: two system calls per message, what a daemon that keeps its writes would make.
int relay_with_io_uring_receives(int a, int b);

// io_uring to learn that a socket has data: a one-byte MSG_PEEK receive pending on each, then the epoll
// loop's recvmsg and sendmsg: three system calls per message, what a daemon that keeps its whole read
// path would make.
int relay_with_io_uring_peeks(int a, int b);

// Whether relay_with_io_uring works here: built with liburing, and io_uring allowed.
bool have_io_uring_relay();

}  // namespace afbus::bench
