//! Links the hypervisor binary with its own linker script (bare-metal targets only), at the
//! board's load address: `TANTALUM_LINK_ADDRESS` (hex; the xtask sets it from the board's
//! `load-address`), else QEMU virt's 0x40080000.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let out = std::env::var("OUT_DIR").unwrap();
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-env-changed=TANTALUM_LINK_ADDRESS");
    if !std::env::var("TARGET").unwrap().starts_with("aarch64-unknown-none") {
        return;
    }
    let address = std::env::var("TANTALUM_LINK_ADDRESS").unwrap_or_else(|_| "0x40080000".into());
    let value = u64::from_str_radix(address.trim_start_matches("0x"), 16)
        .unwrap_or_else(|_| panic!("TANTALUM_LINK_ADDRESS={address}: not a hex address"));
    assert!(value.is_multiple_of(0x1000), "TANTALUM_LINK_ADDRESS={address}: not page-aligned");
    let script = std::fs::read_to_string(format!("{dir}/link.ld")).unwrap();
    let script = script.replace("LINK_ADDRESS", &format!("{value:#x}"));
    std::fs::write(format!("{out}/link.ld"), script).unwrap();
    println!("cargo:rustc-link-arg-bins=-T{out}/link.ld");
}
