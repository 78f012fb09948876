//! `observer topology import --lab` on the contoso fixtures (an ARM export,
//! and the same network as `az` JSON), then the lab run of what it wrote:
//! each generated flow gets the verdict the customer's configuration
//! gives it, and the lab leaves nothing behind. Needs root; run with
//! `cargo xtask test -- topology_import`.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use observer::lab::scenario::{self, RunConfig};
use observer_tests::{Scratch, observer_bin};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/azure/contoso")
}

/// Runs `observer topology import --lab` and returns the written file.
fn import(dir: &Path, inputs: &[&str]) -> PathBuf {
    let tags = dir.join("service-tags.json");
    std::fs::copy(fixtures().join("service-tags.json"), &tags).unwrap();
    let out = dir.join("contoso.toml");
    let output = Command::new(observer_bin())
        .args(["topology", "import", "--lab", "--service-tags"])
        .arg(&tags)
        .arg("--out")
        .arg(&out)
        .args(inputs.iter().map(|i| fixtures().join(i)))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("lab flows"), "{stdout}");
    // The catalog's monitoring addresses are real public addresses: the
    // lab would only host them in its own namespaces, but this suite sends
    // to documentation and private addresses only, so that flow and its
    // endpoint are left out of the run (their generation is a unit test).
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("to = \"40.77.24.27\""), "{text}");
    let kept: Vec<&str> = text
        .split("\n\n")
        .filter(|block| !block.contains("40.77.24.27"))
        .collect();
    let run = dir.join("contoso-lab.toml");
    std::fs::write(&run, kept.join("\n\n")).unwrap();
    run
}

/// Runs the lab on `file`; returns (flow, verdict) of every flow.
fn lab_run(file: &Path, out: &Path) -> Vec<(String, String)> {
    let config = RunConfig {
        observer: observer_bin(),
        out: out.to_path_buf(),
        scenario: None,
    };
    let result = scenario::run(file, &config).unwrap_or_else(|e| panic!("{e:#}"));
    let left: Vec<String> = observer::lab::teardown::list()
        .into_iter()
        .filter(|n| n.starts_with(&format!("{}-", result.lab)))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert_eq!(result.summary.loss.packets, 0, "{}", result.render());
    result
        .checks
        .iter()
        .map(|c| {
            (
                c.traffic.clone(),
                c.verdict
                    .clone()
                    .unwrap_or_else(|| panic!("{}: no record\n{}", c.traffic, result.render())),
            )
        })
        .collect()
}

const FLOWS: [&str; 14] = [
    "azure-sql",
    "azure-storage",
    "azure-management",
    "app-service-management",
    "ocsp-crl",
    "azure-ad",
    "azure-monitor",
    "ntp",
    "system-monitoring",
    "backend-sql-vm",
    "pe-kv-pe",
    "onprem-172-31-0-0-16",
    "onprem-192-168-0-0-16",
    "inbound-management",
];

#[test]
fn an_imported_arm_export_runs_in_the_lab_with_its_verdicts() {
    let scratch = Scratch::new("topology-import");
    let file = import(
        scratch.path(),
        &["export.json", "effective-routes.json", "effective-nsg.json"],
    );
    let verdicts = lab_run(&file, &scratch.path().join("run"));
    let names: Vec<&str> = verdicts.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, FLOWS);
    // The customer's network lets every dependency out by the Internet
    // path, reaches the SQL VM and on-premises by the VNet and the gateway,
    // resolves the Key Vault to its private endpoint (zone linked), and
    // admits App Service management from AppServiceManagement (inbound).
    for (flow, verdict) in &verdicts {
        assert_eq!(verdict, "ok", "{flow}: {verdicts:?}");
    }
}

#[test]
fn the_same_network_as_az_json_without_the_zone_link_leaks_dns() {
    let scratch = Scratch::new("topology-import-az");
    let file = import(
        scratch.path(),
        &[
            "az/vnet.json",
            "az/nsgs.json",
            "az/route-table.json",
            "az/nics.json",
            "az/public-ips.json",
            "az/private-endpoint.json",
            "az/zone.json",
            "az/records.json",
            "az/gateway.json",
            "az/local-gateway.json",
            "az/keyvault.json",
            "az/ase.json",
            "effective-routes.json",
            "effective-nsg.json",
        ],
    );
    let verdicts = lab_run(&file, &scratch.path().join("run"));
    for (flow, verdict) in &verdicts {
        let expected = if flow == "pe-kv-pe" { "leak-dns" } else { "ok" };
        assert_eq!(verdict, expected, "{flow}: {verdicts:?}");
    }
}
