//! A partition's virtual platform: where its virtual devices sit and which interrupts they use.
//! The build tool writes these into each guest device tree; the hypervisor emulates them there.

/// First SPI number used for channel doorbells; a partition's channel `n` (its local number, in
/// tree order) rings SPI `DOORBELL_SPI_BASE + n` (INTID + 32). Chosen above the SPIs of QEMU
/// virt's devices (0..47) so passed-through devices keep their numbers.
pub const DOORBELL_SPI_BASE: u32 = 64;

/// Doorbell SPI of a partition's channel number `local` (0-based).
pub const fn doorbell_spi(local: usize) -> u32 {
    DOORBELL_SPI_BASE + local as u32
}

/// Size of one GICv3 redistributor frame pair (RD_base + SGI_base) per vCPU.
pub const GICR_STRIDE: u64 = 0x2_0000;

/// Architectural timer PPIs (as DT specifier numbers: INTID - 16): secure physical,
/// non-secure physical, virtual, hypervisor.
pub const TIMER_PPIS: [u32; 4] = [13, 14, 11, 10];

/// GIC maintenance interrupt PPI (INTID 25).
pub const GIC_MAINTENANCE_PPI: u32 = 9;
