//! `observer lab exec` and `lab up` with real clients (curl, Python
//! sockets) in the emulated ASE network: exit statuses, verdicts read back
//! from the reports and the Parquet, JSON and JUnit parsed by Python,
//! concurrent runs, SIGTERM mid-run, and nothing left behind (SIGKILL and
//! stale labs: `lab_faults.rs`).
//! Needs root; run with `cargo xtask test`.

use std::{
    os::unix::{fs::MetadataExt as _, process::ExitStatusExt as _},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use observer_tests::{Scratch, observer_bin};

const KEYVAULT_CURL: &str = "curl -sS --max-time 10 http://contoso-kv.vault.azure.net:443/";

/// A Python socket client: connects to the SQL VM's public address; the
/// VNet-only ACL refuses it, which the client reports and exits 0 on.
const SQL_PUBLIC_PY: &str = r#"
import socket, sys
try:
    s = socket.create_connection(("203.0.113.6", 1433), timeout=10)
    s.sendall(b"hello\n")
    print("answered:", s.recv(200))
except ConnectionRefusedError:
    print("refused")
"#;

fn topologies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../lab/topologies")
}

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

fn report_json(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("report.json")).expect("report.json written");
    serde_json::from_str(&text).expect("report.json parses")
}

/// The connection of `report` to `addr:port`.
fn connection<'a>(report: &'a serde_json::Value, addr: &str, port: u64) -> &'a serde_json::Value {
    report["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["server"]["addr"] == addr && c["server"]["port"] == port)
        .unwrap_or_else(|| panic!("no connection to {addr}:{port} in {report:#}"))
}

/// Lab namespaces made by the process `pid`.
fn namespaces_of(pid: u32) -> Vec<String> {
    observer::lab::teardown::list()
        .into_iter()
        .filter(|n| n.starts_with(&format!("oblab-{pid}-")))
        .collect()
}

#[test]
fn keyvault_over_the_linked_private_endpoint_passes() {
    let scratch = Scratch::new("exec-kv");
    let out = scratch.path().join("out");
    let o = exec(
        &["default", "--out", out.to_str().unwrap()],
        &["sh", "-c", KEYVAULT_CURL],
    );
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{stdout}\n{stderr}");
    // curl got the server's HTTP 200 through the private endpoint.
    assert!(
        stdout.contains("observer lab: keyvault (private endpoint) (10.0.2.5:443)"),
        "{stdout}"
    );
    let report = report_json(&out);
    let kv = connection(&report, "10.0.2.5", 443);
    assert_eq!(kv["verdict"], "ok", "{kv:#}");
    assert_eq!(kv["server"]["name"], "contoso-kv.vault.azure.net", "{kv:#}");
    assert!(kv["forward"]["packets"].as_u64().unwrap() >= 3, "{kv:#}");
    assert!(kv["reverse"]["packets"].as_u64().unwrap() >= 3, "{kv:#}");
    // Seen by the workload and by the router.
    assert!(kv["points"].as_array().unwrap().len() >= 2, "{kv:#}");
    assert_eq!(
        report["summary"]["by_verdict"].get("leak-public-endpoint"),
        None
    );
}

#[test]
fn python_client_to_the_sql_vm_public_address_fails_with_a_leak_and_reports_parse() {
    let scratch = Scratch::new("exec-sql");
    let out = scratch.path().join("out");
    let junit = scratch.path().join("junit.xml");
    let o = exec(
        &[
            "default",
            "--out",
            out.to_str().unwrap(),
            "--junit",
            junit.to_str().unwrap(),
        ],
        &["python3", "-c", SQL_PUBLIC_PY],
    );
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("refused"), "{stdout}");
    // One line for the offending connection, with its verdict and reason.
    let line = stderr
        .lines()
        .find(|l| {
            l.trim_start()
                .starts_with("leak-public-endpoint: tcp 10.0.0.4:")
        })
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains("-> 203.0.113.6:1433"), "{line}");
    // The request and the reset are one connection, judged once.
    let report = report_json(&out);
    let sql = connection(&report, "203.0.113.6", 1433);
    assert_eq!(sql["verdict"], "leak-public-endpoint");
    assert!(
        sql["reverse"]["packets"].as_u64().unwrap() >= 1,
        "the RST: {sql:#}"
    );
    assert_eq!(
        report["summary"]["by_verdict"]["leak-public-endpoint"], 1,
        "{report:#}"
    );

    // Python's json and xml.etree read both documents; counts agree.
    let check = format!(
        r#"
import json, xml.etree.ElementTree as ET
doc = json.load(open("{json}"))
assert doc["format"] == "observer-report/1", doc["format"]
conns = doc["connections"]
assert doc["summary"]["connections"] == len(conns)
leaks = [c for c in conns if c["verdict"] == "leak-public-endpoint"]
assert len(leaks) == 1, leaks
root = ET.parse("{junit}").getroot()
cases = root.findall(".//testcase")
failures = root.findall(".//testcase/failure")
# every connection, the command, capture loss and DNS
assert len(cases) == len(conns) + 3, (len(cases), len(conns))
assert int(root.get("tests")) == len(cases)
assert len(failures) == 1, [f.get("message") for f in failures]
assert failures[0].get("type") == "leak-public-endpoint"
assert int(root.get("failures")) == 1
print("parsed", len(conns), len(cases))
"#,
        json = out.join("report.json").display(),
        junit = junit.display()
    );
    let py = Command::new("python3")
        .args(["-c", &check])
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}{}",
        text(&py.stdout),
        text(&py.stderr)
    );

    // `observer report` renders the same Parquet in every format.
    for (format, probe) in [
        ("json", "\"format\": \"observer-report/1\""),
        ("junit", "<testsuites"),
    ] {
        let r = Command::new(observer_bin())
            .args(["report", "--format", format, "--fail-on", "leak"])
            .args([out.join("workload"), out.join("router")])
            .output()
            .unwrap();
        assert_eq!(r.status.code(), Some(1), "{}", text(&r.stderr));
        assert!(text(&r.stdout).contains(probe), "{}", text(&r.stdout));
    }
}

