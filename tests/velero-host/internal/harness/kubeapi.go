package harness

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// KubeAPI is a minimal stand-in for the Kubernetes API server the plugin
// reaches from inside the Velero pod (it reads its ConfigMap and, for hooks,
// pods and PodVolumeBackups). Level 1 has no cluster: every list is empty,
// every get is 404, and each request is recorded so tests can see which API
// calls the plugin makes. Plugin processes find it through KUBECONFIG.
type KubeAPI struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []string
}

var kubeAPI *KubeAPI

// Kube returns the fake API server started by Main.
func Kube() *KubeAPI { return kubeAPI }

func startKubeAPI(dir string) (*KubeAPI, error) {
	k := &KubeAPI{}
	k.srv = httptest.NewServer(http.HandlerFunc(k.serve))
	kubeconfig := filepath.Join(dir, "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: %s
contexts:
- name: fake
  context:
    cluster: fake
    user: velero
    namespace: velero
current-context: fake
users:
- name: velero
  user:
    token: harness-token
`, k.srv.URL)
	if err := os.WriteFile(kubeconfig, []byte(cfg), 0o600); err != nil {
		k.srv.Close()
		return nil, err
	}
	// Inherited by every plugin process, like the Velero pod's environment.
	os.Setenv("KUBECONFIG", kubeconfig)
	os.Setenv("VELERO_NAMESPACE", "velero")
	os.Unsetenv("KUBERNETES_SERVICE_HOST")
	os.Unsetenv("KUBERNETES_SERVICE_PORT")
	return k, nil
}

// Close stops the server.
func (k *KubeAPI) Close() { k.srv.Close() }

// Requests returns "METHOD path?query" for every request so far.
func (k *KubeAPI) Requests() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.requests...)
}

// Len is the number of requests so far (a mark for Since).
func (k *KubeAPI) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.requests)
}

// Since returns the requests after mark.
func (k *KubeAPI) Since(mark int) []string {
	r := k.Requests()
	if mark > len(r) {
		return nil
	}
	return r[mark:]
}

func (k *KubeAPI) serve(w http.ResponseWriter, r *http.Request) {
	line := r.Method + " " + r.URL.Path
	if r.URL.RawQuery != "" {
		line += "?" + r.URL.RawQuery
	}
	k.mu.Lock()
	k.requests = append(k.requests, line)
	k.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	// Lists: /api/v1/namespaces/{ns}/{resource} or
	// /apis/{group}/{version}/namespaces/{ns}/{resource}.
	isList := r.Method == http.MethodGet && r.URL.Query().Get("watch") == "" &&
		((len(parts) == 5 && parts[0] == "api") || (len(parts) == 6 && parts[0] == "apis")) &&
		parts[len(parts)-3] == "namespaces"
	if isList {
		apiVersion := "v1"
		if parts[0] == "apis" {
			apiVersion = parts[1] + "/" + parts[2]
		}
		kind := listKind(parts[len(parts)-1])
		_ = json.NewEncoder(w).Encode(map[string]any{
			"kind": kind, "apiVersion": apiVersion,
			"metadata": map[string]any{"resourceVersion": "1"},
			"items":    []any{},
		})
		return
	}
	w.WriteHeader(http.StatusNotFound)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{},
		"status": "Failure", "reason": "NotFound", "code": 404,
		"message": fmt.Sprintf("the harness's fake API server has nothing at %s", r.URL.Path),
	})
}

func listKind(resource string) string {
	switch resource {
	case "configmaps":
		return "ConfigMapList"
	case "pods":
		return "PodList"
	case "podvolumebackups":
		return "PodVolumeBackupList"
	default:
		return "List"
	}
}
