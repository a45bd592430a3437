//! Running without the hypervisor on x86_64: CPUID leaf 0x40000000 does not say "Tantalum".
//! Then the console is COM1 (a 16550 at I/O port 0x3f8) and exiting powers the PC off through
//! the PIIX4 ACPI PM1a control port that Bochs's and QEMU's i440FX BIOS set up (0xb004).

use core::arch::asm;
use core::sync::atomic::{AtomicU8, Ordering};

/// 0: not looked yet; 1: under Tantalum; 2: bare.
static STATE: AtomicU8 = AtomicU8::new(0);
const COM1: u16 = 0x3f8;
/// Line status register, bit 5: transmit holding register empty.
const LSR: u16 = 5;
const LSR_THRE: u8 = 1 << 5;

/// Whether the image runs without the hypervisor.
pub fn bare() -> bool {
    let state = match STATE.load(Ordering::Relaxed) {
        0 => {
            let (_, b, c, _) = crate::arch::cpuid(0x4000_0000);
            let tantalum = b == u32::from_le_bytes(*b"Tant") && c == u32::from_le_bytes(*b"alum");
            let s = if tantalum { 1 } else { 2 };
            STATE.store(s, Ordering::Relaxed);
            s
        }
        s => s,
    };
    state == 2
}

fn outb(port: u16, value: u8) {
    // SAFETY: called only bare, where this program owns the PC's COM1 and PM ports.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack)) };
}

fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: as above; reading the line status has no side effects.
    unsafe { asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack)) };
    value
}

/// Writes `bytes` to COM1.
pub(crate) fn write_bytes(bytes: &[u8]) {
    for &b in bytes {
        while inb(COM1 + LSR) & LSR_THRE == 0 {}
        outb(COM1, b);
    }
}

/// Powers the PC off (S5 through PM1a control at 0xb004).
pub(crate) fn power_off() {
    // SAFETY: as for `outb`: SLP_EN with SLP_TYP 0 ends the machine.
    unsafe { asm!("out dx, ax", in("dx") 0xb004u16, in("ax") 0x2000u16, options(nomem, nostack)) };
}
