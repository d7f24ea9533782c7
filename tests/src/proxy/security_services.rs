//! GuardDuty, Security Hub and IAM Access Analyzer for an Organization, answered by this layer
//! itself, statefully: the emulator lacks their organization calls (GuardDuty's organization
//! configuration and members, Security Hub's standards and administrators) and Access Analyzer
//! altogether.
//!
//! Modelled as the services' API references and user guides describe them:
//! - a delegated administrator is named per region from the management account only
//!   (`EnableOrganizationAdminAccount`); the organization configuration is the administrator's
//!   alone, and Security Hub's needs its hub on;
//! - GuardDuty's auto-enable `ALL` enrols every member account, those there and new ones, `NEW`
//!   the new ones; Security Hub's auto-enable the new ones only (existing ones are added with
//!   `CreateMembers`); neither reaches the management account, which is added as a member;
//! - enrolment takes a while ([`SecurityServicesModel::enrol_after`]): until then an account is
//!   not a member yet (or `Created`, when asked for);
//! - an enrolled account has a detector and a hub of its own, with Security Hub's default
//!   standards when auto-enable says `DEFAULT`;
//! - an ORGANIZATION analyzer is made only by the management account or Access Analyzer's
//!   delegated administrator, with trusted access on (asked of the emulator's Organizations).

use super::*;

#[derive(Clone, Debug)]
pub struct SecurityServicesModel {
    /// How long a service takes to enrol an account.
    pub enrol_after: Duration,
}

impl Default for SecurityServicesModel {
    fn default() -> Self {
        Self {
            enrol_after: Duration::from_millis(500),
        }
    }
}

#[derive(Default)]
pub(super) struct ServicesState {
    pub(super) management: Option<String>,
    /// region → administrator, per service.
    gd_admin: BTreeMap<String, String>,
    sh_admin: BTreeMap<String, String>,
    /// (account, region) → detector id, for detectors made with CreateDetector.
    detectors: BTreeMap<(String, String), String>,
    /// region → (ALL / NEW / NONE, when set).
    gd_auto: BTreeMap<String, (String, Instant)>,
    /// (region, account) → when CreateMembers asked for it.
    gd_added: BTreeMap<(String, String), Instant>,
    /// (account, region) → the standards enabled, for hubs turned on with EnableSecurityHub.
    hubs: BTreeMap<(String, String), BTreeSet<String>>,
    /// region → (auto-enable, DEFAULT / NONE, when set).
    sh_auto: BTreeMap<String, (bool, String, Instant)>,
    sh_added: BTreeMap<(String, String), Instant>,
    /// (account, region) → name → type.
    analyzers: BTreeMap<(String, String), BTreeMap<String, String>>,
    /// Enrolments begun before this are done, however long `enrol_after` is (a test letting AWS's
    /// time pass: [`AwsProxy::finish_enrolments`]).
    pub(super) done_before: Option<Instant>,
    /// When each account joined the Organization (a "new" account joined after auto-enable was
    /// set).
    first_seen: BTreeMap<String, Instant>,
}

/// The detector GuardDuty makes in an account it enrols.
fn member_detector(account: &str) -> String {
    format!("{account:0>32}")
}

const NOW_ISO: &str = "2026-12-01T00:00:00Z";

fn ok(body: Value) -> Answer {
    respond(200, "application/json", body.to_string())
}

fn err(status: u16, code: &str, message: &str) -> Answer {
    json_error(status, code, message, None)
}

