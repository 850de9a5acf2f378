/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Policy images (docs/policy.md, "The policy image, version 1") for the in-guest tests of
 * af_bus_dbus.ko: one default context of send and receive rules, each about at most a name, an
 * interface, a member and a message type, strings stored once. The daemon compiles real ones from
 * busconfig with policy/'s compiler; this writes the same layout by hand so that the guest needs
 * no C++.
 */
#ifndef AFBUS_DBUS_POLICY_IMAGE_H
#define AFBUS_DBUS_POLICY_IMAGE_H

#include <stdint.h>
#include <string.h>

#define PIMG_SEND 2
#define PIMG_RECEIVE 3
#define PIMG_ALLOW 0
#define PIMG_DENY 2
#define PIMG_EAVESDROP 4	/* rule flag: eavesdrop="true" */
#define PIMG_NONE 0xffffffffu

struct prule {
	uint8_t kind;		/* PIMG_SEND or PIMG_RECEIVE */
	uint8_t verdict;	/* PIMG_ALLOW or PIMG_DENY (rejects with AccessDenied) */
	uint8_t flags;
	uint8_t type;		/* 0 any */
	const char *name;	/* exact: send destination / receive sender; NULL any */
	const char *interface;
	const char *member;
};

static inline void pimg_put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/* The offset of s in the string section strings[0, *len), added if new. */
static inline uint32_t pimg_string(char *strings, uint32_t *len, const char *s)
{
	uint32_t at = 0;

	if (!s)
		return PIMG_NONE;
	while (at < *len) {
		if (!strcmp(strings + at, s))
			return at;
		at += strlen(strings + at) + 1;
	}
	memcpy(strings + at, s, strlen(s) + 1);
	*len += strlen(s) + 1;
	return at;
}

#define PIMG_MAX_STRINGS 32768

/* Writes the image of n rules into out (room for 40 + 68 * n + PIMG_MAX_STRINGS bytes); returns its length. */
static inline size_t pimg_build(uint8_t *out, const struct prule *rules, uint32_t n)
{
	static char strings[PIMG_MAX_STRINGS];
	uint32_t slen = 0, i, ctx = 40 + 52 * n, str = ctx + 16;
	uint32_t denied = pimg_string(strings, &slen, "org.freedesktop.DBus.Error.AccessDenied");

	memset(out, 0, str);
	for (i = 0; i < n; i++) {
		uint8_t *r = out + 40 + 52 * i;

		r[0] = rules[i].kind;
		r[1] = rules[i].verdict;
		r[2] = rules[i].flags;
		r[3] = rules[i].type;
		r[6] = rules[i].name ? 1 : 0;
		pimg_put32(r + 8, pimg_string(strings, &slen, rules[i].name));
		pimg_put32(r + 12, PIMG_NONE);	/* path */
		pimg_put32(r + 16, pimg_string(strings, &slen, rules[i].interface));
		pimg_put32(r + 20, pimg_string(strings, &slen, rules[i].member));
		pimg_put32(r + 24, PIMG_NONE);	/* error */
		pimg_put32(r + 28, 0);		/* min_fds */
		pimg_put32(r + 32, 128u * 1024 * 1024 / 4);
		pimg_put32(r + 40, rules[i].verdict == PIMG_DENY ? denied : PIMG_NONE);
		pimg_put32(r + 44, i + 1);	/* line */
		pimg_put32(r + 48, PIMG_NONE);	/* file */
	}
	pimg_put32(out + ctx + 8, 0);		/* default context: kind 0, id 0, first rule 0 */
	pimg_put32(out + ctx + 12, n);
	memcpy(out + str, strings, slen);
	pimg_put32(out, 0x50424641);
	out[4] = 1;				/* version */
	out[6] = 40;				/* header size */
	pimg_put32(out + 8, str + slen);
	pimg_put32(out + 12, n);
	pimg_put32(out + 16, 40);
	pimg_put32(out + 20, 1);
	pimg_put32(out + 24, ctx);
	pimg_put32(out + 28, str);
	pimg_put32(out + 32, slen);
	return str + slen;
}

/* BUS_DBUS_SET_CHAINS's value: the header and the three chains' rule indices. */
static inline size_t pimg_chains(uint32_t *out, const uint32_t *send, uint32_t ns, const uint32_t *receive,
				 uint32_t nr, const uint32_t *eavesdrop, uint32_t ne)
{
	out[0] = ns;
	out[1] = nr;
	out[2] = ne;
	out[3] = 0;
	memcpy(out + 4, send, ns * 4);
	memcpy(out + 4 + ns, receive, nr * 4);
	memcpy(out + 4 + ns + nr, eavesdrop, ne * 4);
	return (4 + ns + nr + ne) * 4;
}

#endif
