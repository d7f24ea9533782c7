//! A real Prometheus (Debian's `prometheus` package, which `scripts/install-prometheus` installs)
//! scraping the operator, and `promtool`, for the dashboard's queries and the alert rules.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `prometheus` or `promtool` from `LZ_PROMETHEUS_DIR` or the PATH.
pub fn binary(name: &str) -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("LZ_PROMETHEUS_DIR") {
        let p = PathBuf::from(dir).join(name);
        if p.is_file() {
            return Some(p);
        }
    }
    let path = std::env::var("PATH").ok()?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

pub struct Prometheus {
    child: Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (host:port of /metrics) every second; `None` when it
    /// is not installed.
    pub async fn start(target: &str) -> Option<Prometheus> {
        let bin = binary("prometheus")?;
        let dir = tempfile::tempdir().ok()?;
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: landing-zone-operator\n    static_configs: [{{targets: ['{target}']}}]\n"
            ),
        )
        .ok()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).ok()?;
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .ok()?;
        let prom = Prometheus {
            child,
            addr,
            _dir: dir,
        };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) * crate::operator::PATIENCE {
            if prom.get("/-/ready").is_some_and(|b| b.contains("Ready")) {
                return Some(prom);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "Prometheus did not start: {}",
            std::fs::read_to_string(prom._dir.path().join("prometheus.log")).unwrap_or_default()
        );
    }

    fn get(&self, path: &str) -> Option<String> {
        let mut s = TcpStream::connect(&self.addr).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(
            out.split_once("\r\n\r\n")
                .map(|(_, b)| b.to_string())
                .unwrap_or_default(),
        )
    }

    /// An instant query: its result vector, or Prometheus's error (a query that does not parse).
    pub fn query(&self, expr: &str) -> Result<Vec<serde_json::Value>, String> {
        let encoded: String = expr
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let body = self
            .get(&format!("/api/v1/query?query={encoded}"))
            .ok_or("Prometheus did not answer")?;
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
        if v["status"] != "success" {
            return Err(format!("{}: {}", v["errorType"], v["error"]));
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }
}

/// Every query of the shipped Grafana dashboard: (panel title, expression).
pub fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(
        crate::workspace_root()
            .join("charts/landing-zone-operator/dashboards/landing-zone-operator.json"),
    )
    .expect("the dashboard");
    let d: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
    d["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or_default().to_string();
            p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(move |t| Some((title.clone(), t["expr"].as_str()?.to_string())))
                .collect::<Vec<_>>()
        })
        .collect()
}
