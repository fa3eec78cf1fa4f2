//! One module per subcommand.

pub(crate) mod key;
pub(crate) mod sync;
