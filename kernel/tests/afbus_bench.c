// SPDX-License-Identifier: GPL-2.0
/*
 * afbus_bench — AF_BUS vs AF_UNIX SOCK_SEQPACKET, side by side in the same guest. Not a test: it
 * prints figures only ("AFBUS-BENCH <name> <value> <unit>"). Run by `run-vm-tests.sh --bench`.
 *
 *  latency     one-way latency = round trip / 2 of a ping-pong between two threads (64-byte messages)
 *  throughput  one sender thread, one receiver thread, N messages of 64 B and 4 KiB
 *  multicast   one message to 10 receivers: AF_BUS multicast vs 10 sends on 10 socketpairs;
 *              sender cost per message and time until every receiver has every message
 *  dbus        on a BUS_PROTO_DBUS bus (af_bus_dbus.ko): a signal's sender cost with 5 subscribers
 *              among 5 or 50 connections, and with 10,000 match records installed beside them
 *              (naming members or interfaces, which the module indexes, or only paths, which it walks);
 *              a call's sender cost with no policy and with a system-bus-sized one (250 rules: the
 *              count of Debian 12's system.conf and system.d on a server, most of them allowing
 *              one service's destination and interface, as those files do)
 *
 * All threads are pinned to CPU 0: under TCG, cross-vCPU wake-ups cost whatever the host
 * scheduler makes of them (measured: 0.1 to 4 ms), so the figures compare CPU cost per message.
 * Each figure is the median of REPS runs.
 */
#include "afbus_test_util.h"
#include "dbus_msg.h"
#include "dbus_policy_image.h"

#include <pthread.h>
#include <sched.h>

#define LAT_ITERS 10000
#define TP_MSGS 30000
#define MC_RECEIVERS 10
#define MC_MSGS 5000

#define REPS 5

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* median of REPS runs, with min and max */
static void report_reps(const char *name, double *v, const char *unit)
{
	qsort(v, REPS, sizeof(double), cmp_double);
	printf("AFBUS-BENCH %-36s %12.2f %s (median of %d; min %.2f max %.2f)\n", name, v[REPS / 2],
	       unit, REPS, v[0], v[REPS - 1]);
	fflush(stdout);
}

static void die(const char *what)
{
	printf("AFBUS-BENCH error %s: %s\n", what, strerror(errno));
	exit(1);
}

/* ------------------------------------------------------------------ ping-pong */

struct pp {
	int fd;
	int n;
	size_t size;
};

static void *pong(void *arg)
{
	struct pp *p = arg;
	char buf[4096];
	int i;

	for (i = 0; i < p->n; i++) {
		ssize_t r = recv(p->fd, buf, sizeof(buf), 0);

		if (r <= 0 || send(p->fd, buf, r, 0) != r)
			die("pong");
	}
	return NULL;
}

/* Both sides use send() on a connected socket: AF_BUS clients talk to the master-side socket. */
static double pingpong(int a, int b, int n, size_t size)
{
	struct pp p = { .fd = b, .n = n, .size = size };
	char buf[4096] = { 0 };
	pthread_t t;
	double t0;
	int i;

	pthread_create(&t, NULL, pong, &p);
	t0 = now_sec();
	for (i = 0; i < n; i++) {
		if (send(a, buf, size, 0) != (ssize_t)size)
			die("ping send");
		if (recv(a, buf, sizeof(buf), 0) != (ssize_t)size)
			die("ping recv");
	}
	t0 = now_sec() - t0;
	pthread_join(t, NULL);
	return t0 / n / 2 * 1e6;	/* one-way, microseconds */
}

/* AF_BUS client-to-client ping-pong: both ends are joined clients sending by address. */
struct pp_bus {
	int fd;
	uint64_t peer;
	int n;
};

static void *pong_bus(void *arg)
{
	struct pp_bus *p = arg;
	char buf[4096];
	int i;

	for (i = 0; i < p->n; i++) {
		ssize_t r = recv(p->fd, buf, sizeof(buf), 0);

		if (r <= 0 || bus_sendto(p->fd, p->peer, buf, r, 0) != r)
			die("pong_bus");
	}
	return NULL;
}

