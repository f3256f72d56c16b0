//! `ulib`: the tiny `no_std` runtime of our ring-3 programs.
//!
//! The programs are ordinary static Linux x86-64 executables (they run unchanged on a
//! Linux host, which is how they are tested before the kernel runs them). What a
//! program gets from this crate:
//!
//! - `_start` (in [`start`]): reads Linux's initial stack (argc, argv, envp, auxv),
//!   calls the program's `main(args: &[&str]) -> i32` (declared with [`entry!`]), then
//!   `exit_group(status)`;
//! - [`sys`]: one safe (or `unsafe` where memory safety depends on the arguments)
//!   wrapper per system call, returning `Result<usize, Errno>`;
//! - [`print!`] / [`println!`] (fd 1) and [`eprint!`] / [`eprintln!`] (fd 2);
//! - a heap on `brk` ([`heap`]), so `alloc` (`Vec`, `String`, `format!`) works;
//! - a panic handler that prints the message and exits with status 101.
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! ulib::entry!(main);
//! fn main(args: &[&str]) -> i32 {
//!     ulib::println!("hello, {}", args[0]);
//!     0
//! }
//! ```

#![no_std]

extern crate alloc;

pub mod env;
pub mod errno;
pub mod heap;
pub mod io;
pub mod nr;
pub mod process;
mod raw;
mod start;
pub mod sys;

pub use errno::Errno;

/// Declare the program's entry function: `ulib::entry!(main);` where
/// `fn main(args: &[&str]) -> i32`. `args[0]` is the program name as execve gave it;
/// the return value is the exit status.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[doc(hidden)]
        #[unsafe(no_mangle)]
        pub fn __ulib_main(args: &[&'static str]) -> i32 {
            let main: fn(&[&'static str]) -> i32 = $main;
            main(args)
        }
    };
}

/// The panic handler: `NAME: panicked at FILE:LINE:COL: MESSAGE` on fd 2, then exit
/// status 101 (what a panicking Rust program on Linux exits with).
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let name = env::program_name();
    match info.location() {
        Some(loc) => eprintln!("{name}: panicked at {loc}: {}", info.message()),
        None => eprintln!("{name}: panicked: {}", info.message()),
    }
    sys::exit_group(101)
}
