//! SecurityBaseline: desired + one account as observed → findings and actions (pure).
//!
//! A finding is a control that does not comply, in words a person acts on; an action is what
//! makes it comply. A finding without an action (a default VPC in use, a control two baselines
//! disagree on) stays in status until a person changes something.

use crate::api::Drift;
use crate::api::aws_account::Contact;
use crate::api::security_baseline::{ControlFinding, DefaultVpcs, SecurityBaselineSpec};
use crate::aws::security::{ConfigState, DefaultVpc, Recorder, RoleInfo};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

pub const SUPPORT_POLICY: &str = "AWSSupportAccess";
/// The recorder and channel name the operator gives (an existing one's name is kept: AWS allows one
/// of each per region).
pub const DEFAULT_NAME: &str = "default";

/// The controls, as status and metrics name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Control {
    S3BlockPublicAccess,
    EbsDefaultEncryption,
    InstanceMetadataV2Default,
    DefaultVpcs,
    SupportRole,
    SecurityContact,
    Config,
    AccessAnalyzer,
}

impl Control {
    pub const ALL: [Control; 8] = [
        Control::S3BlockPublicAccess,
        Control::EbsDefaultEncryption,
        Control::InstanceMetadataV2Default,
        Control::DefaultVpcs,
        Control::SupportRole,
        Control::SecurityContact,
        Control::Config,
        Control::AccessAnalyzer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Control::S3BlockPublicAccess => "s3BlockPublicAccess",
            Control::EbsDefaultEncryption => "ebsDefaultEncryption",
            Control::InstanceMetadataV2Default => "instanceMetadataV2Default",
            Control::DefaultVpcs => "defaultVpcs",
            Control::SupportRole => "supportRole",
            Control::SecurityContact => "securityContact",
            Control::Config => "config",
            Control::AccessAnalyzer => "accessAnalyzer",
        }
    }

    pub fn regional(self) -> bool {
        matches!(
            self,
            Control::EbsDefaultEncryption
                | Control::InstanceMetadataV2Default
                | Control::DefaultVpcs
                | Control::Config
                | Control::AccessAnalyzer
        )
    }

    /// What the spec asks of this control, comparable between baselines; `None`: not governed.
    pub fn wanted(self, spec: &SecurityBaselineSpec) -> Option<Value> {
        let v = match self {
            Control::S3BlockPublicAccess => json!(spec.s3_block_public_access?),
            Control::EbsDefaultEncryption => json!(spec.ebs_default_encryption.as_ref()?),
            Control::InstanceMetadataV2Default => json!(spec.instance_metadata_v2_default?),
            Control::DefaultVpcs => json!(spec.default_vpcs?),
            Control::SupportRole => json!(spec.support_role.as_ref()?),
            Control::SecurityContact => json!(spec.security_contact.as_ref()?),
            Control::Config => json!(spec.config.as_ref()?),
            Control::AccessAnalyzer => json!(spec.access_analyzer.as_ref()?),
        };
        Some(v)
    }
}

/// The controls another baseline governs differently in an account both reach (regional ones
/// only where their regions meet): for each, the other baselines as named in `others`.
pub fn conflicts<'a>(
    me: &SecurityBaselineSpec,
    others: impl IntoIterator<Item = (&'a str, &'a SecurityBaselineSpec)>,
) -> BTreeMap<Control, Vec<String>> {
    let mut out: BTreeMap<Control, Vec<String>> = BTreeMap::new();
    for (name, other) in others {
        let shared_region = me.regions.iter().any(|r| other.regions.contains(r));
        for c in Control::ALL {
            let (Some(a), Some(b)) = (c.wanted(me), c.wanted(other)) else {
                continue;
            };
            if a != b && (!c.regional() || shared_region) {
                out.entry(c).or_default().push(name.to_string());
            }
        }
    }
    out
}

/// One governed region of one account, as read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Regional {
    pub ebs: Option<(bool, Option<String>)>,
    pub imds_v2: Option<bool>,
    pub default_vpc: Option<DefaultVpc>,
    pub config: Option<ConfigState>,
    /// The account's ACCOUNT analyzers: name → status.
    pub analyzers: Option<BTreeMap<String, String>>,
}

