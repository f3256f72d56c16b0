/*
 * t_fork: fork basics.
 *   - the child gets 0, the parent the child's pid, and wait4 returns that pid;
 *   - getpid/getppid/gettid agree between parent and child;
 *   - the child's exit code reaches the parent through wait4 (WEXITSTATUS);
 *   - wait4 with no children, or for a pid that is not a child, is -ECHILD;
 *   - wait4(-1) reaps any child; a NULL status pointer is allowed;
 *   - the child resumes with the parent's registers and stack (locals, deep call stack);
 *   - a grandchild's parent is the child.
 */
#include "ktest.h"

/* fork_child_gets_zero: 7 from the child means "fork returned 0 to me". */
static int t_child_gets_zero_parent_gets_pid(void)
{
	long pid = k_fork();
	if (pid == 0)
		k_exit(7);
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	int st = 0;
	long r = kt_reap(pid, &st);
	KT_CHECK(r == pid, "wait4(%ld) returned %ld", pid, r);
	KT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7, "child did not see fork() == 0 (status 0x%x)", st);
	return 0;
}

/* The child checks getpid() != parent's pid, getppid() == parent's pid, gettid() == getpid(),
 * and reports getpid() & 0xff as its exit code so the parent can compare with fork's result. */
static int t_getpid_getppid_agree(void)
{
	long me = k_getpid();
	KT_CHECK(me > 0, "getpid returned %ld", me);
	KT_CHECK(k_gettid() == me, "gettid %ld != getpid %ld", k_gettid(), me);
	long pid = k_fork();
	if (pid == 0) {
		long c = k_getpid();
		if (c == me)
			k_exit(250); /* same pid as the parent */
		if (k_getppid() != me)
			k_exit(251);
		if (k_gettid() != c)
			k_exit(252);
		int low = (int)(c & 0xff);
		k_exit(low >= 250 && low <= 252 ? 0 : low); /* 250..252 are reserved above */
	}
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	KT_CHECK(pid != me, "fork returned the parent's own pid %ld", me);
	int st = 0;
	KT_CHECK(kt_reap(pid, &st) == pid, "wait4 did not return the child's pid");
	KT_CHECK(WIFEXITED(st), "child did not exit normally (0x%x)", st);
	int code = WEXITSTATUS(st);
	KT_CHECK(code != 250, "child's getpid() equals the parent's");
	KT_CHECK(code != 251, "child's getppid() is not the parent's pid %ld", me);
	KT_CHECK(code != 252, "child's gettid() != getpid()");
	long low = pid & 0xff;
	if (low >= 250 && low <= 252)
		low = 0;
	KT_CHECK(code == low, "child's getpid() & 0xff = %d but fork returned %ld", code, pid);
	KT_CHECK(k_getpid() == me, "parent's getpid changed after fork");
	return 0;
}

static int t_exit_code_via_wait4(void)
{
	static const int codes[] = { 0, 1, 42, 127, 128, 200, 255 };
	for (unsigned i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		long pid = k_fork();
		if (pid == 0)
			k_exit(codes[i]);
		KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
		int st = -1;
		long r = kt_reap(pid, &st);
		KT_CHECK(r == pid, "wait4 returned %ld", r);
		KT_CHECK(WIFEXITED(st), "exit(%d): not WIFEXITED (0x%x)", codes[i], st);
		KT_CHECK(!WIFSIGNALED(st), "exit(%d): WIFSIGNALED", codes[i]);
		KT_CHECK(WEXITSTATUS(st) == codes[i], "exit(%d) reported as %d", codes[i], WEXITSTATUS(st));
	}
	/* exit codes are taken modulo 256 */
	long pid = k_fork();
	if (pid == 0)
		k_exit(256 + 5);
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	int st = 0;
	kt_reap(pid, &st);
	KT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 5, "exit(261) reported as 0x%x, expected 5", st);
	return 0;
}

static int t_wait4_no_children_echild(void)
{
	int st = 0;
	long r = k_wait4(-1, &st, 0, NULL);
	KT_CHECK(r == -ECHILD, "wait4(-1) with no children returned %s, expected -ECHILD", kt_errname(r));
	r = k_wait4(-1, &st, WNOHANG, NULL);
	KT_CHECK(r == -ECHILD, "wait4(-1, WNOHANG) with no children returned %s", kt_errname(r));
	/* a pid that is not our child: our own, and our parent's */
	r = k_wait4(k_getpid(), &st, 0, NULL);
	KT_CHECK(r == -ECHILD, "wait4(own pid) returned %s", kt_errname(r));
	r = k_wait4(k_getppid(), &st, 0, NULL);
	KT_CHECK(r == -ECHILD, "wait4(parent's pid) returned %s", kt_errname(r));
	/* after the only child is reaped, again ECHILD */
	long pid = k_fork();
	if (pid == 0)
		k_exit(0);
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	KT_CHECK(kt_reap(pid, &st) == pid, "wait4 did not reap the child");
	r = k_wait4(pid, &st, 0, NULL);
	KT_CHECK(r == -ECHILD, "second wait4(%ld) returned %s", pid, kt_errname(r));
	r = k_wait4(-1, &st, 0, NULL);
	KT_CHECK(r == -ECHILD, "wait4(-1) after reaping returned %s", kt_errname(r));
	return 0;
}

