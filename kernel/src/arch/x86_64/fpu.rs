//! The FPU/SSE state of user programs.
//!
//! The kernel itself is built soft-float and never touches the x87/SSE registers, but
//! user programs do (musl's `printf` and `memset` use SSE). So we enable SSE at boot
//! and give each process a 512-byte `fxsave` area: saved when it leaves the CPU,
//! restored when it comes back (eager switching, the simplest correct scheme).

use core::arch::asm;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};

/// One `fxsave` image. The CPU requires 16-byte alignment.
#[repr(C, align(16))]
#[derive(Clone)]
pub struct FpuState([u8; 512]);

impl Default for FpuState {
    /// The state after `fninit` with SSE defaults: x87 control word 0x037F (all
    /// exceptions masked, double-extended precision), MXCSR 0x1F80 (all masked).
    fn default() -> Self {
        let mut s = [0u8; 512];
        s[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
        s[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        FpuState(s)
    }
}

impl FpuState {
    /// Save the CPU's current x87/SSE registers here.
    pub fn save(&mut self) {
        // SAFETY: fxsave64 writes 512 bytes to a 16-byte-aligned buffer, which `self` is;
        // SSE was enabled by init().
        unsafe { asm!("fxsave64 [{}]", in(reg) self.0.as_mut_ptr(), options(nostack)) };
    }

    /// The 512 bytes of the image (what a signal frame carries to user space).
    pub fn as_bytes(&self) -> &[u8; 512] {
        &self.0
    }

    /// An image from untrusted bytes (a signal frame that user code may have changed):
    /// MXCSR is limited to the bits this CPU supports (its MXCSR_MASK), because
    /// `fxrstor` with a reserved MXCSR bit set raises #GP in the kernel (Linux
    /// `fpu__restore_sig` masks it the same way). Nothing else in the image can fault.
    pub fn from_untrusted(bytes: &[u8; 512]) -> FpuState {
        let mut s = FpuState(*bytes);
        let mxcsr = u32::from_le_bytes(s.0[24..28].try_into().expect("4 bytes"));
        let masked = mxcsr & mxcsr_mask();
        s.0[24..28].copy_from_slice(&masked.to_le_bytes());
        // MXCSR_MASK itself is ignored by fxrstor; keep it tidy.
        s.0[28..32].copy_from_slice(&0u32.to_le_bytes());
        s
    }

    /// Load the x87/SSE registers from here.
    pub fn restore(&self) {
        // SAFETY: fxrstor64 reads 512 bytes from a 16-byte-aligned buffer holding an
        // image made by fxsave64 or Default (valid reserved bits and MXCSR).
        unsafe { asm!("fxrstor64 [{}]", in(reg) self.0.as_ptr(), options(nostack, readonly)) };
    }
}

/// The MXCSR bits this CPU supports (from `fxsave`'s MXCSR_MASK field; 0 there means
/// the architectural default 0xFFBF).
fn mxcsr_mask() -> u32 {
    static MASK: spin::Once<u32> = spin::Once::new();
    *MASK.call_once(|| {
        let mut probe = FpuState([0; 512]);
        // Save the live state first and put it back: probing must not change it.
        let mut live = FpuState([0; 512]);
        live.save();
        probe.save();
        live.restore();
        match u32::from_le_bytes(probe.0[28..32].try_into().expect("4 bytes")) {
            0 => 0xffbf,
            m => m,
        }
    })
}

/// Enable SSE for user code: CR0.EM off, CR0.MP on, CR4.OSFXSR and CR4.OSXMMEXCPT on.
pub fn init() {
    // SAFETY: turning on SSE support changes no memory and only affects instructions
    // the kernel (soft-float) never executes.
    unsafe {
        Cr0::update(|f| {
            f.remove(Cr0Flags::EMULATE_COPROCESSOR);
            f.insert(Cr0Flags::MONITOR_COPROCESSOR);
        });
        Cr4::update(|f| f.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE));
    }
}
