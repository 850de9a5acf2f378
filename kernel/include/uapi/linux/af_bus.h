/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * af_bus.h - user-space API of the AF_BUS socket family (out-of-tree module af_bus.ko, afbus
 * project). See afbus(7) and docs/kernel.md.
 *
 * AF_BUS has no fixed family number: af_bus.ko registers the first free number of a list of
 * retired families (AF_BUS_FAMILY_CANDIDATES) unless its module parameter "family" says otherwise.
 * Read the number in use from /sys/module/af_bus/parameters/family.
 */
#ifndef _UAPI_LINUX_AF_BUS_H
#define _UAPI_LINUX_AF_BUS_H

#include <linux/types.h>
#include <linux/socket.h>

/*
 * Families tried in order by default: 19 (AF_ECONET, removed in 3.5), 23 (AF_IRDA, removed in
 * 4.17), 18 (AF_ASH), 22 (AF_SNA) and 25 (AF_WANPIPE) (the last three never implemented).
 */
#define AF_BUS_FAMILY_CANDIDATES { 19, 23, 18, 22, 25 }
#define AF_BUS_SYSFS_FAMILY "/sys/module/af_bus/parameters/family"

/* socket(family, SOCK_SEQPACKET, protocol) */
#define BUS_PROTO_NONE	0	/* no protocol-aware filtering */
#define BUS_PROTO_DBUS	1	/* D-Bus, served by af_bus_dbus.ko (bind needs it loaded) */

/* Option level of the BUS_* socket options. The 2013 value (280) is SOL_NFC today. */
#define SOL_BUS		16710	/* 0x4146 */

/* Addresses: 16-bit prefix, 48-bit client part. */
#define BUS_PATH_MAX		108
#define BUS_PREFIX_SHIFT	48
#define BUS_CLIENT_MASK		0x0000ffffffffffffULL
#define BUS_PREFIX_MASK		0xffff000000000000ULL
#define BUS_MASTER_ADDR		0ULL
/* client part meaning "every holder of the prefix" */
#define BUS_MULTICAST_CLIENT	BUS_CLIENT_MASK
#define BUS_ADDR(prefix, client) \
	((((__u64)(prefix)) << BUS_PREFIX_SHIFT) | ((__u64)(client) & BUS_CLIENT_MASK))
#define BUS_ADDR_PREFIX(addr)	((__u16)((__u64)(addr) >> BUS_PREFIX_SHIFT))
#define BUS_ADDR_CLIENT(addr)	((__u64)(addr) & BUS_CLIENT_MASK)
#define BUS_IS_MULTICAST(addr)	(BUS_ADDR_CLIENT(addr) == BUS_MULTICAST_CLIENT)

struct bus_addr {
	__u64 s_addr;
};

struct sockaddr_bus {
	__kernel_sa_family_t sbus_family;	/* the AF_BUS family number in use */
	struct bus_addr sbus_addr;
	char sbus_path[BUS_PATH_MAX];		/* sbus_path[0] == 0: abstract name */
};

/*
 * Options at level SOL_BUS (the 2013 names and values are kept).
 * "master-side" = a socket returned by accept() on the master's listening socket.
 */
#define BUS_ADD_ADDR		1	/* master-side: struct bus_addr, extra address */
#define BUS_JOIN_BUS		2	/* master-side: admit the client (no argument) */
#define BUS_DEL_ADDR		3	/* master-side: struct bus_addr, remove an address */
#define BUS_SET_EAVESDROP	4	/* master-side: the client gets a copy of all traffic; optional
					 * int flags: 1, and BUS_EAVESDROP_MONITOR */
#define BUS_UNSET_EAVESDROP	5	/* master-side */
#define BUS_SET_SENDBUF		6	/* master: int, send buffer of every connection */
#define BUS_SET_MAXQLEN		7	/* master: int, receive queue limit in messages */
#define BUS_GET_QLENFULL	8	/* getsockopt: struct bus_qlenfull */

