//! `t_rust`: user-space tests written in Rust on `ulib` (no libc), the Rust counterpart
//! of the C programs in user/c. The harness ([`harness`]) runs each test in a child
//! process and checks that free memory is back to its baseline once the test's processes
//! are reaped (exactly, on memkernel).
//!
//! - `rust::fork_wait4_exit_status`: fork returns 0 / the child's pid; getpid and getppid
//!   agree between parent and child; a child's exit(7) arrives as the Linux wait status
//!   0x0700 (WIFEXITED, WEXITSTATUS 7); then wait4 says -ECHILD;
//! - `rust::heap_vec_string_btreemap`: `Vec`, `String` and `BTreeMap` on ulib's brk heap;
//!   1 MiB in 4 KiB blocks, freed and reallocated (the heap reuses the space), contents
//!   checked at every step, everything returned at the end;
//! - `rust::mmap_munmap_mprotect`: an anonymous RW mapping reads as zeros and keeps what
//!   is written; after munmap a child touching it dies with SIGSEGV; after
//!   mprotect(PROT_READ) reads work and a child writing dies with SIGSEGV (signal 11 in
//!   the wait status); mprotect back to RW makes it writable again;
//! - `rust::cow_64k_buffer`: 64 KiB (on the heap, and in an mmap) written before fork;
//!   the child overwrites all of it and exits; the parent still sees the old contents and
//!   can then write its own copy;
//! - `rust::execve_hello`: a child execs /bin/hello with arguments and exits 0; this
//!   program re-executed with arguments gets them exactly and keeps its pid; execve of a
//!   missing file returns -ENOENT and the caller goes on;
//! - `rust::write_bad_pointer_efault`: write(1, 1 as *const u8, 10) (and a kernel-half
//!   pointer) returns -EFAULT, and the program goes on.
//!
//! `t_rust --only SUBSTRING` runs the tests whose names contain SUBSTRING.

#![no_std]
#![no_main]

extern crate alloc;

mod harness;
mod tests;

use harness::Test;

ulib::entry!(main);

/// argv[1] of the re-executed image in `rust::execve_hello` (see [`tests::exec_check`]).
pub const EXEC_CHECK: &str = "--exec-check";

const TESTS: &[Test] = &[
    Test {
        name: "rust::fork_wait4_exit_status",
        run: tests::fork_wait4,
        timeout_s: 0,
    },
    Test {
        name: "rust::heap_vec_string_btreemap",
        run: tests::heap,
        timeout_s: 0,
    },
    Test {
        name: "rust::mmap_munmap_mprotect",
        run: tests::mmap_mprotect,
        timeout_s: 0,
    },
    Test {
        name: "rust::cow_64k_buffer",
        run: tests::cow,
        timeout_s: 0,
    },
    Test {
        name: "rust::execve_hello",
        run: tests::execve,
        timeout_s: 0,
    },
    Test {
        name: "rust::write_bad_pointer_efault",
        run: tests::bad_pointer,
        timeout_s: 0,
    },
];

fn main(args: &[&str]) -> i32 {
    if args.get(1) == Some(&EXEC_CHECK) {
        return tests::exec_check(args);
    }
    let only = match args {
        [_, flag, what, ..] if *flag == "--only" => Some(*what),
        _ => None,
    };
    harness::main(TESTS, only)
}
