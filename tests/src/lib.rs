//! Test harness: the AWS emulator (moto server) on a free loopback port, SDK config pointed at it,
//! and the realism layer (`proxy`) that makes it answer the way AWS does.

pub mod k8s;
pub mod operator;
pub mod prometheus;
pub mod proxy;

use aws_credential_types::Credentials;
use landing_zone_operator::aws::{AwsPorts, AwsSettings, load_sdk_config};
use landing_zone_operator::metrics::Metrics;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Installs the pinned emulator once per test process (`scripts/install-emulator` is idempotent).
fn moto_server() -> PathBuf {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let root = workspace_root();
            let status = Command::new(root.join("scripts/install-emulator"))
                .status()
                .expect("run scripts/install-emulator");
            assert!(
                status.success(),
                "scripts/install-emulator failed: the tests need the AWS emulator (moto)"
            );
            std::env::var_os("LZ_EMULATOR_VENV")
                .map_or_else(|| root.join(".venv"), PathBuf::from)
                .join("bin/moto_server")
        })
        .clone()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// One moto server, killed when dropped, and the realism layer in front of it.
pub struct Emulator {
    child: Child,
    /// The emulator itself: for changes made out of band, as a person would in the console.
    pub endpoint: String,
    pub log: PathBuf,
    /// The realism layer every call of the operator's ports goes through (AWS's wire shapes and
    /// latency; the behaviours a test is about are turned on with `wire.realism(..)`).
    pub wire: Option<proxy::AwsProxy>,
}

