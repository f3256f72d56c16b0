/*
 * t_cow: copy-on-write isolation after fork, both ways, with both processes alive.
 *
 * Ordering without pipes or shared memory: both processes know t0 (taken just before fork)
 * and a delay D. The writer writes at once and notes when it finished (tw); the reader waits
 * until t0 + D and then reads. If tw <= t0 + D the write provably came first; if not, the
 * round proves nothing and is repeated with 2D (up to 5 times). The reader must see the old
 * value in every round, whatever the timing.
 *
 * Regions: 4 MiB mmap, 4 MiB malloc (musl serves it with mmap), a stack array, a .bss
 * array, a .data array, 1 MiB of brk heap. Then: both write at once; a never-touched
 * region; the reuse path (child exited, parent writes); three generations; mprotect(RW) of
 * a COW page must not make it shared-writable; a kernel write (read(2) into the buffer)
 * must break COW like a user write; munmap and madvise(DONTNEED) in the child leave the
 * parent's copy alone.
 */
#include <stdlib.h>

#include "ktest.h"

#define SEED_A 0xa5a50000u
#define SEED_B 0x5a5a0000u
#define SEED_C 0x3c3c0000u
#define D0_NS 100000000ULL /* 100 ms */
#define ATTEMPTS 5

/* An action done by the writer on [p, p+len); own() checks the writer sees its own result. */
struct cow_op {
	const char *name;
	int (*act)(void *p, size_t len, uint32_t seed); /* 0 = done */
	long (*own)(void *p, size_t len, uint32_t seed); /* -1 = fine, else bad page */
};

static int act_fill(void *p, size_t len, uint32_t seed)
{
	kt_fill(p, len, seed);
	return 0;
}
static long own_fill(void *p, size_t len, uint32_t seed) { return kt_check_fill(p, len, seed); }

/* mprotect(PROT_READ) then PROT_READ|PROT_WRITE of a page still shared with the other process,
 * then write: the write must still copy. */
static int act_mprotect_fill(void *p, size_t len, uint32_t seed)
{
	if (k_mprotect(p, len, PROT_READ) != 0 || k_mprotect(p, len, PROT_READ | PROT_WRITE) != 0)
		return 1;
	kt_fill(p, len, seed);
	return 0;
}

/* The kernel writes into the buffer: read(2) of this program's own file, 64 bytes per page. */
static int act_read_syscall(void *p, size_t len, uint32_t seed)
{
	(void)seed;
	long fd = k_open(kt_self_path(), O_RDONLY);
	if (fd < 0)
		return 1;
	for (size_t off = 0; off < len; off += KT_PAGE)
		if (k_read((int)fd, (char *)p + off, 64) != 64) {
			k_close((int)fd);
			return 2;
		}
	k_close((int)fd);
	return 0;
}
static long own_read_syscall(void *p, size_t len, uint32_t seed)
{
	(void)seed;
	(void)len;
	return memcmp(p, "\177ELF", 4) == 0 ? -1 : 0;
}

static const struct cow_op OP_FILL = { "write", act_fill, own_fill };
static const struct cow_op OP_MPROTECT = { "mprotect RO->RW then write", act_mprotect_fill, own_fill };
static const struct cow_op OP_READ = { "read(2) into it", act_read_syscall, own_read_syscall };

/*
 * parent_writes: fill A, fork; the parent does op at once; the child reads at t0 + D and
 * must see A. Returns 0 or a printed failure.
 */
static int parent_writes(const char *what, void *p, size_t len, const struct cow_op *op)
{
	uint64_t d = D0_NS;
	for (int attempt = 0; attempt < ATTEMPTS; attempt++, d *= 2) {
		kt_fill(p, len, SEED_A);
		uint64_t t0 = kt_now_ns();
		long pid = k_fork();
		if (pid == 0) {
			kt_sleep_until(t0 + d);
			long bad = kt_check_fill(p, len, SEED_A);
			k_exit(bad < 0 ? 0 : 10 + (int)(bad > 200 ? 200 : bad));
		}
		KT_CHECK(pid > 0, "%s: fork returned %s", what, kt_errname(pid));
		int r = op->act(p, len, SEED_B);
		uint64_t tw = kt_now_ns();
		long own = r ? -2 : op->own(p, len, SEED_B);
		int st = 0;
		kt_reap(pid, &st);
		KT_CHECK(r == 0, "%s: the parent's %s failed (%d)", what, op->name, r);
		KT_CHECK(own < 0, "%s: the parent's own %s is not visible to it (page %ld)", what, op->name, own);
		KT_CHECK(WIFEXITED(st), "%s: child killed (status 0x%x)", what, st);
		KT_CHECK(WEXITSTATUS(st) == 0,
			 "%s: after the parent's %s, the child sees a changed value at page %d", what,
			 op->name, WEXITSTATUS(st) - 10);
		if (tw <= t0 + d)
			return 0;
	}
	return kt_fail("%s: the parent's %s never finished within the delay (last %llu ms)", what, op->name,
		       (unsigned long long)(d / 2000000));
}

