/*
 * t_abi: argument widths and error codes as Linux has them.
 *
 * ktest: host (passes on Linux itself too)
 *
 * Linux declares every system call with C types, and an argument declared `int` or
 * `unsigned int` (fds, flags, signal numbers, ioctl requests, wait options, advice, clock
 * ids, arch_prctl codes) is only the low 32 bits of its register: whatever the upper half
 * holds is ignored. musl relies on it: its ioctl(int fd, int req, ...) passes the request
 * as an int, so a request with bit 31 set (the dmirror ioctls, 0xC0284800...) arrives
 * sign-extended. Arguments declared `unsigned long` keep all 64 bits. Each check below
 * issues the raw syscall with garbage in the upper half of a 32-bit argument and expects
 * what the low half alone gives:
 *   - ioctl: libc's ioctl(1, TIOCGWINSZ) and the raw request 0xffffffff00005413 (and fd
 *     0x100000001) give the same answer (on memkernel fd 1 is the console: success; on a
 *     host whose stdout is not a tty: the same -ENOTTY); a dmirror request through libc
 *     (sign-extended) works (memkernel only: elsewhere there is no device);
 *   - close(0xffffffff00000000 | fd) closes fd; fd 0xffffffff and -1 are -EBADF;
 *   - write/writev to fd 0x100000001 write to stdout; read(0x100000000 | fd) reads fd;
 *   - open with flags 0x100000000 | O_RDONLY opens;
 *   - kill(getpid(), 0x100000000) is signal 0; pid 0x100000000 | pid is pid; signal
 *     0x100000000 | SIGKILL kills; 0x100000000 | 65 is -EINVAL;
 *   - wait4 with pid 0x100000000 | pid, pid 0xffffffff (-1) and options with upper bits;
 *   - exit_group(0x100000005) exits with 5; the syscall number is 32 bits too (getpid with
 *     0x100000000 added);
 *   - clock_gettime and arch_prctl with upper bits in the clock id and the code;
 *   - madvise(0x100000000 | MADV_DONTNEED) drops the page;
 *   - mprotect's prot is `unsigned long`: 0x100000000 | PROT_READ is -EINVAL and changes
 *     nothing; PROT_SEM is accepted (Linux's arch_validate_prot);
 *   - mmap: unknown flags (0x800000, bit 32) and unknown prot bits are ignored; map type
 *     0 or 4 is -EINVAL; an anonymous MAP_SHARED_VALIDATE is -EINVAL too (Linux validates
 *     flags for file mappings only); an offset that is not page aligned is -EINVAL; on a
 *     file fd (32 bits), MAP_SHARED_VALIDATE with an unknown flag is -EOPNOTSUPP, a closed
 *     fd -EBADF, and no device file here can be mapped (-ENODEV);
 *   - a full fd table: open is -EMFILE (on memkernel, with a dmirror file, whose release
 *     runs when the file is dropped); every fd can then be closed and reused.
 * reboot's 32-bit arguments are not checked: every valid command would act.
 */
#define ARCH_GET_FS 0x1003 /* asm/prctl.h, not in musl's headers */
#define PROT_SEM 0x8       /* asm-generic/mman-common.h, not in musl's headers */
#ifndef EOPNOTSUPP
#define EOPNOTSUPP 95
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif

#include "ktest.h"
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/uio.h>

#define HI 0x100000000UL          /* bit 32: garbage in the upper half */
#define HI_ALL 0xffffffff00000000UL /* the whole upper half */
#define UNKNOWN_MAP_FLAG 0x800000UL /* no MAP_* flag uses this bit */

/* The dmirror READ ioctl (Linux lib/test_hmm_uapi.h): _IOWR('H', 0x00, 40 bytes). */
struct dmirror_cmd {
	uint64_t addr, ptr, npages, cpages, faults;
};
#define DMIRROR_READ 0xC0284800U

static const char *errname(long r)
{
	if (r == -EOPNOTSUPP)
		return "-EOPNOTSUPP";
	if (r == -ENODEV)
		return "-ENODEV";
	return kt_errname(r);
}

/* libc_result: a libc call's result as 0 or -errno. */
static long libc_result(int r) { return r < 0 ? -errno : r; }

