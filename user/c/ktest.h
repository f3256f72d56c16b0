/*
 * ktest.h - shared helpers for the user-space C test programs (static inline only:
 * every user/c/NAME.c is compiled alone with `musl-gcc -static -O2`).
 *
 * The programs are ordinary Linux x86-64 programs that stay inside memkernel's syscall
 * subset (the system-call table of docs chapter 5.9). To be sure of which
 * syscalls run, the helpers below issue them directly with the `syscall` instruction
 * and return Linux's raw convention: a result >= 0, or -errno. In particular:
 *
 *   - musl's fork() calls rt_sigprocmask (14) and gettid around the fork syscall, so we
 *     call fork (57) directly: k_fork();
 *   - musl's exit() runs atexit handlers and flushes stdio; children use k_exit(), which
 *     is exit_group (231) and nothing else;
 *   - output goes through kout(): vsnprintf into a stack buffer, then write(1). Nothing is
 *     buffered in user space, so a fork never duplicates pending output.
 *
 * The test harness (ktest_main) runs every test in its own child process:
 *
 *   running N tests
 *   prefix::name ... ok
 *   prefix::other ... FAILED: why
 *   ...
 *   memory::freeram_back_to_baseline ... ok
 *   N passed, M failed
 *
 * and exits 0 only if everything passed. Lines starting with "# " are comments.
 * A test returns 0 on success, or kt_fail("why") (which prints the FAILED line and
 * returns 1). The harness prints the "ok" line itself once the test process has exited 0
 * (and, on memkernel, once the free-page count is back to what it was before the test).
 *
 * On memkernel (uname().sysname == "memkernel") free memory must come back to the exact
 * same value after every test, once its processes are reaped; on Linux the figure is
 * noisy, so it is printed but not enforced.
 */
#ifndef KTEST_H
#define KTEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>

#define KT_PAGE 4096UL
#define KT_KiB 1024UL
#define KT_MiB (1024UL * 1024UL)

/* A user address that is never mapped (the first page), and the first kernel-half address. */
#define KT_BAD_PTR ((void *)1)
#define KT_KERNEL_PTR ((void *)0xffff800000000000UL)

/* ------------------------------------------------------------------------------------ */
/* Raw system calls                                                                      */
/* ------------------------------------------------------------------------------------ */

