//! Minimal Cadence UART driver (`cdns,uart-r1p12`, the ZynqMP's UART0/1): polled transmit,
//! receive with an interrupt per byte for console input.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};
use tock_registers::{register_bitfields, register_structs};

register_bitfields! [u32,
    CR [
        /// Restart the receive timeout counter.
        RSTTO OFFSET(6) NUMBITS(1) [],
        TX_DIS OFFSET(5) NUMBITS(1) [],
        TX_EN OFFSET(4) NUMBITS(1) [],
        RX_DIS OFFSET(3) NUMBITS(1) [],
        RX_EN OFFSET(2) NUMBITS(1) []
    ],
    SR [
        /// Transmit FIFO full.
        TXFULL OFFSET(4) NUMBITS(1) [],
        /// Receive FIFO empty.
        RXEMPTY OFFSET(1) NUMBITS(1) []
    ],
    IXR [
        /// Receive timeout: bytes wait below the trigger level.
        TOUT OFFSET(8) NUMBITS(1) [],
        /// Receive FIFO at its trigger level.
        RTRIG OFFSET(0) NUMBITS(1) []
    ]
];

register_structs! {
    Registers {
        (0x00 => cr: ReadWrite<u32, CR::Register>),
        (0x04 => _mode),
        (0x08 => ier: WriteOnly<u32, IXR::Register>),
        (0x0c => idr: WriteOnly<u32, IXR::Register>),
        (0x10 => _imr),
        (0x14 => isr: ReadWrite<u32, IXR::Register>),
        (0x18 => _baudgen),
        (0x1c => rxtout: ReadWrite<u32>),
        (0x20 => rxwm: ReadWrite<u32>),
        (0x24 => _modem),
        (0x2c => sr: ReadOnly<u32, SR::Register>),
        (0x30 => fifo: ReadWrite<u32>),
        (0x34 => @END),
    }
}

/// A Cadence UART the hypervisor owns.
pub struct Cadence {
    regs: *const Registers,
}

// SAFETY: as for the PL011: the UART is only used behind the console lock (or by the panic
// path, which steals it when the system is going down anyway).
unsafe impl Send for Cadence {}

impl Cadence {
    /// Takes the UART and turns its transmitter and receiver on (the baud rate and frame format
    /// stay as the firmware set them).
    ///
    /// # Safety
    /// `base` must be the MMIO base of a Cadence UART mapped as device memory for the rest of
    /// the program, and nothing else may drive it.
    pub unsafe fn new(base: usize) -> Self {
        let uart = Self { regs: base as *const Registers };
        uart.regs().cr.write(CR::TX_EN::SET + CR::RX_EN::SET);
        uart
    }

    fn regs(&self) -> &Registers {
        // SAFETY: `new`'s contract: `regs` points at the device for the program's lifetime.
        unsafe { &*self.regs }
    }

    pub fn write_byte(&mut self, byte: u8) {
        while self.regs().sr.is_set(SR::TXFULL) {
            core::hint::spin_loop();
        }
        self.regs().fifo.set(u32::from(byte));
    }

    /// A received byte, if one waits; acknowledges the receive interrupts once none does.
    pub fn read_byte(&mut self) -> Option<u8> {
        if self.regs().sr.is_set(SR::RXEMPTY) {
            self.regs().isr.write(IXR::RTRIG::SET + IXR::TOUT::SET);
            return None;
        }
        Some(self.regs().fifo.get() as u8)
    }

    /// Raises the UART's interrupt when a byte arrives (trigger level 1, and the timeout).
    pub fn enable_rx_interrupt(&mut self) {
        let regs = self.regs();
        regs.idr.set(u32::MAX);
        regs.rxwm.set(1);
        regs.rxtout.set(10);
        regs.isr.set(u32::MAX);
        regs.ier.write(IXR::RTRIG::SET + IXR::TOUT::SET);
        regs.cr.write(CR::TX_EN::SET + CR::RX_EN::SET + CR::RSTTO::SET);
    }
}
