/* SPDX-License-Identifier: GPL-2.0 */
/*
 * D-Bus message header parser for af_bus_dbus.ko (and, compiled from the same file, for userspace tests).
 *
 * Sans-I/O and allocation-free: the caller passes the whole message (header and body) and its length;
 * the result holds offsets and lengths into that buffer. docs/kernel.md, "D-Bus header parser (for
 * af_bus_dbus.ko)", says what is checked and why.
 */
#ifndef AFBUS_DBUS_HEADER_H
#define AFBUS_DBUS_HEADER_H

#ifdef __KERNEL__
#include <linux/types.h>
#else
#include "dbus_header_user.h"
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define DBUS_HDR_FIXED_LEN 16u
#define DBUS_HDR_MAX_MESSAGE (128u * 1024 * 1024)
#define DBUS_HDR_MAX_ARRAY (64u * 1024 * 1024)
#define DBUS_HDR_MAX_SIGNATURE 255u
#define DBUS_HDR_MAX_NAME 255u

/* Message types (the second header byte). Other non-zero values are accepted and need no fields. */
enum dbus_hdr_type {
	DBUS_HDR_TYPE_INVALID = 0,
	DBUS_HDR_TYPE_METHOD_CALL = 1,
	DBUS_HDR_TYPE_METHOD_RETURN = 2,
	DBUS_HDR_TYPE_ERROR = 3,
	DBUS_HDR_TYPE_SIGNAL = 4,
};

/* Header field codes. */
enum dbus_hdr_field {
	DBUS_HDR_FIELD_PATH = 1,
	DBUS_HDR_FIELD_INTERFACE = 2,
	DBUS_HDR_FIELD_MEMBER = 3,
	DBUS_HDR_FIELD_ERROR_NAME = 4,
	DBUS_HDR_FIELD_REPLY_SERIAL = 5,
	DBUS_HDR_FIELD_DESTINATION = 6,
	DBUS_HDR_FIELD_SENDER = 7,
	DBUS_HDR_FIELD_SIGNATURE = 8,
	DBUS_HDR_FIELD_UNIX_FDS = 9,
	/* Reserved by libdbus 1.14 for CONTAINER_INSTANCE: must be an object path, then ignored. */
	DBUS_HDR_FIELD_CONTAINER_INSTANCE = 10,
};

/*
 * Why a message was refused. dbus_hdr_reason_errno() maps each to the errno the module returns:
 * -EMSGSIZE for sizes (the buffer is not the declared length, a limit is exceeded), -EINVAL for a
 * well-formed field whose content is not a valid name/path/signature or is reserved, -EBADMSG for
 * everything else (the bytes are not a D-Bus message header).
 */
enum dbus_hdr_reason {
	DBUS_HDR_OK = 0,
	/* -EMSGSIZE */
	DBUS_HDR_E_LENGTH,		/* buffer length != 16 + fields + padding + body length */
	DBUS_HDR_E_FIELDS_TOO_LONG,	/* header field array > 64 MiB */
	DBUS_HDR_E_MESSAGE_TOO_LONG,	/* whole message > 128 MiB */
	DBUS_HDR_E_ARRAY_TOO_LONG,	/* an array inside an unknown field > 64 MiB */
	/* -EBADMSG */
	DBUS_HDR_E_BAD_ENDIAN,		/* first byte not 'l' or 'B' */
	DBUS_HDR_E_BAD_VERSION,		/* protocol version not 1 */
	DBUS_HDR_E_BAD_TYPE,		/* message type 0 */
	DBUS_HDR_E_ZERO_SERIAL,
	DBUS_HDR_E_TRUNCATED,		/* a value runs past the field array */
	DBUS_HDR_E_NONZERO_PADDING,
	DBUS_HDR_E_MISSING_NUL,		/* string or signature not NUL-terminated */
	DBUS_HDR_E_FIELD_CODE_ZERO,
	DBUS_HDR_E_FIELD_WRONG_TYPE,	/* a known field with another variant type */
	DBUS_HDR_E_FIELD_TWICE,
	DBUS_HDR_E_ARRAY_LENGTH,	/* an array (or the field array) does not end at its length */
	DBUS_HDR_E_BAD_VARIANT_SIG,	/* a field's variant signature is not one complete type */
	DBUS_HDR_E_BAD_VALUE,		/* an unknown field's value: bad boolean, UTF-8, path, signature */
	DBUS_HDR_E_TOO_DEEP,		/* an unknown field's value nests more than 64 containers */
	DBUS_HDR_E_ZERO_REPLY_SERIAL,
	DBUS_HDR_E_MISSING_PATH,
	DBUS_HDR_E_MISSING_INTERFACE,
	DBUS_HDR_E_MISSING_MEMBER,
	DBUS_HDR_E_MISSING_ERROR_NAME,
	DBUS_HDR_E_MISSING_REPLY_SERIAL,
	/* -EINVAL */
	DBUS_HDR_E_BAD_PATH,
	DBUS_HDR_E_BAD_INTERFACE,
	DBUS_HDR_E_BAD_MEMBER,
	DBUS_HDR_E_BAD_ERROR_NAME,
	DBUS_HDR_E_BAD_DESTINATION,
	DBUS_HDR_E_BAD_SENDER,
	DBUS_HDR_E_BAD_SIGNATURE,
	DBUS_HDR_E_LOCAL_PATH,		/* /org/freedesktop/DBus/Local is reserved */
	DBUS_HDR_E_LOCAL_INTERFACE,	/* org.freedesktop.DBus.Local is reserved */
	DBUS_HDR_E_COUNT
};

