// SPDX-License-Identifier: GPL-2.0
/*
 * af_bus.c — AF_BUS: a multicast, totally ordered, credential- and fd-passing SOCK_SEQPACKET
 * transport for a D-Bus style message bus. Out-of-tree module, built and
 * tested for Debian 12's Linux 6.1 and 6.12.
 *
 * Design, locking and limits are described in docs/kernel.md; the user API in afbus(7) and
 * include/uapi/linux/af_bus.h.
 *
 * Objects:
 *  - struct bus: one per bound master; holds the address table, the client list, the accept queue
 *    and the filter. bus->lock (a mutex) serializes every structural change and every delivery on
 *    that bus, which is what gives all receivers one total order.
 *  - struct bus_sock: a socket in one of three roles: the master's listening socket, a master-side
 *    connection socket (returned by accept(), one per client) and a client socket. A client and its
 *    master-side socket are each other's peer.
 */
#define pr_fmt(fmt) "af_bus: " fmt

#include <linux/module.h>
#include <linux/kernel.h>
#include <linux/init.h>
#include <linux/net.h>
#include <linux/socket.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <linux/mutex.h>
#include <linux/hashtable.h>
#include <linux/xarray.h>
#include <linux/namei.h>
#include <linux/fs.h>
#include <linux/mount.h>
#include <linux/poll.h>
#include <linux/security.h>
#include <linux/sched/signal.h>
#include <linux/task_work.h>
#include <linux/cred.h>
#include <linux/pid.h>
#include <linux/file.h>
#include <linux/uaccess.h>
#include <asm/ioctls.h>
#include <linux/sockptr.h>
#include <linux/version.h>
#include <net/sock.h>
#include <net/tcp_states.h>
#include <net/scm.h>
#include <net/net_namespace.h>
#include <uapi/linux/af_bus.h>
#include <linux/af_bus_hooks.h>

#define BUS_HASH_BITS		10
#define BUS_DEFAULT_MAXQLEN	512
#define BUS_MAX_MAXQLEN		65536
#define BUS_MAX_SNDBUF		(256 << 20)	/* with CAP_NET_ADMIN; else net.core.wmem_max */
#define BUS_MAX_RCVBUF		(1 << 30)	/* with CAP_NET_ADMIN; else net.core.rmem_max */
#define BUS_MAX_ADDRS		1024	/* extra addresses per client */
#define BUS_MCAST_MAX_FDREFS	4096	/* fds x recipients of one multicast */

static int family;
module_param(family, int, 0444);
MODULE_PARM_DESC(family,
		 "Address family (0: first free of 19, 23, 18, 22, 25); reads back the one in use");

static const int bus_family_candidates[] = AF_BUS_FAMILY_CANDIDATES;

/*
 * Kernel interfaces that changed between the kernels we build for (Debian 12's 6.1 and 6.12):
 * idmapped mounts take a struct mnt_idmap since 6.3, proto_ops lost .sendpage in 6.5 and
 * .accept takes a struct proto_accept_arg since 6.10.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
#define bus_mnt_idmap(mnt)	mnt_idmap(mnt)
#else
#define bus_mnt_idmap(mnt)	mnt_user_ns(mnt)
#endif

enum bus_role {
	BUS_ROLE_NONE = 0,
	BUS_ROLE_LISTENER,	/* master, bound + listening */
	BUS_ROLE_MASTER_CONN,	/* master side of one client connection */
	BUS_ROLE_CLIENT,
};

struct bus_sock;

struct bus_address {
	struct hlist_node hnode;	/* bus->addrs, only while the owner is joined */
	struct list_head node;		/* owner->addrs */
	u64 addr;
	struct bus_sock *owner;
};

/*
 * The multicast index: for every prefix some joined client holds an address in, the list of
 * those clients (one struct bus_holder per client and prefix, counting its addresses there). A
 * multicast walks only the holders of its prefix; a prefix nobody holds costs one lookup.
 * Prefix 0 (unique addresses) is embedded in struct bus and its holder in struct bus_sock, so
 * joining never allocates; other prefixes live in bus->prefixes. All under bus->lock.
 */
struct bus_prefix {
	struct list_head holders;	/* struct bus_holder.pnode */
	unsigned int nholders;
};

struct bus_holder {
	struct list_head pnode;		/* bus_prefix.holders */
	struct list_head cnode;		/* bus_sock.holders */
	struct bus_sock *c;
	unsigned int naddrs;		/* c's hashed addresses in this prefix */
	u16 prefix;
};

struct bus {
	struct kref kref;
	struct mutex lock;		/* the per-bus lock */
	struct list_head table_node;	/* bus_table, under bus_table_lock */
	possible_net_t net;
	bool dead;
	bool abstract;
	int namelen;			/* bytes of sbus_path that name the bus */
	char name[BUS_PATH_MAX + 1];
	struct path path;		/* filesystem buses */
	struct bus_sock *listener;
	u64 next_client;
	DECLARE_HASHTABLE(addrs, BUS_HASH_BITS);
	struct bus_prefix prefix0;	/* holders of prefix 0 */
	struct xarray prefixes;		/* prefix (1..65535) -> struct bus_prefix */
	u64 mcast_seq;			/* marks the receivers of the current multicast */
	struct list_head eavesdroppers;	/* clients with eavesdrop set */
	struct list_head clients;	/* connected clients (joined or not) */
	struct list_head pending;	/* master-side sockets not yet accepted */
	unsigned int npending;
	struct bus_filter *filter;
	size_t filter_len;
	int protocol;			/* BUS_PROTO_* of the listener */
	struct bus_proto_ops *proto;	/* serves protocol (module reference held), or NULL */
	void *proto_priv;		/* proto's state for this bus, under lock */
	int sndbuf;			/* 0: keep socket defaults */
	int rcvbuf;			/* 0: keep socket defaults */
	u32 maxqlen;
	unsigned int neavesdrop;	/* clients with eavesdrop set */
	struct bus_stats stats;
};

struct bus_sock {
	struct sock sk;			/* must be first */
	struct bus *bus;		/* counted reference; set once, dropped at release */
	enum bus_role role;
	struct bus_sock *peer;		/* bus->lock; lockless readers: RCU (SOCK_RCU_FREE) */
	u64 addr;			/* unique address of a client; 0 for master sockets */
	struct list_head addrs;		/* struct bus_address of a client */
	unsigned int naddrs;
	struct list_head holders;	/* struct bus_holder of a joined client */
	struct bus_holder holder0;	/* its holder of prefix 0 */
	struct list_head eav_node;	/* bus->eavesdroppers */
	u64 mcast_seq;			/* == bus->mcast_seq: got the current multicast */
	struct list_head client_node;	/* bus->clients */
	struct list_head pending_node;	/* bus->pending */
	bool joined;
	bool eavesdrop;
	bool eavesdrop_monitor;		/* BUS_EAVESDROP_MONITOR: the master's monitor */
	u8 recv_flags;			/* BUS_RECV_*: set any time, read by recvmsg (READ_ONCE) */
	u32 maxqlen;
	wait_queue_head_t peer_wait;	/* senders waiting for room in our receive queue */
	struct mutex iolock;		/* serialises receivers: peek vs. take of passed files */
	atomic64_t dropped;		/* messages dropped for us (queue full) */
	atomic64_t dropped_unread;	/* master-side socket: drops of its client not yet read */
	atomic_t outq;			/* bytes of our messages queued at receivers (SIOCOUTQ) */
	atomic_t inq;			/* bytes of the messages queued for us (SO_RCVBUF) */
	atomic64_t sent_dropped;	/* copies of our sends dropped at full receivers */
	atomic64_t sent_dropped_unread;	/* ... not yet read by the master (BUS_GET_SENDER_DROPS) */
	/*
	 * Wake-ups deferred by a batch of non-blocking sends (sendmmsg(), MSG_BATCH), made once when
	 * the sending task returns to user space (docs/kernel.md, "Batched sends"). All under
	 * bus->lock but wake_work itself.
	 */
	struct list_head wake_pending;	/* receivers to wake: their wake_node */
	struct list_head wake_node;	/* in the wake_pending of wake_sender */
	struct bus_sock *wake_sender;	/* the sender whose batch will wake us, or NULL */
	struct bus *wake_bus;		/* counted reference while wake_work is queued, else NULL */
	struct callback_head wake_work;
};

/* Per-message metadata, in skb->cb. */
struct bus_skb_parms {
	struct pid *pid;
	struct scm_fp_list *fp;
	struct bus_sock *sender;	/* counted reference; its address is the source */
	u64 dst;
	kuid_t uid;
	kgid_t gid;
	u32 secid;
	u32 flags;
};

#define BUSCB(skb)	(*(struct bus_skb_parms *)&((skb)->cb))

static inline struct bus_sock *bus_sk(const struct sock *sk)
{
	return (struct bus_sock *)sk;
}

static DEFINE_MUTEX(bus_table_lock);
static LIST_HEAD(bus_table);

static struct proto bus_proto = {
	.name = "AF_BUS",
	.owner = THIS_MODULE,
	.obj_size = sizeof(struct bus_sock),
};

/* not const: .family is only known at module load (see af_bus_init) */
static struct proto_ops bus_ops;

/* ------------------------------------------------------------------ bus objects */

static void bus_free(struct kref *kref)
{
	struct bus *bus = container_of(kref, struct bus, kref);

	if (!bus->abstract)
		path_put(&bus->path);
	WARN_ON(!xa_empty(&bus->prefixes));
	xa_destroy(&bus->prefixes);
	kfree(bus->filter);
	if (bus->proto) {
		if (bus->proto_priv)
			bus->proto->bus_gone(bus->proto_priv);
		module_put(bus->proto->owner);
	}
	kfree(bus);
}

static void bus_put(struct bus *bus)
{
	kref_put(&bus->kref, bus_free);
}

/*
 * bsk->role is published with smp_store_release() after bsk->bus is set (bind, connect), so a
 * reader that sees a role other than NONE through bus_role() also sees the bus. bus and role never
 * change again until release.
 */
static enum bus_role bus_role(const struct bus_sock *bsk)
{
	return smp_load_acquire(&bsk->role);	/* pairs with smp_store_release() in bind/connect */
}

static bool bus_is_master(enum bus_role role)
{
	return role == BUS_ROLE_LISTENER || role == BUS_ROLE_MASTER_CONN;
}

/*
 * Whether @bsk's receive queue is full, counting @unlinked messages a reader has taken off the
 * queue but not yet freed (their bytes are still in inq until the skb is freed).
 */
static bool bus_queue_full_with(const struct bus_sock *bsk, unsigned int unlinked)
{
	const struct sock *sk = &bsk->sk;

	return skb_queue_len_lockless(&sk->sk_receive_queue) + unlinked >=
		       READ_ONCE(bsk->maxqlen) ||
	       atomic_read(&bsk->inq) > READ_ONCE(sk->sk_rcvbuf);
}

static bool bus_queue_full(const struct bus_sock *bsk)
{
	return bus_queue_full_with(bsk, 0);
}

static void bus_wake_peer_waiters(struct bus_sock *bsk)
{
	/* sync: the reader goes on draining its queue before the woken sender runs */
	if (wq_has_sleeper(&bsk->peer_wait))
		wake_up_interruptible_sync_poll(&bsk->peer_wait,
						EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND);
}

static void bus_set_peercred_current(struct sock *sk)
{
	const struct cred *old_cred;
	struct pid *old_pid;

	spin_lock(&sk->sk_peer_lock);
	old_pid = sk->sk_peer_pid;
	old_cred = sk->sk_peer_cred;
	sk->sk_peer_pid = get_pid(task_tgid(current));
	sk->sk_peer_cred = get_current_cred();
	spin_unlock(&sk->sk_peer_lock);
	put_pid(old_pid);
	put_cred(old_cred);
}

static void bus_copy_peercred(struct sock *sk, struct sock *from)
{
	const struct cred *old_cred, *cred = NULL;
	struct pid *old_pid, *pid = NULL;

	spin_lock(&from->sk_peer_lock);
	if (from->sk_peer_pid)
		pid = get_pid(from->sk_peer_pid);
	if (from->sk_peer_cred)
		cred = get_cred(from->sk_peer_cred);
	spin_unlock(&from->sk_peer_lock);

	spin_lock(&sk->sk_peer_lock);
	old_pid = sk->sk_peer_pid;
	old_cred = sk->sk_peer_cred;
	sk->sk_peer_pid = pid;
	sk->sk_peer_cred = cred;
	spin_unlock(&sk->sk_peer_lock);
	put_pid(old_pid);
	put_cred(old_cred);
}

/* ------------------------------------------------------------------ files in flight */

/*
 * Files in flight over AF_BUS, per sending user (scm_fp_list.user), like AF_UNIX's
 * user->unix_inflight: a user whose count is above its RLIMIT_NOFILE cannot send more files
 * (ETOOMANYREFS) unless it has CAP_SYS_RESOURCE or CAP_SYS_ADMIN. Every file list AF_BUS holds in
 * an skb is counted (each multicast copy too) from the sendmsg() that makes it until the receiver
 * takes it or the skb is freed. AF_UNIX's own counter is not touched: its lock is private.
 */
struct bus_user {
	struct hlist_node node;
	struct user_struct *user;	/* counted reference */
	unsigned long inflight;
};

static DEFINE_SPINLOCK(bus_user_lock);
static DEFINE_HASHTABLE(bus_users, 6);

static struct bus_user *bus_user_find(struct user_struct *user)
{
	struct bus_user *u;

	lockdep_assert_held(&bus_user_lock);
	hash_for_each_possible(bus_users, u, node, (unsigned long)user)
		if (u->user == user)
			return u;
	return NULL;
}

static int bus_fds_charge(struct scm_fp_list *fpl, gfp_t gfp)
{
	struct bus_user *u, *new = NULL;
	unsigned long flags;

	for (;;) {
		spin_lock_irqsave(&bus_user_lock, flags);
		u = bus_user_find(fpl->user);
		if (!u && new) {
			u = new;
			new = NULL;
			u->user = get_uid(fpl->user);
			u->inflight = 0;
			hash_add(bus_users, &u->node, (unsigned long)u->user);
		}
		if (u)
			u->inflight += fpl->count;
		spin_unlock_irqrestore(&bus_user_lock, flags);
		if (u)
			break;
		new = kmalloc(sizeof(*new), gfp);
		if (!new)
			return -ENOMEM;
	}
	kfree(new);
	return 0;
}

