//! Classification and Parquet throughput on synthetic records: a topology
//! with a few hundred routes and the full catalog (targets: ≥ 1M flows/s
//! classified on one core, ≥ 1M rows/s written and read).

use std::{hint::black_box, net::Ipv4Addr, path::Path, sync::Arc};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ipnet::Ipv4Net;
use observer::{
    catalog::Catalog,
    classify::Classifier,
    files::{ParquetFiles, read_flows},
    flow::{Direction, EndReason, FlowRecord, ObservationPoint},
    topology::{NextHop, RouteTarget, Topology, UserRoute},
};

fn topology() -> Topology {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../lab/topologies/forced-tunnel-udr.toml");
    let mut t = Topology::load(&path).unwrap();
    // A few hundred more-specific UDRs, as a locked-down ASE has.
    for i in 0..300u32 {
        let net = Ipv4Net::new(Ipv4Addr::from(0x1400_0000 + (i << 12)), 20).unwrap();
        t.route_table.routes.push(UserRoute {
            name: format!("r{i}"),
            target: RouteTarget::Prefix(net),
            next_hop: NextHop::Internet,
            next_hop_ip: None,
        });
    }
    t
}

fn records(n: usize) -> Vec<FlowRecord> {
    let point = ObservationPoint {
        host: Arc::from("bench"),
        netns: None,
        iface: Arc::from("eth0"),
        iface_role: Some(Arc::from("workload")),
    };
    let dsts = [
        "10.0.2.5",
        "203.0.113.40",
        "203.0.113.50",
        "20.1.2.3",
        "192.168.1.10",
        "172.16.5.5",
        "8.8.8.8",
    ];
    (0..n)
        .map(|i| FlowRecord {
            start_ns: i as i64,
            end_ns: i as i64 + 1000,
            point: point.clone(),
            direction: Direction::Egress,
            ip_version: 4,
            protocol: 6,
            src_addr: "10.0.0.4".parse().unwrap(),
            dst_addr: dsts[i % dsts.len()].parse().unwrap(),
            src_port: Some(30000 + (i % 30000) as u16),
            dst_port: Some([443, 1433, 80][i % 3]),
            icmp_type: None,
            icmp_code: None,
            vlan_id: None,
            packets: 10,
            bytes: 1500,
            tcp_flags: 0x1b,
            syn_count: 1,
            fin_count: 1,
            rst_count: 0,
            end_reason: EndReason::EndOfFlow,
            dst_name: None,
            dns_chain: None,
            category: None,
            dependency: None,
            expected_next_hop: None,
            observed_path: None,
            flow_type: None,
            verdict: None,
            reason: None,
            ..FlowRecord::default()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let t = topology();
    let classifier = Classifier::new(&t, &Catalog::load(t.cloud, &[]).unwrap());
    let batch = records(100_000);
    let mut group = c.benchmark_group("pipeline");
    group.sample_size(10);
    group.throughput(Throughput::Elements(batch.len() as u64));
    // The batch is cloned before and dropped after each timed run: only
    // the classification is measured.
    group.bench_function("classify", |b| {
        b.iter_batched(
            || batch.clone(),
            |mut rs| {
                classifier.classify_all(&mut rs);
                rs
            },
            BatchSize::LargeInput,
        )
    });
    let mut classified = batch.clone();
    classifier.classify_all(&mut classified);
    let dir = tempfile::tempdir().unwrap();
    group.bench_function("parquet_write", |b| {
        let mut n = 0;
        b.iter(|| {
            n += 1;
            let mut files = ParquetFiles::<FlowRecord>::new(dir.path(), &format!("b{n}"));
            for r in &classified {
                files.push(r.clone());
            }
            files.flush(&[]).unwrap();
        })
    });
    let one = tempfile::tempdir().unwrap();
    let mut files = ParquetFiles::<FlowRecord>::new(one.path(), "read");
    for r in &classified {
        files.push(r.clone());
    }
    files.flush(&[]).unwrap();
    group.bench_function("parquet_read", |b| {
        b.iter(|| black_box(read_flows(&[one.path().to_path_buf()]).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
