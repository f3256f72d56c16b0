//! Host tests of the accelerator: each asserts one piece of device behaviour against a fake
//! host ([`fake`]); [`prop`] runs random command sequences against a simple model.

extern crate std;

mod fake;
mod prop;

use alloc::vec;
use alloc::vec::Vec;

use self::fake::{FakeHost, FakeMemory, Pte};
use super::*;
use crate::pci::regs::{ext_cap_id, header, pri};
use crate::pci::{self, Width};

/// Where the tests' buffers live: page `i` of a buffer is at `va(i)`.
const BASE: u64 = 0x7f00_0000_0000;

fn va(page: u64) -> u64 {
    BASE + (page << PAGE_SHIFT)
}

fn vpn(page: u64) -> u64 {
    va(page) >> PAGE_SHIFT
}

/// Turns on what a driver turns on: memory space, bus mastering, PRI.
fn enable(dev: &mut Accelerator) {
    let cs = dev.config_mut();
    let command = pci::Command::MEMORY_SPACE | pci::Command::BUS_MASTER;
    cs.write_u16(header::COMMAND, command.bits()).unwrap();
    let at = cs.find_extended_capability(ext_cap_id::PRI).unwrap();
    cs.write_u16(at + pri::CONTROL, pri::CONTROL_ENABLE)
        .unwrap();
}

/// A device, its fake host, and one context mirroring process 0.
struct Rig {
    dev: Accelerator,
    mem: FakeMemory,
    host: FakeHost,
    ctx: ContextId,
}

impl Rig {
    fn new() -> Self {
        let mut dev = Accelerator::new();
        enable(&mut dev);
        let ctx = dev.create_context().unwrap();
        let mut host = FakeHost::with_processes(2);
        host.bind(ctx, 0);
        Rig {
            dev,
            mem: FakeMemory::default(),
            host,
            ctx,
        }
    }

    /// Maps `n` pages at `va(0)` in process 0, page i filled with byte `i * 16 + offset % 16`.
    fn map_buffer(&mut self, n: u64, writable: bool) -> Vec<u64> {
        (0..n)
            .map(|i| {
                let pfn = self.mem.alloc_filled(|b| (i as usize * 16 + b % 16) as u8);
                self.host.map(0, vpn(i), pfn, writable);
                pfn
            })
            .collect()
    }

    /// Submits, rings the doorbell, takes the completion.
    fn run(&mut self, command: Command) -> Completion {
        let id = self.dev.submit(command).expect("submit");
        assert_eq!(self.dev.process(&mut self.mem, &mut self.host), 1);
        self.dev.take_completion(id).expect("completion")
    }

    fn read(&mut self, at: u64, len: usize) -> Completion {
        let ctx = self.ctx;
        self.run(Command::Read { ctx, va: at, len })
    }

    fn write(&mut self, at: u64, data: Vec<u8>) -> Completion {
        let ctx = self.ctx;
        self.run(Command::Write { ctx, va: at, data })
    }

    fn atomic_add(&mut self, at: u64, npages: u64, value: i32) -> Completion {
        let ctx = self.ctx;
        self.run(Command::AtomicAdd {
            ctx,
            va: at,
            npages,
            value,
        })
    }
}

// ---- Device page table ----

#[test]
fn page_table_install_lookup_replace_iter() {
    let mut pt = DevicePageTable::new();
    assert!(pt.is_empty());
    let r = |pfn| Translation {
        pfn,
        perm: Perm::Read,
    };
    pt.install(7, r(70)).unwrap();
    pt.install(3, r(30)).unwrap();
    assert_eq!(pt.lookup(3), Some(r(30)));
    assert_eq!(pt.lookup(4), None);
    let upgraded = Translation {
        pfn: 31,
        perm: Perm::Atomic,
    };
    pt.install(3, upgraded).unwrap();
    assert_eq!(pt.lookup(3), Some(upgraded));
    assert_eq!(pt.len(), 2);
    let all: Vec<_> = pt.iter().collect();
    assert_eq!(all, vec![(3, upgraded), (7, r(70))]);
}

#[test]
fn page_table_invalidate_drops_exactly_the_range() {
    let mut pt = DevicePageTable::new();
    for vpn in 0..10 {
        pt.install(
            vpn,
            Translation {
                pfn: 100 + vpn,
                perm: Perm::Write,
            },
        )
        .unwrap();
    }
    assert_eq!(pt.invalidate(3..6), 3);
    assert_eq!(pt.invalidate(3..6), 0);
    assert_eq!(pt.invalidate(6..6), 0);
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = 9..2;
    assert_eq!(pt.invalidate(reversed), 0);
    let left: Vec<u64> = pt.iter().map(|(vpn, _)| vpn).collect();
    assert_eq!(left, vec![0, 1, 2, 6, 7, 8, 9]);
    assert_eq!(pt.range(1..8).count(), 4);
    assert_eq!(pt.invalidate(0..u64::MAX), 7);
    assert!(pt.is_empty());
}

