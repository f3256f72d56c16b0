/*
 * t_exec: execve.
 * The program re-executes itself (kt_self_path(): argv[0] if it contains a '/', else
 * /bin/t_exec, else /init) with argv[1] == "child" and a mode; the re-executed image checks
 * what it was given and exits with 42 on success or a code naming the first check that failed.
 *   - argv and envp arrive exactly (argc, strings with spaces, NULL terminators, getenv);
 *   - the auxiliary vector has AT_PAGESZ 4096, AT_PHDR/AT_PHNUM/AT_ENTRY, 16 AT_RANDOM bytes;
 *   - the pid and the parent pid are the same after exec;
 *   - exit codes pass through exec (0, 7, 255);
 *   - a large argv/envp (200 arguments, ~20 KiB) crosses several stack pages;
 *   - a chain of 5 execs;
 *   - an open fd survives exec (close() of it works in the new image, then -EBADF);
 *   - the old image's memory (16 MiB mmap + 1 MiB brk, touched) is freed at exec (the harness
 *     checks free memory after the test);
 *   - execve of a missing file returns -ENOENT and the caller continues; the caller's memory
 *     is intact after a failed execve.
 */
#include <stdlib.h>
#include <sys/auxv.h>

#include "ktest.h"

#define OK 42

static char *env2[] = { "KTEST_ENV=hello world", "FOO=bar", NULL };

/* spawn: fork; the child execs self with argv; returns the pid (or -errno). */
static long spawn(char *const argv[], char *const envp[])
{
	long pid = k_fork();
	if (pid == 0) {
		long r = k_execve(kt_self_path(), argv, envp);
		if (r == -ENOENT) /* argv[0] may not name a file here: try the installed copy */
			r = k_execve("/bin/t_exec", argv, envp);
		k_exit(100); /* exec failed */
	}
	return pid;
}

static int expect_child(long pid, int code, const char *what)
{
	KT_CHECK(pid > 0, "%s: fork returned %s", what, kt_errname(pid));
	int st = 0;
	char sb[64];
	long r = kt_reap(pid, &st);
	KT_CHECK(r == pid, "%s: wait4 returned %s", what, kt_errname(r));
	KT_CHECK(!(WIFEXITED(st) && WEXITSTATUS(st) == 100), "%s: execve of %s failed", what, kt_self_path());
	KT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == code, "%s: exec'd child %s, expected exit %d", what,
		 kt_status_str(st, sb, sizeof sb), code);
	return 0;
}

/* ---- the exec'd side --------------------------------------------------------------------- */

static int count(char **v)
{
	int n = 0;
	while (v[n])
		n++;
	return n;
}

/* mode "args": argv = {"t_exec","child","args","a b","c"}, envp = env2 */
static int child_args(int argc, char **argv, char **envp)
{
	if (argc != 5)
		return 1;
	if (strcmp(argv[0], "t_exec") || strcmp(argv[3], "a b") || strcmp(argv[4], "c"))
		return 2;
	if (argv[5] != NULL)
		return 3;
	if (count(envp) != 2 || strcmp(envp[0], env2[0]) || strcmp(envp[1], env2[1]))
		return 4;
	const char *e = getenv("KTEST_ENV");
	if (!e || strcmp(e, "hello world"))
		return 5;
	if (getauxval(AT_PAGESZ) != 4096)
		return 6;
	if (!getauxval(AT_PHDR) || !getauxval(AT_PHNUM) || !getauxval(AT_ENTRY))
		return 7;
	const unsigned char *rnd = (const unsigned char *)getauxval(AT_RANDOM);
	if (!rnd)
		return 8;
	unsigned acc = 0;
	for (int i = 0; i < 16; i++)
		acc |= rnd[i];
	(void)acc; /* readable is what matters; all-zero bytes are legal if unlikely */
	return OK;
}

/* mode "ids PID PPID": getpid/getppid are what the caller saw before exec */
static int child_ids(int argc, char **argv)
{
	if (argc != 5)
		return 1;
	if (k_getpid() != atol(argv[3]))
		return 2;
	if (k_getppid() != atol(argv[4]))
		return 3;
	return OK;
}

/* mode "many N": argv[3 + i] == "arg-<i>-xxxxx..." for i < N, envp has N entries too */
static void make_arg(char *buf, size_t n, const char *kind, int i)
{
	snprintf(buf, n, "%s-%d-%s", kind, i, "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ");
}

