/*
 * t_efault: every pointer a syscall of the subset dereferences, made bad, gives -EFAULT and
 * the process goes on (each test runs in its own process; a kill shows up as a failure).
 *
 * Bad pointers: (void *)1 (unmapped first page), NULL, 0xffff800000000000 (kernel half),
 * a buffer that runs off the end of user space, a PROT_NONE page, and for the syscalls that
 * write to user memory, a PROT_READ page and the program's own code.
 *
 * Covered: read, write, open, writev (bad iovec array and bad iov_base), nanosleep,
 * wait4 (bad status on a real child), clock_gettime, execve (path, argv, argv[0], envp,
 * envp[0]), uname, sysinfo. Skipped, as on Linux: set_tid_address (stores the pointer, does
 * not dereference it), arch_prctl(ARCH_SET_FS) (sets the base, no access), nanosleep's rem
 * (written only when interrupted), wait4's rusage.
 */
#include "ktest.h"

/* A mapping whose first page is PROT_READ|PROT_WRITE followed by an unmapped page. */
static char *page_then_hole(void)
{
	char *p = k_anon(2 * 4096, PROT_READ | PROT_WRITE);
	if (!p)
		return NULL;
	k_munmap(p + 4096, 4096);
	return p;
}

static long g_bad[] = { 1, 0, (long)0xffff800000000000UL, (long)0xffffffff80000000UL, -4096L };
static const char *g_bad_name[] = { "(void *)1", "NULL", "0xffff800000000000", "0xffffffff80000000",
				    "(void *)-4096" };
#define NBAD (int)(sizeof g_bad / sizeof g_bad[0])

#define EXPECT_EFAULT(call, ...)                                                                      \
	do {                                                                                          \
		long r_ = (call);                                                                     \
		KT_CHECK(r_ == -EFAULT, "%s returned %s, expected -EFAULT", __VA_ARGS__, kt_errname(r_)); \
	} while (0)

static long open_self(void)
{
	long fd = k_open(kt_self_path(), O_RDONLY);
	if (fd == -ENOENT)
		fd = k_open("/bin/t_efault", O_RDONLY);
	return fd;
}

static int t_read(void)
{
	long fd = open_self();
	KT_CHECK(fd >= 0, "open(own executable) returned %s", kt_errname(fd));
	char name[96];
	for (int i = 0; i < NBAD; i++) {
		snprintf(name, sizeof name, "read(fd, %s, 16)", g_bad_name[i]);
		EXPECT_EFAULT(k_read((int)fd, (void *)g_bad[i], 16), name);
	}
	char *ro = k_anon(4096, PROT_READ);
	KT_CHECK(ro, "mmap failed");
	EXPECT_EFAULT(k_read((int)fd, ro, 16), "read into a PROT_READ page");
	char *none = k_anon(4096, PROT_NONE);
	KT_CHECK(none, "mmap failed");
	EXPECT_EFAULT(k_read((int)fd, none, 16), "read into a PROT_NONE page");
	EXPECT_EFAULT(k_read((int)fd, (void *)t_read, 16), "read into the program's code");
	EXPECT_EFAULT(k_read((int)fd, (void *)0x00007ffffffff000UL, 8192), "read into the last user page + 1");
	/* the fd still works and the buffer checks did not eat the file position: byte 0 is \x7f */
	char buf[4];
	long r = k_read((int)fd, buf, 4);
	KT_CHECK(r == 4 && memcmp(buf, "\177ELF", 4) == 0, "after the faults, read() returned %s / not the ELF magic",
		 kt_errname(r));
	k_close((int)fd);
	return 0;
}

static int t_write(void)
{
	char name[96];
	for (int i = 0; i < NBAD; i++) {
		snprintf(name, sizeof name, "write(1, %s, 16)", g_bad_name[i]);
		EXPECT_EFAULT(k_write(1, (void *)g_bad[i], 16), name);
	}
	char *none = k_anon(4096, PROT_NONE);
	KT_CHECK(none, "mmap failed");
	EXPECT_EFAULT(k_write(1, none, 16), "write from a PROT_NONE page");
	EXPECT_EFAULT(k_write(1, (void *)0x00007ffffffff000UL, 8192), "write from the last user page + 1");
	return 0;
}

static int t_open(void)
{
	char name[96];
	for (int i = 0; i < NBAD; i++) {
		snprintf(name, sizeof name, "open(%s)", g_bad_name[i]);
		EXPECT_EFAULT(k_open((const char *)g_bad[i], O_RDONLY), name);
	}
	/* a path with no NUL before an unmapped page */
	char *p = page_then_hole();
	KT_CHECK(p, "mmap failed");
	memset(p, 'a', 4096);
	EXPECT_EFAULT(k_open(p + 4096 - 100, O_RDONLY), "open(path running into an unmapped page)");
	char *none = k_anon(4096, PROT_NONE);
	KT_CHECK(none, "mmap failed");
	EXPECT_EFAULT(k_open(none, O_RDONLY), "open(path in a PROT_NONE page)");
	return 0;
}

