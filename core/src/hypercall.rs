//! The hypercall ABI: SMCCC function IDs and return codes, the same on every architecture.
//!
//! Tantalum's own calls live in the SMCCC vendor-specific hypervisor service range
//! (owner 6, fast calls, SMC64): `0xC600_0000 + n`. PSCI calls (owner 4) are handled for the
//! calling partition. See `docs/hypercalls.md`.

/// Tantalum ABI version returned by [`HYP_VERSION`]: major in bits 31..16, minor in 15..0.
pub const ABI_VERSION: u64 = 1 << 16;

/// Base of the vendor-specific hypervisor service range (fast call, SMC64).
pub const VENDOR_HYP_BASE: u64 = 0xC600_0000;
/// `() -> version`
pub const HYP_VERSION: u64 = VENDOR_HYP_BASE;
/// `() -> (id, restart count, vCPU count)`
pub const HYP_PARTITION_INFO: u64 = VENDOR_HYP_BASE + 1;
/// `() -> (len, name bytes 0..8, 8..16, 16..24, 24..32)`, little-endian in x1..x4.
pub const HYP_PARTITION_NAME: u64 = VENDOR_HYP_BASE + 2;
/// `(ipa, len) -> bytes written`; at most [`CONSOLE_WRITE_MAX`] bytes per call.
pub const HYP_CONSOLE_WRITE: u64 = VENDOR_HYP_BASE + 3;
/// `() -> 0`: a hint that the vCPU has nothing to do right now.
pub const HYP_YIELD: u64 = VENDOR_HYP_BASE + 4;
/// `(timeout_ns) -> 0`: block the vCPU until the timeout passes (or, later, an event).
pub const HYP_WAIT: u64 = VENDOR_HYP_BASE + 5;
/// `(code) -> !`: stop the calling partition, reporting `code`.
pub const HYP_EXIT: u64 = VENDOR_HYP_BASE + 6;

/// `(channel) -> 0`: ring the doorbell of the peer on the caller's channel number `channel`
/// (its local number, in the order of its guest DT).
pub const HYP_CHANNEL_NOTIFY: u64 = VENDOR_HYP_BASE + 7;

/// `(id) -> state`: whether partition `id` is running (1) or stopped (0); INVALID_PARAMETERS
/// for an id that does not exist. Lets a health-monitor partition watch the others.
pub const HYP_PARTITION_STATE: u64 = VENDOR_HYP_BASE + 8;

/// `(targets, intid) -> 0`: an inter-processor interrupt `intid` to the caller's own vCPUs in
/// `targets` (bit n = vCPU n, the caller included if it names itself). INVALID_PARAMETERS, and
/// nothing sent, for an empty set, a vCPU the partition does not have, or an `intid` that is not
/// an IPI on the architecture (aarch64: SGI 0..15; x86_64: vector 32..=255).
pub const HYP_SEND_IPI: u64 = VENDOR_HYP_BASE + 9;

/// `(intid, vcpu) -> 0`: the caller's doorbell `intid` goes to its vCPU `vcpu` from now on (to
/// vCPU 0 until set, and again after a restart). INVALID_PARAMETERS for an interrupt that is not
/// one of its doorbells or a vCPU it lacks; NOT_SUPPORTED where the partition's virtual interrupt
/// controller routes (aarch64: the virtual GIC's `GICD_IROUTER` / `ITARGETSR`).
pub const HYP_INTERRUPT_TARGET: u64 = VENDOR_HYP_BASE + 10;

/// The last Tantalum call: `HYP_VERSION + 1 ..= HYP_LAST` change or read state.
pub const HYP_LAST: u64 = HYP_INTERRUPT_TARGET;

/// Most bytes one console write accepts.
pub const CONSOLE_WRITE_MAX: u64 = 256;
/// Longest wait one call may ask for (1 s); longer waits are clamped.
pub const WAIT_MAX_NS: u64 = 1_000_000_000;

