//! Puts the partition linker script where the linker finds it (`-Ttantalum-guest.ld`, passed
//! by `.cargo/config.toml` for the `aarch64-unknown-none` target), and the x86_64 one
//! (`-Ttantalum-guest-x86_64.ld`, which the xtask passes to each x86_64 partition's link).
use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out.join("tantalum-guest.ld"), include_bytes!("tantalum-guest.ld")).unwrap();
    std::fs::write(out.join("tantalum-guest-x86_64.ld"), include_bytes!("tantalum-guest-x86_64.ld")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=tantalum-guest.ld");
    println!("cargo:rerun-if-changed=tantalum-guest-x86_64.ld");
}
