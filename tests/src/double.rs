//! A thin test double of the Organizations port: it forwards to the real SDK adapter (and so to the
//! emulator) and injects the AWS behaviours the emulator lacks — asynchronous CreateAccount,
//! EMAIL_ALREADY_EXISTS, a lost CreateAccount response, the closure quota, AccessDenied, refusing
//! to delete a non-empty OU.

use async_trait::async_trait;
use landing_zone_operator::api::Tags;
use landing_zone_operator::aws::organizations::{
    AccountInfo, CreateAccountStatus, CreateState, NewAccount, OrgInfo, Organizations, OuInfo,
};
use landing_zone_operator::aws::{AwsError, AwsResult};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct Faults {
    /// CreateAccount reaches AWS, but its answer never reaches the caller (a crash or a lost response).
    pub lose_create_response: AtomicBool,
    /// CreateAccount answers IN_PROGRESS, as real AWS does; the account exists after this many polls.
    pub async_create_polls: AtomicU32,
    /// CreateAccount creates the account (a concurrent actor got there first) and reports EMAIL_ALREADY_EXISTS.
    pub email_already_exists: AtomicBool,
    /// CloseAccount fails with the 30-day closure quota.
    pub close_quota_exceeded: AtomicBool,
    /// DeleteOrganizationalUnit fails as real AWS does for an OU with children.
    pub ou_not_empty: AtomicBool,
    /// Operations answered with AccessDeniedException.
    pub denied: Mutex<Vec<&'static str>>,
}

struct Pending {
    status: CreateAccountStatus,
    polls_left: u32,
    request: NewAccount,
}

pub struct Double {
    inner: Arc<dyn Organizations>,
    pub faults: Arc<Faults>,
    pending: Mutex<Vec<Pending>>,
    /// Every CreateAccount the operator sent, in order.
    pub creates: Mutex<Vec<String>>,
}

