//! `cargo xtask bench`: instruction counts under QEMU `-icount shift=0,sleep=off`.
pub fn command(_args: &[String]) -> crate::Result<()> {
    crate::bail!("bench: not yet")
}
