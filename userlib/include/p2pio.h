/* SPDX-License-Identifier: MIT */
/*
 * p2pio.h - the one public header of libp2pio.
 *
 * libp2pio moves large language model weights from files on NVMe SSDs into NVIDIA GPU
 * memory: peer-to-peer (the SSD DMAs straight into VRAM through the p2pio kernel module)
 * where the platform allows, and through a fast bounce path in pinned host memory
 * everywhere else. It parses GGUF models, loads them whole, and streams layers and MoE
 * experts through a VRAM budget.
 *
 * Conventions, for every function declared here:
 *  - one prefix, p2pio_ (P2PIO_ for macros and enum constants);
 *  - state lives behind opaque handles; constructors return int and hand the object back
 *    through an out-parameter;
 *  - 0 (or a count) on success, a negative errno on failure (p2pio_strerror() names it);
 *    predicates return bool;
 *  - where a failure has more to say (a parse error's byte offset, say), the function
 *    takes an optional struct p2pio_error * and fills it.
 *
 * The header is organised in sections, one per component of the library.
 */
#ifndef P2PIO_H
#define P2PIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ===================================================================================== */
/* Common: versions and errors                                                            */
/* ===================================================================================== */

#define P2PIO_VERSION_MAJOR 0
#define P2PIO_VERSION_MINOR 1
#define P2PIO_VERSION_PATCH 0

/**
 * p2pio_version() - the library's version as a string, "MAJOR.MINOR.PATCH".
 */
const char *p2pio_version(void);

/**
 * p2pio_strerror() - a message for a negative errno returned by libp2pio.
 * @err: a negative (or positive) errno value.
 *
 * Return: a static string; never NULL.
 */
const char *p2pio_strerror(int err);

/**
 * struct p2pio_error - what went wrong, where: filled by functions that take one.
 * @code:   the negative errno the function returned.
 * @offset: the byte offset in the input the error refers to, or P2PIO_NO_OFFSET.
 * @msg:    a complete, human-readable sentence naming the field and the problem.
 */
struct p2pio_error {
	int code;
	uint64_t offset;
	char msg[256];
};

#define P2PIO_NO_OFFSET UINT64_MAX

/* ===================================================================================== */
/* GGUF: reader, writer, layers and experts              (userlib/src/gguf*.c)           */
/* ===================================================================================== */

/* ===================================================================================== */
/* Context, memory and I/O engine                  (userlib/src/{ctx,cuda,mem,engine}*.c) */
/* ===================================================================================== */

/* ===================================================================================== */
/* Where the bytes lie: extents and PCIe topology       (userlib/src/{extents,topo}.c)   */
/* ===================================================================================== */

/*
 * Extents: a userspace view of where a file's bytes lie on its block device, for
 * planning reads and for display (p2pio-gguf --extents, p2pio-check). The P2P path never
 * trusts these numbers: the kernel module resolves blocks itself. What they are good for
 * is saying, before any read, whether a file can be read peer to peer at all, and how
 * fragmented it is.
 */

/*
 * Flags of an extent. The ones in P2PIO_EXTENT_NOT_RAW mark bytes that are not plain
 * written data at a known place on the device, which P2P (raw LBA reads) must never read.
 */
#define P2PIO_EXTENT_LAST	 (1u << 0)  /* the file's last extent */
#define P2PIO_EXTENT_UNKNOWN	 (1u << 1)  /* location not known yet */
#define P2PIO_EXTENT_DELALLOC	 (1u << 2)  /* delayed allocation: no blocks yet */
#define P2PIO_EXTENT_ENCODED	 (1u << 3)  /* compressed or otherwise encoded */
#define P2PIO_EXTENT_ENCRYPTED	 (1u << 4)  /* encrypted on disk */
#define P2PIO_EXTENT_UNALIGNED	 (1u << 5)  /* not block aligned on the device */
#define P2PIO_EXTENT_INLINE	 (1u << 6)  /* data inside the metadata (inode) */
#define P2PIO_EXTENT_TAIL	 (1u << 7)  /* packed with other files' tails */
#define P2PIO_EXTENT_UNWRITTEN	 (1u << 8)  /* allocated (fallocate) but reads as zeros */
#define P2PIO_EXTENT_MERGED	 (1u << 9)  /* the file system merged several extents */
#define P2PIO_EXTENT_SHARED	 (1u << 10) /* shared with another file (reflink) */
#define P2PIO_EXTENT_HOLE	 (1u << 16) /* no extent: a hole, reads as zeros */

#define P2PIO_EXTENT_NOT_RAW                                                              \
	(P2PIO_EXTENT_UNKNOWN | P2PIO_EXTENT_DELALLOC | P2PIO_EXTENT_ENCODED |             \
	 P2PIO_EXTENT_ENCRYPTED | P2PIO_EXTENT_UNALIGNED | P2PIO_EXTENT_INLINE |           \
	 P2PIO_EXTENT_TAIL | P2PIO_EXTENT_UNWRITTEN | P2PIO_EXTENT_SHARED | P2PIO_EXTENT_HOLE)

