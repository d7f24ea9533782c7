//! AwsAccount: observe (snapshot, create request, tags) → identify → plan → apply.

pub mod baseline;
pub mod root_credentials;
pub mod plan;

use self::plan::{Action, Desired, Identity};
use super::{Error, Mode, Pass, Progress, Readiness};
use crate::api::{AccountDeletionPolicy, AwsAccount, AwsAccountStatus, ManagementPolicy, Tags};
use crate::aws::AwsError;
use crate::aws::member::AccountClients;
use crate::aws::organizations::{AccountInfo, CreateAccountStatus, SnapshotChange};
use std::sync::atomic::Ordering;


fn status_of(resource: &mut AwsAccount) -> &mut AwsAccountStatus {
    resource
        .status
        .get_or_insert_with(Default::default)
}

/// The create request to follow: the one this resource sent (its id is in status), polled.
async fn create_request(
    status: &AwsAccountStatus,
    pass: &Pass,
) -> Result<Option<CreateAccountStatus>, Error> {
    if status.account_id.is_some() {
        return Ok(None);
    }
    match &status.create_request_id {
        Some(id) => Ok(Some(
            pass.aws
                .organizations
                .describe_create_account_status(id)
                .await?,
        )),
        None => Ok(None),
    }
}

/// What STS said, without the operation that needed it.
fn sts_refusal(message: &str) -> &str {
    message
        .split_once("STS refused it: ")
        .map_or(message, |(_, why)| why)
}

/// A request that failed with EMAIL_ALREADY_EXISTS names an account the snapshot may be too old
/// to hold: this resource's own, made by an earlier request whose answer was lost. New accounts
/// start under the root, so its accounts are read again (one call and its pages) before the plan
/// decides between adopting that account and saying the email is taken.
async fn read_root_if_email_taken(
    req: &CreateAccountStatus,
    email: &str,
    pass: &mut Pass,
) -> Result<(), Error> {
    if !req.email_taken() || pass.snapshot.account_by_email(email).is_some() {
        return Ok(());
    }
    let root = SnapshotChange {
        accounts_under: [pass.snapshot.root_id.clone()].into(),
        ..Default::default()
    };
    let orgs = pass.aws.organizations.clone();
    Ok(pass.snapshot_mut().patch(&root, orgs.as_ref()).await?)
}

/// The SUCCEEDED requests of this account name (ListCreateAccountStatus, its pages; a rare
/// path), for `plan::email_taken`, when the email is still taken after `read_root_if_email_taken`
/// and no other request of the name is in flight: AWS lists a new account some time after its
/// request reports SUCCEEDED.
async fn same_name_successes(
    req: &CreateAccountStatus,
    desired: &Desired,
    pass: &Pass,
) -> Result<Vec<CreateAccountStatus>, Error> {
    if !req.email_taken()
        || pass.snapshot.account_by_email(&desired.email).is_some()
        || pass
            .snapshot
            .other_in_flight_for(&desired.name, &req.request_id)
            .is_some()
    {
        return Ok(vec![]);
    }
    let mut succeeded = pass
        .aws
        .organizations
        .list_create_requests(crate::aws::organizations::CreateState::Succeeded)
        .await?;
    succeeded.retain(|r| r.account_name == desired.name);
    Ok(succeeded)
}

/// A request found by name that is not this resource's: it failed (someone else's problem), or
/// made an account with another email.
fn foreign_request(req: &CreateAccountStatus, email: &str, snap: &super::OrgSnapshot) -> bool {
    use crate::aws::organizations::CreateState;
    match req.state {
        CreateState::InProgress => false,
        CreateState::Failed => true,
        CreateState::Succeeded => req
            .account_id
            .as_ref()
            .and_then(|id| snap.accounts.get(id))
            .is_some_and(|a| !a.email.eq_ignore_ascii_case(email)),
    }
}