/// What every call through the wire layer costs unless a test says otherwise: AWS answers in
/// tens of milliseconds, not at once.
pub const WIRE_LATENCY: Duration = Duration::from_millis(10);

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Emulator {
    /// Starts an emulator with an Organization (all features) in its management account.
    pub async fn start() -> Emulator {
        Self::start_with_env(&[]).await
    }

    /// An emulator with AWS managed IAM policies (AdministratorAccess, …), which the example
    /// landing zone attaches. Slower: each new account loads them (~2 s).
    pub async fn with_managed_policies() -> Emulator {
        Self::start_with_env(&[("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")]).await
    }

    pub async fn start_with_env(env: &[(&str, &str)]) -> Emulator {
        let bin = moto_server();
        let mut last_err = String::new();
        for _ in 0..3 {
            let port = free_port();
            let log = std::env::temp_dir().join(format!("lz-moto-{port}.log"));
            let child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(
                    std::fs::File::create(&log)
                        .map(Stdio::from)
                        .unwrap_or(Stdio::null()),
                )
                .spawn()
                .expect("start moto_server");
            let mut emu = Emulator {
                child,
                endpoint: format!("http://127.0.0.1:{port}"),
                log,
                wire: None,
            };
            // moto imports for seconds, more while the suite keeps both cores busy.
            if emu
                .wait_ready(Duration::from_secs(30) * operator::PATIENCE)
                .await
            {
                emu.org_client()
                    .create_organization()
                    .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
                    .send()
                    .await
                    .expect("create the Organization in the emulator");
                let wire = proxy::AwsProxy::start(&emu.endpoint).await;
                // AWS's latency, and what the emulator lacks (centralized root access, policy limits,
                // email confirmation, the security services' organization calls).
                wire.realism(proxy::Realism {
                    latency: WIRE_LATENCY,
                    root_access: true,
                    policies: true,
                    email_confirmation: true,
                    security_services: Some(Default::default()),
                    ..Default::default()
                });
                emu.wire = Some(wire);
                return emu;
            }
            last_err = std::fs::read_to_string(&emu.log).unwrap_or_default();
        }
        panic!("the AWS emulator did not start: {last_err}");
    }

    async fn wait_ready(&self, timeout: Duration) -> bool {
        let addr = self.endpoint.trim_start_matches("http://").to_string();
        let start = Instant::now();
        while start.elapsed() < timeout {
            if tokio::net::TcpStream::connect(&addr).await.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// SDK config for the management account, through the realism layer in front of this
    /// emulator, with static test credentials.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        self.sdk_config_via(self.wire_endpoint(), 2).await
    }

    /// Where the operator's calls go: the realism layer.
    pub fn wire_endpoint(&self) -> &str {
        self.wire
            .as_ref()
            .map_or(self.endpoint.as_str(), |w| w.endpoint.as_str())
    }

    /// The operator's ports straight to the emulator, for measuring the operator alone (`make bench`).
    pub async fn ports_direct(&self) -> AwsPorts {
        self.ports_via(&self.endpoint, 2).await
    }

    /// The operator's ports (with a fresh call counter) against this emulator.
    pub async fn ports(&self) -> AwsPorts {
        AwsPorts::from_config(self.sdk_config().await, Metrics::new())
    }

    /// A plain SDK client for making changes out of band, as a person would in the console.
    pub fn org_client(&self) -> aws_sdk_organizations::Client {
        self.org_client_via(&self.endpoint)
    }

    /// The same, sending its calls to `endpoint` (e.g. through the realism layer).
    pub fn org_client_via(&self, endpoint: &str) -> aws_sdk_organizations::Client {
        let conf = aws_sdk_organizations::Config::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .build();
        aws_sdk_organizations::Client::from_conf(conf)
    }
}

/// The CLI's arguments for a directory and state file (JSON output, 2 SDK attempts), and the
/// apply arguments with `prune` and how long to wait for accounts being created.
pub fn cli_args(
    dir: &Path,
    state: &Path,
    prune: bool,
    wait: Duration,
) -> (
    landing_zone_operator::cli::DirArgs,
    landing_zone_operator::cli::ApplyArgs,
) {
    use landing_zone_operator::cli::{ApplyArgs, DirArgs, Output};
    let args = DirArgs {
        dir: dir.to_path_buf(),
        state: state.to_path_buf(),
        output: Output::Json,
        aws: aws_args(),
    };
    let apply = ApplyArgs {
        dir: args.clone(),
        prune,
        wait,
        poll_interval: Duration::from_millis(50),
    };
    (args, apply)
}

/// The CLI's AWS arguments in tests (the ports carry region and endpoint): 2 SDK attempts.
pub fn aws_args() -> landing_zone_operator::cli::AwsArgs {
    landing_zone_operator::cli::AwsArgs {
        region: None,
        endpoint_url: None,
        max_attempts: 2,
        rate_limits: vec![],
        identity_center_region: None,
    }
}

/// `import` into `out`, its state file beside it (`<out>.state.json`).
pub fn import_args(out: &Path, manage: bool) -> landing_zone_operator::cli::ImportArgs {
    landing_zone_operator::cli::ImportArgs {
        out: out.to_path_buf(),
        manage,
        iam_groups: false,
        state: out.with_extension("state.json"),
        aws: aws_args(),
    }
}

/// Runs the CLI core (`plan`, or `apply` when `apply` is set) over a directory.
pub async fn run_dir(
    ports: AwsPorts,
    dir: &Path,
    state: &Path,
    apply: bool,
    prune: bool,
) -> landing_zone_operator::cli::RunResult {
    use landing_zone_operator::cli::execute;
    // Generous: on a machine busy with other work, Identity Center's assignment requests for the
    // examples have taken over a minute to be followed to their end.
    let (args, apply_args) = cli_args(dir, state, prune, Duration::from_secs(180));
    let result = execute(&args, apply.then_some(&apply_args), ports)
        .await
        .expect("the run starts");
    // Every message of every run in the suite is a sentence, never a Debug dump.
    assert_readable(&result);
    result
}

/// The report of one resource in a run.
pub fn report<'a>(
    result: &'a landing_zone_operator::cli::RunResult,
    kind: &str,
    name: &str,
) -> &'a landing_zone_operator::reconcile::Report {
    result
        .reports
        .iter()
        .chain(&result.deletions)
        .find(|r| r.key.kind.as_str() == kind && r.key.name == name)
        .unwrap_or_else(|| panic!("no report for {kind}/{name}"))
}

/// Copies the example landing zone into a fresh directory (so a test can edit it).
pub fn examples_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = workspace_root().join("manifests/examples");
    for entry in std::fs::read_dir(&src).expect("examples") {
        let path = entry.expect("entry").path();
        std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
    }
    dir
}

