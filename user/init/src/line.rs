//! A line editor for a raw console: the serial line delivers every key as typed (no
//! kernel tty layer), so the shell echoes what it accepts and handles erasing itself.
//!
//! Enter (`\r` from a terminal, `\n` from a pipe, `\r\n` counted once) ends the line;
//! Backspace/DEL erases one character (`\b \b`); Ctrl-U erases the line; Ctrl-C
//! abandons it; Ctrl-D on an empty line is end of input; escape sequences (arrow keys)
//! and other control characters are ignored.

use alloc::string::String;
use alloc::vec::Vec;

/// Longest line accepted; further characters are dropped (and not echoed).
pub const MAX_LINE: usize = 1024;

/// What a byte completed.
pub enum Event {
    /// A whole line (without its end-of-line).
    Line(String),
    /// Ctrl-C: the line was abandoned.
    Interrupt,
    /// Ctrl-D on an empty line.
    EndOfInput,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// After ESC.
    Started,
    /// After ESC [ : parameters until a final byte 0x40..=0x7e.
    Csi,
}

pub struct LineEditor {
    line: Vec<u8>,
    escape: Escape,
    after_cr: bool,
}

impl LineEditor {
    pub fn new() -> Self {
        LineEditor {
            line: Vec::new(),
            escape: Escape::None,
            after_cr: false,
        }
    }

    /// The unfinished line, taken (for end of input in the middle of a line).
    pub fn take_partial(&mut self) -> Option<String> {
        if self.line.is_empty() {
            return None;
        }
        let bytes = core::mem::take(&mut self.line);
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Feed one byte; what to echo is appended to `echo`.
    pub fn feed(&mut self, b: u8, echo: &mut Vec<u8>) -> Option<Event> {
        let after_cr = core::mem::replace(&mut self.after_cr, false);
        match self.escape {
            Escape::Started => {
                self.escape = if b == b'[' { Escape::Csi } else { Escape::None };
                return None;
            }
            Escape::Csi => {
                if (0x40..=0x7e).contains(&b) {
                    self.escape = Escape::None;
                }
                return None;
            }
            Escape::None => {}
        }
        match b {
            b'\n' if after_cr => None,
            b'\r' | b'\n' => {
                self.after_cr = b == b'\r';
                echo.push(b'\n');
                let bytes = core::mem::take(&mut self.line);
                Some(Event::Line(String::from_utf8_lossy(&bytes).into_owned()))
            }
            0x7f | 0x08 => {
                self.erase_char(echo);
                None
            }
            0x15 => {
                while !self.line.is_empty() {
                    self.erase_char(echo);
                }
                None
            }
            0x03 => {
                self.line.clear();
                echo.extend_from_slice(b"^C\n");
                Some(Event::Interrupt)
            }
            0x04 if self.line.is_empty() => Some(Event::EndOfInput),
            0x1b => {
                self.escape = Escape::Started;
                None
            }
            b'\t' => self.accept(b' ', echo),
            0..=0x1f => None,
            _ => self.accept(b, echo),
        }
    }

    fn accept(&mut self, b: u8, echo: &mut Vec<u8>) -> Option<Event> {
        if self.line.len() < MAX_LINE {
            self.line.push(b);
            echo.push(b);
        }
        None
    }

    /// Remove the last character (all bytes of a UTF-8 sequence) and erase it on screen.
    fn erase_char(&mut self, echo: &mut Vec<u8>) {
        while let Some(b) = self.line.pop() {
            if b & 0xc0 != 0x80 {
                echo.extend_from_slice(b"\x08 \x08");
                break;
            }
        }
    }
}
