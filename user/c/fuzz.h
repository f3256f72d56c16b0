/*
 * fuzz.h: what the two fuzzers' supervisors share (fuzz_sys.c, fuzz_hmm.c).
 *
 * Both run as /init of their own initramfs (scripts/fuzz.sh), read their arguments from
 * /fuzz.args there, and check that free memory is back to its baseline once every
 * process they made is gone.
 */
#ifndef FUZZ_H
#define FUZZ_H

#include "ktest.h"
#include <stdlib.h>

/* Reap orphans (pid 1 inherits them) until there is no child left, for at most 10 s. */
static inline void fuzz_reap_all(void)
{
	uint64_t t = kt_now_ns();
	int st;
	for (;;) {
		long r = k_wait4(-1, &st, WNOHANG, NULL);
		if (r > 0)
			continue;
		if (r == -ECHILD || kt_now_ns() - t > 10000000000ULL)
			return;
		kt_sleep_ns(5000000);
	}
}

/* Free memory, re-read for up to 2 s until it equals `want` (exits finish asynchronously). */
static inline unsigned long fuzz_freeram_settled(unsigned long want)
{
	unsigned long f = kt_freeram();
	for (int i = 0; i < 100 && f != want; i++) {
		kt_sleep_ns(20000000);
		f = kt_freeram();
	}
	return f;
}

/*
 * A stall report: copy /proc/ps (memkernel's process list, with where each sleeping
 * process waits in the kernel's source) to the output. On Linux there is no /proc/ps;
 * nothing is printed.
 */
static inline void fuzz_dump_ps(const char *who)
{
	char buf[512];
	long fd = k_open("/proc/ps", O_RDONLY), n;
	if (fd < 0)
		return;
	kout("%s: the processes now (/proc/ps):\n", who);
	while ((n = k_read((int)fd, buf, sizeof buf)) > 0)
		k_write(1, buf, (size_t)n);
	k_close((int)fd);
}

/*
 * Read "SEED COUNT [replay [FROM]]" from /fuzz.args (the kernel starts /init without
 * arguments); fields absent from the file leave their variable as it was.
 */
static inline void fuzz_read_args_file(uint64_t *seed, uint64_t *count, int *replay, uint64_t *from)
{
	char buf[128];
	long fd = k_open("/fuzz.args", O_RDONLY);
	if (fd < 0)
		return;
	long n = k_read((int)fd, buf, sizeof buf - 1);
	k_close((int)fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	char *save = NULL, *tok = strtok_r(buf, " \t\n", &save);
	for (int i = 0; tok; i++, tok = strtok_r(NULL, " \t\n", &save)) {
		if (i == 0)
			*seed = strtoull(tok, NULL, 0);
		else if (i == 1)
			*count = strtoull(tok, NULL, 0);
		else if (i == 2)
			*replay = strcmp(tok, "replay") == 0;
		else if (i == 3)
			*from = strtoull(tok, NULL, 0);
	}
}

#endif
