//! The HTTP plumbing of the realism layer: a request as the proxy sees it, AWS's answer and error
//! shapes per protocol, the emulator upstream, and fault injection.

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Throttle,
    ConcurrentModification,
    ServerError,
    Drop,
    /// AccessDeniedException, as for a caller whose policy lacks the action.
    AccessDenied,
    /// DeleteOrganizationalUnit: OrganizationalUnitNotEmptyException (a child arrived meanwhile).
    NotEmpty,
    /// The call reaches AWS and takes effect, but its answer is lost (a crash, a cut connection).
    LoseResponse,
    /// Any JSON-protocol error AWS documents for the operation: (HTTP status, error code).
    Aws(u16, &'static str),
}

#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// (fault, fraction of matching calls) — deterministic: every 1/fraction-th call.
    pub inject: Option<(Fault, f64)>,
    /// Only these operations (empty: every AWS Organizations call).
    pub only: Vec<String>,
    /// AWS unreachable: every connection dropped.
    pub down: bool,
    /// Stop injecting after this many faults (none: never stop).
    pub limit: Option<u64>,
}

/// One request as the proxy sees it.
#[derive(Clone)]
pub(super) struct Call {
    pub(super) parts: hyper::http::request::Parts,
    pub(super) body: Bytes,
    /// `organizations`, `iam`, `sts`, `s3`, … (from the SigV4 credential scope).
    pub(super) service: String,
    pub(super) operation: String,
    /// The caller's access key (one per account session).
    pub(super) caller: String,
    /// The region the request was signed for.
    pub(super) region: String,
    /// Query-protocol parameters (IAM, STS).
    pub(super) form: BTreeMap<String, String>,
    /// JSON-protocol body (Organizations, CloudTrail, Budgets).
    pub(super) json: Value,
}

pub(super) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An access key the emulator maps to its default account: the management account.
const MANAGEMENT_KEY: &str = "testing";

impl Call {
    pub(super) fn new(parts: hyper::http::request::Parts, body: Bytes) -> Self {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let auth = header("authorization");
        // Credential=AKID/20260101/us-east-1/iam/aws4_request
        let scope: Vec<&str> = auth
            .split("Credential=")
            .nth(1)
            .and_then(|c| c.split(',').next())
            .map(|c| c.split('/').collect())
            .unwrap_or_default();
        let caller = scope.first().copied().unwrap_or_default().to_string();
        let service = scope.get(3).copied().unwrap_or_default().to_string();
        let region = scope.get(2).copied().unwrap_or_default().to_string();
        let text = String::from_utf8_lossy(&body);
        let form: BTreeMap<String, String> =
            if header("content-type").contains("x-www-form-urlencoded") {
                text.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (percent_decode(k), percent_decode(v)))
                    .collect()
            } else {
                BTreeMap::new()
            };
        let target = header("x-amz-target");
        let operation = if !target.is_empty() {
            target.rsplit('.').next().unwrap_or(&target).to_string()
        } else if let Some((_, op)) = parts.uri.path().split_once("/operation/") {
            // Smithy RPC v2 (CloudWatch's CBOR): /service/<Service>/operation/<Operation>.
            op.to_string()
        } else if let Some(action) = form.get("Action") {
            action.clone()
        } else if service == "s3" {
            let path = parts.uri.path().trim_matches('/');
            let query = parts.uri.query().unwrap_or_default();
            match (parts.method.as_str(), path.contains('/'), query) {
                ("HEAD", false, _) => "HeadBucket".to_string(),
                ("PUT", false, q) if q.starts_with("policy") => "PutBucketPolicy".to_string(),
                ("PUT", false, q) if q.starts_with("lifecycle") => {
                    "PutBucketLifecycleConfiguration".to_string()
                }
                (m, _, q) => format!("{m} s3 {q}"),
            }
        } else {
            format!("{} {}", parts.method, parts.uri.path())
        };
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Call {
            parts,
            body,
            service,
            operation,
            caller,
            region,
            form,
            json,
        }
    }

    /// The caller's Authorization header with its credential scope naming `service`: the emulator
    /// routes by that scope, so a question asked on behalf of this call must name its own service.
    pub(super) fn authorization_for(&self, service: &str) -> String {
        self.parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .replace(
                &format!("/{}/aws4_request", self.service),
                &format!("/{service}/aws4_request"),
            )
    }

    /// The same caller's request as signed for another region (the emulator keeps each region's
    /// state apart, by the credential scope's region).
    pub(super) fn in_region(&self, region: &str) -> Call {
        let mut there = self.clone();
        let auth = self.authorization_for(&self.service).replace(
            &format!("/{}/{}/aws4_request", self.region, self.service),
            &format!("/{region}/{}/aws4_request", self.service),
        );
        if let Ok(h) = auth.parse() {
            there.parts.headers.insert("authorization", h);
        }
        there.region = region.to_string();
        there
    }

    pub(super) fn is_organizations(&self) -> bool {
        self.service == "organizations"
    }
}

