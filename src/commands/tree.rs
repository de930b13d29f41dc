//! `shrinkwrap tree`: resolve each file and print its closure.

use rayon::prelude::*;

use super::{check_options, print, resolve_options, Outcome};
use crate::cli::TreeArgs;
use crate::report::tree::{self, TreeResult};
use crate::resolve::Resolver;

/// Resolves every FILE (in parallel, sharing one library cache) and prints the closures in
/// the order given. A file that cannot be read is reported on stderr and makes the exit code 1;
/// the others are still printed.
pub fn run(args: &TreeArgs) -> Outcome {
    if let Err(outcome) = check_options(&args.resolve) {
        return outcome;
    }
    let resolver = Resolver::new(resolve_options(&args.resolve));
    let results: Vec<TreeResult> = args
        .files
        .par_iter()
        .map(|f| TreeResult::new(f, resolver.resolve(f)))
        .collect();
    let mut outcome = Outcome::Success;
    for r in &results {
        if let Some(e) = r.error() {
            eprintln!("shrinkwrap: {}: {e}", r.file.display());
            outcome = Outcome::FileFailed;
        }
    }
    if args.json {
        print(&tree::json(&results));
    } else {
        for r in &results {
            print(&tree::human(r));
        }
    }
    outcome
}
