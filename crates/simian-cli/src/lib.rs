//! The simian command line: parse arguments, build the runtime, map outcomes to exit codes.
#![forbid(unsafe_code)]

mod commands;
mod guardian;
mod locks;
mod notices;
mod operator;
mod plan_view;
mod vars;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Exit codes: a public contract for CI gates.
pub mod exit {
    /// The hypothesis held before, during and after the method.
    pub const HELD: i32 = 0;
    /// The hypothesis broke during or after the method.
    pub const DEVIATED: i32 = 1;
    /// A stop condition, a signal or max_duration ended the run; faults were reverted.
    pub const ABORTED: i32 = 2;
    /// Invalid experiment, system not steady before, or refused by a guard; nothing injected.
    pub const NOT_RUN: i32 = 3;
    /// A revert failed: something may still be broken.
    pub const REVERT_FAILED: i32 = 4;
}

const EXIT_CODES: &str = "Exit codes:
  0  the hypothesis held before, during and after the method
  1  the hypothesis deviated during or after the method
  2  aborted: a stop condition tripped, a signal, or max_duration; every fault reverted
  3  not run: invalid experiment, system not steady before, or a guard refused
  4  a revert failed: something may still be broken; see `simian recover`";

#[derive(Debug, Parser)]
#[command(
    name = "simian",
    version,
    about = "Chaos experiments from YAML: break things on purpose, judge by steady state, put everything back.",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Where the lab and run journals keep their state.
    #[arg(long, global = true, env = "SIMIAN_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check experiment files; every problem is reported with file:line:column.
    #[command(after_help = "Example:\n  simian validate scenarios/*.yaml")]
    Validate {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        #[command(flatten)]
        vars: VarArgs,
    },
    /// Dry run: resolve targets and print exactly what would be done. Injects nothing.
    #[command(
        after_help = "Example:\n  simian lab up && simian plan scenarios/chaos-gorilla.yaml"
    )]
    Plan {
        file: PathBuf,
        #[command(flatten)]
        vars: VarArgs,
        /// Seed for random target selection (a run with the same seed picks the same targets).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Run an experiment: measure, inject, judge, revert.
    #[command(after_help = concat!(
        "Examples:\n",
        "  simian run --lab scenarios/chaos-gorilla.yaml\n",
        "  simian run scenarios/chaos-gorilla.yaml --var zone=us-west-b --junit out.xml\n\n",
        "Exit codes:\n",
        "  0 held · 1 deviated · 2 aborted (reverted) · 3 not run · 4 revert failed"
    ))]
    Run(RunArgs),
    /// Revert every fault a journal shows applied and not yet reverted (after a crash or SIGKILL).
    #[command(
        after_help = "Safe to run more than once.\nExample:\n  simian recover /tmp/simian-0/runs/20261122T101500Z-chaos-gorilla-3f2a.jsonl"
    )]
    Recover { journal: PathBuf },
    /// Turn the kill switch on: every run on this machine (same state dir) reverts at
    /// once and exits 2, and no new run or scheduled game day starts while it is on.
    #[command(after_help = concat!(
        "The switch is the file STATE_DIR/kill-switch (or SIMIAN_KILL_SWITCH set in a run's\n",
        "environment); `touch` works as well as this command.\n",
        "Examples:\n  simian abort --reason \"checkout errors, stopping the game day\"\n  simian abort --clear"
    ))]
    Abort {
        /// Why, for the people who see the runs stop.
        #[arg(long, default_value = "simian abort")]
        reason: String,
        /// Turn the switch off again: runs may start.
        #[arg(long, conflicts_with = "reason")]
        clear: bool,
    },
    /// The dead-man's switch of one run (started by `simian run` itself).
    #[command(hide = true)]
    Guard(guardian::GuardArgs),
    /// Answer a run's `confirm` step: the operator's go-ahead for its next step.
    #[command(after_help = concat!(
        "RUN is the run's id (its journal's name in STATE_DIR/runs) or its journal's path;\n",
        "without it, the one run waiting for an operator.\n",
        "Example:\n  simian continue 20261122T101500Z-gameday-3f2a"
    ))]
    Continue {
        #[arg(value_name = "RUN")]
        run: Option<String>,
    },
    /// Render a finished run's reports again, from its `--json` report or its journal.
    #[command(after_help = concat!(
        "FILE is the JSON that `simian run --json` wrote, or the run's journal (its report is\n",
        "the journal's last entries). A journal of a run that did not finish (SIGKILLed) has\n",
        "no report: `simian recover JOURNAL` reverts what it left.\n\n",
        "Examples:\n",
        "  simian report run.json --html run.html\n",
        "  simian report STATE_DIR/runs/RUN_ID.jsonl --html run.html --junit junit.xml\n\n",
        "Exit codes: 0 written · 3 FILE is not a report or a finished run's journal, or an output cannot be written"
    ))]
    Report(ReportArgs),
    /// Run game days on a schedule: cron or random times inside windows, one run at a time,
    /// with blackout days, a minimum gap and a kill switch.
    #[command(after_help = simian_schedule::cli::SCHEDULE_HELP)]
    Schedule(simian_schedule::cli::ScheduleArgs),
    /// List past scheduled runs: verdict, exit code, duration, time to recover, trends.
    #[command(after_help = simian_schedule::cli::HISTORY_HELP)]
    History(simian_schedule::cli::HistoryArgs),
    /// Run the embedded lab: a small active-active service to break.
    Lab {
        #[command(subcommand)]
        cmd: simian_lab::cli::LabCommand,
    },
    /// Run one probe ad hoc and print its metrics.
    Probe {
        #[command(subcommand)]
        cmd: simian_probes::cli::ProbeCommand,
    },
    /// Run the fault proxy: the Toxiproxy HTTP API, with latency from real distributions.
    Proxy(simian_proxy::cli::ProxyArgs),
    /// Print the JSON Schema of the experiment format (for editors).
    #[command(
        after_help = "Example (VS Code YAML extension):\n  simian schema > simian.schema.json\n  # then in the experiment: # yaml-language-server: $schema=./simian.schema.json"
    )]
    Schema,
    /// Print shell completions.
    #[command(after_help = "Example:\n  simian completions bash > /etc/bash_completion.d/simian")]
    Completions { shell: clap_complete::Shell },
}