/*
 * BUS_SET_EAVESDROP flag: the client is the master's monitor. It gets copies of the traffic between
 * clients only, not of what the master sends or receives (a D-Bus daemon shows its monitors its own
 * traffic itself, in its own order), and the protocol's eavesdrop checks (af_bus_dbus.ko: policy) do
 * not apply to it: the master admitted it as a monitor.
 */
#define BUS_EAVESDROP_MONITOR 2
/* New in afbus. */
#define BUS_SET_FILTER		9	/* master: struct bus_filter blob, replaces the filter */
#define BUS_DEL_FILTER		10	/* master: remove the filter (accept everything) */
#define BUS_GET_STATS		11	/* getsockopt, master: struct bus_stats */
#define BUS_GET_SENDER_DROPS	12	/* getsockopt, master-side: struct bus_sender_drops */
#define BUS_MOVE_ADDR		13	/* master-side: struct bus_addr, take it from its holder, atomically */
#define BUS_SET_RECVBUF		14	/* master: int, receive buffer of every connection (as
					 * SO_RCVBUF: beyond rmem_max needs CAP_NET_ADMIN) */
#define BUS_GET_QUEUED		15	/* getsockopt, struct bus_queued[], own queue */
#define BUS_SET_RECV_FLAGS	16	/* any socket: int, BUS_RECV_* for its own reads */

/*
 * BUS_SET_RECV_FLAGS, so that a reader needs one system call per read, not a peek or
 * BUS_GET_QUEUED first (unknown bits: EINVAL; 0 turns both off):
 * BUS_RECV_WHOLE: a read that does not peek and whose buffer is shorter than the next message
 *   fails with EMSGSIZE and leaves the message queued (BUS_GET_QUEUED says its length), instead of
 *   returning its start with MSG_TRUNC and discarding the rest.
 * BUS_RECV_QUEUED: every message read comes with a control message (level SOL_BUS, type
 *   SCM_BUS_QUEUED, a __u32): how many messages were queued behind it when it was read, so that a
 *   reader that has just read the last one need not ask again. Without room for it in the control
 *   buffer the read reports MSG_CTRUNC, as for SCM_RIGHTS.
 */
#define BUS_RECV_WHOLE		0x1
#define BUS_RECV_QUEUED		0x2
#define BUS_RECV_ALL		0x3
#define SCM_BUS_QUEUED		1

/*
 * Options of af_bus_dbus.ko, on BUS_PROTO_DBUS buses only (elsewhere ENOPROTOOPT). Every message
 * sent on such a bus must be a well-formed D-Bus message (else EBADMSG, EMSGSIZE or EINVAL), and a
 * client's message must carry its unique name as SENDER (else EPERM), except one addressed to the
 * master itself, which may carry none. A multicast copy reaches a client only if one of the match
 * records the master installed for it (BUS_DBUS_ADD_MATCH) matches the message. A client's unicast
 * to a client whose receive queue is full fails with EXFULL (D-Bus: LimitsExceeded), except a reply
 * or an error, which is dropped; either is counted as a drop for the receiver (BUS_GET_QLENFULL).
 * Policy is asked first: a message it refuses fails with EACCES, full queue or not.
 */
#define BUS_DBUS_OPT_MIN	64
#define BUS_DBUS_SET_NAME	64	/* master-side: the client's unique name (":1.42"), no NUL */
#define BUS_DBUS_SET_REPLY_LIMITS 65	/* listener: struct bus_dbus_reply_limits */
#define BUS_DBUS_ADD_MATCH	66	/* master-side: a compiled match rule record (docs/policy.md) */
#define BUS_DBUS_REMOVE_MATCH	67	/* master-side: the same bytes, removes one such record */
#define BUS_DBUS_SET_POLICY	68	/* listener: a compiled policy image (docs/policy.md) */
#define BUS_DBUS_SET_CHAINS	69	/* master-side: struct bus_dbus_chains, the client's rules */
#define BUS_DBUS_SET_NAMES	70	/* master-side: the names the client owns or queues for */
#define BUS_DBUS_OPT_MAX	96

