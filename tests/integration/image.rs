//! The shipped artefacts: the OCI image `make image` builds (run from its own root file system),
//! the chart's reference to it, and the GitHub workflows that build and release them.

use landing_zone_operator::source::dir::yaml_documents;
use landing_zone_tests::k8s::{helm, say, skip};
use landing_zone_tests::workspace_root;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// The chart's image for default values, from `helm template` (or from the chart's files when
/// helm is absent), and the chart's appVersion.
fn chart_image() -> (String, String) {
    let chart = workspace_root().join("charts/landing-zone-operator");
    let chart_yaml = std::fs::read_to_string(chart.join("Chart.yaml")).unwrap();
    let app_version = chart_yaml
        .lines()
        .find_map(|l| l.strip_prefix("appVersion:"))
        .map(|v| v.trim().trim_matches('"').to_string())
        .expect("appVersion");
    match helm(None, &["template", "lz", chart.to_str().unwrap()]) {
        Ok(out) => {
            let image = out
                .lines()
                .find_map(|l| l.trim().strip_prefix("image: "))
                .map(|i| i.trim_matches('"').to_string())
                .expect("an image in the Deployment");
            (image, app_version)
        }
        Err(e) => {
            say(&format!(
                "chart image read from values.yaml: helm is not available ({})",
                e.trim()
            ));
            let values = std::fs::read_to_string(chart.join("values.yaml")).unwrap();
            let repo = values
                .lines()
                .find_map(|l| l.strip_prefix("  repository: "))
                .expect("image.repository")
                .trim()
                .to_string();
            (format!("{repo}:{app_version}"), app_version)
        }
    }
}

#[test]
fn the_chart_ships_the_crate_version() {
    let (image, app_version) = chart_image();
    assert_eq!(app_version, VERSION, "chart appVersion = crate version");
    assert!(image.ends_with(&format!(":{VERSION}")), "{image}");
}