#[test]
fn an_unlinked_privatelink_zone_fails_with_leak_dns() {
    let scratch = Scratch::new("exec-dns");
    let out = scratch.path().join("out");
    let o = exec(
        &["pe-zone-not-linked", "--out", out.to_str().unwrap()],
        &["sh", "-c", KEYVAULT_CURL],
    );
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(1), "{stdout}\n{stderr}");
    // The name resolved public: the public endpoint answered.
    assert!(
        stdout.contains("(public endpoint) (203.0.113.20:443)"),
        "{stdout}"
    );
    assert!(stderr.contains("leak-dns: tcp 10.0.0.4:"), "{stderr}");
    assert_eq!(
        connection(&report_json(&out), "203.0.113.20", 443)["verdict"],
        "leak-dns"
    );
}

#[test]
fn the_commands_own_failure_status_comes_through() {
    let scratch = Scratch::new("exec-status");
    let out = scratch.path().join("out");
    let o = exec(
        &["default", "--out", out.to_str().unwrap()],
        &["sh", "-c", "exit 7"],
    );
    assert_eq!(o.status.code(), Some(7), "{}", text(&o.stderr));
    // Even with a leak, COMMAND's failure wins.
    let o = exec(
        &["default", "--out", out.to_str().unwrap()],
        &[
            "sh",
            "-c",
            &format!("python3 -c '{}'; exit 3", SQL_PUBLIC_PY.replace('\'', "\"")),
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert_eq!(
        connection(&report_json(&out), "203.0.113.6", 1433)["verdict"],
        "leak-public-endpoint"
    );
}

#[test]
fn a_topology_error_fails_before_anything_is_built() {
    let scratch = Scratch::new("exec-bad");
    let bad = scratch.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"bad\"\nenvironment = \"asev2-external\"\n[vnet]\nname = \"v\"\naddress_space = [\"192.168.250.0/16\"]\n",
    )
    .unwrap();
    let out = scratch.path().join("out");
    let o = exec(
        &[bad.to_str().unwrap(), "--out", out.to_str().unwrap()],
        &["true"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("bad.toml:5:"),
        "{}",
        text(&o.stderr)
    );
    let o = exec(&["defualt", "--out", out.to_str().unwrap()], &["true"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("built-in topologies are default"),
        "{}",
        text(&o.stderr)
    );
    // Nothing was built: no observer ever started, no report written
    // (namespaces are checked by `lab.rs`, which runs in-process).
    for left in ["workload", "router", "report.json"] {
        assert!(!out.join(left).exists(), "{left} exists");
    }
}

#[test]
fn two_exec_runs_at_once_do_not_interfere() {
    let scratch = Scratch::new("exec-pair");
    let runs: Vec<(std::process::Child, PathBuf)> = ["a", "b"]
        .iter()
        .map(|n| {
            let out = scratch.path().join(n);
            let child = Command::new(observer_bin())
                .args(["--quiet", "lab", "exec", "default", "--out"])
                .arg(&out)
                .args(["--", "sh", "-c", KEYVAULT_CURL])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (child, out)
        })
        .collect();
    for (child, out) in runs {
        let pid = child.id();
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        assert!(text(&o.stdout).contains("keyvault (private endpoint)"));
        let report = report_json(&out);
        assert_eq!(connection(&report, "10.0.2.5", 443)["verdict"], "ok");
        assert!(namespaces_of(pid).is_empty(), "{:?}", namespaces_of(pid));
    }
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

#[test]
fn sigterm_mid_run_tears_down_and_keeps_the_capture() {
    let scratch = Scratch::new("exec-term");
    let out = scratch.path().join("out");
    let marker = scratch.path().join("marker");
    let script = format!("{KEYVAULT_CURL} && touch {} && sleep 120", marker.display());
    let mut child = Command::new(observer_bin())
        .args(["--quiet", "lab", "exec", "default", "--out"])
        .arg(&out)
        .args(["--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let started = Instant::now();
    while !marker.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the command never ran"
        );
        assert!(child.try_wait().unwrap().is_none(), "lab exec ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The lab's namespaces, by inode: after the run no process may be in one.
    let inodes: Vec<u64> = namespaces_of(pid)
        .iter()
        .map(|n| {
            std::fs::metadata(Path::new("/run/netns").join(n))
                .unwrap()
                .ino()
        })
        .collect();
    assert!(inodes.len() >= 6, "{:?}", namespaces_of(pid));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let o = child.wait_with_output().unwrap();
    // sh got the forwarded SIGTERM: 128 + 15.
    assert_eq!(
        o.status.code(),
        Some(143),
        "{:?} {}",
        o.status.signal(),
        text(&o.stderr)
    );
    assert!(
        text(&o.stderr).contains("interrupted by signal 15"),
        "{}",
        text(&o.stderr)
    );

    // No namespace, no process inside one (so no interface and no BPF
    // attachment either: they die with their namespace), no observer.
    assert!(namespaces_of(pid).is_empty(), "{:?}", namespaces_of(pid));
    let inside: Vec<String> = process_namespaces()
        .into_iter()
        .filter(|(_, ino)| inodes.contains(ino))
        .map(|(p, _)| format!("{p}: {}", cmdline(p)))
        .collect();
    assert!(inside.is_empty(), "left running in the lab: {inside:?}");
    let out_text = out.display().to_string();
    let observers: Vec<String> = process_namespaces()
        .into_iter()
        .map(|(p, _)| cmdline(p))
        .filter(|c| c.contains(&out_text))
        .collect();
    assert!(observers.is_empty(), "{observers:?}");
    for n in namespaces_of(pid) {
        assert!(!Path::new("/etc/netns").join(&n).exists());
    }

    // The Parquet written so far reads back, with the Key Vault flow.
    let files = observer::files::reader::read_flows(&[out.join("workload")]).unwrap();
    let records: Vec<_> = files.into_iter().flat_map(|f| f.records).collect();
    assert!(
        records.iter().any(|r| r.dst_addr.to_string() == "10.0.2.5"
            && r.dst_port == Some(443)
            && r.verdict.as_deref() == Some("ok")),
        "{records:#?}"
    );
    assert_eq!(
        connection(&report_json(&out), "10.0.2.5", 443)["verdict"],
        "ok"
    );
}

#[test]
fn lab_up_serves_dns_and_endpoints_to_ip_netns_exec() {
    let name = format!("t14-{}", std::process::id());
    let up = Command::new(observer_bin())
        .args(["--quiet", "lab", "up", "default", "--name", &name])
        .output()
        .unwrap();
    assert!(up.status.success(), "{}", text(&up.stderr));
    let ase = format!("obup-{name}-ase");
    let in_lab = |args: &[&str]| {
        Command::new("ip")
            .args(["netns", "exec", &ase])
            .args(args)
            .output()
            .unwrap()
    };
    let probe = r#"
import socket
print("kv", socket.gethostbyname("contoso-kv.vault.azure.net"))
print("app0", socket.gethostbyname("app0"))
s = socket.create_connection(("contosodata.blob.core.windows.net", 443), timeout=10)
s.sendall(b"GET / HTTP/1.1\r\nHost: contosodata.blob.core.windows.net\r\n\r\n")
print("storage", s.recv(4096).decode().splitlines()[0])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(10)
u.sendto(b"echo me", ("203.0.113.30", 443))
print("udp", u.recv(100).decode())
"#;
    let py = in_lab(&["python3", "-c", probe]);
    let curl = in_lab(&[
        "curl",
        "-sS",
        "--max-time",
        "10",
        "http://contoso-kv.vault.azure.net:443/",
    ]);
    // dnsmasq's pid file is in the lab's runtime directory, not in /tmp.
    let run_dir = Path::new("/run/observer-lab").join(format!("obup-{name}"));
    let pid_file = run_dir.join("dnsmasq-168.63.129.16.pid").exists();
    let down = Command::new(observer_bin())
        .args(["--quiet", "lab", "down", &name])
        .output()
        .unwrap();
    assert!(pid_file, "no dnsmasq pid file in {}", run_dir.display());
    let py_out = text(&py.stdout);
    assert!(py.status.success(), "{py_out}{}", text(&py.stderr));
    assert!(py_out.contains("kv 10.0.2.5"), "{py_out}");
    // The search path: the instance's short name resolves.
    assert!(py_out.contains("app0 10.0.0.4"), "{py_out}");
    assert!(py_out.contains("storage HTTP/1.1 200 OK"), "{py_out}");
    assert!(py_out.contains("udp echo me"), "{py_out}");
    assert!(
        text(&curl.stdout).contains("keyvault (private endpoint)"),
        "{}",
        text(&curl.stderr)
    );
    assert!(down.status.success(), "{}", text(&down.stderr));
    let left: Vec<String> = observer::lab::teardown::list()
        .into_iter()
        .filter(|n| n.starts_with(&format!("obup-{name}-")))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(!Path::new("/etc/netns").join(&ase).exists());
    assert!(!run_dir.exists());
}

#[test]
fn two_app_instances_are_each_an_observation_point() {
    let scratch = Scratch::new("exec-two");
    let text_of = std::fs::read_to_string(topologies().join("default.toml")).unwrap();
    let topology = scratch.path().join("two.toml");
    std::fs::write(
        &topology,
        text_of
            .replace("name = \"default\"", "name = \"two-instances\"")
            .replace("\n[lab]\n", "\n[lab]\ninstances = 2\n"),
    )
    .unwrap();
    std::fs::copy(
        topologies().join("service-tags.json"),
        scratch.path().join("service-tags.json"),
    )
    .unwrap();
    let out = scratch.path().join("out");
    // The first instance reaches Key Vault and knocks on the second one.
    let script = format!(
        "{KEYVAULT_CURL} && python3 -c 'import socket\ntry: socket.create_connection((\"10.0.0.5\", 8080), timeout=5)\nexcept OSError as e: print(e)'"
    );
    let o = exec(
        &[topology.to_str().unwrap(), "--out", out.to_str().unwrap()],
        &["sh", "-c", &script],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}\n{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    let report = report_json(&out);
    assert_eq!(connection(&report, "10.0.2.5", 443)["verdict"], "ok");
    let peer = connection(&report, "10.0.0.5", 8080);
    let points: Vec<&str> = peer["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["netns"].as_str())
        .collect();
    assert!(points.iter().any(|n| n.ends_with("-ase2")), "{peer:#}");
    assert!(points.iter().any(|n| n.ends_with("-ase")), "{peer:#}");
    assert!(out.join("workload2").is_dir());
}

#[test]
fn through_sudo_the_command_runs_as_the_invoking_user() {
    let scratch = Scratch::new("exec-sudo");
    let out = scratch.path().join("out");
    let o = Command::new(observer_bin())
        .args(["--quiet", "lab", "exec", "default", "--out"])
        .arg(&out)
        .args([
            "--",
            "sh",
            "-c",
            "id -u; id -g; grep nameserver /etc/resolv.conf",
        ])
        .env("SUDO_UID", "65534")
        .env("SUDO_GID", "65534")
        .current_dir("/")
        .output()
        .unwrap();
    let stdout = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{stdout}{}", text(&o.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        ["65534", "65534", "nameserver 168.63.129.16"],
        "{stdout}"
    );
    // What the run wrote belongs to that user.
    assert_eq!(
        std::fs::metadata(out.join("report.json")).unwrap().uid(),
        65534
    );
}

#[test]
fn keep_leaves_the_lab_live_and_says_how_to_remove_it() {
    let o = exec(&["default", "--keep"], &["true"]);
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let down = stderr
        .lines()
        .find_map(|l| l.split("remove it with: sudo ").nth(1))
        .unwrap_or_else(|| panic!("{stderr}"))
        .to_string();
    let name = down
        .trim_start_matches("observer lab down ")
        .trim()
        .to_string();
    let ase = format!("obup-{name}-ase");
    // Still live: DNS and the servers answer.
    let curl = Command::new("ip")
        .args(["netns", "exec", &ase])
        .args([
            "curl",
            "-sS",
            "--max-time",
            "10",
            "http://contoso-kv.vault.azure.net:443/",
        ])
        .output()
        .unwrap();
    let removed = Command::new(observer_bin())
        .args(["--quiet", "lab", "down", &name])
        .output()
        .unwrap();
    assert!(
        text(&curl.stdout).contains("keyvault (private endpoint)"),
        "{}",
        text(&curl.stderr)
    );
    assert!(removed.status.success(), "{}", text(&removed.stderr));
    assert!(!Path::new("/run/netns").join(&ase).exists());
    // The default output directory of that run.
    let _ = std::fs::remove_dir_all(Path::new(env!("CARGO_MANIFEST_DIR")).join("observer-lab"));
}
