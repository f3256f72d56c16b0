//! The signal frame on the user stack: written for a handler (Linux
//! `x64_setup_rt_frame`) and read back by `rt_sigreturn` (Linux `sys_rt_sigreturn`),
//! laid out exactly as Linux's (`struct rt_sigframe`, `struct ucontext`,
//! `struct sigcontext_64`) so C libraries' `ucontext_t` reads it.
#![forbid(unsafe_code)]

use super::{force_sigsegv, SigAction, SigInfo, SigSet, SA_RESTORER};
use crate::arch::x86_64::fpu::FpuState;
use crate::arch::x86_64::trap::TrapFrame;
use crate::error::Errno;
use crate::proc::sched;
use crate::vm::uaccess;

/// Byte offsets in the signal frame (Linux `struct rt_sigframe`, `struct ucontext`,
/// `struct sigcontext_64`).
mod layout {
    /// pretcode (8) + ucontext (304) + siginfo (128).
    pub const FRAME: u64 = 8 + UCONTEXT + 128;
    pub const UCONTEXT: u64 = 304;
    pub const UC: u64 = 8;
    pub const INFO: u64 = 8 + UCONTEXT;
    /// In the ucontext.
    pub const MCONTEXT: usize = 40;
    pub const SIGMASK: usize = 296;
    pub const UC_SIGCONTEXT_SS: u64 = 0x2;
    pub const UC_STRICT_RESTORE_SS: u64 = 0x4;
    /// In the sigcontext: r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags
    /// (18 words), then cs/gs/fs/ss (4 x u16), err, trapno, oldmask, cr2, fpstate.
    pub const CSGSFS: usize = 18 * 8;
    pub const ERR: usize = 19 * 8;
    pub const TRAPNO: usize = 20 * 8;
    pub const OLDMASK: usize = 21 * 8;
    pub const CR2: usize = 22 * 8;
    pub const FPSTATE: usize = 23 * 8;
}

/// The 18 general registers in sigcontext order.
fn gregs(f: &TrapFrame) -> [u64; 18] {
    [
        f.r8, f.r9, f.r10, f.r11, f.r12, f.r13, f.r14, f.r15, f.rdi, f.rsi, f.rbp, f.rbx, f.rdx,
        f.rax, f.rcx, f.rsp, f.rip, f.rflags,
    ]
}

/// Write the signal frame for `info` on the user stack and point the registers at the
/// handler (Linux `x64_setup_rt_frame`).
pub(super) fn setup_frame(
    frame: &mut TrapFrame,
    info: &SigInfo,
    action: &SigAction,
    old_mask: SigSet,
) -> Result<(), Errno> {
    if action.flags & SA_RESTORER == 0 {
        // x86-64 has no default return trampoline: Linux fails the delivery.
        return Err(Errno::EFAULT);
    }
    // Below the red zone: the FPU image (64-aligned), then the frame, aligned so that
    // rsp + 8 is a multiple of 16 at the handler's first instruction.
    let fpstate = (frame.rsp.wrapping_sub(128).wrapping_sub(512)) & !63;
    let sp = ((fpstate.wrapping_sub(layout::FRAME)) & !15).wrapping_sub(8);
    let mut fpu = FpuState::default();
    fpu.save();
    uaccess::write_bytes(fpstate, fpu.as_bytes())?;

    let mut uc = [0u8; layout::UCONTEXT as usize];
    let put = |buf: &mut [u8], at: usize, v: u64| buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
    put(
        &mut uc,
        0,
        layout::UC_SIGCONTEXT_SS | layout::UC_STRICT_RESTORE_SS,
    );
    // uc_link 0; uc_stack: no alternate stack (ss_flags = SS_DISABLE = 2).
    uc[24..28].copy_from_slice(&2u32.to_le_bytes());
    let m = layout::MCONTEXT;
    for (i, v) in gregs(frame).iter().enumerate() {
        put(&mut uc, m + i * 8, *v);
    }
    let segs = (frame.cs & 0xffff) | ((frame.ss & 0xffff) << 48);
    put(&mut uc, m + layout::CSGSFS, segs);
    put(&mut uc, m + layout::ERR, frame.error_code);
    put(&mut uc, m + layout::TRAPNO, frame.vector);
    put(&mut uc, m + layout::OLDMASK, old_mask.0);
    put(&mut uc, m + layout::CR2, info.addr);
    put(&mut uc, m + layout::FPSTATE, fpstate);
    put(&mut uc, layout::SIGMASK, old_mask.0);

    uaccess::write_u64s(sp, &[action.restorer])?;
    uaccess::write_bytes(sp + layout::UC, &uc)?;
    uaccess::write_bytes(sp + layout::INFO, &info.to_bytes())?;

    frame.rdi = info.signo as u64;
    frame.rsi = sp + layout::INFO;
    frame.rdx = sp + layout::UC;
    frame.rax = 0;
    frame.rsp = sp;
    frame.rip = action.handler;
    // The handler starts with DF and TF clear (Linux clears DF, TF, RF).
    frame.rflags &= !((1 << 10) | (1 << 8) | (1 << 16));
    // And with a clean FPU state, MXCSR at its default.
    FpuState::default().restore();
    Ok(())
}

/// `rt_sigreturn()`: undo a signal frame (Linux `sys_rt_sigreturn`). The frame's
/// registers come from user memory and are trusted in nothing: the way back to user
/// mode forces CS/SS, masks RFLAGS and refuses a RIP outside user space; MXCSR is
/// masked before `fxrstor`. A frame that cannot be read ends the process with SIGSEGV.
pub fn sigreturn(frame: &mut TrapFrame) {
    if restore_frame(frame).is_err() {
        force_sigsegv(format_args!(
            "rt_sigreturn with an unreadable or forged frame at rsp {:#x}",
            frame.rsp
        ));
    }
}

fn restore_frame(frame: &mut TrapFrame) -> Result<(), Errno> {
    let uc_addr = frame.rsp.checked_sub(8).ok_or(Errno::EFAULT)? + layout::UC;
    let mut uc = [0u8; layout::UCONTEXT as usize];
    uaccess::read_bytes(uc_addr, &mut uc)?;
    let get = |at: usize| u64::from_le_bytes(uc[at..at + 8].try_into().expect("8 bytes"));
    let m = layout::MCONTEXT;
    let g: [u64; 18] = core::array::from_fn(|i| get(m + i * 8));
    // Linux ORs RPL 3 into the saved CS; any segment but the user code segment then
    // fails at `iretq` and the process gets SIGSEGV. Refuse it here instead.
    let cs = get(m + layout::CSGSFS) & 0xffff;
    if cs | 3 != crate::arch::x86_64::trap::user_code_selector() {
        return Err(Errno::EFAULT);
    }
    let fpstate = get(m + layout::FPSTATE);
    if fpstate != 0 {
        let mut bytes = [0u8; 512];
        uaccess::read_bytes(fpstate, &mut bytes)?;
        FpuState::from_untrusted(&bytes).restore();
    }
    [
        frame.r8,
        frame.r9,
        frame.r10,
        frame.r11,
        frame.r12,
        frame.r13,
        frame.r14,
        frame.r15,
        frame.rdi,
        frame.rsi,
        frame.rbp,
        frame.rbx,
        frame.rdx,
        frame.rax,
        frame.rcx,
        frame.rsp,
        frame.rip,
        frame.rflags,
    ] = g;
    // Not a syscall any more: never "restarted".
    frame.orig_rax = u64::MAX;
    let mask = SigSet(get(layout::SIGMASK)).without_unblockable();
    sched::current().with(|i| i.signals.blocked = mask);
    Ok(())
}
