//! Loading a partition into its memory, shared by the partition's CPUs.
//!
//! Two kinds of independent work, claimed by whichever CPU of the partition is free: verifying a
//! blob (image, initrd, guest DTB) against its SHA-256, largest first, and filling one of the
//! [`CHUNK`]s the memory is cut into (copy the parts of the blobs that fall in it and zero the
//! rest). Each CPU verifies blobs until none is left, then fills chunks. SHA-256 is serial, so
//! the largest blob (a Linux kernel) is the long pole: one CPU hashes it while the others hash
//! the initrd and DTB and fill the memory. One CPU leads the load (vCPU 0's at boot, the
//! restarting one at a restart): it opens the load to the partition's other CPUs, which join
//! it from their wait for a start, does its share, and waits until everything is done; the
//! partition may start only if every blob matched. A partition with one CPU does it all in
//! turn. What a load writes where ([`LoadPlan`]) is worked out and checked once, at boot
//! ([`LoadPlan::new`], boot-only): the payload and the configuration never change, so a
//! restart reloads by the same plan (and verifies every blob again).

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tantalum_core::addr::{align_up, HostPhys, HostRange, PAGE_SIZE};
use tantalum_core::bootimage::{check_partition_image, effective_image_size};
use tantalum_core::config::{Blob, PartitionConfig, GUEST_DTB_RESERVE};

use crate::memory::{self, mapped_ram};
use crate::system::{LoadError, System};
use crate::{el2, sha256};

/// Loading is shared out in chunks of this size.
const CHUNK: u64 = 2 << 20;

/// How far a load of one partition has got; its CPUs share it.
pub struct LoadProgress {
    /// The next chunk to claim (never beyond the chunk count).
    next: AtomicUsize,
    /// Chunks filled.
    filled: AtomicUsize,
    /// Every chunk is filled: the memory is ready.
    done: AtomicBool,
    /// The next blob to verify, counted in [`LoadPlan::by_size`] order.
    next_blob: AtomicUsize,
    /// Blobs verified (matching or not).
    verified: AtomicUsize,
    /// Bit `i` set: blob `i` (address order) does not match its SHA-256.
    mismatched: AtomicUsize,
    /// A load is under way that the partition's idle CPUs may join.
    open: AtomicBool,
}

impl LoadProgress {
    pub const fn new() -> Self {
        Self {
            next: AtomicUsize::new(0),
            filled: AtomicUsize::new(0),
            done: AtomicBool::new(false),
            next_blob: AtomicUsize::new(0),
            verified: AtomicUsize::new(0),
            mismatched: AtomicUsize::new(0),
            open: AtomicBool::new(false),
        }
    }

    /// Opens a load for the partition's CPUs to join: after [`LoadProgress::new`] at boot, after
    /// [`LoadProgress::reset`] at a restart.
    pub fn open(&self) {
        self.open.store(true, Ordering::Release);
    }

    /// A load is under way that an idle CPU of the partition should help with.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Starts over (a restart): no CPU of the partition is loading it.
    pub fn reset(&self) {
        self.done.store(false, Ordering::Relaxed);
        self.filled.store(0, Ordering::Relaxed);
        self.verified.store(0, Ordering::Relaxed);
        self.mismatched.store(0, Ordering::Relaxed);
        self.next_blob.store(0, Ordering::Relaxed);
        self.next.store(0, Ordering::Release);
    }

    /// Claims the next of `count` items counted by `next`, if any is left.
    fn claim(next: &AtomicUsize, count: usize) -> Option<usize> {
        next.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < count).then_some(n + 1)).ok()
    }
}

/// A blob of the boot image and where it goes.
struct Placed {
    what: &'static str,
    bytes: &'static [u8],
    sha256: [u8; 32],
    to: HostPhys,
}

/// What loading a partition writes: its blobs, in address order, and zeroes elsewhere.
pub struct LoadPlan {
    blobs: heapless::Vec<Placed, 3>,
    /// Indices into `blobs`, largest first: the order in which they are claimed for verifying.
    by_size: heapless::Vec<usize, 3>,
}

