//! The swarmsync command line.
#![forbid(unsafe_code)]

mod args;
mod commands;
mod exit;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::args::{Cli, Command, KeyCommand};
use crate::exit::Failure;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {failure}");
            failure.exit_code()
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Key(KeyCommand::New { json }) => commands::key::new(json),
        Command::Key(KeyCommand::Info { key, json }) => commands::key::info(&key, json),
        Command::Sync(args) => commands::sync::run(&args),
        Command::Status(args) => commands::status::run(&args),
        Command::Scan(args) => commands::scan::run(&args),
        Command::Tracker(args) => commands::tracker::run(&args),
        Command::Relay(args) => commands::relay::run(&args),
    }
}

/// Logs go to stderr; `RUST_LOG` wins over `-v`.
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}
