//! Semantic checks on a well-typed experiment: names, assertions, method
//! structure, reversibility and guards. Every problem is recorded.

use std::collections::BTreeSet;
use std::time::Duration;

use simian_core::Pick;

use crate::assertion::Assertion;
use crate::diag::did_you_mean;
use crate::load::{Ctx, Env, FaultSite};
use crate::model::*;
use crate::tree::{Node, Path};

const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(30 * 60);

/// The default `guards.max_duration`.
pub fn max_duration(e: &Experiment) -> Duration {
    e.guards.max_duration.map_or(DEFAULT_MAX_DURATION, |d| d.0)
}

/// The parsed assertions and faults of a valid experiment.
pub(crate) struct Checked {
    pub hypothesis: Vec<Assertion>,
    pub recovery: Vec<Assertion>,
    pub stop_when: Vec<Assertion>,
    pub faults: Vec<FaultSite>,
}

pub(crate) fn validate(ctx: &mut Ctx, e: &Experiment, env: &Env) -> Checked {
    let root = Path::default();
    if e.version != 1 {
        ctx.at(
            &root.key("version"),
            format!("unsupported format version {}", e.version),
            Some("this simian reads `version: 1`".into()),
        );
    }
    if e.name.trim().is_empty() {
        ctx.at(
            &root.key("name"),
            "the name is empty",
            Some("name the experiment, e.g. `chaos-gorilla-us-east`".into()),
        );
    }

    for (i, n) in e.notify.iter().enumerate() {
        notify(ctx, n, &root.key("notify").index(i));
    }

    let ss = root.key("steady_state");
    if e.steady_state.probes.is_empty() {
        ctx.at_key(
            &ss.key("probes"),
            "no probes",
            Some(
                "add a probe, e.g. `users: { http: { url: \"${lab.us-east.edge}/play\" } }`".into(),
            ),
        );
    }
    for (name, spec) in &e.steady_state.probes {
        let at = ss.key("probes").key(name);
        if !valid_name(name) {
            ctx.at_key(
                &at,
                format!("invalid probe name `{name}`"),
                Some("use letters, digits, `_` and `-`, starting with a letter".into()),
            );
        }
        // A probe with an undefined variable was already reported; checking it would only echo that.
        let problems = if ctx.undefined_vars {
            Vec::new()
        } else {
            (env.check_probe)(spec)
        };
        for problem in problems {
            let kind = at.key(spec.kind());
            ctx.at(&kind, problem, None);
        }
    }
    for (key, d) in [
        ("before", e.steady_state.before),
        ("after", e.steady_state.after),
        ("window", e.steady_state.window),
    ] {
        if d.0.is_zero() {
            ctx.at(
                &ss.key(key),
                format!("`{key}` must be longer than 0s"),
                Some("e.g. `5s`".into()),
            );
        }
    }
    if e.steady_state.hypothesis.is_empty() {
        ctx.at_key(
            &ss.key("hypothesis"),
            "the hypothesis is empty",
            Some("assert something, e.g. `users.success_ratio >= 99%`".into()),
        );
    }
    let probes: Vec<(&str, Option<&str>)> = e
        .steady_state
        .probes
        .iter()
        .map(|(name, spec)| (name.as_str(), Some(spec.kind())))
        .collect();
    let hypothesis = assertions(
        ctx,
        &probes,
        &e.steady_state.hypothesis,
        &ss.key("hypothesis"),
    );
    let recovery = assertions(ctx, &probes, &e.steady_state.recovery, &ss.key("recovery"));
    let stop_when = assertions(ctx, &probes, &e.stop_when, &root.key("stop_when"));

    if e.method.is_empty() {
        ctx.at_key(&root.key("method"), "the method has no steps", Some("add a step, e.g. `- inject: { process: { target: { lab: { zone: us-east-a } } } }`".into()));
    }
    let mut faults = Vec::new();
    let mut names = BTreeSet::new();
    steps(
        ctx,
        e,
        env,
        &e.method,
        &root.key("method"),
        &mut faults,
        &mut names,
    );

    if let Some(Pick::Count(0)) | Some(Pick::Percent(simian_core::Percent(0.0))) =
        e.guards.max_blast_radius
    {
        ctx.at(
            &root.key("guards").key("max_blast_radius"),
            "a blast radius of 0 allows no fault at all",
            Some("give a count or percent above 0".into()),
        );
    }
    if let Some(Pick::Count(max)) = e.guards.max_blast_radius {
        for f in &faults {
            if let Some(ProcessFault {
                pick: Pick::Count(n),
                ..
            }) = &f.inject.process
            {
                if *n > max {
                    let at = f.path.key("inject").key("process").key("pick");
                    ctx.at(&at, format!("`{}` picks {n} targets, over the guard's max_blast_radius of {max}", f.name), Some("lower `pick`, or raise `guards.max_blast_radius` if that blast radius is intended".into()));
                }
            }
        }
    }
    if let Some(o) = &e.guards.outage_check {
        let at = root.key("guards").key("outage_check");
        match (&o.run, &o.url) {
            (Some(_), Some(_)) | (None, None) => ctx.at(
                &at,
                "an outage check is either `run` (a command) or `url` (a GET)",
                Some("e.g. `outage_check: { run: \"./no-open-incident.sh\" }`".into()),
            ),
            (None, Some(u)) if !is_http_url(u) => ctx.at(
                &at.key("url"),
                format!("`{u}` is not an http(s) URL"),
                Some("e.g. `https://status.example.com/api/healthy`".into()),
            ),
            _ => {}
        }
    }
    let max = max_duration(e);
    if let Some(d) = e.guards.max_duration {
        if d.0.is_zero() {
            ctx.at(
                &root.key("guards").key("max_duration"),
                "`max_duration` must be longer than 0s",
                None,
            );
        }
    }
    let least = e.steady_state.before.0
        + method_time(&e.method)
        + e.steady_state.settle.0
        + e.steady_state.after.0;
    if least > max && !max.is_zero() {
        let at = if e.guards.max_duration.is_some() {
            root.key("guards").key("max_duration")
        } else {
            root.key("method")
        };
        ctx.at(
            &at,
            format!(
                "the run needs at least {} but max_duration is {}",
                simian_core::Dur(least),
                simian_core::Dur(max)
            ),
            Some("raise `guards.max_duration` or shorten the waits".into()),
        );
    }
    Checked {
        hypothesis,
        recovery,
        stop_when,
        faults,
    }
}

