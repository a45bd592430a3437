//! The Tantalum hypervisor for aarch64 (EL2): boot, partition set-up and the vCPU exit loop.
#![no_std]
#![no_main]

extern crate alloc;

mod boot;
mod cadence;
mod console;
mod disks;
mod el2;
mod el2map;
mod fast_mmio;
mod firmware;
mod gic;
mod gicv_trap;
mod heap;
mod inject;
mod listed_sync;
mod loader;
mod memory;
mod pci;
mod pl011;
mod pmu;
mod sha256;
mod smmu;
mod system;
mod uart;
mod vcpu;
mod wfi;

use core::sync::atomic::{AtomicUsize, Ordering};

use tantalum_aarch64::built;
use tantalum_core::addr::{align_up, HostPhys, HostRange, PAGE_SIZE};
use tantalum_core::bootimage::{
    field, runtime_reserve, BootInfo, ConsoleKind, BOOT_INFO_OFFSET, HEAP_SIZE, IMAGE_SIZE_OFFSET, STACK_SIZE,
};
use tantalum_core::config::{self, BuildFacts, MAX_CPUS};

use crate::console::info;
use crate::system::System;

/// What the boot image header says about where things are.
struct Layout {
    image: HostRange,
    info: BootInfo,
    /// Start of the per-CPU stacks, then the heap.
    runtime_base: u64,
}

#[unsafe(link_section = ".text.boot_only")]
fn read_layout() -> Option<Layout> {
    let start = boot::image_start();
    // SAFETY: the Image header and BootInfo are the first bytes of our own loaded image.
    let head = unsafe { core::slice::from_raw_parts(start as *const u8, BOOT_INFO_OFFSET + field::SIZE) };
    let image_size = u64::from_le_bytes(head[IMAGE_SIZE_OFFSET..IMAGE_SIZE_OFFSET + 8].try_into().ok()?);
    let info = BootInfo::decode(head, image_size).ok()?;
    let runtime_base = align_up(start as u64 + image_size, PAGE_SIZE)?;
    Some(Layout { image: HostRange::new(HostPhys(start as u64), image_size), info, runtime_base })
}

/// Reports why the system DTB is refused, then halts. Rule codes, not messages (the hypervisor
/// is built without them): `cargo xtask config explain` turns each line back into the build
/// tool's message.
#[unsafe(link_section = ".text.boot_only")]
fn refuse_config(errors: &[config::ConfigError]) -> ! {
    for e in errors {
        info!("config error: {}", e.coded());
    }
    info!("the system DTB is invalid ({} error(s)): halting", errors.len());
    firmware::system_off();
}