static void bus_fds_uncharge(struct scm_fp_list *fpl)
{
	struct bus_user *u;
	unsigned long flags;

	spin_lock_irqsave(&bus_user_lock, flags);
	u = bus_user_find(fpl->user);
	if (WARN_ON_ONCE(!u || u->inflight < fpl->count)) {
		spin_unlock_irqrestore(&bus_user_lock, flags);
		return;
	}
	u->inflight -= fpl->count;
	if (u->inflight)
		u = NULL;
	else
		hash_del(&u->node);
	spin_unlock_irqrestore(&bus_user_lock, flags);
	if (u) {
		free_uid(u->user);
		kfree(u);
	}
}

/* too_many_unix_fds() for AF_BUS's own count */
static bool bus_too_many_fds(struct user_struct *user)
{
	unsigned long n = 0, flags;
	struct bus_user *u;

	spin_lock_irqsave(&bus_user_lock, flags);
	u = bus_user_find(user);
	if (u)
		n = u->inflight;
	spin_unlock_irqrestore(&bus_user_lock, flags);
	if (n <= rlimit(RLIMIT_NOFILE))
		return false;
	return !capable(CAP_SYS_RESOURCE) && !capable(CAP_SYS_ADMIN);
}

/* ------------------------------------------------------------------ skb metadata */

/* cb->flags */
#define BUS_CB_FDS_CHARGED	0x1	/* cb->fp is counted in bus_users */
#define BUS_CB_OUTQ		0x2	/* skb->len is counted in cb->sender->outq */

/* The source address of a message: the sending client's unique address, or 0 for the master. */
static u64 bus_cb_src(const struct bus_skb_parms *cb)
{
	return cb->sender->role == BUS_ROLE_CLIENT ? cb->sender->addr : BUS_MASTER_ADDR;
}

/* Take the files off @cb (to hand them to a receiver, or to free them). */
static struct scm_fp_list *bus_cb_take_fds(struct bus_skb_parms *cb)
{
	struct scm_fp_list *fp = cb->fp;

	cb->fp = NULL;
	if (fp && (cb->flags & BUS_CB_FDS_CHARGED))
		bus_fds_uncharge(fp);
	cb->flags &= ~BUS_CB_FDS_CHARGED;
	return fp;
}

static void bus_cb_release(struct sk_buff *skb)
{
	struct bus_skb_parms *cb = &BUSCB(skb);
	struct scm_cookie scm = { .fp = bus_cb_take_fds(cb) };

	put_pid(cb->pid);
	cb->pid = NULL;
	if (scm.fp)
		__scm_destroy(&scm);
	if (cb->sender) {
		if (cb->flags & BUS_CB_OUTQ)
			atomic_sub(skb->len, &cb->sender->outq);
		sock_put(&cb->sender->sk);
		cb->sender = NULL;
	}
	cb->flags &= ~BUS_CB_OUTQ;
}

static void bus_rfree(struct sk_buff *skb)
{
	atomic_sub(skb->len, &bus_sk(skb->sk)->inq);
	sock_rfree(skb);
	bus_cb_release(skb);	/* may drop the last reference to the sender (possibly skb->sk) */
}

/*
 * The receiver's memory is charged as usual (truesize, sk_rmem_alloc), but its queue limit
 * counts the messages' bytes (inq), as a D-Bus broker counts max_outgoing_bytes: a small message
 * costs several times its length in sk_buff overhead, which would make a queue hold a fraction of
 * what the broker holds. maxqlen bounds that overhead.
 */
static void bus_set_owner_r(struct sk_buff *skb, struct sock *sk)
{
	skb->sk = sk;
	skb->destructor = bus_rfree;
	atomic_add(skb->truesize, &sk->sk_rmem_alloc);
	atomic_add(skb->len, &bus_sk(sk)->inq);
}

/* A copy of @skb for one more receiver: the data is shared, pid and fds are referenced again. */
static struct sk_buff *bus_copy_skb(struct sk_buff *skb)
{
	struct sk_buff *c = skb_clone(skb, GFP_KERNEL);
	struct bus_skb_parms *cb;

	if (!c)
		return NULL;
	cb = &BUSCB(c);
	get_pid(cb->pid);
	sock_hold(&cb->sender->sk);
	cb->flags &= ~(BUS_CB_FDS_CHARGED | BUS_CB_OUTQ);
	if (cb->fp) {
		cb->fp = scm_fp_dup(cb->fp);
		if (cb->fp && bus_fds_charge(cb->fp, GFP_KERNEL)) {
			struct scm_cookie scm = { .fp = cb->fp };

			__scm_destroy(&scm);
			cb->fp = NULL;
		}
		if (!cb->fp) {
			put_pid(cb->pid);
			cb->pid = NULL;
			sock_put(&cb->sender->sk);
			cb->sender = NULL;
			kfree_skb(c);
			return NULL;
		}
		cb->flags |= BUS_CB_FDS_CHARGED;
	}
	return c;
}

/*
 * Receivers to wake once bus->lock is dropped: waking a reader while holding the lock would make
 * it contend on the lock as soon as it answers. The caller enters an RCU read-side section before
 * dropping the lock and leaves it after bus_wake_receivers(): sockets are SOCK_RCU_FREE, so a
 * receiver released meanwhile stays valid memory without taking references.
 */
#define BUS_WAKE_BATCH 32
struct bus_wake {
	unsigned int n;
	struct bus_sock *batch;		/* the sender, when its receivers' wake-ups are deferred */
	struct sock *sk[BUS_WAKE_BATCH];
};

static void bus_enqueue(struct bus_sock *rbsk, struct sk_buff *skb, struct bus_wake *wake)
{
	struct bus_skb_parms *cb = &BUSCB(skb);
	struct sock *rsk = &rbsk->sk;

	atomic_add(skb->len, &cb->sender->outq);
	cb->flags |= BUS_CB_OUTQ;
	bus_set_owner_r(skb, rsk);
	skb_queue_tail(&rsk->sk_receive_queue, skb);
	if (wake->batch && (!rbsk->wake_sender || rbsk->wake_sender == wake->batch)) {
		/* woken with the rest of the batch; pending for another sender's batch: now */
		if (!rbsk->wake_sender) {
			rbsk->wake_sender = wake->batch;
			list_add_tail(&rbsk->wake_node, &wake->batch->wake_pending);
		}
		return;
	}
	if (wake->n < BUS_WAKE_BATCH)
		wake->sk[wake->n++] = rsk;
	else
		rsk->sk_data_ready(rsk);
}

static void bus_wake_receivers(struct bus_wake *wake)
{
	unsigned int i;

	for (i = 0; i < wake->n; i++)
		wake->sk[i]->sk_data_ready(wake->sk[i]);
	wake->n = 0;
}

/* Move up to BUS_WAKE_BATCH of @bsk's deferred wake-ups into @wake; true if more remain. */
static bool bus_take_deferred_wakes_locked(struct bus *bus, struct bus_sock *bsk, struct bus_wake *wake)
{
	struct bus_sock *r;

	lockdep_assert_held(&bus->lock);
	while (wake->n < BUS_WAKE_BATCH && !list_empty(&bsk->wake_pending)) {
		r = list_first_entry(&bsk->wake_pending, struct bus_sock, wake_node);
		list_del_init(&r->wake_node);
		r->wake_sender = NULL;
		wake->sk[wake->n++] = &r->sk;
	}
	return !list_empty(&bsk->wake_pending);
}

/* Wake the receivers waiting for @bsk's batch now, under the lock (rare paths only). */
static void bus_wake_deferred_now_locked(struct bus *bus, struct bus_sock *bsk)
{
	struct bus_wake wake = { .n = 0 };
	bool more;

	do {
		more = bus_take_deferred_wakes_locked(bus, bsk, &wake);
		bus_wake_receivers(&wake);
	} while (more);
}

/*
 * @bsk leaves its bus: it is no longer waiting for a sender's batch, and the receivers waiting for
 * its own batch are woken now.
 */
static void bus_forget_deferred_wakes_locked(struct bus *bus, struct bus_sock *bsk)
{
	lockdep_assert_held(&bus->lock);
	if (bsk->wake_sender) {
		list_del_init(&bsk->wake_node);
		bsk->wake_sender = NULL;
	}
	bus_wake_deferred_now_locked(bus, bsk);
}

/* task_work: the sending task is returning to user space; wake what its batch deferred. */
static void bus_deferred_wake_work(struct callback_head *head)
{
	struct bus_sock *bsk = container_of(head, struct bus_sock, wake_work);
	struct bus *bus = bsk->wake_bus;
	struct bus_wake wake = { .n = 0 };
	bool more;

	mutex_lock(&bus->lock);
	WRITE_ONCE(bsk->wake_bus, NULL);	/* a send from now on queues the work again */
	do {
		more = bus_take_deferred_wakes_locked(bus, bsk, &wake);
		rcu_read_lock();	/* the receivers are SOCK_RCU_FREE, as in bus_sendmsg() */
		mutex_unlock(&bus->lock);
		bus_wake_receivers(&wake);
		rcu_read_unlock();
		if (more)
			mutex_lock(&bus->lock);
	} while (more);
	bus_put(bus);
	sock_put(&bsk->sk);
}

/*
 * Whether a send may defer its receivers' wake-ups: a batch (MSG_BATCH, which sendmmsg() sets on
 * every message but the last) or the last message of one, from a task that returns to user space
 * (the task_work runs there), and never a send that may sleep: a sender waiting for room must not
 * hold back the wake-up that makes room.
 */
static bool bus_may_defer_wakes(const struct bus_sock *bsk, const struct msghdr *msg, long timeo)
{
	if (timeo || (current->flags & (PF_KTHREAD | PF_IO_WORKER)))
		return false;
	return (msg->msg_flags & MSG_BATCH) || READ_ONCE(bsk->wake_bus);
}

/*
 * Drop bus->lock after a delivery and wake its receivers, or, for a batch, make sure the deferred
 * wake-ups happen when the task returns to user space, whatever ends the batch (its last message,
 * an error, a sendmmsg() stopped by a bad message header).
 */
static void bus_unlock_and_wake(struct bus *bus, struct bus_sock *bsk, struct bus_wake *wake)
{
	lockdep_assert_held(&bus->lock);
	if (!list_empty(&bsk->wake_pending) && !bsk->wake_bus) {
		init_task_work(&bsk->wake_work, bus_deferred_wake_work);
		if (task_work_add(current, &bsk->wake_work, TWA_RESUME) == 0) {
			/* read locklessly by bus_may_defer_wakes() */
			WRITE_ONCE(bsk->wake_bus, bus);
			kref_get(&bus->kref);
			sock_hold(&bsk->sk);
		} else {	/* the task is exiting: wake now */
			bus_wake_deferred_now_locked(bus, bsk);
		}
	}
	rcu_read_lock();
	mutex_unlock(&bus->lock);
	bus_wake_receivers(wake);
	rcu_read_unlock();
}

/* ------------------------------------------------------------------ filter */

static int bus_filter_validate(const struct bus_filter *f, size_t len)
{
	unsigned int i;

	if (len < sizeof(*f))
		return -EINVAL;
	if (f->magic != BUS_FILTER_MAGIC || f->version != BUS_FILTER_VERSION || f->flags)
		return -EINVAL;
	if (f->nrules > BUS_FILTER_MAX_RULES)
		return -E2BIG;
	if (len != BUS_FILTER_SIZE(f->nrules))
		return -EINVAL;
	if (f->default_verdict > BUS_FILTER_REJECT)
		return -EINVAL;
	for (i = 0; i < f->nrules; i++) {
		const struct bus_filter_rule *r = &BUS_FILTER_RULES(f)[i];
		unsigned int j;

		if (r->match & ~BUS_FILTER_M_ALL || r->verdict > BUS_FILTER_REJECT)
			return -EINVAL;
		if ((r->src_addr & ~r->src_mask) || (r->dst_addr & ~r->dst_mask) ||
		    (r->rcpt_addr & ~r->rcpt_mask))
			return -EINVAL;
		if (r->data_len > BUS_FILTER_MAX_DATA || r->data_off > (1U << 30))
			return -EINVAL;
		for (j = 0; j < BUS_FILTER_MAX_DATA; j++)
			if (r->data[j] & ~r->data_mask[j])
				return -EINVAL;
	}
	return 0;
}

/* Cost: at most BUS_FILTER_MAX_RULES rules, each at most BUS_FILTER_MAX_DATA bytes compared. */
static u32 bus_filter_eval(const struct bus_filter *f, const struct sk_buff *skb,
			   u64 src, u64 dst, u64 rcpt, bool mcast)
{
	unsigned int i, j;

	for (i = 0; i < f->nrules; i++) {
		const struct bus_filter_rule *r = &BUS_FILTER_RULES(f)[i];
		u8 buf[BUS_FILTER_MAX_DATA];

		if ((r->match & BUS_FILTER_M_SRC) && (src & r->src_mask) != r->src_addr)
			continue;
		if ((r->match & BUS_FILTER_M_DST) && (dst & r->dst_mask) != r->dst_addr)
			continue;
		if ((r->match & BUS_FILTER_M_RCPT) && (rcpt & r->rcpt_mask) != r->rcpt_addr)
			continue;
		if ((r->match & BUS_FILTER_M_MCAST) && !mcast)
			continue;
		if ((r->match & BUS_FILTER_M_UCAST) && mcast)
			continue;
		if (r->match & BUS_FILTER_M_DATA) {
			if ((u64)r->data_off + r->data_len > skb->len)
				continue;
			if (skb_copy_bits(skb, r->data_off, buf, r->data_len))
				continue;
			for (j = 0; j < r->data_len; j++)
				if ((buf[j] & r->data_mask[j]) != r->data[j])
					break;
			if (j != r->data_len)
				continue;
		}
		return r->verdict;
	}
	return f->default_verdict;
}

/* ------------------------------------------------------------------ hooks */

/*
 * Handlers by point, in priority order (lower first). Writers hold bus_hooks_mutex; the send and
 * delivery paths walk the lists under rcu_read_lock(). The bus filter is the built-in handler
 * bus_filter_hook at BUS_HOOK_PRI_FILTER.
 */
static DEFINE_MUTEX(bus_hooks_mutex);
static struct list_head bus_hooks[BUS_HOOK_NUM_POINTS];