fn valid_name(n: &str) -> bool {
    n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Checks the hypothesis and stop conditions alone, for when other sections did not parse.
pub(crate) fn assertions_only(
    ctx: &mut Ctx,
    probes: &[String],
    hypothesis: &[String],
    recovery: &[String],
    stop_when: &[String],
) {
    let root = Path::default();
    let probes: Vec<(&str, Option<&str>)> = probes.iter().map(|p| (p.as_str(), None)).collect();
    assertions(
        ctx,
        &probes,
        hypothesis,
        &root.key("steady_state").key("hypothesis"),
    );
    assertions(
        ctx,
        &probes,
        recovery,
        &root.key("steady_state").key("recovery"),
    );
    assertions(ctx, &probes, stop_when, &root.key("stop_when"));
}

/// Checks assertion texts against the probes `known`: (name, kind if known).
fn assertions(
    ctx: &mut Ctx,
    known: &[(&str, Option<&str>)],
    texts: &[String],
    at: &Path,
) -> Vec<Assertion> {
    let names: Vec<&str> = known.iter().map(|k| k.0).collect();
    let mut out = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let path = at.index(i);
        let node = ctx.tree.walk(&path.0);
        let (pos, quoted, single) = match node {
            Node::Scalar {
                pos, quoted, text, ..
            } => (*pos, *quoted, !text.contains('\n')),
            n => (n.pos(), false, false),
        };
        let place = |offset: usize| {
            let mut p = pos;
            if single {
                p.col += offset + usize::from(quoted);
            }
            p
        };
        match Assertion::parse(text) {
            Err(err) => ctx.push(place(err.offset), err.width, err.message, err.hint),
            Ok(a) => {
                let offset = text.len() - text.trim_start().len();
                let kind = known.iter().find(|k| k.0 == a.probe).map(|k| k.1);
                let wrong_kind = match (kind, a.metric.only_from()) {
                    (Some(Some(kind)), Some(only)) if kind != only => Some((kind, only)),
                    _ => None,
                };
                if kind.is_none() {
                    let hint = match did_you_mean(&a.probe, names.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None if names.is_empty() => {
                            "define probes under `steady_state.probes`".to_string()
                        }
                        None => format!("probes are {}", names.join(", ")),
                    };
                    ctx.push(
                        place(offset),
                        a.probe.len(),
                        format!("no probe named `{}`", a.probe),
                        Some(hint),
                    );
                } else if let Some((kind, only)) = wrong_kind {
                    let gauges: Vec<&str> = simian_core::Metric::GAUGES
                        .iter()
                        .filter(|m| m.only_from() == Some(only))
                        .map(|m| m.name())
                        .collect();
                    ctx.push(
                        place(offset + a.probe.len() + 1),
                        a.metric.name().len(),
                        format!("probe `{}` ({kind}) has no metric `{}`", a.probe, a.metric),
                        Some(format!("{} come from `{only}` probes", gauges.join(", "))),
                    );
                } else {
                    out.push(a);
                }
            }
        }
    }
    out
}

