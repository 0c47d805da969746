/* SPDX-License-Identifier: MIT */
/*
 * p2pio/placement.h - libp2pio: where the bytes lie: extents, block devices and PCIe topology.
 *
 * Part of the public API; include <p2pio.h>, which includes every part. Its source is
 * userlib/src/placement/.
 */
#ifndef P2PIO_PUBLIC_PLACEMENT_H
#define P2PIO_PUBLIC_PLACEMENT_H

#include "p2pio/common.h"
#include "p2pio/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ===================================================================================== */
/* Where the bytes lie: extents and PCIe topology       (userlib/src/placement/)         */
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


/*
 * Topology: where the GPU and the NVMe controllers sit on PCIe, read through libpci (and
 * sysfs for the parent chain and IOMMU state), and a verdict per (GPU, NVMe) pair on
 * whether peer-to-peer DMA can work and what bounds it.
 */

/**
 * struct p2pio_pci_link - a PCIe link's generation (1 = 2.5 GT/s ... 6 = 64 GT/s; 0 unknown)
 * and width in lanes, as trained now and at most.
 */
struct p2pio_pci_link {
	uint8_t gen;
	uint8_t width;
	uint8_t max_gen;
	uint8_t max_width;
};

/* PCIe port types (the PCI Express capability's Device/Port Type), and "none". */
#define P2PIO_PCI_PORT_NONE	 -1 /* no PCI Express capability: conventional PCI */
#define P2PIO_PCI_PORT_ENDPOINT	 0x0
#define P2PIO_PCI_PORT_ROOT	 0x4
#define P2PIO_PCI_PORT_UPSTREAM	 0x5
#define P2PIO_PCI_PORT_DOWNSTREAM 0x6
#define P2PIO_PCI_PORT_RC_ENDPOINT 0x9

/**
 * struct p2pio_pci_dev - one PCI function.
 * @addr:        "dddd:bb:dd.f".
 * @vendor:      vendor id.
 * @device:      device id.
 * @class:       class code with programming interface (0x010802 for NVMe).
 * @name:        "vendor device" from the PCI ID database, or numbers.
 * @port_type:   P2PIO_PCI_PORT_*.
 * @link:        the function's link (for a port: the link below it for root and
 *               downstream ports, above it for an upstream port).
 * @has_acs:     the function has an ACS capability.
 * @acs_cap:     ACS capability register.
 * @acs_ctrl:    ACS control register (P2P request redirect is bit 2, completion redirect 3).
 * @iommu_group: the IOMMU group number, or -1.
 * @numa_node:   NUMA node, or -1.
 * @parent:      address of the upstream bridge, or "" under a host bridge.
 * @host_bridge: the sysfs host bridge the function sits under ("pci0000:00").
 */
struct p2pio_pci_dev {
	char addr[16];
	uint16_t vendor;
	uint16_t device;
	uint32_t class;
	char name[128];
	int port_type;
	struct p2pio_pci_link link;
	bool has_acs;
	uint16_t acs_cap;
	uint16_t acs_ctrl;
	int iommu_group;
	int numa_node;
	char parent[16];
	char host_bridge[24];
};

/**
 * struct p2pio_iommu_state - the IOMMU as the kernel set it up.
 * @enabled:     an IOMMU driver registered units (/sys/class/iommu is not empty).
 * @groups:      IOMMU groups in /sys/kernel/iommu_groups.
 * @passthrough: the default domain is identity (iommu=pt or equivalent).
 * @cmdline:     the iommu-related kernel command line options, space separated.
 * @summary:     one sentence.
 */
struct p2pio_iommu_state {
	bool enabled;
	int groups;
	bool passthrough;
	char cmdline[128];
	char summary[192];
};

/* Opaque: a scan of the PCI functions that matter to p2pio. */
struct p2pio_topo;

/**
 * p2pio_topo_scan() - read the PCI topology.
 * @sysfs: the sysfs root ("/sys"; tests pass a synthetic tree with bus/pci/devices and
 *         config space files); libpci reads config space through @sysfs/bus/pci.
 * @out:   the scan, freed with p2pio_topo_free().
 * @err:   optional error details.
 *
 * A machine with no PCI bus (or no GPU, no NVMe) scans fine and reports empty lists.
 *
 * Return: 0 or a negative errno.
 */
