/*
 * t_kill_wait - every wait a user can cause is killable: a process blocked in one is reaped
 * within 100 ms of kill(SIGKILL) (measured from kill() to wait4's return; each figure is
 * printed as a "# " line). One test per kind of wait; in each, the child says (in a shared
 * page) when it is about to block and when the blocking call returned, so that the test can
 * tell that the child really was blocked when it was killed (50 ms later).
 *
 *   frame_lock    a CPU write to a page whose frame lock the driver holds (EXCLUSIVE_HOLD,
 *                 3 s): the page fault waits for the frame lock
 *   fork          fork() of a process whose exclusive page's frame is locked: fork waits to
 *                 restore the entry
 *   device        an ioctl waiting for the device's engine: the same process asks dmirror1
 *                 for the page it holds on dmirror0 (the engine sleeps on the frame lock, the
 *                 ioctl waits for its completion); then a second process's ioctl waits for
 *                 the busy device; both are killed, the waiting one first
 *   wait4         a child blocked in wait4 for a grandchild that sleeps 10 s; then the
 *                 grandchild (reparented to init: on memkernel, this program) is killed in its
 *                 nanosleep, and must be gone within 100 ms as well; the same with the child
 *                 in nanosleep instead of wait4 as the control: on memkernel both must leave
 *                 exactly as many pages in use (the orphan's zombie) until init reaps it
 *   console_read  read(0) on the console with no input (on Linux, stdin may be /dev/null or a
 *                 pipe, where read returns at once: the test then has nothing to kill and
 *                 says so)
 *
 * After a kill, the test sleeps until the driver's hold has expired, so that the held frame
 * comes back, then checks that the device still works. Free memory must be back to its
 * baseline after each test (ktest.h). The device tests need /dev/hmm_dmirror0 and the test
 * hook: on any kernel but memkernel without the device they say "skipped" and pass.
 *
 * ktest: kernel=test-hooks (uses HMM_DMIRROR_EXCLUSIVE_HOLD, see hmm.h)
 */
#include "hmm.h"
#include <stdlib.h>

#define MS 1000000ULL
#define HOLD_MS 3000ULL
#define KILL_MAX_MS 100ULL
#define BLOCK_WAIT_MS 50ULL

struct ksync {
	volatile int ready;        /* child: about to block */
	volatile int after;        /* child: the blocking call returned */
	volatile long r;           /* child: a result worth reporting */
	volatile uint64_t t_hold;  /* child: when EXCLUSIVE_HOLD returned */
	volatile long gpid;        /* child: its grandchild */
	volatile int y_ready;      /* second child: about to block */
	volatile int y_after;
	volatile int y_go;
};