/**
 * struct p2pio_extent - one extent of a file, as the file system reports it (FIEMAP).
 * @file_offset: byte offset in the file.
 * @length:      bytes.
 * @physical:    byte offset on the file system's block device (the partition, if any);
 *               meaningless with P2PIO_EXTENT_UNKNOWN or P2PIO_EXTENT_DELALLOC.
 * @flags:       P2PIO_EXTENT_* flags.
 *
 * Neighbours that are contiguous in the file and on the device and have the same flags
 * are merged (ext4 splits long runs into 128 MiB extents).
 */
struct p2pio_extent {
	uint64_t file_offset;
	uint64_t length;
	uint64_t physical;
	uint32_t flags;
	uint32_t reserved;
};

/**
 * struct p2pio_blockdev - the block device a file system lives on, read from sysfs and,
 * for NVMe namespaces, from libnvme.
 * @major:         device number of the file system's device (st_dev).
 * @minor:         ...
 * @name:          kernel name of that device ("nvme0n1p2", "vda", "loop0"); empty when
 *                 the file system has no block device (tmpfs, overlay, NFS).
 * @disk:          the whole disk it is a partition of (or @name itself).
 * @part_start:    byte offset of the partition on @disk (0 for a whole disk).
 * @is_partition:  @name is a partition of @disk.
 * @is_stacked:    @disk is a device-mapper, md, loop or other stacked device.
 * @is_nvme:       @disk is an NVMe namespace (nvmeXnY).
 * @is_pcie:       the NVMe controller is a local PCIe function (not over fabrics).
 * @is_multipath:  @disk is a native multipath head (nvmeXnY with no single controller).
 * @nsid:          NVMe namespace id (0 when not NVMe).
 * @ctrl:          NVMe controller name ("nvme0"), or empty.
 * @pci_addr:      the PCI function ("0000:01:00.0") of the NVMe controller or of the
 *                 disk's device, or empty.
 * @transport:     NVMe transport ("pcie", "tcp", "rdma", "fc", "loop"), or empty.
 * @model:         model string of the disk, if sysfs has one.
 * @lba_size:      logical block size in bytes (the namespace's LBA format for NVMe).
 * @metadata_size: metadata bytes per LBA (NVMe; P2P refuses namespaces that have some).
 * @max_hw_bytes:  the largest single request the device takes (max_hw_sectors_kb, which
 *                 folds NVMe's MDTS), in bytes.
 * @size:          bytes of @disk.
 * @source:        where the NVMe numbers came from: "libnvme" or "sysfs".
 * @why_not:       empty when the device can take P2P reads as far as userspace can tell;
 *                 otherwise the reason, as a sentence.
 */
struct p2pio_blockdev {
	unsigned int major;
	unsigned int minor;
	char name[32];
	char disk[32];
	uint64_t part_start;
	bool is_partition;
	bool is_stacked;
	bool is_nvme;
	bool is_pcie;
	bool is_multipath;
	uint32_t nsid;
	char ctrl[32];
	char pci_addr[32];
	char transport[16];
	char model[64];
	uint32_t lba_size;
	uint32_t metadata_size;
	uint64_t max_hw_bytes;
	uint64_t size;
	char source[16];
	char why_not[160];
};

/**
 * p2pio_blockdev_probe() - describe the block device with number @major:@minor.
 * @sysfs:  the sysfs root ("/sys"; tests pass a synthetic tree). With "/sys", NVMe
 *          namespaces are also asked through libnvme where that works.
 * @major:  device number, e.g. major(st.st_dev).
 * @minor:  ...
 * @out:    filled on success.
 * @err:    optional error details.
 *
 * A device number with no block device behind it (tmpfs, overlay) is not an error: @out
 * gets an empty @name and a @why_not.
 *
 * Return: 0, or a negative errno when sysfs could not be read.
 */
int p2pio_blockdev_probe(const char *sysfs, unsigned int major, unsigned int minor,
			 struct p2pio_blockdev *out, struct p2pio_error *err);

/* Flags for p2pio_extents_open(). */
#define P2PIO_EXTENTS_SYNC (1u << 0) /* flush dirty data first, so delalloc gets blocks */

/* Opaque: a file's extents and its block device. */
struct p2pio_extents;

/**
 * p2pio_extents_open() - read where the file open as @fd lies.
 * @fd:    a regular file open for reading.
 * @flags: P2PIO_EXTENTS_* flags.
 * @out:   the new object, freed with p2pio_extents_free().
 * @err:   optional error details.
 *
 * Return: 0; -EOPNOTSUPP when the file system has no FIEMAP (the object is then not
 * created: such a file can only be read through the page cache); other negative errnos.
 */
int p2pio_extents_open(int fd, unsigned int flags, struct p2pio_extents **out,
		       struct p2pio_error *err);

/**
 * p2pio_extents_open_path() - p2pio_extents_open() on a path.
 * @path:  the file.
 * @flags: P2PIO_EXTENTS_* flags.
 * @out:   the new object.
 * @err:   optional error details.
 *
 * Return: 0 or a negative errno.
 */
int p2pio_extents_open_path(const char *path, unsigned int flags, struct p2pio_extents **out,
			    struct p2pio_error *err);

