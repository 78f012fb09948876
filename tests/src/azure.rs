//! Azure's side of the import tests: Azurite (Blob Storage on loopback, its
//! access log kept so a test can see which listings were asked for),
//! flow-log blobs in Azure's layout, the Python SDK's upload and download,
//! and the observer run as a user runs it (exit status, stdout, stderr).

use std::{
    collections::BTreeMap,
    fs,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, ensure};
use observer::lab::netns::Process;

use crate::{Flow, Scratch, node_modules, observer_bin, python, read_flows};

/// Azurite's blob service on 127.0.0.1 at a free port, stopped on drop.
/// Telemetry off: nothing leaves the host.
#[derive(Debug)]
pub struct Azurite {
    process: Option<Process>,
    pub port: u16,
    dir: Scratch,
}

impl Azurite {
    pub fn start() -> anyhow::Result<Self> {
        let bin = node_modules().join(".bin/azurite-blob");
        ensure!(
            bin.exists(),
            "{} missing: run `cargo xtask setup` (installs Azurite in target/tools/npm)",
            bin.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = Scratch::new("azurite");
        let mut command = Command::new(bin);
        command
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args(["--skipApiVersionCheck", "--disableTelemetry", "--location"])
            .arg(dir.path())
            // The access log: one line per request.
            .stdout(fs::File::create(dir.path().join("access.log"))?)
            .stderr(Stdio::null());
        let mut process = Process::spawn(&mut command, "azurite")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if !process.is_running() {
                bail!("azurite exited at start");
            }
            ensure!(
                Instant::now() < deadline,
                "azurite did not listen within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Self {
            process: Some(process),
            port,
            dir,
        })
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_STORAGE_USE_EMULATOR", "true".into()),
            (
                "AZURITE_BLOB_STORAGE_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
            (
                "AZURE_STORAGE_CONNECTION_STRING",
                format!(
                    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:{}/devstoreaccount1;",
                    self.port
                ),
            ),
        ]
    }

    /// The requests served so far, one per line as the access log has
    /// them (`GET /devstoreaccount1/...?comp=list&prefix=... HTTP/1.1" 200 -`).
    pub fn requests(&self) -> anyhow::Result<Vec<String>> {
        let log = fs::read_to_string(self.dir.path().join("access.log"))?;
        Ok(log
            .lines()
            .filter_map(|l| l.split_once('"').map(|(_, r)| r.to_owned()))
            .collect())
    }

    /// The `prefix` of each listing request among `requests`, and whether
    /// it was one level (`delimiter=/`) or everything below.
    pub fn listings(requests: &[String]) -> Vec<(String, bool)> {
        requests
            .iter()
            .filter(|r| r.starts_with("GET ") && r.contains("comp=list"))
            .map(|r| {
                let query = r.split_once('?').map_or("", |(_, q)| q);
                let query = query.split(' ').next().unwrap_or_default();
                let mut prefix = String::new();
                let mut level = false;
                for pair in query.split('&') {
                    match pair.split_once('=') {
                        Some(("prefix", v)) => prefix = decode_url(v),
                        Some(("delimiter", _)) => level = true,
                        _ => {}
                    }
                }
                (prefix, level)
            })
            .collect()
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        if let Some(p) = self.process.take() {
            let _ = p.terminate(Duration::from_secs(10));
        }
    }
}

