/*
 * t_hmm_exclusive - device-exclusive access in one process (scenario ids: docs chapter 9,
 * docs/09-device-exclusive-spec.md):
 *
 *   S-EX1 exclusive             1024 pages, word[i] = i; EXCLUSIVE -> cpages 1024, the device's
 *                               read-back equals; the CPU checks and increments every word;
 *                               CHECK_EXCLUSIVE then returns 0 (every CPU restore revoked the device)
 *   S-EX2 exclusive_mprotect    after EXCLUSIVE, mprotect(PROT_READ) works and revokes the device;
 *                               a device WRITE fails with -EPERM and changes nothing; a CPU read
 *                               returns the data; a CPU write kills (a child) with SIGSEGV
 *   S-R4  never-touched pages   EXCLUSIVE allocates zero-filled frames; the device reads zeros
 *   S-R3  refusals              read-only mapping: -EPERM or -EFAULT; MAP_SHARED: -EOPNOTSUPP
 *   S-M1  mprotect RO, RW       then a CPU write works and the data is intact
 *   S-K1  kernel access         write(1, exclusive_buf, n) prints the bytes, read(2) and
 *                               clock_gettime write into exclusive pages, nanosleep and the ioctl
 *                               itself read from one: each access faults the page back and revokes
 *                               the device
 *         bad arguments         -EINVAL (npages 0, unaligned addr), -EFAULT (bad ptr, unmapped addr,
 *                               bad command pointer)
 *
 * Each test runs in its own process (ktest.h); on memkernel free memory must be back to its
 * baseline after each. Without /dev/hmm_dmirror0 (any kernel but memkernel) the program skips.
 */
#include "hmm.h"

#define NPAGES 1024UL
#define SIZE (NPAGES * HMM_PAGE)

/* S-EX1: hmm-tests `exclusive`, plus SNAPSHOT and CHECK_EXCLUSIVE while the device holds it. */
static int t_exclusive(void)
{
	long fd = hmm_open(0);
	KT_CHECK(fd >= 0, "open /dev/hmm_dmirror0: %s", hmm_errname(fd));
	uint32_t *p = hmm_map(NPAGES);
	uint32_t *mirror = hmm_map_touched(NPAGES, 0xEE);
	KT_CHECK(p && mirror, "mmap failed");
	hmm_fill(p, SIZE, 0);

	uint64_t cpages = 0;
	long r = hmm_exclusive(fd, p, NPAGES, mirror, &cpages);
	KT_TRY(hmm_expect(r, 0, "EXCLUSIVE over 1024 pages"));
	KT_CHECK(cpages == NPAGES, "EXCLUSIVE: cpages %lu, expected %lu", (unsigned long)cpages, NPAGES);
	KT_TRY(hmm_expect_words(mirror, SIZE, 0, "the device's read-back (mirror) after EXCLUSIVE"));
	KT_TRY(hmm_expect_snapshot(fd, p, NPAGES, HMM_PROT_ATOMIC, "after EXCLUSIVE"));
	KT_TRY(hmm_expect(hmm_check_exclusive(fd, p, NPAGES), -EPERM,
			  "CHECK_EXCLUSIVE while the device holds the pages"));

	/* The CPU: every first access to a page faults and restores it. */
	long bad = hmm_check_and_inc(p, SIZE, 0);
	KT_CHECK(bad < 0, "CPU read after EXCLUSIVE: word %ld (page %ld) is %#x, expected %#lx", bad,
		 bad / (long)HMM_WORDS_PER_PAGE, p[bad], (unsigned long)bad);
	KT_TRY(hmm_expect_words(p, SIZE, 1, "after the CPU incremented every word"));
	KT_TRY(hmm_expect(hmm_check_exclusive(fd, p, NPAGES), 0,
			  "CHECK_EXCLUSIVE after the CPU touched every page (a restore did not revoke the device)"));
	KT_TRY(hmm_expect_snapshot(fd, p, NPAGES, HMM_PROT_WRITE, "after the CPU wrote every page"));

	/* The same device may take the pages again; the data it reads is the CPU's new data. */
	r = hmm_exclusive(fd, p, NPAGES, mirror, &cpages);
	KT_TRY(hmm_expect(r, 0, "EXCLUSIVE again after the CPU took the pages back"));
	KT_CHECK(cpages == NPAGES, "second EXCLUSIVE: cpages %lu", (unsigned long)cpages);
	KT_TRY(hmm_expect_words(mirror, SIZE, 1, "the device's read-back after the second EXCLUSIVE"));
	KT_TRY(hmm_expect(k_munmap(p, SIZE), 0, "munmap of the exclusive range"));
	KT_TRY(hmm_expect(hmm_check_exclusive(fd, p, NPAGES), 0, "CHECK_EXCLUSIVE after munmap"));
	k_close((int)fd);
	return 0;
}

