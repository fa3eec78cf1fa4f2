//! `swarmsync tracker --listen ADDR`. Being written in this session.

use crate::args::TrackerArgs;
use crate::exit::Failure;

pub(crate) fn run(args: &TrackerArgs) -> Result<(), Failure> {
    Err(Failure::Runtime(anyhow::anyhow!(
        "the tracker server on {} is not built yet",
        args.listen
    )))
}
