//! The simian command line: parse arguments, build the runtime, map outcomes to exit codes.
#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Exit codes: a public contract for CI gates.
pub mod exit {
    pub const HELD: i32 = 0;
    pub const DEVIATED: i32 = 1;
    pub const ABORTED: i32 = 2;
    pub const NOT_RUN: i32 = 3;
    pub const REVERT_FAILED: i32 = 4;
}

#[derive(Debug, Parser)]
#[command(name = "simian", version, about, long_about = None)]
pub struct Cli {
    /// Where the lab and run journals keep their state.
    #[arg(long, global = true, env = "SIMIAN_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the embedded lab: a small active-active service to break.
    Lab {
        #[command(subcommand)]
        cmd: simian_lab::cli::LabCommand,
    },
    /// Run one probe ad hoc and print its metrics.
    Probe {
        #[command(subcommand)]
        cmd: simian_probes::cli::ProbeCommand,
    },
}

/// The default state directory: `$XDG_RUNTIME_DIR/simian`, else `/tmp/simian-UID`.
pub fn default_state_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("simian"),
        _ => std::env::temp_dir().join(format!("simian-{}", nix::unistd::getuid())),
    }
}

pub fn main() -> i32 {
    let cli = Cli::parse();
    let state_dir = cli.state_dir.clone().unwrap_or_else(default_state_dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("failed to start the tokio runtime");
    rt.block_on(async move {
        match cli.command {
            Command::Lab { cmd } => match simian_lab::cli::run(cmd, &state_dir).await {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: {e}");
                    exit::NOT_RUN
                }
            },
            Command::Probe { cmd } => match simian_probes::cli::run(cmd).await {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: {e}");
                    exit::NOT_RUN
                }
            },
        }
    })
}
