/*
 * fuzz_hmm: random device-exclusive traffic. The dmirror ioctls of both device files
 * (READ, WRITE, EXCLUSIVE, CHECK_EXCLUSIVE, SNAPSHOT, ATOMIC_ADD, unknown requests, bad
 * ranges and pointers) mixed with mmap (MAP_FIXED, private and shared), munmap,
 * mprotect, madvise(MADV_DONTNEED), fork and CPU reads and writes, on an arena of
 * NP pages. Not a t_ program: scripts/fuzz.sh boots it as /init (see fuzz_sys.c for the
 * supervisor, the arguments and /fuzz.args, which are the same here).
 *
 *   fuzz_hmm [--nodev] [SEED [OPS [replay [FROM]]]]
 *
 * --nodev leaves the devices out (everything else runs): a check of the fuzzer's model
 * on Linux, where there is no device.
 *
 * The worker keeps a model of every arena page: mapped or not, its protection, private
 * or shared, and (while it is known) its contents: one value for the whole page plus
 * NS sampled words. Every operation is checked against the model, so besides "the
 * kernel survives" the fuzzer finds memory that is corrupted or protection that is not
 * enforced:
 *   - a CPU read or write faults (SIGSEGV, caught with sigsetjmp/siglongjmp) exactly
 *     when the page is unmapped, PROT_NONE, or (writes) not writable; si_addr is the
 *     address touched; a read returns the value the model holds; a write reads back;
 *   - the device sees what the CPU wrote (READ, EXCLUSIVE), and the CPU sees what the
 *     device wrote (WRITE, ATOMIC_ADD: every word of every page plus the value); a device
 *     command that succeeds covered only mapped pages (writable ones for WRITE and
 *     ATOMIC_ADD); a failed one never changed a page that is not writable;
 *   - SNAPSHOT: 0xff exactly for unmapped pages, never "writable" for a page whose VMA
 *     is not, never "device-exclusive" for a page the CPU touched since the last
 *     EXCLUSIVE or ATOMIC_ADD on it (or that was unmapped, replaced, zapped or forked
 *     since: mprotect may leave the entry exclusive, as Linux does);
 *   - CHECK_EXCLUSIVE: 0 on a range no device can still hold atomically: touched by the
 *     CPU, unmapped, replaced, zapped, protected or forked since, or its file reopened;
 *   - arguments the driver must refuse (unaligned address, 0 or > 1024 pages, a range
 *     past the end of user space, a kernel address, an unknown request, a command or
 *     buffer the kernel cannot read or write) are refused, and the model is not told:
 *     a page they changed shows up at its next check;
 *   - fork: the child sees the parent's private pages as they were at the fork, while
 *     the parent goes on changing them (CPU and device), writes its own copies, may zap
 *     them and use a device of its own, and exits 0 if everything matched;
 *   - race: a child drives this process's device mirror (ATOMIC_ADD +1, page exclusive
 *     to the device each time) while this process adds 1 to a word with locked CPU
 *     instructions (faulting the page back each time) and through its other mirror:
 *     the sums must be exact, for the CPU and for the device.
 * Device commands on MAP_SHARED pages may fail (EOPNOTSUPP: Linux makes only anonymous
 * private pages device-exclusive); that is not an error here.
 * At the end, as in fuzz_sys, free memory must be back to the baseline once every
 * process is gone. On a kernel without /dev/hmm_dmirror0 (Linux) it prints "skipped"
 * and exits 0.
 */
#include "fuzz.h"
#include "hmm.h"
#include <sched.h>
#include <setjmp.h>
#include <stdlib.h>

#define NP 48		 /* arena pages */
#define NS 4		 /* sampled words per page */
#define MAX_KIDS 3	 /* children alive at once */
#define STALL_SECONDS 30
#define DEFAULT_OPS 20000

static const int spos[NS] = { 0, 257, 768, 1023 };
static const int bpos[3] = { 1, 512, 1000 }; /* words that hold the page's base value */

/* ------------------------------------------------------------------------------------ */
/* Parameters, shared page, random numbers (as in fuzz_sys)                               */
/* ------------------------------------------------------------------------------------ */

static uint64_t seed = 1, nops = DEFAULT_OPS, replay_from;
static int replay, memk;
static int nodev; /* --nodev: no device (to check the fuzzer's own model on Linux) */

struct shared {
	volatile uint64_t done; /* operations the worker completed */
	volatile uint64_t op;	/* the one in progress */
	volatile int64_t what;	/* its kind */
	volatile uint64_t a[4];
	volatile uint64_t children, child_ops, faults, checks;
	volatile uint64_t armed, injected; /* operations with an allocation failure armed; injected */
};
static struct shared *sh;

