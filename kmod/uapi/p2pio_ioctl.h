/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * p2pio_ioctl.h - the ABI of /dev/p2pio, shared by the kernel module, libp2pio and tests.
 *
 * This header is the only definition of the ABI. Rules that keep it stable:
 *  - every struct has a fixed size, only __u32/__s32/__u64/__s64 fields, explicit padding
 *    and no implicit holes (the module asserts the sizes at build time);
 *  - user pointers travel as __u64;
 *  - every "reserved" or "pad" field and every undefined flag bit must be zero on input,
 *    or the ioctl fails with EINVAL; this keeps them free for later use;
 *  - the ABI grows by new command numbers (and new feature bits), never by changing the
 *    size or meaning of an existing struct.
 *
 * Flow: VERSION (handshake) -> REGISTER_FILE and PIN (handles) -> SUBMIT a batch of
 * reads -> REAP completions (or read() / poll() the fd) -> UNPIN, UNREGISTER_FILE, close.
 * Handles are per open file description; closing the fd releases everything it holds.
 */
#ifndef _UAPI_P2PIO_IOCTL_H
#define _UAPI_P2PIO_IOCTL_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* Bumped only for an incompatible change; the library refuses a version it does not know. */
#define P2PIO_ABI_VERSION 1

/* The character device the module creates. */
#define P2PIO_DEVICE_PATH "/dev/p2pio"

/* Feature bits reported by P2PIO_IOC_VERSION in p2pio_version.features. */
#define P2PIO_FEAT_PROVIDER_NVIDIA (1ULL << 0)	/* built with the nvidia_p2p API */
#define P2PIO_FEAT_PROVIDER_PCIBAR (1ULL << 1)	/* pcibar provider (root only) */
#define P2PIO_FEAT_POLL (1ULL << 2)		/* POLLIN when completions wait */
#define P2PIO_FEAT_READ (1ULL << 3)		/* read() returns p2pio_completion records */
#define P2PIO_FEAT_STATS (1ULL << 4)		/* P2PIO_IOC_STATS */
#define P2PIO_FEAT_REGISTER_NOWAIT (1ULL << 5)	/* P2PIO_REGISTER_NOWAIT */

/**
 * struct p2pio_version - P2PIO_IOC_VERSION: the handshake, always the first call.
 * @abi_version: out, P2PIO_ABI_VERSION of the module.
 * @max_batch: out, most entries one P2PIO_IOC_SUBMIT accepts.
 * @features: out, P2PIO_FEAT_* bits.
 * @max_outstanding: out, most reads a fd may have submitted and not yet reaped.
 * @max_files: out, most registered files per fd.
 * @max_pins: out, most pinned memory handles per fd.
 * @max_cmds: out, most NVMe commands in flight per fd (reads are split into commands).
 * @max_read_len: out, the largest length of one p2pio_read.
 * @reserved: out, zero.
 */
struct p2pio_version {
	__u32 abi_version;
	__u32 max_batch;
	__u64 features;
	__u32 max_outstanding;
	__u32 max_files;
	__u32 max_pins;
	__u32 max_cmds;
	__u64 max_read_len;
	__u64 reserved[4];
};

/*
 * p2pio_register_file.flags: fail with EBUSY instead of waiting where the file's I/O
 * lock is held (xfs holds it through the compare and remap of a dedupe into the file,
 * which can take seconds). For a caller that must not stop on one file, as a library's
 * completion thread registering a file again after its layout lease broke.
 */
#define P2PIO_REGISTER_NOWAIT (1U << 0)

