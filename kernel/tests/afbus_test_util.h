/* SPDX-License-Identifier: GPL-2.0 */
/* Helpers shared by the in-guest test and benchmark programs (statically linked, run as root). */
#ifndef AFBUS_TEST_UTIL_H
#define AFBUS_TEST_UTIL_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <linux/af_bus.h>

static int AF_BUS_NR __attribute__((unused)) = -1;

static inline int afbus_family(void)
{
	if (AF_BUS_NR < 0) {
		FILE *f = fopen(AF_BUS_SYSFS_FAMILY, "r");

		if (!f)
			return -1;
		if (fscanf(f, "%d", &AF_BUS_NR) != 1)
			AF_BUS_NR = -1;
		fclose(f);
	}
	return AF_BUS_NR;
}

/* "@name" is an abstract bus, anything else a filesystem path. */
static inline socklen_t bus_sockaddr(struct sockaddr_bus *sa, const char *path, uint64_t addr)
{
	size_t n;

	memset(sa, 0, sizeof(*sa));
	sa->sbus_family = afbus_family();
	sa->sbus_addr.s_addr = addr;
	if (!path)
		return offsetof(struct sockaddr_bus, sbus_path);
	if (path[0] == '@') {
		n = strlen(path + 1);
		memcpy(sa->sbus_path + 1, path + 1, n);
		return offsetof(struct sockaddr_bus, sbus_path) + 1 + n;
	}
	n = strlen(path);
	memcpy(sa->sbus_path, path, n);
	return offsetof(struct sockaddr_bus, sbus_path) + n + 1;
}

static inline int bus_socket(void)
{
	return socket(afbus_family(), SOCK_SEQPACKET | SOCK_CLOEXEC, BUS_PROTO_NONE);
}

/* A bound, listening master of a bus with the given BUS_PROTO_*. */
static inline int bus_master_proto(const char *path, int backlog, int protocol)
{
	struct sockaddr_bus sa;
	socklen_t len = bus_sockaddr(&sa, path, 0);
	int fd = socket(afbus_family(), SOCK_SEQPACKET | SOCK_CLOEXEC, protocol);

	if (fd < 0)
		return -1;
	if (path[0] != '@')
		unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, len) < 0 || listen(fd, backlog) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static inline int bus_master(const char *path, int backlog)
{
	return bus_master_proto(path, backlog, BUS_PROTO_NONE);
}

static inline int bus_connect(const char *path)
{
	struct sockaddr_bus sa;
	socklen_t len = bus_sockaddr(&sa, path, 0);
	int fd = bus_socket();

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, len) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static inline uint64_t bus_own_addr(int fd)
{
	struct sockaddr_bus sa;
	socklen_t len = sizeof(sa);

	memset(&sa, 0, sizeof(sa));
	if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		return ~0ULL;
	return sa.sbus_addr.s_addr;
}

static inline int bus_join(int s)
{
	return setsockopt(s, SOL_BUS, BUS_JOIN_BUS, NULL, 0);
}

static inline int bus_add_addr(int s, uint64_t addr)
{
	struct bus_addr a = { .s_addr = addr };

	return setsockopt(s, SOL_BUS, BUS_ADD_ADDR, &a, sizeof(a));
}

static inline int bus_del_addr(int s, uint64_t addr)
{
	struct bus_addr a = { .s_addr = addr };

	return setsockopt(s, SOL_BUS, BUS_DEL_ADDR, &a, sizeof(a));
}

static inline ssize_t bus_sendto(int fd, uint64_t addr, const void *buf, size_t len, int flags)
{
	struct sockaddr_bus sa;
	socklen_t slen = bus_sockaddr(&sa, NULL, addr);

	return sendto(fd, buf, len, flags | MSG_NOSIGNAL, (struct sockaddr *)&sa, slen);
}

/* Wait up to ms for a message; returns its length or -1 (errno ETIMEDOUT on timeout). */
static inline ssize_t bus_recv_timeout(int fd, void *buf, size_t len, uint64_t *src, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct sockaddr_bus sa;
	socklen_t slen = sizeof(sa);
	ssize_t n;
	int r = poll(&p, 1, ms);

	if (r == 0) {
		errno = ETIMEDOUT;
		return -1;
	}
	if (r < 0)
		return -1;
	n = recvfrom(fd, buf, len, MSG_DONTWAIT, (struct sockaddr *)&sa, &slen);
	if (n >= 0 && src)
		*src = sa.sbus_addr.s_addr;
	return n;
}

static inline double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A bus with a master and n clients, all accepted; joined if join != 0. */
#define TB_MAX 64
struct tbus {
	char path[108];
	int l;
	int n;
	int c[TB_MAX];		/* client sockets */
	int s[TB_MAX];		/* master-side sockets */
	uint64_t a[TB_MAX];	/* unique addresses */
};

static inline int tb_add_client(struct tbus *tb, int join)
{
	int i = tb->n;

	tb->c[i] = bus_connect(tb->path);
	if (tb->c[i] < 0)
		return -1;
	tb->s[i] = accept4(tb->l, NULL, NULL, SOCK_CLOEXEC);
	if (tb->s[i] < 0)
		return -1;
	tb->a[i] = bus_own_addr(tb->c[i]);
	if (join && bus_join(tb->s[i]) < 0)
		return -1;
	tb->n++;
	return i;
}

static inline int tb_open_proto(struct tbus *tb, const char *path, int n, int join, int protocol)
{
	int i;

	memset(tb, 0, sizeof(*tb));
	snprintf(tb->path, sizeof(tb->path), "%s", path);
	tb->l = bus_master_proto(path, 128, protocol);
	if (tb->l < 0)
		return -1;
	for (i = 0; i < n; i++)
		if (tb_add_client(tb, join) < 0)
			return -1;
	return 0;
}

static inline int tb_open(struct tbus *tb, const char *path, int n, int join)
{
	return tb_open_proto(tb, path, n, join, BUS_PROTO_NONE);
}

static inline void tb_close(struct tbus *tb)
{
	int i;

	for (i = 0; i < tb->n; i++) {
		if (tb->c[i] >= 0)
			close(tb->c[i]);
		if (tb->s[i] >= 0)
			close(tb->s[i]);
	}
	if (tb->l >= 0)
		close(tb->l);
	if (tb->path[0] != '@')
		unlink(tb->path);
	tb->n = 0;
	tb->l = -1;
}

#endif
