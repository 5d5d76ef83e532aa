//! The `split` injector: cuts two lab regions apart, with whatever the lab offers. A
//! `--netns` lab gets a `netfilter` partition between the regions' subnets in its router
//! namespace: real packets dropped on a real path. A loopback lab gets its replication
//! proxies between the two regions disabled (`sever`). Either way the fault is that
//! backend's, journal record and revert included.

use std::collections::BTreeMap;

use simian_experiment::{
    Direction, NetfilterFault, Partition, SeverFault, SeverHow, SplitFault as Config,
};
use simian_lab::LabState;

use crate::{netfilter, sever, Fault, FaultError};

pub async fn build(
    name: &str,
    cfg: &Config,
    lab: Option<&LabState>,
    lease: Option<std::time::Duration>,
) -> Result<Box<dyn Fault>, FaultError> {
    let Some(lab) = lab else {
        return Err(FaultError::Targets {
            message: "`split` cuts regions of the lab, and no lab is running".into(),
            hint: Some(
                "start one (`simian lab up`, or `simian run --lab`); on real hosts use `netfilter`"
                    .into(),
            ),
        });
    };
    let vars = lab.variables();
    let [a, b] = regions(cfg, &vars)?;
    match vars.get("lab.netns") {
        Some(core) => {
            let cidr = |r: &str| vars.get(&format!("lab.{r}.cidr")).cloned();
            let (Some(ca), Some(cb)) = (cidr(a), cidr(b)) else {
                return Err(FaultError::Config(format!(
                    "the lab's state names no subnet for {a} or {b}"
                )));
            };
            let nf = NetfilterFault {
                netns: Some(core.clone()),
                partition: Partition::Sever {
                    a: vec![ca],
                    b: vec![cb],
                },
                direction: Direction::Both,
                loss: None,
            };
            Ok(Box::new(netfilter::NetfilterFault::build(
                name, &nf, lease,
            )?))
        }
        None => {
            let api = vars
                .get("lab.proxy")
                .filter(|a| !a.is_empty())
                .ok_or_else(|| FaultError::Config("the lab runs without its fault proxy".into()))?;
            let proxies = [(a, b), (b, a)]
                .into_iter()
                .map(|(from, to)| {
                    vars.get(&format!("lab.repl.{from}.{to}"))
                        .cloned()
                        .ok_or_else(|| {
                            FaultError::Config(format!(
                                "the lab has no replication proxy from {from} to {to}"
                            ))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let sv = SeverFault {
                api: api.clone(),
                proxies,
                how: SeverHow::Disable,
            };
            Ok(Box::new(sever::SeverFault::build(name, &sv, lease).await?))
        }
    }
}

/// The two regions, each checked against the lab's.
fn regions<'c>(
    cfg: &'c Config,
    vars: &BTreeMap<String, String>,
) -> Result<[&'c str; 2], FaultError> {
    let known = vars.get("lab.regions").map_or("", String::as_str);
    let [a, b] = cfg.regions.as_slice() else {
        return Err(FaultError::Config("a split names two regions".into()));
    };
    for r in [a, b] {
        if !known.split(',').any(|k| k == r) {
            return Err(FaultError::Targets {
                message: format!("the lab has no region `{r}`"),
                hint: Some(format!("its regions are {}", known.replace(',', ", "))),
            });
        }
    }
    Ok([a, b])
}
