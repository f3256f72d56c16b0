//! Who may see an allocation fail, the reserve kept for those who may not, and
//! allocation-failure injection (Linux's `gfp` flags, `PF_MEMALLOC` reserves and
//! `lib/fault-inject.c`'s `fail-nth`).
//!
//! Every allocation a user program can drive (a syscall, a page fault) is *ordinary*: it
//! may fail, and its caller answers ENOMEM (a fault: SIGBUS). Rust's `Vec::push`,
//! `Box::new` and friends cannot report a failure (they panic), so the code a user drives
//! uses the fallible forms instead (`try_reserve`, `Box::try_new`, `Arc::try_new`, and
//! the helpers in [`super::fallible`]).
//!
//! Two kinds of allocation are *reserved* instead: they may use the last
//! [`RESERVE_FRAMES`] frames, which ordinary allocations leave alone, and injection never
//! fails them. They are the few that have no way to fail, each small and bounded:
//! - everything an interrupt handler allocates (Linux `GFP_ATOMIC`'s access to reserves);
//! - code inside [`with_reserve`] (Linux `memalloc_noreclaim_save`), used only past a
//!   point of no return: tearing a process down, freeing memory. It must not sleep
//!   (a debug build checks: [`crate::sync::might_sleep`] panics inside it).
//!
//! So a program that takes every frame it can gets ENOMEM while the kernel keeps the
//! reserve for its own bookkeeping, and never panics for want of memory.
//!
//! **Failure injection** (Linux `/proc/<pid>/fail-nth`, Documentation/fault-injection):
//! a task writes N to `/proc/self/fail-nth`; its N-th ordinary allocation from then on
//! (heap or frame) fails, and the file reads 0 afterwards (a positive number: not yet
//! injected). Sweeping N = 1, 2, ... over one syscall until the file stays positive
//! fails each allocation that syscall makes, in turn: each must end in a clean error
//! and nothing leaked (user test `t_failnth`; `fuzz_sys --fail-nth` mixes it in).
//!
//! **Failing a share of all allocations** (Linux `failslab` and `make-it-fail`): a task
//! writes 1 to `/proc/self/make-it-fail` (its children inherit it), and the attributes
//! under `/sys/kernel/debug/failslab/` say how often its ordinary allocations fail:
//! `probability` (percent, 0 = off, the default), `interval` (only every interval-th
//! candidate) and `times` (how many failures in all, -1 = no limit). Linux's
//! `task-filter` is always on here: only make-it-fail tasks are failed. With it, whole
//! test programs run with allocations failing at random (scripts/failslab.sh): they
//! may fail, the kernel must not, nor leak.
//!
//! The state is per CPU (one CPU today): the running task's countdown and make-it-fail
//! live here while it runs and in its `Process` while it does not (the scheduler calls
//! [`switch_in`] / [`switch_out`]).

use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};

/// Frames ordinary allocations leave free (2 MiB): the kernel's reserve for interrupt
/// handlers and teardown (Linux's `min_free_kbytes` watermark).
pub const RESERVE_FRAMES: usize = 512;

/// How deep the running code is inside [`with_reserve`] or an interrupt handler.
static RESERVE_DEPTH: AtomicU32 = AtomicU32::new(0);

/// How deep the running code is inside [`without_injection`].
static NO_INJECTION: AtomicU32 = AtomicU32::new(0);

/// The running task's injection countdown (Linux `current->fail_nth`): 0 = off.
static FAIL_NTH: AtomicU32 = AtomicU32::new(0);

/// The running task's `make-it-fail` (Linux `current->make_it_fail`).
static MAKE_IT_FAIL: AtomicBool = AtomicBool::new(false);

/// Linux's failslab attributes (see the module comment).
pub struct FailAttrs {
    pub probability: AtomicU32,
    pub interval: AtomicU32,
    pub times: AtomicI64,
    count: AtomicU64,
    random: AtomicU64,
}

/// The one set of attributes (`/sys/kernel/debug/failslab/`), Linux's defaults.
pub static FAILSLAB: FailAttrs = FailAttrs {
    probability: AtomicU32::new(0),
    interval: AtomicU32::new(1),
    times: AtomicI64::new(1),
    count: AtomicU64::new(0),
    random: AtomicU64::new(0x9e37_79b9_7f4a_7c15),
};

impl FailAttrs {
    /// Linux `should_fail_ex` after its fail_nth part, for a make-it-fail task.
    fn should_fail(&self) -> bool {
        let probability = self.probability.load(Ordering::Relaxed);
        if probability == 0 || self.times.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let interval = u64::from(self.interval.load(Ordering::Relaxed));
        if interval > 1 {
            let count = self.count.fetch_add(1, Ordering::Relaxed) + 1;
            if !count.is_multiple_of(interval) {
                return false;
            }
        }
        if u64::from(probability) <= self.next_random() % 100 {
            return false;
        }
        self.count_one();
        true
    }

    /// One failure injected: `times` goes down unless it is -1 (no limit).
    fn count_one(&self) {
        let times = self.times.load(Ordering::Relaxed);
        if times > 0 {
            self.times.store(times - 1, Ordering::Relaxed);
        }
    }

    /// xorshift64* with a fixed seed: the same boot fails the same allocations (timing
    /// permitting), so a failure found this way can be reproduced.
    fn next_random(&self) -> u64 {
        let mut x = self.random.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.random.store(x, Ordering::Relaxed);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11
    }
}

/// Set when an injected failure happened, until [`take_injected`] reads it.
static INJECTED: AtomicBool = AtomicBool::new(false);