/// `run --lease`'s default; what `simian plan` shows.
pub const DEFAULT_LEASE: &str = "60s";

#[derive(Debug, Args, Clone, Default)]
pub struct VarArgs {
    /// Set a variable used as `${NAME}` in the experiment (repeatable). Also read: `lab.*` from a running lab, then the environment.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run's `--json` report, or its journal (`STATE_DIR/runs/RUN_ID.jsonl`).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Write the self-contained HTML report here.
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
    /// Write the Markdown summary here.
    #[arg(long, value_name = "PATH")]
    pub summary: Option<PathBuf>,
    /// Write the JUnit XML report here.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Write the whole run as JSON here (what `run --json` writes; from a journal, too).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    pub file: PathBuf,
    #[command(flatten)]
    pub vars: VarArgs,
    /// Where to write the journal (default: STATE_DIR/runs/RUN_ID.jsonl).
    #[arg(long, value_name = "PATH")]
    pub journal: Option<PathBuf>,
    /// Write a JUnit XML report here.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    /// Write the whole run as JSON here.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Write a Markdown summary here, for CI pages. When `GITHUB_STEP_SUMMARY` is set
    /// (GitHub Actions), the summary is also appended to that file.
    #[arg(long, value_name = "PATH")]
    pub summary: Option<PathBuf>,
    /// Write a self-contained HTML report here (one file, nothing fetched, opens offline):
    /// the verdict, every assertion, the faults, and a timeline chart per probe metric
    /// with the fault windows, baseline, bounds and time to detect and recover marked.
    /// `simian report JOURNAL --html PATH` renders it again later.
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
    /// POST to this webhook when the run starts, aborts and ends (repeatable), besides the
    /// experiment's `notify:` list. Slack bodies for hooks.slack.com, generic JSON otherwise.
    #[arg(long, value_name = "URL")]
    pub notify: Vec<String>,
    /// Seed for random target selection; recorded in the journal so a run can be replayed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Start a throwaway lab for this run (unless one is running) and take it down afterwards.
    #[arg(long)]
    pub lab: bool,
    /// Say yes up front: allow faults on cloud accounts (AWS; without it, or
    /// `guards.allow_cloud: true`, such a run refuses to start), and answer every
    /// `confirm` step at once (a run that is not interactive refuses them without it).
    #[arg(long)]
    pub yes: bool,
    /// Run without the guardian, the detached process that reverts this run's faults
    /// from the journal if the runner dies or hangs (then only `simian recover` can).
    #[arg(long, env = "SIMIAN_NO_GUARDIAN", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_guardian: bool,
    /// The guardian takes a runner silent for this long for dead (hung, or the machine
    /// suspended): it kills it and reverts.
    #[arg(long, default_value = "15s", value_name = "DURATION")]
    pub heartbeat_timeout: simian_core::Dur,
    /// The second line behind the guardian: where a backend can expire a fault by itself
    /// (nftables set timeouts; `simian proxy` toxics and disables), the fault is set to end
    /// this long after the runner last renewed it (every third of it). A runner that dies
    /// with no guardian leaves nothing in force past it; `simian recover` then tidies up.
    #[arg(long, default_value = DEFAULT_LEASE, value_name = "DURATION", conflicts_with = "no_lease")]
    pub lease: simian_core::Dur,
    /// Faults never expire by themselves (only the run, the guardian or `simian recover`
    /// undo them).
    #[arg(long)]
    pub no_lease: bool,
    /// Answer `confirm` steps only with `simian continue RUN`, for runs without a
    /// terminal (scheduled, under systemd or nohup) that people still watch.
    #[arg(long, conflicts_with = "yes")]
    pub remote_confirm: bool,
    /// Chaos Monkey's leashed mode: resolve targets, run the probes and judge the
    /// hypothesis, and log every action (inject, revert, each evacuation step) at the time
    /// it would be taken, without injecting anything. Nothing is changed, so cloud faults
    /// need no `--yes`; the journal records no intents, so there is nothing to recover.
    #[arg(long)]
    pub leashed: bool,
    /// With --lab: start it with `lab up --netns` (root): regions in network namespaces,
    /// so `split` drops real packets between them.
    #[arg(long, requires = "lab")]
    pub netns: bool,
    /// Only print the summary, not progress.
    #[arg(long, short)]
    pub quiet: bool,
    /// How often the hypothesis and stop conditions are judged.
    #[arg(long, default_value = "250ms", value_name = "DURATION", hide = true)]
    pub tick: simian_core::Dur,
}

/// The default state directory: `$XDG_RUNTIME_DIR/simian`, else `/tmp/simian-UID`.
pub fn default_state_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("simian"),
        _ => std::env::temp_dir().join(format!("simian-{}", nix::unistd::getuid())),
    }
}

pub fn main() -> i32 {
    let cli = Cli::parse();
    let state_dir = cli.state_dir.clone().unwrap_or_else(default_state_dir);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: failed to start the runtime: {e}");
            return exit::NOT_RUN;
        }
    };
    rt.block_on(commands::dispatch(cli.command, state_dir))
}
