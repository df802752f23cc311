package e2e

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// Scenario 5, first half: `velero-plugin-quiesce explain --kubeconfig` against the live cluster
// lists the hooks a backup would run and flags a pod annotated with both Velero's and quiesce's
// keys (it would be frozen twice), exiting 1.
func TestExplainReadsTheLiveClusterAndFlagsDoubleQuiesce(t *testing.T) {
	ns := namespace(t, "e2e-explain")
	startPods(t,
		testPod{namespace: ns, name: "quiesce-only", annotations: map[string]string{
			"pre.hook.backup.quiesce.dev/command":  `["/bin/sync"]`,
			"post.hook.backup.quiesce.dev/command": `["/bin/true"]`,
		}},
		testPod{namespace: ns, name: "both-keys", annotations: map[string]string{
			"pre.hook.backup.quiesce.dev/command": `["/bin/sync"]`,
			"pre.hook.backup.velero.io/command":   `["/bin/sync"]`,
		}})

	cmd := exec.Command("velero-plugin-quiesce", "explain", "--kubeconfig", kubeconfig, "--include-namespaces", ns)
	out, err := cmd.CombinedOutput()
	t.Logf("velero-plugin-quiesce explain --kubeconfig … --include-namespaces %s:\n%s", ns, out)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("explain: %v, want exit status 1 (problems found)", err)
	}
	text := string(out)
	for _, want := range []string{"quiesce-only", "[/bin/sync]", "both-keys", "double quiesce", "pre.hook.backup.velero.io/command"} {
		if !strings.Contains(text, want) {
			t.Errorf("explain's output does not mention %q", want)
		}
	}
}

// Scenario 5, second half: one backup with Velero's own hook annotations, for the README's side
// by side comparison of the log lines (recorded in the test's output), and proof that Velero,
// not quiesce, ran them.
func TestVelerosOwnHooksSideBySide(t *testing.T) {
	ns := namespace(t, "e2e-velero-hooks")
	startPods(t, testPod{namespace: ns, name: "web", annotations: map[string]string{
		"pre.hook.backup.velero.io/command":  appendLine("velero-frozen", "/tmp/marker"),
		"post.hook.backup.velero.io/command": appendLine("velero-thawed", "/tmp/marker"),
	}})

	b := createBackup(t, "e2e-velero-hooks", ns)
	if b.phase != "Completed" || b.errors != 0 {
		t.Errorf("backup: phase %s with %d errors, want Completed\n%s", b.phase, b.errors, b.describe)
	}
	hooks := hookLines(backupLogs(t, b.name))
	t.Logf("Velero's own hooks, velero backup logs %s | grep hookCommand:\n%s", b.name, rawLines(hooks))
	for _, line := range hooks {
		if line.get("pluginName") != "" || line.get("hookSource") != "annotation" {
			t.Errorf("a hook line that is not Velero's own annotation hook: %s", line.raw)
		}
	}
	if len(hooks) == 0 {
		t.Error("no hookCommand line for Velero's own hooks")
	}
	if got := fileIn(t, ns, "web", "app", "/tmp/marker"); got != "velero-frozen\nvelero-thawed\n" {
		t.Errorf("marker file: %q, want Velero's pre hook's line, then its post hook's", got)
	}
}
