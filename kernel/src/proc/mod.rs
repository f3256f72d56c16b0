//! Processes: creation (the first one, and `fork`), `execve`, `exit`, `wait4`, `kill`.
//!
//! A process is one thread of execution with its own address space, kernel stack,
//! file table and FS base. Processes form a tree (parent pid); when a parent exits, its
//! children are re-parented to init (pid 1), which reaps them. Linux: `kernel/fork.c`,
//! `kernel/exit.c`, `fs/exec.c`.
#![forbid(unsafe_code)]

pub mod elf;
pub mod pidfd;
pub mod procfs;
pub mod sched;
pub mod signal;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use x86_64::instructions::interrupts;
use x86_64::VirtAddr;

use crate::arch::x86_64::context::Context;
use crate::arch::x86_64::fpu::FpuState;
use crate::arch::x86_64::qemu::{self, ExitCode};
use crate::arch::x86_64::trap::TrapFrame;
use crate::error::Errno;
use crate::fs::FileTable;
use crate::mm::frame;
use crate::mm::kstack::{KernelStack, KstackError};
use crate::serial_println;
use crate::sync::SpinLock;
use crate::vm::AddressSpace;

/// Process id.
pub type Pid = u32;

pub use signal::{SIGABRT, SIGALRM, SIGBUS, SIGFPE, SIGILL, SIGKILL, SIGSEGV, SIGTRAP};

/// Most processes that may exist at once (zombies included). Bounded by kernel stacks.
pub const MAX_PROCS: usize = crate::mm::kstack::MAX_STACKS;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// `exit(code)`: the low 8 bits are kept.
    Exited(i32),
    /// Killed by a signal.
    Signaled(i32),
    /// Killed by a signal whose default action is "core" (no file is written; the wait
    /// status carries the core bit, 0x80, as Linux's would).
    Dumped(i32),
}

impl ExitStatus {
    /// The status word `wait4` reports (Linux encoding: `code << 8`, or the signal).
    pub fn wait_status(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => (code & 0xff) << 8,
            ExitStatus::Signaled(sig) => sig & 0x7f,
            ExitStatus::Dumped(sig) => (sig & 0x7f) | 0x80,
        }
    }

    /// As a shell reports it (128 + signal for a killed process).
    pub fn shell_status(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => code & 0xff,
            ExitStatus::Signaled(sig) | ExitStatus::Dumped(sig) => 128 + sig,
        }
    }
}

/// Where a process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Runnable,
    Running,
    Sleeping,
    Zombie(ExitStatus),
}

/// The program break (heap end) managed by `brk`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Brk {
    /// Page-aligned end of the loaded image: the break never goes below.
    pub start: u64,
    /// The current break.
    pub current: u64,
}

/// The mutable part of a process.
pub struct ProcInner {
    pub state: State,
    pub ppid: Pid,
    pub name: String,
    /// `None` once the process has exited.
    pub aspace: Option<Arc<AddressSpace>>,
    pub files: FileTable,
    pub fs_base: u64,
    pub brk: Brk,
    /// Signal actions, mask, pending signals, alarm.
    pub signals: signal::Signals,
    /// Process group and session (`setpgid`, `setsid`).
    pub pgid: Pid,
    pub sid: Pid,
    /// Addresses the C library registered (`set_tid_address`, `set_robust_list`,
    /// `clone(CLONE_CHILD_CLEARTID)`).
    pub tid_addrs: TidAddrs,
    /// The path this program was started from (`readlink("/proc/self/exe")`).
    pub exe: String,
}

/// Thread-bookkeeping addresses a C library gives the kernel. With one thread per
/// process only `clear_child_tid` has an effect: 0 is written there at exit (Linux
/// `mm_release`; the futex wake-up has no waiter without threads).
#[derive(Debug, Clone, Copy, Default)]
pub struct TidAddrs {
    pub clear_child_tid: u64,
    pub robust_list: u64,
}

/// What `clone` asks for beyond a plain fork (Linux `struct kernel_clone_args`).
#[derive(Debug, Clone, Copy, Default)]
pub struct CloneOptions {
    /// CLONE_CHILD_SETTID: write the child's tid here, in the child's memory.
    pub set_child_tid: Option<u64>,
    /// CLONE_CHILD_CLEARTID: the child's `clear_child_tid`.
    pub clear_child_tid: Option<u64>,
    /// CLONE_PARENT_SETTID: write the child's tid here, in the parent's memory.
    pub set_parent_tid: Option<u64>,
    /// A new stack pointer for the child (0 in the call: keep the parent's).
    pub stack: Option<u64>,
}

