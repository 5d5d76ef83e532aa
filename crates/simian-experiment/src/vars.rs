//! `${name}` substitution in string values, with `${name:-default}` and `$${` for a literal `${`.

use serde_json::Value;

use crate::load::Ctx;
use crate::tree::{Node, Path, Seg};

/// What the `http` traffic shifter fills in itself, at each step.
const SHIFTER_TEMPLATES: [&str; 5] = ["percent", "fraction", "from", "to", "state"];

pub(crate) fn substitute(
    v: &mut Value,
    at: &Path,
    ctx: &mut Ctx,
    var: &dyn Fn(&str) -> Option<String>,
) {
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute(item, &at.index(i), ctx, var);
            }
        }
        Value::Object(m) => {
            let in_via = matches!(at.0.last(), Some(Seg::Key(k)) if k == "via");
            for (k, item) in m.iter_mut() {
                if in_via && k == "http" {
                    // The webhook shifter's own templates are filled per step, not here.
                    let keep = |name: &str| {
                        SHIFTER_TEMPLATES
                            .contains(&name)
                            .then(|| format!("${{{name}}}"))
                            .or_else(|| var(name))
                    };
                    substitute(item, &at.key(k), ctx, &keep);
                } else {
                    substitute(item, &at.key(k), ctx, var);
                }
            }
        }
        Value::String(s) if s.contains("${") => {
            let node = ctx.tree.walk(&at.0);
            let (base, offset_ok, plain) = match node {
                Node::Scalar {
                    pos, plain, text, ..
                } => (*pos, !text.contains('\n'), *plain),
                n => (n.pos(), false, false),
            };
            let quoted = matches!(node, Node::Scalar { quoted: true, .. });
            match expand(s, var) {
                Ok(out) => {
                    // A plain scalar that was all variables takes the type the value reads as.
                    *v = if plain {
                        match serde_yaml::from_str::<serde_yaml::Value>(&out) {
                            Ok(y @ (serde_yaml::Value::Number(_) | serde_yaml::Value::Bool(_))) => {
                                serde_json::to_value(y).unwrap_or(Value::String(out))
                            }
                            _ => Value::String(out),
                        }
                    } else {
                        Value::String(out)
                    };
                }
                Err(errs) => {
                    ctx.undefined_vars = true;
                    for (offset, width, name) in errs {
                        let mut pos = base;
                        if offset_ok {
                            pos.col += offset + usize::from(quoted);
                        }
                        let hint = format!(
                            "pass it with `--var {name}=VALUE`, set the environment variable, or give a default: `${{{name}:-VALUE}}`{}",
                            if name.starts_with("lab.") { "; lab variables need a running lab (`simian lab up`) or `simian run --lab`" } else { "" }
                        );
                        ctx.push(
                            pos,
                            width,
                            format!("undefined variable `{name}`"),
                            Some(hint),
                        );
                    }
                }
            }
        }
        _ => {}
    }
}

/// Expands variables in `s`; on failure, the (char offset, width, name) of each undefined one.
pub fn expand(
    s: &str,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<(usize, usize, String)>> {
    let mut out = String::new();
    let mut errs = Vec::new();
    let mut rest = s;
    let mut consumed = 0usize; // chars consumed so far
    while let Some(i) = rest.find("${") {
        if rest[..i].ends_with('$') {
            out.push_str(&rest[..i - 1]);
            out.push_str("${");
            consumed += rest[..i + 2].chars().count();
            rest = &rest[i + 2..];
            continue;
        }
        out.push_str(&rest[..i]);
        let at = consumed + rest[..i].chars().count();
        let Some(end) = rest[i..].find('}') else {
            errs.push((at, 2, "${".to_string()));
            break;
        };
        let inner = &rest[i + 2..i + end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n.trim(), Some(d)),
            None => (inner.trim(), None),
        };
        match var(name).or_else(|| default.map(str::to_string)) {
            Some(val) => out.push_str(&val),
            None => errs.push((at, inner.chars().count() + 3, name.to_string())),
        }
        consumed = at + rest[i..i + end + 1].chars().count();
        rest = &rest[i + end + 1..];
    }
    out.push_str(rest);
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(n: &str) -> Option<String> {
        match n {
            "lab.us-east.edge" => Some("http://127.0.0.1:9".into()),
            "rate" => Some("20".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_defaults_and_escapes() {
        assert_eq!(
            expand("${lab.us-east.edge}/play", &vars).unwrap(),
            "http://127.0.0.1:9/play"
        );
        assert_eq!(expand("${nope:-5s}", &vars).unwrap(), "5s");
        assert_eq!(expand("cost $${rate}", &vars).unwrap(), "cost ${rate}");
        let e = expand("a ${x} b ${y}", &vars).unwrap_err();
        assert_eq!(e, vec![(2, 4, "x".into()), (9, 4, "y".into())]);
    }
}
