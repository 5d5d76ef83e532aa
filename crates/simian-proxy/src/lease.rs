//! Leases (an extension to Toxiproxy's API): a toxic added, or a disable made, with a
//! `ttl` in milliseconds undoes itself once the ttl passes without a renewal, so a fault
//! outlives the runner that set it by at most its ttl. A renewal sends `ttl` again.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::ApiError;

/// The longest lease accepted: a week.
const MAX_TTL_MS: u64 = 7 * 24 * 3600 * 1000;

/// What a lease undoes when it runs out.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// Deletes the toxic.
    Toxic { proxy: String, toxic: String },
    /// Enables the proxy again.
    Disabled { proxy: String },
}

impl Key {
    pub fn toxic(proxy: &str, toxic: &str) -> Key {
        Key::Toxic {
            proxy: proxy.into(),
            toxic: toxic.into(),
        }
    }

    pub fn disabled(proxy: &str) -> Key {
        Key::Disabled {
            proxy: proxy.into(),
        }
    }

    fn proxy(&self) -> &str {
        match self {
            Key::Toxic { proxy, .. } | Key::Disabled { proxy } => proxy,
        }
    }
}

#[derive(Default)]
pub struct Leases {
    until: Mutex<HashMap<Key, Instant>>,
    changed: Notify,
}

impl Leases {
    fn map(&self) -> MutexGuard<'_, HashMap<Key, Instant>> {
        self.until.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets (or renews) the lease of `key` to end `ttl` from now.
    pub fn set(&self, key: Key, ttl: Duration) {
        self.map().insert(key, Instant::now() + ttl);
        self.changed.notify_one();
    }

    pub fn clear(&self, key: &Key) {
        self.map().remove(key);
    }

    /// Every lease on `proxy` (it was deleted or replaced).
    pub fn clear_proxy(&self, proxy: &str) {
        self.map().retain(|k, _| k.proxy() != proxy);
    }

    pub fn clear_all(&self) {
        self.map().clear();
    }

    /// Whole milliseconds left on the lease of `key`, if it has one.
    pub fn expires_in(&self, key: &Key) -> Option<u64> {
        self.map()
            .get(key)
            .map(|t| t.saturating_duration_since(Instant::now()).as_millis() as u64)
    }

    /// Removes and returns the leases that have run out.
    pub fn take_due(&self) -> Vec<Key> {
        let now = Instant::now();
        let mut m = self.map();
        let due: Vec<Key> = m
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &due {
            m.remove(k);
        }
        due
    }

    /// Waits until the earliest lease may have run out, or any lease changed.
    pub async fn wait(&self) {
        let next = self.map().values().min().copied();
        match next {
            Some(t) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(t) => {}
                    _ = self.changed.notified() => {}
                }
            }
            None => self.changed.notified().await,
        }
    }
}

