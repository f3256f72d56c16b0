//! /dev/console: the serial port as a file (Linux `drivers/tty`, much simplified). Raw:
//! no echo, no line editing (the shell does both). Registered with `fs` at boot.
#![forbid(unsafe_code)]

use alloc::boxed::Box;

use crate::error::Errno;
use crate::fs::{self, FileOps, Stat};
use crate::proc::sched;
use crate::vm::uaccess;

/// Bytes moved per step between user memory and the port.
const CHUNK: usize = 512;

/// The console's file operations.
struct Console;

/// What `stat` reports: a character device, Linux's `/dev/console` number (5, 1).
const STAT: Stat = Stat {
    ino: 2,
    mode: fs::S_IFCHR | 0o620,
    rdev: fs::dev(5, 1),
    size: 0,
};

/// Register /dev/console.
pub fn register() -> Result<(), Errno> {
    fs::register("/dev/console", open, 0, STAT)
}

fn open(_minor: u32) -> Result<Box<dyn FileOps>, Errno> {
    fs::boxed(Console)
}

impl FileOps for Console {
    /// Block until there is input, then return what is there (at least one byte, at
    /// most 512). A signal interrupts the wait (restarted, or EINTR after a handler).
    fn read(&self, _pos: usize, buf: u64, count: usize) -> Result<usize, Errno> {
        // Check that the buffer is writable before waiting for a key.
        uaccess::write_bytes(buf, &[0])?;
        let mut got = [0u8; CHUNK];
        loop {
            let mut n = 0;
            while n < count.min(CHUNK) {
                match super::serial::try_read_byte() {
                    Some(b) => {
                        got[n] = b;
                        n += 1;
                    }
                    None => break,
                }
            }
            if n > 0 {
                uaccess::write_bytes(buf, &got[..n])?;
                return Ok(n);
            }
            // No receive interrupt is set up: poll every 10 ms.
            sched::sleep_ticks(10);
            if crate::proc::signal::pending_for_current() {
                return Err(Errno::ERESTARTSYS);
            }
        }
    }

    fn write(&self, buf: u64, count: usize) -> Result<usize, Errno> {
        let mut done = 0;
        while done < count {
            let mut chunk = [0u8; CHUNK];
            let n = (count - done).min(CHUNK);
            uaccess::read_bytes(buf + done as u64, &mut chunk[..n])?;
            super::serial::write_bytes(&chunk[..n]);
            done += n;
        }
        Ok(done)
    }

    /// TIOCGWINSZ: 24 rows, 80 columns (so C libraries see a terminal and
    /// line-buffer stdout); anything else ENOTTY.
    fn ioctl(&self, request: u32, arg: u64) -> Result<u64, Errno> {
        const TIOCGWINSZ: u32 = 0x5413;
        if request != TIOCGWINSZ {
            return Err(Errno::ENOTTY);
        }
        // struct winsize { rows, cols, xpixel, ypixel: u16 }
        let ws: [u16; 4] = [24, 80, 0, 0];
        let mut raw = [0u8; 8];
        for (i, v) in ws.iter().enumerate() {
            raw[i * 2..i * 2 + 2].copy_from_slice(&v.to_le_bytes());
        }
        uaccess::write_bytes(arg, &raw)?;
        Ok(0)
    }

    /// A stream: lseek and pread64 answer ESPIPE (Linux `no_llseek`).
    fn seekable(&self) -> bool {
        false
    }

    fn stat(&self) -> Stat {
        STAT
    }
}
