/*
 * hmm.h - helpers for the tests of device-exclusive access through the emulated accelerator
 * (/dev/hmm_dmirror0 and /dev/hmm_dmirror1). Static inline only, like ktest.h, which it
 * includes.
 *
 * The ioctl interface is Linux's lib/test_hmm_uapi.h plus our ATOMIC_ADD (what the
 * operations mean: docs chapters 7.10 and 9):
 *
 *   struct hmm_dmirror_cmd { u64 addr; u64 ptr; u64 npages; u64 cpages; u64 faults; }
 *   READ            device reads [addr, +npages pages) into ptr
 *   WRITE           device writes ptr into [addr, +npages)
 *   SNAPSHOT        one protection byte per page into ptr (the CPU's view, Linux values,
 *                   plus 0x04 = the page is device-exclusive)
 *   EXCLUSIVE       make [addr, +npages) device-exclusive, then read it through the device
 *                   into ptr; cpages = pages handled
 *   CHECK_EXCLUSIVE -EPERM while any page of the range is still atomic-mapped in the device
 *   ATOMIC_ADD      the device adds (int32_t)ptr to every 32-bit word of every page, taking
 *                   exclusive access first where it lacks it (faults = page requests)
 *
 * Errors (-errno): EINVAL a bad range (npages 0 or too many, an unaligned addr) or an
 * unknown request; EFAULT an unmapped address or a bad pointer; EPERM a protection error
 * (for example a device write to a read-only VMA, or EXCLUSIVE on one); EOPNOTSUPP
 * EXCLUSIVE on memory that is not private anonymous (MAP_SHARED); EBUSY the device could
 * not get a page after repeated requests; ENOMEM no memory.
 *
 * cpages and faults are outputs only: the driver zeroes them first, as Linux's does, so
 * whatever the caller leaves there (Linux's hmm-tests leaves them uninitialised) is harmless.
 *
 * Test hook, test kernels only (memkernel built with the cargo feature `test-hooks`, which
 * scripts/user-tests.sh boots for programs whose source says `ktest: kernel=test-hooks`):
 * HMM_DMIRROR_EXCLUSIVE_HOLD is EXCLUSIVE that also keeps each converted frame locked for
 * cmd.faults ms after its device mapping is installed (in the engine thread), while the
 * ioctl itself returns at once. A normal kernel answers EINVAL, as for any unknown request.
 *
 * The helpers call libc's ioctl(), as real programs do (musl passes the request as an int,
 * sign-extended: the kernel must look at its low 32 bits only, as Linux does), and return 0
 * or -errno; -EINTR is retried.
 *
 * hmm_main() replaces ktest_main(): when /dev/hmm_dmirror0 cannot be opened it prints
 *
 *   running 0 tests
 *   # skipped: no /dev/hmm_dmirror0
 *   0 passed, 0 failed
 *
 * and exits 0 on any kernel but memkernel; on memkernel a missing device is a failure.
 */
#ifndef HMM_H
#define HMM_H

#include "ktest.h"
#include <sys/ioctl.h>

struct hmm_dmirror_cmd {
	uint64_t addr;   /* first page of the range (page aligned) */
	uint64_t ptr;    /* user buffer (READ/WRITE/SNAPSHOT/EXCLUSIVE), or the value (ATOMIC_ADD) */
	uint64_t npages; /* 1..HMM_MAX_PAGES */
	uint64_t cpages; /* out: pages handled */
	uint64_t faults; /* out: device page requests; in: EXCLUSIVE_HOLD's hold time (ms) */
};
_Static_assert(sizeof(struct hmm_dmirror_cmd) == 40, "struct hmm_dmirror_cmd is 40 bytes");

#define HMM_DMIRROR_READ 0xC0284800UL
#define HMM_DMIRROR_WRITE 0xC0284801UL
#define HMM_DMIRROR_SNAPSHOT 0xC0284804UL
#define HMM_DMIRROR_EXCLUSIVE 0xC0284805UL
#define HMM_DMIRROR_CHECK_EXCLUSIVE 0xC0284806UL
#define HMM_DMIRROR_ATOMIC_ADD 0xC0284840UL
#define HMM_DMIRROR_EXCLUSIVE_HOLD 0xC0284841UL /* test kernels only, see above */

/* SNAPSHOT bytes: Linux's HMM_DMIRROR_PROT_* plus ours (ATOMIC). */
#define HMM_PROT_ERROR 0xFF
#define HMM_PROT_NONE 0x00
#define HMM_PROT_READ 0x01   /* present, read-only */
#define HMM_PROT_WRITE 0x02  /* present, writable */
#define HMM_PROT_ATOMIC 0x04 /* ours: device-exclusive entry (Linux uses 0x04 for PMD) */
#define HMM_PROT_ZERO 0x10   /* Linux: the shared zero page (with READ) */

