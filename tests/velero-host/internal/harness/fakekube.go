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
// Kubernetes API server, which serves pods (get, list, create) and
// pods/exec over WebSocket, running the command on this machine. Level 2
// points the plugin processes at it, so quiesce's hooks really execute.
type FakeKube struct {
	URL        string
	Kubeconfig string
	cmd        *exec.Cmd
	stderr     *bytes.Buffer
	waited     chan struct{}
}

// StartFakeKube starts fake-kube with an empty store (pods are added with
// CreatePod) and writes its kubeconfig under dir.
func StartFakeKube(dir string) (*FakeKube, error) {
	bin, err := fakeKubeBinary()
	if err != nil {
		return nil, err
	}
	k := &FakeKube{Kubeconfig: filepath.Join(dir, "fake-kube.kubeconfig"), stderr: &bytes.Buffer{}, waited: make(chan struct{})}
	workRoot := filepath.Join(dir, "fake-kube-work")
	if err := os.MkdirAll(workRoot, 0o755); err != nil {
		return nil, err
	}
	k.cmd = exec.Command(bin, "--port", "0", "--work-root", workRoot, "--kubeconfig-out", k.Kubeconfig)
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
	b, err := json.Marshal(pod)
	if err != nil {
		return err
	}
	var meta struct {
		Metadata struct{ Namespace string } `json:"metadata"`
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		return err
	}
	url := fmt.Sprintf("%s/api/v1/namespaces/%s/pods", k.URL, meta.Metadata.Namespace)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, body)
	}
	return nil
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
