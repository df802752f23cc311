package e2e

import "testing"

// Scenario 2: a pre hook with on-error Fail (the default) that fails. As the README says: the
// backup is PartiallyFailed with 2 errors (quiesce's `Error executing hook` and Velero's
// `Error backing up item`, the two lines Velero logs for its own failed hook), the pod is not in
// the backup, and its post hook ran all the same (the pre hook may have frozen before failing).
func TestFailingPreHookDropsThePodAndStillThaws(t *testing.T) {
	ns := namespace(t, "e2e-fail")
	volumeClaim(t, ns, "data")
	startPods(t, testPod{namespace: ns, name: "db", claim: "data", annotations: map[string]string{
		"pre.hook.backup.quiesce.dev/command":  `["/bin/sh", "-c", "echo frozen >> /tmp/marker; exit 3"]`,
		"post.hook.backup.quiesce.dev/command": appendLine("thawed", "/tmp/marker"),
	}})

	b := createBackup(t, "e2e-fail", ns)
	if b.phase != "PartiallyFailed" || b.errors != 2 {
		t.Errorf("backup: phase %s with %d errors, want PartiallyFailed with 2\n%s", b.phase, b.errors, b.describe)
	}
	logs := backupLogs(t, b.name)
	failed := find(logs, 0, "msg", "Error executing hook", "hookPhase", "pre", "pod", "db", "level", "error")
	if failed < 0 {
		t.Fatalf("no error line for the failed pre hook:\n%s", rawLines(hookLines(logs)))
	}
	t.Logf("the failed hook's line: %s", logs[failed].raw)
	if podInBackup(downloadedItems(t, b.name), ns, "db") {
		t.Errorf("pod %s/db is in the downloaded backup; a failed Fail pre hook must drop it", ns)
	}
	if got := fileIn(t, ns, "db", "app", "/tmp/marker"); got != "frozen\nthawed\n" {
		t.Errorf("marker file: %q, want the pre hook's line, then the post hook's", got)
	}
}
