package e2e

import (
	"fmt"
	"strings"
	"testing"
)

// Scenario 9: hooks that talk to their command through stdin, over the real API server's
// WebSocket exec and the kubelet. A pre hook holds its shell open from the freeze to the thaw
// (hold-until-output) and the post stdin goes to that same shell, which then exits as its stdin
// closes (the v5 close signal), with the template variables of its input filled in; a one-shot
// hook reads its stdin; a session that never prints its
// ready text fails at its timeout. And the backup's log ends with the totals of all three pods:
// Velero closes that log as soon as its last item is done.
func TestHeldSessionAndStdinOnTheRealKubelet(t *testing.T) {
	ns := namespace(t, "e2e-held")
	shell := `["/bin/sh"]`
	startPods(t,
		testPod{namespace: ns, name: "db", annotations: map[string]string{
			"pre.hook.backup.quiesce.dev/command":           shell,
			"pre.hook.backup.quiesce.dev/stdin":             "echo \"frozen $$ {{backup.name}}\" >> /tmp/held; echo quiesce-frozen\n",
			"pre.hook.backup.quiesce.dev/hold-until-output": "quiesce-frozen",
			"post.hook.backup.quiesce.dev/stdin":            "echo \"thawed $$ {{phase}}\" >> /tmp/held\n",
		}},
		testPod{namespace: ns, name: "never-ready", annotations: map[string]string{
			"pre.hook.backup.quiesce.dev/command":           shell,
			"pre.hook.backup.quiesce.dev/stdin":             "echo not yet\n",
			"pre.hook.backup.quiesce.dev/hold-until-output": "quiesce-frozen",
			"pre.hook.backup.quiesce.dev/timeout":           "3s",
			"pre.hook.backup.quiesce.dev/on-error":          "Continue",
			"post.hook.backup.quiesce.dev/command":          appendLine("thawed", "/tmp/marker"),
		}},
		testPod{namespace: ns, name: "oneshot", annotations: map[string]string{
			"pre.hook.backup.quiesce.dev/command": shell,
			"pre.hook.backup.quiesce.dev/stdin":   "echo read-from-stdin >> /tmp/stdin\n",
		}})

	b := createBackup(t, "e2e-held", ns)
	if b.phase != "Completed" || b.errors != 0 {
		t.Errorf("backup: phase %s with %d errors, want Completed with none (the failed hook is Continue)\n%s", b.phase, b.errors, b.describe)
	}
	logs := backupLogs(t, b.name)
	t.Logf("velero backup logs %s | grep hookCommand:\n%s", b.name, rawLines(hookLines(logs)))

	// The held session: the same shell wrote both lines, the post input reached it at the thaw.
	held := find(logs, 0, "msg", `holding session until the thaw: "quiesce-frozen" appeared on its stdout, and the command runs on with stdin open`, "pod", "db")
	ended := find(logs, 0, "msg", "held session ended", "pod", "db", "exitCode", "0")
	switch {
	case held < 0:
		t.Errorf("no `holding session` line for pod db")
	case ended < 0:
		t.Errorf("no `held session ended` line with exitCode 0 for pod db")
	case ended < held:
		t.Errorf("the session ended (line %d) before it was held (line %d)", ended, held)
	}
	var frozenPID, backupName, thawedPID, phase string
	heldFile := fileIn(t, ns, "db", "app", "/tmp/held")
	if _, err := fmt.Sscanf(heldFile, "frozen %s %s\nthawed %s %s\n", &frozenPID, &backupName, &thawedPID, &phase); err != nil ||
		frozenPID != thawedPID || backupName != b.name || phase != "post" {
		t.Errorf("/tmp/held in pod db: %q, want `frozen PID %s` then `thawed PID post` from one shell", heldFile, b.name)
	}
	for _, process := range processesIn(t, ns, "db", "app") {
		if strings.TrimSpace(process) == "/bin/sh" {
			t.Errorf("the held shell is still running after the thaw: %q", process)
		}
	}

	if got := fileIn(t, ns, "oneshot", "app", "/tmp/stdin"); got != "read-from-stdin\n" {
		t.Errorf("/tmp/stdin in pod oneshot: %q, want the line its stdin wrote", got)
	}

	if find(logs, 0, "hookPhase", "pre", "pod", "never-ready",
		"error", `timed out after 3s waiting for "quiesce-frozen" on its stdout; the session was ended`) < 0 {
		t.Errorf("no timed-out session line for pod never-ready:\n%s", rawLines(hookLines(logs)))
	}
	if got := fileIn(t, ns, "never-ready", "app", "/tmp/marker"); got != "thawed\n" {
		t.Errorf("/tmp/marker in pod never-ready: %q, want its post hook's line (on-error Continue)", got)
	}

	var last logLine
	for _, line := range logs {
		if line.get("msg") == "quiesce backup summary" {
			last = line
		}
	}
	// db: the held pre hook and its end at the thaw; never-ready: the failed pre and the post;
	// oneshot: its pre.
	if !lineHas(last, "podsWithHooks", "3", "hooksAttempted", "5", "hooksSucceeded", "4", "hooksFailed", "1") {
		t.Errorf("the last summary line in the backup's log: want 3 pods, 5 hooks attempted, 4 succeeded, 1 failed: %q", last.raw)
	}
}
