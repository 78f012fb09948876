//! RAII network fixtures: network namespaces, veth pairs between them, and
//! background processes, with names unique per run and teardown on drop
//! (also on error and panic; [`sweep_stale`] removes what a killed run left).
//!
//! Safety: every link these helpers create has both ends inside namespaces
//! they created, so nothing here can reach the host's uplink or routes.

use std::{
    fs::File,
    io,
    os::fd::AsRawFd,
    path::Path,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use thiserror::Error;

use crate::lab::cmd::{self, CmdError};

#[derive(Debug, Error)]
pub enum NetnsError {
    #[error(transparent)]
    Cmd(#[from] CmdError),
    #[error("cannot enter network namespace `{name}`")]
    Enter { name: String, source: io::Error },
    #[error("cannot start `{command}`")]
    Spawn { command: String, source: io::Error },
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Where `ip netns exec` finds per-namespace files (`resolv.conf`).
pub const NETNS_ETC: &str = "/etc/netns";
/// The lab's runtime files, one directory per lab (`RUN_DIR/BASE`).
pub const RUN_DIR: &str = "/run/observer-lab";

/// A network namespace deleted on drop. Its name is `PREFIX-PID-N`.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a fresh namespace with loopback up.
    pub fn new(prefix: &str) -> Result<Self, NetnsError> {
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Self::create(name)
    }

    /// Creates a namespace with an exact name (the lab names its own).
    pub fn create(name: String) -> Result<Self, NetnsError> {
        cmd::ip(["netns", "add", &name])?;
        let ns = Self { name };
        ns.ip(["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Takes over an existing namespace (deleted on drop like a new one).
    pub fn adopt(name: String) -> Self {
        Self { name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME ARGS...`
    pub fn ip<S: AsRef<std::ffi::OsStr>>(
        &self,
        args: impl IntoIterator<Item = S>,
    ) -> Result<String, NetnsError> {
        let mut full: Vec<std::ffi::OsString> = vec!["-n".into(), self.name.clone().into()];
        full.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        Ok(cmd::ip(full)?)
    }

    /// Runs a program inside the namespace (`ip netns exec`) and returns its stdout.
    pub fn exec<S: AsRef<std::ffi::OsStr>>(
        &self,
        program: &str,
        args: impl IntoIterator<Item = S>,
    ) -> Result<String, NetnsError> {
        let mut full: Vec<std::ffi::OsString> = vec![
            "netns".into(),
            "exec".into(),
            self.name.clone().into(),
            program.into(),
        ];
        full.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        Ok(cmd::ip(full)?)
    }

    /// Sets a sysctl inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<(), NetnsError> {
        self.exec("sysctl", ["-qw", &format!("{key}={value}")])?;
        Ok(())
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Runs `f` on a thread that has entered the namespace. Sockets it
    /// creates belong to the namespace, also after `f` returns.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
        let file = File::open(Path::new("/run/netns").join(&self.name)).map_err(|source| {
            NetnsError::Enter {
                name: self.name.clone(),
                source,
            }
        })?;
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // SAFETY: a namespace fd; only this thread moves.
                    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        return Err(NetnsError::Enter {
                            name: self.name.clone(),
                            source: io::Error::last_os_error(),
                        });
                    }
                    Ok(f())
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(error) = cmd::ip(["netns", "del", &self.name]) {
            eprintln!(
                "lab: could not delete network namespace {}: {error}",
                self.name
            );
        }
    }
}

/// Creates a veth pair with one end in each namespace. It lives as long as
/// the namespaces (deleting either deletes it).
pub fn veth(a: &Netns, a_name: &str, b: &Netns, b_name: &str) -> Result<(), NetnsError> {
    a.ip([
        "link",
        "add",
        a_name,
        "type",
        "veth",
        "peer",
        "name",
        b_name,
        "netns",
        b.name(),
    ])?;
    Ok(())
}

/// Deletes namespaces named `PREFIX-PID-N` whose process is gone (a run
/// killed before its teardown). Returns the names removed.
pub fn sweep_stale(prefix: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for name in entries.filter_map(|e| e.ok()?.file_name().into_string().ok()) {
        let Some(rest) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() && cmd::ip(["netns", "del", &name]).is_ok()
        {
            remove_netns_etc(&name);
            removed.push(name);
        }
    }
    removed
}

/// Removes `/etc/netns/NAME` (the namespace's resolver configuration).
pub fn remove_netns_etc(name: &str) {
    let dir = Path::new(NETNS_ETC).join(name);
    if dir.exists()
        && let Err(error) = std::fs::remove_dir_all(&dir)
    {
        eprintln!("lab: could not remove {}: {error}", dir.display());
    }
}

/// A background process stopped on drop: SIGTERM, then SIGKILL after 3 s.
#[derive(Debug)]
pub struct Process {
    child: Option<Child>,
    label: String,
}

impl Process {
    pub fn spawn(command: &mut Command, label: &str) -> Result<Self, NetnsError> {
        let child = command
            .stdin(Stdio::null())
            .spawn()
            .map_err(|source| NetnsError::Spawn {
                command: label.to_owned(),
                source,
            })?;
        Ok(Self {
            child: Some(child),
            label: label.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn signal(&self, signal: libc::c_int) {
        if let Some(child) = &self.child {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        }
    }

    /// Sends SIGTERM and waits (up to `timeout`) for the exit.
    pub fn terminate(mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        stop(&mut child, timeout)
    }

    /// Takes the child's piped standard output.
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.as_mut()?.stdout.take()
    }

    /// Waits for the exit without signalling (the caller signalled).
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// SIGKILL and reap (helpers with nothing to flush).
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Takes the child out of the guard (the caller now owns its teardown).
    pub fn into_child(mut self) -> Child {
        self.child.take().expect("child present until taken")
    }
}

fn stop(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait().ok()
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child, Duration::from_secs(3));
        }
    }
}
