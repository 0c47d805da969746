/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * p2pio.h - private declarations shared by the files of p2pio.ko.
 *
 * Object model (all per open fd, struct p2pio_ctx):
 *  - struct p2pio_file: a registered file: its extents on one NVMe namespace.
 *  - struct p2pio_mem: a pinned device-memory range of one provider, with a DMA mapping
 *    per NVMe controller that used it (struct p2pio_mem_map, made on first use).
 *  - struct p2pio_rd: one accepted read; split into struct p2pio_cmd NVMe commands; when
 *    the last command completes, the read is queued on the fd's completion list.
 * struct p2pio_nvme is global: one per NVMe controller, holding its PRP dma_pool.
 */
#ifndef P2PIO_H
#define P2PIO_H

#include <linux/atomic.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/uidgid.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/xarray.h>

#include "uapi/p2pio_ioctl.h"

/* Limits reported by P2PIO_IOC_VERSION. */
#define P2PIO_MAX_BATCH 1024
#define P2PIO_MAX_OUTSTANDING 4096
#define P2PIO_MAX_FILES 1024
#define P2PIO_MAX_PINS 1024
#define P2PIO_MAX_CMDS 256
#define P2PIO_MAX_READ_LEN (1ULL << 30)
/* Largest pin: beyond any GPU's BAR1 today, and a bound on providers' page arrays. */
#define P2PIO_MAX_PIN_LEN (1ULL << 40)
/* Extent list cap per file: 24 bytes each, 48 MiB at most. */
#define P2PIO_MAX_EXTENTS (2U << 20)
/* One NVMe command moves at most this many LBAs (the NLB field is 16 bits). */
#define P2PIO_MAX_CMD_LBAS 65536U
/*
 * PRP list pages one command may need: a command moves at most max_hw_sectors, which
 * nvme-pci caps at 4 MiB on 6.1 (NVME_MAX_KB_SZ), i.e. 1025 PRP entries, 3 list pages;
 * file.c caps max_cmd_bytes at 8 MiB (2049 entries, 5 pages), so 8 pages always suffice.
 */
#define P2PIO_MAX_PRP_PAGES 8
#define P2PIO_MAX_CMD_BYTES (8ULL << 20)

struct p2pio_counters {
	atomic64_t reads_submitted;
	atomic64_t reads_completed;
	atomic64_t reads_failed;
	atomic64_t bytes;
	atomic64_t commands;
	atomic64_t splits;
	atomic64_t errors;
	atomic64_t inflight_cmds;
	atomic64_t outstanding;
	atomic64_t live_files;
	atomic64_t live_pins;
	atomic64_t live_prp_pages;
	atomic64_t live_fds;
	atomic64_t revoked;
	atomic64_t latency[P2PIO_LAT_BUCKETS];
	atomic64_t lease_watches;	/* global only: p2pio_lease_watch() armed */
};

extern struct p2pio_counters p2pio_global;

/* Adds @n to counter @field of @ctx's counters and of the global ones. */
#define p2pio_count(ctx, field, n)                              \
	do {                                                    \
		atomic64_add((n), &(ctx)->stats.field);         \
		atomic64_add((n), &p2pio_global.field);         \
	} while (0)

/*
 * One binding of an NVMe controller (PCI function) to its driver, which registered
 * files live on. When the driver lets go of the device (unbind, or removal, which
 * unbinds first), its namespace queues are dead (no new command can start) and
 * p2pio_nvme_gone() undoes every DMA mapping made for it and destroys the PRP pool
 * while the device still has its IOMMU group and sysfs directory. A later binding of the
 * same device gets a new struct p2pio_nvme.
 */
struct p2pio_nvme {
	struct list_head node;		/* on the global list, under its mutex */
	struct kref ref;
	struct pci_dev *pdev;
	/*
	 * PRP list pages: 4 KiB, 4 KiB aligned. Only used while holding a request of one of
	 * the controller's queues, which the unbind waits for: no lock needed.
	 */
	struct dma_pool *prp_pool;
	/*
	 * @maps and @dead. A mutex, held across the provider's map and unmap calls for this
	 * controller, which sleep (nvidia_p2p_dma_map_pages() takes the NVIDIA driver's API
	 * lock; IOMMU mappings). On purpose: the unbind (p2pio_nvme_gone()) sets @dead and
	 * undoes every map under it, so a map in progress is finished before the unbind goes
	 * on (and with it the device's removal from its IOMMU group), and is then undone by
	 * it; a map made outside the lock and checked against @dead after could still be
	 * running on a device already gone. No deadlock: what runs under the driver's API
	 * lock (the free callback, p2pio_mem_revoke()) waits only for busy and call
	 * references, never held by a thread waiting for this lock or the API lock; a
	 * layout break waits for the file's issuers, which may wait here, but no holder of
	 * this lock waits for a break or a file system lock. Its cost is contention: one
	 * controller's maps (one per pin, on first use) and unmaps run one at a time.
	 * Documentation/kmod-internals.md, "Lifetimes and locks".
	 */
	struct mutex lock;
	struct list_head maps;		/* struct p2pio_mem_map.nvme_node */
	bool dead;			/* unbound: no new mappings, no new files */
};

