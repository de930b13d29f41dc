//! The `shrinkwrap` command: parse arguments and dispatch. See `shrinkwrap --help`.

use std::process::ExitCode;

use clap::Parser;
use shrinkwrap::cli::{Cli, Command};
use shrinkwrap::commands;

fn main() -> ExitCode {
    let cli = Cli::try_parse().unwrap_or_else(|e| {
        if e.kind() == clap::error::ErrorKind::InvalidSubcommand {
            hint_by_hand_helper();
        }
        e.exit()
    });
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

/// The Nix hook's by-hand helper was a shell function named `shrinkwrap` that ran `fixup` on
/// its arguments; it is `shrinkwrapFixup` now, so that `shrinkwrap` is always this binary. A
/// path where a command belongs is most likely an old call: say what replaced it.
fn hint_by_hand_helper() {
    let first = std::env::args_os().nth(1).unwrap_or_default();
    if first.to_string_lossy().contains('/') {
        eprintln!(
            "shrinkwrap: {} is not a command; to stamp paths run `shrinkwrap fixup PATH...`, \
             or in a Nix build the hook's `shrinkwrapFixup PATH...` (formerly the `shrinkwrap` \
             shell function)",
            first.to_string_lossy()
        );
    }
}