static double pingpong_bus(struct tbus *tb, int n, size_t size)
{
	struct pp_bus p = { .fd = tb->c[1], .peer = tb->a[0], .n = n };
	char buf[4096] = { 0 };
	pthread_t t;
	double t0;
	int i;

	pthread_create(&t, NULL, pong_bus, &p);
	t0 = now_sec();
	for (i = 0; i < n; i++) {
		if (bus_sendto(tb->c[0], tb->a[1], buf, size, 0) != (ssize_t)size)
			die("ping_bus send");
		if (recv(tb->c[0], buf, sizeof(buf), 0) != (ssize_t)size)
			die("ping_bus recv");
	}
	t0 = now_sec() - t0;
	pthread_join(t, NULL);
	return t0 / n / 2 * 1e6;
}

/* Ping by address (sendto), pong on the connected socket (send): isolates the cost of msg_name. */
static double pingpong_to_master_by_addr(struct tbus *tb, int n, size_t size)
{
	struct pp p = { .fd = tb->s[0], .n = n, .size = size };
	char buf[4096] = { 0 };
	pthread_t t;
	double t0;
	int i;

	pthread_create(&t, NULL, pong, &p);
	t0 = now_sec();
	for (i = 0; i < n; i++) {
		if (bus_sendto(tb->c[0], BUS_MASTER_ADDR, buf, size, 0) != (ssize_t)size)
			die("ping_addr send");
		if (recv(tb->c[0], buf, sizeof(buf), 0) != (ssize_t)size)
			die("ping_addr recv");
	}
	t0 = now_sec() - t0;
	pthread_join(t, NULL);
	return t0 / n / 2 * 1e6;
}

/* ------------------------------------------------------------------ throughput */

struct sink {
	int fd;
	int n;
	double done;
};

static void *sink(void *arg)
{
	struct sink *s = arg;
	char buf[8192];
	int i;

	for (i = 0; i < s->n; i++)
		if (recv(s->fd, buf, sizeof(buf), 0) <= 0)
			die("sink recv");
	s->done = now_sec();
	return NULL;
}

static double throughput(int tx, int rx, uint64_t dst, int use_addr, int n, size_t size)
{
	struct sink s = { .fd = rx, .n = n };
	char buf[8192] = { 0 };
	pthread_t t;
	double t0;
	int i;

	pthread_create(&t, NULL, sink, &s);
	t0 = now_sec();
	for (i = 0; i < n; i++) {
		ssize_t r = use_addr ? bus_sendto(tx, dst, buf, size, 0) : send(tx, buf, size, 0);

		if (r != (ssize_t)size)
			die("throughput send");
	}
	pthread_join(t, NULL);
	return n / (s.done - t0);
}

/* ------------------------------------------------------------------ multicast */

static double mc_send_cost, mc_total;

static void multicast_bus(void)
{
	struct sink s[MC_RECEIVERS];
	pthread_t t[MC_RECEIVERS];
	struct tbus tb;
	int maxq = 65536, rcv = 32 << 20, i;
	char buf[64] = { 0 };
	double t0, last = 0;

	if (tb_open(&tb, "/tmp/bench-mc", MC_RECEIVERS + 1, 1))
		die("mc bus");
	setsockopt(tb.l, SOL_BUS, BUS_SET_MAXQLEN, &maxq, sizeof(maxq));
	for (i = 0; i < MC_RECEIVERS; i++) {
		setsockopt(tb.c[i + 1], SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv));
		s[i].fd = tb.c[i + 1];
		s[i].n = MC_MSGS;
		pthread_create(&t[i], NULL, sink, &s[i]);
	}
	t0 = now_sec();
	for (i = 0; i < MC_MSGS; i++)
		if (bus_sendto(tb.c[0], BUS_ADDR(0, BUS_MULTICAST_CLIENT), buf, sizeof(buf), 0) < 0)
			die("mc send");
	mc_send_cost = (now_sec() - t0) / MC_MSGS * 1e6;
	for (i = 0; i < MC_RECEIVERS; i++) {
		pthread_join(t[i], NULL);
		if (s[i].done > last)
			last = s[i].done;
	}
	mc_total = (last - t0) / MC_MSGS * 1e6;
	tb_close(&tb);
}

