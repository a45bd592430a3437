//! Access to host-physical memory through the hypervisor's identity map, and stage-2 tables
//! allocated from the heap.

use alloc::alloc::{alloc_zeroed, Layout};

use tantalum_aarch64::boot_once::BootOnce;
use tantalum_core::addr::{HostPhys, HostRange, PAGE_SIZE};
use tantalum_core::stage2::{TableMemory, ENTRIES, MAX_ROOT_TABLES};
use tantalum_core::virtio::GuestMemory;

/// Host-physical memory the EL2 identity map covers as normal memory: BootInfo's RAM window,
/// recorded by [`set_mapped_ram`] at boot (nothing until then).
static MAPPED_RAM: BootOnce<HostRange> = BootOnce::new();

/// Records the RAM window the boot code mapped (boot CPU, once, before anything reads it).
pub fn set_mapped_ram(ram: HostRange) {
    let _ = MAPPED_RAM.set(ram);
}

/// Host-physical memory the EL2 identity map covers as normal memory (see [`set_mapped_ram`]).
pub fn mapped_ram() -> HostRange {
    MAPPED_RAM.get().copied().unwrap_or(HostRange::new(HostPhys(0), 0))
}

/// Zeroes `range` (any alignment), writing only the blocks that are not zero already.
///
/// # Safety
/// `range` must lie inside [`mapped_ram`] and belong to a stopped partition (nothing else reads
/// or writes it meanwhile, and no Rust reference points into it).
pub unsafe fn zero(range: HostRange) {
    let (mut start, mut size) = (range.start.as_u64() as usize, range.size as usize);
    let dczid: u64;
    // SAFETY: reading DCZID_EL0 has no side effects.
    unsafe { core::arch::asm!("mrs {}, dczid_el0", out(reg) dczid, options(nomem, nostack)) };
    let block = 4usize << (dczid & 0xf);
    let prohibited = dczid & (1 << 4) != 0;
    if prohibited || !(16..=1024).contains(&block) || size < 2 * block {
        // SAFETY: forwarded contract; identity map, so the physical address is the pointer.
        unsafe { core::ptr::write_bytes(start as *mut u8, 0, size) };
        return;
    }
    // Stores for the unaligned head and tail, blocks in between.
    let head = start.next_multiple_of(block) - start;
    let tail = (start + size) % block;
    // SAFETY: forwarded contract; both pieces lie inside `range`.
    unsafe {
        core::ptr::write_bytes(start as *mut u8, 0, head);
        core::ptr::write_bytes((start + size - tail) as *mut u8, 0, tail);
    }
    start += head;
    size -= head + tail;
    // Reads each block first and zeroes (DC ZVA) only blocks that are not zero already. Memory
    // nobody wrote costs one read pass: under an emulator (or a hypervisor below this one)
    // untouched memory is not even backed, and writing zeroes would allocate all of it (0.8 s
    // for 256 MiB under QEMU, against 0.12 s to read it). On hardware the read pass costs
    // about what the writes do.
    let mut addr = start;
    if block == 64 {
        // The usual block size: one unrolled pass of four pairs per block, kept apart from the
        // general loop below (sharing one per-line check costs 25 % more boot instructions).
        while addr < start + size {
            // SAFETY: forwarded contract: an aligned block of the stopped partition's memory,
            // mapped as normal memory in the EL2 identity map.
            unsafe {
                core::arch::asm!(
                    "ldp {t0}, {t1}, [{a}]",
                    "ldp {t2}, {t3}, [{a}, #16]",
                    "orr {t0}, {t0}, {t1}",
                    "ldp {t1}, {t4}, [{a}, #32]",
                    "orr {t2}, {t2}, {t3}",
                    "ldp {t3}, {t5}, [{a}, #48]",
                    "orr {t0}, {t0}, {t1}",
                    "orr {t2}, {t2}, {t4}",
                    "orr {t0}, {t0}, {t3}",
                    "orr {t2}, {t2}, {t5}",
                    "orr {t0}, {t0}, {t2}",
                    "cbz {t0}, 2f",
                    "dc zva, {a}",
                    "2:",
                    "add {a}, {a}, #64",
                    a = inout(reg) addr, t0 = out(reg) _, t1 = out(reg) _, t2 = out(reg) _,
                    t3 = out(reg) _, t4 = out(reg) _, t5 = out(reg) _, options(nostack)
                )
            };
        }
        return;
    }
    while addr < start + size {
        // SAFETY: forwarded contract: these are aligned blocks of the stopped partition's
        // memory, mapped as normal memory in the EL2 identity map.
        unsafe {
            core::arch::asm!(
                "mov {p}, {a}",
                "add {e}, {a}, {b}",
                "mov {acc}, xzr",
                "2:",
                "ldp {t0}, {t1}, [{p}], #16",
                "orr {acc}, {acc}, {t0}",
                "orr {acc}, {acc}, {t1}",
                "cmp {p}, {e}",
                "b.lo 2b",
                "cbz {acc}, 3f",
                "dc zva, {a}",
                "3:",
                "add {a}, {a}, {b}",
                a = inout(reg) addr, b = in(reg) block, p = out(reg) _, e = out(reg) _,
                acc = out(reg) _, t0 = out(reg) _, t1 = out(reg) _, options(nostack)
            )
        };
    }
}

