//! [`Accelerator`]: the device, its registers, its contexts and its command engine.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use super::command::{
    Command, CommandId, Completion, ContextError, ContextId, DeviceError, SubmitError,
    MAX_COMMAND_BYTES, MAX_COMMAND_PAGES,
};
use super::host::{HostMemory, PageRequests};
use super::page_table::{Access, DevicePageTable, Perm, Translation};
use super::regs;
use super::{PAGE_SHIFT, PAGE_SIZE};
use crate::pci::{self, ConfigSpace, Width};

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

/// Why a BAR0 access was refused. A refused access has no effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MmioError {
    /// Some accessed byte lies past the end of the BAR0 window.
    OutOfRange {
        /// The offset of the access in BAR0.
        offset: usize,
        /// The width of the access.
        width: Width,
    },
    /// The offset is not a multiple of the access width.
    Misaligned {
        /// The offset of the access in BAR0.
        offset: usize,
        /// The width of the access.
        width: Width,
    },
}

impl fmt::Display for MmioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MmioError::OutOfRange { offset, width } => write!(
                f,
                "BAR0 access of {} bytes at {offset:#x} is past the end of the window",
                width.bytes()
            ),
            MmioError::Misaligned { offset, width } => write!(
                f,
                "BAR0 access of {} bytes at {offset:#x} is not naturally aligned",
                width.bytes()
            ),
        }
    }
}

/// The command slot registers (CMD_OPCODE .. CMD_ARG).
#[derive(Clone, Copy, Debug, Default)]
struct CommandSlot {
    opcode: u32,
    context: u32,
    va_lo: u32,
    va_hi: u32,
    length: u32,
    arg: u32,
}

/// The completion registers (CPL_ID .. CPL_ERROR_VA_HI), latched by a CPL_TAKE write.
#[derive(Clone, Copy, Debug, Default)]
struct CompletionLatch {
    id: u32,
    status: u32,
    pages: u32,
    faults: u32,
    error_va: u64,
}

/// BAR0 state that is not derived from the rest of the device.
#[derive(Clone, Debug)]
struct Registers {
    int_cause: u32,
    int_mask: u32,
    doorbell: bool,
    last_error: u32,
    slot: CommandSlot,
    cmd_id: u32,
    submit_status: u32,
    completion: CompletionLatch,
    /// The DATA window, [`regs::DATA_SIZE`] bytes.
    data: Vec<u8>,
}

/// What a command has done so far; becomes its [`Completion`].
struct Progress {
    data: Vec<u8>,
    pages_done: u64,
    faults: u32,
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
    queue: VecDeque<(CommandId, Command)>,
    completions: BTreeMap<CommandId, Completion>,
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
            queue: VecDeque::new(),
            completions: BTreeMap::new(),
            next_command: 1,
            regs: Registers {
                int_cause: 0,
                int_mask: 0,
                doorbell: false,
                last_error: 0,
                slot: CommandSlot::default(),
                cmd_id: 0,
                submit_status: 0,
                completion: CompletionLatch::default(),
                data: alloc::vec![0; regs::DATA_SIZE],
            },
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
            let in_use = self.completions.contains_key(&id)
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

    /// True if the doorbell was rung through MMIO and the engine has not run since: whoever
    /// emulates the bus calls [`process`](Self::process) then.
    pub fn doorbell_rung(&self) -> bool {
        self.regs.doorbell
    }

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

