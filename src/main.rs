//! The `shrinkwrap` command: parse arguments and dispatch. See `shrinkwrap --help`.

use std::process::ExitCode;

use clap::Parser;
use shrinkwrap::cli::{Cli, Command};
use shrinkwrap::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Tree(args) => commands::tree::run(&args),
        Command::Stamp(args) => commands::stamp::run(&args),
        Command::Fixup(args) => commands::fixup::run(&args),
        Command::Check(args) => commands::check::run(&args),
        Command::Unwrap(args) => commands::unwrap::run(&args),
        Command::Adopt(args) => commands::adopt::run(&args),
        Command::Explain(args) => commands::explain::run(&args),
    };
    result.exit_code()
}
