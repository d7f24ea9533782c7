//! IAM (and the Account Management API's alternate contacts) inside one account: the ports and
//! their SDK implementations. Clients for member accounts come from `member::MemberAccess`.

use super::{AwsResult, Service};
use crate::api::aws_account::{Contact, PasswordPolicy};
use async_trait::async_trait;
use aws_sdk_account as acc;
use aws_sdk_iam as iam;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RootSecurity {
    pub mfa_enabled: bool,
    pub access_keys_present: bool,
    /// The root user has a password (can sign in); accounts made by CreateAccount have none until
    /// someone resets it.
    pub password_present: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupInfo {
    pub arn: String,
    pub group_id: String,
    pub path: String,
    pub members: Vec<String>,
}

#[async_trait]
pub trait Iam: Send + Sync {
    async fn account_alias(&self) -> AwsResult<Option<String>>;
    async fn set_account_alias(&self, alias: &str) -> AwsResult<()>;
    async fn delete_account_alias(&self, alias: &str) -> AwsResult<()>;
    async fn password_policy(&self) -> AwsResult<Option<PasswordPolicy>>;
    async fn set_password_policy(&self, policy: &PasswordPolicy) -> AwsResult<()>;
    async fn root_security(&self) -> AwsResult<RootSecurity>;

    async fn group(&self, name: &str) -> AwsResult<Option<GroupInfo>>;
    /// The names of every group in the account.
    async fn list_groups(&self) -> AwsResult<Vec<String>>;
    async fn create_group(&self, name: &str, path: &str) -> AwsResult<GroupInfo>;
    async fn set_group_path(&self, name: &str, path: &str) -> AwsResult<()>;
    async fn delete_group(&self, name: &str) -> AwsResult<()>;
    async fn attached_policies(&self, group: &str) -> AwsResult<Vec<String>>;
    async fn attach_policy(&self, group: &str, arn: &str) -> AwsResult<()>;
    async fn detach_policy(&self, group: &str, arn: &str) -> AwsResult<()>;
    /// Inline policies with their documents, URL-decoded as AWS sends them encoded.
    async fn inline_policies(&self, group: &str) -> AwsResult<Vec<(String, String)>>;
    async fn put_inline_policy(&self, group: &str, name: &str, document: &str) -> AwsResult<()>;
    async fn delete_inline_policy(&self, group: &str, name: &str) -> AwsResult<()>;
    async fn user_exists(&self, user: &str) -> AwsResult<bool>;
    /// Creates a user with no password and no access keys.
    async fn create_user(&self, user: &str) -> AwsResult<()>;
    async fn add_member(&self, group: &str, user: &str) -> AwsResult<()>;
    async fn remove_member(&self, group: &str, user: &str) -> AwsResult<()>;
}

/// The three alternate contacts (billing, operations, security) of one account.
#[async_trait]
pub trait Contacts: Send + Sync {
    async fn contact(&self, kind: &str) -> AwsResult<Option<Contact>>;
    async fn set_contact(&self, kind: &str, contact: &Contact) -> AwsResult<()>;
}

pub struct SdkIam {
    client: iam::Client,
}

impl SdkIam {
    pub fn new(client: iam::Client) -> Self {
        Self { client }
    }
}

const CALLS: Service = Service("iam");
const ACCOUNT: Service = Service("account");

/// Decodes `%XX` escapes (IAM returns policy documents URL-encoded).
pub fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(
                std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                16,
            )
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[async_trait]
impl Iam for SdkIam {
    async fn account_alias(&self) -> AwsResult<Option<String>> {
        let out = CALLS
            .send(
                "ListAccountAliases",
                self.client.list_account_aliases().send(),
            )
            .await?;
        Ok(out.account_aliases().first().cloned())
    }
    async fn set_account_alias(&self, alias: &str) -> AwsResult<()> {
        CALLS
            .send(
                "CreateAccountAlias",
                self.client
                    .create_account_alias()
                    .account_alias(alias)
                    .send(),
            )
            .await?;
        Ok(())
    }
    async fn delete_account_alias(&self, alias: &str) -> AwsResult<()> {
        CALLS
            .send(
                "DeleteAccountAlias",
                self.client
                    .delete_account_alias()
                    .account_alias(alias)
                    .send(),
            )
            .await?;
        Ok(())
    }
    async fn password_policy(&self) -> AwsResult<Option<PasswordPolicy>> {
        let request = self.client.get_account_password_policy().send();
        let Some(out) = CALLS.find("GetAccountPasswordPolicy", request).await? else {
            return Ok(None);
        };
        Ok(out.password_policy().map(|p| PasswordPolicy {
            minimum_password_length: p.minimum_password_length().unwrap_or(8),
            require_symbols: p.require_symbols(),
            require_numbers: p.require_numbers(),
            require_uppercase_characters: p.require_uppercase_characters(),
            require_lowercase_characters: p.require_lowercase_characters(),
            allow_users_to_change_password: p.allow_users_to_change_password(),
            max_password_age: p.max_password_age().filter(|a| *a > 0),
            password_reuse_prevention: p.password_reuse_prevention().unwrap_or(0),
            hard_expiry: p.hard_expiry().unwrap_or(false),
            manage: true,
        }))
    }
    async fn set_password_policy(&self, p: &PasswordPolicy) -> AwsResult<()> {
        CALLS
            .send(
                "UpdateAccountPasswordPolicy",
                self.client
                    .update_account_password_policy()
                    .minimum_password_length(p.minimum_password_length)
                    .require_symbols(p.require_symbols)
                    .require_numbers(p.require_numbers)
                    .require_uppercase_characters(p.require_uppercase_characters)
                    .require_lowercase_characters(p.require_lowercase_characters)
                    .allow_users_to_change_password(p.allow_users_to_change_password)
                    .set_max_password_age(p.max_password_age)
                    .set_password_reuse_prevention(
                        Some(p.password_reuse_prevention).filter(|n| *n > 0),
                    )
                    .hard_expiry(p.hard_expiry)
                    .send(),
            )
            .await?;
        Ok(())
    }
    async fn root_security(&self) -> AwsResult<RootSecurity> {
        let out = CALLS
            .send(
                "GetAccountSummary",
                self.client.get_account_summary().send(),
            )
            .await?;
        let map = out.summary_map();
        let get = |k: iam::types::SummaryKeyType| map.and_then(|m| m.get(&k)).copied().unwrap_or(0);
        Ok(RootSecurity {
            mfa_enabled: get(iam::types::SummaryKeyType::AccountMfaEnabled) > 0,
            access_keys_present: get(iam::types::SummaryKeyType::AccountAccessKeysPresent) > 0,
            password_present: get(iam::types::SummaryKeyType::AccountPasswordPresent) > 0,
        })
    }

    async fn list_groups(&self) -> AwsResult<Vec<String>> {
        let out = CALLS
            .pages(
                "ListGroups",
                self.client.list_groups().into_paginator().send(),
                |page, out| {
                    out.extend(page.groups().iter().map(|g| g.group_name().to_string()));
                },
            )
            .await?;
        Ok(out)
    }

    async fn group(&self, name: &str) -> AwsResult<Option<GroupInfo>> {
        let pages = self
            .client
            .get_group()
            .group_name(name)
            .into_paginator()
            .send();
        let pages = match CALLS
            .pages("GetGroup", pages, |page, out| out.push(page))
            .await
        {
            Ok(pages) => pages,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut info: Option<GroupInfo> = None;
        for page in pages {
            let g = info.get_or_insert_with(|| {
                let grp = page.group();
                GroupInfo {
                    arn: grp.map(|g| g.arn().to_string()).unwrap_or_default(),
                    group_id: grp.map(|g| g.group_id().to_string()).unwrap_or_default(),
                    path: grp.map(|g| g.path().to_string()).unwrap_or_default(),
                    members: vec![],
                }
            });
            g.members
                .extend(page.users().iter().map(|u| u.user_name().to_string()));
        }
        Ok(info)
    }
    async fn create_group(&self, name: &str, path: &str) -> AwsResult<GroupInfo> {
        let out = CALLS
            .send(
                "CreateGroup",
                self.client
                    .create_group()
                    .group_name(name)
                    .path(path)
                    .send(),
            )
            .await?;
        let g = out.group();
        Ok(GroupInfo {
            arn: g.map(|g| g.arn().to_string()).unwrap_or_default(),
            group_id: g.map(|g| g.group_id().to_string()).unwrap_or_default(),
            path: path.to_string(),
            members: vec![],
        })
    }
    async fn set_group_path(&self, name: &str, path: &str) -> AwsResult<()> {
        CALLS
            .send(
                "UpdateGroup",
                self.client
                    .update_group()
                    .group_name(name)
                    .new_path(path)
                    .send(),
            )
            .await?;
        Ok(())
    }
    async fn delete_group(&self, name: &str) -> AwsResult<()> {
        CALLS
            .send(
                "DeleteGroup",
                self.client.delete_group().group_name(name).send(),
            )
            .await?;
        Ok(())
    }
    async fn attached_policies(&self, group: &str) -> AwsResult<Vec<String>> {
        let out = CALLS
            .pages(
                "ListAttachedGroupPolicies",
                self.client
                    .list_attached_group_policies()
                    .group_name(group)
                    .into_paginator()
                    .send(),
                |page, out| {
                    out.extend(
                        page.attached_policies()
                            .iter()
                            .filter_map(|p| p.policy_arn().map(str::to_string)),
                    );
                },
            )
            .await?;
        Ok(out)
    }
    async fn attach_policy(&self, group: &str, arn: &str) -> AwsResult<()> {
        CALLS
            .send(
                "AttachGroupPolicy",
                self.client
                    .attach_group_policy()
                    .group_name(group)
                    .policy_arn(arn)
                    .send(),
            )
            .await?;
        Ok(())
    }
    async fn detach_policy(&self, group: &str, arn: &str) -> AwsResult<()> {
        CALLS
            .send(
                "DetachGroupPolicy",
                self.client
                    .detach_group_policy()
                    .group_name(group)
                    .policy_arn(arn)
                    .send(),
            )
            .await?;
        Ok(())
    }
    async fn inline_policies(&self, group: &str) -> AwsResult<Vec<(String, String)>> {
        let pages = self
            .client
            .list_group_policies()
            .group_name(group)
            .into_paginator()
            .send();
        let names = CALLS
            .pages("ListGroupPolicies", pages, |page, out| {
                out.extend(page.policy_names().iter().cloned())
            })
            .await?;
        let mut out = Vec::new();
        for name in names {
            let doc = CALLS
                .send(
                    "GetGroupPolicy",
                    self.client
                        .get_group_policy()
                        .group_name(group)
                        .policy_name(&name)
                        .send(),
                )
                .await?;
            out.push((name, url_decode(doc.policy_document())));
        }
        Ok(out)
    }
    async fn put_inline_policy(&self, group: &str, name: &str, document: &str) -> AwsResult<()> {
        CALLS
            .send(
                "PutGroupPolicy",
                self.client
                    .put_group_policy()
                    .group_name(group)
                    .policy_name(name)
                    .policy_document(document)
                    .send(),
            )
            .await?;
        Ok(())
    }
    async fn delete_inline_policy(&self, group: &str, name: &str) -> AwsResult<()> {
        CALLS
            .send(
                "DeleteGroupPolicy",
                self.client
                    .delete_group_policy()
                    .group_name(group)
                    .policy_name(name)
                    .send(),
            )
            .await?;
        Ok(())
    }
    async fn user_exists(&self, user: &str) -> AwsResult<bool> {
        let request = self.client.get_user().user_name(user).send();
        Ok(CALLS.find("GetUser", request).await?.is_some())
    }
    async fn create_user(&self, user: &str) -> AwsResult<()> {
        CALLS
            .send(
                "CreateUser",
                self.client.create_user().user_name(user).send(),
            )
            .await?;
        Ok(())
    }
    async fn add_member(&self, group: &str, user: &str) -> AwsResult<()> {
        CALLS
            .send(
                "AddUserToGroup",
                self.client
                    .add_user_to_group()
                    .group_name(group)
                    .user_name(user)
                    .send(),
            )
            .await?;
        Ok(())
    }
    async fn remove_member(&self, group: &str, user: &str) -> AwsResult<()> {
        CALLS
            .send(
                "RemoveUserFromGroup",
                self.client
                    .remove_user_from_group()
                    .group_name(group)
                    .user_name(user)
                    .send(),
            )
            .await?;
        Ok(())
    }
}

pub struct SdkContacts {
    client: acc::Client,
}

impl SdkContacts {
    pub fn new(client: acc::Client) -> Self {
        Self { client }
    }
}

fn contact_type(kind: &str) -> acc::types::AlternateContactType {
    match kind {
        "BILLING" => acc::types::AlternateContactType::Billing,
        "OPERATIONS" => acc::types::AlternateContactType::Operations,
        _ => acc::types::AlternateContactType::Security,
    }
}

#[async_trait]
impl Contacts for SdkContacts {
    async fn contact(&self, kind: &str) -> AwsResult<Option<Contact>> {
        let request = self
            .client
            .get_alternate_contact()
            .alternate_contact_type(contact_type(kind))
            .send();
        Ok(ACCOUNT
            .find("GetAlternateContact", request)
            .await?
            .and_then(|out| {
                out.alternate_contact().map(|c| Contact {
                    name: c.name().unwrap_or_default().to_string(),
                    title: c.title().unwrap_or_default().to_string(),
                    email: c.email_address().unwrap_or_default().to_string(),
                    phone_number: c.phone_number().unwrap_or_default().to_string(),
                })
            }))
    }
    async fn set_contact(&self, kind: &str, c: &Contact) -> AwsResult<()> {
        ACCOUNT
            .send(
                "PutAlternateContact",
                self.client
                    .put_alternate_contact()
                    .alternate_contact_type(contact_type(kind))
                    .name(&c.name)
                    .title(&c.title)
                    .email_address(&c.email)
                    .phone_number(&c.phone_number)
                    .send(),
            )
            .await?;
        Ok(())
    }
}

/// A role the operator keeps for a service (the support role, CloudTrail's CloudWatch Logs role):
/// its ARN and trust policy, or `None` when there is none.
pub async fn role_trust(
    client: &iam::Client,
    name: &str,
) -> AwsResult<Option<(String, serde_json::Value)>> {
    let Some(out) = CALLS
        .find("GetRole", client.get_role().role_name(name).send())
        .await?
    else {
        return Ok(None);
    };
    Ok(out.role().map(|r| {
        let trust = r
            .assume_role_policy_document()
            .map(url_decode)
            .and_then(|d| serde_json::from_str(&d).ok())
            .unwrap_or_default();
        (r.arn().to_string(), trust)
    }))
}

pub async fn create_role(
    client: &iam::Client,
    name: &str,
    trust: &str,
    description: &str,
) -> AwsResult<()> {
    CALLS
        .send(
            "CreateRole",
            client
                .create_role()
                .role_name(name)
                .assume_role_policy_document(trust)
                .description(description)
                .send(),
        )
        .await?;
    Ok(())
}

pub async fn set_role_trust(client: &iam::Client, name: &str, trust: &str) -> AwsResult<()> {
    CALLS
        .send(
            "UpdateAssumeRolePolicy",
            client
                .update_assume_role_policy()
                .role_name(name)
                .policy_document(trust)
                .send(),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::url_decode;

    #[test]
    fn decodes_iam_policy_documents() {
        assert_eq!(
            url_decode("%7B%22Version%22%3A%222012-10-17%22%7D"),
            "{\"Version\":\"2012-10-17\"}"
        );
        assert_eq!(url_decode("plain"), "plain");
        assert_eq!(url_decode("100%"), "100%");
    }
}
