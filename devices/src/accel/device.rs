//! [`Accelerator`]: the device's state, its parameters, its contexts and the driver's command
//! queue (submit, take a completion). The rest of its behaviour lives in two submodules:
//!
//! - [`engine`]: what [`Accelerator::process`] runs: command execution, translation through
//!   the context's page table, page requests, and invalidation.
//! - [`mmio`]: the BAR0 register file ([`regs`] has the layout), the interrupt registers and
//!   [`MmioError`].

mod engine;
mod mmio;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

pub use self::mmio::MmioError;
use self::mmio::Registers;
use super::command::{
    Command, CommandId, Completion, ContextError, ContextId, SubmitError, MAX_COMMAND_BYTES,
    MAX_COMMAND_PAGES,
};
use super::page_table::{DevicePageTable, Perm};
#[cfg(doc)]
use super::{command::DeviceError, regs};
use super::{PAGE_SHIFT, PAGE_SIZE};
use crate::pci::ConfigSpace;

/// How many commands may be outstanding at once: queued, or completed and not yet taken.
pub const QUEUE_DEPTH: usize = 64;

/// How many contexts may be live at once (the size of the device's context table).
pub const MAX_CONTEXTS: usize = 256;

/// How many page requests the device issues for one page of one command before it gives up with
/// [`DeviceError::Busy`]: each answer was invalidated before the device could use it. Two are
/// normal (a write that breaks COW invalidates the old page, then the second answer sticks).
pub const MAX_PAGE_REQUESTS_PER_PAGE: u32 = 16;

/// Counters of what the device did since power-on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Stats {
    /// Commands run (completed, successfully or not).
    pub commands: u64,
    /// Commands that completed with an error.
    pub commands_failed: u64,
    /// Pages read, written, added to or prefetched.
    pub pages: u64,
    /// Page requests issued.
    pub page_requests: u64,
    /// Calls to [`Accelerator::invalidate`], including those drained from the host's queue.
    pub invalidations: u64,
    /// Translations those invalidations dropped.
    pub translations_dropped: u64,
}

/// The emulated PCIe accelerator: a configuration space, a BAR0 register file, a table of
/// contexts (each a [`DevicePageTable`]) and a command engine.
///
/// Driver's view, in order:
/// 1. Configure it through [`config_mut`](Self::config_mut): Command.MEMORY_SPACE (BAR0
///    decodes), Command.BUS_MASTER (the engine may reach memory), PRI Control.Enable (it may
///    issue page requests). Without BUS_MASTER every command fails with
///    [`DeviceError::BusMasterDisabled`]; without PRI any page miss fails with
///    [`DeviceError::PriDisabled`].
/// 2. [`create_context`](Self::create_context) per mirrored address space (dmirror: one per
///    open of `/dev/hmm_dmirror*`).
/// 3. [`submit`](Self::submit) commands, [`process`](Self::process) them (the doorbell), and
///    [`take_completion`](Self::take_completion) each one.
/// 4. From the MMU notifier: [`invalidate`](Self::invalidate).
pub struct Accelerator {
    config: ConfigSpace,
    contexts: BTreeMap<ContextId, DevicePageTable>,
    /// The id the next context gets; ids are never reused.
    next_context: u32,
    /// The command slots: room for [`QUEUE_DEPTH`] taken at power-on, as hardware has its
    /// queue memory; queueing never allocates (the host kernel may be short of memory).
    queue: VecDeque<(CommandId, Command)>,
    /// Completed commands not yet taken; at most [`QUEUE_DEPTH`], room taken at power-on.
    completions: Vec<Completion>,
    /// Where the search for the next command id starts.
    next_command: u32,
    regs: Registers,
    stats: Stats,
}

impl fmt::Debug for Accelerator {
    // A summary: the DATA window and every page table would drown the interesting state.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accelerator")
            .field("config", &self.config)
            .field("contexts", &self.contexts.len())
            .field("queued", &self.queue.len())
            .field("outstanding", &self.outstanding())
            .field("int_cause", &format_args!("{:#x}", self.regs.int_cause))
            .field("int_mask", &format_args!("{:#x}", self.regs.int_mask))
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Default for Accelerator {
    fn default() -> Self {
        Self::new()
    }
}

impl Accelerator {
    /// The device at power-on: [`ConfigSpace::accelerator`] (everything disabled), no context,
    /// empty queue, every register at its reset value.
    pub fn new() -> Self {
        Accelerator {
            config: ConfigSpace::accelerator(),
            contexts: BTreeMap::new(),
            next_context: 1,
            queue: VecDeque::with_capacity(QUEUE_DEPTH),
            completions: Vec::with_capacity(QUEUE_DEPTH),
            next_command: 1,
            regs: Registers::new(),
            stats: Stats::default(),
        }
    }

    // ---- Configuration space ----

    /// The configuration space, for reading.
    pub fn config(&self) -> &ConfigSpace {
        &self.config
    }

    /// The configuration space, for the kernel's PCI layer to write (config cycles).
    pub fn config_mut(&mut self) -> &mut ConfigSpace {
        &mut self.config
    }

    // ---- Contexts (PASIDs) ----

