// Package e2e is the end-to-end suite on the real cluster of `make cluster-up`: a real
// kube-apiserver, kubelet, containerd and runc, gofakes3, and `velero server` with the aws plugin
// and the quiesce release binary. It asserts what a user sees — `velero backup describe`, `logs`
// and `download`, `kubectl get events`, files and processes in containers — by running the same
// `kubectl` and `velero` commands a user would. Run it with `make e2e`
// (scripts/cluster/e2e.sh), which starts the stack when needed; the scenarios are those of
// issue 14 §3, one file each (s1_…_test.go to s8_…_test.go), run in that order.
//
// Only the standard library: the suite drives the CLIs, it does not link Kubernetes or Velero.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The stack, as scripts/cluster/e2e.sh describes it in the environment.
var (
	repoDir    = os.Getenv("E2E_REPO")        // the checkout
	clusterDir = os.Getenv("E2E_CLUSTER_DIR") // .cluster: pki, state, logs, plugins
	kubeconfig = os.Getenv("KUBECONFIG")      // admin (system:masters)
)

func TestMain(m *testing.M) {
	if repoDir == "" || clusterDir == "" || kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "e2e: run through `make e2e` (scripts/cluster/e2e.sh): it starts the cluster and sets E2E_REPO, E2E_CLUSTER_DIR and KUBECONFIG")
		os.Exit(2)
	}
	os.Exit(m.Run())
}

// run runs a command with a deadline and returns its stdout; err carries stderr and the exit status.
func run(timeout time.Duration, stdin string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %s", timeout)
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// kubectl runs kubectl as the cluster's admin and fails the test on error.
func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run(2*time.Minute, "", "kubectl", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// apply applies manifests (YAML or JSON) given as text.
func apply(t *testing.T, manifest string) {
	t.Helper()
	if _, err := run(time.Minute, manifest, "kubectl", "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
}

// applyObjects applies Go values (maps) as a v1 List.
func applyObjects(t *testing.T, objects ...map[string]any) {
	t.Helper()
	items := make([]any, len(objects))
	for i, o := range objects {
		items[i] = o
	}
	text, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": items})
	if err != nil {
		t.Fatal(err)
	}
	apply(t, string(text))
}

// eventually polls check every half second until it returns nil or the timeout passes.
func eventually(t *testing.T, what string, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s: %v", what, timeout, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// namespace creates a namespace for one scenario, deleted when the test ends (without waiting).
func namespace(t *testing.T, name string) string {
	t.Helper()
	if _, err := run(2*time.Minute, "", "kubectl", "delete", "namespace", name, "--ignore-not-found", "--wait=true"); err != nil {
		t.Fatal(err)
	}
	kubectl(t, "create", "namespace", name)
	t.Cleanup(func() {
		_, _ = run(time.Minute, "", "kubectl", "delete", "namespace", name, "--wait=false")
	})
	return name
}

// scriptsDir holds the stack's scripts (up.sh velero restarts velero server).
func scriptsDir() string { return filepath.Join(repoDir, "scripts", "cluster") }

// restartVelero restarts velero server on the host with extra environment for up.sh
// (VELERO_PLUGIN_DIR, VELERO_SERVER_ARGS); with none, the stack's default.
func restartVelero(t *testing.T, env ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(scriptsDir(), "up.sh"), "velero")
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("restarting velero server: %v\n%s", err, out)
	}
}

// stopVelero stops velero server on the host (by its PID file, through down.sh).
func stopVelero(t *testing.T) {
	t.Helper()
	if out, err := exec.Command(filepath.Join(scriptsDir(), "down.sh"), "velero").CombinedOutput(); err != nil {
		t.Fatalf("stopping velero server: %v\n%s", err, out)
	}
}

// writeFile writes a file under the test's temporary folder and returns its path.
func writeFile(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return path
}
