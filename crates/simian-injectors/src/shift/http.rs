//! A webhook: templated requests to set, read and restore the traffic split. The lab's
//! global router is one too, with its steering API's requests built in.
//!
//! Templates: `${percent}` (0-100), `${fraction}` (0-1), `${from}`, `${to}`, and in
//! `restore`, `${state}`: the body `get` answered before anything changed. `save` renders
//! the restore request whole into the record, so revert needs nothing else.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use simian_experiment::{HttpRequest, HttpShifter, ShiftFault as Config};
use simian_lab::LabState;

use super::{truncate, Backend, ShiftRevert};
use crate::{FaultError, Reverted};

/// Each request gets this long to answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How much of an error answer's body goes into the message.
const BODY_IN_ERRORS: usize = 300;

/// The state before the shift: the request that puts it back, fully rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Original {
    pub restore: Rendered,
}

/// A request with every template filled in, as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendered {
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
}

pub(crate) struct Http {
    from: String,
    to: String,
    /// The share an `inject: shift` sets, for the plan's description.
    share: f64,
    set: Template,
    get: Option<Template>,
    /// `restore`, or `set` (rendered with percent 0).
    restore: Template,
    universe: String,
    client: HttpClient,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// One request of the config, its method defaulted.
#[derive(Debug, Clone)]
struct Template {
    method: String,
    url: String,
    headers: BTreeMap<String, String>,
    body: Option<String>,
}

/// What templates are filled with.
struct Vars<'a> {
    share: f64,
    from: &'a str,
    to: &'a str,
    /// `get`'s answer; only `restore` sees it.
    state: Option<&'a str>,
}

impl Http {
    pub(crate) fn build(_name: &str, cfg: &Config, h: &HttpShifter) -> Result<Http, FaultError> {
        let set = Template::new(&h.set, "POST");
        let get = h.get.as_ref().map(|g| Template::new(g, "GET"));
        let restore = h.restore.as_ref().map(|r| Template::new(r, "POST"));
        let mut problems = Vec::new();
        set.check("set", false, cfg, &mut problems);
        if let Some(g) = &get {
            g.check("get", false, cfg, &mut problems);
        }
        if let Some(r) = &restore {
            if get.is_none() && r.uses("state") {
                problems.push(
                    "`restore` uses `${state}`, which is what `get` answered: add a `get` request"
                        .into(),
                );
            } else {
                r.check("restore", true, cfg, &mut problems);
            }
        }
        if !problems.is_empty() {
            return Err(FaultError::Config(problems.join("; ")));
        }
        let universe = format!("traffic tool at {}", origin(&set.url));
        Ok(Http::new(cfg, set, get, restore, universe))
    }

    /// The lab's global router: its steering API at `lab.global`.
    pub(crate) fn lab(
        _name: &str,
        cfg: &Config,
        lab: Option<&LabState>,
    ) -> Result<Http, FaultError> {
        let hint = || Some("start a lab (`simian lab up` or `simian run --lab`)".to_string());
        let Some(lab) = lab else {
            return Err(FaultError::Targets {
                message: "`via: lab` shifts the lab's traffic, and no lab is running".into(),
                hint: hint(),
            });
        };
        let vars = lab.variables();
        let Some(global) = vars.get("lab.global").filter(|g| !g.is_empty()) else {
            return Err(FaultError::Targets {
                message: "the running lab has no global router (`lab.global`)".into(),
                hint: hint(),
            });
        };
        let known: Vec<&str> = lab.regions.iter().map(|r| r.name.as_str()).collect();
        for r in [&cfg.from, &cfg.to] {
            if !known.contains(&r.as_str()) {
                return Err(FaultError::Targets {
                    message: format!("the lab has no region `{r}`"),
                    hint: Some(format!("its regions are {}", known.join(", "))),
                });
            }
        }
        Http::steering(global, cfg)
    }

