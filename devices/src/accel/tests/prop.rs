//! Property test: random sequences of commands, invalidations and changes to the processes'
//! page tables, run on the device and on a model a student can check by eye (memory as byte
//! vectors, the device's translations as a map of permissions). After each doorbell every
//! completion must match the model's; the device's translations must always agree with the
//! processes' page tables (the coherence MMU notifiers exist for); and at the end memory and
//! translations must be identical.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use super::fake::{FakeHost, FakeMemory, XorShift};
use super::{enable, va, vpn};
use crate::accel::*;

/// Pages the processes use: `va(0) .. va(PAGES)`.
const PAGES: u64 = 12;

/// Steps per run.
const STEPS: usize = 400;

/// The model: memory, processes' page tables, and what the device should hold.
#[derive(Default)]
struct Model {
    /// Frame contents by pfn.
    frames: BTreeMap<u64, Vec<u8>>,
    /// Each process's page table: vpn -> (pfn, writable).
    processes: Vec<BTreeMap<u64, (u64, bool)>>,
    /// Which process each context mirrors.
    binding: BTreeMap<ContextId, usize>,
    /// What the device holds: (context, vpn) -> permission.
    tlb: BTreeMap<(ContextId, u64), Perm>,
}

/// What the model expects of one command.
#[derive(Debug, PartialEq, Eq)]
struct Expected {
    result: Result<(), DeviceError>,
    data: Vec<u8>,
    pages_done: u64,
    faults: u32,
}

impl Model {
    /// The pages a command touches: (first address touched in the page, offset, length).
    fn chunks(command: &Command) -> Vec<(u64, usize, usize)> {
        let (start, len) = match command {
            Command::Read { va, len, .. } => (*va, *len as u64),
            Command::Write { va, data, .. } => (*va, data.len() as u64),
            Command::AtomicAdd { va, npages, .. } | Command::Prefetch { va, npages, .. } => {
                (*va, npages * PAGE_SIZE as u64)
            }
        };
        let mut out = Vec::new();
        let mut at = start;
        while at < start + len {
            let offset = (at % PAGE_SIZE as u64) as usize;
            let n = (PAGE_SIZE - offset).min((start + len - at) as usize);
            out.push((at, offset, n));
            at += n as u64;
        }
        out
    }

    /// Runs `command` on the model.
    fn execute(&mut self, command: &Command) -> Expected {
        let ctx = command.context();
        let access = match command {
            Command::Read { .. } => Access::Read,
            Command::Write { .. } => Access::Write,
            Command::AtomicAdd { .. } => Access::Atomic,
            Command::Prefetch { access, .. } => *access,
        };
        let mut expected = Expected {
            result: Ok(()),
            data: Vec::new(),
            pages_done: 0,
            faults: 0,
        };
        let mut written = 0;
        for (at, offset, n) in Self::chunks(command) {
            let vpn = at >> PAGE_SHIFT;
            let process = self.binding[&ctx];
            let held = self.tlb.get(&(ctx, vpn)).copied();
            if !held.is_some_and(|perm| perm.allows(access)) {
                expected.faults += 1;
                // The page request, answered as the fake host does.
                let granted = match (self.processes[process].get(&vpn), access) {
                    (None, _) => Err(DeviceError::Fault { va: at }),
                    (Some(&(_, writable)), Access::Read) => {
                        Ok(if writable { Perm::Write } else { Perm::Read })
                    }
                    (Some(&(_, false)), _) => Err(DeviceError::Permission { va: at }),
                    (Some(_), Access::Write) => Ok(Perm::Write),
                    (Some(_), Access::Atomic) => Ok(Perm::Atomic),
                };
                match granted {
                    Ok(perm) => {
                        self.tlb.insert((ctx, vpn), perm);
                    }
                    Err(error) => {
                        expected.result = Err(error);
                        return expected;
                    }
                }
            }
            let pfn = self.processes[process][&vpn].0;
            let frame = self.frames.get_mut(&pfn).expect("model frame");
            match command {
                Command::Read { .. } => expected.data.extend_from_slice(&frame[offset..offset + n]),
                Command::Write { data, .. } => {
                    frame[offset..offset + n].copy_from_slice(&data[written..written + n]);
                    written += n;
                }
                Command::AtomicAdd { value, .. } => {
                    for word in frame.chunks_exact_mut(4) {
                        let old = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
                        word.copy_from_slice(&old.wrapping_add(*value as u32).to_le_bytes());
                    }
                }
                Command::Prefetch { .. } => {}
            }
            expected.pages_done += 1;
        }
        expected
    }

