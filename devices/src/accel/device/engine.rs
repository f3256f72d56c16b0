//! The command engine: what [`Accelerator::process`] runs when the doorbell rings. Each command
//! is executed page by page; each page is translated through the context's
//! [`DevicePageTable`](crate::accel::DevicePageTable), with a page request to the host when the
//! table has no translation strong enough; invalidations from the host drop translations
//! ([`Accelerator::invalidate`]).

use alloc::vec::Vec;

use super::{page_range, Accelerator, MAX_PAGE_REQUESTS_PER_PAGE, QUEUE_DEPTH};
use crate::accel::{
    regs, Access, Command, CommandId, Completion, ContextId, DeviceError, HostMemory, PageRequests,
    Perm, Translation, PAGE_SHIFT, PAGE_SIZE,
};
use crate::pci;

/// What a command has done so far; becomes its [`Completion`].
struct Progress {
    data: Vec<u8>,
    pages_done: u64,
    faults: u32,
}

impl Accelerator {
    /// Rings the doorbell: runs every queued command, in order, to completion, and returns how
    /// many ran. Each completion raises INT_COMPLETE (and INT_ERROR, and sets LAST_ERROR, if it
    /// failed). Memory is reached only through `memory`, translations only through `host`.
    ///
    /// For each page of a command (dmirror: `dmirror_do_read()`/`dmirror_do_write()`): drain
    /// the host's queued invalidations, look the page up in the context's table; if there is no
    /// translation, or one too weak for the access, issue a page request (raising
    /// INT_PAGE_REQUEST), install the answer and look again; then access the page. The first
    /// page that cannot be translated fails the command; the pages before it stay done.
    pub fn process<M, P>(&mut self, memory: &mut M, host: &mut P) -> usize
    where
        M: HostMemory + ?Sized,
        P: PageRequests + ?Sized,
    {
        self.regs.doorbell = false;
        let mut ran = 0;
        while let Some((id, command)) = self.queue.pop_front() {
            let completion = self.execute(id, command, memory, host);
            self.complete(completion);
            ran += 1;
        }
        self.drain_invalidations(host);
        ran
    }

    /// Records a finished command: counters, LAST_ERROR, interrupt causes.
    fn complete(&mut self, completion: Completion) {
        self.stats.commands += 1;
        let mut cause = regs::INT_COMPLETE;
        if let Err(error) = completion.result {
            self.stats.commands_failed += 1;
            self.regs.last_error = error.code();
            cause |= regs::INT_ERROR;
        }
        debug_assert!(
            self.completions.len() < QUEUE_DEPTH,
            "more completions than slots"
        );
        self.completions.push(completion);
        self.raise(cause);
    }

    /// Runs one command to completion or to its first error.
    fn execute<M, P>(
        &mut self,
        id: CommandId,
        command: Command,
        memory: &mut M,
        host: &mut P,
    ) -> Completion
    where
        M: HostMemory + ?Sized,
        P: PageRequests + ?Sized,
    {
        let mut progress = Progress {
            data: Vec::new(),
            pages_done: 0,
            faults: 0,
        };
        let result = if !self.config.command().contains(pci::Command::BUS_MASTER) {
            Err(DeviceError::BusMasterDisabled)
        } else if !self.contexts.contains_key(&command.context()) {
            Err(DeviceError::NoContext)
        } else {
            match command {
                Command::Read { ctx, va, len } => {
                    self.read(ctx, va, len, memory, host, &mut progress)
                }
                Command::Write { ctx, va, data } => {
                    self.write(ctx, va, &data, memory, host, &mut progress)
                }
                Command::AtomicAdd {
                    ctx,
                    va,
                    npages,
                    value,
                } => self.atomic_add(ctx, va, npages, value, memory, host, &mut progress),
                Command::Prefetch {
                    ctx,
                    va,
                    npages,
                    access,
                } => self.prefetch(ctx, va, npages, access, host, &mut progress),
            }
        };
        Completion {
            id,
            result,
            data: progress.data,
            pages_done: progress.pages_done,
            faults: progress.faults,
        }
    }

    /// `Command::Read` (dmirror: `dmirror_do_read()` into its bounce buffer).
    fn read<M, P>(
        &mut self,
        ctx: ContextId,
        va: u64,
        len: usize,
        memory: &mut M,
        host: &mut P,
        progress: &mut Progress,
    ) -> Result<(), DeviceError>
    where
        M: HostMemory + ?Sized,
        P: PageRequests + ?Sized,
    {
        progress
            .data
            .try_reserve_exact(len)
            .map_err(|_| DeviceError::NoMemory { va })?;
        for (at, offset, n) in page_chunks(va, len) {
            let t = self.translate(ctx, at, Access::Read, host, progress)?;
            let start = progress.data.len();
            progress.data.resize(start + n, 0);
            memory.read(t.pfn, offset, &mut progress.data[start..]);
            self.page_done(progress);
        }
        Ok(())
    }

    /// `Command::Write` (dmirror: `dmirror_do_write()` from its bounce buffer).
    fn write<M, P>(
        &mut self,
        ctx: ContextId,
        va: u64,
        data: &[u8],
        memory: &mut M,
        host: &mut P,
        progress: &mut Progress,
    ) -> Result<(), DeviceError>
    where
        M: HostMemory + ?Sized,
        P: PageRequests + ?Sized,
    {
        let mut done = 0;
        for (at, offset, n) in page_chunks(va, data.len()) {
            let t = self.translate(ctx, at, Access::Write, host, progress)?;
            memory.write(t.pfn, offset, &data[done..done + n]);
            done += n;
            self.page_done(progress);
        }
        Ok(())
    }

