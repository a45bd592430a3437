//! `role=games` (x86_64): the attacker's CPU games, one per run (its restart count picks it),
//! each of which the hypervisor must end by the partition's `on-fault` policy: the
//! hypervisor's console port, the PIC, a CR3 pointing into the hypervisor's memory, VMXON, an
//! XCR0 without x87, and the ways into other CPUs through the interrupt system: the host's
//! local APIC and IOAPIC by MMIO (reading the APIC ID; INIT, NMI and fixed IPIs through the
//! ICR; redirecting an IOAPIC input), the legacy interrupt ports (the slave PIC, the IMCR that
//! switches the PIC's output to the APICs, the ELCR, the RTC's NMI mask, the NMI control port)
//! and CR8, the local APIC's task priority; and the chipset's reset control register (0xcf9),
//! which lies inside its own PCI configuration ports. First it checks that CPUID hides VMX and the PMU
//! and names Tantalum, that the local APIC base MSR (read, and a write turning on x2APIC), the
//! x2APIC MSRs (the APIC ID, TPR, EOI, the ICR sending INIT, NMI and fixed IPIs, SELF_IPI),
//! writing EFER and RDPMC each raise #GP(0) in it (caught by an exception fixup, as an OS
//! probes), that the ports of its own device reach it and that a valid XSETBV is carried
//! out. Once past the last game it says so and exits.

use core::arch::asm;
use core::arch::x86_64::__cpuid;
use core::sync::atomic::{AtomicU64, Ordering};

use tantalum_guest::{irq, println};

const GAMES: [&str; 19] = [
    "out-com1",
    "in-pic",
    "cr3-hypervisor",
    "vmxon",
    "xsetbv-x87-off",
    "lapic-read-id",
    "lapic-icr-init-all",
    "lapic-icr-nmi-all",
    "lapic-icr-fixed-cpu0",
    "ioapic-select",
    "ioapic-redirect",
    "out-pic2-init",
    "out-imcr-apic",
    "out-elcr",
    "out-rtc-nmi-off",
    "out-nmi-control",
    "mov-cr8",
    "mov-from-cr8",
    "out-reset-control",
];

/// The host's local APIC (xAPIC MMIO) and IOAPIC, where the board has them.
const LAPIC: u64 = 0xfee0_0000;
const IOAPIC: u64 = 0xfec0_0000;
/// ICR low words: INIT and NMI to all CPUs but this one (destination shorthand 11b), and a
/// fixed IPI with vector 0xf0 (the hypervisor's own kick vector) to the destination in ICR high.
const ICR_INIT_ALL_OTHERS: u32 = 0x000c_4500;
const ICR_NMI_ALL_OTHERS: u32 = 0x000c_4400;
const ICR_FIXED_F0: u32 = 0x0000_40f0;

/// How many #GP the fixup caught, and the last one's error code.
static CAUGHT: AtomicU64 = AtomicU64::new(0);
static ERROR_CODE: AtomicU64 = AtomicU64::new(u64::MAX);

/// Resumes after a faulting RDMSR, WRMSR or RDPMC (0f 32, 0f 30, 0f 33: two bytes), as
/// Linux's exception fixups do; anything else is reported as unexpected.
fn skip_msr_instruction(_vector: u32, error: u64, rip: u64) -> Option<u64> {
    // SAFETY: `rip` is the faulting instruction in this image's own code.
    let bytes = unsafe { core::ptr::read_unaligned(rip as *const [u8; 2]) };
    if !matches!(bytes, [0x0f, 0x30 | 0x32 | 0x33]) {
        return None;
    }
    CAUGHT.fetch_add(1, Ordering::AcqRel);
    ERROR_CODE.store(error, Ordering::Release);
    Some(rip + 2)
}

/// Runs `instruction` and says whether it raised #GP(0) (which the fixup skipped).
fn general_protection(what: &str, instruction: impl FnOnce()) {
    let before = CAUGHT.load(Ordering::Acquire);
    instruction();
    if CAUGHT.load(Ordering::Acquire) == before + 1 {
        println!("games: {what}: #GP({})", ERROR_CODE.load(Ordering::Acquire));
    } else {
        println!("BREACH: {what} returned without a #GP");
    }
}

fn rdmsr(msr: u32) {
    // SAFETY: RDMSR of a forbidden MSR raises #GP(0), which the fixup skips; it only reads.
    unsafe { asm!("rdmsr", in("ecx") msr, out("eax") _, out("edx") _, options(nostack)) }
}