/// The two-level table against a BTreeMap model: random installs and invalidations over
/// vpns that cross leaves (512 pages), reach the top of the address space, and repeat;
/// lookups, iteration order, ranges and counts agree after every step, and a table
/// emptied by invalidation holds no leaf.
#[test]
fn page_table_matches_a_map_model() {
    use std::collections::BTreeMap;
    let mut pt = DevicePageTable::new();
    let mut model: BTreeMap<u64, Translation> = BTreeMap::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let vpn_of = |r: u64| match r % 4 {
        0 => r % 3000,                 // a few leaves, dense
        1 => 511 + r % 3,              // a leaf boundary
        2 => (1 << 52) - 1 - r % 1100, // the top of a 64-bit address space
        _ => (r >> 8) % (1 << 35),     // anywhere in a 47-bit user half
    };
    for step in 0..20_000u32 {
        let r = next();
        if r % 5 == 0 {
            let a = vpn_of(next());
            let b = a.saturating_add(next() % 2000);
            let want = model.range(a..b).count();
            let keys: Vec<u64> = model.range(a..b).map(|(k, _)| *k).collect();
            for k in keys {
                model.remove(&k);
            }
            assert_eq!(
                pt.invalidate(a..b),
                want,
                "step {step}: invalidate {a}..{b}"
            );
        } else {
            let vpn = vpn_of(r);
            let perm = [Perm::Read, Perm::Write, Perm::Atomic][(next() % 3) as usize];
            let t = Translation {
                pfn: next() >> 3,
                perm,
            };
            pt.install(vpn, t).unwrap();
            model.insert(vpn, t);
        }
        if step % 1000 == 0 {
            assert!(
                pt.iter().eq(model.iter().map(|(k, v)| (*k, *v))),
                "step {step}: iter"
            );
        }
        let probe = vpn_of(next());
        assert_eq!(
            pt.lookup(probe),
            model.get(&probe).copied(),
            "step {step}: lookup {probe}"
        );
        assert_eq!(pt.len(), model.len());
        let a = vpn_of(next());
        let b = a.saturating_add(next() % 1500);
        assert!(
            pt.range(a..b).eq(model.range(a..b).map(|(k, v)| (*k, *v))),
            "step {step}: range"
        );
    }
    assert_eq!(pt.invalidate(0..u64::MAX), model.len());
    assert!(pt.is_empty());
    assert_eq!(pt, DevicePageTable::new(), "an empty table keeps no leaf");
}

#[test]
fn permissions_imply_the_weaker_ones() {
    use Access::*;
    let expect = [
        (Perm::Read, [true, false, false]),
        (Perm::Write, [true, true, false]),
        (Perm::Atomic, [true, true, true]),
    ];
    for (perm, allowed) in expect {
        for (access, ok) in [Read, Write, Atomic].into_iter().zip(allowed) {
            assert_eq!(perm.allows(access), ok, "{perm:?} allows {access:?}");
        }
    }
}

// ---- Commands through the engine ----

#[test]
fn write_then_read_round_trips_across_pages() {
    let mut rig = Rig::new();
    let pfns = rig.map_buffer(3, true);
    // An unaligned write across all three pages.
    let data: Vec<u8> = (0..8000u32).map(|i| (i * 7) as u8).collect();
    let at = va(0) + 1000;
    let w = rig.write(at, data.clone());
    assert_eq!(w.result, Ok(()));
    assert_eq!(w.pages_done, 3);
    assert!(w.data.is_empty());
    // The frames hold it, and the bytes around it are untouched.
    assert_eq!(&rig.mem.frame(pfns[0])[1000..], &data[..3096]);
    assert_eq!(&rig.mem.frame(pfns[1])[..], &data[3096..7192]);
    assert_eq!(&rig.mem.frame(pfns[2])[..808], &data[7192..]);
    assert_eq!(rig.mem.frame(pfns[2])[808], (808 % 16 + 32) as u8);
    assert_eq!(rig.mem.frame(pfns[0])[999], (999 % 16) as u8);
    let r = rig.read(at, data.len());
    assert_eq!(r.result, Ok(()));
    assert_eq!(r.data, data);
    assert_eq!(r.pages_done, 3);
    assert_eq!(r.faults, 0, "the write left writable translations");
}

#[test]
fn a_missing_translation_costs_exactly_one_page_request() {
    let mut rig = Rig::new();
    let pfns = rig.map_buffer(1, true);
    let first = rig.read(va(0), 16);
    assert_eq!(first.result, Ok(()));
    assert_eq!(first.faults, 1);
    assert_eq!(rig.host.requests, vec![(rig.ctx, vpn(0), Access::Read)]);
    assert_eq!(rig.host.done, vec![(rig.ctx, vpn(0))]);
    // A writable page answered to a read request gives a writable translation (hmm_range_fault
    // reports what the CPU page table allows).
    let t = rig.dev.page_table(rig.ctx).unwrap().lookup(vpn(0));
    assert_eq!(
        t,
        Some(Translation {
            pfn: pfns[0],
            perm: Perm::Write
        })
    );
    let second = rig.read(va(0), 4096);
    assert_eq!(second.faults, 0);
    let w = rig.write(va(0), vec![1; 8]);
    assert_eq!((w.result, w.faults), (Ok(()), 0));
    assert_eq!(rig.host.requests.len(), 1);
}

