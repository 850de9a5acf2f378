// SPDX-License-Identifier: GPL-2.0
/*
 * D-Bus message header parser for af_bus_dbus.ko; the same file builds in userspace (dbus_header_user.h)
 * for the fuzz target and the differential test against libafbus (docs/kernel.md, "D-Bus header parser
 * (for af_bus_dbus.ko)").
 *
 * Every read goes through a cursor bounded by the end of the region being parsed (the field array, or
 * the body); lengths are checked against what remains before they are used. Nothing recurses: values
 * of unknown header fields are walked with a bounded stack of frames, signatures with counters.
 */
#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/errno.h>
#include <linux/string.h>
#include <asm/byteorder.h>
#else
#include "dbus_header_user.h"
#endif
#include "dbus_header.h"

#define DH_MAX_ARRAY_NESTING 32
#define DH_MAX_STRUCT_NESTING 32
#define DH_MAX_DEPTH 64
/* Header field values start inside the field array, a variant, a dict-like struct: depth 3 (libafbus). */
#define DH_FIELD_DEPTH 3

struct dh_cur {
	const u8 *buf;
	u32 pos;
	u32 end;	/* no read at or past this offset */
	bool big;	/* big-endian message */
	enum dbus_hdr_reason err;
};

static bool dh_fail(struct dh_cur *c, enum dbus_hdr_reason r)
{
	if (c->err == DBUS_HDR_OK)
		c->err = r;
	c->pos = c->end;
	return false;
}

static u32 dh_load32(const u8 *p, bool big)
{
	u32 v;

	memcpy(&v, p, sizeof(v));
	return big ? be32_to_cpu(v) : le32_to_cpu(v);
}

/* Skips to the next multiple of align (a power of two); the skipped bytes must exist and be zero. */
static bool dh_align(struct dh_cur *c, u32 align)
{
	u32 padded = (c->pos + align - 1) & ~(align - 1);

	if (padded > c->end)
		return dh_fail(c, DBUS_HDR_E_TRUNCATED);
	for (; c->pos < padded; c->pos++)
		if (c->buf[c->pos] != 0)
			return dh_fail(c, DBUS_HDR_E_NONZERO_PADDING);
	return true;
}

/* Skips one aligned fixed-size value of n bytes (n is 1, 2, 4 or 8). */
static bool dh_skip(struct dh_cur *c, u32 n)
{
	if (!dh_align(c, n))
		return false;
	if (n > c->end - c->pos)
		return dh_fail(c, DBUS_HDR_E_TRUNCATED);
	c->pos += n;
	return true;
}

static bool dh_u8(struct dh_cur *c, u8 *v)
{
	if (c->pos >= c->end)
		return dh_fail(c, DBUS_HDR_E_TRUNCATED);
	*v = c->buf[c->pos++];
	return true;
}

static bool dh_u32(struct dh_cur *c, u32 *v)
{
	if (!dh_align(c, 4))
		return false;
	if (4 > c->end - c->pos)
		return dh_fail(c, DBUS_HDR_E_TRUNCATED);
	*v = dh_load32(c->buf + c->pos, c->big);
	c->pos += 4;
	return true;
}

/* length bytes of text and a NUL at the cursor: their offset into *off. */
static bool dh_text(struct dh_cur *c, u32 length, u32 *off)
{
	if (length >= c->end - c->pos)	/* needs length + 1 bytes */
		return dh_fail(c, DBUS_HDR_E_TRUNCATED);
	if (c->buf[c->pos + length] != 0)
		return dh_fail(c, DBUS_HDR_E_MISSING_NUL);
	*off = c->pos;
	c->pos += length + 1;
	return true;
}

/* STRING or OBJECT_PATH: u32 length, bytes, NUL. */
static bool dh_string(struct dh_cur *c, u32 *off, u32 *len)
{
	return dh_u32(c, len) && dh_text(c, *len, off);
}

/* SIGNATURE: u8 length, bytes, NUL. */
static bool dh_signature(struct dh_cur *c, u32 *off, u32 *len)
{
	u8 n;

	if (!dh_u8(c, &n))
		return false;
	*len = n;
	return dh_text(c, n, off);
}

/* --- names (the specification's "Valid Names") --- */

static bool dh_is_alpha_(u8 ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_';
}

static bool dh_is_digit(u8 ch)
{
	return ch >= '0' && ch <= '9';
}

static bool dh_is_member_char(u8 ch)
{
	return dh_is_alpha_(ch) || dh_is_digit(ch);
}

static bool dh_is_bus_char(u8 ch)
{
	return dh_is_member_char(ch) || ch == '-';
}

enum dh_dotted { DH_DOTTED_INTERFACE, DH_DOTTED_WELL_KNOWN, DH_DOTTED_UNIQUE };

