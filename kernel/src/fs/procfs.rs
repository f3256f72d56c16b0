//! Generated text files: `/proc/self/ptes`, the page-state dump.
//!
//! For every VMA of the calling process, one line per mapped page: its address, the
//! kind of CPU entry (present RW, present RO - copy-on-write when the frame is shared -,
//! device-exclusive), the frame with its refcount and mapcount, and what each device
//! mirror of this address space holds for it (none / R / W / ATOMIC). Pages with no
//! entry are counted, not listed, so an 8 MiB stack stays one line.
#![deny(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use devices::accel::Perm;
use x86_64::structures::paging::PageTableFlags as F;

use crate::mm::frame::{self, FrameFlags};
use crate::mm::pte::Pte;
use crate::mm::PAGE_SIZE;
use crate::proc::Process;
use crate::vm::{Prot, Sharing};

/// The dump for `p` as text.
pub fn page_states(p: &Process) -> Vec<u8> {
    let mut s = String::new();
    let Some(aspace) = p.with(|i| i.aspace.clone()) else {
        return s.into_bytes();
    };
    let _ = writeln!(s, "# pid {}: VMAs and their mapped pages", p.pid);
    let _ = writeln!(
        s,
        "#   address         cpu entry            frame       ref map  device"
    );
    for vma in aspace.vmas() {
        let prot = prot_text(vma.prot);
        let sharing = match vma.sharing {
            Sharing::Private => "private",
            Sharing::Shared => "shared",
        };
        let entries = aspace.mapped_entries(vma.start, vma.end);
        let pages = vma.len() / PAGE_SIZE;
        let _ = writeln!(
            s,
            "vma {:#014x}-{:#014x} {prot} {sharing} anonymous: {pages} pages, {} mapped",
            vma.start.as_u64(),
            vma.end.as_u64(),
            entries.len()
        );
        for (va, pte) in entries {
            let (kind, frame) = match pte {
                Pte::None => continue,
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
            let mut devices = String::new();
            for (ctx, perm) in crate::drivers::hmm::device_view(&aspace, va.as_u64()) {
                let perm = match perm {
                    None => "none",
                    Some(Perm::Read) => "R",
                    Some(Perm::Write) => "W",
                    Some(Perm::Atomic) => "ATOMIC",
                };
                let _ = write!(devices, " ctx{}:{perm}", ctx.0);
            }
            let _ = writeln!(
                s,
                "  {:#014x}  {kind:<18}  {:#010x}  {:>3} {:>3} {}",
                va.as_u64(),
                frame.start_address().as_u64(),
                m.refcount(),
                m.mapcount(),
                if devices.is_empty() { " -" } else { &devices }
            );
        }
    }
    s.into_bytes()
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