    /// Creates a context with an empty page table (dmirror: `dmirror_fops_open()`).
    pub fn create_context(&mut self) -> Result<ContextId, ContextError> {
        if self.contexts.len() >= MAX_CONTEXTS || self.next_context == u32::MAX {
            return Err(ContextError::TooMany);
        }
        let ctx = ContextId(self.next_context);
        self.next_context += 1;
        self.contexts.insert(ctx, DevicePageTable::new());
        Ok(ctx)
    }

    /// Destroys a context and its page table (dmirror: `dmirror_fops_release()`). Commands of it
    /// still queued fail with [`DeviceError::NoContext`]. False if there was no such context.
    pub fn destroy_context(&mut self, ctx: ContextId) -> bool {
        self.contexts.remove(&ctx).is_some()
    }

    /// The live contexts, in id order.
    pub fn contexts(&self) -> impl Iterator<Item = ContextId> + '_ {
        self.contexts.keys().copied()
    }

    /// The page table of `ctx`, for dumps and tests.
    pub fn page_table(&self, ctx: ContextId) -> Option<&DevicePageTable> {
        self.contexts.get(&ctx)
    }

    // ---- Commands ----

    /// Queues `command` and returns its id; it runs at the next [`process`](Self::process).
    /// Checks that the context exists, the size is within [`MAX_COMMAND_BYTES`] /
    /// [`MAX_COMMAND_PAGES`], page-granular commands are page-aligned, the range does not wrap,
    /// and fewer than [`QUEUE_DEPTH`] commands are outstanding.
    pub fn submit(&mut self, command: Command) -> Result<CommandId, SubmitError> {
        if self.outstanding() >= QUEUE_DEPTH {
            return Err(SubmitError::QueueFull);
        }
        if !self.contexts.contains_key(&command.context()) {
            return Err(SubmitError::NoContext);
        }
        match command {
            Command::Read { va, len, .. } => check_bytes(va, len)?,
            Command::Write { va, ref data, .. } => check_bytes(va, data.len())?,
            Command::AtomicAdd { va, npages, .. } | Command::Prefetch { va, npages, .. } => {
                check_pages(va, npages)?
            }
        }
        let id = self.allocate_command_id();
        self.queue.push_back((id, command));
        Ok(id)
    }

    /// The smallest id at or after `next_command` (wrapping, skipping 0) not in use. At most
    /// [`QUEUE_DEPTH`] ids are in use, so this ends quickly.
    fn allocate_command_id(&mut self) -> CommandId {
        loop {
            let id = CommandId(self.next_command);
            self.next_command = self.next_command.wrapping_add(1).max(1);
            let in_use = self.completions.iter().any(|c| c.id == id)
                || self.queue.iter().any(|&(queued, _)| queued == id);
            if !in_use {
                return id;
            }
        }
    }

    /// Commands queued and not yet run.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Commands submitted whose completion has not been taken (queued + completed).
    pub fn outstanding(&self) -> usize {
        self.queue.len() + self.completions.len()
    }

    /// Takes the completion of command `id`, or `None` if it has not run yet (or was taken).
    pub fn take_completion(&mut self, id: CommandId) -> Option<Completion> {
        let at = self.completions.iter().position(|c| c.id == id)?;
        Some(self.completions.swap_remove(at))
    }

    // ---- Host-side queries ----

    /// What the device holds for the page containing `va` in `ctx` (dmirror: the per-page
    /// protection byte of `dmirror_snapshot()`); `None` if nothing, or no such context.
    pub fn snapshot(&self, ctx: ContextId, va: u64) -> Option<Perm> {
        self.contexts
            .get(&ctx)?
            .lookup(va >> PAGE_SHIFT)
            .map(|t| t.perm)
    }

    /// True if `ctx` holds an `Atomic` translation for any page overlapping `va_range`
    /// (dmirror: `dmirror_check_atomic()`, behind `HMM_DMIRROR_CHECK_EXCLUSIVE`).
    pub fn has_atomic(&self, ctx: ContextId, va_range: Range<u64>) -> bool {
        self.contexts.get(&ctx).is_some_and(|table| {
            table
                .range(page_range(va_range))
                .any(|(_, t)| t.perm == Perm::Atomic)
        })
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }
}

/// Checks a byte-granular command's size and range.
fn check_bytes(va: u64, len: usize) -> Result<(), SubmitError> {
    if len > MAX_COMMAND_BYTES {
        return Err(SubmitError::TooLarge);
    }
    va.checked_add(len as u64)
        .map(|_| ())
        .ok_or(SubmitError::AddressOverflow)
}

/// Checks a page-granular command's size, alignment and range.
fn check_pages(va: u64, npages: u64) -> Result<(), SubmitError> {
    if npages > MAX_COMMAND_PAGES {
        return Err(SubmitError::TooLarge);
    }
    if !va.is_multiple_of(PAGE_SIZE as u64) {
        return Err(SubmitError::Misaligned);
    }
    va.checked_add(npages << PAGE_SHIFT)
        .map(|_| ())
        .ok_or(SubmitError::AddressOverflow)
}

/// The virtual page numbers of every page overlapping `[start, end)` (empty if `end <= start`).
fn page_range(va: Range<u64>) -> Range<u64> {
    if va.end <= va.start {
        return 0..0;
    }
    (va.start >> PAGE_SHIFT)..va.end.div_ceil(PAGE_SIZE as u64)
}
