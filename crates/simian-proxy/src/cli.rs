//! `simian proxy`: run the fault proxy standalone. (stub)

#[derive(Debug, clap::Args)]
pub struct ProxyArgs {}

pub async fn run(_args: ProxyArgs) -> Result<i32, crate::ProxyError> {
    Ok(0)
}
