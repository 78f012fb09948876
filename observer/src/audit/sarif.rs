//! `observer check --format sarif`: the audit as SARIF 2.1.0, the format
//! GitHub code scanning and Azure DevOps read. One run of the tool
//! `observer`; one rule per requirement that failed (its id is the
//! problem's `rule`, its default level the requirement's, its full
//! description the documentation's sentence); one result per problem with
//! its level, a message (what is wrong, what breaks, the fix and its `az`
//! commands) and its location: the offending resource in the export the
//! topology was imported from (file, line, column of the ARM template or
//! `az` output), else its table in the topology file, the other place as
//! a related location. Paths are written relative to the directory
//! `check` runs in (`%SRCROOT%`), as code scanning expects for files of
//! the repository.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{Audit, Check, Place, Problem};

/// The SARIF schema this writer follows.
pub(crate) const SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// What a check checks, for the rules' help.
fn check_help(check: Check) -> &'static str {
    match check {
        Check::Outbound => {
            "A documented outbound dependency of the environment must be allowed by the NSGs on its way and routed by a next hop it may take."
        }
        Check::Inbound => {
            "An inbound requirement of the environment: the source must reach the ASE subnet on these ports through the NSGs."
        }
        Check::AsymmetricRoute => {
            "Replies to inbound traffic must leave the way the requests came in, or TCP breaks."
        }
        Check::UdrBeatenByBgp => {
            "A user route loses part of its prefix to a more specific route learned over BGP from the gateway."
        }
        Check::PrivateEndpointDns => {
            "A private endpoint's name must resolve to its private address inside the VNet: its privatelink zone must be linked to the VNet."
        }
        Check::CustomDns => {
            "Custom DNS servers must be reachable from the ASE subnet and forward to Azure DNS (168.63.129.16)."
        }
    }
}

/// `path` as a SARIF URI: relative to `root` (percent-encoded, `/`
/// separators) when it is under it or relative already, else a `file:` URI.
fn uri(path: &Path, root: &Path) -> (String, bool) {
    let rel = if path.is_relative() {
        Some(path.to_path_buf())
    } else {
        path.strip_prefix(root).ok().map(Path::to_path_buf)
    };
    match rel {
        Some(rel) => (encode(&rel), true),
        None => (format!("file://{}", encode(path)), false),
    }
}

