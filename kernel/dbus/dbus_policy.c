// SPDX-License-Identifier: GPL-2.0
/*
 * The compiled busconfig policy for af_bus_dbus.ko: the check an image and a chain must pass to be
 * installed, and the evaluation of a chain for one delivery. The same file builds in userspace
 * (dbus_header_user.h) for test/unit/test_dbus_policy_differential.cpp and
 * test/fuzz/fuzz_dbus_policy.cpp, which hold it to policy/'s PolicyImage::load and
 * ConnectionChains::check_send / check_receive; docs/kernel.md, "Policy evaluator".
 *
 * A checked image is trusted: every record field is in range and every string offset starts a
 * NUL-terminated string inside the image, so evaluation reads it without bounds checks.
 */
#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/errno.h>
#include <linux/sched.h>
#include <linux/string.h>
/* The checks and sorts below run once per image or chain, from setsockopt (may sleep): a 16 MiB
 * image must not hog the CPU. */
#define dp_resched(i) do { if (!((i) & 1023)) cond_resched(); } while (0)
#else
#include "dbus_header_user.h"
#define dp_resched(i) do { } while (0)
#endif
#include "dbus_policy.h"

/* ImageHeader's fields (u32 unless noted), from the image's start. */
#define DP_H_MAGIC 0
#define DP_H_VERSION 4		/* u16 */
#define DP_H_HEADER_SIZE 6	/* u16 */
#define DP_H_TOTAL_SIZE 8
#define DP_H_RULE_COUNT 12
#define DP_H_RULES_OFF 16
#define DP_H_CONTEXT_COUNT 20
#define DP_H_CONTEXTS_OFF 24
#define DP_H_STRINGS_OFF 28
#define DP_H_STRINGS_SIZE 32

/* RuleRecord's fields, from the record's start. */
#define DP_R_KIND 0
#define DP_R_VERDICT 1
#define DP_R_FLAGS 2
#define DP_R_TYPE 3
#define DP_R_REPLY 4
#define DP_R_BROADCAST 5
#define DP_R_NAME_MATCH 6
#define DP_R_RESERVED 7
#define DP_R_NAME 8
#define DP_R_PATH 12
#define DP_R_INTERFACE 16
#define DP_R_MEMBER 20
#define DP_R_ERROR 24
#define DP_R_MIN_FDS 28
#define DP_R_MAX_FDS 32
#define DP_R_REJECT_ERROR 40
#define DP_R_FILE 48

/* ContextRecord's fields. */
#define DP_C_KIND 0
#define DP_C_FIRST_RULE 8
#define DP_C_RULE_COUNT 12

#define DP_KIND_SEND 2
#define DP_KIND_RECEIVE 3
#define DP_FLAG_INTERFACE_REQUIRED (1u << 1)
#define DP_FLAGS_KNOWN ((1u << 6) - 1)
#define DP_REPLY_REQUESTED_ONLY 1
#define DP_REPLY_UNREQUESTED_ONLY 2
#define DP_BROADCAST_ANY 0
#define DP_BROADCAST_YES 1
#define DP_NAME_ANY 0
#define DP_NAME_EXACT 1
#define DP_NAME_PREFIX 2
#define DP_CONTEXT_KIND_MAX 5

