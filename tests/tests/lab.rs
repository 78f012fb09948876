//! Every lab scenario in its own lab: the verdicts read back from the
//! Parquet match the topology file's `expect`, and nothing is left behind.
//! Needs root; run with `cargo xtask test`.

use std::path::{Path, PathBuf};

use observer::lab::scenario::{self, RunConfig};
use observer_tests::{Scratch, observer_bin};

fn topologies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../lab/topologies")
}

fn config(out: &Path) -> RunConfig {
    RunConfig {
        observer: observer_bin(),
        out: out.to_path_buf(),
        scenario: None,
    }
}

/// Namespaces left by the lab named `base`.
fn left_by(base: &str) -> Vec<String> {
    observer::lab::teardown::list()
        .into_iter()
        .filter(|n| n.starts_with(&format!("{base}-")))
        .collect()
}

fn run_and_check(file: &str, out: &Path) {
    let result = scenario::run(&topologies().join(file), &config(out))
        .unwrap_or_else(|e| panic!("{file}: {e:#}"));
    for c in &result.checks {
        assert!(
            c.passed(),
            "{file} {}: expected {:?}, got {:?} ({:?})\n{}",
            c.traffic,
            c.expected,
            c.verdict,
            c.reason,
            result.render()
        );
        assert!(c.verdict.is_some(), "{file} {}: no record", c.traffic);
    }
    assert_eq!(
        result.summary.loss.packets, 0,
        "{file}: the capture lost packets"
    );
    assert!(
        left_by(&result.lab).is_empty(),
        "{file} left {:?}",
        left_by(&result.lab)
    );
}

#[test]
fn every_scenario_gets_its_verdicts_and_leaves_nothing() {
    let scratch = Scratch::new("lab");
    let mut files: Vec<String> = std::fs::read_dir(topologies())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "{files:?}");
    for file in &files {
        run_and_check(file, scratch.path());
    }
}

#[test]
fn forced_tunnel_shows_the_refusal_as_blocked_and_the_gateway_path() {
    let scratch = Scratch::new("lab-ft");
    let result = scenario::run(
        &topologies().join("forced-tunnel.toml"),
        &config(scratch.path()),
    )
    .unwrap();
    let blocked = result
        .records
        .iter()
        .filter(|r| {
            r.verdict.as_deref() == Some("blocked") && r.dependency.as_deref() == Some("azure-sql")
        })
        .count();
    assert!(blocked > 0, "{}", result.render());
    // The router saw the SQL flow leave by the gateway, before any NAT.
    assert!(
        result.records.iter().any(|r| {
            r.observed_path.as_deref() == Some("VirtualNetworkGateway")
                && r.dst_port == Some(1433)
                && r.verdict.as_deref() == Some("misroute-forced-tunnel")
        }),
        "{}",
        result.render()
    );
}

#[test]
fn public_access_disabled_refuses_on_the_public_address_and_the_verdict_says_why() {
    let scratch = Scratch::new("lab-pna");
    let result = scenario::run(
        &topologies().join("seed-003-public-access-disabled.toml"),
        &config(scratch.path()),
    )
    .unwrap();
    let outcome = |name: &str| {
        result
            .outcomes
            .iter()
            .find(|o| o.name == name)
            .unwrap_or_else(|| panic!("no outcome {name}\n{}", result.render()))
    };
    // The vault's name resolved publicly, and its public address refused
    // the request as Azure does (403) ...
    let kv = outcome("keyvault");
    assert_eq!(kv.resolved, Some("203.0.113.21".parse().unwrap()));
    assert_eq!(kv.result, "refused (HTTP 403)", "{}", result.render());
    let check = result
        .checks
        .iter()
        .find(|c| c.traffic == "keyvault")
        .unwrap();
    assert_eq!(check.verdict.as_deref(), Some("leak-dns"));
    let reason = check.reason.as_deref().unwrap_or_default();
    for needle in [
        "seed003-kv.vault.azure.net resolved to its public address 203.0.113.21",
        "is not linked to VNet ase-vnet",
        "public network access of seed003-kv.vault.azure.net is disabled",
    ] {
        assert!(reason.contains(needle), "`{needle}` not in {reason}");
    }
    // ... while the Cognitive Services account, its zone linked, answered
    // on its private endpoint.
    let ai = outcome("cognitive");
    assert_eq!(ai.resolved, Some("10.3.2.6".parse().unwrap()));
    assert_eq!(ai.result, "answered", "{}", result.render());
    assert!(
        left_by(&result.lab).is_empty(),
        "left {:?}",
        left_by(&result.lab)
    );
}

#[test]
fn two_labs_run_side_by_side() {
    let scratch = Scratch::new("lab-pair");
    let out = scratch.path().to_path_buf();
    let a = {
        let out = out.join("a");
        std::thread::spawn(move || run_and_check("default.toml", &out))
    };
    let b = {
        let out = out.join("b");
        std::thread::spawn(move || run_and_check("forced-tunnel.toml", &out))
    };
    a.join().unwrap();
    b.join().unwrap();
}

#[test]
fn a_topology_error_fails_before_anything_is_built() {
    let scratch = Scratch::new("lab-bad");
    let bad = scratch.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"bad\"\nenvironment = \"asev2-external\"\n[vnet]\nname = \"v\"\naddress_space = [\"192.168.250.0/16\"]\n",
    )
    .unwrap();
    let before = observer::lab::teardown::list();
    let err = scenario::run(&bad, &config(scratch.path()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.toml:5:"), "{err}");
    assert!(err.contains("192.168.0.0/16"), "{err}");
    assert_eq!(observer::lab::teardown::list(), before);
}
