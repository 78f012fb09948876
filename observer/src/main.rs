//! The `observer` binary: parse the command line, set up logging, run.
use std::process::ExitCode;

use clap::Parser as _;
use observer::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.init_logging();
    match cli.command.execute(&cli.global) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