#[test]
fn the_image_runs_from_its_own_root_file_system() {
    let dir = workspace_root().join("target/image");
    let archive = dir.join("landing-zone-operator.oci.tar");
    if !archive.is_file() {
        let why = std::fs::read_to_string(dir.join("SKIPPED"))
            .unwrap_or_else(|_| "no image built: run `make image` (make test does)".into());
        skip("the_image_runs_from_its_own_root_file_system", why.trim());
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&layout));
    assert_eq!(
        read_json(&layout.join("oci-layout"))["imageLayoutVersion"],
        "1.0.0"
    );
    let index = read_json(&layout.join("index.json"));
    let desc = &index["manifests"][0];
    let (image, _) = chart_image();
    assert_eq!(
        desc["annotations"]["io.containerd.image.name"], image,
        "the chart's default image is the one `make image` builds"
    );
    assert_eq!(
        desc["annotations"]["org.opencontainers.image.ref.name"],
        VERSION
    );
    let manifest = read_json(&blob(&layout, desc["digest"].as_str().unwrap()));
    let config = read_json(&blob(
        &layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    assert_eq!(config["config"]["User"], "65532:65532");
    assert_eq!(config["config"]["Entrypoint"][0], "/landing-zone-operator");
    assert_eq!(config["os"], "linux");

    let rootfs = work.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    for layer in manifest["layers"].as_array().unwrap() {
        run(Command::new("tar")
            .arg("-xzf")
            .arg(blob(&layout, layer["digest"].as_str().unwrap()))
            .arg("-C")
            .arg(&rootfs));
    }
    for absent in ["bin/sh", "usr/bin/sh", "bin/bash", "usr/bin"] {
        assert!(
            !rootfs.join(absent).exists(),
            "{absent} must not be in the image"
        );
    }
    assert!(
        rootfs
            .join("etc/ssl/certs/ca-certificates.crt")
            .metadata()
            .unwrap()
            .len()
            > 100_000
    );
    assert!(
        std::fs::read_to_string(rootfs.join("etc/passwd"))
            .unwrap()
            .contains(":65532:65532:")
    );
    // Run it with nothing but the image's own files: chrooted as user 65532 where this test may
    // (root), else through the image's own dynamic loader and libraries.
    let is_root = run(Command::new("id").arg("-u")).trim() == "0";
    let exec = |args: &[&str]| -> String {
        if is_root {
            run(Command::new("chroot")
                .arg("--userspec=65532:65532")
                .arg(&rootfs)
                .arg("/landing-zone-operator")
                .args(args))
        } else {
            let lib = rootfs.join("lib/x86_64-linux-gnu");
            run(Command::new(lib.join("ld-linux-x86-64.so.2"))
                .arg("--library-path")
                .arg(&lib)
                .arg(rootfs.join("landing-zone-operator"))
                .args(args))
        }
    };
    if !is_root {
        say(
            "image test: not root, so the binary runs through the image's loader instead of chroot",
        );
    }
    assert_eq!(
        exec(&["--version"]).trim(),
        format!("landing-zone-operator {VERSION}")
    );
    let crds = exec(&["crds"]);
    assert_eq!(
        crds.matches("kind: CustomResourceDefinition").count(),
        landing_zone_operator::crds::all_crds().len()
    );
    // `make test` packs the debug binary it already built (`scripts/image --test-binary`): what
    // this test proves holds for any build; `make image` checks the shipped binary's size.
    let profile = std::fs::read_to_string(dir.join("PROFILE")).unwrap_or_default();
    say(&format!(
        "image test: ran the {} binary from the image's root file system",
        profile.trim()
    ));
}

fn workflow(name: &str) -> Value {
    let path = workspace_root().join(".github/workflows").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut docs = yaml_documents(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(docs.len(), 1, "{name}: one document");
    let doc = docs.remove(0);
    // What GitHub Actions requires of a workflow file.
    for key in ["name", "on", "jobs"] {
        assert!(doc.get(key).is_some(), "{name}: no {key:?}");
    }
    let jobs = doc["jobs"].as_object().unwrap();
    for (id, job) in jobs {
        assert!(
            job.get("runs-on").is_some(),
            "{name}: job {id} has no runs-on"
        );
        for need in job["needs"].as_str().into_iter() {
            assert!(
                jobs.contains_key(need),
                "{name}: job {id} needs unknown job {need}"
            );
        }
        let steps = job["steps"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: job {id} has no steps"));
        assert!(!steps.is_empty());
        for step in steps {
            assert!(
                step.get("uses").is_some() != step.get("run").is_some(),
                "{name}: job {id}: a step has exactly one of uses and run: {step}"
            );
            if let Some(uses) = step["uses"].as_str() {
                assert!(
                    uses.split_once('@').is_some_and(|(_, r)| !r.is_empty()),
                    "{name}: {uses} names a ref"
                );
            }
        }
    }
    // Expressions are closed, and nothing needs a secret stored in the repository.
    for line in text.lines() {
        for (at, _) in line.match_indices("${{") {
            assert!(
                line[at..].contains("}}"),
                "{name}: unclosed expression: {line}"
            );
        }
    }
    for (at, _) in text.match_indices("secrets.") {
        let name_of: String = text[at + 8..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(
            name_of.is_empty() || name_of == "GITHUB_TOKEN",
            "{name}: only the workflow's own GITHUB_TOKEN may be used, not secrets.{name_of}"
        );
    }
    doc
}

fn run_lines(doc: &Value) -> String {
    let mut out = String::new();
    for job in doc["jobs"].as_object().unwrap().values() {
        for step in job["steps"].as_array().unwrap() {
            out.push_str(step["run"].as_str().unwrap_or_default());
            out.push_str(step["uses"].as_str().unwrap_or_default());
            out.push('\n');
        }
    }
    out
}

#[test]
fn ci_workflow_lints_and_runs_make_test_on_kind() {
    let ci = workflow("ci.yaml");
    assert!(ci["on"].get("pull_request").is_some());
    let steps = run_lines(&ci);
    for want in [
        "cargo fmt --all -- --check",
        "cargo clippy --locked --all-targets -- -D warnings",
        "make test",
        "helm/kind-action@",
    ] {
        assert!(steps.contains(want), "ci.yaml lacks {want:?}");
    }
    // The release binary's size guard and the image, on every push: `make test` only packs the
    // debug build.
    let release =
        run_lines(&serde_json::json!({"jobs": {"release": ci["jobs"]["release"].clone()}}));
    assert!(
        release.contains("make image"),
        "ci.yaml's release job lacks make image"
    );
}

#[test]
fn release_workflow_builds_signs_and_pushes_image_and_chart() {
    let release = workflow("release.yaml");
    assert!(release["on"]["push"]["tags"].is_array(), "runs on tags");
    let steps = run_lines(&release);
    for want in [
        "docker/build-push-action@",
        "cosign sign",
        "helm package",
        "helm push",
        "imagetools create",
        "oci://",
    ] {
        assert!(steps.contains(want), "release.yaml lacks {want:?}");
    }
    let image = &release["jobs"]["image"];
    let platforms: Vec<&str> = image["strategy"]["matrix"]["include"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["platform"].as_str())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    let build = image["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("docker/build-push-action"))
        })
        .unwrap();
    assert_eq!(build["with"]["sbom"], true, "an SBOM with the image");
    assert_eq!(
        release["jobs"]["publish"]["permissions"]["id-token"], "write",
        "keyless signing needs the OIDC token"
    );
}
