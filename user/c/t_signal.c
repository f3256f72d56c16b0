/*
 * t_signal - POSIX signals as Linux delivers them: handlers with siginfo and ucontext,
 * the registers saved in the frame (REG_RIP, si_addr, xmm7 and MXCSR), a hostile
 * rt_sigreturn, default actions (abort() ends with SIGABRT), alarm, SA_RESTART, blocked
 * signals, fault signals that cannot be blocked, process-group kill, timers that
 * saturate where Linux's do, SIGCHLD at a child's end (and autoreaping when it is
 * ignored), wait4's options.
 *
 * ktest: host (runs on Linux too, same expected output)
 * ktest: libc=musl,glibc (built twice: t_signal with musl, t_signal_glibc with glibc)
 *
 * Every check calls libc's wrappers (sigaction, kill, alarm, waitpid, setpgid, abort),
 * as real programs do; raw syscalls only where the point is a register or a forged frame.
 */
#define _GNU_SOURCE
#include "ktest.h"
#include <poll.h>
#include <setjmp.h>
#include <sys/syscall.h>
#include <stdlib.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

static volatile sig_atomic_t got_sig;
static volatile int got_code, got_pid;
static volatile uintptr_t got_addr, got_rip;
static volatile unsigned got_mxcsr;

static int install(int sig, void (*fn)(int, siginfo_t *, void *), int flags)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = fn;
	sa.sa_flags = SA_SIGINFO | flags;
	sigemptyset(&sa.sa_mask);
	return sigaction(sig, &sa, NULL);
}

static void record(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	got_sig = sig;
	got_code = si->si_code;
	got_pid = si->si_pid;
}

/* kill(self): the handler runs before kill() returns, with SI_USER and our pid. */
static int t_handler_siginfo(void)
{
	got_sig = 0;
	KT_CHECK(install(SIGUSR1, record, 0) == 0, "sigaction(SIGUSR1): %s", strerror(errno));
	KT_CHECK(kill(getpid(), SIGUSR1) == 0, "kill(self, SIGUSR1): %s", strerror(errno));
	kout("# handler ran: sig %d, si_code %d, si_pid %d (our pid %d)\n", (int)got_sig, got_code, got_pid,
	     (int)getpid());
	KT_CHECK(got_sig == SIGUSR1, "the SIGUSR1 handler did not run before kill() returned");
	KT_CHECK(got_code == SI_USER, "si_code %d, want SI_USER (0)", got_code);
	KT_CHECK(got_pid == getpid(), "si_pid %d, want %d", got_pid, (int)getpid());
	return 0;
}

/* The faulting instruction and the one after it, at known addresses. */
extern char fault_insn[], fault_after[];

static void on_segv(int sig, siginfo_t *si, void *ucv)
{
	ucontext_t *uc = ucv;
	got_sig = sig;
	got_code = si->si_code;
	got_addr = (uintptr_t)si->si_addr;
	got_rip = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
	/* Skip the faulting load: the process goes on after the handler returns. */
	uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)fault_after;
}

/* A load from address 0x10: SIGSEGV with si_addr 0x10, SEGV_MAPERR, REG_RIP at the
 * load; changing REG_RIP in the handler resumes after it. */
static int t_segv_handler_rip_addr(void)
{
	got_sig = 0;
	KT_CHECK(install(SIGSEGV, on_segv, 0) == 0, "sigaction(SIGSEGV): %s", strerror(errno));
	unsigned char v = 0;
	__asm__ volatile(".globl fault_insn\nfault_insn: movb (%1), %0\n.globl fault_after\nfault_after:"
			 : "=q"(v)
			 : "r"(0x10UL)
			 : "memory");
	(void)v;
	kout("# SIGSEGV handler: si_addr %#lx, si_code %d, REG_RIP %#lx (the load is at %p)\n",
	     (unsigned long)got_addr, got_code, (unsigned long)got_rip, (void *)fault_insn);
	KT_CHECK(got_sig == SIGSEGV, "no SIGSEGV handler ran");
	KT_CHECK(got_addr == 0x10, "si_addr %#lx, want 0x10", (unsigned long)got_addr);
	KT_CHECK(got_code == SEGV_MAPERR, "si_code %d, want SEGV_MAPERR (1)", got_code);
	KT_CHECK(got_rip == (uintptr_t)fault_insn, "REG_RIP %#lx, want the load at %p", (unsigned long)got_rip,
		 (void *)fault_insn);
	return 0;
}

