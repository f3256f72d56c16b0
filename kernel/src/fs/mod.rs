//! Files: open files and per-process file tables, the registry of named nodes, and the
//! initramfs.
//!
//! There is no real filesystem: `open` finds a path among the nodes their owners
//! registered (device files, /proc files), or in the initramfs. What a file does is a
//! [`FileOps`] (Linux `struct file_operations`) provided by its owner, so this module
//! names no driver. A [`File`] is shared (`Arc`) between the file tables of processes
//! that inherited it by `fork`, so they share its offset, as on Linux.
#![forbid(unsafe_code)]

mod fdtable;
pub mod initramfs;
pub mod pipe;

pub use fdtable::{CloseOnExec, FileTable, MAX_FDS};

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::error::Errno;
use crate::sync::SpinLock;

/// What an open file does (Linux `struct file_operations`). The owner of a kind of
/// file (the console driver, the accelerator driver, proc's /proc files, the initramfs)
/// implements it; the system-call layer calls through it and names no driver. The
/// defaults are Linux's answers for a file that lacks the operation.
pub trait FileOps: Send + Sync {
    /// Copy at most `count` bytes, from position `pos`, to user memory at `buf`;
    /// returns how many were delivered (0 at the end). May sleep (the console).
    fn read(&self, pos: usize, buf: u64, count: usize) -> Result<usize, Errno> {
        let _ = (pos, buf, count);
        Err(Errno::EINVAL)
    }
    /// Take `count` bytes from user memory at `buf`; returns how many were taken.
    fn write(&self, buf: u64, count: usize) -> Result<usize, Errno> {
        let _ = (buf, count);
        Err(Errno::EBADF)
    }
    /// [`read`](Self::read) for a file whose reads may have to wait (a pipe): with
    /// [`Blocking::NoWait`] (O_NONBLOCK) it fails with EAGAIN instead.
    fn read_as(
        &self,
        pos: usize,
        buf: u64,
        count: usize,
        blocking: Blocking,
    ) -> Result<usize, Errno> {
        let _ = blocking;
        self.read(pos, buf, count)
    }
    /// [`write`](Self::write), likewise.
    fn write_as(&self, buf: u64, count: usize, blocking: Blocking) -> Result<usize, Errno> {
        let _ = blocking;
        self.write(buf, count)
    }
    /// A device-specific request (Linux `unlocked_ioctl`).
    fn ioctl(&self, request: u32, arg: u64) -> Result<u64, Errno> {
        let _ = (request, arg);
        Err(Errno::ENOTTY)
    }
    /// What `fstat` reports.
    fn stat(&self) -> Stat;
    /// Which of `poll`'s events are ready now (Linux `file_operations.poll`). A regular
    /// file is always readable and writable.
    fn poll(&self) -> PollEvents {
        PollEvents::IN | PollEvents::OUT
    }
    /// Whether `lseek` and `pread64` make sense (Linux: the file has an `llseek`); a
    /// stream (the console, a pidfd, a device) answers ESPIPE to them.
    fn seekable(&self) -> bool {
        true
    }
}

/// `lseek`'s `whence` (Linux `SEEK_SET`, `SEEK_CUR`, `SEEK_END`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whence {
    Set,
    Current,
    End,
}

bitflags::bitflags! {
    /// `poll` events (Linux `POLL*`, same bit values).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct PollEvents: u16 {
        const IN = 0x001;
        const PRI = 0x002;
        const OUT = 0x004;
        const ERR = 0x008;
        const HUP = 0x010;
        const NVAL = 0x020;
    }
}

/// Whether a read or write that cannot go on now waits or fails with EAGAIN (the
/// open file's O_NONBLOCK).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocking {
    Wait,
    NoWait,
}

/// `open`'s and `fcntl(F_SETFL)`'s O_NONBLOCK.
pub const O_NONBLOCK: i32 = 0o4000;

