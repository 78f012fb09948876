//! The scenario topologies shipped inside the binary (`lab/topologies/`,
//! embedded at build time), so an installed `observer` runs
//! `observer lab run default` from any directory. A topology argument is a
//! built-in name or a path to a file.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// The service-tag file every shipped topology names.
const SERVICE_TAGS: (&str, &str) = (
    "service-tags.json",
    include_str!("../../../lab/topologies/service-tags.json"),
);

macro_rules! builtin {
    ($($name:literal),* $(,)?) => {
        /// (name, TOML text) of every shipped topology, `default` first.
        pub const BUILTIN: &[(&str, &str)] = &[
            $(($name, include_str!(concat!("../../../lab/topologies/", $name, ".toml")))),*
        ];
    };
}

builtin!(
    "default",
    "asev1-same-subnet",
    "forced-tunnel",
    "forced-tunnel-udr",
    "multi-tenant-route-all-off",
    "multi-tenant-route-all-on",
    "pe-zone-not-linked",
    "storage-blocked",
    "forced-tunnel-bgp-specific",
    "seed-004-nsg",
    "seed-004-nsg-missing-sql",
    "seed-003-private-access",
    "seed-003-public-access-disabled",
    "sql-vm-nsg",
    "custom-dns-forwarding",
    "custom-dns-not-forwarding",
    "custom-dns-onprem",
    "inbound-management-forced",
    "inbound-management-fixed",
    "appliance",
);

#[derive(Debug, Error)]
pub enum TopologyArgError {
    #[error(
        "no topology named `{name}` and no file {name}: built-in topologies are {}; or pass the path of a topology TOML file",
        names().join(", ")
    )]
    Unknown { name: String },
    #[error("cannot write the built-in topology `{name}` to {}", dir.display())]
    Write {
        name: String,
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// The names of the shipped topologies.
pub fn names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(n, _)| *n).collect()
}

/// The description line of a shipped topology.
pub fn description(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.strip_prefix("description = \""))
        .and_then(|l| l.split('"').next())
}

/// A topology argument as a file: a path that exists (or that looks like
/// one) as it is; a built-in name written (with its service tags) into
/// `dir`, where the observers read it too.
pub fn resolve(arg: &str, dir: &Path) -> Result<PathBuf, TopologyArgError> {
    let path = Path::new(arg);
    if path.exists() || arg.contains('/') || arg.ends_with(".toml") {
        return Ok(path.to_path_buf());
    }
    let Some((name, text)) = BUILTIN.iter().find(|(n, _)| *n == arg) else {
        return Err(TopologyArgError::Unknown { name: arg.into() });
    };
    let write = |file: &str, text: &str| {
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(dir.join(file), text))
            .map_err(|source| TopologyArgError::Write {
                name: (*name).into(),
                dir: dir.to_path_buf(),
                source,
            })
    };
    write(SERVICE_TAGS.0, SERVICE_TAGS.1)?;
    let file = format!("{name}.toml");
    write(&file, text)?;
    Ok(dir.join(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_under_lab_topologies_is_shipped_and_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lab/topologies");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".toml").map(str::to_string))
            .collect();
        on_disk.sort();
        let mut shipped: Vec<String> = names().into_iter().map(String::from).collect();
        shipped.sort();
        assert_eq!(shipped, on_disk, "add new topology files to BUILTIN");
        let scratch = tempfile::tempdir().unwrap();
        for name in names() {
            let path = resolve(name, scratch.path()).unwrap();
            let t = crate::topology::Topology::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(t.name, name);
        }
        assert!(
            description(BUILTIN[0].1)
                .unwrap()
                .starts_with("ASEv2 External")
        );
        let err = resolve("defualt", scratch.path()).unwrap_err().to_string();
        assert!(err.contains("built-in topologies are default, "), "{err}");
        assert_eq!(
            resolve("x/y.toml", scratch.path()).unwrap(),
            Path::new("x/y.toml")
        );
    }
}