static void clobber_fpu(int sig, siginfo_t *si, void *uc)
{
	(void)si;
	(void)uc;
	unsigned m;
	__asm__ volatile("stmxcsr %0" : "=m"(m));
	got_mxcsr = m;
	got_sig = sig;
	unsigned zero = 0x1f80;
	__asm__ volatile("pxor %%xmm7, %%xmm7\n ldmxcsr %0" : : "m"(zero) : "xmm7");
}

/* xmm7 and MXCSR survive a handler that clobbers them; the handler starts with the
 * default MXCSR (Linux gives handlers a clean FPU state). */
static int t_fpu_state_preserved(void)
{
	got_sig = 0;
	KT_CHECK(install(SIGUSR2, clobber_fpu, 0) == 0, "sigaction(SIGUSR2): %s", strerror(errno));
	uint64_t in[2] = { 0x0123456789abcdefULL, 0xfedcba9876543210ULL }, out[2] = { 0, 0 };
	unsigned mx = 0x7f80 | 0x6000, mo = 0; /* round toward zero, all exceptions masked */
	long pid = getpid();
	__asm__ volatile("movdqu %[in], %%xmm7\n"
			 "ldmxcsr %[mx]\n"
			 "mov $62, %%eax\n" /* kill(pid, SIGUSR2): the handler runs on its way out */
			 "syscall\n"
			 "movdqu %%xmm7, %[out]\n"
			 "stmxcsr %[mo]\n"
			 : [out] "=m"(out), [mo] "=m"(mo)
			 : [in] "m"(in), [mx] "m"(mx), "D"(pid), "S"((long)SIGUSR2)
			 : "rax", "rcx", "r11", "xmm7", "memory");
	unsigned dflt = 0x1f80;
	__asm__ volatile("ldmxcsr %0" : : "m"(dflt));
	kout("# xmm7 after the handler %016llx%016llx, MXCSR %#x (set %#x); the handler saw MXCSR %#x\n",
	     (unsigned long long)out[1], (unsigned long long)out[0], mo, mx, got_mxcsr);
	KT_CHECK(got_sig == SIGUSR2, "the SIGUSR2 handler did not run");
	KT_CHECK(out[0] == in[0] && out[1] == in[1], "xmm7 was not restored after the handler");
	KT_CHECK(mo == mx, "MXCSR %#x after the handler, want %#x", mo, mx);
	KT_CHECK(got_mxcsr == 0x1f80, "the handler started with MXCSR %#x, want the default 0x1f80", got_mxcsr);
	return 0;
}

/* ---- rt_sigreturn with a forged frame ---------------------------------------------- */

/* Offsets in the kernel's ucontext (x86-64): uc_mcontext at 40, in it ip 128, sp 120,
 * eflags 136, cs/gs/fs/ss at 144; uc_sigmask at 296. */
static uint64_t fake_uc[304 / 8 + 64] __attribute__((aligned(16)));
static char fake_stack[8192] __attribute__((aligned(16)));

static void after_forged_return(void)
{
	unsigned long fl;
	__asm__ volatile("pushfq\npopq %0" : "=r"(fl));
	unsigned short cs;
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	/* IOPL (bits 12-13) must be 0, and we run in ring 3 with the normal code segment. */
	_exit(((fl >> 12) & 3) == 0 && (cs & 3) == 3 ? 42 : 43);
}

/* Run rt_sigreturn on a frame whose cs, eflags and rip we choose, in a child; return
 * its wait status. */
