//! Tantalum's x86_64 hypervisor binary: a Multiboot2 kernel (see `boot.rs`).
#![no_std]
#![no_main]

extern crate alloc;

mod boot;
mod console;
mod cpu;
mod heap;
mod input;
mod probe;
mod serial;
mod smp;
mod system;
mod tsc;
mod uart_irq;
mod vcpu;
mod vmx;

use alloc::vec::Vec;

use tantalum_core::addr::{align_up, HostPhys, HostRange};
use tantalum_core::bootimage::{runtime_reserve, BootInfo, BOOT_INFO_OFFSET, HEAP_SIZE, STACK_SIZE};
use tantalum_core::config::x86::LEGACY_PIC;
use tantalum_core::config::{self, BuildFacts, SystemConfig, MAX_CPUS};
use tantalum_x86_64::multiboot2::{self, BootInformation, MEMORY_AVAILABLE};
use tantalum_x86_64::HOST_MAP;

use crate::console::info;

/// Entered from `boot.rs` in long mode on the boot CPU, with the loader's magic and the
/// physical address of its boot information (identity-mapped).
extern "C" fn x86_main(magic: u32, mbi: u32) -> ! {
    let entry_tsc = tsc::now();
    console::init();
    info!("Tantalum x86_64: long mode on the boot CPU");
    if magic != multiboot2::BOOTLOADER_MAGIC {
        panic!("not started by a Multiboot2 loader (magic {magic:#x})");
    }
    let mbi = boot_information(mbi);
    let layout = Layout::read();
    info!(
        "boot image at {:#x}: payload {:#x}+{:#x}, system DTB {} bytes",
        layout.image_start, layout.payload, layout.info.payload_size, layout.info.dtb_size
    );
    let heap_start = layout.runtime_base + MAX_CPUS as u64 * STACK_SIZE;
    // SAFETY: the stacks and the heap follow the boot image; the build checks that they lie in
    // RAM no partition owns, and nothing else uses them.
    unsafe { heap::init(heap_start as usize, HEAP_SIZE as usize) };
    cpu::load_host_tables(0);
    // SAFETY: the 8259 PICs' mask registers; the hypervisor owns them (never passed through)
    // and takes no legacy interrupts: all masked.
    unsafe {
        serial::outb(0x21, 0xff);
        serial::outb(0xa1, 0xff);
    }
    let tsc = tsc::calibrate();
    info!("TSC at {} MHz (PIT-calibrated); hypervisor entry at TSC tick {entry_tsc}", tsc / 1_000_000);
    for e in mbi.memory_map() {
        info!("memory map: {:#012x}..{:#012x} type {}", e.base, e.end(), e.kind);
    }
    if layout.info.dtb_size == 0 {
        // No system DTB: the bring-up probe.
        match vmx::enable() {
            Ok(revision) => {
                info!("VMX on (CPU 0, VMCS revision {revision:#x})");
                if let Err(e) = probe::run(revision) {
                    info!("VMX error: {e}");
                }
            }
            Err(e) => info!("VMX unavailable: {e}"),
        }
        console::power_off()
    }
    let config = read_config(&layout);
    let ram: Vec<HostRange> = mbi
        .memory_map()
        .filter(|e| e.kind == MEMORY_AVAILABLE)
        .map(|e| HostRange::new(HostPhys(e.base), e.length))
        .collect();
    let refused = cross_check_ram(&config, &ram);
    start_system(config, &layout, &refused)
}

/// The system DTB from the payload, checked by core's validator with the facts of this boot.
fn read_config(layout: &Layout) -> SystemConfig {
    let info = &layout.info;
    // SAFETY: the loader loaded the whole file (payload included) where the BootInfo says;
    // nothing writes it.
    let payload: &'static [u8] =
        unsafe { core::slice::from_raw_parts(layout.payload as *const u8, info.payload_size as usize) };
    let dtb = info
        .dtb_offset
        .checked_add(info.dtb_size)
        .and_then(|end| payload.get(info.dtb_offset as usize..end as usize))
        .unwrap_or_else(|| halt_with("the system DTB lies outside the payload"));
    let total = info.payload_offset + info.payload_size;
    let facts = BuildFacts {
        boot_image: Some(HostRange::new(
            HostPhys(layout.image_start),
            total + runtime_reserve(MAX_CPUS as u64),
        )),
        payload_size: Some(info.payload_size),
        map: Some(HOST_MAP),
    };
    match config::parse(dtb).and_then(|c| config::validate(&c, &facts).map(|()| c)) {
        Ok(c) => {
            warn_platform_owners(&c);
            c
        }
        Err(errors) => {
            for e in &errors {
                info!("config error: {e}");
            }
            info!("the system DTB is invalid ({} error(s)): halting", errors.len());
            console::power_off()
        }
    }
}