int bus_register_hook(struct bus_hook_ops *ops)
{
	struct bus_hook_ops *pos;
	struct list_head *head;

	if (!ops || !ops->hook || ops->point < 0 || ops->point >= BUS_HOOK_NUM_POINTS)
		return -EINVAL;
	head = &bus_hooks[ops->point];
	mutex_lock(&bus_hooks_mutex);
	/* after every handler of the same or lower priority: registration order breaks ties */
	list_for_each_entry(pos, head, list)
		if (pos->priority > ops->priority)
			break;
	list_add_tail_rcu(&ops->list, &pos->list);
	mutex_unlock(&bus_hooks_mutex);
	return 0;
}
EXPORT_SYMBOL_GPL(bus_register_hook);

void bus_unregister_hook(struct bus_hook_ops *ops)
{
	mutex_lock(&bus_hooks_mutex);
	list_del_rcu(&ops->list);
	mutex_unlock(&bus_hooks_mutex);
	synchronize_rcu();	/* no handler still runs ops->hook when we return */
}
EXPORT_SYMBOL_GPL(bus_unregister_hook);

static int bus_run_hooks(enum bus_hook_point point, const struct bus_hook_ctx *ctx)
{
	struct bus_hook_ops *ops;
	int verdict = BUS_HOOK_ACCEPT;

	rcu_read_lock();
	list_for_each_entry_rcu(ops, &bus_hooks[point], list) {
		verdict = ops->hook(ops->priv, ctx);
		if (verdict != BUS_HOOK_ACCEPT)
			break;
	}
	rcu_read_unlock();
	if (verdict != BUS_HOOK_ACCEPT && verdict != BUS_HOOK_DROP &&
	    (verdict >= 0 || verdict < -MAX_ERRNO)) {
		pr_warn_once("hook returned invalid verdict %d, treated as a drop\n", verdict);
		verdict = BUS_HOOK_DROP;
	}
	return verdict;
}

/* ------------------------------------------------------------------ protocol modules */

static DEFINE_MUTEX(bus_protos_mutex);
static LIST_HEAD(bus_protos);

int bus_register_proto(struct bus_proto_ops *ops)
{
	struct bus_proto_ops *pos;
	int err = 0;

	if (!ops || ops->protocol == BUS_PROTO_NONE || !ops->setsockopt || !ops->client_gone ||
	    !ops->bus_gone || ops->optmin <= BUS_MOVE_ADDR || ops->optmax <= ops->optmin)
		return -EINVAL;
	mutex_lock(&bus_protos_mutex);
	list_for_each_entry(pos, &bus_protos, list) {
		if (pos->protocol == ops->protocol ||
		    (ops->optmin < pos->optmax && pos->optmin < ops->optmax))
			err = -EEXIST;
	}
	if (!err)
		list_add_tail(&ops->list, &bus_protos);
	mutex_unlock(&bus_protos_mutex);
	return err;
}
EXPORT_SYMBOL_GPL(bus_register_proto);

void bus_unregister_proto(struct bus_proto_ops *ops)
{
	/* Buses hold a reference on ops->owner: none uses ops once its module can exit. */
	mutex_lock(&bus_protos_mutex);
	list_del(&ops->list);
	mutex_unlock(&bus_protos_mutex);
}
EXPORT_SYMBOL_GPL(bus_unregister_proto);

/* The module serving @protocol, with a reference on it; NULL if none is loaded. */
static struct bus_proto_ops *bus_get_proto(int protocol)
{
	struct bus_proto_ops *pos, *found = NULL;

	mutex_lock(&bus_protos_mutex);
	list_for_each_entry(pos, &bus_protos, list) {
		if (pos->protocol == protocol && try_module_get(pos->owner)) {
			found = pos;
			break;
		}
	}
	mutex_unlock(&bus_protos_mutex);
	return found;
}

/* ------------------------------------------------------------------ addresses */

static struct bus_sock *bus_lookup_addr(struct bus *bus, u64 addr)
{
	struct bus_address *a;

	hash_for_each_possible(bus->addrs, a, hnode, addr)
		if (a->addr == addr)
			return a->owner;
	return NULL;
}

/* The table entry of @addr (whoever holds it), or NULL. */
static struct bus_address *bus_lookup_entry(struct bus *bus, u64 addr)
{
	struct bus_address *a;

	lockdep_assert_held(&bus->lock);
	hash_for_each_possible(bus->addrs, a, hnode, addr)
		if (a->addr == addr)
			return a;
	return NULL;
}

static struct bus_address *bus_find_own_addr(struct bus_sock *bsk, u64 addr)
{
	struct bus_address *a;

	list_for_each_entry(a, &bsk->addrs, node)
		if (a->addr == addr)
			return a;
	return NULL;
}

static struct bus_prefix *bus_prefix_lookup(struct bus *bus, u16 prefix)
{
	lockdep_assert_held(&bus->lock);
	return prefix ? xa_load(&bus->prefixes, prefix) : &bus->prefix0;
}

/* Put @a into the address table and the multicast index. -ENOMEM only for prefixes other than 0. */
static int bus_hash_addr_locked(struct bus *bus, struct bus_address *a)
{
	struct bus_sock *c = a->owner;
	u16 prefix = BUS_ADDR_PREFIX(a->addr);
	struct bus_prefix *p, *newp = NULL;
	struct bus_holder *h;
	int err;

	lockdep_assert_held(&bus->lock);
	list_for_each_entry(h, &c->holders, cnode)
		if (h->prefix == prefix)
			goto found;
	p = bus_prefix_lookup(bus, prefix);
	if (!p) {
		newp = kzalloc(sizeof(*newp), GFP_KERNEL);
		if (!newp)
			return -ENOMEM;
		INIT_LIST_HEAD(&newp->holders);
		err = xa_insert(&bus->prefixes, prefix, newp, GFP_KERNEL);
		if (err) {
			kfree(newp);
			return err;
		}
		p = newp;
	}
	if (prefix) {
		h = kzalloc(sizeof(*h), GFP_KERNEL);
		if (!h) {
			if (newp) {
				xa_erase(&bus->prefixes, prefix);
				kfree(newp);
			}
			return -ENOMEM;
		}
	} else {
		h = &c->holder0;
	}
	h->c = c;
	h->prefix = prefix;
	h->naddrs = 0;
	list_add_tail(&h->pnode, &p->holders);
	p->nholders++;
	list_add_tail(&h->cnode, &c->holders);
found:
	h->naddrs++;
	hash_add(bus->addrs, &a->hnode, a->addr);
	return 0;
}

static void bus_unhash_addr_locked(struct bus *bus, struct bus_address *a)
{
	struct bus_sock *c = a->owner;
	u16 prefix = BUS_ADDR_PREFIX(a->addr);
	struct bus_prefix *p;
	struct bus_holder *h;

	lockdep_assert_held(&bus->lock);
	if (hlist_unhashed(&a->hnode))
		return;
	hash_del(&a->hnode);
	list_for_each_entry(h, &c->holders, cnode)
		if (h->prefix == prefix)
			break;
	if (WARN_ON_ONCE(list_entry_is_head(h, &c->holders, cnode)) || --h->naddrs)
		return;
	p = bus_prefix_lookup(bus, prefix);
	list_del(&h->pnode);
	list_del(&h->cnode);
	p->nholders--;
	if (prefix) {
		kfree(h);
		if (!p->nholders) {
			xa_erase(&bus->prefixes, prefix);
			kfree(p);
		}
	}
}

/* ------------------------------------------------------------------ socket lifetime */

static void bus_sock_destruct(struct sock *sk)
{
	skb_queue_purge(&sk->sk_receive_queue);
	WARN_ON(atomic_read(&sk->sk_rmem_alloc));
	WARN_ON(atomic_read(&bus_sk(sk)->inq));
	sock_prot_inuse_add(sock_net(sk), sk->sk_prot, -1);
}

static struct sock *bus_sk_alloc(struct net *net, struct socket *sock, int kern, int protocol)
{
	struct bus_sock *bsk;
	struct sock *sk;

	sk = sk_alloc(net, family, GFP_KERNEL, &bus_proto, kern);
	if (!sk)
		return NULL;
	sock_init_data(sock, sk);
	sock_set_flag(sk, SOCK_RCU_FREE);
	sk->sk_destruct = bus_sock_destruct;
	sk->sk_protocol = protocol;
	bsk = bus_sk(sk);
	bsk->bus = NULL;
	bsk->role = BUS_ROLE_NONE;
	bsk->peer = NULL;
	bsk->addr = 0;
	INIT_LIST_HEAD(&bsk->addrs);
	bsk->naddrs = 0;
	INIT_LIST_HEAD(&bsk->holders);
	INIT_LIST_HEAD(&bsk->eav_node);
	bsk->mcast_seq = 0;
	INIT_LIST_HEAD(&bsk->client_node);
	INIT_LIST_HEAD(&bsk->pending_node);
	bsk->joined = false;
	bsk->eavesdrop = false;
	bsk->eavesdrop_monitor = false;
	bsk->maxqlen = BUS_DEFAULT_MAXQLEN;
	init_waitqueue_head(&bsk->peer_wait);
	mutex_init(&bsk->iolock);
	atomic64_set(&bsk->dropped, 0);
	atomic64_set(&bsk->dropped_unread, 0);
	atomic_set(&bsk->outq, 0);
	atomic_set(&bsk->inq, 0);
	atomic64_set(&bsk->sent_dropped, 0);
	atomic64_set(&bsk->sent_dropped_unread, 0);
	INIT_LIST_HEAD(&bsk->wake_pending);
	INIT_LIST_HEAD(&bsk->wake_node);
	bsk->wake_sender = NULL;
	bsk->wake_bus = NULL;
	sock_prot_inuse_add(net, &bus_proto, 1);
	return sk;
}

static void bus_unhash_addrs_locked(struct bus *bus, struct bus_sock *bsk)
{
	struct bus_address *a;

	list_for_each_entry(a, &bsk->addrs, node)
		bus_unhash_addr_locked(bus, a);
}

static void bus_free_addrs(struct bus_sock *bsk)
{
	struct bus_address *a, *tmp;

	list_for_each_entry_safe(a, tmp, &bsk->addrs, node) {
		list_del(&a->node);
		kfree(a);
	}
	bsk->naddrs = 0;
}

static void bus_hangup(struct bus_sock *bsk)
{
	struct sock *sk = &bsk->sk;

	WRITE_ONCE(sk->sk_shutdown, SHUTDOWN_MASK);
	sk->sk_state_change(sk);
	bus_wake_peer_waiters(bsk);
}

/*
 * Disconnect a client from its bus: release its addresses, cut it from its master-side socket and
 * hang both up. Called with bus->lock held. Drops the two peer references.
 */
static void bus_disconnect_client_locked(struct bus *bus, struct bus_sock *c)
{
	struct bus_sock *s = c->peer;

	if (c->role != BUS_ROLE_CLIENT || list_empty(&c->client_node))
		return;
	bus_unhash_addrs_locked(bus, c);
	bus_forget_deferred_wakes_locked(bus, c);
	if (s)
		bus_forget_deferred_wakes_locked(bus, s);
	if (bus->proto_priv)
		bus->proto->client_gone(bus->proto_priv, c->addr);
	if (c->joined)
		bus->stats.joined--;
	if (c->eavesdrop) {
		bus->neavesdrop--;
		list_del_init(&c->eav_node);
	}
	bus->stats.clients--;
	list_del_init(&c->client_node);
	c->joined = false;
	c->eavesdrop = false;
	WRITE_ONCE(c->peer, NULL);
	bus_hangup(c);
	if (s) {
		WRITE_ONCE(s->peer, NULL);
		bus_hangup(s);
		sock_put(&s->sk);	/* c's reference on s */
		sock_put(&c->sk);	/* s's reference on c */
	}
}

static void bus_release_pending(struct bus_sock *s)
{
	struct sock *sk = &s->sk;

	skb_queue_purge(&sk->sk_receive_queue);
	sock_orphan(sk);
	if (s->bus) {
		bus_put(s->bus);
		s->bus = NULL;
	}
	sock_put(sk);
}

static void bus_teardown(struct bus *bus)
{
	struct bus_sock *c, *ctmp, *s, *stmp;
	LIST_HEAD(pending);

	mutex_lock(&bus_table_lock);
	list_del_init(&bus->table_node);
	mutex_unlock(&bus_table_lock);

	mutex_lock(&bus->lock);
	bus->dead = true;
	bus->listener = NULL;
	list_for_each_entry_safe(c, ctmp, &bus->clients, client_node)
		bus_disconnect_client_locked(bus, c);
	list_splice_init(&bus->pending, &pending);
	bus->npending = 0;
	mutex_unlock(&bus->lock);

	list_for_each_entry_safe(s, stmp, &pending, pending_node) {
		list_del_init(&s->pending_node);
		bus_release_pending(s);
	}
}

static int bus_release(struct socket *sock)
{
	struct sock *sk = sock->sk;
	struct bus_sock *bsk;
	struct bus *bus;

	if (!sk)
		return 0;
	bsk = bus_sk(sk);
	bus = bsk->bus;

	if (bus) {
		switch (bsk->role) {
		case BUS_ROLE_LISTENER:
			bus_teardown(bus);
			break;
		case BUS_ROLE_CLIENT:
			mutex_lock(&bus->lock);
			bus_disconnect_client_locked(bus, bsk);
			mutex_unlock(&bus->lock);
			break;
		case BUS_ROLE_MASTER_CONN:
			mutex_lock(&bus->lock);
			if (bsk->peer)
				bus_disconnect_client_locked(bus, bsk->peer);
			mutex_unlock(&bus->lock);
			break;
		default:
			break;
		}
	}

	WRITE_ONCE(sk->sk_shutdown, SHUTDOWN_MASK);
	sock_orphan(sk);
	sock->sk = NULL;
	skb_queue_purge(&sk->sk_receive_queue);
	if (bus) {
		bus_free_addrs(bsk);
		bsk->bus = NULL;
		bus_put(bus);
	}
	sock_put(sk);
	return 0;
}

static int bus_create(struct net *net, struct socket *sock, int protocol, int kern)
{
	struct sock *sk;

	if (sock->type != SOCK_SEQPACKET)
		return -ESOCKTNOSUPPORT;
	if (protocol != BUS_PROTO_NONE && protocol != BUS_PROTO_DBUS)
		return -EPROTONOSUPPORT;
	sock->state = SS_UNCONNECTED;
	sock->ops = &bus_ops;
	sk = bus_sk_alloc(net, sock, kern, protocol);
	if (!sk)
		return -ENOMEM;
	return 0;
}

/* ------------------------------------------------------------------ addressing */

