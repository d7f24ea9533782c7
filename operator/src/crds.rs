//! The CustomResourceDefinitions of every registered kind, generated from the types in `api/`
//! (the registry knows the kinds; the types know nothing of it).

use crate::reconcile::Kind;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// Every CRD, in the registry's order (OUs before the accounts placed in them, …).
/// The self-service kinds: composed into the registry's kinds, not registered themselves.
pub const SELF_SERVICE: &[&str] = &["AccountClass", "AccountClaim", "AccessClaim"];

pub fn all_crds() -> Vec<CustomResourceDefinition> {
    use kube::CustomResourceExt;
    let mut crds: Vec<_> = Kind::ALL.iter().map(|k| k.crd()).collect();
    // Self-service: the class and the claims are composed into the kinds above, not reconciled
    // against AWS themselves (`controller::claims`).
    crds.extend([
        crate::api::AccountClass::crd(),
        crate::api::AccountClaim::crd(),
        crate::api::AccessClaim::crd(),
    ]);
    crds
}

/// The YAML file name and content of each CRD, as committed under `crds/`.
pub fn crd_files() -> Vec<(String, String)> {
    all_crds()
        .into_iter()
        .map(|crd| {
            let name = format!("{}.yaml", crd.metadata.name.clone().unwrap_or_default());
            let yaml = crate::api::to_yaml(&crd).expect("a CRD always serializes");
            (name, yaml)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_crds_match_the_code() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
        let files = crd_files();
        assert_eq!(
            files.len(),
            Kind::ALL.len() + SELF_SERVICE.len(),
            "one CRD per kind"
        );
        for (name, yaml) in files {
            let committed = std::fs::read_to_string(dir.join(&name)).unwrap_or_default();
            assert!(
                committed == yaml,
                "crds/{name} differs from the code: run `make crds` and commit the result"
            );
        }
        let on_disk = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        assert_eq!(
            on_disk,
            Kind::ALL.len() + SELF_SERVICE.len(),
            "crds/ holds exactly the generated files"
        );
        // The chart ships the same CRDs.
        let chart = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../charts/landing-zone-operator/crds");
        for (name, yaml) in crd_files() {
            let copy = std::fs::read_to_string(chart.join(&name)).unwrap_or_default();
            assert!(
                copy == yaml,
                "charts/landing-zone-operator/crds/{name} differs: run `make crds`"
            );
        }
    }

    #[test]
    fn every_crd_is_in_the_landingzone_category_with_ready_and_drift_columns() {
        for crd in all_crds() {
            let name = crd.metadata.name.clone().unwrap();
            let kind = crd.spec.names.kind.as_str();
            // Teams claim in their own namespaces; everything else is the Organization's.
            let scope = if ["AccountClaim", "AccessClaim"].contains(&kind) {
                "Namespaced"
            } else {
                "Cluster"
            };
            assert_eq!(crd.spec.scope, scope, "{name}");
            assert_eq!(
                crd.spec.names.categories.as_deref(),
                Some(&["landingzone".to_string()][..]),
                "{name}"
            );
            assert_eq!(
                crd.spec.names.short_names.as_ref().map(Vec::len),
                Some(1),
                "{name}"
            );
            let v = &crd.spec.versions[0];
            let cols: Vec<&str> = v
                .additional_printer_columns
                .iter()
                .flatten()
                .map(|c| c.name.as_str())
                .collect();
            // A class is a template (nothing in AWS to be ready or to drift); a claim's drift is
            // on the objects it composes.
            if !SELF_SERVICE.contains(&kind) {
                assert!(
                    cols.contains(&"READY") && cols.contains(&"DRIFT"),
                    "{name}: {cols:?}"
                );
            } else if kind != "AccountClass" {
                assert!(cols.contains(&"READY"), "{name}: {cols:?}");
            }
            assert!(
                kind == "AccountClass"
                    || v.subresources
                        .as_ref()
                        .and_then(|s| s.status.as_ref())
                        .is_some(),
                "{name}: status subresource"
            );
            let schema = serde_json::to_string(&v.schema).unwrap();
            assert!(
                schema.contains("x-kubernetes-validations"),
                "{name}: CEL rules"
            );
        }
    }
}