#[test]
fn invalidate_forces_a_new_page_request() {
    let mut rig = Rig::new();
    rig.map_buffer(4, true);
    assert_eq!(rig.read(va(0), 4 * 4096).faults, 4);
    // Drop pages 1 and 2 only: a range inside page 1 through the first byte of page 2.
    let dropped = rig.dev.invalidate(Some(rig.ctx), va(1) + 100, va(2) + 1);
    assert_eq!(dropped, 2);
    assert_eq!(rig.dev.snapshot(rig.ctx, va(1)), None);
    assert_eq!(rig.dev.snapshot(rig.ctx, va(3)), Some(Perm::Write));
    let again = rig.read(va(0), 4 * 4096);
    assert_eq!(again.faults, 2);
    let asked: Vec<u64> = rig.host.requests[4..].iter().map(|r| r.1).collect();
    assert_eq!(asked, vec![vpn(1), vpn(2)]);
    // An empty range drops nothing, even inside a page.
    assert_eq!(rig.dev.invalidate(None, va(1) + 8, va(1) + 8), 0);
}

#[test]
fn invalidate_one_context_or_all() {
    let mut rig = Rig::new();
    rig.map_buffer(2, true);
    let other = rig.dev.create_context().unwrap();
    rig.host.bind(other, 0);
    rig.read(va(0), 2 * 4096);
    rig.run(Command::Read {
        ctx: other,
        va: va(0),
        len: 2 * 4096,
    });
    assert_eq!(rig.dev.invalidate(Some(other), va(0), va(1)), 1);
    assert_eq!(rig.dev.snapshot(rig.ctx, va(0)), Some(Perm::Write));
    assert_eq!(rig.dev.snapshot(other, va(0)), None);
    assert_eq!(rig.dev.invalidate(None, va(0), va(2)), 3);
    assert!(rig.dev.page_table(rig.ctx).unwrap().is_empty());
    assert!(rig.dev.page_table(other).unwrap().is_empty());
    assert_eq!(rig.dev.invalidate(Some(ContextId(999)), 0, u64::MAX), 0);
}

#[test]
fn unmapped_page_fails_with_fault_after_the_pages_before_it() {
    let mut rig = Rig::new();
    rig.map_buffer(2, true); // pages 0, 1 mapped; page 2 not.
    let w = rig.write(va(0), vec![0xAB; 3 * 4096]);
    assert_eq!(w.result, Err(DeviceError::Fault { va: va(2) }));
    assert_eq!(w.pages_done, 2);
    assert_eq!(w.faults, 3);
    let r = rig.read(va(1) + 10, 2 * 4096);
    assert_eq!(r.result, Err(DeviceError::Fault { va: va(2) }));
    assert_eq!(r.pages_done, 1);
    assert_eq!(r.data, vec![0xAB; 4096 - 10], "the data of the pages done");
    assert_eq!(rig.dev.mmio_read(regs::LAST_ERROR, Width::Dword), Ok(5));
    assert_eq!(rig.dev.stats().commands_failed, 2);
}

#[test]
fn write_to_a_read_only_page_is_a_permission_error() {
    let mut rig = Rig::new();
    let pfns = rig.map_buffer(2, true);
    rig.host.map(0, vpn(1), pfns[1], false);
    let r = rig.read(va(0), 2 * 4096);
    assert_eq!(r.result, Ok(()));
    assert_eq!(rig.dev.snapshot(rig.ctx, va(1)), Some(Perm::Read));
    let w = rig.write(va(0), vec![9; 2 * 4096]);
    assert_eq!(w.result, Err(DeviceError::Permission { va: va(1) }));
    assert_eq!(w.pages_done, 1);
    assert_eq!(
        w.faults, 1,
        "page 0 was writable already; page 1 was asked once"
    );
    assert_eq!(rig.mem.frame(pfns[1])[0], 16, "page 1 untouched");
    assert_eq!(rig.mem.frame(pfns[0])[0], 9);
}

#[test]
fn atomic_add_gives_exact_sums() {
    let mut rig = Rig::new();
    let pfns = rig.map_buffer(3, true);
    for (i, &pfn) in pfns.iter().enumerate() {
        for w in 0..1024 {
            rig.mem.set_word(pfn, w, (i * 1024 + w) as u32);
        }
    }
    let c = rig.atomic_add(va(0), 3, 5);
    assert_eq!((c.result, c.pages_done, c.faults), (Ok(()), 3, 3));
    assert_eq!(rig.atomic_add(va(1), 2, -7).faults, 0);
    assert_eq!(rig.atomic_add(va(2), 1, i32::MIN).result, Ok(()));
    for (i, &pfn) in pfns.iter().enumerate() {
        for w in 0..1024 {
            let mut expect = ((i * 1024 + w) as u32).wrapping_add(5);
            if i >= 1 {
                expect = expect.wrapping_sub(7);
            }
            if i == 2 {
                expect = expect.wrapping_add(i32::MIN as u32);
            }
            assert_eq!(rig.mem.word(pfn, w), expect, "page {i} word {w}");
        }
    }
    assert_eq!(rig.mem.atomic_adds, 6 * 1024);
    assert!(rig.dev.has_atomic(rig.ctx, va(0)..va(3)));
}

