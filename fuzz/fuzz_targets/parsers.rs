//! Arbitrary bytes as `ld.so.cache` and as a stamp record (`checks::parsers`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use shrinkwrap_fuzz::checks;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = checks::parsers(data) {
        panic!("invariant broken: {broken}");
    }
});
