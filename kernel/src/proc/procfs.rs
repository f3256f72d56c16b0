//! The /proc files, produced when opened: `/proc/ps` (the process list) and
//! `/proc/self/ptes` (the page-state dump). Registered with `fs` at boot
//! ([`register`]); what devices hold comes from a view the device driver registers
//! ([`set_device_view`]), so this names no driver.
//!
//! `/proc/self/ptes`:
//! For every VMA of the calling process, one line per mapped page: its address, the
//! kind of CPU entry (present RW, present RO - copy-on-write when the frame is shared -,
//! device-exclusive), the frame with its refcount and mapcount, and what each device
//! mirror of this address space holds for it (none / R / W / ATOMIC). Pages with no
//! entry are counted, not listed, so an 8 MiB stack stays one line.
#![deny(unsafe_code)]

use alloc::vec::Vec;
use core::fmt::Write;
use devices::accel::Perm;
use x86_64::structures::paging::PageTableFlags as F;

use alloc::boxed::Box;
use spin::Once;

use crate::error::Errno;
use crate::fs::{self, DataFile, FileOps, SeqBuf, Stat};
use crate::mm::fallible::{try_string, try_write_fmt, NoMemory};
use crate::mm::frame::{self, FrameFlags};
use crate::mm::pte::Pte;
use crate::mm::PAGE_SIZE;
use crate::proc::{sched, State};
use crate::vm::{AddressSpace, Prot, Sharing};
use alloc::sync::Arc;
use x86_64::VirtAddr;

/// What every device mirror of an address space holds for a page: (context number,
/// permission), as a driver reports it.
/// It calls `show(context, permission)` for each, and answers why if it could not list
/// them.
pub type DeviceView =
    fn(&Arc<AddressSpace>, u64, &mut dyn FnMut(u32, Option<Perm>)) -> Result<(), ViewIncomplete>;

/// Why a device view is incomplete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewIncomplete {
    /// The driver could not allocate its list of contexts.
    NoMemory,
    /// The reader was sent SIGKILL while it waited for the device (a killable wait: the
    /// device may be busy for as long as a user's command runs).
    Killed,
}

static DEVICE_VIEW: Once<DeviceView> = Once::new();

/// Install the device view (the accelerator driver does, at probe).
pub fn set_device_view(view: DeviceView) {
    DEVICE_VIEW.call_once(|| view);
}

/// What `stat` reports for a /proc file (the size is not known in advance).
pub(super) const PROC_STAT: Stat = Stat {
    ino: 4,
    mode: fs::S_IFREG | 0o444,
    rdev: 0,
    size: 0,
};

/// Register /proc/ps and /proc/self/ptes with fs.
pub fn register() -> Result<(), Errno> {
    fs::register("/proc/ps", open_ps, 0, PROC_STAT)?;
    fs::register("/proc/self/ptes", open_ptes, 0, PROC_STAT)?;
    super::fault_inject::register()
}

fn open_ps(_minor: u32) -> Result<Box<dyn FileOps>, Errno> {
    fs::boxed(DataFile::of_owned(ps_text()?))
}

fn open_ptes(_minor: u32) -> Result<Box<dyn FileOps>, Errno> {
    let p = sched::current();
    let source = PtesSource {
        pid: p.pid,
        aspace: p.with(|i| i.aspace.clone()),
    };
    fs::boxed(fs::SeqFile::new(source, PROC_STAT))
}

/// The text of /proc/ps: one line per process, then free memory.
pub fn ps_text() -> Result<Vec<u8>, NoMemory> {
    let mut s = try_string("  PID  PPID STATE     NAME             WAITS AT\n")?;
    for (pid, ppid, state, name) in super::list()? {
        let (state, wchan) = match state {
            State::Runnable => ("runnable", None),
            State::Running => ("running", None),
            State::Sleeping(at) => ("sleeping", Some(at)),
            State::Zombie(_) => ("zombie", None),
        };
        match wchan {
            Some(at) => try_write_fmt(
                &mut s,
                format_args!(
                    "{pid:>5} {ppid:>5} {state:<9} {name:<16} {}:{}\n",
                    at.file(),
                    at.line()
                ),
            )?,
            None => try_write_fmt(
                &mut s,
                format_args!("{pid:>5} {ppid:>5} {state:<9} {name}\n"),
            )?,
        }
    }
    let free = crate::mm::frame::free_frames();
    try_write_fmt(
        &mut s,
        format_args!("free memory: {} KiB ({free} frames)\n", free * 4),
    )?;
    Ok(s.into_bytes())
}

/// Where the page-state dump is: the header lines, then VMA `i`'s header line, then its
/// pages from `at` on.
#[derive(Debug, Clone, Copy, Default)]
pub enum PtesPos {
    #[default]
    Header,
    Columns,
    VmaHeader(usize),
    Page(usize, VirtAddr),
    Done,
}

