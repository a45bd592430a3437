//! DTB → [`SystemConfig`]: the system device tree binding v1 (see `docs/config.md`).
//!
//! The blob is untrusted (the hypervisor parses it at boot). `dtb_check::read_blob` walks the
//! whole structure block once, refusing anything malformed, and returns its nodes; `tree` indexes
//! them (paths, parents, phandles), and every property value is decoded here with length checks.
//! (`fdt` 0.1 is not used here: it panics or recurses without bound on malformed blobs, and it
//! re-parses a node on every property lookup.)
//!
//! - `tree`: the indexed tree and the value decoders;
//! - `board`: RAM, CPUs, the GIC, and board devices passed through (`devices`, interrupts);
//! - `partition`: `/hypervisor` and its partitions;
//! - `channels`: `/hypervisor/channels`.

mod board;
mod channels;
mod disks;
mod dma;
mod partition;
mod tree;
mod x86;

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::dtb_check::{be_u32, read_blob};
use super::error::{ConfigError, DtbDefect, ErrorKind, Expected};
use super::warning::{is_known, suggest, ConfigWarning, WarningKind};
use super::{Board, SystemConfig};
use tree::{as_string, base_name, read_cells, Entry, Tree};

/// Reads only the board (RAM, CPUs, GIC) of a DTB: used on the firmware's DTB to cross-check the
/// system DTB against the machine it actually boots on.
pub fn parse_board(dtb: &[u8]) -> Result<Board, Vec<ConfigError>> {
    let tree = Tree::new(read_blob(dtb).map_err(invalid)?);
    let mut p = Parser::new(&tree);
    let board = p.board();
    if p.errors.is_empty() {
        Ok(board)
    } else {
        Err(p.errors)
    }
}

/// Parses a system DTB, reporting every problem found rather than the first. Warnings (unknown
/// properties and nodes) are dropped: see [`parse_with_warnings`].
pub fn parse(dtb: &[u8]) -> Result<SystemConfig, Vec<ConfigError>> {
    parse_with_warnings(dtb).map(|(cfg, _)| cfg)
}

/// Parses a system DTB; on success also returns what was ignored (unknown properties, with a
/// suggestion when one is close to a known name, and unknown child nodes).
pub fn parse_with_warnings(dtb: &[u8]) -> Result<(SystemConfig, Vec<ConfigWarning>), Vec<ConfigError>> {
    let (result, warnings) = parse_reporting(dtb);
    result.map(|cfg| (cfg, warnings))
}

/// Parses a system DTB and returns the warnings whether or not it has errors: a warning (a
/// misspelt property, a cell count that does not apply) often explains the errors.
pub fn parse_reporting(dtb: &[u8]) -> (Result<SystemConfig, Vec<ConfigError>>, Vec<ConfigWarning>) {
    let tree = match read_blob(dtb) {
        Ok(nodes) => Tree::new(nodes),
        Err(defect) => return (Err(invalid(defect)), Vec::new()),
    };
    let mut p = Parser::new(&tree);
    let board = p.board();
    let Some(h) = tree.child(0, "hypervisor") else {
        p.report("/hypervisor", ErrorKind::MissingNode);
        return (Err(p.errors), p.warnings);
    };
    let hypervisor = p.hypervisor(h);
    let (partitions, nodes, containers) = p.partitions(h, &board);
    let (channels, virtio, disks) = p.channels(&containers, &nodes);
    match hypervisor {
        Some(hypervisor) if p.errors.is_empty() => {
            (Ok(SystemConfig { board, hypervisor, partitions, channels, virtio, disks }), p.warnings)
        }
        _ => {
            if p.errors.is_empty() {
                p.report("/hypervisor", ErrorKind::MissingProperty { property: "memory" });
            }
            (Err(p.errors), p.warnings)
        }
    }
}