/// One account as read (a control not governed is not read: `None`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub s3_block: Option<Option<[bool; 4]>>,
    pub regions: BTreeMap<String, Regional>,
    pub support_role: Option<Option<RoleInfo>>,
    pub security_contact: Option<Option<Contact>>,
}

/// What the plan needs beyond the spec: names resolved for this account.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The support role's trust policy, principals resolved (the management account by default).
    pub support_trust: Value,
    /// AWS Config's role ARN in this account (its service-linked role).
    pub config_role_arn: String,
    /// Controls this baseline does not write here: the other baselines that set them differently.
    pub conflicted: BTreeMap<Control, Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    BlockS3PublicAccess,
    EnableEbsEncryption { region: String },
    RequireImdsV2 { region: String },
    DeleteDefaultVpc { region: String, vpc: DefaultVpc },
    CreateSupportRole,
    SetSupportRoleTrust,
    AttachSupportPolicy,
    SetSecurityContact,
    PutConfigRecorder { region: String, recorder: Recorder },
    PutDeliveryChannel { region: String, name: String },
    StartConfigRecorder { region: String, name: String },
    CreateAccountAnalyzer { region: String, name: String },
}

impl Action {
    pub fn control(&self) -> Control {
        match self {
            Action::BlockS3PublicAccess => Control::S3BlockPublicAccess,
            Action::EnableEbsEncryption { .. } => Control::EbsDefaultEncryption,
            Action::RequireImdsV2 { .. } => Control::InstanceMetadataV2Default,
            Action::DeleteDefaultVpc { .. } => Control::DefaultVpcs,
            Action::CreateSupportRole | Action::SetSupportRoleTrust | Action::AttachSupportPolicy => {
                Control::SupportRole
            }
            Action::SetSecurityContact => Control::SecurityContact,
            Action::PutConfigRecorder { .. }
            | Action::PutDeliveryChannel { .. }
            | Action::StartConfigRecorder { .. } => Control::Config,
            Action::CreateAccountAnalyzer { .. } => Control::AccessAnalyzer,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::BlockS3PublicAccess => write!(f, "block S3 public access (account level)"),
            Action::EnableEbsEncryption { region } => {
                write!(f, "turn on EBS encryption by default in {region}")
            }
            Action::RequireImdsV2 { region } => {
                write!(f, "require IMDSv2 for new instances in {region}")
            }
            Action::DeleteDefaultVpc { region, vpc } => {
                write!(f, "delete the unused default VPC {} in {region}", vpc.id)
            }
            Action::CreateSupportRole => write!(f, "create the support role"),
            Action::SetSupportRoleTrust => write!(f, "set who may assume the support role"),
            Action::AttachSupportPolicy => write!(f, "attach {SUPPORT_POLICY} to the support role"),
            Action::SetSecurityContact => write!(f, "set the security contact"),
            Action::PutConfigRecorder { region, .. } => {
                write!(f, "set the AWS Config recorder in {region}")
            }
            Action::PutDeliveryChannel { region, .. } => {
                write!(f, "set the AWS Config delivery channel in {region}")
            }
            Action::StartConfigRecorder { region, .. } => {
                write!(f, "start AWS Config recording in {region}")
            }
            Action::CreateAccountAnalyzer { region, name } => {
                write!(f, "create the IAM Access Analyzer {name} in {region}")
            }
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Every control that does not comply now, with why.
    pub findings: Vec<ControlFinding>,
    pub drift: Vec<Drift>,
}

impl Plan {
    /// The findings no action of this plan fixes (what stays once it is carried out).
    pub fn remaining(&self) -> Vec<ControlFinding> {
        let fixed: BTreeSet<(String, Option<String>)> = self
            .actions
            .iter()
            .map(|a| (a.control().name().to_string(), region_of(a)))
            .collect();
        self.findings
            .iter()
            .filter(|f| !fixed.contains(&(f.control.clone(), f.region.clone())))
            .cloned()
            .collect()
    }
}

impl Plan {
    /// The drift no action of this plan corrects (a default VPC in use, a disputed control): it
    /// stays in status.drift after the plan is carried out.
    pub fn remaining_drift(&self) -> Vec<Drift> {
        let left: BTreeSet<String> = self
            .remaining()
            .iter()
            .filter_map(|f| {
                let c = Control::ALL.into_iter().find(|c| c.name() == f.control)?;
                Some(field(c, f.region.as_deref()))
            })
            .collect();
        self.drift
            .iter()
            .filter(|d| left.contains(&d.field))
            .cloned()
            .collect()
    }
}

fn region_of(a: &Action) -> Option<String> {
    match a {
        Action::EnableEbsEncryption { region }
        | Action::RequireImdsV2 { region }
        | Action::DeleteDefaultVpc { region, .. }
        | Action::PutConfigRecorder { region, .. }
        | Action::PutDeliveryChannel { region, .. }
        | Action::StartConfigRecorder { region, .. }
        | Action::CreateAccountAnalyzer { region, .. } => Some(region.clone()),
        _ => None,
    }
}

struct Builder<'a> {
    out: Plan,
    ctx: &'a Context,
}

impl Builder<'_> {
    /// A control found failing: recorded, and fixed by `actions` unless another baseline disagrees.
    fn fail(
        &mut self,
        control: Control,
        region: Option<&str>,
        message: String,
        drift: Drift,
        actions: Vec<Action>,
    ) {
        let conflicted = self.ctx.conflicted.contains_key(&control);
        self.out.findings.push(ControlFinding {
            control: control.name().into(),
            region: region.map(str::to_string),
            message,
        });
        self.out.drift.push(drift);
        if !conflicted {
            self.out.actions.extend(actions);
        }
    }
}