/// PSCI function IDs (PSCI 1.1, SMC32 and SMC64 forms): the Arm guests' firmware ABI, shared
/// here by the SDK and the partitions that call it. Core decides nothing by these numbers:
/// `arch-aarch64` decodes them into neutral [`crate::exit::Exit`] variants.
pub mod psci {
    pub const VERSION: u64 = 0x8400_0000;
    pub const CPU_SUSPEND_32: u64 = 0x8400_0001;
    pub const CPU_SUSPEND_64: u64 = 0xC400_0001;
    pub const CPU_OFF: u64 = 0x8400_0002;
    pub const CPU_ON_32: u64 = 0x8400_0003;
    pub const CPU_ON_64: u64 = 0xC400_0003;
    pub const AFFINITY_INFO_32: u64 = 0x8400_0004;
    pub const AFFINITY_INFO_64: u64 = 0xC400_0004;
    pub const MIGRATE_INFO_TYPE: u64 = 0x8400_0006;
    pub const SYSTEM_OFF: u64 = 0x8400_0008;
    pub const SYSTEM_RESET: u64 = 0x8400_0009;
    pub const FEATURES: u64 = 0x8400_000A;
    /// PSCI version the hypervisor implements for guests: 1.1.
    pub const IMPLEMENTED_VERSION: u64 = 0x0001_0001;
    /// AFFINITY_INFO results ([`crate::partition::power::Power::to_reg`]).
    pub const AFFINITY_ON: u64 = 0;
    pub const AFFINITY_OFF: u64 = 1;
    pub const AFFINITY_ON_PENDING: u64 = 2;
    /// MIGRATE_INFO_TYPE: "Trusted OS not present or does not require migration".
    pub const MIGRATE_NOT_REQUIRED: u64 = 2;
}

/// SMCCC / PSCI return codes, as they appear in x0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i64)]
pub enum Status {
    Success = 0,
    NotSupported = -1,
    InvalidParameters = -2,
    Denied = -3,
    /// PSCI: the target CPU is already on.
    AlreadyOn = -4,
    /// PSCI: the target CPU is being turned on.
    OnPending = -5,
}

impl Status {
    /// The value a guest sees in x0.
    pub const fn to_reg(self) -> u64 {
        self as i64 as u64
    }

    /// The status a guest reads in x0 (`None` for anything else, a result value included).
    pub const fn from_reg(value: u64) -> Option<Status> {
        Some(match value as i64 {
            0 => Status::Success,
            -1 => Status::NotSupported,
            -2 => Status::InvalidParameters,
            -3 => Status::Denied,
            -4 => Status::AlreadyOn,
            -5 => Status::OnPending,
            _ => return None,
        })
    }
}

/// A Tantalum call decoded and with its arguments' shapes checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Version,
    PartitionInfo,
    PartitionName,
    ConsoleWrite { ipa: u64, len: u64 },
    Yield,
    Wait { timeout_ns: u64 },
    Exit { code: u64 },
    ChannelNotify { channel: u64 },
    PartitionState { id: u64 },
    SendIpi { targets: u64, intid: u64 },
    InterruptTarget { intid: u64, vcpu: u64 },
}

impl Call {
    /// Decodes a vendor-hypervisor call; `None` for a function Tantalum does not implement.
    pub fn decode(function: u64, args: &[u64; 6]) -> Option<Call> {
        Some(match function {
            HYP_VERSION => Call::Version,
            HYP_PARTITION_INFO => Call::PartitionInfo,
            HYP_PARTITION_NAME => Call::PartitionName,
            HYP_CONSOLE_WRITE => Call::ConsoleWrite { ipa: args[0], len: args[1] },
            HYP_YIELD => Call::Yield,
            HYP_WAIT => Call::Wait { timeout_ns: args[0].min(WAIT_MAX_NS) },
            HYP_EXIT => Call::Exit { code: args[0] },
            HYP_CHANNEL_NOTIFY => Call::ChannelNotify { channel: args[0] },
            HYP_PARTITION_STATE => Call::PartitionState { id: args[0] },
            HYP_SEND_IPI => Call::SendIpi { targets: args[0], intid: args[1] },
            HYP_INTERRUPT_TARGET => Call::InterruptTarget { intid: args[0], vcpu: args[1] },
            _ => return None,
        })
    }
}