    /// Takes the completion of command `id`, or `None` if it has not run yet (or was taken).
    pub fn take_completion(&mut self, id: CommandId) -> Option<Completion> {
        self.completions.remove(&id)
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
        self.completions.insert(completion.id, completion);
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
            if valid {
                if let Some(table) = self.contexts.get_mut(&ctx) {
                    table.install(vpn, answer);
                }
            }
            host.page_request_done(ctx, vpn);
            if !valid {
                self.config.pri_record_response_failure();
                return Err(DeviceError::InvalidResponse { va });
            }
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

    // ---- Host-side queries and invalidation ----

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

    // ---- Interrupts ----

    /// True if an unmasked cause is set (`INT_CAUSE & INT_MASK != 0`): the device asserts its
    /// interrupt. Also mirrored in configuration Status.INTERRUPT_STATUS.
    pub fn interrupt_pending(&self) -> bool {
        self.regs.int_cause & self.regs.int_mask != 0
    }

    /// Sets interrupt cause bits.
    fn raise(&mut self, cause: u32) {
        self.regs.int_cause |= cause;
        self.update_interrupt();
    }

    /// Brings configuration Status.INTERRUPT_STATUS in line with the cause and mask registers.
    fn update_interrupt(&mut self) {
        let pending = self.interrupt_pending();
        self.config.set_interrupt_pending(pending);
    }

    // ---- BAR0 (MMIO) ----

    /// Reads `width` bytes at `offset` in BAR0 (layout in [`regs`]). All ones while
    /// Command.MEMORY_SPACE is clear.
    pub fn mmio_read(&self, offset: usize, width: Width) -> Result<u32, MmioError> {
        self.check_mmio(offset, width)?;
        let mask = width_mask(width);
        if !self.memory_space_enabled() {
            return Ok(mask);
        }
        if let Some(at) = data_window(offset) {
            let bytes = &self.regs.data[at..at + width.bytes()];
            return Ok(bytes
                .iter()
                .rev()
                .fold(0, |acc, &b| (acc << 8) | u32::from(b)));
        }
        let shift = 8 * (offset & 3);
        Ok((self.read_register(offset & !3) >> shift) & mask)
    }

    /// Writes the low `width` bytes of `value` at `offset` in BAR0 (layout in [`regs`]).
    /// Dropped while Command.MEMORY_SPACE is clear. A DOORBELL write only latches the doorbell
    /// ([`doorbell_rung`](Self::doorbell_rung)): the engine needs the host, so it runs in
    /// [`process`](Self::process).
    pub fn mmio_write(&mut self, offset: usize, width: Width, value: u32) -> Result<(), MmioError> {
        self.check_mmio(offset, width)?;
        if !self.memory_space_enabled() {
            return Ok(());
        }
        if let Some(at) = data_window(offset) {
            let bytes = value.to_le_bytes();
            self.regs.data[at..at + width.bytes()].copy_from_slice(&bytes[..width.bytes()]);
            return Ok(());
        }
        let shift = 8 * (offset & 3);
        let lanes = width_mask(width) << shift;
        self.write_register(offset & !3, lanes, (value << shift) & lanes);
        Ok(())
    }

    /// True if BAR0 decodes (Command.MEMORY_SPACE).
    fn memory_space_enabled(&self) -> bool {
        self.config.command().contains(pci::Command::MEMORY_SPACE)
    }

    /// Refuses accesses past the BAR0 window or not naturally aligned.
    fn check_mmio(&self, offset: usize, width: Width) -> Result<(), MmioError> {
        let size = self.config.bar0_size().bytes();
        match offset.checked_add(width.bytes()) {
            Some(end) if end as u64 <= size => {}
            _ => return Err(MmioError::OutOfRange { offset, width }),
        }
        if !offset.is_multiple_of(width.bytes()) {
            return Err(MmioError::Misaligned { offset, width });
        }
        Ok(())
    }

    /// The 32-bit register at `reg` (a multiple of 4, outside DATA).
    fn read_register(&self, reg: usize) -> u32 {
        let r = &self.regs;
        match reg {
            // Vendor and device id, exactly as configuration dword 0 has them.
            regs::ID => self.config.read_u32(0).unwrap_or(0),
            regs::VERSION => regs::VERSION_1_0,
            regs::STATUS => self.status_register(),
            regs::INT_CAUSE => r.int_cause,
            regs::INT_MASK => r.int_mask,
            regs::QUEUE_DEPTH => QUEUE_DEPTH as u32,
            regs::QUEUE_COUNT => self.queue.len() as u32,
            regs::OUTSTANDING => self.outstanding() as u32,
            regs::LAST_ERROR => r.last_error,
            regs::CONTEXTS => self.contexts.len() as u32,
            regs::CMD_OPCODE => r.slot.opcode,
            regs::CMD_CONTEXT => r.slot.context,
            regs::CMD_VA_LO => r.slot.va_lo,
            regs::CMD_VA_HI => r.slot.va_hi,
            regs::CMD_LENGTH => r.slot.length,
            regs::CMD_ARG => r.slot.arg,
            regs::CMD_ID => r.cmd_id,
            regs::CMD_SUBMIT_STATUS => r.submit_status,
            regs::CPL_ID => r.completion.id,
            regs::CPL_STATUS => r.completion.status,
            regs::CPL_PAGES => r.completion.pages,
            regs::CPL_FAULTS => r.completion.faults,
            regs::CPL_ERROR_VA_LO => r.completion.error_va as u32,
            regs::CPL_ERROR_VA_HI => (r.completion.error_va >> 32) as u32,
            // DOORBELL, CMD_SUBMIT, CPL_TAKE are write-only; the rest is unimplemented.
            _ => 0,
        }
    }

    /// The STATUS register.
    fn status_register(&self) -> u32 {
        let mut status = 0;
        if !self.queue.is_empty() {
            status |= regs::STATUS_BUSY;
        }
        if self.regs.doorbell {
            status |= regs::STATUS_DOORBELL;
        }
        if self.outstanding() >= QUEUE_DEPTH {
            status |= regs::STATUS_QUEUE_FULL;
        }
        if self.regs.last_error != 0 {
            status |= regs::STATUS_ERROR;
        }
        status
    }

    /// A write of `value` to the byte lanes `lanes` of the register at `reg`.
    fn write_register(&mut self, reg: usize, lanes: u32, value: u32) {
        let merge = |old: u32| (old & !lanes) | value;
        let slot = &mut self.regs.slot;
        match reg {
            regs::INT_CAUSE => {
                self.regs.int_cause &= !value;
                self.update_interrupt();
            }
            regs::INT_MASK => {
                self.regs.int_mask = merge(self.regs.int_mask) & regs::INT_ALL;
                self.update_interrupt();
            }
            regs::DOORBELL => self.regs.doorbell = true,
            regs::LAST_ERROR => self.regs.last_error = 0,
            regs::CMD_OPCODE => slot.opcode = merge(slot.opcode),
            regs::CMD_CONTEXT => slot.context = merge(slot.context),
            regs::CMD_VA_LO => slot.va_lo = merge(slot.va_lo),
            regs::CMD_VA_HI => slot.va_hi = merge(slot.va_hi),
            regs::CMD_LENGTH => slot.length = merge(slot.length),
            regs::CMD_ARG => slot.arg = merge(slot.arg),
            regs::CMD_SUBMIT => self.submit_slot(),
            regs::CPL_TAKE => self.take_into_registers(CommandId(value)),
            // Read-only or unimplemented: writes are ignored.
            _ => {}
        }
    }

    /// CMD_SUBMIT: builds a command from the slot (a WRITE's data from DATA) and submits it.
    fn submit_slot(&mut self) {
        let slot = self.regs.slot;
        let ctx = ContextId(slot.context);
        let va = (u64::from(slot.va_hi) << 32) | u64::from(slot.va_lo);
        let command = match slot.opcode {
            regs::OP_READ => Ok(Command::Read {
                ctx,
                va,
                len: slot.length as usize,
            }),
            regs::OP_WRITE => match self.regs.data.get(..slot.length as usize) {
                Some(data) => Ok(Command::Write {
                    ctx,
                    va,
                    data: data.to_vec(),
                }),
                None => Err(SubmitError::TooLarge),
            },
            regs::OP_ATOMIC_ADD => Ok(Command::AtomicAdd {
                ctx,
                va,
                npages: u64::from(slot.length),
                value: slot.arg as i32,
            }),
            regs::OP_PREFETCH => match slot.arg {
                regs::ACCESS_READ => Ok(Access::Read),
                regs::ACCESS_WRITE => Ok(Access::Write),
                regs::ACCESS_ATOMIC => Ok(Access::Atomic),
                _ => Err(SubmitError::BadOpcode),
            }
            .map(|access| Command::Prefetch {
                ctx,
                va,
                npages: u64::from(slot.length),
                access,
            }),
            _ => Err(SubmitError::BadOpcode),
        };
        match command.and_then(|command| self.submit(command)) {
            Ok(id) => {
                self.regs.cmd_id = id.0;
                self.regs.submit_status = 0;
            }
            Err(error) => self.regs.submit_status = error.code(),
        }
    }

    /// CPL_TAKE: takes the completion of `id` into the CPL_* registers (a READ's data, up to
    /// [`regs::DATA_SIZE`] bytes, into DATA).
    fn take_into_registers(&mut self, id: CommandId) {
        let latch = match self.take_completion(id) {
            None => CompletionLatch {
                id: id.0,
                status: regs::CPL_NONE,
                ..CompletionLatch::default()
            },
            Some(completion) => {
                let n = completion.data.len().min(regs::DATA_SIZE);
                self.regs.data[..n].copy_from_slice(&completion.data[..n]);
                let (status, error_va) = match completion.result {
                    Ok(()) => (regs::CPL_OK, 0),
                    Err(error) => (error.code(), error.va().unwrap_or(0)),
                };
                CompletionLatch {
                    id: id.0,
                    status,
                    pages: completion.pages_done as u32,
                    faults: completion.faults,
                    error_va,
                }
            }
        };
        self.regs.completion = latch;
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

/// The virtual page numbers of every page overlapping `[start, end)` (empty if `end <= start`).
fn page_range(va: Range<u64>) -> Range<u64> {
    if va.end <= va.start {
        return 0..0;
    }
    (va.start >> PAGE_SHIFT)..va.end.div_ceil(PAGE_SIZE as u64)
}

/// The all-ones value of an access of `width`.
const fn width_mask(width: Width) -> u32 {
    match width {
        Width::Byte => 0xFF,
        Width::Word => 0xFFFF,
        Width::Dword => 0xFFFF_FFFF,
    }
}

/// The offset inside DATA of a BAR0 offset in the DATA window. The access is aligned and no
/// wider than 4 bytes, so it never straddles the window's edge.
fn data_window(offset: usize) -> Option<usize> {
    offset
        .checked_sub(regs::DATA)
        .filter(|&at| at < regs::DATA_SIZE)
}
