// SPDX-License-Identifier: GPL-2.0
/*
 * afbus_tests — the in-guest test suite of af_bus.ko. Statically linked, run as root inside the
 * qemu guest by kernel/vm/init.in. Every test runs in a forked child with its own timeout and
 * prints exactly one line on stdout:
 *     AFBUS-TEST <name> PASS|FAIL|SKIP <detail>
 * "afbus_tests --list" prints the test names (the host uses it to detect missing results).
 * "afbus_tests NAME..." runs only the named tests.
 */
#include "afbus_test_util.h"
#include "dbus_msg.h"
#include "dbus_policy_image.h"

#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#ifndef SCM_SECURITY
#define SCM_SECURITY 0x03
#endif

#define DETAIL 512
static char *detail_buf;

#define FAIL(...) do { \
	int _e = errno; \
	int _n = snprintf(detail_buf, DETAIL, "line %d: ", __LINE__); \
	_n += snprintf(detail_buf + _n, DETAIL - _n, __VA_ARGS__); \
	snprintf(detail_buf + _n, DETAIL - _n, " (errno %d %s)", _e, strerror(_e)); \
	return 1; \
} while (0)
#define CHECK(cond, ...) do { if (!(cond)) FAIL("check failed: " #cond " " __VA_ARGS__); } while (0)
/* expr must fail with errno e */
#define CHECK_ERR(expr, e) do { \
	errno = 0; \
	long _r = (long)(expr); \
	if (_r != -1 || errno != (e)) \
		FAIL("%s returned %ld errno %d, expected errno %d (%s)", #expr, _r, errno, (e), #e); \
} while (0)
#define CHECK_OK(expr) do { \
	errno = 0; \
	long _r = (long)(expr); \
	if (_r < 0) \
		FAIL("%s failed", #expr); \
} while (0)
#define SKIP(...) do { snprintf(detail_buf, DETAIL, __VA_ARGS__); return 2; } while (0)
#define PASS(...) do { snprintf(detail_buf, DETAIL, __VA_ARGS__); return 0; } while (0)

static int stress_secs = 30;

static int recv_expect(int fd, const char *want, uint64_t *src)
{
	char buf[256];
	ssize_t n = bus_recv_timeout(fd, buf, sizeof(buf) - 1, src, 2000);

	if (n < 0)
		return -1;
	buf[n] = 0;
	if (strcmp(buf, want)) {
		errno = EBADMSG;
		return -1;
	}
	return 0;
}

static int no_message(int fd, int ms)
{
	char buf[64];
	ssize_t n = bus_recv_timeout(fd, buf, sizeof(buf), NULL, ms);

	return n < 0 && errno == ETIMEDOUT;
}

static int send_str(int fd, uint64_t addr, const char *s)
{
	return bus_sendto(fd, addr, s, strlen(s), MSG_DONTWAIT) == (ssize_t)strlen(s) ? 0 : -1;
}

/* ------------------------------------------------------------------ tests */

static int t_family_param(void)
{
	static const int cands[] = AF_BUS_FAMILY_CANDIDATES;
	int fam = afbus_family(), ok = 0, fd;
	unsigned int i;

	CHECK(fam > 0, "family %d", fam);
	for (i = 0; i < sizeof(cands) / sizeof(cands[0]); i++)
		ok |= cands[i] == fam;
	CHECK(ok, "family %d not in the candidate list", fam);
	fd = socket(fam, SOCK_SEQPACKET, BUS_PROTO_NONE);
	CHECK(fd >= 0);
	close(fd);
	fd = socket(fam, SOCK_SEQPACKET, BUS_PROTO_DBUS);
	CHECK(fd >= 0);
	close(fd);
	CHECK_ERR(socket(fam, SOCK_STREAM, 0), ESOCKTNOSUPPORT);
	CHECK_ERR(socket(fam, SOCK_DGRAM, 0), ESOCKTNOSUPPORT);
	CHECK_ERR(socket(fam, SOCK_SEQPACKET, 7), EPROTONOSUPPORT);
	PASS("family=%d", fam);
}

static int t_proc_protocols(void)
{
	char line[512];
	int found = 0;
	FILE *f = fopen("/proc/net/protocols", "r");

	CHECK(f != NULL);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "AF_BUS ", 7))
			found = 1;
	fclose(f);
	CHECK(found, "no AF_BUS line in /proc/net/protocols");
	PASS("ok");
}

static int t_bind_listen_accept(void)
{
	struct sockaddr_bus sa;
	socklen_t len = sizeof(sa);
	struct ucred uc;
	socklen_t ulen = sizeof(uc);
	uint64_t src = 1;
	struct tbus tb;

	CHECK_OK(tb_open(&tb, "/tmp/bus-bla", 2, 0));
	CHECK(BUS_ADDR_PREFIX(tb.a[0]) == 0 && BUS_ADDR_CLIENT(tb.a[0]) != 0, "addr %llx",
	      (unsigned long long)tb.a[0]);
	CHECK(tb.a[0] != tb.a[1]);
	CHECK_OK(getpeername(tb.c[0], (struct sockaddr *)&sa, &len));
	CHECK(sa.sbus_addr.s_addr == BUS_MASTER_ADDR && !strcmp(sa.sbus_path, "/tmp/bus-bla"));
	len = sizeof(sa);
	CHECK_OK(getpeername(tb.s[0], (struct sockaddr *)&sa, &len));
	CHECK(sa.sbus_addr.s_addr == tb.a[0]);
	len = sizeof(sa);
	CHECK_OK(getsockname(tb.l, (struct sockaddr *)&sa, &len));
	CHECK(sa.sbus_addr.s_addr == 0 && sa.sbus_family == afbus_family());
	/* client -> master (no address and explicit address 0) and master -> client */
	CHECK_OK(send(tb.c[0], "hello", 5, 0));
	CHECK_OK(recv_expect(tb.s[0], "hello", &src));
	CHECK(src == tb.a[0], "src %llx", (unsigned long long)src);
	CHECK_OK(send_str(tb.c[1], 0, "to-master"));
	CHECK_OK(recv_expect(tb.s[1], "to-master", NULL));
	CHECK_OK(send(tb.s[1], "welcome", 7, 0));
	CHECK_OK(recv_expect(tb.c[1], "welcome", &src));
	CHECK(src == 0);
	CHECK_OK(getsockopt(tb.s[0], SOL_SOCKET, SO_PEERCRED, &uc, &ulen));
	CHECK(uc.pid == getpid() && uc.uid == 0, "pid %d", uc.pid);
	ulen = sizeof(uc);
	CHECK_OK(getsockopt(tb.c[0], SOL_SOCKET, SO_PEERCRED, &uc, &ulen));
	CHECK(uc.pid == getpid() && uc.uid == 0, "client sees master pid %d", uc.pid);
	/* no more pending connections: non-blocking accept */
	fcntl(tb.l, F_SETFL, O_NONBLOCK);
	CHECK_ERR(accept(tb.l, NULL, NULL), EAGAIN);
	tb_close(&tb);
	PASS("ok");
}

static int t_abstract_path(void)
{
	struct tbus tb;
	int fd;

	CHECK_OK(tb_open(&tb, "@afbus-test-abstract", 1, 1));
	CHECK_OK(send(tb.c[0], "x", 1, 0));
	CHECK_OK(recv_expect(tb.s[0], "x", NULL));
	CHECK_ERR(bus_master("@afbus-test-abstract", 4), EADDRINUSE);
	CHECK_ERR(bus_connect("@afbus-no-such-bus"), ECONNREFUSED);
	CHECK_ERR(bus_connect("/tmp/no-such-bus"), ENOENT);
	fd = open("/tmp/not-a-socket", O_CREAT | O_WRONLY, 0666);
	close(fd);
	CHECK_ERR(bus_connect("/tmp/not-a-socket"), ECONNREFUSED);
	tb_close(&tb);
	/* the name is free again */
	fd = bus_master("@afbus-test-abstract", 4);
	CHECK(fd >= 0);
	close(fd);
	PASS("ok");
}

static int t_fs_permissions(void)
{
	int l = bus_master("/tmp/bus-perm", 8), st;
	pid_t pid;

	CHECK(l >= 0);
	CHECK_OK(chmod("/tmp/bus-perm", 0600));
	pid = fork();
	if (pid == 0) {
		int fd;

		if (setgid(65534) || setuid(65534))
			_exit(3);
		fd = bus_connect("/tmp/bus-perm");
		if (fd >= 0 || errno != EACCES)
			_exit(4);
		_exit(0);
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "unprivileged connect to a 0600 bus: child status %d", st);
	CHECK_OK(chmod("/tmp/bus-perm", 0666));
	pid = fork();
	if (pid == 0) {
		int fd;

		if (setgid(65534) || setuid(65534))
			_exit(3);
		fd = bus_connect("/tmp/bus-perm");
		_exit(fd >= 0 ? 0 : 4);
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "unprivileged connect to a 0666 bus: child status %d", st);
	close(l);
	unlink("/tmp/bus-perm");
	PASS("ok");
}

static int t_bind_inuse(void)
{
	struct sockaddr_bus sa;
	socklen_t len = bus_sockaddr(&sa, "/tmp/bus-inuse", 0);
	int l, fd;

	unlink("/tmp/bus-inuse");
	l = bus_master("/tmp/bus-inuse", 8);
	CHECK(l >= 0);
	fd = bus_socket();
	CHECK_ERR(bind(fd, (struct sockaddr *)&sa, len), EADDRINUSE);
	CHECK_ERR(bind(l, (struct sockaddr *)&sa, len), EINVAL);
	close(fd);
	close(l);
	unlink("/tmp/bus-inuse");
	PASS("ok");
}

static int t_unique_addresses(void)
{
	struct tbus tb;
	uint64_t seen[200];
	int i, j, n = 0;

	CHECK_OK(tb_open(&tb, "/tmp/bus-unique", 0, 0));
	for (i = 0; i < 200; i++) {
		int c = bus_connect(tb.path), s;

		CHECK(c >= 0);
		s = accept(tb.l, NULL, NULL);
		CHECK(s >= 0);
		seen[n] = bus_own_addr(c);
		CHECK(BUS_ADDR_PREFIX(seen[n]) == 0 && BUS_ADDR_CLIENT(seen[n]) != 0);
		for (j = 0; j < n; j++)
			CHECK(seen[j] != seen[n], "address %llx reused", (unsigned long long)seen[n]);
		n++;
		close(c);
		close(s);
	}
	tb_close(&tb);
	PASS("%d connections, no address reused", n);
}

static int t_join_gating(void)
{
	struct tbus tb;

	CHECK_OK(tb_open(&tb, "/tmp/bus-join", 2, 0));
	/* not joined: only the master is reachable */
	CHECK_ERR(send_str(tb.c[0], tb.a[1], "x"), EPERM);
	CHECK_ERR(send_str(tb.c[0], BUS_ADDR(0, BUS_MULTICAST_CLIENT), "x"), EPERM);
	CHECK_OK(send_str(tb.c[0], 0, "m"));
	CHECK_OK(recv_expect(tb.s[0], "m", NULL));
	CHECK_ERR(setsockopt(tb.c[0], SOL_BUS, BUS_JOIN_BUS, NULL, 0), EPERM);
	CHECK_ERR(setsockopt(tb.l, SOL_BUS, BUS_JOIN_BUS, NULL, 0), EINVAL);
	CHECK_OK(bus_join(tb.s[0]));
	CHECK_ERR(bus_join(tb.s[0]), EALREADY);
	/* joined sender, unjoined receiver: the receiver's address is unknown -> master */
	CHECK_OK(send_str(tb.c[0], tb.a[1], "y"));
	CHECK_OK(recv_expect(tb.s[0], "y", NULL));
	CHECK(no_message(tb.c[1], 100));
	CHECK_OK(bus_join(tb.s[1]));
	CHECK_OK(send_str(tb.c[0], tb.a[1], "z"));
	CHECK_OK(recv_expect(tb.c[1], "z", NULL));
	tb_close(&tb);
	PASS("ok");
}

static int t_unknown_to_master(void)
{
	struct tbus tb;
	uint64_t src;

	CHECK_OK(tb_open(&tb, "/tmp/bus-unknown", 2, 1));
	CHECK_OK(send_str(tb.c[1], BUS_ADDR(0, 0x123456), "lost"));
	CHECK_OK(recv_expect(tb.s[1], "lost", &src));
	CHECK(src == tb.a[1]);
	CHECK_OK(send_str(tb.c[1], BUS_ADDR(1, 42), "name"));
	CHECK_OK(recv_expect(tb.s[1], "name", NULL));
	/* master sending to an address nobody holds */
	CHECK_ERR(send_str(tb.s[0], BUS_ADDR(0, 0x123456), "x"), EHOSTUNREACH);
	/* master may route through any of its sockets to any joined client */
	CHECK_OK(send_str(tb.s[0], tb.a[1], "via-s0"));
	CHECK_OK(recv_expect(tb.c[1], "via-s0", &src));
	CHECK(src == 0);
	tb_close(&tb);
	PASS("ok");
}

static int t_add_del_addr(void)
{
	struct tbus tb;
	uint64_t name = BUS_ADDR(1, 7);

	CHECK_OK(tb_open(&tb, "/tmp/bus-addr", 3, 1));
	CHECK_OK(bus_add_addr(tb.s[1], name));
	CHECK_ERR(bus_add_addr(tb.s[2], name), EADDRINUSE);
	CHECK_ERR(bus_add_addr(tb.s[2], BUS_ADDR(0, 99)), EINVAL);
	CHECK_ERR(bus_add_addr(tb.s[2], BUS_ADDR(1, BUS_MULTICAST_CLIENT)), EINVAL);
	CHECK_ERR(bus_add_addr(tb.c[2], BUS_ADDR(1, 8)), EPERM);
	CHECK_ERR(bus_add_addr(tb.l, BUS_ADDR(1, 8)), EINVAL);
	CHECK_ERR(setsockopt(tb.s[2], SOL_BUS, BUS_ADD_ADDR, &name, 4), EINVAL);
	CHECK_OK(send_str(tb.c[0], name, "to-name"));
	CHECK_OK(recv_expect(tb.c[1], "to-name", NULL));
	CHECK_ERR(bus_del_addr(tb.s[2], name), EADDRNOTAVAIL);
	CHECK_ERR(bus_del_addr(tb.s[1], tb.a[1]), EINVAL);
	CHECK_OK(bus_del_addr(tb.s[1], name));
	CHECK_OK(send_str(tb.c[0], name, "after-del"));
	CHECK_OK(recv_expect(tb.s[0], "after-del", NULL));
	CHECK(no_message(tb.c[1], 100));
	/* the name can move to another client */
	CHECK_OK(bus_add_addr(tb.s[2], name));
	CHECK_OK(send_str(tb.c[0], name, "moved"));
	CHECK_OK(recv_expect(tb.c[2], "moved", NULL));
	/* extra addresses need a joined client */
	CHECK(tb_add_client(&tb, 0) == 3);
	CHECK_ERR(bus_add_addr(tb.s[3], BUS_ADDR(1, 9)), ENOTCONN);
	/* closing the holder releases its addresses */
	close(tb.c[2]);
	tb.c[2] = -1;
	CHECK_OK(send_str(tb.c[0], name, "released"));
	CHECK_OK(recv_expect(tb.s[0], "released", NULL));
	CHECK_OK(bus_add_addr(tb.s[1], name));
	tb_close(&tb);
	PASS("ok");
}

static int t_multicast_basic(void)
{
	struct tbus tb;
	uint64_t src;

	CHECK_OK(tb_open(&tb, "/tmp/bus-mc", 4, 1));
	CHECK(tb_add_client(&tb, 0) == 4);	/* not joined */
	CHECK_OK(send_str(tb.c[0], BUS_ADDR(0, BUS_MULTICAST_CLIENT), "all"));
	CHECK_OK(recv_expect(tb.c[1], "all", &src));
	CHECK(src == tb.a[0]);
	CHECK_OK(recv_expect(tb.c[2], "all", NULL));
	CHECK_OK(recv_expect(tb.c[3], "all", NULL));
	CHECK(no_message(tb.c[0], 100), "sender got its own multicast");
	CHECK(no_message(tb.c[4], 100), "unjoined client got a multicast");
	CHECK(no_message(tb.s[0], 10), "master got a multicast");
	/* prefix 1: only holders of a prefix-1 address */
	CHECK_OK(bus_add_addr(tb.s[2], BUS_ADDR(1, 1)));
	CHECK_OK(bus_add_addr(tb.s[3], BUS_ADDR(1, 2)));
	CHECK_OK(bus_add_addr(tb.s[3], BUS_ADDR(1, 3)));
	CHECK_OK(send_str(tb.c[0], BUS_ADDR(1, BUS_MULTICAST_CLIENT), "p1"));
	CHECK_OK(recv_expect(tb.c[2], "p1", NULL));
	CHECK_OK(recv_expect(tb.c[3], "p1", NULL));
	CHECK(no_message(tb.c[3], 50), "two copies for a receiver holding two addresses");
	CHECK(no_message(tb.c[1], 50));
	/* the master multicasts too */
	CHECK_OK(send_str(tb.s[4], BUS_ADDR(0, BUS_MULTICAST_CLIENT), "from-master"));
	CHECK_OK(recv_expect(tb.c[0], "from-master", &src));
	CHECK(src == 0);
	CHECK_OK(recv_expect(tb.c[1], "from-master", NULL));
	tb_close(&tb);
	PASS("ok");
}

static int t_eavesdrop(void)
{
	struct tbus tb;
	uint64_t src;

	CHECK_OK(tb_open(&tb, "/tmp/bus-eaves", 3, 1));
	CHECK_ERR(setsockopt(tb.c[2], SOL_BUS, BUS_SET_EAVESDROP, NULL, 0), EPERM);
	CHECK_OK(setsockopt(tb.s[2], SOL_BUS, BUS_SET_EAVESDROP, NULL, 0));
	CHECK_OK(send_str(tb.c[0], tb.a[1], "secret"));
	CHECK_OK(recv_expect(tb.c[1], "secret", NULL));
	CHECK_OK(recv_expect(tb.c[2], "secret", &src));
	CHECK(src == tb.a[0]);
	CHECK_OK(send_str(tb.c[1], 0, "to-master"));
	CHECK_OK(recv_expect(tb.s[1], "to-master", NULL));
	CHECK_OK(recv_expect(tb.c[2], "to-master", NULL));
	CHECK_OK(send_str(tb.s[0], tb.a[0], "from-master"));
	CHECK_OK(recv_expect(tb.c[0], "from-master", NULL));
	CHECK_OK(recv_expect(tb.c[2], "from-master", NULL));
	CHECK_OK(send_str(tb.c[0], BUS_ADDR(0, BUS_MULTICAST_CLIENT), "mc"));
	CHECK_OK(recv_expect(tb.c[1], "mc", NULL));
	CHECK_OK(recv_expect(tb.c[2], "mc", NULL));
	CHECK(no_message(tb.c[2], 50), "eavesdropper got a multicast twice");
	CHECK_OK(send_str(tb.c[0], BUS_ADDR(1, BUS_MULTICAST_CLIENT), "mc1"));
	CHECK_OK(recv_expect(tb.c[2], "mc1", NULL));	/* nobody holds prefix 1: copy only */
	CHECK(no_message(tb.c[1], 50));
	CHECK_OK(setsockopt(tb.s[2], SOL_BUS, BUS_UNSET_EAVESDROP, NULL, 0));
	CHECK_OK(send_str(tb.c[0], tb.a[1], "private"));
	CHECK_OK(recv_expect(tb.c[1], "private", NULL));
	CHECK(no_message(tb.c[2], 100));
	tb_close(&tb);
	PASS("ok");
}

static int recv_creds(int fd, struct ucred *uc, char *buf, size_t len)
{
	char cbuf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(256)];
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct cmsghdr *c;
	int got = 0;

	if (poll(&p, 1, 2000) != 1)
		return -1;
	if (recvmsg(fd, &m, MSG_DONTWAIT) < 0)
		return -1;
	for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
			memcpy(uc, CMSG_DATA(c), sizeof(*uc));
			got = 1;
		}
	return got ? 0 : -2;
}

static int t_credentials(void)
{
	struct tbus tb;
	struct ucred uc;
	char buf[64];
	int one = 1;

	CHECK_OK(tb_open(&tb, "/tmp/bus-cred", 2, 1));
	CHECK_OK(setsockopt(tb.c[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)));
	CHECK_OK(setsockopt(tb.s[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)));
	CHECK_OK(send_str(tb.c[0], tb.a[1], "u"));
	CHECK(recv_creds(tb.c[1], &uc, buf, sizeof(buf)) == 0);
	CHECK(uc.pid == getpid() && uc.uid == 0 && uc.gid == 0, "pid %d uid %d", uc.pid, uc.uid);
	CHECK_OK(send_str(tb.c[0], 0, "m"));
	CHECK(recv_creds(tb.s[0], &uc, buf, sizeof(buf)) == 0);
	CHECK(uc.pid == getpid());
	CHECK_OK(send_str(tb.c[0], BUS_ADDR(0, BUS_MULTICAST_CLIENT), "mc"));
	CHECK(recv_creds(tb.c[1], &uc, buf, sizeof(buf)) == 0);
	CHECK(uc.pid == getpid());
	/* no SO_PASSCRED: no credentials */
	CHECK_OK(send_str(tb.c[1], tb.a[0], "n"));
	CHECK(recv_creds(tb.c[0], &uc, buf, sizeof(buf)) == -2);
	tb_close(&tb);
	PASS("ok");
}

static ssize_t send_with_creds(int fd, uint64_t addr, pid_t pid, uid_t uid, gid_t gid)
{
	char cbuf[CMSG_SPACE(sizeof(struct ucred))];
	struct ucred uc = { .pid = pid, .uid = uid, .gid = gid };
	struct sockaddr_bus sa;
	struct iovec iov = { .iov_base = "c", .iov_len = 1 };
	struct msghdr m = { .msg_name = &sa, .msg_namelen = bus_sockaddr(&sa, NULL, addr),
			    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_CREDENTIALS;
	c->cmsg_len = CMSG_LEN(sizeof(uc));
	memcpy(CMSG_DATA(c), &uc, sizeof(uc));
	return sendmsg(fd, &m, MSG_NOSIGNAL);
}

static int t_cred_forgery(void)
{
	struct tbus tb;
	struct ucred uc;
	char buf[64];
	int one = 1, st;
	pid_t pid;

	CHECK_OK(tb_open(&tb, "/tmp/bus-forge", 2, 1));
	CHECK_OK(setsockopt(tb.c[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)));
	pid = fork();
	if (pid == 0) {
		setgroups(0, NULL);
		if (setgid(65534) || setuid(65534))
			_exit(3);
		if (send_with_creds(tb.c[0], tb.a[1], getpid(), 0, 0) != -1 || errno != EPERM)
			_exit(4);
		if (send_with_creds(tb.c[0], tb.a[1], 1, 65534, 65534) != -1 || errno != EPERM)
			_exit(5);
		if (send_with_creds(tb.c[0], tb.a[1], getpid(), 65534, 65534) != 1)
			_exit(6);
		if (send_str(tb.c[0], tb.a[1], "plain"))
			_exit(7);
		_exit(0);
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "unprivileged sender status %d", WEXITSTATUS(st));
	CHECK(recv_creds(tb.c[1], &uc, buf, sizeof(buf)) == 0);
	CHECK(uc.uid == 65534 && uc.gid == 65534 && uc.pid == pid, "uid %d pid %d", uc.uid, uc.pid);
	CHECK(recv_creds(tb.c[1], &uc, buf, sizeof(buf)) == 0);
	CHECK(uc.uid == 65534 && uc.pid == pid, "uid %d", uc.uid);
	/* a privileged sender may speak for others, as on AF_UNIX */
	CHECK(send_with_creds(tb.c[0], tb.a[1], getpid(), 123, 456) == 1);
	CHECK(recv_creds(tb.c[1], &uc, buf, sizeof(buf)) == 0);
	CHECK(uc.uid == 123 && uc.gid == 456);
	tb_close(&tb);
	PASS("ok");
}

static int t_scm_security(void)
{
	char cbuf[CMSG_SPACE(256)], buf[16], ctx[257] = "";
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	struct pollfd p;
	struct cmsghdr *c;
	struct tbus tb;
	int one = 1, got = 0;

	CHECK_OK(tb_open(&tb, "/tmp/bus-sec", 2, 1));
	CHECK_OK(setsockopt(tb.c[1], SOL_SOCKET, SO_PASSSEC, &one, sizeof(one)));
	CHECK_OK(send_str(tb.c[0], tb.a[1], "s"));
	p.fd = tb.c[1];
	p.events = POLLIN;
	CHECK(poll(&p, 1, 2000) == 1);
	CHECK_OK(recvmsg(tb.c[1], &m, 0));
	for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_SECURITY) {
			size_t n = c->cmsg_len - CMSG_LEN(0);

			memcpy(ctx, CMSG_DATA(c), n < 256 ? n : 256);
			got = 1;
		}
	tb_close(&tb);
	if (!got)
		SKIP("no LSM context offered by the guest kernel (no SCM_SECURITY)");
	PASS("context=%s", ctx);
}

