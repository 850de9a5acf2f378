// SPDX-License-Identifier: GPL-2.0
/*
 * af_bus_dbus.ko — the D-Bus protocol module of AF_BUS: it serves the buses bound with
 * BUS_PROTO_DBUS (docs/kernel.md, "af_bus_dbus.ko"). Through af_bus.ko's hook API it sees every
 * message sent on such a bus before any delivery, and:
 *  - parses its D-Bus header (dbus_header.c, the parser the userspace tests hold to libafbus) and
 *    refuses a malformed message with the parser's errno;
 *  - makes the SENDER field trustworthy: the master names each client (BUS_DBUS_SET_NAME), and a
 *    client's message must carry exactly that name, so receivers trust SENDER as they trust
 *    dbus-daemon's. Messages from the master are the bus's own and pass.
 */
#define pr_fmt(fmt) "af_bus_dbus: " fmt

#include <linux/module.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/xarray.h>
#include <uapi/linux/af_bus.h>
#include <linux/af_bus_hooks.h>
#include "dbus_header.h"

/* A client's unique name, as the master set it. */
struct dbus_name {
	u32 len;
	char name[];
};

/* A bus's state: every access is under the bus's lock (options, hooks, client_gone). */
struct dbus_bus {
	struct xarray names;	/* client part of the unique address -> struct dbus_name */
};

/* Headers up to this size that are not in the skb's linear part are copied to the stack. */
#define DBUS_HDR_ON_STACK 192

static int dbus_set_name(struct dbus_bus *b, u64 client, const void *val, unsigned int len)
{
	struct dbus_name *n;
	int err;

	if (!client)
		return -EINVAL;	/* a client's option: on its master-side socket */
	if (!len || len > DBUS_HDR_MAX_NAME || !dbus_hdr_valid_unique_name(val, len))
		return -EINVAL;
	n = kmalloc(struct_size(n, name, len), GFP_KERNEL);
	if (!n)
		return -ENOMEM;
	n->len = len;
	memcpy(n->name, val, len);
	/* A unique name is given once and never changes. */
	err = xa_insert(&b->names, BUS_ADDR_CLIENT(client), n, GFP_KERNEL);
	if (err) {
		kfree(n);
		return err == -EBUSY ? -EALREADY : err;
	}
	return 0;
}

static int dbus_setsockopt(void **priv, u64 client, bool joined, int optname, const void *val,
			   unsigned int len)
{
	struct dbus_bus *b = *priv;

	if (optname != BUS_DBUS_SET_NAME)
		return -ENOPROTOOPT;
	if (!b) {
		b = kzalloc(sizeof(*b), GFP_KERNEL);
		if (!b)
			return -ENOMEM;
		xa_init(&b->names);
		*priv = b;
	}
	return dbus_set_name(b, client, val, len);
}

static void dbus_client_gone(void *priv, u64 client)
{
	struct dbus_bus *b = priv;

	kfree(xa_erase(&b->names, BUS_ADDR_CLIENT(client)));
}

static void dbus_bus_gone(void *priv)
{
	struct dbus_bus *b = priv;
	struct dbus_name *n;
	unsigned long i;

	xa_for_each(&b->names, i, n)
		kfree(n);
	xa_destroy(&b->names);
	kfree(b);
}

/* Whether the client may send a message whose header is h (in hdr). */
static int dbus_check_sender(const struct bus_hook_ctx *ctx, const u8 *hdr, const struct dbus_hdr *h)
{
	struct dbus_bus *b = ctx->proto_priv;
	const struct dbus_name *n = b ? xa_load(&b->names, BUS_ADDR_CLIENT(ctx->src)) : NULL;

	if (!h->sender.present)
		/* The master learns the sender from the address; nobody else could. */
		return ctx->dst == BUS_MASTER_ADDR ? BUS_HOOK_ACCEPT : -EPERM;
	if (!n || n->len != h->sender.len || memcmp(n->name, hdr + h->sender.off, n->len))
		return -EPERM;
	return BUS_HOOK_ACCEPT;
}

static int dbus_send_hook(void *priv, const struct bus_hook_ctx *ctx)
{
	const struct sk_buff *skb = ctx->skb;
	u8 stackbuf[DBUS_HDR_ON_STACK];
	u8 *heap = NULL;
	const u8 *hdr;
	struct dbus_hdr h;
	u32 need;
	int err;

	if (ctx->bus_protocol != BUS_PROTO_DBUS)
		return BUS_HOOK_ACCEPT;
	/* The header, without the body: in place when linear, else copied (atomic context). */
	need = min_t(u32, skb->len, DBUS_HDR_FIXED_LEN);
	if (skb->len >= DBUS_HDR_FIXED_LEN) {
		if (skb_copy_bits(skb, 0, stackbuf, DBUS_HDR_FIXED_LEN))
			return -EBADMSG;
		need = min_t(u32, skb->len, dbus_hdr_header_len(stackbuf));
	}
	if (skb_headlen(skb) >= need) {
		hdr = skb->data;
	} else {
		if (need > sizeof(stackbuf)) {
			heap = kmalloc(need, GFP_ATOMIC | __GFP_NOWARN);
			if (!heap)
				return -ENOBUFS;
		}
		hdr = heap ? heap : stackbuf;
		if (skb_copy_bits(skb, 0, heap ? heap : stackbuf, need)) {
			kfree(heap);
			return -EBADMSG;
		}
	}
	err = dbus_hdr_parse_header(hdr, need, skb->len, &h, NULL);
	if (!err && !ctx->from_master)
		err = dbus_check_sender(ctx, hdr, &h);
	kfree(heap);
	return err;
}

static struct bus_hook_ops dbus_hooks[] = {
	/* before every delivery handler: a refused message costs no per-receiver work */
	{ .hook = dbus_send_hook, .point = BUS_HOOK_SEND, .priority = BUS_HOOK_PRI_FILTER - 100 },
};

static struct bus_proto_ops dbus_proto = {
	.protocol = BUS_PROTO_DBUS,
	.optmin = BUS_DBUS_OPT_MIN,
	.optmax = BUS_DBUS_OPT_MAX,
	.setsockopt = dbus_setsockopt,
	.client_gone = dbus_client_gone,
	.bus_gone = dbus_bus_gone,
	.owner = THIS_MODULE,
};

static int __init af_bus_dbus_init(void)
{
	int i, err;

	for (i = 0; i < ARRAY_SIZE(dbus_hooks); i++) {
		err = bus_register_hook(&dbus_hooks[i]);
		if (err)
			goto out_hooks;
	}
	err = bus_register_proto(&dbus_proto);
	if (err)
		goto out_hooks;
	return 0;

out_hooks:
	while (--i >= 0)
		bus_unregister_hook(&dbus_hooks[i]);
	return err;
}

static void __exit af_bus_dbus_exit(void)
{
	int i;

	/* No bus is left: each held a reference on this module. */
	bus_unregister_proto(&dbus_proto);
	for (i = ARRAY_SIZE(dbus_hooks) - 1; i >= 0; i--)
		bus_unregister_hook(&dbus_hooks[i]);
}

module_init(af_bus_dbus_init);
module_exit(af_bus_dbus_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("AF_BUS D-Bus protocol module: header checks and trusted senders");
MODULE_AUTHOR("afbus project");
MODULE_SOFTDEP("pre: af_bus");
