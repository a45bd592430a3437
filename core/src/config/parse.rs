//! DTB → [`SystemConfig`]: the system device tree binding v1 (see `docs/config.md`).
//!
//! The blob is untrusted (the hypervisor parses it at boot). `fdt` 0.1 panics or recurses without
//! bound on malformed blobs, so [`check_blob`] first walks the whole structure block and refuses
//! anything `fdt` could trip over. Only then are nodes read, through `find_node("/")`, `children()`
//! and `property()` alone, and every property value is decoded here with length checks.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use fdt::node::FdtNode;
use fdt::{Fdt, FdtError};

use super::error::{ConfigError, DtbDefect, ErrorKind, Expected};
use super::{
    Blob, Board, Cpu, DeviceRef, FaultPolicy, HypervisorConfig, MemoryRegion, PartitionConfig, PartitionId,
    SystemConfig, HYPERVISOR_COMPATIBLE, PARTITION_COMPATIBLE,
};
use crate::addr::{GuestPhys, HostPhys, HostRange};

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_END: u32 = 9;
/// Deepest node nesting accepted (QEMU's trees are 4 deep; `fdt` itself copes with 63).
const MAX_DEPTH: usize = 32;

/// Parses a system DTB, reporting every problem found rather than the first.
pub fn parse(dtb: &[u8]) -> Result<SystemConfig, Vec<ConfigError>> {
    let invalid = |d| vec![ConfigError::new("/", ErrorKind::InvalidDtb(d))];
    let fdt = Fdt::new(dtb).map_err(|e| {
        invalid(match e {
            FdtError::BadMagic => DtbDefect::BadMagic,
            _ => DtbDefect::Truncated,
        })
    })?;
    check_blob(dtb).map_err(invalid)?;
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
        Some(hypervisor) if p.errors.is_empty() => Ok(SystemConfig { board, hypervisor, partitions }),
        _ => {
            if p.errors.is_empty() {
                p.report("/hypervisor", ErrorKind::MissingProperty { property: "memory" });
            }
            Err(p.errors)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Blob check: everything `fdt` 0.1 assumes, verified once.

fn be_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    let end = offset.checked_add(4)?;
    Some(u32::from_be_bytes(bytes.get(offset..end)?.try_into().ok()?))
}

fn align4(n: usize) -> Option<usize> {
    Some(n.checked_add(3)? & !3)
}

fn block(data: &[u8], offset: u32, size: u32) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(size).ok()?)?;
    data.get(start..end)
}

/// A NUL-terminated UTF-8 string at the start of `bytes`.
fn c_str(bytes: &[u8]) -> Option<&str> {
    let nul = bytes.iter().position(|&b| b == 0)?;
    core::str::from_utf8(bytes.get(..nul)?).ok()
}

/// Checks the header and walks the structure block: one root, balanced nodes, valid names,
/// properties before children and inside their blocks, no NOP, `FDT_END` last.
fn check_blob(dtb: &[u8]) -> Result<(), DtbDefect> {
    let field = |i: usize| be_u32(dtb, i * 4).ok_or(DtbDefect::Truncated);
    if field(0)? != FDT_MAGIC {
        return Err(DtbDefect::BadMagic);
    }
    let total = usize::try_from(field(1)?).map_err(|_| DtbDefect::Truncated)?;
    let data = dtb.get(..total).ok_or(DtbDefect::Truncated)?;
    let version = field(5)?;
    if version < 17 {
        return Err(DtbDefect::UnsupportedVersion { version });
    }
    let structs =
        block(data, field(2)?, field(9)?).ok_or(DtbDefect::BlockOutOfBounds { block: "structure" })?;
    let strings =
        block(data, field(3)?, field(8)?).ok_or(DtbDefect::BlockOutOfBounds { block: "strings" })?;
    walk_structure(structs, strings)
}