static int send_fds(int fd, uint64_t addr, const int *fds, int n, const char *msg)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 253)];
	struct sockaddr_bus sa;
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = strlen(msg) };
	struct msghdr m = { .msg_name = &sa, .msg_namelen = bus_sockaddr(&sa, NULL, addr),
			    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = CMSG_SPACE(sizeof(int) * n) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	return sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 ? -1 : 0;
}

static int recv_fd(int fd, char *buf, size_t len)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = buf, .iov_len = len - 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct cmsghdr *c;
	ssize_t n;

	if (poll(&p, 1, 2000) != 1)
		return -1;
	n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -1;
	buf[n] = 0;
	for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int r;

			memcpy(&r, CMSG_DATA(c), sizeof(r));
			return r;
		}
	errno = ENOENT;
	return -1;
}

static int check_pipe_fd(int wfd, int rfd, const char *tag)
{
	char buf[32];
	ssize_t n;

	if (write(wfd, tag, strlen(tag)) != (ssize_t)strlen(tag))
		return -1;
	n = read(rfd, buf, sizeof(buf) - 1);
	if (n != (ssize_t)strlen(tag))
		return -1;
	buf[n] = 0;
	return strcmp(buf, tag) ? -1 : 0;
}

static int t_fd_unicast(void)
{
	struct tbus tb;
	char buf[64];
	int p[2], r;

	CHECK_OK(tb_open(&tb, "/tmp/bus-fd", 2, 1));
	CHECK_OK(pipe(p));
	CHECK_OK(send_fds(tb.c[0], tb.a[1], &p[1], 1, "fd"));
	close(p[1]);
	r = recv_fd(tb.c[1], buf, sizeof(buf));
	CHECK(r >= 0);
	CHECK(!strcmp(buf, "fd"));
	CHECK_OK(check_pipe_fd(r, p[0], "through"));
	close(r);
	/* master -> client and client -> master */
	CHECK_OK(pipe(p));
	CHECK_OK(send_fds(tb.s[1], tb.a[1], &p[1], 1, "m"));
	r = recv_fd(tb.c[1], buf, sizeof(buf));
	CHECK(r >= 0);
	CHECK_OK(check_pipe_fd(r, p[0], "m2c"));
	close(r);
	CHECK_OK(send_fds(tb.c[1], 0, &p[1], 1, "c"));
	r = recv_fd(tb.s[1], buf, sizeof(buf));
	CHECK(r >= 0);
	CHECK_OK(check_pipe_fd(r, p[0], "c2m"));
	close(r);
	close(p[0]);
	close(p[1]);
	/* AF_BUS sockets themselves cannot travel over AF_BUS (reference cycles) */
	CHECK_ERR(send_fds(tb.c[0], tb.a[1], &tb.c[0], 1, "x"), EINVAL);
	/* unread fds are released when the receiver closes */
	CHECK_OK(pipe(p));
	CHECK_OK(send_fds(tb.c[0], tb.a[1], &p[1], 1, "unread"));
	close(p[1]);
	close(tb.c[1]);
	tb.c[1] = -1;
	{
		struct pollfd pf = { .fd = p[0], .events = POLLIN };

		CHECK(poll(&pf, 1, 2000) == 1 && (pf.revents & POLLHUP),
		      "write end still open after the receiver closed");
	}
	close(p[0]);
	tb_close(&tb);
	PASS("ok");
}

static int t_fd_multicast(void)
{
	struct tbus tb;
	char buf[64];
	int p[2], r, i, fds[253];

	CHECK_OK(tb_open(&tb, "/tmp/bus-fdmc", 4, 1));
	CHECK_OK(pipe(p));
	CHECK_OK(send_fds(tb.c[0], BUS_ADDR(0, BUS_MULTICAST_CLIENT), &p[1], 1, "mcfd"));
	close(p[1]);
	for (i = 1; i < 4; i++) {
		char tag[16];

		r = recv_fd(tb.c[i], buf, sizeof(buf));
		CHECK(r >= 0, "receiver %d", i);
		CHECK(!strcmp(buf, "mcfd"));
		snprintf(tag, sizeof(tag), "rcv%d", i);
		CHECK_OK(check_pipe_fd(r, p[0], tag));
		close(r);
	}
	{
		struct pollfd pf = { .fd = p[0], .events = POLLIN };

		CHECK(poll(&pf, 1, 1000) == 1 && (pf.revents & POLLHUP), "a copy of the fd leaked");
	}
	close(p[0]);
	/* fd limit on multicast: 253 fds x 17 receivers > 4096 references */
	while (tb.n < 18)
		CHECK(tb_add_client(&tb, 1) >= 0);
	for (i = 0; i < 253; i++)
		fds[i] = 0;
	CHECK_ERR(send_fds(tb.c[0], BUS_ADDR(0, BUS_MULTICAST_CLIENT), fds, 253, "many"),
		  ETOOMANYREFS);
	CHECK_OK(send_fds(tb.c[0], BUS_ADDR(0, BUS_MULTICAST_CLIENT), fds, 16, "some"));
	CHECK_OK(send_fds(tb.c[0], tb.a[1], fds, 253, "unicast-max"));
	CHECK_ERR(send_fds(tb.c[0], tb.a[1], fds, 254, "too-many"), EINVAL);
	tb_close(&tb);
	PASS("ok");
}

static int t_unicast_queue_full(void)
{
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
	struct tbus tb;
	struct pollfd p;
	struct bus_qlenfull q;
	socklen_t ql = sizeof(q);
	int i, four = 4;
	double t0;

	CHECK_OK(tb_open(&tb, "/tmp/bus-qfull", 3, 1));
	CHECK_OK(setsockopt(tb.l, SOL_BUS, BUS_SET_MAXQLEN, &four, sizeof(four)));
	for (i = 0; i < 4; i++)
		CHECK_OK(send_str(tb.c[0], tb.a[1], "fill"));
	CHECK_ERR(send_str(tb.c[0], tb.a[1], "over"), EAGAIN);
	CHECK_OK(getsockopt(tb.c[1], SOL_BUS, BUS_GET_QLENFULL, &q, &ql));
	CHECK(q.qlen == 4 && q.maxqlen == 4, "qlen %u maxqlen %u", q.qlen, q.maxqlen);
	/* no bus-wide stall: the same sender reaches others, and poll() still says writable */
	CHECK_OK(send_str(tb.c[0], tb.a[2], "other"));
	CHECK_OK(recv_expect(tb.c[2], "other", NULL));
	CHECK_OK(send_str(tb.c[2], tb.a[0], "third"));
	CHECK_OK(recv_expect(tb.c[0], "third", NULL));
	p.fd = tb.c[0];
	p.events = POLLOUT;
	CHECK(poll(&p, 1, 0) == 1 && (p.revents & POLLOUT));
	/* a blocking send waits on that receiver only, bounded by SO_SNDTIMEO */
	CHECK_OK(setsockopt(tb.c[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)));
	t0 = now_sec();
	CHECK_ERR(bus_sendto(tb.c[0], tb.a[1], "blk", 3, 0), EAGAIN);
	CHECK(now_sec() - t0 > 0.15, "did not wait");
	/* room again after the receiver reads */
	CHECK_OK(recv_expect(tb.c[1], "fill", NULL));
	CHECK_OK(bus_sendto(tb.c[0], tb.a[1], "blk", 3, 0));
	/* the master-side connection: client poll reports POLLOUT only when the master has room */
	for (i = 0; i < 4; i++)
		CHECK_OK(send_str(tb.c[2], 0, "m"));
	p.fd = tb.c[2];
	CHECK(poll(&p, 1, 0) == 0, "writable although the master queue is full");
	CHECK_ERR(send_str(tb.c[2], 0, "m"), EAGAIN);
	{
		char b[8];

		CHECK(recv(tb.s[2], b, sizeof(b), 0) == 1);
	}
	CHECK(poll(&p, 1, 1000) == 1 && (p.revents & POLLOUT));
	tb_close(&tb);
	PASS("ok");
}

struct blocked_send {
	int fd;
	uint64_t dst;
	size_t len;
	double done;
	int err;
};

static void *blocked_sender(void *arg)
{
	struct blocked_send *b = arg;
	char *buf = calloc(1, b->len);

	b->err = bus_sendto(b->fd, b->dst, buf, b->len, 0) == (ssize_t)b->len ? 0 : errno;
	b->done = now_sec();
	free(buf);
	return NULL;
}

static int t_rcvbuf_full_wakeup(void)
{
	struct timeval tv = { .tv_sec = 5, .tv_usec = 0 };
	struct blocked_send b;
	struct tbus tb;
	pthread_t t;
	int small = 1, n = 0;
	char *buf = calloc(1, 8192);
	double t0;

	CHECK_OK(tb_open(&tb, "/tmp/bus-rcvbuf", 4, 1));
	CHECK_OK(setsockopt(tb.c[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)));
	while (bus_sendto(tb.c[0], tb.a[1], buf, 4000, MSG_DONTWAIT) == 4000)
		n++;
	CHECK(errno == EAGAIN && n >= 1 && n < 10, "%d messages fit", n);
	CHECK_OK(setsockopt(tb.c[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)));
	b.fd = tb.c[0];
	b.dst = tb.a[1];
	b.len = 4000;
	b.done = 0;
	pthread_create(&t, NULL, blocked_sender, &b);
	usleep(300000);
	CHECK(b.done == 0, "the sender did not block");
	/* no bus-wide stall while it waits: others talk, multicast goes through (c1 misses it) */
	t0 = now_sec();
	CHECK_OK(send_str(tb.c[2], tb.a[3], "meanwhile"));
	CHECK_OK(recv_expect(tb.c[3], "meanwhile", NULL));
	CHECK_OK(bus_sendto(tb.c[2], BUS_ADDR(0, BUS_MULTICAST_CLIENT), "mc", 2, 0));
	CHECK(bus_recv_timeout(tb.c[3], buf, 8192, NULL, 1000) == 2);
	CHECK(bus_recv_timeout(tb.c[0], buf, 8192, NULL, 1000) == 2);
	CHECK(now_sec() - t0 < 1.0, "the bus stalled behind a blocked sender");
	CHECK(b.done == 0, "the blocked sender got through before room was made");
	t0 = now_sec();
	CHECK(recv(tb.c[1], buf, 8192, 0) == 4000);
	pthread_join(t, NULL);
	CHECK(b.err == 0, "blocked send failed with %d", b.err);
	CHECK(b.done - t0 < 2.0, "sender woke %.2fs after the reader made room", b.done - t0);
	tb_close(&tb);
	free(buf);
	PASS("%d messages filled SO_RCVBUF; sender woke after %.3fs", n, b.done - t0);
}

static int t_multicast_overflow(void)
{
	struct tbus tb;
	struct bus_qlenfull q;
	struct bus_stats st;
	socklen_t ql = sizeof(q), sl = sizeof(st);
	struct pollfd p;
	int i, four = 4;
	char buf[16];

	CHECK_OK(tb_open(&tb, "/tmp/bus-mcover", 3, 1));
	CHECK_OK(setsockopt(tb.l, SOL_BUS, BUS_SET_MAXQLEN, &four, sizeof(four)));
	p.fd = tb.s[1];
	p.events = POLLIN;
	CHECK(poll(&p, 1, 0) == 0);
	/* c[1] never reads; c[2] reads as it goes */
	for (i = 0; i < 10; i++) {
		snprintf(buf, sizeof(buf), "m%d", i);
		CHECK_OK(send_str(tb.c[0], BUS_ADDR(0, BUS_MULTICAST_CLIENT), buf));
		CHECK_OK(recv_expect(tb.c[2], buf, NULL));
	}
	p.events = POLLPRI;
	CHECK(poll(&p, 1, 0) == 1 && (p.revents & POLLPRI), "master not told about the drops");
	CHECK_OK(getsockopt(tb.s[1], SOL_BUS, BUS_GET_QLENFULL, &q, &ql));
	CHECK(q.dropped == 6 && q.dropped_unread == 6 && q.qlen == 4, "dropped %llu unread %llu qlen %u",
	      (unsigned long long)q.dropped, (unsigned long long)q.dropped_unread, q.qlen);
	CHECK_OK(getsockopt(tb.s[1], SOL_BUS, BUS_GET_QLENFULL, &q, &ql));
	CHECK(q.dropped == 6 && q.dropped_unread == 0);
	CHECK(poll(&p, 1, 0) == 0, "POLLPRI still set after reading");
	CHECK_OK(getsockopt(tb.s[2], SOL_BUS, BUS_GET_QLENFULL, &q, &ql));
	CHECK(q.dropped == 0);
	CHECK_OK(getsockopt(tb.l, SOL_BUS, BUS_GET_STATS, &st, &sl));
	CHECK(st.overflow_drops == 6 && st.multicast == 10, "drops %llu", (unsigned long long)st.overflow_drops);
	/* the four oldest are there, in order */
	for (i = 0; i < 4; i++) {
		snprintf(buf, sizeof(buf), "m%d", i);
		CHECK_OK(recv_expect(tb.c[1], buf, NULL));
	}
	CHECK_ERR(getsockopt(tb.c[0], SOL_BUS, BUS_GET_STATS, &st, &sl), EPERM);
	tb_close(&tb);
	PASS("ok");
}

static int t_poll(void)
{
	struct tbus tb;
	struct pollfd p;
	int c;
	char b[8];

	CHECK_OK(tb_open(&tb, "/tmp/bus-poll", 2, 1));
	p.fd = tb.c[0];
	p.events = POLLIN | POLLOUT;
	CHECK(poll(&p, 1, 0) == 1 && p.revents == POLLOUT, "revents %x", p.revents);
	CHECK_OK(send_str(tb.c[1], tb.a[0], "x"));
	CHECK(poll(&p, 1, 1000) == 1 && p.revents == (POLLIN | POLLOUT), "revents %x", p.revents);
	CHECK(recv(tb.c[0], b, sizeof(b), 0) == 1);
	p.fd = tb.l;
	p.events = POLLIN;
	CHECK(poll(&p, 1, 0) == 0);
	c = bus_connect(tb.path);
	CHECK(c >= 0);
	CHECK(poll(&p, 1, 1000) == 1 && (p.revents & POLLIN));
	close(c);
	c = accept(tb.l, NULL, NULL);
	CHECK(c >= 0);
	/* the client closed before accept: the accepted socket is hung up */
	p.fd = c;
	p.events = POLLIN;
	CHECK(poll(&p, 1, 0) == 1 && (p.revents & POLLHUP));
	CHECK(recv(c, b, sizeof(b), 0) == 0);
	close(c);
	/* blocking poll is woken by a message */
	p.fd = tb.s[1];
	if (fork() == 0) {
		usleep(200000);
		send_str(tb.c[1], 0, "late");
		_exit(0);
	}
	CHECK(poll(&p, 1, 3000) == 1 && (p.revents & POLLIN));
	wait(NULL);
	tb_close(&tb);
	PASS("ok");
}

static int t_client_close(void)
{
	struct tbus tb;
	struct pollfd p;
	char b[8];

	CHECK_OK(tb_open(&tb, "/tmp/bus-cclose", 3, 1));
	CHECK_OK(bus_add_addr(tb.s[1], BUS_ADDR(1, 5)));
	CHECK_OK(send_str(tb.c[1], 0, "last"));
	close(tb.c[1]);
	tb.c[1] = -1;
	CHECK_OK(recv_expect(tb.s[1], "last", NULL));
	CHECK(recv(tb.s[1], b, sizeof(b), MSG_DONTWAIT) == 0, "no EOF on the master side");
	p.fd = tb.s[1];
	p.events = POLLIN;
	CHECK(poll(&p, 1, 0) == 1 && (p.revents & POLLHUP));
	CHECK_ERR(send(tb.s[1], "x", 1, MSG_NOSIGNAL), EPIPE);
	/* its addresses are gone: they now reach the master */
	CHECK_OK(send_str(tb.c[0], tb.a[1], "gone"));
	CHECK_OK(recv_expect(tb.s[0], "gone", NULL));
	CHECK_OK(send_str(tb.c[0], BUS_ADDR(1, 5), "gone-name"));
	CHECK_OK(recv_expect(tb.s[0], "gone-name", NULL));
	/* the master closes the connection of client 2: the client sees hang-up */
	close(tb.s[2]);
	tb.s[2] = -1;
	p.fd = tb.c[2];
	CHECK(poll(&p, 1, 1000) == 1 && (p.revents & POLLHUP));
	CHECK(recv(tb.c[2], b, sizeof(b), 0) == 0);
	CHECK_ERR(send_str(tb.c[2], 0, "x"), EPIPE);
	CHECK_OK(send_str(tb.c[0], tb.a[2], "gone2"));
	CHECK_OK(recv_expect(tb.s[0], "gone2", NULL));
	tb_close(&tb);
	PASS("ok");
}

static int t_master_close(void)
{
	struct tbus tb;
	struct pollfd p[3];
	char b[8];
	int i, pending;

	CHECK_OK(tb_open(&tb, "/tmp/bus-mclose", 3, 1));
	pending = bus_connect(tb.path);	/* never accepted */
	CHECK(pending >= 0);
	CHECK_OK(send_str(tb.s[0], tb.a[0], "bye"));
	close(tb.l);
	tb.l = -1;
	for (i = 0; i < 3; i++) {
		p[i].fd = tb.c[i];
		p[i].events = POLLIN;
	}
	CHECK(poll(p, 3, 1000) == 3);
	for (i = 0; i < 3; i++)
		CHECK(p[i].revents & POLLHUP, "client %d revents %x", i, p[i].revents);
	CHECK_OK(recv_expect(tb.c[0], "bye", NULL));
	CHECK(recv(tb.c[0], b, sizeof(b), 0) == 0);
	CHECK_ERR(send_str(tb.c[1], 0, "x"), EPIPE);
	CHECK_ERR(send_str(tb.c[1], tb.a[2], "x"), EPIPE);
	CHECK(recv(pending, b, sizeof(b), 0) == 0);
	CHECK(recv(tb.s[1], b, sizeof(b), 0) == 0);
	close(pending);
	/* SIGPIPE without MSG_NOSIGNAL */
	signal(SIGPIPE, SIG_IGN);
	CHECK_ERR(send(tb.c[2], "x", 1, 0), EPIPE);
	/* the path can be bound again once unlinked */
	tb_close(&tb);
	i = bus_master("/tmp/bus-mclose", 4);
	CHECK(i >= 0);
	close(i);
	unlink("/tmp/bus-mclose");
	PASS("ok");
}

static int t_bad_input(void)
{
	struct sockaddr_bus sa;
	struct tbus tb;
	socklen_t len;
	int fd, v, big = 65536;
	char *buf;

	fd = bus_socket();
	CHECK(fd >= 0);
	len = bus_sockaddr(&sa, "/tmp/bus-bad", 0);
	CHECK_ERR(bind(fd, (struct sockaddr *)&sa, 4), EINVAL);
	CHECK_ERR(connect(fd, (struct sockaddr *)&sa, 4), EINVAL);
	CHECK_ERR(connect(fd, (struct sockaddr *)&sa, offsetof(struct sockaddr_bus, sbus_path)), EINVAL);
	CHECK_ERR(connect(fd, (struct sockaddr *)&sa, sizeof(sa) + 4), EINVAL);
	sa.sbus_family = AF_UNIX;
	CHECK_ERR(bind(fd, (struct sockaddr *)&sa, len), EAFNOSUPPORT);
	CHECK_ERR(connect(fd, (struct sockaddr *)&sa, len), EAFNOSUPPORT);
	len = bus_sockaddr(&sa, "/tmp/bus-bad", 5);
	CHECK_ERR(bind(fd, (struct sockaddr *)&sa, len), EINVAL);
	len = bus_sockaddr(&sa, "@", 0);
	CHECK_ERR(bind(fd, (struct sockaddr *)&sa, len), EINVAL);
	CHECK_ERR(listen(fd, 4), EINVAL);
	CHECK_ERR(accept(fd, NULL, NULL), EINVAL);
	CHECK_ERR(send(fd, "x", 1, MSG_NOSIGNAL), ENOTCONN);
	CHECK_ERR(recv(fd, &v, sizeof(v), MSG_DONTWAIT), ENOTCONN);
	CHECK_ERR(setsockopt(fd, SOL_BUS, 99, &v, sizeof(v)), ENOPROTOOPT);
	CHECK_ERR(setsockopt(fd, SOL_BUS, BUS_JOIN_BUS, NULL, 0), EPERM);
	len = sizeof(v);
	CHECK_ERR(getsockopt(fd, SOL_BUS, 99, &v, &len), ENOPROTOOPT);
	CHECK_ERR(getsockopt(fd, SOL_BUS, BUS_GET_QLENFULL, &v, &len), ENOTCONN);
	close(fd);
	CHECK_ERR(send(fd, "x", 1, MSG_NOSIGNAL), EBADF);

	CHECK_OK(tb_open(&tb, "/tmp/bus-bad", 2, 1));
	CHECK_ERR(send(tb.l, "x", 1, MSG_NOSIGNAL), EOPNOTSUPP);
	CHECK_ERR(recv(tb.l, &v, sizeof(v), MSG_DONTWAIT), EINVAL);
	len = bus_sockaddr(&sa, tb.path, 0);
	CHECK_ERR(connect(tb.c[0], (struct sockaddr *)&sa, len), EISCONN);
	CHECK_ERR(sendto(tb.c[0], "x", 1, MSG_NOSIGNAL, (struct sockaddr *)&sa, 4), EINVAL);
	sa.sbus_family = AF_INET;
	CHECK_ERR(sendto(tb.c[0], "x", 1, MSG_NOSIGNAL, (struct sockaddr *)&sa, len), EAFNOSUPPORT);
	CHECK_ERR(send_str(tb.s[0], 0, "x"), EINVAL);
	CHECK_ERR(send(tb.c[0], "x", 1, MSG_OOB | MSG_NOSIGNAL), EOPNOTSUPP);
	v = 0;
	CHECK_ERR(setsockopt(tb.l, SOL_BUS, BUS_SET_MAXQLEN, &v, sizeof(v)), EINVAL);
	CHECK_ERR(setsockopt(tb.l, SOL_BUS, BUS_SET_MAXQLEN, &v, 2), EINVAL);
	CHECK_ERR(setsockopt(tb.c[0], SOL_BUS, BUS_SET_MAXQLEN, &big, sizeof(big)), EPERM);
	v = 10;
	CHECK_ERR(setsockopt(tb.l, SOL_BUS, BUS_SET_SENDBUF, &v, sizeof(v)), EINVAL);
	CHECK_ERR(setsockopt(tb.l, SOL_BUS, BUS_SET_RECVBUF, &v, sizeof(v)), EINVAL);
	CHECK_ERR(setsockopt(tb.c[0], SOL_BUS, BUS_SET_RECVBUF, &big, sizeof(big)), EPERM);
	/* the receive buffer of every connection, on both sides (root: beyond rmem_max) */
	v = 4 << 20;
	CHECK_OK(setsockopt(tb.l, SOL_BUS, BUS_SET_RECVBUF, &v, sizeof(v)));
	len = sizeof(v);
	CHECK(getsockopt(tb.c[1], SOL_SOCKET, SO_RCVBUF, &v, (socklen_t *)&len) == 0 && v == 4 << 20,
	      "client receive buffer %d", v);
	CHECK(getsockopt(tb.s[1], SOL_SOCKET, SO_RCVBUF, &v, (socklen_t *)&len) == 0 && v == 4 << 20,
	      "master-side receive buffer %d", v);
	CHECK_ERR(setsockopt(tb.s[0], SOL_BUS, BUS_ADD_ADDR, NULL, 0), EINVAL);
	CHECK_ERR(shutdown(tb.c[0], 7), EINVAL);
	/* oversized */
	CHECK_OK(setsockopt(tb.l, SOL_BUS, BUS_SET_SENDBUF, &big, sizeof(big)));
	buf = calloc(1, 1 << 20);
	CHECK(buf != NULL);
	CHECK_ERR(bus_sendto(tb.c[0], tb.a[1], buf, big, 0), EMSGSIZE);
	CHECK_OK(bus_sendto(tb.c[0], tb.a[1], buf, big - 32, 0));
	free(buf);
	tb_close(&tb);
	PASS("ok");
}

