//! A hostile partition for the isolation scenario. Each boot tries one attack; the hypervisor
//! contains it with the `restart` policy, and the next boot (fresh memory, restart count + 1)
//! tries the next one. Addresses are host-physical: the scenario maps the attacker with
//! guest address = host address, so they name the victim's and the hypervisor's memory.
//! With `role=virtio` it attacks through its virtio device instead (see [`virtio`]), with
//! `role=blk` through its virtio-blk device (see [`blk`]).
#![no_std]
#![no_main]

use core::ptr::{addr_of_mut, read_volatile, write_volatile};

use tantalum_guest::hypercall::{hvc, psci, smc, Status, HYP_CONSOLE_WRITE, VENDOR_HYP_BASE};
use tantalum_guest::{partition_info, println};

mod blk;
mod virtio;

tantalum_guest::entry!(main);

/// The targets, QEMU virt's by default (configs/tests/attack.dts); another board's system names
/// them in the attacker's bootargs (`victim=`, `hypervisor=`, `uart=`, `gic=`, hex).
struct Targets {
    /// The victim partition's memory.
    victim: u64,
    /// The hypervisor's image.
    hypervisor: u64,
    /// The hypervisor's console UART.
    uart: u64,
    /// A GIC frame only the hypervisor uses (QEMU virt: the ITS; a GICv2: the GICH frame).
    gic: u64,
}

fn targets() -> Targets {
    let arg = |key: &str, default: u64| {
        tantalum_guest::dt::bootarg(key)
            .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
            .unwrap_or(default)
    };
    Targets {
        victim: arg("victim", 0x4200_0000),
        hypervisor: arg("hypervisor", 0x4008_0000),
        uart: arg("uart", 0x0900_0000),
        gic: arg("gic", 0x0808_0000),
    }
}

/// Set before each attack; a restart must bring it back as zero (fresh memory).
static mut MARKER: u64 = 0;

fn main() {
    let boot = partition_info().restarts;
    // SAFETY: single-threaded partition; MARKER is only touched here.
    let marker = unsafe { read_volatile(addr_of_mut!(MARKER)) };
    println!("boot {boot}: memory is {}", if marker == 0 { "fresh" } else { "NOT fresh" });
    // SAFETY: as above.
    unsafe { write_volatile(addr_of_mut!(MARKER), 0xdead_beef) };
    let t = targets();
    if tantalum_guest::dt::bootarg("role") == Some("virtio") {
        return virtio::attacks(&t);
    }
    if tantalum_guest::dt::bootarg("role") == Some("blk") {
        return blk::attacks(&t);
    }
    match boot {
        0 => {
            probe_hypercalls(t.victim);
            probe_pmu();
            println!("attack: read the victim's memory at {:#x}", t.victim);
            // SAFETY: deliberately hostile; the hypervisor contains the access.
            let v = unsafe { read_volatile(t.victim as *const u64) };
            println!("BREACH: read {v:#x} from the victim");
        }
        1 => attack_write("the victim's memory", t.victim + 0x100),
        2 => {
            println!("attack: read the hypervisor's memory at {:#x}", t.hypervisor);
            // SAFETY: deliberately hostile.
            let v = unsafe { read_volatile(t.hypervisor as *const u64) };
            println!("BREACH: read {v:#x} from the hypervisor");
        }
        3 => attack_write("the hypervisor's memory", t.hypervisor),
        4 => attack_write("the hypervisor's UART", t.uart),
        5 => attack_write("a GIC frame of the hypervisor's", t.gic),
        6 => {
            println!("attack: SMC to the firmware (SiP service call)");
            let r = smc(0xC200_0000, [0; 3]);
            println!("BREACH: SMC returned {r:#x}");
        }
        7 => {
            println!("attack: write the auxiliary control register (ACTLR_EL1)");
            // SAFETY: deliberately hostile; HCR_EL2.TACR traps it.
            unsafe { core::arch::asm!("msr actlr_el1, {}", in(reg) u64::MAX) };
            println!("BREACH: wrote ACTLR_EL1");
        }
        8 => {
            // Semihosting SYS_EXIT: with QEMU's -semihosting this would end the whole machine
            // (other calls open and write host files). Without it, HLT is UNDEFINED at EL1:
            // this partition takes its own exception, which the SDK reports, and exits.
            println!("attack: semihosting call (hlt #0xf000, SYS_EXIT)");
            // AArch64 SYS_EXIT takes a block: ADP_Stopped_ApplicationExit and the exit code.
            let block: [u64; 2] = [0x2_0026, 0];
            // SAFETY: deliberately hostile; only this partition's own exception follows.
            unsafe {
                core::arch::asm!("hlt #0xf000", in("x0") 0x18u64, in("x1") block.as_ptr(), options(nostack));
            }
            println!("BREACH: semihosting call returned");
        }
        _ => println!("all attacks contained; exiting"),
    }
}

fn attack_write(what: &str, addr: u64) {
    println!("attack: write {what} at {addr:#x}");
    // SAFETY: deliberately hostile; the hypervisor contains the access.
    unsafe { write_volatile(addr as *mut u64, 0x0bad_0bad) };
    println!("BREACH: wrote {what}");
}

/// The PMU counts only this partition's own EL0/EL1 work: asking an event filter to count at
/// EL2 too (NSH, bit 27) is silently refused, as the hypervisor's work for others is not ours
/// to time.
fn probe_pmu() {
    const NSH: u64 = 1 << 27;
    let (cycles, events): (u64, u64);
    // SAFETY: PMU filter registers: they change only what this CPU's PMU counts (each write
    // traps to the hypervisor, which carries it out).
    unsafe {
        core::arch::asm!(
            "msr pmccfiltr_el0, {nsh}",
            "msr pmevtyper0_el0, {nsh_inst}",
            "mrs {cycles}, pmccfiltr_el0",
            "mrs {events}, pmevtyper0_el0",
            nsh = in(reg) NSH,
            nsh_inst = in(reg) NSH | 0x08,
            cycles = out(reg) cycles,
            events = out(reg) events,
            options(nostack),
        );
    }
    if cycles & NSH != 0 || events & NSH != 0 {
        println!("BREACH: the PMU counts at EL2 (PMCCFILTR {cycles:#x}, PMEVTYPER0 {events:#x})");
    } else {
        println!("the PMU refused to count at EL2 (event 0: {:#x})", events & 0x3ff);
    }
}

/// Unknown hypercalls return NOT_SUPPORTED and are not faults; a console write that points at
/// another partition's memory is refused.
fn probe_hypercalls(victim: u64) {
    let unknown =
        [VENDOR_HYP_BASE + 0x77, VENDOR_HYP_BASE + 0xFFFF, 0x8600_0000, 0xC500_0001, 0xFFFF_FFFF, 0];
    let mut refused = 0;
    for f in unknown {
        if hvc(f, [1, 2, 3, 4, 5, 6])[0] == Status::NotSupported.to_reg() {
            refused += 1;
        } else {
            println!("BREACH: hypercall {f:#x} did not return NOT_SUPPORTED");
        }
    }
    println!("{refused} of {} unknown hypercalls returned NOT_SUPPORTED", unknown.len());
    let r = hvc(HYP_CONSOLE_WRITE, [victim, 16, 0, 0, 0, 0])[0];
    if r == Status::InvalidParameters.to_reg() {
        println!("console write from the victim's memory refused (INVALID_PARAMETERS)");
    } else {
        println!("BREACH: console write from the victim's memory returned {r:#x}");
    }
    let v = hvc(psci::VERSION, [0; 6])[0];
    println!("PSCI version {}.{}", v >> 16, v & 0xffff);
}