    /// Drops the model's translations of `[start, end)`, as `Accelerator::invalidate` must.
    fn invalidate(&mut self, ctx: Option<ContextId>, start: u64, end: u64) {
        if end <= start {
            return;
        }
        let vpns = (start >> PAGE_SHIFT)..end.div_ceil(PAGE_SIZE as u64);
        self.tlb
            .retain(|&(c, vpn), _| !(ctx.is_none_or(|ctx| ctx == c) && vpns.contains(&vpn)));
    }
}

/// The device, the fake host and the model, driven together.
struct Run {
    rng: XorShift,
    dev: Accelerator,
    mem: FakeMemory,
    host: FakeHost,
    model: Model,
    contexts: Vec<ContextId>,
    /// Submitted and not yet run, in order.
    pending: Vec<(CommandId, Command)>,
    /// Whether the host injects spurious invalidations (fault counts then are unpredictable).
    noisy: bool,
}

impl Run {
    fn new(seed: u64, noisy: bool) -> Self {
        let mut dev = Accelerator::new();
        enable(&mut dev);
        let mut run = Run {
            rng: XorShift::new(seed),
            dev,
            mem: FakeMemory::default(),
            host: FakeHost::with_processes(2),
            model: Model {
                processes: vec![BTreeMap::new(); 2],
                ..Model::default()
            },
            contexts: Vec::new(),
            pending: Vec::new(),
            noisy,
        };
        if noisy {
            run.host.noise = Some(XorShift::new(seed ^ 0xDEAD_BEEF));
        }
        // Two contexts on process 0 (like /dev/hmm_dmirror0 and 1 opened by one process), one
        // on process 1.
        for process in [0, 0, 1] {
            let ctx = run.dev.create_context().unwrap();
            run.host.bind(ctx, process);
            run.model.binding.insert(ctx, process);
            run.contexts.push(ctx);
        }
        for process in 0..2 {
            for page in 0..PAGES {
                if !run.rng.one_in(10) {
                    let writable = !run.rng.one_in(6);
                    run.map_new(process, page, writable);
                }
            }
        }
        run
    }

    /// Maps a fresh frame of random bytes at `va(page)` in `process`.
    fn map_new(&mut self, process: usize, page: u64, writable: bool) -> u64 {
        let seed = self.rng.next();
        let pfn = self
            .mem
            .alloc_filled(|i| (seed >> (8 * (i % 8))) as u8 ^ i as u8);
        self.model.frames.insert(pfn, self.mem.frame(pfn).to_vec());
        self.set_pte(process, page, Some((pfn, writable)));
        pfn
    }

    /// Changes `process`'s entry for `va(page)` in the fake host and the model.
    fn set_pte(&mut self, process: usize, page: u64, pte: Option<(u64, bool)>) {
        match pte {
            Some((pfn, writable)) => {
                self.host.map(process, vpn(page), pfn, writable);
                self.model.processes[process].insert(vpn(page), (pfn, writable));
            }
            None => {
                self.host.processes[process].remove(&vpn(page));
                self.model.processes[process].remove(&vpn(page));
            }
        }
    }

    fn context(&mut self) -> ContextId {
        self.contexts[self.rng.below(self.contexts.len() as u64) as usize]
    }