static int t_large_messages(void)
{
	struct tbus tb;
	int big = 8 << 20, rcv = 16 << 20, i;
	size_t n = 4 << 20;
	unsigned char *buf = malloc(n), *out = malloc(n);

	CHECK(buf && out);
	for (i = 0; i < (int)n; i++)
		buf[i] = i * 7 + (i >> 12);
	CHECK_OK(tb_open(&tb, "/tmp/bus-large", 2, 1));
	CHECK_OK(setsockopt(tb.l, SOL_BUS, BUS_SET_SENDBUF, &big, sizeof(big)));
	CHECK_OK(setsockopt(tb.c[1], SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)));
	CHECK_OK(bus_sendto(tb.c[0], tb.a[1], buf, n, 0));
	CHECK(bus_recv_timeout(tb.c[1], out, n, NULL, 5000) == (ssize_t)n);
	CHECK(!memcmp(buf, out, n), "payload corrupted");
	/* truncation: SOCK_SEQPACKET semantics */
	CHECK_OK(bus_sendto(tb.c[0], tb.a[1], buf, 1000, 0));
	CHECK(recv(tb.c[1], out, 10, MSG_PEEK) == 10);
	CHECK(recv(tb.c[1], out, 10, MSG_TRUNC) == 1000);
	CHECK(!memcmp(out, buf, 10));
	CHECK(no_message(tb.c[1], 50), "the rest of a truncated message was kept");
	/* zero-length message and message boundaries */
	CHECK_OK(bus_sendto(tb.c[0], tb.a[1], buf, 3, 0));
	CHECK_OK(bus_sendto(tb.c[0], tb.a[1], buf, 5, 0));
	CHECK(recv(tb.c[1], out, 100, 0) == 3);
	CHECK(recv(tb.c[1], out, 100, 0) == 5);
	tb_close(&tb);
	free(buf);
	free(out);
	PASS("4 MiB message intact");
}

static int t_sendbuf_maxqlen(void)
{
	struct tbus tb;
	int sb = 32768, ql = 3, i;
	int v;
	socklen_t vl = sizeof(v);
	char *buf = calloc(1, 65536);

	CHECK_OK(tb_open(&tb, "/tmp/bus-opts", 2, 1));
	CHECK_OK(setsockopt(tb.l, SOL_BUS, BUS_SET_SENDBUF, &sb, sizeof(sb)));
	CHECK_OK(getsockopt(tb.c[0], SOL_SOCKET, SO_SNDBUF, &v, &vl));
	CHECK(v == sb, "SO_SNDBUF %d", v);
	CHECK_ERR(bus_sendto(tb.c[0], tb.a[1], buf, 40000, 0), EMSGSIZE);
	CHECK_OK(bus_sendto(tb.c[0], tb.a[1], buf, 30000, 0));
	/* new connections inherit the bus settings */
	CHECK(tb_add_client(&tb, 1) == 2);
	CHECK_OK(getsockopt(tb.c[2], SOL_SOCKET, SO_SNDBUF, &v, &vl));
	CHECK(v == sb, "SO_SNDBUF of a new client %d", v);
	CHECK_OK(setsockopt(tb.s[0], SOL_BUS, BUS_SET_MAXQLEN, &ql, sizeof(ql)));
	for (i = 0; i < 3; i++)
		CHECK_OK(send_str(tb.c[0], tb.a[2], "q"));
	CHECK_ERR(send_str(tb.c[0], tb.a[2], "q"), EAGAIN);
	tb_close(&tb);
	free(buf);
	PASS("ok");
}

static int t_shutdown(void)
{
	struct tbus tb;
	char b[8];

	CHECK_OK(tb_open(&tb, "/tmp/bus-shut", 1, 1));
	CHECK_OK(shutdown(tb.c[0], SHUT_WR));
	CHECK_ERR(send(tb.c[0], "x", 1, MSG_NOSIGNAL), EPIPE);
	CHECK(recv(tb.s[0], b, sizeof(b), MSG_DONTWAIT) == 0);
	CHECK_OK(send(tb.s[0], "y", 1, 0));
	CHECK(recv(tb.c[0], b, sizeof(b), 0) == 1);
	tb_close(&tb);
	PASS("ok");
}

/* ------------------------------------------------------------------ filter */

static struct bus_filter *filter_new(int nrules, size_t *len)
{
	struct bus_filter *f;

	*len = BUS_FILTER_SIZE(nrules);
	f = calloc(1, *len);
	f->magic = BUS_FILTER_MAGIC;
	f->version = BUS_FILTER_VERSION;
	f->nrules = nrules;
	f->default_verdict = BUS_FILTER_ACCEPT;
	return f;
}

static int t_filter(void)
{
	struct tbus tb;
	struct bus_filter *f;
	struct bus_stats st;
	socklen_t sl = sizeof(st);
	size_t len;
	uint64_t src;

	CHECK_OK(tb_open(&tb, "/tmp/bus-filter", 4, 1));
	f = filter_new(3, &len);
	/* rule 0: c0 -> c1 with payload starting "X" is dropped */
	BUS_FILTER_RULES(f)[0].match = BUS_FILTER_M_SRC | BUS_FILTER_M_DST | BUS_FILTER_M_DATA;
	BUS_FILTER_RULES(f)[0].verdict = BUS_FILTER_DROP;
	BUS_FILTER_RULES(f)[0].src_addr = tb.a[0];
	BUS_FILTER_RULES(f)[0].src_mask = ~0ULL;
	BUS_FILTER_RULES(f)[0].dst_addr = tb.a[1];
	BUS_FILTER_RULES(f)[0].dst_mask = ~0ULL;
	BUS_FILTER_RULES(f)[0].data_len = 1;
	BUS_FILTER_RULES(f)[0].data[0] = 'X';
	BUS_FILTER_RULES(f)[0].data_mask[0] = 0xff;
	/* rule 1: unicast to c2 is rejected */
	BUS_FILTER_RULES(f)[1].match = BUS_FILTER_M_RCPT | BUS_FILTER_M_UCAST;
	BUS_FILTER_RULES(f)[1].verdict = BUS_FILTER_REJECT;
	BUS_FILTER_RULES(f)[1].rcpt_addr = tb.a[2];
	BUS_FILTER_RULES(f)[1].rcpt_mask = ~0ULL;
	/* rule 2: multicast copies for c3 are dropped */
	BUS_FILTER_RULES(f)[2].match = BUS_FILTER_M_RCPT | BUS_FILTER_M_MCAST;
	BUS_FILTER_RULES(f)[2].verdict = BUS_FILTER_DROP;
	BUS_FILTER_RULES(f)[2].rcpt_addr = tb.a[3];
	BUS_FILTER_RULES(f)[2].rcpt_mask = ~0ULL;

	CHECK_ERR(setsockopt(tb.c[0], SOL_BUS, BUS_SET_FILTER, f, len), EPERM);
	CHECK_OK(setsockopt(tb.l, SOL_BUS, BUS_SET_FILTER, f, len));
	CHECK_OK(send_str(tb.c[0], tb.a[1], "Xdropped"));
	CHECK_OK(send_str(tb.c[0], tb.a[1], "Ypasses"));
	CHECK_OK(recv_expect(tb.c[1], "Ypasses", &src));
	CHECK(src == tb.a[0]);
	CHECK(no_message(tb.c[1], 50));
	CHECK_OK(send_str(tb.c[3], tb.a[1], "Xfrom3"));
	CHECK_OK(recv_expect(tb.c[1], "Xfrom3", NULL));
	CHECK_ERR(send_str(tb.c[0], tb.a[2], "rejected"), EACCES);
	CHECK_OK(send_str(tb.c[0], BUS_ADDR(0, BUS_MULTICAST_CLIENT), "mc"));
	CHECK_OK(recv_expect(tb.c[1], "mc", NULL));
	CHECK_OK(recv_expect(tb.c[2], "mc", NULL));
	CHECK(no_message(tb.c[3], 50));
	/* the master is not filtered */
	CHECK_OK(send_str(tb.s[2], tb.a[2], "from-master"));
	CHECK_OK(recv_expect(tb.c[2], "from-master", NULL));
	CHECK_OK(getsockopt(tb.l, SOL_BUS, BUS_GET_STATS, &st, &sl));
	CHECK(st.filter_drops == 3, "filter_drops %llu", (unsigned long long)st.filter_drops);

	/* replace: default DROP, accept only messages to the master */
	free(f);
	f = filter_new(1, &len);
	f->default_verdict = BUS_FILTER_DROP;
	BUS_FILTER_RULES(f)[0].match = BUS_FILTER_M_RCPT;
	BUS_FILTER_RULES(f)[0].rcpt_addr = 0;
	BUS_FILTER_RULES(f)[0].rcpt_mask = ~0ULL;
	BUS_FILTER_RULES(f)[0].verdict = BUS_FILTER_ACCEPT;
	CHECK_OK(setsockopt(tb.s[0], SOL_BUS, BUS_SET_FILTER, f, len));
	CHECK_OK(send_str(tb.c[0], tb.a[1], "Ynow-dropped"));
	CHECK(no_message(tb.c[1], 50));
	CHECK_OK(send_str(tb.c[0], 0, "master-ok"));
	CHECK_OK(recv_expect(tb.s[0], "master-ok", NULL));
	/* remove */
	CHECK_ERR(setsockopt(tb.c[0], SOL_BUS, BUS_DEL_FILTER, NULL, 0), EPERM);
	CHECK_OK(setsockopt(tb.l, SOL_BUS, BUS_DEL_FILTER, NULL, 0));
	CHECK_OK(send_str(tb.c[0], tb.a[1], "Xfree"));
	CHECK_OK(recv_expect(tb.c[1], "Xfree", NULL));

	/* validation */
	f->magic = 0;
	CHECK_ERR(setsockopt(tb.l, SOL_BUS, BUS_SET_FILTER, f, len), EINVAL);
	f->magic = BUS_FILTER_MAGIC;
	f->version = 2;
	CHECK_ERR(setsockopt(tb.l, SOL_BUS, BUS_SET_FILTER, f, len), EINVAL);
	f->version = BUS_FILTER_VERSION;
	CHECK_ERR(setsockopt(tb.l, SOL_BUS, BUS_SET_FILTER, f, len - 1), EINVAL);
	CHECK_ERR(setsockopt(tb.l, SOL_BUS, BUS_SET_FILTER, f, 8), EINVAL);
	BUS_FILTER_RULES(f)[0].verdict = 9;
	CHECK_ERR(setsockopt(tb.l, SOL_BUS, BUS_SET_FILTER, f, len), EINVAL);
	BUS_FILTER_RULES(f)[0].verdict = 0;
	BUS_FILTER_RULES(f)[0].match = 0x1000;
	CHECK_ERR(setsockopt(tb.l, SOL_BUS, BUS_SET_FILTER, f, len), EINVAL);
	BUS_FILTER_RULES(f)[0].match = BUS_FILTER_M_DATA;
	BUS_FILTER_RULES(f)[0].data_len = 17;
	CHECK_ERR(setsockopt(tb.l, SOL_BUS, BUS_SET_FILTER, f, len), EINVAL);
	BUS_FILTER_RULES(f)[0].data_len = 1;
	BUS_FILTER_RULES(f)[0].data[0] = 1;	/* bit outside the mask */
	CHECK_ERR(setsockopt(tb.l, SOL_BUS, BUS_SET_FILTER, f, len), EINVAL);
	BUS_FILTER_RULES(f)[0].data[0] = 0;
	f->nrules = 2;
	CHECK_ERR(setsockopt(tb.l, SOL_BUS, BUS_SET_FILTER, f, len), EINVAL);
	free(f);
	f = filter_new(BUS_FILTER_MAX_RULES + 1, &len);
	CHECK_ERR(setsockopt(tb.l, SOL_BUS, BUS_SET_FILTER, f, len), E2BIG);
	free(f);
	f = filter_new(BUS_FILTER_MAX_RULES, &len);
	CHECK_OK(setsockopt(tb.l, SOL_BUS, BUS_SET_FILTER, f, len));
	CHECK_OK(send_str(tb.c[0], tb.a[1], "max-rules"));
	CHECK_OK(recv_expect(tb.c[1], "max-rules", NULL));
	free(f);
	tb_close(&tb);
	PASS("ok");
}

/* ------------------------------------------------------------------ module refcount */

static int t_unload_busy(void)
{
	int fd = bus_socket();

	CHECK(fd >= 0);
	CHECK_ERR(syscall(SYS_delete_module, "af_bus", O_NONBLOCK), EWOULDBLOCK);
	close(fd);
	PASS("ok");
}

/* ------------------------------------------------------------------ ordering */

#define ORD_SENDERS 4
#define ORD_RECEIVERS 8
#define ORD_MSGS 10000

struct ord_msg {
	uint32_t sender;
	uint32_t seq;
};

static struct tbus ord_tb;
static uint32_t *ord_rec[ORD_RECEIVERS];
static int ord_fail[ORD_RECEIVERS];

static void *ord_sender(void *arg)
{
	int i = (int)(long)arg;
	struct ord_msg m = { .sender = i };
	uint32_t s;

	for (s = 0; s < ORD_MSGS; s++) {
		m.seq = s;
		while (bus_sendto(ord_tb.c[i], BUS_ADDR(1, BUS_MULTICAST_CLIENT), &m, sizeof(m), 0) < 0)
			if (errno != EINTR && errno != EAGAIN && errno != ENOBUFS)
				return (void *)1L;
	}
	return NULL;
}

static void *ord_receiver(void *arg)
{
	int r = (int)(long)arg, fd = ord_tb.c[ORD_SENDERS + r];
	struct ord_msg m;
	int n;

	for (n = 0; n < ORD_SENDERS * ORD_MSGS; n++) {
		ssize_t got = bus_recv_timeout(fd, &m, sizeof(m), NULL, 60000);

		if (got != sizeof(m)) {
			ord_fail[r] = n + 1;
			return NULL;
		}
		ord_rec[r][n] = m.sender << 24 | m.seq;
	}
	return NULL;
}

static int t_ordering(void)
{
	pthread_t st[ORD_SENDERS], rt[ORD_RECEIVERS];
	struct bus_stats stats;
	socklen_t sl = sizeof(stats);
	int i, r, maxq = 65536, rcv = 64 << 20;
	uint32_t next[ORD_SENDERS];
	double t0;
	void *ret;

	CHECK_OK(tb_open(&ord_tb, "/tmp/bus-order", ORD_SENDERS + ORD_RECEIVERS, 1));
	CHECK_OK(setsockopt(ord_tb.l, SOL_BUS, BUS_SET_MAXQLEN, &maxq, sizeof(maxq)));
	for (r = 0; r < ORD_RECEIVERS; r++) {
		int k = ORD_SENDERS + r;

		CHECK_OK(bus_add_addr(ord_tb.s[k], BUS_ADDR(1, r + 1)));
		CHECK_OK(setsockopt(ord_tb.c[k], SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)));
		ord_rec[r] = calloc(ORD_SENDERS * ORD_MSGS, sizeof(uint32_t));
		CHECK(ord_rec[r] != NULL);
	}
	t0 = now_sec();
	for (r = 0; r < ORD_RECEIVERS; r++)
		pthread_create(&rt[r], NULL, ord_receiver, (void *)(long)r);
	for (i = 0; i < ORD_SENDERS; i++)
		pthread_create(&st[i], NULL, ord_sender, (void *)(long)i);
	for (i = 0; i < ORD_SENDERS; i++) {
		pthread_join(st[i], &ret);
		CHECK(ret == NULL, "sender %d failed", i);
	}
	for (r = 0; r < ORD_RECEIVERS; r++)
		pthread_join(rt[r], NULL);
	CHECK_OK(getsockopt(ord_tb.l, SOL_BUS, BUS_GET_STATS, &stats, &sl));
	CHECK(stats.overflow_drops == 0, "%llu copies dropped", (unsigned long long)stats.overflow_drops);
	for (r = 0; r < ORD_RECEIVERS; r++)
		CHECK(!ord_fail[r], "receiver %d stopped after %d messages", r, ord_fail[r] - 1);
	/* each sender's messages in its order at every receiver */
	for (r = 0; r < ORD_RECEIVERS; r++) {
		memset(next, 0, sizeof(next));
		for (i = 0; i < ORD_SENDERS * ORD_MSGS; i++) {
			uint32_t s = ord_rec[r][i] >> 24, q = ord_rec[r][i] & 0xffffff;

			CHECK(s < ORD_SENDERS && q == next[s], "receiver %d pos %d: sender %u seq %u", r, i, s, q);
			next[s]++;
		}
	}
	/* no drops, so one total order means every receiver saw the same sequence */
	for (r = 1; r < ORD_RECEIVERS; r++)
		for (i = 0; i < ORD_SENDERS * ORD_MSGS; i++)
			CHECK(ord_rec[r][i] == ord_rec[0][i],
			      "receiver %d differs from receiver 0 at position %d", r, i);
	/* sanity: the senders really interleaved */
	{
		int switches = 0;

		for (i = 1; i < ORD_SENDERS * ORD_MSGS; i++)
			switches += (ord_rec[0][i] >> 24) != (ord_rec[0][i - 1] >> 24);
		tb_close(&ord_tb);
		PASS("%d senders x %d receivers x %d msgs in %.1fs, %d sender switches",
		     ORD_SENDERS, ORD_RECEIVERS, ORD_MSGS, now_sec() - t0, switches);
	}
}

/* ------------------------------------------------------------------ stress */

static long read_protocols_sockets(void)
{
	char line[512], name[64];
	long size, sockets = -1;
	FILE *f = fopen("/proc/net/protocols", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %ld %ld", name, &size, &sockets) == 3 && !strcmp(name, "AF_BUS"))
			break;
	if (strcmp(name, "AF_BUS"))
		sockets = -1;
	fclose(f);
	return sockets;
}

static long read_sockstat_used(void)
{
	char line[256];
	long used = -1;
	FILE *f = fopen("/proc/net/sockstat", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "sockets: used %ld", &used) == 1)
			break;
	fclose(f);
	return used;
}

static volatile int stress_stop;
static const char *stress_path = "/tmp/bus-stress";
static long stress_ops[8];

/* A master: accepts, joins, names, forwards what it receives, closes connections at random. */
static void *stress_master(void *arg)
{
	int l = (int)(long)arg, conns[256], n = 0, i, maxq = 16;
	unsigned int seed = 1;
	char buf[256];

	fcntl(l, F_SETFL, O_NONBLOCK);
	/* small queues: overflow, EAGAIN and blocked senders happen all the time */
	setsockopt(l, SOL_BUS, BUS_SET_MAXQLEN, &maxq, sizeof(maxq));
	while (!stress_stop) {
		int s = accept4(l, NULL, NULL, SOCK_NONBLOCK);

		if (s >= 0) {
			if (n == 256) {
				close(s);
			} else {
				bus_join(s);
				if (rand_r(&seed) % 4 == 0)
					bus_add_addr(s, BUS_ADDR(1, rand_r(&seed) % 64 + 1));
				if (rand_r(&seed) % 16 == 0)
					setsockopt(s, SOL_BUS, BUS_SET_EAVESDROP, NULL, 0);
				conns[n++] = s;
			}
		}
		for (i = 0; i < n; i++) {
			ssize_t r = recv(conns[i], buf, sizeof(buf), MSG_DONTWAIT);

			if (r == 0 || rand_r(&seed) % 512 == 0) {
				close(conns[i]);
				conns[i--] = conns[--n];
				continue;
			}
			if (r > 0)
				send(conns[i], buf, r, MSG_DONTWAIT | MSG_NOSIGNAL);
		}
		stress_ops[0]++;
		if (s < 0)
			usleep(500);
	}
	for (i = 0; i < n; i++)
		close(conns[i]);
	return NULL;
}

static int batch_send(int fd, uint64_t dst, int n, int flags, int bad);

static void *stress_client(void *arg)
{
	int id = (int)(long)arg;
	unsigned int seed = id * 7919;
	char buf[256];

	struct timeval tv = { .tv_sec = 0, .tv_usec = 20000 };

	while (!stress_stop) {
		int c = bus_connect(stress_path), k, fds[2];

		if (c < 0) {
			usleep(1000);
			continue;
		}
		setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		for (k = rand_r(&seed) % 40; k > 0 && !stress_stop; k--) {
			uint64_t dst;

			switch (rand_r(&seed) % 6) {
			case 0:
				dst = 0;
				break;
			case 1:
				dst = BUS_ADDR(0, BUS_MULTICAST_CLIENT);
				break;
			case 2:
				dst = BUS_ADDR(1, BUS_MULTICAST_CLIENT);
				break;
			case 3:
				dst = BUS_ADDR(1, rand_r(&seed) % 64 + 1);
				break;
			default:
				dst = BUS_ADDR(0, rand_r(&seed) % 200 + 1);
				break;
			}
			if (rand_r(&seed) % 8 == 0 && pipe(fds) == 0) {
				send_fds(c, dst, fds, 2, "fds");
				close(fds[0]);
				close(fds[1]);
			} else if (rand_r(&seed) % 6 == 0) {
				/* a batch: its wake-ups wait for the end of the call, receivers come and go */
				batch_send(c, dst, rand_r(&seed) % 16 + 1, MSG_DONTWAIT,
					   rand_r(&seed) % 4 ? -1 : (int)(rand_r(&seed) % 16));
			} else {
				/* some sends block (bounded by SO_SNDTIMEO) on full receivers */
				bus_sendto(c, dst, buf, rand_r(&seed) % sizeof(buf),
					   rand_r(&seed) % 4 ? MSG_DONTWAIT : 0);
			}
			while (recv(c, buf, sizeof(buf), MSG_DONTWAIT) > 0)
				;
			stress_ops[1 + id % 7]++;
		}
		close(c);
	}
	return NULL;
}

static int t_stress(void)
{
	long p0, u0, p1 = -1, u1 = -1, total = 0;
	pthread_t m, c[6];
	struct bus_stats sum;
	double t0;
	int i, round = 0, l;

	memset(&sum, 0, sizeof(sum));

	/* sockets of earlier tests are freed after an RCU grace period: start from a settled count */
	for (i = 0; i < 100 && read_protocols_sockets() != 0; i++)
		usleep(100000);
	p0 = read_protocols_sockets();
	u0 = read_sockstat_used();
	t0 = now_sec();

	/* /proc/net/sockstat needs CONFIG_INET (absent from minimal debug kernels): then u0 = u1 = -1 */
	CHECK(p0 >= 0, "cannot read /proc/net/protocols");
	/* several master generations: the master itself closes and comes back */
	while (now_sec() - t0 < stress_secs) {
		double slice = stress_secs / 3.0, ts = now_sec();

		l = bus_master(stress_path, 64);
		CHECK(l >= 0);
		stress_stop = 0;
		pthread_create(&m, NULL, stress_master, (void *)(long)l);
		for (i = 0; i < 6; i++)
			pthread_create(&c[i], NULL, stress_client, (void *)(long)i);
		while (now_sec() - ts < slice && now_sec() - t0 < stress_secs)
			usleep(100000);
		/* close the listener under load, then stop everyone */
		{
			struct bus_stats st;
			socklen_t sl = sizeof(st);

			if (getsockopt(l, SOL_BUS, BUS_GET_STATS, &st, &sl) == 0) {
				sum.unicast += st.unicast;
				sum.multicast += st.multicast;
				sum.copies += st.copies;
				sum.overflow_drops += st.overflow_drops;
			}
		}
		close(l);
		usleep(200000);
		stress_stop = 1;
		pthread_join(m, NULL);
		for (i = 0; i < 6; i++)
			pthread_join(c[i], NULL);
		unlink(stress_path);
		round++;
	}
	for (i = 0; i < 8; i++)
		total += stress_ops[i];
	/* sockets are freed after an RCU grace period */
	for (i = 0; i < 50; i++) {
		p1 = read_protocols_sockets();
		u1 = read_sockstat_used();
		if (p1 == p0 && u1 == u0)
			break;
		usleep(100000);
	}
	CHECK(p1 == p0, "AF_BUS sockets %ld before, %ld after", p0, p1);
	CHECK(u1 == u0, "sockstat used %ld before, %ld after", u0, u1);
	PASS("%d rounds, %ld ops (%llu unicast, %llu multicast, %llu copies, %llu overflow drops), "
	     "AF_BUS sockets %ld->%ld, sockstat used %ld->%ld", round, total,
	     (unsigned long long)sum.unicast, (unsigned long long)sum.multicast,
	     (unsigned long long)sum.copies, (unsigned long long)sum.overflow_drops, p0, p1, u0, u1);
}

/* ------------------------------------------------------------------ runner */

/* ------------------------------------------------------------------ issue 14: hardening */

/* Number of open descriptors of this process. */
static int count_fds(void)
{
	char path[64];
	int n = 0, i;

	for (i = 0; i < 4096; i++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", i);
		if (!access(path, F_OK))
			n++;
	}
	return n;
}

/* Receive one message, closing every passed descriptor; returns the length or -1. */
static ssize_t recv_close_fds(int fd, int flags, int *nfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 16)], buf[64];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			    .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	ssize_t n = recvmsg(fd, &m, flags | MSG_CMSG_CLOEXEC);

	if (n < 0)
		return -1;
	for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int), i, f;

			for (i = 0; i < k; i++) {
				memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				close(f);
				if (nfds)
					(*nfds)++;
			}
		}
	return n;
}

#define PEEK_MSGS 20000
static volatile int peek_stop;
static int peek_fd;
static long peek_seen;

static void *peeker(void *arg)
{
	struct pollfd p = { .fd = peek_fd, .events = POLLIN };

	(void)arg;
	while (!peek_stop) {
		if (poll(&p, 1, 100) == 1 && recv_close_fds(peek_fd, MSG_PEEK | MSG_DONTWAIT, NULL) > 0)
			peek_seen++;
	}
	return NULL;
}