static int forged_sigreturn(uint64_t cs, uint64_t eflags, uint64_t rip)
{
	long pid = fork();
	if (pid == 0) {
		memset(fake_uc, 0, sizeof fake_uc);
		unsigned char *uc = (unsigned char *)fake_uc;
		uint64_t sp = (uint64_t)(uintptr_t)(fake_stack + sizeof fake_stack - 8);
		memcpy(uc + 40 + 128, &rip, 8);
		memcpy(uc + 40 + 120, &sp, 8);
		memcpy(uc + 40 + 136, &eflags, 8);
		uint64_t segs = cs | (0x2bULL << 48); /* ss = the user data selector */
		memcpy(uc + 40 + 144, &segs, 8);
		/* rt_sigreturn reads the ucontext at rsp (the frame starts 8 bytes below). */
		__asm__ volatile("mov %0, %%rsp\n mov $15, %%eax\n syscall\n ud2" : : "r"(fake_uc) : "memory");
		_exit(44);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	return st;
}

/* IOPL 3 and NT in the forged flags: masked, the process goes on at the given rip. A
 * kernel code segment: the process dies with SIGSEGV. A rip in the kernel half: the
 * process dies with SIGSEGV. The kernel survives each. */
static int t_hostile_sigreturn(void)
{
	uint64_t user_cs = 0x33, rip = (uint64_t)(uintptr_t)after_forged_return;
	char b[64];
	int st = forged_sigreturn(user_cs, 0x3202 | (1 << 14), rip);
	kout("# forged eflags with IOPL 3 and NT: %s\n", kt_status_str(st, b, sizeof b));
	KT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 42,
		 "forged IOPL: %s, want exit 42 (IOPL masked, back in ring 3)", kt_status_str(st, b, sizeof b));
	st = forged_sigreturn(0x08, 0x202, rip);
	kout("# forged CS = the kernel's code segment: %s\n", kt_status_str(st, b, sizeof b));
	KT_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "forged CS: %s, want SIGSEGV",
		 kt_status_str(st, b, sizeof b));
	st = forged_sigreturn(user_cs, 0x202, 0xffffffff81000000ULL);
	kout("# forged RIP in the kernel half: %s\n", kt_status_str(st, b, sizeof b));
	KT_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "forged RIP: %s, want SIGSEGV",
		 kt_status_str(st, b, sizeof b));
	st = forged_sigreturn(user_cs, 0x202, 0x0000800000000000ULL);
	kout("# forged non-canonical RIP: %s\n", kt_status_str(st, b, sizeof b));
	KT_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "non-canonical RIP: %s, want SIGSEGV",
		 kt_status_str(st, b, sizeof b));
	return 0;
}

/* ---- default actions, alarm, restart, masks, groups --------------------------------- */

static int t_abort_status(void)
{
	long pid = fork();
	if (pid == 0)
		abort();
	int st = 0;
	waitpid(pid, &st, 0);
	char b[64];
	kout("# abort(): %s\n", kt_status_str(st, b, sizeof b));
	KT_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "abort() ended with %s, want SIGABRT",
		 kt_status_str(st, b, sizeof b));
	return 0;
}

/* alarm(1) + pause(): the handler runs about a second later; pause returns EINTR. */
static int t_alarm_pause(void)
{
	got_sig = 0;
	KT_CHECK(install(SIGALRM, record, 0) == 0, "sigaction(SIGALRM): %s", strerror(errno));
	uint64_t t0 = kt_now_ns();
	KT_CHECK(alarm(1) == 0, "alarm(1) reported an earlier alarm");
	int r = pause();
	int e = errno;
	uint64_t ms = (kt_now_ns() - t0) / 1000000;
	kout("# alarm(1) + pause(): returned %d (%s) after %llu ms\n", r, strerror(e), (unsigned long long)ms);
	KT_CHECK(got_sig == SIGALRM, "no SIGALRM");
	KT_CHECK(r == -1 && e == EINTR, "pause() returned %d, errno %d, want -1 EINTR", r, e);
	KT_CHECK(ms >= 900 && ms < 3000, "SIGALRM after %llu ms, want about 1000", (unsigned long long)ms);
	KT_CHECK(alarm(0) == 0, "alarm(0) reported an alarm still set");
	return 0;
}

/* waitpid interrupted by SIGALRM: restarted with SA_RESTART, EINTR without. The handler
 * ends the child, so the order of events does not depend on timing. */
static volatile pid_t restart_child;

static void alarm_kills_child(int sig, siginfo_t *si, void *uc)
{
	record(sig, si, uc);
	kill(restart_child, SIGTERM);
}

