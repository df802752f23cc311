//! Rendering a [`Report`]: the human listing (fits 100 columns; long sentences wrap with a
//! hanging indent, only an unbreakable word such as a long command may run over) and JSON.

use std::fmt::Write as _;

use crate::hooks::{format_go_duration, KILL_GRACE, MAX_RETRY_BACKOFF};

use super::report::{
    ExecutionView, Finding, FindingKind, FindingSeverity, GroupReport, HookReport, PhaseReport,
    PodReport, Report, RunOnceView, VolumeGroupReport,
};

/// Width the text output wraps at.
pub const WIDTH: usize = 100;

/// The JSON report, pretty-printed, with a final newline.
pub fn render_json(report: &Report) -> String {
    // Serializing plain strings, numbers and vectors cannot fail.
    let mut text = serde_json::to_string_pretty(report).unwrap_or_default();
    text.push('\n');
    text
}

/// The human listing.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    let config = match &report.config_map {
        Some(origin) => format!(
            "{origin} ({} valid {})",
            report.rules,
            if report.rules == 1 { "rule" } else { "rules" }
        ),
        None => "none".to_owned(),
    };
    line(&mut out, "", "", &format!("plugin ConfigMap: {config}"));
    line(
        &mut out,
        "",
        "",
        &format!("backup: {}", backup_text(report)),
    );

    for pod in &report.pods {
        out.push('\n');
        render_pod(&mut out, pod);
    }

    if !report.groups.is_empty() {
        out.push_str("\nconsistency groups:\n");
        for group in &report.groups {
            render_group(&mut out, group);
        }
    }

    if let Some(first) = report.volume_groups.first() {
        out.push_str(&format!(
            "\nvolume groups (claims labelled {}, snapshotted together by Velero 1.17+):\n",
            first.label_key
        ));
        for group in &report.volume_groups {
            render_volume_group(&mut out, group);
        }
    }

    if !report.problems.is_empty() {
        out.push_str("\nproblems:\n");
        for finding in &report.problems {
            render_finding(&mut out, "  ", finding);
        }
    }
    if !report.notices.is_empty() {
        out.push_str("\nnotices:\n");
        for finding in &report.notices {
            render_finding(&mut out, "  ", finding);
        }
    }
    let s = &report.summary;
    out.push('\n');
    line(
        &mut out,
        "",
        "",
        &format!(
            "{} with hooks ({}), {} not listed (nothing to show); {}, {}",
            count(s.pods_with_hooks, "pod", "pods"),
            count(s.hooks, "hook", "hooks"),
            count(s.pods_not_listed, "pod", "pods"),
            count(s.problems, "problem", "problems"),
            count(s.notices, "notice", "notices"),
        ),
    );
    out
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn backup_text(report: &Report) -> String {
    let b = &report.backup;
    let mut parts = Vec::new();
    if let Some(name) = &b.name {
        parts.push(name.clone());
    }
    parts.push(if b.included_namespaces.is_empty() {
        "all namespaces".to_owned()
    } else {
        format!("namespaces {}", b.included_namespaces.join(", "))
    });
    if !b.excluded_namespaces.is_empty() {
        parts.push(format!("excluding {}", b.excluded_namespaces.join(", ")));
    }
    if !b.label_selectors.is_empty() {
        parts.push(format!("selector {}", b.label_selectors.join(" or ")));
    }
    if b.default_volumes_to_fs_backup {
        parts.push("volumes by file-system backup by default".to_owned());
    }
    parts.join("; ")
}

fn render_pod(out: &mut String, pod: &PodReport) {
    let title = format!("{}/{}", pod.namespace, pod.name);
    if let Some(reason) = &pod.skipped {
        let hooks = pod.phases.pre.hooks.len() + pod.phases.post.hooks.len();
        let would = if hooks == 0 {
            String::new()
        } else {
            format!(" (would have {})", count(hooks, "hook", "hooks"))
        };
        line(
            out,
            "",
            "    ",
            &format!("{title}  skipped{would}: {reason}"),
        );
        for finding in pod
            .notices
            .iter()
            .filter(|f| f.kind != FindingKind::Skipped)
        {
            render_finding(out, "  ", finding);
        }
        return;
    }
    let group = match &pod.group {
        Some(name) => format!(", group {name}"),
        None => String::new(),
    };
    line(
        out,
        "",
        "",
        &format!("{title}  (max-freeze {}{group})", pod.max_freeze),
    );
    render_phase(out, "pre", &pod.phases.pre, refused(pod, "pre"));
    render_phase(out, "post", &pod.phases.post, refused(pod, "post"));
    // Hook defects are shown on their hook.
    for finding in pod
        .problems
        .iter()
        .filter(|f| f.kind != FindingKind::HookDefect)
    {
        render_finding(out, "  ", finding);
    }
    for finding in &pod.notices {
        render_finding(out, "  ", finding);
    }
}

