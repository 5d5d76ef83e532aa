//! `simian probe ...`: run one probe ad hoc and print its metrics. (stub)

#[derive(Debug, clap::Subcommand)]
pub enum ProbeCommand {
    /// Open-loop HTTP load at a fixed rate.
    Http,
}

pub async fn run(_cmd: ProbeCommand) -> Result<i32, crate::ProbeError> {
    Ok(0)
}