/// Rust entry of the boot CPU, MMU on, on the boot stack. `fw_dtb` is the firmware's DTB.
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.boot_only")]
extern "C" fn primary_main(fw_dtb: u64) -> ! {
    let Some(layout) = read_layout() else {
        // No console without BootInfo: nothing sensible to say. Power off so a test ends.
        firmware::system_off();
    };
    // A kind this build does not know: a PL011 (which QEMU virt has there) rather than silence.
    let kind = ConsoleKind::from_word(layout.info.console_kind).unwrap_or_default();
    // SAFETY: the build tool put the config's console UART (base and kind) in BootInfo; the EL2
    // identity map covers it as device memory and only the hypervisor drives it.
    unsafe { console::init(kind, layout.info.console_base as usize) };
    info!(
        "Tantalum {} (aarch64) at EL2, image at {}, firmware DTB at {fw_dtb:#x}",
        env!("CARGO_PKG_VERSION"),
        layout.image
    );

    memory::set_mapped_ram(layout.info.map.ram);
    let heap_start = layout.runtime_base + MAX_CPUS as u64 * STACK_SIZE;
    // SAFETY: the stacks and heap after the image lie in the hypervisor's own memory, which the
    // config check reserves (boot_image + runtime_reserve), and nothing else uses them.
    unsafe { heap::init(heap_start as usize, HEAP_SIZE as usize) };

    let payload_start = layout.image.start.as_u64() + layout.info.payload_offset;
    // SAFETY: BootInfo::decode checked that the payload lies inside the loaded image, which
    // stays mapped and unmodified for the life of the hypervisor.
    let payload: &'static [u8] =
        unsafe { core::slice::from_raw_parts(payload_start as *const u8, layout.info.payload_size as usize) };
    let dtb =
        &payload[layout.info.dtb_offset as usize..(layout.info.dtb_offset + layout.info.dtb_size) as usize];

    let footprint = HostRange::new(layout.image.start, layout.image.size + runtime_reserve(MAX_CPUS as u64));
    let facts = BuildFacts {
        boot_image: Some(footprint),
        payload_size: Some(layout.info.payload_size),
        // What the boot code mapped (BootInfo): the config must fit in it.
        map: Some(layout.info.map),
    };
    // A refused configuration is never dropped: the hypervisor halts with it.
    let config = match config::parse(dtb) {
        Ok(c) => c,
        Err(errors) => refuse_config(&errors),
    };
    if let Err(errors) = config::validate(&config, &facts) {
        refuse_config(&errors);
    }
    // What this hypervisor was built without, the configuration must not need.
    if let Some(lacking) = built::BUILT.lacking(&built::Needs::of(&config)) {
        info!("{lacking}: halting");
        firmware::system_off();
    }

    if config.hypervisor.benchmark_pmu {
        info!("warning: /hypervisor: {}", config::WarningKind::BenchmarkPmu);
    }
    for p in config.partitions.iter().filter(|p| p.dma_unconfined) {
        let devices = config::unconfined_devices(p).map(|d| d.path.clone()).collect();
        info!("warning: {}: {}", p.path, config::WarningKind::DmaUnconfined { devices });
    }

    let me = el2::current_mpidr();
    let Some(my_index) = config.board.cpus.iter().position(|c| c.hwid == me) else {
        info!("boot CPU (MPIDR {me:#x}) is not among the board's CPUs: halting");
        firmware::system_off();
    };

    let refused = cross_check_ram(&config, fw_dtb);

    let system = match System::new(config, payload) {
        Ok(s) => s.install(),
        Err((name, e)) => {
            info!("partition '{name}': {e}: halting");
            firmware::system_off();
        }
    };
    system.stack_tops[my_index].store(boot::boot_stack_top() as usize, Ordering::Release);
    if let Some(g) = &system.config.board.gic {
        gic::init_distributor(g);
    }
    init_gic_cpu(me);
    // Before any partition runs: its devices' DMA reaches only its memory (docs/security.md).
    if let Err(e) = smmu::init(system.config, |id| u16::from(system.partitions[id].vmid)) {
        info!("SMMU: {e}: DMA behind it stays refused");
    }
    if let Err(e) = system.clear_channels() {
        info!("channels: {e}: halting");
        firmware::system_off();
    }
    // From here on EL2 sees only what it uses, W^X; every other CPU switches as it starts.
    let runtime = HostRange::new(HostPhys(layout.runtime_base), runtime_reserve(MAX_CPUS as u64));
    let payload = HostRange::new(HostPhys(payload_start), layout.info.payload_size);
    let el2_layout = el2map::Layout { payload, runtime };
    if let Err(e) = el2map::build_and_install(system.config, &el2_layout) {
        info!("building the hypervisor's own map failed: {e}: halting");
        firmware::system_off();
    }
    match el2map::verify(system.config, &el2_layout) {
        Ok(()) => {
            info!("own map: W^X (text read-only, writable memory never executes), unused memory unmapped")
        }
        Err(why) => {
            info!("own map: {why}: halting");
            firmware::system_off();
        }
    }

    // Every partition the RAM check kept is loaded by its own CPUs, all partitions at once
    // (see `loader`); a partition starts when every one with a lower boot order has.
    let mut to_start = heapless::Vec::<usize, MAX_CPUS>::new();
    for id in system.config.boot_sequence() {
        if !refused.contains(&id) {
            system.mark_loading(id as usize);
            let _ = to_start.push(id as usize);
        }
    }
    if to_start.is_empty() {
        info!("no partition can run: powering off");
        firmware::system_off();
    }
    // Passed-through devices' interrupts go to the CPU of the owner's vCPU 0.
    for &id in &to_start {
        let p = &system.partitions[id];
        let Some(hwid) = p.hwid_of(0) else { continue };
        for irq in p.config.device_spis() {
            gic::route_spi(irq.intid(), hwid, irq.is_edge());
        }
    }

    // Console input goes to the first partition with a virtual UART; its CPU takes the UART's
    // receive interrupt.
    if let Some(&id) = to_start.iter().find(|&&id| system.partitions[id].config.virtual_uart) {
        if let (Some(intid), Some(hwid)) = (system.console_intid, system.partitions[id].hwid_of(0)) {
            system.input_focus.store(id, Ordering::Release);
            gic::route_spi(intid, hwid, false);
            console::enable_input();
            info!(
                "{}",
                tantalum_core::console::input::Announce { to: Some(&system.partitions[id].config.name) }
            );
        }
    }

    // The images are verified from here on, on every CPU that loads a partition.
    sha256::choose();
    // Every CPU of a partition being loaded is powered on: vCPU 0's CPU loads it and starts
    // vCPU 0 at its entry with x0 = its guest DTB; the others help load, then wait for the
    // guest's PSCI CPU_ON.
    let entry = boot::secondary_entry as *const () as u64;
    for &id in &to_start {
        let p = &system.partitions[id];
        for &cpu in p.config.cpus.iter().filter(|&&c| c != my_index) {
            let top = layout.runtime_base + (cpu as u64 + 1) * STACK_SIZE;
            system.stack_tops[cpu].store(top as usize, Ordering::Release);
            let hwid = system.config.board.cpus[cpu].hwid;
            CPUS_STARTING.fetch_add(1, Ordering::Release);
            if let Err(e) = firmware::cpu_on(hwid, entry, cpu as u64) {
                CPUS_STARTING.fetch_sub(1, Ordering::Release);
                info!(
                    "PSCI CPU_ON of CPU {cpu} (MPIDR {hwid:#x}) failed with {e}: partition '{}' cannot start",
                    p.config.name
                );
                vcpu::stop(system, id, my_index);
            }
        }
    }
    // In the boot-only code: they leave theirs.
    let started = secondaries_started();
    if let Err(why) = el2map::find_boot_pages() {
        info!("retiring the boot-only code: {why}: halting");
        firmware::system_off();
    }
    boot_done(my_index, started)
}

