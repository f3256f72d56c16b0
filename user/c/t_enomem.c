/*
 * t_enomem: run the machine out of memory with processes, then get every page back.
 *
 * ONLY ON MEMKERNEL: anywhere else (uname().sysname != "memkernel") it prints a "skipped"
 * line and exits 0, because it would exhaust the machine it runs on.
 *
 * The parent forks "hog" children that exec this program in hog mode (so they share no
 * pages with the parent: the parent's own copy-on-write faults can never be the ones that
 * find memory exhausted); each hog mmaps 4 MiB, touches every page, then sleeps until killed
 * (at most 300 s). After each fork the parent waits until freeram has dropped by 4 MiB (the
 * hog is done) or the hog died. When less than 16 MiB is left, one last "greedy" hog maps
 * more than what is free and touches it until something gives. The parent stops at the
 * first of: fork fails (-ENOMEM/-EAGAIN), a hog is killed (the kernel's out-of-memory
 * answer), a hog's mmap or exec fails. Then it kills every hog with SIGKILL, reaps them, and
 * checks freeram is exactly back where it started.
 *
 *   - enomem::exhaust_then_recover: the above, once;
 *   - enomem::fork_and_touch_after_recovery: fork + 16 MiB touched works again;
 *   - enomem::exhaust_twice_same_depth: twice more; the number of hogs is the same +-2
 *     and freeram comes back exactly each time (no leak per round).
 *
 * Build with -DKT_ENOMEM_SELFTEST to check the logic on Linux: the run is then capped at 8
 * hogs (32 MiB) and never exhausts anything.
 */
#include <stdlib.h>

#include "ktest.h"

#define HOG_BYTES (4 * KT_MiB)
#define MAX_HOGS 1024
#define GREEDY_BELOW (16 * KT_MiB)

/* ---- hog mode ------------------------------------------------------------------------ */

static int hog_main(size_t bytes)
{
	char *p = k_anon(bytes, PROT_READ | PROT_WRITE);
	if (!p)
		return 2;
	for (size_t off = 0; off < bytes; off += KT_PAGE)
		p[off] = 1;
	for (int i = 0; i < 3000; i++) /* 300 s at most */
		kt_sleep_ns(100000000);
	return 3;
}

/* ---- the parent ------------------------------------------------------------------------ */

static long hogs[MAX_HOGS + 1];
static int hog_alive[MAX_HOGS + 1];

static long spawn_hog(size_t bytes)
{
	long pid = k_fork();
	if (pid == 0) {
		char n[32];
		snprintf(n, sizeof n, "%zu", bytes);
		char *argv[] = { "t_enomem", "hog", n, NULL };
		char *envp[] = { NULL };
		long r = k_execve(kt_self_path(), argv, envp);
		if (r == -ENOENT)
			r = k_execve("/bin/t_enomem", argv, envp);
		k_exit(r == -ENOMEM ? 5 : 4);
	}
	return pid;
}

/* why a hog ended: fills `why`, returns 1 if it is an out-of-memory outcome */
static int hog_end(int st, char *why, size_t n)
{
	char sb[64];
	if (WIFSIGNALED(st)) {
		snprintf(why, n, "a hog was %s", kt_status_str(st, sb, sizeof sb));
		return 1;
	}
	switch (WEXITSTATUS(st)) {
	case 2: snprintf(why, n, "a hog's mmap failed"); return 1;
	case 5: snprintf(why, n, "a hog's execve failed with -ENOMEM"); return 1;
	case 4: snprintf(why, n, "a hog's execve failed (not -ENOMEM)"); return 0;
	default: snprintf(why, n, "a hog %s", kt_status_str(st, sb, sizeof sb)); return 0;
	}
}

/* Poll every live hog once (WNOHANG); returns 1 and fills why if one has ended. */
static int any_hog_ended(int n, char *why, size_t wn, int *oom)
{
	int ended = 0;
	for (int i = 0; i < n; i++) {
		if (!hog_alive[i])
			continue;
		int st = 0;
		if (k_wait4(hogs[i], &st, WNOHANG, NULL) == hogs[i]) {
			hog_alive[i] = 0;
			if (!ended)
				*oom = hog_end(st, why, wn);
			ended = 1;
		}
	}
	return ended;
}

/*
 * exhaust: one full round. Returns 0 and the number of 4 MiB hogs in *count, or a failure.
 */
