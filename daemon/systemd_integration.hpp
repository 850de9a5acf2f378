// What the bus takes from systemd, without linking libsystemd: libsystemd and the libraries it pulls in
// (libgcrypt, liblzma, libzstd, liblz4, libcap, libgpg-error) cost every bus about 1 MiB of resident
// memory at start, for four calls. The two protocols systemd documents as stable for reimplementation
// are spoken directly: readiness notification ($NOTIFY_SOCKET, sd_notify(3)) and socket activation
// ($LISTEN_PID/$LISTEN_FDS, sd_listen_fds(3)). The two whose files and sockets systemd keeps private,
// the journal's stdout stream and logind's seats, go through libsystemd loaded with dlopen() on first
// use, on the buses that need them (Exec= activation while logging to the journal; an at_console
// policy); where it is not installed they behave as on a machine without systemd.
#pragma once

#include <sys/types.h>

#include <string>

#include "afbus/fd.hpp"

namespace afbus::daemon::systemd {

// The first fd systemd passes (SD_LISTEN_FDS_START).
inline constexpr int kListenFdsStart = 3;

// Sends `state` ("READY=1") to the service manager when $NOTIFY_SOCKET names one; false when there is
// none or it cannot be reached (nothing a bus can do about either).
bool notify(const std::string& state);

// How many sockets systemd passed this process (0 when $LISTEN_PID is not ours or $LISTEN_FDS is unset
// or malformed), as sd_listen_fds(0).
int listen_fds();

// Whether `fd` is a stream socket in the listening state (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1)).
bool is_listening_stream_socket(int fd);

// A stream into the journal for a service's output, tagged `identifier`, at `priority` (LOG_INFO…);
// invalid when there is no journal or no libsystemd.
Fd journal_stream(const std::string& identifier, int priority);

// Whether logind has `uid` on a seat (sd_uid_get_seats(uid, 0, NULL) > 0); false without logind.
bool uid_is_on_a_seat(uid_t uid);

}  // namespace afbus::daemon::systemd
