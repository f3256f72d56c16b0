/*
 * t_mmap: mmap, munmap, mprotect and madvise on private anonymous memory, as on Linux.
 *   - a new mapping is page aligned and reads as zero; 200 one-page mappings are disjoint;
 *     a sparse 64 MiB mapping costs only the pages touched (the harness checks it is all
 *     returned);
 *   - MAP_FIXED over part of a mapping replaces just that part with zero pages;
 *   - munmap of the middle page leaves a hole (SIGSEGV there) and the neighbours intact;
 *     munmap of an unmapped range is 0;
 *   - mprotect of the middle page splits the mapping: writes there fault, reads work,
 *     the neighbours stay writable, and the data survives RO, NONE and back to RW;
 *   - madvise(MADV_DONTNEED) makes the pages read as zero again;
 *   - errors: length 0, unaligned address, no MAP_PRIVATE/MAP_SHARED: -EINVAL; mprotect
 *     across a hole: -ENOMEM; and nothing may touch the kernel half: MAP_FIXED there is
 *     -ENOMEM, munmap there is -EINVAL, mprotect/madvise there is -ENOMEM.
 */
#include "ktest.h"

#define RW (PROT_READ | PROT_WRITE)
#define PRIV (MAP_PRIVATE | MAP_ANONYMOUS)

/* A child that does *p = v (write) or reads *p; returns 0 if it was killed by SIGSEGV,
 * 1 if the access worked, 2 for anything else. */
static int access_faults(volatile char *p, int write)
{
	long pid = k_fork();
	if (pid == 0) {
		if (write)
			*p = 1;
		else
			(void)*p;
		k_exit(0);
	}
	if (pid < 0)
		return 2;
	int st = 0;
	kt_reap(pid, &st);
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV)
		return 0;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 1;
	return 2;
}

static int t_anon_zero(void)
{
	size_t len = KT_MiB;
	long r = k_mmap(NULL, len, RW, PRIV, -1, 0);
	KT_CHECK(!kt_is_err(r), "mmap(1 MiB) returned %s", kt_errname(r));
	char *p = (char *)r;
	KT_CHECK(((uintptr_t)p & 4095) == 0, "mmap returned %p, not page aligned", (void *)p);
	for (size_t i = 0; i < len; i += 64)
		KT_CHECK(p[i] == 0, "new mapping byte %zu is not zero", i);
	kt_fill(p, len, 0x1234);
	KT_CHECK(kt_check_fill(p, len, 0x1234) < 0, "write/read back failed");
	KT_CHECK(k_munmap(p, len) == 0, "munmap failed");
	KT_CHECK(access_faults(p, 0) == 0, "a read after munmap did not fault with SIGSEGV");
	return 0;
}

static int t_many_small(void)
{
	enum { N = 200 };
	static char *p[N];
	for (int i = 0; i < N; i++) {
		p[i] = k_anon(4096, RW);
		KT_CHECK(p[i], "mmap #%d failed", i);
		*(volatile int *)p[i] = i;
	}
	for (int i = 0; i < N; i++) {
		KT_CHECK(*(volatile int *)p[i] == i, "mapping #%d holds %d: mappings overlap", i, *(int *)p[i]);
		for (int j = 0; j < i; j++)
			KT_CHECK(p[i] != p[j], "mappings #%d and #%d at the same address", j, i);
	}
	for (int i = 0; i < N; i++)
		KT_CHECK(k_munmap(p[i], 4096) == 0, "munmap #%d failed", i);
	return 0;
}

static int t_sparse(void)
{
	size_t len = 64 * KT_MiB;
	unsigned long before = kt_freeram();
	char *p = k_anon(len, RW);
	KT_CHECK(p, "mmap(64 MiB) failed");
	for (size_t off = 0; off < len; off += KT_MiB)
		p[off] = (char)(off >> 20);
	for (size_t off = 0; off < len; off += KT_MiB)
		KT_CHECK(p[off] == (char)(off >> 20), "sparse page at %zu MiB lost", off >> 20);
	unsigned long during = kt_freeram();
	KT_CHECK(k_munmap(p, len) == 0, "munmap failed");
	if (kt_memkernel) {
		/* 64 data pages plus page tables; certainly far less than 64 MiB */
		KT_CHECK(before - during < 2 * KT_MiB, "touching 64 pages of a 64 MiB mapping took %lu KiB",
			 (before - during) / 1024);
	}
	return 0;
}

