//! A virtio-blk disk on PCI (virtio 1.2 §4.1, the modern interface: capabilities in
//! configuration space pointing into a memory BAR): the driver a partition that owns the host
//! bridge uses to reach the physical disk. One queue of 8 entries, one request at a time,
//! polled. The data buffer of a request is the caller's memory: the disk DMAs straight into it.

use alloc::boxed::Box;
use core::ptr::{addr_of, addr_of_mut, read_volatile, write_volatile};
use core::sync::atomic::{fence, Ordering};

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

use crate::pci::{Function, Host};
use core::time::Duration;

use crate::time;

/// virtio's PCI vendor, and the modern and transitional device IDs of a block device.
const VENDOR: u16 = 0x1af4;
const BLK_MODERN: u16 = 0x1042;
const BLK_TRANSITIONAL: u16 = 0x1001;
/// Capability ID of virtio's vendor-specific capabilities, and their `cfg_type`s.
const CAP_VENDOR: u8 = 0x09;
const CAP_COMMON: u8 = 1;
const CAP_NOTIFY: u8 = 2;
const CAP_DEVICE: u8 = 4;
/// Feature bits.
const F_FLUSH: u64 = 1 << 9;
const F_VERSION_1: u64 = 1 << 32;
const F_ACCESS_PLATFORM: u64 = 1 << 33;
/// Device status.
const ACKNOWLEDGE: u8 = 1;
const DRIVER: u8 = 2;
const DRIVER_OK: u8 = 4;
const FEATURES_OK: u8 = 8;
/// Descriptor flags.
const NEXT: u16 = 1;
const WRITE: u16 = 2;
/// Queue entries.
const NUM: usize = 8;
/// Request types and the status a request that never completes gets.
pub const T_IN: u32 = 0;
pub const T_OUT: u32 = 1;
pub const T_FLUSH: u32 = 4;
pub const S_IOERR: u8 = 1;
/// How long a request may take before the driver gives up on it.
const TIMEOUT: Duration = Duration::from_secs(10);

register_structs! {
    /// `struct virtio_pci_common_cfg`; 64-bit fields as two 32-bit halves (§4.1.3.1).
    CommonCfg {
        (0x00 => device_feature_select: ReadWrite<u32>),
        (0x04 => device_feature: ReadOnly<u32>),
        (0x08 => driver_feature_select: ReadWrite<u32>),
        (0x0c => driver_feature: ReadWrite<u32>),
        (0x10 => _msix_config: ReadWrite<u16>),
        (0x12 => _num_queues: ReadOnly<u16>),
        (0x14 => device_status: ReadWrite<u8>),
        (0x15 => _config_generation: ReadOnly<u8>),
        (0x16 => queue_select: ReadWrite<u16>),
        (0x18 => queue_size: ReadWrite<u16>),
        (0x1a => _queue_msix_vector: ReadWrite<u16>),
        (0x1c => queue_enable: ReadWrite<u16>),
        (0x1e => queue_notify_off: ReadOnly<u16>),
        (0x20 => queue_desc_lo: ReadWrite<u32>),
        (0x24 => queue_desc_hi: ReadWrite<u32>),
        (0x28 => queue_driver_lo: ReadWrite<u32>),
        (0x2c => queue_driver_hi: ReadWrite<u32>),
        (0x30 => queue_device_lo: ReadWrite<u32>),
        (0x34 => queue_device_hi: ReadWrite<u32>),
        (0x38 => @END),
    }
}

/// Why [`Disk::open`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskError {
    /// The guest DT has no ECAM host bridge.
    NoHostBridge,
    /// No virtio-blk function on its root bus.
    NoDisk,
    /// Its BARs do not fit the bridge's window.
    NoRoom,
    /// A virtio capability is missing or points outside the BARs.
    BadCapabilities,
    /// The device refused the features or the queue.
    Refused,
}

#[repr(C, align(4096))]
struct Queue {
    desc: [[u64; 2]; NUM],
    avail_flags: u16,
    avail_idx: u16,
    avail_ring: [u16; NUM],
    _pad: [u8; 4096 - 16 * NUM - 4 - 2 * NUM],
    used_flags: u16,
    used_idx: u16,
    used_ring: [[u32; 2]; NUM],
    header: [u64; 2],
    status: u8,
}

/// The driver of one virtio-blk PCI function.
pub struct Disk {
    common: &'static CommonCfg,
    doorbell: u64,
    queue: Box<Queue>,
    avail: u16,
    /// Sectors of 512 bytes the device says it has.
    pub capacity: u64,
    /// Whether the device has a write cache to flush (`VIRTIO_BLK_F_FLUSH` negotiated).
    pub flush: bool,
    /// Where it sits: bus, device, function.
    pub location: (u8, u8, u8),
}

/// Where a virtio capability of `kind` points: the address of its structure and, for the
/// notify capability, its multiplier.
fn capability(f: &Function, kind: u8) -> Option<(u64, u32)> {
    let at = f.capabilities(CAP_VENDOR).find(|&at| f.read8(at + 3) == kind)?;
    let bar = f.read8(at + 4);
    if bar > 5 {
        return None;
    }
    let base = f.bar(bar);
    (base != 0).then(|| (base + u64::from(f.read32(at + 8)), f.read32(at + 16)))
}

