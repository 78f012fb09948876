//! Entering a named network namespace (`--netns`), the way `ip netns exec`
//! does for the network side: `setns(CLONE_NEWNET)` on `/run/netns/NAME`.
//!
//! Must run before any thread is spawned: `setns` affects the calling thread,
//! and threads created afterwards inherit its namespace.

use std::{fs::File, io, os::fd::AsRawFd, path::PathBuf};

use thiserror::Error;

const NETNS_DIR: &str = "/run/netns";

#[derive(Debug, Error)]
pub(crate) enum NetnsError {
    #[error(
        "network namespace `{name}` not found ({}); create it with `ip netns add {name}`",
        known(available)
    )]
    NotFound {
        name: String,
        available: Vec<String>,
    },
    #[error("cannot open network namespace `{name}` at {}", path.display())]
    Open {
        name: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot enter network namespace `{name}`: entering a namespace needs CAP_SYS_ADMIN")]
    Permission { name: String },
    #[error("cannot enter network namespace `{name}`")]
    Enter { name: String, source: io::Error },
}

fn known(available: &[String]) -> String {
    if available.is_empty() {
        "`ip netns list` shows none".to_owned()
    } else {
        format!("`ip netns list` shows: {}", available.join(", "))
    }
}

/// Named namespaces under /run/netns.
pub(crate) fn list() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(NETNS_DIR)
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Moves the calling thread into the namespace `name` (a name under
/// /run/netns, or a path such as /proc/PID/ns/net).
pub(crate) fn enter(name: &str) -> Result<(), NetnsError> {
    let path = if name.contains('/') {
        PathBuf::from(name)
    } else {
        PathBuf::from(NETNS_DIR).join(name)
    };
    let file = File::open(&path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => NetnsError::NotFound {
            name: name.to_owned(),
            available: list(),
        },
        _ => NetnsError::Open {
            name: name.to_owned(),
            path: path.clone(),
            source,
        },
    })?;
    // SAFETY: a valid namespace file descriptor.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        let source = io::Error::last_os_error();
        return Err(match source.raw_os_error() {
            Some(libc::EPERM) => NetnsError::Permission {
                name: name.to_owned(),
            },
            _ => NetnsError::Enter {
                name: name.to_owned(),
                source,
            },
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_namespace_says_how_to_create_it() {
        let err = enter("observer-no-such-namespace").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`observer-no-such-namespace` not found"),
            "{text}"
        );
        assert!(
            text.contains("ip netns add observer-no-such-namespace"),
            "{text}"
        );
    }
}