static int t_writev(void)
{
	char name[96];
	for (int i = 0; i < NBAD; i++) {
		if (g_bad[i] == 0)
			continue; /* writev(fd, NULL, 1) is checked below */
		snprintf(name, sizeof name, "writev(1, iov = %s, 1)", g_bad_name[i]);
		EXPECT_EFAULT(k_writev(1, (void *)g_bad[i], 1), name);
	}
	EXPECT_EFAULT(k_writev(1, NULL, 1), "writev(1, NULL, 1)");
	for (int i = 0; i < NBAD; i++) {
		struct iovec iov[1] = { { (void *)g_bad[i], 10 } };
		snprintf(name, sizeof name, "writev(1, {iov_base = %s, 10}, 1)", g_bad_name[i]);
		EXPECT_EFAULT(k_writev(1, iov, 1), name);
	}
	/* the iovec array itself runs into an unmapped page */
	char *p = page_then_hole();
	KT_CHECK(p, "mmap failed");
	struct iovec *iov = (struct iovec *)(p + 4096 - sizeof(struct iovec));
	iov[0].iov_base = "";
	iov[0].iov_len = 0;
	EXPECT_EFAULT(k_writev(1, iov, 2), "writev with the iovec array crossing into an unmapped page");
	return 0;
}

static int t_nanosleep(void)
{
	char name[96];
	for (int i = 0; i < NBAD; i++) {
		snprintf(name, sizeof name, "nanosleep(%s, NULL)", g_bad_name[i]);
		EXPECT_EFAULT(k_nanosleep((void *)g_bad[i], NULL), name);
	}
	char *p = page_then_hole();
	KT_CHECK(p, "mmap failed");
	EXPECT_EFAULT(k_nanosleep((void *)(p + 4096 - 8), NULL), "nanosleep(timespec crossing into a hole)");
	return 0;
}

/* wait4 with a bad status pointer on a real, exited child: -EFAULT. Linux has reaped the child
 * by then (the status is written last); a kernel that keeps the zombie instead is accepted, and
 * the zombie is then reaped here so that nothing is left over. */
static int t_wait4(void)
{
	for (int i = 0; i < NBAD; i++) {
		if (g_bad[i] == 0)
			continue; /* NULL status is allowed */
		long pid = k_fork();
		if (pid == 0)
			k_exit(3);
		KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
		kt_sleep_ns(10000000);
		long r = k_wait4(pid, (int *)g_bad[i], 0, NULL);
		int st = 0;
		long again = k_wait4(pid, &st, 0, NULL);
		KT_CHECK(r == -EFAULT, "wait4(child, status = %s) returned %s, expected -EFAULT", g_bad_name[i],
			 kt_errname(r));
		KT_CHECK(again == -ECHILD || (again == pid && WIFEXITED(st) && WEXITSTATUS(st) == 3),
			 "wait4 after the -EFAULT returned %s (status 0x%x)", kt_errname(again), st);
	}
	char *ro = k_anon(4096, PROT_READ);
	KT_CHECK(ro, "mmap failed");
	long pid = k_fork();
	if (pid == 0)
		k_exit(3);
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	long r = k_wait4(pid, (int *)ro, 0, NULL);
	k_wait4(pid, NULL, 0, NULL);
	KT_CHECK(r == -EFAULT, "wait4(child, status in a PROT_READ page) returned %s", kt_errname(r));
	return 0;
}

static int t_clock_gettime(void)
{
	char name[96];
	for (int i = 0; i < NBAD; i++) {
		snprintf(name, sizeof name, "clock_gettime(CLOCK_MONOTONIC, %s)", g_bad_name[i]);
		EXPECT_EFAULT(k_clock_gettime(CLOCK_MONOTONIC, (void *)g_bad[i]), name);
	}
	char *ro = k_anon(4096, PROT_READ);
	KT_CHECK(ro, "mmap failed");
	EXPECT_EFAULT(k_clock_gettime(CLOCK_MONOTONIC, (void *)ro), "clock_gettime into a PROT_READ page");
	EXPECT_EFAULT(k_clock_gettime(CLOCK_MONOTONIC, (void *)t_clock_gettime), "clock_gettime into code");
	char *p = page_then_hole();
	KT_CHECK(p, "mmap failed");
	EXPECT_EFAULT(k_clock_gettime(CLOCK_MONOTONIC, (void *)(p + 4096 - 8)), "clock_gettime crossing into a hole");
	return 0;
}

