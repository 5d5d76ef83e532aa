//! The `latency` injector (Latency Monkey): toxics added through a proxy's
//! Toxiproxy API, and exactly those toxics removed on revert.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use simian_experiment::{LatencyFault as Config, LatencyVia};
use simian_toxiproxy::{Client, Toxic};

use crate::{Fault, FaultError, Plan, RevertRecord, Reverted};

/// The journal's record of a latency fault: which toxics on which proxy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatencyRevert {
    pub api: String,
    pub proxy: String,
    pub toxics: Vec<String>,
    /// The proxy ran inside the runner: if it is gone, so are its toxics.
    #[serde(default)]
    pub owned_by_run: bool,
}

pub struct LatencyFault {
    plan: Plan,
    client: Client,
    proxy: String,
    toxics: Vec<Toxic>,
    owned_by_run: bool,
    lease: Option<std::time::Duration>,
    /// The delays it adds: the spec, or Toxiproxy's uniform stand-in for it.
    delay: simian_delay::DelaySpec,
}

impl LatencyFault {
    pub async fn build(
        name: &str,
        cfg: &Config,
        run_api: Option<&str>,
        lease: Option<std::time::Duration>,
    ) -> Result<Self, FaultError> {
        let owned_by_run = cfg.api.is_none();
        let api = match (&cfg.api, run_api) {
            (Some(a), _) => a.clone(),
            (None, Some(a)) => a.to_string(),
            (None, None) => {
                return Err(FaultError::Config(
                    "no `api`, and this run starts no proxies".into(),
                ))
            }
        };
        let client = Client::new(&api).map_err(|e| FaultError::Config(e.to_string()))?;
        // One listing: the target, and what it is one of (the universe `sever` counts too).
        let mut all = client.proxies().await.map_err(|e| FaultError::Targets {
            message: format!("cannot use the proxy API: {e}"),
            hint: Some("is `simian proxy` (or the lab: `simian lab up`) running there?".into()),
        })?;
        let eligible = all.len();
        let Some(proxy) = all.remove(&cfg.proxy) else {
            let names = all.into_keys().collect::<Vec<_>>().join(", ");
            return Err(FaultError::Targets {
                message: format!("no proxy named `{}` at {}", cfg.proxy, api),
                hint: Some(if names.is_empty() {
                    "the API has no proxies".into()
                } else {
                    format!("its proxies are {names}")
                }),
            });
        };
        let http = proxy.mode.as_deref() == Some("http");
        if cfg.errors.is_some() && !http {
            return Err(FaultError::Targets {
                message: format!(
                    "`{}` is a TCP proxy, so it cannot answer with error statuses",
                    cfg.proxy
                ),
                hint: Some("use a proxy in `mode: http`, or drop `errors`".into()),
            });
        }
        let spec = simian_delay::DelaySpec {
            distribution: cfg.distribution.clone(),
            min: cfg.min,
            max: cfg.max,
        };
        let sampler =
            simian_delay::Sampler::new(&spec).map_err(|p| FaultError::Config(p.join("; ")))?;
        let toxicity = cfg.toxicity.map_or(1.0, |t| t.fraction());
        let (attributes, described, delay) = match cfg.via {
            LatencyVia::Proxy => (
                json!({ "latency": 0, "jitter": 0, "distribution": cfg.distribution, "min": cfg.min, "max": cfg.max }),
                sampler.describe(),
                spec,
            ),
            LatencyVia::Toxiproxy => {
                let (latency, jitter) = sampler.uniform_approximation();
                let (l, j) = (latency.as_millis() as u64, jitter.as_millis() as u64);
                let exact = matches!(
                    cfg.distribution,
                    simian_delay::Distribution::Constant { .. }
                        | simian_delay::Distribution::Uniform { .. }
                );
                let d = if exact {
                    format!("{l}ms ± {j}ms")
                } else {
                    format!("{l}ms ± {j}ms (warning: Toxiproxy cannot express {}; this uniform range is its closest stand-in)", sampler.describe())
                };
                // What Toxiproxy draws: uniform in `latency ± jitter`.
                let ms = |v: u64| simian_core::Dur::from_millis(v);
                let distribution = if j == 0 {
                    simian_delay::Distribution::Constant { value: ms(l) }
                } else {
                    simian_delay::Distribution::Uniform {
                        min: ms(l.saturating_sub(j)),
                        max: ms(l + j),
                    }
                };
                let delay = simian_delay::DelaySpec {
                    distribution,
                    min: None,
                    max: None,
                };
                (json!({ "latency": l, "jitter": j }), d, delay)
            }
        };
        let attrs = |v: serde_json::Value| match v {
            serde_json::Value::Object(m) => m.into_iter().filter(|(_, v)| !v.is_null()).collect(),
            _ => Default::default(),
        };
        let mut toxics = vec![Toxic {
            name: format!("simian-{name}-latency"),
            kind: "latency".into(),
            stream: cfg.stream.as_str().into(),
            toxicity,
            attributes: attrs(attributes),
        }];
        let mut action = format!(
            "{described} on {} of {} requests",
            cfg.stream.as_str(),
            pct(toxicity)
        );
        if let Some(e) = &cfg.errors {
            toxics.push(Toxic {
                name: format!("simian-{name}-errors"),
                kind: "http_error".into(),
                stream: "downstream".into(),
                toxicity: e.rate.fraction(),
                attributes: attrs(json!({ "status": e.status })),
            });
            action.push_str(&format!(
                ", and HTTP {} on {}",
                e.status,
                pct(e.rate.fraction())
            ));
        }
        let lease = crate::proxy_lease(&client, lease).await;
        let plan = Plan {
            backend: "latency".into(),
            action,
            targets: vec![format!(
                "proxy {} ({} → {})",
                proxy.name, proxy.listen, proxy.upstream
            )],
            eligible,
            universe: format!("proxies at {api}"),
            revert: format!(
                "delete toxics {}",
                toxics
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            irreversible: false,
            lease: lease.map(Into::into),
        };
        Ok(LatencyFault {
            plan,
            client,
            proxy: proxy.name,
            toxics,
            owned_by_run,
            lease,
            delay,
        })
    }
}

fn pct(f: f64) -> String {
    simian_core::Percent(f).to_string()
}

#[async_trait]
impl Fault for LatencyFault {
    fn plan(&self) -> &Plan {
        &self.plan
    }

