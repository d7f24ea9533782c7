//! AWS errors, classified once: retryable (back off and try again) or terminal (needs a human).

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Error codes AWS returns for conditions that pass on their own.
const RETRYABLE_CODES: &[&str] = &[
    "TooManyRequestsException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "ConcurrentModificationException",
    "ConcurrentModification",
    "EntityTemporarilyUnmodifiable",
    "ServiceException",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalServerError",
    "ServiceFailure",
];

/// Codes that mean "the thing asked for does not exist".
const NOT_FOUND_CODES: &[&str] = &[
    "AccountNotFoundException",
    "OrganizationalUnitNotFoundException",
    "ParentNotFoundException",
    "TargetNotFoundException",
    "CreateAccountStatusNotFoundException",
    "NoSuchEntity",
    "NotFoundException",
    "TrailNotFoundException",
    // SNS (a topic that does not exist).
    "NotFound",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{service} {operation}: {code}: {message}")]
pub struct AwsError {
    pub service: &'static str,
    pub operation: &'static str,
    /// The AWS error code, or `Unreachable` / `Timeout` / `InvalidRequest` for failures without one.
    pub code: String,
    pub message: String,
    pub retryable: bool,
}

impl AwsError {
    pub fn new(
        service: &'static str,
        operation: &'static str,
        code: &str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            service,
            operation,
            code: code.to_string(),
            message: message.into(),
            retryable: is_retryable_code(code),
        }
    }

    pub fn is_not_found(&self) -> bool {
        NOT_FOUND_CODES.contains(&self.code.as_str())
    }

    /// The temporary credentials of an assumed role are no longer valid (STS sessions can end
    /// before their stated expiry, e.g. when the role's sessions are revoked).
    pub fn is_expired_session(&self) -> bool {
        matches!(
            self.code.as_str(),
            "ExpiredToken" | "ExpiredTokenException" | "RequestExpired"
        )
    }

    pub fn is_throttle(&self) -> bool {
        matches!(
            self.code.as_str(),
            "TooManyRequestsException"
                | "ThrottlingException"
                | "Throttling"
                | "RequestLimitExceeded"
        )
    }

    /// Classifies any SDK error by its AWS error code and transport failure kind.
    pub fn from_sdk<E>(
        service: &'static str,
        operation: &'static str,
        err: SdkError<E, HttpResponse>,
    ) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match &err {
            SdkError::ServiceError(ctx) => {
                let e = ctx.err();
                let raw = ctx.raw();
                let html = raw.body().bytes().is_some_and(|b| {
                    let head = String::from_utf8_lossy(&b[..b.len().min(64)]).to_ascii_lowercase();
                    let head = head.trim_start();
                    head.starts_with("<!doctype html") || head.starts_with("<html")
                });
                // AWS always answers an error with a code; an HTML page without one comes from an
                // endpoint that does not implement the operation (e.g. an emulator). A success
                // status whose body cannot be read is a response this SDK does not understand.
                let fallback = if html {
                    "Unimplemented"
                } else if raw.status().is_success() {
                    "BadResponse"
                } else {
                    "Unknown"
                };
                let code = e.code().unwrap_or(fallback);
                let message = e
                    .message()
                    .map(str::to_string)
                    .unwrap_or_else(|| e.to_string());
                let mut out = Self::new(service, operation, code, message);
                // A 5xx without a known code (e.g. an emulator's unimplemented call) is still retryable.
                if raw.status().is_server_error() && code != "Unimplemented" {
                    out.retryable = true;
                }
                out
            }
            SdkError::TimeoutError(_) => Self {
                retryable: true,
                ..Self::new(
                    service,
                    operation,
                    "Timeout",
                    format!("AWS did not answer {operation} in time"),
                )
            },
            SdkError::DispatchFailure(f) => {
                // The SDK reports a failed credentials provider (AssumeRole into a member account)
                // and our own pacing as dispatch failures: find them in the chain first.
                if let Some(m) = find_in_chain::<MemberAccessError>(&err) {
                    return m.to_aws_error(service, operation);
                }
                if let Some(f) = find_in_chain::<super::pacing::Fenced>(&err) {
                    return Self::new(service, operation, NOT_LEADER, f.to_string());
                }
                if let Some(p) = find_in_chain::<super::pacing::PacedTooLong>(&err) {
                    return Self {
                        retryable: true,
                        ..Self::new(service, operation, "Paced", p.to_string())
                    };
                }
                let what = if f.is_timeout() {
                    "the connection timed out"
                } else if f.is_io() {
                    "the connection failed"
                } else {
                    "the request could not be sent"
                };
                Self {
                    retryable: true,
                    ..Self::new(
                        service,
                        operation,
                        "Unreachable",
                        format!(
                            "AWS could not be reached for {operation}: {what} ({})",
                            root_cause(&err)
                        ),
                    )
                }
            }
            SdkError::ResponseError(_) => Self {
                retryable: true,
                ..Self::new(
                    service,
                    operation,
                    "BadResponse",
                    format!(
                        "AWS sent a response to {operation} that could not be read ({})",
                        root_cause(&err)
                    ),
                )
            },
            _ => {
                if let Some(m) = find_in_chain::<MemberAccessError>(&err) {
                    return m.to_aws_error(service, operation);
                }
                Self::new(service, operation, "InvalidRequest", error_chain(&err))
            }
        }
    }
}

