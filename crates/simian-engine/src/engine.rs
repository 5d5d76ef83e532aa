//! The run: before (the hypothesis must hold; this is the baseline) →
//! method (the hypothesis judged and stop conditions checked on every tick)
//! → revert, newest first → after → verdict. A stop condition, a signal or
//! `max_duration` aborts: every applied fault is reverted at once.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use simian_core::{Metrics, Recorder};
use simian_experiment::{Assertion, Loaded, Step};
use simian_injectors::{Fault, RevertRecord};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::events::{EventKind, Phase, RunEvent, Would};
use crate::journal::{Entry, Header, Journal};
use crate::plan::Planned;
use crate::report::*;

/// Everything a run needs, built and started by the caller.
pub struct Prepared {
    pub loaded: Loaded,
    pub faults: Vec<Planned>,
    /// Running probes' recorders, by probe name.
    pub probes: BTreeMap<String, Arc<Recorder>>,
    pub journal: Journal,
    pub header: Header,
    /// How often the hypothesis and stop conditions are judged during the method.
    pub tick: Duration,
    /// Operators' answers to `confirm` steps (who confirmed). Without it, a `confirm`
    /// step waits out its timeout and aborts.
    pub operator: Option<mpsc::UnboundedReceiver<String>>,
    /// Leashed mode (Chaos Monkey's): the probes run and the hypothesis is judged, but
    /// every fault action is only logged ([`EventKind::Leashed`]) at the time it would be
    /// taken; nothing is prepared, journaled as an intent, applied or reverted.
    pub leashed: bool,
}

struct Applied {
    name: String,
    seq: u32,
    record: RevertRecord,
    /// Its apply returned (so a lease, if it has one, is in force and can be renewed).
    live: bool,
}

/// An assertion's latest judgement: held (None: no data), and how it read.
type Judged = (Option<bool>, String);

struct Shared {
    t0: Instant,
    journal: Mutex<Journal>,
    applied: Mutex<Vec<Applied>>,
    faults: Mutex<BTreeMap<String, FaultReport>>,
    events: Mutex<Vec<RunEvent>>,
    sink: mpsc::UnboundedSender<RunEvent>,
    seq: Mutex<u32>,
    /// The latest judgement of each hypothesis assertion during the method; what an
    /// evacuation's gate reads.
    latest: Mutex<Vec<Option<Judged>>>,
    operator: tokio::sync::Mutex<Option<mpsc::UnboundedReceiver<String>>>,
    leashed: bool,
    /// Leashed mode's `applied`: the faults an unleashed run would have applied by now,
    /// newest last, with what undoing each would be.
    would: Mutex<Vec<(String, Would)>>,
}

impl Shared {
    fn ms(&self) -> u64 {
        self.t0.elapsed().as_millis() as u64
    }

    fn emit(&self, kind: EventKind) {
        let ev = RunEvent {
            at_ms: self.ms(),
            kind,
        };
        let _ = self
            .journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(&Entry::Event(ev.clone()), false);
        let _ = self.sink.send(ev.clone());
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ev);
    }

    fn journal(&self, e: &Entry, durable: bool) -> Result<(), String> {
        self.journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(e, durable)
            .map_err(|e| e.to_string())
    }
}

enum End {
    Done,
    Abort(String),
}

type StepFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Runs a prepared experiment to its verdict. `abort` carries a reason when
/// a signal (or anything else outside) asks the run to stop.
pub async fn execute(
    p: Prepared,
    mut abort: watch::Receiver<Option<String>>,
    sink: mpsc::UnboundedSender<RunEvent>,
) -> RunReport {
    let Prepared {
        loaded,
        faults,
        probes,
        journal,
        header,
        tick,
        operator,
        leashed,
    } = p;
    let exp = &loaded.experiment;
    let shared = Arc::new(Shared {
        t0: probes
            .values()
            .map(|r| r.started())
            .min()
            .unwrap_or_else(Instant::now),
        journal: Mutex::new(journal),
        applied: Mutex::new(Vec::new()),
        faults: Mutex::new(BTreeMap::new()),
        events: Mutex::new(Vec::new()),
        sink,
        seq: Mutex::new(0),
        latest: Mutex::new(vec![None; loaded.hypothesis.len()]),
        operator: tokio::sync::Mutex::new(operator),
        leashed,
        would: Mutex::new(Vec::new()),
    });
    {
        let mut fr = shared.faults.lock().unwrap();
        for f in &faults {
            fr.insert(
                f.name.clone(),
                FaultReport {
                    name: f.name.clone(),
                    plan: f.fault.plan().clone(),
                    injected_ms: None,
                    reverted_ms: None,
                    revert_error: None,
                    delay: f.fault.delay(),
                },
            );
        }
    }
    let faults: BTreeMap<String, Box<dyn Fault>> =
        faults.into_iter().map(|p| (p.name, p.fault)).collect();
    let journal_path = shared.journal.lock().unwrap().path().display().to_string();
    shared.emit(EventKind::Started {
        experiment: exp.name.clone(),
        journal: journal_path.clone(),
        seed: header.seed,
        leashed,
    });

    let deadline = shared.t0 + simian_experiment::max_duration(exp);
    let mut acc = Acc {
        phases: Vec::new(),
        results: Vec::new(),
        baseline: BTreeMap::new(),
        stop: None,
        recovery: None,
    };
    let mut reason: Option<String> = None;
    let mut verdict = Verdict::Held;

    // Before: the hypothesis must hold; its window is the baseline.
    shared.emit(EventKind::Phase {
        phase: Phase::Before,
    });
    let start = Instant::now();
    let before = tokio::select! {
        _ = sample_loop(&shared, &probes, tick, exp.steady_state.window.0) => unreachable!(),
        _ = tokio::time::sleep(exp.steady_state.before.0) => End::Done,
        r = aborted(&mut abort) => End::Abort(r),
        _ = tokio::time::sleep_until(deadline) => End::Abort(max_duration_reason(&loaded)),
    };
    let now = Instant::now();
    acc.phases.push(span(&shared, Phase::Before, start, now));
    if let End::Abort(r) = before {
        return finish(&shared, &loaded, &header, Verdict::Aborted, Some(r), acc).await;
    }
    for (name, rec) in &probes {
        acc.baseline.insert(name.clone(), rec.between(start, now));
    }
    let mut not_steady = Vec::new();
    for a in &loaded.hypothesis {
        let m = &acc.baseline[&a.probe];
        let c = a.check(m, Some(m));
        acc.results.push(result(Phase::Before, a, &c, None));
        if c.held != Some(true) {
            not_steady.push(format!("`{a}` ({})", a.describe(&c)));
        }
    }
    for s in &loaded.stop_when {
        let m = &acc.baseline[&s.probe];
        let c = s.check(m, Some(m));
        if c.held == Some(true) {
            not_steady.push(format!(
                "stop condition `{s}` is already true ({})",
                s.describe(&c)
            ));
        }
    }
    if !not_steady.is_empty() {
        let r = format!(
            "the system is not steady before the method: {}",
            not_steady.join("; ")
        );
        return finish(&shared, &loaded, &header, Verdict::NotRun, Some(r), acc).await;
    }

    // Method: judged continuously; a stop condition aborts.
    shared.emit(EventKind::Phase {
        phase: Phase::Method,
    });
    let start = Instant::now();
    let mut watch = Watch::new(&loaded.hypothesis);
    let outcome = tokio::select! {
        r = run_steps(&shared, &faults, &exp.method) => match r {
            Ok(()) => End::Done,
            Err(e) => End::Abort(e),
        },
        r = renew_leases(&shared, &faults) => End::Abort(r),
        (cond, detail, at) = monitor(&shared, &probes, &loaded, &acc.baseline, &mut watch, tick) => {
            acc.stop = Some(StopReport { condition: cond.clone(), detail: detail.clone(), detected_ms: at, reverted_ms: None });
            End::Abort(format!("stop condition `{cond}` tripped ({detail})"))
        }
        r = aborted(&mut abort) => End::Abort(r),
        _ = tokio::time::sleep_until(deadline) => End::Abort(max_duration_reason(&loaded)),
    };
    acc.phases
        .push(span(&shared, Phase::Method, start, Instant::now()));
    acc.results.extend(watch.results(&loaded.hypothesis));
    if let End::Abort(r) = &outcome {
        shared.emit(EventKind::Aborting { reason: r.clone() });
        reason = Some(r.clone());
        verdict = Verdict::Aborted;
    }

    // Revert everything still applied, newest first.
    shared.emit(EventKind::Phase {
        phase: Phase::Revert,
    });
    let start = Instant::now();
    let revert_ok = revert_all(&shared).await;
    acc.phases
        .push(span(&shared, Phase::Revert, start, Instant::now()));
    if let Some(s) = &mut acc.stop {
        s.reverted_ms = Some(shared.ms());
    }
    if !revert_ok {
        let r = format!(
            "a revert failed: something may still be broken; run `simian recover {journal_path}`"
        );
        return finish(
            &shared,
            &loaded,
            &header,
            Verdict::RevertFailed,
            Some(r),
            acc,
        )
        .await;
    }
    if verdict == Verdict::Aborted {
        return finish(&shared, &loaded, &header, verdict, reason, acc).await;
    }
    if acc
        .results
        .iter()
        .any(|r| r.phase == Phase::Method && r.held == Some(false))
    {
        verdict = Verdict::Deviated;
    }

    // After: the hypothesis must hold again once every fault is reverted, and so must the
    // recovery assertions.
    shared.emit(EventKind::Phase {
        phase: Phase::After,
    });
    if let Some(within) = exp.steady_state.recovers_within {
        let r = tokio::select! {
            _ = sample_loop(&shared, &probes, tick, exp.steady_state.window.0) => unreachable!(),
            r = recover(&shared, &probes, &loaded, &acc.baseline, tick, within.0, &mut abort) => r,
        };
        match r {
            Err(reason) => {
                return finish(
                    &shared,
                    &loaded,
                    &header,
                    Verdict::Aborted,
                    Some(reason),
                    acc,
                )
                .await
            }
            Ok((report, result)) => {
                if result.held != Some(true) {
                    verdict = Verdict::Deviated;
                }
                acc.results.push(result);
                acc.recovery = Some(report);
            }
        }
    }
    let settle_end = Instant::now() + exp.steady_state.settle.0;
    let after_end = settle_end + exp.steady_state.after.0;
    let after = tokio::select! {
        _ = sample_loop(&shared, &probes, tick, exp.steady_state.window.0) => unreachable!(),
        _ = tokio::time::sleep_until(after_end) => End::Done,
        r = aborted(&mut abort) => End::Abort(r),
        _ = tokio::time::sleep_until(deadline) => End::Abort(max_duration_reason(&loaded)),
    };
    acc.phases.push(span(
        &shared,
        Phase::After,
        settle_end.min(Instant::now()),
        Instant::now(),
    ));
    if let End::Abort(r) = after {
        return finish(&shared, &loaded, &header, Verdict::Aborted, Some(r), acc).await;
    }
    for a in loaded.hypothesis.iter().chain(&loaded.recovery) {
        let m = probes[&a.probe].between(settle_end, after_end);
        let c = a.check(&m, acc.baseline.get(&a.probe));
        if c.held != Some(true) {
            verdict = Verdict::Deviated;
        }
        acc.results.push(result(Phase::After, a, &c, None));
    }
    finish(&shared, &loaded, &header, verdict, None, acc).await
}