/*
 * open_device: a device file both systems have, read-only: /dev/null on Linux, else
 * /dev/console (memkernel has no /dev/null). Never a tty first: opening one could make it
 * the controlling terminal.
 */
static long open_device(const char **name)
{
	*name = "/dev/null";
	long fd = k_open(*name, O_RDONLY);
	if (fd == -ENOENT) {
		*name = "/dev/console";
		fd = k_open(*name, O_RDONLY);
	}
	return fd;
}

static long open_self(void) { return k_open(kt_self_path(), O_RDONLY); }

/* write_faults: 1 if a write to p kills a child with SIGSEGV, 0 if it works, -1 otherwise. */
static int write_faults(volatile char *p)
{
	long pid = k_fork();
	if (pid == 0) {
		*p = 1;
		k_exit(0);
	}
	if (pid < 0)
		return -1;
	int st = 0;
	kt_reap(pid, &st);
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV)
		return 1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int t_ioctl_tiocgwinsz(void)
{
	struct winsize libc_ws, raw_ws, hi_fd_ws;
	memset(&libc_ws, 0, sizeof libc_ws);
	memset(&raw_ws, 0, sizeof raw_ws);
	memset(&hi_fd_ws, 0, sizeof hi_fd_ws);
	long libc_r = libc_result(ioctl(1, TIOCGWINSZ, &libc_ws));
	long raw_r = ksys3(SYS_ioctl, 1, HI_ALL | TIOCGWINSZ, &raw_ws);
	long hi_fd_r = ksys3(SYS_ioctl, HI | 1, TIOCGWINSZ, &hi_fd_ws);
	kout("# abi: ioctl(1, TIOCGWINSZ): libc %s, request %#lx %s, fd %#lx %s\n", kt_errname(libc_r),
	     HI_ALL | TIOCGWINSZ, kt_errname(raw_r), HI | 1, kt_errname(hi_fd_r));
	KT_CHECK(!kt_memkernel || libc_r == 0, "libc ioctl(1, TIOCGWINSZ) on the console returned %s",
		 kt_errname(libc_r));
	KT_CHECK(raw_r == libc_r, "ioctl(1, %#lx) returned %s, but request 0x5413 gives %s", HI_ALL | TIOCGWINSZ,
		 kt_errname(raw_r), kt_errname(libc_r));
	KT_CHECK(hi_fd_r == libc_r, "ioctl(fd %#lx, TIOCGWINSZ) returned %s, but fd 1 gives %s", HI | 1,
		 kt_errname(hi_fd_r), kt_errname(libc_r));
	if (libc_r == 0) {
		/* a host pty may well report 0 x 0; the console says 24 x 80 */
		KT_CHECK(!kt_memkernel || (libc_ws.ws_row > 0 && libc_ws.ws_col > 0),
			 "TIOCGWINSZ gave %u rows, %u columns", libc_ws.ws_row, libc_ws.ws_col);
		KT_CHECK(memcmp(&libc_ws, &raw_ws, sizeof raw_ws) == 0 &&
				 memcmp(&libc_ws, &hi_fd_ws, sizeof hi_fd_ws) == 0,
			 "the three TIOCGWINSZ answers differ (%ux%u, %ux%u, %ux%u)", libc_ws.ws_row,
			 libc_ws.ws_col, raw_ws.ws_row, raw_ws.ws_col, hi_fd_ws.ws_row, hi_fd_ws.ws_col);
	}
	return 0;
}

