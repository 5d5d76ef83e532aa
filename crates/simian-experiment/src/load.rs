//! Loading an experiment: YAML syntax, variables, typed sections (each
//! deserialized on its own so one bad section does not hide the others),
//! then semantic validation. Every problem found is reported in one pass.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::assertion::Assertion;
use crate::diag::{did_you_mean, Diagnostic};
use crate::model::*;
use crate::tree::{self, Node, Path, Pos};

/// A loaded, valid experiment with everything needed to point back into its file.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub file: String,
    pub source: String,
    pub tree: Node,
    pub experiment: Experiment,
    pub hypothesis: Vec<Assertion>,
    /// Judged only after every fault is reverted.
    pub recovery: Vec<Assertion>,
    pub stop_when: Vec<Assertion>,
    /// Every `inject` step in depth-first method order, with its resolved name and path.
    pub faults: Vec<FaultSite>,
}

#[derive(Debug, Clone)]
pub struct FaultSite {
    pub name: String,
    pub path: Path,
    pub inject: Inject,
}

impl Loaded {
    /// A diagnostic at `path` (value position) in this experiment's file.
    pub fn diag_at(&self, path: &Path, message: impl Into<String>) -> Diagnostic {
        let n = self.tree.walk(&path.0);
        Diagnostic::new(&self.file, n.pos(), n.width(), message)
    }
}

/// What a loader needs from the outside world.
pub struct Env<'a> {
    /// Resolves `${name}`; `None` when undefined.
    pub var: &'a dyn Fn(&str) -> Option<String>,
    /// Checks a probe spec, returning every problem as a message.
    pub check_probe: &'a dyn Fn(&ProbeSpec) -> Vec<String>,
    /// Checks a netfilter fault (addresses, groups), every problem as a message.
    pub check_netfilter: &'a dyn Fn(&NetfilterFault) -> Vec<String>,
}

pub(crate) struct Ctx<'a> {
    pub file: &'a str,
    pub tree: &'a Node,
    pub diags: Vec<Diagnostic>,
    /// Set when a `${variable}` was undefined.
    pub undefined_vars: bool,
}

impl Ctx<'_> {
    pub fn at(&mut self, path: &Path, message: impl Into<String>, hint: Option<String>) {
        let n = self.tree.walk(&path.0);
        self.push(n.pos(), n.width(), message, hint);
    }

    pub fn at_key(&mut self, path: &Path, message: impl Into<String>, hint: Option<String>) {
        let n = self.tree.walk_key(&path.0);
        self.push(n.pos(), n.width(), message, hint);
    }

    pub fn push(
        &mut self,
        pos: Pos,
        width: usize,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let mut d = Diagnostic::new(self.file, pos, width, message);
        d.hint = hint;
        self.diags.push(d);
    }

    /// Deserializes `v` (found at `at`) into `T`, recording a positioned error on failure.
    pub fn de<T: DeserializeOwned>(&mut self, v: &Value, at: &Path) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(v) {
            Ok(t) => Some(t),
            Err(e) => {
                let mut path = at.clone();
                for seg in e.path().iter() {
                    match seg {
                        serde_path_to_error::Segment::Seq { index } => path = path.index(*index),
                        serde_path_to_error::Segment::Map { key } => path = path.key(key),
                        serde_path_to_error::Segment::Enum { variant } => path = path.key(variant),
                        serde_path_to_error::Segment::Unknown => {}
                    }
                }
                self.serde_error(&path, &e.inner().to_string());
                None
            }
        }
    }

    fn serde_error(&mut self, path: &Path, msg: &str) {
        let (head, expected) = match msg.split_once(", expected ") {
            Some((h, x)) => (h, Some(x)),
            None => match msg.split_once(": expected ") {
                Some((h, x)) => (h, Some(x)),
                None => (msg, None),
            },
        };
        let names = |x: &str| -> Vec<String> {
            x.trim_start_matches("one of ")
                .split(['`'])
                .enumerate()
                .filter(|(i, _)| i % 2 == 1)
                .map(|(_, s)| s.to_string())
                .collect()
        };
        let hint_for = |word: &str, x: Option<&str>| -> Option<String> {
            let x = x?;
            let ns = names(x);
            match did_you_mean(word, ns.iter().map(String::as_str)) {
                Some(s) => Some(format!("did you mean `{s}`? expected {x}")),
                None => Some(format!("expected {x}")),
            }
        };
        if let Some(field) = between(head, "unknown field `", "`") {
            self.at_key(
                path,
                format!("unknown key `{field}`"),
                hint_for(field, expected),
            );
        } else if let Some(variant) = between(head, "unknown variant `", "`") {
            let parent = self.tree.walk(&path.0);
            let n = parent.entry(variant).map_or(parent, |(k, _)| k);
            let (pos, w) = (n.pos(), n.width());
            self.push(
                pos,
                w,
                format!("unknown kind `{variant}`"),
                hint_for(variant, expected),
            );
        } else if let Some(field) = between(head, "missing field `", "`") {
            let hint = Some(format!(
                "add `{field}:` here; see `simian schema` for the format"
            ));
            self.at_key(path, format!("missing key `{field}`"), hint);
        } else if expected == Some("map with a single key") {
            self.at(
                path,
                "expected exactly one kind here",
                Some("write one key, e.g. `http: {...}`".into()),
            );
        } else {
            self.at(
                path,
                head.to_string(),
                expected.map(|x| format!("expected {}", plain_type(x))),
            );
        }
    }
}

