//! Shared helpers of the privileged integration tests: the real `observer`
//! binary under a guard, an independent reader of its Parquet output, link
//! counters, namespace pairs and traffic generators.
//!
//! Tests need root (namespaces, BPF); run them with `cargo xtask test`,
//! which builds the binary and points `OBSERVER_BIN` at it.

pub mod azure;
pub mod frames;
pub mod traffic;

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use arrow::{
    array::{AsArray, RecordBatch},
    datatypes::{Int64Type, UInt8Type, UInt16Type},
};
use observer::lab::netns::{Netns, Process, veth};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Prefix of every namespace the tests create (swept after a killed run).
pub const NS_PREFIX: &str = "obt";

/// The observer binary under test.
pub fn observer_bin() -> PathBuf {
    let path = std::env::var_os("OBSERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/observer")
        });
    assert!(
        path.exists(),
        "{} does not exist; run the tests with `cargo xtask test`, which builds it",
        path.display()
    );
    path
}

/// A scratch directory removed on drop.
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(label: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("observer-test-{label}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create scratch dir");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A running `observer run`, stopped with SIGTERM.
#[derive(Debug)]
pub struct Observer {
    process: Process,
    pub out: PathBuf,
    log: PathBuf,
}

impl Observer {
    /// Starts `observer run --netns NS --out OUT ARGS...` and waits until it
    /// has attached (its ready file appears).
    pub fn start(ns: &Netns, out: &Path, args: &[&str]) -> anyhow::Result<Self> {
        fs::create_dir_all(out)?;
        let ready = out.with_extension("ready");
        let log = out.with_extension("log");
        let _ = fs::remove_file(&ready);
        let mut command = Command::new(observer_bin());
        command
            .args(["run", "--netns", ns.name(), "--out"])
            .arg(out)
            .arg("--ready-file")
            .arg(&ready)
            .args(args)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log)?);
        let mut process = Process::spawn(&mut command, "observer run")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready.exists() {
            if !process.is_running() {
                bail!(
                    "observer exited before attaching:\n{}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            ensure!(
                Instant::now() < deadline,
                "observer did not attach within 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self {
            process,
            out: out.to_owned(),
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn signal(&self, signal: libc::c_int) {
        self.process.signal(signal);
    }

    /// SIGTERM, wait, and require a clean exit.
    pub fn stop(self) -> anyhow::Result<String> {
        let log = self.log.clone();
        let status = self
            .process
            .terminate(Duration::from_secs(30))
            .context("observer vanished")?;
        let text = fs::read_to_string(&log).unwrap_or_default();
        ensure!(status.success(), "observer exited with {status}:\n{text}");
        Ok(text)
    }

    /// What the observer logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to `timeout` for the observer to exit by itself (killed
    /// after); returns its status and log.
    pub fn wait(self, timeout: Duration) -> anyhow::Result<(ExitStatus, String)> {
        let log = self.log.clone();
        let mut child = self.process.into_child();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok((status, fs::read_to_string(&log).unwrap_or_default()));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "observer did not exit by itself within {timeout:?}:\n{}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no cleanup at all.
    pub fn kill(self) {
        let mut child = self.process.into_child();
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Runs the observer to completion (for runs that must fail), returning
/// its exit status and stderr.
pub fn observer_output(args: &[&str]) -> (ExitStatus, String) {
    let output = Command::new(observer_bin())
        .args(args)
        .output()
        .expect("run observer");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// One row of a flow file, read independently of the observer's own reader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub iface: String,
    pub iface_role: Option<String>,
    pub direction: String,
    pub ip_version: u8,
    pub protocol: u8,
    pub src_addr: String,
    pub dst_addr: String,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    pub vlan_id: Option<u16>,
    pub packets: u64,
    pub bytes: u64,
    pub tcp_flags: u8,
    pub end_reason: String,
    pub start_ns: i64,
    pub end_ns: i64,
    /// Every other text column by name (classification and DNS columns).
    pub text: BTreeMap<String, Option<String>>,
}

impl Flow {
    pub fn text(&self, column: &str) -> Option<&str> {
        self.text.get(column).and_then(|v| v.as_deref())
    }
}

/// Every record batch of the Parquet files in `dir` whose name starts with
/// `prefix`, in file order, each with its file; fails on any `.tmp` leftover.
fn batches(dir: &Path, prefix: &str) -> anyhow::Result<Vec<(PathBuf, RecordBatch)>> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.sort();
    ensure!(
        !paths.iter().any(|p| p.to_string_lossy().ends_with(".tmp")),
        "temporary files left in {}",
        dir.display()
    );
    let mut batches = Vec::new();
    for path in paths
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
    {
        let reader = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(&path)?)?.build()?;
        for batch in reader {
            let batch = batch.with_context(|| path.display().to_string())?;
            batches.push((path.clone(), batch));
        }
    }
    Ok(batches)
}

/// Reads every `flows-*.parquet` in `dir`; fails on any `.tmp` leftover.
pub fn read_flows(dir: &Path) -> anyhow::Result<Vec<Flow>> {
    let mut flows = Vec::new();
    for (path, batch) in batches(dir, "flows-")? {
        flows.extend(rows(&batch).with_context(|| path.display().to_string())?);
    }
    Ok(flows)
}

/// Rows in every Parquet file of `dir` whose name starts with `prefix`.
pub fn table_rows(dir: &Path, prefix: &str) -> anyhow::Result<usize> {
    Ok(batches(dir, prefix)?
        .iter()
        .map(|(_, b)| b.num_rows())
        .sum())
}

/// A socket address from an IPv4 or IPv6 text address and a port.
pub fn sa(ip: &str, port: u16) -> std::net::SocketAddr {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
    .parse()
    .expect("a socket address")
}

fn rows(batch: &RecordBatch) -> anyhow::Result<Vec<Flow>> {
    let col = |name: &str| {
        batch
            .column_by_name(name)
            .with_context(|| format!("no column {name}"))
    };
    let text = |name: &str| -> anyhow::Result<Vec<Option<String>>> {
        Ok(col(name)?
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect())
    };
    let u8s = |name: &str| -> anyhow::Result<Vec<Option<u8>>> {
        Ok(col(name)?.as_primitive::<UInt8Type>().iter().collect())
    };
    let u16s = |name: &str| -> anyhow::Result<Vec<Option<u16>>> {
        Ok(col(name)?.as_primitive::<UInt16Type>().iter().collect())
    };
    // Schema 3: signed counters (Spark has no unsigned 64-bit type) and
    // UTC times in microseconds (Spark's precision), read here as ns.
    let u64s = |name: &str| -> anyhow::Result<Vec<u64>> {
        col(name)?
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .map(|&v| u64::try_from(v).with_context(|| format!("{name} {v} is negative")))
            .collect()
    };
    let times = |name: &str| -> anyhow::Result<Vec<i64>> {
        Ok(col(name)?
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
            .values()
            .iter()
            .map(|us| us * 1000)
            .collect())
    };
    let (iface, role, direction) = (text("iface")?, text("iface_role")?, text("direction")?);
    let (ip_version, protocol) = (u8s("ip_version")?, u8s("protocol")?);
    let (src, dst) = (text("src_addr")?, text("dst_addr")?);
    let (sport, dport, itype, icode, vlan) = (
        u16s("src_port")?,
        u16s("dst_port")?,
        u8s("icmp_type")?,
        u8s("icmp_code")?,
        u16s("vlan_id")?,
    );
    let (packets, bytes, flags, reason) = (
        u64s("packets")?,
        u64s("bytes")?,
        u8s("tcp_flags")?,
        text("end_reason")?,
    );
    let (start, end) = (times("start_time")?, times("end_time")?);
    let extra: Vec<(String, Vec<Option<String>>)> = batch
        .schema()
        .fields()
        .iter()
        .filter(|f| f.data_type() == &arrow::datatypes::DataType::Utf8)
        .map(|f| Ok((f.name().clone(), text(f.name())?)))
        .collect::<anyhow::Result<_>>()?;
    Ok((0..batch.num_rows())
        .map(|i| Flow {
            iface: iface[i].clone().unwrap_or_default(),
            iface_role: role[i].clone(),
            direction: direction[i].clone().unwrap_or_default(),
            ip_version: ip_version[i].unwrap_or_default(),
            protocol: protocol[i].unwrap_or_default(),
            src_addr: src[i].clone().unwrap_or_default(),
            dst_addr: dst[i].clone().unwrap_or_default(),
            src_port: sport[i],
            dst_port: dport[i],
            icmp_type: itype[i],
            icmp_code: icode[i],
            vlan_id: vlan[i],
            packets: packets[i],
            bytes: bytes[i],
            tcp_flags: flags[i].unwrap_or_default(),
            end_reason: reason[i].clone().unwrap_or_default(),
            start_ns: start[i],
            end_ns: end[i],
            text: extra
                .iter()
                .map(|(name, values)| (name.clone(), values[i].clone()))
                .collect(),
        })
        .collect())
}

/// Sums packets and bytes of the flows matching `filter`.
pub fn total(flows: &[Flow], filter: impl Fn(&Flow) -> bool) -> (u64, u64) {
    flows
        .iter()
        .filter(|f| filter(f))
        .fold((0, 0), |(p, b), f| (p + f.packets, b + f.bytes))
}

/// The `run-*.json` summary of a finished run.
pub fn summary(dir: &Path) -> anyhow::Result<serde_json::Value> {
    let path = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("run-"))
        .context("no run summary")?;
    Ok(serde_json::from_str(&fs::read_to_string(path)?)?)
}

/// A counter from the run summary: (packets, bytes).
pub fn counter(summary: &serde_json::Value, name: &str) -> (u64, u64) {
    let c = &summary["counters"][name];
    (
        c["packets"].as_u64().unwrap_or(0),
        c["bytes"].as_u64().unwrap_or(0),
    )
}

/// Sum of the "not accounted" reason counters: (packets, frame bytes).
pub fn not_accounted(summary: &serde_json::Value) -> (u64, u64) {
    [
        "non_ip",
        "eth_truncated",
        "vlan_too_deep",
        "ipv4_truncated",
        "ipv4_bad_header",
        "ipv6_truncated",
        "ipv6_bad_header",
        "ipv6_ext_chain",
        "l4_truncated",
    ]
    .iter()
    .fold((0, 0), |(p, b), name| {
        let (cp, cb) = counter(summary, name);
        (p + cp, b + cb)
    })
}

/// An interface's own counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Packets the device dropped on transmit (after the egress hook saw them).
    pub tx_dropped: u64,
}

pub fn link_stats(ns: &Netns, iface: &str) -> anyhow::Result<LinkStats> {
    let json: serde_json::Value =
        serde_json::from_str(&ns.ip(["-s", "-j", "link", "show", "dev", iface])?)?;
    let stats = &json[0]["stats64"];
    let get = |dir: &str, key: &str| stats[dir][key].as_u64().context("link stats");
    Ok(LinkStats {
        rx_packets: get("rx", "packets")?,
        rx_bytes: get("rx", "bytes")?,
        tx_packets: get("tx", "packets")?,
        tx_bytes: get("tx", "bytes")?,
        tx_dropped: get("tx", "dropped")?,
    })
}

/// An interface's counters once the link is quiet: read every 100 ms until
/// two reads in a row agree (packets still queued or in a softirq have
/// landed), for at most 10 s, however slow the host.
pub fn quiet_link_stats(ns: &Netns, iface: &str) -> anyhow::Result<LinkStats> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = link_stats(ns, iface)?;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = link_stats(ns, iface)?;
        if now == last {
            return Ok(now);
        }
        ensure!(
            Instant::now() < deadline,
            "{iface} in {} was still carrying traffic after 10 s",
            ns.name()
        );
        last = now;
    }
}