/// Whether `a` and `b` are the same problem with a node's cell counts (see `Parser::report`).
fn same_cells_problem(a: &ErrorKind, b: &ErrorKind) -> bool {
    let is_cells = |p: &str| matches!(p, "#address-cells" | "#size-cells");
    match (a, b) {
        (
            ErrorKind::UnsupportedCells { address_cells: a1, size_cells: s1 },
            ErrorKind::UnsupportedCells { address_cells: a2, size_cells: s2 },
        ) => a1 == a2 && s1 == s2,
        (
            ErrorKind::MalformedProperty { property: p1, len: l1, expected: e1 },
            ErrorKind::MalformedProperty { property: p2, len: l2, expected: e2 },
        ) => is_cells(p1) && p1 == p2 && l1 == l2 && e1 == e2,
        _ => false,
    }
}

fn invalid(defect: DtbDefect) -> Vec<ConfigError> {
    vec![ConfigError::new("/", ErrorKind::InvalidDtb(defect))]
}

// ---------------------------------------------------------------------------------------------
// Reading nodes and properties, with every problem recorded.

struct Parser<'t, 'a> {
    tree: &'t Tree<'a>,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigWarning>,
    /// Node index of the board's GICv3, found by `board`.
    gic: Option<usize>,
}

impl<'t, 'a> Parser<'t, 'a> {
    fn new(tree: &'t Tree<'a>) -> Self {
        Self { tree, errors: Vec::new(), warnings: Vec::new(), gic: None }
    }

    /// Records an error. A problem with a parent's `#address-cells` / `#size-cells` is recorded
    /// once, not once per child that reads them (only those can repeat: comparing just them
    /// keeps the whole-`ErrorKind` comparison, kilobytes of code, out of the hypervisor).
    fn report(&mut self, node: &str, kind: ErrorKind) {
        let repeated = |e: &ConfigError| e.node == node && same_cells_problem(&e.kind, &kind);
        if !self.errors.iter().rev().take(16).any(repeated) {
            self.errors.push(ConfigError::new(node, kind));
        }
    }

    /// Records a warning. Without the messages (the hypervisor) warnings are not collected: the
    /// hypervisor drops them, and they change nothing in what is checked.
    fn warn(&mut self, index: usize, kind: WarningKind) {
        #[cfg(feature = "messages")]
        self.warnings.push(ConfigWarning::new(self.path(index), kind));
        #[cfg(not(feature = "messages"))]
        let _ = (index, kind);
    }

    /// Warns about every property of node `index` that is not in `known`.
    fn check_properties(&mut self, index: usize, known: &[&'static str]) {
        if !cfg!(feature = "messages") {
            return;
        }
        let Some(e) = self.entry(index) else {
            return;
        };
        for &(name, _) in &e.properties {
            if matches!(name, "#address-cells" | "#size-cells") {
                self.warn(index, WarningKind::CellsIgnored { property: name.to_string() });
            } else if !is_known(known, name) {
                let suggestion = suggest(known, name);
                let kind = WarningKind::UnknownProperty { property: name.to_string(), suggestion };
                self.warn(index, kind);
            }
        }
    }

    /// Warns about every child of node `index` (which the binding gives none).
    fn no_children(&mut self, index: usize) {
        if !cfg!(feature = "messages") {
            return;
        }
        let children: Vec<usize> = self.tree.children(index).collect();
        for child in children {
            let name = self.entry(child).map_or("", |e| e.name).to_string();
            self.warn(index, WarningKind::UnknownChild { name });
        }
    }

    fn entry(&self, index: usize) -> Option<&'t Entry<'a>> {
        self.tree.nodes.get(index)
    }

    fn path(&self, index: usize) -> &'t str {
        self.entry(index).map_or("/", |e| e.path.as_str())
    }

    fn owned_path(&self, index: usize) -> String {
        self.path(index).to_string()
    }

