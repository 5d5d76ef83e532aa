//! Just enough of `/proc` to tell running, stopped and dead processes apart, and to make sure
//! a pid still belongs to the lab before signalling it.

/// The one-letter state from `/proc/PID/stat` (`R`, `S`, `T`, `Z`, ...), `None` if no such pid.
pub fn state(pid: u32) -> Option<char> {
    if pid == 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything: the state follows the last `)`.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.trim_start().chars().next()
}

/// Alive: exists and is neither a zombie nor dying.
pub fn is_alive(pid: u32) -> bool {
    matches!(state(pid), Some(c) if c != 'Z' && c != 'X' && c != 'x')
}

/// Stopped by a signal (`T`) or a tracer (`t`).
pub fn is_stopped(pid: u32) -> bool {
    matches!(state(pid), Some('T' | 't'))
}

/// The command line with its arguments joined by spaces.
pub fn cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Some(args.join(" "))
}

/// Whether `pid` is alive and is the lab process we think it is: its command line contains
/// `role` (e.g. "lab instance") and, if given, `id` as a whole argument. Guards against pid
/// reuse before we send a signal.
pub fn is_ours(pid: u32, role: &str, id: Option<&str>) -> bool {
    if !is_alive(pid) {
        return false;
    }
    let Some(cmd) = cmdline(pid) else {
        return false;
    };
    cmd.contains(role) && id.is_none_or(|id| cmd.split(' ').any(|a| a == id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_itself_alive_and_nonsense_pids_dead() {
        let me = std::process::id();
        assert!(is_alive(me));
        assert!(!is_stopped(me));
        assert!(!is_alive(0));
        assert!(!is_alive(u32::MAX));
        assert!(cmdline(me).unwrap().contains("simian_lab"));
        assert!(!is_ours(me, "lab instance", None));
    }

    #[test]
    fn tells_stopped_and_zombie_children() {
        use nix::sys::signal::{kill, Signal};
        use nix::unistd::Pid;
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id();
        // Right after spawn the child may still be in exec, its cmdline not yet readable.
        assert!(wait_for(|| is_ours(pid, "sleep", Some("30"))));
        assert!(!is_ours(pid, "sleep", Some("3")));
        kill(Pid::from_raw(pid as i32), Signal::SIGSTOP).unwrap();
        assert!(wait_for(|| is_stopped(pid)));
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
        // Not reaped yet: a zombie, which is not alive.
        assert!(wait_for(|| !is_alive(pid)));
        assert_eq!(state(pid), Some('Z'));
        child.wait().unwrap();
        assert_eq!(state(pid), None);
    }

    fn wait_for(mut f: impl FnMut() -> bool) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if f() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        false
    }
}