fn walk_structure(structs: &[u8], strings: &[u8]) -> Result<(), DtbDefect> {
    let mut pos = 0usize;
    let mut depth = 0usize;
    let mut seen_root = false;
    let mut props_allowed = false;
    // Every iteration moves `pos` forward by at least 4 bytes, so this ends.
    while let Some(token) = be_u32(structs, pos) {
        let offset = pos;
        pos += 4;
        match token {
            FDT_BEGIN_NODE if !(depth == 0 && seen_root) => {
                let bad = DtbDefect::BadNodeName { offset };
                let name = c_str(structs.get(pos..).unwrap_or_default()).ok_or(bad)?;
                if (depth == 0) != name.is_empty() || name.contains('/') {
                    return Err(bad);
                }
                pos = pos.checked_add(align4(name.len() + 1).ok_or(bad)?).ok_or(bad)?;
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(DtbDefect::TooDeep { max: MAX_DEPTH });
                }
                seen_root = true;
                props_allowed = true;
            }
            FDT_PROP if depth > 0 => {
                if !props_allowed {
                    return Err(DtbDefect::PropertyAfterChild { offset });
                }
                let bad = DtbDefect::BadProperty { offset };
                let len = be_u32(structs, pos).ok_or(bad)?;
                let name_offset = be_u32(structs, pos + 4).ok_or(bad)?;
                let len = usize::try_from(len).map_err(|_| bad)?;
                let value_start = pos + 8;
                let value_end = value_start.checked_add(len).ok_or(bad)?;
                if value_end > structs.len() {
                    return Err(bad);
                }
                let name_offset = usize::try_from(name_offset).map_err(|_| bad)?;
                c_str(strings.get(name_offset..).ok_or(bad)?).ok_or(bad)?;
                pos = value_start.checked_add(align4(len).ok_or(bad)?).ok_or(bad)?;
            }
            FDT_END_NODE if depth > 0 => {
                depth -= 1;
                props_allowed = false;
            }
            FDT_END if depth == 0 && seen_root => return Ok(()),
            _ => return Err(DtbDefect::BadToken { offset, token }),
        }
    }
    Err(DtbDefect::Unterminated)
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
mod tests {
    use super::*;
    use crate::config::Blob;
    use alloc::borrow::ToOwned;

    /// A property or a node, for building blobs without `dtc`.
    enum Item {
        Prop(&'static str, Vec<u8>),
        Node(String, Vec<Item>),
    }
    use Item::{Node, Prop};

    fn cells(c: &[u32]) -> Vec<u8> {
        c.iter().flat_map(|c| c.to_be_bytes()).collect()
    }
    fn string(s: &str) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    }
    fn node(name: &str, items: Vec<Item>) -> Item {
        Node(name.to_owned(), items)
    }

    /// Serialises a tree in the layout `dtc` writes (version 17).
    fn build(root: Vec<Item>) -> Vec<u8> {
        fn emit(item: &Item, s: &mut Vec<u8>, strings: &mut Vec<u8>) {
            match item {
                Prop(name, value) => {
                    let offset = strings.len() as u32;
                    strings.extend(string(name));
                    s.extend(cells(&[FDT_PROP, value.len() as u32, offset]));
                    s.extend(value);
                    s.resize(s.len().next_multiple_of(4), 0);
                }
                Node(name, items) => {
                    s.extend(cells(&[FDT_BEGIN_NODE]));
                    s.extend(string(name));
                    s.resize(s.len().next_multiple_of(4), 0);
                    items.iter().for_each(|i| emit(i, s, strings));
                    s.extend(cells(&[FDT_END_NODE]));
                }
            }
        }
        let (mut s, mut strings) = (Vec::new(), Vec::new());
        emit(&node("", root), &mut s, &mut strings);
        s.extend(cells(&[FDT_END]));
        let (off_struct, off_strings) = (56, 56 + s.len() as u32);
        let total = off_strings + strings.len() as u32;
        let header = [FDT_MAGIC, total, off_struct, off_strings, 40, 17, 16, 0];
        let mut blob = cells(&header);
        blob.extend(cells(&[strings.len() as u32, s.len() as u32, 0, 0, 0, 0]));
        blob.extend(s);
        blob.extend(strings);
        blob
    }

    fn board() -> Vec<Item> {
        let cpu = |n: u32| {
            let props = vec![
                Prop("device_type", string("cpu")),
                Prop("reg", cells(&[n])),
                Prop("phandle", cells(&[n + 1])),
            ];
            node(&format!("cpu@{n}"), props)
        };
        vec![
            Prop("#address-cells", cells(&[2])),
            Prop("#size-cells", cells(&[2])),
            node(
                "memory@40000000",
                vec![
                    Prop("device_type", string("memory")),
                    Prop("reg", cells(&[0, 0x4000_0000, 0, 0x4000_0000])),
                ],
            ),
            node(
                "cpus",
                vec![Prop("#address-cells", cells(&[1])), Prop("#size-cells", cells(&[0])), cpu(0), cpu(1)],
            ),
            node(
                "pl011@9000000",
                vec![Prop("reg", cells(&[0, 0x900_0000, 0, 0x1000])), Prop("phandle", cells(&[9]))],
            ),
        ]
    }

