//! Pipes (Linux fs/pipe.c): a 64 KiB ring of bytes with a read end and a write end, each
//! an open file.
//!
//! - A read takes what is there (at most what was asked), waits while the pipe is empty
//!   and a writer exists, and returns 0 (end of file) once every write end is closed.
//! - A write of at most `PIPE_BUF` (4096) bytes goes in whole or waits until it fits
//!   (POSIX atomicity); a longer one goes in as room appears. With no read end left it
//!   fails with EPIPE (the system-call layer adds SIGPIPE, as Linux's `pipe_write`).
//! - O_NONBLOCK: EAGAIN instead of waiting. Waits end early, with ERESTARTSYS, when a
//!   signal arrives (a write that moved some bytes returns their count instead).
//! - `poll`: the read end is readable with data, HUP with no writer; the write end is
//!   writable with room, ERR with no reader.
//!
//! Locks: readers are serialized by one sleeping mutex, writers by another (Linux holds
//! one `pipe->mutex` for both), so a reader can copy to user memory, which may fault and
//! sleep, with the data still in the ring and take it out only once it was delivered.
//! Neither is held while waiting (Linux drops `pipe->mutex` to wait): a waiting reader or
//! writer never holds up another. The ring itself is behind a spinlock, which the wait
//! conditions read with interrupts off.

#![forbid(unsafe_code)]

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::{boxed, Blocking, File, FileOps, OpenMode, PollEvents, Stat};
use crate::error::Errno;
use crate::sync::{Mutex, SpinLock, WaitQueue};
use crate::vm::uaccess;

/// Bytes a pipe holds (Linux's default: 16 pages).
pub const PIPE_SIZE: usize = 65536;
/// Writes up to this size are atomic (POSIX `PIPE_BUF`, Linux's page size).
pub const PIPE_BUF: usize = 4096;
/// Bytes moved per step between the ring and user memory (a buffer on the kernel stack).
const CHUNK: usize = 2048;
/// `st_mode` of a pipe (Linux: S_IFIFO | 0600).
const S_IFIFO: u32 = 0o010000;

/// The ring and who is at each end.
struct Ring {
    buf: Vec<u8>,
    head: usize,
    len: usize,
    readers: usize,
    writers: usize,
}

impl Ring {
    fn space(&self) -> usize {
        PIPE_SIZE - self.len
    }

    /// Copy up to `out.len()` bytes from the head, without taking them out.
    fn peek(&self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len);
        for (i, b) in out[..n].iter_mut().enumerate() {
            *b = self.buf[(self.head + i) % PIPE_SIZE];
        }
        n
    }

    fn consume(&mut self, n: usize) {
        self.head = (self.head + n) % PIPE_SIZE;
        self.len -= n;
    }

    fn push(&mut self, data: &[u8]) {
        debug_assert!(data.len() <= self.space());
        for (i, &b) in data.iter().enumerate() {
            self.buf[(self.head + self.len + i) % PIPE_SIZE] = b;
        }
        self.len += data.len();
    }
}

/// One pipe, shared by its two ends.
struct Pipe {
    ring: SpinLock<Ring>,
    /// Woken when data arrives or the last writer goes.
    readable: WaitQueue,
    /// Woken when room appears or the last reader goes.
    writable: WaitQueue,
    read_lock: Mutex<()>,
    write_lock: Mutex<()>,
}

/// Which end an open file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Read,
    Write,
}

/// The file operations of one end; dropping it (the last reference to its open file)
/// closes that end (Linux `pipe_release`).
struct PipeEnd {
    pipe: Arc<Pipe>,
    end: End,
}

/// A new pipe: (read end, write end), both blocking (Linux `create_pipe_files`).
/// ENOMEM if its ring or files cannot be allocated.
pub fn pipe() -> Result<(Arc<File>, Arc<File>), Errno> {
    let mut buf = Vec::new();
    buf.try_reserve_exact(PIPE_SIZE)
        .map_err(|_| Errno::ENOMEM)?;
    buf.resize(PIPE_SIZE, 0);
    let pipe = Arc::try_new(Pipe {
        ring: SpinLock::new(
            "pipe ring",
            Ring {
                buf,
                head: 0,
                len: 0,
                readers: 1,
                writers: 1,
            },
        ),
        readable: WaitQueue::new(),
        writable: WaitQueue::new(),
        read_lock: Mutex::new("pipe readers", ()),
        write_lock: Mutex::new("pipe writers", ()),
    })
    .map_err(|_| Errno::ENOMEM)?;
    // Each end counts from the moment its PipeEnd exists: if a later step fails, the
    // dropped end releases itself.
    let reader = boxed(PipeEnd {
        pipe: pipe.clone(),
        end: End::Read,
    });
    let writer = boxed(PipeEnd {
        pipe,
        end: End::Write,
    });
    let (reader, writer) = (reader?, writer?);
    let r = File::new(reader, OpenMode::ReadOnly)?;
    let w = File::new(writer, OpenMode::WriteOnly)?;
    Ok((r, w))
}