fn decode_url(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One VNet flow log blob (flowLogVersion 4) with `tuples`, in one record.
pub fn vnet_blob(mac: &str, tuples: &[String]) -> String {
    vnet_records(mac, &[("2024-05-01T13:00:00Z".to_owned(), tuples.to_vec())])
}

/// One record of a blob: when it was logged, and its tuples.
pub type Record = (String, Vec<String>);

/// One VNet flow log blob with one record per `(time logged, tuples)`.
pub fn vnet_records(mac: &str, records: &[Record]) -> String {
    let records: Vec<String> = records
        .iter()
        .map(|(time, tuples)| {
            let tuples = tuples
                .iter()
                .map(|t| format!("\"{t}\""))
                .collect::<Vec<_>>()
                .join(",");
            format!(
                r#"{{"time":"{time}","flowLogVersion":4,"macAddress":"{mac}","category":"FlowLogFlowEvent","targetResourceID":"/subscriptions/0/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/ase-vnet","flowRecords":{{"flows":[{{"aclID":"a","flowGroups":[{{"rule":"DefaultRule_AllowInternetOutBound","flowTuples":[{tuples}]}}]}}]}}}}"#
            )
        })
        .collect();
    format!(r#"{{"records":[{}]}}"#, records.join(","))
}

/// The flow log's part of Azure's blob names (below the container).
pub const FLOW_LOG: &str = "flowLogResourceID=/SUBSCRIPTIONS/0/RESOURCEGROUPS/NW/PROVIDERS/MICROSOFT.NETWORK/NETWORKWATCHERS/NW/FLOWLOGS/ASE";

/// A tuple as Azure logs it: its time (ms), NIC and a unique source port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Logged {
    pub time_ms: i64,
    pub mac: &'static str,
    pub port: u16,
}

/// Writes tuples of `macs` from `from_ms` to `to_ms` (one every `every_ms`
/// per NIC) under `root` in Azure's layout as Azure logs them: each
/// minute's tuples in one record logged 52 s after the minute ends, in the
/// blob of the hour of that time (so the blob of hour h holds the last
/// minute of hour h-1). Returns the tuples written.
pub fn write_layout(
    root: &Path,
    macs: &[&'static str],
    from_ms: i64,
    to_ms: i64,
    every_ms: i64,
) -> anyhow::Result<Vec<Logged>> {
    const MINUTE: i64 = 60_000;
    let mut written = Vec::new();
    // (mac, blob hour) -> records (logged time, tuples)
    let mut blobs: BTreeMap<(&str, i64), Vec<Record>> = BTreeMap::new();
    for &mac in macs {
        let mut port = 10_000u16;
        let mut minute_tuples: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        let mut t = from_ms;
        while t < to_ms {
            port += 1;
            minute_tuples
                .entry(t.div_euclid(MINUTE))
                .or_default()
                .push(format!(
                    "{t},10.0.0.6,52.239.184.10,{port},443,6,O,E,NX,2,120,2,240"
                ));
            written.push(Logged {
                time_ms: t,
                mac,
                port,
            });
            t += every_ms;
        }
        for (minute, tuples) in minute_tuples {
            let logged_ms = (minute + 1) * MINUTE + 52_000;
            let logged = chrono_text(logged_ms);
            blobs
                .entry((mac, logged_ms.div_euclid(60 * MINUTE)))
                .or_default()
                .push((logged, tuples));
        }
    }
    for ((mac, hour), records) in blobs {
        let path = root.join(blob_path(mac, hour * 3_600_000));
        fs::create_dir_all(path.parent().expect("a directory"))?;
        fs::write(path, vnet_records(mac, &records))?;
    }
    Ok(written)
}

/// Azure's blob name of the NIC `mac`'s hour starting at `hour_ms`.
pub fn blob_path(mac: &str, hour_ms: i64) -> String {
    let hour = chrono::DateTime::from_timestamp_millis(hour_ms).expect("a time");
    format!(
        "{FLOW_LOG}/{}/m=00/macAddress={mac}/PT1H.json",
        hour.format("y=%Y/m=%m/d=%d/h=%H")
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a time in ms.
fn chrono_text(ms: i64) -> String {
    let time = chrono::DateTime::from_timestamp_millis(ms).expect("a time");
    time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Uploads the tree `root` into `container` (created with `more` containers).
pub const UPLOAD: &str = r#"
import os, sys
from azure.storage.blob import BlobServiceClient
svc = BlobServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"])
root, container = sys.argv[1], sys.argv[2]
for c in sys.argv[2:]:
    try:
        svc.create_container(c)
    except Exception as e:
        if "ContainerAlreadyExists" not in str(e):
            raise
client = svc.get_container_client(container)
for dirpath, _, files in os.walk(root):
    for f in files:
        path = os.path.join(dirpath, f)
        name = os.path.relpath(path, root)
        with open(path, "rb") as data:
            client.upload_blob(name, data, overwrite=True)
"#;

/// Downloads `container`'s blobs under `prefix` into `dest`; prints how many.
pub const DOWNLOAD: &str = r#"
import os, sys
from azure.storage.blob import BlobServiceClient
svc = BlobServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"])
container, prefix, dest = sys.argv[1], sys.argv[2], sys.argv[3]
client = svc.get_container_client(container)
n = 0
for blob in client.list_blobs(name_starts_with=prefix):
    path = os.path.join(dest, os.path.relpath(blob.name, prefix))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as out:
        out.write(client.download_blob(blob.name).readall())
    n += 1
print(n)
"#;

/// Runs a Python snippet with `args` in sys.argv[1:]; returns stdout.
pub fn py(script: &str, args: &[&str], env: &[(&str, String)]) -> anyhow::Result<String> {
    let output = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()?;
    ensure!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// What a user sees of one observer run.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs the observer binary with `args` and `env` (success or not).
pub fn run(args: &[&str], env: &[(&str, String)]) -> anyhow::Result<Run> {
    run_command(&mut Command::new(observer_bin()), args, env)
}

/// Runs `command` (the observer binary, perhaps as another user) with `args` and `env`.
pub fn run_command(
    command: &mut Command,
    args: &[&str],
    env: &[(&str, String)],
) -> anyhow::Result<Run> {
    let output = command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()?;
    Ok(Run {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    })
}

/// Every flow record in the Parquet files of `dir` and its sub-directories
/// (hour partitions); fails on any `.tmp` leftover.
pub fn read_tree(dir: &Path) -> anyhow::Result<Vec<Flow>> {
    let mut flows = read_flows(dir)?;
    let mut subdirs: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    subdirs.sort();
    for sub in subdirs {
        flows.extend(read_tree(&sub)?);
    }
    Ok(flows)
}

/// Names of every file below `dir`, relative, sorted.
pub fn files_below(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                names.push(path.strip_prefix(dir)?.to_string_lossy().into_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_names_and_urls() {
        // 2024-05-01T13:00:00Z
        assert_eq!(chrono_text(1_714_568_400_000), "2024-05-01T13:00:00Z");
        assert!(
            blob_path("AB", 1_714_568_400_000)
                .ends_with("/y=2024/m=05/d=01/h=13/m=00/macAddress=AB/PT1H.json")
        );
        assert_eq!(
            decode_url("prefix=a%3D%2Fb&delimiter=%2F"),
            "prefix=a=/b&delimiter=/"
        );
    }
}
