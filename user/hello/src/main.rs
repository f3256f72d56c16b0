//! `hello`: the smallest ring-3 program. Prints a greeting and its arguments, exits 0.
//! Needs only execve's initial stack, write(2) and exit_group(2) from the kernel.

#![no_std]
#![no_main]

use ulib::println;

ulib::entry!(main);

fn main(args: &[&str]) -> i32 {
    println!("hello from ring 3");
    println!("argc = {}", args.len());
    for (i, arg) in args.iter().enumerate() {
        println!("argv[{i}] = {arg:?}");
    }
    0
}
