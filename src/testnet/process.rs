//! Starting, stopping, pausing and resuming node processes.
//!
//! Signals go through the `kill` utility rather than `libc` so that this
//! crate stays free of `unsafe` outside the hash kernels.

use std::fs::OpenOptions;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// How long a node gets to stop after SIGTERM before SIGKILL.
pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether a process with this pid exists (and is not a zombie we own).
pub(crate) fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Field 3 is the state; `Z` is a zombie: exited, not yet reaped.
    match stat.rsplit_once(')') {
        Some((_, rest)) => !rest.trim_start().starts_with('Z'),
        None => Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
    }
}

/// Whether the process is stopped by a signal (`testnet pause`): state
/// `T` in `/proc/PID/stat`.
pub(crate) fn paused(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
}

/// Sends a signal (`TERM`, `KILL`, `STOP`, `CONT`).
pub(crate) fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// SIGTERM, then SIGKILL if it is still alive after [`STOP_TIMEOUT`].
/// Returns whether it stopped cleanly.
pub(crate) fn stop(pid: u32) -> bool {
    if !alive(pid) {
        return true;
    }
    signal(pid, "TERM");
    // A paused node handles the TERM once it runs again.
    signal(pid, "CONT");
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    signal(pid, "KILL");
    false
}

/// Starts `klero ARGS…` in its own process group with output to `log`.
///
/// # Errors
///
/// If the log cannot be opened or the process cannot start.
pub(crate) fn spawn(args: &[String], log: &Path) -> Result<u32> {
    let log_file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let exe = std::env::current_exe().context("finding the klero binary")?;
    let mut command = Command::new(exe);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let child = command.spawn().context("starting klero node")?;
    Ok(child.id())
}
