//! Running without the hypervisor: the same image started at EL1 by QEMU (`-kernel`, no
//! `virtualization=on`) or by firmware, with the machine's own device tree in x0. Then there is
//! no hypercall to print or exit with: the console is the UART the device tree's
//! `/chosen/stdout-path` names (a PL011), and exiting is PSCI `SYSTEM_OFF` through the conduit its
//! `/psci` node names. Test partitions that compare a bare run with a partition run use this
//! (`cargo xtask test`, "the same binary bare on QEMU and as a partition").

use core::sync::atomic::{AtomicU64, Ordering};

use crate::hypercall::{hvc, psci, smc};

/// 0: not looked yet; 1: under Tantalum; otherwise the bare console's PL011 base | 2 (its
/// address is page-aligned, so bit 1 is free; base 0 means no console).
static STATE: AtomicU64 = AtomicU64::new(0);
const UNDER_TANTALUM: u64 = 1;
const BARE: u64 = 2;

/// PL011 registers: data, flags (bit 5: transmit FIFO full).
const UARTDR: u64 = 0x00;
const UARTFR: u64 = 0x18;
const UARTFR_TXFF: u32 = 1 << 5;

fn state() -> u64 {
    match STATE.load(Ordering::Relaxed) {
        0 => {
            let s = look();
            STATE.store(s, Ordering::Relaxed);
            s
        }
        s => s,
    }
}

/// Under Tantalum the guest DT has a `/hypervisor` node (`tantalum,hypervisor-v1`); a machine's
/// own DT does not.
fn look() -> u64 {
    let Some(fdt) = crate::dt::get() else { return UNDER_TANTALUM };
    let tantalum = fdt
        .find_node("/hypervisor")
        .and_then(|n| n.compatible())
        .is_some_and(|c| c.all().any(|s| s == "tantalum,hypervisor-v1"));
    if tantalum {
        return UNDER_TANTALUM;
    }
    let named = fdt
        .find_node("/chosen")
        .and_then(|c| c.property("stdout-path"))
        .and_then(|p| p.as_str())
        .and_then(|path| fdt.find_node(path.split(':').next().unwrap_or(path)));
    let uart = named.or_else(|| {
        fdt.all_nodes().find(|n| n.compatible().is_some_and(|c| c.all().any(|s| s == "arm,pl011")))
    });
    let base = uart
        .and_then(|n| n.property("reg"))
        .and_then(|reg| crate::dt::numbers(reg.value, 2).next())
        .unwrap_or(0);
    (base & !0xfff) | BARE
}

/// Whether the image runs without the hypervisor (see the module documentation).
pub fn bare() -> bool {
    state() != UNDER_TANTALUM
}

/// Writes `bytes` to the bare console (nothing if the device tree names none).
pub(crate) fn write_bytes(bytes: &[u8]) {
    let base = state() & !0xfff;
    if base == 0 {
        return;
    }
    let reg = |offset: u64| (base + offset) as *mut u32;
    for &b in bytes {
        // SAFETY: `base` is the machine's console UART from its device tree, device memory in the
        // SDK's map (the first 4 GiB); without a hypervisor this program is its only user.
        unsafe {
            while reg(UARTFR).read_volatile() & UARTFR_TXFF != 0 {}
            reg(UARTDR).write_volatile(u32::from(b));
        }
    }
}

/// Powers the machine off (PSCI `SYSTEM_OFF` through the device tree's conduit: `hvc` on QEMU
/// virt without EL2 and EL3, `smc` with firmware at EL3).
pub(crate) fn power_off() {
    let fdt = crate::dt::get();
    let method = fdt.as_ref().and_then(|f| f.find_node("/psci")).and_then(|n| n.property("method"));
    let smc_conduit = method.and_then(|m| m.as_str()).is_some_and(|m| m == "smc");
    if smc_conduit {
        smc(psci::SYSTEM_OFF, [0; 3]);
    } else {
        hvc(psci::SYSTEM_OFF, [0; 6]);
    }
}
