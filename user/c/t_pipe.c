/*
 * t_pipe - pipes and descriptors as Linux has them: pipe/pipe2, dup/dup2/dup3, fcntl,
 * close-on-exec, end of file, EPIPE and SIGPIPE, O_NONBLOCK, poll, a read cut short by
 * a signal, and a pipeline of two programs.
 *
 * ktest: host (runs on Linux too, same expected output)
 * ktest: libc=musl,glibc (built twice: t_pipe with musl, t_pipe_glibc with glibc)
 *
 *   round_trip               bytes in, the same bytes out; fstat says FIFO; lseek ESPIPE
 *   eof_once_writers_close   200 KiB through a 64 KiB pipe from a child; then read() = 0
 *   epipe_and_sigpipe        no reader: write fails with EPIPE (SIGPIPE ignored) or the
 *                            writer dies of SIGPIPE (default action)
 *   nonblock_fills_64k       O_NONBLOCK: EAGAIN when empty, 65536 bytes fit, then EAGAIN;
 *                            F_GETFL/F_SETFL
 *   dup_family_and_cloexec   dup, dup2 (same fd, replacing an open one), dup3 (EINVAL),
 *                            F_DUPFD, FD_CLOEXEC; execve closes exactly the cloexec fds
 *   poll_sees_data_and_hangup POLLIN, POLLHUP, POLLOUT, POLLERR
 *   signal_interrupts_read   a read of an empty pipe ends with EINTR when SIGALRM is handled
 *   pipeline_of_two_programs writer | reader through dup2 onto stdin/stdout and execve
 */
#define _GNU_SOURCE
#include "ktest.h"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static char self_path[256];

static int t_round_trip(void)
{
	int fds[2];
	KT_CHECK(pipe(fds) == 0, "pipe: %s", strerror(errno));
	KT_CHECK(write(fds[1], "hello, pipe", 11) == 11, "write: %s", strerror(errno));
	char buf[32] = { 0 };
	KT_CHECK(read(fds[0], buf, sizeof buf) == 11 && memcmp(buf, "hello, pipe", 11) == 0, "read back %s",
		 buf);
	struct stat st;
	KT_CHECK(fstat(fds[0], &st) == 0 && S_ISFIFO(st.st_mode), "fstat: not a FIFO (mode %o)", st.st_mode);
	KT_CHECK(lseek(fds[0], 0, SEEK_SET) == -1 && errno == ESPIPE, "lseek on a pipe: %s", strerror(errno));
	KT_CHECK(write(fds[0], "x", 1) == -1 && errno == EBADF, "write to the read end: %s", strerror(errno));
	close(fds[0]);
	close(fds[1]);
	return 0;
}

#define BIG (200 * 1024)

static int t_eof(void)
{
	int fds[2];
	KT_CHECK(pipe(fds) == 0, "pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		static char chunk[3000];
		size_t sent = 0;
		while (sent < BIG) {
			size_t n = BIG - sent < sizeof chunk ? BIG - sent : sizeof chunk;
			for (size_t i = 0; i < n; i++)
				chunk[i] = (char)((sent + i) * 7);
			ssize_t w = write(fds[1], chunk, n);
			if (w <= 0)
				_exit(1);
			sent += (size_t)w;
		}
		_exit(0);
	}
	close(fds[1]);
	static char buf[5000];
	size_t got = 0;
	int ok = 1;
	ssize_t r;
	while ((r = read(fds[0], buf, sizeof buf)) > 0) {
		for (ssize_t i = 0; i < r; i++)
			ok &= buf[i] == (char)((got + (size_t)i) * 7);
		got += (size_t)r;
	}
	int st = 0;
	waitpid(pid, &st, 0);
	kout("# %zu bytes through the pipe, in order: %s; then read() = %zd\n", got, ok ? "yes" : "no", r);
	KT_CHECK(got == BIG && ok, "got %zu bytes (want %d), in order: %d", got, BIG, ok);
	KT_CHECK(r == 0, "read at the end: %zd (%s), want 0", r, strerror(errno));
	KT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the writer failed");
	close(fds[0]);
	return 0;
}

