//! A self-contained HTML report of one run: the verdict, every assertion measured against
//! its bound, the faults, a timeline chart per probe metric and, for latency faults, a
//! histogram of the delays injected.
//!
//! One file that opens anywhere, offline: inline CSS and SVG, no scripts, nothing fetched
//! (not even a font). Each chart spans the whole run with the fault windows shaded, the
//! phases as a strip on top, traffic-shift steps, the baseline (dashed) and the
//! hypothesis' bound (dotted), and markers for the first breach, a tripped stop condition
//! and recovery. Samples are reduced to at most one point per pixel column, or the column's
//! min–max band and mean when more fall into it, so a long run stays small.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use simian_core::{Metric, MetricKind, Metrics};
use simian_delay::{DelaySpec, Sampler};
use simian_engine::report::{FaultReport, PhaseSpan, Verdict};
use simian_engine::{EventKind, Phase, RunReport};

/// The charts' colours: opaque and distinct, so a screenshot can be checked for them.
pub mod colours {
    /// A metric's line.
    pub const LINE: &str = "#0b62d6";
    /// The min–max band of a pixel column, when many samples share one.
    pub const BAND: &str = "#a9c8f5";
    /// A fault's window, from its injection to its revert.
    pub const FAULT: &str = "#ffcf8a";
    pub const BASELINE: &str = "#57606a";
    pub const BOUND: &str = "#cf222e";
    /// The first breach of the hypothesis, and a tripped stop condition.
    pub const DETECT: &str = "#a40e26";
    pub const RECOVER: &str = "#1a7f37";
    pub const SHIFT: &str = "#8250df";
    pub const HISTOGRAM: &str = "#54aeff";
}

use colours::*;

/// The metrics charted for every probe that has data for them; asserted metrics are added.
const CHARTED: [Metric; 7] = [
    Metric::SuccessRatio,
    Metric::Rate,
    Metric::P99,
    Metric::Value,
    Metric::Visible,
    Metric::Queued,
    Metric::Lost,
];

// Chart geometry, in CSS pixels: the plot area is inset by the margins.
const W: f64 = 560.0;
const H: f64 = 190.0;
const LEFT: f64 = 62.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 22.0;
const BOTTOM: f64 = 24.0;
/// Pixel columns of the plot area: the unit samples are reduced to.
const COLUMNS: usize = (W - LEFT - RIGHT) as usize;
const HIST_BINS: usize = 40;

/// The report as one HTML page.
pub fn render(r: &RunReport) -> String {
    let mut o = String::with_capacity(64 * 1024);
    let verdict = r.verdict.name();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}{} — {verdict} · simian</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(&r.experiment),
        if r.leashed { " (leashed)" } else { "" }
    );
    header(&mut o, r);
    assertions(&mut o, r);
    timeline(&mut o, r);
    faults(&mut o, r);
    event_log(&mut o, r);
    o.push_str("</body>\n</html>\n");
    o
}