fn field(control: Control, region: Option<&str>) -> String {
    match region {
        Some(r) => format!("{}[{r}]", control.name()),
        None => control.name().to_string(),
    }
}

pub fn plan(spec: &SecurityBaselineSpec, observed: &Observed, ctx: &Context) -> Plan {
    let mut b = Builder {
        out: Plan::default(),
        ctx,
    };
    // Conflicted controls are reported as such, whatever AWS says.
    for (c, others) in &ctx.conflicted {
        b.out.findings.push(ControlFinding {
            control: c.name().into(),
            region: None,
            message: format!(
                "{} also set(s) {} differently in this account: nothing is written for it until they agree",
                others.join(", "),
                c.name()
            ),
        });
    }
    if spec.s3_block_public_access == Some(true)
        && let Some(have) = &observed.s3_block
        && *have != Some([true; 4])
    {
        let seen = match have {
            None => "no account-level Block Public Access".to_string(),
            Some(f) => format!("{} of 4 Block Public Access flags on", f.iter().filter(|x| **x).count()),
        };
        b.fail(
            Control::S3BlockPublicAccess,
            None,
            format!("{seen}: buckets in the account may be made public"),
            Drift::new(field(Control::S3BlockPublicAccess, None), "all 4 flags", &seen),
            vec![Action::BlockS3PublicAccess],
        );
    }
    let first_region = spec.regions.first();
    for region in &spec.regions {
        let Some(r) = observed.regions.get(region) else { continue };
        let at = Some(region.as_str());
        if let (Some(want), Some((on, key))) = (&spec.ebs_default_encryption, &r.ebs)
            && want.enabled
        {
            let key_ok = want.kms_key_id.is_none() || want.kms_key_id == *key;
            if !*on || !key_ok {
                let seen = if *on {
                    format!("on with key {}", key.as_deref().unwrap_or("aws/ebs"))
                } else {
                    "off".to_string()
                };
                b.fail(
                    Control::EbsDefaultEncryption,
                    at,
                    format!("EBS encryption by default is {seen} in {region}"),
                    Drift::new(field(Control::EbsDefaultEncryption, at), "on", &seen),
                    vec![Action::EnableEbsEncryption {
                        region: region.clone(),
                    }],
                );
            }
        }
        if let (Some(want), Some(have)) = (&spec.access_analyzer, &r.analyzers)
            && !have.contains_key(&want.analyzer_name)
        {
            b.fail(
                Control::AccessAnalyzer,
                at,
                format!("no IAM Access Analyzer {} in {region}", want.analyzer_name),
                Drift::new(field(Control::AccessAnalyzer, at), &want.analyzer_name, "none"),
                vec![Action::CreateAccountAnalyzer {
                    region: region.clone(),
                    name: want.analyzer_name.clone(),
                }],
            );
        }
        if spec.instance_metadata_v2_default == Some(true) && r.imds_v2 == Some(false) {
            b.fail(
                Control::InstanceMetadataV2Default,
                at,
                format!("new instances in {region} do not require IMDSv2 by default"),
                Drift::new(field(Control::InstanceMetadataV2Default, at), "required", "optional"),
                vec![Action::RequireImdsV2 {
                    region: region.clone(),
                }],
            );
        }
        if spec.default_vpcs == Some(DefaultVpcs::DeleteWhenUnused)
            && let Some(vpc) = &r.default_vpc
        {
            let (message, actions) = if vpc.network_interfaces > 0 {
                (
                    format!(
                        "default VPC {} in {region} has {} network interface(s): left in place; move or remove what runs in it and it is deleted on the next resync",
                        vpc.id, vpc.network_interfaces
                    ),
                    vec![],
                )
            } else {
                (
                    format!("default VPC {} in {region} is unused", vpc.id),
                    vec![Action::DeleteDefaultVpc {
                        region: region.clone(),
                        vpc: vpc.clone(),
                    }],
                )
            };
            b.fail(
                Control::DefaultVpcs,
                at,
                message,
                Drift::new(field(Control::DefaultVpcs, at), "none", &vpc.id),
                actions,
            );
        }
        if let (Some(want), Some(have)) = (&spec.config, &r.config) {
            config(&mut b, region, Some(region) == first_region, &want.delivery_bucket.name, have);
        }
    }
    if let (Some(want), Some(have)) = (&spec.support_role, &observed.support_role) {
        let policy = |p: &str| p.ends_with(&format!(":policy/{SUPPORT_POLICY}"));
        let (message, actions) = match have {
            None => (
                format!("no role {}", want.role_name),
                vec![Action::CreateSupportRole, Action::AttachSupportPolicy],
            ),
            Some(role) => {
                let mut actions = vec![];
                let mut why = vec![];
                if role.trust != ctx.support_trust {
                    why.push("trusts other principals than the spec names");
                    actions.push(Action::SetSupportRoleTrust);
                }
                if !role.attached.iter().any(|p| policy(p)) {
                    why.push("lacks AWSSupportAccess");
                    actions.push(Action::AttachSupportPolicy);
                }
                (format!("role {} {}", want.role_name, why.join(" and ")), actions)
            }
        };
        if !actions.is_empty() {
            b.fail(
                Control::SupportRole,
                None,
                message.clone(),
                Drift::new(field(Control::SupportRole, None), "present", &message),
                actions,
            );
        }
    }
    if let (Some(want), Some(have)) = (&spec.security_contact, &observed.security_contact)
        && have.as_ref() != Some(want)
    {
        let seen = if have.is_some() { "a different one" } else { "none" };
        b.fail(
            Control::SecurityContact,
            None,
            format!("the security contact is {seen}"),
            Drift::new(field(Control::SecurityContact, None), &want.email, seen),
            vec![Action::SetSecurityContact],
        );
    }
    // A conflicted control's own findings are the conflict: drop the per-AWS ones for it.
    let conflicted: BTreeSet<&str> = ctx.conflicted.keys().map(|c| c.name()).collect();
    let mut first = BTreeSet::new();
    b.out.findings.retain(|f| {
        !conflicted.contains(f.control.as_str()) || first.insert(f.control.clone())
    });
    b.out
}

