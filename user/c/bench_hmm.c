/*
 * bench_hmm - benchmarks of device-exclusive access through /dev/hmm_dmirror0.
 *
 * Prints key=value lines (medians of REPS repetitions, in ns and TSC cycles):
 *   exclusive_ns_per_page       HMM_DMIRROR_EXCLUSIVE over 256 present pages (conversion to
 *                               device-exclusive entries + the device reading them), per page
 *   fault_restore_ns_per_page   a CPU write to each of 256 device-exclusive pages: page fault,
 *                               device revoked (notifier), present entry restored, per page
 *   fork_1mib_exclusive_ns      fork+exit+wait of a process with 1 MiB of exclusive pages
 *                               (fork restores each one before copying it as COW)
 *   fork_1mib_ordinary_ns       the same with 1 MiB of ordinary written pages, for comparison
 *   atomic_add_pages_per_s      HMM_DMIRROR_ATOMIC_ADD throughput on pages the device already
 *                               holds ATOMIC (pure device work), pages per second
 * Runs only where the device exists (memkernel); elsewhere it says so and exits 0.
 */
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "ktest.h"
#include "kbench.h"

#define REPS 7
#define PAGES 256

struct hmm_cmd { uint64_t addr, ptr, npages, cpages, faults; };
#define HMM_EXCLUSIVE 0xC0284805UL
#define HMM_ATOMIC_ADD 0xC0284840UL

static int g_fd;

static long hmm(unsigned long req, void *addr, void *ptr, uint64_t npages)
{
	struct hmm_cmd c = { (uint64_t)addr, (uint64_t)ptr, npages, 0, 0 };
	return ksys3(SYS_ioctl, g_fd, req, &c);
}

static void *map_touched(size_t pages)
{
	char *p = (char *)k_mmap(NULL, pages * KT_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (size_t i = 0; i < pages; i++)
		p[i * KT_PAGE] = 1;
	return p;
}

static void b_exclusive_and_restore(void)
{
	uint64_t ex[REPS], re[REPS];
	static char mirror[PAGES * KT_PAGE];
	for (int r = -1; r < REPS; r++) {
		volatile char *p = map_touched(PAGES);
		uint64_t c0 = kt_rdtsc();
		long rc = hmm(HMM_EXCLUSIVE, (void *)p, mirror, PAGES);
		uint64_t c1 = kt_rdtsc();
		for (int i = 0; i < PAGES; i++)
			p[i * KT_PAGE] = 2;
		uint64_t c2 = kt_rdtsc();
		if (rc != 0)
			kout("# EXCLUSIVE failed: %s\n", kt_errname(rc));
		if (r >= 0) {
			ex[r] = c1 - c0;
			re[r] = c2 - c1;
		}
		k_munmap((void *)p, PAGES * KT_PAGE);
	}
	report("exclusive_ns_per_page", ex, REPS, PAGES);
	report("fault_restore_ns_per_page", re, REPS, PAGES);
}

static void b_fork(const char *key, int exclusive)
{
	enum { N = 256 }; /* 1 MiB */
	static char mirror[N * KT_PAGE];
	uint64_t s[REPS];
	for (int r = -1; r < REPS; r++) {
		char *p = map_touched(N);
		if (exclusive)
			hmm(HMM_EXCLUSIVE, p, mirror, N);
		uint64_t c0 = kt_rdtsc();
		long pid = k_fork();
		if (pid == 0)
			k_exit(0);
		kt_reap(pid, NULL);
		if (r >= 0)
			s[r] = kt_rdtsc() - c0;
		k_munmap(p, N * KT_PAGE);
	}
	report(key, s, REPS, 1);
}

static void b_atomic_add(void)
{
	enum { ROUNDS = 8 };
	uint64_t s[REPS];
	static char mirror[PAGES * KT_PAGE];
	char *p = map_touched(PAGES);
	hmm(HMM_EXCLUSIVE, p, mirror, PAGES);
	for (int r = -1; r < REPS; r++) {
		uint64_t c0 = kt_rdtsc();
		for (int i = 0; i < ROUNDS; i++)
			hmm(HMM_ATOMIC_ADD, p, (void *)1, PAGES);
		if (r >= 0)
			s[r] = kt_rdtsc() - c0;
	}
	qsort(s, REPS, sizeof s[0], cmp_u64);
	double ns = (double)s[REPS / 2] / g_cycles_per_ns;
	kout("atomic_add_pages_per_s=%.0f\n", (double)(ROUNDS * PAGES) / (ns / 1e9));
	k_munmap(p, PAGES * KT_PAGE);
}

int main(int argc, char **argv)
{
	kt_argc = argc;
	kt_argv = argv;
	kt_prog = "bench_hmm";
	g_fd = (int)k_open("/dev/hmm_dmirror0", O_RDWR);
	if (g_fd < 0) {
		kout("# bench_hmm: no /dev/hmm_dmirror0 (%s): skipped\n", kt_errname(g_fd));
		return 0;
	}
	g_cycles_per_ns = calibrate();
	kout("# bench_hmm: device-exclusive benchmarks, medians of %d repetitions\n", REPS);
	b_exclusive_and_restore();
	b_fork("fork_1mib_exclusive_ns", 1);
	b_fork("fork_1mib_ordinary_ns", 0);
	b_atomic_add();
	return 0;
}