struct bus_name {
	bool abstract;
	int len;			/* bytes of the name */
	char name[BUS_PATH_MAX + 1];	/* NUL-terminated for filesystem paths */
};

/* Validates a sockaddr_bus holding a bus path. */
static int bus_parse_name(const struct sockaddr_bus *sa, int addr_len, struct bus_name *n)
{
	int plen;

	if (addr_len < (int)offsetof(struct sockaddr_bus, sbus_path) + 1 ||
	    addr_len > (int)sizeof(struct sockaddr_bus))
		return -EINVAL;
	if (sa->sbus_family != family)
		return -EAFNOSUPPORT;
	plen = addr_len - offsetof(struct sockaddr_bus, sbus_path);
	memset(n, 0, sizeof(*n));
	if (sa->sbus_path[0] == '\0') {
		if (plen < 2)
			return -EINVAL;
		n->abstract = true;
		n->len = plen;	/* including the leading NUL */
		memcpy(n->name, sa->sbus_path, plen);
	} else {
		memcpy(n->name, sa->sbus_path, plen);
		n->name[plen] = '\0';
		n->len = strlen(n->name) + 1;
	}
	return 0;
}

static int bus_fill_sockaddr(struct bus *bus, u64 addr, struct sockaddr_bus *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sbus_family = family;
	sa->sbus_addr.s_addr = addr;
	if (!bus)
		return offsetof(struct sockaddr_bus, sbus_path);
	memcpy(sa->sbus_path, bus->name, min_t(int, bus->namelen, BUS_PATH_MAX));
	return offsetof(struct sockaddr_bus, sbus_path) + min_t(int, bus->namelen, BUS_PATH_MAX);
}

static struct bus *bus_find(struct net *net, struct bus_name *n, int *err)
{
	struct inode *inode = NULL;
	struct bus *bus, *found = NULL;
	struct path path;

	if (!n->abstract) {
		*err = kern_path(n->name, LOOKUP_FOLLOW, &path);
		if (*err)
			return NULL;
		inode = d_backing_inode(path.dentry);
		*err = inode_permission(bus_mnt_idmap(path.mnt), inode, MAY_WRITE);
		if (*err)
			goto put;
		*err = -ECONNREFUSED;
		if (!S_ISSOCK(inode->i_mode))
			goto put;
	}

	mutex_lock(&bus_table_lock);
	list_for_each_entry(bus, &bus_table, table_node) {
		/*
		 * Abstract names are per network namespace; a filesystem bus is found through its
		 * inode from any namespace that can see the path, as AF_UNIX does.
		 */
		if (bus->abstract != n->abstract ||
		    (n->abstract && !net_eq(read_pnet(&bus->net), net)))
			continue;
		if (n->abstract) {
			if (bus->namelen == n->len && !memcmp(bus->name, n->name, n->len)) {
				found = bus;
				break;
			}
		} else if (d_backing_inode(bus->path.dentry) == inode) {
			found = bus;
			break;
		}
	}
	if (found)
		kref_get(&found->kref);
	mutex_unlock(&bus_table_lock);
	*err = found ? 0 : -ECONNREFUSED;
put:
	if (!n->abstract)
		path_put(&path);
	return found;
}

static int bus_bind(struct socket *sock, struct sockaddr *uaddr, int addr_len)
{
	struct sockaddr_bus *sa = (struct sockaddr_bus *)uaddr;
	struct sock *sk = sock->sk;
	struct bus_sock *bsk = bus_sk(sk);
	struct net *net = sock_net(sk);
	struct bus_proto_ops *proto = NULL;
	struct bus *bus, *other;
	struct bus_name *n;
	int err;

	if (addr_len < (int)offsetof(struct sockaddr_bus, sbus_path))
		return -EINVAL;
	if (sa->sbus_family != family)
		return -EAFNOSUPPORT;
	if (sa->sbus_addr.s_addr != BUS_MASTER_ADDR)
		return -EINVAL;
	/* A protocol bus is never served by nobody: its module must be there, and stays. */
	if (sk->sk_protocol != BUS_PROTO_NONE) {
		proto = bus_get_proto(sk->sk_protocol);
		if (!proto)
			return -EPROTONOSUPPORT;
	}
	err = -ENOMEM;
	n = kmalloc(sizeof(*n), GFP_KERNEL);
	if (!n)
		goto out;
	err = bus_parse_name(sa, addr_len, n);
	if (err)
		goto out;

	lock_sock(sk);
	err = -EINVAL;
	if (bsk->bus || bsk->role != BUS_ROLE_NONE)
		goto out_unlock;
	err = -ENOMEM;
	bus = kzalloc(sizeof(*bus), GFP_KERNEL);
	if (!bus)
		goto out_unlock;
	kref_init(&bus->kref);
	mutex_init(&bus->lock);
	INIT_LIST_HEAD(&bus->table_node);
	write_pnet(&bus->net, net);
	bus->abstract = n->abstract;
	bus->namelen = n->len;
	memcpy(bus->name, n->name, n->len);
	bus->next_client = 1;
	hash_init(bus->addrs);
	INIT_LIST_HEAD(&bus->prefix0.holders);
	xa_init(&bus->prefixes);
	INIT_LIST_HEAD(&bus->eavesdroppers);
	INIT_LIST_HEAD(&bus->clients);
	INIT_LIST_HEAD(&bus->pending);
	bus->maxqlen = BUS_DEFAULT_MAXQLEN;
	bus->listener = bsk;
	bus->protocol = sk->sk_protocol;

	if (!n->abstract) {
		umode_t mode = S_IFSOCK | (SOCK_INODE(sock)->i_mode & ~current_umask());
		struct dentry *dentry;
		struct path parent;

		dentry = kern_path_create(AT_FDCWD, n->name, &parent, 0);
		if (IS_ERR(dentry)) {
			err = PTR_ERR(dentry);
			if (err == -EEXIST)
				err = -EADDRINUSE;
			kfree(bus);
			goto out_unlock;
		}
		err = security_path_mknod(&parent, dentry, mode, 0);
		if (!err)
			err = vfs_mknod(bus_mnt_idmap(parent.mnt), d_inode(parent.dentry),
					dentry, mode, 0);
		if (err) {
			done_path_create(&parent, dentry);
			if (err == -EEXIST)
				err = -EADDRINUSE;
			kfree(bus);
			goto out_unlock;
		}
		bus->path.mnt = mntget(parent.mnt);
		bus->path.dentry = dget(dentry);
		done_path_create(&parent, dentry);
		mutex_lock(&bus_table_lock);
	} else {
		mutex_lock(&bus_table_lock);
		list_for_each_entry(other, &bus_table, table_node) {
			if (other->abstract && net_eq(read_pnet(&other->net), net) &&
			    other->namelen == n->len && !memcmp(other->name, n->name, n->len)) {
				mutex_unlock(&bus_table_lock);
				kfree(bus);
				err = -EADDRINUSE;
				goto out_unlock;
			}
		}
	}
	list_add_tail(&bus->table_node, &bus_table);
	mutex_unlock(&bus_table_lock);
	bus->proto = proto;	/* the bus's reference now */
	proto = NULL;
	bsk->bus = bus;
	smp_store_release(&bsk->role, BUS_ROLE_LISTENER);	/* after bsk->bus: see bus_role() */
	err = 0;
out_unlock:
	release_sock(sk);
out:
	kfree(n);
	if (proto)
		module_put(proto->owner);
	return err;
}

static int bus_listen(struct socket *sock, int backlog)
{
	struct sock *sk = sock->sk;
	struct bus_sock *bsk = bus_sk(sk);
	int err = -EINVAL;

	lock_sock(sk);
	if (bsk->role != BUS_ROLE_LISTENER)
		goto out;
	if (backlog < 0)
		backlog = 0;
	WRITE_ONCE(sk->sk_max_ack_backlog, backlog);
	sk->sk_state = TCP_LISTEN;
	bus_set_peercred_current(sk);
	err = 0;
out:
	release_sock(sk);
	return err;
}

static int bus_connect(struct socket *sock, struct sockaddr *uaddr, int addr_len, int flags)
{
	struct sockaddr_bus *sa = (struct sockaddr_bus *)uaddr;
	struct sock *sk = sock->sk;
	struct bus_sock *bsk = bus_sk(sk), *s;
	struct bus_address *ua;
	struct sock *newsk;
	struct bus_name *n;
	struct bus *bus;
	int err;

	n = kmalloc(sizeof(*n), GFP_KERNEL);
	if (!n)
		return -ENOMEM;
	err = bus_parse_name(sa, addr_len, n);
	if (err)
		goto out_free_name;

	lock_sock(sk);
	if (bsk->role == BUS_ROLE_CLIENT) {
		err = -EISCONN;
		goto out_unlock_sk;
	}
	if (bsk->role != BUS_ROLE_NONE) {
		err = -EINVAL;
		goto out_unlock_sk;
	}
	bus = bus_find(sock_net(sk), n, &err);
	if (!bus)
		goto out_unlock_sk;

	err = -ENOMEM;
	ua = kzalloc(sizeof(*ua), GFP_KERNEL);
	if (!ua)
		goto out_put_bus;
	newsk = bus_sk_alloc(sock_net(sk), NULL, 0, sk->sk_protocol);
	if (!newsk) {
		kfree(ua);
		goto out_put_bus;
	}
	s = bus_sk(newsk);
	newsk->sk_type = SOCK_SEQPACKET;

	mutex_lock(&bus->lock);
	err = -ECONNREFUSED;
	if (bus->dead || !bus->listener || bus->listener->sk.sk_state != TCP_LISTEN)
		goto out_unlock_bus;
	err = -EAGAIN;
	if (bus->npending >= READ_ONCE(bus->listener->sk.sk_max_ack_backlog) + 1U)
		goto out_unlock_bus;
	err = -EADDRNOTAVAIL;
	if (bus->next_client >= BUS_MULTICAST_CLIENT)
		goto out_unlock_bus;

	bsk->addr = BUS_ADDR(0, bus->next_client++);
	ua->addr = bsk->addr;
	ua->owner = bsk;
	INIT_HLIST_NODE(&ua->hnode);
	list_add(&ua->node, &bsk->addrs);

	kref_get(&bus->kref);
	s->bus = bus;
	smp_store_release(&s->role, BUS_ROLE_MASTER_CONN);	/* after s->bus: see bus_role() */
	s->maxqlen = bus->maxqlen;
	bsk->maxqlen = bus->maxqlen;
	if (bus->sndbuf) {
		WRITE_ONCE(sk->sk_sndbuf, bus->sndbuf);
		WRITE_ONCE(newsk->sk_sndbuf, bus->sndbuf);
	}
	if (bus->rcvbuf) {
		WRITE_ONCE(sk->sk_rcvbuf, bus->rcvbuf);
		WRITE_ONCE(newsk->sk_rcvbuf, bus->rcvbuf);
	}
	bsk->bus = bus;		/* the reference taken by bus_find */
	smp_store_release(&bsk->role, BUS_ROLE_CLIENT);	/* after bsk->bus: see bus_role() */
	sock_hold(newsk);
	bsk->peer = s;
	sock_hold(sk);
	s->peer = bsk;
	newsk->sk_state = TCP_ESTABLISHED;
	sk->sk_state = TCP_ESTABLISHED;
	sock->state = SS_CONNECTED;
	bus_set_peercred_current(newsk);
	bus_copy_peercred(sk, &bus->listener->sk);
	list_add_tail(&bsk->client_node, &bus->clients);
	bus->stats.clients++;
	list_add_tail(&s->pending_node, &bus->pending);
	bus->npending++;
	bus->listener->sk.sk_data_ready(&bus->listener->sk);
	mutex_unlock(&bus->lock);
	release_sock(sk);
	kfree(n);
	return 0;

out_unlock_bus:
	mutex_unlock(&bus->lock);
	kfree(ua);
	sock_orphan(newsk);
	sock_put(newsk);
out_put_bus:
	bus_put(bus);
out_unlock_sk:
	release_sock(sk);
out_free_name:
	kfree(n);
	return err;
}

static int bus_do_accept(struct socket *sock, struct socket *newsock, int flags)
{
	struct sock *sk = sock->sk;
	struct bus_sock *bsk = bus_sk(sk), *s = NULL;
	struct bus *bus;
	long timeo;

	if (bus_role(bsk) != BUS_ROLE_LISTENER || sk->sk_state != TCP_LISTEN)
		return -EINVAL;
	bus = bsk->bus;
	timeo = sock_rcvtimeo(sk, flags & O_NONBLOCK);
	for (;;) {
		mutex_lock(&bus->lock);
		if (bus->dead) {
			mutex_unlock(&bus->lock);
			return -EINVAL;
		}
		s = list_first_entry_or_null(&bus->pending, struct bus_sock, pending_node);
		if (s) {
			list_del_init(&s->pending_node);
			bus->npending--;
			/* the accept queue's reference passes to newsock */
			sock_graft(&s->sk, newsock);
			newsock->state = SS_CONNECTED;
			if (test_bit(SOCK_PASSCRED, &sock->flags))
				set_bit(SOCK_PASSCRED, &newsock->flags);
			if (test_bit(SOCK_PASSSEC, &sock->flags))
				set_bit(SOCK_PASSSEC, &newsock->flags);
			mutex_unlock(&bus->lock);
			return 0;
		}
		mutex_unlock(&bus->lock);
		if (!timeo)
			return -EAGAIN;
		timeo = wait_event_interruptible_timeout(*sk_sleep(sk),
							 !list_empty(&bus->pending) ||
							 READ_ONCE(bus->dead),
							 timeo);
		if (timeo < 0)
			return sock_intr_errno(timeo);
		if (signal_pending(current))
			return sock_intr_errno(timeo);
	}
}

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 10, 0)
static int bus_accept(struct socket *sock, struct socket *newsock, struct proto_accept_arg *arg)
{
	return bus_do_accept(sock, newsock, arg->flags);
}
#else
static int bus_accept(struct socket *sock, struct socket *newsock, int flags, bool kern)
{
	return bus_do_accept(sock, newsock, flags);
}
#endif