fn config(b: &mut Builder, region: &str, global_here: bool, bucket: &str, have: &ConfigState) {
    let at = Some(region);
    let name = have
        .recorder
        .as_ref()
        .map(|r| r.name.clone())
        .unwrap_or_else(|| DEFAULT_NAME.to_string());
    let want = Recorder {
        name: name.clone(),
        role_arn: have
            .recorder
            .as_ref()
            .map(|r| r.role_arn.clone())
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| b.ctx.config_role_arn.clone()),
        all_supported: true,
        include_global: global_here,
    };
    let mut actions = vec![];
    let mut why = vec![];
    match &have.recorder {
        None => why.push("no recorder".to_string()),
        Some(r) if !r.all_supported => why.push("the recorder skips resource types".into()),
        Some(r) if r.include_global != global_here => why.push(if global_here {
            "global resources (IAM) are not recorded here".into()
        } else {
            "global resources are recorded here too (once is enough: in the first governed region)".into()
        }),
        Some(_) => {}
    }
    if !why.is_empty() {
        actions.push(Action::PutConfigRecorder {
            region: region.to_string(),
            recorder: want,
        });
    }
    let channel_name = have
        .channel
        .as_ref()
        .map(|(n, _)| n.clone())
        .unwrap_or_else(|| DEFAULT_NAME.to_string());
    match &have.channel {
        Some((_, b)) if b == bucket => {}
        Some((_, other)) => why.push(format!("delivers to {other}, not {bucket}")),
        None => why.push("no delivery channel".into()),
    }
    if have.channel.as_ref().map(|(_, b)| b.as_str()) != Some(bucket) {
        actions.push(Action::PutDeliveryChannel {
            region: region.to_string(),
            name: channel_name,
        });
    }
    if !have.recording {
        why.push("not recording".into());
        actions.push(Action::StartConfigRecorder {
            region: region.to_string(),
            name,
        });
    }
    if !why.is_empty() {
        let message = format!("AWS Config in {region}: {}", why.join(", "));
        b.fail(
            Control::Config,
            at,
            message,
            Drift::new(field(Control::Config, at), "recording", why.join(", ")),
            actions,
        );
    }
}

