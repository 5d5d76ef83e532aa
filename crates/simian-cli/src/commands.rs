//! What each subcommand does.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clap::CommandFactory;
use simian_engine::{EventKind, PrepareError, RunOptions};
use simian_experiment::{Diagnostic, Env, Loaded};
use simian_lab::LabState;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::vars::{RunProxies, Vars};
use crate::{exit, Cli, Command, ReportArgs, RunArgs, VarArgs};

pub async fn dispatch(cmd: Command, state_dir: PathBuf) -> i32 {
    match cmd {
        Command::Validate { files, vars } => validate(&files, &vars, &state_dir),
        Command::Plan { file, vars, seed } => plan(&file, &vars, seed, &state_dir).await,
        Command::Run(args) => run(args, &state_dir).await,
        Command::Recover { journal } => recover(&journal).await,
        Command::Abort { reason, clear } => abort(&reason, clear, &state_dir),
        Command::Guard(args) => crate::guardian::guard(args).await,
        Command::Continue { run } => crate::operator::continue_run(run.as_deref(), &state_dir),
        Command::Report(args) => report(&args),
        Command::Schedule(args) => simian_schedule::cli::schedule(args, &state_dir).await,
        Command::History(args) => simian_schedule::cli::history(args),
        Command::Lab { cmd } => report_err(simian_lab::cli::run(cmd, &state_dir).await),
        Command::Probe { cmd } => report_err(simian_probes::cli::run(cmd).await),
        Command::Proxy(args) => report_err(simian_proxy::cli::run(args).await),
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&simian_experiment::schema())
                    .expect("schema serializes")
            );
            exit::HELD
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "simian", &mut std::io::stdout());
            exit::HELD
        }
    }
}

fn report_err<E: std::fmt::Display>(r: Result<i32, E>) -> i32 {
    r.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        exit::NOT_RUN
    })
}

/// Parses `--var NAME=VALUE` flags; reports a bad one and returns None.
fn var_map(v: &VarArgs) -> Option<BTreeMap<String, String>> {
    let parsed: Result<BTreeMap<String, String>, String> = v
        .vars
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(format!(
                "invalid --var `{kv}`: expected NAME=VALUE, e.g. `--var rate=100`"
            )),
        })
        .collect();
    parsed.map_err(|e| eprintln!("error: {e}")).ok()
}

fn read(file: &Path) -> Result<String, i32> {
    std::fs::read_to_string(file).map_err(|e| {
        eprintln!("error: cannot read {}: {e}", file.display());
        exit::NOT_RUN
    })
}

fn load(file: &Path, source: &str, vars: &Vars) -> Result<Loaded, i32> {
    let var = |name: &str| vars.get(name);
    let check = |spec: &simian_experiment::ProbeSpec| simian_probes::check(spec);
    let env = Env {
        var: &var,
        check_probe: &check,
        check_netfilter: &simian_injectors::netfilter::check,
    };
    simian_experiment::load(&file.display().to_string(), source, &env).map_err(|diags| {
        print_diags(&diags, source);
        exit::NOT_RUN
    })
}

fn print_diags(diags: &[Diagnostic], source: &str) {
    let mut err = std::io::stderr().lock();
    for d in diags {
        let _ = writeln!(err, "{}", d.render(source));
    }
    let n = diags.len();
    let _ = writeln!(
        err,
        "{n} problem{} found; nothing was injected.",
        if n == 1 { "" } else { "s" }
    );
}

/// The running lab, if any; a lab whose supervisor died is reported, not silently ignored.
fn lab_state(state_dir: &Path) -> Option<LabState> {
    simian_lab::load(state_dir).unwrap_or_else(|e| {
        eprintln!("warning: {e}");
        None
    })
}

fn validate(files: &[PathBuf], vars: &VarArgs, state_dir: &Path) -> i32 {
    let Some(vars) = var_map(vars) else {
        return exit::NOT_RUN;
    };
    let lab = lab_state(state_dir);
    let resolve = Vars::new(&vars, lab.as_ref(), true);
    let mut code = exit::HELD;
    for f in files {
        match read(f).and_then(|source| load(f, &source, &resolve)) {
            Ok(l) => println!("ok: {} ({})", f.display(), l.experiment.name),
            Err(c) => code = c,
        }
    }
    code
}

