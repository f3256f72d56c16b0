/*
 * t_hmm_fork - device-exclusive pages across fork, unmap and exit (scenario ids: docs
 * chapter 9, docs/09-device-exclusive-spec.md):
 *
 *   S-EX3 exclusive_cow     1024 exclusive pages, fork: in both processes every word reads i and
 *                           increments to i + 1 independently; the child exits 0; free memory is
 *                           back (within page tables) once the child is reaped and the range unmapped
 *   S-F1  fork revokes      after fork the parent's device holds nothing (CHECK_EXCLUSIVE 0); the
 *                           parent's and the child's pages are present read-only (SNAPSHOT READ, no
 *                           exclusive entry in the child); the child's writes stay in the child
 *         exclusive in a child on COW-shared pages breaks COW first: the child's device writes
 *                           (ATOMIC_ADD) never reach the parent
 *   S-F2  fork waits        fork while the driver still holds a converted frame's lock (test hook:
 *                           EXCLUSIVE with cmd.faults = N ms): fork succeeds, returns no earlier
 *                           than the end of the hold (80%: the hold counts timer ticks, we read
 *                           the TSC; up to 3 attempts), and both sides see the right data
 *   S-Z1  munmap/DONTNEED   of an exclusive range: the device is notified (CHECK_EXCLUSIVE 0),
 *                           SNAPSHOT shows nothing mapped there, the frames are freed
 *   S-Z2  exit              a child exits (or is killed, or exits while the driver holds a frame)
 *                           with exclusive pages and no cleanup: free memory exactly back
 *
 * ktest: kernel=test-hooks (uses HMM_DMIRROR_EXCLUSIVE_HOLD, see hmm.h)
 */
#include "hmm.h"

#define NPAGES 1024UL
#define SIZE (NPAGES * HMM_PAGE)

static const char *cow_child_why(int c)
{
	switch (c) {
	case 2: return "a word did not read i after fork";
	case 3: return "a word did not read i + 1 after its own increment";
	default: return NULL;
	}
}

/* S-EX3: hmm-tests `exclusive_cow`, with the fork checked in both processes. */
static int t_exclusive_cow(void)
{
	long fd = hmm_open(0);
	KT_CHECK(fd >= 0, "open /dev/hmm_dmirror0: %s", hmm_errname(fd));
	uint32_t *mirror = hmm_map_touched(NPAGES, 0xEE);
	KT_CHECK(mirror, "mmap failed");
	unsigned long before = kt_freeram();
	uint32_t *p = hmm_map(NPAGES);
	KT_CHECK(p, "mmap failed");
	hmm_fill(p, SIZE, 0);
	uint64_t cpages = 0;
	KT_TRY(hmm_expect(hmm_exclusive(fd, p, NPAGES, mirror, &cpages), 0, "EXCLUSIVE over 1024 pages"));
	KT_CHECK(cpages == NPAGES, "EXCLUSIVE: cpages %lu", (unsigned long)cpages);
	KT_TRY(hmm_expect_words(mirror, SIZE, 0, "the device's read-back"));

	long pid = k_fork();
	if (pid == 0) {
		if (hmm_check_and_inc(p, SIZE, 0) >= 0)
			k_exit(2);
		k_exit(hmm_find_bad(p, SIZE, 1) < 0 ? 0 : 3);
	}
	KT_CHECK(pid > 0, "fork with 1024 exclusive pages returned %s", kt_errname(pid));
	long bad = hmm_check_and_inc(p, SIZE, 0);
	long bad2 = bad < 0 ? hmm_find_bad(p, SIZE, 1) : -1;
	KT_TRY(hmm_expect_child(pid, 20000, "child of the exclusive_cow fork", cow_child_why));
	KT_CHECK(bad < 0, "parent after fork: word %ld (page %ld) is %#x, expected %#lx", bad,
		 bad / (long)HMM_WORDS_PER_PAGE, p[bad], (unsigned long)bad);
	KT_CHECK(bad2 < 0, "parent: word %ld is %#x after its own increment, expected %#lx", bad2, p[bad2],
		 (unsigned long)bad2 + 1);
	/* The child's increments are not the parent's: still exactly i + 1. */
	KT_TRY(hmm_expect_words(p, SIZE, 1, "parent after the child exited"));
	KT_TRY(hmm_expect(hmm_check_exclusive(fd, p, NPAGES), 0, "CHECK_EXCLUSIVE in the parent after fork"));
	KT_TRY(hmm_expect(k_munmap(p, SIZE), 0, "munmap"));
	unsigned long after = kt_freeram();
	KT_TRY(hmm_expect_freed(before, after, 0, 8, "after the child was reaped and the 1024 pages unmapped"));
	k_close((int)fd);
	return 0;
}

