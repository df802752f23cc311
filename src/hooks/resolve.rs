//! Resolution: the ordered, concrete hooks of one pod in one phase.
//!
//! Precedence (per pod and per phase, as Velero): an annotation hook for the phase replaces
//! every rule hook of that phase; otherwise matching rules in array order, each rule's hooks
//! in list order. Pods that finished (phase Succeeded/Failed) or are being deleted get none.
//! Containers are resolved against the pod spec here; a hook whose container cannot be
//! resolved stays in the list, marked with a [`HookDefect`], so that it fails in its place.
//! [`has_same_run_once_hook`] asks the same of another pod of the owner: whether it resolves
//! to the run-once hook too, and so may be chosen to run it.
//!
//! Governance (`governance.annotationHooks`) applies to annotation hooks only, after the
//! container is resolved (so a hook that names no container is judged by the pod's first
//! one, which is `istio-proxy` under Istio's `holdApplicationUntilProxyStarts`):
//! - a refused annotation hook is left out and reported in [`Resolution::refused`];
//! - the rule hooks of its phase do **not** run in its place: the annotation still replaces
//!   them, or a tenant could switch the admin's rules off and on by annotating the pod;
//! - a pod's annotation pre and post hooks are refused together: refusing only the thaw would
//!   leave a permitted freeze in place until the watchdog, refusing only the freeze would run
//!   an unfreeze nobody asked for. A phase whose hooks come from rules is never affected.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Pod;

use super::annotations::{pre_holds_session, read_annotation_hook, AnnotationWarning};
use super::governance::{AnnotationHookPolicy, PolicyRefusal, RefusalCause};
use super::template::{self, UnknownVariable};
use super::workload::{RunOnce, GROUP_ANNOTATION};
use super::{
    Config, ExecHook, Execution, HeldBy, HookSource, Phase, PodRef, ResolvedHook, Rule,
    ANNOTATION_HOOK_NAME,
};

/// The hooks of one pod and phase, with what the caller should log about them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolution {
    /// Hooks in execution order (empty when `skipped` is set).
    pub hooks: Vec<ResolvedHook>,
    /// Odd annotation values that were defaulted or read literally (log at warning level).
    pub warnings: Vec<AnnotationWarning>,
    /// Why the pod gets no hooks at all in this backup (log at info level).
    pub skipped: Option<SkipReason>,
    /// Annotation hooks that governance refused (log at warning level with their Display,
    /// and count them). They are not in `hooks`, and no rule hook takes their place.
    pub refused: Vec<PolicyRefusal>,
}

/// Why a pod gets no hooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The pod's `status.phase` is `Succeeded` or `Failed`: its containers no longer run.
    Terminated {
        /// The pod.
        pod: PodRef,
        /// `Succeeded` or `Failed`.
        pod_phase: String,
        /// The hook phase that was asked for.
        phase: Phase,
    },
    /// `metadata.deletionTimestamp` is set: Velero does not back the pod up.
    Deleting {
        /// The pod.
        pod: PodRef,
        /// The hook phase that was asked for.
        phase: Phase,
    },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::Terminated {
                pod,
                pod_phase,
                phase,
            } => write!(
                f,
                "pod {pod} is in phase {pod_phase}, so its {phase} hooks are skipped"
            ),
            SkipReason::Deleting { pod, phase } => write!(
                f,
                "pod {pod} is being deleted, so its {phase} hooks are skipped"
            ),
        }
    }
}