/* The motivating case: musl sign-extends the dmirror requests (bit 31 set). */
static int t_ioctl_dmirror_through_libc(void)
{
	long fd = k_open("/dev/hmm_dmirror0", O_RDWR);
	if (fd < 0 && !kt_memkernel) {
		kout("# abi: no /dev/hmm_dmirror0 here (%s): nothing to check\n", kt_errname(fd));
		return 0;
	}
	KT_CHECK(fd >= 0, "open(/dev/hmm_dmirror0) returned %s", kt_errname(fd));
	uint32_t *page = k_anon(KT_PAGE, PROT_READ | PROT_WRITE);
	uint32_t *copy = k_anon(KT_PAGE, PROT_READ | PROT_WRITE);
	KT_CHECK(page && copy, "mmap failed");
	for (size_t i = 0; i < KT_PAGE / 4; i++)
		page[i] = 0xab000000u + (uint32_t)i;
	struct dmirror_cmd cmd = { (uint64_t)(uintptr_t)page, (uint64_t)(uintptr_t)copy, 1, 0, 0 };
	long r;
	do
		r = libc_result(ioctl((int)fd, (int)DMIRROR_READ, &cmd));
	while (r == -EINTR);
	KT_CHECK(r == 0, "libc ioctl(dmirror, READ = %#x, passed as an int) returned %s", DMIRROR_READ,
		 errname(r));
	KT_CHECK(memcmp(page, copy, KT_PAGE) == 0, "the device's copy of the page differs");
	memset(copy, 0, KT_PAGE);
	struct dmirror_cmd cmd2 = { (uint64_t)(uintptr_t)page, (uint64_t)(uintptr_t)copy, 1, 0, 0 };
	do
		r = ksys3(SYS_ioctl, fd, HI_ALL | DMIRROR_READ, &cmd2);
	while (r == -EINTR);
	KT_CHECK(r == 0, "ioctl(dmirror, %#lx) returned %s", HI_ALL | DMIRROR_READ, errname(r));
	KT_CHECK(memcmp(page, copy, KT_PAGE) == 0, "the device's second copy of the page differs");
	KT_CHECK(k_close((int)fd) == 0, "close(dmirror) failed");
	k_munmap(page, KT_PAGE);
	k_munmap(copy, KT_PAGE);
	return 0;
}

static int t_close_upper_bits(void)
{
	const char *name;
	long fd = open_device(&name);
	KT_CHECK(fd >= 3, "open(%s) returned %s", name, kt_errname(fd));
	long r = ksys1(SYS_close, HI_ALL | (unsigned long)fd);
	KT_CHECK(r == 0, "close(%#lx) returned %s, expected fd %ld closed", HI_ALL | (unsigned long)fd,
		 kt_errname(r), fd);
	r = k_close((int)fd);
	KT_CHECK(r == -EBADF, "close(%ld) after close(%#lx) returned %s, expected -EBADF", fd,
		 HI_ALL | (unsigned long)fd, kt_errname(r));
	long again = open_device(&name);
	KT_CHECK(again == fd, "reopening gave fd %ld, expected the freed fd %ld", again, fd);
	k_close((int)again);
	r = ksys1(SYS_close, 0xffffffffUL);
	KT_CHECK(r == -EBADF, "close(0xffffffff) returned %s, expected -EBADF", kt_errname(r));
	r = ksys1(SYS_close, -1L);
	KT_CHECK(r == -EBADF, "close(-1) returned %s, expected -EBADF", kt_errname(r));
	return 0;
}

static int t_read_write_upper_bits(void)
{
	const char *msg = "# abi: this line was written to fd 0x100000001\n";
	long r = ksys3(SYS_write, HI | 1, msg, strlen(msg));
	KT_CHECK(r == (long)strlen(msg), "write(%#lx) returned %s", HI | 1, kt_errname(r));
	const char *vmsg = "# abi: this line was written by writev to fd 0x100000001\n";
	struct iovec iov = { (void *)vmsg, strlen(vmsg) };
	r = ksys3(SYS_writev, HI | 1, &iov, 1);
	KT_CHECK(r == (long)strlen(vmsg), "writev(%#lx) returned %s", HI | 1, kt_errname(r));
	r = ksys3(SYS_write, 0xffffffffUL, msg, 1);
	KT_CHECK(r == -EBADF, "write(0xffffffff) returned %s, expected -EBADF", kt_errname(r));
	r = ksys3(SYS_write, -1L, msg, 1);
	KT_CHECK(r == -EBADF, "write(-1) returned %s, expected -EBADF", kt_errname(r));

	long fd = open_self();
	KT_CHECK(fd >= 0, "open(%s) returned %s", kt_self_path(), kt_errname(fd));
	char magic[4] = { 0 };
	r = ksys3(SYS_read, HI | (unsigned long)fd, magic, 4);
	KT_CHECK(r == 4, "read(%#lx, 4) returned %s", HI | (unsigned long)fd, kt_errname(r));
	KT_CHECK(memcmp(magic, "\177ELF", 4) == 0, "read(%#lx) did not read this program's ELF magic",
		 HI | (unsigned long)fd);
	k_close((int)fd);
	return 0;
}