static void multicast_pairs(void)
{
	struct sink s[MC_RECEIVERS];
	pthread_t t[MC_RECEIVERS];
	int sp[MC_RECEIVERS][2], rcv = 32 << 20, i, j;
	char buf[64] = { 0 };
	double t0, last = 0;

	for (i = 0; i < MC_RECEIVERS; i++) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp[i]))
			die("socketpair");
		setsockopt(sp[i][1], SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv));
		setsockopt(sp[i][0], SOL_SOCKET, SO_SNDBUFFORCE, &rcv, sizeof(rcv));
		s[i].fd = sp[i][1];
		s[i].n = MC_MSGS;
		pthread_create(&t[i], NULL, sink, &s[i]);
	}
	t0 = now_sec();
	for (i = 0; i < MC_MSGS; i++)
		for (j = 0; j < MC_RECEIVERS; j++)
			if (send(sp[j][0], buf, sizeof(buf), 0) < 0)
				die("pair send");
	mc_send_cost = (now_sec() - t0) / MC_MSGS * 1e6;
	for (i = 0; i < MC_RECEIVERS; i++) {
		pthread_join(t[i], NULL);
		if (s[i].done > last)
			last = s[i].done;
		close(sp[i][0]);
		close(sp[i][1]);
	}
	mc_total = (last - t0) / MC_MSGS * 1e6;
}

/* ------------------------------------------------------------------ D-Bus multicast */

static int dbus_subscribe_path(int s, const char *interface, const char *member, const char *path)
{
	const char *keys[6] = { NULL, interface, member, path, NULL, NULL };
	uint8_t rec[256];
	size_t n = dmatch_record(rec, 4, keys, NULL);

	return setsockopt(s, SOL_BUS, BUS_DBUS_ADD_MATCH, rec, n);
}

static int dbus_subscribe(int s, const char *interface, const char *member)
{
	return dbus_subscribe_path(s, interface, member, NULL);
}

/*
 * Sender cost (us per message) of a signal multicast on a D-Bus bus to `receivers` connections of
 * which the first `matching` subscribe to it (the others to another member), with `extra` match
 * records that never match on one more connection, naming a member (extra_key 'm', indexed), an
 * interface ('i', indexed) or only a path ('p', walked for every signal).
 */
