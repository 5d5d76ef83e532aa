//! What is due, and what blocks it: pure functions of the time, the past runs and a seed.
//!
//! Rules, in the order they are checked:
//! - **kill switch**: while it is on, nothing starts;
//! - **already ran**: a due time that a run on disk already started for is not run again
//!   (so `--once` twice in one minute runs once);
//! - **one at a time**: when two are due at once, the first in the file runs and the
//!   other's due time is skipped;
//! - **blackout**: no start on a blackout day (the local date in `timezone`);
//! - **windows**: no start outside them (random draws only happen inside them);
//! - **min_between_runs**: from the end of the last run of any experiment.
//!
//! Clocks going back repeat an hour of wall-clock time: a cron time in it is due the first
//! time only. Clocks going forward skip an hour: a cron time in the gap is due at the first
//! minute after it (croner's rule).

use std::time::Duration;

use chrono::{DateTime, LocalResult, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

use crate::config::{Schedule, Trigger};
use crate::random;

/// The random trigger's evaluation tick.
pub const TICK: Duration = Duration::from_secs(60);
const TICK_SECS: i64 = 60;
/// How far `--dry-run` looks ahead.
const HORIZON_DAYS: i64 = 366;
/// A daemon that was away longer than this does not draw for every tick it missed.
const MAX_CATCH_UP_TICKS: i64 = 60;

/// A run found on disk (or simulated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Past {
    pub experiment: String,
    pub started: DateTime<Utc>,
    /// `None`: still going, or it never finished (the scheduler was killed).
    pub ended: Option<DateTime<Utc>>,
}

/// Why a due time does not start a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    KillSwitch(String),
    AlreadyRan {
        started: DateTime<Utc>,
    },
    OneAtATime {
        other: String,
    },
    Blackout(NaiveDate),
    OutsideWindows,
    MinGap {
        last: DateTime<Utc>,
        until: DateTime<Utc>,
    },
}

impl Block {
    /// A fragment that reads after "blocked: ", times in the schedule's zone.
    pub fn describe(&self, tz: Tz) -> String {
        match self {
            Block::KillSwitch(why) => format!("kill switch ({why})"),
            Block::AlreadyRan { started } => format!(
                "already ran for this due time (started {})",
                local_time(*started, tz)
            ),
            Block::OneAtATime { other } => {
                format!("one run at a time: `{other}` is due at the same time and goes first")
            }
            Block::Blackout(d) => format!("blackout day {d}"),
            Block::OutsideWindows => "outside the windows".into(),
            Block::MinGap { last, until } => format!(
                "min_between_runs: the last run ended {}, none starts before {}",
                local_time(*last, tz),
                local_time(*until, tz)
            ),
        }
    }
}

/// `2026-12-21 11:00 Mon CET`.
pub fn local_time(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M %a %Z")
        .to_string()
}

/// One due time of one experiment, and whether it starts a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Index into `Schedule::experiments`.
    pub experiment: usize,
    pub due: DateTime<Utc>,
    pub verdict: Result<(), Block>,
}

/// The start of the minute `t` is in.
pub fn minute_start(t: DateTime<Utc>) -> DateTime<Utc> {
    from_secs(t.timestamp().div_euclid(TICK_SECS) * TICK_SECS)
}

fn from_secs(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(s, 0).unwrap_or_default()
}

fn tick_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(TICK_SECS)
}

impl Schedule {
    pub fn blackout_on(&self, t: DateTime<Utc>) -> Option<NaiveDate> {
        let day = t.with_timezone(&self.tz).date_naive();
        self.blackout.covers(day).then_some(day)
    }

    pub fn in_windows(&self, t: DateTime<Utc>) -> bool {
        self.windows
            .contains(t.with_timezone(&self.tz).naive_local())
    }

