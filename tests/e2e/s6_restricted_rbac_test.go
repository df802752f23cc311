package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Scenario 6: the plugin with an identity bound only by plugin-manifest/rbac.yaml (the service
// account velero/velero, nothing else) runs its hooks; with an identity that lacks pods/exec, the
// hook's error names the permission that is missing.
//
// Velero itself keeps the admin identity (it backs up everything): the plugin folder given to
// velero server holds a wrapper that starts the real plugin with Velero's arguments but another
// --kubeconfig, so only the plugin is restricted.
func TestPluginWorksWithOnlyTheManifestsRBAC(t *testing.T) {
	ns := namespace(t, "e2e-rbac")
	volumeClaim(t, ns, "data")
	startPods(t, testPod{namespace: ns, name: "db", claim: "data", annotations: map[string]string{
		"pre.hook.backup.quiesce.dev/command":  appendLine("frozen", "/data/marker"),
		"post.hook.backup.quiesce.dev/command": appendLine("thawed", "/data/marker"),
	}})

	apply(t, kubectl(t, "-n", "velero", "create", "serviceaccount", "velero", "--dry-run=client", "-o", "yaml"))
	manifest := filepath.Join(repoDir, "plugin-manifest", "rbac.yaml")
	kubectl(t, "apply", "-f", manifest)
	t.Cleanup(func() {
		_, _ = run(time.Minute, "", "kubectl", "delete", "-f", manifest, "--ignore-not-found")
		_, _ = run(time.Minute, "", "kubectl", "-n", "velero", "delete", "serviceaccount", "velero", "--ignore-not-found")
	})
	pluginAs(t, "velero")

	b := createBackup(t, "e2e-rbac", ns)
	if b.phase != "Completed" || b.errors != 0 {
		t.Errorf("backup: phase %s with %d errors, want Completed\n%s", b.phase, b.errors, b.describe)
	}
	logs := backupLogs(t, b.name)
	for _, line := range logs {
		if line.get("pluginName") == "velero-plugin-quiesce" && line.get("level") != "info" && line.get("level") != "debug" {
			t.Errorf("the plugin logged at %s with rbac.yaml's permissions: %s", line.get("level"), line.raw)
		}
	}
	if got := fileIn(t, ns, "db", "app", "/data/marker"); got != "frozen\nthawed\n" {
		t.Errorf("marker file: %q, want the pre hook's line, then the post hook's\n%s", got, rawLines(hookLines(logs)))
	}
}

func TestMissingExecPermissionIsNamed(t *testing.T) {
	ns := namespace(t, "e2e-rbac-no-exec")
	startPods(t, testPod{namespace: ns, name: "db", annotations: map[string]string{
		"pre.hook.backup.quiesce.dev/command": appendLine("frozen", "/tmp/marker"),
	}})
	// rbac.yaml's grants without pods/exec.
	apply(t, `
apiVersion: v1
kind: ServiceAccount
metadata: {name: e2e-no-exec, namespace: velero}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: e2e-no-exec}
rules:
- {apiGroups: [""], resources: [pods], verbs: [get, list]}
- {apiGroups: [""], resources: [events], verbs: [create]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: e2e-no-exec}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: e2e-no-exec}
subjects: [{kind: ServiceAccount, name: e2e-no-exec, namespace: velero}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: e2e-no-exec, namespace: velero}
rules:
- {apiGroups: [""], resources: [configmaps], verbs: [list]}
- {apiGroups: [velero.io], resources: [podvolumebackups], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: e2e-no-exec, namespace: velero}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: e2e-no-exec}
subjects: [{kind: ServiceAccount, name: e2e-no-exec, namespace: velero}]
`)
	t.Cleanup(func() {
		for _, object := range []string{"clusterrolebinding/e2e-no-exec", "clusterrole/e2e-no-exec"} {
			_, _ = run(time.Minute, "", "kubectl", "delete", object, "--ignore-not-found")
		}
		_, _ = run(time.Minute, "", "kubectl", "-n", "velero", "delete", "serviceaccount/e2e-no-exec",
			"rolebinding/e2e-no-exec", "role/e2e-no-exec", "--ignore-not-found")
	})
	pluginAs(t, "e2e-no-exec")

	b := createBackup(t, "e2e-rbac-no-exec", ns)
	if b.phase != "PartiallyFailed" {
		t.Errorf("backup: phase %s, want PartiallyFailed (the Fail pre hook could not run)\n%s", b.phase, b.describe)
	}
	logs := backupLogs(t, b.name)
	failed := find(logs, 0, "msg", "Error executing hook", "hookPhase", "pre", "pod", "db")
	if failed < 0 {
		t.Fatalf("no error line for the refused pre hook:\n%s", rawLines(hookLines(logs)))
	}
	reason := logs[failed].get("error")
	t.Logf("the refused hook's error: %s", reason)
	for _, want := range []string{"forbidden", "pods/exec", "system:serviceaccount:velero:e2e-no-exec"} {
		if !strings.Contains(reason, want) {
			t.Errorf("the hook's error does not say %q: %q", want, reason)
		}
	}
	if strings.HasSuffix(strings.TrimSpace(reason), "forbidden:") {
		t.Errorf("the hook's error ends without the API server's reason: %q", reason)
	}
	if got := fileIn(t, ns, "db", "app", "/tmp/marker"); got != "" {
		t.Errorf("the hook ran without pods/exec: marker %q", got)
	}
}

// pluginAs restarts velero server with a plugin folder in which quiesce runs as the service
// account velero/NAME (a token in a kubeconfig of its own); the stack's velero server is
// restored when the test ends.
func pluginAs(t *testing.T, serviceAccount string) {
	t.Helper()
	token := strings.TrimSpace(kubectl(t, "-n", "velero", "create", "token", serviceAccount, "--duration=1h"))
	dir := t.TempDir()
	config := filepath.Join(dir, "kubeconfig")
	for _, args := range [][]string{
		{"set-cluster", "quiesce", "--server=https://127.0.0.1:6443", "--embed-certs",
			"--certificate-authority=" + filepath.Join(clusterDir, "pki", "ca.crt")},
		{"set-credentials", serviceAccount, "--token=" + token},
		{"set-context", "quiesce", "--cluster=quiesce", "--user=" + serviceAccount},
		{"use-context", "quiesce"},
	} {
		kubectl(t, append([]string{"--kubeconfig", config, "config"}, args...)...)
	}
	plugins := filepath.Join(dir, "plugins")
	if err := os.Mkdir(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	stackPlugins := filepath.Join(clusterDir, "plugins")
	if err := os.Symlink(filepath.Join(stackPlugins, "velero-plugin-for-aws"), filepath.Join(plugins, "velero-plugin-for-aws")); err != nil {
		t.Fatal(err)
	}
	// Velero passes its own arguments to every plugin, --kubeconfig=… included: swap that one.
	// exec -a keeps the wrapper's path as the plugin's argv[0]: a plugin tells Velero which
	// command to run it with (its argv[0]), and Velero would otherwise run the plugin directly.
	wrapper := fmt.Sprintf(`#!/bin/bash
# quiesce as the service account velero/%s: Velero's arguments, another --kubeconfig.
for arg do
	shift
	case $arg in --kubeconfig=*) arg=--kubeconfig=%s ;; esac
	set -- "$@" "$arg"
done
KUBECONFIG=%s exec -a "$0" %s "$@"
`, serviceAccount, config, config, filepath.Join(stackPlugins, "velero-plugin-quiesce"))
	if err := os.WriteFile(filepath.Join(plugins, "velero-plugin-quiesce"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	restartVelero(t, "VELERO_PLUGIN_DIR="+plugins)
	t.Cleanup(func() { restartVelero(t) })
}