const CSS: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif;color:#1f2328;background:#fff;margin:0 auto;max-width:1150px;padding:14px 20px}
h1{font-size:22px;margin:0 0 4px}
h2{font-size:17px;margin:20px 0 8px;border-bottom:1px solid #d0d7de;padding-bottom:3px}
h3{font-size:14px;margin:12px 0 4px}
code,dd{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.verdict{display:inline-block;padding:1px 10px;border-radius:12px;color:#fff;font-size:14px;vertical-align:3px;margin-left:8px}
.held{background:#1a7f37}.deviated{background:#cf222e}.aborted{background:#bc4c00}.not-run{background:#6e7781}.revert-failed{background:#82071e}
.reason{margin:4px 0;padding:6px 10px;background:#fff8c5;border-left:3px solid #bf8700}
dl.facts{display:grid;grid-template-columns:max-content 1fr max-content 1fr;gap:1px 14px;margin:8px 0}
dt{color:#57606a}dd{margin:0;word-break:break-all}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
th{color:#57606a;font-weight:600}
td:first-child{white-space:nowrap}
.ok{color:#1a7f37}.bad{color:#cf222e}.none{color:#6e7781}
.charts{display:grid;grid-template-columns:repeat(auto-fill,560px);gap:8px 18px}
figure{margin:0}figcaption{font-size:13px}.muted{color:#57606a}
svg{display:block}svg text{font-size:10px;fill:#24292f}
.legend{font-size:12px;margin:0 0 8px}.legend span{margin-right:14px;white-space:nowrap}
.sw{display:inline-block;width:18px;height:10px;vertical-align:-1px;margin-right:4px}
pre{font-size:12px;background:#f6f8fa;padding:8px;overflow-x:auto}
";

/// Text safe anywhere in HTML and XML (the JUnit report): element content and quoted
/// attribute values. Control characters XML 1.0 cannot hold are dropped.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {}
            c => o.push(c),
        }
    }
    o
}

fn secs(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

fn header(o: &mut String, r: &RunReport) {
    let class = match r.verdict {
        Verdict::Held => "held",
        Verdict::Deviated => "deviated",
        Verdict::Aborted => "aborted",
        Verdict::NotRun => "not-run",
        Verdict::RevertFailed => "revert-failed",
    };
    let _ = writeln!(
        o,
        "<header>\n<h1>{} <span class=\"verdict {class}\">{}</span></h1>",
        esc(&r.experiment),
        esc(&r.verdict.name().to_uppercase())
    );
    if r.leashed {
        let _ = writeln!(
            o,
            "<p class=\"reason\">Leashed: nothing was injected; every action was only logged at the time it would have been taken.</p>"
        );
    }
    if let Some(reason) = &r.reason {
        let _ = writeln!(o, "<p class=\"reason\">{}</p>", esc(reason));
    }
    if r.verdict == Verdict::RevertFailed {
        let _ = writeln!(
            o,
            "<p class=\"reason\">Something may still be broken: run <code>simian recover {}</code>.</p>",
            esc(&r.journal)
        );
    }
    let facts = [
        ("exit code", r.exit_code.to_string()),
        ("started", r.started_at.clone()),
        ("duration", secs(r.duration_ms)),
        ("run id", r.run_id.clone()),
        ("seed", r.seed.to_string()),
        ("experiment file", r.file.clone()),
        ("journal", r.journal.clone()),
    ];
    o.push_str("<dl class=\"facts\">");
    for (k, v) in facts {
        let _ = write!(o, "<dt>{k}</dt><dd>{}</dd>", esc(&v));
    }
    o.push_str("</dl>\n");
    if let Some(s) = &r.stop {
        let took = s.reverted_ms.map_or("–".into(), |ms| {
            format!("{} ms", ms.saturating_sub(s.detected_ms))
        });
        let _ = writeln!(
            o,
            "<p>Stop condition <code>{}</code> tripped at {} ({}); every fault reverted {took} later.</p>",
            esc(&s.condition),
            secs(s.detected_ms),
            esc(&s.detail)
        );
    }
    if let Some(rec) = &r.recovery {
        let took = rec.time_to_recover.map_or_else(
            || "<b class=\"bad\">not recovered</b>".to_string(),
            |t| format!("<b>{t:.2}s</b>"),
        );
        let _ = writeln!(
            o,
            "<p>Time to recover: {took} (bound {}s; {}).</p>",
            rec.within,
            esc(&rec.assertions.join(", "))
        );
    }
    o.push_str("</header>\n");
}

fn assertions(o: &mut String, r: &RunReport) {
    if r.assertions.is_empty() {
        return;
    }
    o.push_str(
        "<section>\n<h2>Hypothesis</h2>\n<table>\n<tr><th></th><th>phase</th><th>assertion</th>\
         <th>measured vs expected</th><th>first breach</th></tr>\n",
    );
    for a in &r.assertions {
        let (class, mark) = match a.held {
            Some(true) => ("ok", "✔"),
            Some(false) => ("bad", "✘"),
            None => ("none", "–"),
        };
        let _ = writeln!(
            o,
            "<tr><td class=\"{class}\">{mark}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
            a.phase.name(),
            esc(&a.assertion),
            esc(&a.detail),
            a.first_breach_ms.map_or(String::new(), secs)
        );
    }
    o.push_str("</table>\n</section>\n");
}

fn faults(o: &mut String, r: &RunReport) {
    if r.faults.is_empty() {
        return;
    }
    o.push_str(
        "<section>\n<h2>Faults</h2>\n<table>\n<tr><th>fault</th><th>plan</th><th>targets</th>\
         <th>injected</th><th>reverted</th><th>revert</th></tr>\n",
    );
    let at = |ms: Option<u64>| ms.map_or("–".to_string(), secs);
    for f in &r.faults {
        let p = &f.plan;
        let targets = if p.targets.len() <= 3 {
            esc(&p.targets.join(", "))
        } else {
            let items: String = p
                .targets
                .iter()
                .map(|t| format!("<li>{}</li>", esc(t)))
                .collect();
            format!(
                "<details><summary>{} targets</summary><ul>{items}</ul></details>",
                p.targets.len()
            )
        };
        let revert = match &f.revert_error {
            Some(e) => format!("<span class=\"bad\">revert failed: {}</span>", esc(e)),
            None => match p.lease {
                Some(l) => format!(
                    "{} (or by itself {l} after the last renewal)",
                    esc(&p.revert)
                ),
                None => esc(&p.revert),
            },
        };
        let _ = writeln!(
            o,
            "<tr><td><b>{}</b></td><td>{}: {} on {}{}</td><td>{targets}</td><td>{}</td><td>{}</td><td>{revert}</td></tr>",
            esc(&f.name),
            esc(&p.backend),
            esc(&p.action),
            esc(&p.reach()),
            if p.irreversible { " <b class=\"bad\">[IRREVERSIBLE]</b>" } else { "" },
            at(f.injected_ms),
            at(f.reverted_ms),
        );
    }
    o.push_str("</table>\n");
    for f in &r.faults {
        if let Some(spec) = &f.delay {
            histogram(o, f, spec);
        }
    }
    o.push_str("</section>\n");
}

fn event_log(o: &mut String, r: &RunReport) {
    let mut live = crate::console::Live::new(0);
    let lines: Vec<String> = r
        .events
        .iter()
        .filter(|e| !matches!(e.kind, EventKind::Sample { .. }))
        .filter_map(|e| live.line(e))
        .collect();
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "<details>\n<summary>Event log ({} events, samples left out)</summary>\n<pre>{}</pre>\n</details>",
        lines.len(),
        esc(&lines.join("\n"))
    );
}

/// A fault's window on the timeline, in ms since the start.
#[derive(Debug, Clone, PartialEq)]
struct Window {
    name: String,
    from: u64,
    /// `None`: never reverted (it lasts to the end of the chart).
    to: Option<u64>,
}

/// A vertical marker: a moment of the run, labelled.
struct Marker {
    at_ms: u64,
    label: String,
    colour: &'static str,
}

/// What every chart of the run shares: its time axis and what happened when.
struct Timeline<'a> {
    span_ms: f64,
    phases: &'a [PhaseSpan],
    windows: Vec<Window>,
    /// Traffic-shift steps: when, and the share moved.
    shifts: Vec<(u64, f64)>,
    markers: Vec<Marker>,
}

/// Fault windows from the report's faults; from the events when it has none.
fn windows(r: &RunReport) -> Vec<Window> {
    let mut out: Vec<Window> = r
        .faults
        .iter()
        .filter_map(|f| {
            f.injected_ms.map(|from| Window {
                name: f.name.clone(),
                from,
                to: f.reverted_ms,
            })
        })
        .collect();
    if out.is_empty() {
        let mut open: BTreeMap<&str, u64> = BTreeMap::new();
        for e in &r.events {
            match &e.kind {
                EventKind::Injected { fault, .. } => {
                    open.entry(fault.as_str()).or_insert(e.at_ms);
                }
                EventKind::Reverted { fault, .. } => {
                    if let Some(from) = open.remove(fault.as_str()) {
                        out.push(Window {
                            name: fault.clone(),
                            from,
                            to: Some(e.at_ms),
                        });
                    }
                }
                _ => {}
            }
        }
        out.extend(open.into_iter().map(|(name, from)| Window {
            name: name.to_string(),
            from,
            to: None,
        }));
    }
    out.sort_by_key(|w| w.from);
    out
}

impl<'a> Timeline<'a> {
    fn new(r: &'a RunReport) -> Self {
        let last = r.events.iter().map(|e| e.at_ms).max().unwrap_or(0);
        let windows = windows(r);
        let first_fault = windows.iter().map(|w| w.from).min();
        let after_fault = |at: u64| match first_fault {
            Some(f) if at >= f => format!(" +{}", secs(at - f)),
            _ => String::new(),
        };
        let mut markers = Vec::new();
        let breach = r.events.iter().find_map(|e| match &e.kind {
            EventKind::Breach { .. } => Some(e.at_ms),
            _ => None,
        });
        if let Some(at) = breach {
            markers.push(Marker {
                at_ms: at,
                label: format!("first breach{}", after_fault(at)),
                colour: DETECT,
            });
        }
        let stop = r.stop.as_ref().map(|s| s.detected_ms).or_else(|| {
            r.events.iter().find_map(|e| match &e.kind {
                EventKind::StopTripped { .. } => Some(e.at_ms),
                _ => None,
            })
        });
        if let Some(at) = stop {
            markers.push(Marker {
                at_ms: at,
                label: format!("stop tripped{}", after_fault(at)),
                colour: DETECT,
            });
        }
        let revert_end = r
            .phases
            .iter()
            .rev()
            .find(|p| p.phase == Phase::Revert)
            .map(|p| p.end_ms);
        if let (Some(end), Some(t)) = (
            revert_end,
            r.recovery.as_ref().and_then(|x| x.time_to_recover),
        ) {
            markers.push(Marker {
                at_ms: end + (t * 1000.0).round() as u64,
                label: format!("recovered in {t:.2}s"),
                colour: RECOVER,
            });
        }
        let shifts = r
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::Shifted { share, .. } => Some((e.at_ms, *share)),
                _ => None,
            })
            .collect();
        Timeline {
            span_ms: r.duration_ms.max(last).max(1) as f64,
            phases: &r.phases,
            windows,
            shifts,
            markers,
        }
    }

    fn x(&self, at_ms: f64) -> f64 {
        LEFT + (at_ms / self.span_ms).clamp(0.0, 1.0) * COLUMNS as f64
    }
}

fn timeline(o: &mut String, r: &RunReport) {
    let mut samples: BTreeMap<&str, Vec<(u64, &Metrics)>> = BTreeMap::new();
    for e in &r.events {
        if let EventKind::Sample { probe, metrics } = &e.kind {
            samples
                .entry(probe.as_str())
                .or_default()
                .push((e.at_ms, metrics));
        }
    }
    if samples.is_empty() {
        return;
    }
    // The bound of each asserted metric, as judged during the method when it was.
    let mut bounds: BTreeMap<(String, Metric), BTreeMap<String, (Phase, Bound)>> = BTreeMap::new();
    for a in &r.assertions {
        let (Ok(parsed), Some(b)) = (simian_experiment::Assertion::parse(&a.assertion), a.bound)
        else {
            continue;
        };
        let per = bounds.entry((parsed.probe, parsed.metric)).or_default();
        let keep = per
            .get(&a.assertion)
            .is_none_or(|(p, ..)| *p != Phase::Method);
        if keep {
            per.insert(a.assertion.clone(), (a.phase, (parsed.op.as_str(), b)));
        }
    }
    let t = Timeline::new(r);
    o.push_str("<section>\n<h2>Timeline</h2>\n");
    legend(o, &t);
    o.push_str("<div class=\"charts\">\n");
    for (probe, s) in &samples {
        for m in Metric::ALL {
            let bs: Vec<Bound> = bounds
                .get(&(probe.to_string(), m))
                .map(|b| b.values().map(|(_, bound)| *bound).collect())
                .unwrap_or_default();
            if !CHARTED.contains(&m) && bs.is_empty() {
                continue;
            }
            let pts: Vec<(u64, Option<f64>)> = s.iter().map(|(at, ms)| (*at, ms.get(m))).collect();
            if pts.iter().all(|(_, v)| v.is_none()) {
                continue;
            }
            let baseline = r.baseline.get(*probe).and_then(|b| b.get(m));
            chart(o, &t, probe, m, &pts, baseline, &bs);
        }
    }
    o.push_str("</div>\n</section>\n");
}

fn legend(o: &mut String, t: &Timeline) {
    let sw = |style: String, label: &str| {
        format!("<span><i class=\"sw\" style=\"{style}\"></i>{label}</span>")
    };
    let line = |c: &str, kind: &str| format!("height:0;border-top:2px {kind} {c}");
    let mut items = vec![
        sw(format!("height:3px;background:{LINE}"), "metric"),
        sw(format!("background:{BAND}"), "min–max per pixel"),
        sw(line(BASELINE, "dashed"), "baseline (before)"),
        sw(line(BOUND, "dotted"), "hypothesis bound"),
    ];
    if !t.windows.is_empty() {
        items.insert(0, sw(format!("background:{FAULT}"), "fault injected"));
    }
    if !t.shifts.is_empty() {
        items.push(sw(line(SHIFT, "dashed"), "traffic shift step"));
    }
    if t.markers.iter().any(|m| m.colour == DETECT) {
        items.push(sw(line(DETECT, "solid"), "detected (breach / stop)"));
    }
    if t.markers.iter().any(|m| m.colour == RECOVER) {
        items.push(sw(line(RECOVER, "solid"), "recovered"));
    }
    let _ = writeln!(
        o,
        "<p class=\"legend\">{} <span class=\"muted\">time since the start; latencies in ms</span></p>",
        items.join("")
    );
}

/// Samples reduced to what the plot's pixel columns can show.
#[derive(Debug, PartialEq)]
enum Reduced {
    /// Few enough to draw each: runs of `(at_ms, value)`, split where a sample had no value.
    Points(Vec<Vec<(f64, f64)>>),
    /// Per pixel column: runs of `(column, min, mean, max)`, split at columns whose
    /// samples all had no value (a column no sample falls in is bridged).
    Columns(Vec<Vec<(usize, f64, f64, f64)>>),
}

#[cfg(test)]
impl Reduced {
    /// How many points the chart will draw (a column: its mean, min and max).
    fn points(&self) -> usize {
        match self {
            Reduced::Points(runs) => runs.iter().map(Vec::len).sum(),
            Reduced::Columns(runs) => runs.iter().map(|r| 3 * r.len()).sum(),
        }
    }
}

fn reduce(pts: &[(u64, Option<f64>)], span_ms: f64, columns: usize) -> Reduced {
    let valued = pts
        .iter()
        .filter(|(_, v)| v.is_some_and(f64::is_finite))
        .count();
    if valued <= columns {
        let mut runs = vec![Vec::new()];
        for (at, v) in pts {
            match v.filter(|v| v.is_finite()) {
                Some(v) => runs.last_mut().unwrap().push((*at as f64, v)),
                None if runs.last().is_some_and(|r| !r.is_empty()) => runs.push(Vec::new()),
                None => {}
            }
        }
        runs.retain(|r| !r.is_empty());
        return Reduced::Points(runs);
    }
    #[derive(Clone, Copy)]
    struct Col {
        min: f64,
        max: f64,
        sum: f64,
        n: u32,
        empty: bool,
    }
    let mut cols = vec![
        Col {
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sum: 0.0,
            n: 0,
            empty: false,
        };
        columns
    ];
    for (at, v) in pts {
        let c = ((*at as f64 / span_ms) * columns as f64).floor() as usize;
        let col = &mut cols[c.min(columns - 1)];
        match v.filter(|v| v.is_finite()) {
            Some(v) => {
                col.min = col.min.min(v);
                col.max = col.max.max(v);
                col.sum += v;
                col.n += 1;
            }
            None => col.empty = true,
        }
    }
    let mut runs = vec![Vec::new()];
    for (i, c) in cols.iter().enumerate() {
        if c.n > 0 {
            runs.last_mut()
                .unwrap()
                .push((i, c.min, c.sum / c.n as f64, c.max));
        } else if c.empty && runs.last().is_some_and(|r| !r.is_empty()) {
            runs.push(Vec::new());
        }
    }
    runs.retain(|r| !r.is_empty());
    Reduced::Columns(runs)
}

/// A hypothesis bound on a chart: its comparison and value.
type Bound = (&'static str, f64);

/// A "nice" step (1, 2, 2.5 or 5 × 10ⁿ) of at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * p)
}

/// Decimals needed to write multiples of `step` exactly.
fn decimals(step: f64) -> usize {
    (0..6)
        .find(|d| {
            let x = step * 10f64.powi(*d as i32);
            (x - x.round()).abs() < 1e-6 * x.max(1.0)
        })
        .unwrap_or(6)
}

/// The y domain and tick step for a metric's values.
fn y_domain(kind: MetricKind, values: impl Iterator<Item = f64>) -> (f64, f64, f64) {
    let (mut lo, mut hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    match kind {
        // Ratios zoom to the data (a dip from 100% to 99% must show) but end at 100%.
        MetricKind::Ratio => {
            hi = hi.max(1.0);
            lo = lo.min(hi - 0.05);
        }
        _ => {
            if lo >= 0.0 {
                lo = 0.0;
            }
            let least = match kind {
                MetricKind::Latency => 0.001,
                _ => 1.0,
            };
            hi = hi.max(lo + least);
            hi += (hi - lo) * 0.05;
        }
    }
    let step = nice_step((hi - lo) / 4.0);
    let lo = (lo / step + 1e-9).floor() * step;
    let hi = (hi / step - 1e-9).ceil() * step;
    (lo, hi.max(lo + step), step)
}

/// An axis tick in the metric's unit: `250ms`, `99.5%`, `40/s`.
fn tick_label(kind: MetricKind, v: f64, step: f64, hi: f64) -> String {
    // No `-0ms` from a tick that is zero but for rounding.
    let v = if v.abs() < step * 1e-6 { 0.0 } else { v };
    match kind {
        MetricKind::Latency if hi < 10.0 => format!("{:.*}ms", decimals(step * 1e3), v * 1e3),
        MetricKind::Latency => format!("{:.*}s", decimals(step), v),
        MetricKind::Ratio => format!("{:.*}%", decimals(step * 100.0), v * 100.0),
        MetricKind::PerSecond => format!("{:.*}/s", decimals(step), v),
        _ if step >= 1000.0 => format!("{:.*}k", decimals(step / 1000.0), v / 1000.0),
        _ => format!("{:.*}", decimals(step), v),
    }
}

/// A time tick: `45s`, `2m`, `1m30s`.
fn time_label(ms: f64, step_ms: f64) -> String {
    let s = ms / 1000.0;
    if step_ms < 1000.0 {
        return format!("{s:.1}s");
    }
    let s = s.round() as u64;
    match (s / 60, s % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s}s"),
    }
}

/// Puts labels where they overlap no label put before.
struct Placer {
    boxes: Vec<[f64; 4]>,
    /// The plot area (x0, y0, x1, y1): a spot outside it is a last resort.
    area: [f64; 4],
}

/// Where a label may go: its anchor point (x, text baseline y) and `text-anchor`.
type Spot = (f64, f64, &'static str);

impl Placer {
    fn new(area: [f64; 4]) -> Self {
        Placer {
            boxes: Vec::new(),
            area,
        }
    }

    /// Writes `text` at the first of `spots` inside the plot where it overlaps nothing
    /// placed before (else at the first spot).
    fn put(&mut self, o: &mut String, spots: &[Spot], fill: &str, text: &str) {
        let w = text_width(text);
        let bbox = |&(x, y, anchor): &Spot| {
            let x0 = match anchor {
                "end" => x - w,
                "middle" => x - w / 2.0,
                _ => x,
            };
            // 10px text: 8px above the baseline, 2px below; rows 11px apart do not touch.
            [x0, y - 8.5, x0 + w, y + 2.0]
        };
        let [ax0, ay0, ax1, ay1] = self.area;
        // A spot's cost: the labels it would overlap, and much more if it leaves the plot.
        let cost = |s: &Spot| {
            let b = bbox(s);
            let outside = !(b[0] >= ax0 && b[1] >= ay0 && b[2] <= ax1 && b[3] <= ay1);
            let overlaps = self
                .boxes
                .iter()
                .filter(|o| !(b[2] < o[0] || b[0] > o[2] || b[3] < o[1] || b[1] > o[3]))
                .count();
            overlaps + if outside { 1000 } else { 0 }
        };
        let Some(spot) = spots.iter().min_by_key(|s| cost(s)) else {
            return;
        };
        self.boxes.push(bbox(spot));
        label(o, spot.0, spot.1, spot.2, fill, text);
    }
}

/// Spots for the label of a vertical marker at `x`: rows down from the top, right of
/// it, then left of it.
fn marker_spots(x: f64) -> Vec<Spot> {
    let rows =
        |dx: f64, anchor| (0..8).map(move |row| (x + dx, TOP + 11.0 + 11.0 * row as f64, anchor));
    rows(3.0, "start").chain(rows(-3.0, "end")).collect()
}

/// A label's width at 10px, roughly.
fn text_width(s: &str) -> f64 {
    s.chars().count() as f64 * 5.6 + 4.0
}

/// Text with a white halo, readable over lines and shading.
fn label(o: &mut String, x: f64, y: f64, anchor: &str, fill: &str, text: &str) {
    let _ = writeln!(
        o,
        "<text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\" fill=\"{fill}\" stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\">{}</text>",
        esc(text)
    );
}

fn chart(
    o: &mut String,
    t: &Timeline,
    probe: &str,
    m: Metric,
    pts: &[(u64, Option<f64>)],
    baseline: Option<f64>,
    bounds: &[Bound],
) {
    let kind = m.kind();
    let values = pts.iter().filter_map(|(_, v)| *v);
    // A bound far from the data would squash it into a line: such a bound is named at
    // the edge of the plot instead of drawn.
    let (dlo, dhi, _) = y_domain(kind, values.clone().chain(baseline));
    let near = |b: f64| b >= dlo - (dhi - dlo) * 0.5 && b <= dhi + (dhi - dlo);
    let (bounds, off): (Vec<Bound>, Vec<Bound>) = bounds.iter().partition(|(_, b)| near(*b));
    let (lo, hi, step) = y_domain(
        kind,
        values
            .clone()
            .chain(baseline)
            .chain(bounds.iter().map(|(_, b)| *b)),
    );
    let (min, max) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    let bottom = H - BOTTOM;
    let y = |v: f64| bottom - ((v - lo) / (hi - lo)).clamp(0.0, 1.0) * (bottom - TOP);
    let right = W - RIGHT;
    let _ = writeln!(
        o,
        "<figure><figcaption><b>{}</b> · {m} <span class=\"muted\">min {} · max {}</span></figcaption>\n\
         <svg width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{} {m} over the run\">",
        esc(probe),
        m.format(min),
        m.format(max),
        esc(probe)
    );
    let _ = writeln!(
        o,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{COLUMNS}\" height=\"{:.1}\" fill=\"#fff\"/>",
        bottom - TOP
    );
    // Fault windows, under everything else.
    for w in &t.windows {
        let (a, b) = (
            t.x(w.from as f64),
            t.x(w.to.map_or(t.span_ms, |v| v as f64)),
        );
        let _ = writeln!(
            o,
            "<rect class=\"fault\" x=\"{a:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{FAULT}\"><title>{}</title></rect>",
            (b - a).max(1.0),
            bottom - TOP,
            esc(&w.name)
        );
    }
    // Horizontal grid and y ticks.
    let mut v = lo;
    while v <= hi + step * 1e-6 {
        let yy = y(v);
        let _ = writeln!(
            o,
            "<line x1=\"{LEFT}\" x2=\"{right}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#e6e9ed\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 4.0,
            yy + 3.5,
            tick_label(kind, v, step, hi)
        );
        v += step;
    }
    // Time ticks.
    let tstep = [
        500.0, 1e3, 2e3, 5e3, 10e3, 15e3, 30e3, 60e3, 120e3, 300e3, 600e3, 900e3, 1800e3, 3600e3,
    ]
    .into_iter()
    .find(|s| t.span_ms / s <= 8.0)
    .unwrap_or(7200e3);
    let mut at = 0.0;
    while at <= t.span_ms {
        let xx = t.x(at);
        let _ = writeln!(
            o,
            "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{bottom}\" y2=\"{:.1}\" stroke=\"#8c959f\"/><text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            bottom + 4.0,
            bottom + 15.0,
            time_label(at, tstep)
        );
        at += tstep;
    }
    // Phases: a strip on top, a thin line where each begins.
    for p in t.phases {
        let (a, b) = (t.x(p.start_ms as f64), t.x(p.end_ms as f64));
        let fill = match p.phase {
            Phase::Before | Phase::After => "#eaeef2",
            Phase::Method => "#d8dee4",
            Phase::Revert => "#afb8c1",
        };
        let _ = writeln!(
            o,
            "<rect x=\"{a:.1}\" y=\"6\" width=\"{:.1}\" height=\"13\" fill=\"{fill}\"><title>{} {}–{}</title></rect>",
            (b - a).max(0.5),
            p.phase.name(),
            secs(p.start_ms),
            secs(p.end_ms)
        );
        if b - a > text_width(p.phase.name()) {
            let _ = writeln!(
                o,
                "<text x=\"{:.1}\" y=\"16\" text-anchor=\"middle\" fill=\"#424a53\">{}</text>",
                (a + b) / 2.0,
                p.phase.name()
            );
        }
        if p.start_ms > 0 {
            let _ = writeln!(
                o,
                "<line x1=\"{a:.1}\" x2=\"{a:.1}\" y1=\"{TOP}\" y2=\"{bottom}\" stroke=\"#afb8c1\" stroke-width=\"0.8\"/>"
            );
        }
    }
    // Baseline and bounds.
    if let Some(b) = baseline {
        let yy = y(b);
        let _ = writeln!(
            o,
            "<line x1=\"{LEFT}\" x2=\"{right}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"{BASELINE}\" stroke-width=\"1.2\" stroke-dasharray=\"6 4\"/>"
        );
    }
    for (_, b) in &bounds {
        let yy = y(*b);
        let _ = writeln!(
            o,
            "<line x1=\"{LEFT}\" x2=\"{right}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"{BOUND}\" stroke-width=\"1.2\" stroke-dasharray=\"2 3\"/>"
        );
    }
    // The data.
    let reduced = reduce(pts, t.span_ms, COLUMNS);
    match &reduced {
        Reduced::Points(runs) => {
            let mut d = String::new();
            for run in runs {
                for (i, (at, v)) in run.iter().enumerate() {
                    let _ = write!(
                        d,
                        "{}{:.1} {:.1}",
                        if i == 0 { "M" } else { "L" },
                        t.x(*at),
                        y(*v)
                    );
                }
                if run.len() == 1 {
                    // A lone point still shows: a short tick.
                    d.push_str("h1.5");
                }
            }
            let _ = writeln!(
                o,
                "<path d=\"{d}\" fill=\"none\" stroke=\"{LINE}\" stroke-width=\"2\" stroke-linejoin=\"round\"/>"
            );
        }
        Reduced::Columns(runs) => {
            let (mut band, mut line) = (String::new(), String::new());
            let cx = |c: usize| LEFT + c as f64 + 0.5;
            for run in runs {
                for (i, (c, _, _, hi)) in run.iter().enumerate() {
                    let _ = write!(
                        band,
                        "{}{:.1} {:.1}",
                        if i == 0 { "M" } else { "L" },
                        cx(*c),
                        y(*hi)
                    );
                }
                for (c, lo, _, _) in run.iter().rev() {
                    let _ = write!(band, "L{:.1} {:.1}", cx(*c), y(*lo));
                }
                band.push('Z');
                for (i, (c, _, mean, _)) in run.iter().enumerate() {
                    let _ = write!(
                        line,
                        "{}{:.1} {:.1}",
                        if i == 0 { "M" } else { "L" },
                        cx(*c),
                        y(*mean)
                    );
                }
            }
            let _ = writeln!(
                o,
                "<path d=\"{band}\" fill=\"{BAND}\" stroke=\"{BAND}\" stroke-width=\"1\"/>\n\
                 <path d=\"{line}\" fill=\"none\" stroke=\"{LINE}\" stroke-width=\"2\" stroke-linejoin=\"round\"/>"
            );
        }
    }
    // Vertical markers over the data; then every label, over everything.
    for (at, _) in &t.shifts {
        let xx = t.x(*at as f64);
        let _ = writeln!(
            o,
            "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{TOP}\" y2=\"{bottom}\" stroke=\"{SHIFT}\" stroke-width=\"1.2\" stroke-dasharray=\"4 3\"/>"
        );
    }
    for mk in &t.markers {
        let xx = t.x(mk.at_ms as f64);
        let _ = writeln!(
            o,
            "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{TOP}\" y2=\"{bottom}\" stroke=\"{}\" stroke-width=\"1.5\"/>",
            mk.colour
        );
    }
    let mut labels = Placer::new([LEFT, TOP, right, bottom]);
    for w in &t.windows {
        let text = match w.to {
            Some(_) => w.name.clone(),
            None => format!("{} (not reverted)", w.name),
        };
        labels.put(o, &marker_spots(t.x(w.from as f64)), "#9a6700", &text);
    }
    for mk in &t.markers {
        labels.put(o, &marker_spots(t.x(mk.at_ms as f64)), mk.colour, &mk.label);
    }
    for (at, share) in &t.shifts {
        let xx = t.x(*at as f64);
        let spots = [
            (xx, bottom - 4.0, "middle"),
            (xx, bottom - 15.0, "middle"),
            (xx, bottom - 26.0, "middle"),
        ];
        labels.put(o, &spots, SHIFT, &format!("{:.0}%", share * 100.0));
    }
    // Beside their lines: the baseline at the right, bounds at the left, else elsewhere.
    let beside = |yy: f64, ends: [(f64, &'static str); 2]| -> Vec<Spot> {
        let mid = ((LEFT + right) / 2.0, "middle");
        ends.into_iter()
            .chain([mid])
            .flat_map(|(x, a)| [(x, yy - 4.0, a), (x, yy + 11.0, a)])
            .chain(ends.into_iter().map(|(x, a)| (x, yy + 22.0, a)))
            .collect()
    };
    let (l, r) = ((LEFT + 3.0, "start"), (right - 3.0, "end"));
    if let Some(b) = baseline {
        let text = format!("baseline {}", m.format(b));
        labels.put(o, &beside(y(b), [r, l]), BASELINE, &text);
    }
    for (op, b) in &bounds {
        let text = format!("bound {op} {}", m.format(*b));
        let mut spots = beside(y(*b), [l, r]);
        spots.swap(0, 1);
        labels.put(o, &spots, BOUND, &text);
    }
    for (op, b) in off {
        let (arrow, yy) = if b > hi {
            ("↑", TOP + 11.0)
        } else {
            ("↓", bottom - 4.0)
        };
        let text = format!("{arrow} bound {op} {}, off the scale", m.format(b));
        let spots: Vec<Spot> = [0.0, 11.0, 22.0]
            .into_iter()
            .flat_map(|dy| {
                let y = if b > hi { yy + dy } else { yy - dy };
                [(LEFT + 3.0, y, "start"), (right - 3.0, y, "end")]
            })
            .collect();
        labels.put(o, &spots, BOUND, &text);
    }
    let _ = writeln!(
        o,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{COLUMNS}\" height=\"{:.1}\" fill=\"none\" stroke=\"#afb8c1\"/>\n</svg></figure>",
        bottom - TOP
    );
}

/// The share of delays in each of `bins` equal bins over `[lo, hi]` seconds, from the
/// sampler's exact CDF; the first bin takes in an atom at `lo`.
fn delay_bins(s: &Sampler, lo: f64, hi: f64, bins: usize) -> Vec<f64> {
    let d = |x: f64| std::time::Duration::from_secs_f64(x.max(0.0));
    let w = (hi - lo) / bins as f64;
    (0..bins)
        .map(|i| {
            let (a, b) = (lo + w * i as f64, lo + w * (i + 1) as f64);
            let below = if i == 0 {
                s.cdf_below(d(a))
            } else {
                s.cdf(d(a))
            };
            (s.cdf(d(b)) - below).max(0.0)
        })
        .collect()
}

fn histogram(o: &mut String, f: &FaultReport, spec: &DelaySpec) {
    let _ = writeln!(o, "<h3>Delays injected by {}</h3>", esc(&f.name));
    let s = match Sampler::new(spec) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(
                o,
                "<p class=\"bad\">cannot draw the distribution: {}</p>",
                esc(&e.join("; "))
            );
            return;
        }
    };
    let q = |p: f64| s.quantile(p).as_secs_f64();
    let (mut lo, mut hi) = (q(0.0), q(0.995));
    if hi - lo < 1e-6 {
        // A constant: one bar, in the middle.
        let half = (lo * 0.5).max(0.001);
        (lo, hi) = ((lo - half).max(0.0), lo + half);
    }
    let bins = delay_bins(&s, lo, hi, HIST_BINS);
    let above = (1.0 - s.cdf(std::time::Duration::from_secs_f64(hi))).max(0.0);
    let top = bins.iter().cloned().fold(0.0, f64::max).max(1e-9);
    let ystep = nice_step(top / 4.0);
    let ytop = (top / ystep - 1e-9).ceil() * ystep;
    let bottom = H - BOTTOM;
    let right = W - RIGHT;
    let x = |v: f64| LEFT + ((v - lo) / (hi - lo)).clamp(0.0, 1.0) * COLUMNS as f64;
    let y = |p: f64| bottom - (p / ytop).clamp(0.0, 1.0) * (bottom - TOP);
    let tail = if above >= 0.0005 {
        format!(
            "; {:.1}% of delays are longer than {:.1}ms (not drawn)",
            above * 100.0,
            hi * 1e3
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        o,
        "<figure><figcaption>{} <span class=\"muted\">— share of the delayed requests per {:.2}ms bin{tail}</span></figcaption>\n\
         <svg width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"histogram of the delays of {}\">",
        esc(&s.describe()),
        (hi - lo) * 1e3 / HIST_BINS as f64,
        esc(&f.name)
    );
    let mut p = 0.0;
    while p <= ytop + ystep * 1e-6 {
        let yy = y(p);
        let _ = writeln!(
            o,
            "<line x1=\"{LEFT}\" x2=\"{right}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#e6e9ed\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{:.*}%</text>",
            LEFT - 4.0,
            yy + 3.5,
            decimals(ystep * 100.0),
            p * 100.0
        );
        p += ystep;
    }
    let bw = COLUMNS as f64 / HIST_BINS as f64;
    for (i, share) in bins.iter().enumerate() {
        if *share <= 0.0 {
            continue;
        }
        let yy = y(*share);
        let _ = writeln!(
            o,
            "<rect x=\"{:.1}\" y=\"{yy:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{HISTOGRAM}\"/>",
            LEFT + bw * i as f64 + 0.5,
            (bw - 1.0).max(0.5),
            bottom - yy
        );
    }
    let xstep = nice_step((hi - lo) * 1e3 / 6.0) / 1e3;
    let mut v = (lo / xstep - 1e-9).ceil() * xstep;
    while v <= hi + xstep * 1e-6 {
        let xx = x(v);
        let _ = writeln!(
            o,
            "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{bottom}\" y2=\"{:.1}\" stroke=\"#8c959f\"/><text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            bottom + 4.0,
            bottom + 15.0,
            tick_label(MetricKind::Latency, v, xstep, 0.0)
        );
        v += xstep;
    }
    let mut labels = Placer::new([LEFT, TOP, right, bottom]);
    for (name, v) in [
        ("p50", q(0.5)),
        ("mean", s.mean().as_secs_f64()),
        ("p99", q(0.99)),
    ] {
        if v > hi {
            continue;
        }
        let xx = x(v);
        let _ = writeln!(
            o,
            "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{TOP}\" y2=\"{bottom}\" stroke=\"{BASELINE}\" stroke-dasharray=\"3 3\"/>"
        );
        let text = format!("{name} {}", Metric::P50.format(v));
        labels.put(o, &marker_spots(xx), BASELINE, &text);
    }
    let _ = writeln!(
        o,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{COLUMNS}\" height=\"{:.1}\" fill=\"none\" stroke=\"#afb8c1\"/>\n</svg></figure>",
        bottom - TOP
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use simian_engine::report::{AssertionResult, RecoveryReport, StopReport};
    use simian_engine::RunEvent;
    use simian_injectors::Plan;

    fn plan(backend: &str, action: &str) -> Plan {
        Plan {
            backend: backend.into(),
            action: action.into(),
            targets: vec!["lab instance us-east-a-1".into()],
            eligible: 6,
            universe: "lab instances".into(),
            revert: "restart through the lab supervisor".into(),
            irreversible: false,
            lease: None,
        }
    }

    fn metrics(ok: u64, errors: u64, p99: f64) -> Metrics {
        Metrics {
            count: ok + errors,
            errors,
            span: 1.0,
            p50: Some(p99 / 3.0),
            p99: Some(p99),
            ..Default::default()
        }
    }

    /// A run of `secs` seconds with samples every `every_ms` for each probe; a fault from
    /// 40% to 70% of the run, a shift step at 50%, a breach and a recovery.
    fn report(probes: &[&str], secs: u64, every_ms: u64) -> RunReport {
        let ms = secs * 1000;
        let (inj, rev) = (ms * 4 / 10, ms * 7 / 10);
        let mut events = vec![RunEvent {
            at_ms: inj,
            kind: EventKind::Injected {
                fault: "zone-down".into(),
                action: "SIGKILL".into(),
                targets: vec![],
            },
        }];
        let mut at = 0;
        while at <= ms {
            for (i, p) in probes.iter().enumerate() {
                let bad = at > inj && at < rev;
                let jitter = ((at / every_ms + i as u64) % 7) as f64 * 0.001;
                events.push(RunEvent {
                    at_ms: at,
                    kind: EventKind::Sample {
                        probe: p.to_string(),
                        metrics: metrics(
                            if bad { 40 } else { 50 },
                            if bad { 10 } else { 0 },
                            if bad { 0.3 } else { 0.02 } + jitter,
                        ),
                    },
                });
            }
            at += every_ms;
        }
        events.push(RunEvent {
            at_ms: inj + 500,
            kind: EventKind::Breach {
                assertion: "users.p99 < 250ms".into(),
                detail: "measured 300ms".into(),
            },
        });
        events.push(RunEvent {
            at_ms: ms / 2,
            kind: EventKind::Shifted {
                fault: "evac".into(),
                share: 0.25,
                next: Some(0.5),
                wait_ms: 1000,
            },
        });
        events.sort_by_key(|e| e.at_ms);
        let a = |phase, held, detail: &str| AssertionResult {
            phase,
            assertion: "users.p99 < 250ms".into(),
            held: Some(held),
            measured: Some(0.3),
            bound: Some(0.25),
            detail: detail.into(),
            first_breach_ms: (!held).then_some(inj + 500),
        };
        RunReport {
            experiment: "gorilla <&> \"quoted\"".into(),
            file: "scenarios/chaos-gorilla.yaml".into(),
            run_id: "20261122T000000Z-chaos-gorilla-0001".into(),
            seed: 42,
            journal: "/tmp/simian/runs/x.jsonl".into(),
            started_at: "2026-11-22T00:00:00Z".into(),
            leashed: false,
            verdict: Verdict::Deviated,
            exit_code: 1,
            reason: None,
            duration_ms: ms,
            phases: vec![
                PhaseSpan {
                    phase: Phase::Before,
                    start_ms: 0,
                    end_ms: inj,
                },
                PhaseSpan {
                    phase: Phase::Method,
                    start_ms: inj,
                    end_ms: rev,
                },
                PhaseSpan {
                    phase: Phase::Revert,
                    start_ms: rev,
                    end_ms: rev + 20,
                },
                PhaseSpan {
                    phase: Phase::After,
                    start_ms: rev + 20,
                    end_ms: ms,
                },
            ],
            assertions: vec![
                a(Phase::Before, true, "measured 20.00ms, expected < 250.00ms"),
                a(
                    Phase::Method,
                    false,
                    "measured 300.00ms, expected < 250.00ms <b>",
                ),
                a(Phase::After, true, "measured 20.00ms, expected < 250.00ms"),
            ],
            faults: vec![
                FaultReport {
                    name: "zone-down".into(),
                    plan: plan("process", "SIGKILL"),
                    injected_ms: Some(inj),
                    reverted_ms: Some(rev),
                    revert_error: None,
                    delay: None,
                },
                FaultReport {
                    name: "slow-store".into(),
                    plan: plan("latency", "lognormal median 20ms σ 0.5"),
                    injected_ms: Some(inj),
                    reverted_ms: Some(rev),
                    revert_error: None,
                    delay: Some(
                        serde_json::from_str(
                            r#"{"distribution": {"lognormal": {"median": "20ms", "sigma": 0.5}}}"#,
                        )
                        .unwrap(),
                    ),
                },
            ],
            baseline: probes
                .iter()
                .map(|p| (p.to_string(), metrics(50, 0, 0.021)))
                .collect(),
            stop: Some(StopReport {
                condition: "users.success_ratio < 50%".into(),
                detail: "measured 41%".into(),
                detected_ms: inj + 900,
                reverted_ms: Some(inj + 950),
            }),
            recovery: Some(RecoveryReport {
                within: 30.0,
                time_to_recover: Some(1.5),
                assertions: vec!["users.p99 < 250ms".into()],
            }),
            events,
        }
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc(r#"<script>"a" & 'b'</script>"#),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
        let html = render(&report(&["users"], 20, 250));
        assert!(html.contains("<h1>gorilla &lt;&amp;&gt; &quot;quoted&quot; <span"));
        assert!(html.contains("expected &lt; 250.00ms &lt;b&gt;"));
        assert!(!html.contains("<b>\""));
    }

    #[test]
    fn many_samples_are_reduced_to_a_few_points_per_pixel_column() {
        let pts: Vec<(u64, Option<f64>)> = (0..20_000).map(|i| (i * 30, Some(i as f64))).collect();
        let r = reduce(&pts, 600_000.0, COLUMNS);
        assert!(matches!(r, Reduced::Columns(_)));
        assert!(r.points() <= 3 * COLUMNS, "{}", r.points());
        // Few samples are drawn as they are.
        let few = reduce(&pts[..100], 3000.0, COLUMNS);
        assert_eq!(few.points(), 100);
    }

    #[test]
    fn a_sample_without_a_value_breaks_the_line() {
        let mut pts: Vec<(u64, Option<f64>)> = (0..10).map(|i| (i * 100, Some(1.0))).collect();
        pts[5].1 = None;
        let Reduced::Points(runs) = reduce(&pts, 1000.0, COLUMNS) else {
            panic!("points expected")
        };
        assert_eq!(runs.iter().map(Vec::len).collect::<Vec<_>>(), vec![5, 4]);
        // Columns: a column with only empty samples breaks it, one without samples does not.
        let mut pts: Vec<(u64, Option<f64>)> = (0..2000).map(|i| (i * 5, Some(1.0))).collect();
        for p in &mut pts[1000..1100] {
            p.1 = None;
        }
        let Reduced::Columns(runs) = reduce(&pts, 20_000.0, COLUMNS) else {
            panic!("columns expected")
        };
        assert_eq!(runs.len(), 2, "{runs:?}");
    }

    #[test]
    fn fault_windows_are_shaded_across_the_chart() {
        let r = report(&["users"], 20, 250);
        let html = render(&r);
        let t = Timeline::new(&r);
        let (a, b) = (t.x(8000.0), t.x(14000.0));
        let rect = format!(
            "<rect class=\"fault\" x=\"{a:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{FAULT}\">",
            b - a,
            H - BOTTOM - TOP
        );
        assert!(html.contains(&rect), "no {rect}");
        // One per chart and fault: success_ratio, rate, p99 of one probe, two faults.
        assert_eq!(html.matches("class=\"fault\"").count(), 6);
    }

    #[test]
    fn markers_baseline_bound_and_shift_steps_are_drawn() {
        let html = render(&report(&["users"], 20, 250));
        assert!(html.contains("first breach +0.5s"));
        assert!(html.contains("stop tripped +0.9s"));
        assert!(html.contains("recovered in 1.50s"));
        assert!(html.contains("baseline 21.00ms"));
        assert!(html.contains("bound &lt; 250.00ms"));
        assert!(html.contains(">25%</text>"));
        assert!(html.contains(">100ms</text>"), "a y tick in ms");
    }

    #[test]
    fn a_bound_far_from_the_data_is_named_not_drawn() {
        let mut r = report(&["users"], 20, 250);
        for a in &mut r.assertions {
            a.assertion = "users.p99 < 5s".into();
            a.bound = Some(5.0);
        }
        let html = render(&r);
        assert!(html.contains("↑ bound &lt; 5.000s, off the scale"));
        assert!(!html.contains(&format!("stroke=\"{BOUND}\"")));
        assert!(html.contains(">400ms</text>"), "the axis fits the data");
    }

    #[test]
    fn a_latency_fault_gets_a_histogram_of_its_delays() {
        let html = render(&report(&["users"], 20, 250));
        assert!(html.contains("Delays injected by slow-store"));
        assert_eq!(
            html.matches(&format!("fill=\"{HISTOGRAM}\"")).count(),
            HIST_BINS
        );
        assert!(html.contains("p50 20.00ms"));
        let spec: DelaySpec = serde_json::from_str(
            r#"{"distribution": {"uniform": {"min": "10ms", "max": "30ms"}}}"#,
        )
        .unwrap();
        let s = Sampler::new(&spec).unwrap();
        let bins = delay_bins(&s, 0.0, 0.04, 40);
        let total: f64 = bins.iter().sum();
        assert!((total - 1.0).abs() < 1e-9, "{total}");
        assert!((bins[15] - 0.05).abs() < 1e-9, "1ms of a 20ms uniform");
        assert_eq!(bins[5], 0.0);
    }

    #[test]
    fn nothing_is_fetched_from_the_network() {
        let html = render(&report(&["users"], 20, 250));
        for bad in [
            "http://", "https://", "src=", "href=", "<script", "<link", "url(",
        ] {
            assert!(!html.contains(bad), "`{bad}` in the page");
        }
    }

    #[test]
    fn a_ten_minute_run_of_three_probes_at_10_hz_stays_small() {
        let r = report(&["users", "zone_a", "store"], 600, 100);
        let samples = r
            .events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Sample { .. }))
            .count();
        assert_eq!(samples, 3 * 6001);
        let html = render(&r);
        eprintln!(
            "10-minute run, 3 probes at 10 Hz ({samples} samples): {} bytes of HTML",
            html.len()
        );
        assert!(html.len() < 400_000, "{} bytes", html.len());
    }

    #[test]
    fn ticks_are_nice_and_in_the_metrics_unit() {
        assert_eq!(nice_step(0.07), 0.1);
        assert_eq!(nice_step(0.22), 0.25);
        assert_eq!(tick_label(MetricKind::Latency, 0.25, 0.05, 0.3), "250ms");
        assert_eq!(tick_label(MetricKind::Ratio, 0.995, 0.0025, 1.0), "99.50%");
        assert_eq!(tick_label(MetricKind::PerSecond, 40.0, 10.0, 50.0), "40/s");
        assert_eq!(time_label(90_000.0, 30_000.0), "1m30s");
        let (lo, hi, _) = y_domain(MetricKind::Ratio, [0.99, 1.0].into_iter());
        assert!(lo <= 0.95 && (hi - 1.0).abs() < 1e-12, "{lo} {hi}");
    }

    #[test]
    fn a_small_report_renders() {
        insta::assert_snapshot!(render(&report(&["users"], 8, 1000)));
    }
}
