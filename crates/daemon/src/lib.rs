//! swarmsync's long-running side.
//!
//! # Brief overview
//!
//! For now this crate holds [`state::StateDir`]: where a folder's secret, this
//! device's peer id and (later) the index live, and the rules for creating and
//! reusing them. The folder task that drives the engine, the connection manager and
//! the control API will join it.
#![forbid(unsafe_code)]

pub mod state;