/// How a file was opened (the access mode of `open`'s flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    ReadOnly,
    WriteOnly,
    ReadWrite,
}

impl OpenMode {
    fn readable(self) -> bool {
        matches!(self, OpenMode::ReadOnly | OpenMode::ReadWrite)
    }
    fn writable(self) -> bool {
        matches!(self, OpenMode::WriteOnly | OpenMode::ReadWrite)
    }
}

/// `ops` on the heap, as a file's operations (ENOMEM if the heap is full).
pub fn boxed(ops: impl FileOps + 'static) -> Result<Box<dyn FileOps>, Errno> {
    match Box::try_new(ops) {
        Ok(b) => Ok(b),
        Err(_) => Err(Errno::ENOMEM),
    }
}

/// An open file: its operations, how it was opened, the read position and the status
/// flags (O_NONBLOCK), all shared by the descriptors dup and fork make of it.
pub struct File {
    ops: Box<dyn FileOps>,
    mode: OpenMode,
    offset: SpinLock<usize>,
    nonblock: core::sync::atomic::AtomicBool,
}

impl core::fmt::Debug for File {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "File({:?}, mode {:o})", self.mode, self.ops.stat().mode)
    }
}

impl File {
    /// A new open file (ENOMEM if the heap is full).
    pub fn new(ops: Box<dyn FileOps>, mode: OpenMode) -> Result<Arc<File>, Errno> {
        Arc::try_new(File {
            ops,
            mode,
            offset: SpinLock::new("file offset", 0),
            nonblock: core::sync::atomic::AtomicBool::new(false),
        })
        .map_err(|_| Errno::ENOMEM)
    }

    /// `read`: EBADF unless opened for reading; the position moves only by what was
    /// delivered, so a bad buffer (EFAULT) leaves it where it was.
    pub fn read(&self, buf: u64, count: usize) -> Result<usize, Errno> {
        if !self.mode.readable() {
            return Err(Errno::EBADF);
        }
        if count == 0 {
            return Ok(0);
        }
        let pos = *self.offset.lock();
        let n = self.ops.read_as(pos, buf, count, self.blocking())?;
        *self.offset.lock() += n;
        Ok(n)
    }

    /// Whether an operation that cannot go on now waits (O_NONBLOCK clear).
    pub fn blocking(&self) -> Blocking {
        if self.nonblock.load(core::sync::atomic::Ordering::Relaxed) {
            Blocking::NoWait
        } else {
            Blocking::Wait
        }
    }

    /// The status flags `fcntl(F_GETFL)` reports: the access mode and O_NONBLOCK.
    pub fn status_flags(&self) -> i32 {
        let access = match self.mode {
            OpenMode::ReadOnly => 0,
            OpenMode::WriteOnly => 1,
            OpenMode::ReadWrite => 2,
        };
        match self.blocking() {
            Blocking::NoWait => access | O_NONBLOCK,
            Blocking::Wait => access,
        }
    }

    /// Set the status flags `fcntl(F_SETFL)` may change: O_NONBLOCK (others are
    /// ignored, as Linux ignores the access mode and creation flags there).
    pub fn set_status_flags(&self, flags: i32) {
        self.nonblock.store(
            flags & O_NONBLOCK != 0,
            core::sync::atomic::Ordering::Relaxed,
        );
    }

    /// `pread64`: read at `pos` without moving the position (ESPIPE for a stream).
    pub fn pread(&self, buf: u64, count: usize, pos: usize) -> Result<usize, Errno> {
        // Linux `ksys_pread64`: a stream is ESPIPE before the access mode is looked at.
        if !self.ops.seekable() {
            return Err(Errno::ESPIPE);
        }
        if !self.mode.readable() {
            return Err(Errno::EBADF);
        }
        if count == 0 {
            return Ok(0);
        }
        self.ops.read(pos, buf, count)
    }

