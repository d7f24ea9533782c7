//! AwsAccount: which account is this resource (the crash-safe create flow), and what must change (pure).

use crate::api::{Drift, ManagementPolicy, Tags};
use crate::aws::organizations::{AccountInfo, CreateAccountStatus, CreateState, NewAccount};
use crate::reconcile::tags::diff_tags;
use crate::reconcile::{Error, OrgSnapshot, Readiness};

/// The spec, with references resolved to AWS ids.
#[derive(Clone, Debug)]
pub struct Desired {
    pub name: String,
    pub email: String,
    pub parent_id: String,
    pub tags: Tags,
    pub role_name: String,
    pub iam_user_access_to_billing: Option<String>,
    pub policy: ManagementPolicy,
}

/// Reason of a CreateAccount request that failed for a cause a human must fix.
pub const CREATE_FAILED: &str = "CreateAccountFailed";
/// … and of one that failed for a cause that passes (it is requested again).
pub const CREATE_RETRY: &str = "CreateAccountRetrying";

/// Ready reason of an account whose CreateAccount request is in progress (or about to be sent).
pub const CREATING: &str = "Creating";
/// … and of an account whose request SUCCEEDED but that the Organization does not list yet.
pub const NOT_YET_VISIBLE: &str = "AccountNotYetVisible";

/// Whether an account is being made (its request in flight, or made and not listed yet): looked
/// at again within a second, not at the next resync.
pub fn being_created(ready: &crate::reconcile::Readiness) -> bool {
    matches!(
        ready,
        crate::reconcile::Readiness::NotReady { reason, .. } if *reason == CREATING || *reason == NOT_YET_VISIBLE
    )
}

/// … and of an email AWS says is taken while another request for the same name is in flight.
pub const EMAIL_HELD_IN_FLIGHT: &str = "EmailHeldByRequestInFlight";
/// … and while a request for the same name has SUCCEEDED and its account is not listed yet.
pub const EMAIL_HELD_NOT_LISTED: &str = "EmailHeldByAccountNotYetListed";
/// The email is the root email of an account outside this Organization.
pub const EMAIL_IN_USE: &str = "EmailAlreadyInUse";

/// How long after a CreateAccount request of the same name SUCCEEDED its account, not yet listed,
/// is waited for before an email AWS calls taken is said to be someone else's. AWS documents no
/// bound on when a new account is listed (seen: seconds); the operator already gives a new
/// account this long to finish being set up (its access role), and an account that is still not
/// listed after it has left the Organization, or never was this resource's: either way its email
/// is outside the Organization.
pub const NOT_LISTED_BOUND: std::time::Duration = crate::aws::organizations::NEW_ACCOUNT_GRACE;

/// Which AWS account (or create request) this resource is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// Known by the account id in status.
    Known(AccountInfo),
    /// Found without an id in status: by its create request, or by its root email.
    Adopted {
        account: AccountInfo,
        by: &'static str,
    },
    /// CreateAccount is still running.
    Creating { request_id: String },
    /// CreateAccount succeeded, but the account is not listed yet (eventual consistency).
    Created {
        request_id: String,
        account_id: String,
    },
    /// Nothing in AWS: safe to create.
    Missing,
}

