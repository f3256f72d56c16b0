//! The end of a process: `exit` (Linux `do_exit`), `wait4` (Linux `do_wait`), the
//! checks for SIGKILL on the way back to user mode, and the power-off when init ends.
#![forbid(unsafe_code)]

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use x86_64::instructions::interrupts;
use x86_64::VirtAddr;

use super::{
    frame, lookup, qemu, sched, serial_println, signal, table, ExitCode, ExitStatus, Pid,
    ProcTable, Process, State, BOOT_FREE_FRAMES, BOOT_HEAP_FRAMES, KTHREADS, POWER_OFF, SIGCHLD,
    SIGKILL,
};
use crate::error::Errno;

/// End the current process with `status` (Linux `do_exit`): free its memory and files,
/// hand its children to init, become a zombie for the parent's `wait4`, and switch away
/// for good. When init ends, the machine powers off.
pub fn exit_current(status: ExitStatus) -> ! {
    let p = sched::current();
    // Leave the address space before it is freed.
    crate::vm::switch_to(None);
    // Tear down while still a running process, with interrupts on: closing a device
    // file and unmapping may sleep (address-space lock), and a zombie that slept would
    // never be scheduled again. Nothing is dropped under the process lock.
    interrupts::enable();
    let (aspace, files, clear_tid) = p.with(|i| {
        (
            i.aspace.take(),
            core::mem::take(&mut i.files),
            i.tid_addrs.clear_child_tid,
        )
    });
    if let (Some(a), true) = (&aspace, clear_tid != 0) {
        // Linux `mm_release`: a thread library waits on this word (harmless otherwise).
        let _ = a.copy_to_user(VirtAddr::new_truncate(clear_tid), &0u32.to_le_bytes());
    }
    drop(aspace);
    drop(files);
    interrupts::disable();
    let ppid = p.with(|i| {
        i.state = State::Zombie(status);
        i.ppid
    });
    if p.pid == 1 {
        POWER_OFF.store(status.shell_status() as u32 + 1, Ordering::Release);
        sched::leave_forever(p);
    }
    // Orphans go to init (reporting with SIGCHLD from now on, as Linux's `reparent_leader`
    // sets); if one is already a zombie, init must hear about it.
    let init = lookup(1);
    let mut zombie_orphans = alloc::vec::Vec::<(Pid, ExitStatus)>::new();
    let mut wake_init = false;
    table(|t| {
        for child in t.values() {
            child.with(|c| {
                if c.ppid == p.pid {
                    c.ppid = 1;
                    c.exit_signal = SIGCHLD;
                    if let State::Zombie(status) = c.state {
                        wake_init = true;
                        // Linux `reparent_leader` notifies init of each: room permitting.
                        if zombie_orphans.try_reserve(1).is_ok() {
                            zombie_orphans.push((child.pid, status));
                        }
                    }
                }
            });
        }
    });
    notify_parent(&p, ppid, status);
    // Init hears of each orphan that had already ended (SIGCHLD, or an autoreap if it
    // ignores SIGCHLD), as any parent of a child that ends.
    for &(pid, status) in &zombie_orphans {
        if let Some(orphan) = lookup(pid) {
            notify_parent(&orphan, 1, status);
        }
    }
    drop(zombie_orphans);
    if let (true, Some(init)) = (wake_init, init) {
        sched::wake(&init);
    }
    sched::leave_forever(p)
}

/// Tell the parent that `child` ended (Linux `do_notify_parent`): send it the child's
/// exit signal with a CLD_* siginfo (si_pid, si_status), and wake it. If the parent
/// ignores SIGCHLD (SIG_IGN) or set SA_NOCLDWAIT, the child is reaped at once and leaves
/// no zombie for `wait4` (autoreap); with SIG_IGN no signal is sent either. Interrupts
/// are off (the caller is an exiting process, about to leave the CPU for good).
fn notify_parent(child: &Arc<Process>, ppid: Pid, status: ExitStatus) {
    const CLD_EXITED: i32 = 1;
    const CLD_KILLED: i32 = 2;
    const CLD_DUMPED: i32 = 3;
    let Some(parent) = lookup(ppid) else {
        return;
    };
    let mut sig = child.with(|c| c.exit_signal);
    let (code, value) = match status {
        ExitStatus::Exited(c) => (CLD_EXITED, c & 0xff),
        ExitStatus::Signaled(s) => (CLD_KILLED, s),
        ExitStatus::Dumped(s) => (CLD_DUMPED, s),
    };
    let (autoreap, ignored) =
        parent.with(|i| (i.signals.reaps_children(), i.signals.sigchld_ignored()));
    let autoreap = sig == SIGCHLD && autoreap;
    if sig == SIGCHLD && ignored {
        sig = 0;
    }
    if (1..=signal::NSIG).contains(&sig) {
        let info = signal::SigInfo {
            signo: sig,
            code,
            pid: child.pid,
            addr: 0,
            status: value,
        };
        signal::send(&parent, info);
    }
    if autoreap {
        // The last reference goes when the scheduler drops this process off the CPU.
        table(|t| t.remove(&child.pid));
    }
    sched::wake(&parent);
}

