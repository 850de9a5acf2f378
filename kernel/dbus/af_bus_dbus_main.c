// SPDX-License-Identifier: GPL-2.0
/*
 * af_bus_dbus.ko — the D-Bus protocol module of AF_BUS: it serves the buses bound with
 * BUS_PROTO_DBUS (docs/kernel.md, "af_bus_dbus.ko"). Through af_bus.ko's hook API it sees every
 * message sent on such a bus, and:
 *  - parses its D-Bus header (dbus_header.c, the parser the userspace tests hold to libafbus) and
 *    refuses a malformed message with the parser's errno;
 *  - makes the SENDER field trustworthy: the master names each client (BUS_DBUS_SET_NAME), and a
 *    client's message must carry exactly that name, so receivers trust SENDER as they trust
 *    dbus-daemon's. Messages from the master are the bus's own and pass;
 *  - lets a reply between clients through only in answer to an outstanding call (as dbus-daemon's
 *    pending replies), bounding each client's outstanding calls (BUS_DBUS_SET_REPLY_LIMITS);
 *  - delivers a multicast copy (a signal) only to clients with a match record that matches it
 *    (BUS_DBUS_ADD_MATCH; dbus_match.c, the evaluator held to libafbus's MatchRule);
 *  - enforces busconfig policy between clients: the compiled image (BUS_DBUS_SET_POLICY), each
 *    client's chains of its rules (BUS_DBUS_SET_CHAINS) and the names it owns (BUS_DBUS_SET_NAMES),
 *    evaluated by dbus_policy.c, the evaluator held to policy/'s engine.
 * Every function here runs under the bus's lock (hooks, options, client_gone), so the per-bus state
 * needs no lock of its own; the hooks also run under rcu_read_lock() and must not sleep. What the
 * master installs (names, records) is charged to the master's memory cgroup, a recorded call to the
 * caller's.
 */
#define pr_fmt(fmt) "af_bus_dbus: " fmt

#include <linux/module.h>
#include <linux/hashtable.h>
#include <linux/jhash.h>
#include <linux/jiffies.h>
#include <linux/kref.h>
#include <linux/mm.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/xarray.h>
#include <uapi/linux/af_bus.h>
#include <linux/af_bus_hooks.h>
#include "dbus_header.h"
#include "dbus_match.h"
#include "dbus_policy.h"

#define DBUS_DEFAULT_MAX_REPLIES	128
#define DBUS_DEFAULT_REPLY_TIMEOUT_MS	25000
#define DBUS_MAX_MAX_REPLIES		65536
#define DBUS_FLAG_NO_REPLY_EXPECTED	0x1
#define DBUS_MAX_RULES_PER_CLIENT	65536	/* memory bound; the master enforces its configured limit */
#define DBUS_MAX_NAMES_LEN		65536	/* BUS_DBUS_SET_NAMES: 256 names of 255 bytes, and NULs */

/* A policy image the master installed, shared by the chains made for it. */
struct dbus_pimage {
	struct kref ref;
	u64 seq;			/* which image this is (names interned for it say so) */
	struct dbus_policy pol;		/* pol.img is bytes, pol.index is index */
	u32 *index;
	u8 bytes[];
};

/*
 * A client's chains (rule indices into image, in evaluation order: send, receive, eavesdrop), each
 * indexed (dbus_policy_chain_index) so that a decision looks only at the rules that could apply; the
 * index entries follow the rules in the same allocation.
 */
struct dbus_chains {
	struct dbus_pimage *image;	/* a reference */
	struct dbus_policy_chain chain[3];
	u32 rules[];
};

/*
 * One match record of a client, as the master installed it, and its place in the bus's index: by the
 * member it names (most signal subscriptions name one), else by the interface it names, else among the
 * records that name neither.
 */
enum dbus_rule_key {
	DBUS_KEY_NONE,			/* in dbus_bus.unkeyed */
	DBUS_KEY_MEMBER,		/* in dbus_bus.by_member */
	DBUS_KEY_INTERFACE,		/* in dbus_bus.by_interface */
};

struct dbus_rule {
	struct list_head node;		/* dbus_client.rules */
	struct dbus_client *owner;
	u8 key;				/* enum dbus_rule_key */
	union {
		struct hlist_node inode;	/* dbus_bus.by_member or by_interface */
		struct list_head unode;		/* dbus_bus.unkeyed */
	};
	u32 len;
	u8 rec[];
};

/*
 * A verdict of policy on a unicast from the client holding it to rcpt, for messages with its key
 * (struct dbus_policy_key: what the rules can look at), valid while dbus_bus.verdict_gen is gen
 * (docs/kernel.md, "Verdict cache").
 */
struct dbus_verdict {
	u64 rcpt;			/* 0: empty */
	u64 gen;
	int verdict;			/* BUS_HOOK_ACCEPT, BUS_HOOK_DROP or -EACCES */
	struct dbus_policy_key key;
};

#define DBUS_VERDICTS 4			/* per sender: the calls it makes in turn */

/* A client the master named. */
struct dbus_client {
	u64 addr;
	struct hlist_node name_node;	/* dbus_bus.by_name */
	struct list_head calls;		/* struct dbus_call.caller_node: its calls awaiting replies */
	struct list_head answers;	/* struct dbus_call.callee_node: calls it has to answer */
	struct list_head rules;		/* struct dbus_rule: what multicast it receives */
	u64 matched;			/* == dbus_bus.match_seq: a record matched the current multicast */
	u32 nrules;
	u32 ncalls;
	struct dbus_chains *chains;	/* its policy; NULL: none installed (denied everything) */
	u8 *names;			/* the names it owns or queues for, each NUL-terminated */
	u32 nnames;
	/* its unique name and names interned for image interned_seq (0: none), for others' rules */
	u64 interned_seq;
	struct dbus_policy_party party;
	struct dbus_policy_str *interned;	/* nnames entries */
	struct dbus_verdict verdicts[DBUS_VERDICTS];	/* of its last unicasts */
	u32 next_verdict;		/* the slot the next new verdict replaces */
	u32 name_len;
	char name[];
};

/* A call from one client to another that may still be answered. */
struct dbus_call {
	struct hlist_node hnode;	/* dbus_bus.calls, keyed by caller and serial */
	struct list_head caller_node;
	struct list_head callee_node;
	struct dbus_client *caller;
	struct dbus_client *callee;
	u32 serial;
	unsigned long expires;		/* jiffies */
};

/*
 * What the send hook learnt of the message being sent, for its deliveries, which follow under the
 * same hold of the bus lock. For a multicast: the whole message (in the skb when linear, else the
 * copy) and its arguments, which every receiver's match records are evaluated against.
 */
