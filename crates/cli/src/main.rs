//! The swarmsync command line.
#![forbid(unsafe_code)]
fn main() {}
