//! The dry run as text: probes, hypothesis, method with resolved targets, guards.

use std::collections::BTreeMap;
use std::fmt::Write;

use simian_engine::Planned;
use simian_experiment::{Loaded, ProbeSpec, Step};

pub fn render(l: &Loaded, planned: &[Planned], seed: u64) -> String {
    let e = &l.experiment;
    let ss = &e.steady_state;
    let mut o = String::new();
    let _ = writeln!(o, "plan for `{}` ({}), seed {seed}", e.name, l.file);
    if let Some(d) = &e.description {
        let _ = writeln!(o, "  {}", d.trim());
    }
    let _ = writeln!(o, "\nprobes");
    for (name, p) in &ss.probes {
        let what = match p {
            ProbeSpec::Http(h) => format!(
                "http {} {} at {}/s, timeout {}",
                h.method, h.url, h.rate, h.timeout
            ),
            ProbeSpec::Tcp(t) => format!("tcp connect {} every {}", t.address, t.interval),
            ProbeSpec::Command(c) => format!("command `{}` every {}", c.run, c.interval),
            ProbeSpec::Prometheus(p) => match &p.range {
                None => format!("prometheus {} `{}` every {}", p.url, p.query, p.interval),
                Some(r) => format!(
                    "prometheus {} `{}` over {}, {:?}, every {}",
                    p.url, p.query, r.over, r.aggregate, p.interval
                ),
            },
            ProbeSpec::Cloudwatch(c) => {
                let mut watched: Vec<String> = c.alarms.clone();
                if let Some(p) = &c.prefix {
                    watched.push(format!("{p}*"));
                }
                format!(
                    "cloudwatch alarms {} every {}",
                    watched.join(", "),
                    c.interval
                )
            }
            ProbeSpec::Replication(r) => format!(
                "replication: {} records every {}, written to {}, read from {} after {}",
                r.records, r.every, r.write, r.read, r.read_after
            ),
        };
        let _ = writeln!(o, "  {name:<12} {what}");
    }
    let _ = writeln!(
        o,
        "\nhypothesis (before: {} baseline · during: {} sliding window · after: {} once reverted)",
        ss.before, ss.window, ss.after
    );
    for a in &l.hypothesis {
        let _ = writeln!(o, "  {a}");
    }
    if !l.recovery.is_empty() {
        let settle = if ss.settle.0.is_zero() {
            String::new()
        } else {
            format!("{} settle, then ", ss.settle)
        };
        let _ = writeln!(
            o,
            "\nrecovery (after every fault is reverted: {settle}{} window)",
            ss.after
        );
        for a in &l.recovery {
            let _ = writeln!(o, "  {a}");
        }
    }
    if !l.stop_when.is_empty() {
        let _ = writeln!(o, "\nstop when (any one aborts and reverts everything)");
        for s in &l.stop_when {
            let _ = writeln!(o, "  {s}");
        }
    }
    let _ = writeln!(o, "\nmethod");
    let by_name: BTreeMap<&str, &Planned> = planned.iter().map(|p| (p.name.as_str(), p)).collect();
    steps(&mut o, &e.method, &by_name, "  ");
    let _ = writeln!(o, "\nguards");
    let _ = writeln!(
        o,
        "  max_duration {}",
        simian_core::Dur(simian_experiment::max_duration(e))
    );
    let mut per: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for p in planned {
        let pl = p.fault.plan();
        let x = per.entry(pl.universe.as_str()).or_insert((0, pl.eligible));
        x.0 += pl.targets.len();
    }
    for (u, (hit, of)) in per {
        let pct = if of > 0 {
            100.0 * hit as f64 / of as f64
        } else {
            0.0
        };
        let guard = e
            .guards
            .max_blast_radius
            .map_or("no guard".to_string(), |g| format!("guard {g}"));
        if of == 0 {
            let _ = writeln!(
                o,
                "  blast radius: {hit} {u} (nothing to count against; {guard})"
            );
        } else {
            let _ = writeln!(o, "  blast radius: {hit} of {of} {u} ({pct:.0}%; {guard})");
        }
    }
    let _ = writeln!(o, "\nnothing was injected (dry run).");
    o
}

fn steps(o: &mut String, list: &[Step], planned: &BTreeMap<&str, &Planned>, indent: &str) {
    for (i, s) in list.iter().enumerate() {
        match s {
            Step::Wait(d) => {
                let _ = writeln!(o, "{indent}{}. wait {d}", i + 1);
            }
            Step::Revert(n) => {
                let _ = writeln!(o, "{indent}{}. revert {n}", i + 1);
            }
            Step::Confirm(c) => {
                let _ = writeln!(
                    o,
                    "{indent}{}. confirm: wait up to {} for an operator: {}",
                    i + 1,
                    c.timeout,
                    c.message
                );
            }
            Step::Parallel(inner) => {
                let _ = writeln!(o, "{indent}{}. at once:", i + 1);
                steps(o, inner, planned, &format!("{indent}   "));
            }
            Step::Evacuate(ev) => {
                let name = ev.name.as_deref().unwrap_or("?");
                let shares: Vec<String> = ev
                    .shares()
                    .iter()
                    .map(|x| format!("{:.0}%", x * 100.0))
                    .collect();
                let back = match ev.back {
                    simian_experiment::Back::Gradual => "back the same steps",
                    simian_experiment::Back::Immediate => "back at once",
                };
                let _ = writeln!(
                    o,
                    "{indent}{}. evacuate {name}: {} → {} by {}, {} apart, each gated on the hypothesis; hold {}; {back}",
                    i + 1,
                    ev.from,
                    ev.to,
                    shares.join(", "),
                    ev.every,
                    ev.hold
                );
                if let Some(p) = planned.get(name) {
                    for t in &p.fault.plan().targets {
                        let _ = writeln!(o, "{indent}     - {t}");
                    }
                    let _ = writeln!(o, "{indent}     revert: {}", p.fault.plan().revert);
                }
            }
            Step::Inject(inj) => {
                let name = inj.name.as_deref().unwrap_or("?");
                let Some(p) = planned.get(name) else { continue };
                let pl = p.fault.plan();
                let held = inj
                    .duration
                    .map_or(String::new(), |d| format!(", held {d}"));
                let irr = if pl.irreversible {
                    " [IRREVERSIBLE]"
                } else {
                    ""
                };
                let _ = writeln!(
                    o,
                    "{indent}{}. inject {name}: {} on {}{held}{irr}",
                    i + 1,
                    pl.action,
                    pl.reach()
                );
                for t in &pl.targets {
                    let _ = writeln!(o, "{indent}     - {t}");
                }
                let _ = writeln!(o, "{indent}     revert: {}", pl.revert);
                if let Some(l) = pl.lease {
                    let _ = writeln!(
                        o,
                        "{indent}     lease: {l}: it ends by itself {l} after the runner's last renewal"
                    );
                }
            }
        }
    }
}
