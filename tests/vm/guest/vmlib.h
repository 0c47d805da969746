/* SPDX-License-Identifier: MIT */
/*
 * vmlib.h - helpers for the guest test programs of tests/vm.
 *
 * A test program is a static C program tests/vm/guest/test-NAME.c printing TAP (through
 * tests/unit/tap.h) on stdout, which the guest's /init connects to the host channel.
 * It uses:
 *  - the host channel: ask the host to check bytes in the "GPU" BAR against a file's
 *    content, or to poison a BAR range before a read (the host, not the guest, compares:
 *    it reads the file behind the ivshmem BAR);
 *  - "GPU memory" from the NVIDIA test double (/dev/nvdouble), or a plain BAR range for
 *    the pcibar provider, both described by struct vm_mem so checks are the same;
 *  - thin wrappers of the /dev/p2pio ioctls that return 0 or -errno.
 *
 * The files under test are listed in /etc/vm-files (written by run.sh and vm-setup):
 * one line per file, "mount-point name size kind", kind being "data" (pattern content),
 * "frag" (pattern, fragmented on purpose), "hole", "unwritten", "secret" (root-only),
 * "hotremove" (pattern, on the controller final-hotremove takes away).
 */
#ifndef VMLIB_H
#define VMLIB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "p2pio_ioctl.h"
#include "nvdouble_ioctl.h"
#include "pattern.h"

#define VM_KIB 1024ull
#define VM_MIB (1024ull * 1024)

/* ---- host channel ----
 *
 * Checks and fills are streamed to the host without waiting; vm_host_sync() waits until
 * the host has done all of them and returns 0 if every check since the previous sync
 * matched, -1 otherwise (vm_host_why() says how many failed and what the first was).
 * Sync after a poison, before starting reads into the range.
 */
int vm_host_sync(void);

/* Check: every byte of BAR [bar_off, +len) equals the pattern of file @name from @foff. */
int vm_host_pattern(uint64_t bar_off, uint64_t len, const char *name, uint64_t foff);
/* ... equals host file FILESDIR/@name (e.g. the demo's model) from @foff. */
int vm_host_file(uint64_t bar_off, uint64_t len, const char *name, uint64_t foff);
/* ... all equal @byte (nothing landed there). */
int vm_host_fill_is(uint64_t bar_off, uint64_t len, int byte);
/* Fill BAR [bar_off, +len) with @byte. */
int vm_host_poison(uint64_t bar_off, uint64_t len, int byte);
/* Checks made while on are expected to fail: their mismatches do not fail the run
 * (the sync still reports them). */
void vm_host_expect_mismatch(bool on);
/* The reason the last request failed, for TAP diagnostics. */
const char *vm_host_why(void);

/* ---- destination memory ---- */

/**
 * struct vm_mem - destination memory as the module sees it, and where it lies in the BAR
 * @va:		nvidia: the "GPU virtual address"; pcibar: the BAR offset
 * @size:	bytes usable from @va
 * @va_offset:	@va % 65536 for GPU memory, 0 for a BAR range
 * @npages:	64 KiB pages in @pages
 * @pages:	BAR offset of each 64 KiB page, from @va - @va_offset
 * @gpu:	true for memory from the test double
 * @nvd_fd:	the /dev/nvdouble fd that owns it (freed on close)
 */
struct vm_mem {
	uint64_t va;
	uint64_t size;
	uint32_t va_offset;
	uint32_t npages;
	uint64_t *pages;
	bool gpu;
	int nvd_fd;
};

/* Opens /dev/nvdouble (each fd is a "process" of the GPU allocator). */
int vm_nvd_open(void);
int vm_gpu_alloc(int nvd_fd, struct vm_mem *m, uint64_t size, uint32_t va_offset,
		 uint32_t flags);
int vm_gpu_free(struct vm_mem *m);
/* Describes @size bytes at @va of an allocation someone else in this process made (a
 * library): its BAR pages, for host checks. Release with vm_mem_release(). */
