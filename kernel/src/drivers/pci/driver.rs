//! PCI drivers and binding: a driver names the vendor/device id it serves and a probe
//! function (Linux `struct pci_driver`); `bind_drivers` matches them to the functions
//! enumeration found.
#![forbid(unsafe_code)]

use super::*;

// ---------------------------------------------------------------------------------------------
// Driver binding.
// ---------------------------------------------------------------------------------------------

/// A driver for the functions with one vendor/device id (Linux's `struct pci_driver` with a
/// one-entry `id_table`).
#[derive(Clone, Copy, Debug)]
pub struct PciDriver {
    /// The driver's name, for the log.
    pub name: &'static str,
    /// Vendor ID it drives.
    pub vendor_id: u16,
    /// Device ID it drives.
    pub device_id: u16,
    /// Called once for each matching function, when it is bound to this driver.
    pub probe: fn(&PciFunction),
}

impl PciDriver {
    /// Whether this driver drives `f` (Linux's `pci_match_one_device`, ids only).
    pub fn matches(&self, f: &PciFunction) -> bool {
        self.vendor_id == f.vendor_id && self.device_id == f.device_id
    }
}

/// Which driver each bound function is bound to. Taken with interrupts disabled, never held
/// across a probe.
static BOUND: Mutex<BTreeMap<PciAddress, &'static str>> = Mutex::new(BTreeMap::new());

/// Enumerates both segments and binds every function not yet bound to the first driver of
/// `drivers` that matches its vendor/device id: records the binding, calls that driver's
/// `probe` once, and logs `bound <name> to <address>`. As in Linux, a function has at most one
/// driver, so calling this again (say with more drivers, or after registering a software
/// function) never probes a function twice.
pub fn bind_drivers(drivers: &[PciDriver]) {
    for f in enumerate() {
        let Some(driver) = drivers.iter().find(|d| d.matches(&f)) else {
            continue;
        };
        let newly_bound = without_interrupts(|| {
            let mut bound = BOUND.lock();
            if bound.contains_key(&f.address) {
                return false;
            }
            bound.insert(f.address, driver.name);
            true
        });
        if newly_bound {
            (driver.probe)(&f);
            log::info!("bound {} to {}", driver.name, f.address);
        }
    }
}

/// The name of the driver `address` is bound to, if any.
pub fn bound_driver(address: PciAddress) -> Option<&'static str> {
    without_interrupts(|| BOUND.lock().get(&address).copied())
}