#[test]
fn atomic_needs_exclusive_access_even_over_a_write_translation() {
    let mut rig = Rig::new();
    rig.map_buffer(1, true);
    rig.write(va(0), vec![0; 4]);
    assert_eq!(rig.dev.snapshot(rig.ctx, va(0)), Some(Perm::Write));
    assert!(!rig.dev.has_atomic(rig.ctx, va(0)..va(1)));
    let c = rig.atomic_add(va(0), 1, 1);
    assert_eq!(c.faults, 1);
    assert_eq!(
        rig.host.requests.last(),
        Some(&(rig.ctx, vpn(0), Access::Atomic))
    );
    assert_eq!(rig.dev.snapshot(rig.ctx, va(0)), Some(Perm::Atomic));
    // Atomic implies write: a device write needs no new request.
    assert_eq!(rig.write(va(0), vec![1; 4]).faults, 0);
    // A CPU fault on the exclusive page invalidates the device (notifier Clear): gone.
    rig.dev.invalidate(None, va(0), va(1));
    assert!(!rig.dev.has_atomic(rig.ctx, va(0)..va(1)));
    // A read-only page cannot be made exclusive.
    rig.host.processes[0].get_mut(&vpn(0)).unwrap().writable = false;
    let refused = rig.atomic_add(va(0), 1, 1);
    assert_eq!(refused.result, Err(DeviceError::Permission { va: va(0) }));
    assert_eq!(refused.pages_done, 0);
}

#[test]
fn has_atomic_covers_exactly_the_pages_it_is_asked_about() {
    let mut rig = Rig::new();
    rig.map_buffer(3, true);
    let ctx = rig.ctx;
    let c = rig.run(Command::Prefetch {
        ctx,
        va: va(1),
        npages: 1,
        access: Access::Atomic,
    });
    assert_eq!((c.result, c.pages_done, c.faults), (Ok(()), 1, 1));
    assert_eq!(rig.mem.atomic_adds, 0, "prefetch touches no memory");
    assert!(!rig.dev.has_atomic(ctx, va(0)..va(1)));
    assert!(rig.dev.has_atomic(ctx, va(1)..va(1) + 1));
    assert!(rig.dev.has_atomic(ctx, va(0) + 4095..va(1) + 1));
    assert!(!rig.dev.has_atomic(ctx, va(2)..va(3)));
    assert!(!rig.dev.has_atomic(ctx, va(1)..va(1)));
    assert!(!rig.dev.has_atomic(ContextId(77), 0..u64::MAX));
}

#[test]
fn an_atomic_answer_to_a_read_request_is_rejected() {
    let mut rig = Rig::new();
    let pfns = rig.map_buffer(1, true);
    rig.host.forced = Some(Ok(Translation {
        pfn: pfns[0],
        perm: Perm::Atomic,
    }));
    let r = rig.read(va(0), 8);
    assert_eq!(r.result, Err(DeviceError::InvalidResponse { va: va(0) }));
    assert_eq!(rig.dev.snapshot(rig.ctx, va(0)), None, "not installed");
    assert_eq!(
        rig.host.done.len(),
        1,
        "the host may still release the page"
    );
    assert!(rig.dev.config().pri_state().response_failure);
    // Too weak an answer is rejected as well.
    rig.host.forced = Some(Ok(Translation {
        pfn: pfns[0],
        perm: Perm::Read,
    }));
    let w = rig.write(va(0), vec![1]);
    assert_eq!(w.result, Err(DeviceError::InvalidResponse { va: va(0) }));
}

#[test]
fn host_errors_become_typed_device_errors() {
    let cases = [
        (PageRequestError::Fault, DeviceError::Fault { va: va(0) }),
        (
            PageRequestError::Permission,
            DeviceError::Permission { va: va(0) },
        ),
        (
            PageRequestError::NotSupported,
            DeviceError::NotSupported { va: va(0) },
        ),
        (
            PageRequestError::NoMemory,
            DeviceError::NoMemory { va: va(0) },
        ),
        (PageRequestError::Busy, DeviceError::Busy { va: va(0) }),
    ];
    for (answer, expect) in cases {
        let mut rig = Rig::new();
        rig.host.forced = Some(Err(answer));
        let c = rig.atomic_add(va(0), 1, 1);
        assert_eq!(c.result, Err(expect));
        assert!(rig.host.done.is_empty(), "done follows only Ok answers");
        assert_eq!(expect.va(), Some(va(0)));
    }
}

#[test]
fn invalidations_queued_during_a_page_request_are_applied_before_use() {
    // Process 0's page 0 is COW: a write request breaks it into a new frame and the host's
    // notifier, finding the device busy, queues an invalidation of the page.
    let mut rig = Rig::new();
    let old = rig.mem.alloc_filled(|_| 0x11);
    let copy = rig.mem.alloc_filled(|_| 0x11);
    rig.host.processes[0].insert(
        vpn(0),
        Pte {
            pfn: old,
            writable: false,
            cow_copy: Some(copy),
        },
    );
    assert_eq!(rig.read(va(0), 1).faults, 1);
    assert_eq!(rig.dev.snapshot(rig.ctx, va(0)), Some(Perm::Read));
    let w = rig.write(va(0), vec![0x22; 4096]);
    assert_eq!(w.result, Ok(()));
    // First answer (the copy) installed, then dropped by the queued invalidation; the second
    // request finds the page writable and sticks.
    assert_eq!(w.faults, 2);
    assert_eq!(rig.mem.frame(copy)[0], 0x22);
    assert_eq!(
        rig.mem.frame(old)[0],
        0x11,
        "the shared old frame is untouched"
    );
    let t = rig.dev.page_table(rig.ctx).unwrap().lookup(vpn(0)).unwrap();
    assert_eq!(t.pfn, copy);
    assert!(rig.host.queued.is_empty());
}