/*
 * child_writes: fill A, fork; the child does op at once and stays alive until t0 + 2D; the
 * parent reads at t0 + D (child alive) and again after reaping; both must see A.
 */
static int child_writes(const char *what, void *p, size_t len, const struct cow_op *op)
{
	uint64_t d = D0_NS;
	for (int attempt = 0; attempt < ATTEMPTS; attempt++, d *= 2) {
		kt_fill(p, len, SEED_A);
		uint64_t t0 = kt_now_ns();
		long pid = k_fork();
		if (pid == 0) {
			if (op->act(p, len, SEED_B))
				k_exit(5);
			uint64_t tw = kt_now_ns();
			if (op->own(p, len, SEED_B) >= 0)
				k_exit(6);
			if (tw > t0 + d)
				k_exit(7); /* too slow: inconclusive */
			kt_sleep_until(t0 + 2 * d);
			if (op->own(p, len, SEED_B) >= 0)
				k_exit(8);
			k_exit(0);
		}
		KT_CHECK(pid > 0, "%s: fork returned %s", what, kt_errname(pid));
		kt_sleep_until(t0 + d);
		long bad = kt_check_fill(p, len, SEED_A);
		uint64_t tr = kt_now_ns();
		int st = 0;
		kt_reap(pid, &st);
		long bad_after = kt_check_fill(p, len, SEED_A);
		KT_CHECK(bad < 0, "%s: while the child is alive, the parent sees the child's %s at page %ld", what,
			 op->name, bad);
		KT_CHECK(bad_after < 0, "%s: after the child exited, the parent sees the child's %s at page %ld",
			 what, op->name, bad_after);
		KT_CHECK(WIFEXITED(st), "%s: child killed (status 0x%x)", what, st);
		int c = WEXITSTATUS(st);
		KT_CHECK(c != 5, "%s: the child's %s failed", what, op->name);
		KT_CHECK(c != 6, "%s: the child's own %s is not visible to it", what, op->name);
		KT_CHECK(c != 8, "%s: the child's copy changed while the parent read it", what);
		KT_CHECK(c == 0 || c == 7, "%s: child exited with %d", what, c);
		if (c == 0 && tr < t0 + 2 * d)
			return 0;
	}
	return kt_fail("%s: the child's %s never finished within the delay", what, op->name);
}

static int both_ways(const char *what, void *p, size_t len)
{
	if (parent_writes(what, p, len, &OP_FILL))
		return 1;
	return child_writes(what, p, len, &OP_FILL);
}

static int t_mmap_4mib(void)
{
	size_t len = 4 * KT_MiB;
	void *p = k_anon(len, PROT_READ | PROT_WRITE);
	KT_CHECK(p, "mmap 4 MiB failed");
	int r = both_ways("mmap 4 MiB", p, len);
	k_munmap(p, len);
	return r;
}

static int t_malloc_4mib(void)
{
	size_t len = 4 * KT_MiB;
	void *p = malloc(len);
	KT_CHECK(p, "malloc 4 MiB failed");
	int r = both_ways("malloc 4 MiB", p, len);
	free(p);
	return r;
}

static int t_stack(void)
{
	volatile char buf[4 * 4096 + 64];
	char *p = (char *)buf;
	return both_ways("stack array", p, 4 * 4096);
}

static char bss_arr[64 * 1024];
static int t_bss(void) { return both_ways("global .bss", bss_arr, sizeof bss_arr); }

static char data_arr[3 * 4096 + 100] = { 1, 2, 3 };
static int t_data(void) { return both_ways("global .data", data_arr, 3 * 4096); }

static int t_brk(void)
{
	long cur = k_brk(0);
	KT_CHECK(cur > 0, "brk(0) returned %s", kt_errname(cur));
	long start = (cur + 4095) & ~4095L;
	long want = start + (long)KT_MiB;
	long got = k_brk((void *)want);
	KT_CHECK(got >= want, "brk(+1 MiB) returned %#lx, wanted %#lx", got, want);
	int r = both_ways("brk heap 1 MiB", (void *)start, KT_MiB);
	k_brk((void *)cur);
	return r;
}