/// How many account ids a summary line names before "…".
const NAMED: usize = 3;

fn accounts_phrase(ids: &[String]) -> String {
    match ids {
        [one] => format!("account {one}"),
        _ => {
            let named: Vec<&str> = ids.iter().take(NAMED).map(String::as_str).collect();
            let more = if ids.len() > NAMED { ", …" } else { "" };
            format!("{} accounts ({}{more})", ids.len(), named.join(", "))
        }
    }
}

/// (action, account) pairs as one line per action: "… in account X" or "… in N accounts (X, Y, Z, …)".
pub fn across_accounts(pairs: Vec<(String, String)>) -> Vec<String> {
    let mut by: Vec<(String, Vec<String>)> = Vec::new();
    for (action, account) in pairs {
        match by.iter_mut().find(|(a, _)| *a == action) {
            Some((_, ids)) => ids.push(account),
            None => by.push((action, vec![account])),
        }
    }
    by.into_iter()
        .map(|(a, ids)| format!("{a} in {}", accounts_phrase(&ids)))
        .collect()
}

/// Drift per account as one entry per field and value: what was seen, and in which accounts.
pub fn drift_across_accounts(pairs: Vec<(Drift, String)>) -> Vec<Drift> {
    let mut by: Vec<(Drift, Vec<String>)> = Vec::new();
    for (d, account) in pairs {
        match by.iter_mut().find(|(x, _)| *x == d) {
            Some((_, ids)) => ids.push(account),
            None => by.push((d, vec![account])),
        }
    }
    by.into_iter()
        .map(|(mut d, ids)| {
            d.observed = format!("{} in {}", d.observed, accounts_phrase(&ids));
            d
        })
        .collect()
}

/// The support role's trust: the named principals, or the management account.
pub fn support_trust(principals: &[String], partition: &str, management_account: &str) -> Value {
    let principals: Vec<String> = if principals.is_empty() {
        vec![format!("arn:{partition}:iam::{management_account}:root")]
    } else {
        principals.to_vec()
    };
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": if principals.len() == 1 { json!(principals[0]) } else { json!(principals) }},
            "Action": "sts:AssumeRole",
        }],
    })
}

