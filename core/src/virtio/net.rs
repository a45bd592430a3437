//! A virtio link between partitions: each has a virtio-net (or virtio-vsock) device, and a
//! packet one transmits is copied into a receive buffer of the other (of two), or, on a link of
//! more than two (a small switch, virtio-net only), of the one its destination MAC was learned
//! behind, or of all others. The hypervisor moves bytes between the drivers' queues and never
//! looks inside them, but for a switch's MAC addresses, the vsock addresses (`vsock`) and
//! virtio-net's `num_buffers` (docs/virtio.md).
#![forbid(unsafe_code)]

use super::mmio::{Effect, Transport, DEVICE_NET, DEVICE_VSOCK, F_VERSION_1, INT_USED_BUFFER, NET_F_MAC};
use alloc::vec;
use alloc::vec::Vec;

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

pub use tantalum_config::virtio::net::MAX_PORTS;
/// MAC addresses a switch remembers (each port's own, then those learned from frames).
const LEARNED_MAX: usize = 32;
const _: () = assert!(MAX_PORTS <= LEARNED_MAX, "every port's own address is learned");

/// What the caller must do after an access: the value read, and which endpoints' device
/// interrupts to raise (by port, the endpoint's position in the link).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    pub value: u64,
    pub interrupt: [bool; MAX_PORTS],
    /// A device that failed during this access (for the console report).
    pub failed: [Option<QueueError>; MAX_PORTS],
}

/// The devices of a link (one per endpoint, a port) and its counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub kind: VirtioKind,
    /// The endpoints' vsock addresses (vsock links).
    cids: Vec<u64>,
    pub devices: Vec<Transport>,
    /// Packets moved, per sending port.
    pub packets: Vec<u64>,
    /// Packets dropped, per sending port: a receiver had no driver, or its buffer was too short;
    /// on a switch, a port with no free buffer for a frame to several ports.
    pub dropped: Vec<u64>,
    /// A switch's forwarding table: MAC address and port, most recent first.
    learned: heapless::Vec<([u8; 6], usize), LEARNED_MAX>,
}

/// Ports, as a bit set.
type Ports = u32;

impl Link {
    /// Link `id` (its index among the system's links) of `kind` between the partitions
    /// `endpoints` (at most [`MAX_PORTS`]), every device reset.
    pub fn new(id: usize, kind: VirtioKind, endpoints: &[PartitionId]) -> Self {
        let endpoints = &endpoints[..endpoints.len().min(MAX_PORTS)];
        let device = |e: usize| match kind {
            VirtioKind::Net => Transport::new(DEVICE_NET, F_VERSION_1 | NET_F_MAC, &mac(id, e)),
            VirtioKind::Vsock => Transport::new(DEVICE_VSOCK, F_VERSION_1, &vsock::config(endpoints[e])),
        };
        let ports = endpoints.len();
        Link {
            kind,
            cids: endpoints.iter().map(|&e| vsock::cid(e)).collect(),
            devices: (0..ports).map(device).collect(),
            packets: vec![0; ports],
            dropped: vec![0; ports],
            learned: (0..ports).map(|p| (mac(id, p), p)).collect(),
        }
    }

    /// Resets endpoint `side`'s device (its partition stops or restarts).
    pub fn reset(&mut self, side: usize) {
        if let Some(d) = self.devices.get_mut(side) {
            d.reset();
        }
    }