    fn ping() -> Vec<Item> {
        vec![
            Prop("compatible", string(PARTITION_COMPATIBLE)),
            Prop("cpus", cells(&[1])),
            Prop("memory", cells(&[0, 0x4200_0000, 0, 0x100_0000])),
            Prop("image", string("hello.bin")),
        ]
    }

    fn hypervisor() -> Vec<Item> {
        vec![
            Prop("compatible", string(HYPERVISOR_COMPATIBLE)),
            Prop("memory", cells(&[0, 0x4000_0000, 0, 0x200_0000])),
            Prop("console", cells(&[9])),
        ]
    }

    /// `items` with property `name` replaced (or removed, for `None`; added if absent).
    fn with(mut items: Vec<Item>, name: &'static str, value: Option<Vec<u8>>) -> Vec<Item> {
        let at = items.iter().position(|i| matches!(i, Prop(n, _) if *n == name));
        match (at, value) {
            (Some(at), Some(v)) => items[at] = Prop(name, v),
            (Some(at), None) => drop(items.remove(at)),
            (None, Some(v)) => items.push(Prop(name, v)),
            (None, None) => {}
        }
        items
    }

    fn system(hyp: Vec<Item>, partitions: Vec<(&str, Vec<Item>)>) -> Vec<u8> {
        let mut h = hyp;
        h.extend(partitions.into_iter().map(|(n, p)| node(n, p)));
        let mut root = board();
        root.push(node("hypervisor", h));
        build(root)
    }

    fn one(partition: Vec<Item>) -> Vec<u8> {
        system(hypervisor(), vec![("ping", partition)])
    }

    fn errors(dtb: &[u8]) -> Vec<ConfigError> {
        parse(dtb).err().unwrap_or_default()
    }

    /// The error matching `pattern`, checked to name its node and contain `words`.
    macro_rules! assert_error {
        ($dtb:expr, $node:expr, $pattern:pat, [$($word:expr),*]) => {{
            let errors = errors(&$dtb);
            let found = errors.iter().find(|e| matches!(e.kind, $pattern));
            let found = found.unwrap_or_else(|| panic!("no {} in {errors:#?}", stringify!($pattern)));
            let text = found.to_string();
            assert!(text.starts_with(&format!("{}: ", $node)), "{text}");
            $(assert!(text.contains($word), "{text:?} lacks {:?}", $word);)*
            text
        }};
    }

    #[test]
    fn parses_a_minimal_system() {
        let cfg = parse(&one(ping())).expect("parses");
        assert_eq!(cfg.board.ram, [HostRange::new(HostPhys(0x4000_0000), 0x4000_0000)]);
        assert_eq!(cfg.board.cpus.len(), 2);
        assert_eq!(cfg.board.cpus[1], Cpu { path: "/cpus/cpu@1".into(), phandle: Some(2), hwid: 1 });
        assert_eq!(cfg.hypervisor.memory, HostRange::new(HostPhys(0x4000_0000), 0x200_0000));
        let console = cfg.hypervisor.console.expect("console");
        assert_eq!(console.path, "/pl011@9000000");
        assert_eq!(console.mmio, HostRange::new(HostPhys(0x900_0000), 0x1000));
        let p = &cfg.partitions[0];
        assert_eq!((p.id, p.name.as_str(), p.path.as_str()), (0, "ping", "/hypervisor/ping"));
        assert_eq!(p.cpus, [0]);
        let region =
            MemoryRegion { host: HostPhys(0x4200_0000), guest: GuestPhys(0x4200_0000), size: 0x100_0000 };
        assert_eq!(p.memory, [region]);
        assert_eq!(p.image_path.as_deref(), Some("hello.bin"));
        assert_eq!((p.image, p.guest_dtb, p.image_size_hint), (None, None, None));
        assert_eq!(p.entry, GuestPhys(0x4200_0000));
        assert_eq!((p.on_fault, p.boot_order), (FaultPolicy::Stop, 0));
    }

