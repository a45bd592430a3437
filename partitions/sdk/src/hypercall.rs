//! Tantalum hypercalls (`hvc #0` on aarch64, `vmcall` on x86_64; SMCCC function IDs from
//! `tantalum_core::hypercall`).

pub use tantalum_core::hypercall::*;

pub use crate::arch::calls::*;

/// Facts about the calling partition.
#[derive(Clone, Copy, Debug)]
pub struct PartitionInfo {
    pub id: u64,
    /// How many times the hypervisor restarted this partition since boot.
    pub restarts: u64,
    pub vcpus: u64,
}

pub fn partition_info() -> PartitionInfo {
    let r = hvc(HYP_PARTITION_INFO, [0; 6]);
    PartitionInfo { id: r[0], restarts: r[1], vcpus: r[2] }
}

/// The partition's name, as the config gives it.
pub fn partition_name() -> Name {
    let r = hvc(HYP_PARTITION_NAME, [0; 6]);
    let mut bytes = [0u8; 32];
    for (i, word) in r[1..].iter().enumerate() {
        bytes[i * 8..i * 8 + 8].copy_from_slice(&word.to_le_bytes());
    }
    Name { bytes, len: (r[0] as usize).min(32) }
}

/// A partition name returned by [`partition_name`].
#[derive(Clone, Copy)]
pub struct Name {
    bytes: [u8; 32],
    len: usize,
}

impl Name {
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("?")
    }
}

impl core::fmt::Display for Name {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether partition `id` is running (`None` if there is no such partition).
pub fn partition_running(id: u64) -> Option<bool> {
    match hvc(HYP_PARTITION_STATE, [id, 0, 0, 0, 0, 0])[0] {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// Sends the inter-processor interrupt `intid` to this partition's vCPUs in `targets` (bit n =
/// vCPU n; its own included if it names itself) by `HYP_SEND_IPI`, the same call on both
/// architectures: on aarch64 `intid` is an SGI (0..15), on x86_64 an interrupt vector
/// (32..=255, taken by the handler `irq::set_handler` gave it). `InvalidParameters`, and
/// nothing sent, for an empty set, a vCPU the partition lacks or another `intid`.
pub fn send_ipi(targets: u64, intid: u32) -> Result<(), Status> {
    match hvc(HYP_SEND_IPI, [targets, intid.into(), 0, 0, 0, 0])[0] {
        0 => Ok(()),
        other => Err(Status::from_reg(other).unwrap_or(Status::NotSupported)),
    }
}

/// Gives up the CPU for a moment (a hint: each vCPU owns its CPU).
pub fn yield_now() {
    hvc(HYP_YIELD, [0; 6]);
}

/// Sleeps for about `ns` nanoseconds (at most 1 s per call).
pub fn wait_ns(ns: u64) {
    hvc(HYP_WAIT, [ns, 0, 0, 0, 0, 0]);
}

/// Stops this partition, reporting `code` on the hypervisor console. Without the hypervisor
/// ([`crate::bare`]) it prints the code and powers the machine off.
pub fn exit(code: u64) -> ! {
    if crate::bare::bare() {
        crate::println!("exited with code {code}");
        crate::bare::power_off();
    } else {
        hvc(HYP_EXIT, [code, 0, 0, 0, 0, 0]);
    }
    // The hypervisor never returns from EXIT; if it did, do not run on.
    loop {
        crate::arch::wait_for_interrupt();
    }
}