/*
 * At least min_elements (names: 2) non-empty dot-separated elements, at most 255 bytes in all (s excludes a
 * unique ':').
 */
static bool dh_dotted_name(const u8 *s, u32 len, enum dh_dotted kind, unsigned int min_elements)
{
	unsigned int elements = 1;
	bool at_start = true;
	u32 i;

	if (len == 0 || len > DBUS_HDR_MAX_NAME)
		return false;
	for (i = 0; i < len; i++) {
		u8 ch = s[i];
		bool ok;

		if (ch == '.') {
			if (at_start)
				return false;
			elements++;
			at_start = true;
			continue;
		}
		switch (kind) {
		case DH_DOTTED_INTERFACE:
			ok = at_start ? dh_is_alpha_(ch) : dh_is_member_char(ch);
			break;
		case DH_DOTTED_WELL_KNOWN:
			ok = at_start ? (dh_is_alpha_(ch) || ch == '-') : dh_is_bus_char(ch);
			break;
		default:	/* unique names' elements may start with a digit */
			ok = dh_is_bus_char(ch);
			break;
		}
		if (!ok)
			return false;
		at_start = false;
	}
	return !at_start && elements >= min_elements;
}

static bool dh_valid_interface(const u8 *s, u32 len)
{
	return dh_dotted_name(s, len, DH_DOTTED_INTERFACE, 2);
}

static bool dh_valid_member(const u8 *s, u32 len)
{
	u32 i;

	if (len == 0 || len > DBUS_HDR_MAX_NAME || dh_is_digit(s[0]))
		return false;
	for (i = 0; i < len; i++)
		if (!dh_is_member_char(s[i]))
			return false;
	return true;
}

static bool dh_valid_bus_name(const u8 *s, u32 len)
{
	if (len > 0 && s[0] == ':') {
		if (len < 2 || len > DBUS_HDR_MAX_NAME)
			return false;
		return dh_dotted_name(s + 1, len - 1, DH_DOTTED_UNIQUE, 2);
	}
	return dh_dotted_name(s, len, DH_DOTTED_WELL_KNOWN, 2);
}

static bool dh_valid_path(const u8 *s, u32 len)
{
	bool after_slash = true;
	u32 i;

	if (len == 0 || s[0] != '/')
		return false;
	if (len == 1)
		return true;
	for (i = 1; i < len; i++) {
		if (s[i] == '/') {
			if (after_slash)
				return false;
			after_slash = true;
		} else if (dh_is_member_char(s[i])) {
			after_slash = false;
		} else {
			return false;
		}
	}
	return !after_slash;
}

/* Well-formed UTF-8: no NUL, no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool dh_valid_utf8(const u8 *s, u32 len)
{
	u32 i = 0;

	while (i < len) {
		u32 cp, min, extra, k;
		u8 ch = s[i];

		if (ch < 0x80) {
			if (ch == 0)
				return false;
			i++;
			continue;
		}
		if ((ch & 0xe0) == 0xc0) {
			cp = ch & 0x1f;
			extra = 1;
			min = 0x80;
		} else if ((ch & 0xf0) == 0xe0) {
			cp = ch & 0x0f;
			extra = 2;
			min = 0x800;
		} else if ((ch & 0xf8) == 0xf0) {
			cp = ch & 0x07;
			extra = 3;
			min = 0x10000;
		} else {
			return false;
		}
		if (len - i <= extra)
			return false;
		for (k = 1; k <= extra; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += extra + 1;
	}
	return true;
}

/* --- signatures --- */

static bool dh_is_basic(u8 ch)
{
	switch (ch) {
	case 'y': case 'b': case 'n': case 'q': case 'i': case 'u': case 'x': case 't':
	case 'd': case 's': case 'o': case 'g': case 'h':
		return true;
	default:
		return false;
	}
}

/*
 * Validates a signature without recursion: at most 255 bytes, only type codes, arrays with an element,
 * non-empty structs, dict entries only as array elements with a basic key and exactly two types, at most
 * 32 nested arrays and 32 nested structs/dict entries. single: exactly one complete type.
 */