static const char *f1_child_why(int c)
{
	switch (c) {
	case 20: return "open /dev/hmm_dmirror0 in the child failed";
	case 21: return "SNAPSHOT in the child failed";
	case 22: return "a page of the child is not present read-only (SNAPSHOT READ) right after fork";
	case 23: return "the child does not read the data of the fork";
	case 24: return "the child's own write is not visible to it";
	case 25: return "SNAPSHOT after the child's write is not WRITE";
	default: return NULL;
	}
}

/* S-F1: fork while exclusive (no lock held): the device is revoked, both sides get COW pages. */
static int t_fork_revokes_device(void)
{
	long fd = hmm_open(0);
	KT_CHECK(fd >= 0, "open /dev/hmm_dmirror0: %s", hmm_errname(fd));
	size_t n = 16, len = n * HMM_PAGE;
	uint32_t *p = hmm_map(n);
	uint32_t *mirror = hmm_map_touched(n, 0xEE);
	KT_CHECK(p && mirror, "mmap failed");
	hmm_fill(p, len, 0x100);
	KT_TRY(hmm_expect(hmm_exclusive(fd, p, n, mirror, NULL), 0, "EXCLUSIVE"));
	KT_TRY(hmm_expect(hmm_check_exclusive(fd, p, n), -EPERM, "CHECK_EXCLUSIVE before fork"));

	long pid = k_fork();
	if (pid == 0) {
		static uint8_t snap[16];
		long cfd = hmm_open(0); /* the child's own mirror of its own address space */
		if (cfd < 0)
			k_exit(20);
		if (hmm_snapshot(cfd, p, n, snap) != 0)
			k_exit(21);
		for (size_t i = 0; i < n; i++)
			if (snap[i] != HMM_PROT_READ) {
				kout("# child: SNAPSHOT page %zu is %s right after fork\n", i, hmm_prot_name(snap[i]));
				k_exit(22);
			}
		if (hmm_find_bad(p, len, 0x100) >= 0)
			k_exit(23);
		hmm_fill(p, len, 0xC000);
		if (hmm_find_bad(p, len, 0xC000) >= 0)
			k_exit(24);
		if (hmm_snapshot(cfd, p, n, snap) != 0)
			k_exit(21);
		for (size_t i = 0; i < n; i++)
			if (snap[i] != HMM_PROT_WRITE)
				k_exit(25);
		k_exit(0);
	}
	KT_CHECK(pid > 0, "fork with exclusive pages returned %s", kt_errname(pid));
	long chk = hmm_check_exclusive(fd, p, n);
	uint8_t snap[16];
	memset(snap, 0xA5, sizeof snap);
	long rs = hmm_snapshot(fd, p, n, snap);
	KT_TRY(hmm_expect_child(pid, 20000, "fork while exclusive", f1_child_why));
	KT_TRY(hmm_expect(chk, 0, "CHECK_EXCLUSIVE in the parent right after fork (fork must revoke the device)"));
	KT_TRY(hmm_expect(rs, 0, "SNAPSHOT in the parent right after fork"));
	for (size_t i = 0; i < n; i++)
		KT_CHECK(snap[i] == HMM_PROT_READ, "parent right after fork: SNAPSHOT page %zu is %s, expected READ "
			 "(present, write-protected for COW)", i, hmm_prot_name(snap[i]));
	KT_TRY(hmm_expect_words(p, len, 0x100, "parent after the child wrote its copy and exited"));
	hmm_fill(p, len, 0xD000);
	KT_TRY(hmm_expect_words(p, len, 0xD000, "parent's own write"));
	KT_TRY(hmm_expect_snapshot(fd, p, n, HMM_PROT_WRITE, "parent after its write"));
	/* The device can take the pages again. */
	uint64_t cpages = 0;
	KT_TRY(hmm_expect(hmm_exclusive(fd, p, n, mirror, &cpages), 0, "EXCLUSIVE again after fork"));
	KT_CHECK(cpages == n, "cpages %lu", (unsigned long)cpages);
	KT_TRY(hmm_expect_words(mirror, len, 0xD000, "the device's read-back after fork"));
	k_close((int)fd);
	return 0;
}

