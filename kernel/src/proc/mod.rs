//! Processes: creation (the first one, and `fork`), `execve`, `exit`, `wait4`, `kill`.
//!
//! A process is one thread of execution with its own address space, kernel stack,
//! file table and FS base. Processes form a tree (parent pid); when a parent exits, its
//! children are re-parented to init (pid 1), which reaps them. Linux: `kernel/fork.c`,
//! `kernel/exit.c`, `fs/exec.c`.
#![forbid(unsafe_code)]

pub mod elf;
mod exit;
mod fault_inject;
mod group;
pub mod pidfd;
pub mod procfs;
pub mod sched;
pub mod signal;

use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use x86_64::VirtAddr;

use crate::arch::x86_64::context::Context;
use crate::arch::x86_64::fpu::FpuState;
use crate::arch::x86_64::qemu::{self, ExitCode};
use crate::arch::x86_64::trap::TrapFrame;
use crate::error::Errno;
use crate::fs::FileTable;
use crate::mm::fallible::{try_string, NoMemory, TryPush};
use crate::mm::kstack::{KernelStack, KstackError};
use crate::mm::{frame, gfp};
use crate::serial_println;
use crate::sync::SpinLock;
use crate::vm::AddressSpace;

/// Process id.
pub type Pid = u32;

pub use exit::{
    current_killed, exit_current, exit_if_killed, power_off_now, power_off_requested,
    power_off_step, request_power_off, signal_current_for_fault, wait, WaitChildren, WaitFor,
    WaitMode,
};
pub use group::{getpgid_getsid, kill, setpgid, setsid, KillTarget};
pub use signal::{SIGABRT, SIGALRM, SIGBUS, SIGCHLD, SIGFPE, SIGILL, SIGKILL, SIGSEGV, SIGTRAP};

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
    /// Blocked; the place in the kernel's source that put it to sleep (its wait
    /// channel, Linux `/proc/PID/wchan`), shown by /proc/ps.
    Sleeping(WaitChannel),
    Zombie(ExitStatus),
}

/// Where a sleeping process waits: the source location of the wait (a `wait_killable`
/// on a pipe's queue, a mutex's `lock`, wait4's loop), recorded with `#[track_caller]`.
pub type WaitChannel = &'static core::panic::Location<'static>;

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
    /// The signal the parent gets when this process ends (Linux `exit_signal`): SIGCHLD
    /// after fork, clone's choice (0: none).
    pub exit_signal: i32,
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
    /// The signal the parent gets when the child ends (0: none).
    pub exit_signal: i32,
}

impl CloneOptions {
    /// What `fork()` asks for: nothing special, SIGCHLD at exit.
    pub fn fork() -> CloneOptions {
        CloneOptions {
            exit_signal: signal::SIGCHLD,
            ..CloneOptions::default()
        }
    }
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
    /// This process, for wait queues that hold it as a `sync::Task` (`&self` -> `Arc`);
    /// set right after the `Arc` is made (`Arc::new_cyclic` has no fallible form).
    this: spin::Once<Weak<Process>>,
    /// Its allocation-failure injection while it is off the CPU (`/proc/self/fail-nth`,
    /// `/proc/self/make-it-fail`; see `mm::gfp`).
    pub(super) faults: gfp::TaskFaults,
}

