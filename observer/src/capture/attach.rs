//! Attaching the classifier to ingress and egress of every watched interface,
//! with TCX links on Linux >= 6.6 and a clsact qdisc + cls_bpf filter on
//! older kernels. [`Attachments`] detaches everything on drop, also when
//! attaching fails half-way.
//!
//! Several observers may watch one interface. TCX links coexist by design
//! and go with their process. cls_bpf filters outlive their process, so
//! each observer's filters carry its pid in their handle ([`owner_handle`]):
//! a filter whose owner is gone is stale and the next observer removes it;
//! a live observer's filter is left alone. The clsact qdisc is removed by
//! the last observer out (when only observer filters ever hung on it).

use std::{fmt, process::Command, str::FromStr};

use aya::{
    Ebpf,
    programs::{
        LinkOrder, SchedClassifier, TcAttachType,
        links::Link as _,
        tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions, TcError, TcHandle},
    },
    util::KernelVersion,
};

use super::{
    CaptureError,
    iface::{Interface, LinkKind},
};

/// Kernel program names, by link kind: (ingress, egress).
const ETHERNET_PROGRAMS: (&str, &str) = ("observe_ingress", "observe_egress");
const RAW_IP_PROGRAMS: (&str, &str) = ("observe_ingress_ip", "observe_egress_ip");
pub(crate) const PROGRAM_NAMES: [&str; 4] = [
    ETHERNET_PROGRAMS.0,
    ETHERNET_PROGRAMS.1,
    RAW_IP_PROGRAMS.0,
    RAW_IP_PROGRAMS.1,
];

/// `--attach`: how to hook into traffic control.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum AttachMode {
    /// TCX on Linux >= 6.6, clsact + cls_bpf before.
    #[default]
    Auto,
    /// TCX links only (Linux >= 6.6).
    Tcx,
    /// A clsact qdisc with cls_bpf filters (any kernel).
    Tc,
}

impl FromStr for AttachMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "tcx" => Ok(Self::Tcx),
            "tc" => Ok(Self::Tc),
            other => Err(format!(
                "unknown attach mode `{other}`; use auto, tcx or tc"
            )),
        }
    }
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Tcx => "tcx",
            Self::Tc => "tc",
        })
    }
}

impl AttachMode {
    /// Whether this mode means TCX on the running kernel.
    fn uses_tcx(self) -> bool {
        match self {
            Self::Tcx => true,
            Self::Tc => false,
            Self::Auto => KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0)),
        }
    }
}

/// Everything attached by one capture. Dropping it detaches the programs and
/// removes the clsact qdiscs it added (when no other filter uses them).
pub(crate) struct Attachments {
    /// (ifindex, link): the links of one interface can go on their own.
    links: Vec<(u32, SchedClassifierLink)>,
    created_qdiscs: Vec<String>,
    pub tcx: bool,
}

impl fmt::Debug for Attachments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachments")
            .field("links", &self.links.len())
            .field("created_qdiscs", &self.created_qdiscs)
            .field("tcx", &self.tcx)
            .finish()
    }
}

impl Drop for Attachments {
    fn drop(&mut self) {
        // Each link detaches when dropped.
        self.links.clear();
        for iface in self.created_qdiscs.drain(..) {
            if clsact_is_unused(&iface) {
                let removed = Command::new("tc")
                    .args(["qdisc", "del", "dev", &iface, "clsact"])
                    .status();
                if !removed.is_ok_and(|s| s.success()) {
                    tracing::warn!("could not remove the clsact qdisc observer added to {iface}");
                }
            }
        }
    }
}

impl Attachments {
    /// Lets go of an interface that disappeared: its links (already gone
    /// with the device in the kernel) are dropped and its qdisc is no longer
    /// ours to remove (a new device may reuse the name).
    pub(crate) fn forget(&mut self, ifindex: u32, name: &str) {
        self.links.retain(|(index, _)| *index != ifindex);
        self.created_qdiscs.retain(|iface| iface != name);
    }
}

