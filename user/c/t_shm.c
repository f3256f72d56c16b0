/*
 * t_shm - shared anonymous memory (MAP_SHARED | MAP_ANONYMOUS) as Linux backs it: one
 * shared object whose pages both sides of a fork see, whenever they are first touched.
 *
 * ktest: host (runs on Linux too, same expected output)
 *
 *   fork_of_untouched_mapping_is_cheap  a 256 MiB shared mapping nobody touched: fork
 *                                       costs no memory for it (memkernel: free memory
 *                                       drops by less than 1 MiB) and both sides then
 *                                       see each other's writes to pages first touched
 *                                       after the fork
 *   dontneed_keeps_shared_contents      MADV_DONTNEED on a shared page drops only the
 *                                       mapping: the contents stay, still shared with
 *                                       the fork partner
 *   munmap_in_one_keeps_the_other       the parent unmaps its view; the child still
 *                                       reads and writes the pages
 */
#include "ktest.h"
#include <sys/mman.h>
#include <sys/wait.h>
#include <sched.h>
#include <unistd.h>

#define BIG (256UL * KT_MiB)

static int t_fork_cheap(void)
{
	volatile uint32_t *p = mmap(NULL, BIG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	KT_CHECK(p != MAP_FAILED, "mmap(256 MiB, MAP_SHARED|MAP_ANONYMOUS): %s", strerror(errno));
	unsigned long before = kt_freeram();
	uint64_t t0 = kt_now_ns();
	long pid = fork();
	if (pid == 0) {
		/* Pages first touched after the fork, by the child: the parent must see them. */
		for (unsigned long off = 0; off < BIG; off += 16 * KT_MiB)
			p[off / 4] = (uint32_t)(off / KT_MiB) + 1;
		_exit(0);
	}
	KT_CHECK(pid > 0, "fork: %s", strerror(errno));
	uint64_t fork_ms = (kt_now_ns() - t0) / 1000000;
	unsigned long after = kt_freeram();
	int st = 0;
	waitpid(pid, &st, 0);
	KT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child failed");
	long drop_kib = ((long)before - (long)after) / 1024;
	kout("# fork with an untouched 256 MiB shared mapping: %llu ms, free memory down %ld KiB\n",
	     (unsigned long long)fork_ms, drop_kib);
	if (kt_memkernel)
		KT_CHECK(drop_kib < 1024, "fork took %ld KiB for a shared mapping nobody touched", drop_kib);
	for (unsigned long off = 0; off < BIG; off += 16 * KT_MiB)
		KT_CHECK(p[off / 4] == (uint32_t)(off / KT_MiB) + 1,
			 "the parent does not see the child's write at offset %lu MiB", off / KT_MiB);
	/* And the other way: the parent's first touch, the child reads it. */
	p[BIG / 4 - 1] = 0xfeedf00d;
	pid = fork();
	if (pid == 0)
		_exit(p[BIG / 4 - 1] == 0xfeedf00d ? 0 : 1);
	waitpid(pid, &st, 0);
	KT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child does not see the parent's write");
	KT_CHECK(munmap((void *)p, BIG) == 0, "munmap: %s", strerror(errno));
	return 0;
}

static int t_dontneed_keeps(void)
{
	volatile uint32_t *p = mmap(NULL, 4 * KT_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	KT_CHECK(p != MAP_FAILED, "mmap: %s", strerror(errno));
	p[0] = 0x1234;
	long pid = fork();
	if (pid == 0) {
		/* Wait for the parent's DONTNEED, then check and write. */
		while (p[1] != 1)
			sched_yield();
		int ok = p[0] == 0x1234;
		p[0] = 0x5678;
		p[1] = 2;
		_exit(ok ? 0 : 1);
	}
	KT_CHECK(madvise((void *)p, KT_PAGE, MADV_DONTNEED) == 0, "madvise(DONTNEED): %s", strerror(errno));
	uint32_t after_dontneed = p[0];
	p[1] = 1;
	while (p[1] != 2)
		sched_yield();
	int st = 0;
	waitpid(pid, &st, 0);
	kout("# after MADV_DONTNEED the shared page reads %#x; the child then wrote %#x, the parent reads %#x\n",
	     after_dontneed, 0x5678, p[0]);
	KT_CHECK(after_dontneed == 0x1234, "MADV_DONTNEED lost a shared page's contents (%#x)", after_dontneed);
	KT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child did not see the contents after DONTNEED");
	KT_CHECK(p[0] == 0x5678, "the parent does not see the child's write after DONTNEED");
	munmap((void *)p, 4 * KT_PAGE);
	return 0;
}

static int t_munmap_one_side(void)
{
	volatile uint32_t *p = mmap(NULL, 8 * KT_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	KT_CHECK(p != MAP_FAILED, "mmap: %s", strerror(errno));
	for (int i = 0; i < 8; i++)
		p[i * 1024] = (uint32_t)i + 100;
	long pid = fork();
	if (pid == 0) {
		struct timespec ts = { 0, 50000000 };
		nanosleep(&ts, NULL); /* the parent unmaps meanwhile */
		int ok = 1;
		for (int i = 0; i < 8; i++) {
			ok &= p[i * 1024] == (uint32_t)i + 100;
			p[i * 1024] = 0;
		}
		_exit(ok ? 0 : 1);
	}
	KT_CHECK(munmap((void *)p, 8 * KT_PAGE) == 0, "munmap: %s", strerror(errno));
	int st = 0;
	waitpid(pid, &st, 0);
	KT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child lost the pages when the parent unmapped its view");
	return 0;
}

static const struct ktest tests[] = {
	{ "shm::fork_of_untouched_mapping_is_cheap", t_fork_cheap, 0 },
	{ "shm::dontneed_keeps_shared_contents", t_dontneed_keeps, 0 },
	{ "shm::munmap_in_one_keeps_the_other", t_munmap_one_side, 0 },
};

int main(int argc, char **argv, char **envp)
{
	return ktest_main("t_shm", tests, sizeof tests / sizeof tests[0], argc, argv, envp);
}
