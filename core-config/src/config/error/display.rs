//! The message of every [`ErrorKind`]: the rule, the values and, where there is one, the fix.

use alloc::string::String;
use core::fmt;

use super::ErrorKind;
use crate::addr::PAGE_SIZE;
use crate::config::{
    FaultPolicy, Interrupt, OutsideMemory, CHANNEL_COMPATIBLE, CONSOLE_UARTS, GUEST_DTB_RESERVE,
    PARTITION_COMPATIBLE, STAGE2_MAPPINGS,
};
use crate::stage2::Mappings;

fn show_opt(f: &mut fmt::Formatter<'_>, s: &Option<String>) -> fmt::Result {
    match s {
        Some(s) => write!(f, "\"{}\"", s.escape_debug()),
        None => write!(f, "absent"),
    }
}

fn show_region(f: &mut fmt::Formatter<'_>, region: Option<u32>) -> fmt::Result {
    match region {
        Some(index) => write!(f, "region {index} of "),
        None => Ok(()),
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidDtb(d) => write!(f, "not a valid device tree blob: {d}"),
            Self::MissingNode => write!(f, "required node is missing"),
            Self::X86(problem) => write!(f, "{problem}"),
            Self::MissingProperty { property } => {
                write!(f, "missing required property '{property}'")
            }
            Self::MalformedProperty { property, len, expected } => {
                write!(f, "malformed property '{property}' ({len} bytes): expected {expected}")
            }
            Self::BadCompatible { expected, found } => {
                write!(f, "compatible is ")?;
                show_opt(f, found)?;
                write!(f, ", expected \"{expected}\"")
            }
            Self::UnknownNode { compatible } => {
                write!(f, "unknown node under /hypervisor (compatible ")?;
                show_opt(f, compatible)?;
                write!(
                    f,
                    "); a partition needs compatible = \"{PARTITION_COMPATIBLE}\", channels go under /hypervisor/channels"
                )
            }
            Self::UnknownChannelNode { compatible } => {
                write!(f, "unknown node under /hypervisor/channels (compatible ")?;
                show_opt(f, compatible)?;
                write!(f, "); a channel needs compatible = \"{CHANNEL_COMPATIBLE}\"")
            }
            Self::UnknownFaultPolicy { value } => write!(
                f,
                "on-fault = \"{}\" is not one of \"{}\", \"{}\", \"{}\"",
                value.escape_debug(),
                FaultPolicy::Stop.name(),
                FaultPolicy::Restart.name(),
                FaultPolicy::HaltSystem.name()
            ),
            Self::UnknownOutsideMemory { value } => write!(
                f,
                "outside-memory = \"{}\" is not one of \"{}\", \"{}\"",
                value.escape_debug(),
                OutsideMemory::NAMES[0],
                OutsideMemory::NAMES[1]
            ),
            Self::UnknownStage2Mappings { value } => write!(
                f,
                "{STAGE2_MAPPINGS} = \"{}\" is not one of \"{}\", \"{}\"",
                value.escape_debug(),
                Mappings::NAMES[0],
                Mappings::NAMES[1]
            ),
            Self::UnresolvedPhandle { property, phandle } => {
                write!(f, "{property}: phandle {phandle:#x} refers to no node")
            }
            Self::NotACpu { phandle, target } => write!(
                f,
                "cpus: phandle {phandle:#x} refers to {target}, which is not a CPU under /cpus"
            ),
            Self::NotADevice { property, phandle, target, reason } => write!(
                f,
                "{property}: phandle {phandle:#x} refers to {target}, {reason}; only board devices \
                 with MMIO can be passed through"
            ),
            Self::NoSuchRegion { device, index, count } => write!(
                f,
                "device-regions: {device} has no region {index} (its 'reg' has {count} {}, numbered from 0)",
                if *count == 1 { "entry" } else { "entries" }
            ),
            Self::DeviceInterrupts { device, problem } => {
                write!(f, "devices: cannot pass through the interrupts of {device}: {problem}")
            }
            Self::NotAPartition { property, phandle, target } => write!(
                f,
                "{property}: phandle {phandle:#x} refers to {target}, which is not a partition \
                 (a child of /hypervisor with compatible = \"{PARTITION_COMPATIBLE}\")"
            ),
            Self::IncompleteBlob { present, missing } => write!(
                f,
                "'{present}' without '{missing}' (the build adds both or neither)"
            ),
            Self::UnsupportedCells { address_cells, size_cells } => write!(
                f,
                "#address-cells = {address_cells}, #size-cells = {size_cells}: children need 1 or 2 \
                 address cells and at most 2 size cells"
            ),
            Self::GicReg { version: 3, entries } => write!(
                f,
                "the GICv3 needs 2 'reg' entries (distributor, redistributors), found {entries}"
            ),
            Self::GicReg { entries, .. } => write!(
                f,
                "the GICv2 needs 4 'reg' entries (distributor, CPU interface, virtual interface \
                 control, virtual CPU interface: the virtualization extensions), found {entries}"
            ),
            Self::RegNotTranslatable { bus, reg, problem } => write!(
                f,
                "reg {reg} cannot be translated to a CPU address through {bus}: {problem}"
            ),
            Self::NoPartitions => write!(
                f,
                "no partitions (add a child node with compatible = \"{PARTITION_COMPATIBLE}\")"
            ),
            Self::TooManyPartitions { count, max } => {
                write!(f, "{count} partitions, more than the maximum of {max}")
            }
            Self::TooManyCpus { count, max } => {
                write!(f, "{count} CPUs, more than the {max} the hypervisor supports")
            }
            Self::NoRam => write!(
                f,
                "the board has no RAM (add a /memory@... node with device_type = \"memory\" and reg)"
            ),
            Self::IdMismatch { id, index } => {
                write!(f, "partition id {id} is not its index {index} in tree order")
            }
            Self::InvalidName { name, problem } => {
                write!(f, "partition name \"{}\" {problem}; it prefixes the partition's console lines", name.escape_debug())
            }
            Self::DuplicateName { name, other } => {
                write!(f, "partition name \"{}\" is also the name of {other}", name.escape_debug())
            }
            Self::NoMemory => write!(f, "no memory regions (memory needs at least one)"),
            Self::EmptyMemory { base } => write!(
                f,
                "memory at {base:#x} has size 0 (sizes must be positive multiples of {PAGE_SIZE:#x})"
            ),
            Self::UnalignedMemory { range } => write!(
                f,
                "memory {range} is not 4 KiB aligned (base and size must be multiples of {PAGE_SIZE:#x})"
            ),
            Self::UnalignedGuest { region, guest } => write!(
                f,
                "guest-addresses: region {region} at guest {guest} is not 4 KiB aligned \
                 (must be a multiple of {PAGE_SIZE:#x})"
            ),
            Self::MemoryOverflow { guest, base, size } => write!(
                f,
                "{}memory at {base:#x} with size {size:#x} wraps past the end of the 64-bit address space",
                if *guest { "guest " } else { "" }
            ),
            Self::OutsideRam { range, ram } => {
                write!(f, "memory {range} is not inside the board's RAM (RAM:")?;
                if ram.is_empty() {
                    write!(f, " none")?;
                }
                for r in ram {
                    write!(f, " {r}")?;
                }
                write!(f, ")")
            }
            Self::OverlapsHypervisor { range, hypervisor } => {
                write!(f, "memory {range} overlaps the hypervisor's memory (/hypervisor {hypervisor})")
            }
            Self::Overlap { range, other, other_range } => {
                write!(f, "memory {range} overlaps {other} ({other_range})")
            }
            Self::GuestOverlap { region, other_region, guest, other_guest } => write!(
                f,
                "guest range of region {region} (at {guest}) overlaps region {other_region} (at {other_guest})"
            ),
            Self::AboveIpaLimit { region, end, limit } => write!(
                f,
                "region {region} ends at guest {end:#x}, above the IPA limit {limit:#x}"
            ),
            Self::BootImageOutside { boot_image, memory } => {
                let start = memory.start.0.min(boot_image.start.0);
                let needed = boot_image.end().saturating_sub(start);
                write!(
                    f,
                    "the hypervisor and boot image ({boot_image}) do not fit in memory {memory}: \
                     memory must cover {start:#x}..{:#x} ({needed:#x} bytes)",
                    boot_image.end()
                )
            }
            Self::OutsideHypervisorMap { range, map } => write!(
                f,
                "memory {range} is outside the RAM the hypervisor maps ({map}): it could not load, \
                 clear or run from it; use memory inside {map}"
            ),
            Self::DeviceOutsideHypervisorMap { device, what, mmio, map } => write!(
                f,
                "{what} {device} ({mmio}) is outside the device window of the hypervisor's map \
                 ({map}), so the hypervisor cannot drive it on this board"
            ),
            Self::GuestMemoryOverlap { region, guest, with, range } => write!(
                f,
                "guest range {guest} of memory region {region} overlaps {with} (guest {range}); \
                 move the region with guest-addresses"
            ),
            Self::Overcommit { partitions, channels, hypervisor, ram } => write!(
                f,
                "overcommit: partitions ({partitions:#x} bytes) plus channels ({channels:#x} bytes) \
                 plus hypervisor ({hypervisor:#x} bytes) need more than the board's RAM ({ram:#x} bytes)"
            ),
            Self::NoCpus => write!(f, "cpus: no CPUs (list at least one)"),
            Self::UnknownCpu { index, count } => write!(
                f,
                "cpus: CPU index {index} is not a board CPU (the board has {count})"
            ),
            Self::DuplicateCpu { cpu } => write!(f, "cpus: {cpu} is listed more than once"),
            Self::CpuTaken { cpu, owner } => write!(
                f,
                "cpus: {cpu} is already assigned to {owner} (a CPU belongs to at most one partition)"
            ),
            Self::ImageTooBig { image, region } => write!(
                f,
                "image ({image:#x} bytes) does not fit in memory region 0 ({region:#x} bytes, \
                 less {GUEST_DTB_RESERVE:#x} reserved for the guest DTB)"
            ),
            Self::ImageAndInitrdTooBig { image, initrd, region } => write!(
                f,
                "image ({image:#x} bytes) and initrd ({initrd:#x} bytes) do not fit in memory region 0 \
                 ({region:#x} bytes, less {GUEST_DTB_RESERVE:#x} reserved for the guest DTB)"
            ),
            Self::GuestDtbTooBig { size } => write!(
                f,
                "guest DTB ({size:#x} bytes) is larger than the {GUEST_DTB_RESERVE:#x} bytes reserved for it"
            ),
            Self::EntryOutsideMemory { entry } => write!(
                f,
                "entry {entry} is not inside any guest memory region of the partition"
            ),
            Self::EntryUnaligned { entry } => write!(
                f,
                "entry {entry} is not 4-byte aligned (aarch64 instructions are 4 bytes); fix 'entry'"
            ),
            Self::EntryOutsideImage { entry, image } => write!(
                f,
                "entry {entry} is not inside the image, which is loaded at guest {image}; set 'entry' \
                 to an address in the image, or drop it (the default is the image's start)"
            ),
            Self::BadImage { problem } => write!(f, "image: {problem}"),
            Self::BlobOutOfBounds { property, offset, size, payload } => write!(
                f,
                "{property}: blob out of bounds of the boot image \
                 (offset {offset:#x} + size {size:#x} > payload {payload:#x} bytes)"
            ),
            Self::ImageNotBuilt => write!(
                f,
                "image was not built into the boot image (no 'tantalum,image'; build with cargo xtask)"
            ),
            Self::NoConsole => write!(
                f,
                "missing required property 'console': the hypervisor prints everything (its own \
                 messages and every partition's virtual UART) on it; set console = <&uart0> \
                 (a UART of kind {})",
                CONSOLE_UARTS.join(" or ")
            ),
            Self::ConsoleNotUart { console, compatible } => {
                write!(f, "console: {console} (compatible ")?;
                if compatible.is_empty() {
                    write!(f, "absent")?;
                } else {
                    write!(f, "\"{}\"", compatible.join("\", \""))?;
                }
                write!(
                    f,
                    ") is not a UART the hypervisor's console drives (only {}); point console at such a UART",
                    CONSOLE_UARTS.join(", ")
                )
            }
            Self::ConsoleInPartition { console, mmio, range } => write!(
                f,
                "memory {range} contains the hypervisor console {console} ({mmio})"
            ),
            Self::GicPassthrough { .. }
            | Self::ConsolePassthrough { .. }
            | Self::DuplicateDevice { .. }
            | Self::DeviceTaken { .. }
            | Self::MmioPageShared { .. }
            | Self::IommuPassthrough { .. }
            | Self::DmaNotConfined { .. }
            | Self::StreamTaken { .. }
            | Self::MmioPageUnassigned { .. }
            | Self::DeviceMmioInvalid { .. }
            | Self::DeviceAboveIpaLimit { .. }
            | Self::DeviceMmioOverlap { .. }
            | Self::InterruptTaken { .. }
            | Self::PpiPassthrough { .. }
            | Self::UnsupportedInterrupt { .. }
            | Self::SpiBeyondVirtualGic { .. }
            | Self::SpiReserved { .. }
            | Self::VirtualUartOverlap { .. }
            | Self::EmulatedNotPlaced { .. }
            | Self::EmulatedWindowInvalid { .. }
            | Self::EmulatedWindowOverlap { .. }
            | Self::DeviceOverEmulated { .. }
            | Self::ChannelIdMismatch { .. }
            | Self::ChannelEndpointCount { .. }
            | Self::DuplicateEndpoint { .. }
            | Self::UnknownEndpoint { .. }
            | Self::ChannelGuestCount { .. }
            | Self::ChannelGuestUnaligned { .. }
            | Self::ChannelAboveIpaLimit { .. }
            | Self::ChannelGuestOverlap { .. }
            | Self::WriterNotEndpoint { .. }
            | Self::ChannelTooSmall { .. }
            | Self::TooManyChannels { .. }
            | Self::TooManyVirtioDevices { .. }
            | Self::LinkEndpointCount { .. }
            | Self::SecondVsockLink { .. } => self.fmt_devices_and_channels(f),
            Self::DiskDeviceNotOwned { driver, device } => write!(
                f,
                "device: the driver partition {driver} is not given {device}; a disk's driver \
                 partition must own its device (add it to the driver's 'devices')"
            ),
            Self::DiskFrontendCount { count, max } => write!(
                f,
                "{count} frontends; a disk serves 1 to {max} (child nodes with 'partition' and 'region')"
            ),
            Self::DiskFrontendIsDriver { partition } => write!(
                f,
                "partition: {partition} is the disk's driver partition; it reaches the whole disk \
                 itself, give the region to another partition"
            ),
            Self::DiskRegionOutside { start, sectors, disk } => write!(
                f,
                "region: sectors {start:#x} + {sectors:#x} are empty or end past the disk's {disk:#x} \
                 sectors; a region is a non-empty range of the disk"
            ),
            Self::DiskRegionOverlap { start, sectors, other } => write!(
                f,
                "region: sectors {start:#x} + {sectors:#x} overlap the region of {other}; each \
                 frontend gets sectors no other frontend can reach"
            ),
        }
    }
}