    /// An access by endpoint `side` to its device's window; `owners` are the endpoints'
    /// partitions, in link order.
    pub fn access(
        &mut self,
        side: usize,
        owners: &[Owner<'_>],
        mem: &mut dyn GuestMemory,
        offset: u64,
        size: u8,
        write: Option<u64>,
    ) -> Answer {
        let mut out = Answer::default();
        let ports = self.devices.len().min(owners.len());
        if side >= ports {
            return out;
        }
        let Some(value) = write else {
            out.value = self.devices[side].read(offset, size);
            return out;
        };
        let before: [Option<QueueError>; MAX_PORTS] =
            core::array::from_fn(|p| self.devices.get(p).and_then(|d| d.error));
        match self.devices[side].write(owners[side], offset, size, value) {
            Effect::None => {}
            Effect::Interrupt => out.interrupt[side] = true,
            Effect::Notify(q) => {
                // Transmit kicked: move from this port; receive refilled: move to it, from every
                // other port (on a switch any of them may hold a frame for it).
                let senders: Ports =
                    if usize::from(q) == TRANSMITQ { 1 << side } else { all(ports) & !(1 << side) };
                for from in each(senders) {
                    let raised = self.pump(from, owners, mem);
                    for p in each(raised) {
                        out.interrupt[p] = true;
                    }
                }
            }
        }
        for (p, failed) in out.failed.iter_mut().enumerate().take(ports) {
            *failed = self.devices[p].error.filter(|_| self.devices[p].error != before[p]);
        }
        out
    }

    /// Where a frame from port `from` goes: the peer on a two-port link (whatever its address);
    /// on a switch, the port that sent from its destination MAC, or every other port for a
    /// broadcast, multicast or unknown destination.
    fn targets(&self, from: usize, dst: [u8; 6]) -> Ports {
        let ports = self.devices.len();
        let others = all(ports) & !(1 << from);
        if ports == 2 || dst[0] & 1 != 0 {
            return others;
        }
        match self.learned.iter().find(|(m, _)| *m == dst) {
            Some(&(_, p)) if p == from => 0, // for itself: nothing to move
            Some(&(_, p)) => 1 << p,
            None => others,
        }
    }

    /// A switch notes that `src` is behind port `from`.
    fn learn(&mut self, src: [u8; 6], from: usize) {
        if self.devices.len() <= 2 || src[0] & 1 != 0 {
            return;
        }
        match self.learned.iter().position(|(m, _)| *m == src) {
            Some(0) if self.learned[0].1 == from => {}
            Some(i) => {
                self.learned.remove(i);
                let _ = self.learned.insert(0, (src, from)); // one removed: there is room
            }
            None => {
                self.learned.truncate(LEARNED_MAX - 1);
                let _ = self.learned.insert(0, (src, from)); // truncated: there is room
            }
        }
    }

    /// Moves every packet port `from` has queued to where it goes, while there is room: a frame
    /// for one port waits for a receive buffer there; a frame for several is delivered to those
    /// with a buffer now and dropped for the others (a busy port does not hold up the rest).
    /// Returns the ports that need an interrupt.
    pub fn pump(&mut self, from: usize, owners: &[Owner<'_>], mem: &mut dyn GuestMemory) -> Ports {
        let ports = self.devices.len().min(owners.len());
        if from >= ports {
            return 0;
        }
        let Some(mut tx_ring) = self.devices[from].ring(TRANSMITQ).copied() else { return 0 };
        let mut rx_rings: [Option<Ring>; MAX_PORTS] = core::array::from_fn(|p| {
            (p < ports && p != from).then(|| self.devices[p].ring(RECEIVEQ).copied()).flatten()
        });
        let mut error: [Option<QueueError>; MAX_PORTS] = [None; MAX_PORTS];
        let mut completed: Ports = 0;
        'frames: loop {
            let tx_chain = match tx_ring.peek(mem) {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    error[from] = Some(e);
                    break;
                }
            };
            let (dst, src) = match self.addresses(&tx_ring, owners[from], mem, tx_chain) {
                Ok(a) => a,
                Err(e) => {
                    error[from] = Some(e);
                    break;
                }
            };
            let targets = self.targets(from, dst);
            let single = targets.count_ones() == 1;
            let mut delivered = false;
            for to in each(targets) {
                let Some(rx) = rx_rings[to].as_mut() else { continue }; // no driver: lost there
                let rx_chain = match rx.peek(mem) {
                    Ok(Some(c)) => c,
                    Ok(None) if single => break 'frames, // it waits for a receive buffer
                    Ok(None) => continue,
                    Err(e) => {
                        error[to] = Some(e);
                        break 'frames;
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
                        rx.take();
                        rx.complete(mem, rx_chain.head, written);
                        completed |= 1 << to;
                        delivered = true;
                    }
                    // Longer than the receive buffer (or, vsock, not for the receiver): not
                    // delivered there, the buffer stays the receiver's.
                    Ok(None) => {}
                    Err((receiver, e)) => {
                        error[if receiver { to } else { from }] = Some(e);
                        break 'frames;
                    }
                }
            }
            if delivered {
                self.packets[from] += 1;
            } else if let Err(e) = check(&tx_ring, owners[from], mem, tx_chain) {
                // Dropped everywhere: the chain must still be well-formed.
                error[from] = Some(e);
                break;
            } else {
                self.dropped[from] += 1;
            }
            tx_ring.take();
            tx_ring.complete(mem, tx_chain.head, 0);
            completed |= 1 << from;
            self.learn(src, from);
        }
        // Write the positions back before deciding on interrupts.
        if let Some(r) = self.devices[from].ring(TRANSMITQ) {
            *r = tx_ring;
        }
        for (p, ring) in rx_rings.iter().enumerate().take(ports) {
            if let (Some(r), Some(new)) = (self.devices[p].ring(RECEIVEQ), ring) {
                *r = *new;
            }
        }
        let mut raise: Ports = 0;
        for (p, error) in error.iter().enumerate().take(ports) {
            let queue = if p == from { TRANSMITQ } else { RECEIVEQ };
            let dev = &mut self.devices[p];
            if let Some(e) = *error {
                dev.fail(e);
                raise |= 1 << p;
            } else if completed & (1 << p) != 0 && dev.ring(queue).is_some_and(|r| r.wants_interrupt(mem)) {
                dev.interrupt_status |= INT_USED_BUFFER;
                raise |= 1 << p;
            }
        }
        raise
    }