/// The boot CPU's last step, outside the boot-only code (which it unmaps: el2map): from here on
/// it runs its vCPUs like every other CPU. `secondaries_started`: every secondary CPU it powered
/// on has left the boot-only code. Named in the build's check (xtask/src/boot_code.rs).
#[unsafe(no_mangle)]
#[inline(never)]
extern "C" fn boot_done(cpu: usize, secondaries_started: bool) -> ! {
    if !secondaries_started {
        // A CPU that came later would run unmapped code: keeping the pages costs nothing else.
        info!("a CPU is still starting after {STARTUP_WAIT_MS} ms: the boot-only code stays mapped");
        vcpu::cpu_main(cpu)
    }
    match el2map::retire_boot_code() {
        Ok(bytes) => info!(
            "boot-only code unmapped ({} KiB: the configuration's parser and rules, building the system, the heap allocator)",
            bytes / 1024
        ),
        Err(why) => {
            info!("retiring the boot-only code: {why}: halting");
            firmware::system_off();
        }
    }
    vcpu::cpu_main(cpu)
}

/// Secondary CPUs powered on that have not yet left their start-up code (boot-only:
/// [`secondary_main`]), which must not be unmapped under them.
static CPUS_STARTING: AtomicUsize = AtomicUsize::new(0);

/// How long the boot CPU waits for the secondary CPUs to finish starting (they take
/// microseconds; a firmware that reports a CPU on and never starts it is what this bounds).
const STARTUP_WAIT_MS: u64 = 1000;

/// Waits until every secondary CPU powered on has left its start-up code, for at most
/// [`STARTUP_WAIT_MS`]. Returns whether they all did.
#[unsafe(link_section = ".text.boot_only")]
fn secondaries_started() -> bool {
    let (start, freq) = el2::counter();
    let deadline = start.saturating_add(freq / 1000 * STARTUP_WAIT_MS);
    while CPUS_STARTING.load(Ordering::Acquire) != 0 {
        if el2::counter().0 >= deadline {
            return false;
        }
        // A hint to run another CPU (QEMU's round-robin CPUs, an SMT core): `spin_loop` is
        // an `isb` on aarch64, which would spin a whole time slice under `-icount`.
        // SAFETY: `yield` is a hint; it changes no state.
        unsafe { core::arch::asm!("yield", options(nomem, nostack, preserves_flags)) };
    }
    true
}

