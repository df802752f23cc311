//! Pod-wide hook settings that look beyond the one pod: run once per workload
//! (`quiesce.dev/run-once-per: owner`, `quiesce.dev/run-on: <selector>`) and consistency groups
//! (`quiesce.dev/group: <name>`), read from the pod's annotations ([`RunOnce::from_annotations`])
//! or a rule, and the pure choice of the one pod of a workload that runs the hooks. Which pods
//! are candidates (listed, in the backup, resolving to the same hook) is decided above: by
//! `resolve.rs` and by the engine.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Pod;

use super::annotations::AnnotationWarning;
use super::{LabelSelector, PodRef};

/// Pods sharing this value (within a namespace) are frozen and thawed together.
pub const GROUP_ANNOTATION: &str = "quiesce.dev/group";
/// `owner`: among the pods of one owner, only one runs the annotation hooks.
pub const RUN_ONCE_PER_ANNOTATION: &str = "quiesce.dev/run-once-per";
/// Label selector (kubectl syntax) preferring the pod that runs, e.g. `role=primary`.
pub const RUN_ON_ANNOTATION: &str = "quiesce.dev/run-on";

/// "Run once per workload": of the pods sharing an owner, only the chosen one runs the hook.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunOnce {
    /// Prefer the pods matching this selector; `None`: lowest ordinal, else oldest.
    pub run_on: Option<LabelSelector>,
    /// The selector as written, for messages.
    pub run_on_text: Option<String>,
}

impl fmt::Display for RunOnce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("run once per owner")?;
        if let Some(text) = &self.run_on_text {
            write!(f, " (run-on {text})")?;
        }
        Ok(())
    }
}

impl RunOnce {
    /// Reads `quiesce.dev/run-once-per` and `quiesce.dev/run-on` for the pod's annotation
    /// hooks: `None` when the hooks run in every pod. Unusable values are warned about.
    pub(super) fn from_annotations(
        pod_ref: &PodRef,
        annotations: &BTreeMap<String, String>,
        warnings: &mut Vec<AnnotationWarning>,
    ) -> Option<RunOnce> {
        let invalid = |key: &str, value: &str, reason: String| AnnotationWarning::InvalidOption {
            pod: pod_ref.clone(),
            key: key.to_owned(),
            value: value.to_owned(),
            reason,
        };
        let run_on = annotations.get(RUN_ON_ANNOTATION);
        let per = annotations.get(RUN_ONCE_PER_ANNOTATION);
        match per.map(String::as_str) {
            Some("owner") => {}
            Some(other) => {
                warnings.push(invalid(
                    RUN_ONCE_PER_ANNOTATION,
                    other,
                    "the only value is \"owner\"; the hooks run in this pod as usual".to_owned(),
                ));
                return None;
            }
            None => {
                if let Some(text) = run_on {
                    warnings.push(invalid(
                        RUN_ON_ANNOTATION,
                        text,
                        format!("it has no effect without {RUN_ONCE_PER_ANNOTATION}: owner"),
                    ));
                }
                return None;
            }
        }
        let Some(text) = run_on else {
            return Some(RunOnce::default());
        };
        match LabelSelector::parse(text) {
            Ok(selector) => Some(RunOnce {
                run_on: Some(selector),
                run_on_text: Some(text.clone()),
            }),
            Err(error) => {
                warnings.push(invalid(
                    RUN_ON_ANNOTATION,
                    text,
                    format!(
                        "not a label selector ({error}); the lowest ordinal or oldest pod runs"
                    ),
                ));
                Some(RunOnce::default())
            }
        }
    }
}

/// A pod's controlling owner (its first owner when none is marked controller).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner {
    /// `ReplicaSet`, `StatefulSet`, `Job`, …
    pub kind: String,
    /// The owner's name.
    pub name: String,
    /// The owner's UID: pods of one workload share it.
    pub uid: String,
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// The pod's owner, if it has one.
pub fn owner_of(pod: &Pod) -> Option<Owner> {
    let owners = pod.metadata.owner_references.as_ref()?;
    let owner = owners
        .iter()
        .find(|o| o.controller == Some(true))
        .or_else(|| owners.first())?;
    Some(Owner {
        kind: owner.kind.clone(),
        name: owner.name.clone(),
        uid: owner.uid.clone(),
    })
}

/// Why a pod was chosen to run the hooks of its workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChoiceReason {
    /// It matches `run-on` (the lowest ordinal or oldest of those that do).
    MatchesRunOn,
    /// No selector: the lowest StatefulSet ordinal.
    LowestOrdinal,
    /// No selector: the oldest pod (then the first by name).
    Oldest,
    /// A selector is set but no candidate matches it: the lowest ordinal or oldest instead.
    NoneMatchedRunOn,
}

impl fmt::Display for ChoiceReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChoiceReason::MatchesRunOn => "it matches run-on",
            ChoiceReason::LowestOrdinal => "it has the lowest StatefulSet ordinal",
            ChoiceReason::Oldest => "it is the oldest pod",
            ChoiceReason::NoneMatchedRunOn => {
                "no pod matches run-on, so the lowest ordinal or oldest pod runs instead"
            }
        })
    }
}

