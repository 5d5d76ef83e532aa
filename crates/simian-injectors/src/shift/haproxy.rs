//! HAProxy: server weights through the runtime API on the admin socket.
//!
//! One command per connection (the API's non-interactive mode): HAProxy answers and
//! closes. A shift scales the `from` servers' weights down by the share moved; the `to`
//! servers keep theirs, so the balancer sends them the difference. Revert sets every
//! recorded weight back.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use simian_experiment::{HaproxyShifter, ShiftFault as Config};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{truncate, Backend, ShiftRevert};
use crate::{FaultError, Reverted};

/// Each command gets this long to connect and answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// HAProxy's largest server weight.
const MAX_WEIGHT: u32 = 256;

/// The weights before the shift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Original {
    /// The admin socket: a path or `tcp:HOST:PORT`.
    pub socket: String,
    pub backend: String,
    /// Every `from` and `to` server with its weight before the shift.
    pub servers: Vec<ServerWeight>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerWeight {
    pub server: String,
    pub weight: u32,
}

pub(crate) struct Haproxy {
    socket: String,
    backend: String,
    /// `from` servers with their weights when built (used if `set` comes before `save`).
    from: Vec<ServerWeight>,
    to: Vec<ServerWeight>,
    /// What `save` read: the weights every step scales from.
    saved: Mutex<Option<Vec<ServerWeight>>>,
}

impl Haproxy {
    /// Checks that the backend and every named server exist, and reads their weights.
    pub(crate) async fn build(
        _name: &str,
        _cfg: &Config,
        h: &HaproxyShifter,
    ) -> Result<Haproxy, FaultError> {
        let mut problems = Vec::new();
        if h.from_servers.is_empty() {
            problems
                .push("`from_servers` is empty: name the servers traffic moves away from".into());
        }
        if h.to_servers.is_empty() {
            problems.push("`to_servers` is empty: name the servers that take the traffic".into());
        }
        for n in std::iter::once(&h.backend)
            .chain(&h.from_servers)
            .chain(&h.to_servers)
        {
            if !valid_name(n) {
                problems.push(format!(
                    "`{n}` is not a HAProxy name (letters, digits, `-`, `_`, `.`, `:`)"
                ));
            }
        }
        if let Some(both) = h.from_servers.iter().find(|s| h.to_servers.contains(s)) {
            problems.push(format!(
                "server `{both}` is in both `from_servers` and `to_servers`"
            ));
        }
        if !problems.is_empty() {
            return Err(FaultError::Config(problems.join("; ")));
        }
        Socket::parse(&h.socket)?;

        let unreachable = |e: String| FaultError::Targets {
            message: format!("cannot use the HAProxy admin socket at {}: {e}", h.socket),
            hint: Some(format!(
                "is HAProxy running with `stats socket {} level admin` in its `global` section?",
                h.socket.strip_prefix("tcp:").unwrap_or(&h.socket)
            )),
        };
        let answer = command(&h.socket, &format!("show servers state {}", h.backend))
            .await
            .map_err(unreachable)?;
        let weights = match parse_servers_state(&answer, &h.backend) {
            Ok(w) => w,
            Err(_) if answer.trim() == "Can't find backend." => {
                let names = command(&h.socket, "show backend")
                    .await
                    .map(|a| parse_backends(&a).join(", "))
                    .unwrap_or_default();
                return Err(FaultError::Targets {
                    message: format!("HAProxy at {} has no backend `{}`", h.socket, h.backend),
                    hint: Some(if names.is_empty() {
                        "it lists no backends".into()
                    } else {
                        format!("its backends are {names}")
                    }),
                });
            }
            Err(e) => return Err(unreachable(e)),
        };
        let resolve = |names: &[String]| -> Result<Vec<ServerWeight>, FaultError> {
            names
                .iter()
                .map(|n| match weights.iter().find(|w| &w.server == n) {
                    Some(w) => Ok(w.clone()),
                    None => Err(FaultError::Targets {
                        message: format!(
                            "backend `{}` at {} has no server `{n}`",
                            h.backend, h.socket
                        ),
                        hint: Some(format!(
                            "its servers are {}",
                            weights
                                .iter()
                                .map(|w| w.server.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )),
                    }),
                })
                .collect()
        };
        Ok(Haproxy {
            socket: h.socket.clone(),
            backend: h.backend.clone(),
            from: resolve(&h.from_servers)?,
            to: resolve(&h.to_servers)?,
            saved: Mutex::new(None),
        })
    }

    /// (targets, universe, eligible) for the plan: the servers it drains, of those it
    /// moves traffic between.
    pub(crate) fn describe(&self) -> (Vec<String>, String, usize) {
        let targets = self
            .from
            .iter()
            .map(|w| format!("server {}/{} (weight {})", self.backend, w.server, w.weight))
            .collect();
        (
            targets,
            format!("servers of backend {} at {}", self.backend, self.socket),
            self.from.len() + self.to.len(),
        )
    }

    fn server(&self, name: &str) -> String {
        format!("{}/{name}", self.backend)
    }
}

#[async_trait::async_trait]
impl Backend for Haproxy {
    async fn save(&self) -> Result<ShiftRevert, FaultError> {
        let mut servers = Vec::new();
        for s in self.from.iter().chain(&self.to) {
            let answer = command(
                &self.socket,
                &format!("get weight {}", self.server(&s.server)),
            )
            .await
            .map_err(|e| FaultError::Action(format!("read the weight of {}: {e}", s.server)))?;
            let weight = parse_weight(&answer).map_err(|e| {
                FaultError::Action(format!(
                    "read the weight of {}: {e}",
                    self.server(&s.server)
                ))
            })?;
            servers.push(ServerWeight {
                server: s.server.clone(),
                weight,
            });
        }
        *self.saved.lock().expect("weights lock") = Some(servers.clone());
        Ok(ShiftRevert::Haproxy(Original {
            socket: self.socket.clone(),
            backend: self.backend.clone(),
            servers,
        }))
    }

