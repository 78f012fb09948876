//! `observer verify`: like Network Watcher's IP flow verify: Allow or Deny
//! for one flow, the NSG and rule that decided, and the route the packet
//! would take.

use std::{net::Ipv4Addr, path::PathBuf, process::ExitCode};

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::{
    routes::{Decision, EffectiveRoutes},
    security::{EffectiveSecurity, Flow, Scope, SecurityDecision},
    topology::{Access, Topology},
};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The topology file.
    #[arg(long, value_name = "FILE")]
    topology: PathBuf,
    /// Source address of the flow.
    #[arg(long, value_name = "IP")]
    from: Ipv4Addr,
    /// Destination address of the flow.
    #[arg(long, value_name = "IP")]
    to: Ipv4Addr,
    /// Destination port.
    #[arg(long, value_name = "N")]
    port: u16,
    /// Source port (default: an ephemeral port).
    #[arg(long, value_name = "N", default_value_t = 49152)]
    source_port: u16,
    #[arg(long, value_enum, default_value_t = ProtocolArg::Tcp)]
    protocol: ProtocolArg,
    /// Only the source subnet's outbound rules, or only the destination
    /// subnet's inbound rules (default: both, the packet's whole way).
    #[arg(long, value_enum)]
    direction: Option<DirectionArg>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ProtocolArg {
    Tcp,
    Udp,
    Icmp,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DirectionArg {
    Outbound,
    Inbound,
}

#[derive(Serialize)]
struct Output<'a> {
    access: Access,
    security: &'a SecurityDecision,
    /// The route from the ASE subnet, when the flow leaves it.
    route: Option<&'a Decision>,
    /// For a flow into the ASE subnet from outside: the route its reply
    /// takes (it must leave the way the request came in).
    reply_route: Option<&'a Decision>,
}

impl VerifyArgs {
    pub fn execute(&self) -> anyhow::Result<ExitCode> {
        let topology = Topology::load(&self.topology)?;
        let security = EffectiveSecurity::build(&topology);
        let (protocol, ports) = match self.protocol {
            ProtocolArg::Tcp => (6, true),
            ProtocolArg::Udp => (17, true),
            ProtocolArg::Icmp => (1, false),
        };
        let flow = Flow {
            src: self.from,
            dst: self.to,
            protocol,
            src_port: ports.then_some(self.source_port),
            dst_port: ports.then_some(self.port),
        };
        let scope = match self.direction {
            None => Scope::Path,
            Some(DirectionArg::Outbound) => Scope::Outbound,
            Some(DirectionArg::Inbound) => Scope::Inbound,
        };
        let decision = security.verify(&flow, scope);
        // The topology's route table is the ASE subnet's.
        let ase = topology.ase_subnet().prefix;
        let routes = EffectiveRoutes::build(&topology);
        let route = ase.contains(&self.from).then(|| routes.lookup(self.to));
        let reply_route =
            (!ase.contains(&self.from) && ase.contains(&self.to)).then(|| routes.lookup(self.from));
        if self.json {
            let out = Output {
                access: decision.access,
                security: &decision,
                route: route.as_ref(),
                reply_route: reply_route.as_ref(),
            };
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            println!("access       {}", decision.access);
            println!("decided by   {}", decision.describe());
            for step in &decision.steps {
                println!("  {step}");
            }
            match (&route, &reply_route) {
                (Some(d), _) => print!("{d}"),
                (None, Some(d)) => {
                    println!("reply route (from the ASE subnet back to {}):", self.from);
                    print!("{d}");
                }
                (None, None) => println!(
                    "route        not shown: the topology's route table is the ASE subnet's ({ase})"
                ),
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
