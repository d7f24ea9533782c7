//! Organization policies in AWS Organizations, over the SDK client the ports share (recorded,
//! paced and fenced like every other call). Domain types only leave this file.

use crate::aws::{AwsError, AwsResult, Service};
use aws_sdk_organizations as orgs;
use orgs::types::{ConstraintViolationExceptionReason, PolicyType as SdkPolicyType};

const SERVICE: &str = "organizations";

/// A policy as AWS describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyInfo {
    pub id: String,
    pub arn: String,
    pub name: String,
    pub description: String,
    /// FullAWSAccess and the like: AWS's own, never written by the operator.
    pub aws_managed: bool,
    /// The document as AWS stores it (absent in list answers).
    pub content: Option<String>,
}

pub struct Policies {
    client: orgs::Client,
}

const CALLS: Service = Service(SERVICE);

/// A ConstraintViolationException's reason (e.g. POLICY_NUMBER_LIMIT_EXCEEDED) as text.
fn reason(r: Option<&ConstraintViolationExceptionReason>) -> Option<String> {
    r.map(|r| r.as_str().to_string())
}

fn sdk_type(aws_name: &str) -> SdkPolicyType {
    SdkPolicyType::from(aws_name)
}

fn summary(p: &orgs::types::PolicySummary) -> PolicyInfo {
    PolicyInfo {
        id: p.id().unwrap_or_default().to_string(),
        arn: p.arn().unwrap_or_default().to_string(),
        name: p.name().unwrap_or_default().to_string(),
        description: p.description().unwrap_or_default().to_string(),
        aws_managed: p.aws_managed(),
        content: None,
    }
}

impl Policies {
    pub fn new(client: orgs::Client) -> Self {
        Self { client }
    }

    /// The policy with its document; `None` when it no longer exists.
    pub async fn describe(&self, id: &str) -> AwsResult<Option<PolicyInfo>> {
        let request = self.client.describe_policy().policy_id(id).send();
        let Some(out) = CALLS.find("DescribePolicy", request).await? else {
            return Ok(None);
        };
        Ok(out.policy().map(|p| {
            let mut info = p
                .policy_summary()
                .map(summary)
                .unwrap_or_else(|| PolicyInfo {
                    id: id.to_string(),
                    arn: String::new(),
                    name: String::new(),
                    description: String::new(),
                    aws_managed: false,
                    content: None,
                });
            info.content = p.content().map(str::to_string);
            info
        }))
    }

    /// Every policy of a type (all pages), without documents.
    pub async fn list(&self, policy_type: &str) -> AwsResult<Vec<PolicyInfo>> {
        let out = CALLS
        .pages("ListPolicies", self
            .client
            .list_policies()
            .filter(sdk_type(policy_type))
            .max_results(20)
            .into_paginator()
            .send(), |page, out| {
            out.extend(page.policies().iter().map(summary));
        })
        .await?;
        Ok(out)
    }

    /// The roots, OUs and accounts a policy is attached to (all pages).
    pub async fn targets(&self, policy_id: &str) -> AwsResult<Vec<String>> {
        let out = CALLS
        .pages("ListTargetsForPolicy", self
            .client
            .list_targets_for_policy()
            .policy_id(policy_id)
            .max_results(20)
            .into_paginator()
            .send(), |page, out| {
            out.extend(
                page.targets()
                    .iter()
                    .filter_map(|t| t.target_id().map(str::to_string)),
            );
        })
        .await?;
        Ok(out)
    }

    /// The policies of a type attached directly to one target (all pages): what fills its slots.
    pub async fn attached_to(&self, target_id: &str, policy_type: &str) -> AwsResult<Vec<PolicyInfo>> {
        let out = CALLS
        .pages("ListPoliciesForTarget", self
            .client
            .list_policies_for_target()
            .target_id(target_id)
            .filter(sdk_type(policy_type))
            .max_results(20)
            .into_paginator()
            .send(), |page, out| {
            out.extend(page.policies().iter().map(summary));
        })
        .await?;
        Ok(out)
    }

    pub async fn create(
        &self,
        policy_type: &str,
        name: &str,
        description: &str,
        content: &str,
        tags: &crate::api::Tags,
    ) -> AwsResult<PolicyInfo> {
        let mut req = self
            .client
            .create_policy()
            .r#type(sdk_type(policy_type))
            .name(name)
            .description(description)
            .content(content);
        for (k, v) in tags {
            req = req.tags(
                orgs::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .expect("key and value set"),
            );
        }
        let out = CALLS
            .send_with_reason("CreatePolicy", req.send(), |e| match e {
                orgs::operation::create_policy::CreatePolicyError::ConstraintViolationException(c) => reason(c.reason()),
                _ => None,
            })
            .await?;
        let p = out.policy().ok_or_else(|| {
            AwsError::new(SERVICE, "CreatePolicy", "InvalidResponse", "no policy in the answer")
        })?;
        let mut info = p.policy_summary().map(summary).ok_or_else(|| {
            AwsError::new(SERVICE, "CreatePolicy", "InvalidResponse", "no policy summary in the answer")
        })?;
        info.content = p.content().map(str::to_string);
        Ok(info)
    }

    /// Changes what is given (name, description, document).
    pub async fn update(
        &self,
        id: &str,
        name: Option<&str>,
        description: Option<&str>,
        content: Option<&str>,
    ) -> AwsResult<()> {
        let request = self.client
            .update_policy()
            .policy_id(id)
            .set_name(name.map(str::to_string))
            .set_description(description.map(str::to_string))
            .set_content(content.map(str::to_string))
            .send();
        CALLS
            .send_with_reason("UpdatePolicy", request, |e| match e {
                orgs::operation::update_policy::UpdatePolicyError::ConstraintViolationException(c) => reason(c.reason()),
                _ => None,
            })
            .await?;
        Ok(())
    }

    pub async fn attach(&self, id: &str, target_id: &str) -> AwsResult<()> {
        let request = self.client
            .attach_policy()
            .policy_id(id)
            .target_id(target_id)
            .send();
        CALLS
            .send_with_reason("AttachPolicy", request, |e| match e {
                orgs::operation::attach_policy::AttachPolicyError::ConstraintViolationException(c) => reason(c.reason()),
                _ => None,
            })
            .await?;
        Ok(())
    }

    pub async fn detach(&self, id: &str, target_id: &str) -> AwsResult<()> {
        let request = self.client
            .detach_policy()
            .policy_id(id)
            .target_id(target_id)
            .send();
        CALLS
            .send_with_reason("DetachPolicy", request, |e| match e {
                orgs::operation::detach_policy::DetachPolicyError::ConstraintViolationException(c) => reason(c.reason()),
                _ => None,
            })
            .await?;
        Ok(())
    }

    pub async fn delete(&self, id: &str) -> AwsResult<()> {
        CALLS.send("DeletePolicy", self.client
            .delete_policy()
            .policy_id(id)
            .send()).await?;
        Ok(())
    }

    pub async fn enable_type(&self, root_id: &str, policy_type: &str) -> AwsResult<()> {
        CALLS.send("EnablePolicyType", self.client
            .enable_policy_type()
            .root_id(root_id)
            .policy_type(sdk_type(policy_type))
            .send()).await?;
        Ok(())
    }
}