impl ErrorKind {
    /// Rules 12 to 14.
    fn fmt_devices_and_channels(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::GicPassthrough { device, gic } => write!(
                f,
                "devices: {device} is (or shares a page with) the interrupt controller {gic}; \
                 partitions get a virtual GIC, the GIC itself cannot be passed through"
            ),
            Self::ConsolePassthrough { device, console } => write!(
                f,
                "devices: {device} is (or shares a page with) the hypervisor console {console}; \
                 give the partition 'virtual-uart;' instead"
            ),
            Self::DuplicateDevice { device, region } => {
                write!(f, "devices: ")?;
                show_region(f, *region)?;
                write!(f, "{device} is listed more than once (a whole device already includes its regions)")
            }
            Self::DeviceTaken { device, region, owner, owner_region } => {
                write!(f, "devices: ")?;
                show_region(f, *region)?;
                write!(f, "{device} is already passed through to {owner} (as ")?;
                match owner_region {
                    Some(index) => write!(f, "its region {index}")?,
                    None => write!(f, "a whole device")?,
                }
                write!(f, "); a device or region belongs to at most one partition")
            }
            Self::MmioPageShared { device, mmio, other, other_mmio, owner, page } => write!(
                f,
                "devices: MMIO {mmio} of {device} shares the 4 KiB page {page:#x} with {other} \
                 ({other_mmio}) of {owner}; stage 2 maps whole pages, so give both to the same partition"
            ),
            Self::IommuPassthrough { device, iommu } => write!(
                f,
                "devices: {device} is (or shares a page with) the IOMMU {iommu}, which the \
                 hypervisor owns to confine DMA; it cannot be passed through"
            ),
            Self::DmaNotConfined { device, iommu: None } => write!(
                f,
                "devices: {device} masters DMA (the board marks it tantalum,dma-master) and no \
                 IOMMU stream confines it: it could read and write all physical memory, the \
                 hypervisor's and every partition's; pass through a device behind the board's \
                 SMMU instead, or accept the risk with 'dma-unconfined;' in the partition"
            ),
            Self::DmaNotConfined { device, iommu: Some(iommu) } => write!(
                f,
                "devices: {device} masters DMA through {iommu}, which is not an IOMMU the \
                 hypervisor drives (only arm,smmu-v3), so nothing confines it; accept the risk \
                 with 'dma-unconfined;' in the partition"
            ),
            Self::StreamTaken { device, streams, other, owner } => write!(
                f,
                "devices: IOMMU streams {:#x}..{:#x} of {device} are also streams of {other}, \
                 passed through to {owner}; a stream translates into one partition's memory, so \
                 give both devices to the same partition",
                streams.first,
                streams.end()
            ),
            Self::MmioPageUnassigned { device, mmio, other, other_mmio, page } => write!(
                f,
                "devices: MMIO {mmio} of {device} shares the 4 KiB page {page:#x} with {other} \
                 ({other_mmio}), which the partition is not given; stage 2 maps whole pages, so \
                 the partition would reach it too: pass {other} through as well"
            ),
            Self::DeviceMmioInvalid { device, base, size } => write!(
                f,
                "devices: {device} has an MMIO range at {base:#x} of size {size:#x}, which is empty \
                 or wraps past 2^64; fix the board node's reg"
            ),
            Self::DeviceAboveIpaLimit { device, end, limit } => write!(
                f,
                "devices: MMIO of {device} ends at {end:#x}, above the IPA limit {limit:#x} \
                 (devices are mapped at their host address)"
            ),
            Self::DeviceMmioOverlap { device, mmio, with, range } => write!(
                f,
                "devices: MMIO {mmio} of {device} overlaps {with} ({range}); device MMIO must be \
                 outside RAM"
            ),
            Self::InterruptTaken { device, spi, other, owner } => write!(
                f,
                "devices: SPI {spi} (INTID {}) of {device} is also the SPI of {other}, passed through \
                 to {owner}; an interrupt belongs to at most one partition",
                spi.saturating_add(32)
            ),
            Self::PpiPassthrough { device, ppi } => write!(
                f,
                "devices: {device} has PPI {ppi} (INTID {}), a per-CPU interrupt that cannot be \
                 passed through; pass only devices with SPIs",
                ppi.saturating_add(16)
            ),
            Self::UnsupportedInterrupt { device, interrupt: Interrupt { kind, number, flags } } => {
                write!(
                    f,
                    "devices: {device} has interrupt <{kind} {number} {flags}>, which is neither an SPI \
                     (<0 n flags>, n <= {}) nor a PPI (<1 n flags>, n <= {})",
                    Interrupt::MAX_SPI,
                    Interrupt::MAX_PPI
                )
            }
            Self::SpiBeyondVirtualGic { device, spi, max } => write!(
                f,
                "devices: SPI {spi} (INTID {}) of {device} is beyond the partition's virtual GIC, \
                 which implements SPIs 0 to {max}; its interrupts would never arrive. Pass through \
                 devices with SPIs up to {max}",
                spi.saturating_add(32)
            ),
            Self::SpiReserved { device, spi, by } => write!(
                f,
                "devices: SPI {spi} of {device} is also the partition's virtual interrupt of {by}; \
                 a partition's virtual interrupts and passed-through SPIs must differ"
            ),
            Self::VirtualUartOverlap { uart, with, range } => write!(
                f,
                "virtual-uart: the virtual UART's guest range {uart} overlaps {with} (guest {range}); \
                 move the other range"
            ),
            Self::EmulatedNotPlaced { what } => write!(
                f,
                "the partition uses {what}, but the board places none in guest space (its root has \
                 no {}); add it to the board's description (docs/boards.md)",
                what.property()
            ),
            Self::EmulatedWindowInvalid { what, window } => write!(
                f,
                "{}: the window of {what} ({window}) must be page-aligned and end below the IPA \
                 limit {:#x}",
                what.property(),
                crate::config::IPA_LIMIT
            ),
            Self::EmulatedWindowOverlap { what, window, with, range } => write!(
                f,
                "{}: the window of {what} ({window}) overlaps {with} (guest {range}); give each \
                 kind of emulated page its own free guest range",
                what.property()
            ),
            Self::DeviceOverEmulated { device, pages, what, range } => write!(
                f,
                "devices: the pages of {device} (guest {pages}) overlap {what} (guest {range}, \
                 placed by the board's {}); pass the device through on a board whose emulated \
                 pages lie elsewhere, or move them (docs/boards.md)",
                what.property()
            ),
            Self::ChannelIdMismatch { id, index } => {
                write!(f, "channel id {id} is not its index {index} in tree order")
            }
            Self::ChannelEndpointCount { count } => {
                write!(f, "endpoints: {count} listed; a v1 channel connects exactly 2 partitions")
            }
            Self::DuplicateEndpoint { partition } => {
                write!(f, "endpoints: {partition} is listed twice; a channel connects 2 distinct partitions")
            }
            Self::UnknownEndpoint { id, count } => {
                write!(f, "endpoints: partition id {id} does not exist (there are {count} partitions)")
            }
            Self::ChannelGuestCount { addresses, endpoints } => write!(
                f,
                "guest-addresses: {addresses} addresses for {endpoints} endpoints (give one per endpoint)"
            ),
            Self::ChannelGuestUnaligned { endpoint, guest } => write!(
                f,
                "guest-addresses: {endpoint} sees the channel at guest {guest}, which is not 4 KiB \
                 aligned (must be a multiple of {PAGE_SIZE:#x})"
            ),
            Self::ChannelAboveIpaLimit { endpoint, end, limit } => write!(
                f,
                "guest-addresses: the channel ends at guest {end:#x} in {endpoint}, above the IPA \
                 limit {limit:#x}"
            ),
            Self::ChannelGuestOverlap { endpoint, guest, with, range } => write!(
                f,
                "guest-addresses: in {endpoint} the channel's guest range {guest} overlaps {with} \
                 (guest {range}); set guest-addresses to a free range"
            ),
            Self::WriterNotEndpoint { writer } => write!(
                f,
                "writer: {writer} is not an endpoint of the channel (the writer must be one of 'endpoints')"
            ),
            Self::ChannelTooSmall { size, min, one_way } => write!(
                f,
                "memory: {size:#x} bytes cannot hold the rings of a {} channel, which needs at least \
                 {min:#x} bytes (see docs/channels.md)",
                if *one_way { "one-way" } else { "duplex" }
            ),
            Self::TooManyChannels { count, max } => write!(
                f,
                "endpoint of {count} channels, more than the maximum of {max} per partition \
                 (MAX_CHANNELS_PER_PARTITION); merge or drop some"
            ),
            Self::TooManyVirtioDevices { count, max } => write!(
                f,
                "on {count} virtio links and disks, more than the maximum of {max} virtio devices per partition \
                 (MAX_VIRTIO_PER_PARTITION); drop some"
            ),
            Self::LinkEndpointCount { count, kind, max: 2 } => {
                write!(f, "endpoints: {count} listed; a {kind} link joins exactly 2 partitions")
            }
            Self::LinkEndpointCount { count, kind, max } => write!(
                f,
                "endpoints: {count} listed; a {kind} link joins 2 to {max} partitions (more than 2: a switch)"
            ),
            Self::SecondVsockLink { partition, first } => write!(
                f,
                "endpoints: {partition} is already on the vsock link {first}; a partition has one \
                 vsock address (its CID) and one virtio-vsock device, so it may be on one vsock link"
            ),
            // `fmt` routes only the variants above here.
            _ => Ok(()),
        }
    }
}
