/*
 * bench: the user-space benchmark. The same static binary runs on Linux and on memkernel.
 *
 * Prints key=value lines (comments start with "#"). Every figure is the median of REPS
 * repetitions (after one warm-up repetition). Time is measured with rdtsc; the TSC is
 * calibrated against CLOCK_MONOTONIC over a 200 ms sleep at the start (and checked again
 * at the end: tsc_drift_ppm), so each result is printed both in TSC cycles (*_cycles) and in
 * nanoseconds (*_ns). The calibration starts and ends on a tick of CLOCK_MONOTONIC, so a
 * coarse clock (clock_step_ns: the smallest step seen) does not spoil it.
 *
 *   getppid_ns                       a null syscall (batch of 2000 calls)
 *   clock_gettime_ns                 the raw clock_gettime(CLOCK_MONOTONIC) syscall
 *   clock_gettime_libc_ns            musl's clock_gettime (the vDSO on Linux; syscall elsewhere)
 *   fork_exit_wait_ns                fork, the child exits at once, wait4 returns
 *   fork_1mib_ns / fork_16mib_ns     the same from a process with 1 / 16 MiB touched
 *   fork_exec_wait_ns                fork, the child execs this binary (which exits at once), wait4
 *   first_touch_fault_ns_per_page    write to each page of a fresh 4 MiB mmap (demand zero)
 *   cow_copy_fault_ns_per_page       after fork, with the child alive, the parent writes each page
 *                                    of a 4 MiB region (every write copies)
 *   cow_reuse_fault_ns_per_page      after fork and the child's exit, the parent writes each page
 *                                    (the kernel only makes the PTE writable again)
 *   munmap_4mib_ns_per_page          munmap of 4 MiB of touched pages, per page
 *   mprotect_1mib_rw_ro_rw_ns        mprotect(RO) + mprotect(RW) of 1 MiB of touched pages
 *
 * Reference (the issue's Linux in QEMU, TCG): getppid 0.47 us, fork+exit+wait 0.94 ms,
 * fork 1 MiB 0.73 ms, 16 MiB 1.42 ms, first touch 12.2 us/page, COW copy 24 us/page, reuse
 * 2.9 us/page, mprotect 85 us. The whole run stays well under 60 s under emulation.
 */
#include <stdlib.h>

#include "ktest.h"
#include "kbench.h"

#define REPS 11
#define REGION (4 * KT_MiB)
#define REGION_PAGES (REGION / KT_PAGE)

/* ---- the benchmarks --------------------------------------------------------------------- */

static void b_getppid(void)
{
	enum { BATCH = 2000 };
	uint64_t s[REPS];
	for (int r = -1; r < REPS; r++) {
		uint64_t c0 = kt_rdtsc();
		for (int i = 0; i < BATCH; i++)
			k_getppid();
		uint64_t c = kt_rdtsc() - c0;
		if (r >= 0)
			s[r] = c;
	}
	report("getppid_ns", s, REPS, BATCH);
}

static void b_clock_gettime(void)
{
	enum { BATCH = 2000 };
	uint64_t s[REPS];
	struct timespec ts;
	for (int r = -1; r < REPS; r++) {
		uint64_t c0 = kt_rdtsc();
		for (int i = 0; i < BATCH; i++)
			k_clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t c = kt_rdtsc() - c0;
		if (r >= 0)
			s[r] = c;
	}
	report("clock_gettime_ns", s, REPS, BATCH);
	for (int r = -1; r < REPS; r++) {
		uint64_t c0 = kt_rdtsc();
		for (int i = 0; i < BATCH; i++)
			clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t c = kt_rdtsc() - c0;
		if (r >= 0)
			s[r] = c;
	}
	report("clock_gettime_libc_ns", s, REPS, BATCH);
}

/* one fork + immediate exit + wait4, in cycles */
static uint64_t fork_once(void)
{
	uint64_t c0 = kt_rdtsc();
	long pid = k_fork();
	if (pid == 0)
		k_exit(0);
	if (pid < 0) {
		kout("# fork failed: %s\n", kt_errname(pid));
		k_exit(1);
	}
	kt_reap(pid, NULL);
	return kt_rdtsc() - c0;
}

static void b_fork(const char *key, size_t touched)
{
	enum { BATCH = 5 };
	char *p = NULL;
	if (touched) {
		p = k_anon(touched, PROT_READ | PROT_WRITE);
		if (!p) {
			kout("# %s: mmap failed\n", key);
			return;
		}
		kt_fill(p, touched, 1);
	}
	uint64_t s[REPS];
	for (int r = -1; r < REPS; r++) {
		uint64_t sum = 0;
		for (int i = 0; i < BATCH; i++) {
			sum += fork_once();
			if (p)
				kt_fill(p, touched, (uint32_t)i); /* writable and dirty again for the next fork */
		}
		if (r >= 0)
			s[r] = sum;
	}
	report(key, s, REPS, BATCH);
	if (p)
		k_munmap(p, touched);
}

