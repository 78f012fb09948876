//! The lab's helper processes (dnsmasq, `observer lab serve`): how each is
//! started (dying with the lab's process, or detached for a kept lab), when
//! it counts as started (dnsmasq: its socket is bound; `lab serve`: it
//! printed `ready`), and stopping them all.

use std::{
    io::BufRead as _,
    net::Ipv4Addr,
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::bail;

use crate::lab::netns::{Netns, Process};

/// How a lab is built.
#[derive(Clone, Debug)]
pub(crate) struct LabOptions {
    /// The `observer` binary, run as `observer lab serve` for the lab's
    /// servers (the running binary for the CLI; tests pass theirs).
    pub helper: PathBuf,
    /// Helpers outlive this process (`lab up`): no parent-death signal.
    pub persistent: bool,
}

impl LabOptions {
    /// Ephemeral helpers run by `helper`.
    pub(crate) fn new(helper: impl Into<PathBuf>) -> Self {
        Self {
            helper: helper.into(),
            persistent: false,
        }
    }
}

/// The running helpers of one lab.
#[derive(Debug)]
pub(crate) struct Helpers {
    options: LabOptions,
    /// Where dnsmasq writes its pid files.
    run_dir: PathBuf,
    running: Vec<Process>,
}

impl Helpers {
    pub(crate) fn new(options: LabOptions, run_dir: PathBuf) -> Self {
        Self {
            options,
            run_dir,
            running: Vec::new(),
        }
    }

    /// Parent-death signal for ephemeral helpers; a session of their own
    /// for kept ones.
    fn prepare(&self, command: &mut Command) {
        if self.options.persistent {
            detach(command);
        } else {
            // Nothing to flush: SIGKILL.
            die_with_parent(command, libc::SIGKILL);
        }
    }

    /// Starts `observer lab serve` in `ns` (TCP on `tcp`, UDP echo on
    /// `udp`, answers naming each address; the `refused` addresses answer
    /// 403 as a resource with public network access disabled) and waits
    /// until it is listening.
    pub(crate) fn serve(
        &mut self,
        ns: &Netns,
        tcp: &[u16],
        udp: &[u16],
        names: &[(Ipv4Addr, String)],
        refused: &[(Ipv4Addr, crate::lab::serve::Refusal)],
        label: &str,
    ) -> anyhow::Result<()> {
        let mut command = ns.command(&self.options.helper);
        command.args(["--quiet", "lab", "serve"]);
        for port in tcp {
            command.args(["--tcp", &port.to_string()]);
        }
        for port in udp {
            command.args(["--udp", &port.to_string()]);
        }
        for (addr, name) in names {
            command.args(["--name", &format!("{addr}={name}")]);
        }
        for (addr, kind) in refused {
            command.args(["--refuse", &format!("{addr}={kind}")]);
        }
        command.stdout(Stdio::piped()).stderr(Stdio::null());
        self.prepare(&mut command);
        let mut process = Process::spawn(&mut command, label)?;
        let stdout = process.take_stdout().expect("stdout is piped");
        let mut line = String::new();
        // The server prints `ready` once every socket is bound, and
        // nothing after; EOF means it failed.
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        self.running.push(process);
        if line.trim() != "ready" {
            bail!(
                "{label} did not start (is {} an observer binary with `lab serve`?)",
                self.options.helper.display()
            );
        }
        Ok(())
    }

    /// Starts dnsmasq in `ns` on `listen`:53 with `records` (more options)
    /// and waits until it is listening.
    pub(crate) fn dnsmasq(
        &mut self,
        ns: &Netns,
        listen: Ipv4Addr,
        records: Vec<String>,
        label: &str,
    ) -> anyhow::Result<()> {
        let mut args = vec![
            "--keep-in-foreground".to_string(),
            "--no-resolv".into(),
            "--no-hosts".into(),
            "--bind-interfaces".into(),
            format!("--listen-address={listen}"),
            "--port=53".into(),
            "--log-facility=-".into(),
            // In the lab's runtime directory, removed with the lab (dnsmasq
            // leaves it behind when killed).
            format!(
                "--pid-file={}",
                self.run_dir.join(format!("dnsmasq-{listen}.pid")).display()
            ),
            // dnsmasq's default group is `dip`; changing it would clear the
            // parent-death signal (prctl(2)), and dnsmasq would outlive a
            // killed lab. Staying root:root keeps it.
            "--user=root".into(),
            "--group=root".into(),
            "--local-ttl=60".into(),
        ];
        args.extend(records);
        let mut command = ns.command("dnsmasq");
        command
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.prepare(&mut command);
        self.running.push(Process::spawn(&mut command, label)?);
        let filter = format!("src {listen} and sport = :53");
        for _ in 0..50 {
            if ns
                .exec("ss", ["-Hlun", filter.as_str()])
                .is_ok_and(|out| !out.trim().is_empty())
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "{label} did not start listening on {listen}:53 in {}",
            ns.name()
        )
    }

    /// SIGKILLs every helper (none has anything to flush) and reaps it.
    pub(crate) fn stop(&mut self) {
        for p in self.running.drain(..) {
            p.kill();
        }
    }

    /// Leaves the helpers running after this value is gone (a kept lab).
    pub(crate) fn persist(&mut self) {
        for p in self.running.drain(..) {
            std::mem::forget(p.into_child());
        }
    }
}

impl Drop for Helpers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `signal` to a helper process when the lab process dies, even by
/// SIGKILL (SIGTERM for observers, which then write their last Parquet;
/// SIGKILL for helpers with nothing to flush), and keeps it out of the
/// terminal's process group (Ctrl-C reaches the lab's owner, which stops
/// helpers in order).
///
/// The signal is tied to the thread that spawns the helper, and a change
/// of the helper's credentials clears it: spawn from the thread that owns
/// the lab, and keep helpers from switching user or group.
pub(crate) fn die_with_parent(command: &mut Command, signal: libc::c_int) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: prctl and setpgid are async-signal-safe; nothing else runs
    // before exec.
    unsafe {
        command.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, signal);
            libc::setpgid(0, 0);
            Ok(())
        });
    }
}

/// A helper that outlives the process starting it (`lab up`): a session
/// of its own, no terminal.
fn detach(command: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: setsid is async-signal-safe; nothing else runs before exec.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
}
