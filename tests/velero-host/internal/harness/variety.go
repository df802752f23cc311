package harness

import (
	corev1api "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// NamedItem is a test item with a short description.
type NamedItem struct {
	Name string
	Item *unstructured.Unstructured
}

// ItemVariety returns Pods and PersistentVolumes of the shapes Velero hands
// to item actions: straight from the API server, after another plugin
// round-tripped them through Go types (null timestamps, empty structs),
// terminating, finished, with fields newer than the plugin's Kubernetes
// schema, and minimal ones.
func ItemVariety() []NamedItem {
	return []NamedItem{
		{"pod-go-typed-roundtrip", goTypedPod()},
		{"pod-terminating-sidecars-ephemeral", MustItem(podTerminating)},
		{"pod-future-fields", MustItem(podFuture)},
		{"pod-succeeded-no-volumes", MustItem(podSucceeded)},
		{"pod-minimal", MustItem(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"m","namespace":"shop"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}`)},
		{"pv-available-no-claimref", MustItem(`{"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"pv-free","creationTimestamp":null},"spec":{"capacity":{"storage":"1Gi"},"accessModes":["ReadWriteMany"],"nfs":{"server":"10.0.0.5","path":"/exports/a"},"persistentVolumeReclaimPolicy":"Retain"},"status":{"phase":"Available"}}`)},
		{"pv-released-hostpath", MustItem(`{"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"pv-old","uid":"u-1"},"spec":{"capacity":{"storage":"5Gi"},"accessModes":["ReadWriteOnce"],"hostPath":{"path":"/data/x","type":""},"claimRef":{"kind":"PersistentVolumeClaim","namespace":"gone","name":"old-claim","uid":"u-2"},"persistentVolumeReclaimPolicy":"Retain","volumeAttributesClassName":"fast"},"status":{"phase":"Released","message":"claim deleted"}}`)},
		{"pv-claimref-without-namespace", MustItem(`{"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"pv-odd"},"spec":{"capacity":{"storage":"1Gi"},"accessModes":["ReadWriteOnce"],"local":{"path":"/mnt/disks/ssd1"},"claimRef":{"name":"claim-only-name"},"nodeAffinity":{"required":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"kubernetes.io/hostname","operator":"In","values":["n1"]}]}]}}},"status":{"phase":"Bound"}}`)},
	}
}

// goTypedPod is what a Go plugin earlier in the chain returns after
// converting a typed Pod back to unstructured (as Velero's own actions do
// when they modify an item).
func goTypedPod() *unstructured.Unstructured {
	grace := int64(30)
	pod := &corev1api.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "typed", Namespace: "shop", Labels: map[string]string{"app": "typed"}},
		Spec: corev1api.PodSpec{
			TerminationGracePeriodSeconds: &grace,
			Containers: []corev1api.Container{{
				Name:  "app",
				Image: "nginx:1.27",
				Ports: []corev1api.ContainerPort{{Name: "http", ContainerPort: 8080}},
				LivenessProbe: &corev1api.Probe{ProbeHandler: corev1api.ProbeHandler{
					HTTPGet: &corev1api.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")},
				}},
				Resources: corev1api.ResourceRequirements{Limits: corev1api.ResourceList{
					corev1api.ResourceCPU:    resource.MustParse("1500m"),
					corev1api.ResourceMemory: resource.MustParse("1Gi"),
				}},
				VolumeMounts: []corev1api.VolumeMount{{Name: "data", MountPath: "/data"}},
			}},
			Volumes: []corev1api.Volume{{Name: "data", VolumeSource: corev1api.VolumeSource{
				PersistentVolumeClaim: &corev1api.PersistentVolumeClaimVolumeSource{ClaimName: "typed-data"},
			}}},
		},
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(pod)
	if err != nil {
		panic(err)
	}
	// Normalise numbers as Velero's JSON decoding would.
	u := &unstructured.Unstructured{Object: m}
	b, err := u.MarshalJSON()
	if err != nil {
		panic(err)
	}
	return MustItem(string(b))
}

const podTerminating = `{
  "apiVersion": "v1", "kind": "Pod",
  "metadata": {"name": "web-5d8f7-abcde", "namespace": "shop", "uid": "11111111-2222-3333-4444-555555555555",
    "deletionTimestamp": "2025-11-20T09:00:05Z", "deletionGracePeriodSeconds": 30,
    "finalizers": ["example.com/drain"], "labels": {"app": "web"}},
  "spec": {
    "initContainers": [
      {"name": "migrate", "image": "app:1", "command": ["./migrate"]},
      {"name": "proxy", "image": "envoy:1.32", "restartPolicy": "Always",
       "startupProbe": {"tcpSocket": {"port": 15000}, "failureThreshold": 30}}
    ],
    "containers": [{"name": "web", "image": "app:1",
      "ports": [{"containerPort": 80, "name": "http"}],
      "livenessProbe": {"httpGet": {"path": "/", "port": "http", "scheme": "HTTP"}},
      "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}],
      "volumeMounts": [{"name": "cache", "mountPath": "/cache"}, {"name": "data", "mountPath": "/data", "subPathExpr": "$(POD_NAME)"}]}],
    "ephemeralContainers": [{"name": "debugger-x7", "image": "busybox", "targetContainerName": "web", "stdin": true, "tty": true}],
    "volumes": [
      {"name": "cache", "ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}}},
      {"name": "data", "persistentVolumeClaim": {"claimName": "web-data"}}
    ],
    "os": {"name": "linux"}, "hostUsers": false,
    "schedulingGates": [], "readinessGates": [{"conditionType": "example.com/ready"}],
    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app": "web"}}}]
  },
  "status": {"phase": "Running", "hostIPs": [{"ip": "192.168.1.10"}],
    "initContainerStatuses": [{"name": "proxy", "ready": true, "restartCount": 0, "image": "envoy:1.32", "imageID": "", "started": true, "state": {"running": {"startedAt": "2025-11-20T08:00:00Z"}}}],
    "ephemeralContainerStatuses": [{"name": "debugger-x7", "ready": false, "restartCount": 0, "image": "busybox", "imageID": "", "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": "2025-11-20T08:30:00Z", "finishedAt": "2025-11-20T08:31:00Z"}}}]}
}`

// podFuture carries fields newer than the plugin's Kubernetes schema and a
// DRA claim; a reader must ignore what it does not know.
const podFuture = `{
  "apiVersion": "v1", "kind": "Pod",
  "metadata": {"name": "gpu-job-0", "namespace": "ml", "generation": 3, "labels": {"job": "train"}},
  "spec": {
    "containers": [{"name": "trainer", "image": "trainer:2",
      "resources": {"limits": {"nvidia.com/gpu": "1"}, "claims": [{"name": "gpu"}]},
      "stopSignal": "SIGUSR1", "futureContainerField": {"nested": [1, 2.5, "x", null, true]}}],
    "resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "gpu-template"}],
    "resources": {"limits": {"cpu": "8"}},
    "hostnameOverride": "trainer-0",
    "futureSpecField": 12345678901234
  },
  "status": {"phase": "Pending", "observedGeneration": 3, "resize": "InProgress",
    "conditions": [{"type": "PodReadyToStartContainers", "status": "False", "observedGeneration": 3, "lastProbeTime": null, "lastTransitionTime": null}],
    "resourceClaimStatuses": [{"name": "gpu", "resourceClaimName": "gpu-job-0-gpu-x9"}]}
}`

const podSucceeded = `{
  "apiVersion": "v1", "kind": "Pod",
  "metadata": {"name": "backup-job-xyz", "namespace": "shop",
    "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "backup-job", "uid": "abc", "controller": true}],
    "annotations": {"pre.hook.backup.velero.io/command": "[\"/bin/true\"]"}},
  "spec": {"restartPolicy": "Never", "containers": [{"name": "job", "image": "alpine", "command": ["sh", "-c", "exit 0"]}]},
  "status": {"phase": "Succeeded", "containerStatuses": [{"name": "job", "ready": false, "restartCount": 0, "image": "alpine", "imageID": "", "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": null, "finishedAt": null}}}]}
}`
