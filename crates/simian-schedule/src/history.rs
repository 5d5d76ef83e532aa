//! Past runs on disk: what `min_between_runs` counts from, and what `simian history` lists.
//!
//! A run dir holds the scheduler's own record (`scheduled.json`: experiment, due and start
//! time, end, exit code, why it was stopped) and the run's reports (`run.json`, read as
//! plain JSON so this crate does not depend on the engine, tolerant of missing fields).
//! A dir without `run.json` did not finish.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use serde_json::Value;

use crate::decide::Past;

/// The scheduler's record in each run dir.
pub const RECORD: &str = "scheduled.json";
pub const REPORT: &str = "run.json";
pub const JOURNAL: &str = "journal.jsonl";

/// How deep under the given dir run dirs are looked for (`OUTPUT/DATE/RUN`).
const MAX_DEPTH: usize = 3;

/// One run found on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub dir: PathBuf,
    pub experiment: String,
    pub started: Option<DateTime<FixedOffset>>,
    pub ended: Option<DateTime<FixedOffset>>,
    /// `held`, `deviated`, `aborted`, `not_run`, `revert_failed`: from `run.json`.
    pub verdict: Option<String>,
    pub exit_code: Option<i32>,
    pub duration: Option<Duration>,
    /// Seconds, from `recovery.time_to_recover`.
    pub time_to_recover: Option<f64>,
    /// Whether `run.json` is there.
    pub finished: bool,
    /// Why the scheduler stopped it (kill switch, max_run, a signal).
    pub stopped: Option<String>,
}

impl RunRecord {
    pub fn journal(&self) -> PathBuf {
        self.dir.join(JOURNAL)
    }

    pub fn past(&self) -> Option<Past> {
        Some(Past {
            experiment: self.experiment.clone(),
            started: self.started?.with_timezone(&Utc),
            ended: self.ended.map(|t| t.with_timezone(&Utc)),
        })
    }
}

fn read_json(p: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
}

fn time(v: &Value, key: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(v.get(key)?.as_str()?).ok()
}