#define HMM_MAX_PAGES 1024UL
#define HMM_PAGE KT_PAGE
#define HMM_WORDS_PER_PAGE (HMM_PAGE / sizeof(uint32_t))

#ifndef EOPNOTSUPP
#define EOPNOTSUPP 95
#endif

/* KT_TRY: run a helper that returns 0 or an already printed failure (1). */
#define KT_TRY(expr)                 \
	do {                         \
		int kt_try_r_ = (expr); \
		if (kt_try_r_)       \
			return kt_try_r_; \
	} while (0)

static inline const char *hmm_errname(long r)
{
	if (r == -EOPNOTSUPP)
		return "-EOPNOTSUPP";
	if (r == -ENODEV)
		return "-ENODEV";
	if (r == -ENXIO)
		return "-ENXIO";
	return kt_errname(r);
}

/* ------------------------------------------------------------------------------------ */
/* Device files and ioctls                                                               */
/* ------------------------------------------------------------------------------------ */

/* hmm_open: open /dev/hmm_dmirrorUNIT read-write; the fd or -errno. */
static inline long hmm_open(int unit)
{
	char path[32];
	snprintf(path, sizeof path, "/dev/hmm_dmirror%d", unit);
	return k_open(path, O_RDWR);
}

/* hmm_ioctl: libc's ioctl(), as 0 or -errno, retried on EINTR. */
static inline long hmm_ioctl(long fd, unsigned long req, struct hmm_dmirror_cmd *cmd)
{
	long r;
	do {
		r = ioctl((int)fd, req, cmd) < 0 ? -errno : 0;
	} while (r == -EINTR);
	return r;
}

/*
 * hmm_cmd: build a command (cpages = faults = 0 on input), issue it, and copy the
 * command as the kernel left it into *out (if out). Returns the ioctl's result.
 */
static inline long hmm_cmd(long fd, unsigned long req, const void *addr, uint64_t ptr, uint64_t npages,
			   struct hmm_dmirror_cmd *out)
{
	struct hmm_dmirror_cmd cmd;
	memset(&cmd, 0, sizeof cmd);
	cmd.addr = (uint64_t)(uintptr_t)addr;
	cmd.ptr = ptr;
	cmd.npages = npages;
	long r = hmm_ioctl(fd, req, &cmd);
	if (out)
		*out = cmd;
	return r;
}

/* hmm_exclusive: EXCLUSIVE on [addr, +npages); the device's read-back goes to mirror. */
static inline long hmm_exclusive(long fd, void *addr, uint64_t npages, void *mirror, uint64_t *cpages)
{
	struct hmm_dmirror_cmd c;
	long r = hmm_cmd(fd, HMM_DMIRROR_EXCLUSIVE, addr, (uint64_t)(uintptr_t)mirror, npages, &c);
	if (cpages)
		*cpages = c.cpages;
	return r;
}

/*
 * hmm_exclusive_hold: EXCLUSIVE_HOLD (test kernels only): EXCLUSIVE, and the driver keeps
 * the converted frames locked for hold_ms ms after installing its mapping, in its engine
 * thread, while this ioctl returns at once.
 */
static inline long hmm_exclusive_hold(long fd, void *addr, uint64_t npages, void *mirror, uint64_t hold_ms)
{
	struct hmm_dmirror_cmd cmd;
	memset(&cmd, 0, sizeof cmd);
	cmd.addr = (uint64_t)(uintptr_t)addr;
	cmd.ptr = (uint64_t)(uintptr_t)mirror;
	cmd.npages = npages;
	cmd.faults = hold_ms;
	return hmm_ioctl(fd, HMM_DMIRROR_EXCLUSIVE_HOLD, &cmd);
}

/* hmm_check_exclusive: 0 when no page of the range is atomic-mapped in the device, -EPERM if any is. */
static inline long hmm_check_exclusive(long fd, void *addr, uint64_t npages)
{
	return hmm_cmd(fd, HMM_DMIRROR_CHECK_EXCLUSIVE, addr, 0, npages, NULL);
}

static inline long hmm_snapshot(long fd, void *addr, uint64_t npages, uint8_t *out)
{
	return hmm_cmd(fd, HMM_DMIRROR_SNAPSHOT, addr, (uint64_t)(uintptr_t)out, npages, NULL);
}

static inline long hmm_dev_read(long fd, void *addr, uint64_t npages, void *buf)
{
	return hmm_cmd(fd, HMM_DMIRROR_READ, addr, (uint64_t)(uintptr_t)buf, npages, NULL);
}

static inline long hmm_dev_write(long fd, void *addr, uint64_t npages, const void *buf)
{
	return hmm_cmd(fd, HMM_DMIRROR_WRITE, addr, (uint64_t)(uintptr_t)buf, npages, NULL);
}

