//! Decoding VMX exits (Intel SDM vol. 3C, appendix C) into the arch-neutral [`Exit`], or into
//! the few things the arch answers itself (CPUID).

use tantalum_core::addr::GuestPhys;
use tantalum_core::exit::{Access, Exit, RegisterClass, RegisterName};

/// The basic exit reason of an exit-reason field (its bits 15:0; bit 31 marks a failed entry):
/// one of [`reason`].
pub const fn basic_reason(reason: u32) -> u32 {
    reason & 0xffff
}

/// EPT-violation exit qualification: the access was a data write (bit 1), an instruction
/// fetch (bit 2); neither is a data read.
pub mod ept_violation {
    pub const WRITE: u64 = 1 << 1;
    pub const EXECUTE: u64 = 1 << 2;
}

/// Basic exit reasons (bits 15:0 of the exit-reason field).
pub mod reason {
    pub const EXCEPTION_OR_NMI: u32 = 0;
    pub const EXTERNAL_INTERRUPT: u32 = 1;
    pub const TRIPLE_FAULT: u32 = 2;
    pub const INIT: u32 = 3;
    pub const INTERRUPT_WINDOW: u32 = 7;
    pub const SIPI: u32 = 4;
    pub const CPUID: u32 = 10;
    pub const HLT: u32 = 12;
    pub const RDPMC: u32 = 15;
    pub const VMCALL: u32 = 18;
    pub const CR_ACCESS: u32 = 28;
    pub const IO_INSTRUCTION: u32 = 30;
    pub const RDMSR: u32 = 31;
    pub const WRMSR: u32 = 32;
    pub const INVALID_GUEST_STATE: u32 = 33;
    pub const EPT_VIOLATION: u32 = 48;
    pub const EPT_MISCONFIGURATION: u32 = 49;
    pub const PREEMPTION_TIMER: u32 = 52;
    pub const MWAIT: u32 = 36;
    pub const MONITOR: u32 = 39;
    pub const XSETBV: u32 = 55;
}

/// The guest's general registers, saved by the world switch (rsp and rip live in the VMCS).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gprs {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
}

impl Gprs {
    /// Puts hypercall results in rax, rdi, rsi, rdx, r10 (docs/hypercalls.md).
    pub fn set_results(&mut self, values: &[u64]) {
        let slots = [&mut self.rax, &mut self.rdi, &mut self.rsi, &mut self.rdx, &mut self.r10];
        for (slot, &v) in slots.into_iter().zip(values) {
            *slot = v;
        }
    }
}

/// What the exit-information fields of the VMCS said.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExitInfo {
    pub reason: u32,
    pub qualification: u64,
    pub guest_physical: u64,
}

/// An exit as the VMX layer acts on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Core decides.
    Exit(Exit),
    /// CPUID `leaf`.`subleaf`: the arch answers with the filtered host values.
    Cpuid { leaf: u32, subleaf: u32 },
    /// RDMSR / WRMSR of IA32_TSC_DEADLINE: the vCPU's timer ([`crate::timer`]), the arch's.
    TscDeadline { write: Option<u64> },
    /// XSETBV: extended control register `xcr` := `value`; the arch carries out a valid
    /// XCR0 ([`xcr0_valid`]) on the CPU, which is the partition's alone.
    Xsetbv { xcr: u32, value: u64 },
    /// The arch injects #GP(0) and the guest's RIP stays at the instruction, as a CPU faults
    /// it: RDMSR/WRMSR of an MSR outside the allow-list ([`msr_class`]) and RDPMC (CPUID leaf
    /// 0xA says there are no performance counters). An OS that probes MSRs with an exception
    /// fixup (Linux's `rdmsr_safe`) carries on; one without a handler triple-faults, which is
    /// the fault policy.
    GeneralProtection,
}

fn msr_format(id: u32, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    write!(f, "MSR {id:#x}")
}

