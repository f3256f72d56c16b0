//! POSIX signals, first part (Linux `kernel/signal.c`, `arch/x86/kernel/signal.c`,
//! `signal_64.c`): actions (`rt_sigaction`), the blocked mask (`rt_sigprocmask`),
//! sending (`kill`, faults, `alarm`), default actions, and delivery to a user handler
//! with a frame laid out exactly as Linux's, undone by `rt_sigreturn`.
//!
//! ```text
//!  send: pending |= sig, wake the target        (ignored signals are dropped at once)
//!  return to user (trap::exit_to_user) -> deliver():
//!     lowest pending, unblocked signal:
//!       SIG_IGN / default "ignore"  -> dropped
//!       default "terminate"/"core"  -> the process ends (core: status | 0x80)
//!       a handler                   -> rt_sigframe on the user stack, below the red zone:
//!
//!   user stack, high
//!   | ...the interrupted code's stack... |
//!   | 128-byte red zone (left alone)     |
//!   | fxsave image (512 B, 64-aligned)   |  <- uc.uc_mcontext.fpstate
//!   | siginfo_t (128 B)                  |  <- rsi
//!   | ucontext (uc_flags, uc_link,       |  <- rdx
//!   |   uc_stack, sigcontext, uc_sigmask)|
//!   | return address = sa_restorer       |  <- rsp (rsp + 8 is 16-aligned, as after a call)
//!   low            handler(rdi = sig, rsi = &info, rdx = &uc), rip = handler
//!
//!  rt_sigreturn (the restorer calls it): read the ucontext back, trusting nothing:
//!  CS/SS forced, RFLAGS masked, RIP checked on the way out, MXCSR masked.
//! ```
#![deny(unsafe_code)]

use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;

use super::{sched, ExitStatus, Pid, Process};
use crate::arch::x86_64::fpu::FpuState;
use crate::arch::x86_64::trap::TrapFrame;
use crate::error::Errno;
use crate::sync::SpinLock;
use crate::vm::uaccess;

/// Signal numbers (Linux x86-64).
pub const SIGHUP: i32 = 1;
pub const SIGINT: i32 = 2;
pub const SIGQUIT: i32 = 3;
pub const SIGILL: i32 = 4;
pub const SIGTRAP: i32 = 5;
pub const SIGABRT: i32 = 6;
pub const SIGBUS: i32 = 7;
pub const SIGFPE: i32 = 8;
pub const SIGKILL: i32 = 9;
pub const SIGUSR1: i32 = 10;
pub const SIGSEGV: i32 = 11;
pub const SIGUSR2: i32 = 12;
pub const SIGPIPE: i32 = 13;
pub const SIGALRM: i32 = 14;
pub const SIGTERM: i32 = 15;
pub const SIGCHLD: i32 = 17;
pub const SIGCONT: i32 = 18;
pub const SIGSTOP: i32 = 19;
pub const SIGTSTP: i32 = 20;
pub const SIGTTIN: i32 = 21;
pub const SIGTTOU: i32 = 22;
pub const SIGURG: i32 = 23;
pub const SIGXCPU: i32 = 24;
pub const SIGXFSZ: i32 = 25;
pub const SIGWINCH: i32 = 28;
pub const SIGSYS: i32 = 31;
/// Highest signal number (real-time signals are 32..=64).
pub const NSIG: i32 = 64;

/// `sa_handler` values.
const SIG_DFL: u64 = 0;
const SIG_IGN: u64 = 1;
/// `sa_flags` bits.
pub const SA_SIGINFO: u64 = 0x4;
pub const SA_RESTORER: u64 = 0x0400_0000;
pub const SA_ONSTACK: u64 = 0x0800_0000;
pub const SA_RESTART: u64 = 0x1000_0000;
pub const SA_NODEFER: u64 = 0x4000_0000;
pub const SA_RESETHAND: u64 = 0x8000_0000;

/// `si_code` values.
pub const SI_USER: i32 = 0;
pub const SI_KERNEL: i32 = 0x80;
pub const SI_TKILL: i32 = -6;
pub const SEGV_MAPERR: i32 = 1;
pub const SEGV_ACCERR: i32 = 2;

