/*
 * t_hmm_close - closing a device file while the device is busy never waits for the device
 * (Linux dmirror_fops_release does not wait for the device either; memkernel's driver hands
 * the context to its engine thread to destroy).
 *
 * "Busy": a child process X takes a page P exclusive on /dev/hmm_dmirror0 with the test
 * hook EXCLUSIVE_HOLD (the engine keeps P's frame lock for HOLD_MS ms), then asks for P on
 * /dev/hmm_dmirror1 with EXCLUSIVE: the engine sleeps on P's frame lock while it holds the
 * device, until the hold ends, and X's ioctl waits for it. X records when its second ioctl
 * began and ended (CLOCK_MONOTONIC, in a shared page): that window, at least 25% of the
 * hold long, proves the device was busy (an idle device answers in about a millisecond;
 * the margin is wide because the hold counts timer ticks while CLOCK_MONOTONIC comes from
 * the TSC, whose calibration under a loaded TCG host can be off by 2x), and every timed
 * operation of the parent must fall inside it.
 *
 *   close_while_busy   20 files opened (and used by the device) beforehand are closed, one by
 *                      one, while the device is busy: each close returns in < 50 ms; then 20
 *                      open+close pairs: each close < 50 ms, each open returns (an open may
 *                      wait for the device, killably: its time is printed)
 *   emfile_close_all   /dev/hmm_dmirror0 opened until EMFILE (the fd table holds 64), then all
 *                      closed while the device is busy (each < 50 ms); afterwards the same
 *                      number of opens succeeds again (nothing leaked)
 *   exit_while_busy    a child with both device files open (and device translations) exits,
 *                      or is killed, while the device is busy: the parent's wait4 returns
 *                      within 100 ms of the exit
 *
 * After each test the device must work again (a WRITE and READ round trip) and free memory
 * is back to its baseline (ktest.h).
 *
 * ktest: kernel=test-hooks (uses HMM_DMIRROR_EXCLUSIVE_HOLD, see hmm.h)
 */
#include "hmm.h"

#define HOLD_MS 500ULL
#define CLOSE_MAX_MS 50ULL
#define EXIT_MAX_MS 100ULL
#define MS 1000000ULL

/* ------------------------------------------------------------------------------------ */
/* The busy child                                                                        */
/* ------------------------------------------------------------------------------------ */

struct busy {
	volatile int go;            /* parent: start the hold */
	volatile int held;          /* X: the hold is on, the blocking EXCLUSIVE is next */
	volatile uint64_t t_start;  /* X: the blocking EXCLUSIVE began */
	volatile uint64_t t_end;    /* X: ... and returned */
	volatile long r_hold;       /* X: EXCLUSIVE_HOLD's result */
	volatile long r_block;      /* X: the blocking EXCLUSIVE's result */
	/* For other children of a test. */
	volatile int y_ready;
	volatile int y_go;
	/* The watchdog: what the test process is doing, and whether it is done. */
	volatile int wd_done;
	char wd_what[200];
};

static void wd_phase(struct busy *b, const char *what)
{
	snprintf(b->wd_what, sizeof b->wd_what, "%s", what);
}

/*
 * watchdog_start: a child that kills the test process (printing what it was doing) if
 * the test is not done within ms: a close that hangs is then reported as such. Forked
 * before the test opens its device files, so that it holds no reference to them (the
 * test's closes must be the last ones).
 */
static long watchdog_start(struct busy *b, uint64_t ms)
{
	long pid = k_fork();
	if (pid != 0)
		return pid;
	long parent = k_getppid();
	uint64_t t0 = kt_now_ns();
	while (!b->wd_done) {
		if (k_getppid() != parent) /* the test ended (a failed check returned early) */
			k_exit(0);
		if (kt_now_ns() - t0 > ms * 1000000ULL) {
			kout("%s ... FAILED: %s did not return within %llu ms (hung); the watchdog kills the test\n",
			     kt_name, b->wd_what, (unsigned long long)ms);
			k_kill(parent, SIGKILL);
			k_exit(0);
		}
		kt_sleep_ns(2000000);
	}
	k_exit(0);
}

