//! The operator binary as a process (`landing-zone-operator run`), as it runs in a cluster.

use crate::Emulator;
use crate::k8s::ControlPlane;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `target/debug/landing-zone-operator`, next to this test binary's `deps/` directory.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().expect("binary dir");
    // Test binaries live in target/debug/deps/, other binaries in target/debug/.
    let dir = if dir.ends_with("deps") {
        dir.parent().expect("target dir")
    } else {
        dir
    };
    let bin = dir.join("landing-zone-operator");
    assert!(
        bin.is_file(),
        "{} is missing: `make test` builds it first (or run `cargo build -p landing-zone-operator`)",
        bin.display()
    );
    bin
}

pub struct Operator {
    child: Option<Child>,
    pub metrics_addr: String,
    pub log: PathBuf,
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Operator {
    pub fn start(cp: &ControlPlane, emu: &Emulator, identity: &str, extra: &[&str]) -> Operator {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let metrics_addr = format!("127.0.0.1:{port}");
        let log = std::env::temp_dir().join(format!("lz-operator-{identity}-{port}.log"));
        let child = Command::new(binary())
            .args([
                "run",
                "--metrics-addr",
                &metrics_addr,
                "--identity",
                identity,
                "--lease-namespace",
                "default",
            ])
            // The operator's own lease (15 s): a loaded control plane can hold a renewal for
            // seconds, and a leader that cannot renew stops. Tests of a takeover pass a shorter one.
            // Out-of-band drift is seen within a second, unless the caller says otherwise.
            .args(if extra.contains(&"--snapshot-ttl") {
                &[][..]
            } else {
                &["--snapshot-ttl", "1s"][..]
            })
            .args(extra)
            .env("KUBECONFIG", &cp.kubeconfig)
            // Through the realism layer: AWS's latency and what the emulator lacks.
            .env("AWS_ENDPOINT_URL", emu.wire_endpoint())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("RUST_LOG", "info,landing_zone_operator=debug")
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(&log)
                    .map(Stdio::from)
                    .unwrap_or(Stdio::null()),
            )
            .spawn()
            .expect("start the operator");
        Operator {
            child: Some(child),
            metrics_addr,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Whether the process has exited (without waiting for it).
    pub fn has_exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    /// SIGTERM, then the exit code (graceful shutdown).
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        // Graceful shutdown on a loaded machine: up to a minute before SIGKILL.
        for _ in 0..1200 {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait().ok().and_then(|s| s.code())
    }

    /// The HTTP status of `GET path` on the metrics address (0 when nothing answers).
    pub fn status_of(&self, path: &str) -> u16 {
        let Ok(mut s) = TcpStream::connect(&self.metrics_addr) else {
            return 0;
        };
        let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    /// The Prometheus text from /metrics.
    pub fn metrics(&self) -> String {
        let Ok(mut s) = TcpStream::connect(&self.metrics_addr) else {
            return String::new();
        };
        let _ = write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    /// Sum of a metric's samples whose labels contain every `label="value"` given.
    pub fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        self.metrics()
            .lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter(|l| l[name.len()..].starts_with(['{', ' ']))
            .filter(|l| labels.iter().all(|lab| l.contains(lab)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Every sample of a metric, `labels value` per line, for a before/after comparison.
    pub fn samples(&self, name: &str) -> std::collections::BTreeMap<String, f64> {
        self.metrics()
            .lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| {
                let (labels, value) = l[name.len()..].rsplit_once(' ')?;
                Some((labels.to_string(), value.parse().ok()?))
            })
            .collect()
    }

    /// The samples of a metric that grew since `before`, with how much: what happened in a window.
    pub fn grown(&self, name: &str, before: &std::collections::BTreeMap<String, f64>) -> String {
        self.samples(name)
            .into_iter()
            .filter_map(|(labels, v)| {
                let was = before.get(&labels).copied().unwrap_or(0.0);
                (v > was).then(|| format!("{name}{labels} +{}", v - was))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The operator's log lines that contain `needle`.
    pub fn log_lines(&self, needle: &str) -> String {
        self.log_lines_since(0, needle)
    }

    /// How many lines the operator has logged so far: a mark for [`Self::log_lines_since`].
    pub fn log_mark(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .count()
    }

    /// The operator's log lines after `mark` that contain `needle`: what happened in a window.
    pub fn log_lines_since(&self, mark: usize, needle: &str) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .skip(mark)
            .filter(|l| l.contains(needle))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// How much longer than its nominal deadline a wait goes on before the test gives up. Deadlines
/// are where a test stops waiting, never what it asserts (speed is the bench's to measure): a
/// loaded 2-core machine running the whole suite is slower than any single test alone, and a
/// slow pass must not fail a test that would have succeeded.
pub const PATIENCE: u32 = 3;

/// Polls the async `check` every 250 ms until it returns Some, or panics with `what` after
/// `timeout` × [`PATIENCE`].
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let timeout = timeout * PATIENCE;
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Polls `check` every 250 ms until it returns Some, or panics with `what` after
/// `timeout` × [`PATIENCE`].
pub async fn wait_for<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let timeout = timeout * PATIENCE;
    let start = std::time::Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