/*
 * Policy (busconfig <policy> send and receive rules, as dbus-daemon enforces them). The master
 * installs the compiled image once per configuration (BUS_DBUS_SET_POLICY, at most 16 MiB; checked
 * as policy/'s PolicyImage::load checks it, and refused with EINVAL if it is not valid), then each
 * client's chains: the image's rules that apply to it, by index, in evaluation order, one chain per
 * hook (BUS_DBUS_SET_CHAINS, refused with EINVAL unless every index names a rule of the hook's kind;
 * ENOENT before any image), and the well-known names it owns or is queued for (BUS_DBUS_SET_NAMES:
 * each a valid bus name followed by a NUL, 65,536 bytes in all at most; empty for none), which send
 * rules about destinations and receive rules about senders look at.
 *
 * Once an image is installed, every message between two clients is checked: the sender's send chain
 * with the receiver as the other end, then the receiver's receive chain (or, for an eavesdropper's
 * copy, its eavesdrop chain) with the sender as the other end; the last matching rule decides, none
 * denies. A denied unicast fails the send with EACCES (the sender's library turns it into the
 * org.freedesktop.DBus.Error.AccessDenied reply dbus-daemon would send); a denied multicast or
 * eavesdropper copy is not delivered to that receiver. A client without chains is denied everything.
 * Replies are checked only when requested (unrequested replies are dropped before policy). Messages
 * to and from the master are the master's to judge.
 *
 * A new image applies to a client from its next BUS_DBUS_SET_CHAINS; until then its chains keep the
 * image they were made for (so a reload never denies by accident). Setting an empty image removes
 * policy: every message passes again.
 */
struct bus_dbus_chains {
	__u32 send;		/* how many send rule indices follow */
	__u32 receive;		/* ... receive rule indices, after them */
	__u32 eavesdrop;	/* ... eavesdrop rule indices, after them */
	__u32 reserved;		/* 0 */
	/* __u32 rules[send + receive + eavesdrop]; */
};

/*
 * Replies between clients of a D-Bus bus: a METHOD_RETURN or ERROR reaches a client only in answer
 * to a call of its own that the replier received and has not answered yet, within timeout_ms
 * (else it is dropped; the replier sees success), as dbus-daemon's max_replies_per_connection and
 * reply_timeout. A call beyond max_replies outstanding calls of its sender fails with EDQUOT.
 * Defaults: 128 and 25000 ms. Calls to or from the master are the master's to track.
 */
struct bus_dbus_reply_limits {
	__u32 max_replies;	/* per calling client, 1..65536 */
	__u32 timeout_ms;	/* 1..2^31-1 */
};

/*
 * BUS_GET_QLENFULL: the receive queue state of a socket. On a master-side socket it describes the
 * client at the other end, and reading it clears dropped_unread (and with it POLLPRI).
 */
struct bus_qlenfull {
	__u64 dropped;		/* messages dropped because the queue was full (total) */
	__u64 dropped_unread;	/* ... not yet read by the master */
	__u32 qlen;		/* messages queued now */
	__u32 maxqlen;		/* queue limit in messages */
	__u32 rmem;		/* bytes of the messages queued now */
	__u32 rcvbuf;		/* queue limit in bytes of messages */
};

/*
 * BUS_GET_SENDER_DROPS (master-side socket): copies of messages sent by the client at the other
 * end that were dropped at full receivers (multicast and eavesdropper copies), so that the master
 * can blame a flooding sender rather than only the slow readers. Reading clears dropped_unread.
 * EINVAL on the listener, EPERM on a client, ENOTCONN once the client is gone.
 */
struct bus_sender_drops {
	__u64 dropped;		/* total */
	__u64 dropped_unread;	/* since the last BUS_GET_SENDER_DROPS */
};

