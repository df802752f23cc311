package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// Scenario 1: Velero's hook walkthrough with quiesce's keys, on the nginx example with its log
// volume (plugin-manifest/nginx-local.yaml): the backup completes without errors, the pod is in
// it, the hook lines are in its log — the pre hook before Velero's takePVSnapshot of the pod's
// volume, the post hook after — and the marker file in the sidecar says pre ran before post.
func TestWalkthroughFreezesBeforeTheVolumeSnapshot(t *testing.T) {
	ns := namespace(t, "nginx-example")
	pv := hostPathVolume(t, ns, "nginx-logs")
	kubectl(t, "apply", "-f", filepath.Join(repoDir, "plugin-manifest", "nginx-local.yaml"))
	kubectl(t, "-n", ns, "rollout", "status", "deployment/nginx-deployment", "--timeout=120s")
	pod := strings.TrimSpace(kubectl(t, "-n", ns, "get", "pods", "-l", "app=nginx", "-o", "jsonpath={.items[0].metadata.name}"))

	marker := "/var/log/nginx/hooks.log"
	kubectl(t, "annotate", "pod", "-n", ns, "-l", "app=nginx", "--overwrite",
		"pre.hook.backup.quiesce.dev/command="+appendLine("frozen", marker),
		"pre.hook.backup.quiesce.dev/container=fsfreeze",
		"post.hook.backup.quiesce.dev/command="+appendLine("thawed", marker),
		"post.hook.backup.quiesce.dev/container=fsfreeze")

	b := createBackup(t, "nginx-hook-test", ns)
	if b.phase != "Completed" || b.errors != 0 {
		t.Fatalf("backup %s: phase %s with %d errors, want Completed with none\n%s", b.name, b.phase, b.errors, b.describe)
	}

	logs := backupLogs(t, b.name)
	hooks := hookLines(logs)
	t.Logf("velero backup logs %s | grep hookCommand:\n%s", b.name, rawLines(hooks))
	pre := find(logs, 0, "msg", "running exec hook", "hookPhase", "pre", "namespace", ns, "pod", pod,
		"hookContainer", "fsfreeze", "hookCommand", "[/bin/sh -c echo frozen >> "+marker+"]")
	snapshot := find(logs, 0, "msg", "Executing takePVSnapshot", "name", pv)
	post := find(logs, 0, "msg", "running exec hook", "hookPhase", "post", "namespace", ns, "pod", pod)
	switch {
	case pre < 0 || post < 0:
		t.Fatalf("no pre or no post hook line for pod %s in the backup log", pod)
	case snapshot < 0:
		t.Fatalf("no `Executing takePVSnapshot` line for volume %s in the backup log:\n%s", pv, rawLines(logs))
	case !(pre < snapshot && snapshot < post):
		t.Fatalf("want pre hook (line %d) < takePVSnapshot of %s (line %d) < post hook (line %d)", pre, pv, snapshot, post)
	}
	for _, phase := range []string{"pre", "post"} {
		if find(logs, 0, "msg", "exec hook succeeded", "hookPhase", phase, "pod", pod, "exitCode", "0") < 0 {
			t.Errorf("no `exec hook succeeded` line with exitCode 0 for the %s hook", phase)
		}
	}

	if got := fileIn(t, ns, pod, "fsfreeze", marker); got != "frozen\nthawed\n" {
		t.Errorf("marker file %s in the fsfreeze container: %q, want the pre hook's line then the post hook's", marker, got)
	}
	if !podInBackup(downloadedItems(t, b.name), ns, pod) {
		t.Errorf("pod %s/%s is not in the downloaded backup", ns, pod)
	}
}
