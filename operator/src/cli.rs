//! The command line: `plan` / `apply` a directory of YAML without a cluster, `crds`, `version`.

use crate::aws::{AwsPorts, AwsSettings};
use crate::metrics::Metrics;
use crate::reconcile::{self, Mode, NoSink, Pass, Readiness, Report, Resource, StatusSink};
use crate::source::dir::{LoadError, load_dir};
use crate::source::state::StateFile;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "landing-zone-operator",
    version,
    about = "Makes an AWS Organization match landingzone.dev resources"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr.
    #[arg(long, global = true, env = "LZ_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the CustomResourceDefinitions (or write one file per CRD into --out).
    Crds {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Show, per resource, what apply would do and the drift it sees. Writes nothing.
    Plan(DirArgs),
    /// Make AWS match the directory, in dependency order, then print each resource's status.
    Apply(ApplyArgs),
    /// Run the operator: reconcile the cluster's landingzone.dev resources continuously.
    Run(RunArgs),
    /// Describe the live Organization as landingzone.dev resources, one file per kind, in --out.
    /// Reads only: AWS writes are refused for the whole run.
    Import(ImportArgs),
    /// Print the version.
    Version,
}

#[derive(Args, Debug, Clone)]
pub struct ImportArgs {
    /// Directory to write the manifests into (created; it must be empty if it exists).
    #[arg(long)]
    pub out: PathBuf,
    /// Write `managementPolicy: Manage` (default `Observe`: applying the import never changes AWS).
    #[arg(long)]
    pub manage: bool,
    /// Also import the IAM groups of member accounts (through their access role).
    #[arg(long)]
    pub iam_groups: bool,
    /// The state file `plan` and `apply` use: import records there the AWS id of each resource
    /// it wrote, so they start from what it found.
    #[arg(long, env = "LZ_STATE", default_value = ".lz/state.json")]
    pub state: PathBuf,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// How often every resource is compared with AWS even when nothing changed in Kubernetes
    /// (default 5m; 1h while change events arrive, from --change-events-queue-url or the
    /// Organization's spec.changeEvents, since events bring drift in at once).
    #[arg(long, env = "LZ_RESYNC_INTERVAL", value_parser = parse_duration)]
    pub resync_interval: Option<Duration>,
    /// The SQS queue an EventBridge rule delivers AWS change events ("AWS API Call via
    /// CloudTrail") to: the resources each touched are reconciled at once. Not needed when the
    /// Organization resource owns the pipeline (spec.changeEvents): its queue is read then.
    #[arg(long, env = "LZ_CHANGE_EVENTS_QUEUE_URL")]
    pub change_events_queue_url: Option<String>,
    /// The queue's region (the rule's: us-east-1 for Organizations, IAM and the other global services).
    #[arg(long, env = "LZ_CHANGE_EVENTS_REGION", default_value = "us-east-1")]
    pub change_events_region: String,
    /// Reconciles running at once, per kind.
    #[arg(long, env = "LZ_CONCURRENCY", default_value_t = 4)]
    pub concurrency: u16,
    /// Observe and report only: never write to AWS.
    #[arg(long, env = "LZ_DRY_RUN")]
    pub dry_run: bool,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "LZ_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: std::net::SocketAddr,
    /// How long one read of the Organization is shared by the reconciles of a resync (default: a
    /// tenth of the resync interval, 30s when polling every 5m).
    #[arg(long, env = "LZ_SNAPSHOT_TTL", value_parser = parse_duration)]
    pub snapshot_ttl: Option<Duration>,
    /// While change events arrive, each resource's own reads (its tags, the baseline inside a
    /// member account) are made at every Nth resync; the others compare its structure with the
    /// shared read of the Organization. A change event, a spec change or a resource not Ready
    /// brings them at once. 1: at every resync.
    #[arg(long, env = "LZ_FULL_READ_EVERY", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub full_read_every: u32,
    /// How long a closure AWS refused for its closure quota (a share of accounts per 30 days) waits
    /// before it is tried again.
    #[arg(long, env = "LZ_CLOSE_RETRY_INTERVAL", value_parser = parse_duration, default_value = "6h")]
    pub close_retry_interval: Duration,
    #[arg(long, env = "LZ_LEASE_NAME", default_value = "landing-zone-operator")]
    pub lease_name: String,
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    #[arg(long, env = "LZ_LEASE_DURATION", value_parser = parse_duration, default_value = "15s")]
    pub lease_duration: Duration,
    /// This replica's name in the lease (default: POD_NAME, else host name and process id).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Args, Debug, Clone)]
pub struct AwsArgs {
    /// AWS region (default: the standard chain, then us-east-1).
    #[arg(long, env = "AWS_REGION")]
    pub region: Option<String>,
    /// Send every AWS call to this endpoint (e.g. the local emulator).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// SDK attempts per AWS call (throttling and transient errors back off with jitter).
    #[arg(long, env = "LZ_AWS_MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: u32,
    /// Client-side rate limit of one AWS operation, `Operation=rate[/burst]` (repeatable), e.g.
    /// `--rate-limit MoveAccount=1/2`. Defaults sit below AWS's published quotas.
    #[arg(long = "rate-limit", value_name = "OP=RATE[/BURST]")]
    pub rate_limits: Vec<String>,
    /// The home region of the IAM Identity Center instance (default: --region).
    #[arg(long, env = "LZ_IDENTITY_CENTER_REGION")]
    pub identity_center_region: Option<String>,
}

impl AwsArgs {
    pub fn settings(&self) -> AwsSettings {
        let mut rate_limits = crate::aws::pacing::RateLimits::default();
        for spec in &self.rate_limits {
            if let Err(e) = rate_limits.set(spec) {
                eprintln!("error: --rate-limit {e}");
                std::process::exit(2);
            }
        }
        AwsSettings {
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
            max_attempts: self.max_attempts,
            rate_limits,
            identity_center_region: self.identity_center_region.clone(),
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct DirArgs {
    /// Directory of landingzone.dev YAML (searched recursively).
    #[arg(long)]
    pub dir: PathBuf,
    /// Where the CLI keeps what a cluster keeps in status (AWS ids, create request ids).
    #[arg(long, env = "LZ_STATE", default_value = ".lz/state.json")]
    pub state: PathBuf,
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    pub output: Output,
    #[command(flatten)]
    pub aws: AwsArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub dir: DirArgs,
    /// Carry out the deletion policy of resources that were applied before and are gone from --dir.
    #[arg(long)]
    pub prune: bool,
    /// How long to wait for work in progress (accounts being created, queued behind AWS's limits,
    /// not yet accessible, and what waits for them) before reporting it as still in progress.
    #[arg(long, value_parser = parse_duration, default_value = "15m")]
    pub wait: Duration,
    /// How often work in progress is looked at again while waiting.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub poll_interval: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

/// `90s`, `5m`, `1h` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (e.g. 30s, 5m, 1h)"))?;
    Ok(Duration::from_secs(match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("unknown unit in {s:?}: use s, m or h")),
    }))
}

pub fn init_tracing(format: LogFormat, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only for a person at a terminal, never in a log file or a collector.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Run(_)) {
        "info"
    } else {
        "warn"
    };
    init_tracing(cli.log_format, default_level);
    match cli.command {
        Command::Run(args) => run(args).await,
        Command::Version => {
            println!("landing-zone-operator {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Crds { out } => crds(out),
        Command::Plan(args) => run_dir(&args, None).await,
        Command::Import(args) => {
            let aws = AwsPorts::connect(&args.aws.settings(), Metrics::new()).await;
            match import(&args, aws).await {
                Ok(summary) => {
                    print!("{summary}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Apply(args) => run_dir(&args.dir.clone(), Some(&args)).await,
    }
}

async fn run(args: RunArgs) -> ExitCode {
    let metrics = Metrics::new();
    crate::reconcile::registry::declare_metrics(&metrics);
    let aws = AwsPorts::connect(&args.aws.settings(), metrics.clone()).await;
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: no Kubernetes client (in-cluster config or KUBECONFIG): {e}");
            return ExitCode::from(2);
        }
    };
    let identity = args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        format!(
            "{}-{}",
            if host.is_empty() {
                "landing-zone-operator"
            } else {
                &host
            },
            std::process::id()
        )
    });
    let settings = crate::controller::Settings {
        resync_interval: args.resync_interval,
        change_events: args.change_events_queue_url.clone().map(|queue_url| {
            crate::controller::ChangeEvents {
                queue_url,
                region: args.change_events_region.clone(),
            }
        }),
        concurrency: args.concurrency,
        dry_run: args.dry_run,
        snapshot_ttl: args.snapshot_ttl,
        full_read_every: args.full_read_every,
        close_retry_interval: args.close_retry_interval,
        lease_name: args.lease_name.clone(),
        lease_namespace: args.lease_namespace.clone(),
        identity,
        lease_duration: args.lease_duration,
    };
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server = tokio::spawn(crate::http::serve(
        args.metrics_addr,
        metrics,
        ready.clone(),
    ));
    let result = crate::controller::run(client, aws, settings, ready).await;
    server.abort();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn crds(out: Option<PathBuf>) -> ExitCode {
    let files = crate::crds::crd_files();
    match out {
        None => {
            for (_, yaml) in files {
                print!("---\n{yaml}");
            }
        }
        Some(dir) => {
            for (name, yaml) in files {
                if let Err(e) = std::fs::create_dir_all(&dir)
                    .and_then(|_| std::fs::write(dir.join(&name), yaml))
                {
                    eprintln!("error: cannot write {}: {e}", dir.join(name).display());
                    return ExitCode::from(2);
                }
            }
        }
    }
    ExitCode::SUCCESS
}

/// `import`: reads the Organization, writes the manifests, checks that they load, and returns the
/// summary to print (the testable core of the command).
pub async fn import(args: &ImportArgs, aws: AwsPorts) -> Result<String, String> {
    use std::fmt::Write;
    if std::fs::read_dir(&args.out).is_ok_and(|mut d| d.next().is_some()) {
        return Err(format!(
            "{} is not empty: import writes a new directory and never overwrites files",
            args.out.display()
        ));
    }
    // Importing only reads: any write would be refused before it left the process.
    aws.fence.close();
    // Cleared when dropped, on every way out.
    struct Spinner(Option<indicatif::ProgressBar>);
    impl Drop for Spinner {
        fn drop(&mut self) {
            if let Some(b) = &self.0 {
                b.finish_and_clear();
            }
        }
    }
    let bar = Spinner(
        std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        }),
    );
    let progress = |step: &str| {
        if let Some(b) = &bar.0 {
            b.set_message(step.to_string());
        }
    };
    let options = crate::import::Options {
        manage: args.manage,
        member_iam_groups: args.iam_groups,
    };
    let imported = crate::import::import(&aws, &options, &progress)
        .await
        .map_err(|e| format!("cannot read the Organization: {e}"))?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    for (file, text) in imported.render(args.manage)? {
        let path = args.out.join(&file);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    // What was written must load as it would for plan: a file that does not is a bug here.
    let loaded = load_dir(&args.out);
    if let Some(e) = loaded.errors.first() {
        return Err(format!(
            "the imported manifests do not load ({} errors), first: {}: {}",
            loaded.errors.len(),
            e.file.display(),
            e.message
        ));
    }
    // Import checks its own work with one pass of apply over what it wrote, with writes still
    // refused: every resource is found (its id goes into the state file, as apply's adoption
    // would) and nothing differs. Anything that would be written is a resource import described
    // wrongly, and is said.
    progress("checking the manifests against AWS");
    let dir_args = DirArgs {
        dir: args.out.clone(),
        state: args.state.clone(),
        output: Output::Json,
        aws: args.aws.clone(),
    };
    let apply_args = ApplyArgs {
        dir: dir_args.clone(),
        prune: false,
        wait: Duration::ZERO,
        poll_interval: Duration::from_secs(1),
    };
    let check = execute(&dir_args, Some(&apply_args), aws).await?;
    drop(bar);
    let differs: Vec<String> = check
        .reports
        .iter()
        .filter_map(|r| match &r.result {
            Err(e) => Some(format!("{}: {e}", r.key)),
            Ok(p) => {
                let changes: Vec<&String> = p
                    .actions
                    .iter()
                    .filter(|a| !a.starts_with("adopt existing"))
                    .collect();
                (!changes.is_empty() || !p.drift.is_empty()).then(|| {
                    format!(
                        "{}: would change {changes:?}, drift {:?}",
                        r.key,
                        p.drift.iter().map(|d| &d.field).collect::<Vec<_>>()
                    )
                })
            }
        })
        .collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Imported AWS Organization {} into {} ({}; nothing was written to AWS):",
        imported.organization_id,
        args.out.display(),
        if args.manage { "Manage" } else { "Observe" }
    );
    for (kind, n) in imported.counts() {
        let _ = writeln!(out, "  {kind:<22}{n:>5}");
    }
    for (title, lines) in [
        ("Needs a human decision", &imported.decisions),
        ("Left out", &imported.left_out),
        (
            "Not described exactly (an import bug: please report it; review these before Manage)",
            &differs,
        ),
    ] {
        if !lines.is_empty() {
            let _ = writeln!(out, "{title}:");
            for l in lines {
                let _ = writeln!(out, "  - {l}");
            }
        }
    }
    let _ = writeln!(
        out,
        "AWS ids recorded in {}. Next: landing-zone-operator plan --dir {} --state {}   # 0 changes, 0 drift",
        args.state.display(),
        args.out.display(),
        args.state.display()
    );
    Ok(out)
}

/// Everything a plan or apply run produced, for printing.
pub struct RunResult {
    /// What `status` and the printer columns carry, for a person: per account the root user and
    /// password policy, per budget the spend, per trail its logging.
    pub summary: Vec<String>,
    pub reports: Vec<Report>,
    pub deletions: Vec<Report>,
    pub errors: Vec<LoadError>,
    pub notes: Vec<String>,
    pub metrics: Metrics,
}

impl RunResult {
    pub fn failed(&self) -> bool {
        !self.errors.is_empty()
            || self
                .reports
                .iter()
                .chain(&self.deletions)
                .any(|r| r.result.is_err())
    }
}

async fn run_dir(args: &DirArgs, apply: Option<&ApplyArgs>) -> ExitCode {
    let metrics = Metrics::new();
    let aws = AwsPorts::connect(&args.aws.settings(), metrics.clone()).await;
    match execute(args, apply, aws).await {
        Ok(result) => {
            print_result(&result, apply.is_some(), args.output);
            if result.failed() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Loads the directory and runs one plan or apply over it (the testable core of the CLI).
pub async fn execute(
    args: &DirArgs,
    apply: Option<&ApplyArgs>,
    aws: AwsPorts,
) -> Result<RunResult, String> {
    let loaded = load_dir(&args.dir);
    let mut notes: Vec<String> = loaded
        .skipped
        .iter()
        .map(|s| format!("not a landing-zone resource, left alone: {s}"))
        .collect();
    let mut resources: Vec<Resource> = loaded.resources.into_iter().map(|(r, _)| r).collect();
    let state = Arc::new(StateFile::open(&args.state)?);
    state.load_statuses(&mut resources);
    let (mode, sink): (Mode, Arc<dyn StatusSink>) = match apply {
        Some(_) => {
            state.remember(&resources);
            state.write()?;
            (Mode::Apply, state.clone())
        }
        None => (Mode::Plan, Arc::new(NoSink)),
    };
    let started = Instant::now();
    let mut view = apply.map(|_| ProgressView::new(resources.len()));
    // The latest report of every resource; a round while waiting reconciles only what is still in
    // progress (and keeps what is done), so waiting for accounts costs no full pass per round.
    let mut latest: std::collections::BTreeMap<reconcile::Key, Report> = Default::default();
    let mut todo: Vec<usize> = (0..resources.len()).collect();
    let mut first_round = true;
    // Whether this round followed the last one at once (at most one such round in a row).
    let mut went_at_once = false;
    // One read of the Organization serves the rounds while waiting (refreshed as `Pass::refresh`
    // says), so a round costs what its resources read, not a walk of the whole tree.
    let mut pass = Pass::begin(aws.clone(), mode, sink.clone())
        .await
        .map_err(|e| format!("cannot read the AWS Organization: {e}"))?;
    loop {
        // Rounds start a poll interval apart, not a poll interval after the last one ended: an
        // account whose CreateAccount finished is seen within that interval, however long the
        // rest of a round (a new account's baseline, its assignments) takes. Vending 200, where
        // a freed slot waited 1.08 s on average to be seen, is bound by this.
        let round_started = Instant::now();
        if !first_round {
            pass.refresh()
                .await
                .map_err(|e| format!("cannot read the AWS Organization: {e}"))?;
        }
        for r in &resources {
            if let Some(id) = r.aws_id() {
                pass.ids.insert(r.key(), id);
            }
        }
        pass.role_names = reconcile::role_names(&resources, &pass.ids);
        let mut round: Vec<Resource> = todo.iter().map(|&i| resources[i].clone()).collect();
        let reports = reconcile::run_pass(&mut round, &mut pass).await;
        for (&i, r) in todo.iter().zip(round) {
            resources[i] = r;
        }
        for r in reports {
            latest.insert(r.key.clone(), r);
        }
        let pending: Vec<&Report> = latest
            .values()
            .filter(|r| worth_waiting(r, &latest))
            .collect();
        if let Some(v) = view.as_mut() {
            v.update(&latest);
        }
        // What finished in a waiting round (e.g. an account now created) is news for what comes
        // after it, which the first round reconciled without it: those go again.
        let finished: std::collections::BTreeSet<reconcile::Key> = if first_round {
            Default::default()
        } else {
            todo.iter()
                .map(|&i| resources[i].key())
                .filter(|k| latest.get(k).is_some_and(|r| !in_progress(r)))
                .collect()
        };
        first_round = false;
        // The first round read everything; waiting rounds read what is new (a baseline, the
        // accounts just created in its OUs).
        pass.full_check_every = Duration::MAX;
        let followers: Vec<usize> = (0..resources.len())
            .filter(|&i| !finished.contains(&resources[i].key()))
            .filter(|&i| {
                resources[i]
                    .dependencies_among(&resources)
                    .iter()
                    .any(|d| finished.contains(d))
            })
            .collect();
        match apply {
            Some(a)
                if (!pending.is_empty() || !followers.is_empty())
                    && started.elapsed() + a.poll_interval < a.wait =>
            {
                if !pending.is_empty() && view.as_ref().is_some_and(|v| v.bar.is_none()) {
                    eprintln!(
                        "{}; checking again in {} s (up to --wait {} s)",
                        describe_pending(&pending),
                        a.poll_interval.as_secs_f64().ceil(),
                        a.wait.as_secs()
                    );
                }
                let keys: std::collections::BTreeSet<&reconcile::Key> =
                    pending.iter().map(|r| &r.key).collect();
                todo = (0..resources.len())
                    .filter(|&i| keys.contains(&resources[i].key()) || followers.contains(&i))
                    .collect();
                // A CreateAccount slot that freed up during this round, with accounts queued for
                // it (reconciled before the request that freed it was seen finished): the next
                // round goes at once rather than a poll interval later.
                let queued = pending
                    .iter()
                    .any(|r| matches!(r.result, Err(reconcile::Error::Queued { .. })));
                let slot_free = queued
                    && pass.creates.in_flight(&pass.snapshot.in_flight)
                        < crate::aws::pacing::MAX_CREATE_IN_FLIGHT;
                if !pending.is_empty() && (!slot_free || went_at_once) {
                    tokio::time::sleep(a.poll_interval.saturating_sub(round_started.elapsed()))
                        .await;
                    went_at_once = false;
                } else {
                    went_at_once = slot_free;
                }
            }
            _ => break,
        }
    }
    if let Some(v) = view {
        v.finish();
    }
    let order: std::collections::BTreeMap<reconcile::Key, usize> = resources
        .iter()
        .enumerate()
        .map(|(i, r)| (r.key(), i))
        .collect();
    let mut reports: Vec<Report> = latest.into_values().collect();
    reports.sort_by_key(|r| order.get(&r.key).copied().unwrap_or(usize::MAX));
    if mode == Mode::Apply {
        state.write()?; // the volatile fields (lastSyncTime) the saves left for the end
    }
    let mut orphans = state.orphans(&resources);
    let mut deletions = Vec::new();
    if !orphans.is_empty() {
        match apply {
            Some(a) if a.prune => {
                let mut pass = Pass::begin(aws.clone(), Mode::Apply, sink.clone())
                    .await
                    .map_err(|e| format!("cannot read the AWS Organization: {e}"))?;
                for r in &resources {
                    if let Some(id) = r.aws_id() {
                        pass.ids.insert(r.key(), id);
                    }
                }
                deletions = reconcile::run_deletions(&mut orphans, &mut pass).await;
                for d in deletions.iter().filter(|d| d.result.is_ok()) {
                    state.forget(&d.key)?;
                }
            }
            _ => notes.push(format!(
                "{} resource(s) applied before are no longer in {}: {}; run apply --prune to carry out their deletion policy",
                orphans.len(),
                args.dir.display(),
                orphans.iter().map(|r| r.key().to_string()).collect::<Vec<_>>().join(", ")
            )),
        }
    }
    Ok(RunResult {
        summary: summary(&resources),
        reports,
        deletions,
        errors: loaded.errors,
        notes,
        metrics: aws.metrics.clone(),
    })
}

/// Work AWS or the operator is still doing that finishes without a human: accounts being created
/// or queued behind AWS's limits, accounts not yet accessible, and what waits for them.
pub fn in_progress(r: &Report) -> bool {
    match &r.result {
        Ok(p) => crate::reconcile::aws_account::plan::being_created(&p.ready),
        Err(e) => {
            matches!(
                e,
                reconcile::Error::Queued { .. }
                    | reconcile::Error::Transient { .. }
                    | reconcile::Error::WaitingForDependency { .. }
            ) || e.reason() == "AccountNotYetAccessible"
        }
    }
}

/// Whether a run should go on waiting for this resource: it is in progress, and what it waits
/// for is in this run and can still finish. A reference to a resource that is not in the
/// directory (a typo, a file not yet written) or that failed for good would otherwise hold the
/// run until `--wait` (15 min by default) runs out for nothing.
fn worth_waiting(r: &Report, latest: &std::collections::BTreeMap<reconcile::Key, Report>) -> bool {
    fn go(
        r: &Report,
        latest: &std::collections::BTreeMap<reconcile::Key, Report>,
        depth: usize,
    ) -> bool {
        if !in_progress(r) {
            return false;
        }
        let Err(reconcile::Error::WaitingForDependency { kind, name, .. }) = &r.result else {
            return true;
        };
        let dependency = reconcile::Kind::parse(kind)
            .and_then(|k| latest.get(&reconcile::Key::new(k, name.as_str())));
        // A chain of waits ends at a resource that is working (or done); a cycle never does.
        depth < 16 && dependency.is_some_and(|d| d.result.is_ok() || go(d, latest, depth + 1))
    }
    go(r, latest, 0)
}

/// A waiting apply's progress: a live bar on a terminal (resources done of all, what is being
/// created or queued, the slowest step), one line per change of a resource's state otherwise.
struct ProgressView {
    bar: Option<indicatif::ProgressBar>,
    /// Each resource's state (readiness reason) and since when.
    seen: std::collections::BTreeMap<reconcile::Key, (String, Instant)>,
}

impl ProgressView {
    fn new(total: usize) -> Self {
        let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} resources done · {msg}",
                )
                .expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            bar,
            seen: Default::default(),
        }
    }

    fn update(&mut self, latest: &std::collections::BTreeMap<reconcile::Key, Report>) {
        for (key, r) in latest {
            let state = readiness(r).1;
            let changed = self.seen.get(key).is_none_or(|(s, _)| *s != state);
            if changed {
                if self.bar.is_none()
                    && let Some((before, _)) = self.seen.get(key)
                {
                    eprintln!("{key}: {before} -> {state}");
                }
                self.seen.insert(key.clone(), (state, Instant::now()));
            }
        }
        let Some(bar) = &self.bar else { return };
        let pending: Vec<&Report> = latest.values().filter(|r| in_progress(r)).collect();
        bar.set_position((latest.len() - pending.len()) as u64);
        let slowest = pending
            .iter()
            .filter_map(|r| self.seen.get(&r.key).map(|(s, at)| (r, s, at)))
            .min_by_key(|(_, _, at)| **at)
            .map(|(r, s, at)| format!("; slowest: {} ({s}, {} s)", r.key, at.elapsed().as_secs()))
            .unwrap_or_default();
        bar.set_message(if pending.is_empty() {
            "done".to_string()
        } else {
            format!("{}{slowest}", describe_pending(&pending))
        });
    }

    fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

fn describe_pending(pending: &[&Report]) -> String {
    let mut by_reason: std::collections::BTreeMap<String, usize> = Default::default();
    for r in pending {
        *by_reason.entry(readiness(r).1).or_default() += 1;
    }
    let parts: Vec<String> = by_reason
        .iter()
        .map(|(reason, n)| format!("{n} {reason}"))
        .collect();
    format!(
        "{} resource(s) still in progress ({})",
        pending.len(),
        parts.join(", ")
    )
}

/// One line per resource whose kind reports something for a person (root user, spend, logging).
pub fn summary(resources: &[Resource]) -> Vec<String> {
    resources.iter().filter_map(Resource::summary).collect()
}

fn readiness(r: &Report) -> (String, String, String) {
    match &r.result {
        Ok(p) => match &p.ready {
            Readiness::Ready { reason, message } => {
                ("True".into(), reason.to_string(), message.clone())
            }
            Readiness::NotReady { reason, message } => {
                ("False".into(), reason.to_string(), message.clone())
            }
        },
        Err(e) => ("False".into(), e.reason().to_string(), e.to_string()),
    }
}

fn report_json(r: &Report) -> serde_json::Value {
    let (ready, reason, message) = readiness(r);
    let (actions, writes, drift) = match &r.result {
        Ok(p) => (p.actions.clone(), p.writes, p.drift.clone()),
        Err(_) => (vec![], 0, vec![]),
    };
    json!({
        "kind": r.key.kind.as_str(), "name": r.key.name, "id": r.id, "ready": ready, "reason": reason,
        "message": message, "actions": actions, "writes": writes, "drift": drift,
    })
}

pub fn print_result(result: &RunResult, applied: bool, output: Output) {
    let counts = result.metrics.aws_call_counts();
    let reads = result.metrics.aws_calls_of_kind("read");
    let writes = result.metrics.aws_calls_of_kind("write");
    if output == Output::Json {
        let by_op: serde_json::Map<String, serde_json::Value> = counts
            .iter()
            .map(|((s, o), (_, n))| (format!("{s}:{o}"), json!(n)))
            .collect();
        let doc = json!({
            "mode": if applied { "apply" } else { "plan" },
            "resources": result.reports.iter().map(report_json).collect::<Vec<_>>(),
            "deletions": result.deletions.iter().map(report_json).collect::<Vec<_>>(),
            "errors": result.errors.iter().map(|e| json!({
                "file": e.file, "resource": e.resource, "field": e.field, "message": e.message,
            })).collect::<Vec<_>>(),
            "notes": result.notes,
            "summary": result.summary,
            "awsCalls": { "reads": reads, "writes": writes, "byOperation": by_op },
        });
        println!("{}", serde_json::to_string_pretty(&doc).expect("JSON"));
        return;
    }
    let mut rows = vec![if applied {
        vec![
            "KIND",
            "NAME",
            "READY",
            "ID",
            "CHANGES",
            "DRIFT",
            "REASON / MESSAGE",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>()
    } else {
        vec!["KIND", "NAME", "ID", "WOULD DO", "DRIFT"]
            .into_iter()
            .map(String::from)
            .collect()
    }];
    let mut sorted: Vec<&Report> = result.reports.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    for r in sorted.into_iter().chain(&result.deletions) {
        let (ready, reason, message) = readiness(r);
        let (actions, drift) = match &r.result {
            Ok(p) => (
                if p.actions.is_empty() {
                    "-".to_string()
                } else {
                    p.actions.join("; ")
                },
                if p.drift.is_empty() {
                    "-".to_string()
                } else {
                    p.drift
                        .iter()
                        .map(|d| format!("{}: {} -> {}", d.field, d.observed, d.desired))
                        .collect::<Vec<_>>()
                        .join("; ")
                },
            ),
            Err(e) => (format!("error: {e}"), "?".to_string()),
        };
        let id = r.id.clone().unwrap_or_else(|| "-".into());
        rows.push(if applied {
            vec![
                r.key.kind.to_string(),
                r.key.name.clone(),
                ready,
                id,
                actions,
                drift,
                format!("{reason}: {message}"),
            ]
        } else {
            vec![
                r.key.kind.to_string(),
                r.key.name.clone(),
                id,
                actions,
                drift,
            ]
        });
    }
    print_table(&rows);
    if !result.summary.is_empty() {
        println!();
        for line in &result.summary {
            println!("{line}");
        }
        println!();
    }
    for e in &result.errors {
        println!("error: {e}");
    }
    for n in &result.notes {
        println!("note: {n}");
    }
    let changed = result
        .reports
        .iter()
        .filter_map(|r| r.result.as_ref().ok())
        .filter(|p| !p.actions.is_empty())
        .count();
    let failed = result.reports.iter().filter(|r| r.result.is_err()).count() + result.errors.len();
    println!(
        "{} resources: {} {}, {} failed or invalid; AWS calls: {} reads, {} writes",
        result.reports.len(),
        changed,
        if applied {
            "changed"
        } else {
            "with changes to make"
        },
        failed,
        reads,
        writes
    );
}

fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count().min(60)))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if i + 1 == row.len() {
                    cell.clone()
                } else {
                    format!("{cell:<w$}", w = widths[i])
                }
            })
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_duration, worth_waiting};
    use crate::reconcile::{Error, Key, Kind, Progress, Readiness, Report};
    use std::collections::BTreeMap;
    use std::time::Duration;

    #[test]
    fn a_wait_on_what_cannot_finish_in_this_run_is_not_waited_for() {
        let waits_on = |kind: Kind, name: &str| -> Result<Progress, Error> {
            Err(Error::WaitingForDependency {
                kind: kind.as_str(),
                name: name.into(),
                why: String::new(),
            })
        };
        let refused = || -> Result<Progress, Error> {
            Err(Error::InvalidSpec {
                message: "no".into(),
            })
        };
        let report = |name: &str, result| Report {
            key: Key::new(Kind::AwsAccount, name),
            id: None,
            result,
        };
        let ou = |name: &str, result| Report {
            key: Key::new(Kind::OrganizationalUnit, name),
            id: None,
            result,
        };
        let creating = || -> Result<Progress, Error> {
            let mut p = Progress::ready("Creating", "");
            p.ready = Readiness::NotReady {
                reason: "Creating",
                message: "being created".into(),
            };
            Ok(p)
        };
        // (reason, the run's reports, the account asked about, worth waiting for)
        let cases = [
            (
                "its OU is in the run and ready",
                vec![
                    ou("a", Ok(Progress::ready("Available", ""))),
                    report("x", waits_on(Kind::OrganizationalUnit, "a")),
                ],
                true,
            ),
            (
                "its OU is not in the run (a typo)",
                vec![report("x", waits_on(Kind::OrganizationalUnit, "typo"))],
                false,
            ),
            (
                "its OU was refused for good",
                vec![
                    ou("a", refused()),
                    report("x", waits_on(Kind::OrganizationalUnit, "a")),
                ],
                false,
            ),
            (
                "what it waits for waits for an account being created",
                vec![
                    report("y", creating()),
                    ou("a", waits_on(Kind::AwsAccount, "y")),
                    report("x", waits_on(Kind::OrganizationalUnit, "a")),
                ],
                true,
            ),
            (
                "a cycle of waits",
                vec![
                    ou("a", waits_on(Kind::AwsAccount, "x")),
                    report("x", waits_on(Kind::OrganizationalUnit, "a")),
                ],
                false,
            ),
            ("being created itself", vec![report("x", creating())], true),
        ];
        for (reason, reports, want) in cases {
            let latest: BTreeMap<Key, Report> =
                reports.into_iter().map(|r| (r.key.clone(), r)).collect();
            let x = &latest[&Key::new(Kind::AwsAccount, "x")];
            assert_eq!(worth_waiting(x, &latest), want, "{reason}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("42").unwrap(), Duration::from_secs(42));
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("m").is_err());
    }
}
