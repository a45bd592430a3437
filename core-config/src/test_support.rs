//! Fixtures and assertions shared by the host tests of several modules (and of `tantalum-core`,
//! through the `test-support` feature).

use alloc::string::String;

use crate::addr::{HostPhys, HostRange};
use crate::config::Gic;

/// QEMU virt's GICv3: distributor at 0x08000000, redistributors from 0x080a0000.
pub fn qemu_virt_gic() -> Gic {
    Gic {
        path: String::from("/gic"),
        phandle: None,
        distributor: HostRange::new(HostPhys(0x800_0000), 0x1_0000),
        redistributors: HostRange::new(HostPhys(0x80a_0000), 0xf6_0000),
        v2: None,
    }
}

/// QEMU virt's GICv2 (`gic-version=2`): GICD, GICC, GICH and GICV 64 KiB apart.
pub fn qemu_virt_gicv2() -> Gic {
    let frame = |at: u64| HostRange::new(HostPhys(at), 0x1_0000);
    Gic {
        path: String::from("/intc"),
        phandle: None,
        distributor: frame(0x800_0000),
        redistributors: HostRange::new(HostPhys(0), 0),
        v2: Some(crate::config::GicV2 {
            cpu: frame(0x801_0000),
            hyp: frame(0x803_0000),
            vcpu: frame(0x804_0000),
        }),
    }
}

/// QEMU virt's emulated pages (`boards/qemu-virt-aarch64/board.dtsi`): the virtual UART at
/// 0x09000000 (QEMU's first PL011), doorbells at 0x0b000000, virtio devices at 0x0b100000.
pub fn qemu_virt_emulated() -> crate::vplatform::EmulatedPages {
    use crate::addr::GuestPhys;
    crate::vplatform::EmulatedPages {
        virtual_uart: Some(GuestPhys(0x900_0000)),
        doorbells: Some(GuestPhys(0xb00_0000)),
        virtio: Some(GuestPhys(0xb10_0000)),
    }
}

#[cfg(test)]
/// Finds the error matching `pattern` among `errors` (config errors), checks that its message
/// names `node` first and contains every word; evaluates to the message.
macro_rules! assert_config_error {
    ($errors:expr, $node:expr, $pattern:pat $(if $guard:expr)?, [$($word:expr),*]) => {{
        let errors = $errors;
        let found = errors.iter().find(|e| matches!(e.kind, $pattern $(if $guard)?));
        let found = found.unwrap_or_else(|| panic!("no {} in {errors:#?}", stringify!($pattern)));
        let text = found.to_string();
        assert!(text.starts_with(&format!("{}: ", $node)), "{text}");
        $(assert!(text.contains($word), "{text:?} lacks {:?}", $word);)*
        text
    }};
}
#[cfg(test)]
pub(crate) use assert_config_error;
