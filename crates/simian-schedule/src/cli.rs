//! `simian schedule` and `simian history`: arguments and entry points (the binary only
//! dispatches here).

use std::path::{Path, PathBuf};

use clap::Args;

use crate::daemon::{Scheduler, SystemClock};
use crate::runner::{exit, Signals};

/// Help after `simian schedule --help`.
pub const SCHEDULE_HELP: &str = "\
A schedule file (YAML):
  version: 1
  timezone: Europe/Berlin              # IANA name; default UTC
  output: game-days/                   # runs go to OUTPUT/YYYY-MM-DD/HHMMSS-NAME/
  min_between_runs: 1h                 # from the end of one run to the next start
  blackout: [2026-12-24, \"2026-12-27..2027-01-01\"]
  windows: [{ days: [mon-thu], hours: \"10:00-16:00\" }]   # when runs may start
  experiments:
    - file: ../scenarios/chaos-gorilla.yaml
      cron: \"0 11 * * mon-thu\"                # 5-field cron, in `timezone`
      args: [--lab, --var, hold=30s]           # extra `simian run` arguments
    - file: ../scenarios/latency-monkey.yaml
      mean_time_between_runs: 2d               # random, inside the windows

Each run is `simian run FILE` as a child process, one at a time (STATE_DIR/schedule.lock),
writing journal.jsonl, run.json, junit.xml, summary.md, report.html, stdout.log and
stderr.log into its directory. The kill switch (STATE_DIR/kill-switch, `kill_switch:`, or
SIMIAN_KILL_SWITCH=1) stops new runs and interrupts a running one (it reverts everything).

Examples:
  simian schedule game-days.yaml --dry-run        # what runs when, and what blocks it
  simian schedule game-days.yaml                  # foreground daemon (systemd service)
  * * * * * simian schedule /etc/simian/game-days.yaml --once   # from cron, every minute
  touch /tmp/simian-0/kill-switch                 # stop game days now

Exit codes with --once: the run's (0 held · 1 deviated · 2 aborted · 3 not run · 4 revert
failed); 0 when nothing was due; 3 for a bad schedule or when another run holds the lock.";

/// Help after `simian history --help`.
pub const HISTORY_HELP: &str = "\
Reads each run dir's run.json (a dir without one is listed as \"did not finish\", with its
journal for `simian recover`), and ends with a trend per experiment: the last verdicts
and whether the time to recover goes up or down.

Example:
  simian history game-days/";

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// The schedule file (YAML; see below).
    pub file: PathBuf,
    /// Run what is due now (cron: this minute; random: one draw) and exit. For cron,
    /// systemd timers and Kubernetes CronJobs: invoke it every minute.
    #[arg(long)]
    pub once: bool,
    /// Print the next due times of every experiment, and what blocks the others
    /// (window, blackout, min gap, kill switch). Runs nothing.
    #[arg(long, conflicts_with = "once")]
    pub dry_run: bool,
    /// With --dry-run: how many due times to show per experiment.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub next: usize,
    /// Seed for the random trigger; the same seed gives the same times (default: `seed:`
    /// in the file, else a fresh one).
    #[arg(long)]
    pub seed: Option<u64>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// A schedule's output dir (or any dir holding run dirs).
    pub dir: PathBuf,
}

/// `simian schedule`.
pub async fn schedule(args: ScheduleArgs, state_dir: &Path) -> i32 {
    let schedule = match crate::config::load(&args.file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return exit::NOT_RUN;
        }
    };
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot find the simian binary to run: {e}");
            return exit::NOT_RUN;
        }
    };
    let scheduler = Scheduler::new(schedule, state_dir, exe, args.seed);
    if args.dry_run {
        print!("{}", scheduler.dry_run(&SystemClock, args.next));
        return exit::OK;
    }
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot handle signals: {e}");
            return exit::NOT_RUN;
        }
    };
    if args.once {
        scheduler.once(&SystemClock, &mut signals).await
    } else {
        scheduler.daemon(&SystemClock, &mut signals).await
    }
}

/// `simian history`.
pub fn history(args: HistoryArgs) -> i32 {
    if !args.dir.is_dir() {
        eprintln!("error: {} is not a directory", args.dir.display());
        return exit::NOT_RUN;
    }
    match crate::history::scan(&args.dir) {
        Ok(runs) => {
            print!("{}", crate::history::render(&runs, &args.dir));
            exit::OK
        }
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", args.dir.display());
            exit::NOT_RUN
        }
    }
}