/* ksys: the `syscall` instruction with Linux's register convention; returns rax. */
static inline long ksys(long n, long a1, long a2, long a3, long a4, long a5, long a6)
{
	long r;
	register long r10 __asm__("r10") = a4;
	register long r8 __asm__("r8") = a5;
	register long r9 __asm__("r9") = a6;
	__asm__ volatile("syscall"
			 : "=a"(r)
			 : "a"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return r;
}
#define ksys0(n) ksys((n), 0, 0, 0, 0, 0, 0)
#define ksys1(n, a) ksys((n), (long)(a), 0, 0, 0, 0, 0)
#define ksys2(n, a, b) ksys((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define ksys3(n, a, b, c) ksys((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define ksys4(n, a, b, c, d) ksys((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define ksys6(n, a, b, c, d, e, f) \
	ksys((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

static inline long k_read(int fd, void *buf, size_t n) { return ksys3(SYS_read, fd, buf, n); }
static inline long k_write(int fd, const void *buf, size_t n) { return ksys3(SYS_write, fd, buf, n); }
static inline long k_open(const char *path, int flags) { return ksys3(SYS_open, path, flags, 0); }
static inline long k_close(int fd) { return ksys1(SYS_close, fd); }
static inline long k_writev(int fd, const void *iov, int cnt) { return ksys3(SYS_writev, fd, iov, cnt); }
static inline long k_ioctl(int fd, unsigned long req, void *arg) { return ksys3(SYS_ioctl, fd, req, arg); }
static inline long k_fork(void) { return ksys0(SYS_fork); }
static inline long k_getpid(void) { return ksys0(SYS_getpid); }
static inline long k_getppid(void) { return ksys0(SYS_getppid); }
static inline long k_gettid(void) { return ksys0(SYS_gettid); }
static inline long k_kill(long pid, int sig) { return ksys2(SYS_kill, pid, sig); }
static inline long k_sched_yield(void) { return ksys0(SYS_sched_yield); }
static inline long k_wait4(long pid, int *status, int options, void *rusage)
{
	return ksys4(SYS_wait4, pid, status, options, rusage);
}
static inline long k_execve(const char *path, char *const argv[], char *const envp[])
{
	return ksys3(SYS_execve, path, argv, envp);
}
static inline long k_brk(void *addr) { return ksys1(SYS_brk, addr); }
static inline long k_mprotect(void *a, size_t len, int prot) { return ksys3(SYS_mprotect, a, len, prot); }
static inline long k_munmap(void *a, size_t len) { return ksys2(SYS_munmap, a, len); }
static inline long k_madvise(void *a, size_t len, int adv) { return ksys3(SYS_madvise, a, len, adv); }
static inline long k_nanosleep(const struct timespec *req, struct timespec *rem)
{
	return ksys2(SYS_nanosleep, req, rem);
}
static inline long k_clock_gettime(int clk, struct timespec *tp) { return ksys2(SYS_clock_gettime, clk, tp); }
static inline long k_sysinfo(struct sysinfo *si) { return ksys1(SYS_sysinfo, si); }
static inline long k_uname(struct utsname *u) { return ksys1(SYS_uname, u); }

/* k_mmap: the raw mmap; returns the address or -errno (test with kt_is_err). */
static inline long k_mmap(void *addr, size_t len, int prot, int flags, int fd, long off)
{
	return ksys6(SYS_mmap, addr, len, prot, flags, fd, off);
}
static inline int kt_is_err(long r) { return r < 0 && r > -4096; }

/* k_anon: a private anonymous mapping, or NULL. */
static inline void *k_anon(size_t len, int prot)
{
	long r = k_mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return kt_is_err(r) ? NULL : (void *)r;
}

/* k_exit: exit_group(code), nothing else (no atexit handlers, no stdio flush). */
static inline __attribute__((noreturn)) void k_exit(int code)
{
	for (;;)
		ksys1(SYS_exit_group, code);
}

/* ------------------------------------------------------------------------------------ */
/* Output                                                                                */
/* ------------------------------------------------------------------------------------ */

/* kt_write_all: write the whole buffer to fd (retrying short writes). */
static inline void kt_write_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		long r = k_write(fd, s, n);
		if (r <= 0)
			return;
		s += r;
		n -= (size_t)r;
	}
}

/* kout: printf to fd 1 with no user-space buffering (one write per call). */
static inline __attribute__((format(printf, 1, 2))) void kout(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof buf)
		n = sizeof buf - 1;
	kt_write_all(1, buf, (size_t)n);
}

static inline const char *kt_errname(long r)
{
	switch (-r) {
	case 0: return "0";
	case EPERM: return "-EPERM";
	case ENOENT: return "-ENOENT";
	case ESRCH: return "-ESRCH";
	case EINTR: return "-EINTR";
	case EIO: return "-EIO";
	case ENOEXEC: return "-ENOEXEC";
	case EBADF: return "-EBADF";
	case ECHILD: return "-ECHILD";
	case EAGAIN: return "-EAGAIN";
	case ENOMEM: return "-ENOMEM";
	case EACCES: return "-EACCES";
	case EFAULT: return "-EFAULT";
	case EBUSY: return "-EBUSY";
	case EEXIST: return "-EEXIST";
	case ENOTDIR: return "-ENOTDIR";
	case EISDIR: return "-EISDIR";
	case EINVAL: return "-EINVAL";
	case EMFILE: return "-EMFILE";
	case ENOTTY: return "-ENOTTY";
	case ENOSPC: return "-ENOSPC";
	case ERANGE: return "-ERANGE";
	case ENAMETOOLONG: return "-ENAMETOOLONG";
	case ENOSYS: return "-ENOSYS";
	case E2BIG: return "-E2BIG";
	default: break;
	}
	static char other[32];
	snprintf(other, sizeof other, "%ld", r);
	return other;
}

static inline const char *kt_signame(int sig)
{
	switch (sig) {
	case SIGTRAP: return "SIGTRAP";
	case SIGILL: return "SIGILL";
	case SIGBUS: return "SIGBUS";
	case SIGFPE: return "SIGFPE";
	case SIGKILL: return "SIGKILL";
	case SIGSEGV: return "SIGSEGV";
	case SIGABRT: return "SIGABRT";
	default: return "signal";
	}
}

