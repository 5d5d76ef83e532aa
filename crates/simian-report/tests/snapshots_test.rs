//! Rendered reports, snapshotted: JUnit XML and the console summary.

use std::collections::BTreeMap;

use simian_engine::report::{
    AssertionResult, FaultReport, PhaseSpan, RunReport, StopReport, Verdict,
};
use simian_engine::Phase;
use simian_injectors::Plan;

fn report(verdict: Verdict) -> RunReport {
    let a = |phase, held, detail: &str| AssertionResult {
        phase,
        assertion: "users.p99 < 250ms".into(),
        held: Some(held),
        measured: Some(0.3),
        bound: Some(0.25),
        detail: detail.into(),
        first_breach_ms: (!held).then_some(7250),
    };
    RunReport {
        experiment: "chaos-gorilla".into(),
        file: "scenarios/chaos-gorilla.yaml".into(),
        run_id: "20261122T000000Z-chaos-gorilla-0001".into(),
        seed: 42,
        journal: "/tmp/simian/runs/x.jsonl".into(),
        started_at: "2026-11-22T00:00:00Z".into(),
        leashed: false,
        verdict,
        exit_code: verdict.exit_code(),
        reason: (verdict == Verdict::Aborted).then(|| "stop condition `users.success_ratio < 90%` tripped (measured 41.00%, expected < 90.00%)".into()),
        duration_ms: 19000,
        phases: vec![
            PhaseSpan { phase: Phase::Before, start_ms: 0, end_ms: 5000 },
            PhaseSpan { phase: Phase::Method, start_ms: 5000, end_ms: 13000 },
        ],
        assertions: vec![
            a(Phase::Before, true, "measured 5.58ms, expected < 250.00ms"),
            a(Phase::Method, false, "measured 300.00ms, expected < 250.00ms"),
            a(Phase::After, true, "measured 18.61ms, expected < 250.00ms"),
        ],
        faults: vec![FaultReport {
            name: "zone-down".into(),
            plan: Plan {
                backend: "process".into(),
                action: "SIGKILL".into(),
                targets: vec!["lab instance us-east-a-1".into()],
                eligible: 6,
                universe: "lab instances".into(),
                revert: "restart through the lab supervisor".into(),
                irreversible: false,
                lease: None,
            },
            injected_ms: Some(5000),
            reverted_ms: Some(13000),
            revert_error: None,
            delay: None,
        }],
        baseline: BTreeMap::new(),
        stop: (verdict == Verdict::Aborted).then(|| StopReport {
            condition: "users.success_ratio < 90%".into(),
            detail: "measured 41.00%, expected < 90.00%".into(),
            detected_ms: 9000,
            reverted_ms: Some(9012),
        }),
        recovery: None,
        events: vec![],
    }
}

#[test]
fn junit_names_the_failed_assertion_with_measured_and_expected() {
    insta::assert_snapshot!(simian_report::junit::render(&report(Verdict::Deviated)));
}

#[test]
fn junit_for_an_aborted_run_fails_the_stop_case() {
    insta::assert_snapshot!(simian_report::junit::render(&report(Verdict::Aborted)));
}

#[test]
fn console_summary_shows_each_assertion_and_the_stop() {
    insta::assert_snapshot!(simian_report::console::summary(&report(Verdict::Aborted)));
}

#[test]
fn every_report_of_a_leashed_run_says_nothing_was_injected() {
    use simian_engine::{EventKind, RunEvent, Would};
    let mut r = report(Verdict::Held);
    r.leashed = true;
    r.faults[0].injected_ms = None;
    r.faults[0].reverted_ms = None;
    let leashed = |at_ms, would, action: &str| RunEvent {
        at_ms,
        kind: EventKind::Leashed {
            fault: "zone-down".into(),
            would,
            action: action.into(),
            targets: vec!["lab instance us-east-a-1".into()],
            share: None,
        },
    };
    r.events = vec![
        leashed(5000, Would::Inject, "SIGKILL"),
        leashed(13000, Would::Revert, "restart through the lab supervisor"),
    ];
    let summary = simian_report::console::summary(&r);
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(
        lines[2], "  LEASHED: nothing was injected; the verdict is the probes' alone",
        "{summary}"
    );
    for want in [
        "•     5.0s  would inject zone-down: SIGKILL → lab instance us-east-a-1",
        "•    13.0s  would revert zone-down: restart through the lab supervisor → lab instance us-east-a-1",
        "not injected (leashed)",
    ] {
        assert!(summary.contains(want), "no `{want}` in:\n{summary}");
    }
    assert!(simian_report::junit::render(&r).contains("chaos-gorilla (leashed)"));
    assert!(simian_report::markdown::render(&r).contains("**Leashed**"));
    assert!(simian_report::html::render(&r).contains("<title>chaos-gorilla (leashed)"));
}
