package e2e

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Scenario 3: a pre hook that outlives its timeout, in two pods of one backup. Without
// kill-on-timeout the exec stream is cancelled and the command goes on (as with Velero's own
// hooks): its processes are still in the container, and it writes its file later. With
// kill-on-timeout the command and its children are signalled: no process of the hook is left
// (`ps` in the container) and the file is never written.
func TestTimeoutKillsTheHookAndItsChildrenOnlyWhenAsked(t *testing.T) {
	ns := namespace(t, "e2e-timeout")
	// A child in the background and one in the foreground, both outliving the 2s timeout.
	hook := func(child, parent string) string {
		return `["/bin/sh", "-c", "sleep ` + child + ` & sleep ` + parent + `; echo late >> /tmp/late"]`
	}
	startPods(t,
		testPod{namespace: ns, name: "cancelled", annotations: map[string]string{
			"pre.hook.backup.quiesce.dev/command":  hook("19", "20"),
			"pre.hook.backup.quiesce.dev/timeout":  "2s",
			"pre.hook.backup.quiesce.dev/on-error": "Continue",
		}},
		testPod{namespace: ns, name: "killed", annotations: map[string]string{
			"pre.hook.backup.quiesce.dev/command":         hook("29", "30"),
			"pre.hook.backup.quiesce.dev/timeout":         "2s",
			"pre.hook.backup.quiesce.dev/on-error":        "Continue",
			"pre.hook.backup.quiesce.dev/kill-on-timeout": "true",
		}})
	started := time.Now()

	b := createBackup(t, "e2e-timeout", ns)
	if b.phase != "Completed" {
		t.Errorf("backup: phase %s, want Completed (on-error Continue)\n%s", b.phase, b.describe)
	}
	logs := backupLogs(t, b.name)
	for _, pod := range []string{"cancelled", "killed"} {
		if find(logs, 0, "hookPhase", "pre", "pod", pod, "error", "timed out after 2s") < 0 {
			t.Errorf("no `timed out after 2s` line for pod %s:\n%s", pod, rawLines(hookLines(logs)))
		}
	}
	if time.Since(started) > 17*time.Second {
		t.Fatalf("the backup took %s: too long to see the cancelled hook's processes still running", time.Since(started))
	}

	cancelled := strings.Join(processesIn(t, ns, "cancelled", "app"), "\n")
	if !strings.Contains(cancelled, "sleep 19") || !strings.Contains(cancelled, "sleep 20") {
		t.Errorf("without kill-on-timeout the hook's processes go on; ps shows:\n%s", cancelled)
	}
	for _, process := range processesIn(t, ns, "killed", "app") {
		if strings.Contains(process, "sleep 29") || strings.Contains(process, "sleep 30") {
			t.Errorf("kill-on-timeout left a process of the hook running: %q", process)
		}
	}

	eventually(t, "the cancelled hook writes its file", 30*time.Second, func() error {
		if fileIn(t, ns, "cancelled", "app", "/tmp/late") == "" {
			return errors.New("/tmp/late not written yet")
		}
		return nil
	})
	if got := fileIn(t, ns, "killed", "app", "/tmp/late"); got != "" {
		t.Errorf("the killed hook wrote /tmp/late (%q): its shell outlived the kill", got)
	}
}
