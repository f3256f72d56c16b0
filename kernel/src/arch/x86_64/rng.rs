//! Random bytes: the CPU's RDRAND instruction when it has one (`-cpu max` under QEMU
//! does), else an xorshift generator seeded from the TSC. Not cryptographic when the
//! fallback is used; enough for `getrandom` in a teaching kernel.

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::random::RdRand;

/// The fallback generator's state (0: not seeded yet).
static STATE: AtomicU64 = AtomicU64::new(0);

/// Fill `buf` with random bytes.
pub fn fill(buf: &mut [u8]) {
    let rdrand = RdRand::new();
    for chunk in buf.chunks_mut(8) {
        let word = rdrand.and_then(|r| r.get_u64()).unwrap_or_else(fallback);
        chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
    }
}

/// xorshift64*, seeded from the TSC on first use.
fn fallback() -> u64 {
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        x = super::tsc::read() | 1;
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    STATE.store(x, Ordering::Relaxed);
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}