static int t_open_flags_upper_bits(void)
{
	const char *path = kt_self_path();
	long fd = ksys3(SYS_open, path, HI | O_RDONLY, 0);
	KT_CHECK(fd >= 0, "open(%s, %#lx) returned %s", path, HI | O_RDONLY, kt_errname(fd));
	char c;
	long r = k_read((int)fd, &c, 1);
	KT_CHECK(r == 1, "read from the fd opened with flags %#lx returned %s", HI | O_RDONLY, kt_errname(r));
	k_close((int)fd);
	return 0;
}

static int t_kill_upper_bits(void)
{
	long me = k_getpid();
	long r = ksys2(SYS_kill, me, HI);
	KT_CHECK(r == 0, "kill(self, %#lx) returned %s, expected signal 0's success", HI, kt_errname(r));
	r = ksys2(SYS_kill, HI | (unsigned long)me, 0);
	KT_CHECK(r == 0, "kill(%#lx, 0) returned %s, expected pid %ld", HI | (unsigned long)me, kt_errname(r),
		 me);
	r = ksys2(SYS_kill, me, HI | 65);
	KT_CHECK(r == -EINVAL, "kill(self, %#lx) returned %s, expected signal 65's -EINVAL", HI | 65,
		 kt_errname(r));
	long pid = k_fork();
	if (pid == 0) {
		for (;;)
			kt_sleep_ns(1000000000ULL);
	}
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	r = ksys2(SYS_kill, HI_ALL | (unsigned long)pid, HI | SIGKILL);
	if (r != 0) {
		k_kill(pid, SIGKILL);
		kt_reap(pid, NULL);
		return kt_fail("kill(%#lx, %#lx) returned %s", HI_ALL | (unsigned long)pid, HI | SIGKILL,
			       kt_errname(r));
	}
	return kt_expect_signal(pid, SIGKILL, "child sent signal 0x100000009");
}

static int t_wait4_upper_bits(void)
{
	long pid = k_fork();
	if (pid == 0)
		k_exit(7);
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	int st = 0;
	long r = ksys4(SYS_wait4, HI | (unsigned long)pid, &st, HI, NULL);
	if (r != pid)
		kt_reap(pid, &st);
	KT_CHECK(r == pid, "wait4(%#lx, options %#lx) returned %s, expected pid %ld", HI | (unsigned long)pid, HI,
		 kt_errname(r), pid);
	KT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7, "status 0x%x, expected exit 7", st);

	/* pid 0xffffffff is -1 (any child); WNOHANG with garbage above it */
	pid = k_fork();
	if (pid == 0) {
		for (;;)
			kt_sleep_ns(1000000000ULL);
	}
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	r = ksys4(SYS_wait4, 0xffffffffUL, &st, HI_ALL | WNOHANG, NULL);
	k_kill(pid, SIGKILL);
	long reaped = ksys4(SYS_wait4, 0xffffffffUL, &st, HI_ALL, NULL);
	if (reaped != pid)
		kt_reap(pid, &st);
	KT_CHECK(r == 0, "wait4(0xffffffff, options %#lx) with a running child returned %s, expected 0",
		 HI_ALL | WNOHANG, kt_errname(r));
	KT_CHECK(reaped == pid, "wait4(0xffffffff, options %#lx) returned %s, expected the killed child %ld",
		 HI_ALL, kt_errname(reaped), pid);
	KT_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status 0x%x, expected SIGKILL", st);
	r = ksys4(SYS_wait4, 0xffffffffUL, &st, HI | WNOHANG, NULL);
	KT_CHECK(r == -ECHILD, "wait4 with no children returned %s, expected -ECHILD", kt_errname(r));
	return 0;
}

static int t_exit_and_number_upper_bits(void)
{
	long pid = k_fork();
	if (pid == 0) {
		for (;;)
			ksys1(SYS_exit_group, HI | 5);
	}
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	int e = kt_expect_exit(pid, 5, "exit_group(0x100000005)");
	if (e)
		return e;
	long r = ksys0(HI | SYS_getpid);
	KT_CHECK(r == k_getpid(), "syscall %#lx returned %s, expected getpid's %ld", HI | SYS_getpid,
		 kt_errname(r), k_getpid());
	r = ksys0(HI_ALL | SYS_getppid);
	KT_CHECK(r == k_getppid(), "syscall %#lx returned %s, expected getppid's %ld", HI_ALL | SYS_getppid,
		 kt_errname(r), k_getppid());
	return 0;
}

