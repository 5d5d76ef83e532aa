//! The kill switch: a file (or `SIMIAN_KILL_SWITCH`) that stops game days at once.
//!
//! While it is on, no run starts, and a run in progress is sent SIGINT (the runner reverts
//! every fault and exits 2), then SIGKILL after `stop_grace`, followed by
//! `simian recover JOURNAL`.

use std::path::{Path, PathBuf};

/// The environment variable that turns the kill switch on (any value but empty or `0`).
pub const ENV: &str = "SIMIAN_KILL_SWITCH";

#[derive(Debug, Clone)]
pub struct KillSwitch {
    pub file: PathBuf,
    env: bool,
}

impl KillSwitch {
    /// The switch at `file`, and the environment of this process as it is now.
    pub fn new(file: PathBuf) -> KillSwitch {
        let env = std::env::var_os(ENV).is_some_and(|v| !v.is_empty() && v != "0");
        KillSwitch { file, env }
    }

    /// The default file: `STATE_DIR/kill-switch`.
    pub fn default_file(state_dir: &Path) -> PathBuf {
        state_dir.join("kill-switch")
    }

    /// Why it is on, or `None` when it is off.
    pub fn active(&self) -> Option<String> {
        if self.env {
            Some(format!("{ENV} is set"))
        } else if self.file.exists() {
            Some(format!("{} exists", self.file.display()))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_turns_it_on_and_off() {
        let d = tempfile::tempdir().unwrap();
        let k = KillSwitch {
            file: d.path().join("KILL"),
            env: false,
        };
        assert_eq!(k.active(), None);
        std::fs::write(&k.file, "").unwrap();
        assert!(k.active().unwrap().ends_with("KILL exists"));
        std::fs::remove_file(&k.file).unwrap();
        assert_eq!(k.active(), None);
        let on = KillSwitch { env: true, ..k };
        assert_eq!(on.active().as_deref(), Some("SIMIAN_KILL_SWITCH is set"));
    }
}