/**
 * struct p2pio_register_file - P2PIO_IOC_REGISTER_FILE: make a file readable by handle.
 * @fd: in, a regular file the caller opened for reading (O_RDONLY or O_RDWR).
 * @flags: in, 0 or P2PIO_REGISTER_NOWAIT.
 * @handle: out, the file handle (non-zero) for p2pio_read.file.
 * @lba_size: out, the namespace's logical block size: p2pio_read offsets and lengths
 *	must be multiples of it.
 * @size: out, the file size in bytes at registration (the file cannot change while
 *	registered: writers get ETXTBSY).
 * @nr_extents: out, how many contiguous runs the file occupies on the namespace.
 * @nsid: out, the NVMe namespace id the file lives on.
 * @reserved: must be zero.
 *
 * The module resolves the file's blocks to namespace LBAs itself; LBAs are never
 * accepted from userspace. See Documentation/admin-guide.md for every refusal.
 */
struct p2pio_register_file {
	__s32 fd;
	__u32 flags;
	__u32 handle;
	__u32 lba_size;
	__u64 size;
	__u32 nr_extents;
	__u32 nsid;
	__u64 reserved[4];
};

/**
 * struct p2pio_handle_arg - P2PIO_IOC_UNREGISTER_FILE and P2PIO_IOC_UNPIN.
 * @handle: in, the handle to release.
 * @flags: in, must be zero.
 * @reserved: must be zero.
 *
 * Releasing a handle that reads in flight still use returns EBUSY; reap them first.
 */
struct p2pio_handle_arg {
	__u32 handle;
	__u32 flags;
	__u64 reserved[2];
};

/* Memory providers for p2pio_pin.provider. */
#define P2PIO_PROVIDER_NVIDIA 1	/* CUDA device memory via nvidia_p2p_* */
#define P2PIO_PROVIDER_PCIBAR 2	/* a range of a PCI BAR (CAP_SYS_ADMIN) */

/* p2pio_pin.flags */
#define P2PIO_PIN_F_NONPERSISTENT (1U << 0) /* nvidia: use nvidia_p2p_get_pages with a
					     * free callback, not a persistent pin
					     * (CAP_SYS_ADMIN only, else EPERM) */
#define P2PIO_PIN_F_ALL (P2PIO_PIN_F_NONPERSISTENT)

/* p2pio_pin.out_flags */
#define P2PIO_PIN_OUT_PERSISTENT (1U << 0)	/* pinned persistently */
#define P2PIO_PIN_OUT_REVOCABLE (1U << 1)	/* the owner may revoke it (free callback) */

/**
 * struct p2pio_pin - P2PIO_IOC_PIN: make device memory a DMA target.
 * @provider: in, P2PIO_PROVIDER_*.
 * @flags: in, P2PIO_PIN_F_* bits.
 * @addr: in, nvidia: the CUDA device virtual address (any alignment; the module pins the
 *	enclosing 64 KiB-aligned range and keeps the offset). pcibar: byte offset in the BAR.
 * @length: in, bytes from @addr, 1 to 2^40; handle offsets run from 0 (at @addr) to
 *	@length.
 * @pci_domain: in, pcibar only: PCI domain (segment) of the device owning the BAR.
 * @pci_bus: in, pcibar only: bus number (0..255).
 * @pci_devfn: in, pcibar only: device and function, PCI_DEVFN(slot, func) (0..255).
 * @bar: in, pcibar only: BAR index (0..5).
 * @handle: out, the memory handle (non-zero) for p2pio_read.mem.
 * @page_size: out, the provider's page size in bytes (nvidia: 65536; pcibar: 4096).
 * @align: out, the alignment the provider rounded @addr down to.
 * @out_flags: out, P2PIO_PIN_OUT_* bits.
 * @reserved: must be zero.
 *
 * nvidia fields other than @addr and @length, and pci_* / @bar, must be zero when
 * unused by the chosen provider.
 */
struct p2pio_pin {
	__u32 provider;
	__u32 flags;
	__u64 addr;
	__u64 length;
	__u32 pci_domain;
	__u32 pci_bus;
	__u32 pci_devfn;
	__u32 bar;
	__u32 handle;
	__u32 page_size;
	__u32 align;
	__u32 out_flags;
	__u64 reserved[4];
};

