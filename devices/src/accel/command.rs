//! What software asks the accelerator to do ([`Command`]), what it gets back ([`Completion`]),
//! and every way that can fail ([`SubmitError`], [`DeviceError`], [`PageRequestError`]).
//!
//! The commands are the device side of dmirror's ioctls (Linux `lib/test_hmm.c`): `Read` is
//! `dmirror_read()`/`dmirror_do_read()`, `Write` is `dmirror_write()`/`dmirror_do_write()`,
//! `Prefetch` with [`Access::Atomic`] is the mapping half of `dmirror_exclusive()`, and
//! `AtomicAdd` is our addition: an atomic operation that really needs the exclusive access
//! (dmirror itself performs no atomics).

use alloc::vec::Vec;
use core::fmt;

use super::page_table::Access;

/// Identifies one context of the device (like a PCIe PASID, PCIe r5.0 §6.20): one process
/// address space the device mirrors, with its own device page table. Ids are never reused while
/// the device lives, so a stale id can never name a newer context.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContextId(pub u32);

/// Identifies one submitted command until its completion is taken. Never 0 (register value 0
/// means "none").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommandId(pub u32);

/// One command for the engine. Addresses are process virtual addresses in the context `ctx`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Copy `len` bytes at `va` into the device's bounce buffer, returned in
    /// [`Completion::data`]. Any alignment; needs [`Access::Read`] on every page touched.
    Read {
        /// The context whose memory is read.
        ctx: ContextId,
        /// First byte.
        va: u64,
        /// Number of bytes, at most [`MAX_COMMAND_BYTES`].
        len: usize,
    },
    /// Copy `data` to `va`. Any alignment; needs [`Access::Write`] on every page touched.
    Write {
        /// The context whose memory is written.
        ctx: ContextId,
        /// First byte.
        va: u64,
        /// The bytes to write, at most [`MAX_COMMAND_BYTES`].
        data: Vec<u8>,
    },
    /// Add `value` (wrapping) to every 32-bit little-endian word of the `npages` pages at the
    /// page-aligned `va`, each add atomic as the CPU sees it. Needs [`Access::Atomic`], i.e. the
    /// host must make each page device-exclusive first.
    AtomicAdd {
        /// The context whose memory is changed.
        ctx: ContextId,
        /// First page, page-aligned.
        va: u64,
        /// Number of pages, at most [`MAX_COMMAND_PAGES`].
        npages: u64,
        /// The addend.
        value: i32,
    },
    /// Make sure the device holds translations allowing `access` for the `npages` pages at the
    /// page-aligned `va`, issuing page requests where it does not; touch no memory. With
    /// [`Access::Atomic`] this is dmirror's `dmirror_exclusive()` mapping loop (the driver's
    /// EXCLUSIVE ioctl is this followed by a `Read`).
    Prefetch {
        /// The context.
        ctx: ContextId,
        /// First page, page-aligned.
        va: u64,
        /// Number of pages, at most [`MAX_COMMAND_PAGES`].
        npages: u64,
        /// The access to prepare for.
        access: Access,
    },
}

impl Command {
    /// The context the command runs in.
    pub fn context(&self) -> ContextId {
        match *self {
            Command::Read { ctx, .. }
            | Command::Write { ctx, .. }
            | Command::AtomicAdd { ctx, .. }
            | Command::Prefetch { ctx, .. } => ctx,
        }
    }
}

/// The largest `Read`/`Write`, in bytes: 4 MiB, the 1024-page buffer of Linux's hmm-tests.
pub const MAX_COMMAND_BYTES: usize = 4 << 20;

/// The largest `AtomicAdd`/`Prefetch`, in pages (4 MiB).
pub const MAX_COMMAND_PAGES: u64 = (MAX_COMMAND_BYTES >> 12) as u64;

/// The result of one command, kept until software takes it with
/// [`Accelerator::take_completion`](super::Accelerator::take_completion).
///
/// Pages are done in address order and a failed command stops at its first bad page, so
/// `pages_done` pages from the start were done whatever `result` says (dmirror's `cpages`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The command this completes.
    pub id: CommandId,
    /// `Ok` if every page was done, else why the command stopped.
    pub result: Result<(), DeviceError>,
    /// `Read` only: the bytes read, `len` of them on success, those of the pages done on error.
    /// Empty for the other commands.
    pub data: Vec<u8>,
    /// Pages (of the pages the command touches) done before it finished or failed.
    pub pages_done: u64,
    /// Page requests the command issued (dmirror's `faults` counts fault *calls*, each of
    /// which may cover many pages; a driver that wants that number reports `faults > 0`).
    pub faults: u32,
}

/// Why [`Accelerator::submit`](super::Accelerator::submit) refused a command. A refused command
/// has no effect. The value in parentheses is the `CMD_SUBMIT_STATUS` register code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubmitError {
    /// (1) [`QUEUE_DEPTH`](super::QUEUE_DEPTH) commands are outstanding: queued, or completed
    /// with their completion not yet taken.
    QueueFull,
    /// (2) No such context.
    NoContext,
    /// (3) Longer than [`MAX_COMMAND_BYTES`] / [`MAX_COMMAND_PAGES`] (or, through the MMIO
    /// command slot, a `Write` longer than the DATA window).
    TooLarge,
    /// (4) `AtomicAdd`/`Prefetch` address not page-aligned.
    Misaligned,
    /// (5) The range wraps around the end of the address space.
    AddressOverflow,
    /// (6) MMIO command slot only: unknown opcode or argument.
    BadOpcode,
}

