//! IAM Identity Center (sso-admin) and its Identity Store, over SDK clients built on the shared
//! config (recorded, paced and fenced like every other call), in the instance's home region.

use crate::api::Tags;
use crate::aws::{AwsPorts, AwsResult, Service};
use aws_sdk_identitystore as ids;
use aws_sdk_ssoadmin as sso;
use sso::types::{PrincipalType, ProvisionTargetType, TargetType};

const CALLS: Service = Service("sso");
const IDENTITY_STORE: Service = Service("identitystore");

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    pub arn: String,
    pub identity_store_id: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PermissionSetInfo {
    pub arn: String,
    pub name: String,
    pub description: String,
    pub session_duration: String,
    pub relay_state: String,
}

/// Where an asynchronous Identity Center request stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestState {
    InProgress,
    Succeeded,
    Failed(String),
}

fn state(status: Option<&sso::types::StatusValues>, reason: Option<&str>) -> RequestState {
    match status {
        Some(sso::types::StatusValues::Succeeded) => RequestState::Succeeded,
        Some(sso::types::StatusValues::Failed) => {
            RequestState::Failed(reason.unwrap_or("no reason given").to_string())
        }
        _ => RequestState::InProgress,
    }
}

pub struct IdentityCenter {
    client: sso::Client,
    store: ids::Client,
}

impl IdentityCenter {
    pub fn new(aws: &AwsPorts) -> Self {
        let region = aws_config::Region::new(aws.identity_center_region.clone());
        // One pacing bucket for all of Identity Center; ConflictException retried with backoff.
        let recorder = aws.recorder.sharing_bucket("IdentityCenter");
        let client = sso::Client::from_conf(
            sso::config::Builder::from(&aws.sdk_config)
                .interceptor(recorder.clone())
                .retry_classifier(crate::aws::pacing::RetryConcurrentModification)
                .region(region.clone())
                .build(),
        );
        let store = ids::Client::from_conf(
            ids::config::Builder::from(&aws.sdk_config)
                .interceptor(recorder)
                .region(region)
                .build(),
        );
        Self { client, store }
    }

    /// The Organization's instance; `None` when Identity Center is not enabled in this region.
    pub async fn instance(&self) -> AwsResult<Option<Instance>> {
        let out = CALLS.send("ListInstances", self
            .client
            .list_instances()
            .send()).await?;
        Ok(out.instances().first().map(|i| Instance {
            arn: i.instance_arn().unwrap_or_default().to_string(),
            identity_store_id: i.identity_store_id().unwrap_or_default().to_string(),
        }))
    }

    /// A group: (display name, description, synced from an external provider); `None` if gone.
    pub async fn describe_group(
        &self,
        store: &str,
        group_id: &str,
    ) -> AwsResult<Option<(String, String, bool)>> {
        let request = self
            .store
            .describe_group()
            .identity_store_id(store)
            .group_id(group_id)
            .send();
        Ok(IDENTITY_STORE
            .find("DescribeGroup", request)
            .await?
            .map(|g| (
                g.display_name().unwrap_or_default().to_string(),
                g.description().unwrap_or_default().to_string(),
                !g.external_ids().is_empty(),
            )))
    }

    pub async fn create_group(&self, store: &str, name: &str, description: &str) -> AwsResult<String> {
        let mut req = self.store.create_group().identity_store_id(store).display_name(name);
        if !description.is_empty() {
            req = req.description(description);
        }
        let out = IDENTITY_STORE.send("CreateGroup", req.send()).await?;
        Ok(out.group_id().to_string())
    }

    pub async fn update_group_description(&self, store: &str, group_id: &str, description: &str) -> AwsResult<()> {
        IDENTITY_STORE.send("UpdateGroup", self.store
            .update_group()
            .identity_store_id(store)
            .group_id(group_id)
            .operations(
                ids::types::AttributeOperation::builder()
                    .attribute_path("description")
                    .attribute_value(aws_smithy_types::Document::String(description.to_string()))
                    .build()
                    .expect("path set"),
            )
            .send()).await?;
        Ok(())
    }

    pub async fn delete_group(&self, store: &str, group_id: &str) -> AwsResult<()> {
        IDENTITY_STORE.send("DeleteGroup", self.store
            .delete_group()
            .identity_store_id(store)
            .group_id(group_id)
            .send()).await?;
        Ok(())
    }