static int t_clock_arch_prctl_upper_bits(void)
{
	struct timespec ts = { -1, -1 };
	long r = ksys2(SYS_clock_gettime, HI | CLOCK_MONOTONIC, &ts);
	KT_CHECK(r == 0, "clock_gettime(%#lx) returned %s", HI | CLOCK_MONOTONIC, kt_errname(r));
	KT_CHECK(ts.tv_sec >= 0 && ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000, "tv_sec %ld tv_nsec %ld",
		 (long)ts.tv_sec, ts.tv_nsec);
	unsigned long fs = 0, tp;
	__asm__ volatile("movq %%fs:0, %0" : "=r"(tp)); /* musl keeps the thread pointer at %fs:0 */
	r = ksys2(SYS_arch_prctl, HI | ARCH_GET_FS, &fs);
	KT_CHECK(r == 0, "arch_prctl(%#lx) returned %s", HI | ARCH_GET_FS, kt_errname(r));
	KT_CHECK(fs == tp, "arch_prctl(ARCH_GET_FS) gave %#lx, the thread pointer is %#lx", fs, tp);
	return 0;
}

static int t_madvise_upper_bits(void)
{
	char *p = k_anon(KT_PAGE, PROT_READ | PROT_WRITE);
	KT_CHECK(p, "mmap failed");
	p[0] = 42;
	long r = ksys3(SYS_madvise, p, KT_PAGE, HI | MADV_DONTNEED);
	KT_CHECK(r == 0, "madvise(%#lx) returned %s", HI | MADV_DONTNEED, kt_errname(r));
	KT_CHECK(p[0] == 0, "after madvise(%#lx) the page still holds %d, expected MADV_DONTNEED's zero",
		 HI | MADV_DONTNEED, p[0]);
	r = ksys3(SYS_madvise, p, KT_PAGE, HI_ALL | MADV_WILLNEED);
	KT_CHECK(r == 0, "madvise(%#lx) returned %s", HI_ALL | MADV_WILLNEED, kt_errname(r));
	r = ksys3(SYS_madvise, p, KT_PAGE, HI | 77);
	KT_CHECK(r == -EINVAL, "madvise(%#lx) returned %s, expected advice 77's -EINVAL", HI | 77, kt_errname(r));
	k_munmap(p, KT_PAGE);
	return 0;
}

static int t_mprotect_prot_is_unsigned_long(void)
{
	char *p = k_anon(KT_PAGE, PROT_READ | PROT_WRITE);
	KT_CHECK(p, "mmap failed");
	p[0] = 1;
	long r = ksys3(SYS_mprotect, p, KT_PAGE, HI | PROT_READ);
	KT_CHECK(r == -EINVAL, "mprotect(%#lx) returned %s, expected -EINVAL (prot is unsigned long)",
		 HI | PROT_READ, kt_errname(r));
	KT_CHECK(write_faults(p) == 0, "the page is no longer writable after a rejected mprotect");
	r = k_mprotect(p, KT_PAGE, PROT_READ | PROT_SEM);
	KT_CHECK(r == 0, "mprotect(PROT_READ | PROT_SEM) returned %s", kt_errname(r));
	KT_CHECK(write_faults(p) == 1, "a write to a PROT_READ | PROT_SEM page did not fault");
	KT_CHECK(p[0] == 1, "the page lost its data");
	k_munmap(p, KT_PAGE);
	return 0;
}

