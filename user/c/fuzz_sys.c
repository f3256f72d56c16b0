/*
 * fuzz_sys: random system calls, to check that nothing a user program does brings the
 * kernel down (no panic, no hang, no leaked frame). Not a t_ program: scripts/fuzz.sh
 * boots it as /init (make test: a few thousand calls; make fuzz: a million).
 *
 *   fuzz_sys [SEED [CALLS [replay [FROM]]]]
 *
 * Without arguments it reads them from the file /fuzz.args (scripts/fuzz.sh packs one
 * into the initramfs: the kernel gives /init no arguments), else seed 1, 20000 calls.
 * `replay` prints every call before issuing it and its result after (from call FROM on,
 * if given), so a crash or a hang can be pinned to one call and reproduced: the random
 * choices of call N depend only on (SEED, N), not on what earlier calls returned.
 *
 * Structure. The first process is a supervisor: it takes the free-memory baseline
 * (sysinfo freeram, exact on memkernel), forks the worker, and watches it through a
 * shared page where the worker records each call before issuing it. If the worker
 * makes no progress for 30 s it prints the stuck call (and those of the worker's
 * children) and fails; if the worker is killed by a signal it prints the call it was
 * in. Once the worker is gone (and every orphan reaped) free memory must be back to the
 * baseline exactly. The supervisor prints "N passed, M failed" (1 test).
 *
 * The worker issues CALLS system calls chosen among those memkernel implements (the
 * table in kernel/src/syscall/mod.rs), plus unimplemented numbers and numbers with
 * garbage in the upper half. Arguments mix small integers, NULL, pointers into the
 * worker's own memory at page boundaries (an arena of ARENA_PAGES pages between two
 * PROT_NONE guard pages, and fixture pages whose objects can end exactly at, or run
 * into, a PROT_NONE page), read-only code and data, kernel and non-canonical addresses,
 * and huge lengths; 32-bit arguments sometimes carry garbage in the upper half. Files:
 * /proc/ps, /proc/self/ptes, /proc/self/exe, /proc/self/fail-nth, /dev/console,
 * /dev/hmm_dmirror0/1, initramfs files, directories and bad paths, and pipes (always
 * O_NONBLOCK: the worker holds both ends) with dup, dup2, dup3 and fcntl on all of them
 * (never onto fds 0-2; F_SETFL keeps O_NONBLOCK). Every 500 calls the arena is mapped afresh;
 * at call 125000 and every 250000 calls after it (long runs only), one new mapping is
 * cut into as many VMAs as the kernel allows (65530). clone's exit signal is SIGCHLD, none,
 * a signal the worker handles, or one past the last signal (never sent); children are
 * reaped with __WALL, which also sees those that do not report with SIGCHLD. Forked children (at most
 * MAX_CHILDREN alive) do a few random calls of their own, including the ones that end a
 * process (exit, a forged rt_sigreturn, execve, kill of themselves, a fault), then exit.
 *
 * What the worker does not do, because it would end or block the fuzzer itself, not
 * because of what the kernel might do:
 *   - exit, exit_group, rt_sigreturn, a successful execve: children only (the worker's
 *     execve of a program always has an argv or envp in kernel or non-canonical memory;
 *     a child's execve of itself exits at once: FUZZ_CHILD in its environment);
 *   - read from the console (fd 0-2, /dev/console): it waits for a key;
 *   - pause: only after arming a 1-3 ms ITIMER_REAL with the SIGALRM handler installed
 *     and SIGALRM unblocked; nanosleep/clock_nanosleep: valid times of at most 2 ms
 *     (absolute ones at most 2 ms ahead), any invalid time;
 *   - wait4 without WNOHANG: only for a child (which ends by itself within a few calls)
 *     or when it has no child at all;
 *   - kill/tkill/tgkill: any signal to its own children (and their groups) and to pids
 *     that cannot exist; to itself, its group, everyone (-1) and its parent only signal
 *     0 or the signals it handles (SIGALRM, SIGUSR1, SIGVTALRM, SIGPROF, SIGPIPE); on Linux only
 *     signal 0 to groups and -1 (the host's other processes are not ours);
 *   - rt_sigaction: SIGALRM/SIGUSR1/SIGVTALRM/SIGPROF/SIGPIPE get only a valid handler or
 *     SIG_IGN (never SA_RESETHAND), SIGCHLD a valid handler or SIG_DFL (no SIG_IGN or
 *     SA_NOCLDWAIT: its children must stay waitable), the fault signals only SIG_DFL
 *     (a fault the kernel injects must kill it visibly); any other signal gets anything;
 *   - munmap/mprotect/madvise/MAP_FIXED: within the arena, on mappings it made itself,
 *     or ranges that must fail (kernel or non-canonical addresses, ranges crossing the
 *     end of user space, lengths >= 2^47 or that overflow) - never its code, data,
 *     stack or fixtures. madvise never gets a length reaching past the arena without
 *     overflowing (Linux applies the advice to every mapping in the range, the stack
 *     included); mprotect gets one only on memkernel (Linux protects VMAs up to the
 *     first gap);
 *   - close of fd 0-2 (its output); arch_prctl(ARCH_SET_FS) is followed by restoring
 *     FS (the C library's thread pointer); brk never matters (no malloc);
 *   - reboot with valid magics and a defined command; clone with thread flags or an
 *     exit signal other than SIGCHLD/0 only on memkernel (ENOSYS/EINVAL there);
 *   - pointers the kernel may write through point into the arena or fail, never into
 *     its own data; console writes come from bad pointers or a page of dots, at most
 *     4 KiB (the serial console is slow and the log must stay readable).
 * On Linux (the host run, a sanity check of the fuzzer) it also avoids what would touch
 * the rest of the machine: files opened read-only and never created (relative paths
 * name files of the current directory), /dev/null for /dev/console, no ioctl on
 * fd 0-2 and only the known requests, no madvise HWPOISON/SOFT_OFFLINE, no resource
 * limit changes, no unknown syscall numbers below 1000, no clock_nanosleep on CPU-time
 * clocks, no rseq/clone3 with a valid size.
 */
#include "fuzz.h"
#include <elf.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/uio.h>

int main(int argc, char **argv, char **envp);

#define ARENA_PAGES 64
#define MAX_CHILDREN 16
#define MAX_MAPS 16
#define CHILD_MAX_CALLS 8
#define STALL_SECONDS 30
#define DEFAULT_CALLS 20000

#define K_SA_RESTORER 0x04000000UL
#define ARCH_SET_GS 0x1001
#define ARCH_SET_FS 0x1002
#define ARCH_GET_FS 0x1003
#define ARCH_GET_GS 0x1004
#define USER_END 0x00007ffffffff000UL

#ifndef SYS_rseq
#define SYS_rseq 334
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif

/* ------------------------------------------------------------------------------------ */
/* Parameters and shared state                                                           */
/* ------------------------------------------------------------------------------------ */

static uint64_t seed = 1, ncalls = DEFAULT_CALLS, replay_from;
static int replay, memk;

struct slot {
	volatile int64_t pid;
	volatile uint64_t call;
	volatile int64_t nr;
	volatile uint64_t a[6];
	volatile int in_call;
};

/* One page shared by the supervisor, the worker and its children (MAP_SHARED). */
struct shared {
	struct slot worker;
	struct slot child[MAX_CHILDREN];
	volatile uint64_t done;        /* calls the worker completed */
	volatile uint64_t beats;       /* system calls the worker issued (what the stall check watches) */
	volatile uint64_t child_calls; /* calls its children issued */
	volatile uint64_t children;    /* processes forked or cloned */
	volatile uint64_t sigs;        /* signals handled by the worker */
	volatile uint64_t armed;       /* calls issued with an allocation failure armed */
	volatile uint64_t injected;    /* ... whose failure was injected */
};
static struct shared *sh;
static struct slot *my_slot;

/* The worker's memory for arguments. */
static char *arena;  /* ARENA_PAGES pages, PROT_NONE page on each side */
static char *zone[4]; /* fixture zones, each followed by a PROT_NONE page */
static const uint64_t zone_size[4] = { 2 * 4096, 4096, 4096, 4096 };
/* zone 0: paths; 1: structures; 2: argv/envp, signal frames; 3: dots for the console */
static uint64_t initial_brk;
static const char rodata_blob[4096] = "read-only data: the kernel must not write here";

static int is_child;
static uint64_t cur_call;
static const char *cur_prefix = "";

/* Children (of the worker, or a child's own children). */
static long kids[MAX_CHILDREN];
static int nkids;

/* Mappings made by non-fixed mmap, unmapped later. */
static struct {
	uint64_t addr, len;
} maps[MAX_MAPS];
static int nmaps;

/* Open files. */
enum { FK_CONSOLE = 1, FK_PROC, FK_FILE, FK_DMIRROR, FK_OTHER, FK_MAYBLOCK };
static struct {
	int fd, kind;
} fdt[64];
static int nfdt;

/* Statistics per syscall number (worker only). */
static uint64_t st_calls[512], st_ok[512];

/* ------------------------------------------------------------------------------------ */
/* Random numbers: xorshift64, reseeded for every call from (seed, call, salt)            */
/* ------------------------------------------------------------------------------------ */

static uint64_t rs;
static uint64_t splitmix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}
static void rng_for(uint64_t call, uint64_t salt)
{
	rs = splitmix(splitmix(seed) ^ splitmix(call * 0x100000001b3ULL + salt)) | 1;
}
static uint64_t rnd(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return rs;
}
static uint64_t below(uint64_t n) { return n ? rnd() % n : 0; }
static int chance(int pct) { return (int)below(100) < pct; }
#define PICK(arr) ((arr)[below(sizeof(arr) / sizeof((arr)[0]))])

/* ------------------------------------------------------------------------------------ */
/* Signal handler, restorer, landing pads                                                */
/* ------------------------------------------------------------------------------------ */

void fz_restorer(void);
void fz_landing(void);
void fz_clone_child(void);
__asm__(".text\n"
	".globl fz_restorer\n"
	"fz_restorer:\n"
	"\tmov $15, %eax\n"
	"\tsyscall\n"
	"\thlt\n"
	".globl fz_landing\n"
	"fz_landing:\n" /* a forged rt_sigreturn frame that the kernel accepted lands here */
	"\tmov $231, %eax\n"
	"\tmov $90, %edi\n"
	"\tsyscall\n"
	"\thlt\n"
	".globl fz_clone_child\n"
	"fz_clone_child:\n" /* a clone child, on whatever stack it was given */
	"\tmov $231, %eax\n"
	"\tmov $91, %edi\n"
	"\tsyscall\n"
	"\thlt\n");

static void on_sig(int s)
{
	(void)s;
	if (sh && !is_child)
		__atomic_fetch_add(&sh->sigs, 1, __ATOMIC_RELAXED);
}

struct ksigaction {
	uint64_t handler, flags, restorer, mask;
};

/* ------------------------------------------------------------------------------------ */
/* Issuing calls: record, print (replay), count                                          */
/* ------------------------------------------------------------------------------------ */

static const char *sysname(long nr)
{
	switch (nr & 0xffffffff) {
	case 0: return "read";
	case 1: return "write";
	case 2: return "open";
	case 3: return "close";
	case 5: return "fstat";
	case 8: return "lseek";
	case 17: return "pread64";
	case 22: return "pipe";
	case 32: return "dup";
	case 33: return "dup2";
	case 72: return "fcntl";
	case 292: return "dup3";
	case 293: return "pipe2";
	case 9: return "mmap";
	case 10: return "mprotect";
	case 11: return "munmap";
	case 12: return "brk";
	case 13: return "rt_sigaction";
	case 14: return "rt_sigprocmask";
	case 15: return "rt_sigreturn";
	case 16: return "ioctl";
	case 20: return "writev";
	case 24: return "sched_yield";
	case 28: return "madvise";
	case 34: return "pause";
	case 35: return "nanosleep";
	case 36: return "getitimer";
	case 37: return "alarm";
	case 38: return "setitimer";
	case 39: return "getpid";
	case 56: return "clone";
	case 57: return "fork";
	case 59: return "execve";
	case 60: return "exit";
	case 61: return "wait4";
	case 62: return "kill";
	case 63: return "uname";
	case 89: return "readlink";
	case 99: return "sysinfo";
	case 109: return "setpgid";
	case 110: return "getppid";
	case 111: return "getpgrp";
	case 112: return "setsid";
	case 121: return "getpgid";
	case 124: return "getsid";
	case 127: return "rt_sigpending";
	case 158: return "arch_prctl";
	case 169: return "reboot";
	case 186: return "gettid";
	case 200: return "tkill";
	case 218: return "set_tid_address";
	case 228: return "clock_gettime";
	case 230: return "clock_nanosleep";
	case 231: return "exit_group";
	case 234: return "tgkill";
	case 257: return "openat";
	case 262: return "newfstatat";
	case 273: return "set_robust_list";
	case 302: return "prlimit64";
	case 318: return "getrandom";
	case 334: return "rseq";
	case 435: return "clone3";
	default: return "unknown";
	}
}

