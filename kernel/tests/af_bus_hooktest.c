// SPDX-License-Identifier: GPL-2.0
/*
 * af_bus_hooktest.ko - a test user of af_bus.ko's hook API, loaded by the VM suite (test "hooks").
 * Acts only on messages whose payload starts with "HK":
 *   send hook (priority 0):     "HKSEND-REJ" -> -EXDEV, "HKSEND-DROP" -> drop
 *   delivery hook A (-100):     "HKDROP-A" -> drop; "HKRCPT" -> drop for receiver drop_rcpt
 *   delivery hook B (+100):     "HKREJ-B" -> -ENOKEY
 * and counts its calls in read-only parameters; seq_a/seq_b record the order A and B last ran in.
 */
#include <linux/module.h>
#include <linux/skbuff.h>
#include <linux/string.h>
#include <linux/af_bus_hooks.h>

static ulong drop_rcpt;
module_param(drop_rcpt, ulong, 0644);
static int send_calls, a_calls, b_calls, eav_calls, mcast_calls, seq, seq_a, seq_b;
module_param(send_calls, int, 0444);
module_param(a_calls, int, 0444);
module_param(b_calls, int, 0444);
module_param(eav_calls, int, 0444);
module_param(mcast_calls, int, 0444);
module_param(seq_a, int, 0444);
module_param(seq_b, int, 0444);

/* Hooks run under the bus lock; the counters are only read by the test after its sends. */
static bool starts(const struct bus_hook_ctx *ctx, const char *tag)
{
	char buf[16];
	size_t n = strlen(tag);

	if (n > sizeof(buf) || ctx->skb->len < n || skb_copy_bits(ctx->skb, 0, buf, n))
		return false;
	return !memcmp(buf, tag, n);
}

static int send_hook(void *priv, const struct bus_hook_ctx *ctx)
{
	if (!starts(ctx, "HK"))
		return BUS_HOOK_ACCEPT;
	WRITE_ONCE(send_calls, send_calls + 1);
	if (ctx->receiver)
		return -EINVAL;	/* must be NULL at the send point */
	if (starts(ctx, "HKSEND-REJ"))
		return -EXDEV;
	if (starts(ctx, "HKSEND-DROP"))
		return BUS_HOOK_DROP;
	return BUS_HOOK_ACCEPT;
}

static int hook_a(void *priv, const struct bus_hook_ctx *ctx)
{
	if (!starts(ctx, "HK"))
		return BUS_HOOK_ACCEPT;
	WRITE_ONCE(a_calls, a_calls + 1);
	WRITE_ONCE(seq_a, ++seq);
	if (ctx->kind == BUS_HOOK_EAVESDROP)
		WRITE_ONCE(eav_calls, eav_calls + 1);
	if (ctx->kind == BUS_HOOK_MULTICAST)
		WRITE_ONCE(mcast_calls, mcast_calls + 1);
	if (starts(ctx, "HKDROP-A"))
		return BUS_HOOK_DROP;
	if (starts(ctx, "HKRCPT") && ctx->rcpt == READ_ONCE(drop_rcpt))
		return BUS_HOOK_DROP;
	return BUS_HOOK_ACCEPT;
}

static int hook_b(void *priv, const struct bus_hook_ctx *ctx)
{
	if (!starts(ctx, "HK"))
		return BUS_HOOK_ACCEPT;
	WRITE_ONCE(b_calls, b_calls + 1);
	WRITE_ONCE(seq_b, ++seq);
	if (starts(ctx, "HKREJ-B"))
		return -ENOKEY;
	return BUS_HOOK_ACCEPT;
}

/* registered out of priority order on purpose */
static struct bus_hook_ops ops[] = {
	{ .hook = hook_b, .point = BUS_HOOK_DELIVER, .priority = 100 },
	{ .hook = send_hook, .point = BUS_HOOK_SEND, .priority = 0 },
	{ .hook = hook_a, .point = BUS_HOOK_DELIVER, .priority = -100 },
};

static int __init hooktest_init(void)
{
	int i, err;

	for (i = 0; i < ARRAY_SIZE(ops); i++) {
		err = bus_register_hook(&ops[i]);
		if (err) {
			while (--i >= 0)
				bus_unregister_hook(&ops[i]);
			return err;
		}
	}
	return 0;
}

static void __exit hooktest_exit(void)
{
	int i;

	for (i = ARRAY_SIZE(ops) - 1; i >= 0; i--)
		bus_unregister_hook(&ops[i]);
}

module_init(hooktest_init);
module_exit(hooktest_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("af_bus hook API test module");