static int t_fixed_replaces(void)
{
	char *p = k_anon(4 * 4096, RW);
	KT_CHECK(p, "mmap failed");
	kt_fill(p, 4 * 4096, 0xabc);
	long r = k_mmap(p + 4096, 4096, RW, PRIV | MAP_FIXED, -1, 0);
	KT_CHECK(r == (long)(p + 4096), "mmap(MAP_FIXED) returned %s / %#lx, want %p", kt_errname(r), r,
		 (void *)(p + 4096));
	KT_CHECK(*(volatile uint32_t *)(p + 4096) == 0, "the MAP_FIXED page is not zero");
	KT_CHECK(*(volatile uint32_t *)p == (0xabc ^ 0), "page 0 changed");
	KT_CHECK(*(volatile uint32_t *)(p + 2 * 4096) == (0xabc ^ 2), "page 2 changed");
	KT_CHECK(*(volatile uint32_t *)(p + 3 * 4096) == (0xabc ^ 3), "page 3 changed");
	p[4096] = 5;
	KT_CHECK(k_munmap(p, 4 * 4096) == 0, "munmap of the whole range failed");
	return 0;
}

static int t_munmap_hole(void)
{
	char *p = k_anon(3 * 4096, RW);
	KT_CHECK(p, "mmap failed");
	kt_fill(p, 3 * 4096, 0x77);
	KT_CHECK(k_munmap(p + 4096, 4096) == 0, "munmap of the middle page failed");
	KT_CHECK(access_faults(p + 4096, 0) == 0, "a read in the hole did not fault with SIGSEGV");
	KT_CHECK(access_faults(p + 4096, 1) == 0, "a write in the hole did not fault with SIGSEGV");
	KT_CHECK(*(volatile uint32_t *)p == 0x77, "page before the hole changed");
	KT_CHECK(*(volatile uint32_t *)(p + 8192) == (0x77 ^ 2), "page after the hole changed");
	p[0] = 1;
	p[8192] = 2;
	long r = k_munmap(p + 4096, 4096);
	KT_CHECK(r == 0, "munmap of an already unmapped page returned %s, expected 0", kt_errname(r));
	KT_CHECK(k_munmap(p, 3 * 4096) == 0, "munmap across the hole failed");
	KT_CHECK(access_faults(p, 0) == 0, "a read after munmap did not fault");
	return 0;
}

static int t_mprotect_split(void)
{
	char *p = k_anon(3 * 4096, RW);
	KT_CHECK(p, "mmap failed");
	kt_fill(p, 3 * 4096, 0x99);
	KT_CHECK(k_mprotect(p + 4096, 4096, PROT_READ) == 0, "mprotect(middle, PROT_READ) failed");
	KT_CHECK(access_faults(p + 4096, 1) == 0, "a write to the PROT_READ page did not fault");
	KT_CHECK(access_faults(p + 4096, 0) == 1, "a read of the PROT_READ page failed");
	KT_CHECK(*(volatile uint32_t *)(p + 4096) == (0x99 ^ 1), "the PROT_READ page lost its data");
	p[0] = 1;
	p[8192] = 1; /* neighbours still writable */
	KT_CHECK(k_mprotect(p + 4096, 4096, PROT_NONE) == 0, "mprotect(PROT_NONE) failed");
	KT_CHECK(access_faults(p + 4096, 0) == 0, "a read of the PROT_NONE page did not fault");
	KT_CHECK(k_mprotect(p, 3 * 4096, RW) == 0, "mprotect of the whole range back to RW failed");
	KT_CHECK(*(volatile uint32_t *)(p + 4096) == (0x99 ^ 1), "data lost across PROT_NONE -> RW");
	p[4096] = 7;
	KT_CHECK(p[4096] == 7, "write after RW failed");
	KT_CHECK(k_munmap(p, 3 * 4096) == 0, "munmap failed");
	return 0;
}

static int t_madvise(void)
{
	size_t len = 16 * 4096;
	char *p = k_anon(len, RW);
	KT_CHECK(p, "mmap failed");
	kt_fill(p, len, 0x55);
	KT_CHECK(k_madvise(p + 4 * 4096, 8 * 4096, MADV_DONTNEED) == 0, "madvise(MADV_DONTNEED) failed");
	for (int i = 0; i < 16; i++) {
		uint32_t v = *(volatile uint32_t *)(p + i * 4096);
		if (i >= 4 && i < 12)
			KT_CHECK(v == 0, "page %d not zero after MADV_DONTNEED", i);
		else
			KT_CHECK(v == (0x55u ^ (uint32_t)i), "page %d (outside the range) changed", i);
	}
	kt_fill(p, len, 0x66);
	KT_CHECK(kt_check_fill(p, len, 0x66) < 0, "write after MADV_DONTNEED failed");
	long r = k_madvise(p + 1, 4096, MADV_DONTNEED);
	KT_CHECK(r == -EINVAL, "madvise(unaligned) returned %s, expected -EINVAL", kt_errname(r));
	k_munmap(p, len);
	return 0;
}