/// ACTIVE accounts of the Organization, as the emulator lists them, less those AWS does not list
/// yet; each one's first sighting is kept.
async fn org_accounts(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<Vec<String>, std::io::Error> {
    let mut out = Vec::new();
    let mut joined = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({});
        if let Some(t) = &token {
            body["NextToken"] = json!(t);
        }
        let page = upstream
            .ask_organizations_as_management(call, "ListAccounts", body)
            .await?;
        for a in page["Accounts"].as_array().into_iter().flatten() {
            if a["Status"] == "ACTIVE" {
                out.push(str_of(a, "Id").to_string());
                joined.push(a["JoinedTimestamp"].as_f64());
            }
        }
        token = page["NextToken"].as_str().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    let now = Instant::now();
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let mut s = st.lock().unwrap();
    let hidden = s.hidden_accounts(now);
    for (a, at) in out.iter().zip(joined) {
        // When the account joined, on this layer's clock.
        let ago = Duration::from_secs_f64(at.map_or(0.0, |t| (wall - t).max(0.0)));
        s.services
            .first_seen
            .entry(a.clone())
            .or_insert(now.checked_sub(ago).unwrap_or(now));
    }
    out.retain(|a| !hidden.contains(a));
    Ok(out)
}

/// Accounts a service has enrolled in a region, and those it was asked to add (not yet done).
#[allow(clippy::too_many_arguments)]
fn members(
    s: &State,
    model: &SecurityServicesModel,
    accounts: &[String],
    management: &str,
    admin: &str,
    auto: Option<(&str, Instant)>,
    added: &BTreeMap<(String, String), Instant>,
    region: &str,
    now: Instant,
) -> BTreeMap<String, &'static str> {
    let mut out = BTreeMap::new();
    for a in accounts {
        if a == admin {
            continue;
        }
        let seen = s.services.first_seen.get(a).copied().unwrap_or(now);
        let by_auto = match auto {
            Some(("ALL", at)) if a != management => Some(at.max(seen)),
            Some(("NEW", at)) if a != management && seen > at => Some(seen),
            _ => None,
        };
        let asked = added.get(&(region.to_string(), a.clone())).copied();
        let since = match (by_auto, asked) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        let done = |t: Instant| {
            now >= t + model.enrol_after || s.services.done_before.is_some_and(|d| t <= d)
        };
        match since {
            Some(t) if done(t) => {
                out.insert(a.clone(), "Enabled");
            }
            Some(_) if asked.is_some() => {
                out.insert(a.clone(), "Created");
            }
            _ => {}
        }
    }
    out
}

