//! A CPU running its partition's vCPU: VMCS set-up by the Linux 64-bit boot protocol, then the
//! exit loop, whose decisions are core's (`handle_exit`) and whose outcomes (stop, restart,
//! halt the system) this module carries out.

use tantalum_core::addr::{GuestPhys, HostPhys};
use tantalum_core::config::PartitionId;
use tantalum_core::console::LineSink;
use tantalum_core::exit::{Exit, VcpuSet};
use tantalum_core::hypercall::Status;
use tantalum_core::partition::power::Power;
use tantalum_core::partition::{self, handle_exit, Fault, Outcome, PartitionState, Report, Services};
use tantalum_core::vgic::{self, Frame};
use tantalum_x86_64::linux_boot::BootArea;
use tantalum_x86_64::pending::PendingVectors;
use tantalum_x86_64::vmcs;
use tantalum_x86_64::vmexit::{self, Decoded, ExitInfo, Gprs};

use crate::console::{self, info};
use crate::system::{self, System};
use crate::vmx::{self, vmread, vmwrite, VmxError};

/// What the exit loop ended with.
enum End {
    Stopped,
    Restart,
    HaltSystem,
}

struct VcpuServices<'a> {
    system: &'a System,
    id: usize,
}

struct Sink;

impl LineSink for Sink {
    fn write_line(&mut self, prefix: &str, text: &[u8]) {
        console::partition_line(prefix, text);
    }
}

impl Services for VcpuServices<'_> {
    fn read_memory(&mut self, pa: HostPhys, buf: &mut [u8]) {
        // SAFETY: core checked that the range is the partition's own memory (identity-mapped).
        unsafe { core::ptr::copy_nonoverlapping(pa.as_u64() as *const u8, buf.as_mut_ptr(), buf.len()) };
    }
    fn console_write(&mut self, bytes: &[u8]) {
        let name = &self.system.config.partitions[self.id].name;
        self.system.partitions[self.id].console.lock().push(bytes, name, &mut Sink);
    }
    fn wait(&mut self, timeout_ns: u64) {
        let system = self.system;
        let doorbells = &system.partitions[self.id].doorbells;
        crate::tsc::spin_ns_unless(timeout_ns, || {
            crate::input::poll(system);
            doorbells.any()
        });
    }
    fn gic_access(&mut self, _frame: Frame, _access: vgic::Access) -> u64 {
        0
    }
    fn notify(&mut self, target: PartitionId, intid: u32) {
        let t = usize::from(target);
        let Some(peer) = self.system.partitions.get(t) else { return };
        // The doorbell's INTID is the vector (docs/x86.md, "Doorbells").
        if peer.doorbells.set(intid) {
            let cpu = self.system.config.partitions[t].cpus.first().copied();
            if let Some(c) = cpu.and_then(|c| self.system.config.board.cpus.get(c)) {
                crate::smp::kick(c.hwid as u32);
            }
        }
    }
    fn send_ipi(&mut self, _targets: VcpuSet, _intid: u32) {}
    fn cpu_on(&mut self, _vcpu: usize, _entry: GuestPhys, _context: u64) -> Status {
        Status::NotSupported
    }
    fn vcpu_power(&mut self, vcpu: usize) -> Option<Power> {
        let cpus = self.system.config.partitions[self.id].cpus.len();
        (vcpu < cpus).then_some(if vcpu == 0 { Power::On } else { Power::Off })
    }
    fn uart_access(&mut self, offset: u64, write: Option<u64>) -> u64 {
        let (read, sent) = self.system.partitions[self.id].vuart.lock().access(offset, write);
        if let Some(byte) = sent {
            self.console_write(&[byte]);
        }
        u64::from(read)
    }
    fn partition_running(&mut self, id: PartitionId) -> bool {
        !self.system.partitions[usize::from(id)].stopped.load(core::sync::atomic::Ordering::Acquire)
    }
    fn pmu_access(&mut self, _id: u32, _write: Option<u64>) -> u64 {
        0
    }
}

