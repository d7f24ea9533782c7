//! The Argo CD health check (Lua) run by a real Lua interpreter against sample objects, and the
//! argocd-cm snippet carrying it for every kind.

use landing_zone_tests::k8s::skip;
use landing_zone_tests::workspace_root;
use serde_json::Value;
use std::process::Command;

/// A JSON value as a Lua table literal.
fn lua(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(a) => format!("{{{}}}", a.iter().map(lua).collect::<Vec<_>>().join(", ")),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("[{k:?}] = {}", lua(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn lua_binary() -> Option<String> {
    ["lua5.4", "lua5.3", "lua"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("-v")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(String::from)
}

#[test]
fn health_check_maps_conditions_to_argo_cd_health() {
    let Some(bin) = lua_binary() else {
        skip(
            "health_check_maps_conditions_to_argo_cd_health",
            "no Lua interpreter (apt-get install lua5.4; .ci/run installs it)",
        );
        return;
    };
    let dir = workspace_root().join("manifests/argocd/health");
    let script = dir.join("landingzone.lua");
    // (sample, expected health, fragment of the message)
    let table = [
        ("healthy", "Healthy", "active"),
        ("drifted", "Degraded", "2 field(s)"),
        ("creating", "Progressing", "car-1"),
        ("error", "Degraded", "OrganizationalUnitNotEmpty"),
        ("stale", "Progressing", "latest spec"),
        ("new", "Progressing", "Waiting"),
        ("waiting", "Progressing", "WaitingForDependency"),
    ];
    for (sample, status, fragment) in table {
        let yaml = std::fs::read_to_string(dir.join(format!("testdata/{sample}.yaml"))).unwrap();
        let obj: Value = serde_saphyr::from_str(&yaml).unwrap();
        let driver = format!(
            "obj = {}\nlocal hs = assert(loadfile({:?}))()\nio.write(hs.status, '|', hs.message)",
            lua(&obj),
            script.to_string_lossy()
        );
        let out = Command::new(&bin).args(["-e", &driver]).output().unwrap();
        assert!(
            out.status.success(),
            "{sample}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (got, message) = text.split_once('|').unwrap();
        assert_eq!(got, status, "{sample}: {message}");
        assert!(message.contains(fragment), "{sample}: {message}");
    }
}

#[test]
fn argocd_cm_carries_the_health_check_for_every_kind() {
    let root = workspace_root().join("manifests/argocd");
    let lua = std::fs::read_to_string(root.join("health/landingzone.lua")).unwrap();
    let cm: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(root.join("argocd-cm.yaml")).unwrap())
            .unwrap();
    let claims = landing_zone_operator::crds::SELF_SERVICE
        .iter()
        .filter(|k| **k != "AccountClass");
    let kinds = landing_zone_operator::reconcile::Kind::ALL
        .iter()
        .map(|k| k.as_str())
        .chain(claims.copied());
    for kind in kinds {
        let key = format!("resource.customizations.health.landingzone.dev_{kind}");
        assert_eq!(
            cm["data"][&key].as_str(),
            Some(lua.as_str()),
            "{key} must be health/landingzone.lua"
        );
    }
    let app: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(root.join("application.yaml")).unwrap())
            .unwrap();
    assert_eq!(app["kind"], "Application");
}