/// An error from a call inside a member account. The SDK reports a refused AssumeRole as the
/// failure of that call; whether it passes depends on the account: a new account's role is set
/// up by AWS some time after CreateAccount succeeded, an older one needs a human.
pub fn member_error(e: AwsError, account: Option<&AccountInfo>, role_name: &str) -> Error {
    if e.is_expired_session() {
        return Error::transient(
            "SessionExpired",
            format!(
                "the session in account {} expired before AWS said it would ({}); the role is assumed again on the retry",
                account.map(|a| a.id.as_str()).unwrap_or("?"),
                e.message
            ),
        );
    }
    if e.code != crate::aws::error::ASSUME_ROLE_FAILED {
        return e.into();
    }
    let id = account.map(|a| a.id.as_str()).unwrap_or("?");
    match account {
        Some(a) if a.is_new() => Error::transient(
            "AccountNotYetAccessible",
            format!(
                "account {id} was created moments ago and AWS has not finished setting up its role {role_name} ({}); retrying shortly",
                sts_refusal(&e.message)
            ),
        ),
        Some(a) if a.joined_method.as_deref() == Some("INVITED") => Error::conflict(
            "MemberAccessDenied",
            format!(
                "{}. Account {id} was invited into the Organization, so it has no {role_name} unless someone created it: \
                 create that role in the account, trusting the management account, or set spec.roleName to a role that exists \
                 (or spec.baseline: false to manage it from the Organization only); retried on the next resync",
                e.message
            ),
        ),
        _ => Error::conflict(
            "MemberAccessDenied",
            format!(
                "{}. Check that {role_name} exists in account {id} and trusts the management account, and that the operator's \
                 IAM policy allows sts:AssumeRole on it (docs/iam-policy.json names OrganizationAccountAccessRole; add a custom \
                 roleName there); retried on the next resync",
                e.message
            ),
        ),
    }
}

fn record(status: &mut AwsAccountStatus, account: &AccountInfo) {
    status.account_id = Some(account.id.clone());
    status.arn = Some(account.arn.clone());
    status.state = Some(account.state.clone());
    status.parent_id = account.parent_id.clone();
}

/// Reason of an existing account a claim's AwsAccount may not adopt.
pub const NOT_CLAIMABLE: &str = "AccountNotClaimable";

/// `<namespace>/<claim>` of the AccountClaim that composed this account, if one did, and its
/// AccountClass.
fn claimed_by(account: &AwsAccount) -> Option<(String, String)> {
    let labels = account.metadata.labels.as_ref()?;
    (labels.get(crate::claims::LABEL_KIND)?.as_str() == "AccountClaim").then_some(())?;
    Some((
        format!(
            "{}/{}",
            labels.get(crate::claims::LABEL_NAMESPACE)?,
            labels.get(crate::claims::LABEL_CLAIM)?
        ),
        labels.get(crate::claims::LABEL_CLASS).cloned().unwrap_or_default(),
    ))
}

/// Reason of a closure AWS refused for its closure quota (the controller parks it).
pub const CLOSE_REFUSED: &str = "CloseAccountRefused";

