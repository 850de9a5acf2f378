/* SPDX-License-Identifier: GPL-2.0 */
/*
 * af_bus_hooks.h - in-kernel hook API of af_bus.ko, in the manner of netfilter's
 * nf_register_net_hook(): other modules register handlers at the send point and at the delivery
 * point of AF_BUS messages, ordered by priority, and return verdicts. See docs/kernel.md.
 */
#ifndef _LINUX_AF_BUS_HOOKS_H
#define _LINUX_AF_BUS_HOOKS_H

#include <linux/list.h>
#include <linux/types.h>

struct sk_buff;
struct sock;

enum bus_hook_point {
	BUS_HOOK_SEND,		/* once per sendmsg(), after routing checks, before any delivery */
	BUS_HOOK_DELIVER,	/* once per receiver: unicast, each multicast and eavesdropper copy */
	BUS_HOOK_NUM_POINTS,
};

enum bus_hook_kind {
	BUS_HOOK_UNICAST,
	BUS_HOOK_MULTICAST,
	BUS_HOOK_EAVESDROP,	/* BUS_HOOK_DELIVER only: an eavesdropper's copy */
};

/* Verdicts: a handler returns BUS_HOOK_ACCEPT, BUS_HOOK_DROP or a negative errno (reject). */
#define BUS_HOOK_ACCEPT	0
#define BUS_HOOK_DROP	1

struct bus_hook_ctx {
	const void *bus;		/* identifies the bus (opaque) */
	const struct sk_buff *skb;	/* the message: read the payload with skb_copy_bits() */
	struct sock *sender;		/* client socket or master-side socket that sent it */
	struct sock *receiver;		/* BUS_HOOK_DELIVER: the receiving socket; else NULL */
	u64 src;			/* sender's unique address, 0 for the master */
	u64 dst;			/* address as sent */
	u64 rcpt;			/* BUS_HOOK_DELIVER: receiver's unique address, 0: master */
	enum bus_hook_kind kind;
	bool from_master;		/* sent by the master (a master-side socket) */
	/*
	 * between the master and a client it has not joined yet (authentication, Hello): not bus
	 * traffic, which protocol modules may leave unparsed
	 */
	bool before_join;
	int protocol;			/* BUS_PROTO_* of the sending socket */
	int bus_protocol;		/* BUS_PROTO_* the bus was bound with (its listener's) */
	void *proto_priv;		/* the bus's protocol module state (bus_proto_ops), or NULL */
};

/*
 * Called under rcu_read_lock() and the bus's lock (every delivery of a bus is serialised, so
 * handlers see one total order): a handler must not sleep. Return value:
 *   BUS_HOOK_ACCEPT   go on with the next handler (by priority); deliver if none objects
 *   BUS_HOOK_DROP     discard silently; the sender sees success
 *   -errno            reject: at BUS_HOOK_SEND and for a unicast delivery sendmsg() fails with it;
 *                     for a multicast or eavesdropper copy it acts as BUS_HOOK_DROP
 * The first verdict other than ACCEPT ends the walk.
 */
typedef int (*bus_hookfn)(void *priv, const struct bus_hook_ctx *ctx);

struct bus_hook_ops {
	bus_hookfn hook;
	void *priv;
	enum bus_hook_point point;
	int priority;			/* lower runs first; the built-in filter runs at 0 */
	struct list_head list;		/* af_bus.ko's, while registered */
};

#define BUS_HOOK_PRI_FIRST	INT_MIN
#define BUS_HOOK_PRI_FILTER	0	/* the BUS_SET_FILTER rules */
#define BUS_HOOK_PRI_LAST	INT_MAX

/* Register before use; unregister (waits for running handlers) before the ops go away. */
int bus_register_hook(struct bus_hook_ops *ops);
void bus_unregister_hook(struct bus_hook_ops *ops);

/*
 * Protocol modules. A bus is bound with a protocol (socket(..., BUS_PROTO_DBUS)); the module that
 * registered that protocol serves it for the bus's whole life: bind() fails with EPROTONOSUPPORT
 * while no module serves the protocol, and the bus holds a reference on the module. The module takes
 * the master's SOL_BUS options in [optmin, optmax) (as netfilter modules take socket options through
 * nf_register_sockopt()) and may keep state per bus in *priv, which af_bus.ko hands to every hook
 * (bus_hook_ctx.proto_priv), to client_gone() and finally to bus_gone().
 */