#[test]
fn an_answer_that_raced_with_an_unmap_is_never_used() {
    // The host computes the answer, then (before it returns) another thread unmaps the page
    // and the notifier queues the invalidation. The device must not write the old frame.
    let mut rig = Rig::new();
    let pfns = rig.map_buffer(1, true);
    rig.host.unmap_after_answer = true;
    let w = rig.write(va(0), vec![0xEE; 8]);
    assert_eq!(w.result, Err(DeviceError::Fault { va: va(0) }));
    assert_eq!(w.faults, 2);
    assert_eq!(
        rig.mem.frame(pfns[0])[0],
        0,
        "the unmapped frame was not written"
    );
    assert_eq!(rig.dev.snapshot(rig.ctx, va(0)), None);
    assert_eq!(
        rig.host.done,
        vec![(rig.ctx, vpn(0))],
        "the first answer was released"
    );
}

#[test]
fn an_answer_invalidated_every_time_ends_with_busy() {
    let mut rig = Rig::new();
    rig.map_buffer(1, true);
    rig.host.always_invalidate = true;
    let r = rig.read(va(0), 1);
    assert_eq!(r.result, Err(DeviceError::Busy { va: va(0) }));
    assert_eq!(r.faults, MAX_PAGE_REQUESTS_PER_PAGE);
    assert_eq!(rig.dev.snapshot(rig.ctx, va(0)), None);
}

#[test]
fn contexts_are_isolated() {
    let mut rig = Rig::new();
    let a = rig.ctx;
    let b = rig.dev.create_context().unwrap();
    assert_ne!(a, b);
    rig.host.bind(b, 1);
    // The same virtual page is a different frame in each process.
    let pa = rig.mem.alloc_filled(|_| 0xAA);
    let pb = rig.mem.alloc_filled(|_| 0xBB);
    rig.host.map(0, vpn(0), pa, true);
    rig.host.map(1, vpn(0), pb, true);
    rig.run(Command::Write {
        ctx: b,
        va: va(0),
        data: vec![0xCC; 4],
    });
    let ra = rig.read(va(0), 4);
    assert_eq!(ra.data, vec![0xAA; 4]);
    assert_eq!(rig.mem.frame(pb)[..4], [0xCC; 4]);
    assert_eq!(
        rig.dev.page_table(a).unwrap().lookup(vpn(0)).unwrap().pfn,
        pa
    );
    assert_eq!(
        rig.dev.page_table(b).unwrap().lookup(vpn(0)).unwrap().pfn,
        pb
    );
    // Invalidating one context leaves the other alone.
    rig.dev.invalidate(Some(b), va(0), va(1));
    assert_eq!(rig.dev.snapshot(a, va(0)), Some(Perm::Write));
    assert_eq!(rig.dev.contexts().collect::<Vec<_>>(), vec![a, b]);
}

#[test]
fn destroyed_context_fails_its_queued_commands_and_refuses_new_ones() {
    let mut rig = Rig::new();
    rig.map_buffer(1, true);
    let ctx = rig.ctx;
    let id = rig
        .dev
        .submit(Command::Read {
            ctx,
            va: va(0),
            len: 4,
        })
        .unwrap();
    assert!(rig.dev.destroy_context(ctx));
    assert!(!rig.dev.destroy_context(ctx));
    rig.dev.process(&mut rig.mem, &mut rig.host);
    let c = rig.dev.take_completion(id).unwrap();
    assert_eq!(c.result, Err(DeviceError::NoContext));
    assert_eq!(
        rig.dev.submit(Command::Read {
            ctx,
            va: va(0),
            len: 4
        }),
        Err(SubmitError::NoContext)
    );
    // Ids are not reused.
    let next = rig.dev.create_context().unwrap();
    assert!(next > ctx);
}

#[test]
fn context_table_is_bounded() {
    let mut dev = Accelerator::new();
    let ids: Vec<_> = (0..MAX_CONTEXTS)
        .map(|_| dev.create_context().unwrap())
        .collect();
    assert_eq!(dev.create_context(), Err(ContextError::TooMany));
    dev.destroy_context(ids[0]);
    assert!(dev.create_context().is_ok());
}

#[test]
fn queue_full_counts_untaken_completions() {
    let mut rig = Rig::new();
    rig.map_buffer(1, true);
    let ctx = rig.ctx;
    let read = Command::Read {
        ctx,
        va: va(0),
        len: 1,
    };
    let ids: Vec<_> = (0..QUEUE_DEPTH)
        .map(|_| rig.dev.submit(read.clone()).unwrap())
        .collect();
    assert_eq!(rig.dev.submit(read.clone()), Err(SubmitError::QueueFull));
    let status = rig.dev.mmio_read(regs::STATUS, Width::Dword).unwrap();
    assert_eq!(
        status & (regs::STATUS_QUEUE_FULL | regs::STATUS_BUSY),
        0b101
    );
    assert_eq!(rig.dev.process(&mut rig.mem, &mut rig.host), QUEUE_DEPTH);
    // Run, but not taken: still full.
    assert_eq!(rig.dev.queued(), 0);
    assert_eq!(rig.dev.submit(read.clone()), Err(SubmitError::QueueFull));
    let c = rig.dev.take_completion(ids[5]).unwrap();
    assert_eq!((c.id, c.result), (ids[5], Ok(())));
    assert_eq!(rig.dev.take_completion(ids[5]), None, "taken once");
    let id = rig.dev.submit(read).unwrap();
    // The new id names no command whose completion is still waiting.
    let waiting: Vec<CommandId> = ids.iter().copied().filter(|&i| i != ids[5]).collect();
    assert!(!waiting.contains(&id));
    assert_eq!(rig.dev.outstanding(), QUEUE_DEPTH);
}