/// Whether the running process has been sent SIGKILL: a sleeping loop returns (EINTR)
/// and lets the way back to user mode end the process.
pub fn current_killed() -> bool {
    sched::try_current().is_some_and(|p| p.is_killed())
}

/// If the current process was killed, exit now. Called on every way back to user mode,
/// and only there: `exit_current` never returns, so every owned reference (an `Arc` of
/// a process or a file) still on the caller's stack would leak.
pub fn exit_if_killed() {
    if let Some(p) = sched::try_current() {
        if p.is_killed() {
            drop(p);
            exit_current(ExitStatus::Signaled(SIGKILL));
        }
    }
}

/// A fault in user mode: send the current process `signal` (Linux `force_sig_fault`;
/// `code` and `addr` go into its siginfo). If nobody catches it, print one line saying
/// why; the process then ends on its way back to user mode.
pub fn signal_current_for_fault(signal: i32, code: i32, addr: u64, why: core::fmt::Arguments) {
    if signal::force_fault(signal, code, addr) {
        signal::log_fatal(signal, why);
    }
}

/// Which children `wait4` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    Any,
    Pid(Pid),
    /// Any child in this process group (`wait4(0)`: the caller's; `wait4(-pgid)`).
    Group(Pid),
}

/// Whether `wait4` may block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitMode {
    Block,
    NoHang,
}

/// Which children `wait4` considers, by their exit signal (Linux `eligible_child`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitChildren {
    /// Those that report with SIGCHLD (the default).
    Sigchld,
    /// Those that report with another signal or none (`__WCLONE`).
    Clone,
    /// All (`__WALL`).
    All,
}

impl WaitChildren {
    fn admits(self, exit_signal: i32) -> bool {
        match self {
            WaitChildren::All => true,
            WaitChildren::Sigchld => exit_signal == SIGCHLD,
            WaitChildren::Clone => exit_signal != SIGCHLD,
        }
    }
}

/// `wait4`: reap a zombie child and return (pid, status); (0, _) with `NoHang` if
/// children exist but none has ended; ECHILD if there are none (Linux `do_wait`).
pub fn wait(
    which: WaitFor,
    mode: WaitMode,
    children: WaitChildren,
) -> Result<(Pid, ExitStatus), Errno> {
    let me = sched::current();
    loop {
        let found = interrupts::without_interrupts(|| {
            let result = table(|t| {
                let mut any = false;
                let mut zombie = None;
                for child in t.values() {
                    let (ppid, state, pgid, exit_signal) =
                        child.with(|c| (c.ppid, c.state, c.pgid, c.exit_signal));
                    let wanted = ppid == me.pid
                        && children.admits(exit_signal)
                        && match which {
                            WaitFor::Any => true,
                            WaitFor::Pid(pid) => child.pid == pid,
                            WaitFor::Group(g) => pgid == g,
                        };
                    if wanted {
                        any = true;
                        if let State::Zombie(status) = state {
                            zombie = Some((child.pid, status));
                            break;
                        }
                    }
                }
                if let Some((pid, _)) = zombie {
                    t.remove(&pid);
                }
                (any, zombie)
            });
            match result {
                (_, Some(z)) => Some(Ok(z)),
                (false, None) => Some(Err(Errno::ECHILD)),
                (true, None) if mode == WaitMode::NoHang => Some(Ok((0, ExitStatus::Exited(0)))),
                // A signal to handle: the syscall is restarted or fails with EINTR.
                (true, None) if signal::pending_for_current() => Some(Err(Errno::ERESTARTSYS)),
                (true, None) => {
                    sched::block_current(core::panic::Location::caller());
                    None
                }
            }
        });
        if let Some(r) = found {
            return r;
        }
        // Killed or signalled while waiting: return, so `me` is dropped before the way
        // back to user mode delivers the signal (exiting from here would leak this
        // stack's references).
        if signal::pending_for_current() {
            return Err(Errno::ERESTARTSYS);
        }
    }
}