async fn plan(file: &Path, vars: &VarArgs, seed: Option<u64>, state_dir: &Path) -> i32 {
    let Some(vars) = var_map(vars) else {
        return exit::NOT_RUN;
    };
    let source = match read(file) {
        Ok(s) => s,
        Err(c) => return c,
    };
    let lab = lab_state(state_dir);
    let mut resolve = Vars::new(&vars, lab.as_ref(), false);
    let proxies = match RunProxies::start(&source, &mut resolve).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::NOT_RUN;
        }
    };
    let code = match load(file, &source, &resolve) {
        Err(c) => c,
        Ok(loaded) => {
            let seed = seed.unwrap_or_else(fresh_seed);
            let lease = crate::DEFAULT_LEASE
                .parse::<simian_core::Dur>()
                .ok()
                .map(Into::into);
            let api = proxies.api();
            let planned = simian_engine::plan(&loaded, lab.as_ref(), api.as_deref(), seed, lease);
            match planned.await {
                Ok(planned) => {
                    print!("{}", crate::plan_view::render(&loaded, &planned, seed));
                    exit::HELD
                }
                Err(diags) => {
                    print_diags(&diags, &loaded.source);
                    exit::NOT_RUN
                }
            }
        }
    };
    proxies.stop().await;
    code
}

