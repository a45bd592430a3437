//! DTB → [`SystemConfig`]: the system device tree binding v1 (see `docs/config.md`).
//!
//! The blob is untrusted (the hypervisor parses it at boot). `fdt` 0.1 panics or recurses without
//! bound on malformed blobs, so `dtb_check::check_blob` first walks the whole structure block and refuses
//! anything `fdt` could trip over. Only then are nodes read, through `find_node("/")`, `children()`
//! and `property()` alone, and every property value is decoded here with length checks.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use fdt::node::FdtNode;
use fdt::{Fdt, FdtError};

use super::dtb_check::{be_u32, check_blob, MAX_DEPTH};
use super::error::{ConfigError, DtbDefect, ErrorKind, Expected};
use super::{
    Blob, Board, Cpu, DeviceRef, FaultPolicy, HypervisorConfig, MemoryRegion, PartitionConfig, PartitionId,
    SystemConfig, HYPERVISOR_COMPATIBLE, PARTITION_COMPATIBLE,
};
use crate::addr::{GuestPhys, HostPhys, HostRange};

/// Reads only the board (RAM and CPUs) of a DTB: used on the firmware's DTB to cross-check the
/// system DTB against the machine it actually boots on.
pub fn parse_board(dtb: &[u8]) -> Result<Board, Vec<ConfigError>> {
    let invalid = |d| vec![ConfigError::new("/", ErrorKind::InvalidDtb(d))];
    check_blob(dtb).map_err(invalid)?;
    let fdt = Fdt::new(dtb).map_err(|_| invalid(DtbDefect::Truncated))?;
    let tree = Tree::new(&fdt).ok_or_else(|| invalid(DtbDefect::Unterminated))?;
    let mut p = Parser { tree: &tree, errors: Vec::new() };
    let board = p.board();
    if p.errors.is_empty() {
        Ok(board)
    } else {
        Err(p.errors)
    }
}