/// One process.
pub struct Process {
    pub pid: Pid,
    pub kstack: KernelStack,
    /// Its kernel context while it is not running.
    pub(super) context: Context,
    /// The user's x87/SSE registers while the process is off the CPU.
    pub fpu: SpinLock<FpuState>,
    /// Set by `kill(SIGKILL)`; the process exits the next time it would return to user
    /// mode or wakes from a sleep.
    killed: AtomicBool,
    inner: SpinLock<ProcInner>,
    /// This process, for wait queues that hold it as a `sync::Task` (`&self` -> `Arc`).
    this: Weak<Process>,
}

impl Process {
    /// A runnable process whose kernel stack `kstack` is prepared to resume at `rsp`.
    fn new(
        pid: Pid,
        kstack: KernelStack,
        context: Context,
        fpu: FpuState,
        inner: ProcInner,
    ) -> Arc<Process> {
        Arc::new_cyclic(|this| Process {
            pid,
            kstack,
            context,
            fpu: SpinLock::new("fpu state", fpu),
            killed: AtomicBool::new(false),
            inner: SpinLock::new("process", inner),
            this: this.clone(),
        })
    }

    /// Run `f` on the mutable part, under the process spinlock (interrupts off: the
    /// timer's wake-ups change `state`). `f` must not sleep, nor drop anything whose
    /// drop may sleep (an open file: take it out and drop it after).
    pub fn with<R>(&self, f: impl FnOnce(&mut ProcInner) -> R) -> R {
        self.inner.with(f)
    }

    /// The address space (panics after exit: only the process itself calls this).
    pub fn aspace(&self) -> Arc<AddressSpace> {
        self.with(|i| i.aspace.clone())
            .expect("Process::aspace: the process has exited")
    }

    /// Mark SIGKILL pending (the caller wakes the process).
    pub fn mark_killed(&self) {
        self.killed.store(true, Ordering::Release);
    }

    /// Whether SIGKILL is pending.
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }
}

static TABLE: SpinLock<BTreeMap<Pid, Arc<Process>>> =
    SpinLock::new("process table", BTreeMap::new());
/// Next pid to hand out; pid 1 is reserved for init.
static NEXT_PID: AtomicU32 = AtomicU32::new(2);
/// Free frames just before init started (the baseline checked at power-off).
static BOOT_FREE_FRAMES: AtomicUsize = AtomicUsize::new(0);
/// The kernel heap's size then (it grows on demand and never shrinks: frames it took
/// are not a leak).
static BOOT_HEAP_BYTES: AtomicUsize = AtomicUsize::new(0);
/// Set when init has ended: (status + 1), 0 = not requested.
static POWER_OFF: AtomicU32 = AtomicU32::new(0);

fn table<R>(f: impl FnOnce(&mut BTreeMap<Pid, Arc<Process>>) -> R) -> R {
    TABLE.with(f)
}

/// The process with `pid`.
pub fn lookup(pid: Pid) -> Option<Arc<Process>> {
    table(|t| t.get(&pid).cloned())
}

/// One line per process, for `/proc/ps`: pid, ppid, state, name.
pub fn list() -> Vec<(Pid, Pid, State, String)> {
    table(|t| {
        t.values()
            .map(|p| p.with(|i| (p.pid, i.ppid, i.state, i.name.clone())))
            .collect()
    })
}

/// Register a new process and queue it.
fn start(p: Arc<Process>) {
    table(|t| t.insert(p.pid, p.clone()));
    sched::enqueue(p);
}

fn kstack_error(e: KstackError) -> Errno {
    match e {
        KstackError::NoSlot => Errno::EAGAIN,
        KstackError::NoMemory => Errno::ENOMEM,
    }
}

/// Kernel threads: not in the process table (they are not user processes and live
/// until power-off), so they never count against the leak check.
static KTHREADS: SpinLock<Vec<Arc<Process>>> = SpinLock::new("kernel threads", Vec::new());