static int replaying(void) { return replay && cur_call >= replay_from; }

/* What the next call's arguments point to, for the replay output (e.g. the path). */
static char pending_note[96];

static void log_pre(long nr, const uint64_t *a, const char *note)
{
	struct slot *s = my_slot;
	if (s) {
		s->call = cur_call;
		s->nr = nr;
		for (int i = 0; i < 6; i++)
			s->a[i] = a[i];
		s->in_call = 1;
	}
	if (!note && pending_note[0])
		note = pending_note;
	if (replaying())
		kout("%s#%llu %s(%#llx, %#llx, %#llx, %#llx, %#llx, %#llx) [nr %#lx]%s%s\n", cur_prefix,
		     (unsigned long long)cur_call, sysname(nr), (unsigned long long)a[0],
		     (unsigned long long)a[1], (unsigned long long)a[2], (unsigned long long)a[3],
		     (unsigned long long)a[4], (unsigned long long)a[5], (unsigned long)nr,
		     note ? " " : "", note ? note : "");
}

static void log_post(long nr, long r)
{
	if (my_slot)
		my_slot->in_call = 0;
	if (is_child)
		__atomic_fetch_add(&sh->child_calls, 1, __ATOMIC_RELAXED);
	else {
		sh->beats++;
		unsigned long i = (unsigned long)(nr & 0xffffffff);
		if (i >= 512 || strcmp(sysname((long)i), "unknown") == 0)
			i = 511;
		st_calls[i]++;
		if (r >= 0 || r < -4095)
			st_ok[i]++;
	}
	if (replaying())
		kout("%s#%llu = %ld (%s)\n", cur_prefix, (unsigned long long)cur_call, r,
		     r < 0 && r > -4096 ? kt_errname(r) : "ok");
}

static long scn(const char *note, long nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
		uint64_t a5)
{
	uint64_t a[6] = { a0, a1, a2, a3, a4, a5 };
	log_pre(nr, a, note);
	pending_note[0] = 0;
	long r = ksys(nr, (long)a0, (long)a1, (long)a2, (long)a3, (long)a4, (long)a5);
	log_post(nr, r);
	return r;
}
#define sc(nr, a0, a1, a2, a3, a4, a5)                                                            \
	scn(NULL, (nr), (uint64_t)(a0), (uint64_t)(a1), (uint64_t)(a2), (uint64_t)(a3), (uint64_t)(a4), \
	    (uint64_t)(a5))

/* ------------------------------------------------------------------------------------ */
/* Argument generators                                                                   */
/* ------------------------------------------------------------------------------------ */

static const uint64_t bad_ptrs[] = {
	0,
	1,
	8,
	0xfff,
	0x1000,
	0x10000,
	USER_END - 8,
	USER_END,
	0x00007fffffffffffULL,
	/* from here on: never user memory, whatever the fuzzer mapped (see definitely_bad) */
	0x0000800000000000ULL,
	0x8000000000000000ULL,
	0xdead000000000000ULL,
	0xffff800000000000ULL,
	0xffff818000000000ULL,
	0xffff888000000000ULL,
	0xffffffff80000000ULL,
	0xfffffffffffff000ULL,
	0xffffffffffffffffULL,
};
#define N_BAD (sizeof bad_ptrs / sizeof bad_ptrs[0])
#define FIRST_DEFINITELY_BAD 9

static uint64_t bad_ptr(void) { return bad_ptrs[below(N_BAD)]; }
static uint64_t definitely_bad(void) { return bad_ptrs[FIRST_DEFINITELY_BAD + below(N_BAD - FIRST_DEFINITELY_BAD)]; }

/* Upper-half garbage for a 32-bit argument (the kernel must look at the low half only). */
static uint64_t garb(uint64_t v)
{
	if (chance(10))
		return (v & 0xffffffffULL) | (rnd() << 32);
	return v;
}

static uint64_t arena_ptr(void)
{
	static const uint64_t offs[] = { 0, 1, 8, 64, 2048, 4095, 4088, 4056, 4032, 3968, 3952, 3706 };
	long page = (long)below(ARENA_PAGES + 2) - 1; /* the guard pages too */
	uint64_t off = chance(30) ? 0 : chance(20) ? below(4096) : PICK(offs);
	return (uint64_t)(uintptr_t)arena + (uint64_t)(page * 4096) + off;
}

/* A pointer into one of the mappings the fuzzer made with mmap (at most 8 MiB of each
 * is ever written by the kernel: memory fills, but the machine's does not run out). */
static uint64_t map_ptr(void);

/* A pointer the kernel may read or write through. */
static uint64_t v_ptr(void)
{
	uint64_t k = below(100);
	if (k < 5) {
		uint64_t m = map_ptr();
		if (m)
			return m;
	}
	if (k < 60)
		return arena_ptr();
	if (k < 85)
		return bad_ptr();
	if (k < 93)
		return (uint64_t)(uintptr_t)&main + below(256); /* read-only code */
	return (uint64_t)(uintptr_t)rodata_blob + below(sizeof rodata_blob);
}
static uint64_t v_ptr_or_null(void) { return chance(25) ? 0 : v_ptr(); }

static uint64_t v_len(void)
{
	switch (below(20)) {
	case 0: return 0;
	case 1: return 1;
	case 2: return below(16);
	case 3: return below(512);
	case 4: return 4095;
	case 5: return 4096;
	case 6: return 4097;
	case 7: return 8192;
	case 8: return below(65536);
	case 9: return 1UL << 20;
	case 10: return 1UL << 31;
	case 11: return 1UL << 32;
	case 12: return 1UL << 47;
	case 13: return ~0UL;
	case 14: return -4096UL;
	case 15: return 0x7fffffffffffffffUL;
	case 16: return rnd();
	case 17: return 40;
	case 18: return 144;
	default: return 1 + below(4 * 4096);
	}
}

static uint64_t v_int(void)
{
	uint64_t v;
	switch (below(10)) {
	case 0: v = 0; break;
	case 1: v = 1; break;
	case 2: v = (uint64_t)-1L; break;
	case 3: v = below(8); break;
	case 4: v = below(100); break;
	case 5: v = 0x80000000UL; break;
	case 6: v = 0x7fffffffUL; break;
	case 7: v = (uint32_t)rnd(); break;
	case 8: v = rnd(); break;
	default: v = below(70); break;
	}
	return garb(v);
}

static uint64_t v_sig(void)
{
	uint64_t k = below(100);
	if (k < 80)
		return garb(below(66));
	return v_int();
}

/* Fixture zones: an object at the zone's start, ending exactly at its guard page, or
 * running into the guard (only the part before the guard is written). */
static char *zone_end(int z) { return zone[z] + zone_size[z]; }
static uint64_t place_mode(int z, const void *obj, size_t n, int mode)
{
	char *p;
	if (n > zone_size[z])
		n = zone_size[z];
	if (mode == 0 || n == 0)
		p = zone[z];
	else if (mode == 1)
		p = zone_end(z) - n;
	else
		p = zone_end(z) - n + 1 + below(n > 1 ? n - 1 : 1);
	size_t avail = (size_t)(zone_end(z) - p);
	memcpy(p, obj, n < avail ? n : avail);
	return (uint64_t)(uintptr_t)p;
}
static uint64_t place(int z, const void *obj, size_t n)
{
	uint64_t k = below(100);
	return place_mode(z, obj, n, k < 70 ? 0 : k < 90 ? 1 : 2);
}

/* ------------------------------------------------------------------------------------ */
/* Paths and files                                                                       */
/* ------------------------------------------------------------------------------------ */

enum { P_EXEC = 1, P_CONSOLE = 2, P_PROC = 4, P_FILE = 8, P_DMIRROR = 16, P_SELF = 32 };
static const struct {
	const char *path, *host; /* host: what Linux gets instead (NULL: the same) */
	int flags;
} paths[] = {
	{ "/proc/ps", NULL, P_PROC },
	{ "/proc/self/ptes", NULL, P_PROC },
	{ "/proc/self/exe", NULL, P_PROC | P_EXEC | P_SELF },
	{ "/proc/self/fail-nth", NULL, P_PROC },
	{ "/dev/console", "/dev/null", P_CONSOLE },
	{ "/dev/hmm_dmirror0", NULL, P_DMIRROR },
	{ "/dev/hmm_dmirror1", NULL, P_DMIRROR },
	{ "/dev/hmm_dmirror2", NULL, 0 },
	{ "/init", NULL, P_FILE | P_EXEC | P_SELF },
	{ "/bin/hello", "/bin/true", P_FILE | P_EXEC },
	{ "/bin/fuzz_sys", NULL, P_FILE | P_EXEC | P_SELF },
	{ "/fuzz.args", NULL, P_FILE },
	{ "/", NULL, 0 },
	{ "/bin", NULL, 0 },
	{ "/dev", NULL, 0 },
	{ "/proc", NULL, 0 },
	{ "/proc/self", NULL, 0 },
	{ "", NULL, 0 },
	{ "init", NULL, P_FILE | P_EXEC },
	{ "proc/ps", NULL, P_PROC },
	{ "/nonexistent", NULL, 0 },
	{ "/proc/ps/", NULL, 0 },
	{ "//proc//ps", NULL, P_PROC },
	{ "/init/x", NULL, 0 },
	{ "/bin/", NULL, 0 },
	{ "/proc/self/ptes\n", NULL, 0 },
	{ "/dev/console/..", NULL, 0 },
	{ NULL, NULL, 0 }, /* a path of 5000 bytes */
};
#define N_PATHS (sizeof paths / sizeof paths[0])

static const char *path_str(int i)
{
	static char longp[5001];
	if (!paths[i].path) {
		if (!longp[0]) {
			memset(longp, 'a', 5000);
			longp[0] = '/';
		}
		return longp;
	}
	return (!memk && paths[i].host) ? paths[i].host : paths[i].path;
}

/* A path argument; *idx = which string (or -1 for a bad pointer). */
static uint64_t v_path(int *idx)
{
	if (chance(8)) {
		*idx = -1;
		return bad_ptr();
	}
	/* the files that exist, more often than the rest */
	static const int useful[] = { 0, 1, 2, 3, 4, 5, 7, 8, 9, 10 };
	int i = chance(40) ? PICK(useful) : (int)below(N_PATHS);
	*idx = i;
	const char *s = path_str(i);
	uint64_t p = place(0, s, strlen(s) + 1);
	if (replaying())
		snprintf(pending_note, sizeof pending_note, "(path \"%.40s%s\"%s)", s, strlen(s) > 40 ? "..." : "",
			 (char *)(uintptr_t)p != zone[0] && zone_end(0) - (char *)(uintptr_t)p <= (long)strlen(s)
				 ? " cut by the guard page"
				 : "");
	return p;
}

static int fd_kind_for_path(int idx)
{
	if (idx < 0)
		return FK_MAYBLOCK;
	int f = paths[idx].flags;
	if (f & P_CONSOLE)
		return memk ? FK_CONSOLE : FK_OTHER;
	if (f & P_PROC)
		return FK_PROC;
	if (f & P_FILE)
		return FK_FILE;
	if (f & P_DMIRROR)
		return FK_DMIRROR;
	if (paths[idx].path == NULL || strcmp(paths[idx].path, "") == 0)
		return FK_OTHER;
	/* a directory or a name we did not expect to open: never read it */
	return memk ? FK_MAYBLOCK : FK_OTHER;
}