fn fresh_seed() -> u64 {
    let n = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    (n ^ (u64::from(std::process::id()) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15) % 1_000_000_000
}

async fn run(args: RunArgs, state_dir: &Path) -> i32 {
    let Some(vars) = var_map(&args.vars) else {
        return exit::NOT_RUN;
    };
    // Refuse bad input before starting anything, lab included.
    let source = match read(&args.file) {
        Ok(s) => s,
        Err(c) => return c,
    };
    if let Err(code) = load(&args.file, &source, &Vars::new(&vars, None, true)) {
        return code;
    }
    if !args.no_lease && args.lease.0 < Duration::from_secs(1) {
        eprintln!(
            "error: --lease {} is too short to renew reliably; nothing was injected\n  = hint: give at least 1s (the default is {}), or --no-lease",
            args.lease,
            crate::DEFAULT_LEASE
        );
        return exit::NOT_RUN;
    }
    let mut throwaway = false;
    let mut lab = lab_state(state_dir);
    if args.netns && lab.as_ref().is_some_and(|l| l.netns.is_none()) {
        eprintln!(
            "warning: a loopback lab already runs in {}; --netns applies only to a lab this run starts",
            state_dir.display()
        );
    }
    if args.lab && lab.is_none() {
        eprintln!("starting a throwaway lab in {} …", state_dir.display());
        let network = if args.netns {
            simian_lab::Network::Netns(None)
        } else {
            simian_lab::Network::Loopback
        };
        match simian_lab::up_with(state_dir, simian_lab::LabSpec::default(), network).await {
            Ok(l) => {
                lab = Some(l);
                throwaway = true;
            }
            Err(e) => {
                eprintln!("error: failed to start the lab: {e}");
                return exit::NOT_RUN;
            }
        }
    }
    let mut resolve = Vars::new(&vars, lab.as_ref(), false);
    let code = match RunProxies::start(&source, &mut resolve).await {
        Ok(proxies) => {
            let api = proxies.api();
            let code = run_loaded(&args, &source, &resolve, api, lab.as_ref(), state_dir).await;
            proxies.stop().await;
            code
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::NOT_RUN
        }
    };
    if throwaway {
        if let Err(e) = simian_lab::down(state_dir).await {
            eprintln!("warning: failed to take the throwaway lab down: {e}; run `simian lab down`");
        } else if !args.quiet {
            eprintln!("throwaway lab taken down");
        }
    }
    code
}

async fn run_loaded(
    args: &RunArgs,
    source: &str,
    vars: &Vars<'_>,
    run_proxy_api: Option<String>,
    lab: Option<&LabState>,
    state_dir: &Path,
) -> i32 {
    let loaded = match load(&args.file, source, vars) {
        Ok(l) => l,
        Err(c) => return c,
    };
    let cloud: Vec<&str> = loaded
        .faults
        .iter()
        .filter(|f| f.inject.is_cloud())
        .map(|f| f.name.as_str())
        .collect();
    // Leashed, nothing is changed: resolving the targets is read-only.
    if !cloud.is_empty() && !args.yes && !args.leashed && !loaded.experiment.guards.allow_cloud {
        eprintln!(
            "error: {} act on a cloud account; nothing was injected\n  = hint: check `simian plan {}` first, then pass `--yes` (or set `guards.allow_cloud: true`)",
            cloud.join(", "),
            args.file.display()
        );
        return exit::NOT_RUN;
    }
    if let Some(bad) = args
        .notify
        .iter()
        .find(|u| !simian_experiment::is_http_url(u))
    {
        eprintln!(
            "error: --notify `{bad}` is not an http(s) URL; nothing was injected\n  = hint: e.g. `--notify https://hooks.slack.com/services/T000/B000/XXXX`"
        );
        return exit::NOT_RUN;
    }
    let kill_switch = simian_schedule::kill::KillSwitch::new(
        simian_schedule::kill::KillSwitch::default_file(state_dir),
    );
    if let Some(why) = kill_switch.active() {
        eprintln!(
            "error: the kill switch is on ({why}): no run starts while it is; nothing was injected\n  = hint: `simian abort --clear` turns it off"
        );
        return exit::NOT_RUN;
    }
    if let Some(o) = &loaded.experiment.guards.outage_check {
        if let Err(why) = outage_check(o).await {
            eprintln!(
                "error: the outage check failed: {why}; nothing was injected\n  = hint: the run starts only when `guards.outage_check` passes (is an incident open?)"
            );
            return exit::NOT_RUN;
        }
    }
    if has_confirm(&loaded.experiment.method)
        && !args.yes
        && !args.remote_confirm
        && !crate::operator::interactive()
    {
        eprintln!(
            "error: {} has `confirm` steps, but this run is not interactive (no terminal to answer at); nothing was injected\n  = hint: pass `--yes` to confirm every step at once, `--remote-confirm` to wait for `simian continue RUN`, or run it from a terminal",
            args.file.display()
        );
        return exit::NOT_RUN;
    }
    let seed = args.seed.unwrap_or_else(fresh_seed);
    let journal = args.journal.clone().unwrap_or_else(|| {
        state_dir.join("runs").join(format!(
            "{}.jsonl",
            simian_engine::run_id(&loaded.experiment.name)
        ))
    });
    let source = loaded.source.clone();
    let probes = CancellationToken::new();
    let opts = RunOptions {
        journal: journal.clone(),
        seed,
        command_line: std::env::args().collect(),
        lab: lab.cloned(),
        run_proxy_api,
        tick: args.tick.0,
        leashed: args.leashed,
        lease: (!args.no_lease).then_some(args.lease.0),
    };
    let mut notices = crate::notices::Notices::new(
        loaded.experiment.notify.clone(),
        &args.notify,
        &loaded.experiment.name,
        &journal,
    );
    let (operator_tx, operator_rx) = mpsc::unbounded_channel();
    let mut prepared = match simian_engine::prepare(loaded, opts, &probes).await {
        Ok(p) => p,
        Err(PrepareError::Invalid(diags)) => {
            print_diags(&diags, &source);
            return exit::NOT_RUN;
        }
        Err(e) => {
            eprintln!("error: {e}; nothing was injected");
            probes.cancel();
            return exit::NOT_RUN;
        }
    };

    // Nothing is injected in a leashed run: it breaks nothing, so it needs no lock.
    let _locks = if args.leashed {
        None
    } else {
        let universes = prepared
            .faults
            .iter()
            .map(|p| p.fault.plan().universe.clone())
            .collect();
        let name = &prepared.loaded.experiment.name;
        match crate::locks::take(state_dir, &universes, name, &journal) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("error: {e}; nothing was injected");
                probes.cancel();
                // The run never started: no journal of it is left to confuse `recover`.
                let _ = std::fs::remove_file(&journal);
                return exit::NOT_RUN;
            }
        }
    };
    prepared.operator = Some(operator_rx);
    let guarded = (!args.no_guardian)
        .then(|| crate::guardian::Guarded::start(&journal, state_dir, args.heartbeat_timeout));
    let (abort_tx, abort_rx) = watch::channel(None::<String>);
    let journal_shown = journal.clone();
    let switch = {
        let abort_tx = abort_tx.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                if let Some(why) = kill_switch.active() {
                    let _ = abort_tx.send(Some(format!("kill switch ({why})")));
                    break;
                }
            }
        })
    };
    let signals = tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return;
        };
        let mut first = true;
        loop {
            let name = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            if first {
                let _ = abort_tx.send(Some(format!("{name} received")));
                first = false;
            } else {
                eprintln!("{name} again: still reverting; wait for it, or SIGKILL and `simian recover {}`", journal_shown.display());
            }
        }
    });
    let (tx, mut rx) = mpsc::unbounded_channel();
    let quiet = args.quiet;
    let (asking, yes) = (journal.clone(), args.yes);
    let printer = tokio::spawn(async move {
        let mut live = simian_report::console::Live::new(1000);
        let mut question: Option<CancellationToken> = None;
        while let Some(ev) = rx.recv().await {
            if !quiet {
                if let Some(line) = live.line(&ev) {
                    eprintln!("{line}");
                }
            }
            notices.on_event(&ev.kind);
            match &ev.kind {
                EventKind::AwaitingOperator { message, .. } => {
                    let done = CancellationToken::new();
                    crate::operator::ask(
                        asking.clone(),
                        message.clone(),
                        yes,
                        operator_tx.clone(),
                        done.clone(),
                    );
                    question = Some(done);
                }
                EventKind::Confirmed { .. }
                | EventKind::Aborting { .. }
                | EventKind::Finished { .. } => {
                    if let Some(done) = question.take() {
                        done.cancel();
                    }
                }
                _ => {}
            }
        }
        if let Some(done) = question.take() {
            done.cancel();
        }
        notices
    });
    let outcome = simian_engine::execute_guarded(prepared, abort_rx, tx).await;
    probes.cancel();
    signals.abort();
    switch.abort();
    if let Some(g) = guarded {
        g.stop().await;
    }
    let notices = printer.await.ok();
    let report = match outcome {
        simian_engine::Outcome::Finished(r) => r,
        simian_engine::Outcome::Panicked { message, recovered } => {
            eprintln!("error: the run failed unexpectedly ({message}); every fault was reverted from the journal");
            return match recovered {
                Ok(r) if r.failed.is_empty() => exit::ABORTED,
                _ => {
                    eprintln!(
                        "a revert failed: run `simian recover {}`",
                        journal.display()
                    );
                    exit::REVERT_FAILED
                }
            };
        }
    };
    if let Some(p) = &args.json {
        write_file(p, &simian_report::json(&report));
    }
    if let Some(p) = &args.junit {
        write_file(p, &simian_report::junit::render(&report));
    }
    if let Some(p) = &args.html {
        write_file(p, &simian_report::html::render(&report));
    }
    let markdown = simian_report::markdown::render(&report);
    if let Some(p) = &args.summary {
        write_file(p, &markdown);
    }
    if let Some(p) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        append_file(Path::new(&p), &markdown);
    }
    if let Some(n) = notices {
        n.finish(&report).await;
    }
    print!("{}", simian_report::console::summary(&report));
    report.exit_code
}