/// Start a kernel thread named `name` running `entry` (with interrupts off at entry:
/// the body enables them). It has no address space and runs only kernel code; like
/// every kernel code here it is not preempted and gives the CPU away by sleeping or
/// yielding. Used by the accelerator's engine.
pub fn spawn_kernel_thread(name: &str, entry: extern "C" fn() -> !) -> Result<Arc<Process>, Errno> {
    let (kstack, context) = KernelStack::new_kernel_thread(entry).map_err(kstack_error)?;
    let pid = NEXT_PID.fetch_add(1, Ordering::Relaxed);
    let p = Process::new(
        pid,
        kstack,
        context,
        FpuState::default(),
        ProcInner {
            state: State::Runnable,
            ppid: 0,
            name: name.into(),
            aspace: None,
            files: FileTable::default(),
            fs_base: 0,
            brk: Brk::default(),
            signals: signal::Signals::default(),
            pgid: 0,
            sid: 0,
            tid_addrs: TidAddrs::default(),
            exe: String::new(),
        },
    );
    KTHREADS.with(|k| k.push(p.clone()));
    sched::enqueue(p.clone());
    Ok(p)
}

/// Create pid 1 from the initramfs file `path` with `argv`, ready to run.
pub fn spawn_init(path: &str, argv: &[&str]) -> Result<(), Errno> {
    BOOT_FREE_FRAMES.store(frame::free_frames(), Ordering::Relaxed);
    BOOT_HEAP_BYTES.store(crate::mm::heap::size() as usize, Ordering::Relaxed);
    let data = crate::fs::initramfs::lookup(path).ok_or(Errno::ENOENT)?;
    let env = ["HOME=/", "PATH=/bin", "TERM=vt100"];
    let image = elf::load(data, argv, &env)?;
    let frame = TrapFrame::new_user(image.entry, image.stack_pointer);
    let (kstack, context) = KernelStack::new_user(&frame).map_err(kstack_error)?;
    let pid = 1;
    start(Process::new(
        pid,
        kstack,
        context,
        FpuState::default(),
        ProcInner {
            state: State::Runnable,
            ppid: 0,
            name: basename(path).into(),
            aspace: Some(image.aspace),
            files: FileTable::with_stdio(crate::fs::open(
                "/dev/console",
                crate::fs::OpenMode::ReadWrite,
                0,
            )?),
            fs_base: 0,
            brk: image.brk,
            signals: signal::Signals::default(),
            pgid: pid,
            sid: pid,
            tid_addrs: TidAddrs::default(),
            exe: path.into(),
        },
    ));
    Ok(())
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `fork()`: a copy of the current process whose `fork` returns 0 (Linux
/// `kernel_clone`). The child shares the parent's open files and gets a
/// copy-on-write copy of its memory. Fails with EAGAIN when the process table is full
/// and ENOMEM when memory runs out; nothing of the half-built child remains then.
pub fn fork(frame: &TrapFrame, opts: &CloneOptions) -> Result<Pid, Errno> {
    let parent = sched::current();
    if table(|t| t.len()) >= MAX_PROCS {
        return Err(Errno::EAGAIN);
    }
    let mut child_frame = *frame;
    child_frame.rax = 0;
    if let Some(sp) = opts.stack {
        child_frame.rsp = sp;
    }
    let (kstack, context) = KernelStack::new_user(&child_frame).map_err(kstack_error)?;
    let aspace = parent.aspace().fork()?;
    let pid = NEXT_PID.fetch_add(1, Ordering::Relaxed);
    // As Linux, a tid that cannot be stored is not an error of clone.
    if let Some(at) = opts.set_child_tid {
        let _ = aspace.copy_to_user(VirtAddr::new_truncate(at), &pid.to_le_bytes());
    }
    if let Some(at) = opts.set_parent_tid {
        let _ = parent
            .aspace()
            .copy_to_user(VirtAddr::new_truncate(at), &pid.to_le_bytes());
    }
    // The parent's FPU registers are live on the CPU: the child starts with a copy.
    let mut fpu = FpuState::default();
    fpu.save();
    let (name, exe, files, fs_base, brk, signals, pgid, sid) = parent.with(|i| {
        (
            i.name.clone(),
            i.exe.clone(),
            i.files.clone(),
            x86_64::registers::model_specific::FsBase::read().as_u64(),
            i.brk,
            i.signals.for_child(),
            i.pgid,
            i.sid,
        )
    });
    let tid_addrs = TidAddrs {
        clear_child_tid: opts.clear_child_tid.unwrap_or(0),
        robust_list: 0,
    };
    start(Process::new(
        pid,
        kstack,
        context,
        fpu,
        ProcInner {
            state: State::Runnable,
            ppid: parent.pid,
            name,
            aspace: Some(aspace),
            files,
            fs_base,
            brk,
            signals,
            pgid,
            sid,
            tid_addrs,
            exe,
        },
    ));
    Ok(pid)
}

/// `execve`: replace the current program with the initramfs file `path`. On failure
/// the caller is untouched and gets the error; on success `frame` starts the new
/// program (Linux `do_execveat_common`).
pub fn exec(frame: &mut TrapFrame, path: &str, argv: &[&str], envp: &[&str]) -> Result<(), Errno> {
    let data = crate::fs::initramfs::lookup(path).ok_or(Errno::ENOENT)?;
    let image = elf::load(data, argv, envp)?;
    let p = sched::current();
    let new = image.aspace.clone();
    let old = p.with(|i| {
        i.name = basename(path).into();
        i.brk = image.brk;
        i.fs_base = 0;
        i.signals.reset_for_exec();
        i.exe = path.into();
        i.tid_addrs = TidAddrs::default();
        i.aspace.replace(image.aspace)
    });
    crate::vm::switch_to(Some(new));
    x86_64::registers::model_specific::FsBase::write(VirtAddr::new(0));
    FpuState::default().restore();
    drop(old);
    *frame = TrapFrame::new_user(image.entry, image.stack_pointer);
    Ok(())
}

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
    // Orphans go to init; if one is already a zombie, init must hear about it.
    let init = lookup(1);
    let mut wake_init = false;
    table(|t| {
        for child in t.values() {
            child.with(|c| {
                if c.ppid == p.pid {
                    c.ppid = 1;
                    wake_init |= matches!(c.state, State::Zombie(_));
                }
            });
        }
    });
    if let Some(parent) = lookup(ppid) {
        sched::wake(&parent);
    }
    if let (true, Some(init)) = (wake_init, init) {
        sched::wake(&init);
    }
    sched::leave_forever(p)
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

/// "SIGSEGV" for 11, and so on.
pub fn signal_name(signal: i32) -> &'static str {
    use signal::*;
    const NAMES: [&str; 32] = [
        "signal 0",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    let _ = (SIGHUP, SIGINT, SIGUSR1, SIGUSR2, SIGPIPE, SIGTERM);
    usize::try_from(signal)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or(if (32..=NSIG).contains(&signal) {
            "a real-time signal"
        } else {
            "signal"
        })
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

/// `wait4`: reap a zombie child and return (pid, status); (0, _) with `NoHang` if
/// children exist but none has ended; ECHILD if there are none (Linux `do_wait`).
pub fn wait(which: WaitFor, mode: WaitMode) -> Result<(Pid, ExitStatus), Errno> {
    let me = sched::current();
    loop {
        let found = interrupts::without_interrupts(|| {
            let result = table(|t| {
                let mut any = false;
                let mut zombie = None;
                for child in t.values() {
                    let (ppid, state, pgid) = child.with(|c| (c.ppid, c.state, c.pgid));
                    let wanted = ppid == me.pid
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
                    sched::block_current();
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

/// Who `kill` signals (Linux `kill_something_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillTarget {
    /// `pid > 0`: that process.
    Pid(Pid),
    /// `pid == 0`: the caller's process group; `pid < -1`: group `-pid`.
    Group(Pid),
    /// `pid == -1`: every process but init and the caller.
    All,
}

/// `kill(pid, sig)`: send `sig` (1..=64, or 0 to check existence) to the target.
/// ESRCH if nobody matched, EINVAL for a bad signal number.
pub fn kill(target: KillTarget, sig: i32) -> Result<(), Errno> {
    if !(0..=signal::NSIG).contains(&sig) {
        return Err(Errno::EINVAL);
    }
    let me = sched::current();
    let targets: Vec<Arc<Process>> = table(|t| {
        t.values()
            .filter(|p| {
                let (pgid, zombie) = p.with(|i| (i.pgid, matches!(i.state, State::Zombie(_))));
                match target {
                    KillTarget::Pid(pid) => p.pid == pid,
                    KillTarget::Group(g) => pgid == g && !zombie,
                    KillTarget::All => p.pid != 1 && p.pid != me.pid && !zombie,
                }
            })
            .cloned()
            .collect()
    });
    if targets.is_empty() {
        return Err(Errno::ESRCH);
    }
    if sig == 0 {
        return Ok(());
    }
    let info = signal::SigInfo {
        signo: sig,
        code: signal::SI_USER,
        pid: me.pid,
        addr: 0,
    };
    for p in &targets {
        if !p.with(|i| matches!(i.state, State::Zombie(_))) {
            signal::send(p, info);
        }
    }
    Ok(())
}

/// `setpgid(pid, pgid)`: put `pid` (0: the caller; else the caller or one of its
/// children) into group `pgid` (0: its own pid). EPERM across sessions or for a
/// session leader, ESRCH for another process (Linux `sys_setpgid`, simplified: no
/// exec check).
pub fn setpgid(pid: Pid, pgid: Pid) -> Result<(), Errno> {
    let me = sched::current();
    let pid = if pid == 0 { me.pid } else { pid };
    let target = lookup(pid).ok_or(Errno::ESRCH)?;
    let (ppid, sid) = target.with(|i| (i.ppid, i.sid));
    let my_sid = me.with(|i| i.sid);
    if pid != me.pid && ppid != me.pid {
        return Err(Errno::ESRCH);
    }
    if sid != my_sid || sid == pid {
        return Err(Errno::EPERM);
    }
    let pgid = if pgid == 0 { pid } else { pgid };
    if pgid != pid {
        // The group must exist in the same session.
        let ok = table(|t| {
            t.values()
                .any(|p| p.with(|i| i.pgid == pgid && i.sid == my_sid))
        });
        if !ok {
            return Err(Errno::EPERM);
        }
    }
    target.with(|i| i.pgid = pgid);
    Ok(())
}

/// `getpgid(pid)` (0: the caller) and `getsid(pid)`.
pub fn getpgid_getsid(pid: Pid) -> Result<(Pid, Pid), Errno> {
    let p = if pid == 0 {
        sched::current()
    } else {
        lookup(pid).ok_or(Errno::ESRCH)?
    };
    Ok(p.with(|i| (i.pgid, i.sid)))
}

/// `setsid()`: a new session and group led by the caller; EPERM if it already leads
/// a group.
pub fn setsid() -> Result<Pid, Errno> {
    let me = sched::current();
    let leads = table(|t| {
        t.values()
            .any(|p| p.pid != me.pid && p.with(|i| i.pgid == me.pid))
    });
    if leads || me.with(|i| i.pgid == me.pid) {
        return Err(Errno::EPERM);
    }
    me.with(|i| {
        i.pgid = me.pid;
        i.sid = me.pid;
    });
    Ok(me.pid)
}

/// Whether init has ended and the machine should power off.
pub fn power_off_requested() -> bool {
    POWER_OFF.load(Ordering::Acquire) != 0
}

/// Tear down every process, check that every frame came back, print the status line
/// the runner reads, and leave QEMU. Runs on the scheduler's stack.
pub fn power_off_now() -> ! {
    let status = POWER_OFF.load(Ordering::Acquire).saturating_sub(1);
    interrupts::disable();
    crate::vm::switch_to(None);
    sched::clear_all();
    let all: Vec<Arc<Process>> = table(|t| core::mem::take(t).into_values().collect());
    for p in &all {
        let (aspace, files) = p.with(|i| (i.aspace.take(), core::mem::take(&mut i.files)));
        drop(aspace);
        drop(files);
    }
    drop(all);
    let before = BOOT_FREE_FRAMES.load(Ordering::Relaxed);
    let after = frame::free_frames();
    let heap_grew = (crate::mm::heap::size() as usize)
        .saturating_sub(BOOT_HEAP_BYTES.load(Ordering::Relaxed))
        / crate::mm::PAGE_SIZE as usize;
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
        serial_println!(
            "[kernel] LEAK: {before} free frames before init, {after} after every process is gone"
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