impl PipeEnd {
    fn read_pipe(&self, buf: u64, count: usize, blocking: Blocking) -> Result<usize, Errno> {
        if count == 0 {
            return Ok(0);
        }
        let p = &self.pipe;
        // Wait for data without holding the readers' lock (as Linux's pipe_read drops
        // pipe->mutex to wait): a reader waiting on an empty pipe must not hold up
        // another, a non-blocking one above all.
        let _readers = loop {
            let guard = p
                .read_lock
                .lock_killable()
                .map_err(|_| Errno::ERESTARTSYS)?;
            let (len, writers) = p.ring.with(|r| (r.len, r.writers));
            if len > 0 {
                break guard;
            }
            if writers == 0 {
                return Ok(0); // end of file
            }
            if blocking == Blocking::NoWait {
                return Err(Errno::EAGAIN);
            }
            drop(guard);
            p.readable
                .wait_interruptible(|| p.ring.with(|r| r.len > 0 || r.writers == 0))
                .map_err(|_| Errno::ERESTARTSYS)?;
        };
        // Readers are serialized: what is peeked stays at the head until it is taken.
        let mut done = 0;
        let mut chunk = [0u8; CHUNK];
        while done < count {
            let n = p
                .ring
                .with(|r| r.peek(&mut chunk[..(count - done).min(CHUNK)]));
            if n == 0 {
                break;
            }
            if let Err(e) = uaccess::write_bytes(buf + done as u64, &chunk[..n]) {
                if done == 0 {
                    return Err(e);
                }
                break;
            }
            p.ring.with(|r| r.consume(n));
            done += n;
        }
        p.writable.wake_all();
        Ok(done)
    }

    fn write_pipe(&self, buf: u64, count: usize, blocking: Blocking) -> Result<usize, Errno> {
        if count == 0 {
            return Ok(0);
        }
        let p = &self.pipe;
        let mut writers = Some(
            p.write_lock
                .lock_killable()
                .map_err(|_| Errno::ERESTARTSYS)?,
        );
        let mut done = 0;
        let mut chunk = [0u8; CHUNK];
        while done < count {
            if writers.is_none() {
                writers = Some(
                    p.write_lock
                        .lock_killable()
                        .map_err(|_| Errno::ERESTARTSYS)?,
                );
            }
            // An atomic write waits for room for all of it (what is left of it: writers
            // are serialized and the room only grows, so it never waits again); a long
            // one for any room.
            let needed = if count <= PIPE_BUF { count - done } else { 1 };
            let (space, readers) = p.ring.with(|r| (r.space(), r.readers));
            if readers == 0 {
                return if done > 0 {
                    Ok(done)
                } else {
                    Err(Errno::EPIPE)
                };
            }
            if space < needed {
                if blocking == Blocking::NoWait {
                    return if done > 0 {
                        Ok(done)
                    } else {
                        Err(Errno::EAGAIN)
                    };
                }
                // Wait without the writers' lock, as Linux's pipe_write drops
                // pipe->mutex: another writer (a non-blocking one) must not be held up.
                writers = None;
                let waited = p
                    .writable
                    .wait_interruptible(|| p.ring.with(|r| r.readers == 0 || r.space() >= needed));
                if waited.is_err() {
                    return if done > 0 {
                        Ok(done)
                    } else {
                        Err(Errno::ERESTARTSYS)
                    };
                }
                continue;
            }
            // Writers are serialized: the room only grows while the bytes are fetched.
            let n = (count - done).min(space).min(CHUNK);
            if let Err(e) = uaccess::read_bytes(buf + done as u64, &mut chunk[..n]) {
                return if done > 0 { Ok(done) } else { Err(e) };
            }
            p.ring.with(|r| r.push(&chunk[..n]));
            done += n;
            p.readable.wake_all();
        }
        Ok(done)
    }
}

impl FileOps for PipeEnd {
    fn read(&self, pos: usize, buf: u64, count: usize) -> Result<usize, Errno> {
        self.read_as(pos, buf, count, Blocking::Wait)
    }

    fn write(&self, buf: u64, count: usize) -> Result<usize, Errno> {
        self.write_as(buf, count, Blocking::Wait)
    }

    fn read_as(
        &self,
        _pos: usize,
        buf: u64,
        count: usize,
        blocking: Blocking,
    ) -> Result<usize, Errno> {
        match self.end {
            End::Read => self.read_pipe(buf, count, blocking),
            End::Write => Err(Errno::EBADF),
        }
    }

    fn write_as(&self, buf: u64, count: usize, blocking: Blocking) -> Result<usize, Errno> {
        match self.end {
            End::Write => self.write_pipe(buf, count, blocking),
            End::Read => Err(Errno::EBADF),
        }
    }

    /// FIONREAD: the bytes waiting in the pipe.
    fn ioctl(&self, request: u32, arg: u64) -> Result<u64, Errno> {
        const FIONREAD: u32 = 0x541b;
        if request != FIONREAD {
            return Err(Errno::ENOTTY);
        }
        let len = self.pipe.ring.with(|r| r.len);
        uaccess::write_i32(arg, len as i32)?;
        Ok(0)
    }

    fn stat(&self) -> Stat {
        Stat {
            ino: 0,
            mode: S_IFIFO | 0o600,
            rdev: 0,
            size: 0,
        }
    }

    fn poll(&self) -> PollEvents {
        self.pipe.ring.with(|r| match self.end {
            End::Read => {
                let mut ev = PollEvents::empty();
                if r.len > 0 {
                    ev |= PollEvents::IN;
                }
                if r.writers == 0 {
                    ev |= PollEvents::HUP;
                }
                ev
            }
            End::Write => {
                let mut ev = PollEvents::empty();
                if r.space() > 0 {
                    ev |= PollEvents::OUT;
                }
                if r.readers == 0 {
                    ev |= PollEvents::ERR;
                }
                ev
            }
        })
    }

    /// A stream: lseek and pread64 answer ESPIPE.
    fn seekable(&self) -> bool {
        false
    }
}

impl Drop for PipeEnd {
    /// The last reference to this end's open file is gone: close the end and wake the
    /// other side (a reader sees end of file, a writer EPIPE).
    fn drop(&mut self) {
        self.pipe.ring.with(|r| match self.end {
            End::Read => r.readers -= 1,
            End::Write => r.writers -= 1,
        });
        self.pipe.readable.wake_all();
        self.pipe.writable.wake_all();
    }
}