static int t_epipe(void)
{
	int fds[2];
	KT_CHECK(pipe(fds) == 0, "pipe: %s", strerror(errno));
	close(fds[0]);
	signal(SIGPIPE, SIG_IGN);
	ssize_t w = write(fds[1], "x", 1);
	int e = errno;
	signal(SIGPIPE, SIG_DFL);
	KT_CHECK(w == -1 && e == EPIPE, "write with no reader: %zd (%s), want EPIPE", w, strerror(e));
	pid_t pid = fork();
	if (pid == 0) {
		write(fds[1], "x", 1);
		_exit(0);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	char sb[64];
	kout("# no reader: EPIPE with SIGPIPE ignored; with the default action the writer %s\n",
	     kt_status_str(st, sb, sizeof sb));
	KT_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGPIPE, "the writer was not killed by SIGPIPE");
	close(fds[1]);
	return 0;
}

static int t_nonblock(void)
{
	int fds[2];
	KT_CHECK(pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0, "pipe2: %s", strerror(errno));
	char c;
	KT_CHECK(read(fds[0], &c, 1) == -1 && errno == EAGAIN, "read of an empty O_NONBLOCK pipe: %s",
		 strerror(errno));
	static char page[4096];
	size_t total = 0;
	ssize_t w;
	while ((w = write(fds[1], page, sizeof page)) > 0)
		total += (size_t)w;
	int e = errno;
	kout("# O_NONBLOCK: %zu bytes fit, then %s\n", total, strerror(e));
	KT_CHECK(total == 65536 && e == EAGAIN, "%zu bytes fit (want 65536), then %s", total, strerror(e));
	int fl = fcntl(fds[1], F_GETFL);
	KT_CHECK(fl >= 0 && (fl & O_NONBLOCK) && (fl & O_ACCMODE) == O_WRONLY, "F_GETFL: %#x", fl);
	KT_CHECK(fcntl(fds[1], F_SETFL, fl & ~O_NONBLOCK) == 0, "F_SETFL: %s", strerror(errno));
	KT_CHECK(!(fcntl(fds[1], F_GETFL) & O_NONBLOCK), "O_NONBLOCK still set");
	KT_CHECK(fcntl(fds[0], F_GETFD) == FD_CLOEXEC, "pipe2(O_CLOEXEC) without FD_CLOEXEC");
	close(fds[0]);
	close(fds[1]);
	return 0;
}

/* Run by the exec'd copy: exit 0 if `open_fd` is open and `closed_fd` is not. */
static int check_fds(int open_fd, int closed_fd)
{
	int a = fcntl(open_fd, F_GETFD) >= 0;
	int b = fcntl(closed_fd, F_GETFD) == -1 && errno == EBADF;
	return a && b ? 0 : 1 + a * 2 + b * 4;
}