/// What kind of allocation is being made now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// May fail; leaves the reserve alone; injection may fail it.
    Ordinary,
    /// May use the reserve; never injected (interrupt handlers, [`with_reserve`]).
    Reserved,
}

/// The kind of an allocation made right now.
pub fn current_kind() -> Kind {
    if RESERVE_DEPTH.load(Ordering::Relaxed) > 0 {
        Kind::Reserved
    } else {
        Kind::Ordinary
    }
}

/// Run `f` with access to the reserve and without injection (Linux
/// `memalloc_noreclaim_save`/`restore`). Only for small, bounded allocations past a point
/// of no return; `f` must not sleep.
pub fn with_reserve<R>(f: impl FnOnce() -> R) -> R {
    let _scope = ReserveScope::enter();
    f()
}

/// The reserve is open while one of these lives (see [`with_reserve`]); the arch
/// interrupt path opens one around a handler.
pub struct ReserveScope(());

impl ReserveScope {
    pub fn enter() -> ReserveScope {
        RESERVE_DEPTH.fetch_add(1, Ordering::Relaxed);
        ReserveScope(())
    }
}

impl Drop for ReserveScope {
    fn drop(&mut self) {
        RESERVE_DEPTH.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether the running code is inside a reserve scope (`might_sleep` refuses to sleep
/// there: the scope is per CPU and would leak to the next task).
pub fn in_reserve_scope() -> bool {
    RESERVE_DEPTH.load(Ordering::Relaxed) > 0
}

/// Whether this allocation is to fail by injection (Linux `should_fail_ex`, the
/// `fail_nth` part). Called once per ordinary allocation by the heap and the frame
/// allocator; counts the task's countdown down.
pub fn should_fail(kind: Kind) -> bool {
    if kind == Kind::Reserved || NO_INJECTION.load(Ordering::Relaxed) > 0 {
        return false;
    }
    let n = FAIL_NTH.load(Ordering::Relaxed);
    let fail = if n > 0 {
        FAIL_NTH.store(n - 1, Ordering::Relaxed);
        if n == 1 {
            FAILSLAB.count_one(); // Linux's `fail:` path counts it against `times` too
        }
        n == 1
    } else {
        MAKE_IT_FAIL.load(Ordering::Relaxed) && FAILSLAB.should_fail()
    };
    if fail {
        INJECTED.store(true, Ordering::Relaxed);
    }
    fail
}

/// The running task's make-it-fail (`/proc/self/make-it-fail` reads it).
pub fn make_it_fail() -> bool {
    MAKE_IT_FAIL.load(Ordering::Relaxed)
}

/// Set the running task's make-it-fail (`/proc/self/make-it-fail` writes it).
pub fn set_make_it_fail(on: bool) {
    MAKE_IT_FAIL.store(on, Ordering::Relaxed);
}

/// Run `f` without failure injection: for the frames an allocation takes on behalf of
/// one that was already asked (the heap's growth). `f` must not sleep (per CPU).
pub fn without_injection<R>(f: impl FnOnce() -> R) -> R {
    NO_INJECTION.fetch_add(1, Ordering::Relaxed);
    let r = f();
    NO_INJECTION.fetch_sub(1, Ordering::Relaxed);
    r
}

/// Whether an injected failure happened since the last call (clears it). The user
/// page-fault path asks: an injected failure is retried (Linux
/// `pagefault_out_of_memory` returns and the fault is taken again), a real one kills.
pub fn take_injected() -> bool {
    INJECTED.swap(false, Ordering::Relaxed)
}

/// The running task's countdown (`/proc/self/fail-nth` reads it).
pub fn fail_nth() -> u32 {
    FAIL_NTH.load(Ordering::Relaxed)
}

/// Set the running task's countdown (`/proc/self/fail-nth` writes it).
pub fn set_fail_nth(n: u32) {
    FAIL_NTH.store(n, Ordering::Relaxed);
}

/// A task's injection state while it is off the CPU (kept in its `Process`).
#[derive(Default)]
pub struct TaskFaults {
    fail_nth: AtomicU32,
    make_it_fail: AtomicBool,
}

impl TaskFaults {
    /// A child's state: make-it-fail is inherited (Linux copies the task struct), the
    /// countdown is not (Linux clears `fail_nth` in `dup_task_struct`).
    pub fn for_child() -> TaskFaults {
        TaskFaults {
            fail_nth: AtomicU32::new(0),
            make_it_fail: AtomicBool::new(make_it_fail()),
        }
    }
}

/// The scheduler switches to a task whose saved state is `saved`.
pub fn switch_in(saved: &TaskFaults) {
    INJECTED.store(false, Ordering::Relaxed);
    FAIL_NTH.store(saved.fail_nth.load(Ordering::Relaxed), Ordering::Relaxed);
    MAKE_IT_FAIL.store(
        saved.make_it_fail.load(Ordering::Relaxed),
        Ordering::Relaxed,
    );
}

/// The running task leaves the CPU: keep its state in `saved`.
pub fn switch_out(saved: &TaskFaults) {
    saved
        .fail_nth
        .store(FAIL_NTH.swap(0, Ordering::Relaxed), Ordering::Relaxed);
    saved.make_it_fail.store(
        MAKE_IT_FAIL.swap(false, Ordering::Relaxed),
        Ordering::Relaxed,
    );
}

/// The running task is gone: nothing of its state stays on the CPU.
pub fn task_gone() {
    FAIL_NTH.store(0, Ordering::Relaxed);
    MAKE_IT_FAIL.store(false, Ordering::Relaxed);
}
