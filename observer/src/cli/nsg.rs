//! `observer nsg`: the effective security rules of the topology's subnets
//! (user rules and Azure's defaults in priority order, tags expanded).

use std::{path::PathBuf, process::ExitCode};

use anyhow::bail;
use clap::Args;
use serde::Serialize;

use crate::{
    security::{EffectiveRule, EffectiveSecurity},
    topology::Topology,
};

#[derive(Debug, Args)]
pub struct NsgArgs {
    /// The topology file.
    #[arg(long, value_name = "FILE")]
    topology: PathBuf,
    /// Only this subnet.
    #[arg(long, value_name = "NAME")]
    subnet: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct SubnetRules {
    subnet: String,
    prefix: String,
    nsg: Option<String>,
    rules: Vec<EffectiveRule>,
}

impl NsgArgs {
    pub fn execute(&self) -> anyhow::Result<ExitCode> {
        let topology = Topology::load(&self.topology)?;
        let security = EffectiveSecurity::build(&topology);
        if let Some(name) = &self.subnet
            && !topology.vnet.subnets.iter().any(|s| &s.name == name)
        {
            bail!(
                "no subnet `{name}` in {}; subnets: {}",
                self.topology.display(),
                topology
                    .vnet
                    .subnets
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let subnets: Vec<SubnetRules> = topology
            .vnet
            .subnets
            .iter()
            .filter(|s| self.subnet.as_ref().is_none_or(|n| *n == s.name))
            .map(|s| {
                let nsg = topology.nsg_of(&s.name);
                SubnetRules {
                    subnet: s.name.clone(),
                    prefix: s.prefix.to_string(),
                    nsg: nsg.map(|n| n.name.clone()),
                    rules: nsg.map(|n| security.effective_rules(n)).unwrap_or_default(),
                }
            })
            .collect();
        if self.json {
            println!("{}", serde_json::to_string_pretty(&subnets)?);
            return Ok(ExitCode::SUCCESS);
        }
        for (i, s) in subnets.iter().enumerate() {
            if i > 0 {
                println!();
            }
            let Some(nsg) = &s.nsg else {
                println!(
                    "subnet {} ({}): no NSG, all traffic allowed",
                    s.subnet, s.prefix
                );
                continue;
            };
            println!("subnet {} ({}): nsg {nsg}", s.subnet, s.prefix);
            println!(
                "  {:<9} {:<8} {:<30} {:<6} {:<5} {:<28} {:<12} {:<28} {:<}",
                "direction",
                "priority",
                "name",
                "access",
                "proto",
                "source",
                "src ports",
                "destination",
                "dst ports"
            );
            for r in &s.rules {
                println!(
                    "  {:<9} {:<8} {:<30} {:<6} {:<5} {:<28} {:<12} {:<28} {}",
                    r.direction.as_str(),
                    r.priority,
                    r.name,
                    r.access.as_str(),
                    r.protocol,
                    r.source.join(","),
                    r.source_ports.join(","),
                    r.destination.join(","),
                    r.destination_ports.join(",")
                );
                for (side, original, expanded) in [
                    ("source", &r.source, &r.expanded_source),
                    ("destination", &r.destination, &r.expanded_destination),
                ] {
                    if original != expanded {
                        println!("      {side} expands to {}", expanded.join(", "));
                    }
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
