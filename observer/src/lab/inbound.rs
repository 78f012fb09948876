//! Inbound management in the lab: a host on the internet side (an address
//! of the AppServiceManagement tag, placed in the `pub` namespace) connects
//! to the ASE's public address (the VIP), which the internet edge (`inet`)
//! forwards to the workload; the workload answers on the port. The reply
//! follows the VNet router's table: with forced tunnelling and no user route
//! for the management addresses it leaves through the gateway and on-premises
//! NAT, arrives from the wrong address, and the connection breaks, which the
//! classifier reports as `asymmetric-route`.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream},
    time::Duration,
};

use anyhow::bail;

use super::{build::Lab, netns::Process, traffic::Outcome};
use crate::topology::{Inbound, Topology};

/// The internet edge's transit address on the `pub` side (see `build`).
const PUB_NEAR: &str = "169.254.2.1";
/// How long the management host waits for the handshake.
const CONNECT: Duration = Duration::from_secs(3);

/// The one source address of the topology's inbound flows.
pub fn source(t: &Topology) -> Option<Ipv4Addr> {
    t.lab.inbound.first().map(|i| i.from)
}

/// The ports the workload must listen on.
pub fn ports(t: &Topology) -> BTreeSet<u16> {
    t.lab.inbound.iter().map(|i| i.port).collect()
}

/// Refuses what the lab cannot build.
pub fn check_supported(t: &Topology) -> anyhow::Result<()> {
    let sources: BTreeSet<Ipv4Addr> = t.lab.inbound.iter().map(|i| i.from).collect();
    if sources.len() > 1 {
        bail!(
            "topology {}: the lab's management host has one address; [[lab.inbound]] uses {}",
            t.name,
            sources
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(from) = sources.first()
        && (t.in_vnet(*from) || t.in_onprem(*from) || !crate::topology::is_public((*from).into()))
    {
        bail!(
            "topology {}: [[lab.inbound]] from {from} must be a public address outside the VNet and on-premises (e.g. one of AppServiceManagement)",
            t.name
        );
    }
    Ok(())
}

/// The management host's address in `pub` (its connections to the VIP
/// leave from it) and the edge's forwarding of the VIP's ports to the
/// workload.
pub fn setup(lab: &Lab, vip: Ipv4Addr) -> anyhow::Result<()> {
    let t = &lab.topology;
    let Some(from) = source(t) else {
        return Ok(());
    };
    let public = lab.ns("pub");
    public.ip(["addr", "add", &format!("{from}/32"), "dev", "lo"])?;
    public.ip([
        "route",
        "replace",
        &format!("{vip}/32"),
        "via",
        PUB_NEAR,
        "src",
        &from.to_string(),
    ])?;
    let ports: Vec<String> = ports(t).iter().map(u16::to_string).collect();
    let script = format!(
        "table ip observer_inbound {{\n  chain pre {{\n    type nat hook prerouting priority -100;\n    iifname \"pub\" ip daddr {vip} tcp dport {{ {} }} dnat to {}\n  }}\n}}\n",
        ports.join(", "),
        t.workload_address()
    );
    let mut child = lab
        .ns("inet")
        .command("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()?;
    {
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(script.as_bytes())?;
    }
    if !child.wait()?.success() {
        bail!("nft refused the inbound forwarding:\n{script}");
    }
    Ok(())
}

/// The workload's server on the inbound ports (`observer lab serve` in the
/// first workload namespace), once it is listening.
pub fn start_listener(lab: &Lab) -> anyhow::Result<Option<Process>> {
    let ports = ports(&lab.topology);
    if ports.is_empty() {
        return Ok(None);
    }
    let ns = lab.ns("ase");
    let mut command = ns.command(lab.helper_binary());
    command.args(["--quiet", "lab", "serve"]);
    for port in &ports {
        command.args(["--tcp", &port.to_string()]);
    }
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    lab.helper_setup(&mut command);
    let label = format!("inbound server in {}", ns.name());
    let mut process = Process::spawn(&mut command, &label)?;
    let stdout = process.take_stdout().expect("stdout is piped");
    let mut line = String::new();
    // `lab serve` prints `ready` once its sockets are bound; EOF is failure.
    let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
    if line.trim() != "ready" {
        bail!("{label} did not start");
    }
    Ok(Some(process))
}

/// Opens one inbound flow from the management host to the VIP.
pub fn send(lab: &Lab, vip: Ipv4Addr, inbound: &Inbound) -> Outcome {
    let target = SocketAddr::from((vip, inbound.port));
    let result = lab
        .ns("pub")
        .enter(move || TcpStream::connect_timeout(&target, CONNECT))
        .map_err(anyhow::Error::from)
        .and_then(|r| r.map_err(anyhow::Error::from));
    Outcome {
        name: inbound.name.clone(),
        resolved: Some(IpAddr::V4(inbound.from)),
        result: match result {
            Ok(_) => format!("connected to {target}"),
            Err(e) => format!("no connection to {target}: {e}"),
        },
    }
}
