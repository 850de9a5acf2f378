/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Userspace shim for dbus_header.c: the few kernel types, byte-order helpers and errno values the parser
 * uses, so that the same C file builds into af_bus_dbus.ko and into the fuzz and unit test programs.
 */
#ifndef AFBUS_DBUS_HEADER_USER_H
#define AFBUS_DBUS_HEADER_USER_H

#ifdef __KERNEL__
#error "dbus_header_user.h is for userspace builds only"
#endif

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#ifndef __cplusplus
#include <stdbool.h>
#endif

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define le32_to_cpu(x) __builtin_bswap32(x)
#define be32_to_cpu(x) ((u32)(x))
#else
#define le32_to_cpu(x) ((u32)(x))
#define be32_to_cpu(x) __builtin_bswap32(x)
#endif

#endif /* AFBUS_DBUS_HEADER_USER_H */
