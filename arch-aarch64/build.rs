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
    // More boot-only input sections, one per line, from the build tool's check of the last
    // build (xtask/src/boot_code.rs): functions only the boot-only code runs.
    println!("cargo:rerun-if-env-changed=TANTALUM_BOOT_SECTIONS");
    let mut more = String::new();
    if let Ok(path) = std::env::var("TANTALUM_BOOT_SECTIONS") {
        println!("cargo:rerun-if-changed={path}");
        let list = std::fs::read_to_string(&path).unwrap_or_default();
        // LLVM puts a cold function (a panic's) in `.text.unlikely.<name>`.
        for name in list.lines().filter_map(|l| l.strip_prefix(".text.")) {
            more += &format!("        *(.text.{name} .text.unlikely.{name})\n");
        }
    }
    let script = script.replace("        /* BOOT_SECTIONS */\n", &more);
    std::fs::write(format!("{out}/link.ld"), script).unwrap();
    println!("cargo:rustc-link-arg-bins=-T{out}/link.ld");
}
