//! The BAR0 register file of the accelerator: every offset and bit, in one table.
//!
//! All registers are 32 bits, little-endian. Reads of any naturally aligned width return the
//! addressed bytes; a narrower write changes only its bytes (a W1C or trigger register acts on
//! the bytes written). Unlisted offsets read 0 and ignore writes. While Command.MEMORY_SPACE is
//! clear in configuration space the device does not decode BAR0: reads return all ones and
//! writes are dropped, as on real hardware.
//!
//! ```text
//! offset  name               access  meaning
//! 0x000   ID                 RO      device id << 16 | vendor id (0x0001_7EAC)
//! 0x004   VERSION            RO      programming interface, major << 16 | minor (1.0)
//! 0x008   STATUS             RO      STATUS_* bits below
//! 0x00C   INT_CAUSE          RW1C    INT_* bits: what happened since software last cleared it
//! 0x010   INT_MASK           RW      INT_* bits: which causes raise the interrupt (reset 0)
//! 0x014   DOORBELL           WO      any write: run the queued commands (reads 0)
//! 0x018   QUEUE_DEPTH        RO      how many commands may be outstanding (64)
//! 0x01C   QUEUE_COUNT        RO      commands queued, not yet run
//! 0x020   OUTSTANDING        RO      commands submitted whose completion is not yet taken
//! 0x024   LAST_ERROR         RW      code of the latest failed command (DeviceError::code);
//!                                    any write clears it
//! 0x028   CONTEXTS           RO      live contexts
//! 0x040   CMD_OPCODE         RW      command slot: OP_* below
//! 0x044   CMD_CONTEXT        RW        context id
//! 0x048   CMD_VA_LO          RW        virtual address, bits 31:0
//! 0x04C   CMD_VA_HI          RW        virtual address, bits 63:32
//! 0x050   CMD_LENGTH         RW        READ/WRITE: bytes; ATOMIC_ADD/PREFETCH: pages
//! 0x054   CMD_ARG            RW        ATOMIC_ADD: the i32 addend; PREFETCH: ACCESS_* below
//! 0x058   CMD_SUBMIT         WO      any write: submit the slot (WRITE's data is the first
//!                                    CMD_LENGTH bytes of DATA)
//! 0x05C   CMD_ID             RO      the id the last accepted submission got
//! 0x060   CMD_SUBMIT_STATUS  RO      0 = accepted, else SubmitError::code
//! 0x080   CPL_TAKE           WO      write a command id: take its completion into CPL_*
//! 0x084   CPL_ID             RO      the id last written to CPL_TAKE
//! 0x088   CPL_STATUS         RO      CPL_NONE (not complete, or unknown id), CPL_OK, or a
//!                                    DeviceError::code
//! 0x08C   CPL_PAGES          RO      pages done
//! 0x090   CPL_FAULTS         RO      page requests issued
//! 0x094   CPL_ERROR_VA_LO    RO      failing address, bits 31:0 (0 if none)
//! 0x098   CPL_ERROR_VA_HI    RO      failing address, bits 63:32
//! 0x1000  DATA               RW      4 KiB staging buffer, any width: the source of a WRITE
//!         .. 0x1FFF                  submitted through CMD_SUBMIT; CPL_TAKE of a READ copies
//!                                    the first 4 KiB of its data here
//! ```