    /// A random command over (and a little past) the pages in use.
    fn random_command(&mut self) -> Command {
        let ctx = self.context();
        // Mostly inside the mapped window; sometimes running off its end.
        let page = if self.rng.one_in(10) {
            PAGES - 1
        } else {
            self.rng.below(PAGES - 2)
        };
        match self.rng.below(4) {
            0 => Command::Read {
                ctx,
                va: va(page) + self.rng.below(PAGE_SIZE as u64),
                len: self.rng.below(2 * PAGE_SIZE as u64) as usize,
            },
            1 => {
                let len = self.rng.below(2 * PAGE_SIZE as u64) as usize;
                let fill = self.rng.next() as u8;
                Command::Write {
                    ctx,
                    va: va(page) + self.rng.below(PAGE_SIZE as u64),
                    data: (0..len).map(|i| fill.wrapping_add(i as u8)).collect(),
                }
            }
            2 => Command::AtomicAdd {
                ctx,
                va: va(page),
                npages: self.rng.below(3),
                value: self.rng.next() as i32,
            },
            _ => Command::Prefetch {
                ctx,
                va: va(page),
                npages: self.rng.below(3),
                access: [Access::Read, Access::Write, Access::Atomic][self.rng.below(3) as usize],
            },
        }
    }

    fn submit(&mut self) {
        let command = self.random_command();
        match self.dev.submit(command.clone()) {
            Ok(id) => self.pending.push((id, command)),
            Err(error) => {
                assert_eq!(error, SubmitError::QueueFull);
                assert_eq!(self.pending.len(), QUEUE_DEPTH);
            }
        }
    }

    /// Rings the doorbell and checks every completion against the model.
    fn process(&mut self) {
        let requests_before = self.host.requests.len() as u64;
        let stats_before = self.dev.stats();
        let ran = self.dev.process(&mut self.mem, &mut self.host);
        assert_eq!(ran, self.pending.len());
        let pending = core::mem::take(&mut self.pending);
        for (id, command) in pending {
            // Invalidations the host queued while idle were drained before the first lookup:
            // the model applied them when they were queued.
            let expected = self.model.execute(&command);
            let got = self
                .dev
                .take_completion(id)
                .expect("completion after process");
            assert_eq!(got.id, id);
            assert_eq!(got.result, expected.result, "{command:?}");
            assert_eq!(got.data, expected.data, "{command:?}");
            assert_eq!(got.pages_done, expected.pages_done, "{command:?}");
            if !self.noisy {
                assert_eq!(got.faults, expected.faults, "{command:?}");
            }
        }
        assert!(
            self.host.queued.is_empty(),
            "process drains the host's queue"
        );
        let stats = self.dev.stats();
        assert_eq!(
            stats.page_requests - stats_before.page_requests,
            self.host.requests.len() as u64 - requests_before
        );
        assert_eq!(self.dev.outstanding(), 0);
        if self.noisy {
            // Spurious invalidations made the device forget translations and ask again, so
            // what it holds is not predictable; it must still be coherent. Resynchronise.
            self.check_coherence();
            self.model.tlb = self
                .contexts
                .iter()
                .flat_map(|&ctx| {
                    let table = self.dev.page_table(ctx).unwrap();
                    table.iter().map(move |(vpn, t)| ((ctx, vpn), t.perm))
                })
                .collect();
        }
        self.check_translations();
    }

