// SPDX-License-Identifier: MIT
/*
 * test-abi.c - freezes the /dev/p2pio ABI (kmod/uapi/p2pio_ioctl.h) as userspace compiles
 * it: command numbers, struct sizes and every field's offset. The ABI grows by new
 * commands and by giving meaning to reserved fields, never by moving a field; a change
 * that fails this test breaks every library and tool built before it.
 */
#include <stddef.h>

#include "p2pio_ioctl.h"
#include "tap.h"

#define OFF(type, field, want) \
	tap_is_int((int)offsetof(struct type, field), want, "%s.%s offset", #type, #field)
#define SIZE(type, want) tap_is_int((int)sizeof(struct type), want, "sizeof %s", #type)
#define CMD(cmd, want) tap_is_u64((unsigned long)(cmd), want, "%s number", #cmd)

int main(void)
{
	tap_plan_lazy();

	tap_is_int(P2PIO_ABI_VERSION, 1, "ABI version");
	CMD(P2PIO_IOC_VERSION, 0x8048e200);
	CMD(P2PIO_IOC_REGISTER_FILE, 0xc040e201);
	CMD(P2PIO_IOC_UNREGISTER_FILE, 0x4018e202);
	CMD(P2PIO_IOC_PIN, 0xc058e203);
	CMD(P2PIO_IOC_UNPIN, 0x4018e204);
	CMD(P2PIO_IOC_SUBMIT, 0xc028e205);
	CMD(P2PIO_IOC_REAP, 0xc030e206);
	CMD(P2PIO_IOC_STATS, 0xc138e207);
	/* Flag and feature bits are ABI too: a value once shipped never changes. */
	tap_is_u64(P2PIO_REGISTER_NOWAIT, 1, "P2PIO_REGISTER_NOWAIT");
	tap_is_u64(P2PIO_FEAT_REGISTER_NOWAIT, 1ull << 5, "P2PIO_FEAT_REGISTER_NOWAIT");
	tap_is_u64(P2PIO_FEAT_STATS, 1ull << 4, "P2PIO_FEAT_STATS");

	SIZE(p2pio_version, 72);
	OFF(p2pio_version, abi_version, 0);
	OFF(p2pio_version, max_batch, 4);
	OFF(p2pio_version, features, 8);
	OFF(p2pio_version, max_outstanding, 16);
	OFF(p2pio_version, max_files, 20);
	OFF(p2pio_version, max_pins, 24);
	OFF(p2pio_version, max_cmds, 28);
	OFF(p2pio_version, max_read_len, 32);
	OFF(p2pio_version, reserved, 40);

	SIZE(p2pio_register_file, 64);
	OFF(p2pio_register_file, fd, 0);
	OFF(p2pio_register_file, flags, 4);
	OFF(p2pio_register_file, handle, 8);
	OFF(p2pio_register_file, lba_size, 12);
	OFF(p2pio_register_file, size, 16);
	OFF(p2pio_register_file, nr_extents, 24);
	OFF(p2pio_register_file, nsid, 28);
	OFF(p2pio_register_file, reserved, 32);

	SIZE(p2pio_handle_arg, 24);
	OFF(p2pio_handle_arg, handle, 0);
	OFF(p2pio_handle_arg, flags, 4);
	OFF(p2pio_handle_arg, reserved, 8);

	SIZE(p2pio_pin, 88);
	OFF(p2pio_pin, provider, 0);
	OFF(p2pio_pin, flags, 4);
	OFF(p2pio_pin, addr, 8);
	OFF(p2pio_pin, length, 16);
	OFF(p2pio_pin, pci_domain, 24);
	OFF(p2pio_pin, pci_bus, 28);
	OFF(p2pio_pin, pci_devfn, 32);
	OFF(p2pio_pin, bar, 36);
	OFF(p2pio_pin, handle, 40);
	OFF(p2pio_pin, page_size, 44);
	OFF(p2pio_pin, align, 48);
	OFF(p2pio_pin, out_flags, 52);
	OFF(p2pio_pin, reserved, 56);

	SIZE(p2pio_read, 48);
	OFF(p2pio_read, file, 0);
	OFF(p2pio_read, mem, 4);
	OFF(p2pio_read, file_offset, 8);
	OFF(p2pio_read, length, 16);
	OFF(p2pio_read, mem_offset, 24);
	OFF(p2pio_read, user_tag, 32);
	OFF(p2pio_read, flags, 40);
	OFF(p2pio_read, reserved, 44);

	SIZE(p2pio_submit, 40);
	OFF(p2pio_submit, reads, 0);
	OFF(p2pio_submit, count, 8);
	OFF(p2pio_submit, flags, 12);
	OFF(p2pio_submit, accepted, 16);
	OFF(p2pio_submit, pad, 20);
	OFF(p2pio_submit, reserved, 24);

	SIZE(p2pio_completion, 40);
	OFF(p2pio_completion, user_tag, 0);
	OFF(p2pio_completion, status, 8);
	OFF(p2pio_completion, flags, 12);
	OFF(p2pio_completion, bytes, 16);
	OFF(p2pio_completion, latency_ns, 24);
	OFF(p2pio_completion, reserved, 32);

	SIZE(p2pio_reap, 48);
	OFF(p2pio_reap, completions, 0);
	OFF(p2pio_reap, max, 8);
	OFF(p2pio_reap, min, 12);
	OFF(p2pio_reap, timeout_ns, 16);
	OFF(p2pio_reap, count, 24);
	OFF(p2pio_reap, flags, 28);
	OFF(p2pio_reap, reserved, 32);

	SIZE(p2pio_stats, 312);
	OFF(p2pio_stats, scope, 0);
	OFF(p2pio_stats, flags, 4);
	OFF(p2pio_stats, reads_submitted, 8);
	OFF(p2pio_stats, reads_completed, 16);
	OFF(p2pio_stats, reads_failed, 24);
	OFF(p2pio_stats, bytes, 32);
	OFF(p2pio_stats, commands, 40);
	OFF(p2pio_stats, splits, 48);
	OFF(p2pio_stats, errors, 56);
	OFF(p2pio_stats, inflight_cmds, 64);
	OFF(p2pio_stats, outstanding, 72);
	OFF(p2pio_stats, live_files, 80);
	OFF(p2pio_stats, live_pins, 88);
	OFF(p2pio_stats, live_prp_pages, 96);
	OFF(p2pio_stats, live_fds, 104);
	OFF(p2pio_stats, revoked, 112);
	OFF(p2pio_stats, latency, 120);
	OFF(p2pio_stats, lease_watches, 248);
	OFF(p2pio_stats, reserved, 256);
	tap_is_int(P2PIO_LAT_BUCKETS, 16, "latency buckets");

	return tap_exit();
}
