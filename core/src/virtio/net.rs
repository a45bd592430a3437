//! A virtio link between two partitions: each has a virtio-net (or virtio-vsock) device, and a
//! packet one transmits is copied into a receive buffer of the other. The hypervisor moves bytes
//! between the two drivers' queues and never looks inside them, but for the vsock addresses
//! (`vsock`) and virtio-net's `num_buffers` (docs/virtio.md).
#![forbid(unsafe_code)]

use super::mmio::{Effect, Transport, DEVICE_NET, DEVICE_VSOCK, F_VERSION_1, INT_USED_BUFFER, NET_F_MAC};
use super::queue::{Chain, QueueError, Ring, Segment};
use super::{vsock, GuestMemory, Owner};
use crate::addr::HostPhys;
use crate::config::{PartitionId, VirtioKind};

/// Queue numbers of a virtio-net device (and a virtio-vsock device's first two).
pub const RECEIVEQ: usize = 0;
pub const TRANSMITQ: usize = 1;
/// Bytes of the virtio-net header (`struct virtio_net_hdr_v1`) at the start of every packet.
pub const NET_HDR_LEN: u32 = 12;
/// Offset of `num_buffers` in the header: the device sets it to 1 (no merged buffers).
const NUM_BUFFERS: u64 = 10;

/// The MAC address of endpoint `endpoint` of link `link`: locally administered, unique per link
/// and side.
pub const fn mac(link: usize, endpoint: usize) -> [u8; 6] {
    [0x52, 0x54, 0x00, 0x74, link as u8, endpoint as u8]
}

/// What the caller must do after an access: the value read, and which endpoints' device
/// interrupts to raise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    pub value: u64,
    pub interrupt: [bool; 2],
    /// A device that failed during this access (for the console report).
    pub failed: [Option<QueueError>; 2],
}

/// The two devices of a link and its counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub kind: VirtioKind,
    /// The endpoints' vsock addresses (vsock links).
    cids: [u64; 2],
    pub devices: [Transport; 2],
    /// Packets moved, per direction (index: the sender).
    pub packets: [u64; 2],
    /// Packets dropped, per sender: the receiver had no driver, or its buffer was too short.
    pub dropped: [u64; 2],
}

impl Link {
    /// Link `id` (its index among the system's links) of `kind` between the partitions
    /// `endpoints`, both devices reset.
    pub fn new(id: usize, kind: VirtioKind, endpoints: [PartitionId; 2]) -> Self {
        let device = |e: usize| match kind {
            VirtioKind::Net => Transport::new(DEVICE_NET, F_VERSION_1 | NET_F_MAC, &mac(id, e)),
            VirtioKind::Vsock => Transport::new(DEVICE_VSOCK, F_VERSION_1, &vsock::config(endpoints[e])),
        };
        let cids = endpoints.map(vsock::cid);
        Link { kind, cids, devices: [device(0), device(1)], packets: [0; 2], dropped: [0; 2] }
    }

    /// Resets endpoint `side`'s device (its partition stops or restarts).
    pub fn reset(&mut self, side: usize) {
        if let Some(d) = self.devices.get_mut(side) {
            d.reset();
        }
    }