fn steps(
    ctx: &mut Ctx,
    e: &Experiment,
    env: &Env,
    list: &[Step],
    at: &Path,
    faults: &mut Vec<FaultSite>,
    names: &mut BTreeSet<String>,
) {
    for (i, step) in list.iter().enumerate() {
        let path = at.index(i);
        match step {
            Step::Wait(_) => {}
            Step::Confirm(c) => {
                let at = path.key("confirm");
                if c.message.trim().is_empty() {
                    ctx.at(
                        &at.key("message"),
                        "the message is empty",
                        Some("say what the operator checks before going on, e.g. `dashboards green?`".into()),
                    );
                }
                if c.timeout.0.is_zero() {
                    ctx.at(
                        &at.key("timeout"),
                        "a timeout of 0 aborts at once",
                        Some("give the operator time, e.g. `timeout: 10m`".into()),
                    );
                }
            }
            Step::Evacuate(ev) => {
                let at = path.key("evacuate");
                let name = ev
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("evacuate-{}", faults.len() + 1));
                if ev.name.as_ref().is_some_and(|n| !valid_name(n)) {
                    ctx.at(
                        &at.key("name"),
                        format!("invalid name `{name}`"),
                        Some("use letters, digits, `_` and `-`".into()),
                    );
                }
                if !names.insert(name.clone()) {
                    ctx.at(
                        &at.key("name"),
                        format!("two faults are named `{name}`"),
                        Some("give each step its own name".into()),
                    );
                }
                evacuate(ctx, ev, &at);
                faults.push(FaultSite {
                    name: name.clone(),
                    path: path.clone(),
                    inject: Inject {
                        name: Some(name),
                        shift: Some(ShiftFault {
                            from: ev.from.clone(),
                            to: ev.to.clone(),
                            // The plan shows the furthest the ramp goes.
                            percent: ev.shares().last().map(|s| simian_core::Percent(*s)),
                            via: ev.via.clone(),
                        }),
                        ..Inject::default()
                    },
                });
            }
            Step::Parallel(inner) => {
                if inner.is_empty() {
                    ctx.at(
                        &path.key("parallel"),
                        "an empty `parallel` group",
                        Some("list the steps to run at once".into()),
                    );
                }
                steps(ctx, e, env, inner, &path.key("parallel"), faults, names);
            }
            Step::Revert(name) => {
                if !names.contains(name) {
                    let hint = match did_you_mean(name, names.iter().map(String::as_str)) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "`revert` names an `inject` step that comes before it".to_string(),
                    };
                    ctx.at(
                        &path.key("revert"),
                        format!("no fault named `{name}` is injected before this step"),
                        Some(hint),
                    );
                }
            }
            Step::Inject(inj) => {
                let at = path.key("inject");
                let name = inj
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("{}-{}", backend(inj), faults.len() + 1));
                if let Some(n) = &inj.name {
                    if !valid_name(n) {
                        ctx.at(
                            &at.key("name"),
                            format!("invalid fault name `{n}`"),
                            Some("use letters, digits, `_` and `-`".into()),
                        );
                    }
                }
                if !names.insert(name.clone()) {
                    ctx.at(
                        &at.key("name"),
                        format!("two faults are named `{name}`"),
                        Some("give each `inject` its own name".into()),
                    );
                }
                if let Some(d) = inj.duration {
                    if d.0.is_zero() {
                        ctx.at(
                            &at.key("duration"),
                            "`duration` must be longer than 0s",
                            None,
                        );
                    }
                }
                let given: Vec<&str> = [
                    ("process", inj.process.is_some()),
                    ("latency", inj.latency.is_some()),
                    ("sever", inj.sever.is_some()),
                    ("netfilter", inj.netfilter.is_some()),
                    ("split", inj.split.is_some()),
                    ("shift", inj.shift.is_some()),
                    ("aws_ec2", inj.aws_ec2.is_some()),
                    ("aws_nacl", inj.aws_nacl.is_some()),
                ]
                .into_iter()
                .filter_map(|(k, set)| set.then_some(k))
                .collect();
                match given.as_slice() {
                    [] => ctx.at_key(
                        &at,
                        "this `inject` names no fault",
                        Some(
                            "add a backend key: `process`, `latency`, `sever`, `netfilter`, `split`, `shift`, `aws_ec2` or `aws_nacl`"
                                .into(),
                        ),
                    ),
                    [_] => {}
                    [_, second, ..] => ctx.at_key(
                        &at.key(second),
                        "one `inject` step injects one fault",
                        Some(format!(
                            "split {} into separate steps (a `parallel` group runs them at once)",
                            given.join(", ")
                        )),
                    ),
                }
                if let Some(p) = &inj.process {
                    process(ctx, e, p, &at.key("process"));
                }
                if let Some(a) = &inj.aws_ec2 {
                    aws_ec2(ctx, e, a, &at.key("aws_ec2"));
                }
                if let Some(n) = &inj.aws_nacl {
                    aws_nacl(ctx, n, &at.key("aws_nacl"));
                }
                if let Some(s) = &inj.shift {
                    shifter(ctx, &s.via, &s.from, &s.to, &at.key("shift").key("via"));
                }
                if let Some(l) = &inj.latency {
                    latency(ctx, e, l, &at.key("latency"));
                }
                if let Some(n) = &inj.netfilter {
                    for problem in (env.check_netfilter)(n) {
                        ctx.at(&at.key("netfilter"), problem, None);
                    }
                }
                if let Some(s) = &inj.split {
                    let mut regions = s.regions.clone();
                    regions.dedup();
                    if regions.len() != 2 {
                        ctx.at(
                            &at.key("split").key("regions"),
                            "a split names two different regions",
                            Some("e.g. `regions: [us-east, us-west]`".into()),
                        );
                    }
                }
                if let Some(s) = &inj.sever {
                    if s.proxies.is_empty() {
                        ctx.at(
                            &at.key("sever").key("proxies"),
                            "no proxies to cut",
                            Some("name them, e.g. `[repl-us-east-us-west]`".into()),
                        );
                    }
                    if !s.api.starts_with("http://") {
                        ctx.at(
                            &at.key("sever").key("api"),
                            format!("`{}` is not an http:// address", s.api),
                            Some("e.g. `${lab.proxy}`".into()),
                        );
                    }
                }
                faults.push(FaultSite {
                    name,
                    path,
                    inject: (**inj).clone(),
                });
            }
        }
    }
}

