/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Match-rule records (docs/policy.md, "Match rule records, version 1") checked and evaluated for
 * af_bus_dbus.ko; the same file builds in userspace (dbus_header_user.h) for the differential test and
 * the fuzz target that hold it to libafbus's MatchRule::load and MatchRule::matches.
 *
 * Allocation-free, no recursion, no I/O. docs/kernel.md, "Match-record evaluator", says what is checked
 * and what it costs.
 *
 * For one message and many records:
 *	dbus_hdr_parse(msg, len, &hdr, NULL);		// once per message (the send hook does it anyway)
 *	dbus_match_args_extract(msg, len, &hdr, n, &args);	// once, n = the most any record needs
 *	for each record: dbus_match_eval(rec, msg, &hdr, &args);
 */
#ifndef AFBUS_DBUS_MATCH_H
#define AFBUS_DBUS_MATCH_H

#include "dbus_header.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The record layout, version 1 (little-endian u16s, offsets from the record's start). */
#define DBUS_MATCH_VERSION 1
#define DBUS_MATCH_OFF_TYPE 1		/* u8: 0 any, else the message type (1..4) */
#define DBUS_MATCH_OFF_EAVESDROP 2	/* u8: 0 not given, 1 false, 2 true */
#define DBUS_MATCH_OFF_NARGS 3		/* u8: argument conditions, 0..64 */
#define DBUS_MATCH_OFF_SIZE 4		/* u16: the whole record */
#define DBUS_MATCH_OFF_RESERVED 6	/* u16: 0 */
#define DBUS_MATCH_OFF_SLICES 8		/* 6 x {u16 offset, u16 length} */
#define DBUS_MATCH_HEADER_LEN 32
#define DBUS_MATCH_ARG_LEN 6		/* {u8 index, u8 kind, u16 offset, u16 length} */
#define DBUS_MATCH_ABSENT 0xffffu	/* a slice's length when the key is not in the rule */
#define DBUS_MATCH_MAX_ARGS 64
#define DBUS_MATCH_MAX_STRINGS 1024u
#define DBUS_MATCH_MAX_LEN (DBUS_MATCH_HEADER_LEN + DBUS_MATCH_MAX_ARGS * DBUS_MATCH_ARG_LEN + \
			    DBUS_MATCH_MAX_STRINGS)

/* The string slices, in record order. */
enum dbus_match_field {
	DBUS_MATCH_SENDER,
	DBUS_MATCH_INTERFACE,
	DBUS_MATCH_MEMBER,
	DBUS_MATCH_PATH,
	DBUS_MATCH_PATH_NAMESPACE,
	DBUS_MATCH_DESTINATION,
	DBUS_MATCH_FIELDS
};

/* An argument condition's kind. */
enum dbus_match_arg_kind {
	DBUS_MATCH_ARG_STRING = 0,	/* argN: a STRING equal to the value */
	DBUS_MATCH_ARG_PATH = 1,	/* argNpath: a STRING or OBJECT_PATH, path-prefix either way */
	DBUS_MATCH_ARG_NAMESPACE = 2,	/* arg0namespace: a STRING, the value or under it at a '.' */
};

/*
 * 0 if rec[0, len) is a record MatchRule::load accepts (canonical layout, every slice inside, names and
 * paths valid, arg0namespace valid, not both path and path_namespace), else -EINVAL. Every function
 * below trusts a record this accepted.
 */
int dbus_match_check(const u8 *rec, u32 len);

/* How many leading body arguments the record looks at: its highest argument index + 1, or 0. */
unsigned int dbus_match_nargs(const u8 *rec);

/*
 * What the record conditions need of a message's first nargs body arguments: for each, whether it is a
 * STRING, an OBJECT_PATH (and then where its bytes are), or neither (another type, absent, or at or
 * after a malformed argument). 8 bytes per argument: 536 bytes in all, so the module may keep one per
 * bus under the bus's lock rather than on the stack.
 */
struct dbus_match_args {
	u32 nargs;		/* how many arguments were asked for: the most any record evaluated needs */
	u64 string;		/* bit i: argument i is a STRING at arg[i] */
	u64 path;		/* bit i: argument i is an OBJECT_PATH at arg[i] */
	struct {
		u32 off;	/* into the message; msg[off + len] is the NUL */
		u32 len;
	} arg[DBUS_MATCH_MAX_ARGS];
};

/*
 * Reads the first nargs (at most 64) body arguments of a message dbus_hdr_parse() accepted (msg, len as
 * given to it) into *args, stepping over arguments of every other type without recursion. Reads the body
 * up to the end of argument nargs - 1, never beyond it. Returns how many arguments it read (fewer than
 * nargs if the body has fewer), or -EBADMSG if it met a malformed one (the body is not validated by the
 * header parser; *args then holds what came before it, and conditions on the rest do not match), or
 * -EINVAL if len is not the header's length.
 */
int dbus_match_args_extract(const u8 *msg, size_t len, const struct dbus_hdr *hdr, unsigned int nargs,
			    struct dbus_match_args *args);

/*
 * Whether the message (msg, its parsed header hdr) satisfies the record rec (which dbus_match_check()
 * accepted): MatchRule::matches(message, true), that is type, sender (compared with SENDER as written,
 * no owner lookup), interface, member, path, path_namespace, destination (compared with DESTINATION),
 * argN, argNpath, arg0namespace. eavesdrop is not a condition on the message (the bus decides who may
 * eavesdrop). args must come from dbus_match_args_extract() for this message with nargs at least
 * dbus_match_nargs(rec); it may be NULL for a record without argument conditions. A record needing an
 * argument args was not asked for does not match (a caller bug, not a crash).
 */
bool dbus_match_eval(const u8 *rec, const u8 *msg, const struct dbus_hdr *hdr,
		     const struct dbus_match_args *args);

#ifdef __cplusplus
}
#endif

#endif /* AFBUS_DBUS_MATCH_H */
