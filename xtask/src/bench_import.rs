//! `cargo xtask bench --only import`: flow-log import measured side by side
//! with DuckDB in one run, on generated VNet flow log blobs (no root, no
//! namespaces):
//!
//! - end to end: `observer import azure-vnet-flow-log DIR --topology T`
//!   (parse, classify, write zstd Parquet) vs DuckDB `read_json` + unnest +
//!   `COPY ... (FORMAT parquet, COMPRESSION zstd)`, each pinned to one CPU
//!   (`taskset`, DuckDB also `SET threads = 1`) and with all cores;
//! - CPU time (user + system, `wait4` rusage) beside each wall time, and
//!   the scaling from one CPU to all cores of each side;
//! - with `--baseline BINARY`, that observer too, in the same rounds;
//! - peak RSS of the import (`wait4` rusage, `ru_maxrss`);
//! - Parquet write alone, one thread: the import's encoder thread CPU time
//!   (Arrow conversion, encoding, writing the records it was handed) vs the
//!   CPU time of DuckDB `COPY` of the same records from an in-memory table;
//! - classification alone: the CPU time of `classify_all` in the import
//!   (records per CPU-second is records per second per core); the criterion
//!   bench (`cargo bench -p observer --bench classify`) measures it too.
//!
//! Results: stdout and `target/bench/import.json`.

use std::{fmt::Write as _, fs, path::Path, process::Command, time::Instant};

use anyhow::{Context as _, ensure};
use serde_json::{Value, json};

use crate::{build_observer, setup, workspace_root};

/// Tuples per generated blob (one NIC-hour, 100 records of 1,000 tuples).
const TUPLES_PER_BLOB: u64 = 100_000;

/// Generates `tuples` VNet flow log tuples in blobs of [`TUPLES_PER_BLOB`]
/// (same seed, same files), unless they are there already.
pub(crate) fn generate(dir: &Path, tuples: u64) -> anyhow::Result<()> {
    let blobs = tuples.div_ceil(TUPLES_PER_BLOB);
    let marker = dir.join(format!(".complete-{tuples}"));
    if marker.exists() {
        return Ok(());
    }
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir)?;
    let states = ["B", "C", "E", "E", "D"];
    let mut n = 0u64;
    for blob in 0..blobs {
        let mut text = String::with_capacity(10 << 20);
        text.push_str(r#"{"records":["#);
        let mut first_record = true;
        let in_blob = TUPLES_PER_BLOB.min(tuples - n);
        for record in 0..in_blob.div_ceil(1000) {
            if !first_record {
                text.push(',');
            }
            first_record = false;
            let _ = write!(
                text,
                r#"{{"time":"2024-05-01T13:00:00Z","flowLogVersion":4,"macAddress":"0022487{blob:05X}","category":"FlowLogFlowEvent","targetResourceID":"/subscriptions/0/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/ase-vnet","flowRecords":{{"flows":[{{"aclID":"a","flowGroups":[{{"rule":"DefaultRule_AllowInternetOutBound","flowTuples":["#
            );
            let in_record = 1000.min(in_blob - record * 1000);
            for i in 0..in_record {
                let k = n + i;
                let t = 1_714_568_400_000 + (k % 3_600_000);
                let state = states[(k % 5) as usize];
                // A few hundred destinations (workload subnet to VNet, PaaS, internet).
                let dst = match k % 4 {
                    0 => format!("10.0.2.{}", k % 50),
                    1 => format!("20.{}.1.{}", k % 7, k % 40),
                    2 => format!("203.0.113.{}", k % 60),
                    _ => format!("52.239.{}.{}", k % 3, k % 30),
                };
                let port = [443, 1433, 80, 53][(k % 4) as usize];
                let proto = if port == 53 { 17 } else { 6 };
                let (p, b) = if state == "B" || state == "D" {
                    (0, 0)
                } else {
                    (k % 100 + 1, (k % 100 + 1) * 700)
                };
                let _ = write!(
                    text,
                    "{}\"{t},10.0.0.{},{dst},{},{port},{proto},O,{state},NX,{p},{b},{p},{}\"",
                    if i == 0 { "" } else { "," },
                    4 + k % 8,
                    30000 + k % 30000,
                    b * 2
                );
            }
            text.push_str("]}]}]}}");
            n += in_record;
        }
        text.push_str("]}");
        fs::write(dir.join(format!("PT1H-{blob:04}.json")), text)?;
    }
    fs::write(marker, "")?;
    Ok(())
}