/// The ramp: its steps, timings and regions.
fn evacuate(ctx: &mut Ctx, ev: &Evacuate, at: &Path) {
    match (&ev.steps, ev.by) {
        (Some(_), Some(_)) => ctx.at(
            &at.key("by"),
            "give `steps` or `by`, not both",
            Some("`steps: [10%, 50%, 100%]` or `by: 25%`".into()),
        ),
        (None, None) => ctx.at_key(
            at,
            "an evacuation needs its steps",
            Some("add `steps: [10%, 25%, 50%, 100%]` or `by: 25%`".into()),
        ),
        (None, Some(by)) if by.fraction() <= 0.0 || by.fraction() > 1.0 => ctx.at(
            &at.key("by"),
            "`by` must be more than 0% and at most 100%",
            None,
        ),
        (Some(steps), None) => {
            let shares: Vec<f64> = steps.iter().map(|p| p.fraction()).collect();
            if shares.is_empty() {
                ctx.at(
                    &at.key("steps"),
                    "no steps",
                    Some("e.g. `[25%, 50%, 100%]`".into()),
                );
            } else if shares.windows(2).any(|w| w[1] <= w[0])
                || shares.iter().any(|s| *s <= 0.0 || *s > 1.0)
            {
                ctx.at(
                    &at.key("steps"),
                    "steps must rise, each above 0% and at most 100%",
                    Some("e.g. `[10%, 25%, 50%, 100%]`".into()),
                );
            }
        }
        _ => {}
    }
    if ev.every.0.is_zero() {
        ctx.at(
            &at.key("every"),
            "`every` must be longer than 0s",
            Some("e.g. `30s`".into()),
        );
    }
    shifter(ctx, &ev.via, &ev.from, &ev.to, &at.key("via"));
    if ev.from == ev.to {
        ctx.at(
            &at.key("to"),
            format!("`from` and `to` are both `{}`", ev.from),
            Some("traffic moves from one region to another".into()),
        );
    }
}

