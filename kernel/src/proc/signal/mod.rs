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

mod alarm;
mod frame;

pub use alarm::{alarm, on_tick, real_timer, set_real_timer};
use frame::setup_frame;
pub use frame::sigreturn;

use alloc::sync::Arc;

use super::{sched, ExitStatus, Pid, Process};
use crate::arch::x86_64::trap::TrapFrame;
use crate::error::Errno;

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
pub const SA_NOCLDWAIT: u64 = 0x2;
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
    /// SIGCHLD: the child's exit code or signal (`si_status`).
    pub status: i32,
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
            // si_uid: 0 (root) at 20..24. A child's end (any exit signal): si_status;
            // si_utime, si_stime stay 0. (0 for kill, where the field is si_value.)
            b[24..28].copy_from_slice(&self.status.to_le_bytes());
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
    /// The mask to go back to once a temporary one (`rt_sigsuspend`, `ppoll`'s) has
    /// done its job (Linux `saved_sigmask`): a handler's frame gets it, so `rt_sigreturn`
    /// restores it; with no handler, the way back to user mode does.
    saved_mask: Option<SigSet>,
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
            saved_mask: None,
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
            blocked: self.saved_mask.unwrap_or(self.blocked),
            saved_mask: None,
            ..self.clone()
        }
    }

    /// Put `mask` in force until a signal is handled or the syscall returns (Linux
    /// `set_user_sigmask`): the mask in force now is kept to go back to.
    pub fn set_temporary_mask(&mut self, mask: SigSet) {
        if self.saved_mask.is_none() {
            self.saved_mask = Some(self.blocked);
        }
        self.blocked = mask.without_unblockable();
    }

    /// Go back to the mask a temporary one replaced, if any (Linux
    /// `restore_saved_sigmask`).
    pub fn restore_saved_mask(&mut self) {
        if let Some(m) = self.saved_mask.take() {
            self.blocked = m;
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
    /// Whether children are reaped without a zombie (Linux `do_notify_parent`'s
    /// autoreap): the parent ignores SIGCHLD explicitly or set SA_NOCLDWAIT.
    pub fn reaps_children(&self) -> bool {
        let a = self.action(SIGCHLD);
        a.handler == SIG_IGN || a.flags & SA_NOCLDWAIT != 0
    }

    /// Whether SIGCHLD's handler is SIG_IGN (then a child's end sends nothing).
    pub fn sigchld_ignored(&self) -> bool {
        self.action(SIGCHLD).handler == SIG_IGN
    }

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
            status: 0,
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
        // no handler, or an ignored signal); `deliver_one` ended a temporary mask.
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
        // Nothing (more) to deliver: a temporary mask ends here, under the same lock
        // (the way back to user mode is hot: one lock, not two).
        let next = p.with(|i| {
            let next = i.signals.dequeue();
            if next.is_none() {
                i.signals.restore_saved_mask();
            }
            next
        });
        let Some((info, action)) = next else {
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
                // The frame keeps the mask to return to: the one a temporary mask
                // (rt_sigsuspend, ppoll) replaced, else the current one.
                let old_mask = p.with(|i| {
                    let s = &mut i.signals;
                    s.saved_mask.take().unwrap_or(s.blocked)
                });
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

/// Print why a process is about to die of a signal nobody catches.
pub fn log_fatal(sig: i32, why: core::fmt::Arguments) {
    let p = sched::current();
    // Printed under the process lock (printing never sleeps): no copy of the name needed.
    p.with(|i| {
        crate::serial_println!(
            "[kernel] pid {} ({}) killed by {}: {}",
            p.pid,
            i.name,
            super::signal_name(sig),
            why
        )
    });
}

/// Whether the running process has a signal to handle (interruptible waits return).
pub fn pending_for_current() -> bool {
    sched::try_current().is_some_and(|p| p.is_killed() || p.with(|i| i.signals.has_deliverable()))
}