pub(super) type Answer = Response<Full<Bytes>>;

pub(super) fn respond(status: u16, content_type: &str, body: impl Into<Bytes>) -> Answer {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("x-amzn-requestid", "00000000-0000-4000-8000-000000000000")
        .body(Full::new(body.into()))
        .expect("valid response")
}

/// An AWS JSON-protocol error (Organizations, CloudTrail, Budgets).
pub fn json_error(status: u16, code: &str, message: &str, reason: Option<&str>) -> Answer {
    let mut body = json!({"__type": code, "Message": message});
    if let Some(r) = reason {
        body["Reason"] = json!(r);
    }
    let mut resp = respond(status, "application/x-amz-json-1.1", body.to_string());
    resp.headers_mut()
        .insert("x-amzn-errortype", code.parse().expect("header value"));
    resp
}

pub(super) fn json_ok(body: Value) -> Answer {
    respond(200, "application/x-amz-json-1.1", body.to_string())
}

/// An AWS query-protocol error (IAM, STS): `<ErrorResponse>` XML.
pub fn xml_error(service: &str, status: u16, code: &str, message: &str) -> Answer {
    let ns = match service {
        "sts" => "https://sts.amazonaws.com/doc/2011-06-15/",
        _ => "https://iam.amazonaws.com/doc/2010-05-08/",
    };
    respond(
        status,
        "text/xml",
        format!(
            "<ErrorResponse xmlns=\"{ns}\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>00000000-0000-4000-8000-000000000000</RequestId></ErrorResponse>"
        ),
    )
}

#[derive(Clone)]
pub(super) struct Upstream {
    pub(super) url: String,
    pub(super) client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
}

impl Upstream {
    pub(super) async fn send(
        &self,
        call: &Call,
        body: Bytes,
    ) -> Result<(u16, Answer, Bytes), std::io::Error> {
        let uri = format!(
            "{}{}",
            self.url,
            call.parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/")
        );
        let mut fwd = Request::builder()
            .method(call.parts.method.clone())
            .uri(uri);
        for (k, v) in &call.parts.headers {
            if k != "content-length" {
                fwd = fwd.header(k, v);
            }
        }
        let resp = self
            .client
            .request(fwd.body(Full::new(body)).map_err(std::io::Error::other)?)
            .await
            .map_err(std::io::Error::other)?;
        let (mut parts, rbody) = resp.into_parts();
        let bytes = rbody
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        parts.headers.remove("content-length");
        Ok((
            parts.status.as_u16(),
            Response::from_parts(parts, Full::new(bytes.clone())),
            bytes,
        ))
    }

    /// Asks the emulator an Organizations question of its own (same caller, another operation),
    /// for the checks AWS makes and the emulator does not.
    pub(super) async fn ask_organizations(
        &self,
        call: &Call,
        operation: &str,
        body: Value,
    ) -> Result<Value, std::io::Error> {
        self.ask(call, "AWSOrganizationsV20161128", operation, body)
            .await
    }