    /// The steering API of a global router at `global`: `GET`/`PUT /steering/{from}` with
    /// `{"to": REGION, "percent": N}`; restore puts the saved entry back verbatim.
    fn steering(global: &str, cfg: &Config) -> Result<Http, FaultError> {
        let global = global.trim_end_matches('/');
        let url = format!("{global}/steering/{}", cfg.from);
        let json: BTreeMap<String, String> =
            [("content-type".to_string(), "application/json".to_string())].into();
        let set = Template {
            method: "PUT".into(),
            url: url.clone(),
            headers: json.clone(),
            body: Some(r#"{"to": "${to}", "percent": ${percent}}"#.into()),
        };
        let get = Template {
            method: "GET".into(),
            url: url.clone(),
            headers: BTreeMap::new(),
            body: None,
        };
        let restore = Template {
            method: "PUT".into(),
            url,
            headers: json,
            body: Some("${state}".into()),
        };
        let mut problems = Vec::new();
        set.check("set", false, cfg, &mut problems);
        if !problems.is_empty() {
            return Err(FaultError::Config(format!(
                "the lab's global router address `{global}` is unusable: {}",
                problems.join("; ")
            )));
        }
        let universe = format!("lab global router at {global}");
        Ok(Http::new(cfg, set, Some(get), Some(restore), universe))
    }

    fn new(
        cfg: &Config,
        set: Template,
        get: Option<Template>,
        restore: Option<Template>,
        universe: String,
    ) -> Http {
        Http {
            from: cfg.from.clone(),
            to: cfg.to.clone(),
            share: cfg.percent.map_or(1.0, |p| p.fraction()),
            restore: restore.unwrap_or_else(|| set.clone()),
            set,
            get,
            universe,
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }

    /// (targets, universe, eligible) for the plan; a traffic split has nothing to count
    /// against (the action says what share it moves).
    pub(crate) fn describe(&self) -> (Vec<String>, String, usize) {
        let r = self.set.render(&self.vars(self.share, None));
        (
            vec![format!("{} {} (per step)", r.method, r.url)],
            self.universe.clone(),
            0,
        )
    }

    fn vars<'a>(&'a self, share: f64, state: Option<&'a str>) -> Vars<'a> {
        Vars {
            share,
            from: &self.from,
            to: &self.to,
            state,
        }
    }
}

#[async_trait::async_trait]
impl Backend for Http {
    async fn save(&self) -> Result<ShiftRevert, FaultError> {
        let state = match &self.get {
            Some(g) => {
                let r = g.render(&self.vars(0.0, None));
                Some(send(&self.client, &r).await.map_err(FaultError::Action)?)
            }
            None => None,
        };
        let restore = self.restore.render(&self.vars(0.0, state.as_deref()));
        Ok(ShiftRevert::Http(Original { restore }))
    }

    async fn set(&self, share: f64) -> Result<(), FaultError> {
        if !(0.0..=1.0).contains(&share) {
            return Err(FaultError::Config(format!(
                "a share must be within 0..=1, not {share}"
            )));
        }
        let r = self.set.render(&self.vars(share, None));
        send(&self.client, &r).await.map_err(FaultError::Action)?;
        Ok(())
    }
}

/// Sends the recorded restore request; it sets an absolute state, so repeating it is harmless.
pub async fn restore(o: &Original) -> Result<Reverted, FaultError> {
    let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    send(&client, &o.restore)
        .await
        .map_err(FaultError::Action)?;
    Ok(Reverted {
        actions: vec![format!("{} {}", o.restore.method, o.restore.url)],
    })
}

impl Template {
    fn new(r: &HttpRequest, default_method: &str) -> Template {
        Template {
            method: r
                .method
                .as_deref()
                .unwrap_or(default_method)
                .trim()
                .to_ascii_uppercase(),
            url: r.url.clone(),
            headers: r.headers.clone(),
            body: r.body.clone(),
        }
    }

    fn texts(&self) -> impl Iterator<Item = &str> {
        [self.method.as_str(), self.url.as_str()]
            .into_iter()
            .chain(self.headers.values().map(String::as_str))
            .chain(self.body.as_deref())
    }

    fn uses(&self, name: &str) -> bool {
        self.texts()
            .any(|t| template_names(t).is_ok_and(|n| n.iter().any(|n| n == name)))
    }

    /// Every problem of this request (`what`: `set`, `get`, `restore`) into `problems`.
    fn check(&self, what: &str, state: bool, cfg: &Config, problems: &mut Vec<String>) {
        let known: &[&str] = if state {
            &["percent", "fraction", "from", "to", "state"]
        } else {
            &["percent", "fraction", "from", "to"]
        };
        for t in self.texts() {
            match template_names(t) {
                Ok(names) => {
                    for n in names.iter().filter(|n| !known.contains(&n.as_str())) {
                        problems.push(format!(
                            "`{what}` uses `${{{n}}}`, which is not one of {}",
                            known
                                .iter()
                                .map(|k| format!("`${{{k}}}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                }
                Err(e) => problems.push(format!("`{what}`: {e}")),
            }
        }
        let sample = self.render(&Vars {
            share: 1.0,
            from: &cfg.from,
            to: &cfg.to,
            state: state.then_some(""),
        });
        if Method::from_bytes(sample.method.as_bytes()).is_err() {
            problems.push(format!(
                "`{what}` has an invalid method `{}`",
                sample.method
            ));
        }
        if let Err(e) = check_url(&sample.url) {
            problems.push(format!("`{what}`: {e}"));
        }
        for (k, v) in &sample.headers {
            if HeaderName::from_bytes(k.as_bytes()).is_err() {
                problems.push(format!("`{what}` has an invalid header name `{k}`"));
            } else if HeaderValue::from_str(v).is_err() {
                problems.push(format!("`{what}` has an invalid value for header `{k}`"));
            }
        }
    }

    fn render(&self, v: &Vars) -> Rendered {
        let mut headers: BTreeMap<String, String> = self
            .headers
            .iter()
            .map(|(k, val)| (k.clone(), render(val, v)))
            .collect();
        let body = self.body.as_deref().map(|b| render(b, v));
        let typed = headers
            .keys()
            .any(|k| k.eq_ignore_ascii_case("content-type"));
        if !typed
            && body
                .as_deref()
                .is_some_and(|b| serde_json::from_str::<serde_json::Value>(b).is_ok())
        {
            headers.insert("content-type".into(), "application/json".into());
        }
        Rendered {
            method: render(&self.method, v),
            url: render(&self.url, v),
            headers,
            body,
        }
    }
}

/// Fills `${...}` in one pass, so a value (say, `${state}`) is never rendered again.
/// Names that are not variables stay as they are (`check` refuses them first).
fn render(t: &str, v: &Vars) -> String {
    let mut out = String::with_capacity(t.len());
    let mut rest = t;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let Some(end) = rest[i..].find('}') else {
            rest = &rest[i..];
            break;
        };
        let name = rest[i + 2..i + end].trim();
        match value(name, v) {
            Some(val) => out.push_str(&val),
            None => out.push_str(&rest[i..i + end + 1]),
        }
        rest = &rest[i + end + 1..];
    }
    out.push_str(rest);
    out
}

fn value(name: &str, v: &Vars) -> Option<String> {
    Some(match name {
        "percent" => number(v.share * 100.0, 2),
        "fraction" => number(v.share, 4),
        "from" => v.from.to_string(),
        "to" => v.to.to_string(),
        "state" => v.state?.to_string(),
        _ => return None,
    })
}

/// `25`, `12.5`, `33.33`: at most `decimals` decimals, no trailing zeros.
fn number(x: f64, decimals: usize) -> String {
    let s = format!("{x:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// The `${...}` names in `t`.
fn template_names(t: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find("${") {
        let Some(end) = rest[i..].find('}') else {
            return Err(format!("`${{` without a closing `}}` in `{t}`"));
        };
        names.push(rest[i + 2..i + end].trim().to_string());
        rest = &rest[i + end + 1..];
    }
    Ok(names)
}

fn check_url(url: &str) -> Result<(), String> {
    let uri: Uri = url.parse().map_err(|_| format!("`{url}` is not a URL"))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(format!(
            "`{url}` is not an `http://` URL (e.g. `http://127.0.0.1:8080/shift`)"
        ));
    }
    Ok(())
}

/// `http://host:port` of a URL template, for the plan's universe.
fn origin(url: &str) -> String {
    match url.parse::<Uri>() {
        Ok(u) => match (u.scheme_str(), u.authority()) {
            (Some(s), Some(a)) => format!("{s}://{a}"),
            _ => url.to_string(),
        },
        Err(_) => url.to_string(),
    }
}

/// Sends `r`; the body of a 2xx answer, else a message with the status and body.
async fn send(client: &HttpClient, r: &Rendered) -> Result<String, String> {
    let what = format!("{} {}", r.method, r.url);
    let mut req = Request::builder()
        .method(r.method.as_str())
        .uri(r.url.as_str())
        .header("user-agent", "simian");
    for (k, v) in &r.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let body = Bytes::from(r.body.clone().unwrap_or_default());
    let req = req
        .body(Full::new(body))
        .map_err(|e| format!("{what}: invalid request: {e}"))?;
    let resp = tokio::time::timeout(TIMEOUT, client.request(req))
        .await
        .map_err(|_| format!("{what}: no answer within {}s", TIMEOUT.as_secs()))?
        .map_err(|e| format!("{what}: {}", error_chain(&e)))?;
    let status = resp.status();
    let bytes = tokio::time::timeout(TIMEOUT, resp.into_body().collect())
        .await
        .map_err(|_| format!("{what}: the answer's body took over {}s", TIMEOUT.as_secs()))?
        .map_err(|e| format!("{what}: read the answer: {e}"))?
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    if !status.is_success() {
        let body = text.trim();
        return Err(if body.is_empty() {
            format!("{what}: answered {status}")
        } else {
            format!(
                "{what}: answered {status}: {}",
                truncate(body, BODY_IN_ERRORS)
            )
        });
    }
    Ok(text)
}

/// hyper's errors say little on top (`client error (Connect)`); their sources say why.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(share: f64, state: Option<&str>) -> Vars<'_> {
        Vars {
            share,
            from: "us-east",
            to: "us-west",
            state,
        }
    }

    fn req(url: &str, body: Option<&str>) -> HttpRequest {
        HttpRequest {
            method: None,
            url: url.into(),
            headers: BTreeMap::new(),
            body: body.map(str::to_string),
        }
    }

    fn cfg(via: HttpShifter) -> Config {
        Config {
            from: "us-east".into(),
            to: "us-west".into(),
            percent: None,
            via: simian_experiment::Shifter::Http(via),
        }
    }

    fn build(
        set: HttpRequest,
        get: Option<HttpRequest>,
        restore: Option<HttpRequest>,
    ) -> Result<Http, FaultError> {
        let h = HttpShifter { set, get, restore };
        Http::build("t", &cfg(h.clone()), &h)
    }

    #[test]
    fn percents_have_at_most_two_decimals_and_no_trailing_zeros() {
        assert_eq!(number(25.0, 2), "25");
        assert_eq!(number(12.5, 2), "12.5");
        assert_eq!(number(100.0 / 3.0, 2), "33.33");
        assert_eq!(number(0.0, 2), "0");
        assert_eq!(number(100.0, 2), "100");
        assert_eq!(number(-0.0, 2), "0");
        assert_eq!(number(0.125, 4), "0.125");
        assert_eq!(number(1.0, 4), "1");
    }

    #[test]
    fn templates_fill_percent_fraction_and_regions() {
        let t = r#"{"from": "${from}", "to": "${to}", "percent": ${percent}, "f": ${fraction}}"#;
        assert_eq!(
            render(t, &vars(0.25, None)),
            r#"{"from": "us-east", "to": "us-west", "percent": 25, "f": 0.25}"#
        );
        assert_eq!(render("/w/${ percent }", &vars(0.125, None)), "/w/12.5");
        assert_eq!(render("no templates", &vars(1.0, None)), "no templates");
        assert_eq!(
            render("${unknown} ${to", &vars(1.0, None)),
            "${unknown} ${to"
        );
    }

    #[test]
    fn state_is_filled_once_and_never_rendered_again() {
        let state = r#"{"note": "${percent} stays", "to": null}"#;
        assert_eq!(render("${state}", &vars(0.0, Some(state))), state);
        // Outside `restore` there is no state: the template stays visible rather than vanish.
        assert_eq!(render("${state}", &vars(0.0, None)), "${state}");
    }

    #[test]
    fn json_bodies_get_a_content_type_unless_one_is_given() {
        let mut t = Template::new(
            &req("http://127.0.0.1:1/s", Some(r#"{"p": ${percent}}"#)),
            "POST",
        );
        let r = t.render(&vars(0.5, None));
        assert_eq!(r.method, "POST");
        assert_eq!(r.body.as_deref(), Some(r#"{"p": 50}"#));
        assert_eq!(r.headers["content-type"], "application/json");
        t.headers.insert("Content-Type".into(), "text/plain".into());
        let r = t.render(&vars(0.5, None));
        assert_eq!(r.headers.len(), 1);
        assert_eq!(r.headers["Content-Type"], "text/plain");
        let plain = Template::new(
            &req("http://127.0.0.1:1/s", Some("weight=${percent}")),
            "POST",
        );
        assert!(plain.render(&vars(0.5, None)).headers.is_empty());
    }

    #[test]
    fn methods_default_per_request_and_are_uppercased() {
        let mut r = req("http://127.0.0.1:1/", None);
        assert_eq!(Template::new(&r, "GET").method, "GET");
        r.method = Some("put".into());
        assert_eq!(Template::new(&r, "GET").method, "PUT");
    }

    #[test]
    fn build_refuses_state_without_get() {
        let err = build(
            req("http://127.0.0.1:1/set", Some("${percent}")),
            None,
            Some(req("http://127.0.0.1:1/set", Some("${state}"))),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("add a `get` request"), "{err}");
        assert!(build(
            req("http://127.0.0.1:1/set", Some("${percent}")),
            Some(req("http://127.0.0.1:1/get", None)),
            Some(req("http://127.0.0.1:1/set", Some("${state}"))),
        )
        .is_ok());
    }

    #[test]
    fn build_reports_every_bad_url_and_template_at_once() {
        let err = build(
            req("https://example.com/set", Some("${percnet}")),
            Some(req("127.0.0.1:1/get", Some("${state}"))),
            None,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("`https://example.com/set` is not an `http://` URL"),
            "{err}"
        );
        assert!(err.contains("`set` uses `${percnet}`"), "{err}");
        assert!(err.contains("`get` uses `${state}`"), "{err}");
        assert!(err.contains("`get`: `127.0.0.1:1/get`"), "{err}");
        let mut bad = req("http://127.0.0.1:1/set", None);
        bad.method = Some("P UT".into());
        bad.headers.insert("bad header".into(), "x".into());
        let err = build(bad, None, None).err().unwrap().to_string();
        assert!(err.contains("invalid method `P UT`"), "{err}");
        assert!(err.contains("invalid header name `bad header`"), "{err}");
    }

    #[test]
    fn the_plan_names_the_request_and_the_tool() {
        let h = build(
            req(
                "http://127.0.0.1:7/shift/${from}?to=${to}&p=${percent}",
                None,
            ),
            None,
            None,
        )
        .unwrap();
        assert_eq!(
            h.describe(),
            (
                vec![
                    "POST http://127.0.0.1:7/shift/us-east?to=us-west&p=100 (per step)".to_string()
                ],
                "traffic tool at http://127.0.0.1:7".to_string(),
                0
            )
        );
    }

    #[test]
    fn the_lab_shifter_needs_a_lab() {
        let h = HttpShifter {
            set: req("http://127.0.0.1:1/", None),
            get: None,
            restore: None,
        };
        let Err(FaultError::Targets { message, hint }) = Http::lab("t", &cfg(h), None) else {
            panic!("a lab shift without a lab must fail");
        };
        assert!(message.contains("no lab is running"), "{message}");
        assert!(hint.unwrap().contains("simian lab up"));
    }

    #[test]
    fn the_lab_router_is_steered_with_put_and_restored_verbatim() {
        let h = HttpShifter {
            set: req("http://127.0.0.1:1/", None),
            get: None,
            restore: None,
        };
        let mut c = cfg(h);
        c.percent = Some(simian_core::Percent(0.3));
        let lab = Http::steering("http://127.0.0.1:8900/", &c).unwrap();
        assert_eq!(
            lab.describe(),
            (
                vec!["PUT http://127.0.0.1:8900/steering/us-east (per step)".to_string()],
                "lab global router at http://127.0.0.1:8900".to_string(),
                0
            )
        );
        let set = lab.set.render(&lab.vars(0.3, None));
        assert_eq!(
            set.body.as_deref(),
            Some(r#"{"to": "us-west", "percent": 30}"#)
        );
        assert_eq!(set.headers["content-type"], "application/json");
        let get = lab.get.as_ref().unwrap().render(&lab.vars(0.0, None));
        assert_eq!(
            (get.method.as_str(), get.url.as_str()),
            ("GET", "http://127.0.0.1:8900/steering/us-east")
        );
        let saved = r#"{"to":null,"percent":0}"#;
        let restore = lab.restore.render(&lab.vars(0.0, Some(saved)));
        assert_eq!(restore.method, "PUT");
        assert_eq!(restore.url, "http://127.0.0.1:8900/steering/us-east");
        assert_eq!(restore.body.as_deref(), Some(saved));
        assert!(Http::steering("https://127.0.0.1:8900", &c).is_err());
    }

    #[test]
    fn the_record_round_trips_through_the_journal() {
        let o = Original {
            restore: Rendered {
                method: "PUT".into(),
                url: "http://127.0.0.1:1/steering/us-east".into(),
                headers: [("content-type".to_string(), "application/json".to_string())].into(),
                body: Some(r#"{"to": null, "percent": 0}"#.into()),
            },
        };
        let json = serde_json::to_string(&ShiftRevert::Http(o.clone())).unwrap();
        assert!(json.contains(r#""via":"http""#), "{json}");
        let ShiftRevert::Http(back) = serde_json::from_str(&json).unwrap() else {
            panic!("not an http record: {json}");
        };
        assert_eq!(back, o);
    }
}