/* S-EX2: hmm-tests `exclusive_mprotect`, plus the CPU side. */
static int t_exclusive_mprotect(void)
{
	long fd = hmm_open(0);
	KT_CHECK(fd >= 0, "open /dev/hmm_dmirror0: %s", hmm_errname(fd));
	uint32_t *p = hmm_map(NPAGES);
	uint32_t *mirror = hmm_map_touched(NPAGES, 0xEE);
	KT_CHECK(p && mirror, "mmap failed");
	hmm_fill(p, SIZE, 0);

	uint64_t cpages = 0;
	KT_TRY(hmm_expect(hmm_exclusive(fd, p, NPAGES, mirror, &cpages), 0, "EXCLUSIVE"));
	KT_CHECK(cpages == NPAGES, "EXCLUSIVE: cpages %lu", (unsigned long)cpages);
	KT_TRY(hmm_expect_words(mirror, SIZE, 0, "the device's read-back"));

	KT_TRY(hmm_expect(k_mprotect(p, SIZE, PROT_READ), 0, "mprotect(PROT_READ) of the exclusive range"));
	KT_TRY(hmm_expect(hmm_check_exclusive(fd, p, NPAGES), 0,
			  "CHECK_EXCLUSIVE after mprotect (the protection notifier must revoke the device)"));

	/* The device writes something else: refused, and nothing may change. */
	hmm_fill(mirror, SIZE, 0x80000000u);
	KT_TRY(hmm_expect(hmm_dev_write(fd, p, NPAGES, mirror), -EPERM, "device WRITE to the PROT_READ range"));
	KT_TRY(hmm_expect_words(p, SIZE, 0, "CPU read after mprotect(PROT_READ) and the refused device write"));
	KT_TRY(hmm_expect_snapshot(fd, p, NPAGES, HMM_PROT_READ, "after the CPU read the PROT_READ range"));

	/* A CPU write must be a segmentation fault (in a child, which then dies). */
	long pid = k_fork();
	if (pid == 0) {
		if (((volatile uint32_t *)p)[5 * HMM_WORDS_PER_PAGE + 7] != 5 * HMM_WORDS_PER_PAGE + 7)
			k_exit(2);
		((volatile uint32_t *)p)[5 * HMM_WORDS_PER_PAGE + 7] = 1;
		k_exit(3);
	}
	KT_CHECK(pid > 0, "fork: %s", kt_errname(pid));
	KT_TRY(kt_expect_signal(pid, SIGSEGV, "a CPU write to the PROT_READ range"));

	KT_TRY(hmm_expect_words(p, SIZE, 0, "the parent's data after the child's faulting write"));

	/*
	 * A first CPU access that is a write, straight on the exclusive entry left by the
	 * mprotect: the restore must give a read-only PTE and the write must fault. Only the
	 * process holding the entry can do that (fork would restore it), so a child does it all
	 * and dies.
	 */
	pid = k_fork();
	if (pid == 0) {
		long cfd = hmm_open(0);
		uint32_t *q = hmm_map(4);
		if (cfd < 0 || !q)
			k_exit(10);
		hmm_fill(q, 4 * HMM_PAGE, 77);
		if (hmm_exclusive(cfd, q, 4, mirror, NULL) != 0)
			k_exit(11);
		if (k_mprotect(q, 4 * HMM_PAGE, PROT_READ) != 0)
			k_exit(12);
		((volatile uint32_t *)q)[3] = 1;
		k_exit(13);
	}
	KT_CHECK(pid > 0, "fork: %s", kt_errname(pid));
	int st = 0;
	char sb[64];
	kt_reap(pid, &st);
	KT_CHECK(!(WIFEXITED(st) && WEXITSTATUS(st) >= 10 && WEXITSTATUS(st) <= 12),
		 "child: setup step %d failed (10 open/mmap, 11 EXCLUSIVE, 12 mprotect)", WEXITSTATUS(st));
	KT_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV,
		 "a first CPU write to an exclusive page after mprotect(PROT_READ): child %s, expected SIGSEGV",
		 kt_status_str(st, sb, sizeof sb));
	k_close((int)fd);
	return 0;
}

