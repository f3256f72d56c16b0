/*
 * t_wait: wait statuses, and how faults and kill() end a process.
 *   - exit codes 0, 1, 42, 255 (WIFEXITED, WEXITSTATUS, not WIFSIGNALED);
 *   - a write or read of NULL, a write to a PROT_READ mmap, a read of a PROT_NONE mmap, a
 *     write to the program's own code, a jump into a non-executable page, a read of a
 *     kernel-half or non-canonical address, and hlt (privileged) in ring 3: SIGSEGV (11);
 *   - ud2: SIGILL (4); divide by zero: SIGFPE (8); int3: SIGTRAP (5);
 *   - kill(pid, SIGKILL) of a sleeping child, of a busy (never-syscalling) child, and of
 *     itself: signal 9;
 *   - wait4(WNOHANG) is 0 while the child runs; kill of a reaped pid is -ESRCH.
 * Every faulting child exits with 99 if it survives the fault.
 */
#include "ktest.h"

#define SURVIVED 99

typedef void (*crash_fn)(void);

static void c_null_write(void) { *(volatile int *)kt_launder(NULL) = 1; }
static void c_null_read(void) { (void)*(volatile int *)kt_launder(NULL); }
static void c_ud2(void) { __asm__ volatile("ud2"); }
static void c_hlt(void) { __asm__ volatile("hlt"); }
static void c_int3(void) { __asm__ volatile("int3"); }
static void c_div0(void)
{
	unsigned long a = 1, d = 0, z = (unsigned long)kt_launder(NULL);
	__asm__ volatile("divq %2" : "+a"(a), "+d"(d) : "r"(z));
}
static void c_kernel_read(void) { (void)*(volatile long *)kt_launder(KT_KERNEL_PTR); }
static void c_kernel_image_read(void) { (void)*(volatile long *)kt_launder((void *)0xffffffff80000000UL); }
static void c_noncanonical_read(void) { (void)*(volatile long *)kt_launder((void *)0x8000000000000000UL); }
static void c_readonly_write(void)
{
	char *p = k_anon(4096, PROT_READ);
	if (!p)
		k_exit(98);
	if (p[0] != 0) /* readable, zero */
		k_exit(97);
	*(volatile char *)p = 1;
}
static void c_prot_none_read(void)
{
	char *p = k_anon(4096, PROT_NONE);
	if (!p)
		k_exit(98);
	(void)*(volatile char *)p;
}
static void c_text_write(void) { *(volatile unsigned char *)kt_launder((void *)c_text_write) = 0xc3; }
static void c_exec_nx(void)
{
	unsigned char *p = k_anon(4096, PROT_READ | PROT_WRITE);
	if (!p)
		k_exit(98);
	p[0] = 0xc3; /* ret */
	((void (*)(void))kt_launder(p))();
}

/* run_crash: fork a child that runs fn; it must be killed by sig. */
static int run_crash(crash_fn fn, int sig, const char *what)
{
	long pid = k_fork();
	if (pid == 0) {
		fn();
		k_exit(SURVIVED);
	}
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	int st = 0;
	char sb[64];
	KT_CHECK(kt_reap(pid, &st) == pid, "%s: wait4 failed", what);
	KT_CHECK(!(WIFEXITED(st) && WEXITSTATUS(st) == SURVIVED), "%s: the child survived", what);
	KT_CHECK(!(WIFEXITED(st) && WEXITSTATUS(st) == 98), "%s: mmap failed in the child", what);
	KT_CHECK(!(WIFEXITED(st) && WEXITSTATUS(st) == 97), "%s: a PROT_READ page did not read as zero", what);
	KT_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == sig, "%s: child %s, expected signal %d (%s)", what,
		 kt_status_str(st, sb, sizeof sb), sig, kt_signame(sig));
	KT_CHECK(!WIFEXITED(st), "%s: WIFEXITED set for a killed child", what);
	return 0;
}

static int t_exit_codes(void)
{
	static const int codes[] = { 0, 1, 42, 255 };
	for (int i = 0; i < 4; i++) {
		long pid = k_fork();
		if (pid == 0)
			k_exit(codes[i]);
		KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
		int st = -1;
		KT_CHECK(kt_reap(pid, &st) == pid, "wait4 failed");
		KT_CHECK(WIFEXITED(st) && !WIFSIGNALED(st) && WEXITSTATUS(st) == codes[i],
			 "exit(%d) gave status 0x%x", codes[i], st);
	}
	return 0;
}

static int t_null_write(void) { return run_crash(c_null_write, SIGSEGV, "write to NULL"); }
static int t_null_read(void) { return run_crash(c_null_read, SIGSEGV, "read of NULL"); }
static int t_readonly_write(void) { return run_crash(c_readonly_write, SIGSEGV, "write to PROT_READ mmap"); }
static int t_prot_none(void) { return run_crash(c_prot_none_read, SIGSEGV, "read of PROT_NONE mmap"); }
static int t_text_write(void) { return run_crash(c_text_write, SIGSEGV, "write to own code"); }
static int t_exec_nx(void) { return run_crash(c_exec_nx, SIGSEGV, "call into a PROT_READ|PROT_WRITE page"); }
static int t_kernel_read(void)
{
	if (run_crash(c_kernel_read, SIGSEGV, "read of 0xffff800000000000"))
		return 1;
	return run_crash(c_kernel_image_read, SIGSEGV, "read of 0xffffffff80000000");
}
static int t_noncanonical(void) { return run_crash(c_noncanonical_read, SIGSEGV, "read of 0x8000000000000000"); }
static int t_hlt(void) { return run_crash(c_hlt, SIGSEGV, "hlt in ring 3"); }
static int t_ud2(void) { return run_crash(c_ud2, SIGILL, "ud2"); }
static int t_div0(void) { return run_crash(c_div0, SIGFPE, "divide by zero"); }
static int t_int3(void) { return run_crash(c_int3, SIGTRAP, "int3"); }