    /// An Organizations question asked as the management account whoever the caller is (the
    /// emulator keeps an Organization's state with its management account: a member account's
    /// session sees none of it there, where AWS services see the Organization).
    pub(super) async fn ask_organizations_as_management(
        &self,
        call: &Call,
        operation: &str,
        body: Value,
    ) -> Result<Value, std::io::Error> {
        let mut as_management = Call {
            parts: call.parts.clone(),
            body: call.body.clone(),
            service: call.service.clone(),
            operation: call.operation.clone(),
            caller: MANAGEMENT_KEY.into(),
            region: call.region.clone(),
            form: call.form.clone(),
            json: call.json.clone(),
        };
        if let Some(v) = call.parts.headers.get("authorization") {
            let auth = v.to_str().unwrap_or_default().replace(
                &format!("Credential={}/", call.caller),
                &format!("Credential={MANAGEMENT_KEY}/"),
            );
            if let Ok(h) = auth.parse() {
                as_management.parts.headers.insert("authorization", h);
            }
            as_management.parts.headers.remove("x-amz-security-token");
        }
        self.ask(&as_management, "AWSOrganizationsV20161128", operation, body)
            .await
    }

    /// The same for any JSON-protocol service, by its target prefix.
    pub(super) async fn ask(
        &self,
        call: &Call,
        target_prefix: &str,
        operation: &str,
        body: Value,
    ) -> Result<Value, std::io::Error> {
        Ok(self
            .ask_with_status(call, target_prefix, operation, body)
            .await?
            .1)
    }

    /// As [`Upstream::ask`], with the answer's HTTP status.
    pub(super) async fn ask_with_status(
        &self,
        call: &Call,
        target_prefix: &str,
        operation: &str,
        body: Value,
    ) -> Result<(u16, Value), std::io::Error> {
        let mut req = Request::builder()
            .method("POST")
            .uri(format!("{}/", self.url));
        // The emulator routes by the credential scope's service and the content type: a question
        // asked on behalf of another service's call (e.g. IAM's) must name its own.
        let service = match target_prefix {
            "SWBExternalService" => "sso",
            "GraniteServiceVersion20100801" => "monitoring",
            "AWSEvents" => "events",
            "TrentService" => "kms",
            "AmazonSQS" => "sqs",
            _ => "organizations",
        };
        for (k, v) in &call.parts.headers {
            if k == "authorization" {
                req = req.header(k, call.authorization_for(service));
            } else if !matches!(
                k.as_str(),
                "content-length" | "x-amz-target" | "content-type" | "smithy-protocol" | "accept"
            ) {
                req = req.header(k, v);
            }
        }
        req = req
            .header("x-amz-target", format!("{target_prefix}.{operation}"))
            .header(
                "content-type",
                if service == "monitoring" || service == "sqs" {
                    // CloudWatch's and SQS's JSON protocol (awsJson1_0, query-compatible errors).
                    "application/x-amz-json-1.0"
                } else {
                    "application/x-amz-json-1.1"
                },
            );
        if service == "monitoring" {
            req = req.header("x-amzn-query-mode", "true");
        }
        let (status, bytes) = self.exchange(req, Bytes::from(body.to_string())).await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    pub(super) async fn forward(&self, call: &Call) -> Result<Answer, std::io::Error> {
        Ok(self.send(call, call.body.clone()).await?.1)
    }

    /// Forwards, then lets `edit` rewrite a successful JSON answer.
    pub(super) async fn forward_json(
        &self,
        call: &Call,
        edit: impl FnOnce(&mut Value),
    ) -> Result<Answer, std::io::Error> {
        let (status, answer, bytes) = self.send(call, call.body.clone()).await?;
        if status != 200 {
            return Ok(answer);
        }
        let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) else {
            return Ok(answer);
        };
        edit(&mut v);
        Ok(json_ok(v))
    }

    /// Sends a request the layer built itself to the emulator: its status and body.
    async fn exchange(
        &self,
        req: hyper::http::request::Builder,
        body: Bytes,
    ) -> Result<(u16, Bytes), std::io::Error> {
        let resp = self
            .client
            .request(req.body(Full::new(body)).map_err(std::io::Error::other)?)
            .await
            .map_err(std::io::Error::other)?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        Ok((status, bytes))
    }

