//! The run-time parts a system may leave out of its hypervisor (docs/architecture.md,
//! "Built for the system"): the virtio transport and relays, and the driver of each GIC
//! version. `cargo xtask build` builds the hypervisor of each system with what its
//! configuration needs ([`Needs::parts`], as cargo features of this crate); the hypervisor
//! refuses at boot a configuration that needs a part it was built without ([`Parts::lacking`]),
//! so code left out is never needed. A plain `cargo build` has every part.

use tantalum_core::config::SystemConfig;

/// Which optional parts a hypervisor has (or a configuration needs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Parts {
    /// The virtio-mmio transport, the net/vsock relays and the disks (`virtio` feature).
    pub virtio: bool,
    /// The GICv2 driver, its interrupt fast path and vector table, and the virtual GIC's GICv2
    /// front end (`gic-v2` feature, which enables tantalum-core's).
    pub gic_v2: bool,
    /// The GICv3 driver and its interrupt fast path (`gic-v3` feature).
    pub gic_v3: bool,
}

/// What this hypervisor was built with.
pub const BUILT: Parts = Parts {
    virtio: cfg!(feature = "virtio"),
    gic_v2: cfg!(feature = "gic-v2"),
    gic_v3: cfg!(feature = "gic-v3"),
};

/// Every part: a plain `cargo build`, the crate's default features.
pub const ALL: Parts = Parts { virtio: true, gic_v2: true, gic_v3: true };

/// A part a configuration needs and the hypervisor lacks, with the node that needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lacking<'a> {
    /// The configuration node that needs the part: a virtio link or disk, or the board's GIC.
    pub path: &'a str,
    /// The cargo feature of this crate that builds the part.
    pub feature: &'static str,
    /// What the node is, for the message.
    pub what: &'static str,
}

impl core::fmt::Display for Lacking<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{}: {} needs code this hypervisor was built without (cargo feature `{}` of \
             tantalum-aarch64; `cargo xtask build --config` builds the hypervisor with what the \
             configuration uses)",
            self.path, self.what, self.feature
        )
    }
}

/// What a configuration needs of the optional parts, by the nodes that need them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs<'a> {
    /// Its first virtio link or disk, if it has one.
    pub virtio: Option<&'a str>,
    /// Its board's GIC, and whether that is a GICv2.
    pub gic: Option<(&'a str, bool)>,
}

impl<'a> Needs<'a> {
    /// What `config` needs.
    pub fn of(config: &'a SystemConfig) -> Self {
        let links = config.virtio.iter().map(|l| l.path.as_str());
        Needs {
            virtio: links.chain(config.disks.iter().map(|d| d.path.as_str())).next(),
            gic: config.board.gic.as_ref().map(|g| (g.path.as_str(), g.v2.is_some())),
        }
    }

    /// The parts that meet these needs and no more.
    pub fn parts(&self) -> Parts {
        Parts {
            virtio: self.virtio.is_some(),
            gic_v2: self.gic.is_some_and(|(_, v2)| v2),
            gic_v3: self.gic.is_some_and(|(_, v2)| !v2),
        }
    }
}

impl Parts {
    /// The first of `needs` that `self` lacks, naming the node that needs it.
    pub fn lacking<'a>(&self, needs: &Needs<'a>) -> Option<Lacking<'a>> {
        if let Some(path) = needs.virtio.filter(|_| !self.virtio) {
            return Some(Lacking { path, feature: "virtio", what: "a virtio device" });
        }
        match needs.gic {
            Some((path, true)) if !self.gic_v2 => Some(Lacking { path, feature: "gic-v2", what: "a GICv2" }),
            Some((path, false)) if !self.gic_v3 => Some(Lacking { path, feature: "gic-v3", what: "a GICv3" }),
            _ => None,
        }
    }

    /// The cargo features that build these parts, in the order of the crate's manifest.
    pub fn features(&self) -> impl Iterator<Item = &'static str> {
        [(self.virtio, "virtio"), (self.gic_v2, "gic-v2"), (self.gic_v3, "gic-v3")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needs(v2: bool, virtio: bool) -> Needs<'static> {
        Needs { virtio: virtio.then_some("/hypervisor/net0"), gic: Some(("/intc@8000000", v2)) }
    }

    #[test]
    fn a_configuration_needs_its_boards_gic_and_virtio_only_if_it_has_a_device() {
        assert_eq!(needs(false, false).parts(), Parts { virtio: false, gic_v2: false, gic_v3: true });
        assert_eq!(needs(true, true).parts(), Parts { virtio: true, gic_v2: true, gic_v3: false });
        assert_eq!(
            Needs { virtio: None, gic: None }.parts(),
            Parts { virtio: false, gic_v2: false, gic_v3: false }
        );
    }

    #[test]
    fn a_hypervisor_without_a_part_the_configuration_needs_names_the_node_and_the_feature() {
        let gicv3_only = Parts { virtio: false, gic_v2: false, gic_v3: true };
        assert_eq!(gicv3_only.lacking(&needs(false, false)), None);
        let lacking = gicv3_only.lacking(&needs(false, true)).expect("virtio lacking");
        assert_eq!((lacking.path, lacking.feature), ("/hypervisor/net0", "virtio"));
        assert!(lacking
            .to_string()
            .starts_with("/hypervisor/net0: a virtio device needs code this hypervisor was built without"));
        let lacking = gicv3_only.lacking(&needs(true, false)).expect("GICv2 lacking");
        assert_eq!((lacking.path, lacking.feature), ("/intc@8000000", "gic-v2"));
        let gicv2_only = Parts { virtio: true, gic_v2: true, gic_v3: false };
        assert_eq!(gicv2_only.lacking(&needs(false, true)).map(|l| l.feature), Some("gic-v3"));
        assert_eq!(ALL.lacking(&needs(true, true)), None);
        assert_eq!(ALL.features().collect::<Vec<_>>(), ["virtio", "gic-v2", "gic-v3"]);
    }
}
