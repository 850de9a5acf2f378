/* SPDX-License-Identifier: GPL-2.0 */
/*
 * D-Bus messages for the in-guest tests of af_bus_dbus.ko: a little-endian builder of headers with
 * the string fields the module looks at, an optional unknown field (to make big headers) and an
 * optional body: one byte array ("ay").
 */
#ifndef AFBUS_DBUS_MSG_H
#define AFBUS_DBUS_MSG_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct dmsg {
	uint8_t type;		/* 1 call, 2 return, 3 error, 4 signal */
	uint8_t flags;		/* 1 NO_REPLY_EXPECTED */
	uint32_t serial;
	const char *path, *interface, *member, *error_name, *destination, *sender;
	uint32_t reply_serial;
	size_t unknown_len;	/* > 0: field 50, a string of that many 'x' */
	size_t body_len;	/* 0, or >= 4: an "ay" of body_len - 4 zero bytes */
	const char *arg0;	/* instead of a byte array: one string argument */
};

static inline void dmsg_put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);	/* the guest is x86-64: little-endian, as the header says */
}

static inline size_t dmsg_align(uint8_t *buf, size_t p, size_t a)
{
	while (p % a)
		buf[p++] = 0;
	return p;
}

static inline size_t dmsg_string_field(uint8_t *buf, size_t p, uint8_t code, char sig, const char *s,
				       size_t len)
{
	p = dmsg_align(buf, p, 8);
	buf[p++] = code;
	buf[p++] = 1;
	buf[p++] = (uint8_t)sig;
	buf[p++] = 0;
	dmsg_put32(buf + p, (uint32_t)len);
	p += 4;
	if (s)
		memcpy(buf + p, s, len);
	else
		memset(buf + p, 'x', len);
	p += len;
	buf[p++] = 0;
	return p;
}

/* The message's size, to allocate before dmsg_build(). */
static inline size_t dmsg_size(const struct dmsg *m)
{
	return 16 + 8 * 8 + 6 * (8 + 256) + m->unknown_len + 16 + m->body_len + 64 +
	       (m->arg0 ? strlen(m->arg0) + 8 : 0);
}

/* Builds m into buf (dmsg_size(m) bytes); returns the message's length. */
static inline size_t dmsg_build(uint8_t *buf, const struct dmsg *m)
{
	size_t p = 16;

	buf[0] = 'l';
	buf[1] = m->type;
	buf[2] = m->flags;
	buf[3] = 1;
	dmsg_put32(buf + 4, (uint32_t)m->body_len);
	dmsg_put32(buf + 8, m->serial ? m->serial : 1);
	if (m->path)
		p = dmsg_string_field(buf, p, 1, 'o', m->path, strlen(m->path));
	if (m->interface)
		p = dmsg_string_field(buf, p, 2, 's', m->interface, strlen(m->interface));
	if (m->member)
		p = dmsg_string_field(buf, p, 3, 's', m->member, strlen(m->member));
	if (m->error_name)
		p = dmsg_string_field(buf, p, 4, 's', m->error_name, strlen(m->error_name));
	if (m->reply_serial) {
		p = dmsg_align(buf, p, 8);
		buf[p++] = 5;
		buf[p++] = 1;
		buf[p++] = 'u';
		buf[p++] = 0;
		dmsg_put32(buf + p, m->reply_serial);
		p += 4;
	}
	if (m->destination)
		p = dmsg_string_field(buf, p, 6, 's', m->destination, strlen(m->destination));
	if (m->sender)
		p = dmsg_string_field(buf, p, 7, 's', m->sender, strlen(m->sender));
	if (m->unknown_len)
		p = dmsg_string_field(buf, p, 50, 's', NULL, m->unknown_len);
	if (m->body_len || m->arg0) {
		p = dmsg_align(buf, p, 8);
		buf[p++] = 8;
		buf[p++] = 1;
		buf[p++] = 'g';
		buf[p++] = 0;
		buf[p++] = m->arg0 ? 1 : 2;
		memcpy(buf + p, m->arg0 ? "s" : "ay", m->arg0 ? 2 : 3);
		p += m->arg0 ? 2 : 3;
	}
	{
		size_t body = m->arg0 ? 4 + strlen(m->arg0) + 1 : m->body_len;

		dmsg_put32(buf + 4, (uint32_t)body);
		dmsg_put32(buf + 12, (uint32_t)(p - 16));
		p = dmsg_align(buf, p, 8);
		if (m->arg0) {
			dmsg_put32(buf + p, (uint32_t)strlen(m->arg0));
			memcpy(buf + p + 4, m->arg0, strlen(m->arg0) + 1);
		} else if (m->body_len) {
			dmsg_put32(buf + p, (uint32_t)(m->body_len - 4));
			memset(buf + p + 4, 0, m->body_len - 4);
		}
		return p + body;
	}
}

