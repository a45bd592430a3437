//! What a virtio-vsock link adds to moving packets (virtio 1.2 §5.10): addresses. Each endpoint's
//! device has a context ID (CID) derived from its partition; every packet starts with a 44-byte
//! header naming source and destination CIDs and ports. The hypervisor moves packets like frames
//! (`net::Link`) and, at the receiving end, checks and sets the two CIDs: the source is always the
//! sending partition's (no partition can speak for another), and a packet addressed to anyone but
//! the peer is dropped. Ports and everything else pass through unread.
#![forbid(unsafe_code)]

use super::GuestMemory;
use crate::addr::HostPhys;
use crate::config::PartitionId;

/// Bytes of `struct virtio_vsock_hdr`.
pub const HDR_LEN: u32 = 44;
/// Offsets of the header's `src_cid` and `dst_cid` (little-endian u64 each).
const SRC_CID: u64 = 0;
const DST_CID: u64 = 8;
/// CIDs 0-2 are reserved (hypervisor, local, host): partitions start above.
const FIRST_CID: u64 = 3;

/// The CID of partition `id`: its vsock address on its link.
pub const fn cid(id: PartitionId) -> u64 {
    FIRST_CID + id as u64
}

/// The device configuration space: `guest_cid`.
pub const fn config(id: PartitionId) -> [u8; 8] {
    cid(id).to_le_bytes()
}

/// Checks and completes the header of a packet just copied into a receive buffer whose first
/// segment starts at `first` (`len` bytes there, `written` bytes in all), sent by the partition
/// with CID `from` to the one with CID `to`. Returns whether to deliver it: false for a packet
/// shorter than a header or addressed to another CID.
pub fn deliver(
    mem: &mut dyn GuestMemory,
    first: HostPhys,
    len: u32,
    written: u32,
    from: u64,
    to: u64,
) -> bool {
    if len < HDR_LEN || written < HDR_LEN {
        return false;
    }
    if mem.read_u64(HostPhys(first.as_u64() + DST_CID)) != to {
        return false;
    }
    mem.write(HostPhys(first.as_u64() + SRC_CID), &from.to_le_bytes());
    true
}

/// `type` of a stream socket's packets.
pub const TYPE_STREAM: u16 = 1;

/// Packet operations (`op`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Request = 1,
    Response = 2,
    Rst = 3,
    Shutdown = 4,
    Rw = 5,
    CreditUpdate = 6,
    CreditRequest = 7,
}

impl Op {
    pub fn from(op: u16) -> Option<Op> {
        Some(match op {
            1 => Op::Request,
            2 => Op::Response,
            3 => Op::Rst,
            4 => Op::Shutdown,
            5 => Op::Rw,
            6 => Op::CreditUpdate,
            7 => Op::CreditRequest,
            _ => return None,
        })
    }
}

/// A packet header, as the wire has it (little-endian).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub src_cid: u64,
    pub dst_cid: u64,
    pub src_port: u32,
    pub dst_port: u32,
    pub len: u32,
    pub kind: u16,
    pub op: u16,
    pub buf_alloc: u32,
    pub fwd_cnt: u32,
}

impl Header {
    /// The header at the start of `b`, if `b` holds one.
    pub fn parse(b: &[u8]) -> Option<Header> {
        let u32_at = |o: usize| Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?));
        let u16_at = |o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?));
        let u64_at = |o: usize| Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?));
        Some(Header {
            src_cid: u64_at(0)?,
            dst_cid: u64_at(8)?,
            src_port: u32_at(16)?,
            dst_port: u32_at(20)?,
            len: u32_at(24)?,
            kind: u16_at(28)?,
            op: u16_at(30)?,
            buf_alloc: u32_at(36)?,
            fwd_cnt: u32_at(40)?,
        })
    }

    /// Writes the header into the first [`HDR_LEN`] bytes of `b` (flags zero).
    pub fn write(&self, b: &mut [u8]) {
        b[0..8].copy_from_slice(&self.src_cid.to_le_bytes());
        b[8..16].copy_from_slice(&self.dst_cid.to_le_bytes());
        b[16..20].copy_from_slice(&self.src_port.to_le_bytes());
        b[20..24].copy_from_slice(&self.dst_port.to_le_bytes());
        b[24..28].copy_from_slice(&self.len.to_le_bytes());
        b[28..30].copy_from_slice(&self.kind.to_le_bytes());
        b[30..32].copy_from_slice(&self.op.to_le_bytes());
        b[32..36].fill(0); // flags
        b[36..40].copy_from_slice(&self.buf_alloc.to_le_bytes());
        b[40..44].copy_from_slice(&self.fwd_cnt.to_le_bytes());
    }
}

/// Bytes a sender may send now: the receiver's space `buf_alloc` less what it has not consumed
/// of the `tx_cnt` bytes sent (`fwd_cnt` consumed); the counters wrap (virtio 1.2 §5.10.6.3).
pub const fn credit(buf_alloc: u32, fwd_cnt: u32, tx_cnt: u32) -> u32 {
    buf_alloc.saturating_sub(tx_cnt.wrapping_sub(fwd_cnt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_credit_counts_in_flight_data() {
        let h = Header {
            src_cid: 3,
            dst_cid: 4,
            src_port: 1024,
            dst_port: 7,
            len: 5,
            kind: TYPE_STREAM,
            op: Op::Rw as u16,
            buf_alloc: 262_144,
            fwd_cnt: 10,
        };
        let mut b = [0u8; HDR_LEN as usize];
        h.write(&mut b);
        assert_eq!(Header::parse(&b), Some(h));
        assert_eq!(Header::parse(&b[..40]), None, "short");
        assert_eq!(
            u64::from_le_bytes(b[DST_CID as usize..][..8].try_into().unwrap()),
            4,
            "the offsets the link checks"
        );
        assert_eq!(Op::from(h.op), Some(Op::Rw));
        assert_eq!(Op::from(8), None);
        assert_eq!(credit(100, 30, 90), 40, "60 bytes the peer has not consumed");
        assert_eq!(credit(100, 30, 200), 0, "never negative");
        assert_eq!(credit(100, u32::MAX - 9, 20), 70, "counters wrap");
    }
}