static int exhaust(int *count, int round)
{
	/* Touch the bookkeeping arrays first: their pages would otherwise be demand-faulted
	 * while the hogs start, and count against the exact free-memory comparison below. */
	memset(hogs, 0, sizeof hogs);
	memset(hog_alive, 0, sizeof hog_alive);
	unsigned long base = kt_freeram();
	char why[160] = "";
	int n = 0, oom = 0, done = 0;
	int cap = MAX_HOGS;
#ifdef KT_ENOMEM_SELFTEST
	cap = 8;
#endif
	while (!done) {
		unsigned long f = kt_freeram();
		int greedy = f < GREEDY_BELOW;
		if (n >= cap) {
			snprintf(why, sizeof why, "the cap of %d hogs was reached", cap);
			break;
		}
		size_t bytes = greedy ? f + GREEDY_BELOW : HOG_BYTES;
		long pid = spawn_hog(bytes);
		if (pid < 0) {
			snprintf(why, sizeof why, "fork failed with %s", kt_errname(pid));
			oom = pid == -ENOMEM || pid == -EAGAIN;
			break;
		}
		hogs[n] = pid;
		hog_alive[n] = 1;
		n++;
		/* wait until this hog has touched its memory (or for any hog to end) */
		uint64_t start = kt_now_ns();
		for (;;) {
			if (any_hog_ended(n, why, sizeof why, &oom)) {
				done = 1;
				break;
			}
			if (!greedy && kt_freeram() + HOG_BYTES <= f)
				break;
#ifdef KT_ENOMEM_SELFTEST
			if (kt_now_ns() - start > 2000000000ULL)
				break; /* Linux's freeram is too noisy to see a 4 MiB step reliably */
#endif
			if (kt_now_ns() - start > 60000000000ULL) {
				snprintf(why, sizeof why, "hog %d neither touched its memory nor ended within 60 s%s", n,
					 greedy ? " (the greedy one)" : "");
				done = 1;
				break;
			}
			kt_sleep_ns(1000000);
		}
	}
	unsigned long low = kt_freeram();
	/* kill and reap every live hog */
	int bad_status = 0;
	for (int i = 0; i < n; i++) {
		if (!hog_alive[i])
			continue;
		k_kill(hogs[i], SIGKILL);
	}
	for (int i = 0; i < n; i++) {
		if (!hog_alive[i])
			continue;
		int st = 0;
		long r = kt_reap(hogs[i], &st);
		hog_alive[i] = 0;
		if (r != hogs[i] || !WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL) {
			/* a hog may have died of its own between the last poll and the kill */
			if (!(r == hogs[i] && WIFSIGNALED(st)))
				bad_status = bad_status ? bad_status : i + 1;
		}
	}
	unsigned long back = kt_freeram();
	*count = n;
	kout("# enomem: round %d: %d hogs, stopped because %s; free %lu KiB at the start, %lu KiB at the "
	     "low point, %lu KiB after reaping\n",
	     round, n, why, base / 1024, low / 1024, back / 1024);
	KT_CHECK(n > 0, "no hog could be started: %s", why);
	KT_CHECK(!bad_status, "hog %d did not end with SIGKILL when killed", bad_status);
#ifndef KT_ENOMEM_SELFTEST
	KT_CHECK(oom, "the run did not end in an out-of-memory condition: %s", why);
#endif
	if (kt_memkernel)
		KT_CHECK(back == base, "free memory after reaping every hog is %ld pages %s the start",
			 labs((long)back - (long)base) / 4096, back < base ? "below" : "above");
	return 0;
}

static int t_exhaust(void)
{
	int c = 0;
	return exhaust(&c, 1);
}

static int t_after(void)
{
	long pid = k_fork();
	if (pid == 0) {
		size_t len = 16 * KT_MiB;
		char *p = k_anon(len, PROT_READ | PROT_WRITE);
		if (!p)
			k_exit(2);
		kt_fill(p, len, 9);
		k_exit(kt_check_fill(p, len, 9) < 0 ? 0 : 3);
	}
	KT_CHECK(pid > 0, "fork after recovery returned %s", kt_errname(pid));
	return kt_expect_exit(pid, 0, "child touching 16 MiB after recovery");
}

static int t_twice(void)
{
	int a = 0, b = 0;
	if (exhaust(&a, 2) || exhaust(&b, 3))
		return 1;
	KT_CHECK(abs(a - b) <= 2, "the two rounds fit %d and %d hogs: memory is not coming back", a, b);
	return 0;
}

static const struct ktest tests[] = {
	{ "enomem::exhaust_then_recover", t_exhaust, 300 },
	{ "enomem::fork_and_touch_after_recovery", t_after, 60 },
	{ "enomem::exhaust_twice_same_depth", t_twice, 600 },
};

int main(int argc, char **argv, char **envp)
{
	if (argc == 3 && strcmp(argv[1], "hog") == 0)
		return hog_main((size_t)strtoull(argv[2], NULL, 10));
	struct utsname u;
	memset(&u, 0, sizeof u);
	k_uname(&u);
#ifndef KT_ENOMEM_SELFTEST
	if (strcmp(u.sysname, "memkernel") != 0) {
		kout("running 0 tests\n");
		kout("# t_enomem: skipped: not memkernel (sysname \"%s\"); this test exhausts memory\n", u.sysname);
		kout("0 passed, 0 failed\n");
		return 0;
	}
#endif
	return ktest_main("t_enomem", tests, sizeof tests / sizeof tests[0], argc, argv, envp);
}
