//! The hypervisor's own map while partitions run, built once at boot from the system's layout
//! and installed on every CPU before any guest runs.
//!
//! The compile-time identity map `boot.rs` starts with covers whole GiBs read-write-executable:
//! enough to boot, far too much to keep. This one maps only what EL2 uses (its image, stacks
//! and heap, the boot image's payload, the partitions' and channels' memory it loads, clears
//! and copies hypercall buffers from, and the devices it drives), identity-mapped, W^X: text
//! read-only and executable, everything else execute-never, read-only data and the payload
//! read-only. Memory no one owns is not mapped at all.
//!
//! The boot-only code (`link.ld`: the configuration's parser and rules, building the system,
//! the heap allocator) is mapped like the rest of the text until the boot CPU has started the
//! partitions; then [`retire_boot_code`] unmaps its pages on every CPU, so that nothing can run
//! it again (the build checks that nothing that runs after boot refers to it:
//! `xtask/src/boot_code.rs`).

use alloc::vec;
use alloc::vec::Vec;
use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tantalum_aarch64::boot_once::BootOnce;
use tantalum_aarch64::descriptors::El2Format;
use tantalum_core::addr::{GuestPhys, HostPhys, HostRange};
use tantalum_core::config::SystemConfig;
use tantalum_core::stage2::{covering_pages, Geometry, MapAttrs, MapError, Mappings, Stage2, TableMemory};

use crate::memory::HeapTables;

/// Root of the run-time map, for the secondary CPUs (0 until built).
static ROOT: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __image_end: u8;
    static __boot_text_start: u8;
    static __boot_text_end: u8;
}

/// 39-bit VA from level 1, as TCR_EL2 says (stage 1 has no concatenated roots).
const GEOMETRY: Geometry = Geometry { start_level: 1, root_tables: 1, ipa_bits: 39 };

fn symbol(s: &u8) -> u64 {
    s as *const u8 as u64
}

const TEXT: MapAttrs = MapAttrs { read: true, write: false, execute: true, device: false };
const READ_ONLY: MapAttrs = MapAttrs { read: true, write: false, execute: false, device: false };
const READ_WRITE: MapAttrs = MapAttrs { read: true, write: true, execute: false, device: false };
const DEVICE: MapAttrs = MapAttrs { read: true, write: true, execute: false, device: true };

/// Where the parts of the loaded hypervisor lie (besides what the linker says).
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// The partition images, guest DTBs and system DTB after the linked image: read-only.
    pub payload: HostRange,
    /// The per-CPU stacks and the heap after the boot image.
    pub runtime: HostRange,
}

/// Every range EL2 maps, with its attributes.
#[unsafe(link_section = ".text.boot_only")]
fn regions(config: &SystemConfig, layout: &Layout) -> Vec<(HostRange, MapAttrs)> {
    // SAFETY: linker symbols: only their addresses are taken, never their contents.
    let (start, text_end, rodata_end, end) =
        unsafe { (symbol(&__image_start), symbol(&__text_end), symbol(&__rodata_end), symbol(&__image_end)) };
    let span = |from: u64, to: u64| HostRange::new(HostPhys(from), to - from);
    let boot = boot_text();
    // The boot-only pages apart, so that they are mapped by page descriptors of their own.
    let mut regions = vec![
        (span(start, boot.start.as_u64()), TEXT),
        (boot, TEXT),
        (span(boot.end(), text_end), TEXT),
        (span(text_end, rodata_end), READ_ONLY),
        (span(rodata_end, end), READ_WRITE),
        (layout.payload, READ_ONLY),
        (layout.runtime, READ_WRITE),
    ];
    // Loops that push, not chained iterators that `extend`: this runs once, and the chains'
    // adapters (`size_hint`, `next`, flatten closures) were 2 KB of code.
    for p in &config.partitions {
        for r in &p.memory {
            regions.push((r.host_range(), READ_WRITE));
        }
    }
    for c in &config.channels {
        regions.push((c.memory, READ_WRITE));
    }
    let mut devices = Vec::new();
    if let Some(console) = &config.hypervisor.console {
        devices.push(console.mmio);
    }
    // All of a GIC's frames, a GICv2's GICV too: the hypervisor carries out guests' trapped
    // accesses to it.
    if let Some(gic) = &config.board.gic {
        for frame in gic.frames() {
            devices.push(frame);
        }
    }
    for i in &config.board.iommus {
        devices.push(i.mmio);
    }
    // The first bus of each PCI host bridge a partition owns: the hypervisor stops its
    // devices' bus mastering while the partition restarts (`pci::stop_bus_masters`).
    for p in &config.partitions {
        for d in &p.devices {
            if let Some(bus) = tantalum_core::pci::first_bus_window(d) {
                devices.push(bus);
            }
        }
    }
    for r in covering_pages(&devices) {
        regions.push((r, DEVICE));
    }
    regions
}

