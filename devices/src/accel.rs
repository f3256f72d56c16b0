//! The accelerator itself: a software PCIe device that mirrors process memory through its own
//! page table, the device Linux's `lib/test_hmm.c` ("dmirror") emulates (docs chapter 7).
//!
//! ```text
//!            kernel driver                                  Accelerator
//!   ioctl --> submit(Command) ---------------------> queue (QUEUE_DEPTH outstanding)
//!             process(memory, host)  = doorbell ---> engine: for each page of each command
//!                                                      drain host.take_invalidation()
//!                                                      lookup in the context's DevicePageTable
//!             PageRequests::page_request  <--------   missing / too weak: page request (PRI)
//!               (hmm_range_fault or                    install the answer, page_request_done
//!                make_device_exclusive)  ---------->   HostMemory read / write / atomic_add_u32
//!             take_completion(id) <-----------------   Completion { result, data, pages, faults }
//!   MMU notifier --> invalidate(ctx, start, end) --> drop translations (ATS invalidation)
//! ```
//!
//! - [`DevicePageTable`], [`Translation`], [`Perm`], [`Access`]: one context's view of memory.
//! - [`Accelerator`]: configuration space + BAR0 registers ([`regs`]) + contexts + engine.
//! - [`Command`], [`Completion`] and the errors; [`HostMemory`] and [`PageRequests`], the only
//!   way the device reaches the host.
//!
//! The model is synchronous: the engine runs only inside [`Accelerator::process`], and a page
//! request is a call into the host that returns the answer. Everything the device does is
//! therefore ordered with what the driver does, which is what lets the host tests check it
//! exactly; the [`PageRequests`] documentation says how the host delivers invalidations that
//! happen while the engine runs.

mod command;
mod device;
mod host;
mod page_table;
pub mod regs;

#[cfg(test)]
mod tests;

pub use command::{
    Command, CommandId, Completion, ContextError, ContextId, DeviceError, PageRequestError,
    SubmitError, MAX_COMMAND_BYTES, MAX_COMMAND_PAGES,
};
pub use device::{
    Accelerator, MmioError, Stats, MAX_CONTEXTS, MAX_PAGE_REQUESTS_PER_PAGE, QUEUE_DEPTH,
};
pub use host::{HostMemory, Invalidation, PageRequests};
pub use page_table::{Access, DevicePageTable, NoMemory, Perm, Translation};

/// log2 of the page size the device translates (x86-64 base pages).
pub const PAGE_SHIFT: u32 = 12;

/// The page size the device translates, in bytes.
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
