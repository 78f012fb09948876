//! Labs on the host as a whole: listing their namespaces (`lab status`),
//! removing one with everything inside it (`lab down`, `clear`), and the
//! guard that removes an ephemeral lab whose process died without tearing
//! it down.
//!
//! The guard (`Guard`, run as the hidden `observer lab guard BASE`) is
//! the lab's second line after the parent-death signals: a process of its
//! own, outside the terminal's process group, that ignores SIGINT, SIGTERM
//! and SIGHUP and waits for its standard input to close. The lab's process
//! holds the other end, so the pipe closes when that process ends, however
//! it ends (also SIGKILL, which no handler sees). The guard then clears the
//! lab: what still runs in its namespaces gets SIGTERM (the observers
//! write their last Parquet), then SIGKILL after 20 s; the
//! namespaces, their resolver files and the lab's runtime directory go.
//! After a normal teardown there is nothing left, and the guard exits at
//! once. Should the guard die too, [`sweep_stale`] at the next lab build
//! and `lab down` remove the rest.

use std::{
    io::{BufRead as _, Read as _, Write as _},
    os::unix::process::CommandExt as _,
    path::Path,
    process::{Child, ChildStdin, Command, Stdio},
    time::{Duration, Instant},
};

use thiserror::Error;

use crate::lab::{
    cmd::CmdError,
    netns::{self, STOP_GRACE, sweep_stale},
    plan::{EPHEMERAL_PREFIX, PERSISTENT_PREFIX, run_dir},
};

/// How long a finished lab waits for its guard to exit before killing it.
const GUARD_EXIT: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum TeardownError {
    #[error(transparent)]
    Cmd(#[from] CmdError),
    #[error(
        "lab {base} belongs to process {pid}, which is still running; stop that process (its lab goes with it) or run `observer lab down` once it has ended"
    )]
    Live { base: String, pid: i32 },
    #[error(
        "`{base}` is not an ephemeral lab: `observer lab guard` watches only labs named {EPHEMERAL_PREFIX}-PID-N (it is started by the lab itself)"
    )]
    NotALab { base: String },
    #[error("cannot start the lab's guard `{command}`")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error(
        "the lab's guard `{command}` did not start (is the lab's helper binary an observer with `lab guard`?)"
    )]
    NotReady { command: String },
}

/// Every lab namespace on the host.
pub fn list() -> Vec<String> {
    netns::named()
        .into_iter()
        .filter(|n| {
            n.starts_with(&format!("{EPHEMERAL_PREFIX}-"))
                || n.starts_with(&format!("{PERSISTENT_PREFIX}-"))
        })
        .collect()
}

/// The namespaces of the lab `base` (`BASE-ROLE`).
fn namespaces_of(base: &str) -> Vec<String> {
    let prefix = format!("{base}-");
    list()
        .into_iter()
        .filter(|n| {
            n.strip_prefix(&prefix)
                .is_some_and(|role| !role.contains('-'))
        })
        .collect()
}

/// Removes the lab `base`: stops what runs in its namespaces (SIGTERM,
/// `grace`, SIGKILL), deletes them and their resolver files, and removes
/// its runtime directory. Returns the namespaces deleted; a lab already
/// gone is no error.
pub(crate) fn clear(base: &str, grace: Duration) -> Result<Vec<String>, CmdError> {
    let names = namespaces_of(base);
    netns::stop_processes_in(&names, grace);
    let mut removed = Vec::new();
    for name in names {
        if netns::delete(&name)? {
            removed.push(name);
        }
    }
    let dir = run_dir(base);
    if let Err(error) = std::fs::remove_dir_all(&dir)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        eprintln!("lab: could not remove {}: {error}", dir.display());
    }
    Ok(removed)
}

/// What `lab down` removed.
#[derive(Debug, Default)]
pub struct Down {
    /// The namespaces of the named lab.
    pub removed: Vec<String>,
    /// Namespaces of ephemeral labs whose process had died.
    pub stale: Vec<String>,
}

/// `lab down NAME`: removes the lab kept by `lab up NAME` (or `lab exec
/// --keep`), or the ephemeral lab `oblab-PID-N` once its process has
/// ended, with the processes inside; and every stale ephemeral lab.
pub fn down(name: &str) -> Result<Down, TeardownError> {
    let base = if name.starts_with(&format!("{EPHEMERAL_PREFIX}-")) {
        if let Some(pid) = name
            .split('-')
            .nth(1)
            .and_then(|p| p.parse::<i32>().ok())
            .filter(|&pid| netns::is_running(pid))
        {
            return Err(TeardownError::Live {
                base: name.to_string(),
                pid,
            });
        }
        name.to_string()
    } else {
        format!("{PERSISTENT_PREFIX}-{name}")
    };
    let removed = clear(&base, STOP_GRACE)?;
    let stale = sweep_stale(EPHEMERAL_PREFIX);
    Ok(Down { removed, stale })
}

/// The guard of one ephemeral lab, held by the lab's process. Dropping it
/// (after the lab's own teardown) closes the pipe; the guard finds nothing
/// left and exits.
#[derive(Debug)]
pub(crate) struct Guard {
    child: Option<Child>,
    pipe: Option<ChildStdin>,
}

impl Guard {
    /// Starts `BINARY lab guard BASE` and waits until it guards (it has
    /// checked the name and ignores the signals).
    pub(crate) fn start(binary: &Path, base: &str) -> Result<Self, TeardownError> {
        let line = format!("{} lab guard {base}", binary.display());
        let mut command = Command::new(binary);
        command
            .args(["--quiet", "lab", "guard", base])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // SAFETY: setpgid is async-signal-safe; nothing else runs before exec.
        unsafe {
            command.pre_exec(|| {
                // Out of the terminal's process group: Ctrl-C is for the lab.
                libc::setpgid(0, 0);
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|source| TeardownError::Spawn {
            command: line.clone(),
            source,
        })?;
        let stdout = child.stdout.take();
        let guard = Self {
            pipe: child.stdin.take(),
            child: Some(child),
        };
        let mut ready = String::new();
        if let Some(stdout) = stdout {
            // `ready`, then nothing; EOF means it refused or failed.
            let _ = std::io::BufReader::new(stdout).read_line(&mut ready);
        }
        if ready.trim() != "ready" {
            guard.disarm();
            return Err(TeardownError::NotReady { command: line });
        }
        Ok(guard)
    }

    /// Stops the guard without clearing anything (the lab is kept).
    pub(crate) fn disarm(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        drop(self.pipe.take());
        let Some(mut child) = self.child.take() else {
            return;
        };
        let deadline = Instant::now() + GUARD_EXIT;
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The guard process (`observer lab guard BASE`): waits until its standard
/// input closes, then clears the lab `base`.
pub(crate) fn guard(base: &str) -> Result<(), TeardownError> {
    let owner = base
        .strip_prefix(&format!("{EPHEMERAL_PREFIX}-"))
        .and_then(|rest| rest.split_once('-'))
        .filter(|(pid, n)| pid.parse::<u32>().is_ok() && n.parse::<u32>().is_ok());
    if owner.is_none() {
        return Err(TeardownError::NotALab {
            base: base.to_string(),
        });
    }
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGPIPE] {
        // SAFETY: ignoring a signal installs no handler.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
    // The lab waits for this line; nothing is printed after it.
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "ready").and_then(|()| stdout.flush());
    drop(stdout);
    // EOF (or an error) once the lab's process has closed its end.
    let _ = std::io::stdin().lock().read_to_end(&mut Vec::new());
    clear(base, STOP_GRACE)?;
    Ok(())
}
