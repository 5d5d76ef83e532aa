//! What every process the supervisor starts does the same way: die with the supervisor,
//! listen (on 127.0.0.1, or its namespace's address with `--netns`), say where on stdout,
//! and stop cleanly on SIGTERM or SIGINT.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::LabError;

/// Runs `serve` on a listener bound to `listen` (port 0: any) as a lab child process `id`.
/// Exits at once, with 1, if `parent_pid` (or, without it, any parent) is already gone.
/// Prints exactly `listening IP:PORT` on stdout once bound: the supervisor reads it.
pub(crate) async fn run<F, Fut>(
    id: &str,
    listen: SocketAddr,
    parent_pid: Option<u32>,
    serve: F,
) -> Result<i32, LabError>
where
    F: FnOnce(TcpListener) -> Fut,
    Fut: Future<Output = ()>,
{
    use nix::sys::signal::Signal;
    use tokio::signal::unix::{signal, SignalKind};

    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .map_err(|e| LabError::io("set the parent-death signal", e.into()))?;
    crate::supervisor::name_process();
    // The parent may have died before the line above: then nobody would ever kill us.
    let ppid = nix::unistd::getppid().as_raw() as u32;
    if parent_pid.map_or(ppid == 1, |want| want != ppid) {
        eprintln!("{id}: supervisor already gone, exiting");
        return Ok(1);
    }

    let mut term = signal(SignalKind::terminate()).map_err(|e| LabError::io("watch SIGTERM", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| LabError::io("watch SIGINT", e))?;

    // tokio sets SO_REUSEADDR, so a respawn can take the same port back at once.
    let addr = listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| LabError::io(format!("listen on {addr}"), e))?;
    let local = listener
        .local_addr()
        .map_err(|e| LabError::io("read the bound address", e))?;
    println!("listening {local}");
    eprintln!("{id}: listening on {local} (pid {})", std::process::id());

    tokio::select! {
        _ = serve(listener) => {}
        _ = term.recv() => eprintln!("{id}: SIGTERM, exiting"),
        _ = int.recv() => eprintln!("{id}: SIGINT, exiting"),
    }
    Ok(0)
}
