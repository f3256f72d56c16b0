/*
 * kbench.h - shared helpers of the user-space benchmarks (bench.c, bench_hmm.c): TSC
 * calibration against CLOCK_MONOTONIC and median reporting as key=value lines in ns and
 * cycles. Static functions only: each program is compiled alone. Include after ktest.h.
 */
#ifndef KBENCH_H
#define KBENCH_H

#include <stdlib.h>

static double g_cycles_per_ns;

/* clock_edge: wait for CLOCK_MONOTONIC to tick over (so a coarse, tick-based clock is read right
 * at a step), then return that time and the TSC at that moment. Bounded by ~10^10 cycles. */
static uint64_t clock_edge(uint64_t *tsc, uint64_t *step)
{
	uint64_t a = kt_now_ns(), t, c, limit = kt_rdtsc() + 10000000000ULL;
	do {
		t = kt_now_ns();
		c = kt_rdtsc();
	} while (t == a && c < limit);
	if (step && t > a && (*step == 0 || t - a < *step))
		*step = t - a;
	*tsc = c;
	return t;
}

static uint64_t g_clock_step;

/* calibrate: TSC cycles per CLOCK_MONOTONIC nanosecond over ~200 ms */
static double calibrate(void)
{
	uint64_t c0, c1;
	uint64_t t0 = clock_edge(&c0, &g_clock_step);
	kt_sleep_ns(200000000);
	uint64_t t1 = clock_edge(&c1, &g_clock_step);
	if (t1 <= t0)
		return 1.0;
	return (double)(c1 - c0) / (double)(t1 - t0);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* report: median of samples (cycles per unit), printed as key_ns and key_cycles. */
static void report(const char *key, uint64_t *samples, int n, double div)
{
	qsort(samples, (size_t)n, sizeof samples[0], cmp_u64);
	double med = (n % 2) ? (double)samples[n / 2] : ((double)samples[n / 2 - 1] + (double)samples[n / 2]) / 2;
	med /= div;
	double ns = med / g_cycles_per_ns;
	/* key names end in _ns or _ns_per_page: the cycles key replaces "ns" with "cycles" */
	char ckey[96];
	const char *at = strstr(key, "_ns");
	if (at)
		snprintf(ckey, sizeof ckey, "%.*s_cycles%s", (int)(at - key), key, at + 3);
	else
		snprintf(ckey, sizeof ckey, "%s_cycles", key);
	kout("%s=%.1f\n", key, ns);
	kout("%s=%.0f\n", ckey, med);
}


#endif