static int t_sa_restart(void)
{
	for (int restart = 0; restart < 2; restart++) {
		KT_CHECK(install(SIGALRM, alarm_kills_child, restart ? SA_RESTART : 0) == 0, "sigaction: %s",
			 strerror(errno));
		long pid = fork();
		if (pid == 0) {
			for (;;)
				pause();
		}
		restart_child = (pid_t)pid;
		got_sig = 0;
		alarm(1);
		int st = 0;
		long r = waitpid(pid, &st, 0);
		int e = errno;
		kout("# waitpid interrupted by SIGALRM %s SA_RESTART: returned %ld%s%s\n", restart ? "with" : "without",
		     r, r < 0 ? ", errno " : "", r < 0 ? strerror(e) : "");
		KT_CHECK(got_sig == SIGALRM, "no SIGALRM during waitpid");
		if (restart) {
			KT_CHECK(r == pid && WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM,
				 "with SA_RESTART waitpid returned %ld, want the child %ld (killed by SIGTERM)", r, pid);
		} else {
			KT_CHECK(r == -1 && e == EINTR, "without SA_RESTART waitpid returned %ld, want -1 EINTR", r);
			KT_CHECK(waitpid(pid, &st, 0) == pid, "the child could not be reaped after EINTR");
		}
	}
	return 0;
}

/* A blocked signal stays pending until unblocked, then runs at once. */
static int t_blocked_then_unblocked(void)
{
	got_sig = 0;
	KT_CHECK(install(SIGUSR1, record, 0) == 0, "sigaction: %s", strerror(errno));
	sigset_t s, old;
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	KT_CHECK(sigprocmask(SIG_BLOCK, &s, &old) == 0, "sigprocmask: %s", strerror(errno));
	kill(getpid(), SIGUSR1);
	int while_blocked = got_sig;
	sigset_t pend;
	sigpending(&pend);
	int is_pending = sigismember(&pend, SIGUSR1);
	sigprocmask(SIG_SETMASK, &old, NULL);
	kout("# blocked: handler ran %s, pending %d; unblocked: handler ran %s\n", while_blocked ? "yes" : "no",
	     is_pending, got_sig ? "yes" : "no");
	KT_CHECK(!while_blocked, "the handler ran while SIGUSR1 was blocked");
	KT_CHECK(got_sig == SIGUSR1, "the handler did not run after unblocking");
	return 0;
}

/* A fault while its signal is blocked (or ignored) still kills: it cannot loop. */
static int t_blocked_fault_kills(void)
{
	for (int ignore = 0; ignore < 2; ignore++) {
		long pid = fork();
		if (pid == 0) {
			if (ignore) {
				signal(SIGSEGV, SIG_IGN);
			} else {
				sigset_t s;
				sigemptyset(&s);
				sigaddset(&s, SIGSEGV);
				sigprocmask(SIG_BLOCK, &s, NULL);
			}
			*(volatile int *)kt_launder(NULL) = 1;
			_exit(0);
		}
		int st = 0;
		waitpid(pid, &st, 0);
		char b[64];
		kout("# a fault with SIGSEGV %s: %s\n", ignore ? "ignored" : "blocked", kt_status_str(st, b, sizeof b));
		KT_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "%s SIGSEGV: %s, want death by SIGSEGV",
			 ignore ? "ignored" : "blocked", kt_status_str(st, b, sizeof b));
	}
	return 0;
}