fn encode(path: &Path) -> String {
    let text = path
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/");
    let text = if path.has_root() && !text.starts_with('/') {
        format!("/{}", text.trim_start_matches('/'))
    } else {
        text
    };
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn physical(place: &Place, root: &Path) -> Value {
    let (uri, relative) = uri(&place.file, root);
    let mut artifact = json!({ "uri": uri });
    if relative {
        artifact["uriBaseId"] = json!("%SRCROOT%");
    }
    json!({
        "artifactLocation": artifact,
        "region": { "startLine": place.line.max(1), "startColumn": place.column.max(1) },
    })
}

/// A stable identity of a problem across runs (requirement and item).
fn fingerprint(p: &Problem) -> String {
    // FNV-1a, 64 bits: stable across builds and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{}|{}|{}", p.rule, p.subject, p.at).bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn message(p: &Problem) -> String {
    let mut text = format!("{}. Breaks: {}. Fix: {}.", p.problem, p.breaks, p.fix);
    for az in &p.az {
        text.push_str("\n$ ");
        text.push_str(az);
    }
    text
}

fn result(p: &Problem, index: usize, topology: &Path, root: &Path) -> Value {
    let mut locations = Vec::new();
    let mut related = Vec::new();
    match (&p.in_export, &p.in_topology) {
        (Some(export), topology_place) => {
            let mut loc = json!({ "physicalLocation": physical(export, root) });
            if let Some(path) = &export.json_path {
                loc["logicalLocations"] = json!([{ "fullyQualifiedName": path, "kind": "object" }]);
            }
            locations.push(loc);
            if let Some(t) = topology_place {
                related.push(json!({
                    "id": 1,
                    "physicalLocation": physical(t, root),
                    "message": { "text": format!("{} in the topology file", p.at) },
                }));
            }
        }
        (None, Some(t)) => locations.push(json!({ "physicalLocation": physical(t, root) })),
        (None, None) => locations.push(json!({
            "physicalLocation": physical(
                &Place { file: topology.to_path_buf(), line: 1, column: 1, json_path: None },
                root,
            )
        })),
    }
    let mut r = json!({
        "ruleId": p.rule,
        "ruleIndex": index,
        "level": p.level.as_str(),
        "message": { "text": message(p) },
        "locations": locations,
        "partialFingerprints": { "observerProblem/v1": fingerprint(p) },
        "properties": {
            "check": p.check,
            "subject": p.subject,
            "item": p.at.to_string(),
            "because": p.because,
            "fix": p.fix,
            "az": p.az,
        },
    });
    if let Some(toml) = &p.toml {
        r["properties"]["toml"] = json!(toml);
    }
    if !related.is_empty() {
        r["relatedLocations"] = json!(related);
    }
    r
}

/// The audit as a SARIF 2.1.0 log. `topology` is the topology file (the
/// location of problems without a place); paths are made relative to
/// `root` (the directory `check` runs in).
pub(crate) fn render(audit: &Audit, topology: &Path, root: &Path) -> String {
    let mut rules: Vec<&Problem> = Vec::new();
    for p in &audit.problems {
        if !rules.iter().any(|r| r.rule == p.rule) {
            rules.push(p);
        }
    }
    let descriptors: Vec<Value> = rules
        .iter()
        .map(|p| {
            json!({
                "id": p.rule,
                "name": p.rule.split(['/', '-']).map(|w| {
                    let mut c = w.chars();
                    c.next().map(|f| f.to_uppercase().chain(c).collect::<String>()).unwrap_or_default()
                }).collect::<String>(),
                "shortDescription": { "text": format!("{}: {}", p.check, p.subject) },
                "fullDescription": { "text": p.because },
                "help": { "text": check_help(p.check) },
                "defaultConfiguration": { "level": p.level.as_str() },
                "properties": { "tags": ["azure", "networking", p.check.to_string()] },
            })
        })
        .collect();
    let results: Vec<Value> = audit
        .problems
        .iter()
        .map(|p| {
            let index = rules.iter().position(|r| r.rule == p.rule).unwrap_or(0);
            result(p, index, topology, root)
        })
        .collect();
    let root_uri = format!("file://{}/", encode(root).trim_end_matches('/'));
    let log = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "observer",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://learn.microsoft.com/azure/app-service/environment/network-info",
                "rules": descriptors,
            }},
            "originalUriBaseIds": { "%SRCROOT%": { "uri": root_uri } },
            "automationDetails": { "id": format!("observer-check/{}/", audit.topology) },
            "results": results,
            "properties": {
                "topology": audit.topology,
                "environment": audit.environment,
                "checked": audit.checked,
                "errors": audit.errors,
                "warnings": audit.warnings,
            },
        }],
    });
    let mut text = serde_json::to_string_pretty(&log).expect("plain data");
    text.push('\n');
    text
}