static int fdt_find(int fd)
{
	for (int i = 0; i < nfdt; i++)
		if (fdt[i].fd == fd)
			return i;
	return -1;
}
static void fdt_add(int fd, int kind)
{
	int i = fdt_find(fd);
	if (i >= 0) {
		fdt[i].kind = kind;
		return;
	}
	if (nfdt < 64) {
		fdt[nfdt].fd = fd;
		fdt[nfdt].kind = kind;
		nfdt++;
	}
}
static void fdt_del(int fd)
{
	int i = fdt_find(fd);
	if (i >= 0)
		fdt[i] = fdt[--nfdt];
}

/* The worker's /proc/self/fail-nth (see one_call_maybe_failing). No fuzzed call closes
 * it, duplicates onto it or otherwise touches it: were it closed behind the fuzz's back,
 * its number could come back as an untracked descriptor (a console, which read() waits
 * on for good: the stalls of the million-call runs). */
static long fail_fd = -1;

/* An fd that is not open (or out of range); never the fail-nth file. */
static uint64_t bad_fd(void)
{
	/* (Not 63: dup2 and F_DUPFD may make any fd below 64, a console among them.) */
	static const int64_t bad[] = { -1, 64, 1000, 0x7fffffff, -0x80000000L, 65, 4096, -100 };
	if (chance(50)) {
		for (int tries = 0; tries < 8; tries++) {
			int fd = 3 + (int)below(61);
			if (fdt_find(fd) < 0 && fd != fail_fd)
				return (uint64_t)fd;
		}
	}
	return (uint64_t)PICK(bad);
}

static int fd_is_console(int fd)
{
	if (fd >= 0 && fd <= 2)
		return 1;
	int i = fdt_find(fd);
	return i >= 0 && (fdt[i].kind == FK_CONSOLE || fdt[i].kind == FK_MAYBLOCK);
}

/* An fd that read() may use: never one that can block (the console). */
static uint64_t fd_for_read(void)
{
	if (nfdt && chance(90)) {
		int start = (int)below((uint64_t)nfdt);
		for (int k = 0; k < nfdt; k++) {
			int i = (start + k) % nfdt;
			if (fdt[i].kind != FK_CONSOLE && fdt[i].kind != FK_MAYBLOCK)
				return garb((uint64_t)fdt[i].fd);
		}
	}
	return garb(bad_fd());
}

/* Any fd: fd 0-2 (if allowed), an open one, or a bad one. */
static uint64_t fd_any(int allow_std)
{
	uint64_t k = below(100);
	if (k < 15 && allow_std)
		return garb(below(3));
	if (k < 80 && nfdt)
		return garb((uint64_t)fdt[below((uint64_t)nfdt)].fd);
	return garb(bad_fd());
}

/* A buffer for the console: bad memory, or the end of the page of dots. */
static uint64_t console_buf(void)
{
	if (chance(50))
		return definitely_bad();
	return (uint64_t)(uintptr_t)(zone_end(3) - 1 - below(64));
}

/* ------------------------------------------------------------------------------------ */
/* Children                                                                              */
/* ------------------------------------------------------------------------------------ */

static void kids_add(long pid)
{
	if (nkids < MAX_CHILDREN)
		kids[nkids++] = pid;
}
static void kids_del(long pid)
{
	if (!is_child)
		for (int i = 0; i < MAX_CHILDREN; i++)
			if (sh->child[i].pid == pid)
				sh->child[i].pid = 0;
	for (int i = 0; i < nkids; i++)
		if (kids[i] == pid) {
			kids[i] = kids[--nkids];
			return;
		}
}
static int kids_has(long pid)
{
	for (int i = 0; i < nkids; i++)
		if (kids[i] == pid)
			return 1;
	return 0;
}

/* Blocking wait for one child; on Linux, resume it first (a stopped child never ends). */
static void reap_blocking(long pid, int kill_it)
{
	int st;
	if (kill_it)
		sc(SYS_kill, pid, SIGKILL, 0, 0, 0, 0);
	else if (!memk)
		sc(SYS_kill, pid, SIGCONT, 0, 0, 0, 0);
	long r;
	do {
		/* __WALL: a clone child with another exit signal is invisible without it. */
		r = sc(SYS_wait4, pid, &st, memk ? __WALL : WUNTRACED | __WALL, 0, 0, 0);
		if (r == pid && !memk && WIFSTOPPED(st)) {
			sc(SYS_kill, pid, SIGKILL, 0, 0, 0, 0);
			r = -EINTR;
		}
	} while (r == -EINTR);
	kids_del(pid);
}

/* Make room for one more child: poll the oldest, then kill it. */
static void make_room(void)
{
	if (nkids < MAX_CHILDREN)
		return;
	long pid = kids[0];
	int st;
	for (int i = 0; i < 20; i++) {
		long r = sc(SYS_wait4, pid, &st, WNOHANG | __WALL, 0, 0, 0);
		if (r == pid || (r < 0 && r != -EINTR)) {
			kids_del(pid);
			return;
		}
		sc(SYS_sched_yield, 0, 0, 0, 0, 0, 0);
	}
	reap_blocking(pid, 1);
}

static int free_child_slot(void)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (sh->child[i].pid == 0)
			return i;
	return -1;
}

static void child_main(uint64_t parent_call, int slot);

/* ------------------------------------------------------------------------------------ */
/* The operations                                                                        */
/* ------------------------------------------------------------------------------------ */

static void op_read(void) { sc(SYS_read, fd_for_read(), v_ptr(), v_len(), 0, 0, 0); }

static void op_write(void)
{
	uint64_t fd = fd_any(1);
	if (fd_is_console((int)fd)) {
		uint64_t n = v_len();
		sc(SYS_write, fd, console_buf(), n > 4096 ? 4096 : n, 0, 0, 0);
	} else {
		sc(SYS_write, fd, v_ptr(), v_len(), 0, 0, 0);
	}
}

static uint64_t v_open_flags(void)
{
	static const uint64_t extra[] = { O_CREAT,    O_EXCL,	   O_TRUNC,   O_APPEND, O_NONBLOCK,
					  O_CLOEXEC,  O_DIRECTORY, O_NOFOLLOW, O_SYNC,   0x800000,
					  0x40000000, O_NOCTTY,    O_PATH,    O_TMPFILE };
	uint64_t f = below(4); /* O_RDONLY, O_WRONLY, O_RDWR, 3 (invalid) */
	if (chance(50)) {
		f = chance(60) ? O_RDONLY : O_RDWR;
	} else {
		int n = (int)below(3);
		for (int i = 0; i < n; i++)
			f |= PICK(extra);
		if (chance(5))
			f = (uint32_t)rnd();
	}
	/* Linux: read-only, and nothing created (relative paths name the host's files) */
	if (!memk)
		f &= ~(uint64_t)(O_ACCMODE | O_CREAT | O_TRUNC | O_TMPFILE);
	return garb(f);
}

static void opened(long r, int idx)
{
	if (r < 0)
		return;
	if (nfdt >= 64) {
		sc(SYS_close, r, 0, 0, 0, 0, 0);
		return;
	}
	fdt_add((int)r, fd_kind_for_path(idx));
}

static void op_open(void)
{
	int idx;
	uint64_t p = v_path(&idx);
	opened(sc(SYS_open, p, v_open_flags(), v_int(), 0, 0, 0), idx);
}

static void op_openat(void)
{
	int idx;
	uint64_t dfd = chance(60) ? garb((uint64_t)-100L) : fd_any(1);
	uint64_t p = v_path(&idx);
	opened(sc(SYS_openat, dfd, p, v_open_flags(), v_int(), 0, 0), idx);
}

static void op_close(void)
{
	uint64_t fd;
	if (nfdt && chance(50))
		fd = garb((uint64_t)fdt[below((uint64_t)nfdt)].fd);
	else if (is_child && chance(10))
		fd = below(3);
	else
		fd = garb(bad_fd());
	if (!is_child && ((uint32_t)fd <= 2 || (int32_t)fd == fail_fd))
		return;
	long r = sc(SYS_close, fd, 0, 0, 0, 0, 0);
	if (r == 0)
		fdt_del((int)(uint32_t)fd);
}

static void op_fstat(void) { sc(SYS_fstat, fd_any(1), v_ptr(), 0, 0, 0, 0); }

/* A file position: small, page-sized, past any file, negative, or huge. */
static uint64_t v_pos(void)
{
	static const uint64_t pos[] = { 0, 1, 7, 4096, 1 << 20, (uint64_t)-1, (uint64_t)-4096, 1ULL << 62, 1ULL << 63 };
	return pos[below(sizeof pos / sizeof pos[0])];
}

static void op_pread64(void) { sc(SYS_pread64, fd_for_read(), v_ptr(), v_len(), v_pos(), 0, 0); }
static void op_lseek(void) { sc(SYS_lseek, fd_any(1), v_pos(), garb(below(5)), 0, 0, 0); }

/*
 * Pipes and descriptors. The fuzz's pipes are always O_NONBLOCK (F_SETFL keeps it set):
 * the worker holds both ends, so a read of an empty pipe or a write to a full one would
 * wait forever. New descriptors never land on 0-2 or on the fail-nth file.
 */
static void track_new_fd(long r, long from)
{
	if (r < 0)
		return;
	if (r <= 2 || r == fail_fd || nfdt >= 64) {
		if (r > 2 && r != fail_fd)
			sc(SYS_close, r, 0, 0, 0, 0, 0);
		return;
	}
	int i = fdt_find((int)from);
	fdt_add((int)r, from <= 2 ? FK_CONSOLE : i >= 0 ? fdt[i].kind : FK_OTHER);
}

static uint64_t v_newfd(void)
{
	uint64_t k = below(100);
	if (k < 40 && nfdt) {
		int fd = fdt[below((uint64_t)nfdt)].fd;
		if (fd > 2 && fd != fail_fd)
			return (uint64_t)fd;
	}
	uint64_t fd = k < 85 ? 20 + below(44) : bad_fd();
	return fd == (uint64_t)fail_fd || fd <= 2 ? 64 : fd;
}

static void op_pipe2(void)
{
	static int pfd[2];
	uint64_t flags = 04000 /* O_NONBLOCK */ | (chance(50) ? 02000000 /* O_CLOEXEC */ : 0) |
			 (chance(10) ? 040000 /* O_DIRECT */ : 0) | (chance(5) ? 1ULL << below(32) : 0);
	uint64_t ptr = chance(95) ? (uint64_t)(uintptr_t)pfd : definitely_bad();
	pfd[0] = pfd[1] = -1;
	if (sc(SYS_pipe2, ptr, flags, 0, 0, 0, 0) == 0 && ptr == (uint64_t)(uintptr_t)pfd) {
		track_new_fd(pfd[0], -1);
		track_new_fd(pfd[1], -1);
	}
}

static void op_dup(void)
{
	uint64_t old = fd_any(1);
	track_new_fd(sc(SYS_dup, old, 0, 0, 0, 0, 0), (long)(int32_t)old);
}

static void op_dup2(void)
{
	uint64_t old = fd_any(1), nw = v_newfd();
	long r = chance(50) ? sc(SYS_dup2, old, nw, 0, 0, 0, 0)
			    : sc(SYS_dup3, old, nw, chance(80) ? 02000000 : garb(rnd() & 0xffffffff), 0, 0, 0);
	track_new_fd(r, (long)(int32_t)old);
}

static void op_fcntl(void)
{
	static const uint64_t cmds[] = { 0, 1, 2, 3, 4, 1030, 5, 1024, 0xffff };
	uint64_t fd = fd_any(1), cmd = PICK(cmds);
	uint64_t arg = cmd == 4 ? (rnd() | 04000) /* F_SETFL: never clear O_NONBLOCK */
		     : cmd == 0 || cmd == 1030 ? (chance(80) ? 20 + below(50) : v_int())
		     : rnd();
	if (cmd == 4 && (uint32_t)fd <= 2)
		return; /* the console stays as the supervisor has it */
	long r = sc(SYS_fcntl, fd, garb(cmd), arg, 0, 0, 0);
	if (cmd == 0 || cmd == 1030)
		track_new_fd(r, (long)(int32_t)fd);
}

static void op_newfstatat(void)
{
	static const uint64_t flags[] = { 0, 0x1000, 0x100, 0x800, 0x1100, 0x2, 0xffffffff };
	int idx;
	uint64_t dfd = chance(50) ? garb((uint64_t)-100L) : fd_any(1);
	uint64_t p = v_path(&idx);
	sc(SYS_newfstatat, dfd, p, v_ptr(), garb(PICK(flags)), 0, 0);
}