/* kill(-pgid, SIGTERM) reaches every process of the group and nobody else. */
static int t_process_group_kill(void)
{
	long a = fork();
	if (a == 0) {
		setpgid(0, 0);
		pause();
		_exit(1);
	}
	setpgid(a, a); /* also from the parent, so there is no race */
	long b = fork();
	if (b == 0) {
		setpgid(0, a);
		pause();
		_exit(1);
	}
	setpgid(b, a);
	long outsider = fork();
	if (outsider == 0) {
		struct timespec ts = { 0, 300000000 };
		nanosleep(&ts, NULL);
		_exit(9);
	}
	KT_CHECK(getpgid(b) == a, "getpgid(b) = %d, want %ld", (int)getpgid(b), a);
	KT_CHECK(kill(-a, SIGTERM) == 0, "kill(-%ld, SIGTERM): %s", a, strerror(errno));
	int sa = 0, sb = 0, so = 0;
	waitpid(a, &sa, 0);
	waitpid(b, &sb, 0);
	waitpid(outsider, &so, 0);
	char b1[64], b2[64], b3[64];
	kout("# kill(-pgid, SIGTERM): leader %s, member %s, outsider %s\n", kt_status_str(sa, b1, sizeof b1),
	     kt_status_str(sb, b2, sizeof b2), kt_status_str(so, b3, sizeof b3));
	KT_CHECK(WIFSIGNALED(sa) && WTERMSIG(sa) == SIGTERM, "the group leader was not killed by SIGTERM");
	KT_CHECK(WIFSIGNALED(sb) && WTERMSIG(sb) == SIGTERM, "the group member was not killed by SIGTERM");
	KT_CHECK(WIFEXITED(so) && WEXITSTATUS(so) == 9, "the process outside the group was hit");
	return 0;
}

/* pidfd_open + poll: not readable while the child runs, readable (POLLIN) once it has
 * exited, which is how newer kselftest harnesses wait with a timeout. */
static int t_pidfd_poll(void)
{
	long pid = fork();
	if (pid == 0) {
		struct timespec ts = { 0, 200000000 };
		nanosleep(&ts, NULL);
		_exit(5);
	}
	int fd = (int)syscall(434 /* SYS_pidfd_open */, pid, 0);
	KT_CHECK(fd >= 0, "pidfd_open(%ld): %s", pid, strerror(errno));
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int r0 = poll(&pfd, 1, 0);
	short early = pfd.revents;
	uint64_t t0 = kt_now_ns();
	int r1 = poll(&pfd, 1, 5000);
	uint64_t ms = (kt_now_ns() - t0) / 1000000;
	kout("# pidfd: poll(0 ms) = %d (revents %#x) while the child runs; poll(5 s) = %d (revents %#x) after %llu ms\n",
	     r0, early, r1, pfd.revents, (unsigned long long)ms);
	KT_CHECK(r0 == 0, "poll reported the running child's pidfd ready (%d, %#x)", r0, early);
	KT_CHECK(r1 == 1 && (pfd.revents & POLLIN), "poll did not report the child's exit (%d, %#x)", r1, pfd.revents);
	KT_CHECK(ms < 3000, "poll returned after %llu ms, the child exits after 200", (unsigned long long)ms);
	int st = 0;
	KT_CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 5, "reaping the child failed");
	close(fd);
	return 0;
}

/*
 * Timer values past what Linux's ktime_t holds (i64 nanoseconds, ~292 years) saturate
 * at KTIME_MAX: getitimer reports 9223372036 s, not a wrapped or larger figure.
 */
static int t_itimer_saturates(void)
{
	struct itimerval it = { { INT64_MAX, 0 }, { 1000, 0 } }, got, off = { { 0, 0 }, { 0, 0 } };
	KT_CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0, "setitimer: %s", strerror(errno));
	KT_CHECK(getitimer(ITIMER_REAL, &got) == 0, "getitimer: %s", strerror(errno));
	setitimer(ITIMER_REAL, &off, NULL);
	kout("# interval {INT64_MAX s}: getitimer says %lld.%06lld s; value 1000 s: %lld s left\n",
	     (long long)got.it_interval.tv_sec, (long long)got.it_interval.tv_usec,
	     (long long)got.it_value.tv_sec);
	KT_CHECK(got.it_interval.tv_sec == 9223372036LL, "interval reads %lld s, Linux says 9223372036",
		 (long long)got.it_interval.tv_sec);
	KT_CHECK(got.it_value.tv_sec >= 998 && got.it_value.tv_sec <= 1000, "value reads %lld s",
		 (long long)got.it_value.tv_sec);
	return 0;
}

static volatile int got_status;

static void record_child(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	got_sig = sig;
	got_code = si->si_code;
	got_pid = si->si_pid;
	got_status = si->si_status;
}

/* Wait up to 2 s for a handler to have run. */
static int await_signal(void)
{
	for (int i = 0; i < 200 && !got_sig; i++) {
		struct timespec ts = { 0, 10000000 };
		nanosleep(&ts, NULL);
	}
	return got_sig;
}