/* kt_status_str: "exited with 3" / "killed by signal 11 (SIGSEGV)" into buf. */
static inline const char *kt_status_str(int st, char *buf, size_t n)
{
	if (WIFEXITED(st))
		snprintf(buf, n, "exited with %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(st), kt_signame(WTERMSIG(st)));
	else
		snprintf(buf, n, "raw status 0x%x", st);
	return buf;
}

/* ------------------------------------------------------------------------------------ */
/* Time                                                                                  */
/* ------------------------------------------------------------------------------------ */

static inline uint64_t kt_now_ns(void)
{
	struct timespec ts;
	if (k_clock_gettime(CLOCK_MONOTONIC, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static inline void kt_sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ULL), (long)(ns % 1000000000ULL) };
	k_nanosleep(&ts, NULL);
}

/* kt_sleep_until: sleep until CLOCK_MONOTONIC >= t (bounded by the caller's choice of t). */
static inline void kt_sleep_until(uint64_t t)
{
	for (;;) {
		uint64_t now = kt_now_ns();
		if (now == 0 || now >= t)
			return;
		kt_sleep_ns(t - now);
	}
}

static inline uint64_t kt_rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

/* ------------------------------------------------------------------------------------ */
/* The system: memkernel or Linux, free memory                                           */
/* ------------------------------------------------------------------------------------ */

static inline int kt_is_memkernel(void)
{
	struct utsname u;
	if (k_uname(&u) < 0)
		return 0;
	return strcmp(u.sysname, "memkernel") == 0;
}

/* kt_freeram: sysinfo().freeram * mem_unit in bytes (0 if sysinfo fails). */
static inline unsigned long kt_freeram(void)
{
	struct sysinfo si;
	memset(&si, 0, sizeof si);
	if (k_sysinfo(&si) < 0)
		return 0;
	return si.freeram * (si.mem_unit ? si.mem_unit : 1);
}

static inline unsigned long kt_totalram(void)
{
	struct sysinfo si;
	memset(&si, 0, sizeof si);
	if (k_sysinfo(&si) < 0)
		return 0;
	return si.totalram * (si.mem_unit ? si.mem_unit : 1);
}

/* ------------------------------------------------------------------------------------ */
/* Test harness                                                                          */
/* ------------------------------------------------------------------------------------ */

struct ktest {
	const char *name; /* "prefix::what_it_checks" */
	int (*fn)(void);  /* 0 = pass, else kt_fail(...) */
	int timeout_s;    /* 0 = default (60 s) */
};

static const char *kt_name = "?";  /* the running test (inherited by its process) */
static int kt_argc;
static char **kt_argv;
static char **kt_envp;
static const char *kt_prog = "?";  /* program name, for /bin/NAME */
static int kt_memkernel;
static char kt_note[256];          /* printed as "# note" right after "running N tests" */
static int kt_printed_failure;     /* set by kt_fail in the test process */

/* kt_fail: print "NAME ... FAILED: why" and return 1 (use as `return kt_fail(...)`). */
static inline __attribute__((format(printf, 1, 2))) int kt_fail(const char *fmt, ...)
{
	char why[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	kout("%s ... FAILED: %s\n", kt_name, why);
	kt_printed_failure = 1;
	return 1;
}

#define KT_CHECK(cond, ...)                       \
	do {                                      \
		if (!(cond))                      \
			return kt_fail(__VA_ARGS__); \
	} while (0)

/*
 * kt_self_path: a path to this program's own executable (for execve, or to read a file):
 * argv[0] if it names a path, else /bin/NAME, else /init (the program booted with
 * `run-qemu.sh --init`), whichever can be opened first.
 */
static inline const char *kt_self_path(void)
{
	static char buf[256];
	if (kt_argc > 0 && kt_argv[0] && strchr(kt_argv[0], '/'))
		return kt_argv[0];
	snprintf(buf, sizeof buf, "/bin/%s", kt_prog);
	long fd = k_open(buf, O_RDONLY);
	if (fd >= 0) {
		k_close((int)fd);
		return buf;
	}
	fd = k_open("/init", O_RDONLY);
	if (fd >= 0) {
		k_close((int)fd);
		return "/init";
	}
	return buf;
}

/* kt_reap: blocking wait4 for pid; returns wait4's result, status in *st. */
static inline long kt_reap(long pid, int *st)
{
	long r;
	do {
		r = k_wait4(pid, st, 0, NULL);
	} while (r == -EINTR);
	return r;
}

/*
 * kt_wait_timeout: wait for pid for at most timeout_ms, polling wait4(WNOHANG) with a
 * growing sleep. On timeout, SIGKILL it, reap it, and return 0 (status in *st).
 * Returns pid when it exited on its own, < 0 on a wait4 error.
 */
static inline long kt_wait_timeout(long pid, int *st, uint64_t timeout_ms)
{
	uint64_t start = kt_now_ns();
	uint64_t sleep = 20000; /* 20 us, doubling to 10 ms */
	for (;;) {
		long r = k_wait4(pid, st, WNOHANG, NULL);
		if (r == pid)
			return r;
		if (r == -EINVAL) /* no WNOHANG: fall back to a blocking wait */
			return kt_reap(pid, st);
		if (r < 0 && r != -EINTR)
			return r;
		if (kt_now_ns() - start > timeout_ms * 1000000ULL) {
			k_kill(pid, SIGKILL);
			kt_reap(pid, st);
			return 0;
		}
		kt_sleep_ns(sleep);
		if (sleep < 10000000)
			sleep *= 2;
	}
}

/*
 * kt_expect_exit: reap child pid and check it exited with `code`. Returns 0 or a failure
 * (printed with `what` as context).
 */
static inline int kt_expect_exit(long pid, int code, const char *what)
{
	int st = 0;
	char sb[64];
	long r = kt_reap(pid, &st);
	if (r != pid)
		return kt_fail("%s: wait4(%ld) returned %s", what, pid, kt_errname(r));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != code)
		return kt_fail("%s: child %s, expected exit %d", what,
			       kt_status_str(st, sb, sizeof sb), code);
	return 0;
}

/* kt_expect_signal: reap child pid and check it was killed by signal `sig`. */
static inline int kt_expect_signal(long pid, int sig, const char *what)
{
	int st = 0;
	char sb[64];
	long r = kt_reap(pid, &st);
	if (r != pid)
		return kt_fail("%s: wait4(%ld) returned %s", what, pid, kt_errname(r));
	if (!WIFSIGNALED(st) || WTERMSIG(st) != sig)
		return kt_fail("%s: child %s, expected signal %d (%s)", what,
			       kt_status_str(st, sb, sizeof sb), sig, kt_signame(sig));
	return 0;
}

/* kt_reap_orphans: as pid 1 (booted with --init), collect any reparented zombies. */
static inline void kt_reap_orphans(void)
{
	if (k_getpid() != 1)
		return;
	int st;
	while (k_wait4(-1, &st, WNOHANG, NULL) > 0)
		;
}

static inline int kt_warmup_fn(void) { return 0; }

/*
 * kt_run_one: run test t in a child process; returns 1 if it passed. `print` = 0 runs the
 * same code path silently (the warm-up, so that the harness's own first-touch faults of
 * stack, data and code happen before the baseline is taken).
 */
static inline int kt_run_one(const struct ktest *t, int print)
{
	char line[512];
	char sb[64];
	int st = 0;
	unsigned long before = kt_freeram();
	long pid = k_fork();
	if (pid == 0) {
		kt_name = t->name;
		kt_printed_failure = 0;
		int r = t->fn();
		if (r && !kt_printed_failure)
			kout("%s ... FAILED: the test returned %d\n", t->name, r);
		k_exit(r ? 1 : 0);
	}
	if (pid < 0) {
		snprintf(line, sizeof line, "%s ... FAILED: fork for the test process: %s\n", t->name,
			 kt_errname(pid));
		if (print)
			kt_write_all(1, line, strlen(line));
		return 0;
	}
	uint64_t timeout_ms = (uint64_t)(t->timeout_s > 0 ? t->timeout_s : 60) * 1000;
	long r = kt_wait_timeout(pid, &st, timeout_ms);
	kt_reap_orphans();
	unsigned long after = kt_freeram();
	int ok = 0;
	line[0] = 0;
	if (r == 0) {
		snprintf(line, sizeof line, "%s ... FAILED: timed out after %d s (killed)\n", t->name,
			 (int)(timeout_ms / 1000));
	} else if (r < 0) {
		snprintf(line, sizeof line, "%s ... FAILED: wait4 for the test process: %s\n", t->name,
			 kt_errname(r));
	} else if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		if (kt_memkernel && after != before) {
			long d = (long)after - (long)before;
			snprintf(line, sizeof line,
				 "%s ... FAILED: free memory %s by %ld pages (%lu -> %lu KiB) after the "
				 "test's processes were reaped\n",
				 t->name, d < 0 ? "down" : "up", (d < 0 ? -d : d) / 4096, before / 1024,
				 after / 1024);
		} else {
			snprintf(line, sizeof line, "%s ... ok\n", t->name);
			ok = 1;
		}
	} else if (WIFEXITED(st) && WEXITSTATUS(st) == 1) {
		/* the test printed its own FAILED line */
	} else {
		snprintf(line, sizeof line, "%s ... FAILED: test process %s\n", t->name,
			 kt_status_str(st, sb, sizeof sb));
	}
	if (print && line[0])
		kt_write_all(1, line, strlen(line));
	return ok;
}