    async fn set(&self, share: f64) -> Result<(), FaultError> {
        let saved = self.saved.lock().expect("weights lock").clone();
        let from: Vec<ServerWeight> = match saved {
            Some(all) => all
                .into_iter()
                .filter(|w| self.from.iter().any(|f| f.server == w.server))
                .collect(),
            None => self.from.clone(),
        };
        for w in &from {
            let weight = scaled(w.weight, share)?;
            set_weight(&self.socket, &self.server(&w.server), weight).await?;
        }
        Ok(())
    }
}

/// Sets every recorded weight back; repeating it changes nothing.
pub async fn restore(o: &Original) -> Result<Reverted, FaultError> {
    let mut actions = Vec::new();
    for s in &o.servers {
        let server = format!("{}/{}", o.backend, s.server);
        match set_weight(&o.socket, &server, s.weight).await {
            Ok(()) => actions.push(format!("set weight {server} {}", s.weight)),
            Err(FaultError::Action(e))
                if e.ends_with("No such server.") || e.ends_with("No such backend.") =>
            {
                actions.push(format!("server {server} is gone"))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Reverted { actions })
}

/// The weight of a `from` server once `share` of its traffic has moved.
fn scaled(original: u32, share: f64) -> Result<u32, FaultError> {
    if !(0.0..=1.0).contains(&share) {
        return Err(FaultError::Config(format!(
            "a share must be within 0..=1, not {share}"
        )));
    }
    Ok(((original as f64) * (1.0 - share)).round() as u32)
}

async fn set_weight(socket: &str, server: &str, weight: u32) -> Result<(), FaultError> {
    let weight = weight.min(MAX_WEIGHT);
    let answer = command(socket, &format!("set weight {server} {weight}"))
        .await
        .map_err(|e| FaultError::Action(format!("set weight {server} {weight}: {e}")))?;
    match answer.trim() {
        "" => Ok(()),
        err => Err(FaultError::Action(format!(
            "set weight {server} {weight}: HAProxy answered: {err}"
        ))),
    }
}

/// Where the admin socket listens.
enum Socket<'a> {
    Unix(&'a str),
    Tcp(&'a str),
}

impl<'a> Socket<'a> {
    fn parse(s: &'a str) -> Result<Socket<'a>, FaultError> {
        let bad = || {
            FaultError::Config(format!(
                "invalid HAProxy admin socket `{s}`: expected a path (`/run/haproxy/admin.sock`) or `tcp:HOST:PORT`"
            ))
        };
        if let Some(addr) = s.strip_prefix("tcp:") {
            match addr.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                    Ok(Socket::Tcp(addr))
                }
                _ => Err(bad()),
            }
        } else {
            let path = s.strip_prefix("unix:").unwrap_or(s);
            if path.is_empty() {
                return Err(bad());
            }
            Ok(Socket::Unix(path))
        }
    }
}

/// Sends one command and reads HAProxy's whole answer (it closes the connection after it).
async fn command(socket: &str, cmd: &str) -> Result<String, String> {
    let run = async {
        match Socket::parse(socket).map_err(|e| e.to_string())? {
            Socket::Unix(path) => {
                let s = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                exchange(s, cmd).await
            }
            Socket::Tcp(addr) => {
                let s = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                exchange(s, cmd).await
            }
        }
    };
    tokio::time::timeout(TIMEOUT, run)
        .await
        .map_err(|_| format!("no answer within {}s", TIMEOUT.as_secs()))?
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    cmd: &str,
) -> Result<String, String> {
    s.write_all(format!("{cmd}\n").as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .await
        .map_err(|e| format!("read the answer: {e}"))?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// `12 (initial 12)` → 12; anything else is HAProxy's error text.
fn parse_weight(answer: &str) -> Result<u32, String> {
    let a = answer.trim();
    a.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .filter(|_| a.contains("(initial"))
        .ok_or_else(|| {
            format!(
                "HAProxy answered: {}",
                if a.is_empty() { "nothing" } else { a }
            )
        })
}

/// The servers and current weights in `show servers state BACKEND`'s answer.
fn parse_servers_state(answer: &str, backend: &str) -> Result<Vec<ServerWeight>, String> {
    let unexpected = || {
        let a = answer.trim();
        format!(
            "unexpected answer to `show servers state`: {}",
            truncate(a, 200)
        )
    };
    let header = answer
        .lines()
        .find_map(|l| l.strip_prefix("# "))
        .ok_or_else(unexpected)?;
    let cols: Vec<&str> = header.split_whitespace().collect();
    let col = |name: &str| cols.iter().position(|c| *c == name).ok_or_else(unexpected);
    let (be, srv, weight) = (col("be_name")?, col("srv_name")?, col("srv_uweight")?);
    let mut out = Vec::new();
    for line in answer.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(be) != Some(&backend) {
            continue;
        }
        let (Some(name), Some(w)) = (f.get(srv), f.get(weight).and_then(|w| w.parse().ok())) else {
            continue;
        };
        out.push(ServerWeight {
            server: name.to_string(),
            weight: w,
        });
    }
    Ok(out)
}

/// The names in `show backend`'s answer.
fn parse_backends(answer: &str) -> Vec<String> {
    answer
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// HAProxy's proxy and server names; anything else could smuggle a second command (`;`).
fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATE: &str = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n3 app 1 east1 127.0.0.1 2 0 5 10 2 1 0 2 0 0 0 0 - 18991 - 0 0 - - 0\n3 app 2 east2 127.0.0.1 2 0 10 10 2 1 0 2 0 0 0 0 - 18992 - 0 0 - - 0\n3 app 3 west1 127.0.0.1 2 0 20 20 2 1 0 2 0 0 0 0 - 18993 - 0 0 - - 0\n\n";

    fn sw(server: &str, weight: u32) -> ServerWeight {
        ServerWeight {
            server: server.into(),
            weight,
        }
    }

    #[test]
    fn weights_shrink_with_the_share_and_drain_at_all_of_it() {
        assert_eq!(scaled(10, 0.0).unwrap(), 10);
        assert_eq!(scaled(10, 0.1).unwrap(), 9);
        assert_eq!(scaled(10, 0.25).unwrap(), 8); // 7.5 rounds up
        assert_eq!(scaled(10, 0.5).unwrap(), 5);
        assert_eq!(scaled(10, 1.0).unwrap(), 0);
        assert_eq!(scaled(256, 0.5).unwrap(), 128);
        assert_eq!(scaled(0, 0.5).unwrap(), 0);
        assert_eq!(scaled(1, 0.1).unwrap(), 1);
        assert!(scaled(10, 1.5).is_err());
        assert!(scaled(10, f64::NAN).is_err());
    }

    #[test]
    fn get_weight_answers_parse_to_the_current_weight() {
        assert_eq!(parse_weight("12 (initial 12)\n\n"), Ok(12));
        assert_eq!(parse_weight("5 (initial 10)\n"), Ok(5));
        assert_eq!(
            parse_weight("No such server.\n\n"),
            Err("HAProxy answered: No such server.".into())
        );
        assert_eq!(parse_weight(""), Err("HAProxy answered: nothing".into()));
    }

    #[test]
    fn servers_state_lists_each_server_of_the_backend_with_its_weight() {
        assert_eq!(
            parse_servers_state(STATE, "app").unwrap(),
            vec![sw("east1", 5), sw("east2", 10), sw("west1", 20)]
        );
        assert_eq!(parse_servers_state(STATE, "other").unwrap(), vec![]);
        assert!(parse_servers_state("Can't find backend.\n\n", "app").is_err());
        assert_eq!(
            parse_backends("# name\napp\nstatic\n\n"),
            vec!["app".to_string(), "static".to_string()]
        );
    }

    #[test]
    fn sockets_are_paths_or_tcp_addresses() {
        assert!(matches!(
            Socket::parse("/run/haproxy/admin.sock"),
            Ok(Socket::Unix("/run/haproxy/admin.sock"))
        ));
        assert!(matches!(
            Socket::parse("unix:/tmp/a.sock"),
            Ok(Socket::Unix("/tmp/a.sock"))
        ));
        assert!(matches!(
            Socket::parse("tcp:127.0.0.1:9999"),
            Ok(Socket::Tcp("127.0.0.1:9999"))
        ));
        assert!(Socket::parse("tcp:127.0.0.1").is_err());
        assert!(Socket::parse("tcp::99").is_err());
        assert!(Socket::parse("").is_err());
    }

    #[test]
    fn names_that_could_chain_commands_are_refused() {
        assert!(valid_name("east-1_a.b:c"));
        assert!(!valid_name("east1; shutdown sessions"));
        assert!(!valid_name("a b"));
        assert!(!valid_name(""));
    }

    #[test]
    fn the_record_round_trips_through_the_journal() {
        let o = Original {
            socket: "/run/haproxy/admin.sock".into(),
            backend: "app".into(),
            servers: vec![sw("east1", 10), sw("west1", 20)],
        };
        let json = serde_json::to_string(&ShiftRevert::Haproxy(o.clone())).unwrap();
        assert!(json.contains(r#""via":"haproxy""#), "{json}");
        let ShiftRevert::Haproxy(back) = serde_json::from_str(&json).unwrap() else {
            panic!("not a haproxy record: {json}");
        };
        assert_eq!(back, o);
    }
}
