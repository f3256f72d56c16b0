//! `/init`: pid 1, a small shell on the console (fd 0 in, fd 1 out).
//!
//! It reads a line (echoing and editing it itself: see [`line`]), splits it into words
//! (`"..."` and `'...'` group words) and either runs a built-in or starts
//! `/bin/NAME ARGS...` with fork + execve and waits for it with wait4, reporting any
//! non-zero ending as "exited with status N" / "killed by signal N".
//!
//! Built-ins: `help [NAME]` (the built-ins and every program in /bin with a line on
//! what it is: [`programs`]), `ls [DIR...]` ([`dir`]: memkernel cannot list a directory
//! yet, so the shell knows where to look), `echo WORDS`, `free` (sysinfo(2)), `ps`
//! (prints /proc/ps when the kernel has it), `exit [N]`. Leaving the shell (`exit N`,
//! Ctrl-D, end of input) ends pid 1, and our kernel then powers the machine off and
//! QEMU's runner exits with N.
//! As init it also reaps orphans (wait4(-1, WNOHANG)) after every command.

#![no_std]
#![no_main]

extern crate alloc;

mod dir;
mod line;
mod programs;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use line::{Event, LineEditor};
use ulib::errno::Errno;
use ulib::io::{self, FdWriter};
use ulib::process::{self, Ended};
use ulib::sys;
use ulib::{eprintln, print, println};

ulib::entry!(main);

/// The greeting's second line.
const GREETING: &str = "type `help` for the programs in /bin, `ls` for the files; \
NAME ARGS runs /bin/NAME";

const PROMPT: &str = "# ";

/// What to do after a line.
enum Next {
    Continue,
    Exit(i32),
}

fn main(_args: &[&str]) -> i32 {
    println!("memkernel shell (pid {})", sys::getpid().unwrap_or(0));
    println!("{}", programs::BUILTINS);
    println!("{GREETING}");
    let mut editor = LineEditor::new();
    let mut buf = [0u8; 256];
    print!("{PROMPT}");
    loop {
        let n = match sys::read(io::STDIN, &mut buf) {
            Ok(0) => {
                // End of input: run what was typed, then leave like Ctrl-D.
                if let Some(partial) = editor.take_partial() {
                    println!();
                    if let Next::Exit(code) = run_line(&partial) {
                        return code;
                    }
                }
                println!("exit");
                return 0;
            }
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("init: cannot read the console: {e}");
                return 1;
            }
        };
        let mut echo = Vec::new();
        for &b in &buf[..n] {
            let event = editor.feed(b, &mut echo);
            if event.is_some() || echo.len() > 200 {
                let _ = io::write_all(io::STDOUT, &echo);
                echo.clear();
            }
            match event {
                None => {}
                Some(Event::Line(line)) => {
                    if let Next::Exit(code) = run_line(&line) {
                        return code;
                    }
                    reap_orphans();
                    print!("{PROMPT}");
                }
                Some(Event::Interrupt) => print!("{PROMPT}"),
                Some(Event::EndOfInput) => {
                    println!("exit");
                    return 0;
                }
            }
        }
        let _ = io::write_all(io::STDOUT, &echo);
    }
}

/// Run one command line.
fn run_line(line: &str) -> Next {
    let words = match split_words(line) {
        Ok(w) => w,
        Err(msg) => {
            eprintln!("sh: {msg}");
            return Next::Continue;
        }
    };
    let Some(name) = words.first() else {
        return Next::Continue;
    };
    let args: Vec<&str> = words.iter().map(String::as_str).collect();
    match name.as_str() {
        "help" => match &args[1..] {
            [] => programs::help(),
            names => names.iter().for_each(|n| programs::help_for(n)),
        },
        "ls" => builtin_ls(&args[1..]),
        "echo" => println!("{}", args[1..].join(" ")),
        "exit" => return builtin_exit(&args[1..]),
        "free" => builtin_free(),
        "ps" => builtin_ps(),
        _ => run_program(&args),
    }
    Next::Continue
}