/// The slice of `payload` that `blob` names (not yet verified).
#[unsafe(link_section = ".text.boot_only")]
fn blob_bytes(payload: &'static [u8], blob: &Blob, what: &'static str) -> Result<&'static [u8], LoadError> {
    let start = usize::try_from(blob.offset).map_err(|_| LoadError::OutOfBounds { what })?;
    let size = usize::try_from(blob.size).map_err(|_| LoadError::OutOfBounds { what })?;
    start.checked_add(size).and_then(|end| payload.get(start..end)).ok_or(LoadError::OutOfBounds { what })
}

impl LoadPlan {
    /// Checks that partition `p`'s blobs lie in `payload` and fit its memory, and where they
    /// go. At boot, for every partition (`System::new`).
    #[unsafe(link_section = ".text.boot_only")]
    pub fn new(p: &PartitionConfig, payload: &'static [u8]) -> Result<LoadPlan, LoadError> {
        for region in &p.memory {
            if !mapped_ram().contains_range(&region.host_range()) {
                return Err(LoadError::Unmapped);
            }
        }
        let image_blob = p.image.as_ref().ok_or(LoadError::OutOfBounds { what: "image" })?;
        let image = blob_bytes(payload, image_blob, "image")?;
        check_partition_image(image).map_err(LoadError::Image)?;
        let initrd = p.initrd.map_or(0, |b| align_up(b.size, PAGE_SIZE).unwrap_or(u64::MAX));
        let needed = effective_image_size(image).saturating_add(initrd).saturating_add(GUEST_DTB_RESERVE);
        if needed > p.memory[0].size {
            return Err(LoadError::TooBig { needed, room: p.memory[0].size });
        }
        let mut blobs = heapless::Vec::new();
        let _ = blobs.push(Placed {
            what: "image",
            bytes: image,
            sha256: image_blob.sha256,
            to: p.memory[0].host,
        });
        let placements =
            [("initrd", &p.initrd, p.initrd_address()), ("guest DTB", &p.guest_dtb, p.guest_dtb_address())];
        for (what, blob, ipa) in placements {
            if let (Some(blob), Some(ipa)) = (blob, ipa) {
                let bytes = blob_bytes(payload, blob, what)?;
                // In region 0 (translated), above the image and below the top (config rules).
                let to = p.translate(ipa, bytes.len() as u64).ok_or(LoadError::OutOfBounds { what })?;
                let _ = blobs.push(Placed { what, bytes, sha256: blob.sha256, to });
            }
        }
        sort_few(&mut blobs, |a, b| a.to < b.to);
        let mut by_size: heapless::Vec<usize, 3> = (0..blobs.len()).collect();
        sort_few(&mut by_size, |&a, &b| blobs[a].bytes.len() > blobs[b].bytes.len());
        Ok(LoadPlan { blobs, by_size })
    }
}

impl System {
    /// Leads the load of partition `id` (opened with [`LoadProgress::open`]): its share of the
    /// work, then waiting for the others'; closes the load. Fails, naming the first blob in
    /// address order, if any blob does not match.
    pub fn lead_load(&self, id: usize) -> Result<(), LoadError> {
        let result = self.load_and_wait(id);
        self.partitions[id].load.open.store(false, Ordering::Release);
        result
    }

    fn load_and_wait(&self, id: usize) -> Result<(), LoadError> {
        let plan = self.partitions[id].plan.as_ref().map_err(|e| *e)?;
        self.verify_blobs(id, plan);
        self.fill_chunks(id, plan);
        let progress = &self.partitions[id].load;
        while !progress.done.load(Ordering::Acquire)
            || progress.verified.load(Ordering::Acquire) < plan.blobs.len()
        {
            core::hint::spin_loop();
        }
        let mismatched = progress.mismatched.load(Ordering::Acquire);
        match plan.blobs.iter().enumerate().find(|&(i, _)| mismatched & (1 << i) != 0) {
            Some((_, b)) => Err(LoadError::HashMismatch { what: b.what }),
            None => Ok(()),
        }
    }