static const char *cowex_child_why(int c)
{
	switch (c) {
	case 30: return "open /dev/hmm_dmirror1 in the child failed";
	case 31: return "EXCLUSIVE on the COW-shared pages failed in the child";
	case 32: return "the child's device read-back differs from the data";
	case 33: return "ATOMIC_ADD in the child failed";
	case 34: return "the child does not see its device's ATOMIC_ADD";
	default: return NULL;
	}
}

/*
 * make_device_exclusive on a page shared copy-on-write with the parent must break COW
 * first: the device of the child then writes the child's copy only.
 */
static int t_exclusive_in_child_breaks_cow(void)
{
	size_t n = 8, len = n * HMM_PAGE;
	uint32_t *p = hmm_map(n);
	uint32_t *mirror = hmm_map_touched(n, 0xEE);
	KT_CHECK(p && mirror, "mmap failed");
	hmm_fill(p, len, 0x5000);
	long pid = k_fork();
	if (pid == 0) {
		long cfd = hmm_open(1);
		if (cfd < 0)
			k_exit(30);
		if (hmm_exclusive(cfd, p, n, mirror, NULL) != 0)
			k_exit(31);
		if (hmm_find_bad(mirror, len, 0x5000) >= 0)
			k_exit(32);
		if (hmm_atomic_add(cfd, p, n, 0x10000, NULL) != 0)
			k_exit(33);
		k_exit(hmm_find_bad(p, len, 0x15000) < 0 ? 0 : 34);
	}
	KT_CHECK(pid > 0, "fork: %s", kt_errname(pid));
	KT_TRY(hmm_expect_child(pid, 20000, "child taking its COW pages exclusive", cowex_child_why));
	KT_TRY(hmm_expect_words(p, len, 0x5000, "parent after its child's device added to the child's copy"));
	return 0;
}

/* S-F2 ---------------------------------------------------------------------------------- */

#define F2_HOLD_MS 200ULL

static const char *f2_child_why(int c)
{
	switch (c) {
	case 40: return "the child does not read the data of the fork";
	case 41: return "the child's own increment is not visible to it";
	default: return NULL;
	}
}

/*
 * f2_attempt: fork while the driver still holds the frame lock of a page it just made
 * exclusive (the hold hook keeps it `hold` ms): fork must wait for the lock, restore the
 * page and succeed, and both sides must see the right data. Returns 0 when everything was
 * right and the timing proves the wait, 2 when the data was right but the timing did not
 * prove it (*t_ioctl, *t_fork: how long the ioctl and the fork took, from the ioctl's
 * start), or a printed failure (1).
 */
