//! A real kube-apiserver for end-to-end tests: `KUBECONFIG` when set, else the script named by
//! `LZ_K8S_UP` (started once per test process, stopped by its watchdog when the process exits),
//! else the test is skipped with a message saying why.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

#[derive(Clone, Debug)]
pub struct ControlPlane {
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
}

/// Prints past the test harness's output capture, so a skip is always visible.
pub fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// Says that `test` is skipped and why, and adds it to the run's skip list (`LZ_SKIP_LOG`, which
/// `make test` sets and prints at the end of the run, so no skip goes unseen in a long log).
pub fn skip(test: &str, why: &str) {
    let line = format!("SKIPPED {test}: {why}");
    say(&line);
    if let Some(log) = std::env::var_os("LZ_SKIP_LOG") {
        // One short append per line: lines from concurrent tests do not interleave.
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

fn start() -> Result<ControlPlane, String> {
    let kubeconfig = match std::env::var("KUBECONFIG") {
        Ok(k) if !k.is_empty() => PathBuf::from(k),
        _ => {
            let up = std::env::var("LZ_K8S_UP")
                .map_err(|_| "neither KUBECONFIG nor LZ_K8S_UP is set".to_string())?;
            let out = Command::new(&up)
                .env("LZ_K8S_WATCH_PID", std::process::id().to_string())
                .stderr(Stdio::inherit())
                .output()
                .map_err(|e| format!("cannot run {up}: {e}"))?;
            if !out.status.success() {
                return Err(format!("{up} failed ({})", out.status));
            }
            let stdout = String::from_utf8_lossy(&out.stdout);
            let line = stdout
                .lines()
                .find_map(|l| l.strip_prefix("export KUBECONFIG="))
                .ok_or_else(|| format!("{up} printed no KUBECONFIG: {stdout}"))?;
            PathBuf::from(line.trim_matches(|c| c == '"' || c == '\''))
        }
    };
    Ok(ControlPlane {
        kubeconfig,
        kubectl: find_kubectl()?,
    })
}

fn find_kubectl() -> Result<PathBuf, String> {
    if let Ok(k) = std::env::var("LZ_KUBECTL") {
        return Ok(PathBuf::from(k));
    }
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("kubectl").is_file() {
                return Ok(dir.join("kubectl"));
            }
        }
    }
    // Next to the `up` script: its `tools` installs kubectl and helm.
    if let Ok(up) = std::env::var("LZ_K8S_UP") {
        let tools = PathBuf::from(&up).with_file_name("tools");
        let out = Command::new(&tools)
            .arg("--dir")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", tools.display()))?;
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !dir.is_empty() {
            return Ok(PathBuf::from(dir).join("kubectl"));
        }
    }
    Err("kubectl not found: put it on PATH, set LZ_KUBECTL, or set LZ_K8S_UP next to its `tools` script".into())
}

impl ControlPlane {
    /// The shared control plane, or `None` after printing why `test` is skipped.
    pub fn get(test: &str) -> Option<ControlPlane> {
        static CP: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
        match CP.get_or_init(start) {
            Ok(cp) => Some(cp.clone()),
            Err(why) => {
                skip(
                    test,
                    &format!(
                        "no Kubernetes control plane: {why} (CI sets LZ_K8S_UP=../shared/k8s/up)"
                    ),
                );
                None
            }
        }
    }
}

/// Runs kubectl against the control plane; Ok(stdout) or Err(stderr + stdout).
pub fn kubectl(cp: &ControlPlane, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let mut child = Command::new(&cp.kubectl)
        .args(args)
        .env("KUBECONFIG", &cp.kubeconfig)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run kubectl: {e}"))?;
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(input.as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// A control plane of one test's own (`LZ_K8S_UP` run again, stopped on drop), so operators of
/// parallel tests never see each other's resources. With only `KUBECONFIG`, tests share that
/// cluster one at a time.
pub struct Dedicated {
    pub cp: ControlPlane,
    dir: Option<PathBuf>,
    _serial: Option<tokio::sync::MutexGuard<'static, ()>>,
}

impl Drop for Dedicated {
    fn drop(&mut self) {
        if let (Some(dir), Ok(up)) = (&self.dir, std::env::var("LZ_K8S_UP")) {
            let down = PathBuf::from(up).with_file_name("down");
            let _ = Command::new(down)
                .arg(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl ControlPlane {
    pub async fn dedicated(test: &str) -> Option<Dedicated> {
        static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        if std::env::var("KUBECONFIG").is_ok_and(|k| !k.is_empty()) {
            let guard = SERIAL.lock().await;
            return ControlPlane::get(test).map(|cp| Dedicated {
                cp,
                dir: None,
                _serial: Some(guard),
            });
        }
        let Ok(up) = std::env::var("LZ_K8S_UP") else {
            skip(
                test,
                "no Kubernetes control plane: neither KUBECONFIG nor LZ_K8S_UP is set (CI sets LZ_K8S_UP=../shared/k8s/up)",
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("lz-e2e-")
            .tempdir()
            .expect("tempdir")
            .keep();
        let out = tokio::process::Command::new(&up)
            .arg(&dir)
            .env("LZ_K8S_WATCH_PID", std::process::id().to_string())
            .stderr(Stdio::null())
            .output()
            .await
            .expect("run LZ_K8S_UP");
        assert!(out.status.success(), "{up} {} failed", dir.display());
        let cp = ControlPlane {
            kubeconfig: dir.join("kubeconfig"),
            kubectl: find_kubectl().expect("kubectl"),
        };
        Some(Dedicated {
            cp,
            dir: Some(dir),
            _serial: None,
        })
    }
}

/// Installs the generated CRDs and waits until they are established.
pub fn install_crds(cp: &ControlPlane) {
    let crds = crate::workspace_root().join("crds");
    kubectl(
        cp,
        &["apply", "--server-side", "-f", crds.to_str().unwrap()],
        None,
    )
    .expect("CRDs");
    wait_crds_established(cp);
}

/// Waits until every CRD is established (installed by the chart or by `install_crds`).
pub fn wait_crds_established(cp: &ControlPlane) {
    kubectl(
        cp,
        &[
            "wait",
            "--for=condition=Established",
            "crd",
            "--all",
            "--timeout=180s",
        ],
        None,
    )
    .expect("CRDs established");
}

/// Runs `helm` (LZ_HELM, PATH, or next to kubectl) against the control plane, if any;
/// Ok(stdout + stderr) or Err(the same).
pub fn helm(cp: Option<&ControlPlane>, args: &[&str]) -> Result<String, String> {
    let bin = std::env::var("LZ_HELM")
        .map(PathBuf::from)
        .ok()
        .or_else(|| {
            let path = std::env::var("PATH").ok()?;
            std::env::split_paths(&path)
                .map(|d| d.join("helm"))
                .find(|p| p.is_file())
        });
    let bin = bin
        .or_else(|| cp.map(|c| c.kubectl.with_file_name("helm")))
        .ok_or("helm not found")?;
    let mut cmd = Command::new(bin);
    cmd.args(args);
    if let Some(cp) = cp {
        cmd.env("KUBECONFIG", &cp.kubeconfig);
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}