fn backend(inj: &Inject) -> &'static str {
    if inj.process.is_some() {
        "process"
    } else if inj.latency.is_some() {
        "latency"
    } else if inj.sever.is_some() {
        "sever"
    } else if inj.netfilter.is_some() {
        "netfilter"
    } else if inj.split.is_some() {
        "split"
    } else if inj.shift.is_some() {
        "shift"
    } else if inj.aws_ec2.is_some() {
        "aws_ec2"
    } else if inj.aws_nacl.is_some() {
        "aws_nacl"
    } else {
        "fault"
    }
}

fn latency(ctx: &mut Ctx, e: &Experiment, l: &LatencyFault, at: &Path) {
    match &l.api {
        Some(api) if !(api.starts_with("http://") && api.len() > "http://".len()) => {
            ctx.at(
                &at.key("api"),
                format!("`{api}` is not an http:// address"),
                Some("e.g. `${lab.proxy}` or `http://127.0.0.1:8474`".into()),
            );
        }
        Some(_) => {}
        None if !e.proxies.contains_key(&l.proxy) => {
            let known: Vec<&str> = e.proxies.keys().map(String::as_str).collect();
            let hint = match did_you_mean(&l.proxy, known.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None if known.is_empty() => "give `api: URL` of a running proxy, or declare the proxy under `proxies:` for the run to start".into(),
                None => format!("this run starts {}; or give `api: URL` of a running proxy", known.join(", ")),
            };
            ctx.at(
                &at.key("proxy"),
                format!("no `api`, and the run starts no proxy named `{}`", l.proxy),
                Some(hint),
            );
        }
        None => {}
    }
    if l.proxy.trim().is_empty() {
        ctx.at(
            &at.key("proxy"),
            "the proxy name is empty",
            Some("name the proxy, e.g. `store-us-east`".into()),
        );
    }
    let spec = simian_delay::DelaySpec {
        distribution: l.distribution.clone(),
        min: l.min,
        max: l.max,
    };
    for problem in simian_delay::check(&spec) {
        // Problems name their field (`distribution.lognormal.sigma: ...`): point at it.
        match problem.split_once(": ") {
            Some((field, msg)) if !field.contains(' ') => {
                let path = field.split('.').fold(at.clone(), |p, k| p.key(k));
                let name = field.rsplit('.').next().unwrap_or(field);
                ctx.at(&path, format!("invalid `{name}`: {msg}"), None);
            }
            _ => ctx.at(&at.key("distribution"), problem, None),
        }
    }
    if let Some(t) = l.toxicity {
        if t.fraction() > 1.0 {
            ctx.at(
                &at.key("toxicity"),
                format!("toxicity {t} is over 100%"),
                None,
            );
        }
    }
    if let Some(err) = &l.errors {
        if err.rate.fraction() > 1.0 {
            ctx.at(
                &at.key("errors").key("rate"),
                format!("error rate {} is over 100%", err.rate),
                None,
            );
        }
        if !(400..=599).contains(&err.status) {
            ctx.at(
                &at.key("errors").key("status"),
                format!("{} is not an error status", err.status),
                Some("use 4xx or 5xx, e.g. 503".into()),
            );
        }
        if l.via == LatencyVia::Toxiproxy {
            ctx.at_key(
                &at.key("errors"),
                "Toxiproxy cannot answer with error statuses",
                Some("use `via: proxy` (simian's proxy speaks HTTP), or drop `errors`".into()),
            );
        }
    }
}

