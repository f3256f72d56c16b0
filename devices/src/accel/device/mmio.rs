//! The BAR0 register file: the MMIO interface of [`Accelerator`] (layout and bit values in
//! [`regs`]). Through it a driver fills the command slot and submits it (CMD_SUBMIT), rings the
//! doorbell, takes a completion into the CPL registers (CPL_TAKE), moves data through the DATA
//! window, masks and acknowledges interrupts, and reads the status registers. Also here: the
//! interrupt state ([`Accelerator::interrupt_pending`]) and [`MmioError`].

use alloc::vec::Vec;
use core::fmt;

use super::{Accelerator, QUEUE_DEPTH};
use crate::accel::{regs, Access, Command, CommandId, ContextId, SubmitError};
use crate::pci::{self, Width};

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

/// BAR0 state that is not derived from the rest of the device. Four fields are seen outside this
/// module: the engine clears `doorbell` and sets `last_error` (and `int_cause`, through
/// [`Accelerator::raise`]); the `Debug` of [`Accelerator`] shows `int_cause` and `int_mask`.
#[derive(Clone, Debug)]
pub(super) struct Registers {
    pub(super) int_cause: u32,
    pub(super) int_mask: u32,
    pub(super) doorbell: bool,
    pub(super) last_error: u32,
    slot: CommandSlot,
    cmd_id: u32,
    submit_status: u32,
    completion: CompletionLatch,
    /// The DATA window, [`regs::DATA_SIZE`] bytes.
    data: Vec<u8>,
}

impl Registers {
    /// Every register at its reset value.
    pub(super) fn new() -> Registers {
        Registers {
            int_cause: 0,
            int_mask: 0,
            doorbell: false,
            last_error: 0,
            slot: CommandSlot::default(),
            cmd_id: 0,
            submit_status: 0,
            completion: CompletionLatch::default(),
            data: alloc::vec![0; regs::DATA_SIZE],
        }
    }
}

impl Accelerator {
    // ---- Interrupts ----

    /// True if an unmasked cause is set (`INT_CAUSE & INT_MASK != 0`): the device asserts its
    /// interrupt. Also mirrored in configuration Status.INTERRUPT_STATUS.
    pub fn interrupt_pending(&self) -> bool {
        self.regs.int_cause & self.regs.int_mask != 0
    }

    /// Sets interrupt cause bits.
    pub(super) fn raise(&mut self, cause: u32) {
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

    /// True if the doorbell was rung through MMIO and the engine has not run since: whoever
    /// emulates the bus calls [`process`](Self::process) then.
    pub fn doorbell_rung(&self) -> bool {
        self.regs.doorbell
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
