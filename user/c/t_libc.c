/*
 * t_libc: ordinary musl code on the kernel.
 *   - snprintf with many formats (integers, widths, precision, strings, chars, pointers,
 *     floating point) gives exactly glibc/musl's text; printf to stdout + fflush work;
 *   - malloc/free of 5000 small blocks of random sizes alive at once, contents checked;
 *   - malloc of large blocks (> 128 KiB, which musl serves with mmap) up to 16 MiB;
 *   - realloc growing and shrinking across the mmap threshold keeps the contents
 *     (large -> large is avoided: musl would try mremap, which is outside the subset);
 *   - calloc returns zeroed memory, also after dirty frees;
 *   - the raw brk syscall: query, grow (touching every page), shrink back, refuse to go
 *     below the start;
 *   - qsort, strtol, memmove, strstr; libc getpid/clock_gettime/nanosleep;
 *   - exit() from a child flushes stdio and passes the exit code.
 */
#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include "ktest.h"

static int t_snprintf(void)
{
	char b[256];
#define F(want, ...)                                                                              \
	do {                                                                                      \
		int n_ = snprintf(b, sizeof b, __VA_ARGS__);                                      \
		KT_CHECK(strcmp(b, want) == 0 && n_ == (int)strlen(want), "snprintf(%s) gave \"%s\" (%d), want \"%s\"", \
			 #__VA_ARGS__, b, n_, want);                                              \
	} while (0)
	F("42", "%d", 42);
	F("-42", "%i", -42);
	F("4294967295", "%u", 4294967295u);
	F("ff FF 777", "%x %X %o", 255, 255, 511);
	F("-9223372036854775808", "%ld", (long)(-9223372036854775807L - 1));
	F("18446744073709551615", "%llu", 18446744073709551615ULL);
	F("123456789012", "%zu", (size_t)123456789012ULL);
	F("[   42][42   ][00042][+42]", "[%5d][%-5d][%05d][%+d]", 42, 42, 42, 42);
	F("0x1f 0X1F", "%#x %#X", 31, 31);
	F("abc|ab|  abc", "%s|%.2s|%5s", "abc", "abc", "abc");
	F("x%y", "%c%%%c", 'x', 'y');
	F("3.142", "%.3f", 3.14159265);
	F("-0.50", "%.2f", -0.5);
	F("1.000000e+10", "%e", 1e10);
	F("0.0001 1e-05 123457", "%g %g %g", 0.0001, 0.00001, 123456.7);
	F("inf -inf nan", "%f %f %f", INFINITY, -INFINITY, NAN);
	F("0x1000", "%p", (void *)0x1000);
	F("  1.50", "%6.2f", 1.5);
	int n = snprintf(b, 4, "%s", (const char *)kt_launder("truncated"));
	KT_CHECK(n == 9 && strcmp(b, "tru") == 0, "truncation: got \"%s\" %d", b, n);
#undef F
	return 0;
}

static int t_printf_stdout(void)
{
	int n = printf("# libc: printf to stdout: %d %s %.2f %c\n", 42, "string", 2.5, 'z');
	KT_CHECK(n == (int)strlen("# libc: printf to stdout: 42 string 2.50 z\n"), "printf returned %d", n);
	KT_CHECK(fflush(stdout) == 0, "fflush(stdout) failed");
	KT_CHECK(puts("# libc: puts to stdout") >= 0, "puts failed");
	KT_CHECK(fflush(stdout) == 0, "fflush(stdout) failed");
	return 0;
}

static uint64_t lcg_state = 88172645463325252ULL;
static uint32_t rnd(void)
{
	lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(lcg_state >> 33);
}

static int t_malloc_small(void)
{
	enum { N = 5000 };
	static unsigned char *ptr[N];
	static size_t len[N];
	for (int i = 0; i < N; i++) {
		len[i] = 1 + rnd() % 2048;
		ptr[i] = malloc(len[i]);
		KT_CHECK(ptr[i], "malloc(%zu) #%d returned NULL", len[i], i);
		KT_CHECK(((uintptr_t)ptr[i] & 15) == 0, "malloc returned %p, not 16-byte aligned", (void *)ptr[i]);
		memset(ptr[i], (int)(i & 0xff), len[i]);
	}
	for (int i = 0; i < N; i++)
		for (size_t j = 0; j < len[i]; j++)
			KT_CHECK(ptr[i][j] == (unsigned char)(i & 0xff), "block %d (size %zu) corrupted at %zu", i,
				 len[i], j);
	/* free in a shuffled order, reallocating half of them on the way */
	for (int i = N - 1; i > 0; i--) {
		int j = (int)(rnd() % (uint32_t)(i + 1));
		unsigned char *t = ptr[i];
		size_t tl = len[i];
		ptr[i] = ptr[j];
		len[i] = len[j];
		ptr[j] = t;
		len[j] = tl;
	}
	for (int i = 0; i < N; i++) {
		free(ptr[i]);
		if (i % 2 == 0) {
			ptr[i] = malloc(len[i]);
			KT_CHECK(ptr[i], "malloc after free failed");
			memset(ptr[i], 0x5a, len[i]);
		} else {
			ptr[i] = NULL;
		}
	}
	for (int i = 0; i < N; i += 2) {
		for (size_t j = 0; j < len[i]; j++)
			KT_CHECK(ptr[i][j] == 0x5a, "reallocated block %d corrupted", i);
		free(ptr[i]);
	}
	return 0;
}

static int t_malloc_large(void)
{
	static const size_t sizes[] = { 128 * 1024 + 1, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024, 16 * 1024 * 1024 };
	unsigned char *p[5];
	for (int i = 0; i < 5; i++) {
		p[i] = malloc(sizes[i]);
		KT_CHECK(p[i], "malloc(%zu) returned NULL", sizes[i]);
		for (size_t j = 0; j < sizes[i]; j += 64)
			p[i][j] = (unsigned char)(i * 31 + j / 64);
		p[i][sizes[i] - 1] = 0xee;
	}
	for (int i = 0; i < 5; i++) {
		for (size_t j = 0; j < sizes[i] - 1; j += 64)
			KT_CHECK(p[i][j] == (unsigned char)(i * 31 + j / 64), "block of %zu corrupted at %zu", sizes[i], j);
		KT_CHECK(p[i][sizes[i] - 1] == 0xee, "last byte of %zu corrupted", sizes[i]);
	}
	for (int i = 0; i < 5; i++)
		free(p[i]);
	/* again, so freed mappings are reused or remapped */
	for (int r = 0; r < 20; r++) {
		unsigned char *q = malloc(1024 * 1024);
		KT_CHECK(q, "malloc(1 MiB) round %d failed", r);
		memset(q, r, 1024 * 1024);
		KT_CHECK(q[12345] == r, "round %d: contents", r);
		free(q);
	}
	return 0;
}

static int check_pattern(const unsigned char *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (unsigned char)(seed + i * 7))
			return (int)i + 1;
	return 0;
}