struct dbus_current {
	const struct sk_buff *skb;
	u8 type;
	u8 flags;
	u32 serial;
	u32 reply_serial;
	bool multicast;
	int nargs;			/* arguments extracted, or -errno: conditions on them fail */
	const u8 *msg;			/* multicast: the message's bytes */
	u8 *copy;			/* ... when the skb is not linear (freed with the next send) */
	/*
	 * the client (its SENDER) of a call or reply the master forwards: the callee's answer to such
	 * a call is let through, and such a reply settles the call
	 */
	struct dbus_client *forwarded_for;
	struct dbus_hdr hdr;		/* multicast: its parsed header, offsets into msg */
	struct dbus_match_args args;
	/* what policy rules look at, interned for image pmsg_seq (0: not computed); no string bytes */
	u64 pmsg_seq;
	struct dbus_policy_msg pmsg;
	bool vkey_ok;			/* a unicast from a client whose policy facts fit vkey */
	struct dbus_policy_key vkey;	/* ... for the bus's image */
};

struct dbus_bus {
	struct xarray clients;		/* client part of the unique address -> struct dbus_client */
	DECLARE_HASHTABLE(by_name, 10);	/* struct dbus_client by unique name */
	DECLARE_HASHTABLE(calls, 10);
	u32 max_replies;
	unsigned long reply_timeout;	/* jiffies */
	unsigned int max_nargs;		/* most arguments any installed record looks at */
	DECLARE_HASHTABLE(by_member, 10);	/* struct dbus_rule naming a member, by its hash */
	DECLARE_HASHTABLE(by_interface, 8);	/* ... naming no member but an interface */
	struct list_head unkeyed;	/* struct dbus_rule naming neither */
	u64 match_seq;			/* one per multicast */
	/*
	 * The clients a record of which matched the current multicast, for af_bus.ko to offer it to
	 * them only (multicast_receivers): room for every client, made when one is named.
	 */
	u64 *rcpts;
	u32 nrcpts;
	u32 rcpts_room;
	bool rcpts_overflow;		/* cannot happen; if it did, every holder is offered it */
	u32 nclients;
	struct dbus_pimage *policy;	/* the image new chains are made for; NULL: no policy */
	u64 policy_seq;			/* images installed so far */
	/*
	 * Bumped by every change of what a cached verdict depends on (an image, a client's chains, names
	 * or unique name): a verdict made for another generation is not used.
	 */
	u64 verdict_gen;
	struct dbus_current cur;
};

/* Headers up to this size that are not in the skb's linear part are copied to the stack. */
#define DBUS_HDR_ON_STACK 192

static u32 dbus_name_key(const u8 *name, u32 len)
{
	return jhash(name, len, 0);
}

static u32 dbus_call_key(u64 caller, u32 serial)
{
	return hash_64(caller ^ ((u64)serial << 32), 32);
}

static void dbus_call_free(struct dbus_call *c)
{
	hash_del(&c->hnode);
	list_del(&c->caller_node);
	list_del(&c->callee_node);
	c->caller->ncalls--;
	kfree(c);
}

static struct dbus_call *dbus_call_find(struct dbus_bus *b, u64 caller, u32 serial)
{
	struct dbus_call *c;

	hash_for_each_possible(b->calls, c, hnode, dbus_call_key(caller, serial))
		if (c->caller->addr == caller && c->serial == serial)
			return c;
	return NULL;
}

static struct dbus_bus *dbus_bus_new(void)
{
	struct dbus_bus *b = kzalloc(sizeof(*b), GFP_KERNEL_ACCOUNT);

	if (!b)
		return NULL;
	xa_init(&b->clients);
	hash_init(b->by_name);
	hash_init(b->calls);
	hash_init(b->by_member);
	hash_init(b->by_interface);
	INIT_LIST_HEAD(&b->unkeyed);
	b->max_replies = DBUS_DEFAULT_MAX_REPLIES;
	b->reply_timeout = msecs_to_jiffies(DBUS_DEFAULT_REPLY_TIMEOUT_MS);
	return b;
}

static int dbus_set_name(struct dbus_bus *b, u64 client, const void *val, unsigned int len)
{
	struct dbus_client *c;
	int err;

	if (!client)
		return -EINVAL;	/* a client's option: on its master-side socket */
	if (!len || len > DBUS_HDR_MAX_NAME || !dbus_hdr_valid_unique_name(val, len))
		return -EINVAL;
	if (b->nclients >= b->rcpts_room) {
		u32 room = max(2 * b->rcpts_room, 16u);
		u64 *rcpts = kvmalloc_array(room, sizeof(*rcpts), GFP_KERNEL_ACCOUNT);

		if (!rcpts)
			return -ENOMEM;
		kvfree(b->rcpts);	/* it holds nothing between multicasts */
		b->rcpts = rcpts;
		b->rcpts_room = room;
		b->nrcpts = 0;
	}
	c = kmalloc(struct_size(c, name, len), GFP_KERNEL_ACCOUNT);
	if (!c)
		return -ENOMEM;
	c->addr = client;
	INIT_LIST_HEAD(&c->calls);
	INIT_LIST_HEAD(&c->answers);
	INIT_LIST_HEAD(&c->rules);
	c->matched = 0;	/* match_seq starts at 1 */
	c->nrules = 0;
	c->ncalls = 0;
	c->chains = NULL;
	c->names = NULL;
	c->nnames = 0;
	c->interned_seq = 0;
	c->interned = NULL;
	memset(c->verdicts, 0, sizeof(c->verdicts));
	c->next_verdict = 0;
	c->name_len = len;
	memcpy(c->name, val, len);
	/* A unique name is given once and never changes. */
	err = xa_insert(&b->clients, BUS_ADDR_CLIENT(client), c, GFP_KERNEL);
	if (err) {
		kfree(c);
		return err == -EBUSY ? -EALREADY : err;
	}
	hash_add(b->by_name, &c->name_node, dbus_name_key(c->name, len));
	b->nclients++;
	b->verdict_gen++;
	return 0;
}

static int dbus_set_reply_limits(struct dbus_bus *b, u64 client, const void *val, unsigned int len)
{
	struct bus_dbus_reply_limits l;

	if (client || len != sizeof(l))
		return -EINVAL;	/* the bus's option: on the listener */
	memcpy(&l, val, sizeof(l));
	if (!l.max_replies || l.max_replies > DBUS_MAX_MAX_REPLIES || !l.timeout_ms ||
	    l.timeout_ms > INT_MAX)
		return -EINVAL;
	b->max_replies = l.max_replies;
	b->reply_timeout = msecs_to_jiffies(l.timeout_ms);
	return 0;
}

static struct dbus_client *dbus_client_find(struct dbus_bus *b, u64 addr)
{
	return addr ? xa_load(&b->clients, BUS_ADDR_CLIENT(addr)) : NULL;
}

static struct dbus_client *dbus_client_find_name(struct dbus_bus *b, const u8 *name, u32 len)
{
	struct dbus_client *c;