pub fn mac(ns: &Netns, iface: &str) -> anyhow::Result<String> {
    let json: serde_json::Value =
        serde_json::from_str(&ns.ip(["-j", "link", "show", "dev", iface])?)?;
    Ok(json[0]["address"].as_str().context("mac")?.to_owned())
}

/// The observer's programs attached in the namespace, one line each: TCX
/// links (queried per interface, which bpftool 7.1 cannot show) and
/// cls_bpf filters. Empty when nothing is attached.
pub fn bpf_attachments(ns: &Netns) -> anyhow::Result<String> {
    use aya::programs::{SchedClassifier, TcAttachType};
    let links: serde_json::Value = serde_json::from_str(&ns.ip(["-j", "link", "show"])?)?;
    let names: Vec<String> = links
        .as_array()
        .context("ip -j link")?
        .iter()
        .filter_map(|l| l["ifname"].as_str().map(str::to_owned))
        .collect();
    let mut lines = ns.enter(|| -> anyhow::Result<Vec<String>> {
        let mut lines = Vec::new();
        for name in &names {
            for (hook, attach) in [
                ("ingress", TcAttachType::Ingress),
                ("egress", TcAttachType::Egress),
            ] {
                let (_, programs) = SchedClassifier::query_tcx(name, attach)
                    .with_context(|| format!("query TCX programs on {name}"))?;
                for program in programs {
                    let program = program.name_as_str().unwrap_or_default().to_owned();
                    if program.starts_with("observe_") {
                        lines.push(format!("tcx {name}/{hook}: {program}"));
                    }
                }
            }
        }
        Ok(lines)
    })??;
    let tc = ns.exec("bpftool", ["net", "show"])?;
    lines.extend(
        tc.lines()
            .filter(|l| l.contains("observe_"))
            .map(|l| format!("tc {}", l.trim())),
    );
    Ok(lines.join("\n"))
}

