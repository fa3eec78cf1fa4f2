//! Hooks for the fuzz targets (built with `--cfg fuzzing` only).

pub use crate::testkit::session_pair;