impl SubmitError {
    /// The `CMD_SUBMIT_STATUS` register code (never 0, which means "accepted").
    pub const fn code(self) -> u32 {
        match self {
            SubmitError::QueueFull => 1,
            SubmitError::NoContext => 2,
            SubmitError::TooLarge => 3,
            SubmitError::Misaligned => 4,
            SubmitError::AddressOverflow => 5,
            SubmitError::BadOpcode => 6,
        }
    }
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SubmitError::QueueFull => "command queue full",
            SubmitError::NoContext => "no such context",
            SubmitError::TooLarge => "command too large",
            SubmitError::Misaligned => "address not page-aligned",
            SubmitError::AddressOverflow => "range wraps around the address space",
            SubmitError::BadOpcode => "bad opcode or argument in the command slot",
        })
    }
}

/// Why the host refused a page request: the PRG Response "Invalid Request" of PCIe r5.0
/// §10.4.2, with the reason a driver needs to report the right errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PageRequestError {
    /// No mapping there, or not one that can be faulted in (`hmm_range_fault` -> `-EFAULT`).
    Fault,
    /// The mapping forbids the access, e.g. a write to a read-only VMA (`-EPERM`).
    Permission,
    /// The page cannot be made device-exclusive: shared or not anonymous (`-EOPNOTSUPP`).
    NotSupported,
    /// The host ran out of memory serving the request (`-ENOMEM`).
    NoMemory,
    /// The host could not serve the request now (`-EBUSY`).
    Busy,
}

/// Why a command failed. `va` is the first address of the failing page the command touches.
/// The value in parentheses is the register code (`LAST_ERROR`, `CPL_STATUS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceError {
    /// (2) The context was destroyed after the command was submitted.
    NoContext,
    /// (3) Command.BUS_MASTER is clear in configuration space: the device may not reach memory.
    BusMasterDisabled,
    /// (4) A page request was needed but PRI is not enabled in configuration space.
    PriDisabled {
        /// The address that needed it.
        va: u64,
    },
    /// (5) The host answered a page request with [`PageRequestError::Fault`].
    Fault {
        /// The faulting address.
        va: u64,
    },
    /// (6) The host answered a page request with [`PageRequestError::Permission`].
    Permission {
        /// The faulting address.
        va: u64,
    },
    /// (7) The host answered a page request with [`PageRequestError::NotSupported`].
    NotSupported {
        /// The faulting address.
        va: u64,
    },
    /// (8) The host answered a page request with [`PageRequestError::NoMemory`].
    NoMemory {
        /// The faulting address.
        va: u64,
    },
    /// (9) The host answered with [`PageRequestError::Busy`], or the translation it gave was
    /// invalidated before use [`MAX_PAGE_REQUESTS_PER_PAGE`](super::MAX_PAGE_REQUESTS_PER_PAGE)
    /// times in a row.
    Busy {
        /// The address.
        va: u64,
    },
    /// (10) The host answered with a translation that does not allow the access, or with an
    /// `Atomic` one to a request that was not `Atomic`. The device also sets PRI Status.Response
    /// Failure (the PRG Response "Response Failure", PCIe r5.0 §10.4.2).
    InvalidResponse {
        /// The address.
        va: u64,
    },
}

impl DeviceError {
    /// The register code (`LAST_ERROR`, `CPL_STATUS`); never 0 or 1.
    pub const fn code(self) -> u32 {
        match self {
            DeviceError::NoContext => 2,
            DeviceError::BusMasterDisabled => 3,
            DeviceError::PriDisabled { .. } => 4,
            DeviceError::Fault { .. } => 5,
            DeviceError::Permission { .. } => 6,
            DeviceError::NotSupported { .. } => 7,
            DeviceError::NoMemory { .. } => 8,
            DeviceError::Busy { .. } => 9,
            DeviceError::InvalidResponse { .. } => 10,
        }
    }

    /// The failing address, for the errors that have one.
    pub const fn va(self) -> Option<u64> {
        match self {
            DeviceError::NoContext | DeviceError::BusMasterDisabled => None,
            DeviceError::PriDisabled { va }
            | DeviceError::Fault { va }
            | DeviceError::Permission { va }
            | DeviceError::NotSupported { va }
            | DeviceError::NoMemory { va }
            | DeviceError::Busy { va }
            | DeviceError::InvalidResponse { va } => Some(va),
        }
    }

    /// The command error for a refused page request at `va`.
    pub const fn from_page_request(error: PageRequestError, va: u64) -> Self {
        match error {
            PageRequestError::Fault => DeviceError::Fault { va },
            PageRequestError::Permission => DeviceError::Permission { va },
            PageRequestError::NotSupported => DeviceError::NotSupported { va },
            PageRequestError::NoMemory => DeviceError::NoMemory { va },
            PageRequestError::Busy => DeviceError::Busy { va },
        }
    }
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DeviceError::NoContext => f.write_str("context destroyed"),
            DeviceError::BusMasterDisabled => f.write_str("bus mastering disabled"),
            DeviceError::PriDisabled { va } => write!(f, "page request at {va:#x}: PRI disabled"),
            DeviceError::Fault { va } => write!(f, "fault at {va:#x}"),
            DeviceError::Permission { va } => write!(f, "permission denied at {va:#x}"),
            DeviceError::NotSupported { va } => {
                write!(f, "page at {va:#x} cannot be made exclusive")
            }
            DeviceError::NoMemory { va } => write!(f, "host out of memory at {va:#x}"),
            DeviceError::Busy { va } => write!(f, "page at {va:#x} busy"),
            DeviceError::InvalidResponse { va } => {
                write!(f, "invalid page request response at {va:#x}")
            }
        }
    }
}

/// Why [`Accelerator::create_context`](super::Accelerator::create_context) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContextError {
    /// [`MAX_CONTEXTS`](super::MAX_CONTEXTS) contexts are live, or every id was used once.
    TooMany,
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContextError::TooMany => f.write_str("no free device context"),
        }
    }
}