int vm_gpu_lookup(int nvd_fd, uint64_t va, uint64_t size, struct vm_mem *m);
int vm_nvd_info(struct nvdouble_info *info);
/* The double's BAR1 aperture for pins, in KiB (0: the whole BAR); 0 or -errno. */
int vm_nvd_set_bar1_kib(unsigned int kib);
/* A BAR range for the pcibar provider (no allocator: callers keep ranges apart). */
void vm_bar_range(struct vm_mem *m, uint64_t bar_off, uint64_t size);
void vm_mem_release(struct vm_mem *m);
/* BAR offset of byte @off of @m. */
uint64_t vm_mem_bar(const struct vm_mem *m, uint64_t off);

/* Host checks of bytes [off, +len) of @m, split where the BAR pages are not contiguous. */
int vm_mem_expect_file(const struct vm_mem *m, uint64_t off, uint64_t len, const char *name,
		       uint64_t foff);
int vm_mem_expect_fill(const struct vm_mem *m, uint64_t off, uint64_t len, int byte);
int vm_mem_poison(const struct vm_mem *m, uint64_t off, uint64_t len, int byte);

/* ---- /dev/p2pio ---- */

/* Opens /dev/p2pio and checks the ABI version; -errno if the module is not there. */
int vm_p2p_open(void);
int vm_p2p_version(int pfd, struct p2pio_version *v);
int vm_p2p_register(int pfd, int file_fd, struct p2pio_register_file *out);
int vm_p2p_unregister(int pfd, uint32_t handle);
int vm_p2p_pin_gpu(int pfd, const struct vm_mem *m, uint32_t flags, struct p2pio_pin *out);
int vm_p2p_pin_bar(int pfd, const struct vm_mem *m, struct p2pio_pin *out);
int vm_p2p_unpin(int pfd, uint32_t handle);
int vm_p2p_submit(int pfd, const struct p2pio_read *r, uint32_t n, uint32_t *accepted);
int vm_p2p_reap(int pfd, struct p2pio_completion *c, uint32_t max, uint32_t min,
		int64_t timeout_ns, uint32_t *count);
int vm_p2p_stats(int pfd, uint32_t scope, struct p2pio_stats *s);
/*
 * Whether the module has nothing left of anyone (P2PIO_STATS_GLOBAL): no command or read
 * in flight, no registered file, pin or PRP page. False also where the counters cannot be
 * read. What a test checks at its end.
 */
bool vm_nothing_left(int pfd);
/* Submits one read and waits for it (10 s at most); its status, or -errno of a call. */
int vm_p2p_read(int pfd, uint32_t file, uint32_t mem, uint64_t foff, uint64_t len,
		uint64_t moff);

/**
 * struct vm_target - pinned destination memory of one provider
 * @mem:	where it is (for host checks)
 * @pin:	the P2PIO_IOC_PIN result (@pin.handle for reads)
 * @backing:	the double's allocation behind it (for pcibar: reserves the BAR range)
 */
struct vm_target {
	struct vm_mem mem;
	struct p2pio_pin pin;
	struct vm_mem backing;
};

/*
 * Allocates @size bytes of "GPU memory" from the double on @nvd (with @va_offset and
 * NVDOUBLE_ALLOC_* @aflags) and pins it with @provider (P2PIO_PROVIDER_*), passing
 * P2PIO_PIN_F_* @pflags. 0 or -errno (of the step that failed).
 */
int vm_target_new(int pfd, int nvd, uint32_t provider, uint64_t size, uint32_t va_offset,
		  uint32_t aflags, uint32_t pflags, struct vm_target *t);
/* Unpins and frees; returns the unpin result. */
int vm_target_free(int pfd, struct vm_target *t);

/* The ivshmem device's PCI address, for pcibar pins. */
int vm_ivshmem_bdf(uint32_t *domain, uint32_t *bus, uint32_t *devfn);
/* The PCI address ("0000:00:05.0") of the NVMe controller with serial @serial, into
 * @bdf (for /sys/bus/pci/devices/<bdf>/remove); 0 or -ENODEV. */
int vm_nvme_ctrl_bdf(const char *serial, char *bdf, size_t len);

/* ---- NVMe controllers ---- */