/* hmm_atomic_add: the device adds v to every 32-bit word of [addr, +npages). */
static inline long hmm_atomic_add(long fd, void *addr, uint64_t npages, int32_t v, struct hmm_dmirror_cmd *out)
{
	return hmm_cmd(fd, HMM_DMIRROR_ATOMIC_ADD, addr, (uint64_t)(int64_t)v, npages, out);
}

/* ------------------------------------------------------------------------------------ */
/* SNAPSHOT bytes                                                                        */
/* ------------------------------------------------------------------------------------ */

/* hmm_prot_known: 1 for the values a kernel may report (Linux's and our ATOMIC). */
static inline int hmm_prot_known(uint8_t v)
{
	switch (v) {
	case HMM_PROT_ERROR:
	case HMM_PROT_NONE:
	case HMM_PROT_READ:
	case HMM_PROT_WRITE:
	case HMM_PROT_ATOMIC:
	case HMM_PROT_ZERO | HMM_PROT_READ:
		return 1;
	default:
		return 0;
	}
}

/* hmm_prot_name: "NONE", "READ", "WRITE", "ATOMIC", "ERROR", "ZERO|READ" or "unknown 0xNN". */
static inline const char *hmm_prot_name(uint8_t v)
{
	switch (v) {
	case HMM_PROT_ERROR: return "ERROR";
	case HMM_PROT_NONE: return "NONE";
	case HMM_PROT_READ: return "READ";
	case HMM_PROT_WRITE: return "WRITE";
	case HMM_PROT_ATOMIC: return "ATOMIC";
	case HMM_PROT_ZERO | HMM_PROT_READ: return "ZERO|READ";
	default: break;
	}
	static char buf[4][24];
	static int slot;
	char *b = buf[slot++ & 3];
	snprintf(b, sizeof buf[0], "unknown 0x%02x", v);
	return b;
}

/*
 * hmm_expect_snapshot: SNAPSHOT [addr, +npages) and check every byte is `want` (or, when
 * want2 differs from want, either of the two). Returns 0 or a printed failure naming the
 * first page that differs.
 */
static inline int hmm_expect_snapshot2(long fd, void *addr, uint64_t npages, uint8_t want, uint8_t want2,
				       const char *what)
{
	static uint8_t snap[HMM_MAX_PAGES];
	if (npages > HMM_MAX_PAGES)
		return kt_fail("%s: hmm_expect_snapshot: %lu pages", what, (unsigned long)npages);
	memset(snap, 0xA5, sizeof snap);
	long r = hmm_snapshot(fd, addr, npages, snap);
	if (r != 0)
		return kt_fail("%s: SNAPSHOT returned %s", what, hmm_errname(r));
	for (uint64_t i = 0; i < npages; i++)
		if (snap[i] != want && snap[i] != want2) {
			if (want2 != want)
				return kt_fail("%s: SNAPSHOT page %lu is %s, expected %s or %s", what, (unsigned long)i,
					       hmm_prot_name(snap[i]), hmm_prot_name(want), hmm_prot_name(want2));
			return kt_fail("%s: SNAPSHOT page %lu is %s, expected %s", what, (unsigned long)i,
				       hmm_prot_name(snap[i]), hmm_prot_name(want));
		}
	return 0;
}

static inline int hmm_expect_snapshot(long fd, void *addr, uint64_t npages, uint8_t want, const char *what)
{
	return hmm_expect_snapshot2(fd, addr, npages, want, want, what);
}

