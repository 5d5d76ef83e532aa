//! The outcome of a run, as reporters consume it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use simian_core::Metrics;
use simian_injectors::Plan;

use crate::events::{Phase, RunEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The hypothesis held before, during and after: exit 0.
    Held,
    /// The hypothesis broke during or after the method: exit 1.
    Deviated,
    /// A stop condition, a signal or max_duration ended the run; faults reverted: exit 2.
    Aborted,
    /// Invalid, not steady before, or refused by a guard; nothing injected: exit 3.
    NotRun,
    /// A revert failed: something may still be broken: exit 4.
    RevertFailed,
}

impl Verdict {
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Held => 0,
            Verdict::Deviated => 1,
            Verdict::Aborted => 2,
            Verdict::NotRun => 3,
            Verdict::RevertFailed => 4,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Held => "held",
            Verdict::Deviated => "deviated",
            Verdict::Aborted => "aborted",
            Verdict::NotRun => "not run",
            Verdict::RevertFailed => "revert failed",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssertionResult {
    pub phase: Phase,
    pub assertion: String,
    /// None when there was nothing to judge (no data, no baseline).
    pub held: Option<bool>,
    /// Over the phase's window; during the method, the worst value seen.
    pub measured: Option<f64>,
    pub bound: Option<f64>,
    /// `measured 12.3ms, expected < 250ms`.
    pub detail: String,
    pub first_breach_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultReport {
    pub name: String,
    pub plan: Plan,
    pub injected_ms: Option<u64>,
    pub reverted_ms: Option<u64>,
    pub revert_error: Option<String>,
    /// For a fault that delays traffic (latency): the distribution of the delays it adds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<simian_delay::DelaySpec>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StopReport {
    pub condition: String,
    pub detail: String,
    /// When the breach became visible to the engine.
    pub detected_ms: u64,
    /// When every fault had been reverted.
    pub reverted_ms: Option<u64>,
}

/// Time to recover, measured from the end of the revert phase until the recovery assertions
/// all held (over the sliding window, counting only what came after the revert).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecoveryReport {
    /// The bound, in seconds.
    pub within: f64,
    /// Seconds; `None` when it did not recover within the bound.
    pub time_to_recover: Option<f64>,
    /// What had to hold.
    pub assertions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseSpan {
    pub phase: Phase,
    pub start_ms: u64,
    pub end_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub experiment: String,
    pub file: String,
    pub run_id: String,
    pub seed: u64,
    pub journal: String,
    pub started_at: String,
    /// A leashed run: nothing was injected or reverted (faults' `injected_ms` and
    /// `reverted_ms` stay empty); the `leashed` events say what would have been, and when.
    #[serde(default)]
    pub leashed: bool,
    pub verdict: Verdict,
    pub exit_code: i32,
    /// Why the run was aborted or not run.
    pub reason: Option<String>,
    pub duration_ms: u64,
    pub phases: Vec<PhaseSpan>,
    pub assertions: Vec<AssertionResult>,
    pub faults: Vec<FaultReport>,
    pub baseline: BTreeMap<String, Metrics>,
    pub stop: Option<StopReport>,
    /// With `recovers_within`: how long recovery took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryReport>,
    /// Every event of the run, samples included.
    pub events: Vec<RunEvent>,
}
