//! The experiment loader (YAML syntax, variables, sections, validation) and the rendering
//! of its diagnostics, as `simian validate` runs them, on any text: no panic, no hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use simian_experiment::{Env, NetfilterFault, ProbeSpec};

/// A fixed environment: no lab, two variables, checks that find nothing.
fn var(name: &str) -> Option<String> {
    match name {
        "zone" => Some("us-east-a".into()),
        "hold" => Some("10s".into()),
        _ => None,
    }
}

fn no_problems_probe(_: &ProbeSpec) -> Vec<String> {
    Vec::new()
}

fn no_problems_netfilter(_: &NetfilterFault) -> Vec<String> {
    Vec::new()
}

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let env = Env {
        var: &var,
        check_probe: &no_problems_probe,
        check_netfilter: &no_problems_netfilter,
    };
    if let Err(diags) = simian_experiment::load("fuzz.yaml", source, &env) {
        for d in &diags {
            let _ = d.render(source);
        }
    }
});
