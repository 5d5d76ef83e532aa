//! The schedule file's parser and validator, and the rendering of its diagnostics, on any
//! text: no panic, no hang.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    // A directory that does not exist, so experiment paths resolve nowhere.
    let file = Path::new("/nonexistent-simian-fuzz/schedule.yaml");
    if let Err(diags) = simian_schedule::config::parse(file, source) {
        for d in &diags {
            let _ = d.render(source);
        }
    }
});
