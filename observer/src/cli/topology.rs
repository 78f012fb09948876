//! `observer topology import`: a customer's network from Azure's own
//! exports (ARM templates, `az ... -o json`, effective routes and NSGs) to
//! one commented topology TOML (`crate::topology::import`).

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::topology::{
    Environment,
    import::{self, Options},
};

#[derive(Debug, Args)]
pub struct TopologyArgs {
    #[command(subcommand)]
    command: TopologyCommand,
}

#[derive(Debug, Subcommand)]
enum TopologyCommand {
    /// Read Azure's exports of a network (any mix and order): ARM templates
    /// ("Export template", `az group export`, `az bicep build`), `az ... -o
    /// json` of VNets, NSGs, route tables, private endpoints, private DNS
    /// zones with their A records and VNet links, gateways, App Service
    /// Environments and web apps, and `az network nic
    /// show-effective-route-table` / `list-effective-nsg`. Writes one
    /// topology TOML that route, verify, nsg, check, classify and lab run
    /// accept; each item is commented with the resource it came from.
    Import(ImportArgs),
}

#[derive(Debug, Args)]
struct ImportArgs {
    /// Where the topology TOML goes.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Microsoft's weekly service-tags JSON (ServiceTags_Public_*.json),
    /// named in the TOML relative to it.
    #[arg(long, value_name = "FILE")]
    service_tags: Option<PathBuf>,
    /// Add endpoints and scenario traffic for every dependency, backend,
    /// private endpoint and on-premises prefix, for `observer lab run`.
    #[arg(long)]
    lab: bool,
    /// Topology name (default: the ASE's, the web app's or the VNet's name).
    #[arg(long)]
    name: Option<String>,
    /// The environment, when the inputs do not say it (no ASE or web app)
    /// or say it wrong: asev1, asev2-external, asev2-ilb, asev3, multi-tenant.
    #[arg(long, value_parser = environment)]
    environment: Option<Environment>,
    /// The exported JSON files.
    #[arg(value_name = "INPUT", required = true)]
    inputs: Vec<PathBuf>,
}

fn environment(text: &str) -> Result<Environment, String> {
    [
        Environment::Asev1,
        Environment::Asev2External,
        Environment::Asev2Ilb,
        Environment::Asev3,
        Environment::MultiTenant,
    ]
    .into_iter()
    .find(|e| e.as_str() == text)
    .ok_or_else(|| {
        format!("`{text}` is not one of asev1, asev2-external, asev2-ilb, asev3, multi-tenant")
    })
}

impl TopologyArgs {
    pub fn execute(&self) -> anyhow::Result<ExitCode> {
        match &self.command {
            TopologyCommand::Import(args) => args.execute(),
        }
    }
}

impl ImportArgs {
    fn execute(&self) -> anyhow::Result<ExitCode> {
        let options = Options {
            name: self.name.clone(),
            environment: self.environment,
            service_tags: self.service_tags.clone(),
            lab: self.lab,
        };
        let imported = import::import(&self.inputs, &self.out, &options)?;
        let topology = import::save(&imported, &self.out)
            .with_context(|| format!("writing {}", self.out.display()))?;
        let rules: usize = topology.nsgs.iter().map(|n| n.rules.len()).sum();
        println!(
            "wrote {}: {} ({}), VNet {} with {} subnets, {} NSGs ({rules} rules), {} routes, {} private endpoints, {} backends{}",
            self.out.display(),
            topology.name,
            topology.environment.as_str(),
            topology.vnet.name,
            topology.vnet.subnets.len(),
            topology.nsgs.len(),
            topology.route_table.routes.len(),
            topology.private_endpoints.len(),
            topology.backends.len(),
            if self.lab {
                format!(
                    ", {} lab flows",
                    topology.lab.traffic.len() + topology.lab.inbound.len()
                )
            } else {
                String::new()
            }
        );
        print!("{}", imported.summary);
        Ok(ExitCode::SUCCESS)
    }
}
