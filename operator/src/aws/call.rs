//! The one call path of every SDK adapter: a request is sent, its error classified once under its
//! service and operation ([`AwsError::from_sdk`]), pages are followed to the end, and a resource
//! AWS says is not there is `None`. Counting, latency, throttles, pacing and the write fence
//! belong to the clients themselves (every SDK client is built in `aws/mod.rs` with the call
//! recorder and the paced HTTP client), so an adapter is only its requests and its domain types.

use super::{AwsError, AwsResult};
use aws_smithy_async::future::pagination_stream::PaginationStream;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::future::Future;

/// An AWS service as its adapter calls it: `const CALLS: Service = Service("budgets");`.
#[derive(Clone, Copy, Debug)]
pub struct Service(pub &'static str);

impl Service {
    /// Sends a request (`client.op().….send()`), its error classified as `operation`.
    pub async fn send<T, E>(
        self,
        operation: &'static str,
        request: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    ) -> AwsResult<T>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        request
            .await
            .map_err(|e| AwsError::from_sdk(self.0, operation, e))
    }

    /// As [`Service::send`], with "not found" as `None`: any `…NotFoundException` (the JSON
    /// services' `ResourceNotFoundException`, Organizations' `PolicyNotFoundException`, …) or
    /// the query services' `NoSuchEntity`.
    pub async fn find<T, E>(
        self,
        operation: &'static str,
        request: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    ) -> AwsResult<Option<T>>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match self.send(operation, request).await {
            Ok(out) => Ok(Some(out)),
            Err(e) if e.is_not_found() || e.code.ends_with("NotFoundException") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// As [`Service::send`], with the reason AWS gives beside the code leading the message
    /// (Organizations' ConstraintViolationException: the reason, not the code, says which limit).
    pub async fn send_with_reason<T, E>(
        self,
        operation: &'static str,
        request: impl Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        reason: impl FnOnce(&E) -> Option<String>,
    ) -> AwsResult<T>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        request.await.map_err(|e| {
            let why = e.as_service_error().and_then(reason);
            let mut out = AwsError::from_sdk(self.0, operation, e);
            if let Some(r) = why {
                out.message = format!("{r}: {}", out.message);
            }
            out
        })
    }

    /// Every page of a paginated request (`client.op().….into_paginator().send()`), each taken
    /// into the result by `take`; the first failing page fails the whole.
    pub async fn pages<P, T, E>(
        self,
        operation: &'static str,
        mut pages: PaginationStream<Result<P, SdkError<E, HttpResponse>>>,
        mut take: impl FnMut(P, &mut Vec<T>),
    ) -> AwsResult<Vec<T>>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::from_sdk(self.0, operation, e))?;
            take(page, &mut out);
        }
        Ok(out)
    }
}