/// Decides which account this resource is, in the order that never creates a second account:
/// the id in status, then the create request (from status, or in flight under the same name),
/// then an account with the same root email; only then is it missing.
///
/// `succeeded` holds the SUCCEEDED CreateAccount requests of this account name, read only when
/// AWS said the email is taken and no listed account has it (`email_taken`).
pub fn identify(
    desired: &Desired,
    status_account_id: Option<&str>,
    request: Option<&CreateAccountStatus>,
    snap: &OrgSnapshot,
    succeeded: &[CreateAccountStatus],
    now: std::time::SystemTime,
) -> Result<Identity, Error> {
    if let Some(id) = status_account_id {
        return match snap.accounts.get(id) {
            Some(a) => Ok(Identity::Known(a.clone())),
            None => Err(Error::conflict(
                "AccountNotInOrganization",
                format!(
                    "account {id} recorded in status is no longer in the Organization (removed or left); \
                     the operator will not create a replacement on its own: delete and re-create this resource to start over"
                ),
            )),
        };
    }
    if let Some(req) = request {
        match req.state {
            CreateState::InProgress => {
                return Ok(Identity::Creating {
                    request_id: req.request_id.clone(),
                });
            }
            CreateState::Succeeded => {
                let account_id = req.account_id.clone().unwrap_or_default();
                return Ok(match snap.accounts.get(&account_id) {
                    Some(a) => Identity::Adopted {
                        account: a.clone(),
                        by: "its create request",
                    },
                    None => Identity::Created {
                        request_id: req.request_id.clone(),
                        account_id,
                    },
                });
            }
            CreateState::Failed => {
                let reason = req
                    .failure_reason
                    .clone()
                    .unwrap_or_else(|| "UNKNOWN".into());
                if req.email_taken() {
                    return email_taken(desired, req, snap, succeeded, now);
                }
                // AWS's own hiccups: asking again is the documented remedy.
                if matches!(
                    reason.as_str(),
                    "CONCURRENT_ACCOUNT_MODIFICATION" | "INTERNAL_FAILURE"
                ) {
                    return Err(Error::transient(
                        CREATE_RETRY,
                        format!(
                            "CreateAccount request {} failed with {reason}, which passes on its own; the account is requested again shortly",
                            req.request_id
                        ),
                    ));
                }
                return Err(Error::conflict(
                    CREATE_FAILED,
                    format!(
                        "CreateAccount request {} failed with {reason}; fix the cause (see the AWS Organizations docs for {reason}) \
                         and the account is requested again on the next reconcile",
                        req.request_id
                    ),
                ));
            }
        }
    }
    if let Some(a) = snap.account_by_email(&desired.email) {
        return Ok(Identity::Adopted {
            account: a.clone(),
            by: "its email",
        });
    }
    Ok(Identity::Missing)
}