/* Both write different values at once; each must see only its own at t0 + D. */
static int t_both_write(void)
{
	size_t len = KT_MiB;
	char *p = k_anon(len, PROT_READ | PROT_WRITE);
	KT_CHECK(p, "mmap failed");
	uint64_t d = D0_NS;
	for (int attempt = 0; attempt < ATTEMPTS; attempt++, d *= 2) {
		kt_fill(p, len, SEED_A);
		uint64_t t0 = kt_now_ns();
		long pid = k_fork();
		if (pid == 0) {
			kt_fill(p, len, SEED_C);
			uint64_t tw = kt_now_ns();
			kt_sleep_until(t0 + d);
			if (kt_check_fill(p, len, SEED_C) >= 0)
				k_exit(2);
			k_exit(tw <= t0 + d ? 0 : 3);
		}
		KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
		kt_fill(p, len, SEED_B);
		uint64_t tw = kt_now_ns();
		kt_sleep_until(t0 + d);
		long bad = kt_check_fill(p, len, SEED_B);
		int st = 0;
		kt_reap(pid, &st);
		KT_CHECK(bad < 0, "the parent sees a value it did not write at page %ld", bad);
		KT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) != 2, "the child sees a value it did not write");
		KT_CHECK(WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 3), "child status 0x%x", st);
		if (WEXITSTATUS(st) == 0 && tw <= t0 + d) {
			k_munmap(p, len);
			return 0;
		}
	}
	return kt_fail("the writes never finished within the delay");
}

/* A region never touched before fork: zero in both, each write private. */
static int t_untouched(void)
{
	size_t len = KT_MiB;
	char *p = k_anon(len, PROT_READ | PROT_WRITE);
	KT_CHECK(p, "mmap failed");
	long pid = k_fork();
	if (pid == 0) {
		for (size_t i = 0; i < len; i += 512)
			if (p[i])
				k_exit(2);
		kt_fill(p, len, SEED_B);
		k_exit(kt_check_fill(p, len, SEED_B) < 0 ? 0 : 3);
	}
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	int e = kt_expect_exit(pid, 0, "child reads zeros then writes");
	if (e)
		return e;
	for (size_t i = 0; i < len; i += 512)
		KT_CHECK(p[i] == 0, "parent sees the child's write in a region it never touched (offset %zu)", i);
	kt_fill(p, len, SEED_C);
	KT_CHECK(kt_check_fill(p, len, SEED_C) < 0, "parent's write lost");
	k_munmap(p, len);
	return 0;
}

/* The child only reads, then exits; the parent then writes every page (the "reuse" path:
 * the frame has one owner again, the kernel just makes the PTE writable). Twice. */
static int t_reuse(void)
{
	size_t len = 2 * KT_MiB;
	char *p = k_anon(len, PROT_READ | PROT_WRITE);
	KT_CHECK(p, "mmap failed");
	for (int round = 0; round < 2; round++) {
		uint32_t old = round ? SEED_B : SEED_A, new = round ? SEED_A : SEED_B;
		if (round == 0)
			kt_fill(p, len, old);
		long pid = k_fork();
		if (pid == 0)
			k_exit(kt_check_fill(p, len, old) < 0 ? 0 : 2);
		KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
		int e = kt_expect_exit(pid, 0, "child reads the shared pages");
		if (e)
			return e;
		KT_CHECK(kt_check_fill(p, len, old) < 0, "round %d: parent's data changed", round);
		kt_fill(p, len, new);
		KT_CHECK(kt_check_fill(p, len, new) < 0, "round %d: parent's write after the child exited lost",
			 round);
	}
	k_munmap(p, len);
	return 0;
}

/* Parent, child and grandchild each write their own value at once; each checks at t0 + D. */
static int t_three_generations(void)
{
	size_t len = KT_MiB;
	char *p = k_anon(len, PROT_READ | PROT_WRITE);
	KT_CHECK(p, "mmap failed");
	uint64_t d = D0_NS;
	for (int attempt = 0; attempt < ATTEMPTS; attempt++, d *= 2) {
		kt_fill(p, len, SEED_A);
		uint64_t t0 = kt_now_ns();
		long pid = k_fork();
		if (pid == 0) {
			long g = k_fork();
			if (g == 0) {
				/* the grandchild keeps A, reads it after both wrote */
				kt_sleep_until(t0 + d);
				k_exit(kt_check_fill(p, len, SEED_A) < 0 ? 0 : 2);
			}
			if (g < 0)
				k_exit(20);
			kt_fill(p, len, SEED_C);
			uint64_t tw = kt_now_ns();
			kt_sleep_until(t0 + d);
			int mine = kt_check_fill(p, len, SEED_C) < 0;
			int st = 0;
			kt_reap(g, &st);
			if (!WIFEXITED(st))
				k_exit(21);
			if (WEXITSTATUS(st) == 2)
				k_exit(22);
			if (!mine)
				k_exit(23);
			k_exit(tw <= t0 + d ? 0 : 3);
		}
		KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
		kt_fill(p, len, SEED_B);
		uint64_t tw = kt_now_ns();
		kt_sleep_until(t0 + d);
		long bad = kt_check_fill(p, len, SEED_B);
		int st = 0;
		kt_reap(pid, &st);
		KT_CHECK(bad < 0, "the parent sees another process's write at page %ld", bad);
		KT_CHECK(WIFEXITED(st), "child killed (0x%x)", st);
		int c = WEXITSTATUS(st);
		KT_CHECK(c != 20, "fork in the child failed");
		KT_CHECK(c != 21, "grandchild killed");
		KT_CHECK(c != 22, "the grandchild sees a write made after it was forked");
		KT_CHECK(c != 23, "the child sees another process's write");
		KT_CHECK(c == 0 || c == 3, "child exited %d", c);
		if (c == 0 && tw <= t0 + d) {
			k_munmap(p, len);
			return 0;
		}
	}
	return kt_fail("the writes never finished within the delay");
}