/// Builds the map (tables on the heap) and installs it on this CPU; the secondary CPUs install
/// it with [`install_here`] as they start.
#[unsafe(link_section = ".text.boot_only")]
pub fn build_and_install(config: &SystemConfig, layout: &Layout) -> Result<(), MapError> {
    let mut tables = HeapTables;
    let map = Stage2::new(&mut tables, GEOMETRY, Mappings::Blocks)?;
    for (range, attrs) in regions(config, layout) {
        let page = tantalum_core::addr::PAGE_SIZE;
        let from = range.start.as_u64() & !(page - 1);
        let to = tantalum_core::addr::align_up(range.end(), page).ok_or(MapError::OutOfRange)?;
        if to > from {
            map.map::<El2Format>(&mut tables, GuestPhys(from), HostPhys(from), to - from, attrs)?;
        }
    }
    ROOT.store(map.root.as_u64(), Ordering::Release);
    install_here();
    Ok(())
}

/// Whether EL2 may read (or, with `write`, write) `va`, asked of the MMU itself (`AT S1E2R/W`).
fn allowed(va: u64, write: bool) -> bool {
    let par: u64;
    // SAFETY: address translation instructions only report; they change PAR_EL1, which is
    // guest state that every partition start resets, and no guest has run on this CPU yet.
    unsafe {
        if write {
            asm!("at s1e2w, {va}", "isb", "mrs {par}, par_el1", va = in(reg) va, par = out(reg) par, options(nostack));
        } else {
            asm!("at s1e2r, {va}", "isb", "mrs {par}, par_el1", va = in(reg) va, par = out(reg) par, options(nostack));
        }
    }
    par & 1 == 0
}

/// Checks the installed map with the MMU: the text is not writable, the data is, and a page
/// of the hypervisor's memory that holds nothing (if there is one) is not mapped at all.
/// Returns what failed.
#[unsafe(link_section = ".text.boot_only")]
pub fn verify(config: &SystemConfig, layout: &Layout) -> Result<(), &'static str> {
    // SAFETY: linker symbols: only their addresses are taken.
    let (text, data) = unsafe { (symbol(&__image_start), symbol(&__rodata_end)) };
    if allowed(text, true) {
        return Err("the hypervisor's text is writable");
    }
    if !allowed(text, false) || !allowed(data, true) {
        return Err("the hypervisor's own image is not mapped as it should be");
    }
    let sctlr: u64;
    // SAFETY: reading SCTLR_EL2 has no side effects.
    unsafe { asm!("mrs {}, sctlr_el2", out(reg) sctlr, options(nomem, nostack)) };
    if sctlr & (1 << 19) == 0 {
        return Err("SCTLR_EL2.WXN is off");
    }
    let own = config.hypervisor.memory;
    let used = regions(config, layout);
    let hole = (own.start.as_u64()..own.end())
        .step_by(tantalum_core::addr::PAGE_SIZE as usize)
        .find(|&a| !used.iter().any(|(r, _)| (r.start.as_u64()..r.end()).contains(&a)));
    if hole.is_some_and(|a| allowed(a, false)) {
        return Err("memory that holds nothing is mapped");
    }
    Ok(())
}

/// The boot-only code's pages (`link.ld`: page-aligned at both ends).
fn boot_text() -> HostRange {
    // SAFETY: linker symbols: only their addresses are taken.
    let (start, end) = unsafe { (symbol(&__boot_text_start), symbol(&__boot_text_end)) };
    HostRange::new(HostPhys(start), end - start)
}

