/*
 * exdemo - a narrated demonstration of device-exclusive access, for students.
 *
 * It maps 4 pages and writes them; lets the emulated accelerator take pages 0-1 exclusive
 * (HMM_DMIRROR_EXCLUSIVE); touches page 0 from the CPU (a fault that gives the page back);
 * forks (fork gives page 1 back too, then shares everything copy-on-write); lets the device
 * (HMM_DMIRROR_ATOMIC_ADD) and the CPU take turns adding to page 2; and checks every sum at
 * the end. Between the steps it prints the page-state dump of /proc/self/ptes (memkernel),
 * limited to the lines of its own mapping (ptes.h). Exit status 0 when every check passed.
 *
 * docs chapter 7.14 is an annotated run; scripts/golden-exdemo.sh boots it as /init and
 * compares its output, with frame numbers and addresses masked, with tests/golden/exdemo.txt
 * and with that chapter. Change what it prints and both must follow.
 *
 * Run it from the shell: `exdemo`. On Linux (no /dev/hmm_dmirror0) it shows step 1 only.
 */
#include "hmm.h"
#include "ptes.h"

#define NPAGES 4
#define TURNS 50

static uint32_t *buf;      /* the 4 pages */
static uint32_t *mirror;   /* where the device copies what it reads */
static long dev = -1;      /* /dev/hmm_dmirror0 */
static int problems;       /* failed checks */

static void say(const char *s) { kt_write_all(1, s, strlen(s)); }

static void check(int ok, const char *what)
{
	if (!ok) {
		kout("  !! UNEXPECTED: %s\n", what);
		problems++;
	}
}

/*
 * dump: print the page-state dump of /proc/self/ptes under a title, only the lines of our
 * own mapping (the buffer and the mirror, which the kernel merges into one VMA): ptes.h.
 */
static void dump(const char *title)
{
	uintptr_t a = (uintptr_t)buf, b = (uintptr_t)mirror, len = NPAGES * HMM_PAGE;
	uintptr_t lo = a < b ? a : b, hi = (a < b ? b : a) + len;
	kout("\n  ---- page-state dump (/proc/self/ptes, pid %ld, our mapping only): %s ----\n", k_getpid(),
	     title);
	if (ptes_print_range(lo, hi) < 0)
		say("(no /proc/self/ptes on this kernel)\n");
	say("  ---- end of dump ----\n\n");
}

/* snapshot: the driver's one-byte-per-page summary of the CPU's view of the 4 pages. */
static void snapshot(long fd, const char *who)
{
	uint8_t s[NPAGES];
	memset(s, 0xA5, sizeof s);
	long r = hmm_snapshot(fd, buf, NPAGES, s);
	if (r != 0) {
		kout("  %s SNAPSHOT failed: %s\n", who, hmm_errname(r));
		problems++;
		return;
	}
	kout("  %s SNAPSHOT: page 0 %s, page 1 %s, page 2 %s, page 3 %s\n", who, hmm_prot_name(s[0]),
	     hmm_prot_name(s[1]), hmm_prot_name(s[2]), hmm_prot_name(s[3]));
}

static uint32_t *page(int p) { return buf + (size_t)p * HMM_WORDS_PER_PAGE; }

/* sum of the 1024 words of page p, read by the CPU */
static uint64_t page_sum(int p)
{
	const volatile uint32_t *w = page(p);
	uint64_t s = 0;
	for (size_t i = 0; i < HMM_WORDS_PER_PAGE; i++)
		s += w[i];
	return s;
}

static const char *held(long r)
{
	return r == -EPERM ? "-EPERM: the device still holds it ATOMIC" : r == 0 ? "0: the device holds nothing there"
										    : hmm_errname(r);
}