static int t_realloc(void)
{
	size_t n = 1;
	unsigned char *p = malloc(n);
	KT_CHECK(p, "malloc(1) failed");
	p[0] = (unsigned char)(3);
	/* small sizes, doubling, up to 64 KiB (below musl's 128 KiB mmap threshold) */
	while (n < 64 * 1024) {
		for (size_t i = 0; i < n; i++)
			p[i] = (unsigned char)(3 + i * 7);
		size_t m = n * 2;
		unsigned char *q = realloc(p, m);
		KT_CHECK(q, "realloc(%zu -> %zu) failed", n, m);
		int bad = check_pattern(q, n, 3);
		KT_CHECK(!bad, "realloc(%zu -> %zu) lost byte %d", n, m, bad - 1);
		p = q;
		n = m;
	}
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(5 + i * 7);
	/* small -> large (mmap) */
	unsigned char *q = realloc(p, 600 * 1024);
	KT_CHECK(q, "realloc(64 KiB -> 600 KiB) failed");
	int bad = check_pattern(q, n, 5);
	KT_CHECK(!bad, "realloc(64 KiB -> 600 KiB) lost byte %d", bad - 1);
	/* large -> small */
	p = realloc(q, 1000);
	KT_CHECK(p, "realloc(600 KiB -> 1000) failed");
	bad = check_pattern(p, 1000, 5);
	KT_CHECK(!bad, "realloc(600 KiB -> 1000) lost byte %d", bad - 1);
	/* shrink in place and regrow a little */
	p = realloc(p, 10);
	KT_CHECK(p && !check_pattern(p, 10, 5), "realloc(1000 -> 10) lost data");
	p = realloc(p, 100);
	KT_CHECK(p && !check_pattern(p, 10, 5), "realloc(10 -> 100) lost data");
	free(p);
	return 0;
}

static int t_calloc(void)
{
	for (int r = 0; r < 50; r++) {
		size_t n = 16 + (size_t)r * 97;
		unsigned char *d = malloc(n);
		KT_CHECK(d, "malloc failed");
		memset(d, 0xff, n);
		free(d);
		unsigned char *z = calloc(1, n);
		KT_CHECK(z, "calloc(%zu) failed", n);
		for (size_t i = 0; i < n; i++)
			KT_CHECK(z[i] == 0, "calloc(%zu) byte %zu is %#x after a dirty free", n, i, z[i]);
		free(z);
	}
	size_t big = 2 * 1024 * 1024;
	unsigned char *z = calloc(big, 1);
	KT_CHECK(z, "calloc(2 MiB) failed");
	for (size_t i = 0; i < big; i += 128)
		KT_CHECK(z[i] == 0, "calloc(2 MiB) byte %zu nonzero", i);
	free(z);
	return 0;
}

