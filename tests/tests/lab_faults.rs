//! A lab that leaves nothing behind when it is killed: `observer lab exec`
//! SIGKILLed mid-run (with its guard alive, and with the guard killed too,
//! so that only parent-death signals act), then `lab down`; a stale lab of
//! a dead process swept by the next run; a live lab refused by `lab down`.
//! Each checks processes by network namespace inode, the runtime
//! directory, `/etc/netns`, `/tmp`, and reads the observers' Parquet back.
//! Needs root; run with `cargo xtask test`.

use std::{
    collections::BTreeSet,
    os::unix::{fs::MetadataExt as _, process::ExitStatusExt as _},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use observer_tests::{Scratch, observer_bin};

const KEYVAULT_CURL: &str = "curl -sS --max-time 10 http://contoso-kv.vault.azure.net:443/";

/// `observer lab exec ARGS -- COMMAND`, waited for.
fn exec(args: &[&str], command: &[&str]) -> Output {
    Command::new(observer_bin())
        .args(["--quiet", "lab", "exec"])
        .args(args)
        .arg("--")
        .args(command)
        .output()
        .expect("observer runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Lab namespaces made by the process `pid`.
fn namespaces_of(pid: u32) -> Vec<String> {
    observer::lab::teardown::list()
        .into_iter()
        .filter(|n| n.starts_with(&format!("oblab-{pid}-")))
        .collect()
}

/// The network namespace inode of every process on the host.
fn process_namespaces() -> Vec<(u32, u64)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let ino = std::fs::metadata(format!("/proc/{pid}/ns/net")).ok()?.ino();
            Some((pid, ino))
        })
        .collect()
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| text(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Key Vault requests the killed runs' COMMAND makes before it is killed.
const REQUESTS: usize = 5;

/// Waits until `done` holds, at most `limit`; panics naming `what`.
fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `pid: cmdline` of every process on the host in one of the namespaces
/// `inodes`.
fn processes_in(inodes: &[u64]) -> Vec<String> {
    process_namespaces()
        .into_iter()
        .filter(|(_, ino)| inodes.contains(ino))
        .map(|(p, _)| format!("{p}: {}", cmdline(p)))
        .collect()
}

/// `pid: cmdline` of every process whose command line mentions `text`.
fn processes_mentioning(text: &str) -> Vec<String> {
    process_namespaces()
        .into_iter()
        .map(|(p, _)| (p, cmdline(p)))
        .filter(|(p, c)| c.contains(text) && *p != std::process::id())
        .map(|(p, c)| format!("{p}: {c}"))
        .collect()
}

/// A `lab exec default` to be killed: its COMMAND makes [`REQUESTS`] Key
/// Vault requests, then leaves a `sleep` running in the app namespace.
struct Killable {
    child: std::process::Child,
    /// The lab's name (`oblab-PID-0`).
    base: String,
    /// The inodes of its namespaces.
    inodes: Vec<u64>,
    out: PathBuf,
}

impl Killable {
    /// Starts it and returns once every request is done.
    fn start(scratch: &Scratch) -> Self {
        let out = scratch.path().join("out");
        let marker = scratch.path().join("marker");
        let script = format!(
            "for i in $(seq {REQUESTS}); do {KEYVAULT_CURL} -o /dev/null || exit 1; done; touch {}; sleep 300",
            marker.display()
        );
        let mut child = Command::new(observer_bin())
            .args(["--quiet", "lab", "exec", "default", "--out"])
            .arg(&out)
            .args(["--", "sh", "-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        wait_for(Duration::from_secs(120), "the requests were made", || {
            assert!(child.try_wait().unwrap().is_none(), "lab exec ended early");
            marker.exists()
        });
        // Let the last FIN/ACK exchanges reach the capture.
        std::thread::sleep(Duration::from_millis(300));
        let names = namespaces_of(pid);
        assert!(names.len() >= 6, "{names:?}");
        let inodes = names
            .iter()
            .map(|n| {
                std::fs::metadata(Path::new("/run/netns").join(n))
                    .unwrap()
                    .ino()
            })
            .collect();
        Self {
            child,
            base: format!("oblab-{pid}-0"),
            inodes,
            out,
        }
    }

    /// SIGKILLs `lab exec` and reaps it.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }

    /// The observers wrote complete Parquet with every request: as many
    /// Key Vault client ports at the workload, the same ones at the router,
    /// and no temporary file.
    fn check_capture(&self) {
        let ports = |dir: &str| -> BTreeSet<u16> {
            let files = observer::files::reader::read_flows(&[self.out.join(dir)])
                .unwrap_or_else(|e| panic!("{dir}: {e}"));
            files
                .into_iter()
                .flat_map(|f| f.records)
                .filter(|r| r.dst_addr.to_string() == "10.0.2.5" && r.dst_port == Some(443))
                .filter_map(|r| r.src_port)
                .collect()
        };
        let workload = ports("workload");
        assert_eq!(workload.len(), REQUESTS, "{workload:?}");
        assert_eq!(ports("router"), workload);
        let mut stack = vec![self.out.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                assert!(!name.ends_with(".tmp"), "{}", entry.path().display());
                if entry.path().is_dir() {
                    stack.push(entry.path());
                }
            }
        }
    }

    /// Nothing of the lab is left: no namespace, no process inside one, no
    /// dnsmasq or guard, no runtime directory, no resolver file, nothing of
    /// it in /tmp.
    fn check_gone(&self) {
        let pid = self.child.id();
        assert!(namespaces_of(pid).is_empty(), "{:?}", namespaces_of(pid));
        assert!(
            processes_in(&self.inodes).is_empty(),
            "{:?}",
            processes_in(&self.inodes)
        );
        let named: Vec<String> = processes_mentioning(&self.base)
            .into_iter()
            .chain(processes_mentioning(&self.out.display().to_string()))
            .collect();
        assert!(named.is_empty(), "{named:?}");
        assert!(!Path::new("/run/observer-lab").join(&self.base).exists());
        assert!(
            !Path::new("/etc/netns")
                .join(format!("{}-ase", self.base))
                .exists()
        );
        let tmp: Vec<String> = std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.contains(&self.base))
            .collect();
        assert!(tmp.is_empty(), "{tmp:?}");
    }
}

