//! Stopping a restarting partition's PCI devices from mastering DMA (`tantalum_core::pci`).

use tantalum_core::addr::HostRange;
use tantalum_core::pci::{functions_in, ConfigHeader, COMMAND, NO_VENDOR};
use tock_registers::interfaces::{ReadWriteable, Readable};

/// Clears Bus Master Enable of every function on `buses`, the first bus of each generic ECAM
/// host bridge a partition owns (`Partition::pci_buses`: a bridge there stops forwarding what
/// lies below it); returns how
/// many had it set. Called while none of the partition's vCPUs runs (a restart, before the
/// reload), so no guest write races these; its driver sets the bit again when it starts the
/// device. A request the device holds is then dropped instead of carried out into the new run.
pub fn stop_bus_masters(buses: &[HostRange]) -> usize {
    let mut stopped = 0;
    for &bus in buses {
        for function in functions_in(bus) {
            // SAFETY: a function's header in the ECAM window of a host bridge this partition
            // owns, which the EL2 map maps as device memory (el2map: `first_bus_window`); reads
            // of configuration space have no side effects, and the only write is the command
            // register's Bus Master Enable, a 16-bit read-modify-write that leaves the status
            // register (write-1-to-clear) alone.
            let header = unsafe { &*(function.as_u64() as *const ConfigHeader) };
            if header.vendor.get() == NO_VENDOR {
                continue;
            }
            if header.command.is_set(COMMAND::BUS_MASTER) {
                header.command.modify(COMMAND::BUS_MASTER::CLEAR);
                stopped += 1;
            }
        }
    }
    stopped
}