struct p2pio_extent {
	u64 foff;	/* byte offset in the file */
	u64 doff;	/* byte offset in the namespace */
	u64 len;	/* bytes */
};

/*
 * One local user (real uid) with /dev/p2pio open: what all their fds hold together,
 * against the per-user limits (module parameters max_user_*). Lives while one of the
 * user's fds is open.
 */
struct p2pio_user {
	struct hlist_node node;		/* in the table of user.c, under its mutex */
	kuid_t uid;
	unsigned int fds;		/* under user.c's mutex */
	atomic_t cmds;			/* NVMe commands in flight */
	atomic_t files;			/* registered files */
	atomic_t pins;			/* pins (each a driver page table) */
	atomic64_t ext_bytes;		/* extent lists' memory */
	wait_queue_head_t cmd_wait;	/* a command of this user completed */
};

struct p2pio_file {
	u32 handle;
	struct file *filp;		/* our reference to the user's file; write access denied */
	/*
	 * The module's own open file of it, read-only, opened with the kernel's credential:
	 * it holds the layout lease. Giving a lease back clears its file's owner (F_SETOWN,
	 * F_SETSIG: lease_modify()), which must not be the user's.
	 */
	struct file *lease_filp;
	struct p2pio_user *user;	/* charged for the file and its extent list */
	u64 ext_charged;		/* bytes of extent list charged to @user */
	/*
	 * The file system is about to change the file's block map (the layout lease broke):
	 * no read starts any more, and break_work gives the lease back once the ones in
	 * flight (@busy) are done. Set once, never cleared.
	 */
	bool stale;
	bool leased;			/* holds its layout lease */
	bool verity;			/* became a verity file, logged (p2pio_file_check()) */
	struct work_struct break_work;
	/*
	 * The lease (struct p2pio_lease of compat.h), valid while @leased, and the work that
	 * looks for a breaker sleeping on it unasked (p2pio_lease_watch()).
	 */
	void *lease;
	struct delayed_work watch_work;
	bool watching;			/* @watch_work armed, counted in lease_watches */
	bool break_open;		/* its lease broke and is not given back yet */
	struct block_device *bdev;	/* the partition or namespace the fs is on */
	struct request_queue *q;	/* the namespace's blk-mq queue */
	struct p2pio_nvme *nvme;
	u32 nsid;
	unsigned int lba_shift;
	u64 size;			/* i_size at registration */
	u64 max_cmd_bytes;		/* per command: max_hw_sectors and 65536 LBAs */
	struct p2pio_extent *ext;
	u32 nr_ext;
	atomic_t busy;			/* commands in flight and issuers (p2pio_file_get) */
};

struct p2pio_ctx;
struct p2pio_mem;
struct gendisk;
struct pci_dev;

/* A pin's DMA mapping for one NVMe controller binding; the pin owns it. */
struct p2pio_mem_map {
	struct list_head node;		/* on mem->maps, under mem->maps_lock */
	struct list_head nvme_node;	/* on nvme->maps, under nvme->lock */
	struct p2pio_mem *mem;
	struct p2pio_nvme *nvme;
	bool unmapped;			/* undone (controller gone, revocation); nvme->lock */
	void *priv;			/* the provider's mapping */
	dma_addr_t base;		/* pcibar: the mapped range's start */
};

