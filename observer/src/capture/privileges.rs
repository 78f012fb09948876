//! Capability checks before anything is loaded, so a user without the right
//! privileges hears which capability is missing instead of a bare EPERM.

use caps::{CapSet, Capability};
use thiserror::Error;

#[derive(Debug, Error)]
#[error(
    "missing {}: observer needs root, or CAP_BPF + CAP_NET_ADMIN (+ CAP_PERFMON){}; \
     e.g. `sudo setcap cap_bpf,cap_net_admin,cap_perfmon,cap_sys_admin+ep $(which observer)`",
    missing.join(" and "),
    if *needs_netns { " and CAP_SYS_ADMIN to enter another network namespace" } else { "" }
)]
pub(crate) struct PrivilegeError {
    pub missing: Vec<&'static str>,
    pub needs_netns: bool,
}

fn has(cap: Capability) -> bool {
    caps::has_cap(None, CapSet::Effective, cap).unwrap_or(false)
}

/// Checks the effective capabilities a capture needs. CAP_SYS_ADMIN stands
/// in for CAP_BPF and CAP_PERFMON, as in the kernel.
pub(crate) fn check(enter_netns: bool) -> Result<(), PrivilegeError> {
    let admin = has(Capability::CAP_SYS_ADMIN);
    let mut missing = Vec::new();
    if !admin && !has(Capability::CAP_BPF) {
        missing.push("CAP_BPF");
    }
    if !has(Capability::CAP_NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if !admin && !has(Capability::CAP_PERFMON) {
        missing.push("CAP_PERFMON");
    }
    if enter_netns && !admin {
        missing.push("CAP_SYS_ADMIN");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(PrivilegeError {
            missing,
            needs_netns: enter_netns,
        })
    }
}

/// Lifts RLIMIT_MEMLOCK for kernels that still charge BPF maps to it (< 5.11).
pub(crate) fn raise_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a valid rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        tracing::debug!(
            "could not lift RLIMIT_MEMLOCK: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_what_is_missing_and_how_to_grant_it() {
        let err = PrivilegeError {
            missing: vec!["CAP_BPF", "CAP_NET_ADMIN"],
            needs_netns: false,
        };
        let text = err.to_string();
        assert!(
            text.starts_with("missing CAP_BPF and CAP_NET_ADMIN: observer needs root"),
            "{text}"
        );
        assert!(text.contains("setcap"), "{text}");
    }
}
