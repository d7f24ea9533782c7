//! Clients inside member accounts: AssumeRole into `arn:<partition>:iam::<id>:role/<roleName>` from the
//! management account's credentials, with the session cached until shortly before it expires
//! (one AssumeRole per account per expiry window, not per call).
//!
//! Only the credentials provider is kept per account (its identity-cache partition holds the
//! session); SDK clients are built per reconcile, as a pair of clients per account for 1,000 accounts
//! would stay in memory for nothing between resyncs.

use super::cloudtrail::{Buckets, SdkBuckets};
use super::error::MemberAccessError;
use super::iam::{Contacts, Iam, SdkContacts, SdkIam};
use super::security::{AccountControls, SdkControls};
use super::security_services::{SdkSecurityServices, SecurityServices};
use super::{AwsError, CallRecorder};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{
    ProvideCredentials, SharedCredentialsProvider, error::CredentialsError, future,
};
use std::collections::HashMap;
use std::sync::Arc;

/// The session name of the operator's member-account role sessions, as CloudTrail shows it.
pub const MEMBER_SESSION_NAME: &str = "landing-zone-operator";

/// One account's clients.
#[derive(Clone)]
pub struct AccountClients {
    pub iam: Arc<dyn Iam>,
    pub contacts: Arc<dyn Contacts>,
    /// The security baseline's controls (S3 Control, EC2 and Config per region, the support role).
    pub controls: Arc<dyn AccountControls>,
    /// S3 in the account (a baseline's AWS Config delivery bucket).
    pub buckets: Arc<dyn Buckets>,
    /// GuardDuty, Security Hub and IAM Access Analyzer in the account.
    pub services: Arc<dyn SecurityServices>,
}

/// Clients inside an account (a port, so tests can stand in for member accounts).
pub trait Members: Send + Sync {
    /// Clients in `account_id` through its access role; the management account's own clients
    /// when `account_id` is `None` or the management account.
    fn clients(
        &self,
        account_id: Option<&str>,
        management_account_id: Option<&str>,
        partition: &str,
        role_name: &str,
    ) -> AccountClients;

    /// Drops the session kept for `account_id`: AWS said it expired, so the next clients assume
    /// the role again.
    fn forget(&self, _account_id: &str) {}
}

/// Hands out clients per account; the SDK's identity cache keeps each assumed session until
/// shortly before expiry.
pub struct MemberAccess {
    base: aws_config::SdkConfig,
    recorder: CallRecorder,
    sts: aws_sdk_sts::Client,
    management: AccountClients,
    sessions: std::sync::Mutex<HashMap<(String, String), SharedCredentialsProvider>>,
}

#[derive(Debug)]
struct AssumeRole {
    sts: aws_sdk_sts::Client,
    role_arn: String,
}

impl ProvideCredentials for AssumeRole {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let out = self
                .sts
                .assume_role()
                .role_arn(&self.role_arn)
                .role_session_name(MEMBER_SESSION_NAME)
                .duration_seconds(3600)
                .send()
                .await
                .map_err(|e| {
                    CredentialsError::provider_error(MemberAccessError {
                        role_arn: self.role_arn.clone(),
                        cause: AwsError::from_sdk("sts", "AssumeRole", e),
                    })
                })?;
            let c = out.credentials().ok_or_else(|| {
                CredentialsError::provider_error("AssumeRole returned no credentials")
            })?;
            Ok(Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                Some(c.session_token().to_string()),
                std::time::SystemTime::try_from(*c.expiration()).ok(),
                "landing-zone-assume-role",
            ))
        })
    }
}

fn clients(config: &aws_config::SdkConfig, recorder: &CallRecorder) -> AccountClients {
    let iam = aws_sdk_iam::config::Builder::from(config)
        .interceptor(recorder.clone())
        .retry_classifier(super::pacing::RetryConcurrentModification)
        .build();
    let account = aws_sdk_account::config::Builder::from(config)
        .interceptor(recorder.clone())
        .build();
    // Path-style addressing when an endpoint is set: emulators do not resolve bucket host names.
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .interceptor(recorder.clone())
        .force_path_style(config.endpoint_url().is_some())
        .build();
    let iam = aws_sdk_iam::Client::from_conf(iam);
    let region = config
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "us-east-1".into());
    AccountClients {
        controls: Arc::new(SdkControls::new(config, recorder, iam.clone())),
        services: Arc::new(SdkSecurityServices::new(config, recorder)),
        iam: Arc::new(SdkIam::new(iam)),
        contacts: Arc::new(SdkContacts::new(aws_sdk_account::Client::from_conf(
            account,
        ))),
        buckets: Arc::new(SdkBuckets::new(aws_sdk_s3::Client::from_conf(s3), region)),
    }
}

impl MemberAccess {
    pub(super) fn new(base: aws_config::SdkConfig, recorder: CallRecorder) -> Self {
        let sts = aws_sdk_sts::config::Builder::from(&base)
            .interceptor(recorder.clone())
            .build();
        Self {
            management: clients(&base, &recorder),
            sts: aws_sdk_sts::Client::from_conf(sts),
            base,
            recorder,
            sessions: Default::default(),
        }
    }
}

impl Members for MemberAccess {
    fn forget(&self, account_id: &str) {
        self.sessions
            .lock()
            .expect("not poisoned")
            .retain(|(id, _), _| id != account_id);
    }

    fn clients(
        &self,
        account_id: Option<&str>,
        management_account_id: Option<&str>,
        partition: &str,
        role_name: &str,
    ) -> AccountClients {
        let Some(id) = account_id.filter(|id| Some(*id) != management_account_id) else {
            return self.management.clone();
        };
        let key = (id.to_string(), role_name.to_string());
        let provider = self
            .sessions
            .lock()
            .expect("not poisoned")
            .entry(key)
            .or_insert_with(|| {
                SharedCredentialsProvider::new(AssumeRole {
                    sts: self.sts.clone(),
                    role_arn: format!("arn:{partition}:iam::{id}:role/{role_name}"),
                })
            })
            .clone();
        let config = self
            .base
            .to_builder()
            .credentials_provider(provider)
            .build();
        clients(&config, &self.recorder.for_account(id))
    }
}