/// The answer to a Tantalum call that returns at once with a value in x0 and changes nothing,
/// whoever makes it: the ABI version, and NOT_SUPPORTED for a function Tantalum does not
/// implement. `None` for every other call (those go through [`crate::partition::handle_exit`]).
/// The arch may answer these on its fast path; a host test checks that `handle_exit` gives the
/// same answer. (The functions after `HYP_VERSION` up to [`HYP_LAST`] are never
/// answered here: the aarch64 vectors send them to the full path without asking, but
/// HYP_CHANNEL_NOTIFY to its own fast path, [`crate::partition::channel_notify_at_once`].)
pub fn answered_at_once(function: u64) -> Option<u64> {
    match function {
        HYP_VERSION => Some(ABI_VERSION),
        HYP_PARTITION_INFO..=HYP_LAST => None,
        _ => Some(Status::NotSupported.to_reg()),
    }
}

/// Packs a name into the [`HYP_PARTITION_NAME`] result registers: `[len, w0, w1, w2, w3]`.
pub fn pack_name(name: &str) -> [u64; 5] {
    let bytes = name.as_bytes();
    let len = bytes.len().min(32);
    let mut regs = [0u64; 5];
    regs[0] = len as u64;
    for (i, &b) in bytes[..len].iter().enumerate() {
        regs[1 + i / 8] |= u64::from(b) << (8 * (i % 8));
    }
    regs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_call_and_rejects_the_rest() {
        let a = [1, 2, 3, 4, 5, 6];
        assert_eq!(Call::decode(HYP_VERSION, &a), Some(Call::Version));
        assert_eq!(Call::decode(HYP_CONSOLE_WRITE, &a), Some(Call::ConsoleWrite { ipa: 1, len: 2 }));
        assert_eq!(Call::decode(HYP_EXIT, &a), Some(Call::Exit { code: 1 }));
        assert_eq!(Call::decode(HYP_WAIT, &[u64::MAX; 6]), Some(Call::Wait { timeout_ns: WAIT_MAX_NS }));
        assert_eq!(Call::decode(HYP_SEND_IPI, &a), Some(Call::SendIpi { targets: 1, intid: 2 }));
        assert_eq!(Call::decode(HYP_INTERRUPT_TARGET, &a), Some(Call::InterruptTarget { intid: 1, vcpu: 2 }));
        for f in [HYP_LAST + 1, VENDOR_HYP_BASE + 0xFF01, 0x8600_0000, 0, u64::MAX] {
            assert_eq!(Call::decode(f, &a), None, "{f:#x}");
        }
    }

    #[test]
    fn status_registers() {
        assert_eq!(Status::NotSupported.to_reg(), u64::MAX);
        assert_eq!(Status::InvalidParameters.to_reg(), u64::MAX - 1);
        for s in [Status::Success, Status::NotSupported, Status::InvalidParameters, Status::Denied] {
            assert_eq!(Status::from_reg(s.to_reg()), Some(s));
        }
        assert_eq!(Status::from_reg(Status::OnPending.to_reg()), Some(Status::OnPending));
        assert_eq!(Status::from_reg(1), None);
        assert_eq!(Status::from_reg(-6i64 as u64), None);
    }

    #[test]
    fn name_packing() {
        let r = pack_name("ping");
        assert_eq!(r[0], 4);
        assert_eq!(r[1], u64::from_le_bytes(*b"ping\0\0\0\0"));
        let long = "abcdefghijklmnopqrstuvwxyz0123456789";
        assert_eq!(pack_name(long)[0], 32);
    }
}