static void op_readlink(void)
{
	int idx;
	uint64_t p;
	if (chance(40)) {
		idx = 2;
		p = place(0, "/proc/self/exe", 15);
	} else {
		p = v_path(&idx);
	}
	sc(SYS_readlink, p, v_ptr(), v_int(), 0, 0, 0);
}

/* --- memory ------------------------------------------------------------------------ */

static uint64_t arena_base(void) { return (uint64_t)(uintptr_t)arena; }
static uint64_t arena_end(void) { return arena_base() + ARENA_PAGES * 4096UL; }

/* A range inside the arena (possibly unaligned or of length 0). */
static void arena_range(uint64_t *addr, uint64_t *len)
{
	uint64_t p = below(ARENA_PAGES);
	uint64_t maxp = ARENA_PAGES - p;
	uint64_t n = 1 + below(chance(70) && maxp > 4 ? 4 : maxp);
	*addr = arena_base() + p * 4096;
	*len = n * 4096;
	if (chance(10))
		*len -= below(4096); /* rounds up: still inside */
	if (chance(5))
		*len = 0;
	if (chance(5) && *len >= 4096) {
		*addr += 1 + below(4095); /* unaligned: EINVAL, or rounded inside */
		*len -= 4096;
	}
}

enum { BR_KERNEL, BR_NONCANON, BR_WRAP, BR_CROSS_END, BR_LOW, BR_HUGE };
/* A range that must fail (BR_LOW: the lowest pages, which are nobody's). */
static void bad_range(int kind, uint64_t *addr, uint64_t *len)
{
	switch (kind) {
	case BR_KERNEL:
		*addr = bad_ptrs[12 + below(6)] & ~0xfffUL;
		*len = 4096 * (1 + below(4));
		break;
	case BR_NONCANON:
		*addr = chance(50) ? 0x0000800000000000ULL : 0x8000000000000000ULL;
		*len = 4096 * (1 + below(4));
		break;
	case BR_WRAP:
		*addr = arena_base() + below(ARENA_PAGES) * 4096;
		*len = -(*addr) + 4096 * below(3);
		break;
	case BR_CROSS_END:
		*addr = USER_END - 4096 * below(3);
		*len = 4096 * (2 + below(4));
		break;
	case BR_LOW:
		*addr = 4096 * below(16);
		*len = 4096 * (1 + below(4));
		break;
	default: /* BR_HUGE: from the arena, >= 2^47 */
		*addr = arena_base() + below(ARENA_PAGES) * 4096;
		*len = (1UL << 47) << below(16);
		break;
	}
}

static uint64_t map_ptr(void)
{
	if (!nmaps)
		return 0;
	int i = (int)below((uint64_t)nmaps);
	uint64_t len = maps[i].len < (8UL << 20) ? maps[i].len : (8UL << 20);
	if (len < 4096)
		return maps[i].addr;
	uint64_t page = below(len / 4096);
	return maps[i].addr + page * 4096 + (chance(50) ? 0 : 4096 - 8 * below(64));
}

static void maps_add(uint64_t addr, uint64_t len)
{
	if (nmaps == MAX_MAPS) {
		sc(SYS_munmap, maps[0].addr, maps[0].len, 0, 0, 0, 0);
		maps[0] = maps[--nmaps];
	}
	maps[nmaps].addr = addr;
	maps[nmaps].len = len;
	nmaps++;
}

static uint64_t v_prot(void)
{
	static const uint64_t odd[] = { 8, 0x10, 0x01000000, 0x02000000, 0x100000000UL, 0xffffffff };
	if (chance(85))
		return below(8);
	return PICK(odd) | below(8);
}

static void op_mmap(void)
{
	static const uint64_t type[] = { MAP_PRIVATE, MAP_PRIVATE, MAP_PRIVATE, MAP_SHARED, 0x03, 0, 4, 0xf };
	static const uint64_t extra[] = { MAP_FIXED,	MAP_FIXED,     0x100000 /* FIXED_NOREPLACE */,
					  MAP_POPULATE, MAP_NORESERVE, MAP_STACK,
					  MAP_GROWSDOWN, MAP_HUGETLB,  MAP_32BIT,
					  MAP_LOCKED,	MAP_NONBLOCK,  MAP_DENYWRITE,
					  MAP_EXECUTABLE, 0x4000000,   0x800000,
					  0x100000000UL, 21UL << 26 };
	uint64_t flags = PICK(type);
	if (chance(85))
		flags |= MAP_ANONYMOUS;
	int n = (int)below(3);
	for (int i = 0; i < n; i++)
		flags |= PICK(extra);
	uint64_t addr, len, prot = v_prot();
	int fixed = (flags & (MAP_FIXED | 0x100000)) != 0;
	if (fixed) {
		uint64_t k = below(100);
		if (k < 75) {
			arena_range(&addr, &len);
		} else {
			static const int kinds[] = { BR_KERNEL, BR_NONCANON, BR_WRAP, BR_CROSS_END, BR_LOW, BR_HUGE };
			bad_range(PICK(kinds), &addr, &len);
		}
	} else {
		addr = chance(60) ? 0 : chance(50) ? arena_ptr() : v_ptr();
		len = chance(70) ? 4096 * (1 + below(16)) : v_len();
	}
	if (!memk && !fixed && (flags & (MAP_POPULATE | MAP_LOCKED)) && len > (1UL << 20))
		len = 1UL << 20; /* Linux would populate it */
	uint64_t fd = (flags & MAP_ANONYMOUS) && chance(80) ? (uint64_t)-1L : fd_any(1);
	uint64_t off = chance(80) ? 0 : chance(50) ? 4096 * below(4) : v_len();
	long r = sc(SYS_mmap, addr, len, prot, flags, fd, off);
	if (!kt_is_err(r) && !fixed) {
		uint64_t a = (uint64_t)r;
		/* a hint inside the arena may be honoured: that part is the arena's anyway */
		if (a >= arena_base() && a < arena_end())
			return;
		maps_add(a, len);
	}
}

static void op_mprotect(void)
{
	uint64_t addr, len, k = below(100);
	if (k < 70) {
		arena_range(&addr, &len);
	} else if (k < 80 && nmaps) {
		int i = (int)below((uint64_t)nmaps);
		addr = maps[i].addr;
		len = maps[i].len;
	} else {
		static const int kinds_mk[] = { BR_KERNEL, BR_NONCANON, BR_WRAP, BR_CROSS_END, BR_LOW, BR_HUGE };
		static const int kinds_linux[] = { BR_KERNEL, BR_NONCANON, BR_WRAP, BR_CROSS_END, BR_LOW };
		bad_range(memk ? PICK(kinds_mk) : PICK(kinds_linux), &addr, &len);
	}
	sc(SYS_mprotect, addr, len, v_prot(), 0, 0, 0);
}

static void op_munmap(void)
{
	uint64_t addr, len, k = below(100);
	if (k < 60) {
		arena_range(&addr, &len);
	} else if (k < 75 && nmaps) {
		int i = (int)below((uint64_t)nmaps);
		addr = maps[i].addr;
		len = maps[i].len;
		long r = sc(SYS_munmap, addr, len, 0, 0, 0, 0);
		if (r == 0)
			maps[i] = maps[--nmaps];
		return;
	} else {
		static const int kinds[] = { BR_KERNEL, BR_NONCANON, BR_WRAP, BR_CROSS_END, BR_LOW, BR_HUGE };
		bad_range(PICK(kinds), &addr, &len);
	}
	sc(SYS_munmap, addr, len, 0, 0, 0, 0);
}

static void op_madvise(void)
{
	uint64_t addr, len, k = below(100);
	if (k < 75) {
		arena_range(&addr, &len);
	} else if (k < 82 && nmaps) {
		int i = (int)below((uint64_t)nmaps);
		addr = maps[i].addr;
		len = maps[i].len;
	} else {
		static const int kinds[] = { BR_KERNEL, BR_NONCANON, BR_WRAP, BR_CROSS_END, BR_LOW };
		bad_range(PICK(kinds), &addr, &len);
	}
	uint64_t adv;
	if (chance(50))
		adv = 4; /* MADV_DONTNEED */
	else if (chance(60))
		adv = below(26);
	else
		adv = v_int();
	/* Linux: no HWPOISON/SOFT_OFFLINE (root would really poison host pages), no
	 * POPULATE_READ/WRITE (a mapping made here may be gigabytes) */
	if (!memk && ((uint32_t)adv == 100 || (uint32_t)adv == 101 || (uint32_t)adv == 22 || (uint32_t)adv == 23))
		adv = 4;
	sc(SYS_madvise, addr, len, adv, 0, 0, 0);
}

static void op_brk(void)
{
	long cur = ksys1(SYS_brk, 0); /* not logged: brk(0) has no effect */
	uint64_t v;
	switch (below(8)) {
	case 0: v = 0; break;
	case 1: v = (uint64_t)cur + 4096 * below(64); break;
	case 2: v = (uint64_t)cur - 4096 * below(64); break;
	case 3: v = initial_brk + below(1 << 20); break;
	case 4: v = initial_brk - below(1 << 20); break;
	case 5: v = (uint64_t)cur + (1UL << (20 + below(20))); break;
	case 6: v = bad_ptr(); break;
	default: v = rnd(); break;
	}
	sc(SYS_brk, v, 0, 0, 0, 0, 0);
}

/* --- signals ----------------------------------------------------------------------- */

static int sig_handled(int s)
{
	return s == SIGALRM || s == SIGUSR1 || s == SIGVTALRM || s == SIGPROF || s == SIGPIPE;
}
static int sig_fault(int s)
{
	return s == SIGSEGV || s == SIGBUS || s == SIGILL || s == SIGFPE || s == SIGTRAP || s == SIGSYS;
}
static int sig_terminal(int s)
{
	return s == SIGHUP || s == SIGINT || s == SIGQUIT || s == SIGPIPE || s == SIGTERM || s == SIGTSTP ||
	       s == SIGTTIN || s == SIGTTOU || s == SIGWINCH || s == SIGCONT || s == SIGURG;
}

static uint64_t v_sa_flags(void)
{
	static const uint64_t f[] = { 0x10000000 /* RESTART */, 0x40000000 /* NODEFER */, 4 /* SIGINFO */,
				      0x08000000 /* ONSTACK */, 1 /* NOCLDSTOP */ };
	uint64_t x = K_SA_RESTORER;
	int n = (int)below(3);
	for (int i = 0; i < n; i++)
		x |= PICK(f);
	return x;
}

static void op_rt_sigaction(void)
{
	uint64_t sig = v_sig();
	int s = (int)(uint32_t)sig;
	uint64_t act;
	uint64_t k = below(100);
	if (k < 15) {
		act = 0;
	} else if (k < 25) {
		act = bad_ptr();
		/* a bad pointer the fuzzer mapped (low pages) could be read as an action */
		if (!is_child && (sig_handled(s) || s == SIGCHLD || sig_fault(s) || (!memk && sig_terminal(s))))
			act = definitely_bad();
	} else {
		struct ksigaction a;
		a.mask = chance(50) ? rnd() : 0;
		if (!is_child && sig_handled(s)) {
			a.handler = chance(70) ? (uint64_t)(uintptr_t)on_sig : (uint64_t)SIG_IGN;
			a.flags = v_sa_flags();
			a.restorer = (uint64_t)(uintptr_t)fz_restorer;
		} else if (!is_child && s == SIGCHLD) {
			a.handler = chance(50) ? (uint64_t)(uintptr_t)on_sig : (uint64_t)SIG_DFL;
			a.flags = v_sa_flags();
			a.restorer = (uint64_t)(uintptr_t)fz_restorer;
		} else if (!is_child && sig_fault(s)) {
			a.handler = (uint64_t)SIG_DFL;
			a.flags = v_sa_flags();
			a.restorer = (uint64_t)(uintptr_t)fz_restorer;
		} else if (!is_child && !memk && sig_terminal(s)) {
			static const uint64_t h[] = { 0, 1 };
			a.handler = chance(30) ? (uint64_t)(uintptr_t)on_sig : PICK(h);
			a.flags = v_sa_flags();
			a.restorer = (uint64_t)(uintptr_t)fz_restorer;
		} else {
			static const uint64_t h[] = { 0, 1, 2, 0xffffffffffffffffUL };
			a.handler = chance(30) ? PICK(h) : chance(50) ? v_ptr() : rnd();
			a.flags = chance(50) ? v_sa_flags() : rnd();
			a.restorer = chance(50) ? (uint64_t)(uintptr_t)fz_restorer : v_ptr();
		}
		/* the protected signals must find exactly this action: never cut by the guard */
		int protect = !is_child && (sig_handled(s) || s == SIGCHLD || sig_fault(s) ||
					    (!memk && sig_terminal(s)));
		act = protect ? place_mode(1, &a, sizeof a, (int)below(2)) : place(1, &a, sizeof a);
	}
	uint64_t size = chance(85) ? 8 : v_len();
	sc(SYS_rt_sigaction, sig, act, v_ptr_or_null(), size, 0, 0);
}

