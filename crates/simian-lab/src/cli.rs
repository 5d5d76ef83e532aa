//! `simian lab ...` subcommands. (stub: the lab helper fills this in)

use std::path::Path;

#[derive(Debug, clap::Subcommand)]
pub enum LabCommand {
    /// Start the lab in the background.
    Up,
    /// Show what runs where.
    Status,
    /// Stop the lab and remove its state.
    Down,
}

pub async fn run(_cmd: LabCommand, _state_dir: &Path) -> Result<i32, crate::LabError> {
    Ok(0)
}
