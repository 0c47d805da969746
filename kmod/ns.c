// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * ns.c - the namespace's current LBA format, asked of the controller.
 *
 * p2pio's Read commands carry neither a metadata pointer nor PRACT, so they are only
 * safe on a format without metadata: with extended LBAs the controller would move
 * lbs + ms bytes per block into the destination (past the caller's buffer: a two-page
 * read makes PRP2 a PRP list the caller chose), with separate metadata it would write
 * to metadata pointer 0. The block layer cannot tell: nvme-core registers no integrity
 * profile for extended-LBA formats (it uses PRACT itself), nor any without
 * CONFIG_BLK_DEV_INTEGRITY. So the controller is asked (Identify Namespace) and any
 * format with metadata is refused.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/blk-mq.h>
#include <linux/fs.h>
#include <linux/nvme.h>
#include <linux/pci.h>
#include <linux/slab.h>

#include "compat.h"
#include "p2pio.h"

int p2pio_ns_check_format(struct file *filp, struct gendisk *disk, struct pci_dev *pdev,
			  u32 nsid, unsigned int lbs)
{
	struct nvme_command c = {};
	struct request_queue *admin_q;
	struct nvme_id_ns *id;
	struct request *rq;
	unsigned int idx, ms, ds;
	int ret;

	/*
	 * A request of the namespace queue held across the Identify keeps the controller's
	 * removal from tearing the admin queue down under it (removal drains the namespace
	 * queues before the admin queue).
	 */
	rq = blk_mq_alloc_request(disk->queue, REQ_OP_DRV_IN, 0);
	if (IS_ERR(rq))
		return PTR_ERR(rq);
	admin_q = p2pio_nvme_admin_queue(disk, pdev);
	if (!admin_q) {
		pr_info_ratelimited("refusing %pD (EPROTONOSUPPORT): cannot ask %s for its LBA format (unknown nvme-core layout)\n",
				    filp, disk->disk_name);
		ret = -EPROTONOSUPPORT;
		goto out_free_rq;
	}
	id = kmalloc(sizeof(*id), GFP_KERNEL);
	if (!id) {
		ret = -ENOMEM;
		goto out_free_rq;
	}
	c.identify.opcode = nvme_admin_identify;
	c.identify.nsid = cpu_to_le32(nsid);
	c.identify.cns = NVME_ID_CNS_NS;
	ret = nvme_submit_sync_cmd(admin_q, &c, id, sizeof(*id));
	if (ret) {
		pr_info_ratelimited("refusing %pD (EIO): Identify Namespace %u of %s failed (%d)\n",
				    filp, nsid, disk->disk_name, ret);
		ret = ret < 0 ? ret : -EIO;	/* > 0: an NVMe status */
		goto out_free_id;
	}
	idx = nvme_lbaf_index(id->flbas);
	if (idx > id->nlbaf || idx >= ARRAY_SIZE(id->lbaf)) {
		pr_info_ratelimited("refusing %pD (EIO): %s reports LBA format %u of %u\n",
				    filp, disk->disk_name, idx, id->nlbaf + 1);
		ret = -EIO;
		goto out_free_id;
	}
	ms = le16_to_cpu(id->lbaf[idx].ms);
	ds = id->lbaf[idx].ds;
	if (ms) {
		pr_info_ratelimited("refusing %pD (EPROTONOSUPPORT): %s has %u bytes of metadata per LBA (%s%s)\n",
				    filp, disk->disk_name, ms,
				    id->flbas & NVME_NS_FLBAS_META_EXT ? "extended LBAs" :
									 "separate buffer",
				    id->dps & NVME_NS_DPS_PI_MASK ? ", protection information" : "");
		ret = -EPROTONOSUPPORT;
		goto out_free_id;
	}
	if (ds >= 32 || (1U << ds) != lbs) {
		pr_info_ratelimited("refusing %pD (EPROTONOSUPPORT): %s's LBA format has 2^%u-byte blocks, the block layer %u\n",
				    filp, disk->disk_name, ds, lbs);
		ret = -EPROTONOSUPPORT;
		goto out_free_id;
	}
	ret = 0;
out_free_id:
	kfree(id);
out_free_rq:
	blk_mq_free_request(rq);
	return ret;
}