static void watchdog_stop(struct busy *b, long pid)
{
	int st;
	b->wd_done = 1;
	if (pid > 0)
		kt_reap(pid, &st);
}

static struct busy *busy_map(void)
{
	void *p = mmap(NULL, HMM_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0, HMM_PAGE);
	return p;
}

static const char *busy_why(int c)
{
	switch (c) {
	case 70: return "open of the device files or mmap in the busy child failed";
	case 71: return "EXCLUSIVE_HOLD failed in the busy child (this test needs the test-hooks kernel)";
	case 72: return "the blocking EXCLUSIVE on /dev/hmm_dmirror1 failed in the busy child";
	case 73: return "the device's read-back of P is wrong in the busy child";
	case 79: return "the busy child waited 10 s for the parent's go";
	default: return NULL;
	}
}

/* busy_start: fork X; it opens both devices and maps P, then waits for b->go. */
static long busy_start(struct busy *b)
{
	long pid = k_fork();
	if (pid != 0)
		return pid;
	long fd0 = hmm_open(0), fd1 = hmm_open(1);
	uint32_t *p = hmm_map(1);
	uint32_t *mirror = hmm_map_touched(1, 0xEE);
	if (fd0 < 0 || fd1 < 0 || !p || !mirror)
		k_exit(70);
	hmm_fill(p, HMM_PAGE, 0x7000);
	uint64_t t0 = kt_now_ns();
	while (!b->go) {
		if (kt_now_ns() - t0 > 10000 * MS)
			k_exit(79);
		kt_sleep_ns(200000);
	}
	long r = hmm_exclusive_hold(fd0, p, 1, mirror, HOLD_MS);
	b->r_hold = r;
	if (r != 0)
		k_exit(71);
	b->t_start = kt_now_ns();
	b->held = 1;
	r = hmm_exclusive(fd1, p, 1, mirror, NULL);
	b->t_end = kt_now_ns();
	b->r_block = r;
	if (r != 0)
		k_exit(72);
	if (hmm_find_bad(mirror, HMM_PAGE, 0x7000) >= 0)
		k_exit(73);
	k_exit(0);
}

/* busy_go: start the hold, wait until X is about to block, then 30 ms more so that its
 * EXCLUSIVE reached the engine and the engine sleeps on P's frame lock. */
static int busy_go(struct busy *b, long pid)
{
	b->go = 1;
	uint64_t t0 = kt_now_ns();
	while (!b->held && kt_now_ns() - t0 < 10000 * MS) {
		int st;
		if (k_wait4(pid, &st, WNOHANG, NULL) == pid) {
			if (WIFEXITED(st) && busy_why(WEXITSTATUS(st)))
				return kt_fail("busy child: %s (EXCLUSIVE_HOLD returned %s)", busy_why(WEXITSTATUS(st)),
					       hmm_errname(b->r_hold));
			return kt_fail("the busy child ended before it began to wait (status 0x%x)", st);
		}
		kt_sleep_ns(200000);
	}
	KT_CHECK(b->held, "the busy child did not start its hold within 10 s");
	kt_sleep_ns(30 * MS);
	return 0;
}

/*
 * busy_finish: reap X (it returns when the hold ends) and check that the window in which
 * the device was busy, [t_start, t_end], is long enough to prove it and holds [w0, w1],
 * the parent's timed work.
 */
