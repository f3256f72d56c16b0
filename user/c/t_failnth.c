/*
 * t_failnth - every allocation a system call makes may fail: the call then fails cleanly
 * (ENOMEM, or EAGAIN for fork), the kernel survives, and nothing leaks.
 *
 * ktest: host (runs on Linux too when it has CONFIG_FAULT_INJECTION; skips otherwise)
 *
 * The tool is Linux's own (Documentation/fault-injection, "/proc/<pid>/fail-nth"): writing
 * N to /proc/self/fail-nth makes this task's N-th allocation from then on fail; reading it
 * afterwards gives 0 if the failure was injected, a positive number if the call needed
 * fewer than N allocations. Each test sweeps N = 1, 2, ... over one operation until the
 * operation no longer reaches the N-th allocation, so every allocation it makes fails once,
 * in turn. For each N it checks that the operation either succeeded (a failure the kernel
 * absorbed: a fallback, a retried page fault) or failed with an errno the call may return
 * for want of memory, and undoes what succeeded. The harness then checks that free memory
 * is back to its baseline after each test.
 *
 *   mmap_touch_munmap        anonymous mmap, first touch of 16 pages, munmap
 *   munmap_splits_a_vma      munmap of a middle page (the VMA splits in two)
 *   failed_map_fixed_keeps_the_old_page
 *                            MAP_FIXED|MAP_SHARED over a mapped page: a failure leaves
 *                            the old page and its contents (Linux 6.12)
 *   mprotect_splits_a_vma    mprotect of a middle page
 *   brk_grows_and_shrinks    brk up 16 pages, touch, brk back
 *   shared_mapping_and_fork  MAP_SHARED|MAP_ANONYMOUS touched on both sides of a fork
 *   fork_exit_wait           fork, the child exits 7, waitpid
 *   execve_a_program         a child execs this program again (it reports through an
 *                            inherited descriptor whether the failure was injected)
 *   proc_files               open, read to the end and close /proc/self/ptes and /proc/ps
 *   pidfd_and_poll           pidfd_open of an exited child, poll, close
 *   alarm_timer              setitimer, then cancel
 *   device_mirror            open the accelerator, device read and write, exclusive
 *                            access, close (skipped without the device)
 */
#include "hmm.h"
#include <poll.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_N 20000

static int fail_fd = -1;

/* Arm the N-th allocation (0 disarms). */
static void arm(unsigned n)
{
	char buf[16];
	int len = snprintf(buf, sizeof buf, "%u", n);
	if (write(fail_fd, buf, (size_t)len) != len) {
		kout("%s ... FAILED: write(/proc/self/fail-nth, %u): %s\n", kt_name, n, strerror(errno));
		k_exit(1);
	}
}

/* The countdown left: 0 once the failure was injected. */
static unsigned left(void)
{
	char buf[16] = { 0 };
	if (pread(fail_fd, buf, sizeof buf - 1, 0) <= 0) {
		kout("%s ... FAILED: pread(/proc/self/fail-nth): %s\n", kt_name, strerror(errno));
		k_exit(1);
	}
	return (unsigned)strtoul(buf, NULL, 10);
}

/* What one operation may fail with for want of memory: bit e for errno e. */
#define E(e) (1UL << (e))

/*
 * Run op (returns 0 or -errno and undoes its own effects) with N = 1, 2, ... armed.
 * Returns 0 if every run ended in success or an allowed errno.
 */
/*
 * Open this task's fail-nth. Each test process opens its own: on Linux the file names the
 * task that opened it, so a descriptor inherited across fork would arm the parent.
 */
static void open_fail_nth(void)
{
	if (fail_fd >= 0)
		close(fail_fd);
	fail_fd = open("/proc/self/fail-nth", O_RDWR);
	if (fail_fd < 0) {
		kout("%s ... FAILED: open(/proc/self/fail-nth): %s\n", kt_name, strerror(errno));
		k_exit(1);
	}
}

static int sweep(const char *what, long (*op)(void), unsigned long allowed)
{
	unsigned failed = 0, absorbed = 0, n;
	open_fail_nth();
	for (n = 1; n <= MAX_N; n++) {
		arm(n);
		long r = op();
		unsigned l = left();
		arm(0);
		if (r < 0) {
			KT_CHECK(-r < 64 && (allowed & E(-r)),
				 "%s with allocation %u failing: %s (not an out-of-memory answer)", what, n,
				 kt_errname(r));
			failed++;
		} else if (l == 0) {
			absorbed++;
		}
		if (l > 0)
			break;
	}
	KT_CHECK(n <= MAX_N, "%s: still allocating after %u allocations", what, MAX_N);
	kout("# %s: %u allocations; %u answered out of memory, %u absorbed\n", what, n - 1, failed,
	     absorbed);
	return 0;
}

static long op_mmap_touch(void)
{
	size_t len = 16 * KT_PAGE;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	for (size_t i = 0; i < len; i += KT_PAGE)
		p[i] = (char)i;
	for (size_t i = 0; i < len; i += KT_PAGE)
		if (p[i] != (char)i)
			return -EIO;
	return munmap(p, len) == 0 ? 0 : -errno;
}

