//! `observer import pcap` on the captures people have, without `--local`:
//!
//! - the same traffic between two namespaces written by tcpdump as
//!   LINUX_SLL2 (`-i any`, tcpdump 4.99's default), LINUX_SLL (`-y
//!   LINUX_SLL`), Ethernet cut to 96 bytes (`-s 96`), and by dumpcap as
//!   pcapng of two interfaces gives the same flows with the same packet and
//!   byte counts, equal to what was sent; the SLL2 file gzipped and piped
//!   to stdin too, and the pcapng twice over (two sections) exactly twice;
//! - a capture of several GiB imports in the memory of a small one;
//! - every file of the committed corpus (and, with
//!   `OBSERVER_TCPDUMP_TESTS=DIR`, every capture of a tcpdump checkout's
//!   `tests/`) imports with exit 0 or 2, never a crash.

use std::{
    collections::BTreeMap,
    fs,
    io::{BufWriter, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, ensure};
use observer::lab::netns::{Netns, Process};
use observer_tests::{
    A4, A6, B4, B6, Flow, Pair, Scratch, observer_bin, read_flows, sa,
    traffic::{self, drain_udp, udp_socket},
};

/// A capture program running in a namespace, started once it says it listens.
fn start_capture(
    ns: &Netns,
    program: &str,
    args: &[&str],
    log: &Path,
    ready: &str,
) -> anyhow::Result<Process> {
    let mut command = ns.command(program);
    command
        .args(args)
        .stdout(Stdio::null())
        .stderr(fs::File::create(log)?);
    let mut process = Process::spawn(&mut command, program)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !fs::read_to_string(log)?.contains(ready) {
        ensure!(
            process.is_running() && Instant::now() < deadline,
            "{program} did not start: {}",
            fs::read_to_string(log)?
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(process)
}

/// direction, protocol, source, destination, ports (ICMP: type, code).
type Key = (String, u8, String, String, Option<u16>, Option<u16>);

/// Per key: packets, bytes, OR of TCP flags.
type Sums = BTreeMap<Key, (u64, u64, u8)>;

fn by_key(flows: &[Flow]) -> Sums {
    let mut sums = Sums::new();
    for f in flows {
        let key = (
            f.direction.clone(),
            f.protocol,
            f.src_addr.clone(),
            f.dst_addr.clone(),
            f.src_port.or(f.icmp_type.map(u16::from)),
            f.dst_port.or(f.icmp_code.map(u16::from)),
        );
        let e = sums.entry(key).or_default();
        e.0 += f.packets;
        e.1 += f.bytes;
        e.2 |= f.tcp_flags;
    }
    sums
}

/// The flows of this test's traffic (not IPv6 neighbour discovery and the like).
fn ours(f: &Flow) -> bool {
    f.src_port
        .is_some_and(|p| [41001, 41002, 6003].contains(&p))
        || f.dst_port.is_some_and(|p| [6001, 6002, 6003].contains(&p))
        || (f.protocol == 1 && [A4, B4].contains(&f.src_addr.as_str()))
}

/// Imports `input` (a file, or `-` with `stdin`) into `out`; returns our flows.
fn import(input: &str, stdin: Option<&Path>, out: &Path) -> anyhow::Result<Vec<Flow>> {
    let mut command = Command::new(observer_bin());
    command.args(["import", "pcap", input, "--out", out.to_str().unwrap()]);
    if let Some(path) = stdin {
        command.stdin(fs::File::open(path)?);
    }
    let output = command.output()?;
    ensure!(
        output.status.success(),
        "import of {input} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(read_flows(out)?.into_iter().filter(ours).collect())
}

fn ifindex(ns: &Netns, iface: &str) -> anyhow::Result<u32> {
    let line = ns.exec("ip", ["-o", "link", "show", iface])?;
    Ok(line
        .split(':')
        .next()
        .context("ip -o link")?
        .trim()
        .parse()?)
}

/// Offloads off: each packet on the veth is one wire packet, as a capture sees it.
#[test]
fn the_same_traffic_as_sll2_sll_ethernet_s96_and_pcapng_gives_the_same_flows() -> anyhow::Result<()>
{
    let pair = Pair::addressed(false)?;
    let scratch = Scratch::new("captures");
    let dir = scratch.path();
    let file = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let captures = [
        ("sll2.pcap", "tcpdump", vec!["-i", "any"], "listening on"),
        (
            "sll.pcap",
            "tcpdump",
            vec!["-i", "any", "-y", "LINUX_SLL"],
            "listening on",
        ),
        (
            "eth96.pcap",
            "tcpdump",
            vec!["-i", "veth0", "-s", "96"],
            "listening on",
        ),
        (
            "two.pcapng",
            "dumpcap",
            vec!["-q", "-i", "veth0", "-i", "lo"],
            "Capturing on",
        ),
    ];
    let mut running = Vec::new();
    for (name, program, args, ready) in &captures {
        let mut args = args.clone();
        let path = file(name);
        if *program == "tcpdump" {
            // A 64 MiB buffer: with several captures at once on two
            // cores, `-i any` otherwise drops bursts in the kernel.
            args.extend(["-B", "65536", "-U", "-n", "--immediate-mode"]);
        }
        args.extend(["-w", &path]);
        let log = dir.join(format!("{name}.log"));
        running.push(start_capture(&pair.a, program, &args, &log, ready)?);
    }

    let sink4 = udp_socket(&pair.b, sa(B4, 6001))?;
    let sink6 = udp_socket(&pair.b, sa(B6, 6002))?;
    assert_eq!(
        traffic::udp(&pair.a, sa(A4, 41001), sa(B4, 6001), 40, 200)?,
        40
    );
    assert_eq!(
        traffic::udp(&pair.a, sa(A6, 41002), sa(B6, 6002), 20, 300)?,
        20
    );
    assert_eq!(drain_udp(&sink4), (40, 40 * 200));
    assert_eq!(drain_udp(&sink6), (20, 20 * 300));
    let transfer = traffic::tcp(&pair.a, &pair.b, sa(B4, 6003), 100_000)?;
    traffic::ping(&pair.a, B4, 3)?;
    // Let the capture programs write the last packets before they stop.
    std::thread::sleep(Duration::from_millis(1500));
    for (process, (name, ..)) in running.into_iter().zip(&captures) {
        let label = process.label().to_owned();
        let status = process
            .terminate(Duration::from_secs(10))
            .with_context(|| format!("{label} vanished"))?;
        ensure!(
            status.success() || status.code().is_none(),
            "{label}: {status}"
        );
        // The capture programs' own loss counts: the comparison needs none.
        let log = fs::read_to_string(dir.join(format!("{name}.log")))?;
        let lost = log.lines().any(|l| {
            (l.contains("dropped by kernel") && !l.starts_with("0 "))
                || (l.contains("received/dropped") && !l.contains("/0 ("))
        });
        ensure!(!lost, "{name}: the capture program lost packets:\n{log}");
    }

    // What was sent, as IP-layer bytes.
    let mut expected: BTreeMap<Key, (u64, u64)> = BTreeMap::new();
    let egress = |p: u8, s: &str, d: &str, sp: u16, dp: u16| {
        (
            "egress".to_owned(),
            p,
            s.to_owned(),
            d.to_owned(),
            Some(sp),
            Some(dp),
        )
    };
    expected.insert(egress(17, A4, B4, 41001, 6001), (40, 40 * (20 + 8 + 200)));
    expected.insert(egress(17, A6, B6, 41002, 6002), (20, 20 * (40 + 8 + 300)));
    expected.insert(egress(1, A4, B4, 8, 0), (3, 3 * 84));
    expected.insert(
        ("ingress".into(), 1, B4.into(), A4.into(), Some(0), Some(0)),
        (3, 3 * 84),
    );
    let client = transfer.client_port;
    let tcp_out = egress(6, A4, B4, client, 6003);
    let tcp_back = (
        "ingress".to_owned(),
        6,
        B4.to_owned(),
        A4.to_owned(),
        Some(6003),
        Some(client),
    );

    let mut reference: Option<(String, Sums)> = None;
    let veth_index = format!("ifindex {}", ifindex(&pair.a, "veth0")?);
    for (name, basis, iface) in [
        ("sll2.pcap", "capture", veth_index.as_str()),
        ("sll.pcap", "capture", "pcap"),
        ("eth96.pcap", "initiator", "pcap"),
        ("two.pcapng", "initiator", "veth0"),
    ] {
        let flows = import(&file(name), None, &dir.join(format!("out-{name}")))?;
        ensure!(
            flows.iter().all(|f| f.text("source") == Some("pcap")
                && f.text("direction_basis") == Some(basis)
                && f.iface == iface),
            "{name}: {flows:#?}"
        );
        let got = by_key(&flows);
        for (key, want) in &expected {
            let have = got
                .get(key)
                .with_context(|| format!("{name}: no {key:?} in {got:#?}"))?;
            assert_eq!((have.0, have.1), *want, "{name}: {key:?}");
        }
        // The kernel's own segment counts of the TCP transfer.
        assert_eq!(got[&tcp_out].0, transfer.client.segs_out, "{name}");
        assert_eq!(
            got[&tcp_back].0,
            // What the client received (the server's own count misses the
            // SYN-ACK, sent from its listener).
            transfer.client.segs_in,
            "{name}"
        );
        assert_eq!(got.len(), expected.len() + 2, "{name}: {got:#?}");
        match &reference {
            None => reference = Some((name.to_owned(), got)),
            Some((first, flows)) => assert_eq!(&got, flows, "{name} against {first}"),
        }
    }
    let reference = reference.expect("imported").1;

    // gzip, read from stdin.
    let gz = dir.join("sll2.pcap.gz");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -c {} > {}", file("sll2.pcap"), gz.display()))
        .status()?;
    ensure!(status.success(), "gzip");
    let piped = import("-", Some(&gz), &dir.join("out-stdin"))?;
    assert_eq!(by_key(&piped), reference, "gzip on stdin");

    // The pcapng twice over: two sections, every count doubled.
    let twice = dir.join("twice.pcapng");
    let mut bytes = fs::read(file("two.pcapng"))?;
    bytes.extend_from_within(..);
    fs::write(&twice, bytes)?;
    let doubled = import(twice.to_str().unwrap(), None, &dir.join("out-twice"))?;
    let doubled = by_key(&doubled);
    assert_eq!(doubled.len(), reference.len());
    for (key, (packets, bytes, _)) in &reference {
        assert_eq!(
            (doubled[key].0, doubled[key].1),
            (2 * packets, 2 * bytes),
            "{key:?}"
        );
    }
    Ok(())
}

// ---- memory ------------------------------------------------------------------

/// A pcap of `packets` Ethernet/IPv4/UDP frames of 1514 bytes, 1000 flows
/// in turn, 10 µs apart, written as it is generated.
fn synthetic_capture(path: &Path, packets: u64) -> anyhow::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, fs::File::create(path)?);
    let mut header = Vec::new();
    header.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&4u16.to_le_bytes());
    header.extend_from_slice(&[0; 8]);
    header.extend_from_slice(&65535u32.to_le_bytes());
    header.extend_from_slice(&1u32.to_le_bytes());
    out.write_all(&header)?;
    let mut frame = vec![0u8; 1514];
    frame[..12].copy_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    frame[14..26].copy_from_slice(&[0x45, 0, 0x05, 0xdc, 0, 1, 0, 0, 64, 17, 0, 0]);
    frame[26..34].copy_from_slice(&[10, 1, 0, 1, 10, 2, 0, 1]);
    frame[36..38].copy_from_slice(&53u16.to_be_bytes());
    frame[38..40].copy_from_slice(&1480u16.to_be_bytes());
    let start_us: u64 = 1_700_000_000_000_000;
    for n in 0..packets {
        let t = start_us + n * 10;
        let mut record = [0u8; 16];
        record[..4].copy_from_slice(&((t / 1_000_000) as u32).to_le_bytes());
        record[4..8].copy_from_slice(&((t % 1_000_000) as u32).to_le_bytes());
        record[8..12].copy_from_slice(&1514u32.to_le_bytes());
        record[12..16].copy_from_slice(&1514u32.to_le_bytes());
        frame[34..36].copy_from_slice(&(10_000 + (n % 1000) as u16).to_be_bytes());
        out.write_all(&record)?;
        out.write_all(&frame)?;
    }
    out.flush()?;
    Ok(fs::metadata(path)?.len())
}

/// Runs `observer import pcap INPUT` and returns its peak RSS in bytes
/// (`ru_maxrss` of the reaped child).
fn import_peak_rss(input: &Path, out: &Path) -> anyhow::Result<u64> {
    let child = Command::new(observer_bin())
        .args(["import", "pcap"])
        .arg(input)
        .arg("--out")
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child, valid out-pointers.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    ensure!(reaped == pid, "wait4: {}", std::io::Error::last_os_error());
    ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "import of {} failed: status {status}",
        input.display()
    );
    drop(child);
    Ok(usage.ru_maxrss as u64 * 1024)
}