/// AssumeRole into a member account failed: the credentials provider's error, which the SDK wraps
/// into the failure of whatever call needed the credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("could not assume {role_arn}: {cause}")]
pub struct MemberAccessError {
    pub role_arn: String,
    pub cause: AwsError,
}

/// Code of an [`AwsError`] for a write this replica did not send: it lost the leader lease.
pub const NOT_LEADER: &str = "NotLeader";

/// Code of an [`AwsError`] that failed because a member account's role could not be assumed;
/// `AwsError::member_access` holds the STS code.
pub const ASSUME_ROLE_FAILED: &str = "AssumeRoleFailed";

impl MemberAccessError {
    fn to_aws_error(&self, service: &'static str, operation: &'static str) -> AwsError {
        AwsError {
            service,
            operation,
            code: ASSUME_ROLE_FAILED.into(),
            message: format!(
                "{operation} needs the role {}, and STS refused it: {} ({})",
                self.role_arn, self.cause.code, self.cause.message
            ),
            // Whether it passes depends on the account's age; the reconcile decides.
            retryable: self.cause.retryable || self.cause.code.contains("AccessDenied"),
        }
    }
}

fn find_in_chain<'a, T: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        cur = e.source();
    }
    None
}

/// The innermost error's text: what actually went wrong, without the SDK's wrappers.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(s) = cur.source() {
        cur = s;
    }
    cur.to_string()
}

fn is_retryable_code(code: &str) -> bool {
    RETRYABLE_CODES.contains(&code)
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_table() {
        // (code, retryable, not_found, reason)
        let table = [
            (
                "TooManyRequestsException",
                true,
                false,
                "Organizations throttling",
            ),
            (
                "ConcurrentModificationException",
                true,
                false,
                "another change in flight",
            ),
            ("ThrottlingException", true, false, "IAM/STS throttling"),
            (
                "AccessDeniedException",
                false,
                false,
                "needs a human: permissions",
            ),
            (
                "ConstraintViolationException",
                false,
                false,
                "quota or org constraint",
            ),
            (
                "DuplicateOrganizationalUnitException",
                false,
                false,
                "name clash",
            ),
            ("AccountNotFoundException", false, true, "gone"),
            ("NoSuchEntity", false, true, "IAM not found"),
        ];
        for (code, retryable, not_found, reason) in table {
            let e = AwsError::new("organizations", "Op", code, "m");
            assert_eq!(e.retryable, retryable, "{code}: {reason}");
            assert_eq!(e.is_not_found(), not_found, "{code}: {reason}");
        }
    }
}