    /// Every group of the identity store: (id, display name, description, synced from an
    /// external provider), all pages.
    pub async fn list_groups(&self, store: &str) -> AwsResult<Vec<(String, String, String, bool)>> {
        let out = IDENTITY_STORE
        .pages("ListGroups", self.store.list_groups().identity_store_id(store).into_paginator().send(), |page, out| {
            out.extend(page.groups().iter().map(|g| {
                (
                    g.group_id().to_string(),
                    g.display_name().unwrap_or_default().to_string(),
                    g.description().unwrap_or_default().to_string(),
                    !g.external_ids().is_empty(),
                )
            }));
        })
        .await?;
        Ok(out)
    }

    /// A user's user name by id.
    pub async fn user_name(&self, store: &str, user_id: &str) -> AwsResult<String> {
        let out = IDENTITY_STORE.send("DescribeUser", self
            .store
            .describe_user()
            .identity_store_id(store)
            .user_id(user_id)
            .send()).await?;
        Ok(out.user_name().unwrap_or_default().to_string())
    }

    /// Every assignment of a group: (account id, permission set ARN), all pages.
    pub async fn group_assignments(&self, instance: &str, group_id: &str) -> AwsResult<Vec<(String, String)>> {
        let out = CALLS
        .pages("ListAccountAssignmentsForPrincipal", self
            .client
            .list_account_assignments_for_principal()
            .instance_arn(instance)
            .principal_id(group_id)
            .principal_type(PrincipalType::Group)
            .into_paginator()
            .send(), |page, out| {
            out.extend(page.account_assignments().iter().filter_map(|a| {
                Some((a.account_id()?.to_string(), a.permission_set_arn()?.to_string()))
            }));
        })
        .await?;
        Ok(out)
    }

    /// A user's id by user name; `None` when there is no such user.
    pub async fn user_id(&self, store: &str, user_name: &str) -> AwsResult<Option<String>> {
        let attr = ids::types::UniqueAttribute::builder()
            .attribute_path("userName")
            .attribute_value(aws_smithy_types::Document::String(user_name.to_string()))
            .build()
            .expect("path and value set");
        let request = self
            .store
            .get_user_id()
            .identity_store_id(store)
            .alternate_identifier(ids::types::AlternateIdentifier::UniqueAttribute(attr))
            .send();
        Ok(IDENTITY_STORE
            .find("GetUserId", request)
            .await?
            .map(|out| out.user_id().to_string()))
    }

    /// The group's memberships as (user id, membership id), all pages.
    pub async fn memberships(&self, store: &str, group_id: &str) -> AwsResult<Vec<(String, String)>> {
        let out = IDENTITY_STORE
        .pages("ListGroupMemberships", self
            .store
            .list_group_memberships()
            .identity_store_id(store)
            .group_id(group_id)
            .into_paginator()
            .send(), |page, out| {
            for m in page.group_memberships() {
                if let Some(ids::types::MemberId::UserId(u)) = m.member_id() {
                    out.push((u.clone(), m.membership_id().to_string()));
                }
            }
        })
        .await?;
        Ok(out)
    }

    pub async fn add_member(&self, store: &str, group_id: &str, user_id: &str) -> AwsResult<()> {
        IDENTITY_STORE.send("CreateGroupMembership", self.store
            .create_group_membership()
            .identity_store_id(store)
            .group_id(group_id)
            .member_id(ids::types::MemberId::UserId(user_id.to_string()))
            .send()).await?;
        Ok(())
    }

    pub async fn remove_member(&self, store: &str, membership_id: &str) -> AwsResult<()> {
        IDENTITY_STORE.send("DeleteGroupMembership", self.store
            .delete_group_membership()
            .identity_store_id(store)
            .membership_id(membership_id)
            .send()).await?;
        Ok(())
    }

    /// A group's id by display name; `None` when the Identity Store has no such group.
    pub async fn group_id(&self, store: &str, display_name: &str) -> AwsResult<Option<String>> {
        let attr = ids::types::UniqueAttribute::builder()
            .attribute_path("displayName")
            .attribute_value(aws_smithy_types::Document::String(display_name.to_string()))
            .build()
            .expect("path and value set");
        let request = self
            .store
            .get_group_id()
            .identity_store_id(store)
            .alternate_identifier(ids::types::AlternateIdentifier::UniqueAttribute(attr))
            .send();
        Ok(IDENTITY_STORE
            .find("GetGroupId", request)
            .await?
            .map(|out| out.group_id().to_string()))
    }

