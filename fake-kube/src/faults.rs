//! Fault injection: rules a test installs through the handle to make the server misbehave in a
//! chosen, countable way (reject exec upgrades, answer 500, drop exec streams, delay answers).
//! This module only decides which faults apply to a request; the server and exec code act on
//! the decision.

use std::time::Duration;

/// What an injected fault does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with a `metav1.Status` of this HTTP code (400, 403, 503, …) instead of serving the
    /// request. On an exec request this refuses the WebSocket upgrade.
    Reject {
        /// HTTP status code to answer.
        code: u16,
    },
    /// Answer `500 InternalError`.
    ServerError,
    /// Exec only: upgrade, send the empty opening frames, then close the TCP connection without
    /// running the command or sending a status.
    DropStream,
    /// Exec only: run the command and stream its output, then close the TCP connection instead
    /// of sending the status (the command did run; the client cannot know how it ended).
    DropStreamAfterOutput,
    /// Wait this long before handling the request (other matching faults still apply after).
    Delay(Duration),
}

impl Fault {
    fn exec_only(&self) -> bool {
        matches!(self, Fault::DropStream | Fault::DropStreamAfterOutput)
    }
}

/// Identifies an installed rule, for [`crate::FakeKube::remove_fault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FaultId(pub(crate) u64);

/// A fault plus the requests it applies to. Every filter left unset matches anything.
///
/// ```
/// use fake_kube::{Fault, FaultRule};
/// // Refuse the next two exec upgrades into pod default/db with 403.
/// let rule = FaultRule::exec(Fault::Reject { code: 403 }).pod("default", "db").times(2);
/// # let _ = rule;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    fault: Fault,
    exec_only: bool,
    except_exec: bool,
    namespace: Option<String>,
    pod: Option<String>,
    container: Option<String>,
    command_contains: Option<String>,
    path_prefix: Option<String>,
    remaining: Option<u32>,
}

impl FaultRule {
    /// A rule that applies to exec requests only.
    pub fn exec(fault: Fault) -> Self {
        Self::new(fault, true)
    }

    /// A rule that applies to every request (discovery, gets, lists, exec, …).
    pub fn any_request(fault: Fault) -> Self {
        Self::new(fault, false)
    }

    fn new(fault: Fault, exec_only: bool) -> Self {
        Self {
            fault,
            exec_only,
            except_exec: false,
            namespace: None,
            pod: None,
            container: None,
            command_contains: None,
            path_prefix: None,
            remaining: None,
        }
    }

    /// Only requests in this namespace.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Only requests about this pod (its get and its execs).
    pub fn pod(mut self, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self.pod = Some(name.into());
        self
    }

    /// Only execs into this container (as named in the `container=` query parameter, or the
    /// pod's only container when the client named none).
    pub fn container(mut self, container: impl Into<String>) -> Self {
        self.container = Some(container.into());
        self
    }

    /// Only execs whose argv, joined with spaces, contains this text.
    pub fn command_contains(mut self, text: impl Into<String>) -> Self {
        self.command_contains = Some(text.into());
        self
    }

    /// Only requests that are not exec requests (lists and gets under a pod path prefix, say).
    pub fn except_exec(mut self) -> Self {
        self.except_exec = true;
        self
    }

    /// Only requests whose path starts with this prefix.
    pub fn path_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix = Some(prefix.into());
        self
    }

    /// Apply to the next `count` matching requests only, then remove the rule.
    pub fn times(mut self, count: u32) -> Self {
        self.remaining = Some(count);
        self
    }

    /// The fault this rule injects.
    pub fn fault(&self) -> &Fault {
        &self.fault
    }

    fn matches(&self, facts: &RequestFacts<'_>) -> bool {
        if (self.exec_only || self.fault.exec_only()) && !facts.is_exec {
            return false;
        }
        if self.except_exec && facts.is_exec {
            return false;
        }
        let field_matches = |wanted: &Option<String>, actual: Option<&str>| {
            wanted.as_deref().is_none_or(|w| actual == Some(w))
        };
        field_matches(&self.namespace, facts.namespace)
            && field_matches(&self.pod, facts.pod)
            && field_matches(&self.container, facts.container)
            && self
                .command_contains
                .as_deref()
                .is_none_or(|text| facts.argv.join(" ").contains(text))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|prefix| facts.path.starts_with(prefix))
    }
}

