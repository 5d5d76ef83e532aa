//! The schedule file: its YAML shape, and its validation into a [`Schedule`].
//!
//! Parsing is in two steps, like experiments: serde (unknown keys and wrong types, with
//! the line and column serde_yaml gives), then validation of every value (time zone,
//! cron, windows, dates, durations, files), which reports every problem at once, each
//! pointing into the file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use serde::Deserialize;
use simian_experiment::diag::did_you_mean;
use simian_experiment::tree::{self, Node, Pos, Seg};
use simian_experiment::Diagnostic;

use crate::window::{self, Blackout, Window, Windows};

/// Arguments the scheduler sets on every run; an experiment's `args` may not repeat them.
pub const RESERVED_ARGS: [&str; 6] = [
    "--journal",
    "--json",
    "--junit",
    "--summary",
    "--html",
    "--state-dir",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    version: u32,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    output: Option<String>,
    #[serde(default)]
    min_between_runs: Option<String>,
    #[serde(default)]
    max_run: Option<String>,
    #[serde(default)]
    stop_grace: Option<String>,
    #[serde(default)]
    kill_switch: Option<String>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    blackout: Vec<String>,
    #[serde(default)]
    windows: Vec<RawWindow>,
    experiments: Vec<RawExperiment>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    #[serde(default)]
    days: Option<Vec<String>>,
    #[serde(default)]
    hours: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExperiment {
    file: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    cron: Option<String>,
    #[serde(default)]
    mean_time_between_runs: Option<String>,
    #[serde(default)]
    args: Vec<String>,
}

/// A validated schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The schedule file, as given.
    pub file: PathBuf,
    pub tz: Tz,
    /// Where runs go: `OUTPUT/YYYY-MM-DD/HHMMSS-NAME/` (resolved against the file's dir).
    pub output: PathBuf,
    /// Between the end of one run (of any experiment) and the start of the next.
    pub min_between_runs: Duration,
    /// A run still going after this is stopped like by the kill switch.
    pub max_run: Duration,
    /// How long a run has to revert after SIGINT before it is killed and recovered.
    pub stop_grace: Duration,
    /// The kill-switch file; `None`: `STATE_DIR/kill-switch`.
    pub kill_switch: Option<PathBuf>,
    pub seed: Option<u64>,
    pub blackout: Blackout,
    pub windows: Windows,
    pub experiments: Vec<Experiment>,
    /// Share of a week inside the windows (for the random trigger's chance per tick).
    pub open_fraction: f64,
}

#[derive(Debug, Clone)]
pub struct Experiment {
    pub name: String,
    /// The experiment file, resolved against the schedule file's dir.
    pub file: PathBuf,
    pub trigger: Trigger,
    /// Extra arguments for `simian run`.
    pub args: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum Trigger {
    Cron {
        pattern: String,
        cron: Box<Cron>,
    },
    /// Chaos Monkey style: random, on average once per `mean`, inside the windows.
    Random {
        mean: Duration,
    },
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Cron { pattern, .. } => write!(f, "cron \"{pattern}\""),
            Trigger::Random { mean } => write!(
                f,
                "random, on average every {}",
                humantime::format_duration(*mean)
            ),
        }
    }
}

/// A schedule file that could not be read, or did not validate.
#[derive(Debug)]
pub enum Invalid {
    Unreadable {
        file: PathBuf,
        error: std::io::Error,
    },
    /// Every problem, with the source to render them against.
    Problems {
        source: String,
        diags: Vec<Diagnostic>,
    },
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::Unreadable { file, error } => {
                write!(
                    f,
                    "error: cannot read the schedule {}: {error}",
                    file.display()
                )
            }
            Invalid::Problems { source, diags } => {
                for d in diags {
                    writeln!(f, "{}", d.render(source))?;
                }
                let n = diags.len();
                write!(
                    f,
                    "{n} problem{} found in the schedule; nothing was run.",
                    if n == 1 { "" } else { "s" }
                )
            }
        }
    }
}