/* S-R4: EXCLUSIVE on pages the process never touched. */
static int t_never_touched(void)
{
	long fd = hmm_open(0);
	KT_CHECK(fd >= 0, "open /dev/hmm_dmirror0: %s", hmm_errname(fd));
	size_t n = 16;
	uint8_t *p = hmm_map(n);
	uint8_t *mirror = hmm_map_touched(n, 0xAA);
	KT_CHECK(p && mirror, "mmap failed");
	KT_TRY(hmm_expect_snapshot(fd, p, n, HMM_PROT_NONE, "a fresh mapping"));
	unsigned long before = kt_freeram();
	uint64_t cpages = 0;
	KT_TRY(hmm_expect(hmm_exclusive(fd, p, n, mirror, &cpages), 0, "EXCLUSIVE on never-touched pages"));
	unsigned long after = kt_freeram();
	KT_CHECK(cpages == n, "cpages %lu, expected %zu", (unsigned long)cpages, n);
	for (size_t i = 0; i < n * HMM_PAGE; i++)
		KT_CHECK(mirror[i] == 0, "the device read %#x at byte %zu (page %zu), expected a zero-filled page",
			 mirror[i], i, i / HMM_PAGE);
	KT_TRY(hmm_expect_snapshot(fd, p, n, HMM_PROT_ATOMIC, "after EXCLUSIVE on never-touched pages"));
	/* The frames were allocated by EXCLUSIVE (plus at most a few page tables). */
	if (kt_memkernel) {
		long used = ((long)before - (long)after) / (long)HMM_PAGE;
		KT_CHECK(used >= (long)n && used <= (long)n + 4,
			 "EXCLUSIVE on %zu never-touched pages lowered free memory by %ld pages", n, used);
	}
	for (size_t i = 0; i < n * HMM_PAGE; i += 8)
		KT_CHECK(*(volatile uint64_t *)(p + i) == 0, "the CPU reads non-zero at byte %zu", i);
	KT_TRY(hmm_expect(hmm_check_exclusive(fd, p, n), 0, "CHECK_EXCLUSIVE after the CPU read the pages"));
	hmm_fill(p, n * HMM_PAGE, 5);
	KT_TRY(hmm_expect_words(p, n * HMM_PAGE, 5, "after the CPU wrote the pages"));
	k_close((int)fd);
	return 0;
}

