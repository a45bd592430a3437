//! `role=games` (x86_64): the attacker's CPU games, one per run (its restart count picks it),
//! each of which the hypervisor must end by the partition's `on-fault` policy: reading the
//! local APIC base MSR, writing EFER, the hypervisor's console port, the PIC, a CR3 pointing
//! into the hypervisor's memory, VMXON, an XCR0 without x87. First it checks that CPUID hides VMX and names
//! Tantalum, that the ports of its own device pass through and that a valid XSETBV is carried out. Once past the last game it says so and exits.

use core::arch::asm;
use core::arch::x86_64::__cpuid;

use tantalum_guest::println;

const GAMES: [&str; 7] =
    ["rdmsr-apic-base", "wrmsr-efer", "out-com1", "in-pic", "cr3-hypervisor", "vmxon", "xsetbv-x87-off"];

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
        println!("games: CPUID shows VMX: {vmx}; names Tantalum: {tantalum}");
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
            0 => asm!("rdmsr", in("ecx") 0x1bu32, out("eax") _, out("edx") _, options(nostack)),
            1 => asm!("wrmsr", in("ecx") 0xc000_0080u32, in("eax") 0u32, in("edx") 0u32, options(nostack)),
            2 => asm!("out dx, al", in("dx") 0x3f8u16, in("al") b'!', options(nostack)),
            3 => asm!("in al, dx", in("dx") 0x21u16, out("al") _, options(nostack)),
            4 => asm!("mov cr3, {}", "mov rax, [rsp]", in(reg) 0x10_0000u64, out("rax") _, options(nostack)),
            6 => {
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