/// Whether governance refused the pod's annotation hook of `phase` (its `policy` finding is
/// located at the phase's annotation key).
fn refused(pod: &PodReport, phase: &str) -> bool {
    pod.problems.iter().any(|f| {
        f.kind == FindingKind::Policy
            && f.location
                .as_deref()
                .is_some_and(|l| l.starts_with(&format!("{phase}.")))
    })
}

fn render_phase(out: &mut String, name: &str, phase: &PhaseReport, refused: bool) {
    if phase.hooks.is_empty() {
        let why = if refused {
            " (its annotation hook is refused by governance, see below)"
        } else {
            ""
        };
        line(out, "  ", "", &format!("{name}: no hooks{why}"));
        return;
    }
    let moment = phase.moment.as_deref().unwrap_or_default();
    line(out, "  ", "        ", &format!("{name}: {moment}"));
    for hook in &phase.hooks {
        render_hook(out, name, hook);
    }
}

fn render_hook(out: &mut String, phase: &str, hook: &HookReport) {
    let number = format!("{}. ", hook.order);
    let indent = " ".repeat(4 + number.len());
    line(out, &format!("    {number}"), &indent, &hook.hook_command);
    let source = match (&hook.ends_session, hook.source.as_str()) {
        (_, "annotation") => "from annotation".to_owned(),
        // An implicit end has no post entry of its own to point at.
        (Some(pre), _) => format!("from rule {:?} ({pre}'s session)", hook.name),
        (None, _) => format!("from rule {:?} {phase}[{}]", hook.name, hook.index),
    };
    line(
        out,
        &indent,
        &indent,
        &format!(
            "container {}, on-error {}, timeout {}, {source}",
            hook.container, hook.on_error, hook.timeout
        ),
    );
    let continued = format!("{indent}  ");
    if hook.rendered_command.is_some() {
        line(
            out,
            &indent,
            &continued,
            &format!(
                "templated, as written: {}",
                crate::hooks::render_command(&hook.command)
            ),
        );
    }
    if let Some(execution) = &hook.execution {
        for text in execution_lines(execution) {
            line(out, &indent, &continued, &text);
        }
    }
    if hook.ends_session.is_some() {
        let input = match hook.execution.as_ref().and_then(|e| e.stdin.as_ref()) {
            Some(_) => "writes its stdin to it, then closes the session's stdin",
            None => "closes the session's stdin",
        };
        line(
            out,
            &indent,
            &continued,
            &format!(
                "ends the held session: {input}; the session must exit within {}",
                hook.timeout
            ),
        );
    }
    if let Some(run_once) = &hook.run_once {
        line(out, &indent, &continued, &run_once_text(run_once));
    }
    if let Some(defect) = &hook.defect {
        let will_fail = if hook.runs_here() {
            "will fail"
        } else {
            "will fail where it runs"
        };
        line(out, &indent, &continued, &format!("{will_fail}: {defect}"));
    }
    if !hook.reached && hook.runs_here() {
        line(
            out,
            &indent,
            &indent,
            "not reached: an earlier hook fails with on-error Fail",
        );
    }
}