/*
 * BUS_GET_QUEUED: the first messages in the socket's own receive queue, oldest first, one entry
 * each, as many as optlen has room for (at most BUS_QUEUED_MAX); optlen returns the bytes filled,
 * 0 when the queue is empty (or shut down: recv() tells which). A SEQPACKET read shorter than its
 * datagram loses the rest, so a reader that knows the lengths can size every buffer of one
 * recvmmsg() exactly instead of peeking at each message first. With one reader the entries are the
 * datagrams its next reads return; EINVAL on the listener or with optlen below one entry.
 */
#define BUS_QUEUED_MAX 256
struct bus_queued {
	__u32 len;		/* bytes */
	__u32 nfds;		/* SCM_RIGHTS file descriptors it carries */
};

struct bus_stats {
	__u64 unicast;		/* unicast messages delivered */
	__u64 multicast;	/* multicast sends (not copies) */
	__u64 copies;		/* multicast and eavesdrop copies delivered */
	__u64 overflow_drops;	/* copies dropped on full receiver queues */
	__u64 filter_drops;	/* deliveries dropped or rejected by the filter */
	__u32 clients;		/* connected clients */
	__u32 joined;		/* joined clients */
};

/*
 * Filter blobs (BUS_SET_FILTER), format version 1, host byte order, no padding holes:
 * struct bus_filter (16 bytes) immediately followed by nrules struct bus_filter_rule (96 bytes
 * each; BUS_FILTER_RULES(f) points at them). No flexible array member, so that the header is
 * also valid ISO C++. Rules are evaluated in order for
 * every delivery of a client's send (each receiver of a multicast is a delivery of its own); the
 * first rule whose selected fields all match gives the verdict, else default_verdict. Master
 * sends are not filtered.
 */
#define BUS_FILTER_MAGIC	0x46425541	/* the bytes 'A' 'U' 'B' 'F' in little-endian */
#define BUS_FILTER_VERSION	1
#define BUS_FILTER_MAX_RULES	256
#define BUS_FILTER_MAX_DATA	16

enum bus_filter_verdict {
	BUS_FILTER_ACCEPT = 0,	/* deliver */
	BUS_FILTER_DROP = 1,	/* drop silently; the sender sees success */
	BUS_FILTER_REJECT = 2,	/* unicast: sendmsg fails with EACCES; multicast: like DROP */
};

/* bus_filter_rule.match bits */
#define BUS_FILTER_M_SRC	0x1	/* (sender & src_mask) == src_addr */
#define BUS_FILTER_M_DST	0x2	/* (address as sent & dst_mask) == dst_addr */
#define BUS_FILTER_M_RCPT	0x4	/* (receiver's unique address, 0: master) & mask == addr */
#define BUS_FILTER_M_DATA	0x8	/* (payload[data_off + i] & data_mask[i]) == data[i] */
#define BUS_FILTER_M_MCAST	0x10	/* the send is a multicast */
#define BUS_FILTER_M_UCAST	0x20	/* the send is a unicast */
#define BUS_FILTER_M_ALL	0x3f

struct bus_filter_rule {
	__u32 match;
	__u32 verdict;
	__u64 src_addr, src_mask;
	__u64 dst_addr, dst_mask;
	__u64 rcpt_addr, rcpt_mask;
	__u32 data_off;
	__u32 data_len;
	__u8 data[BUS_FILTER_MAX_DATA];
	__u8 data_mask[BUS_FILTER_MAX_DATA];
};

struct bus_filter {
	__u32 magic;		/* BUS_FILTER_MAGIC */
	__u16 version;		/* BUS_FILTER_VERSION */
	__u16 nrules;		/* <= BUS_FILTER_MAX_RULES */
	__u32 default_verdict;
	__u32 flags;		/* must be 0 */
	/* followed by struct bus_filter_rule[nrules] */
};

#define BUS_FILTER_RULES(f)	((struct bus_filter_rule *)((f) + 1))
#define BUS_FILTER_SIZE(nrules)	\
	(sizeof(struct bus_filter) + (nrules) * sizeof(struct bus_filter_rule))

#endif /* _UAPI_LINUX_AF_BUS_H */