/* Map 3 pages, apply `mid` to the middle one; always unmap everything after. */
static long three_pages(int (*mid)(char *))
{
	char *p = mmap(NULL, 3 * KT_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	p[0] = 1;
	p[2 * KT_PAGE] = 3;
	long r = mid(p + KT_PAGE) == 0 ? 0 : -errno;
	/* What a failed split must leave: the outer pages as they were. */
	if (p[0] != 1 || p[2 * KT_PAGE] != 3)
		r = -EIO;
	munmap(p, 3 * KT_PAGE);
	return r;
}

/*
 * MAP_FIXED over the middle page with a shared mapping: if it fails, the old page must
 * still be there with its contents (Linux 6.12 restores what it was about to unmap).
 */
static long op_mmap_fixed(void)
{
	char *p = mmap(NULL, 3 * KT_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	p[0] = 1;
	p[KT_PAGE] = 2;
	p[2 * KT_PAGE] = 3;
	char *q = mmap(p + KT_PAGE, KT_PAGE, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	long r = 0;
	if (q == MAP_FAILED) {
		r = -errno;
		if (p[KT_PAGE] != 2) /* faults (SIGSEGV) if the old page is gone */
			r = -EIO;
	} else if (q != p + KT_PAGE || q[0] != 0) {
		r = -EIO;
	}
	if (p[0] != 1 || p[2 * KT_PAGE] != 3)
		r = -EIO;
	munmap(p, 3 * KT_PAGE);
	return r;
}

static int mid_munmap(char *p) { return munmap(p, KT_PAGE); }
static int mid_mprotect(char *p) { return mprotect(p, KT_PAGE, PROT_READ); }
static long op_munmap_split(void) { return three_pages(mid_munmap); }
static long op_mprotect_split(void) { return three_pages(mid_mprotect); }

/* brk itself (musl's sbrk refuses to move the break): a failed brk returns the old one. */
static long op_brk(void)
{
	char *old = (char *)syscall(SYS_brk, 0);
	char *want = old + 16 * KT_PAGE;
	if ((char *)syscall(SYS_brk, want) != want)
		return -ENOMEM;
	for (int i = 0; i < 16; i++)
		old[i * KT_PAGE] = 1;
	return (char *)syscall(SYS_brk, old) == old ? 0 : -ENOMEM;
}

static long op_shared_fork(void)
{
	volatile int *p = mmap(NULL, 4 * KT_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	p[0] = 5;
	long r = 0;
	pid_t pid = fork();
	if (pid == 0) {
		p[KT_PAGE / sizeof(int)] = p[0] + 1;
		_exit(0);
	}
	if (pid < 0) {
		r = -errno;
	} else {
		int st = 0;
		waitpid(pid, &st, 0);
		if (!WIFEXITED(st) || p[KT_PAGE / sizeof(int)] != 6)
			r = -EIO;
	}
	munmap((void *)p, 4 * KT_PAGE);
	return r;
}

static long op_fork(void)
{
	pid_t pid = fork();
	if (pid == 0)
		_exit(7);
	if (pid < 0)
		return -errno;
	int st = 0;
	if (waitpid(pid, &st, 0) != pid)
		return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 7 ? 0 : -EIO;
}

/*
 * The child arms the countdown and execs "t_failnth --report FD"; the new program reads
 * the countdown through the inherited descriptor and exits 40 (injected) or 41 (not). A
 * failed execve exits 100 + errno from the old program.
 */
static unsigned exec_n;
static int exec_injected;

static long op_execve(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		char fdtext[16];
		char *argv[] = { "/bin/t_failnth", "--report", fdtext, NULL };
		char *envp[] = { NULL };
		open_fail_nth();
		snprintf(fdtext, sizeof fdtext, "%d", fail_fd);
		arm(exec_n);
		execve(argv[0], argv, envp);
		int e = errno;
		unsigned l = left();
		_exit(l == 0 ? 100 + e : 99);
	}
	if (pid < 0)
		return -errno;
	int st = 0;
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st))
		return -EIO;
	int code = WEXITSTATUS(st);
	exec_injected = code != 41;
	if (code == 40 || code == 41)
		return 0;
	return code > 100 ? -(code - 100) : -EIO;
}

/* The sweep for execve: the countdown must be armed in the child, after its fork. */
static int t_execve(void)
{
	unsigned failed = 0, absorbed = 0;
	for (exec_n = 1; exec_n <= MAX_N; exec_n++) {
		long r = op_execve();
		if (r < 0) {
			KT_CHECK(r == -ENOMEM || r == -E2BIG,
				 "execve with allocation %u failing: %s", exec_n, kt_errname(r));
			failed++;
		} else if (exec_injected) {
			absorbed++;
		}
		if (!exec_injected)
			break;
	}
	kout("# execve: %u allocations; %u answered out of memory, %u absorbed\n", exec_n - 1, failed,
	     absorbed);
	return 0;
}

static long read_all(const char *path)
{
	char buf[4096];
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	long r;
	while ((r = read(fd, buf, sizeof buf)) > 0)
		;
	long e = r < 0 ? -errno : 0;
	close(fd);
	return e;
}

static long op_proc(void)
{
	long r = read_all("/proc/self/ptes");
	return r ? r : read_all("/proc/ps");
}

static long op_pidfd(void)
{
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	if (pid < 0)
		return -errno;
	long fd = syscall(SYS_pidfd_open, pid, 0);
	long r = fd < 0 ? -errno : 0;
	if (fd >= 0) {
		struct pollfd pfd = { .fd = (int)fd, .events = POLLIN };
		if (poll(&pfd, 1, 5000) != 1)
			r = -EIO;
		close((int)fd);
	}
	waitpid(pid, NULL, 0);
	return r;
}

static long op_alarm(void)
{
	struct itimerval it = { { 0, 0 }, { 100, 0 } }, off = { { 0, 0 }, { 0, 0 } };
	if (setitimer(ITIMER_REAL, &it, NULL) != 0)
		return -errno;
	return setitimer(ITIMER_REAL, &off, NULL) == 0 ? 0 : -errno;
}

static long op_device(void)
{
	long fd = hmm_open(0);
	if (fd < 0)
		return fd;
	char *p = mmap(NULL, 4 * KT_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	static char buf[4 * 4096];
	long r = p == MAP_FAILED ? -errno : 0;
	if (!r) {
		memset(p, 0x5a, 4 * KT_PAGE);
		memset(buf, 0x33, sizeof buf);
		r = hmm_dev_write(fd, p, 4, buf);
		if (!r)
			r = hmm_dev_read(fd, p, 4, buf);
		if (!r && buf[0] != 0x33)
			r = -EIO;
		uint64_t cpages = 0;
		if (!r)
			r = hmm_exclusive(fd, p, 4, buf, &cpages);
		if (!r)
			p[0] = 1; /* the CPU takes the page back */
		munmap(p, 4 * KT_PAGE);
	}
	close((int)fd);
	return r;
}

#define MEM E(ENOMEM)

static int t_mmap(void) { return sweep("mmap + touch + munmap", op_mmap_touch, MEM); }
static int t_munmap(void) { return sweep("munmap of a middle page", op_munmap_split, MEM); }
static int t_mmap_fixed(void) { return sweep("MAP_FIXED over a mapped page", op_mmap_fixed, MEM); }
static int t_mprotect(void) { return sweep("mprotect of a middle page", op_mprotect_split, MEM); }
static int t_brk(void) { return sweep("brk up and down", op_brk, MEM); }
static int t_shared(void) { return sweep("shared mapping + fork", op_shared_fork, MEM | E(EAGAIN)); }
static int t_fork(void) { return sweep("fork + exit + wait", op_fork, MEM | E(EAGAIN)); }
static int t_proc(void) { return sweep("/proc files", op_proc, MEM); }
static int t_pidfd(void) { return sweep("pidfd_open + poll", op_pidfd, MEM | E(EAGAIN)); }
static int t_alarm(void) { return sweep("setitimer", op_alarm, MEM); }

static int t_device(void)
{
	long fd = hmm_open(0);
	if (fd < 0) {
		kout("# no accelerator (%s): skipped\n", kt_errname(fd));
		return 0;
	}
	close((int)fd);
	return sweep("accelerator read/write/exclusive", op_device, MEM | E(EBUSY));
}

static const struct ktest tests[] = {
	{ "failnth::mmap_touch_munmap", t_mmap, 0 },
	{ "failnth::munmap_splits_a_vma", t_munmap, 0 },
	{ "failnth::failed_map_fixed_keeps_the_old_page", t_mmap_fixed, 0 },
	{ "failnth::mprotect_splits_a_vma", t_mprotect, 0 },
	{ "failnth::brk_grows_and_shrinks", t_brk, 0 },
	{ "failnth::shared_mapping_and_fork", t_shared, 0 },
	{ "failnth::fork_exit_wait", t_fork, 0 },
	{ "failnth::execve_a_program", t_execve, 0 },
	{ "failnth::proc_files", t_proc, 0 },
	{ "failnth::pidfd_and_poll", t_pidfd, 0 },
	{ "failnth::alarm_timer", t_alarm, 0 },
	{ "failnth::device_mirror", t_device, 0 },
};

int main(int argc, char **argv, char **envp)
{
	if (argc == 3 && strcmp(argv[1], "--report") == 0) {
		fail_fd = atoi(argv[2]);
		_exit(left() == 0 ? 40 : 41);
	}
	int fd = open("/proc/self/fail-nth", O_RDWR);
	if (fd < 0) {
		printf("t_failnth: /proc/self/fail-nth: %s (a kernel without fault injection): skipped\n",
		       strerror(errno));
		printf("0 passed, 0 failed\n");
		return 0;
	}
	close(fd);
	return ktest_main("t_failnth", tests, sizeof tests / sizeof tests[0], argc, argv, envp);
}