    /// A CPU-side change to a process's page table, followed by the MMU notifier's
    /// invalidation of every context mirroring that process; delivered at once or queued for
    /// the device to drain (as when the device is busy).
    fn change_mapping(&mut self) {
        let process = self.rng.below(2) as usize;
        let page = self.rng.below(PAGES);
        let current = self.model.processes[process].get(&vpn(page)).copied();
        match (self.rng.below(8), current) {
            (0, _) => self.set_pte(process, page, None),
            (1, Some((pfn, writable))) => self.set_pte(process, page, Some((pfn, !writable))),
            (2..=4, Some((pfn, writable))) => {
                // Migration: a new frame with the same contents.
                let copy = self.mem.alloc();
                let bytes = *self.mem.frame(pfn);
                *self.mem.frame_mut(copy) = bytes;
                self.model.frames.insert(copy, bytes.to_vec());
                self.set_pte(process, page, Some((copy, writable)));
            }
            _ => {
                let writable = !self.rng.one_in(4);
                self.map_new(process, page, writable);
            }
        }
        let queue = self.rng.one_in(2);
        let contexts: Vec<ContextId> = self.contexts.clone();
        for ctx in contexts {
            if self.model.binding[&ctx] != process {
                continue;
            }
            let (start, end) = (va(page), va(page + 1));
            self.model.invalidate(Some(ctx), start, end);
            if queue {
                let inv = Invalidation {
                    ctx: Some(ctx),
                    start,
                    end,
                };
                self.host.queued.push_back(inv);
            } else {
                self.dev.invalidate(Some(ctx), start, end);
            }
        }
        if self.host.queued.is_empty() {
            self.check_translations();
        }
    }

    /// A device invalidation of a random byte range, in one context or all.
    fn invalidate(&mut self) {
        let start = va(0) + self.rng.below(PAGES * PAGE_SIZE as u64);
        let end = start + self.rng.below(4 * PAGE_SIZE as u64);
        let ctx = if self.rng.one_in(3) {
            None
        } else {
            Some(self.context())
        };
        let model_before = self.model.tlb.len();
        self.model.invalidate(ctx, start, end);
        let dropped = self.dev.invalidate(ctx, start, end);
        if !self.noisy && self.host.queued.is_empty() {
            assert_eq!(dropped, model_before - self.model.tlb.len());
        }
    }

    /// Every translation the device holds agrees with its process's page table: the right
    /// frame, and no write or atomic permission on a read-only page.
    fn check_coherence(&self) {
        for &ctx in &self.contexts {
            let process = self.model.binding[&ctx];
            for (vpn, t) in self.dev.page_table(ctx).unwrap().iter() {
                let (pfn, writable) = self.model.processes[process]
                    .get(&vpn)
                    .copied()
                    .unwrap_or_else(|| panic!("{ctx:?} holds unmapped vpn {vpn:#x}"));
                assert_eq!(t.pfn, pfn, "{ctx:?} vpn {vpn:#x}: stale frame");
                assert!(
                    writable || t.perm == Perm::Read,
                    "{ctx:?} vpn {vpn:#x}: {t:?}"
                );
            }
        }
    }

    /// Coherence, and the device holds exactly the translations the model says.
    fn check_translations(&self) {
        self.check_coherence();
        for &ctx in &self.contexts {
            for (vpn, t) in self.dev.page_table(ctx).unwrap().iter() {
                assert_eq!(
                    self.model.tlb.get(&(ctx, vpn)),
                    Some(&t.perm),
                    "{ctx:?} {vpn:#x}"
                );
            }
            let held = self.model.tlb.keys().filter(|(c, _)| *c == ctx).count();
            assert_eq!(held, self.dev.page_table(ctx).unwrap().len());
        }
    }

    fn check_memory(&self) {
        for (&pfn, bytes) in &self.model.frames {
            assert_eq!(&self.mem.frame(pfn)[..], &bytes[..], "frame {pfn:#x}");
        }
    }

    fn go(mut self) {
        for _ in 0..STEPS {
            match self.rng.below(100) {
                0..=44 => self.submit(),
                45..=64 => self.process(),
                65..=79 => self.change_mapping(),
                _ => self.invalidate(),
            }
        }
        self.process();
        self.check_memory();
        let stats = self.dev.stats();
        assert!(stats.commands > 0 && stats.page_requests > 0 && stats.invalidations > 0);
    }
}

#[test]
fn random_commands_and_invalidations_match_the_model() {
    for seed in 1..=40 {
        Run::new(seed, false).go();
    }
}

#[test]
fn spurious_invalidations_during_page_requests_never_change_results() {
    for seed in 1..=40 {
        Run::new(seed, true).go();
    }
}
