pub fn command(_args: &[String]) -> crate::Result<()> {
    crate::bail!("test: not yet")
}