/* Runs in a fresh test process (no malloc yet), so moving the break cannot confuse musl. */
static int t_brk(void)
{
	long start = k_brk(0);
	KT_CHECK(start > 0, "brk(0) returned %s", kt_errname(start));
	KT_CHECK(k_brk(0) == start, "brk(0) is not stable");
	long want = start + (long)KT_MiB + 123;
	long r = k_brk((void *)want);
	KT_CHECK(r == want, "brk(start + 1 MiB + 123) returned %#lx, want %#lx", r, want);
	for (long a = start; a < want; a += 4096)
		*(volatile long *)((a + 7) & ~7L) = a;
	*(volatile char *)(want - 1) = 1;
	long want2 = want + 4 * (long)KT_MiB;
	r = k_brk((void *)want2);
	KT_CHECK(r == want2, "brk(+4 MiB more) returned %#lx", r);
	for (long a = want; a < want2; a += 4096)
		*(volatile char *)a = 2;
	for (long a = start; a < want - 8; a += 4096)
		KT_CHECK(*(volatile long *)((a + 7) & ~7L) == a, "heap contents lost at %#lx after growing", a);
	r = k_brk((void *)start);
	KT_CHECK(r == start, "brk shrink back to the start returned %#lx", r);
	r = k_brk((void *)(start - 4 * 4096));
	KT_CHECK(r == start, "brk below the start returned %#lx, expected the unchanged break %#lx", r, start);
	/* grow again: the old contents must be gone (fresh zero pages) */
	r = k_brk((void *)want);
	KT_CHECK(r == want, "brk regrow returned %#lx", r);
	for (long a = (start + 4095) & ~4095L; a < want - 8; a += 4096)
		KT_CHECK(*(volatile long *)a == 0, "regrown heap page at %#lx is not zero", a);
	k_brk((void *)start);
	return 0;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

static int t_strings(void)
{
	int v[1000];
	for (int i = 0; i < 1000; i++)
		v[i] = (int)(rnd() % 100000) - 50000;
	qsort(v, 1000, sizeof v[0], cmp_int);
	for (int i = 1; i < 1000; i++)
		KT_CHECK(v[i - 1] <= v[i], "qsort: not sorted at %d", i);
	char *end;
	KT_CHECK(strtol("  -12345xyz", &end, 10) == -12345 && strcmp(end, "xyz") == 0, "strtol");
	KT_CHECK(strtoul("ff", NULL, 16) == 255, "strtoul hex");
	char m[32] = "0123456789abcdef";
	memmove(m + 2, m, 10);
	KT_CHECK(strcmp(m, "010123456789cdef") == 0, "memmove overlap: %s", m);
	KT_CHECK(strstr("hello memkernel world", "kernel") != NULL, "strstr");
	KT_CHECK(strlen("memkernel") == 9, "strlen");
	return 0;
}

static int t_libc_syscalls(void)
{
	KT_CHECK(getpid() == k_getpid(), "libc getpid %d != raw %ld", getpid(), k_getpid());
	KT_CHECK(getppid() == k_getppid(), "libc getppid");
	struct timespec a, b;
	KT_CHECK(clock_gettime(CLOCK_MONOTONIC, &a) == 0, "libc clock_gettime failed");
	struct timespec req = { 0, 20000000 };
	KT_CHECK(nanosleep(&req, NULL) == 0, "libc nanosleep failed");
	KT_CHECK(clock_gettime(CLOCK_MONOTONIC, &b) == 0, "libc clock_gettime failed");
	long long dt = (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
	KT_CHECK(dt >= 20000000, "nanosleep(20 ms) took only %lld ns by CLOCK_MONOTONIC", dt);
	KT_CHECK(dt < 5000000000LL, "nanosleep(20 ms) took %lld ns", dt);
	KT_CHECK(sched_yield() == 0, "sched_yield failed");
	return 0;
}

static int t_exit_flushes(void)
{
	fflush(stdout);
	long pid = k_fork();
	if (pid == 0) {
		/* make stdout fully buffered, so only exit() can write this line */
		static char buf[512];
		setvbuf(stdout, buf, _IOFBF, sizeof buf);
		printf("# libc: this line was flushed by exit() in the child\n");
		exit(7);
	}
	KT_CHECK(pid > 0, "fork returned %s", kt_errname(pid));
	return kt_expect_exit(pid, 7, "child calling exit(7)");
}

static const struct ktest tests[] = {
	{ "libc::snprintf_formats", t_snprintf, 0 },
	{ "libc::printf_puts_fflush_stdout", t_printf_stdout, 0 },
	{ "libc::malloc_free_5000_small_blocks", t_malloc_small, 0 },
	{ "libc::malloc_large_blocks_up_to_16mib", t_malloc_large, 0 },
	{ "libc::realloc_grow_shrink_keeps_contents", t_realloc, 0 },
	{ "libc::calloc_zeroed", t_calloc, 0 },
	{ "libc::raw_brk_grow_touch_shrink", t_brk, 0 },
	{ "libc::qsort_strtol_memmove_strstr", t_strings, 0 },
	{ "libc::getpid_clock_gettime_nanosleep_sched_yield", t_libc_syscalls, 0 },
	{ "libc::exit_flushes_stdio", t_exit_flushes, 0 },
};

int main(int argc, char **argv, char **envp)
{
	return ktest_main("t_libc", tests, sizeof tests / sizeof tests[0], argc, argv, envp);
}