static int t_dup(void)
{
	int fds[2];
	KT_CHECK(pipe(fds) == 0, "pipe: %s", strerror(errno));
	int d = dup(fds[1]);
	KT_CHECK(d > fds[1], "dup: %d (%s)", d, strerror(errno));
	KT_CHECK(dup2(d, d) == d, "dup2(fd, fd) on an open fd: %s", strerror(errno));
	KT_CHECK(dup3(d, d, 0) == -1 && errno == EINVAL, "dup3(fd, fd): %s, want EINVAL", strerror(errno));
	/* The raw call: musl's dup3 turns flags without O_CLOEXEC into a dup2. */
	KT_CHECK(syscall(SYS_dup3, d, 20, 1234) == -1 && errno == EINVAL, "dup3 with a bad flag: %s",
		 strerror(errno));
	KT_CHECK(dup2(fds[0], 20) == 20 && dup2(d, 20) == 20, "dup2 over an open fd: %s", strerror(errno));
	KT_CHECK(write(20, "via 20", 6) == 6, "write through the dup2'd fd: %s", strerror(errno));
	char buf[8] = { 0 };
	KT_CHECK(read(fds[0], buf, sizeof buf) == 6 && memcmp(buf, "via 20", 6) == 0, "read %s", buf);
	KT_CHECK(dup2(fds[0], 64000) == -1 && errno == EBADF, "dup2 to a huge fd: %s", strerror(errno));
	int c = fcntl(fds[1], F_DUPFD_CLOEXEC, 30);
	KT_CHECK(c >= 30 && fcntl(c, F_GETFD) == FD_CLOEXEC, "F_DUPFD_CLOEXEC: %d", c);
	int k = fcntl(fds[1], F_DUPFD, 40);
	KT_CHECK(k >= 40 && fcntl(k, F_GETFD) == 0, "F_DUPFD: %d", k);
	KT_CHECK(fcntl(k, F_SETFD, FD_CLOEXEC) == 0 && fcntl(k, F_GETFD) == FD_CLOEXEC, "F_SETFD");
	KT_CHECK(fcntl(k, F_SETFD, 0) == 0, "F_SETFD 0");
	pid_t pid = fork();
	if (pid == 0) {
		char a[16], b[16];
		snprintf(a, sizeof a, "%d", k);
		snprintf(b, sizeof b, "%d", c);
		char *argv[] = { self_path, "--check-fds", a, b, NULL };
		execv(self_path, argv);
		_exit(99);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	kout("# after execve: fd %d (no FD_CLOEXEC) open, fd %d (FD_CLOEXEC) closed: exit status %d\n", k, c,
	     WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	KT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "execve kept or closed the wrong fds (status %#x)", st);
	close(c);
	close(k);
	close(20);
	close(d);
	close(fds[0]);
	close(fds[1]);
	return 0;
}

static int t_poll(void)
{
	int fds[2];
	KT_CHECK(pipe(fds) == 0, "pipe: %s", strerror(errno));
	struct pollfd p[2] = { { fds[0], POLLIN, 0 }, { fds[1], POLLOUT, 0 } };
	KT_CHECK(poll(p, 2, 0) == 1 && p[0].revents == 0 && p[1].revents == POLLOUT, "empty: %#x %#x",
		 p[0].revents, p[1].revents);
	write(fds[1], "z", 1);
	KT_CHECK(poll(p, 1, 0) == 1 && p[0].revents == POLLIN, "with data: %#x", p[0].revents);
	close(fds[1]);
	KT_CHECK(poll(p, 1, 0) == 1 && (p[0].revents & POLLHUP), "no writer: %#x", p[0].revents);
	close(fds[0]);
	KT_CHECK(pipe(fds) == 0, "pipe: %s", strerror(errno));
	close(fds[0]);
	struct pollfd q = { fds[1], POLLOUT, 0 };
	KT_CHECK(poll(&q, 1, 0) == 1 && (q.revents & POLLERR), "no reader: %#x", q.revents);
	close(fds[1]);
	kout("# poll: POLLOUT when empty, POLLIN with data, POLLHUP without writer, POLLERR without reader\n");
	return 0;
}

static void on_alarm(int sig) { (void)sig; }

static int t_interrupted(void)
{
	int fds[2];
	KT_CHECK(pipe(fds) == 0, "pipe: %s", strerror(errno));
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm; /* no SA_RESTART */
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = { { 0, 0 }, { 0, 50000 } };
	setitimer(ITIMER_REAL, &it, NULL);
	char c;
	uint64_t t0 = kt_now_ns();
	ssize_t r = read(fds[0], &c, 1);
	int e = errno;
	kout("# read of an empty pipe with a 50 ms SIGALRM: %zd (%s) after %llu ms\n", r, strerror(e),
	     (unsigned long long)((kt_now_ns() - t0) / 1000000));
	signal(SIGALRM, SIG_DFL);
	KT_CHECK(r == -1 && e == EINTR, "read: %zd (%s), want EINTR", r, strerror(e));
	close(fds[0]);
	close(fds[1]);
	return 0;
}

/* --emit N: write N bytes of a pattern to stdout. --count: read stdin, exit(count % 251). */
static int emit(long n)
{
	static char chunk[1000];
	for (long done = 0; done < n;) {
		long k = n - done < (long)sizeof chunk ? n - done : (long)sizeof chunk;
		for (long i = 0; i < k; i++)
			chunk[i] = (char)('a' + (done + i) % 26);
		ssize_t w = write(1, chunk, (size_t)k);
		if (w <= 0)
			return 1;
		done += w;
	}
	return 0;
}

static int count_stdin(void)
{
	static char buf[4096];
	long total = 0, bad = 0;
	ssize_t r;
	while ((r = read(0, buf, sizeof buf)) > 0) {
		for (ssize_t i = 0; i < r; i++)
			bad += buf[i] != (char)('a' + (total + i) % 26);
		total += r;
	}
	return bad ? 250 : (int)(total % 251);
}

static int t_pipeline(void)
{
	int fds[2];
	KT_CHECK(pipe(fds) == 0, "pipe: %s", strerror(errno));
	const long n = 123456;
	pid_t w = fork();
	if (w == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		char arg[32];
		snprintf(arg, sizeof arg, "%ld", n);
		char *argv[] = { self_path, "--emit", arg, NULL };
		execv(self_path, argv);
		_exit(99);
	}
	pid_t r = fork();
	if (r == 0) {
		dup2(fds[0], 0);
		close(fds[0]);
		close(fds[1]);
		char *argv[] = { self_path, "--count", NULL };
		execv(self_path, argv);
		_exit(99);
	}
	close(fds[0]);
	close(fds[1]);
	int sw = 0, sr = 0;
	waitpid(w, &sw, 0);
	waitpid(r, &sr, 0);
	kout("# \"t_pipe --emit %ld | t_pipe --count\": writer exit %d, reader exit %d (want %ld)\n", n,
	     WIFEXITED(sw) ? WEXITSTATUS(sw) : -1, WIFEXITED(sr) ? WEXITSTATUS(sr) : -1, n % 251);
	KT_CHECK(WIFEXITED(sw) && WEXITSTATUS(sw) == 0, "the writer failed");
	KT_CHECK(WIFEXITED(sr) && WEXITSTATUS(sr) == n % 251, "the reader counted wrong");
	return 0;
}

static const struct ktest tests[] = {
	{ "pipe::round_trip", t_round_trip, 0 },
	{ "pipe::eof_once_writers_close", t_eof, 0 },
	{ "pipe::epipe_and_sigpipe", t_epipe, 0 },
	{ "pipe::nonblock_fills_64k", t_nonblock, 0 },
	{ "pipe::dup_family_and_cloexec", t_dup, 0 },
	{ "pipe::poll_sees_data_and_hangup", t_poll, 0 },
	{ "pipe::signal_interrupts_read", t_interrupted, 0 },
	{ "pipe::pipeline_of_two_programs", t_pipeline, 0 },
};

int main(int argc, char **argv, char **envp)
{
	if (argc == 4 && strcmp(argv[1], "--check-fds") == 0)
		return check_fds(atoi(argv[2]), atoi(argv[3]));
	if (argc == 3 && strcmp(argv[1], "--emit") == 0)
		return emit(atol(argv[2]));
	if (argc == 2 && strcmp(argv[1], "--count") == 0)
		return count_stdin();
	ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
	if (n <= 0)
		strcpy(self_path, argv[0]);
	return ktest_main("t_pipe", tests, sizeof tests / sizeof tests[0], argc, argv, envp);
}
