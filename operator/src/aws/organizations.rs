//! AWS Organizations: the port (domain types, no SDK types) and its SDK implementation.

use super::{AwsError, AwsResult, Service};
use crate::api::Tags;
use async_trait::async_trait;
use aws_sdk_organizations as orgs;
use std::collections::BTreeSet;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgInfo {
    pub id: String,
    pub arn: String,
    pub management_account_id: String,
}

/// The Organization's root and the policy types enabled on it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RootInfo {
    pub id: String,
    /// Policy type (`SERVICE_CONTROL_POLICY`, …) → status (`ENABLED`, `PENDING_ENABLE`,
    /// `PENDING_DISABLE`); a type not listed is disabled.
    pub policy_types: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OuInfo {
    pub id: String,
    pub arn: String,
    pub name: String,
    pub parent_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountInfo {
    pub id: String,
    pub arn: String,
    pub name: String,
    pub email: String,
    /// ACTIVE, SUSPENDED, PENDING_CLOSURE, …
    pub state: String,
    /// Known once the tree walk has seen the account under a parent.
    pub parent_id: Option<String>,
    /// When it joined the Organization, and whether it was CREATED there or INVITED.
    pub joined: Option<std::time::SystemTime>,
    pub joined_method: Option<String>,
}

/// An account this young may still refuse AssumeRole into its access role: AWS sets the role up
/// after CreateAccount reports SUCCEEDED.
pub const NEW_ACCOUNT_GRACE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

impl AccountInfo {
    /// Created in this Organization less than [`NEW_ACCOUNT_GRACE`] ago (or not known to be older).
    pub fn is_new(&self) -> bool {
        self.joined_method.as_deref() != Some("INVITED")
            && self.joined.is_none_or(|t| {
                t.elapsed().is_ok_and(|age| age < NEW_ACCOUNT_GRACE) || t.elapsed().is_err()
            })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateState {
    InProgress,
    Succeeded,
    Failed,
}

/// The FailureReason of a CreateAccount whose email is already the root email of an account.
pub const EMAIL_ALREADY_EXISTS: &str = "EMAIL_ALREADY_EXISTS";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateAccountStatus {
    pub request_id: String,
    pub account_name: String,
    pub state: CreateState,
    pub account_id: Option<String>,
    /// e.g. EMAIL_ALREADY_EXISTS, ACCOUNT_LIMIT_EXCEEDED.
    pub failure_reason: Option<String>,
    /// When the request ended (AWS's `CompletedTimestamp`; none while in progress).
    pub completed: Option<std::time::SystemTime>,
}

impl CreateAccountStatus {
    /// Failed because the email is taken.
    pub fn email_taken(&self) -> bool {
        self.state == CreateState::Failed
            && self.failure_reason.as_deref() == Some(EMAIL_ALREADY_EXISTS)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAccount {
    pub name: String,
    pub email: String,
    pub role_name: String,
    pub iam_user_access_to_billing: Option<String>,
    pub tags: Tags,
}

/// What an event changed in the Organization snapshot the reconciles share. Tags, policies and
/// everything outside Organizations are read by the reconciles themselves, so they change nothing
/// there; a move, a rename or a new OU is read again by itself (one call, not the whole tree);
/// anything else in Organizations (an OU deleted, an account closed, the settings) reads it all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotChange {
    /// Accounts whose parent to read again.
    pub moved_accounts: BTreeSet<String>,
    /// OUs whose name (and their siblings') to read again.
    pub renamed_ous: BTreeSet<String>,
    /// Parents whose accounts to read again: an account AWS has just created (under the root).
    pub accounts_under: BTreeSet<String>,
    /// Parents whose child OUs to read again: an OU created there (new, so empty: nothing under
    /// it to read).
    pub ous_under: BTreeSet<String>,
    /// The root to read again: the operator enabled or disabled a policy type on it (one call,
    /// ListRoots). Such a change event reads everything: disabling a type detaches its policies.
    pub root: bool,
    pub everything: bool,
}

impl SnapshotChange {
    pub fn of(event: &serde_json::Value) -> Self {
        let detail = &event["detail"];
        if detail["eventSource"] != "organizations.amazonaws.com" {
            return Self::default();
        }
        let param = |k: &str| detail["requestParameters"][k].as_str().map(str::to_string);
        let mut out = Self::default();
        match detail["eventName"].as_str().unwrap_or_default() {
            "TagResource" | "UntagResource" | "AttachPolicy" | "DetachPolicy" | "UpdatePolicy"
            | "DeletePolicy" => {}
            "MoveAccount" => out.moved_accounts.extend(param("accountId")),
            "UpdateOrganizationalUnit" => out.renamed_ous.extend(param("organizationalUnitId")),
            "CreateOrganizationalUnit" => match param("parentId") {
                Some(parent) => out.ous_under = [parent].into(),
                None => out.everything = true,
            },
            _ => out.everything = true,
        }
        out
    }

    pub fn merge(&mut self, other: Self) {
        self.moved_accounts.extend(other.moved_accounts);
        self.renamed_ous.extend(other.renamed_ous);
        self.accounts_under.extend(other.accounts_under);
        self.ous_under.extend(other.ous_under);
        self.root |= other.root;
        self.everything |= other.everything;
    }

    /// Whether accounts or OUs may have entered, left or moved in the tree: what OU-wide
    /// assignments, guardrail coverage and baselines follow. A rename, a tag or an attachment
    /// changes none of that.
    pub fn changes_tree(&self) -> bool {
        self.everything
            || !self.moved_accounts.is_empty()
            || !self.accounts_under.is_empty()
            || !self.ous_under.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        !self.everything
            && self.moved_accounts.is_empty()
            && self.renamed_ous.is_empty()
            && self.accounts_under.is_empty()
            && self.ous_under.is_empty()
            && !self.root
    }
}

/// What the reconcilers need from AWS Organizations.
#[async_trait]
pub trait Organizations: Send + Sync {
    async fn describe_organization(&self) -> AwsResult<OrgInfo>;
    /// The roots (one per Organization), with the policy types enabled on each.
    async fn list_roots(&self) -> AwsResult<Vec<RootInfo>>;
    /// Child OUs of a root or OU (all pages).
    async fn list_ous_for_parent(&self, parent_id: &str) -> AwsResult<Vec<OuInfo>>;
    /// Accounts directly under a root or OU (all pages), with `parent_id` set.
    async fn list_accounts_for_parent(&self, parent_id: &str) -> AwsResult<Vec<AccountInfo>>;
    /// CreateAccount requests in one state (AWS keeps them for 90 days; all pages).
    async fn list_create_requests(&self, state: CreateState)
    -> AwsResult<Vec<CreateAccountStatus>>;
    /// The parent of one account or OU (only for the rare account found outside the tree walk).
    async fn parent_of(&self, child_id: &str) -> AwsResult<Option<String>>;
    async fn describe_create_account_status(
        &self,
        request_id: &str,
    ) -> AwsResult<CreateAccountStatus>;
    async fn list_tags(&self, resource_id: &str) -> AwsResult<Tags>;

    async fn create_ou(&self, parent_id: &str, name: &str, tags: &Tags) -> AwsResult<OuInfo>;
    async fn rename_ou(&self, ou_id: &str, name: &str) -> AwsResult<()>;
    async fn delete_ou(&self, ou_id: &str) -> AwsResult<()>;
    async fn create_account(&self, account: &NewAccount) -> AwsResult<CreateAccountStatus>;
    async fn move_account(&self, account_id: &str, from: &str, to: &str) -> AwsResult<()>;
    async fn tag_resource(&self, resource_id: &str, tags: &Tags) -> AwsResult<()>;
    async fn untag_resource(&self, resource_id: &str, keys: &[String]) -> AwsResult<()>;
    async fn close_account(&self, account_id: &str) -> AwsResult<()>;
    /// Service principals with trusted access to the Organization.
    async fn list_service_access(&self) -> AwsResult<Vec<String>>;
    async fn enable_service_access(&self, principal: &str) -> AwsResult<()>;
}

pub struct SdkOrganizations {
    client: orgs::Client,
}

impl SdkOrganizations {
    pub fn new(client: orgs::Client) -> Self {
        Self { client }
    }
}

const SERVICE: &str = "organizations";

const CALLS: Service = Service(SERVICE);

fn account_info(a: &orgs::types::Account, parent_id: Option<&str>) -> AccountInfo {
    AccountInfo {
        id: a.id().unwrap_or_default().to_string(),
        arn: a.arn().unwrap_or_default().to_string(),
        name: a.name().unwrap_or_default().to_string(),
        email: a.email().unwrap_or_default().to_string(),
        // `State` replaced `Status` (deprecated, same values for active and suspended accounts);
        // older answers carry only `Status`.
        #[allow(deprecated)]
        state: a
            .state()
            .map(|s| s.as_str().to_string())
            .or_else(|| a.status().map(|s| s.as_str().to_string()))
            .unwrap_or_else(|| "ACTIVE".to_string()),
        parent_id: parent_id.map(str::to_string),
        joined: a
            .joined_timestamp()
            .and_then(|t| std::time::SystemTime::try_from(*t).ok()),
        joined_method: a.joined_method().map(|m| m.as_str().to_string()),
    }
}

fn create_status(s: &orgs::types::CreateAccountStatus) -> CreateAccountStatus {
    use orgs::types::CreateAccountState as S;
    CreateAccountStatus {
        request_id: s.id().unwrap_or_default().to_string(),
        account_name: s.account_name().unwrap_or_default().to_string(),
        state: match s.state() {
            Some(S::Succeeded) => CreateState::Succeeded,
            Some(S::Failed) => CreateState::Failed,
            _ => CreateState::InProgress,
        },
        account_id: s.account_id().map(str::to_string),
        failure_reason: s.failure_reason().map(|r| r.as_str().to_string()),
        completed: s
            .completed_timestamp()
            .and_then(|t| std::time::SystemTime::try_from(*t).ok()),
    }
}

fn sdk_tags(tags: &Tags) -> Vec<orgs::types::Tag> {
    tags.iter()
        .map(|(k, v)| {
            orgs::types::Tag::builder()
                .key(k)
                .value(v)
                .build()
                .expect("key and value set")
        })
        .collect()
}

#[async_trait]
impl Organizations for SdkOrganizations {
    async fn describe_organization(&self) -> AwsResult<OrgInfo> {
        let out = CALLS
            .send(
                "DescribeOrganization",
                self.client.describe_organization().send(),
            )
            .await?;
        let org = out.organization().ok_or_else(|| {
            AwsError::new(
                SERVICE,
                "DescribeOrganization",
                "AWSOrganizationsNotInUseException",
                "no organization",
            )
        })?;
        Ok(OrgInfo {
            id: org.id().unwrap_or_default().to_string(),
            arn: org.arn().unwrap_or_default().to_string(),
            management_account_id: org.master_account_id().unwrap_or_default().to_string(),
        })
    }

    async fn list_roots(&self) -> AwsResult<Vec<RootInfo>> {
        let out = CALLS
            .pages(
                "ListRoots",
                self.client.list_roots().into_paginator().send(),
                |page, out| {
                    out.extend(page.roots().iter().map(|r| {
                        RootInfo {
                            id: r.id().unwrap_or_default().to_string(),
                            policy_types: r
                                .policy_types()
                                .iter()
                                .filter_map(|t| {
                                    Some((
                                        t.r#type()?.as_str().to_string(),
                                        t.status()?.as_str().to_string(),
                                    ))
                                })
                                .collect(),
                        }
                    }));
                },
            )
            .await?;
        Ok(out)
    }

    async fn list_ous_for_parent(&self, parent_id: &str) -> AwsResult<Vec<OuInfo>> {
        let out = CALLS
            .pages(
                "ListOrganizationalUnitsForParent",
                self.client
                    .list_organizational_units_for_parent()
                    .parent_id(parent_id)
                    .max_results(20) // AWS's largest page
                    .into_paginator()
                    .send(),
                |page, out| {
                    out.extend(page.organizational_units().iter().map(|ou| OuInfo {
                        id: ou.id().unwrap_or_default().to_string(),
                        arn: ou.arn().unwrap_or_default().to_string(),
                        name: ou.name().unwrap_or_default().to_string(),
                        parent_id: parent_id.to_string(),
                    }));
                },
            )
            .await?;
        Ok(out)
    }

    async fn list_accounts_for_parent(&self, parent_id: &str) -> AwsResult<Vec<AccountInfo>> {
        let out = CALLS
            .pages(
                "ListAccountsForParent",
                self.client
                    .list_accounts_for_parent()
                    .parent_id(parent_id)
                    .max_results(20) // AWS's largest page
                    .into_paginator()
                    .send(),
                |page, out| {
                    out.extend(
                        page.accounts()
                            .iter()
                            .map(|a| account_info(a, Some(parent_id))),
                    );
                },
            )
            .await?;
        Ok(out)
    }

    async fn list_create_requests(
        &self,
        state: CreateState,
    ) -> AwsResult<Vec<CreateAccountStatus>> {
        use orgs::types::CreateAccountState as S;
        let mut out = CALLS
            .pages(
                "ListCreateAccountStatus",
                self.client
                    .list_create_account_status()
                    .states(match state {
                        CreateState::InProgress => S::InProgress,
                        CreateState::Succeeded => S::Succeeded,
                        CreateState::Failed => S::Failed,
                    })
                    .into_paginator()
                    .send(),
                |page, out| {
                    out.extend(page.create_account_statuses().iter().map(create_status));
                },
            )
            .await?;
        // Some implementations ignore the filter: keep only what is really in that state.
        out.retain(|s| s.state == state);
        Ok(out)
    }

    async fn parent_of(&self, child_id: &str) -> AwsResult<Option<String>> {
        let out = CALLS
            .send(
                "ListParents",
                self.client.list_parents().child_id(child_id).send(),
            )
            .await?;
        Ok(out
            .parents()
            .first()
            .and_then(|p| p.id())
            .map(str::to_string))
    }

    async fn describe_create_account_status(
        &self,
        request_id: &str,
    ) -> AwsResult<CreateAccountStatus> {
        let out = CALLS
            .send(
                "DescribeCreateAccountStatus",
                self.client
                    .describe_create_account_status()
                    .create_account_request_id(request_id)
                    .send(),
            )
            .await?;
        out.create_account_status()
            .map(create_status)
            .ok_or_else(|| {
                AwsError::new(
                    SERVICE,
                    "DescribeCreateAccountStatus",
                    "CreateAccountStatusNotFoundException",
                    request_id,
                )
            })
    }

    async fn list_tags(&self, resource_id: &str) -> AwsResult<Tags> {
        let pages = self
            .client
            .list_tags_for_resource()
            .resource_id(resource_id)
            .into_paginator()
            .send();
        let tags = CALLS
            .pages("ListTagsForResource", pages, |page, out| {
                out.extend(
                    page.tags()
                        .iter()
                        .map(|t| (t.key().to_string(), t.value().to_string())),
                )
            })
            .await?;
        Ok(tags.into_iter().collect())
    }

    async fn create_ou(&self, parent_id: &str, name: &str, tags: &Tags) -> AwsResult<OuInfo> {
        let out = CALLS
            .send(
                "CreateOrganizationalUnit",
                self.client
                    .create_organizational_unit()
                    .parent_id(parent_id)
                    .name(name)
                    .set_tags(Some(sdk_tags(tags)).filter(|t| !t.is_empty()))
                    .send(),
            )
            .await?;
        let ou = out.organizational_unit().ok_or_else(|| {
            AwsError::new(
                SERVICE,
                "CreateOrganizationalUnit",
                "BadResponse",
                "no OU in the response",
            )
        })?;
        Ok(OuInfo {
            id: ou.id().unwrap_or_default().to_string(),
            arn: ou.arn().unwrap_or_default().to_string(),
            name: ou.name().unwrap_or_default().to_string(),
            parent_id: parent_id.to_string(),
        })
    }

    async fn rename_ou(&self, ou_id: &str, name: &str) -> AwsResult<()> {
        CALLS
            .send(
                "UpdateOrganizationalUnit",
                self.client
                    .update_organizational_unit()
                    .organizational_unit_id(ou_id)
                    .name(name)
                    .send(),
            )
            .await?;
        Ok(())
    }

    async fn delete_ou(&self, ou_id: &str) -> AwsResult<()> {
        CALLS
            .send(
                "DeleteOrganizationalUnit",
                self.client
                    .delete_organizational_unit()
                    .organizational_unit_id(ou_id)
                    .send(),
            )
            .await?;
        Ok(())
    }

    async fn create_account(&self, account: &NewAccount) -> AwsResult<CreateAccountStatus> {
        let out = CALLS
            .send(
                "CreateAccount",
                self.client
                    .create_account()
                    .account_name(&account.name)
                    .email(&account.email)
                    .role_name(&account.role_name)
                    .set_iam_user_access_to_billing(
                        account
                            .iam_user_access_to_billing
                            .as_deref()
                            .map(orgs::types::IamUserAccessToBilling::from),
                    )
                    .set_tags(Some(sdk_tags(&account.tags)).filter(|t| !t.is_empty()))
                    .send(),
            )
            .await?;
        out.create_account_status()
            .map(create_status)
            .ok_or_else(|| {
                AwsError::new(
                    SERVICE,
                    "CreateAccount",
                    "BadResponse",
                    "no request status in the response",
                )
            })
    }

    async fn move_account(&self, account_id: &str, from: &str, to: &str) -> AwsResult<()> {
        CALLS
            .send(
                "MoveAccount",
                self.client
                    .move_account()
                    .account_id(account_id)
                    .source_parent_id(from)
                    .destination_parent_id(to)
                    .send(),
            )
            .await?;
        Ok(())
    }

    async fn tag_resource(&self, resource_id: &str, tags: &Tags) -> AwsResult<()> {
        CALLS
            .send(
                "TagResource",
                self.client
                    .tag_resource()
                    .resource_id(resource_id)
                    .set_tags(Some(sdk_tags(tags)))
                    .send(),
            )
            .await?;
        Ok(())
    }

    async fn untag_resource(&self, resource_id: &str, keys: &[String]) -> AwsResult<()> {
        CALLS
            .send(
                "UntagResource",
                self.client
                    .untag_resource()
                    .resource_id(resource_id)
                    .set_tag_keys(Some(keys.to_vec()))
                    .send(),
            )
            .await?;
        Ok(())
    }

    async fn close_account(&self, account_id: &str) -> AwsResult<()> {
        let request = self.client.close_account().account_id(account_id).send();
        // The reason tells the 30-day quota from the limit on closures at once.
        CALLS
            .send_with_reason("CloseAccount", request, |e| match e {
                orgs::operation::close_account::CloseAccountError::ConstraintViolationException(
                    c,
                ) => c.reason().map(|r| r.as_str().to_string()),
                _ => None,
            })
            .await?;
        Ok(())
    }

    async fn list_service_access(&self) -> AwsResult<Vec<String>> {
        let out = CALLS
            .pages(
                "ListAWSServiceAccessForOrganization",
                self.client
                    .list_aws_service_access_for_organization()
                    .into_paginator()
                    .send(),
                |page, out| {
                    out.extend(
                        page.enabled_service_principals()
                            .iter()
                            .filter_map(|p| p.service_principal().map(str::to_string)),
                    );
                },
            )
            .await?;
        Ok(out)
    }

    async fn enable_service_access(&self, principal: &str) -> AwsResult<()> {
        CALLS
            .send(
                "EnableAWSServiceAccess",
                self.client
                    .enable_aws_service_access()
                    .service_principal(principal)
                    .send(),
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(deprecated)]
    fn an_account_without_state_falls_back_to_status() {
        // (State, Status, expected, reason)
        let table = [
            (Some("ACTIVE"), None, "ACTIVE", "State as AWS now sends it"),
            (
                None,
                Some("SUSPENDED"),
                "SUSPENDED",
                "older answers carry only the deprecated Status",
            ),
            (
                Some("PENDING_CLOSURE"),
                Some("ACTIVE"),
                "PENDING_CLOSURE",
                "State wins: it has the finer values",
            ),
            (None, None, "ACTIVE", "neither: a listed account is active"),
        ];
        for (state, status, want, reason) in table {
            let a = orgs::types::Account::builder()
                .id("111111111111")
                .set_state(state.map(orgs::types::AccountState::from))
                .set_status(status.map(orgs::types::AccountStatus::from))
                .build();
            assert_eq!(account_info(&a, None).state, want, "{reason}");
        }
    }

    #[test]
    fn only_young_created_accounts_are_new() {
        let mut a = AccountInfo {
            id: "1".into(),
            arn: String::new(),
            name: String::new(),
            email: String::new(),
            state: "ACTIVE".into(),
            parent_id: None,
            joined: Some(std::time::SystemTime::now()),
            joined_method: Some("CREATED".into()),
        };
        assert!(a.is_new(), "created a moment ago");
        a.joined = Some(std::time::SystemTime::now() - NEW_ACCOUNT_GRACE * 2);
        assert!(!a.is_new(), "created long ago");
        a.joined = Some(std::time::SystemTime::now());
        a.joined_method = Some("INVITED".into());
        assert!(!a.is_new(), "invited: AWS never sets up its role");
    }
}