#[test]
fn submit_checks_sizes_alignment_and_wrap() {
    let mut rig = Rig::new();
    let ctx = rig.ctx;
    let too_long = Command::Read {
        ctx,
        va: 0,
        len: MAX_COMMAND_BYTES + 1,
    };
    assert_eq!(rig.dev.submit(too_long), Err(SubmitError::TooLarge));
    let misaligned = Command::AtomicAdd {
        ctx,
        va: va(0) + 4,
        npages: 1,
        value: 1,
    };
    assert_eq!(rig.dev.submit(misaligned), Err(SubmitError::Misaligned));
    let wraps = Command::Read {
        ctx,
        va: u64::MAX - 2,
        len: 8,
    };
    assert_eq!(rig.dev.submit(wraps), Err(SubmitError::AddressOverflow));
    let many = Command::Prefetch {
        ctx,
        va: 0,
        npages: MAX_COMMAND_PAGES + 1,
        access: Access::Read,
    };
    assert_eq!(rig.dev.submit(many), Err(SubmitError::TooLarge));
    assert_eq!(rig.dev.outstanding(), 0, "refused commands leave no trace");
    // An empty read is fine and touches nothing.
    let empty = rig.read(va(0), 0);
    assert_eq!(
        (empty.result, empty.pages_done, empty.faults),
        (Ok(()), 0, 0)
    );
}

#[test]
fn no_completion_before_the_doorbell() {
    let mut rig = Rig::new();
    rig.map_buffer(1, true);
    let ctx = rig.ctx;
    let id = rig
        .dev
        .submit(Command::Read {
            ctx,
            va: va(0),
            len: 4,
        })
        .unwrap();
    assert_ne!(id.0, 0);
    assert_eq!(rig.dev.take_completion(id), None);
    assert_eq!(rig.dev.queued(), 1);
    assert_eq!(rig.dev.process(&mut rig.mem, &mut rig.host), 1);
    assert!(rig.dev.take_completion(id).is_some());
    assert_eq!(rig.dev.process(&mut rig.mem, &mut rig.host), 0);
}

#[test]
fn bus_master_and_pri_gate_the_engine() {
    let mut rig = Rig::new();
    rig.map_buffer(2, true);
    rig.read(va(0), 1); // page 0 translated
    let cs = rig.dev.config_mut();
    let at = cs.find_extended_capability(ext_cap_id::PRI).unwrap();
    cs.write_u16(at + pri::CONTROL, 0).unwrap();
    // Without PRI, hits still work and a miss fails.
    assert_eq!(rig.read(va(0), 4).result, Ok(()));
    let miss = rig.read(va(0), 4096 + 4);
    assert_eq!(miss.result, Err(DeviceError::PriDisabled { va: va(1) }));
    assert_eq!(miss.pages_done, 1);
    // Without bus mastering nothing reaches memory.
    rig.dev
        .config_mut()
        .write_u16(header::COMMAND, pci::Command::MEMORY_SPACE.bits())
        .unwrap();
    let c = rig.read(va(0), 4);
    assert_eq!(
        (c.result, c.pages_done),
        (Err(DeviceError::BusMasterDisabled), 0)
    );
}

// ---- BAR0 ----

#[test]
fn mmio_reads_all_ones_and_drops_writes_without_memory_space() {
    let mut dev = Accelerator::new();
    assert_eq!(dev.mmio_read(regs::ID, Width::Dword), Ok(0xFFFF_FFFF));
    assert_eq!(dev.mmio_read(regs::VERSION + 2, Width::Word), Ok(0xFFFF));
    assert_eq!(dev.mmio_read(regs::DATA + 3, Width::Byte), Ok(0xFF));
    assert_eq!(
        dev.mmio_write(regs::INT_MASK, Width::Dword, regs::INT_ALL),
        Ok(())
    );
    // Errors are errors whatever the decode state.
    assert_eq!(
        dev.mmio_read(0x4000, Width::Byte),
        Err(MmioError::OutOfRange {
            offset: 0x4000,
            width: Width::Byte
        })
    );
    enable(&mut dev);
    assert_eq!(
        dev.mmio_read(regs::INT_MASK, Width::Dword),
        Ok(0),
        "write was dropped"
    );
    assert_eq!(dev.mmio_read(regs::ID, Width::Dword), Ok(0x0001_7EAC));
    assert_eq!(dev.mmio_read(regs::ID + 2, Width::Word), Ok(0x0001));
    assert_eq!(
        dev.mmio_read(regs::VERSION, Width::Dword),
        Ok(regs::VERSION_1_0)
    );
    assert_eq!(dev.mmio_read(regs::QUEUE_DEPTH, Width::Byte), Ok(64));
    assert_eq!(
        dev.mmio_read(0x3FFC, Width::Dword),
        Ok(0),
        "unimplemented reads 0"
    );
    assert_eq!(
        dev.mmio_read(regs::ID + 2, Width::Dword),
        Err(MmioError::Misaligned {
            offset: 2,
            width: Width::Dword
        })
    );
    assert_eq!(
        dev.mmio_write(0x3FFE, Width::Dword, 0),
        Err(MmioError::OutOfRange {
            offset: 0x3FFE,
            width: Width::Dword
        })
    );
}