    pub async fn describe(&self, instance: &str, arn: &str) -> AwsResult<Option<PermissionSetInfo>> {
        let request = self
            .client
            .describe_permission_set()
            .instance_arn(instance)
            .permission_set_arn(arn)
            .send();
        Ok(CALLS
            .find("DescribePermissionSet", request)
            .await?
            .and_then(|out| out.permission_set().map(|p| PermissionSetInfo {
                arn: p.permission_set_arn().unwrap_or(arn).to_string(),
                name: p.name().unwrap_or_default().to_string(),
                description: p.description().unwrap_or_default().to_string(),
                session_duration: p.session_duration().unwrap_or("PT1H").to_string(),
                relay_state: p.relay_state().unwrap_or_default().to_string(),
            })))
    }

    /// Every permission set's ARN (all pages).
    pub async fn list(&self, instance: &str) -> AwsResult<Vec<String>> {
        let pages = self
            .client
            .list_permission_sets()
            .instance_arn(instance)
            .into_paginator()
            .send();
        CALLS
            .pages("ListPermissionSets", pages, |page, out| {
                out.extend(page.permission_sets().iter().cloned())
            })
            .await
    }

    pub async fn create(
        &self,
        instance: &str,
        want: &PermissionSetInfo,
        tags: &Tags,
    ) -> AwsResult<String> {
        let mut req = self
            .client
            .create_permission_set()
            .instance_arn(instance)
            .name(&want.name)
            .session_duration(&want.session_duration);
        if !want.description.is_empty() {
            req = req.description(&want.description);
        }
        if !want.relay_state.is_empty() {
            req = req.relay_state(&want.relay_state);
        }
        for (k, v) in tags {
            req = req.tags(sso::types::Tag::builder().key(k).value(v).build().expect("set"));
        }
        let out = CALLS.send("CreatePermissionSet", req.send()).await?;
        Ok(out
            .permission_set()
            .and_then(|p| p.permission_set_arn())
            .unwrap_or_default()
            .to_string())
    }

    pub async fn update(&self, instance: &str, want: &PermissionSetInfo) -> AwsResult<()> {
        CALLS.send("UpdatePermissionSet", self.client
            .update_permission_set()
            .instance_arn(instance)
            .permission_set_arn(&want.arn)
            .description(&want.description)
            .session_duration(&want.session_duration)
            .relay_state(&want.relay_state)
            .send()).await?;
        Ok(())
    }

    pub async fn delete(&self, instance: &str, arn: &str) -> AwsResult<()> {
        CALLS.send("DeletePermissionSet", self.client
            .delete_permission_set()
            .instance_arn(instance)
            .permission_set_arn(arn)
            .send()).await?;
        Ok(())
    }

    pub async fn managed_policies(&self, instance: &str, arn: &str) -> AwsResult<Vec<String>> {
        let out = CALLS.send("ListManagedPoliciesInPermissionSet", self
            .client
            .list_managed_policies_in_permission_set()
            .instance_arn(instance)
            .permission_set_arn(arn)
            .send()).await?;
        Ok(out
            .attached_managed_policies()
            .iter()
            .filter_map(|p| p.arn().map(str::to_string))
            .collect())
    }

    pub async fn attach_managed(&self, instance: &str, arn: &str, policy: &str) -> AwsResult<()> {
        CALLS.send("AttachManagedPolicyToPermissionSet", self.client
            .attach_managed_policy_to_permission_set()
            .instance_arn(instance)
            .permission_set_arn(arn)
            .managed_policy_arn(policy)
            .send()).await?;
        Ok(())
    }

    pub async fn detach_managed(&self, instance: &str, arn: &str, policy: &str) -> AwsResult<()> {
        CALLS.send("DetachManagedPolicyFromPermissionSet", self.client
            .detach_managed_policy_from_permission_set()
            .instance_arn(instance)
            .permission_set_arn(arn)
            .managed_policy_arn(policy)
            .send()).await?;
        Ok(())
    }

    /// Customer-managed policy references as `(name, path)`.
    pub async fn customer_policies(
        &self,
        instance: &str,
        arn: &str,
    ) -> AwsResult<Vec<(String, String)>> {
        let out = CALLS.send("ListCustomerManagedPolicyReferencesInPermissionSet", self
            .client
            .list_customer_managed_policy_references_in_permission_set()
            .instance_arn(instance)
            .permission_set_arn(arn)
            .send()).await?;
        Ok(out
            .customer_managed_policy_references()
            .iter()
            .map(|r| (r.name().to_string(), r.path().unwrap_or("/").to_string()))
            .collect())
    }

