// SPDX-License-Identifier: GPL-2.0
/*
 * Match-rule records for af_bus_dbus.ko: the check a record must pass to be installed, and its
 * evaluation against a message. The same file builds in userspace (dbus_header_user.h) for
 * test/unit/test_dbus_match_differential.cpp and test/fuzz/fuzz_dbus_match.cpp, which hold it to
 * libafbus's MatchRule::load and MatchRule::matches (lib/wire/match_rule.cpp); docs/kernel.md,
 * "Match-record evaluator".
 *
 * A checked record is trusted: every slice lies inside it, so evaluation reads rec without bounds checks.
 * The message is read only through its parsed header's views and the arguments extracted once.
 */
#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/errno.h>
#include <linux/string.h>
#else
#include "dbus_header_user.h"
#endif
#include "dbus_match.h"

static u32 dm_u16(const u8 *rec, u32 off)
{
	return rec[off] | (u32)rec[off + 1] << 8;
}

/* A string of the record: rec + off, len bytes. */
struct dm_str {
	const u8 *s;
	u32 len;
};

static bool dm_slice(const u8 *rec, u32 at, struct dm_str *out)
{
	u32 len = dm_u16(rec, at + 2);

	/* Filled either way: GCC 12 at -O3 cannot see that callers read it only on true. */
	out->s = rec;
	out->len = 0;
	if (len == DBUS_MATCH_ABSENT)
		return false;
	out->s = rec + dm_u16(rec, at);
	out->len = len;
	return true;
}

static bool dm_field(const u8 *rec, enum dbus_match_field f, struct dm_str *out)
{
	return dm_slice(rec, DBUS_MATCH_OFF_SLICES + 4 * f, out);
}

static u32 dm_arg_at(unsigned int i)
{
	return DBUS_MATCH_HEADER_LEN + i * DBUS_MATCH_ARG_LEN;
}

/*
 * Canonical slice layout: a present string starts where the previous one ended (*next) and stays inside
 * the record; an absent one has offset 0.
 */
static bool dm_slice_ok(const u8 *rec, u32 len, u32 at, u32 *next)
{
	u32 off = dm_u16(rec, at), n = dm_u16(rec, at + 2);

	if (n == DBUS_MATCH_ABSENT)
		return off == 0;
	if (off != *next || off + n > len)
		return false;
	*next += n;
	return true;
}

static bool dm_field_ok(const u8 *rec, enum dbus_match_field f, bool (*valid)(const u8 *, u32))
{
	struct dm_str v;

	return !dm_field(rec, f, &v) || valid(v.s, v.len);
}

int dbus_match_check(const u8 *rec, u32 len)
{
	u32 nargs, strings, next, i;
	int previous = -1;
	struct dm_str v;

	if (len < DBUS_MATCH_HEADER_LEN || len > DBUS_MATCH_MAX_LEN)
		return -EINVAL;
	if (rec[0] != DBUS_MATCH_VERSION || dm_u16(rec, DBUS_MATCH_OFF_SIZE) != len ||
	    dm_u16(rec, DBUS_MATCH_OFF_RESERVED) != 0)
		return -EINVAL;
	if (rec[DBUS_MATCH_OFF_TYPE] > DBUS_HDR_TYPE_SIGNAL || rec[DBUS_MATCH_OFF_EAVESDROP] > 2)
		return -EINVAL;
	nargs = rec[DBUS_MATCH_OFF_NARGS];
	if (nargs > DBUS_MATCH_MAX_ARGS)
		return -EINVAL;
	strings = dm_arg_at(nargs);
	if (strings > len || len - strings > DBUS_MATCH_MAX_STRINGS)
		return -EINVAL;

	next = strings;
	for (i = 0; i < DBUS_MATCH_FIELDS; i++)
		if (!dm_slice_ok(rec, len, DBUS_MATCH_OFF_SLICES + 4 * i, &next))
			return -EINVAL;
	for (i = 0; i < nargs; i++) {
		u32 at = dm_arg_at(i);
		int index = rec[at];
		u8 kind = rec[at + 1];

		if (index >= DBUS_MATCH_MAX_ARGS || index <= previous || kind > DBUS_MATCH_ARG_NAMESPACE)
			return -EINVAL;
		/* An argument condition always has a value. */
		if (dm_u16(rec, at + 4) == DBUS_MATCH_ABSENT || !dm_slice_ok(rec, len, at + 2, &next))
			return -EINVAL;
		if (kind == DBUS_MATCH_ARG_NAMESPACE) {
			dm_slice(rec, at + 2, &v);
			if (index != 0 || !dbus_hdr_valid_namespace(v.s, v.len))
				return -EINVAL;
		}
		previous = index;
	}
	if (next != len)
		return -EINVAL;

	/* What MatchRule::parse demands of each key's value, so that a record means what a text would. */
	if (!dm_field_ok(rec, DBUS_MATCH_SENDER, dbus_hdr_valid_bus_name) ||
	    !dm_field_ok(rec, DBUS_MATCH_DESTINATION, dbus_hdr_valid_bus_name) ||
	    !dm_field_ok(rec, DBUS_MATCH_INTERFACE, dbus_hdr_valid_interface) ||
	    !dm_field_ok(rec, DBUS_MATCH_MEMBER, dbus_hdr_valid_member) ||
	    !dm_field_ok(rec, DBUS_MATCH_PATH, dbus_hdr_valid_path) ||
	    !dm_field_ok(rec, DBUS_MATCH_PATH_NAMESPACE, dbus_hdr_valid_path))
		return -EINVAL;
	if (dm_field(rec, DBUS_MATCH_PATH, &v) && dm_field(rec, DBUS_MATCH_PATH_NAMESPACE, &v))
		return -EINVAL;
	return 0;
}

