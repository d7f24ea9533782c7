//! Reconcile errors with a stable CamelCase reason: the condition reason, Event reason and metric label.

use crate::aws::AwsError;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Aws(#[from] AwsError),
    /// A referenced resource has no AWS id yet; retried when it has one.
    #[error("waiting for {kind} {name:?}: {why}")]
    WaitingForDependency {
        kind: &'static str,
        name: String,
        why: String,
    },
    /// An AWS concurrency limit is reached (accounts being created or closed): retried later.
    #[error("{message}")]
    Queued { message: String },
    /// The spec cannot be applied as written; a human must change it.
    #[error("{message}")]
    InvalidSpec { message: String },
    /// AWS is in a state the operator must not or cannot change on its own.
    #[error("{message}")]
    Conflict {
        reason: &'static str,
        message: String,
    },
    /// AWS is in a state that passes on its own (eventual consistency, a transient failure
    /// reported in a result rather than as an error code): retried with a short backoff.
    #[error("{message}")]
    Transient {
        reason: &'static str,
        message: String,
    },
}

impl Error {
    pub fn conflict(reason: &'static str, message: impl Into<String>) -> Self {
        Error::Conflict {
            reason,
            message: message.into(),
        }
    }

    pub fn transient(reason: &'static str, message: impl Into<String>) -> Self {
        Error::Transient {
            reason,
            message: message.into(),
        }
    }

    /// The same error, its message led by what was being done (`what: message`).
    pub fn with_context(self, what: impl std::fmt::Display) -> Self {
        match self {
            Error::Aws(mut e) => {
                e.message = format!("{what}: {}", e.message);
                Error::Aws(e)
            }
            Error::Queued { message } => Error::Queued {
                message: format!("{what}: {message}"),
            },
            Error::InvalidSpec { message } => Error::InvalidSpec {
                message: format!("{what}: {message}"),
            },
            Error::Conflict { reason, message } => Error::Conflict {
                reason,
                message: format!("{what}: {message}"),
            },
            Error::Transient { reason, message } => Error::Transient {
                reason,
                message: format!("{what}: {message}"),
            },
            e @ Error::WaitingForDependency { .. } => e,
        }
    }

    /// CamelCase reason for conditions, Events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Aws(e) if e.is_throttle() => "Throttled",
            // Not classified by the account's age (`aws_account::member_error`): assume it passes.
            Error::Aws(e) if e.code == crate::aws::error::ASSUME_ROLE_FAILED => {
                "AccountNotYetAccessible"
            }
            Error::Aws(e) if e.code == "Unreachable" || e.code == "Timeout" => "AwsUnreachable",
            Error::Aws(e) if e.code.contains("AccessDenied") => "AccessDenied",
            Error::Aws(e) if e.retryable => "AwsTransientError",
            Error::Aws(_) => "AwsApiError",
            Error::WaitingForDependency { .. } => "WaitingForDependency",
            Error::Queued { .. } => "Queued",
            Error::InvalidSpec { .. } => "InvalidSpec",
            Error::Conflict { reason, .. } | Error::Transient { reason, .. } => reason,
        }
    }

    /// Retryable errors back off and retry soon; the others wait for a spec change or the slow resync.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Aws(e) => e.retryable,
            Error::WaitingForDependency { .. } | Error::Queued { .. } | Error::Transient { .. } => {
                true
            }
            Error::InvalidSpec { .. } | Error::Conflict { .. } => false,
        }
    }
}