static bool dh_valid_signature(const u8 *s, u32 len, bool single)
{
	/* Open containers: 'a' until its element is complete; '(' / '{' with their count of types. */
	u8 kind[DH_MAX_ARRAY_NESTING + DH_MAX_STRUCT_NESTING];
	u8 count[DH_MAX_ARRAY_NESTING + DH_MAX_STRUCT_NESTING];
	unsigned int top = 0, arrays = 0, structs = 0, complete = 0;
	u32 i;

	if (len > DBUS_HDR_MAX_SIGNATURE)
		return false;
	if (single && len == 0)
		return false;
	for (i = 0; i < len; i++) {
		u8 ch = s[i];
		bool basic;

		switch (ch) {
		case 'a':
			if (arrays == DH_MAX_ARRAY_NESTING)
				return false;
			arrays++;
			kind[top] = 'a';
			count[top++] = 0;
			continue;
		case '(':
		case '{':
			if (structs == DH_MAX_STRUCT_NESTING)
				return false;
			if (ch == '{' && (top == 0 || kind[top - 1] != 'a'))
				return false;
			structs++;
			kind[top] = ch;
			count[top++] = 0;
			continue;
		case ')':
			if (top == 0 || kind[top - 1] != '(' || count[top - 1] == 0)
				return false;
			top--;
			structs--;
			basic = false;
			break;
		case '}':
			if (top == 0 || kind[top - 1] != '{' || count[top - 1] != 2)
				return false;
			top--;
			structs--;
			basic = false;
			break;
		case 'v':
			basic = false;
			break;
		default:
			if (!dh_is_basic(ch))
				return false;
			basic = true;
			break;
		}
		/* A complete type ended at i: it completes the arrays waiting for an element. */
		while (top > 0 && kind[top - 1] == 'a') {
			top--;
			arrays--;
			basic = false;
		}
		if (top == 0) {
			complete++;
			if (single && i + 1 != len)
				return false;
			continue;
		}
		if (kind[top - 1] == '{') {
			if (count[top - 1] == 0 && !basic)
				return false;	/* dict key must be basic */
			if (count[top - 1] == 2)
				return false;	/* more than two types */
		}
		count[top - 1]++;
	}
	return top == 0 && (!single || complete == 1);
}

/* The end of the single complete type at s[i] (s already validated). */
static u32 dh_type_end(const u8 *s, u32 len, u32 i)
{
	int depth = 0;

	while (i < len) {
		u8 ch = s[i++];

		if (ch == 'a')
			continue;
		if (ch == '(' || ch == '{')
			depth++;
		else if (ch == ')' || ch == '}')
			depth--;
		if (depth == 0)
			break;
	}
	return i;
}

static u32 dh_alignment(u8 ch)
{
	switch (ch) {
	case 'y': case 'g': case 'v':
		return 1;
	case 'n': case 'q':
		return 2;
	case 'x': case 't': case 'd': case '(': case '{':
		return 8;
	default:
		return 4;
	}
}

/* --- values (of unknown header fields) --- */

/*
 * A container being walked by dh_value(). Signatures are offsets into the message (every signature a
 * value can have is in it), at most 255 bytes long, so positions fit a byte: a frame is 12 bytes and
 * the deepest walk (64 containers from a body argument, depth 0) keeps 65 of them, 780 bytes of stack,
 * instead of the 5.5 KiB that recursion took.
 */
enum dh_frame_kind {
	DH_FRAME_ONE,		/* the field's value, or a variant's: exactly one complete type */
	DH_FRAME_ARRAY,		/* elements of type sig[elem] until end */
	DH_FRAME_STRUCT,	/* the types from sp up to the closing ')' or '}' */
};

struct dh_frame {
	u32 sig_off;	/* the signature being walked: bytes [sig_off, sig_off + sig_len) of the message */
	u32 end;	/* DH_FRAME_ARRAY: where the elements end */
	u8 sig_len;
	u8 sp;		/* the next type to validate */
	u8 elem;	/* DH_FRAME_ARRAY: the element type */
	u8 kind : 2;
	u8 done : 1;	/* DH_FRAME_ONE: its one value has been started */
};

/*
 * Not a compound literal: the file is also compiled as C++ (the fuzz fallback), where those are an
 * extension -Wpedantic refuses.
 */
static void dh_frame_set(struct dh_frame *f, enum dh_frame_kind kind, u32 sig_off, u8 sig_len, u8 sp, u8 elem,
			 u32 end)
{
	f->sig_off = sig_off;
	f->end = end;
	f->sig_len = sig_len;
	f->sp = sp;
	f->elem = elem;
	f->kind = kind;
	f->done = 0;
}

/* A body argument is at depth 0 (a header field's value at DH_FIELD_DEPTH): one frame per level. */
#define DH_MAX_FRAMES (DH_MAX_DEPTH + 1)

/*
 * Validates one value of the complete type in the (validated) signature at sig_off, at depth base (0 for
 * a body argument, DH_FIELD_DEPTH for the value of an unknown header field): every container adds one to
 * the depth, which may not exceed DH_MAX_DEPTH. The depth is checked before each frame is pushed, so the
 * stack never holds more than DH_MAX_FRAMES.
 *
 * skim: an array of any element type is stepped over by its length (after the same checks of length,
 * alignment and depth), its elements neither walked nor validated. The argument reader skims: what it
 * costs then depends on the signatures and structs before the argument it wants, not on the size of the
 * arrays among them; for a valid body the position reached is the same.
 */
