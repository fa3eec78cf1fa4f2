//! Shared helpers for the benchmark binaries.
#![forbid(unsafe_code)]
