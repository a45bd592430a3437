//! Cross-checking the system DTB against the firmware's own DTB (x0 at hypervisor entry): a
//! board description that promises more RAM than the machine has must not place a partition in
//! memory that is not there.

use alloc::vec;
use alloc::vec::Vec;

use super::{PartitionId, SystemConfig};
use crate::addr::HostRange;

/// Who a memory range belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Hypervisor,
    Partition(PartitionId),
    /// A channel, by index in [`SystemConfig::channels`].
    Channel(usize),
}

/// A memory range the system DTB hands out that the firmware does not report as RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotRam {
    pub owner: Owner,
    pub range: HostRange,
}

/// Every hypervisor, partition or channel memory range that lies outside the firmware's RAM.
pub fn ram_not_reported(cfg: &SystemConfig, firmware_ram: &[HostRange]) -> Vec<NotRam> {
    let mut owned = vec![(Owner::Hypervisor, cfg.hypervisor.memory)];
    for p in &cfg.partitions {
        owned.extend(p.memory.iter().map(|r| (Owner::Partition(p.id), r.host_range())));
    }
    owned.extend(cfg.channels.iter().map(|c| (Owner::Channel(c.id), c.memory)));
    let is_ram = |r: &HostRange| firmware_ram.iter().any(|ram| ram.contains_range(r));
    owned.into_iter().filter(|(_, r)| !is_ram(r)).map(|(owner, range)| NotRam { owner, range }).collect()
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
                benchmark_pmu: false,
            },
            partitions: vec![partition(0, 0x4200_0000), partition(1, 0x4300_0000)],
            channels: vec![],
            virtio: vec![],
            disks: vec![],
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
            [NotRam { owner: Owner::Partition(1), range: HostRange::new(HostPhys(0x4300_0000), 0x100_0000) }]
        );
        // No RAM reported at all: everything is named, the hypervisor first.
        let missing = ram_not_reported(&system(), &[]);
        assert_eq!(missing.len(), 3);
        assert_eq!(missing[0].owner, Owner::Hypervisor);
    }
}