#[test]
fn interrupt_cause_is_write_one_to_clear_and_masked() {
    let mut rig = Rig::new();
    rig.map_buffer(1, true);
    rig.read(va(0), 4); // complete + page request
    rig.read(va(5), 4); // complete + page request + error
    let cause = rig.dev.mmio_read(regs::INT_CAUSE, Width::Dword).unwrap();
    assert_eq!(cause, regs::INT_ALL);
    assert!(!rig.dev.interrupt_pending(), "masked at reset");
    assert!(!rig
        .dev
        .config()
        .status()
        .contains(pci::Status::INTERRUPT_STATUS));
    rig.dev
        .mmio_write(regs::INT_MASK, Width::Dword, regs::INT_ERROR)
        .unwrap();
    assert!(rig.dev.interrupt_pending());
    assert!(rig
        .dev
        .config()
        .status()
        .contains(pci::Status::INTERRUPT_STATUS));
    // Writing 0 clears nothing; writing 1 clears exactly that bit.
    rig.dev
        .mmio_write(regs::INT_CAUSE, Width::Dword, 0)
        .unwrap();
    assert_eq!(
        rig.dev.mmio_read(regs::INT_CAUSE, Width::Dword),
        Ok(regs::INT_ALL)
    );
    rig.dev
        .mmio_write(regs::INT_CAUSE, Width::Byte, regs::INT_ERROR)
        .unwrap();
    let cause = rig.dev.mmio_read(regs::INT_CAUSE, Width::Dword).unwrap();
    assert_eq!(cause, regs::INT_COMPLETE | regs::INT_PAGE_REQUEST);
    assert!(!rig.dev.interrupt_pending());
    assert!(!rig
        .dev
        .config()
        .status()
        .contains(pci::Status::INTERRUPT_STATUS));
    // The error code stays until software clears it.
    let status = rig.dev.mmio_read(regs::STATUS, Width::Dword).unwrap();
    assert_ne!(status & regs::STATUS_ERROR, 0);
    rig.dev
        .mmio_write(regs::LAST_ERROR, Width::Dword, 1)
        .unwrap();
    assert_eq!(rig.dev.mmio_read(regs::LAST_ERROR, Width::Dword), Ok(0));
    // Mask bits beyond INT_ALL do not stick.
    rig.dev
        .mmio_write(regs::INT_MASK, Width::Dword, !0)
        .unwrap();
    assert_eq!(
        rig.dev.mmio_read(regs::INT_MASK, Width::Dword),
        Ok(regs::INT_ALL)
    );
}

/// Writes the command slot through MMIO.
fn mmio_slot(dev: &mut Accelerator, opcode: u32, ctx: ContextId, at: u64, length: u32, arg: u32) {
    let w = |dev: &mut Accelerator, reg, value| dev.mmio_write(reg, Width::Dword, value).unwrap();
    w(dev, regs::CMD_OPCODE, opcode);
    w(dev, regs::CMD_CONTEXT, ctx.0);
    w(dev, regs::CMD_VA_LO, at as u32);
    w(dev, regs::CMD_VA_HI, (at >> 32) as u32);
    w(dev, regs::CMD_LENGTH, length);
    w(dev, regs::CMD_ARG, arg);
    w(dev, regs::CMD_SUBMIT, 1);
}