int main(void)
{
	int memkernel = kt_is_memkernel();
	say("Device-exclusive access, step by step\n"
	    "=====================================\n"
	    "An accelerator that shares our address space (like a GPU with SVM) sometimes needs a\n"
	    "page all to itself, for example to run atomic operations the CPU cannot see. The kernel\n"
	    "then replaces the page's entry in our page table by an 'exclusive' entry: not present,\n"
	    "so the next CPU access to the page faults, but still pointing at the same frame. The\n"
	    "fault gives the page back to the CPU and tells the device to forget it.\n\n");

	/* Step 1 */
	say("Step 1. We map 4 pages of private anonymous memory and write every 32-bit word:\n"
	    "        page 0 holds 1000s, page 1 2000s, page 2 3000s, page 3 4000s.\n"
	    "        Each first write faults in a fresh frame; the PTEs end up present and writable.\n");
	buf = hmm_map(NPAGES);
	mirror = hmm_map_touched(NPAGES, 0);
	if (!buf || !mirror) {
		say("mmap failed\n");
		return 1;
	}
	for (int p = 0; p < NPAGES; p++)
		for (size_t i = 0; i < HMM_WORDS_PER_PAGE; i++)
			page(p)[i] = 1000u * (uint32_t)(p + 1);
	kout("        buffer at %p; page 0 starts at %p, page 3 at %p\n", (void *)buf, (void *)page(0),
	     (void *)page(3));
	dump("after step 1: four ordinary pages");

	dev = hmm_open(0);
	if (dev < 0) {
		kout("There is no /dev/hmm_dmirror0 here (open returned %s): this kernel has no emulated\n"
		     "accelerator, so the demonstration stops after step 1. Boot memkernel to see the rest.\n",
		     hmm_errname(dev));
		return memkernel ? 1 : 0;
	}
	snapshot(dev, "       ");

	/* Step 2 */
	say("Step 2. The device asks for pages 0 and 1 exclusively (ioctl HMM_DMIRROR_EXCLUSIVE).\n"
	    "        For each page the kernel faults it in writable, locks the frame, tells every\n"
	    "        other listener (MMU notifier, event 'Exclusive'), swaps the PTE for an exclusive\n"
	    "        entry, and hands the locked frame to the driver, which maps it ATOMIC in the\n"
	    "        device's own page table and unlocks it. The device then reads the pages back.\n");
	uint64_t cpages = 0;
	long r = hmm_exclusive(dev, buf, 2, mirror, &cpages);
	kout("        EXCLUSIVE returned %s, pages handled: %lu; the device read word 0 of page 0 = %u "
	     "and of page 1 = %u\n",
	     hmm_errname(r), (unsigned long)cpages, mirror[0], mirror[HMM_WORDS_PER_PAGE]);
	check(r == 0 && cpages == 2, "EXCLUSIVE of pages 0-1 should succeed with 2 pages");
	check(mirror[0] == 1000 && mirror[HMM_WORDS_PER_PAGE] == 2000, "the device should read 1000 and 2000");
	r = hmm_check_exclusive(dev, buf, 2);
	kout("        CHECK_EXCLUSIVE(pages 0-1) = %s\n", held(r));
	check(r == -EPERM, "the device should hold pages 0-1");
	snapshot(dev, "       ");
	dump("after step 2: pages 0-1 are exclusive entries, the device maps them ATOMIC");

	/* Step 3 */
	say("Step 3. The CPU reads one word of page 0. The PTE is not present, so this faults. The\n"
	    "        fault handler sees the exclusive entry, takes the frame lock (waiting if the\n"
	    "        driver still had it), tells the device to drop the page (event 'Clear'), and\n"
	    "        writes back a present PTE for the same frame. Then the read is retried.\n");
	uint32_t v = *(volatile uint32_t *)page(0);
	long r0 = hmm_check_exclusive(dev, page(0), 1);
	long r1 = hmm_check_exclusive(dev, page(1), 1);
	kout("        the CPU read %u; CHECK_EXCLUSIVE(page 0) = %s\n", v, held(r0));
	kout("        CHECK_EXCLUSIVE(page 1) = %s\n", held(r1));
	check(v == 1000, "the CPU should read 1000 from page 0");
	check(r0 == 0, "the fault should have revoked the device's mapping of page 0");
	check(r1 == -EPERM, "page 1 was not touched: the device should still hold it");
	snapshot(dev, "       ");
	dump("after step 3: page 0 is back to normal, page 1 still exclusive");

	/* Step 4 */
	say("Step 4. fork(). The child must never inherit an exclusive entry: fork first gives page 1\n"
	    "        back (as a fault would: lock, notify the device, present PTE), and then shares\n"
	    "        all pages copy-on-write: parent and child PTEs both become read-only, pointing\n"
	    "        at the same frames. The child prints its own dump, writes page 1 (which copies\n"
	    "        it), and exits; then the parent prints its dump.\n");
	long pid = k_fork();
	if (pid == 0) {
		long cdev = hmm_open(0); /* the child's own mirror of its own address space */
		say("\n        [child] my view right after fork:\n");
		if (cdev >= 0)
			snapshot(cdev, "[child]");
		dump("the CHILD right after fork: no exclusive entry, pages shared read-only");
		volatile uint32_t *w = page(1);
		for (size_t i = 0; i < HMM_WORDS_PER_PAGE; i++)
			w[i] = 9999;
		kout("        [child] I wrote 9999 over page 1: the write fault copied the page for me.\n");
		if (cdev >= 0)
			snapshot(cdev, "[child]");
		k_exit(page_sum(1) == 9999ULL * HMM_WORDS_PER_PAGE && page_sum(0) == 1000ULL * HMM_WORDS_PER_PAGE ? 0
														      : 1);
	}
	if (pid < 0) {
		kout("fork failed: %s\n", kt_errname(pid));
		return 1;
	}
	int st = 0;
	kt_reap(pid, &st);
	check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child should see its own data and exit 0");
	kout("        [parent] the child exited (status %d). CHECK_EXCLUSIVE(page 1) = %s\n",
	     WIFEXITED(st) ? WEXITSTATUS(st) : -1, held(hmm_check_exclusive(dev, page(1), 1)));
	check(hmm_check_exclusive(dev, buf, NPAGES) == 0, "fork should have revoked the device's page 1");
	kout("        [parent] word 0 of page 1 is still %u: the child's 9999 went to its own copy.\n",
	     *(volatile uint32_t *)page(1));
	check(*(volatile uint32_t *)page(1) == 2000, "the parent's page 1 should still hold 2000");
	snapshot(dev, "[parent]");
	dump("the PARENT after fork: its PTEs are read-only until it writes");

	/* Step 5 */
	kout("Step 5. The device and the CPU take turns adding 1 to every word of page 2, %d times each.\n"
	     "        A process cannot run while its own ioctl runs, so 'racing' here means the page\n"
	     "        moves back and forth: the device's ATOMIC_ADD first makes the page exclusive\n"
	     "        (a device fault, counted in cmd.faults), and the CPU's next increment faults it\n"
	     "        back. Nothing may be lost on the way: the final sum must be exact.\n",
	     TURNS);
	unsigned long dev_faults = 0;
	int add_errors = 0;
	volatile uint32_t *w2 = page(2);
	for (int t = 0; t < TURNS; t++) {
		struct hmm_dmirror_cmd c;
		if (hmm_atomic_add(dev, page(2), 1, 1, &c) != 0)
			add_errors++;
		dev_faults += c.faults;
		for (size_t i = 0; i < HMM_WORDS_PER_PAGE; i++)
			w2[i] = w2[i] + 1;
	}
	kout("        %d ATOMIC_ADDs (%d failed), the device had to fault the page in %lu times;\n"
	     "        word 0 of page 2 is now %u (3000 + %d + %d).\n",
	     TURNS, add_errors, dev_faults, w2[0], TURNS, TURNS);
	check(add_errors == 0, "every ATOMIC_ADD should succeed");
	check(dev_faults >= TURNS, "the device should fault every turn (the CPU took the page back each time)");
	/* Leave the device holding page 2 for the last dump. */
	struct hmm_dmirror_cmd c;
	check(hmm_atomic_add(dev, page(2), 1, 0, &c) == 0, "a last ATOMIC_ADD(+0) should succeed");
	snapshot(dev, "       ");
	dump("after step 5: the device holds page 2 (after a last ATOMIC_ADD of 0)");

	/* Step 6 */
	say("Step 6. Final sums, read by the CPU (which gives page 2 back one last time):\n");
	uint64_t want[NPAGES] = { 1000ULL * HMM_WORDS_PER_PAGE, 2000ULL * HMM_WORDS_PER_PAGE,
				  (3000ULL + 2 * TURNS) * HMM_WORDS_PER_PAGE, 4000ULL * HMM_WORDS_PER_PAGE };
	for (int p = 0; p < NPAGES; p++) {
		uint64_t s = page_sum(p);
		kout("        page %d: sum %llu, expected %llu  %s\n", p, (unsigned long long)s,
		     (unsigned long long)want[p], s == want[p] ? "ok" : "WRONG");
		if (s != want[p])
			problems++;
	}
	check(hmm_check_exclusive(dev, buf, NPAGES) == 0, "after the CPU read everything the device holds nothing");
	k_close((int)dev);
	if (problems) {
		kout("\n%d check(s) failed.\n", problems);
		return 1;
	}
	say("\nEvery check passed.\n");
	return 0;
}
