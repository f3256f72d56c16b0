/*
 * t_sys: the small system calls, and the scheduler.
 *   - uname: sysname non-empty ("memkernel" on our kernel), machine "x86_64";
 *   - sysinfo: totalram >= freeram > 0; on memkernel, touching 1 MiB lowers freeram by
 *     1 MiB plus at most 4 page-table pages and munmap gives it back;
 *   - getpid == gettid == set_tid_address's result;
 *   - arch_prctl(ARCH_SET_FS): sets the %fs base (read back through %fs:0), inherited by
 *     fork; a non-canonical or kernel-half base is -EPERM (as Linux; a kernel that loaded
 *     it into the MSR would fault); an unknown code is -EINVAL;
 *   - unknown syscall numbers (500, 1000, 100000, -1) are -ENOSYS;
 *   - nanosleep sleeps at least as asked; a bad tv_nsec or negative tv_sec is -EINVAL;
 *   - clock_gettime: CLOCK_MONOTONIC never goes back; CLOCK_REALTIME is after 2020;
 *     an unknown clock is -EINVAL;
 *   - preemption: a parent spinning without syscalls for 1 s does not stop a child from
 *     finishing, and a child spinning forever does not stop the parent's sleep from ending;
 *   - kill with signal 65 is -EINVAL; ioctl on a bad fd is -EBADF; sched_yield is 0.
 */
#define ARCH_SET_FS 0x1002 /* asm/prctl.h, not in musl's headers */

#include "ktest.h"

static int t_uname(void)
{
	struct utsname u;
	memset(&u, 0, sizeof u);
	long r = k_uname(&u);
	KT_CHECK(r == 0, "uname returned %s", kt_errname(r));
	KT_CHECK(u.sysname[0], "empty sysname");
	KT_CHECK(strcmp(u.machine, "x86_64") == 0, "machine is \"%s\", expected x86_64", u.machine);
	KT_CHECK(!kt_memkernel || strcmp(u.sysname, "memkernel") == 0, "sysname");
	return 0;
}

static int t_sysinfo(void)
{
	struct sysinfo si;
	memset(&si, 0, sizeof si);
	long r = k_sysinfo(&si);
	KT_CHECK(r == 0, "sysinfo returned %s", kt_errname(r));
	unsigned long unit = si.mem_unit ? si.mem_unit : 1;
	KT_CHECK(si.totalram > 0 && si.freeram > 0, "totalram %lu freeram %lu", si.totalram, si.freeram);
	KT_CHECK(si.freeram <= si.totalram, "freeram %lu > totalram %lu", si.freeram, si.totalram);
	KT_CHECK(si.totalram * unit >= 16 * KT_MiB, "totalram is only %lu bytes", si.totalram * unit);
	if (!kt_memkernel)
		return 0;
	unsigned long before = kt_freeram();
	char *p = k_anon(KT_MiB, PROT_READ | PROT_WRITE);
	KT_CHECK(p, "mmap failed");
	unsigned long mapped = kt_freeram();
	KT_CHECK(mapped == before, "mmap alone changed freeram by %ld bytes (pages come on first touch)",
		 (long)before - (long)mapped);
	kt_fill(p, KT_MiB, 1);
	unsigned long touched = kt_freeram();
	long used = (long)before - (long)touched;
	KT_CHECK(used >= (long)KT_MiB && used <= (long)(KT_MiB + 4 * KT_PAGE),
		 "touching 256 pages lowered freeram by %ld bytes, expected 1 MiB + at most 4 page tables", used);
	KT_CHECK(k_munmap(p, KT_MiB) == 0, "munmap failed");
	unsigned long after = kt_freeram();
	long left = (long)before - (long)after;
	KT_CHECK(left >= 0 && left <= (long)(4 * KT_PAGE), "after munmap, freeram is %ld bytes below the start",
		 left);
	return 0;
}

static int t_ids(void)
{
	long pid = k_getpid(), tid = k_gettid();
	KT_CHECK(pid > 0 && pid == tid, "getpid %ld gettid %ld", pid, tid);
	static int tid_word;
	long r = ksys1(SYS_set_tid_address, &tid_word);
	KT_CHECK(r == tid, "set_tid_address returned %ld, expected the tid %ld", r, tid);
	return 0;
}

static inline unsigned long fs_word(long off)
{
	unsigned long v;
	__asm__ volatile("movq %%fs:(%1), %0" : "=r"(v) : "r"(off));
	return v;
}

static unsigned long fs_block[4] __attribute__((aligned(64)));