/// The directory paths are relative to: the current one.
pub(crate) fn root() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use serde_json::Value;

    use super::*;
    use crate::{
        audit::{Audit, Located},
        catalog::Catalog,
        topology::Topology,
    };

    /// The OASIS schema (`tests/fixtures/sarif`, errata 01).
    fn schema() -> Value {
        serde_json::from_str(include_str!(
            "../../../tests/fixtures/sarif/sarif-schema-2.1.0.json"
        ))
        .unwrap()
    }

    fn validate(log: &str) -> Value {
        let log: Value = serde_json::from_str(log).unwrap();
        let schema = schema();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&log)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "not SARIF 2.1.0: {errors:#?}\n{log:#}");
        log
    }

    fn lab(file: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../lab/topologies")
            .join(file)
    }

    fn audit_of(path: &Path) -> Audit {
        let t = Topology::load(path).unwrap();
        let text = std::fs::read_to_string(path).unwrap();
        let located = Located::read(path, &text);
        Audit::run_located(&t, &Catalog::load(t.cloud, &[]).unwrap(), &located)
    }

    #[test]
    fn the_schema_refuses_what_is_not_sarif() {
        // The validator is not a rubber stamp: a result without a message,
        // a level outside the vocabulary and a wrong version are refused.
        let schema = schema();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let good = serde_json::json!({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"message": {"text": "m"}, "level": "error"}]}]});
        assert!(validator.is_valid(&good));
        for bad in [
            serde_json::json!({"version": "2.0.0", "runs": []}),
            serde_json::json!({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"level": "error"}]}]}),
            serde_json::json!({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"message": {"text": "m"}, "level": "fatal"}]}]}),
        ] {
            assert!(!validator.is_valid(&bad), "{bad}");
        }
    }

    #[test]
    fn check_sarif_is_valid_with_one_result_per_problem_located_in_the_toml() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        for file in [
            "seed-004-nsg.toml",
            "seed-004-nsg-missing-sql.toml",
            "forced-tunnel.toml",
            "custom-dns-not-forwarding.toml",
            "pe-zone-not-linked.toml",
            "seed-003-public-access-disabled.toml",
        ] {
            let path = lab(file);
            let a = audit_of(&path);
            let log = validate(&render(&a, &path, &root));
            let run = &log["runs"][0];
            let results = run["results"].as_array().unwrap();
            assert_eq!(results.len(), a.problems.len(), "{file}");
            let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
            for (r, p) in results.iter().zip(&a.problems) {
                assert_eq!(r["ruleId"], p.rule.as_str());
                let index = r["ruleIndex"].as_u64().unwrap() as usize;
                assert_eq!(rules[index]["id"], p.rule.as_str());
                assert_eq!(r["level"], p.level.as_str());
                assert!(r["message"]["text"].as_str().unwrap().contains(&p.problem));
                let loc = &r["locations"][0]["physicalLocation"];
                assert_eq!(
                    loc["artifactLocation"]["uri"],
                    format!("lab/topologies/{file}"),
                    "{file}"
                );
                assert_eq!(loc["artifactLocation"]["uriBaseId"], "%SRCROOT%");
                let line = loc["region"]["startLine"].as_u64().unwrap() as usize;
                let here = p.in_topology.as_ref().unwrap();
                assert_eq!(line, here.line);
                // The line is the item's table (or its key).
                let text = std::fs::read_to_string(&path).unwrap();
                let at = text.lines().nth(line - 1).unwrap();
                assert!(at.starts_with('[') || at.contains(" = "), "{file}: {at}");
            }
        }
    }

    #[test]
    fn an_imported_topology_is_located_in_its_arm_template() {
        // Seed 004 from its ARM export, the Sql rule taken out of the file.
        let dir = tempfile::tempdir().unwrap();
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let export = root.join("tests/fixtures/azure/seed-004/export.json");
        std::fs::copy(
            lab("service-tags.json"),
            dir.path().join("service-tags.json"),
        )
        .unwrap();
        let out = dir.path().join("seed-004.toml");
        let options = crate::topology::import::Options {
            service_tags: Some(dir.path().join("service-tags.json")),
            ..Default::default()
        };
        let imported =
            crate::topology::import::import(std::slice::from_ref(&export), &out, &options).unwrap();
        crate::topology::import::save(&imported, &out).unwrap();
        let text = std::fs::read_to_string(&out).unwrap();
        let start = text.find("[[nsg.rule]]\nname = \"allow-sql\"").unwrap();
        let end = start + text[start..].find("\n\n").unwrap() + 2;
        std::fs::write(&out, format!("{}{}", &text[..start], &text[end..])).unwrap();

        let a = audit_of(&out);
        assert_eq!(a.problems.len(), 1, "{a}");
        let log = validate(&render(&a, &out, &root));
        let result = &log["runs"][0]["results"][0];
        assert_eq!(result["ruleId"], "outbound/azure-sql");
        assert_eq!(result["level"], "error");
        // The primary location is the deny rule in the ARM template...
        let loc = &result["locations"][0]["physicalLocation"];
        assert_eq!(
            loc["artifactLocation"]["uri"],
            "tests/fixtures/azure/seed-004/export.json"
        );
        let (line, column) = (
            loc["region"]["startLine"].as_u64().unwrap() as usize,
            loc["region"]["startColumn"].as_u64().unwrap() as usize,
        );
        let json = std::fs::read_to_string(&export).unwrap();
        let at = json.lines().nth(line - 1).unwrap();
        assert_eq!(&at[column - 1..column], "{", "{line}:{column}: {at}");
        assert!(
            json.lines()
                .skip(line)
                .take(3)
                .any(|l| l.contains("\"name\": \"deny-all-out\"")),
            "{line}: not the deny-all-out rule"
        );
        let path = result["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]
            .as_str()
            .unwrap();
        assert!(path.starts_with("$.resources["), "{path}");
        // ... and the topology file's table is a related location (outside
        // the root: a file URI).
        let related = &result["relatedLocations"][0]["physicalLocation"];
        let uri = related["artifactLocation"]["uri"].as_str().unwrap();
        assert!(
            uri.starts_with("file:///") && uri.ends_with("/seed-004.toml"),
            "{uri}"
        );
    }
}