    fn reference(name: &str, path: &str) -> sso::types::CustomerManagedPolicyReference {
        sso::types::CustomerManagedPolicyReference::builder()
            .name(name)
            .path(path)
            .build()
            .expect("name set")
    }

    pub async fn attach_customer(&self, instance: &str, arn: &str, name: &str, path: &str) -> AwsResult<()> {
        CALLS.send("AttachCustomerManagedPolicyReferenceToPermissionSet", self.client
            .attach_customer_managed_policy_reference_to_permission_set()
            .instance_arn(instance)
            .permission_set_arn(arn)
            .customer_managed_policy_reference(Self::reference(name, path))
            .send()).await?;
        Ok(())
    }

    pub async fn detach_customer(&self, instance: &str, arn: &str, name: &str, path: &str) -> AwsResult<()> {
        CALLS.send("DetachCustomerManagedPolicyReferenceFromPermissionSet", self.client
            .detach_customer_managed_policy_reference_from_permission_set()
            .instance_arn(instance)
            .permission_set_arn(arn)
            .customer_managed_policy_reference(Self::reference(name, path))
            .send()).await?;
        Ok(())
    }

    /// The inline policy; `None` when there is none.
    pub async fn inline_policy(&self, instance: &str, arn: &str) -> AwsResult<Option<String>> {
        let out = CALLS.send("GetInlinePolicyForPermissionSet", self
            .client
            .get_inline_policy_for_permission_set()
            .instance_arn(instance)
            .permission_set_arn(arn)
            .send()).await?;
        Ok(out.inline_policy().filter(|p| !p.is_empty()).map(str::to_string))
    }

    pub async fn put_inline_policy(&self, instance: &str, arn: &str, policy: &str) -> AwsResult<()> {
        CALLS.send("PutInlinePolicyToPermissionSet", self.client
            .put_inline_policy_to_permission_set()
            .instance_arn(instance)
            .permission_set_arn(arn)
            .inline_policy(policy)
            .send()).await?;
        Ok(())
    }

    pub async fn delete_inline_policy(&self, instance: &str, arn: &str) -> AwsResult<()> {
        CALLS.send("DeleteInlinePolicyFromPermissionSet", self.client
            .delete_inline_policy_from_permission_set()
            .instance_arn(instance)
            .permission_set_arn(arn)
            .send()).await?;
        Ok(())
    }

    /// The permissions boundary as `managed:ARN` or `customer:PATHNAME`; `None` without one.
    pub async fn boundary(&self, instance: &str, arn: &str) -> AwsResult<Option<String>> {
        let request = self
            .client
            .get_permissions_boundary_for_permission_set()
            .instance_arn(instance)
            .permission_set_arn(arn)
            .send();
        Ok(CALLS
            .find("GetPermissionsBoundaryForPermissionSet", request)
            .await?
            .and_then(|out| out.permissions_boundary().map(|b| {
                match (b.managed_policy_arn(), b.customer_managed_policy_reference()) {
                    (Some(a), _) => format!("managed:{a}"),
                    (None, Some(r)) => format!("customer:{}{}", r.path().unwrap_or("/"), r.name()),
                    _ => String::new(),
                }
            }).filter(|s| !s.is_empty())))
    }

    pub async fn put_boundary(
        &self,
        instance: &str,
        arn: &str,
        managed: Option<&str>,
        customer: Option<(&str, &str)>,
    ) -> AwsResult<()> {
        let mut b = sso::types::PermissionsBoundary::builder();
        if let Some(a) = managed {
            b = b.managed_policy_arn(a);
        }
        if let Some((name, path)) = customer {
            b = b.customer_managed_policy_reference(Self::reference(name, path));
        }
        CALLS.send("PutPermissionsBoundaryToPermissionSet", self.client
            .put_permissions_boundary_to_permission_set()
            .instance_arn(instance)
            .permission_set_arn(arn)
            .permissions_boundary(b.build())
            .send()).await?;
        Ok(())
    }

    pub async fn delete_boundary(&self, instance: &str, arn: &str) -> AwsResult<()> {
        CALLS.send("DeletePermissionsBoundaryFromPermissionSet", self.client
            .delete_permissions_boundary_from_permission_set()
            .instance_arn(instance)
            .permission_set_arn(arn)
            .send()).await?;
        Ok(())
    }

    pub async fn tags(&self, instance: &str, arn: &str) -> AwsResult<Tags> {
        let out = CALLS.send("ListTagsForResource", self
            .client
            .list_tags_for_resource()
            .instance_arn(instance)
            .resource_arn(arn)
            .send()).await?;
        Ok(out
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect())
    }

