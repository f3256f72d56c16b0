//! Every way into the kernel from ring 3, and the one way back (Linux
//! `arch/x86/entry/entry_64.S`; xv6 `trampoline.S` + `usertrap`).
//!
//! ```text
//!  ring 3 ──syscall──────► syscall_entry ─┐   build one TrapFrame at the top of the
//!  ring 3 ──exception────► stub N ────────┤   process's kernel stack (Linux pt_regs,
//!  ring 3 ──interrupt────► stub 32 ───────┘   with orig_rax), then call trap_dispatch
//!                                   │
//!                 trap_dispatch: arch *decodes* the event (syscall, page fault with
//!                 CR2 and error bits, exception, timer tick) and hands it to the
//!                 handlers the upper layers registered (crate::trap); it decides
//!                 nothing itself
//!                                   │
//!                 handlers: the syscall, the fault, the signal... then
//!                 exit_to_user (reschedule, signals, kill)
//!                                   │
//!  ring 3 ◄──iretq── trap_return ◄──┘  (the frame is checked first: user CS/SS,
//!                                       canonical RIP, no IOPL)
//! ```
//!
//! The same stubs serve exceptions in kernel mode; those are kernel bugs, reported here
//! with a full register dump and a panic (int3 excepted: logged, execution goes on).
//! Double fault, NMI and machine check keep their own interrupt-stack handlers in
//! `idt.rs`: they cannot trust the stack they arrive on.
//!
//! A new process starts by "returning" through `trap_return` with a prepared frame
//! (`context::prepare_new_stack`), so fork, exec and the first process all enter ring 3
//! exactly like the end of a system call.

use core::arch::global_asm;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Once;
use x86_64::registers::control::Cr2;
use x86_64::registers::rflags::RFlags;
use x86_64::structures::idt::PageFaultErrorCode;

/// `vector` of a frame built by the `syscall` instruction (no IDT vector is this big).
pub const SYSCALL_VECTOR: u64 = 0x100;

/// The saved user (or interrupted kernel) registers, at the top of the kernel stack.
/// Lowest address first: what the entry code pushed last.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct TrapFrame {
    /// Keeps the frame 16-byte aligned (24 words).
    pub _pad: u64,
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// The syscall number as it arrived (rax is overwritten by the result); `u64::MAX`
    /// for exceptions and interrupts (Linux `orig_ax`, -1).
    pub orig_rax: u64,
    /// Exception or interrupt vector, or [`SYSCALL_VECTOR`].
    pub vector: u64,
    /// The CPU's error code for exceptions that have one, else 0.
    pub error_code: u64,
    // The hardware interrupt frame (built by the entry code for `syscall`).
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

const _: () = assert!(core::mem::size_of::<TrapFrame>() == 24 * 8);

/// User code and stack selectors, for the entry code (set at init from the GDT).
#[no_mangle]
static USER_CS_SELECTOR: AtomicU64 = AtomicU64::new(0);
#[no_mangle]
static USER_SS_SELECTOR: AtomicU64 = AtomicU64::new(0);

/// RFLAGS bits user code may choose (Linux `FIX_EFLAGS`): arithmetic flags, TF, DF,
/// AC, ID and friends. Never IOPL, NT, VM, RF; IF is forced on.
const USER_RFLAGS_MASK: u64 = RFlags::CARRY_FLAG.bits()
    | RFlags::PARITY_FLAG.bits()
    | RFlags::AUXILIARY_CARRY_FLAG.bits()
    | RFlags::ZERO_FLAG.bits()
    | RFlags::SIGN_FLAG.bits()
    | RFlags::TRAP_FLAG.bits()
    | RFlags::DIRECTION_FLAG.bits()
    | RFlags::OVERFLOW_FLAG.bits()
    | RFlags::ALIGNMENT_CHECK.bits()
    | RFlags::ID.bits();

impl TrapFrame {
    /// A frame that starts user code at `rip` with stack `rsp`, all other registers 0,
    /// interrupts enabled.
    pub fn new_user(rip: u64, rsp: u64) -> TrapFrame {
        TrapFrame {
            rip,
            rsp,
            rflags: (RFlags::INTERRUPT_FLAG | RFlags::from_bits_retain(0x2)).bits(),
            cs: USER_CS_SELECTOR.load(Ordering::Relaxed),
            ss: USER_SS_SELECTOR.load(Ordering::Relaxed),
            orig_rax: u64::MAX,
            ..TrapFrame::default()
        }
    }

    /// Whether the frame was interrupted in ring 3.
    pub fn from_user(&self) -> bool {
        self.cs & 3 == 3
    }