static double dbus_mc_cost(int receivers, int matching, int extra, char extra_key)
{
	struct sink s[TB_MAX];
	pthread_t t[TB_MAX];
	struct tbus tb;
	int maxq = 65536, rcv = 32 << 20, i;
	char name[32], key[32];
	uint8_t msg[512];
	size_t n;
	double t0, cost;

	if (tb_open_proto(&tb, "/tmp/bench-dbus", receivers + 2, 1, BUS_PROTO_DBUS))
		die("dbus bus");
	setsockopt(tb.l, SOL_BUS, BUS_SET_MAXQLEN, &maxq, sizeof(maxq));
	for (i = 0; i < receivers + 2; i++) {
		snprintf(name, sizeof(name), ":1.%d", i + 1);
		if (setsockopt(tb.s[i], SOL_BUS, BUS_DBUS_SET_NAME, name, strlen(name)))
			die("dbus name");
	}
	for (i = 1; i <= receivers; i++)
		if (dbus_subscribe(tb.s[i], "org.example.Iface", i <= matching ? "Changed" : "Other"))
			die("dbus subscribe");
	for (i = 0; i < extra; i++) {
		int r;

		if (extra_key == 'm') {
			snprintf(key, sizeof(key), "M%d", i);
			r = dbus_subscribe(tb.s[receivers + 1], NULL, key);
		} else if (extra_key == 'i') {
			snprintf(key, sizeof(key), "org.example.I%d", i);
			r = dbus_subscribe(tb.s[receivers + 1], key, NULL);
		} else {
			snprintf(key, sizeof(key), "/p/%d", i);
			r = dbus_subscribe_path(tb.s[receivers + 1], NULL, NULL, key);
		}
		if (r)
			die("dbus extra records");
	}
	for (i = 0; i < matching; i++) {
		setsockopt(tb.c[i + 1], SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv));
		s[i].fd = tb.c[i + 1];
		s[i].n = MC_MSGS;
		pthread_create(&t[i], NULL, sink, &s[i]);
	}
	n = dmsg_signal_arg(msg, ":1.1", "Changed", "x");
	t0 = now_sec();
	for (i = 0; i < MC_MSGS; i++)
		if (bus_sendto(tb.c[0], BUS_ADDR(0, BUS_MULTICAST_CLIENT), msg, n, 0) < 0)
			die("dbus mc send");
	cost = (now_sec() - t0) / MC_MSGS * 1e6;
	for (i = 0; i < matching; i++)
		pthread_join(t[i], NULL);
	tb_close(&tb);
	return cost;
}

/*
 * Sender cost (us per message) of a no-reply method call from one client to another on a D-Bus bus,
 * with no policy or with `services` services' rules (allow send_destination + send_interface, after
 * dbus-daemon's default denial of calls and allowance of signals and receives). The callee owns the
 * first POLICY_KINDS services' names. The calls go to the first `kinds` of them in turn: one kind is
 * the same call over and over, which the module's verdict cache answers after the first; more kinds
 * than the cache keeps per sender have every call judged by the rules.
 */
