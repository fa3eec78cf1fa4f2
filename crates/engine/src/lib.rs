//! swarmsync's sync decisions, apart from every kind of I/O.
//!
//! # Brief overview
//!
//! - [`decide`]: given what we hold for a path and a version a peer announced, keep
//!   ours, take theirs, or resolve a conflict deterministically (the same way on
//!   every peer) without losing either version.
//! - [`folder`]: one folder's plan: verifies records, decides per path, tracks what
//!   is needed and hands the daemon [`folder::Action`]s to carry out.
//! - [`schedule`]: which blocks of the needed files to ask which peer for: rarest
//!   first over every connected peer's availability, a pipeline per peer sized from
//!   its measured rate, and an endgame that asks a second peer for the last blocks.
//!
//! **Invariant:** no sockets, clock, disk or async runtime. Time comes in as an
//! argument (`now`), and every decision is a value the daemon carries out.
#![forbid(unsafe_code)]

pub mod decide;
pub mod folder;
pub mod schedule;

#[cfg(test)]
mod sim;
