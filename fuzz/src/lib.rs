//! The fuzz targets' shared work (see `checks.rs`).

pub mod checks;
