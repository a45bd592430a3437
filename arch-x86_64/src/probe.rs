//! The VMX bring-up partition: until the system DTB's partitions run on x86 (issue 15's next
//! steps), the hypervisor proves the whole exit path on a tiny built-in guest. Its memory is
//! mapped by an EPT that core's stage-2 builder fills; its VMCALLs, CPUID, MSR accesses and
//! its stray access are decoded into core's neutral exits and decided by
//! `tantalum_core::partition::handle_exit`, exactly as the aarch64 hypervisor does.

use alloc::string::String;
use alloc::vec;

use tantalum_core::addr::{GuestPhys, HostPhys, HostRange};
use tantalum_core::config::{
    FaultPolicy, HypervisorConfig, MemoryRegion, PartitionConfig, PartitionId, SystemConfig,
};
use tantalum_core::exit::VcpuSet;
use tantalum_core::hypercall::Status;
use tantalum_core::partition::power::Power;
use tantalum_core::partition::{self, handle_exit, Fault, Outcome, PartitionState, Report, Services};
use tantalum_core::stage2::{MapAttrs, Mappings, Stage2};
use tantalum_core::vgic::{self, Frame};
use tantalum_x86_64::ept::{self, EptFormat};
use tantalum_x86_64::io_bitmap;
use tantalum_x86_64::vmcs;
use tantalum_x86_64::vmexit::{self, Decoded, ExitInfo, Gprs};

use crate::console::info;
use crate::vmx::{self, vmread, vmwrite, HeapTables, VmxError};

// The guest: 32-bit protected mode, paging off, loaded at guest-physical 0x1000.
core::arch::global_asm!(
    r#"
    .section .rodata.probe, "a"
    .code32
    .global tantalum_probe_start, tantalum_probe_end
tantalum_probe_start:
    # HYP_CONSOLE_WRITE(message, length)
    movl $0xC6000003, %eax
    movl $(0x1000 + (probe_hello - tantalum_probe_start)), %edi
    movl $(probe_cpuid - probe_hello), %esi
    vmcall
    # CPUID 0x40000000: the hypervisor's signature, printed back.
    movl $0x40000000, %eax
    cpuid
    movl %ebx, (0x1000 + (probe_signature - tantalum_probe_start))
    movl %ecx, (0x1000 + (probe_signature - tantalum_probe_start) + 4)
    movl $0xC6000003, %eax
    movl $(0x1000 + (probe_cpuid - tantalum_probe_start)), %edi
    movl $(tantalum_probe_end - probe_cpuid), %esi
    vmcall
    # HYP_PARTITION_INFO, then a hidden MSR (reads as zero).
    movl $0xC6000001, %eax
    vmcall
    movl $0x17, %ecx
    rdmsr
    # A store outside its memory: the fault policy (stop) ends the partition.
    movl $0x5a5a5a5a, (0x4000000)
    hlt
probe_hello:
    .ascii "hello from a VMX guest through EPT\n"
probe_cpuid:
    .ascii "cpuid 0x40000000: "
probe_signature:
    .ascii "????????\n"
tantalum_probe_end:
    .code64
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    static tantalum_probe_start: u8;
    static tantalum_probe_end: u8;
}

/// Where the probe partition's memory is, and its guest-physical entry.
const PROBE_MEMORY: u64 = 0x0800_0000;
const PROBE_SIZE: u64 = 0x20_0000;
const PROBE_ENTRY: u64 = 0x1000;

struct ProbeServices {
    line: heapless::Vec<u8, 256>,
}

impl Services for ProbeServices {
    fn read_memory(&mut self, pa: HostPhys, buf: &mut [u8]) {
        // SAFETY: core checked that the range is the partition's own memory (identity-mapped).
        unsafe { core::ptr::copy_nonoverlapping(pa.as_u64() as *const u8, buf.as_mut_ptr(), buf.len()) };
    }
    fn console_write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' || self.line.push(b).is_err() {
                info!("[probe] {}", core::str::from_utf8(&self.line).unwrap_or("?"));
                self.line.clear();
            }
        }
    }
    fn wait(&mut self, _timeout_ns: u64) {}
    fn gic_access(&mut self, _frame: Frame, _access: vgic::Access) -> u64 {
        0
    }
    fn notify(&mut self, _target: PartitionId, _intid: u32) {}
    fn send_ipi(&mut self, _targets: VcpuSet, _intid: u32) -> bool {
        false
    }
    fn cpu_on(&mut self, _vcpu: usize, _entry: GuestPhys, _context: u64) -> Status {
        Status::InvalidParameters
    }
    fn vcpu_power(&mut self, vcpu: usize) -> Option<Power> {
        (vcpu == 0).then_some(Power::On)
    }
    fn uart_access(&mut self, _offset: u64, _write: Option<u64>) -> u64 {
        0
    }
    fn partition_running(&mut self, id: PartitionId) -> bool {
        id == 0
    }
    fn pmu_access(&mut self, _id: u32, _write: Option<u64>) -> u64 {
        0
    }
}

fn system() -> SystemConfig {
    let partition = PartitionConfig {
        id: 0,
        name: String::from("probe"),
        path: String::from("/hypervisor/probe"),
        cpus: vec![0],
        memory: vec![MemoryRegion { host: HostPhys(PROBE_MEMORY), guest: GuestPhys(0), size: PROBE_SIZE }],
        entry: GuestPhys(PROBE_ENTRY),
        on_fault: FaultPolicy::Stop,
        ..Default::default()
    };
    SystemConfig {
        board: Default::default(),
        hypervisor: HypervisorConfig {
            memory: HostRange::new(HostPhys(0x10_0000), 0x100_0000),
            console: None,
            benchmark_pmu: false,
        },
        partitions: vec![partition],
        channels: vec![],
        virtio: vec![],
        disks: vec![],
    }
}