	hash_for_each_possible(b->by_name, c, name_node, dbus_name_key(name, len))
		if (c->name_len == len && !memcmp(c->name, name, len))
			return c;
	return NULL;
}

/* The value of one of a record's keys, if the record names it (the record passed dbus_match_check). */
static bool dbus_rule_field(const u8 *rec, enum dbus_match_field f, const u8 **value, u32 *len)
{
	const u8 *slice = rec + DBUS_MATCH_OFF_SLICES + 4 * f;
	u32 off = slice[0] | (u32)slice[1] << 8, l = slice[2] | (u32)slice[3] << 8;

	if (l == DBUS_MATCH_ABSENT)
		return false;
	*value = rec + off;
	*len = l;
	return true;
}

static void dbus_rule_index(struct dbus_bus *b, struct dbus_rule *r)
{
	const u8 *v;
	u32 len;

	if (dbus_rule_field(r->rec, DBUS_MATCH_MEMBER, &v, &len)) {
		r->key = DBUS_KEY_MEMBER;
		hash_add(b->by_member, &r->inode, dbus_name_key(v, len));
	} else if (dbus_rule_field(r->rec, DBUS_MATCH_INTERFACE, &v, &len)) {
		r->key = DBUS_KEY_INTERFACE;
		hash_add(b->by_interface, &r->inode, dbus_name_key(v, len));
	} else {
		r->key = DBUS_KEY_NONE;
		list_add_tail(&r->unode, &b->unkeyed);
	}
}

static void dbus_rule_free(struct dbus_rule *r)
{
	list_del(&r->node);
	if (r->key != DBUS_KEY_NONE)
		hash_del(&r->inode);
	else
		list_del(&r->unode);
	r->owner->nrules--;
	kfree(r);
}

/* BUS_DBUS_ADD_MATCH / BUS_DBUS_REMOVE_MATCH on the client's master-side socket. */
static int dbus_change_match(struct dbus_bus *b, u64 client, bool add, const void *val, unsigned int len)
{
	struct dbus_client *c = dbus_client_find(b, client);
	struct dbus_rule *r;

	if (!client)
		return -EINVAL;
	if (!c)
		return -ENOTCONN;	/* the master names a client before it subscribes it */
	if (len > DBUS_MATCH_MAX_LEN || dbus_match_check(val, len))
		return -EINVAL;
	if (!add) {
		/* As RemoveMatch: one record equal to the given one (a rule added twice stays once). */
		list_for_each_entry(r, &c->rules, node) {
			if (r->len == len && !memcmp(r->rec, val, len)) {
				dbus_rule_free(r);
				return 0;
			}
		}
		return -ENOENT;
	}
	if (c->nrules >= DBUS_MAX_RULES_PER_CLIENT)
		return -ENOSPC;
	r = kmalloc(struct_size(r, rec, len), GFP_KERNEL_ACCOUNT);
	if (!r)
		return -ENOMEM;
	r->len = len;
	memcpy(r->rec, val, len);
	r->owner = c;
	list_add_tail(&r->node, &c->rules);
	c->nrules++;
	dbus_rule_index(b, r);
	b->max_nargs = max(b->max_nargs, dbus_match_nargs(r->rec));
	return 0;
}

static void dbus_pimage_release(struct kref *ref)
{
	struct dbus_pimage *img = container_of(ref, struct dbus_pimage, ref);

	kvfree(img->index);
	kvfree(img);
}

static void dbus_pimage_put(struct dbus_pimage *img)
{
	if (img)
		kref_put(&img->ref, dbus_pimage_release);
}

static void dbus_chains_free(struct dbus_chains *ch)
{
	if (ch) {
		dbus_pimage_put(ch->image);
		kvfree(ch);
	}
}

/* BUS_DBUS_SET_POLICY on the listener: the image new chains are made for; empty: no policy. */
static int dbus_set_policy(struct dbus_bus *b, u64 client, const void *val, unsigned int len)
{
	struct dbus_pimage *img;

	if (client)
		return -EINVAL;
	b->verdict_gen++;
	if (!len) {
		dbus_pimage_put(b->policy);
		b->policy = NULL;
		b->cur.pmsg_seq = 0;
		return 0;
	}
	img = kvmalloc(struct_size(img, bytes, len), GFP_KERNEL_ACCOUNT);
	if (!img)
		return -ENOMEM;
	memcpy(img->bytes, val, len);
	img->index = NULL;
	if (dbus_policy_check(img->bytes, len, &img->pol))
		goto invalid;
	img->index = kvmalloc_array(img->pol.index_slots, sizeof(u32), GFP_KERNEL_ACCOUNT);
	if (!img->index) {
		kvfree(img);
		return -ENOMEM;
	}
	if (dbus_policy_index_strings(&img->pol, img->index))
		goto invalid;
	kref_init(&img->ref);
	img->seq = ++b->policy_seq;
	dbus_pimage_put(b->policy);
	b->policy = img;
	return 0;

invalid:
	kvfree(img->index);
	kvfree(img);
	return -EINVAL;
}

/* BUS_DBUS_SET_CHAINS on a client's master-side socket: its rules, for the current image. */
static int dbus_set_chains(struct dbus_bus *b, u64 client, const void *val, unsigned int len)
{
	struct dbus_client *c = dbus_client_find(b, client);
	struct dbus_policy_index_entry *entries;
	struct bus_dbus_chains h;
	struct dbus_chains *ch;
	const u32 *rules;
	u64 total;

	if (!client)
		return -EINVAL;
	if (!c)
		return -ENOTCONN;
	if (!b->policy)
		return -ENOENT;
	if (len < sizeof(h))
		return -EINVAL;
	memcpy(&h, val, sizeof(h));
	total = (u64)h.send + h.receive + h.eavesdrop;
	if (h.reserved || len != sizeof(h) + total * sizeof(u32))
		return -EINVAL;
	rules = (const u32 *)((const u8 *)val + sizeof(h));	/* val is kvmalloc'd: aligned */
	if (dbus_policy_chain_check(&b->policy->pol, DBUS_POLICY_SEND, rules, h.send) ||
	    dbus_policy_chain_check(&b->policy->pol, DBUS_POLICY_RECEIVE, rules + h.send, h.receive) ||
	    dbus_policy_chain_check(&b->policy->pol, DBUS_POLICY_EAVESDROP, rules + h.send + h.receive,
				    h.eavesdrop))
		return -EINVAL;
	ch = kvmalloc(struct_size(ch, rules, total) + total * sizeof(*entries), GFP_KERNEL_ACCOUNT);
	if (!ch)
		return -ENOMEM;
	memcpy(ch->rules, rules, total * sizeof(u32));
	entries = (struct dbus_policy_index_entry *)(ch->rules + total);
	dbus_policy_chain_index(&b->policy->pol, ch->rules, h.send, entries, &ch->chain[0]);
	dbus_policy_chain_index(&b->policy->pol, ch->rules + h.send, h.receive, entries + h.send, &ch->chain[1]);
	dbus_policy_chain_index(&b->policy->pol, ch->rules + h.send + h.receive, h.eavesdrop,
				entries + h.send + h.receive, &ch->chain[2]);
	kref_get(&b->policy->ref);
	ch->image = b->policy;
	dbus_chains_free(c->chains);
	c->chains = ch;
	b->verdict_gen++;
	return 0;
}