/* hmm_expect: check an ioctl result; 0 or a printed failure. */
static inline int hmm_expect(long got, long want, const char *what)
{
	if (got != want)
		return kt_fail("%s returned %s, expected %s", what, hmm_errname(got),
			       want == 0 ? "0" : hmm_errname(want));
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Data                                                                                  */
/* ------------------------------------------------------------------------------------ */

/* hmm_fill: word[i] = base + i over [p, p+len). */
static inline void hmm_fill(void *p, size_t len, uint32_t base)
{
	volatile uint32_t *w = p;
	for (size_t i = 0; i < len / 4; i++)
		w[i] = base + (uint32_t)i;
}

/* hmm_find_bad: the first i with word[i] != base + i, or -1. */
static inline long hmm_find_bad(const void *p, size_t len, uint32_t base)
{
	const volatile uint32_t *w = p;
	for (size_t i = 0; i < len / 4; i++)
		if (w[i] != base + (uint32_t)i)
			return (long)i;
	return -1;
}

/* hmm_check_and_inc: Linux's `ASSERT_EQ(ptr[i]++, i)`: -1, or the first i where word[i] was not base + i. */
static inline long hmm_check_and_inc(void *p, size_t len, uint32_t base)
{
	volatile uint32_t *w = p;
	for (size_t i = 0; i < len / 4; i++) {
		uint32_t v = w[i];
		if (v != base + (uint32_t)i)
			return (long)i;
		w[i] = v + 1;
	}
	return -1;
}

/* hmm_expect_words: every word of [p, p+len) is base + i; 0 or a printed failure. */
static inline int hmm_expect_words(const void *p, size_t len, uint32_t base, const char *what)
{
	long bad = hmm_find_bad(p, len, base);
	if (bad >= 0)
		return kt_fail("%s: word %ld (page %ld) is %#x, expected %#x", what, bad,
			       bad / (long)HMM_WORDS_PER_PAGE, ((const volatile uint32_t *)p)[bad],
			       base + (uint32_t)bad);
	return 0;
}

/* hmm_map: a private anonymous read-write mapping of npages, or NULL. */
static inline void *hmm_map(size_t npages)
{
	return k_anon(npages * HMM_PAGE, PROT_READ | PROT_WRITE);
}

/* hmm_map_touched: hmm_map, then every page written (a device read-back buffer that is
 * already populated, so its faults do not disturb free-memory figures). */
static inline void *hmm_map_touched(size_t npages, uint8_t byte)
{
	void *p = hmm_map(npages);
	if (p)
		memset(p, byte, npages * HMM_PAGE);
	return p;
}

/* ------------------------------------------------------------------------------------ */
/* Time and memory                                                                       */
/* ------------------------------------------------------------------------------------ */

/* hmm_ms: nanoseconds to whole milliseconds (unsigned long long, for %llu). */
static inline unsigned long long hmm_ms(uint64_t ns) { return (unsigned long long)(ns / 1000000ULL); }

/*
 * hmm_expect_freed: on memkernel, check that free memory went up by `pages` from `before`
 * to `after`, give or take `slack` pages (page tables); elsewhere just accept.
 */
static inline int hmm_expect_freed(unsigned long before, unsigned long after, long pages, long slack,
				   const char *what)
{
	if (!kt_memkernel)
		return 0;
	long d = ((long)after - (long)before) / (long)HMM_PAGE;
	if (d < pages - slack || d > pages + slack)
		return kt_fail("%s: free memory changed by %+ld pages (%lu -> %lu KiB), expected %+ld (+-%ld)", what,
			       d, before / 1024, after / 1024, pages, slack);
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Child processes                                                                        */
/* ------------------------------------------------------------------------------------ */

/*
 * hmm_expect_child: reap pid (for at most timeout_ms) and check it exited 0; otherwise a
 * failure naming the exit code through `why` (why(code) -> text, may be NULL).
 */
static inline int hmm_expect_child(long pid, uint64_t timeout_ms, const char *what, const char *(*why)(int))
{
	int st = 0;
	char sb[64];
	long r = kt_wait_timeout(pid, &st, timeout_ms);
	if (r == 0)
		return kt_fail("%s: the child did not finish within %llu ms (killed)", what,
			       (unsigned long long)timeout_ms);
	if (r != pid)
		return kt_fail("%s: wait4(%ld) returned %s", what, pid, kt_errname(r));
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (WIFEXITED(st) && why && why(WEXITSTATUS(st)))
		return kt_fail("%s: child: %s (exit %d)", what, why(WEXITSTATUS(st)), WEXITSTATUS(st));
	return kt_fail("%s: child %s, expected exit 0", what, kt_status_str(st, sb, sizeof sb));
}

/* ------------------------------------------------------------------------------------ */
/* main                                                                                  */
/* ------------------------------------------------------------------------------------ */

/*
 * hmm_main: the device must exist on memkernel; elsewhere its absence skips the program.
 * The first open (and close) also warms the driver up before the harness's baselines.
 */
static inline int hmm_main(const char *prog, const struct ktest *tests, int n, int argc, char **argv,
			   char **envp)
{
	long fd = hmm_open(0);
	if (fd < 0) {
		struct utsname u;
		memset(&u, 0, sizeof u);
		k_uname(&u);
		if (strcmp(u.sysname, "memkernel") != 0) {
			kout("running 0 tests\n");
			kout("# skipped: no /dev/hmm_dmirror0\n");
			kout("# %s: open(/dev/hmm_dmirror0) returned %s on %s; these tests need memkernel's "
			     "emulated accelerator\n",
			     prog, hmm_errname(fd), u.sysname);
			kout("0 passed, 0 failed\n");
			return 0;
		}
		kout("running 1 tests\n");
		kout("hmm::device_present ... FAILED: open(/dev/hmm_dmirror0) returned %s on memkernel\n",
		     hmm_errname(fd));
		kout("0 passed, 1 failed\n");
		return 1;
	}
	k_close((int)fd);
	return ktest_main(prog, tests, n, argc, argv, envp);
}

#endif /* HMM_H */