static bool dh_value(struct dh_cur *c, u32 sig_off, u32 sig_len, int base, bool skim)
{
	struct dh_frame stack[DH_MAX_FRAMES];
	int top = 0;

	dh_frame_set(&stack[0], DH_FRAME_ONE, sig_off, (u8)sig_len, 0, 0, 0);
	for (;;) {
		struct dh_frame *f = &stack[top];
		const u8 *sig = c->buf + f->sig_off;
		int depth = base + top;	/* of the value at sig[f->sp] */
		u32 v, off, len;
		u8 t;

		/* A finished frame returns to its parent. */
		switch (f->kind) {
		case DH_FRAME_ONE:
			if (f->done) {
				if (top == 0)
					return true;
				top--;
				continue;
			}
			f->done = 1;
			break;
		case DH_FRAME_ARRAY:
			if (c->pos >= f->end) {
				if (c->pos != f->end)
					return dh_fail(c, DBUS_HDR_E_ARRAY_LENGTH);
				top--;
				continue;
			}
			f->sp = f->elem;
			break;
		case DH_FRAME_STRUCT:
			if (f->sp >= f->sig_len || sig[f->sp] == ')' || sig[f->sp] == '}') {
				stack[top - 1].sp = f->sp + 1;	/* the parent goes on after the ')' */
				top--;
				continue;
			}
			break;
		}

		t = sig[f->sp];
		switch (t) {
		case 'y':
			f->sp++;
			if (!dh_u8(c, &t))
				return false;
			break;
		case 'n': case 'q':
			f->sp++;
			if (!dh_skip(c, 2))
				return false;
			break;
		case 'i': case 'u': case 'h':
			f->sp++;
			if (!dh_skip(c, 4))
				return false;
			break;
		case 'x': case 't': case 'd':
			f->sp++;
			if (!dh_skip(c, 8))
				return false;
			break;
		case 'b':
			f->sp++;
			if (!dh_u32(c, &v))
				return false;
			if (v > 1)
				return dh_fail(c, DBUS_HDR_E_BAD_VALUE);
			break;
		case 's':
			f->sp++;
			if (!dh_string(c, &off, &len))
				return false;
			if (!dh_valid_utf8(c->buf + off, len))
				return dh_fail(c, DBUS_HDR_E_BAD_VALUE);
			break;
		case 'o':
			f->sp++;
			if (!dh_string(c, &off, &len))
				return false;
			if (!dh_valid_path(c->buf + off, len))
				return dh_fail(c, DBUS_HDR_E_BAD_VALUE);
			break;
		case 'g':
			f->sp++;
			if (!dh_signature(c, &off, &len))
				return false;
			if (!dh_valid_signature(c->buf + off, len, false))
				return dh_fail(c, DBUS_HDR_E_BAD_VALUE);
			break;
		case 'v':
			f->sp++;
			if (!dh_signature(c, &off, &len))
				return false;
			if (!dh_valid_signature(c->buf + off, len, true))
				return dh_fail(c, DBUS_HDR_E_BAD_VALUE);
			if (depth + 1 > DH_MAX_DEPTH)
				return dh_fail(c, DBUS_HDR_E_TOO_DEEP);
			dh_frame_set(&stack[++top], DH_FRAME_ONE, off, (u8)len, 0, 0, 0);
			break;
		case 'a': {
			u32 elem = f->sp + 1u;
			u8 e = sig[elem];

			f->sp = (u8)dh_type_end(sig, f->sig_len, elem);
			if (!dh_u32(c, &len))
				return false;
			if (len > DBUS_HDR_MAX_ARRAY)
				return dh_fail(c, DBUS_HDR_E_ARRAY_TOO_LONG);
			if (!dh_align(c, dh_alignment(e)))
				return false;
			if (len > c->end - c->pos)
				return dh_fail(c, DBUS_HDR_E_TRUNCATED);
			if (len == 0)
				break;
			if (depth + 1 > DH_MAX_DEPTH)
				return dh_fail(c, DBUS_HDR_E_TOO_DEEP);
			if (skim) {
				c->pos += len;
				break;
			}
			switch (e) {
			case 'y': case 'n': case 'q': case 'i': case 'u': case 'x': case 't': case 'd':
				/* Fixed-size elements: a whole number of them, nothing to walk. */
				if (len % dh_alignment(e) != 0)
					return dh_fail(c, DBUS_HDR_E_ARRAY_LENGTH);
				c->pos += len;
				break;
			default:
				dh_frame_set(&stack[top + 1], DH_FRAME_ARRAY, f->sig_off, f->sig_len, 0,
					     (u8)elem, c->pos + len);
				top++;
				break;
			}
			break;
		}
		case '(':
		case '{':
			if (!dh_align(c, 8))
				return false;
			if (depth + 1 > DH_MAX_DEPTH)
				return dh_fail(c, DBUS_HDR_E_TOO_DEEP);
			dh_frame_set(&stack[top + 1], DH_FRAME_STRUCT, f->sig_off, f->sig_len, (u8)(f->sp + 1), 0, 0);
			top++;
			break;
		default:
			return dh_fail(c, DBUS_HDR_E_BAD_VALUE);
		}
	}
}