    /// `Command::AtomicAdd`: every 32-bit word of every page, one atomic add each.
    #[allow(clippy::too_many_arguments)]
    fn atomic_add<M, P>(
        &mut self,
        ctx: ContextId,
        va: u64,
        npages: u64,
        value: i32,
        memory: &mut M,
        host: &mut P,
        progress: &mut Progress,
    ) -> Result<(), DeviceError>
    where
        M: HostMemory + ?Sized,
        P: PageRequests + ?Sized,
    {
        for page in 0..npages {
            let at = va + (page << PAGE_SHIFT);
            let t = self.translate(ctx, at, Access::Atomic, host, progress)?;
            for offset in (0..PAGE_SIZE).step_by(4) {
                memory.atomic_add_u32(t.pfn, offset, value);
            }
            self.page_done(progress);
        }
        Ok(())
    }

    /// `Command::Prefetch`: translations only (dmirror: the `dmirror_atomic_map()` loop of
    /// `dmirror_exclusive()` when `access` is `Atomic`).
    fn prefetch<P>(
        &mut self,
        ctx: ContextId,
        va: u64,
        npages: u64,
        access: Access,
        host: &mut P,
        progress: &mut Progress,
    ) -> Result<(), DeviceError>
    where
        P: PageRequests + ?Sized,
    {
        for page in 0..npages {
            self.translate(ctx, va + (page << PAGE_SHIFT), access, host, progress)?;
            self.page_done(progress);
        }
        Ok(())
    }

    /// Counts one page of the running command as done.
    fn page_done(&mut self, progress: &mut Progress) {
        progress.pages_done += 1;
        self.stats.pages += 1;
    }

    /// A translation of the page holding `va` in `ctx` that allows `access`, from the table or
    /// from page requests (PCIe PRI, r5.0 §10.4; dmirror: the `-ENOENT` -> `dmirror_fault()`
    /// loop of `dmirror_read()`).
    fn translate<P>(
        &mut self,
        ctx: ContextId,
        va: u64,
        access: Access,
        host: &mut P,
        progress: &mut Progress,
    ) -> Result<Translation, DeviceError>
    where
        P: PageRequests + ?Sized,
    {
        let vpn = va >> PAGE_SHIFT;
        let mut requests = 0;
        loop {
            self.drain_invalidations(host);
            let table = self.contexts.get(&ctx).ok_or(DeviceError::NoContext)?;
            if let Some(t) = table.lookup(vpn) {
                if t.perm.allows(access) {
                    return Ok(t);
                }
            }
            if requests == MAX_PAGE_REQUESTS_PER_PAGE {
                return Err(DeviceError::Busy { va });
            }
            if !self.config.pri_state().enabled {
                return Err(DeviceError::PriDisabled { va });
            }
            requests += 1;
            progress.faults = progress.faults.saturating_add(1);
            self.stats.page_requests += 1;
            self.raise(regs::INT_PAGE_REQUEST);
            let answer = host
                .page_request(ctx, vpn, access)
                .map_err(|e| DeviceError::from_page_request(e, va))?;
            // Atomic is granted only to an atomic request: only make_device_exclusive() may
            // hand out exclusive access.
            let valid = answer.perm.allows(access)
                && (answer.perm != Perm::Atomic || access == Access::Atomic);
            let installed = match self.contexts.get_mut(&ctx) {
                Some(table) if valid => table.install(vpn, answer),
                _ => Ok(()),
            };
            host.page_request_done(ctx, vpn);
            if !valid {
                self.config.pri_record_response_failure();
                return Err(DeviceError::InvalidResponse { va });
            }
            // No memory for the table (it lives in the host's memory): the command fails
            // as dmirror's fault does when `xa_store()` fails.
            installed.map_err(|_| DeviceError::NoMemory { va })?;
        }
    }

    /// Applies every invalidation the host queued while the engine was running.
    fn drain_invalidations<P>(&mut self, host: &mut P)
    where
        P: PageRequests + ?Sized,
    {
        while let Some(inv) = host.take_invalidation() {
            self.invalidate(inv.ctx, inv.start, inv.end);
        }
    }

    // ---- Invalidation ----

    /// Drops every translation of a page overlapping `[va_start, va_end)`, in context `ctx` or
    /// in every context when `ctx` is `None`, and returns how many were dropped. After it the
    /// device holds nothing there until a new page request is answered. This is the MMU
    /// notifier's entry point (dmirror: `dmirror_interval_invalidate()` ->
    /// `dmirror_do_update()`; PCIe: an ATS Invalidate Request, r5.0 §10.3). An unknown `ctx` or
    /// an empty range drops nothing.
    pub fn invalidate(&mut self, ctx: Option<ContextId>, va_start: u64, va_end: u64) -> usize {
        self.stats.invalidations += 1;
        let vpns = page_range(va_start..va_end);
        let dropped = match ctx {
            Some(ctx) => self
                .contexts
                .get_mut(&ctx)
                .map_or(0, |table| table.invalidate(vpns)),
            None => self
                .contexts
                .values_mut()
                .map(|table| table.invalidate(vpns.clone()))
                .sum(),
        };
        self.stats.translations_dropped += dropped as u64;
        dropped
    }
}

/// The byte range `[va, va + len)` cut at page boundaries: (address, offset in page, length)
/// per page. The caller checked that the range does not wrap.
fn page_chunks(va: u64, len: usize) -> impl Iterator<Item = (u64, usize, usize)> {
    let end = va + len as u64;
    let mut at = va;
    core::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let offset = (at % PAGE_SIZE as u64) as usize;
        let n = (PAGE_SIZE - offset).min((end - at) as usize);
        let chunk = (at, offset, n);
        at += n as u64;
        Some(chunk)
    })
}