static int t_mmap_unknown_bits_ignored(void)
{
	static const struct {
		unsigned long prot, flags;
		const char *what;
	} ok[] = {
		{ PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | UNKNOWN_MAP_FLAG, "private, flag 0x800000" },
		{ PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | UNKNOWN_MAP_FLAG, "shared, flag 0x800000" },
		{ PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | HI, "private, flag bit 32" },
		{ PROT_READ | PROT_WRITE | HI, MAP_PRIVATE | MAP_ANONYMOUS, "prot bit 32" },
		{ PROT_READ | PROT_WRITE | PROT_SEM | 0x10, MAP_PRIVATE | MAP_ANONYMOUS, "prot 0x1b" },
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		long r = ksys6(SYS_mmap, 0, KT_PAGE, ok[i].prot, ok[i].flags, -1, 0);
		KT_CHECK(!kt_is_err(r), "mmap(%s: prot %#lx, flags %#lx) returned %s, expected the bits ignored",
			 ok[i].what, ok[i].prot, ok[i].flags, errname(r));
		volatile char *p = (volatile char *)r;
		p[0] = 5; /* read-write, as the known bits say */
		KT_CHECK(p[0] == 5, "mmap(%s): the page does not hold what was written", ok[i].what);
		k_munmap((void *)r, KT_PAGE);
	}
	long r = ksys6(SYS_mmap, 0, KT_PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, KT_PAGE);
	KT_CHECK(!kt_is_err(r), "mmap(anonymous, offset 4096) returned %s", errname(r));
	k_munmap((void *)r, KT_PAGE);
	return 0;
}

