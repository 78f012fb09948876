//! Attaching the classifier to ingress and egress of every watched interface,
//! with TCX links on Linux >= 6.6 and a clsact qdisc + cls_bpf filter on
//! older kernels. [`Attachments`] detaches everything on drop, also when
//! attaching fails half-way.

use std::{fmt, process::Command, str::FromStr};

use aya::{
    Ebpf,
    programs::{
        LinkOrder, SchedClassifier, TcAttachType,
        tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions, TcError},
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
pub const PROGRAM_NAMES: [&str; 4] = [
    ETHERNET_PROGRAMS.0,
    ETHERNET_PROGRAMS.1,
    RAW_IP_PROGRAMS.0,
    RAW_IP_PROGRAMS.1,
];

/// `--attach`: how to hook into traffic control.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttachMode {
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
pub struct Attachments {
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
    pub fn forget(&mut self, ifindex: u32, name: &str) {
        self.links.retain(|(index, _)| *index != ifindex);
        self.created_qdiscs.retain(|iface| iface != name);
    }
}

/// Loads the four programs and attaches the right pair to each interface.
pub fn attach(
    ebpf: &mut Ebpf,
    interfaces: &[Interface],
    mode: AttachMode,
) -> Result<Attachments, CaptureError> {
    for name in PROGRAM_NAMES {
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
        // A qdisc whose only filters were a killed observer's is ours to remove.
        let adopt_qdisc = remove_stale_filters(&iface.name) && clsact_is_unused(&iface.name);
        if adopt_qdisc {
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
                TcAttachOptions::Netlink(NlOptions::default())
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

/// cls_bpf filters outlive their process; remove any an earlier observer left
/// behind (e.g. after SIGKILL) so packets are not counted twice, whatever
/// this run attaches with. TCX links need no such cleanup: they are released
/// with the process. Returns whether anything was removed.
fn remove_stale_filters(iface: &str) -> bool {
    let mut removed = false;
    for name in PROGRAM_NAMES {
        for hook in [TcAttachType::Ingress, TcAttachType::Egress] {
            if tc::qdisc_detach_program(iface, hook, name).is_ok() {
                removed = true;
                tracing::warn!(
                    "removed a stale {name} filter from {iface} ({}) left by an observer that did not exit cleanly",
                    hook_name(hook)
                );
            }
        }
    }
    removed
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
