//! Probes: open-loop HTTP load, TCP connects, commands; each records observations for the hypothesis.
#![forbid(unsafe_code)]

pub mod cli;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{0}")]
    Other(String),
}
