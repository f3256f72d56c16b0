//! `_start`: where the kernel enters a new program (the ELF entry point).
//!
//! Linux's initial stack, which the kernel builds (from low to high addresses, rsp
//! pointing at argc, 16-byte aligned):
//!
//! ```text
//!   rsp ->  argc
//!           argv[0] .. argv[argc-1], NULL
//!           envp[0] .. envp[n-1],    NULL
//!           auxv: (type, value) pairs ..., (AT_NULL = 0, 0)
//!           ... the strings and AT_RANDOM's 16 bytes, higher up
//! ```
//!
//! The registers other than rsp carry nothing we use (Linux zeroes them; rdx would be
//! a function for atexit, which we ignore).

use core::ffi::{c_char, CStr};

use crate::env;
use crate::sys;

core::arch::global_asm!(
    ".globl _start",
    ".type _start, @function",
    "_start:",
    // No caller frame: end the frame-pointer chain for debuggers.
    "    xor ebp, ebp",
    // First argument: the initial stack pointer (address of argc).
    "    mov rdi, rsp",
    // The SysV ABI wants rsp 16-byte aligned at a call; Linux gives us that already,
    // but do not depend on it.
    "    and rsp, -16",
    "    call {start_rust}",
    "    ud2",
    ".size _start, . - _start",
    start_rust = sym start_rust,
);

extern "Rust" {
    /// The program's `main`, declared with `ulib::entry!`.
    fn __ulib_main(args: &[&'static str]) -> i32;
}

/// Up to this many arguments are passed to `main` from a table on the stack (no heap
/// needed, so a program that only prints needs only `write` and `exit_group`).
const STACK_ARGS: usize = 32;

/// Decode the initial stack, run `main`, exit with its status.
///
/// # Safety
///
/// `sp` must be the stack pointer the kernel started the program with, pointing at a
/// Linux initial stack as described in this module's documentation. Called once, by
/// `_start`.
unsafe extern "C" fn start_rust(sp: *const usize) -> ! {
    // SAFETY: per this function's contract, sp points at argc, followed by argc argv
    // pointers and a NULL, then the NULL-terminated envp array, then the auxv pairs
    // ending with AT_NULL. All of it stays untouched for the life of the program (it is
    // above our stack frames), so 'static references into it are sound.
    unsafe {
        let argc = *sp;
        let argv = sp.add(1) as *const *const c_char;
        let envp = argv.add(argc + 1);
        let mut p = envp;
        while !(*p).is_null() {
            p = p.add(1);
        }
        let auxv = p.add(1) as *const usize;
        env::init(argc, argv, envp, auxv);

        let mut table: [&'static str; STACK_ARGS] = [""; STACK_ARGS];
        let status = if argc <= STACK_ARGS {
            for (i, slot) in table.iter_mut().enumerate().take(argc) {
                *slot = arg_str(*argv.add(i));
            }
            __ulib_main(&table[..argc])
        } else {
            let args: alloc::vec::Vec<&'static str> =
                (0..argc).map(|i| arg_str(*argv.add(i))).collect();
            __ulib_main(&args)
        };
        sys::exit_group(status)
    }
}

/// A NUL-terminated argument string as `&str` (invalid UTF-8 is replaced, on the heap).
///
/// # Safety
///
/// `p` must point to a NUL-terminated string that lives, unchanged, for the rest of
/// the program (the initial stack's strings do).
pub(crate) unsafe fn arg_str(p: *const c_char) -> &'static str {
    if p.is_null() {
        return "";
    }
    // SAFETY: per the contract, p is a 'static NUL-terminated string.
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    match core::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(_) => alloc::boxed::Box::leak(
            alloc::string::String::from_utf8_lossy(bytes)
                .into_owned()
                .into_boxed_str(),
        ),
    }
}
