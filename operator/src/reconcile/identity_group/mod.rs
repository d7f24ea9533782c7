//! IdentityGroup: observe (the group, its policies and members, inside its account) → plan → apply.

pub mod plan;

use self::plan::{Action, Desired, Observed};
use super::driver::{self, Applied, Reconciler};
use super::{Error, Key, Kind, Mode, Pass, Progress, Readiness};
use crate::api::{DeletionPolicy, IdentityGroup, ManagementPolicy};
use crate::aws::iam::Iam;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;


fn desired(g: &IdentityGroup) -> Result<Desired, Error> {
    let s = &g.spec;
    let mut inline = BTreeMap::new();
    for p in &s.inline_policies {
        let doc = serde_json::from_str(&p.document).map_err(|e| Error::InvalidSpec {
            message: format!("inlinePolicies[{}].document is not JSON: {e}", p.name),
        })?;
        inline.insert(p.name.clone(), doc);
    }
    Ok(Desired {
        name: s.group_name.clone(),
        path: s.path.clone(),
        managed: s.managed_policy_arns.iter().cloned().collect(),
        inline,
        members: s.members.iter().cloned().collect(),
        create_missing_users: s.create_missing_users,
    })
}

/// The account holding the group: the one it names, else the management account.
fn account_of(g: &IdentityGroup, pass: &Pass) -> Result<String, Error> {
    match &g.spec.account_ref {
        Some(r) => pass.resolve(&Key::new(Kind::AwsAccount, &r.name)),
        None => pass
            .snapshot
            .management_account_id()
            .map(str::to_string)
            .ok_or_else(|| Error::conflict("NoOrganization", "the management account is not known")),
    }
}

/// The account holding the group and its IAM client (through the access role for members).
fn target(g: &IdentityGroup, pass: &Pass) -> Result<(String, Arc<dyn Iam>), Error> {
    let management = pass.snapshot.management_account_id().map(str::to_string);
    let account = account_of(g, pass)?;
    let clients = pass.aws.members.clients(
        Some(&account),
        management.as_deref(),
        pass.snapshot.partition(),
        pass.role_name(&account),
    );
    Ok((account, clients.iam))
}

async fn observe(
    iam: &dyn Iam,
    d: &Desired,
) -> Result<(Observed, Option<crate::aws::iam::GroupInfo>), Error> {
    let Some(group) = iam.group(&d.name).await? else {
        let mut missing = BTreeSet::new();
        for u in &d.members {
            if !iam.user_exists(u).await? {
                missing.insert(u.clone());
            }
        }
        return Ok((
            Observed {
                missing_users: missing,
                ..Default::default()
            },
            None,
        ));
    };
    let mut inline = BTreeMap::new();
    for (name, doc) in iam.inline_policies(&d.name).await? {
        inline.insert(
            name,
            serde_json::from_str(&doc).unwrap_or(serde_json::Value::String(doc)),
        );
    }
    let members: BTreeSet<String> = group.members.iter().cloned().collect();
    let mut missing = BTreeSet::new();
    // IAM user names ignore case: a member listed as "carol" is the group's "Carol".
    for u in d
        .members
        .iter()
        .filter(|u| !members.iter().any(|m| m.eq_ignore_ascii_case(u)))
    {
        if !iam.user_exists(u).await? {
            missing.insert(u.clone());
        }
    }
    Ok((
        Observed {
            path: Some(group.path.clone()),
            managed: iam.attached_policies(&d.name).await?.into_iter().collect(),
            inline,
            members,
            missing_users: missing,
        },
        Some(group),
    ))
}

/// IAM is eventually consistent: a group or user created a moment ago can be NoSuchEntity to the
/// next call, and one that observe did not see can already exist.
const SETTLE_DELAYS_MS: [u64; 4] = [500, 1_000, 2_000, 4_000];

fn not_yet_consistent(what: &str) -> Error {
    Error::transient(
        "IamNotYetConsistent",
        format!(
            "IAM reported {what} missing and then existing (IAM is eventually consistent); retrying shortly"
        ),
    )
}