#[test]
fn a_capture_of_several_gib_imports_in_the_memory_of_a_small_one() -> anyhow::Result<()> {
    let scratch = Scratch::new("big-capture");
    // The same 1000 flows: 20,000 packets (30 MiB), then 3 GiB worth.
    let small = scratch.path().join("small.pcap");
    synthetic_capture(&small, 20_000)?;
    let small_rss = import_peak_rss(&small, &scratch.path().join("out-small"))?;
    let big = scratch.path().join("big.pcap");
    let packets = (3u64 << 30) / (16 + 1514) + 1;
    let size = synthetic_capture(&big, packets)?;
    ensure!(size > 3 << 30, "{size} bytes");
    let out = scratch.path().join("out-big");
    let big_rss = import_peak_rss(&big, &out)?;
    fs::remove_file(&big)?;
    let flows = read_flows(&out)?;
    assert_eq!(flows.len(), 1000);
    assert_eq!(flows.iter().map(|f| f.packets).sum::<u64>(), packets);
    assert_eq!(flows.iter().map(|f| f.bytes).sum::<u64>(), packets * 1500);
    // Apart from the packet count nothing differs: the read buffer is the
    // same, the flow table holds the same 1000 flows. Allow 64 MiB for
    // allocator slack, against a file 48 times that size.
    let limit = small_rss + (64 << 20);
    eprintln!(
        "peak RSS: {} MiB for a 30 MiB capture, {} MiB for a {} MiB one (limit {} MiB)",
        small_rss >> 20,
        big_rss >> 20,
        size >> 20,
        limit >> 20
    );
    assert!(
        big_rss <= limit,
        "peak RSS {big_rss} bytes importing {size} bytes, limit {limit}"
    );
    Ok(())
}