/// Watches the recovery assertions (or the hypothesis) on every tick after the revert, over
/// the sliding window counting only what came after it, until all hold or `within` passes.
async fn recover(
    s: &Shared,
    probes: &BTreeMap<String, Arc<Recorder>>,
    l: &Loaded,
    baseline: &BTreeMap<String, Metrics>,
    tick: Duration,
    within: Duration,
    abort: &mut tokio::sync::watch::Receiver<Option<String>>,
) -> Result<(RecoveryReport, AssertionResult), String> {
    let list = if l.recovery.is_empty() {
        &l.hypothesis
    } else {
        &l.recovery
    };
    let window = l.experiment.steady_state.window.0;
    let start = Instant::now();
    let deadline = start + within;
    let mut iv = tokio::time::interval(tick);
    let (recovered, failing) = loop {
        tokio::select! {
            _ = iv.tick() => {}
            r = aborted(abort) => return Err(r),
        }
        let now = Instant::now();
        let from = now.checked_sub(window).unwrap_or(start).max(start);
        let failing: Vec<String> = list
            .iter()
            .filter_map(|a| {
                let c = a.check(&probes[&a.probe].between(from, now), baseline.get(&a.probe));
                (c.held != Some(true)).then(|| format!("{} ({})", a.text, a.describe(&c)))
            })
            .collect();
        if failing.is_empty() && now > start {
            break (Some(now - start), failing);
        }
        if now >= deadline {
            break (None, failing);
        }
    };
    let bound = simian_core::Dur(within);
    s.emit(EventKind::Step {
        step: match recovered {
            Some(t) => format!("recovered after {:.2}s", t.as_secs_f64()),
            None => format!("not recovered within {bound}"),
        },
    });
    let (held, detail) = match recovered {
        Some(t) => (
            true,
            format!(
                "recovered in {:.2}s, expected within {bound}",
                t.as_secs_f64()
            ),
        ),
        None => (
            false,
            format!("not recovered within {bound}: {}", failing.join("; ")),
        ),
    };
    let result = AssertionResult {
        phase: Phase::After,
        assertion: format!("recovers within {bound}"),
        held: Some(held),
        measured: recovered.map(|t| t.as_secs_f64()),
        bound: Some(within.as_secs_f64()),
        detail,
        first_breach_ms: None,
    };
    let report = RecoveryReport {
        within: within.as_secs_f64(),
        time_to_recover: recovered.map(|t| t.as_secs_f64()),
        assertions: list.iter().map(|a| a.text.clone()).collect(),
    };
    Ok((report, result))
}

