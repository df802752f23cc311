package e2e

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Scenario 7: velero server is stopped with SIGTERM in the middle of a backup while a pod is
// frozen — its freeze command has run, and Velero is still busy (the pre hook goes on sleeping, a
// stand-in for a slow snapshot). The pod must be thawed: its post hook writes the marker file.
//
// The SIGTERM goes to velero server's process group — velero server and the plugin processes it
// started — as Ctrl-C in a terminal or `systemctl stop` deliver it. (In a pod, Kubernetes signals
// only Velero, PID 1; when it exits the kernel kills its plugins: see the README.)
func TestSigtermMidBackupThawsTheFrozenPod(t *testing.T) {
	ns := namespace(t, "e2e-sigterm")
	startPods(t, testPod{namespace: ns, name: "db", annotations: map[string]string{
		"pre.hook.backup.quiesce.dev/command":  `["/bin/sh", "-c", "echo frozen >> /tmp/marker; sleep 120"]`,
		"pre.hook.backup.quiesce.dev/timeout":  "5m",
		"post.hook.backup.quiesce.dev/command": appendLine("thawed", "/tmp/marker"),
	}})
	deleteBackup(t, "e2e-sigterm")
	t.Cleanup(func() { restartVelero(t) }) // the stack's velero server, whatever happens below
	velero(t, "backup", "create", "e2e-sigterm", "--include-namespaces", ns)

	eventually(t, "the pod is frozen", 90*time.Second, func() error {
		if got := fileIn(t, ns, "db", "app", "/tmp/marker"); got != "frozen\n" {
			return errors.New("marker: " + strconv.Quote(got))
		}
		return nil
	})
	pid := veleroPID(t)
	if err := syscall.Kill(-pid, syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM to velero server's process group %d: %v", pid, err)
	}
	signalled := time.Now()
	eventually(t, "velero server exits", 60*time.Second, func() error {
		if syscall.Kill(pid, 0) == nil {
			return errors.New("still running")
		}
		return nil
	})
	t.Logf("velero server exited %s after SIGTERM", time.Since(signalled).Round(time.Millisecond))

	eventually(t, "the pod is thawed", 30*time.Second, func() error {
		if got := fileIn(t, ns, "db", "app", "/tmp/marker"); got != "frozen\nthawed\n" {
			return errors.New("marker: " + strconv.Quote(got))
		}
		return nil
	})
	t.Logf("thawed %s after SIGTERM", time.Since(signalled).Round(time.Millisecond))
}

// veleroPID is velero server's PID, from the stack's PID file.
func veleroPID(t *testing.T) int {
	t.Helper()
	text, err := os.ReadFile(filepath.Join(clusterDir, "run", "velero.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(text)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}
