//! A static Linux executable with no libc: linked at a fixed address by its own script.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rerun-if-changed=linux.ld");
    if std::env::var("TARGET").unwrap().starts_with("aarch64-unknown-none") {
        println!("cargo:rustc-link-arg-bins=-T{dir}/linux.ld");
        println!("cargo:rustc-link-arg-bins=--no-pie");
    }
}
