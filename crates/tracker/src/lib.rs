//! The tracker server: a thin tokio shell around `tracker_proto`.
#![forbid(unsafe_code)]