    /// A virtio-net frame's destination and source MAC addresses (after the virtio-net
    /// header; zeros where the frame is shorter), read without taking the chain; a vsock
    /// packet has none (zeros: its link has two ports).
    fn addresses(
        &self,
        ring: &Ring,
        owner: Owner<'_>,
        mem: &mut dyn GuestMemory,
        mut chain: Chain,
    ) -> Result<([u8; 6], [u8; 6]), QueueError> {
        let mut head = [0u8; NET_HDR_LEN as usize + 12];
        if self.kind != VirtioKind::Net || self.devices.len() <= 2 {
            return Ok(([0; 6], [0; 6]));
        }
        let mut at = 0;
        while at < head.len() {
            let Some(s) = ring.next_segment(owner, mem, &mut chain, false)? else { break };
            let n = (s.len as usize).min(head.len() - at);
            mem.read(s.pa, &mut head[at..at + n]);
            at += n;
        }
        let mac = |o: usize| <[u8; 6]>::try_from(&head[o..o + 6]).unwrap_or_default();
        Ok((mac(NET_HDR_LEN as usize), mac(NET_HDR_LEN as usize + 6)))
    }
}

/// Every port of a link with `ports` ports.
fn all(ports: usize) -> Ports {
    (1u32 << ports.min(MAX_PORTS)) - 1
}

/// The ports in `set`.
fn each(set: Ports) -> impl Iterator<Item = usize> {
    (0..MAX_PORTS).filter(move |&p| set & (1 << p) != 0)
}

/// Walks a transmit chain whose packet goes nowhere: it must still be well-formed.
fn check(
    ring: &Ring,
    owner: Owner<'_>,
    mem: &mut dyn GuestMemory,
    mut chain: Chain,
) -> Result<(), QueueError> {
    while ring.next_segment(owner, mem, &mut chain, false)?.is_some() {}
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
