/* SPDX-License-Identifier: MIT */
/*
 * tap.h - a small Test Anything Protocol producer for p2pio's C tests (unit, VM, GPU).
 *
 *	tap_plan(3);            or tap_plan_lazy() and tap_done() at the end
 *	tap_ok(x == 1, "x is one");
 *	tap_is_int(got, want, "read returned %s", "the length");
 *	tap_skip_all("no GPU");  prints "1..0 # SKIP no GPU" and exits 0
 *	return tap_exit();       exit status 0 only if every test passed and the plan held
 *
 * Header-only so that static guest test programs can use it without a build system.
 *
 * Each line is written under stdout's lock (flockfile), whole: in the VM tests threads
 * print TAP while others send the host requests down the same channel, and vmlib flushes
 * stdout under the same lock before it writes one, so a request never lands inside a TAP
 * line (where the host would take it for TAP and never run its check).
 */
#ifndef P2PIO_TAP_H
#define P2PIO_TAP_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int tap_planned = -1;
static int tap_run;
static int tap_failed;

static inline void tap_plan(int n)
{
	tap_planned = n;
	printf("1..%d\n", n);
	fflush(stdout);
}

static inline void tap_plan_lazy(void)
{
	tap_planned = -1;
}

static inline void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void tap_diag(const char *fmt, ...)
{
	va_list ap;

	flockfile(stdout);
	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	funlockfile(stdout);
}

static inline int tap_vok(int pass, const char *fmt, va_list ap)
{
	flockfile(stdout);
	tap_run++;
	if (!pass)
		tap_failed++;
	printf("%s %d - ", pass ? "ok" : "not ok", tap_run);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	fflush(stdout);
	funlockfile(stdout);
	return pass;
}

static inline int tap_ok(int pass, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline int tap_ok(int pass, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = tap_vok(pass, fmt, ap);
	va_end(ap);
	return r;
}

#define tap_is_int(got, want, ...)                                                       \
	({                                                                               \
		long long tap_g_ = (long long)(got), tap_w_ = (long long)(want);         \
		int tap_r_ = tap_ok(tap_g_ == tap_w_, __VA_ARGS__);                      \
		if (!tap_r_)                                                             \
			tap_diag("  got %lld, expected %lld (%s:%d)", tap_g_, tap_w_,    \
				 __FILE__, __LINE__);                                    \
		tap_r_;                                                                  \
	})

#define tap_is_u64(got, want, ...)                                                       \
	({                                                                               \
		uint64_t tap_g_ = (uint64_t)(got), tap_w_ = (uint64_t)(want);            \
		int tap_r_ = tap_ok(tap_g_ == tap_w_, __VA_ARGS__);                      \
		if (!tap_r_)                                                             \
			tap_diag("  got %" PRIu64 ", expected %" PRIu64 " (%s:%d)", tap_g_, \
				 tap_w_, __FILE__, __LINE__);                            \
		tap_r_;                                                                  \
	})

static inline void tap_skip(int n, const char *why)
{
	flockfile(stdout);
	while (n-- > 0) {
		tap_run++;
		printf("ok %d # SKIP %s\n", tap_run, why);
	}
	fflush(stdout);
	funlockfile(stdout);
}

static inline void tap_skip_all(const char *why)
{
	printf("1..0 # SKIP %s\n", why);
	fflush(stdout);
	exit(0);
}

static inline void tap_bail(const char *why)
{
	printf("Bail out! %s\n", why);
	fflush(stdout);
	exit(1);
}

/* Prints the lazy plan if one is due; returns the process exit status. */
static inline int tap_exit(void)
{
	if (tap_planned < 0)
		printf("1..%d\n", tap_run);
	else if (tap_planned != tap_run)
		tap_diag("planned %d tests but ran %d", tap_planned, tap_run);
	fflush(stdout);
	return (tap_failed || (tap_planned >= 0 && tap_planned != tap_run)) ? 1 : 0;
}

#endif /* P2PIO_TAP_H */