static int busy_finish(struct busy *b, long pid, uint64_t w0, uint64_t w1, const char *work)
{
	KT_TRY(hmm_expect_child(pid, 10000, "the busy child (EXCLUSIVE_HOLD, then EXCLUSIVE on dmirror1)", busy_why));
	uint64_t d = b->t_end - b->t_start;
	kout("# the device was busy for %llu ms (EXCLUSIVE on dmirror1 waited for a %llu ms hold); %s took "
	     "%llu.%03llu ms from %llu ms into it\n",
	     hmm_ms(d), HOLD_MS, work, hmm_ms(w1 - w0), (unsigned long long)((w1 - w0) / 1000 % 1000),
	     w0 > b->t_start ? hmm_ms(w0 - b->t_start) : 0ULL);
	KT_CHECK(d >= HOLD_MS * MS / 4,
		 "the EXCLUSIVE on dmirror1 took only %llu ms of a %llu ms hold: the device was not busy (the engine "
		 "did not wait for the held frame lock?)",
		 hmm_ms(d), HOLD_MS);
	KT_CHECK(w0 >= b->t_start && w1 <= b->t_end,
		 "%s (%llu..%llu ms) did not happen while the device was busy (0..%llu ms)", work,
		 (unsigned long long)(((int64_t)w0 - (int64_t)b->t_start) / (int64_t)MS),
		 (unsigned long long)(((int64_t)w1 - (int64_t)b->t_start) / (int64_t)MS), hmm_ms(d));
	return 0;
}