#[test]
fn doorbell_through_mmio_runs_the_command_slot() {
    let mut rig = Rig::new();
    let pfns = rig.map_buffer(2, true);
    let dev = &mut rig.dev;
    // Stage 8 bytes in DATA with byte and word writes, then WRITE them across the page edge.
    for (i, b) in [1u32, 2, 3, 4].into_iter().enumerate() {
        dev.mmio_write(regs::DATA + i, Width::Byte, b).unwrap();
    }
    dev.mmio_write(regs::DATA + 4, Width::Dword, 0x0807_0605)
        .unwrap();
    assert_eq!(dev.mmio_read(regs::DATA, Width::Dword), Ok(0x0403_0201));
    mmio_slot(dev, regs::OP_WRITE, rig.ctx, va(1) - 4, 8, 0);
    assert_eq!(dev.mmio_read(regs::CMD_SUBMIT_STATUS, Width::Dword), Ok(0));
    let write_id = dev.mmio_read(regs::CMD_ID, Width::Dword).unwrap();
    mmio_slot(dev, regs::OP_READ, rig.ctx, va(1) - 2, 4, 0);
    let read_id = dev.mmio_read(regs::CMD_ID, Width::Dword).unwrap();
    assert_ne!(write_id, read_id);
    assert_eq!(dev.mmio_read(regs::QUEUE_COUNT, Width::Dword), Ok(2));
    // Nothing runs until the doorbell.
    dev.mmio_write(regs::CPL_TAKE, Width::Dword, write_id)
        .unwrap();
    assert_eq!(
        dev.mmio_read(regs::CPL_STATUS, Width::Dword),
        Ok(regs::CPL_NONE)
    );
    dev.mmio_write(regs::DOORBELL, Width::Dword, 1).unwrap();
    assert!(dev.doorbell_rung());
    let status = dev.mmio_read(regs::STATUS, Width::Dword).unwrap();
    assert_eq!(status & 0b11, regs::STATUS_BUSY | regs::STATUS_DOORBELL);
    assert_eq!(dev.process(&mut rig.mem, &mut rig.host), 2);
    assert!(!dev.doorbell_rung());
    assert_eq!(dev.mmio_read(regs::STATUS, Width::Dword), Ok(0));
    assert_eq!(rig.mem.frame(pfns[0])[4092..], [1, 2, 3, 4]);
    assert_eq!(rig.mem.frame(pfns[1])[..4], [5, 6, 7, 8]);
    // Take both completions through the registers.
    dev.mmio_write(regs::CPL_TAKE, Width::Dword, write_id)
        .unwrap();
    assert_eq!(dev.mmio_read(regs::CPL_ID, Width::Dword), Ok(write_id));
    assert_eq!(
        dev.mmio_read(regs::CPL_STATUS, Width::Dword),
        Ok(regs::CPL_OK)
    );
    assert_eq!(dev.mmio_read(regs::CPL_PAGES, Width::Dword), Ok(2));
    assert_eq!(dev.mmio_read(regs::CPL_FAULTS, Width::Dword), Ok(2));
    dev.mmio_write(regs::DATA, Width::Dword, 0).unwrap();
    dev.mmio_write(regs::CPL_TAKE, Width::Dword, read_id)
        .unwrap();
    assert_eq!(
        dev.mmio_read(regs::CPL_STATUS, Width::Dword),
        Ok(regs::CPL_OK)
    );
    assert_eq!(dev.mmio_read(regs::DATA, Width::Dword), Ok(0x0605_0403));
    assert_eq!(dev.outstanding(), 0);
}

#[test]
fn command_slot_reports_submit_errors_and_failed_completions() {
    let mut rig = Rig::new();
    let dev = &mut rig.dev;
    mmio_slot(dev, 99, rig.ctx, 0, 0, 0);
    let bad_opcode = SubmitError::BadOpcode.code();
    assert_eq!(
        dev.mmio_read(regs::CMD_SUBMIT_STATUS, Width::Dword),
        Ok(bad_opcode)
    );
    mmio_slot(dev, regs::OP_WRITE, rig.ctx, 0, 4097, 0);
    let too_large = SubmitError::TooLarge.code();
    assert_eq!(
        dev.mmio_read(regs::CMD_SUBMIT_STATUS, Width::Dword),
        Ok(too_large)
    );
    mmio_slot(dev, regs::OP_PREFETCH, rig.ctx, 0, 1, 9);
    assert_eq!(
        dev.mmio_read(regs::CMD_SUBMIT_STATUS, Width::Dword),
        Ok(bad_opcode)
    );
    mmio_slot(dev, regs::OP_READ, ContextId(42), 0, 4, 0);
    let no_context = SubmitError::NoContext.code();
    assert_eq!(
        dev.mmio_read(regs::CMD_SUBMIT_STATUS, Width::Dword),
        Ok(no_context)
    );
    assert_eq!(dev.outstanding(), 0);
    // An atomic add on an unmapped page above 4 GiB: the error address is latched whole.
    let at = 0x0000_1234_5678_9000;
    mmio_slot(dev, regs::OP_ATOMIC_ADD, rig.ctx, at, 1, 1);
    assert_eq!(dev.mmio_read(regs::CMD_SUBMIT_STATUS, Width::Dword), Ok(0));
    let id = dev.mmio_read(regs::CMD_ID, Width::Dword).unwrap();
    dev.process(&mut rig.mem, &mut rig.host);
    dev.mmio_write(regs::CPL_TAKE, Width::Dword, id).unwrap();
    let fault = DeviceError::Fault { va: at }.code();
    assert_eq!(dev.mmio_read(regs::CPL_STATUS, Width::Dword), Ok(fault));
    assert_eq!(
        dev.mmio_read(regs::CPL_ERROR_VA_LO, Width::Dword),
        Ok(0x5678_9000)
    );
    assert_eq!(
        dev.mmio_read(regs::CPL_ERROR_VA_HI, Width::Dword),
        Ok(0x1234)
    );
    assert_eq!(dev.mmio_read(regs::CPL_PAGES, Width::Dword), Ok(0));
    assert_eq!(dev.mmio_read(regs::LAST_ERROR, Width::Dword), Ok(fault));
}

#[test]
fn statistics_count_what_happened() {
    let mut rig = Rig::new();
    rig.map_buffer(2, true);
    rig.read(va(0), 2 * 4096); // 2 pages, 2 requests
    rig.atomic_add(va(0), 1, 1); // 1 page, 1 request
    rig.read(va(2), 1); // failed, 1 request
    rig.dev.invalidate(None, va(0), va(2)); // drops 2
    rig.dev.invalidate(Some(rig.ctx), va(0), va(2)); // drops 0
    let stats = rig.dev.stats();
    assert_eq!(
        stats,
        Stats {
            commands: 3,
            commands_failed: 1,
            pages: 3,
            page_requests: 4,
            invalidations: 2,
            translations_dropped: 2,
        }
    );
}