    /// The end of the last run and the earliest next start, when `min_between_runs` is set.
    pub fn min_gap(&self, past: &[Past]) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        if self.min_between_runs.is_zero() {
            return None;
        }
        let last = past.iter().map(|p| p.ended.unwrap_or(p.started)).max()?;
        let gap = chrono::Duration::from_std(self.min_between_runs).ok()?;
        Some((last, last + gap))
    }

    /// Blackout, windows (at the due time) and the min gap (at `now`).
    pub fn gate(&self, due: DateTime<Utc>, now: DateTime<Utc>, past: &[Past]) -> Result<(), Block> {
        if let Some(d) = self.blackout_on(due) {
            return Err(Block::Blackout(d));
        }
        if !self.in_windows(due) {
            return Err(Block::OutsideWindows);
        }
        match self.min_gap(past) {
            Some((last, until)) if now < until => Err(Block::MinGap { last, until }),
            _ => Ok(()),
        }
    }

    /// The next cron time strictly after `after`, skipping the second pass of a repeated hour.
    pub fn next_cron(&self, cron: &Cron, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut t = after.with_timezone(&self.tz);
        for _ in 0..8 {
            t = cron.find_next_occurrence(&t, false).ok()?;
            if !self.second_pass(t) {
                return Some(t.with_timezone(&Utc));
            }
        }
        None
    }

    /// True for the later of two instants that share a wall-clock time (clocks went back).
    fn second_pass(&self, t: DateTime<Tz>) -> bool {
        matches!(self.tz.from_local_datetime(&t.naive_local()),
            LocalResult::Ambiguous(_, later) if later == t)
    }

    /// The random trigger's chance per tick inside the windows.
    pub fn chance(&self, mean: Duration) -> f64 {
        random::chance_per_tick(TICK, mean, self.open_fraction)
    }

    /// Whether experiment `i` (random) is due on `tick`: it draws under its chance, inside the windows.
    fn random_due(&self, name: &str, chance: f64, seed: u64, tick: i64) -> bool {
        // The draw is a pure function of the tick: checking the windows first changes nothing
        // but the cost.
        self.in_windows(from_secs(tick * TICK_SECS)) && random::fires(seed, tick, name, chance)
    }

    /// The latest due time of experiment `i` in (from, to].
    pub fn due_in(
        &self,
        i: usize,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        seed: u64,
    ) -> Option<DateTime<Utc>> {
        let e = &self.experiments[i];
        match &e.trigger {
            Trigger::Cron { cron, .. } => {
                let mut last = None;
                let mut t = from;
                while let Some(next) = self.next_cron(cron, t).filter(|n| *n <= to) {
                    last = Some(next);
                    t = next;
                }
                last
            }
            Trigger::Random { mean } => {
                let chance = self.chance(*mean);
                let (a, b) = (tick_of(from), tick_of(to));
                (a.max(b - MAX_CATCH_UP_TICKS) + 1..=b)
                    .rev()
                    .find(|t| self.random_due(&e.name, chance, seed, *t))
                    .map(|t| from_secs(t * TICK_SECS))
            }
        }
    }

    /// The first due time of experiment `i` strictly after `after`, up to `horizon`.
    pub fn due_after(
        &self,
        i: usize,
        after: DateTime<Utc>,
        horizon: DateTime<Utc>,
        seed: u64,
    ) -> Option<DateTime<Utc>> {
        let e = &self.experiments[i];
        match &e.trigger {
            Trigger::Cron { cron, .. } => self.next_cron(cron, after).filter(|t| *t <= horizon),
            Trigger::Random { mean } => {
                let chance = self.chance(*mean);
                if chance <= 0.0 {
                    return None;
                }
                (tick_of(after) + 1..=tick_of(horizon))
                    .find(|t| self.random_due(&e.name, chance, seed, *t))
                    .map(|t| from_secs(t * TICK_SECS))
            }
        }
    }

    /// Judges one due time. `first`: what was already picked for the same due time.
    fn judge(
        &self,
        i: usize,
        due: DateTime<Utc>,
        now: DateTime<Utc>,
        past: &[Past],
        kill: Option<&str>,
        first: Option<usize>,
    ) -> Result<(), Block> {
        let name = &self.experiments[i].name;
        if let Some(why) = kill {
            return Err(Block::KillSwitch(why.to_string()));
        }
        if let Some(p) = past
            .iter()
            .find(|p| &p.experiment == name && p.started >= due)
        {
            return Err(Block::AlreadyRan { started: p.started });
        }
        if let Some(j) = first {
            return Err(Block::OneAtATime {
                other: self.experiments[j].name.clone(),
            });
        }
        self.gate(due, now, past)
    }

    /// Everything due in (from, now], judged; at most one candidate is `Ok`.
    pub fn evaluate(
        &self,
        from: DateTime<Utc>,
        now: DateTime<Utc>,
        past: &[Past],
        seed: u64,
        kill: Option<&str>,
    ) -> Vec<Candidate> {
        let mut out: Vec<Candidate> = Vec::new();
        for i in 0..self.experiments.len() {
            let Some(due) = self.due_in(i, from, now, seed) else {
                continue;
            };
            let first = out.iter().find(|c| c.verdict.is_ok()).map(|c| c.experiment);
            let verdict = self.judge(i, due, now, past, kill, first);
            out.push(Candidate {
                experiment: i,
                due,
                verdict,
            });
        }
        out
    }

    /// The next `n` due times of each experiment from the current minute on, judged as if
    /// every run that would start took no time (so the min gap counts from its start).
    pub fn forecast(
        &self,
        now: DateTime<Utc>,
        past: &[Past],
        seed: u64,
        n: usize,
        kill: Option<&str>,
    ) -> Vec<Vec<Candidate>> {
        let horizon = now + chrono::Duration::days(HORIZON_DAYS);
        let from = minute_start(now) - chrono::Duration::seconds(1);
        let count = self.experiments.len();
        let mut heads: Vec<Option<DateTime<Utc>>> = (0..count)
            .map(|i| self.due_after(i, from, horizon, seed))
            .collect();
        let mut past = past.to_vec();
        let mut out: Vec<Vec<Candidate>> = vec![Vec::new(); count];
        let mut picked: Option<(DateTime<Utc>, usize)> = None;
        loop {
            let next = (0..count)
                .filter(|i| out[*i].len() < n)
                .filter_map(|i| heads[i].map(|t| (t, i)))
                .min();
            let Some((due, i)) = next else { break };
            let first = picked.filter(|(t, _)| *t == due).map(|(_, j)| j);
            let verdict = self.judge(i, due, due.max(now), &past, kill, first);
            if verdict.is_ok() {
                picked = Some((due, i));
                past.push(Past {
                    experiment: self.experiments[i].name.clone(),
                    started: due,
                    ended: Some(due),
                });
            }
            out[i].push(Candidate {
                experiment: i,
                due,
                verdict,
            });
            heads[i] = self.due_after(i, due, horizon, seed);
        }
        out
    }
}

