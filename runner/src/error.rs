//! Errors that end a command, and the exit code each one maps to.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CliError {
    /// Bad usage or an input the tool cannot read: exit 2.
    #[error("{0}")]
    Input(String),
    /// The sandbox could not be set up: exit 3 (nothing untrusted ran).
    #[error("{0}")]
    Sandbox(String),
    #[error("cannot write the report: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Input(_) | CliError::Output(_) => 2,
            CliError::Sandbox(_) => 3,
        }
    }

    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

pub type Result<T> = std::result::Result<T, CliError>;