/// The boot log repeats the build's loudest warning: a partition that owns a device reaching
/// the whole machine (rule 16's `owns-platform`) can take it over.
fn warn_platform_owners(config: &SystemConfig) {
    let Some(x86) = config.board.x86.as_ref() else { return };
    for p in config.partitions.iter().filter(|p| p.owns_platform) {
        let devices =
            p.devices.iter().filter(|d| x86.is_platform_wide(&d.path)).map(|d| d.path.clone()).collect();
        info!("warning: {}: {}", p.path, config::WarningKind::OwnsPlatform { devices });
    }
}

fn halt_with(why: &str) -> ! {
    info!("{why}: halting");
    console::power_off()
}

/// Partitions whose memory the Multiboot2 memory map does not report as available RAM: they
/// are refused; the hypervisor's or a channel's memory missing halts the system.
fn cross_check_ram(config: &SystemConfig, ram: &[HostRange]) -> Vec<u16> {
    let mut refused = Vec::new();
    for missing in config::ram_not_reported(config, ram) {
        let range = missing.range;
        match missing.owner {
            config::Owner::Hypervisor => {
                halt_with("the hypervisor's memory is not RAM on this machine (Multiboot2 memory map)")
            }
            config::Owner::Channel(c) => {
                info!(
                    "channel '{}': memory {range} is not RAM (Multiboot2 memory map)",
                    config.channels[c].name
                );
                console::power_off()
            }
            config::Owner::Partition(id) => {
                let name = &config.partitions[id as usize].name;
                info!("partition '{name}': memory {range} is not RAM on this machine (Multiboot2 memory map): refusing it");
                if !refused.contains(&id) {
                    refused.push(id);
                }
            }
        }
    }
    refused
}

/// Builds the partitions' EPTs, starts the CPUs the partitions use and runs the boot CPU's.
fn start_system(config: SystemConfig, layout: &Layout, refused: &[u16]) -> ! {
    let revision = vmx::enable().unwrap_or_else(|e| {
        info!("VMX unavailable: {e}");
        console::power_off()
    });
    let me = smp::apic_id();
    let Some(bsp) = config.board.cpus.iter().position(|c| c.hwid == u64::from(me)) else {
        halt_with("the boot CPU is not among the board's CPUs")
    };
    // The config rule (X86::PicOffBootCpu) places a partition with an 8259 PIC on the board's
    // first CPU, taken to be the one the firmware boots on; refuse to run when it is not.
    if bsp != 0
        && config
            .partitions
            .iter()
            .any(|p| p.devices.iter().any(|d| d.compatible.iter().any(|c| c == LEGACY_PIC)))
    {
        halt_with("the firmware booted a CPU other than the board's first, where a partition's 8259 PIC interrupts go")
    }
    info!(
        "VMX on (CPU {bsp}, APIC ID {me}, VMCS revision {revision:#x}); {} partition(s)",
        config.partitions.len()
    );
    let trampoline_free =
        !config.partitions.iter().any(|p| p.memory.iter().any(|r| r.host_range().overlaps(&smp::TRAMPOLINE)));
    // SAFETY of what follows rests on `system::init` having checked every region against the map.
    let payload: &'static [u8] =
        // SAFETY: as in `read_config`.
        unsafe { core::slice::from_raw_parts(layout.payload as *const u8, layout.info.payload_size as usize) };
    // (CPU, partition, vCPU) of every CPU a partition that may start uses.
    let used: Vec<(usize, usize, usize)> = config
        .partitions
        .iter()
        .filter(|p| !refused.contains(&p.id))
        .flat_map(|p| p.cpus.iter().enumerate().map(move |(v, &c)| (c, usize::from(p.id), v)))
        .collect();
    if let Err(e) = system::init(config, payload, HOST_MAP.ram) {
        halt_with(&alloc::format!("setting up the partitions failed: {e}"))
    }
    let system = system::get();
    for &id in refused {
        system.stop(usize::from(id));
    }
    input::start(system);
    smp::enable_local_apic();
    if trampoline_free {
        smp::install();
    }
    for &(cpu, id, vcpu) in used.iter().filter(|&&(cpu, ..)| cpu != bsp) {
        let apic = system.config.board.cpus[cpu].hwid as u32;
        let stack_top = layout.runtime_base + (cpu as u64 + 1) * STACK_SIZE;
        if !trampoline_free || !smp::start(cpu, apic, stack_top) {
            let name = &system.config.partitions[id].name;
            if vcpu == 0 {
                info!("CPU {cpu} (APIC ID {apic}) did not start: partition '{name}' cannot run");
                stopped(system, id);
            } else {
                // Its slot stays off for good: CPU_ON is taken, never run (AFFINITY_INFO says so).
                info!("CPU {cpu} (APIC ID {apic}) did not start: partition '{name}' has no vCPU {vcpu}");
            }
        }
    }
    match used.iter().find(|&&(cpu, ..)| cpu == bsp) {
        Some(&(_, id, vcpu)) => run_vcpu(bsp, revision, id, vcpu),
        None => console::halt(),
    }
}

