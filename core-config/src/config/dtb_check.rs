//! The DTB structure check and reader: one walk over the header and the structure block that
//! either refuses the blob (a truncated, corrupted or hostile blob is an error, never a panic) or
//! returns its nodes, with their parents and properties, for `parse` to index.
//!
//! The checks are everything `fdt` 0.1 assumes about a blob, so a blob that passes is also safe
//! to hand to `fdt` (the SDK and the build tool read guest DTBs with it).

use alloc::vec::Vec;

use super::error::DtbDefect;

pub(super) const FDT_MAGIC: u32 = 0xd00d_feed;
pub(super) const FDT_BEGIN_NODE: u32 = 1;
pub(super) const FDT_END_NODE: u32 = 2;
pub(super) const FDT_PROP: u32 = 3;
pub(super) const FDT_END: u32 = 9;
/// Deepest node nesting accepted (QEMU's trees are 4 deep; `fdt` itself copes with 63).
pub(super) const MAX_DEPTH: usize = 32;

pub(super) fn be_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    let end = offset.checked_add(4)?;
    Some(u32::from_be_bytes(bytes.get(offset..end)?.try_into().ok()?))
}

pub(super) fn align4(n: usize) -> Option<usize> {
    Some(n.checked_add(3)? & !3)
}

pub(super) fn block(data: &[u8], offset: u32, size: u32) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::try_from(size).ok()?)?;
    data.get(start..end)
}

/// A NUL-terminated UTF-8 string at the start of `bytes`.
pub(super) fn c_str(bytes: &[u8]) -> Option<&str> {
    let nul = bytes.iter().position(|&b| b == 0)?;
    core::str::from_utf8(bytes.get(..nul)?).ok()
}

/// One node of a checked blob.
pub(super) struct RawNode<'a> {
    /// The name with its unit address (`""` for the root).
    pub(super) name: &'a str,
    /// Index of the parent in the returned list (always smaller); `None` for the root.
    pub(super) parent: Option<usize>,
    /// `(name, value)` of each property, in blob order.
    pub(super) properties: Vec<(&'a str, &'a [u8])>,
}

/// Checks the header and walks the structure block: one root, balanced nodes, valid names,
/// properties before children and inside their blocks, no NOP, `FDT_END` last. Returns the nodes
/// depth-first (the root first).
pub(super) fn read_blob(dtb: &[u8]) -> Result<Vec<RawNode<'_>>, DtbDefect> {
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

fn walk_structure<'a>(structs: &'a [u8], strings: &'a [u8]) -> Result<Vec<RawNode<'a>>, DtbDefect> {
    let mut pos = 0usize;
    let mut seen_root = false;
    let mut props_allowed = false;
    let mut nodes: Vec<RawNode<'a>> = Vec::new();
    // Indices of the open nodes; its length is the depth.
    let mut open: Vec<usize> = Vec::new();
    // Every iteration moves `pos` forward by at least 4 bytes, so this ends.
    while let Some(token) = be_u32(structs, pos) {
        let offset = pos;
        pos += 4;
        match token {
            FDT_BEGIN_NODE if !(open.is_empty() && seen_root) => {
                let bad = DtbDefect::BadNodeName { offset };
                let name = c_str(structs.get(pos..).unwrap_or_default()).ok_or(bad)?;
                if open.is_empty() != name.is_empty() || name.contains('/') {
                    return Err(bad);
                }
                pos = pos.checked_add(align4(name.len() + 1).ok_or(bad)?).ok_or(bad)?;
                if open.len() >= MAX_DEPTH {
                    return Err(DtbDefect::TooDeep { max: MAX_DEPTH });
                }
                open.push(nodes.len());
                nodes.push(RawNode {
                    name,
                    parent: open.iter().rev().nth(1).copied(),
                    properties: Vec::new(),
                });
                seen_root = true;
                props_allowed = true;
            }
            FDT_PROP if !open.is_empty() => {
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
                let name = c_str(strings.get(name_offset..).ok_or(bad)?).ok_or(bad)?;
                let value = structs.get(value_start..value_end).ok_or(bad)?;
                if let Some(node) = open.last().and_then(|&i| nodes.get_mut(i)) {
                    node.properties.push((name, value));
                }
                pos = value_start.checked_add(align4(len).ok_or(bad)?).ok_or(bad)?;
            }
            FDT_END_NODE if !open.is_empty() => {
                open.pop();
                props_allowed = false;
            }
            FDT_END if open.is_empty() && seen_root => return Ok(nodes),
            _ => return Err(DtbDefect::BadToken { offset, token }),
        }
    }
    Err(DtbDefect::Unterminated)
}
