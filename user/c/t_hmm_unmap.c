/*
 * t_hmm_unmap - the device never keeps a translation to a page the CPU side removed or
 * replaced (Linux: every such path calls the MMU notifiers, and dmirror's
 * dmirror_interval_invalidate drops the device's entries).
 *
 * The device's translations are made with WRITE (a writable translation) or READ (a
 * read-only one); then the CPU side removes or replaces the page. The frame allocator is
 * LIFO, so the freed frame usually goes straight to the next page anyone touches: each
 * test maps a few pages B filled with 'Q' right after the change, and then the device
 * writes 'Z' at the old address. A stale translation would put the 'Z's into B (or, if the
 * frame is still free, make the kernel's device-access check panic). Where the kernel lets
 * us see it (/proc/self/ptes), a "# " line says which B page got the old frame.
 *
 *   mmap_fixed    mmap(MAP_FIXED) over a device-written and over a device-read page: the
 *                 new page reads 'Z' after the device WRITE, the device READ sees the new
 *                 (zero) page, B stays 'Q'
 *   munmap        then a device WRITE or READ of the old address is -EFAULT, B stays 'Q';
 *                 a new mapping at the same address gets the device's next WRITE
 *   brk_shrink    the same through brk (musl's brk()/sbrk() refuse to move the break, so the
 *                 raw syscall, which is what malloc implementations use); the page that
 *                 comes back when the break grows again is zero and gets the WRITE
 *   dontneed      madvise(MADV_DONTNEED): the device WRITE lands in the fresh zero page the CPU
 *                 sees, a device READ of a zapped page reads zeros, B stays 'Q'
 *   cow           the device holds a translation, fork, then: the parent writes (COW copy),
 *                 nobody writes (the device WRITE must break COW itself), the child writes,
 *                 the child is gone (reuse), a read translation and a parent write; each time
 *                 the parent's CPU view shows the device's data and the child's does not
 *   mprotect      PROT_READ: a device WRITE is -EPERM (Linux hmm-tests anon_write_prot) and
 *                 changes nothing, a READ still works; RW again: the WRITE works
 *   mprotect_none PROT_NONE: a device READ or WRITE fails and leaves the data alone (no stale
 *                 translation); the error is -EFAULT, as Linux's (hmm_vma_walk_test, hmm-tests
 *                 anon_read_prot)
 *   exit          a child device-writes its pages and exits (or is killed) without munmap or
 *                 close; the parent's 'Q' pages at the same addresses, written and read by a
 *                 new device file of its own, are exactly what the parent put there
 *   execve        a process whose device wrote its pages execs this program again, keeping the
 *                 device file open: through it, the device can neither write the new image's
 *                 'Q' pages nor read the old data (the file's address space is gone: an error);
 *                 a file opened after exec works on the new image
 *
 * Each test runs in its own process (ktest.h); on memkernel free memory must be back to its
 * baseline after each. Without /dev/hmm_dmirror0 (any kernel but memkernel) the program skips.
 * No test hooks needed.
 */
#include "hmm.h"
#include <stdlib.h>
#include <unistd.h>

#define PG HMM_PAGE
#define NB 8UL /* pages of B, the 'Q' pages mapped right after each change */

/* ------------------------------------------------------------------------------------ */
/* Helpers                                                                               */
/* ------------------------------------------------------------------------------------ */

/* first_diff: index of the first byte of [p, p+len) that is not `want`, or -1. */
static long first_diff(const void *p, size_t len, uint8_t want)
{
	const volatile uint8_t *b = p;
	for (size_t i = 0; i < len; i++)
		if (b[i] != want)
			return (long)i;
	return -1;
}

static const char *byte_str(uint8_t v)
{
	static char buf[4][16];
	static int slot;
	char *s = buf[slot++ & 3];
	if (v >= 0x20 && v < 0x7f)
		snprintf(s, sizeof buf[0], "0x%02x '%c'", v, v);
	else
		snprintf(s, sizeof buf[0], "0x%02x", v);
	return s;
}

/* expect_bytes: every byte of [p, p+len) is `want`; 0 or a printed failure. */
static int expect_bytes(const void *p, size_t len, uint8_t want, const char *what)
{
	long i = first_diff(p, len, want);
	if (i >= 0)
		return kt_fail("%s: byte %ld (page %ld) is %s, expected %s", what, i, i / (long)PG,
			       byte_str(((const volatile uint8_t *)p)[i]), byte_str(want));
	return 0;
}