/* BUS_DBUS_SET_NAMES on a client's master-side socket: the well-known names it owns or queues for. */
static int dbus_set_names(struct dbus_bus *b, u64 client, const void *val, unsigned int len)
{
	struct dbus_client *c = dbus_client_find(b, client);
	struct dbus_policy_str *interned = NULL;
	const u8 *v = val;
	u8 *names = NULL;
	u32 n = 0, at = 0;

	if (!client)
		return -EINVAL;
	if (!c)
		return -ENOTCONN;
	if (len > DBUS_MAX_NAMES_LEN || (len && v[len - 1] != '\0'))
		return -EINVAL;
	while (at < len) {
		u32 l = strlen((const char *)v + at);

		if (!l || !dbus_hdr_valid_bus_name(v + at, l) || v[at] == ':')
			return -EINVAL;
		at += l + 1;
		n++;
	}
	if (n) {
		names = kmemdup(val, len, GFP_KERNEL_ACCOUNT);
		interned = kcalloc(n, sizeof(*interned), GFP_KERNEL_ACCOUNT);
		if (!names || !interned) {
			kfree(names);
			kfree(interned);
			return -ENOMEM;
		}
	}
	kfree(c->names);
	kfree(c->interned);
	c->names = names;
	c->interned = interned;
	c->nnames = n;
	c->interned_seq = 0;
	b->verdict_gen++;
	return 0;
}

static int dbus_setsockopt(void **priv, u64 client, bool joined, int optname, const void *val,
			   unsigned int len)
{
	struct dbus_bus *b = *priv;

	switch (optname) {
	case BUS_DBUS_SET_NAME:
	case BUS_DBUS_SET_REPLY_LIMITS:
	case BUS_DBUS_ADD_MATCH:
	case BUS_DBUS_REMOVE_MATCH:
	case BUS_DBUS_SET_POLICY:
	case BUS_DBUS_SET_CHAINS:
	case BUS_DBUS_SET_NAMES:
		break;
	default:
		return -ENOPROTOOPT;
	}
	if (!b) {
		b = dbus_bus_new();
		if (!b)
			return -ENOMEM;
		*priv = b;
	}
	if (optname == BUS_DBUS_SET_NAME)
		return dbus_set_name(b, client, val, len);
	if (optname == BUS_DBUS_SET_REPLY_LIMITS)
		return dbus_set_reply_limits(b, client, val, len);
	if (optname == BUS_DBUS_SET_POLICY)
		return dbus_set_policy(b, client, val, len);
	if (optname == BUS_DBUS_SET_CHAINS)
		return dbus_set_chains(b, client, val, len);
	if (optname == BUS_DBUS_SET_NAMES)
		return dbus_set_names(b, client, val, len);
	return dbus_change_match(b, client, optname == BUS_DBUS_ADD_MATCH, val, len);
}

static void dbus_client_free(struct dbus_client *c)
{
	struct dbus_call *call, *tmp;
	struct dbus_rule *r, *rtmp;

	list_for_each_entry_safe(r, rtmp, &c->rules, node)
		dbus_rule_free(r);

	/* Its calls can no longer be answered, nor the calls it had to answer. */
	list_for_each_entry_safe(call, tmp, &c->calls, caller_node)
		dbus_call_free(call);
	list_for_each_entry_safe(call, tmp, &c->answers, callee_node)
		dbus_call_free(call);
	hash_del(&c->name_node);
	dbus_chains_free(c->chains);
	kfree(c->names);
	kfree(c->interned);
	kfree(c);
}

static void dbus_client_gone(void *priv, u64 client)
{
	struct dbus_bus *b = priv;
	struct dbus_client *c = xa_erase(&b->clients, BUS_ADDR_CLIENT(client));

	if (c) {
		if (b->cur.forwarded_for == c)
			b->cur.forwarded_for = NULL;
		dbus_client_free(c);
		b->nclients--;
	}
}

static void dbus_bus_gone(void *priv)
{
	struct dbus_bus *b = priv;
	struct dbus_client *c;
	unsigned long i;

	xa_for_each(&b->clients, i, c)
		dbus_client_free(c);
	xa_destroy(&b->clients);
	kvfree(b->rcpts);
	dbus_pimage_put(b->policy);
	kfree(b->cur.copy);
	kfree(b);
}

/*
 * Parses the header of the message in skb into *h, with hdr pointing at its bytes: in place when
 * linear, else copied to stackbuf or to *heap (which the caller frees). Returns 0 or -errno.
 */
static int dbus_parse_skb(const struct sk_buff *skb, u8 *stackbuf, u8 **heap, const u8 **hdr,
			  struct dbus_hdr *h)
{
	u32 need = min_t(u32, skb->len, DBUS_HDR_FIXED_LEN);

	*heap = NULL;
	if (skb->len >= DBUS_HDR_FIXED_LEN) {
		if (skb_copy_bits(skb, 0, stackbuf, DBUS_HDR_FIXED_LEN))
			return -EBADMSG;
		need = min_t(u32, skb->len, dbus_hdr_header_len(stackbuf));
	}
	if (skb_headlen(skb) >= need) {
		*hdr = skb->data;
	} else {
		if (need > DBUS_HDR_ON_STACK) {
			*heap = kmalloc(need, GFP_ATOMIC | __GFP_NOWARN);
			if (!*heap)
				return -ENOBUFS;
		}
		*hdr = *heap ? *heap : stackbuf;
		if (skb_copy_bits(skb, 0, (void *)*hdr, need))
			return -EBADMSG;
	}
	return dbus_hdr_parse_header(*hdr, need, skb->len, h, NULL);
}

/* Whether the client may send a message whose header is h (in hdr). */
static int dbus_check_sender(const struct bus_hook_ctx *ctx, const u8 *hdr, const struct dbus_hdr *h)
{
	struct dbus_bus *b = ctx->proto_priv;
	const struct dbus_client *c = b ? dbus_client_find(b, ctx->src) : NULL;

	if (!h->sender.present)
		/* The master learns the sender from the address; nobody else could. */
		return ctx->dst == BUS_MASTER_ADDR ? BUS_HOOK_ACCEPT : -EPERM;
	if (!c || c->name_len != h->sender.len || memcmp(c->name, hdr + h->sender.off, c->name_len))
		return -EPERM;
	return BUS_HOOK_ACCEPT;
}

/*
 * Inlined into its loops: under TCG, where the figures of docs/performance.md are measured, a call
 * to a function on another page of the module costs a translated-block lookup each way, and which
 * pages the loop and this function land on moves with unrelated code (10,000 unindexed records:
 * 0.7 ms or 1.2 ms per signal).
 */
