//! Tag diffs, shared by every kind that carries `spec.tags`.

use crate::api::{Drift, Tags};

/// What it takes to make the observed tags equal the desired ones.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct TagDiff {
    pub drift: Vec<Drift>,
    /// Tags to add or overwrite.
    pub set: Tags,
    /// Keys to remove.
    pub remove: Vec<String>,
}

pub const ABSENT: &str = "<absent>";

/// The spec owns the resource's tags: missing or changed keys are set, extra keys removed.
/// `aws:` keys belong to AWS and are never touched.
pub fn diff_tags(desired: &Tags, observed: &Tags) -> TagDiff {
    let mut out = TagDiff::default();
    for (k, v) in desired {
        match observed.get(k) {
            Some(o) if o == v => {}
            Some(o) => {
                out.drift.push(Drift::new(format!("tags.{k}"), v, o));
                out.set.insert(k.clone(), v.clone());
            }
            None => {
                out.drift.push(Drift::new(format!("tags.{k}"), v, ABSENT));
                out.set.insert(k.clone(), v.clone());
            }
        }
    }
    for (k, o) in observed {
        if !desired.contains_key(k) && !k.starts_with("aws:") {
            out.drift.push(Drift::new(format!("tags.{k}"), ABSENT, o));
            out.remove.push(k.clone());
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // test tables are tuples by design
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn diff_table() {
        // (reason, desired, observed, expected set, expected remove, drift count)
        let table: Vec<(&str, Tags, Tags, Tags, Vec<&str>, usize)> = vec![
            (
                "equal",
                tags(&[("a", "1")]),
                tags(&[("a", "1")]),
                tags(&[]),
                vec![],
                0,
            ),
            (
                "missing key is set",
                tags(&[("a", "1")]),
                tags(&[]),
                tags(&[("a", "1")]),
                vec![],
                1,
            ),
            (
                "changed value is overwritten",
                tags(&[("a", "1")]),
                tags(&[("a", "2")]),
                tags(&[("a", "1")]),
                vec![],
                1,
            ),
            (
                "extra key is removed",
                tags(&[]),
                tags(&[("b", "x")]),
                tags(&[]),
                vec!["b"],
                1,
            ),
            (
                "aws: keys are left alone",
                tags(&[]),
                tags(&[("aws:cloudformation:stack", "s")]),
                tags(&[]),
                vec![],
                0,
            ),
            (
                "mixed",
                tags(&[("a", "1"), ("c", "3")]),
                tags(&[("a", "9"), ("b", "2")]),
                tags(&[("a", "1"), ("c", "3")]),
                vec!["b"],
                3,
            ),
        ];
        for (reason, desired, observed, set, remove, drift) in table {
            let d = diff_tags(&desired, &observed);
            assert_eq!(d.set, set, "{reason}");
            assert_eq!(d.remove, remove, "{reason}");
            assert_eq!(d.drift.len(), drift, "{reason}");
        }
    }
}
