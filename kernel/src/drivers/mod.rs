//! Device drivers.
pub mod console;
pub mod hmm;
pub mod pci;
pub mod serial;