static int f2_attempt(long fd, uint64_t hold, uint64_t *t_ioctl, uint64_t *t_fork)
{
	size_t n = 8, len = n * HMM_PAGE;
	uint32_t *p = hmm_map(n);
	uint32_t *mirror = hmm_map_touched(n, 0xEE);
	KT_CHECK(p && mirror, "mmap failed");
	hmm_fill(p, len, 0x700);
	/* Pages 1..7 exclusive the ordinary way, then page 0 with the hold hook. */
	KT_TRY(hmm_expect(hmm_exclusive(fd, (char *)p + HMM_PAGE, n - 1, mirror, NULL), 0, "EXCLUSIVE of pages 1..7"));
	uint64_t t0 = kt_now_ns();
	long r = hmm_exclusive_hold(fd, p, 1, mirror, hold);
	uint64_t t1 = kt_now_ns();
	long pid = k_fork();
	if (pid == 0) {
		if (hmm_check_and_inc(p, len, 0x700) >= 0)
			k_exit(40);
		k_exit(hmm_find_bad(p, len, 0x701) < 0 ? 0 : 41);
	}
	uint64_t t2 = kt_now_ns();
	KT_CHECK(pid > 0, "fork while the driver holds a frame lock returned %s (fork must wait, never fail)",
		 kt_errname(pid));
	long bad = hmm_check_and_inc(p, len, 0x700);
	long chk = hmm_check_exclusive(fd, p, n);
	KT_TRY(hmm_expect_child(pid, 20000, "fork while the driver holds a frame lock", f2_child_why));
	KT_TRY(hmm_expect(r, 0, "EXCLUSIVE with the hold hook (cmd.faults = N ms)"));
	KT_CHECK(bad < 0, "parent after fork: word %ld (page %ld) is %#x", bad, bad / (long)HMM_WORDS_PER_PAGE,
		 p[bad]);
	KT_TRY(hmm_expect_words(p, len, 0x701, "parent after its own increment (the child's must not show)"));
	KT_TRY(hmm_expect(chk, 0, "CHECK_EXCLUSIVE in the parent after fork"));
	KT_TRY(hmm_expect(k_munmap(p, len), 0, "munmap"));
	KT_TRY(hmm_expect(k_munmap(mirror, len), 0, "munmap"));
	*t_ioctl = t1 - t0;
	*t_fork = t2 - t0;
	kout("# S-F2: EXCLUSIVE with a %llu ms hold returned after %llu ms; fork returned %llu ms after it (%llu ms "
	     "after the EXCLUSIVE began)\n",
	     (unsigned long long)hold, hmm_ms(t1 - t0), hmm_ms(t2 - t1), hmm_ms(t2 - t0));
	/* The hold began after t0, so a fork that waits cannot return before t0 + hold. The
	 * hold is counted in timer ticks and we measure with the TSC: allow 20%. */
	if (t1 - t0 < hold * 1000000ULL / 2 && t2 - t0 >= hold * 1000000ULL * 8 / 10)
		return 0;
	return 2;
}

/*
 * S-F2. A glitch (the ioctl itself slow, or timer ticks catching up so that the hold is
 * shorter than measured) makes an attempt inconclusive: up to 3 attempts, hold doubled.
 * A fork that does not wait returns within a few ms every time and fails all three.
 */
static int t_fork_waits_for_frame_lock(void)
{
	long fd = hmm_open(0);
	KT_CHECK(fd >= 0, "open /dev/hmm_dmirror0: %s", hmm_errname(fd));
	uint64_t hold = F2_HOLD_MS, ti = 0, tf = 0;
	for (int attempt = 0; attempt < 3; attempt++, hold *= 2) {
		int r = f2_attempt(fd, hold, &ti, &tf);
		if (r != 2) {
			k_close((int)fd);
			return r;
		}
	}
	hold /= 2;
	KT_CHECK(ti < hold * 1000000ULL / 2,
		 "the EXCLUSIVE with the hold hook took %llu ms of a %llu ms hold (3 attempts): it must return at once "
		 "while the driver holds the frame lock in its own thread (hook: cmd.faults = N ms)",
		 hmm_ms(ti), (unsigned long long)hold);
	return kt_fail("fork returned %llu ms after an EXCLUSIVE that holds the frame lock for %llu ms (3 attempts): it "
		       "did not wait for the driver (or the hold hook cmd.faults = N is missing)",
		       hmm_ms(tf), (unsigned long long)hold);
}