/// A set of signals: bit `sig - 1` (Linux `sigset_t`, 64 bits on x86-64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SigSet(pub u64);

impl SigSet {
    /// The set holding only `sig`.
    pub fn of(sig: i32) -> SigSet {
        SigSet(1 << (sig - 1))
    }
    /// Whether `sig` is in the set.
    pub fn has(self, sig: i32) -> bool {
        self.0 & (1 << (sig - 1)) != 0
    }
    /// SIGKILL and SIGSTOP can never be blocked, caught or ignored.
    pub fn without_unblockable(self) -> SigSet {
        SigSet(self.0 & !(SigSet::of(SIGKILL).0 | SigSet::of(SIGSTOP).0))
    }
}

/// One signal's disposition (Linux `struct k_sigaction`, the x86-64 layout of
/// `struct sigaction` as the kernel sees it: handler, flags, restorer, mask).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: SigSet,
}

impl SigAction {
    /// The 32 bytes `rt_sigaction` reads and writes.
    pub fn from_bytes(b: &[u8; 32]) -> SigAction {
        let w = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        SigAction {
            handler: w(0),
            flags: w(1),
            restorer: w(2),
            mask: SigSet(w(3)),
        }
    }
    /// As `rt_sigaction` writes it back.
    pub fn to_bytes(self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for (i, v) in [self.handler, self.flags, self.restorer, self.mask.0]
            .iter()
            .enumerate()
        {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        b
    }
}

/// What a signal does when nobody catches it (Linux `sig_kernel_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAction {
    Terminate,
    /// Terminate "with a core dump": the wait status gets the 0x80 bit (no file written).
    Core,
    Ignore,
    /// Stop: there is no job control here; treated as ignored.
    Stop,
}

/// The default action of `sig`.
pub fn default_action(sig: i32) -> DefaultAction {
    match sig {
        SIGCHLD | SIGCONT | SIGURG | SIGWINCH => DefaultAction::Ignore,
        SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU => DefaultAction::Stop,
        SIGQUIT | SIGILL | SIGTRAP | SIGABRT | SIGBUS | SIGFPE | SIGSEGV | SIGXCPU | SIGXFSZ
        | SIGSYS => DefaultAction::Core,
        _ => DefaultAction::Terminate,
    }
}

/// Who sent a signal and why (what goes into `siginfo_t`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SigInfo {
    pub signo: i32,
    pub code: i32,
    /// kill/tkill: the sender.
    pub pid: Pid,
    /// Faults: the faulting address (`si_addr`).
    pub addr: u64,
}

impl SigInfo {
    /// The 128 bytes of `siginfo_t`.
    fn to_bytes(self) -> [u8; 128] {
        let mut b = [0u8; 128];
        b[0..4].copy_from_slice(&self.signo.to_le_bytes());
        b[8..12].copy_from_slice(&self.code.to_le_bytes());
        if self.addr != 0 {
            b[16..24].copy_from_slice(&self.addr.to_le_bytes());
        } else {
            b[16..20].copy_from_slice(&self.pid.to_le_bytes());
            // si_uid: 0 (root) at 20..24.
        }
        b
    }
}

/// A process's signal state (behind the process lock).
#[derive(Debug, Clone)]
pub struct Signals {
    actions: [SigAction; NSIG as usize],
    pub blocked: SigSet,
    pending: SigSet,
    info: [SigInfo; NSIG as usize],
    /// Tick at which SIGALRM is due (`alarm`, `setitimer(ITIMER_REAL)`), if any.
    pub alarm_at: Option<u64>,
    /// The real timer's reload value in ticks (0: one-shot).
    pub alarm_interval: u64,
}

impl Default for Signals {
    fn default() -> Self {
        Signals {
            actions: [SigAction::default(); NSIG as usize],
            blocked: SigSet::default(),
            pending: SigSet::default(),
            info: [SigInfo::default(); NSIG as usize],
            alarm_at: None,
            alarm_interval: 0,
        }
    }
}

impl Signals {
    /// The state a forked child starts with: the same actions and mask, nothing
    /// pending, no alarm (Linux `copy_sighand`, `fork` clears pending and alarms).
    pub fn for_child(&self) -> Signals {
        Signals {
            pending: SigSet::default(),
            alarm_at: None,
            alarm_interval: 0,
            ..self.clone()
        }
    }