/// What a CreateAccount refused with EMAIL_ALREADY_EXISTS means, from what AWS already knows:
/// "outside this Organization" only when nothing here can hold the email.
///
/// 1. An account listed with the email: this resource's own, made by an earlier request whose
///    answer was lost (or by hand): adopted.
/// 2. Another request of this account name in progress: perhaps this resource's own, sent before
///    an answer was lost: waited for.
/// 3. A request of this account name that SUCCEEDED less than [`NOT_LISTED_BOUND`] ago, whose
///    account is not listed yet: AWS lists a new account some time after its request reports
///    SUCCEEDED, and that account may hold the email: waited for. (A listed account of such a
///    request has another email, or it would be case 1: not evidence.)
/// 4. None of these: the email is the root email of an account outside this Organization.
pub fn email_taken(
    desired: &Desired,
    refused: &CreateAccountStatus,
    snap: &OrgSnapshot,
    succeeded: &[CreateAccountStatus],
    now: std::time::SystemTime,
) -> Result<Identity, Error> {
    if let Some(a) = snap.account_by_email(&desired.email) {
        return Ok(Identity::Adopted {
            account: a.clone(),
            by: "its email (CreateAccount said EMAIL_ALREADY_EXISTS)",
        });
    }
    if let Some(twin) = snap.other_in_flight_for(&desired.name, &refused.request_id) {
        return Err(Error::transient(
            EMAIL_HELD_IN_FLIGHT,
            format!(
                "CreateAccount request {} says {} is taken, and request {} for the same account name {:?} \
                 is in progress: it may be this resource's own, sent before an answer was lost; its account \
                 is adopted once AWS lists it, else the email is reported as taken",
                refused.request_id, desired.email, twin.request_id, desired.name
            ),
        ));
    }
    let unlisted = succeeded.iter().find_map(|r| {
        let id = r.account_id.as_deref()?;
        let ended = r.completed?;
        let age = now.duration_since(ended).unwrap_or_default();
        (r.account_name == desired.name
            && r.state == CreateState::Succeeded
            && !snap.accounts.contains_key(id)
            && age < NOT_LISTED_BOUND)
            .then_some((r, id, age))
    });
    if let Some((r, id, age)) = unlisted {
        return Err(Error::transient(
            EMAIL_HELD_NOT_LISTED,
            format!(
                "CreateAccount request {} says {} is taken, and request {} for the same account name {:?} \
                 made account {id} {} s ago, which AWS does not list yet: it may be this resource's own, \
                 sent before an answer was lost; it is adopted once AWS lists it with this email, and \
                 the email is reported as taken if it is not listed {} min after its request ended",
                refused.request_id,
                desired.email,
                r.request_id,
                desired.name,
                age.as_secs(),
                NOT_LISTED_BOUND.as_secs() / 60
            ),
        ));
    }
    Err(Error::conflict(
        EMAIL_IN_USE,
        format!(
            "AWS says {} is already the root email of an account outside this Organization \
             (no account here has it, and no request for {:?} is in progress or made an account not yet listed): \
             use another mailbox, or invite that account into the Organization",
            desired.email, desired.name
        ),
    ))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Create(NewAccount),
    Move {
        id: String,
        from: String,
        to: String,
    },
    Tag {
        id: String,
        tags: Tags,
    },
    Untag {
        id: String,
        keys: Vec<String>,
    },
    Close {
        id: String,
    },
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Create(a) => write!(f, "create account {:?} <{}>", a.name, a.email),
            Action::Move { id, from, to } => write!(f, "move {id} from {from} to {to}"),
            Action::Tag { tags, .. } => write!(
                f,
                "set tags {}",
                tags.keys().cloned().collect::<Vec<_>>().join(",")
            ),
            Action::Untag { keys, .. } => write!(f, "remove tags {}", keys.join(",")),
            Action::Close { id } => write!(f, "close account {id}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Drift the actions correct.
    pub drift: Vec<Drift>,
    /// Drift reported but not corrected by this operator (e.g. the account name).
    pub reported_only: Vec<Drift>,
    pub ready: Readiness,
}

fn ready() -> Readiness {
    Readiness::Ready {
        reason: "Available",
        message: "the account is active, in its OU, and matches the spec".into(),
    }
}

pub fn plan(desired: &Desired, identity: &Identity, observed_tags: &Tags) -> Result<Plan, Error> {
    let mut out = Plan {
        actions: vec![],
        drift: vec![],
        reported_only: vec![],
        ready: ready(),
    };
    let account = match identity {
        Identity::Missing => {
            out.actions.push(Action::Create(NewAccount {
                name: desired.name.clone(),
                email: desired.email.clone(),
                role_name: desired.role_name.clone(),
                iam_user_access_to_billing: desired.iam_user_access_to_billing.clone(),
                tags: desired.tags.clone(),
            }));
            out.ready = Readiness::NotReady {
                reason: CREATING,
                message: "the account is being created".into(),
            };
            return Ok(out);
        }
        Identity::Creating { request_id } => {
            out.ready = Readiness::NotReady {
                reason: CREATING,
                message: format!(
                    "CreateAccount request {request_id} is in progress; AWS usually takes a few minutes"
                ),
            };
            return Ok(out);
        }
        Identity::Created { account_id, .. } => {
            out.ready = Readiness::NotReady {
                reason: NOT_YET_VISIBLE,
                message: format!(
                    "account {account_id} was created and is not listed by AWS yet; checking again shortly"
                ),
            };
            return Ok(out);
        }
        Identity::Known(a) | Identity::Adopted { account: a, .. } => a,
    };
    if account.state != "ACTIVE" {
        out.ready = Readiness::NotReady {
            reason: "AccountNotActive",
            message: format!(
                "account {} is {}; no changes are made to it",
                account.id, account.state
            ),
        };
        return Ok(out);
    }
    if !account.email.eq_ignore_ascii_case(&desired.email) {
        out.reported_only
            .push(Drift::new("email", &desired.email, &account.email));
    }
    if account.name != desired.name {
        out.reported_only
            .push(Drift::new("accountName", &desired.name, &account.name));
    }
    match account.parent_id.as_deref() {
        Some(p) if p == desired.parent_id => {}
        Some(p) => {
            out.drift
                .push(Drift::new("parentId", &desired.parent_id, p));
            out.actions.push(Action::Move {
                id: account.id.clone(),
                from: p.to_string(),
                to: desired.parent_id.clone(),
            });
        }
        None => {
            return Err(Error::conflict(
                "AccountWithoutParent",
                format!(
                    "account {} has no parent in the Organization's tree; move it to an OU by hand",
                    account.id
                ),
            ));
        }
    }
    let tags = diff_tags(&desired.tags, observed_tags);
    out.drift.extend(tags.drift);
    if !tags.set.is_empty() {
        out.actions.push(Action::Tag {
            id: account.id.clone(),
            tags: tags.set,
        });
    }
    if !tags.remove.is_empty() {
        out.actions.push(Action::Untag {
            id: account.id.clone(),
            keys: tags.remove,
        });
    }
    Ok(out)
}

/// Closing: only with deletionPolicy Close, only when managed, never the management account.
pub fn plan_close(
    account: Option<&AccountInfo>,
    close: bool,
    policy: ManagementPolicy,
    management_account_id: Option<&str>,
) -> Result<Vec<Action>, Error> {
    let Some(a) = account else { return Ok(vec![]) };
    if !close || policy == ManagementPolicy::Observe || a.state != "ACTIVE" {
        return Ok(vec![]);
    }
    if Some(a.id.as_str()) == management_account_id {
        return Err(Error::conflict(
            "ManagementAccount",
            format!(
                "account {} is the Organization's management account and cannot be closed from here; set deletionPolicy: Retain",
                a.id
            ),
        ));
    }
    Ok(vec![Action::Close { id: a.id.clone() }])
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // test tables are tuples by design
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn acct(id: &str, email: &str, parent: &str) -> AccountInfo {
        AccountInfo {
            id: id.into(),
            arn: format!("arn:aws:organizations::1:account/{id}"),
            name: "payments-prod".into(),
            email: email.into(),
            state: "ACTIVE".into(),
            parent_id: Some(parent.into()),
            joined: None,
            joined_method: Some("CREATED".into()),
        }
    }

    fn desired() -> Desired {
        Desired {
            name: "payments-prod".into(),
            email: "aws-payments-prod@example.com".into(),
            parent_id: "ou-prod".into(),
            tags: [("stage".to_string(), "prod".to_string())].into(),
            role_name: "OrganizationAccountAccessRole".into(),
            iam_user_access_to_billing: None,
            policy: ManagementPolicy::Manage,
        }
    }

    fn snap(accounts: Vec<AccountInfo>) -> OrgSnapshot {
        OrgSnapshot {
            root_id: "r-root".into(),
            accounts: accounts.into_iter().map(|a| (a.id.clone(), a)).collect(),
            ..Default::default()
        }
    }

    fn req(
        state: CreateState,
        account_id: Option<&str>,
        failure: Option<&str>,
    ) -> CreateAccountStatus {
        CreateAccountStatus {
            request_id: "car-1".into(),
            account_name: "payments-prod".into(),
            state,
            account_id: account_id.map(Into::into),
            failure_reason: failure.map(Into::into),
            completed: None,
        }
    }

    #[test]
    fn identify_table() {
        let d = desired();
        let a = acct("111111111111", "aws-payments-prod@example.com", "ou-prod");
        let other = acct("222222222222", "someone-else@example.com", "r-root");
        // (reason, status account id, create request, accounts, expected)
        let cases: Vec<(
            &str,
            Option<&str>,
            Option<CreateAccountStatus>,
            Vec<AccountInfo>,
            Result<Identity, &str>,
        )> = vec![
            (
                "known id is observed",
                Some("111111111111"),
                None,
                vec![a.clone()],
                Ok(Identity::Known(a.clone())),
            ),
            (
                "known id no longer in the org: never re-created silently",
                Some("111111111111"),
                None,
                vec![other.clone()],
                Err("AccountNotInOrganization"),
            ),
            (
                "request in progress (from status or in flight by name) is polled, not re-created",
                None,
                Some(req(CreateState::InProgress, None, None)),
                vec![],
                Ok(Identity::Creating {
                    request_id: "car-1".into(),
                }),
            ),
            (
                "request succeeded and the account is listed: adopted",
                None,
                Some(req(CreateState::Succeeded, Some("111111111111"), None)),
                vec![a.clone()],
                Ok(Identity::Adopted {
                    account: a.clone(),
                    by: "its create request",
                }),
            ),
            (
                "request succeeded, account not listed yet: wait, do not create",
                None,
                Some(req(CreateState::Succeeded, Some("111111111111"), None)),
                vec![],
                Ok(Identity::Created {
                    request_id: "car-1".into(),
                    account_id: "111111111111".into(),
                }),
            ),
            (
                "EMAIL_ALREADY_EXISTS and the account is in the org: adopted",
                None,
                Some(req(CreateState::Failed, None, Some("EMAIL_ALREADY_EXISTS"))),
                vec![a.clone()],
                Ok(Identity::Adopted {
                    account: a.clone(),
                    by: "its email (CreateAccount said EMAIL_ALREADY_EXISTS)",
                }),
            ),
            (
                "EMAIL_ALREADY_EXISTS outside the org: a clear error",
                None,
                Some(req(CreateState::Failed, None, Some("EMAIL_ALREADY_EXISTS"))),
                vec![other.clone()],
                Err("EmailAlreadyInUse"),
            ),
            (
                "other failure: reported",
                None,
                Some(req(
                    CreateState::Failed,
                    None,
                    Some("ACCOUNT_LIMIT_EXCEEDED"),
                )),
                vec![],
                Err("CreateAccountFailed"),
            ),
            (
                "same email exists: adopted",
                None,
                None,
                vec![other.clone(), a.clone()],
                Ok(Identity::Adopted {
                    account: a.clone(),
                    by: "its email",
                }),
            ),
            (
                "same email in another case: adopted (emails are case-insensitive)",
                None,
                None,
                vec![acct(
                    "111111111111",
                    "AWS-Payments-Prod@Example.com",
                    "ou-prod",
                )],
                Ok(Identity::Adopted {
                    account: acct("111111111111", "AWS-Payments-Prod@Example.com", "ou-prod"),
                    by: "its email",
                }),
            ),
            (
                "nothing anywhere: missing",
                None,
                None,
                vec![other.clone()],
                Ok(Identity::Missing),
            ),
        ];
        for (reason, id, request, accounts, want) in cases {
            let got = identify(
                &d,
                id,
                request.as_ref(),
                &snap(accounts),
                &[],
                SystemTime::now(),
            );
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{reason}"),
                (Err(e), Err(r)) => assert_eq!(e.reason(), r, "{reason}: {e}"),
                (g, w) => panic!("{reason}: got {g:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn an_email_taken_while_a_request_of_the_same_name_runs_is_waited_for() {
        let d = desired();
        let failed = req(CreateState::Failed, None, Some("EMAIL_ALREADY_EXISTS"));
        let mut twin = req(CreateState::InProgress, None, None);
        twin.request_id = "car-0".into();
        let mut foreign = twin.clone();
        foreign.account_name = "someone-else".into();
        let mut s = snap(vec![]);
        // Only itself in flight, or another name's request: the email is taken.
        s.in_flight = vec![failed.clone(), foreign];
        let e = identify(&d, None, Some(&failed), &s, &[], SystemTime::now()).unwrap_err();
        assert_eq!(e.reason(), "EmailAlreadyInUse", "{e}");
        // A request of the same name in flight: perhaps its own, so waited for, not refused.
        s.in_flight.push(twin);
        let e = identify(&d, None, Some(&failed), &s, &[], SystemTime::now()).unwrap_err();
        assert_eq!(e.reason(), EMAIL_HELD_IN_FLIGHT, "{e}");
        assert!(e.is_retryable(), "{e}");
        assert!(e.to_string().contains("car-0"), "{e}");
        // Once its account is listed: adopted by email.
        s.accounts.insert(
            "111111111111".into(),
            acct("111111111111", "aws-payments-prod@example.com", "r-root"),
        );
        assert!(matches!(
            identify(&d, None, Some(&failed), &s, &[], SystemTime::now()),
            Ok(Identity::Adopted { .. })
        ));
    }

    /// Every interleaving of a create whose answer may have been lost: this resource's own request
    /// (lost: none in status, so it is sent again; refused with EMAIL_ALREADY_EXISTS; in flight;
    /// succeeded), another request of the same name (none, in flight, succeeded a moment or long
    /// ago), its account listed or not yet, and the email listed under another name.
    #[test]
    fn an_email_is_called_someone_elses_only_when_aws_proves_it() {
        let now = SystemTime::now();
        let d = desired();
        let mine = acct("111111111111", "aws-payments-prod@example.com", "r-root");
        let mut renamed = mine.clone();
        renamed.name = "renamed-by-hand".into();
        let strangers = acct("222222222222", "someone-else@example.com", "r-root");
        let refused = {
            let mut r = req(CreateState::Failed, None, Some("EMAIL_ALREADY_EXISTS"));
            r.request_id = "car-refused".into();
            r
        };
        let twin = |name: &str| {
            let mut r = req(CreateState::InProgress, None, None);
            r.request_id = "car-twin".into();
            r.account_name = name.into();
            r
        };
        let made = |name: &str, account: &str, ago: Option<u64>| {
            let mut r = req(CreateState::Succeeded, Some(account), None);
            r.request_id = "car-made".into();
            r.account_name = name.into();
            r.completed = ago.map(|s| now - Duration::from_secs(s));
            r
        };
        let own = |state| req(state, Some("111111111111"), None);
        let name = d.name.as_str();
        struct Case {
            reason: &'static str,
            own: Option<CreateAccountStatus>,
            in_flight: Vec<CreateAccountStatus>,
            succeeded: Vec<CreateAccountStatus>,
            listed: Vec<AccountInfo>,
            want: Result<&'static str, &'static str>,
        }
        let case = |reason, own, in_flight, succeeded, listed, want| Case {
            reason,
            own,
            in_flight,
            succeeded,
            listed,
            want,
        };
        let bound = NOT_LISTED_BOUND.as_secs();
        let cases = vec![
            case("lost, nothing listed: sent again (AWS refuses it if the lost one made the account)",
                None, vec![], vec![], vec![strangers.clone()], Ok("Missing")),
            case("lost, a twin in flight: missing here (the reconcile follows the twin by name first)",
                None, vec![twin(name)], vec![], vec![], Ok("Missing")),
            case("lost, its account listed: adopted by email",
                None, vec![], vec![], vec![mine.clone()], Ok("Adopted")),
            case("lost, its account listed under another name: adopted by email (the name is drift)",
                None, vec![], vec![], vec![renamed.clone()], Ok("Adopted")),
            case("own in flight: polled",
                Some(req(CreateState::InProgress, None, None)), vec![], vec![], vec![], Ok("Creating")),
            case("own succeeded, listed: adopted",
                Some(own(CreateState::Succeeded)), vec![], vec![], vec![mine.clone()], Ok("Adopted")),
            case("own succeeded, not listed yet: waited for",
                Some(own(CreateState::Succeeded)), vec![], vec![], vec![], Ok("Created")),
            case("refused, nothing anywhere: the email is someone else's",
                Some(refused.clone()), vec![], vec![], vec![strangers.clone()], Err(EMAIL_IN_USE)),
            case("refused, its account listed: adopted",
                Some(refused.clone()), vec![], vec![], vec![mine.clone()], Ok("Adopted")),
            case("refused, its account listed under another name: adopted",
                Some(refused.clone()), vec![], vec![], vec![renamed.clone()], Ok("Adopted")),
            case("refused, a twin in flight: waited for",
                Some(refused.clone()), vec![refused.clone(), twin(name)], vec![], vec![], Err(EMAIL_HELD_IN_FLIGHT)),
            case("refused, a twin in flight and the account listed: adopted",
                Some(refused.clone()), vec![twin(name)], vec![], vec![mine.clone()], Ok("Adopted")),
            case("refused, only itself in flight: no twin",
                Some(refused.clone()), vec![refused.clone()], vec![], vec![], Err(EMAIL_IN_USE)),
            case("refused, another name in flight: no twin",
                Some(refused.clone()), vec![twin("someone-else")], vec![], vec![], Err(EMAIL_IN_USE)),
            case("refused, a same-name request succeeded a moment ago, its account not listed: waited for",
                Some(refused.clone()), vec![], vec![made(name, "111111111111", Some(30))], vec![], Err(EMAIL_HELD_NOT_LISTED)),
            case("refused, a same-name request succeeded just inside the bound: waited for",
                Some(refused.clone()), vec![], vec![made(name, "111111111111", Some(bound - 1))], vec![], Err(EMAIL_HELD_NOT_LISTED)),
            case("refused, a same-name request succeeded past the bound, never listed: someone else's",
                Some(refused.clone()), vec![], vec![made(name, "111111111111", Some(bound + 1))], vec![], Err(EMAIL_IN_USE)),
            case("refused, a same-name request's account is listed with another email: not evidence",
                Some(refused.clone()), vec![], vec![made(name, "222222222222", Some(30))], vec![strangers.clone()], Err(EMAIL_IN_USE)),
            case("refused, another name's request succeeded a moment ago: not evidence",
                Some(refused.clone()), vec![], vec![made("someone-else", "333333333333", Some(30))], vec![], Err(EMAIL_IN_USE)),
            case("refused, a same-name success with no completion time cannot be bounded: not evidence",
                Some(refused.clone()), vec![], vec![made(name, "111111111111", None)], vec![], Err(EMAIL_IN_USE)),
            case("refused, a same-name success a moment ago, now listed: adopted by email",
                Some(refused.clone()), vec![], vec![made(name, "111111111111", Some(30))], vec![mine.clone()], Ok("Adopted")),
        ];
        for c in cases {
            let mut s = snap(c.listed);
            s.in_flight = c.in_flight;
            let got = identify(&d, None, c.own.as_ref(), &s, &c.succeeded, now);
            let got = match &got {
                Ok(Identity::Missing) => Ok("Missing"),
                Ok(Identity::Adopted { account, .. }) => {
                    assert_eq!(account.id, "111111111111", "{}", c.reason);
                    Ok("Adopted")
                }
                Ok(Identity::Creating { .. }) => Ok("Creating"),
                Ok(Identity::Created { .. }) => Ok("Created"),
                Ok(Identity::Known(_)) => Ok("Known"),
                Err(e) => Err(e.reason()),
            };
            assert_eq!(got, c.want, "{}", c.reason);
        }
        // The waits pass on their own and say which request they wait for; the verdict needs a human.
        let mut s = snap(vec![]);
        let wait = identify(&d, None, Some(&refused), &s, &[made(name, "111111111111", Some(30))], now)
            .unwrap_err();
        assert!(wait.is_retryable(), "{wait}");
        assert!(wait.to_string().contains("car-made") && wait.to_string().contains("111111111111"), "{wait}");
        s.in_flight = vec![twin(name)];
        let wait = identify(&d, None, Some(&refused), &s, &[], now).unwrap_err();
        assert!(wait.is_retryable() && wait.to_string().contains("car-twin"), "{wait}");
        let verdict = identify(&d, None, Some(&refused), &snap(vec![]), &[], now).unwrap_err();
        assert!(!verdict.is_retryable(), "{verdict}");
        assert!(verdict.to_string().contains("use another mailbox"), "{verdict}");
    }

    #[test]
    fn plan_table() {
        let d = desired();
        let in_place = acct("1", "aws-payments-prod@example.com", "ou-prod");
        let elsewhere = acct("1", "aws-payments-prod@example.com", "ou-dev");
        let tags = |pairs: &[(&str, &str)]| -> Tags {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let mut suspended = in_place.clone();
        suspended.state = "SUSPENDED".into();
        let mut renamed = in_place.clone();
        renamed.name = "old-name".into();
        // (reason, identity, observed tags, actions, drift fields, ready)
        let cases: Vec<(&str, Identity, Tags, Vec<&str>, Vec<&str>, bool)> = vec![
            (
                "missing: create",
                Identity::Missing,
                tags(&[]),
                vec!["create account \"payments-prod\" <aws-payments-prod@example.com>"],
                vec![],
                false,
            ),
            (
                "creating: wait, no second create",
                Identity::Creating {
                    request_id: "car-1".into(),
                },
                tags(&[]),
                vec![],
                vec![],
                false,
            ),
            (
                "in sync",
                Identity::Known(in_place.clone()),
                tags(&[("stage", "prod")]),
                vec![],
                vec![],
                true,
            ),
            (
                "moved out of band: moved back",
                Identity::Known(elsewhere.clone()),
                tags(&[("stage", "prod")]),
                vec!["move 1 from ou-dev to ou-prod"],
                vec!["parentId"],
                true,
            ),
            (
                "tag removed and one added out of band",
                Identity::Adopted {
                    account: in_place.clone(),
                    by: "its email",
                },
                tags(&[("extra", "x")]),
                vec!["set tags stage", "remove tags extra"],
                vec!["tags.stage", "tags.extra"],
                true,
            ),
            (
                "suspended: hands off",
                Identity::Known(suspended),
                tags(&[]),
                vec![],
                vec![],
                false,
            ),
            (
                "renamed: reported, not corrected",
                Identity::Known(renamed),
                tags(&[("stage", "prod")]),
                vec![],
                vec![],
                true,
            ),
        ];
        for (reason, identity, observed, actions, drift, ready) in cases {
            let p = plan(&d, &identity, &observed).unwrap();
            let got: Vec<String> = p.actions.iter().map(ToString::to_string).collect();
            assert_eq!(got, actions, "{reason}");
            let fields: Vec<&str> = p.drift.iter().map(|d| d.field.as_str()).collect();
            assert_eq!(fields, drift, "{reason}");
            assert_eq!(
                matches!(p.ready, Readiness::Ready { .. }),
                ready,
                "{reason}"
            );
        }
        let renamed_plan = plan(
            &d,
            &Identity::Known({
                let mut a = in_place.clone();
                a.name = "old".into();
                a
            }),
            &tags(&[("stage", "prod")]),
        )
        .unwrap();
        assert_eq!(renamed_plan.reported_only[0].field, "accountName");
    }

    #[test]
    fn close_table() {
        let a = acct("1", "e@example.com", "r-root");
        let mut closed = a.clone();
        closed.state = "SUSPENDED".into();
        let mgmt = acct("9", "m@example.com", "r-root");
        // (reason, account, close policy, management policy, management id, expected)
        let cases: Vec<(
            &str,
            Option<&AccountInfo>,
            bool,
            ManagementPolicy,
            Result<usize, &str>,
        )> = vec![
            (
                "Close closes an active account",
                Some(&a),
                true,
                ManagementPolicy::Manage,
                Ok(1),
            ),
            (
                "Retain leaves it",
                Some(&a),
                false,
                ManagementPolicy::Manage,
                Ok(0),
            ),
            (
                "Observe never closes",
                Some(&a),
                true,
                ManagementPolicy::Observe,
                Ok(0),
            ),
            (
                "already closed: nothing to do",
                Some(&closed),
                true,
                ManagementPolicy::Manage,
                Ok(0),
            ),
            (
                "never the management account (the emulator would close it)",
                Some(&mgmt),
                true,
                ManagementPolicy::Manage,
                Err("ManagementAccount"),
            ),
        ];
        for (reason, account, close, policy, want) in cases {
            let got = plan_close(account, close, policy, Some("9")).map(|a| a.len());
            match (got, want) {
                (Ok(n), Ok(m)) => assert_eq!(n, m, "{reason}"),
                (Err(e), Err(r)) => assert_eq!(e.reason(), r, "{reason}"),
                (g, w) => panic!("{reason}: got {g:?}, want {w:?}"),
            }
        }
    }
}