/**
 * p2pio_extents_free() - free an extents object; NULL is ignored.
 * @ext: the object.
 */
void p2pio_extents_free(struct p2pio_extents *ext);

/**
 * p2pio_extents_count() - number of (merged) extents.
 * @ext: the object.
 */
size_t p2pio_extents_count(const struct p2pio_extents *ext);

/**
 * p2pio_extents_get() - extent @i, in file order.
 * @ext: the object.
 * @i:   index below p2pio_extents_count().
 *
 * Return: the extent, or NULL when @i is out of range.
 */
const struct p2pio_extent *p2pio_extents_get(const struct p2pio_extents *ext, size_t i);

/**
 * p2pio_extents_device() - the block device of the file's file system.
 * @ext: the object.
 */
const struct p2pio_blockdev *p2pio_extents_device(const struct p2pio_extents *ext);

/**
 * p2pio_extents_fstype() - the file system's type name ("ext4", "xfs", "overlay", ...).
 * @ext: the object.
 */
const char *p2pio_extents_fstype(const struct p2pio_extents *ext);

/**
 * p2pio_extents_file_size() - the file's size in bytes when it was read.
 * @ext: the object.
 */
uint64_t p2pio_extents_file_size(const struct p2pio_extents *ext);

/**
 * struct p2pio_lba_run - a piece of a file range that lies contiguously on the disk.
 * @file_offset: byte offset in the file.
 * @length:      bytes of the file in this run.
 * @disk_offset: byte offset on the whole disk (partition start included); 0 where @flags
 *               says the bytes have no place on the disk.
 * @lba:         first logical block on the whole disk (disk_offset / lba_size).
 * @nlb:         logical blocks the run touches (head and tail rounding included).
 * @flags:       the extent's P2PIO_EXTENT_* flags (P2PIO_EXTENT_HOLE for holes).
 */
struct p2pio_lba_run {
	uint64_t file_offset;
	uint64_t length;
	uint64_t disk_offset;
	uint64_t lba;
	uint64_t nlb;
	uint32_t flags;
	uint32_t reserved;
};

/**
 * p2pio_extents_lba_runs() - the LBA runs that hold file bytes [@offset, @offset+@len).
 * @ext:    the object.
 * @offset: file byte offset.
 * @len:    bytes; the part beyond the end of the file is ignored.
 * @runs:   array to fill (may be NULL when @max is 0).
 * @max:    its capacity.
 *
 * Holes come back as runs with P2PIO_EXTENT_HOLE.
 *
 * Return: the number of runs the range has (which may exceed @max: call again with a
 * larger array), or a negative errno.
 */
ssize_t p2pio_extents_lba_runs(const struct p2pio_extents *ext, uint64_t offset, uint64_t len,
			       struct p2pio_lba_run *runs, size_t max);

/**
 * struct p2pio_frag_summary - how a file range lies, in numbers.
 * @bytes:            bytes of the range inside the file.
 * @runs:             contiguous runs on the disk holding written data.
 * @mapped_bytes:     bytes in plain written extents (what P2P can read raw).
 * @hole_bytes:       bytes in holes.
 * @unwritten_bytes:  bytes in unwritten (fallocated) extents.
 * @delalloc_bytes:   bytes not yet allocated (delayed allocation, dirty data).
 * @other_bytes:      bytes in other extents P2P must not read raw (encoded, encrypted,
 *                    inline, tail-packed, unaligned, shared, unknown).
 * @largest_run:      bytes of the largest run of written data.
 * @not_raw_flags:    OR of P2PIO_EXTENT_NOT_RAW flags met in the range.
 * @runs_per_gib:     @runs per GiB of @mapped_bytes (0 when nothing is mapped).
 */
struct p2pio_frag_summary {
	uint64_t bytes;
	uint64_t runs;
	uint64_t mapped_bytes;
	uint64_t hole_bytes;
	uint64_t unwritten_bytes;
	uint64_t delalloc_bytes;
	uint64_t other_bytes;
	uint64_t largest_run;
	uint32_t not_raw_flags;
	double runs_per_gib;
};

/**
 * p2pio_extents_summary() - summarise file bytes [@offset, @offset+@len).
 * @ext:    the object.
 * @offset: file byte offset.
 * @len:    bytes (UINT64_MAX: to the end of the file).
 * @out:    filled.
 *
 * Return: 0 or a negative errno.
 */
int p2pio_extents_summary(const struct p2pio_extents *ext, uint64_t offset, uint64_t len,
			  struct p2pio_frag_summary *out);

/**
 * p2pio_extent_flag_reason() - why bytes with one P2PIO_EXTENT_NOT_RAW flag cannot be read
 * peer to peer, as a phrase.
 * @flag: one flag (the lowest set bit is used when several are given).
 *
 * Return: a static string; "" for flags that do not prevent P2P.
 */
const char *p2pio_extent_flag_reason(uint32_t flag);


/* ===================================================================================== */
/* Models: whole-model load and layer streaming                 (userlib/src/model*.c)   */
/* ===================================================================================== */

#ifdef __cplusplus
}
#endif

#endif /* P2PIO_H */