/// Loads the program pairs the interfaces need (Ethernet, raw IP) and
/// attaches the right pair to each interface. Each load is a verifier run
/// (the bulk of the start-up time), so unused pairs stay unloaded.
pub(crate) fn attach(
    ebpf: &mut Ebpf,
    interfaces: &[Interface],
    mode: AttachMode,
) -> Result<Attachments, CaptureError> {
    let needed = |kind: LinkKind| interfaces.iter().any(|i| i.link == kind);
    let mut pairs = Vec::new();
    if needed(LinkKind::Ethernet) {
        pairs.push(ETHERNET_PROGRAMS);
    }
    if needed(LinkKind::RawIp) {
        pairs.push(RAW_IP_PROGRAMS);
    }
    for name in pairs.into_iter().flat_map(|(i, e)| [i, e]) {
        program(ebpf, name)?
            .load()
            .map_err(|source| CaptureError::Load {
                program: name,
                source,
            })?;
    }
    let tcx = mode.uses_tcx();
    let mut attachments = Attachments {
        links: Vec::new(),
        created_qdiscs: Vec::new(),
        tcx,
    };
    for iface in interfaces {
        let (ingress, egress) = match iface.link {
            LinkKind::Ethernet => ETHERNET_PROGRAMS,
            LinkKind::RawIp => RAW_IP_PROGRAMS,
        };
        // A qdisc whose only filters are observers' is ours to remove too
        // (by whichever observer is last), whoever added it.
        if adopt_qdisc(&iface.name) {
            attachments.created_qdiscs.push(iface.name.clone());
        }
        if !tcx {
            match tc::qdisc_add_clsact(&iface.name) {
                Ok(()) => attachments.created_qdiscs.push(iface.name.clone()),
                Err(TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(source) => {
                    return Err(CaptureError::Qdisc {
                        iface: iface.name.clone(),
                        source,
                    });
                }
            }
        }
        for (name, hook) in [
            (ingress, TcAttachType::Ingress),
            (egress, TcAttachType::Egress),
        ] {
            let options = if tcx {
                TcAttachOptions::TcxOrder(LinkOrder::default())
            } else {
                TcAttachOptions::Netlink(NlOptions {
                    handle: TcHandle::from(owner_handle(std::process::id())),
                    ..NlOptions::default()
                })
            };
            let prog = program(ebpf, name)?;
            let attach_err = |source| CaptureError::Attach {
                iface: iface.name.clone(),
                hook: hook_name(hook),
                source,
            };
            let id = prog
                .attach_with_options(&iface.name, hook, options)
                .map_err(attach_err)?;
            attachments
                .links
                .push((iface.ifindex, prog.take_link(id).map_err(attach_err)?));
        }
    }
    Ok(attachments)
}

fn program<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut SchedClassifier, CaptureError> {
    ebpf.program_mut(name)
        .ok_or(CaptureError::MissingProgram { name })?
        .try_into()
        .map_err(|source| CaptureError::Load {
            program: name,
            source,
        })
}

fn hook_name(hook: TcAttachType) -> &'static str {
    match hook {
        TcAttachType::Ingress => "ingress",
        TcAttachType::Egress => "egress",
        TcAttachType::Custom(_) => "custom",
    }
}

/// The top byte of the handle of every cls_bpf filter an observer adds;
/// the low 24 bits are its pid (Linux pids stay below 2^22).
const OWNER_TAG: u32 = 0x4f00_0000;

/// The cls_bpf filter handle of the observer with process id `pid`.
pub(crate) fn owner_handle(pid: u32) -> u32 {
    OWNER_TAG | (pid & 0x00ff_ffff)
}

/// Who added a cls_bpf filter of ours, from its handle: the owner's pid,
/// or `None` when the handle carries none (filters of observers from
/// before handles named their owner, which cannot still be running).
fn owner_pid(handle: u32) -> Option<u32> {
    (handle & 0xff00_0000 == OWNER_TAG).then_some(handle & 0x00ff_ffff)
}

/// Whether process `pid` exists.
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let sent = unsafe { libc::kill(pid, 0) } == 0;
    sent || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// One filter of `tc -j filter show` (the chain heads have no options).
#[derive(Debug, Default, serde::Deserialize)]
struct Filter {
    pref: Option<u16>,
    kind: Option<String>,
    options: Option<FilterOptions>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct FilterOptions {
    handle: Option<String>,
    bpf_name: Option<String>,
}

/// A cls_bpf filter of one of our programs, and who added it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ObserverFilter {
    hook: TcAttachType,
    pref: u16,
    handle: u32,
    owner: Option<u32>,
}