static int t_arch_prctl(void)
{
	unsigned long orig = fs_word(0); /* musl keeps the thread pointer at %fs:0 */
	fs_block[0] = (unsigned long)fs_block;
	fs_block[1] = 0x5eed5eed5eedUL;
	long r = ksys2(SYS_arch_prctl, ARCH_SET_FS, fs_block);
	unsigned long w0 = fs_word(0), w1 = fs_word(8);
	long back = ksys2(SYS_arch_prctl, ARCH_SET_FS, orig); /* restore before any libc call */
	KT_CHECK(r == 0, "arch_prctl(ARCH_SET_FS) returned %s", kt_errname(r));
	KT_CHECK(back == 0, "arch_prctl(ARCH_SET_FS, original) returned %s", kt_errname(back));
	KT_CHECK(w0 == (unsigned long)fs_block && w1 == 0x5eed5eed5eedUL,
		 "%%fs:0/%%fs:8 read %#lx/%#lx after setting the base to %p", w0, w1, (void *)fs_block);
	KT_CHECK(fs_word(0) == orig, "the original %%fs base was not restored");
	long pid = k_fork();
	if (pid == 0)
		k_exit(fs_word(0) == orig ? 0 : 2);
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	return kt_expect_exit(pid, 0, "the child's %fs base is the parent's");
}

static int t_arch_prctl_bad(void)
{
	static const unsigned long bad[] = { 0x8000000000000000UL, 0xffff800000000000UL, 0x0000800000000000UL };
	unsigned long orig = fs_word(0);
	for (int i = 0; i < 3; i++) {
		long r = ksys2(SYS_arch_prctl, ARCH_SET_FS, bad[i]);
		if (r == 0)
			ksys2(SYS_arch_prctl, ARCH_SET_FS, orig);
		KT_CHECK(r == -EPERM, "arch_prctl(ARCH_SET_FS, %#lx) returned %s, expected -EPERM", bad[i],
			 kt_errname(r));
		KT_CHECK(fs_word(0) == orig, "the %%fs base changed after a rejected arch_prctl");
	}
	long r = ksys2(SYS_arch_prctl, 0x9999, 0);
	KT_CHECK(r == -EINVAL, "arch_prctl(0x9999) returned %s, expected -EINVAL", kt_errname(r));
	return 0;
}

static int t_enosys(void)
{
	static const long nums[] = { 500, 1000, 100000, -1 }; /* not 335: Linux 6.11+ uses it (uretprobe) */
	for (int i = 0; i < 4; i++) {
		long r = ksys0(nums[i]);
		KT_CHECK(r == -ENOSYS, "syscall %ld returned %s, expected -ENOSYS", nums[i], kt_errname(r));
	}
	return 0;
}

static int t_nanosleep(void)
{
	uint64_t a = kt_now_ns();
	struct timespec ts = { 0, 10000000 };
	long r = k_nanosleep(&ts, NULL);
	uint64_t b = kt_now_ns();
	KT_CHECK(r == 0, "nanosleep(10 ms) returned %s", kt_errname(r));
	KT_CHECK(b - a >= 10000000, "nanosleep(10 ms) returned after %llu ns", (unsigned long long)(b - a));
	KT_CHECK(b - a < 2000000000ULL, "nanosleep(10 ms) took %llu ms", (unsigned long long)((b - a) / 1000000));
	struct timespec zero = { 0, 0 };
	KT_CHECK(k_nanosleep(&zero, NULL) == 0, "nanosleep(0) failed");
	struct timespec bad1 = { 0, 1000000000 }, bad2 = { -1, 0 }, bad3 = { 0, -1 };
	r = k_nanosleep(&bad1, NULL);
	KT_CHECK(r == -EINVAL, "nanosleep(tv_nsec = 1e9) returned %s, expected -EINVAL", kt_errname(r));
	r = k_nanosleep(&bad2, NULL);
	KT_CHECK(r == -EINVAL, "nanosleep(tv_sec = -1) returned %s, expected -EINVAL", kt_errname(r));
	r = k_nanosleep(&bad3, NULL);
	KT_CHECK(r == -EINVAL, "nanosleep(tv_nsec = -1) returned %s, expected -EINVAL", kt_errname(r));
	return 0;
}