fn max_duration_reason(l: &Loaded) -> String {
    format!(
        "max_duration of {} reached",
        simian_core::Dur(simian_experiment::max_duration(&l.experiment))
    )
}

fn span(s: &Shared, phase: Phase, start: Instant, end: Instant) -> PhaseSpan {
    PhaseSpan {
        phase,
        start_ms: start.saturating_duration_since(s.t0).as_millis() as u64,
        end_ms: end.saturating_duration_since(s.t0).as_millis() as u64,
    }
}

fn result(
    phase: Phase,
    a: &Assertion,
    c: &simian_experiment::Check,
    first_breach_ms: Option<u64>,
) -> AssertionResult {
    AssertionResult {
        phase,
        assertion: a.text.clone(),
        held: c.held,
        measured: c.measured,
        bound: c.bound,
        detail: a.describe(c),
        first_breach_ms,
    }
}

async fn aborted(rx: &mut watch::Receiver<Option<String>>) -> String {
    loop {
        if let Some(r) = rx.borrow_and_update().clone() {
            return r;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Emits probe samples on every tick; never returns.
async fn sample_loop(
    s: &Shared,
    probes: &BTreeMap<String, Arc<Recorder>>,
    tick: Duration,
    window: Duration,
) {
    let mut iv = tokio::time::interval(tick);
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        iv.tick().await;
        let now = Instant::now();
        for (name, rec) in probes {
            s.emit(EventKind::Sample {
                probe: name.clone(),
                metrics: rec.window(window, now),
            });
        }
    }
}

/// Tracks the hypothesis through the method: the first breach and the worst value of each assertion.
struct Watch {
    worst: Vec<Option<simian_experiment::Check>>,
    first_breach: Vec<Option<u64>>,
}

impl Watch {
    fn new(h: &[Assertion]) -> Self {
        Watch {
            worst: vec![None; h.len()],
            first_breach: vec![None; h.len()],
        }
    }

    fn results(&self, h: &[Assertion]) -> Vec<AssertionResult> {
        h.iter()
            .enumerate()
            .map(|(i, a)| {
                let c = self.worst[i].unwrap_or(simian_experiment::Check {
                    measured: None,
                    bound: None,
                    held: None,
                });
                let held = match self.first_breach[i] {
                    Some(_) => Some(false),
                    None => c.held.map(|_| true),
                };
                result(
                    Phase::Method,
                    a,
                    &simian_experiment::Check { held, ..c },
                    self.first_breach[i],
                )
            })
            .collect()
    }
}

/// Judges the hypothesis and the stop conditions on every tick during the
/// method; returns when a stop condition trips: (condition, detail, ms).
async fn monitor(
    s: &Shared,
    probes: &BTreeMap<String, Arc<Recorder>>,
    l: &Loaded,
    baseline: &BTreeMap<String, Metrics>,
    w: &mut Watch,
    tick: Duration,
) -> (String, String, u64) {
    let window = l.experiment.steady_state.window.0;
    let mut iv = tokio::time::interval(tick);
    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        iv.tick().await;
        let now = Instant::now();
        let metrics: BTreeMap<&str, Metrics> = probes
            .iter()
            .map(|(n, r)| (n.as_str(), r.window(window, now)))
            .collect();
        for (name, m) in &metrics {
            s.emit(EventKind::Sample {
                probe: name.to_string(),
                metrics: m.clone(),
            });
        }
        for cond in &l.stop_when {
            let c = cond.check(&metrics[cond.probe.as_str()], baseline.get(&cond.probe));
            if c.held == Some(true) {
                let detail = cond.describe(&c);
                s.emit(EventKind::StopTripped {
                    condition: cond.text.clone(),
                    detail: detail.clone(),
                });
                return (cond.text.clone(), detail, s.ms());
            }
        }
        for (i, a) in l.hypothesis.iter().enumerate() {
            let c = a.check(&metrics[a.probe.as_str()], baseline.get(&a.probe));
            s.latest.lock().unwrap()[i] =
                Some((c.held, format!("{} ({})", a.text, a.describe(&c))));
            let Some(held) = c.held else { continue };
            let worse = match (&w.worst[i], c.measured) {
                (None, _) => true,
                (Some(prev), Some(v)) => match (prev.measured, a.op) {
                    (Some(p), simian_experiment::Op::Lt | simian_experiment::Op::Le) => v > p,
                    (Some(p), simian_experiment::Op::Gt | simian_experiment::Op::Ge) => v < p,
                    (Some(_), _) => !held,
                    (None, _) => true,
                },
                _ => false,
            };
            if worse {
                w.worst[i] = Some(c);
            }
            if !held && w.first_breach[i].is_none() {
                w.first_breach[i] = Some(s.ms());
                w.worst[i] = Some(c);
                s.emit(EventKind::Breach {
                    assertion: a.text.clone(),
                    detail: a.describe(&c),
                });
            }
        }
    }
}

fn run_steps<'a>(
    s: &'a Shared,
    faults: &'a BTreeMap<String, Box<dyn Fault>>,
    steps: &'a [Step],
) -> StepFuture<'a> {
    Box::pin(async move {
        for step in steps {
            run_step(s, faults, step).await?;
        }
        Ok(())
    })
}

