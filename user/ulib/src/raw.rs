//! The `syscall` instruction, and nothing else. Linux x86-64 convention: number in rax,
//! arguments in rdi, rsi, rdx, r10, r8, r9; result in rax (`-errno` in -4095..=-1 on
//! failure); the CPU clobbers rcx (return rip) and r11 (rflags). The kernel runs on its
//! own stack, so the user stack (and its red zone) is untouched: `nostack`.

use core::arch::asm;

/// System call with up to six arguments (unused ones are passed as 0).
///
/// # Safety
///
/// A system call can do anything the process can: unmap memory Rust still uses, write
/// through the pointers it is given, end the process. The caller must make sure that
/// every pointer argument is valid for what call `nr` does with it, and that the call
/// does not invalidate memory Rust code still refers to.
#[inline(always)]
pub unsafe fn syscall6(nr: usize, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the caller upholds this function's contract; the asm follows the Linux
    // x86-64 system call convention and declares every register the kernel or the CPU
    // changes (rax result, rcx, r11). Memory is not marked untouched: the kernel may read
    // and write through the arguments.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}