/* A string field: bytes [off, off + len) of the buffer; buf[off + len] is its NUL. */
struct dbus_hdr_view {
	u32 off;
	u32 len;
	bool present;
};

struct dbus_hdr {
	u8 endian;		/* 'l' or 'B' */
	u8 type;		/* enum dbus_hdr_type, or an unknown non-zero type */
	u8 flags;
	u32 body_len;
	u32 serial;
	u32 fields_len;		/* length of the header field array */
	u32 body_off;		/* 16 + fields_len rounded up to 8: where the body starts */
	u32 total_len;		/* body_off + body_len == the buffer's length */
	u32 fields_seen;	/* bit (1 << code) for each known field present (codes 1..10) */
	bool unknown_fields;	/* fields with codes > 9 were present (skipped) */
	struct dbus_hdr_view path, interface, member, error_name, destination, sender, signature;
	u32 reply_serial;	/* 0 when absent */
	u32 unix_fds;		/* 0 when absent */
};

/*
 * Parses and validates the header of the message in buf[0, len). Returns 0 and fills *hdr, or a negative
 * errno (then *reason, when reason is not NULL, says why; *hdr is then unspecified). The body is not
 * looked at beyond its length.
 */
int dbus_hdr_parse(const u8 *buf, size_t len, struct dbus_hdr *hdr, enum dbus_hdr_reason *reason);

/*
 * As dbus_hdr_parse() for a message of msg_len bytes of which buf holds only the first avail, for a
 * kernel that copies just the header out of a paged sk_buff: avail must be at least the smaller of
 * msg_len and dbus_hdr_header_len() of the first 16 bytes (then the verdict is dbus_hdr_parse()'s).
 */
int dbus_hdr_parse_header(const u8 *buf, size_t avail, size_t msg_len, struct dbus_hdr *hdr,
			  enum dbus_hdr_reason *reason);

/*
 * The header's length (the fixed part and the field array, padded to 8) from the message's first 16
 * bytes; just 16 when they say the message is refused anyway (byte order, field array too long).
 */
u32 dbus_hdr_header_len(const u8 *fixed);

/* A unique connection name (":1.42"), as the SENDER of a message from a bus client must be. */
bool dbus_hdr_valid_unique_name(const u8 *s, u32 len);

/* The errno (negative) for a reason, 0 for DBUS_HDR_OK. */
int dbus_hdr_reason_errno(enum dbus_hdr_reason reason);
/* A short constant name for a reason ("truncated", "bad-path", ...). */
const char *dbus_hdr_reason_name(enum dbus_hdr_reason reason);

/*
 * The leading string ('s') and object path ('o') arguments of the body, for argN/argNpath matching:
 * while the signature's next type is 's' or 'o' and fewer than max_args were read, reads that argument
 * into args[i]. Needs a header that dbus_hdr_parse() accepted for this same buf and len. Returns the
 * number of arguments read (0 if the signature does not start with 's' or 'o'), or -EBADMSG if one of
 * those arguments is malformed (padding, length, NUL, UTF-8, path); never reads outside the body.
 */
int dbus_hdr_body_strings(const u8 *buf, size_t len, const struct dbus_hdr *hdr,
			  struct dbus_hdr_view *args, unsigned int max_args);

/*
 * The body's arguments one by one, for argN/argNpath/arg0namespace matching (dbus_match.c), without
 * recursion: a STRING or OBJECT_PATH argument is read and validated (UTF-8, path) and its view returned;
 * any other is stepped over (basic values validated, arrays skipped by their length, structs and
 * variants walked with dbus_header.c's bounded frame stack: at most 780 bytes). Never reads outside the
 * body. The iterator is 24 bytes (64-bit).
 */
struct dbus_hdr_args {
	const u8 *buf;
	u32 pos;	/* where the next argument starts */
	u32 end;	/* the body's end */
	u32 sig_off;	/* the SIGNATURE field's bytes in buf */
	u8 sig_len;
	u8 sp;		/* the next argument's type in the signature */
	bool big;
	bool failed;	/* an argument was malformed: no more are read */
};

/* Needs a header dbus_hdr_parse() accepted for this same buf and len; -EINVAL if len is not its length. */
int dbus_hdr_args_begin(struct dbus_hdr_args *it, const u8 *buf, size_t len, const struct dbus_hdr *hdr);
/*
 * Reads the next argument: 1 and its type code in *type (the first character of its complete type), with
 * *value the bytes of an 's' or 'o' (else not present); 0 at the end of the signature; -EBADMSG if the
 * argument is malformed (then always -EBADMSG).
 */
int dbus_hdr_args_next(struct dbus_hdr_args *it, u8 *type, struct dbus_hdr_view *value);

/* The specification's "Valid Names", as the header checks them; lengths without a NUL. */
bool dbus_hdr_valid_bus_name(const u8 *s, u32 len);
bool dbus_hdr_valid_interface(const u8 *s, u32 len);
bool dbus_hdr_valid_member(const u8 *s, u32 len);
bool dbus_hdr_valid_path(const u8 *s, u32 len);
/*
 * An arg0namespace value (libafbus's is_valid_namespace): a bus or interface name, or a name one element
 * short of one ("org", ":1"), at most 255 bytes.
 */
bool dbus_hdr_valid_namespace(const u8 *s, u32 len);

#ifdef __cplusplus
}
#endif

#endif /* AFBUS_DBUS_HEADER_H */