/// CPUID as a partition sees it: the host's, without VMX and with the hypervisor bit;
/// Tantalum's leaves at 0x40000000 (signature) and 0x40000010 (the TSC's frequency in kHz, the
/// de-facto timing leaf).
pub fn cpuid(leaf: u32, subleaf: u32) -> (u32, u32, u32, u32) {
    match leaf {
        0x4000_0000 => (0x4000_0010, u32::from_le_bytes(*b"Tant"), u32::from_le_bytes(*b"alum"), 0),
        0x4000_0010 => ((crate::tsc::frequency() / 1000) as u32, 0, 0, 0),
        0x4000_0001..=0x4fff_ffff => (0, 0, 0, 0),
        _ => {
            let (a, b, c, d) = crate::cpu::cpuid(leaf, subleaf);
            if leaf == 1 {
                (a, b, (c & !(1 << 5)) | (1 << 31), d)
            } else {
                (a, b, c, d)
            }
        }
    }
}

/// Resumes the guest at `next`, after the instruction that exited: an STI or MOV SS shadow
/// that covered it is over.
fn skip(next: u64) -> Result<(), VmxError> {
    vmwrite(vmcs::GUEST_RIP, next)?;
    let state = vmread(vmcs::GUEST_INTERRUPTIBILITY);
    if state & vmcs::BLOCKING_BY_STI_OR_MOV_SS != 0 {
        vmwrite(vmcs::GUEST_INTERRUPTIBILITY, state & !vmcs::BLOCKING_BY_STI_OR_MOV_SS)?;
    }
    Ok(())
}

/// Before an entry: injects the lowest pending doorbell if the guest takes interrupts now
/// (RFLAGS.IF set, no STI/MOV SS shadow); otherwise asks for an exit as soon as it does
/// (interrupt-window exiting), and for no such exit when nothing is pending.
fn inject(doorbells: &PendingVectors) -> Result<(), VmxError> {
    const IF: u64 = 1 << 9;
    let controls = vmread(vmcs::PROCESSOR_CONTROLS) as u32;
    let window = match doorbells.first() {
        None => false,
        Some(vector) => {
            let open = vmread(vmcs::GUEST_RFLAGS) & IF != 0
                && vmread(vmcs::GUEST_INTERRUPTIBILITY) & vmcs::BLOCKING_BY_STI_OR_MOV_SS == 0;
            if open {
                doorbells.take(vector);
                vmwrite(vmcs::ENTRY_INTERRUPTION_INFO, vmcs::external_interrupt(vector))?;
            }
            !open
        }
    };
    let wanted = if window {
        controls | vmcs::proc::INTERRUPT_WINDOW_EXITING
    } else {
        controls & !vmcs::proc::INTERRUPT_WINDOW_EXITING
    };
    if wanted != controls {
        vmwrite(vmcs::PROCESSOR_CONTROLS, wanted.into())?;
    }
    Ok(())
}

/// Runs partition `id`'s vCPU 0 on CPU `cpu` until the partition stops for good.
pub fn run(cpu: usize, revision: u32, id: usize) {
    let system = system::get();
    let name = &system.config.partitions[id].name;
    loop {
        let boot = match system.load(id) {
            Ok(boot) => boot,
            Err(e) => {
                info!("partition '{name}': not started: {e}");
                return;
            }
        };
        match enter(system, cpu, revision, id, &boot) {
            Ok(End::Restart) => {
                system.partitions[id].restarts.fetch_add(1, core::sync::atomic::Ordering::AcqRel);
                continue;
            }
            Ok(End::Stopped) => return,
            Ok(End::HaltSystem) => console::power_off(),
            Err(e) => {
                info!("partition '{name}': VMX error: {e}: stopped");
                return;
            }
        }
    }
}

