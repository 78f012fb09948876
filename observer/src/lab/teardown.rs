//! Labs on the host as a whole: listing their namespaces (`lab status`)
//! and removing a kept one with everything inside it (`lab down`).

use crate::lab::{
    cmd,
    netns::remove_netns_etc,
    plan::{EPHEMERAL_PREFIX, PERSISTENT_PREFIX},
};

/// Removes the namespaces (and dnsmasq, servers, resolvers) of a lab kept
/// by `lab up`.
pub fn down(name: &str) -> Result<Vec<String>, cmd::CmdError> {
    let base = format!("{PERSISTENT_PREFIX}-{name}-");
    let names: Vec<String> = list()
        .into_iter()
        .filter(|n| n.starts_with(&base))
        .collect();
    for ns in &names {
        // Processes inside (dnsmasq, servers) first.
        kill_processes_in(ns);
        remove_netns_etc(ns);
        cmd::ip(["netns", "del", ns])?;
    }
    Ok(names)
}

/// SIGKILLs every process in the namespace `name`.
pub(crate) fn kill_processes_in(name: &str) {
    if let Ok(pids) = cmd::ip(["netns", "pids", name]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: plain kill(2).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// Every lab namespace on the host.
pub fn list() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            n.starts_with(&format!("{EPHEMERAL_PREFIX}-"))
                || n.starts_with(&format!("{PERSISTENT_PREFIX}-"))
        })
        .collect();
    names.sort();
    names
}