static void op_rt_sigprocmask(void)
{
	static const uint64_t how[] = { 0, 1, 2, 3, (uint64_t)-1L, 0x100000000UL };
	uint64_t set;
	uint64_t k = below(100);
	if (k < 20) {
		set = 0;
	} else if (k < 30) {
		set = bad_ptr();
	} else {
		uint64_t m = chance(50) ? rnd() : (1UL << below(64));
		set = place(1, &m, 8);
	}
	sc(SYS_rt_sigprocmask, garb(PICK(how)), set, v_ptr_or_null(), chance(85) ? 8 : v_len(), 0, 0);
}

static void op_rt_sigpending(void) { sc(SYS_rt_sigpending, v_ptr(), chance(85) ? 8 : v_len(), 0, 0, 0, 0); }

/* pause: arm a periodic 1-3 ms timer (the first expiry may come before pause does) with
 * the handler installed and SIGALRM unblocked first; disarm it after. */
static void op_pause(void)
{
	struct ksigaction a = { (uint64_t)(uintptr_t)on_sig, K_SA_RESTORER, (uint64_t)(uintptr_t)fz_restorer, 0 };
	uint64_t m = 1UL << (SIGALRM - 1);
	long us = 1000 * (long)(1 + below(3));
	struct {
		long is, iu, vs, vu;
	} it = { 0, us, 0, us }, off = { 0, 0, 0, 0 };
	sc(SYS_rt_sigaction, SIGALRM, place_mode(1, &a, sizeof a, 0), 0, 8, 0, 0);
	sc(SYS_rt_sigprocmask, 1 /* SIG_UNBLOCK */, place_mode(2, &m, 8, 0), 0, 8, 0, 0);
	sc(SYS_setitimer, 0, place_mode(3, &it, sizeof it, 0), 0, 0, 0, 0);
	sc(SYS_pause, 0, 0, 0, 0, 0, 0);
	sc(SYS_setitimer, 0, place_mode(3, &off, sizeof off, 0), 0, 0, 0, 0);
}