/**
 * struct p2pio_mem_provider - a source of device memory that NVMe can DMA into.
 * @id: its P2PIO_PROVIDER_* value in struct p2pio_pin.
 * @name: for logs.
 * @feature: its P2PIO_FEAT_PROVIDER_* bit.
 * @owner_frees: a revocation means the memory's owner frees the provider's mappings
 *	itself (NVIDIA's free callback): after one starts, p2pio never calls @unmap. When
 *	false, a revocation (the target device going away) makes p2pio undo the mappings.
 * @available: whether it can pin now (NULL: always).
 * @pin: checks the provider's fields of @arg (its own permission rules included) and
 *	pins, returning a struct p2pio_mem from p2pio_mem_alloc() with length, skew,
 *	page_size, align, out_flags and priv filled in. Process context.
 * @map: maps the pin for DMA by @nvme's controller into @map. Called under
 *	mem->maps_lock and nvme->lock, holding no busy reference (see mem.c). A provider
 *	whose owner may revoke reads the owner's structures only inside
 *	p2pio_mem_call_begin()/_end().
 * @dma: the DMA address of internal byte offset @off; contiguous up to the next
 *	mem->page_size boundary, and (dma & 4095) == (off & 4095). Only called while a
 *	busy reference is held.
 * @unmap: undoes @map. Called under nvme->lock, never twice for one map.
 * @revoke: after a revocation, once no command and no provider call uses the pin
 *	(may be NULL).
 * @release: unpins unless @revoked (whatever @revoke left), frees mem->priv. Returns
 *	false when the pin could not be let go, so that @mem must stay allocated.
 * @node: on the provider list.
 */
struct p2pio_mem_provider {
	u32 id;
	const char *name;
	u64 feature;
	bool owner_frees;
	bool (*available)(void);
	int (*pin)(struct p2pio_ctx *ctx, struct p2pio_pin *arg, struct p2pio_mem **out);
	int (*map)(struct p2pio_mem *mem, struct p2pio_nvme *nvme, struct p2pio_mem_map *map);
	dma_addr_t (*dma)(struct p2pio_mem *mem, struct p2pio_mem_map *map, u64 off);
	void (*unmap)(struct p2pio_mem *mem, struct p2pio_mem_map *map);
	void (*revoke)(struct p2pio_mem *mem);
	bool (*release)(struct p2pio_mem *mem, bool revoked);
	struct list_head node;
};

enum p2pio_mem_state {
	P2PIO_MEM_LIVE,
	P2PIO_MEM_REVOKED,	/* the owner took it back */
	P2PIO_MEM_RELEASING,	/* we are unpinning it (a revocation may still come) */
};

struct p2pio_mem {
	u32 handle;
	const struct p2pio_mem_provider *prov;
	struct p2pio_ctx *ctx;
	struct p2pio_user *user;	/* charged for the pin, once pinned; NULL before */
	u64 length;		/* user-visible bytes, from offset 0 */
	u64 skew;		/* internal offset of user offset 0 */
	u64 page_size;
	u32 align;
	u32 out_flags;
	spinlock_t lock;	/* state, revoked, busy hand-out, calls; never held across a provider call */
	enum p2pio_mem_state state;
	bool revoked;		/* a revocation started (whatever the state) */
	bool revoke_done;	/* ... and has finished with the pin */
	unsigned int calls;	/* provider calls that read the owner's structures */
	struct mutex maps_lock;	/* maps; held across provider map calls */
	struct list_head maps;
	atomic_t busy;		/* commands in flight into this memory */
	wait_queue_head_t idle;	/* woken when busy or calls drop to 0, and at revoke end */
	void *priv;		/* provider state */
};

/* Per open fd. */
struct p2pio_ctx {
	struct p2pio_user *user;	/* who opened it */
	struct mutex lock;		/* handles, submission */
	struct xarray files;
	struct xarray mems;
	u32 next_file;			/* handles are allocated cyclically */
	u32 next_mem;
	u32 nr_files;
	u32 nr_mems;

	struct mutex reap_lock;		/* one reaper at a time */
	spinlock_t cq_lock;		/* done list, outstanding */
	struct list_head done;		/* struct p2pio_rd, completed, not reaped */
	u32 nr_done;
	u32 outstanding;		/* accepted, not reaped */
	wait_queue_head_t cq_wait;	/* completions, poll */

	atomic_t inflight;		/* NVMe commands in flight */
	wait_queue_head_t cmd_wait;	/* a command slot freed, or all idle */

	struct p2pio_counters stats;
};

/* One accepted read. */
struct p2pio_rd {
	struct list_head node;		/* on ctx->done once complete */
	struct p2pio_ctx *ctx;
	atomic_t pending;		/* commands in flight + 1 while issuing */
	int status;			/* first error, or 0 */
	u32 ncmds;
	u64 tag;
	u64 length;
	u64 t_start;
	u64 latency_ns;
};

/* main.c */
extern struct device *p2pio_dev;

/* stats.c */
int p2pio_stats_init(void);
void p2pio_stats_exit(void);
void p2pio_stats_fill(struct p2pio_counters *c, struct p2pio_stats *out);
void p2pio_count_latency(struct p2pio_ctx *ctx, u64 ns);

