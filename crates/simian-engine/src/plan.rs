//! Resolving targets and checking guards: what `simian plan` prints and
//! what `simian run` does before anything is injected.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use simian_core::Pick;
use simian_experiment::{Diagnostic, Loaded};
use simian_injectors::{BuildCtx, Fault, FaultError};
use simian_lab::LabState;

/// A fault ready to inject, in method order.
pub struct Planned {
    pub name: String,
    pub fault: Box<dyn Fault>,
}

/// Builds every fault (targets resolved with the seeded RNG, each with `lease` where its
/// backend can expire it) and checks the guards.
pub async fn plan(
    loaded: &Loaded,
    lab: Option<&LabState>,
    run_proxy_api: Option<&str>,
    seed: u64,
    lease: Option<std::time::Duration>,
) -> Result<Vec<Planned>, Vec<Diagnostic>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::new();
    let mut diags = Vec::new();
    for site in &loaded.faults {
        let mut ctx = BuildCtx {
            lab,
            run_proxy_api,
            rng: &mut rng,
            lease,
        };
        match simian_injectors::build(&site.name, &site.inject, &mut ctx).await {
            Ok(fault) => out.push(Planned {
                name: site.name.clone(),
                fault,
            }),
            Err(e) => {
                let hint = match &e {
                    FaultError::Targets { hint, .. } => hint.clone(),
                    _ => None,
                };
                let mut d = loaded.diag_at(
                    &site.path.key("inject"),
                    format!("cannot resolve the targets of `{}`: {e}", site.name),
                );
                d.hint = hint;
                diags.push(d);
            }
        }
    }
    let guards = &loaded.experiment.guards;
    let guard_path = simian_experiment::tree::Path::default().key("guards");
    for p in &out {
        if p.fault.plan().irreversible && !guards.allow_irreversible {
            let site = loaded
                .faults
                .iter()
                .find(|s| s.name == p.name)
                .expect("planned faults come from sites");
            diags.push(
                loaded
                    .diag_at(
                        &site.path.key("inject"),
                        format!("`{}` cannot be undone", p.name),
                    )
                    .hint("set `guards.allow_irreversible: true` if you mean it"),
            );
        }
    }
    if let Some(max) = guards.max_blast_radius {
        let mut per: BTreeMap<&str, (usize, usize, Vec<&str>)> = BTreeMap::new();
        for p in &out {
            let plan = p.fault.plan();
            let e = per
                .entry(plan.universe.as_str())
                .or_insert((0, plan.eligible, vec![]));
            e.0 += plan.targets.len();
            e.1 = e.1.max(plan.eligible);
            e.2.push(p.name.as_str());
        }
        let at = guard_path.key("max_blast_radius");
        for (universe, (hit, eligible, names)) in per {
            let names = names.join(", ");
            let refused = match (max, eligible) {
                (Pick::Percent(_), 0) => Some((
                    format!("a percent blast radius cannot bound {names}: {hit} {universe} is not a share of anything that can be counted"),
                    "give the guard as a count (e.g. `max_blast_radius: 2`), which bounds every kind of target",
                )),
                (Pick::All, _) => None,
                (Pick::Count(n), _) if hit as u64 <= n => None,
                (Pick::Percent(pct), n) if hit as f64 / n as f64 <= pct.fraction() + 1e-9 => None,
                (_, n) => {
                    let of = match n {
                        0 => format!("{hit} {universe}"),
                        n => format!("{hit} of {n} {universe} ({:.0}%)", 100.0 * hit as f64 / n as f64),
                    };
                    Some((
                        format!("blast radius over the guard: {names} would hit {of}, the guard allows {max}"),
                        "narrow the targets or `pick` fewer; raise the guard only if that blast radius is intended",
                    ))
                }
            };
            if let Some((message, hint)) = refused {
                diags.push(loaded.diag_at(&at, message).hint(hint));
            }
        }
    }
    if diags.is_empty() {
        Ok(out)
    } else {
        Err(diags)
    }
}