/* A timespec: valid (at most 2 ms; absolute: now + at most 2 ms, or in the past) or not. */
static uint64_t v_timespec(int clock, int absolute)
{
	struct {
		int64_t s, ns;
	} ts;
	uint64_t k = below(100);
	if (k < 10)
		return definitely_bad(); /* a low page the fuzzer mapped could hold a long time */
	if (k < 30) {
		static const int64_t bs[] = { -1, 0, 1, 1L << 62, INT64_MIN, INT64_MAX };
		static const int64_t bns[] = { -1, 1000000000, 1000000001, INT64_MAX, INT64_MIN };
		ts.s = PICK(bs);
		ts.ns = PICK(bns);
	} else if (!absolute) {
		ts.s = 0;
		ts.ns = (int64_t)below(2000000);
	} else if (chance(50)) {
		ts.s = (int64_t)below(3);
		ts.ns = (int64_t)below(1000000000);
	} else {
		struct timespec now;
		if (k_clock_gettime(clock, &now) < 0) {
			ts.s = 0;
			ts.ns = 0;
		} else {
			uint64_t ns = (uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec + below(2000000);
			ts.s = (int64_t)(ns / 1000000000ULL);
			ts.ns = (int64_t)(ns % 1000000000ULL);
		}
	}
	return place(1, &ts, sizeof ts);
}

static void op_nanosleep(void) { sc(SYS_nanosleep, v_timespec(1, 0), v_ptr_or_null(), 0, 0, 0, 0); }

static void op_clock_nanosleep(void)
{
	/* valid times only on clocks that advance while we sleep (CPU clocks would not) */
	static const int good[] = { 0, 1, 7, 0, 1 };
	static const int64_t bad[] = { 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, -1, -6, 1000 };
	int clock, flags = chance(30) ? 1 : chance(90) ? 0 : (int)rnd();
	uint64_t ts;
	if (chance(80)) {
		clock = PICK(good);
		ts = v_timespec(clock, flags & 1);
	} else {
		clock = (int)PICK(bad);
		struct {
			int64_t s, ns;
		} t = { -1, 0 };
		t.ns = chance(50) ? 1000000000 : -1;
		ts = chance(70) ? place(1, &t, sizeof t) : definitely_bad();
	}
	sc(SYS_clock_nanosleep, garb((uint64_t)(int64_t)clock), garb((uint64_t)(uint32_t)flags), ts,
	   v_ptr_or_null(), 0, 0);
}

static void op_getitimer(void) { sc(SYS_getitimer, garb(below(4)), v_ptr(), 0, 0, 0, 0); }

static void op_alarm(void)
{
	static const uint64_t secs[] = { 0, 1, 2, 3, 1000, 0xffffffff, 0x100000001UL };
	sc(SYS_alarm, chance(80) ? PICK(secs) : v_int(), 0, 0, 0, 0, 0);
}

static void op_setitimer(void)
{
	uint64_t nv;
	uint64_t k = below(100);
	if (k < 15) {
		nv = 0;
	} else if (k < 25) {
		nv = bad_ptr();
	} else {
		int64_t it[4];
		static const int64_t us[] = { 0, 1, 999, 1000, 5000, 999999, 1000000, -1 };
		static const int64_t s[] = { 0, 0, 0, 1, 100, -1, INT64_MAX };
		it[0] = PICK(s);
		it[1] = PICK(us);
		it[2] = PICK(s);
		it[3] = PICK(us);
		if (!memk && it[0] == 0 && it[1] > 0 && it[1] < 1000)
			it[1] = 1000; /* Linux would signal every microsecond */
		nv = place(1, it, sizeof it);
	}
	sc(SYS_setitimer, garb(below(100) < 80 ? 0 : below(4)), nv, v_ptr_or_null(), 0, 0, 0);
}

static void op_ids(void)
{
	static const long nrs[] = { SYS_getpid, SYS_gettid, SYS_getppid, SYS_getpgrp, SYS_sched_yield };
	long nr = PICK(nrs);
	if (chance(20))
		nr |= (long)(1 + below(0xffff)) << 32; /* the number is 32 bits */
	sc(nr, 0, 0, 0, 0, 0, 0);
}

/* --- processes --------------------------------------------------------------------- */

static long raw_clone(uint64_t flags, uint64_t newsp, uint64_t ptid, uint64_t ctid, uint64_t tls)
{
	long r;
	register uint64_t r10 __asm__("r10") = ctid;
	register uint64_t r8 __asm__("r8") = tls;
	__asm__ volatile("syscall\n\t"
			 "test %%rax, %%rax\n\t"
			 "jnz 1f\n\t"
			 "and $-16, %%rsp\n\t"
			 "call fz_clone_child\n\t"
			 "1:"
			 : "=a"(r)
			 : "a"((long)SYS_clone), "D"(flags), "S"(newsp), "d"(ptid), "r"(r10), "r"(r8)
			 : "rcx", "r11", "memory");
	return r;
}

static void op_clone(void)
{
	static const uint64_t handled[] = { 0x00100000, 0x00200000, 0x01000000 };
	static const uint64_t thread[] = { 0x100, 0x200, 0x400, 0x800, 0x4000, 0x8000, 0x10000, 0x80000, 0x20000000 };
	/* The exit signal: SIGCHLD, none, one the worker handles, or past the last signal
	 * (never sent); any other would kill the worker when the child ends. */
	static const uint64_t exit_sigs[] = { 0, SIGALRM, SIGUSR1, SIGVTALRM, SIGPROF, 65, 200, 255 };
	uint64_t flags = chance(85) ? SIGCHLD : PICK(exit_sigs);
	int n = (int)below(3);
	for (int i = 0; i < n; i++)
		flags |= PICK(handled);
	if (memk && chance(10))
		flags |= PICK(thread);
	uint64_t newsp = chance(50) ? 0 : chance(50) ? arena_ptr() : bad_ptr();
	uint64_t ptid = v_ptr(), ctid = v_ptr(), tls = rnd();
	make_room();
	uint64_t a[6] = { flags, newsp, ptid, ctid, tls, 0 };
	log_pre(SYS_clone, a, NULL);
	long r = raw_clone(flags, newsp, ptid, ctid, tls);
	log_post(SYS_clone, r);
	if (r > 0) {
		kids_add(r);
		if (!is_child)
			__atomic_fetch_add(&sh->children, 1, __ATOMIC_RELAXED);
	}
}

static void op_fork(void)
{
	make_room();
	int slot = is_child ? -1 : free_child_slot();
	uint64_t a[6] = { 0 };
	uint64_t call = cur_call;
	log_pre(SYS_fork, a, NULL);
	long r = ksys0(SYS_fork);
	if (r == 0) {
		if (is_child)
			k_exit(0); /* a grandchild: orphaned when its parent exits */
		child_main(call, slot);
	}
	log_post(SYS_fork, r);
	if (r > 0) {
		kids_add(r);
		if (!is_child)
			__atomic_fetch_add(&sh->children, 1, __ATOMIC_RELAXED);
		if (slot >= 0)
			sh->child[slot].pid = r;
	}
}

/* argv or envp for execve: a NULL-terminated array in zone 2 (or a bad pointer). */
static uint64_t v_strv(int bad_only)
{
	if (bad_only || chance(15))
		return definitely_bad();
	uint64_t *v = (uint64_t *)(void *)zone[2];
	int n = (int)below(6);
	char *strs = zone[2] + 2048;
	for (int i = 0; i < n; i++) {
		if (chance(80)) {
			snprintf(strs, 32, "a%d", (int)below(1000));
			v[i] = (uint64_t)(uintptr_t)strs;
			strs += 32;
		} else {
			v[i] = v_ptr();
		}
	}
	v[n] = 0;
	return (uint64_t)(uintptr_t)v;
}

static void op_execve(void)
{
	int idx;
	uint64_t p = v_path(&idx);
	/* a bad path pointer could be one the fuzzer mapped and the kernel wrote a path into */
	if (idx < 0)
		p = definitely_bad();
	int exe = idx >= 0 && (paths[idx].flags & P_EXEC);
	/* a path that names a program: argv or envp must be unreadable (the call must fail) */
	uint64_t argv, envp;
	if (exe) {
		if (chance(50)) {
			argv = definitely_bad();
			envp = chance(50) ? 0 : definitely_bad();
		} else {
			/* a readable argv array whose string is unreadable */
			uint64_t *v = (uint64_t *)(void *)zone[2];
			v[0] = definitely_bad();
			v[1] = 0;
			argv = (uint64_t)(uintptr_t)v;
			envp = 0;
		}
	} else {
		argv = chance(20) ? 0 : v_strv(0);
		envp = chance(40) ? 0 : v_strv(0);
	}
	sc(SYS_execve, p, argv, envp, 0, 0, 0);
}

static void op_wait4(void)
{
	long pid;
	uint64_t k = below(100);
	int child = 0;
	if (k < 30) {
		pid = -1;
	} else if (k < 40) {
		pid = 0;
	} else if (k < 65 && nkids) {
		pid = kids[below((uint64_t)nkids)];
		child = 1;
	} else if (k < 70 && nkids) {
		pid = -kids[below((uint64_t)nkids)];
	} else if (k < 80) {
		pid = 4194304 + (long)below(1 << 20);
	} else if (k < 85) {
		pid = INT32_MIN;
	} else {
		pid = (int32_t)rnd();
	}
	uint64_t options = WNOHANG;
	uint64_t o = below(100);
	if (o < 10)
		options = WNOHANG | (memk ? (1UL << (1 + below(31))) : 0);
	else if (o < 30 && (child || nkids == 0))
		options = 0;
	uint64_t ru = chance(70) ? 0 : v_ptr();
	int st;
	if (options == 0 && child) {
		reap_blocking(pid, 0);
		return;
	}
	uint64_t stp = chance(70) ? (uint64_t)(uintptr_t)&st : v_ptr_or_null();
	long r = sc(SYS_wait4, garb((uint64_t)pid), stp, garb(options), ru, 0, 0);
	if (r > 0)
		kids_del(r);
}

/* A kill target and a signal that the rules at the top allow. */
static void kill_args(long *pid, long *sig)
{
	uint64_t k = below(100);
	long s = (long)(uint32_t)v_sig();
	long handled[] = { 0, SIGALRM, SIGUSR1, SIGVTALRM, SIGPROF };
	if (k < 40 && nkids) {
		*pid = kids[below((uint64_t)nkids)];
		if (!memk && !is_child && (s == SIGSTOP || s == SIGTSTP || s == SIGTTIN || s == SIGTTOU))
			s = SIGCONT;
		*sig = s;
	} else if (k < 50 && nkids) {
		*pid = -kids[below((uint64_t)nkids)];
		*sig = s;
	} else if (k < 60) {
		*pid = k_getpid();
		*sig = is_child ? s : PICK(handled);
	} else if (k < 65) {
		*pid = k_getppid();
		*sig = PICK(handled);
		if (!memk && !is_child)
			*sig = 0;
	} else if (k < 75) {
		static const long g[] = { 0, -1 };
		*pid = PICK(g);
		if (chance(30))
			*pid = -k_getpid();
		*sig = memk ? PICK(handled) : 0;
	} else if (k < 90) {
		*pid = 4194304 + (long)below(1 << 20);
		if (chance(30))
			*pid = -*pid;
		*sig = s;
	} else {
		static const long ext[] = { INT32_MIN, INT32_MAX };
		*pid = PICK(ext);
		*sig = s;
	}
	if (chance(5))
		*sig = chance(50) ? 65 : (long)(uint32_t)rnd() | 0x100; /* invalid */
}

static void op_kill(void)
{
	long pid, sig;
	kill_args(&pid, &sig);
	sc(SYS_kill, garb((uint64_t)pid), garb((uint64_t)sig), 0, 0, 0, 0);
}

static void op_tkill(void)
{
	long pid, sig;
	kill_args(&pid, &sig);
	if (pid == -1 || pid == 0 || pid < -1)
		pid = pid == 0 ? 0 : 4194304 + 7; /* tkill has no groups: keep it harmless */
	sc(SYS_tkill, garb((uint64_t)pid), garb((uint64_t)sig), 0, 0, 0, 0);
}

static void op_tgkill(void)
{
	long pid, sig;
	kill_args(&pid, &sig);
	if (pid <= 0)
		pid = 4194304 + 9;
	long tgid = chance(80) ? pid : chance(50) ? k_getpid() : (long)(int32_t)rnd();
	if (tgid != pid && !memk)
		sig = 0;
	sc(SYS_tgkill, garb((uint64_t)tgid), garb((uint64_t)pid), garb((uint64_t)sig), 0, 0, 0);
}

static long v_pid(void)
{
	uint64_t k = below(100);
	if (k < 20)
		return 0;
	if (k < 35)
		return k_getpid();
	if (k < 55 && nkids)
		return kids[below((uint64_t)nkids)];
	if (k < 65)
		return 1;
	if (k < 80)
		return 4194304 + (long)below(1000);
	if (k < 90)
		return -1 - (long)below(10);
	return (int32_t)rnd();
}

static void op_setpgid(void)
{
	long pid = v_pid(), pgid = v_pid();
	sc(SYS_setpgid, garb((uint64_t)pid), garb((uint64_t)pgid), 0, 0, 0, 0);
}
static void op_setsid(void) { sc(SYS_setsid, 0, 0, 0, 0, 0, 0); }
static void op_getpgid(void) { sc(chance(50) ? SYS_getpgid : SYS_getsid, garb((uint64_t)v_pid()), 0, 0, 0, 0, 0); }

static void op_uname(void) { sc(SYS_uname, v_ptr(), 0, 0, 0, 0, 0); }
static void op_sysinfo(void) { sc(SYS_sysinfo, v_ptr(), 0, 0, 0, 0, 0); }

static void op_arch_prctl(void)
{
	static const uint64_t codes[] = { ARCH_SET_FS, ARCH_GET_FS, ARCH_SET_GS, ARCH_GET_GS, 0, 0x7fffffff,
					  0xffffffff };
	uint64_t code = PICK(codes);
	if (memk && chance(20))
		code = (uint32_t)rnd();
	uint64_t arg = chance(50) ? v_ptr() : rnd();
	if ((uint32_t)code == ARCH_SET_FS || (uint32_t)code == ARCH_SET_GS) {
		uint64_t saved = 0;
		uint64_t get = (uint32_t)code == ARCH_SET_FS ? ARCH_GET_FS : ARCH_GET_GS;
		ksys2(SYS_arch_prctl, get, &saved);
		uint64_t a[6] = { garb(code), arg, 0, 0, 0, 0 };
		log_pre(SYS_arch_prctl, a, "(then FS/GS restored)");
		long r = ksys2(SYS_arch_prctl, a[0], arg);
		/* back to the C library's thread pointer before any C library code runs */
		ksys2(SYS_arch_prctl, (uint32_t)code, saved);
		log_post(SYS_arch_prctl, r);
		return;
	}
	sc(SYS_arch_prctl, garb(code), arg, 0, 0, 0, 0);
}

static void op_reboot(void)
{
	static const uint64_t m2[] = { 672274793, 85072278, 369367448, 537993216 };
	static const uint64_t defined[] = { 0x01234567, 0xCDEF0123, 0x89ABCDEF, 0, 0x4321FEDC, 0xA1B2C3D4,
					    0xD000FCE2, 0x45584543 };
	uint64_t a = chance(50) ? 0xfee1deadUL : (uint32_t)rnd();
	uint64_t b = chance(50) ? PICK(m2) : (uint32_t)rnd();
	uint64_t cmd = chance(50) ? PICK(defined) : (uint32_t)rnd();
	if (!memk)
		a = 0x12345678; /* never a valid first magic on the host */
	int valid = (uint32_t)a == 0xfee1dead;
	int valid2 = 0;
	for (unsigned i = 0; i < 4; i++)
		valid2 |= (uint32_t)b == m2[i];
	if (valid && valid2) {
		for (unsigned i = 0; i < sizeof defined / sizeof defined[0]; i++)
			if ((uint32_t)cmd == defined[i])
				cmd = 0x13572468; /* an undefined command: EINVAL */
	}
	sc(SYS_reboot, garb(a), garb(b), garb(cmd), v_ptr(), 0, 0);
}

static void op_set_tid_address(void) { sc(SYS_set_tid_address, v_ptr_or_null(), 0, 0, 0, 0, 0); }
static void op_set_robust_list(void) { sc(SYS_set_robust_list, v_ptr_or_null(), chance(70) ? 24 : v_len(), 0, 0, 0, 0); }

static void op_clock_gettime(void)
{
	static const int64_t clocks[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, -1, -6, 1000 };
	sc(SYS_clock_gettime, garb((uint64_t)PICK(clocks)), v_ptr(), 0, 0, 0, 0);
}

static void op_prlimit64(void)
{
	long pid = chance(50) ? 0 : v_pid();
	if (!memk && pid != 0 && pid != k_getpid() && !kids_has(pid))
		pid = 4194304 + 11;
	uint64_t nl = 0;
	if (chance(40)) {
		if (memk && chance(70)) {
			uint64_t l[2] = { chance(50) ? rnd() : below(100), chance(50) ? ~0UL : rnd() };
			nl = place(1, l, sizeof l);
		} else {
			nl = definitely_bad();
		}
	}
	sc(SYS_prlimit64, garb((uint64_t)pid), garb(chance(80) ? below(17) : (uint32_t)rnd()), nl, v_ptr_or_null(),
	   0, 0);
}

static void op_getrandom(void)
{
	sc(SYS_getrandom, v_ptr(), v_len(), garb(chance(80) ? below(8) : (uint32_t)rnd()), 0, 0, 0);
}

static void op_enosys(void)
{
	if (!memk) {
		/* Linux: only sizes that are wrong, and numbers that do not exist */
		uint64_t k = below(3);
		if (k == 0)
			sc(SYS_rseq, v_ptr(), 3, 0, 0, 0, 0);
		else if (k == 1)
			sc(SYS_clone3, v_ptr(), 1, 0, 0, 0, 0);
		else
			sc(1000 + (long)below(100000), v_int(), v_ptr(), v_len(), 0, 0, 0);
		return;
	}
	long nr;
	uint64_t k = below(100);
	if (k < 30)
		nr = SYS_rseq;
	else if (k < 60)
		nr = SYS_clone3;
	else if (k < 98)
		nr = 300 + (long)below(200); /* mostly unimplemented numbers near the real ones */
	else
		nr = 512 + (long)below(1 << 20);
	/* skip the implemented ones in 300..499: those are fuzzed with their own arguments */
	if (nr == 302 || nr == 318)
		nr = 333;
	sc(nr, v_ptr(), v_len(), v_int(), v_ptr(), v_int(), v_int());
}

static void op_ioctl(void)
{
	static const uint64_t reqs[] = { 0xC0284800, 0xC0284801, 0xC0284804, 0xC0284805, 0xC0284806, 0xC0284840,
					 0xC0284841, 0xC0284802, 0xC0284803, 0xC0284807, 0x40284800, 0x5401,
					 0x5413,     0x5402,	 0x540F,     0x541B };
	uint64_t fd = fd_any(memk);
	if (chance(50))
		for (int i = 0; i < nfdt; i++)
			if (fdt[i].kind == FK_DMIRROR) {
				fd = (uint64_t)fdt[i].fd;
				break;
			}
	if (!memk && (uint32_t)fd <= 2)
		fd = garb(bad_fd());
	uint64_t req = PICK(reqs);
	if (memk && chance(10))
		req = (uint32_t)rnd();
	if (chance(30))
		req = (uint64_t)(int64_t)(int32_t)req; /* sign-extended, as musl passes it */
	req = garb(req);
	uint64_t arg;
	uint64_t k = below(100);
	if (k < 55) {
		uint64_t cmd[5];
		static const uint64_t np[] = { 0, 1, 2, 3, 16, 64, 65, 1024, 1025, 1UL << 52, ~0UL };
		cmd[0] = chance(75) ? arena_base() + below(ARENA_PAGES + 1) * 4096 : chance(50) ? arena_ptr() : bad_ptr();
		cmd[1] = chance(20) ? (uint64_t)(int64_t)(int32_t)rnd() : chance(50) ? arena_base() + 4096 * below(ARENA_PAGES) : v_ptr();
		cmd[2] = chance(70) ? 1 + below(8) : PICK(np);
		cmd[3] = rnd();
		cmd[4] = chance(50) ? 0 : rnd();
		arg = place(1, cmd, sizeof cmd);
	} else if (k < 85) {
		arg = v_ptr();
	} else {
		arg = v_int();
	}
	sc(SYS_ioctl, fd, req, arg, 0, 0, 0);
}

static void op_writev(void)
{
	static const uint64_t cnts[] = { 0, 1, 2, 3, 8, 16, 255, 256, 1024, 1025, (uint64_t)-1L };
	uint64_t fd = fd_any(1);
	int console = fd_is_console((int)(uint32_t)fd);
	uint64_t cnt = chance(85) ? PICK(cnts) : rnd();
	uint64_t *iov = (uint64_t *)(void *)zone[1];
	int n = (int)(cnt < 256 ? cnt : 256);
	for (int i = 0; i < 256; i++) {
		if (console) {
			/* at most 4 entries of at most 64 bytes reach the console */
			iov[2 * i] = i < 4 && i < n ? console_buf() : definitely_bad();
			iov[2 * i + 1] = below(65);
		} else if (i < n) {
			iov[2 * i] = v_ptr();
			iov[2 * i + 1] = chance(80) ? below(8192) : v_len();
		} else {
			iov[2 * i] = v_ptr();
			iov[2 * i + 1] = v_len();
		}
	}
	uint64_t base = (uint64_t)(uintptr_t)iov;
	if (chance(15))
		base = console ? definitely_bad() : bad_ptr();
	else if (chance(15) && n > 0)
		base = (uint64_t)(uintptr_t)(zone_end(1) - 16 * (uint64_t)n + (chance(50) ? 8 : 0));
	sc(SYS_writev, fd, base, cnt, 0, 0, 0);
}

/* --- what only children do ------------------------------------------------------- */

static void child_exit(void)
{
	uint64_t code = v_int();
	sc(chance(50) ? SYS_exit : SYS_exit_group, code, 0, 0, 0, 0, 0);
	k_exit(0);
}

static __attribute__((noreturn)) void jump_sigreturn(uint64_t sp)
{
	__asm__ volatile("mov %0, %%rsp\n\t"
			 "mov $15, %%eax\n\t"
			 "syscall\n\t"
			 "hlt"
			 :
			 : "r"(sp)
			 : "memory");
	__builtin_unreachable();
}

/* rt_sigreturn with a forged frame (Linux rt_sigframe without pretcode: the ucontext at
 * rsp; mcontext at +40: r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags,
 * cs/gs/fs/ss, err, trapno, oldmask, cr2, fpstate; sigmask at +296). */
static void child_sigreturn(void)
{
	uint64_t *w = (uint64_t *)(void *)zone[2];
	uint64_t k = below(100);
	for (int i = 0; i < 512; i++)
		w[i] = k < 25 ? rnd() : 0;
	uint64_t *uc = w + 8; /* the ucontext at rsp = zone 2 + 64 */
	uint64_t sp = (uint64_t)(uintptr_t)uc;
	if (k >= 25) {
		uint64_t *mc = uc + 5;
		for (int i = 0; i < 16; i++)
			mc[i] = chance(70) ? rnd() : 0;
		mc[16] = chance(80) ? (uint64_t)(uintptr_t)fz_landing : v_ptr(); /* rip */
		mc[17] = chance(70) ? 0x202 : rnd();				  /* eflags */
		uint64_t cs = chance(80) ? 0x33 : (uint64_t)(uint16_t)rnd();
		uint64_t ss = chance(80) ? 0x2b : (uint64_t)(uint16_t)rnd();
		mc[18] = cs | (ss << 48);
		if (chance(40)) {
			/* an FXSAVE area of random bytes (MXCSR included), 64-byte aligned */
			uint64_t *fx = w + 64;
			for (int i = 0; i < 64; i++)
				fx[i] = rnd();
			mc[23] = (uint64_t)(uintptr_t)fx;
		} else if (chance(30)) {
			mc[23] = v_ptr();
		}
		uc[37] = rnd(); /* sigmask */
	}
	if (chance(10))
		sp = (uint64_t)(uintptr_t)(zone_end(2) - 8 * below(64));
	else if (chance(5))
		sp = definitely_bad();
	uint64_t a[6] = { sp, 0, 0, 0, 0, 0 };
	log_pre(SYS_rt_sigreturn, a, "(child: forged frame at rsp = a0)");
	jump_sigreturn(sp);
}

static void child_exec(void)
{
	static const char *self[] = { "/init", "/bin/fuzz_sys", "/proc/self/exe" };
	static const char *other[] = { "/bin/hello", "/bin/true" };
	uint64_t *v = (uint64_t *)(void *)zone[2];
	char *s = zone[2] + 2048;
	if (chance(60)) {
		const char *p = memk ? self[below(2)] : self[2];
		uint64_t path = place_mode(0, p, strlen(p) + 1, 0);
		strcpy(s, "fuzz_sys");
		strcpy(s + 16, "--exit");
		strcpy(s + 32, "FUZZ_CHILD=1");
		v[0] = (uint64_t)(uintptr_t)s;
		v[1] = (uint64_t)(uintptr_t)(s + 16);
		v[2] = 0;
		v[3] = (uint64_t)(uintptr_t)(s + 32);
		v[4] = 0;
		if (chance(25)) {
			/* many long arguments (up to 250 of up to 1 KiB: E2BIG past the limit) */
			char *x = s + 64;
			memset(x, 'x', 1023);
			x[1023] = 0;
			uint64_t *big = v + 8;
			int n = 2 + (int)below(240);
			big[0] = v[0];
			big[1] = v[1];
			for (int i = 2; i < n; i++)
				big[i] = (uint64_t)(uintptr_t)(x + below(1000));
			big[n] = 0;
			sc(SYS_execve, path, big, v + 3, 0, 0, 0);
			return;
		}
		sc(SYS_execve, path, v, v + 3, 0, 0, 0);
	} else {
		const char *p = memk ? other[0] : other[1];
		uint64_t path = place_mode(0, p, strlen(p) + 1, 0);
		uint64_t argv = v_strv(0);
		uint64_t envp = chance(50) ? 0 : argv;
		sc(SYS_execve, path, argv, envp, 0, 0, 0);
	}
}

static void child_selfkill(void)
{
	long sig = (long)(uint32_t)v_sig();
	if (!memk && (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU))
		sig = SIGKILL;
	if (chance(50))
		sc(SYS_kill, k_getpid(), sig, 0, 0, 0, 0);
	else
		sc(SYS_tkill, k_gettid(), sig, 0, 0, 0, 0);
}

static void child_fault(void)
{
	uint64_t a[6] = { 0 };
	uint64_t addr = chance(50) ? definitely_bad() : arena_ptr();
	a[0] = addr;
	log_pre(-1, a, "(child: CPU access)");
	if (chance(50))
		(void)*(volatile uint8_t *)(uintptr_t)addr;
	else
		*(volatile uint8_t *)(uintptr_t)addr = 1;
	log_post(-1, 0);
}

/* --- the table --------------------------------------------------------------------- */

struct op {
	void (*fn)(void);
	int weight;
	int child_only;
};
static const struct op ops[] = {
	{ op_read, 60, 0 },
	{ op_write, 35, 0 },
	{ op_open, 45, 0 },
	{ op_openat, 20, 0 },
	{ op_close, 45, 0 },
	{ op_fstat, 20, 0 },
	{ op_pread64, 20, 0 },
	{ op_lseek, 15, 0 },
	{ op_pipe2, 10, 0 },
	{ op_dup, 8, 0 },
	{ op_dup2, 10, 0 },
	{ op_fcntl, 12, 0 },
	{ op_newfstatat, 20, 0 },
	{ op_readlink, 10, 0 },
	{ op_mmap, 60, 0 },
	{ op_mprotect, 50, 0 },
	{ op_munmap, 40, 0 },
	{ op_madvise, 40, 0 },
	{ op_brk, 15, 0 },
	{ op_rt_sigaction, 30, 0 },
	{ op_rt_sigprocmask, 20, 0 },
	{ op_rt_sigpending, 8, 0 },
	{ op_ioctl, 70, 0 },
	{ op_writev, 20, 0 },
	{ op_pause, 2, 0 },
	{ op_nanosleep, 6, 0 },
	{ op_clock_nanosleep, 6, 0 },
	{ op_getitimer, 8, 0 },
	{ op_alarm, 8, 0 },
	{ op_setitimer, 10, 0 },
	{ op_ids, 15, 0 },
	{ op_clone, 5, 0 },
	{ op_fork, 7, 0 },
	{ op_execve, 10, 0 },
	{ op_wait4, 20, 0 },
	{ op_kill, 20, 0 },
	{ op_tkill, 8, 0 },
	{ op_tgkill, 8, 0 },
	{ op_uname, 6, 0 },
	{ op_sysinfo, 6, 0 },
	{ op_setpgid, 8, 0 },
	{ op_setsid, 3, 0 },
	{ op_getpgid, 8, 0 },
	{ op_arch_prctl, 10, 0 },
	{ op_reboot, 5, 0 },
	{ op_set_tid_address, 5, 0 },
	{ op_set_robust_list, 5, 0 },
	{ op_clock_gettime, 10, 0 },
	{ op_prlimit64, 10, 0 },
	{ op_getrandom, 15, 0 },
	{ op_enosys, 6, 0 },
	{ child_exit, 25, 1 },
	{ child_sigreturn, 25, 1 },
	{ child_exec, 15, 1 },
	{ child_selfkill, 25, 1 },
	{ child_fault, 10, 1 },
};
#define N_OPS (sizeof ops / sizeof ops[0])

static void one_call(void)
{
	int total = 0;
	for (unsigned i = 0; i < N_OPS; i++)
		if (is_child || !ops[i].child_only)
			total += ops[i].weight;
	int x = (int)below((uint64_t)total);
	for (unsigned i = 0; i < N_OPS; i++) {
		if (!is_child && ops[i].child_only)
			continue;
		if (x < ops[i].weight) {
			ops[i].fn();
			return;
		}
		x -= ops[i].weight;
	}
}

/* ------------------------------------------------------------------------------------ */
/* Worker and children                                                                   */
/* ------------------------------------------------------------------------------------ */

static void child_main(uint64_t parent_call, int slot)
{
	static char prefix[32];
	is_child = 1;
	nkids = 0;
	my_slot = slot >= 0 ? &sh->child[slot] : NULL;
	if (my_slot)
		my_slot->pid = k_getpid();
	snprintf(prefix, sizeof prefix, "c%ld:", k_getpid());
	cur_prefix = prefix;
	rng_for(parent_call, 0xc4117d);
	int n = 1 + (int)below(CHILD_MAX_CALLS);
	for (int k = 0; k < n; k++) {
		cur_call = parent_call;
		rng_for(parent_call * 16 + (uint64_t)k, 0xc4117d);
		one_call();
	}
	if (my_slot)
		my_slot->in_call = 0;
	k_exit((int)below(256));
}

static void install_handlers(void)
{
	/* SIGPIPE too: a write to a pipe whose reader the fuzz closed sends it */
	int sigs[] = { SIGALRM, SIGUSR1, SIGVTALRM, SIGPROF, SIGPIPE };
	struct ksigaction a = { (uint64_t)(uintptr_t)on_sig, K_SA_RESTORER | 0x10000000,
				(uint64_t)(uintptr_t)fz_restorer, 0 };
	for (unsigned i = 0; i < 5; i++)
		ksys4(SYS_rt_sigaction, sigs[i], &a, 0, 8);
}

/* Many VMAs at once (long runs only): a PROT_NONE mapping of 2K pages with every other
 * page made readable, up to the kernel's VMA limit (65530, ENOMEM past it). The
 * mapping is then an ordinary one of the fuzzer's, unmapped in due course. */
static void vma_storm(void)
{
	uint64_t k = 16000 + below(17000);
	long r = sc(SYS_mmap, 0, 2 * k * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (kt_is_err(r))
		return;
	maps_add((uint64_t)r, 2 * k * 4096);
	for (uint64_t i = 0; i < k; i++)
		if (sc(SYS_mprotect, (uint64_t)r + 2 * i * 4096, 4096, PROT_READ, 0, 0, 0) != 0)
			break;
}

static void arena_reset(void)
{
	sc(SYS_mmap, arena, ARENA_PAGES * 4096UL, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
	   -1, 0);
}

static int worker_setup(void)
{
	/* only the fds we open (on Linux the shell may have passed others) */
	for (int fd = 3; fd < (memk ? 64 : 1024); fd++)
		k_close(fd);
	install_handlers();
	long r = k_mmap(NULL, (ARENA_PAGES + 2) * 4096UL, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (kt_is_err(r))
		return kout("fuzz_sys: worker: cannot map the arena: %s\n", kt_errname(r)), 1;
	char *base = (char *)r;
	k_mprotect(base, 4096, PROT_NONE);
	k_mprotect(base + (ARENA_PAGES + 1) * 4096UL, 4096, PROT_NONE);
	arena = base + 4096;
	uint64_t fixture_pages = 0;
	for (int z = 0; z < 4; z++)
		fixture_pages += zone_size[z] / 4096 + 1;
	r = k_mmap(NULL, fixture_pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (kt_is_err(r))
		return kout("fuzz_sys: worker: cannot map the fixtures: %s\n", kt_errname(r)), 1;
	char *p = (char *)r;
	for (int z = 0; z < 4; z++) {
		zone[z] = p;
		memset(p, 0, zone_size[z]);
		k_mprotect(p + zone_size[z], 4096, PROT_NONE);
		p += zone_size[z] + 4096;
	}
	memset(zone[3], '.', zone_size[3]);
	zone[3][zone_size[3] - 1] = '\n';
	/* start with some files open (the fuzzer closes and opens more) */
	static const int first[] = { 4, 5, 0, 7 };
	for (unsigned i = 0; i < sizeof first / sizeof first[0]; i++) {
		long fd = k_open(path_str(first[i]), paths[first[i]].flags & P_DMIRROR ? O_RDWR : O_RDONLY);
		if (fd >= 0)
			fdt_add((int)fd, fd_kind_for_path(first[i]));
	}
	initial_brk = (uint64_t)k_brk(0);
	return 0;
}

static void worker_cleanup(void)
{
	while (nkids)
		reap_blocking(kids[0], 1);
	for (int i = 0; i < nfdt; i++)
		k_close(fdt[i].fd);
	nfdt = 0;
	for (int i = 0; i < nmaps; i++)
		k_munmap((void *)(uintptr_t)maps[i].addr, maps[i].len);
	nmaps = 0;
	k_munmap(arena - 4096, (ARENA_PAGES + 2) * 4096UL);
	/* the itimer and alarm die with the process */
}

static void print_stats(uint64_t n)
{
	kout("# call mix (worker; %llu calls, %llu more by %llu children):\n", (unsigned long long)n,
	     (unsigned long long)sh->child_calls, (unsigned long long)sh->children);
	char line[160];
	int col = 0;
	line[0] = 0;
	for (int i = 0; i < 512; i++) {
		if (!st_calls[i])
			continue;
		char cell[48];
		snprintf(cell, sizeof cell, "%s %llu/%llu ok", i == 511 ? "unimplemented" : sysname(i),
			 (unsigned long long)st_calls[i], (unsigned long long)st_ok[i]);
		if (col + strlen(cell) + 3 > 100) {
			kout("#   %s\n", line);
			line[0] = 0;
			col = 0;
		}
		col += snprintf(line + strlen(line), sizeof line - strlen(line), "%s%s", col ? ", " : "", cell);
	}
	if (col)
		kout("#   %s\n", line);
}

/*
 * Allocation-failure injection (Linux's /proc/self/fail-nth, see t_failnth.c): before one
 * call in 5 the worker arms a failure of the call's 1st..4th allocation, and disarms it
 * after. The choice has a random stream of its own, so a call's arguments are the same
 * with injection or without. Absent on a kernel without fault injection.
 */
static int fail_supported;

static void fail_nth_write(unsigned n)
{
	char buf[16];
	int len = snprintf(buf, sizeof buf, "%u", n);
	long r = k_write((int)fail_fd, buf, (size_t)len);
	if (r != len) {
		kout("fuzz_sys: FAIL: writing \"%s\" to /proc/self/fail-nth (fd %ld): %s\n", buf, fail_fd,
		     r < 0 ? kt_errname(r) : "short write");
		k_exit(3);
	}
}

static void one_call_maybe_failing(uint64_t i)
{
	unsigned n = 0;
	if (fail_supported) {
		rng_for(i, 0xfa117);
		if (chance(20))
			n = 1 + (unsigned)below(4);
		rng_for(i, 0);
	}
	if (!n) {
		one_call();
		return;
	}
	if (replaying())
		kout("#%llu: allocation %u of the next call fails\n", (unsigned long long)i, n);
	fail_nth_write(n);
	one_call();
	char buf[16] = { 0 };
	long r = ksys4(SYS_pread64, fail_fd, buf, sizeof buf - 1, 0);
	fail_nth_write(0);
	sh->armed++;
	if (r > 0 && buf[0] == '0')
		sh->injected++;
}

static __attribute__((noreturn)) void worker_main(uint64_t n, int quiet)
{
	my_slot = &sh->worker;
	my_slot->pid = k_getpid();
	if (worker_setup())
		k_exit(2);
	fail_fd = k_open("/proc/self/fail-nth", O_RDWR);
	fail_supported = fail_fd >= 0;
	uint64_t t0 = kt_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		cur_call = i;
		rng_for(i, 0);
		if (i % 500 == 499)
			arena_reset();
		else if (i % 250000 == 125000)
			vma_storm();
		else
			one_call_maybe_failing(i);
		sh->done = i + 1;
		if (!quiet && (i + 1) % 100000 == 0)
			kout("fuzz_sys: %llu calls (%llu ms)\n", (unsigned long long)(i + 1),
			     (unsigned long long)((kt_now_ns() - t0) / 1000000));
	}
	worker_cleanup();
	if (!quiet)
		print_stats(n);
	k_exit(0);
}

/* ------------------------------------------------------------------------------------ */
/* Supervisor                                                                            */
/* ------------------------------------------------------------------------------------ */

static void print_slot(const char *who, struct slot *s)
{
	kout("fuzz_sys:   %s pid %lld: call #%llu %s%s(%#llx, %#llx, %#llx, %#llx, %#llx, %#llx)\n", who,
	     (long long)s->pid, (unsigned long long)s->call, s->in_call ? "in " : "after ", sysname(s->nr),
	     (unsigned long long)s->a[0], (unsigned long long)s->a[1], (unsigned long long)s->a[2],
	     (unsigned long long)s->a[3], (unsigned long long)s->a[4], (unsigned long long)s->a[5]);
}

/* Run one worker; 0 if it finished its calls. */
static int run_worker(uint64_t n, int quiet)
{
	memset((void *)sh, 0, sizeof *sh);
	long pid = k_fork();
	if (pid == 0)
		worker_main(n, quiet);
	if (pid < 0) {
		kout("fuzz_sys: fork of the worker failed: %s\n", kt_errname(pid));
		return 1;
	}
	uint64_t last_done = ~0ULL, last_change = kt_now_ns();
	int st = 0;
	for (;;) {
		long r = k_wait4(-1, &st, WNOHANG, NULL);
		if (r == pid)
			break;
		if (r > 0)
			continue; /* an orphan */
		if (r < 0 && r != -EINTR) {
			kout("fuzz_sys: wait4 for the worker: %s\n", kt_errname(r));
			return 1;
		}
		uint64_t now = kt_now_ns();
		if (sh->beats != last_done) {
			last_done = sh->beats;
			last_change = now;
		} else if (now - last_change > STALL_SECONDS * 1000000000ULL) {
			kout("fuzz_sys: FAIL: no progress for %d s (kernel hang?) after %llu calls, seed %llu:\n",
			     STALL_SECONDS, (unsigned long long)sh->done, (unsigned long long)seed);
			print_slot("worker", &sh->worker);
			for (int i = 0; i < MAX_CHILDREN; i++)
				if (sh->child[i].pid > 0 && k_kill(sh->child[i].pid, 0) == 0)
					print_slot("child", &sh->child[i]);
			fuzz_dump_ps("fuzz_sys");
			k_kill(pid, SIGKILL);
			uint64_t t = kt_now_ns();
			while (k_wait4(pid, &st, WNOHANG, NULL) != pid) {
				if (kt_now_ns() - t > 10000000000ULL) {
					kout("fuzz_sys: the worker does not die of SIGKILL either\n");
					return 1;
				}
				kt_sleep_ns(10000000);
			}
			return 1;
		}
		kt_sleep_ns(20000000);
	}
	char sb[64];
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && sh->done == n)
		return 0;
	kout("fuzz_sys: FAIL: the worker %s after %llu calls (seed %llu); it was:\n",
	     kt_status_str(st, sb, sizeof sb), (unsigned long long)sh->done, (unsigned long long)seed);
	print_slot("worker", &sh->worker);
	return 1;
}

/* Touch the supervisor's stack, data and code now, so that its own first touches (the
 * failure paths) do not move free memory between the two measurements. */
static void __attribute__((noinline)) prefault(void)
{
	volatile char stack[64 * 1024];
	for (size_t i = 0; i < sizeof stack; i += 4096)
		stack[i] = 0;
	/* every page of the loaded segments (static, not PIE: addresses as in the file) */
	const Elf64_Phdr *ph = (const Elf64_Phdr *)getauxval(AT_PHDR);
	unsigned long n = getauxval(AT_PHNUM);
	for (unsigned long i = 0; ph && i < n; i++) {
		if (ph[i].p_type != PT_LOAD)
			continue;
		volatile char *p = (volatile char *)(uintptr_t)(ph[i].p_vaddr & ~4095UL);
		volatile char *e = (volatile char *)(uintptr_t)(ph[i].p_vaddr + ph[i].p_memsz);
		for (; p < e; p += 4096) {
			if (ph[i].p_flags & PF_W)
				*p = *p;
			else
				(void)*p;
		}
	}
}

int main(int argc, char **argv, char **envp)
{
	if (argc >= 2 && strcmp(argv[1], "--exit") == 0)
		k_exit(0);
	for (char **e = envp; e && *e; e++)
		if (strncmp(*e, "FUZZ_CHILD=", 11) == 0)
			k_exit(0);
	if (argc >= 2) {
		seed = strtoull(argv[1], NULL, 0);
		if (argc >= 3)
			ncalls = strtoull(argv[2], NULL, 0);
		if (argc >= 4)
			replay = strcmp(argv[3], "replay") == 0;
		if (argc >= 5)
			replay_from = strtoull(argv[4], NULL, 0);
	} else {
		fuzz_read_args_file(&seed, &ncalls, &replay, &replay_from);
	}
	memk = kt_is_memkernel();
	struct utsname u;
	k_uname(&u);
	kout("fuzz_sys: seed %llu, %llu calls%s, on %s\n", (unsigned long long)seed, (unsigned long long)ncalls,
	     replay ? " (replay: every call printed)" : "", u.sysname);

	long r = k_mmap(NULL, 4096 * ((sizeof(struct shared) + 4095) / 4096), PROT_READ | PROT_WRITE,
			MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (kt_is_err(r)) {
		kout("fuzz_sys: cannot map the shared page: %s\n0 passed, 1 failed\n", kt_errname(r));
		return 1;
	}
	sh = (struct shared *)r;
	prefault();
	/* the worker may send the handled signals to its group and to everyone: ignore them */
	int ign[] = { SIGALRM, SIGUSR1, SIGVTALRM, SIGPROF, SIGPIPE };
	for (unsigned i = 0; i < 5; i++) {
		struct ksigaction a = { (uint64_t)SIG_IGN, 0, 0, 0 };
		ksys4(SYS_rt_sigaction, ign[i], &a, 0, 8);
	}
	/* warm up (the first fork, exec, device open... may set things up for good), quietly */
	uint64_t keep_seed = seed;
	int keep_replay = replay;
	seed = keep_seed ^ 0x5eedf00dULL;
	replay = 0;
	int failed = run_worker(ncalls < 300 ? ncalls : 300, 1);
	seed = keep_seed;
	replay = keep_replay;
	fuzz_reap_all();
	if (failed) {
		kout("fuzz_sys: (in the warm-up run: seed %llu ^ 0x5eedf00d, 300 calls)\n", (unsigned long long)seed);
		kout("0 passed, 1 failed\n");
		return 1;
	}

	unsigned long before = kt_freeram();
	uint64_t t0 = kt_now_ns();
	failed = run_worker(ncalls, 0);
	uint64_t ms = (kt_now_ns() - t0) / 1000000;
	fuzz_reap_all();
	unsigned long after = fuzz_freeram_settled(before);
	long d = (long)after - (long)before;
	kout("fuzz_sys: free memory before %lu KiB, after %lu KiB (%+ld pages)%s\n", before / 1024, after / 1024,
	     d / 4096, memk ? "" : " (not enforced on this kernel)");
	if (memk && d != 0) {
		kout("fuzz_sys: FAIL: free memory %s by %ld pages once every process was gone\n",
		     d < 0 ? "down" : "up", (d < 0 ? -d : d) / 4096);
		failed = 1;
	}
	kout("fuzz_sys: %llu calls, seed %llu, %llu ms; %llu children; %llu signals handled; "
	     "%llu calls with an allocation failure armed, %llu injected\n",
	     (unsigned long long)sh->done, (unsigned long long)seed, (unsigned long long)ms,
	     (unsigned long long)sh->children, (unsigned long long)sh->sigs, (unsigned long long)sh->armed,
	     (unsigned long long)sh->injected);
	kout("%d passed, %d failed\n", failed ? 0 : 1, failed ? 1 : 0);
	return failed ? 1 : 0;
}
