//! Exit codes (DESIGN.md §7): 0 clean stop, 2 bad input, 1 runtime failure.

use std::fmt;
use std::process::ExitCode;

/// An error with the exit code it deserves.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The user gave a bad key, path, flag or config: exit 2.
    BadInput(anyhow::Error),
    /// Something failed at run time: exit 1.
    Runtime(anyhow::Error),
}

impl Failure {
    pub(crate) fn exit_code(&self) -> ExitCode {
        match self {
            Self::BadInput(_) => ExitCode::from(2),
            Self::Runtime(_) => ExitCode::from(1),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (Self::BadInput(e) | Self::Runtime(e)) = self;
        // One line: the error and its causes, joined.
        write!(f, "{e:#}")
    }
}

/// Turns any error into a [`Failure`] of the right kind.
pub(crate) trait ResultExt<T> {
    /// The user's input was wrong.
    fn bad_input(self) -> Result<T, Failure>;
    /// The machine or the world failed.
    fn runtime(self) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> ResultExt<T> for Result<T, E> {
    fn bad_input(self) -> Result<T, Failure> {
        self.map_err(|e| Failure::BadInput(e.into()))
    }

    fn runtime(self) -> Result<T, Failure> {
        self.map_err(|e| Failure::Runtime(e.into()))
    }
}