    /// After execve: caught signals go back to the default (the handlers are gone with
    /// the old program); ignored ones stay ignored; mask and pending stay (Linux
    /// `flush_signal_handlers`).
    pub fn reset_for_exec(&mut self) {
        for a in &mut self.actions {
            let handler = if a.handler == SIG_IGN {
                SIG_IGN
            } else {
                SIG_DFL
            };
            *a = SigAction {
                handler,
                ..SigAction::default()
            };
        }
    }

    /// The action of `sig` (1..=64).
    pub fn action(&self, sig: i32) -> SigAction {
        self.actions[(sig - 1) as usize]
    }

    /// Set the action of `sig`; setting it to ignore discards a pending one.
    pub fn set_action(&mut self, sig: i32, a: SigAction) {
        self.actions[(sig - 1) as usize] = a;
        if self.ignored(sig) {
            self.pending.0 &= !SigSet::of(sig).0;
        }
    }

    /// Whether `sig` would be discarded on arrival.
    fn ignored(&self, sig: i32) -> bool {
        match self.action(sig).handler {
            SIG_IGN => true,
            SIG_DFL => matches!(
                default_action(sig),
                DefaultAction::Ignore | DefaultAction::Stop
            ),
            _ => false,
        }
    }

    /// Make `sig` pending with `info`, unless it is ignored and not blocked (Linux
    /// `sig_ignored`). Returns whether it is now pending.
    fn post(&mut self, info: SigInfo) -> bool {
        let sig = info.signo;
        if self.ignored(sig) && !self.blocked.has(sig) {
            return false;
        }
        self.pending.0 |= SigSet::of(sig).0;
        self.info[(sig - 1) as usize] = info;
        true
    }

    /// The pending signals, blocked or not (`rt_sigpending`).
    pub fn pending(&self) -> SigSet {
        self.pending
    }

    /// Whether a signal is pending that is not blocked (it interrupts sleeps).
    pub fn has_deliverable(&self) -> bool {
        self.pending.0 & !self.blocked.0 != 0
    }

    /// Take the lowest pending, unblocked signal.
    fn dequeue(&mut self) -> Option<(SigInfo, SigAction)> {
        let ready = self.pending.0 & !self.blocked.0;
        if ready == 0 {
            return None;
        }
        let sig = ready.trailing_zeros() as i32 + 1;
        self.pending.0 &= !SigSet::of(sig).0;
        Some((self.info[(sig - 1) as usize], self.action(sig)))
    }
}

/// Send `info.signo` to `p` (Linux `send_signal`): SIGKILL marks it killed; another
/// signal becomes pending unless ignored. Either way a sleeping target is woken, so
/// an interruptible wait can return.
pub fn send(p: &Arc<Process>, info: SigInfo) {
    if info.signo == SIGKILL {
        p.mark_killed();
    } else if !p.with(|i| i.signals.post(info)) {
        return;
    }
    sched::wake(p);
}

/// A fault's signal for the current process (Linux `force_sig_fault`): if it is
/// blocked or ignored, the action goes back to the default and the signal is
/// unblocked, so the process cannot loop on the fault. Returns whether the signal will
/// end the process (no handler), so the caller can say why on the console.
pub fn force_fault(sig: i32, code: i32, addr: u64) -> bool {
    let p = sched::current();
    p.with(|i| {
        let s = &mut i.signals;
        let action = s.action(sig);
        if s.blocked.has(sig) || action.handler == SIG_IGN {
            s.actions[(sig - 1) as usize] = SigAction::default();
            s.blocked.0 &= !SigSet::of(sig).0;
        }
        s.pending.0 |= SigSet::of(sig).0;
        s.info[(sig - 1) as usize] = SigInfo {
            signo: sig,
            code,
            pid: 0,
            addr,
        };
        s.action(sig).handler == SIG_DFL
    })
}

