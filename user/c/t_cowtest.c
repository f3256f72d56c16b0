/*
 * t_cowtest: a port of xv6-riscv's user/cowtest.c ("simple" and "three"), sized with sysinfo.
 *
 *   simple: grow the heap (brk) by 2/3 of free memory - more than half, so fork can only
 *           succeed with copy-on-write - write every page, fork, the child exits at once, the
 *           parent waits and shrinks the heap back. Twice, which checks the first round freed
 *           everything. Also a variant with one big mmap instead of brk.
 *   three:  a quarter of free memory; the child writes the first half, a grandchild writes
 *           the first 4/5 and checks it, the parent writes all of it and checks after the
 *           others have exited. Three times.
 *
 * Differences from xv6: the heap grows with the raw brk syscall (musl's sbrk refuses to move
 * the break); the child waits for the grandchild instead of leaving an orphan; sizes come from
 * sysinfo().freeram and are capped at 256 MiB on a kernel other than memkernel, so the test
 * does not eat a build machine. No malloc here: musl's allocator also uses brk.
 */
#include "ktest.h"

#define HOST_CAP (256 * KT_MiB)

static size_t free_bytes_capped(void)
{
	size_t f = kt_freeram();
	if (!kt_memkernel && f > HOST_CAP)
		f = HOST_CAP;
	return f;
}

/* The heap grows by sz with brk; returns the old break (page aligned start in *start) or 0. */
static long heap_grow(size_t sz, char **start)
{
	long cur = k_brk(0);
	if (cur <= 0)
		return 0;
	long s = (cur + 4095) & ~4095L;
	long want = s + (long)sz;
	long got = k_brk((void *)want);
	if (got < want) {
		k_brk((void *)cur);
		return 0;
	}
	*start = (char *)s;
	return cur;
}

static int simple_round(int round, int use_mmap)
{
	size_t sz = (free_bytes_capped() / 3) * 2;
	sz &= ~(KT_PAGE - 1);
	char *p = NULL;
	long old_brk = 0;
	if (use_mmap) {
		p = k_anon(sz, PROT_READ | PROT_WRITE);
		KT_CHECK(p, "round %d: mmap of %zu MiB failed", round, sz / KT_MiB);
	} else {
		old_brk = heap_grow(sz, &p);
		KT_CHECK(old_brk, "round %d: brk(+%zu MiB) failed", round, sz / KT_MiB);
	}
	long me = k_getpid();
	for (char *q = p; q < p + sz; q += 4096)
		*(long *)q = me;

	long pid = k_fork();
	if (pid < 0) {
		if (use_mmap)
			k_munmap(p, sz);
		else
			k_brk((void *)old_brk);
		return kt_fail("round %d: fork() failed with %zu MiB of %zu MiB free in use: %s", round,
			       sz / KT_MiB, free_bytes_capped() / KT_MiB, kt_errname(pid));
	}
	if (pid == 0)
		k_exit(0);
	int e = kt_expect_exit(pid, 0, "child");
	if (e)
		return e;
	for (char *q = p; q < p + sz; q += 4096)
		KT_CHECK(*(long *)q == me, "round %d: wrong content at offset %zu", round, (size_t)(q - p));
	if (use_mmap) {
		KT_CHECK(k_munmap(p, sz) == 0, "round %d: munmap failed", round);
	} else {
		long r = k_brk((void *)old_brk);
		KT_CHECK(r == old_brk, "round %d: brk shrink returned %#lx, wanted %#lx", round, r, old_brk);
	}
	return 0;
}

static int t_simple(void)
{
	for (int round = 0; round < 2; round++)
		if (simple_round(round, 0))
			return 1;
	return 0;
}

static int t_simple_mmap(void)
{
	for (int round = 0; round < 2; round++)
		if (simple_round(round, 1))
			return 1;
	return 0;
}

static int three_round(int round)
{
	size_t sz = free_bytes_capped() / 4;
	sz &= ~(KT_PAGE - 1);
	char *p = NULL;
	long old_brk = heap_grow(sz, &p);
	KT_CHECK(old_brk, "round %d: brk(+%zu MiB) failed", round, sz / KT_MiB);

	long pid1 = k_fork();
	KT_CHECK(pid1 >= 0, "round %d: fork failed: %s", round, kt_errname(pid1));
	if (pid1 == 0) {
		long pid2 = k_fork();
		if (pid2 < 0)
			k_exit(10);
		if (pid2 == 0) {
			long me = k_getpid();
			for (char *q = p; q < p + (sz / 5) * 4; q += 4096)
				*(long *)q = me;
			for (char *q = p; q < p + (sz / 5) * 4; q += 4096)
				if (*(long *)q != me)
					k_exit(11);
			k_exit(0);
		}
		for (char *q = p; q < p + (sz / 2); q += 4096)
			*(long *)q = 9999;
		int st = 0;
		if (kt_reap(pid2, &st) != pid2)
			k_exit(12);
		if (!WIFEXITED(st))
			k_exit(13);
		if (WEXITSTATUS(st))
			k_exit(WEXITSTATUS(st));
		for (char *q = p; q < p + (sz / 2); q += 4096)
			if (*(long *)q != 9999)
				k_exit(14);
		k_exit(0);
	}
	long me = k_getpid();
	for (char *q = p; q < p + sz; q += 4096)
		*(long *)q = me;
	int st = 0;
	kt_reap(pid1, &st);
	kt_sleep_ns(10000000); /* xv6: sleep(1) */
	for (char *q = p; q < p + sz; q += 4096)
		KT_CHECK(*(long *)q == me, "round %d: parent: wrong content at offset %zu", round, (size_t)(q - p));
	long r = k_brk((void *)old_brk);
	KT_CHECK(r == old_brk, "round %d: brk shrink returned %#lx", round, r);
	KT_CHECK(WIFEXITED(st), "round %d: child killed (0x%x)", round, st);
	switch (WEXITSTATUS(st)) {
	case 0: return 0;
	case 10: return kt_fail("round %d: fork in the child failed", round);
	case 11: return kt_fail("round %d: grandchild: wrong content", round);
	case 12: return kt_fail("round %d: child could not reap the grandchild", round);
	case 13: return kt_fail("round %d: grandchild killed", round);
	case 14: return kt_fail("round %d: child: wrong content", round);
	default: return kt_fail("round %d: child exited %d", round, WEXITSTATUS(st));
	}
}

static int t_three(void)
{
	for (int round = 0; round < 3; round++)
		if (three_round(round))
			return 1;
	return 0;
}

static const struct ktest tests[] = {
	{ "cowtest::simple", t_simple, 300 },
	{ "cowtest::simple_mmap", t_simple_mmap, 300 },
	{ "cowtest::three", t_three, 300 },
};

int main(int argc, char **argv, char **envp)
{
	return ktest_main("t_cowtest", tests, sizeof tests / sizeof tests[0], argc, argv, envp);
}
