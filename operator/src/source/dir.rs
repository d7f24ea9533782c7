//! Loads landing-zone resources from a directory of YAML, validating each one against the same
//! CRD schema (CEL rules included) that the API server enforces at admission.

use crate::api::{self, API_VERSION};
use crate::reconcile::{Key, Kind, Resource};
use kube::core::cel::Validator;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One problem in the input, located precisely enough for a human to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    pub file: PathBuf,
    /// `Kind/name` when known.
    pub resource: Option<String>,
    /// Field path, e.g. `spec.email`.
    pub field: Option<String>,
    pub message: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(r) = &self.resource {
            write!(f, ": {r}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

#[derive(Debug, Default)]
pub struct Loaded {
    pub resources: Vec<(Resource, PathBuf)>,
    pub errors: Vec<LoadError>,
    /// Documents that are not landing-zone resources (left alone, reported for information).
    pub skipped: Vec<String>,
}

/// Reads every `*.yaml` / `*.yml` file under `dir` (recursively, in name order).
pub fn load_dir(dir: &Path) -> Loaded {
    let mut out = Loaded::default();
    let mut files = Vec::new();
    if let Err(e) = collect_files(dir, &mut files) {
        out.errors.push(LoadError {
            file: dir.to_path_buf(),
            resource: None,
            field: None,
            message: format!("cannot read the directory: {e}"),
        });
        return out;
    }
    files.sort();
    let schemas = crd_schemas();
    let validator = Validator::new();
    let mut seen: BTreeMap<Key, PathBuf> = BTreeMap::new();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                out.errors.push(LoadError {
                    file,
                    resource: None,
                    field: None,
                    message: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        let docs: Vec<Value> = match yaml_documents(&text) {
            Ok(d) => d,
            Err(e) => {
                out.errors.push(LoadError {
                    file: file.clone(),
                    resource: None,
                    field: None,
                    message: format!("not valid YAML: {e}"),
                });
                continue;
            }
        };
        for value in docs {
            if value.is_null() {
                continue;
            }
            match parse_document(&value, &schemas, &validator) {
                Ok(Some(resource)) => {
                    let key = resource.key();
                    if let Some(first) = seen.get(&key) {
                        out.errors.push(LoadError {
                            file: file.clone(),
                            resource: Some(key.to_string()),
                            field: Some("metadata.name".into()),
                            message: format!(
                                "duplicate: {key} is already defined in {}",
                                first.display()
                            ),
                        });
                        continue;
                    }
                    seen.insert(key, file.clone());
                    out.resources.push((resource, file.clone()));
                }
                Ok(None) => out.skipped.push(format!(
                    "{}: {} {}",
                    file.display(),
                    value["kind"].as_str().unwrap_or("?"),
                    value["metadata"]["name"].as_str().unwrap_or("?")
                )),
                Err(mut e) => {
                    e.file = file.clone();
                    out.errors.push(e);
                }
            }
        }
    }
    out
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, files)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            files.push(path);
        }
    }
    Ok(())
}

/// The openAPIV3Schema of each kind, from the generated CRDs (one source of truth for validation).
fn crd_schemas() -> BTreeMap<String, Value> {
    crate::crds::all_crds()
        .into_iter()
        .filter_map(|crd| {
            let schema = crd
                .spec
                .versions
                .first()?
                .schema
                .as_ref()?
                .open_api_v3_schema
                .as_ref()?;
            Some((
                crd.spec.names.kind.clone(),
                serde_json::to_value(schema).ok()?,
            ))
        })
        .collect()
}