static int t_mprotect_keeps_cow(void)
{
	size_t len = KT_MiB;
	char *p = k_anon(len, PROT_READ | PROT_WRITE);
	KT_CHECK(p, "mmap failed");
	int r = parent_writes("mprotect in parent", p, len, &OP_MPROTECT);
	if (!r)
		r = child_writes("mprotect in child", p, len, &OP_MPROTECT);
	k_munmap(p, len);
	return r;
}

static int t_kernel_write_breaks_cow(void)
{
	size_t len = 64 * 4096;
	char *p = k_anon(len, PROT_READ | PROT_WRITE);
	KT_CHECK(p, "mmap failed");
	int r = parent_writes("read(2) in parent", p, len, &OP_READ);
	if (!r)
		r = child_writes("read(2) in child", p, len, &OP_READ);
	k_munmap(p, len);
	return r;
}

/* The child unmaps (or madvise(DONTNEED)s) the shared region; the parent keeps its data. */
static int t_child_unmaps(void)
{
	size_t len = 2 * KT_MiB;
	char *p = k_anon(len, PROT_READ | PROT_WRITE);
	KT_CHECK(p, "mmap failed");
	kt_fill(p, len, SEED_A);
	long pid = k_fork();
	if (pid == 0)
		k_exit(k_munmap(p, len) == 0 ? 0 : 2);
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	int e = kt_expect_exit(pid, 0, "child munmap");
	if (e)
		return e;
	KT_CHECK(kt_check_fill(p, len, SEED_A) < 0, "parent's data changed after the child's munmap");

	pid = k_fork();
	if (pid == 0) {
		if (k_madvise(p, len, MADV_DONTNEED) != 0)
			k_exit(2);
		for (size_t i = 0; i < len; i += 4096)
			if (*(volatile uint32_t *)(p + i) != 0)
				k_exit(3);
		kt_fill(p, len, SEED_B);
		k_exit(kt_check_fill(p, len, SEED_B) < 0 ? 0 : 4);
	}
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	int st = 0;
	kt_reap(pid, &st);
	KT_CHECK(!(WIFEXITED(st) && WEXITSTATUS(st) == 2), "madvise(MADV_DONTNEED) failed in the child");
	KT_CHECK(!(WIFEXITED(st) && WEXITSTATUS(st) == 3), "after MADV_DONTNEED the child does not read zeros");
	KT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
	KT_CHECK(kt_check_fill(p, len, SEED_A) < 0, "parent's data changed after the child's madvise");
	k_munmap(p, len);
	return 0;
}

static const struct ktest tests[] = {
	{ "cow::mmap_4mib_isolated_both_ways", t_mmap_4mib, 0 },
	{ "cow::malloc_4mib_isolated_both_ways", t_malloc_4mib, 0 },
	{ "cow::stack_array_isolated_both_ways", t_stack, 0 },
	{ "cow::global_bss_isolated_both_ways", t_bss, 0 },
	{ "cow::global_data_isolated_both_ways", t_data, 0 },
	{ "cow::brk_heap_isolated_both_ways", t_brk, 0 },
	{ "cow::both_write_each_sees_own", t_both_write, 0 },
	{ "cow::untouched_region_zero_and_private", t_untouched, 0 },
	{ "cow::reuse_after_child_exit", t_reuse, 0 },
	{ "cow::three_generations_isolated", t_three_generations, 0 },
	{ "cow::mprotect_rw_does_not_share_a_cow_page", t_mprotect_keeps_cow, 0 },
	{ "cow::kernel_write_by_read_breaks_cow", t_kernel_write_breaks_cow, 0 },
	{ "cow::munmap_and_madvise_in_child_leave_parent_alone", t_child_unmaps, 0 },
};

int main(int argc, char **argv, char **envp)
{
	return ktest_main("t_cow", tests, sizeof tests / sizeof tests[0], argc, argv, envp);
}