    /// `lseek`: move the position (Linux `generic_file_llseek`; the end is the size
    /// `stat` reports). EINVAL for a position below 0, ESPIPE for a stream.
    pub fn lseek(&self, offset: i64, whence: Whence) -> Result<usize, Errno> {
        if !self.ops.seekable() {
            return Err(Errno::ESPIPE);
        }
        let mut pos = self.offset.lock();
        let base = match whence {
            Whence::Set => 0,
            Whence::Current => *pos as i64,
            Whence::End => self.ops.stat().size as i64,
        };
        let new = base
            .checked_add(offset)
            .filter(|p| *p >= 0)
            .ok_or(Errno::EINVAL)?;
        *pos = new as usize;
        Ok(new as usize)
    }

    /// `write`: EBADF unless opened for writing.
    pub fn write(&self, buf: u64, count: usize) -> Result<usize, Errno> {
        if !self.mode.writable() {
            return Err(Errno::EBADF);
        }
        self.ops.write_as(buf, count, self.blocking())
    }

    /// `ioctl`.
    pub fn ioctl(&self, request: u32, arg: u64) -> Result<u64, Errno> {
        self.ops.ioctl(request, arg)
    }

    /// `fstat`.
    pub fn stat(&self) -> Stat {
        self.ops.stat()
    }

    /// The `poll` events ready now.
    pub fn poll(&self) -> PollEvents {
        self.ops.poll()
    }
}

/// A read-only file of bytes: an initramfs file, or a text produced at open (/proc).
pub struct DataFile {
    bytes: DataBytes,
}

/// Where a data file's bytes live.
enum DataBytes {
    Static(&'static [u8]),
    Owned(Vec<u8>),
}

impl DataFile {
    /// A file of the initramfs.
    pub fn of_static(data: &'static [u8]) -> DataFile {
        DataFile {
            bytes: DataBytes::Static(data),
        }
    }
    /// A text produced now (a /proc file).
    pub fn of_owned(data: Vec<u8>) -> DataFile {
        DataFile {
            bytes: DataBytes::Owned(data),
        }
    }
    fn bytes(&self) -> &[u8] {
        match &self.bytes {
            DataBytes::Static(b) => b,
            DataBytes::Owned(b) => b,
        }
    }
}

impl FileOps for DataFile {
    fn read(&self, pos: usize, buf: u64, count: usize) -> Result<usize, Errno> {
        let data = self.bytes().get(pos..).unwrap_or(&[]);
        let n = count.min(data.len());
        crate::vm::uaccess::write_bytes(buf, &data[..n])?;
        Ok(n)
    }
    fn stat(&self) -> Stat {
        match self.bytes {
            DataBytes::Static(b) => Stat {
                ino: 3,
                mode: S_IFREG | 0o755,
                rdev: 0,
                size: b.len() as u64,
            },
            // Like /proc files: the size is not known in advance.
            DataBytes::Owned(_) => Stat {
                ino: 4,
                mode: S_IFREG | 0o444,
                rdev: 0,
                size: 0,
            },
        }
    }
}

/// A source of records for a [`SeqFile`] (Linux `seq_operations`: `start`, `next`,
/// `show`). `Pos` says where the next record is; `next` appends that record's text and
/// moves `pos` on, or returns `false` at the end.
pub trait SeqSource: Send + Sync {
    type Pos: Clone + Default + Send;
    fn next(&self, pos: &mut Self::Pos, out: &mut SeqBuf) -> bool;
}

/// The text of one record of a [`SeqFile`]: `write!` into it. The heap may refuse to
/// grow it; then the record is marked failed and the `read` answers ENOMEM (Linux
/// `seq_read` when it cannot get a buffer), instead of the kernel aborting.
#[derive(Default)]
pub struct SeqBuf {
    text: alloc::string::String,
    failed: bool,
}

impl SeqBuf {
    fn clear(&mut self) {
        self.text.clear();
        self.failed = false;
    }
    fn len(&self) -> usize {
        self.text.len()
    }
    fn as_bytes(&self) -> &[u8] {
        self.text.as_bytes()
    }
    /// Mark the record failed for want of memory (a source whose own allocation failed).
    pub fn fail(&mut self) {
        self.failed = true;
    }
    /// Append `s` (see [`core::fmt::Write`]).
    pub fn push_str(&mut self, s: &str) {
        let _ = core::fmt::Write::write_str(self, s);
    }
}

impl core::fmt::Write for SeqBuf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        if self.failed || self.text.try_reserve(s.len()).is_err() {
            self.failed = true;
            return Err(core::fmt::Error);
        }
        self.text.push_str(s);
        Ok(())
    }
}