    pub async fn tag(&self, instance: &str, arn: &str, tags: &Tags) -> AwsResult<()> {
        let mut req = self.client.tag_resource().instance_arn(instance).resource_arn(arn);
        for (k, v) in tags {
            req = req.tags(sso::types::Tag::builder().key(k).value(v).build().expect("set"));
        }
        CALLS.send("TagResource", req.send()).await?;
        Ok(())
    }

    pub async fn untag(&self, instance: &str, arn: &str, keys: &[String]) -> AwsResult<()> {
        CALLS.send("UntagResource", self.client
            .untag_resource()
            .instance_arn(instance)
            .resource_arn(arn)
            .set_tag_keys(Some(keys.to_vec()))
            .send()).await?;
        Ok(())
    }

    /// Re-provisions the set wherever it is provisioned; the request id to follow.
    pub async fn provision(&self, instance: &str, arn: &str) -> AwsResult<String> {
        let out = CALLS.send("ProvisionPermissionSet", self
            .client
            .provision_permission_set()
            .instance_arn(instance)
            .permission_set_arn(arn)
            .target_type(ProvisionTargetType::AllProvisionedAccounts)
            .send()).await?;
        Ok(out
            .permission_set_provisioning_status()
            .and_then(|s| s.request_id())
            .unwrap_or_default()
            .to_string())
    }

    pub async fn provisioning(&self, instance: &str, request: &str) -> AwsResult<RequestState> {
        let out = CALLS.send("DescribePermissionSetProvisioningStatus", self
            .client
            .describe_permission_set_provisioning_status()
            .instance_arn(instance)
            .provision_permission_set_request_id(request)
            .send()).await?;
        let s = out.permission_set_provisioning_status();
        Ok(state(
            s.and_then(|s| s.status()),
            s.and_then(|s| s.failure_reason()),
        ))
    }

    /// The accounts this group has this permission set in (all pages).
    pub async fn assigned_accounts(
        &self,
        instance: &str,
        arn: &str,
        group_id: &str,
    ) -> AwsResult<Vec<String>> {
        Ok(self
            .group_assignments(instance, group_id)
            .await?
            .into_iter()
            .filter(|(_, set)| set == arn)
            .map(|(account, _)| account)
            .collect())
    }

    /// Assigns; the request id to follow.
    pub async fn assign(&self, instance: &str, arn: &str, account: &str, group_id: &str) -> AwsResult<String> {
        let out = CALLS.send("CreateAccountAssignment", self
            .client
            .create_account_assignment()
            .instance_arn(instance)
            .permission_set_arn(arn)
            .target_id(account)
            .target_type(TargetType::AwsAccount)
            .principal_type(PrincipalType::Group)
            .principal_id(group_id)
            .send()).await?;
        Ok(out
            .account_assignment_creation_status()
            .and_then(|s| s.request_id())
            .unwrap_or_default()
            .to_string())
    }

    pub async fn unassign(&self, instance: &str, arn: &str, account: &str, group_id: &str) -> AwsResult<String> {
        let out = CALLS.send("DeleteAccountAssignment", self
            .client
            .delete_account_assignment()
            .instance_arn(instance)
            .permission_set_arn(arn)
            .target_id(account)
            .target_type(TargetType::AwsAccount)
            .principal_type(PrincipalType::Group)
            .principal_id(group_id)
            .send()).await?;
        Ok(out
            .account_assignment_deletion_status()
            .and_then(|s| s.request_id())
            .unwrap_or_default()
            .to_string())
    }

    pub async fn creation(&self, instance: &str, request: &str) -> AwsResult<RequestState> {
        let out = CALLS.send("DescribeAccountAssignmentCreationStatus", self
            .client
            .describe_account_assignment_creation_status()
            .instance_arn(instance)
            .account_assignment_creation_request_id(request)
            .send()).await?;
        let s = out.account_assignment_creation_status();
        Ok(state(s.and_then(|s| s.status()), s.and_then(|s| s.failure_reason())))
    }

    pub async fn deletion(&self, instance: &str, request: &str) -> AwsResult<RequestState> {
        let out = CALLS.send("DescribeAccountAssignmentDeletionStatus", self
            .client
            .describe_account_assignment_deletion_status()
            .instance_arn(instance)
            .account_assignment_deletion_request_id(request)
            .send()).await?;
        let s = out.account_assignment_deletion_status();
        Ok(state(s.and_then(|s| s.status()), s.and_then(|s| s.failure_reason())))
    }
}