/* S-R3 (a): a read-only mapping cannot be made exclusive (the write fault-in is refused). */
static int t_refuse_read_only(void)
{
	long fd = hmm_open(0);
	KT_CHECK(fd >= 0, "open /dev/hmm_dmirror0: %s", hmm_errname(fd));
	size_t n = 8;
	uint8_t *mirror = hmm_map_touched(n, 0xAA);
	uint8_t *ro = k_anon(n * HMM_PAGE, PROT_READ);
	KT_CHECK(mirror && ro, "mmap failed");

	long r = hmm_exclusive(fd, ro, n, mirror, NULL);
	KT_CHECK(r == -EPERM || r == -EFAULT,
		 "EXCLUSIVE on a never-touched PROT_READ mapping returned %s, expected -EPERM or -EFAULT", hmm_errname(r));
	kout("# EXCLUSIVE on a PROT_READ mapping: %s\n", hmm_errname(r));
	KT_TRY(hmm_expect(hmm_check_exclusive(fd, ro, n), 0, "CHECK_EXCLUSIVE after the refusal"));
	r = hmm_atomic_add(fd, ro, n, 1, NULL);
	KT_CHECK(r == -EPERM || r == -EFAULT, "ATOMIC_ADD on a PROT_READ mapping returned %s, expected -EPERM or -EFAULT",
		 hmm_errname(r));
	for (size_t i = 0; i < n * HMM_PAGE; i += 64)
		KT_CHECK(ro[i] == 0, "the PROT_READ mapping reads %#x at %zu after the refusals", ro[i], i);

	/* Written while writable, then mprotect(PROT_READ): refused as well, data intact. */
	uint8_t *p = hmm_map(n);
	KT_CHECK(p, "mmap failed");
	hmm_fill(p, n * HMM_PAGE, 1000);
	KT_TRY(hmm_expect(k_mprotect(p, n * HMM_PAGE, PROT_READ), 0, "mprotect(PROT_READ)"));
	r = hmm_exclusive(fd, p, n, mirror, NULL);
	KT_CHECK(r == -EPERM || r == -EFAULT,
		 "EXCLUSIVE on populated pages made PROT_READ returned %s, expected -EPERM or -EFAULT", hmm_errname(r));
	kout("# EXCLUSIVE on populated pages after mprotect(PROT_READ): %s\n", hmm_errname(r));
	KT_TRY(hmm_expect(hmm_check_exclusive(fd, p, n), 0, "CHECK_EXCLUSIVE after the refusal"));
	KT_TRY(hmm_expect_words(p, n * HMM_PAGE, 1000, "the data after the refusal"));
	KT_TRY(hmm_expect_snapshot(fd, p, n, HMM_PROT_READ, "populated pages after mprotect(PROT_READ)"));

	/* Writable again: now it works. */
	KT_TRY(hmm_expect(k_mprotect(p, n * HMM_PAGE, PROT_READ | PROT_WRITE), 0, "mprotect(PROT_READ|PROT_WRITE)"));
	KT_TRY(hmm_expect(hmm_exclusive(fd, p, n, mirror, NULL), 0, "EXCLUSIVE after mprotect back to read-write"));
	KT_TRY(hmm_expect_words(mirror, n * HMM_PAGE, 1000, "the device's read-back"));
	k_close((int)fd);
	return 0;
}