/// The name core prints for MSR `msr`.
pub const fn msr_name(msr: u32) -> RegisterName {
    RegisterName::new(msr, msr_format)
}

/// MSRs a partition reads as zero and writes to no effect: machine-check banks and status,
/// the platform ID, microcode signature and the performance/energy status a guest OS probes
/// at boot. Everything else not in the VMCS is forbidden: a #GP(0) in the guest
/// ([`Decoded::GeneralProtection`]), as a CPU that lacks the MSR raises.
pub const fn msr_class(msr: u32) -> RegisterClass {
    match msr {
        0x17 | 0x8b | 0x179 | 0x17a | 0x198 | 0x199 | 0x1a0 | 0x400..=0x47f => RegisterClass::Hidden,
        _ => RegisterClass::Forbidden,
    }
}

/// An IN or OUT (exit qualification: size - 1 in bits 2:0, IN in bit 3, string in bit 4, the
/// port in bits 31:16). String I/O (INS/OUTS, with or without REP) is not emulated: it is
/// `Unhandled`, the partition's fault policy (no driver a partition needs uses it on the
/// virtual UART; the ports of its own devices pass through without an exit).
fn io_instruction(q: u64, regs: &Gprs) -> Exit {
    let size = (q & 0b111) as u8 + 1;
    let port = (q >> 16) as u16;
    if q & (1 << 4) != 0 || !matches!(size, 1 | 2 | 4) {
        return Exit::Unhandled { syndrome: u64::from(reason::IO_INSTRUCTION) | (q << 32) };
    }
    let mask = (1u64 << (8 * u32::from(size))) - 1;
    let write = (q & (1 << 3) == 0).then_some((regs.rax & mask) as u32);
    Exit::PortIo { port, size, write }
}

/// Puts what an IN of `size` bytes read in the accumulator: al and ax keep rax's other bits,
/// eax zero-extends (as a 32-bit register write does in 64-bit mode).
pub fn load_in(rax: u64, size: u8, value: u64) -> u64 {
    match size {
        1 => (rax & !0xff) | (value & 0xff),
        2 => (rax & !0xffff) | (value & 0xffff),
        _ => value & 0xffff_ffff,
    }
}

/// Whether XCR0 = `value` is one the CPU accepts, given the state components it supports
/// (CPUID.(EAX=0xD,ECX=0):EDX:EAX): x87 always on; only supported components; AVX needs SSE;
/// the AVX-512 components all or none, and only with AVX; MPX's two together. Anything else
/// would be a #GP on hardware.
pub fn xcr0_valid(value: u64, supported: u64) -> bool {
    const X87: u64 = 1;
    const SSE: u64 = 1 << 1;
    const AVX: u64 = 1 << 2;
    const MPX: u64 = 0b11 << 3;
    const AVX512: u64 = 0b111 << 5;
    let all_or_none = |bits: u64| value & bits == 0 || value & bits == bits;
    value & X87 != 0
        && value & !supported == 0
        && (value & AVX == 0 || value & SSE != 0)
        && all_or_none(MPX)
        && all_or_none(AVX512)
        && (value & AVX512 == 0 || value & AVX != 0)
}