/// Reads one run dir.
pub fn read_run(dir: &Path) -> RunRecord {
    let record = read_json(&dir.join(RECORD)).unwrap_or(Value::Null);
    let report = read_json(&dir.join(REPORT));
    let rep = report.as_ref().unwrap_or(&Value::Null);
    let name_from_dir = || {
        let n = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // HHMMSS-NAME
        match n.split_once('-') {
            Some((t, rest)) if t.len() == 6 && t.bytes().all(|b| b.is_ascii_digit()) => {
                rest.to_string()
            }
            _ => n,
        }
    };
    let experiment = record
        .get("experiment")
        .or_else(|| rep.get("experiment"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(name_from_dir);
    let started = time(&record, "started").or_else(|| time(rep, "started_at"));
    let ended = time(&record, "ended");
    let exit_code = rep
        .get("exit_code")
        .or_else(|| record.get("exit_code"))
        .and_then(Value::as_i64)
        .and_then(|c| i32::try_from(c).ok());
    let duration = rep
        .get("duration_ms")
        .and_then(Value::as_u64)
        .map(Duration::from_millis)
        .or_else(|| {
            let (s, e) = (started?, ended?);
            (e - s).to_std().ok()
        });
    RunRecord {
        dir: dir.to_path_buf(),
        experiment,
        started,
        ended,
        verdict: rep
            .get("verdict")
            .and_then(Value::as_str)
            .map(str::to_string),
        exit_code,
        duration,
        time_to_recover: rep
            .get("recovery")
            .and_then(|r| r.get("time_to_recover"))
            .and_then(Value::as_f64),
        finished: report.is_some(),
        stopped: record
            .get("stopped")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

fn is_run_dir(d: &Path) -> bool {
    [RECORD, REPORT, JOURNAL]
        .iter()
        .any(|f| d.join(f).is_file())
}

/// Every run dir under `dir` (or `dir` itself), oldest first.
pub fn scan(dir: &Path) -> std::io::Result<Vec<RunRecord>> {
    let mut found: Vec<PathBuf> = Vec::new();
    if !dir.exists() {
        return Ok(Vec::new());
    }
    std::fs::read_dir(dir)?;
    walk(dir, 0, &mut found);
    let mut runs: Vec<RunRecord> = found.iter().map(|d| read_run(d)).collect();
    // By start time; runs without one last.
    runs.sort_by_key(|r| {
        (
            r.started.is_none(),
            r.started.map(|t| t.with_timezone(&Utc)),
            r.dir.clone(),
        )
    });
    Ok(runs)
}

/// What the decisions need of the runs under `dir`: cheap, from `scheduled.json` (a
/// `run.json` holds every metric sample and is read only when that record is missing).
pub fn past_runs(dir: &Path) -> Vec<Past> {
    let mut found: Vec<PathBuf> = Vec::new();
    if dir.is_dir() {
        walk(dir, 0, &mut found);
    }
    found
        .iter()
        .filter_map(|d| {
            let record = read_json(&d.join(RECORD)).filter(|r| time(r, "started").is_some());
            match record {
                Some(r) => Some(Past {
                    experiment: r.get("experiment")?.as_str()?.to_string(),
                    started: time(&r, "started")?.with_timezone(&Utc),
                    ended: time(&r, "ended").map(|t| t.with_timezone(&Utc)),
                }),
                None => read_run(d).past(),
            }
        })
        .collect()
}

fn walk(d: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    if is_run_dir(d) {
        out.push(d.to_path_buf());
        return;
    }
    if depth >= MAX_DEPTH {
        return;
    }
    let Ok(entries) = std::fs::read_dir(d) else {
        return;
    };
    let mut subs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    subs.sort();
    for s in subs {
        walk(&s, depth + 1, out);
    }
}

fn verdict_word(r: &RunRecord) -> String {
    match (&r.verdict, r.finished) {
        (Some(v), _) => v.replace('_', " "),
        (None, true) => "unknown".into(),
        (None, false) => "did not finish".into(),
    }
}

fn symbol(r: &RunRecord) -> char {
    match r.verdict.as_deref() {
        Some("held") => '✔',
        Some("deviated") | Some("revert_failed") => '✘',
        Some("aborted") => '!',
        Some("not_run") => '·',
        _ => '?',
    }
}

fn secs(s: f64) -> String {
    if s >= 100.0 {
        format!("{s:.0}s")
    } else {
        format!("{s:.1}s")
    }
}

fn short(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// How many verdicts a trend line shows.
pub const TREND: usize = 10;

/// The `simian history` listing: a row per run, then a trend line per experiment.
pub fn render(runs: &[RunRecord], base: &Path) -> String {
    let mut out = String::new();
    if runs.is_empty() {
        return "no runs found\n".into();
    }
    let rows: Vec<[String; 7]> = runs
        .iter()
        .map(|r| {
            let dir = r.dir.strip_prefix(base).unwrap_or(&r.dir);
            let mut note = dir.display().to_string();
            if !r.finished {
                note = format!("journal: {}", r.journal().display());
            }
            if let Some(s) = &r.stopped {
                note = format!("{note} (stopped: {s})");
            }
            [
                r.started
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S %:z").to_string())
                    .unwrap_or_else(|| "-".into()),
                r.experiment.clone(),
                verdict_word(r),
                r.exit_code.map_or("-".into(), |c| c.to_string()),
                r.duration.map_or("-".into(), short),
                r.time_to_recover.map_or("-".into(), secs),
                note,
            ]
        })
        .collect();
    let head = [
        "DATE",
        "EXPERIMENT",
        "VERDICT",
        "EXIT",
        "DURATION",
        "RECOVERED IN",
        "RUN",
    ];
    let mut widths = head.map(str::len);
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let pad = widths[i] - c.chars().count();
                l.push_str(c);
                l.push_str(&" ".repeat(pad + 2));
            }
        }
        l.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(&head.map(str::to_string)));
    for row in &rows {
        let _ = writeln!(out, "{}", line(row));
    }

    let mut by: BTreeMap<&str, Vec<&RunRecord>> = BTreeMap::new();
    for r in runs {
        by.entry(&r.experiment).or_default().push(r);
    }
    let name_w = by.keys().map(|k| k.chars().count()).max().unwrap_or(0);
    let _ = writeln!(
        out,
        "\ntrend, oldest to newest (✔ held · ✘ deviated or revert failed · ! aborted · · not run · ? did not finish):"
    );
    for (name, rs) in &by {
        let last: Vec<&RunRecord> = rs.iter().rev().take(TREND).rev().copied().collect();
        let marks: String = last.iter().map(|r| symbol(r)).collect();
        let held = last
            .iter()
            .filter(|r| r.verdict.as_deref() == Some("held"))
            .count();
        let mut l = format!(
            "  {name:<name_w$}  {marks:<TREND$}  {held} of {} held",
            last.len()
        );
        let ttr: Vec<f64> = last.iter().filter_map(|r| r.time_to_recover).collect();
        match ttr.as_slice() {
            [] => {}
            [one] => {
                let _ = write!(l, "; time to recover {}", secs(*one));
            }
            [first, .., lastv] => {
                let way = if lastv > first {
                    "up"
                } else if lastv < first {
                    "down"
                } else {
                    "steady"
                };
                let _ = write!(
                    l,
                    "; time to recover {} → {} ({way})",
                    secs(*first),
                    secs(*lastv)
                );
            }
        }
        let _ = writeln!(out, "{l}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(root: &Path, rel: &str, record: Option<&str>, report: Option<&str>) {
        let d = root.join(rel);
        std::fs::create_dir_all(&d).unwrap();
        if let Some(r) = record {
            std::fs::write(d.join(RECORD), r).unwrap();
        }
        if let Some(r) = report {
            std::fs::write(d.join(REPORT), r).unwrap();
        }
        std::fs::write(d.join(JOURNAL), "").unwrap();
    }

    #[test]
    fn lists_runs_with_a_trend_tolerating_missing_fields() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        run(
            root,
            "2026-11-23/110002-gorilla",
            Some(
                r#"{"experiment":"gorilla","started":"2026-11-23T11:00:02+01:00","ended":"2026-11-23T11:00:50+01:00","exit_code":0}"#,
            ),
            Some(
                r#"{"verdict":"held","exit_code":0,"duration_ms":47000,"recovery":{"time_to_recover":14.0}}"#,
            ),
        );
        run(
            root,
            "2026-11-24/110001-gorilla",
            Some(r#"{"experiment":"gorilla","started":"2026-11-24T11:00:01+01:00"}"#),
            None,
        );
        run(
            root,
            "2026-11-25/110001-gorilla",
            None,
            Some(
                r#"{"experiment":"gorilla","started_at":"2026-11-25T10:00:01Z","verdict":"deviated","exit_code":1,"recovery":{"time_to_recover":9.5}}"#,
            ),
        );
        run(root, "2026-11-25/130000-monkey", None, Some("{}"));
        let runs = scan(root).unwrap();
        assert_eq!(runs.len(), 4);
        let text = render(&runs, root);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("DATE"), "{text}");
        assert!(
            lines[1].contains("gorilla")
                && lines[1].contains("held")
                && lines[1].contains("47s")
                && lines[1].contains("14.0s"),
            "{text}"
        );
        assert!(
            lines[2].contains("did not finish") && lines[2].contains("journal: "),
            "{text}"
        );
        assert!(
            lines[3].contains("deviated") && lines[3].contains("9.5s"),
            "{text}"
        );
        assert!(text.contains("✔?✘"), "{text}");
        assert!(
            text.contains("1 of 3 held; time to recover 14.0s → 9.5s (down)"),
            "{text}"
        );
        assert!(text.contains("monkey"), "{text}");
        // What the min gap counts from.
        let past: Vec<Past> = runs.iter().filter_map(RunRecord::past).collect();
        assert_eq!(past.len(), 3, "the run without any time is left out");
        let mut light = past_runs(root);
        light.sort_by_key(|p| p.started);
        assert_eq!(light, past);
    }

    #[test]
    fn a_missing_dir_has_no_runs() {
        assert!(scan(Path::new("/nonexistent/simian")).unwrap().is_empty());
    }
}