// ---- tcpdump's captures --------------------------------------------------------

fn captures_in(dir: &Path, found: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir).with_context(|| dir.display().to_string())? {
        let path = entry?.path();
        if path.is_dir() {
            captures_in(&path, found)?;
        } else if path
            .extension()
            .is_some_and(|e| e == "pcap" || e == "pcapng")
        {
            found.push(path);
        }
    }
    Ok(())
}

#[test]
fn every_capture_of_the_corpus_imports_with_exit_0_or_2() -> anyhow::Result<()> {
    let mut files = Vec::new();
    captures_in(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus"),
        &mut files,
    )?;
    let committed = files.len();
    ensure!(committed >= 40, "the corpus holds {committed} captures");
    if let Some(dir) = std::env::var_os("OBSERVER_TCPDUMP_TESTS") {
        captures_in(Path::new(&dir), &mut files)?;
    }
    let scratch = Scratch::new("corpus");
    let mut exits: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in &files {
        let out = scratch.path().join("out");
        let output = Command::new(observer_bin())
            .args(["import", "pcap"])
            .arg(file)
            .arg("--out")
            .arg(&out)
            .output()?;
        let _ = fs::remove_dir_all(&out);
        let exit = match output.status.code() {
            Some(code) => code.to_string(),
            None => format!("{} (signal)", output.status),
        };
        if !matches!(output.status.code(), Some(0 | 2)) {
            eprintln!(
                "{}: {exit}\n{}",
                file.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        exits
            .entry(exit)
            .or_default()
            .push(file.display().to_string());
    }
    let tally: Vec<String> = exits
        .iter()
        .map(|(exit, files)| format!("exit {exit}: {}", files.len()))
        .collect();
    eprintln!(
        "{} captures ({committed} committed): {}",
        files.len(),
        tally.join(", ")
    );
    let others: Vec<_> = exits
        .iter()
        .filter(|(exit, _)| !["0", "2"].contains(&exit.as_str()))
        .collect();
    assert!(others.is_empty(), "{others:#?}");
    Ok(())
}