/// The one pod of `candidates` (pods of one owner, running and in the backup) that runs the
/// hooks: the first matching `run_once.run_on`, else the first of all; "first" is the lowest
/// StatefulSet ordinal, else the oldest `creationTimestamp`, then the name.
pub fn choose_runner<'a>(
    candidates: impl IntoIterator<Item = &'a Pod>,
    owner: &Owner,
    run_once: &RunOnce,
) -> Option<(PodRef, ChoiceReason)> {
    let mut candidates: Vec<&Pod> = candidates.into_iter().collect();
    candidates.sort_by(|a, b| precedence(a, b, owner));
    let by_order = if owner.kind == "StatefulSet" {
        ChoiceReason::LowestOrdinal
    } else {
        ChoiceReason::Oldest
    };
    let empty = BTreeMap::new();
    if let Some(selector) = &run_once.run_on {
        let matching = candidates
            .iter()
            .find(|p| selector.matches(p.metadata.labels.as_ref().unwrap_or(&empty)));
        if let Some(pod) = matching {
            return Some((PodRef::of(pod), ChoiceReason::MatchesRunOn));
        }
        return candidates
            .first()
            .map(|p| (PodRef::of(p), ChoiceReason::NoneMatchedRunOn));
    }
    candidates.first().map(|p| (PodRef::of(p), by_order))
}

fn precedence(a: &Pod, b: &Pod, owner: &Owner) -> Ordering {
    let ordinal = |pod: &Pod| -> Option<u64> {
        if owner.kind != "StatefulSet" {
            return None;
        }
        let name = pod.metadata.name.as_deref()?;
        name.strip_prefix(owner.name.as_str())?
            .strip_prefix('-')?
            .parse()
            .ok()
    };
    let created = |pod: &Pod| pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let name = |pod: &Pod| pod.metadata.name.clone().unwrap_or_default();
    // Pods with an ordinal (or a timestamp) come before those without.
    let key = |pod: &Pod| {
        (
            ordinal(pod).is_none(),
            ordinal(pod),
            created(pod).is_none(),
            created(pod),
        )
    };
    key(a).cmp(&key(b)).then_with(|| name(a).cmp(&name(b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, created: &str, labels: serde_json::Value, owner_kind: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {
                "name": name, "namespace": "shop", "creationTimestamp": created, "labels": labels,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner_kind, "name": "db",
                                     "uid": "owner-uid", "controller": true}]
            }
        }))
        .unwrap()
    }

    fn owner(kind: &str) -> Owner {
        Owner {
            kind: kind.to_owned(),
            name: "db".to_owned(),
            uid: "owner-uid".to_owned(),
        }
    }

    fn run_on(text: &str) -> RunOnce {
        RunOnce {
            run_on: Some(LabelSelector::parse(text).unwrap()),
            run_on_text: Some(text.to_owned()),
        }
    }

    #[test]
    fn statefulset_runs_on_the_lowest_ordinal_not_the_oldest() {
        let pods = [
            pod("db-10", "2026-01-01T00:00:00Z", json!({}), "StatefulSet"),
            pod("db-2", "2026-03-01T00:00:00Z", json!({}), "StatefulSet"),
            pod("db-1", "2026-05-01T00:00:00Z", json!({}), "StatefulSet"),
        ];
        let (chosen, reason) =
            choose_runner(&pods, &owner("StatefulSet"), &RunOnce::default()).unwrap();
        assert_eq!(chosen.name, "db-1");
        assert_eq!(reason, ChoiceReason::LowestOrdinal);
    }

    #[test]
    fn replicaset_runs_on_the_oldest_then_by_name() {
        let pods = [
            pod("db-abc", "2026-02-01T00:00:00Z", json!({}), "ReplicaSet"),
            pod("db-xyz", "2026-01-01T00:00:00Z", json!({}), "ReplicaSet"),
            pod("db-aaa", "2026-01-01T00:00:00Z", json!({}), "ReplicaSet"),
        ];
        let (chosen, reason) =
            choose_runner(&pods, &owner("ReplicaSet"), &RunOnce::default()).unwrap();
        assert_eq!(chosen.name, "db-aaa");
        assert_eq!(reason, ChoiceReason::Oldest);
    }

    #[test]
    fn run_on_selects_the_primary_whatever_its_ordinal() {
        let pods = [
            pod(
                "db-0",
                "2026-01-01T00:00:00Z",
                json!({"role": "replica"}),
                "StatefulSet",
            ),
            pod(
                "db-1",
                "2026-01-01T00:00:00Z",
                json!({"role": "replica"}),
                "StatefulSet",
            ),
            pod(
                "db-2",
                "2026-01-01T00:00:00Z",
                json!({"role": "primary"}),
                "StatefulSet",
            ),
        ];
        let (chosen, reason) =
            choose_runner(&pods, &owner("StatefulSet"), &run_on("role=primary")).unwrap();
        assert_eq!(chosen.name, "db-2");
        assert_eq!(reason, ChoiceReason::MatchesRunOn);
    }

    #[test]
    fn no_pod_matching_run_on_falls_back_to_the_lowest_ordinal_and_says_so() {
        let pods = [
            pod(
                "db-1",
                "2026-01-01T00:00:00Z",
                json!({"role": "replica"}),
                "StatefulSet",
            ),
            pod(
                "db-0",
                "2026-01-01T00:00:00Z",
                json!({"role": "replica"}),
                "StatefulSet",
            ),
        ];
        let (chosen, reason) =
            choose_runner(&pods, &owner("StatefulSet"), &run_on("role=primary")).unwrap();
        assert_eq!(chosen.name, "db-0");
        assert_eq!(reason, ChoiceReason::NoneMatchedRunOn);
    }

    #[test]
    fn no_candidates_no_runner() {
        assert_eq!(
            choose_runner(&[], &owner("StatefulSet"), &RunOnce::default()),
            None
        );
    }

    #[test]
    fn owner_prefers_the_controller_reference() {
        let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "1"},
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d9", "uid": "2", "controller": true}
        ]}}))
        .unwrap();
        assert_eq!(owner_of(&pod).unwrap().to_string(), "ReplicaSet/web-5d9");
        let orphan: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}})).unwrap();
        assert_eq!(owner_of(&orphan), None);
    }
}