/* Part 1.1: MSG_PEEK in one thread races a normal receive of fd-carrying messages in another. */
static int t_peek_recv_fds(void)
{
	struct tbus tb;
	pthread_t th;
	int fds0, i, got = 0, nfds = 0, pfd[2];
	ssize_t n;

	CHECK_OK(tb_open(&tb, "@bus-peek", 2, 1));
	CHECK_OK(pipe(pfd));
	fds0 = count_fds();
	peek_fd = tb.c[1];
	CHECK(pthread_create(&th, NULL, peeker, NULL) == 0);
	for (i = 0; i < PEEK_MSGS; i++) {
		int two[2] = { pfd[0], pfd[1] };

		while (send_fds(tb.c[0], tb.a[1], two, 2, "m") < 0) {
			struct pollfd p = { .fd = tb.c[1], .events = POLLIN };

			CHECK(errno == EAGAIN, "send %d", i);
			/* queue full: drain one here (races the peeker the same way) */
			CHECK(poll(&p, 1, 2000) == 1);
			n = recv_close_fds(tb.c[1], MSG_DONTWAIT, &nfds);
			if (n > 0)
				got++;
		}
		if (i & 1) {
			n = recv_close_fds(tb.c[1], MSG_DONTWAIT, &nfds);
			if (n > 0)
				got++;
		}
	}
	while (got < PEEK_MSGS) {
		struct pollfd p = { .fd = tb.c[1], .events = POLLIN };

		CHECK(poll(&p, 1, 2000) == 1, "got %d of %d", got, PEEK_MSGS);
		if (recv_close_fds(tb.c[1], MSG_DONTWAIT, &nfds) > 0)
			got++;
	}
	peek_stop = 1;
	pthread_join(th, NULL);
	CHECK(nfds == 2 * PEEK_MSGS, "received %d descriptors", nfds);
	CHECK(count_fds() == fds0, "%d descriptors open, %d before", count_fds(), fds0);
	tb_close(&tb);
	PASS("%d messages with 2 fds, %ld peeks concurrently", PEEK_MSGS, peek_seen);
}

#define RACE_ITERS 3000
static pthread_barrier_t race_bar;
static volatile int race_fd, race_done;
static int race_conn_rc, race_conn_errno, race_shut_rc, race_shut_errno;
static struct sockaddr_bus race_sa;
static socklen_t race_salen;

static void *race_connector(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_barrier_wait(&race_bar);
		if (race_done)
			return NULL;
		race_conn_rc = connect(race_fd, (struct sockaddr *)&race_sa, race_salen);
		race_conn_errno = errno;
		pthread_barrier_wait(&race_bar);
	}
}

static void *race_shutter(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_barrier_wait(&race_bar);
		if (race_done)
			return NULL;
		race_shut_rc = shutdown(race_fd, SHUT_RDWR);
		race_shut_errno = errno;
		pthread_barrier_wait(&race_bar);
	}
}

/* Part 1.2: shutdown() racing connect() on one socket. */
static int t_shutdown_connect_race(void)
{
	pthread_t t1, t2;
	int l, i, both = 0;

	l = bus_master("@bus-race", 16);
	CHECK(l >= 0);
	race_salen = bus_sockaddr(&race_sa, "@bus-race", 0);
	CHECK(pthread_barrier_init(&race_bar, NULL, 3) == 0);
	CHECK(pthread_create(&t1, NULL, race_connector, NULL) == 0);
	CHECK(pthread_create(&t2, NULL, race_shutter, NULL) == 0);
	for (i = 0; i < RACE_ITERS; i++) {
		int s;

		race_fd = bus_socket();
		CHECK(race_fd >= 0);
		pthread_barrier_wait(&race_bar);
		pthread_barrier_wait(&race_bar);
		CHECK(race_conn_rc == 0, "connect errno %d", race_conn_errno);
		CHECK(race_shut_rc == 0 || race_shut_errno == ENOTCONN,
		      "shutdown errno %d", race_shut_errno);
		if (race_shut_rc == 0) {
			both++;
			CHECK_ERR(send(race_fd, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT), EPIPE);
		}
		s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		CHECK(s >= 0);
		close(s);
		close(race_fd);
	}
	race_done = 1;
	pthread_barrier_wait(&race_bar);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	close(l);
	PASS("%d rounds, shutdown after connect in %d", RACE_ITERS, both);
}

static long read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

/* bind a bus, set BUS_SET_SENDBUF to want, return the SO_SNDBUF a client gets (or -errno). */
static int sendbuf_as_set(const char *name, int want)
{
	int l, c, s, v = 0, r;
	socklen_t vl = sizeof(v);

	l = bus_master(name, 4);
	if (l < 0)
		return -errno;
	r = setsockopt(l, SOL_BUS, BUS_SET_SENDBUF, &want, sizeof(want));
	if (r < 0) {
		r = -errno;
		close(l);
		return r;
	}
	c = bus_connect(name);
	if (c < 0) {
		close(l);
		return -errno;
	}
	s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (getsockopt(c, SOL_SOCKET, SO_SNDBUF, &v, &vl) < 0)
		v = -errno;
	close(c);
	if (s >= 0)
		close(s);
	close(l);
	return v;
}

/* Part 1.3: BUS_SET_SENDBUF respects net.core.wmem_max unless the master has CAP_NET_ADMIN. */
static int t_sendbuf_limits(void)
{
	long wmax = read_long("/proc/sys/net/core/wmem_max");
	int want = 64 << 20, v, st;
	pid_t pid;

	CHECK(wmax > 0 && wmax < want, "wmem_max %ld", wmax);
	pid = fork();
	if (pid == 0) {
		setgroups(0, NULL);
		if (setgid(65534) || setuid(65534))
			_exit(3);
		v = sendbuf_as_set("@bus-lim-nobody", want);
		if (v != (int)wmax) {
			fprintf(stderr, "unprivileged master got SO_SNDBUF %d (wmem_max %ld)\n", v, wmax);
			_exit(4);
		}
		_exit(0);
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "unprivileged master status %d", WEXITSTATUS(st));
	v = sendbuf_as_set("@bus-lim-root", want);
	CHECK(v == want, "root (CAP_NET_ADMIN) got SO_SNDBUF %d", v);
	PASS("nobody clamped to wmem_max %ld, CAP_NET_ADMIN gets %d", wmax, want);
}

/* Part 1.4: 1, 4, 32 and 128 MiB messages, paged, never an allocation above order 3. */
static int t_huge_messages(void)
{
	static const int mib[] = { 1, 4, 32, 128 };
	size_t max = (size_t)128 << 20, k;
	int sb = (128 << 20) + (1 << 20), i;
	unsigned char *buf = malloc(max), *out = malloc(max);
	double t0 = now_sec();
	struct tbus tb;

	CHECK(buf && out);
	for (k = 0; k < max; k++)
		buf[k] = k * 7 + (k >> 12) + (k >> 20);
	CHECK_OK(tb_open(&tb, "@bus-huge", 2, 1));
	/* above net.core.wmem_max: root has CAP_NET_ADMIN */
	CHECK_OK(setsockopt(tb.l, SOL_BUS, BUS_SET_SENDBUF, &sb, sizeof(sb)));
	for (i = 0; i < 4; i++) {
		size_t n = (size_t)mib[i] << 20;
		int inq = -1;

		buf[0] = i;
		CHECK(bus_sendto(tb.c[0], tb.a[1], buf, n, 0) == (ssize_t)n, "%d MiB send", mib[i]);
		CHECK_OK(ioctl(tb.c[1], SIOCINQ, &inq));
		CHECK(inq == (int)n, "SIOCINQ %d for %d MiB", inq, mib[i]);
		memset(out, 0, n);
		CHECK(bus_recv_timeout(tb.c[1], out, max, NULL, 60000) == (ssize_t)n,
		      "%d MiB receive", mib[i]);
		CHECK(!memcmp(buf, out, n), "%d MiB payload corrupted", mib[i]);
	}
	/* the master's own send of a large message to its client, and a multicast copy */
	CHECK(send(tb.s[1], buf, (size_t)4 << 20, 0) == 4 << 20);
	CHECK(bus_recv_timeout(tb.c[1], out, max, NULL, 60000) == 4 << 20);
	CHECK(!memcmp(buf, out, (size_t)4 << 20));
	CHECK(bus_sendto(tb.c[0], BUS_ADDR(0, BUS_MULTICAST_CLIENT), buf, (size_t)32 << 20, 0) ==
	      32 << 20);
	CHECK(bus_recv_timeout(tb.c[1], out, max, NULL, 60000) == 32 << 20);
	CHECK(!memcmp(buf, out, (size_t)32 << 20));
	CHECK_ERR(bus_sendto(tb.c[0], tb.a[1], buf, (size_t)sb, 0), EMSGSIZE);
	tb_close(&tb);
	free(buf);
	free(out);
	PASS("1, 4, 32, 128 MiB intact in %.1fs", now_sec() - t0);
}

/* Part 1.5: a multicast touches only the holders of its prefix. */
static int t_mcast_index(void)
{
	struct tbus tb;
	int i, j, ev = 1;
	double t0, dt, base;
	char b[16];

	CHECK_OK(tb_open(&tb, "@bus-mindex", 32, 1));
	/* c1 holds two addresses of prefix 4: one copy */
	CHECK_OK(bus_add_addr(tb.s[1], BUS_ADDR(4, 1)));
	CHECK_OK(bus_add_addr(tb.s[1], BUS_ADDR(4, 2)));
	CHECK_OK(bus_add_addr(tb.s[2], BUS_ADDR(4, 3)));
	CHECK_OK(send_str(tb.c[0], BUS_ADDR(4, BUS_MULTICAST_CLIENT), "m4"));
	CHECK(recv_expect(tb.c[1], "m4", NULL) == 0);
	CHECK(recv_expect(tb.c[2], "m4", NULL) == 0);
	CHECK(no_message(tb.c[1], 50) && no_message(tb.c[3], 10), "extra copies");
	/* removing one of c1's two addresses keeps it a holder; removing both does not */
	CHECK_OK(bus_del_addr(tb.s[1], BUS_ADDR(4, 1)));
	CHECK_OK(send_str(tb.c[0], BUS_ADDR(4, BUS_MULTICAST_CLIENT), "m4b"));
	CHECK(recv_expect(tb.c[1], "m4b", NULL) == 0);
	CHECK(recv_expect(tb.c[2], "m4b", NULL) == 0);
	CHECK_OK(bus_del_addr(tb.s[1], BUS_ADDR(4, 2)));
	close(tb.c[2]);
	tb.c[2] = -1;
	CHECK_OK(send_str(tb.c[0], BUS_ADDR(4, BUS_MULTICAST_CLIENT), "m4c"));
	CHECK(no_message(tb.c[1], 50), "c1 no longer holds prefix 4");
	/* the holder is gone and the prefix empty: re-adding works */
	CHECK_OK(bus_add_addr(tb.s[3], BUS_ADDR(4, 1)));
	/* an eavesdropper that holds the prefix gets one copy, one that does not gets one too */
	CHECK_OK(setsockopt(tb.s[3], SOL_BUS, BUS_SET_EAVESDROP, &ev, sizeof(ev)));
	CHECK_OK(setsockopt(tb.s[4], SOL_BUS, BUS_SET_EAVESDROP, &ev, sizeof(ev)));
	CHECK_OK(send_str(tb.c[0], BUS_ADDR(4, BUS_MULTICAST_CLIENT), "m4d"));
	CHECK(recv_expect(tb.c[3], "m4d", NULL) == 0);
	CHECK(recv_expect(tb.c[4], "m4d", NULL) == 0);
	CHECK(no_message(tb.c[3], 50) && no_message(tb.c[4], 10), "eavesdropper got two copies");
	CHECK_OK(setsockopt(tb.s[3], SOL_BUS, BUS_UNSET_EAVESDROP, NULL, 0));
	CHECK_OK(setsockopt(tb.s[4], SOL_BUS, BUS_UNSET_EAVESDROP, NULL, 0));
	/* 31 clients x 1000 addresses in prefix 2: a multicast to a prefix nobody holds is cheap */
	for (i = 0; i < tb.n; i++)
		if (tb.c[i] >= 0)
			for (j = 1; j <= 1000; j++)
				CHECK_OK(bus_add_addr(tb.s[i], BUS_ADDR(2, i * 1000 + j)));
	/* baseline: 5000 sends to the master, drained as they come */
	t0 = now_sec();
	for (i = 0; i < 5000; i++) {
		CHECK_OK(send_str(tb.c[0], 0, "x"));
		CHECK(recv(tb.s[0], b, sizeof(b), MSG_DONTWAIT) == 1);
	}
	base = now_sec() - t0;
	t0 = now_sec();
	for (i = 0; i < 5000; i++)
		CHECK_OK(send_str(tb.c[0], BUS_ADDR(9, BUS_MULTICAST_CLIENT), "x"));
	dt = now_sec() - t0;
	/* the walk of all clients' addresses took > 50x the baseline before the index */
	CHECK(dt < 4 * base + 0.2, "5000 multicasts to an unheld prefix took %.2fs, unicasts %.2fs",
	      dt, base);
	CHECK(no_message(tb.c[1], 20));
	/* and a prefix-2 multicast reaches each holder once */
	CHECK_OK(send_str(tb.c[0], BUS_ADDR(2, BUS_MULTICAST_CLIENT), "p2"));
	for (i = 1; i < tb.n; i++)
		if (tb.c[i] >= 0)
			CHECK(recv_expect(tb.c[i], "p2", NULL) == 0, "client %d", i);
	CHECK(recv(tb.c[1], b, sizeof(b), MSG_DONTWAIT) < 0 && errno == EAGAIN);
	tb_close(&tb);
	PASS("5000 multicasts to an unheld prefix among 31000 addresses in %.3fs (unicast %.3fs)",
	     dt, base);
}

/* Part 1.6: overflow drops are attributed to the sender. */
static int t_sender_drops(void)
{
	struct bus_sender_drops sd;
	socklen_t sl = sizeof(sd);
	struct tbus tb;
	int ql = 2, i;

	CHECK_OK(tb_open(&tb, "@bus-sdrops", 3, 1));
	CHECK_OK(setsockopt(tb.l, SOL_BUS, BUS_SET_MAXQLEN, &ql, sizeof(ql)));
	for (i = 0; i < 5; i++)
		CHECK_OK(send_str(tb.c[0], BUS_ADDR(0, BUS_MULTICAST_CLIENT), "flood"));
	CHECK_OK(getsockopt(tb.s[0], SOL_BUS, BUS_GET_SENDER_DROPS, &sd, &sl));
	CHECK(sl == sizeof(sd) && sd.dropped == 6 && sd.dropped_unread == 6,
	      "dropped %llu unread %llu", (unsigned long long)sd.dropped,
	      (unsigned long long)sd.dropped_unread);
	CHECK_OK(getsockopt(tb.s[0], SOL_BUS, BUS_GET_SENDER_DROPS, &sd, &sl));
	CHECK(sd.dropped == 6 && sd.dropped_unread == 0);
	CHECK_OK(getsockopt(tb.s[1], SOL_BUS, BUS_GET_SENDER_DROPS, &sd, &sl));
	CHECK(sd.dropped == 0, "a receiver is not blamed");
	CHECK_ERR(getsockopt(tb.c[0], SOL_BUS, BUS_GET_SENDER_DROPS, &sd, &sl), EPERM);
	CHECK_ERR(getsockopt(tb.l, SOL_BUS, BUS_GET_SENDER_DROPS, &sd, &sl), EINVAL);
	tb_close(&tb);
	PASS("ok");
}

/* Part 1.7: sockets cannot travel over AF_BUS; in-flight files count against the sender. */
static int t_fd_inflight(void)
{
	struct tbus tb;
	int u[2], pfd[2], fds[10], i, st, nf = 0;
	pid_t pid;

	CHECK_OK(tb_open(&tb, "@bus-inflight", 2, 1));
	CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, u));
	CHECK_ERR(send_fds(tb.c[0], tb.a[1], &u[0], 1, "unix"), EINVAL);
	CHECK_ERR(send_fds(tb.c[0], tb.a[1], &tb.c[1], 1, "bus"), EINVAL);
	/* the AF_UNIX <-> AF_BUS cycle: c1 waits in u1's queue, u1 may not go into c1's */
	{
		char cb[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { .iov_base = "c", .iov_len = 1 };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb,
				    .msg_controllen = sizeof(cb) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);

		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &tb.c[1], sizeof(int));
		CHECK(sendmsg(u[0], &m, 0) == 1);
	}
	CHECK_ERR(send_fds(tb.c[0], tb.a[1], &u[1], 1, "cycle"), EINVAL);
	close(u[0]);
	close(u[1]);

	CHECK_OK(pipe(pfd));
	for (i = 0; i < 10; i++)
		fds[i] = pfd[i & 1];
	pid = fork();
	if (pid == 0) {
		struct rlimit rl = { 64, 64 };
		int sent = 0;

		setgroups(0, NULL);
		if (setrlimit(RLIMIT_NOFILE, &rl) || setgid(65534) || setuid(65534))
			_exit(3);
		while (sent < 20 && send_fds(tb.c[0], tb.a[1], fds, 10, "f") == 0)
			sent++;
		if (sent != 7 || errno != ETOOMANYREFS) {
			fprintf(stderr, "sent %d, errno %d\n", sent, errno);
			_exit(4);
		}
		/* the receiver takes one message: 60 in flight, room again */
		if (recv_close_fds(tb.c[1], MSG_DONTWAIT, NULL) != 1)
			_exit(5);
		if (send_fds(tb.c[0], tb.a[1], fds, 10, "f"))
			_exit(6);
		_exit(0);
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "unprivileged sender status %d", WEXITSTATUS(st));
	while (recv_close_fds(tb.c[1], MSG_DONTWAIT, &nf) > 0)
		;
	CHECK(nf == 70, "received %d files", nf);
	/* CAP_SYS_RESOURCE: root may exceed its own limit */
	{
		struct rlimit rl = { 64, 64 };

		CHECK_OK(setrlimit(RLIMIT_NOFILE, &rl));
		for (i = 0; i < 10; i++)
			CHECK_OK(send_fds(tb.c[0], tb.a[1], fds, 10, "r"));
	}
	tb_close(&tb);
	PASS("AF_UNIX/AF_BUS sockets refused, nobody limited to RLIMIT_NOFILE in flight");
}

/* Part 1.8: a filesystem bus is reachable from another network namespace; abstract is not. */
static int t_netns_path(void)
{
	int l, la, s, st;
	char b[16];
	pid_t pid;

	l = bus_master("/tmp/bus-netns", 4);
	CHECK(l >= 0);
	la = bus_master("@bus-netns", 4);
	CHECK(la >= 0);
	pid = fork();
	if (pid == 0) {
		int c;

		if (unshare(CLONE_NEWNET))
			_exit(3);
		if (bus_connect("@bus-netns") >= 0 || errno != ECONNREFUSED)
			_exit(4);
		c = bus_connect("/tmp/bus-netns");
		if (c < 0)
			_exit(5);
		if (send(c, "hi", 2, 0) != 2)
			_exit(6);
		if (recv(c, b, sizeof(b), 0) != 2)
			_exit(7);
		_exit(0);
	}
	{
		struct pollfd p = { .fd = l, .events = POLLIN };

		/* the child may fail before connecting: do not wait for it forever */
		if (poll(&p, 1, 5000) != 1) {
			waitpid(pid, &st, 0);
			FAIL("no connection from the new netns: child status %d", WEXITSTATUS(st));
		}
	}
	s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	CHECK(s >= 0);
	CHECK(recv(s, b, sizeof(b), 0) == 2);
	CHECK(send(s, "ok", 2, 0) == 2);
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "child in a new netns: status %d", WEXITSTATUS(st));
	close(s);
	close(l);
	close(la);
	unlink("/tmp/bus-netns");
	PASS("ok");
}

/* Part 1.8: SIOCOUTQ is what the sender has queued at receivers, SIOCINQ the next message. */
static int t_ioctl_queues(void)
{
	struct tbus tb;
	char buf[100] = "";
	int v;

	CHECK_OK(tb_open(&tb, "@bus-ioctl", 3, 1));
	CHECK_OK(ioctl(tb.c[0], SIOCOUTQ, &v));
	CHECK(v == 0, "SIOCOUTQ %d at start", v);
	CHECK(bus_sendto(tb.c[0], tb.a[1], buf, 100, 0) == 100);
	CHECK(bus_sendto(tb.c[0], tb.a[1], buf, 30, 0) == 30);
	CHECK(bus_sendto(tb.c[0], BUS_ADDR(0, BUS_MULTICAST_CLIENT), buf, 7, 0) == 7);
	CHECK_OK(ioctl(tb.c[0], SIOCOUTQ, &v));
	CHECK(v == 100 + 30 + 2 * 7, "SIOCOUTQ %d", v);
	CHECK_OK(ioctl(tb.c[1], SIOCINQ, &v));
	CHECK(v == 100, "SIOCINQ %d", v);
	CHECK(recv(tb.c[1], buf, sizeof(buf), 0) == 100);
	CHECK_OK(ioctl(tb.c[1], SIOCINQ, &v));
	CHECK(v == 30, "SIOCINQ %d", v);
	CHECK_OK(ioctl(tb.c[0], SIOCOUTQ, &v));
	CHECK(v == 30 + 2 * 7, "SIOCOUTQ %d after one receive", v);
	/* a receiver that goes away takes its queue with it */
	close(tb.c[1]);
	tb.c[1] = -1;
	CHECK_OK(ioctl(tb.c[0], SIOCOUTQ, &v));
	CHECK(v == 7, "SIOCOUTQ %d after the receiver closed", v);
	tb_close(&tb);
	PASS("ok");
}

static long hk_param(const char *name)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/module/af_bus_hooktest/parameters/%s", name);
	return read_long(path);
}

static int hk_set_drop_rcpt(uint64_t a)
{
	FILE *f = fopen("/sys/module/af_bus_hooktest/parameters/drop_rcpt", "w");

	if (!f)
		return -1;
	fprintf(f, "%llu\n", (unsigned long long)a);
	return fclose(f);
}

/* ------------------------------------------------------------------ batched sends */

/* A reader blocked in poll(): how many messages it found queued when it woke. */
struct batch_reader {
	int fd;
	pid_t tid;
	int woke;		/* poll() returned readable */
	int found;		/* messages queued at that moment */
	char first[64];		/* the first one's text */
};

