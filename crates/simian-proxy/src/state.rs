//! The set of proxies and the operations the admin API performs on it, with Toxiproxy's
//! semantics and errors. Mutations are serialized (one at a time), as Toxiproxy's locks do.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;
use crate::lease::{self, Key, Leases};
use crate::metrics::{self, Row};
use crate::proxy::{mode_str, Proxy, ProxyJson, Settings};
use crate::toxics::{json_kind, Toxic, ToxicJson, ToxicSet};
use crate::{Mode, ProxyConfig};

#[derive(Default)]
pub struct State {
    proxies: Mutex<BTreeMap<String, Arc<Proxy>>>,
    ops: tokio::sync::Mutex<()>,
    leases: Leases,
}

/// A proxy as a create, populate or update body writes it. Unknown members are ignored,
/// as Go's decoder does (so a proxy read from GET can be sent back).
#[derive(Debug, Default, Deserialize)]
struct Input {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    listen: Option<String>,
    #[serde(default)]
    upstream: Option<String>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    mode: Option<Mode>,
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(ApiError::bad_body)
}

/// A proxy body and its `ttl` (a lease on a disable).
fn parse_input(body: &[u8]) -> Result<(Input, Option<Duration>), ApiError> {
    let v: Value = parse(body)?;
    let Value::Object(mut obj) = v else {
        return Err(ApiError::bad_body(format!(
            "expected a JSON object, got {}",
            json_kind(&v)
        )));
    };
    let ttl = lease::take_ttl(&mut obj)?;
    let i = serde_json::from_value(Value::Object(obj)).map_err(ApiError::bad_body)?;
    Ok((i, ttl))
}

/// A toxic body without its `ttl`, the ttl, and whether the ttl was all there was.
fn split_ttl(body: &[u8]) -> Result<(Vec<u8>, Option<Duration>, bool), ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut obj)) => {
            let ttl = lease::take_ttl(&mut obj)?;
            let only = obj.is_empty();
            let rest = serde_json::to_vec(&Value::Object(obj)).expect("JSON serializes");
            Ok((rest, ttl, only))
        }
        // The toxic parser gives the error.
        _ => Ok((body.to_vec(), None, false)),
    }
}

