//! DMA policy: which IOMMU streams belong to which partition, and which devices master DMA with
//! nothing in front of them. The hypervisor programs the IOMMU from these answers
//! (`arch-aarch64/src/smmu/`); the checker's rules are in `validate/dma.rs`.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use super::{DeviceAssignment, Dma, PartitionConfig, PartitionId, StreamRange, SystemConfig};

/// The streams of partition `id` on board IOMMU `iommu`: every stream range of its devices
/// behind it, sorted, each once.
pub fn streams_of(cfg: &SystemConfig, id: PartitionId, iommu: usize) -> Vec<StreamRange> {
    let Some(p) = cfg.partitions.get(usize::from(id)) else {
        return Vec::new();
    };
    let mut streams: Vec<StreamRange> = p
        .devices
        .iter()
        .filter_map(|d| match &d.dma {
            Dma::Streams { iommu: i, streams } if *i == iommu => Some(streams.iter().copied()),
            _ => None,
        })
        .flatten()
        .collect();
    crate::sort::sort(&mut streams);
    streams.dedup();
    streams
}

/// The partition whose devices own `stream` of board IOMMU `iommu`: the one a fault on that
/// stream is reported to and whose `on-fault` policy applies. `None`: no partition owns it (its
/// DMA is refused and the fault is the hypervisor's to report).
pub fn stream_owner(cfg: &SystemConfig, iommu: usize, stream: u32) -> Option<PartitionId> {
    cfg.partitions.iter().find_map(|p| {
        let owns = p.devices.iter().any(|d| match &d.dma {
            Dma::Streams { iommu: i, streams } => *i == iommu && streams.iter().any(|s| s.contains(stream)),
            _ => false,
        });
        owns.then_some(p.id)
    })
}

/// The devices of `p` that master DMA with no IOMMU the hypervisor drives in front of them.
pub fn unconfined_devices(p: &PartitionConfig) -> impl Iterator<Item = &DeviceAssignment> {
    unconfined_devices_in(&p.devices)
}

/// The devices of `devices` that master DMA with no IOMMU the hypervisor drives.
pub fn unconfined_devices_in(devices: &[DeviceAssignment]) -> impl Iterator<Item = &DeviceAssignment> {
    devices.iter().filter(|d| matches!(d.dma, Dma::Unconfined { .. }))
}

#[cfg(test)]
mod tests {
    use alloc::string::ToString;
    use alloc::vec;

    use super::*;
    use crate::addr::{HostPhys, HostRange};
    use crate::config::{Board, HypervisorConfig};

    fn device(path: &str, dma: Dma) -> DeviceAssignment {
        DeviceAssignment { path: path.to_string(), dma, ..Default::default() }
    }

    fn system(partitions: Vec<Vec<DeviceAssignment>>) -> SystemConfig {
        SystemConfig {
            board: Board::default(),
            hypervisor: HypervisorConfig {
                memory: HostRange::new(HostPhys(0x4000_0000), 0x200_0000),
                console: None,
                benchmark_pmu: false,
            },
            partitions: partitions
                .into_iter()
                .enumerate()
                .map(|(i, devices)| PartitionConfig { id: i as PartitionId, devices, ..Default::default() })
                .collect(),
            channels: Vec::new(),
            virtio: vec![],
            disks: vec![],
        }
    }

    const fn range(first: u32, count: u32) -> StreamRange {
        StreamRange { first, count }
    }

    #[test]
    fn streams_belong_to_the_partition_whose_device_names_them() {
        let pcie = device("/pcie", Dma::Streams { iommu: 0, streams: vec![range(0, 0x100)] });
        let other =
            device("/dev", Dma::Streams { iommu: 0, streams: vec![range(0x200, 4), range(0x100, 1)] });
        let second_iommu = device("/far", Dma::Streams { iommu: 1, streams: vec![range(0x100, 1)] });
        let cfg = system(vec![vec![pcie], vec![other, second_iommu]]);
        assert_eq!(stream_owner(&cfg, 0, 0), Some(0));
        assert_eq!(stream_owner(&cfg, 0, 0xff), Some(0));
        assert_eq!(stream_owner(&cfg, 0, 0x100), Some(1));
        assert_eq!(stream_owner(&cfg, 0, 0x203), Some(1));
        assert_eq!(stream_owner(&cfg, 0, 0x204), None);
        assert_eq!(stream_owner(&cfg, 1, 0x100), Some(1));
        assert_eq!(stream_owner(&cfg, 1, 0), None);
        assert_eq!(stream_owner(&cfg, 2, 0), None);
        assert_eq!(streams_of(&cfg, 1, 0), [range(0x100, 1), range(0x200, 4)]);
        assert_eq!(streams_of(&cfg, 0, 1), []);
        assert_eq!(streams_of(&cfg, 7, 0), []);
    }

    #[test]
    fn only_masters_without_a_driven_iommu_are_unconfined() {
        let p = PartitionConfig {
            devices: vec![
                device("/rtc", Dma::None),
                device("/virtio", Dma::Unconfined { iommu: None }),
                device("/pcie", Dma::Streams { iommu: 0, streams: vec![range(0, 1)] }),
                device("/behind-other", Dma::Unconfined { iommu: Some("/iommu@x".to_string()) }),
            ],
            ..Default::default()
        };
        let paths: Vec<&str> = unconfined_devices(&p).map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["/virtio", "/behind-other"]);
    }

    #[test]
    fn stream_ranges_overlap_and_contain_without_overflow() {
        assert!(range(0, 0x10000).contains(0xffff));
        assert!(!range(0, 0x10000).contains(0x10000));
        assert!(range(u32::MAX, 1).contains(u32::MAX));
        assert!(range(u32::MAX, u32::MAX).overlaps(&range(u32::MAX, 1)));
        assert!(!range(0, 8).overlaps(&range(8, 8)));
        assert!(range(0, 9).overlaps(&range(8, 8)));
        assert!(!range(5, 0).overlaps(&range(0, 10)));
    }
}