unsigned int dbus_match_nargs(const u8 *rec)
{
	unsigned int n = rec[DBUS_MATCH_OFF_NARGS];

	/* Indexes strictly increase: the last condition has the highest. */
	return n ? rec[dm_arg_at(n - 1)] + 1u : 0;
}

int dbus_match_args_extract(const u8 *msg, size_t len, const struct dbus_hdr *hdr, unsigned int nargs,
			    struct dbus_match_args *args)
{
	struct dbus_hdr_args it;
	struct dbus_hdr_view v;
	unsigned int i;
	u8 type;
	int r;

	args->nargs = nargs < DBUS_MATCH_MAX_ARGS ? nargs : DBUS_MATCH_MAX_ARGS;
	args->string = 0;
	args->path = 0;
	if (dbus_hdr_args_begin(&it, msg, len, hdr))
		return -EINVAL;
	for (i = 0; i < args->nargs; i++) {
		r = dbus_hdr_args_next(&it, &type, &v);
		if (r <= 0)
			return r ? r : (int)i;
		if (!v.present)
			continue;
		args->arg[i].off = v.off;
		args->arg[i].len = v.len;
		if (type == 's')
			args->string |= (u64)1 << i;
		else
			args->path |= (u64)1 << i;
	}
	return (int)i;
}

static bool dm_equal(const u8 *a, u32 alen, const u8 *b, u32 blen)
{
	return alen == blen && memcmp(a, b, alen) == 0;
}

static bool dm_starts_with(const u8 *s, u32 len, const u8 *prefix, u32 plen)
{
	return len >= plen && memcmp(s, prefix, plen) == 0;
}

/* A header field equal to the record's value; an absent field equals nothing (values are never empty). */
static bool dm_field_is(const u8 *msg, const struct dbus_hdr_view *field, const struct dm_str *want)
{
	return field->present && dm_equal(msg + field->off, field->len, want->s, want->len);
}

/* argNpath: equal, or one of them ends in '/' and is a prefix of the other. */
static bool dm_path_prefix(const u8 *arg, u32 alen, const struct dm_str *want)
{
	if (dm_equal(arg, alen, want->s, want->len))
		return true;
	if (want->len && want->s[want->len - 1] == '/' && dm_starts_with(arg, alen, want->s, want->len))
		return true;
	return alen && arg[alen - 1] == '/' && dm_starts_with(want->s, want->len, arg, alen);
}

/* arg0namespace: the value itself, or a name under it (the value then a '.'). */
static bool dm_in_namespace(const u8 *arg, u32 alen, const struct dm_str *ns)
{
	if (!dm_starts_with(arg, alen, ns->s, ns->len))
		return false;
	return alen == ns->len || arg[ns->len] == '.';
}

static bool dm_args_match(const u8 *rec, const u8 *msg, const struct dbus_match_args *args)
{
	unsigned int n = rec[DBUS_MATCH_OFF_NARGS], i;

	for (i = 0; i < n; i++) {
		u32 at = dm_arg_at(i);
		unsigned int index = rec[at];
		u8 kind = rec[at + 1];
		u64 bit = (u64)1 << index;
		struct dm_str want;
		const u8 *arg;
		u32 alen;

		if (!args || index >= args->nargs)
			return false;
		/* argNpath also takes an OBJECT_PATH; argN and arg0namespace only a STRING. */
		if (!((kind == DBUS_MATCH_ARG_PATH ? args->string | args->path : args->string) & bit))
			return false;
		dm_slice(rec, at + 2, &want);
		arg = msg + args->arg[index].off;
		alen = args->arg[index].len;
		switch (kind) {
		case DBUS_MATCH_ARG_STRING:
			if (!dm_equal(arg, alen, want.s, want.len))
				return false;
			break;
		case DBUS_MATCH_ARG_PATH:
			if (!dm_path_prefix(arg, alen, &want))
				return false;
			break;
		default:
			if (!dm_in_namespace(arg, alen, &want))
				return false;
			break;
		}
	}
	return true;
}

bool dbus_match_eval(const u8 *rec, const u8 *msg, const struct dbus_hdr *hdr,
		     const struct dbus_match_args *args)
{
	struct dm_str v;
	u8 type = rec[DBUS_MATCH_OFF_TYPE];

	if (type && hdr->type != type)
		return false;
	if (dm_field(rec, DBUS_MATCH_SENDER, &v) && !dm_field_is(msg, &hdr->sender, &v))
		return false;
	if (dm_field(rec, DBUS_MATCH_DESTINATION, &v) && !dm_field_is(msg, &hdr->destination, &v))
		return false;
	if (dm_field(rec, DBUS_MATCH_INTERFACE, &v) && !dm_field_is(msg, &hdr->interface, &v))
		return false;
	if (dm_field(rec, DBUS_MATCH_MEMBER, &v) && !dm_field_is(msg, &hdr->member, &v))
		return false;
	if (dm_field(rec, DBUS_MATCH_PATH, &v) && !dm_field_is(msg, &hdr->path, &v))
		return false;
	if (dm_field(rec, DBUS_MATCH_PATH_NAMESPACE, &v)) {
		/* A message without PATH (a return, an error) is in no namespace, not even "/". */
		const u8 *p = msg + hdr->path.off;
		u32 plen = hdr->path.len;

		if (!hdr->path.present)
			return false;
		if (!(v.len == 1 && v.s[0] == '/') && !dm_equal(p, plen, v.s, v.len) &&
		    !(plen > v.len && dm_starts_with(p, plen, v.s, v.len) && p[v.len] == '/'))
			return false;
	}
	return rec[DBUS_MATCH_OFF_NARGS] == 0 || dm_args_match(rec, msg, args);
}