/// What one run took.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Usage {
    pub(crate) wall_s: f64,
    /// User + system CPU seconds.
    pub(crate) cpu_s: f64,
    pub(crate) rss_bytes: u64,
}

/// Runs `command` to completion, its stdout to `log`; wall and CPU time,
/// peak RSS.
pub(crate) fn measure(command: &mut Command, log: &Path) -> anyhow::Result<Usage> {
    let started = Instant::now();
    let child = command
        .stdout(fs::File::create(log)?)
        .spawn()
        .with_context(|| format!("starting {command:?}"))?;
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; valid pointers.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let seconds = started.elapsed().as_secs_f64();
    ensure!(pid > 0, "wait4 failed");
    ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{command:?} failed ({status}); output in {}",
        log.display()
    );
    let time = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Usage {
        wall_s: seconds,
        cpu_s: time(usage.ru_utime) + time(usage.ru_stime),
        rss_bytes: usage.ru_maxrss as u64 * 1024,
    })
}

/// `observer import` of `input` into `out`, its stdout to `log`.
fn import(
    observer: &Path,
    one_cpu: bool,
    input: &Path,
    out: &Path,
    topology: &Path,
    log: &Path,
) -> anyhow::Result<Usage> {
    let _ = fs::remove_dir_all(out);
    measure(
        pinned(observer, one_cpu)
            .args(["import", "azure-vnet-flow-log"])
            .arg(input)
            .arg("--out")
            .arg(out)
            .arg("--topology")
            .arg(topology)
            .arg("--quiet"),
        log,
    )
}

