//! Reporting: turning closures (and later, stamping results) into text for people and JSON for
//! programs.

pub mod check;
pub mod explain;
pub mod fixup;
pub mod stamp;
pub mod tree;
