// Diagnostic (not committed): what a lone expert miss's read->copy pipeline can do on this
// machine. copies: S-byte HtoD copies of one 12.66 MiB expert from pinned memory on K streams.
// pipe: W threads read pieces of S (O_DIRECT) from FILE into pinned slots and copy each.
#define _GNU_SOURCE
#include <cuda.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#define CK(x) do { CUresult r_ = (x); if (r_) { fprintf(stderr, "%s: %d\n", #x, r_); exit(1); } } while (0)
#define TOTAL (12976128ull)	/* 12.375 MiB: about the expert */

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static CUcontext ctx;
static char *host;
static CUdeviceptr dev;

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void copies(uint64_t S, int K, int reps)
{
	int n = (int)((TOTAL + S - 1) / S), i, r;
	CUstream st[64];
	CUevent ev[1024];
	double last[64];

	for (i = 0; i < K; i++)
		CK(cuStreamCreate(&st[i], CU_STREAM_NON_BLOCKING));
	for (i = 0; i < n; i++)
		CK(cuEventCreate(&ev[i], CU_EVENT_DISABLE_TIMING));
	for (r = 0; r < reps; r++) {
		double t0 = now_us();
		int left = n;
		char done[1024] = { 0 };
		for (i = 0; i < n; i++) {
			uint64_t len = i == n - 1 ? TOTAL - S * i : S;
			CK(cuMemcpyHtoDAsync(dev + S * i, host + S * i, len, st[i % K]));
			CK(cuEventRecord(ev[i], st[i % K]));
		}
		double tq = now_us() - t0;
		while (left)
			for (i = 0; i < n; i++) {
				CUresult q = done[i] ? CUDA_ERROR_NOT_READY : cuEventQuery(ev[i]);
				if (!done[i] && q != CUDA_ERROR_NOT_READY) {
					if (q)
						fprintf(stderr, "event %d: %d\n", i, q), exit(1);
					done[i] = 1;
					left--;
				}
			}
		last[r] = now_us() - t0;
		(void)tq;
	}
	qsort(last, reps, sizeof(double), cmpd);
	printf("copies %7lluK x%3d streams %2d: best %6.1f median %6.1f us (%.1f GB/s best)\n",
	       (unsigned long long)(S >> 10), n, K, last[0], last[reps / 2], TOTAL / last[0] / 1e3);
	for (i = 0; i < n; i++)
		cuEventDestroy(ev[i]);
	for (i = 0; i < K; i++)
		cuStreamDestroy(st[i]);
}

/* ---- pipe ---- */
static int fd;
static uint64_t S, base;
static uint64_t poff[1024], plen[1024];
static int npieces, W, do_copy, src_mode;
static char *srcbuf;
static atomic_int next_piece, go, ready, gen;
static double t0, read_done[1024];
static CUevent pev[1024];
static CUstream wst[64];

static void *worker(void *arg)
{
	int id = (int)(intptr_t)arg, p;
	CK(cuCtxSetCurrent(ctx));
	int seen = atomic_load(&gen);
	atomic_fetch_add(&ready, 1);
	for (;;) {
		int g;
		while ((g = atomic_load(&gen)) == seen)
			sched_yield();
		seen = g;
		if (atomic_load(&go) < 0)
			return NULL;
		while ((p = atomic_fetch_add(&next_piece, 1)) < npieces) {
			uint64_t len = plen[p], o = poff[p];
			if (src_mode == 1) {
				double te = now_us() + len / 2200.0;
				while (now_us() < te)
					;
			} else if (src_mode == 2) {
				memcpy(host + o, srcbuf + base + o, len);
			} else if (pread(fd, host + o, len, base + o) != (ssize_t)len) {
				perror("pread");
				exit(1);
			}
			read_done[p] = now_us() - t0;
			if (do_copy) {
				CK(cuMemcpyHtoDAsync(dev + o, host + o, len, wst[id]));
				CK(cuEventRecord(pev[p], wst[id]));
			}
		}
		atomic_fetch_add(&ready, 1);
	}
}

static void pipe_run(const char *file, uint64_t s, int w, int copy, int reps, const char *tag)
{
	pthread_t th[64];
	double lr[64], lc[64];
	int i, r;
	off_t fsize;

	S = s;
	W = w;
	do_copy = copy;
	if (s) {
		npieces = (int)((TOTAL + S - 1) / S);
		for (i = 0; i < npieces; i++) {
			poff[i] = S * i;
			plen[i] = i == npieces - 1 ? TOTAL - S * i : S;
		}
	}
	fd = open(file, O_RDONLY | O_DIRECT);
	if (fd < 0) {
		perror(file);
		exit(1);
	}
	fsize = lseek(fd, 0, SEEK_END);
	for (i = 0; i < npieces; i++)
		CK(cuEventCreate(&pev[i], CU_EVENT_DISABLE_TIMING));
	for (i = 0; i < W; i++)
		CK(cuStreamCreate(&wst[i], CU_STREAM_NON_BLOCKING));
	atomic_store(&go, 0);
	atomic_store(&ready, 0);
	for (i = 0; i < W; i++)
		pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i);
	while (atomic_load(&ready) < W)
		sched_yield();
	for (r = 0; r < reps; r++) {
		base = ((uint64_t)rand() * 4096 % (uint64_t)((src_mode ? (2ull << 30) : (uint64_t)fsize) - TOTAL - 1)) & ~4095ull;
		atomic_store(&ready, 0);
		atomic_store(&next_piece, 0);
		t0 = now_us();
		atomic_fetch_add(&gen, 1);
		while (atomic_load(&ready) < W)
			;
		lr[r] = 0;
		for (i = 0; i < npieces; i++)
			if (read_done[i] > lr[r])
				lr[r] = read_done[i];
		if (copy) {
			for (i = 0; i < npieces; i++)
				while (cuEventQuery(pev[i]) == CUDA_ERROR_NOT_READY)
					;
		}
		lc[r] = now_us() - t0;
		usleep(2000);
	}
	atomic_store(&go, -1);
	atomic_fetch_add(&gen, 1);
	for (i = 0; i < W; i++)
		pthread_join(th[i], NULL);
	qsort(lr, reps, sizeof(double), cmpd);
	qsort(lc, reps, sizeof(double), cmpd);
	printf("pipe %-5s %s %6lluK x%3d threads %2d: reads best %6.1f median %6.1f; all done best %6.1f median %6.1f us\n",
	       tag, copy ? "copy" : "read", (unsigned long long)(S >> 10), npieces, W, lr[0], lr[reps / 2],
	       lc[0], lc[reps / 2]);
	for (i = 0; i < W; i++)
		cuStreamDestroy(wst[i]);
	for (i = 0; i < npieces; i++)
		cuEventDestroy(pev[i]);
	close(fd);
}