/* --- the header --- */

static const char dh_local_path[] = "/org/freedesktop/DBus/Local";
static const char dh_local_interface[] = "org.freedesktop.DBus.Local";

static bool dh_view_is(const u8 *buf, const struct dbus_hdr_view *v, const char *s, u32 n)
{
	return v->present && v->len == n && memcmp(buf + v->off, s, n) == 0;
}

/* A string-typed known field: reads it, checks it with valid(), records it in *view. */
static bool dh_text_field(struct dh_cur *c, struct dbus_hdr_view *view, bool (*valid)(const u8 *, u32),
			  enum dbus_hdr_reason invalid)
{
	u32 off, len;

	if (!dh_string(c, &off, &len))
		return false;
	if (!valid(c->buf + off, len))
		return dh_fail(c, invalid);
	view->off = off;
	view->len = len;
	view->present = true;
	return true;
}

static u8 dh_field_type(u8 code)
{
	switch (code) {
	case DBUS_HDR_FIELD_PATH:
	case DBUS_HDR_FIELD_CONTAINER_INSTANCE:
		return 'o';
	case DBUS_HDR_FIELD_INTERFACE:
	case DBUS_HDR_FIELD_MEMBER:
	case DBUS_HDR_FIELD_ERROR_NAME:
	case DBUS_HDR_FIELD_DESTINATION:
	case DBUS_HDR_FIELD_SENDER:
		return 's';
	case DBUS_HDR_FIELD_REPLY_SERIAL:
	case DBUS_HDR_FIELD_UNIX_FDS:
		return 'u';
	case DBUS_HDR_FIELD_SIGNATURE:
		return 'g';
	default:
		return 0;
	}
}

static enum dbus_hdr_reason dh_parse_fields(struct dh_cur *c, struct dbus_hdr *h)
{
	while (c->pos < c->end) {
		u32 sig_off, sig_len, off, len;
		u8 code, expected;

		if (!dh_align(c, 8) || !dh_u8(c, &code) || !dh_signature(c, &sig_off, &sig_len))
			return c->err;
		if (code == 0)
			return DBUS_HDR_E_FIELD_CODE_ZERO;
		if (!dh_valid_signature(c->buf + sig_off, sig_len, true))
			return DBUS_HDR_E_BAD_VARIANT_SIG;
		expected = dh_field_type(code);
		if (expected == 0) {
			/* Unknown fields are skipped, but their value must be valid. */
			h->unknown_fields = true;
			if (!dh_value(c, sig_off, sig_len, DH_FIELD_DEPTH, false))
				return c->err;
			continue;
		}
		if (sig_len != 1 || c->buf[sig_off] != expected)
			return DBUS_HDR_E_FIELD_WRONG_TYPE;
		if (h->fields_seen & (1u << code))
			return DBUS_HDR_E_FIELD_TWICE;
		h->fields_seen |= 1u << code;

		switch (code) {
		case DBUS_HDR_FIELD_PATH:
			dh_text_field(c, &h->path, dh_valid_path, DBUS_HDR_E_BAD_PATH);
			break;
		case DBUS_HDR_FIELD_INTERFACE:
			dh_text_field(c, &h->interface, dh_valid_interface, DBUS_HDR_E_BAD_INTERFACE);
			break;
		case DBUS_HDR_FIELD_MEMBER:
			dh_text_field(c, &h->member, dh_valid_member, DBUS_HDR_E_BAD_MEMBER);
			break;
		case DBUS_HDR_FIELD_ERROR_NAME:
			dh_text_field(c, &h->error_name, dh_valid_interface, DBUS_HDR_E_BAD_ERROR_NAME);
			break;
		case DBUS_HDR_FIELD_DESTINATION:
			dh_text_field(c, &h->destination, dh_valid_bus_name, DBUS_HDR_E_BAD_DESTINATION);
			break;
		case DBUS_HDR_FIELD_SENDER:
			dh_text_field(c, &h->sender, dh_valid_bus_name, DBUS_HDR_E_BAD_SENDER);
			break;
		case DBUS_HDR_FIELD_CONTAINER_INSTANCE: {
			struct dbus_hdr_view ignored;

			h->unknown_fields = true;
			dh_text_field(c, &ignored, dh_valid_path, DBUS_HDR_E_BAD_PATH);
			break;
		}
		case DBUS_HDR_FIELD_SIGNATURE:
			if (!dh_signature(c, &off, &len))
				break;
			if (!dh_valid_signature(c->buf + off, len, false)) {
				dh_fail(c, DBUS_HDR_E_BAD_SIGNATURE);
				break;
			}
			h->signature.off = off;
			h->signature.len = len;
			h->signature.present = true;
			break;
		case DBUS_HDR_FIELD_REPLY_SERIAL:
			if (dh_u32(c, &h->reply_serial) && h->reply_serial == 0)
				dh_fail(c, DBUS_HDR_E_ZERO_REPLY_SERIAL);
			break;
		case DBUS_HDR_FIELD_UNIX_FDS:
			dh_u32(c, &h->unix_fds);
			break;
		}
		if (c->err != DBUS_HDR_OK)
			return c->err;
	}
	return DBUS_HDR_OK;
}