/* A signal from sender (NULL: no SENDER field). */
static inline size_t dmsg_signal(uint8_t *buf, const char *sender)
{
	struct dmsg m = { .type = 4, .path = "/org/example/Obj", .interface = "org.example.Iface",
			  .member = "Changed", .sender = sender };

	return dmsg_build(buf, &m);
}

/* A signal from sender with member and one string argument. */
static inline size_t dmsg_signal_arg(uint8_t *buf, const char *sender, const char *member, const char *arg0)
{
	struct dmsg m = { .type = 4, .path = "/org/example/Obj", .interface = "org.example.Iface",
			  .member = member, .sender = sender, .arg0 = arg0 };

	return dmsg_build(buf, &m);
}

/*
 * A compiled match rule record (docs/policy.md, "Match rule records"): type (0 any), the six keys
 * (NULL: absent) in the record's order — sender, interface, member, path, path_namespace,
 * destination — and at most one argument condition (arg0 string when arg0 is not NULL).
 */
static inline size_t dmatch_record(uint8_t *rec, uint8_t type, const char *const keys[6], const char *arg0)
{
	size_t strings = 32 + (arg0 ? 6 : 0), off = strings;
	int i;

	memset(rec, 0, strings);
	rec[0] = 1;
	rec[1] = type;
	rec[3] = arg0 ? 1 : 0;
	for (i = 0; i < 6; i++) {
		uint16_t o = 0, l = 0xffff;

		if (keys && keys[i]) {
			o = (uint16_t)off;
			l = (uint16_t)strlen(keys[i]);
			memcpy(rec + off, keys[i], l);
			off += l;
		}
		memcpy(rec + 8 + 4 * i, &o, 2);
		memcpy(rec + 10 + 4 * i, &l, 2);
	}
	if (arg0) {
		uint16_t o = (uint16_t)off, l = (uint16_t)strlen(arg0);

		rec[32] = 0;	/* index */
		rec[33] = 0;	/* kind: string */
		memcpy(rec + 34, &o, 2);
		memcpy(rec + 36, &l, 2);
		memcpy(rec + off, arg0, l);
		off += l;
	}
	{
		uint16_t size = (uint16_t)off;

		memcpy(rec + 4, &size, 2);
	}
	return off;
}

/* A method call with the given serial (flags 1: no reply expected). */
static inline size_t dmsg_call(uint8_t *buf, const char *sender, uint32_t serial, uint8_t flags)
{
	struct dmsg m = { .type = 1, .flags = flags, .serial = serial, .path = "/org/example/Obj",
			  .member = "Ping", .sender = sender };

	return dmsg_build(buf, &m);
}

/* A METHOD_RETURN (error_name NULL) or ERROR answering reply_serial. */
static inline size_t dmsg_reply(uint8_t *buf, const char *sender, uint32_t reply_serial,
				const char *error_name)
{
	struct dmsg m = { .type = error_name ? 3 : 2, .serial = 1000 + reply_serial,
			  .reply_serial = reply_serial, .error_name = error_name, .sender = sender };

	return dmsg_build(buf, &m);
}

#endif
