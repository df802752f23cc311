package harness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// EnvFakeKubeBin is an absolute path to an already built fake-kube binary
// (the repository's Rust fake API server). If unset, StartFakeKube runs
// `cargo build -p fake-kube --bin fake-kube` in the repository root.
const EnvFakeKubeBin = "QUIESCE_FAKE_KUBE_BIN"

// FakeKube is a running fake-kube process: the repository's fake
// Kubernetes API server, which serves pods, claims, volumes, the CSI
// snapshot API and pods/exec over WebSocket, running the command on this
// machine, and (with --snapshot-latency) a simulated snapshot controller.
// Level 2 points the plugin processes and Velero's CSI actions at it, so
// quiesce's hooks really execute and Velero's VolumeSnapshots are really cut.
type FakeKube struct {
	URL        string
	Kubeconfig string
	cmd        *exec.Cmd
	stderr     *bytes.Buffer
	waited     chan struct{}
}

// StartFakeKube starts fake-kube with an empty store (objects are added with
// Create) and writes its kubeconfig under dir; args are more fake-kube flags
// (e.g. "--snapshot-latency", "200ms").
func StartFakeKube(dir string, args ...string) (*FakeKube, error) {
	bin, err := fakeKubeBinary()
	if err != nil {
		return nil, err
	}
	k := &FakeKube{Kubeconfig: filepath.Join(dir, "fake-kube.kubeconfig"), stderr: &bytes.Buffer{}, waited: make(chan struct{})}
	workRoot := filepath.Join(dir, "fake-kube-work")
	if err := os.MkdirAll(workRoot, 0o755); err != nil {
		return nil, err
	}
	k.cmd = exec.Command(bin, append([]string{"--port", "0", "--work-root", workRoot, "--kubeconfig-out", k.Kubeconfig}, args...)...)
	k.cmd.Stderr = &lockedWriter{w: k.stderr}
	out, err := k.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := k.cmd.Start(); err != nil {
		return nil, err
	}
	urlCh := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		urlCh <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() { _ = k.cmd.Wait(); close(k.waited) }()
	select {
	case k.URL = <-urlCh:
	case <-time.After(30 * time.Second):
	}
	if !strings.HasPrefix(k.URL, "http") {
		k.Close()
		return nil, fmt.Errorf("fake-kube did not print its URL (got %q); stderr:\n%s", k.URL, k.Stderr())
	}
	return k, nil
}

// Stderr is what fake-kube wrote to its stderr so far.
func (k *FakeKube) Stderr() string {
	if lw, ok := k.cmd.Stderr.(*lockedWriter); ok {
		lw.mu.Lock()
		defer lw.mu.Unlock()
	}
	return k.stderr.String()
}

// Close stops fake-kube with SIGTERM (SIGKILL after 5 s).
func (k *FakeKube) Close() {
	if k == nil || k.cmd == nil || k.cmd.Process == nil {
		return
	}
	_ = k.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-k.waited:
	case <-time.After(5 * time.Second):
		_ = k.cmd.Process.Kill()
		<-k.waited
	}
}

// CreatePod stores a pod (any JSON-serialisable object, status included).
func (k *FakeKube) CreatePod(pod any) error {
	var meta struct {
		Metadata struct{ Namespace string } `json:"metadata"`
	}
	b, err := json.Marshal(pod)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return err
	}
	return k.Create("/api/v1/namespaces/"+meta.Metadata.Namespace+"/pods", pod)
}

// Create POSTs obj (any JSON-serialisable object, status included) to the
// collection at path, e.g. /api/v1/persistentvolumes; fake-kube fills in
// apiVersion and kind from the path.
func (k *FakeKube) Create(path string, obj any) error {
	b, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	resp, err := http.Post(k.URL+path, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s: %s", path, resp.Status, body)
	}
	return nil
}

// Get reads the object at path (or a list, for a collection) into out.
func (k *FakeKube) Get(path string, out any) error {
	resp, err := http.Get(k.URL + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	return json.Unmarshal(body, out)
}

// KubeEvent is one event of fake-kube's timeline (GET /fake-kube/timeline):
// an exec's start or end, a marker, or a step of the simulated snapshot
// controller.
type KubeEvent struct {
	Seq      int    `json:"seq"`
	AtMicros int64  `json:"atMicros"`
	Type     string `json:"type"` // ExecStarted, ExecFinished, Marker, Snapshot
	Exec     *struct {
		Namespace string   `json:"namespace"`
		Pod       string   `json:"pod"`
		Container string   `json:"container"`
		Argv      []string `json:"argv"`
	} `json:"exec"`
	Label    string `json:"label"`
	Step     string `json:"step"` // Requested, Cut, Failed
	Snapshot *struct {
		Kind      string   `json:"kind"` // VolumeSnapshot, VolumeGroupSnapshot
		Namespace string   `json:"namespace"`
		Name      string   `json:"name"`
		Claims    []string `json:"claims"`
	} `json:"snapshot"`
}

// Namespace is the namespace of the exec or snapshot, "" for a marker.
func (e KubeEvent) Namespace() string {
	switch {
	case e.Exec != nil:
		return e.Exec.Namespace
	case e.Snapshot != nil:
		return e.Snapshot.Namespace
	}
	return ""
}

func (e KubeEvent) String() string {
	switch {
	case e.Exec != nil:
		return fmt.Sprintf("%d %s %s/%s %q", e.Seq, e.Type, e.Exec.Namespace, e.Exec.Pod, e.Exec.Argv)
	case e.Snapshot != nil:
		return fmt.Sprintf("%d %s %s %s %s/%s %v", e.Seq, e.Type, e.Step, e.Snapshot.Kind, e.Snapshot.Namespace, e.Snapshot.Name, e.Snapshot.Claims)
	}
	return fmt.Sprintf("%d %s %s", e.Seq, e.Type, e.Label)
}

// Timeline is fake-kube's timeline so far, in order.
func (k *FakeKube) Timeline() ([]KubeEvent, error) {
	var body struct {
		Events []KubeEvent `json:"events"`
	}
	err := k.Get("/fake-kube/timeline", &body)
	return body.Events, err
}

func fakeKubeBinary() (string, error) {
	if bin := os.Getenv(EnvFakeKubeBin); bin != "" {
		if !filepath.IsAbs(bin) {
			return "", fmt.Errorf("%s must be an absolute path, got %q", EnvFakeKubeBin, bin)
		}
		return bin, nil
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	repo := filepath.Dir(filepath.Dir(root))
	cmd := exec.Command("cargo", "build", "-p", "fake-kube", "--bin", "fake-kube")
	cmd.Dir = repo
	if err := runLogged(cmd); err != nil {
		return "", err
	}
	target := os.Getenv("CARGO_TARGET_DIR")
	if target == "" {
		target = filepath.Join(repo, "target")
	} else if !filepath.IsAbs(target) {
		target = filepath.Join(repo, target)
	}
	return filepath.Join(target, "debug", "fake-kube"), nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