/// Parses a system DTB, reporting every problem found rather than the first.
pub fn parse(dtb: &[u8]) -> Result<SystemConfig, Vec<ConfigError>> {
    let invalid = |d| vec![ConfigError::new("/", ErrorKind::InvalidDtb(d))];
    // Our own structure check first: `fdt` only ever sees blobs it cannot trip over.
    check_blob(dtb).map_err(invalid)?;
    let fdt = Fdt::new(dtb).map_err(|e| {
        invalid(match e {
            FdtError::BadMagic => DtbDefect::BadMagic,
            _ => DtbDefect::Truncated,
        })
    })?;
    let tree = Tree::new(&fdt).ok_or_else(|| invalid(DtbDefect::Unterminated))?;

    let mut p = Parser { tree: &tree, errors: Vec::new() };
    let board = p.board();
    let hypervisor_node = tree.child(0, "hypervisor");
    let (hypervisor, partitions) = match hypervisor_node {
        Some(h) => (p.hypervisor(h), p.partitions(h, &board)),
        None => {
            p.report("/hypervisor", ErrorKind::MissingNode);
            (None, Vec::new())
        }
    };
    match hypervisor {
        Some(hypervisor) if p.errors.is_empty() => Ok(SystemConfig { board, hypervisor, partitions, channels: Vec::new() }),
        _ => {
            if p.errors.is_empty() {
                p.report("/hypervisor", ErrorKind::MissingProperty { property: "memory" });
            }
            Err(p.errors)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The tree, indexed once: paths, parents and phandles.

struct Entry<'b, 'a> {
    path: String,
    node: FdtNode<'b, 'a>,
    parent: Option<usize>,
}

struct Tree<'b, 'a> {
    /// Depth-first, root first.
    nodes: Vec<Entry<'b, 'a>>,
    /// `(phandle, node index)`, sorted.
    phandles: Vec<(u32, usize)>,
}

impl<'b, 'a> Tree<'b, 'a> {
    fn new(fdt: &'b Fdt<'a>) -> Option<Self> {
        // `check_blob` guarantees the root is named "", so this never falls back to aliases.
        let root = fdt.find_node("/")?;
        let mut tree = Tree { nodes: Vec::new(), phandles: Vec::new() };
        tree.add(root, String::from("/"), None, 0);
        tree.phandles.sort_by_key(|&(phandle, index)| (phandle, index));
        Some(tree)
    }

    fn add(&mut self, node: FdtNode<'b, 'a>, path: String, parent: Option<usize>, depth: usize) {
        let index = self.nodes.len();
        let phandle =
            ["phandle", "linux,phandle"].iter().find_map(|name| node.property(name)).and_then(|p| {
                if p.value.len() == 4 {
                    be_u32(p.value, 0)
                } else {
                    None
                }
            });
        if let Some(phandle) = phandle {
            self.phandles.push((phandle, index));
        }
        self.nodes.push(Entry { path: path.clone(), node, parent });
        if depth >= MAX_DEPTH {
            return;
        }
        for child in node.children() {
            let child_path =
                if parent.is_none() { format!("/{}", child.name) } else { format!("{path}/{}", child.name) };
            self.add(child, child_path, Some(index), depth + 1);
        }
    }

    fn children(&self, parent: usize) -> impl Iterator<Item = usize> + '_ {
        self.nodes.iter().enumerate().filter(move |(_, e)| e.parent == Some(parent)).map(|(i, _)| i)
    }

    /// The child named `name` or `name@unit`.
    fn child(&self, parent: usize, name: &str) -> Option<usize> {
        self.children(parent).find(|&i| self.nodes.get(i).is_some_and(|e| base_name(e) == name))
    }

    fn by_phandle(&self, phandle: u32) -> Option<usize> {
        let first = self.phandles.partition_point(|&(p, _)| p < phandle);
        self.phandles.get(first).filter(|&&(p, _)| p == phandle).map(|&(_, i)| i)
    }
}

fn base_name<'a>(e: &Entry<'_, 'a>) -> &'a str {
    e.node.name.split('@').next().unwrap_or_default()
}

/// One NUL-terminated UTF-8 string, the whole property.
fn as_string(value: &[u8]) -> Option<&str> {
    let (&last, body) = value.split_last()?;
    if last != 0 || body.contains(&0) {
        return None;
    }
    core::str::from_utf8(body).ok()
}

/// Big-endian number of `count` (0..=2) cells starting at cell `first`.
fn read_cells(value: &[u8], first: usize, count: usize) -> Option<u64> {
    (0..count).try_fold(0u64, |acc, i| {
        let cell = be_u32(value, first.checked_add(i)?.checked_mul(4)?)?;
        Some(acc.checked_shl(32).unwrap_or(0) | u64::from(cell))
    })
}

/// `(base, size)` pairs of 2 + 2 cells.
fn ranges(value: &[u8]) -> impl Iterator<Item = (u64, u64)> + '_ {
    value.chunks_exact(16).filter_map(|c| Some((read_cells(c, 0, 2)?, read_cells(c, 2, 2)?)))
}

// ---------------------------------------------------------------------------------------------
// The binding.

struct Parser<'t, 'b, 'a> {
    tree: &'t Tree<'b, 'a>,
    errors: Vec<ConfigError>,
}

impl<'t, 'b, 'a> Parser<'t, 'b, 'a> {
    /// Records an error, unless it was just recorded (sibling nodes share a parent's cells).
    fn report(&mut self, node: &str, kind: ErrorKind) {
        let error = ConfigError::new(node, kind);
        if !self.errors.iter().rev().take(16).any(|e| *e == error) {
            self.errors.push(error);
        }
    }