static int bus_getname(struct socket *sock, struct sockaddr *uaddr, int peer)
{
	struct bus_sock *bsk = bus_sk(sock->sk);
	struct sockaddr_bus *sa = (struct sockaddr_bus *)uaddr;
	enum bus_role role = bus_role(bsk);
	struct bus *bus = role == BUS_ROLE_NONE ? NULL : bsk->bus;
	u64 addr = 0;

	if (peer) {
		if (!bus)
			return -ENOTCONN;
		if (role == BUS_ROLE_CLIENT) {
			addr = BUS_MASTER_ADDR;
		} else if (role == BUS_ROLE_MASTER_CONN) {
			mutex_lock(&bus->lock);
			if (!bsk->peer) {
				mutex_unlock(&bus->lock);
				return -ENOTCONN;
			}
			addr = bsk->peer->addr;
			mutex_unlock(&bus->lock);
		} else {
			return -ENOTCONN;
		}
	} else if (role == BUS_ROLE_CLIENT) {
		addr = bsk->addr;
	}
	return bus_fill_sockaddr(bus, addr, sa);
}

/* ------------------------------------------------------------------ poll */

static __poll_t bus_poll(struct file *file, struct socket *sock, poll_table *wait)
{
	struct sock *sk = sock->sk;
	struct bus_sock *bsk = bus_sk(sk), *peer;
	u8 shutdown;
	__poll_t mask = 0;

	sock_poll_wait(file, sock, wait);
	shutdown = READ_ONCE(sk->sk_shutdown);

	if (READ_ONCE(sk->sk_err))
		mask |= EPOLLERR;
	if (shutdown == SHUTDOWN_MASK)
		mask |= EPOLLHUP;
	if (shutdown & RCV_SHUTDOWN)
		mask |= EPOLLRDHUP | EPOLLIN | EPOLLRDNORM;
	if (!skb_queue_empty_lockless(&sk->sk_receive_queue))
		mask |= EPOLLIN | EPOLLRDNORM;

	switch (bsk->role) {
	case BUS_ROLE_LISTENER:
		if (bsk->bus && !list_empty(&bsk->bus->pending))
			mask |= EPOLLIN | EPOLLRDNORM;
		break;
	case BUS_ROLE_MASTER_CONN:
		if (atomic64_read(&bsk->dropped_unread))
			mask |= EPOLLPRI;
		fallthrough;
	case BUS_ROLE_CLIENT:
		if (shutdown & SEND_SHUTDOWN)
			break;
		if (!sock_writeable(sk))
			break;
		/*
		 * Writable when our own send buffer has room and our connection peer (the master
		 * for a client, the client for a master-side socket) can take a message. No other
		 * receiver on the bus affects this: one slow reader never stalls the bus.
		 */
		rcu_read_lock();
		peer = READ_ONCE(bsk->peer);
		if (!peer || !bus_queue_full(peer))
			mask |= EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND;
		rcu_read_unlock();
		break;
	default:
		break;
	}
	return mask;
}

/* Wake whoever may be waiting for room in @bsk's queue: blocked senders and its peer's pollers. */
static void bus_wake_writers(struct bus_sock *bsk)
{
	struct bus_sock *peer;
	struct socket_wq *wq;

	bus_wake_peer_waiters(bsk);
	rcu_read_lock();
	peer = READ_ONCE(bsk->peer);
	if (peer) {
		wq = rcu_dereference(peer->sk.sk_wq);
		if (skwq_has_sleeper(wq))
			wake_up_interruptible_sync_poll(&wq->wait,
							EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND);
	}
	rcu_read_unlock();
}

/* ------------------------------------------------------------------ send */

static int bus_check_fds(struct scm_fp_list *fp)
{
	int i;

	if (!fp)
		return 0;
	for (i = 0; i < fp->count; i++) {
		struct socket *s = sock_from_file(fp->fp[i]);

		/*
		 * No AF_BUS and no AF_UNIX socket may sit in an AF_BUS queue: a socket whose
		 * own queue (directly, or through AF_UNIX queues) holds the file of the socket
		 * it waits in forms a cycle that nothing collects: AF_UNIX's garbage collector
		 * only sees AF_UNIX queues and AF_BUS has none. Without sockets in AF_BUS
		 * queues, no cycle can pass through one.
		 */
		if (s && s->sk && (s->sk->sk_prot == &bus_proto || s->sk->sk_family == AF_UNIX))
			return -EINVAL;
	}
	if (bus_too_many_fds(fp->user))
		return -ETOOMANYREFS;
	return 0;
}

static bool bus_file_is_io_uring(struct file *file)
{
	/* io_is_uring_fops() is not exported; io_uring files are anon inodes named "[io_uring]" */
	return file->f_path.dentry && !strcmp(file->f_path.dentry->d_name.name, "[io_uring]");
}

#define BUS_MAX_RIGHTS_CMSGS 16

/*
 * scm_send() for AF_BUS. The generic __scm_send() accepts SCM_RIGHTS only on AF_UNIX sockets, so
 * the files are collected here (same limits and errors as AF_UNIX: at most SCM_MAX_FD per message,
 * EBADF for a bad descriptor, EINVAL for an io_uring file) and the SCM_RIGHTS headers are hidden
 * from __scm_send() while it handles SCM_CREDENTIALS and the LSM. The control buffer is the
 * kernel's private copy made by sendmsg(); the headers are restored before returning.
 */
static int bus_scm_send(struct socket *sock, struct msghdr *msg, struct scm_cookie *scm)
{
	struct cmsghdr *hidden[BUS_MAX_RIGHTS_CMSGS];
	struct scm_fp_list *fpl = NULL;
	struct cmsghdr *cmsg;
	int nhidden = 0, err = 0, i;

	if (msg->msg_controllen > 0 && msg->msg_control_is_user)
		return -EINVAL;
	if (msg->msg_controllen <= 0)
		return scm_send(sock, msg, scm, true);

	for_each_cmsghdr(cmsg, msg) {
		int *fdp, num;

		if (!CMSG_OK(msg, cmsg)) {
			err = -EINVAL;
			goto out;
		}
		if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		if (nhidden == BUS_MAX_RIGHTS_CMSGS) {
			err = -EINVAL;
			goto out;
		}
		fdp = (int *)CMSG_DATA(cmsg);
		num = (cmsg->cmsg_len - sizeof(struct cmsghdr)) / sizeof(int);
		if (num <= 0)
			goto hide;
		if (!fpl) {
			fpl = kmalloc(sizeof(*fpl), GFP_KERNEL_ACCOUNT);
			if (!fpl) {
				err = -ENOMEM;
				goto out;
			}
			/*
			 * Zero everything before fp[]: that covers the AF_UNIX garbage
			 * collector's fields (inflight, vertices, edges), present or not
			 * depending on the kernel (mainline 6.9+, backported into Debian's
			 * 6.1). Only AF_UNIX queues use them; scm_fp_dup() initialises the
			 * copies' own.
			 */
			memset(fpl, 0, offsetof(struct scm_fp_list, fp));
			fpl->max = SCM_MAX_FD;
			fpl->user = get_uid(current_user());
		}
		if (fpl->count + num > fpl->max) {
			err = -EINVAL;
			goto out;
		}
		for (i = 0; i < num; i++) {
			struct file *file;

			if (fdp[i] < 0) {
				err = -EBADF;
				goto out;
			}
			file = fget_raw(fdp[i]);
			if (!file) {
				err = -EBADF;
				goto out;
			}
			if (bus_file_is_io_uring(file)) {
				fput(file);
				err = -EINVAL;
				goto out;
			}
			fpl->fp[fpl->count++] = file;
		}
hide:
		cmsg->cmsg_level = SOL_BUS;
		hidden[nhidden++] = cmsg;
	}
	err = scm_send(sock, msg, scm, true);
	if (!err) {
		scm->fp = fpl;
		fpl = NULL;
	}
out:
	for (i = 0; i < nhidden; i++)
		hidden[i]->cmsg_level = SOL_SOCKET;
	if (fpl) {
		struct scm_cookie tmp = { .fp = fpl };

		__scm_destroy(&tmp);
	}
	return err;
}

/*
 * The bus filter (BUS_SET_FILTER) as the built-in delivery handler. It judges client sends only
 * (the master installed it) and not eavesdropper copies. bus->lock is held by the caller.
 */
static int bus_filter_hook(void *priv, const struct bus_hook_ctx *ctx)
{
	const struct bus *bus = ctx->bus;

	if (!bus->filter || ctx->from_master || ctx->kind == BUS_HOOK_EAVESDROP)
		return BUS_HOOK_ACCEPT;
	switch (bus_filter_eval(bus->filter, ctx->skb, ctx->src, ctx->dst, ctx->rcpt,
				ctx->kind == BUS_HOOK_MULTICAST)) {
	case BUS_FILTER_ACCEPT:
		return BUS_HOOK_ACCEPT;
	case BUS_FILTER_DROP:
		return BUS_HOOK_DROP;
	default:
		return -EACCES;
	}
}

static struct bus_hook_ops bus_filter_ops = {
	.hook = bus_filter_hook,
	.point = BUS_HOOK_DELIVER,
	.priority = BUS_HOOK_PRI_FILTER,
};

static void bus_hook_ctx_init(struct bus_hook_ctx *ctx, struct bus *bus, struct sk_buff *skb,
			      struct bus_sock *sender, enum bus_hook_kind kind)
{
	struct bus_skb_parms *cb = &BUSCB(skb);

	lockdep_assert_held(&bus->lock);	/* peers and joined states are stable */
	memset(ctx, 0, sizeof(*ctx));
	ctx->bus = bus;
	ctx->skb = skb;
	ctx->sender = &sender->sk;
	ctx->src = bus_cb_src(cb);
	ctx->dst = cb->dst;
	ctx->kind = kind;
	ctx->from_master = sender->role == BUS_ROLE_MASTER_CONN;
	if (ctx->from_master)
		ctx->before_join = sender->peer && !sender->peer->joined && ctx->dst == sender->peer->addr;
	else
		ctx->before_join = !sender->joined;
	ctx->protocol = sender->sk.sk_protocol;
	ctx->bus_protocol = bus->protocol;
	ctx->proto_priv = bus->proto_priv;
}

/* The send hooks: BUS_HOOK_ACCEPT, BUS_HOOK_DROP or -errno. Non-accepts count as filter drops. */
static int bus_send_verdict_locked(struct bus *bus, struct sk_buff *skb, struct bus_sock *sender)
{
	struct bus_hook_ctx ctx;
	int v;

	lockdep_assert_held(&bus->lock);
	if (list_empty(&bus_hooks[BUS_HOOK_SEND]))
		return BUS_HOOK_ACCEPT;
	bus_hook_ctx_init(&ctx, bus, skb, sender,
			  BUS_IS_MULTICAST(BUSCB(skb).dst) ? BUS_HOOK_MULTICAST : BUS_HOOK_UNICAST);
	v = bus_run_hooks(BUS_HOOK_SEND, &ctx);
	if (v != BUS_HOOK_ACCEPT)
		bus->stats.filter_drops++;
	return v;
}

/* The delivery hooks for receiver @r with a context prepared for the message (bus_hook_ctx_init). */
static int bus_deliver_verdict_ctx_locked(struct bus *bus, struct bus_hook_ctx *ctx, struct bus_sock *r)
{
	int v;

	lockdep_assert_held(&bus->lock);
	ctx->receiver = &r->sk;
	ctx->rcpt = r->role == BUS_ROLE_CLIENT ? r->addr : BUS_MASTER_ADDR;
	v = bus_run_hooks(BUS_HOOK_DELIVER, ctx);
	if (v != BUS_HOOK_ACCEPT)
		bus->stats.filter_drops++;
	return v;
}

/* The delivery hooks for receiver @r, as bus_send_verdict_locked(). */
static int bus_deliver_verdict_locked(struct bus *bus, struct sk_buff *skb,
				      struct bus_sock *sender, struct bus_sock *r,
				      enum bus_hook_kind kind)
{
	struct bus_hook_ctx ctx;

	bus_hook_ctx_init(&ctx, bus, skb, sender, kind);
	return bus_deliver_verdict_ctx_locked(bus, &ctx, r);
}

/*
 * Paged bytes per sk_buff: alloc_skb_with_frags() takes at most MAX_SKB_FRAGS pages of data on
 * 6.1 whatever the page order, so that is what we ask of every kernel.
 */
#define BUS_CHUNK	(MAX_SKB_FRAGS * PAGE_SIZE)

/*
 * Allocate the sk_buff of a @len byte message, charged to @sk's send buffer. Small messages are
 * linear; larger ones get a linear head of at most SKB_MAX_ALLOC bytes (an order-2 allocation at
 * most), BUS_CHUNK bytes of page fragments and, beyond that, a frag_list of further paged skbs of
 * BUS_CHUNK bytes each, so no allocation is ever above PAGE_ALLOC_COSTLY_ORDER whatever the size
 * (D-Bus allows 128 MiB). The whole message is charged to sk_wmem_alloc through the head's
 * truesize; @len itself is bounded by SO_SNDBUF by the caller.
 */
static struct sk_buff *bus_alloc_msg(struct sock *sk, size_t len, int noblock, int *err)
{
	size_t linear = min_t(size_t, len, SKB_MAX_ALLOC);
	size_t data_len = min_t(size_t, len - linear, BUS_CHUNK);
	size_t rest = len - linear - data_len;
	struct sk_buff *skb, *frag, **tail;

	BUILD_BUG_ON(SKB_MAX_ALLOC < PAGE_SIZE);
	skb = sock_alloc_send_pskb(sk, linear, data_len, noblock, err, PAGE_ALLOC_COSTLY_ORDER);
	if (!skb)
		return NULL;
	skb_put(skb, linear);
	skb->data_len = data_len;
	skb->len = linear + data_len;

	tail = &skb_shinfo(skb)->frag_list;
	while (rest) {
		size_t chunk = min_t(size_t, rest, BUS_CHUNK);

		if (fatal_signal_pending(current)) {
			*err = -EINTR;
			goto fail;
		}
		frag = alloc_skb_with_frags(0, chunk, PAGE_ALLOC_COSTLY_ORDER, err,
					    sk->sk_allocation);
		if (!frag)
			goto fail;
		frag->data_len = chunk;
		frag->len = chunk;
		*tail = frag;
		tail = &frag->next;
		skb->len += chunk;
		skb->data_len += chunk;
		/* sock_wfree() of the head uncharges head->truesize: charge the chunk with it */
		skb->truesize += frag->truesize;
		refcount_add(frag->truesize, &sk->sk_wmem_alloc);
		rest -= chunk;
		cond_resched();
	}
	return skb;
fail:
	kfree_skb(skb);
	return NULL;
}

/*
 * Account a drop of a copy of @sender's message for receiver @r (multicast or eavesdropper
 * overflow, a unicast the protocol dropped or refused at a full queue), visible to the master: to
 * the receiver (BUS_GET_QLENFULL, POLLPRI) and to the sender (BUS_GET_SENDER_DROPS), so that the
 * master can tell a slow reader from a flooding sender.
 */
