//! The embedded lab: regions, zones and instances as real processes behind per-region edge routers.
#![forbid(unsafe_code)]

pub mod cli;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{0}")]
    Other(String),
}
