// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * stats.c - counters: per fd (P2PIO_IOC_STATS) and global, the global ones also in
 * debugfs as /sys/kernel/debug/p2pio/stats, one "name value" line each.
 */
#include <linux/debugfs.h>
#include <linux/device.h>
#include <linux/log2.h>
#include <linux/math64.h>
#include <linux/seq_file.h>

#include "p2pio.h"

struct p2pio_counters p2pio_global;
static struct dentry *p2pio_debugfs;

void p2pio_stats_fill(struct p2pio_counters *c, struct p2pio_stats *out)
{
	int i;

	memset(out, 0, sizeof(*out));
	out->reads_submitted = atomic64_read(&c->reads_submitted);
	out->reads_completed = atomic64_read(&c->reads_completed);
	out->reads_failed = atomic64_read(&c->reads_failed);
	out->bytes = atomic64_read(&c->bytes);
	out->commands = atomic64_read(&c->commands);
	out->splits = atomic64_read(&c->splits);
	out->errors = atomic64_read(&c->errors);
	out->inflight_cmds = atomic64_read(&c->inflight_cmds);
	out->outstanding = atomic64_read(&c->outstanding);
	out->live_files = atomic64_read(&c->live_files);
	out->live_pins = atomic64_read(&c->live_pins);
	out->live_prp_pages = atomic64_read(&c->live_prp_pages);
	out->live_fds = atomic64_read(&c->live_fds);
	out->revoked = atomic64_read(&c->revoked);
	for (i = 0; i < P2PIO_LAT_BUCKETS; i++)
		out->latency[i] = atomic64_read(&c->latency[i]);
	out->lease_watches = atomic64_read(&c->lease_watches);
}

/* Bucket 0: under 1 us; bucket i: [2^(i-1), 2^i) us; the last: everything above. */
void p2pio_count_latency(struct p2pio_ctx *ctx, u64 ns)
{
	u64 us = div_u64(ns, NSEC_PER_USEC);
	unsigned int b = us ? ilog2(us) + 1 : 0;

	if (b >= P2PIO_LAT_BUCKETS)
		b = P2PIO_LAT_BUCKETS - 1;
	p2pio_count(ctx, latency[b], 1);
}

static int p2pio_stats_show(struct seq_file *m, void *v)
{
	struct p2pio_stats s;
	int i;

	p2pio_stats_fill(&p2pio_global, &s);
	seq_printf(m, "reads_submitted %llu\n", s.reads_submitted);
	seq_printf(m, "reads_completed %llu\n", s.reads_completed);
	seq_printf(m, "reads_failed %llu\n", s.reads_failed);
	seq_printf(m, "bytes %llu\n", s.bytes);
	seq_printf(m, "commands %llu\n", s.commands);
	seq_printf(m, "splits %llu\n", s.splits);
	seq_printf(m, "errors %llu\n", s.errors);
	seq_printf(m, "inflight_cmds %llu\n", s.inflight_cmds);
	seq_printf(m, "outstanding %llu\n", s.outstanding);
	seq_printf(m, "live_files %llu\n", s.live_files);
	seq_printf(m, "live_pins %llu\n", s.live_pins);
	seq_printf(m, "live_prp_pages %llu\n", s.live_prp_pages);
	seq_printf(m, "live_fds %llu\n", s.live_fds);
	seq_printf(m, "revoked %llu\n", s.revoked);
	seq_printf(m, "lease_watches %llu\n", s.lease_watches);
	for (i = 0; i < P2PIO_LAT_BUCKETS - 1; i++)
		seq_printf(m, "latency_us_lt_%llu %llu\n", 1ULL << i, s.latency[i]);
	seq_printf(m, "latency_us_ge_%llu %llu\n", 1ULL << (i - 1), s.latency[i]);
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(p2pio_stats);

int p2pio_stats_init(void)
{
	/* debugfs is optional: a failure leaves the ioctl as the only view. */
	p2pio_debugfs = debugfs_create_dir("p2pio", NULL);
	/* Root's, as P2PIO_STATS_GLOBAL is CAP_SYS_ADMIN's: not left to debugfs's own mode. */
	debugfs_create_file("stats", 0400, p2pio_debugfs, NULL, &p2pio_stats_fops);
	return 0;
}

void p2pio_stats_exit(void)
{
	debugfs_remove_recursive(p2pio_debugfs);
}