/// Whether init has ended and the machine should power off.
pub fn power_off_requested() -> bool {
    POWER_OFF.load(Ordering::Acquire) != 0
}

/// Tick until which the processes still alive at power-off may run to their end (0:
/// not started).
static DRAIN_UNTIL: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// How long they may take (2 s).
const DRAIN_TICKS: u64 = 2000;

/// Called by the scheduler loop, between two processes, once power-off is requested: the
/// first time, every process still alive gets SIGKILL (as a system's shutdown kills what
/// is left); once none is left, or after [`DRAIN_TICKS`], power off. Processes must end
/// by themselves, on their own stack: the references their kernel stacks hold (a
/// `current()` taken in a syscall, a wait-queue entry) go only as they return.
pub fn power_off_step() {
    let now = crate::arch::x86_64::interrupts::ticks();
    let first = DRAIN_UNTIL.load(Ordering::Relaxed) == 0;
    if first {
        DRAIN_UNTIL.store(now + DRAIN_TICKS, Ordering::Relaxed);
    }
    let alive = interrupts::without_interrupts(|| {
        table(|t| {
            let mut alive = 0;
            for p in t.values() {
                if !p.with(|i| matches!(i.state, State::Zombie(_))) {
                    alive += 1;
                    if first {
                        let info = signal::SigInfo {
                            signo: SIGKILL,
                            code: signal::SI_KERNEL,
                            pid: 0,
                            addr: 0,
                            status: 0,
                        };
                        signal::send(p, info);
                    }
                }
            }
            alive
        })
    });
    if alive == 0 || now >= DRAIN_UNTIL.load(Ordering::Relaxed) {
        power_off_now();
    }
}

/// Tear down every process, check that every frame came back, print the status line
/// the runner reads, and leave QEMU. Runs on the scheduler's stack.
pub fn power_off_now() -> ! {
    let status = POWER_OFF.load(Ordering::Acquire).saturating_sub(1);
    interrupts::disable();
    crate::vm::switch_to(None);
    sched::clear_all();
    let all: Vec<Arc<Process>> = table(ProcTable::take_all);
    for p in &all {
        let (state, refs) = (p.with(|i| i.state), Arc::strong_count(p));
        if !matches!(state, State::Zombie(_)) {
            p.with(|i| {
                serial_println!(
                    "[kernel] power off: pid {} ({}) still {state:?} ({refs} references)",
                    p.pid,
                    i.name
                )
            });
        }
        let (aspace, files) = p.with(|i| (i.aspace.take(), core::mem::take(&mut i.files)));
        drop(aspace);
        drop(files);
    }
    drop(all);
    let before = BOOT_FREE_FRAMES.load(Ordering::Relaxed);
    let after = frame::free_frames();
    let heap_grew =
        crate::mm::heap::frames().saturating_sub(BOOT_HEAP_FRAMES.load(Ordering::Relaxed));
    if before == after + heap_grew {
        let note = if heap_grew > 0 {
            alloc::format!(" (the kernel heap grew by {heap_grew} frames)")
        } else {
            String::new()
        };
        serial_println!(
            "[kernel] all processes gone; {after} free frames, as before init{note}: no leak"
        );
    } else {
        // What still holds memory: kernel stacks beyond the kernel threads' are processes
        // somebody still references.
        let stacks = crate::mm::kstack::in_use();
        let kthreads = KTHREADS.with(|k| k.len());
        serial_println!(
            "[kernel] LEAK: {before} free frames before init, {after} after every process is gone ({} kernel stacks still mapped besides the {kthreads} kernel threads'; heap grew by {heap_grew} frames)",
            stacks.saturating_sub(kthreads)
        );
    }
    serial_println!("[kernel] power off: init exited with status {status}");
    qemu::exit(ExitCode::PowerOff)
}

/// Request a power-off with `status` (reboot syscall): like init exiting.
pub fn request_power_off(status: i32) -> ! {
    POWER_OFF.store(status as u32 + 1, Ordering::Release);
    let p = sched::current();
    // Everyone goes down together: the scheduler loop tears every process down.
    crate::vm::switch_to(None);
    p.with(|i| i.state = State::Zombie(ExitStatus::Exited(status)));
    sched::leave_forever(p)
}
