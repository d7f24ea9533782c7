//! Kubernetes names for imported AWS resources: readable, unique per kind, and the same on every
//! run for the same Organization. Pure, table-tested.

use std::collections::{BTreeMap, BTreeSet};

/// A Kubernetes name from an AWS name: lower case letters and digits, every other run of
/// characters one '-', at most 63 characters (a DNS label, so it also fits every printer column).
pub fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let mut out: String = out.trim_end_matches('-').chars().take(63).collect();
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        "unnamed".into()
    } else {
        out
    }
}

/// One thing to name: its AWS id, its AWS name, and what tells it apart from others of the same
/// name (e.g. its parent OU's name).
#[derive(Clone, Debug)]
pub struct Candidate {
    pub id: String,
    pub name: String,
    pub qualifier: String,
}

/// A name per id, and one sentence per collision that was resolved.
///
/// Unique names stay the slug of the AWS name. Names shared by several things become
/// `<qualifier>-<name>`; where that still collides, the AWS id's last characters are appended.
/// Candidates are taken in id order, so the same Organization always gets the same names.
pub fn unique_names(
    kind: &str,
    candidates: &[Candidate],
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    let mut by_slug: BTreeMap<String, Vec<&Candidate>> = BTreeMap::new();
    for c in &sorted {
        by_slug.entry(slug(&c.name)).or_default().push(c);
    }
    let mut names = BTreeMap::new();
    let mut taken: BTreeSet<String> = by_slug
        .iter()
        .filter(|(_, cs)| cs.len() == 1)
        .map(|(s, _)| s.clone())
        .collect();
    let mut notes = Vec::new();
    for (s, cs) in &by_slug {
        if cs.len() == 1 {
            names.insert(cs[0].id.clone(), s.clone());
            continue;
        }
        let mut chosen = Vec::new();
        for c in cs {
            let mut name = slug(&format!("{}-{}", c.qualifier, s));
            if taken.contains(&name) {
                let tail: String =
                    c.id.chars()
                        .rev()
                        .take(6)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                name = slug(&format!("{name}-{tail}"));
            }
            taken.insert(name.clone());
            chosen.push(format!("{} ({})", name, c.id));
            names.insert(c.id.clone(), name);
        }
        notes.push(format!(
            "{} {kind} are named {:?}: imported as {}",
            cs.len(),
            cs[0].name,
            chosen.join(", ")
        ));
    }
    (names, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, name: &str, q: &str) -> Candidate {
        Candidate {
            id: id.into(),
            name: name.into(),
            qualifier: q.into(),
        }
    }

    #[test]
    fn slugs_are_valid_kubernetes_names() {
        for (aws, want) in [
            ("Security", "security"),
            ("Payments Prod", "payments-prod"),
            ("  Sandbox / Team_A ", "sandbox-team-a"),
            ("ÄÖÜ", "unnamed"),
            ("prod-", "prod"),
            (&"x".repeat(80), &"x".repeat(63)),
        ] {
            assert_eq!(slug(aws), want, "{aws}");
        }
    }

    #[test]
    fn collisions_are_resolved_by_qualifier_then_id_in_id_order() {
        let (names, notes) = unique_names(
            "OUs",
            &[
                c("ou-b", "Prod", "Workloads"),
                c("ou-a", "Prod", "Sandbox"),
                c("ou-c", "Security", "Root"),
                // Same name and same parent name: the id tells them apart.
                c("ou-e111111", "Dev", "Team"),
                c("ou-d222222", "Dev", "Team"),
            ],
        );
        assert_eq!(names["ou-a"], "sandbox-prod");
        assert_eq!(names["ou-b"], "workloads-prod");
        assert_eq!(names["ou-c"], "security");
        assert_eq!(names["ou-d222222"], "team-dev");
        assert_eq!(names["ou-e111111"], "team-dev-111111");
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[1].contains("sandbox-prod (ou-a), workloads-prod (ou-b)"),
            "{notes:?}"
        );
        // Deterministic: the input order does not matter.
        let (again, _) = unique_names(
            "OUs",
            &[
                c("ou-a", "Prod", "Sandbox"),
                c("ou-b", "Prod", "Workloads"),
                c("ou-c", "Security", "Root"),
                c("ou-d222222", "Dev", "Team"),
                c("ou-e111111", "Dev", "Team"),
            ],
        );
        assert_eq!(names, again);
    }
}