/// Split a line into words at blanks; `"..."` and `'...'` keep blanks inside a word.
fn split_words(line: &str) -> Result<Vec<String>, &'static str> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(core::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote");
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// `exit [N]`: leave the shell with status N (default 0).
fn builtin_exit(args: &[&str]) -> Next {
    match args {
        [] => Next::Exit(0),
        [n] => match n.parse::<i32>() {
            Ok(code) => Next::Exit(code),
            Err(_) => {
                eprintln!("exit: {n}: not a number");
                Next::Continue
            }
        },
        _ => {
            eprintln!("exit: too many arguments");
            Next::Continue
        }
    }
}

/// `ls [DIR...]`: the entries of each DIR (default /bin, /dev, /proc), directories with
/// a trailing `/`, in columns; a file is printed as itself.
fn builtin_ls(args: &[&str]) {
    let dirs: &[&str] = if args.is_empty() {
        &["/bin", "/dev", "/proc"]
    } else {
        args
    };
    for (i, d) in dirs.iter().enumerate() {
        let mut st = sys::Stat::default();
        let is_file = alloc::ffi::CString::new(*d)
            .is_ok_and(|c| sys::stat(&c, &mut st).is_ok() && !st.is_dir());
        if is_file {
            println!("{d}");
            continue;
        }
        let Some(entries) = dir::list(d) else {
            eprintln!("ls: {d}: no such directory (or one this kernel cannot list)");
            continue;
        };
        if dirs.len() > 1 {
            if i > 0 {
                println!();
            }
            println!("{d}:");
        }
        let names: Vec<String> = entries
            .iter()
            .map(|e| {
                if e.is_dir {
                    format!("{}/", e.name)
                } else {
                    e.name.clone()
                }
            })
            .collect();
        dir::print_columns(&names);
    }
}

/// `free`: total, used and free RAM in KiB, from sysinfo(2).
fn builtin_free() {
    let mut info = sys::SysInfo::default();
    if let Err(e) = sys::sysinfo(&mut info) {
        eprintln!("free: sysinfo: {e}");
        return;
    }
    let unit = u64::from(info.mem_unit.max(1));
    let kib = |v: u64| v.saturating_mul(unit) / 1024;
    let (total, free) = (kib(info.totalram), kib(info.freeram));
    println!(
        "{:<6}{:>12}{:>12}{:>12}",
        "", "total KiB", "used KiB", "free KiB"
    );
    println!(
        "{:<6}{:>12}{:>12}{:>12}",
        "Mem:",
        total,
        total.saturating_sub(free),
        free
    );
}

/// `ps`: print /proc/ps if the kernel provides it.
fn builtin_ps() {
    let fd = match sys::open(c"/proc/ps", sys::O_RDONLY, 0) {
        Ok(fd) => fd,
        Err(e) => {
            println!("ps: not supported by this kernel (/proc/ps: {e})");
            return;
        }
    };
    let mut buf = [0u8; 512];
    loop {
        match sys::read(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let _ = io::write_all(io::STDOUT, &buf[..n]);
            }
            Err(Errno::EINTR) => {}
            Err(e) => {
                eprintln!("ps: read /proc/ps: {e}");
                break;
            }
        }
    }
    let _ = sys::close(fd);
}

/// Start /bin/NAME (or NAME itself when it contains a '/') with `args`, wait for it.
fn run_program(args: &[&str]) {
    let name = args[0];
    let path = if name.contains('/') {
        String::from(name)
    } else {
        format!("/bin/{name}")
    };
    let pid = match sys::fork() {
        Ok(0) => {
            let err = process::exec(&path, args);
            let mut w = FdWriter::new(io::STDERR);
            let _ = core::fmt::Write::write_fmt(
                &mut w,
                format_args!("sh: {name}: cannot run {path}: {err}\n"),
            );
            drop(w);
            sys::exit_group(if err == Errno::ENOENT { 127 } else { 126 });
        }
        Ok(pid) => pid,
        Err(e) => {
            eprintln!("sh: {name}: fork failed: {e}");
            return;
        }
    };
    match process::wait(pid as isize) {
        Ok((_, Ended::Exited(0))) => {}
        Ok((_, ended)) => println!("{name}: {ended}"),
        Err(e) => eprintln!("sh: {name}: wait4: {e}"),
    }
}

/// As pid 1, collect children that ended without their parent waiting (orphans are
/// given to init), without blocking.
fn reap_orphans() {
    let mut status = 0;
    while let Ok(pid) = sys::wait4(-1, &mut status, sys::WNOHANG) {
        if pid == 0 {
            break;
        }
    }
}