/// A file produced record by record as it is read (Linux `seq_file`): memory use is one
/// record, whatever the size of what is listed. Reading on from where the last read
/// stopped continues the walk; any other position restarts it from the beginning and
/// skips ahead.
pub struct SeqFile<S: SeqSource> {
    source: S,
    stat: Stat,
    /// A sleeping lock: producing a record may sleep (the address-space lock).
    state: crate::sync::Mutex<SeqState<S::Pos>>,
}

/// Where a [`SeqFile`] is: the next record, the text of the current one not yet
/// delivered, and the file position that corresponds to.
struct SeqState<P> {
    next: P,
    pending: SeqBuf,
    taken: usize,
    file_pos: usize,
}

impl<S: SeqSource> SeqFile<S> {
    /// A file over `source` that `fstat` reports as `stat`.
    pub fn new(source: S, stat: Stat) -> SeqFile<S> {
        SeqFile {
            source,
            stat,
            state: crate::sync::Mutex::new(
                "seq file",
                SeqState {
                    next: S::Pos::default(),
                    pending: SeqBuf::default(),
                    taken: 0,
                    file_pos: 0,
                },
            ),
        }
    }

    /// The next up to `n` bytes from the current position into `out` (kernel memory;
    /// the caller copies to user memory outside the lock). Returns how many, or ENOMEM
    /// if a record could not be held (the walk then starts over at the next read).
    fn produce(&self, pos: usize, out: &mut [u8]) -> Result<usize, Errno> {
        // Killable: the walk behind it may wait for the address space or a device.
        let mut st = self.state.lock_killable().map_err(|_| Errno::ERESTARTSYS)?;
        if pos != st.file_pos {
            // A seek (or a reread): start over and skip to `pos`.
            st.next = S::Pos::default();
            st.pending.clear();
            st.taken = 0;
            st.file_pos = 0;
        }
        let mut done = 0;
        while done < out.len() || st.file_pos < pos {
            if st.taken == st.pending.len() {
                st.pending.clear();
                st.taken = 0;
                let SeqState { next, pending, .. } = &mut *st;
                let more = self.source.next(next, pending);
                if pending.failed {
                    st.file_pos = usize::MAX; // not where any read continues
                    return Err(Errno::ENOMEM);
                }
                if !more {
                    break;
                }
                continue;
            }
            let avail = st.pending.len() - st.taken;
            let n = if st.file_pos < pos {
                avail.min(pos - st.file_pos)
            } else {
                let n = avail.min(out.len() - done);
                out[done..done + n].copy_from_slice(&st.pending.as_bytes()[st.taken..st.taken + n]);
                done += n;
                n
            };
            st.taken += n;
            st.file_pos += n;
        }
        Ok(done)
    }
}

impl<S: SeqSource> FileOps for SeqFile<S> {
    fn read(&self, pos: usize, buf: u64, count: usize) -> Result<usize, Errno> {
        let mut chunk = [0u8; 512];
        let n = self.produce(pos, &mut chunk[..count.min(512)])?;
        crate::vm::uaccess::write_bytes(buf, &chunk[..n])?;
        Ok(n)
    }
    fn stat(&self) -> Stat {
        self.stat
    }
}

/// How a registered path opens: a device node (`minor` tells the driver which) or a
/// generated file.
pub type Opener = fn(minor: u32) -> Result<Box<dyn FileOps>, Errno>;