impl Emulator {
    /// The Organization's root id, read directly from AWS.
    pub async fn root_id(&self) -> String {
        let out = self
            .org_client()
            .list_roots()
            .send()
            .await
            .expect("list roots");
        out.roots()[0].id().expect("root id").to_string()
    }

    /// The management account's id and the Organization's id, read directly from AWS.
    pub async fn management_account_and_org(&self) -> (String, String) {
        let out = self
            .org_client()
            .describe_organization()
            .send()
            .await
            .expect("describe organization");
        let org = out.organization().expect("an Organization");
        (
            org.master_account_id()
                .expect("management account")
                .to_string(),
            org.id().expect("organization id").to_string(),
        )
    }

    /// Makes an account directly in AWS, behind the operator's back; its id.
    pub async fn create_account_directly(&self, name: &str, email: &str) -> String {
        let out = self
            .org_client()
            .create_account()
            .account_name(name)
            .email(email)
            .send()
            .await
            .expect("create account");
        let status = out.create_account_status().expect("create status");
        status.account_id().expect("account id").to_string()
    }

    /// Moves an account directly in AWS, behind the operator's back.
    pub async fn move_directly(&self, account: &str, from: &str, to: &str) {
        self.org_client()
            .move_account()
            .account_id(account)
            .source_parent_id(from)
            .destination_parent_id(to)
            .send()
            .await
            .expect("move account");
    }

    /// The parent (root or OU id) of an account or OU, read directly from AWS.
    pub async fn parent_of(&self, id: &str) -> String {
        let out = self
            .org_client()
            .list_parents()
            .child_id(id)
            .send()
            .await
            .expect("list parents");
        out.parents()[0].id().expect("parent id").to_string()
    }

    /// The tags of an account or OU, read directly from AWS.
    pub async fn tags_of(&self, id: &str) -> std::collections::BTreeMap<String, String> {
        let out = self
            .org_client()
            .list_tags_for_resource()
            .resource_id(id)
            .send()
            .await
            .expect("list tags");
        out.tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect()
    }

    fn conf_parts(&self) -> (aws_config::Region, Credentials) {
        (
            aws_config::Region::new("us-east-1"),
            Credentials::new("testing", "testing", None, None, "test"),
        )
    }

    pub fn cloudtrail_client(&self) -> aws_sdk_cloudtrail::Client {
        let (region, creds) = self.conf_parts();
        aws_sdk_cloudtrail::Client::from_conf(
            aws_sdk_cloudtrail::Config::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(region)
                .endpoint_url(&self.endpoint)
                .credentials_provider(creds)
                .build(),
        )
    }

    pub fn s3_client(&self) -> aws_sdk_s3::Client {
        let (region, creds) = self.conf_parts();
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(region)
                .endpoint_url(&self.endpoint)
                .force_path_style(true)
                .credentials_provider(creds)
                .build(),
        )
    }
}