static void bus_count_drop_locked(struct bus *bus, struct bus_sock *r, struct bus_sock *sender)
{
	struct bus_sock *m;
	struct socket_wq *wq;

	lockdep_assert_held(&bus->lock);
	atomic64_inc(&sender->sent_dropped);
	atomic64_inc(&sender->sent_dropped_unread);
	atomic64_inc(&r->dropped);
	bus->stats.overflow_drops++;
	m = r->role == BUS_ROLE_CLIENT ? r->peer : NULL;
	if (!m)
		return;
	atomic64_inc(&m->dropped_unread);
	rcu_read_lock();
	wq = rcu_dereference(m->sk.sk_wq);
	if (skwq_has_sleeper(wq))
		wake_up_interruptible_poll(&wq->wait, EPOLLPRI);
	rcu_read_unlock();
}

/*
 * What the bus's protocol does with @skb for @r, whose queue is full: 1 to drop it, -errno to
 * refuse it (the send fails), 0 to let @sender wait for room.
 */
static int bus_when_full_locked(struct bus *bus, struct sk_buff *skb, struct bus_sock *sender,
				struct bus_sock *r)
{
	const struct bus_proto_ops *proto = bus->proto;
	struct bus_hook_ctx ctx;

	lockdep_assert_held(&bus->lock);
	if (!proto || (!proto->drop_when_full && !proto->refuse_when_full))
		return 0;
	bus_hook_ctx_init(&ctx, bus, skb, sender, BUS_HOOK_UNICAST);
	ctx.receiver = &r->sk;
	ctx.rcpt = r->role == BUS_ROLE_CLIENT ? r->addr : BUS_MASTER_ADDR;
	if (proto->drop_when_full && proto->drop_when_full(bus->proto_priv, &ctx))
		return 1;
	return proto->refuse_when_full ? proto->refuse_when_full(bus->proto_priv, &ctx) : 0;
}

/*
 * Queue a copy of @skb for @c, a multicast recipient or an eavesdropper the hooks accepted: at a
 * full queue, or without memory for the copy, the copy is dropped and counted against @sender.
 */
static void bus_queue_copy_locked(struct bus *bus, struct bus_sock *c, struct sk_buff *skb,
				  struct bus_sock *sender, struct bus_wake *wake)
{
	struct sk_buff *copy;

	lockdep_assert_held(&bus->lock);
	if (bus_queue_full(c)) {
		bus_count_drop_locked(bus, c, sender);
		return;
	}
	copy = bus_copy_skb(skb);
	if (!copy) {
		bus_count_drop_locked(bus, c, sender);
		return;
	}
	bus_enqueue(c, copy, wake);
	bus->stats.copies++;
}

/*
 * Deliver a copy to every eavesdropper except @skip1/@skip2 (sender and recipient).
 * Called with bus->lock held.
 */
static void bus_eavesdrop_locked(struct bus *bus, struct sk_buff *skb,
				 struct bus_sock *sender, struct bus_sock *skip2, bool mcast,
				 struct bus_wake *wake)
{
	struct bus_sock *c;

	lockdep_assert_held(&bus->lock);
	list_for_each_entry(c, &bus->eavesdroppers, eav_node) {
		if (c == sender || c == skip2)
			continue;
		if (mcast && c->mcast_seq == bus->mcast_seq)
			continue;	/* it was a multicast recipient */
		if (c->eavesdrop_monitor) {
			/* the master shows its monitors its own traffic itself ... */
			if (sender->role == BUS_ROLE_MASTER_CONN ||
			    (skip2 && skip2->role == BUS_ROLE_MASTER_CONN))
				continue;
			/* ... and admitted them: the protocol's eavesdrop checks are not theirs */
		} else if (bus_deliver_verdict_locked(bus, skb, sender, c, BUS_HOOK_EAVESDROP) !=
			   BUS_HOOK_ACCEPT) {
			continue;
		}
		bus_queue_copy_locked(bus, c, skb, sender, wake);
	}
}

static bool bus_has_eavesdroppers(struct bus *bus)
{
	return bus->neavesdrop != 0;
}

/* Whether joined client @c holds an address in @prefix (is in its multicast index). */
static bool bus_holds_prefix(struct bus_sock *c, u16 prefix)
{
	struct bus_holder *h;

	list_for_each_entry(h, &c->holders, cnode)
		if (h->prefix == prefix)
			return true;
	return false;
}

/* Offers the multicast in ctx to holder @c: the delivery hooks judge, then it is queued or not. */
static void bus_multicast_copy_locked(struct bus *bus, struct bus_hook_ctx *ctx, struct bus_sock *c,
				      struct sk_buff *skb, struct bus_sock *sender, struct bus_wake *wake)
{
	/* a reject (-errno) of one copy acts as a drop: the others are still delivered */
	if (bus_deliver_verdict_ctx_locked(bus, ctx, c) != BUS_HOOK_ACCEPT)
		return;
	/*
	 * A recipient: no eavesdropper copy for it. A holder whose copy the hooks refused (a D-Bus
	 * client without a matching rule, e.g. a monitor) may still get one.
	 */
	c->mcast_seq = bus->mcast_seq;
	bus_queue_copy_locked(bus, c, skb, sender, wake);
}

static int bus_send_multicast_locked(struct bus *bus, struct bus_sock *bsk, struct sk_buff *skb,
				     struct bus_wake *wake)
{
	struct bus_skb_parms *cb = &BUSCB(skb);
	u16 prefix = BUS_ADDR_PREFIX(cb->dst);
	struct bus_prefix *p = bus_prefix_lookup(bus, prefix);
	struct bus_sock *c;
	struct bus_hook_ctx ctx;
	struct bus_holder *h;
	const u64 *rcpts = NULL;
	unsigned int nrcpt;
	bool to_sender = bus->proto && bus->proto->multicast_to_sender;
	int i, listed = -1;

	lockdep_assert_held(&bus->lock);
	/* one context for every copy: only the receiver changes */
	bus_hook_ctx_init(&ctx, bus, skb, bsk, BUS_HOOK_MULTICAST);
	if (p && bus->proto && bus->proto->multicast_receivers)
		listed = bus->proto->multicast_receivers(bus->proto_priv, &ctx, &rcpts);
	if (cb->fp && p) {
		nrcpt = listed >= 0 ? listed : p->nholders;
		if (listed < 0)
			list_for_each_entry(h, &bsk->holders, cnode)
				if (h->prefix == prefix && !to_sender)
					nrcpt--;	/* the sender gets no copy */
		if ((u64)nrcpt * cb->fp->count > BUS_MCAST_MAX_FDREFS)
			return -ETOOMANYREFS;
	}
	bus->stats.multicast++;
	bus->mcast_seq++;
	if (!p)
		goto eavesdrop;
	if (listed >= 0) {
		/* the protocol's receivers only: the other holders would refuse it */
		for (i = 0; i < listed; i++) {
			c = bus_lookup_addr(bus, rcpts[i]);
			if (!c || (c == bsk && !to_sender) || c->mcast_seq == bus->mcast_seq ||
			    !bus_holds_prefix(c, prefix))
				continue;
			bus_multicast_copy_locked(bus, &ctx, c, skb, bsk, wake);
		}
		goto eavesdrop;
	}
	list_for_each_entry(h, &p->holders, pnode) {
		c = h->c;
		if (c == bsk && !to_sender)
			continue;
		bus_multicast_copy_locked(bus, &ctx, c, skb, bsk, wake);
	}
eavesdrop:
	if (bus_has_eavesdroppers(bus))
		bus_eavesdrop_locked(bus, skb, bsk, NULL, true, wake);
	return 0;
}

static int bus_sendmsg(struct socket *sock, struct msghdr *msg, size_t len)
{
	struct sock *sk = sock->sk;
	struct bus_sock *bsk = bus_sk(sk), *r;
	enum bus_role role;
	struct bus *bus;
	int verdict;
	struct bus_skb_parms *cb;
	struct sk_buff *skb = NULL;
	struct bus_wake wake = { .n = 0 };
	struct scm_cookie scm;
	long timeo;
	u64 dst;
	u32 secid = 0;
	int err;

	if (msg->msg_flags & MSG_OOB)
		return -EOPNOTSUPP;
	role = bus_role(bsk);
	if (role == BUS_ROLE_LISTENER)
		return -EOPNOTSUPP;
	if (role != BUS_ROLE_CLIENT && role != BUS_ROLE_MASTER_CONN)
		return -ENOTCONN;
	bus = bsk->bus;

	if (msg->msg_name) {
		DECLARE_SOCKADDR(struct sockaddr_bus *, sa, msg->msg_name);

		if (msg->msg_namelen < (int)offsetof(struct sockaddr_bus, sbus_path))
			return -EINVAL;
		if (sa->sbus_family != family)
			return -EAFNOSUPPORT;
		dst = sa->sbus_addr.s_addr;
	} else if (bsk->role == BUS_ROLE_CLIENT) {
		dst = BUS_MASTER_ADDR;
	} else {
		rcu_read_lock();	/* the peer may be disconnected and freed meanwhile */
		r = READ_ONCE(bsk->peer);
		dst = r ? r->addr : 0;
		rcu_read_unlock();
		if (!r)
			goto pipe;
	}
	if (bsk->role == BUS_ROLE_MASTER_CONN && dst == BUS_MASTER_ADDR)
		return -EINVAL;

	if (READ_ONCE(sk->sk_shutdown) & SEND_SHUTDOWN)
		goto pipe;
	if (len > (size_t)READ_ONCE(sk->sk_sndbuf) - 32)
		return -EMSGSIZE;

	err = bus_scm_send(sock, msg, &scm);
	if (err < 0)
		return err;
	err = bus_check_fds(scm.fp);
	if (err)
		goto out_scm;

	skb = bus_alloc_msg(sk, len, msg->msg_flags & MSG_DONTWAIT, &err);
	if (!skb)
		goto out_scm;
	err = skb_copy_datagram_from_iter(skb, 0, &msg->msg_iter, len);
	if (err) {
		kfree_skb(skb);
		goto out_scm;
	}

	BUILD_BUG_ON(sizeof(struct bus_skb_parms) > sizeof_field(struct sk_buff, cb));
	cb = &BUSCB(skb);
	memset(cb, 0, sizeof(*cb));
	cb->pid = scm.pid;
	scm.pid = NULL;
	if (scm.fp) {
		err = bus_fds_charge(scm.fp, GFP_KERNEL);
		if (err) {
			put_pid(cb->pid);
			cb->pid = NULL;
			kfree_skb(skb);
			goto out_scm;
		}
		cb->fp = scm.fp;
		cb->flags |= BUS_CB_FDS_CHARGED;
		scm.fp = NULL;
	}
	cb->uid = scm.creds.uid;
	cb->gid = scm.creds.gid;
#ifdef CONFIG_SECURITY_NETWORK
	secid = scm.secid;
#endif
	if (!secid)
		security_current_getsecid_subj(&secid);
	cb->secid = secid;
	sock_hold(sk);
	cb->sender = bsk;
	cb->dst = dst;
	scm_destroy(&scm);

	timeo = sock_sndtimeo(sk, msg->msg_flags & MSG_DONTWAIT);
	if (bus_may_defer_wakes(bsk, msg, timeo))
		wake.batch = bsk;
restart:
	mutex_lock(&bus->lock);
	if (bus->dead || !bsk->peer || (READ_ONCE(sk->sk_shutdown) & SEND_SHUTDOWN)) {
		mutex_unlock(&bus->lock);
		bus_cb_release(skb);
		kfree_skb(skb);
		goto pipe;
	}
	if (BUS_IS_MULTICAST(dst) && bsk->role == BUS_ROLE_CLIENT && !bsk->joined) {
		err = -EPERM;
		goto out_unlock;
	}
	verdict = bus_send_verdict_locked(bus, skb, bsk);
	if (verdict == BUS_HOOK_DROP)
		goto dropped;
	if (verdict < 0) {
		err = verdict;
		goto out_unlock;
	}
	if (BUS_IS_MULTICAST(dst)) {
		err = bus_send_multicast_locked(bus, bsk, skb, &wake);
		bus_unlock_and_wake(bus, bsk, &wake);
		if (err)
			goto out_free;
		bus_cb_release(skb);
		consume_skb(skb);
		return len;
	}

	/* unicast: find the receiver */
	if (bsk->role == BUS_ROLE_CLIENT) {
		if (dst == BUS_MASTER_ADDR) {
			r = bsk->peer;
		} else if (!bsk->joined) {
			err = -EPERM;	/* before BUS_JOIN_BUS a client reaches only the master */
			goto out_unlock;
		} else {
			r = bus_lookup_addr(bus, dst);
			if (!r)
				r = bsk->peer;	/* nobody holds it: the master decides */
		}
	} else {
		r = bus_lookup_addr(bus, dst);
		if (!r && bsk->peer->addr == dst)
			r = bsk->peer;
		if (!r) {
			err = -EHOSTUNREACH;
			goto out_unlock;
		}
	}

	if (bus_queue_full(r)) {
		DEFINE_WAIT(wait);
		int full = bus_when_full_locked(bus, skb, bsk, r);

		if (full < 0) {
			/* EXFULL is the full queue's doing, another errno the protocol's verdict */
			if (full == -EXFULL)
				bus_count_drop_locked(bus, r, bsk);
			err = full;
			goto out_unlock;
		}
		if (full) {
			/* As if delivered, for the hooks that keep state: a dropped reply settles its call. */
			verdict = bus_deliver_verdict_locked(bus, skb, bsk, r, BUS_HOOK_UNICAST);
			if (verdict < 0) {
				err = verdict;
				goto out_unlock;
			}
			if (verdict != BUS_HOOK_DROP)
				bus_count_drop_locked(bus, r, bsk);
			goto dropped;
		}
		if (!timeo) {
			err = -EAGAIN;
			goto out_unlock;
		}
		sock_hold(&r->sk);
		prepare_to_wait(&r->peer_wait, &wait, TASK_INTERRUPTIBLE);
		mutex_unlock(&bus->lock);
		if (bus_queue_full(r) && !(READ_ONCE(r->sk.sk_shutdown) & RCV_SHUTDOWN))
			timeo = schedule_timeout(timeo);
		finish_wait(&r->peer_wait, &wait);
		sock_put(&r->sk);
		if (signal_pending(current)) {
			err = sock_intr_errno(timeo);
			goto out_free;
		}
		goto restart;
	}

	/*
	 * The delivery verdict comes last, when nothing can stop the delivery any more: a handler
	 * that keeps state (af_bus_dbus.ko records a call, consumes the record of a reply) sees
	 * each message delivered once, not once per wait for room.
	 */
	verdict = bus_deliver_verdict_locked(bus, skb, bsk, r, BUS_HOOK_UNICAST);
	if (verdict == BUS_HOOK_DROP)
		goto dropped;
	if (verdict < 0) {
		err = verdict;
		goto out_unlock;
	}

	if (bus_has_eavesdroppers(bus))
		bus_eavesdrop_locked(bus, skb, bsk, r, false, &wake);
	skb_orphan(skb);
	bus_enqueue(r, skb, &wake);
	bus->stats.unicast++;
	bus_unlock_and_wake(bus, bsk, &wake);
	return len;

dropped:	/* a hook dropped it: the sender sees success */
	mutex_unlock(&bus->lock);
	bus_cb_release(skb);
	consume_skb(skb);
	return len;
out_unlock:
	mutex_unlock(&bus->lock);
out_free:
	bus_cb_release(skb);
	kfree_skb(skb);
	return err;
out_scm:
	scm_destroy(&scm);
	return err;
pipe:
	if (!(msg->msg_flags & MSG_NOSIGNAL))
		send_sig(SIGPIPE, current, 0);
	return -EPIPE;
}