static __always_inline void dbus_try_rule(struct dbus_bus *b, struct dbus_rule *r)
{
	const struct dbus_current *cur = &b->cur;

	if (r->owner->matched != b->match_seq &&
	    dbus_match_eval(r->rec, cur->msg, &cur->hdr, &cur->args)) {
		r->owner->matched = b->match_seq;
		/* each client once, and every client has room (dbus_set_name) */
		if (!WARN_ON_ONCE(b->nrcpts >= b->rcpts_room))
			b->rcpts[b->nrcpts++] = r->owner->addr;
		else
			b->rcpts_overflow = true;
	}
}

/*
 * Marks every client with a record that matches the current multicast, walking only the records that
 * name its member, those that name its interface and no member, and those that name neither: with many subscriptions a message costs what its own
 * candidates cost, not every receiver's whole list. The copies then check one mark each.
 */
static void dbus_mark_subscribers(struct dbus_bus *b)
{
	const struct dbus_current *cur = &b->cur;
	struct dbus_rule *r;

	b->match_seq++;
	b->nrcpts = 0;
	b->rcpts_overflow = false;
	if (cur->type == DBUS_HDR_TYPE_METHOD_RETURN || cur->type == DBUS_HDR_TYPE_ERROR)
		return;	/* never by multicast */
	if (cur->hdr.member.present) {
		u32 key = dbus_name_key(cur->msg + cur->hdr.member.off, cur->hdr.member.len);

		hash_for_each_possible(b->by_member, r, inode, key)
			dbus_try_rule(b, r);
	}
	if (cur->hdr.interface.present) {
		u32 key = dbus_name_key(cur->msg + cur->hdr.interface.off, cur->hdr.interface.len);

		hash_for_each_possible(b->by_interface, r, inode, key)
			dbus_try_rule(b, r);
	}
	list_for_each_entry(r, &b->unkeyed, unode)
		dbus_try_rule(b, r);
}

/*
 * The evaluator reads a message's string bytes only for a rule about the bus itself as the other end,
 * which this module never asks about (messages to and from the master are the master's to judge); the
 * header they would point into does not outlive the send hook.
 */
static void dbus_policy_msg_drop_bytes(struct dbus_policy_msg *m)
{
	struct dbus_policy_str *f[] = { &m->path, &m->interface, &m->member, &m->error_name,
					&m->destination, &m->sender };
	int i;

	for (i = 0; i < ARRAY_SIZE(f); i++) {
		f[i]->s = NULL;
		f[i]->len = 0;
	}
}

/* The client as the other end of a rule of img: its names interned for img, once per image. */
static const struct dbus_policy_party *dbus_party(struct dbus_client *c, const struct dbus_pimage *img)
{
	const u8 *name = c->names;
	u32 i, len;

	if (c->interned_seq != img->seq) {
		dbus_policy_intern(&img->pol, (const u8 *)c->name, c->name_len, &c->party.unique_name);
		for (i = 0; i < c->nnames; i++) {
			len = strlen((const char *)name);
			dbus_policy_intern(&img->pol, name, len, &c->interned[i]);
			name += len + 1;
		}
		c->party.names = c->interned;
		c->party.name_count = c->nnames;
		c->interned_seq = img->seq;
	}
	return &c->party;
}

/*
 * The current unicast's facts interned for the bus's image, from its key: the send hook leaves
 * them to the first delivery that misses the verdict cache.
 */
static void dbus_intern_current(struct dbus_bus *b)
{
	struct dbus_current *cur = &b->cur;

	if (cur->pmsg_seq == b->policy->seq)
		return;
	dbus_policy_msg_from_key(&b->policy->pol, &cur->vkey, &cur->pmsg);
	dbus_policy_msg_drop_bytes(&cur->pmsg);
	cur->pmsg_seq = b->policy->seq;
}

/*
 * The current message's facts interned for img: the send hook's (or its key's) for the bus's
 * image; for a chain still made for an earlier one (until the master replaces it after a reload)
 * the header is parsed again.
 */
static struct dbus_policy_msg *dbus_facts(struct dbus_bus *b, const struct bus_hook_ctx *ctx,
					  const struct dbus_pimage *img, struct dbus_policy_msg *spare)
{
	u8 stackbuf[DBUS_HDR_ON_STACK];
	struct dbus_hdr h;
	const u8 *hdr;
	u8 *heap;
	int err;

	if (b->cur.pmsg_seq == img->seq)
		return &b->cur.pmsg;
	if (b->cur.vkey_ok && b->cur.skb == ctx->skb && img == b->policy) {
		dbus_intern_current(b);
		return &b->cur.pmsg;
	}
	err = dbus_parse_skb(ctx->skb, stackbuf, &heap, &hdr, &h);
	if (!err) {
		dbus_policy_msg_from_hdr(&img->pol, hdr, &h, false, spare);
		dbus_policy_msg_drop_bytes(spare);
	}
	kfree(heap);
	return err ? NULL : spare;
}

static int dbus_policy_hook_verdict(const struct dbus_chains *ch, enum dbus_policy_hook hook,
				    struct dbus_policy_msg *m, struct dbus_client *other)
{
	const struct dbus_policy *pol = &ch->image->pol;
	int i = hook == DBUS_POLICY_SEND ? 0 : hook == DBUS_POLICY_RECEIVE ? 1 : 2;
	long rule;

	rule = dbus_policy_decide_indexed(pol, hook, &ch->chain[i], m, dbus_party(other, ch->image));
	switch (dbus_policy_verdict(pol, rule)) {
	case DBUS_POLICY_ACCEPT:
		return BUS_HOOK_ACCEPT;
	case DBUS_POLICY_DROP:
		return BUS_HOOK_DROP;
	default:
		return -EACCES;
	}
}

/* The current unicast's cached verdict from s to rcpt, or NULL. */
static struct dbus_verdict *dbus_verdict_find(struct dbus_bus *b, struct dbus_client *s, u64 rcpt,
					      const struct dbus_policy_key *key)
{
	int i;

	for (i = 0; i < DBUS_VERDICTS; i++) {
		struct dbus_verdict *v = &s->verdicts[i];

		if (v->rcpt == rcpt && v->gen == b->verdict_gen && dbus_policy_key_equal(&v->key, key))
			return v;
	}
	return NULL;
}

static void dbus_verdict_keep(struct dbus_bus *b, struct dbus_client *s, u64 rcpt,
			      const struct dbus_policy_key *key, int verdict)
{
	struct dbus_verdict *v = &s->verdicts[s->next_verdict];

	s->next_verdict = (s->next_verdict + 1) % DBUS_VERDICTS;
	v->rcpt = rcpt;
	v->gen = b->verdict_gen;
	v->verdict = verdict;
	v->key.type = key->type;
	v->key.bits = key->bits;
	v->key.len = key->len;
	v->key.fds = key->fds;
	memcpy(v->key.fields, key->fields, key->len);
}

