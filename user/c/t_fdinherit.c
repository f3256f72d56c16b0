/*
 * t_fdinherit: file descriptors across fork, and their error cases.
 *   - open("/dev/console", O_WRONLY) gives a new fd (>= 3), and the number is reused after
 *     close (lowest free);
 *   - a child writes through the inherited fd and through its inherited stdout;
 *   - close in the child does not close the parent's fd, and close in the parent (while the
 *     child is alive) does not close the child's;
 *   - fork shares the open file (Linux semantics): the offset a child's read advances is
 *     the parent's offset too;
 *   - reading a file (this program's executable): ELF magic, read to EOF, same size twice;
 *   - open of a missing file is -ENOENT; close/read/write/writev of a bad fd is -EBADF;
 *     write to an O_RDONLY fd and read from an O_WRONLY fd are -EBADF;
 *   - 13 more fds at once, all distinct; an unknown ioctl fails without harm.
 * On a host where /dev/console is not writable, /dev/tty then /dev/null stand in (a "#" line
 * says which).
 */
#include "ktest.h"

static const char *g_console = "/dev/console";

static long open_console(void) { return k_open(g_console, O_WRONLY); }

static long open_self(void)
{
	long fd = k_open(kt_self_path(), O_RDONLY);
	if (fd == -ENOENT)
		fd = k_open("/bin/t_fdinherit", O_RDONLY);
	return fd;
}

static long write_str(int fd, const char *s) { return k_write(fd, s, strlen(s)); }

static int t_open_console(void)
{
	long fd = open_console();
	KT_CHECK(fd >= 3, "open(%s, O_WRONLY) returned %s", g_console, kt_errname(fd));
	KT_CHECK(k_close((int)fd) == 0, "close(%ld) failed", fd);
	long fd2 = open_console();
	KT_CHECK(fd2 == fd, "after close(%ld), open returned %ld, expected the lowest free fd %ld", fd, fd2, fd);
	k_close((int)fd2);
	return 0;
}

static int t_child_writes(void)
{
	long fd = open_console();
	KT_CHECK(fd >= 0, "open(%s) returned %s", g_console, kt_errname(fd));
	long pid = k_fork();
	if (pid == 0) {
		char msg[128];
		snprintf(msg, sizeof msg, "# fdinherit: the child writes through inherited fd %ld (%s)\n", fd,
			 g_console);
		if (write_str((int)fd, msg) != (long)strlen(msg))
			k_exit(2);
		snprintf(msg, sizeof msg, "# fdinherit: the child writes through its inherited stdout\n");
		if (write_str(1, msg) != (long)strlen(msg))
			k_exit(3);
		k_exit(0);
	}
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	int st = 0;
	kt_reap(pid, &st);
	KT_CHECK(!(WIFEXITED(st) && WEXITSTATUS(st) == 2), "the child's write to inherited fd %ld failed", fd);
	KT_CHECK(!(WIFEXITED(st) && WEXITSTATUS(st) == 3), "the child's write to stdout failed");
	KT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
	k_close((int)fd);
	return 0;
}

static int t_child_close(void)
{
	long fd = open_console();
	KT_CHECK(fd >= 0, "open(%s) returned %s", g_console, kt_errname(fd));
	long pid = k_fork();
	if (pid == 0) {
		if (k_close((int)fd) != 0)
			k_exit(2);
		if (k_close((int)fd) != -EBADF)
			k_exit(3);
		if (k_write((int)fd, "x", 1) != -EBADF)
			k_exit(4);
		k_exit(0);
	}
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	int st = 0;
	kt_reap(pid, &st);
	KT_CHECK(!(WIFEXITED(st) && WEXITSTATUS(st) == 2), "child: close of the inherited fd failed");
	KT_CHECK(!(WIFEXITED(st) && WEXITSTATUS(st) == 3), "child: second close is not -EBADF");
	KT_CHECK(!(WIFEXITED(st) && WEXITSTATUS(st) == 4), "child: write after close is not -EBADF");
	KT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
	const char *msg = "# fdinherit: the parent writes after the child closed its copy\n";
	long r = write_str((int)fd, msg);
	KT_CHECK(r == (long)strlen(msg), "parent's write after the child's close returned %s", kt_errname(r));
	KT_CHECK(k_close((int)fd) == 0, "parent's close failed");
	return 0;
}

