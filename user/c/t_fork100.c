/*
 * t_fork100: many processes.
 *   - 100 children alive at once, child i exits with i; wait4(-1) reaps each exactly once and
 *     each status matches the child's pid; then -ECHILD;
 *   - the same, reaped by pid in reverse order;
 *   - all pids distinct and different from the parent's;
 *   - a chain of 30 processes (each forks the next), exit codes summed back up the chain;
 *   - 200 sequential fork/exit/wait rounds.
 * The harness checks free memory is back to its baseline after each test.
 */
#include "ktest.h"

#define N 100

static long pids[N];

/* spawn_all: fork N children, child i exits with i. Returns the number forked. */
static int spawn_all(void)
{
	for (int i = 0; i < N; i++) {
		long pid = k_fork();
		if (pid == 0)
			k_exit(i);
		if (pid < 0)
			return i;
		pids[i] = pid;
	}
	return N;
}

static void reap_rest(int n)
{
	for (int i = 0; i < n; i++)
		if (pids[i] > 0)
			k_wait4(pids[i], NULL, 0, NULL);
}

static int t_reap_any_order(void)
{
	int n = spawn_all();
	if (n < N) {
		reap_rest(n);
		return kt_fail("fork %d failed", n + 1);
	}
	for (int i = 0; i < N; i++)
		for (int j = 0; j < i; j++)
			if (pids[i] == pids[j]) {
				reap_rest(N);
				return kt_fail("children %d and %d got the same pid %ld", j, i, pids[i]);
			}
	static int seen[N];
	int bad = 0;
	for (int k = 0; k < N; k++) {
		int st = 0;
		long r = k_wait4(-1, &st, 0, NULL);
		if (r <= 0) {
			reap_rest(N);
			return kt_fail("wait4(-1) #%d returned %s with %d children left", k, kt_errname(r), N - k);
		}
		int i;
		for (i = 0; i < N; i++)
			if (pids[i] == r)
				break;
		if (i == N) {
			bad = bad ? bad : kt_fail("wait4 returned pid %ld, not one of our children", r);
			continue;
		}
		if (seen[i]++)
			bad = bad ? bad : kt_fail("pid %ld (child %d) reaped twice", r, i);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != i) {
			char sb[64];
			bad = bad ? bad
				  : kt_fail("child %d (pid %ld) %s, expected exit %d", i, r,
					    kt_status_str(st, sb, sizeof sb), i);
		}
	}
	if (bad)
		return 1;
	long r = k_wait4(-1, NULL, 0, NULL);
	KT_CHECK(r == -ECHILD, "wait4 after reaping all returned %s", kt_errname(r));
	return 0;
}

static int t_reap_by_pid_reverse(void)
{
	int n = spawn_all();
	if (n < N) {
		reap_rest(n);
		return kt_fail("fork %d failed", n + 1);
	}
	long me = k_getpid();
	int bad = 0;
	for (int i = N - 1; i >= 0; i--) {
		int st = 0;
		if (pids[i] == me)
			bad = bad ? bad : kt_fail("child %d got the parent's pid", i);
		long r = kt_reap(pids[i], &st);
		if (r != pids[i]) {
			bad = bad ? bad : kt_fail("wait4(%ld) returned %s", pids[i], kt_errname(r));
			continue;
		}
		if (!WIFEXITED(st) || WEXITSTATUS(st) != i)
			bad = bad ? bad : kt_fail("child %d status 0x%x", i, st);
	}
	if (bad)
		return 1;
	long r = k_wait4(-1, NULL, 0, NULL);
	KT_CHECK(r == -ECHILD, "wait4 after reaping all returned %s", kt_errname(r));
	return 0;
}

/* chain(d): fork a child running chain(d-1); exit with its exit code + 1. chain(0) exits 0. */
static __attribute__((noreturn)) void chain(int d)
{
	if (d == 0)
		k_exit(0);
	long pid = k_fork();
	if (pid == 0)
		chain(d - 1);
	if (pid < 0)
		k_exit(200);
	int st = 0;
	if (kt_reap(pid, &st) != pid || !WIFEXITED(st))
		k_exit(201);
	int c = WEXITSTATUS(st);
	k_exit(c >= 200 ? c : c + 1);
}

static int t_chain(void)
{
	long pid = k_fork();
	if (pid == 0)
		chain(30);
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	int st = 0;
	kt_reap(pid, &st);
	KT_CHECK(WIFEXITED(st), "top of the chain did not exit normally (0x%x)", st);
	KT_CHECK(WEXITSTATUS(st) != 200, "a fork inside the chain failed");
	KT_CHECK(WEXITSTATUS(st) != 201, "a wait inside the chain failed or a link was killed");
	KT_CHECK(WEXITSTATUS(st) == 30, "chain of 30 returned %d", WEXITSTATUS(st));
	return 0;
}

static int t_sequential(void)
{
	for (int i = 0; i < 200; i++) {
		long pid = k_fork();
		if (pid == 0)
			k_exit(i & 0xff);
		KT_CHECK(pid > 0, "round %d: fork returned %s", i, kt_errname(pid));
		int st = 0;
		KT_CHECK(kt_reap(pid, &st) == pid, "round %d: wait4 failed", i);
		KT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == (i & 0xff), "round %d: status 0x%x", i, st);
	}
	return 0;
}

static const struct ktest tests[] = {
	{ "fork100::hundred_children_reaped_by_wait_any", t_reap_any_order, 0 },
	{ "fork100::hundred_children_reaped_by_pid_reverse", t_reap_by_pid_reverse, 0 },
	{ "fork100::chain_of_30", t_chain, 0 },
	{ "fork100::two_hundred_sequential_rounds", t_sequential, 0 },
};

int main(int argc, char **argv, char **envp)
{
	return ktest_main("t_fork100", tests, sizeof tests / sizeof tests[0], argc, argv, envp);
}