static int t_wait4_any_and_null_status(void)
{
	long pid = k_fork();
	if (pid == 0)
		k_exit(3);
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	int st = 0;
	long r = k_wait4(-1, &st, 0, NULL);
	KT_CHECK(r == pid, "wait4(-1) returned %ld, expected %ld", r, pid);
	KT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3, "status 0x%x", st);
	pid = k_fork();
	if (pid == 0)
		k_exit(4);
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	r = k_wait4(pid, NULL, 0, NULL);
	KT_CHECK(r == pid, "wait4(pid, NULL) returned %s", kt_errname(r));
	return 0;
}

/* A recursive function forks at depth 0 of a 64-frame deep stack; both sides unwind and
 * check every frame's locals. */
static __attribute__((noinline)) long deep_fork(int depth, long *pid_out)
{
	volatile long local[8];
	for (int i = 0; i < 8; i++)
		local[i] = depth * 1000 + i;
	long r;
	if (depth == 0) {
		r = k_fork();
		*pid_out = r;
	} else {
		r = deep_fork(depth - 1, pid_out);
	}
	for (int i = 0; i < 8; i++)
		if (local[i] != depth * 1000 + i)
			return -1000 - depth;
	return r;
}

static int t_child_resumes_with_parent_state(void)
{
	volatile unsigned long a = 0x1122334455667788UL, b = 0xdeadbeefcafef00dUL;
	long pid = 0;
	long r = deep_fork(64, &pid);
	if (pid == 0) {
		/* child */
		if (r != 0)
			k_exit(10);
		if (a != 0x1122334455667788UL || b != 0xdeadbeefcafef00dUL)
			k_exit(11);
		k_exit(0);
	}
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	KT_CHECK(r == pid, "parent's stack frames corrupted after fork (%ld)", r);
	KT_CHECK(a == 0x1122334455667788UL && b == 0xdeadbeefcafef00dUL, "parent's locals changed");
	int st = 0;
	kt_reap(pid, &st);
	KT_CHECK(!(WIFEXITED(st) && WEXITSTATUS(st) == 10), "child's stack frames corrupted after fork");
	KT_CHECK(!(WIFEXITED(st) && WEXITSTATUS(st) == 11), "child's locals differ from the parent's");
	KT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
	return 0;
}

/* The child forks a grandchild; the grandchild checks getppid() == child, the child reaps it
 * and passes its code + 1 up. */
static int t_grandchild(void)
{
	long pid = k_fork();
	if (pid == 0) {
		long me = k_getpid();
		long g = k_fork();
		if (g == 0)
			k_exit(k_getppid() == me ? 20 : 21);
		if (g < 0)
			k_exit(30);
		int st = 0;
		if (kt_reap(g, &st) != g)
			k_exit(31);
		if (!WIFEXITED(st))
			k_exit(32);
		if (k_wait4(-1, &st, 0, NULL) != -ECHILD)
			k_exit(33);
		k_exit(WEXITSTATUS(st) + 1);
	}
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	int st = 0;
	kt_reap(pid, &st);
	KT_CHECK(WIFEXITED(st), "child status 0x%x", st);
	switch (WEXITSTATUS(st)) {
	case 21: return 0;
	case 22: return kt_fail("grandchild's getppid() is not the child's pid");
	case 30: return kt_fail("fork in the child failed");
	case 31: return kt_fail("the child could not reap the grandchild");
	case 32: return kt_fail("grandchild did not exit normally");
	case 33: return kt_fail("child: wait4(-1) after reaping its only child is not -ECHILD");
	default: return kt_fail("child exited with %d", WEXITSTATUS(st));
	}
}

/* Many sequential fork/exit/wait rounds: pids are fresh while the old child is still unreaped,
 * and nothing accumulates (the harness checks free memory afterwards). */
static int t_sequential_rounds(void)
{
	for (int i = 0; i < 50; i++) {
		long pid = k_fork();
		if (pid == 0)
			k_exit(i);
		KT_CHECK(pid > 0, "round %d: fork returned %s", i, kt_errname(pid));
		int st = 0;
		KT_CHECK(kt_reap(pid, &st) == pid, "round %d: wait4 failed", i);
		KT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == i, "round %d: status 0x%x", i, st);
	}
	return 0;
}

static const struct ktest tests[] = {
	{ "fork::child_gets_zero_parent_gets_pid", t_child_gets_zero_parent_gets_pid, 0 },
	{ "fork::getpid_getppid_gettid_agree", t_getpid_getppid_agree, 0 },
	{ "fork::exit_code_via_wait4", t_exit_code_via_wait4, 0 },
	{ "fork::wait4_no_children_echild", t_wait4_no_children_echild, 0 },
	{ "fork::wait4_any_child_and_null_status", t_wait4_any_and_null_status, 0 },
	{ "fork::child_resumes_with_parent_registers_and_stack", t_child_resumes_with_parent_state, 0 },
	{ "fork::grandchild_parent_is_child", t_grandchild, 0 },
	{ "fork::fifty_sequential_rounds", t_sequential_rounds, 0 },
};

int main(int argc, char **argv, char **envp)
{
	return ktest_main("t_fork", tests, sizeof tests / sizeof tests[0], argc, argv, envp);
}
