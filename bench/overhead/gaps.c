// SPDX-License-Identifier: GPL-2.0
/*
 * gaps: what interrupts take from a busy CPU. Pinned to one CPU, reads CLOCK_MONOTONIC (vDSO)
 * in a tight loop for SECONDS and counts the gaps between two reads longer than MIN_NS: each
 * is time the CPU spent elsewhere (an interrupt, or another task). Gaps up to MAX_NS are
 * interrupts (a timer tick, a perf sample); longer ones are preemption by other tasks: they
 * are counted apart and their time is left out, so the rates are per second this loop ran
 * (other tasks on the machine do not dilute them). Prints: cpu, seconds run, short gaps per
 * second, their mean length in ns, the share of time they took in percent, long gaps per
 * second.
 * Usage: gaps CPU SECONDS [MIN_NS [MAX_NS]]   (defaults 300 and 200000)
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long long min_ns = 300, max_ns = 200000, start, end, prev, t, gap;
	long long short_n = 0, short_ns = 0, long_n = 0, long_ns = 0;
	cpu_set_t set;
	int cpu;
	double secs;

	if (argc < 3) {
		fprintf(stderr, "usage: gaps CPU SECONDS [MIN_NS [MAX_NS]]\n");
		return 2;
	}
	cpu = atoi(argv[1]);
	secs = atof(argv[2]);
	if (argc > 3)
		min_ns = atoll(argv[3]);
	if (argc > 4)
		max_ns = atoll(argv[4]);
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set)) {
		perror("sched_setaffinity");
		return 1;
	}
	start = prev = now_ns();
	end = start + (long long)(secs * 1e9);
	while ((t = now_ns()) < end) {
		gap = t - prev;
		if (gap > max_ns) {
			long_n++;
			long_ns += gap;
		} else if (gap > min_ns) {
			short_n++;
			short_ns += gap;
		}
		prev = t;
	}
	secs = (t - start - long_ns) / 1e9;
	printf("%d %.3f %.1f %.0f %.3f %.1f\n", cpu, secs, short_n / secs,
	       short_n ? (double)short_ns / short_n : 0.0, short_ns / secs / 1e7, long_n / secs);
	return 0;
}