fn wrmsr(msr: u32, value: u64) {
    // SAFETY: WRMSR of a forbidden MSR raises #GP(0), which the fixup skips. Carried out, each
    // of these would reach the host's local APIC: that is what the game checks.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack))
    }
}

/// The MSRs outside the allow-list and the performance counters: each a #GP(0), the guest
/// carries on. The x2APIC ones come after the write that would turn x2APIC on: were that
/// carried out, the host's local APIC would take the ICR writes that follow and send INIT, NMI
/// and fixed IPIs to the other CPUs (with xAPIC on, a CPU answers x2APIC MSRs with #GP itself).
fn faulting_instructions() {
    irq::init();
    irq::set_fixup(13, skip_msr_instruction);
    general_protection("RDMSR IA32_APIC_BASE", || rdmsr(0x1b));
    // Enabled (bit 11) and x2APIC (bit 10) at the usual base.
    general_protection("WRMSR IA32_APIC_BASE x2APIC on", || wrmsr(0x1b, LAPIC | (1 << 11) | (1 << 10)));
    general_protection("RDMSR x2APIC ID (0x802)", || rdmsr(0x802));
    general_protection("WRMSR x2APIC TPR (0x808)", || wrmsr(0x808, 0xf0));
    general_protection("WRMSR x2APIC EOI (0x80b)", || wrmsr(0x80b, 0));
    general_protection("WRMSR x2APIC ICR (0x830) INIT to all others", || {
        wrmsr(0x830, u64::from(ICR_INIT_ALL_OTHERS))
    });
    general_protection("WRMSR x2APIC ICR (0x830) NMI to all others", || {
        wrmsr(0x830, u64::from(ICR_NMI_ALL_OTHERS))
    });
    // The x2APIC ICR's destination is its high 32 bits: APIC ID 0, the victim's CPU.
    general_protection("WRMSR x2APIC ICR (0x830) fixed 0xf0 to CPU 0", || {
        wrmsr(0x830, u64::from(ICR_FIXED_F0))
    });
    general_protection("WRMSR x2APIC SELF_IPI (0x83f)", || wrmsr(0x83f, 0xf0));
    general_protection("RDMSR x2APIC ICR (0x830)", || rdmsr(0x830));
    // Carried out, it would break this partition alone.
    general_protection("WRMSR EFER", || wrmsr(0xc000_0080, 0));
    // SAFETY: RDPMC only reads; #GP(0) as above.
    general_protection("RDPMC 0", || unsafe {
        asm!("rdpmc", in("ecx") 0u32, out("eax") _, out("edx") _, options(nostack))
    });
}

/// The ports of a device the partition owns pass through: the PCI configuration address
/// register (`devices = <&pci_conf>` in configs/x86/x86-games.dts) keeps what is written.
fn own_ports() {
    let written = 0x8000_f804u32;
    let read: u32;
    // SAFETY: CONFIG_ADDRESS (0xcf8) selects a PCI configuration register; nothing accesses
    // configuration data here, so selecting one has no effect.
    unsafe {
        asm!("out dx, eax", in("dx") 0xcf8u16, in("eax") written, options(nostack));
        asm!("in eax, dx", in("dx") 0xcf8u16, out("eax") read, options(nostack));
        asm!("out dx, eax", in("dx") 0xcf8u16, in("eax") 0u32, options(nostack));
    }
    println!("games: own port 0xcf8 reaches the device: wrote {written:#x}, read {read:#x}");
}