static struct ksync *sync_map(void)
{
	void *p = mmap(NULL, HMM_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	memset(p, 0, HMM_PAGE);
	return p;
}

static const char *child_why(int c)
{
	switch (c) {
	case 70: return "open of the device files or mmap in the child failed";
	case 71: return "EXCLUSIVE_HOLD failed in the child (this test needs the test-hooks kernel)";
	case 72: return "the blocking call returned an error in the child";
	case 73: return "fork failed in the child";
	case 79: return "the child waited 10 s for the parent";
	default: return NULL;
	}
}

/*
 * wait_ready: wait (at most 10 s) until *flag is set by child pid; a child that ends
 * first is a failure, explained by child_why.
 */
static int wait_ready(volatile int *flag, long pid, const char *what, struct ksync *s)
{
	uint64_t t0 = kt_now_ns();
	while (!*flag) {
		int st = 0;
		char sb[64];
		if (k_wait4(pid, &st, WNOHANG, NULL) == pid) {
			if (WIFEXITED(st) && child_why(WEXITSTATUS(st)))
				return kt_fail("%s: child: %s (result %s)", what, child_why(WEXITSTATUS(st)),
					       hmm_errname(s->r));
			return kt_fail("%s: the child %s before it blocked", what, kt_status_str(st, sb, sizeof sb));
		}
		if (kt_now_ns() - t0 > 10000 * MS) {
			k_kill(pid, SIGKILL);
			kt_reap(pid, &st);
			return kt_fail("%s: the child did not get ready within 10 s", what);
		}
		kt_sleep_ns(200000);
	}
	return 0;
}

/*
 * kill_and_reap: SIGKILL pid, then poll wait4 (every ~0.5 ms) until it is reaped; it must
 * have died of SIGKILL within KILL_MAX_MS ms. The figure goes to a "# " line.
 */
static int kill_and_reap(long pid, const char *what)
{
	int st = 0;
	char sb[64];
	uint64_t t0 = kt_now_ns();
	long k = k_kill(pid, SIGKILL);
	KT_CHECK(k == 0, "%s: kill(%ld, SIGKILL) returned %s", what, pid, kt_errname(k));
	long r;
	uint64_t t1;
	for (;;) {
		r = k_wait4(pid, &st, WNOHANG, NULL);
		t1 = kt_now_ns();
		if (r != 0 && r != -EINTR)
			break;
		if (t1 - t0 > 10000 * MS) {
			kt_reap(pid, &st);
			return kt_fail("%s: not reaped within 10 s of kill(SIGKILL) (reaped %llu ms after the kill, with "
				       "a blocking wait4): the wait is not killable",
				       what, hmm_ms(kt_now_ns() - t0));
		}
		kt_sleep_ns(500000);
	}
	KT_CHECK(r == pid, "%s: wait4(%ld) returned %s", what, pid, kt_errname(r));
	uint64_t d = t1 - t0;
	kout("# %s: reaped %llu.%03llu ms after kill()\n", what, hmm_ms(d), (unsigned long long)(d / 1000 % 1000));
	KT_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "%s: child %s, expected SIGKILL", what,
		 kt_status_str(st, sb, sizeof sb));
	KT_CHECK(d < KILL_MAX_MS * MS,
		 "%s: reaped %llu ms after kill(SIGKILL), limit %llu ms: the wait did not notice SIGKILL", what,
		 hmm_ms(d), KILL_MAX_MS);
	return 0;
}

/* blocked_then_kill: the child said it is about to block; 50 ms later it must still be
 * blocked (*after not set), then kill it. */
static int blocked_then_kill(long pid, volatile int *after, const char *what)
{
	kt_sleep_ns(BLOCK_WAIT_MS * MS);
	if (*after) {
		int st;
		kt_wait_timeout(pid, &st, 5000);
		return kt_fail("%s: the call returned within %llu ms instead of blocking (nothing to kill)", what,
			       BLOCK_WAIT_MS);
	}
	return kill_and_reap(pid, what);
}

/* ------------------------------------------------------------------------------------ */
/* Device helpers                                                                        */
/* ------------------------------------------------------------------------------------ */

/* need_device: 1 = go on; 0 = skipped (no device, not memkernel); or a printed failure (-1). */
static int need_device(void)
{
	long fd = hmm_open(0);
	if (fd >= 0) {
		k_close((int)fd);
		return 1;
	}
	if (kt_memkernel) {
		kt_fail("open(/dev/hmm_dmirror0) returned %s on memkernel", hmm_errname(fd));
		return -1;
	}
	kout("# %s: skipped: no /dev/hmm_dmirror0 on this kernel (%s)\n", kt_name, hmm_errname(fd));
	return 0;
}

#define NEED_DEVICE()                      \
	do {                               \
		int nd_ = need_device();   \
		if (nd_ <= 0)              \
			return nd_ < 0;    \
	} while (0)

/* hold_expired: sleep until the hold that began at t_hold is over (and a little more). */
static void hold_expired(uint64_t t_hold)
{
	if (t_hold)
		kt_sleep_until(t_hold + (HOLD_MS + 200) * MS);
	else
		kt_sleep_ns((HOLD_MS + 200) * MS);
}