struct bus_proto_ops {
	int protocol;			/* BUS_PROTO_*, not BUS_PROTO_NONE */
	int optmin;			/* SOL_BUS options [optmin, optmax) are the module's */
	int optmax;
	/*
	 * A master option, called with the bus's lock held (may sleep, must not take it). priv: the
	 * bus's slot for the module's state, NULL until the module sets it. client: the unique address
	 * of the client behind the master-side socket the option was set on, 0 on the listening socket.
	 * val/len: the option value, copied in (at most BUS_PROTO_OPT_MAX bytes). Returns 0 or -errno.
	 */
	int (*setsockopt)(void **priv, u64 client, bool joined, int optname, const void *val,
			  unsigned int len);
	/* A client left the bus (bus lock held). Its address is never used again on this bus. */
	void (*client_gone)(void *priv, u64 client);
	/* The bus is freed: no hook or option will see priv again. Not called for a NULL priv. */
	void (*bus_gone)(void *priv);
	/*
	 * A client's multicast is offered to the client itself too (through the delivery hooks, like
	 * every other copy), as D-Bus gives a signal to its sender when one of its match rules matches.
	 */
	bool multicast_to_sender;
	/*
	 * A unicast whose receiver's queue is full: true to drop it (counted as a dropped copy for the
	 * receiver, BUS_GET_QLENFULL and EPOLLPRI, as a multicast copy at a full queue is) rather than
	 * make its sender wait. For messages the receiver asked for and has stopped reading, so that a
	 * receiver that does not read holds up nobody but itself; D-Bus: replies and errors. Called with
	 * the bus's lock held, after the send hooks accepted the message; ctx as for BUS_HOOK_DELIVER.
	 * The delivery hooks still see the message (a reply settles its call) unless they refuse it.
	 * NULL: every unicast waits for room.
	 */
	bool (*drop_when_full)(void *priv, const struct bus_hook_ctx *ctx);
	/*
	 * A unicast whose receiver's queue is full and that drop_when_full() did not drop: -errno
	 * to fail the send with it at once, 0 to let the sender wait for room (or EAGAIN). -EXFULL
	 * (the full queue's doing) counts as a dropped message for the receiver and its sender, as
	 * a drop does; another errno is the protocol's own verdict (D-Bus: policy, asked before the
	 * queue as dbus-daemon asks it) and counts as nothing. So that a receiver
	 * that does not read holds up none of its senders: a sender's library sends in order, so
	 * one message that waits holds up everything it sends after it, to anybody. D-Bus: what
	 * goes from a client to a client (dbus-daemon answers LimitsExceeded). Called as
	 * drop_when_full(), before any delivery hook has seen the message. NULL: wait.
	 */
	int (*refuse_when_full)(void *priv, const struct bus_hook_ctx *ctx);
	/*
	 * The receivers of a multicast the send hooks accepted, when the protocol knows them (D-Bus:
	 * the clients with a matching match record), so that the holders of its prefix that would
	 * refuse it cost nothing: returns how many unique addresses *rcpts points at (the protocol's
	 * memory, valid until its next hook runs), or -1 to offer the message to every holder. Each
	 * receiver listed still goes through the delivery hooks; one that is not a joined holder of
	 * the prefix, or is the sender (unless multicast_to_sender), is skipped, as is an address
	 * listed twice. Called with the bus's lock held after the send hooks, ctx as for
	 * BUS_HOOK_SEND. NULL: every holder.
	 */
	int (*multicast_receivers)(void *priv, const struct bus_hook_ctx *ctx, const u64 **rcpts);
	struct module *owner;
	struct list_head list;		/* af_bus.ko's, while registered */
};

#define BUS_PROTO_OPT_MAX	(16u << 20)

/* -EEXIST if another module serves the protocol or overlaps its option range. */
int bus_register_proto(struct bus_proto_ops *ops);
void bus_unregister_proto(struct bus_proto_ops *ops);

#endif /* _LINUX_AF_BUS_HOOKS_H */