#define POLICY_KINDS 5
static double dbus_policy_call_cost(int services, int kinds)
{
	static struct prule rules[300];
	static char strings[300][2][48];
	static uint8_t img[40 + 68 * 300 + PIMG_MAX_STRINGS];
	static uint32_t chain[4 + 300];
	struct sink s;
	pthread_t t;
	struct tbus tb;
	int maxq = 65536, rcv = 32 << 20, i, n_rules = 0;
	uint32_t nsend = 0;
	struct dmsg call = { .type = 1, .flags = 1, .path = "/org/svc0", .member = "Get",
			     .sender = ":1.1" };
	static const char owned[] = "org.svc0.Service\0org.svc1.Service\0org.svc2.Service\0"
				    "org.svc3.Service\0org.svc4.Service";
	char interface[POLICY_KINDS][32], destination[POLICY_KINDS][32];
	uint8_t msg[POLICY_KINDS][512];
	size_t n[POLICY_KINDS];
	double t0, cost;

	if (tb_open_proto(&tb, "/tmp/bench-dbus-policy", 2, 1, BUS_PROTO_DBUS))
		die("dbus bus");
	/* room for every call: a call to a full queue fails at once (EXFULL), as D-Bus wants */
	setsockopt(tb.l, SOL_BUS, BUS_SET_MAXQLEN, &maxq, sizeof(maxq));
	for (i = 0; i < 2; i++) {
		char name[16];

		snprintf(name, sizeof(name), ":1.%d", i + 1);
		if (setsockopt(tb.s[i], SOL_BUS, BUS_DBUS_SET_NAME, name, strlen(name)))
			die("dbus name");
	}
	if (services) {
		rules[n_rules++] = (struct prule){ PIMG_SEND, PIMG_DENY, 0, 1, NULL, NULL, NULL };
		rules[n_rules++] = (struct prule){ PIMG_SEND, PIMG_ALLOW, 0, 4, NULL, NULL, NULL };
		for (i = 0; i < services && n_rules < 299; i++) {
			snprintf(strings[i][0], sizeof(strings[i][0]), "org.svc%d.Service", i);
			snprintf(strings[i][1], sizeof(strings[i][1]), "org.svc%d.Iface", i);
			rules[n_rules++] = (struct prule){ PIMG_SEND, PIMG_ALLOW, 0, 0, strings[i][0], strings[i][1],
							   NULL };
		}
		nsend = n_rules;
		rules[n_rules++] = (struct prule){ PIMG_RECEIVE, PIMG_ALLOW, 0, 0, NULL, NULL, NULL };
		if (setsockopt(tb.l, SOL_BUS, BUS_DBUS_SET_POLICY, img, pimg_build(img, rules, n_rules)))
			die("dbus policy");
		for (i = 0; i < (int)nsend; i++)
			chain[4 + i] = i;
		chain[4 + nsend] = nsend;
		chain[0] = nsend;
		chain[1] = 1;
		chain[2] = 0;
		chain[3] = 0;
		for (i = 0; i < 2; i++)
			if (setsockopt(tb.s[i], SOL_BUS, BUS_DBUS_SET_CHAINS, chain, (4 + nsend + 1) * 4))
				die("dbus chains");
		if (setsockopt(tb.s[1], SOL_BUS, BUS_DBUS_SET_NAMES, owned, sizeof(owned)))
			die("dbus names");
	}
	setsockopt(tb.c[1], SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv));
	s.fd = tb.c[1];
	s.n = MC_MSGS;
	pthread_create(&t, NULL, sink, &s);
	for (i = 0; i < POLICY_KINDS; i++) {
		snprintf(interface[i], sizeof(interface[i]), "org.svc%d.Iface", i);
		snprintf(destination[i], sizeof(destination[i]), "org.svc%d.Service", i);
		call.interface = interface[i];
		call.destination = destination[i];
		n[i] = dmsg_build(msg[i], &call);
	}
	t0 = now_sec();
	for (i = 0; i < MC_MSGS; i++)
		if (bus_sendto(tb.c[0], tb.a[1], msg[i % kinds], n[i % kinds], 0) < 0)
			die("dbus call send");
	cost = (now_sec() - t0) / MC_MSGS * 1e6;
	pthread_join(t, NULL);
	tb_close(&tb);
	return cost;
}

#define MEASURE(name, unit, expr) do { \
	double _v[REPS]; \
	int _k; \
	for (_k = 0; _k < REPS; _k++) \
		_v[_k] = (expr); \
	report_reps(name, _v, unit); \
} while (0)

static double mc_pairs_cost(int total)
{
	multicast_pairs();
	return total ? mc_total : mc_send_cost;
}

static double mc_bus_cost(int total)
{
	multicast_bus();
	return total ? mc_total : mc_send_cost;
}