/// Reads and validates a schedule file.
pub fn load(file: &Path) -> Result<Schedule, Invalid> {
    let source = std::fs::read_to_string(file).map_err(|error| Invalid::Unreadable {
        file: file.to_path_buf(),
        error,
    })?;
    parse(file, &source).map_err(|diags| Invalid::Problems { source, diags })
}

/// Validates a schedule's text; `file` names it in messages and anchors relative paths.
pub fn parse(file: &Path, source: &str) -> Result<Schedule, Vec<Diagnostic>> {
    let name = file.display().to_string();
    // Syntax first (positions from the tree), then the shape (serde's line and column).
    let tree = tree::parse(source).map_err(|e| {
        vec![Diagnostic::new(&name, e.pos, 1, format!("invalid YAML: {}", e.message)).hint(
            "check the indentation, and quote values that contain `: ` or start with `{`, `[`, `*`, `&`",
        )]
    })?;
    let raw: RawSchedule = serde_yaml::from_str(source).map_err(|e| vec![serde_diag(&name, &e)])?;
    // Absolute, so runs and messages do not depend on the working directory.
    let base = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
    let mut v = Validator {
        file: &name,
        tree: &tree,
        diags: Vec::new(),
    };
    let schedule = v.schedule(raw, file, &base);
    if v.diags.is_empty() {
        Ok(schedule)
    } else {
        v.diags.sort_by_key(|d| (d.pos.line, d.pos.col));
        Err(v.diags)
    }
}

fn serde_diag(file: &str, e: &serde_yaml::Error) -> Diagnostic {
    let pos = e.location().map_or(Pos { line: 1, col: 1 }, |l| Pos {
        line: l.line(),
        col: l.column(),
    });
    let text = e.to_string();
    let msg = text.split(" at line ").next().unwrap_or(&text).to_string();
    let mut d = Diagnostic::new(file, pos, 1, msg.clone());
    // serde_yaml puts the path first: `experiments[0]: unknown field …`.
    if let Some((_, rest)) = msg.split_once("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        d.width = field.chars().count();
        let names: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        d.hint = Some(match did_you_mean(field, names.iter().copied()) {
            Some(s) => format!("did you mean `{s}`? expected one of {}", names.join(", ")),
            None => format!("expected one of {}", names.join(", ")),
        });
    } else if msg.contains("missing field `experiments`") {
        d.hint = Some(
            "list what to run: `experiments: [{ file: x.yaml, cron: \"0 11 * * mon-thu\" }]`"
                .into(),
        );
    } else if msg.contains("expected a string") {
        d.hint = Some("quote it, e.g. `\"1h\"`".into());
    }
    d
}

struct Validator<'a> {
    file: &'a str,
    tree: &'a Node,
    diags: Vec<Diagnostic>,
}

