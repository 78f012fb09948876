//! `lab exec`: the user's own command in a live emulated ASE network, as a
//! CI gate. Builds the lab, starts capture at every observation point, runs
//! COMMAND in the first app instance's namespace (environment, working
//! directory and standard streams passed through; the lab's resolver
//! configuration mounted over `/etc/resolv.conf`; as the invoking user when
//! started through sudo), waits, drains, classifies, reports, tears down.
//!
//! Signals: SIGINT/SIGTERM sent to this process by another process are
//! forwarded to COMMAND (a terminal's Ctrl-C already reaches COMMAND, which
//! shares the terminal's process group); either way the capture is still
//! stopped cleanly and written, and the lab is torn down.
//! SIGKILL, which no handler sees: COMMAND and the observers get SIGTERM
//! from their parent-death signal (the observers still write their
//! Parquet), and the lab's guard removes the rest (`lab::teardown`).

use std::{
    ffi::{CString, OsString},
    fs::File,
    os::{fd::AsRawFd as _, unix::process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
    sync::atomic::{AtomicI32, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::{
    report::{self, FailOn, Format, Summary, junit},
    topology::Topology,
};

use crate::lab::{
    build::Lab,
    helpers::LabOptions,
    netns::NETNS_ETC,
    plan::{PERSISTENT_PREFIX, Role},
    scenario::{Observers, read_back},
    topologies,
};

/// How long COMMAND gets to exit after a forwarded signal before SIGKILL.
const SIGNAL_GRACE: Duration = Duration::from_secs(10);

/// What `lab exec` runs.
#[derive(Clone, Debug)]
pub(crate) struct ExecConfig {
    /// The `observer` binary (observers and the lab's servers).
    pub observer: PathBuf,
    /// A built-in topology name or a topology file.
    pub topology: String,
    /// Output directory (default: `observer-lab/NAME-TIME-PID`).
    pub out: Option<PathBuf>,
    pub fail_on: FailOn,
    pub junit: Option<PathBuf>,
    /// Also write the HTML report here (`--html`).
    pub html: Option<PathBuf>,
    /// Leave the lab up afterwards (`observer lab down NAME` removes it).
    pub keep: bool,
    pub command: Vec<OsString>,
}

/// The result of one `lab exec`.
#[derive(Debug)]
pub(crate) struct ExecOutcome {
    pub out: PathBuf,
    /// COMMAND's exit status (none when it never started).
    pub status: Option<ExitStatus>,
    pub summary: Summary,
    /// One line per finding of `--fail-on`.
    pub failures: Vec<String>,
    /// The signal that interrupted the run, if any.
    pub signal: Option<i32>,
    /// The lab left up by `--keep` (its `lab down` name).
    pub kept: Option<String>,
    /// Wall time of each phase, in order (seconds).
    pub phases: Vec<(&'static str, f64)>,
}

impl ExecOutcome {
    /// COMMAND's own non-zero status, else 1 on a `--fail-on` finding, else 0.
    pub(crate) fn exit_code(&self) -> u8 {
        let command = match self.status {
            Some(s) => exit_code_of(s),
            None => self.signal.map_or(0, |sig| 128 + sig as u8),
        };
        if command != 0 {
            command
        } else if !self.failures.is_empty() {
            1
        } else {
            0
        }
    }
}

/// The shell convention: the code, or 128 + the signal that killed it.
pub(crate) fn exit_code_of(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(signal)) => 128u8.wrapping_add(signal as u8),
        (None, None) => 1,
    }
}

// The signal received (0: none) and whether a process sent it.
static SIGNAL: AtomicI32 = AtomicI32::new(0);
static FROM_PROCESS: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let code = unsafe { (*info).si_code };
    // SI_USER (kill) and SI_QUEUE are <= 0; the terminal's are SI_KERNEL.
    FROM_PROCESS.store(i32::from(code <= 0), Ordering::SeqCst);
    SIGNAL.store(signal, Ordering::SeqCst);
}

fn install_signal_handlers() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a handler that only stores atomics.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal
                as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
                as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

/// The signal received so far, if any.
fn signalled() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Runs `config`: the whole `lab exec`.
pub(crate) fn exec(config: &ExecConfig) -> anyhow::Result<ExecOutcome> {
    if config.command.is_empty() {
        bail!(
            "no COMMAND: write it after `--`, e.g. `observer lab exec default -- curl http://contoso-kv.vault.azure.net:443/`"
        );
    }
    install_signal_handlers();
    let mut clock = Instant::now();
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S");
    let label = Path::new(&config.topology)
        .file_stem()
        .map_or_else(|| "lab".into(), |s| s.to_string_lossy().into_owned());
    let out = config.out.clone().unwrap_or_else(|| {
        PathBuf::from("observer-lab").join(format!("{label}-{stamp}-{}", std::process::id()))
    });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let out = out.canonicalize()?;
    // A topology error fails before anything is built.
    let path = topologies::resolve(&config.topology, &out.join("topology"))?;
    let topology = Topology::load(&path)?;

    let options = LabOptions {
        helper: config.observer.clone(),
        persistent: config.keep,
    };
    let base = config
        .keep
        .then(|| format!("{PERSISTENT_PREFIX}-exec-{}", std::process::id()));
    let (lab, observers) =
        Observers::with_lab(&topology, &options, &config.observer, &path, &out, base)?;
    let mut outcome = ExecOutcome {
        out: out.clone(),
        status: None,
        summary: Summary::default(),
        failures: Vec::new(),
        signal: None,
        kept: None,
        phases: Vec::new(),
    };
    let mut phase = |name: &'static str, outcome: &mut ExecOutcome| {
        outcome.phases.push((name, clock.elapsed().as_secs_f64()));
        clock = Instant::now();
    };
    phase("build and attach", &mut outcome);
    if signalled().is_none() {
        outcome.status = Some(run_command(&lab, config)?);
    }
    phase("command", &mut outcome);
    // Let the last FIN/ACK exchanges reach the capture.
    std::thread::sleep(Duration::from_millis(30));
    let dirs = observers.stop()?;
    phase("drain", &mut outcome);
    if config.keep {
        outcome.kept = lab
            .base()
            .strip_prefix(&format!("{PERSISTENT_PREFIX}-"))
            .map(str::to_string);
        lab.persist();
    } else {
        drop(lab);
    }
    phase("teardown", &mut outcome);
    outcome.signal = signalled();

    let (records, dns, lost) = read_back(&dirs)?;
    outcome.summary = Summary::build(&records, &dns, lost);
    outcome.failures = outcome.summary.failures(&config.fail_on);
    write_reports(&outcome, config, &topology)?;
    give_to_invoking_user(&out);
    phase("report", &mut outcome);
    Ok(outcome)
}