/* S-Z1 ---------------------------------------------------------------------------------- */

/*
 * munmap and madvise(MADV_DONTNEED) of exclusive pages: the device is notified, SNAPSHOT
 * shows nothing there, the frames are freed. 64 pages: 0..15 DONTNEED, 16..31 munmap,
 * 32..63 stay exclusive until the end.
 */
static int t_unmap_and_dontneed(void)
{
	long fd = hmm_open(0);
	KT_CHECK(fd >= 0, "open /dev/hmm_dmirror0: %s", hmm_errname(fd));
	size_t n = 64, len = n * HMM_PAGE;
	uint8_t *mirror = hmm_map_touched(n, 0xEE);
	KT_CHECK(mirror, "mmap failed");
	unsigned long base = kt_freeram();
	uint8_t *p = hmm_map(n);
	KT_CHECK(p, "mmap failed");
	hmm_fill(p, len, 0x900);
	uint8_t *a = p, *b = p + 16 * HMM_PAGE, *c = p + 32 * HMM_PAGE;
	KT_TRY(hmm_expect(hmm_exclusive(fd, p, n, mirror, NULL), 0, "EXCLUSIVE of 64 pages"));
	KT_TRY(hmm_expect_snapshot(fd, p, n, HMM_PROT_ATOMIC, "after EXCLUSIVE"));
	unsigned long before = kt_freeram();

	/* DONTNEED pages 0..15. */
	KT_TRY(hmm_expect(k_madvise(a, 16 * HMM_PAGE, MADV_DONTNEED), 0, "madvise(DONTNEED) of 16 exclusive pages"));
	KT_TRY(hmm_expect(hmm_check_exclusive(fd, a, 16), 0, "CHECK_EXCLUSIVE after madvise(DONTNEED)"));
	KT_TRY(hmm_expect_snapshot(fd, a, 16, HMM_PROT_NONE, "pages 0..15 after madvise(DONTNEED)"));
	KT_TRY(hmm_expect_snapshot(fd, b, 48, HMM_PROT_ATOMIC, "pages 16..63 after madvise(DONTNEED) of 0..15"));
	KT_TRY(hmm_expect(hmm_check_exclusive(fd, c, 32), -EPERM, "CHECK_EXCLUSIVE of pages 32..63 (still held)"));
	unsigned long after_dn = kt_freeram();
	KT_TRY(hmm_expect_freed(before, after_dn, 16, 1, "madvise(DONTNEED) of 16 exclusive pages"));

	/* munmap pages 16..31 (a hole in the middle of the exclusive range). */
	KT_TRY(hmm_expect(k_munmap(b, 16 * HMM_PAGE), 0, "munmap of 16 exclusive pages"));
	KT_TRY(hmm_expect(hmm_check_exclusive(fd, b, 16), 0, "CHECK_EXCLUSIVE after munmap"));
	static uint8_t snap[16];
	memset(snap, 0xA5, sizeof snap);
	long r = hmm_snapshot(fd, b, 16, snap);
	KT_CHECK(r == 0 || r == -EFAULT, "SNAPSHOT of an unmapped range returned %s", hmm_errname(r));
	if (r == 0)
		for (int i = 0; i < 16; i++)
			KT_CHECK(snap[i] == HMM_PROT_NONE || snap[i] == HMM_PROT_ERROR,
				 "SNAPSHOT page %d of the unmapped hole is %s, expected NONE (or ERROR: no VMA)", i,
				 hmm_prot_name(snap[i]));
	kout("# SNAPSHOT of an unmapped range: %s%s\n", r == 0 ? "" : hmm_errname(r),
	     r == 0 ? hmm_prot_name(snap[0]) : "");
	KT_TRY(hmm_expect_snapshot(fd, c, 32, HMM_PROT_ATOMIC, "pages 32..63 after munmap of 16..31"));
	unsigned long after_un = kt_freeram();
	KT_TRY(hmm_expect_freed(after_dn, after_un, 16, 2, "munmap of 16 exclusive pages"));

	/* The DONTNEED pages read zeros again; the rest still holds the data. */
	for (size_t i = 0; i < 16 * HMM_PAGE; i += 8)
		KT_CHECK(*(volatile uint64_t *)(a + i) == 0, "page %zu reads non-zero after madvise(DONTNEED)",
			 i / HMM_PAGE);
	KT_TRY(hmm_expect_words(c, 32 * HMM_PAGE, 0x900 + 32 * HMM_WORDS_PER_PAGE, "pages 32..63 after the zaps"));
	KT_TRY(hmm_expect(hmm_check_exclusive(fd, c, 32), 0, "CHECK_EXCLUSIVE after the CPU read pages 32..63"));

	/* All of it exclusive again, then munmap the lot. */
	KT_TRY(hmm_expect(hmm_exclusive(fd, c, 32, mirror, NULL), 0, "EXCLUSIVE of pages 32..63 again"));
	KT_TRY(hmm_expect(hmm_exclusive(fd, a, 16, mirror, NULL), 0, "EXCLUSIVE of pages 0..15 again"));
	KT_TRY(hmm_expect(k_munmap(a, 16 * HMM_PAGE), 0, "munmap of pages 0..15"));
	KT_TRY(hmm_expect(k_munmap(c, 32 * HMM_PAGE), 0, "munmap of pages 32..63"));
	KT_TRY(hmm_expect(hmm_check_exclusive(fd, p, n), 0, "CHECK_EXCLUSIVE after munmap of everything"));
	unsigned long end = kt_freeram();
	KT_TRY(hmm_expect_freed(base, end, 0, 4, "after everything was unmapped"));
	k_close((int)fd);
	return 0;
}

