//! The virtual 16550's interrupt (docs/x86.md, "Port I/O and the virtual 16550"), injected as
//! doorbells are (event injection at VM entry; no virtual local APIC or IOAPIC). Core's policy
//! is the Arm port's: the virtual UART interrupts at INTID `VIRTUAL_UART_SPI + 32`, which the
//! guest DT names (`interrupts = <0 VIRTUAL_UART_SPI 4>`) and which is the vector on x86, as a
//! doorbell's INTID is. A PC guest (Linux) takes it where its master PIC puts COM1's IRQ 4.

use tantalum_core::config::VIRTUAL_UART_SPI;

use crate::system::System;

/// The vector a unikernel takes its virtual 16550's interrupt at: its INTID.
pub const VECTOR: u32 = VIRTUAL_UART_SPI + 32;

/// COM1's ISA interrupt line, at a PC guest's master PIC.
const PC_IRQ: u8 = 4;

/// Follows partition `id`'s virtual 16550 interrupt line after its state may have changed (a
/// guest access to its ports, input delivered): it goes to vCPU 0 (as an unrouted doorbell).
/// A unikernel's vector is pending there while
/// the line is up and withdrawn once it drops (a level line, as the vGIC follows the vPL011's
/// on Arm); a PC guest's line, while up, pends the vector its PIC was programmed with for IRQ 4
/// (the PIC, not the hypervisor, lowers it). Whether a vector is pending for it now.
pub fn follow(system: &System, id: usize) -> bool {
    let me = &system.partitions[id];
    let Some(pending) = me.pending.first() else { return false };
    let high = me.vuart.lock().line();
    if me.pc_guest {
        let vector = if high { me.pic.lock().vector(PC_IRQ) } else { None };
        return vector.is_some_and(|v| pending.set(v.into()));
    }
    pending.follow_line(VECTOR, high)
}

/// Input reached partition `id`'s virtual 16550 (from any CPU): if that raised its interrupt,
/// the CPU of its vCPU 0 is kicked out of its guest to take it (a halted one sees it pending).
pub fn input(system: &System, id: usize) {
    if follow(system, id) {
        if let Some(apic_id) = system.apic_id(id, 0) {
            crate::smp::kick(apic_id);
        }
    }
}