/*
 * The NVMe controller with serial @serial: its PCI address into @bdf (may be NULL) and,
 * with @nsid > 0, the block device name of that namespace ("nvme1n2") into @ns (may be
 * NULL). 0, or -ENODEV when there is no such controller or namespace (yet).
 */
int vm_nvme_find(const char *serial, uint32_t nsid, char *bdf, size_t bdflen, char *ns,
		 size_t nslen);

/* ---- files and kernel attributes ---- */

/*
 * Writes @s (no newline added) to @path in one write(), as a sysfs or /proc attribute
 * wants it; 0 or -errno (-EIO for a short write).
 */
int vm_write_str(const char *path, const char *s);
/*
 * Reads the first line of @path (a sysfs or /proc attribute) into @buf, without its
 * newline; 0 or -errno, -ENODATA for an empty file. On failure @buf is left as it was,
 * so a caller may keep a default in it (the value it restores after a test).
 */
int vm_read_str(const char *path, char *buf, size_t len);
/* Sleeps @ms milliseconds (not resumed after a signal). */
void vm_sleep_ms(unsigned int ms);
/* The kernel's taint flags (/proc/sys/kernel/tainted); 0 where unreadable. */
unsigned long vm_tainted(void);

struct fanotify_event_metadata;
/**
 * struct vm_fanotify - a fanotify permission listener (FAN_CLASS_CONTENT) whose thread
 * reads its events (polling @stop every 50 ms) and hands each to @event, which answers
 * the permission events it is asked; each event's fd is closed after it unless @event
 * returns true (it closed the fd, or keeps it). Tests mark what it listens to on @fd.
 */
struct vm_fanotify {
	int fd;
	bool (*event)(int fan, const struct fanotify_event_metadata *m);
	unsigned long taint_before;	/* the kernel's taints before the listener */
	bool taint_told;
	atomic_bool stop;
	pthread_t th;
};
/* Starts @l with @event: 0, or -errno where fanotify_init() or the thread failed. */
int vm_fanotify_start(struct vm_fanotify *l,
		      bool (*event)(int fan, const struct fanotify_event_metadata *m));
/*
 * Debian's kernels taint themselves X (auxiliary, bit 16) when a fanotify permission
 * listener marks something ("Using fanotify permission checks may lead to deadlock;
 * tainting kernel"). The boot's last check allows no taint but O and E and those a test
 * recorded in /tmp/taint-allowed: this records X there where it was not set before @l
 * started and is now. True the first time it does so (the caller may say so).
 */
bool vm_fanotify_allow_taint(struct vm_fanotify *l);
/* Ends @l's thread and closes its fd. */
void vm_fanotify_stop(struct vm_fanotify *l);

/**
 * struct vm_extent - one extent of a file, as FIEMAP reports it
 * @logical:	byte offset in the file
 * @physical:	byte offset on the block device
 * @length:	bytes
 */
struct vm_extent {
	uint64_t logical;
	uint64_t physical;
	uint64_t length;
};

/*
 * The extents of @fd (FIEMAP, after syncing the file), the first @max of them into
 * @out: where its blocks are, for tests that hand them to another file. Their number
 * (at most @max), or -errno.
 */
int vm_file_extents(int fd, struct vm_extent *out, int max);
/* CLOCK_MONOTONIC in nanoseconds (the clock of the library's latencies). */
uint64_t vm_now_ns(void);
/*
 * A read on a thread of its own, for tests that act while it waits in the module (a slow
 * map, a lease break): vm_p2p_read() of @len bytes from file offset 0 into pin offset 0,
 * its status and when it returned (vm_now_ns()). pthread_create(..., vm_timed_read, r).
 */
struct vm_timed_read {
	int pfd;
	uint32_t file, pin;
	uint64_t len;
	int status;
	_Atomic uint64_t end_ns;
};
void *vm_timed_read(void *arg);
/* Bytes an unprivileged user may still allocate on the file system of @path (statvfs). */
uint64_t vm_fs_free(const char *path);
/*
 * Waits, at most @timeout_ms, until the file system of @path has @bytes free for an
 * unprivileged user again: for a test that filled it, once it removed its files, so that
 * the next test finds the space it had. xfs frees an unlinked file's blocks in a
 * background worker (inodegc, since 5.19), which a loaded machine runs late (a test
 * after one that filled b1 failed with ENOSPC writing 32 MiB); statfs() hurries it.
 * 0, or -ETIMEDOUT.
 */
