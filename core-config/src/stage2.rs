//! What the configuration says of stage 2: which leaves its tables may use.
#![forbid(unsafe_code)]

/// Which leaves a mapping may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mappings {
    /// The largest blocks that alignment allows (fewest TLB entries on hardware).
    #[default]
    Blocks,
    /// 4 KiB pages only. For emulators whose TLB treats a two-stage entry as large when either
    /// stage is, and then flushes everything on any by-address invalidation inside it (QEMU).
    Pages,
}

impl Mappings {
    /// The names the system DT uses.
    pub const NAMES: [&'static str; 2] = ["blocks", "pages"];

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "blocks" => Some(Self::Blocks),
            "pages" => Some(Self::Pages),
            _ => None,
        }
    }
}
