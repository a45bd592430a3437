//! Links the hypervisor binary with its own linker script (bare-metal targets only).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rerun-if-changed=link.ld");
    if std::env::var("TARGET").unwrap().starts_with("aarch64-unknown-none") {
        println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");
    }
}