/// Parses one document: `Ok(None)` for something that is not a landing-zone resource.
pub fn parse_document(
    value: &Value,
    schemas: &BTreeMap<String, Value>,
    validator: &Validator,
) -> Result<Option<Resource>, LoadError> {
    let api_version = value["apiVersion"].as_str().unwrap_or_default();
    let kind_name = value["kind"].as_str().unwrap_or_default();
    let name = value["metadata"]["name"].as_str();
    let err = |field: Option<&str>, message: String| LoadError {
        file: PathBuf::new(),
        resource: Some(format!("{kind_name}/{}", name.unwrap_or("<unnamed>"))),
        field: field.map(str::to_string),
        message,
    };
    if !api_version.starts_with(api::GROUP) {
        return Ok(None);
    }
    if api_version != API_VERSION {
        return Err(err(
            Some("apiVersion"),
            format!("unsupported version {api_version:?}; use {API_VERSION}"),
        ));
    }
    if crate::crds::SELF_SERVICE.contains(&kind_name) {
        // A platform repository holds its classes next to the landing zone: not an error, but
        // nothing the CLI acts on.
        tracing::warn!(
            kind = kind_name,
            name = value["metadata"]["name"].as_str().unwrap_or_default(),
            "skipped: {kind_name} is self-service, composed by the operator in a cluster (docs/self-service.md); the CLI plans the kinds a claim composes (AwsAccount, Budget, AccountAssignment) when they are in the directory"
        );
        return Ok(None);
    }
    let Some(kind) = Kind::parse(kind_name) else {
        return Err(err(
            Some("kind"),
            format!(
                "unknown kind {kind_name:?}; expected one of {}",
                Kind::ALL
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    };
    if name.is_none_or(str::is_empty) {
        return Err(err(
            Some("metadata.name"),
            "every resource needs a metadata.name".into(),
        ));
    }
    let mut value = value.clone();
    // Status comes from AWS (and the state file), never from the manifest.
    if let Some(obj) = value.as_object_mut() {
        obj.remove("status");
    }
    let resource = typed(kind, &value).map_err(|(field, message)| err(Some(&field), message))?;
    // CEL rules see the object with defaults applied, as the API server does.
    let defaulted = match resource.to_json() {
        Value::Null => value,
        v => v,
    };
    if let Some(schema) = schemas.get(kind.as_str())
        && let Err(errors) = validator.validate(schema, &defaulted, None)
    {
        let errors = errors.into_vec();
        let fields: BTreeSet<String> = errors.iter().map(|e| e.field_path.clone()).collect();
        let message = errors
            .iter()
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
            .join("; ");
        return Err(err(
            Some(&fields.into_iter().collect::<Vec<_>>().join(", ")),
            message,
        ));
    }
    Ok(Some(resource))
}

fn typed(kind: Kind, value: &Value) -> Result<Resource, (String, String)> {
    Resource::from_json(kind, value)
}

/// Re-reads an object kept in the state file (already validated when it was applied).
pub fn parse_stored(kind: Kind, value: &Value) -> Option<Resource> {
    typed(kind, value).ok()
}

/// The documents of a YAML file, read with YAML 1.2's core schema as `kubectl` users expect of
/// Kubernetes manifests: `yes`, `y`, `on` and `0755` stay text, only `true`/`false` are booleans.
/// The parser's guards against document and node floods are raised to fit a landing zone of AWS's
/// largest Organizations in one file (its default stops at 1,024 documents); the alias guards stay.
pub fn yaml_documents(text: &str) -> Result<Vec<Value>, serde_saphyr::Error> {
    serde_saphyr::from_multiple_with_options(
        text,
        serde_saphyr::options! {
            strict_booleans: true,
            leading_zero_numbers_as_strings: true,
            underscored_numbers_as_strings: true,
            budget: serde_saphyr::budget! {
                max_documents: 100_000,
                max_nodes: 10_000_000,
                max_events: 40_000_000,
            },
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_of_many_thousand_resources_loads() {
        let yaml: String = (0..5000)
            .map(|i| format!("---\napiVersion: landingzone.dev/v1alpha1\nkind: AwsAccount\nmetadata: {{name: acct-{i}}}\nspec: {{accountName: acct-{i}, email: aws-acct-{i}@example.com, tags: {{team: t{i}}}}}\n"))
            .collect();
        let docs = yaml_documents(&yaml).expect("5,000 documents");
        assert_eq!(docs.len(), 5000);
        assert_eq!(docs[4999]["metadata"]["name"], "acct-4999");
    }

    fn load(yaml: &str) -> Loaded {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("lz.yaml"), yaml).unwrap();
        load_dir(dir.path())
    }

    fn account(name: &str, extra: &str) -> String {
        format!(
            "apiVersion: landingzone.dev/v1alpha1\nkind: AwsAccount\nmetadata:\n  name: {name}\nspec:\n  accountName: {name}\n  email: aws-{name}@example.com\n{extra}"
        )
    }

    #[test]
    fn valid_documents_load_with_defaults() {
        let l = load(&account("dev", ""));
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        let Resource::AwsAccount(a) = &l.resources[0].0 else {
            panic!()
        };
        assert_eq!(a.spec.role_name, "OrganizationAccountAccessRole");
        assert_eq!(a.spec.password_policy.minimum_password_length, 14);
    }

    #[test]
    fn bad_input_names_file_resource_and_field_and_keeps_the_rest() {
        // (reason, extra spec, expected field, expected message fragment)
        let table = [
            (
                "alias with a trailing dash",
                "  alias: bad-\n",
                "spec.alias",
                "must not start or end with '-'",
            ),
            (
                "both parent forms",
                "  parentId: r-abcd\n  organizationalUnitRef:\n    name: x\n",
                "spec",
                "at most one of organizationalUnitRef and parentId",
            ),
            (
                "tag key reserved",
                "  tags:\n    aws:x: y\n",
                "spec.tags",
                "not starting with 'aws:'",
            ),
            (
                "unknown field type",
                "  tags: 5\n",
                "spec.tags",
                "invalid type",
            ),
        ];
        for (reason, extra, field, fragment) in table {
            let yaml = format!("{}\n---\n{}", account("bad", extra), account("good", ""));
            let l = load(&yaml);
            assert_eq!(l.resources.len(), 1, "{reason}: the valid one still loads");
            assert_eq!(l.errors.len(), 1, "{reason}: {:?}", l.errors);
            let e = &l.errors[0];
            assert!(e.file.ends_with("lz.yaml"), "{reason}");
            assert_eq!(e.resource.as_deref(), Some("AwsAccount/bad"), "{reason}");
            assert!(
                e.field.as_deref().unwrap_or_default().contains(field),
                "{reason}: field {:?}",
                e.field
            );
            assert!(e.message.contains(fragment), "{reason}: {}", e.message);
        }
    }

    #[test]
    fn bad_email_and_missing_field() {
        let l = load(
            "apiVersion: landingzone.dev/v1alpha1\nkind: AwsAccount\nmetadata:\n  name: x\nspec:\n  accountName: x\n  email: not-an-email\n---\napiVersion: landingzone.dev/v1alpha1\nkind: AwsAccount\nmetadata:\n  name: y\nspec:\n  accountName: y\n",
        );
        assert_eq!(l.errors.len(), 2, "{:?}", l.errors);
        assert!(
            l.errors[0]
                .message
                .contains("email must be a valid address"),
            "{}",
            l.errors[0]
        );
        assert!(
            l.errors[1].message.contains("missing field `email`"),
            "{}",
            l.errors[1]
        );
    }

    #[test]
    fn duplicates_and_foreign_documents() {
        let yaml = format!(
            "{}\n---\n{}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
            account("a", ""),
            account("a", "")
        );
        let l = load(&yaml);
        assert_eq!(l.resources.len(), 1);
        assert!(l.errors[0].message.contains("duplicate"), "{}", l.errors[0]);
        assert_eq!(l.skipped.len(), 1);
    }
}