/// The delivery bucket's policy: AWS Config of this Organization's accounts may check the bucket
/// and write its snapshots and history under AWSLogs/; nothing without TLS.
pub fn config_bucket_policy(partition: &str, bucket: &str, org_id: &str) -> Value {
    let arn = format!("arn:{partition}:s3:::{bucket}");
    let org = json!({"StringEquals": {"aws:SourceOrgID": org_id}});
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AWSConfigBucketPermissionsCheck",
                "Effect": "Allow",
                "Principal": {"Service": "config.amazonaws.com"},
                "Action": ["s3:GetBucketAcl", "s3:ListBucket"],
                "Resource": arn,
                "Condition": org,
            },
            {
                "Sid": "AWSConfigBucketDelivery",
                "Effect": "Allow",
                "Principal": {"Service": "config.amazonaws.com"},
                "Action": "s3:PutObject",
                "Resource": format!("{arn}/AWSLogs/*/Config/*"),
                "Condition": {"StringEquals": {"aws:SourceOrgID": org_id, "s3:x-amz-acl": "bucket-owner-full-control"}},
            },
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [arn.clone(), format!("{arn}/*")],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::security_baseline::{
        ConfigRecording, DeliveryBucket, EbsDefaultEncryption, SupportRole,
    };

    fn spec() -> SecurityBaselineSpec {
        serde_json::from_value(json!({
            "targets": {"root": true},
            "regions": ["us-east-1", "eu-west-1"],
            "s3BlockPublicAccess": true,
            "ebsDefaultEncryption": {"enabled": true},
            "instanceMetadataV2Default": true,
            "defaultVpcs": "DeleteWhenUnused",
            "supportRole": {"roleName": "aws-support"},
            "securityContact": {"name": "Security", "title": "Security", "email": "security@example.com", "phoneNumber": "+1-555-0100"},
            "config": {"deliveryBucket": {"name": "org-config", "create": false}},
            "accessAnalyzer": {},
        }))
        .unwrap()
    }

    fn ctx() -> Context {
        Context {
            support_trust: support_trust(&[], "aws", "111111111111"),
            config_role_arn: format!("arn:aws:iam::222222222222:role/{}", crate::aws::security::CONFIG_ROLE_PATH),
            conflicted: BTreeMap::new(),
        }
    }

    fn recording(region_is_first: bool) -> ConfigState {
        ConfigState {
            recorder: Some(Recorder {
                name: "default".into(),
                role_arn: "arn:aws:iam::222222222222:role/x".into(),
                all_supported: true,
                include_global: region_is_first,
            }),
            recording: true,
            channel: Some(("default".into(), "org-config".into())),
        }
    }

    /// An account where every control of `spec()` complies.
    fn compliant() -> Observed {
        let s = spec();
        Observed {
            s3_block: Some(Some([true; 4])),
            regions: s
                .regions
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    (
                        r.clone(),
                        Regional {
                            ebs: Some((true, None)),
                            imds_v2: Some(true),
                            default_vpc: None,
                            config: Some(recording(i == 0)),
                            analyzers: Some([("account".to_string(), "ACTIVE".to_string())].into()),
                        },
                    )
                })
                .collect(),
            support_role: Some(Some(RoleInfo {
                trust: ctx().support_trust,
                attached: vec!["arn:aws:iam::aws:policy/AWSSupportAccess".into()],
            })),
            security_contact: Some(s.security_contact.clone()),
        }
    }

    fn vpc(interfaces: usize) -> DefaultVpc {
        DefaultVpc {
            id: "vpc-1".into(),
            network_interfaces: interfaces,
            subnets: vec!["subnet-a".into()],
            internet_gateways: vec!["igw-1".into()],
        }
    }

    #[test]
    fn each_failing_control_is_found_and_fixed_and_a_compliant_account_gets_nothing() {
        type Case = (&'static str, fn(&mut Observed), Vec<&'static str>, usize);
        let cases: Vec<Case> = vec![
            ("compliant", |_| {}, vec![], 0),
            ("no block public access", |o| o.s3_block = Some(None), vec!["s3BlockPublicAccess"], 0),
            ("three of four flags", |o| o.s3_block = Some(Some([true, true, false, true])), vec!["s3BlockPublicAccess"], 0),
            ("ebs off in one region", |o| o.regions.get_mut("eu-west-1").unwrap().ebs = Some((false, None)), vec!["ebsDefaultEncryption"], 0),
            ("imds optional", |o| o.regions.get_mut("us-east-1").unwrap().imds_v2 = Some(false), vec!["instanceMetadataV2Default"], 0),
            ("unused default vpc", |o| o.regions.get_mut("us-east-1").unwrap().default_vpc = Some(vpc(0)), vec!["defaultVpcs"], 0),
            // In use: reported, and stays reported (no action fixes it).
            ("default vpc in use", |o| o.regions.get_mut("us-east-1").unwrap().default_vpc = Some(vpc(3)), vec!["defaultVpcs"], 1),
            ("no support role", |o| o.support_role = Some(None), vec!["supportRole"], 0),
            ("support role without the policy", |o| o.support_role = Some(Some(RoleInfo { trust: ctx().support_trust, attached: vec![] })), vec!["supportRole"], 0),
            ("no security contact", |o| o.security_contact = Some(None), vec!["securityContact"], 0),
            ("no config recorder", |o| o.regions.get_mut("eu-west-1").unwrap().config = Some(ConfigState::default()), vec!["config"], 0),
            ("global resources twice", |o| o.regions.get_mut("eu-west-1").unwrap().config = Some(recording(true)), vec!["config"], 0),
            ("recorder stopped", |o| o.regions.get_mut("us-east-1").unwrap().config.as_mut().unwrap().recording = false, vec!["config"], 0),
            ("no account analyzer", |o| o.regions.get_mut("eu-west-1").unwrap().analyzers = Some(BTreeMap::new()), vec!["accessAnalyzer"], 0),
        ];
        for (name, change, failing, remaining) in cases {
            let mut o = compliant();
            change(&mut o);
            let p = plan(&spec(), &o, &ctx());
            let found: Vec<&str> = p.findings.iter().map(|f| f.control.as_str()).collect();
            assert_eq!(found, failing, "{name}: findings");
            assert_eq!(p.drift.len(), failing.len(), "{name}: drift");
            assert_eq!(p.remaining().len(), remaining, "{name}: left after the plan");
            assert_eq!(p.remaining_drift().len(), remaining, "{name}: drift left after the plan");
            assert_eq!(p.actions.is_empty(), failing.is_empty() || remaining > 0, "{name}: actions {:?}", p.actions);
        }
    }

    #[test]
    fn an_unused_default_vpc_is_deleted_one_in_use_is_reported_with_its_interfaces() {
        let mut o = compliant();
        o.regions.get_mut("eu-west-1").unwrap().default_vpc = Some(vpc(0));
        o.regions.get_mut("us-east-1").unwrap().default_vpc = Some(vpc(2));
        let p = plan(&spec(), &o, &ctx());
        assert_eq!(
            p.actions,
            vec![Action::DeleteDefaultVpc { region: "eu-west-1".into(), vpc: vpc(0) }]
        );
        let left = p.remaining();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].region.as_deref(), Some("us-east-1"));
        assert!(left[0].message.contains("2 network interface(s): left in place"), "{}", left[0].message);
    }

    #[test]
    fn config_records_global_resources_in_the_first_region_only_and_keeps_an_existing_recorders_name() {
        let mut o = compliant();
        o.regions.get_mut("us-east-1").unwrap().config = Some(ConfigState {
            recorder: Some(Recorder { name: "legacy".into(), role_arn: "arn:aws:iam::222222222222:role/old".into(), all_supported: false, include_global: false }),
            recording: false,
            channel: None,
        });
        let p = plan(&spec(), &o, &ctx());
        assert_eq!(
            p.actions,
            vec![
                Action::PutConfigRecorder {
                    region: "us-east-1".into(),
                    recorder: Recorder { name: "legacy".into(), role_arn: "arn:aws:iam::222222222222:role/old".into(), all_supported: true, include_global: true },
                },
                Action::PutDeliveryChannel { region: "us-east-1".into(), name: "default".into() },
                Action::StartConfigRecorder { region: "us-east-1".into(), name: "legacy".into() },
            ]
        );
    }

    #[test]
    fn baselines_conflict_only_on_controls_they_set_differently_where_their_regions_meet() {
        let a = spec();
        let mut b = spec();
        assert!(conflicts(&a, [("b", &b)]).is_empty(), "equal specs agree");
        b.s3_block_public_access = Some(false);
        b.ebs_default_encryption = Some(EbsDefaultEncryption { enabled: true, kms_key_id: Some("alias/other".into()) });
        let found = conflicts(&a, [("b", &b)]);
        assert_eq!(found.keys().copied().collect::<Vec<_>>(), vec![Control::S3BlockPublicAccess, Control::EbsDefaultEncryption]);
        // No region in common: the regional control no longer conflicts; the global one does.
        b.regions = vec!["ap-southeast-2".into()];
        let found = conflicts(&a, [("b", &b)]);
        assert_eq!(found.keys().copied().collect::<Vec<_>>(), vec![Control::S3BlockPublicAccess]);
        // A control one of them does not govern is no conflict.
        b.s3_block_public_access = None;
        b.support_role = Some(SupportRole { role_name: "other".into(), trusted_principal_arns: vec![] });
        b.config = Some(ConfigRecording { delivery_bucket: DeliveryBucket { name: "x".into(), account_ref: None, create: false } });
        let found = conflicts(&a, [("b", &b)]);
        assert_eq!(found.keys().copied().collect::<Vec<_>>(), vec![Control::SupportRole]);
    }

    #[test]
    fn a_conflicted_control_is_reported_naming_the_other_baseline_and_never_written() {
        let mut o = compliant();
        o.s3_block = Some(None);
        o.security_contact = Some(None);
        let mut c = ctx();
        c.conflicted.insert(Control::S3BlockPublicAccess, vec!["SecurityBaseline team-baseline".into()]);
        let p = plan(&spec(), &o, &c);
        assert_eq!(p.actions, vec![Action::SetSecurityContact]);
        let s3: Vec<_> = p.findings.iter().filter(|f| f.control == "s3BlockPublicAccess").collect();
        assert_eq!(s3.len(), 1);
        assert!(s3[0].message.contains("SecurityBaseline team-baseline"), "{}", s3[0].message);
    }

    #[test]
    fn changes_and_drift_are_summed_up_across_accounts() {
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
        };
        assert_eq!(
            across_accounts(pairs(&[("block", "1"), ("enable", "1"), ("block", "2"), ("block", "3"), ("block", "4")])),
            vec!["block in 4 accounts (1, 2, 3, …)", "enable in account 1"]
        );
        let d = |f: &str, o: &str| Drift::new(f, "on", o);
        let merged = drift_across_accounts(vec![
            (d("ebs[us-east-1]", "off"), "1".into()),
            (d("ebs[us-east-1]", "off"), "2".into()),
            (d("ebs[us-east-1]", "on with key k"), "3".into()),
        ]);
        let seen: Vec<(&str, &str)> = merged.iter().map(|d| (d.field.as_str(), d.observed.as_str())).collect();
        assert_eq!(
            seen,
            vec![("ebs[us-east-1]", "off in 2 accounts (1, 2)"), ("ebs[us-east-1]", "on with key k in account 3")]
        );
    }

    #[test]
    fn observe_mode_findings_name_the_region_and_what_was_seen() {
        let mut o = compliant();
        o.regions.get_mut("eu-west-1").unwrap().ebs = Some((true, Some("alias/wrong".into())));
        let mut s = spec();
        s.ebs_default_encryption = Some(EbsDefaultEncryption { enabled: true, kms_key_id: Some("alias/right".into()) });
        let p = plan(&s, &o, &ctx());
        let seen: Vec<(Option<&str>, &str)> =
            p.findings.iter().map(|f| (f.region.as_deref(), f.message.as_str())).collect();
        assert_eq!(
            seen,
            vec![
                (Some("us-east-1"), "EBS encryption by default is on with key aws/ebs in us-east-1"),
                (Some("eu-west-1"), "EBS encryption by default is on with key alias/wrong in eu-west-1"),
            ]
        );
    }
}