static int child_many(int argc, char **argv, char **envp)
{
	int n = atoi(argv[3]);
	if (argc != 4 + n)
		return 1;
	char buf[160];
	for (int i = 0; i < n; i++) {
		make_arg(buf, sizeof buf, "arg", i);
		if (strcmp(argv[4 + i], buf))
			return 2;
	}
	if (count(envp) != n)
		return 3;
	for (int i = 0; i < n; i++) {
		make_arg(buf, sizeof buf, "ENV", i);
		if (strcmp(envp[i], buf))
			return 4;
	}
	return OK;
}

/* mode "chain K": exec self with K-1 until 0 */
static int child_chain(int argc, char **argv, char **envp)
{
	if (argc != 4)
		return 1;
	int k = atoi(argv[3]);
	if (k == 0)
		return OK;
	char next[16];
	snprintf(next, sizeof next, "%d", k - 1);
	char *nargv[] = { argv[0], "child", "chain", next, NULL };
	k_execve(argv[0], nargv, envp); /* argv[0] is the path the test started from */
	return 2;
}

/* mode "fd N": fd N is open: close succeeds once, then -EBADF */
static int child_fd(int argc, char **argv)
{
	if (argc != 4)
		return 1;
	int fd = atoi(argv[3]);
	if (k_close(fd) != 0)
		return 2;
	if (k_close(fd) != -EBADF)
		return 3;
	return OK;
}

static int child_main(int argc, char **argv, char **envp)
{
	const char *mode = argc > 2 ? argv[2] : "";
	if (!strcmp(mode, "args"))
		return child_args(argc, argv, envp);
	if (!strcmp(mode, "ids"))
		return child_ids(argc, argv);
	if (!strcmp(mode, "exit") && argc == 4)
		return atoi(argv[3]);
	if (!strcmp(mode, "many") && argc >= 4)
		return child_many(argc, argv, envp);
	if (!strcmp(mode, "chain"))
		return child_chain(argc, argv, envp);
	if (!strcmp(mode, "fd"))
		return child_fd(argc, argv);
	return 99;
}

/* ---- the tests ---------------------------------------------------------------------------- */

static int t_argv_envp(void)
{
	char *argv[] = { "t_exec", "child", "args", "a b", "c", NULL };
	long pid = spawn(argv, env2);
	int r = expect_child(pid, OK, "argv/envp");
	if (r)
		return r;
	return 0;
}

static int t_ids(void)
{
	long pid = k_fork();
	if (pid == 0) {
		char a[24], b[24];
		snprintf(a, sizeof a, "%ld", k_getpid());
		snprintf(b, sizeof b, "%ld", k_getppid());
		char *argv[] = { "t_exec", "child", "ids", a, b, NULL };
		long r = k_execve(kt_self_path(), argv, env2);
		if (r == -ENOENT)
			k_execve("/bin/t_exec", argv, env2);
		k_exit(100);
	}
	return expect_child(pid, OK, "getpid/getppid across exec");
}

static int t_exit_codes(void)
{
	static char *codes[] = { "0", "7", "255" };
	for (int i = 0; i < 3; i++) {
		char *argv[] = { "t_exec", "child", "exit", codes[i], NULL };
		long pid = spawn(argv, env2);
		int r = expect_child(pid, atoi(codes[i]), "exit code through exec");
		if (r)
			return r;
	}
	return 0;
}

static int t_many_args(void)
{
	enum { N = 200 };
	static char abuf[N][160], ebuf[N][160];
	static char *argv[N + 5], *envp[N + 1];
	static char nstr[8];
	snprintf(nstr, sizeof nstr, "%d", N);
	argv[0] = "t_exec";
	argv[1] = "child";
	argv[2] = "many";
	argv[3] = nstr;
	for (int i = 0; i < N; i++) {
		make_arg(abuf[i], sizeof abuf[i], "arg", i);
		make_arg(ebuf[i], sizeof ebuf[i], "ENV", i);
		argv[4 + i] = abuf[i];
		envp[i] = ebuf[i];
	}
	argv[4 + N] = NULL;
	envp[N] = NULL;
	long pid = spawn(argv, envp);
	return expect_child(pid, OK, "200 arguments + 200 environment strings");
}