/// Chaos Monkey's outage checker: a command that exits 0, or a URL that answers 2xx.
async fn outage_check(o: &simian_experiment::OutageCheck) -> Result<(), String> {
    if let Some(url) = &o.url {
        return simian_notify::check_url(url, o.timeout.0).await;
    }
    let Some(run) = &o.run else { return Ok(()) };
    let child = tokio::process::Command::new("sh")
        .args(["-c", run])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(o.timeout.0, child).await {
        Err(_) => Err(format!("`{run}` did not finish within {}", o.timeout)),
        Ok(Err(e)) => Err(format!("cannot run `{run}`: {e}")),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => {
            let said = String::from_utf8_lossy(&out.stderr);
            let said = said.trim();
            Err(format!(
                "`{run}` exited {}{}",
                out.status
                    .code()
                    .map_or("by a signal".into(), |c| c.to_string()),
                if said.is_empty() {
                    String::new()
                } else {
                    format!(": {said}")
                }
            ))
        }
    }
}

/// `simian abort`: the kill switch on (or off with `--clear`).
fn abort(reason: &str, clear: bool, state_dir: &Path) -> i32 {
    let file = simian_schedule::kill::KillSwitch::default_file(state_dir);
    if clear {
        return match std::fs::remove_file(&file) {
            Ok(()) => {
                println!(
                    "kill switch off ({} removed): runs may start",
                    file.display()
                );
                exit::HELD
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                println!("kill switch already off (no {})", file.display());
                exit::HELD
            }
            Err(e) => {
                eprintln!("error: cannot remove {}: {e}", file.display());
                exit::NOT_RUN
            }
        };
    }
    let _ = std::fs::create_dir_all(state_dir);
    let text = format!(
        "{reason}\nby {} at {}\n",
        simian_engine::user(),
        humantime::format_rfc3339_seconds(SystemTime::now())
    );
    if let Err(e) = std::fs::write(&file, text) {
        eprintln!("error: cannot write {}: {e}", file.display());
        return exit::NOT_RUN;
    }
    println!(
        "kill switch on ({}): running experiments revert and exit 2 within a second; none starts until `simian abort --clear`",
        file.display()
    );
    exit::HELD
}