impl Disk {
    /// Finds the first virtio-blk function of the partition's host bridge, places its BARs and
    /// brings it up with one queue.
    pub fn open() -> Result<Disk, DiskError> {
        let mut host = Host::find().ok_or(DiskError::NoHostBridge)?;
        let f = host
            .functions()
            .find(|f| matches!(f.id(), (VENDOR, BLK_MODERN | BLK_TRANSITIONAL)))
            .ok_or(DiskError::NoDisk)?;
        if !host.assign_bars(&f) {
            return Err(DiskError::NoRoom);
        }
        let (common, _) = capability(&f, CAP_COMMON).ok_or(DiskError::BadCapabilities)?;
        let (notify, multiplier) = capability(&f, CAP_NOTIFY).ok_or(DiskError::BadCapabilities)?;
        let (device, _) = capability(&f, CAP_DEVICE).ok_or(DiskError::BadCapabilities)?;
        // SAFETY: the common configuration structure lies in a BAR just placed in the window of
        // the host bridge this partition owns (device memory in the SDK's map), for good.
        let common: &'static CommonCfg = unsafe { &*(common as *const CommonCfg) };
        // SAFETY: the queue is plain memory the device reads and writes through DMA only while
        // the `Disk` lives (a reset precedes any reuse); zeroed is a valid empty queue.
        let queue: Box<Queue> = unsafe { Box::new_zeroed().assume_init() };
        let mut disk = Disk {
            common,
            doorbell: 0,
            queue,
            avail: 0,
            capacity: 0,
            flush: false,
            location: (f.bus, f.device, f.function),
        };
        let c = disk.common;
        c.device_status.set(0);
        while c.device_status.get() != 0 {}
        c.device_status.set(ACKNOWLEDGE | DRIVER);
        let mut offered = 0u64;
        for half in 0..2 {
            c.device_feature_select.set(half);
            offered |= u64::from(c.device_feature.get()) << (32 * half);
        }
        let accepted = offered & (F_VERSION_1 | F_ACCESS_PLATFORM | F_FLUSH);
        if accepted & F_VERSION_1 == 0 {
            return Err(DiskError::Refused);
        }
        for half in 0..2 {
            c.driver_feature_select.set(half);
            c.driver_feature.set((accepted >> (32 * half)) as u32);
        }
        c.device_status.set(ACKNOWLEDGE | DRIVER | FEATURES_OK);
        if c.device_status.get() & FEATURES_OK == 0 {
            return Err(DiskError::Refused);
        }
        disk.flush = accepted & F_FLUSH != 0;
        c.queue_select.set(0);
        if usize::from(c.queue_size.get()) < NUM {
            return Err(DiskError::Refused);
        }
        c.queue_size.set(NUM as u16);
        let q = &*disk.queue;
        let halves = |a: u64| (a as u32, (a >> 32) as u32);
        let (lo, hi) = halves(addr_of!(q.desc) as u64);
        c.queue_desc_lo.set(lo);
        c.queue_desc_hi.set(hi);
        let (lo, hi) = halves(addr_of!(q.avail_flags) as u64);
        c.queue_driver_lo.set(lo);
        c.queue_driver_hi.set(hi);
        let (lo, hi) = halves(addr_of!(q.used_flags) as u64);
        c.queue_device_lo.set(lo);
        c.queue_device_hi.set(hi);
        disk.doorbell = notify + u64::from(c.queue_notify_off.get()) * u64::from(multiplier);
        // Polled: no used-buffer interrupts.
        disk.queue.avail_flags = 1;
        c.queue_enable.set(1);
        c.device_status.set(ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
        // SAFETY: `capacity`, the first field of the device configuration, in the BAR.
        disk.capacity = unsafe {
            u64::from(read_volatile(device as *const u32))
                | u64::from(read_volatile((device + 4) as *const u32)) << 32
        };
        Ok(disk)
    }

    /// Carries out one request: `kind` ([`T_IN`], [`T_OUT`], [`T_FLUSH`]) on `len` bytes at
    /// `data` from `sector`; returns the device's status ([`S_IOERR`] if it never answers).
    ///
    /// # Safety
    /// `data` must be `len` bytes of the partition's own memory that nothing else uses until
    /// this returns (the device reads or writes them).
    pub unsafe fn request(&mut self, kind: u32, sector: u64, data: *mut u8, len: u32) -> u8 {
        let q = &mut *self.queue;
        q.header = [u64::from(kind), sector];
        q.status = 0xff;
        let writes = if kind == T_IN { WRITE } else { 0 };
        let status = addr_of_mut!(q.status) as u64;
        q.desc[0] = [addr_of!(q.header) as u64, 16 | u64::from(NEXT) << 32 | 1 << 48];
        let last = if len == 0 {
            1
        } else {
            q.desc[1] = [data as u64, u64::from(len) | u64::from(writes | NEXT) << 32 | 2 << 48];
            2
        };
        q.desc[last] = [status, 1 | u64::from(WRITE) << 32];
        q.avail_ring[usize::from(self.avail) % NUM] = 0;
        self.avail = self.avail.wrapping_add(1);
        fence(Ordering::SeqCst);
        // SAFETY: the driver ring index of this partition's queue, read by the device.
        unsafe { write_volatile(addr_of_mut!(q.avail_idx), self.avail) };
        fence(Ordering::SeqCst);
        // SAFETY: the queue's doorbell, in the notify capability's BAR.
        unsafe { write_volatile(self.doorbell as *mut u16, 0) };
        let start = time::now();
        // SAFETY: the device ring's index and the status byte, written by the device.
        while unsafe { read_volatile(addr_of!(q.used_idx)) } != self.avail {
            if start.elapsed() > TIMEOUT {
                return S_IOERR;
            }
            core::hint::spin_loop();
        }
        fence(Ordering::SeqCst);
        // SAFETY: as above.
        unsafe { read_volatile(addr_of!(q.status)) }
    }
}