    /// The part of a CPU that does not lead the load of partition `id`: verifying blobs and
    /// filling chunks while any is left.
    pub fn help_load(&self, id: usize) {
        if let Ok(plan) = &self.partitions[id].plan {
            self.verify_blobs(id, plan);
            self.fill_chunks(id, plan);
        }
    }

    /// Verifies blobs of partition `id`'s plan against their SHA-256 until none is left to
    /// claim.
    fn verify_blobs(&self, id: usize, plan: &LoadPlan) {
        let progress = &self.partitions[id].load;
        while let Some(k) = LoadProgress::claim(&progress.next_blob, plan.by_size.len()) {
            let i = plan.by_size[k];
            if sha256::digest(plan.blobs[i].bytes) != plan.blobs[i].sha256 {
                progress.mismatched.fetch_or(1 << i, Ordering::AcqRel);
            }
            progress.verified.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Fills chunks of partition `id`'s memory until none is left to claim.
    fn fill_chunks(&self, id: usize, plan: &LoadPlan) {
        let p = &self.partitions[id];
        let regions = &p.config.memory;
        let chunks: usize = regions.iter().map(|r| r.size.div_ceil(CHUNK) as usize).sum();
        if chunks == 0 {
            // No memory (the config rules forbid it): nothing to wait for.
            return p.load.done.store(true, Ordering::Release);
        }
        while let Some(i) = LoadProgress::claim(&p.load.next, chunks) {
            if let Some(chunk) = nth_chunk(regions.iter().map(|r| r.host_range()), i) {
                fill(chunk, &plan.blobs);
            }
            if p.load.filled.fetch_add(1, Ordering::AcqRel) + 1 == chunks {
                p.load.done.store(true, Ordering::Release);
            }
        }
    }
}

/// Copies into `chunk` the parts of `blobs` (in address order, not overlapping) that fall in
/// it, zeroes the rest, and cleans it to the point of coherency (the guest starts with its MMU
/// and caches off).
fn fill(chunk: HostRange, blobs: &[Placed]) {
    let end = chunk.end();
    let mut at = chunk.start.as_u64();
    for b in blobs {
        let (from, to) = (b.to.as_u64(), b.to.as_u64() + b.bytes.len() as u64);
        let (start, stop) = (from.max(at), to.min(end));
        if start >= stop {
            continue;
        }
        let bytes = &b.bytes[(start - from) as usize..(stop - from) as usize];
        // SAFETY: both ranges lie in the chunk, which is the partition's own memory inside
        // mapped_ram() (checked by load_plan); the partition is not running and this CPU alone
        // claimed the chunk.
        unsafe {
            memory::zero(HostRange::new(HostPhys(at), start - at));
            memory::copy_to(HostPhys(start), bytes);
        }
        at = stop;
    }
    // SAFETY: as above.
    unsafe { memory::zero(HostRange::new(HostPhys(at), end - at)) };
    el2::clean_to_poc(chunk.start.as_u64() as usize, chunk.size as usize);
}

/// Sorts a few items (three blobs at most) so that `before(a, b)` holds for neighbours: an
/// insertion sort, where the library's sort would add kilobytes of code.
#[unsafe(link_section = ".text.boot_only")]
fn sort_few<T>(items: &mut [T], before: impl Fn(&T, &T) -> bool) {
    for i in 1..items.len() {
        let mut j = i;
        while j > 0 && before(&items[j], &items[j - 1]) {
            items.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// Chunk `i` of `regions`, each cut into [`CHUNK`]s (the last one of a region may be shorter).
fn nth_chunk(regions: impl Iterator<Item = HostRange>, mut i: usize) -> Option<HostRange> {
    for r in regions {
        let n = r.size.div_ceil(CHUNK) as usize;
        if i < n {
            let offset = i as u64 * CHUNK;
            return Some(HostRange::new(HostPhys(r.start.as_u64() + offset), CHUNK.min(r.size - offset)));
        }
        i -= n;
    }
    None
}
