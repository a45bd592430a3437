//! Cross-checking the system DTB against the firmware's own DTB (x0 at hypervisor entry): a
//! board description that promises more RAM than the machine has must not place a partition in
//! memory that is not there.

use alloc::vec::Vec;

use super::{PartitionId, SystemConfig};
use crate::addr::HostRange;

/// A memory range the system DTB hands out that the firmware does not report as RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotRam {
    /// The partition that owns it, or `None` for the hypervisor's own memory.
    pub owner: Option<PartitionId>,
    pub range: HostRange,
}

/// Every hypervisor or partition memory range that lies outside the firmware's RAM.
pub fn ram_not_reported(cfg: &SystemConfig, firmware_ram: &[HostRange]) -> Vec<NotRam> {
    let is_ram = |r: &HostRange| firmware_ram.iter().any(|ram| ram.contains_range(r));
    let hypervisor =
        Some(cfg.hypervisor.memory).filter(|r| !is_ram(r)).map(|range| NotRam { owner: None, range });
    let partitions = cfg.partitions.iter().flat_map(|p| {
        p.memory
            .iter()
            .map(|r| r.host_range())
            .filter(|r| !is_ram(r))
            .map(|range| NotRam { owner: Some(p.id), range })
    });
    hypervisor.into_iter().chain(partitions).collect()
}

#[cfg(test)]
mod tests {
    use alloc::string::String;
    use alloc::vec;

    use super::*;
    use crate::addr::{GuestPhys, HostPhys};
    use crate::config::{Board, FaultPolicy, HypervisorConfig, MemoryRegion, PartitionConfig};

    fn region(host: u64, size: u64) -> MemoryRegion {
        MemoryRegion { host: HostPhys(host), guest: GuestPhys(host), size }
    }

    fn system() -> SystemConfig {
        let partition = |id: u16, host| PartitionConfig {
            id,
            name: String::from("p"),
            path: String::from("/hypervisor/p"),
            cpus: vec![id as usize],
            memory: vec![region(host, 0x100_0000)],
            image_path: None,
            image: None,
            guest_dtb: None,
            image_size_hint: None,
            entry: GuestPhys(host),
            on_fault: FaultPolicy::Stop,
            ..Default::default()
        };
        SystemConfig {
            board: Board::default(),
            hypervisor: HypervisorConfig {
                memory: HostRange::new(HostPhys(0x4000_0000), 0x200_0000),
                console: None,
            },
            partitions: vec![partition(0, 0x4200_0000), partition(1, 0x4300_0000)],
            channels: vec![],
        }
    }

    #[test]
    fn everything_inside_firmware_ram_passes() {
        let ram = [HostRange::new(HostPhys(0x4000_0000), 0x4000_0000)];
        assert!(ram_not_reported(&system(), &ram).is_empty());
    }

    #[test]
    fn ranges_beyond_the_machine_are_named() {
        // 48 MiB of RAM: the second partition's memory is not there.
        let ram = [HostRange::new(HostPhys(0x4000_0000), 0x300_0000)];
        let missing = ram_not_reported(&system(), &ram);
        assert_eq!(
            missing,
            [NotRam { owner: Some(1), range: HostRange::new(HostPhys(0x4300_0000), 0x100_0000) }]
        );
        // No RAM reported at all: everything is named, the hypervisor first.
        let missing = ram_not_reported(&system(), &[]);
        assert_eq!(missing.len(), 3);
        assert_eq!(missing[0].owner, None);
    }
}