    /// Make the frame safe to return to ring 3 with `iretq`: user selectors, RFLAGS
    /// limited to what user code may set (IF on), and `Err` if RIP is not a canonical
    /// lower-half address below `user_end` (the caller decides what to do:
    /// the process gets SIGSEGV). A frame built by the kernel passes unchanged.
    pub fn sanitize_for_user(&mut self, user_end: u64) -> Result<(), BadUserFrame> {
        self.cs = USER_CS_SELECTOR.load(Ordering::Relaxed);
        self.ss = USER_SS_SELECTOR.load(Ordering::Relaxed);
        self.rflags = (self.rflags & USER_RFLAGS_MASK) | RFlags::INTERRUPT_FLAG.bits() | 0x2;
        // (RSP may hold anything: user code can use it as a plain register, and iretq
        // does not check it. A non-canonical RIP would make iretq fault in ring 0.)
        if self.rip >= user_end {
            return Err(BadUserFrame);
        }
        Ok(())
    }
}

/// A frame whose RIP lies outside user space: `iretq` must not take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadUserFrame;

/// Whether the interrupted code ran with interrupts enabled (a handler may enable
/// them, and so sleep, only then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterruptsWere {
    On,
    Off,
}

/// What happened, decoded. Arch reports; the upper layers decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapEvent {
    /// `syscall`: number in `orig_rax`, arguments in the frame.
    Syscall,
    /// #PF: the faulting address (CR2) and the CPU's error bits.
    PageFault { addr: u64, code: PageFaultErrorCode },
    /// Any other exception: its vector and error code.
    Exception { vector: u8, error_code: u64 },
    /// The timer interrupt (already counted and acknowledged).
    Timer,
}

/// The upper layers' handlers (registered once by `crate::trap::init`).
pub struct Handlers {
    /// An event from ring 3; returns when the frame is ready to go back (the handler
    /// runs `exit_to_user` itself).
    pub user_trap: fn(&mut TrapFrame, TrapEvent),
    /// Every timer tick, from user or kernel mode, with interrupts off: wake sleepers.
    pub timer_tick: fn(u64),
    /// A page fault in kernel mode (address, error bits, whether the interrupted code
    /// had interrupts on): `true` if the upper layer fixed it (the kernel touched user
    /// memory directly, as test kernels and the benchmark do); `false` is a kernel bug.
    pub kernel_page_fault: fn(u64, PageFaultErrorCode, InterruptsWere) -> bool,
    /// The lower-half limit for `sanitize_for_user`.
    pub user_end: u64,
}

static HANDLERS: Once<Handlers> = Once::new();

/// Register the upper layers' handlers (once, at boot, before interrupts are enabled).
pub fn set_handlers(h: Handlers) {
    HANDLERS.call_once(|| h);
}

/// Called by the entry code with the frame it built.
#[no_mangle]
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    let event = match frame.vector {
        SYSCALL_VECTOR => TrapEvent::Syscall,
        14 => TrapEvent::PageFault {
            addr: Cr2::read_raw(),
            code: PageFaultErrorCode::from_bits_truncate(frame.error_code),
        },
        v if v == u64::from(super::interrupts::TIMER_VECTOR) => {
            let now = super::interrupts::timer_tick();
            if let Some(h) = HANDLERS.get() {
                (h.timer_tick)(now);
            }
            TrapEvent::Timer
        }
        v if super::interrupts::is_spurious(v) => {
            super::interrupts::spurious(v);
            return;
        }
        v => TrapEvent::Exception {
            vector: v as u8,
            error_code: frame.error_code,
        },
    };
    if !frame.from_user() {
        kernel_trap(frame, event);
        return;
    }
    let h = HANDLERS
        .get()
        .expect("trap from ring 3 before trap handlers are set");
    (h.user_trap)(frame, event);
    if frame.sanitize_for_user(h.user_end).is_err() {
        // The upper layer returned a frame that cannot go back (it must have handled
        // this: a bad sigreturn is SIGSEGV). Never iretq to it.
        panic!(
            "trap_dispatch: returning to ring 3 with an invalid frame\n{}",
            Dump(frame)
        );
    }
}

