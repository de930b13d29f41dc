//! Programs built elsewhere (`shrinkwrap adopt`): their libraries found in a pool of
//! directories (store paths, a whole store, any directory), one chosen per name with one
//! glibc for the closure, and the choices pinned in a lock file.

pub mod cache;
pub mod choose;
pub mod index;
pub mod pins;