static int t_errors(void)
{
	long r = k_mmap(NULL, 0, RW, PRIV, -1, 0);
	KT_CHECK(r == -EINVAL, "mmap(len 0) returned %s, expected -EINVAL", kt_errname(r));
	r = k_mmap((void *)0x10000001, 4096, RW, PRIV | MAP_FIXED, -1, 0);
	KT_CHECK(r == -EINVAL, "mmap(MAP_FIXED, unaligned) returned %s, expected -EINVAL", kt_errname(r));
	r = k_mmap(NULL, 4096, RW, MAP_ANONYMOUS, -1, 0);
	KT_CHECK(r == -EINVAL, "mmap(neither MAP_PRIVATE nor MAP_SHARED) returned %s, expected -EINVAL",
		 kt_errname(r));
	char *p = k_anon(3 * 4096, RW);
	KT_CHECK(p, "mmap failed");
	r = k_munmap(p + 1, 4096);
	KT_CHECK(r == -EINVAL, "munmap(unaligned) returned %s, expected -EINVAL", kt_errname(r));
	r = k_munmap(p, 0);
	KT_CHECK(r == -EINVAL, "munmap(len 0) returned %s, expected -EINVAL", kt_errname(r));
	r = k_mprotect(p + 1, 4096, PROT_READ);
	KT_CHECK(r == -EINVAL, "mprotect(unaligned) returned %s, expected -EINVAL", kt_errname(r));
	k_munmap(p + 4096, 4096);
	r = k_mprotect(p, 3 * 4096, PROT_READ);
	KT_CHECK(r == -ENOMEM, "mprotect across a hole returned %s, expected -ENOMEM", kt_errname(r));
	k_munmap(p, 3 * 4096);
	return 0;
}

static int t_kernel_half(void)
{
	void *k = KT_KERNEL_PTR;
	void *kimg = (void *)0xffffffff80000000UL;
	long r = k_mmap(k, 4096, RW, PRIV | MAP_FIXED, -1, 0);
	KT_CHECK(r == -ENOMEM, "mmap(MAP_FIXED at 0xffff800000000000) returned %s / %#lx, expected -ENOMEM",
		 kt_errname(r), r);
	r = k_mmap(kimg, 4096, RW, PRIV | MAP_FIXED, -1, 0);
	KT_CHECK(r == -ENOMEM, "mmap(MAP_FIXED at 0xffffffff80000000) returned %s", kt_errname(r));
	r = k_mmap((void *)0x00007ffffffff000UL, 2 * 4096, RW, PRIV | MAP_FIXED, -1, 0);
	KT_CHECK(r == -ENOMEM, "mmap(MAP_FIXED straddling the end of user space) returned %s", kt_errname(r));
	r = k_munmap(k, 4096);
	KT_CHECK(r == -EINVAL, "munmap(0xffff800000000000) returned %s, expected -EINVAL", kt_errname(r));
	r = k_munmap(kimg, 4096);
	KT_CHECK(r == -EINVAL, "munmap(0xffffffff80000000) returned %s, expected -EINVAL", kt_errname(r));
	r = k_mprotect(kimg, 4096, RW);
	KT_CHECK(r == -ENOMEM, "mprotect(0xffffffff80000000) returned %s, expected -ENOMEM", kt_errname(r));
	r = k_madvise(kimg, 4096, MADV_DONTNEED);
	KT_CHECK(r == -ENOMEM || r == -EINVAL, "madvise(0xffffffff80000000) returned %s", kt_errname(r));
	/* and the kernel is still there */
	KT_CHECK(k_getpid() > 0, "getpid failed");
	return 0;
}

static const struct ktest tests[] = {
	{ "mmap::anon_is_aligned_and_zero", t_anon_zero, 0 },
	{ "mmap::two_hundred_small_mappings_disjoint", t_many_small, 0 },
	{ "mmap::sparse_64mib_costs_only_touched_pages", t_sparse, 0 },
	{ "mmap::map_fixed_replaces_part", t_fixed_replaces, 0 },
	{ "mmap::munmap_middle_leaves_hole", t_munmap_hole, 0 },
	{ "mmap::mprotect_splits_and_keeps_data", t_mprotect_split, 0 },
	{ "mmap::madvise_dontneed_zeroes", t_madvise, 0 },
	{ "mmap::bad_arguments_einval_enomem", t_errors, 0 },
	{ "mmap::kernel_half_untouchable", t_kernel_half, 0 },
};

int main(int argc, char **argv, char **envp)
{
	return ktest_main("t_mmap", tests, sizeof tests / sizeof tests[0], argc, argv, envp);
}