fn sorted(mut d: Vec<Diagnostic>) -> Vec<Diagnostic> {
    d.sort_by_key(|d| (d.pos.line, d.pos.col));
    d
}

/// Rust type names in serde messages, as a YAML author would say them.
fn plain_type(x: &str) -> String {
    match x {
        "f64" | "f32" => "a number".into(),
        "u8" | "u16" | "u32" | "u64" | "usize" | "i32" | "i64" => "a whole number".into(),
        "a boolean" | "bool" => "`true` or `false`".into(),
        _ => x.to_string(),
    }
}

fn between<'s>(s: &'s str, open: &str, close: &str) -> Option<&'s str> {
    let rest = &s[s.find(open)? + open.len()..];
    Some(&rest[..rest.find(close)?])
}

/// Loads and validates an experiment. `file` is the name shown in diagnostics.
pub fn load(file: &str, source: &str, env: &Env) -> Result<Loaded, Vec<Diagnostic>> {
    let syntax = |pos: Pos, msg: String| {
        vec![Diagnostic::new(file, pos, 1, format!("invalid YAML: {msg}"))
            .hint("check indentation, and quote values that contain `: ` or start with `{`, `[`, `*`, `&`")]
    };
    let yaml: serde_yaml::Value = match serde_yaml::from_str(source) {
        Ok(v) => v,
        Err(e) => {
            let pos = e.location().map_or(Pos { line: 1, col: 1 }, |l| Pos {
                line: l.line(),
                col: l.column(),
            });
            let msg = e.to_string();
            let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
            return Err(syntax(pos, msg));
        }
    };
    let tree = tree::parse(source).map_err(|e| syntax(e.pos, e.message))?;
    let mut ctx = Ctx {
        file,
        tree: &tree,
        diags: vec![],
        undefined_vars: false,
    };
    let mut value = match to_json(&yaml) {
        Ok(v) => v,
        Err(msg) => {
            ctx.at(&Path::default(), msg, None);
            return Err(sorted(ctx.diags));
        }
    };
    crate::vars::substitute(&mut value, &Path::default(), &mut ctx, env.var);
    let Value::Object(top) = &value else {
        ctx.at(
            &Path::default(),
            "an experiment must be a mapping",
            Some("start with `version: 1`".into()),
        );
        return Err(sorted(ctx.diags));
    };

    let root = Path::default();
    let known = [
        "version",
        "name",
        "description",
        "steady_state",
        "stop_when",
        "method",
        "guards",
        "proxies",
        "notify",
    ];
    for k in top.keys() {
        if !known.contains(&k.as_str()) {
            let hint = did_you_mean(k, known).map_or_else(
                || format!("top-level keys are {}", known.join(", ")),
                |s| format!("did you mean `{s}`?"),
            );
            ctx.at_key(&root.key(k), format!("unknown key `{k}`"), Some(hint));
        }
    }
    for k in ["version", "name", "steady_state", "method"] {
        if !top.contains_key(k) {
            ctx.at(
                &root,
                format!("missing key `{k}`"),
                Some(format!("every experiment needs `{k}`; see `simian schema`")),
            );
        }
    }
    let field = |k: &str| top.get(k).unwrap_or(&Value::Null);
    let version: Option<u32> = top
        .get("version")
        .and_then(|v| ctx.de(v, &root.key("version")));
    let name: Option<String> = top.get("name").and_then(|v| ctx.de(v, &root.key("name")));
    let description: Option<Option<String>> =
        ctx.de(field("description"), &root.key("description"));
    let steady: Option<SteadyState> = top
        .get("steady_state")
        .and_then(|v| de_steady(&mut ctx, v, &root.key("steady_state")));
    let stop_when: Option<Vec<String>> = match top.get("stop_when") {
        None => Some(vec![]),
        Some(v) => ctx.de(v, &root.key("stop_when")),
    };
    let method: Option<Vec<Step>> = top
        .get("method")
        .and_then(|v| de_list(&mut ctx, v, &root.key("method")));
    let guards: Option<Guards> = match top.get("guards") {
        None => Some(Guards::default()),
        Some(v) => ctx.de(v, &root.key("guards")),
    };
    let proxies: Option<std::collections::BTreeMap<String, RunProxy>> = match top.get("proxies") {
        None => Some(Default::default()),
        Some(v) => ctx.de(v, &root.key("proxies")),
    };
    let notify: Option<Vec<Notify>> = match top.get("notify") {
        None => Some(vec![]),
        Some(v) => de_list(&mut ctx, v, &root.key("notify")),
    };

    let (
        Some(version),
        Some(name),
        Some(description),
        Some(steady_state),
        Some(stop_when),
        Some(method),
        Some(guards),
        Some(proxies),
        Some(notify),
    ) = (
        version,
        name,
        description,
        steady,
        stop_when,
        method,
        guards,
        proxies,
        notify,
    )
    else {
        // Assertions only need probe names and strings: check them from the raw values.
        let raw = top.get("steady_state");
        let probes: Vec<String> = raw
            .and_then(|s| s.get("probes"))
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let strings = |v: Option<&Value>| -> Vec<String> {
            v.and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|x| x.as_str().unwrap_or("").to_string())
                        .collect()
                })
                .unwrap_or_default()
        };
        let hyp = strings(raw.and_then(|s| s.get("hypothesis")));
        let rec = strings(raw.and_then(|s| s.get("recovery")));
        let stop = strings(top.get("stop_when"));
        crate::validate::assertions_only(&mut ctx, &probes, &hyp, &rec, &stop);
        return Err(sorted(ctx.diags));
    };
    let mut experiment = Experiment {
        version,
        name,
        description,
        steady_state,
        stop_when,
        method,
        guards,
        proxies,
        notify,
    };
    let checked = crate::validate::validate(&mut ctx, &experiment, env);
    if !ctx.diags.is_empty() {
        return Err(sorted(ctx.diags));
    }
    let crate::validate::Checked {
        hypothesis,
        recovery,
        stop_when,
        faults,
    } = checked;
    name_faults(
        &mut experiment.method,
        &mut faults.iter().map(|f| f.name.clone()),
    );
    Ok(Loaded {
        file: file.to_string(),
        source: source.to_string(),
        tree,
        experiment,
        hypothesis,
        recovery,
        stop_when,
        faults,
    })
}