static int t_chain(void)
{
	char path[256];
	snprintf(path, sizeof path, "%s", kt_self_path());
	char *argv[] = { path, "child", "chain", "5", NULL };
	long pid = spawn(argv, env2);
	return expect_child(pid, OK, "chain of 5 execs");
}

static int t_fd_survives(void)
{
	long fd = k_open(kt_self_path(), O_RDONLY);
	if (fd == -ENOENT)
		fd = k_open("/bin/t_exec", O_RDONLY);
	KT_CHECK(fd >= 0, "open(own executable) returned %s", kt_errname(fd));
	char num[24];
	snprintf(num, sizeof num, "%ld", fd);
	char *argv[] = { "t_exec", "child", "fd", num, NULL };
	long pid = spawn(argv, env2);
	int r = expect_child(pid, OK, "fd inherited across exec");
	KT_CHECK(k_close((int)fd) == 0, "the parent's fd was closed by the child's close");
	return r;
}

/* The child builds up memory (16 MiB mmap + 1 MiB brk, all touched), then execs a program that
 * exits at once: the old image must be freed (checked by the harness's memory check). */
static int t_old_image_freed(void)
{
	long pid = k_fork();
	if (pid == 0) {
		size_t len = 16 * KT_MiB;
		char *p = k_anon(len, PROT_READ | PROT_WRITE);
		if (!p)
			k_exit(101);
		kt_fill(p, len, 1);
		long cur = k_brk(0);
		long want = ((cur + 4095) & ~4095L) + (long)KT_MiB;
		if (k_brk((void *)want) < want)
			k_exit(102);
		kt_fill((void *)(want - (long)KT_MiB), KT_MiB, 2);
		char *argv[] = { "t_exec", "child", "exit", "42", NULL };
		long r = k_execve(kt_self_path(), argv, env2);
		if (r == -ENOENT)
			k_execve("/bin/t_exec", argv, env2);
		k_exit(100);
	}
	return expect_child(pid, OK, "exec after 17 MiB touched");
}

static int t_missing_enoent(void)
{
	size_t len = 64 * 4096;
	char *p = k_anon(len, PROT_READ | PROT_WRITE);
	KT_CHECK(p, "mmap failed");
	kt_fill(p, len, 77);
	char *argv[] = { "nope", NULL };
	long r = k_execve("/nonexistent/t_exec_missing", argv, env2);
	KT_CHECK(r == -ENOENT, "execve(missing dir) returned %s, expected -ENOENT", kt_errname(r));
	r = k_execve("/bin/no_such_program_here", argv, env2);
	KT_CHECK(r == -ENOENT, "execve(missing file) returned %s, expected -ENOENT", kt_errname(r));
	r = k_execve("", argv, env2);
	KT_CHECK(r == -ENOENT, "execve(\"\") returned %s, expected -ENOENT", kt_errname(r));
	KT_CHECK(kt_check_fill(p, len, 77) < 0, "memory changed after a failed execve");
	KT_CHECK(k_getpid() > 0, "still running");
	k_munmap(p, len);
	/* and a fork+exec of a missing file: the child continues and exits normally */
	long pid = k_fork();
	if (pid == 0) {
		long e = k_execve("/nonexistent", argv, env2);
		k_exit(e == -ENOENT ? 5 : 6);
	}
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	return kt_expect_exit(pid, 5, "child after a failed execve");
}

static const struct ktest tests[] = {
	{ "exec::argv_envp_auxv_passed", t_argv_envp, 0 },
	{ "exec::pid_and_ppid_kept", t_ids, 0 },
	{ "exec::exit_codes_through_exec", t_exit_codes, 0 },
	{ "exec::two_hundred_args_and_env_strings", t_many_args, 0 },
	{ "exec::chain_of_five", t_chain, 0 },
	{ "exec::open_fd_survives_exec", t_fd_survives, 0 },
	{ "exec::old_image_freed", t_old_image_freed, 0 },
	{ "exec::missing_file_enoent_and_caller_continues", t_missing_enoent, 0 },
};

int main(int argc, char **argv, char **envp)
{
	if (argc > 1 && !strcmp(argv[1], "child")) {
		kt_argc = argc;
		kt_argv = argv;
		kt_prog = "t_exec";
		return child_main(argc, argv, envp);
	}
	return ktest_main("t_exec", tests, sizeof tests / sizeof tests[0], argc, argv, envp);
}
