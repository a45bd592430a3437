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
