//! The driver side of a virtio-mmio device (virtio 1.2 §4.2) and its split virtqueues, shared by
//! the SDK's virtio drivers (`net`, `vsock`): the device is one the hypervisor gives the
//! partition (a `virtio,mmio` node with a `tantalum,peer` in its guest device tree), the queues
//! and their buffers live in the partition's own memory. Polled: the driver asks for no
//! interrupts.

use alloc::alloc::{alloc_zeroed, handle_alloc_error, Layout};
use alloc::boxed::Box;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{fence, Ordering};

use tantalum_core::virtio::mmio::{
    reg, F_VERSION_1, MAGIC, STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FEATURES_OK,
};

/// Entries per queue.
pub const NUM: usize = 16;
const DESC_F_WRITE: u16 = 2;
/// `VIRTQ_AVAIL_F_NO_INTERRUPT`: these drivers poll.
const AVAIL_F_NO_INTERRUPT: u16 = 1;

/// Why a device could not be brought up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceError {
    /// No such virtio device (in the guest device tree, or at its address), or not of that type.
    NoDevice,
    /// The device refused the features or a queue.
    Refused,
}

/// One virtio-mmio device's register window.
pub struct Device {
    base: usize,
}

impl Device {
    /// The partition's `n`-th virtio device, if it is of type `device_id`; reset, acknowledged,
    /// and with `features` (bits 0-31; VERSION_1 is always asked for) negotiated.
    pub fn open(n: usize, device_id: u32, features: u32) -> Result<Device, DeviceError> {
        let base = crate::dt::emulated_address("virtio,mmio", "tantalum,peer", n)
            .ok_or(DeviceError::NoDevice)? as usize;
        let dev = Device { base };
        if dev.read(reg::MAGIC) != MAGIC
            || dev.read(reg::VERSION) != 2
            || dev.read(reg::DEVICE_ID) != device_id
        {
            return Err(DeviceError::NoDevice);
        }
        dev.write(reg::STATUS, 0);
        dev.write(reg::STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        dev.write(reg::DRIVER_FEATURES_SEL, 0);
        dev.write(reg::DRIVER_FEATURES, features);
        dev.write(reg::DRIVER_FEATURES_SEL, 1);
        dev.write(reg::DRIVER_FEATURES, (F_VERSION_1 >> 32) as u32);
        dev.write(reg::STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
        if dev.read(reg::STATUS) & STATUS_FEATURES_OK == 0 {
            return Err(DeviceError::Refused);
        }
        Ok(dev)
    }

    /// The first of the partition's virtio devices of type `device_id` (as [`Device::open`]).
    pub fn first(device_id: u32, features: u32) -> Result<Device, DeviceError> {
        (0..tantalum_core::virtio::MAX_VIRTIO_PER_PARTITION)
            .map(|n| Device::open(n, device_id, features))
            .find(|d| d.as_ref().map_or_else(|e| *e != DeviceError::NoDevice, |_| true))
            .unwrap_or(Err(DeviceError::NoDevice))
    }

    /// Hands queue `q` to the device.
    pub fn add_queue<const B: usize>(&self, q: u32, queue: &Virtq<B>) -> Result<(), DeviceError> {
        let ring = &*queue.ring;
        let desc = ring.desc.as_ptr() as u64;
        let avail = core::ptr::addr_of!(ring.avail_flags) as u64;
        let used = core::ptr::addr_of!(ring.used_flags) as u64;
        self.write(reg::QUEUE_SEL, q);
        self.write(reg::QUEUE_NUM, NUM as u32);
        for (r, v) in
            [(reg::QUEUE_DESC_LOW, desc), (reg::QUEUE_DRIVER_LOW, avail), (reg::QUEUE_DEVICE_LOW, used)]
        {
            self.write(r, v as u32);
            self.write(r + 4, (v >> 32) as u32);
        }
        self.write(reg::QUEUE_READY, 1);
        if self.read(reg::QUEUE_READY) != 1 {
            return Err(DeviceError::Refused);
        }
        Ok(())
    }

    /// Tells the device the driver is ready (after its queues).
    pub fn driver_ok(&self) {
        self.write(reg::STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
    }

    /// Tells the device that queue `q` has new buffers.
    pub fn notify(&self, q: u32) {
        self.write(reg::QUEUE_NOTIFY, q);
    }

    /// Byte `i` of the device's configuration space.
    pub fn config_byte(&self, i: usize) -> u8 {
        // SAFETY: as in `read`: a byte of the device's configuration space.
        unsafe { crate::mmio::read8(self.base + reg::CONFIG as usize + i) }
    }

    fn read(&self, offset: u64) -> u32 {
        // SAFETY: the device window is this partition's trapped virtio page (identity-mapped
        // device memory); a 32-bit load is a register read.
        unsafe { crate::mmio::read32(self.base + offset as usize) }
    }

    fn write(&self, offset: u64, value: u32) {
        // SAFETY: as in `read`; a 32-bit store is a register write.
        unsafe { crate::mmio::write32(self.base + offset as usize, value) }
    }
}

#[repr(C, align(16))]
#[derive(Clone, Copy)]
struct Desc {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

/// A split virtqueue and one `B`-byte buffer per descriptor, in one allocation.
#[repr(C, align(4096))]
struct Ring<const B: usize> {
    desc: [Desc; NUM],
    avail_flags: u16,
    avail_idx: u16,
    avail_ring: [u16; NUM],
    used_flags: u16,
    used_idx: u16,
    used_ring: [[u32; 2]; NUM],
    buffers: [[u8; B]; NUM],
}

/// A queue the driver fills (transmit: the device reads its buffers) or the device fills
/// (receive, `device_writes`): descriptor `i` always names buffer `i`.
pub struct Virtq<const B: usize> {
    ring: Box<Ring<B>>,
    device_writes: bool,
    /// The next driver-ring index to publish, the next device-ring entry to read.
    avail: u16,
    used: u16,
}

impl<const B: usize> Virtq<B> {
    /// A zeroed queue on the heap (too large for the stack).
    pub fn new(device_writes: bool) -> Self {
        let layout = Layout::new::<Ring<B>>();
        // SAFETY: the layout is Ring's (not zero-sized); all-zero bytes are a valid Ring (plain
        // integers and arrays of them), and the allocation is handed to a Box of that type.
        let mut ring = unsafe {
            let p = alloc_zeroed(layout) as *mut Ring<B>;
            if p.is_null() {
                handle_alloc_error(layout);
            }
            Box::from_raw(p)
        };
        ring.avail_flags = AVAIL_F_NO_INTERRUPT;
        Virtq { ring, device_writes, avail: 0, used: 0 }
    }

    /// Buffer `i`.
    pub fn buffer(&mut self, i: u16) -> &mut [u8; B] {
        &mut self.ring.buffers[usize::from(i) % NUM]
    }

    /// The descriptor the next [`Virtq::post`] of a fresh buffer should use (transmit queues
    /// cycle through them; the caller keeps at most [`NUM`] in flight).
    pub fn next_slot(&self) -> u16 {
        self.avail % NUM as u16
    }

    /// Makes descriptor `i` (its own buffer, `len` bytes) available to the device.
    pub fn post(&mut self, i: u16, len: u32) {
        let i = i % NUM as u16;
        let ring = &mut *self.ring;
        let flags = if self.device_writes { DESC_F_WRITE } else { 0 };
        let addr = ring.buffers[usize::from(i)].as_ptr() as u64;
        ring.desc[usize::from(i)] = Desc { addr, len, flags, next: 0 };
        let slot = usize::from(self.avail) % NUM;
        // SAFETY: plain stores into this driver's own queue memory (volatile: the device reads it).
        unsafe { write_volatile(&mut ring.avail_ring[slot], i) };
        self.avail = self.avail.wrapping_add(1);
        // The entry and its descriptor are visible before the index that publishes them.
        fence(Ordering::SeqCst);
        // SAFETY: as above.
        unsafe { write_volatile(&mut ring.avail_idx, self.avail) };
        fence(Ordering::SeqCst);
    }

    /// Posts every buffer, whole (a receive queue's start).
    pub fn post_all(&mut self) {
        for i in 0..NUM as u16 {
            self.post(i, B as u32);
        }
    }

    /// The next device-ring entry: (descriptor, bytes the device wrote).
    pub fn take_used(&mut self) -> Option<(u16, u32)> {
        let ring = &*self.ring;
        // SAFETY: a load from this driver's own queue memory, which the device writes.
        let idx = unsafe { read_volatile(&ring.used_idx) };
        if idx == self.used {
            return None;
        }
        // The entry is read after the index that published it.
        fence(Ordering::SeqCst);
        let slot = usize::from(self.used) % NUM;
        // SAFETY: as above.
        let [head, len] = unsafe { read_volatile(&ring.used_ring[slot]) };
        self.used = self.used.wrapping_add(1);
        Some(((head as usize % NUM) as u16, len))
    }
}
