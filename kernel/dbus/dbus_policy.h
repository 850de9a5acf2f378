/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The compiled busconfig policy (docs/policy.md, "The policy image, version 1") checked and evaluated
 * for af_bus_dbus.ko; the same file builds in userspace (dbus_header_user.h) for the differential test
 * and the fuzz target that hold it to policy/'s PolicyImage::load and ConnectionChains.
 *
 * The kernel does not choose which rules apply to a connection: the master builds each connection's
 * chains (rule indices in evaluation order, per hook) from its credentials with policy/'s engine and
 * installs them; this file checks them against the image and evaluates them. Last matching rule wins,
 * as in dbus-daemon.
 *
 * Strings are compared as image offsets: the image stores each distinct string once, so a message's
 * fields and a party's names are looked up in a hash index of the image's strings once per message
 * (per party), after which every rule costs a few integer comparisons. Allocation-free (the caller
 * provides the index's memory), no recursion, no I/O.
 *
 *	dbus_policy_check(img, len, &pol);			// once per image
 *	dbus_policy_index_strings(&pol, index);			// once, index: pol.index_slots u32s
 *	dbus_policy_chain_check(&pol, hook, rules, n);		// once per chain installed
 *	dbus_policy_chain_index(&pol, rules, n, entries, &chain);	// ... and indexed
 *	dbus_policy_msg_from_hdr(&pol, msg, &hdr, &m);		// once per message
 *	dbus_policy_intern(&pol, name, len, &str);		// once per party name
 *	dbus_policy_decide_indexed(&pol, hook, &chain, &m, party);	// per delivery
 */
#ifndef AFBUS_DBUS_POLICY_H
#define AFBUS_DBUS_POLICY_H

#include "dbus_header.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DBUS_POLICY_MAGIC 0x50424641u	/* "AFBP" read as a little-endian u32 */
#define DBUS_POLICY_VERSION 1
#define DBUS_POLICY_HEADER_LEN 40
#define DBUS_POLICY_RULE_LEN 52
#define DBUS_POLICY_CONTEXT_LEN 16
#define DBUS_POLICY_NO_STRING 0xffffffffu	/* a rule field that matches anything */
#define DBUS_POLICY_MAX_IMAGE (64u << 20)
#define DBUS_POLICY_MAX_RULES (1u << 20)
#define DBUS_POLICY_MAX_CONTEXTS (1u << 16)
#define DBUS_POLICY_MAX_STRING 65535u
#define DBUS_POLICY_MAX_FDS (128u * 1024 * 1024 / 4)

/* The hooks a chain is for (policy_image.hpp's Hook; connect and own stay in the daemon). */
enum dbus_policy_hook {
	DBUS_POLICY_SEND = 2,
	DBUS_POLICY_RECEIVE = 3,
	DBUS_POLICY_EAVESDROP = 4,
};

enum dbus_policy_verdict {
	DBUS_POLICY_ACCEPT = 0,
	DBUS_POLICY_DROP = 1,
	DBUS_POLICY_REJECT = 2,
};

#define DBUS_POLICY_USES_PATH 1u
#define DBUS_POLICY_USES_INTERFACE 2u
#define DBUS_POLICY_USES_MEMBER 4u
#define DBUS_POLICY_USES_ERROR 8u

/* A checked image: where its sections are. */
struct dbus_policy {
	const u8 *img;
	u32 len;
	u32 rule_count;
	u32 context_count;
	u32 strings_off;	/* from img */
	u32 strings_size;
	u32 string_count;	/* how many strings the section holds */
	u32 index_slots;	/* the index's length: a power of two above 1.5 string_count */
	u32 fields;		/* DBUS_POLICY_USES_*: the message fields some rule names */
	/*
	 * The strings' offsets, hashed (open addressing, linear probing, DBUS_POLICY_NO_STRING in an
	 * empty slot); NULL until dbus_policy_index_strings()
	 */
	const u32 *index;
	u32 empty_id;		/* the offset of the image's empty string, DBUS_POLICY_NO_STRING if none */
};

/*
 * 0 and *pol filled if img[0, len) is an image PolicyImage::load accepts (every bound, enum, offset and
 * string checked; docs/policy.md), else -EINVAL. img must stay in place while pol is used.
 */
int dbus_policy_check(const u8 *img, u32 len, struct dbus_policy *pol);

/*
 * Fills index[0, pol->index_slots) with the image's strings hashed by content and points
 * pol->index at it: 0, or -EINVAL if the image holds a string twice (the compiler stores each
 * once; the evaluator relies on it, comparing strings by offset). In place, no allocation; O(n)
 * expected, and at most the image's own clustering for a lookup, which a client's strings cannot
 * lengthen.
 */
int dbus_policy_index_strings(struct dbus_policy *pol, u32 *index);

/*
 * 0 if rules[0, n) can be a chain for hook: every index names a rule of the image of the hook's kind
 * (send rules for DBUS_POLICY_SEND, receive rules for the other two), else -EINVAL.
 */
int dbus_policy_chain_check(const struct dbus_policy *pol, enum dbus_policy_hook hook, const u32 *rules,
			    u32 n);

/*
 * A string of a message or a party, with the image string equal to it: id is that string's offset,
 * DBUS_POLICY_ABSENT when the string is empty (a header field not present), or DBUS_POLICY_FOREIGN
 * when the image holds no such string (no rule can name it exactly).
 */
#define DBUS_POLICY_ABSENT 0xfffffffeu
#define DBUS_POLICY_FOREIGN 0xfffffffdu
struct dbus_policy_str {
	const u8 *s;
	u32 len;
	u32 id;
};

/* Looks s[0, len) up in the index (pol->index must be set). */
void dbus_policy_intern(const struct dbus_policy *pol, const u8 *s, u32 len, struct dbus_policy_str *out);

/* What rules look at in a message (policy_engine.hpp's MessageFacts). */
struct dbus_policy_msg {
	u8 type;
	bool is_reply;		/* carries a reply serial */
	bool requested_reply;	/* ... and it answers a call the bus saw */
	u32 fds;
	struct dbus_policy_str path, interface, member, error_name, destination, sender;
};

/*
 * Fills *m from a message dbus_hdr_parse() accepted; requested_reply is the caller's to set. Only the
 * fields some rule names are looked up (the others only need to be present or not); DESTINATION and
 * SENDER only with_names: they are compared only when the other end is the bus itself (NULL), which a
 * caller that never asks about it (af_bus_dbus.ko) need not pay for.
 */
void dbus_policy_msg_from_hdr(const struct dbus_policy *pol, const u8 *msg, const struct dbus_hdr *hdr,
			      bool with_names, struct dbus_policy_msg *m);

/*
 * What the rules of an image can look at in a message, as bytes (the key of af_bus_dbus.ko's
 * verdict cache, docs/kernel.md): its type, whether it is a reply and whether that answers a call
 * (the caller's to set, per delivery), whether it names a destination, its fd count, and the header
 * fields some rule of the image names, each preceded by its length. Messages with equal keys have
 * facts (dbus_policy_msg_from_hdr without names) that every chain of the image decides alike.
 */
#define DBUS_POLICY_KEY_FIELDS 120
#define DBUS_POLICY_KEY_REPLY 1u
#define DBUS_POLICY_KEY_DESTINATION 2u
#define DBUS_POLICY_KEY_REQUESTED 4u
struct dbus_policy_key {
	u8 type;
	u8 bits;		/* DBUS_POLICY_KEY_* */
	u16 len;		/* bytes of fields[] used */
	u32 fds;
	u8 fields[DBUS_POLICY_KEY_FIELDS];
};

/*
 * Fills *k from a message dbus_hdr_parse() accepted, requested bit clear: true, or false when the
 * fields some rule names do not fit (a field over 255 bytes, or over 120 in all).
 */
bool dbus_policy_key_from_hdr(const struct dbus_policy *pol, const u8 *msg,
			      const struct dbus_hdr *hdr, struct dbus_policy_key *k);

bool dbus_policy_key_equal(const struct dbus_policy_key *a, const struct dbus_policy_key *b);

/*
 * The facts of a key from dbus_policy_key_from_hdr() for the same image, as
 * dbus_policy_msg_from_hdr() without names gives them for evaluation with a party (not the bus
 * itself); the strings point into k, requested_reply is k's bit.
 */
void dbus_policy_msg_from_key(const struct dbus_policy *pol, const struct dbus_policy_key *k,
			      struct dbus_policy_msg *m);

/*
 * The other end (the recipient of a send, the sender of a receive): its unique name and the names it
 * owns or is queued for, each interned. NULL for the bus itself, whose name is then read from the
 * message (DESTINATION for a send, SENDER for a receive).
 */
struct dbus_policy_party {
	struct dbus_policy_str unique_name;
	const struct dbus_policy_str *names;
	u32 name_count;
};

/*
 * The index of the rule that decides (the last of rules[0, n), a chain dbus_policy_chain_check()
 * accepted for hook, that matches), or -1 when none does (then the verdict is reject with
 * org.freedesktop.DBus.Error.AccessDenied).
 */
long dbus_policy_decide(const struct dbus_policy *pol, enum dbus_policy_hook hook, const u32 *rules, u32 n,
			const struct dbus_policy_msg *m, const struct dbus_policy_party *other);

/*
 * A chain indexed as policy/'s ConnectionChains indexes it, so that a decision costs the rules that
 * could apply to the message rather than the whole chain: the rules about one exact name, found by
 * the other end's names; the allow rules about no name but one interface, found by the message's
 * interface; and the others, all tried. entries[] holds one entry per rule of the chain, in three
 * runs: [0, generic) the others by position; then by_name entries by (name, position); then the rest
 * by (interface, position).
 */
struct dbus_policy_index_entry {
	u32 key;	/* image offset of the name or interface; 0 in the first run */
	u32 pos;	/* position in the chain */
};

struct dbus_policy_chain {
	const u32 *rules;
	u32 n;
	const struct dbus_policy_index_entry *entries;
	u32 generic;
	u32 by_name;
};

/*
 * Indexes rules[0, n) (a chain dbus_policy_chain_check() accepted) into entries[0, n), which the
 * caller provides and keeps with rules; fills *chain. In place, O(n log n), no allocation.
 */
void dbus_policy_chain_index(const struct dbus_policy *pol, const u32 *rules, u32 n,
			     struct dbus_policy_index_entry *entries, struct dbus_policy_chain *chain);

/* dbus_policy_decide() on an indexed chain: the same rule, looking only at its candidates. */
long dbus_policy_decide_indexed(const struct dbus_policy *pol, enum dbus_policy_hook hook,
				const struct dbus_policy_chain *chain, const struct dbus_policy_msg *m,
				const struct dbus_policy_party *other);

/* The verdict of rule index rule (from dbus_policy_decide()), or DBUS_POLICY_REJECT for -1. */
enum dbus_policy_verdict dbus_policy_verdict(const struct dbus_policy *pol, long rule);

#ifdef __cplusplus
}
#endif

#endif /* AFBUS_DBUS_POLICY_H */
