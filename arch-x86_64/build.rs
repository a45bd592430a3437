//! Links the hypervisor binary with its own linker script (bare-metal target only): loaded at
//! 1 MiB by a Multiboot2 loader, not position independent (its 32-bit entry code uses
//! absolute addresses).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rerun-if-changed=link.ld");
    if std::env::var("TARGET").unwrap() == "x86_64-unknown-none" {
        println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");
        println!("cargo:rustc-link-arg-bins=--no-pie");
    }
}