/// Checks the memory the system DTB hands out against the RAM the firmware reports. Returns the
/// partitions to refuse; powers off if the hypervisor's own memory is not RAM.
#[unsafe(link_section = ".text.boot_only")]
fn cross_check_ram(
    config: &config::SystemConfig,
    fw_dtb: u64,
) -> heapless::Vec<u16, { config::MAX_PARTITIONS }> {
    let mut refused = heapless::Vec::new();
    let ram = match firmware::firmware_ram(fw_dtb) {
        Ok(ram) => ram,
        Err(why) => {
            info!("{why}: memory not cross-checked against the firmware");
            return refused;
        }
    };
    for missing in config::ram_not_reported(config, &ram) {
        let range = missing.range;
        match missing.owner {
            config::Owner::Hypervisor => {
                info!("hypervisor memory {range} is not RAM on this machine (firmware DTB): halting");
                firmware::system_off();
            }
            config::Owner::Channel(c) => {
                let name = &config.channels[c].name;
                info!("channel '{name}': memory {range} is not RAM on this machine (firmware DTB): halting");
                firmware::system_off();
            }
            config::Owner::Partition(id) => {
                let name = &config.partitions[id as usize].name;
                info!("partition '{name}': memory {range} is not RAM on this machine (firmware DTB): refusing it");
                if !refused.contains(&id) {
                    let _ = refused.push(id);
                }
            }
        }
    }
    refused
}

/// Sets up this CPU's side of the GIC; without it, doorbells cannot reach the CPU.
#[unsafe(link_section = ".text.boot_only")]
fn init_gic_cpu(mpidr: u64) {
    if system::get().config.board.gic.is_some() {
        if let Err(e) = gic::init_cpu(mpidr) {
            info!("CPU {mpidr:#x}: GIC: {e}");
        }
        if gic::is_v2() {
            boot::install_gicv2_vectors();
        }
    }
}

/// Rust entry of a secondary CPU, MMU on, on its own stack: boot-only code, which the boot CPU
/// unmaps only once every CPU it powered on has left it ([`secondaries_started`]).
#[unsafe(no_mangle)]
#[unsafe(link_section = ".text.boot_only")]
extern "C" fn secondary_main(cpu: u64) -> ! {
    el2map::install_here();
    init_gic_cpu(el2::current_mpidr());
    secondary_ready(cpu as usize)
}

/// A secondary CPU's first step outside the boot-only code: says it has left it, then runs
/// its vCPUs. Named in the build's check (xtask/src/boot_code.rs).
#[unsafe(no_mangle)]
#[inline(never)]
extern "C" fn secondary_ready(cpu: usize) -> ! {
    CPUS_STARTING.fetch_sub(1, Ordering::Release);
    vcpu::cpu_main(cpu)
}

/// An exception taken at EL2 itself: a hypervisor bug. Report and power off.
#[unsafe(no_mangle)]
extern "C" fn hyp_exception(kind: u64, esr: u64, elr: u64, far: u64) -> ! {
    // Code that ran boot-only code after boot, through a reference the build's check cannot see.
    let retired =
        if el2map::is_retired_code(elr) { " in the boot-only code, unmapped after boot" } else { "" };
    console::print_line_forced(format_args!(
        "FATAL: exception in the hypervisor (kind {kind}, ESR {esr:#x}, ELR {elr:#x}{retired}, FAR {far:#x}): halting"
    ));
    firmware::system_off();
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    // The location only: printing the message would link the formatting of every panic's
    // arguments (kilobytes of `core::fmt`); the source line says which check failed.
    match info.location() {
        Some(at) => console::print_line_forced(format_args!(
            "FATAL: hypervisor panic at {}:{}",
            at.file(),
            u64::from(at.line())
        )),
        None => console::print_line_forced(format_args!("FATAL: hypervisor panic")),
    }
    firmware::system_off();
}