/// The filters on `hook` of `iface`: ours (by program name) and how many
/// others there are.
fn list_filters(iface: &str, hook: TcAttachType) -> (Vec<ObserverFilter>, usize) {
    let output = Command::new("tc")
        .args(["-j", "filter", "show", "dev", iface, hook_name(hook)])
        .output();
    let filters: Vec<Filter> = match output {
        Ok(out) if out.status.success() && !out.stdout.iter().all(u8::is_ascii_whitespace) => {
            serde_json::from_slice(&out.stdout).unwrap_or_default()
        }
        _ => Vec::new(),
    };
    let mut ours = Vec::new();
    let mut others = 0;
    for filter in filters {
        let Some(options) = filter.options else {
            continue; // a chain head, not a filter
        };
        let handle = options
            .handle
            .as_deref()
            .and_then(|h| u32::from_str_radix(h.trim_start_matches("0x"), 16).ok());
        let ours_by_name = filter.kind.as_deref() == Some("bpf")
            && options
                .bpf_name
                .as_deref()
                .is_some_and(|n| PROGRAM_NAMES.contains(&n));
        match (ours_by_name, filter.pref, handle) {
            (true, Some(pref), Some(handle)) => ours.push(ObserverFilter {
                hook,
                pref,
                handle,
                owner: owner_pid(handle),
            }),
            _ => others += 1,
        }
    }
    (ours, others)
}

/// Whether a filter of ours was left by an observer that is gone (or by
/// an earlier process with this pid, which cannot be attached yet).
fn is_stale(filter: &ObserverFilter) -> bool {
    match filter.owner {
        None => true,
        Some(pid) => pid == std::process::id() || !alive(pid),
    }
}

/// cls_bpf filters outlive their process; remove those whose observer is
/// gone (e.g. after SIGKILL), whatever this run attaches with, and leave
/// live observers' filters alone. TCX links need no such cleanup: they are
/// released with the process. Returns whether the clsact qdisc of `iface`
/// is ours to remove once unused: something stale was removed, or live
/// observers' filters hang on it, and nothing else does.
fn adopt_qdisc(iface: &str) -> bool {
    let mut removed = false;
    let mut live = false;
    let mut others = 0;
    for hook in [TcAttachType::Ingress, TcAttachType::Egress] {
        let (ours, foreign) = list_filters(iface, hook);
        others += foreign;
        for filter in ours {
            if !is_stale(&filter) {
                live = true;
                continue;
            }
            let detached = SchedClassifierLink::attached(
                iface,
                hook,
                filter.pref,
                TcHandle::from(filter.handle),
                None,
            )
            .map_err(|e| e.to_string())
            .and_then(|link| link.detach().map_err(|e| e.to_string()));
            match detached {
                Ok(()) => {
                    removed = true;
                    let owner = filter
                        .owner
                        .map_or_else(|| "an older observer".to_owned(), |p| format!("pid {p}"));
                    tracing::warn!(
                        "removed a stale filter from {iface} ({}) left by an observer that did \
                         not exit cleanly ({owner})",
                        hook_name(hook)
                    );
                }
                Err(error) => tracing::warn!(
                    "cannot remove a stale filter from {iface} ({}): {error}",
                    hook_name(hook)
                ),
            }
        }
    }
    others == 0 && (live || (removed && clsact_is_unused(iface)))
}

/// Whether the clsact qdisc on `iface` carries no filter any more.
fn clsact_is_unused(iface: &str) -> bool {
    ["ingress", "egress"].iter().all(|hook| {
        Command::new("tc")
            .args(["filter", "show", "dev", iface, hook])
            .output()
            .is_ok_and(|out| out.status.success() && out.stdout.iter().all(u8::is_ascii_whitespace))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_handles_name_their_owner() {
        let handle = owner_handle(4_194_303);
        assert_eq!(owner_pid(handle), Some(4_194_303));
        assert_eq!(owner_pid(1), None, "a kernel-chosen handle names nobody");
        let filter = |owner| ObserverFilter {
            hook: TcAttachType::Ingress,
            pref: 49152,
            handle: 1,
            owner,
        };
        assert!(is_stale(&filter(None)));
        assert!(
            is_stale(&filter(Some(std::process::id()))),
            "ours, before attaching"
        );
        assert!(!is_stale(&filter(Some(1))), "init is alive");
        assert!(is_stale(&filter(Some(0x00ff_fffe))), "beyond pid_max: gone");
    }

    #[test]
    fn attach_modes_parse_and_print() {
        for mode in [AttachMode::Auto, AttachMode::Tcx, AttachMode::Tc] {
            assert_eq!(mode.to_string().parse::<AttachMode>().unwrap(), mode);
        }
        assert!(
            "xdp"
                .parse::<AttachMode>()
                .unwrap_err()
                .contains("auto, tcx or tc")
        );
    }
}