/// Takes the `ttl` member out of a request body: None when absent (or null).
pub fn take_ttl(obj: &mut Map<String, Value>) -> Result<Option<Duration>, ApiError> {
    match obj.remove("ttl") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(ms) if (1..=MAX_TTL_MS).contains(&ms) => Ok(Some(Duration::from_millis(ms))),
            _ => Err(ApiError::bad_body(format!(
                "`ttl` must be a whole number of milliseconds from 1 to {MAX_TTL_MS} (a week), not {v}"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_whole_positive_milliseconds() {
        let mut o: Map<String, Value> = serde_json::from_str(r#"{"ttl": 1500}"#).unwrap();
        assert_eq!(take_ttl(&mut o).unwrap(), Some(Duration::from_millis(1500)));
        assert!(o.is_empty(), "taken out of the body");
        for bad in [
            r#"{"ttl": 0}"#,
            r#"{"ttl": -1}"#,
            r#"{"ttl": 1.5}"#,
            r#"{"ttl": "1s"}"#,
        ] {
            let mut o: Map<String, Value> = serde_json::from_str(bad).unwrap();
            let e = take_ttl(&mut o).unwrap_err();
            assert!(e.message.contains("`ttl` must be"), "{bad}: {}", e.message);
        }
        let mut o: Map<String, Value> = serde_json::from_str(r#"{"ttl": null}"#).unwrap();
        assert_eq!(take_ttl(&mut o).unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn due_leases_are_taken_once_and_renewals_push_them_back() {
        let l = Leases::default();
        let (a, b) = (Key::toxic("db", "lag"), Key::disabled("db"));
        l.set(a.clone(), Duration::from_secs(2));
        l.set(b.clone(), Duration::from_secs(5));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(l.take_due().is_empty());
        l.set(a.clone(), Duration::from_secs(2)); // renewed at 1 s: due at 3 s
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert!(l.take_due().is_empty(), "the renewal moved it");
        assert_eq!(l.expires_in(&a), Some(500));
        tokio::time::advance(Duration::from_millis(600)).await;
        assert_eq!(l.take_due(), vec![a.clone()]);
        assert!(l.take_due().is_empty());
        assert_eq!(l.expires_in(&a), None);
        l.clear_proxy("db");
        assert_eq!(l.expires_in(&b), None);
    }

    /// Polls `f` every 50 ms for up to 10 s; true once it holds.
    async fn eventually(mut f: impl AsyncFnMut() -> bool) -> bool {
        for _ in 0..200 {
            if f().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    #[tokio::test]
    async fn a_leased_toxic_goes_by_itself_unless_renewed() {
        use crate::testutil::*;
        let up = echo_server().await;
        let (s, addr) = proxied(up, crate::Mode::Tcp).await;
        let api = s.api_addr();
        let t = add_toxic(
            &s,
            "p",
            r#"{"name": "lag", "type": "latency", "attributes": {"latency": 300}, "ttl": 1500}"#,
        )
        .await;
        let left = t["expires_in"].as_u64().expect("the reply shows the lease");
        assert!((1000..=1500).contains(&left), "{t}");
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(round_trip(&mut c, b"slow").await >= Duration::from_millis(300));

        // Renewals (only `ttl`) keep it; the toxic itself is the same one.
        let before = s.state_for_tests().generation("p", "lag");
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(700)).await;
            let r = call(api, "POST", "/proxies/p/toxics/lag", r#"{"ttl": 1500}"#).await;
            assert_eq!(r.status, 200, "{}", r.body);
            assert!(
                r.json()["expires_in"].as_u64().unwrap() > 1000,
                "{}",
                r.body
            );
        }
        assert_eq!(s.state_for_tests().generation("p", "lag"), before);
        let listed = call(api, "GET", "/proxies/p", "").await.json();
        assert!(listed["toxics"][0]["expires_in"].is_u64(), "{listed}");

        // Not renewed: it goes, and traffic is fast again on the same connection.
        assert!(
            eventually(
                async || call(api, "GET", "/proxies/p/toxics", "").await.body.trim() == "[]"
            )
            .await,
            "the toxic expired"
        );
        assert!(round_trip(&mut c, b"fast").await < Duration::from_millis(300));
        // A late renewal cannot bring it back.
        let r = call(api, "POST", "/proxies/p/toxics/lag", r#"{"ttl": 1500}"#).await;
        assert_eq!(r.status, 404, "{}", r.body);
        s.shutdown().await;
    }

    #[tokio::test]
    async fn a_leased_disable_ends_by_itself_and_cannot_be_renewed_once_enabled() {
        use crate::testutil::*;
        let up = echo_server().await;
        let (s, addr) = proxied(up, crate::Mode::Tcp).await;
        let api = s.api_addr();
        let r = call(
            api,
            "POST",
            "/proxies/p",
            r#"{"enabled": true, "ttl": 1000}"#,
        )
        .await;
        assert_eq!(r.status, 400, "a ttl on an enable is refused: {}", r.body);
        assert!(r.json()["error"]
            .as_str()
            .unwrap()
            .contains("how long a disable lasts"));
        let r = call(
            api,
            "POST",
            "/proxies/p",
            r#"{"enabled": false, "ttl": 1000}"#,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["enabled"], false);
        assert!(r.json()["expires_in"].as_u64().unwrap() <= 1000);
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "disabled"
        );
        let r = call(api, "POST", "/proxies/p", r#"{"ttl": 1000}"#).await;
        assert_eq!(r.status, 200, "renewed while disabled: {}", r.body);
        assert!(
            eventually(async || call(api, "GET", "/proxies/p", "").await.json()["enabled"] == true)
                .await,
            "enabled again by itself"
        );
        let listed = call(api, "GET", "/proxies/p", "").await.json();
        assert!(listed.get("expires_in").is_none(), "{listed}");
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        round_trip(&mut c, b"back").await;
        // After the revert (or the expiry), a late renewal must not disable it again.
        let r = call(api, "POST", "/proxies/p", r#"{"ttl": 1000}"#).await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(
            call(api, "GET", "/proxies/p", "").await.json()["enabled"],
            true
        );

        // An enable by hand, a delete and a reset all end leases.
        call(
            api,
            "POST",
            "/proxies/p",
            r#"{"enabled": false, "ttl": 60000}"#,
        )
        .await;
        call(api, "POST", "/proxies/p", r#"{"enabled": true}"#).await;
        assert!(call(api, "GET", "/proxies/p", "")
            .await
            .json()
            .get("expires_in")
            .is_none());
        add_toxic(&s, "p", r#"{"name": "x", "type": "latency", "ttl": 60000}"#).await;
        call(api, "POST", "/reset", "").await;
        add_toxic(&s, "p", r#"{"name": "x", "type": "latency"}"#).await;
        let t = call(api, "GET", "/proxies/p/toxics/x", "").await.json();
        assert!(
            t.get("expires_in").is_none(),
            "the old lease died with the reset: {t}"
        );
        let r = call(
            api,
            "POST",
            "/proxies",
            r#"{"name": "q", "upstream": "127.0.0.1:9", "ttl": 5}"#,
        )
        .await;
        assert_eq!(r.status, 400, "{}", r.body);
        s.shutdown().await;
    }
}