/// Two namespaces joined by `veth0` <-> `veth0`.
#[derive(Debug)]
pub struct Pair {
    pub a: Netns,
    pub b: Netns,
}

/// Addresses of [`Pair::addressed`].
pub const A4: &str = "10.77.0.1";
pub const B4: &str = "10.77.0.2";
pub const A6: &str = "fd77::1";
pub const B6: &str = "fd77::2";

impl Pair {
    /// Bare pair: links up, no addresses, no IPv6 link-local (so no ND or
    /// MLD chatter), offloads as given.
    pub fn new(offloads: bool) -> anyhow::Result<Self> {
        let (a, b) = (Netns::new(NS_PREFIX)?, Netns::new(NS_PREFIX)?);
        veth(&a, "veth0", &b, "veth0")?;
        for ns in [&a, &b] {
            ns.ip(["link", "set", "veth0", "addrgenmode", "none"])?;
            if !offloads {
                ns.exec(
                    "ethtool",
                    ["-K", "veth0", "tso", "off", "gso", "off", "gro", "off"],
                )?;
            }
            ns.ip(["link", "set", "veth0", "up"])?;
        }
        Ok(Self { a, b })
    }

    /// A pair with IPv4 and IPv6 addresses and permanent neighbour entries
    /// (no ARP or ND on the wire), settled so the link is quiet.
    pub fn addressed(offloads: bool) -> anyhow::Result<Self> {
        let pair = Self::new(offloads)?;
        let (mac_a, mac_b) = (mac(&pair.a, "veth0")?, mac(&pair.b, "veth0")?);
        for (ns, v4, v6, peer4, peer6, peer_mac) in [
            (&pair.a, A4, A6, B4, B6, &mac_b),
            (&pair.b, B4, B6, A4, A6, &mac_a),
        ] {
            ns.ip(["addr", "add", &format!("{v4}/24"), "dev", "veth0"])?;
            ns.ip(["addr", "add", &format!("{v6}/64"), "dev", "veth0", "nodad"])?;
            for peer in [peer4, peer6] {
                ns.ip([
                    "neigh",
                    "replace",
                    peer,
                    "lladdr",
                    peer_mac,
                    "dev",
                    "veth0",
                    "nud",
                    "permanent",
                ])?;
            }
        }
        // Multicast listener reports for the new addresses go out within a second.
        std::thread::sleep(Duration::from_millis(2500));
        Ok(pair)
    }
}

/// A tool `cargo xtask test` installed: the path in `var`, else `fallback`
/// under the workspace (where `cargo xtask setup` puts it).
fn tool(var: &str, fallback: &str) -> PathBuf {
    std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(fallback)
    })
}

/// The project-local venv's python (pyarrow, DuckDB, azure-storage-blob,
/// prometheus_client).
pub fn python() -> PathBuf {
    let path = tool("OBSERVER_PYTHON", "target/tools/venv/bin/python");
    assert!(
        path.exists(),
        "{} missing: run `cargo xtask setup` (installs the tests' Python packages in target/tools/venv)",
        path.display()
    );
    path
}

/// The project-local `node_modules` (Azurite, playwright-core).
pub fn node_modules() -> PathBuf {
    let path = tool("OBSERVER_NODE_MODULES", "target/tools/npm/node_modules");
    assert!(
        path.exists(),
        "{} missing: run `cargo xtask setup` (installs Azurite and playwright-core in target/tools/npm)",
        path.display()
    );
    path
}