/// Set once the boot-only code is unmapped.
static RETIRED: AtomicBool = AtomicBool::new(false);

/// Whether `address` lies in the boot-only code and that code is unmapped.
pub fn is_retired_code(address: u64) -> bool {
    let boot = boot_text();
    RETIRED.load(Ordering::Relaxed) && (boot.start.as_u64()..boot.end()).contains(&address)
}

/// The most boot-only pages [`find_boot_pages`] expects (about 25 today).
const MAX_BOOT_PAGES: usize = 64;

/// The run-time map's descriptors of the boot-only pages (table, index), found at boot by
/// [`find_boot_pages`] for [`retire_boot_code`].
static BOOT_PAGES: BootOnce<heapless::Vec<(HostPhys, usize), MAX_BOOT_PAGES>> = BootOnce::new();

/// Finds the run-time map's descriptor of every boot-only page, for [`retire_boot_code`]:
/// each page has a page descriptor of its own (`regions` maps them apart and they cover less
/// than a block). Boot-only: the walk leaves the resident code.
#[unsafe(link_section = ".text.boot_only")]
pub fn find_boot_pages() -> Result<(), &'static str> {
    let root = ROOT.load(Ordering::Acquire);
    if root == 0 {
        return Err("the run-time map is not built");
    }
    let map = Stage2 { root: HostPhys(root), geometry: GEOMETRY, mappings: Mappings::Blocks };
    let boot = boot_text();
    let mut found = heapless::Vec::new();
    for page in (boot.start.as_u64()..boot.end()).step_by(tantalum_core::addr::PAGE_SIZE as usize) {
        let entry = map
            .page_entry::<El2Format>(&HeapTables, GuestPhys(page))
            .ok_or("a boot-only page is not mapped by a page descriptor")?;
        found.push(entry).map_err(|_| "more boot-only pages than expected (el2map::MAX_BOOT_PAGES)")?;
    }
    BOOT_PAGES.set(found).map_err(|_| "the boot-only pages were looked up twice")?;
    Ok(())
}

/// Unmaps the boot-only code from the run-time map, on every CPU, and checks with the MMU that
/// it is gone. Returns the bytes unmapped. Called once, by the boot CPU after it has started
/// the partitions, from outside the boot-only code; no CPU runs boot-only code then (the
/// others run only the run-time code from their first instruction at EL2 on).
pub fn retire_boot_code() -> Result<u64, &'static str> {
    let pages = BOOT_PAGES.get().ok_or("the boot-only pages were not found in the run-time map")?;
    let boot = boot_text();
    for &(table, index) in pages {
        HeapTables.write(table, index, 0);
    }
    // SAFETY: the descriptors written are the boot-only pages', which no CPU runs any more;
    // the broadcast invalidation drops their cached translations on every CPU.
    unsafe { asm!("dsb ishst", "tlbi alle2is", "dsb ish", "isb", options(nostack)) };
    if allowed(boot.start.as_u64(), false) || allowed(boot.end() - 4, false) {
        return Err("the boot-only code is still mapped");
    }
    RETIRED.store(true, Ordering::Relaxed);
    Ok(boot.size)
}

/// Switches this CPU to the run-time map, if it has been built, and turns on `SCTLR_EL2.WXN`
/// (writable memory never executes, whatever a descriptor says).
pub fn install_here() {
    let root = ROOT.load(Ordering::Acquire);
    if root == 0 {
        return;
    }
    // SAFETY: `root` holds complete tables that identity-map everything this CPU touches from
    // here on (its code, stack, heap and devices: `regions`); the old map stays valid until the
    // switch completes, and the TLB flush drops every entry of it.
    unsafe {
        asm!(
            "dsb ish",
            "msr ttbr0_el2, {root}",
            "isb",
            "tlbi alle2",
            "dsb ish",
            "mrs {tmp}, sctlr_el2",
            "orr {tmp}, {tmp}, #(1 << 19)",
            "msr sctlr_el2, {tmp}",
            "isb",
            root = in(reg) root,
            tmp = out(reg) _,
            options(nostack),
        );
    }
}