/// An event in kernel mode: the timer just ticks; int3 is logged; anything else is a
/// kernel bug, reported with every register.
fn kernel_trap(frame: &TrapFrame, event: TrapEvent) {
    match event {
        TrapEvent::Timer => {}
        TrapEvent::Exception { vector: 3, .. } => {
            log::info!("breakpoint (int3) at rip={:#x}; continuing", frame.rip);
        }
        TrapEvent::PageFault { addr, code }
            if HANDLERS.get().is_some_and(|h| {
                let irq = if frame.rflags & RFlags::INTERRUPT_FLAG.bits() != 0 {
                    InterruptsWere::On
                } else {
                    InterruptsWere::Off
                };
                (h.kernel_page_fault)(addr, code, irq)
            }) => {}
        TrapEvent::PageFault { addr, code } => panic!(
            "EXCEPTION page fault (#PF) in the kernel, error code {:#x}\n  cr2={addr:#018x} ({})\n{}",
            frame.error_code,
            super::idt::DecodedPageFault(code),
            Dump(frame)
        ),
        TrapEvent::Exception { vector, error_code } => panic!(
            "EXCEPTION {} (vector {vector}) in the kernel, error code {error_code:#x}\n{}",
            exception_name(vector),
            Dump(frame)
        ),
        TrapEvent::Syscall => unreachable!("syscall from ring 0"),
    }
}

/// The name of an exception vector.
pub fn exception_name(vector: u8) -> &'static str {
    match vector {
        0 => "divide error (#DE)",
        1 => "debug (#DB)",
        3 => "breakpoint (#BP)",
        4 => "overflow (#OF)",
        5 => "bound range exceeded (#BR)",
        6 => "invalid opcode (#UD)",
        7 => "device not available (#NM)",
        10 => "invalid TSS (#TS)",
        11 => "segment not present (#NP)",
        12 => "stack-segment fault (#SS)",
        13 => "general protection fault (#GP)",
        14 => "page fault (#PF)",
        16 => "x87 floating point (#MF)",
        17 => "alignment check (#AC)",
        19 => "SIMD floating point (#XM)",
        20 => "virtualization (#VE)",
        21 => "control protection (#CP)",
        28 => "hypervisor injection (#HV)",
        29 => "VMM communication (#VC)",
        30 => "security exception (#SX)",
        _ => "reserved exception",
    }
}

/// A register dump, as the kernel prints it for a bug.
pub struct Dump<'a>(pub &'a TrapFrame);

impl fmt::Display for Dump<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        writeln!(
            f,
            "  rip={:#018x} cs={:#x} rflags={:#x} rsp={:#018x} ss={:#x}",
            r.rip, r.cs, r.rflags, r.rsp, r.ss
        )?;
        writeln!(
            f,
            "  rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}",
            r.rax, r.rbx, r.rcx, r.rdx
        )?;
        writeln!(
            f,
            "  rsi={:#018x} rdi={:#018x} rbp={:#018x} r8 ={:#018x}",
            r.rsi, r.rdi, r.rbp, r.r8
        )?;
        writeln!(
            f,
            "  r9 ={:#018x} r10={:#018x} r11={:#018x} r12={:#018x}",
            r.r9, r.r10, r.r11, r.r12
        )?;
        write!(
            f,
            "  r13={:#018x} r14={:#018x} r15={:#018x}",
            r.r13, r.r14, r.r15
        )
    }
}

/// The user code selector (what `rt_sigreturn` accepts as the saved CS).
pub fn user_code_selector() -> u64 {
    USER_CS_SELECTOR.load(Ordering::Relaxed)
}

/// Remember the user selectors for the entry code and `new_user` frames.
pub fn init(user_cs: u16, user_ss: u16) {
    USER_CS_SELECTOR.store(u64::from(user_cs), Ordering::Relaxed);
    USER_SS_SELECTOR.store(u64::from(user_ss), Ordering::Relaxed);
}

extern "C" {
    /// Restore the registers of the [`TrapFrame`] at `rsp` and `iretq`.
    pub fn trap_return() -> !;
    /// The `syscall` instruction's entry point (LSTAR).
    pub fn syscall_entry();
}

/// The address of the entry stub of `vector` (0-31 exceptions, 32-47 PIC interrupts).
pub fn stub_address(vector: u8) -> u64 {
    extern "C" {
        static trap_stub_table: [u64; 48];
    }
    assert!(
        vector < 48,
        "trap::stub_address: no stub for vector {vector}"
    );
    // SAFETY: the table is 48 addresses in .rodata, written by the assembler, never
    // changed.
    unsafe { trap_stub_table[usize::from(vector)] }
}

