//! `observer check`: the static audit (`crate::audit`) of a topology before
//! any traffic: one line per problem with what breaks and the fix; exit 1
//! when the environment would not work.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::Args;

use crate::{audit::Audit, catalog::Catalog, topology::Topology};

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The topology file.
    #[arg(long, value_name = "FILE")]
    topology: PathBuf,
    /// Extra dependency catalogs (same shape as the built-in one).
    #[arg(long, value_name = "FILE")]
    catalog: Vec<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

impl CheckArgs {
    pub fn execute(&self) -> anyhow::Result<ExitCode> {
        let topology = Topology::load(&self.topology)?;
        let extra: Vec<&Path> = self.catalog.iter().map(PathBuf::as_path).collect();
        let catalog = Catalog::load(topology.cloud, &extra).map_err(anyhow::Error::msg)?;
        let audit = Audit::run(&topology, &catalog);
        if self.json {
            println!("{}", serde_json::to_string_pretty(&audit)?);
        } else {
            print!("{audit}");
        }
        Ok(if audit.ase_works() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}
