//! Rule codes: a number per [`ErrorKind`] variant (and per [`X86Problem`]), so that the
//! hypervisor, built without the messages (tantalum-core without its `messages` feature), still
//! reports every problem it finds: as `NODE: E<code> <Name>`. `cargo xtask config explain`
//! turns such a line back into the full message by running the same rules with their messages
//! (see `docs/config.md`, "Rule codes"). A code, once given, is never reused for another rule.

use core::fmt;

use super::{ConfigError, ErrorKind};
use crate::config::x86::X86Problem;

macro_rules! rule_codes {
    (errors { $($code:literal $name:ident,)* } x86 { $($xcode:literal $xname:ident,)* }) => {
        impl ErrorKind {
            /// The rule code of this problem (`RULE_CODES` names it).
            pub fn code(&self) -> u16 {
                match self {
                    Self::X86(problem) => match problem {
                        $(X86Problem::$xname { .. } => $xcode,)*
                    },
                    _ => self.plain_code(),
                }
            }

            /// The code of a variant other than `X86` (0 for that one): a switch that only maps
            /// variants to constants, which the compiler turns into one table lookup.
            #[inline(never)]
            fn plain_code(&self) -> u16 {
                match self {
                    $(Self::$name { .. } => $code,)*
                    Self::X86(_) => 0,
                }
            }
        }

        /// Every rule code and the name of its variant (`X86::` for an [`X86Problem`]).
        pub const RULE_CODES: &[(u16, &str)] = &[
            $(($code, stringify!($name)),)*
            $(($xcode, concat!("X86::", stringify!($xname))),)*
        ];
    };
}

rule_codes! {
    errors {
        1 InvalidDtb,
        2 MissingNode,
        3 MissingProperty,
        4 MalformedProperty,
        5 BadCompatible,
        6 UnknownNode,
        7 UnknownChannelNode,
        8 UnknownFaultPolicy,
        9 UnknownOutsideMemory,
        10 UnknownStage2Mappings,
        11 UnresolvedPhandle,
        12 NotACpu,
        13 NotADevice,
        14 NoSuchRegion,
        15 DeviceInterrupts,
        16 NotAPartition,
        17 IncompleteBlob,
        18 UnsupportedCells,
        19 GicReg,
        20 RegNotTranslatable,
        21 NoPartitions,
        22 TooManyPartitions,
        23 TooManyCpus,
        24 NoRam,
        25 IdMismatch,
        26 InvalidName,
        27 DuplicateName,
        28 NoMemory,
        29 EmptyMemory,
        30 UnalignedMemory,
        31 UnalignedGuest,
        32 MemoryOverflow,
        33 OutsideRam,
        34 OverlapsHypervisor,
        35 Overlap,
        36 GuestOverlap,
        37 AboveIpaLimit,
        38 BootImageOutside,
        39 OutsideHypervisorMap,
        40 DeviceOutsideHypervisorMap,
        41 GuestMemoryOverlap,
        42 Overcommit,
        43 NoCpus,
        44 UnknownCpu,
        45 DuplicateCpu,
        46 CpuTaken,
        47 ImageTooBig,
        48 ImageAndInitrdTooBig,
        49 GuestDtbTooBig,
        50 EntryOutsideMemory,
        51 EntryUnaligned,
        52 EntryOutsideImage,
        53 BadImage,
        54 BlobOutOfBounds,
        55 ImageNotBuilt,
        56 NoConsole,
        57 ConsoleNotUart,
        58 ConsoleInPartition,
        59 GicPassthrough,
        60 ConsolePassthrough,
        61 DuplicateDevice,
        62 DeviceTaken,
        63 IommuPassthrough,
        64 DmaNotConfined,
        65 StreamTaken,
        66 MmioPageUnassigned,
        67 MmioPageShared,
        68 DeviceMmioInvalid,
        69 DeviceAboveIpaLimit,
        70 DeviceMmioOverlap,
        71 InterruptTaken,
        72 PpiPassthrough,
        73 UnsupportedInterrupt,
        74 SpiBeyondVirtualGic,
        75 SpiReserved,
        76 VirtualUartOverlap,
        77 EmulatedNotPlaced,
        78 EmulatedWindowInvalid,
        79 EmulatedWindowOverlap,
        80 DeviceOverEmulated,
        81 ChannelIdMismatch,
        82 ChannelEndpointCount,
        83 DuplicateEndpoint,
        84 UnknownEndpoint,
        85 ChannelGuestCount,
        86 ChannelGuestUnaligned,
        87 ChannelAboveIpaLimit,
        88 ChannelGuestOverlap,
        89 WriterNotEndpoint,
        90 ChannelTooSmall,
        91 TooManyChannels,
        92 TooManyVirtioDevices,
        93 LinkEndpointCount,
        94 SecondVsockLink,
        95 DiskDeviceNotOwned,
        96 DiskFrontendCount,
        97 DiskFrontendIsDriver,
        98 DiskRegionOutside,
        99 DiskRegionOverlap,
    }
    x86 {
        101 LegacyHole,
        102 MemoryOverApic,
        103 ApicPassthrough,
        104 PortsOverlap,
        105 PortsOutOfRange,
        106 PortsTaken,
        107 ConsoleNotPortUart,
        108 NoRoomForBootArea,
        109 VirtualUartPorts,
        110 PicOffBootCpu,
        111 PlatformWideDevice,
        112 NoX86Rules,
    }
}

/// The name of rule `code`, if it is one.
pub fn rule_name(code: u16) -> Option<&'static str> {
    RULE_CODES.iter().find(|&&(c, _)| c == code).map(|&(_, name)| name)
}

/// Reads a rule code as the hypervisor prints it (`E35`) or bare (`35`).
pub fn parse_code(text: &str) -> Option<u16> {
    let digits = text.strip_prefix('E').or_else(|| text.strip_prefix('e')).unwrap_or(text);
    let code = digits.parse().ok()?;
    rule_name(code).map(|_| code)
}

/// A problem as the hypervisor reports it at boot: `NODE: E<code> <Name>`.
pub struct Coded<'e>(&'e ConfigError);

impl ConfigError {
    /// This problem as a rule code (what the hypervisor prints).
    pub fn coded(&self) -> Coded<'_> {
        Coded(self)
    }
}

impl fmt::Display for Coded<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.0.kind.code();
        let name = rule_name(code).unwrap_or("?");
        write!(f, "{}: E{code} {name}", self.0.node)
    }
}

/// The problems of `errors` that a boot-time line `E<code>` at `node` stands for (more than
/// one when a node breaks one rule several times).
#[cfg(feature = "messages")]
pub fn explain<'e>(
    errors: &'e [ConfigError],
    code: u16,
    node: &'e str,
) -> impl Iterator<Item = &'e ConfigError> {
    errors.iter().filter(move |e| e.kind.code() == code && e.node == node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_parse_back() {
        for (i, &(code, name)) in RULE_CODES.iter().enumerate() {
            assert!(RULE_CODES[..i].iter().all(|&(c, n)| c != code && n != name), "E{code} {name} twice");
            assert_eq!(parse_code(&alloc::format!("E{code}")), Some(code));
            assert_eq!(rule_name(code), Some(name));
        }
        assert_eq!(parse_code("E0"), None);
        assert_eq!(parse_code("E100"), None);
        assert_eq!(parse_code("35x"), None);
        assert_eq!(parse_code(""), None);
    }
}