fn run_step<'a>(
    s: &'a Shared,
    faults: &'a BTreeMap<String, Box<dyn Fault>>,
    step: &'a Step,
) -> StepFuture<'a> {
    Box::pin(async move {
        match step {
            Step::Wait(d) => {
                s.emit(EventKind::Step {
                    step: format!("wait {d}"),
                });
                tokio::time::sleep(d.0).await;
            }
            Step::Revert(name) => {
                s.emit(EventKind::Step {
                    step: format!("revert {name}"),
                });
                if !revert_one(s, name).await {
                    return Err(format!("reverting `{name}` failed"));
                }
            }
            Step::Parallel(inner) => {
                s.emit(EventKind::Step {
                    step: format!("parallel group of {}", inner.len()),
                });
                let all =
                    futures_util::future::join_all(inner.iter().map(|st| run_step(s, faults, st)))
                        .await;
                all.into_iter().collect::<Result<Vec<()>, String>>()?;
            }
            Step::Evacuate(ev) => {
                evacuate(s, ev, faults[ev.name.as_deref().expect("named")].as_ref()).await?
            }
            Step::Confirm(c) => confirm(s, c).await?,
            Step::Inject(inj) => {
                let name = inj.name.clone().expect("the loader names every fault");
                let fault = &faults[&name];
                s.emit(EventKind::Step {
                    step: format!("inject {name}"),
                });
                inject(s, &name, fault.as_ref()).await?;
                if let Some(d) = inj.duration {
                    tokio::time::sleep(d.0).await;
                    if !revert_one(s, &name).await {
                        return Err(format!("reverting `{name}` failed"));
                    }
                }
            }
        }
        Ok(())
    })
}

/// Waits for an operator's go-ahead; none within the timeout aborts the run.
async fn confirm(s: &Shared, c: &simian_experiment::Confirm) -> Result<(), String> {
    s.emit(EventKind::Step {
        step: format!("confirm: {}", c.message),
    });
    let mut operator = s.operator.lock().await;
    // Answers given before this step was asked are not answers to it.
    if let Some(rx) = operator.as_mut() {
        while rx.try_recv().is_ok() {}
    }
    s.emit(EventKind::AwaitingOperator {
        message: c.message.clone(),
        timeout_ms: c.timeout.0.as_millis() as u64,
    });
    let answer = async {
        match operator.as_mut() {
            Some(rx) => rx.recv().await,
            None => std::future::pending().await,
        }
    };
    match tokio::time::timeout(c.timeout.0, answer).await {
        Ok(Some(by)) => {
            s.emit(EventKind::Confirmed { by });
            Ok(())
        }
        Ok(None) | Err(_) => Err(format!(
            "no operator confirmed `{}` within {}",
            c.message, c.timeout
        )),
    }
}