#[test]
fn sigkill_of_lab_exec_leaves_nothing_and_keeps_the_capture() {
    let scratch = Scratch::new("exec-kill");
    let mut run = Killable::start(&scratch);
    run.kill();
    // COMMAND and the observers get SIGTERM, the helpers SIGKILL; the
    // lab's guard stops the rest (the leftover `sleep`) and removes it all.
    let pid = run.child.id();
    wait_for(Duration::from_secs(60), "the killed lab is gone", || {
        namespaces_of(pid).is_empty()
            && processes_in(&run.inodes).is_empty()
            && processes_mentioning(&format!("lab guard {}", run.base)).is_empty()
            // and a concurrent test's sweep of it, if one started
            && processes_mentioning(&run.base).is_empty()
    });
    run.check_gone();
    run.check_capture();
}

#[test]
fn killed_with_its_guard_the_helpers_die_and_lab_down_removes_the_rest() {
    let scratch = Scratch::new("exec-kill-guard");
    let mut run = Killable::start(&scratch);
    let guard = processes_mentioning(&format!("lab guard {}", run.base));
    let [guard] = &guard[..] else {
        panic!("one guard: {guard:?}")
    };
    let guard_pid: i32 = guard.split(':').next().unwrap().parse().unwrap();
    // SAFETY: plain kill(2) of the guard of our own child's lab.
    unsafe { libc::kill(guard_pid, libc::SIGKILL) };
    run.kill();
    // Only parent-death signals now: dnsmasq, the servers, the observers
    // (after their last Parquet) and COMMAND end; the `sleep` COMMAND
    // started has no parent-death signal and stays.
    let pid = run.child.id();
    wait_for(Duration::from_secs(60), "the helpers are gone", || {
        processes_in(&run.inodes).iter().all(|p| {
            p.split_once(": ")
                .is_some_and(|(_, c)| c.starts_with("sleep "))
        }) && processes_mentioning(&run.out.display().to_string()).is_empty()
            && processes_mentioning(&run.base).is_empty()
    });
    run.check_capture();
    // `lab down` removes the rest (unless a concurrent run's sweep did).
    let down = Command::new(observer_bin())
        .args(["--quiet", "lab", "down", &run.base])
        .output()
        .unwrap();
    let stderr = text(&down.stderr);
    assert!(
        down.status.success() || stderr.contains("no lab named"),
        "{}{stderr}",
        text(&down.stdout)
    );
    assert!(namespaces_of(pid).is_empty(), "{:?}", namespaces_of(pid));
    // A concurrent test's start sweeps this (ownerless) lab too; its
    // `ip netns del` may still be exiting when ours is done.
    wait_for(Duration::from_secs(30), "a concurrent sweep ends", || {
        processes_mentioning(&run.base).is_empty()
    });
    run.check_gone();
}

#[test]
fn a_stale_lab_is_removed_by_the_next_run_and_a_live_one_is_refused() {
    // A lab whose process has ended: two namespaces, a process inside, a
    // runtime directory, a resolver file. Its owner runs until all exists
    // (no concurrent sweep takes it half-made).
    let mut owner = Command::new("sleep").arg("300").spawn().unwrap();
    let base = format!("oblab-{}-0", owner.id());
    let (ase, dns) = (format!("{base}-ase"), format!("{base}-dns"));
    for ns in [&ase, &dns] {
        let o = Command::new("ip")
            .args(["netns", "add", ns])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o.stderr));
    }
    let mut inside = Command::new("ip")
        .args(["netns", "exec", &ase, "sleep", "300"])
        .spawn()
        .unwrap();
    let ino = std::fs::metadata(Path::new("/run/netns").join(&ase))
        .unwrap()
        .ino();
    wait_for(
        Duration::from_secs(10),
        "sleep runs in the namespace",
        || processes_in(&[ino]).len() == 1,
    );
    let run_dir = Path::new("/run/observer-lab").join(&base);
    std::fs::create_dir_all(&run_dir).unwrap();
    std::fs::write(run_dir.join("dnsmasq-168.63.129.16.pid"), "1\n").unwrap();
    let etc = Path::new("/etc/netns").join(&ase);
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("resolv.conf"), "nameserver 168.63.129.16\n").unwrap();
    owner.kill().unwrap();
    owner.wait().unwrap();

    // The next lab build sweeps it.
    let scratch = Scratch::new("exec-stale");
    let o = exec(
        &[
            "default",
            "--out",
            scratch.path().join("out").to_str().unwrap(),
        ],
        &["true"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let status = inside.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    for ns in [&ase, &dns] {
        assert!(!Path::new("/run/netns").join(ns).exists(), "{ns}");
    }
    assert!(!run_dir.exists());
    assert!(!etc.exists());

    // A lab whose process runs is not removed by name.
    let live = format!("oblab-{}-99", std::process::id());
    let o = Command::new(observer_bin())
        .args(["--quiet", "lab", "down", &live])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("which is still running"),
        "{}",
        text(&o.stderr)
    );
}