int p2pio_topo_scan(const char *sysfs, struct p2pio_topo **out, struct p2pio_error *err);

/**
 * p2pio_topo_free() - free a scan; NULL is ignored.
 * @topo: the scan.
 */
void p2pio_topo_free(struct p2pio_topo *topo);

/**
 * p2pio_topo_gpus() - the NVIDIA display and 3D controllers found, by address.
 * @topo:  the scan.
 * @count: set to the number of entries.
 *
 * Return: the array (owned by @topo).
 */
const struct p2pio_pci_dev *p2pio_topo_gpus(const struct p2pio_topo *topo, size_t *count);

/**
 * p2pio_topo_nvmes() - the NVMe controllers (class 0x010802) found, by address.
 * @topo:  the scan.
 * @count: set to the number of entries.
 *
 * Return: the array (owned by @topo).
 */
const struct p2pio_pci_dev *p2pio_topo_nvmes(const struct p2pio_topo *topo, size_t *count);

/**
 * p2pio_topo_find() - any scanned function (GPUs, NVMe controllers and the bridges above
 * them) by address.
 * @topo:   the scan.
 * @bus_id: "dddd:bb:dd.f", or CUDA's form with an 8-digit domain ("00000000:65:00.0");
 *          case does not matter.
 *
 * Return: the function, or NULL.
 */
const struct p2pio_pci_dev *p2pio_topo_find(const struct p2pio_topo *topo, const char *bus_id);

/**
 * p2pio_topo_iommu() - the IOMMU state read during the scan.
 * @topo: the scan.
 */
const struct p2pio_iommu_state *p2pio_topo_iommu(const struct p2pio_topo *topo);

/* How a GPU and an NVMe controller are connected, best first. */
enum p2pio_p2p_kind {
	P2PIO_P2P_SAME_SWITCH = 0, /* below one PCIe switch: traffic stays in the switch */
	P2PIO_P2P_HOST_BRIDGE,	    /* through the root complex of one host bridge */
	P2PIO_P2P_ACS_REDIRECT,     /* a switch, but ACS sends P2P up to the root complex */
	P2PIO_P2P_CROSS_HOST,	    /* different host bridges (sockets, root complexes) */
	P2PIO_P2P_UNKNOWN,	    /* a device is missing or the chain could not be read */
};

/**
 * struct p2pio_p2p_verdict - the verdict on one (GPU, NVMe) pair.
 * @kind:           enum p2pio_p2p_kind.
 * @good:           P2P is expected to work at full speed.
 * @common:         the closest common upstream bridge, or "" when there is none.
 * @path:           the chain GPU ... common ... NVMe, as addresses joined by " > "/" < ".
 * @acs_bridge:     the bridge whose ACS redirects P2P traffic, or "".
 * @slowest:        the function whose link is the slowest on the path.
 * @slowest_link:   that link.
 * @slowest_gbps:   its bandwidth in GB/s (one direction, after encoding).
 * @text:           the verdict as a sentence.
 */
struct p2pio_p2p_verdict {
	enum p2pio_p2p_kind kind;
	bool good;
	char common[16];
	char path[256];
	char acs_bridge[16];
	char slowest[16];
	struct p2pio_pci_link slowest_link;
	double slowest_gbps;
	char text[256];
};

/**
 * p2pio_topo_verdict() - judge the path between a GPU and an NVMe controller.
 * @topo: the scan.
 * @gpu:  the GPU's PCI address (any form p2pio_topo_find() takes).
 * @nvme: the NVMe controller's PCI address.
 * @out:  filled.
 *
 * Return: 0; -ENODEV when either address is not in the scan (@out then says so too).
 */
int p2pio_topo_verdict(const struct p2pio_topo *topo, const char *gpu, const char *nvme,
		       struct p2pio_p2p_verdict *out);

/**
 * p2pio_pci_link_gbps() - usable bandwidth of a link in GB/s, one direction.
 * @gen:   PCIe generation (1-6).
 * @width: lanes.
 *
 * Return: GB/s after line encoding (8b/10b for gen 1-2, 128b/130b for 3-5, FLIT for 6);
 * 0 when unknown.
 */
double p2pio_pci_link_gbps(unsigned int gen, unsigned int width);

#ifdef __cplusplus
}
#endif

#endif /* P2PIO_PUBLIC_PLACEMENT_H */