/// Writes each fault's resolved name into its step, in the order validation found them.
fn name_faults(steps: &mut [Step], names: &mut dyn Iterator<Item = String>) {
    for step in steps {
        match step {
            Step::Inject(i) => i.name = names.next(),
            Step::Evacuate(e) => e.name = names.next(),
            Step::Parallel(inner) => name_faults(inner, names),
            Step::Wait(_) | Step::Revert(_) | Step::Confirm(_) => {}
        }
    }
}

/// `steady_state`, with each probe deserialized on its own.
fn de_steady(ctx: &mut Ctx, v: &Value, at: &Path) -> Option<SteadyState> {
    let Value::Object(m) = v else {
        return ctx.de(v, at);
    };
    let mut ok = true;
    let mut stripped = m.clone();
    if let Some(Value::Object(probes)) = m.get("probes") {
        for (name, spec) in probes {
            ok &= ctx
                .de::<ProbeSpec>(spec, &at.key("probes").key(name))
                .is_some();
        }
        stripped.insert("probes".into(), Value::Object(Default::default()));
    }
    let mut s: SteadyState = ctx.de(&Value::Object(stripped), at)?;
    if !ok {
        return None;
    }
    if let Some(p) = m.get("probes") {
        s.probes = serde_json::from_value(p.clone()).ok()?;
    }
    Some(s)
}

