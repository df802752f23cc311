package e2e

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Scenario 4: each hook outcome is a Kubernetes Event on its pod (`kubectl get events`), and the
// backup's log ends with one `quiesce backup summary` line with the counts.
func TestHookOutcomesAreEventsAndASummaryLine(t *testing.T) {
	ns := namespace(t, "e2e-events")
	startPods(t, testPod{namespace: ns, name: "web", annotations: map[string]string{
		"pre.hook.backup.quiesce.dev/command":   appendLine("frozen", "/tmp/marker"),
		"post.hook.backup.quiesce.dev/command":  `["/bin/sh", "-c", "exit 4"]`,
		"post.hook.backup.quiesce.dev/on-error": "Continue",
	}})

	b := createBackup(t, "e2e-events", ns)
	if b.phase != "Completed" || b.errors != 0 {
		t.Errorf("backup: phase %s with %d errors, want Completed with none (the failed post hook is Continue)\n%s", b.phase, b.errors, b.describe)
	}
	eventually(t, "an Event per hook outcome on pod web", 30*time.Second, func() error {
		events := strings.Join(podEvents(t, ns, "web"), "\n")
		if !strings.Contains(events, "QuiesceHookSucceeded") || !strings.Contains(events, "QuiesceHookFailed") {
			return errors.New("kubectl get events shows:\n" + events)
		}
		return nil
	})
	t.Logf("kubectl get events for pod web:\n%s", strings.Join(podEvents(t, ns, "web"), "\n"))

	// Velero uploads the backup's log before it stops its plugins: the summary must come while
	// the backup runs, once nothing is frozen.
	logs := backupLogs(t, b.name)
	i := find(logs, 0, "msg", "quiesce backup summary")
	if i < 0 {
		t.Fatalf("no `quiesce backup summary` line in velero backup logs %s", b.name)
	}
	summary := logs[i]
	t.Logf("summary: %s", summary.raw)
	if !lineHas(summary, "podsWithHooks", "1", "hooksAttempted", "2", "hooksSucceeded", "1", "hooksFailed", "1") {
		t.Errorf("summary counts: want 1 pod, 2 hooks attempted, 1 succeeded, 1 failed: %s", summary.raw)
	}
}