pub async fn reconcile(resource: &mut AwsAccount, pass: &mut Pass) -> Result<Progress, Error> {
    let spec = resource.spec.clone();
    let desired = Desired {
        name: spec.account_name.clone(),
        email: spec.email.clone(),
        parent_id: pass.resolve_parent(&spec.organizational_unit_ref, &spec.parent_id)?,
        tags: spec.tags.clone(),
        role_name: spec.role_name.clone(),
        iam_user_access_to_billing: spec
            .iam_user_access_to_billing
            .map(|b| b.as_str().to_string()),
        policy: spec.management_policy,
    };
    let write = pass.mode == Mode::Apply && desired.policy == ManagementPolicy::Manage;
    let mut progress = Progress::ready("Available", "");
    let mut request = {
        let status = status_of(resource);
        // A request in flight under this name that this resource did not record: perhaps its own,
        // sent just before a crash, perhaps another resource's with the same name. Follow it; AWS
        // tells its email only once the account exists.
        if status.account_id.is_none()
            && status.create_request_id.is_none()
            && pass.snapshot.account_by_email(&desired.email).is_none()
            && let Some(other) = pass.snapshot.in_flight_for(&desired.name)
        {
            status.create_request_id = Some(other.request_id.clone());
            status.create_request_found_by_name = true;
        }
        create_request(status, pass).await?
    };
    // A request that has finished frees its slot under AWS's limit of 5 at once (the queued
    // accounts need no new read of the Organization to see it).
    if let Some(req) = &request
        && req.state != crate::aws::organizations::CreateState::InProgress
    {
        pass.creates
            .finished(&pass.snapshot.in_flight, &req.request_id);
    }
    if let Some(req) = &request {
        read_root_if_email_taken(req, &desired.email, pass).await?;
    }
    // … and adopt what it made only if it is this resource's account.
    if status_of(resource).create_request_found_by_name
        && let Some(req) = &request
        && foreign_request(req, &desired.email, &pass.snapshot)
    {
        let status = status_of(resource);
        status.create_request_id = None;
        status.create_request_found_by_name = false;
        request = None;
    }
    // … and, for the request this resource keeps, what AWS knows of its name's successes.
    let mut succeeded = match &request {
        Some(req) => same_name_successes(req, &desired, pass).await?,
        None => vec![],
    };
    // Whether this pass finishes setting up the account this resource's own CreateAccount made.
    let mut finishing_create = false;
    // At most two rounds: the second one continues right after a CreateAccount that finished at once.
    for _round in 0..2 {
        let identity = {
            let status = status_of(resource);
            let identity = match plan::identify(
                &desired,
                status.account_id.as_deref(),
                request.as_ref(),
                &pass.snapshot,
                &succeeded,
                std::time::SystemTime::now(),
            ) {
                Err(e) if [plan::CREATE_FAILED, plan::CREATE_RETRY].contains(&e.reason()) => {
                    // A failed request created nothing: forget it so the next reconcile may ask again.
                    status.create_request_id = None;
                    return Err(e);
                }
                other => other?,
            };
            match &identity {
                Identity::Known(a) => record(status, a),
                Identity::Adopted { account, by } => {
                    record(status, account);
                    // The account this resource's own CreateAccount made (now or in an earlier
                    // pass) is not an adoption: setting it up is the rest of creating it.
                    finishing_create |= progress.writes > 0
                        || (request.is_some() && !status.create_request_found_by_name);
                    if !finishing_create {
                        progress.actions.push(format!(
                            "adopt existing account {} (found by {by})",
                            account.id
                        ));
                    }
                }
                // The id goes into status only once the account is listed: until then the request
                // (whose id is in status) is polled, so the account is never "not in the Organization".
                Identity::Created { .. } => {
                    // AWS knows an account the snapshot lacks. New accounts start under the
                    // root: reading the root's accounts again finds it, once AWS lists it.
                    pass.aws.changed_in_aws(SnapshotChange {
                        accounts_under: [pass.snapshot.root_id.clone()].into(),
                        ..Default::default()
                    });
                }
                Identity::Creating { request_id } => {
                    status.create_request_id = Some(request_id.clone())
                }
                Identity::Missing => {}
            }
            identity
        };
        // A claim's account is only ever one the claim created: an account found by its email
        // (after a crash, or when CreateAccount answered EMAIL_ALREADY_EXISTS) is adopted only
        // when the tag its CreateAccount set says this claim made it.
        if let Identity::Adopted { account, .. } = &identity
            && let Some((owner, class)) = claimed_by(resource)
            && let Err(why) = crate::claims::account_belongs_to_claim(
                &pass.aws.organizations.list_tags(&account.id).await?,
                &owner,
                &class,
            )
        {
            let status = status_of(resource);
            (status.account_id, status.arn, status.state, status.parent_id) = (None, None, None, None);
            // The request followed by name made someone else's account: forgotten, so that no
            // later path (a deletion that closes) follows it again.
            status.create_request_id = None;
            return Err(Error::conflict(
                NOT_CLAIMABLE,
                format!(
                    "account {} with email {} already exists and {why}: a claim only gets an account it created itself, under its own class; ask the platform team (the class's emailTemplate decides the email)",
                    account.id, desired.email
                ),
            ));
        }
        let tags = match &identity {
            // Created a moment ago with exactly the desired tags: no need to read them back.
            _ if progress.writes > 0 => desired.tags.clone(),
            // In sync at its last own read and no change event since (`Pass::own_reads`).
            Identity::Known(a) if a.state == "ACTIVE" && !pass.own_reads => desired.tags.clone(),
            Identity::Known(a) | Identity::Adopted { account: a, .. } if a.state == "ACTIVE" => {
                match pass.aws.organizations.list_tags(&a.id).await {
                    Ok(tags) => tags,
                    // Listed, yet unknown to the tag API: AWS is still finishing a new account.
                    Err(e) if e.code == "TargetNotFoundException" && a.is_new() => {
                        return Err(Error::transient(
                            plan::NOT_YET_VISIBLE,
                            format!(
                                "account {} was created moments ago and AWS does not know it for tags yet; retrying shortly",
                                a.id
                            ),
                        ));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            _ => Tags::new(),
        };
        let plan = plan::plan(&desired, &identity, &tags)?;
        // Right after CreateAccount, moving the new account into its OU is the rest of creating it, not drift.
        if !finishing_create {
            progress.drift.extend(plan.drift.iter().cloned());
        }
        progress.remaining = plan.reported_only.clone();
        if !write {
            progress.remaining.extend(plan.drift.iter().cloned());
        }
        progress.ready = plan.ready.clone();
        progress
            .actions
            .extend(plan.actions.iter().map(ToString::to_string));
        if !write {
            if identity == Identity::Missing {
                progress.ready =
                    pass.missing(format!("no account with email {} exists", desired.email));
            }
            break;
        }
        let mut created = None;
        for action in &plan.actions {
            match action {
                Action::Create(new) => {
                    // Requests in flight when the pass read the Organization, and those sent
                    // since (resources are reconciled concurrently), less those seen finished.
                    let who = kube::ResourceExt::name_any(resource);
                    if let Err(in_flight) = pass.creates.reserve(&pass.snapshot.in_flight, &who) {
                        return Err(Error::Queued {
                            message: format!(
                                "{in_flight} CreateAccount requests are in flight (AWS allows 5): this account is requested when one finishes"
                            ),
                        });
                    }
                    // Waiting for a pacing slot happens here, not inside the HTTP client.
                    if let Err(wait) = pass.aws.pacer.available("management/CreateAccount") {
                        pass.creates.release();
                        return Err(Error::Queued {
                            message: format!(
                                "CreateAccount is paced below AWS's rate: this account is requested in {} s",
                                wait.as_secs_f64().ceil()
                            ),
                        });
                    }
                    let result = match pass.aws.organizations.create_account(new).await {
                        Ok(r) => r,
                        Err(e) => {
                            pass.creates.release();
                            // AWS's own in-flight limit (another actor's requests count too).
                            if e.is_throttle() {
                                return Err(Error::Queued {
                                    message: format!(
                                        "AWS refused CreateAccount for now ({}: {}): this account is requested again shortly",
                                        e.code, e.message
                                    ),
                                });
                            }
                            return Err(e.into());
                        }
                    };
                    pass.creates.sent(&result.request_id);
                    progress.writes += 1;
                    // The request id is made durable before anything else, so a crash never creates twice.
                    status_of(resource).create_request_id = Some(result.request_id.clone());
                    pass.checkpoint(resource).await?;
                    created = Some(result);
                }
                other => {
                    apply(other, pass).await?;
                    progress.writes += 1;
                }
            }
        }
        match created {
            Some(result) => {
                if result.state != crate::aws::organizations::CreateState::InProgress {
                    pass.creates
                        .finished(&pass.snapshot.in_flight, &result.request_id);
                }
                if let (Some(id), crate::aws::organizations::CreateState::Succeeded) =
                    (&result.account_id, result.state)
                {
                    // New accounts start under the root, tagged as requested; the shared
                    // snapshot reads the root's accounts again to hold it too.
                    let root = pass.snapshot.root_id.clone();
                    pass.aws.changed_in_aws(SnapshotChange {
                        accounts_under: [root.clone()].into(),
                        ..Default::default()
                    });
                    pass.snapshot_mut().accounts.insert(
                        id.clone(),
                        AccountInfo {
                            id: id.clone(),
                            arn: String::new(),
                            name: desired.name.clone(),
                            email: desired.email.clone(),
                            state: "ACTIVE".into(),
                            parent_id: Some(root),
                            joined: Some(std::time::SystemTime::now()),
                            joined_method: Some("CREATED".into()),
                        },
                    );
                }
                read_root_if_email_taken(&result, &desired.email, pass).await?;
                succeeded = same_name_successes(&result, &desired, pass).await?;
                request = Some(result);
            }
            None => {
                if let Some(s) = resource.status.as_mut()
                    && let Some(id) = &s.account_id
                    && let Some(a) = pass.snapshot.accounts.get(id)
                {
                    s.parent_id = a.parent_id.clone();
                }
                break;
            }
        }
    }
    // The baseline inside the account, once it is usable: alias, password policy, contacts, security report.
    let active = resource
        .status
        .as_ref()
        .filter(|s| s.state.as_deref() == Some("ACTIVE"))
        .and_then(|s| s.account_id.clone());
    // Left out of a reconcile without its own reads: status keeps what the last one found.
    if let (Some(id), Readiness::Ready { .. }, true, true) =
        (active, &progress.ready, spec.baseline, pass.own_reads)
    {
        let info = pass.snapshot.accounts.get(&id).cloned();
        let members = pass.aws.members.clone();
        let classify = |e: AwsError| {
            if e.is_expired_session() {
                members.forget(&id);
            }
            member_error(e, info.as_ref(), &spec.role_name)
        };
        let created = finishing_create
            || progress
                .actions
                .iter()
                .any(|a| a.starts_with("create account"));
        let clients = pass.aws.members.clients(
            Some(&id),
            pass.snapshot.management_account_id(),
            pass.snapshot.partition(),
            &spec.role_name,
        );
        let want = baseline::Desired {
            alias: spec.alias.clone(),
            password_policy: spec.password_policy.clone(),
            contacts: baseline::contacts_of(&spec.alternate_contacts),
        };
        let observed = observe_baseline(&clients, &want).await.map_err(classify)?;
        let (actions, drift) = baseline::plan(&want, &observed);
        // The report describes the account as this pass leaves it.
        let mut after = observed.clone();
        if write {
            after.password_policy = Some(want.password_policy.clone());
        }
        let mut report = baseline::report(&after);
        let mut findings = baseline::findings(&report);
        let mut in_order = baseline::in_order(&report);
        // No root credentials at all, through a root session.
        if spec.root_credentials == crate::api::aws_account::RootCredentials::Absent {
            let task = if write {
                root_credentials::DELETE_TASK
            } else {
                root_credentials::AUDIT_TASK
            };
            let partition = pass.snapshot.partition().to_string();
            let session = root_credentials::root_session(&pass.aws, &id, &partition, task)
                .await
                .map_err(|e| {
                    if e.code.contains("AccessDenied") || e.code == "Unimplemented" {
                        Error::transient(
                            "RootSessionsNotEnabled",
                            format!(
                                "rootCredentials: Absent needs a root session in {id}, and AWS refused one ({}): set rootAccess.credentialsManagement and rootAccess.rootSessions in the Organization resource; retried shortly",
                                e.message
                            ),
                        )
                    } else {
                        e.into()
                    }
                })?;
            let found = root_credentials::audit(&session).await?;
            let mut left = found.clone();
            if !found.is_empty() {
                let deletions = found.deletions();
                if write {
                    progress.writes += root_credentials::delete(&session, &found).await?;
                    progress.actions.extend(deletions);
                    left = Default::default();
                } else {
                    progress.remaining.push(crate::api::Drift::new(
                        "rootCredentials",
                        "Absent",
                        deletions.len().to_string() + " credential(s)",
                    ));
                    if pass.mode == Mode::Plan {
                        progress.actions.extend(deletions);
                    }
                }
                progress.drift.push(crate::api::Drift::new(
                    "rootCredentials",
                    "Absent",
                    format!("{} credential(s)", found.deletions().len()),
                ));
            }
            report.root_password_present = left.password;
            report.root_access_keys_present = !left.access_keys.is_empty();
            report.root_mfa_enabled = !left.mfa_devices.is_empty();
            report.root_mfa_devices = Some(left.mfa_devices.len() as i32);
            report.root_signing_certificates = Some(left.signing_certificates.len() as i32);
            report.audited_by = Some("RootSession".into());
            // Under central management any root credential is a finding.
            findings = (!left.is_empty()).then(|| {
                format!(
                    "the root user still has credentials ({}) although rootCredentials is Absent",
                    left.deletions().join("; ")
                )
            });
            in_order = "the root user has no credentials (rootCredentials: Absent)";
        }
        let generation = resource.metadata.generation;
        let status = status_of(resource);
        status.security = Some(report);
        super::conditions::set_condition(
            &mut status.common.conditions,
            "SecurityFindings",
            findings.is_some(),
            if findings.is_some() {
                "RootUserAtRisk"
            } else {
                "NoFindings"
            },
            findings.as_deref().unwrap_or(in_order),
            generation,
            &pass.now,
        );
        if !created {
            progress.drift.extend(drift.iter().cloned());
        }
        progress
            .actions
            .extend(actions.iter().map(ToString::to_string));
        if write {
            for action in &actions {
                apply_baseline(action, &clients, &want, &id, &classify).await?;
                progress.writes += 1;
            }
        } else {
            progress.remaining.extend(drift);
        }
    }
    if let Readiness::Ready { message, .. } = &mut progress.ready
        && message.is_empty()
    {
        *message = "the account is active, in its OU, and matches the spec".into();
    }
    Ok(progress)
}

async fn apply(action: &Action, pass: &mut Pass) -> Result<(), Error> {
    let orgs = pass.aws.organizations.clone();
    match action {
        Action::Create(_) => unreachable!("handled where the request id is persisted"),
        Action::Move { id, from, to } => {
            orgs.move_account(id, from, to).await?;
            if let Some(a) = pass.snapshot_mut().accounts.get_mut(id) {
                a.parent_id = Some(to.clone());
            }
        }
        Action::Tag { id, tags } => orgs.tag_resource(id, tags).await?,
        Action::Untag { id, keys } => orgs.untag_resource(id, keys).await?,
        Action::Close { id } => {
            // Counted in `closes_sent` by the caller until the next read shows it PENDING_CLOSURE.
            orgs.close_account(id)
                .await
                .map_err(|e| close_refused(id, e))?;
        }
    }
    Ok(())
}

/// A closure AWS refused: the 30-day quota is parked for hours; the limit on closures at once
/// frees up within minutes (Organizations API: CloseAccount, ConstraintViolationException reasons).
fn close_refused(id: &str, e: AwsError) -> Error {
    if e.code != "ConstraintViolationException" {
        return e.into();
    }
    if e.message
        .starts_with("CLOSE_ACCOUNT_REQUESTS_LIMIT_EXCEEDED")
    {
        return Error::Queued {
            message: format!(
                "AWS is closing as many accounts at once as it allows (3): account {id} is closed when one of them finishes"
            ),
        };
    }
    if e.message.starts_with("CLOSE_ACCOUNT_QUOTA_EXCEEDED") {
        return Error::conflict(
            CLOSE_REFUSED,
            format!(
                "AWS refused to close account {id}: {}. AWS limits closures to a share of member accounts per 30 days; \
                 the account stays open and closing is tried again after --close-retry-interval",
                e.message
            ),
        );
    }
    Error::conflict(
        "CloseAccountNotAllowed",
        format!(
            "AWS refused to close account {id}: {}; the account stays open, fix the cause and it is tried again on the next resync",
            e.message
        ),
    )
}

#[doc(hidden)]
/// For the tests: how a refused closure reads.
pub fn close_refused_for_test(id: &str, e: AwsError) -> Error {
    close_refused(id, e)
}

/// Reads the baseline inside the account (through its access role).
async fn observe_baseline(
    clients: &AccountClients,
    want: &baseline::Desired,
) -> Result<baseline::Observed, AwsError> {
    let mut contacts = Vec::new();
    for (kind, _) in &want.contacts {
        contacts.push((*kind, clients.contacts.contact(kind).await?));
    }
    Ok(baseline::Observed {
        alias: clients.iam.account_alias().await?,
        password_policy: clients.iam.password_policy().await?,
        contacts,
        root: clients.iam.root_security().await?,
    })
}

async fn apply_baseline(
    action: &baseline::Action,
    clients: &AccountClients,
    want: &baseline::Desired,
    id: &str,
    classify: &(dyn Fn(AwsError) -> Error + Sync),
) -> Result<(), Error> {
    match action {
        baseline::Action::SetAlias(alias) => clients.iam.set_account_alias(alias).await.map_err(|e: AwsError| {
            if e.code == "EntityAlreadyExists" {
                Error::conflict(
                    "AliasTaken",
                    format!("the account alias {alias} is taken (aliases are unique across all of AWS): choose another for account {id}"),
                )
            } else {
                classify(e)
            }
        }),
        baseline::Action::SetPasswordPolicy => clients.iam.set_password_policy(&want.password_policy).await.map_err(classify),
        baseline::Action::SetContact(kind) => {
            let contact = want.contacts.iter().find(|(k, _)| k == kind).map(|(_, c)| c).expect("planned from the spec");
            clients.contacts.set_contact(kind, contact).await.map_err(classify)
        }
    }
}

/// Carries out the deletion policy: Retain leaves the account; Close closes it.
pub async fn delete(account: &mut AwsAccount, pass: &mut Pass) -> Result<Progress, Error> {
    let close = account.spec.deletion_policy == AccountDeletionPolicy::Close;
    let policy = account.spec.management_policy;
    let mut id = account.status.as_ref().and_then(|s| s.account_id.clone());
    let request_id = account
        .status
        .as_ref()
        .and_then(|s| s.create_request_id.clone());
    // Deleted while its CreateAccount is still running: close the account once it exists, so
    // nothing leaks (Retain leaves it, as always).
    if let (None, Some(request_id), true) = (&id, request_id, close) {
        let request = pass
            .aws
            .organizations
            .describe_create_account_status(&request_id)
            .await?;
        match (request.state, request.account_id) {
            (crate::aws::organizations::CreateState::InProgress, _) => {
                return Err(Error::Queued {
                    message: format!(
                        "CreateAccount request {request_id} is still running: the account is closed once it exists"
                    ),
                });
            }
            (crate::aws::organizations::CreateState::Succeeded, Some(new_id)) => {
                if !pass.snapshot.accounts.contains_key(&new_id) {
                    pass.aws.snapshot_outdated();
                    return Err(Error::Queued {
                        message: format!(
                            "account {new_id} was just created and is not listed by AWS yet: it is closed once it is"
                        ),
                    });
                }
                // Only this resource's account is ever closed: a request found by name may have
                // been another resource's (its email tells).
                let email = account.spec.email.clone();
                if pass
                    .snapshot
                    .accounts
                    .get(&new_id)
                    .is_some_and(|a| a.email.eq_ignore_ascii_case(&email))
                {
                    status_of(account).account_id = Some(new_id.clone());
                    id = Some(new_id);
                }
            }
            // Failed: nothing was created, nothing to close.
            _ => {}
        }
    }
    let found = id
        .as_deref()
        .and_then(|id| pass.snapshot.accounts.get(id))
        .cloned();
    // A claim's account is closed only while it carries that claim's tag, read now: whichever way
    // the account was found (its status, a request followed by name), one the claim did not
    // create is never closed.
    let mut not_the_claims = None;
    if close
        && let (Some((owner, class)), Some(a)) = (claimed_by(account), found.as_ref())
        && let Err(why) = crate::claims::account_belongs_to_claim(
            &pass.aws.organizations.list_tags(&a.id).await?,
            &owner,
            &class,
        )
    {
        not_the_claims = Some(format!(
            "account {} was not closed: {why}, and a claim closes only an account it created under its class",
            a.id
        ));
    }
    let close = close && not_the_claims.is_none();
    let actions = plan::plan_close(
        found.as_ref(),
        close,
        policy,
        pass.snapshot.management_account_id(),
    )?;
    // Closing now as the snapshot saw it, plus those this process closed since.
    let closing = pass
        .snapshot
        .accounts
        .values()
        .filter(|a| a.state == "PENDING_CLOSURE")
        .count()
        + pass.closes_sent.load(Ordering::SeqCst);
    if !actions.is_empty()
        && pass.mode == Mode::Apply
        && let Err(wait) = pass.aws.pacer.available("management/CloseAccount")
    {
        return Err(Error::Queued {
            message: format!(
                "CloseAccount is paced below AWS's rate: this account is closed in {} s",
                wait.as_secs_f64().ceil()
            ),
        });
    }
    if !actions.is_empty() && closing >= crate::aws::pacing::MAX_CLOSE_IN_FLIGHT {
        return Err(Error::Queued {
            message: format!(
                "{closing} accounts are closing (AWS allows 3 at once): this one is closed when one finishes"
            ),
        });
    }
    let mut progress = Progress::ready(
        if actions.is_empty() {
            "Retained"
        } else {
            "Closed"
        },
        match (&not_the_claims, actions.is_empty()) {
            (Some(why), _) => why.clone(),
            (None, true) => "the account was left as it is".to_string(),
            (None, false) => "the account was closed".to_string(),
        },
    );
    if let Some(why) = &not_the_claims {
        tracing::warn!(account = %account.spec.account_name, "{why}");
    }
    progress.actions = actions.iter().map(ToString::to_string).collect();
    if pass.mode == Mode::Apply {
        for action in &actions {
            apply(action, pass).await?;
            if matches!(action, Action::Close { .. }) {
                pass.closes_sent.fetch_add(1, Ordering::SeqCst);
            }
            progress.writes += 1;
        }
    }
    Ok(progress)
}

impl super::KindSpec for AwsAccount {
    const KIND: super::Kind = super::Kind::AwsAccount;
    const DEPENDS_ON: &'static [super::Kind] = &[super::Kind::OrganizationalUnit];
    crate::status_access!();

    fn dependencies(&self) -> Vec<super::Key> {
        super::registry::refs(
            super::Kind::OrganizationalUnit,
            &self.spec.organizational_unit_ref,
        )
    }
    fn aws_id(&self) -> Option<String> {
        self.status.as_ref().and_then(|s| s.account_id.clone())
    }
    fn deletion_policy(&self) -> &'static str {
        match self.spec.deletion_policy {
            AccountDeletionPolicy::Retain => "Retain",
            AccountDeletionPolicy::Close => "Close",
        }
    }
    fn member_role(&self) -> Option<(String, String)> {
        let id = self.status.as_ref()?.account_id.clone()?;
        Some((id, self.spec.role_name.clone()))
    }
    fn record_metrics(&self, m: &crate::metrics::Metrics) {
        let name = kube::ResourceExt::name_any(self);
        let Some(s) = &self.status else { return };
        let Some(id) = s.account_id.as_deref() else {
            return;
        };
        m.account_active
            .with_label_values(&[&name, id])
            .set(i64::from(s.state.as_deref() == Some("ACTIVE")));
        if let Some(sec) = &s.security {
            m.account_root_mfa
                .with_label_values(&[&name, id])
                .set(i64::from(sec.root_mfa_enabled));
            m.account_root_keys
                .with_label_values(&[&name, id])
                .set(i64::from(sec.root_access_keys_present));
            m.account_root_password
                .with_label_values(&[&name, id])
                .set(i64::from(sec.root_password_present));
        }
    }
    fn forget_metrics(&self, m: &crate::metrics::Metrics) {
        let name = kube::ResourceExt::name_any(self);
        let Some(id) = super::KindSpec::aws_id(self) else {
            return;
        };
        for g in [
            &m.account_active,
            &m.account_root_mfa,
            &m.account_root_password,
            &m.account_root_keys,
        ] {
            let _ = g.remove_label_values(&[&name, id.as_str()]);
        }
    }
    fn summary(&self) -> Option<String> {
        let s = self.status.as_ref()?;
        let sec = s.security.as_ref()?;
        let root = match (
            sec.root_access_keys_present,
            sec.root_password_present,
            sec.root_mfa_enabled,
        ) {
            (true, _, _) => "root user HAS ACCESS KEYS (delete them)",
            (false, false, _) => "root user without password or access keys",
            (false, true, true) => "root user with password and MFA",
            (false, true, false) => "root user has a password but NO MFA",
        };
        let policy = if sec.password_policy_compliant {
            "password policy compliant"
        } else {
            "password policy NOT compliant"
        };
        Some(format!(
            "account {} ({}): {root}; {policy}",
            self.spec.account_name,
            s.account_id.as_deref().unwrap_or("-")
        ))
    }
}