/*
 * A child's end sends its parent SIGCHLD with si_pid, si_code CLD_EXITED / CLD_KILLED and
 * si_status (Linux do_notify_parent); the child stays a zombie until waited for.
 */
static int t_sigchld_reports(void)
{
	got_sig = 0;
	KT_CHECK(install(SIGCHLD, record_child, 0) == 0, "sigaction(SIGCHLD): %s", strerror(errno));
	pid_t pid = fork();
	if (pid == 0)
		_exit(7);
	KT_CHECK(pid > 0, "fork: %s", strerror(errno));
	await_signal();
	kout("# child %d exited 7: SIGCHLD %d, si_code %d, si_pid %d, si_status %d\n", (int)pid, (int)got_sig,
	     got_code, got_pid, got_status);
	KT_CHECK(got_sig == SIGCHLD, "no SIGCHLD when the child exited");
	KT_CHECK(got_code == CLD_EXITED && got_pid == pid && got_status == 7,
		 "si_code %d (want CLD_EXITED), si_pid %d (want %d), si_status %d (want 7)", got_code, got_pid,
		 (int)pid, got_status);
	int st = 0;
	KT_CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 7,
		 "the child was not left for waitpid");
	got_sig = 0;
	pid = fork();
	if (pid == 0) {
		kill(getpid(), SIGKILL);
		_exit(1);
	}
	await_signal();
	kout("# child %d killed: SIGCHLD %d, si_code %d, si_status %d\n", (int)pid, (int)got_sig, got_code,
	     got_status);
	KT_CHECK(got_sig == SIGCHLD && got_code == CLD_KILLED && got_status == SIGKILL,
		 "killed child: sig %d, si_code %d (want CLD_KILLED), si_status %d (want 9)", (int)got_sig, got_code,
		 got_status);
	waitpid(pid, &st, 0);
	signal(SIGCHLD, SIG_DFL);
	return 0;
}

/* SIGCHLD set to SIG_IGN: children leave no zombie, and waitpid ends with ECHILD. */
static int t_sigchld_ignored_autoreaps(void)
{
	KT_CHECK(signal(SIGCHLD, SIG_IGN) != SIG_ERR, "signal(SIGCHLD, SIG_IGN): %s", strerror(errno));
	pid_t pid = fork();
	if (pid == 0)
		_exit(3);
	KT_CHECK(pid > 0, "fork: %s", strerror(errno));
	int st = 0;
	pid_t r = waitpid(pid, &st, 0);
	int e = errno;
	signal(SIGCHLD, SIG_DFL);
	kout("# SIGCHLD ignored: waitpid(child) = %d (%s)\n", (int)r, r < 0 ? strerror(e) : "reaped");
	KT_CHECK(r == -1 && e == ECHILD, "waitpid returned %d (%s), want -1 ECHILD: the child was left a zombie",
		 (int)r, r < 0 ? strerror(e) : "reaped");
	return 0;
}

/*
 * wait4's options as Linux takes them: WUNTRACED and WCONTINUED are accepted; a child
 * that reports with SIGCHLD is invisible to __WCLONE; a clone child with no exit signal
 * is invisible without __WCLONE or __WALL, and __WALL reaps it.
 */
static int t_wait_options(void)
{
	pid_t pid = fork();
	if (pid == 0)
		_exit(5);
	int st = 0;
	KT_CHECK(waitpid(pid, &st, __WCLONE) == -1 && errno == ECHILD, "__WCLONE saw a SIGCHLD child");
	KT_CHECK(waitpid(pid, &st, WUNTRACED | WCONTINUED) == pid && WEXITSTATUS(st) == 5,
		 "waitpid(WUNTRACED | WCONTINUED): %s", strerror(errno));
	long c = syscall(SYS_clone, 0L /* no flags, no exit signal */, 0L, 0L, 0L, 0L);
	if (c == 0)
		syscall(SYS_exit, 6);
	KT_CHECK(c > 0, "clone(0): %s", strerror(errno));
	struct timespec ts = { 0, 20000000 };
	nanosleep(&ts, NULL);
	KT_CHECK(waitpid((pid_t)c, &st, WNOHANG) == -1 && errno == ECHILD,
		 "a child without exit signal was visible without __WCLONE");
	KT_CHECK(waitpid((pid_t)c, &st, __WALL) == c && WEXITSTATUS(st) == 6, "__WALL did not reap it: %s",
		 strerror(errno));
	kout("# __WCLONE skips a fork child; a clone(0) child needs __WALL: both as Linux\n");
	return 0;
}

