//! Errors of injectors; messages read after "failed to ...".

#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    /// The experiment asks for something that cannot be resolved; nothing was changed.
    #[error("{0}")]
    Config(String),
    /// Targets could not be resolved; nothing was changed.
    #[error("{message}")]
    Targets {
        message: String,
        hint: Option<String>,
    },
    /// Applying or reverting failed part way.
    #[error("{0}")]
    Action(String),
}