/// SIGSEGV that nothing can catch (Linux `force_sigsegv`): the action goes back to the
/// default, so the next delivery ends the process. For states no handler can fix (a
/// frame that cannot be returned to, a signal frame that cannot be written).
pub fn force_sigsegv(why: core::fmt::Arguments) {
    sched::current().with(|i| {
        i.signals.actions[(SIGSEGV - 1) as usize] = SigAction::default();
    });
    force_fault(SIGSEGV, SI_KERNEL, 0);
    log_fatal(SIGSEGV, why);
}

/// What `deliver` decided; acted on after every reference is dropped.
enum Outcome {
    /// Nothing (more) to do.
    Done,
    /// A handler frame is set up.
    Handled,
    /// The process ends with this status.
    Exit(ExitStatus),
}

/// Deliver pending signals before the return to user mode (called by
/// `trap::exit_to_user`), and finish an interrupted system call: restart it or make it
/// EINTR (Linux `arch_do_signal_or_restart`). May end the process.
pub fn deliver(frame: &mut TrapFrame) {
    let outcome = deliver_one(frame);
    if let Outcome::Exit(status) = outcome {
        super::exit_current(status);
    }
    if !matches!(outcome, Outcome::Handled) {
        // No handler ran: an interrupted syscall starts again (Linux -ERESTARTSYS with
        // no handler, or an ignored signal).
        restart_if_interrupted(frame, Next::NoHandler);
    }
}

/// Whether an interrupted syscall is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restart {
    Yes,
    No,
}

/// What the return to user mode runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// The interrupted code itself.
    NoHandler,
    /// A handler; `Restart::Yes` if it was installed with SA_RESTART.
    Handler(Restart),
}

/// If the frame is a syscall that a signal interrupted (it returned ERESTARTSYS or
/// ERESTARTNOHAND), restart it (back up over the two-byte `syscall` instruction and
/// restore rax) or turn it into EINTR, as Linux's `handle_signal` /
/// `arch_do_signal_or_restart` do.
fn restart_if_interrupted(frame: &mut TrapFrame, next: Next) {
    if frame.orig_rax == u64::MAX {
        return;
    }
    let restart = if frame.rax == Errno::ERESTARTSYS.as_return() {
        match next {
            Next::NoHandler => Restart::Yes,
            Next::Handler(r) => r,
        }
    } else if frame.rax == Errno::ERESTARTNOHAND.as_return() {
        match next {
            Next::NoHandler => Restart::Yes,
            Next::Handler(_) => Restart::No,
        }
    } else {
        return;
    };
    match restart {
        Restart::Yes => {
            frame.rax = frame.orig_rax;
            frame.rip -= 2;
        }
        Restart::No => frame.rax = Errno::EINTR.as_return(),
    }
}

