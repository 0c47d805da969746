/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * prp.h - the layout of an NVMe PRP data pointer, with no kernel dependency beyond the
 * u32/u64/__le64 types and cpu_to_le64(), so that a host unit test (tests/unit/
 * test-kmod-prp.c) checks exactly the code the module runs.
 *
 * The rules (NVMe base specification, "Physical Region Page Entry and List"), for a
 * controller memory page size of 4 KiB:
 *  - PRP1 is the (dword-aligned) address of the first byte; it covers up to the end of
 *    its page;
 *  - if the rest fits in one page, PRP2 is that page's address;
 *  - otherwise PRP2 points to a PRP list: page-aligned entries, one per page; a list page
 *    holds 512 entries and, when more entries follow than fit, its last slot points to
 *    the next list page instead.
 */
#ifndef P2PIO_PRP_H
#define P2PIO_PRP_H

#define P2PIO_CTRL_PAGE_SIZE 4096U
#define P2PIO_PRPS_PER_PAGE (P2PIO_CTRL_PAGE_SIZE / 8)

/* Bytes PRP1 covers when the transfer starts at DMA address @a. */
static inline u64 p2pio_prp_first(u64 a)
{
	return P2PIO_CTRL_PAGE_SIZE - (a & (P2PIO_CTRL_PAGE_SIZE - 1));
}

/* List pages a transfer of @len bytes needs when PRP1 covers @first of them. */
static inline u32 p2pio_prp_pages(u64 first, u64 len)
{
	u64 nents;

	if (len <= first + P2PIO_CTRL_PAGE_SIZE)
		return 0;
	nents = (len - first + P2PIO_CTRL_PAGE_SIZE - 1) / P2PIO_CTRL_PAGE_SIZE;
	/* Every page but the last gives its last slot to the chain pointer. */
	return (u32)((nents - 1 + P2PIO_PRPS_PER_PAGE - 2) / (P2PIO_PRPS_PER_PAGE - 1));
}

/**
 * p2pio_prp_fill() - write the data pointer of a transfer.
 * @dma: DMA address of byte @off of the destination (called at @off, then at each
 *	following page start: the destination need only be contiguous within 4 KiB pages).
 * @arg: passed to @dma.
 * @off: first byte of the destination.
 * @len: bytes, > 0.
 * @lists: p2pio_prp_pages() list pages of 4 KiB (CPU addresses) ...
 * @list_dma: ... and their DMA addresses.
 * @prp1: out.
 * @prp2: out.
 */
static inline void p2pio_prp_fill(u64 (*dma)(const void *arg, u64 off), const void *arg,
				  u64 off, u64 len, __le64 *const *lists, const u64 *list_dma,
				  __le64 *prp1, __le64 *prp2)
{
	u64 a = dma(arg, off), first = p2pio_prp_first(a);
	__le64 *list;
	u32 page = 0, slot = 0;

	*prp1 = cpu_to_le64(a);
	*prp2 = 0;
	if (len <= first)
		return;
	off += first;
	len -= first;
	if (len <= P2PIO_CTRL_PAGE_SIZE) {
		*prp2 = cpu_to_le64(dma(arg, off));
		return;
	}
	list = lists[0];
	*prp2 = cpu_to_le64(list_dma[0]);
	while (len) {
		if (slot == P2PIO_PRPS_PER_PAGE - 1 && len > P2PIO_CTRL_PAGE_SIZE) {
			list[slot] = cpu_to_le64(list_dma[++page]);
			list = lists[page];
			slot = 0;
		}
		list[slot++] = cpu_to_le64(dma(arg, off));
		off += P2PIO_CTRL_PAGE_SIZE;
		len -= len < P2PIO_CTRL_PAGE_SIZE ? len : P2PIO_CTRL_PAGE_SIZE;
	}
}

#endif /* P2PIO_PRP_H */