/// CPUID as a partition sees it: the host's, without VMX and with the hypervisor bit, and
/// Tantalum's leaves at 0x40000000.
fn cpuid(leaf: u32, subleaf: u32) -> (u32, u32, u32, u32) {
    match leaf {
        0x4000_0000 => (0x4000_0001, u32::from_le_bytes(*b"Tant"), u32::from_le_bytes(*b"alum"), 0),
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

/// Builds the probe partition's EPT and VMCS on this CPU and runs it until it stops.
pub fn run(revision: u32) -> Result<(), VmxError> {
    let config = system();
    let partition = &config.partitions[0];
    let mut tables = HeapTables;
    let ept = Stage2::new(&mut tables, ept::GEOMETRY, Mappings::Blocks).map_err(|_| VmxError::OutOfMemory)?;
    for r in &partition.memory {
        ept.map::<EptFormat>(&mut tables, r.guest, r.host, r.size, MapAttrs::RAM)
            .map_err(|_| VmxError::OutOfMemory)?;
    }
    let start = (&raw const tantalum_probe_start) as usize;
    let len = (&raw const tantalum_probe_end) as usize - start;
    // SAFETY: the probe's memory is RAM no one else uses (below the 256 MiB the board has,
    // above the hypervisor's heap), identity-mapped; the code fits in its first page.
    unsafe {
        core::ptr::write_bytes(PROBE_MEMORY as *mut u8, 0, PROBE_SIZE as usize);
        core::ptr::copy_nonoverlapping(start as *const u8, (PROBE_MEMORY + PROBE_ENTRY) as *mut u8, len);
    }
    vmx::new_vmcs(revision)?;
    // Every port exits (the probe owns none).
    let io_bitmaps = vmx::alloc_pages(io_bitmap::SIZE / 4096).ok_or(VmxError::OutOfMemory)?;
    // SAFETY: fresh heap pages, identity-mapped, used by nothing else.
    io_bitmap::build(unsafe { &mut *(io_bitmaps.as_u64() as *mut [u8; io_bitmap::SIZE]) }, []);
    vmx::setup_controls_and_host(0, 1, ept::eptp(ept.root), io_bitmaps)?;
    vmx::setup_guest_protected(PROBE_ENTRY)?;
    info!("partition 'probe': EPT at {:#x} (VPID 1), entering at {PROBE_ENTRY:#x}", ept.root.as_u64());

    let mut regs = Gprs::default();
    let mut services = ProbeServices { line: heapless::Vec::new() };
    let state = PartitionState::default();
    let mut launched = false;
    loop {
        vmx::run(&mut regs, launched)?;
        launched = true;
        let exit = ExitInfo {
            reason: vmread(vmcs::EXIT_REASON) as u32,
            qualification: vmread(vmcs::EXIT_QUALIFICATION),
            guest_physical: vmread(vmcs::GUEST_PHYSICAL_ADDRESS),
        };
        let rip = vmread(vmcs::GUEST_RIP);
        let next = rip + vmread(vmcs::EXIT_INSTRUCTION_LENGTH);
        let exit = match vmexit::decode(&exit, &regs) {
            Decoded::Cpuid { leaf, subleaf } => {
                let (a, b, c, d) = cpuid(leaf, subleaf);
                (regs.rax, regs.rbx, regs.rcx, regs.rdx) = (a.into(), b.into(), c.into(), d.into());
                vmwrite(vmcs::GUEST_RIP, next)?;
                continue;
            }
            // The probe neither sets XCR0 nor has a timer: XSETBV is a fault, IA32_TSC_DEADLINE
            // an MSR like any other here.
            Decoded::Xsetbv { .. } => {
                tantalum_core::exit::Exit::Unhandled { syndrome: u64::from(vmexit::reason::XSETBV) }
            }
            Decoded::TscDeadline { write } => tantalum_core::exit::Exit::Register {
                class: vmexit::msr_class(tantalum_x86_64::timer::TSC_DEADLINE_MSR),
                name: vmexit::msr_name(tantalum_x86_64::timer::TSC_DEADLINE_MSR),
                register: 0,
                write,
            },
            // The probe has no IDT to take a #GP with: the fault policy, the reason reported.
            Decoded::GeneralProtection => tantalum_core::exit::Exit::Unhandled {
                syndrome: u64::from(exit.reason) | (exit.qualification << 32),
            },
            Decoded::Exit(exit) => exit,
        };
        let outcome = match handle_exit(&config, 0, &state, exit, &mut services) {
            // No abort to inject on x86 yet: the fault policy.
            Outcome::ExternalAbort { addr, access } => {
                partition::fault(partition, Fault::Memory { addr, access })
            }
            outcome => outcome,
        };
        match outcome {
            Outcome::Return { values, count } => {
                regs.set_results(&values[..count]);
                vmwrite(vmcs::GUEST_RIP, next)?;
            }
            Outcome::Emulated { load } => {
                if let Some((_, value)) = load {
                    // RDMSR: edx:eax.
                    (regs.rax, regs.rdx) = (value & 0xffff_ffff, value >> 32);
                }
                vmwrite(vmcs::GUEST_RIP, next)?;
            }
            Outcome::VcpuOff | Outcome::ExternalAbort { .. } => return Ok(()),
            Outcome::Stop(_) | Outcome::Restart(_) | Outcome::HaltSystem(_) => {
                info!("{}", Report { partition: &partition.name, outcome: &outcome, pc: rip });
                return Ok(());
            }
        }
    }
}