/// What the server knows about a request when it consults the rules.
#[derive(Debug, Default)]
pub(crate) struct RequestFacts<'a> {
    pub(crate) path: &'a str,
    pub(crate) is_exec: bool,
    pub(crate) namespace: Option<&'a str>,
    pub(crate) pod: Option<&'a str>,
    pub(crate) container: Option<&'a str>,
    pub(crate) argv: &'a [String],
}

/// The faults that apply to one request, split by how they act.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Decision {
    /// Total delay to wait first.
    pub(crate) delay: Duration,
    /// The first non-delay fault, if any.
    pub(crate) fault: Option<Fault>,
}

/// The installed rules, in installation order.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    rules: Vec<(FaultId, FaultRule)>,
    next_id: u64,
}

impl Faults {
    pub(crate) fn add(&mut self, rule: FaultRule) -> FaultId {
        self.next_id += 1;
        let id = FaultId(self.next_id);
        self.rules.push((id, rule));
        id
    }

    pub(crate) fn remove(&mut self, id: FaultId) -> bool {
        let before = self.rules.len();
        self.rules.retain(|(rule_id, _)| *rule_id != id);
        self.rules.len() != before
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    /// Picks the faults for a request and uses up one count of each counted rule that applied:
    /// every matching delay adds up, and the first matching non-delay fault wins (later ones are
    /// not consumed).
    pub(crate) fn decide(&mut self, facts: &RequestFacts<'_>) -> Decision {
        let mut decision = Decision::default();
        for (_, rule) in &mut self.rules {
            if !rule.matches(facts) {
                continue;
            }
            match &rule.fault {
                Fault::Delay(delay) => decision.delay += *delay,
                _ if decision.fault.is_some() => continue,
                fault => decision.fault = Some(fault.clone()),
            }
            if let Some(remaining) = rule.remaining.as_mut() {
                *remaining = remaining.saturating_sub(1);
            }
        }
        self.rules
            .retain(|(_, rule)| rule.remaining.is_none_or(|remaining| remaining > 0));
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec_facts<'a>(pod: &'a str, argv: &'a [String]) -> RequestFacts<'a> {
        RequestFacts {
            path: "/api/v1/namespaces/default/pods/p/exec",
            is_exec: true,
            namespace: Some("default"),
            pod: Some(pod),
            container: Some("main"),
            argv,
        }
    }

    #[test]
    fn counted_rule_expires() {
        let mut faults = Faults::default();
        faults.add(FaultRule::exec(Fault::Reject { code: 403 }).times(2));
        let argv = vec!["true".to_string()];
        for _ in 0..2 {
            assert_eq!(
                faults.decide(&exec_facts("p", &argv)).fault,
                Some(Fault::Reject { code: 403 })
            );
        }
        assert_eq!(faults.decide(&exec_facts("p", &argv)).fault, None);
    }

    #[test]
    fn filters_narrow_the_rule() {
        let mut faults = Faults::default();
        faults.add(
            FaultRule::exec(Fault::ServerError)
                .pod("default", "db")
                .command_contains("fsfreeze"),
        );
        let freeze = vec!["fsfreeze".to_string(), "-f".to_string()];
        let other = vec!["true".to_string()];
        assert_eq!(faults.decide(&exec_facts("web", &freeze)).fault, None);
        assert_eq!(faults.decide(&exec_facts("db", &other)).fault, None);
        assert_eq!(
            faults.decide(&exec_facts("db", &freeze)).fault,
            Some(Fault::ServerError)
        );
    }

    #[test]
    fn delays_add_up_and_exec_only_faults_skip_plain_requests() {
        let mut faults = Faults::default();
        faults.add(FaultRule::any_request(Fault::Delay(Duration::from_millis(
            5,
        ))));
        faults.add(FaultRule::any_request(Fault::Delay(Duration::from_millis(
            7,
        ))));
        faults.add(FaultRule::any_request(Fault::DropStream));
        let plain = RequestFacts {
            path: "/version",
            ..RequestFacts::default()
        };
        let decision = faults.decide(&plain);
        assert_eq!(decision.delay, Duration::from_millis(12));
        assert_eq!(decision.fault, None);
    }
}