/// Why a resolved hook cannot be executed on its pod. The texts start like Velero's errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookDefect {
    /// The named container is neither a container nor a native sidecar of the pod.
    #[error(
        "no such container: {container:?} (pod {pod} has no container or native sidecar of that name)"
    )]
    NoSuchContainer {
        /// The pod.
        pod: PodRef,
        /// The container the hook names.
        container: String,
    },
    /// The named container is an init container that is not a native sidecar.
    #[error(
        "no such container: {container:?} (in pod {pod} it is an init container without \
         restartPolicy: Always; hooks only run in containers and native sidecars)"
    )]
    InitContainerNotSidecar {
        /// The pod.
        pod: PodRef,
        /// The container the hook names.
        container: String,
    },
    /// No container was named and the pod has none to default to.
    #[error("need at least 1 container: pod {pod} has no containers to run the hook in")]
    NoContainers {
        /// The pod.
        pod: PodRef,
    },
    /// The command or the stdin uses a template variable that does not exist.
    #[error("invalid {}: {error}", .error.place.part())]
    UnknownVariable {
        /// The pod.
        pod: PodRef,
        /// Which variable, where.
        error: UnknownVariable,
    },
    /// The annotation's command is an empty JSON array.
    #[error("command is required: annotation {key} of pod {pod} is an empty JSON array")]
    EmptyCommand {
        /// The pod.
        pod: PodRef,
        /// The annotation key.
        key: String,
    },
}

/// The hooks `pod` gets in `phase`: its annotation hook if it has one for the phase,
/// otherwise the hooks of every rule of `config` that applies to it.
pub fn resolve(pod: &Pod, phase: Phase, config: &Config) -> Resolution {
    let pod_ref = PodRef::of(pod);
    if let Some(skipped) = skip_reason(pod, &pod_ref, phase) {
        return Resolution {
            skipped: Some(skipped),
            ..Resolution::default()
        };
    }

    let empty = BTreeMap::new();
    let annotations = pod.metadata.annotations.as_ref().unwrap_or(&empty);
    let mut warnings = Vec::new();
    if let Some(hook) = read_annotation_hook(&pod_ref, annotations, phase, &mut warnings) {
        // The post phase ends the session the pre hook holds, in the pre hook's container.
        let session_pre = (phase == Phase::Post && pre_holds_session(annotations))
            .then(|| read_annotation_hook(&pod_ref, annotations, Phase::Pre, &mut Vec::new()))
            .flatten();
        let requested = match (&hook.command, &session_pre) {
            (None, Some(pre)) => pre.container.as_deref(),
            _ => hook.container.as_deref(),
        };
        let (container, mut defect) = resolve_container(pod, &pod_ref, requested);
        let policy = config.governance().annotation_hooks();
        if let Some(cause) = refusal_cause(pod, &pod_ref, phase, &container, policy) {
            return Resolution {
                hooks: Vec::new(),
                warnings,
                skipped: None,
                refused: vec![PolicyRefusal {
                    pod: pod_ref,
                    phase,
                    key: hook.command_key,
                    container,
                    cause,
                }],
            };
        }
        // The run-once annotations are pod-wide: one phase reports their problems.
        let pre_has_hook = super::parse_command(
            annotations
                .get(&super::annotation_key(Phase::Pre, "command"))
                .map_or("", String::as_str),
        )
        .argv()
        .is_some();
        let mut run_once_warnings = Vec::new();
        let run_once = RunOnce::from_annotations(&pod_ref, annotations, &mut run_once_warnings);
        if phase == Phase::Pre || !pre_has_hook {
            warnings.extend(run_once_warnings);
        }
        let mut hooks = Vec::new();
        if let Some(pre) = &session_pre {
            let (pre_container, _) = resolve_container(pod, &pod_ref, pre.container.as_deref());
            hooks.push(ResolvedHook {
                phase,
                source: HookSource::Annotation,
                name: ANNOTATION_HOOK_NAME.to_owned(),
                index: 0,
                container: pre_container,
                command: pre.command.clone().unwrap_or_default(),
                on_error: hook.on_error,
                timeout: hook.timeout,
                execution: Execution {
                    stdin: hook.execution.stdin.clone(),
                    ..Execution::default()
                },
                run_once: run_once.clone(),
                defect: unknown_variable(&pod_ref, &[], hook.execution.stdin.as_deref()),
                ends_session: Some(HeldBy {
                    source: HookSource::Annotation,
                    name: ANNOTATION_HOOK_NAME.to_owned(),
                    index: 0,
                }),
            });
        }
        if let Some(command) = hook.command {
            if command.is_empty() {
                defect = Some(HookDefect::EmptyCommand {
                    pod: pod_ref.clone(),
                    key: hook.command_key.clone(),
                });
            }
            let mut execution = hook.execution;
            if session_pre.is_some() {
                // The post stdin went to the session; the post command runs after it, without.
                execution.stdin = None;
            }
            if defect.is_none() {
                defect = unknown_variable(&pod_ref, &command, execution.stdin.as_deref());
            }
            hooks.push(ResolvedHook {
                phase,
                source: HookSource::Annotation,
                name: ANNOTATION_HOOK_NAME.to_owned(),
                index: 0,
                container,
                command,
                on_error: hook.on_error,
                timeout: hook.timeout,
                execution,
                run_once,
                defect,
                ends_session: None,
            });
        }
        return Resolution {
            hooks,
            warnings,
            skipped: None,
            refused: Vec::new(),
        };
    }

    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
    let hooks = config
        .rules()
        .iter()
        .filter(|rule| rule.applies_to(namespace, labels))
        .flat_map(|rule| rule_hooks(pod, &pod_ref, rule, phase))
        .collect();
    Resolution {
        hooks,
        warnings,
        skipped: None,
        refused: Vec::new(),
    }
}

