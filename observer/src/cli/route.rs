//! `observer route`: the effective route Azure picks for a destination, with
//! the candidates it beat (like Network Watcher's next hop).

use std::{net::Ipv4Addr, path::PathBuf, process::ExitCode};

use clap::Args;

use crate::{routes::EffectiveRoutes, topology::Topology};

#[derive(Debug, Args)]
pub struct RouteArgs {
    /// The topology file.
    #[arg(long, value_name = "FILE")]
    topology: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Print the whole effective route table instead of a lookup.
    #[arg(long, conflicts_with = "destinations")]
    table: bool,
    /// Destination addresses (IPv4).
    #[arg(value_name = "DST_IP", required_unless_present = "table")]
    destinations: Vec<Ipv4Addr>,
}

impl RouteArgs {
    pub fn execute(&self) -> anyhow::Result<ExitCode> {
        let topology = Topology::load(&self.topology)?;
        let routes = EffectiveRoutes::build(&topology);
        if self.table {
            if self.json {
                println!("{}", serde_json::to_string_pretty(routes.routes())?);
            } else {
                println!(
                    "Effective routes of subnet {} ({}):",
                    topology.ase_subnet().name,
                    topology.name
                );
                let mut all = routes.routes().to_vec();
                all.sort_by_key(|r| (std::cmp::Reverse(r.prefix.prefix_len()), r.prefix));
                for r in all {
                    println!("  {r}");
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        let decisions: Vec<_> = self
            .destinations
            .iter()
            .map(|d| routes.lookup(*d))
            .collect();
        if self.json {
            println!("{}", serde_json::to_string_pretty(&decisions)?);
        } else {
            for (i, d) in decisions.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                print!("{d}");
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
