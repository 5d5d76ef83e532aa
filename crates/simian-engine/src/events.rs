//! The one event stream of a run; the journal, the console and the reports consume it.

use serde::{Deserialize, Serialize};
use simian_core::Metrics;

/// Something that happened, `at_ms` after the run started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunEvent {
    pub at_ms: u64,
    pub kind: EventKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Before,
    Method,
    Revert,
    After,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Before => "before",
            Phase::Method => "during",
            Phase::Revert => "revert",
            Phase::After => "after",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    Started {
        experiment: String,
        journal: String,
        seed: u64,
        /// A leashed run (`simian run --leashed`): nothing is injected; every action is
        /// logged, as a [`EventKind::Leashed`] event, at the time it would be taken.
        #[serde(default)]
        leashed: bool,
    },
    Phase {
        phase: Phase,
    },
    Step {
        step: String,
    },
    Injected {
        fault: String,
        action: String,
        targets: Vec<String>,
    },
    Reverted {
        fault: String,
        actions: Vec<String>,
    },
    /// Leashed mode: what an unleashed run would do to `fault` now: `action` on `targets`,
    /// from its plan (for `revert` and `restore`, the plan's revert). Nothing was changed.
    Leashed {
        fault: String,
        would: Would,
        action: String,
        targets: Vec<String>,
        /// For `shift`: the share of the traffic it would move.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        share: Option<f64>,
    },
    RevertFailed {
        fault: String,
        error: String,
    },
    Sample {
        probe: String,
        metrics: Metrics,
    },
    /// An evacuation's gate before its next step: whether the hypothesis held, and if not,
    /// the assertions that did not.
    Gate {
        fault: String,
        next: f64,
        held: bool,
        failing: Vec<String>,
        /// Every assertion as it read at the gate: measured against its bound (or baseline).
        #[serde(default)]
        readings: Vec<String>,
    },
    /// An evacuation moved to `share` of the traffic; the next step (if any) comes after
    /// `wait_ms`.
    Shifted {
        fault: String,
        share: f64,
        next: Option<f64>,
        wait_ms: u64,
    },
    /// The hypothesis broke during the method (first time for this assertion).
    Breach {
        assertion: String,
        detail: String,
    },
    /// A `confirm` step waits for an operator (`simian continue RUN`, or Enter).
    AwaitingOperator {
        message: String,
        timeout_ms: u64,
    },
    /// An operator answered a `confirm` step; `by` says who or how.
    Confirmed {
        by: String,
    },
    StopTripped {
        condition: String,
        detail: String,
    },
    Aborting {
        reason: String,
    },
    Finished {
        verdict: String,
        exit_code: i32,
    },
}

/// What a leashed run would have done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Would {
    Inject,
    Revert,
    /// An evacuation's step: move `share` of the traffic.
    Shift,
    /// An evacuation's end (or abort): restore the original split.
    Restore,
}