/// Decodes an exit with the guest's registers at the time.
#[inline(always)]
pub fn decode(info: &ExitInfo, regs: &Gprs) -> Decoded {
    let exit = match basic_reason(info.reason) {
        reason::VMCALL => {
            let args = [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9];
            if crate::psci::is_psci(regs.rax) {
                crate::psci::decode(regs.rax, &args)
            } else {
                Exit::Hypercall { function: regs.rax, args }
            }
        }
        reason::CPUID => return Decoded::Cpuid { leaf: regs.rax as u32, subleaf: regs.rcx as u32 },
        reason::HLT => Exit::WaitForInterrupt,
        // No partition reads the host's performance counters (a timing channel between
        // partitions that share nothing else): RDPMC faults as on a CPU without them.
        reason::RDPMC => return Decoded::GeneralProtection,
        reason::XSETBV => {
            return Decoded::Xsetbv {
                xcr: regs.rcx as u32,
                value: (regs.rdx << 32) | (regs.rax & 0xffff_ffff),
            }
        }
        // The exception bitmap is empty, so only an NMI exits this way: the machine's, which
        // the hypervisor takes; the guest resumes where it was.
        reason::EXCEPTION_OR_NMI => Exit::Interrupt,
        // The interrupt window opened: the arch injects what is pending at the next entry.
        reason::EXTERNAL_INTERRUPT | reason::PREEMPTION_TIMER | reason::INTERRUPT_WINDOW => Exit::Interrupt,
        reason::EPT_VIOLATION => {
            let q = info.qualification;
            let access = if q & ept_violation::EXECUTE != 0 {
                Access::Execute
            } else if q & ept_violation::WRITE != 0 {
                Access::Write
            } else {
                Access::Read
            };
            Exit::Stage2Fault { addr: GuestPhys(info.guest_physical), access }
        }
        reason::IO_INSTRUCTION => io_instruction(info.qualification, regs),
        reason::RDMSR | reason::WRMSR => {
            let msr = regs.rcx as u32;
            let write = (basic_reason(info.reason) == reason::WRMSR)
                .then_some((regs.rdx << 32) | (regs.rax & 0xffff_ffff));
            if msr == crate::timer::TSC_DEADLINE_MSR {
                return Decoded::TscDeadline { write };
            }
            let class = msr_class(msr);
            if class == RegisterClass::Forbidden {
                return Decoded::GeneralProtection;
            }
            // A read loads rax (and rdx, which the VMX layer clears).
            Exit::Register { class, name: msr_name(msr), register: 0, write }
        }
        // Triple faults; INIT and SIPI (a partition cannot send them: the local APIC is not
        // mapped, its vCPUs start by PSCI CPU_ON); task switches; GETSEC, INVD, the VMX
        // instructions, MONITOR and MWAIT (CPUID hides both; they exit so a guest never parks
        // the CPU); MOV to CR4 setting VMXE; MOV to or from CR8 (the host local APIC's task
        // priority: a partition has no local APIC); an invalid guest state or MSR load at entry; EPT
        // misconfigurations (a hypervisor bug); and every other reason: the partition's fault
        // policy, with the reason in the report (docs/x86.md, "Exits").
        _ => Exit::Unhandled { syndrome: u64::from(info.reason) | (info.qualification << 32) },
    };
    Decoded::Exit(exit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_basic_reason_ignores_the_fields_upper_bits() {
        // A failed entry: bit 31 set, basic reason 33.
        assert_eq!(basic_reason(0x8000_0021), reason::INVALID_GUEST_STATE);
        let regs = Gprs { rax: 1, ..Default::default() };
        let info = ExitInfo { reason: (1 << 27) | reason::CPUID, ..Default::default() };
        assert_eq!(decode(&info, &regs), Decoded::Cpuid { leaf: 1, subleaf: 0 });
    }

    #[test]
    fn vmcall_uses_the_documented_registers() {
        let regs = Gprs {
            rax: 0xC600_0003,
            rdi: 1,
            rsi: 2,
            rdx: 3,
            r10: 4,
            r8: 5,
            r9: 6,
            rcx: 99,
            ..Default::default()
        };
        let info = ExitInfo { reason: reason::VMCALL, ..Default::default() };
        assert_eq!(
            decode(&info, &regs),
            Decoded::Exit(Exit::Hypercall { function: 0xC600_0003, args: [1, 2, 3, 4, 5, 6] })
        );
        let mut r = regs;
        r.set_results(&[7, 8, 9]);
        assert_eq!((r.rax, r.rdi, r.rsi, r.rdx), (7, 8, 9, 3));
    }

    #[test]
    fn ept_violations_are_stage2_faults() {
        let info =
            ExitInfo { reason: reason::EPT_VIOLATION, qualification: 0b010, guest_physical: 0x4300_0008 };
        assert_eq!(
            decode(&info, &Gprs::default()),
            Decoded::Exit(Exit::Stage2Fault { addr: GuestPhys(0x4300_0008), access: Access::Write })
        );
        let fetch = ExitInfo { qualification: 0b100, ..info };
        assert!(matches!(
            decode(&fetch, &Gprs::default()),
            Decoded::Exit(Exit::Stage2Fault { access: Access::Execute, .. })
        ));
    }

    #[test]
    fn msrs_are_classified() {
        let read = |msr| {
            decode(
                &ExitInfo { reason: reason::RDMSR, ..Default::default() },
                &Gprs { rcx: msr, ..Default::default() },
            )
        };
        // Outside the allow-list: #GP(0) in the guest, reads and writes alike.
        assert_eq!(read(0x1b), Decoded::GeneralProtection);
        assert_eq!(read(0xc1), Decoded::GeneralProtection, "IA32_PMC0");
        assert_eq!(read(0xffff_ffff), Decoded::GeneralProtection);
        assert!(matches!(read(0x17), Decoded::Exit(Exit::Register { class: RegisterClass::Hidden, .. })));
        let write = Gprs { rcx: 0x1b, rax: 0xffff_ffff_fee0_0900, rdx: 1, ..Default::default() };
        let info = ExitInfo { reason: reason::WRMSR, ..Default::default() };
        assert_eq!(decode(&info, &write), Decoded::GeneralProtection);
        assert_eq!(
            decode(&info, &Gprs { rcx: 0xc000_0080, ..Default::default() }),
            Decoded::GeneralProtection
        );
        let hidden = Gprs { rcx: 0x8b, rax: 0xffff_ffff_0000_0001, rdx: 1, ..Default::default() };
        assert!(matches!(
            decode(&info, &hidden),
            Decoded::Exit(Exit::Register { class: RegisterClass::Hidden, write: Some(0x1_0000_0001), .. })
        ));
        assert_eq!(format!("{}", msr_name(0x1b)), "MSR 0x1b");
        let deadline = Gprs { rcx: 0x6e0, rax: 0x10, rdx: 0x2, ..Default::default() };
        assert_eq!(decode(&info, &deadline), Decoded::TscDeadline { write: Some(0x2_0000_0010) });
        assert_eq!(read(0x6e0), Decoded::TscDeadline { write: None });
    }

    #[test]
    fn the_x2apic_msrs_are_general_protection() {
        // The whole x2APIC range, the ICR (0x830: INIT, NMI, fixed IPIs), EOI, TPR and
        // SELF_IPI among it: a partition has no local APIC; it never reaches the host's.
        for msr in 0x800..=0x8ff {
            for reason in [reason::RDMSR, reason::WRMSR] {
                let regs = Gprs { rcx: msr, rax: 0x000c_4500, ..Default::default() };
                let info = ExitInfo { reason, ..Default::default() };
                assert_eq!(decode(&info, &regs), Decoded::GeneralProtection, "{msr:#x}");
            }
        }
    }

    #[test]
    fn cr8_accesses_are_the_fault_policy() {
        // MOV CR8, rax (qualification: CR 8, MOV to CR, register 0) and MOV rax, CR8 (type 1).
        for q in [0x8, 0x18] {
            let info = ExitInfo { reason: reason::CR_ACCESS, qualification: q, ..Default::default() };
            assert_eq!(
                decode(&info, &Gprs::default()),
                Decoded::Exit(Exit::Unhandled { syndrome: u64::from(reason::CR_ACCESS) | (q << 32) })
            );
        }
    }

    #[test]
    fn port_io_is_decoded_with_size_direction_and_value() {
        let io = |q: u64| {
            decode(
                &ExitInfo { reason: reason::IO_INSTRUCTION, qualification: q, ..Default::default() },
                &Gprs { rax: 0x1234_5678_9abc_def0, ..Default::default() },
            )
        };
        // out dx, al to 0x3f8; in eax, dx from 0x3fd; out dx, ax to 0xcf8.
        assert_eq!(io(0x3f8 << 16), Decoded::Exit(Exit::PortIo { port: 0x3f8, size: 1, write: Some(0xf0) }));
        assert_eq!(
            io((0x3fd << 16) | 0b1011),
            Decoded::Exit(Exit::PortIo { port: 0x3fd, size: 4, write: None })
        );
        assert_eq!(
            io((0xcf8 << 16) | 1),
            Decoded::Exit(Exit::PortIo { port: 0xcf8, size: 2, write: Some(0xdef0) })
        );
        // String I/O and a reserved size are the fault policy's.
        assert!(matches!(io((0x3f8 << 16) | 0b1_0000), Decoded::Exit(Exit::Unhandled { .. })));
        assert!(matches!(io(0b010), Decoded::Exit(Exit::Unhandled { .. })));
        assert_eq!(load_in(0xffff_ffff_ffff_ffff, 1, 0x41), 0xffff_ffff_ffff_ff41);
        assert_eq!(load_in(0xffff_ffff_ffff_ffff, 2, 0x1_0041), 0xffff_ffff_ffff_0041);
        assert_eq!(load_in(0xffff_ffff_ffff_ffff, 4, u64::MAX), 0xffff_ffff);
    }

    #[test]
    fn xsetbv_and_xcr0() {
        let regs = Gprs { rcx: 0, rax: 0x7, rdx: 0, ..Default::default() };
        let info = ExitInfo { reason: reason::XSETBV, ..Default::default() };
        assert_eq!(decode(&info, &regs), Decoded::Xsetbv { xcr: 0, value: 7 });
        let haswell = 0b111;
        assert!(xcr0_valid(0b1, haswell) && xcr0_valid(0b11, haswell) && xcr0_valid(0b111, haswell));
        assert!(!xcr0_valid(0b110, haswell), "x87 always on");
        assert!(!xcr0_valid(0b101, haswell), "AVX needs SSE");
        assert!(!xcr0_valid(0b1111, haswell), "MPX not supported");
        let skylake = 0xff;
        assert!(xcr0_valid(0xe7, skylake) && !xcr0_valid(0x67, skylake) && !xcr0_valid(0xe3, skylake));
        assert!(!xcr0_valid(0b1011, skylake), "MPX's two together");
        assert!(!xcr0_valid(u64::MAX, skylake));
    }

    #[test]
    fn the_rest() {
        let d = |reason| {
            decode(
                &ExitInfo { reason, ..Default::default() },
                &Gprs { rax: 0x4000_0000, ..Default::default() },
            )
        };
        assert_eq!(d(reason::HLT), Decoded::Exit(Exit::WaitForInterrupt));
        assert_eq!(d(reason::EXTERNAL_INTERRUPT), Decoded::Exit(Exit::Interrupt));
        assert_eq!(d(reason::INTERRUPT_WINDOW), Decoded::Exit(Exit::Interrupt));
        assert_eq!(d(reason::CPUID), Decoded::Cpuid { leaf: 0x4000_0000, subleaf: 0 });
        assert_eq!(d(reason::TRIPLE_FAULT), Decoded::Exit(Exit::Unhandled { syndrome: 2 }));
        assert_eq!(d(reason::EXCEPTION_OR_NMI), Decoded::Exit(Exit::Interrupt));
        assert_eq!(d(reason::PREEMPTION_TIMER), Decoded::Exit(Exit::Interrupt));
        // Every basic reason the hardware can report decodes to something (never a panic).
        for reason in 0..=80 {
            let _ = d(reason);
        }
        assert_eq!(d(reason::MWAIT), Decoded::Exit(Exit::Unhandled { syndrome: 36 }));
        assert_eq!(d(reason::RDPMC), Decoded::GeneralProtection);
    }
}