/// One line per execution option that has an effect: wait, retries, kill on timeout.
fn execution_lines(execution: &ExecutionView) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(wait) = &execution.wait {
        lines.push(format!("wait: {}, up to {}", wait.state, wait.timeout));
    }
    if execution.retries > 0 {
        let delays = if execution.retries == 1 {
            format!("after {}", execution.retry_backoff)
        } else {
            let cap = format_go_duration(MAX_RETRY_BACKOFF);
            let capped = execution.retry_delays.last() == Some(&cap);
            format!(
                "backoff {}, doubling{}",
                execution.retry_backoff,
                if capped {
                    format!(" up to {cap}")
                } else {
                    String::new()
                }
            )
        };
        let when = if execution.retry_on_exit_codes.is_empty() {
            "only when the command could not be started".to_owned()
        } else {
            let codes: Vec<String> = execution
                .retry_on_exit_codes
                .iter()
                .map(ToString::to_string)
                .collect();
            format!(
                "also on exit {} {}",
                if codes.len() == 1 { "code" } else { "codes" },
                codes.join(", ")
            )
        };
        lines.push(format!("retries: {} ({delays}; {when})", execution.retries));
    }
    if execution.kill_on_timeout {
        lines.push(format!(
            "kill on timeout: TERM, then KILL after {}",
            format_go_duration(KILL_GRACE)
        ));
    }
    match (&execution.stdin, &execution.rendered_stdin) {
        (Some(written), Some(rendered)) => {
            lines.push(format!("stdin: {rendered:?}"));
            lines.push(format!("  templated, as written: {written:?}"));
        }
        (Some(written), None) => lines.push(format!("stdin: {written:?}")),
        (None, _) => {}
    }
    if let Some(ready) = &execution.hold_until_output {
        lines.push(format!(
            "holds a session: succeeds when {ready:?} appears on stdout; the command runs on \
             with stdin open until the thaw"
        ));
    }
    lines
}

/// Whether this pod runs a run-once hook, and why.
fn run_once_text(run_once: &RunOnceView) -> String {
    let Some(owner) = &run_once.owner else {
        return format!(
            "run once per owner: no effect, {}; it runs here",
            run_once.reason
        );
    };
    let selector = match &run_once.run_on {
        Some(text) => format!(" (run-on {text})"),
        None => String::new(),
    };
    let decision = match &run_once.runner {
        _ if run_once.runs_here => format!("runs here: {}", run_once.reason),
        Some(runner) => format!("skipped here, {runner} runs it: {}", run_once.reason),
        None => format!("skipped here: {}", run_once.reason),
    };
    format!("run once per {owner}{selector}: {decision}")
}

fn render_group(out: &mut String, group: &GroupReport) {
    let members = format!(
        "{}: {}",
        count(group.members.len(), "member", "members"),
        group.members.join(", ")
    );
    let effect = if group.members.len() == 1 {
        "a single member, so grouping has no effect".to_owned()
    } else {
        format!("{}; {}", group.pre, group.post)
    };
    line(
        out,
        "  ",
        "      ",
        &format!("{}/{} ({members}): {effect}", group.namespace, group.name),
    );
}

fn render_volume_group(out: &mut String, group: &VolumeGroupReport) {
    line(
        out,
        "  ",
        "      ",
        &format!(
            "{}/{} (claims {}; {} {}): every pod of the group freezes before the group's \
             snapshot, at its first claim",
            group.namespace,
            group.name,
            group.claims.join(", "),
            if group.pods.len() == 1 { "pod" } else { "pods" },
            group.pods.join(", ")
        ),
    );
}

/// `error: …`, `warning: …` or `notice: …`, prefixed by the location unless the message
/// already names it.
fn render_finding(out: &mut String, indent: &str, finding: &Finding) {
    let location = match finding.location.as_deref() {
        Some(location) if !finding.message.contains(location) => format!("{location}: "),
        _ => String::new(),
    };
    let label = match finding.severity {
        FindingSeverity::Error => "error",
        FindingSeverity::Warning => "warning",
        FindingSeverity::Info => "notice",
    };
    let text = format!("{label}: {location}{}", finding.message);
    line(out, indent, &format!("{indent}    "), &text);
}

/// Appends `text` word-wrapped at [`WIDTH`]: the first line after `first`, the others after
/// `rest`.
fn line(out: &mut String, first: &str, rest: &str, text: &str) {
    let mut current = first.to_owned();
    let mut empty = true;
    for word in text.split(' ') {
        if !empty && current.chars().count() + 1 + word.chars().count() > WIDTH {
            let _ = writeln!(out, "{}", current.trim_end());
            current = rest.to_owned();
            empty = true;
        }
        if !empty {
            current.push(' ');
        }
        current.push_str(word);
        empty = false;
    }
    let _ = writeln!(out, "{}", current.trim_end());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_wraps_at_the_width_with_a_hanging_indent() {
        let mut out = String::new();
        let text = "word ".repeat(40);
        line(&mut out, "  ", "      ", text.trim());
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|l| l.chars().count() <= WIDTH), "{out}");
        assert!(lines[1].starts_with("      word"));
    }

    #[test]
    fn a_word_longer_than_the_width_stays_whole() {
        let mut out = String::new();
        let long = "x".repeat(120);
        line(&mut out, "", "", &format!("a {long} b"));
        assert_eq!(out, format!("a\n{long}\nb\n"));
    }
}