/// A list whose items are deserialized one by one, so every bad item is reported.
fn de_list<T: DeserializeOwned>(ctx: &mut Ctx, v: &Value, at: &Path) -> Option<Vec<T>> {
    let Value::Array(items) = v else {
        return ctx.de(v, at);
    };
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match ctx.de(item, &at.index(i)) {
            Some(t) => out.push(t),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn to_json(v: &serde_yaml::Value) -> Result<Value, String> {
    use serde_yaml::Value as Y;
    Ok(match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => serde_json::to_value(n).map_err(|e| e.to_string())?,
        Y::String(s) => Value::String(s.clone()),
        Y::Sequence(s) => Value::Array(s.iter().map(to_json).collect::<Result<_, _>>()?),
        Y::Mapping(m) => {
            let mut o = serde_json::Map::new();
            for (k, v) in m {
                let k = match k {
                    Y::String(s) => s.clone(),
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    _ => return Err("mapping keys must be plain words".into()),
                };
                o.insert(k, to_json(v)?);
            }
            Value::Object(o)
        }
        Y::Tagged(t) => to_json(&t.value)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_load(src: &str) -> Result<Loaded, Vec<Diagnostic>> {
        let var = |n: &str| (n == "lab.us-east.edge").then(|| "http://127.0.0.1:9".to_string());
        let check = |_: &ProbeSpec| Vec::new();
        load(
            "x.yaml",
            src,
            &Env {
                var: &var,
                check_probe: &check,
                check_netfilter: &|_| Vec::new(),
            },
        )
    }

    const GOOD: &str = "version: 1\nname: t\nsteady_state:\n  probes:\n    users:\n      http: { url: \"${lab.us-east.edge}/play\", rate: 20 }\n  hypothesis:\n    - users.p99 < 250ms\nmethod:\n  - inject:\n      name: zone\n      process: { target: { lab: { zone: us-east-a } } }\n  - wait: 10s\n";

    #[test]
    fn a_good_experiment_loads_with_variables() {
        let l = env_load(GOOD).unwrap();
        match &l.experiment.steady_state.probes["users"] {
            ProbeSpec::Http(h) => assert_eq!(h.url, "http://127.0.0.1:9/play"),
            p => panic!("{p:?}"),
        }
        assert_eq!(l.faults.len(), 1);
        assert_eq!(l.faults[0].name, "zone");
    }

    #[test]
    fn every_problem_is_reported_in_one_pass() {
        let bad = GOOD
            .replace("rate: 20", "rate: 20, bogus: 1")
            .replace("users.p99 < 250ms", "users.p98 < 250ms")
            .replace("wait: 10s", "wait: 10 parsecs")
            .replace("name: t", "name: t\nsteady: 1");
        let errs = env_load(&bad).unwrap_err();
        let msgs: Vec<String> = errs
            .iter()
            .map(|d| format!("{}:{} {}", d.pos.line, d.pos.col, d.message))
            .collect();
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("3:1 unknown key `steady`")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter().any(|m| m.contains("unknown key `bogus`")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter().any(|m| m.contains("invalid duration")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("9:13 unknown metric `p98`")),
            "{msgs:?}"
        );
        assert_eq!(errs.len(), 4, "{msgs:?}");
    }

    #[test]
    fn semantic_errors_point_inside_strings() {
        let bad = GOOD.replace("users.p99 < 250ms", "users.p98 < 250ms");
        let errs = env_load(&bad).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(
            (errs[0].pos.line, errs[0].pos.col, errs[0].width),
            (8, 13, 3)
        );
    }
}