/// Kernel stack top of the running process; the syscall entry switches to it. Written
/// by the scheduler (with TSS rsp0) on every switch. One CPU, so one global is enough
/// (an SMP kernel keeps it per CPU, reached through GS after `swapgs`).
#[no_mangle]
static SYSCALL_KERNEL_RSP: AtomicU64 = AtomicU64::new(0);
/// Scratch slot for the user RSP during the syscall entry.
#[no_mangle]
static SYSCALL_USER_RSP: AtomicU64 = AtomicU64::new(0);

/// Make `top` the stack used by the next syscall and ring-3 interrupt.
pub fn set_kernel_stack(top: x86_64::VirtAddr) {
    SYSCALL_KERNEL_RSP.store(top.as_u64(), Ordering::Relaxed);
    super::gdt::set_kernel_stack(top);
}

// The entry stubs. Vectors with a CPU error code: 8, 10-14, 17, 21, 29, 30; the others
// push a 0 in its place, so every frame has the same layout.
macro_rules! stubs {
    ($($v:literal $kind:ident),* $(,)?) => {
        global_asm!(
            $(
                concat!(".global trap_stub_", stringify!($v)),
                concat!("trap_stub_", stringify!($v), ":"),
                stubs!(@push $kind),
                concat!("push ", stringify!($v)),
                "jmp trap_common",
            )*
            ".section .rodata",
            ".global trap_stub_table",
            ".p2align 3",
            "trap_stub_table:",
            $( concat!(".quad trap_stub_", stringify!($v)), )*
            ".text",
        );
    };
    (@push code) => { "" };
    (@push nocode) => { "push 0" };
}

stubs!(
    0 nocode, 1 nocode, 2 nocode, 3 nocode, 4 nocode, 5 nocode, 6 nocode, 7 nocode,
    8 code, 9 nocode, 10 code, 11 code, 12 code, 13 code, 14 code, 15 nocode,
    16 nocode, 17 code, 18 nocode, 19 nocode, 20 nocode, 21 code, 22 nocode, 23 nocode,
    24 nocode, 25 nocode, 26 nocode, 27 nocode, 28 nocode, 29 code, 30 code, 31 nocode,
    32 nocode, 33 nocode, 34 nocode, 35 nocode, 36 nocode, 37 nocode, 38 nocode, 39 nocode,
    40 nocode, 41 nocode, 42 nocode, 43 nocode, 44 nocode, 45 nocode, 46 nocode, 47 nocode,
);

// The entry code finds the saved CS at this offset (see trap_save below).
const _: () = assert!(core::mem::offset_of!(TrapFrame, cs) == 160);

global_asm!(
    // From a stub: [error code, vector] pushed on top of the CPU's interrupt frame.
    ".global trap_common",
    "trap_common:",
    "push -1", // orig_rax
    "trap_save:",
    "push rax",
    "push rbx",
    "push rcx",
    "push rdx",
    "push rsi",
    "push rdi",
    "push rbp",
    "push r8",
    "push r9",
    "push r10",
    "push r11",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "push 0", // _pad
    "mov rdi, rsp",
    // From ring 3 (the saved CS, 160 bytes up, has RPL 3): the frame-pointer chain of
    // a kernel backtrace ends here, not in the user's rbp (arch::x86_64::backtrace).
    "test qword ptr [rsp + 160], 3",
    "jz 2f",
    "xor ebp, ebp",
    "2:",
    "cld",
    "call trap_dispatch",
    ".global trap_return",
    "trap_return:",
    // rsp points at a TrapFrame. Interrupts off from here to iretq.
    "cli",
    "add rsp, 8", // _pad
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop r11",
    "pop r10",
    "pop r9",
    "pop r8",
    "pop rbp",
    "pop rdi",
    "pop rsi",
    "pop rdx",
    "pop rcx",
    "pop rbx",
    "pop rax",
    "add rsp, 24", // orig_rax, vector, error_code
    "iretq",
    // `syscall`: on the user stack, interrupts off (FMASK), RIP in rcx, RFLAGS in r11.
    // Switch to the kernel stack and build the same frame as an interrupt would.
    ".global syscall_entry",
    "syscall_entry:",
    "mov [rip + SYSCALL_USER_RSP], rsp",
    "mov rsp, [rip + SYSCALL_KERNEL_RSP]",
    "push qword ptr [rip + USER_SS_SELECTOR]", // ss
    "push qword ptr [rip + SYSCALL_USER_RSP]", // rsp
    "push r11",                                // rflags
    "push qword ptr [rip + USER_CS_SELECTOR]", // cs
    "push rcx",                                // rip
    "push 0",                                  // error code
    "push 0x100",                              // vector = SYSCALL_VECTOR
    "push rax",                                // orig_rax
    "jmp trap_save",
);