/*
 * buf holds the first avail bytes of a len-byte message. Only the header is read, and only once len is
 * known to be the declared length: avail must cover min(len, the header) (dbus_hdr_parse_header()).
 */
static enum dbus_hdr_reason dh_parse(const u8 *buf, size_t avail, size_t len, struct dbus_hdr *h)
{
	struct dh_cur c;
	enum dbus_hdr_reason r;
	u32 fields_end, i;

	memset(h, 0, sizeof(*h));
	if (len < DBUS_HDR_FIXED_LEN || avail < DBUS_HDR_FIXED_LEN)
		return DBUS_HDR_E_LENGTH;
	if (buf[0] != 'l' && buf[0] != 'B')
		return DBUS_HDR_E_BAD_ENDIAN;
	if (buf[3] != 1)
		return DBUS_HDR_E_BAD_VERSION;
	h->endian = buf[0];
	h->type = buf[1];
	h->flags = buf[2];
	h->body_len = dh_load32(buf + 4, buf[0] == 'B');
	h->serial = dh_load32(buf + 8, buf[0] == 'B');
	h->fields_len = dh_load32(buf + 12, buf[0] == 'B');
	if (h->fields_len > DBUS_HDR_MAX_ARRAY)
		return DBUS_HDR_E_FIELDS_TOO_LONG;
	/* fields_len <= 64 MiB, so this cannot overflow; the sum with body_len is checked in 64 bits. */
	h->body_off = (DBUS_HDR_FIXED_LEN + h->fields_len + 7) & ~7u;
	if ((u64)h->body_off + h->body_len > DBUS_HDR_MAX_MESSAGE)
		return DBUS_HDR_E_MESSAGE_TOO_LONG;
	h->total_len = h->body_off + h->body_len;
	if (len != h->total_len || avail < h->body_off)
		return DBUS_HDR_E_LENGTH;
	if (h->type == DBUS_HDR_TYPE_INVALID)
		return DBUS_HDR_E_BAD_TYPE;
	if (h->serial == 0)
		return DBUS_HDR_E_ZERO_SERIAL;

	fields_end = DBUS_HDR_FIXED_LEN + h->fields_len;
	c.buf = buf;
	c.pos = DBUS_HDR_FIXED_LEN;
	c.end = fields_end;
	c.big = buf[0] == 'B';
	c.err = DBUS_HDR_OK;
	r = dh_parse_fields(&c, h);
	if (r != DBUS_HDR_OK)
		return r;
	if (c.pos != fields_end)
		return DBUS_HDR_E_ARRAY_LENGTH;
	for (i = fields_end; i < h->body_off; i++)
		if (buf[i] != 0)
			return DBUS_HDR_E_NONZERO_PADDING;

	switch (h->type) {
	case DBUS_HDR_TYPE_METHOD_CALL:
		if (!h->path.present)
			return DBUS_HDR_E_MISSING_PATH;
		if (!h->member.present)
			return DBUS_HDR_E_MISSING_MEMBER;
		break;
	case DBUS_HDR_TYPE_METHOD_RETURN:
		if (!h->reply_serial)
			return DBUS_HDR_E_MISSING_REPLY_SERIAL;
		break;
	case DBUS_HDR_TYPE_ERROR:
		if (!h->error_name.present)
			return DBUS_HDR_E_MISSING_ERROR_NAME;
		if (!h->reply_serial)
			return DBUS_HDR_E_MISSING_REPLY_SERIAL;
		break;
	case DBUS_HDR_TYPE_SIGNAL:
		if (!h->path.present)
			return DBUS_HDR_E_MISSING_PATH;
		if (!h->interface.present)
			return DBUS_HDR_E_MISSING_INTERFACE;
		if (!h->member.present)
			return DBUS_HDR_E_MISSING_MEMBER;
		break;
	default:
		break;	/* unknown types carry no required fields */
	}
	/* Reserved for messages a library synthesises itself (libdbus refuses them too). */
	if (dh_view_is(buf, &h->path, dh_local_path, sizeof(dh_local_path) - 1))
		return DBUS_HDR_E_LOCAL_PATH;
	if (dh_view_is(buf, &h->interface, dh_local_interface, sizeof(dh_local_interface) - 1))
		return DBUS_HDR_E_LOCAL_INTERFACE;
	return DBUS_HDR_OK;
}

