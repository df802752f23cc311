package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
	corev1api "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	kscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	velerov1api "github.com/vmware-tanzu/velero/pkg/apis/velero/v1"
	"github.com/vmware-tanzu/velero/pkg/podexec"
)

// velerosDefaultHookTimeout is the timeout Velero's executor gives a hook
// that names none (pkg/podexec, defaultTimeout).
const velerosDefaultHookTimeout = 30 * time.Second

// webSocketPodCommandExecutor runs Velero's own exec hooks (the
// `pre/post.hook.backup.velero.io/*` annotations, Backup.spec.hooks) for
// Velero's backup engine. Velero's executor speaks SPDY only, which
// fake-kube does not; this one follows Velero's ExecutePodCommand step by
// step — default container, on-error and timeout defaults, the same log
// lines and errors — over client-go's WebSocket executor.
type webSocketPodCommandExecutor struct {
	config *rest.Config
	client kubernetes.Interface
}

// NewWebSocketPodCommandExecutor is a podexec.PodCommandExecutor for
// backup.NewKubernetesBackupper that execs through config over WebSocket.
func NewWebSocketPodCommandExecutor(config *rest.Config) (podexec.PodCommandExecutor, error) {
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return nil, err
	}
	return &webSocketPodCommandExecutor{config: config, client: client}, nil
}

func (e *webSocketPodCommandExecutor) ExecutePodCommand(log logrus.FieldLogger, item map[string]any, namespace, name, hookName string, hook *velerov1api.ExecHook) error {
	if item == nil || namespace == "" || name == "" || hookName == "" || hook == nil {
		return errors.New("item, namespace, name, hookName and hook are required")
	}
	local := *hook
	pod := new(corev1api.Pod)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(item, pod); err != nil {
		return err
	}
	if local.Container == "" {
		if len(pod.Spec.Containers) < 1 {
			return errors.New("need at least 1 container")
		}
		local.Container = pod.Spec.Containers[0].Name
	}
	if len(local.Command) == 0 {
		return errors.New("command is required")
	}
	if local.OnError != velerov1api.HookErrorModeContinue {
		local.OnError = velerov1api.HookErrorModeFail
	}
	if local.Timeout.Duration == 0 {
		local.Timeout.Duration = velerosDefaultHookTimeout
	}
	hookLog := log.WithFields(logrus.Fields{
		"hookName":      hookName,
		"hookContainer": local.Container,
		"hookCommand":   local.Command,
		"hookOnError":   local.OnError,
		"hookTimeout":   local.Timeout,
	})
	if pod.Status.Phase == corev1api.PodSucceeded || pod.Status.Phase == corev1api.PodFailed {
		hookLog.Infof("Pod entered phase %s before some post-backup exec hooks ran", pod.Status.Phase)
		return nil
	}
	hookLog.Info("running exec hook")
	req := e.client.CoreV1().RESTClient().Get().
		Resource("pods").Namespace(namespace).Name(name).SubResource("exec").
		VersionedParams(&corev1api.PodExecOptions{
			Container: local.Container,
			Command:   local.Command,
			Stdout:    true,
			Stderr:    true,
		}, kscheme.ParameterCodec)
	executor, err := remotecommand.NewWebSocketExecutor(e.config, "GET", req.URL().String())
	if err != nil {
		return err
	}
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), local.Timeout.Duration)
	defer cancel()
	err = executor.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
	if ctx.Err() != nil {
		return fmt.Errorf("timed out after %v", local.Timeout.Duration)
	}
	hookLog.Infof("stdout: %s", stdout.String())
	hookLog.Infof("stderr: %s", stderr.String())
	return err
}