/* map_rw: libc mmap of npages private anonymous read-write pages, or NULL. */
static uint8_t *map_rw(size_t npages)
{
	void *p = mmap(NULL, npages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* map_q: NB pages all 'Q' (touched now, so they take the most recently freed frames). */
static uint8_t *map_q(void)
{
	uint8_t *b = map_rw(NB);
	if (b)
		memset(b, 'Q', NB * PG);
	return b;
}

static int overlaps(const void *a, size_t alen, const void *b, size_t blen)
{
	uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
	return x < y + blen && y < x + alen;
}

/* The device's source and destination buffers, populated before any test step. */
struct bufs {
	uint8_t *w; /* 2 pages of 'W': what the device writes first */
	uint8_t *z; /* 2 pages of 'Z': what the device writes after the change */
	uint8_t *r; /* 2 pages: where device READs land */
};

static int bufs_init(struct bufs *b)
{
	b->w = map_rw(2);
	b->z = map_rw(2);
	b->r = map_rw(2);
	KT_CHECK(b->w && b->z && b->r, "mmap of the device's buffers failed");
	memset(b->w, 'W', 2 * PG);
	memset(b->z, 'Z', 2 * PG);
	memset(b->r, 0xEE, 2 * PG);
	return 0;
}

/* --- /proc/self/ptes (memkernel): which frame backs a page, for the "# " notes only ---- */

static char ptes[64 * 1024];

/* ptes_prepare: touch the buffer now, so reading the dump later takes no frame. */
static void ptes_prepare(void)
{
	memset(ptes, 0, sizeof ptes);
}

static int ptes_read(void)
{
	if (!kt_memkernel)
		return 0;
	long fd = k_open("/proc/self/ptes", O_RDONLY);
	if (fd < 0)
		return 0;
	size_t n = 0;
	long r;
	while (n < sizeof ptes - 1 && (r = k_read((int)fd, ptes + n, sizeof ptes - 1 - n)) > 0)
		n += (size_t)r;
	k_close((int)fd);
	ptes[n] = 0;
	return n > 0;
}

/* ptes_frame: the frame the last ptes_read() showed for page va, or 0. */
static uint64_t ptes_frame(const void *va)
{
	char key[40];
	snprintf(key, sizeof key, "\n  %#014lx  ", (unsigned long)(uintptr_t)va);
	char *l = strstr(ptes, key);
	if (!l)
		return 0;
	char *f = strstr(l + strlen(key), "0x");
	char *eol = strchr(l + 1, '\n');
	if (!f || (eol && f > eol))
		return 0;
	return strtoull(f, NULL, 16);
}

static uint64_t frame_of(const void *va)
{
	return ptes_read() ? ptes_frame(va) : 0;
}

/* reuse_note: print whether a page of B now has `old` (the frame the CPU side dropped). */
static void reuse_note(const char *what, uint64_t old, const uint8_t *b, size_t npages)
{
	if (!old || !ptes_read())
		return;
	for (size_t i = 0; i < npages; i++)
		if (ptes_frame(b + i * PG) == old) {
			kout("# %s: the dropped frame %#lx now backs B page %zu (a stale device "
			     "translation would write into B)\n",
			     what, (unsigned long)old, i);
			return;
		}
	kout("# %s: the dropped frame %#lx does not back any B page (the check is weaker this time)\n", what,
	     (unsigned long)old);
}

/* ------------------------------------------------------------------------------------ */
/* mmap(MAP_FIXED)                                                                       */
/* ------------------------------------------------------------------------------------ */

static int t_mmap_fixed(void)
{
	long fd = hmm_open(0);
	KT_CHECK(fd >= 0, "open /dev/hmm_dmirror0: %s", hmm_errname(fd));
	struct bufs bf;
	KT_TRY(bufs_init(&bf));
	ptes_prepare();
	unsigned long before = kt_freeram();

	/* A: a writable device translation, then mmap(MAP_FIXED) replaces the page. */
	uint8_t *a = map_rw(1);
	KT_CHECK(a, "mmap failed");
	memset(a, 'A', PG);
	KT_TRY(hmm_expect(hmm_dev_write(fd, a, 1, bf.w), 0, "device WRITE of page A"));
	KT_TRY(expect_bytes(a, PG, 'W', "page A after the device WRITE"));
	uint64_t old = frame_of(a);
	void *m = mmap(a, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	KT_CHECK(m == a, "mmap(MAP_FIXED) over page A returned %p (errno %d), expected %p", m, errno, (void *)a);
	uint8_t *b = map_q();
	KT_CHECK(b, "mmap of B failed");
	KT_CHECK(!overlaps(a, PG, b, NB * PG), "B %p overlaps A %p", (void *)b, (void *)a);
	reuse_note("mmap(MAP_FIXED) over a device-written page", old, b, NB);
	KT_TRY(hmm_expect(hmm_dev_write(fd, a, 1, bf.z), 0, "device WRITE of the new page at A"));
	KT_TRY(expect_bytes(b, NB * PG, 'Q',
			    "B after the device WRITE to A (the device wrote through its translation of the "
			    "page mmap(MAP_FIXED) replaced)"));
	KT_TRY(expect_bytes(a, PG, 'Z', "the new page at A after the device WRITE (the CPU must see it)"));

	/* C: a read-only device translation, then mmap(MAP_FIXED) replaces the page. */
	uint8_t *c = map_rw(1);
	KT_CHECK(c, "mmap failed");
	memset(c, 'R', PG);
	KT_TRY(hmm_expect(hmm_dev_read(fd, c, 1, bf.r), 0, "device READ of page C"));
	KT_TRY(expect_bytes(bf.r, PG, 'R', "the device's READ of page C"));
	old = frame_of(c);
	m = mmap(c, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	KT_CHECK(m == c, "mmap(MAP_FIXED) over page C returned %p (errno %d)", m, errno);
	uint8_t *b2 = map_q();
	KT_CHECK(b2, "mmap of B failed");
	reuse_note("mmap(MAP_FIXED) over a device-read page", old, b2, NB);
	memset(bf.r, 0xEE, PG);
	KT_TRY(hmm_expect(hmm_dev_read(fd, c, 1, bf.r), 0, "device READ of the new page at C"));
	KT_TRY(expect_bytes(bf.r, PG, 0,
			    "the device's READ of the new (never written) page at C (0x52 'R' = the replaced "
			    "page, 0x51 'Q' = B, through a stale translation)"));
	KT_TRY(hmm_expect(hmm_dev_write(fd, c, 1, bf.z), 0, "device WRITE of the new page at C"));
	KT_TRY(expect_bytes(b2, NB * PG, 'Q', "B after the device READ and WRITE of C"));
	KT_TRY(expect_bytes(c, PG, 'Z', "the new page at C after the device WRITE"));
	KT_TRY(expect_bytes(b, NB * PG, 'Q', "the first B at the end"));

	KT_CHECK(munmap(a, PG) == 0 && munmap(c, PG) == 0 && munmap(b, NB * PG) == 0 && munmap(b2, NB * PG) == 0,
		 "munmap failed (errno %d)", errno);
	KT_TRY(hmm_expect_freed(before, kt_freeram(), 0, 2, "after everything the test mapped was unmapped"));
	k_close((int)fd);
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* munmap                                                                                */
/* ------------------------------------------------------------------------------------ */

static int t_munmap(void)
{
	long fd = hmm_open(0);
	KT_CHECK(fd >= 0, "open /dev/hmm_dmirror0: %s", hmm_errname(fd));
	struct bufs bf;
	KT_TRY(bufs_init(&bf));
	ptes_prepare();
	unsigned long base = kt_freeram();

	/* Three pages; the middle one (A) is unmapped, so no new mapping can land on it. */
	uint8_t *g = map_rw(3);
	KT_CHECK(g, "mmap failed");
	uint8_t *a = g + PG;
	memset(g, 'A', 3 * PG);
	KT_TRY(hmm_expect(hmm_dev_write(fd, a, 1, bf.w), 0, "device WRITE of page A"));
	KT_TRY(expect_bytes(a, PG, 'W', "page A after the device WRITE"));
	uint64_t old = frame_of(a);
	unsigned long before = kt_freeram();
	KT_CHECK(munmap(a, PG) == 0, "munmap of page A: errno %d", errno);
	KT_TRY(hmm_expect_freed(before, kt_freeram(), 1, 0, "munmap of the device-written page A"));
	uint8_t *b = map_q();
	KT_CHECK(b, "mmap of B failed");
	KT_CHECK(!overlaps(a, PG, b, NB * PG), "B %p overlaps the hole at A %p", (void *)b, (void *)a);
	reuse_note("munmap of a device-written page", old, b, NB);
	KT_TRY(hmm_expect(hmm_dev_write(fd, a, 1, bf.z), -EFAULT, "device WRITE of the unmapped page A"));
	memset(bf.r, 0xEE, PG);
	KT_TRY(hmm_expect(hmm_dev_read(fd, a, 1, bf.r), -EFAULT, "device READ of the unmapped page A"));
	KT_TRY(expect_bytes(b, NB * PG, 'Q',
			    "B after the device WRITE to the unmapped A (the device wrote through its "
			    "translation of the unmapped page)"));
	KT_TRY(expect_bytes(g, PG, 'A', "the page below A"));
	KT_TRY(expect_bytes(g + 2 * PG, PG, 'A', "the page above A"));

	/* A new mapping at the same address: the device must fault it in afresh. */
	void *m = mmap(a, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	KT_CHECK(m == a, "mmap(MAP_FIXED) into the hole at A returned %p (errno %d)", m, errno);
	KT_TRY(hmm_expect(hmm_dev_read(fd, a, 1, bf.r), 0, "device READ of the new page at A"));
	KT_TRY(expect_bytes(bf.r, PG, 0, "the device's READ of the new page at A"));
	KT_TRY(hmm_expect(hmm_dev_write(fd, a, 1, bf.z), 0, "device WRITE of the new page at A"));
	KT_TRY(expect_bytes(a, PG, 'Z', "the new page at A after the device WRITE"));
	KT_TRY(expect_bytes(b, NB * PG, 'Q', "B at the end"));

	/* The device read-translates two pages, then both go with a 4-page munmap (between
	 * two pages that stay, so that B cannot land in the hole). */
	uint8_t *h = map_rw(6);
	KT_CHECK(h, "mmap failed");
	memset(h, 'H', 6 * PG);
	KT_TRY(hmm_expect(hmm_dev_read(fd, h + 2 * PG, 2, bf.r), 0, "device READ of 2 pages"));
	KT_TRY(expect_bytes(bf.r, 2 * PG, 'H', "the device's READ of 2 pages"));
	KT_CHECK(munmap(h + PG, 4 * PG) == 0, "munmap of 4 pages: errno %d", errno);
	uint8_t *b2 = map_q();
	KT_CHECK(b2, "mmap of B failed");
	KT_CHECK(!overlaps(h + PG, 4 * PG, b2, NB * PG), "B %p overlaps the hole at %p", (void *)b2, (void *)(h + PG));
	KT_TRY(hmm_expect(hmm_dev_read(fd, h + 2 * PG, 2, bf.r), -EFAULT, "device READ of 2 unmapped pages"));
	KT_TRY(hmm_expect(hmm_dev_write(fd, h + 2 * PG, 2, bf.z), -EFAULT, "device WRITE of 2 unmapped pages"));
	KT_TRY(expect_bytes(b2, NB * PG, 'Q', "the second B after device access to the unmapped range"));

	KT_CHECK(munmap(g, 3 * PG) == 0 && munmap(b, NB * PG) == 0 && munmap(b2, NB * PG) == 0 &&
			 munmap(h, 6 * PG) == 0,
		 "munmap failed");
	KT_TRY(hmm_expect_freed(base, kt_freeram(), 0, 2, "after everything the test mapped was unmapped"));
	k_close((int)fd);
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* brk                                                                                   */
/* ------------------------------------------------------------------------------------ */

static int t_brk_shrink(void)
{
	long fd = hmm_open(0);
	KT_CHECK(fd >= 0, "open /dev/hmm_dmirror0: %s", hmm_errname(fd));
	struct bufs bf;
	KT_TRY(bufs_init(&bf));
	ptes_prepare();
	/* musl: brk() always fails with ENOMEM and sbrk(n != 0) too, so the raw syscall. */
	long cur = k_brk(0);
	KT_CHECK(cur > 0, "brk(0) returned %s", kt_errname(cur));
	unsigned long start = ((unsigned long)cur + PG - 1) & ~(PG - 1);
	uint8_t *base = (uint8_t *)start, *a = base + PG;
	long r = k_brk(base + 2 * PG);
	KT_CHECK(r == (long)(start + 2 * PG), "brk(+2 pages) returned %#lx, want %#lx", r, start + 2 * PG);
	memset(base, 'A', 2 * PG);
	KT_TRY(hmm_expect(hmm_dev_write(fd, base, 2, bf.w), 0, "device WRITE of the 2 heap pages"));
	KT_TRY(expect_bytes(base, 2 * PG, 'W', "the heap pages after the device WRITE"));
	uint64_t old = frame_of(a);

	/* Shrink by one page: A goes. */
	unsigned long before = kt_freeram();
	r = k_brk(a);
	KT_CHECK(r == (long)(uintptr_t)a, "brk(-1 page) returned %#lx, want %p", r, (void *)a);
	KT_TRY(hmm_expect_freed(before, kt_freeram(), 1, 0, "brk shrink by the device-written page A"));
	uint8_t *b = map_q();
	KT_CHECK(b, "mmap of B failed");
	KT_CHECK(!overlaps(a, PG, b, NB * PG), "B %p overlaps the released heap page %p", (void *)b, (void *)a);
	reuse_note("brk shrink over a device-written page", old, b, NB);
	KT_TRY(hmm_expect(hmm_dev_write(fd, a, 1, bf.z), -EFAULT, "device WRITE of the heap page brk released"));
	KT_TRY(hmm_expect(hmm_dev_read(fd, a, 1, bf.r), -EFAULT, "device READ of the heap page brk released"));
	KT_TRY(expect_bytes(b, NB * PG, 'Q', "B after the device WRITE to the released heap page"));
	KT_TRY(hmm_expect(hmm_dev_write(fd, base, 1, bf.z), 0, "device WRITE of the heap page that stayed"));
	KT_TRY(expect_bytes(base, PG, 'Z', "the heap page that stayed, after the device WRITE"));

	/* Grow again: A comes back as a new zero page, and the device writes that one. */
	r = k_brk(base + 2 * PG);
	KT_CHECK(r == (long)(start + 2 * PG), "brk(+1 page) returned %#lx", r);
	memset(bf.r, 0xEE, PG);
	KT_TRY(hmm_expect(hmm_dev_read(fd, a, 1, bf.r), 0, "device READ of the regrown heap page"));
	KT_TRY(expect_bytes(bf.r, PG, 0, "the device's READ of the regrown heap page (must be zero)"));
	KT_TRY(expect_bytes(a, PG, 0, "the CPU's view of the regrown heap page"));
	KT_TRY(hmm_expect(hmm_dev_write(fd, a, 1, bf.z), 0, "device WRITE of the regrown heap page"));
	KT_TRY(expect_bytes(a, PG, 'Z', "the regrown heap page after the device WRITE"));
	KT_TRY(expect_bytes(b, NB * PG, 'Q', "B at the end"));

	r = k_brk((void *)cur);
	KT_CHECK(r == cur, "brk back to the start returned %#lx, want %#lx", r, cur);
	KT_CHECK(munmap(b, NB * PG) == 0, "munmap of B failed");
	k_close((int)fd);
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* madvise(MADV_DONTNEED)                                                                */
/* ------------------------------------------------------------------------------------ */

static int t_dontneed(void)
{
	long fd = hmm_open(0);
	KT_CHECK(fd >= 0, "open /dev/hmm_dmirror0: %s", hmm_errname(fd));
	struct bufs bf;
	KT_TRY(bufs_init(&bf));
	ptes_prepare();
	uint8_t *g = map_rw(3);
	KT_CHECK(g, "mmap failed");
	uint8_t *a = g + PG;
	memset(g, 'A', 3 * PG);
	static uint8_t w3[3 * 4096];
	memset(w3, 'W', sizeof w3);
	KT_TRY(hmm_expect(hmm_dev_write(fd, g, 3, w3), 0, "device WRITE of 3 pages"));
	KT_TRY(expect_bytes(g, 3 * PG, 'W', "the 3 pages after the device WRITE"));
	uint64_t old = frame_of(a);

	unsigned long before = kt_freeram();
	KT_CHECK(madvise(a, PG, MADV_DONTNEED) == 0, "madvise(MADV_DONTNEED) of the middle page: errno %d", errno);
	KT_TRY(hmm_expect_freed(before, kt_freeram(), 1, 0, "madvise(MADV_DONTNEED) of a device-written page"));
	uint8_t *b = map_q();
	KT_CHECK(b, "mmap of B failed");
	reuse_note("madvise(MADV_DONTNEED) of a device-written page", old, b, NB);
	KT_TRY(hmm_expect(hmm_dev_write(fd, a, 1, bf.z), 0, "device WRITE of the zapped page"));
	KT_TRY(expect_bytes(b, NB * PG, 'Q', "B after the device WRITE to the zapped page"));
	KT_TRY(expect_bytes(a, PG, 'Z',
			    "the zapped page after the device WRITE (the write must land in the page the CPU "
			    "sees)"));
	KT_TRY(expect_bytes(g, PG, 'W', "the page below (not zapped)"));
	KT_TRY(expect_bytes(g + 2 * PG, PG, 'W', "the page above (not zapped)"));

	/* The device holds a writable translation of the page below: zap it, then READ. */
	old = frame_of(g);
	KT_CHECK(madvise(g, PG, MADV_DONTNEED) == 0, "madvise(MADV_DONTNEED) of the first page: errno %d", errno);
	uint8_t *b2 = map_q();
	KT_CHECK(b2, "mmap of B failed");
	reuse_note("madvise(MADV_DONTNEED), then a device READ", old, b2, NB);
	memset(bf.r, 0xEE, PG);
	KT_TRY(hmm_expect(hmm_dev_read(fd, g, 1, bf.r), 0, "device READ of the zapped first page"));
	KT_TRY(expect_bytes(bf.r, PG, 0, "the device's READ of the zapped page (must be zeros)"));
	KT_TRY(expect_bytes(g, PG, 0, "the CPU's view of the zapped first page"));
	KT_TRY(expect_bytes(b2, NB * PG, 'Q', "the second B after the device READ"));

	/* All three at once, the device having translations for all of them. */
	KT_TRY(hmm_expect(hmm_dev_write(fd, g, 3, w3), 0, "device WRITE of the 3 pages again"));
	KT_CHECK(madvise(g, 3 * PG, MADV_DONTNEED) == 0, "madvise(MADV_DONTNEED) of 3 pages: errno %d", errno);
	uint8_t *b3 = map_q();
	KT_CHECK(b3, "mmap of B failed");
	static uint8_t z3[3 * 4096];
	memset(z3, 'Z', sizeof z3);
	KT_TRY(hmm_expect(hmm_dev_write(fd, g, 3, z3), 0, "device WRITE of the 3 zapped pages"));
	KT_TRY(expect_bytes(b3, NB * PG, 'Q', "the third B after the device WRITE of 3 zapped pages"));
	KT_TRY(expect_bytes(g, 3 * PG, 'Z', "the 3 zapped pages after the device WRITE"));
	KT_TRY(expect_bytes(b, NB * PG, 'Q', "the first B at the end"));
	k_close((int)fd);
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Copy-on-write                                                                          */
/* ------------------------------------------------------------------------------------ */

enum cow_mode {
	COW_PARENT_WRITES, /* child alive; the parent's CPU write copies */
	COW_DEVICE_WRITES, /* child alive; nobody writes: the device WRITE must copy */
	COW_CHILD_WRITES,  /* child alive and writes its own copy first */
	COW_REUSE,         /* child gone before the parent writes: the page is reused */
	COW_READ_TRANS,    /* the device holds a READ translation; the parent writes */
};

static const char *cow_mode_name(enum cow_mode m)
{
	switch (m) {
	case COW_PARENT_WRITES: return "the parent writes after fork (COW copy)";
	case COW_DEVICE_WRITES: return "nobody writes after fork (the device WRITE breaks COW)";
	case COW_CHILD_WRITES: return "the child writes after fork";
	case COW_REUSE: return "the child exits, then the parent writes (reuse)";
	case COW_READ_TRANS: return "a device READ translation, then the parent writes";
	}
	return "?";
}

struct cow_sync {
	volatile int ready; /* child: checked its view, is waiting */
	volatile int go;    /* parent: done, child may check again */
	volatile long bad;  /* child: offending byte index */
	volatile int val;   /* child: offending byte value */
};

static const char *cow_child_why(int c)
{
	switch (c) {
	case 2: return "the child does not see the device-written data right after fork";
	case 3: return "the child's page changed after the parent's device WRITE (see the # line above)";
	case 4: return "the child's own write is not visible to it";
	case 9: return "the child waited 10 s for the parent";
	default: return NULL;
	}
}

static int cow_round(long fd, struct bufs *bf, struct cow_sync *sy, enum cow_mode mode)
{
	const char *what = cow_mode_name(mode);
	uint8_t *a = map_rw(1);
	KT_CHECK(a, "%s: mmap failed", what);
	memset(a, 'A', PG);
	KT_TRY(hmm_expect(hmm_dev_write(fd, a, 1, bf->w), 0, "device WRITE of page A before fork"));
	KT_TRY(expect_bytes(a, PG, 'W', "page A after the device WRITE"));
	if (mode == COW_READ_TRANS) {
		memset(bf->r, 0xEE, PG);
		KT_TRY(hmm_expect(hmm_dev_read(fd, a, 1, bf->r), 0, "device READ of page A before fork"));
	}
	memset((void *)sy, 0, sizeof *sy);
	long pid = k_fork();
	if (pid == 0) {
		long i = first_diff(a, PG, 'W');
		if (i >= 0)
			k_exit(2);
		uint8_t want = 'W';
		if (mode == COW_CHILD_WRITES) {
			memset(a, 'K', PG);
			want = 'K';
			if (first_diff(a, PG, 'K') >= 0)
				k_exit(4);
		}
		if (mode == COW_REUSE)
			k_exit(0);
		sy->ready = 1;
		uint64_t t0 = kt_now_ns();
		while (!sy->go) {
			if (kt_now_ns() - t0 > 10000000000ULL)
				k_exit(9);
			kt_sleep_ns(200000);
		}
		i = first_diff(a, PG, want);
		if (i >= 0) {
			sy->bad = i;
			sy->val = ((volatile uint8_t *)a)[i];
			kout("# child (%s): byte %ld of its page A is %s, expected %s\n", what, i,
			     byte_str(((volatile uint8_t *)a)[i]), byte_str(want));
			k_exit(3);
		}
		k_exit(0);
	}
	KT_CHECK(pid > 0, "%s: fork returned %s", what, kt_errname(pid));
	if (mode == COW_REUSE) {
		KT_TRY(hmm_expect_child(pid, 10000, what, cow_child_why));
	} else {
		uint64_t t0 = kt_now_ns();
		while (!sy->ready && kt_now_ns() - t0 < 10000000000ULL)
			kt_sleep_ns(200000);
		if (!sy->ready) {
			sy->go = 1;
			KT_TRY(hmm_expect_child(pid, 10000, what, cow_child_why));
			return kt_fail("%s: the child never got ready", what);
		}
	}
	if (mode == COW_READ_TRANS) {
		/* After fork: the device reads the (shared, write-protected) page again. */
		KT_TRY(hmm_expect(hmm_dev_read(fd, a, 1, bf->r), 0, "device READ of page A after fork"));
		KT_TRY(expect_bytes(bf->r, PG, 'W', "the device's READ of page A after fork"));
	}
	if (mode == COW_PARENT_WRITES || mode == COW_REUSE || mode == COW_READ_TRANS) {
		memset(a, 'C', PG);
	}
	int rc = 0;
	if (mode == COW_READ_TRANS) {
		memset(bf->r, 0xEE, PG);
		long r = hmm_dev_read(fd, a, 1, bf->r);
		if (r != 0)
			rc = hmm_expect(r, 0, "device READ of page A after the parent's write");
		else
			rc = expect_bytes(bf->r, PG, 'C',
					  "the device's READ of page A after the parent's write (0x57 'W' = the "
					  "child's frame, through a stale translation)");
	}
	long wr = rc ? 0 : hmm_dev_write(fd, a, 1, bf->z);
	long pbad = first_diff(a, PG, 'Z');
	uint8_t pval = pbad >= 0 ? ((volatile uint8_t *)a)[pbad] : 0;
	sy->go = 1;
	if (mode != COW_REUSE)
		KT_TRY(hmm_expect_child(pid, 10000, what, cow_child_why));
	if (rc)
		return rc;
	KT_CHECK(wr == 0, "%s: device WRITE of page A after fork returned %s", what, hmm_errname(wr));
	KT_CHECK(pbad < 0,
		 "%s: the parent's page A after the device WRITE: byte %ld is %s, expected 0x5a 'Z' (the device "
		 "wrote to a frame that is no longer the parent's)",
		 what, pbad, byte_str(pval));
	KT_CHECK(munmap(a, PG) == 0, "munmap failed");
	return 0;
}

static int t_cow(void)
{
	long fd = hmm_open(0);
	KT_CHECK(fd >= 0, "open /dev/hmm_dmirror0: %s", hmm_errname(fd));
	struct bufs bf;
	KT_TRY(bufs_init(&bf));
	struct cow_sync *sy = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	KT_CHECK(sy != MAP_FAILED, "mmap(MAP_SHARED|MAP_ANONYMOUS) failed: errno %d", errno);
	static const enum cow_mode modes[] = { COW_PARENT_WRITES, COW_DEVICE_WRITES, COW_CHILD_WRITES, COW_REUSE,
					       COW_READ_TRANS };
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		KT_TRY(cow_round(fd, &bf, sy, modes[i]));
		kout("# cow: %s: ok\n", cow_mode_name(modes[i]));
	}
	k_close((int)fd);
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* mprotect                                                                              */
/* ------------------------------------------------------------------------------------ */

static int t_mprotect(void)
{
	long fd = hmm_open(0);
	KT_CHECK(fd >= 0, "open /dev/hmm_dmirror0: %s", hmm_errname(fd));
	struct bufs bf;
	KT_TRY(bufs_init(&bf));
	uint8_t *a = map_rw(1);
	KT_CHECK(a, "mmap failed");
	memset(a, 'A', PG);
	KT_TRY(hmm_expect(hmm_dev_write(fd, a, 1, bf.w), 0, "device WRITE of page A (a writable translation)"));
	KT_TRY(expect_bytes(a, PG, 'W', "page A after the device WRITE"));
	KT_CHECK(mprotect(a, PG, PROT_READ) == 0, "mprotect(PROT_READ): errno %d", errno);
	/* Linux: hmm_range_fault() of a write to a VMA without VM_WRITE is -EPERM
	 * (hmm-tests anon_write_prot). A stale writable translation would make it 0. */
	KT_TRY(hmm_expect(hmm_dev_write(fd, a, 1, bf.z), -EPERM,
			  "device WRITE after mprotect(PROT_READ) (Linux: -EPERM; 0 = the device wrote through "
			  "its old writable translation)"));
	KT_TRY(expect_bytes(a, PG, 'W', "page A after the refused device WRITE"));
	memset(bf.r, 0xEE, PG);
	KT_TRY(hmm_expect(hmm_dev_read(fd, a, 1, bf.r), 0, "device READ of the read-only page"));
	KT_TRY(expect_bytes(bf.r, PG, 'W', "the device's READ of the read-only page"));
	KT_TRY(hmm_expect_snapshot(fd, a, 1, HMM_PROT_READ, "SNAPSHOT of the read-only page"));
	/* Twice: a refused request must not have left a translation behind either. */
	KT_TRY(hmm_expect(hmm_dev_write(fd, a, 1, bf.z), -EPERM, "a second device WRITE to the read-only page"));
	KT_TRY(expect_bytes(a, PG, 'W', "page A after the second refused WRITE"));

	KT_CHECK(mprotect(a, PG, PROT_READ | PROT_WRITE) == 0, "mprotect(PROT_READ|PROT_WRITE): errno %d", errno);
	KT_TRY(hmm_expect(hmm_dev_write(fd, a, 1, bf.z), 0, "device WRITE after mprotect back to read-write"));
	KT_TRY(expect_bytes(a, PG, 'Z', "page A after the device WRITE"));

	/* Two pages, only the second made read-only (the VMA splits). */
	uint8_t *p = map_rw(2);
	KT_CHECK(p, "mmap failed");
	memset(p, 'A', 2 * PG);
	KT_TRY(hmm_expect(hmm_dev_write(fd, p, 2, bf.w), 0, "device WRITE of 2 pages"));
	KT_CHECK(mprotect(p + PG, PG, PROT_READ) == 0, "mprotect(PROT_READ) of the second page: errno %d", errno);
	struct hmm_dmirror_cmd c;
	long r = hmm_cmd(fd, HMM_DMIRROR_WRITE, p, (uint64_t)(uintptr_t)bf.z, 2, &c);
	KT_TRY(hmm_expect(r, -EPERM, "device WRITE of a read-write page and a read-only one"));
	KT_TRY(expect_bytes(p + PG, PG, 'W', "the read-only second page after the refused WRITE"));
	/* The first page: written (memkernel's device goes page by page) or not (Linux's
	 * dmirror faults the whole range first), but not half. */
	if (first_diff(p, PG, 'Z') >= 0)
		KT_TRY(expect_bytes(p, PG, 'W', "the first (read-write) page: all 'Z' or all 'W'"));
	k_close((int)fd);
	return 0;
}

/* PROT_NONE: the device must not read through its old translation either. */
static int t_mprotect_none(void)
{
	long fd = hmm_open(0);
	KT_CHECK(fd >= 0, "open /dev/hmm_dmirror0: %s", hmm_errname(fd));
	struct bufs bf;
	KT_TRY(bufs_init(&bf));
	uint8_t *a = map_rw(1);
	KT_CHECK(a, "mmap failed");
	memset(a, 'A', PG);
	KT_TRY(hmm_expect(hmm_dev_write(fd, a, 1, bf.w), 0, "device WRITE of page A"));
	KT_TRY(hmm_expect(hmm_dev_read(fd, a, 1, bf.r), 0, "device READ of page A"));
	KT_CHECK(mprotect(a, PG, PROT_NONE) == 0, "mprotect(PROT_NONE): errno %d", errno);
	memset(bf.r, 0xEE, PG);
	long r = hmm_dev_read(fd, a, 1, bf.r);
	KT_CHECK(r != 0, "device READ of a PROT_NONE page returned 0: the device read through its old translation");
	KT_TRY(expect_bytes(bf.r, PG, 0xEE, "the READ buffer after the refused device READ"));
	long w = hmm_dev_write(fd, a, 1, bf.z);
	KT_CHECK(w != 0, "device WRITE of a PROT_NONE page returned 0: the device wrote through its old translation");
	KT_CHECK(mprotect(a, PG, PROT_READ | PROT_WRITE) == 0, "mprotect(PROT_READ|PROT_WRITE): errno %d", errno);
	KT_TRY(expect_bytes(a, PG, 'W', "page A after the refused device accesses"));
	kout("# PROT_NONE: device READ returned %s, device WRITE %s\n", hmm_errname(r), hmm_errname(w));
	/* Linux: hmm_vma_walk_test() fails any fault in a VMA without VM_READ with -EFAULT
	 * (hmm-tests anon_read_prot expects it for READ; WRITE takes the same path). */
	KT_TRY(hmm_expect(r, -EFAULT, "device READ of a PROT_NONE page (Linux hmm-tests anon_read_prot: -EFAULT)"));
	KT_TRY(hmm_expect(w, -EFAULT, "device WRITE of a PROT_NONE page (Linux hmm_vma_walk_test: -EFAULT)"));
	k_close((int)fd);
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* exit                                                                                  */
/* ------------------------------------------------------------------------------------ */

static const char *exit_child_why(int c)
{
	switch (c) {
	case 60: return "open /dev/hmm_dmirror0 or mmap in the child failed";
	case 61: return "the child's device WRITE failed";
	case 62: return "the child does not see its device's WRITE";
	default: return NULL;
	}
}

/*
 * The child maps NB pages at the address the parent will use next (same layout after
 * fork), the device writes them, the child leaves without munmap or close. The parent
 * then maps its own pages (the same addresses, likely the same frames), fills them 'Q',
 * and lets a new device file of its own write half of them and read the rest.
 */
static uint8_t wbig[NB * 4096], zbig[NB * 4096], rbig[NB * 4096];

static int exit_round(struct bufs *bf, int killed)
{
	const char *what = killed ? "killed child" : "exiting child";
	uintptr_t child_addr = 0;
	uintptr_t *shared = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	KT_CHECK(shared != MAP_FAILED, "mmap(MAP_SHARED|MAP_ANONYMOUS) failed");
	*shared = 0;
	long pid = k_fork();
	if (pid == 0) {
		long cfd = hmm_open(0);
		uint8_t *p = map_rw(NB);
		if (cfd < 0 || !p)
			k_exit(60);
		*shared = (uintptr_t)p;
		memset(p, 'A', NB * PG);
		if (hmm_dev_write(cfd, p, NB, wbig) != 0)
			k_exit(61);
		if (first_diff(p, NB * PG, 'W') >= 0)
			k_exit(62);
		if (killed)
			k_kill(k_getpid(), SIGKILL);
		k_exit(0);
	}
	KT_CHECK(pid > 0, "%s: fork returned %s", what, kt_errname(pid));
	int st = 0;
	char sb[64];
	long r = kt_wait_timeout(pid, &st, 10000);
	KT_CHECK(r == pid, "%s: wait4 returned %s (0 = timed out)", what, kt_errname(r));
	if (WIFEXITED(st) && exit_child_why(WEXITSTATUS(st)))
		return kt_fail("%s: child: %s", what, exit_child_why(WEXITSTATUS(st)));
	if (killed)
		KT_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "%s: child %s, expected SIGKILL", what,
			 kt_status_str(st, sb, sizeof sb));
	else
		KT_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: child %s", what, kt_status_str(st, sb, sizeof sb));
	child_addr = *shared;

	uint8_t *q = map_q();
	uint8_t *q2 = map_q();
	KT_CHECK(q && q2, "mmap of the 'Q' pages failed");
	if (kt_memkernel && (uintptr_t)q != child_addr)
		kout("# %s: the parent's pages are at %p, the child's were at %#lx\n", what, (void *)q,
		     (unsigned long)child_addr);
	long fd = hmm_open(0); /* after the child's close: may get its context number back */
	KT_CHECK(fd >= 0, "open /dev/hmm_dmirror0: %s", hmm_errname(fd));
	long fd1 = hmm_open(1);
	KT_CHECK(fd1 >= 0, "open /dev/hmm_dmirror1: %s", hmm_errname(fd1));
	/* Elsewhere first (a page of its own), then half of q. */
	uint8_t *e = map_rw(1);
	KT_CHECK(e, "mmap failed");
	KT_TRY(hmm_expect(hmm_dev_write(fd, e, 1, bf->z), 0, "the parent's device WRITE to a page of its own"));
	KT_TRY(expect_bytes(e, PG, 'Z', "the parent's page after its device WRITE"));
	KT_TRY(expect_bytes(q, NB * PG, 'Q', "the parent's 'Q' pages after its device wrote another page"));
	KT_TRY(expect_bytes(q2, NB * PG, 'Q', "the parent's second 'Q' pages after its device wrote another page"));
	KT_TRY(hmm_expect(hmm_dev_read(fd, q + NB / 2 * PG, NB / 2, rbig), 0, "device READ of the parent's 'Q' pages"));
	KT_TRY(expect_bytes(rbig, NB / 2 * PG, 'Q', "the device's READ of the parent's 'Q' pages (0x57 'W' = the dead "
						    "child's data)"));
	KT_TRY(hmm_expect(hmm_dev_write(fd, q, NB / 2, zbig), 0, "device WRITE of half of the parent's 'Q' pages"));
	KT_TRY(expect_bytes(q, NB / 2 * PG, 'Z', "the half the parent's device wrote"));
	KT_TRY(expect_bytes(q + NB / 2 * PG, NB / 2 * PG, 'Q', "the half the parent's device did not write"));
	KT_TRY(expect_bytes(q2, NB * PG, 'Q', "the second 'Q' pages at the end"));
	KT_TRY(hmm_expect(hmm_dev_write(fd1, q2, NB, zbig), 0, "device WRITE by dmirror1 of the second 'Q' pages"));
	KT_TRY(expect_bytes(q2, NB * PG, 'Z', "the second 'Q' pages after dmirror1's WRITE"));
	KT_CHECK(munmap(q, NB * PG) == 0 && munmap(q2, NB * PG) == 0 && munmap(e, PG) == 0 && munmap(shared, PG) == 0,
		 "munmap failed");
	k_close((int)fd);
	k_close((int)fd1);
	return 0;
}

static int t_exit(void)
{
	struct bufs bf;
	KT_TRY(bufs_init(&bf));
	memset(wbig, 'W', sizeof wbig);
	memset(zbig, 'Z', sizeof zbig);
	memset(rbig, 0xEE, sizeof rbig);
	unsigned long before = kt_freeram();
	KT_TRY(exit_round(&bf, 0));
	KT_TRY(exit_round(&bf, 1));
	KT_TRY(exit_round(&bf, 0));
	unsigned long after = kt_freeram();
	KT_TRY(hmm_expect_freed(before, after, 0, 2, "after 3 children device-wrote their pages and left"));
	return 0;
}

/* ------------------------------------------------------------------------------------ */
/* execve                                                                                */
/* ------------------------------------------------------------------------------------ */

/*
 * The exec'd side (argv[1] == "after-exec", argv[2] = the device file opened before exec,
 * argv[3] = the address its device wrote): the old address space is gone, and its frames
 * most likely back this image's first pages. The old file (bound to the old address space)
 * must not reach them; a new file works on the new image. Exit status: 0 or a code of
 * exec_why().
 */
static int after_exec(long fd, uint8_t *a)
{
	uint8_t *z = map_rw(NB), *r = map_rw(NB);
	if (!z || !r)
		return 60;
	memset(z, 'Z', NB * PG);
	memset(r, 0xEE, NB * PG);
	uint8_t *q = map_q();
	if (!q)
		return 60;
	long rw = hmm_dev_write(fd, a, NB, z);
	long rr = hmm_dev_read(fd, a, NB, r);
	long i = first_diff(q, NB * PG, 'Q');
	if (i >= 0) {
		kout("# after exec: byte %ld of the new image's 'Q' pages is %s after a device WRITE through the file "
		     "opened before exec\n",
		     i, byte_str(q[i]));
		return 63;
	}
	if (rr == 0 && memchr(r, 'W', NB * PG))
		return 64;
	if (rw == 0)
		return 65;
	kout("# after exec: the device file opened before exec: WRITE %s, READ %s (its address space is gone)\n",
	     hmm_errname(rw), hmm_errname(rr));
	long fd2 = hmm_open(0);
	if (fd2 < 0)
		return 66;
	if (hmm_dev_write(fd2, q, NB, z) != 0 || first_diff(q, NB * PG, 'Z') >= 0)
		return 67;
	return 0;
}

static const char *exec_why(int c)
{
	switch (c) {
	case 60: return "open or mmap failed before exec (or mmap after it)";
	case 61: return "the device WRITE before exec failed";
	case 62: return "execve failed";
	case 63: return "a device WRITE through the file opened before exec changed the new image's pages";
	case 64: return "a device READ through the file opened before exec returned the old image's data";
	case 65: return "a device WRITE through the file opened before exec succeeded (its address space is gone)";
	case 66: return "open of /dev/hmm_dmirror0 after exec failed";
	case 67: return "a device WRITE through a file opened after exec did not reach the new image";
	default: return NULL;
	}
}

static int t_exec(void)
{
	long pid = k_fork();
	if (pid == 0) {
		static uint8_t w[NB * 4096], rb[NB * 4096];
		memset(w, 'W', sizeof w);
		memset(rb, 0, sizeof rb);
		long fd = hmm_open(0);
		uint8_t *a = map_rw(NB);
		if (fd < 0 || !a)
			k_exit(60);
		memset(a, 'A', NB * PG);
		if (hmm_dev_write(fd, a, NB, w) != 0 || hmm_dev_read(fd, a, NB, rb) != 0)
			k_exit(61);
		char sfd[24], sa[32];
		snprintf(sfd, sizeof sfd, "%ld", fd);
		snprintf(sa, sizeof sa, "%#lx", (unsigned long)(uintptr_t)a);
		char *argv[] = { (char *)"t_hmm_unmap", (char *)"after-exec", sfd, sa, NULL };
		k_execve(kt_self_path(), argv, kt_envp);
		k_exit(62);
	}
	KT_CHECK(pid > 0, "fork: %s", kt_errname(pid));
	KT_TRY(hmm_expect_child(pid, 10000, "execve by a process whose device holds translations of its pages",
				exec_why));
	return 0;
}

static const struct ktest tests[] = {
	{ "unmap::mmap_fixed_replaces_device_translation", t_mmap_fixed, 20 },
	{ "unmap::munmap_then_device_access_is_efault", t_munmap, 20 },
	{ "unmap::brk_shrink_then_device_access_is_efault", t_brk_shrink, 20 },
	{ "unmap::dontneed_device_write_lands_in_new_page", t_dontneed, 20 },
	{ "unmap::cow_device_follows_the_parents_frame", t_cow, 40 },
	{ "unmap::mprotect_read_only_device_write_eperm", t_mprotect, 20 },
	{ "unmap::mprotect_none_device_read_efault", t_mprotect_none, 20 },
	{ "unmap::exit_leaves_no_translation_behind", t_exit, 40 },
	{ "unmap::execve_leaves_no_translation_behind", t_exec, 20 },
};

int main(int argc, char **argv, char **envp)
{
	if (argc == 4 && strcmp(argv[1], "after-exec") == 0)
		return after_exec(strtol(argv[2], NULL, 10), (uint8_t *)(uintptr_t)strtoul(argv[3], NULL, 16));
	return hmm_main("t_hmm_unmap", tests, sizeof tests / sizeof tests[0], argc, argv, envp);
}