    /// Sends a request of the caller's to another service of the emulator, signed as the caller
    /// (the emulator reads the account from the key and routes by the credential scope).
    async fn ask_as_caller(
        &self,
        call: &Call,
        service: &str,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<(u16, String), std::io::Error> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", self.url));
        for (k, v) in &call.parts.headers {
            if k == "authorization" {
                req = req.header(k, call.authorization_for(service));
            } else if k == "x-amz-security-token" || k == "x-amz-date" {
                req = req.header(k, v);
            }
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let (status, bytes) = self.exchange(req, body).await?;
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// A query-protocol call (`Action=…`, form-encoded) to another service, as the caller.
    async fn ask_query(
        &self,
        call: &Call,
        service: &str,
        form: &str,
    ) -> Result<(u16, String), std::io::Error> {
        self.ask_as_caller(
            call,
            service,
            "POST",
            "/",
            &[("content-type", "application/x-www-form-urlencoded")],
            Bytes::from(form.to_string()),
        )
        .await
    }

    /// The trust policy of the caller's account's role `name`, as IAM holds it (`GetRole`).
    pub(super) async fn role_trust(
        &self,
        call: &Call,
        name: &str,
    ) -> Result<Option<Value>, std::io::Error> {
        let form = format!("Action=GetRole&Version=2010-05-08&RoleName={name}");
        let (status, xml) = self.ask_query(call, "iam", &form).await?;
        if status != 200 {
            return Ok(None);
        }
        let doc = xml
            .split("<AssumeRolePolicyDocument>")
            .nth(1)
            .and_then(|t| t.split("</AssumeRolePolicyDocument>").next())
            .unwrap_or_default();
        Ok(serde_json::from_str(&percent_decode(&xml_unescape(doc))).ok())
    }

    /// The inline policies of the caller's account's role `name` (`ListRolePolicies`,
    /// `GetRolePolicy`).
    pub(super) async fn role_inline_policies(
        &self,
        call: &Call,
        name: &str,
    ) -> Result<Vec<Value>, std::io::Error> {
        let form = format!("Action=ListRolePolicies&Version=2010-05-08&RoleName={name}");
        let (_, xml) = self.ask_query(call, "iam", &form).await?;
        let names: Vec<String> = xml
            .split("<member>")
            .skip(1)
            .filter_map(|t| t.split("</member>").next())
            .map(str::to_string)
            .collect();
        let mut out = Vec::new();
        for policy in names {
            let form = format!(
                "Action=GetRolePolicy&Version=2010-05-08&RoleName={name}&PolicyName={policy}"
            );
            let (_, xml) = self.ask_query(call, "iam", &form).await?;
            let doc = xml
                .split("<PolicyDocument>")
                .nth(1)
                .and_then(|t| t.split("</PolicyDocument>").next())
                .unwrap_or_default();
            if let Ok(v) = serde_json::from_str(&percent_decode(&xml_unescape(doc))) {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// The access policy of the SNS topic (`GetTopicAttributes`), if the topic exists.
    pub(super) async fn topic_policy(
        &self,
        call: &Call,
        topic: &str,
    ) -> Result<Option<Value>, std::io::Error> {
        Ok(self
            .topic_attribute(call, topic, "Policy")
            .await?
            .and_then(|p| serde_json::from_str(&p).ok()))
    }

    /// One attribute of the SNS topic (`GetTopicAttributes`): `None` when the topic does not
    /// exist, `Some("")` when it lacks the attribute.
    pub(super) async fn topic_attribute(
        &self,
        call: &Call,
        topic: &str,
        name: &str,
    ) -> Result<Option<String>, std::io::Error> {
        let form = format!(
            "Action=GetTopicAttributes&Version=2010-03-31&TopicArn={}",
            topic.replace(':', "%3A")
        );
        let (status, xml) = self.ask_query(call, "sns", &form).await?;
        if status != 200 {
            return Ok(None);
        }
        let value = xml
            .split(&format!("<key>{name}</key>"))
            .nth(1)
            .and_then(|t| t.split("<value>").nth(1))
            .and_then(|t| t.split("</value>").next())
            .unwrap_or_default();
        Ok(Some(xml_unescape(value)))
    }

    /// The policy of the bucket (S3 `GetBucketPolicy`), if it has one.
    pub(super) async fn bucket_policy(
        &self,
        call: &Call,
        bucket: &str,
    ) -> Result<Option<Value>, std::io::Error> {
        let (status, body) = self
            .ask_as_caller(
                call,
                "s3",
                "GET",
                &format!("/{bucket}?policy"),
                &[],
                Bytes::new(),
            )
            .await?;
        Ok((status == 200)
            .then(|| serde_json::from_str(&body).ok())
            .flatten())
    }
}

fn xml_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The injected fault for this call, if any (and counts the call).
pub(super) fn fault_for(s: &mut State, call: &Call) -> Option<Fault> {
    *s.counts.entry(call.operation.clone()).or_default() += 1;
    if s.faults.down {
        return Some(Fault::Drop);
    }
    let matches = if s.faults.only.is_empty() {
        call.is_organizations()
    } else {
        s.faults.only.contains(&call.operation)
    };
    if s.faults.limit.is_some_and(|l| s.injected >= l) {
        return None;
    }
    match s.faults.inject {
        Some((fault, fraction)) if matches => {
            s.seen += 1;
            let n = s.seen as f64;
            let hit = (n * fraction).floor() > ((n - 1.0) * fraction).floor();
            if hit {
                s.injected += 1;
            }
            hit.then_some(fault)
        }
        _ => None,
    }
}

pub(super) async fn handle(
    call: Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<Answer, std::io::Error> {
    let (fault, delay) = {
        let mut s = st.lock().unwrap();
        let delay = s
            .realism
            .slow
            .get(&call.operation)
            .copied()
            .unwrap_or(s.realism.latency);
        (fault_for(&mut s, &call), delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match fault {
        Some(Fault::Throttle) => {
            return Ok(json_error(
                400,
                "TooManyRequestsException",
                "Rate exceeded",
                None,
            ));
        }
        Some(Fault::ConcurrentModification) => {
            return Ok(json_error(
                400,
                "ConcurrentModificationException",
                "AWS Organizations can't complete your request because it conflicts with another attempt to modify the same entity. Try again later.",
                None,
            ));
        }
        Some(Fault::ServerError) => {
            return Ok(json_error(
                500,
                "ServiceException",
                "AWS Organizations can't complete your request because of an internal service error. Try again later.",
                None,
            ));
        }
        Some(Fault::Drop) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "dropped by the fault proxy",
            ));
        }
        Some(Fault::AccessDenied) => {
            return Ok(json_error(
                400,
                "AccessDeniedException",
                "You don't have permissions to access this resource.",
                None,
            ));
        }
        Some(Fault::NotEmpty) => {
            return Ok(json_error(
                400,
                "OrganizationalUnitNotEmptyException",
                "You can't delete an organizational unit (OU) that contains accounts or other OUs.",
                None,
            ));
        }
        Some(Fault::Aws(status, code)) => {
            return Ok(json_error(
                status,
                code,
                &format!("{code} (injected by the realism layer)"),
                None,
            ));
        }
        Some(Fault::LoseResponse) => {
            let _ = Box::pin(dispatch(&call, st, upstream)).await;
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "the answer was lost on the way back",
            ));
        }
        None => {}
    }
    dispatch(&call, st, upstream).await
}

/// The caller's account: a member session's, or the management account's.
pub(super) async fn caller_account(
    call: &Call,
    st: &Arc<Mutex<State>>,
    upstream: &Upstream,
) -> Result<(String, String), std::io::Error> {
    let known = st.lock().unwrap().services.management.clone();
    let management = match known {
        Some(m) => m,
        None => {
            let org = upstream
                .ask_organizations_as_management(call, "DescribeOrganization", json!({}))
                .await?;
            let m = str_of(&org["Organization"], "MasterAccountId").to_string();
            st.lock().unwrap().services.management = Some(m.clone());
            m
        }
    };
    let account = st
        .lock()
        .unwrap()
        .session_accounts
        .get(&call.caller)
        .cloned()
        .unwrap_or_else(|| management.clone());
    Ok((account, management))
}
