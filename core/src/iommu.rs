//! What an IOMMU reports, arch-neutral: the arch layer decodes its fault records (SMMUv3 event
//! queue entries) into [`DmaFault`]s; policy (whose stream, what its `on-fault` says) is in
//! `config::stream_owner` and `partition::handle_exit`.
#![forbid(unsafe_code)]

use core::fmt;

/// Why the IOMMU refused a device's access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaFaultKind {
    /// The address is not mapped for the stream: outside its partition's memory.
    Translation,
    /// Mapped, but not for this kind of access.
    Permission,
    /// The address is wider than the stream's translation allows.
    AddressSize,
    /// The stream has no configuration (no partition owns it, or it is beyond the stream table).
    BadStream,
    /// The stream is disabled (its partition stopped).
    StreamDisabled,
    /// Any other fault record, with the IOMMU's own code.
    Other(u8),
}

/// One refused DMA access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaFault {
    /// The stream (on PCIe, the requester ID) that made the access.
    pub stream: u32,
    /// The address the device used (an intermediate-physical address of its partition).
    pub address: u64,
    /// A write (else a read); `None` when the record does not say.
    pub write: Option<bool>,
    pub kind: DmaFaultKind,
}

impl fmt::Display for DmaFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let access = match self.write {
            Some(true) => "write",
            Some(false) => "read",
            None => "access",
        };
        let why = match self.kind {
            DmaFaultKind::Translation => "outside the partition's memory",
            DmaFaultKind::Permission => "not permitted there",
            DmaFaultKind::AddressSize => "beyond the partition's address space",
            DmaFaultKind::BadStream => "from a stream the hypervisor gave no memory",
            DmaFaultKind::StreamDisabled => "from a disabled stream",
            DmaFaultKind::Other(_) => "refused",
        };
        write!(
            f,
            "DMA {access} by stream {:#x} at {:#x} {why}, stopped by the IOMMU",
            u64::from(self.stream),
            self.address
        )?;
        if let DmaFaultKind::Other(code) = self.kind {
            write!(f, " (event {:#x})", u64::from(code))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn a_fault_says_what_device_did_where() {
        let f =
            DmaFault { stream: 8, address: 0x4300_0000, write: Some(true), kind: DmaFaultKind::Translation };
        assert_eq!(
            f.to_string(),
            "DMA write by stream 0x8 at 0x43000000 outside the partition's memory, stopped by the IOMMU"
        );
        let f = DmaFault { stream: 0x100, address: 0, write: None, kind: DmaFaultKind::Other(0x21) };
        assert!(f.to_string().ends_with("refused, stopped by the IOMMU (event 0x21)"));
    }
}
