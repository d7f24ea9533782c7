//! One read of the Organization per pass, shared by every OU and account reconcile.
//!
//! The tree is walked from the root (ListOrganizationalUnitsForParent and ListAccountsForParent per
//! parent, ListCreateAccountStatus once), so the cost grows with pages of results and the number of
//! OUs, never with a ListParents or DescribeAccount per account: 2 × (OUs + 1) calls, one more per
//! further page of 20 accounts, and DescribeOrganization, ListRoots, ListCreateAccountStatus. Every
//! account sits under the root or an OU, so the walk sees them all without ListAccounts.

use crate::aws::AwsResult;
use crate::aws::organizations::{
    AccountInfo, CreateAccountStatus, OrgInfo, Organizations, OuInfo, RootInfo,
};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default)]
pub struct OrgSnapshot {
    pub org: Option<OrgInfo>,
    pub root_id: String,
    /// The root with its enabled policy types.
    pub root: RootInfo,
    pub ous: BTreeMap<String, OuInfo>,
    pub accounts: BTreeMap<String, AccountInfo>,
    /// CreateAccount requests still IN_PROGRESS.
    pub in_flight: Vec<CreateAccountStatus>,
}

impl OrgSnapshot {
    pub async fn load(orgs: &dyn Organizations) -> AwsResult<Self> {
        let org = orgs.describe_organization().await?;
        let root = orgs
            .list_roots()
            .await?
            .into_iter()
            .next()
            .unwrap_or_default();
        let root_id = root.id.clone();
        let mut snap = OrgSnapshot {
            org: Some(org),
            root_id: root_id.clone(),
            root,
            ..Default::default()
        };
        // Breadth-first walk: parentage of every OU and account without a call per account.
        let mut parents = vec![root_id];
        while let Some(parent) = parents.pop() {
            for ou in orgs.list_ous_for_parent(&parent).await? {
                parents.push(ou.id.clone());
                snap.ous.insert(ou.id.clone(), ou);
            }
            for a in orgs.list_accounts_for_parent(&parent).await? {
                snap.accounts.insert(a.id.clone(), a);
            }
        }
        snap.in_flight = orgs.list_in_progress_create_requests().await?;
        Ok(snap)
    }

    /// The AWS partition the Organization lives in (`aws`, `aws-us-gov`, `aws-cn`), from its
    /// ARN: every ARN the operator builds uses it.
    pub fn partition(&self) -> &str {
        self.org
            .as_ref()
            .and_then(|o| o.arn.split(':').nth(1))
            .filter(|p| !p.is_empty())
            .unwrap_or("aws")
    }

    pub fn management_account_id(&self) -> Option<&str> {
        self.org.as_ref().map(|o| o.management_account_id.as_str())
    }

    /// OUs with this name directly under this parent (AWS allows one; more means something is off).
    pub fn ous_named<'a>(
        &'a self,
        parent_id: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a OuInfo> + 'a {
        self.ous
            .values()
            .filter(move |ou| ou.parent_id == parent_id && ou.name == name)
    }

    /// Account with this root email (emails are case-insensitive).
    pub fn account_by_email(&self, email: &str) -> Option<&AccountInfo> {
        self.accounts
            .values()
            .find(|a| a.email.eq_ignore_ascii_case(email))
    }

    pub fn in_flight_for(&self, account_name: &str) -> Option<&CreateAccountStatus> {
        self.in_flight
            .iter()
            .find(|r| r.account_name == account_name)
    }

    /// (child OUs, accounts) directly under a parent.
    pub fn children(&self, parent_id: &str) -> (usize, usize) {
        let ous = self
            .ous
            .values()
            .filter(|o| o.parent_id == parent_id)
            .count();
        let accounts = self
            .accounts
            .values()
            .filter(|a| a.parent_id.as_deref() == Some(parent_id))
            .count();
        (ous, accounts)
    }

    /// The parent of an OU or account, as far as the walk saw it.
    pub fn parent_of(&self, id: &str) -> Option<&str> {
        self.ous
            .get(id)
            .map(|o| o.parent_id.as_str())
            .or_else(|| self.accounts.get(id).and_then(|a| a.parent_id.as_deref()))
    }

    /// The name of the root, an OU or an account, for messages.
    pub fn name_of(&self, id: &str) -> Option<&str> {
        if id == self.root_id {
            return Some("Root");
        }
        self.ous
            .get(id)
            .map(|o| o.name.as_str())
            .or_else(|| self.accounts.get(id).map(|a| a.name.as_str()))
    }

    /// Every ACTIVE account in an OU (or the root) and the OUs below it.
    pub fn active_accounts_under(&self, parent: &str) -> Vec<String> {
        let mut ous = vec![parent.to_string()];
        let mut i = 0;
        while i < ous.len() {
            let p = ous[i].clone();
            ous.extend(
                self.ous
                    .values()
                    .filter(|o| o.parent_id == p)
                    .map(|o| o.id.clone()),
            );
            i += 1;
        }
        let ous: std::collections::BTreeSet<String> = ous.into_iter().collect();
        self.accounts
            .values()
            .filter(|a| a.state == "ACTIVE")
            .filter(|a| a.parent_id.as_ref().is_some_and(|p| ous.contains(p)))
            .map(|a| a.id.clone())
            .collect()
    }

    pub fn parent_exists(&self, id: &str) -> bool {
        id == self.root_id || self.ous.contains_key(id)
    }
}