/* dbus_policy_allows() without the cache. */
static int dbus_policy_decides(struct dbus_bus *b, const struct bus_hook_ctx *ctx,
			       struct dbus_client *s, struct dbus_client *r, bool eavesdrop,
			       bool requested)
{
	struct dbus_policy_msg spare, *m;
	int verdict;

	if (!eavesdrop) {
		m = dbus_facts(b, ctx, s->chains->image, &spare);
		if (!m)
			return -EBADMSG;
		m->requested_reply = requested;
		verdict = dbus_policy_hook_verdict(s->chains, DBUS_POLICY_SEND, m, r);
		if (verdict != BUS_HOOK_ACCEPT)
			return verdict;
	}
	m = dbus_facts(b, ctx, r->chains->image, &spare);
	if (!m)
		return -EBADMSG;
	m->requested_reply = requested;
	return dbus_policy_hook_verdict(r->chains, eavesdrop ? DBUS_POLICY_EAVESDROP : DBUS_POLICY_RECEIVE,
					m, s);
}

/*
 * Whether policy lets the current message go from client s to client r: BUS_HOOK_ACCEPT,
 * BUS_HOOK_DROP or -EACCES. The sender's send chain is asked with r as the other end, then r's
 * receive chain with s; for an eavesdropper's copy (r is the eavesdropper) only r's eavesdrop chain,
 * the addressed recipient's delivery having asked the send chain. requested: a reply that answers a
 * call. A unicast's verdict is kept by its sender for the next one with the same key to the same
 * client, until something it depends on changes (dbus_bus.verdict_gen).
 */
static int dbus_policy_allows(struct dbus_bus *b, const struct bus_hook_ctx *ctx, struct dbus_client *s,
			      struct dbus_client *r, bool eavesdrop, bool requested)
{
	struct dbus_policy_key *key = &b->cur.vkey;
	struct dbus_verdict *cached;
	int verdict;

	if (!b->policy)
		return BUS_HOOK_ACCEPT;
	if (!s || !r || !s->chains || !r->chains)
		return -EACCES;	/* a client without chains is denied everything */
	/*
	 * A key holds the fields the bus's image names: chains still made for an earlier image (during
	 * a reload, until the master replaces them) may name others, so they are asked each time.
	 */
	if (eavesdrop || !b->cur.vkey_ok || b->cur.skb != ctx->skb || s->chains->image != b->policy ||
	    r->chains->image != b->policy)
		return dbus_policy_decides(b, ctx, s, r, eavesdrop, requested);
	key->bits &= ~DBUS_POLICY_KEY_REQUESTED;
	if (requested)
		key->bits |= DBUS_POLICY_KEY_REQUESTED;
	cached = dbus_verdict_find(b, s, r->addr, key);
	if (cached)
		return cached->verdict;
	verdict = dbus_policy_decides(b, ctx, s, r, false, requested);
	if (verdict == BUS_HOOK_ACCEPT || verdict == BUS_HOOK_DROP || verdict == -EACCES)
		dbus_verdict_keep(b, s, r->addr, key, verdict);
	return verdict;
}

/*
 * Keeps what the deliveries of the message need (struct dbus_current); for a multicast the whole
 * message and its arguments, for the receivers' match records. Atomic context.
 */
static int dbus_remember(struct dbus_bus *b, const struct bus_hook_ctx *ctx, const u8 *hdr,
			 const struct dbus_hdr *h)
{
	struct dbus_current *cur = &b->cur;
	const struct sk_buff *skb = ctx->skb;

	kfree(cur->copy);
	cur->copy = NULL;
	cur->skb = skb;
	cur->type = h->type;
	cur->flags = h->flags;
	cur->serial = h->serial;
	cur->reply_serial = h->reply_serial;
	cur->multicast = ctx->kind == BUS_HOOK_MULTICAST;
	cur->msg = NULL;
	cur->forwarded_for = NULL;
	cur->pmsg_seq = 0;
	cur->vkey_ok = false;
	if (b->policy && !ctx->from_master) {
		/*
		 * A unicast's deliveries look its verdict up by key first, and intern its facts only
		 * when the verdict is not cached; a multicast's copies, each to another client, are
		 * judged one by one.
		 */
		cur->vkey_ok = ctx->kind != BUS_HOOK_MULTICAST &&
			       dbus_policy_key_from_hdr(&b->policy->pol, hdr, h, &cur->vkey);
		if (!cur->vkey_ok) {
			dbus_policy_msg_from_hdr(&b->policy->pol, hdr, h, false, &cur->pmsg);
			dbus_policy_msg_drop_bytes(&cur->pmsg);
			cur->pmsg_seq = b->policy->seq;
		}
	}
	if (!cur->multicast) {
		/*
		 * The master forwards what a client sent it (to a name the client could not address
		 * yet, or queued for activation), with the client as SENDER: the answer to a call
		 * goes from the callee to the client directly, as for a call the client sent itself,
		 * and a reply forwarded for its sender settles the call it answers.
		 */
		if (ctx->from_master && h->sender.present &&
		    (h->type == DBUS_HDR_TYPE_METHOD_RETURN || h->type == DBUS_HDR_TYPE_ERROR ||
		     (h->type == DBUS_HDR_TYPE_METHOD_CALL && !(h->flags & DBUS_FLAG_NO_REPLY_EXPECTED))))
			cur->forwarded_for = dbus_client_find_name(b, hdr + h->sender.off,
								   h->sender.len);
		return 0;
	}
	if (skb_headlen(skb) >= skb->len) {
		cur->msg = skb->data;
	} else {
		cur->copy = kmalloc(skb->len, GFP_ATOMIC | __GFP_NOWARN);
		if (!cur->copy)
			return -ENOBUFS;
		if (skb_copy_bits(skb, 0, cur->copy, skb->len))
			return -EBADMSG;
		cur->msg = cur->copy;
	}
	/* Its offsets count from the message's first byte: as valid in cur->msg as where they were read. */
	cur->hdr = *h;
	cur->nargs = b->max_nargs ? dbus_match_args_extract(cur->msg, skb->len, &cur->hdr, b->max_nargs,
							    &cur->args) : 0;
	if (cur->nargs < 0)
		memset(&cur->args, 0, sizeof(cur->args));	/* a bad body matches no argN */
	dbus_mark_subscribers(b);
	return 0;
}

