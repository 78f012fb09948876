//! Watched interfaces: name and optional role from the command line, index
//! and link type from the kernel (in the namespace the process is in).

use std::{ffi::CString, fmt, io, str::FromStr};

use thiserror::Error;

/// `--iface NAME[=ROLE]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InterfaceSpec {
    pub name: String,
    pub role: Option<String>,
}

impl FromStr for InterfaceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, role) = match s.split_once('=') {
            Some((name, role)) => (name, Some(role)),
            None => (s, None),
        };
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
            return Err(format!(
                "`{name}` is not an interface name (1 to 15 characters, no `/` or spaces)"
            ));
        }
        if role.is_some_and(str::is_empty) {
            return Err(format!("`{s}` has an empty role; write NAME or NAME=ROLE"));
        }
        Ok(Self {
            name: name.to_owned(),
            role: role.map(str::to_owned),
        })
    }
}

impl fmt::Display for InterfaceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.role {
            Some(role) => write!(f, "{}={role}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// How a device frames packets, which decides the program attached to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinkKind {
    /// An Ethernet header precedes IP (Ethernet, veth, bridge, loopback).
    Ethernet,
    /// Packets start at the IP header (WireGuard, tun, ipip, ...).
    RawIp,
}

/// A watched interface as resolved in the capture's namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Interface {
    pub name: String,
    pub role: Option<String>,
    pub ifindex: u32,
    pub link: LinkKind,
}

#[derive(Debug, Error)]
pub(crate) enum InterfaceError {
    #[error("interface `{name}` not found in {namespace}; it has: {}", available.join(", "))]
    NotFound {
        name: String,
        namespace: String,
        available: Vec<String>,
    },
    #[error("interface `{name}` is listed twice; give each interface once")]
    Duplicate { name: String },
    #[error("cannot query interface `{name}`")]
    Query { name: String, source: io::Error },
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.role {
            Some(role) => write!(f, "{}={role}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Resolves every spec in the current network namespace (`namespace` only
/// names it in errors).
pub(crate) fn resolve(
    specs: &[InterfaceSpec],
    namespace: &str,
) -> Result<Vec<Interface>, InterfaceError> {
    let mut resolved: Vec<Interface> = Vec::with_capacity(specs.len());
    for spec in specs {
        if resolved.iter().any(|i| i.name == spec.name) {
            return Err(InterfaceError::Duplicate {
                name: spec.name.clone(),
            });
        }
        let c_name =
            CString::new(spec.name.as_str()).expect("validated interface names have no NUL");
        // SAFETY: a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
        if ifindex == 0 {
            return Err(InterfaceError::NotFound {
                name: spec.name.clone(),
                namespace: namespace.to_owned(),
                available: list_names(),
            });
        }
        let link = link_kind(&c_name).map_err(|source| InterfaceError::Query {
            name: spec.name.clone(),
            source,
        })?;
        resolved.push(Interface {
            name: spec.name.clone(),
            role: spec.role.clone(),
            ifindex,
            link,
        });
    }
    Ok(resolved)
}

/// Interface names of the current network namespace.
pub(crate) fn list_names() -> Vec<String> {
    let mut names = Vec::new();
    // SAFETY: if_nameindex returns an array terminated by a zeroed entry,
    // freed with if_freenameindex.
    unsafe {
        let list = libc::if_nameindex();
        if list.is_null() {
            return names;
        }
        let mut entry = list;
        while (*entry).if_index != 0 {
            names.push(
                std::ffi::CStr::from_ptr((*entry).if_name)
                    .to_string_lossy()
                    .into_owned(),
            );
            entry = entry.add(1);
        }
        libc::if_freenameindex(list);
    }
    names.sort();
    names
}

/// Reads the device's hardware type (`SIOCGIFHWADDR`).
fn link_kind(name: &CString) -> io::Result<LinkKind> {
    const ARPHRD_ETHER: u16 = 1;
    const ARPHRD_LOOPBACK: u16 = 772;
    // SAFETY: plain socket, closed below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ifreq is plain data; the name fits (validated to <= 15 bytes).
    let result = unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes_with_nul()) {
            *dst = *src as libc::c_char;
        }
        let rc = libc::ioctl(sock, libc::SIOCGIFHWADDR, &mut req);
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(req.ifr_ifru.ifru_hwaddr.sa_family)
        }
    };
    // SAFETY: closing the socket opened above.
    unsafe { libc::close(sock) };
    Ok(match result? {
        ARPHRD_ETHER | ARPHRD_LOOPBACK => LinkKind::Ethernet,
        _ => LinkKind::RawIp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_name_and_role() {
        assert_eq!(
            "eth0=internet".parse::<InterfaceSpec>().unwrap(),
            InterfaceSpec {
                name: "eth0".into(),
                role: Some("internet".into())
            }
        );
        assert_eq!("veth1".parse::<InterfaceSpec>().unwrap().role, None);
    }

    #[test]
    fn rejects_bad_specs() {
        assert!("".parse::<InterfaceSpec>().is_err());
        assert!(
            "a-very-long-interface-name"
                .parse::<InterfaceSpec>()
                .is_err()
        );
        assert!("eth0=".parse::<InterfaceSpec>().is_err());
    }

    #[test]
    fn loopback_resolves_as_ethernet_and_missing_names_list_alternatives() {
        let lo = resolve(&["lo".parse().unwrap()], "test").unwrap();
        assert_eq!((lo[0].ifindex, lo[0].link), (1, LinkKind::Ethernet));
        let err = resolve(&["nosuch0".parse().unwrap()], "the host namespace").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`nosuch0` not found in the host namespace") && text.contains("lo"),
            "{text}"
        );
    }
}