    #[test]
    fn parses_every_optional_property() {
        let mut sha = [0u8; 32];
        sha[0] = 0xab;
        let p = with(ping(), "memory", Some(cells(&[0, 0x4200_0000, 0, 0x1000, 0, 0x4300_0000, 0, 0x2000])));
        let p = with(p, "guest-addresses", Some(cells(&[0, 0, 0, 0x8000])));
        let p = with(p, "entry", Some(cells(&[0, 0x80])));
        let p = with(p, "on-fault", Some(string("halt-system")));
        let p = with(p, "boot-order", Some(cells(&[7])));
        let p = with(p, "cpus", Some(cells(&[2, 1])));
        let p = with(p, "image", None);
        let p = with(p, "tantalum,image", Some(cells(&[0, 0x100, 0, 0x200])));
        let p = with(p, "tantalum,image-sha256", Some(sha.to_vec()));
        let p = with(p, "tantalum,guest-dtb", Some(cells(&[0, 0x300, 0, 0x40])));
        let p = with(p, "tantalum,guest-dtb-sha256", Some(sha.to_vec()));
        let p = with(p, "unknown-property", Some(cells(&[1, 2, 3])));
        let hyp = with(hypervisor(), "console", None);
        let cfg = parse(&system(hyp, vec![("ping@1", p), ("pong", ping())])).expect("parses");
        assert_eq!(cfg.hypervisor.console, None);
        let p = &cfg.partitions[0];
        assert_eq!((p.name.as_str(), p.path.as_str()), ("ping", "/hypervisor/ping@1"));
        assert_eq!(p.cpus, [1, 0]);
        assert_eq!(p.memory[1].guest, GuestPhys(0x8000));
        assert_eq!(p.memory[1].host, HostPhys(0x4300_0000));
        assert_eq!(p.entry, GuestPhys(0x80));
        assert_eq!((p.on_fault, p.boot_order), (FaultPolicy::HaltSystem, 7));
        assert_eq!(p.image, Some(Blob { offset: 0x100, size: 0x200, sha256: sha }));
        assert_eq!(p.guest_dtb, Some(Blob { offset: 0x300, size: 0x40, sha256: sha }));
        assert_eq!(p.image_path, None);
        assert_eq!(cfg.partitions[1].id, 1);
    }

    fn defect(dtb: &[u8]) -> DtbDefect {
        match errors(dtb).as_slice() {
            [ConfigError { node, kind: ErrorKind::InvalidDtb(d) }] if node == "/" => *d,
            other => panic!("expected one InvalidDtb error, got {other:#?}"),
        }
    }

    fn set_word(blob: &mut [u8], at: usize, word: u32) {
        blob[at..at + 4].copy_from_slice(&word.to_be_bytes());
    }

    #[test]
    fn rule_10_refuses_broken_blobs() {
        let good = one(ping());
        assert_eq!(defect(&[]), DtbDefect::Truncated);
        assert_eq!(defect(&good[..good.len() - 1]), DtbDefect::Truncated);
        let mut b = good.clone();
        b[0] = 0;
        assert_eq!(defect(&b), DtbDefect::BadMagic);
        let mut b = good.clone();
        set_word(&mut b, 20, 16);
        assert_eq!(defect(&b), DtbDefect::UnsupportedVersion { version: 16 });
        let mut b = good.clone();
        set_word(&mut b, 36, 0xffff_0000);
        assert_eq!(defect(&b), DtbDefect::BlockOutOfBounds { block: "structure" });
        let mut b = good.clone();
        set_word(&mut b, 12, 0xffff_fff0);
        assert_eq!(defect(&b), DtbDefect::BlockOutOfBounds { block: "strings" });
        // A NOP where the root's first property was.
        let mut b = good.clone();
        set_word(&mut b, 56 + 8, 4);
        assert_eq!(defect(&b), DtbDefect::BadToken { offset: 8, token: 4 });
        // The first property's name offset points past the strings block.
        let mut b = good.clone();
        set_word(&mut b, 56 + 16, 0x7fff_ffff);
        assert_eq!(defect(&b), DtbDefect::BadProperty { offset: 8 });
        // The first property's length runs past the structure block.
        let mut b = good.clone();
        set_word(&mut b, 56 + 12, 0x10_0000);
        assert_eq!(defect(&b), DtbDefect::BadProperty { offset: 8 });
        // No FDT_END: cut the structure block short by one word.
        let mut b = good.clone();
        let size = u32::from_be_bytes(b[36..40].try_into().unwrap());
        set_word(&mut b, 36, size - 4);
        assert_eq!(defect(&b), DtbDefect::Unterminated);
        let text = ConfigError::new("/", ErrorKind::InvalidDtb(DtbDefect::Unterminated)).to_string();
        assert!(text.starts_with("/: not a valid device tree blob"), "{text}");
    }

