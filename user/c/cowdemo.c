/*
 * cowdemo - demand-zero and copy-on-write, seen through memkernel's page-state dump
 * (/proc/self/ptes), for students. The traces of docs chapters 4.3 and 6.4 are its output.
 *
 *   1. mmap 4 private anonymous pages: a VMA, no page yet;
 *   2. write page 0, read page 1: each first touch maps a zero-filled frame of its own;
 *   3. (memkernel) /dev/hmm_dmirror0 takes pages 0 and 1 device-exclusive (docs chapter 7),
 *      then the CPU reads page 0, which gives page 0 back;
 *   4. fork: fork gives page 1 back too, then shares both pages copy-on-write; the child
 *      writes page 1 (a COW copy: a new frame) and exits;
 *   5. the parent, alone again, writes page 1 (a COW reuse: the same frame, writable).
 *
 * After each step it prints the lines of /proc/self/ptes that concern the 4 pages (ptes.h)
 * under a "--- what (pid P)" title. Exit status 0 when every value read back is right.
 * On Linux there is no /proc/self/ptes and no accelerator: it says so and skips those parts.
 */
#include "hmm.h"
#include "ptes.h"

#define NPAGES 4

static uint32_t *buf;
static uint32_t mirror[2 * HMM_WORDS_PER_PAGE]; /* the device's read-back of pages 0-1 */

static void show(const char *what)
{
	kout("--- %s (pid %ld)\n", what, k_getpid());
	if (ptes_print_range((uintptr_t)buf, (uintptr_t)buf + NPAGES * HMM_PAGE) < 0)
		kout("(no /proc/self/ptes on this kernel)\n");
}

static volatile uint32_t *word(int page) { return buf + (size_t)page * HMM_WORDS_PER_PAGE; }

int main(void)
{
	int bad = 0;
	kout("cowdemo: demand-zero and copy-on-write, seen through /proc/self/ptes\n");
	buf = hmm_map(NPAGES);
	if (!buf) {
		kout("mmap failed\n");
		return 1;
	}
	show("after mmap of 4 pages: nothing mapped yet");

	*word(0) = 100;
	uint32_t v = *word(1);
	bad += v != 0;
	show("after a write to page 0 and a read of page 1");

	long dev = hmm_open(0);
	if (dev >= 0) {
		uint64_t cpages = 0;
		long r = hmm_exclusive(dev, buf, 2, mirror, &cpages);
		bad += r != 0 || cpages != 2 || mirror[0] != 100;
		v = *word(0); /* a CPU read: the fault gives page 0 back */
		bad += v != 100;
		show("pages 0 and 1 made device-exclusive, then a CPU read of page 0");
	} else {
		kout("(no /dev/hmm_dmirror0 here: %s; no device-exclusive pages)\n", hmm_errname(dev));
	}

	long pid = k_fork();
	if (pid == 0) {
		show("child right after fork");
		*word(1) = 200;
		show("child after writing page 1");
		k_exit(*word(0) == 100 && *word(1) == 200 ? 0 : 1);
	}
	if (pid < 0) {
		kout("fork failed: %s\n", kt_errname(pid));
		return 1;
	}
	int st = 0;
	kt_reap(pid, &st);
	bad += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	show("parent after the child exited");
	bad += *word(1) != 0; /* the child's 200 went to its own copy */
	*word(1) = 300;
	show("parent after writing page 1");
	bad += *word(0) != 100 || *word(1) != 300;
	if (dev >= 0)
		k_close((int)dev);
	if (bad) {
		kout("cowdemo: %d unexpected value(s)\n", bad);
		return 1;
	}
	kout("cowdemo: every value as expected\n");
	return 0;
}