/* device_works: the device serves a WRITE and a READ again (its engine is not stuck). */
static int device_works(const char *when)
{
	long fd = hmm_open(0);
	KT_CHECK(fd >= 0, "%s: open /dev/hmm_dmirror0: %s", when, hmm_errname(fd));
	uint32_t *q = hmm_map(1), *src = hmm_map(1), *dst = hmm_map(1);
	KT_CHECK(q && src && dst, "mmap failed");
	hmm_fill(src, HMM_PAGE, 0x4321);
	uint64_t t0 = kt_now_ns();
	KT_TRY(hmm_expect(hmm_dev_write(fd, q, 1, src), 0, "device WRITE after the kill"));
	KT_TRY(hmm_expect(hmm_dev_read(fd, q, 1, dst), 0, "device READ after the kill"));
	KT_TRY(hmm_expect_words(dst, HMM_PAGE, 0x4321, "device round trip after the kill"));
	KT_CHECK(kt_now_ns() - t0 < 1000 * MS, "%s: a device round trip took %llu ms", when, hmm_ms(kt_now_ns() - t0));
	munmap(q, HMM_PAGE);
	munmap(src, HMM_PAGE);
	munmap(dst, HMM_PAGE);
	k_close((int)fd);
	return 0;
}

/*
 * hold_child: in a new child: open dmirror0 (and 1), map and fill a page P, make it
 * exclusive with a HOLD_MS hold, record the time, and return P (in the child). The parent
 * gets the pid (returned through *pid; the function returns NULL in the parent).
 */
static uint32_t *hold_child(struct ksync *s, long *pid, long *fd1_out)
{
	*pid = k_fork();
	if (*pid != 0)
		return NULL;
	long fd0 = hmm_open(0), fd1 = hmm_open(1);
	uint32_t *p = hmm_map(1);
	uint32_t *mirror = hmm_map_touched(1, 0xEE);
	if (fd0 < 0 || fd1 < 0 || !p || !mirror)
		k_exit(70);
	hmm_fill(p, HMM_PAGE, 0x8000);
	long r = hmm_exclusive_hold(fd0, p, 1, mirror, HOLD_MS);
	s->r = r;
	if (r != 0)
		k_exit(71);
	s->t_hold = kt_now_ns();
	if (fd1_out)
		*fd1_out = fd1;
	return p;
}

/* ------------------------------------------------------------------------------------ */
/* (a) the frame lock, in the page-fault handler                                         */
/* ------------------------------------------------------------------------------------ */