impl Emulator {
    /// SDK config inside `account_id` (straight to the emulator), through its access role as the
    /// operator gets one; plain clients for checking what an account holds.
    pub async fn member_sdk_config(&self, account_id: &str) -> aws_config::SdkConfig {
        let (region, creds) = self.conf_parts();
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::Config::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(region.clone())
                .endpoint_url(&self.endpoint)
                .credentials_provider(creds.clone())
                .build(),
        );
        let out = sts
            .assume_role()
            .role_arn(format!(
                "arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole"
            ))
            .role_session_name("test")
            .send()
            .await
            .expect("assume role");
        let c = out.credentials().expect("credentials");
        let member = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            None,
            "test",
        );
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(region)
            .endpoint_url(&self.endpoint)
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(member),
            )
            .build()
    }

    /// The default VPCs of `account_id` in `region`, read inside the account.
    pub async fn default_vpcs(&self, account_id: &str, region: &str) -> Vec<String> {
        let conf = self.member_sdk_config(account_id).await;
        let conf = conf
            .to_builder()
            .region(aws_config::Region::new(region.to_string()))
            .build();
        aws_sdk_ec2::Client::new(&conf)
            .describe_vpcs()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("is-default")
                    .values("true")
                    .build(),
            )
            .send()
            .await
            .expect("DescribeVpcs")
            .vpcs()
            .iter()
            .filter_map(|v| v.vpc_id().map(str::to_string))
            .collect()
    }

    /// Puts something to work in the account's default VPC in us-east-1 (a network interface in
    /// one of its subnets, as an instance or a load balancer has); the VPC's id.
    pub async fn occupy_default_vpc(&self, account_id: &str) -> String {
        let vpc = self.default_vpcs(account_id, "us-east-1").await.remove(0);
        let ec2 = aws_sdk_ec2::Client::new(&self.member_sdk_config(account_id).await);
        let subnets = ec2
            .describe_subnets()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("vpc-id")
                    .values(&vpc)
                    .build(),
            )
            .send()
            .await
            .expect("DescribeSubnets");
        ec2.create_network_interface()
            .subnet_id(subnets.subnets()[0].subnet_id().expect("a subnet"))
            .send()
            .await
            .expect("CreateNetworkInterface");
        vpc
    }

    /// An IAM client inside `account_id`, through its access role (as the operator gets one).
    pub async fn iam_in(&self, account_id: &str) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.member_sdk_config(account_id).await)
    }

    /// IAM in the management account.
    pub fn iam_management(&self) -> aws_sdk_iam::Client {
        let (region, creds) = self.conf_parts();
        aws_sdk_iam::Client::from_conf(
            aws_sdk_iam::Config::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(region)
                .endpoint_url(&self.endpoint)
                .credentials_provider(creds)
                .build(),
        )
    }
}

impl Emulator {
    /// The operator's ports sending every call to `endpoint` (e.g. a fault proxy in front of this
    /// emulator), with `max_attempts` SDK attempts per call.
    pub async fn ports_via(&self, endpoint: &str, max_attempts: u32) -> AwsPorts {
        AwsPorts::from_config(
            self.sdk_config_via(endpoint, max_attempts).await,
            Metrics::new(),
        )
    }

    /// SDK config for the management account sending every call to `endpoint`.
    pub async fn sdk_config_via(&self, endpoint: &str, max_attempts: u32) -> aws_config::SdkConfig {
        let base = load_sdk_config(&AwsSettings {
            region: Some("us-east-1".into()),
            endpoint_url: Some(endpoint.to_string()),
            max_attempts,
            ..Default::default()
        })
        .await;
        base.into_builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                    "testing", "testing", None, None, "test",
                )),
            )
            .build()
    }
}

/// Text that gives away a Rust `Debug` dump rather than a sentence for a human.
pub fn debug_dump(text: &str) -> Option<&'static str> {
    [
        "{ ",
        "DispatchFailure",
        "ConnectorError",
        "SdkError",
        "ServiceError",
        "TimeoutError",
        "Some(",
        "{source",
        "Timeout {",
    ]
    .into_iter()
    .find(|p| text.contains(p))
}

/// Fails when any message of a run (each resource's condition message or error, every note) is a
/// `Debug` dump.
pub fn assert_readable(result: &landing_zone_operator::cli::RunResult) {
    use landing_zone_operator::reconcile::Readiness;
    for r in result.reports.iter().chain(&result.deletions) {
        let text = match &r.result {
            Ok(p) => match &p.ready {
                Readiness::Ready { message, .. } | Readiness::NotReady { message, .. } => {
                    message.clone()
                }
            },
            Err(e) => e.to_string(),
        };
        if let Some(p) = debug_dump(&text) {
            panic!("{}: the message holds {p:?}, a Debug dump: {text}", r.key);
        }
    }
    for n in &result.notes {
        assert!(debug_dump(n).is_none(), "note is a Debug dump: {n}");
    }
    for e in &result.errors {
        assert!(
            debug_dump(&e.message).is_none(),
            "file error is a Debug dump: {}",
            e.message
        );
    }
}

/// Runs `apply` once over a directory with the given `--wait` (zero: one pass, no waiting).
pub async fn apply_waiting(
    ports: AwsPorts,
    dir: &Path,
    state: &Path,
    prune: bool,
    wait: Duration,
) -> landing_zone_operator::cli::RunResult {
    apply_with(ports, dir, state, prune, Duration::from_millis(500), wait).await
}