async fn apply(iam: &dyn Iam, d: &Desired, action: &Action, created: bool) -> Result<(), Error> {
    let mut delays = SETTLE_DELAYS_MS.iter();
    loop {
        match apply_once(iam, d, action).await {
            // Right after this reconcile created the group (or a user), NoSuchEntity means IAM has
            // not caught up yet, not that something is wrong.
            Err(Error::Aws(e))
                if created && e.code == "NoSuchEntity" && !e.message.contains("olicy") =>
            {
                match delays.next() {
                    Some(ms) => tokio::time::sleep(std::time::Duration::from_millis(*ms)).await,
                    None => return Err(not_yet_consistent(&format!("group {}", d.name))),
                }
            }
            other => return other,
        }
    }
}

async fn apply_once(iam: &dyn Iam, d: &Desired, action: &Action) -> Result<(), Error> {
    let g = d.name.as_str();
    let exists = |what: String| {
        move |e: crate::aws::AwsError| {
            if e.code == "EntityAlreadyExists" {
                not_yet_consistent(&what)
            } else {
                e.into()
            }
        }
    };
    match action {
        Action::CreateGroup => {
            iam.create_group(g, &d.path)
                .await
                .map_err(exists(format!("group {g}")))?;
        }
        Action::SetPath(p) => iam.set_group_path(g, p).await?,
        Action::Attach(arn) => iam.attach_policy(g, arn).await.map_err(|e| {
            if e.is_not_found() && e.message.contains("olicy") {
                Error::InvalidSpec {
                    message: format!("managed policy {arn} does not exist in this account"),
                }
            } else {
                e.into()
            }
        })?,
        Action::Detach(arn) => iam.detach_policy(g, arn).await?,
        Action::PutInline(name) => {
            iam.put_inline_policy(g, name, &d.inline[name].to_string())
                .await?
        }
        Action::DeleteInline(name) => iam.delete_inline_policy(g, name).await?,
        Action::CreateUser(u) => iam
            .create_user(u)
            .await
            .map_err(exists(format!("user {u}")))?,
        Action::AddMember(u) => iam.add_member(g, u).await?,
        Action::RemoveMember(u) => iam.remove_member(g, u).await?,
    }
    Ok(())
}

pub async fn reconcile(group: &mut IdentityGroup, pass: &mut Pass) -> Result<Progress, Error> {
    // Known before anything is read, so a failure inside the account names it in status too.
    if let Ok(account) = account_of(group, pass) {
        group.status.get_or_insert_with(Default::default).account_id = Some(account);
    }
    let result = driver::reconcile(group, pass).await;
    result.map_err(|e| member_failure(e, group, pass))
}

/// A failure inside a member account, classified as the account's own baseline classifies it
/// (a new account's role not yet assumable, an expired session, a role that cannot be assumed).
fn member_failure(e: Error, group: &IdentityGroup, pass: &Pass) -> Error {
    let Error::Aws(aws) = e else { return e };
    let Ok(account) = account_of(group, pass) else {
        return Error::Aws(aws);
    };
    if aws.is_expired_session() {
        pass.aws.members.forget(&account);
    }
    super::aws_account::member_error(
        aws,
        pass.snapshot.accounts.get(&account),
        pass.role_name(&account),
    )
}

/// The spec, in the account that holds the group, with that account's IAM client.
pub struct Wanted {
    account: String,
    iam: Arc<dyn Iam>,
    group: Desired,
}

impl Reconciler for IdentityGroup {
    type Desired = Wanted;
    /// What the account has, and the group when it exists.
    type Observed = (Observed, Option<crate::aws::iam::GroupInfo>);
    type Action = Action;
    /// An action of this pass created the group or a user: IAM may not know it yet.
    type Scratch = bool;

    fn management_policy(&self) -> ManagementPolicy {
        self.spec.management_policy
    }

    fn desired(&self, pass: &Pass) -> Result<Wanted, Error> {
        let group = desired(self)?;
        let (account, iam) = target(self, pass)?;
        Ok(Wanted {
            account,
            iam,
            group,
        })
    }