    fn name(&self, index: usize) -> &'a str {
        self.entry(index).map(base_name).unwrap_or_default()
    }

    fn value(&self, index: usize, name: &str) -> Option<&'a [u8]> {
        self.entry(index)?.property(name)
    }

    /// The value, or `MissingProperty` reported.
    fn required(&mut self, index: usize, property: &'static str) -> Option<&'a [u8]> {
        let value = self.value(index, property);
        if value.is_none() {
            self.report(self.path(index), ErrorKind::MissingProperty { property });
        }
        value
    }

    fn malformed(&mut self, index: usize, property: &'static str, len: usize, expected: Expected) {
        self.report(self.path(index), ErrorKind::MalformedProperty { property, len, expected });
    }

    /// An optional property of exactly `bytes` bytes; `None` if absent or malformed (reported).
    fn fixed(&mut self, index: usize, property: &'static str, expected: Expected) -> Option<&'a [u8]> {
        let bytes = match expected {
            Expected::Cells(n) => n * 4,
            Expected::Bytes(n) => n,
            Expected::Empty => 0,
            _ => 4,
        };
        let value = self.value(index, property)?;
        if value.len() != bytes {
            self.malformed(index, property, value.len(), expected);
            return None;
        }
        Some(value)
    }

    /// An optional list of `group`-byte items; `None` if absent or malformed (reported).
    fn list(
        &mut self,
        index: usize,
        property: &'static str,
        group: usize,
        expected: Expected,
    ) -> Option<&'a [u8]> {
        let value = self.value(index, property)?;
        if value.is_empty() || !value.len().is_multiple_of(group) {
            self.malformed(index, property, value.len(), expected);
            return None;
        }
        Some(value)
    }

    fn string(&mut self, index: usize, property: &'static str) -> Option<&'a str> {
        let value = self.value(index, property)?;
        let s = as_string(value);
        if s.is_none() {
            self.malformed(index, property, value.len(), Expected::String);
        }
        s
    }

    fn compatibles(&self, index: usize) -> Option<Vec<&'a str>> {
        let value = self.value(index, "compatible")?;
        let list = value.split(|&b| b == 0).filter(|s| !s.is_empty());
        Some(list.map(|s| core::str::from_utf8(s).unwrap_or("\u{fffd}")).collect())
    }

    fn compatible_text(&self, index: usize) -> Option<String> {
        self.compatibles(index).map(|list| list.join(", "))
    }

    fn is_compatible(&self, index: usize, compatible: &str) -> bool {
        self.compatibles(index).is_some_and(|list| list.contains(&compatible))
    }

    /// `#address-cells` and `#size-cells` that the parent of `index` gives its children.
    fn parent_cells(&mut self, index: usize) -> Option<(usize, usize)> {
        let parent = self.entry(index)?.parent?;
        self.child_cells(parent)
    }

    /// `#address-cells` and `#size-cells` that node `parent` gives its children.
    fn child_cells(&mut self, parent: usize) -> Option<(usize, usize)> {
        let mut cells = [2u32, 1u32];
        for (cell, name) in cells.iter_mut().zip(["#address-cells", "#size-cells"]) {
            if let Some(v) = self.fixed(parent, name, Expected::Cells(1)) {
                *cell = be_u32(v, 0)?;
            } else if self.value(parent, name).is_some() {
                return None;
            }
        }
        let [address_cells, size_cells] = cells;
        if !(1..=2).contains(&address_cells) || size_cells > 2 {
            let kind = ErrorKind::UnsupportedCells { address_cells, size_cells };
            self.report(self.path(parent), kind);
            return None;
        }
        Some((address_cells as usize, size_cells as usize))
    }

    /// Every `(address, size)` of a board node's required `reg`, in its parent's cells.
    fn reg(&mut self, index: usize) -> Vec<(u64, u64)> {
        let Some(value) = self.required(index, "reg") else {
            return Vec::new();
        };
        let Some((ac, sc)) = self.parent_cells(index) else {
            return Vec::new();
        };
        let entry = (ac + sc) * 4;
        if value.is_empty() || !value.len().is_multiple_of(entry) {
            self.malformed(index, "reg", value.len(), Expected::CellGroups(ac + sc));
            return Vec::new();
        }
        value
            .chunks_exact(entry)
            .filter_map(|c| Some((read_cells(c, 0, ac)?, read_cells(c, ac, sc)?)))
            .collect()
    }

    /// Resolves one phandle of `property` (in node `owner`), or reports it unresolved.
    fn resolve(&mut self, owner: usize, property: &'static str, phandle: u32) -> Option<usize> {
        let target = self.tree.by_phandle(phandle);
        if target.is_none() {
            self.report(self.path(owner), ErrorKind::UnresolvedPhandle { property, phandle });
        }
        target
    }
}

#[cfg(test)]
mod tests;
