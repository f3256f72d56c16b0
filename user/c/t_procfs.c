/*
 * t_procfs - /proc files are produced as they are read (Linux seq_file): a process with
 * 100,000 touched pages reads its whole /proc/self/ptes (one line per page, ~7 MB of
 * text) without the kernel building it in one piece; small reads and big reads give the
 * same text; /proc/ps lists this process, and for a sleeping one where in the kernel it
 * waits (a child blocked reading an empty pipe waits in kernel/src/fs/pipe.rs).
 */
#include "ktest.h"
#include <sys/mman.h>
#include <stdlib.h>
#include <unistd.h>

#define PAGES 100000UL

/* Read all of `path` with reads of `chunk` bytes; count lines, and those containing
 * `needle`; keep a checksum of the bytes. Returns bytes read or -errno. */
static long slurp(const char *path, size_t chunk, long *lines, long *hits, const char *needle,
		  unsigned long *sum)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	static char buf[65536];
	static char line[256];
	size_t llen = 0;
	long total = 0;
	*lines = 0;
	*hits = 0;
	*sum = 0;
	for (;;) {
		long n = read(fd, buf, chunk);
		if (n < 0) {
			close(fd);
			return -errno;
		}
		if (n == 0)
			break;
		total += n;
		for (long i = 0; i < n; i++) {
			*sum = *sum * 31 + (unsigned char)buf[i];
			if (buf[i] == '\n') {
				line[llen < sizeof line ? llen : sizeof line - 1] = 0;
				(*lines)++;
				if (strstr(line, needle))
					(*hits)++;
				llen = 0;
			} else if (llen < sizeof line - 1) {
				line[llen++] = buf[i];
			}
		}
	}
	close(fd);
	return total;
}

static int t_ptes_100k(void)
{
	if (!kt_memkernel) {
		kout("# not memkernel: /proc/self/ptes is ours; skipped\n");
		return 0;
	}
	char *p = mmap(NULL, PAGES * KT_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	KT_CHECK(p != MAP_FAILED, "mmap(%lu pages): %s", PAGES, strerror(errno));
	for (unsigned long i = 0; i < PAGES; i++)
		p[i * KT_PAGE] = 1;
	long lines = 0, hits = 0;
	unsigned long sum_big = 0, sum_small = 0;
	uint64_t t0 = kt_now_ns();
	long n = slurp("/proc/self/ptes", 65536, &lines, &hits, "present RW", &sum_big);
	uint64_t ms = (kt_now_ns() - t0) / 1000000;
	kout("# /proc/self/ptes with %lu touched pages: %ld bytes, %ld lines, %ld present RW, %llu ms\n", PAGES, n,
	     lines, hits, (unsigned long long)ms);
	KT_CHECK(n > 0, "reading /proc/self/ptes failed: %s", kt_errname(n));
	KT_CHECK(hits >= (long)PAGES, "%ld 'present RW' lines, want at least %lu", hits, PAGES);
	/* The same text in 100-byte reads. */
	long lines2 = 0, hits2 = 0;
	long n2 = slurp("/proc/self/ptes", 100, &lines2, &hits2, "present RW", &sum_small);
	KT_CHECK(n2 == n && sum_small == sum_big, "100-byte reads gave %ld bytes (sum %lx), 64 KiB reads %ld (sum %lx)",
		 n2, sum_small, n, sum_big);
	KT_CHECK(munmap(p, PAGES * KT_PAGE) == 0, "munmap: %s", strerror(errno));
	return 0;
}

static int t_ps_lists_us(void)
{
	if (!kt_memkernel) {
		kout("# not memkernel: /proc/ps is ours; skipped\n");
		return 0;
	}
	long lines = 0, hits = 0;
	unsigned long sum = 0;
	long n = slurp("/proc/ps", 7, &lines, &hits, "running", &sum);
	kout("# /proc/ps in 7-byte reads: %ld bytes, %ld lines, %ld running\n", n, lines, hits);
	KT_CHECK(n > 0 && lines >= 3, "/proc/ps: %ld bytes, %ld lines", n, lines);
	KT_CHECK(hits == 1, "%ld processes are 'running' (this one should be, alone)", hits);
	return 0;
}

/* The /proc/ps line of `pid` (without its newline) into `out`; 0 if it is not listed. */
static int ps_line(long pid, char *out, size_t size)
{
	static char buf[16384];
	int fd = open("/proc/ps", O_RDONLY);
	if (fd < 0)
		return 0;
	size_t n = 0;
	long r;
	while (n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
		n += (size_t)r;
	close(fd);
	buf[n] = 0;
	for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		char *end;
		if (strtol(l, &end, 10) != pid || end == l)
			continue;
		size_t len = strcspn(l, "\n");
		len = len < size - 1 ? len : size - 1;
		memcpy(out, l, len);
		out[len] = 0;
		return 1;
	}
	return 0;
}

static int t_ps_wait_channel(void)
{
	if (!kt_memkernel) {
		kout("# not memkernel: /proc/ps is ours (Linux: /proc/PID/wchan); skipped\n");
		return 0;
	}
	int p[2];
	KT_CHECK(pipe(p) == 0, "pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid == 0) {
		char c;
		close(p[1]);
		_exit(read(p[0], &c, 1) == 1 ? 0 : 1); /* blocks: nothing is ever written */
	}
	close(p[0]);
	KT_CHECK(pid > 0, "fork: %s", strerror(errno));
	char line[256] = "";
	int asleep = 0;
	for (int i = 0; i < 200 && !asleep; i++) {
		asleep = ps_line(pid, line, sizeof line) && strstr(line, "sleeping") != NULL;
		if (!asleep)
			kt_sleep_ns(10000000);
	}
	kout("# the child's line: %s\n", line);
	kill(pid, SIGKILL);
	int st = 0;
	waitpid(pid, &st, 0);
	close(p[1]);
	KT_CHECK(asleep, "the child blocked on an empty pipe is not 'sleeping' in /proc/ps: '%s'", line);
	KT_CHECK(strstr(line, "kernel/src/fs/pipe.rs:") != NULL,
		 "the child's wait channel is not in kernel/src/fs/pipe.rs: '%s'", line);
	KT_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the child was not killed by SIGKILL (status %#x)",
		 st);
	return 0;
}

static const struct ktest tests[] = {
	{ "procfs::ptes_of_100k_pages_piecewise", t_ptes_100k, 120 },
	{ "procfs::ps_lists_the_reader", t_ps_lists_us, 0 },
	{ "procfs::ps_shows_where_a_sleeper_waits", t_ps_wait_channel, 0 },
};

int main(int argc, char **argv, char **envp)
{
	return ktest_main("t_procfs", tests, sizeof tests / sizeof tests[0], argc, argv, envp);
}