/// Renews the lease of every applied fault that has one (see `Plan::lease`), every third
/// of the shortest lease. Returns why when a renewal fails: the fault is no longer in
/// place (its lease ran out while the runner stalled, or something else undid it), so
/// the run no longer tests what it says, and aborts.
async fn renew_leases(s: &Shared, faults: &BTreeMap<String, Box<dyn Fault>>) -> String {
    let leased = |name: &str| faults.get(name).is_some_and(|f| f.plan().lease.is_some());
    let Some(lease) = faults.values().filter_map(|f| f.plan().lease).min() else {
        return std::future::pending().await;
    };
    let every = Duration::from(lease) / 3;
    let mut tick = tokio::time::interval_at(Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let due: Vec<(String, u32, RevertRecord)> = s
            .applied
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.live && leased(&a.name))
            .map(|a| (a.name.clone(), a.seq, a.record.clone()))
            .collect();
        for (name, seq, record) in due {
            // A renewal stuck for a whole period could let the lease run out unnoticed.
            let why = match tokio::time::timeout(every, faults[&name].renew(&record)).await {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {}", simian_core::Dur(every)),
            };
            if s.applied.lock().unwrap().iter().any(|a| a.seq == seq) {
                return format!("renewing the lease of `{name}` failed: {why}");
            }
            // Reverted while the renewal was on its way: nothing to renew.
        }
    }
}

/// Chaos Kong: up the ramp, each step after the first gated on the hypothesis; hold;
/// back down (gradually, or at once), and restore the original state.
async fn evacuate(
    s: &Shared,
    ev: &simian_experiment::Evacuate,
    fault: &dyn Fault,
) -> Result<(), String> {
    let name = ev.name.as_deref().expect("named");
    let ramp = fault.ramp().expect("an evacuation's fault is a shift");
    let shares = ev.shares();
    let pct = |x: f64| format!("{:.0}%", x * 100.0);
    s.emit(EventKind::Step {
        step: format!(
            "evacuate {name}: {} → {} in {} steps ({}), {} apart",
            ev.from,
            ev.to,
            shares.len(),
            shares
                .iter()
                .map(|x| pct(*x))
                .collect::<Vec<_>>()
                .join(", "),
            ev.every
        ),
    });
    // Leashed: no journal number, since nothing is begun.
    let seq = match s.leashed {
        true => None,
        false => Some(begin(s, name, fault).await?.1),
    };
    for (i, &share) in shares.iter().enumerate() {
        if i > 0 {
            let latest: Vec<Judged> = s.latest.lock().unwrap().iter().flatten().cloned().collect();
            let failing: Vec<String> = latest
                .iter()
                .filter(|(held, _)| *held != Some(true))
                .map(|(_, d)| d.clone())
                .collect();
            s.emit(EventKind::Gate {
                fault: name.to_string(),
                next: share,
                held: failing.is_empty(),
                failing: failing.clone(),
                readings: latest.into_iter().map(|(_, d)| d).collect(),
            });
            if !failing.is_empty() {
                return Err(format!(
                    "the gate before step {} ({}) of `{name}` failed: {}; traffic goes back",
                    i + 1,
                    pct(share),
                    failing.join("; ")
                ));
            }
        }
        let last = i + 1 == shares.len();
        let wait = if last { ev.hold } else { ev.every };
        let Some(seq) = seq else {
            leash(s, name, Would::Shift, Some(share));
            if i == 0 {
                s.would
                    .lock()
                    .unwrap()
                    .push((name.to_string(), Would::Restore));
            }
            tokio::time::sleep(wait.0).await;
            continue;
        };
        ramp.shift(share)
            .await
            .map_err(|e| format!("shifting `{name}` to {} failed: {e}", pct(share)))?;
        if i == 0 {
            mark_applied(s, name, seq);
        }
        s.emit(EventKind::Shifted {
            fault: name.to_string(),
            share,
            next: (!last).then(|| shares[i + 1]),
            wait_ms: wait.0.as_millis() as u64,
        });
        tokio::time::sleep(wait.0).await;
    }
    if ev.back == simian_experiment::Back::Gradual {
        for &share in shares.iter().rev().skip(1) {
            if s.leashed {
                leash(s, name, Would::Shift, Some(share));
                tokio::time::sleep(ev.every.0).await;
                continue;
            }
            ramp.shift(share)
                .await
                .map_err(|e| format!("shifting `{name}` back to {} failed: {e}", pct(share)))?;
            s.emit(EventKind::Shifted {
                fault: name.to_string(),
                share,
                next: None,
                wait_ms: ev.every.0.as_millis() as u64,
            });
            tokio::time::sleep(ev.every.0).await;
        }
    }
    if !revert_one(s, name).await {
        return Err(format!("restoring the traffic of `{name}` failed"));
    }
    Ok(())
}