/* A child that sleeps (bounded: 20 s) until killed. */
static long spawn_sleeper(void)
{
	long pid = k_fork();
	if (pid == 0) {
		for (int i = 0; i < 200; i++)
			kt_sleep_ns(100000000);
		k_exit(SURVIVED);
	}
	return pid;
}

static int t_kill_sleeping(void)
{
	long pid = spawn_sleeper();
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	kt_sleep_ns(20000000);
	long r = k_kill(pid, SIGKILL);
	KT_CHECK(r == 0, "kill(%ld, SIGKILL) returned %s", pid, kt_errname(r));
	return kt_expect_signal(pid, SIGKILL, "sleeping child");
}

/* A child that spins without a syscall for up to ~20 s: killing it needs the timer to take the
 * CPU from it (on one CPU) and the kill to take effect on its way back to user mode. */
static int t_kill_busy(void)
{
	long pid = k_fork();
	if (pid == 0) {
		uint64_t start = kt_rdtsc();
		volatile unsigned long x = 0;
		for (;;) {
			for (int i = 0; i < 1000000; i++)
				x += (unsigned long)i;
			if (kt_rdtsc() - start > 60000000000ULL) /* ~20 s at 3 GHz */
				k_exit(SURVIVED);
		}
	}
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	kt_sleep_ns(20000000);
	long r = k_kill(pid, SIGKILL);
	KT_CHECK(r == 0, "kill(%ld, SIGKILL) returned %s", pid, kt_errname(r));
	return kt_expect_signal(pid, SIGKILL, "busy child");
}

static int t_kill_self(void)
{
	long pid = k_fork();
	if (pid == 0) {
		k_kill(k_getpid(), SIGKILL);
		k_exit(SURVIVED);
	}
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	return kt_expect_signal(pid, SIGKILL, "kill(getpid(), SIGKILL)");
}

static int t_wnohang(void)
{
	long pid = spawn_sleeper();
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	int st = 12345;
	long r = k_wait4(pid, &st, WNOHANG, NULL);
	long r2 = k_wait4(-1, &st, WNOHANG, NULL);
	k_kill(pid, SIGKILL);
	int e = kt_expect_signal(pid, SIGKILL, "sleeper");
	KT_CHECK(r == 0, "wait4(pid, WNOHANG) on a running child returned %s, expected 0", kt_errname(r));
	KT_CHECK(r2 == 0, "wait4(-1, WNOHANG) on a running child returned %s, expected 0", kt_errname(r2));
	return e;
}

static int t_kill_reaped_esrch(void)
{
	long pid = k_fork();
	if (pid == 0)
		k_exit(0);
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	int e = kt_expect_exit(pid, 0, "child");
	if (e)
		return e;
	long r = k_kill(pid, SIGKILL);
	KT_CHECK(r == -ESRCH, "kill of a reaped pid returned %s, expected -ESRCH", kt_errname(r));
	r = k_kill(0x3fffffff, SIGKILL);
	KT_CHECK(r == -ESRCH, "kill(0x3fffffff) returned %s, expected -ESRCH", kt_errname(r));
	return 0;
}

static const struct ktest tests[] = {
	{ "wait::exit_codes_0_1_42_255", t_exit_codes, 0 },
	{ "wait::null_write_sigsegv", t_null_write, 0 },
	{ "wait::null_read_sigsegv", t_null_read, 0 },
	{ "wait::write_to_readonly_mmap_sigsegv", t_readonly_write, 0 },
	{ "wait::read_of_prot_none_sigsegv", t_prot_none, 0 },
	{ "wait::write_to_own_code_sigsegv", t_text_write, 0 },
	{ "wait::execute_non_exec_page_sigsegv", t_exec_nx, 0 },
	{ "wait::kernel_address_read_sigsegv", t_kernel_read, 0 },
	{ "wait::noncanonical_address_read_sigsegv", t_noncanonical, 0 },
	{ "wait::hlt_in_ring3_sigsegv", t_hlt, 0 },
	{ "wait::ud2_sigill", t_ud2, 0 },
	{ "wait::divide_by_zero_sigfpe", t_div0, 0 },
	{ "wait::int3_sigtrap", t_int3, 0 },
	{ "wait::kill_sleeping_child_sigkill", t_kill_sleeping, 0 },
	{ "wait::kill_busy_child_sigkill", t_kill_busy, 0 },
	{ "wait::kill_self_sigkill", t_kill_self, 0 },
	{ "wait::wnohang_zero_while_child_runs", t_wnohang, 0 },
	{ "wait::kill_reaped_pid_esrch", t_kill_reaped_esrch, 0 },
};

int main(int argc, char **argv, char **envp)
{
	return ktest_main("t_wait", tests, sizeof tests / sizeof tests[0], argc, argv, envp);
}