/// Evaluates a schedule over time: each step judges what fell due since the last one.
#[derive(Debug, Clone)]
pub struct Planner {
    /// Due times up to here have been judged.
    pub last: DateTime<Utc>,
    pub seed: u64,
}

impl Planner {
    /// A daemon: nothing before `start` is due.
    pub fn starting_at(start: DateTime<Utc>, seed: u64) -> Planner {
        Planner { last: start, seed }
    }

    /// `--once`: what is due in the current minute (one random draw).
    pub fn for_minute_of(now: DateTime<Utc>, seed: u64) -> Planner {
        Planner {
            last: minute_start(now) - chrono::Duration::seconds(1),
            seed,
        }
    }

    /// Judges what fell due in (last, now], and moves on to `now`.
    pub fn step(
        &mut self,
        s: &Schedule,
        now: DateTime<Utc>,
        past: &[Past],
        kill: Option<&str>,
    ) -> Vec<Candidate> {
        let out = s.evaluate(self.last, now, past, self.seed, kill);
        self.last = self.last.max(now);
        out
    }

    /// When something may next fall due: the next cron time, or the next tick when a
    /// random trigger exists.
    pub fn next_wake(&self, s: &Schedule) -> Option<DateTime<Utc>> {
        s.experiments
            .iter()
            .filter_map(|e| match &e.trigger {
                Trigger::Cron { cron, .. } => s.next_cron(cron, self.last),
                Trigger::Random { .. } => Some(from_secs((tick_of(self.last) + 1) * TICK_SECS)),
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::daemon::Clock;
    use std::cell::Cell;

    /// A clock the test moves by hand.
    struct FakeClock(Cell<DateTime<Utc>>);

    impl FakeClock {
        fn at(t: DateTime<Utc>) -> FakeClock {
            FakeClock(Cell::new(t))
        }
        fn advance(&self, d: chrono::Duration) {
            self.0.set(self.0.get() + d);
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> DateTime<Utc> {
            self.0.get()
        }
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    /// A schedule from YAML whose experiment files exist (in a temp dir).
    fn schedule(yaml: &str) -> Schedule {
        let dir = tempfile::tempdir().unwrap();
        for f in ["a.yaml", "b.yaml"] {
            std::fs::write(dir.path().join(f), "version: 1\n").unwrap();
        }
        let file = dir.path().join("schedule.yaml");
        match parse(&file, yaml) {
            Ok(s) => s,
            Err(d) => panic!("{}", d.iter().map(|d| d.render(yaml)).collect::<String>()),
        }
    }

    /// A daemon driven by a fake clock in `step`s; each run takes `run_for`.
    /// Returns (experiment, start) of every run, and every blocked candidate.
    fn simulate(
        s: &Schedule,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        step: chrono::Duration,
        run_for: chrono::Duration,
        seed: u64,
    ) -> (Vec<(String, DateTime<Utc>)>, Vec<Candidate>) {
        let clock = FakeClock::at(start);
        let mut planner = Planner::starting_at(clock.now(), seed);
        let mut past: Vec<Past> = Vec::new();
        let (mut runs, mut blocked) = (Vec::new(), Vec::new());
        while clock.now() < end {
            clock.advance(step);
            let now = clock.now();
            for c in planner.step(s, now, &past, None) {
                match c.verdict {
                    Ok(()) => {
                        let name = s.experiments[c.experiment].name.clone();
                        runs.push((name.clone(), now));
                        clock.advance(run_for);
                        past.push(Past {
                            experiment: name,
                            started: now,
                            ended: Some(clock.now()),
                        });
                        // Due times missed while the run went on are skipped.
                        planner.last = clock.now();
                        // Only the latest few matter; keeps long simulations fast.
                        if past.len() > 4 {
                            past.remove(0);
                        }
                    }
                    Err(_) => blocked.push(c),
                }
            }
        }
        (runs, blocked)
    }

    const MINUTE: chrono::Duration = chrono::Duration::minutes(1);

    #[test]
    fn cron_runs_only_inside_the_windows() {
        let s = schedule(
            r#"version: 1
timezone: Europe/Berlin
windows: [{ days: [mon-thu], hours: "10:00-16:00" }]
experiments: [{ file: a.yaml, cron: "0 * * * *" }]
"#,
        );
        // Monday 2026-11-23 00:00 Berlin (23:00 UTC the day before), one week.
        let start = utc(2026, 11, 22, 23, 0);
        let (runs, blocked) = simulate(
            &s,
            start,
            start + chrono::Duration::days(7),
            MINUTE,
            chrono::Duration::zero(),
            1,
        );
        assert_eq!(runs.len(), 6 * 4, "{runs:?}");
        for (_, t) in &runs {
            let local = t.with_timezone(&s.tz);
            assert!(s.in_windows(*t), "{local}");
        }
        assert_eq!(blocked.len(), 7 * 24 - 24);
        assert!(blocked
            .iter()
            .all(|c| c.verdict == Err(Block::OutsideWindows)));
    }

    #[test]
    fn no_run_starts_on_a_blackout_day() {
        let s = schedule(
            r#"version: 1
timezone: Europe/Berlin
blackout: [2026-12-24, 2026-12-25]
experiments: [{ file: a.yaml, cron: "0 11 * * *" }]
"#,
        );
        let start = utc(2026, 12, 23, 0, 0);
        let (runs, blocked) = simulate(
            &s,
            start,
            start + chrono::Duration::days(4),
            MINUTE,
            chrono::Duration::zero(),
            1,
        );
        let days: Vec<String> = runs.iter().map(|(_, t)| local_time(*t, s.tz)).collect();
        assert_eq!(
            days,
            ["2026-12-23 11:00 Wed CET", "2026-12-26 11:00 Sat CET"]
        );
        let why: Vec<String> = blocked
            .iter()
            .map(|c| c.verdict.clone().unwrap_err().describe(s.tz))
            .collect();
        assert_eq!(why, ["blackout day 2026-12-24", "blackout day 2026-12-25"]);
    }

    #[test]
    fn clocks_going_back_do_not_fire_a_cron_time_twice() {
        // Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
        let s = schedule(
            "version: 1\ntimezone: Europe/Berlin\nexperiments: [{ file: a.yaml, cron: \"30 2 * * *\" }, { file: b.yaml, cron: \"*/30 * * * *\" }]\n",
        );
        let start = utc(2026, 10, 24, 12, 0);
        // Steps of 17 s: the wake-ups of a daemon never line up with minutes.
        let (runs, _) = simulate(
            &s,
            start,
            start + chrono::Duration::days(2),
            chrono::Duration::seconds(17),
            chrono::Duration::zero(),
            1,
        );
        let daily: Vec<DateTime<Utc>> = runs
            .iter()
            .filter(|(n, _)| n == "a")
            .map(|(_, t)| *t)
            .collect();
        assert_eq!(daily.len(), 2, "{daily:?}");
        assert_eq!(
            minute_start(daily[0]),
            utc(2026, 10, 25, 0, 30),
            "02:30 CEST, the first pass"
        );
        assert_eq!(
            minute_start(daily[1]),
            utc(2026, 10, 26, 1, 30),
            "02:30 CET the next day"
        );
        // The half-hourly job: 48 a day, the repeated hour counted once; `b` never
        // runs when `a` takes the same due time.
        let day = |t: &DateTime<Utc>| t.with_timezone(&s.tz).date_naive();
        let on_the_day = runs
            .iter()
            .filter(|(n, t)| n == "b" && day(t) == NaiveDate::from_ymd_opt(2026, 10, 25).unwrap())
            .count();
        assert_eq!(on_the_day, 48 - 1, "one of them lost to `a` at 02:30");
    }

    #[test]
    fn clocks_going_forward_run_a_skipped_time_once_after_the_gap() {
        // Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist.
        let s = schedule("version: 1\ntimezone: Europe/Berlin\nexperiments: [{ file: a.yaml, cron: \"30 2 * * *\" }]\n");
        let start = utc(2026, 3, 28, 12, 0);
        let (runs, _) = simulate(
            &s,
            start,
            start + chrono::Duration::days(2),
            MINUTE,
            chrono::Duration::zero(),
            1,
        );
        let local: Vec<String> = runs.iter().map(|(_, t)| local_time(*t, s.tz)).collect();
        assert_eq!(
            local,
            ["2026-03-29 03:00 Sun CEST", "2026-03-30 02:30 Mon CEST"]
        );
    }

    #[test]
    fn random_runs_average_the_mean_and_repeat_with_the_seed() {
        let s = schedule(
            r#"version: 1
timezone: Europe/Berlin
windows: [{ days: [mon, tue, wed, thu], hours: "10:00-16:00" }]
experiments: [{ file: a.yaml, mean_time_between_runs: 2d }]
"#,
        );
        let start = utc(2026, 1, 1, 0, 0);
        let days = 420;
        let end = start + chrono::Duration::days(days);
        let (runs, _) = simulate(&s, start, end, MINUTE, chrono::Duration::zero(), 42);
        let mean_days = days as f64 / runs.len() as f64;
        assert!(
            (1.6..2.4).contains(&mean_days),
            "{} runs: one every {mean_days:.2} days",
            runs.len()
        );
        assert!(runs.iter().all(|(_, t)| s.in_windows(*t)));
        // The same seed, the same days; another seed, others. Shorter, to keep it quick.
        let month = start + chrono::Duration::days(60);
        let again = simulate(&s, start, month, MINUTE, chrono::Duration::zero(), 42).0;
        let first: Vec<_> = runs
            .iter()
            .take_while(|(_, t)| *t <= month)
            .cloned()
            .collect();
        assert_eq!(again, first);
        let other = simulate(&s, start, month, MINUTE, chrono::Duration::zero(), 43).0;
        assert_ne!(other, first);
        // A forecast with the seed names the same times.
        let f = s.forecast(start, &[], 42, 3, None);
        let ahead: Vec<DateTime<Utc>> = f[0].iter().map(|c| c.due).collect();
        let ran: Vec<DateTime<Utc>> = first.iter().take(3).map(|(_, t)| *t).collect();
        assert_eq!(ahead, ran);
    }

    #[test]
    fn a_run_too_soon_after_another_or_at_the_same_time_is_refused() {
        let s = schedule(
            r#"version: 1
min_between_runs: 1h
experiments:
  - { file: a.yaml, cron: "0 11 * * *" }
  - { file: b.yaml, cron: "0 11 * * *" }
"#,
        );
        let now = utc(2026, 11, 23, 11, 0);
        let c = s.evaluate(now - chrono::Duration::seconds(1), now, &[], 1, None);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].verdict, Ok(()));
        assert_eq!(c[1].verdict, Err(Block::OneAtATime { other: "a".into() }));
        // A run that ended 30 minutes ago holds off the next for another half hour.
        let past = [Past {
            experiment: "b".into(),
            started: now - chrono::Duration::minutes(40),
            ended: Some(now - chrono::Duration::minutes(30)),
        }];
        let c = s.evaluate(now - chrono::Duration::seconds(1), now, &past, 1, None);
        let until = now + chrono::Duration::minutes(30);
        assert_eq!(
            c[0].verdict,
            Err(Block::MinGap {
                last: now - chrono::Duration::minutes(30),
                until
            })
        );
        // The same due time, once it has run, is not run again (`--once` twice a minute).
        let past = [Past {
            experiment: "a".into(),
            started: now,
            ended: None,
        }];
        let c = s.evaluate(
            now - chrono::Duration::seconds(1),
            now + chrono::Duration::seconds(20),
            &past,
            1,
            None,
        );
        assert_eq!(c[0].verdict, Err(Block::AlreadyRan { started: now }));
        // The kill switch blocks everything.
        let c = s.evaluate(
            now - chrono::Duration::seconds(1),
            now,
            &[],
            1,
            Some("KILL exists"),
        );
        assert!(c
            .iter()
            .all(|c| matches!(c.verdict, Err(Block::KillSwitch(_)))));
    }

    #[test]
    fn once_sees_the_current_minute_only() {
        let s = schedule("version: 1\nexperiments: [{ file: a.yaml, cron: \"0 11 * * *\" }]\n");
        let due = utc(2026, 11, 23, 11, 0);
        let at = |t: DateTime<Utc>| {
            let mut p = Planner::for_minute_of(t, 1);
            p.step(&s, t, &[], None)
        };
        assert_eq!(at(due + chrono::Duration::seconds(42)).len(), 1);
        assert_eq!(at(due).len(), 1);
        assert!(at(due + chrono::Duration::seconds(60)).is_empty());
        assert!(at(due - chrono::Duration::seconds(1)).is_empty());
    }

    #[test]
    fn the_forecast_gives_reasons_and_wakes_on_time() {
        let s = schedule(
            r#"version: 1
timezone: Europe/Berlin
blackout: [2026-11-24]
windows: [{ days: [mon-fri], hours: "10:00-16:00" }]
experiments:
  - { file: a.yaml, cron: "0 11 * * *" }
"#,
        );
        let now = utc(2026, 11, 23, 8, 0); // Monday 09:00 Berlin
        let f = s.forecast(now, &[], 1, 7, None);
        let lines: Vec<String> = f[0]
            .iter()
            .map(|c| match &c.verdict {
                Ok(()) => local_time(c.due, s.tz),
                Err(b) => format!("{} blocked: {}", local_time(c.due, s.tz), b.describe(s.tz)),
            })
            .collect();
        assert_eq!(
            lines,
            [
                "2026-11-23 11:00 Mon CET",
                "2026-11-24 11:00 Tue CET blocked: blackout day 2026-11-24",
                "2026-11-25 11:00 Wed CET",
                "2026-11-26 11:00 Thu CET",
                "2026-11-27 11:00 Fri CET",
                "2026-11-28 11:00 Sat CET blocked: outside the windows",
                "2026-11-29 11:00 Sun CET blocked: outside the windows",
            ]
        );
        let p = Planner::starting_at(now, 1);
        assert_eq!(p.next_wake(&s), Some(utc(2026, 11, 23, 10, 0)));
    }
}
