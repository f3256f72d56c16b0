//! A stack backtrace for panic reports: the return addresses of the calls that led
//! here, found by following the saved frame pointers (debug builds keep them:
//! `force-frame-pointers` in Cargo.toml's `profile.dev`; release builds do not, and the
//! panic handler does not walk there). Turn them into function names
//! with `addr2line -f -e target/x86_64-target/debug/kernel ADDR...` (the runner does
//! it for you when it sees a panic).

/// At most this many frames are reported.
const MAX_FRAMES: usize = 24;
/// A caller's frame lies above its callee's, on the same stack: never further than this.
const MAX_FRAME_GAP: u64 = 64 * 1024;

/// Call `f` with each return address on the current stack, innermost first.
///
/// Only a chain that looks like one stack is followed: each saved frame pointer must be
/// 8-aligned, in the kernel half, above the previous one and close to it. The walk reads
/// memory on the current stack only while that holds.
pub fn walk(mut f: impl FnMut(u64)) {
    let mut rbp: u64;
    // SAFETY: reads the frame-pointer register; no memory access, no side effect.
    unsafe { core::arch::asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack)) };
    for _ in 0..MAX_FRAMES {
        if !rbp.is_multiple_of(8) || !(0xffff_8000_0000_0000..=u64::MAX - 16).contains(&rbp) {
            return;
        }
        // SAFETY: rbp passed the checks above: it is the frame pointer of this function
        // or a saved one that lies on the same kernel stack above it (mapped, since the
        // stack is mapped from the current frame to its top), holding [saved rbp, return
        // address].
        let (next, ret) = unsafe {
            let p = rbp as *const u64;
            (p.read_volatile(), p.add(1).read_volatile())
        };
        if ret == 0 {
            return;
        }
        f(ret);
        if next <= rbp || next - rbp > MAX_FRAME_GAP {
            return;
        }
        rbp = next;
    }
}