async fn inject(s: &Shared, name: &str, fault: &dyn Fault) -> Result<(), String> {
    if s.leashed {
        leash(s, name, Would::Inject, None);
        s.would
            .lock()
            .unwrap()
            .push((name.to_string(), Would::Revert));
        return Ok(());
    }
    let (record, seq) = begin(s, name, fault).await?;
    let applied = fault.apply(&record).await;
    mark_applied(s, name, seq);
    let plan = fault.plan();
    s.emit(EventKind::Injected {
        fault: name.to_string(),
        action: plan.action.clone(),
        targets: plan.targets.clone(),
    });
    applied.map_err(|e| format!("injecting `{name}` failed: {e}"))
}

/// Leashed mode: logs what would be done to fault `name` now (its plan's action, or how
/// it reverts, and its targets), and does nothing.
fn leash(s: &Shared, name: &str, would: Would, share: Option<f64>) {
    let (action, targets) = s
        .faults
        .lock()
        .unwrap()
        .get(name)
        .map(|f| {
            let action = match would {
                Would::Inject | Would::Shift => &f.plan.action,
                Would::Revert | Would::Restore => &f.plan.revert,
            };
            (action.clone(), f.plan.targets.clone())
        })
        .unwrap_or_default();
    s.emit(EventKind::Leashed {
        fault: name.to_string(),
        would,
        action,
        targets,
        share,
    });
}

/// Journals that fault `name` (journal number `seq`) was applied, and when.
fn mark_applied(s: &Shared, name: &str, seq: u32) {
    if let Some(a) = s.applied.lock().unwrap().iter_mut().find(|a| a.seq == seq) {
        a.live = true;
    }
    let _ = s.journal(
        &Entry::Applied {
            fault: name.to_string(),
            seq,
        },
        false,
    );
    if let Some(f) = s.faults.lock().unwrap().get_mut(name) {
        f.injected_ms = Some(s.ms());
    }
}

/// Prepares a fault and journals its revert record (fsync'd) before anything changes;
/// from here on a revert covers it. Returns the record and its journal number.
async fn begin(s: &Shared, name: &str, fault: &dyn Fault) -> Result<(RevertRecord, u32), String> {
    let record = fault
        .prepare()
        .await
        .map_err(|e| format!("preparing `{name}` failed: {e}"))?;
    let seq = {
        let mut q = s.seq.lock().unwrap();
        *q += 1;
        *q
    };
    // Write-ahead: the revert record is on disk before anything changes.
    s.journal(
        &Entry::Intent {
            fault: name.to_string(),
            seq,
            irreversible: fault.plan().irreversible,
            record: record.clone(),
        },
        true,
    )
    .map_err(|e| format!("cannot journal `{name}`, so it was not injected: {e}"))?;
    s.applied.lock().unwrap().push(Applied {
        name: name.to_string(),
        seq,
        record: record.clone(),
        live: false,
    });
    Ok((record, seq))
}

/// Reverts one applied fault by name; true when it is reverted (or was not applied).
async fn revert_one(s: &Shared, name: &str) -> bool {
    if s.leashed {
        let taken = {
            let mut w = s.would.lock().unwrap();
            w.iter().rposition(|x| x.0 == name).map(|i| w.remove(i))
        };
        if let Some((name, would)) = taken {
            leash(s, &name, would, None);
        }
        return true;
    }
    let taken = {
        let mut a = s.applied.lock().unwrap();
        a.iter().rposition(|x| x.name == name).map(|i| a.remove(i))
    };
    match taken {
        Some(a) => revert_applied(s, a).await,
        None => true,
    }
}