/* S-Z2 ---------------------------------------------------------------------------------- */

enum z2_mode { Z2_EXIT, Z2_KILLED, Z2_EXIT_WHILE_HELD };

#define Z2_PAGES 256UL
#define Z2_HOLD_MS 100ULL

/* The child: 256 exclusive pages, then it leaves without munmap or close. */
static __attribute__((noreturn)) void z2_child(enum z2_mode mode)
{
	long fd = hmm_open(0);
	long fd1 = hmm_open(1);
	uint32_t *p = hmm_map(Z2_PAGES);
	uint32_t *mirror = hmm_map_touched(Z2_PAGES, 0xEE);
	if (fd < 0 || fd1 < 0 || !p || !mirror)
		k_exit(50);
	hmm_fill(p, Z2_PAGES * HMM_PAGE, 0xA00);
	uint64_t cpages = 0;
	long first = mode == Z2_EXIT_WHILE_HELD ? 1 : 0;
	if (hmm_exclusive(fd, (char *)p + first * HMM_PAGE, Z2_PAGES - first, mirror, &cpages) != 0)
		k_exit(51);
	if (cpages != Z2_PAGES - first)
		k_exit(52);
	/* Half of them also atomic-added by the second device (it takes them over). */
	struct hmm_dmirror_cmd c;
	long r = hmm_atomic_add(fd1, (char *)p + 128 * HMM_PAGE, 128, 1, &c);
	if (r != 0) {
		kout("# z2 child: ATOMIC_ADD by dmirror1 of 128 pages held by dmirror0 returned %s\n", hmm_errname(r));
		k_exit(53);
	}
	if (hmm_check_exclusive(fd, p + first * HMM_WORDS_PER_PAGE, 128 - first) != -EPERM)
		k_exit(54);
	if (mode == Z2_EXIT_WHILE_HELD && hmm_exclusive_hold(fd, p, 1, mirror, Z2_HOLD_MS) != 0)
		k_exit(55);
	if (mode == Z2_KILLED)
		k_kill(k_getpid(), SIGKILL);
	k_exit(0);
}