/// `report.txt`, `report.json` in the output directory; JUnit and HTML
/// if asked.
fn write_reports(
    outcome: &ExecOutcome,
    config: &ExecConfig,
    topology: &Topology,
) -> anyhow::Result<()> {
    let summary = &outcome.summary;
    report::write(
        summary,
        &Format::Text,
        Some(&outcome.out.join("report.txt")),
    )?;
    report::write(
        summary,
        &Format::Json,
        Some(&outcome.out.join("report.json")),
    )?;
    if let Some(path) = &config.junit {
        let command = config
            .command
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        let code = outcome.status.map_or(0, exit_code_of);
        let command = [junit::Suite {
            name: "observer.command".into(),
            cases: vec![junit::Case {
                classname: "observer.command".into(),
                name: command.clone(),
                failure: (code != 0 || outcome.status.is_none()).then(|| {
                    let m = match outcome.status {
                        Some(_) => format!("`{command}` exited with status {code}"),
                        None => "interrupted before the command ran".into(),
                    };
                    ("exit-status".to_string(), m.clone(), m)
                }),
                system_out: None,
            }],
        }];
        let format = Format::Junit {
            fail: &config.fail_on,
            first: &command,
        };
        report::write(summary, &format, Some(path))?;
        give_to_invoking_user(path);
    }
    if let Some(path) = &config.html {
        let context = report::html::Context::new(Some(&topology.name), Some(topology));
        report::write(summary, &Format::Html(context), Some(path))?;
        give_to_invoking_user(path);
    }
    Ok(())
}

/// The invoking user behind sudo: (uid, gid), when running as root.
fn invoking_user() -> Option<(libc::uid_t, libc::gid_t)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let uid = std::env::var("SUDO_UID").ok()?.parse().ok()?;
    let gid = std::env::var("SUDO_GID").ok()?.parse().ok()?;
    (uid != 0).then_some((uid, gid))
}

