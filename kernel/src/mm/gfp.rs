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
//! The state is per CPU (one CPU today): the running task's countdown lives here while
//! it runs and in its `Process` while it does not (the scheduler calls [`switch_in`] /
//! [`switch_out`]).

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// Frames ordinary allocations leave free (2 MiB): the kernel's reserve for interrupt
/// handlers and teardown (Linux's `min_free_kbytes` watermark).
pub const RESERVE_FRAMES: usize = 512;

/// How deep the running code is inside [`with_reserve`] or an interrupt handler.
static RESERVE_DEPTH: AtomicU32 = AtomicU32::new(0);

/// The running task's injection countdown (Linux `current->fail_nth`): 0 = off.
static FAIL_NTH: AtomicU32 = AtomicU32::new(0);

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
    if kind == Kind::Reserved {
        return false;
    }
    let n = FAIL_NTH.load(Ordering::Relaxed);
    if n == 0 {
        return false;
    }
    FAIL_NTH.store(n - 1, Ordering::Relaxed);
    if n == 1 {
        INJECTED.store(true, Ordering::Relaxed);
    }
    n == 1
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

/// The scheduler switches to a task whose saved countdown is `saved`.
pub fn switch_in(saved: &AtomicU32) {
    INJECTED.store(false, Ordering::Relaxed);
    FAIL_NTH.store(saved.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// The running task leaves the CPU: keep its countdown in `saved`.
pub fn switch_out(saved: &AtomicU32) {
    saved.store(FAIL_NTH.swap(0, Ordering::Relaxed), Ordering::Relaxed);
}
