/*
 * failwrap: run a program with a share of its allocations failing in the kernel (Linux's
 * failslab with make-it-fail, see kernel/src/mm/gfp.rs), and check the kernel took it.
 * Not a t_ program: scripts/failslab.sh boots it as /init of its own boot.
 *
 *   failwrap PROBABILITY INTERVAL PROGRAM [ARG...]
 *
 * Without arguments it reads them from /failwrap.args (the kernel starts /init without
 * arguments). It sets /sys/kernel/debug/failslab/{probability,interval,times}, forks, and
 * the child sets /proc/self/make-it-fail (inherited by everything the program forks)
 * and execs PROGRAM. The program may well fail: it gets ENOMEM where it did not expect
 * it. What is checked is the kernel: it must not panic or hang (PROGRAM is killed after
 * 240 s), and once every process is gone the kernel's power-off check must find every
 * frame back ("no leak"), which scripts/failslab.sh reads. failwrap prints how many
 * allocations failed and "1 passed, 0 failed" when PROGRAM ended by itself.
 */
#include "fuzz.h"
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define TIMES 100000000L
#define LIMIT_NS (240ULL * 1000000000ULL)

static int put(const char *path, long v)
{
	char buf[24];
	int len = snprintf(buf, sizeof buf, "%ld", v);
	int fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	long r = write(fd, buf, (size_t)len);
	close(fd);
	return r == len ? 0 : -EIO;
}

static long get(const char *path)
{
	char buf[24] = { 0 };
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	long r = read(fd, buf, sizeof buf - 1);
	close(fd);
	return r > 0 ? strtol(buf, NULL, 10) : -1;
}

int main(int argc, char **argv)
{
	static char line[512];
	static char *args[32];
	int n = 0;
	if (argc >= 4) {
		for (int i = 1; i < argc && n < 31; i++)
			args[n++] = argv[i];
	} else {
		int fd = open("/failwrap.args", O_RDONLY);
		long len = fd >= 0 ? read(fd, line, sizeof line - 1) : -1;
		if (len <= 0) {
			printf("usage: failwrap PROBABILITY INTERVAL PROGRAM [ARG...] (or /failwrap.args)\n0 passed, 1 failed\n");
			return 1;
		}
		char *save = NULL;
		for (char *t = strtok_r(line, " \t\n", &save); t && n < 31; t = strtok_r(NULL, " \t\n", &save))
			args[n++] = t;
	}
	args[n] = NULL;
	if (n < 3) {
		printf("failwrap: need PROBABILITY INTERVAL PROGRAM\n0 passed, 1 failed\n");
		return 1;
	}
	long probability = atol(args[0]), interval = atol(args[1]);
	const char *dir = "/sys/kernel/debug/failslab";
	char path[96];
	snprintf(path, sizeof path, "%s/probability", dir);
	int e1 = put(path, probability);
	snprintf(path, sizeof path, "%s/interval", dir);
	int e2 = put(path, interval);
	snprintf(path, sizeof path, "%s/times", dir);
	int e3 = put(path, TIMES);
	if (e1 || e2 || e3) {
		printf("failwrap: cannot set %s (%s): a kernel without fault injection\n0 passed, 1 failed\n", dir,
		       strerror(-(e1 ? e1 : e2 ? e2 : e3)));
		return 1;
	}
	printf("failwrap: %s with %ld%% of every %ld-th allocation failing\n", args[2], probability, interval);
	fflush(stdout);
	uint64_t t0 = kt_now_ns();
	pid_t pid = fork();
	if (pid == 0) {
		if (put("/proc/self/make-it-fail", 1) != 0)
			_exit(126);
		execv(args[2], &args[2]);
		_exit(127);
	}
	if (pid < 0) {
		printf("failwrap: fork: %s\n0 passed, 1 failed\n", strerror(errno));
		return 1;
	}
	int st = 0, ended = 0;
	while (kt_now_ns() - t0 < LIMIT_NS) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid) {
			ended = 1;
			break;
		}
		kt_sleep_ns(20000000);
	}
	if (!ended) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
	/* Stop failing before cleaning up, so the reaping below is not disturbed. */
	snprintf(path, sizeof path, "%s/times", dir);
	long left = get(path);
	snprintf(path, sizeof path, "%s/probability", dir);
	put(path, 0);
	fuzz_reap_all();
	char sb[64];
	printf("failwrap: %s %s after %llu ms; %ld allocations failed\n", args[2],
	       ended ? kt_status_str(st, sb, sizeof sb) : "did not end in 240 s (killed)",
	       (unsigned long long)((kt_now_ns() - t0) / 1000000), left >= 0 ? TIMES - left : -1);
	printf("%d passed, %d failed\n", ended, !ended);
	return ended ? 0 : 1;
}