static void on_alarm(int sig)
{
	(void)sig;
	fprintf(stderr, "stuck\n");
	_exit(3);
}

int main(int argc, char **argv)
{
	CUdevice d;
	static const uint64_t sizes[] = { 128 << 10, 256 << 10, 512 << 10, 1 << 20, 2 << 20, 4 << 20 };
	static const int ks[] = { 1, 2, 4, 14 };
	unsigned si, ki;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGALRM, on_alarm);
	CK(cuInit(0));
	CK(cuDeviceGet(&d, 0));
	CK(cuDevicePrimaryCtxRetain(&ctx, d));
	CK(cuCtxSetCurrent(ctx));
	CK(cuMemHostAlloc((void **)&host, 64 << 20, CU_MEMHOSTALLOC_PORTABLE));
	memset(host, 1, 64 << 20);
	CK(cuMemAlloc(&dev, 64 << 20));
	for (si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++)
		for (ki = 0; ki < sizeof(ks) / sizeof(ks[0]); ki++)
			alarm(10), copies(sizes[si], ks[ki], 9);
	if (argc > 2) {
		static const char *mt[] = { "zram", "spin", "mcpy" };
		int m, rep;
		srcbuf = malloc(2ull << 30);
		memset(srcbuf, 7, 2ull << 30);
		for (rep = 0; rep < 2; rep++)
		for (m = 0; m < 3; m++) {
			src_mode = m;
			alarm(10), pipe_run(argv[1], 1 << 20, 14, 0, 9, mt[m]);
			alarm(10), pipe_run(argv[1], 1 << 20, 14, 1, 9, mt[m]);
			alarm(10), pipe_run(argv[1], 256 << 10, 14, 0, 9, mt[m]);
			alarm(10), pipe_run(argv[1], 256 << 10, 14, 1, 9, mt[m]);
		}
		return 0;
	}
	if (argc > 1) {
		/* Waves: W pieces of each size, largest first, the first wave takes the rest. */
		static const uint64_t waves[][5] = { { 256 << 10, 0 }, { 256 << 10, 128 << 10, 0 },
			{ 256 << 10, 128 << 10, 64 << 10, 0 }, { 512 << 10, 256 << 10, 128 << 10, 0 },
			{ 384 << 10, 192 << 10, 96 << 10, 0 } };
		static const char *wtag[] = { "g2", "g3", "g4", "g3b", "g3c" };
		int wv, w, rep;
		for (rep = 0; rep < 2; rep++)
		for (w = 14; w <= 16; w += 2)
		for (wv = 0; wv < 5; wv++) {
			uint64_t rest = TOTAL, first;
			int k, j, n = 0;
			uint64_t sum = 0;
			for (k = 0; waves[wv][k]; k++)
				sum += (uint64_t)w * waves[wv][k];
			if (sum >= TOTAL)
				continue;
			rest -= sum;
			first = (rest / w + 4095) & ~4095ull;
			uint64_t off = 0;
			for (j = 0; j < w && off < TOTAL; j++, n++) {
				poff[n] = off;
				plen[n] = first < TOTAL - off ? first : TOTAL - off;
				off += plen[n];
			}
			for (k = 0; waves[wv][k]; k++)
				for (j = 0; j < w && off < TOTAL; j++, n++) {
					poff[n] = off;
					plen[n] = waves[wv][k] < TOTAL - off ? waves[wv][k] : TOTAL - off;
					off += plen[n];
				}
			npieces = n;
			alarm(10), pipe_run(argv[1], 0, w, 0, 9, wtag[wv]);
			alarm(10), pipe_run(argv[1], 0, w, 1, 9, wtag[wv]);
		}
		alarm(10), pipe_run(argv[1], 1 << 20, 14, 0, 9, "flat");
		alarm(10), pipe_run(argv[1], 1 << 20, 14, 1, 9, "flat");
		return 0;
	}
	if (argc > 1) {
		static const int ws[] = { 14, 16 };
		unsigned wi;
		for (wi = 0; wi < 2; wi++)
			for (si = 0; si < 5; si++) {
				alarm(10), pipe_run(argv[1], sizes[si], ws[wi], 0, 9, "flat");
				alarm(10), pipe_run(argv[1], sizes[si], ws[wi], 1, 9, "flat");
			}
	}
	return 0;
}