/// `apply_waiting` with the rounds `poll` apart (`--poll-interval`).
pub async fn apply_polling(
    ports: AwsPorts,
    dir: &Path,
    state: &Path,
    poll: Duration,
    wait: Duration,
) -> landing_zone_operator::cli::RunResult {
    apply_with(ports, dir, state, false, poll, wait).await
}

async fn apply_with(
    ports: AwsPorts,
    dir: &Path,
    state: &Path,
    prune: bool,
    poll: Duration,
    wait: Duration,
) -> landing_zone_operator::cli::RunResult {
    let (args, mut apply) = cli_args(dir, state, prune, wait);
    apply.poll_interval = poll;
    let result = landing_zone_operator::cli::execute(&args, Some(&apply), ports)
        .await
        .expect("the run starts");
    assert_readable(&result);
    result
}

impl Emulator {
    /// The change-event pipeline as the docs set it up: an SQS queue, and a rule on the default
    /// bus that delivers "AWS API Call via CloudTrail" events of the managed services to it.
    /// Returns the queue URL and an EventBridge client to publish the events AWS would send.
    pub async fn change_event_queue(&self) -> (String, aws_sdk_eventbridge::Client) {
        let conf = self.sdk_config().await;
        let sqs = aws_sdk_sqs::Client::new(&conf);
        // Only the rule may send (EventBridge refuses to deliver to a queue whose policy does not
        // let it: the realism layer judges it).
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": "arn:aws:sqs:us-east-1:123456789012:lz-change-events",
                "Condition": {"ArnEquals": {"aws:SourceArn": "arn:aws:events:us-east-1:123456789012:rule/lz-change-events"}},
            }],
        });
        let queue = sqs
            .create_queue()
            .queue_name("lz-change-events")
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::Policy,
                policy.to_string(),
            )
            .send()
            .await
            .expect("create the queue");
        let events = aws_sdk_eventbridge::Client::new(&conf);
        events
            .put_rule()
            .name("lz-change-events")
            .event_pattern(
                serde_json::json!({
                    "detail-type": ["AWS API Call via CloudTrail"],
                    "source": ["aws.organizations", "aws.iam", "aws.sso", "aws.identitystore", "aws.cloudtrail", "aws.s3", "aws.budgets"]
                })
                .to_string(),
            )
            .send()
            .await
            .expect("the rule");
        events
            .put_targets()
            .rule("lz-change-events")
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("queue")
                    .arn("arn:aws:sqs:us-east-1:123456789012:lz-change-events")
                    .build()
                    .expect("id and arn"),
            )
            .send()
            .await
            .expect("the rule's target");
        (queue.queue_url().unwrap_or_default().to_string(), events)
    }
}

/// CloudTrail's record of an Organizations call by `caller`, as EventBridge delivers it in `detail`.
pub fn organizations_call_detail(
    name: &str,
    params: serde_json::Value,
    caller: &str,
) -> serde_json::Value {
    serde_json::json!({
        "eventVersion": "1.09",
        "userIdentity": {"type": "AssumedRole", "arn": caller},
        "eventTime": k8s_openapi::jiff::Timestamp::now().to_string(),
        "eventSource": "organizations.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-east-1",
        "requestParameters": params,
        "responseElements": null,
        "recipientAccountId": "123456789012",
        "eventType": "AwsApiCall",
        "managementEvent": true
    })
}

/// Publishes what AWS sends for an Organizations call by `caller`.
pub async fn publish_organizations_call(
    events: &aws_sdk_eventbridge::Client,
    name: &str,
    params: serde_json::Value,
    caller: &str,
) {
    let detail = organizations_call_detail(name, params, caller);
    let out = events
        .put_events()
        .entries(
            aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                .source("aws.organizations")
                .detail_type("AWS API Call via CloudTrail")
                .detail(detail.to_string())
                .build(),
        )
        .send()
        .await
        .expect("PutEvents");
    assert_eq!(out.failed_entry_count(), 0);
}

/// A person in the console, as CloudTrail names them.
pub const PERSON: &str =
    "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_1234/alice@example.com";