static int t_clocks(void)
{
	uint64_t last = 0;
	for (int i = 0; i < 1000; i++) {
		struct timespec ts;
		long r = k_clock_gettime(CLOCK_MONOTONIC, &ts);
		KT_CHECK(r == 0, "clock_gettime(CLOCK_MONOTONIC) returned %s", kt_errname(r));
		KT_CHECK(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000, "tv_nsec %ld out of range", ts.tv_nsec);
		uint64_t t = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
		KT_CHECK(t >= last, "CLOCK_MONOTONIC went back by %llu ns", (unsigned long long)(last - t));
		last = t;
	}
	struct timespec rt;
	long r = k_clock_gettime(CLOCK_REALTIME, &rt);
	KT_CHECK(r == 0, "clock_gettime(CLOCK_REALTIME) returned %s", kt_errname(r));
	KT_CHECK(rt.tv_sec > 1577836800, "CLOCK_REALTIME is %ld s, before 2020", (long)rt.tv_sec);
	r = k_clock_gettime(1000, &rt);
	KT_CHECK(r == -EINVAL, "clock_gettime(clock 1000) returned %s, expected -EINVAL", kt_errname(r));
	return 0;
}

/* tsc_per_ms: TSC ticks per millisecond, measured over a 20 ms sleep. */
static uint64_t tsc_per_ms(void)
{
	uint64_t t0 = kt_now_ns(), c0 = kt_rdtsc();
	kt_sleep_ns(20000000);
	uint64_t t1 = kt_now_ns(), c1 = kt_rdtsc();
	uint64_t ms = (t1 - t0) / 1000000;
	return ms ? (c1 - c0) / ms : 1000000;
}

/* spin for ms milliseconds of TSC time without any syscall */
static void spin_ms(uint64_t per_ms, uint64_t ms)
{
	uint64_t end = kt_rdtsc() + per_ms * ms;
	volatile unsigned long x = 0;
	while (kt_rdtsc() < end)
		x++;
}

static int t_preempt_parent_spins(void)
{
	uint64_t per_ms = tsc_per_ms();
	long pid = k_fork();
	if (pid == 0) {
		spin_ms(per_ms, 20);
		k_exit(0);
	}
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	spin_ms(per_ms, 1000);
	int st = 0;
	long r = k_wait4(pid, &st, WNOHANG, NULL);
	if (r != pid) {
		kt_reap(pid, &st);
		return kt_fail("a child needing 20 ms of CPU had not finished while the parent spun for 1 s "
			       "without syscalls (wait4 WNOHANG: %s): no preemption?",
			       kt_errname(r));
	}
	KT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status 0x%x", st);
	return 0;
}

static int t_preempt_child_spins(void)
{
	uint64_t per_ms = tsc_per_ms();
	long pid = k_fork();
	if (pid == 0) {
		spin_ms(per_ms, 20000);
		k_exit(99);
	}
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	uint64_t a = kt_now_ns();
	kt_sleep_ns(50000000);
	uint64_t b = kt_now_ns();
	k_kill(pid, SIGKILL);
	int e = kt_expect_signal(pid, SIGKILL, "spinning child");
	KT_CHECK(b - a < 2000000000ULL, "a 50 ms sleep took %llu ms while a child spun",
		 (unsigned long long)((b - a) / 1000000));
	return e;
}

static int t_misc_errors(void)
{
	long r = k_kill(k_getpid(), 65);
	KT_CHECK(r == -EINVAL, "kill(self, 65) returned %s, expected -EINVAL", kt_errname(r));
	char buf[64];
	r = k_ioctl(100, 0x5401 /* TCGETS */, buf);
	KT_CHECK(r == -EBADF, "ioctl(bad fd) returned %s, expected -EBADF", kt_errname(r));
	r = k_sched_yield();
	KT_CHECK(r == 0, "sched_yield returned %s", kt_errname(r));
	return 0;
}

static const struct ktest tests[] = {
	{ "sys::uname_fields", t_uname, 0 },
	{ "sys::sysinfo_fields_and_accounting", t_sysinfo, 0 },
	{ "sys::getpid_gettid_set_tid_address", t_ids, 0 },
	{ "sys::arch_prctl_set_fs_and_fork", t_arch_prctl, 0 },
	{ "sys::arch_prctl_bad_base_eperm", t_arch_prctl_bad, 0 },
	{ "sys::unknown_syscalls_enosys", t_enosys, 0 },
	{ "sys::nanosleep_duration_and_einval", t_nanosleep, 0 },
	{ "sys::clock_gettime_monotonic_realtime", t_clocks, 0 },
	{ "sys::preemption_parent_spins", t_preempt_parent_spins, 0 },
	{ "sys::preemption_child_spins", t_preempt_child_spins, 0 },
	{ "sys::kill_bad_signal_ioctl_bad_fd_sched_yield", t_misc_errors, 0 },
};

int main(int argc, char **argv, char **envp)
{
	struct utsname u;
	memset(&u, 0, sizeof u);
	k_uname(&u);
	snprintf(kt_note, sizeof kt_note, "sys: %s %s %s", u.sysname, u.release, u.machine);
	return ktest_main("t_sys", tests, sizeof tests / sizeof tests[0], argc, argv, envp);
}
