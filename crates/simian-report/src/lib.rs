//! Reporters: the live console, the console summary, JSON, JUnit XML and a Markdown
//! summary for CI pages, and a self-contained HTML page with the run's timeline, all
//! drawn from the same run events and report.
#![forbid(unsafe_code)]

pub mod console;
pub mod html;
pub mod junit;
pub mod markdown;

use simian_engine::RunReport;

/// The whole run, machine-readable.
pub fn json(report: &RunReport) -> String {
    serde_json::to_string_pretty(report).expect("reports serialize")
}