/// /proc/self/ptes as a seq_file source: one line per record, produced as it is read,
/// so a process with 100,000 mapped pages costs one line of memory, not megabytes.
pub struct PtesSource {
    pid: u32,
    aspace: Option<Arc<AddressSpace>>,
}

impl fs::SeqSource for PtesSource {
    type Pos = PtesPos;

    fn next(&self, pos: &mut PtesPos, out: &mut SeqBuf) -> bool {
        let Some(aspace) = &self.aspace else {
            return false;
        };
        loop {
            match *pos {
                PtesPos::Header => {
                    let _ = writeln!(out, "# pid {}: VMAs and their mapped pages", self.pid);
                    *pos = PtesPos::Columns;
                }
                PtesPos::Columns => {
                    let _ = writeln!(
                        out,
                        "#   address         cpu entry            frame       ref map  device"
                    );
                    *pos = PtesPos::VmaHeader(0);
                }
                PtesPos::VmaHeader(i) => {
                    let Some(vma) = aspace.vma_at(i) else {
                        *pos = PtesPos::Done;
                        return false;
                    };
                    vma_line(aspace, &vma, out);
                    *pos = PtesPos::Page(i, vma.start);
                }
                PtesPos::Page(i, at) => {
                    let Some(vma) = aspace.vma_at(i) else {
                        *pos = PtesPos::Done;
                        return false;
                    };
                    match aspace.next_mapped(at.max(vma.start), vma.end) {
                        Some((va, pte)) => {
                            *pos = PtesPos::Page(i, va + PAGE_SIZE);
                            if !page_line(aspace, &vma, va, pte, out) {
                                continue;
                            }
                        }
                        None => {
                            *pos = PtesPos::VmaHeader(i + 1);
                            continue;
                        }
                    }
                }
                PtesPos::Done => return false,
            }
            return true;
        }
    }
}

/// The header line of one VMA.
fn vma_line(aspace: &AddressSpace, vma: &crate::vm::Vma, s: &mut SeqBuf) {
    let prot = prot_text(vma.prot);
    let sharing = match vma.sharing {
        Sharing::Private => "private",
        Sharing::Shared => "shared",
    };
    let pages = vma.len() / PAGE_SIZE;
    let _ = writeln!(
        s,
        "vma {:#014x}-{:#014x} {prot} {sharing} anonymous: {pages} pages, {} mapped",
        vma.start.as_u64(),
        vma.end.as_u64(),
        aspace.count_mapped(vma.start, vma.end)
    );
}

/// One page's line; `false` for an entry that has none (`None`).
fn page_line(
    aspace: &Arc<AddressSpace>,
    vma: &crate::vm::Vma,
    va: VirtAddr,
    pte: Pte,
    s: &mut SeqBuf,
) -> bool {
    let (kind, frame) = match pte {
        Pte::None => return false,
        Pte::Present { frame, flags } => {
            let shared = frame::meta(frame).mapcount() > 1
                || !frame::meta(frame)
                    .flags()
                    .contains(FrameFlags::ANON_EXCLUSIVE);
            let kind = match (flags.contains(F::WRITABLE), vma.sharing, shared) {
                (true, _, _) => "present RW",
                (false, Sharing::Private, true) if vma.prot.contains(Prot::WRITE) => {
                    "present RO (COW)"
                }
                (false, _, _) => "present RO",
            };
            (kind, frame)
        }
        Pte::DeviceExclusive { frame } => ("device-exclusive", frame),
    };
    let m = frame::meta(frame);
    let _ = write!(
        s,
        "  {:#014x}  {kind:<18}  {:#010x}  {:>3} {:>3} ",
        va.as_u64(),
        frame.start_address().as_u64(),
        m.refcount(),
        m.mapcount(),
    );
    let mut any = false;
    let mut show = |ctx: u32, perm: Option<Perm>| {
        let perm = match perm {
            None => "none",
            Some(Perm::Read) => "R",
            Some(Perm::Write) => "W",
            Some(Perm::Atomic) => "ATOMIC",
        };
        let _ = write!(s, " ctx{ctx}:{perm}");
        any = true;
    };
    let complete = match DEVICE_VIEW.get() {
        Some(view) => view(aspace, va.as_u64(), &mut show).is_ok(),
        None => true,
    };
    if !complete {
        // The driver could not list the contexts: fail this record (ENOMEM; a killed
        // reader never sees the answer).
        s.fail();
    }
    if !any {
        s.push_str(" -");
    }
    s.push_str("\n");
    true
}

fn prot_text(p: Prot) -> &'static str {
    match (
        p.contains(Prot::READ),
        p.contains(Prot::WRITE),
        p.contains(Prot::EXEC),
    ) {
        (false, false, false) => "---",
        (true, false, false) => "r--",
        (true, true, false) => "rw-",
        (true, false, true) => "r-x",
        (true, true, true) => "rwx",
        (false, true, false) => "-w-",
        (false, false, true) => "--x",
        (false, true, true) => "-wx",
    }
}