/// A path into the document.
fn key(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

impl Validator<'_> {
    fn at(&mut self, path: &[Seg], message: impl Into<String>, hint: Option<&str>) {
        let n = self.tree.walk(path);
        let mut d = Diagnostic::new(self.file, n.pos(), n.width(), message);
        d.hint = hint.map(str::to_string);
        self.diags.push(d);
    }

    fn duration(&mut self, path: &[Seg], text: Option<&str>, default: Duration) -> Duration {
        let Some(t) = text else { return default };
        match humantime::parse_duration(t.trim()) {
            Ok(d) => d,
            Err(_) => {
                self.at(
                    path,
                    format!("invalid duration `{t}`"),
                    Some("a number and a unit: `30s`, `45m`, `1h`, `2d`, `1w`, or `1h 30m`"),
                );
                default
            }
        }
    }

    fn schedule(&mut self, raw: RawSchedule, file: &Path, base: &Path) -> Schedule {
        if raw.version != 1 {
            self.at(
                &[key("version")],
                format!("unsupported schedule version {}", raw.version),
                Some("this simian reads `version: 1`"),
            );
        }
        let tz = match raw.timezone.as_deref().map(str::trim) {
            None => Tz::UTC,
            Some(t) => Tz::from_str(t).unwrap_or_else(|_| {
                self.at(
                    &[key("timezone")],
                    format!("unknown time zone `{t}`"),
                    Some("an IANA name, e.g. `Europe/Berlin`, `America/New_York` or `UTC`"),
                );
                Tz::UTC
            }),
        };
        let min_between_runs = self.duration(
            &[key("min_between_runs")],
            raw.min_between_runs.as_deref(),
            Duration::ZERO,
        );
        let max_run = self.duration(
            &[key("max_run")],
            raw.max_run.as_deref(),
            Duration::from_secs(2 * 3600),
        );
        let stop_grace = self.duration(
            &[key("stop_grace")],
            raw.stop_grace.as_deref(),
            Duration::from_secs(60),
        );
        if max_run < Duration::from_secs(1) {
            self.at(&[key("max_run")], "max_run must be at least 1s", None);
        }
        let resolve = |p: &str| {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let output = resolve(raw.output.as_deref().unwrap_or("game-days"));
        let kill_switch = raw.kill_switch.as_deref().map(resolve);

        let mut blackout = Blackout::default();
        for (i, b) in raw.blackout.iter().enumerate() {
            match window::parse_blackout(b) {
                Ok(r) => blackout.0.push(r),
                Err(e) => self.at(
                    &[key("blackout"), Seg::Index(i)],
                    e,
                    Some("a local date `2026-12-24`, or a range `2026-12-24..2026-12-31`"),
                ),
            }
        }

        let mut windows = Windows::default();
        for (i, w) in raw.windows.iter().enumerate() {
            let here = [key("windows"), Seg::Index(i)];
            let days = match &w.days {
                None => Ok([true; 7]),
                Some(d) if d.is_empty() => Err((
                    vec![key("days")],
                    "a window needs at least one day".to_string(),
                )),
                Some(d) => window::parse_days(d).map_err(|e| {
                    let bad = d
                        .iter()
                        .position(|x| window::parse_days(&[x]).is_err())
                        .unwrap_or(0);
                    (vec![key("days"), Seg::Index(bad)], e)
                }),
            };
            let hours = match &w.hours {
                None => Ok((0, 24 * 60)),
                Some(h) => window::parse_hours(h).map_err(|e| (vec![key("hours")], e)),
            };
            match (days, hours) {
                (Ok(days), Ok((start, end))) => windows.0.push(Window { days, start, end }),
                (d, h) => {
                    for (sub, e) in [d.err(), h.err()].into_iter().flatten() {
                        let path: Vec<Seg> = here.iter().cloned().chain(sub).collect();
                        let hint = if e.contains("day") {
                            "days are mon tue wed thu fri sat sun, or ranges like `mon-fri`"
                        } else {
                            "local start and end, e.g. `\"10:00-16:00\"`; `22:00-02:00` runs past midnight"
                        };
                        self.at(&path, e, Some(hint));
                    }
                }
            }
        }

        if raw.experiments.is_empty() {
            self.at(
                &[key("experiments")],
                "no experiments to schedule",
                Some("add `- { file: x.yaml, cron: \"0 11 * * mon-thu\" }`"),
            );
        }
        let mut experiments: Vec<Experiment> = Vec::new();
        for (i, e) in raw.experiments.into_iter().enumerate() {
            let here = |k: &str| [key("experiments"), Seg::Index(i), key(k)];
            let file = resolve(&e.file);
            if !file.is_file() {
                self.at(
                    &here("file"),
                    format!("experiment file {} not found", file.display()),
                    Some("paths are relative to the schedule file's directory"),
                );
            }
            let name = e.name.clone().unwrap_or_else(|| {
                Path::new(&e.file)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            let name_ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !name_ok {
                let at = if e.name.is_some() { "name" } else { "file" };
                self.at(
                    &here(at),
                    format!("`{name}` cannot name a run directory"),
                    Some("use letters, digits, `-`, `_` and `.`; set `name:` to choose one"),
                );
            } else if experiments.iter().any(|x| x.name == name) {
                let at = if e.name.is_some() { "name" } else { "file" };
                self.at(
                    &here(at),
                    format!("two experiments are named `{name}`"),
                    Some("give one a `name:` of its own; runs and history go by name"),
                );
            }
            for (j, a) in e.args.iter().enumerate() {
                let flag = a.split('=').next().unwrap_or(a);
                if RESERVED_ARGS.contains(&flag) {
                    self.at(
                        &[key("experiments"), Seg::Index(i), key("args"), Seg::Index(j)],
                        format!("`{flag}` is set by the scheduler"),
                        Some("every run writes journal.jsonl, run.json, junit.xml, summary.md and report.html into its own directory"),
                    );
                }
            }
            let trigger = match (&e.cron, &e.mean_time_between_runs) {
                (Some(c), None) => match parse_cron(c) {
                    Ok(cron) => Some(Trigger::Cron {
                        pattern: c.trim().to_string(),
                        cron: Box::new(cron),
                    }),
                    Err(msg) => {
                        self.at(
                            &here("cron"),
                            format!("invalid cron `{c}`: {msg}"),
                            Some("five fields: minute hour day-of-month month day-of-week, e.g. `0 11 * * mon-thu`"),
                        );
                        None
                    }
                },
                (None, Some(m)) => {
                    let mean =
                        self.duration(&here("mean_time_between_runs"), Some(m), Duration::ZERO);
                    if mean != Duration::ZERO && mean < crate::decide::TICK {
                        self.at(
                            &here("mean_time_between_runs"),
                            "mean_time_between_runs must be at least 1m",
                            Some("runs are drawn once a minute"),
                        );
                    }
                    Some(Trigger::Random { mean })
                }
                (Some(_), Some(_)) => {
                    self.at(
                        &here("mean_time_between_runs"),
                        "an experiment takes `cron` or `mean_time_between_runs`, not both",
                        None,
                    );
                    None
                }
                (None, None) => {
                    self.at(
                        &[key("experiments"), Seg::Index(i)],
                        "an experiment needs `cron` or `mean_time_between_runs`",
                        Some("`cron: \"0 11 * * mon-thu\"` (fixed times) or `mean_time_between_runs: 2d` (random inside the windows)"),
                    );
                    None
                }
            };
            experiments.push(Experiment {
                name,
                file,
                trigger: trigger.unwrap_or(Trigger::Random {
                    mean: Duration::ZERO,
                }),
                args: e.args,
            });
        }

        let open_fraction = windows.open_fraction();
        Schedule {
            file: file.to_path_buf(),
            tz,
            output,
            min_between_runs,
            max_run,
            stop_grace,
            kill_switch,
            seed: raw.seed,
            blackout,
            windows,
            experiments,
            open_fraction,
        }
    }
}

/// A standard 5-field cron (or `@daily` and friends): no seconds, no years.
pub fn parse_cron(pattern: &str) -> Result<Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(pattern)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[&str]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for f in files {
            std::fs::write(d.path().join(f), "version: 1\n").unwrap();
        }
        d
    }

    #[test]
    fn the_documented_example_loads() {
        let d = dir_with(&["gorilla.yaml", "latency.yaml"]);
        let src = r#"version: 1
timezone: Europe/Berlin
output: game-days/
min_between_runs: 1h
kill_switch: /var/lib/simian/KILL
blackout: [2026-12-24, 2026-12-25, "2026-12-30..2027-01-01"]
windows:
  - days: [mon, tue, wed, thu]
    hours: "10:00-16:00"
experiments:
  - file: gorilla.yaml
    cron: "0 11 * * mon-thu"
    args: ["--lab", "--var", "hold=30s"]
  - file: latency.yaml
    mean_time_between_runs: 2d
"#;
        let s = parse(&d.path().join("s.yaml"), src).unwrap();
        assert_eq!(s.tz, chrono_tz::Europe::Berlin);
        assert_eq!(s.min_between_runs, Duration::from_secs(3600));
        assert_eq!(s.output, d.path().join("game-days/"));
        assert_eq!(s.experiments[0].name, "gorilla");
        assert!(
            matches!(s.experiments[1].trigger, Trigger::Random { mean } if mean == Duration::from_secs(2 * 86400))
        );
        assert_eq!(s.blackout.0.len(), 3);
        assert_eq!(s.windows.0.len(), 1);
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_position() {
        let d = dir_with(&["a.yaml"]);
        let src = r#"version: 1
timezone: Europe/Berlyn
blackout: [2026-02-30]
windows:
  - days: [mon, fry]
    hours: "10:00-25:00"
experiments:
  - file: a.yaml
    cron: "0 11 * *"
  - file: missing.yaml
    mean_time_between_runs: 2 fortnights
  - file: a.yaml
    args: [--json, x]
"#;
        let diags = parse(&d.path().join("s.yaml"), src).unwrap_err();
        let got: Vec<String> = diags
            .iter()
            .map(|d| format!("{}:{} {}", d.pos.line, d.pos.col, d.message))
            .collect();
        let want = [
            "2:11 unknown time zone `Europe/Berlyn`",
            "3:12 invalid date `2026-02-30`: expected YYYY-MM-DD",
            "5:17 unknown day `fry`",
            "6:12 invalid time `25:00`: hours go up to 23:59 (or 24:00 as an end)",
            "9:11 invalid cron `0 11 * *`",
            "10:11 experiment file",
            "11:29 invalid duration `2 fortnights`",
            "12:5 an experiment needs `cron` or `mean_time_between_runs`",
            "12:11 two experiments are named `a`",
            "13:12 `--json` is set by the scheduler",
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (g, w) in got.iter().zip(want) {
            assert!(g.starts_with(w), "{g} does not start with {w}\n{got:#?}");
        }
    }

    #[test]
    fn unknown_keys_point_at_the_key_with_a_suggestion() {
        let src = "version: 1\nexperiments: []\nmin_between_run: 1h\n";
        let diags = parse(Path::new("s.yaml"), src).unwrap_err();
        assert_eq!(diags.len(), 1);
        let r = diags[0].render(src);
        assert!(r.contains("unknown field `min_between_run`"), "{r}");
        assert!(r.contains("s.yaml:3:1"), "{r}");
        assert!(r.contains("did you mean `min_between_runs`?"), "{r}");

        let src = "version: 1\nexperiments:\n  - file: a.yaml\n    crom: \"* * * * *\"\n";
        let diags = parse(Path::new("s.yaml"), src).unwrap_err();
        let r = diags[0].render(src);
        assert!(r.contains("experiments[0]: unknown field `crom`"), "{r}");
        assert!(r.contains("s.yaml:4:5"), "{r}");
        assert!(r.contains("    ^^^^\n"), "{r}");
        assert!(r.contains("did you mean `cron`?"), "{r}");

        let src = "version: 1\nexperiments:\n  - file: a.yaml\n   cron: x\n";
        let r = parse(Path::new("s.yaml"), src).unwrap_err()[0].render(src);
        assert!(r.starts_with("error: invalid YAML"), "{r}");
        assert!(r.contains("s.yaml:4:"), "{r}");
    }

    #[test]
    fn cron_takes_five_fields_only() {
        assert!(parse_cron("0 11 * * mon-thu").is_ok());
        assert!(parse_cron("@daily").is_ok());
        assert!(
            parse_cron("0 0 11 * * mon").is_err(),
            "seconds are not standard"
        );
        assert!(parse_cron("61 * * * *").is_err());
    }
}