int dbus_hdr_parse(const u8 *buf, size_t len, struct dbus_hdr *hdr, enum dbus_hdr_reason *reason)
{
	return dbus_hdr_parse_header(buf, len, len, hdr, reason);
}

int dbus_hdr_parse_header(const u8 *buf, size_t avail, size_t msg_len, struct dbus_hdr *hdr,
			  enum dbus_hdr_reason *reason)
{
	enum dbus_hdr_reason r = dh_parse(buf, avail, msg_len, hdr);

	if (reason)
		*reason = r;
	return dbus_hdr_reason_errno(r);
}

u32 dbus_hdr_header_len(const u8 *fixed)
{
	u32 fields_len;

	if (fixed[0] != 'l' && fixed[0] != 'B')
		return DBUS_HDR_FIXED_LEN;
	fields_len = dh_load32(fixed + 12, fixed[0] == 'B');
	if (fields_len > DBUS_HDR_MAX_ARRAY)
		return DBUS_HDR_FIXED_LEN;
	return (DBUS_HDR_FIXED_LEN + fields_len + 7) & ~7u;
}

bool dbus_hdr_valid_unique_name(const u8 *s, u32 len)
{
	return len >= 2 && s[0] == ':' && dh_valid_bus_name(s, len);
}

int dbus_hdr_reason_errno(enum dbus_hdr_reason reason)
{
	switch (reason) {
	case DBUS_HDR_OK:
		return 0;
	case DBUS_HDR_E_LENGTH:
	case DBUS_HDR_E_FIELDS_TOO_LONG:
	case DBUS_HDR_E_MESSAGE_TOO_LONG:
	case DBUS_HDR_E_ARRAY_TOO_LONG:
		return -EMSGSIZE;
	case DBUS_HDR_E_BAD_PATH:
	case DBUS_HDR_E_BAD_INTERFACE:
	case DBUS_HDR_E_BAD_MEMBER:
	case DBUS_HDR_E_BAD_ERROR_NAME:
	case DBUS_HDR_E_BAD_DESTINATION:
	case DBUS_HDR_E_BAD_SENDER:
	case DBUS_HDR_E_BAD_SIGNATURE:
	case DBUS_HDR_E_LOCAL_PATH:
	case DBUS_HDR_E_LOCAL_INTERFACE:
		return -EINVAL;
	default:
		return -EBADMSG;
	}
}

const char *dbus_hdr_reason_name(enum dbus_hdr_reason reason)
{
	/* A switch, not a designated-initializer table: the file is valid C++ too (the fuzz fallback). */
	switch (reason) {
	case DBUS_HDR_OK: return "ok";
	case DBUS_HDR_E_LENGTH: return "length";
	case DBUS_HDR_E_FIELDS_TOO_LONG: return "fields-too-long";
	case DBUS_HDR_E_MESSAGE_TOO_LONG: return "message-too-long";
	case DBUS_HDR_E_ARRAY_TOO_LONG: return "array-too-long";
	case DBUS_HDR_E_BAD_ENDIAN: return "bad-endian";
	case DBUS_HDR_E_BAD_VERSION: return "bad-version";
	case DBUS_HDR_E_BAD_TYPE: return "bad-type";
	case DBUS_HDR_E_ZERO_SERIAL: return "zero-serial";
	case DBUS_HDR_E_TRUNCATED: return "truncated";
	case DBUS_HDR_E_NONZERO_PADDING: return "nonzero-padding";
	case DBUS_HDR_E_MISSING_NUL: return "missing-nul";
	case DBUS_HDR_E_FIELD_CODE_ZERO: return "field-code-zero";
	case DBUS_HDR_E_FIELD_WRONG_TYPE: return "field-wrong-type";
	case DBUS_HDR_E_FIELD_TWICE: return "field-twice";
	case DBUS_HDR_E_ARRAY_LENGTH: return "array-length";
	case DBUS_HDR_E_BAD_VARIANT_SIG: return "bad-variant-signature";
	case DBUS_HDR_E_BAD_VALUE: return "bad-value";
	case DBUS_HDR_E_TOO_DEEP: return "too-deep";
	case DBUS_HDR_E_ZERO_REPLY_SERIAL: return "zero-reply-serial";
	case DBUS_HDR_E_MISSING_PATH: return "missing-path";
	case DBUS_HDR_E_MISSING_INTERFACE: return "missing-interface";
	case DBUS_HDR_E_MISSING_MEMBER: return "missing-member";
	case DBUS_HDR_E_MISSING_ERROR_NAME: return "missing-error-name";
	case DBUS_HDR_E_MISSING_REPLY_SERIAL: return "missing-reply-serial";
	case DBUS_HDR_E_BAD_PATH: return "bad-path";
	case DBUS_HDR_E_BAD_INTERFACE: return "bad-interface";
	case DBUS_HDR_E_BAD_MEMBER: return "bad-member";
	case DBUS_HDR_E_BAD_ERROR_NAME: return "bad-error-name";
	case DBUS_HDR_E_BAD_DESTINATION: return "bad-destination";
	case DBUS_HDR_E_BAD_SENDER: return "bad-sender";
	case DBUS_HDR_E_BAD_SIGNATURE: return "bad-signature";
	case DBUS_HDR_E_LOCAL_PATH: return "local-path";
	case DBUS_HDR_E_LOCAL_INTERFACE: return "local-interface";
	default: return "unknown";
	}
}

