//! The root user's credentials, centrally: a root session (`sts:AssumeRoot`) with AWS's
//! root-task policies reads them and removes them (IAM User Guide, "Centrally manage root access
//! for member accounts").

use crate::aws::{AwsError, AwsPorts, AwsResult, Service};
use aws_sdk_iam as iam;

/// AWS's task policies for root sessions.
pub const AUDIT_TASK: &str = "root-task/IAMAuditRootUserCredentials";
pub const DELETE_TASK: &str = "root-task/IAMDeleteRootUserCredentials";

/// The root user's credentials as a root session sees them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RootCredentials {
    pub password: bool,
    pub access_keys: Vec<String>,
    pub mfa_devices: Vec<String>,
    pub signing_certificates: Vec<String>,
}

impl RootCredentials {
    pub fn is_empty(&self) -> bool {
        !self.password
            && self.access_keys.is_empty()
            && self.mfa_devices.is_empty()
            && self.signing_certificates.is_empty()
    }

    /// What deleting them takes, readable.
    pub fn deletions(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.password {
            out.push("delete the root user's password".to_string());
        }
        out.extend(self.access_keys.iter().map(|k| format!("delete root access key {k}")));
        out.extend(
            self.signing_certificates
                .iter()
                .map(|c| format!("delete root signing certificate {c}")),
        );
        out.extend(self.mfa_devices.iter().map(|d| format!("deactivate root MFA device {d}")));
        out
    }
}

/// IAM in `account` as its root user, limited to one task policy.
pub async fn root_session(
    aws: &AwsPorts,
    account: &str,
    partition: &str,
    task: &str,
) -> AwsResult<iam::Client> {
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(&aws.sdk_config)
            .interceptor(aws.recorder.clone())
            .build(),
    );
    let request = sts
        .assume_root()
        .target_principal(account)
        .task_policy_arn(
            aws_sdk_sts::types::PolicyDescriptorType::builder()
                .arn(format!("arn:{partition}:iam::aws:policy/{task}"))
                .build(),
        )
        .duration_seconds(900)
        .send();
    let out = STS.send("AssumeRoot", request).await?;
    let c = out.credentials().ok_or_else(|| {
        AwsError::new("sts", "AssumeRoot", "InvalidResponse", "no credentials in the answer")
    })?;
    let creds = aws_credential_types::Credentials::new(
        c.access_key_id(),
        c.secret_access_key(),
        Some(c.session_token().to_string()),
        None,
        "landing-zone-operator-root-session",
    );
    Ok(iam::Client::from_conf(
        iam::config::Builder::from(&aws.sdk_config)
            .interceptor(aws.recorder.for_account(account))
            .credentials_provider(creds)
            .build(),
    ))
}

/// IAM in a member account's root session: what the task policy of AssumeRoot allows, not the
/// operator's own IAM policy (docs/iam-policy.json leaves these calls out).
const ROOT_SESSION: Service = Service("iam");
const STS: Service = Service("sts");

/// Reads the root user's credentials (the audit and delete task policies both allow it).
pub async fn audit(iam: &iam::Client) -> AwsResult<RootCredentials> {
    let password = ROOT_SESSION
        .find("GetLoginProfile", iam.get_login_profile().send())
        .await?
        .is_some();
    let keys = ROOT_SESSION.send("ListAccessKeys", iam.list_access_keys().send()).await?;
    let mfa = ROOT_SESSION.send("ListMFADevices", iam.list_mfa_devices().send()).await?;
    let certs = ROOT_SESSION.send("ListSigningCertificates", iam
        .list_signing_certificates().send()).await?;
    Ok(RootCredentials {
        password,
        access_keys: keys
            .access_key_metadata()
            .iter()
            .filter_map(|k| k.access_key_id().map(str::to_string))
            .collect(),
        mfa_devices: mfa.mfa_devices().iter().map(|d| d.serial_number().to_string()).collect(),
        signing_certificates: certs
            .certificates()
            .iter()
            .map(|c| c.certificate_id().to_string())
            .collect(),
    })
}

/// Removes every root credential found; the number of calls made.
pub async fn delete(iam: &iam::Client, found: &RootCredentials) -> AwsResult<usize> {
    let mut writes = 0;
    if found.password {
        ROOT_SESSION.send("DeleteLoginProfile", iam.delete_login_profile().send()).await?;
        writes += 1;
    }
    for k in &found.access_keys {
        ROOT_SESSION.send("DeleteAccessKey", iam.delete_access_key()
            .access_key_id(k).send()).await?;
        writes += 1;
    }
    for c in &found.signing_certificates {
        ROOT_SESSION.send("DeleteSigningCertificate", iam.delete_signing_certificate()
            .certificate_id(c).send()).await?;
        writes += 1;
    }
    for d in &found.mfa_devices {
        ROOT_SESSION.send("DeactivateMFADevice", iam.deactivate_mfa_device()
            .serial_number(d).send()).await?;
        writes += 1;
    }
    Ok(writes)
}