/// Partition `id` stopped for good: the last one powers the machine off.
fn stopped(system: &system::System, id: usize) {
    let last = system.stop(id);
    input::stopped(system, id);
    if last {
        info!("all partitions have stopped: powering off");
        console::power_off()
    }
}

/// Rust entry of the other CPUs (`smp.rs`), on their own stacks.
extern "C" fn ap_main(cpu: u64) -> ! {
    let cpu = cpu as usize;
    smp::arrived();
    cpu::load_host_tables(cpu);
    smp::enable_local_apic();
    let system = system::get();
    let Some((id, vcpu)) = system
        .config
        .partitions
        .iter()
        .find_map(|p| p.cpus.iter().position(|&c| c == cpu).map(|v| (usize::from(p.id), v)))
    else {
        console::halt()
    };
    match vmx::enable() {
        Ok(revision) => {
            info!("VMX on (CPU {cpu}, APIC ID {})", smp::apic_id());
            run_vcpu(cpu, revision, id, vcpu)
        }
        Err(e) => {
            info!("CPU {cpu}: VMX unavailable: {e}");
            if vcpu == 0 {
                stopped(system, id);
            }
            console::halt()
        }
    }
}

/// Runs vCPU `vcpu` of partition `id` on this CPU for good; vCPU 0's end is the partition's.
fn run_vcpu(cpu: usize, revision: u32, id: usize, vcpu: usize) -> ! {
    if vcpu == 0 {
        vcpu::run(cpu, revision, id);
        stopped(system::get(), id);
    } else {
        vcpu::run_secondary(cpu, revision, id, vcpu);
    }
    console::halt()
}

/// Where the boot image and what follows it lie.
struct Layout {
    image_start: u64,
    info: BootInfo,
    /// Physical address of the payload (system DTB, then the partitions' blobs).
    payload: u64,
    /// First byte after the image: per-CPU stacks, then the heap.
    runtime_base: u64,
}

unsafe extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

impl Layout {
    fn read() -> Layout {
        let image_start = (&raw const __image_start) as u64;
        let linked_end = (&raw const __image_end) as u64;
        let head_len = BOOT_INFO_OFFSET + tantalum_core::bootimage::field::SIZE;
        // SAFETY: the image's first bytes (the Multiboot2 header and the BootInfo) are part of
        // the loaded file, identity-mapped.
        let head = unsafe { core::slice::from_raw_parts(image_start as *const u8, head_len) };
        // The loader loaded the whole file; its size is what the BootInfo says, at least the
        // linked hypervisor.
        let info = BootInfo::decode(head, u64::MAX).unwrap_or_else(|e| panic!("boot image: {e:?}"));
        let end = (image_start + info.payload_offset + info.payload_size).max(linked_end);
        let runtime_base = align_up(end, 4096).unwrap_or(end);
        Layout { image_start, info, payload: image_start + info.payload_offset, runtime_base }
    }
}

/// The loader's boot information at `address`.
fn boot_information(address: u32) -> BootInformation<'static> {
    let ptr = address as usize as *const u8;
    // SAFETY: the loader put the structure at `address` (identity-mapped, below 4 GiB) and
    // nothing writes it; its first 8 bytes hold its total size.
    let head = unsafe { core::ptr::read_unaligned(ptr.cast::<[u8; 8]>()) };
    let total = BootInformation::total_size(head);
    // SAFETY: as above, for the size the structure declares.
    let bytes = unsafe { core::slice::from_raw_parts(ptr, total) };
    BootInformation::new(bytes).unwrap_or_else(|e| panic!("Multiboot2 boot information: {e:?}"))
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    console::emergency(format_args!("PANIC: {info}"));
    console::halt()
}