impl Double {
    pub fn new(inner: Arc<dyn Organizations>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            faults: Arc::default(),
            pending: Mutex::default(),
            creates: Mutex::default(),
        })
    }

    fn check(&self, op: &'static str) -> AwsResult<()> {
        if self.faults.denied.lock().unwrap().contains(&op) {
            return Err(AwsError::new(
                "organizations",
                op,
                "AccessDeniedException",
                "You don't have permissions to access this resource.",
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Organizations for Double {
    async fn describe_organization(&self) -> AwsResult<OrgInfo> {
        self.check("DescribeOrganization")?;
        self.inner.describe_organization().await
    }
    async fn list_root_ids(&self) -> AwsResult<Vec<String>> {
        self.inner.list_root_ids().await
    }
    async fn list_ous_for_parent(&self, parent_id: &str) -> AwsResult<Vec<OuInfo>> {
        self.inner.list_ous_for_parent(parent_id).await
    }
    async fn list_accounts(&self) -> AwsResult<Vec<AccountInfo>> {
        self.inner.list_accounts().await
    }
    async fn list_accounts_for_parent(&self, parent_id: &str) -> AwsResult<Vec<AccountInfo>> {
        self.inner.list_accounts_for_parent(parent_id).await
    }
    async fn list_in_progress_create_requests(&self) -> AwsResult<Vec<CreateAccountStatus>> {
        let mut out = self.inner.list_in_progress_create_requests().await?;
        out.extend(
            self.pending
                .lock()
                .unwrap()
                .iter()
                .map(|p| p.status.clone()),
        );
        Ok(out)
    }
    async fn describe_create_account_status(
        &self,
        request_id: &str,
    ) -> AwsResult<CreateAccountStatus> {
        let ready = {
            let mut pending = self.pending.lock().unwrap();
            match pending
                .iter()
                .position(|p| p.status.request_id == request_id)
            {
                Some(i) if pending[i].polls_left > 1 => {
                    pending[i].polls_left -= 1;
                    return Ok(pending[i].status.clone());
                }
                Some(i) => Some(pending.remove(i)),
                None => None,
            }
        };
        match ready {
            // The request finishes now: the account comes into being in the emulator.
            Some(p) => {
                let mut done = self.inner.create_account(&p.request).await?;
                done.request_id = p.status.request_id;
                Ok(done)
            }
            None => self.inner.describe_create_account_status(request_id).await,
        }
    }
    async fn parent_of(&self, child_id: &str) -> AwsResult<Option<String>> {
        self.inner.parent_of(child_id).await
    }
    async fn list_tags(&self, resource_id: &str) -> AwsResult<Tags> {
        self.inner.list_tags(resource_id).await
    }
    async fn create_ou(&self, parent_id: &str, name: &str, tags: &Tags) -> AwsResult<OuInfo> {
        self.check("CreateOrganizationalUnit")?;
        self.inner.create_ou(parent_id, name, tags).await
    }
    async fn rename_ou(&self, ou_id: &str, name: &str) -> AwsResult<()> {
        self.inner.rename_ou(ou_id, name).await
    }
    async fn delete_ou(&self, ou_id: &str) -> AwsResult<()> {
        if self.faults.ou_not_empty.load(Ordering::SeqCst) {
            return Err(AwsError::new(
                "organizations",
                "DeleteOrganizationalUnit",
                "OrganizationalUnitNotEmptyException",
                "The specified organizational unit is not empty.",
            ));
        }
        self.inner.delete_ou(ou_id).await
    }
    async fn create_account(&self, account: &NewAccount) -> AwsResult<CreateAccountStatus> {
        self.check("CreateAccount")?;
        self.creates.lock().unwrap().push(account.name.clone());
        let polls = self.faults.async_create_polls.load(Ordering::SeqCst);
        if polls > 0 {
            let n = self.creates.lock().unwrap().len();
            let status = CreateAccountStatus {
                request_id: format!("car-double{n:08}"),
                account_name: account.name.clone(),
                state: CreateState::InProgress,
                account_id: None,
                failure_reason: None,
            };
            self.pending.lock().unwrap().push(Pending {
                status: status.clone(),
                polls_left: polls,
                request: account.clone(),
            });
            return Ok(status);
        }
        let created = self.inner.create_account(account).await?;
        if self.faults.email_already_exists.load(Ordering::SeqCst) {
            return Ok(CreateAccountStatus {
                state: CreateState::Failed,
                account_id: None,
                failure_reason: Some("EMAIL_ALREADY_EXISTS".into()),
                ..created
            });
        }
        if self.faults.lose_create_response.load(Ordering::SeqCst) {
            return Err(AwsError::new(
                "organizations",
                "CreateAccount",
                "Unreachable",
                "connection reset (injected)",
            ));
        }
        Ok(created)
    }
    async fn move_account(&self, account_id: &str, from: &str, to: &str) -> AwsResult<()> {
        self.check("MoveAccount")?;
        self.inner.move_account(account_id, from, to).await
    }
    async fn tag_resource(&self, resource_id: &str, tags: &Tags) -> AwsResult<()> {
        self.check("TagResource")?;
        self.inner.tag_resource(resource_id, tags).await
    }
    async fn untag_resource(&self, resource_id: &str, keys: &[String]) -> AwsResult<()> {
        self.inner.untag_resource(resource_id, keys).await
    }
    async fn list_service_access(&self) -> AwsResult<Vec<String>> {
        self.inner.list_service_access().await
    }
    async fn enable_service_access(&self, principal: &str) -> AwsResult<()> {
        self.inner.enable_service_access(principal).await
    }
    async fn close_account(&self, account_id: &str) -> AwsResult<()> {
        if self.faults.close_quota_exceeded.load(Ordering::SeqCst) {
            return Err(AwsError::new(
                "organizations",
                "CloseAccount",
                "ConstraintViolationException",
                "You have exceeded close account quota for the past 30 days.",
            ));
        }
        self.inner.close_account(account_id).await
    }
}

/// An in-memory Budgets service: the emulator has no UpdateBudget, UpdateNotification or
/// subscriber calls, and reports zero spend, so the diffing logic is exercised here instead.
#[derive(Default)]
pub struct FakeBudgets {
    pub budgets: Mutex<std::collections::BTreeMap<String, FakeBudget>>,
    /// Every write, as `Operation name`.
    pub calls: Mutex<Vec<String>>,
    /// SNS topics AWS refuses to publish to.
    pub refused_topics: Mutex<Vec<String>>,
}

#[derive(Clone, Debug)]
pub struct FakeBudget {
    pub info: BudgetInfo,
    pub notifications: Vec<(NotificationKey, Vec<Subscriber>)>,
}

use landing_zone_operator::aws::budgets::{BudgetInfo, Budgets, NotificationKey, Subscriber};

impl FakeBudgets {
    fn record(&self, op: &str, name: &str) {
        self.calls.lock().unwrap().push(format!("{op} {name}"));
    }

    fn check_subscriber(&self, s: &Subscriber) -> AwsResult<()> {
        if let Subscriber::Sns(arn) = s
            && self.refused_topics.lock().unwrap().contains(arn)
        {
            return Err(AwsError::new(
                "budgets",
                "CreateSubscriber",
                "InvalidParameterException",
                "Budgets cannot publish to the SNS topic: its access policy does not allow budgets.amazonaws.com",
            ));
        }
        Ok(())
    }

    fn with<T>(&self, name: &str, f: impl FnOnce(&mut FakeBudget) -> T) -> AwsResult<T> {
        let mut all = self.budgets.lock().unwrap();
        let b = all.get_mut(name).ok_or_else(|| {
            AwsError::new("budgets", "Describe", "NotFoundException", "no such budget")
        })?;
        Ok(f(b))
    }
}

#[async_trait]
impl Budgets for FakeBudgets {
    async fn describe_budget(&self, _: &str, name: &str) -> AwsResult<Option<BudgetInfo>> {
        Ok(self
            .budgets
            .lock()
            .unwrap()
            .get(name)
            .map(|b| b.info.clone()))
    }
    async fn create_budget(
        &self,
        _: &str,
        budget: &BudgetInfo,
        notifications: &[(NotificationKey, Vec<Subscriber>)],
    ) -> AwsResult<()> {
        for (_, subs) in notifications {
            for s in subs {
                self.check_subscriber(s)?;
            }
        }
        self.record("CreateBudget", &budget.name);
        let mut info = budget.clone();
        info.actual_spend = Some("25.0 USD".into());
        info.forecasted_spend = Some("80.0 USD".into());
        self.budgets.lock().unwrap().insert(
            budget.name.clone(),
            FakeBudget {
                info,
                notifications: notifications.to_vec(),
            },
        );
        Ok(())
    }
    async fn update_budget(&self, _: &str, budget: &BudgetInfo) -> AwsResult<()> {
        self.record("UpdateBudget", &budget.name);
        self.with(&budget.name, |b| {
            b.info.limit_amount = budget.limit_amount.clone();
            b.info.time_unit = budget.time_unit.clone();
            b.info.linked_accounts = budget.linked_accounts.clone();
        })
    }
    async fn delete_budget(&self, _: &str, name: &str) -> AwsResult<()> {
        self.record("DeleteBudget", name);
        self.budgets
            .lock()
            .unwrap()
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| AwsError::new("budgets", "DeleteBudget", "NotFoundException", "gone"))
    }
    async fn list_notifications(&self, _: &str, name: &str) -> AwsResult<Vec<NotificationKey>> {
        self.with(name, |b| {
            b.notifications.iter().map(|(n, _)| n.clone()).collect()
        })
    }
    async fn list_subscribers(
        &self,
        _: &str,
        name: &str,
        n: &NotificationKey,
    ) -> AwsResult<Vec<Subscriber>> {
        self.with(name, |b| {
            b.notifications
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, s)| s.clone())
                .unwrap_or_default()
        })
    }
    async fn create_notification(
        &self,
        _: &str,
        name: &str,
        n: &NotificationKey,
        subs: &[Subscriber],
    ) -> AwsResult<()> {
        for s in subs {
            self.check_subscriber(s)?;
        }
        self.record("CreateNotification", name);
        self.with(name, |b| b.notifications.push((n.clone(), subs.to_vec())))
    }
    async fn update_notification(
        &self,
        _: &str,
        name: &str,
        old: &NotificationKey,
        new: &NotificationKey,
    ) -> AwsResult<()> {
        self.record("UpdateNotification", name);
        self.with(name, |b| {
            for (k, _) in b.notifications.iter_mut().filter(|(k, _)| k == old) {
                *k = new.clone();
            }
        })
    }
    async fn delete_notification(&self, _: &str, name: &str, n: &NotificationKey) -> AwsResult<()> {
        self.record("DeleteNotification", name);
        self.with(name, |b| b.notifications.retain(|(k, _)| k != n))
    }
    async fn create_subscriber(
        &self,
        _: &str,
        name: &str,
        n: &NotificationKey,
        s: &Subscriber,
    ) -> AwsResult<()> {
        self.check_subscriber(s)?;
        self.record("CreateSubscriber", name);
        self.with(name, |b| {
            for (_, subs) in b.notifications.iter_mut().filter(|(k, _)| k == n) {
                subs.push(s.clone());
            }
        })
    }
    async fn delete_subscriber(
        &self,
        _: &str,
        name: &str,
        n: &NotificationKey,
        s: &Subscriber,
    ) -> AwsResult<()> {
        self.record("DeleteSubscriber", name);
        self.with(name, |b| {
            for (_, subs) in b.notifications.iter_mut().filter(|(k, _)| k == n) {
                subs.retain(|x| x != s);
            }
        })
    }
}

/// CloudTrail forwarding to the emulator, except that it can report a delivery error
/// (the emulator never does).
pub struct TrailDouble {
    pub inner: Arc<dyn CloudTrail>,
    pub delivery_error: Mutex<Option<String>>,
}

use landing_zone_operator::aws::CloudTrail;
use landing_zone_operator::aws::cloudtrail::{TrailInfo, TrailStatus};

#[async_trait]
impl CloudTrail for TrailDouble {
    async fn get_trail(&self, name: &str) -> AwsResult<Option<TrailInfo>> {
        self.inner.get_trail(name).await
    }
    async fn create_trail(&self, trail: &TrailInfo) -> AwsResult<String> {
        self.inner.create_trail(trail).await
    }
    async fn update_trail(&self, trail: &TrailInfo) -> AwsResult<()> {
        self.inner.update_trail(trail).await
    }
    async fn trail_status(&self, name: &str) -> AwsResult<TrailStatus> {
        let mut s = self.inner.trail_status(name).await?;
        if let Some(e) = self.delivery_error.lock().unwrap().clone() {
            s.latest_delivery_error = Some(e);
        }
        Ok(s)
    }
    async fn start_logging(&self, name: &str) -> AwsResult<()> {
        self.inner.start_logging(name).await
    }
    async fn delete_trail(&self, name: &str) -> AwsResult<()> {
        self.inner.delete_trail(name).await
    }
}

/// Member-account access whose IAM answers like AWS where the emulator cannot: the root user's
/// MFA and access keys (the emulator always says 0), a globally taken alias, and an access role
/// that cannot be assumed yet (right after CreateAccount).
pub struct MembersDouble {
    pub inner: Arc<dyn Members>,
    pub root: Mutex<Option<RootSecurity>>,
    pub taken_aliases: Mutex<Vec<String>>,
    pub not_yet_accessible: AtomicBool,
}

use landing_zone_operator::api::aws_account::PasswordPolicy;
use landing_zone_operator::aws::iam::{GroupInfo, Iam, RootSecurity};
use landing_zone_operator::aws::member::{AccountClients, Members};

struct IamDouble {
    inner: Arc<dyn Iam>,
    root: Option<RootSecurity>,
    taken: Vec<String>,
    denied: bool,
}

impl IamDouble {
    fn gate(&self, op: &'static str) -> AwsResult<()> {
        if self.denied {
            return Err(AwsError {
                retryable: true,
                ..AwsError::new(
                    "iam",
                    op,
                    "AssumeRoleFailed",
                    "AssumeRole: AccessDenied: the role cannot be assumed yet (injected)",
                )
            });
        }
        Ok(())
    }
}

impl Members for MembersDouble {
    fn clients(
        &self,
        account_id: Option<&str>,
        management: Option<&str>,
        role: &str,
    ) -> AccountClients {
        let real = self.inner.clients(account_id, management, role);
        AccountClients {
            iam: Arc::new(IamDouble {
                inner: real.iam,
                root: self.root.lock().unwrap().clone(),
                taken: self.taken_aliases.lock().unwrap().clone(),
                denied: self.not_yet_accessible.load(Ordering::SeqCst),
            }),
            contacts: real.contacts,
        }
    }
}

#[async_trait]
impl Iam for IamDouble {
    async fn account_alias(&self) -> AwsResult<Option<String>> {
        self.gate("ListAccountAliases")?;
        self.inner.account_alias().await
    }
    async fn set_account_alias(&self, alias: &str) -> AwsResult<()> {
        if self.taken.iter().any(|t| t == alias) {
            return Err(AwsError::new(
                "iam",
                "CreateAccountAlias",
                "EntityAlreadyExists",
                "The account alias already exists.",
            ));
        }
        self.inner.set_account_alias(alias).await
    }
    async fn delete_account_alias(&self, alias: &str) -> AwsResult<()> {
        self.inner.delete_account_alias(alias).await
    }
    async fn password_policy(&self) -> AwsResult<Option<PasswordPolicy>> {
        self.gate("GetAccountPasswordPolicy")?;
        self.inner.password_policy().await
    }
    async fn set_password_policy(&self, p: &PasswordPolicy) -> AwsResult<()> {
        self.inner.set_password_policy(p).await
    }
    async fn root_security(&self) -> AwsResult<RootSecurity> {
        self.gate("GetAccountSummary")?;
        match &self.root {
            Some(r) => Ok(r.clone()),
            None => self.inner.root_security().await,
        }
    }
    async fn group(&self, name: &str) -> AwsResult<Option<GroupInfo>> {
        self.inner.group(name).await
    }
    async fn create_group(&self, name: &str, path: &str) -> AwsResult<GroupInfo> {
        self.inner.create_group(name, path).await
    }
    async fn set_group_path(&self, name: &str, path: &str) -> AwsResult<()> {
        self.inner.set_group_path(name, path).await
    }
    async fn delete_group(&self, name: &str) -> AwsResult<()> {
        self.inner.delete_group(name).await
    }
    async fn attached_policies(&self, group: &str) -> AwsResult<Vec<String>> {
        self.inner.attached_policies(group).await
    }
    async fn attach_policy(&self, group: &str, arn: &str) -> AwsResult<()> {
        self.inner.attach_policy(group, arn).await
    }
    async fn detach_policy(&self, group: &str, arn: &str) -> AwsResult<()> {
        self.inner.detach_policy(group, arn).await
    }
    async fn inline_policies(&self, group: &str) -> AwsResult<Vec<(String, String)>> {
        self.inner.inline_policies(group).await
    }
    async fn put_inline_policy(&self, group: &str, name: &str, doc: &str) -> AwsResult<()> {
        self.inner.put_inline_policy(group, name, doc).await
    }
    async fn delete_inline_policy(&self, group: &str, name: &str) -> AwsResult<()> {
        self.inner.delete_inline_policy(group, name).await
    }
    async fn user_exists(&self, user: &str) -> AwsResult<bool> {
        self.inner.user_exists(user).await
    }
    async fn create_user(&self, user: &str) -> AwsResult<()> {
        self.inner.create_user(user).await
    }
    async fn add_member(&self, group: &str, user: &str) -> AwsResult<()> {
        self.inner.add_member(group, user).await
    }
    async fn remove_member(&self, group: &str, user: &str) -> AwsResult<()> {
        self.inner.remove_member(group, user).await
    }
}