/// The hooks `rule` gives `pod` in `phase`. A rule whose pre hook holds a session ends it in
/// its post phase: where its post hook with only `stdin` stands, else first.
fn rule_hooks(pod: &Pod, pod_ref: &PodRef, rule: &Rule, phase: Phase) -> Vec<ResolvedHook> {
    let resolved = |index: usize, hook: &ExecHook| {
        let (container, defect) = resolve_container(pod, pod_ref, hook.container.as_deref());
        ResolvedHook {
            phase,
            source: HookSource::Spec,
            name: rule.name().to_owned(),
            index,
            container,
            command: hook.command.clone(),
            on_error: hook.on_error,
            timeout: hook.timeout,
            execution: hook.execution.clone(),
            run_once: rule.run_once().cloned(),
            defect,
            ends_session: None,
        }
    };
    let held = rule.held_session().map(|(index, pre)| resolved(index, pre));
    let mut hooks = Vec::new();
    let ends_explicitly = rule.hooks(phase).iter().any(|hook| hook.ends_session);
    if let (Phase::Post, Some(pre), false) = (phase, &held, ends_explicitly) {
        hooks.push(ResolvedHook::implicit_session_end(pre));
    }
    for (index, hook) in rule.hooks(phase).iter().enumerate() {
        match (&held, hook.ends_session) {
            (Some(pre), true) => hooks.push(ResolvedHook {
                index,
                on_error: hook.on_error,
                timeout: hook.timeout,
                execution: Execution {
                    stdin: hook.execution.stdin.clone(),
                    ..Execution::default()
                },
                ..ResolvedHook::implicit_session_end(pre)
            }),
            // Validation keeps such a hook out of a rule that holds no session.
            (None, true) => {}
            (_, false) => hooks.push(resolved(index, hook)),
        }
    }
    hooks
}

/// The pod's consistency group: its `quiesce.dev/group` annotation, else the `group` of the
/// first rule of `config` that applies to it. Pods that get no hooks still belong to their
/// group (they have nothing to freeze, so they never hold it up).
pub fn group_of(pod: &Pod, config: &Config) -> Option<String> {
    let empty = BTreeMap::new();
    if let Some(group) = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(GROUP_ANNOTATION))
        .filter(|g| !g.is_empty())
    {
        return Some(group.clone());
    }
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
    config
        .rules()
        .iter()
        .filter(|rule| rule.applies_to(namespace, labels))
        .find_map(|rule| rule.group().map(str::to_owned))
}

/// Whether `candidate` (a pod of the same owner) carries the run-once hook `hook` too, so that
/// choosing it runs the hook: for an annotation hook, the same `run-once-per` and `run-on`
/// annotations; for a rule hook, the same rule applies to it. A replica the hook's rule does
/// not select must never be chosen, or no pod would run the hook.
pub fn has_same_run_once_hook(candidate: &Pod, hook: &ResolvedHook, config: &Config) -> bool {
    let empty = BTreeMap::new();
    match hook.source {
        HookSource::Annotation => {
            let annotations = candidate.metadata.annotations.as_ref().unwrap_or(&empty);
            let theirs =
                RunOnce::from_annotations(&PodRef::of(candidate), annotations, &mut Vec::new());
            theirs.is_some() && theirs == hook.run_once
        }
        HookSource::Spec => {
            let namespace = candidate.metadata.namespace.as_deref().unwrap_or_default();
            let labels = candidate.metadata.labels.as_ref().unwrap_or(&empty);
            config.rules().iter().any(|rule| {
                rule.name() == hook.name
                    && rule.run_once().is_some()
                    && rule.applies_to(namespace, labels)
            })
        }
    }
}