    #[test]
    fn rule_10_refuses_bad_structure() {
        let after_child = build(vec![node("a", vec![]), Prop("late", cells(&[1]))]);
        assert!(matches!(defect(&after_child), DtbDefect::PropertyAfterChild { .. }));
        let mut deep = node("leaf", vec![]);
        for _ in 0..MAX_DEPTH {
            deep = node("n", vec![deep]);
        }
        assert_eq!(defect(&build(vec![deep])), DtbDefect::TooDeep { max: MAX_DEPTH });
        let slash = build(vec![node("a/b", vec![])]);
        assert!(matches!(defect(&slash), DtbDefect::BadNodeName { .. }));
        let unnamed = build(vec![node("", vec![])]);
        assert!(matches!(defect(&unnamed), DtbDefect::BadNodeName { .. }));
    }

    #[test]
    fn never_panics_on_any_prefix_or_single_byte_change() {
        let good = system(hypervisor(), vec![("ping", ping()), ("pong", ping())]);
        for len in 0..good.len() {
            let _ = parse(&good[..len]);
        }
        for at in 0..good.len() {
            for value in [0x00, 0x01, 0x03, 0x09, 0x7f, 0xff] {
                let mut b = good.clone();
                b[at] = value;
                let _ = parse(&b);
            }
        }
    }

    #[test]
    fn rule_10_missing_nodes() {
        assert_error!(build(board()), "/hypervisor", ErrorKind::MissingNode, ["required node is missing"]);
        let no_cpus: Vec<Item> =
            board().into_iter().filter(|i| !matches!(i, Node(n, _) if n == "cpus")).collect();
        let mut root = no_cpus;
        root.push(node("hypervisor", hypervisor()));
        assert_error!(build(root), "/cpus", ErrorKind::MissingNode, ["missing"]);
    }

    #[test]
    fn rule_10_hypervisor_compatible() {
        let hyp = with(hypervisor(), "compatible", Some(string("other,thing")));
        let dtb = system(hyp, vec![("ping", ping())]);
        assert_error!(
            dtb,
            "/hypervisor",
            ErrorKind::BadCompatible { .. },
            ["\"other,thing\"", HYPERVISOR_COMPATIBLE]
        );
        let hyp = with(hypervisor(), "compatible", None);
        let dtb = system(hyp, vec![("ping", ping())]);
        assert_error!(
            dtb,
            "/hypervisor",
            ErrorKind::MissingProperty { property: "compatible" },
            ["missing required property 'compatible'"]
        );
    }

    #[test]
    fn rule_10_unknown_child_of_hypervisor() {
        let dtb = system(hypervisor(), vec![("ping", ping()), ("chan", vec![])]);
        assert_error!(
            dtb,
            "/hypervisor/chan",
            ErrorKind::UnknownNode { compatible: None },
            ["unknown node", PARTITION_COMPATIBLE]
        );
    }

    #[test]
    fn rule_10_missing_properties() {
        for property in ["cpus", "memory", "image"] {
            let dtb = one(with(ping(), property, None));
            let text = assert_error!(dtb, "/hypervisor/ping", ErrorKind::MissingProperty { .. }, []);
            assert!(text.ends_with(&format!("missing required property '{property}'")), "{text}");
        }
        let dtb = system(with(hypervisor(), "memory", None), vec![("ping", ping())]);
        assert_error!(dtb, "/hypervisor", ErrorKind::MissingProperty { property: "memory" }, []);
    }

    #[test]
    fn rule_10_malformed_properties() {
        let cases: [(&str, Vec<u8>, &str); 9] = [
            ("memory", cells(&[0, 0x4200_0000, 0x100_0000]), "12 bytes"),
            ("memory", Vec::new(), "0 bytes"),
            ("cpus", vec![0, 1], "one or more phandles"),
            ("entry", cells(&[0x4200_0000]), "2 cells"),
            ("boot-order", cells(&[0, 1]), "one 32-bit cell"),
            ("on-fault", cells(&[1]), "a string"),
            ("image", b"no-nul".to_vec(), "a string"),
            ("tantalum,image", cells(&[0, 1, 2]), "4 cells"),
            ("guest-addresses", cells(&[0, 0, 0, 0]), "one 2-cell address per memory region (1 regions"),
        ];
        for (property, value, words) in cases {
            let dtb = one(with(ping(), property, Some(value)));
            let text = assert_error!(
                dtb,
                "/hypervisor/ping",
                ErrorKind::MalformedProperty { .. },
                ["malformed property", words]
            );
            assert!(text.contains(&format!("'{property}'")), "{text}");
        }
        let dtb = system(with(hypervisor(), "memory", Some(cells(&[1]))), vec![("ping", ping())]);
        assert_error!(dtb, "/hypervisor", ErrorKind::MalformedProperty { property: "memory", .. }, []);
        let sha = with(ping(), "tantalum,image", Some(cells(&[0, 0, 0, 16])));
        let dtb = one(with(sha, "tantalum,image-sha256", Some(vec![0; 31])));
        assert_error!(
            dtb,
            "/hypervisor/ping",
            ErrorKind::MalformedProperty { .. },
            ["'tantalum,image-sha256'", "32 bytes"]
        );
    }