fn process(ctx: &mut Ctx, e: &Experiment, p: &ProcessFault, at: &Path) {
    let t = at.key("target");
    match &p.target {
        ProcessTarget::Pattern(re) => {
            if let Err(err) = regex::Regex::new(re) {
                let msg = err.to_string();
                let last = msg.lines().last().unwrap_or("invalid").trim().to_string();
                ctx.at(
                    &t.key("pattern"),
                    format!("invalid pattern: {}", last.trim_start_matches("error: ")),
                    Some(
                        "a regular expression over the full command line, e.g. `nginx: worker`"
                            .into(),
                    ),
                );
            }
        }
        ProcessTarget::Pidfile(f) | ProcessTarget::Name(f) if f.trim().is_empty() => {
            ctx.at(&t, "empty process target", None);
        }
        _ => {}
    }
    if let Pick::Count(0) = p.pick {
        ctx.at(
            &at.key("pick"),
            "`pick: 0` selects no target",
            Some("use `all`, a count above 0, or a percent".into()),
        );
    }
    let lab = matches!(p.target, ProcessTarget::Lab(_));
    if p.action == ProcessAction::Kill
        && !lab
        && p.restart.is_none()
        && !e.guards.allow_irreversible
    {
        let at = if ctx.tree.walk(&at.key("action").0).pos() != ctx.tree.walk(&at.0).pos() {
            at.key("action")
        } else {
            at.clone()
        };
        ctx.at_key(
            &at,
            "killing these processes cannot be undone: nothing here restarts them",
            Some("add `restart: COMMAND`, use `action: stop` (reverted with SIGCONT), or set `guards.allow_irreversible: true`".into()),
        );
    }
}

fn aws_ec2(ctx: &mut Ctx, e: &Experiment, a: &AwsEc2Fault, at: &Path) {
    if a.zone.is_none() && a.tags.is_empty() && a.filters.is_empty() {
        ctx.at_key(
            at,
            "no selection: this would pick every opted-in instance of the region",
            Some("name a `zone`, `tags` or `filters`".into()),
        );
    }
    if let Pick::Count(0) = a.pick {
        ctx.at(
            &at.key("pick"),
            "`pick: 0` selects no target",
            Some("use `all`, a count above 0, or a percent".into()),
        );
    }
    if let Some(tag) = &a.opt_in {
        if tag.split_once('=').is_none_or(|(k, _)| k.trim().is_empty()) {
            ctx.at(
                &at.key("opt_in"),
                format!("`{tag}` is not `KEY=VALUE`"),
                Some("e.g. `simian:opt-in=true`".into()),
            );
        }
    }
    if a.action == Ec2Action::Terminate && !e.guards.allow_irreversible {
        ctx.at(
            &at.key("action"),
            "terminated instances cannot be brought back",
            Some("use `action: stop` (revert starts them again), or set `guards.allow_irreversible: true`".into()),
        );
    }
}