/**
 * struct p2pio_read - one read request of a P2PIO_IOC_SUBMIT batch.
 * @file: file handle from P2PIO_IOC_REGISTER_FILE.
 * @mem: memory handle from P2PIO_IOC_PIN.
 * @file_offset: byte offset in the file; a multiple of the file's lba_size.
 * @length: bytes to read; a non-zero multiple of lba_size, at most max_read_len, and
 *	@file_offset + @length within the file size rounded up to lba_size.
 * @mem_offset: byte offset in the memory handle; a multiple of 4 (the NVMe PRP rule),
 *	and @mem_offset + @length within the pinned length.
 * @user_tag: returned unchanged in the completion.
 * @flags: must be zero.
 * @reserved: must be zero.
 */
struct p2pio_read {
	__u32 file;
	__u32 mem;
	__u64 file_offset;
	__u64 length;
	__u64 mem_offset;
	__u64 user_tag;
	__u32 flags;
	__u32 reserved;
};

/**
 * struct p2pio_submit - P2PIO_IOC_SUBMIT: queue a batch of reads.
 * @reads: in, user pointer to @count struct p2pio_read.
 * @count: in, entries at @reads, 1..max_batch.
 * @flags: in, must be zero.
 * @accepted: out, how many entries, from the first, were taken.
 * @pad: must be zero.
 * @reserved: must be zero.
 *
 * Every accepted entry produces exactly one completion. An entry that fails validation
 * (bad handle, misaligned, out of range, reserved bits set) is still accepted and
 * completes at once with a negative errno in its status, so one bad entry never fails
 * the batch. Submission stops early, with @accepted < @count, when the fd already has
 * max_outstanding reads not yet reaped, when @reads cannot be read, or on a fatal signal
 * (that read completes with -EINTR); the ioctl still returns 0 if @accepted > 0, and
 * fails with EAGAIN (queue full: reap), EFAULT or ENOMEM only when nothing was accepted.
 * The call may sleep while the fd already has max_cmds NVMe commands in flight.
 */
struct p2pio_submit {
	__u64 reads;
	__u32 count;
	__u32 flags;
	__u32 accepted;
	__u32 pad;
	__u64 reserved[2];
};

/* p2pio_completion.flags */
#define P2PIO_COMP_F_SPLIT (1U << 0)	/* the read needed more than one NVMe command */

/**
 * struct p2pio_completion - one finished read, from P2PIO_IOC_REAP or read().
 * @user_tag: the p2pio_read.user_tag of the request.
 * @status: 0 on success, or a negative errno: EINVAL (bad request), EBADF (bad handle),
 *	ERANGE (out of the file or the pinned range), EIO (media or transport error),
 *	ENODEV (the memory was revoked or the device went away), ETIMEDOUT, EINTR
 *	(interrupted before all of it was issued), ENOMEM.
 * @flags: P2PIO_COMP_F_* bits.
 * @bytes: bytes transferred (equal to the length on success, else 0).
 * @latency_ns: from submission to the last command's completion.
 * @reserved: zero.
 */
struct p2pio_completion {
	__u64 user_tag;
	__s32 status;
	__u32 flags;
	__u64 bytes;
	__u64 latency_ns;
	__u64 reserved;
};

/**
 * struct p2pio_reap - P2PIO_IOC_REAP: collect completions.
 * @completions: in, user pointer to room for @max struct p2pio_completion.
 * @max: in, 1..max_outstanding.
 * @min: in, wait until at least @min completions are available (0..@max), or until
 *	@timeout_ns passes, or until nothing is outstanding any more.
 * @timeout_ns: in, <0 waits without limit, 0 does not wait.
 * @count: out, completions written.
 * @flags: in, must be zero.
 * @reserved: must be zero.
 *
 * Returns 0 with @count possibly below @min on timeout; EINTR if a signal arrived before
 * anything was collected.
 */