/* The image is in host byte order (docs/policy.md); it may sit at any alignment. */
static u32 dp_u32(const u8 *p)
{
	u32 v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static u32 dp_u16(const u8 *p)
{
	u16 v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static const u8 *dp_rule(const struct dbus_policy *pol, u32 i)
{
	return pol->img + DBUS_POLICY_HEADER_LEN + (size_t)i * DBUS_POLICY_RULE_LEN;
}

static const u8 *dp_string(const struct dbus_policy *pol, u32 off)
{
	return pol->img + pol->strings_off + off;
}

/*
 * A string offset a rule may hold: the start of a string of the section (whose strings were all found
 * at most 65,535 bytes long, in one pass: a check per reference would cost rules x string length).
 */
static bool dp_string_ok(const struct dbus_policy *pol, u32 off, bool optional)
{
	if (off == DBUS_POLICY_NO_STRING)
		return optional;
	return off < pol->strings_size && (off == 0 || dp_string(pol, off - 1)[0] == '\0');
}

static int dp_rule_check(const struct dbus_policy *pol, const u8 *r)
{
	u32 name = dp_u32(r + DP_R_NAME);
	bool reject = r[DP_R_VERDICT] == DBUS_POLICY_REJECT;
	u32 min_fds = dp_u32(r + DP_R_MIN_FDS), max_fds = dp_u32(r + DP_R_MAX_FDS);

	if (r[DP_R_KIND] > DP_KIND_RECEIVE || r[DP_R_VERDICT] > DBUS_POLICY_REJECT ||
	    r[DP_R_FLAGS] & ~DP_FLAGS_KNOWN || r[DP_R_TYPE] > DBUS_HDR_TYPE_SIGNAL ||
	    r[DP_R_REPLY] > DP_REPLY_UNREQUESTED_ONLY || r[DP_R_BROADCAST] > 2 ||
	    r[DP_R_NAME_MATCH] > DP_NAME_PREFIX || r[DP_R_RESERVED] != 0)
		return -EINVAL;
	if ((r[DP_R_NAME_MATCH] == DP_NAME_ANY) != (name == DBUS_POLICY_NO_STRING))
		return -EINVAL;
	if (!dp_string_ok(pol, name, true) || !dp_string_ok(pol, dp_u32(r + DP_R_PATH), true) ||
	    !dp_string_ok(pol, dp_u32(r + DP_R_INTERFACE), true) ||
	    !dp_string_ok(pol, dp_u32(r + DP_R_MEMBER), true) ||
	    !dp_string_ok(pol, dp_u32(r + DP_R_ERROR), true) ||
	    !dp_string_ok(pol, dp_u32(r + DP_R_FILE), true))
		return -EINVAL;
	if (reject ? !dp_string_ok(pol, dp_u32(r + DP_R_REJECT_ERROR), false) :
		     dp_u32(r + DP_R_REJECT_ERROR) != DBUS_POLICY_NO_STRING)
		return -EINVAL;
	/* min_fds above max_fds is allowed: the rule then matches no message. */
	if (min_fds > DBUS_POLICY_MAX_FDS || max_fds > DBUS_POLICY_MAX_FDS)
		return -EINVAL;
	return 0;
}

int dbus_policy_check(const u8 *img, u32 len, struct dbus_policy *pol)
{
	u32 rule_count, context_count, strings_off, strings_size, next_rule = 0, i, start;
	u64 rules_end, contexts_end;
	const u8 *strings;

	if (len < DBUS_POLICY_HEADER_LEN || len > DBUS_POLICY_MAX_IMAGE)
		return -EINVAL;
	if (dp_u32(img + DP_H_MAGIC) != DBUS_POLICY_MAGIC || dp_u16(img + DP_H_VERSION) != DBUS_POLICY_VERSION ||
	    dp_u16(img + DP_H_HEADER_SIZE) != DBUS_POLICY_HEADER_LEN || dp_u32(img + DP_H_TOTAL_SIZE) != len)
		return -EINVAL;
	rule_count = dp_u32(img + DP_H_RULE_COUNT);
	context_count = dp_u32(img + DP_H_CONTEXT_COUNT);
	if (rule_count > DBUS_POLICY_MAX_RULES || context_count > DBUS_POLICY_MAX_CONTEXTS)
		return -EINVAL;
	/* The sections follow each other exactly; 64-bit sums so that nothing wraps. */
	rules_end = DBUS_POLICY_HEADER_LEN + (u64)rule_count * DBUS_POLICY_RULE_LEN;
	contexts_end = (u64)dp_u32(img + DP_H_CONTEXTS_OFF) + (u64)context_count * DBUS_POLICY_CONTEXT_LEN;
	strings_off = dp_u32(img + DP_H_STRINGS_OFF);
	strings_size = dp_u32(img + DP_H_STRINGS_SIZE);
	if (dp_u32(img + DP_H_RULES_OFF) != DBUS_POLICY_HEADER_LEN || dp_u32(img + DP_H_CONTEXTS_OFF) != rules_end ||
	    strings_off != contexts_end || (u64)strings_off + strings_size != len)
		return -EINVAL;
	strings = img + strings_off;
	if (strings_size != 0 && strings[strings_size - 1] != '\0')
		return -EINVAL;

	pol->img = img;
	pol->len = len;
	pol->rule_count = rule_count;
	pol->context_count = context_count;
	pol->strings_off = strings_off;
	pol->strings_size = strings_size;
	pol->index = NULL;
	pol->empty_id = DBUS_POLICY_NO_STRING;
	pol->string_count = 0;
	for (i = 0, start = 0; i < strings_size; i++) {
		if (strings[i] != '\0')
			continue;
		if (i - start > DBUS_POLICY_MAX_STRING)
			return -EINVAL;
		pol->string_count++;
		start = i + 1;
	}
	/* at most two thirds full, so that a lookup of a string not in the image ends soon */
	for (pol->index_slots = 2; pol->index_slots < pol->string_count + pol->string_count / 2 + 1;)
		pol->index_slots *= 2;

	pol->fields = 0;
	for (i = 0; i < rule_count; i++) {
		const u8 *r = dp_rule(pol, i);

		dp_resched(i);
		if (dp_rule_check(pol, r))
			return -EINVAL;
		pol->fields |= (dp_u32(r + DP_R_PATH) != DBUS_POLICY_NO_STRING ? DBUS_POLICY_USES_PATH : 0) |
			       (dp_u32(r + DP_R_INTERFACE) != DBUS_POLICY_NO_STRING ? DBUS_POLICY_USES_INTERFACE : 0) |
			       (dp_u32(r + DP_R_MEMBER) != DBUS_POLICY_NO_STRING ? DBUS_POLICY_USES_MEMBER : 0) |
			       (dp_u32(r + DP_R_ERROR) != DBUS_POLICY_NO_STRING ? DBUS_POLICY_USES_ERROR : 0);
	}
	/* Contexts tile the rule table in order: every rule belongs to exactly one. */
	for (i = 0; i < context_count; i++) {
		const u8 *c = img + rules_end + (size_t)i * DBUS_POLICY_CONTEXT_LEN;
		u32 first = dp_u32(c + DP_C_FIRST_RULE), count = dp_u32(c + DP_C_RULE_COUNT);

		if (c[DP_C_KIND] > DP_CONTEXT_KIND_MAX || first != next_rule || count > rule_count - next_rule)
			return -EINVAL;
		next_rule += count;
	}
	return next_rule == rule_count ? 0 : -EINVAL;
}

/* strcmp of a counted string against a NUL-terminated one of the section. */
static int dp_cmp_counted(const u8 *s, u32 len, const u8 *z)
{
	u32 i;

	for (i = 0; i < len; i++) {
		if (z[i] == '\0')
			return 1;
		if (s[i] != z[i])
			return s[i] < z[i] ? -1 : 1;
	}
	return z[len] == '\0' ? 0 : -1;
}

/*
 * Heapsort of @n elements of @size bytes by @less: in place, bounded (n log n comparisons whatever the
 * input), no recursion, and rescheduling now and then: a chain's index is sorted with it.
 */
typedef bool (*dp_less_fn)(const void *a, const void *b, const void *priv);

static void dp_swap(u8 *a, u8 *b, size_t size)
{
	while (size--) {
		u8 t = *a;

		*a++ = *b;
		*b++ = t;
	}
}

static void dp_sift_down(u8 *base, size_t size, u32 root, u32 n, dp_less_fn less, const void *priv)
{
	for (;;) {
		u32 child = 2 * root + 1;

		if (child >= n)
			return;
		if (child + 1 < n && less(base + child * size, base + (child + 1) * size, priv))
			child++;
		if (!less(base + root * size, base + child * size, priv))
			return;
		dp_swap(base + root * size, base + child * size, size);
		root = child;
	}
}

static void dp_heapsort(void *elements, u32 n, size_t size, dp_less_fn less, const void *priv)
{
	u8 *base = elements;
	u32 i;

	for (i = n / 2; i-- > 0;) {
		dp_resched(i);
		dp_sift_down(base, size, i, n, less, priv);
	}
	for (i = n; i-- > 1;) {
		dp_resched(i);
		dp_swap(base, base + i * size, size);
		dp_sift_down(base, size, 0, i, less, priv);
	}
}

/* FNV-1a: a message's strings are hashed once per lookup, a few bytes each. */
static u32 dp_hash(const u8 *s, u32 len)
{
	u32 h = 2166136261u, i;

	for (i = 0; i < len; i++)
		h = (h ^ s[i]) * 16777619u;
	return h;
}

int dbus_policy_index_strings(struct dbus_policy *pol, u32 *index)
{
	const u8 *s = dp_string(pol, 0);
	u32 mask = pol->index_slots - 1, at, len, slot;

	for (slot = 0; slot < pol->index_slots; slot++)
		index[slot] = DBUS_POLICY_NO_STRING;
	for (at = 0; at < pol->strings_size; at += len + 1) {
		dp_resched(at);
		len = strlen((const char *)s + at);
		for (slot = dp_hash(s + at, len) & mask; index[slot] != DBUS_POLICY_NO_STRING;
		     slot = (slot + 1) & mask)
			/* Each string once, so that equal strings have equal offsets. */
			if (dp_cmp_counted(s + at, len, dp_string(pol, index[slot])) == 0)
				return -EINVAL;
		index[slot] = at;
		/* An absent header field reads as "" where a rule names the field's text (the bus itself). */
		if (len == 0)
			pol->empty_id = at;
	}
	pol->index = index;
	return 0;
}

int dbus_policy_chain_check(const struct dbus_policy *pol, enum dbus_policy_hook hook, const u32 *rules,
			    u32 n)
{
	u8 kind = hook == DBUS_POLICY_SEND ? DP_KIND_SEND : DP_KIND_RECEIVE;
	u32 i;

	if (hook != DBUS_POLICY_SEND && hook != DBUS_POLICY_RECEIVE && hook != DBUS_POLICY_EAVESDROP)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (rules[i] >= pol->rule_count || dp_rule(pol, rules[i])[DP_R_KIND] != kind)
			return -EINVAL;
	return 0;
}

void dbus_policy_intern(const struct dbus_policy *pol, const u8 *s, u32 len, struct dbus_policy_str *out)
{
	u32 mask = pol->index_slots - 1, slot;

	out->s = s;
	out->len = len;
	if (len == 0) {
		out->id = DBUS_POLICY_ABSENT;
		return;
	}
	out->id = DBUS_POLICY_FOREIGN;
	/* the index is at most two thirds full: an empty slot ends every probe */
	for (slot = dp_hash(s, len) & mask; pol->index[slot] != DBUS_POLICY_NO_STRING;
	     slot = (slot + 1) & mask) {
		if (dp_cmp_counted(s, len, dp_string(pol, pol->index[slot])) == 0) {
			out->id = pol->index[slot];
			return;
		}
	}
}

/* A header field as the evaluator sees it: looked up if some rule names it, else only present or not. */
static void dp_intern_view(const struct dbus_policy *pol, const u8 *msg, const struct dbus_hdr_view *v,
			   bool named, struct dbus_policy_str *out)
{
	u32 len = v->present ? v->len : 0;

	if (named) {
		dbus_policy_intern(pol, msg + v->off, len, out);
		return;
	}
	out->s = msg + v->off;
	out->len = len;
	out->id = len ? DBUS_POLICY_FOREIGN : DBUS_POLICY_ABSENT;
}

void dbus_policy_msg_from_hdr(const struct dbus_policy *pol, const u8 *msg, const struct dbus_hdr *hdr,
			      bool with_names, struct dbus_policy_msg *m)
{
	m->type = hdr->type;
	m->is_reply = hdr->reply_serial != 0;
	m->requested_reply = false;
	m->fds = hdr->unix_fds;
	dp_intern_view(pol, msg, &hdr->path, pol->fields & DBUS_POLICY_USES_PATH, &m->path);
	dp_intern_view(pol, msg, &hdr->interface, pol->fields & DBUS_POLICY_USES_INTERFACE, &m->interface);
	dp_intern_view(pol, msg, &hdr->member, pol->fields & DBUS_POLICY_USES_MEMBER, &m->member);
	dp_intern_view(pol, msg, &hdr->error_name, pol->fields & DBUS_POLICY_USES_ERROR, &m->error_name);
	dp_intern_view(pol, msg, &hdr->destination, with_names, &m->destination);
	dp_intern_view(pol, msg, &hdr->sender, with_names, &m->sender);
}

/* The fields a key may hold, in its order, and the image's bit for each. */
static const struct dbus_hdr_view *dp_key_view(const struct dbus_hdr *hdr, int i)
{
	switch (i) {
	case 0:
		return &hdr->path;
	case 1:
		return &hdr->interface;
	case 2:
		return &hdr->member;
	default:
		return &hdr->error_name;
	}
}

static const u32 dp_key_uses[] = { DBUS_POLICY_USES_PATH, DBUS_POLICY_USES_INTERFACE,
				   DBUS_POLICY_USES_MEMBER, DBUS_POLICY_USES_ERROR };

bool dbus_policy_key_from_hdr(const struct dbus_policy *pol, const u8 *msg,
			      const struct dbus_hdr *hdr, struct dbus_policy_key *k)
{
	int i;

	k->type = hdr->type;
	k->bits = (hdr->reply_serial ? DBUS_POLICY_KEY_REPLY : 0) |
		  (hdr->destination.present && hdr->destination.len ? DBUS_POLICY_KEY_DESTINATION : 0);
	k->fds = hdr->unix_fds;
	k->len = 0;
	/* a field no rule names is looked at by none (dbus_policy_msg_from_hdr) */
	for (i = 0; i < 4; i++) {
		const struct dbus_hdr_view *v = dp_key_view(hdr, i);
		u32 len = v->present ? v->len : 0;

		if (!(pol->fields & dp_key_uses[i]))
			continue;
		if (len > 255 || k->len + 1 + len > sizeof(k->fields))
			return false;
		k->fields[k->len++] = (u8)len;
		memcpy(k->fields + k->len, msg + v->off, len);
		k->len += len;
	}
	return true;
}

bool dbus_policy_key_equal(const struct dbus_policy_key *a, const struct dbus_policy_key *b)
{
	return a->type == b->type && a->bits == b->bits && a->len == b->len && a->fds == b->fds &&
	       !memcmp(a->fields, b->fields, a->len);
}

void dbus_policy_msg_from_key(const struct dbus_policy *pol, const struct dbus_policy_key *k,
			      struct dbus_policy_msg *m)
{
	struct dbus_policy_str *f[] = { &m->path, &m->interface, &m->member, &m->error_name };
	u32 at = 0;
	int i;

	m->type = k->type;
	m->is_reply = (k->bits & DBUS_POLICY_KEY_REPLY) != 0;
	m->requested_reply = (k->bits & DBUS_POLICY_KEY_REQUESTED) != 0;
	m->fds = k->fds;
	for (i = 0; i < 4; i++) {
		if (pol->fields & dp_key_uses[i]) {
			u32 len = k->fields[at++];

			dbus_policy_intern(pol, k->fields + at, len, f[i]);
			at += len;
		} else {
			/* no rule names it: present or not, it is never compared */
			f[i]->s = NULL;
			f[i]->len = 0;
			f[i]->id = DBUS_POLICY_ABSENT;
		}
	}
	m->destination.s = NULL;
	m->destination.len = 0;
	m->destination.id = k->bits & DBUS_POLICY_KEY_DESTINATION ? DBUS_POLICY_FOREIGN :
								     DBUS_POLICY_ABSENT;
	/* compared only when the other end is the bus itself, which a key's facts are not for */
	m->sender.s = NULL;
	m->sender.len = 0;
	m->sender.id = DBUS_POLICY_ABSENT;
}

/* s is prefix or lies below it in dot-separated words ("a.b" is under "a", "a.bc" is not). */
static bool dp_below(const struct dbus_policy_str *s, const u8 *prefix)
{
	u32 i;

	for (i = 0; prefix[i]; i++)
		if (i >= s->len || s->s[i] != prefix[i])
			return false;
	return i == s->len || s->s[i] == '.';
}

/* A rule's field condition: any, or the message's field absent, or equal to it. */
static bool dp_field(u32 rule_off, const struct dbus_policy_str *field)
{
	return rule_off == DBUS_POLICY_NO_STRING || field->id == DBUS_POLICY_ABSENT || field->id == rule_off;
}

static bool dp_name_matches(const struct dbus_policy *pol, const u8 *r, enum dbus_policy_hook hook,
			    const struct dbus_policy_msg *m, const struct dbus_policy_party *other)
{
	u32 name = dp_u32(r + DP_R_NAME), i;
	const struct dbus_policy_str *field = hook == DBUS_POLICY_SEND ? &m->destination : &m->sender;

	if (r[DP_R_NAME_MATCH] == DP_NAME_EXACT) {
		/* Without a connection (the bus itself) the message's own field is compared, absent as "". */
		if (!other)
			return field->id == name || (field->id == DBUS_POLICY_ABSENT && name == pol->empty_id);
		if (other->unique_name.id == name)
			return true;
		for (i = 0; i < other->name_count; i++)
			if (other->names[i].id == name)
				return true;
		return false;
	}
	if (!other)
		return field->len != 0 && dp_below(field, dp_string(pol, name));
	for (i = 0; i < other->name_count; i++)
		if (dp_below(&other->names[i], dp_string(pol, name)))
			return true;
	return false;
}

/* ConnectionChains::matches, rule by rule. */
static bool dp_matches(const struct dbus_policy *pol, const u8 *r, enum dbus_policy_hook hook,
		       const struct dbus_policy_msg *m, const struct dbus_policy_party *other)
{
	u32 interface = dp_u32(r + DP_R_INTERFACE);
	u32 min_fds = dp_u32(r + DP_R_MIN_FDS), max_fds = dp_u32(r + DP_R_MAX_FDS);

	if (r[DP_R_TYPE] != 0 && r[DP_R_TYPE] != m->type)
		return false;
	if (m->is_reply) {
		if (r[DP_R_REPLY] == DP_REPLY_REQUESTED_ONLY && !m->requested_reply)
			return false;
		if (r[DP_R_REPLY] == DP_REPLY_UNREQUESTED_ONLY && m->requested_reply)
			return false;
	}
	/*
	 * A message without the header field matches a rule about it, except a rule that names an
	 * interface and allows (dbus-daemon's asymmetry, so that deny rules cannot be dodged by leaving it
	 * out).
	 */
	if (!dp_field(dp_u32(r + DP_R_PATH), &m->path))
		return false;
	if (interface != DBUS_POLICY_NO_STRING) {
		if (m->interface.id == DBUS_POLICY_ABSENT ? (r[DP_R_FLAGS] & DP_FLAG_INTERFACE_REQUIRED) != 0 :
							    m->interface.id != interface)
			return false;
	}
	if (!dp_field(dp_u32(r + DP_R_MEMBER), &m->member) || !dp_field(dp_u32(r + DP_R_ERROR), &m->error_name))
		return false;
	if (r[DP_R_BROADCAST] != DP_BROADCAST_ANY) {
		bool broadcast = m->destination.id == DBUS_POLICY_ABSENT && m->type == DBUS_HDR_TYPE_SIGNAL;

		if (broadcast != (r[DP_R_BROADCAST] == DP_BROADCAST_YES))
			return false;
	}
	if (r[DP_R_NAME_MATCH] != DP_NAME_ANY && !dp_name_matches(pol, r, hook, m, other))
		return false;
	if ((min_fds > 0 || max_fds < DBUS_POLICY_MAX_FDS) && (m->fds < min_fds || m->fds > max_fds))
		return false;
	return true;
}

long dbus_policy_decide(const struct dbus_policy *pol, enum dbus_policy_hook hook, const u32 *rules, u32 n,
			const struct dbus_policy_msg *m, const struct dbus_policy_party *other)
{
	u32 i;

	for (i = n; i-- > 0;)
		if (dp_matches(pol, dp_rule(pol, rules[i]), hook, m, other))
			return rules[i];
	return -1;
}

/* A chain's index runs sort by (key, position). */
static bool dp_entry_less(const void *a, const void *b, const void *priv)
{
	const struct dbus_policy_index_entry *x = a, *y = b;

	(void)priv;
	return x->key != y->key ? x->key < y->key : x->pos < y->pos;
}

/* Which run a rule goes in (ConnectionChains::index): 0 the others, 1 by name, 2 by interface. */
static int dp_run_of(const u8 *r, u32 *key)
{
	if (r[DP_R_NAME_MATCH] == DP_NAME_EXACT) {
		*key = dp_u32(r + DP_R_NAME);
		return 1;
	}
	if (dp_u32(r + DP_R_INTERFACE) != DBUS_POLICY_NO_STRING && (r[DP_R_FLAGS] & DP_FLAG_INTERFACE_REQUIRED)) {
		*key = dp_u32(r + DP_R_INTERFACE);
		return 2;
	}
	*key = 0;
	return 0;
}

void dbus_policy_chain_index(const struct dbus_policy *pol, const u32 *rules, u32 n,
			     struct dbus_policy_index_entry *entries, struct dbus_policy_chain *chain)
{
	u32 counts[3] = { 0, 0, 0 }, at[3], i, key;

	for (i = 0; i < n; i++)
		counts[dp_run_of(dp_rule(pol, rules[i]), &key)]++;
	at[0] = 0;
	at[1] = counts[0];
	at[2] = counts[0] + counts[1];
	for (i = 0; i < n; i++) {
		int run = dp_run_of(dp_rule(pol, rules[i]), &key);

		entries[at[run]].key = key;
		entries[at[run]].pos = i;
		at[run]++;
	}
	/* The first run is in position order already. */
	dp_heapsort(entries + counts[0], counts[1], sizeof(*entries), dp_entry_less, NULL);
	dp_heapsort(entries + counts[0] + counts[1], counts[2], sizeof(*entries), dp_entry_less, NULL);
	chain->rules = rules;
	chain->n = n;
	chain->entries = entries;
	chain->generic = counts[0];
	chain->by_name = counts[1];
}

/* Tries entries [lo, hi) from the last, down to the best position found so far. */
static void dp_scan(const struct dbus_policy *pol, enum dbus_policy_hook hook, const struct dbus_policy_chain *c,
		    u32 lo, u32 hi, const struct dbus_policy_msg *m, const struct dbus_policy_party *other,
		    long *best)
{
	u32 i;

	for (i = hi; i-- > lo && (long)c->entries[i].pos > *best;) {
		if (dp_matches(pol, dp_rule(pol, c->rules[c->entries[i].pos]), hook, m, other)) {
			*best = c->entries[i].pos;
			return;
		}
	}
}

/* The entries of run [lo, hi) with key id: found by binary search, then scanned. */
static void dp_scan_key(const struct dbus_policy *pol, enum dbus_policy_hook hook,
			const struct dbus_policy_chain *c, u32 lo, u32 hi, u32 id,
			const struct dbus_policy_msg *m, const struct dbus_policy_party *other, long *best)
{
	u32 first = lo, last = hi, end;

	if (id == DBUS_POLICY_ABSENT || id == DBUS_POLICY_FOREIGN)
		return;
	while (first < last) {	/* the first entry with key >= id */
		u32 mid = first + (last - first) / 2;

		if (c->entries[mid].key < id)
			first = mid + 1;
		else
			last = mid;
	}
	for (end = first; end < hi && c->entries[end].key == id; end++)
		;
	dp_scan(pol, hook, c, first, end, m, other, best);
}

long dbus_policy_decide_indexed(const struct dbus_policy *pol, enum dbus_policy_hook hook,
				const struct dbus_policy_chain *chain, const struct dbus_policy_msg *m,
				const struct dbus_policy_party *other)
{
	u32 names = chain->generic, interfaces = chain->generic + chain->by_name, i;
	long best = -1;

	dp_scan(pol, hook, chain, 0, chain->generic, m, other, &best);
	dp_scan_key(pol, hook, chain, interfaces, chain->n, m->interface.id, m, other, &best);
	if (chain->by_name) {
		if (other) {
			dp_scan_key(pol, hook, chain, names, interfaces, other->unique_name.id, m, other, &best);
			for (i = 0; i < other->name_count; i++)
				dp_scan_key(pol, hook, chain, names, interfaces, other->names[i].id, m, other, &best);
		} else {
			u32 id = hook == DBUS_POLICY_SEND ? m->destination.id : m->sender.id;

			dp_scan_key(pol, hook, chain, names, interfaces, id == DBUS_POLICY_ABSENT ? pol->empty_id : id,
				    m, other, &best);
		}
	}
	return best < 0 ? -1 : (long)chain->rules[best];
}

enum dbus_policy_verdict dbus_policy_verdict(const struct dbus_policy *pol, long rule)
{
	if (rule < 0)
		return DBUS_POLICY_REJECT;
	return (enum dbus_policy_verdict)dp_rule(pol, (u32)rule)[DP_R_VERDICT];
}
