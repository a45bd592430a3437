//! A virtio-net interface on a Tantalum link (docs/virtio.md): the partition is an ordinary
//! virtio driver of the device the hypervisor gives it (the `n`-th `virtio,mmio` node with a
//! `tantalum,peer` in its guest device tree, where its board places virtio devices), with its
//! queues in its own memory. Polled (no interrupt): [`Net::send`] and [`Net::recv`] move whole
//! Ethernet frames; the 12-byte virtio-net header is added and removed here.

use alloc::alloc::{alloc_zeroed, handle_alloc_error, Layout};
use alloc::boxed::Box;
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{fence, Ordering};

use tantalum_core::virtio::mmio::{
    reg, DEVICE_NET, F_VERSION_1, MAGIC, NET_F_MAC, STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK,
    STATUS_FEATURES_OK,
};

/// Entries per queue.
const NUM: usize = 16;
/// Bytes of a buffer: the virtio-net header and a 1514-byte frame, rounded up.
const BUF: usize = 1536;
/// Bytes of the virtio-net header (`virtio_net_hdr_v1`).
const HDR: usize = 12;
const RX: u32 = 0;
const TX: u32 = 1;
const DESC_F_WRITE: u16 = 2;

/// Why [`Net::open`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetError {
    /// No virtio-net device `n` (in the guest device tree, or at its address).
    NoDevice,
    /// The device refused the features or a queue.
    Refused,
}