pub(super) async fn security_services(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<Answer, std::io::Error> {
    let Some(model) = st.lock().unwrap().realism.security_services.clone() else {
        return upstream.forward(call).await;
    };
    let (account, management) = caller_account(call, st, upstream).await?;
    let accounts = org_accounts(call, st, upstream).await?;
    let region = call.region.clone();
    let path = call.parts.uri.path().to_string();
    let method = call.parts.method.as_str().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let now = Instant::now();
    let mut s = st.lock().unwrap();
    let answer = match call.service.as_str() {
        "guardduty" => guardduty(
            &mut s,
            &model,
            &method,
            &segments,
            call,
            &account,
            &management,
            &accounts,
            &region,
            now,
        ),
        "securityhub" => securityhub(
            &mut s,
            &model,
            &method,
            &segments,
            call,
            &account,
            &management,
            &accounts,
            &region,
            now,
        ),
        _ => {
            drop(s);
            return access_analyzer(
                call,
                st,
                upstream,
                &method,
                &segments,
                &account,
                &management,
                &region,
            )
            .await;
        }
    };
    Ok(answer)
}

#[allow(clippy::too_many_arguments)]
fn guardduty(
    s: &mut State,
    model: &SecurityServicesModel,
    method: &str,
    seg: &[&str],
    call: &Call,
    account: &str,
    management: &str,
    accounts: &[String],
    region: &str,
    now: Instant,
) -> Answer {
    let admin = s.services.gd_admin.get(region).cloned();
    let auto = s.services.gd_auto.get(region).cloned();
    let enrolled = |s: &State| match &admin {
        Some(a) => members(
            s,
            model,
            accounts,
            management,
            a,
            auto.as_ref().map(|(v, at)| (v.as_str(), *at)),
            &s.services.gd_added,
            region,
            now,
        ),
        None => BTreeMap::new(),
    };
    let own = |s: &State| -> Option<String> {
        s.services
            .detectors
            .get(&(account.to_string(), region.to_string()))
            .cloned()
            .or_else(|| {
                (enrolled(s).get(account) == Some(&"Enabled")).then(|| member_detector(account))
            })
    };
    match (method, seg) {
        ("POST", ["admin", "enable"]) => {
            if account != management {
                return err(
                    400,
                    "BadRequestException",
                    "The request is rejected because the current account is not the organization management account.",
                );
            }
            let id = str_of(&call.json, "adminAccountId").to_string();
            s.services.gd_admin.insert(region.to_string(), id);
            ok(json!({}))
        }
        ("GET", ["admin"]) => ok(
            json!({"adminAccounts": admin.iter().map(|a| json!({"adminAccountId": a, "adminStatus": "ENABLED"})).collect::<Vec<_>>()}),
        ),
        ("POST", ["detector"]) => {
            if own(s).is_some() {
                return err(
                    400,
                    "BadRequestException",
                    "The request is rejected because a detector already exists for the current account.",
                );
            }
            s.sequence += 1;
            let id = format!("{:032x}", s.sequence);
            s.services
                .detectors
                .insert((account.to_string(), region.to_string()), id.clone());
            ok(json!({"detectorId": id}))
        }
        ("GET", ["detector"]) => ok(json!({"detectorIds": own(s).into_iter().collect::<Vec<_>>()})),
        ("GET", ["detector", id]) if own(s).as_deref() == Some(*id) => ok(json!({
            "status": "ENABLED", "serviceRole": format!("arn:aws:iam::{account}:role/aws-service-role/guardduty.amazonaws.com/AWSServiceRoleForAmazonGuardDuty"),
            "findingPublishingFrequency": "SIX_HOURS", "createdAt": NOW_ISO, "updatedAt": NOW_ISO,
        })),
        (_, ["detector", id, ..]) if own(s).as_deref() != Some(*id) => err(
            400,
            "BadRequestException",
            "The request is rejected because the input detectorId is not owned by the current account.",
        ),
        ("GET", ["detector", _, "admin"]) | ("POST", ["detector", _, "admin"])
            if admin.as_deref() != Some(account) =>
        {
            err(
                400,
                "BadRequestException",
                "The request is rejected because the current account is not the delegated administrator of the organization.",
            )
        }
        ("GET", ["detector", _, "admin"]) => {
            let value = auto.map(|(v, _)| v).unwrap_or_else(|| "NONE".into());
            ok(
                json!({"autoEnable": value != "NONE", "autoEnableOrganizationMembers": value, "memberAccountLimitReached": false}),
            )
        }
        ("POST", ["detector", _, "admin"]) => {
            let value = call.json["autoEnableOrganizationMembers"]
                .as_str()
                .unwrap_or("NONE")
                .to_string();
            let keep = s
                .services
                .gd_auto
                .get(region)
                .filter(|(v, _)| *v == value)
                .map(|(_, at)| *at);
            s.services
                .gd_auto
                .insert(region.to_string(), (value, keep.unwrap_or(now)));
            ok(json!({}))
        }
        ("POST", ["detector", _, "member"]) => {
            if admin.as_deref() != Some(account) {
                return err(
                    400,
                    "BadRequestException",
                    "The request is rejected because the current account is not the delegated administrator of the organization.",
                );
            }
            for d in call.json["accountDetails"].as_array().into_iter().flatten() {
                s.services
                    .gd_added
                    .entry((region.to_string(), str_of(d, "accountId").to_string()))
                    .or_insert(now);
            }
            ok(json!({"unprocessedAccounts": []}))
        }
        ("GET", ["detector", _, "member"]) => {
            let list: Vec<Value> = if admin.as_deref() == Some(account) {
                enrolled(s)
                    .iter()
                    .map(|(a, st)| json!({"accountId": a, "detectorId": member_detector(a), "administratorId": account, "masterId": account, "email": format!("{a}@example.com"), "relationshipStatus": st, "invitedAt": NOW_ISO, "updatedAt": NOW_ISO}))
                    .collect()
            } else {
                vec![]
            };
            ok(json!({"members": list}))
        }
        ("GET", ["detector", _, "administrator"]) => match (&admin, enrolled(s).get(account)) {
            (Some(a), Some(_)) => ok(
                json!({"administrator": {"accountId": a, "invitationId": "auto", "relationshipStatus": "Enabled", "invitedAt": NOW_ISO}}),
            ),
            _ => ok(json!({})),
        },
        ("POST", ["detector", _, "findings"]) => ok(json!({"findingIds": []})),
        ("GET", ["tags", ..]) => ok(json!({"tags": {}})),
        _ => ok(json!({})),
    }
}

const DEFAULT_STANDARDS: [&str; 2] = [
    "arn:aws:securityhub:{region}::standards/aws-foundational-security-best-practices/v/1.0.0",
    "arn:aws:securityhub:::ruleset/cis-aws-foundations-benchmark/v/1.2.0",
];

#[allow(clippy::too_many_arguments)]
fn securityhub(
    s: &mut State,
    model: &SecurityServicesModel,
    method: &str,
    seg: &[&str],
    call: &Call,
    account: &str,
    management: &str,
    accounts: &[String],
    region: &str,
    now: Instant,
) -> Answer {
    let admin = s.services.sh_admin.get(region).cloned();
    let auto = s.services.sh_auto.get(region).cloned();
    let key = (account.to_string(), region.to_string());
    let enrolled = |s: &State| match &admin {
        Some(a) => members(
            s,
            model,
            accounts,
            management,
            a,
            auto.as_ref()
                .filter(|(on, ..)| *on)
                .map(|(_, _, at)| ("NEW", *at)),
            &s.services.sh_added,
            region,
            now,
        ),
        None => BTreeMap::new(),
    };
    // The standards of the caller's hub, or None when it has none.
    let hub = |s: &State| -> Option<BTreeSet<String>> {
        if let Some(h) = s.services.hubs.get(&key) {
            return Some(h.clone());
        }
        (enrolled(s).get(account) == Some(&"Enabled")).then(|| {
            if auto.as_ref().is_some_and(|(_, std, _)| std == "DEFAULT") {
                DEFAULT_STANDARDS
                    .iter()
                    .map(|a| a.replace("{region}", region))
                    .collect()
            } else {
                BTreeSet::new()
            }
        })
    };
    let not_subscribed = || {
        err(
            401,
            "InvalidAccessException",
            &format!("Account {account} is not subscribed to AWS Security Hub"),
        )
    };
    let subscription = |arn: &str, state: &str| json!({"StandardsSubscriptionArn": format!("arn:aws:securityhub:{region}:{account}:subscription/{}", arn.rsplit("standards/").next().unwrap_or(arn)), "StandardsArn": arn, "StandardsInput": {}, "StandardsStatus": state});
    match (method, seg) {
        ("POST", ["organization", "admin", "enable"]) => {
            if account != management {
                return err(
                    403,
                    "AccessDeniedException",
                    "The request is rejected because the caller is not the organization management account.",
                );
            }
            s.services.sh_admin.insert(
                region.to_string(),
                str_of(&call.json, "AdminAccountId").to_string(),
            );
            ok(json!({}))
        }
        ("GET", ["organization", "admin"]) => ok(
            json!({"AdminAccounts": admin.iter().map(|a| json!({"AccountId": a, "Status": "ENABLED"})).collect::<Vec<_>>()}),
        ),
        ("POST", ["accounts"]) => {
            if hub(s).is_some() {
                return err(
                    409,
                    "ResourceConflictException",
                    &format!("Account {account} is already subscribed to Security Hub"),
                );
            }
            let standards = if call.json["EnableDefaultStandards"] == json!(false) {
                BTreeSet::new()
            } else {
                DEFAULT_STANDARDS
                    .iter()
                    .map(|a| a.replace("{region}", region))
                    .collect()
            };
            s.services.hubs.insert(key.clone(), standards);
            ok(json!({}))
        }
        ("GET", ["accounts"]) => match hub(s) {
            Some(_) => ok(
                json!({"HubArn": format!("arn:aws:securityhub:{region}:{account}:hub/default"), "SubscribedAt": NOW_ISO, "AutoEnableControls": true}),
            ),
            None => not_subscribed(),
        },
        (_, ["organization", "configuration"]) if admin.as_deref() != Some(account) => err(
            401,
            "InvalidAccessException",
            &format!(
                "Account {account} is not the Security Hub administrator account of the organization"
            ),
        ),
        (_, ["organization", "configuration"]) if hub(s).is_none() => not_subscribed(),
        ("GET", ["organization", "configuration"]) => {
            let (on, std) = auto
                .map(|(on, std, _)| (on, std))
                .unwrap_or((false, "NONE".into()));
            ok(
                json!({"AutoEnable": on, "AutoEnableStandards": std, "MemberAccountLimitReached": false, "OrganizationConfiguration": {"ConfigurationType": "LOCAL", "Status": "ENABLED"}}),
            )
        }
        ("POST", ["organization", "configuration"]) => {
            let on = call.json["AutoEnable"].as_bool().unwrap_or(false);
            let std = call.json["AutoEnableStandards"]
                .as_str()
                .unwrap_or("DEFAULT")
                .to_string();
            let keep = s
                .services
                .sh_auto
                .get(region)
                .filter(|(o, ..)| *o == on)
                .map(|(.., at)| *at);
            s.services
                .sh_auto
                .insert(region.to_string(), (on, std, keep.unwrap_or(now)));
            ok(json!({}))
        }
        (_, ["standards", ..]) | (_, ["members"]) | ("GET", ["productSubscriptions"])
            if hub(s).is_none() =>
        {
            not_subscribed()
        }
        ("POST", ["standards", "register"]) => {
            let mut have = hub(s).unwrap_or_default();
            let mut out = Vec::new();
            for r in call.json["StandardsSubscriptionRequests"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let arn = str_of(r, "StandardsArn").to_string();
                out.push(subscription(&arn, "PENDING"));
                have.insert(arn);
            }
            s.services.hubs.insert(key.clone(), have);
            ok(json!({"StandardsSubscriptions": out}))
        }
        ("POST", ["standards", "get"]) => ok(
            json!({"StandardsSubscriptions": hub(s).unwrap_or_default().iter().map(|a| subscription(a, "READY")).collect::<Vec<_>>()}),
        ),
        ("GET", ["productSubscriptions"]) => ok(json!({"ProductSubscriptions": []})),
        ("POST", ["members"]) => {
            if admin.as_deref() != Some(account) {
                return err(
                    401,
                    "InvalidAccessException",
                    &format!(
                        "Account {account} is not the Security Hub administrator account of the organization"
                    ),
                );
            }
            for d in call.json["AccountDetails"].as_array().into_iter().flatten() {
                s.services
                    .sh_added
                    .entry((region.to_string(), str_of(d, "AccountId").to_string()))
                    .or_insert(now);
            }
            ok(json!({"UnprocessedAccounts": []}))
        }
        ("GET", ["members"]) => {
            let list: Vec<Value> = if admin.as_deref() == Some(account) {
                enrolled(s)
                    .iter()
                    .map(|(a, st)| json!({"AccountId": a, "AdministratorId": account, "MasterId": account, "MemberStatus": st, "InvitedAt": NOW_ISO, "UpdatedAt": NOW_ISO}))
                    .collect()
            } else {
                vec![]
            };
            ok(json!({"Members": list}))
        }
        ("GET", ["tags", ..]) => ok(json!({"Tags": {}})),
        _ => ok(json!({})),
    }
}

#[allow(clippy::too_many_arguments)]
async fn access_analyzer(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
    method: &str,
    seg: &[&str],
    account: &str,
    management: &str,
    region: &str,
) -> Result<Answer, std::io::Error> {
    let key = (account.to_string(), region.to_string());
    let arn = |name: &str| format!("arn:aws:access-analyzer:{region}:{account}:analyzer/{name}");
    let summary = |name: &str, kind: &str| json!({"arn": arn(name), "name": name, "type": kind, "createdAt": NOW_ISO, "status": "ACTIVE", "tags": {}});
    Ok(match (method, seg) {
        ("PUT", ["analyzer"]) => {
            let name = str_of(&call.json, "analyzerName").to_string();
            let kind = call.json["type"].as_str().unwrap_or("ACCOUNT").to_string();
            if kind == "ORGANIZATION" && account != management {
                // Only the management account or Access Analyzer's delegated administrator, with
                // trusted access on (asked of the Organization as it is).
                let admins = upstream
                    .ask_organizations_as_management(
                        call,
                        "ListDelegatedAdministrators",
                        json!({"ServicePrincipal": "access-analyzer.amazonaws.com"}),
                    )
                    .await?;
                let delegated = admins["DelegatedAdministrators"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|a| a["Id"] == account);
                let access = upstream
                    .ask_organizations_as_management(
                        call,
                        "ListAWSServiceAccessForOrganization",
                        json!({}),
                    )
                    .await?;
                let trusted = access["EnabledServicePrincipals"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["ServicePrincipal"] == "access-analyzer.amazonaws.com");
                if !delegated || !trusted {
                    return Ok(err(
                        400,
                        "ValidationException",
                        "The account is not the management account or a delegated administrator for access-analyzer.amazonaws.com, or trusted access for IAM Access Analyzer is not enabled in the organization.",
                    ));
                }
            }
            let mut s = st.lock().unwrap();
            let mine = s.services.analyzers.entry(key).or_default();
            if mine.contains_key(&name) {
                return Ok(err(
                    409,
                    "ConflictException",
                    &format!("An analyzer named {name} already exists."),
                ));
            }
            mine.insert(name.clone(), kind);
            ok(json!({"arn": arn(&name)}))
        }
        ("GET", ["analyzer"]) => {
            let wanted = call
                .parts
                .uri
                .query()
                .unwrap_or_default()
                .split('&')
                .find_map(|kv| kv.strip_prefix("type="))
                .map(str::to_string);
            let s = st.lock().unwrap();
            let list: Vec<Value> = s
                .services
                .analyzers
                .get(&key)
                .into_iter()
                .flatten()
                .filter(|(_, k)| wanted.as_ref().is_none_or(|w| w == *k))
                .map(|(n, k)| summary(n, k))
                .collect();
            ok(json!({"analyzers": list}))
        }
        ("GET", ["analyzer", name]) => {
            let s = st.lock().unwrap();
            match s.services.analyzers.get(&key).and_then(|m| m.get(*name)) {
                Some(k) => ok(json!({"analyzer": summary(name, k)})),
                None => err(
                    404,
                    "ResourceNotFoundException",
                    &format!("Analyzer {name} not found"),
                ),
            }
        }
        ("POST", ["finding"]) | ("POST", ["findingv2"]) => ok(json!({"findings": []})),
        ("GET", ["analyzer", _, "archive-rule"]) => ok(json!({"archiveRules": []})),
        _ => ok(json!({})),
    })
}