impl Process {
    /// A runnable process whose kernel stack `kstack` is prepared to resume at `rsp`
    /// (ENOMEM if the heap cannot hold it).
    fn new(
        pid: Pid,
        kstack: KernelStack,
        context: Context,
        fpu: FpuState,
        inner: ProcInner,
    ) -> Result<Arc<Process>, Errno> {
        let p = Arc::try_new(Process {
            pid,
            kstack,
            context,
            fpu: SpinLock::new("fpu state", fpu),
            killed: AtomicBool::new(false),
            inner: SpinLock::new("process", inner),
            this: spin::Once::new(),
            faults: gfp::TaskFaults::for_child(),
        })
        .map_err(|_| Errno::ENOMEM)?;
        p.this.call_once(|| Arc::downgrade(&p));
        Ok(p)
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

static TABLE: SpinLock<ProcTable> = SpinLock::new("process table", ProcTable::new());
/// Next pid to hand out; pid 1 is reserved for init.
static NEXT_PID: AtomicU32 = AtomicU32::new(2);
/// Free frames just before init started (the baseline checked at power-off).
static BOOT_FREE_FRAMES: AtomicUsize = AtomicUsize::new(0);
/// Frames the kernel heap held then, its page tables included (it grows on demand and
/// never shrinks: frames it took are not a leak).
static BOOT_HEAP_FRAMES: AtomicUsize = AtomicUsize::new(0);
/// Set when init has ended: (status + 1), 0 = not requested.
static POWER_OFF: AtomicU32 = AtomicU32::new(0);

/// The user processes, in pid order. Its room for [`MAX_PROCS`] entries is taken at
/// boot ([`ProcTable::reserve_all`]), so registering a process never allocates.
pub(super) struct ProcTable {
    procs: Vec<Arc<Process>>,
}

impl ProcTable {
    const fn new() -> ProcTable {
        ProcTable { procs: Vec::new() }
    }

    /// Take room for every process there can be (once, at boot).
    fn reserve_all(&mut self) -> Result<(), Errno> {
        self.procs
            .try_reserve_exact(MAX_PROCS)
            .map_err(|_| Errno::ENOMEM)
    }

    fn index(&self, pid: Pid) -> Result<usize, usize> {
        self.procs.binary_search_by_key(&pid, |p| p.pid)
    }

    pub(super) fn get(&self, pid: &Pid) -> Option<&Arc<Process>> {
        self.index(*pid).ok().map(|i| &self.procs[i])
    }

    /// Register `p`; EAGAIN when the table is full (never allocates: the room was
    /// taken at boot).
    fn insert(&mut self, p: Arc<Process>) -> Result<(), Errno> {
        if self.procs.len() >= self.procs.capacity() {
            return Err(Errno::EAGAIN);
        }
        let at = self.index(p.pid).unwrap_or_else(|at| at);
        self.procs.insert(at, p);
        Ok(())
    }

    pub(super) fn remove(&mut self, pid: &Pid) -> Option<Arc<Process>> {
        self.index(*pid).ok().map(|i| self.procs.remove(i))
    }

    pub(super) fn values(&self) -> core::slice::Iter<'_, Arc<Process>> {
        self.procs.iter()
    }

    pub(super) fn len(&self) -> usize {
        self.procs.len()
    }

    /// Every process, leaving the table empty (power-off).
    pub(super) fn take_all(&mut self) -> Vec<Arc<Process>> {
        core::mem::take(&mut self.procs)
    }
}

fn table<R>(f: impl FnOnce(&mut ProcTable) -> R) -> R {
    TABLE.with(f)
}

/// The process with `pid`.
pub fn lookup(pid: Pid) -> Option<Arc<Process>> {
    table(|t| t.get(&pid).cloned())
}

/// One line per process, for `/proc/ps`: pid, ppid, state, name.
pub fn list() -> Result<Vec<(Pid, Pid, State, String)>, NoMemory> {
    table(|t| {
        let mut out = Vec::new();
        out.try_reserve_exact(t.len())?;
        for p in t.values() {
            let (ppid, state, name) = p.with(|i| (i.ppid, i.state, try_string(&i.name)));
            out.push((p.pid, ppid, state, name?));
        }
        Ok(out)
    })
}

/// Take, once at boot, the room the process table and the scheduler's queues will
/// ever need (one entry per process, [`MAX_PROCS`]): starting, queueing and waking a
/// process then never allocate, so neither fork's last step nor the timer interrupt can
/// run out of heap.
pub fn init() -> Result<(), Errno> {
    table(ProcTable::reserve_all)?;
    sched::reserve_all(MAX_PROCS).map_err(|_| Errno::ENOMEM)
}

/// How many user processes exist (zombies included).
pub fn count() -> usize {
    table(|t| t.len())
}

/// Register a new process and queue it (EAGAIN if the table is full).
fn start(p: Arc<Process>) -> Result<(), Errno> {
    table(|t| t.insert(p.clone()))?;
    sched::enqueue(p);
    Ok(())
}

fn kstack_error(e: KstackError) -> Errno {
    match e {
        KstackError::NoSlot => Errno::EAGAIN,
        KstackError::NoMemory => Errno::ENOMEM,
    }
}

/// Kernel threads: not in the process table (they are not user processes and live
/// until power-off), so they never count against the leak check.
pub(super) static KTHREADS: SpinLock<Vec<Arc<Process>>> =
    SpinLock::new("kernel threads", Vec::new());

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
            exit_signal: 0,
        },
    )?;
    KTHREADS.with(|k| k.try_push(p.clone()))?;
    sched::enqueue(p.clone());
    Ok(p)
}

