// SPDX-License-Identifier: MIT
/*
 * bench_gate.c - the start line of a measurement's threads. run_stripes() used a barrier
 * of n + 1 (the threads and the caller): when a pthread_create failed midway the barrier
 * could never fill, and the caller, standing in for the missing thread, waited forever. A
 * gate counts the threads that arrived, and can be aborted by the one thread that knows
 * a creation failed.
 */
#include <errno.h>
#include <string.h>

#include "bench.h"

int bench_gate_init(struct bench_gate *g, bool spin)
{
	int ret;

	memset(g, 0, sizeof(*g));
	ret = pthread_mutex_init(&g->lock, NULL);
	if (ret)
		return -ret;
	ret = pthread_cond_init(&g->cond, NULL);
	if (ret) {
		pthread_mutex_destroy(&g->lock);
		return -ret;
	}
	atomic_init(&g->state, 0);
	g->spin = spin;
	return 0;
}

void bench_gate_destroy(struct bench_gate *g)
{
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->lock);
}

static void set_state(struct bench_gate *g, int state)
{
	pthread_mutex_lock(&g->lock);
	atomic_store_explicit(&g->state, state, memory_order_release);
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

void bench_gate_abort(struct bench_gate *g)
{
	if (g)
		set_state(g, -1);
}

int bench_gate_spawn(struct bench_gate *g, pthread_t *tids, unsigned int n, void *(*fn)(void *),
		     void *args, size_t stride)
{
	unsigned int i, k;
	int ret;

	for (i = 0; i < n; i++) {
		ret = pthread_create(&tids[i], NULL, fn, (char *)args + (size_t)i * stride);
		if (ret) {
			/* Those at the line go home; those without a gate finish their work. */
			bench_gate_abort(g);
			for (k = 0; k < i; k++)
				pthread_join(tids[k], NULL);
			return -ret;
		}
	}
	return 0;
}

bool bench_gate_wait(struct bench_gate *g)
{
	int state;

	pthread_mutex_lock(&g->lock);
	g->waiting++;
	pthread_cond_broadcast(&g->cond);
	if (!g->spin)
		while (!atomic_load_explicit(&g->state, memory_order_acquire))
			pthread_cond_wait(&g->cond, &g->lock);
	pthread_mutex_unlock(&g->lock);
	while (!(state = atomic_load_explicit(&g->state, memory_order_acquire)))
		;
	return state > 0;
}

double bench_gate_open(struct bench_gate *g, unsigned int n)
{
	double t;

	pthread_mutex_lock(&g->lock);
	while (g->waiting < n)
		pthread_cond_wait(&g->cond, &g->lock);
	/* The clock starts before they are let go: a sleeping thread's wake-up is counted. */
	t = bench_now();
	atomic_store_explicit(&g->state, 1, memory_order_release);
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
	return t;
}
