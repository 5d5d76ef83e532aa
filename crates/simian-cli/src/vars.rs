//! Where `${name}` comes from, and the proxies a run starts for itself.

use std::collections::BTreeMap;

use simian_lab::LabState;

/// `--var` first, then the run's own proxies (`proxies.*`), then the lab (`lab.*`), then the environment.
pub struct Vars<'a> {
    pub cli: &'a BTreeMap<String, String>,
    pub lab: BTreeMap<String, String>,
    pub proxies: BTreeMap<String, String>,
    /// Validation without a lab or proxies: `lab.*` and `proxies.*` get stand-ins.
    pub placeholders: bool,
}

impl<'a> Vars<'a> {
    pub fn new(
        cli: &'a BTreeMap<String, String>,
        lab: Option<&LabState>,
        placeholders: bool,
    ) -> Self {
        Vars {
            cli,
            lab: lab.map(LabState::variables).unwrap_or_default(),
            proxies: BTreeMap::new(),
            placeholders,
        }
    }

    pub fn get(&self, name: &str) -> Option<String> {
        if let Some(v) = self.cli.get(name) {
            return Some(v.clone());
        }
        if let Some(rest) = name.strip_prefix("proxies.") {
            let stand_in = if rest == "api" {
                "http://127.0.0.1:9"
            } else {
                "127.0.0.1:9"
            };
            return self
                .proxies
                .get(name)
                .cloned()
                .or_else(|| self.placeholders.then(|| stand_in.to_string()));
        }
        if let Some(rest) = name.strip_prefix("lab.") {
            // Every lab variable is a URL but the region list.
            let stand_in = if rest == "regions" {
                "us-east,us-west"
            } else {
                "http://127.0.0.1:9"
            };
            return self
                .lab
                .get(name)
                .cloned()
                .or_else(|| self.placeholders.then(|| stand_in.to_string()));
        }
        std::env::var(name).ok()
    }
}

/// The proxies an experiment's `proxies:` asks the run to start, running in this process.
pub struct RunProxies {
    server: Option<simian_proxy::Server>,
}

impl RunProxies {
    /// Starts what `source` declares (before the full load, so `${proxies.*}` resolve).
    /// A malformed section starts nothing: the full load then reports it with its position.
    pub async fn start(source: &str, vars: &mut Vars<'_>) -> Result<RunProxies, String> {
        let Ok(doc) = serde_yaml::from_str::<serde_yaml::Value>(source) else {
            return Ok(RunProxies { server: None });
        };
        let Some(serde_yaml::Value::Mapping(section)) = doc.get("proxies") else {
            return Ok(RunProxies { server: None });
        };
        let expand = |s: &str| simian_experiment::expand(s, &|n| vars.get(n)).ok();
        let mut configs = Vec::new();
        for (name, spec) in section {
            let (Some(name), Some(upstream)) = (
                name.as_str(),
                spec.get("upstream")
                    .and_then(|u| u.as_str())
                    .and_then(expand),
            ) else {
                continue;
            };
            let listen = spec
                .get("listen")
                .and_then(|l| l.as_str())
                .and_then(expand)
                .unwrap_or_else(|| "127.0.0.1:0".into());
            let mode = match spec.get("mode").and_then(|m| m.as_str()) {
                Some("http") => simian_proxy::Mode::Http,
                _ => simian_proxy::Mode::Tcp,
            };
            // `http://host:port` (as lab variables are written) means `host:port`.
            let upstream = upstream
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string();
            configs.push(simian_proxy::ProxyConfig {
                name: name.to_string(),
                listen,
                upstream,
                enabled: true,
                mode,
            });
        }
        if configs.is_empty() {
            return Ok(RunProxies { server: None });
        }
        let names: Vec<String> = configs.iter().map(|c| c.name.clone()).collect();
        let api: std::net::SocketAddr = "127.0.0.1:0".parse().expect("a socket address");
        let server = simian_proxy::Server::start(api, configs)
            .await
            .map_err(|e| format!("failed to start the run's proxies: {e}"))?;
        vars.proxies.insert(
            "proxies.api".into(),
            format!("http://{}", server.api_addr()),
        );
        for n in names {
            if let Some(addr) = server.proxy_addr(&n) {
                vars.proxies
                    .insert(format!("proxies.{n}"), addr.to_string());
            }
        }
        Ok(RunProxies {
            server: Some(server),
        })
    }

    pub fn api(&self) -> Option<String> {
        self.server
            .as_ref()
            .map(|s| format!("http://{}", s.api_addr()))
    }

    pub async fn stop(self) {
        if let Some(s) = self.server {
            s.shutdown().await;
        }
    }
}