/// Device and vendor id (RO).
pub const ID: usize = 0x000;
/// Programming interface version (RO).
pub const VERSION: usize = 0x004;
/// Status bits (RO).
pub const STATUS: usize = 0x008;
/// Interrupt causes (RW1C).
pub const INT_CAUSE: usize = 0x00C;
/// Interrupt mask (RW).
pub const INT_MASK: usize = 0x010;
/// Doorbell (WO).
pub const DOORBELL: usize = 0x014;
/// Queue depth (RO).
pub const QUEUE_DEPTH: usize = 0x018;
/// Queued commands (RO).
pub const QUEUE_COUNT: usize = 0x01C;
/// Outstanding commands (RO).
pub const OUTSTANDING: usize = 0x020;
/// Latest error code (RW, any write clears).
pub const LAST_ERROR: usize = 0x024;
/// Live contexts (RO).
pub const CONTEXTS: usize = 0x028;
/// Command slot: opcode (RW).
pub const CMD_OPCODE: usize = 0x040;
/// Command slot: context id (RW).
pub const CMD_CONTEXT: usize = 0x044;
/// Command slot: virtual address bits 31:0 (RW).
pub const CMD_VA_LO: usize = 0x048;
/// Command slot: virtual address bits 63:32 (RW).
pub const CMD_VA_HI: usize = 0x04C;
/// Command slot: length in bytes or pages (RW).
pub const CMD_LENGTH: usize = 0x050;
/// Command slot: argument (RW).
pub const CMD_ARG: usize = 0x054;
/// Command slot: submit trigger (WO).
pub const CMD_SUBMIT: usize = 0x058;
/// Id of the last accepted submission (RO).
pub const CMD_ID: usize = 0x05C;
/// Result of the last submission (RO).
pub const CMD_SUBMIT_STATUS: usize = 0x060;
/// Take a completion (WO).
pub const CPL_TAKE: usize = 0x080;
/// Taken completion: id (RO).
pub const CPL_ID: usize = 0x084;
/// Taken completion: status (RO).
pub const CPL_STATUS: usize = 0x088;
/// Taken completion: pages done (RO).
pub const CPL_PAGES: usize = 0x08C;
/// Taken completion: page requests (RO).
pub const CPL_FAULTS: usize = 0x090;
/// Taken completion: failing address bits 31:0 (RO).
pub const CPL_ERROR_VA_LO: usize = 0x094;
/// Taken completion: failing address bits 63:32 (RO).
pub const CPL_ERROR_VA_HI: usize = 0x098;
/// The staging buffer (RW, any width).
pub const DATA: usize = 0x1000;
/// Size of the staging buffer in bytes.
pub const DATA_SIZE: usize = 0x1000;

/// VERSION value: 1.0.
pub const VERSION_1_0: u32 = 1 << 16;

/// STATUS bit 0: commands are queued and have not run yet.
pub const STATUS_BUSY: u32 = 1 << 0;
/// STATUS bit 1: the doorbell was rung and the engine has not run since.
pub const STATUS_DOORBELL: u32 = 1 << 1;
/// STATUS bit 2: QUEUE_DEPTH commands are outstanding; a submission would fail.
pub const STATUS_QUEUE_FULL: u32 = 1 << 2;
/// STATUS bit 3: LAST_ERROR is not 0.
pub const STATUS_ERROR: u32 = 1 << 3;

/// INT_CAUSE/INT_MASK bit 0: a command completed.
pub const INT_COMPLETE: u32 = 1 << 0;
/// INT_CAUSE/INT_MASK bit 1: the device issued a page request.
pub const INT_PAGE_REQUEST: u32 = 1 << 1;
/// INT_CAUSE/INT_MASK bit 2: a command failed.
pub const INT_ERROR: u32 = 1 << 2;
/// Every INT_* bit.
pub const INT_ALL: u32 = INT_COMPLETE | INT_PAGE_REQUEST | INT_ERROR;

/// CMD_OPCODE: [`Command::Read`](super::Command::Read).
pub const OP_READ: u32 = 1;
/// CMD_OPCODE: [`Command::Write`](super::Command::Write).
pub const OP_WRITE: u32 = 2;
/// CMD_OPCODE: [`Command::AtomicAdd`](super::Command::AtomicAdd).
pub const OP_ATOMIC_ADD: u32 = 3;
/// CMD_OPCODE: [`Command::Prefetch`](super::Command::Prefetch).
pub const OP_PREFETCH: u32 = 4;

/// CMD_ARG of a PREFETCH: [`Access::Read`](super::Access::Read).
pub const ACCESS_READ: u32 = 1;
/// CMD_ARG of a PREFETCH: [`Access::Write`](super::Access::Write).
pub const ACCESS_WRITE: u32 = 2;
/// CMD_ARG of a PREFETCH: [`Access::Atomic`](super::Access::Atomic).
pub const ACCESS_ATOMIC: u32 = 3;

/// CPL_STATUS: no completion (not complete yet, or no such command).
pub const CPL_NONE: u32 = 0;
/// CPL_STATUS: the command succeeded.
pub const CPL_OK: u32 = 1;
