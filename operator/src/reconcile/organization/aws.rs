//! The Organization's own settings: policy types, trusted access, delegated administrators
//! (Organizations) and centralized root access (IAM), over clients built on the shared config.

use crate::aws::{AwsError, AwsPorts, AwsResult};
use aws_sdk_iam as iam;
use aws_sdk_organizations as orgs;

const SERVICE: &str = "organizations";

fn err<E>(
    operation: &'static str,
) -> impl FnOnce(orgs::error::SdkError<E, orgs::config::http::HttpResponse>) -> AwsError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    move |e| AwsError::from_sdk(SERVICE, operation, e)
}

pub struct Settings {
    orgs: orgs::Client,
    iam: iam::Client,
}

impl Settings {
    pub fn new(aws: &AwsPorts) -> Self {
        let iam = iam::Client::from_conf(
            iam::config::Builder::from(&aws.sdk_config)
                .interceptor(aws.recorder.clone())
                .build(),
        );
        Self {
            orgs: aws.organizations_client.clone(),
            iam,
        }
    }

    /// The feature set: `ALL` or `CONSOLIDATED_BILLING`.
    pub async fn feature_set(&self) -> AwsResult<String> {
        let out = self
            .orgs
            .describe_organization()
            .send()
            .await
            .map_err(err("DescribeOrganization"))?;
        Ok(out
            .organization()
            .and_then(|o| o.feature_set())
            .map(|f| f.as_str().to_string())
            .unwrap_or_default())
    }

    pub async fn enable_policy_type(&self, root: &str, policy_type: &str) -> AwsResult<()> {
        self.orgs
            .enable_policy_type()
            .root_id(root)
            .policy_type(orgs::types::PolicyType::from(policy_type))
            .send()
            .await
            .map_err(err("EnablePolicyType"))?;
        Ok(())
    }

    pub async fn disable_policy_type(&self, root: &str, policy_type: &str) -> AwsResult<()> {
        self.orgs
            .disable_policy_type()
            .root_id(root)
            .policy_type(orgs::types::PolicyType::from(policy_type))
            .send()
            .await
            .map_err(err("DisablePolicyType"))?;
        Ok(())
    }

    pub async fn disable_service_access(&self, principal: &str) -> AwsResult<()> {
        self.orgs
            .disable_aws_service_access()
            .service_principal(principal)
            .send()
            .await
            .map_err(err("DisableAWSServiceAccess"))?;
        Ok(())
    }

    /// `(service principal, account id)` of every delegated administrator.
    pub async fn delegated_administrators(&self) -> AwsResult<Vec<(String, String)>> {
        let mut accounts = Vec::new();
        let mut pages = self
            .orgs
            .list_delegated_administrators()
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(err("ListDelegatedAdministrators"))?;
            accounts.extend(
                page.delegated_administrators()
                    .iter()
                    .filter_map(|a| a.id().map(str::to_string)),
            );
        }
        let mut out = Vec::new();
        for account in accounts {
            let mut pages = self
                .orgs
                .list_delegated_services_for_account()
                .account_id(&account)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(err("ListDelegatedServicesForAccount"))?;
                out.extend(
                    page.delegated_services()
                        .iter()
                        .filter_map(|s| s.service_principal())
                        .map(|s| (s.to_string(), account.clone())),
                );
            }
        }
        out.sort();
        Ok(out)
    }

    pub async fn register(&self, principal: &str, account: &str) -> AwsResult<()> {
        self.orgs
            .register_delegated_administrator()
            .service_principal(principal)
            .account_id(account)
            .send()
            .await
            .map_err(err("RegisterDelegatedAdministrator"))?;
        Ok(())
    }

    pub async fn deregister(&self, principal: &str, account: &str) -> AwsResult<()> {
        self.orgs
            .deregister_delegated_administrator()
            .service_principal(principal)
            .account_id(account)
            .send()
            .await
            .map_err(err("DeregisterDelegatedAdministrator"))?;
        Ok(())
    }

    /// Enabled centralized root-access features (`RootCredentialsManagement`, `RootSessions`).
    pub async fn root_access_features(&self) -> AwsResult<Vec<String>> {
        let out = self
            .iam
            .list_organizations_features()
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("iam", "ListOrganizationsFeatures", e))?;
        let mut features: Vec<String> = out
            .enabled_features()
            .iter()
            .map(|f| f.as_str().to_string())
            .collect();
        features.sort();
        Ok(features)
    }

    pub async fn enable_root_credentials_management(&self) -> AwsResult<()> {
        self.iam
            .enable_organizations_root_credentials_management()
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("iam", "EnableOrganizationsRootCredentialsManagement", e))?;
        Ok(())
    }

    pub async fn enable_root_sessions(&self) -> AwsResult<()> {
        self.iam
            .enable_organizations_root_sessions()
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("iam", "EnableOrganizationsRootSessions", e))?;
        Ok(())
    }
}