static int t_mmap_map_type_and_offset(void)
{
	static const struct {
		unsigned long flags, off;
		const char *what;
	} bad[] = {
		{ MAP_ANONYMOUS, 0, "map type 0" },
		{ 0x4 | MAP_ANONYMOUS, 0, "map type 4" },
		{ MAP_SHARED_VALIDATE | MAP_ANONYMOUS, 0, "anonymous MAP_SHARED_VALIDATE" },
		{ MAP_SHARED_VALIDATE | MAP_ANONYMOUS | UNKNOWN_MAP_FLAG, 0,
		  "anonymous MAP_SHARED_VALIDATE, flag 0x800000" },
		{ MAP_PRIVATE | MAP_ANONYMOUS, 100, "offset 100" },
		{ MAP_PRIVATE | MAP_ANONYMOUS, HI | 8, "offset 0x100000008" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		long r = ksys6(SYS_mmap, 0, KT_PAGE, PROT_READ, bad[i].flags, -1, bad[i].off);
		if (!kt_is_err(r))
			k_munmap((void *)r, KT_PAGE);
		KT_CHECK(r == -EINVAL, "mmap(%s: flags %#lx, offset %#lx) returned %s, expected -EINVAL",
			 bad[i].what, bad[i].flags, bad[i].off, errname(r));
	}
	return 0;
}

static int t_mmap_file_validate(void)
{
	const char *name;
	long fd = open_device(&name);
	KT_CHECK(fd >= 0, "open(%s) returned %s", name, kt_errname(fd));
	static const struct {
		unsigned long flags, fd_bits;
		long want;
		const char *what;
	} cases[] = {
		{ MAP_SHARED_VALIDATE | UNKNOWN_MAP_FLAG, 0, -EOPNOTSUPP, "MAP_SHARED_VALIDATE, flag 0x800000" },
		{ MAP_SHARED_VALIDATE | HI, 0, -EOPNOTSUPP, "MAP_SHARED_VALIDATE, flag bit 32" },
		{ MAP_SHARED_VALIDATE | UNKNOWN_MAP_FLAG, HI, -EOPNOTSUPP,
		  "MAP_SHARED_VALIDATE, flag 0x800000, fd with bit 32" },
		{ MAP_SHARED_VALIDATE, 0, -ENODEV, "MAP_SHARED_VALIDATE" },
		{ MAP_SHARED | UNKNOWN_MAP_FLAG, 0, -ENODEV, "MAP_SHARED, flag 0x800000" },
		{ MAP_PRIVATE, 0, -ENODEV, "MAP_PRIVATE" },
		{ 0, 0, -EINVAL, "map type 0" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		unsigned long f = cases[i].fd_bits | (unsigned long)fd;
		long r = ksys6(SYS_mmap, 0, KT_PAGE, PROT_READ, cases[i].flags, f, 0);
		if (!kt_is_err(r))
			k_munmap((void *)r, KT_PAGE);
		KT_CHECK(r == cases[i].want, "mmap(%s: flags %#lx, fd %#lx) returned %s, expected %s", cases[i].what,
			 cases[i].flags, f, errname(r), errname(cases[i].want));
	}
	k_close((int)fd);
	long r = ksys6(SYS_mmap, 0, KT_PAGE, PROT_READ, MAP_SHARED_VALIDATE | UNKNOWN_MAP_FLAG, fd, 0);
	KT_CHECK(r == -EBADF, "mmap of the closed fd %ld returned %s, expected -EBADF", fd, errname(r));
	return 0;
}

/*
 * Fill the fd table, then open once more: -EMFILE. On memkernel that last open is a
 * dmirror, so the file the kernel had to give up is dropped (its release runs) on the
 * EMFILE path; on Linux the limit is lowered to 64 first (this test runs in a child of
 * its own).
 */
static int t_emfile(void)
{
	enum { MAX = 1100 };
	static int fds[MAX];
	int n = 0;
	if (!kt_memkernel) {
		struct rlimit rl = { 64, 64 };
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
			kout("# abi: setrlimit(RLIMIT_NOFILE, 64) failed: nothing to check\n");
			return 0;
		}
	}
	const char *name;
	long last;
	for (;;) {
		last = open_device(&name);
		if (last < 0)
			break;
		if (n == MAX) {
			k_close((int)last);
			break;
		}
		fds[n++] = (int)last;
	}
	long extra = kt_memkernel ? k_open("/dev/hmm_dmirror0", O_RDWR) : open_device(&name);
	if (extra >= 0)
		fds[n++] = (int)extra;
	const char *extra_name = kt_memkernel ? "/dev/hmm_dmirror0" : name;
	long closed = 0;
	for (int i = 0; i < n; i++)
		closed += k_close(fds[i]) == 0;
	KT_CHECK(last == -EMFILE, "after %d opens of %s, open returned %s, expected -EMFILE", n, name,
		 kt_errname(last));
	KT_CHECK(extra == -EMFILE, "open(%s) with a full table returned %s, expected -EMFILE", extra_name,
		 errname(extra));
	KT_CHECK(closed == n, "only %ld of the %d fds could be closed", closed, n);
	long fd = open_device(&name);
	KT_CHECK(fd >= 3, "open(%s) after closing them returned %s", name, kt_errname(fd));
	k_close((int)fd);
	return 0;
}

static const struct ktest tests[] = {
	{ "abi::ioctl_tiocgwinsz_libc_and_upper_bits_agree", t_ioctl_tiocgwinsz, 0 },
	{ "abi::ioctl_dmirror_request_sign_extended_by_libc", t_ioctl_dmirror_through_libc, 0 },
	{ "abi::close_fd_upper_bits_ignored_negative_ebadf", t_close_upper_bits, 0 },
	{ "abi::read_write_writev_fd_upper_bits_ignored", t_read_write_upper_bits, 0 },
	{ "abi::open_flags_upper_bits_ignored", t_open_flags_upper_bits, 0 },
	{ "abi::kill_pid_and_signal_upper_bits_ignored", t_kill_upper_bits, 0 },
	{ "abi::wait4_pid_and_options_upper_bits_ignored", t_wait4_upper_bits, 0 },
	{ "abi::exit_code_and_syscall_number_upper_bits_ignored", t_exit_and_number_upper_bits, 0 },
	{ "abi::clock_id_and_arch_prctl_code_upper_bits_ignored", t_clock_arch_prctl_upper_bits, 0 },
	{ "abi::madvise_advice_upper_bits_ignored", t_madvise_upper_bits, 0 },
	{ "abi::mprotect_prot_upper_bits_einval", t_mprotect_prot_is_unsigned_long, 0 },
	{ "abi::mmap_unknown_flags_and_prot_ignored", t_mmap_unknown_bits_ignored, 0 },
	{ "abi::mmap_bad_map_type_or_offset_einval", t_mmap_map_type_and_offset, 0 },
	{ "abi::mmap_file_shared_validate_eopnotsupp_enodev_ebadf", t_mmap_file_validate, 0 },
	{ "abi::full_fd_table_emfile_then_reusable", t_emfile, 0 },
};

int main(int argc, char **argv, char **envp)
{
	/* The dmirror driver may set itself up on first open: do that before the baselines. */
	long fd = k_open("/dev/hmm_dmirror0", O_RDWR);
	if (fd >= 0)
		k_close((int)fd);
	return ktest_main("t_abi", tests, sizeof tests / sizeof tests[0], argc, argv, envp);
}
