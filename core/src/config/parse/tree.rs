//! The tree, indexed once: paths, parents and phandles; and the property decoders.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use fdt::node::FdtNode;
use fdt::Fdt;

use super::super::dtb_check::{be_u32, MAX_DEPTH};

pub(super) struct Entry<'b, 'a> {
    pub(super) path: String,
    pub(super) node: FdtNode<'b, 'a>,
    /// `(name, value)` of every property, read once (`fdt` re-parses on every lookup).
    pub(super) properties: Vec<(&'a str, &'a [u8])>,
    /// Always a smaller index than the entry's own (the tree is stored depth-first).
    pub(super) parent: Option<usize>,
}

pub(super) struct Tree<'b, 'a> {
    /// Depth-first, root first.
    pub(super) nodes: Vec<Entry<'b, 'a>>,
    /// `(phandle, node index)`, sorted.
    pub(super) phandles: Vec<(u32, usize)>,
}

impl<'b, 'a> Tree<'b, 'a> {
    pub(super) fn new(fdt: &'b Fdt<'a>) -> Option<Self> {
        // `check_blob` guarantees the root is named "", so this never falls back to aliases.
        let root = fdt.find_node("/")?;
        let mut tree = Tree { nodes: Vec::new(), phandles: Vec::new() };
        tree.add(root, String::from("/"), None, 0);
        tree.phandles.sort_by_key(|&(phandle, index)| (phandle, index));
        Some(tree)
    }

    fn add(&mut self, node: FdtNode<'b, 'a>, path: String, parent: Option<usize>, depth: usize) {
        let index = self.nodes.len();
        let properties: Vec<(&'a str, &'a [u8])> = node.properties().map(|p| (p.name, p.value)).collect();
        let phandle = ["phandle", "linux,phandle"]
            .iter()
            .find_map(|name| properties.iter().find(|(n, _)| n == name))
            .and_then(|&(_, value)| if value.len() == 4 { be_u32(value, 0) } else { None });
        if let Some(phandle) = phandle {
            self.phandles.push((phandle, index));
        }
        self.nodes.push(Entry { path: path.clone(), node, parent, properties });
        if depth >= MAX_DEPTH {
            return;
        }
        for child in node.children() {
            let child_path =
                if parent.is_none() { format!("/{}", child.name) } else { format!("{path}/{}", child.name) };
            self.add(child, child_path, Some(index), depth + 1);
        }
    }

    pub(super) fn children(&self, parent: usize) -> impl Iterator<Item = usize> + '_ {
        self.nodes.iter().enumerate().filter(move |(_, e)| e.parent == Some(parent)).map(|(i, _)| i)
    }

    /// The child named `name` or `name@unit`.
    pub(super) fn child(&self, parent: usize, name: &str) -> Option<usize> {
        self.children(parent).find(|&i| self.nodes.get(i).is_some_and(|e| base_name(e) == name))
    }

    pub(super) fn by_phandle(&self, phandle: u32) -> Option<usize> {
        let first = self.phandles.partition_point(|&(p, _)| p < phandle);
        self.phandles.get(first).filter(|&&(p, _)| p == phandle).map(|&(_, i)| i)
    }

    /// The phandle of node `index`, if it has one.
    pub(super) fn phandle_of(&self, index: usize) -> Option<u32> {
        self.phandles.iter().find(|&&(_, i)| i == index).map(|&(p, _)| p)
    }

    /// Whether `index` is `ancestor` or lies below it.
    pub(super) fn is_within(&self, index: usize, ancestor: usize) -> bool {
        let mut at = Some(index);
        while let Some(i) = at {
            if i == ancestor {
                return true;
            }
            // Parents have smaller indices, so this walk ends.
            at = self.nodes.get(i).and_then(|e| e.parent).filter(|&p| p < i);
        }
        false
    }
}

impl<'a> Entry<'_, 'a> {
    /// The value of property `name`, if the node has it.
    pub(super) fn property(&self, name: &str) -> Option<&'a [u8]> {
        self.properties.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
    }
}

pub(super) fn base_name<'a>(e: &Entry<'_, 'a>) -> &'a str {
    e.node.name.split('@').next().unwrap_or_default()
}

/// One NUL-terminated UTF-8 string, the whole property.
pub(super) fn as_string(value: &[u8]) -> Option<&str> {
    let (&last, body) = value.split_last()?;
    if last != 0 || body.contains(&0) {
        return None;
    }
    core::str::from_utf8(body).ok()
}

/// Big-endian number of `count` (0..=2) cells starting at cell `first`.
pub(super) fn read_cells(value: &[u8], first: usize, count: usize) -> Option<u64> {
    (0..count).try_fold(0u64, |acc, i| {
        let cell = be_u32(value, first.checked_add(i)?.checked_mul(4)?)?;
        Some(acc.checked_shl(32).unwrap_or(0) | u64::from(cell))
    })
}

/// `(base, size)` pairs of 2 + 2 cells.
pub(super) fn ranges(value: &[u8]) -> impl Iterator<Item = (u64, u64)> + '_ {
    value.chunks_exact(16).filter_map(|c| Some((read_cells(c, 0, 2)?, read_cells(c, 2, 2)?)))
}

/// The 32-bit cells of a property whose length is a multiple of 4.
pub(super) fn u32_cells(value: &[u8]) -> impl Iterator<Item = u32> + '_ {
    value.chunks_exact(4).filter_map(|c| be_u32(c, 0))
}
