//! The Organization's own settings: policy types, trusted access, delegated administrators
//! (Organizations) and centralized root access (IAM), over clients built on the shared config.

use crate::aws::{AwsPorts, AwsResult, Service};
use aws_sdk_iam as iam;
use aws_sdk_organizations as orgs;

const CALLS: Service = Service("organizations");
const IAM: Service = Service("iam");

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
        let out = CALLS.send("DescribeOrganization", self
            .orgs
            .describe_organization()
            .send()).await?;
        Ok(out
            .organization()
            .and_then(|o| o.feature_set())
            .map(|f| f.as_str().to_string())
            .unwrap_or_default())
    }

    pub async fn enable_policy_type(&self, root: &str, policy_type: &str) -> AwsResult<()> {
        CALLS.send("EnablePolicyType", self.orgs
            .enable_policy_type()
            .root_id(root)
            .policy_type(orgs::types::PolicyType::from(policy_type))
            .send()).await?;
        Ok(())
    }

    pub async fn disable_policy_type(&self, root: &str, policy_type: &str) -> AwsResult<()> {
        CALLS.send("DisablePolicyType", self.orgs
            .disable_policy_type()
            .root_id(root)
            .policy_type(orgs::types::PolicyType::from(policy_type))
            .send()).await?;
        Ok(())
    }

    pub async fn disable_service_access(&self, principal: &str) -> AwsResult<()> {
        CALLS.send("DisableAWSServiceAccess", self.orgs
            .disable_aws_service_access()
            .service_principal(principal)
            .send()).await?;
        Ok(())
    }

    /// `(service principal, account id)` of every delegated administrator.
    pub async fn delegated_administrators(&self) -> AwsResult<Vec<(String, String)>> {
        let pages = self
            .orgs
            .list_delegated_administrators()
            .into_paginator()
            .send();
        let accounts = CALLS
            .pages("ListDelegatedAdministrators", pages, |page, out| {
                out.extend(
                    page.delegated_administrators()
                        .iter()
                        .filter_map(|a| a.id().map(str::to_string)),
                )
            })
            .await?;
        let mut out = Vec::new();
        for account in accounts {
            let pages = self
                .orgs
                .list_delegated_services_for_account()
                .account_id(&account)
                .into_paginator()
                .send();
            let services = CALLS
                .pages("ListDelegatedServicesForAccount", pages, |page, out| {
                    out.extend(
                        page.delegated_services()
                            .iter()
                            .filter_map(|s| s.service_principal())
                            .map(str::to_string),
                    )
                })
                .await?;
            out.extend(services.into_iter().map(|s| (s, account.clone())));
        }
        out.sort();
        Ok(out)
    }

    pub async fn register(&self, principal: &str, account: &str) -> AwsResult<()> {
        CALLS.send("RegisterDelegatedAdministrator", self.orgs
            .register_delegated_administrator()
            .service_principal(principal)
            .account_id(account)
            .send()).await?;
        Ok(())
    }

    pub async fn deregister(&self, principal: &str, account: &str) -> AwsResult<()> {
        CALLS.send("DeregisterDelegatedAdministrator", self.orgs
            .deregister_delegated_administrator()
            .service_principal(principal)
            .account_id(account)
            .send()).await?;
        Ok(())
    }

    /// Enabled centralized root-access features (`RootCredentialsManagement`, `RootSessions`).
    pub async fn root_access_features(&self) -> AwsResult<Vec<String>> {
        let out = IAM.send("ListOrganizationsFeatures", self
            .iam
            .list_organizations_features()
            .send()).await?;
        let mut features: Vec<String> = out
            .enabled_features()
            .iter()
            .map(|f| f.as_str().to_string())
            .collect();
        features.sort();
        Ok(features)
    }

    pub async fn enable_root_credentials_management(&self) -> AwsResult<()> {
        IAM.send("EnableOrganizationsRootCredentialsManagement", self.iam
            .enable_organizations_root_credentials_management()
            .send()).await?;
        Ok(())
    }

    pub async fn enable_root_sessions(&self) -> AwsResult<()> {
        IAM.send("EnableOrganizationsRootSessions", self.iam
            .enable_organizations_root_sessions()
            .send()).await?;
        Ok(())
    }
}