/// A registered path (Linux: a device number's `file_operations`, a procfs entry).
struct Node {
    path: &'static str,
    open: Opener,
    minor: u32,
    stat: Stat,
}

/// Every registered path.
static NODES: SpinLock<Vec<Node>> = SpinLock::new("fs nodes", Vec::new());

/// Register `path`: opening it calls `open(minor)`; `stat` is what `stat(path)` reports.
/// Called by the owners (drivers, proc) at boot. ENOMEM if the table cannot grow.
pub fn register(path: &'static str, open: Opener, minor: u32, stat: Stat) -> Result<(), Errno> {
    let mut nodes = NODES.lock();
    nodes.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
    nodes.retain(|n| n.path != path);
    nodes.push(Node {
        path,
        open,
        minor,
        stat,
    });
    Ok(())
}

/// The `open` flag that asks to create the file.
pub const O_CREAT: i32 = 0o100;

/// Open `path`: a registered node, else a file of the initramfs (read-only: EROFS if
/// asked for writing or creation), else ENOENT.
pub fn open(path: &str, mode: OpenMode, flags: i32) -> Result<Arc<File>, Errno> {
    let node = NODES.with(|nodes| {
        nodes
            .iter()
            .find(|n| n.path == path)
            .map(|n| (n.open, n.minor))
    });
    let file = if let Some((opener, minor)) = node {
        File::new(opener(minor)?, mode)?
    } else {
        match initramfs::lookup(path) {
            Some(_) if mode.writable() => return Err(Errno::EROFS),
            Some(data) => File::new(boxed(DataFile::of_static(data))?, mode)?,
            None if flags & O_CREAT != 0 => return Err(Errno::EROFS),
            None => return Err(Errno::ENOENT),
        }
    };
    file.set_status_flags(flags);
    Ok(file)
}

/// What `stat` reports about a file (the fields of Linux's x86-64 `struct stat` that
/// mean something here; the rest are 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stat {
    pub ino: u64,
    pub mode: u32,
    pub rdev: u64,
    pub size: u64,
}

/// `st_mode` file types.
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFDIR: u32 = 0o040000;

impl Stat {
    /// The 144 bytes of `struct stat` (x86-64): dev, ino, nlink, mode, uid, gid, pad,
    /// rdev, size, blksize, blocks, then the times (zero: no clock on files here).
    pub fn to_bytes(self) -> [u8; 144] {
        let mut b = [0u8; 144];
        b[8..16].copy_from_slice(&self.ino.to_le_bytes());
        b[16..24].copy_from_slice(&1u64.to_le_bytes()); // nlink
        b[24..28].copy_from_slice(&self.mode.to_le_bytes());
        b[40..48].copy_from_slice(&self.rdev.to_le_bytes());
        b[48..56].copy_from_slice(&self.size.to_le_bytes());
        b[56..64].copy_from_slice(&4096u64.to_le_bytes()); // blksize
        b[64..72].copy_from_slice(&self.size.div_ceil(512).to_le_bytes()); // blocks
        b
    }
}

/// Linux `makedev(major, minor)` for small numbers.
pub const fn dev(major: u64, minor: u64) -> u64 {
    (major << 8) | minor
}

/// `stat` by path: the registered nodes, the initramfs files, and the directories
/// that hold them.
pub fn stat_path(path: &str) -> Result<Stat, Errno> {
    if matches!(path, "/" | "/bin" | "/dev" | "/proc" | "/proc/self") {
        return Ok(Stat {
            ino: 1,
            mode: S_IFDIR | 0o755,
            rdev: 0,
            size: 0,
        });
    }
    if let Some(st) = NODES.with(|nodes| nodes.iter().find(|n| n.path == path).map(|n| n.stat)) {
        return Ok(st);
    }
    initramfs::lookup(path)
        .map(|data| DataFile::of_static(data).stat())
        .ok_or(Errno::ENOENT)
}
