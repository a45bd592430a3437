//! What the configuration rules know of the virtual GIC: its frames and its INTIDs.
//! `tantalum_core::vgic` re-exports these (and checks the sizes against its register blocks).

/// Size of the distributor frame.
pub const GICD_SIZE: u64 = 0x1_0000;
/// Offset of the SGI/PPI frame inside one redistributor (the size of its RD_base frame).
pub const GICR_SGI_OFFSET: u64 = 0x1_0000;
/// First SPI INTID.
pub const SPI_BASE: u32 = 32;
/// INTIDs the virtual distributor implements (SGIs, PPIs and 96 SPIs): GICD_TYPER says 128.
pub const MAX_INTID: u32 = 128;