fn pinned(program: &Path, one_cpu: bool) -> Command {
    if one_cpu {
        let mut c = Command::new("taskset");
        c.args(["-c", "0"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

const DUCKDB_JSON: &str = r#"
import sys, duckdb
src, dst, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
con = duckdb.connect()
con.execute(f"SET threads = {threads}")
con.execute("SET enable_progress_bar = false")
con.execute(f"""
COPY (
  WITH recs AS (
    SELECT unnest(records) AS rec
    FROM read_json('{src}/*.json', maximum_object_size = 1000000000)
  ),
  flows AS (SELECT rec.macAddress AS mac, unnest(rec.flowRecords.flows) AS f FROM recs),
  grps AS (SELECT mac, unnest(f.flowGroups) AS g FROM flows),
  tups AS (SELECT mac, g.rule AS rule, string_split(unnest(g.flowTuples), ',') AS t FROM grps)
  SELECT make_timestamp(t[1]::BIGINT * 1000) AS start_time, mac AS iface,
         CASE t[7] WHEN 'I' THEN 'ingress' ELSE 'egress' END AS direction,
         t[6]::UTINYINT AS protocol, t[2] AS src_addr, t[3] AS dst_addr,
         t[4]::USMALLINT AS src_port, t[5]::USMALLINT AS dst_port,
         coalesce(try_cast(t[10] AS UBIGINT), 0) AS packets,
         coalesce(try_cast(t[11] AS UBIGINT), 0) AS bytes,
         try_cast(t[12] AS UBIGINT) AS reverse_packets,
         try_cast(t[13] AS UBIGINT) AS reverse_bytes,
         t[8] AS flow_state, rule AS nsg_rule,
         CASE t[8] WHEN 'D' THEN 'deny' ELSE 'allow' END AS nsg_decision,
         t[9] AS encryption
  FROM tups
) TO '{dst}' (FORMAT parquet, COMPRESSION zstd)
""")
"#;

const DUCKDB_COPY: &str = r#"
import sys, duckdb
src, dst = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute("SET threads = 1")
con.execute("SET enable_progress_bar = false")
con.execute(f"CREATE TABLE t AS SELECT * FROM read_parquet('{src}/**/*.parquet')")
import time
start, cpu = time.perf_counter(), time.process_time()
con.execute(f"COPY t TO '{dst}' (FORMAT parquet, COMPRESSION zstd)")
print(time.perf_counter() - start, time.process_time() - cpu)
"#;

/// The import benchmark; returns its JSON result.
pub(crate) fn run(tuples: u64, baseline: Option<&Path>) -> anyhow::Result<Value> {
    let observer = build_observer()?;
    let python = setup::python_tools()?;
    setup::packages(&[("taskset", "util-linux")])?;
    let root = workspace_root().join("target/bench/import");
    let input = root.join(format!("json-{tuples}"));
    eprintln!(
        "xtask: generating {tuples} flow-log tuples in {}",
        input.display()
    );
    generate(&input, tuples)?;
    let json_bytes: u64 = fs::read_dir(&input)?
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    let topology = workspace_root().join("lab/topologies/default.toml");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let mut rows = Vec::new();
    for one_cpu in [true, false] {
        let out = root.join("out-observer");
        let log = root.join("observer.log");
        let used = import(&observer, one_cpu, &input, &out, &topology, &log)?;
        let printed = fs::read_to_string(&log)?;
        let encoder_cpu: f64 = printed
            .split("encoder CPU time ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .context("the import's encoder time")?;
        // "classified N record(s) in S s of CPU time"
        let classify_s: f64 = printed
            .lines()
            .find(|l| l.starts_with("classified "))
            .and_then(|l| l.split(" in ").nth(1)?.split(' ').next())
            .and_then(|n| n.parse().ok())
            .context("the import's classification time")?;
        let base = match baseline {
            Some(path) => {
                let out = root.join("out-baseline");
                let used = import(path, one_cpu, &input, &out, &topology, &log)?;
                let _ = fs::remove_dir_all(&out);
                Some(used)
            }
            None => None,
        };
        let duck_out = root.join("out-duckdb.parquet");
        let _ = fs::remove_file(&duck_out);
        let threads = if one_cpu { 1 } else { cores };
        let duck = measure(
            pinned(&python, one_cpu)
                .arg("-c")
                .arg(DUCKDB_JSON)
                .arg(&input)
                .arg(&duck_out)
                .arg(threads.to_string()),
            &root.join("duckdb.log"),
        )?;
        let name = if one_cpu { "one CPU" } else { "all cores" };
        eprintln!(
            "xtask: {name}: observer {:.2} s wall {:.2} s CPU (RSS {} MiB), DuckDB {:.2} s wall {:.2} s CPU{}",
            used.wall_s,
            used.cpu_s,
            used.rss_bytes >> 20,
            duck.wall_s,
            duck.cpu_s,
            base.map_or(String::new(), |b| format!(
                ", baseline observer {:.2} s wall {:.2} s CPU",
                b.wall_s, b.cpu_s
            )),
        );
        rows.push(json!({
            "cpus": name,
            "observer_s": used.wall_s,
            "observer_cpu_s": used.cpu_s,
            "observer_rss_bytes": used.rss_bytes,
            "observer_encoder_cpu_s": encoder_cpu,
            "observer_classify_cpu_s": classify_s,
            "classified_per_s": tuples as f64 / classify_s,
            "observer_tuples_per_s": tuples as f64 / used.wall_s,
            "baseline_observer_s": base.map(|b| b.wall_s),
            "baseline_observer_cpu_s": base.map(|b| b.cpu_s),
            "baseline_observer_rss_bytes": base.map(|b| b.rss_bytes),
            "duckdb_s": duck.wall_s,
            "duckdb_cpu_s": duck.cpu_s,
            "duckdb_rss_bytes": duck.rss_bytes,
            "duckdb_tuples_per_s": tuples as f64 / duck.wall_s,
            "duckdb_over_observer": duck.wall_s / used.wall_s,
        }));
    }
    let ratio = |row: usize, key: &str| rows[row][key].as_f64().unwrap_or(f64::NAN);
    let ratios = json!({
        "duckdb_over_observer_one_cpu": ratio(0, "duckdb_over_observer"),
        "duckdb_over_observer_all_cores": ratio(1, "duckdb_over_observer"),
        "observer_scaling_1_to_n": ratio(0, "observer_s") / ratio(1, "observer_s"),
        "duckdb_scaling_1_to_n": ratio(0, "duckdb_s") / ratio(1, "duckdb_s"),
        "baseline_scaling_1_to_n": ratio(0, "baseline_observer_s") / ratio(1, "baseline_observer_s"),
        "cores": cores,
    });
    println!(
        "import ratios (target >= 1.25 each): DuckDB/observer one CPU {:.2}, all {cores} cores {:.2}; \
         scaling 1 -> {cores} cores: observer {:.2}x, DuckDB {:.2}x{}",
        ratio(0, "duckdb_over_observer"),
        ratio(1, "duckdb_over_observer"),
        ratios["observer_scaling_1_to_n"]
            .as_f64()
            .unwrap_or(f64::NAN),
        ratios["duckdb_scaling_1_to_n"].as_f64().unwrap_or(f64::NAN),
        if baseline.is_some() {
            format!(
                ", baseline observer {:.2}x",
                ratios["baseline_scaling_1_to_n"]
                    .as_f64()
                    .unwrap_or(f64::NAN)
            )
        } else {
            String::new()
        },
    );

    // Parquet write alone, one thread each: the import's encoder thread
    // busy time (Arrow conversion, zstd Parquet encoding, file writes) in
    // the one-CPU run, vs DuckDB `COPY` of the same records from memory.
    let imported = root.join("out-observer");
    let duck_copy = root.join("out-duckdb-copy.parquet");
    let _ = fs::remove_file(&duck_copy);
    let output = pinned(&python, true)
        .arg("-c")
        .arg(DUCKDB_COPY)
        .arg(&imported)
        .arg(&duck_copy)
        .output()?;
    ensure!(
        output.status.success(),
        "duckdb copy: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    // "WALL CPU" seconds of the COPY alone.
    let (duck_copy_s, duck_copy_cpu_s) = printed
        .lines()
        .last()
        .and_then(|l| {
            let mut numbers = l.split_whitespace().map(str::parse::<f64>);
            Some((numbers.next()?.ok()?, numbers.next()?.ok()?))
        })
        .with_context(|| format!("duckdb copy printed {printed:?}"))?;
    // The encoder threads' CPU time (their own clocks, so the main thread
    // sharing CPU 0 does not count).
    let encoder_s = rows[0]["observer_encoder_cpu_s"]
        .as_f64()
        .unwrap_or(f64::NAN);

    let result = json!({
        "tuples": tuples,
        "json_bytes": json_bytes,
        "cores": cores,
        "ratios": ratios,
        "end_to_end": rows,
        "parquet_write_one_thread": {
            "observer_encoder_cpu_s": encoder_s,
            "duckdb_copy_s": duck_copy_s,
            "duckdb_copy_cpu_s": duck_copy_cpu_s,
            "duckdb_over_observer": duck_copy_cpu_s / encoder_s,
        },
    });
    let path = workspace_root().join("target/bench/import.json");
    fs::write(&path, serde_json::to_string_pretty(&result)?)?;
    println!("{}", serde_json::to_string_pretty(&result)?);
    eprintln!("xtask: results in {}", path.display());
    Ok(result)
}