/// Why the annotation hook of `phase` (running in `container`) is refused, if it is: its own
/// breach of `policy`, else a breach by the pod's annotation hook of the other phase.
fn refusal_cause(
    pod: &Pod,
    pod_ref: &PodRef,
    phase: Phase,
    container: &str,
    policy: &AnnotationHookPolicy,
) -> Option<RefusalCause> {
    if let Some(rule) = policy.refuses(&pod_ref.namespace, container) {
        return Some(RefusalCause::Policy(rule));
    }
    let other = match phase {
        Phase::Pre => Phase::Post,
        Phase::Post => Phase::Pre,
    };
    let empty = BTreeMap::new();
    let annotations = pod.metadata.annotations.as_ref().unwrap_or(&empty);
    // The other phase's warnings are reported by its own resolution.
    let hook = read_annotation_hook(pod_ref, annotations, other, &mut Vec::new())?;
    // A post phase that only ends the session runs in the pre hook's container: judged above.
    hook.command.as_ref()?;
    let (other_container, _) = resolve_container(pod, pod_ref, hook.container.as_deref());
    let rule = policy.refuses(&pod_ref.namespace, &other_container)?;
    Some(RefusalCause::OtherPhase {
        phase: other,
        key: hook.command_key,
        container: other_container,
        rule,
    })
}

fn skip_reason(pod: &Pod, pod_ref: &PodRef, phase: Phase) -> Option<SkipReason> {
    if pod.metadata.deletion_timestamp.is_some() {
        return Some(SkipReason::Deleting {
            pod: pod_ref.clone(),
            phase,
        });
    }
    let pod_phase = pod.status.as_ref()?.phase.as_deref()?;
    matches!(pod_phase, "Succeeded" | "Failed").then(|| SkipReason::Terminated {
        pod: pod_ref.clone(),
        pod_phase: pod_phase.to_owned(),
        phase,
    })
}

/// The container a hook runs in: the named one if it is a container or a native sidecar
/// (an init container with `restartPolicy: Always`), else the first of `spec.containers`.
/// The defect of a hook whose command or stdin uses a template variable that does not exist.
fn unknown_variable(pod: &PodRef, command: &[String], stdin: Option<&str>) -> Option<HookDefect> {
    template::check(command)
        .and_then(|()| stdin.map_or(Ok(()), template::check_stdin))
        .err()
        .map(|error| HookDefect::UnknownVariable {
            pod: pod.clone(),
            error,
        })
}

fn resolve_container(
    pod: &Pod,
    pod_ref: &PodRef,
    requested: Option<&str>,
) -> (String, Option<HookDefect>) {
    let spec = pod.spec.as_ref();
    let containers = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let init_containers = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let Some(name) = requested else {
        return match containers.first() {
            Some(first) => (first.name.clone(), None),
            None => (
                String::new(),
                Some(HookDefect::NoContainers {
                    pod: pod_ref.clone(),
                }),
            ),
        };
    };
    if containers.iter().any(|c| c.name == name) {
        return (name.to_owned(), None);
    }
    let defect = match init_containers.iter().find(|c| c.name == name) {
        Some(init) if init.restart_policy.as_deref() == Some("Always") => None,
        Some(_) => Some(HookDefect::InitContainerNotSidecar {
            pod: pod_ref.clone(),
            container: name.to_owned(),
        }),
        None => Some(HookDefect::NoSuchContainer {
            pod: pod_ref.clone(),
            container: name.to_owned(),
        }),
    };
    (name.to_owned(), defect)
}

#[cfg(test)]
mod tests;