    #[test]
    fn rule_10_unknown_fault_policy() {
        let dtb = one(with(ping(), "on-fault", Some(string("reboot"))));
        assert_error!(
            dtb,
            "/hypervisor/ping",
            ErrorKind::UnknownFaultPolicy { .. },
            ["\"reboot\"", "\"stop\"", "\"restart\"", "\"halt-system\""]
        );
    }

    #[test]
    fn rule_6_cpu_phandles_must_name_board_cpus() {
        let dtb = one(with(ping(), "cpus", Some(cells(&[1, 0x77]))));
        assert_error!(
            dtb,
            "/hypervisor/ping",
            ErrorKind::UnresolvedPhandle { phandle: 0x77, .. },
            ["cpus", "phandle 0x77"]
        );
        let dtb = one(with(ping(), "cpus", Some(cells(&[9]))));
        assert_error!(
            dtb,
            "/hypervisor/ping",
            ErrorKind::NotACpu { phandle: 9, .. },
            ["/pl011@9000000", "not a CPU"]
        );
    }

    #[test]
    fn rule_10_console_must_resolve_to_a_device_with_reg() {
        let dtb = system(with(hypervisor(), "console", Some(cells(&[0x55]))), vec![("ping", ping())]);
        assert_error!(
            dtb,
            "/hypervisor",
            ErrorKind::UnresolvedPhandle { property: "console", .. },
            ["console", "0x55"]
        );
        // A console device without `reg`:
        let mut root = board();
        root.push(node("dev", vec![Prop("phandle", cells(&[0x60]))]));
        let mut h = with(hypervisor(), "console", Some(cells(&[0x60])));
        h.push(node("ping", ping()));
        root.push(node("hypervisor", h));
        assert_error!(build(root), "/dev", ErrorKind::MissingProperty { property: "reg" }, []);
    }

    #[test]
    fn rule_10_blob_needs_its_hash() {
        let dtb = one(with(ping(), "tantalum,guest-dtb", Some(cells(&[0, 0, 0, 16]))));
        assert_error!(
            dtb,
            "/hypervisor/ping",
            ErrorKind::IncompleteBlob { .. },
            ["'tantalum,guest-dtb' without 'tantalum,guest-dtb-sha256'"]
        );
        let dtb = one(with(ping(), "tantalum,image-sha256", Some(vec![0; 32])));
        assert_error!(
            dtb,
            "/hypervisor/ping",
            ErrorKind::IncompleteBlob { present: "tantalum,image-sha256", .. },
            ["without 'tantalum,image'"]
        );
    }

    #[test]
    fn rule_10_unsupported_cells() {
        let mut root = with(board(), "#address-cells", Some(cells(&[3])));
        root.push(node("hypervisor", hypervisor()));
        assert_error!(
            build(root),
            "/",
            ErrorKind::UnsupportedCells { address_cells: 3, size_cells: 2 },
            ["#address-cells = 3"]
        );
        let mut root = with(board(), "#size-cells", Some(vec![0, 0]));
        root.push(node("hypervisor", hypervisor()));
        assert_error!(build(root), "/", ErrorKind::MalformedProperty { property: "#size-cells", .. }, []);
    }

    #[test]
    fn collects_errors_from_every_partition() {
        let bad = with(ping(), "memory", None);
        let worse = with(with(ping(), "cpus", None), "on-fault", Some(string("?")));
        let errors = errors(&system(hypervisor(), vec![("a", bad), ("b", worse), ("c", ping())]));
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert_eq!(errors[0].node, "/hypervisor/a");
        assert!(errors[1..].iter().all(|e| e.node == "/hypervisor/b"));
    }
}