fn has_confirm(steps: &[simian_experiment::Step]) -> bool {
    use simian_experiment::Step;
    steps.iter().any(|s| match s {
        Step::Confirm(_) => true,
        Step::Parallel(inner) => has_confirm(inner),
        _ => false,
    })
}

fn write_file(path: &Path, text: &str) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(path, text) {
        eprintln!("warning: cannot write {}: {e}", path.display());
    }
}

/// Appends, as GitHub wants for `$GITHUB_STEP_SUMMARY` (each step adds its part).
fn append_file(path: &Path, text: &str) {
    use std::io::Write as _;
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(format!("{text}\n").as_bytes()));
    if let Err(e) = appended {
        eprintln!("warning: cannot append to {}: {e}", path.display());
    }
}

/// `simian report FILE`: a finished run's reports again, from its `--json` or its journal.
fn report(args: &ReportArgs) -> i32 {
    let text = match read(&args.file) {
        Ok(t) => t,
        Err(c) => return c,
    };
    let report = match load_report(&args.file, &text) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::NOT_RUN;
        }
    };
    type Render = fn(&simian_engine::RunReport) -> String;
    let outputs: [(&Option<PathBuf>, Render); 4] = [
        (&args.html, simian_report::html::render),
        (&args.summary, simian_report::markdown::render),
        (&args.junit, simian_report::junit::render),
        (&args.json, simian_report::json),
    ];
    let mut code = exit::HELD;
    let mut wrote = false;
    for (path, render) in outputs {
        let Some(p) = path else { continue };
        wrote = true;
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        match std::fs::write(p, render(&report)) {
            Ok(()) => eprintln!("wrote {}", p.display()),
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", p.display());
                code = exit::NOT_RUN;
            }
        }
    }
    if !wrote {
        print!("{}", simian_report::console::summary(&report));
    }
    code
}

/// A `--json` report, or the report a finished run's journal ends with.
fn load_report(file: &Path, text: &str) -> Result<simian_engine::RunReport, String> {
    let shown = file.display();
    // A journal line has a `type`; a one-line journal is JSON too.
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) if v.get("type").is_none() => {
            return serde_json::from_value(v).map_err(|e| {
                format!("{shown} is JSON, but not a report of `simian run --json`: {e}")
            })
        }
        _ => {}
    }
    let read = simian_engine::journal::read(file).map_err(|e| match e {
        simian_engine::journal::JournalError::NotJournal { .. } => {
            format!("{shown} is neither a report of `simian run --json` nor a run journal")
        }
        e => format!("failed to {e}"),
    })?;
    if read.unreadable > 0 {
        eprintln!(
            "note: {} unreadable line(s) of {shown} skipped",
            read.unreadable
        );
    }
    simian_engine::journal::report(&read.entries).ok_or_else(|| {
        format!(
            "the run did not finish: no report in {shown}; `simian recover {shown}` reverts what it left"
        )
    })
}

async fn recover(journal: &Path) -> i32 {
    match simian_engine::recover(journal).await {
        Err(e) => {
            eprintln!("error: failed to {e}");
            exit::NOT_RUN
        }
        Ok(r) => {
            if let Some(pid) = r.still_running {
                eprintln!("warning: the run (pid {pid}) still seems to be running; its faults are reverted anyway");
            }
            if r.unreadable_lines > 0 {
                eprintln!(
                    "note: {} unreadable line(s) skipped (a line torn by a crash is expected)",
                    r.unreadable_lines
                );
            }
            if r.reverted.is_empty() && r.failed.is_empty() {
                println!("{}: nothing to revert", r.run_id);
            }
            for (fault, actions) in &r.reverted {
                println!(
                    "reverted {fault}: {}",
                    if actions.is_empty() {
                        "nothing left to do".into()
                    } else {
                        actions.join(", ")
                    }
                );
            }
            for (fault, e) in &r.failed {
                println!("FAILED to revert {fault}: {e}");
            }
            if r.failed.is_empty() {
                exit::HELD
            } else {
                exit::REVERT_FAILED
            }
        }
    }
}