/*
 * A temporary mask (Linux saved_sigmask): sigsuspend and ppoll unblock SIGUSR1 for the
 * wait only; the pending signal's handler runs, the call returns EINTR, and SIGUSR1 is
 * blocked again afterwards. (ppoll used to put the old mask back before delivery: the
 * signal stayed pending and blocked, and the restarted call looped.)
 */
static int temp_mask_case(int use_ppoll)
{
	sigset_t block, empty, now;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigemptyset(&empty);
	KT_CHECK(sigprocmask(SIG_BLOCK, &block, NULL) == 0, "sigprocmask: %s", strerror(errno));
	got_sig = 0;
	KT_CHECK(install(SIGUSR1, record, 0) == 0, "sigaction: %s", strerror(errno));
	kill(getpid(), SIGUSR1); /* pending, blocked */
	KT_CHECK(got_sig == 0, "a blocked SIGUSR1 was delivered");
	int r, e;
	if (use_ppoll) {
		struct timespec ts = { 2, 0 };
		r = ppoll(NULL, 0, &ts, &empty);
	} else {
		r = sigsuspend(&empty);
	}
	e = errno;
	sigprocmask(SIG_BLOCK, NULL, &now);
	int blocked_again = sigismember(&now, SIGUSR1);
	sigprocmask(SIG_UNBLOCK, &block, NULL);
	signal(SIGUSR1, SIG_DFL);
	kout("# %s with SIGUSR1 unblocked for the wait: returned %d (%s), handler ran: %s, blocked again: %s\n",
	     use_ppoll ? "ppoll" : "sigsuspend", r, strerror(e), got_sig == SIGUSR1 ? "yes" : "no",
	     blocked_again ? "yes" : "no");
	KT_CHECK(r == -1 && e == EINTR, "returned %d (%s), want EINTR", r, strerror(e));
	KT_CHECK(got_sig == SIGUSR1, "the handler did not run");
	KT_CHECK(blocked_again, "SIGUSR1 is not blocked again after the call");
	return 0;
}

static int t_sigsuspend(void) { return temp_mask_case(0); }
static int t_ppoll_mask(void) { return temp_mask_case(1); }

static const struct ktest tests[] = {
	{ "signal::sigsuspend_unblocks_for_the_wait", t_sigsuspend, 0 },
	{ "signal::ppoll_mask_until_the_handler", t_ppoll_mask, 0 },
	{ "signal::sigchld_reports_child_exit", t_sigchld_reports, 0 },
	{ "signal::sigchld_ignored_autoreaps", t_sigchld_ignored_autoreaps, 0 },
	{ "signal::wait4_options_as_linux", t_wait_options, 0 },
	{ "signal::itimer_saturates_at_ktime_max", t_itimer_saturates, 0 },
	{ "signal::pidfd_poll_reports_exit", t_pidfd_poll, 0 },
	{ "signal::handler_gets_siginfo", t_handler_siginfo, 0 },
	{ "signal::segv_handler_rip_and_si_addr", t_segv_handler_rip_addr, 0 },
	{ "signal::fpu_state_preserved", t_fpu_state_preserved, 0 },
	{ "signal::hostile_sigreturn", t_hostile_sigreturn, 0 },
	{ "signal::abort_is_sigabrt", t_abort_status, 0 },
	{ "signal::alarm_and_pause", t_alarm_pause, 0 },
	{ "signal::sa_restart", t_sa_restart, 0 },
	{ "signal::blocked_then_unblocked", t_blocked_then_unblocked, 0 },
	{ "signal::blocked_or_ignored_fault_kills", t_blocked_fault_kills, 0 },
	{ "signal::process_group_kill", t_process_group_kill, 0 },
};

int main(int argc, char **argv, char **envp)
{
	return ktest_main("t_signal", tests, sizeof tests / sizeof tests[0], argc, argv, envp);
}
