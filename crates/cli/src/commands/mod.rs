//! One module per subcommand.

pub(crate) mod key;
pub(crate) mod progress;
pub(crate) mod relay;
pub(crate) mod scan;
mod serve;
pub(crate) mod status;
pub(crate) mod sync;
pub(crate) mod tracker;