static int t_execve(void)
{
	/* if an execve that must fail succeeds anyway, the new image exits 77 (see main) */
	static char *argv[] = { "t_efault", "--exec-must-fail", NULL };
	static char *envp[] = { "A=1", NULL };
	const char *self = kt_self_path();
	char name[128];
	for (int i = 0; i < NBAD; i++) {
		if (g_bad[i] == 0)
			continue; /* execve(NULL path) is -EFAULT too, but NULL argv/envp are allowed */
		snprintf(name, sizeof name, "execve(path = %s)", g_bad_name[i]);
		EXPECT_EFAULT(k_execve((const char *)g_bad[i], argv, envp), name);
		snprintf(name, sizeof name, "execve(self, argv = %s)", g_bad_name[i]);
		EXPECT_EFAULT(k_execve(self, (char **)g_bad[i], envp), name);
		snprintf(name, sizeof name, "execve(self, envp = %s)", g_bad_name[i]);
		EXPECT_EFAULT(k_execve(self, argv, (char **)g_bad[i]), name);
		char *bad_argv[] = { "t_efault", "--exec-must-fail", (char *)g_bad[i], NULL };
		snprintf(name, sizeof name, "execve(self, argv[2] = %s)", g_bad_name[i]);
		EXPECT_EFAULT(k_execve(self, bad_argv, envp), name);
		char *bad_envp[] = { "A=1", (char *)g_bad[i], NULL };
		snprintf(name, sizeof name, "execve(self, envp[1] = %s)", g_bad_name[i]);
		EXPECT_EFAULT(k_execve(self, argv, bad_envp), name);
	}
	EXPECT_EFAULT(k_execve(NULL, argv, envp), "execve(NULL path)");
	/* an argv array with no NULL before an unmapped page */
	char *p = page_then_hole();
	KT_CHECK(p, "mmap failed");
	char **av = (char **)(p + 4096 - 2 * sizeof(char *));
	av[0] = "t_efault";
	av[1] = "--exec-must-fail";
	EXPECT_EFAULT(k_execve(self, av, envp), "execve(argv running into an unmapped page)");
	return 0;
}

static int t_uname_sysinfo(void)
{
	char name[96];
	for (int i = 0; i < NBAD; i++) {
		snprintf(name, sizeof name, "uname(%s)", g_bad_name[i]);
		EXPECT_EFAULT(k_uname((void *)g_bad[i]), name);
		snprintf(name, sizeof name, "sysinfo(%s)", g_bad_name[i]);
		EXPECT_EFAULT(k_sysinfo((void *)g_bad[i]), name);
	}
	char *ro = k_anon(4096, PROT_READ);
	KT_CHECK(ro, "mmap failed");
	EXPECT_EFAULT(k_uname((void *)ro), "uname into a PROT_READ page");
	EXPECT_EFAULT(k_sysinfo((void *)ro), "sysinfo into a PROT_READ page");
	char *p = page_then_hole();
	KT_CHECK(p, "mmap failed");
	EXPECT_EFAULT(k_uname((void *)(p + 4096 - 64)), "uname crossing into a hole");
	EXPECT_EFAULT(k_sysinfo((void *)(p + 4096 - 64)), "sysinfo crossing into a hole");
	return 0;
}

/* After all of the above in one process, it still runs normally. */
static int t_survives_all(void)
{
	int r = t_read() || t_write() || t_open() || t_writev() || t_nanosleep() || t_clock_gettime() ||
		t_uname_sysinfo() || t_execve();
	if (r)
		return 1;
	struct utsname u;
	KT_CHECK(k_uname(&u) == 0, "uname failed after the faults");
	KT_CHECK(k_getpid() > 0, "getpid failed");
	return 0;
}

static const struct ktest tests[] = {
	{ "efault::read", t_read, 0 },
	{ "efault::write", t_write, 0 },
	{ "efault::open", t_open, 0 },
	{ "efault::writev", t_writev, 0 },
	{ "efault::nanosleep", t_nanosleep, 0 },
	{ "efault::wait4_status", t_wait4, 0 },
	{ "efault::clock_gettime", t_clock_gettime, 0 },
	{ "efault::execve", t_execve, 0 },
	{ "efault::uname_and_sysinfo", t_uname_sysinfo, 0 },
	{ "efault::process_survives_all_of_them", t_survives_all, 0 },
};

int main(int argc, char **argv, char **envp)
{
	if (argc > 1 && strcmp(argv[1], "--exec-must-fail") == 0) {
		kout("# t_efault: an execve that had to fail with -EFAULT ran this program\n");
		return 77;
	}
	return ktest_main("t_efault", tests, sizeof tests / sizeof tests[0], argc, argv, envp);
}