static void *batch_reader_main(void *arg)
{
	struct batch_reader *r = arg;
	struct pollfd p = { .fd = r->fd, .events = POLLIN };
	char buf[64];
	ssize_t n;

	__atomic_store_n(&r->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	if (poll(&p, 1, 10000) != 1 || !(p.revents & POLLIN))
		return NULL;
	r->woke = 1;
	while ((n = recv(r->fd, buf, sizeof(buf) - 1, MSG_DONTWAIT)) > 0) {
		buf[n] = 0;
		if (!r->found++)
			memcpy(r->first, buf, (size_t)n + 1);	/* n < sizeof(buf) */
	}
	return NULL;
}

/* Start a reader and return once it sleeps (in its poll(): it does nothing else). */
static int batch_reader_start(struct batch_reader *r, pthread_t *t, int fd)
{
	char path[64], stat[256];
	double deadline = now_sec() + 10;

	memset(r, 0, sizeof(*r));
	r->fd = fd;
	if (pthread_create(t, NULL, batch_reader_main, r))
		return -1;
	while (now_sec() < deadline) {
		pid_t tid = __atomic_load_n(&r->tid, __ATOMIC_ACQUIRE);
		char *state;
		FILE *f;

		if (!tid) {
			sched_yield();
			continue;
		}
		snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
		f = fopen(path, "r");
		if (!f)
			return -1;
		state = fgets(stat, sizeof(stat), f) ? strrchr(stat, ')') : NULL;
		fclose(f);
		if (state && state[1] == ' ' && state[2] == 'S')
			return 0;
		sched_yield();
	}
	errno = ETIMEDOUT;
	return -1;
}

/* n messages "m0".."m<n-1>" to @dst in one sendmmsg(); @bad: the index of a header the kernel refuses */
static int batch_send(int fd, uint64_t dst, int n, int flags, int bad)
{
	struct sockaddr_bus sa;
	socklen_t slen = bus_sockaddr(&sa, NULL, dst);
	struct mmsghdr mm[64];
	struct iovec iov[64];
	char text[64][8];
	int i;

	if (n > 64)
		n = 64;
	memset(mm, 0, sizeof(mm));
	for (i = 0; i < n; i++) {
		snprintf(text[i], sizeof(text[i]), "m%d", i);
		iov[i].iov_base = text[i];
		iov[i].iov_len = strlen(text[i]);
		mm[i].msg_hdr.msg_iov = &iov[i];
		/* more than UIO_MAXIOV: refused by sendmmsg() itself, before af_bus sees it */
		mm[i].msg_hdr.msg_iovlen = i == bad ? 4096 : 1;
		mm[i].msg_hdr.msg_name = &sa;
		mm[i].msg_hdr.msg_namelen = slen;
	}
	return sendmmsg(fd, mm, n, flags | MSG_NOSIGNAL);
}

static int t_batched_sends(void)
{
	struct batch_reader r[3];
	struct tbus tb;
	pthread_t t[3];
	char buf[64];
	int i, n;

	CHECK_OK(tb_open(&tb, "/tmp/bus-batch", 4, 1));
	/* a multicast batch: every reader is woken once, with the whole batch queued */
	for (i = 0; i < 3; i++)
		CHECK_OK(batch_reader_start(&r[i], &t[i], tb.c[i + 1]));
	n = batch_send(tb.c[0], BUS_ADDR(0, BUS_MULTICAST_CLIENT), 16, MSG_DONTWAIT, -1);
	CHECK(n == 16, "sendmmsg sent %d of 16 (errno %d)", n, errno);
	for (i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		CHECK(r[i].woke, "reader %d not woken by a batch", i);
		CHECK(r[i].found == 16 && !strcmp(r[i].first, "m0"),
		      "reader %d woke with %d of 16 queued, first '%s'", i, r[i].found, r[i].first);
	}
	/* a unicast batch, the same */
	CHECK_OK(batch_reader_start(&r[0], &t[0], tb.c[1]));
	n = batch_send(tb.c[0], tb.a[1], 8, MSG_DONTWAIT, -1);
	CHECK(n == 8, "sendmmsg sent %d of 8 (errno %d)", n, errno);
	pthread_join(t[0], NULL);
	CHECK(r[0].woke && r[0].found == 8, "unicast reader woke %d with %d of 8", r[0].woke, r[0].found);
	/* a batch that sendmmsg() stops at a bad header still wakes the receivers of what went */
	for (i = 0; i < 3; i++)
		CHECK_OK(batch_reader_start(&r[i], &t[i], tb.c[i + 1]));
	n = batch_send(tb.c[0], BUS_ADDR(0, BUS_MULTICAST_CLIENT), 6, MSG_DONTWAIT, 3);
	CHECK(n == 3, "sendmmsg with a bad 4th header sent %d (errno %d)", n, errno);
	for (i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		CHECK(r[i].woke && r[i].found == 3,
		      "after a stopped batch reader %d woke %d with %d of 3", i, r[i].woke, r[i].found);
	}
	/* a blocking batch defers nothing and delivers everything */
	n = batch_send(tb.c[0], tb.a[2], 12, 0, -1);
	CHECK(n == 12, "blocking sendmmsg sent %d of 12 (errno %d)", n, errno);
	for (i = 0; i < 12; i++)
		CHECK(bus_recv_timeout(tb.c[2], buf, sizeof(buf), NULL, 5000) > 0, "message %d of 12", i);
	/* a receiver that leaves between batches; the next batch goes to the others */
	close(tb.c[3]);
	tb.c[3] = -1;
	n = batch_send(tb.c[0], BUS_ADDR(0, BUS_MULTICAST_CLIENT), 4, MSG_DONTWAIT, -1);
	CHECK(n == 4, "sendmmsg after a receiver left sent %d (errno %d)", n, errno);
	for (i = 0; i < 4; i++)
		CHECK(bus_recv_timeout(tb.c[1], buf, sizeof(buf), NULL, 5000) > 0, "message %d of 4", i);
	/* a sender that leaves right after its batch */
	CHECK_OK(batch_reader_start(&r[0], &t[0], tb.c[1]));
	n = batch_send(tb.c[0], BUS_ADDR(0, BUS_MULTICAST_CLIENT), 5, MSG_DONTWAIT, -1);
	CHECK(n == 5);
	close(tb.c[0]);
	tb.c[0] = -1;
	pthread_join(t[0], NULL);
	CHECK(r[0].woke && r[0].found == 5, "woke %d with %d of 5", r[0].woke, r[0].found);
	tb_close(&tb);
	PASS("multicast, unicast, stopped, blocking batches");
}

/* BUS_GET_QUEUED: the queue's lengths and fd counts, so that one recvmmsg() reads them all whole */
static int t_queued(void)
{
	static const char *const text[3] = { "a", "hello", "fds" };
	struct bus_queued q[4];
	struct mmsghdr mm[3];
	struct iovec iov[3];
	char data[3][8], cbuf[3][CMSG_SPACE(sizeof(int) * 3)];
	struct cmsghdr *c;
	struct tbus tb;
	socklen_t ql;
	int fds[3] = { 0, 0, 0 };
	int i, s;

	CHECK_OK(tb_open(&tb, "/tmp/bus-queued", 2, 1));
	ql = sizeof(q);
	CHECK_OK(getsockopt(tb.c[1], SOL_BUS, BUS_GET_QUEUED, q, &ql));
	CHECK(ql == 0, "empty queue: optlen %u", ql);
	CHECK_OK(send_str(tb.c[0], tb.a[1], text[0]));
	CHECK_OK(send_str(tb.c[0], tb.a[1], text[1]));
	CHECK_OK(send_fds(tb.c[0], tb.a[1], fds, 3, text[2]));
	/* room for two: the oldest two */
	ql = 2 * sizeof(q[0]);
	CHECK_OK(getsockopt(tb.c[1], SOL_BUS, BUS_GET_QUEUED, q, &ql));
	CHECK(ql == 2 * sizeof(q[0]) && q[0].len == 1 && q[1].len == 5 && !q[0].nfds && !q[1].nfds,
	      "optlen %u: %u/%u %u/%u", ql, q[0].len, q[0].nfds, q[1].len, q[1].nfds);
	/* room for four: the three queued */
	ql = sizeof(q);
	CHECK_OK(getsockopt(tb.c[1], SOL_BUS, BUS_GET_QUEUED, q, &ql));
	CHECK(ql == 3 * sizeof(q[0]) && q[2].len == 3 && q[2].nfds == 3, "optlen %u, third %u/%u",
	      ql, q[2].len, q[2].nfds);
	/* bad arguments: no room for one entry, the listener, a socket on no bus, a bad pointer */
	ql = sizeof(q[0]) - 1;
	CHECK_ERR(getsockopt(tb.c[1], SOL_BUS, BUS_GET_QUEUED, q, &ql), EINVAL);
	ql = sizeof(q);
	CHECK_ERR(getsockopt(tb.l, SOL_BUS, BUS_GET_QUEUED, q, &ql), EINVAL);
	s = bus_socket();
	CHECK(s >= 0);
	CHECK_ERR(getsockopt(s, SOL_BUS, BUS_GET_QUEUED, q, &ql), ENOTCONN);
	close(s);
	CHECK_ERR(getsockopt(tb.c[1], SOL_BUS, BUS_GET_QUEUED, (void *)8, &ql), EFAULT);
	/* buffers of exactly those sizes: one recvmmsg() reads all three, none cut */
	memset(mm, 0, sizeof(mm));
	for (i = 0; i < 3; i++) {
		iov[i].iov_base = data[i];
		iov[i].iov_len = q[i].len;
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
		mm[i].msg_hdr.msg_control = q[i].nfds ? cbuf[i] : NULL;
		mm[i].msg_hdr.msg_controllen = CMSG_SPACE(sizeof(int) * q[i].nfds);
	}
	CHECK(recvmmsg(tb.c[1], mm, 3, MSG_DONTWAIT | MSG_CMSG_CLOEXEC, NULL) == 3,
	      "recvmmsg: errno %d", errno);
	for (i = 0; i < 3; i++)
		CHECK(mm[i].msg_len == q[i].len && !memcmp(data[i], text[i], q[i].len) &&
		      !(mm[i].msg_hdr.msg_flags & (MSG_TRUNC | MSG_CTRUNC)),
		      "message %d: %u bytes, flags %#x", i, mm[i].msg_len, mm[i].msg_hdr.msg_flags);
	c = CMSG_FIRSTHDR(&mm[2].msg_hdr);
	CHECK(c && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int) * 3),
	      "no SCM_RIGHTS with 3 fds");
	memcpy(fds, CMSG_DATA(c), sizeof(fds));
	for (i = 0; i < 3; i++)
		close(fds[i]);
	ql = sizeof(q);
	CHECK_OK(getsockopt(tb.c[1], SOL_BUS, BUS_GET_QUEUED, q, &ql));
	CHECK(ql == 0, "read queue: optlen %u", ql);
	tb_close(&tb);
	PASS("lengths and fd counts, bounded by optlen; one exact recvmmsg()");
}

/* One recvmsg() of at most @len bytes into @buf; @control: room for SCM_RIGHTS and SCM_BUS_QUEUED. */
static ssize_t recv_into(int s, char *buf, size_t len, char *control, size_t clen, int flags,
			 struct msghdr *m, struct iovec *iov)
{
	memset(m, 0, sizeof(*m));
	iov->iov_base = buf;
	iov->iov_len = len;
	m->msg_iov = iov;
	m->msg_iovlen = 1;
	m->msg_control = control;
	m->msg_controllen = clen;
	return recvmsg(s, m, flags | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
}

/* The SCM_BUS_QUEUED count in @m, or -1 without one; the fds of an SCM_RIGHTS are closed. */
static long queued_behind(struct msghdr *m)
{
	struct cmsghdr *c;
	long behind = -1;
	uint32_t v;
	int fd;
	size_t i;

	for (c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
		if (c->cmsg_level == SOL_BUS && c->cmsg_type == SCM_BUS_QUEUED &&
		    c->cmsg_len == CMSG_LEN(sizeof(v))) {
			memcpy(&v, CMSG_DATA(c), sizeof(v));
			behind = v;
		} else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			for (i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
				close(fd);
			}
		}
	}
	return behind;
}

/*
 * BUS_SET_RECV_FLAGS: with BUS_RECV_WHOLE a read too short for the next message fails with EMSGSIZE
 * and leaves it queued, fds and all; with BUS_RECV_QUEUED each read says how many messages are
 * behind the one it returns. Off again, reads truncate as SEQPACKET reads do.
 */
static int t_recv_flags(void)
{
	char buf[16], control[CMSG_SPACE(sizeof(int) * 3) + CMSG_SPACE(sizeof(uint32_t))];
	int flags = BUS_RECV_WHOLE | BUS_RECV_QUEUED, bad = 4, off = 0;
	int fds[3] = { 0, 0, 0 };
	struct bus_queued q[2];
	struct msghdr m;
	struct iovec iov;
	struct tbus tb;
	socklen_t ql;
	int s;

	CHECK_OK(tb_open(&tb, "/tmp/bus-recv-flags", 2, 1));
	/* bad arguments; any socket may set them, on a bus or not */
	CHECK_ERR(setsockopt(tb.c[1], SOL_BUS, BUS_SET_RECV_FLAGS, &bad, sizeof(bad)), EINVAL);
	CHECK_ERR(setsockopt(tb.c[1], SOL_BUS, BUS_SET_RECV_FLAGS, &flags, 2), EINVAL);
	CHECK_ERR(setsockopt(tb.c[1], SOL_BUS, BUS_SET_RECV_FLAGS, (void *)8, sizeof(int)), EFAULT);
	s = bus_socket();
	CHECK(s >= 0);
	CHECK_OK(setsockopt(s, SOL_BUS, BUS_SET_RECV_FLAGS, &flags, sizeof(flags)));
	close(s);
	CHECK_OK(setsockopt(tb.c[1], SOL_BUS, BUS_SET_RECV_FLAGS, &flags, sizeof(flags)));

	CHECK_OK(send_fds(tb.c[0], tb.a[1], fds, 3, "fds"));
	CHECK_OK(send_str(tb.c[0], tb.a[1], "a"));
	CHECK_OK(send_str(tb.c[0], tb.a[1], "hello"));
	/* too short: refused, and the message stays whole and first, with its fds */
	CHECK_ERR(recv_into(tb.c[1], buf, 2, control, sizeof(control), 0, &m, &iov), EMSGSIZE);
	ql = sizeof(q);
	CHECK_OK(getsockopt(tb.c[1], SOL_BUS, BUS_GET_QUEUED, q, &ql));
	CHECK(ql == sizeof(q) && q[0].len == 3 && q[0].nfds == 3, "queue head %u/%u", q[0].len,
	      q[0].nfds);
	/* a peek is not refused: it cuts as before, and counts the message itself as not behind */
	CHECK(recv_into(tb.c[1], buf, 2, control, sizeof(control), MSG_PEEK, &m, &iov) == 2 &&
	      (m.msg_flags & MSG_TRUNC), "peek: flags %#x", m.msg_flags);
	CHECK(queued_behind(&m) == 2, "peek: not 2 behind");
	CHECK(recv_into(tb.c[1], buf, 3, control, sizeof(control), 0, &m, &iov) == 3 &&
	      !memcmp(buf, "fds", 3) && !(m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)),
	      "fds: flags %#x", m.msg_flags);
	CHECK(queued_behind(&m) == 2, "fds: not 2 behind");
	CHECK(recv_into(tb.c[1], buf, sizeof(buf), control, sizeof(control), 0, &m, &iov) == 1 &&
	      buf[0] == 'a' && queued_behind(&m) == 1, "a: flags %#x", m.msg_flags);
	/* without room for the count: the message, with MSG_CTRUNC */
	CHECK(recv_into(tb.c[1], buf, sizeof(buf), NULL, 0, 0, &m, &iov) == 5 &&
	      !memcmp(buf, "hello", 5) && (m.msg_flags & MSG_CTRUNC), "hello: flags %#x",
	      m.msg_flags);
	CHECK_ERR(recv_into(tb.c[1], buf, sizeof(buf), control, sizeof(control), 0, &m, &iov), EAGAIN);

	/* off: a short read cuts the message and loses the rest, and no count comes */
	CHECK_OK(setsockopt(tb.c[1], SOL_BUS, BUS_SET_RECV_FLAGS, &off, sizeof(off)));
	CHECK_OK(send_str(tb.c[0], tb.a[1], "hello"));
	CHECK(recv_into(tb.c[1], buf, 2, control, sizeof(control), 0, &m, &iov) == 2 &&
	      (m.msg_flags & MSG_TRUNC) && queued_behind(&m) == -1, "off: flags %#x", m.msg_flags);
	CHECK_ERR(recv_into(tb.c[1], buf, sizeof(buf), control, sizeof(control), 0, &m, &iov), EAGAIN);
	tb_close(&tb);
	PASS("EMSGSIZE leaves the message queued with its fds; SCM_BUS_QUEUED counts what is behind");
}

/*
 * BUS_RECV_WHOLE against a sender on another CPU: a reader that starts on an empty queue while a
 * long message arrives gets EMSGSIZE, never the message cut. (The length was once looked at
 * before the message was taken, without the queue's lock in between: a message queued in that
 * gap was taken, and cut, by a read too short for it.)
 */
struct whole_sender {
	int fd;
	uint64_t dst;
	int count;
	int err;
};

static void *whole_sender_main(void *arg)
{
	struct whole_sender *s = arg;
	char buf[200];
	int i;

	memset(buf, 'x', sizeof(buf));
	for (i = 0; i < s->count; i++) {
		/* even: longer than the reader's first try; odd: shorter */
		size_t len = (i % 2) ? sizeof(i) : sizeof(buf);

		memcpy(buf, &i, sizeof(i));
		if (bus_sendto(s->fd, s->dst, buf, len, 0) != (ssize_t)len) {
			s->err = errno;
			break;
		}
	}
	return NULL;
}

static int t_recv_whole_race(void)
{
	struct timeval give_up = { .tv_sec = 5, .tv_usec = 0 };
	struct whole_sender s = { .count = 20000 };
	int flags = BUS_RECV_WHOLE, i, got = -1, refused = 0;
	char buf[256];
	struct tbus tb;
	ssize_t n = 0;
	pthread_t t;

	CHECK_OK(tb_open(&tb, "/tmp/bus-recv-whole-race", 2, 1));
	CHECK_OK(setsockopt(tb.c[1], SOL_BUS, BUS_SET_RECV_FLAGS, &flags, sizeof(flags)));
	/* a reader that stopped (a failure below) leaves the sender blocked on a full queue at most 5 s */
	CHECK_OK(setsockopt(tb.c[0], SOL_SOCKET, SO_SNDTIMEO, &give_up, sizeof(give_up)));
	s.fd = tb.c[0];
	s.dst = tb.a[1];
	CHECK(pthread_create(&t, NULL, whole_sender_main, &s) == 0);
	for (i = 0; i < s.count; i++) {
		/* blocking, room for the short ones; MSG_TRUNC: the datagram's length, cut or not */
		n = recv(tb.c[1], buf, 16, MSG_TRUNC);
		if (n > 16)
			break;	/* taken, and cut */
		if (n < 0 && errno == EMSGSIZE) {
			refused++;
			n = recv(tb.c[1], buf, sizeof(buf), MSG_TRUNC);
			if (n != 200)
				break;
		} else if (n != sizeof(got)) {
			break;
		}
		memcpy(&got, buf, sizeof(got));
		if (got != i)
			break;
	}
	pthread_join(t, NULL);
	CHECK(i == s.count, "message %d: %zd bytes, number %d (%d refused before)", i, n, got, refused);
	CHECK(s.err == 0, "sending failed with %d", s.err);
	CHECK(refused == s.count / 2, "%d of %d long messages refused first", refused, s.count / 2);
	tb_close(&tb);
	PASS("%d messages in order, each long one refused whole first, none cut", s.count);
}

static int t_hooks_body(void)
{
	struct bus_filter *f;
	struct tbus tb;
	size_t flen;
	long a, b, e;
	int one = 1;

	CHECK_OK(tb_open(&tb, "@bus-hooks", 4, 1));
	/* send point: reject with the handler's errno, or drop silently */
	CHECK_ERR(send_str(tb.c[0], tb.a[1], "HKSEND-REJ"), EXDEV);
	CHECK_OK(send_str(tb.c[0], tb.a[1], "HKSEND-DROP"));
	CHECK(no_message(tb.c[1], 50), "dropped at send but delivered");
	CHECK(hk_param("a_calls") == 0, "delivery hooks ran for a message refused at send");
	/* delivery: A (-100) runs before B (+100) whatever the registration order */
	CHECK_OK(send_str(tb.c[0], tb.a[1], "HKok"));
	CHECK(recv_expect(tb.c[1], "HKok", NULL) == 0);
	CHECK(hk_param("seq_a") < hk_param("seq_b"), "A %ld after B %ld", hk_param("seq_a"),
	      hk_param("seq_b"));
	/* A drops: B never sees it */
	b = hk_param("b_calls");
	CHECK_OK(send_str(tb.c[0], tb.a[1], "HKDROP-A"));
	CHECK(no_message(tb.c[1], 50));
	CHECK(hk_param("b_calls") == b, "B ran after A dropped");
	/* B rejects a unicast: sendmsg fails with its errno */
	CHECK_ERR(send_str(tb.c[0], tb.a[1], "HKREJ-B"), ENOKEY);
	CHECK(no_message(tb.c[1], 20));
	/* multicast: a verdict per receiver */
	CHECK_OK(hk_set_drop_rcpt(tb.a[2]));
	a = hk_param("mcast_calls");
	CHECK_OK(send_str(tb.c[0], BUS_ADDR(0, BUS_MULTICAST_CLIENT), "HKRCPT"));
	CHECK(recv_expect(tb.c[1], "HKRCPT", NULL) == 0);
	CHECK(recv_expect(tb.c[3], "HKRCPT", NULL) == 0);
	CHECK(no_message(tb.c[2], 50), "the dropped receiver got a copy");
	CHECK(hk_param("mcast_calls") == a + 3, "%ld multicast deliveries judged",
	      hk_param("mcast_calls") - a);
	/* a reject of one multicast copy is a drop for that receiver only */
	CHECK_OK(send_str(tb.c[0], BUS_ADDR(0, BUS_MULTICAST_CLIENT), "HKREJ-B"));
	CHECK(no_message(tb.c[1], 50) && no_message(tb.c[2], 10) && no_message(tb.c[3], 10));
	/* eavesdropper copies pass the delivery hooks too */
	CHECK_OK(setsockopt(tb.s[3], SOL_BUS, BUS_SET_EAVESDROP, &one, sizeof(one)));
	e = hk_param("eav_calls");
	CHECK_OK(send_str(tb.c[0], tb.a[1], "HKeav"));
	CHECK(recv_expect(tb.c[1], "HKeav", NULL) == 0);
	CHECK(recv_expect(tb.c[3], "HKeav", NULL) == 0);
	CHECK(hk_param("eav_calls") == e + 1);
	CHECK_OK(setsockopt(tb.s[3], SOL_BUS, BUS_UNSET_EAVESDROP, NULL, 0));
	/* the bus filter is the handler at priority 0: between A and B */
	f = filter_new(0, &flen);
	CHECK(f);
	f->default_verdict = BUS_FILTER_DROP;
	CHECK_OK(setsockopt(tb.l, SOL_BUS, BUS_SET_FILTER, f, flen));
	free(f);
	a = hk_param("a_calls");
	b = hk_param("b_calls");
	CHECK_OK(send_str(tb.c[0], tb.a[1], "HKfiltered"));
	CHECK(no_message(tb.c[1], 50));
	CHECK(hk_param("a_calls") == a + 1 && hk_param("b_calls") == b,
	      "A %ld B %ld calls for a filtered message", hk_param("a_calls") - a,
	      hk_param("b_calls") - b);
	CHECK_OK(setsockopt(tb.l, SOL_BUS, BUS_DEL_FILTER, NULL, 0));
	tb_close(&tb);
	return 0;
}

/* Part 3: the hook API, exercised by af_bus_hooktest.ko. */
static int t_hooks(void)
{
	struct tbus tb;
	int rc;

	CHECK(system("insmod /af_bus_hooktest.ko") == 0, "insmod af_bus_hooktest.ko");
	rc = t_hooks_body();
	CHECK(system("rmmod af_bus_hooktest") == 0, "rmmod af_bus_hooktest");
	if (rc)
		return rc;
	/* unregistered: nothing is judged any more */
	CHECK_OK(tb_open(&tb, "@bus-hooks2", 2, 1));
	CHECK_OK(send_str(tb.c[0], tb.a[1], "HKSEND-REJ"));
	CHECK(recv_expect(tb.c[1], "HKSEND-REJ", NULL) == 0);
	tb_close(&tb);
	PASS("send/deliver points, priorities, verdicts, filter as a handler, unregister");
}

static int bus_move_addr(int s, uint64_t addr)
{
	struct bus_addr a = { .s_addr = addr };

	return setsockopt(s, SOL_BUS, BUS_MOVE_ADDR, &a, sizeof(a));
}

struct move_counter {
	int fd;
	volatile int *done;
	long count;
};

