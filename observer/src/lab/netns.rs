//! RAII network fixtures: network namespaces, veth pairs between them, and
//! background processes, with names unique per run and teardown on drop
//! (also on error and panic; [`sweep_stale`] removes what a killed run
//! left: the processes still running in its namespaces, the namespaces,
//! their `/etc/netns` files and the lab's runtime directory).
//!
//! Safety: every link these helpers create has both ends inside namespaces
//! they created, so nothing here can reach the host's uplink or routes.

use std::{
    fs::File,
    io,
    os::{fd::AsRawFd, unix::fs::MetadataExt as _},
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

/// Where `ip netns` mounts named namespaces.
const NETNS_DIR: &str = "/run/netns";
/// Where `ip netns exec` finds per-namespace files (`resolv.conf`).
pub(crate) const NETNS_ETC: &str = "/etc/netns";
/// The lab's runtime files (dnsmasq's pid files), one directory per lab
/// (`RUN_DIR/BASE`), removed with the lab.
pub(crate) const RUN_DIR: &str = "/run/observer-lab";
/// How long processes in a namespace being removed get after SIGTERM (an
/// observer writes its last Parquet) before SIGKILL.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(20);
/// How long SIGKILLed processes get to disappear.
const KILL_WAIT: Duration = Duration::from_secs(5);

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
        let file = File::open(Path::new(NETNS_DIR).join(&self.name)).map_err(|source| {
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

/// Named namespaces on the host (`ip netns list`).
pub(crate) fn named() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(NETNS_DIR)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// The process that owns `PREFIX-PID-...`, if `name` has that shape.
fn owner(name: &str, prefix: &str) -> Option<i32> {
    name.strip_prefix(prefix)?
        .strip_prefix('-')?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// Whether `pid` runs (a zombie has ended: its parent only has not reaped it).
pub(crate) fn is_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // `PID (COMM) STATE ...`; COMM may hold spaces and parentheses.
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// Whether the owner of `name` (`PREFIX-PID-...`) has ended.
pub(crate) fn owner_gone(name: &str, prefix: &str) -> bool {
    owner(name, prefix).is_some_and(|pid| !is_running(pid))
}

/// Processes whose network namespace is one of the named namespaces
/// `names` (what `ip netns pids` lists), never this process.
pub(crate) fn pids_in(names: &[String]) -> Vec<i32> {
    let wanted: Vec<(u64, u64)> = names
        .iter()
        .filter_map(|n| std::fs::metadata(Path::new(NETNS_DIR).join(n)).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|m| wanted.contains(&(m.dev(), m.ino())))
        })
        .filter_map(|pid| i32::try_from(pid).ok())
        .collect()
}

/// Stops every process in the namespaces `names`: SIGTERM and up to
/// `grace` to exit (zero: none), then SIGKILL; returns once none is left
/// or the kill has had a bounded time to land.
pub(crate) fn stop_processes_in(names: &[String], grace: Duration) {
    let signal_all = |signal: libc::c_int| {
        let pids = pids_in(names);
        for &pid in &pids {
            // SAFETY: plain kill(2) of a process inside the namespace.
            unsafe { libc::kill(pid, signal) };
        }
        !pids.is_empty()
    };
    let wait_empty = |limit: Duration| {
        let deadline = Instant::now() + limit;
        loop {
            if pids_in(names).is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    if !grace.is_zero() && (!signal_all(libc::SIGTERM) || wait_empty(grace)) {
        return;
    }
    if signal_all(libc::SIGKILL) {
        wait_empty(KILL_WAIT);
    }
}

/// Deletes the named namespace and its `/etc/netns` files; `Ok(false)`
/// when it was gone already.
pub(crate) fn delete(name: &str) -> Result<bool, CmdError> {
    remove_netns_etc(name);
    if !Path::new(NETNS_DIR).join(name).exists() {
        return Ok(false);
    }
    match cmd::ip(["netns", "del", name]) {
        Ok(_) => Ok(true),
        // Removed meanwhile by another sweep.
        Err(_) if !Path::new(NETNS_DIR).join(name).exists() => Ok(false),
        Err(error) => Err(error),
    }
}

/// Removes what runs killed before their teardown left: namespaces named
/// `PREFIX-PID-...` whose process `PID` has ended (the processes still in
/// them first: SIGTERM, 20 s, SIGKILL), their `/etc/netns`
/// files, and their runtime directories `RUN_DIR/PREFIX-PID-...`. Returns
/// the namespaces removed.
pub fn sweep_stale(prefix: &str) -> Vec<String> {
    let stale: Vec<String> = named()
        .into_iter()
        .filter(|n| owner_gone(n, prefix))
        .collect();
    stop_processes_in(&stale, STOP_GRACE);
    let mut removed = Vec::new();
    for name in stale {
        match delete(&name) {
            Ok(true) => removed.push(name),
            Ok(false) => {}
            Err(error) => eprintln!("lab: could not delete stale namespace {name}: {error}"),
        }
    }
    for entry in std::fs::read_dir(RUN_DIR).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if owner_gone(&name, prefix)
            && let Err(error) = std::fs::remove_dir_all(entry.path())
            && error.kind() != io::ErrorKind::NotFound
        {
            eprintln!("lab: could not remove {}: {error}", entry.path().display());
        }
    }
    removed
}

/// Removes `/etc/netns/NAME` (the namespace's resolver configuration).
pub(crate) fn remove_netns_etc(name: &str) {
    let dir = Path::new(NETNS_ETC).join(name);
    if let Err(error) = std::fs::remove_dir_all(&dir)
        && error.kind() != io::ErrorKind::NotFound
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_read_from_names_and_a_zombie_has_ended() {
        assert_eq!(owner("oblab-1234-0-ase", "oblab"), Some(1234));
        assert_eq!(owner("obt-77-3", "obt"), Some(77));
        assert_eq!(owner("obup-default-ase", "obup"), None);
        assert_eq!(owner("oblabx-1-0", "oblab"), None);
        let me = i32::try_from(std::process::id()).unwrap();
        assert!(is_running(me));
        assert!(!owner_gone(&format!("oblab-{me}-0-ase"), "oblab"));
        // A child that has exited but is not reaped yet is a zombie.
        let mut child = Command::new("true").spawn().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while is_running(pid) {
            assert!(Instant::now() < deadline, "`true` did not exit");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(owner_gone(&format!("oblab-{pid}-0-ase"), "oblab"));
        child.wait().unwrap();
        assert!(!is_running(pid));
        assert!(pids_in(&["observer-no-such-netns".into()]).is_empty());
    }
}