/* The parent closes at once; the child writes at t0 + D (ordering as in t_cow). */
static int t_parent_close(void)
{
	uint64_t d = 100000000ULL;
	for (int attempt = 0; attempt < 5; attempt++, d *= 2) {
		long fd = open_console();
		KT_CHECK(fd >= 0, "open(%s) returned %s", g_console, kt_errname(fd));
		uint64_t t0 = kt_now_ns();
		long pid = k_fork();
		if (pid == 0) {
			kt_sleep_until(t0 + d);
			const char *msg = "# fdinherit: the child writes after the parent closed its copy\n";
			k_exit(write_str((int)fd, msg) == (long)strlen(msg) ? 0 : 2);
		}
		KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
		long c = k_close((int)fd);
		uint64_t tc = kt_now_ns();
		int st = 0;
		kt_reap(pid, &st);
		KT_CHECK(c == 0, "parent's close returned %s", kt_errname(c));
		KT_CHECK(!(WIFEXITED(st) && WEXITSTATUS(st) == 2), "the child's write failed after the parent's close");
		KT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
		if (tc <= t0 + d)
			return 0;
	}
	return kt_fail("the parent's close never finished within the delay");
}

static int t_shared_offset(void)
{
	long fd = open_self();
	KT_CHECK(fd >= 0, "open(own executable) returned %s", kt_errname(fd));
	unsigned char want[32], got[16];
	long fd2 = open_self();
	KT_CHECK(fd2 >= 0, "second open failed");
	KT_CHECK(k_read((int)fd2, want, 32) == 32, "read of 32 bytes failed");
	k_close((int)fd2);
	long pid = k_fork();
	if (pid == 0)
		k_exit(k_read((int)fd, got, 16) == 16 && memcmp(got, want, 16) == 0 ? 0 : 2);
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	int e = kt_expect_exit(pid, 0, "child reads the first 16 bytes");
	if (e)
		return e;
	long r = k_read((int)fd, got, 16);
	k_close((int)fd);
	KT_CHECK(r == 16, "parent's read returned %s", kt_errname(r));
	KT_CHECK(memcmp(got, want + 16, 16) == 0,
		 "after the child read 16 bytes, the parent did not continue at offset 16: the file offset is "
		 "not shared across fork (Linux shares the open file description)");
	return 0;
}

static int t_read_file(void)
{
	long sizes[2];
	for (int round = 0; round < 2; round++) {
		long fd = open_self();
		KT_CHECK(fd >= 0, "open(own executable) returned %s", kt_errname(fd));
		char buf[4096];
		long total = 0, r;
		while ((r = k_read((int)fd, buf, sizeof buf)) > 0) {
			if (total == 0)
				KT_CHECK(r >= 4 && memcmp(buf, "\177ELF", 4) == 0, "the file does not start with \\177ELF");
			total += r;
			KT_CHECK(total < 64L * 1024 * 1024, "no EOF after 64 MiB");
		}
		KT_CHECK(r == 0, "read returned %s before EOF", kt_errname(r));
		KT_CHECK(k_read((int)fd, buf, sizeof buf) == 0, "read at EOF is not 0 the second time");
		KT_CHECK(total > 4096, "file is only %ld bytes", total);
		sizes[round] = total;
		k_close((int)fd);
	}
	KT_CHECK(sizes[0] == sizes[1], "two reads of the file gave %ld and %ld bytes", sizes[0], sizes[1]);
	return 0;
}

static int t_missing(void)
{
	static const char *paths[] = { "/nonexistent", "/dev/nonexistent", "/bin/no_such_program" };
	for (int i = 0; i < 3; i++) {
		long r = k_open(paths[i], O_RDONLY);
		KT_CHECK(r == -ENOENT, "open(%s) returned %s, expected -ENOENT", paths[i], kt_errname(r));
	}
	return 0;
}

