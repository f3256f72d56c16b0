//! The heap: a first-fit free list (`linked_list_allocator`) over memory obtained by
//! moving the program break with brk(2), the way a C malloc does for small programs.
//!
//! Nothing happens at start-up: the first allocation asks for the break (`brk(0)`) and
//! grows it by at least [`GROW_MIN`]; later allocations that do not fit grow it again
//! (the new memory directly follows the old, so the free list just extends). A program
//! that never allocates makes no `brk` call at all. When the kernel cannot move the
//! break, the allocation fails (a Rust allocation failure panics: exit status 101).

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::{null_mut, NonNull};
use core::sync::atomic::{AtomicBool, Ordering};

use linked_list_allocator::Heap;

use crate::sys;

/// The heap grows in steps of at least this much (whole pages).
pub const GROW_MIN: usize = 64 * 1024;
const PAGE_SIZE: usize = 4096;

/// The global allocator, on brk.
pub struct BrkHeap {
    locked: AtomicBool,
    inner: UnsafeCell<Inner>,
}

struct Inner {
    heap: Heap,
    /// The break when the heap started (0: not started yet).
    start: usize,
    /// The current break: the heap owns `start..end`.
    end: usize,
}

// SAFETY: `inner` is only reached through `with`, which holds the `locked` spin lock, so
// no two threads (should a program ever have several) touch it at once.
unsafe impl Sync for BrkHeap {}

#[global_allocator]
static HEAP: BrkHeap = BrkHeap {
    locked: AtomicBool::new(false),
    inner: UnsafeCell::new(Inner {
        heap: Heap::empty(),
        start: 0,
        end: 0,
    }),
};

impl BrkHeap {
    /// Run `f` with the heap locked.
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        // SAFETY: we hold the lock, so this is the only reference to `inner`.
        let r = f(unsafe { &mut *self.inner.get() });
        self.locked.store(false, Ordering::Release);
        r
    }
}

impl Inner {
    /// Move the break up far enough for `layout` (plus the free list's bookkeeping) and
    /// hand the new memory to the free list. False if the kernel refused.
    fn grow(&mut self, layout: Layout) -> bool {
        if self.start == 0 {
            // SAFETY: brk(0) only asks for the current break.
            match unsafe { sys::brk(0) } {
                Ok(cur) if cur != 0 => {
                    self.start = cur;
                    self.end = cur;
                }
                _ => return false,
            }
        }
        let want = layout
            .size()
            .saturating_add(layout.align())
            .saturating_add(64);
        let want = want.max(GROW_MIN).next_multiple_of(PAGE_SIZE);
        let Some(new_end) = self.end.checked_add(want) else {
            return false;
        };
        // SAFETY: the heap owns everything above the initial break; raising the break
        // maps new memory there and unmaps nothing.
        match unsafe { sys::brk(new_end) } {
            Ok(got) if got >= new_end => {}
            _ => return false,
        }
        if self.end == self.start {
            // SAFETY: `start..new_end` was just mapped for us by brk, nothing else uses
            // it, and it stays mapped for the rest of the program (we never lower the
            // break). `init` is called once, on the empty heap.
            unsafe { self.heap.init(self.start as *mut u8, new_end - self.start) };
        } else {
            // SAFETY: `end..new_end` directly follows the memory the heap already owns
            // and was just mapped for us by brk, for good.
            unsafe { self.heap.extend(new_end - self.end) };
        }
        self.end = new_end;
        true
    }
}

// SAFETY: allocations come from the free list, which hands out non-overlapping blocks
// that fit `layout` inside memory the heap owns; `dealloc` returns exactly such blocks.
unsafe impl GlobalAlloc for BrkHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.with(|inner| {
            // At most: try, grow, try again (the new top of the heap fits `layout`).
            for _ in 0..2 {
                if inner.end != inner.start {
                    if let Ok(p) = inner.heap.allocate_first_fit(layout) {
                        return p.as_ptr();
                    }
                }
                if !inner.grow(layout) {
                    break;
                }
            }
            null_mut()
        })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(ptr) = NonNull::new(ptr) {
            // SAFETY: GlobalAlloc's contract: `ptr` came from `alloc` with this layout.
            self.with(|inner| unsafe { inner.heap.deallocate(ptr, layout) });
        }
    }
}

/// (bytes in use, bytes the heap owns) — for programs that want to show it.
pub fn usage() -> (usize, usize) {
    HEAP.with(|inner| (inner.heap.used(), inner.end - inner.start))
}
