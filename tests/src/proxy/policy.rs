//! IAM policy evaluation, for the requests AWS services make with what the operator wrote: a
//! service assuming a role, or writing into a bucket, a topic, a queue or a key.
//!
//! The emulator stores any policy and enforces none, so this layer evaluates them the way IAM
//! does, each with the request context the service's own page documents (which principal, which
//! action, which condition keys it sends and which it does not). The logic follows the IAM User
//! Guide:
//! - "Policy evaluation logic": an explicit Deny wins, then an Allow, else the request is denied;
//!   <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html>
//! - "IAM JSON policy elements: Condition operators": a key absent from the request matches no
//!   positive operator (the condition is false), every negated one (the condition is true),
//!   `…IfExists` treats absence as a match, and `Null` tests presence; several values for one key
//!   are OR-ed, several keys and several operators AND-ed;
//!   <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html>
//! - "IAM JSON policy elements: Action / Resource": `*` and `?` wildcards, actions
//!   case-insensitive, resources case-sensitive.
//!
//! It is an independent implementation on purpose: the operator's own checks are what it judges.

use serde_json::Value;
use std::collections::BTreeMap;

/// Who makes the request.
#[derive(Clone, Debug)]
pub enum Principal {
    /// An AWS service principal, e.g. `cloudtrail.amazonaws.com`.
    Service(String),
    /// A role's session, judged by the role's own (identity-based) policies, whose statements
    /// name no principal.
    Identity(String),
}

/// One request as the service sends it.
#[derive(Clone, Debug)]
pub struct Request {
    pub principal: Principal,
    pub action: String,
    pub resource: String,
    /// The condition keys the request carries (lower-cased names); a key not here is absent.
    pub context: BTreeMap<String, String>,
}

impl Request {
    pub fn by_service(service: &str, action: &str, resource: &str) -> Request {
        Request {
            principal: Principal::Service(service.into()),
            action: action.into(),
            resource: resource.into(),
            context: BTreeMap::new(),
        }
    }

    /// A request judged by the identity-based policies of `role_arn`.
    pub fn by_identity(role_arn: &str, action: &str, resource: &str) -> Request {
        Request {
            principal: Principal::Identity(role_arn.into()),
            ..Request::by_service("", action, resource)
        }
    }

    pub fn with(mut self, key: &str, value: &str) -> Request {
        self.context.insert(key.to_ascii_lowercase(), value.into());
        self
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// A Deny statement matched (its Sid, if any).
    ExplicitDeny(String),
    /// No statement allowed it.
    ImplicitDeny,
}

/// IAM's decision on `request` under this one resource-based or trust policy.
pub fn evaluate(policy: &Value, request: &Request) -> Decision {
    let statements: Vec<&Value> = match &policy["Statement"] {
        Value::Array(list) => list.iter().collect(),
        s @ Value::Object(_) => vec![s],
        _ => vec![],
    };
    let mut allowed = false;
    for s in statements {
        if !applies(s, request) {
            continue;
        }
        match s["Effect"].as_str() {
            Some("Deny") => {
                return Decision::ExplicitDeny(s["Sid"].as_str().unwrap_or_default().into());
            }
            Some("Allow") => allowed = true,
            _ => {}
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

fn applies(s: &Value, r: &Request) -> bool {
    principal_matches(s, r)
        && element_matches(s, "Action", "NotAction", |p| {
            wildcard(&p.to_ascii_lowercase(), &r.action.to_ascii_lowercase())
        })
        && element_matches(s, "Resource", "NotResource", |p| wildcard(p, &r.resource))
        && conditions_hold(&s["Condition"], &r.context)
}

fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}

/// `Action`/`NotAction` (or the resource pair); absent both (a trust policy's Resource), any.
fn element_matches(s: &Value, name: &str, not_name: &str, one: impl Fn(&str) -> bool) -> bool {
    if let Some(v) = s.get(name) {
        strings(v).into_iter().any(&one)
    } else if let Some(v) = s.get(not_name) {
        !strings(v).into_iter().any(&one)
    } else {
        true
    }
}

fn principal_matches(s: &Value, r: &Request) -> bool {
    let service = match &r.principal {
        Principal::Service(service) => service,
        // An identity-based policy's statements apply to whoever holds it; one naming a
        // principal is not an identity-based policy.
        Principal::Identity(_) => {
            return s.get("Principal").is_none() && s.get("NotPrincipal").is_none();
        }
    };
    let names = |p: &Value| -> bool {
        match p {
            Value::String(star) => star == "*",
            Value::Object(m) => {
                m.get("Service")
                    .is_some_and(|v| strings(v).contains(&service.as_str()))
                    || m.get("AWS").is_some_and(|v| strings(v).contains(&"*"))
            }
            _ => false,
        }
    };
    match (s.get("Principal"), s.get("NotPrincipal")) {
        (Some(p), _) => names(p),
        (None, Some(p)) => !names(p),
        // An identity-based policy: not what this layer evaluates.
        (None, None) => false,
    }
}

/// `*` any run of characters, `?` any one.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn conditions_hold(condition: &Value, context: &BTreeMap<String, String>) -> bool {
    let Some(operators) = condition.as_object() else {
        return true;
    };
    operators.iter().all(|(operator, keys)| {
        keys.as_object().is_some_and(|keys| {
            keys.iter().all(|(key, values)| {
                one_condition(
                    operator,
                    context.get(&key.to_ascii_lowercase()),
                    &strings(values),
                )
            })
        })
    })
}

fn one_condition(operator: &str, actual: Option<&String>, wanted: &[&str]) -> bool {
    if operator == "Null" {
        // "true": the key must be absent; "false": present.
        return wanted.iter().any(|w| (*w == "true") == actual.is_none());
    }
    let (operator, if_exists) = match operator.strip_suffix("IfExists") {
        Some(base) => (base, true),
        None => (operator, false),
    };
    let negated = operator.contains("Not");
    let Some(actual) = actual else {
        return if_exists || negated;
    };
    let positive = operator.replace("Not", "");
    let hit = wanted.iter().any(|w| match positive.as_str() {
        "StringEquals" | "ArnEquals" | "Bool" => actual == w,
        "StringEqualsIgnoreCase" => actual.eq_ignore_ascii_case(w),
        "StringLike" | "ArnLike" => wildcard(w, actual),
        // An operator this layer does not know: never a match, so a policy using one fails loudly.
        _ => false,
    });
    hit != negated
}