#[repr(C, align(16))]
#[derive(Clone, Copy)]
struct Desc {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

#[repr(C, align(4096))]
struct Queue {
    desc: [Desc; NUM],
    avail_flags: u16,
    avail_idx: u16,
    avail_ring: [u16; NUM],
    used_flags: u16,
    used_idx: u16,
    used_ring: [[u32; 2]; NUM],
    buffers: [[u8; BUF]; NUM],
}

/// The driver's side of one virtio-net device.
pub struct Net {
    base: usize,
    queues: [Box<Queue>; 2],
    /// Per queue: the next driver-ring index to publish, the next device-ring entry to read.
    avail: [u16; 2],
    used: [u16; 2],
    /// Transmit buffers not yet returned by the device.
    in_flight: usize,
    pub mac: [u8; 6],
}

impl Net {
    /// Probes the partition's `n`-th virtio device and brings it up as virtio-net, with every
    /// receive buffer posted.
    pub fn open(n: usize) -> Result<Net, NetError> {
        let base = crate::dt::emulated_address("virtio,mmio", "tantalum,peer", n).ok_or(NetError::NoDevice)?
            as usize;
        let mut net = Net {
            base,
            queues: [Queue::new(), Queue::new()],
            avail: [0; 2],
            used: [0; 2],
            in_flight: 0,
            mac: [0; 6],
        };
        if net.read(reg::MAGIC) != MAGIC
            || net.read(reg::VERSION) != 2
            || net.read(reg::DEVICE_ID) != DEVICE_NET
        {
            return Err(NetError::NoDevice);
        }
        net.write(reg::STATUS, 0);
        net.write(reg::STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        net.write(reg::DRIVER_FEATURES_SEL, 0);
        net.write(reg::DRIVER_FEATURES, NET_F_MAC as u32);
        net.write(reg::DRIVER_FEATURES_SEL, 1);
        net.write(reg::DRIVER_FEATURES, (F_VERSION_1 >> 32) as u32);
        net.write(reg::STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
        if net.read(reg::STATUS) & STATUS_FEATURES_OK == 0 {
            return Err(NetError::Refused);
        }
        for q in [RX, TX] {
            let queue = &net.queues[q as usize];
            let desc = queue.desc.as_ptr() as u64;
            let avail = core::ptr::addr_of!(queue.avail_flags) as u64;
            let used = core::ptr::addr_of!(queue.used_flags) as u64;
            net.write(reg::QUEUE_SEL, q);
            net.write(reg::QUEUE_NUM, NUM as u32);
            for (r, v) in
                [(reg::QUEUE_DESC_LOW, desc), (reg::QUEUE_DRIVER_LOW, avail), (reg::QUEUE_DEVICE_LOW, used)]
            {
                net.write(r, v as u32);
                net.write(r + 4, (v >> 32) as u32);
            }
            net.write(reg::QUEUE_READY, 1);
            if net.read(reg::QUEUE_READY) != 1 {
                return Err(NetError::Refused);
            }
        }
        for i in 0..6 {
            net.mac[i] = net.read_config_byte(i);
        }
        net.write(reg::STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
        for i in 0..NUM as u16 {
            net.post(RX, i, BUF as u32);
        }
        net.write(reg::QUEUE_NOTIFY, RX);
        Ok(net)
    }

    /// Sends one Ethernet frame (at most 1514 bytes); false if it is too long or the transmit
    /// queue stays full.
    pub fn send(&mut self, frame: &[u8]) -> bool {
        if frame.len() > BUF - HDR {
            return false;
        }
        while self.in_flight == NUM {
            if !self.reclaim() {
                core::hint::spin_loop();
            }
        }
        self.reclaim();
        let slot = self.avail[TX as usize] % NUM as u16;
        let buf = &mut self.queues[TX as usize].buffers[usize::from(slot)];
        buf[..HDR].fill(0);
        buf[HDR..HDR + frame.len()].copy_from_slice(frame);
        self.in_flight += 1;
        self.post(TX, slot, (HDR + frame.len()) as u32);
        self.write(reg::QUEUE_NOTIFY, TX);
        true
    }

    /// The next received frame, copied into `out` (cut to its length); `None` if none is there.
    pub fn recv(&mut self, out: &mut [u8]) -> Option<usize> {
        let (head, len) = self.take_used(RX)?;
        let head = (head as usize % NUM) as u16;
        let len = (len as usize).clamp(HDR, BUF) - HDR;
        let n = len.min(out.len());
        out[..n].copy_from_slice(&self.queues[RX as usize].buffers[usize::from(head)][HDR..HDR + n]);
        self.post(RX, head, BUF as u32);
        self.write(reg::QUEUE_NOTIFY, RX);
        Some(n)
    }

    /// Takes back transmit buffers the device has returned; whether there was one.
    fn reclaim(&mut self) -> bool {
        let mut any = false;
        while self.take_used(TX).is_some() {
            self.in_flight -= 1;
            any = true;
        }
        any
    }

    /// Makes descriptor `i` of queue `q` (its own buffer, `len` bytes) available.
    fn post(&mut self, q: u32, i: u16, len: u32) {
        let q = q as usize;
        let queue = &mut *self.queues[q];
        let flags = if q == RX as usize { DESC_F_WRITE } else { 0 };
        let addr = queue.buffers[usize::from(i)].as_ptr() as u64;
        queue.desc[usize::from(i)] = Desc { addr, len, flags, next: 0 };
        let slot = usize::from(self.avail[q]) % NUM;
        // SAFETY: plain stores into this driver's own queue memory (volatile: the device reads it).
        unsafe { write_volatile(&mut queue.avail_ring[slot], i) };
        self.avail[q] = self.avail[q].wrapping_add(1);
        // The entry and its descriptor are visible before the index that publishes them.
        fence(Ordering::SeqCst);
        // SAFETY: as above.
        unsafe { write_volatile(&mut queue.avail_idx, self.avail[q]) };
        fence(Ordering::SeqCst);
    }

    /// The next device-ring entry of queue `q`: (head, bytes written).
    fn take_used(&mut self, q: u32) -> Option<(u32, u32)> {
        let q = q as usize;
        let queue = &*self.queues[q];
        // SAFETY: a load from this driver's own queue memory, which the device writes.
        let idx = unsafe { read_volatile(&queue.used_idx) };
        if idx == self.used[q] {
            return None;
        }
        // The entry is read after the index that published it.
        fence(Ordering::SeqCst);
        let slot = usize::from(self.used[q]) % NUM;
        // SAFETY: as above.
        let [head, len] = unsafe { read_volatile(&queue.used_ring[slot]) };
        self.used[q] = self.used[q].wrapping_add(1);
        Some((head, len))
    }

    fn read(&self, offset: u64) -> u32 {
        // SAFETY: the device window is this partition's trapped virtio page (identity-mapped
        // device memory); a 32-bit load is a register read.
        unsafe { crate::mmio::read32(self.base + offset as usize) }
    }

    fn read_config_byte(&self, i: usize) -> u8 {
        // SAFETY: as in `read`: a byte of the device's configuration space.
        unsafe { crate::mmio::read8(self.base + reg::CONFIG as usize + i) }
    }

    fn write(&self, offset: u64, value: u32) {
        // SAFETY: as in `read`; a 32-bit store is a register write.
        unsafe { crate::mmio::write32(self.base + offset as usize, value) }
    }
}

impl Queue {
    /// A zeroed queue on the heap (too large for the stack).
    fn new() -> Box<Queue> {
        let layout = Layout::new::<Queue>();
        // SAFETY: the layout is Queue's (not zero-sized); all-zero bytes are a valid Queue (plain
        // integers and arrays of them), and the allocation is handed to a Box of that type.
        let mut q = unsafe {
            let p = alloc_zeroed(layout) as *mut Queue;
            if p.is_null() {
                handle_alloc_error(layout);
            }
            Box::from_raw(p)
        };
        q.avail_flags = 1; // VIRTQ_AVAIL_F_NO_INTERRUPT: this driver polls.
        q
    }
}
