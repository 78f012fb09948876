//! Import tests on the fixtures of `tests/fixtures/azure` (README there):
//! the same network as an ARM export and as `az` JSON gives one topology,
//! seed 004's network round-trips to the answers of its hand-written file,
//! every supported expression evaluates, and bad input is located.

use std::path::{Path, PathBuf};

use super::*;
use crate::{
    audit::Audit,
    catalog::Catalog,
    routes::EffectiveRoutes,
    security::{EffectiveSecurity, Flow, Scope},
};

mod expressions;
mod networks;
mod shapes;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/azure")
}

fn lab_topologies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../lab/topologies")
}

fn files(dir: &str, names: &[&str]) -> Vec<PathBuf> {
    names.iter().map(|n| fixtures().join(dir).join(n)).collect()
}

/// Imports `inputs`, writes the TOML into `dir` and loads it back.
fn round_trip(inputs: &[PathBuf], dir: &Path, options: &Options) -> (Imported, Topology, String) {
    let out = dir.join("imported.toml");
    let imported = import(inputs, &out, options).unwrap_or_else(|e| panic!("{e}"));
    let topology = save(&imported, &out).unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(&out).unwrap();
    (imported, topology, text)
}

/// A temporary folder holding a copy of the seed's service-tag file.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        lab_topologies().join("service-tags.json"),
        dir.path().join("service-tags.json"),
    )
    .unwrap();
    dir
}

fn with_tags(dir: &Path) -> Options {
    Options {
        service_tags: Some(dir.join("service-tags.json")),
        ..Options::default()
    }
}

/// Everything a topology says, without spans and file names.
fn essence(t: &Topology) -> String {
    format!(
        "{} {:?} {:?} {} {:?} {:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        t.name,
        t.cloud,
        t.environment,
        t.route_all,
        t.outbound_vip,
        t.vnet,
        t.peerings,
        t.backends,
        t.private_endpoints,
        t.endpoints,
        t.dns,
        t.onprem,
        t.route_table,
        t.nsgs,
        t.service_tags.iter().collect::<Vec<_>>(),
        t.lab.traffic,
        t.lab.inbound,
        t.lab.appliance,
    )
}

/// The TOML without comments (sources differ between input forms).
fn bare(text: &str) -> String {
    write::strip_comments(text)
}

/// Answers of route, verify, nsg and check for a topology.
fn answers(t: &Topology) -> String {
    let catalog = Catalog::load(t.cloud, &[]).unwrap();
    let audit = Audit::run(t, &catalog);
    let routes = EffectiveRoutes::build(t);
    let security = EffectiveSecurity::build(t);
    let mut out = format!("{}\n", serde_json::to_string(&audit.problems).unwrap());
    out.push_str(&format!("works {}\n", audit.ase_works()));
    let mut table: Vec<String> = routes.routes().iter().map(ToString::to_string).collect();
    table.sort();
    out.push_str(&table.join("\n"));
    for nsg in &t.nsgs {
        for rule in security.effective_rules(nsg) {
            out.push_str(&format!(
                "\n{} {}",
                nsg.name,
                serde_json::to_string(&rule).unwrap()
            ));
        }
    }
    let ase = t.workload_address();
    for (dst, port, protocol) in [
        ("203.0.113.40", 1433, 6),
        ("203.0.113.30", 443, 6),
        ("203.0.113.50", 443, 6),
        ("203.0.113.85", 454, 6),
        ("192.0.2.99", 25, 6),
        ("8.8.8.8", 53, 17),
        ("192.168.251.200", 8080, 6),
    ] {
        let flow = Flow::new(ase, dst.parse().unwrap(), protocol, port);
        let decision = security.verify(&flow, Scope::default());
        out.push_str(&format!(
            "\nverify {dst}:{port} {}",
            serde_json::to_string(&decision).unwrap()
        ));
        out.push_str(&format!("\nroute {}", routes.lookup(flow.dst)));
    }
    out
}