/* device_works: after the test, the device still serves requests (WRITE, READ round trip). */
static int device_works(const char *when)
{
	for (int unit = 0; unit < 2; unit++) {
		long fd = hmm_open(unit);
		KT_CHECK(fd >= 0, "%s: open /dev/hmm_dmirror%d: %s", when, unit, hmm_errname(fd));
		uint32_t *p = hmm_map(2);
		KT_CHECK(p, "mmap failed");
		uint32_t *src = p, *dst = p + HMM_WORDS_PER_PAGE;
		hmm_fill(src, HMM_PAGE, 0x1234 + (uint32_t)unit);
		uint32_t *q = hmm_map(1);
		KT_CHECK(q, "mmap failed");
		KT_TRY(hmm_expect(hmm_dev_write(fd, q, 1, src), 0, "device WRITE after the test"));
		KT_TRY(hmm_expect(hmm_dev_read(fd, q, 1, dst), 0, "device READ after the test"));
		KT_TRY(hmm_expect_words(dst, HMM_PAGE, 0x1234 + (uint32_t)unit, "device round trip after the test"));
		KT_TRY(hmm_expect_words(q, HMM_PAGE, 0x1234 + (uint32_t)unit, "the CPU's view of the device's WRITE"));
		munmap(p, 2 * HMM_PAGE);
		munmap(q, HMM_PAGE);
		k_close((int)fd);
	}
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* close while busy                                                                      */
/* ------------------------------------------------------------------------------------ */

#define NFILES 20

static int t_close_while_busy(void)
{
	struct busy *b = busy_map();
	KT_CHECK(b, "mmap(MAP_SHARED) failed");
	long wd = watchdog_start(b, 10000);
	KT_CHECK(wd > 0, "fork: %s", kt_errname(wd));
	wd_phase(b, "the setup");
	long x = busy_start(b);
	KT_CHECK(x > 0, "fork: %s", kt_errname(x));

	/* 20 files, each with device translations of a page of ours. */
	uint32_t *page = hmm_map(1);
	uint32_t *buf = hmm_map_touched(1, 0xEE);
	KT_CHECK(page && buf, "mmap failed");
	hmm_fill(page, HMM_PAGE, 0x300);
	long fds[NFILES];
	for (int i = 0; i < NFILES; i++) {
		fds[i] = hmm_open(i & 1);
		KT_CHECK(fds[i] >= 0, "open /dev/hmm_dmirror%d (file %d): %s", i & 1, i, hmm_errname(fds[i]));
		KT_TRY(hmm_expect(hmm_dev_read(fds[i], page, 1, buf), 0, "device READ through a file to be closed"));
	}
	KT_TRY(busy_go(b, x));

	wd_phase(b, "close of a device file while the device was busy");
	uint64_t w0 = kt_now_ns(), worst = 0;
	int worst_i = -1;
	for (int i = 0; i < NFILES; i++) {
		uint64_t t = kt_now_ns();
		long r = k_close((int)fds[i]);
		uint64_t d = kt_now_ns() - t;
		KT_CHECK(r == 0, "close of file %d returned %s", i, kt_errname(r));
		if (d > worst) {
			worst = d;
			worst_i = i;
		}
	}
	uint64_t w1 = kt_now_ns();
	kout("# %d closes while the device is busy: slowest %llu us (file %d)\n", NFILES,
	     (unsigned long long)(worst / 1000), worst_i);
	KT_CHECK(worst < CLOSE_MAX_MS * MS,
		 "close of a device file (file %d, /dev/hmm_dmirror%d) took %llu ms while the device was busy (limit "
		 "%llu ms; the hold is %llu ms): close waited for the device",
		 worst_i, worst_i & 1, hmm_ms(worst), CLOSE_MAX_MS, HOLD_MS);

	/* open + close pairs: a close must not wait; an open may (killably), but returns. */
	wd_phase(b, "open or close of a device file while the device was busy");
	uint64_t open_worst = 0, close_worst = 0, first_open = 0;
	for (int i = 0; i < NFILES; i++) {
		uint64_t t = kt_now_ns();
		long fd = hmm_open(i & 1);
		uint64_t t1 = kt_now_ns();
		KT_CHECK(fd >= 0, "open %d of /dev/hmm_dmirror%d while the device is busy: %s", i, i & 1, hmm_errname(fd));
		long r = k_close((int)fd);
		uint64_t t2 = kt_now_ns();
		KT_CHECK(r == 0, "close %d returned %s", i, kt_errname(r));
		if (i == 0)
			first_open = t1 - t;
		if (t1 - t > open_worst)
			open_worst = t1 - t;
		if (t2 - t1 > close_worst)
			close_worst = t2 - t1;
		KT_CHECK(t1 - t < (HOLD_MS + 2000) * MS, "open %d took %llu ms (the hold is %llu ms): it hung", i,
			 hmm_ms(t1 - t), HOLD_MS);
	}
	kout("# %d open+close pairs: first open %llu ms (%s), slowest open %llu ms, slowest close %llu us\n", NFILES,
	     hmm_ms(first_open), first_open > 100 * MS ? "it waited for the device" : "it did not wait for the device",
	     hmm_ms(open_worst), (unsigned long long)(close_worst / 1000));
	KT_CHECK(close_worst < CLOSE_MAX_MS * MS, "a close after an open took %llu ms (limit %llu ms)",
		 hmm_ms(close_worst), CLOSE_MAX_MS);
	wd_phase(b, "the busy child, then a device round trip");
	KT_TRY(busy_finish(b, x, w0, w1, "the 20 closes"));
	KT_TRY(device_works("after closing 40 files while the device was busy"));
	watchdog_stop(b, wd);
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* EMFILE                                                                                */
/* ------------------------------------------------------------------------------------ */

static int open_until_emfile(long *fds, int max, int *n)
{
	*n = 0;
	for (int i = 0; i < max; i++) {
		long fd = hmm_open(0);
		if (fd == -EMFILE)
			return 0;
		KT_CHECK(fd >= 0, "open %d of /dev/hmm_dmirror0 returned %s (expected a file or -EMFILE)", i,
			 hmm_errname(fd));
		fds[(*n)++] = fd;
	}
	return kt_fail("%d opens of /dev/hmm_dmirror0 and no -EMFILE", max);
}

static int t_emfile_close_all(void)
{
	struct busy *b = busy_map();
	KT_CHECK(b, "mmap(MAP_SHARED) failed");
	long wd = watchdog_start(b, 10000);
	KT_CHECK(wd > 0, "fork: %s", kt_errname(wd));
	wd_phase(b, "opening /dev/hmm_dmirror0 until EMFILE");
	long x = busy_start(b);
	KT_CHECK(x > 0, "fork: %s", kt_errname(x));

	static long fds[1100];
	int n = 0;
	KT_TRY(open_until_emfile(fds, 1100, &n));
	kout("# %d opens of /dev/hmm_dmirror0 before -EMFILE (fds %ld..%ld)\n", n, n ? fds[0] : -1L,
	     n ? fds[n - 1] : -1L);
	KT_CHECK(n > 0, "the first open was -EMFILE");
	if (kt_memkernel)
		KT_CHECK(fds[n - 1] == 63, "the last fd before -EMFILE is %ld, expected 63 (the table holds 64)",
			 fds[n - 1]);
	/* The device uses a few of them. */
	uint32_t *page = hmm_map(1);
	uint32_t *buf = hmm_map_touched(1, 0xEE);
	KT_CHECK(page && buf, "mmap failed");
	hmm_fill(page, HMM_PAGE, 0x400);
	for (int i = 0; i < n; i += 8)
		KT_TRY(hmm_expect(hmm_dev_read(fds[i], page, 1, buf), 0, "device READ through one of the files"));

	KT_TRY(busy_go(b, x));
	wd_phase(b, "close of a device file (of a full fd table) while the device was busy");
	uint64_t w0 = kt_now_ns(), worst = 0;
	int worst_i = -1;
	for (int i = 0; i < n; i++) {
		uint64_t t = kt_now_ns();
		long r = k_close((int)fds[i]);
		uint64_t d = kt_now_ns() - t;
		KT_CHECK(r == 0, "close of fd %ld returned %s", fds[i], kt_errname(r));
		if (d > worst) {
			worst = d;
			worst_i = i;
		}
	}
	uint64_t w1 = kt_now_ns();
	kout("# %d closes while the device is busy: slowest %llu us (fd %ld)\n", n, (unsigned long long)(worst / 1000),
	     worst_i >= 0 ? fds[worst_i] : -1L);
	KT_CHECK(worst < CLOSE_MAX_MS * MS, "close of fd %ld took %llu ms while the device was busy (limit %llu ms)",
		 fds[worst_i], hmm_ms(worst), CLOSE_MAX_MS);
	KT_TRY(busy_finish(b, x, w0, w1, "closing every file"));

	/* After the hold: the same number of opens, then close them all again. */
	wd_phase(b, "opening and closing a full fd table of device files after the hold");
	int n2 = 0;
	KT_TRY(open_until_emfile(fds, 1100, &n2));
	KT_CHECK(n2 == n, "after closing them all, %d opens succeed before -EMFILE, %d did before", n2, n);
	for (int i = 0; i < n2; i++)
		KT_CHECK(k_close((int)fds[i]) == 0, "close of fd %ld failed", fds[i]);
	KT_TRY(device_works("after closing a full fd table of device files while the device was busy"));
	watchdog_stop(b, wd);
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* exit while busy                                                                       */
/* ------------------------------------------------------------------------------------ */

static const char *y_why(int c)
{
	switch (c) {
	case 80: return "open of the device files or mmap failed in the exiting child";
	case 81: return "device WRITE failed in the exiting child";
	case 89: return "the exiting child waited 10 s for the parent";
	default: return NULL;
	}
}

static int exit_round(int killed)
{
	const char *what = killed ? "a child killed (SIGKILL) with device files open" :
				    "a child exiting with device files open";
	struct busy *b = busy_map();
	KT_CHECK(b, "mmap(MAP_SHARED) failed");
	long y = k_fork();
	if (y == 0) {
		long fd0 = hmm_open(0), fd1 = hmm_open(1);
		uint32_t *p = hmm_map(4);
		uint32_t *src = hmm_map_touched(4, 0x5A);
		if (fd0 < 0 || fd1 < 0 || !p || !src)
			k_exit(80);
		hmm_fill(p, 4 * HMM_PAGE, 0x500);
		if (hmm_dev_write(fd0, p, 2, src) != 0 || hmm_dev_write(fd1, (char *)p + 2 * HMM_PAGE, 2, src) != 0)
			k_exit(81);
		b->y_ready = 1;
		uint64_t t0 = kt_now_ns();
		for (;;) {
			if (b->y_go && !killed)
				k_exit(0); /* closes both files on the way out */
			if (kt_now_ns() - t0 > 10000 * MS)
				k_exit(89);
			kt_sleep_ns(200000);
		}
	}
	KT_CHECK(y > 0, "fork: %s", kt_errname(y));
	uint64_t t0 = kt_now_ns();
	while (!b->y_ready && kt_now_ns() - t0 < 10000 * MS)
		kt_sleep_ns(200000);
	if (!b->y_ready) {
		KT_TRY(hmm_expect_child(y, 10000, what, y_why));
		return kt_fail("%s: the child never got ready", what);
	}
	long x = busy_start(b);
	KT_CHECK(x > 0, "fork: %s", kt_errname(x));
	KT_TRY(busy_go(b, x));

	int st = 0;
	char sb[64];
	uint64_t w0 = kt_now_ns();
	if (killed)
		KT_CHECK(k_kill(y, SIGKILL) == 0, "kill(SIGKILL) failed");
	else
		b->y_go = 1;
	long r = kt_wait_timeout(y, &st, 5000);
	uint64_t w1 = kt_now_ns();
	if (r == 0) {
		k_kill(x, SIGKILL);
		kt_reap(x, &st);
		return kt_fail("%s while the device was busy: wait4 did not return within 5 s (killed)", what);
	}
	KT_CHECK(r == y, "%s: wait4 returned %s", what, kt_errname(r));
	if (killed)
		KT_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "%s: child %s, expected SIGKILL", what,
			 kt_status_str(st, sb, sizeof sb));
	else if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
		if (WIFEXITED(st) && y_why(WEXITSTATUS(st)))
			return kt_fail("%s: child: %s", what, y_why(WEXITSTATUS(st)));
		return kt_fail("%s: child %s, expected exit 0", what, kt_status_str(st, sb, sizeof sb));
	}
	kout("# %s while the device was busy: reaped %llu.%03llu ms after the %s\n", what, hmm_ms(w1 - w0),
	     (unsigned long long)((w1 - w0) / 1000 % 1000), killed ? "kill()" : "parent's go");
	KT_CHECK(w1 - w0 < EXIT_MAX_MS * MS,
		 "%s while the device was busy: wait4 returned %llu ms after the %s (limit %llu ms; the hold is %llu "
		 "ms): the exit waited for the device",
		 what, hmm_ms(w1 - w0), killed ? "kill" : "go", EXIT_MAX_MS, HOLD_MS);
	KT_TRY(busy_finish(b, x, w0, w1, killed ? "the kill and the wait4" : "the exit and the wait4"));
	munmap((void *)b, HMM_PAGE);
	return 0;
}

static int t_exit_while_busy(void)
{
	KT_TRY(exit_round(0));
	KT_TRY(exit_round(1));
	KT_TRY(device_works("after children with device files exited while the device was busy"));
	return 0;
}

static const struct ktest tests[] = {
	{ "close::close_while_device_busy_returns_at_once", t_close_while_busy, 30 },
	{ "close::emfile_then_close_all_while_device_busy", t_emfile_close_all, 30 },
	{ "close::exit_with_device_files_while_device_busy", t_exit_while_busy, 30 },
};

int main(int argc, char **argv, char **envp)
{
	return hmm_main("t_hmm_close", tests, sizeof tests / sizeof tests[0], argc, argv, envp);
}