/* S-R3 (b): a shared anonymous mapping is not an anonymous private page: -EOPNOTSUPP. */
static int t_refuse_shared(void)
{
	long fd = hmm_open(0);
	KT_CHECK(fd >= 0, "open /dev/hmm_dmirror0: %s", hmm_errname(fd));
	size_t n = 4;
	uint8_t *mirror = hmm_map_touched(n, 0xAA);
	KT_CHECK(mirror, "mmap failed");
	long m = k_mmap(NULL, n * HMM_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	KT_CHECK(!kt_is_err(m), "mmap(MAP_SHARED|MAP_ANONYMOUS) returned %s", hmm_errname(m));
	uint8_t *s = (uint8_t *)m;
	hmm_fill(s, n * HMM_PAGE, 300);
	KT_TRY(hmm_expect(hmm_exclusive(fd, s, n, mirror, NULL), -EOPNOTSUPP, "EXCLUSIVE on a MAP_SHARED mapping"));
	KT_TRY(hmm_expect(hmm_check_exclusive(fd, s, n), 0, "CHECK_EXCLUSIVE after the refusal"));
	KT_TRY(hmm_expect_words(s, n * HMM_PAGE, 300, "the shared mapping's data after the refusal"));
	/* Never touched shared pages: refused too. */
	m = k_mmap(NULL, n * HMM_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	KT_CHECK(!kt_is_err(m), "mmap(MAP_SHARED|MAP_ANONYMOUS) returned %s", hmm_errname(m));
	KT_TRY(hmm_expect(hmm_exclusive(fd, (void *)m, n, mirror, NULL), -EOPNOTSUPP,
			  "EXCLUSIVE on a never-touched MAP_SHARED mapping"));
	KT_TRY(hmm_expect(hmm_atomic_add(fd, s, n, 1, NULL), -EOPNOTSUPP, "ATOMIC_ADD on a MAP_SHARED mapping"));
	KT_TRY(hmm_expect_words(s, n * HMM_PAGE, 300, "the shared mapping's data after the refused ATOMIC_ADD"));
	k_close((int)fd);
	return 0;
}

/* S-M1: mprotect RO then RW over exclusive pages, then a CPU write. */
static int t_mprotect_ro_rw(void)
{
	long fd = hmm_open(0);
	KT_CHECK(fd >= 0, "open /dev/hmm_dmirror0: %s", hmm_errname(fd));
	size_t n = 16, len = n * HMM_PAGE;
	uint32_t *p = hmm_map(n);
	uint32_t *mirror = hmm_map_touched(n, 0xAA);
	KT_CHECK(p && mirror, "mmap failed");
	hmm_fill(p, len, 0x1000);
	KT_TRY(hmm_expect(hmm_exclusive(fd, p, n, mirror, NULL), 0, "EXCLUSIVE"));
	KT_TRY(hmm_expect(k_mprotect(p, len, PROT_READ), 0, "mprotect(PROT_READ)"));
	/* Pages 8..15 are read by the CPU while read-only (restored read-only); pages 0..7 stay exclusive. */
	KT_TRY(hmm_expect_words(p + 8 * HMM_WORDS_PER_PAGE, 8 * HMM_PAGE, 0x1000 + 8 * HMM_WORDS_PER_PAGE,
				"CPU read of pages 8..15 while PROT_READ"));
	KT_TRY(hmm_expect_snapshot(fd, p, 8, HMM_PROT_ATOMIC, "pages 0..7 after mprotect(PROT_READ), not touched"));
	KT_TRY(hmm_expect_snapshot(fd, p + 8 * HMM_WORDS_PER_PAGE, 8, HMM_PROT_READ,
				   "pages 8..15 read by the CPU while PROT_READ"));
	KT_TRY(hmm_expect(k_mprotect(p, len, PROT_READ | PROT_WRITE), 0, "mprotect(PROT_READ|PROT_WRITE)"));
	long bad = hmm_check_and_inc(p, len, 0x1000);
	KT_CHECK(bad < 0, "CPU read-increment after mprotect RO->RW: word %ld (page %ld) is %#x", bad,
		 bad / (long)HMM_WORDS_PER_PAGE, p[bad]);
	KT_TRY(hmm_expect_words(p, len, 0x1001, "after the CPU write"));
	KT_TRY(hmm_expect_snapshot(fd, p, n, HMM_PROT_WRITE, "after the CPU wrote every page"));
	KT_TRY(hmm_expect(hmm_check_exclusive(fd, p, n), 0, "CHECK_EXCLUSIVE after mprotect and the CPU write"));
	k_close((int)fd);
	return 0;
}

static const char KLINE[] = "# hmm: the kernel copied this line out of a device-exclusive page (write(2))\n";

/* S-K1: the kernel accesses exclusive pages on behalf of syscalls. */
static int t_kernel_access(void)
{
	long fd = hmm_open(0);
	KT_CHECK(fd >= 0, "open /dev/hmm_dmirror0: %s", hmm_errname(fd));
	size_t n = 3;
	uint8_t *p = hmm_map(n);
	uint8_t *mirror = hmm_map_touched(n, 0xAA);
	KT_CHECK(p && mirror, "mmap failed");
	uint8_t *pg[3];
	for (size_t i = 0; i < n; i++) {
		pg[i] = p + i * HMM_PAGE;
		memset(pg[i], 'a' + (int)i, HMM_PAGE);
	}
	size_t klen = sizeof KLINE - 1;
	memcpy(pg[0], KLINE, klen);
	KT_TRY(hmm_expect(hmm_exclusive(fd, p, n, mirror, NULL), 0, "EXCLUSIVE"));
	KT_CHECK(memcmp(mirror, KLINE, klen) == 0, "the device's read-back of page 0 differs");
	KT_TRY(hmm_expect(hmm_check_exclusive(fd, p, n), -EPERM, "CHECK_EXCLUSIVE before the syscalls"));

	/* 1. write(1, page 0): a kernel read; the line appears in this program's output. */
	long r = k_write(1, pg[0], klen);
	KT_CHECK(r == (long)klen, "write(1, exclusive page, %zu) returned %s", klen, kt_errname(r));
	KT_TRY(hmm_expect(hmm_check_exclusive(fd, pg[0], 1), 0, "CHECK_EXCLUSIVE of page 0 after write(2) read it"));

	/* 2. read(2) of this program's file into page 1: a kernel write. */
	long f = k_open(kt_self_path(), O_RDONLY);
	KT_CHECK(f >= 0, "open %s: %s", kt_self_path(), kt_errname(f));
	r = k_read((int)f, pg[1], 64);
	k_close((int)f);
	KT_CHECK(r == 64, "read(2) of 64 bytes into an exclusive page returned %s", kt_errname(r));
	KT_CHECK(memcmp(pg[1], "\177ELF", 4) == 0, "read(2) into an exclusive page: no ELF magic there");
	for (size_t i = 64; i < HMM_PAGE; i++)
		KT_CHECK(pg[1][i] == 'b', "read(2) into page 1 changed byte %zu", i);
	KT_TRY(hmm_expect(hmm_check_exclusive(fd, pg[1], 1), 0, "CHECK_EXCLUSIVE of page 1 after read(2) wrote it"));

	/* 3. clock_gettime into page 2 (a small kernel write). */
	struct timespec *ts = (struct timespec *)(pg[2] + 256);
	r = k_clock_gettime(CLOCK_MONOTONIC, ts);
	KT_CHECK(r == 0, "clock_gettime into an exclusive page returned %s", kt_errname(r));
	KT_CHECK(ts->tv_nsec >= 0 && ts->tv_nsec < 1000000000L, "clock_gettime wrote tv_nsec %ld", ts->tv_nsec);
	KT_CHECK(pg[2][0] == 'c' && pg[2][4095] == 'c', "clock_gettime changed other bytes of page 2");
	KT_TRY(hmm_expect(hmm_check_exclusive(fd, pg[2], 1), 0, "CHECK_EXCLUSIVE of page 2 after clock_gettime"));

	k_close((int)fd);
	return 0;
}

/*
 * S-K1, small copies: the request of nanosleep and the ioctl's own command placed in
 * exclusive pages before the conversion (the CPU cannot write them afterwards without
 * restoring the page).
 */
static int t_kernel_access_small(void)
{
	long fd = hmm_open(0);
	KT_CHECK(fd >= 0, "open /dev/hmm_dmirror0: %s", hmm_errname(fd));
	size_t n = 3;
	uint8_t *p = hmm_map(n);
	uint8_t *mirror = hmm_map_touched(n, 0xAA);
	KT_CHECK(p && mirror, "mmap failed");
	memset(p, 'x', n * HMM_PAGE);
	struct timespec *req = (struct timespec *)(p + 512);
	req->tv_sec = 0;
	req->tv_nsec = 1000000; /* 1 ms */
	struct hmm_dmirror_cmd *cmd = (struct hmm_dmirror_cmd *)(p + HMM_PAGE + 1024);
	memset(cmd, 0, sizeof *cmd);
	cmd->addr = (uint64_t)(uintptr_t)(p + 2 * HMM_PAGE);
	cmd->npages = 1;
	KT_TRY(hmm_expect(hmm_exclusive(fd, p, n, mirror, NULL), 0, "EXCLUSIVE"));

	/* nanosleep reads *req from exclusive page 0. */
	long r = k_nanosleep(req, NULL);
	KT_CHECK(r == 0, "nanosleep with its request in an exclusive page returned %s", kt_errname(r));
	KT_TRY(hmm_expect(hmm_check_exclusive(fd, p, 1), 0, "CHECK_EXCLUSIVE of page 0 after nanosleep read it"));

	/* CHECK_EXCLUSIVE of page 2, its command in exclusive page 1: page 2 is still atomic. */
	r = hmm_ioctl(fd, HMM_DMIRROR_CHECK_EXCLUSIVE, cmd);
	KT_TRY(hmm_expect(r, -EPERM, "CHECK_EXCLUSIVE of page 2 with the command inside exclusive page 1"));
	KT_TRY(hmm_expect(hmm_check_exclusive(fd, p + HMM_PAGE, 1), 0,
			  "CHECK_EXCLUSIVE of page 1 after the kernel read a command from it"));
	/* EXCLUSIVE of page 2 with the command in page 1 (now present) and the read-back into page 0. */
	cmd->ptr = (uint64_t)(uintptr_t)p; /* page 0: restored by nanosleep, writable */
	cmd->cpages = 0;
	cmd->faults = 0;
	r = hmm_ioctl(fd, HMM_DMIRROR_EXCLUSIVE, cmd);
	KT_TRY(hmm_expect(r, 0, "EXCLUSIVE of page 2 (already held) reading back into page 0"));
	KT_CHECK(cmd->cpages == 1, "cpages %lu written back into the command", (unsigned long)cmd->cpages);
	for (size_t i = 0; i < HMM_PAGE; i++)
		KT_CHECK(p[i] == 'x', "the read-back into page 0 has %#x at byte %zu", p[i], i);
	KT_TRY(hmm_expect(hmm_check_exclusive(fd, p + 2 * HMM_PAGE, 1), -EPERM, "CHECK_EXCLUSIVE of page 2 (held)"));
	k_close((int)fd);
	return 0;
}

/* Bad arguments. */
static int t_bad_arguments(void)
{
	long fd = hmm_open(0);
	KT_CHECK(fd >= 0, "open /dev/hmm_dmirror0: %s", hmm_errname(fd));
	size_t n = 4;
	uint8_t *p = hmm_map(n);
	uint8_t *mirror = hmm_map_touched(n, 0xAA);
	KT_CHECK(p && mirror, "mmap failed");
	hmm_fill(p, n * HMM_PAGE, 9);
	uint64_t mp = (uint64_t)(uintptr_t)mirror;
	static const struct {
		unsigned long req;
		const char *name;
	} reqs[] = {
		{ HMM_DMIRROR_READ, "READ" },
		{ HMM_DMIRROR_WRITE, "WRITE" },
		{ HMM_DMIRROR_SNAPSHOT, "SNAPSHOT" },
		{ HMM_DMIRROR_EXCLUSIVE, "EXCLUSIVE" },
		{ HMM_DMIRROR_CHECK_EXCLUSIVE, "CHECK_EXCLUSIVE" },
		{ HMM_DMIRROR_ATOMIC_ADD, "ATOMIC_ADD" },
	};
	char what[160];
	for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
		uint64_t ptr = reqs[i].req == HMM_DMIRROR_ATOMIC_ADD ? 1 : mp;
		snprintf(what, sizeof what, "%s with npages 0", reqs[i].name);
		KT_TRY(hmm_expect(hmm_cmd(fd, reqs[i].req, p, ptr, 0, NULL), -EINVAL, what));
		snprintf(what, sizeof what, "%s with an unaligned addr", reqs[i].name);
		KT_TRY(hmm_expect(hmm_cmd(fd, reqs[i].req, p + 8, ptr, 1, NULL), -EINVAL, what));
		snprintf(what, sizeof what, "%s with the command at a bad pointer", reqs[i].name);
		KT_TRY(hmm_expect(k_ioctl((int)fd, reqs[i].req, KT_BAD_PTR), -EFAULT, what));
		KT_TRY(hmm_expect(k_ioctl((int)fd, reqs[i].req, KT_KERNEL_PTR), -EFAULT, what));
	}
	/* A bad ptr with a good range (the device side may have happened; the copy fails). */
	KT_TRY(hmm_expect(hmm_cmd(fd, HMM_DMIRROR_EXCLUSIVE, p, 1, n, NULL), -EFAULT, "EXCLUSIVE with ptr = 1"));
	KT_TRY(hmm_expect(hmm_cmd(fd, HMM_DMIRROR_EXCLUSIVE, p, (uint64_t)(uintptr_t)KT_KERNEL_PTR, n, NULL), -EFAULT,
			  "EXCLUSIVE with ptr in the kernel half"));
	KT_TRY(hmm_expect(hmm_cmd(fd, HMM_DMIRROR_READ, p, 1, n, NULL), -EFAULT, "READ with ptr = 1"));
	KT_TRY(hmm_expect(hmm_cmd(fd, HMM_DMIRROR_WRITE, p, 1, n, NULL), -EFAULT, "WRITE with ptr = 1"));
	KT_TRY(hmm_expect(hmm_cmd(fd, HMM_DMIRROR_SNAPSHOT, p, 1, n, NULL), -EFAULT, "SNAPSHOT with ptr = 1"));
	KT_TRY(hmm_expect_words(p, n * HMM_PAGE, 9, "the data after the bad-pointer calls"));

	/* Unmapped addresses: the whole range, or its last page. */
	uint8_t *u = hmm_map(n);
	KT_CHECK(u, "mmap failed");
	KT_TRY(hmm_expect(k_munmap(u, n * HMM_PAGE), 0, "munmap"));
	KT_TRY(hmm_expect(hmm_cmd(fd, HMM_DMIRROR_EXCLUSIVE, u, mp, n, NULL), -EFAULT, "EXCLUSIVE on an unmapped range"));
	KT_TRY(hmm_expect(hmm_cmd(fd, HMM_DMIRROR_ATOMIC_ADD, u, 1, n, NULL), -EFAULT, "ATOMIC_ADD on an unmapped range"));
	KT_TRY(hmm_expect(hmm_cmd(fd, HMM_DMIRROR_READ, u, mp, n, NULL), -EFAULT, "READ of an unmapped range"));
	KT_TRY(hmm_expect(hmm_cmd(fd, HMM_DMIRROR_EXCLUSIVE, NULL, mp, 1, NULL), -EFAULT,
			  "EXCLUSIVE on page 0 (never mapped)"));
	KT_TRY(hmm_expect(k_munmap(p + (n - 1) * HMM_PAGE, HMM_PAGE), 0, "munmap of the last page"));
	KT_TRY(hmm_expect(hmm_cmd(fd, HMM_DMIRROR_EXCLUSIVE, p, mp, n, NULL), -EFAULT,
			  "EXCLUSIVE on a range whose last page is unmapped"));
	/* Whatever became exclusive before the hole is still correct data for the CPU. */
	KT_TRY(hmm_expect_words(p, (n - 1) * HMM_PAGE, 9, "the mapped pages after the failed EXCLUSIVE"));
	/* A range that wraps around or leaves user space. */
	KT_TRY(hmm_expect(hmm_cmd(fd, HMM_DMIRROR_EXCLUSIVE, (void *)0xfffffffffffff000UL, mp, 2, NULL), -EINVAL,
			  "EXCLUSIVE on a range that wraps around"));
	long r = hmm_cmd(fd, HMM_DMIRROR_EXCLUSIVE, KT_KERNEL_PTR, mp, 1, NULL);
	KT_CHECK(r == -EINVAL || r == -EFAULT, "EXCLUSIVE on a kernel address returned %s, expected -EINVAL or -EFAULT",
		 hmm_errname(r));
	k_close((int)fd);
	return 0;
}

static const struct ktest tests[] = {
	{ "hmm::exclusive_1024_pages_cpu_restores_and_revokes", t_exclusive, 30 },
	{ "hmm::exclusive_mprotect_device_write_eperm_cpu_write_segv", t_exclusive_mprotect, 30 },
	{ "hmm::exclusive_on_never_touched_pages_zero_filled", t_never_touched, 20 },
	{ "hmm::refuse_read_only_mapping", t_refuse_read_only, 20 },
	{ "hmm::refuse_shared_mapping_eopnotsupp", t_refuse_shared, 20 },
	{ "hmm::mprotect_ro_then_rw_then_cpu_write", t_mprotect_ro_rw, 20 },
	{ "hmm::kernel_access_write_read_clock_gettime", t_kernel_access, 20 },
	{ "hmm::kernel_access_nanosleep_and_ioctl_command", t_kernel_access_small, 20 },
	{ "hmm::bad_arguments_einval_efault", t_bad_arguments, 20 },
};

int main(int argc, char **argv, char **envp)
{
	return hmm_main("t_hmm_exclusive", tests, sizeof tests / sizeof tests[0], argc, argv, envp);
}
