// SPDX-License-Identifier: MIT
/*
 * The start line of a measurement's threads (tools/bench_gate.c) when one of them cannot
 * be created: pthread_create fails at a chosen call here. p2pio-bench's stripes
 * (run_stripes() in tools/bench_modes.c) behind a gate, as cuFile runs them, and without
 * one, as the storage modes do, and the burst floor (tools/bench_burst.c) each return the
 * creation's error after joining the threads that started, where a barrier of n + 1 used
 * to wait forever for the missing one; with every creation working they run as before.
 * An alarm turns a hang into a failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tap.h"
#include "tool_run.h"

static int creates;		/* pthread_create calls so far */
static int fail_at = -1;	/* the call (from 0) that fails; -1: none */

static int flaky_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
	if (creates++ == fail_at)
		return EAGAIN;
	return pthread_create(t, a, fn, arg);
}

static void fail_from_now(int k)
{
	creates = 0;
	fail_at = k;
}

/* The code under test, with its pthread_create failing on demand. */
#define pthread_create flaky_create
#include "../../../tools/bench_gate.c"
#undef pthread_create
#include "../../../tools/bench_burst.c"
#include "../../../tools/bench_modes.c"

#define THREADS 8
#define FILE_SIZE (4u << 20)

static atomic_int arrived, passed;

/* A stripe thread that sets up nothing and waits at the gate, as cufile_thread() does. */
static void *gated_thread(void *arg)
{
	struct stripe_job *j = arg;

	atomic_fetch_add(&arrived, 1);
	if (bench_gate_wait(j->gate)) {
		atomic_fetch_add(&passed, 1);
		j->bytes = 1;
		j->t_end = bench_now();
	}
	return NULL;
}

static void on_alarm(int sig)
{
	static const char msg[] = "Bail out! hung: a thread waits for one that never started\n";

	(void)sig;
	if (write(1, msg, sizeof(msg) - 1) < 0)
		_exit(2);
	_exit(1);
}

static int gated(const struct bench_params *p, struct bench_result *r, double *t_start)
{
	struct bench_lat lat = { 0 };
	double cpu = 0, t_end = 0;
	int ret;

	atomic_store(&arrived, 0);
	atomic_store(&passed, 0);
	memset(r, 0, sizeof(*r));
	ret = run_stripes(p, r, &lat, gated_thread, NULL, NULL, t_start, &cpu, &t_end);
	free(lat.v);
	return ret;
}

int main(int argc, char **argv)
{
	struct bench_params p = { .threads = THREADS, .io_size = 1u << 20, .depth = 1 };
	struct bench_range rg[2] = { { 0, 8192 }, { 1u << 20, 8192 } };
	struct bench_burst_params bp = { .ranges = rg, .nr_ranges = 2 };
	struct bench_burst fl;
	struct bench_result r;
	char path[256];
	double t_start = 0, t0;
	char *data;
	int ret, fd;

	tool_init(argv[0]);
	signal(SIGALRM, on_alarm);
	alarm(60);
	snprintf(path, sizeof(path), "%s/f", tool_scratch("bench-gate"));
	data = malloc(FILE_SIZE);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (!data || fd < 0)
		tap_bail("scratch file");
	memset(data, 0x3c, FILE_SIZE);
	if (write(fd, data, FILE_SIZE) != FILE_SIZE || fsync(fd))
		tap_bail("writing the scratch file");
	free(data);
	p.path = path;
	p.file_size = FILE_SIZE;

	/* ---- stripes at a gate (cuFile's way) ---- */
	fail_from_now(-1);
	t0 = bench_now();
	ret = gated(&p, &r, &t_start);
	tap_ok(ret == 0 && r.err == 0 && r.bytes == THREADS && atomic_load(&passed) == THREADS,
	       "gated stripes, every thread created: all %d passed the gate (%d), 0 returned",
	       THREADS, atomic_load(&passed));
	tap_ok(t_start >= t0, "the clock started when the gate opened");

	fail_from_now(3);
	ret = gated(&p, &r, &t_start);
	tap_is_int(ret, -EAGAIN, "the 4th of %d threads not created: run_stripes returns -EAGAIN",
		   THREADS);
	tap_ok(r.err == -EAGAIN && strstr(r.note, "could not start 8 threads"),
	       "the result says so: %s", r.note);
	tap_ok(atomic_load(&arrived) == 3 && atomic_load(&passed) == 0,
	       "the 3 that started reached the gate, none went through it (%d, %d)",
	       atomic_load(&arrived), atomic_load(&passed));

	fail_from_now(0);
	ret = gated(&p, &r, &t_start);
	tap_ok(ret == -EAGAIN && atomic_load(&arrived) == 0,
	       "the first thread not created: -EAGAIN, nobody waits");
	fail_from_now(THREADS - 1);
	ret = gated(&p, &r, &t_start);
	tap_ok(ret == -EAGAIN && atomic_load(&arrived) == THREADS - 1 &&
		       atomic_load(&passed) == 0,
	       "the last thread not created: -EAGAIN, the %d others sent home", THREADS - 1);

	/* ---- stripes without a gate (the storage modes) ---- */
	p.threads = 4;
	fail_from_now(-1);
	bench_run("buffered", &p, &r);
	tap_ok(r.err == 0 && r.bytes == FILE_SIZE,
	       "buffered, 4 threads: the whole file read (%llu)", (unsigned long long)r.bytes);
	fail_from_now(2);
	bench_run("buffered", &p, &r);
	tap_ok(r.err == -EAGAIN && strstr(r.note, "could not start 4 threads"),
	       "buffered, the 3rd thread not created: -EAGAIN after the 2 started finished: %s",
	       r.note);

	/* ---- the burst floor ---- */
	bp.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (bp.fd < 0)
		tap_bail("open");
	fail_from_now(-1);
	ret = bench_burst_floor(&bp, &fl);
	tap_ok(ret == 0 && fl.seconds > 0, "the burst floor of two ranges: %d, %.1f us", ret,
	       fl.seconds * 1e6);
	/* Its shapes: 1 thread (3 tries: calls 0-2), then 2 threads (calls 3, 4, ...). */
	fail_from_now(4);
	ret = bench_burst_floor(&bp, &fl);
	tap_is_int(ret, -EAGAIN, "the burst floor, a 2-thread try's second thread not created: "
		   "-EAGAIN");
	tap_ok(strstr(fl.note, "could not start 2 threads") != NULL, "and it says so: %s",
	       fl.note);
	close(bp.fd);
	close(fd);
	return tap_exit();
}
