//! The scheduler: `--once`, the foreground daemon, and `--dry-run`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use crate::config::{Schedule, Trigger};
use crate::decide::{local_time, Candidate, Past, Planner};
use crate::history::{self, RECORD};
use crate::kill::KillSwitch;
use crate::lock::{self, Acquired, Holder};
use crate::runner::{self, exit, Launch, Signals};

/// The time, for the decisions (tests drive a fake one).
pub trait Clock {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The daemon sleeps at most this long at a time (and re-checks the kill switch).
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// Past `max_run` + `stop_grace`, a lock is stale after this much more.
const LOCK_MARGIN: Duration = Duration::from_secs(5 * 60);

/// `0 held` … `4 revert failed`.
pub fn exit_meaning(code: i32) -> &'static str {
    match code {
        0 => "held",
        1 => "deviated",
        2 => "aborted, every fault reverted",
        3 => "not run",
        4 => "a revert failed",
        _ => "unexpected exit code",
    }
}

pub struct Scheduler {
    pub schedule: Schedule,
    pub state_dir: PathBuf,
    /// The `simian` binary each run is a child of.
    pub exe: PathBuf,
    pub seed: u64,
    /// Whether the seed was chosen (flag or file) rather than drawn.
    pub seed_fixed: bool,
    pub switch: KillSwitch,
    pub lock_path: PathBuf,
}

impl Scheduler {
    pub fn new(schedule: Schedule, state_dir: &Path, exe: PathBuf, seed: Option<u64>) -> Scheduler {
        let switch = KillSwitch::new(
            schedule
                .kill_switch
                .clone()
                .unwrap_or_else(|| KillSwitch::default_file(state_dir)),
        );
        let seed_fixed = seed.or(schedule.seed).is_some();
        Scheduler {
            seed: seed.or(schedule.seed).unwrap_or_else(fresh_seed),
            seed_fixed,
            switch,
            lock_path: lock_path(state_dir),
            state_dir: state_dir.to_path_buf(),
            exe,
            schedule,
        }
    }

    fn log(&self, msg: &str) {
        eprintln!(
            "[{}] {msg}",
            Utc::now()
                .with_timezone(&self.schedule.tz)
                .format("%Y-%m-%d %H:%M:%S %Z")
        );
    }

    fn at(&self, t: DateTime<Utc>) -> String {
        local_time(t, self.schedule.tz)
    }

    /// Runs found under the schedule's output dir.
    pub fn past(&self) -> Vec<Past> {
        history::past_runs(&self.schedule.output)
    }

    fn max_lock_age(&self) -> Duration {
        self.schedule.max_run + self.schedule.stop_grace + LOCK_MARGIN
    }

    /// `OUTPUT/YYYY-MM-DD/HHMMSS-NAME/`, local time; `-2`, `-3`… if taken.
    pub fn run_dir(&self, name: &str, at: DateTime<Utc>) -> PathBuf {
        let local = at.with_timezone(&self.schedule.tz);
        let day = self
            .schedule
            .output
            .join(local.format("%Y-%m-%d").to_string());
        let base = format!("{}-{name}", local.format("%H%M%S"));
        let mut dir = day.join(&base);
        let mut n = 2;
        while dir.exists() {
            dir = day.join(format!("{base}-{n}"));
            n += 1;
        }
        dir
    }

    fn report_blocked(&self, cands: &[Candidate]) {
        for c in cands {
            if let Err(b) = &c.verdict {
                self.log(&format!(
                    "{} was due at {}: not started: {}",
                    self.schedule.experiments[c.experiment].name,
                    self.at(c.due),
                    b.describe(self.schedule.tz)
                ));
            }
        }
    }

