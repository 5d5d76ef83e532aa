//! The `sever` injector: cuts links that go through a proxy's Toxiproxy API,
//! by disabling the proxies or by blackholing them with a `timeout` toxic.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use simian_experiment::{SeverFault as Config, SeverHow};
use simian_toxiproxy::{Client, Toxic};

use crate::{Fault, FaultError, Plan, RevertRecord, Reverted};

/// The journal's record: which proxies were disabled, which toxics added.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeverRevert {
    pub api: String,
    /// Proxies this fault disables (re-enabled on revert).
    #[serde(default)]
    pub disabled: Vec<String>,
    /// (proxy, toxic) pairs this fault adds (deleted on revert).
    #[serde(default)]
    pub toxics: Vec<(String, String)>,
}

pub struct SeverFault {
    plan: Plan,
    client: Client,
    how: SeverHow,
    name: String,
    /// Proxies to cut that are enabled now (a disabled one is left as it is, and as it was).
    proxies: Vec<String>,
    lease: Option<std::time::Duration>,
}

impl SeverFault {
    pub async fn build(
        name: &str,
        cfg: &Config,
        lease: Option<std::time::Duration>,
    ) -> Result<Self, FaultError> {
        let client = Client::new(&cfg.api).map_err(|e| FaultError::Config(e.to_string()))?;
        let all = client.proxies().await.map_err(|e| FaultError::Targets {
            message: format!("cannot use the proxy API: {e}"),
            hint: Some("is `simian proxy` (or the lab: `simian lab up`) running there?".into()),
        })?;
        let mut targets = Vec::new();
        let mut proxies = Vec::new();
        let mut left_alone = Vec::new();
        for p in &cfg.proxies {
            let Some(found) = all.get(p) else {
                let names: Vec<&str> = all.keys().map(String::as_str).collect();
                return Err(FaultError::Targets {
                    message: format!("no proxy named `{p}` at {}", cfg.api),
                    hint: Some(format!("its proxies are {}", names.join(", "))),
                });
            };
            if found.enabled {
                proxies.push(p.clone());
                targets.push(format!("proxy {p} ({} → {})", found.listen, found.upstream));
            } else {
                left_alone.push(p.as_str());
            }
        }
        let (action, revert) = match cfg.how {
            SeverHow::Disable => ("disable (refuse and close connections)", "enable again"),
            SeverHow::Blackhole => (
                "blackhole (hold every byte, both ways)",
                "delete the timeout toxics",
            ),
        };
        let action = match left_alone.as_slice() {
            [] => action.to_string(),
            some => format!(
                "{action}; already disabled, so left alone: {}",
                some.join(", ")
            ),
        };
        let lease = crate::proxy_lease(&client, lease).await;
        let plan = Plan {
            backend: "sever".into(),
            action,
            targets,
            eligible: all.len(),
            universe: format!("proxies at {}", cfg.api),
            revert: revert.into(),
            irreversible: false,
            lease: lease.map(Into::into),
        };
        Ok(SeverFault {
            plan,
            client,
            how: cfg.how,
            name: name.to_string(),
            proxies,
            lease,
        })
    }

    fn toxic_names(&self) -> Vec<(String, String)> {
        self.proxies
            .iter()
            .flat_map(|p| {
                ["upstream", "downstream"]
                    .map(|s| (p.clone(), format!("simian-{}-blackhole-{s}", self.name)))
            })
            .collect()
    }
}

#[async_trait]
impl Fault for SeverFault {
    fn plan(&self) -> &Plan {
        &self.plan
    }

    async fn prepare(&self) -> Result<RevertRecord, FaultError> {
        let api = self.client.api().to_string();
        Ok(RevertRecord::Sever(match self.how {
            SeverHow::Disable => SeverRevert {
                api,
                disabled: self.proxies.clone(),
                toxics: vec![],
            },
            SeverHow::Blackhole => SeverRevert {
                api,
                disabled: vec![],
                toxics: self.toxic_names(),
            },
        }))
    }

    async fn apply(&self, record: &RevertRecord) -> Result<(), FaultError> {
        let RevertRecord::Sever(r) = record else {
            return Err(FaultError::Action("not a sever record".into()));
        };
        for p in &r.disabled {
            let disabled = match self.lease {
                Some(ttl) => self.client.disable_for(p, ttl).await,
                None => self.client.set_enabled(p, false).await,
            };
            disabled.map_err(|e| FaultError::Action(format!("disable proxy {p}: {e}")))?;
        }
        for (p, t) in &r.toxics {
            let stream = if t.ends_with("-upstream") {
                "upstream"
            } else {
                "downstream"
            };
            let mut attributes = serde_json::Map::new();
            attributes.insert("timeout".into(), 0.into());
            let toxic = Toxic {
                name: t.clone(),
                kind: "timeout".into(),
                stream: stream.into(),
                toxicity: 1.0,
                attributes,
            };
            let added = match self.lease {
                Some(ttl) => self.client.add_toxic_for(p, &toxic, ttl).await,
                None => self.client.add_toxic(p, &toxic).await,
            };
            added.map_err(|e| FaultError::Action(format!("blackhole proxy {p}: {e}")))?;
        }
        Ok(())
    }

    async fn renew(&self, record: &RevertRecord) -> Result<(), FaultError> {
        let (Some(ttl), RevertRecord::Sever(r)) = (self.lease, record) else {
            return Ok(());
        };
        for p in &r.disabled {
            self.client
                .renew_disable(p, ttl)
                .await
                .map_err(|e| match e.status() {
                    Some(400) => FaultError::Action(format!(
                        "proxy `{p}` is enabled again (its lease ran out, or someone enabled it)"
                    )),
                    _ => FaultError::Action(format!("renew the disable of `{p}`: {e}")),
                })?;
        }
        for (p, t) in &r.toxics {
            crate::renew_toxic(&self.client, p, t, ttl).await?;
        }
        Ok(())
    }
}

/// Re-enables exactly the proxies this fault disabled and deletes exactly its toxics.
pub async fn revert(r: &SeverRevert) -> Result<Reverted, FaultError> {
    let client = Client::new(&r.api).map_err(|e| FaultError::Action(e.to_string()))?;
    let mut actions = Vec::new();
    for p in &r.disabled {
        match client.set_enabled(p, true).await {
            Ok(_) => actions.push(format!("enabled proxy {p}")),
            Err(e) if e.status() == Some(404) => actions.push(format!("proxy {p} is gone")),
            Err(e) => return Err(FaultError::Action(format!("enable proxy {p}: {e}"))),
        }
    }
    for (p, t) in &r.toxics {
        match client.delete_toxic(p, t).await {
            Ok(true) => actions.push(format!("deleted toxic {t} from {p}")),
            Ok(false) => actions.push(format!("toxic {t} already gone")),
            Err(e) => {
                return Err(FaultError::Action(format!(
                    "delete toxic {t} from {p}: {e}"
                )))
            }
        }
    }
    Ok(Reverted { actions })
}