impl State {
    fn map(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Proxy>>> {
        self.proxies.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, name: &str) -> Result<Arc<Proxy>, ApiError> {
        self.map()
            .get(name)
            .cloned()
            .ok_or_else(ApiError::proxy_not_found)
    }

    pub fn proxy_addr(&self, name: &str) -> Option<SocketAddr> {
        self.map().get(name).and_then(|p| p.addr())
    }

    fn all(&self) -> Vec<Arc<Proxy>> {
        self.map().values().cloned().collect()
    }

    /// A proxy's JSON with its leases' time left.
    fn proxy_json(&self, p: &Proxy) -> ProxyJson {
        let mut j = p.json();
        j.expires_in = self.leases.expires_in(&Key::disabled(&p.name));
        for t in &mut j.toxics {
            t.expires_in = self.leases.expires_in(&Key::toxic(&p.name, &t.name));
        }
        j
    }

    fn toxic_json(&self, proxy: &str, t: &Toxic) -> ToxicJson {
        let mut j = t.json();
        j.expires_in = self.leases.expires_in(&Key::toxic(proxy, &t.name));
        j
    }

    /// Undoes what each lease that ran out covered; runs until `token` is cancelled.
    pub async fn expire(self: Arc<Self>, token: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                _ = self.leases.wait() => {}
                _ = token.cancelled() => return,
            }
            let _op = self.ops.lock().await;
            for key in self.leases.take_due() {
                match key {
                    Key::Toxic { proxy, toxic } => {
                        let Ok(p) = self.get(&proxy) else { continue };
                        let mut next = (**p.toxics.borrow()).clone();
                        next.list.retain(|t| t.name != toxic);
                        p.toxics.send_replace(Arc::new(next));
                        crate::log(format_args!(
                            "proxy {proxy}: toxic {toxic} removed: its ttl ran out"
                        ));
                    }
                    Key::Disabled { proxy } => {
                        let Ok(p) = self.get(&proxy) else { continue };
                        match p.start() {
                            Ok(_) => crate::log(format_args!(
                                "proxy {proxy}: enabled again: its disable's ttl ran out"
                            )),
                            Err(e) => crate::log(format_args!(
                                "proxy {proxy}: its disable's ttl ran out, but it cannot start: {}",
                                e.message
                            )),
                        }
                    }
                }
            }
        }
    }

    pub fn list(&self) -> BTreeMap<String, ProxyJson> {
        self.all()
            .into_iter()
            .map(|p| (p.name.clone(), self.proxy_json(&p)))
            .collect()
    }

    pub fn show(&self, name: &str) -> Result<ProxyJson, ApiError> {
        let p = self.get(name)?;
        Ok(self.proxy_json(&p))
    }

    /// Creates and (when enabled) starts a proxy. 409 when the name is taken; a bind
    /// failure is a 500, as in Toxiproxy.
    pub async fn create(&self, cfg: ProxyConfig) -> Result<ProxyJson, ApiError> {
        let _op = self.ops.lock().await;
        self.create_locked(cfg)
    }

    fn create_locked(&self, cfg: ProxyConfig) -> Result<ProxyJson, ApiError> {
        check(&cfg)?;
        if self.map().contains_key(&cfg.name) {
            return Err(ApiError::proxy_exists());
        }
        let p = Proxy::new(cfg.name.clone(), &settings(&cfg));
        if cfg.enabled {
            p.start()?;
        }
        self.map().insert(cfg.name, p.clone());
        Ok(p.json())
    }

    pub async fn create_json(&self, body: &[u8]) -> Result<ProxyJson, ApiError> {
        let (i, ttl) = parse_input(body)?;
        if ttl.is_some() {
            return Err(ApiError::bad_body(
                "`ttl` applies to a toxic, or to disabling a proxy that exists",
            ));
        }
        let cfg = config(i, None)?;
        self.create(cfg).await
    }

    /// POST/PATCH /proxies/{name}: fields not given keep their value.
    pub async fn update_json(&self, name: &str, body: &[u8]) -> Result<ProxyJson, ApiError> {
        let _op = self.ops.lock().await;
        let p = self.get(name)?;
        let (i, ttl) = parse_input(body)?;
        let cur = p.settings();
        let s = Settings {
            listen: i.listen.unwrap_or(cur.listen),
            upstream: i.upstream.unwrap_or(cur.upstream),
            enabled: i.enabled.unwrap_or(cur.enabled),
            mode: i.mode.unwrap_or(cur.mode),
        };
        if s.upstream.is_empty() {
            return Err(ApiError::missing_field("upstream"));
        }
        if s.mode != cur.mode {
            for t in &p.toxics.borrow().list {
                t.kind.check_mode(s.mode).map_err(|why| {
                    ApiError::bad_body(format!(
                        "cannot switch to {} mode while toxic `{}` is on the proxy: {why}",
                        mode_str(s.mode),
                        t.name
                    ))
                })?;
            }
        }
        if ttl.is_some() && s.enabled {
            return Err(ApiError::bad_body(format!(
                "`ttl` is how long a disable lasts, and proxy `{name}` would be enabled"
            )));
        }
        p.update(&s).await?;
        let key = Key::disabled(name);
        match ttl {
            Some(t) => self.leases.set(key, t),
            None if s.enabled => self.leases.clear(&key),
            None => {}
        }
        Ok(self.proxy_json(&p))
    }

    pub async fn delete(&self, name: &str) -> Result<(), ApiError> {
        let _op = self.ops.lock().await;
        let p = self
            .map()
            .remove(name)
            .ok_or_else(ApiError::proxy_not_found)?;
        p.stop().await;
        self.leases.clear_proxy(name);
        Ok(())
    }

    /// POST /populate and `--config`: creates the proxies, replaces those of the same name
    /// whose listen, upstream or mode differ, and keeps (with their toxics) those that do not.
    /// All or nothing: input errors create nothing, and a failed bind undoes this call's work.
    pub async fn populate(&self, cfgs: Vec<ProxyConfig>) -> Result<Vec<ProxyJson>, ApiError> {
        let _op = self.ops.lock().await;
        for (n, c) in cfgs.iter().enumerate() {
            if c.name.is_empty() {
                return Err(ApiError::missing_field(format!("name at proxy {}", n + 1)));
            }
            if c.upstream.is_empty() {
                return Err(ApiError::missing_field(format!(
                    "upstream at proxy {}",
                    n + 1
                )));
            }
            check(c)?;
        }
        let mut started: Vec<Arc<Proxy>> = Vec::new();
        let mut replaced: Vec<(Arc<Proxy>, bool)> = Vec::new();
        let mut out = Vec::new();
        for c in &cfgs {
            let existing = self.map().get(&c.name).cloned();
            if let Some(e) = &existing {
                let cur = e.settings();
                if same_listen(&cur.listen, &c.listen)
                    && cur.upstream == c.upstream
                    && cur.mode == c.mode
                {
                    out.push(e.clone());
                    continue;
                }
                // Free its port first: the replacement may listen on the same one.
                replaced.push((e.clone(), cur.enabled));
                self.leases.clear_proxy(&c.name);
                e.stop().await;
            }
            let p = Proxy::new(c.name.clone(), &settings(c));
            if c.enabled {
                if let Err(err) = p.start() {
                    for s in &started {
                        s.stop().await;
                    }
                    for (r, was_enabled) in &replaced {
                        if *was_enabled {
                            let _ = r.start();
                        }
                    }
                    return Err(err);
                }
            }
            started.push(p.clone());
            out.push(p);
        }
        let mut map = self.map();
        for p in &out {
            map.insert(p.name.clone(), p.clone());
        }
        drop(map);
        Ok(out.iter().map(|p| self.proxy_json(p)).collect())
    }

    pub async fn populate_json(&self, body: &[u8]) -> Result<Vec<ProxyJson>, ApiError> {
        let items: Vec<Value> = parse(body)?;
        let mut cfgs = Vec::new();
        for (n, v) in items.into_iter().enumerate() {
            if !v.is_object() {
                return Err(ApiError::bad_body(format!(
                    "proxy {} is {}, not an object",
                    n + 1,
                    json_kind(&v)
                )));
            }
            let i: Input = serde_json::from_value(v).map_err(ApiError::bad_body)?;
            cfgs.push(config(i, Some(n + 1))?);
        }
        self.populate(cfgs).await
    }

    /// POST /reset: every proxy enabled again, every toxic removed.
    pub async fn reset(&self) -> Result<(), ApiError> {
        let _op = self.ops.lock().await;
        for p in self.all() {
            p.start()?;
            p.toxics.send_replace(Arc::new(ToxicSet::default()));
        }
        self.leases.clear_all();
        Ok(())
    }

    pub fn toxics(&self, proxy: &str) -> Result<Vec<ToxicJson>, ApiError> {
        let p = self.get(proxy)?;
        let set = p.toxics.borrow().clone();
        Ok(set
            .listed_toxics()
            .map(|t| self.toxic_json(proxy, t))
            .collect())
    }

    pub fn toxic(&self, proxy: &str, toxic: &str) -> Result<ToxicJson, ApiError> {
        let p = self.get(proxy)?;
        let set = p.toxics.borrow();
        set.get(toxic)
            .map(|t| self.toxic_json(proxy, t))
            .ok_or_else(ApiError::toxic_not_found)
    }

    #[cfg(test)]
    pub fn generation(&self, proxy: &str, toxic: &str) -> Option<u64> {
        let p = self.get(proxy).ok()?;
        let set = p.toxics.borrow();
        set.get(toxic).map(|t| t.generation)
    }

    pub async fn add_toxic(&self, proxy: &str, body: &[u8]) -> Result<ToxicJson, ApiError> {
        let _op = self.ops.lock().await;
        let p = self.get(proxy)?;
        let (body, ttl, _) = split_ttl(body)?;
        let set = p.toxics.borrow().clone();
        let t = Arc::new(Toxic::create(&body, p.mode(), |n| set.get(n).is_some())?);
        let mut next = (*set).clone();
        next.list.push(t.clone());
        p.toxics.send_replace(Arc::new(next));
        let key = Key::toxic(proxy, &t.name);
        match ttl {
            Some(ttl) => self.leases.set(key, ttl),
            None => self.leases.clear(&key),
        }
        crate::log(format_args!("proxy {proxy}: toxic {} added", t.name));
        Ok(self.toxic_json(proxy, &t))
    }

    pub async fn update_toxic(
        &self,
        proxy: &str,
        toxic: &str,
        body: &[u8],
    ) -> Result<ToxicJson, ApiError> {
        let _op = self.ops.lock().await;
        let p = self.get(proxy)?;
        let (body, ttl, only_ttl) = split_ttl(body)?;
        let set = p.toxics.borrow().clone();
        let cur = set.get(toxic).ok_or_else(ApiError::toxic_not_found)?;
        let key = Key::toxic(proxy, toxic);
        if let (Some(ttl), true) = (ttl, only_ttl) {
            // A renewal: the toxic itself is unchanged, so connections redraw nothing.
            self.leases.set(key, ttl);
            return Ok(self.toxic_json(proxy, cur));
        }
        let t = Arc::new(cur.update(&body, p.mode())?);
        if let Some(ttl) = ttl {
            self.leases.set(key, ttl);
        }
        let mut next = (*set).clone();
        for slot in next.list.iter_mut() {
            if slot.name == toxic {
                *slot = t.clone();
            }
        }
        p.toxics.send_replace(Arc::new(next));
        Ok(self.toxic_json(proxy, &t))
    }

    pub async fn delete_toxic(&self, proxy: &str, toxic: &str) -> Result<(), ApiError> {
        let _op = self.ops.lock().await;
        let p = self.get(proxy)?;
        let set = p.toxics.borrow().clone();
        if set.get(toxic).is_none() {
            return Err(ApiError::toxic_not_found());
        }
        let mut next = (*set).clone();
        next.list.retain(|t| t.name != toxic);
        p.toxics.send_replace(Arc::new(next));
        self.leases.clear(&Key::toxic(proxy, toxic));
        crate::log(format_args!("proxy {proxy}: toxic {toxic} removed"));
        Ok(())
    }

    pub fn metrics(&self) -> String {
        let proxies = self.all();
        let views: Vec<_> = proxies
            .iter()
            .map(|p| (p, p.settings(), p.toxics.borrow().list.len()))
            .collect();
        let rows: Vec<Row<'_>> = views
            .iter()
            .map(|(p, s, n)| Row {
                name: &p.name,
                listen: &s.listen,
                upstream: &s.upstream,
                mode: mode_str(s.mode),
                enabled: s.enabled,
                toxics: *n,
                metrics: &p.metrics,
            })
            .collect();
        metrics::render(&rows)
    }

    /// Stops every proxy without waiting (Server's Drop).
    pub fn abort_all(&self) {
        for p in self.all() {
            p.abort();
        }
    }

    /// Stops every proxy (Server::shutdown).
    pub async fn stop_all(&self) {
        let _op = self.ops.lock().await;
        let all: Vec<_> = std::mem::take(&mut *self.map()).into_values().collect();
        for p in all {
            p.stop().await;
        }
    }
}

