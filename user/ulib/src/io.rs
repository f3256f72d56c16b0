//! Output: `print!`/`println!` to fd 1, `eprint!`/`eprintln!` to fd 2.
//!
//! Each macro call formats into a 512-byte buffer on the stack and hands it to the
//! kernel with as few `write` calls as possible (one for any line that fits), so lines
//! from different processes do not interleave mid-line and no heap is needed.

use core::fmt;

use crate::errno::Errno;
use crate::sys;

pub const STDIN: usize = 0;
pub const STDOUT: usize = 1;
pub const STDERR: usize = 2;

/// Write all of `bytes` to `fd`, retrying after short writes and `EINTR`.
pub fn write_all(fd: usize, mut bytes: &[u8]) -> Result<(), Errno> {
    while !bytes.is_empty() {
        match sys::write(fd, bytes) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => bytes = &bytes[n.min(bytes.len())..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A small buffered writer for one file descriptor; flushes when full and on drop.
pub struct FdWriter {
    fd: usize,
    len: usize,
    buf: [u8; 512],
}

impl FdWriter {
    pub const fn new(fd: usize) -> Self {
        FdWriter {
            fd,
            len: 0,
            buf: [0; 512],
        }
    }

    /// Hand the buffered bytes to the kernel. Errors are dropped, like a full console.
    pub fn flush(&mut self) {
        let _ = write_all(self.fd, &self.buf[..self.len]);
        self.len = 0;
    }

    /// Buffer raw bytes.
    pub fn write_bytes(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.len == self.buf.len() {
                self.flush();
            }
            let n = bytes.len().min(self.buf.len() - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
            self.len += n;
            bytes = &bytes[n..];
        }
    }
}

impl fmt::Write for FdWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

impl Drop for FdWriter {
    fn drop(&mut self) {
        self.flush();
    }
}

#[doc(hidden)]
pub fn _print(fd: usize, args: fmt::Arguments<'_>) {
    let mut w = FdWriter::new(fd);
    let _ = fmt::Write::write_fmt(&mut w, args);
}

/// Like std's `print!`, to fd 1.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::io::_print($crate::io::STDOUT, format_args!($($arg)*)) };
}

/// Like std's `println!`, to fd 1.
#[macro_export]
macro_rules! println {
    () => { $crate::io::_print($crate::io::STDOUT, format_args!("\n")) };
    ($($arg:tt)*) => {
        $crate::io::_print($crate::io::STDOUT, format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Like std's `eprint!`, to fd 2.
#[macro_export]
macro_rules! eprint {
    ($($arg:tt)*) => { $crate::io::_print($crate::io::STDERR, format_args!($($arg)*)) };
}

/// Like std's `eprintln!`, to fd 2.
#[macro_export]
macro_rules! eprintln {
    () => { $crate::io::_print($crate::io::STDERR, format_args!("\n")) };
    ($($arg:tt)*) => {
        $crate::io::_print($crate::io::STDERR, format_args!("{}\n", format_args!($($arg)*)))
    };
}