fn enter(system: &System, cpu: usize, revision: u32, id: usize, boot: &BootArea) -> Result<End, VmxError> {
    let p = &system.config.partitions[id];
    vmx::new_vmcs(revision)?;
    let me = &system.partitions[id];
    vmx::setup_controls_and_host(cpu, id as u16 + 1, me.eptp, me.io_bitmaps)?;
    vmx::setup_guest_long(p.entry.0, boot)?;
    let mut regs = Gprs { rsi: boot.boot_params(), ..Default::default() };
    let mut services = VcpuServices { system, id };
    let state = PartitionState {
        restarts: system.partitions[id].restarts.load(core::sync::atomic::Ordering::Acquire),
    };
    let doorbells = &system.partitions[id].doorbells;
    let mut launched = false;
    loop {
        inject(doorbells)?;
        vmx::run(&mut regs, launched)?;
        launched = true;
        let exit = ExitInfo {
            reason: vmread(vmcs::EXIT_REASON) as u32,
            qualification: vmread(vmcs::EXIT_QUALIFICATION),
            guest_physical: vmread(vmcs::GUEST_PHYSICAL_ADDRESS),
        };
        if exit.reason & 0xffff == vmexit::reason::EXTERNAL_INTERRUPT {
            // Acknowledged on exit (a kick, or another device's): end it at the local APIC.
            crate::smp::eoi();
        }
        let rip = vmread(vmcs::GUEST_RIP);
        let next = rip + vmread(vmcs::EXIT_INSTRUCTION_LENGTH);
        let halted = exit.reason & 0xffff == vmexit::reason::HLT;
        let exit = match vmexit::decode(&exit, &regs) {
            Decoded::Cpuid { leaf, subleaf } => {
                let (a, b, c, d) = cpuid(leaf, subleaf);
                (regs.rax, regs.rbx, regs.rcx, regs.rdx) = (a.into(), b.into(), c.into(), d.into());
                skip(next)?;
                continue;
            }
            Decoded::Exit(exit) => exit,
        };
        if halted {
            // HLT: the vCPU sleeps until a doorbell is pending, as a CPU halts until an
            // interrupt (with interrupts masked, for good: the CPU is the partition's alone).
            // No timeout, so the doorbell scenario fails if delivery does.
            while !doorbells.any() {
                crate::input::poll(system);
                core::hint::spin_loop();
            }
        }
        if exit == Exit::Interrupt {
            crate::input::poll(system);
        }
        let outcome = match handle_exit(&system.config, p.id, &state, exit, &mut services) {
            // No abort to inject on x86 yet: the fault policy.
            Outcome::ExternalAbort { addr, access } => partition::fault(p, Fault::Memory { addr, access }),
            outcome => outcome,
        };
        match outcome {
            // An external interrupt or an opened interrupt window interrupted no instruction.
            Outcome::Return { .. } if exit == Exit::Interrupt => {}
            Outcome::Return { values, count } => {
                regs.set_results(&values[..count]);
                skip(next)?;
            }
            Outcome::Emulated { load } => {
                match (load, exit) {
                    (Some((_, value)), Exit::PortIo { size, .. }) => {
                        regs.rax = vmexit::load_in(regs.rax, size, value)
                    }
                    // RDMSR: edx:eax.
                    (Some((_, value)), _) => (regs.rax, regs.rdx) = (value & 0xffff_ffff, value >> 32),
                    (None, _) => {}
                }
                skip(next)?;
            }
            // Only vCPU 0 runs (no CPU_ON on x86 yet): its CPU_OFF ends the partition.
            Outcome::VcpuOff | Outcome::ExternalAbort { .. } => return Ok(End::Stopped),
            Outcome::Stop(_) | Outcome::Restart(_) | Outcome::HaltSystem(_) => {
                let mut line = system.partitions[id].console.lock();
                if !line.is_empty() {
                    line.flush(&p.name, &mut Sink);
                }
                drop(line);
                info!("{}", Report { partition: &p.name, outcome: &outcome, pc: rip });
                return Ok(match outcome {
                    Outcome::Restart(_) => End::Restart,
                    Outcome::HaltSystem(_) => End::HaltSystem,
                    _ => End::Stopped,
                });
            }
        }
    }
}