int main(void)
{
	struct tbus tb;
	int sp[2], maxq = 4096;
	cpu_set_t cpus;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (afbus_family() < 0)
		die("af_bus not loaded");
	CPU_ZERO(&cpus);
	CPU_SET(0, &cpus);
	if (sched_setaffinity(0, sizeof(cpus), &cpus))
		die("sched_setaffinity");
	printf("AFBUS-BENCH start family=%d cpus=%ld\n", afbus_family(), sysconf(_SC_NPROCESSORS_ONLN));

	/* latency */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp))
		die("socketpair");
	MEASURE("latency_unix_seqpacket_64B", "us one-way", pingpong(sp[0], sp[1], LAT_ITERS, 64));
	close(sp[0]);
	close(sp[1]);
	if (tb_open(&tb, "/tmp/bench", 2, 1))
		die("bus");
	setsockopt(tb.l, SOL_BUS, BUS_SET_MAXQLEN, &maxq, sizeof(maxq));
	MEASURE("latency_afbus_client_master_64B", "us one-way",
		pingpong(tb.c[0], tb.s[0], LAT_ITERS, 64));
	MEASURE("latency_afbus_client_master_sendto_64B", "us one-way",
		pingpong_to_master_by_addr(&tb, LAT_ITERS, 64));
	MEASURE("latency_afbus_client_client_64B", "us one-way", pingpong_bus(&tb, LAT_ITERS, 64));

	/* throughput */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp))
		die("socketpair");
	MEASURE("throughput_unix_seqpacket_64B", "msg/s", throughput(sp[0], sp[1], 0, 0, TP_MSGS, 64));
	MEASURE("throughput_unix_seqpacket_4KiB", "MB/s",
		throughput(sp[0], sp[1], 0, 0, TP_MSGS / 5, 4096) * 4096 / 1e6);
	close(sp[0]);
	close(sp[1]);
	MEASURE("throughput_afbus_client_client_64B", "msg/s",
		throughput(tb.c[0], tb.c[1], tb.a[1], 1, TP_MSGS, 64));
	MEASURE("throughput_afbus_client_client_4KiB", "MB/s",
		throughput(tb.c[0], tb.c[1], tb.a[1], 1, TP_MSGS / 5, 4096) * 4096 / 1e6);
	tb_close(&tb);

	/* one message to 10 receivers */
	MEASURE("mc10_unix_10_sends_sender_cost", "us/msg", mc_pairs_cost(0));
	MEASURE("mc10_unix_10_sends_all_delivered", "us/msg", mc_pairs_cost(1));
	MEASURE("mc10_afbus_multicast_sender_cost", "us/msg", mc_bus_cost(0));
	MEASURE("mc10_afbus_multicast_all_delivered", "us/msg", mc_bus_cost(1));

	/* D-Bus buses (af_bus_dbus.ko loaded by the guest's init) */
	/* interleaved, so that both see the same host: the ratio per pair is the figure */
	{
		double five[REPS], fifty[REPS], ratio[REPS];
		int k;

		for (k = 0; k < REPS; k++) {
			five[k] = dbus_mc_cost(5, 5, 0, 'm');
			fifty[k] = dbus_mc_cost(50, 5, 0, 'm');
			ratio[k] = fifty[k] / five[k];
		}
		report_reps("dbus_signal_5_of_5_sender_cost", five, "us/msg");
		report_reps("dbus_signal_5_of_50_sender_cost", fifty, "us/msg");
		report_reps("dbus_signal_5_of_50_over_5_of_5", ratio, "x (per interleaved pair)");
	}
	MEASURE("dbus_signal_5_of_5_plus_1_record", "us/msg", dbus_mc_cost(5, 5, 1, 'm'));
	MEASURE("dbus_signal_5_of_5_plus_10k_member_records", "us/msg", dbus_mc_cost(5, 5, 10000, 'm'));
	MEASURE("dbus_signal_5_of_5_plus_10k_interface_records", "us/msg", dbus_mc_cost(5, 5, 10000, 'i'));
	MEASURE("dbus_signal_5_of_5_plus_10k_path_records", "us/msg", dbus_mc_cost(5, 5, 10000, 'p'));
	/* interleaved, so that both see the same host: the ratio per pair is the figure */
	{
		double plain[REPS], policy[REPS], judged[REPS], ratio[REPS], judged_ratio[REPS];
		int k;

		for (k = 0; k < REPS; k++) {
			plain[k] = dbus_policy_call_cost(0, 1);
			policy[k] = dbus_policy_call_cost(246, 1);
			judged[k] = dbus_policy_call_cost(246, POLICY_KINDS);
			ratio[k] = policy[k] / plain[k];
			judged_ratio[k] = judged[k] / plain[k];
		}
		report_reps("dbus_call_no_policy_sender_cost", plain, "us/msg");
		report_reps("dbus_call_250_rule_policy_sender_cost", policy, "us/msg");
		report_reps("dbus_call_250_rule_policy_each_judged", judged, "us/msg");
		report_reps("dbus_call_policy_over_none", ratio, "x (per interleaved triple)");
		report_reps("dbus_call_policy_each_judged_over_none", judged_ratio, "x (per interleaved triple)");
	}
	return 0;
}
