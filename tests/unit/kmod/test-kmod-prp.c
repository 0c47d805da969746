// SPDX-License-Identifier: MIT
/*
 * test-kmod-prp.c - the module's PRP layout (kmod/prp.h, the code p2pio.ko runs),
 * checked on the host by walking it the way an NVMe controller does: the pages it
 * reaches must be exactly the destination's, in order, each entry after PRP1 page
 * aligned, list pages chained only through their last slot and only when more entries
 * follow, and the module must have allocated exactly the list pages the walk uses.
 * The VM can only reach some shapes (QEMU refuses commands of more than 1024 entries).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"

typedef uint32_t u32;
typedef uint64_t u64;
typedef uint64_t __le64;
#define cpu_to_le64(x) ((uint64_t)(x))	/* x86-64 host */
#include "../../../kmod/prp.h"

#define MAXPAGES 16
#define LIST_BASE 0x7000000000ull	/* DMA addresses of list page i: LIST_BASE + i * 4096 */

/* Destination: 64 KiB "GPU" pages scattered in reverse order, like the test double's. */
struct dest {
	u64 base;		/* DMA address of the destination's byte 0, in-page offset kept */
	bool scatter;
};

static u64 dest_dma(const void *arg, u64 off)
{
	const struct dest *d = arg;
	u64 page = off >> 16;

	if (!d->scatter)
		return d->base + off;
	return d->base + ((1000 - page) << 16) + (off & 0xffff);
}

static __le64 lists[MAXPAGES][P2PIO_PRPS_PER_PAGE];

/* Walks PRP1/PRP2/lists as a controller; returns NULL if all is well, else why not. */
static const char *walk(const struct dest *d, u64 off, u64 len, u64 prp1, u64 prp2,
			u32 npages, u32 *used)
{
	u64 done, first = P2PIO_CTRL_PAGE_SIZE - (prp1 & (P2PIO_CTRL_PAGE_SIZE - 1));
	u32 page = 0, slot = 0;

	*used = 0;
	if (prp1 != dest_dma(d, off))
		return "PRP1 is not the first byte";
	if (prp1 & 3)
		return "PRP1 not dword aligned";
	done = first < len ? first : len;
	if (done == len)
		return prp2 ? "PRP2 set for a one-page transfer" : NULL;
	if (len - done <= P2PIO_CTRL_PAGE_SIZE) {
		if (prp2 != dest_dma(d, off + done))
			return "PRP2 is not the second page";
		return NULL;
	}
	if (prp2 != LIST_BASE)
		return "PRP2 is not the first list page";
	*used = 1;
	while (done < len) {
		u64 e = lists[page][slot];

		if (slot == P2PIO_PRPS_PER_PAGE - 1 && len - done > P2PIO_CTRL_PAGE_SIZE) {
			/* chain pointer */
			if (e != LIST_BASE + (u64)(page + 1) * P2PIO_CTRL_PAGE_SIZE)
				return "last slot of a full list page does not chain to the next";
			page++;
			slot = 0;
			if (page >= npages)
				return "walk needs more list pages than were allocated";
			*used = page + 1;
			continue;
		}
		if (e & (P2PIO_CTRL_PAGE_SIZE - 1))
			return "list entry not page aligned";
		if (e != dest_dma(d, off + done))
			return "list entry is not the next destination page";
		done += len - done < P2PIO_CTRL_PAGE_SIZE ? len - done : P2PIO_CTRL_PAGE_SIZE;
		slot++;
	}
	return NULL;
}

int main(void)
{
	static const u64 offs[] = { 0, 4, 256, 3584, 4092, 65536 - 512 };
	static const u64 lens[] = {
		4, 512, 4096, 4096 + 512, 8192, 8192 + 512, 12288, 1 << 20,
		511 * 4096ull, 512 * 4096ull, 513 * 4096ull, 2 << 20, (2 << 20) + 4096,
		1022 * 4096ull, 1023 * 4096ull, 1024 * 4096ull, 1025 * 4096ull,
		4 << 20, (4 << 20) + 512, 8 << 20,
	};
	unsigned int i, j, s, bad = 0, chained = 0, n = 0;

	tap_plan_lazy();
	/* List page counts at the chaining edges (PRP1 page aligned). */
	tap_is_int(p2pio_prp_pages(4096, 4096), 0, "one page: PRP1 only");
	tap_is_int(p2pio_prp_pages(4096, 8192), 0, "two pages: PRP1 and PRP2");
	tap_is_int(p2pio_prp_pages(4096, 3 * 4096), 1, "three pages: one list page");
	tap_is_int(p2pio_prp_pages(4096, 513 * 4096), 1, "512 list entries fill one list page");
	tap_is_int(p2pio_prp_pages(4096, 514 * 4096), 2, "513 list entries chain to a second");
	tap_is_int(p2pio_prp_pages(256, 2 << 20), 1, "unaligned 2 MiB: 512 entries, no chain");
	tap_is_int(p2pio_prp_pages(4096, 4 << 20), 2, "aligned 4 MiB: two list pages");
	tap_is_int(p2pio_prp_pages(256, 4 << 20), 3, "unaligned 4 MiB: three list pages");

	for (s = 0; s < 2; s++) {
		for (i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
			for (j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
				struct dest d = { .base = 0x100000000ull + offs[i], .scatter = s };
				__le64 *lp[MAXPAGES];
				u64 ld[MAXPAGES], prp1, prp2, first;
				u32 np, used, k;
				const char *why;

				first = p2pio_prp_first(dest_dma(&d, 0));
				np = p2pio_prp_pages(first, lens[j]);
				if (np > MAXPAGES) {
					bad++;
					continue;
				}
				memset(lists, 0xee, sizeof(lists));
				for (k = 0; k < MAXPAGES; k++) {
					lp[k] = lists[k];
					ld[k] = LIST_BASE + (u64)k * P2PIO_CTRL_PAGE_SIZE;
				}
				p2pio_prp_fill(dest_dma, &d, 0, lens[j], lp, ld, &prp1, &prp2);
				why = walk(&d, 0, lens[j], prp1, prp2, np, &used);
				if (!why && used != np)
					why = "allocated list pages not all used";
				n++;
				chained += used > 1;
				if (why) {
					bad++;
					tap_diag("offset %llu, length %llu, %s: %s",
						 (unsigned long long)offs[i],
						 (unsigned long long)lens[j],
						 s ? "scattered" : "contiguous", why);
				}
			}
		}
	}
	tap_ok(!bad, "%u layouts walked like a controller, %u of them chained: all valid", n,
	       chained);
	tap_ok(chained > 0, "chained lists were exercised");
	return tap_exit();
}