/* Counts the messages arriving on fd until *done and its queue is empty. */
static void *move_receiver(void *arg)
{
	struct move_counter *mc = arg;
	char buf[64];

	for (;;) {
		struct pollfd p = { .fd = mc->fd, .events = POLLIN };
		int finished = __atomic_load_n(mc->done, __ATOMIC_ACQUIRE);

		if (poll(&p, 1, finished ? 0 : 100) > 0) {
			while (recv(mc->fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
				mc->count++;
			continue;
		}
		if (finished)
			return NULL;
	}
}

static int t_move_addr(void)
{
	const uint64_t name = BUS_ADDR(1, 5), other = BUS_ADDR(1, 6);
	const long sends = 20000;
	struct timeval stuck = { .tv_sec = 10 };
	struct move_counter mc[3];
	volatile int done = 0;
	pthread_t rt[3];
	struct tbus tb;
	long i, moves = 0;
	int j, round, unjoined;

	CHECK_OK(tb_open(&tb, "@bus-move", 3, 1));
	CHECK_OK(bus_add_addr(tb.s[0], name));
	CHECK_OK(send_str(tb.c[2], name, "to-0"));
	CHECK(recv_expect(tb.c[0], "to-0", NULL) == 0);
	/* moved: the next message goes to the new holder only */
	CHECK_OK(bus_move_addr(tb.s[1], name));
	CHECK_OK(send_str(tb.c[2], name, "to-1"));
	CHECK(recv_expect(tb.c[1], "to-1", NULL) == 0);
	CHECK(no_message(tb.c[0], 50), "the old holder still gets the name's messages");
	CHECK_ERR(bus_move_addr(tb.s[1], name), EALREADY);
	CHECK_ERR(bus_del_addr(tb.s[0], name), EADDRNOTAVAIL);
	CHECK_ERR(bus_add_addr(tb.s[0], name), EADDRINUSE);
	/* an address nobody holds is simply given */
	CHECK_OK(bus_move_addr(tb.s[0], other));
	CHECK_OK(send_str(tb.c[2], other, "other"));
	CHECK(recv_expect(tb.c[0], "other", NULL) == 0);
	/* bad arguments change nothing */
	CHECK_ERR(bus_move_addr(tb.s[0], BUS_ADDR(0, 99)), EINVAL);
	CHECK_ERR(bus_move_addr(tb.s[0], tb.a[1]), EINVAL);
	CHECK_ERR(bus_move_addr(tb.s[0], BUS_ADDR(1, BUS_MULTICAST_CLIENT)), EINVAL);
	CHECK_ERR(bus_move_addr(tb.c[0], name), EPERM);
	CHECK_ERR(bus_move_addr(tb.l, name), EINVAL);
	CHECK_ERR(setsockopt(tb.s[0], SOL_BUS, BUS_MOVE_ADDR, &name, 4), EINVAL);
	unjoined = tb_add_client(&tb, 0);
	CHECK(unjoined == 3);
	CHECK_ERR(bus_move_addr(tb.s[3], name), ENOTCONN);
	CHECK_OK(send_str(tb.c[2], name, "still-1"));
	CHECK(recv_expect(tb.c[1], "still-1", NULL) == 0);
	/* a moved-in address is the holder's like any other: it can give it up */
	CHECK_OK(bus_del_addr(tb.s[0], other));
	CHECK_OK(send_str(tb.c[2], other, "unheld"));
	CHECK(recv_expect(tb.s[2], "unheld", NULL) == 0);

	/*
	 * Atomicity: while the name flips between clients 0 and 1, each of a stream of messages
	 * reaches one of them; none reaches the master (the sender's master-side socket), which
	 * is where a message to an address nobody holds would go. The receivers fall behind now
	 * and then, so the blocking sender also waits for room at holders that lose the name.
	 */
	CHECK_OK(setsockopt(tb.c[2], SOL_SOCKET, SO_SNDTIMEO, &stuck, sizeof(stuck)));
	for (round = 0; round < 5; round++) {
		done = 0;
		mc[0] = (struct move_counter){ tb.c[0], &done, 0 };
		mc[1] = (struct move_counter){ tb.c[1], &done, 0 };
		mc[2] = (struct move_counter){ tb.s[2], &done, 0 };
		for (j = 0; j < 3; j++)
			CHECK(pthread_create(&rt[j], NULL, move_receiver, &mc[j]) == 0);
		for (i = 0; i < sends; i++) {
			if (bus_sendto(tb.c[2], name, "m", 1, 0) != 1) {
				struct bus_qlenfull q0, q1;
				socklen_t ql = sizeof(q0);

				getsockopt(tb.s[0], SOL_BUS, BUS_GET_QLENFULL, &q0, &ql);
				ql = sizeof(q1);
				getsockopt(tb.s[1], SOL_BUS, BUS_GET_QLENFULL, &q1, &ql);
				FAIL("round %d send %ld (move %ld) stuck 10 s: c0 queue %u/%u %u/%u bytes, "
				     "c1 queue %u/%u %u/%u bytes, received %ld + %ld", round, i, moves,
				     q0.qlen, q0.maxqlen, q0.rmem, q0.rcvbuf, q1.qlen, q1.maxqlen, q1.rmem,
				     q1.rcvbuf, mc[0].count, mc[1].count);
			}
			if (i % 4 == 0) {
				CHECK_OK(bus_move_addr(tb.s[moves % 2 ? 1 : 0], name));
				moves++;
			}
		}
		__atomic_store_n(&done, 1, __ATOMIC_RELEASE);
		for (j = 0; j < 3; j++)
			pthread_join(rt[j], NULL);
		CHECK(mc[2].count == 0, "%ld messages to the name reached the master", mc[2].count);
		CHECK(mc[0].count + mc[1].count == sends, "round %d: %ld + %ld of %ld arrived", round,
		      mc[0].count, mc[1].count, sends);
		CHECK(mc[0].count > 0 && mc[1].count > 0);
	}
	tb_close(&tb);
	PASS("5 rounds of %ld sends under %ld moves in all: each reached a holder, none the master",
	     sends, moves);
}

/* Part 4: af_bus_dbus.ko, the D-Bus protocol module. */

static int set_name(int s, const char *name)
{
	return setsockopt(s, SOL_BUS, BUS_DBUS_SET_NAME, name, strlen(name));
}

/* Sends m's bytes from fd to addr; 0 or -1 with errno. */
static int send_raw(int fd, uint64_t addr, const uint8_t *m, size_t len)
{
	return bus_sendto(fd, addr, m, len, MSG_DONTWAIT) == (ssize_t)len ? 0 : -1;
}

/* The next message on fd is exactly m. */
static int recv_raw(int fd, const uint8_t *m, size_t len)
{
	uint8_t *got = malloc(len + 1);
	ssize_t n;
	int ok;

	if (!got)
		return -1;
	n = bus_recv_timeout(fd, got, len + 1, NULL, 5000);
	ok = n == (ssize_t)len && !memcmp(got, m, len);
	free(got);
	if (!ok)
		errno = EBADMSG;
	return ok ? 0 : -1;
}

static int add_match(int s, uint8_t type, const char *const keys[6], const char *arg0)
{
	uint8_t rec[512];
	size_t n = dmatch_record(rec, type, keys, arg0);

	return setsockopt(s, SOL_BUS, BUS_DBUS_ADD_MATCH, rec, n);
}

static int remove_match(int s, uint8_t type, const char *const keys[6], const char *arg0)
{
	uint8_t rec[512];
	size_t n = dmatch_record(rec, type, keys, arg0);

	return setsockopt(s, SOL_BUS, BUS_DBUS_REMOVE_MATCH, rec, n);
}

static int t_dbus_body(uint8_t *m)
{
	const uint64_t mcast = BUS_ADDR(0, BUS_MULTICAST_CLIENT);
	char longname[300];
	struct tbus tb, plain;
	struct dmsg big = { .type = 4, .path = "/a", .interface = "a.b", .member = "C",
			    .sender = ":1.1", .unknown_len = 100000, .body_len = 1 << 20 };
	int sb = 8 << 20, rcv = 16 << 20;
	uint8_t *bigm;
	size_t n;

	CHECK_OK(tb_open_proto(&tb, "@bus-dbus", 3, 1, BUS_PROTO_DBUS));
	/* names: valid unique names, once, by the master, on the client's master-side socket */
	CHECK_OK(set_name(tb.s[0], ":1.1"));
	CHECK_OK(set_name(tb.s[1], ":1.2"));
	CHECK_ERR(set_name(tb.s[0], ":1.9"), EALREADY);
	CHECK_ERR(set_name(tb.s[2], "org.example.Name"), EINVAL);
	CHECK_ERR(set_name(tb.s[2], ":"), EINVAL);
	n = dmsg_signal(m, ":1.9");
	CHECK_ERR(send_raw(tb.c[2], tb.a[1], m, n), EPERM);	/* unnamed: no name to claim */
	CHECK_ERR(set_name(tb.s[2], ":1..2"), EINVAL);
	memset(longname, '1', sizeof(longname) - 1);
	longname[0] = ':';
	longname[sizeof(longname) - 1] = 0;
	CHECK_ERR(set_name(tb.s[2], longname), EINVAL);
	CHECK_ERR(setsockopt(tb.s[2], SOL_BUS, BUS_DBUS_SET_NAME, NULL, 0), EINVAL);
	CHECK_ERR(set_name(tb.l, ":1.3"), EINVAL);
	CHECK_ERR(set_name(tb.c[2], ":1.3"), EPERM);
	CHECK_ERR(setsockopt(tb.s[2], SOL_BUS, BUS_DBUS_OPT_MAX - 1, NULL, 0), ENOPROTOOPT);
	CHECK_ERR(setsockopt(tb.s[2], SOL_BUS, BUS_DBUS_OPT_MAX, NULL, 0), ENOPROTOOPT);

	/* c1 and c2 subscribe to everything (the empty rule); c2 is not named, so it cannot */
	CHECK_OK(add_match(tb.s[1], 0, NULL, NULL));
	CHECK_ERR(add_match(tb.s[2], 0, NULL, NULL), ENOTCONN);
	CHECK_OK(set_name(tb.s[2], ":1.3"));
	CHECK_OK(add_match(tb.s[2], 0, NULL, NULL));
	/* the client's own name as SENDER: delivered, byte for byte, unicast and multicast */
	n = dmsg_signal(m, ":1.1");
	CHECK_OK(send_raw(tb.c[0], tb.a[1], m, n));
	CHECK_OK(recv_raw(tb.c[1], m, n));
	CHECK_OK(send_raw(tb.c[0], mcast, m, n));
	CHECK_OK(recv_raw(tb.c[1], m, n));
	CHECK_OK(recv_raw(tb.c[2], m, n));
	/* another's name, or none, to a peer: refused, nobody gets it */
	n = dmsg_signal(m, ":1.2");
	CHECK_ERR(send_raw(tb.c[0], tb.a[1], m, n), EPERM);
	CHECK_ERR(send_raw(tb.c[0], mcast, m, n), EPERM);
	n = dmsg_signal(m, NULL);
	CHECK_ERR(send_raw(tb.c[0], tb.a[1], m, n), EPERM);
	CHECK(no_message(tb.c[1], 50) && no_message(tb.c[2], 10), "a refused message arrived");
	/* ... but the master may be addressed without one (Hello) */
	CHECK_OK(send_raw(tb.c[0], BUS_MASTER_ADDR, m, n));
	CHECK_OK(recv_raw(tb.s[0], m, n));
	/* a client cannot claim another's name */
	n = dmsg_signal(m, ":1.1");
	CHECK_ERR(send_raw(tb.c[2], tb.a[1], m, n), EPERM);
	/* the master's messages are the bus's own: any SENDER, or none */
	n = dmsg_signal(m, "org.freedesktop.DBus");
	CHECK_OK(send_raw(tb.s[1], tb.a[1], m, n));
	CHECK_OK(recv_raw(tb.c[1], m, n));

	/* malformed messages are refused with the parser's errno, from anybody */
	CHECK_ERR(send_raw(tb.c[0], tb.a[1], (const uint8_t *)"hello", 5), EMSGSIZE);
	n = dmsg_signal(m, ":1.1");
	m[0] = 'x';
	CHECK_ERR(send_raw(tb.c[0], tb.a[1], m, n), EBADMSG);
	CHECK_ERR(send_raw(tb.s[1], tb.a[1], m, n), EBADMSG);
	m[0] = 'l';
	CHECK_ERR(send_raw(tb.c[0], tb.a[1], m, n - 8), EMSGSIZE);
	{
		struct dmsg bad = { .type = 4, .path = "/a//b", .interface = "a.b", .member = "C",
				    .sender = ":1.1" };

		n = dmsg_build(m, &bad);
		CHECK_ERR(send_raw(tb.c[0], tb.a[1], m, n), EINVAL);
	}
	CHECK(no_message(tb.c[1], 50), "a malformed message arrived");

	/* a 1 MiB message whose 100 kB header is not in the skb's linear part */
	CHECK_OK(setsockopt(tb.l, SOL_BUS, BUS_SET_SENDBUF, &sb, sizeof(sb)));
	CHECK_OK(setsockopt(tb.c[1], SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)));
	bigm = malloc(dmsg_size(&big));
	CHECK(bigm);
	n = dmsg_build(bigm, &big);
	CHECK_OK(send_raw(tb.c[0], tb.a[1], bigm, n));
	CHECK_OK(recv_raw(tb.c[1], bigm, n));
	big.sender = ":1.2";
	n = dmsg_build(bigm, &big);
	CHECK_ERR(send_raw(tb.c[0], tb.a[1], bigm, n), EPERM);
	free(bigm);

	/* the module holds on while a D-Bus bus exists */
	CHECK(system("rmmod af_bus_dbus 2>/dev/null") != 0, "af_bus_dbus unloaded under a live bus");

	/* a plain bus knows nothing of the module's options and checks nothing */
	CHECK_OK(tb_open(&plain, "@bus-dbus-plain", 2, 1));
	CHECK_ERR(set_name(plain.s[0], ":1.1"), ENOPROTOOPT);
	CHECK_OK(send_raw(plain.c[0], plain.a[1], (const uint8_t *)"hello", 5));
	CHECK(recv_expect(plain.c[1], "hello", NULL) == 0);
	tb_close(&plain);

	/* a client that leaves takes its name along; the others go on */
	close(tb.c[1]);
	close(tb.s[1]);
	tb.c[1] = tb.s[1] = -1;
	n = dmsg_signal(m, ":1.1");
	CHECK_OK(send_raw(tb.c[0], mcast, m, n));
	CHECK_OK(recv_raw(tb.c[2], m, n));
	tb_close(&tb);
	return 0;
}

/* Multicast copies go to the clients whose match records match, only. */
static int t_dbus_matches_body(uint8_t *m)
{
	static const char *const names[] = { ":1.1", ":1.2", ":1.3", ":1.4" };
	static const char *const iface[6] = { NULL, "org.example.Iface", NULL, NULL, NULL, NULL };
	static const char *const other_member[6] = { NULL, NULL, "Other", NULL, NULL, NULL };
	static const char *const from_c0[6] = { ":1.1", NULL, NULL, NULL, NULL, NULL };
	static const char *const under_org[6] = { NULL, NULL, NULL, NULL, "/org", NULL };
	const uint64_t mcast = BUS_ADDR(0, BUS_MULTICAST_CLIENT);
	uint8_t rec[64];
	struct tbus tb;
	size_t n;
	int i;

	CHECK_OK(tb_open_proto(&tb, "@bus-dbus-matches", 4, 1, BUS_PROTO_DBUS));
	for (i = 0; i < 4; i++)
		CHECK_OK(set_name(tb.s[i], names[i]));
	/* records are checked as MatchRule::load checks them, on the client's master-side socket */
	n = dmatch_record(rec, 0, iface, NULL);
	CHECK_ERR(setsockopt(tb.s[1], SOL_BUS, BUS_DBUS_ADD_MATCH, rec, n - 1), EINVAL);
	rec[0] = 2;
	CHECK_ERR(setsockopt(tb.s[1], SOL_BUS, BUS_DBUS_ADD_MATCH, rec, n), EINVAL);
	CHECK_ERR(setsockopt(tb.l, SOL_BUS, BUS_DBUS_ADD_MATCH, rec, n), EINVAL);
	CHECK_ERR(add_match(tb.c[1], 0, iface, NULL), EPERM);
	CHECK_ERR(remove_match(tb.s[1], 0, iface, NULL), ENOENT);

	/* nobody subscribed: a signal reaches nobody, its sender included */
	n = dmsg_signal_arg(m, names[0], "Changed", "a.b");
	CHECK_OK(send_raw(tb.c[0], mcast, m, n));
	CHECK(no_message(tb.c[1], 50) && no_message(tb.c[2], 10) && no_message(tb.c[3], 10) &&
	      no_message(tb.c[0], 10));

	CHECK_OK(add_match(tb.s[1], 4, iface, NULL));		/* signals on the interface */
	CHECK_OK(add_match(tb.s[2], 0, other_member, NULL));	/* another member only */
	CHECK_OK(add_match(tb.s[3], 0, NULL, "a.c"));		/* arg0 = a.c */
	CHECK_OK(send_raw(tb.c[0], mcast, m, n));
	CHECK_OK(recv_raw(tb.c[1], m, n));
	CHECK(no_message(tb.c[2], 50) && no_message(tb.c[3], 10), "a copy reached a non-matching client");
	n = dmsg_signal_arg(m, names[0], "Other", "a.c");
	CHECK_OK(send_raw(tb.c[0], mcast, m, n));
	CHECK_OK(recv_raw(tb.c[1], m, n));
	CHECK_OK(recv_raw(tb.c[2], m, n));
	CHECK_OK(recv_raw(tb.c[3], m, n));
	/* sender and path_namespace keys; the master's own multicast is filtered alike */
	CHECK_OK(add_match(tb.s[2], 0, from_c0, NULL));
	CHECK_OK(add_match(tb.s[3], 0, under_org, NULL));
	n = dmsg_signal_arg(m, names[1], "Changed", "x");
	CHECK_OK(send_raw(tb.c[1], mcast, m, n));
	CHECK_OK(recv_raw(tb.c[3], m, n));	/* /org/example/Obj is under /org */
	/* its sender too, whose interface record matches it (dbus-daemon does the same) */
	CHECK_OK(recv_raw(tb.c[1], m, n));
	CHECK(no_message(tb.c[2], 50) && no_message(tb.c[0], 10));
	n = dmsg_signal_arg(m, "org.freedesktop.DBus", "NameOwnerChanged", "a.c");
	CHECK_OK(send_raw(tb.s[0], mcast, m, n));
	CHECK_OK(recv_raw(tb.c[1], m, n));	/* its interface */
	CHECK_OK(recv_raw(tb.c[3], m, n));	/* arg0 and path_namespace */
	CHECK(no_message(tb.c[0], 50) && no_message(tb.c[2], 10));
	/* removal: one record per call; a rule added twice needs two */
	CHECK_OK(add_match(tb.s[1], 4, iface, NULL));
	CHECK_OK(remove_match(tb.s[1], 4, iface, NULL));
	n = dmsg_signal_arg(m, names[0], "Changed", "z");
	CHECK_OK(send_raw(tb.c[0], mcast, m, n));
	CHECK_OK(recv_raw(tb.c[1], m, n));
	CHECK_OK(recv_raw(tb.c[2], m, n));	/* sender :1.1 */
	CHECK_OK(recv_raw(tb.c[3], m, n));	/* path_namespace /org */
	CHECK_OK(remove_match(tb.s[1], 4, iface, NULL));
	CHECK_OK(send_raw(tb.c[0], mcast, m, n));
	CHECK(no_message(tb.c[1], 50), "a removed rule still delivers");
	CHECK_OK(recv_raw(tb.c[2], m, n));
	CHECK_OK(recv_raw(tb.c[3], m, n));

	/* 10,000 records, each naming its own member, in the index: each selects its signal only */
	{
		const char *keys[6] = { NULL, NULL, NULL, NULL, NULL, NULL };
		char member[16];

		for (i = 0; i < 10000; i++) {
			snprintf(member, sizeof(member), "M%d", i);
			keys[2] = member;
			CHECK_OK(add_match(tb.s[0], 4, keys, NULL));
		}
		n = dmsg_signal_arg(m, names[1], "M5000", "q");
		CHECK_OK(send_raw(tb.c[1], mcast, m, n));
		CHECK_OK(recv_raw(tb.c[0], m, n));
		CHECK_OK(recv_raw(tb.c[3], m, n));	/* its own path_namespace rule, unkeyed */
		n = dmsg_signal_arg(m, names[1], "M10000", "q");
		CHECK_OK(send_raw(tb.c[1], mcast, m, n));
		CHECK(no_message(tb.c[0], 50), "a member nobody named reached the 10,000-record client");
		CHECK_OK(recv_raw(tb.c[3], m, n));
		keys[2] = "M5000";
		CHECK_OK(remove_match(tb.s[0], 4, keys, NULL));
		n = dmsg_signal_arg(m, names[1], "M5000", "q");
		CHECK_OK(send_raw(tb.c[1], mcast, m, n));
		CHECK(no_message(tb.c[0], 50), "a removed indexed record still delivers");
		CHECK_OK(recv_raw(tb.c[3], m, n));
		n = dmsg_signal_arg(m, names[1], "M9999", "q");
		CHECK_OK(send_raw(tb.c[1], mcast, m, n));
		CHECK_OK(recv_raw(tb.c[0], m, n));
		CHECK_OK(recv_raw(tb.c[3], m, n));
	}
	/*
	 * The copies go to the clients the module lists (multicast_receivers): one named and subscribed
	 * but not joined yet is listed and still gets none, until the master joins it.
	 */
	CHECK(tb_add_client(&tb, 0) == 4, "a fifth client");
	CHECK_OK(set_name(tb.s[4], ":1.5"));
	CHECK_OK(add_match(tb.s[4], 0, under_org, NULL));
	n = dmsg_signal_arg(m, names[0], "Changed", "z");
	CHECK_OK(send_raw(tb.c[0], mcast, m, n));
	CHECK_OK(recv_raw(tb.c[2], m, n));	/* sender :1.1 */
	CHECK_OK(recv_raw(tb.c[3], m, n));	/* path_namespace /org */
	CHECK(no_message(tb.c[4], 50), "a client not joined yet got a multicast copy");
	CHECK_OK(bus_join(tb.s[4]));
	CHECK_OK(send_raw(tb.c[0], mcast, m, n));
	CHECK_OK(recv_raw(tb.c[2], m, n));
	CHECK_OK(recv_raw(tb.c[3], m, n));
	CHECK_OK(recv_raw(tb.c[4], m, n));
	CHECK(no_message(tb.c[0], 20) && no_message(tb.c[1], 10), "a copy reached a non-matching client");
	tb_close(&tb);
	return 0;
}

static int set_reply_limits(int l, uint32_t max_replies, uint32_t timeout_ms)
{
	struct bus_dbus_reply_limits lim = { max_replies, timeout_ms };

	return setsockopt(l, SOL_BUS, BUS_DBUS_SET_REPLY_LIMITS, &lim, sizeof(lim));
}

/* client i calls client j with serial; the call arrives at j */
static int dcall(struct tbus *tb, uint8_t *m, int i, int j, uint32_t serial, uint8_t flags)
{
	static const char *const names[] = { ":1.1", ":1.2", ":1.3", ":1.4" };
	size_t n = dmsg_call(m, names[i], serial, flags);

	if (send_raw(tb->c[i], tb->a[j], m, n))
		return -1;
	return recv_raw(tb->c[j], m, n);
}

/* client j answers client i's call serial; 1 if it arrived, 0 if not, -1 on a send error */
static int danswer(struct tbus *tb, uint8_t *m, int j, int i, uint32_t serial, const char *error)
{
	static const char *const names[] = { ":1.1", ":1.2", ":1.3", ":1.4" };
	size_t n = dmsg_reply(m, names[j], serial, error);

	struct pollfd p = { .fd = tb->c[i], .events = POLLIN };

	if (send_raw(tb->c[j], tb->a[i], m, n))
		return -1;
	/* a reply that passes is queued by the send itself: nothing to wait for */
	if (poll(&p, 1, 0) == 0)
		return 0;
	return recv_raw(tb->c[i], m, n) == 0 ? 1 : -1;
}

static int t_dbus_replies_body(uint8_t *m)
{
	static const char *const names[] = { ":1.1", ":1.2", ":1.3", ":1.4" };
	struct tbus tb;
	size_t n;
	int i;

	CHECK_OK(tb_open_proto(&tb, "@bus-dbus-replies", 4, 1, BUS_PROTO_DBUS));
	for (i = 0; i < 4; i++)
		CHECK_OK(set_name(tb.s[i], names[i]));
	/* the limits are the bus's: on the listener, in range */
	CHECK_ERR(set_reply_limits(tb.s[0], 4, 1000), EINVAL);
	CHECK_ERR(set_reply_limits(tb.l, 0, 1000), EINVAL);
	CHECK_ERR(set_reply_limits(tb.l, 65537, 1000), EINVAL);
	CHECK_ERR(set_reply_limits(tb.l, 4, 0), EINVAL);
	CHECK_ERR(setsockopt(tb.l, SOL_BUS, BUS_DBUS_SET_REPLY_LIMITS, m, 4), EINVAL);
	CHECK_ERR(set_reply_limits(tb.c[0], 4, 1000), EPERM);

	/* a call, its answer once; a second answer, an unrequested one, a stranger's: dropped */
	CHECK_OK(dcall(&tb, m, 0, 1, 7, 0));
	CHECK(danswer(&tb, m, 1, 0, 7, NULL) == 1, "the answer to a call did not arrive");
	CHECK(danswer(&tb, m, 1, 0, 7, NULL) == 0, "a second answer arrived");
	CHECK(danswer(&tb, m, 1, 0, 99, NULL) == 0, "an unrequested reply arrived");
	CHECK_OK(dcall(&tb, m, 0, 1, 8, 0));
	CHECK(danswer(&tb, m, 2, 0, 8, NULL) == 0, "another client answered a call not made to it");
	CHECK(danswer(&tb, m, 1, 0, 8, "org.example.Error.Failed") == 1, "an ERROR answer did not arrive");
	/* no reply expected: none passes */
	CHECK_OK(dcall(&tb, m, 0, 1, 9, 1));
	CHECK(danswer(&tb, m, 1, 0, 9, NULL) == 0, "a reply to a no-reply call arrived");
	/* a reply sent to everybody reaches nobody */
	CHECK_OK(dcall(&tb, m, 0, 1, 10, 0));
	n = dmsg_reply(m, names[1], 10, NULL);
	CHECK_OK(send_raw(tb.c[1], BUS_ADDR(0, BUS_MULTICAST_CLIENT), m, n));
	CHECK(no_message(tb.c[0], 50) && no_message(tb.c[2], 10) && no_message(tb.c[3], 10));
	CHECK(danswer(&tb, m, 1, 0, 10, NULL) == 1, "the call was consumed by a multicast reply");
	/* replies to the master and the master's are its own business */
	n = dmsg_reply(m, names[0], 4242, NULL);
	CHECK_OK(send_raw(tb.c[0], BUS_MASTER_ADDR, m, n));
	CHECK_OK(recv_raw(tb.s[0], m, n));
	n = dmsg_reply(m, "org.freedesktop.DBus", 4242, NULL);
	CHECK_OK(send_raw(tb.s[0], tb.a[0], m, n));
	CHECK_OK(recv_raw(tb.c[0], m, n));

	/* outstanding calls per caller are bounded; an answer makes room */
	CHECK_OK(set_reply_limits(tb.l, 3, 60000));
	for (i = 0; i < 3; i++)
		CHECK_OK(dcall(&tb, m, 0, 1, 100 + i, 0));
	n = dmsg_call(m, names[0], 103, 0);
	CHECK_ERR(send_raw(tb.c[0], tb.a[2], m, n), EDQUOT);
	CHECK(no_message(tb.c[2], 50), "a call beyond the limit arrived");
	CHECK_OK(dcall(&tb, m, 1, 2, 5, 0));	/* the limit is per caller */
	CHECK(danswer(&tb, m, 1, 0, 101, NULL) == 1);
	CHECK_OK(dcall(&tb, m, 0, 2, 103, 0));
	/* a callee that leaves takes the calls it had to answer along */
	close(tb.c[1]);
	close(tb.s[1]);
	tb.c[1] = tb.s[1] = -1;
	CHECK_OK(dcall(&tb, m, 0, 3, 104, 0));
	CHECK_OK(dcall(&tb, m, 0, 3, 105, 0));
	n = dmsg_call(m, names[0], 106, 0);
	CHECK_ERR(send_raw(tb.c[0], tb.a[3], m, n), EDQUOT);
	CHECK(danswer(&tb, m, 2, 0, 103, NULL) == 1);
	CHECK(danswer(&tb, m, 3, 0, 104, NULL) == 1);
	CHECK(danswer(&tb, m, 3, 0, 105, NULL) == 1);

	/* an answer after the reply timeout is dropped, and the expired call makes room */
	CHECK_OK(set_reply_limits(tb.l, 1, 100));
	CHECK_OK(dcall(&tb, m, 0, 2, 200, 0));
	usleep(300 * 1000);	/* let the timeout pass: time is what is tested */
	CHECK(danswer(&tb, m, 2, 0, 200, NULL) == 0, "an answer after the timeout arrived");
	CHECK_OK(dcall(&tb, m, 0, 2, 201, 0));
	usleep(300 * 1000);
	CHECK_OK(dcall(&tb, m, 0, 3, 202, 0));
	CHECK(danswer(&tb, m, 3, 0, 202, NULL) == 1);

	/*
	 * A caller that does not read loses its own answers, counted for it (BUS_GET_QLENFULL, as
	 * a multicast copy dropped at its full queue): its callee does not wait. Calls to it fail
	 * at once with EXFULL (LimitsExceeded to the caller), counted the same way, and leave no
	 * call owed. What goes to the master waits.
	 */
	{
		struct bus_qlenfull q;
		socklen_t ql = sizeof(q);
		int two = 2;

		CHECK_OK(set_reply_limits(tb.l, 16, 60000));
		for (i = 0; i < 3; i++)
			CHECK_OK(dcall(&tb, m, 2, 3, 300 + i, 0));
		CHECK_OK(setsockopt(tb.l, SOL_BUS, BUS_SET_MAXQLEN, &two, sizeof(two)));
		for (i = 0; i < 2; i++) {
			n = dmsg_call(m, names[3], 400 + i, 1);
			CHECK_OK(send_raw(tb.c[3], tb.a[2], m, n));
		}
		n = dmsg_call(m, names[3], 402, 1);
		CHECK_ERR(send_raw(tb.c[3], tb.a[2], m, n), EXFULL);
		n = dmsg_call(m, names[3], 403, 0);
		CHECK_ERR(send_raw(tb.c[3], tb.a[2], m, n), EXFULL);
		CHECK_OK(getsockopt(tb.c[2], SOL_BUS, BUS_GET_QLENFULL, &q, &ql));
		CHECK(q.qlen == 2 && q.dropped == 2, "qlen %u dropped %llu", q.qlen,
		      (unsigned long long)q.dropped);
		/* a client's messages to the master wait for room */
		for (i = 0; i < 2; i++) {
			n = dmsg_call(m, names[2], 500 + i, 1);
			CHECK_OK(send_raw(tb.c[2], BUS_MASTER_ADDR, m, n));
		}
		n = dmsg_call(m, names[2], 502, 1);
		CHECK_ERR(send_raw(tb.c[2], BUS_MASTER_ADDR, m, n), EAGAIN);
		for (i = 0; i < 2; i++) {
			n = dmsg_call(m, names[2], 500 + i, 1);
			CHECK_OK(recv_raw(tb.s[2], m, n));
		}
		n = dmsg_reply(m, names[3], 300, NULL);
		CHECK_OK(send_raw(tb.c[3], tb.a[2], m, n));
		n = dmsg_reply(m, names[3], 301, "org.example.Error.Failed");
		CHECK_OK(send_raw(tb.c[3], tb.a[2], m, n));
		CHECK_OK(getsockopt(tb.c[2], SOL_BUS, BUS_GET_QLENFULL, &q, &ql));
		CHECK(q.qlen == 2 && q.dropped == 4, "qlen %u dropped %llu", q.qlen,
		      (unsigned long long)q.dropped);
		/* a dropped answer settled its call: a second answer to it is refused as unrequested */
		n = dmsg_reply(m, names[3], 300, NULL);
		CHECK_OK(send_raw(tb.c[3], tb.a[2], m, n));
		CHECK_OK(getsockopt(tb.c[2], SOL_BUS, BUS_GET_QLENFULL, &q, &ql));
		CHECK(q.dropped == 4, "an answer to a settled call counted as dropped (%llu)",
		      (unsigned long long)q.dropped);
		/* the master's answers wait, as its other messages do */
		n = dmsg_reply(m, "org.freedesktop.DBus", 4343, NULL);
		CHECK_ERR(send_raw(tb.s[2], tb.a[2], m, n), EAGAIN);
		/* once the caller reads, the answer still owed reaches it */
		for (i = 0; i < 2; i++) {
			n = dmsg_call(m, names[3], 400 + i, 1);
			CHECK_OK(recv_raw(tb.c[2], m, n));
		}
		CHECK(danswer(&tb, m, 3, 2, 302, NULL) == 1, "the owed answer did not arrive");
		/* the refused call is owed nothing: an answer to it is unrequested */
		CHECK(danswer(&tb, m, 2, 3, 403, NULL) == 0, "an answer to a refused call arrived");
		two = 1024;
		CHECK_OK(setsockopt(tb.l, SOL_BUS, BUS_SET_MAXQLEN, &two, sizeof(two)));
	}
	tb_close(&tb);
	return 0;
}

static int set_policy(int s, const uint8_t *img, size_t n)
{
	return setsockopt(s, SOL_BUS, BUS_DBUS_SET_POLICY, img, n);
}

static int set_chains(int s, const uint32_t *send, uint32_t ns, const uint32_t *receive, uint32_t nr,
		      const uint32_t *eavesdrop, uint32_t ne)
{
	uint32_t v[64];
	size_t n = pimg_chains(v, send, ns, receive, nr, eavesdrop, ne);

	return setsockopt(s, SOL_BUS, BUS_DBUS_SET_CHAINS, v, n);
}

/* Client i sends client j a message (interface NULL: none, type 1 or 4); 0 if j got it. */
static int dpolicy_send_member(struct tbus *tb, uint8_t *m, int i, int j, uint8_t type, const char *interface,
			       const char *member)
{
	static const char *const names[] = { ":1.1", ":1.2", ":1.3" };
	struct dmsg d = { .type = type, .flags = 1, .serial = 77, .path = "/org/example/Obj",
			  .interface = interface, .member = member, .sender = names[i] };
	size_t n = dmsg_build(m, &d);

	if (send_raw(tb->c[i], tb->a[j], m, n))
		return -1;
	return recv_raw(tb->c[j], m, n);
}

static int dpolicy_send(struct tbus *tb, uint8_t *m, int i, int j, uint8_t type, const char *interface)
{
	return dpolicy_send_member(tb, m, i, j, type, interface, "Ping");
}

/* The length of the D-Bus message at m (its fixed header says). */
static size_t dmsg_length(const uint8_t *m)
{
	uint32_t body, fields;

	memcpy(&body, m + 4, 4);
	memcpy(&fields, m + 12, 4);
	return ((16 + fields + 7) & ~7u) + body;
}

/*
 * Policy: the master installs a compiled image, each client's chains (rule indices) and the names it
 * owns; messages between clients then pass only as dbus-daemon's last-match-wins would let them.
 */
static int t_dbus_policy_body(uint8_t *m)
{
	static const struct prule rules[] = {
		{ PIMG_SEND, PIMG_ALLOW, 0, 0, NULL, NULL, NULL },				/* 0 */
		{ PIMG_SEND, PIMG_DENY, 0, 0, "org.example.Secret", NULL, NULL },		/* 1 */
		{ PIMG_SEND, PIMG_DENY, 0, 0, NULL, "org.example.Forbidden", NULL },		/* 2 */
		{ PIMG_RECEIVE, PIMG_ALLOW, 0, 0, NULL, NULL, NULL },				/* 3 */
		{ PIMG_RECEIVE, PIMG_DENY, 0, 4, ":1.3", NULL, NULL },				/* 4 */
		{ PIMG_RECEIVE, PIMG_ALLOW, PIMG_EAVESDROP, 0, NULL, NULL, NULL },		/* 5 */
	};
	/* the reload: the same without rule 1 */
	static const struct prule reloaded[] = {
		{ PIMG_SEND, PIMG_ALLOW, 0, 0, NULL, NULL, NULL },
		{ PIMG_SEND, PIMG_DENY, 0, 0, NULL, "org.example.Forbidden", NULL },
		{ PIMG_RECEIVE, PIMG_ALLOW, 0, 0, NULL, NULL, NULL },
	};
	static const char *const names[] = { ":1.1", ":1.2", ":1.3" };
	static const char two_names[] = "org.example.Secret\0org.a.B";
	static const uint32_t send_all[] = { 0, 1, 2 }, allow_send[] = { 0 }, allow_receive[] = { 3 },
		receive_but_13[] = { 3, 4 }, eavesdrop[] = { 5 }, bad[] = { 99 }, none[] = { 0 },
		reloaded_send[] = { 0, 1 }, reloaded_receive[] = { 2 };
	const char *allowed = "org.example.Allowed", *forbidden = "org.example.Forbidden";
	uint8_t img[2048], zero[64] = { 0 };
	struct tbus tb;
	int monitor_flags = 1 | BUS_EAVESDROP_MONITOR;
	uint32_t v[8];
	size_t n;
	int i;

	CHECK_OK(tb_open_proto(&tb, "@bus-dbus-policy", 3, 1, BUS_PROTO_DBUS));
	for (i = 0; i < 3; i++)
		CHECK_OK(set_name(tb.s[i], names[i]));
	/* no image: no policy */
	CHECK_OK(dpolicy_send(&tb, m, 0, 1, 1, forbidden));
	CHECK_ERR(set_chains(tb.s[0], allow_send, 1, allow_receive, 1, none, 0), ENOENT);

	/* the image: the bus's, checked, the master's to set */
	n = pimg_build(img, rules, 6);
	CHECK_ERR(set_policy(tb.s[0], img, n), EINVAL);
	CHECK_ERR(set_policy(tb.c[0], img, n), EPERM);
	CHECK_ERR(set_policy(tb.l, zero, sizeof(zero)), EINVAL);
	CHECK_ERR(set_policy(tb.l, img, n - 1), EINVAL);
	img[40 + 52] = 9;	/* rule 1's kind */
	CHECK_ERR(set_policy(tb.l, img, n), EINVAL);
	n = pimg_build(img, rules, 6);
	CHECK_OK(set_policy(tb.l, img, n));
	/* a client without chains is denied everything */
	CHECK_ERR(dpolicy_send(&tb, m, 0, 1, 1, allowed), EACCES);
	CHECK(no_message(tb.c[1], 20), "a message without chains arrived");

	/* chains name rules of their hook's kind in the image */
	CHECK_ERR(set_chains(tb.s[0], allow_receive, 1, allow_receive, 1, none, 0), EINVAL);
	CHECK_ERR(set_chains(tb.s[0], allow_send, 1, allow_send, 1, none, 0), EINVAL);
	CHECK_ERR(set_chains(tb.s[0], bad, 1, allow_receive, 1, none, 0), EINVAL);
	CHECK_ERR(set_chains(tb.l, allow_send, 1, allow_receive, 1, none, 0), EINVAL);
	pimg_chains(v, allow_send, 1, allow_receive, 1, none, 0);
	v[3] = 1;
	CHECK_ERR(setsockopt(tb.s[0], SOL_BUS, BUS_DBUS_SET_CHAINS, v, 24), EINVAL);
	v[3] = 0;
	CHECK_ERR(setsockopt(tb.s[0], SOL_BUS, BUS_DBUS_SET_CHAINS, v, 20), EINVAL);
	CHECK_ERR(setsockopt(tb.s[0], SOL_BUS, BUS_DBUS_SET_CHAINS, v, 8), EINVAL);
	CHECK_OK(set_chains(tb.s[0], send_all, 3, allow_receive, 1, none, 0));
	CHECK_OK(set_chains(tb.s[1], allow_send, 1, receive_but_13, 2, none, 0));
	CHECK_OK(set_chains(tb.s[2], allow_send, 1, allow_receive, 1, none, 0));

	/* allowed both ways: a call and its requested answer */
	CHECK_OK(dcall(&tb, m, 2, 1, 5, 0));
	CHECK(danswer(&tb, m, 1, 2, 5, NULL) == 1, "an allowed answer did not arrive");
	/* a deny rule naming an interface also catches a message without one (dbus-daemon's rule) */
	CHECK_ERR(dpolicy_send(&tb, m, 0, 1, 1, forbidden), EACCES);
	CHECK_ERR(dpolicy_send(&tb, m, 0, 1, 1, NULL), EACCES);
	CHECK_OK(dpolicy_send(&tb, m, 0, 1, 1, allowed));
	CHECK_OK(dpolicy_send(&tb, m, 2, 1, 1, forbidden));	/* :1.3 has no such rule */
	/* send rules about the recipient's names, as the master says it owns them */
	CHECK_OK(setsockopt(tb.s[1], SOL_BUS, BUS_DBUS_SET_NAMES, two_names, sizeof(two_names)));
	CHECK_ERR(dpolicy_send(&tb, m, 0, 1, 1, allowed), EACCES);
	CHECK(no_message(tb.c[1], 20), "a denied call arrived");
	CHECK_OK(dpolicy_send(&tb, m, 2, 1, 1, allowed));
	CHECK_OK(setsockopt(tb.s[1], SOL_BUS, BUS_DBUS_SET_NAMES, "", 0));
	CHECK_OK(dpolicy_send(&tb, m, 0, 1, 1, allowed));
	CHECK_ERR(setsockopt(tb.s[1], SOL_BUS, BUS_DBUS_SET_NAMES, "org..x", 7), EINVAL);
	CHECK_ERR(setsockopt(tb.s[1], SOL_BUS, BUS_DBUS_SET_NAMES, ":1.9", 5), EINVAL);
	CHECK_ERR(setsockopt(tb.s[1], SOL_BUS, BUS_DBUS_SET_NAMES, "org.a.B", 7), EINVAL);
	CHECK_ERR(setsockopt(tb.s[1], SOL_BUS, BUS_DBUS_SET_NAMES, "\0", 1), EINVAL);
	CHECK_ERR(setsockopt(tb.l, SOL_BUS, BUS_DBUS_SET_NAMES, "org.a.B", 8), EINVAL);
	/* receive rules about the sender: :1.2 takes no signal from :1.3, unicast or multicast */
	CHECK_ERR(dpolicy_send(&tb, m, 2, 1, 4, allowed), EACCES);
	CHECK_OK(dpolicy_send(&tb, m, 0, 1, 4, allowed));
	CHECK_OK(dpolicy_send(&tb, m, 2, 0, 4, allowed));
	CHECK_OK(add_match(tb.s[0], 4, NULL, NULL));
	CHECK_OK(add_match(tb.s[1], 4, NULL, NULL));
	n = dmsg_signal(m, names[2]);
	CHECK_OK(send_raw(tb.c[2], BUS_ADDR(0, BUS_MULTICAST_CLIENT), m, n));
	CHECK_OK(recv_raw(tb.c[0], m, n));
	CHECK(no_message(tb.c[1], 20), "a denied multicast copy arrived");

	/* an eavesdropper's copy needs its eavesdrop rules */
	CHECK_OK(setsockopt(tb.s[2], SOL_BUS, BUS_SET_EAVESDROP, NULL, 0));
	CHECK_OK(dpolicy_send(&tb, m, 0, 1, 1, allowed));
	CHECK(no_message(tb.c[2], 20), "an eavesdropper without eavesdrop rules got a copy");
	/* ... unless it is the master's monitor, whom the master admitted */
	CHECK_OK(setsockopt(tb.s[2], SOL_BUS, BUS_SET_EAVESDROP, &monitor_flags, sizeof(monitor_flags)));
	CHECK_OK(dpolicy_send(&tb, m, 0, 1, 1, allowed));
	CHECK_OK(recv_raw(tb.c[2], m, dmsg_length(m)));
	CHECK_OK(setsockopt(tb.s[2], SOL_BUS, BUS_SET_EAVESDROP, NULL, 0));
	CHECK_OK(set_chains(tb.s[2], allow_send, 1, allow_receive, 1, eavesdrop, 1));
	CHECK_OK(dpolicy_send(&tb, m, 0, 1, 1, allowed));
	CHECK_OK(recv_raw(tb.c[2], m, dmsg_length(m)));
	CHECK_OK(setsockopt(tb.s[2], SOL_BUS, BUS_UNSET_EAVESDROP, NULL, 0));

	/* a reload: chains keep the image they were made for until the master replaces them */
	CHECK_OK(setsockopt(tb.s[1], SOL_BUS, BUS_DBUS_SET_NAMES, "org.example.Secret", 19));
	n = pimg_build(img, reloaded, 3);
	CHECK_OK(set_policy(tb.l, img, n));
	CHECK_ERR(dpolicy_send(&tb, m, 0, 1, 1, allowed), EACCES);
	CHECK_OK(set_chains(tb.s[0], reloaded_send, 2, reloaded_receive, 1, none, 0));
	CHECK_OK(dpolicy_send(&tb, m, 0, 1, 1, allowed));	/* :1.2 is still on the first image */
	CHECK_ERR(dpolicy_send(&tb, m, 0, 1, 1, forbidden), EACCES);
	CHECK_ERR(set_chains(tb.s[1], send_all, 3, allow_receive, 1, none, 0), EINVAL);

	/*
	 * At a full queue policy is asked first, as dbus-daemon asks its rules before it looks at
	 * the destination's queue: what policy refuses fails with EACCES, not EXFULL, and is not
	 * counted as a drop.
	 */
	{
		struct dmsg d = { .type = 1, .flags = 1, .serial = 78, .path = "/org/example/Obj",
				  .member = "Ping", .sender = names[0] };
		struct bus_qlenfull before, after;
		socklen_t ql = sizeof(before);
		int one = 1;

		CHECK_OK(getsockopt(tb.c[1], SOL_BUS, BUS_GET_QLENFULL, &before, &ql));
		CHECK_OK(setsockopt(tb.l, SOL_BUS, BUS_SET_MAXQLEN, &one, sizeof(one)));
		d.interface = allowed;
		n = dmsg_build(m, &d);
		CHECK_OK(send_raw(tb.c[0], tb.a[1], m, n));
		CHECK_ERR(send_raw(tb.c[0], tb.a[1], m, n), EXFULL);
		d.interface = forbidden;
		n = dmsg_build(m, &d);
		CHECK_ERR(send_raw(tb.c[0], tb.a[1], m, n), EACCES);
		CHECK_OK(getsockopt(tb.c[1], SOL_BUS, BUS_GET_QLENFULL, &after, &ql));
		CHECK(after.qlen == 1 && after.dropped == before.dropped + 1,
		      "qlen %u, %llu dropped (%llu before)", after.qlen,
		      (unsigned long long)after.dropped, (unsigned long long)before.dropped);
		d.interface = allowed;
		n = dmsg_build(m, &d);
		CHECK_OK(recv_raw(tb.c[1], m, n));
		one = 1024;
		CHECK_OK(setsockopt(tb.l, SOL_BUS, BUS_SET_MAXQLEN, &one, sizeof(one)));
	}

	/* an empty image removes policy */
	CHECK_OK(set_policy(tb.l, NULL, 0));
	CHECK_OK(dpolicy_send(&tb, m, 0, 1, 1, forbidden));
	tb_close(&tb);
	return 0;
}

/*
 * A sender keeps policy's verdicts on its last unicasts (docs/kernel.md, "Verdict cache"). A cached
 * verdict is used only for a message with the same facts to the same client, and no longer once the
 * image, a client's chains or its names change; messages whose fields do not fit the cache's key are
 * judged each time, with the same result.
 */
static int t_dbus_verdict_cache_body(uint8_t *m)
{
	char long_allowed[160], long_denied[160];
	struct prule rules[] = {
		{ PIMG_SEND, PIMG_ALLOW, 0, 0, NULL, NULL, NULL },				/* 0 */
		{ PIMG_SEND, PIMG_DENY, 0, 0, NULL, "org.example.Forbidden", NULL },		/* 1 */
		{ PIMG_SEND, PIMG_DENY, 0, 4, NULL, "org.example.Quiet", NULL },		/* 2 */
		{ PIMG_SEND, PIMG_DENY, 0, 0, NULL, long_denied, NULL },			/* 3 */
		{ PIMG_SEND, PIMG_DENY, 0, 0, "org.example.Secret", NULL, NULL },		/* 4 */
		{ PIMG_RECEIVE, PIMG_ALLOW, 0, 0, NULL, NULL, NULL },				/* 5 */
		{ PIMG_RECEIVE, PIMG_DENY, 0, 0, NULL, NULL, NULL },				/* 6 */
	};
	static const char *const names[] = { ":1.1", ":1.2", ":1.3" };
	static const uint32_t send[] = { 0, 1, 2, 3, 4 }, receive[] = { 5 }, receive_none[] = { 5, 6 },
		none[] = { 0 };
	const char *allowed = "org.example.Allowed", *forbidden = "org.example.Forbidden";
	const char *quiet = "org.example.Quiet";
	uint8_t img[4096];
	struct tbus tb;
	int i, k;

	/* interfaces longer than the key holds: one a rule denies, one no rule names */
	memset(long_allowed, 'a', sizeof(long_allowed));
	memcpy(long_allowed, "org.example.", 12);
	long_allowed[sizeof(long_allowed) - 1] = '\0';
	memcpy(long_denied, long_allowed, sizeof(long_denied));
	long_denied[sizeof(long_denied) - 2] = 'd';

	CHECK_OK(tb_open_proto(&tb, "@bus-dbus-vcache", 3, 1, BUS_PROTO_DBUS));
	for (i = 0; i < 3; i++)
		CHECK_OK(set_name(tb.s[i], names[i]));
	CHECK_OK(set_policy(tb.l, img, pimg_build(img, rules, 7)));
	for (i = 0; i < 3; i++)
		CHECK_OK(set_chains(tb.s[i], send, 5, receive, 1, none, 0));

	/* the same messages again and again, interleaved, to one client and to another */
	for (k = 0; k < 3; k++) {
		CHECK_OK(dpolicy_send(&tb, m, 0, 1, 1, allowed));
		CHECK_ERR(dpolicy_send(&tb, m, 0, 1, 1, forbidden), EACCES);
		CHECK_OK(dpolicy_send(&tb, m, 0, 2, 1, allowed));
		CHECK_ERR(dpolicy_send(&tb, m, 0, 2, 1, NULL), EACCES);	/* no interface: caught too */
		/* the message's type is part of what is judged */
		CHECK_OK(dpolicy_send(&tb, m, 0, 1, 1, quiet));
		CHECK_ERR(dpolicy_send(&tb, m, 0, 1, 4, quiet), EACCES);
		CHECK_OK(dpolicy_send(&tb, m, 0, 1, 4, allowed));
		/* too long for the key: judged without the cache */
		CHECK_OK(dpolicy_send(&tb, m, 0, 1, 1, long_allowed));
		CHECK_ERR(dpolicy_send(&tb, m, 0, 1, 1, long_denied), EACCES);
	}
	CHECK(no_message(tb.c[1], 20) && no_message(tb.c[2], 20), "a denied message arrived");

	/* the receiver's chains change: what was cached as allowed is refused, then allowed again */
	CHECK_OK(dpolicy_send(&tb, m, 0, 1, 1, allowed));
	CHECK_OK(set_chains(tb.s[1], send, 5, receive_none, 2, none, 0));
	CHECK_ERR(dpolicy_send(&tb, m, 0, 1, 1, allowed), EACCES);
	CHECK_OK(set_chains(tb.s[1], send, 5, receive, 1, none, 0));
	CHECK_OK(dpolicy_send(&tb, m, 0, 1, 1, allowed));
	/* ... the receiver's names */
	CHECK_OK(setsockopt(tb.s[1], SOL_BUS, BUS_DBUS_SET_NAMES, "org.example.Secret", 19));
	CHECK_ERR(dpolicy_send(&tb, m, 0, 1, 1, allowed), EACCES);
	CHECK_OK(setsockopt(tb.s[1], SOL_BUS, BUS_DBUS_SET_NAMES, "", 0));
	CHECK_OK(dpolicy_send(&tb, m, 0, 1, 1, allowed));
	/* ... the sender's chains */
	CHECK_OK(set_chains(tb.s[0], none, 0, receive, 1, none, 0));
	CHECK_ERR(dpolicy_send(&tb, m, 0, 1, 1, allowed), EACCES);
	CHECK_OK(set_chains(tb.s[0], send, 5, receive, 1, none, 0));
	CHECK_OK(dpolicy_send(&tb, m, 0, 1, 1, allowed));
	/* ... the image: a new one denies what the old one allowed, once the chains are made for it */
	rules[1].interface = allowed;
	CHECK_OK(set_policy(tb.l, img, pimg_build(img, rules, 7)));
	for (i = 0; i < 3; i++)
		CHECK_OK(set_chains(tb.s[i], send, 5, receive, 1, none, 0));
	CHECK_ERR(dpolicy_send(&tb, m, 0, 1, 1, allowed), EACCES);
	CHECK_OK(dpolicy_send(&tb, m, 0, 1, 1, forbidden));
	/*
	 * During a reload, chains still made for the old image are asked each time: the old image names
	 * a member, the new one none, so a key of the new image's fields would not tell the two apart.
	 */
	rules[1].member = "Secret";	/* and interface Allowed */
	CHECK_OK(set_policy(tb.l, img, pimg_build(img, rules, 7)));
	for (i = 0; i < 3; i++)
		CHECK_OK(set_chains(tb.s[i], send, 5, receive, 1, none, 0));
	rules[1].member = NULL;
	rules[1].interface = forbidden;
	CHECK_OK(set_policy(tb.l, img, pimg_build(img, rules, 7)));
	for (k = 0; k < 2; k++) {
		CHECK_OK(dpolicy_send_member(&tb, m, 0, 1, 1, allowed, "Ping"));
		CHECK_ERR(dpolicy_send_member(&tb, m, 0, 1, 1, allowed, "Secret"), EACCES);
	}
	CHECK(no_message(tb.c[1], 20), "a message the old chains deny arrived");
	/* ... and no image at all */
	CHECK_OK(set_policy(tb.l, NULL, 0));
	CHECK_OK(dpolicy_send(&tb, m, 0, 1, 1, allowed));
	tb_close(&tb);
	return 0;
}

/*
 * Before the master joins a client, their conversation (SASL lines, Hello) is not D-Bus traffic:
 * it passes unparsed, and eavesdroppers do not see it. Calls and replies the master forwards for
 * a client (as SENDER) are tracked like the client's own.
 */
static int t_dbus_master_body(uint8_t *m)
{
	static const char auth[] = "\0AUTH EXTERNAL 30\r\n", ok[] = "OK 0123456789abcdef\r\n";
	static const char *const names[] = { ":1.1", ":1.2", ":1.3" };
	int monitor_flags = 1 | BUS_EAVESDROP_MONITOR, bad_flags = 4;
	struct tbus tb;
	size_t n;
	int i;

	CHECK_OK(tb_open_proto(&tb, "@bus-dbus-master", 3, 0, BUS_PROTO_DBUS));
	for (i = 1; i < 3; i++) {
		CHECK_OK(set_name(tb.s[i], names[i]));
		CHECK_OK(bus_join(tb.s[i]));
	}
	CHECK_OK(setsockopt(tb.s[2], SOL_BUS, BUS_SET_EAVESDROP, NULL, 0));
	/* authentication: both ways, unparsed, unseen by the eavesdropper */
	CHECK_OK(send_raw(tb.c[0], BUS_MASTER_ADDR, (const uint8_t *)auth, sizeof(auth) - 1));
	CHECK_OK(recv_raw(tb.s[0], (const uint8_t *)auth, sizeof(auth) - 1));
	CHECK_OK(send_raw(tb.s[0], tb.a[0], (const uint8_t *)ok, sizeof(ok) - 1));
	CHECK_OK(recv_raw(tb.c[0], (const uint8_t *)ok, sizeof(ok) - 1));
	CHECK(no_message(tb.c[2], 50), "an eavesdropper saw a client authenticate");
	/* ... but only with the master: a master-side socket sending a joined client garbage fails */
	CHECK_ERR(send_raw(tb.s[0], tb.a[1], (const uint8_t *)ok, sizeof(ok) - 1), EBADMSG);
	/* once joined, a client speaks D-Bus to the master too, and is seen */
	CHECK_OK(set_name(tb.s[0], names[0]));
	CHECK_OK(bus_join(tb.s[0]));
	CHECK_ERR(send_raw(tb.c[0], BUS_MASTER_ADDR, (const uint8_t *)auth, sizeof(auth) - 1), EBADMSG);
	CHECK_ERR(send_raw(tb.s[0], tb.a[0], (const uint8_t *)ok, sizeof(ok) - 1), EBADMSG);
	n = dmsg_signal(m, ":1.1");
	CHECK_OK(send_raw(tb.c[0], BUS_MASTER_ADDR, m, n));
	CHECK_OK(recv_raw(tb.s[0], m, n));
	CHECK_OK(recv_raw(tb.c[2], m, n));
	/* ... unless it eavesdrops on the clients only: then on neither way of the master's traffic */
	CHECK_ERR(setsockopt(tb.s[2], SOL_BUS, BUS_SET_EAVESDROP, &bad_flags, sizeof(bad_flags)), EINVAL);
	CHECK_OK(setsockopt(tb.s[2], SOL_BUS, BUS_SET_EAVESDROP, &monitor_flags, sizeof(monitor_flags)));
	CHECK_OK(send_raw(tb.c[0], BUS_MASTER_ADDR, m, n));
	CHECK_OK(recv_raw(tb.s[0], m, n));
	CHECK_OK(send_raw(tb.s[0], tb.a[0], m, n));
	CHECK_OK(recv_raw(tb.c[0], m, n));
	CHECK(no_message(tb.c[2], 20), "a clients-only eavesdropper saw the master's traffic");
	CHECK_OK(send_raw(tb.c[0], tb.a[1], m, n));
	CHECK_OK(recv_raw(tb.c[1], m, n));
	CHECK_OK(recv_raw(tb.c[2], m, n));
	CHECK_OK(setsockopt(tb.s[2], SOL_BUS, BUS_SET_EAVESDROP, NULL, 0));

	/* a call the master forwards for :1.1 is answered to :1.1 directly, once */
	n = dmsg_call(m, names[0], 30, 0);
	CHECK_OK(send_raw(tb.s[1], tb.a[1], m, n));
	CHECK_OK(recv_raw(tb.c[1], m, n));
	CHECK(danswer(&tb, m, 1, 0, 30, NULL) == 1, "the answer to a forwarded call did not arrive");
	CHECK(danswer(&tb, m, 1, 0, 30, NULL) == 0, "a second answer to a forwarded call arrived");
	/* the bus's own calls are not: their answers go to the master */
	n = dmsg_call(m, "org.freedesktop.DBus", 31, 0);
	CHECK_OK(send_raw(tb.s[1], tb.a[1], m, n));
	CHECK_OK(recv_raw(tb.c[1], m, n));
	CHECK(danswer(&tb, m, 1, 0, 31, NULL) == 0, "an answer to the bus's call reached a client");
	/* nor are forwarded calls that want no reply */
	n = dmsg_call(m, names[0], 32, 1);
	CHECK_OK(send_raw(tb.s[1], tb.a[1], m, n));
	CHECK_OK(recv_raw(tb.c[1], m, n));
	CHECK(danswer(&tb, m, 1, 0, 32, NULL) == 0, "a reply to a forwarded no-reply call arrived");
	/* a reply the master forwards for the callee settles the call */
	CHECK_OK(dcall(&tb, m, 0, 1, 40, 0));
	n = dmsg_reply(m, names[1], 40, NULL);
	CHECK_OK(send_raw(tb.s[0], tb.a[0], m, n));
	CHECK_OK(recv_raw(tb.c[0], m, n));
	CHECK(danswer(&tb, m, 1, 0, 40, NULL) == 0, "a call answered through the master was answered twice");
	/* forwarded calls count against the caller's limit */
	CHECK_OK(set_reply_limits(tb.l, 1, 60000));
	n = dmsg_call(m, names[0], 50, 0);
	CHECK_OK(send_raw(tb.s[1], tb.a[1], m, n));
	CHECK_OK(recv_raw(tb.c[1], m, n));
	n = dmsg_call(m, names[0], 51, 0);
	CHECK_ERR(send_raw(tb.s[1], tb.a[1], m, n), EDQUOT);
	CHECK(danswer(&tb, m, 1, 0, 50, NULL) == 1);
	/* a forwarded call whose caller has left: delivered, answered to nobody */
	n = dmsg_call(m, names[0], 52, 0);
	close(tb.c[0]);
	close(tb.s[0]);
	tb.c[0] = tb.s[0] = -1;
	CHECK_OK(send_raw(tb.s[1], tb.a[1], m, n));
	CHECK_OK(recv_raw(tb.c[1], m, n));
	tb_close(&tb);
	return 0;
}

static int t_dbus(void)
{
	uint8_t *m = malloc(4096);
	int l, rc;

	CHECK(m);
	/* no module, no D-Bus bus: it would go unchecked */
	errno = 0;
	l = bus_master_proto("@bus-dbus-nomod", 4, BUS_PROTO_DBUS);
	CHECK(l < 0 && errno == EPROTONOSUPPORT, "bind without af_bus_dbus.ko: %d", l);
	CHECK(system("insmod /af_bus_dbus.ko") == 0, "insmod af_bus_dbus.ko");
	rc = t_dbus_body(m);
	if (!rc)
		rc = t_dbus_replies_body(m);
	if (!rc)
		rc = t_dbus_matches_body(m);
	if (!rc)
		rc = t_dbus_master_body(m);
	if (!rc)
		rc = t_dbus_policy_body(m);
	if (!rc)
		rc = t_dbus_verdict_cache_body(m);
	free(m);
	if (rc)
		return rc;
	CHECK(system("rmmod af_bus_dbus") == 0, "rmmod af_bus_dbus after the bus closed");
	PASS("header checks, trusted SENDER, names per client, pending replies, match records, "
	     "the master's authentication and forwarding, policy and its cached verdicts, module lifetime");
}

/*
 * Part 5: randomized operations on a D-Bus bus (af_bus_dbus.ko): a master that names, subscribes,
 * unsubscribes, moves name addresses, changes reply limits and closes connections at random, and
 * clients sending random mixes of signals, calls, replies (to real and made-up calls), spoofed
 * senders and garbage. It must end with no splat, every socket freed and the module unloadable.
 */
static volatile int dstress_stop;
static const char *dstress_path = "/tmp/bus-dstress";
static long dstress_ops[2];

/* the stress test's policy images: the first 2 or all 4 rules */
static const struct prule dstress_rules[] = {
	{ PIMG_SEND, PIMG_ALLOW, 0, 0, NULL, NULL, NULL },
	{ PIMG_RECEIVE, PIMG_ALLOW, 0, 0, NULL, NULL, NULL },
	{ PIMG_SEND, PIMG_DENY, 0, 0, "a.N1", NULL, NULL },
	{ PIMG_RECEIVE, PIMG_DENY, 0, 4, NULL, NULL, "M3" },
};

static void *dstress_master(void *arg)
{
	int l = (int)(long)arg, conns[128], n = 0, i, next = 1, maxq = 16;
	unsigned int seed = 7;
	char buf[512], name[32];
	uint8_t img[1024];
	uint32_t rules[3];

	fcntl(l, F_SETFL, O_NONBLOCK);
	setsockopt(l, SOL_BUS, BUS_SET_MAXQLEN, &maxq, sizeof(maxq));
	while (!dstress_stop) {
		int s = accept4(l, NULL, NULL, SOCK_NONBLOCK);

		if (s >= 0) {
			if (n == 128) {
				close(s);
			} else {
				snprintf(name, sizeof(name), ":1.%d", next++ % 40 + 1);
				set_name(s, name);	/* names repeat across connections on purpose */
				if (rand_r(&seed) % 8)
					bus_join(s);
				conns[n++] = s;
			}
		}
		for (i = 0; i < n; i++) {
			const char *keys[6] = { NULL, NULL, NULL, NULL, NULL, NULL };
			char key[24];
			ssize_t r = recv(conns[i], buf, sizeof(buf), MSG_DONTWAIT);

			if (r == 0 || rand_r(&seed) % 256 == 0) {
				close(conns[i]);
				conns[i--] = conns[--n];
				continue;
			}
			switch (rand_r(&seed) % 20) {
			case 0:
			case 1:
				snprintf(key, sizeof(key), "M%u", rand_r(&seed) % 8);
				keys[2] = key;
				add_match(conns[i], 4, keys, rand_r(&seed) % 2 ? "a.b" : NULL);
				break;
			case 2:
				keys[1] = "org.example.Iface";
				add_match(conns[i], 0, keys, NULL);
				break;
			case 3:
				keys[4] = "/org";
				add_match(conns[i], 0, keys, NULL);
				break;
			case 4:
				snprintf(key, sizeof(key), "M%u", rand_r(&seed) % 8);
				keys[2] = key;
				remove_match(conns[i], 4, keys, NULL);
				break;
			case 5:
				bus_move_addr(conns[i], BUS_ADDR(1, rand_r(&seed) % 8 + 1));
				break;
			case 6:
				if (rand_r(&seed) % 8 == 0)
					set_reply_limits(l, rand_r(&seed) % 4 + 1, rand_r(&seed) % 200 + 1);
				break;
			case 7:
				/* a policy reload now and then: one of two images, or none */
				if (rand_r(&seed) % 16 == 0) {
					uint32_t k = rand_r(&seed) % 3;

					set_policy(l, img, k ? pimg_build(img, dstress_rules, k * 2) : 0);
				}
				break;
			case 8:
				/* chains of valid and invalid indices, for whatever image is installed */
				rules[0] = rand_r(&seed) % 5;
				rules[1] = rand_r(&seed) % 5;
				rules[2] = rand_r(&seed) % 5;
				set_chains(conns[i], rules, rand_r(&seed) % 2, rules + 1, rand_r(&seed) % 2,
					   rules + 2, rand_r(&seed) % 2);
				break;
			case 9:
				snprintf(key, sizeof(key), "a.N%u", rand_r(&seed) % 4);
				setsockopt(conns[i], SOL_BUS, BUS_DBUS_SET_NAMES, key,
					   rand_r(&seed) % 4 ? strlen(key) + 1 : 0);
				break;
			default:
				break;
			}
			/* the master forwards some of what it gets, as the bus would */
			if (r > 0 && rand_r(&seed) % 4 == 0)
				bus_sendto(conns[i], BUS_ADDR(0, BUS_MULTICAST_CLIENT), buf, r, MSG_DONTWAIT);
		}
		dstress_ops[0]++;
		if (s < 0)
			usleep(500);
	}
	for (i = 0; i < n; i++)
		close(conns[i]);
	return NULL;
}

static void *dstress_client(void *arg)
{
	int id = (int)(long)arg;
	unsigned int seed = id * 104729 + 1;
	uint8_t m[2048];
	char sender[32], member[8];
	struct timeval tv = { .tv_sec = 0, .tv_usec = 20000 };

	while (!dstress_stop) {
		int c = bus_connect(dstress_path), k;

		if (c < 0) {
			usleep(1000);
			continue;
		}
		setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		for (k = rand_r(&seed) % 60; k > 0 && !dstress_stop; k--) {
			uint64_t dst;
			size_t n;

			snprintf(sender, sizeof(sender), ":1.%u", rand_r(&seed) % 40 + 1);
			snprintf(member, sizeof(member), "M%u", rand_r(&seed) % 8);
			switch (rand_r(&seed) % 4) {
			case 0:
				dst = BUS_ADDR(0, BUS_MULTICAST_CLIENT);
				break;
			case 1:
				dst = BUS_ADDR(1, rand_r(&seed) % 8 + 1);
				break;
			case 2:
				dst = 0;
				break;
			default:
				dst = BUS_ADDR(0, rand_r(&seed) % 300 + 1);
				break;
			}
			switch (rand_r(&seed) % 6) {
			case 0:
				n = dmsg_signal_arg(m, sender, member, rand_r(&seed) % 2 ? "a.b" : "x");
				break;
			case 1:
				n = dmsg_call(m, rand_r(&seed) % 4 ? sender : NULL, rand_r(&seed) % 16 + 1,
					      rand_r(&seed) % 4 == 0);
				break;
			case 2:
				n = dmsg_reply(m, sender, rand_r(&seed) % 16 + 1,
					       rand_r(&seed) % 2 ? "org.example.Error.E" : NULL);
				break;
			case 3:
				n = dmsg_signal(m, rand_r(&seed) % 2 ? sender : NULL);
				break;
			case 4:
				/* garbage, or a good message cut short */
				n = dmsg_signal(m, sender);
				if (rand_r(&seed) % 2)
					n = rand_r(&seed) % n;
				else
					m[rand_r(&seed) % n] ^= (uint8_t)(rand_r(&seed) | 1);
				break;
			default:
				n = dmsg_signal_arg(m, sender, member, "a.b");
				break;
			}
			bus_sendto(c, dst, m, n, rand_r(&seed) % 4 ? MSG_DONTWAIT : 0);
			while (recv(c, m, sizeof(m), MSG_DONTWAIT) > 0)
				;
			dstress_ops[1]++;
		}
		close(c);
	}
	return NULL;
}

static int t_dbus_stress(void)
{
	long p0, p1 = -1;
	pthread_t mt, ct[6];
	double t0;
	int i, l, round = 0;

	CHECK(system("insmod /af_bus_dbus.ko") == 0, "insmod af_bus_dbus.ko");
	for (i = 0; i < 100 && read_protocols_sockets() != 0; i++)
		usleep(100000);
	p0 = read_protocols_sockets();
	CHECK(p0 >= 0, "cannot read /proc/net/protocols");
	t0 = now_sec();
	/* two master generations, the second started while the first's clients still connect */
	while (now_sec() - t0 < stress_secs / 2.0) {
		double ts = now_sec();

		l = bus_master_proto(dstress_path, 64, BUS_PROTO_DBUS);
		CHECK(l >= 0);
		dstress_stop = 0;
		pthread_create(&mt, NULL, dstress_master, (void *)(long)l);
		for (i = 0; i < 6; i++)
			pthread_create(&ct[i], NULL, dstress_client, (void *)(long)i);
		while (now_sec() - ts < stress_secs / 4.0 && now_sec() - t0 < stress_secs / 2.0)
			usleep(100000);
		close(l);	/* the bus goes while its clients are busy */
		usleep(100000);
		dstress_stop = 1;
		pthread_join(mt, NULL);
		for (i = 0; i < 6; i++)
			pthread_join(ct[i], NULL);
		unlink(dstress_path);
		round++;
	}
	for (i = 0; i < 50; i++) {
		p1 = read_protocols_sockets();
		if (p1 == p0)
			break;
		usleep(100000);
	}
	CHECK(p1 == p0, "AF_BUS sockets %ld -> %ld", p0, p1);
	/* every bus is gone, so the module holds no state and no reference */
	CHECK(system("rmmod af_bus_dbus") == 0, "rmmod af_bus_dbus after the stress");
	PASS("%d rounds, %ld master steps, %ld client sends, AF_BUS sockets %ld->%ld", round, dstress_ops[0],
	     dstress_ops[1], p0, p1);
}

struct test {
	const char *name;
	int (*fn)(void);
	int timeout;
};

static const struct test tests[] = {
	{ "family_param", t_family_param, 30 },
	{ "proc_protocols", t_proc_protocols, 30 },
	{ "bind_listen_accept", t_bind_listen_accept, 30 },
	{ "abstract_path", t_abstract_path, 30 },
	{ "fs_permissions", t_fs_permissions, 30 },
	{ "bind_inuse", t_bind_inuse, 30 },
	{ "unique_addresses", t_unique_addresses, 60 },
	{ "join_gating", t_join_gating, 30 },
	{ "unknown_to_master", t_unknown_to_master, 30 },
	{ "add_del_addr", t_add_del_addr, 30 },
	{ "move_addr", t_move_addr, 120 },
	{ "multicast_basic", t_multicast_basic, 30 },
	{ "eavesdrop", t_eavesdrop, 30 },
	{ "credentials", t_credentials, 30 },
	{ "cred_forgery", t_cred_forgery, 30 },
	{ "scm_security", t_scm_security, 30 },
	{ "fd_unicast", t_fd_unicast, 30 },
	{ "fd_multicast", t_fd_multicast, 30 },
	{ "unicast_queue_full", t_unicast_queue_full, 30 },
	{ "rcvbuf_full_wakeup", t_rcvbuf_full_wakeup, 30 },
	{ "multicast_overflow", t_multicast_overflow, 30 },
	{ "poll", t_poll, 30 },
	{ "client_close", t_client_close, 30 },
	{ "master_close", t_master_close, 30 },
	{ "bad_input", t_bad_input, 30 },
	{ "large_messages", t_large_messages, 60 },
	{ "sendbuf_maxqlen", t_sendbuf_maxqlen, 30 },
	{ "shutdown", t_shutdown, 30 },
	{ "filter", t_filter, 30 },
	{ "unload_busy", t_unload_busy, 30 },
	{ "peek_recv_fds", t_peek_recv_fds, 120 },
	{ "shutdown_connect_race", t_shutdown_connect_race, 120 },
	{ "sendbuf_limits", t_sendbuf_limits, 30 },
	{ "huge_messages", t_huge_messages, 240 },
	{ "mcast_index", t_mcast_index, 120 },
	{ "sender_drops", t_sender_drops, 30 },
	{ "fd_inflight", t_fd_inflight, 30 },
	{ "netns_path", t_netns_path, 30 },
	{ "ioctl_queues", t_ioctl_queues, 30 },
	{ "batched_sends", t_batched_sends, 60 },
	{ "queued", t_queued, 30 },
	{ "recv_flags", t_recv_flags, 30 },
	{ "recv_whole_race", t_recv_whole_race, 120 },
	{ "hooks", t_hooks, 60 },
	{ "dbus", t_dbus, 60 },
	{ "ordering", t_ordering, 300 },
	{ "stress", t_stress, 0 /* stress_secs + 60 */ },
	{ "dbus_stress", t_dbus_stress, 0 /* stress_secs + 60 */ },
};

#define NTESTS ((int)(sizeof(tests) / sizeof(tests[0])))

static void run_test(const struct test *t)
{
	static const char *const verdicts[] = { "PASS", "FAIL", "SKIP" };
	int timeout = t->timeout ? t->timeout : stress_secs + 90;
	int st, verdict;
	double t0 = now_sec();
	pid_t pid;

	memset(detail_buf, 0, DETAIL);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		alarm(timeout);
		_exit(t->fn());
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid) {
		printf("AFBUS-TEST %s FAIL cannot run (errno %d)\n", t->name, errno);
		return;
	}
	detail_buf[DETAIL - 1] = 0;
	if (WIFEXITED(st) && WEXITSTATUS(st) <= 2) {
		verdict = WEXITSTATUS(st);
		printf("AFBUS-TEST %s %s %s [%.1fs]\n", t->name, verdicts[verdict], detail_buf,
		       now_sec() - t0);
	} else if (WIFSIGNALED(st)) {
		printf("AFBUS-TEST %s FAIL killed by signal %d%s [%.1fs]\n", t->name, WTERMSIG(st),
		       WTERMSIG(st) == SIGALRM ? " (timeout)" : "", now_sec() - t0);
	} else {
		printf("AFBUS-TEST %s FAIL exit status %d\n", t->name, WEXITSTATUS(st));
	}
	fflush(stdout);
}

int main(int argc, char **argv)
{
	const char *env = getenv("AFBUS_STRESS_SECS");
	int i, j;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1 && !strcmp(argv[1], "--list")) {
		for (i = 0; i < NTESTS; i++)
			printf("%s\n", tests[i].name);
		return 0;
	}
	if (env && atoi(env) > 0)
		stress_secs = atoi(env);
	detail_buf = mmap(NULL, DETAIL, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (detail_buf == MAP_FAILED)
		return 1;
	if (afbus_family() < 0) {
		for (i = 0; i < NTESTS; i++)
			printf("AFBUS-TEST %s FAIL af_bus not loaded\n", tests[i].name);
		return 1;
	}
	for (i = 0; i < NTESTS; i++) {
		if (argc > 1) {
			for (j = 1; j < argc; j++)
				if (!strcmp(argv[j], tests[i].name))
					break;
			if (j == argc)
				continue;
		}
		run_test(&tests[i]);
	}
	return 0;
}
