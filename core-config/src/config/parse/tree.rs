//! The tree, indexed once: paths, parents and phandles; and the property decoders.

use alloc::string::String;
use alloc::vec::Vec;

use super::super::dtb_check::{be_u32, RawNode};

pub(super) struct Entry<'a> {
    pub(super) path: String,
    /// The node name with its unit address.
    pub(super) name: &'a str,
    /// Always a smaller index than the entry's own (the tree is stored depth-first).
    pub(super) parent: Option<usize>,
    /// `(name, value)` of every property.
    pub(super) properties: Vec<(&'a str, &'a [u8])>,
}

pub(super) struct Tree<'a> {
    /// Depth-first, root first.
    pub(super) nodes: Vec<Entry<'a>>,
    /// `(phandle, node index)`, sorted.
    pub(super) phandles: Vec<(u32, usize)>,
}

impl<'a> Tree<'a> {
    /// Indexes the nodes `dtb_check::read_blob` returned (depth-first, parents first).
    pub(super) fn new(raw: Vec<RawNode<'a>>) -> Self {
        let mut tree = Tree { nodes: Vec::with_capacity(raw.len()), phandles: Vec::new() };
        for (index, node) in raw.into_iter().enumerate() {
            let parent = node.parent.filter(|&p| p < index);
            // Pushed, not `format!`ted: the hypervisor has no formatting outside its console.
            let path = match parent.and_then(|p| tree.nodes.get(p)) {
                None => String::from("/"),
                Some(p) => {
                    let prefix = if p.parent.is_none() { "" } else { p.path.as_str() };
                    let mut path = String::with_capacity(prefix.len() + 1 + node.name.len());
                    path.push_str(prefix);
                    path.push('/');
                    path.push_str(node.name);
                    path
                }
            };
            let entry = Entry { path, name: node.name, parent, properties: node.properties };
            let phandle = ["phandle", "linux,phandle"].iter().find_map(|name| entry.property(name));
            if let Some(phandle) = phandle.filter(|v| v.len() == 4).and_then(|v| be_u32(v, 0)) {
                tree.phandles.push((phandle, index));
            }
            tree.nodes.push(entry);
        }
        crate::sort::sort(&mut tree.phandles);
        tree
    }

    pub(super) fn children(&self, parent: usize) -> impl Iterator<Item = usize> + '_ {
        self.nodes.iter().enumerate().filter(move |(_, e)| e.parent == Some(parent)).map(|(i, _)| i)
    }

    /// The child named `name` or `name@unit` (`name` without a unit).
    pub(super) fn child(&self, parent: usize, name: &str) -> Option<usize> {
        // A prefix compare, not `base_name`: the search runs over every node for each child
        // looked up, and splitting each name at '@' was most of the parser's time at boot.
        if name.contains('@') {
            return None;
        }
        self.children(parent).find(|&i| {
            self.nodes
                .get(i)
                .and_then(|e| e.name.strip_prefix(name))
                .is_some_and(|unit| unit.is_empty() || unit.starts_with('@'))
        })
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

impl<'a> Entry<'a> {
    /// The value of property `name`, if the node has it.
    pub(super) fn property(&self, name: &str) -> Option<&'a [u8]> {
        self.properties.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
    }
}

pub(super) fn base_name<'a>(e: &Entry<'a>) -> &'a str {
    e.name.split('@').next().unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tree<'a>(nodes: &[(&'a str, Option<usize>)]) -> Tree<'a> {
        Tree::new(
            nodes.iter().map(|&(name, parent)| RawNode { name, parent, properties: Vec::new() }).collect(),
        )
    }

    #[test]
    fn a_child_is_found_by_its_name_with_or_without_unit_address() {
        let t = tree(&[
            ("", None),
            ("memoryx@0", Some(0)),
            ("memory-map", Some(0)),
            ("cpus", Some(0)),
            ("memory@40000000", Some(3)),
            ("memory@80000000", Some(0)),
            ("uart", Some(0)),
        ]);
        assert_eq!(t.child(0, "memory"), Some(5), "neither a longer name nor another parent's child");
        assert_eq!(t.child(0, "uart"), Some(6));
        assert_eq!(t.child(3, "memory"), Some(4));
        assert_eq!(t.child(0, "memor"), None, "a prefix of a name is not the name");
        assert_eq!(t.child(0, "memory@80000000"), None, "names are looked up without unit address");
        assert_eq!(t.child(0, ""), None);
        assert_eq!(t.child(6, "uart"), None);
    }
}