static int t_frame_lock_fault(void)
{
	NEED_DEVICE();
	struct ksync *s = sync_map();
	KT_CHECK(s, "mmap(MAP_SHARED) failed");
	long pid;
	uint32_t *p = hold_child(s, &pid, NULL);
	if (p) {
		s->ready = 1;
		volatile uint32_t *w = p;
		w[3] = w[3] + 1; /* faults: the entry is device-exclusive, its frame locked */
		s->after = 1;
		k_exit(0);
	}
	KT_CHECK(pid > 0, "fork: %s", kt_errname(pid));
	const char *what = "a CPU write faulting on a frame locked by the driver";
	KT_TRY(wait_ready(&s->ready, pid, what, s));
	int rc = blocked_then_kill(pid, &s->after, what);
	hold_expired(s->t_hold);
	KT_TRY(rc);
	KT_TRY(device_works("after killing a process blocked in a page fault"));
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* (b) fork waiting for a frame lock                                                     */
/* ------------------------------------------------------------------------------------ */

static int t_fork_wait(void)
{
	NEED_DEVICE();
	struct ksync *s = sync_map();
	KT_CHECK(s, "mmap(MAP_SHARED) failed");
	long pid;
	uint32_t *p = hold_child(s, &pid, NULL);
	if (p) {
		s->ready = 1;
		long g = k_fork(); /* waits: it must restore the exclusive entry first */
		if (g == 0)
			k_exit(0);
		s->after = 1;
		s->r = g;
		if (g < 0)
			k_exit(73);
		int st;
		kt_reap(g, &st);
		k_exit(0);
	}
	KT_CHECK(pid > 0, "fork: %s", kt_errname(pid));
	const char *what = "fork() waiting for a frame locked by the driver";
	KT_TRY(wait_ready(&s->ready, pid, what, s));
	int rc = blocked_then_kill(pid, &s->after, what);
	hold_expired(s->t_hold);
	KT_TRY(rc);
	KT_TRY(device_works("after killing a process blocked in fork"));
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* (c) waiting for the device                                                            */
/* ------------------------------------------------------------------------------------ */

/* The child holds P on dmirror0 and asks dmirror1 for it: the engine sleeps on P's frame
 * lock (holding the device), the child's ioctl waits for the engine. */
static long device_blocked_child(struct ksync *s)
{
	long pid, fd1 = -1;
	uint32_t *p = hold_child(s, &pid, &fd1);
	if (p) {
		uint32_t *mirror = hmm_map_touched(1, 0xEE);
		if (!mirror)
			k_exit(70);
		s->ready = 1;
		long r = hmm_exclusive(fd1, p, 1, mirror, NULL);
		s->after = 1;
		s->r = r;
		k_exit(r == 0 ? 0 : 72);
	}
	return pid;
}

static int t_device_wait(void)
{
	NEED_DEVICE();
	struct ksync *s = sync_map();
	KT_CHECK(s, "mmap(MAP_SHARED) failed");
	long pid = device_blocked_child(s);
	KT_CHECK(pid > 0, "fork: %s", kt_errname(pid));
	const char *what = "an ioctl (EXCLUSIVE on dmirror1) waiting for the device's engine";
	KT_TRY(wait_ready(&s->ready, pid, what, s));
	int rc = blocked_then_kill(pid, &s->after, what);
	hold_expired(s->t_hold);
	KT_TRY(rc);
	KT_TRY(device_works("after killing a process blocked in an ioctl"));
	return 0;
}

/* A second process's ioctl waiting while the device is busy with the first's. */
static int t_device_busy_wait(void)
{
	NEED_DEVICE();
	struct ksync *s = sync_map();
	KT_CHECK(s, "mmap(MAP_SHARED) failed");
	/* Y first: its file is open and its page mapped before the device is busy. */
	long y = k_fork();
	if (y == 0) {
		long fd = hmm_open(0);
		uint32_t *q = hmm_map(1), *buf = hmm_map_touched(1, 0xEE);
		if (fd < 0 || !q || !buf)
			k_exit(70);
		hmm_fill(q, HMM_PAGE, 0x9000);
		uint64_t t0 = kt_now_ns();
		while (!s->y_go) {
			if (kt_now_ns() - t0 > 10000 * MS)
				k_exit(79);
			kt_sleep_ns(200000);
		}
		s->y_ready = 1;
		long r = hmm_dev_read(fd, q, 1, buf);
		s->y_after = 1;
		k_exit(r == 0 ? 0 : 72);
	}
	KT_CHECK(y > 0, "fork: %s", kt_errname(y));
	long x = device_blocked_child(s);
	if (x <= 0) {
		k_kill(y, SIGKILL);
		int st;
		kt_reap(y, &st);
		return kt_fail("fork: %s", kt_errname(x));
	}
	const char *wx = "the process holding the page, in an ioctl waiting for the engine";
	const char *wy = "another process's ioctl (READ) waiting for the busy device";
	int rc = wait_ready(&s->ready, x, wx, s);
	if (rc == 0) {
		kt_sleep_ns(30 * MS); /* X's request reaches the engine, which blocks */
		s->y_go = 1;
		rc = wait_ready(&s->y_ready, y, wy, s);
	}
	if (rc == 0)
		rc = blocked_then_kill(y, &s->y_after, wy);
	else {
		k_kill(y, SIGKILL);
		int st;
		kt_reap(y, &st);
	}
	if (rc == 0)
		rc = blocked_then_kill(x, &s->after, wx);
	else {
		k_kill(x, SIGKILL);
		int st;
		kt_reap(x, &st);
	}
	hold_expired(s->t_hold);
	KT_TRY(rc);
	KT_TRY(device_works("after killing two processes waiting for the device"));
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* (d) wait4                                                                             */
/* ------------------------------------------------------------------------------------ */

/* proc_state: 'Z' (zombie), 'R'/'S'/... (alive), or 0 (no such process), from /proc. */
static char proc_state(long pid)
{
	static char buf[16384];
	char path[64];
	if (kt_memkernel)
		snprintf(path, sizeof path, "/proc/ps");
	else
		snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	long fd = k_open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	size_t n = 0;
	long r;
	while (n < sizeof buf - 1 && (r = k_read((int)fd, buf + n, sizeof buf - 1 - n)) > 0)
		n += (size_t)r;
	k_close((int)fd);
	buf[n] = 0;
	if (!kt_memkernel) {
		char *e = strrchr(buf, ')');
		return e && e[1] == ' ' ? e[2] : '?';
	}
	/* "  PID  PPID STATE     NAME" */
	for (char *l = strchr(buf, '\n'); l && l[1]; l = strchr(l + 1, '\n')) {
		char *end;
		long p = strtol(l + 1, &end, 10);
		if (end == l + 1 || p != pid)
			continue;
		strtol(end, &end, 10); /* ppid */
		while (*end == ' ')
			end++;
		if (strncmp(end, "zombie", 6) == 0)
			return 'Z';
		return 'R';
	}
	return 0;
}

/*
 * wait4_round: a child C forks a grandchild G that sleeps 10 s, then blocks in wait4 for it
 * (in_wait4) or, as the control, in a 10 s nanosleep; C is killed (within 100 ms), then G,
 * which is reparented to init (on memkernel this program's pid 1, which reaps it after the
 * test) and must die (be a zombie or gone) within 100 ms too. *held: pages of free memory
 * not back at that point (G's zombie is not reaped yet), to compare the two kinds of round.
 */
static int wait4_round(struct ksync *s, int in_wait4, long *held)
{
	const char *what = in_wait4 ? "wait4 for a grandchild that sleeps 10 s" :
				      "nanosleep(10 s) with a grandchild that sleeps 10 s (the control)";
	memset((void *)s, 0, sizeof *s);
	unsigned long f0 = kt_freeram();
	long pid = k_fork();
	if (pid == 0) {
		long g = k_fork();
		if (g == 0) {
			kt_sleep_ns(10000 * MS);
			k_exit(0);
		}
		if (g < 0)
			k_exit(73);
		s->gpid = g;
		s->ready = 1;
		int st;
		long r = in_wait4 ? k_wait4(g, &st, 0, NULL) : (kt_sleep_ns(10000 * MS), 0);
		s->after = 1;
		s->r = r;
		k_exit(0);
	}
	KT_CHECK(pid > 0, "fork: %s", kt_errname(pid));
	KT_TRY(wait_ready(&s->ready, pid, what, s));
	long g = s->gpid;
	int rc = blocked_then_kill(pid, &s->after, what);
	if (rc) {
		k_kill(g, SIGKILL);
		return rc;
	}
	/* The grandchild, now an orphan, sleeps in nanosleep: killable too. */
	uint64_t t0 = kt_now_ns();
	long k = k_kill(g, SIGKILL);
	KT_CHECK(k == 0, "kill(grandchild %ld, SIGKILL) returned %s", g, kt_errname(k));
	char st = proc_state(g);
	while (st != 0 && st != 'Z' && kt_now_ns() - t0 < 5000 * MS) {
		kt_sleep_ns(500000);
		st = proc_state(g);
	}
	uint64_t d = kt_now_ns() - t0;
	kout("# the orphaned grandchild in nanosleep: %s %llu.%03llu ms after kill()\n",
	     st == 0 ? "gone" : st == 'Z' ? "a zombie" : "still alive", hmm_ms(d),
	     (unsigned long long)(d / 1000 % 1000));
	KT_CHECK(st == 0 || st == 'Z', "the orphaned grandchild %ld is still alive (state %c) 5 s after kill(SIGKILL)",
		 g, st);
	KT_CHECK(d < KILL_MAX_MS * MS, "the orphaned grandchild died %llu ms after kill(SIGKILL), limit %llu ms",
		 hmm_ms(d), KILL_MAX_MS);
	*held = ((long)f0 - (long)kt_freeram()) / (long)HMM_PAGE;
	return 0;
}

static int t_wait4_wait(void)
{
	struct ksync *s = sync_map();
	KT_CHECK(s, "mmap(MAP_SHARED) failed");
	proc_state(1); /* its buffer faulted in before any measurement */
	long control = 0, waited = 0;
	KT_TRY(wait4_round(s, 0, &control)); /* a warm-up: first-time costs land here */
	KT_TRY(wait4_round(s, 0, &control));
	KT_TRY(wait4_round(s, 1, &waited));
	kout("# pages in use until the orphan is reaped: %ld after a kill in nanosleep, %ld after a kill in wait4\n",
	     control, waited);
	if (kt_memkernel)
		KT_CHECK(waited == control,
			 "a process killed in wait4 left %+ld pages in use compared with one killed in nanosleep (%ld "
			 "vs %ld pages, the orphaned grandchild a zombie in both): the killed waiter's memory was not "
			 "freed",
			 waited - control, waited, control);
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* (e) console read                                                                      */
/* ------------------------------------------------------------------------------------ */

static int t_console_read(void)
{
	struct ksync *s = sync_map();
	KT_CHECK(s, "mmap(MAP_SHARED) failed");
	long pid = k_fork();
	if (pid == 0) {
		static char buf[64];
		s->ready = 1;
		long r = k_read(0, buf, sizeof buf);
		s->r = r;
		s->after = 1;
		k_exit(0);
	}
	KT_CHECK(pid > 0, "fork: %s", kt_errname(pid));
	const char *what = "read(0) on the console with no input";
	KT_TRY(wait_ready(&s->ready, pid, what, s));
	kt_sleep_ns(BLOCK_WAIT_MS * MS);
	if (s->after) {
		int st;
		kt_wait_timeout(pid, &st, 5000);
		KT_CHECK(!kt_memkernel,
			 "%s: read(0) returned %s within %llu ms instead of waiting for input (was there input on "
			 "the serial console?)",
			 what, hmm_errname(s->r), BLOCK_WAIT_MS);
		kout("# %s: skipped: read(0) returned %ld at once (stdin is not a terminal waiting for input)\n",
		     kt_name, s->r);
		return 0;
	}
	return kill_and_reap(pid, what);
}

static const struct ktest tests[] = {
	{ "kill::frame_lock_wait_in_page_fault", t_frame_lock_fault, 30 },
	{ "kill::fork_waiting_for_frame_lock", t_fork_wait, 30 },
	{ "kill::ioctl_waiting_for_device_engine", t_device_wait, 30 },
	{ "kill::ioctl_waiting_for_busy_device", t_device_busy_wait, 30 },
	{ "kill::wait4_for_sleeping_grandchild", t_wait4_wait, 30 },
	{ "kill::console_read_without_input", t_console_read, 30 },
};

int main(int argc, char **argv, char **envp)
{
	return ktest_main("t_kill_wait", tests, sizeof tests / sizeof tests[0], argc, argv, envp);
}