static const char *z2_child_why(int c)
{
	switch (c) {
	case 50: return "open /dev/hmm_dmirror0 and 1 or mmap failed";
	case 51: return "EXCLUSIVE of 256 pages failed";
	case 52: return "EXCLUSIVE of 256 pages: wrong cpages";
	case 53: return "ATOMIC_ADD from /dev/hmm_dmirror1 failed";
	case 54: return "CHECK_EXCLUSIVE on dev0 is not -EPERM for pages dev1 never touched";
	case 55: return "EXCLUSIVE with the hold hook failed";
	default: return NULL;
	}
}

static int z2_run(enum z2_mode mode, const char *what)
{
	unsigned long before = kt_freeram();
	long pid = k_fork();
	if (pid == 0)
		z2_child(mode);
	KT_CHECK(pid > 0, "%s: fork: %s", what, kt_errname(pid));
	int st = 0;
	char sb[64];
	long r = kt_wait_timeout(pid, &st, 20000);
	KT_CHECK(r == pid, "%s: wait4 returned %s (0 = timed out)", what, kt_errname(r));
	if (WIFEXITED(st) && z2_child_why(WEXITSTATUS(st)))
		return kt_fail("%s: child: %s", what, z2_child_why(WEXITSTATUS(st)));
	if (mode == Z2_KILLED)
		KT_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "%s: child %s, expected SIGKILL", what,
			 kt_status_str(st, sb, sizeof sb));
	else
		KT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: child %s", what, kt_status_str(st, sb, sizeof sb));
	if (mode == Z2_EXIT_WHILE_HELD) {
		/* The hold began before the child exited; the driver drops its frame (lock and
		 * reference) when it ends. */
		kt_sleep_ns((Z2_HOLD_MS + 100) * 1000000ULL);
	}
	unsigned long after = kt_freeram();
	if (kt_memkernel && after != before) {
		long d = ((long)after - (long)before) / (long)HMM_PAGE;
		return kt_fail("%s: free memory %+ld pages (%lu -> %lu KiB) after the child was reaped", what, d,
			       before / 1024, after / 1024);
	}
	return 0;
}

static int t_exit_with_exclusive_pages(void)
{
	KT_TRY(z2_run(Z2_EXIT, "exit_group with 256 exclusive pages"));
	KT_TRY(z2_run(Z2_KILLED, "SIGKILL with 256 exclusive pages"));
	KT_TRY(z2_run(Z2_EXIT_WHILE_HELD, "exit while the driver holds a frame lock (hold hook)"));
	/* Twice more, so a leak of a few frames per exit adds up. */
	KT_TRY(z2_run(Z2_EXIT, "exit_group with 256 exclusive pages (again)"));
	KT_TRY(z2_run(Z2_KILLED, "SIGKILL with 256 exclusive pages (again)"));
	return 0;
}

static const struct ktest tests[] = {
	{ "hmm::exclusive_cow_fork_both_increment", t_exclusive_cow, 40 },
	{ "hmm::fork_while_exclusive_revokes_device_cow_pages", t_fork_revokes_device, 20 },
	{ "hmm::exclusive_in_child_breaks_cow_first", t_exclusive_in_child_breaks_cow, 20 },
	{ "hmm::fork_waits_for_driver_frame_lock", t_fork_waits_for_frame_lock, 20 },
	{ "hmm::munmap_and_dontneed_of_exclusive_range", t_unmap_and_dontneed, 20 },
	{ "hmm::exit_with_exclusive_pages_frees_all", t_exit_with_exclusive_pages, 40 },
};

int main(int argc, char **argv, char **envp)
{
	return hmm_main("t_hmm_fork", tests, sizeof tests / sizeof tests[0], argc, argv, envp);
}