struct p2pio_reap {
	__u64 completions;
	__u32 max;
	__u32 min;
	__s64 timeout_ns;
	__u32 count;
	__u32 flags;
	__u64 reserved[2];
};

/* Latency histogram: bucket 0 counts commands under 1 us, bucket i (1..14) those in
 * [2^(i-1), 2^i) us, the last bucket those of 2^14 us (16.4 ms) and more. */
#define P2PIO_LAT_BUCKETS 16

/* p2pio_stats.scope */
#define P2PIO_STATS_FD 0	/* counters of this open fd */
#define P2PIO_STATS_GLOBAL 1	/* counters of the whole module since load (CAP_SYS_ADMIN) */

/**
 * struct p2pio_stats - P2PIO_IOC_STATS: counters.
 * @scope: in, P2PIO_STATS_FD or P2PIO_STATS_GLOBAL.
 * @flags: in, must be zero.
 * @reads_submitted: accepted reads.
 * @reads_completed: reads that completed with status 0.
 * @reads_failed: reads that completed with a negative status.
 * @bytes: bytes transferred by successful commands.
 * @commands: NVMe commands issued.
 * @splits: extra commands needed because a read was split (commands - reads issued).
 * @errors: NVMe commands that completed with an error.
 * @inflight_cmds: NVMe commands issued and not yet completed (a gauge).
 * @outstanding: reads accepted and not yet reaped (a gauge).
 * @live_files: registered files (a gauge).
 * @live_pins: pinned memory handles (a gauge).
 * @live_prp_pages: PRP list pages allocated (a gauge).
 * @live_fds: open /dev/p2pio fds (a gauge; global scope only, else 0).
 * @revoked: pins revoked by their owner (the free callback fired).
 * @latency: per-command latency histogram, see P2PIO_LAT_BUCKETS.
 * @lease_watches: registrations watching their layout lease for a breaker that sleeps on
 *                 it unasked (a gauge; global scope only, else 0): only those made while
 *                 a lease break was under way or had ended less than 10 s before.
 * @reserved: zero.
 */
struct p2pio_stats {
	__u32 scope;
	__u32 flags;
	__u64 reads_submitted;
	__u64 reads_completed;
	__u64 reads_failed;
	__u64 bytes;
	__u64 commands;
	__u64 splits;
	__u64 errors;
	__u64 inflight_cmds;
	__u64 outstanding;
	__u64 live_files;
	__u64 live_pins;
	__u64 live_prp_pages;
	__u64 live_fds;
	__u64 revoked;
	__u64 latency[P2PIO_LAT_BUCKETS];
	__u64 lease_watches;
	__u64 reserved[7];
};

#define P2PIO_IOC_MAGIC 0xE2

#define P2PIO_IOC_VERSION _IOR(P2PIO_IOC_MAGIC, 0x00, struct p2pio_version)
#define P2PIO_IOC_REGISTER_FILE _IOWR(P2PIO_IOC_MAGIC, 0x01, struct p2pio_register_file)
#define P2PIO_IOC_UNREGISTER_FILE _IOW(P2PIO_IOC_MAGIC, 0x02, struct p2pio_handle_arg)
#define P2PIO_IOC_PIN _IOWR(P2PIO_IOC_MAGIC, 0x03, struct p2pio_pin)
#define P2PIO_IOC_UNPIN _IOW(P2PIO_IOC_MAGIC, 0x04, struct p2pio_handle_arg)
#define P2PIO_IOC_SUBMIT _IOWR(P2PIO_IOC_MAGIC, 0x05, struct p2pio_submit)
#define P2PIO_IOC_REAP _IOWR(P2PIO_IOC_MAGIC, 0x06, struct p2pio_reap)
#define P2PIO_IOC_STATS _IOWR(P2PIO_IOC_MAGIC, 0x07, struct p2pio_stats)

#endif /* _UAPI_P2PIO_IOCTL_H */