static uint64_t rs;
static uint64_t splitmix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}
static void rng_for(uint64_t op, uint64_t salt)
{
	rs = splitmix(splitmix(seed) ^ splitmix(op * 0x100000001b3ULL + salt)) | 1;
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
/* The model                                                                             */
/* ------------------------------------------------------------------------------------ */

struct pg {
	uint8_t mapped, prot, shared;
	uint8_t prot_known; /* prot is what the kernel has (an mprotect with a hole may not say) */
	uint8_t known;	    /* the contents below are what the page holds */
	uint8_t atomic;	    /* bit m: device mirror m may hold the page atomically */
	uint8_t excl;	    /* the CPU's entry may be device-exclusive */
	uint32_t base, s[NS];
};
static struct pg pg[NP];
static char *arena; /* NP pages between two PROT_NONE guard pages */
static char *dbuf;  /* NP pages for the device's data, then a PROT_NONE page */
static long dfd[2] = { -1, -1 };
static int is_child;
static uint64_t cur_op;
static const char *prefix = "";
static long kids[MAX_KIDS];
static int nkids;
static int failed;

/* Statistics (worker only): how often each operation ran and succeeded. */
enum { S_READ, S_WRITE, S_SNAP, S_EXCL, S_CHECK, S_ADD, S_UNKNOWN, S_BADPTR, S_REOPEN, S_MMAP, S_MUNMAP,
       S_MPROTECT, S_DONTNEED, S_FORK, S_PTES, S_CPU_READ, S_CPU_WRITE, S_CPU_FILL, S_RACE, S_N };
static const char *const st_name[S_N] = { "READ", "WRITE", "SNAPSHOT", "EXCLUSIVE", "CHECK_EXCLUSIVE", "ATOMIC_ADD",
					  "bad arguments", "bad pointers", "reopen", "mmap", "munmap", "mprotect",
					  "DONTNEED", "fork", "ptes", "CPU read", "CPU write", "CPU fill", "race" };
static uint64_t st_n[S_N], st_ok[S_N];
static void stat(int i, int ok)
{
	st_n[i]++;
	st_ok[i] += ok != 0;
}

static char *page(int p) { return arena + (long)p * 4096; }
static int readable_certain(const struct pg *g) { return g->mapped && g->prot_known && (g->prot & (PROT_READ | PROT_WRITE)); }
static int unreadable_certain(const struct pg *g) { return !g->mapped || (g->prot_known && g->prot == 0); }
static int writable_certain(const struct pg *g) { return g->mapped && g->prot_known && (g->prot & PROT_WRITE); }
static int unwritable_certain(const struct pg *g) { return !g->mapped || (g->prot_known && !(g->prot & PROT_WRITE)); }

static uint32_t expect_word(const struct pg *g, int w)
{
	for (int i = 0; i < NS; i++)
		if (spos[i] == w)
			return g->s[i];
	return g->base;
}

static void set_uniform(struct pg *g, uint32_t v)
{
	g->known = 1;
	g->base = v;
	for (int i = 0; i < NS; i++)
		g->s[i] = v;
}

/* A bug: print it with the seed and the operation, and fail (the worker goes on). */
/* An allocation failure is armed for the current operation (see one_op_maybe_failing). */
static int fail_armed;

static __attribute__((format(printf, 1, 2))) void bug(const char *fmt, ...)
{
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	kout("fuzz_hmm: %sBUG at op #%llu (seed %llu): %s\n", prefix, (unsigned long long)cur_op,
	     (unsigned long long)seed, why);
	failed = 1;
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	if (!replay || cur_op < replay_from)
		return;
	char buf[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	kout("%s#%llu %s\n", prefix, (unsigned long long)cur_op, buf);
}

static void record(int what, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3)
{
	if (is_child)
		return;
	sh->op = cur_op;
	sh->what = what;
	sh->a[0] = a0;
	sh->a[1] = a1;
	sh->a[2] = a2;
	sh->a[3] = a3;
}

/* ------------------------------------------------------------------------------------ */
/* CPU accesses that may fault                                                           */
/* ------------------------------------------------------------------------------------ */

static sigjmp_buf jb;
static volatile int in_access;
static volatile uint64_t fault_addr;
static volatile int fault_sig;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (in_access) {
		in_access = 0;
		fault_addr = (uint64_t)(uintptr_t)si->si_addr;
		fault_sig = sig;
		siglongjmp(jb, 1);
	}
	kout("fuzz_hmm: %sBUG: signal %d (%s) outside a CPU access, address %p, op #%llu (seed %llu)\n", prefix, sig,
	     kt_signame(sig), si->si_addr, (unsigned long long)cur_op, (unsigned long long)seed);
	k_exit(3);
}

/* 0 and the value, or 1 if the access faulted */
static int cpu_read(volatile uint32_t *at, uint32_t *v)
{
	if (sigsetjmp(jb, 0))
		return 1;
	in_access = 1;
	*v = *at;
	in_access = 0;
	return 0;
}
static int cpu_write(volatile uint32_t *at, uint32_t v)
{
	if (sigsetjmp(jb, 0))
		return 1;
	in_access = 1;
	*at = v;
	in_access = 0;
	return 0;
}

static void check_fault_addr(volatile uint32_t *at, const char *what)
{
	__atomic_fetch_add(&sh->faults, 1, __ATOMIC_RELAXED);
	if (fault_sig != SIGSEGV && fault_sig != SIGBUS)
		bug("%s at %p: signal %d", what, (void *)at, fault_sig);
	else if (fault_addr != (uint64_t)(uintptr_t)at)
		bug("%s at %p: si_addr %#llx", what, (void *)at, (unsigned long long)fault_addr);
}

/* Read word w of page p and check it against the model. */
static void cpu_check(int p, int w)
{
	struct pg *g = &pg[p];
	volatile uint32_t *at = (volatile uint32_t *)(void *)(page(p) + 4 * w);
	uint32_t v;
	int f = cpu_read(at, &v);
	note("cpu read page %d word %d: %s %#x", p, w, f ? "fault" : "ok", f ? 0 : v);
	stat(S_CPU_READ, !f);
	if (f) {
		check_fault_addr(at, "read fault");
		if (readable_certain(g))
			bug("read of page %d (prot %d, mapped) faulted", p, g->prot);
		return;
	}
	g->atomic = 0; /* the CPU has it back */
	g->excl = 0;
	if (unreadable_certain(g))
		bug("read of page %d succeeded (%s)", p, g->mapped ? "PROT_NONE" : "unmapped");
	else if (g->known && v != expect_word(g, w)) {
		bug("page %d word %d reads %#x, expected %#x", p, w, v, expect_word(g, w));
		g->known = 0;
	}
	__atomic_fetch_add(&sh->checks, 1, __ATOMIC_RELAXED);
}

/* Write sampled word i of page p, then read it back. */
static void cpu_poke(int p, int i, uint32_t v)
{
	struct pg *g = &pg[p];
	int w = spos[i];
	volatile uint32_t *at = (volatile uint32_t *)(void *)(page(p) + 4 * w);
	int f = cpu_write(at, v);
	note("cpu write page %d word %d = %#x: %s", p, w, v, f ? "fault" : "ok");
	stat(S_CPU_WRITE, !f);
	if (f) {
		check_fault_addr(at, "write fault");
		if (writable_certain(g))
			bug("write to page %d (prot %d, mapped) faulted", p, g->prot);
		return;
	}
	g->atomic = 0;
	g->excl = 0;
	if (unwritable_certain(g)) {
		bug("write to page %d succeeded (%s)", p, g->mapped ? "not writable" : "unmapped");
		g->known = 0;
		return;
	}
	g->s[i] = v;
	uint32_t back;
	if (cpu_read(at, &back))
		bug("page %d faulted on the read right after a write", p);
	else if (back != v)
		bug("page %d word %d: wrote %#x, read back %#x", p, w, v, back);
	__atomic_fetch_add(&sh->checks, 1, __ATOMIC_RELAXED);
}

/* Fill page p with one value (every word): the model knows it again. */
static void cpu_fill(int p, uint32_t v)
{
	struct pg *g = &pg[p];
	volatile uint32_t *w0 = (volatile uint32_t *)(void *)page(p);
	if (sigsetjmp(jb, 0)) {
		note("cpu fill page %d = %#x: fault", p, v);
		stat(S_CPU_FILL, 0);
		check_fault_addr((volatile uint32_t *)(uintptr_t)fault_addr, "fill fault");
		if (writable_certain(g))
			bug("fill of page %d (prot %d, mapped) faulted at %#llx", p, g->prot, (unsigned long long)fault_addr);
		/* the words before the fault were written */
		if (fault_addr != (uint64_t)(uintptr_t)w0)
			g->known = 0;
		return;
	}
	in_access = 1;
	for (int i = 0; i < 1024; i++)
		w0[i] = v;
	in_access = 0;
	note("cpu fill page %d = %#x: ok", p, v);
	stat(S_CPU_FILL, 1);
	g->atomic = 0;
	g->excl = 0;
	if (unwritable_certain(g)) {
		bug("fill of page %d succeeded (%s)", p, g->mapped ? "not writable" : "unmapped");
		g->known = 0;
		return;
	}
	set_uniform(g, v);
}

/* ------------------------------------------------------------------------------------ */
/* Device commands                                                                       */
/* ------------------------------------------------------------------------------------ */

static const char *req_name(uint32_t r)
{
	switch (r) {
	case 0xC0284800: return "READ";
	case 0xC0284801: return "WRITE";
	case 0xC0284804: return "SNAPSHOT";
	case 0xC0284805: return "EXCLUSIVE";
	case 0xC0284806: return "CHECK_EXCLUSIVE";
	case 0xC0284840: return "ATOMIC_ADD";
	default: return "unknown";
	}
}

/* The command lives at the end of the last page of dbuf's guard-less part: a command
 * that runs into the guard is a test of its own (EFAULT). */
static struct hmm_dmirror_cmd *cmdp;

static long dev_ioctl(int m, uint32_t req, uint64_t addr, uint64_t ptr, uint64_t npages, struct hmm_dmirror_cmd *out)
{
	struct hmm_dmirror_cmd *c = cmdp;
	c->addr = addr;
	c->ptr = ptr;
	c->npages = npages;
	c->cpages = rnd(); /* outputs: whatever is there must not matter */
	c->faults = chance(50) ? 0 : rnd();
	uint64_t reqv = chance(50) ? (uint64_t)(int64_t)(int32_t)req : req; /* as musl passes it */
	if (chance(10))
		reqv = (reqv & 0xffffffffULL) | (rnd() << 32);
	record(100 + (int)(req & 0xff), addr, ptr, npages, (uint64_t)m);
	note("dev%d %s(%#x) addr %#llx ptr %#llx npages %llu ...", m, req_name(req), req, (unsigned long long)addr,
	     (unsigned long long)ptr, (unsigned long long)npages);
	long r = ksys3(SYS_ioctl, dfd[m], reqv, c);
	if (fail_armed && r == -ENOMEM) {
		/* The injected failure is spent: the same request again must do what the model
		 * expects, which also checks that the failed one left nothing half done. */
		note("  = -ENOMEM (injected); again");
		c->addr = addr;
		c->ptr = ptr;
		c->npages = npages;
		r = ksys3(SYS_ioctl, dfd[m], reqv, c);
	}
	switch (req) {
	case 0xC0284800: stat(S_READ, r == 0); break;
	case 0xC0284801: stat(S_WRITE, r == 0); break;
	case 0xC0284804: stat(S_SNAP, r == 0); break;
	case 0xC0284805: stat(S_EXCL, r == 0); break;
	case 0xC0284806: stat(S_CHECK, r == 0); break;
	case 0xC0284840: stat(S_ADD, r == 0); break;
	default: stat(S_UNKNOWN, r == 0); break;
	}
	note("  = %ld (%s) cpages %llu faults %llu", r, hmm_errname(r), (unsigned long long)c->cpages,
	     (unsigned long long)c->faults);
	if (out)
		*out = *c;
	return r;
}

static int range_all(int p, int n, int (*pred)(const struct pg *))
{
	for (int i = p; i < p + n; i++)
		if (!pred(&pg[i]))
			return 0;
	return 1;
}
static int pred_mapped(const struct pg *g) { return g->mapped; }

/* Check the device's copy of page p (in dbuf page i) against the model. */
static void check_dev_copy(int p, int i, const char *what)
{
	struct pg *g = &pg[p];
	if (!g->known)
		return;
	const uint32_t *w = (const uint32_t *)(void *)(dbuf + (long)i * 4096);
	for (int k = 0; k < NS; k++)
		if (w[spos[k]] != g->s[k]) {
			bug("%s: page %d word %d is %#x on the device, %#x for the CPU", what, p, spos[k], w[spos[k]], g->s[k]);
			g->known = 0;
			return;
		}
	for (int k = 0; k < 3; k++)
		if (w[bpos[k]] != g->base) {
			bug("%s: page %d word %d is %#x on the device, %#x for the CPU", what, p, bpos[k], w[bpos[k]], g->base);
			g->known = 0;
			return;
		}
	__atomic_fetch_add(&sh->checks, 1, __ATOMIC_RELAXED);
}

/* A failed command that writes: writable pages may have changed, others must not. */
static void failed_write(int p, int n)
{
	for (int i = p; i < p + n; i++)
		if (!unwritable_certain(&pg[i]))
			pg[i].known = 0;
}

static void pick_range(int *p, int *n)
{
	*p = (int)below(NP);
	int max = NP - *p;
	*n = 1 + (int)below(chance(80) && max > 4 ? 4 : max);
	if (is_child) {
		/* a child's device must not write the pages it shares with its parent */
		for (int tries = 0; tries < 16 && pg[*p].shared; tries++)
			*p = (int)below(NP);
		if (pg[*p].shared)
			*p = -1;
		for (int i = 0; *p >= 0 && i < *n; i++)
			if (*p + i >= NP || pg[*p + i].shared)
				*n = i;
	}
}

static void op_dev_read(int m)
{
	int p, n;
	pick_range(&p, &n);
	if (p < 0)
		return;
	struct hmm_dmirror_cmd c;
	long r = dev_ioctl(m, 0xC0284800, (uint64_t)(uintptr_t)page(p), (uint64_t)(uintptr_t)dbuf, (uint64_t)n, &c);
	if (r != 0)
		return;
	if (c.cpages != (uint64_t)n)
		bug("READ of %d pages returned cpages %llu", n, (unsigned long long)c.cpages);
	for (int i = 0; i < n; i++) {
		if (unreadable_certain(&pg[p + i]))
			bug("READ succeeded over page %d (%s)", p + i, pg[p + i].mapped ? "PROT_NONE" : "unmapped");
		else
			check_dev_copy(p + i, i, "READ");
	}
}

static void op_dev_read_at(int m, int p)
{
	long r = dev_ioctl(m, 0xC0284800, (uint64_t)(uintptr_t)page(p), (uint64_t)(uintptr_t)dbuf, 1, NULL);
	if (r != 0)
		bug("READ of page %d after the race: %s", p, hmm_errname(r));
	else
		check_dev_copy(p, 0, "READ after the race");
}

static void op_dev_write(int m)
{
	int p, n;
	pick_range(&p, &n);
	if (p < 0)
		return;
	uint32_t v[NP];
	for (int i = 0; i < n; i++) {
		v[i] = (uint32_t)rnd();
		uint32_t *w = (uint32_t *)(void *)(dbuf + (long)i * 4096);
		for (int k = 0; k < 1024; k++)
			w[k] = v[i];
	}
	long r = dev_ioctl(m, 0xC0284801, (uint64_t)(uintptr_t)page(p), (uint64_t)(uintptr_t)dbuf, (uint64_t)n, NULL);
	if (r != 0) {
		failed_write(p, n);
		return;
	}
	for (int i = 0; i < n; i++) {
		struct pg *g = &pg[p + i];
		if (unwritable_certain(g)) {
			bug("WRITE succeeded over page %d (%s)", p + i, g->mapped ? "not writable" : "unmapped");
			g->known = 0;
		} else {
			set_uniform(g, v[i]);
		}
	}
}

static void op_dev_exclusive(int m)
{
	int p, n;
	pick_range(&p, &n);
	if (p < 0)
		return;
	struct hmm_dmirror_cmd c;
	long r = dev_ioctl(m, 0xC0284805, (uint64_t)(uintptr_t)page(p), (uint64_t)(uintptr_t)dbuf, (uint64_t)n, &c);
	for (int i = 0; i < n; i++) {
		pg[p + i].atomic |= (uint8_t)(1 << m); /* maybe, even if it failed half-way */
		pg[p + i].excl = 1;
	}
	if (r != 0)
		return;
	for (int i = 0; i < n; i++) {
		if (!pg[p + i].mapped)
			bug("EXCLUSIVE succeeded over unmapped page %d", p + i);
		else
			check_dev_copy(p + i, i, "EXCLUSIVE");
	}
}

static void op_dev_check(int m)
{
	int p, n;
	pick_range(&p, &n);
	if (p < 0)
		return;
	long r = dev_ioctl(m, 0xC0284806, (uint64_t)(uintptr_t)page(p), 0, (uint64_t)n, NULL);
	int held = 0;
	for (int i = p; i < p + n; i++)
		held |= pg[i].atomic & (1 << m);
	if (r == -EPERM && !held)
		bug("CHECK_EXCLUSIVE(pages %d..%d) says the device still holds one atomically, but the CPU touched, "
		    "unmapped, zapped, protected or forked them all since",
		    p, p + n - 1);
	if (r == 0)
		for (int i = p; i < p + n; i++)
			pg[i].atomic &= (uint8_t) ~(1 << m);
	if (r != 0 && r != -EPERM)
		bug("CHECK_EXCLUSIVE(pages %d..%d) = %s", p, p + n - 1, hmm_errname(r));
}

static void op_dev_atomic_add(int m)
{
	int p, n;
	pick_range(&p, &n);
	if (p < 0)
		return;
	uint32_t add = chance(50) ? (uint32_t)(1 + below(100)) : (uint32_t)rnd();
	long r = dev_ioctl(m, 0xC0284840, (uint64_t)(uintptr_t)page(p), (uint64_t)(int64_t)(int32_t)add, (uint64_t)n, NULL);
	for (int i = 0; i < n; i++) {
		pg[p + i].atomic |= (uint8_t)(1 << m);
		pg[p + i].excl = 1;
	}
	if (r != 0) {
		failed_write(p, n);
		return;
	}
	for (int i = 0; i < n; i++) {
		struct pg *g = &pg[p + i];
		if (unwritable_certain(g)) {
			bug("ATOMIC_ADD succeeded over page %d (%s)", p + i, g->mapped ? "not writable" : "unmapped");
			g->known = 0;
		} else if (g->known) {
			g->base += add;
			for (int k = 0; k < NS; k++)
				g->s[k] += add;
		}
	}
}

static void op_dev_snapshot(int m)
{
	int p, n;
	pick_range(&p, &n);
	if (p < 0)
		return;
	long r = dev_ioctl(m, 0xC0284804, (uint64_t)(uintptr_t)page(p), (uint64_t)(uintptr_t)dbuf, (uint64_t)n, NULL);
	if (r != 0) {
		bug("SNAPSHOT(pages %d..%d) = %s", p, p + n - 1, hmm_errname(r));
		return;
	}
	const uint8_t *b = (const uint8_t *)dbuf;
	for (int i = 0; i < n; i++) {
		struct pg *g = &pg[p + i];
		if (!g->mapped && b[i] != HMM_PROT_ERROR)
			bug("SNAPSHOT: unmapped page %d has %#x, not 0xff", p + i, b[i]);
		else if (g->mapped && b[i] == HMM_PROT_ERROR)
			bug("SNAPSHOT: mapped page %d has 0xff", p + i);
		else if (g->mapped && (b[i] & HMM_PROT_WRITE) && g->prot_known && !(g->prot & PROT_WRITE))
			bug("SNAPSHOT: page %d is writable (%#x) in a VMA with prot %d", p + i, b[i], g->prot);
		else if (g->mapped && b[i] == HMM_PROT_ATOMIC && !g->excl)
			bug("SNAPSHOT: page %d is device-exclusive, but the CPU touched, unmapped, zapped or forked it "
			    "since the last EXCLUSIVE or ATOMIC_ADD on it",
			    p + i);
		else if (g->mapped && !hmm_prot_known(b[i]))
			bug("SNAPSHOT: page %d has the unknown value %#x", p + i, b[i]);
	}
}

/* Arguments the driver must refuse; nothing may change. */
static void op_dev_bad(int m)
{
	static const uint32_t reqs[] = { 0xC0284800, 0xC0284801, 0xC0284804, 0xC0284805, 0xC0284806, 0xC0284840 };
	uint32_t req = PICK(reqs);
	int p = (int)below(NP);
	uint64_t addr = (uint64_t)(uintptr_t)page(p), npages = 1, ptr = (uint64_t)(uintptr_t)dbuf;
	const char *why;
	switch (below(7)) {
	case 0: addr += 1 + below(4095); why = "an unaligned address"; break;
	case 1: npages = 0; why = "0 pages"; break;
	case 2: npages = 1025 + below(1 << 20); why = "more than 1024 pages"; break;
	case 3: npages = ~0ULL / 4096 + 1 + below(100); why = "a page count whose size overflows"; break;
	case 4: addr = 0x00007ffffffff000ULL - 4096 * below(4); npages = 8; why = "a range past user space"; break;
	case 5: addr = 0xffff800000000000ULL + 4096 * below(1000); why = "a kernel address"; break;
	default: {
		static const uint32_t unknown[] = { 0xC0284802, 0xC0284803, 0xC0284807, 0x40284800, 0x80284800,
						    0xC0204800, 0xC0284842, 0x00004800, 0xffffffff };
		req = chance(70) ? PICK(unknown) : (uint32_t)rnd();
		for (unsigned i = 0; i < sizeof reqs / sizeof reqs[0]; i++)
			if (req == reqs[i])
				req = 0xC0284803;
		if (req == 0xC0284841)
			req = 0xC0284803; /* EXCLUSIVE_HOLD: a test kernel's hook */
		npages = 1;
		why = "an unknown request";
		break;
	}
	}
	long r = dev_ioctl(m, req, addr, ptr, npages, NULL);
	if (r == 0)
		bug("%s(%#x) with %s succeeded", req_name(req), req, why);
}

/* A command struct the kernel cannot read (or only in part), or a data pointer it
 * cannot use: the command fails, and at most the writable pages change. */
static void op_dev_badptr(int m)
{
	static const uint32_t reqs[] = { 0xC0284800, 0xC0284801, 0xC0284804, 0xC0284805, 0xC0284840 };
	uint32_t req = PICK(reqs);
	int p, n;
	pick_range(&p, &n);
	if (p < 0)
		return;
	if (chance(50)) {
		static const uint64_t badc[] = { 0, 1, 0xffff800000000000ULL, 0x0000800000000000ULL, 0xfffffffffffff000ULL };
		uint64_t c = chance(50) ? PICK(badc) : (uint64_t)(uintptr_t)(dbuf + NP * 4096UL - 8 * below(5));
		record(200, c, 0, 0, (uint64_t)m);
		note("dev%d %s with the command at %#llx", m, req_name(req), (unsigned long long)c);
		long r = ksys3(SYS_ioctl, dfd[m], (uint64_t)(int64_t)(int32_t)req, c);
		note("  = %ld (%s)", r, hmm_errname(r));
		stat(S_BADPTR, r == 0);
		if (r == 0)
			bug("%s with the command at %#llx succeeded", req_name(req), (unsigned long long)c);
		return;
	}
	static const uint64_t badp[] = { 0, 1, 0xffff800000000000ULL, 0x0000800000000000ULL, 0xffffffff80000000ULL };
	uint64_t ptr = PICK(badp);
	if (chance(30)) { /* the buffer runs 8 bytes into dbuf's guard page */
		uint64_t size = req == 0xC0284804 ? (uint64_t)n : 4096 * (uint64_t)n;
		ptr = (uint64_t)(uintptr_t)(dbuf + NP * 4096UL + 8 - size);
	}
	long r = dev_ioctl(m, req, (uint64_t)(uintptr_t)page(p), ptr, (uint64_t)n, NULL);
	if (req == 0xC0284840)
		for (int i = 0; i < n; i++) {
			pg[p + i].atomic |= (uint8_t)(1 << m);
			pg[p + i].excl = 1;
		}
	if (req == 0xC0284801 || req == 0xC0284840) {
		if (req == 0xC0284840 && r == 0) {
			/* ATOMIC_ADD does not use ptr as a pointer: it is the value */
			for (int i = 0; i < n; i++) {
				pg[p + i].atomic |= (uint8_t)(1 << m);
				pg[p + i].excl = 1;
				if (pg[p + i].known && !unwritable_certain(&pg[p + i])) {
					pg[p + i].base += (uint32_t)ptr;
					for (int k = 0; k < NS; k++)
						pg[p + i].s[k] += (uint32_t)ptr;
				} else if (unwritable_certain(&pg[p + i])) {
					bug("ATOMIC_ADD succeeded over page %d (%s)", p + i,
					    pg[p + i].mapped ? "not writable" : "unmapped");
				}
			}
			return;
		}
		if (r == 0)
			bug("%s with the data at %#llx succeeded", req_name(req), (unsigned long long)ptr);
		failed_write(p, n);
	} else if (req == 0xC0284805) {
		for (int i = 0; i < n; i++) {
			pg[p + i].atomic |= (uint8_t)(1 << m);
			pg[p + i].excl = 1;
		}
		if (r == 0)
			bug("EXCLUSIVE with the data at %#llx succeeded", (unsigned long long)ptr);
	} else if (r == 0) {
		bug("%s with the data at %#llx succeeded", req_name(req), (unsigned long long)ptr);
	}
}

static void op_reopen(int m)
{
	record(300, (uint64_t)m, 0, 0, 0);
	note("close and reopen /dev/hmm_dmirror%d", m);
	k_close((int)dfd[m]);
	dfd[m] = hmm_open(m);
	if (dfd[m] == -ENOMEM && fail_armed)
		dfd[m] = hmm_open(m); /* the injected failure is spent: the fixture must stay open */
	stat(S_REOPEN, dfd[m] >= 0);
	if (dfd[m] < 0)
		bug("reopening /dev/hmm_dmirror%d: %s", m, hmm_errname(dfd[m]));
	for (int i = 0; i < NP; i++)
		pg[i].atomic &= (uint8_t) ~(1 << m);
}

/* ------------------------------------------------------------------------------------ */
/* Memory operations                                                                     */
/* ------------------------------------------------------------------------------------ */

static int v_prot(void)
{
	static const int prots[] = { PROT_READ, PROT_NONE, PROT_WRITE, PROT_READ | PROT_EXEC, PROT_EXEC,
				     PROT_READ | PROT_WRITE | PROT_EXEC };
	return chance(50) ? PROT_READ | PROT_WRITE : PICK(prots);
}

static void op_mmap_fixed_at(int p, int n, int prot, int shared);
static void op_mmap_fixed(void)
{
	int p, n;
	pick_range(&p, &n);
	if (p < 0)
		return;
	op_mmap_fixed_at(p, n, v_prot(), chance(20));
}

static void op_mmap_fixed_at(int p, int n, int prot, int shared)
{
	int flags = (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS | MAP_FIXED;
	record(1, (uint64_t)(uintptr_t)page(p), (uint64_t)n, (uint64_t)prot, (uint64_t)flags);
	note("mmap(page %d, %d pages, prot %d, %s|FIXED)", p, n, prot, shared ? "SHARED" : "PRIVATE");
	long r = k_mmap(page(p), (size_t)n * 4096, prot, flags, -1, 0);
	note("  = %#lx", r);
	stat(S_MMAP, !kt_is_err(r));
	if (fail_armed && r == -ENOMEM)
		return; /* an injected failure: the old mapping stays, as on Linux 6.12 (all or nothing) */
	if (r != (long)(uintptr_t)page(p)) {
		bug("mmap(MAP_FIXED) of pages %d..%d returned %s", p, p + n - 1, kt_errname(r));
		/* the old mapping may be gone: nothing is known */
		for (int i = p; i < p + n; i++) {
			pg[i].prot_known = 0;
			pg[i].known = 0;
		}
		return;
	}
	for (int i = p; i < p + n; i++) {
		pg[i].mapped = 1;
		pg[i].prot = (uint8_t)prot;
		pg[i].prot_known = 1;
		pg[i].shared = (uint8_t)shared;
		pg[i].atomic = 0;
		pg[i].excl = 0;
		set_uniform(&pg[i], 0);
	}
}

static void op_munmap(void)
{
	int p, n;
	pick_range(&p, &n);
	if (p < 0)
		return;
	record(2, (uint64_t)(uintptr_t)page(p), (uint64_t)n, 0, 0);
	note("munmap(page %d, %d pages)", p, n);
	long r = k_munmap(page(p), (size_t)n * 4096);
	note("  = %ld", r);
	stat(S_MUNMAP, r == 0);
	if (r != 0) {
		bug("munmap of pages %d..%d: %s", p, p + n - 1, kt_errname(r));
		return;
	}
	for (int i = p; i < p + n; i++) {
		pg[i].mapped = 0;
		pg[i].known = 0;
		pg[i].atomic = 0;
		pg[i].excl = 0;
		pg[i].prot_known = 1;
	}
}

static void op_mprotect(void)
{
	int p, n;
	pick_range(&p, &n);
	if (p < 0)
		return;
	int prot = v_prot();
	record(3, (uint64_t)(uintptr_t)page(p), (uint64_t)n, (uint64_t)prot, 0);
	note("mprotect(page %d, %d pages, %d)", p, n, prot);
	long r = k_mprotect(page(p), (size_t)n * 4096, prot);
	note("  = %ld", r);
	stat(S_MPROTECT, r == 0);
	int all = range_all(p, n, pred_mapped);
	if (r == 0) {
		if (!all)
			bug("mprotect of pages %d..%d succeeded over a hole", p, p + n - 1);
		for (int i = p; i < p + n; i++) {
			pg[i].prot = (uint8_t)prot;
			pg[i].prot_known = 1;
			pg[i].atomic = 0; /* devices were told (the entry may stay device-exclusive) */
		}
		return;
	}
	if (all)
		bug("mprotect of the mapped pages %d..%d: %s", p, p + n - 1, kt_errname(r));
	/* Linux changes the VMAs before the hole; memkernel none: unknown */
	for (int i = p; i < p + n; i++)
		if (pg[i].mapped)
			pg[i].prot_known = 0;
}

static void op_dontneed(void)
{
	int p, n;
	pick_range(&p, &n);
	if (p < 0)
		return;
	record(4, (uint64_t)(uintptr_t)page(p), (uint64_t)n, 0, 0);
	note("madvise(page %d, %d pages, DONTNEED)", p, n);
	long r = k_madvise(page(p), (size_t)n * 4096, MADV_DONTNEED);
	note("  = %ld", r);
	stat(S_DONTNEED, r == 0);
	int all = range_all(p, n, pred_mapped);
	if (r == 0 && !all)
		bug("madvise(DONTNEED) of pages %d..%d succeeded over a hole", p, p + n - 1);
	if (r != 0 && all)
		bug("madvise(DONTNEED) of the mapped pages %d..%d: %s", p, p + n - 1, kt_errname(r));
	for (int i = p; i < p + n; i++) {
		if (!pg[i].mapped)
			continue;
		if (r != 0) {
			if (!pg[i].shared)
				pg[i].known = 0; /* Linux zaps what is mapped before reporting the hole */
			continue;
		}
		pg[i].atomic = 0;
		pg[i].excl = 0;
		if (pg[i].shared)
			pg[i].known = 0; /* Linux keeps the data of shared memory; not asserted */
		else
			set_uniform(&pg[i], 0);
	}
}

static void op_ptes(void)
{
	static char buf[8192];
	record(5, 0, 0, 0, 0);
	note("read /proc/self/ptes");
	long fd = k_open("/proc/self/ptes", O_RDONLY);
	stat(S_PTES, fd >= 0);
	if (fd < 0)
		return;
	while (k_read((int)fd, buf, sizeof buf) > 0)
		;
	k_close((int)fd);
}

/* ------------------------------------------------------------------------------------ */
/* Fork                                                                                  */
/* ------------------------------------------------------------------------------------ */

static void reap(long pid, int block)
{
	int st;
	long r;
	do {
		r = k_wait4(pid, &st, block ? 0 : WNOHANG, NULL);
	} while (r == -EINTR);
	if (r <= 0)
		return;
	for (int i = 0; i < nkids; i++)
		if (kids[i] == r)
			kids[i] = kids[--nkids];
	char sb[64];
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		kout("fuzz_hmm: BUG: child %ld (forked at op #?) %s (seed %llu)\n", r, kt_status_str(st, sb, sizeof sb),
		     (unsigned long long)seed);
		failed = 1;
	}
}

static void reap_any(void)
{
	for (int i = nkids - 1; i >= 0; i--)
		reap(kids[i], 0);
}

/* The child: private pages are what they were at the fork; then it plays on its own. */
static __attribute__((noreturn)) void child_main(uint64_t fork_op)
{
	static char pfx[32];
	is_child = 1;
	nkids = 0;
	snprintf(pfx, sizeof pfx, "child %ld: ", k_getpid());
	prefix = pfx;
	/* shared pages change under it, and so does what the parent's devices hold */
	for (int i = 0; i < NP; i++) {
		if (pg[i].shared)
			pg[i].known = 0;
		pg[i].atomic = 0;
		pg[i].excl = 0;
	}
	/* the fds are the parent's mirrors: its devices would act on the parent */
	long my = -1;
	int n = 1 + (int)below(12);
	for (int k = 0; k < n; k++) {
		rng_for(fork_op * 64 + (uint64_t)k, 0xc4117d);
		int p = (int)below(NP);
		switch (below(8)) {
		case 0:
		case 1:
		case 2:
			cpu_check(p, spos[below(NS)]);
			cpu_check(p, bpos[below(3)]);
			break;
		case 3:
		case 4:
			if (!pg[p].shared)
				cpu_poke(p, (int)below(NS), (uint32_t)rnd());
			break;
		case 5:
			if (!pg[p].shared)
				cpu_fill(p, (uint32_t)rnd());
			break;
		case 6:
			if (pg[p].mapped && !pg[p].shared && k_madvise(page(p), 4096, MADV_DONTNEED) == 0)
				set_uniform(&pg[p], 0);
			break;
		default:
			/* a device of its own, on its own memory */
			if (nodev)
				break;
			if (my < 0)
				my = hmm_open((int)below(2));
			if (my >= 0 && !pg[p].shared) {
				long save = dfd[0];
				dfd[0] = my;
				if (chance(50))
					op_dev_atomic_add(0);
				else
					op_dev_read(0);
				dfd[0] = save;
			}
			break;
		}
		__atomic_fetch_add(&sh->child_ops, 1, __ATOMIC_RELAXED);
	}
	/* one last look at everything it still knows */
	for (int p = 0; p < NP; p++)
		if (pg[p].known && readable_certain(&pg[p]))
			cpu_check(p, spos[below(NS)]);
	k_exit(failed ? 1 : 0);
}

static void op_fork(void)
{
	if (nkids == MAX_KIDS)
		reap(kids[0], 1);
	record(6, 0, 0, 0, 0);
	note("fork");
	uint64_t op = cur_op;
	long pid = k_fork();
	if (pid == 0)
		child_main(op);
	note("  = %ld", pid);
	stat(S_FORK, pid > 0);
	if (pid < 0) {
		if (!(fail_armed && pid == -ENOMEM)) /* an injected failure: fork may fail */
			bug("fork: %s", kt_errname(pid));
		return;
	}
	kids[nkids++] = pid;
	__atomic_fetch_add(&sh->children, 1, __ATOMIC_RELAXED);
	/* fork turns every device-exclusive entry into a normal one (devices drop them), and
	 * devices lose access to private writable pages (now copy-on-write) */
	for (int i = 0; i < NP; i++) {
		if (pg[i].excl || (pg[i].mapped && !pg[i].shared && (!pg[i].prot_known || (pg[i].prot & PROT_WRITE))))
			pg[i].atomic = 0;
		pg[i].excl = 0;
	}
}

/* ------------------------------------------------------------------------------------ */
/* Worker                                                                                */
/* ------------------------------------------------------------------------------------ */

/* A race on one private page of this process: a child adds 1 to every word of it
 * through this process's device mirror (the inherited fd: the mirror acts on the
 * address space that opened it), each ATOMIC_ADD taking the page exclusively for the
 * device, while this process adds 1 to one word with locked CPU instructions (each
 * faulting the page back) and, half of the time, 1 to every word through its other
 * mirror. No update may be lost: the exact sums are checked (CPU and device). */
static void op_race(void)
{
	int p = (int)below(NP);
	int m = (int)below(2);
	int dev_n = 1 + (int)below(40), cpu_n = 1 + (int)below(40), w = spos[below(NS)];
	int dev2_n = chance(50) ? (int)below(20) : 0;
	record(10, (uint64_t)p, (uint64_t)dev_n, (uint64_t)cpu_n, (uint64_t)m);
	if (nkids == MAX_KIDS)
		reap(kids[0], 1);
	op_mmap_fixed_at(p, 1, PROT_READ | PROT_WRITE, 0);
	uint32_t v0 = (uint32_t)rnd();
	cpu_fill(p, v0);
	note("race on page %d: child: device %d x%d; parent: CPU x%d, device %d x%d", p, m, dev_n, cpu_n, 1 - m,
	     dev2_n);
	volatile uint32_t *word = (volatile uint32_t *)(void *)(page(p) + 4 * w);
	long pid = k_fork();
	if (pid == 0) {
		is_child = 1;
		prefix = "race child: ";
		for (int i = 0; i < dev_n; i++) {
			cmdp->addr = (uint64_t)(uintptr_t)page(p);
			cmdp->ptr = 1;
			cmdp->npages = 1;
			long r = ksys3(SYS_ioctl, dfd[m], 0xC0284840UL, cmdp);
			if (r != 0) {
				kout("fuzz_hmm: race child: ATOMIC_ADD on the parent's page %d: %s (seed %llu)\n", p,
				     hmm_errname(r), (unsigned long long)seed);
				k_exit(1);
			}
			sched_yield();
		}
		k_exit(0);
	}
	if (pid < 0) {
		if (!(fail_armed && pid == -ENOMEM))
			bug("fork for the race: %s", kt_errname(pid));
		return;
	}
	long r = 0;
	for (int i = 0; i < cpu_n || i < dev2_n; i++) {
		if (i < cpu_n)
			__atomic_fetch_add(word, 1, __ATOMIC_SEQ_CST);
		if (i < dev2_n && r == 0)
			r = dev_ioctl(1 - m, 0xC0284840, (uint64_t)(uintptr_t)page(p), 1, 1, NULL);
		if (i % 4 == 0)
			sched_yield();
	}
	int st = 0;
	long w4;
	do {
		w4 = k_wait4(pid, &st, 0, NULL);
	} while (w4 == -EINTR);
	struct pg *g = &pg[p];
	g->atomic = 0;
	g->excl = 0;
	if (r != 0 || w4 != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char sb[64];
		bug("race on page %d: parent's device %s, child %s", p, hmm_errname(r), kt_status_str(st, sb, sizeof sb));
		g->known = 0;
		return;
	}
	stat(S_RACE, 1);
	/* exact sums: every word got dev_n + dev2_n (devices), the chosen one cpu_n more */
	uint32_t dev = (uint32_t)(dev_n + dev2_n);
	g->base = v0 + dev;
	for (int i = 0; i < NS; i++)
		g->s[i] = v0 + dev + (spos[i] == w ? (uint32_t)cpu_n : 0);
	cpu_check(p, w);
	cpu_check(p, bpos[below(3)]);
	if (chance(50))
		op_dev_read_at(m, p);
}

static void one_op(void)
{
	int m = (int)below(2);
	int p = (int)below(NP);
	uint64_t k = below(1000);
	if (nodev && k < 597)
		k = 738 + k % 262; /* CPU accesses instead */
	if (k < 120)
		op_dev_read(m);
	else if (k < 220)
		op_dev_write(m);
	else if (k < 330)
		op_dev_exclusive(m);
	else if (k < 400)
		op_dev_check(m);
	else if (k < 500)
		op_dev_atomic_add(m);
	else if (k < 540)
		op_dev_snapshot(m);
	else if (k < 570)
		op_dev_bad(m);
	else if (k < 590)
		op_dev_badptr(m);
	else if (k < 597)
		op_reopen(m);
	else if (k < 640)
		op_mmap_fixed();
	else if (k < 650)
		op_munmap();
	else if (k < 690)
		op_mprotect();
	else if (k < 720)
		op_dontneed();
	else if (k < 730)
		op_fork();
	else if (k < 735 && !nodev)
		op_race();
	else if (k < 738)
		op_ptes();
	else if (k < 840) {
		record(7, (uint64_t)p, 0, 0, 0);
		cpu_check(p, chance(60) ? spos[below(NS)] : bpos[below(3)]);
	} else if (k < 940) {
		record(8, (uint64_t)p, 0, 0, 0);
		cpu_poke(p, (int)below(NS), (uint32_t)rnd());
	} else {
		record(9, (uint64_t)p, 0, 0, 0);
		cpu_fill(p, (uint32_t)rnd());
	}
}

static int worker_setup(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	long r = k_mmap(NULL, (NP + 2) * 4096UL, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (kt_is_err(r))
		return kout("fuzz_hmm: cannot map the arena: %s\n", kt_errname(r)), 1;
	k_mprotect((void *)r, 4096, PROT_NONE);
	k_mprotect((char *)r + (NP + 1) * 4096UL, 4096, PROT_NONE);
	arena = (char *)r + 4096;
	r = k_mmap(NULL, (NP + 1) * 4096UL, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (kt_is_err(r))
		return kout("fuzz_hmm: cannot map the device buffer: %s\n", kt_errname(r)), 1;
	dbuf = (char *)r;
	k_mprotect(dbuf + NP * 4096UL, 4096, PROT_NONE);
	static struct hmm_dmirror_cmd cmd_store;
	cmdp = &cmd_store;
	for (int i = 0; i < NP; i++) {
		pg[i].mapped = 1;
		pg[i].prot = PROT_READ | PROT_WRITE;
		pg[i].prot_known = 1;
		set_uniform(&pg[i], 0);
	}
	for (int m = 0; m < 2 && !nodev; m++) {
		dfd[m] = hmm_open(m);
		if (dfd[m] < 0)
			return kout("fuzz_hmm: open /dev/hmm_dmirror%d: %s\n", m, hmm_errname(dfd[m])), 1;
	}
	return 0;
}

/*
 * Allocation-failure injection (as fuzz_sys; /proc/self/fail-nth): before one operation in
 * ten the worker arms a failure of one of its first four allocations. An operation that
 * then fails is one more error the fuzzer already tolerates (ENOMEM); what must hold is
 * what it checks anyway: data read back, no panic, no leak.
 */
static long fail_fd = -1;

static void fail_nth_write(unsigned n)
{
	char buf[16];
	int len = snprintf(buf, sizeof buf, "%u", n);
	if (fail_fd >= 0 && k_write((int)fail_fd, buf, (size_t)len) != len)
		fail_fd = -1;
}

static void one_op_maybe_failing(uint64_t i)
{
	unsigned n = 0;
	if (fail_fd >= 0) {
		rng_for(i, 0xfa117);
		if (below(10) == 0)
			n = 1 + (unsigned)below(4);
		rng_for(i, 0);
	}
	fail_nth_write(n);
	fail_armed = n != 0 && fail_fd >= 0;
	one_op();
	fail_armed = 0;
	if (!n || fail_fd < 0)
		return;
	char buf[16] = { 0 };
	long r = ksys4(SYS_pread64, fail_fd, buf, sizeof buf - 1, 0);
	fail_nth_write(0);
	sh->armed++;
	if (r > 0 && buf[0] == '0')
		sh->injected++;
}

static __attribute__((noreturn)) void worker_main(uint64_t n, int quiet)
{
	if (worker_setup())
		k_exit(2);
	fail_fd = k_open("/proc/self/fail-nth", O_RDWR);
	uint64_t t0 = kt_now_ns();
	for (uint64_t i = 0; i < n; i++) {
		cur_op = i;
		rng_for(i, 0);
		reap_any();
		if (i % 1000 == 999)
			op_mmap_fixed_at(0, NP, PROT_READ | PROT_WRITE, 0); /* a fresh arena now and then */
		else
			one_op_maybe_failing(i);
		sh->done = i + 1;
		if (!quiet && (i + 1) % 100000 == 0)
			kout("fuzz_hmm: %llu operations (%llu ms)\n", (unsigned long long)(i + 1),
			     (unsigned long long)((kt_now_ns() - t0) / 1000000));
	}
	while (nkids)
		reap(kids[0], 1);
	if (!quiet) {
		char line[400];
		int len = 0;
		for (int i = 0; i < S_N; i++)
			if (st_n[i])
				len += snprintf(line + len, sizeof line - (size_t)len, "%s%s %llu/%llu", len ? ", " : "",
						st_name[i], (unsigned long long)st_n[i], (unsigned long long)st_ok[i]);
		kout("# operations (count/succeeded): %s\n", line);
	}
	if (!nodev) {
		k_close((int)dfd[0]);
		k_close((int)dfd[1]);
	}
	k_munmap(arena - 4096, (NP + 2) * 4096UL);
	k_munmap(dbuf, (NP + 1) * 4096UL);
	k_exit(failed ? 1 : 0);
}

/* ------------------------------------------------------------------------------------ */
/* Supervisor (as in fuzz_sys)                                                            */
/* ------------------------------------------------------------------------------------ */

static const char *what_name(int64_t w)
{
	switch (w) {
	case 1: return "mmap MAP_FIXED";
	case 2: return "munmap";
	case 3: return "mprotect";
	case 4: return "madvise DONTNEED";
	case 5: return "read /proc/self/ptes";
	case 6: return "fork";
	case 7: return "CPU read";
	case 8: return "CPU write";
	case 9: return "CPU fill";
	case 200: return "ioctl with a bad command pointer";
	case 300: return "close and reopen";
	case 10: return "race (page, device adds, CPU adds, device)";
	default: return w >= 100 ? "ioctl" : "?";
	}
}

static int run_worker(uint64_t n, int quiet)
{
	memset((void *)sh, 0, sizeof *sh);
	long pid = k_fork();
	if (pid == 0)
		worker_main(n, quiet);
	if (pid < 0) {
		kout("fuzz_hmm: fork of the worker failed: %s\n", kt_errname(pid));
		return 1;
	}
	uint64_t last_done = ~0ULL, last_change = kt_now_ns();
	int st = 0;
	for (;;) {
		long r = k_wait4(-1, &st, WNOHANG, NULL);
		if (r == pid)
			break;
		if (r > 0)
			continue;
		if (r < 0 && r != -EINTR) {
			kout("fuzz_hmm: wait4 for the worker: %s\n", kt_errname(r));
			return 1;
		}
		uint64_t now = kt_now_ns();
		if (sh->done != last_done) {
			last_done = sh->done;
			last_change = now;
		} else if (now - last_change > STALL_SECONDS * 1000000000ULL) {
			kout("fuzz_hmm: FAIL: no progress for %d s (kernel hang?) in op #%llu (seed %llu): %s %#llx %#llx "
			     "%#llx %#llx\n",
			     STALL_SECONDS, (unsigned long long)sh->op, (unsigned long long)seed, what_name(sh->what),
			     (unsigned long long)sh->a[0], (unsigned long long)sh->a[1], (unsigned long long)sh->a[2],
			     (unsigned long long)sh->a[3]);
			fuzz_dump_ps("fuzz_hmm");
			k_kill(pid, SIGKILL);
			uint64_t t = kt_now_ns();
			while (k_wait4(pid, &st, WNOHANG, NULL) != pid) {
				if (kt_now_ns() - t > 10000000000ULL) {
					kout("fuzz_hmm: the worker does not die of SIGKILL either\n");
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
	kout("fuzz_hmm: FAIL: the worker %s after %llu operations (seed %llu); the last one: op #%llu %s %#llx %#llx "
	     "%#llx %#llx\n",
	     kt_status_str(st, sb, sizeof sb), (unsigned long long)sh->done, (unsigned long long)seed,
	     (unsigned long long)sh->op, what_name(sh->what), (unsigned long long)sh->a[0],
	     (unsigned long long)sh->a[1], (unsigned long long)sh->a[2], (unsigned long long)sh->a[3]);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "--nodev") == 0) {
		nodev = 1;
		argc--;
		argv++;
	}
	if (argc >= 2) {
		seed = strtoull(argv[1], NULL, 0);
		if (argc >= 3)
			nops = strtoull(argv[2], NULL, 0);
		if (argc >= 4)
			replay = strcmp(argv[3], "replay") == 0;
		if (argc >= 5)
			replay_from = strtoull(argv[4], NULL, 0);
	} else {
		fuzz_read_args_file(&seed, &nops, &replay, &replay_from);
	}
	memk = kt_is_memkernel();
	struct utsname u;
	k_uname(&u);
	long fd = nodev ? 0 : hmm_open(0);
	if (fd < 0) {
		kout("fuzz_hmm: open(/dev/hmm_dmirror0) = %s on %s\n", hmm_errname(fd), u.sysname);
		if (!memk) {
			kout("fuzz_hmm: skipped: no /dev/hmm_dmirror0 (memkernel's emulated accelerator)\n");
			kout("0 passed, 0 failed\n");
			return 0;
		}
		kout("0 passed, 1 failed\n");
		return 1;
	}
	if (!nodev)
		k_close((int)fd);
	kout("fuzz_hmm: seed %llu, %llu operations%s%s, on %s\n", (unsigned long long)seed, (unsigned long long)nops,
	     replay ? " (replay: every operation printed)" : "", nodev ? " without devices" : "", u.sysname);
	long r = k_mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (kt_is_err(r)) {
		kout("fuzz_hmm: cannot map the shared page: %s\n0 passed, 1 failed\n", kt_errname(r));
		return 1;
	}
	sh = (struct shared *)r;

	uint64_t keep_seed = seed;
	int keep_replay = replay;
	seed = keep_seed ^ 0x5eedf00dULL;
	replay = 0;
	int bad = run_worker(nops < 300 ? nops : 300, 1);
	seed = keep_seed;
	replay = keep_replay;
	fuzz_reap_all();
	if (bad) {
		kout("fuzz_hmm: (in the warm-up run: seed %llu ^ 0x5eedf00d, 300 operations)\n", (unsigned long long)seed);
		kout("0 passed, 1 failed\n");
		return 1;
	}

	unsigned long before = kt_freeram();
	uint64_t t0 = kt_now_ns();
	bad = run_worker(nops, 0);
	uint64_t ms = (kt_now_ns() - t0) / 1000000;
	fuzz_reap_all();
	unsigned long after = fuzz_freeram_settled(before);
	long d = (long)after - (long)before;
	kout("fuzz_hmm: free memory before %lu KiB, after %lu KiB (%+ld pages)\n", before / 1024, after / 1024, d / 4096);
	if (memk && d != 0) {
		kout("fuzz_hmm: FAIL: free memory %s by %ld pages once every process was gone\n", d < 0 ? "down" : "up",
		     (d < 0 ? -d : d) / 4096);
		bad = 1;
	}
	kout("fuzz_hmm: %llu operations, seed %llu, %llu ms; %llu children (%llu operations); %llu checks, %llu "
	     "faults caught; %llu operations with an allocation failure armed, %llu injected\n",
	     (unsigned long long)sh->done, (unsigned long long)seed, (unsigned long long)ms,
	     (unsigned long long)sh->children, (unsigned long long)sh->child_ops, (unsigned long long)sh->checks,
	     (unsigned long long)sh->faults, (unsigned long long)sh->armed, (unsigned long long)sh->injected);
	kout("%d passed, %d failed\n", bad ? 0 : 1, bad ? 1 : 0);
	return bad ? 1 : 0;
}
