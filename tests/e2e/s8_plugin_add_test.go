package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// Scenario 8: `velero plugin add` for real. Velero runs in the cluster as the Deployment
// `velero install` writes (a locally built Velero image; host network and
// KUBERNETES_SERVICE_HOST=127.0.0.1, as this cluster has no kube-proxy), and
// `velero plugin add localhost/velero-plugin-quiesce:<version>` — the image of `make image`,
// imported into containerd — adds the init container that copies the plugin into Velero's
// /plugins. Velero must list the plugin, and a backup must run the hooks with the in-cluster
// service account: Velero's Deployment has no kubeconfig, neither flag nor variable.
func TestVeleroPluginAddInTheCluster(t *testing.T) {
	// Imported into containerd by scripts/cluster/e2e.sh.
	image := os.Getenv("E2E_QUIESCE_IMAGE") // localhost/velero-plugin-quiesce:<version>
	veleroImage, awsImage := os.Getenv("E2E_VELERO_IMAGE"), os.Getenv("E2E_AWS_PLUGIN_IMAGE")
	if image == "" || veleroImage == "" || awsImage == "" {
		t.Fatal("E2E_QUIESCE_IMAGE, E2E_VELERO_IMAGE and E2E_AWS_PLUGIN_IMAGE must be set (scripts/cluster/e2e.sh does)")
	}
	ns := namespace(t, "e2e-in-cluster")
	startPods(t, testPod{namespace: ns, name: "db", annotations: map[string]string{
		"pre.hook.backup.quiesce.dev/command":  appendLine("frozen", "/tmp/marker"),
		"post.hook.backup.quiesce.dev/command": appendLine("thawed", "/tmp/marker"),
	}})

	stopVelero(t)
	t.Cleanup(func() { restartVelero(t) })
	t.Cleanup(func() { removeVeleroDeployment(t) })
	installVeleroDeployment(t, veleroImage, awsImage)

	out := velero(t, "plugin", "add", image, "--confirm")
	t.Logf("velero plugin add %s: %s", image, strings.TrimSpace(out))
	kubectl(t, "-n", "velero", "rollout", "status", "deployment/velero", "--timeout=180s")
	initContainers := kubectl(t, "-n", "velero", "get", "deployment", "velero", "-o",
		"jsonpath={range .spec.template.spec.initContainers[*]}{.image}{\"\\n\"}{end}")
	if !strings.Contains(initContainers, image) {
		t.Fatalf("velero plugin add did not add an init container with %s:\n%s", image, initContainers)
	}

	var plugins string
	eventually(t, "velero plugin get lists quiesce.dev/pod-hooks", 3*time.Minute, func() error {
		out, err := run(time.Minute, "", "velero", "plugin", "get")
		plugins = out
		if err != nil || !strings.Contains(out, "quiesce.dev/pod-hooks") {
			return errors.New("velero plugin get:\n" + out + errString(err))
		}
		return nil
	})
	for _, kind := range []string{"BackupItemActionV2", "ItemBlockAction"} {
		if !strings.Contains(plugins, kind) {
			t.Errorf("velero plugin get does not list quiesce.dev/pod-hooks as %s:\n%s", kind, plugins)
		}
	}

	b := createBackup(t, "e2e-in-cluster", ns)
	if b.phase != "Completed" || b.errors != 0 {
		t.Errorf("backup: phase %s with %d errors, want Completed\n%s", b.phase, b.errors, b.describe)
	}
	hooks := hookLines(backupLogs(t, b.name))
	t.Logf("velero backup logs %s | grep hookCommand:\n%s", b.name, rawLines(hooks))
	if got := fileIn(t, ns, "db", "app", "/tmp/marker"); got != "frozen\nthawed\n" {
		t.Errorf("marker file: %q, want the pre hook's line, then the post hook's", got)
	}
}

// installVeleroDeployment applies what `velero install` writes, adapted to this cluster: the
// pod on the one node (no scheduler), on the host network with the API server at 127.0.0.1
// (no kube-proxy for the kubernetes Service), metrics on loopback, no resource limits, and
// replaced rather than rolled (one host network, one metrics port).
func installVeleroDeployment(t *testing.T, veleroImage, awsImage string) {
	t.Helper()
	credentials := writeFile(t, "credentials", "[default]\naws_access_key_id = quiesce\naws_secret_access_key = quiesce-secret\n", 0o600)
	manifest := velero(t, "install", "--dry-run", "-o", "json", "--namespace", "velero",
		"--image", veleroImage, "--plugins", awsImage, "--provider", "aws", "--bucket", "velero",
		"--secret-file", credentials, "--use-volume-snapshots=false",
		"--backup-location-config", "region=us-east-1,s3ForcePathStyle=true,s3Url=http://127.0.0.1:9000",
		"--velero-pod-cpu-limit=0", "--velero-pod-mem-limit=0")
	var list struct {
		Items []map[string]any `json:"items"`
	}
	if err := json.Unmarshal([]byte(manifest), &list); err != nil {
		t.Fatalf("velero install --dry-run -o json: %v\n%s", err, manifest)
	}
	found := false
	for _, item := range list.Items {
		if item["kind"] != "Deployment" {
			continue
		}
		found = true
		// Two Velero pods on the host network would both want the metrics port: the old one goes
		// first (velero plugin add changes the pod template).
		dig(item, "spec")["strategy"] = map[string]any{"type": "Recreate"}
		spec := dig(item, "spec", "template", "spec")
		spec["nodeName"] = "localhost"
		spec["hostNetwork"] = true
		spec["dnsPolicy"] = "ClusterFirstWithHostNet"
		for _, c := range spec["containers"].([]any) {
			container := c.(map[string]any)
			if container["name"] != "velero" {
				continue
			}
			env, _ := container["env"].([]any)
			container["env"] = append(env,
				map[string]any{"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
				map[string]any{"name": "KUBERNETES_SERVICE_PORT", "value": "6443"})
			args, _ := container["args"].([]any)
			container["args"] = append(args, "--metrics-address=127.0.0.1:8085")
		}
	}
	if !found {
		t.Fatalf("velero install --dry-run wrote no Deployment:\n%s", manifest)
	}
	items := make([]map[string]any, 0, len(list.Items))
	for _, item := range list.Items {
		if item["kind"] != "CustomResourceDefinition" && item["kind"] != "Namespace" {
			items = append(items, item)
		}
	}
	applyObjects(t, items...)
	kubectl(t, "-n", "velero", "rollout", "status", "deployment/velero", "--timeout=180s")
}

// removeVeleroDeployment deletes the in-cluster Velero and what `velero install` created for it,
// waiting for its pod to be gone (it holds the metrics port the host's velero server needs).
func removeVeleroDeployment(t *testing.T) {
	_, _ = run(2*time.Minute, "", "kubectl", "-n", "velero", "delete", "deployment", "velero", "--ignore-not-found", "--wait=true")
	_, _ = run(2*time.Minute, "", "kubectl", "-n", "velero", "wait", "--for=delete", "pod", "-l", "deploy=velero", "--timeout=110s")
	_, _ = run(time.Minute, "", "kubectl", "delete", "clusterrolebinding", "velero", "--ignore-not-found")
	_, _ = run(time.Minute, "", "kubectl", "-n", "velero", "delete", "secret/cloud-credentials", "serviceaccount/velero", "--ignore-not-found")
}

// dig walks nested maps of a decoded JSON object.
func dig(object map[string]any, path ...string) map[string]any {
	for _, key := range path {
		object = object[key].(map[string]any)
	}
	return object
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