    /// An access by endpoint `side` to its device's window; `owners` are the two endpoints'
    /// partitions, in link order.
    pub fn access(
        &mut self,
        side: usize,
        owners: [Owner<'_>; 2],
        mem: &mut dyn GuestMemory,
        offset: u64,
        size: u8,
        write: Option<u64>,
    ) -> Answer {
        let mut out = Answer::default();
        let side = side & 1;
        let Some(value) = write else {
            out.value = self.devices[side].read(offset, size);
            return out;
        };
        let before = [self.devices[0].error, self.devices[1].error];
        match self.devices[side].write(owners[side], offset, size, value) {
            Effect::None => {}
            Effect::Interrupt => out.interrupt[side] = true,
            Effect::Notify(q) => {
                // Transmit kicked: move from this side; receive refilled: move to it.
                let from = if usize::from(q) == TRANSMITQ { side } else { side ^ 1 };
                let raised = self.pump(from, owners, mem);
                out.interrupt[0] |= raised[0];
                out.interrupt[1] |= raised[1];
            }
        }
        for (s, failed) in out.failed.iter_mut().enumerate() {
            *failed = self.devices[s].error.filter(|_| self.devices[s].error != before[s]);
        }
        out
    }

    /// Moves every packet `from` has queued that `to` has room for; returns which endpoints
    /// need an interrupt.
    pub fn pump(&mut self, from: usize, owners: [Owner<'_>; 2], mem: &mut dyn GuestMemory) -> [bool; 2] {
        let to = from ^ 1;
        let mut completed = [false; 2];
        let mut raise = [false; 2];
        let [a, b] = &mut self.devices;
        let (tx_dev, rx_dev) = if from == 0 { (a, b) } else { (b, a) };
        let Some(tx) = tx_dev.ring(TRANSMITQ) else { return raise };
        let mut tx_ring = *tx;
        let mut rx_ring = rx_dev.ring(RECEIVEQ).copied();
        let mut error: [Option<QueueError>; 2] = [None, None];
        loop {
            let tx_chain = match tx_ring.peek(mem) {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    error[from] = Some(e);
                    break;
                }
            };
            let Some(rx) = rx_ring.as_mut() else {
                // No driver on the other side: the frame is lost, as on an unplugged cable.
                if let Err(e) = drain(&mut tx_ring, owners[from], mem, tx_chain) {
                    error[from] = Some(e);
                    break;
                }
                self.dropped[from] += 1;
                completed[from] = true;
                continue;
            };
            let rx_chain = match rx.peek(mem) {
                Ok(Some(c)) => c,
                Ok(None) => break, // The receiver has no buffer now: the packet waits.
                Err(e) => {
                    error[to] = Some(e);
                    break;
                }
            };
            let moved = transfer(&tx_ring, rx, owners[from], owners[to], mem, tx_chain, rx_chain);
            let kept = |(first, written): (Segment, u32)| match self.kind {
                VirtioKind::Net => {
                    set_num_buffers(mem, first, written);
                    Some(written)
                }
                VirtioKind::Vsock => {
                    vsock::deliver(mem, first.pa, first.len, written, self.cids[from], self.cids[to])
                        .then_some(written)
                }
            };
            match moved.map(|m| m.and_then(kept)) {
                Ok(Some(written)) => {
                    tx_ring.take();
                    tx_ring.complete(mem, tx_chain.head, 0);
                    rx.take();
                    rx.complete(mem, rx_chain.head, written);
                    self.packets[from] += 1;
                    completed = [true, true];
                }
                Ok(None) => {
                    // Longer than the receive buffer (or, vsock, not for the receiver): dropped,
                    // the buffer stays the receiver's.
                    tx_ring.take();
                    tx_ring.complete(mem, tx_chain.head, 0);
                    self.dropped[from] += 1;
                    completed[from] = true;
                }
                Err((side, e)) => {
                    error[if side { to } else { from }] = Some(e);
                    break;
                }
            }
        }
        // Write the positions back before deciding on interrupts.
        let (tx_dev, rx_dev) = {
            let [a, b] = &mut self.devices;
            if from == 0 {
                (a, b)
            } else {
                (b, a)
            }
        };
        if let Some(r) = tx_dev.ring(TRANSMITQ) {
            *r = tx_ring;
        }
        if let (Some(r), Some(new)) = (rx_dev.ring(RECEIVEQ), rx_ring) {
            *r = new;
        }
        let rings = [(from, TRANSMITQ), (to, RECEIVEQ)];
        for (side, queue) in rings {
            let dev = &mut self.devices[side];
            if let Some(e) = error[side] {
                dev.fail(e);
                raise[side] = true;
            } else if completed[side] && dev.ring(queue).is_some_and(|r| r.wants_interrupt(mem)) {
                dev.interrupt_status |= INT_USED_BUFFER;
                raise[side] = true;
            }
        }
        raise
    }
}

/// Checks a transmit chain whose packet is dropped (it must still be well-formed) and returns it.
fn drain(
    ring: &mut Ring,
    owner: Owner<'_>,
    mem: &mut dyn GuestMemory,
    mut chain: Chain,
) -> Result<(), QueueError> {
    while ring.next_segment(owner, mem, &mut chain, false)?.is_some() {}
    ring.take();
    ring.complete(mem, chain.head, 0);
    Ok(())
}

/// Copies a transmit chain into a receive chain. `Ok(Some((first, n)))`: `n` bytes written, the
/// receive chain's first segment `first`; `Ok(None)`: the packet did not fit (nothing is
/// returned to the receiver); `Err((receiver?, error))`.
fn transfer(
    tx: &Ring,
    rx: &Ring,
    tx_owner: Owner<'_>,
    rx_owner: Owner<'_>,
    mem: &mut dyn GuestMemory,
    mut tx_chain: Chain,
    mut rx_chain: Chain,
) -> Result<Option<(Segment, u32)>, (bool, QueueError)> {
    let mut src: Option<Segment> = None;
    let mut dst: Option<Segment> = None;
    let mut first: Option<Segment> = None;
    let mut written: u32 = 0;
    loop {
        if src.is_none_or(|s| s.len == 0) {
            src = tx.next_segment(tx_owner, mem, &mut tx_chain, false).map_err(|e| (false, e))?;
            match src {
                Some(s) if s.len == 0 => continue,
                Some(_) => {}
                None => break,
            }
        }
        if dst.is_none_or(|d| d.len == 0) {
            dst = rx.next_segment(rx_owner, mem, &mut rx_chain, true).map_err(|e| (true, e))?;
            match dst {
                Some(d) => first = first.or(Some(d)),
                None => {
                    // Out of receive buffer with bytes left to send: the packet does not fit.
                    // (Still check the rest of the transmit chain.)
                    while tx
                        .next_segment(tx_owner, mem, &mut tx_chain, false)
                        .map_err(|e| (false, e))?
                        .is_some()
                    {}
                    return Ok(None);
                }
            }
            continue;
        }
        let (Some(s), Some(d)) = (src.as_mut(), dst.as_mut()) else { break };
        let n = s.len.min(d.len);
        mem.copy(d.pa, s.pa, n as usize);
        s.pa = HostPhys(s.pa.as_u64() + u64::from(n));
        s.len -= n;
        d.pa = HostPhys(d.pa.as_u64() + u64::from(n));
        d.len -= n;
        written += n;
    }
    Ok(Some((first.unwrap_or(Segment { pa: HostPhys(0), len: 0 }), written)))
}

/// A virtio-net packet copied into a receive chain whose first segment is `first`: the device
/// sets `num_buffers` to 1 (no merged buffers).
fn set_num_buffers(mem: &mut dyn GuestMemory, first: Segment, written: u32) {
    if first.len >= NET_HDR_LEN && written >= NET_HDR_LEN {
        mem.write(HostPhys(first.pa.as_u64() + NUM_BUFFERS), &1u16.to_le_bytes());
    }
}