/// Create pid 1 from the initramfs file `path` with `argv`, ready to run.
pub fn spawn_init(path: &str, argv: &[&str]) -> Result<(), Errno> {
    BOOT_FREE_FRAMES.store(frame::free_frames(), Ordering::Relaxed);
    BOOT_HEAP_FRAMES.store(crate::mm::heap::frames(), Ordering::Relaxed);
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
            exit_signal: signal::SIGCHLD,
        },
    )?)
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
    // Everything that may fail comes first; the child becomes visible only at the end.
    let (name, exe) = parent.with(|i| (try_string(&i.name), try_string(&i.exe)));
    let (name, exe) = (name?, exe?);
    let (kstack, context) = KernelStack::new_user(&child_frame).map_err(kstack_error)?;
    let aspace = parent.aspace().fork()?;
    let pid = NEXT_PID.fetch_add(1, Ordering::Relaxed);
    // The parent's FPU registers are live on the CPU: the child starts with a copy.
    let mut fpu = FpuState::default();
    fpu.save();
    let (files, fs_base, brk, signals, pgid, sid) = parent.with(|i| {
        (
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
    let child = Process::new(
        pid,
        kstack,
        context,
        fpu,
        ProcInner {
            state: State::Runnable,
            ppid: parent.pid,
            name,
            aspace: Some(aspace.clone()),
            files,
            fs_base,
            brk,
            signals,
            pgid,
            sid,
            tid_addrs,
            exe,
            exit_signal: opts.exit_signal,
        },
    )?;
    // As Linux, a tid that cannot be stored is not an error of clone.
    if let Some(at) = opts.set_child_tid {
        let _ = aspace.copy_to_user(VirtAddr::new_truncate(at), &pid.to_le_bytes());
    }
    if let Some(at) = opts.set_parent_tid {
        let _ = parent
            .aspace()
            .copy_to_user(VirtAddr::new_truncate(at), &pid.to_le_bytes());
    }
    drop(aspace);
    start(child)?;
    Ok(pid)
}

/// `execve`: replace the current program with the initramfs file `path`. On failure
/// the caller is untouched and gets the error; on success `frame` starts the new
/// program (Linux `do_execveat_common`).
pub fn exec(frame: &mut TrapFrame, path: &str, argv: &[&str], envp: &[&str]) -> Result<(), Errno> {
    let data = crate::fs::initramfs::lookup(path).ok_or(Errno::ENOENT)?;
    let (name, exe) = (try_string(basename(path))?, try_string(path)?);
    let image = elf::load(data, argv, envp)?;
    // The point of no return: nothing below may fail.
    let p = sched::current();
    let new = image.aspace.clone();
    let old = p.with(|i| {
        i.name = name;
        i.brk = image.brk;
        i.fs_base = 0;
        i.signals.reset_for_exec();
        i.exe = exe;
        i.tid_addrs = TidAddrs::default();
        i.aspace.replace(image.aspace)
    });
    // Close-on-exec descriptors go (Linux `do_close_on_exec`), dropped outside the lock.
    let closing = p.with(|i| i.files.take_cloexec());
    drop(closing);
    crate::vm::switch_to(Some(new));
    x86_64::registers::model_specific::FsBase::write(VirtAddr::new(0));
    FpuState::default().restore();
    drop(old);
    *frame = TrapFrame::new_user(image.entry, image.stack_pointer);
    Ok(())
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