int vm_fs_wait_free(const char *path, uint64_t bytes, int timeout_ms);
/*
 * Dedupes [0, @len) of @src into @dst (FIDEDUPERANGE on @src, as the owner may through a
 * read-only fd): 0 when the file system shared what it compared (the bytes in @deduped
 * where not NULL: a file system may do less than @len in one call); -EILSEQ where the
 * contents differ, or -errno.
 */
int vm_dedupe(int src, int dst, uint64_t len, uint64_t *deduped);
/* Writes bytes [off, off + len) of the pattern of file @name (pattern.h) at @off of @fd;
 * 0 or -errno. */
int vm_write_pattern(int fd, const char *name, uint64_t off, uint64_t len);
/*
 * Gives @fd every block its file system will still hand out (fallocate: unwritten
 * extents; two rounds, as the log may hold some blocks busy in the first): after it, the
 * blocks another file frees are all the file system has to give. The bytes taken.
 */
uint64_t vm_fill_fs(int fd);
/*
 * Writes the pattern of file @name over every part of @fd's @nhave extents @have (from
 * vm_file_extents()) that lies on one of the @nold extents @old of another file, where
 * that file's data was: a reader still using @old's block addresses now gets @name's
 * bytes. Returns the bytes of @old written over.
 */
uint64_t vm_write_pattern_over(int fd, const char *name, const struct vm_extent *have,
			       int nhave, const struct vm_extent *old, int nold);
/*
 * Creates or truncates @path and fills it with bytes [0, @size) of the pattern of file
 * @pattern_of (so the host can check any byte of it, and a twin can hold the same
 * bytes), synced to disk; 0 or -errno.
 */
int vm_make_pattern_file(const char *path, const char *pattern_of, uint64_t size);

/* ---- the test environment ---- */

/* "iommu" when the VM has an emulated IOMMU, else "noiommu". */
const char *vm_variant(void);
/* The boot's phase ("default", "callback", "ptv1"): how the double was loaded. */
const char *vm_phase(void);
/* Path of a test file by name ("a1-data-1m"), from /etc/vm-files, or NULL. */
const char *vm_file_path(const char *name);
/* Iterates /etc/vm-files: returns false at the end. */
struct vm_file {
	char mnt[64];
	char name[64];
	char path[160];
	uint64_t size;
	char kind[16];
};
bool vm_file_next(int *cursor, struct vm_file *f);

/*
 * The group /dev/p2pio belongs to in the VM (init.sh sets it, as kmod/60-p2pio.rules
 * does on a real system with group "p2pio"); the node is 0660.
 */
#define VM_P2PIO_GID 990
/*
 * Drops to an unprivileged uid/gid (65534) in this process, a member of VM_P2PIO_GID
 * (a user allowed to use /dev/p2pio); false on failure.
 */
bool vm_drop_privileges(void);
/* The same, without the p2pio group (a user not allowed to open /dev/p2pio). */
bool vm_drop_privileges_nogroup(void);
/* 64-bit xorshift generator: seeded, reproducible. */
uint64_t vm_rand(uint64_t *state);

#ifdef P2PIO_TAP_H
/*
 * The opening most test programs share (with tap.h included first: its state is the
 * program's own): /dev/p2pio, the whole test skipped without it; /dev/nvdouble, bailing
 * out without it; with @host_sync, the host channel checked as a TAP test. Returns the
 * /dev/p2pio fd and the double's in *@nvd.
 */
static inline int vm_test_open(int *nvd, bool host_sync)
{
	int pfd = vm_p2p_open();

	if (pfd < 0)
		tap_skip_all("no /dev/p2pio");
	*nvd = vm_nvd_open();
	if (*nvd < 0)
		tap_bail("no /dev/nvdouble");
	if (host_sync)
		tap_ok(!vm_host_sync(), "host channel");
	return pfd;
}
#endif

#endif /* VMLIB_H */
