//! Device drivers.
pub mod hmm;
pub mod pci;
pub mod serial;