    /// Starts the chosen candidate under the lock and watches it to its end.
    /// `Err(code)`: refused (lock held, or blocked on a second look).
    async fn start(
        &self,
        c: &Candidate,
        from: DateTime<Utc>,
        clock: &dyn Clock,
        signals: &mut Signals,
    ) -> Result<runner::Outcome, i32> {
        let e = &self.schedule.experiments[c.experiment];
        let now = clock.now();
        let run_dir = self.run_dir(&e.name, now);
        let holder = Holder {
            experiment: Some(e.name.clone()),
            run_dir: Some(run_dir.clone()),
            ..Holder::me(now)
        };
        let mut lock = match lock::acquire(&self.lock_path, holder, now, self.max_lock_age()) {
            Ok(Acquired::Taken { lock, took_over }) => {
                if let Some(why) = took_over {
                    self.log(&format!("{}: {why}", self.lock_path.display()));
                }
                lock
            }
            Ok(Acquired::Held { path, holder }) => {
                let who = holder.map_or_else(
                    || "a lock file being written".to_string(),
                    |h| h.to_string(),
                );
                self.log(&format!(
                    "not starting {}: another run holds {} ({who}); one run at a time",
                    e.name,
                    path.display()
                ));
                return Err(exit::NOT_RUN);
            }
            Err(err) => {
                self.log(&format!(
                    "not starting {}: cannot take the lock {}: {err}",
                    e.name,
                    self.lock_path.display()
                ));
                return Err(exit::NOT_RUN);
            }
        };
        // A second look under the lock: a run may have ended, or the switch flipped, meanwhile.
        let again = self.schedule.evaluate(
            from,
            c.due.max(now),
            &self.past(),
            self.seed,
            self.switch.active().as_deref(),
        );
        if let Some(Err(b)) = again
            .iter()
            .find(|x| x.experiment == c.experiment)
            .map(|x| &x.verdict)
        {
            self.log(&format!(
                "not starting {}: {}",
                e.name,
                b.describe(self.schedule.tz)
            ));
            return Err(exit::OK);
        }

        let launch = Launch {
            exe: self.exe.clone(),
            state_dir: self.state_dir.clone(),
            experiment: e.clone(),
            run_dir: run_dir.clone(),
        };
        let stamp = |t: DateTime<Utc>| {
            t.with_timezone(&self.schedule.tz)
                .to_rfc3339_opts(SecondsFormat::Secs, false)
        };
        let mut record = json!({
            "experiment": e.name,
            "file": e.file,
            "trigger": e.trigger.to_string(),
            "due": stamp(c.due),
            "started": stamp(now),
            "scheduler_pid": std::process::id(),
            "seed": self.seed,
            "args": e.args,
        });
        let write_record = |r: &serde_json::Value| {
            let text = serde_json::to_string_pretty(r).unwrap_or_default();
            if let Err(err) = std::fs::write(run_dir.join(RECORD), text) {
                self.log(&format!(
                    "warning: cannot write {}: {err}",
                    run_dir.join(RECORD).display()
                ));
            }
        };
        if let Err(err) = std::fs::create_dir_all(&run_dir) {
            self.log(&format!(
                "not starting {}: cannot create {}: {err}",
                e.name,
                run_dir.display()
            ));
            return Err(exit::NOT_RUN);
        }
        write_record(&record);
        let child = match runner::spawn(&launch) {
            Ok(c) => c,
            Err(err) => {
                self.log(&format!(
                    "cannot start {} {}: {err}",
                    self.exe.display(),
                    e.name
                ));
                record["ended"] = stamp(clock.now()).into();
                record["exit_code"] = exit::NOT_RUN.into();
                record["stopped"] = format!("could not start: {err}").into();
                write_record(&record);
                return Err(exit::NOT_RUN);
            }
        };
        let pid = child.id();
        if let Err(err) = lock.update(|h| h.child_pid = pid) {
            self.log(&format!("warning: {err}"));
        }
        self.log(&format!(
            "starting {} (due {}, pid {}) into {}",
            e.name,
            self.at(c.due),
            pid.unwrap_or(0),
            run_dir.display()
        ));
        let log = |m: &str| self.log(m);
        let outcome = runner::supervise(
            &launch,
            child,
            &self.switch,
            self.schedule.max_run,
            self.schedule.stop_grace,
            signals,
            &log,
        )
        .await;
        record["ended"] = stamp(clock.now()).into();
        record["exit_code"] = outcome.exit_code.into();
        if let Some(s) = &outcome.stopped {
            record["stopped"] = s.clone().into();
        }
        write_record(&record);
        self.log(&format!(
            "{} ended: exit {} ({}); reports in {}",
            e.name,
            outcome.exit_code,
            exit_meaning(outcome.exit_code),
            run_dir.display()
        ));
        drop(lock);
        Ok(outcome)
    }

