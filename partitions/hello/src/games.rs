//! `role=games` (x86_64): the attacker's CPU games, one per run (its restart count picks it),
//! each of which the hypervisor must end by the partition's `on-fault` policy: the
//! hypervisor's console port, the PIC, a CR3 pointing into the hypervisor's memory, VMXON, an
//! XCR0 without x87. First it checks that CPUID hides VMX and the PMU and names Tantalum, that
//! reading the local APIC base MSR, writing EFER and RDPMC each raise #GP(0) in it (caught by
//! an exception fixup, as an OS probes), that the ports of its own device pass through and
//! that a valid XSETBV is carried out. Once past the last game it says so and exits.

use core::arch::asm;
use core::arch::x86_64::__cpuid;
use core::sync::atomic::{AtomicU64, Ordering};

use tantalum_guest::{irq, println};

const GAMES: [&str; 5] = ["out-com1", "in-pic", "cr3-hypervisor", "vmxon", "xsetbv-x87-off"];

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

/// The MSRs outside the allow-list and the performance counters: each a #GP(0), the guest
/// carries on.
fn faulting_instructions() {
    irq::init();
    irq::set_fixup(13, skip_msr_instruction);
    // SAFETY: each raises #GP(0) in the partition, which the fixup skips; none has an effect.
    general_protection("RDMSR IA32_APIC_BASE", || unsafe {
        asm!("rdmsr", in("ecx") 0x1bu32, out("eax") _, out("edx") _, options(nostack))
    });
    // SAFETY: as above (carried out, it would break this partition alone).
    general_protection("WRMSR EFER", || unsafe {
        asm!("wrmsr", in("ecx") 0xc000_0080u32, in("eax") 0u32, in("edx") 0u32, options(nostack))
    });
    // SAFETY: as above; RDPMC only reads.
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
    println!("games: own port 0xcf8 passes through: wrote {written:#x}, read {read:#x}");
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
        match run {
            0 => asm!("out dx, al", in("dx") 0x3f8u16, in("al") b'!', options(nostack)),
            1 => asm!("in al, dx", in("dx") 0x21u16, out("al") _, options(nostack)),
            2 => asm!("mov cr3, {}", "mov rax, [rsp]", in(reg) 0x10_0000u64, out("rax") _, options(nostack)),
            4 => {
                asm!("mov {t}, cr4", "bts {t}, 18", "mov cr4, {t}", t = out(reg) _, options(nomem, nostack));
                // XCR0 without x87: #GP on hardware; the hypervisor's fault policy here.
                asm!("xsetbv", in("ecx") 0u32, in("eax") 2u32, in("edx") 0u32, options(nomem, nostack));
            }
            _ => {
                let region = 0u64;
                asm!("vmxon [{}]", in(reg) &region, options(nostack));
            }
        }
    }
    println!("BREACH: {game} returned");
}