    fn entry(&self, index: usize) -> Option<&'t Entry<'b, 'a>> {
        self.tree.nodes.get(index)
    }

    fn path(&self, index: usize) -> &'t str {
        self.entry(index).map_or("/", |e| e.path.as_str())
    }

    fn value(&self, index: usize, name: &str) -> Option<&'a [u8]> {
        Some(self.entry(index)?.node.property(name)?.value)
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
            _ => 4,
        };
        let value = self.value(index, property)?;
        if value.len() != bytes {
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

    fn board(&mut self) -> Board {
        let tree = self.tree;
        let mut board = Board::default();
        for index in tree.children(0) {
            let name = tree.nodes.get(index).map_or("", |e| e.node.name);
            if name == "memory" || name.starts_with("memory@") {
                let regs = self.reg(index);
                board.ram.extend(regs.into_iter().map(|(a, s)| HostRange::new(HostPhys(a), s)));
            }
        }
        let Some(cpus) = tree.child(0, "cpus") else {
            self.report("/cpus", ErrorKind::MissingNode);
            return board;
        };
        for index in tree.children(cpus) {
            let Some(e) = tree.nodes.get(index) else {
                continue;
            };
            let device_type = self.value(index, "device_type").and_then(as_string);
            if device_type == Some("cpu") || e.node.name.starts_with("cpu@") {
                let hwid = self.reg(index).first().map_or(0, |&(a, _)| a);
                let phandle = tree.phandles.iter().find(|&&(_, i)| i == index).map(|&(p, _)| p);
                board.cpus.push(Cpu { path: e.path.clone(), phandle, hwid });
            }
        }
        board
    }

    fn hypervisor(&mut self, h: usize) -> Option<HypervisorConfig> {
        if self.value(h, "compatible").is_none() {
            self.required(h, "compatible");
        } else if !self.is_compatible(h, HYPERVISOR_COMPATIBLE) {
            let found = self.compatible_text(h);
            self.report(self.path(h), ErrorKind::BadCompatible { expected: HYPERVISOR_COMPATIBLE, found });
        }
        let console = self.console(h);
        self.required(h, "memory")?;
        let memory = self.fixed(h, "memory", Expected::Cells(4))?;
        let (base, size) = ranges(memory).next()?;
        Some(HypervisorConfig { memory: HostRange::new(HostPhys(base), size), console })
    }

    fn console(&mut self, h: usize) -> Option<DeviceRef> {
        let value = self.fixed(h, "console", Expected::Phandle)?;
        let phandle = be_u32(value, 0)?;
        let Some(target) = self.tree.by_phandle(phandle) else {
            let kind = ErrorKind::UnresolvedPhandle { property: "console", phandle };
            self.report(self.path(h), kind);
            return None;
        };
        let (base, size) = *self.reg(target).first()?;
        let path = self.path(target).to_string();
        Some(DeviceRef { path, mmio: HostRange::new(HostPhys(base), size) })
    }

    fn partitions(&mut self, h: usize, board: &Board) -> Vec<PartitionConfig> {
        let mut partitions = Vec::new();
        for index in self.tree.children(h) {
            if !self.is_compatible(index, PARTITION_COMPATIBLE) {
                let compatible = self.compatible_text(index);
                self.report(self.path(index), ErrorKind::UnknownNode { compatible });
                continue;
            }
            let id = PartitionId::try_from(partitions.len()).unwrap_or(PartitionId::MAX);
            partitions.push(self.partition(index, id, board));
        }
        partitions
    }

    /// One partition; problems are reported and replaced by defaults so that parsing goes on.
    fn partition(&mut self, index: usize, id: PartitionId, board: &Board) -> PartitionConfig {
        let memory = self.memory(index);
        let image_path = self.string(index, "image").map(String::from);
        let image = self.blob(index, "tantalum,image", "tantalum,image-sha256");
        let guest_dtb = self.blob(index, "tantalum,guest-dtb", "tantalum,guest-dtb-sha256");
        if image_path.is_none() && self.value(index, "tantalum,image").is_none() {
            self.required(index, "image");
        }
        let entry = match self.fixed(index, "entry", Expected::Cells(2)) {
            Some(v) => GuestPhys(read_cells(v, 0, 2).unwrap_or_default()),
            None => memory.first().map_or(GuestPhys(0), |r| r.guest),
        };
        let on_fault = match self.string(index, "on-fault") {
            None => FaultPolicy::default(),
            Some(name) => FaultPolicy::from_name(name).unwrap_or_else(|| {
                let kind = ErrorKind::UnknownFaultPolicy { value: name.to_string() };
                self.report(self.path(index), kind);
                FaultPolicy::default()
            }),
        };
        let boot_order = self.fixed(index, "boot-order", Expected::Cells(1));
        let entry_node = self.entry(index);
        PartitionConfig {
            id,
            name: entry_node.map(base_name).unwrap_or_default().to_string(),
            path: self.path(index).to_string(),
            cpus: self.cpus(index, board),
            memory,
            image_path,
            image,
            guest_dtb,
            image_size_hint: None,
            entry,
            on_fault,
            boot_order: boot_order.and_then(|v| be_u32(v, 0)).unwrap_or_default(),
            bootargs: None,
            devices: Vec::new(),
            virtual_uart: false,
        }
    }

    fn cpus(&mut self, index: usize, board: &Board) -> Vec<usize> {
        let Some(value) = self.required(index, "cpus") else {
            return Vec::new();
        };
        if value.is_empty() || !value.len().is_multiple_of(4) {
            self.malformed(index, "cpus", value.len(), Expected::Phandles);
            return Vec::new();
        }
        let mut cpus = Vec::new();
        for phandle in value.chunks_exact(4).filter_map(|c| be_u32(c, 0)) {
            let Some(target) = self.tree.by_phandle(phandle) else {
                let kind = ErrorKind::UnresolvedPhandle { property: "cpus", phandle };
                self.report(self.path(index), kind);
                continue;
            };
            let target = self.path(target);
            match board.cpus.iter().position(|c| c.path == target) {
                Some(cpu) => cpus.push(cpu),
                None => {
                    let kind = ErrorKind::NotACpu { phandle, target: target.to_string() };
                    self.report(self.path(index), kind);
                }
            }
        }
        cpus
    }

    fn memory(&mut self, index: usize) -> Vec<MemoryRegion> {
        let Some(value) = self.required(index, "memory") else {
            return Vec::new();
        };
        if value.is_empty() || !value.len().is_multiple_of(16) {
            self.malformed(index, "memory", value.len(), Expected::CellGroups(4));
            return Vec::new();
        }
        let mut regions: Vec<MemoryRegion> = ranges(value)
            .map(|(base, size)| MemoryRegion { host: HostPhys(base), guest: GuestPhys(base), size })
            .collect();
        if let Some(guest) = self.value(index, "guest-addresses") {
            if guest.len() != regions.len() * 8 {
                let expected = Expected::AddressPerRegion { regions: regions.len() };
                self.malformed(index, "guest-addresses", guest.len(), expected);
            } else {
                for (region, chunk) in regions.iter_mut().zip(guest.chunks_exact(8)) {
                    region.guest = GuestPhys(read_cells(chunk, 0, 2).unwrap_or_default());
                }
            }
        }
        regions
    }

    /// `offset size` (2 + 2 cells) plus the SHA-256 in its companion property.
    fn blob(&mut self, index: usize, name: &'static str, hash_name: &'static str) -> Option<Blob> {
        let location = self.fixed(index, name, Expected::Cells(4));
        let hash = self.fixed(index, hash_name, Expected::Bytes(32));
        let (has_location, has_hash) =
            (self.value(index, name).is_some(), self.value(index, hash_name).is_some());
        if has_location != has_hash {
            let (present, missing) = if has_location { (name, hash_name) } else { (hash_name, name) };
            self.report(self.path(index), ErrorKind::IncompleteBlob { present, missing });
        }
        let (offset, size) = ranges(location?).next()?;
        Some(Blob { offset, size, sha256: hash?.try_into().ok()? })
    }
}

#[cfg(test)]
mod tests;