/// Turns on CR4.OSXSAVE and sets XCR0 to x87 | SSE, which the hypervisor carries out.
fn xcr0() {
    // SAFETY: enabling XSAVE state management for this partition's own CPU; x87 | SSE is a
    // valid XCR0 on every CPU with XSAVE.
    unsafe {
        asm!("mov {t}, cr4", "bts {t}, 18", "mov cr4, {t}", t = out(reg) _, options(nomem, nostack));
        asm!("xsetbv", in("ecx") 0u32, in("eax") 3u32, in("edx") 0u32, options(nomem, nostack));
    }
    let (lo, hi): (u32, u32);
    // SAFETY: reading XCR0 (CR4.OSXSAVE is on).
    unsafe { asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    println!("games: XSETBV x87|SSE carried out: XCR0 = {:#x}", (u64::from(hi) << 32) | u64::from(lo));
}

pub fn play(run: u64) {
    if run == 0 {
        let vmx = __cpuid(1).ecx & (1 << 5) != 0;
        let sig = __cpuid(0x4000_0000);
        let tantalum = sig.ebx.to_le_bytes() == *b"Tant" && sig.ecx.to_le_bytes() == *b"alum";
        let pmu = __cpuid(0xa).eax & 0xff;
        println!("games: CPUID shows VMX: {vmx}; names Tantalum: {tantalum}; PMU version {pmu}");
        faulting_instructions();
        own_ports();
        xcr0();
    }
    let Some(game) = GAMES.get(run as usize) else {
        println!("games: all {} games were stopped", GAMES.len());
        return;
    };
    println!("games: run {run}: {game}");
    // SAFETY: each game is deliberately privileged; the hypervisor must stop the partition at
    // it (a game that returned is reported as a breach).
    unsafe {
        let mmio_write = |addr: u64, value: u32| core::ptr::write_volatile(addr as *mut u32, value);
        let out8 = |port: u16, value: u8| asm!("out dx, al", in("dx") port, in("al") value, options(nostack));
        match *game {
            "out-com1" => out8(0x3f8, b'!'),
            "in-pic" => asm!("in al, dx", in("dx") 0x21u16, out("al") _, options(nostack)),
            "cr3-hypervisor" => {
                asm!("mov cr3, {}", "mov rax, [rsp]", in(reg) 0x10_0000u64, out("rax") _, options(nostack))
            }
            "vmxon" => {
                let region = 0u64;
                asm!("vmxon [{}]", in(reg) &region, options(nostack));
            }
            "xsetbv-x87-off" => {
                asm!("mov {t}, cr4", "bts {t}, 18", "mov cr4, {t}", t = out(reg) _, options(nomem, nostack));
                // XCR0 without x87: #GP on hardware; the hypervisor's fault policy here.
                asm!("xsetbv", in("ecx") 0u32, in("eax") 2u32, in("edx") 0u32, options(nomem, nostack));
            }
            // The local APIC's ID register.
            "lapic-read-id" => {
                core::ptr::read_volatile((LAPIC + 0x20) as *const u32);
            }
            // ICR low (0x300) sends at once: INIT, then NMI, to every other CPU.
            "lapic-icr-init-all" => mmio_write(LAPIC + 0x300, ICR_INIT_ALL_OTHERS),
            "lapic-icr-nmi-all" => mmio_write(LAPIC + 0x300, ICR_NMI_ALL_OTHERS),
            // ICR high (0x310): the destination, APIC ID 0 (the victim's CPU), then the vector.
            "lapic-icr-fixed-cpu0" => {
                mmio_write(LAPIC + 0x310, 0);
                mmio_write(LAPIC + 0x300, ICR_FIXED_F0);
            }
            // IOREGSEL: redirection entry 4 (COM1's IRQ), low word.
            "ioapic-select" => mmio_write(IOAPIC, 0x10 + 2 * 4),
            // IOWIN: that entry, vector 0xf0 fixed to APIC ID 0, unmasked.
            "ioapic-redirect" => mmio_write(IOAPIC + 0x10, 0xf0),
            // ICW1 to the slave PIC: reinitialise it (its IRQs 8..15 stop).
            "out-pic2-init" => out8(0xa0, 0x11),
            // The IMCR (select 0x70 at 0x22, then 1 at 0x23): the PIC's output to the APICs.
            "out-imcr-apic" => {
                out8(0x22, 0x70);
                out8(0x23, 0x01);
            }
            // ELCR1: IRQs 3..7 level-triggered.
            "out-elcr" => out8(0x4d0, 0xf8),
            // Bit 7 of the RTC's index port masks NMIs for the whole machine.
            "out-rtc-nmi-off" => out8(0x70, 0x80),
            // Port 0x61: NMI status and control (IOCHK and SERR# NMIs off).
            "out-nmi-control" => out8(0x61, 0x0c),
            // CR8 is the local APIC's task priority: 15 would mask every interrupt of this CPU.
            "mov-cr8" => asm!("mov cr8, rax", in("rax") 15u64, options(nomem, nostack)),
            "mov-from-cr8" => asm!("mov rax, cr8", out("rax") _, options(nomem, nostack)),
            // The chipset's reset control register, inside its own PCI configuration ports:
            // 6 resets the whole machine (every partition with it).
            "out-reset-control" => out8(0xcf9, 0x06),
            _ => println!("games: {game}: no such game"),
        }
    }
    println!("BREACH: {game} returned");
}