/// Hands what the run wrote to the user who started it through sudo.
fn give_to_invoking_user(path: &Path) {
    let Some((uid, gid)) = invoking_user() else {
        return;
    };
    let mut stack = vec![path.to_path_buf()];
    // The output directory's parents this run created too (observer-lab/).
    if let Some(parent) = path.parent()
        && parent.file_name().is_some_and(|n| n == "observer-lab")
    {
        let _ = std::os::unix::fs::lchown(parent, Some(uid), Some(gid));
    }
    while let Some(p) = stack.pop() {
        let _ = std::os::unix::fs::lchown(&p, Some(uid), Some(gid));
        if p.is_dir()
            && let Ok(entries) = std::fs::read_dir(&p)
        {
            stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
        }
    }
}

/// The user's identity for COMMAND: uid, gid, supplementary groups, and the
/// environment sudo would give a login of theirs.
struct Identity {
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
    home: Option<OsString>,
    name: Option<OsString>,
}

fn identity(uid: libc::uid_t, gid: libc::gid_t) -> Identity {
    let mut id = Identity {
        uid,
        gid,
        groups: vec![gid],
        home: None,
        name: None,
    };
    let mut buf = vec![0 as libc::c_char; 16384];
    // SAFETY: getpwuid_r writes into `pwd` and `buf`, both live and sized.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result = std::ptr::null_mut();
        if libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) == 0
            && !result.is_null()
        {
            let name = std::ffi::CStr::from_ptr(pwd.pw_name);
            let home = std::ffi::CStr::from_ptr(pwd.pw_dir);
            use std::os::unix::ffi::OsStrExt as _;
            id.name = Some(std::ffi::OsStr::from_bytes(name.to_bytes()).to_owned());
            id.home = Some(std::ffi::OsStr::from_bytes(home.to_bytes()).to_owned());
            let mut groups = vec![0 as libc::gid_t; 256];
            let mut count = groups.len() as libc::c_int;
            if libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut count) >= 0 {
                groups.truncate(count as usize);
                id.groups = groups;
            }
        }
    }
    id
}

/// Runs COMMAND in the lab's first app instance and waits for it,
/// forwarding SIGINT/SIGTERM that other processes send to this one.
fn run_command(lab: &Lab, config: &ExecConfig) -> anyhow::Result<ExitStatus> {
    let ns = lab.ns(Role::APP).name().to_string();
    let netns = File::open(Path::new("/run/netns").join(&ns))
        .with_context(|| format!("opening network namespace {ns}"))?;
    let resolv = Path::new(NETNS_ETC).join(&ns).join("resolv.conf");
    let resolv = resolv
        .exists()
        .then(|| CString::new(resolv.as_os_str().as_encoded_bytes()).expect("no NUL in a path"));
    let user = invoking_user().map(|(uid, gid)| identity(uid, gid));

    let mut command = Command::new(&config.command[0]);
    command.args(&config.command[1..]);
    if let Some(user) = &user {
        if let Some(home) = &user.home {
            command.env("HOME", home);
        }
        if let Some(name) = &user.name {
            command.env("USER", name).env("LOGNAME", name);
        }
    }
    let fd = netns.as_raw_fd();
    let ids = user.as_ref().map(|u| (u.uid, u.gid, u.groups.clone()));
    // SAFETY: only async-signal-safe system calls between fork and exec;
    // every buffer was prepared before the fork.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(resolv) = &resolv {
                // As `ip netns exec`: a private mount namespace in which the
                // lab's resolv.conf covers the host's.
                if libc::unshare(libc::CLONE_NEWNS) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let root = c"/";
                libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_SLAVE,
                    std::ptr::null(),
                );
                libc::mount(
                    resolv.as_ptr(),
                    c"/etc/resolv.conf".as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                );
            }
            if let Some((uid, gid, groups)) = &ids
                && (libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setgid(*gid) != 0
                    || libc::setuid(*uid) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            // COMMAND does not outlive a killed `lab exec`.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            // As a shell would: 127 not found, 126 not executable.
            use std::os::unix::process::ExitStatusExt as _;
            let code = if error.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            eprintln!(
                "observer lab exec: cannot run `{}` in {ns}: {error}",
                config.command[0].to_string_lossy()
            );
            return Ok(ExitStatus::from_raw(code << 8));
        }
    };
    drop(netns);
    let mut forwarded: Option<Instant> = None;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if let Some(signal) = signalled() {
            match forwarded {
                None => {
                    if FROM_PROCESS.load(Ordering::SeqCst) != 0 {
                        // SAFETY: signalling our own child.
                        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
                    }
                    forwarded = Some(Instant::now());
                }
                Some(at) if at.elapsed() > SIGNAL_GRACE => {
                    let _ = child.kill();
                }
                Some(_) => {}
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