    /// Runs what is due in the current minute, then returns: the run's exit code, 0 when
    /// nothing ran, 3 when refused (the lock is held).
    pub async fn once(&self, clock: &dyn Clock, signals: &mut Signals) -> i32 {
        let now = clock.now();
        let mut planner = Planner::for_minute_of(now, self.seed);
        let from = planner.last;
        let kill = self.switch.active();
        let cands = planner.step(&self.schedule, now, &self.past(), kill.as_deref());
        if let Some(k) = &kill {
            self.log(&format!("kill switch is on ({k}): no run starts"));
        }
        self.report_blocked(&cands);
        let Some(chosen) = cands.iter().find(|c| c.verdict.is_ok()) else {
            if cands.is_empty() {
                match planner.next_wake(&self.schedule) {
                    Some(t) => {
                        self.log(&format!("nothing is due now; next due time {}", self.at(t)))
                    }
                    None => self.log("nothing is due now, nor later"),
                }
            }
            return exit::OK;
        };
        match self.start(chosen, from, clock, signals).await {
            Ok(o) => o.exit_code,
            Err(code) => code,
        }
    }

    /// Runs the schedule in the foreground until SIGINT or SIGTERM.
    pub async fn daemon(&self, clock: &dyn Clock, signals: &mut Signals) -> i32 {
        self.log(&format!(
            "running {}: {} experiment(s), timezone {}, seed {}; kill switch {} (or {}=1); one run at a time ({})",
            self.schedule.file.display(),
            self.schedule.experiments.len(),
            self.schedule.tz,
            self.seed,
            self.switch.file.display(),
            crate::kill::ENV,
            self.lock_path.display()
        ));
        let mut planner = Planner::starting_at(clock.now(), self.seed);
        let mut kill_was: Option<String> = None;
        let mut announced = None;
        loop {
            let now = clock.now();
            let kill = self.switch.active();
            if kill != kill_was {
                match &kill {
                    Some(k) => self.log(&format!("kill switch on ({k}): no run starts")),
                    None => self.log("kill switch off: runs start again when due"),
                }
                kill_was.clone_from(&kill);
            }
            let from = planner.last;
            let cands = planner.step(&self.schedule, now, &self.past(), kill.as_deref());
            self.report_blocked(&cands);
            if let Some(chosen) = cands.iter().find(|c| c.verdict.is_ok()) {
                if let Ok(o) = self.start(chosen, from, clock, signals).await {
                    if o.signalled {
                        self.log("stopping the scheduler");
                        return o.exit_code;
                    }
                }
                // Due times that passed while it ran are skipped, not caught up.
                planner.last = planner.last.max(clock.now());
                continue;
            }
            let wake = planner.next_wake(&self.schedule);
            let next_cron = self.next_cron(planner.last);
            if next_cron.is_some() && next_cron != announced {
                if let Some((name, t)) = &next_cron {
                    self.log(&format!("next: {name} at {}", self.at(*t)));
                }
                announced = next_cron;
            }
            let sleep = wake
                .and_then(|t| (t - clock.now()).to_std().ok())
                .unwrap_or(MAX_SLEEP)
                .min(MAX_SLEEP)
                + Duration::from_millis(50);
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                s = signals.recv() => {
                    self.log(&format!("{s} received: stopping the scheduler (no run was in progress)"));
                    return exit::OK;
                }
            }
        }
    }

    /// The next cron due time after `after`, and whose (for the log).
    fn next_cron(&self, after: DateTime<Utc>) -> Option<(String, DateTime<Utc>)> {
        self.schedule
            .experiments
            .iter()
            .filter_map(|e| match &e.trigger {
                Trigger::Cron { cron, .. } => self
                    .schedule
                    .next_cron(cron, after)
                    .map(|t| (e.name.clone(), t)),
                Trigger::Random { .. } => None,
            })
            .min_by_key(|(_, t)| *t)
    }

    /// What `--dry-run` prints: the state now, then the next `n` due times of each experiment.
    pub fn dry_run(&self, clock: &dyn Clock, n: usize) -> String {
        let s = &self.schedule;
        let now = clock.now();
        let past = self.past();
        let kill = self.switch.active();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "schedule {}: {} experiment(s), timezone {}, now {}",
            s.file.display(),
            s.experiments.len(),
            s.tz,
            self.at(now)
        );
        let _ = match &kill {
            Some(k) => writeln!(out, "kill switch: ON ({k}): no run starts while it is on"),
            None => writeln!(
                out,
                "kill switch: off (create {} or set {}=1 to stop every run)",
                self.switch.file.display(),
                crate::kill::ENV
            ),
        };
        let _ = writeln!(
            out,
            "runs go to {} ({} so far)",
            s.output.display(),
            past.len()
        );
        if let Some((last, until)) = s.min_gap(&past) {
            let _ = writeln!(
                out,
                "min_between_runs {}: the last run ended {}; none starts before {}",
                humantime::format_duration(s.min_between_runs),
                self.at(last),
                self.at(until)
            );
        }
        if let Ok(Some(h)) = std::fs::read_to_string(&self.lock_path)
            .map(|t| serde_json::from_str::<Holder>(&t).ok())
        {
            let _ = writeln!(
                out,
                "a run is in progress: {h} (lock {})",
                self.lock_path.display()
            );
        }
        let now_cands = Planner::for_minute_of(now, self.seed).step(s, now, &past, kill.as_deref());
        if now_cands.is_empty() {
            let _ = writeln!(out, "now: nothing is due");
        }
        for c in &now_cands {
            let name = &s.experiments[c.experiment].name;
            let _ = match &c.verdict {
                Ok(()) => writeln!(out, "now: {name} is due and `--once` would start it"),
                Err(b) => writeln!(out, "now: {name} is due but blocked: {}", b.describe(s.tz)),
            };
        }
        let forecast = s.forecast(now, &past, self.seed, n, kill.as_deref());
        for (i, (e, cands)) in s.experiments.iter().zip(&forecast).enumerate() {
            let _ = write!(out, "\n{} ({}", e.name, e.trigger);
            if let Trigger::Random { mean } = &e.trigger {
                let _ = write!(
                    out,
                    "; {:.3}% a minute inside the windows; seed {}{}",
                    s.chance(*mean) * 100.0,
                    self.seed,
                    if self.seed_fixed {
                        ""
                    } else {
                        ", drawn for this dry run: fix it with `seed:` or --seed to see the times a daemon will use"
                    }
                );
            }
            let _ = writeln!(out, "), next {n}:");
            if cands.is_empty() {
                let _ = writeln!(out, "  none in the next year");
            }
            for c in cands {
                debug_assert_eq!(c.experiment, i);
                let _ = match &c.verdict {
                    Ok(()) => writeln!(out, "  {}  runs", self.at(c.due)),
                    Err(b) => writeln!(out, "  {}  blocked: {}", self.at(c.due), b.describe(s.tz)),
                };
            }
        }
        out
    }
}

/// `STATE_DIR/schedule.lock`.
pub fn lock_path(state_dir: &Path) -> PathBuf {
    state_dir.join("schedule.lock")
}

fn fresh_seed() -> u64 {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    (n ^ (u64::from(std::process::id()) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15) % 1_000_000_000
}