/* file.c */
int p2pio_file_init(void);	/* the credential leases are taken and given back with */
void p2pio_file_exit(void);
int p2pio_file_register(struct p2pio_ctx *ctx, struct p2pio_register_file *arg,
			struct p2pio_file **out);
int p2pio_file_unregister(struct p2pio_ctx *ctx, u32 handle);
void p2pio_file_undo(struct p2pio_ctx *ctx, struct p2pio_file *f, u32 handle);
int p2pio_file_check(struct p2pio_file *f);
int p2pio_file_get(struct p2pio_file *f);
void p2pio_file_put(struct p2pio_file *f);

/* ns.c */
int p2pio_ns_check_format(struct file *filp, struct gendisk *disk, struct pci_dev *pdev,
			  u32 nsid, unsigned int lbs);

/* user.c */
extern unsigned int p2pio_max_user_cmds;
extern unsigned int p2pio_max_user_files;
extern unsigned int p2pio_max_user_pins;
extern unsigned long p2pio_max_user_extent_kib;
struct p2pio_user *p2pio_user_get(void);
void p2pio_user_put(struct p2pio_user *u);
bool p2pio_user_take(atomic_t *count, unsigned int limit);
int p2pio_user_cmd_slot(struct p2pio_user *u);
void p2pio_user_cmd_done(struct p2pio_user *u);
int p2pio_user_charge_ext(struct p2pio_user *u, u64 bytes);
void p2pio_user_uncharge_ext(struct p2pio_user *u, u64 bytes);
void p2pio_file_release(struct p2pio_ctx *ctx, struct p2pio_file *f);

/* mem.c: pins, whatever the provider */
void p2pio_mem_provider_register(struct p2pio_mem_provider *prov);
void p2pio_mem_provider_unregister(struct p2pio_mem_provider *prov);
u64 p2pio_mem_features(void);
const char *p2pio_mem_provider_names(char *buf, size_t len);
int p2pio_mem_pin(struct p2pio_ctx *ctx, struct p2pio_pin *arg, struct p2pio_mem **memp);
void p2pio_mem_undo(struct p2pio_ctx *ctx, struct p2pio_mem *mem, u32 handle);
int p2pio_mem_unpin(struct p2pio_ctx *ctx, u32 handle);
void p2pio_mem_release(struct p2pio_ctx *ctx, struct p2pio_mem *mem);
struct p2pio_mem *p2pio_mem_alloc(struct p2pio_ctx *ctx, const struct p2pio_mem_provider *prov);
void p2pio_mem_free_unused(struct p2pio_mem *mem);
void p2pio_mem_revoke(struct p2pio_mem *mem);
struct p2pio_mem_map *p2pio_mem_get_map(struct p2pio_mem *mem, struct p2pio_nvme *nvme);
bool p2pio_mem_get(struct p2pio_mem *mem);
void p2pio_mem_put(struct p2pio_mem *mem);
bool p2pio_mem_call_begin(struct p2pio_mem *mem);
void p2pio_mem_call_end(struct p2pio_mem *mem);
void p2pio_mem_unmap_locked(struct p2pio_mem_map *map);

/* Providers: each fills a struct p2pio_mem_provider in and registers it. */
int p2pio_nvidia_init(void);
void p2pio_nvidia_exit(void);
int p2pio_pcibar_init(void);
void p2pio_pcibar_exit(void);

/* nvme.c */
struct p2pio_nvme *p2pio_nvme_get(struct pci_dev *pdev);
void p2pio_nvme_put(struct p2pio_nvme *nvme);
int p2pio_nvme_init(void);
void p2pio_nvme_exit(void);
int p2pio_nvme_read(struct p2pio_ctx *ctx, struct p2pio_rd *rd, struct p2pio_file *f,
		    u64 doff, struct p2pio_mem *mem, struct p2pio_mem_map *map,
		    u64 moff, u64 len);

/* read.c */
int p2pio_submit(struct p2pio_ctx *ctx, struct p2pio_submit *arg);
int p2pio_reap(struct p2pio_ctx *ctx, struct p2pio_reap *arg);
ssize_t p2pio_read_completions(struct p2pio_ctx *ctx, char __user *buf, size_t len,
			       bool nonblock);
void p2pio_rd_put(struct p2pio_rd *rd);
void p2pio_cmd_done(struct p2pio_ctx *ctx, struct p2pio_rd *rd, int err);
void p2pio_ctx_drain(struct p2pio_ctx *ctx);

#endif /* P2PIO_H */
