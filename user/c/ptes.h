/*
 * ptes.h - print the part of memkernel's page-state dump (/proc/self/ptes) that covers one
 * address range, for the demonstration programs (exdemo, cowdemo). Static inline only,
 * like ktest.h, which it includes.
 *
 * /proc/self/ptes lists every VMA of the calling process and every mapped page in it
 * (docs chapter 4.3). A demo is interested in its own buffers only, so ptes_print_range()
 * prints:
 *
 *   - the comment lines ("# pid P: VMAs and their mapped pages", the column header),
 *   - the header line of every VMA that overlaps [lo, hi),
 *   - the page lines whose address lies in [lo, hi),
 *   - any line of another shape, as it is (a new kind of line is never hidden).
 *
 * Everything else (the program image, the stack) is left out. That keeps the output short
 * and makes it the same from run to run: which of parent and child writes its stack first
 * after fork, and so which of them copies the stack page, depends on the scheduler (docs
 * chapter 6.4), while the demo's own pages do not. scripts/golden-exdemo.sh relies on it.
 */
#ifndef PTES_H
#define PTES_H

#include "ktest.h"
#include <stdlib.h>

/* ptes_keep: whether one dump line (without its '\n') is printed for [lo, hi). */
static inline int ptes_keep(const char *line, uintptr_t lo, uintptr_t hi)
{
	char *end;
	if (strncmp(line, "vma 0x", 6) == 0) {
		/* "vma 0xSTART-0xEND prot sharing ...": keep it if [START, END) meets [lo, hi) */
		uintptr_t start = (uintptr_t)strtoull(line + 4, &end, 16);
		if (*end != '-')
			return 1;
		uintptr_t stop = (uintptr_t)strtoull(end + 1, &end, 16);
		return start < hi && stop > lo;
	}
	if (strncmp(line, "  0x", 4) == 0) {
		/* "  0xADDRESS  kind  frame  ref map  device": keep it if ADDRESS is in [lo, hi) */
		uintptr_t va = (uintptr_t)strtoull(line + 2, &end, 16);
		if (*end != ' ')
			return 1;
		return va >= lo && va < hi;
	}
	return 1; /* "# ..." comment lines, and anything new */
}

/*
 * ptes_print_range: print the lines of /proc/self/ptes that concern [lo, hi) (see above) to
 * fd 1. Returns 0, or -errno if the file cannot be opened (any kernel but memkernel).
 */
static inline long ptes_print_range(uintptr_t lo, uintptr_t hi)
{
	long fd = k_open("/proc/self/ptes", O_RDONLY);
	if (fd < 0)
		return fd;
	char chunk[1024], line[256];
	size_t len = 0;
	int whole = 1; /* the line in `line` is complete so far (not cut at 255 bytes) */
	long n;
	while ((n = k_read((int)fd, chunk, sizeof chunk)) > 0) {
		for (long i = 0; i < n; i++) {
			char c = chunk[i];
			if (c != '\n' && len < sizeof line - 1) {
				line[len++] = c;
				continue;
			}
			if (c != '\n') {
				whole = 0; /* too long: printed as it is */
				continue;
			}
			line[len] = '\0';
			if (!whole || ptes_keep(line, lo, hi)) {
				line[len] = '\n';
				kt_write_all(1, line, len + 1);
			}
			len = 0;
			whole = 1;
		}
	}
	if (len > 0) { /* a last line without '\n' */
		line[len] = '\0';
		if (!whole || ptes_keep(line, lo, hi)) {
			line[len] = '\n';
			kt_write_all(1, line, len + 1);
		}
	}
	k_close((int)fd);
	return 0;
}

#endif
