package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The node's only image with a shell: Debian's busybox, imported into containerd by cluster-up.
const busybox = "localhost/busybox:latest"

// idle keeps a container running until it is told to stop, so that hooks can exec into it.
var idle = []string{"/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"}

// testPod describes a pod of a scenario: busybox containers on the one node.
type testPod struct {
	namespace, name string
	annotations     map[string]string
	labels          map[string]string
	containers      []string // names; the first is the default hook container
	claim           string   // a PersistentVolumeClaim mounted at /data in every container, if set
}

func (p testPod) object() map[string]any {
	containers := []any{}
	for _, name := range p.containers {
		c := map[string]any{
			"name": name, "image": busybox, "imagePullPolicy": "Never", "command": idle,
		}
		if p.claim != "" {
			c["volumeMounts"] = []any{map[string]any{"name": "data", "mountPath": "/data"}}
		}
		containers = append(containers, c)
	}
	spec := map[string]any{
		"nodeName":                      "localhost", // there is no scheduler
		"terminationGracePeriodSeconds": 2,
		"containers":                    containers,
	}
	if p.claim != "" {
		spec["volumes"] = []any{map[string]any{
			"name": "data", "persistentVolumeClaim": map[string]any{"claimName": p.claim},
		}}
	}
	labels := map[string]string{"e2e": p.name}
	for k, v := range p.labels {
		labels[k] = v
	}
	return map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{
			"namespace": p.namespace, "name": p.name, "annotations": p.annotations, "labels": labels,
		},
		"spec": spec,
	}
}

// startPods creates the pods and waits until every container of each is running.
func startPods(t *testing.T, pods ...testPod) {
	t.Helper()
	objects := make([]map[string]any, len(pods))
	for i, p := range pods {
		if len(p.containers) == 0 {
			pods[i].containers = []string{"app"}
		}
		objects[i] = pods[i].object()
	}
	applyObjects(t, objects...)
	for _, p := range pods {
		waitRunning(t, p.namespace, p.name)
	}
}

func waitRunning(t *testing.T, namespace, pod string) {
	t.Helper()
	if _, err := run(2*time.Minute, "", "kubectl", "-n", namespace, "wait", "--for=condition=Ready",
		"pod/"+pod, "--timeout=110s"); err != nil {
		describe, _ := run(time.Minute, "", "kubectl", "-n", namespace, "describe", "pod", pod)
		t.Fatalf("pod %s/%s not ready: %v\n%s", namespace, pod, err, describe)
	}
}

// hostPathVolume creates a PersistentVolume on a folder of the node, bound in advance to the
// claim namespace/claim (which the caller creates, or volumeClaim does), deleted with the test.
// Returns the PV's name.
func hostPathVolume(t *testing.T, namespace, claim string) string {
	t.Helper()
	pv := "e2e-" + namespace + "-" + claim
	dir := filepath.Join(clusterDir, "state", "volumes", pv)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	_, _ = run(time.Minute, "", "kubectl", "delete", "pv", pv, "--ignore-not-found")
	applyObjects(t, map[string]any{
		"apiVersion": "v1", "kind": "PersistentVolume",
		"metadata": map[string]any{"name": pv},
		"spec": map[string]any{
			"capacity":                      map[string]any{"storage": "50Mi"},
			"accessModes":                   []string{"ReadWriteOnce"},
			"persistentVolumeReclaimPolicy": "Retain",
			"storageClassName":              "local-hostpath",
			"claimRef":                      map[string]any{"namespace": namespace, "name": claim},
			"hostPath":                      map[string]any{"path": dir, "type": "Directory"},
		},
	})
	t.Cleanup(func() {
		_, _ = run(time.Minute, "", "kubectl", "delete", "pv", pv, "--wait=false")
		_ = os.RemoveAll(dir)
	})
	return pv
}

// volumeClaim creates the claim namespace/claim on a new host-path PersistentVolume; returns the
// PV's name.
func volumeClaim(t *testing.T, namespace, claim string) string {
	t.Helper()
	pv := hostPathVolume(t, namespace, claim)
	applyObjects(t, map[string]any{
		"apiVersion": "v1", "kind": "PersistentVolumeClaim",
		"metadata": map[string]any{"namespace": namespace, "name": claim},
		"spec": map[string]any{
			"storageClassName": "local-hostpath",
			"accessModes":      []string{"ReadWriteOnce"},
			"volumeName":       pv,
			"resources":        map[string]any{"requests": map[string]any{"storage": "50Mi"}},
		},
	})
	return pv
}

// execIn runs a command in a container, as `kubectl exec` does, and returns its stdout.
func execIn(t *testing.T, namespace, pod, container string, command ...string) string {
	t.Helper()
	args := append([]string{"-n", namespace, "exec", pod, "-c", container, "--"}, command...)
	return kubectl(t, args...)
}

// fileIn reads a file in a container; "" when it does not exist.
func fileIn(t *testing.T, namespace, pod, container, path string) string {
	t.Helper()
	return execIn(t, namespace, pod, container, "/bin/sh", "-c", "cat "+path+" 2>/dev/null || true")
}

// processesIn lists the command lines of a container's processes (busybox ps).
func processesIn(t *testing.T, namespace, pod, container string) []string {
	t.Helper()
	var commands []string
	for _, line := range strings.Split(execIn(t, namespace, pod, container, "ps", "-o", "args"), "\n")[1:] {
		if line = strings.TrimSpace(line); line != "" {
			commands = append(commands, line)
		}
	}
	return commands
}

// appendLine is a hook command: the shell appends text to a file in the container.
func appendLine(text, file string) string {
	return fmt.Sprintf(`["/bin/sh", "-c", "echo %s >> %s"]`, text, file)
}

// podEvents returns `kubectl get events` for one pod: "reason: message" per event.
func podEvents(t *testing.T, namespace, pod string) []string {
	t.Helper()
	out := kubectl(t, "-n", namespace, "get", "events", "--field-selector", "involvedObject.name="+pod,
		"-o", `jsonpath={range .items[*]}{.reason}: {.message}{"\n"}{end}`)
	return strings.Split(strings.TrimSpace(out), "\n")
}