fn aws_nacl(ctx: &mut Ctx, n: &AwsNaclFault, at: &Path) {
    if n.sides.len() != 2 {
        ctx.at(
            &at.key("sides"),
            format!("a cut has two sides, not {}", n.sides.len()),
            Some("e.g. `sides: [{ region: us-east-1, tags: { simian:side: east } }, { region: us-west-2, tags: { simian:side: west } }]`".into()),
        );
    }
    for (i, side) in n.sides.iter().enumerate() {
        let at = at.key("sides").index(i);
        if side.vpcs.is_empty() && side.tags.is_empty() {
            ctx.at_key(
                &at,
                "this side names no VPC",
                Some("give `vpcs: [vpc-...]` or `tags: { KEY: VALUE }`".into()),
            );
        }
        for (j, cidr) in side.cidrs.iter().enumerate() {
            if !is_cidr(cidr) {
                ctx.at(
                    &at.key("cidrs").index(j),
                    format!("`{cidr}` is not an IPv4 CIDR"),
                    Some("e.g. `192.168.0.0/16`".into()),
                );
            }
        }
    }
}

fn is_cidr(s: &str) -> bool {
    s.split_once('/').is_some_and(|(ip, len)| {
        ip.parse::<std::net::Ipv4Addr>().is_ok() && len.parse::<u8>().is_ok_and(|l| l <= 32)
    })
}

/// What a shifter needs beyond its YAML shape.
fn shifter(ctx: &mut Ctx, via: &Shifter, from: &str, to: &str, at: &Path) {
    let Shifter::Route53(r) = via else { return };
    let at = at.key("route53");
    for (key, value) in [("zone", &r.zone), ("record", &r.record)] {
        if value.trim().is_empty() {
            ctx.at(&at.key(key), format!("`{key}` is empty"), None);
        }
    }
    for region in r.set_identifiers.keys() {
        if region != from && region != to {
            ctx.at(
                &at.key("set_identifiers").key(region),
                format!("`{region}` is neither `{from}` nor `{to}`"),
                Some(
                    "name the set identifiers of the two regions the traffic moves between".into(),
                ),
            );
        }
    }
}

/// An `http://` or `https://` URL with a host: what webhooks and the outage check take.
pub fn is_http_url(url: &str) -> bool {
    let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
    let authority = url.split_once("://").map_or("", |(_, rest)| {
        rest.split(['/', '?', '#']).next().unwrap_or("")
    });
    scheme_ok && !authority.is_empty()
}

fn notify(ctx: &mut Ctx, n: &Notify, at: &Path) {
    if !is_http_url(&n.url) {
        ctx.at(
            &at.key("url"),
            format!("`{}` is not an http(s) URL", n.url),
            Some("e.g. `https://hooks.slack.com/services/T000/B000/XXXX`".into()),
        );
    }
    if n.on.is_empty() {
        ctx.at(
            &at.key("on"),
            "`on` names no moment: this webhook would never be called",
            Some("use some of `start`, `abort`, `verdict`, or leave `on` out for all".into()),
        );
    }
}

/// The least time the method takes: waits and held faults; `parallel` takes its longest branch.
pub fn method_time(list: &[Step]) -> Duration {
    list.iter()
        .map(|s| match s {
            Step::Wait(d) => d.0,
            Step::Inject(i) => i.duration.map_or(Duration::ZERO, |d| d.0),
            // Up the ramp, hold, and (gradually) back down.
            Step::Evacuate(ev) => {
                let up = (ev.shares().len() as u32).saturating_sub(1);
                let down = match ev.back {
                    Back::Gradual => up,
                    Back::Immediate => 0,
                };
                ev.every.0 * (up + down) + ev.hold.0
            }
            // An operator may answer at once.
            Step::Revert(_) | Step::Confirm(_) => Duration::ZERO,
            Step::Parallel(inner) => inner
                .iter()
                .map(|s| method_time(std::slice::from_ref(s)))
                .max()
                .unwrap_or_default(),
        })
        .sum()
}