fn settings(c: &ProxyConfig) -> Settings {
    Settings {
        listen: c.listen.clone(),
        upstream: c.upstream.clone(),
        enabled: c.enabled,
        mode: c.mode,
    }
}

fn config(i: Input, at: Option<usize>) -> Result<ProxyConfig, ApiError> {
    let suffix = at.map(|n| format!(" at proxy {n}")).unwrap_or_default();
    let name = i
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::missing_field(format!("name{suffix}")))?;
    let upstream = i
        .upstream
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::missing_field(format!("upstream{suffix}")))?;
    Ok(ProxyConfig {
        name,
        listen: i.listen.unwrap_or_default(),
        upstream,
        enabled: i.enabled.unwrap_or(true),
        mode: i.mode.unwrap_or_default(),
    })
}

/// Names go into URLs; refuse what cannot be addressed there.
fn check(c: &ProxyConfig) -> Result<(), ApiError> {
    if c.name.is_empty() {
        return Err(ApiError::missing_field("name"));
    }
    if c.upstream.is_empty() {
        return Err(ApiError::missing_field("upstream"));
    }
    if c.name.contains('/') {
        return Err(ApiError::bad_body(format!(
            "proxy name `{}` must not contain `/`",
            c.name
        )));
    }
    Ok(())
}

/// A proxy listening on `cur` already satisfies `want` when they are the same text, or
/// `want` resolves to the same address.
fn same_listen(cur: &str, want: &str) -> bool {
    use std::net::ToSocketAddrs;
    if cur == want {
        return true;
    }
    let resolve = |s: &str| s.to_socket_addrs().ok().map(|a| a.collect::<Vec<_>>());
    matches!((resolve(cur), resolve(want)), (Some(a), Some(b)) if !b.is_empty() && b.iter().all(|x| x.port() != 0 && a.contains(x)))
}