async fn revert_all(s: &Shared) -> bool {
    loop {
        let next = s.would.lock().unwrap().pop();
        let Some((name, would)) = next else { break };
        leash(s, &name, would, None);
    }
    let mut ok = true;
    loop {
        let next = s.applied.lock().unwrap().pop();
        let Some(a) = next else { break };
        ok &= revert_applied(s, a).await;
    }
    ok
}

async fn revert_applied(s: &Shared, a: Applied) -> bool {
    match simian_injectors::revert(&a.record).await {
        Ok(r) => {
            let _ = s.journal(
                &Entry::Reverted {
                    fault: a.name.clone(),
                    seq: a.seq,
                    by: "run".into(),
                    actions: r.actions.clone(),
                },
                true,
            );
            if let Some(f) = s.faults.lock().unwrap().get_mut(&a.name) {
                f.reverted_ms = Some(s.ms());
            }
            s.emit(EventKind::Reverted {
                fault: a.name,
                actions: r.actions,
            });
            true
        }
        Err(e) => {
            let _ = s.journal(
                &Entry::RevertFailed {
                    fault: a.name.clone(),
                    seq: a.seq,
                    error: e.to_string(),
                },
                true,
            );
            if let Some(f) = s.faults.lock().unwrap().get_mut(&a.name) {
                f.revert_error = Some(e.to_string());
            }
            s.emit(EventKind::RevertFailed {
                fault: a.name,
                error: e.to_string(),
            });
            false
        }
    }
}

/// What a run has gathered by the time it ends.
struct Acc {
    phases: Vec<PhaseSpan>,
    results: Vec<AssertionResult>,
    baseline: BTreeMap<String, Metrics>,
    stop: Option<StopReport>,
    recovery: Option<RecoveryReport>,
}

async fn finish(
    s: &Shared,
    l: &Loaded,
    h: &Header,
    verdict: Verdict,
    reason: Option<String>,
    acc: Acc,
) -> RunReport {
    // A run that ends early (not steady, aborted before the method) still reverts anything applied.
    let pending = !s.applied.lock().unwrap().is_empty() || !s.would.lock().unwrap().is_empty();
    let verdict = if pending && !revert_all(s).await {
        Verdict::RevertFailed
    } else {
        verdict
    };
    let exit_code = verdict.exit_code();
    s.emit(EventKind::Finished {
        verdict: verdict.name().into(),
        exit_code,
    });
    let faults = s.faults.lock().unwrap().values().cloned().collect();
    let mut report = RunReport {
        experiment: l.experiment.name.clone(),
        file: l.file.clone(),
        run_id: h.run_id.clone(),
        seed: h.seed,
        journal: s.journal.lock().unwrap().path().display().to_string(),
        started_at: h.started_at.clone(),
        leashed: s.leashed,
        verdict,
        exit_code,
        reason,
        duration_ms: s.ms(),
        phases: acc.phases,
        assertions: acc.results,
        faults,
        baseline: acc.baseline,
        stop: acc.stop,
        recovery: acc.recovery,
        events: Vec::new(),
    };
    // The report without its events (the journal has them), so `simian report JOURNAL`
    // can render it again; before `End`, so a journal with an end has a report.
    let _ = s.journal(&Entry::Report(Box::new(report.clone())), false);
    let _ = s.journal(
        &Entry::End {
            verdict: verdict.name().into(),
            exit_code,
        },
        true,
    );
    report.events = s.events.lock().unwrap().clone();
    report
}

/// How a guarded run ended.
pub enum Outcome {
    Finished(Box<RunReport>),
    /// The engine panicked; everything the journal shows applied was reverted from it.
    Panicked {
        message: String,
        recovered: Result<crate::Recovered, crate::journal::JournalError>,
    },
}

/// Runs [`execute`] in its own task so that even a panic reverts every fault,
/// from the journal, before this returns.
pub async fn execute_guarded(
    p: Prepared,
    abort: watch::Receiver<Option<String>>,
    sink: mpsc::UnboundedSender<RunEvent>,
) -> Outcome {
    let journal = p.journal.path().to_path_buf();
    match tokio::spawn(execute(p, abort, sink)).await {
        Ok(report) => Outcome::Finished(Box::new(report)),
        Err(e) => {
            let message = match e.try_into_panic() {
                Ok(payload) => payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into()),
                Err(e) => e.to_string(),
            };
            Outcome::Panicked {
                message,
                recovered: crate::recover(&journal).await,
            }
        }
    }
}
