//! A virtio-net interface on a Tantalum link (docs/virtio.md): the partition is an ordinary
//! virtio driver of the device the hypervisor gives it (the `n`-th `virtio,mmio` node with a
//! `tantalum,peer` in its guest device tree, where its board places virtio devices), with its
//! queues in its own memory. Polled (no interrupt): [`Net::send`] and [`Net::recv`] move whole
//! Ethernet frames; the 12-byte virtio-net header is added and removed here.

use tantalum_core::virtio::mmio::{DEVICE_NET, NET_F_MAC};

pub use crate::virtq::DeviceError as NetError;
use crate::virtq::{Device, Virtq, NUM};

/// Bytes of a buffer: the virtio-net header and a 1514-byte frame, rounded up.
const BUF: usize = 1536;
/// Bytes of the virtio-net header (`virtio_net_hdr_v1`).
const HDR: usize = 12;
const RX: u32 = 0;
const TX: u32 = 1;

/// The driver's side of one virtio-net device.
pub struct Net {
    device: Device,
    rx: Virtq<BUF>,
    tx: Virtq<BUF>,
    /// Transmit buffers not yet returned by the device.
    in_flight: usize,
    pub mac: [u8; 6],
}

impl Net {
    /// Probes the partition's `n`-th virtio device and brings it up as virtio-net, with every
    /// receive buffer posted.
    pub fn open(n: usize) -> Result<Net, NetError> {
        let device = Device::open(n, DEVICE_NET, NET_F_MAC as u32)?;
        let (mut rx, tx) = (Virtq::new(true), Virtq::new(false));
        device.add_queue(RX, &rx)?;
        device.add_queue(TX, &tx)?;
        let mac = core::array::from_fn(|i| device.config_byte(i));
        device.driver_ok();
        rx.post_all();
        device.notify(RX);
        Ok(Net { device, rx, tx, in_flight: 0, mac })
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
        let slot = self.tx.next_slot();
        let buf = self.tx.buffer(slot);
        buf[..HDR].fill(0);
        buf[HDR..HDR + frame.len()].copy_from_slice(frame);
        self.in_flight += 1;
        self.tx.post(slot, (HDR + frame.len()) as u32);
        self.device.notify(TX);
        true
    }

    /// The next received frame, copied into `out` (cut to its length); `None` if none is there.
    pub fn recv(&mut self, out: &mut [u8]) -> Option<usize> {
        let (head, len) = self.rx.take_used()?;
        let len = (len as usize).clamp(HDR, BUF) - HDR;
        let n = len.min(out.len());
        out[..n].copy_from_slice(&self.rx.buffer(head)[HDR..HDR + n]);
        self.rx.post(head, BUF as u32);
        self.device.notify(RX);
        Some(n)
    }

    /// Takes back transmit buffers the device has returned; whether there was one.
    fn reclaim(&mut self) -> bool {
        let mut any = false;
        while self.tx.take_used().is_some() {
            self.in_flight -= 1;
            any = true;
        }
        any
    }
}