    async fn observe(&self, w: &Wanted, _pass: &Pass) -> Result<Self::Observed, Error> {
        // In a plan, an account that apply would create has no groups yet: nothing to read.
        let planned = super::planned_id(&Key::new(
            Kind::AwsAccount,
            self.spec.account_ref.as_ref().map_or("", |r| r.name.as_str()),
        ));
        if w.account == planned {
            return Ok((
                Observed {
                    missing_users: w.group.members.clone(),
                    ..Default::default()
                },
                None,
            ));
        }
        observe(w.iam.as_ref(), &w.group).await
    }

    fn plan(w: &Wanted, (observed, _): &Self::Observed) -> Result<driver::Plan<Action>, Error> {
        let p = plan::plan(&w.group, observed)?;
        Ok(driver::Plan::new(p.actions, p.drift))
    }

    fn record(&mut self, w: &Wanted, (observed, info): &Self::Observed, _writes: bool) {
        let status = self.status.get_or_insert_with(Default::default);
        status.account_id = Some(w.account.clone());
        if let Some(info) = info {
            status.arn = Some(info.arn.clone());
            status.group_id = Some(info.group_id.clone());
            status.members = observed.members.iter().cloned().collect();
        }
    }

    async fn apply(
        &mut self,
        action: &Action,
        w: &Wanted,
        _observed: &Self::Observed,
        created: &mut bool,
        _pass: &mut Pass,
    ) -> Result<Applied, Error> {
        apply(w.iam.as_ref(), &w.group, action, *created).await?;
        *created |= matches!(action, Action::CreateGroup | Action::CreateUser(_));
        Ok(Applied::Done)
    }

    async fn finish(
        &mut self,
        w: &Wanted,
        (_, info): &Self::Observed,
        _plan: &driver::Plan<Action>,
        outcome: &driver::Outcome,
        _created: bool,
        pass: &Pass,
    ) -> Result<Readiness, Error> {
        if outcome.writes > 0 {
            // Read back what AWS now holds (ARN and id of a new group, the members).
            if let Some(info) = w.iam.group(&w.group.name).await? {
                let status = self.status.get_or_insert_with(Default::default);
                status.arn = Some(info.arn);
                status.group_id = Some(info.group_id);
                status.members = info.members;
            }
        }
        let message = "the group, its policies and its members match the spec".to_string();
        Ok(match (outcome.wrote, info) {
            (true, _) => Readiness::Ready {
                reason: "Available",
                message,
            },
            (false, None) => {
                pass.missing(format!("no IAM group named {:?} exists", w.group.name))
            }
            (false, Some(_)) => Readiness::Ready {
                reason: "Observed",
                message,
            },
        })
    }
}

/// Retain leaves the group; Delete empties it (members, policies) and deletes it.
pub async fn delete(resource: &mut IdentityGroup, pass: &mut Pass) -> Result<Progress, Error> {
    let g = resource.clone();
    if g.spec.deletion_policy != DeletionPolicy::Delete
        || g.spec.management_policy == ManagementPolicy::Observe
    {
        return Ok(Progress::ready("Retained", "the group was left as it is"));
    }
    let d = desired(&g)?;
    let (_, iam) = target(&g, pass)?;
    let (observed, info) = observe(iam.as_ref(), &d).await?;
    let mut progress = Progress::ready("Deleted", "the group was emptied and deleted");
    if info.is_none() {
        return Ok(progress);
    }
    let actions = plan::plan_delete(&observed);
    progress.actions = actions.iter().map(ToString::to_string).collect();
    progress.actions.push("delete the group".into());
    if pass.mode == Mode::Apply {
        for action in &actions {
            apply(iam.as_ref(), &d, action, false).await?;
            progress.writes += 1;
        }
        iam.delete_group(&d.name).await?;
        progress.writes += 1;
    }
    Ok(progress)
}

impl super::KindSpec for crate::api::IdentityGroup {
    const KIND: super::Kind = super::Kind::IdentityGroup;
    const DEPENDS_ON: &'static [super::Kind] = &[super::Kind::AwsAccount];
    crate::status_access!();

    fn dependencies(&self) -> Vec<super::Key> {
        super::registry::refs(super::Kind::AwsAccount, &self.spec.account_ref)
    }
    fn aws_id(&self) -> Option<String> {
        self.status.as_ref().and_then(|s| s.arn.clone())
    }
    fn deletion_policy(&self) -> &'static str {
        super::registry::deletion(self.spec.deletion_policy)
    }
}