static int t_bad_fd(void)
{
	static const int fds[] = { -1, 100, 1000000, 0x7fffffff };
	char c = 0;
	struct iovec iov = { &c, 1 };
	for (int i = 0; i < 4; i++) {
		long r = k_close(fds[i]);
		KT_CHECK(r == -EBADF, "close(%d) returned %s, expected -EBADF", fds[i], kt_errname(r));
		r = k_read(fds[i], &c, 1);
		KT_CHECK(r == -EBADF, "read(%d) returned %s, expected -EBADF", fds[i], kt_errname(r));
		r = k_write(fds[i], &c, 1);
		KT_CHECK(r == -EBADF, "write(%d) returned %s, expected -EBADF", fds[i], kt_errname(r));
		r = k_writev(fds[i], &iov, 1);
		KT_CHECK(r == -EBADF, "writev(%d) returned %s, expected -EBADF", fds[i], kt_errname(r));
	}
	long fd = open_console();
	KT_CHECK(fd >= 0, "open(%s) failed", g_console);
	KT_CHECK(k_close((int)fd) == 0, "close failed");
	long r = k_close((int)fd);
	KT_CHECK(r == -EBADF, "second close(%ld) returned %s", fd, kt_errname(r));
	return 0;
}

static int t_wrong_direction(void)
{
	long fd = open_self();
	KT_CHECK(fd >= 0, "open(own executable) failed");
	long r = k_write((int)fd, "x", 1);
	k_close((int)fd);
	KT_CHECK(r == -EBADF, "write to an O_RDONLY fd returned %s, expected -EBADF", kt_errname(r));
	fd = open_console();
	KT_CHECK(fd >= 0, "open(%s) failed", g_console);
	char c;
	r = k_read((int)fd, &c, 1);
	k_close((int)fd);
	KT_CHECK(r == -EBADF, "read from an O_WRONLY fd returned %s, expected -EBADF", kt_errname(r));
	return 0;
}

static int t_many(void)
{
	enum { M = 13 };
	long fds[M];
	int n = 0, bad = 0;
	for (; n < M; n++) {
		fds[n] = open_console();
		if (fds[n] < 0)
			break;
	}
	for (int i = 0; i < n && !bad; i++)
		for (int j = 0; j < i; j++)
			if (fds[i] == fds[j])
				bad = kt_fail("open returned fd %ld twice", fds[i]);
	for (int i = 0; i < n; i++)
		if (k_close((int)fds[i]) != 0 && !bad)
			bad = kt_fail("close(%ld) failed", fds[i]);
	if (bad)
		return bad;
	KT_CHECK(n == M, "open #%d of %d failed: %s", n + 1, M, kt_errname(fds[n]));
	return 0;
}

static int t_unknown_ioctl(void)
{
	long fd = open_console();
	KT_CHECK(fd >= 0, "open(%s) failed", g_console);
	long r = k_ioctl((int)fd, 0x1234abcdUL, NULL);
	KT_CHECK(r < 0, "an unknown ioctl on %s returned %ld", g_console, r);
	const char *msg = "# fdinherit: the console still works after an unknown ioctl\n";
	long w = write_str((int)fd, msg);
	k_close((int)fd);
	KT_CHECK(w == (long)strlen(msg), "write after the ioctl returned %s", kt_errname(w));
	return 0;
}

static const struct ktest tests[] = {
	{ "fd::open_console_new_fd_reused_after_close", t_open_console, 0 },
	{ "fd::child_writes_inherited_fd_and_stdout", t_child_writes, 0 },
	{ "fd::child_close_leaves_parent_fd_open", t_child_close, 0 },
	{ "fd::parent_close_leaves_child_fd_open", t_parent_close, 0 },
	{ "fd::file_offset_shared_after_fork", t_shared_offset, 0 },
	{ "fd::read_own_executable_to_eof", t_read_file, 0 },
	{ "fd::open_missing_enoent", t_missing, 0 },
	{ "fd::bad_fd_ebadf", t_bad_fd, 0 },
	{ "fd::wrong_direction_ebadf", t_wrong_direction, 0 },
	{ "fd::thirteen_fds_at_once", t_many, 0 },
	{ "fd::unknown_ioctl_fails_harmlessly", t_unknown_ioctl, 0 },
};

int main(int argc, char **argv, char **envp)
{
	static const char *candidates[] = { "/dev/console", "/dev/tty", "/dev/null" };
	for (int i = 0; i < 3; i++) {
		long fd = k_open(candidates[i], O_WRONLY);
		if (fd >= 0) {
			k_close((int)fd);
			g_console = candidates[i];
			break;
		}
	}
	snprintf(kt_note, sizeof kt_note, "fdinherit: the console device is %s", g_console);
	return ktest_main("t_fdinherit", tests, sizeof tests / sizeof tests[0], argc, argv, envp);
}