/// Copies `bytes` to host-physical `dst`, writing only the 8-byte words that differ.
///
/// A partition reloaded from its image mostly holds that image already, and under an emulator
/// every store to a page it has run code from is a slow, self-modifying-code store (QEMU:
/// reloading Linux, 1.3 s with plain copies, 0.4 s like this); on hardware the reads are cheap.
///
/// # Safety
/// As [`zero`], for `[dst, dst + bytes.len())`; `bytes` must not overlap it.
pub unsafe fn copy_to(dst: HostPhys, bytes: &[u8]) {
    let to = dst.as_u64() as usize;
    // SAFETY: reinterpreting initialised bytes as u64 words is sound; `align_to` splits exactly.
    let (head, words, tail) = unsafe { bytes.align_to::<u64>() };
    if to % 8 != bytes.as_ptr() as usize % 8 || words.is_empty() {
        // SAFETY: forwarded contract.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), to as *mut u8, bytes.len()) };
        return;
    }
    // SAFETY: forwarded contract; the head is the first `head.len()` bytes of the range.
    unsafe { core::ptr::copy_nonoverlapping(head.as_ptr(), to as *mut u8, head.len()) };
    let first = (to + head.len()) as *mut u64;
    for (i, &word) in words.iter().enumerate() {
        // SAFETY: forwarded contract; `first` is 8-byte aligned (same offset as the source
        // words) and word `i` lies inside the range.
        unsafe {
            let at = first.add(i);
            if at.read() != word {
                at.write(word);
            }
        }
    }
    let rest = to + head.len() + words.len() * 8;
    // SAFETY: forwarded contract; the tail is the last `tail.len()` bytes of the range.
    unsafe { core::ptr::copy_nonoverlapping(tail.as_ptr(), rest as *mut u8, tail.len()) };
}

/// Copies from host-physical `src` into `buf`.
///
/// # Safety
/// `[src, src + buf.len())` must lie inside [`mapped_ram`]. Another CPU may be writing it (a
/// guest's own memory): the bytes read may be torn, which is fine for console output.
pub unsafe fn copy_from(src: HostPhys, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        let byte = (src.as_u64() as usize + i) as *const u8;
        // SAFETY: forwarded contract; volatile reads assume nothing about concurrent writers.
        *b = unsafe { core::ptr::read_volatile(byte) };
    }
}

/// Partitions' memory as virtio's queue walker and copies reach it (`core::virtio`): core
/// passes only ranges it translated through the owning partition's map.
pub struct Physical;

impl GuestMemory for Physical {
    fn read(&mut self, pa: HostPhys, buf: &mut [u8]) {
        // SAFETY: core translated the range through a partition's map: it is that partition's
        // memory, inside mapped_ram() (checked at load).
        unsafe { copy_from(pa, buf) };
    }

    fn write(&mut self, pa: HostPhys, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            let byte = (pa.as_u64() as usize + i) as *mut u8;
            // SAFETY: as in `read`; volatile stores assume nothing about the guest's accesses.
            unsafe { core::ptr::write_volatile(byte, b) };
        }
    }

    fn copy(&mut self, dst: HostPhys, src: HostPhys, len: usize) {
        // SAFETY: as in `read`, for both ranges (each translated through its owner's map). The
        // bytes are plain data with no invariant here: a guest racing its own buffer only tears
        // its own packet. Distinct partitions' memory never overlaps (config rules); a guest
        // pointing a transmit and a receive buffer of its own at the same bytes gets a
        // memmove's result.
        unsafe { core::ptr::copy(src.as_u64() as *const u8, dst.as_u64() as *mut u8, len) };
    }
}

/// Stage-2 tables allocated from the hypervisor heap (identity-mapped, so a table's address
/// is its pointer).
pub struct HeapTables;

impl TableMemory for HeapTables {
    fn alloc_tables(&mut self, count: usize) -> Option<HostPhys> {
        let bytes = count.clamp(1, MAX_ROOT_TABLES) * PAGE_SIZE as usize;
        let layout = Layout::from_size_align(bytes, bytes).ok()?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        (!ptr.is_null()).then_some(HostPhys(ptr as u64))
    }

    fn read(&self, table: HostPhys, index: usize) -> u64 {
        assert!(index < ENTRIES * MAX_ROOT_TABLES);
        // SAFETY: `table` came from `alloc_tables` (live tables) and `core::stage2` indexes past
        // one table only in a concatenated root, which is that many tables long.
        unsafe { core::ptr::read_volatile((table.as_u64() as *const u64).add(index)) }
    }

    fn write(&mut self, table: HostPhys, index: usize, desc: u64) {
        assert!(index < ENTRIES * MAX_ROOT_TABLES);
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile((table.as_u64() as *mut u64).add(index), desc) }
    }
}
