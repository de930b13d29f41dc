//! shrinkwrap: resolve an ELF file's shared-library closure the way glibc's loader does, and
//! (in later stages) stamp it into the file as absolute paths.
//!
//! The modules follow the pipeline: [`elf`] reads files, [`resolve`] computes closures,
//! [`report`] prints them. [`store`] knows what a Nix store path is.

pub mod cli;
pub mod commands;
pub mod elf;
pub mod lock;
pub mod plan;
pub mod pool;
pub mod report;
pub mod resolve;
pub mod store;
pub mod walk;
pub mod write;