    fn delay(&self) -> Option<simian_delay::DelaySpec> {
        Some(self.delay.clone())
    }

    async fn prepare(&self) -> Result<RevertRecord, FaultError> {
        Ok(RevertRecord::Latency(LatencyRevert {
            api: self.client.api().to_string(),
            proxy: self.proxy.clone(),
            toxics: self.toxics.iter().map(|t| t.name.clone()).collect(),
            owned_by_run: self.owned_by_run,
        }))
    }

    async fn apply(&self, _record: &RevertRecord) -> Result<(), FaultError> {
        for t in &self.toxics {
            let added = match self.lease {
                Some(ttl) => self.client.add_toxic_for(&self.proxy, t, ttl).await,
                None => self.client.add_toxic(&self.proxy, t).await,
            };
            added.map_err(|e| match e.status() {
                Some(409) => FaultError::Action(format!(
                    "proxy `{}` already has a toxic named `{}`: an earlier run may not have been reverted (see `simian recover`)",
                    self.proxy, t.name
                )),
                _ => FaultError::Action(format!("add toxic `{}` to `{}`: {e}", t.name, self.proxy)),
            })?;
        }
        Ok(())
    }

    async fn renew(&self, _record: &RevertRecord) -> Result<(), FaultError> {
        let Some(ttl) = self.lease else {
            return Ok(());
        };
        for t in &self.toxics {
            crate::renew_toxic(&self.client, &self.proxy, &t.name, ttl).await?;
        }
        Ok(())
    }
}

/// Deletes exactly the recorded toxics; a toxic already gone is fine.
pub async fn revert(r: &LatencyRevert) -> Result<Reverted, FaultError> {
    let client = Client::new(&r.api).map_err(|e| FaultError::Action(e.to_string()))?;
    let mut actions = Vec::new();
    for t in &r.toxics {
        match client.delete_toxic(&r.proxy, t).await {
            Ok(true) => actions.push(format!("deleted toxic {t} from {}", r.proxy)),
            Ok(false) => actions.push(format!("toxic {t} already gone")),
            Err(simian_toxiproxy::Error::Unreachable { .. }) if r.owned_by_run => {
                actions.push(format!(
                    "the run's own proxy {} is gone, and its toxics with it",
                    r.proxy
                ));
                break;
            }
            Err(e) => {
                return Err(FaultError::Action(format!(
                    "delete toxic {t} from {}: {e}",
                    r.proxy
                )))
            }
        }
    }
    Ok(Reverted { actions })
}
