//! Configuration warnings: things `parse` ignores but a person probably did not mean (a
//! misspelt property, a stray child node). They never make a configuration invalid.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// One ignored piece of a system configuration, found by [`super::parse_with_warnings`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    /// Path of the node it is in, e.g. `/hypervisor/ping`.
    pub node: String,
    pub kind: WarningKind,
}

/// What was ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WarningKind {
    /// A property the binding does not define for this kind of node; `suggestion` is the closest
    /// known property name, if one is close.
    UnknownProperty { property: String, suggestion: Option<&'static str> },
    /// A child node the binding does not define (under a partition, a channel or the channels
    /// container).
    UnknownChild { name: String },
    /// `#address-cells` or `#size-cells` where the binding fixes both at 2 (`/hypervisor`, its
    /// partitions and channels): the values below are still read as 2 cells each.
    CellsIgnored { property: String },
    /// `benchmark-pmu`: partitions' PMU counts the hypervisor's instructions too.
    BenchmarkPmu,
    /// `dma-unconfined`: these devices of the partition master DMA with no IOMMU in front.
    DmaUnconfined { devices: Vec<String> },
    /// `owns-platform`: these devices of the partition reach the whole machine's configuration.
    OwnsPlatform { devices: Vec<String> },
}

impl ConfigWarning {
    pub fn new(node: impl Into<String>, kind: WarningKind) -> Self {
        Self { node: node.into(), kind }
    }
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.node, self.kind)
    }
}

impl fmt::Display for WarningKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownProperty { property, suggestion } => {
                write!(f, "unknown property '{property}' (ignored)")?;
                match suggestion {
                    Some(s) => write!(f, "; did you mean '{s}'?"),
                    None => Ok(()),
                }
            }
            Self::UnknownChild { name } => write!(f, "unknown child node '{name}' (ignored)"),
            Self::CellsIgnored { property } => write!(
                f,
                "'{property}' is ignored here: under /hypervisor every address and size is 2 cells \
                 (write memory = <0x0 base 0x0 size>), whatever '#address-cells' / '#size-cells' say"
            ),
            Self::BenchmarkPmu => write!(
                f,
                "benchmark-pmu: every partition's PMU counter 0 also counts the hypervisor's \
                 instructions, so a partition can time the work its peers cause on its CPU; for \
                 benchmarks only, never in a deployed system"
            ),
            Self::DmaUnconfined { devices } if devices.is_empty() => write!(
                f,
                "dma-unconfined: set, but no device of the partition masters DMA without an IOMMU; \
                 remove it"
            ),
            Self::DmaUnconfined { devices } => write!(
                f,
                "DMA UNCONFINED: {} can read and write all physical memory (the hypervisor's and \
                 every partition's) and no IOMMU stops it: this partition can take over the whole \
                 machine; for trusted partitions or tests only",
                devices.join(", ")
            ),
            Self::OwnsPlatform { devices } if devices.is_empty() => write!(
                f,
                "owns-platform: set, but no device of the partition reaches the whole machine \
                 (none the board marks tantalum,platform-wide); remove it"
            ),
            Self::OwnsPlatform { devices } => write!(
                f,
                "OWNS THE PLATFORM: {} can reprogram every PCI device of the machine (other \
                 partitions' and the platform's): this partition can take over the machine; \
                 for trusted partitions or tests only",
                devices.join(", ")
            ),
        }
    }
}

/// Properties every node may carry.
const ANY_NODE: &[&str] = &["phandle", "linux,phandle", "name"];

/// Known properties of `/hypervisor`.
pub(super) const HYPERVISOR_PROPERTIES: &[&str] = &["compatible", "memory", "console", "benchmark-pmu"];

/// Known properties of a partition, including those the build adds.
pub(super) const PARTITION_PROPERTIES: &[&str] = &[
    "compatible",
    "cpus",
    "memory",
    "guest-addresses",
    "image",
    "entry",
    "on-fault",
    "outside-memory",
    "boot-order",
    "bootargs",
    "devices",
    "device-regions",
    "virtual-uart",
    "dma-unconfined",
    "owns-platform",
    "tantalum,image",
    "tantalum,image-sha256",
    "tantalum,guest-dtb",
    "tantalum,guest-dtb-sha256",
    "initrd",
    "tantalum,initrd",
    "tantalum,initrd-sha256",
];

/// Known properties of `/hypervisor/channels`.
pub(super) const CHANNELS_PROPERTIES: &[&str] = &[];

/// Known properties of a virtio link.
pub(super) const VIRTIO_LINK_PROPERTIES: &[&str] = &["compatible", "endpoints"];

/// Known properties of a disk, and of each of its frontends.
pub(super) const VIRTIO_DISK_PROPERTIES: &[&str] = &["compatible", "driver", "device", "sectors"];
pub(super) const DISK_FRONTEND_PROPERTIES: &[&str] = &["partition", "region"];

/// Known properties of a channel.
pub(super) const CHANNEL_PROPERTIES: &[&str] =
    &["compatible", "endpoints", "memory", "guest-addresses", "writer"];

/// Whether `name` is known for a node whose own properties are `known`.
pub(super) fn is_known(known: &[&str], name: &str) -> bool {
    known.contains(&name) || ANY_NODE.contains(&name)
}

/// The known property closest to `name`, if it is a likely typo of it: at most one edit per four
/// characters (at least one, at most three), transpositions counting as one edit.
pub(super) fn suggest(known: &[&'static str], name: &str) -> Option<&'static str> {
    if name.len() > 64 {
        return None;
    }
    let limit = (name.chars().count() / 4).clamp(1, 3);
    known
        .iter()
        .map(|&k| (distance(name, k), k))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    // Rows i-2 and i-1 of the table.
    let mut before: Vec<usize> = alloc::vec![0; width];
    let mut last: Vec<usize> = (0..width).collect();
    for i in 1..=a.len() {
        let mut row = alloc::vec![i; width];
        for j in 1..width {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (last[j] + 1).min(row[j - 1] + 1).min(last[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            row[j] = best;
        }
        before = core::mem::replace(&mut last, row);
    }
    last[width - 1]
}

#[cfg(test)]
mod tests;
