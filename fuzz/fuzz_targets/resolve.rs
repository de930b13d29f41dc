//! Arbitrary bytes as an ELF file beside a small store, resolved (`checks::Store::resolve`).
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use shrinkwrap_fuzz::checks::Store;

thread_local! {
    static STORE: RefCell<Store> = RefCell::new(Store::new());
}

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = STORE.with(|s| s.borrow_mut().resolve(data)) {
        panic!("invariant broken: {broken}");
    }
});