static int dbus_send_hook(void *priv, const struct bus_hook_ctx *ctx)
{
	struct dbus_bus *b = ctx->proto_priv;
	u8 stackbuf[DBUS_HDR_ON_STACK];
	struct dbus_hdr h;
	const u8 *hdr;
	u8 *heap;
	int err;

	/* Authentication and Hello are the master's to check. */
	if (ctx->bus_protocol != BUS_PROTO_DBUS || ctx->before_join)
		return BUS_HOOK_ACCEPT;
	err = dbus_parse_skb(ctx->skb, stackbuf, &heap, &hdr, &h);
	if (!err && !ctx->from_master)
		err = dbus_check_sender(ctx, hdr, &h);
	if (!err && b)
		err = dbus_remember(b, ctx, hdr, &h);
	kfree(heap);
	return err;
}

/* A call from one named client to another: remembered so that the callee can answer it. */
static int dbus_record_call(struct dbus_bus *b, struct dbus_client *caller, struct dbus_client *callee,
			    u32 serial)
{
	struct dbus_call *c = dbus_call_find(b, caller->addr, serial), *tmp;

	if (c) {	/* the caller reused a serial: the newer call is the one to answer */
		dbus_call_free(c);
	} else if (caller->ncalls >= b->max_replies) {
		/* calls that timed out make room, as dbus-daemon's reply timeout frees them */
		list_for_each_entry_safe(c, tmp, &caller->calls, caller_node)
			if (time_after_eq(jiffies, c->expires))
				dbus_call_free(c);
		if (caller->ncalls >= b->max_replies)
			return -EDQUOT;
	}
	c = kmalloc(sizeof(*c), GFP_ATOMIC | __GFP_NOWARN | __GFP_ACCOUNT);
	if (!c)
		return -ENOBUFS;
	c->caller = caller;
	c->callee = callee;
	c->serial = serial;
	c->expires = jiffies + b->reply_timeout;
	hash_add(b->calls, &c->hnode, dbus_call_key(caller->addr, serial));
	list_add_tail(&c->caller_node, &caller->calls);
	list_add_tail(&c->callee_node, &callee->answers);
	caller->ncalls++;
	return BUS_HOOK_ACCEPT;
}

/* A reply passes only as the answer its receiver is waiting for from its sender. */
static int dbus_take_reply(struct dbus_bus *b, u64 caller, u64 replier, u32 reply_serial)
{
	struct dbus_call *c = dbus_call_find(b, caller, reply_serial);
	bool answer;

	if (!c || c->callee->addr != replier)
		return BUS_HOOK_DROP;
	answer = time_before(jiffies, c->expires);
	dbus_call_free(c);
	return answer ? BUS_HOOK_ACCEPT : BUS_HOOK_DROP;
}

/*
 * A multicast copy reaches a client only if one of its match records matches (a signal nobody
 * subscribed to goes nowhere, as on dbus-daemon); a reply never travels by multicast.
 */
static int dbus_deliver_copy(struct dbus_bus *b, const struct bus_hook_ctx *ctx)
{
	const struct dbus_current *cur = &b->cur;
	struct dbus_client *c;

	/* Copies are clones of the message the send hook saw, under the same hold of the lock. */
	if (WARN_ON_ONCE(!cur->multicast || !cur->msg))
		return BUS_HOOK_DROP;
	c = dbus_client_find(b, ctx->rcpt);
	if (!c || c->matched != b->match_seq)
		return BUS_HOOK_DROP;
	if (ctx->from_master)
		return BUS_HOOK_ACCEPT;
	/* a refusal drops this copy only */
	return dbus_policy_allows(b, ctx, dbus_client_find(b, ctx->src), c, false, false) ?
	       BUS_HOOK_DROP : BUS_HOOK_ACCEPT;
}

/* An eavesdropper's copy of a message between clients: as the eavesdropper's eavesdrop rules say. */
static int dbus_deliver_eavesdrop(struct dbus_bus *b, const struct bus_hook_ctx *ctx)
{
	if (ctx->from_master || ctx->rcpt == BUS_MASTER_ADDR || !b->policy)
		return BUS_HOOK_ACCEPT;
	if (WARN_ON_ONCE(b->cur.skb != ctx->skb))
		return BUS_HOOK_DROP;
	/* a reply is judged as its own delivery judges it: requested (an unrequested one is dropped) */
	return dbus_policy_allows(b, ctx, dbus_client_find(b, ctx->src), dbus_client_find(b, ctx->rcpt), true,
				  b->cur.reply_serial != 0);
}

/* A reply from client replier to client caller: it passes only if policy lets it and it answers a call. */
static int dbus_deliver_reply(struct dbus_bus *b, const struct bus_hook_ctx *ctx)
{
	struct dbus_call *c = dbus_call_find(b, ctx->rcpt, b->cur.reply_serial);
	int verdict;

	if (!c || c->callee->addr != ctx->src)
		return BUS_HOOK_DROP;
	if (time_after_eq(jiffies, c->expires)) {
		dbus_call_free(c);
		return BUS_HOOK_DROP;
	}
	/* Refused, the call stays pending: another answer may still be allowed, or it times out. */
	verdict = dbus_policy_allows(b, ctx, c->callee, c->caller, false, true);
	if (verdict == BUS_HOOK_ACCEPT)
		dbus_call_free(c);
	return verdict;
}

static int dbus_deliver_hook(void *priv, const struct bus_hook_ctx *ctx)
{
	struct dbus_bus *b = ctx->proto_priv;
	struct dbus_client *caller, *callee;
	int verdict;

	if (ctx->bus_protocol != BUS_PROTO_DBUS)
		return BUS_HOOK_ACCEPT;
	/* Eavesdroppers (monitors) see bus traffic, not a client's authentication. */
	if (ctx->before_join)
		return ctx->kind == BUS_HOOK_EAVESDROP ? BUS_HOOK_DROP : BUS_HOOK_ACCEPT;
	if (!b)
		return BUS_HOOK_ACCEPT;
	if (ctx->kind == BUS_HOOK_EAVESDROP)
		return dbus_deliver_eavesdrop(b, ctx);
	/* A copy of a multicast, from a client or the master: for subscribers only. */
	if (ctx->kind == BUS_HOOK_MULTICAST)
		return dbus_deliver_copy(b, ctx);
	if (ctx->rcpt == BUS_MASTER_ADDR)
		return BUS_HOOK_ACCEPT;
	if (ctx->from_master) {
		/* The master answers and tracks what goes through it, except what it forwards. */
		if (WARN_ON_ONCE(b->cur.skb != ctx->skb) || !b->cur.forwarded_for)
			return BUS_HOOK_ACCEPT;
		if (b->cur.type != DBUS_HDR_TYPE_METHOD_CALL) {
			/* the master judged the reply; it only settles the call, if recorded */
			dbus_take_reply(b, ctx->rcpt, b->cur.forwarded_for->addr, b->cur.reply_serial);
			return BUS_HOOK_ACCEPT;
		}
		callee = dbus_client_find(b, ctx->rcpt);
		if (!callee)
			return BUS_HOOK_ACCEPT;
		return dbus_record_call(b, b->cur.forwarded_for, callee, b->cur.serial);
	}
	/* A unicast delivery directly follows its send hook under the same hold of the bus lock. */
	if (WARN_ON_ONCE(b->cur.skb != ctx->skb))
		return -EPROTO;
	if (b->cur.type == DBUS_HDR_TYPE_METHOD_RETURN || b->cur.type == DBUS_HDR_TYPE_ERROR)
		return dbus_deliver_reply(b, ctx);
	/* Without policy, only a call awaiting a reply needs its two clients found. */
	if (!b->policy && (b->cur.type != DBUS_HDR_TYPE_METHOD_CALL ||
			   (b->cur.flags & DBUS_FLAG_NO_REPLY_EXPECTED)))
		return BUS_HOOK_ACCEPT;
	caller = dbus_client_find(b, ctx->src);
	callee = dbus_client_find(b, ctx->rcpt);
	verdict = dbus_policy_allows(b, ctx, caller, callee, false, false);
	if (verdict != BUS_HOOK_ACCEPT || b->cur.type != DBUS_HDR_TYPE_METHOD_CALL ||
	    (b->cur.flags & DBUS_FLAG_NO_REPLY_EXPECTED))
		return verdict;
	if (!caller || !callee)
		return BUS_HOOK_ACCEPT;	/* an unnamed callee cannot answer anyway */
	return dbus_record_call(b, caller, callee, b->cur.serial);
}