static void b_fork_exec(void)
{
	enum { BATCH = 3 };
	uint64_t s[REPS];
	const char *self = kt_self_path();
	for (int r = -1; r < REPS; r++) {
		uint64_t sum = 0;
		for (int i = 0; i < BATCH; i++) {
			uint64_t c0 = kt_rdtsc();
			long pid = k_fork();
			if (pid == 0) {
				char *argv[] = { "bench", "--exit", NULL };
				char *envp[] = { NULL };
				k_execve(self, argv, envp);
				k_execve("/bin/bench", argv, envp);
				k_exit(100);
			}
			int st = 0;
			kt_reap(pid, &st);
			sum += kt_rdtsc() - c0;
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
				kout("# fork_exec_wait: the exec'd child failed (status 0x%x)\n", st);
				return;
			}
		}
		if (r >= 0)
			s[r] = sum;
	}
	report("fork_exec_wait_ns", s, REPS, BATCH);
}

static void b_first_touch_and_munmap(void)
{
	uint64_t s[REPS], u[REPS];
	for (int r = -1; r < REPS; r++) {
		char *p = k_anon(REGION, PROT_READ | PROT_WRITE);
		if (!p) {
			kout("# first_touch: mmap failed\n");
			return;
		}
		uint64_t c0 = kt_rdtsc();
		for (size_t off = 0; off < REGION; off += KT_PAGE)
			*(volatile char *)(p + off) = 1;
		uint64_t c1 = kt_rdtsc();
		k_munmap(p, REGION);
		uint64_t c2 = kt_rdtsc();
		if (r >= 0) {
			s[r] = c1 - c0;
			u[r] = c2 - c1;
		}
	}
	report("first_touch_fault_ns_per_page", s, REPS, REGION_PAGES);
	report("munmap_4mib_ns_per_page", u, REPS, REGION_PAGES);
}

static void b_cow(void)
{
	uint64_t copy[REPS], reuse[REPS];
	char *p = k_anon(REGION, PROT_READ | PROT_WRITE);
	if (!p) {
		kout("# cow: mmap failed\n");
		return;
	}
	kt_fill(p, REGION, 1);
	for (int r = -1; r < REPS; r++) {
		/* copy: the child stays alive (sleeping) while the parent writes every page */
		long pid = k_fork();
		if (pid == 0) {
			for (int i = 0; i < 600; i++) /* 60 s at most; killed long before */
				kt_sleep_ns(100000000);
			k_exit(0);
		}
		uint64_t c0 = kt_rdtsc();
		for (size_t off = 0; off < REGION; off += KT_PAGE)
			*(volatile char *)(p + off) = 2;
		uint64_t c1 = kt_rdtsc();
		k_kill(pid, SIGKILL);
		kt_reap(pid, NULL);

		/* reuse: fork, the child exits and is reaped, then the parent writes every page */
		pid = k_fork();
		if (pid == 0)
			k_exit(0);
		kt_reap(pid, NULL);
		uint64_t c2 = kt_rdtsc();
		for (size_t off = 0; off < REGION; off += KT_PAGE)
			*(volatile char *)(p + off) = 3;
		uint64_t c3 = kt_rdtsc();
		if (r >= 0) {
			copy[r] = c1 - c0;
			reuse[r] = c3 - c2;
		}
	}
	k_munmap(p, REGION);
	report("cow_copy_fault_ns_per_page", copy, REPS, REGION_PAGES);
	report("cow_reuse_fault_ns_per_page", reuse, REPS, REGION_PAGES);
}

static void b_mprotect(void)
{
	enum { BATCH = 10 };
	size_t len = KT_MiB;
	char *p = k_anon(len, PROT_READ | PROT_WRITE);
	if (!p) {
		kout("# mprotect: mmap failed\n");
		return;
	}
	kt_fill(p, len, 1);
	uint64_t s[REPS];
	for (int r = -1; r < REPS; r++) {
		uint64_t c0 = kt_rdtsc();
		for (int i = 0; i < BATCH; i++) {
			k_mprotect(p, len, PROT_READ);
			k_mprotect(p, len, PROT_READ | PROT_WRITE);
		}
		uint64_t c = kt_rdtsc() - c0;
		if (r >= 0)
			s[r] = c;
	}
	k_munmap(p, len);
	report("mprotect_1mib_rw_ro_rw_ns", s, REPS, BATCH);
}

int main(int argc, char **argv, char **envp)
{
	(void)envp;
	if (argc > 1 && strcmp(argv[1], "--exit") == 0)
		return 0;
	kt_argc = argc;
	kt_argv = argv;
	kt_prog = "bench";
	struct utsname u;
	memset(&u, 0, sizeof u);
	k_uname(&u);
	uint64_t start = kt_now_ns();

	g_cycles_per_ns = calibrate();
	kout("# bench: user-space benchmark, medians of %d repetitions, TSC calibrated against "
	     "CLOCK_MONOTONIC\n", REPS);
	kout("sysname=%s\n", u.sysname);
	kout("release=%s\n", u.release);
	kout("tsc_mhz=%.1f\n", g_cycles_per_ns * 1000.0);
	kout("clock_step_ns=%llu\n", (unsigned long long)g_clock_step);
	kout("free_kib=%lu\n", kt_freeram() / 1024);

	b_getppid();
	b_clock_gettime();
	b_fork("fork_exit_wait_ns", 0);
	b_fork("fork_1mib_ns", KT_MiB);
	b_fork("fork_16mib_ns", 16 * KT_MiB);
	b_fork_exec();
	b_first_touch_and_munmap();
	b_cow();
	b_mprotect();

	double again = calibrate();
	kout("tsc_drift_ppm=%.0f\n", (again - g_cycles_per_ns) / g_cycles_per_ns * 1e6);
	kout("total_ms=%llu\n", (unsigned long long)((kt_now_ns() - start) / 1000000));
	return 0;
}