/* --- the body's arguments, for argN/argNpath/arg0namespace --- */

int dbus_hdr_args_begin(struct dbus_hdr_args *it, const u8 *buf, size_t len, const struct dbus_hdr *hdr)
{
	memset(it, 0, sizeof(*it));
	if (len != hdr->total_len || hdr->body_off > hdr->total_len)
		return -EINVAL;
	it->buf = buf;
	/* The body starts 8-aligned, so offsets from the buffer start align as offsets into the body. */
	it->pos = hdr->body_off;
	it->end = hdr->total_len;
	it->big = hdr->endian == 'B';
	if (hdr->signature.present) {
		it->sig_off = hdr->signature.off;
		it->sig_len = (u8)hdr->signature.len;
	}
	return 0;
}

int dbus_hdr_args_next(struct dbus_hdr_args *it, u8 *type, struct dbus_hdr_view *value)
{
	const u8 *sig = it->buf + it->sig_off;
	struct dh_cur c;
	u32 next, off, len;
	u8 t;

	value->off = 0;
	value->len = 0;
	value->present = false;
	if (it->failed)
		return -EBADMSG;
	if (it->sp >= it->sig_len)
		return 0;
	t = sig[it->sp];
	*type = t;
	next = dh_type_end(sig, it->sig_len, it->sp);
	c.buf = it->buf;
	c.pos = it->pos;
	c.end = it->end;
	c.big = it->big;
	c.err = DBUS_HDR_OK;
	if (t == 's' || t == 'o') {
		if (!dh_string(&c, &off, &len) ||
		    (t == 's' ? !dh_valid_utf8(it->buf + off, len) : !dh_valid_path(it->buf + off, len)))
			goto bad;
		value->off = off;
		value->len = len;
		value->present = true;
	} else if (!dh_value(&c, it->sig_off + it->sp, next - it->sp, 0, true)) {
		goto bad;
	}
	it->pos = c.pos;
	it->sp = (u8)next;
	return 1;
bad:
	it->failed = true;
	return -EBADMSG;
}

int dbus_hdr_body_strings(const u8 *buf, size_t len, const struct dbus_hdr *hdr,
			  struct dbus_hdr_view *args, unsigned int max_args)
{
	struct dbus_hdr_args it;
	unsigned int n = 0;
	u8 type;

	if (dbus_hdr_args_begin(&it, buf, len, hdr))
		return -EINVAL;
	/* Only while the next type is 's' or 'o': the first other argument is not read at all. */
	while (n < max_args && it.sp < it.sig_len &&
	       (buf[it.sig_off + it.sp] == 's' || buf[it.sig_off + it.sp] == 'o')) {
		if (dbus_hdr_args_next(&it, &type, &args[n]) < 0)
			return -EBADMSG;
		n++;
	}
	return (int)n;
}

bool dbus_hdr_valid_bus_name(const u8 *s, u32 len)
{
	return dh_valid_bus_name(s, len);
}

bool dbus_hdr_valid_interface(const u8 *s, u32 len)
{
	return dh_valid_interface(s, len);
}

bool dbus_hdr_valid_member(const u8 *s, u32 len)
{
	return dh_valid_member(s, len);
}

bool dbus_hdr_valid_path(const u8 *s, u32 len)
{
	return dh_valid_path(s, len);
}

bool dbus_hdr_valid_namespace(const u8 *s, u32 len)
{
	if (len == 0 || len > DBUS_HDR_MAX_NAME)
		return false;
	if (dh_valid_bus_name(s, len))
		return true;
	/*
	 * Or one element short of a name ("org", ":1"): valid once ".x" is appended, which needs the name
	 * with it to stay within 255 bytes.
	 */
	if (len + 2 > DBUS_HDR_MAX_NAME)
		return false;
	if (s[0] == ':')
		return len >= 2 && dh_dotted_name(s + 1, len - 1, DH_DOTTED_UNIQUE, 1);
	return dh_dotted_name(s, len, DH_DOTTED_WELL_KNOWN, 1);
}