/*
 * A multicast goes only to the clients dbus_mark_subscribers() found, each still judged by the
 * delivery hook (policy): with many connections and few subscribers, the others cost nothing.
 */
static int dbus_multicast_receivers(void *priv, const struct bus_hook_ctx *ctx, const u64 **rcpts)
{
	struct dbus_bus *b = priv;

	if (!b || ctx->bus_protocol != BUS_PROTO_DBUS || ctx->before_join || b->cur.skb != ctx->skb ||
	    !b->cur.multicast || !b->cur.msg || b->rcpts_overflow)
		return -1;
	*rcpts = b->rcpts;
	return b->nrcpts;
}

static struct bus_hook_ops dbus_hooks[] = {
	/* before every other handler: a refused message costs no per-receiver work */
	{ .hook = dbus_send_hook, .point = BUS_HOOK_SEND, .priority = BUS_HOOK_PRI_FILTER - 100 },
	/* after every other delivery handler: a call is recorded only if it is delivered */
	{ .hook = dbus_deliver_hook, .point = BUS_HOOK_DELIVER, .priority = BUS_HOOK_PRI_LAST },
};

/*
 * What policy says of the current unicast between two clients, asked at a full queue: before the
 * queue, as dbus-daemon asks its send and receive rules before it looks at the destination's queue,
 * so that a message policy refuses is refused as such (AccessDenied), full queue or not.
 */
static int dbus_policy_at_full_queue(struct dbus_bus *b, const struct bus_hook_ctx *ctx)
{
	if (!b->policy || b->cur.skb != ctx->skb)
		return BUS_HOOK_ACCEPT;
	return dbus_policy_allows(b, ctx, dbus_client_find(b, ctx->src),
				  dbus_client_find(b, ctx->rcpt), false, false);
}

static bool dbus_client_to_client(const struct bus_hook_ctx *ctx)
{
	return ctx->proto_priv && ctx->bus_protocol == BUS_PROTO_DBUS && !ctx->before_join &&
	       !ctx->from_master && ctx->rcpt;
}

/*
 * A reply or an error for a client whose queue is full is dropped (and counted for it) rather than
 * hold up the client that answers: a caller that stops reading loses its own answers, as on the
 * broker (docs/kernel-mode.md, "Full queues"), and the service goes on serving everybody else.
 * A message policy drops goes too, as it would with room (the delivery hook drops it, uncounted).
 * Calls and signals are refused (below); what the master sends or is sent waits for room: the
 * daemon queues and accounts its own traffic.
 */
static bool dbus_drop_when_full(void *priv, const struct bus_hook_ctx *ctx)
{
	struct dbus_bus *b = ctx->proto_priv;

	/* b->cur describes the message the send hook accepted last, this one */
	if (!dbus_client_to_client(ctx) || b->cur.skb != ctx->skb)
		return false;
	if (b->cur.type == DBUS_HDR_TYPE_METHOD_RETURN || b->cur.type == DBUS_HDR_TYPE_ERROR)
		return true;
	return dbus_policy_at_full_queue(b, ctx) == BUS_HOOK_DROP;
}

/*
 * Anything else a client sends a client whose queue is full fails at once with EXFULL, which the
 * sender's library answers with LimitsExceeded, as dbus-daemon answers a message to a connection
 * beyond max_outgoing_bytes: the sender's other messages are not held up behind it. A message
 * policy refuses fails with policy's errno instead (EACCES). What goes to the master waits for room
 * (it reads everything), as does what the master sends.
 */
static int dbus_refuse_when_full(void *priv, const struct bus_hook_ctx *ctx)
{
	int verdict;

	if (!dbus_client_to_client(ctx))
		return 0;
	verdict = dbus_policy_at_full_queue(ctx->proto_priv, ctx);
	return verdict < 0 ? verdict : -EXFULL;
}

static struct bus_proto_ops dbus_proto = {
	.protocol = BUS_PROTO_DBUS,
	.optmin = BUS_DBUS_OPT_MIN,
	.optmax = BUS_DBUS_OPT_MAX,
	.setsockopt = dbus_setsockopt,
	.client_gone = dbus_client_gone,
	.bus_gone = dbus_bus_gone,
	/* dbus-daemon gives a signal to its sender too, if one of the sender's rules matches */
	.multicast_to_sender = true,
	.drop_when_full = dbus_drop_when_full,
	.refuse_when_full = dbus_refuse_when_full,
	.multicast_receivers = dbus_multicast_receivers,
	.owner = THIS_MODULE,
};

static int __init af_bus_dbus_init(void)
{
	int i, err;

	for (i = 0; i < ARRAY_SIZE(dbus_hooks); i++) {
		err = bus_register_hook(&dbus_hooks[i]);
		if (err)
			goto out_hooks;
	}
	err = bus_register_proto(&dbus_proto);
	if (err)
		goto out_hooks;
	return 0;

out_hooks:
	while (--i >= 0)
		bus_unregister_hook(&dbus_hooks[i]);
	return err;
}

static void __exit af_bus_dbus_exit(void)
{
	int i;

	/* No bus is left: each held a reference on this module. */
	bus_unregister_proto(&dbus_proto);
	for (i = ARRAY_SIZE(dbus_hooks) - 1; i >= 0; i--)
		bus_unregister_hook(&dbus_hooks[i]);
}

module_init(af_bus_dbus_init);
module_exit(af_bus_dbus_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("AF_BUS D-Bus protocol module: header checks, trusted senders, pending replies, matches, policy");
MODULE_AUTHOR("afbus project");
MODULE_SOFTDEP("pre: af_bus");