/*
 * ktest_main: run the tests (all, or those whose name contains argv[2] when argv[1] is
 * "--only"), then the memory check; print the summary; return the exit code.
 */
static inline int ktest_main(const char *prog, const struct ktest *tests, int n, int argc,
			     char **argv, char **envp)
{
	kt_prog = prog;
	kt_argc = argc;
	kt_argv = argv;
	kt_envp = envp;
	kt_memkernel = kt_is_memkernel();
	const char *only = (argc > 2 && strcmp(argv[1], "--only") == 0) ? argv[2] : NULL;
	int count = 0;
	for (int i = 0; i < n; i++)
		if (!only || strstr(tests[i].name, only))
			count++;

	kout("running %d tests\n", count + 1);
	if (kt_note[0])
		kout("# %s\n", kt_note);

	/* Warm-up: the same fork/wait/format path, twice, before the baseline. */
	struct ktest warm = { "warmup", kt_warmup_fn, 0 };
	kt_run_one(&warm, 0);
	kt_run_one(&warm, 0);

	unsigned long base = kt_freeram();
	int passed = 0, failed = 0;
	for (int i = 0; i < n; i++) {
		if (only && !strstr(tests[i].name, only))
			continue;
		if (kt_run_one(&tests[i], 1))
			passed++;
		else
			failed++;
	}

	unsigned long end = kt_freeram();
	struct utsname u;
	memset(&u, 0, sizeof u);
	k_uname(&u);
	long d = (long)end - (long)base;
	kout("# memory: %s: free before the tests %lu KiB, after %lu KiB, delta %+ld KiB (%s)\n",
	     u.sysname, base / 1024, end / 1024, d / 1024,
	     kt_memkernel ? "must be 0 on memkernel" : "not enforced on this kernel");
	if (kt_memkernel && base == 0) {
		kout("memory::freeram_back_to_baseline ... FAILED: sysinfo() failed or reported no free memory\n");
		failed++;
	} else if (kt_memkernel && d != 0) {
		kout("memory::freeram_back_to_baseline ... FAILED: free memory %s by %ld pages\n",
		     d < 0 ? "down" : "up", (d < 0 ? -d : d) / 4096);
		failed++;
	} else {
		kout("memory::freeram_back_to_baseline ... ok\n");
		passed++;
	}
	kout("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

/* kt_launder: hide a value from the optimizer (e.g. a NULL pointer we mean to use). */
static inline void *kt_launder(void *p)
{
	__asm__ volatile("" : "+r"(p));
	return p;
}

/* kt_fill: write one 32-bit word per page of [p, p+len) with a value derived from the page. */
static inline void kt_fill(void *p, size_t len, uint32_t seed)
{
	for (size_t off = 0; off < len; off += KT_PAGE)
		*(volatile uint32_t *)((char *)p + off) = seed ^ (uint32_t)(off / KT_PAGE);
}

/* kt_check_fill: index of the first page not holding kt_fill(seed)'s value, or -1. */
static inline long kt_check_fill(const void *p, size_t len, uint32_t seed)
{
	for (size_t off = 0; off < len; off += KT_PAGE)
		if (*(const volatile uint32_t *)((const char *)p + off) != (seed ^ (uint32_t)(off / KT_PAGE)))
			return (long)(off / KT_PAGE);
	return -1;
}

#endif /* KTEST_H */
