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
                    "the request to AWS timed out",
                )
            },
            SdkError::DispatchFailure(f) => Self {
                retryable: true,
                ..Self::new(
                    service,
                    operation,
                    "Unreachable",
                    format!("AWS could not be reached: {f:?}"),
                )
            },
            SdkError::ResponseError(_) => Self {
                retryable: true,
                ..Self::new(
                    service,
                    operation,
                    "BadResponse",
                    format!(
                        "AWS sent a response that could not be read: {}",
                        error_chain(&err)
                    ),
                )
            },
            _ => {
                let chain = error_chain(&err);
                // Credentials for a member account come from AssumeRole: right after CreateAccount
                // the role is not assumable for a while, which passes.
                if chain.contains("AssumeRole") {
                    Self {
                        retryable: true,
                        ..Self::new(service, operation, "AssumeRoleFailed", chain)
                    }
                } else {
                    Self::new(service, operation, "InvalidRequest", chain)
                }
            }
        }
    }
}

fn is_retryable_code(code: &str) -> bool {
    RETRYABLE_CODES.contains(&code)
}

fn error_chain(err: &dyn std::error::Error) -> String {
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