fn deliver_one(frame: &mut TrapFrame) -> Outcome {
    let p = sched::current();
    loop {
        let Some((info, action)) = p.with(|i| i.signals.dequeue()) else {
            return Outcome::Done;
        };
        let sig = info.signo;
        match action.handler {
            SIG_IGN => continue,
            SIG_DFL => match default_action(sig) {
                DefaultAction::Ignore | DefaultAction::Stop => continue,
                DefaultAction::Terminate => return Outcome::Exit(ExitStatus::Signaled(sig)),
                DefaultAction::Core => return Outcome::Exit(ExitStatus::Dumped(sig)),
            },
            _ => {
                let restart = if action.flags & SA_RESTART != 0 {
                    Restart::Yes
                } else {
                    Restart::No
                };
                restart_if_interrupted(frame, Next::Handler(restart));
                let old_mask = p.with(|i| i.signals.blocked);
                if setup_frame(frame, &info, &action, old_mask).is_err() {
                    // The frame cannot be written (Linux `force_sigsegv`): SIGSEGV with
                    // the default action, delivered next.
                    drop(p);
                    force_sigsegv(format_args!(
                        "cannot write the frame for {} below rsp {:#x}",
                        super::signal_name(sig),
                        frame.rsp
                    ));
                    return deliver_one(frame);
                }
                p.with(|i| {
                    let s = &mut i.signals;
                    let mut add = action.mask;
                    if action.flags & SA_NODEFER == 0 {
                        add.0 |= SigSet::of(sig).0;
                    }
                    s.blocked = SigSet(s.blocked.0 | add.0).without_unblockable();
                    if action.flags & SA_RESETHAND != 0 {
                        s.actions[(sig - 1) as usize] = SigAction::default();
                    }
                });
                return Outcome::Handled;
            }
        }
    }
}

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
fn setup_frame(
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

/// Print why a process is about to die of a signal nobody catches.
pub fn log_fatal(sig: i32, why: core::fmt::Arguments) {
    let p = sched::current();
    let name = p.with(|i| i.name.clone());
    crate::serial_println!(
        "[kernel] pid {} ({}) killed by {}: {}",
        p.pid,
        name,
        super::signal_name(sig),
        why
    );
}

/// Processes with an alarm set: (due tick, process).
static ALARMS: SpinLock<Vec<(u64, Weak<Process>)>> = SpinLock::new("alarms", Vec::new());

/// Arm the real-time timer (`setitimer(ITIMER_REAL)`, which `alarm` is too): SIGALRM
/// after `value` ticks (0 disarms), then every `interval` ticks (0: once). Returns the
/// old (ticks left, interval) (Linux `do_setitimer`).
pub fn set_real_timer(value: u64, interval: u64) -> Result<(u64, u64), Errno> {
    let p = sched::current();
    let now = crate::arch::x86_64::interrupts::ticks();
    let due = (value > 0).then(|| now.saturating_add(value));
    let (old, old_interval) = p.with(|i| {
        let s = &mut i.signals;
        let old = core::mem::replace(&mut s.alarm_at, due);
        let old_interval = core::mem::replace(&mut s.alarm_interval, interval);
        (old, old_interval)
    });
    let left = old.map_or(0, |t| t.saturating_sub(now).max(1));
    let mut alarms = ALARMS.lock();
    alarms.retain(|(_, w)| w.upgrade().is_some_and(|q| !Arc::ptr_eq(&q, &p)));
    if let Some(t) = due {
        alarms.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
        alarms.push((t, Arc::downgrade(&p)));
    }
    Ok((left, old_interval))
}

/// The real timer: (ticks left, interval).
pub fn real_timer() -> (u64, u64) {
    let now = crate::arch::x86_64::interrupts::ticks();
    sched::current().with(|i| {
        let s = &i.signals;
        (
            s.alarm_at.map_or(0, |t| t.saturating_sub(now).max(1)),
            s.alarm_interval,
        )
    })
}

/// `alarm(seconds)`: SIGALRM after `seconds` (0 cancels); returns the seconds left of
/// the previous alarm, rounded up.
pub fn alarm(seconds: u32) -> Result<u64, Errno> {
    let hz = crate::arch::x86_64::interrupts::TIMER_HZ;
    let (left, _) = set_real_timer(u64::from(seconds) * hz, 0)?;
    Ok(left.div_ceil(hz))
}

/// Every tick (interrupts off): send SIGALRM to processes whose alarm is due.
pub fn on_tick(now: u64) {
    let mut due: Vec<Arc<Process>> = Vec::new();
    {
        let mut alarms = ALARMS.lock();
        if alarms.iter().all(|(t, _)| *t > now) {
            return;
        }
        alarms.retain(|(t, w)| {
            if *t > now {
                return true;
            }
            if let Some(p) = w.upgrade() {
                if due.try_reserve(1).is_ok() {
                    due.push(p);
                }
            }
            false
        });
    }
    for p in due {
        let interval = p.with(|i| {
            let s = &mut i.signals;
            s.alarm_at = (s.alarm_interval > 0).then(|| now + s.alarm_interval);
            s.alarm_interval
        });
        if interval > 0 {
            let mut alarms = ALARMS.lock();
            if alarms.try_reserve(1).is_ok() {
                alarms.push((now + interval, Arc::downgrade(&p)));
            }
        }
        send(
            &p,
            SigInfo {
                signo: SIGALRM,
                code: SI_KERNEL,
                pid: 0,
                addr: 0,
            },
        );
    }
}

/// Whether the running process has a signal to handle (interruptible waits return).
pub fn pending_for_current() -> bool {
    sched::try_current().is_some_and(|p| p.is_killed() || p.with(|i| i.signals.has_deliverable()))
}