/* ------------------------------------------------------------------ receive */

/*
 * BUS_RECV_WHOLE: takes the head of the receive queue unless it is longer than @size. The
 * length is looked at and the skb unlinked in one hold of the queue's lock: a message queued
 * after a look at an empty queue must not be taken, and cut, by a read too short for it.
 * Returns the skb; or NULL with *err -EMSGSIZE (the head stays queued), -EAGAIN (nothing
 * queued) or the socket's error. *last is the tail seen, for __skb_wait_for_more_packets(),
 * as __skb_try_recv_datagram() gives it.
 */
static struct sk_buff *bus_try_recv_whole(struct sock *sk, size_t size, int *err,
					  struct sk_buff **last)
{
	struct sk_buff_head *queue = &sk->sk_receive_queue;
	struct sk_buff *skb;

	*err = sock_error(sk);
	if (*err)
		return NULL;
	spin_lock_bh(&queue->lock);	/* _bh: see SIOCINQ */
	*last = queue->prev;
	skb = skb_peek(queue);
	if (!skb)
		*err = -EAGAIN;
	else if (skb->len > size)
		*err = -EMSGSIZE;
	else
		__skb_unlink(skb, queue);
	spin_unlock_bh(&queue->lock);
	return *err ? NULL : skb;
}

static int bus_recvmsg(struct socket *sock, struct msghdr *msg, size_t size, int flags)
{
	struct sock *sk = sock->sk;
	struct bus_sock *bsk = bus_sk(sk);
	struct bus_skb_parms *cb;
	struct scm_cookie scm;
	struct sk_buff *skb;
	enum bus_role role;
	bool was_full, whole;
	u8 recv_flags;
	long timeo;
	int err;

	if (flags & MSG_OOB)
		return -EOPNOTSUPP;
	role = bus_role(bsk);
	if (role == BUS_ROLE_LISTENER)
		return -EINVAL;
	if (role == BUS_ROLE_NONE)
		return -ENOTCONN;

	/*
	 * Receivers are serialised by iolock (as AF_UNIX does): a MSG_PEEK duplicates cb->fp while
	 * a normal receive takes it over and frees it, so the two must never overlap on one skb.
	 * The lock is not held while sleeping for a message.
	 */
	recv_flags = READ_ONCE(bsk->recv_flags);
	whole = (recv_flags & BUS_RECV_WHOLE) && !(flags & MSG_PEEK);
	timeo = sock_rcvtimeo(sk, flags & MSG_DONTWAIT);
	for (;;) {
		struct sk_buff *last;
		int off = 0;

		mutex_lock(&bsk->iolock);
		/* BUS_RECV_WHOLE: a message that does not fit stays queued (-EMSGSIZE) */
		if (whole)
			skb = bus_try_recv_whole(sk, size, &err, &last);
		else
			skb = __skb_try_recv_datagram(sk, &sk->sk_receive_queue, flags, &off, &err, &last);
		if (skb)
			break;
		mutex_unlock(&bsk->iolock);
		if (err != -EAGAIN)
			return err;
		if (READ_ONCE(sk->sk_shutdown) & RCV_SHUTDOWN)
			return 0;
		if (!timeo)
			return -EAGAIN;
		if (__skb_wait_for_more_packets(sk, &sk->sk_receive_queue, &err, &timeo, last)) {
			if (err)
				return err;
			if (READ_ONCE(sk->sk_shutdown) & RCV_SHUTDOWN)
				return 0;
		}
	}
	/*
	 * Was the queue full before this dequeue? Then somebody may wait for room: wake them once
	 * the skb's memory is uncharged (below). Not full: nobody can be waiting for this receiver
	 * (a sender registers on peer_wait before re-checking fullness), so skip the barriers.
	 */
	was_full = !(flags & MSG_PEEK) && bus_queue_full_with(bsk, 1);

	cb = &BUSCB(skb);
	if (msg->msg_name) {
		DECLARE_SOCKADDR(struct sockaddr_bus *, sa, msg->msg_name);

		msg->msg_namelen = bus_fill_sockaddr(bsk->bus, bus_cb_src(cb), sa);
	}
	if (size > skb->len)
		size = skb->len;
	else if (size < skb->len)
		msg->msg_flags |= MSG_TRUNC;
	err = skb_copy_datagram_msg(skb, 0, msg, size);
	if (err)
		goto out_free;
	if (recv_flags & BUS_RECV_QUEUED) {
		/* behind it: the queue's length less the skb itself when peeking */
		u32 behind = skb_queue_len_lockless(&sk->sk_receive_queue) - !!(flags & MSG_PEEK);

		err = put_cmsg(msg, SOL_BUS, SCM_BUS_QUEUED, sizeof(behind), &behind);
		if (err)
			goto out_free;
	}

	memset(&scm, 0, sizeof(scm));
	scm_set_cred(&scm, cb->pid, cb->uid, cb->gid);
#ifdef CONFIG_SECURITY_NETWORK
	scm.secid = cb->secid;
#endif
	if (cb->fp) {
		if (!(flags & MSG_PEEK))
			scm.fp = bus_cb_take_fds(cb);	/* no longer in flight */
		else
			scm.fp = scm_fp_dup(cb->fp);
	}
	scm_recv(sock, msg, &scm, flags);
	err = (flags & MSG_TRUNC) ? skb->len : size;
out_free:
	skb_free_datagram(sk, skb);
	mutex_unlock(&bsk->iolock);
	if (was_full)
		bus_wake_writers(bsk);
	return err;
}

/* ------------------------------------------------------------------ options */

/*
 * BUS_MOVE_ADDR: @addr now belongs to @to (joined), taken from whoever held it, in one hold of the
 * bus lock: every delivery sees it held by the old owner or by the new one, never by nobody (a
 * well-known name changing owners). @fresh is a new entry for @to; returns the entry to free.
 */
static struct bus_address *bus_move_addr_locked(struct bus *bus, struct bus_sock *to, u64 addr,
						struct bus_address *fresh, int *err)
{
	struct bus_address *old = bus_lookup_entry(bus, addr);
	struct bus_sock *from;

	lockdep_assert_held(&bus->lock);
	if (!to->joined) {
		*err = -ENOTCONN;
		return fresh;
	}
	if (old && old->owner == to) {
		*err = -EALREADY;
		return fresh;
	}
	if (to->naddrs >= BUS_MAX_ADDRS) {
		*err = -ENOSPC;
		return fresh;
	}
	/* The new entry first: an allocation failure leaves everything as it was. */
	fresh->addr = addr;
	fresh->owner = to;
	*err = bus_hash_addr_locked(bus, fresh);
	if (*err)
		return fresh;
	list_add_tail(&fresh->node, &to->addrs);
	to->naddrs++;
	if (!old)
		return NULL;
	from = old->owner;
	bus_unhash_addr_locked(bus, old);
	list_del(&old->node);
	from->naddrs--;
	return old;
}

/* An option of the bus's protocol module (struct bus_proto_ops), set by the master. */
static int bus_proto_setsockopt(struct bus_sock *bsk, int optname, sockptr_t optval,
				unsigned int optlen)
{
	enum bus_role role = bus_role(bsk);
	struct bus *bus = bsk->bus;	/* valid when role != NONE */
	struct bus_proto_ops *proto;
	struct bus_sock *peer;
	bool joined = false;
	void *val = NULL;
	u64 client = 0;
	int err;

	if (role == BUS_ROLE_NONE)
		return -ENOPROTOOPT;
	proto = bus->proto;	/* set at bind, before the role was published */
	if (!proto || optname < proto->optmin || optname >= proto->optmax)
		return -ENOPROTOOPT;
	if (!bus_is_master(role))
		return -EPERM;
	if (optlen > BUS_PROTO_OPT_MAX)
		return -EMSGSIZE;
	if (optlen) {
		val = kvmalloc(optlen, GFP_KERNEL);
		if (!val)
			return -ENOMEM;
		if (copy_from_sockptr(val, optval, optlen)) {
			kvfree(val);
			return -EFAULT;
		}
	}
	mutex_lock(&bus->lock);
	if (role == BUS_ROLE_MASTER_CONN) {
		peer = bsk->peer;
		if (!peer) {
			err = -ENOTCONN;
			goto out;
		}
		client = peer->addr;
		joined = peer->joined;
	}
	err = proto->setsockopt(&bus->proto_priv, client, joined, optname, val, optlen);
out:
	mutex_unlock(&bus->lock);
	kvfree(val);
	return err;
}

static int bus_setsockopt(struct socket *sock, int level, int optname, sockptr_t optval,
			  unsigned int optlen)
{
	struct bus_sock *bsk = bus_sk(sock->sk), *c, *peer;
	enum bus_role role = bus_role(bsk);
	struct bus *bus = bsk->bus;	/* valid when role != NONE */
	struct bus_filter *f = NULL, *old;
	struct bus_address *a;
	struct bus_addr ba;
	int val, eavesdrop_flags = 0, err = 0;

	if (level != SOL_BUS)
		return -ENOPROTOOPT;

	switch (optname) {
	case BUS_SET_RECV_FLAGS:
		/* the socket's own reads: anybody's, in any role */
		if (optlen < sizeof(int))
			return -EINVAL;
		if (copy_from_sockptr(&val, optval, sizeof(val)))
			return -EFAULT;
		if (val & ~BUS_RECV_ALL)
			return -EINVAL;
		WRITE_ONCE(bsk->recv_flags, val);
		return 0;
	case BUS_ADD_ADDR:
	case BUS_JOIN_BUS:
	case BUS_DEL_ADDR:
	case BUS_MOVE_ADDR:
	case BUS_SET_EAVESDROP:
	case BUS_UNSET_EAVESDROP:
	case BUS_SET_SENDBUF:
	case BUS_SET_RECVBUF:
	case BUS_SET_MAXQLEN:
	case BUS_SET_FILTER:
	case BUS_DEL_FILTER:
		break;
	default:
		return bus_proto_setsockopt(bsk, optname, optval, optlen);
	}
	if (!bus_is_master(role))
		return -EPERM;

	switch (optname) {
	case BUS_ADD_ADDR:
	case BUS_DEL_ADDR:
	case BUS_MOVE_ADDR:
		if (bsk->role != BUS_ROLE_MASTER_CONN)
			return -EINVAL;
		if (optlen < sizeof(ba))
			return -EINVAL;
		if (copy_from_sockptr(&ba, optval, sizeof(ba)))
			return -EFAULT;
		if (BUS_ADDR_PREFIX(ba.s_addr) == 0 || BUS_IS_MULTICAST(ba.s_addr) ||
		    BUS_ADDR_CLIENT(ba.s_addr) == 0)
			return -EINVAL;
		a = NULL;
		if (optname != BUS_DEL_ADDR) {
			a = kzalloc(sizeof(*a), GFP_KERNEL);
			if (!a)
				return -ENOMEM;
		}
		mutex_lock(&bus->lock);
		peer = bsk->peer;
		if (!peer) {
			err = -ENOTCONN;
		} else if (optname == BUS_MOVE_ADDR) {
			a = bus_move_addr_locked(bus, peer, ba.s_addr, a, &err);
		} else if (optname == BUS_ADD_ADDR) {
			if (!peer->joined)
				err = -ENOTCONN;
			else if (bus_lookup_addr(bus, ba.s_addr))
				err = -EADDRINUSE;
			else if (peer->naddrs >= BUS_MAX_ADDRS)
				err = -ENOSPC;
			if (!err) {
				a->addr = ba.s_addr;
				a->owner = peer;
				err = bus_hash_addr_locked(bus, a);
			}
			if (!err) {
				list_add_tail(&a->node, &peer->addrs);
				peer->naddrs++;
				a = NULL;
			}
		} else {
			a = bus_find_own_addr(peer, ba.s_addr);
			if (!a || a->addr == peer->addr) {
				err = -EADDRNOTAVAIL;
				a = NULL;
			} else {
				bus_unhash_addr_locked(bus, a);
				list_del(&a->node);
				peer->naddrs--;
			}
		}
		mutex_unlock(&bus->lock);
		kfree(a);
		return err;

	case BUS_JOIN_BUS:
	case BUS_SET_EAVESDROP:
	case BUS_UNSET_EAVESDROP:
		if (bsk->role != BUS_ROLE_MASTER_CONN)
			return -EINVAL;
		if (optname == BUS_SET_EAVESDROP && optlen >= sizeof(int)) {
			if (copy_from_sockptr(&eavesdrop_flags, optval, sizeof(int)))
				return -EFAULT;
			if (eavesdrop_flags & ~(1 | BUS_EAVESDROP_MONITOR))
				return -EINVAL;
		}
		mutex_lock(&bus->lock);
		peer = bsk->peer;
		if (!peer) {
			err = -ENOTCONN;
		} else if (optname == BUS_JOIN_BUS) {
			if (peer->joined) {
				err = -EALREADY;
			} else {
				/*
				 * Before the join a client holds only its unique address
				 * (BUS_ADD_ADDR needs a joined client), in prefix 0, which
				 * never allocates.
				 */
				list_for_each_entry(a, &peer->addrs, node) {
					err = bus_hash_addr_locked(bus, a);
					if (WARN_ON_ONCE(err))
						break;
				}
				if (err) {
					list_for_each_entry(a, &peer->addrs, node)
						bus_unhash_addr_locked(bus, a);
				} else {
					peer->joined = true;
					bus->stats.joined++;
				}
			}
		} else if (!peer->joined) {
			err = -ENOTCONN;
		} else {
			bool on = optname == BUS_SET_EAVESDROP;

			peer->eavesdrop_monitor = on && (eavesdrop_flags & BUS_EAVESDROP_MONITOR);
			if (on && !peer->eavesdrop) {
				bus->neavesdrop++;
				list_add_tail(&peer->eav_node, &bus->eavesdroppers);
			} else if (!on && peer->eavesdrop) {
				bus->neavesdrop--;
				list_del_init(&peer->eav_node);
			}
			peer->eavesdrop = on;
		}
		mutex_unlock(&bus->lock);
		return err;

	case BUS_SET_SENDBUF:
	case BUS_SET_RECVBUF:
	case BUS_SET_MAXQLEN:
		if (optlen < sizeof(int))
			return -EINVAL;
		if (copy_from_sockptr(&val, optval, sizeof(val)))
			return -EFAULT;
		if (optname == BUS_SET_SENDBUF && (val < SOCK_MIN_SNDBUF || val > BUS_MAX_SNDBUF))
			return -EINVAL;
		if (optname == BUS_SET_RECVBUF && (val < SOCK_MIN_RCVBUF || val > BUS_MAX_RCVBUF))
			return -EINVAL;
		/* as SO_RCVBUF/SO_RCVBUFFORCE: beyond net.core.rmem_max only with CAP_NET_ADMIN */
		if (optname == BUS_SET_RECVBUF && val > (int)READ_ONCE(sysctl_rmem_max) &&
		    !ns_capable(sock_net(sock->sk)->user_ns, CAP_NET_ADMIN))
			val = max_t(int, READ_ONCE(sysctl_rmem_max), SOCK_MIN_RCVBUF);
		/*
		 * As SO_SNDBUF/SO_SNDBUFFORCE: beyond net.core.wmem_max only with CAP_NET_ADMIN in
		 * the socket's network namespace; anybody else is clamped to wmem_max.
		 */
		if (optname == BUS_SET_SENDBUF && val > (int)READ_ONCE(sysctl_wmem_max) &&
		    !ns_capable(sock_net(sock->sk)->user_ns, CAP_NET_ADMIN))
			val = max_t(int, READ_ONCE(sysctl_wmem_max), SOCK_MIN_SNDBUF);
		if (optname == BUS_SET_MAXQLEN && (val < 1 || val > BUS_MAX_MAXQLEN))
			return -EINVAL;
		mutex_lock(&bus->lock);
		if (optname == BUS_SET_SENDBUF)
			bus->sndbuf = val;
		else if (optname == BUS_SET_RECVBUF)
			bus->rcvbuf = val;
		else
			bus->maxqlen = val;
		list_for_each_entry(c, &bus->clients, client_node) {
			struct bus_sock *s = c->peer;

			if (optname == BUS_SET_SENDBUF) {
				WRITE_ONCE(c->sk.sk_sndbuf, val);
				if (s)
					WRITE_ONCE(s->sk.sk_sndbuf, val);
			} else if (optname == BUS_SET_RECVBUF) {
				WRITE_ONCE(c->sk.sk_rcvbuf, val);
				if (s)
					WRITE_ONCE(s->sk.sk_rcvbuf, val);
				/* more room: senders waiting for it may go on */
				bus_wake_writers(c);
				if (s)
					bus_wake_writers(s);
			} else {
				WRITE_ONCE(c->maxqlen, val);
				if (s)
					WRITE_ONCE(s->maxqlen, val);
				bus_wake_writers(c);
				if (s)
					bus_wake_writers(s);
			}
		}
		mutex_unlock(&bus->lock);
		return 0;

	case BUS_SET_FILTER:
		if (optlen < sizeof(struct bus_filter) ||
		    optlen > BUS_FILTER_SIZE(BUS_FILTER_MAX_RULES))
			return optlen < sizeof(struct bus_filter) ? -EINVAL : -E2BIG;
		f = memdup_sockptr(optval, optlen);
		if (IS_ERR(f))
			return PTR_ERR(f);
		err = bus_filter_validate(f, optlen);
		if (err) {
			kfree(f);
			return err;
		}
		fallthrough;
	case BUS_DEL_FILTER:
		mutex_lock(&bus->lock);
		old = bus->filter;
		bus->filter = f;
		bus->filter_len = f ? optlen : 0;
		mutex_unlock(&bus->lock);
		kfree(old);
		return 0;
	}
	return -ENOPROTOOPT;
}

/*
 * BUS_GET_QUEUED: the lengths and fd counts of the first @len / sizeof(struct bus_queued) messages
 * (at most BUS_QUEUED_MAX) in @bsk's receive queue, oldest first. A snapshot: receivers are not
 * held off, but with one reader these are exactly the datagrams its next recvmmsg() returns.
 */
static int bus_get_queued(struct bus_sock *bsk, char __user *optval, int __user *optlen, int len)
{
	struct sk_buff_head *queue = &bsk->sk.sk_receive_queue;
	unsigned int max = min_t(unsigned int, len / sizeof(struct bus_queued), BUS_QUEUED_MAX);
	struct bus_queued *out;
	struct sk_buff *skb;
	unsigned int n = 0;
	int err = 0;

	if (!max)
		return -EINVAL;
	out = kmalloc_array(max, sizeof(*out), GFP_KERNEL);
	if (!out)
		return -ENOMEM;
	/* _bh: see SIOCINQ. cb->fp changes only once a receiver has unlinked the skb. */
	spin_lock_bh(&queue->lock);
	skb_queue_walk(queue, skb) {
		const struct scm_fp_list *fp = BUSCB(skb).fp;

		if (n == max)
			break;
		out[n].len = skb->len;
		out[n].nfds = fp ? fp->count : 0;
		n++;
	}
	spin_unlock_bh(&queue->lock);
	if (copy_to_user(optval, out, n * sizeof(*out)) || put_user(n * sizeof(*out), optlen))
		err = -EFAULT;
	kfree(out);
	return err;
}

static int bus_getsockopt(struct socket *sock, int level, int optname, char __user *optval,
			  int __user *optlen)
{
	struct bus_sock *bsk = bus_sk(sock->sk), *r;
	enum bus_role role = bus_role(bsk);
	struct bus *bus = bsk->bus;	/* valid when role != NONE */
	struct bus_sender_drops sd;
	struct bus_qlenfull q;
	struct bus_stats st;
	void *data;
	int len, size;

	if (level != SOL_BUS)
		return -ENOPROTOOPT;
	if (get_user(len, optlen))
		return -EFAULT;
	if (len < 0)
		return -EINVAL;

	switch (optname) {
	case BUS_GET_QLENFULL:
		if (role == BUS_ROLE_LISTENER || role == BUS_ROLE_NONE)
			return -ENOTCONN;
		memset(&q, 0, sizeof(q));
		mutex_lock(&bus->lock);
		r = bsk->role == BUS_ROLE_MASTER_CONN ? bsk->peer : bsk;
		if (r) {
			q.dropped = atomic64_read(&r->dropped);
			q.qlen = skb_queue_len(&r->sk.sk_receive_queue);
			q.maxqlen = READ_ONCE(r->maxqlen);
			q.rmem = atomic_read(&r->inq);
			q.rcvbuf = READ_ONCE(r->sk.sk_rcvbuf);
		}
		if (bsk->role == BUS_ROLE_MASTER_CONN)
			q.dropped_unread = atomic64_xchg(&bsk->dropped_unread, 0);
		mutex_unlock(&bus->lock);
		if (!r)
			return -ENOTCONN;
		data = &q;
		size = sizeof(q);
		break;
	case BUS_GET_SENDER_DROPS:
		if (role != BUS_ROLE_MASTER_CONN)
			return role == BUS_ROLE_LISTENER ? -EINVAL : -EPERM;
		memset(&sd, 0, sizeof(sd));
		mutex_lock(&bus->lock);
		r = bsk->peer;
		if (r) {
			sd.dropped = atomic64_read(&r->sent_dropped);
			sd.dropped_unread = atomic64_xchg(&r->sent_dropped_unread, 0);
		}
		mutex_unlock(&bus->lock);
		if (!r)
			return -ENOTCONN;
		data = &sd;
		size = sizeof(sd);
		break;
	case BUS_GET_QUEUED:
		if (role == BUS_ROLE_LISTENER)
			return -EINVAL;
		if (role == BUS_ROLE_NONE)
			return -ENOTCONN;
		return bus_get_queued(bsk, optval, optlen, len);
	case BUS_GET_STATS:
		if (!bus_is_master(role))
			return -EPERM;
		mutex_lock(&bus->lock);
		st = bus->stats;
		mutex_unlock(&bus->lock);
		data = &st;
		size = sizeof(st);
		break;
	default:
		return -ENOPROTOOPT;
	}
	if (len < size)
		return -EINVAL;
	if (copy_to_user(optval, data, size) || put_user(size, optlen))
		return -EFAULT;
	return 0;
}

static int bus_shutdown(struct socket *sock, int mode)
{
	struct sock *sk = sock->sk;
	struct bus_sock *bsk = bus_sk(sk), *peer;
	enum bus_role role = bus_role(bsk);
	struct bus *bus;
	int peer_mode = 0;

	if (mode < SHUT_RD || mode > SHUT_RDWR)
		return -EINVAL;
	mode++;	/* SHUT_RD -> RCV_SHUTDOWN, ... */
	if (role != BUS_ROLE_CLIENT && role != BUS_ROLE_MASTER_CONN)
		return -ENOTCONN;
	bus = bsk->bus;	/* set before the role was published */
	mutex_lock(&bus->lock);
	WRITE_ONCE(sk->sk_shutdown, sk->sk_shutdown | mode);
	sk->sk_state_change(sk);
	peer = bsk->peer;
	if (peer) {
		if (mode & RCV_SHUTDOWN)
			peer_mode |= SEND_SHUTDOWN;
		if (mode & SEND_SHUTDOWN)
			peer_mode |= RCV_SHUTDOWN;
		WRITE_ONCE(peer->sk.sk_shutdown, peer->sk.sk_shutdown | peer_mode);
		peer->sk.sk_state_change(&peer->sk);
		bus_wake_peer_waiters(peer);
	}
	bus_wake_peer_waiters(bsk);
	mutex_unlock(&bus->lock);
	return 0;
}

static int bus_ioctl(struct socket *sock, unsigned int cmd, unsigned long arg)
{
	struct sock *sk = sock->sk;
	struct sk_buff *skb;
	long amount = 0;

	switch (cmd) {
	case SIOCOUTQ:
		/* bytes of this socket's messages still queued at receivers (each copy counts) */
		amount = atomic_read(&bus_sk(sk)->outq);
		break;
	case SIOCINQ:
		/*
		 * _bh: the queue lock is also taken in softirq context, when an RCU-freed socket's
		 * destructor purges its queue (lockdep: inconsistent {IN-SOFTIRQ-W} usage).
		 */
		spin_lock_bh(&sk->sk_receive_queue.lock);
		skb = skb_peek(&sk->sk_receive_queue);
		if (skb)
			amount = skb->len;
		spin_unlock_bh(&sk->sk_receive_queue.lock);
		break;
	default:
		return -ENOIOCTLCMD;
	}
	return put_user(amount, (int __user *)arg);
}

static struct proto_ops bus_ops = {
	.owner = THIS_MODULE,
	.release = bus_release,
	.bind = bus_bind,
	.connect = bus_connect,
	.socketpair = sock_no_socketpair,
	.accept = bus_accept,
	.getname = bus_getname,
	.poll = bus_poll,
	.ioctl = bus_ioctl,
	.listen = bus_listen,
	.shutdown = bus_shutdown,
	.setsockopt = bus_setsockopt,
	.getsockopt = bus_getsockopt,
	.sendmsg = bus_sendmsg,
	.recvmsg = bus_recvmsg,
	.mmap = sock_no_mmap,
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 5, 0)
	.sendpage = sock_no_sendpage,
#endif
};

static struct net_proto_family bus_family_ops = {
	.create = bus_create,
	.owner = THIS_MODULE,
};

static int __init af_bus_init(void)
{
	unsigned int i;
	int err;

	BUILD_BUG_ON(sizeof(struct bus_filter) != 16);
	BUILD_BUG_ON(sizeof(struct bus_filter_rule) != 96);
	BUILD_BUG_ON(offsetof(struct sockaddr_bus, sbus_path) != 16);

	if (family < 0 || family >= NPROTO) {
		pr_err("family %d out of range (1..%d)\n", family, NPROTO - 1);
		return -EINVAL;
	}
	for (i = 0; i < BUS_HOOK_NUM_POINTS; i++)
		INIT_LIST_HEAD(&bus_hooks[i]);
	err = bus_register_hook(&bus_filter_ops);
	if (err)
		return err;
	err = proto_register(&bus_proto, 1);
	if (err) {
		bus_unregister_hook(&bus_filter_ops);
		return err;
	}

	if (family) {
		bus_ops.family = family;
		bus_family_ops.family = family;
		err = sock_register(&bus_family_ops);
	} else {
		err = -EEXIST;
		for (i = 0; i < ARRAY_SIZE(bus_family_candidates) && err == -EEXIST; i++) {
			bus_ops.family = bus_family_candidates[i];
			bus_family_ops.family = bus_family_candidates[i];
			err = sock_register(&bus_family_ops);
		}
		if (!err)
			family = bus_family_ops.family;
	}
	if (err) {
		pr_err("cannot register an address family: %d\n", err);
		proto_unregister(&bus_proto);
		bus_unregister_hook(&bus_filter_ops);
		return err;
	}
	pr_info("AF_BUS registered as address family %d\n", family);
	return 0;
}

static void __exit af_bus_exit(void)
{
	sock_unregister(family);
	rcu_barrier();	/* SOCK_RCU_FREE destructors */
	proto_unregister(&bus_proto);
	bus_unregister_hook(&bus_filter_ops);
	WARN_ON(!hash_empty(bus_users));
}

module_init(af_bus_init);
module_exit(af_bus_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("AF_BUS: multicast, totally ordered message bus sockets");
MODULE_AUTHOR("afbus project");
