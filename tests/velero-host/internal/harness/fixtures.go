package harness

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	velerov1api "github.com/vmware-tanzu/velero/pkg/apis/velero/v1"
)

// Items are decoded from JSON exactly as Velero's dynamic client produces
// them (integers as int64), so a pass-through round trip must be
// reflect.DeepEqual to the input.

// PodJSON is a realistic Pod as read from the API server: owner references,
// managed fields, several volume types including two PVCs, Velero's own
// hook annotations (which quiesce must leave to Velero), non-ASCII text and
// escapes, and a status.
const PodJSON = `{
  "apiVersion": "v1",
  "kind": "Pod",
  "metadata": {
    "name": "postgres-0",
    "generateName": "postgres-",
    "namespace": "shop",
    "uid": "5f0c6c3e-8c4e-4d0b-9a51-0d1b7a6e2f11",
    "resourceVersion": "1234567",
    "creationTimestamp": "2025-11-20T08:15:30Z",
    "labels": {
      "app.kubernetes.io/name": "postgres",
      "apps.kubernetes.io/pod-index": "0",
      "controller-revision-hash": "postgres-7d9c8b5f6",
      "statefulset.kubernetes.io/pod-name": "postgres-0"
    },
    "annotations": {
      "pre.hook.backup.velero.io/container": "postgres",
      "pre.hook.backup.velero.io/command": "[\"/bin/sh\", \"-c\", \"psql -c 'CHECKPOINT;'\"]",
      "post.hook.backup.velero.io/command": "[\"/bin/true\"]",
      "backup.velero.io/backup-volumes-excludes": "scratch",
      "kubectl.kubernetes.io/default-container": "postgres",
      "example.com/note": "caf\u00e9 \u2014 <b>&amp;</b> \"quoted\" \\ tab\t\u2028end"
    },
    "ownerReferences": [
      {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "postgres",
       "uid": "0b7c1a55-0d56-4a8e-8f9e-1c2b3d4e5f60", "controller": true, "blockOwnerDeletion": true}
    ],
    "managedFields": [
      {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
       "time": "2025-11-20T08:15:30Z", "fieldsType": "FieldsV1",
       "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app.kubernetes.io/name": {}}}}}
    ]
  },
  "spec": {
    "hostname": "postgres-0",
    "subdomain": "postgres",
    "serviceAccountName": "postgres",
    "terminationGracePeriodSeconds": 30,
    "securityContext": {"fsGroup": 999, "runAsUser": 999, "runAsNonRoot": true},
    "priority": 0,
    "enableServiceLinks": true,
    "containers": [
      {
        "name": "postgres",
        "image": "postgres:17.2",
        "ports": [{"containerPort": 5432, "name": "pg", "protocol": "TCP"}],
        "env": [{"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                {"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "postgres", "key": "password"}}}],
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        "readinessProbe": {"exec": {"command": ["pg_isready", "-U", "postgres"]}, "periodSeconds": 10, "failureThreshold": 3},
        "volumeMounts": [
          {"name": "data", "mountPath": "/var/lib/postgresql/data"},
          {"name": "wal", "mountPath": "/var/lib/postgresql/wal"},
          {"name": "config", "mountPath": "/etc/postgresql", "readOnly": true},
          {"name": "scratch", "mountPath": "/scratch"},
          {"name": "kube-api-access-x7k2p", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}
        ]
      },
      {
        "name": "exporter",
        "image": "quay.io/prometheuscommunity/postgres-exporter:v0.16.0",
        "args": ["--web.listen-address=:9187"],
        "resources": {}
      }
    ],
    "volumes": [
      {"name": "data", "persistentVolumeClaim": {"claimName": "data-postgres-0"}},
      {"name": "wal", "persistentVolumeClaim": {"claimName": "wal-postgres-0", "readOnly": false}},
      {"name": "config", "configMap": {"name": "postgres-config", "defaultMode": 420}},
      {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}},
      {"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
      ]}}
    ],
    "nodeName": "worker-2",
    "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
  },
  "status": {
    "phase": "Running",
    "podIP": "10.244.2.17",
    "podIPs": [{"ip": "10.244.2.17"}],
    "qosClass": "Burstable",
    "startTime": "2025-11-20T08:15:31Z",
    "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2025-11-20T08:15:45Z"}],
    "containerStatuses": [
      {"name": "postgres", "ready": true, "restartCount": 0, "started": true, "image": "postgres:17.2",
       "imageID": "docker.io/library/postgres@sha256:0000000000000000000000000000000000000000000000000000000000000000",
       "containerID": "containerd://1111111111111111111111111111111111111111111111111111111111111111",
       "state": {"running": {"startedAt": "2025-11-20T08:15:35Z"}}}
    ]
  }
}`

// PVJSON is a bound CSI PersistentVolume with spec.claimRef pointing at the
// pod's first claim.
const PVJSON = `{
  "apiVersion": "v1",
  "kind": "PersistentVolume",
  "metadata": {
    "name": "pvc-3f6c1c9e-2b7a-4d61-9f1e-7c2d8a9b0e41",
    "uid": "a1d2c3b4-e5f6-4789-8abc-def012345678",
    "resourceVersion": "1234501",
    "creationTimestamp": "2025-11-20T08:15:20Z",
    "labels": {"topology.kubernetes.io/zone": "eu-west-1a"},
    "annotations": {
      "pv.kubernetes.io/provisioned-by": "ebs.csi.aws.com",
      "volume.kubernetes.io/provisioner-deletion-secret-name": "",
      "volume.kubernetes.io/provisioner-deletion-secret-namespace": ""
    },
    "finalizers": ["kubernetes.io/pv-protection", "external-attacher/ebs-csi-aws-com"]
  },
  "spec": {
    "accessModes": ["ReadWriteOnce"],
    "capacity": {"storage": "20Gi"},
    "claimRef": {
      "apiVersion": "v1",
      "kind": "PersistentVolumeClaim",
      "name": "data-postgres-0",
      "namespace": "shop",
      "resourceVersion": "1234490",
      "uid": "3f6c1c9e-2b7a-4d61-9f1e-7c2d8a9b0e41"
    },
    "csi": {
      "driver": "ebs.csi.aws.com",
      "fsType": "ext4",
      "volumeHandle": "vol-0a1b2c3d4e5f67890",
      "volumeAttributes": {"storage.kubernetes.io/csiProvisionerIdentity": "1732090000000-8081-ebs.csi.aws.com"}
    },
    "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
      {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["eu-west-1a"]}
    ]}]}},
    "persistentVolumeReclaimPolicy": "Delete",
    "storageClassName": "gp3",
    "volumeMode": "Filesystem"
  },
  "status": {"phase": "Bound", "lastPhaseTransitionTime": "2025-11-20T08:15:21Z"}
}`

// PVCJSON is the claim bound to PVJSON (a resource quiesce does not act on).
const PVCJSON = `{
  "apiVersion": "v1",
  "kind": "PersistentVolumeClaim",
  "metadata": {"name": "data-postgres-0", "namespace": "shop", "uid": "3f6c1c9e-2b7a-4d61-9f1e-7c2d8a9b0e41",
    "labels": {"app.kubernetes.io/name": "postgres"}},
  "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}},
    "storageClassName": "gp3", "volumeMode": "Filesystem", "volumeName": "pvc-3f6c1c9e-2b7a-4d61-9f1e-7c2d8a9b0e41"},
  "status": {"phase": "Bound", "capacity": {"storage": "20Gi"}, "accessModes": ["ReadWriteOnce"]}
}`

// MustItem decodes an item the way Velero's dynamic client does.
func MustItem(s string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON([]byte(s)); err != nil {
		panic(err)
	}
	return u
}

// Backup returns a realistic in-progress Backup as the backup controller
// hands it to the engine (defaults filled in, spec hooks for Velero's own
// hook runner, status set).
func Backup() *velerov1api.Backup {
	snapshotVolumes := true
	fsDefault := false
	start := metav1.NewTime(time.Date(2025, 11, 20, 9, 0, 0, 0, time.UTC))
	expiry := metav1.NewTime(start.Add(720 * time.Hour))
	return &velerov1api.Backup{
		TypeMeta: metav1.TypeMeta{APIVersion: "velero.io/v1", Kind: "Backup"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace:         "velero",
			Name:              "shop-nightly-20251120090000",
			UID:               types.UID("9e8d7c6b-5a49-4838-a726-150493827160"),
			ResourceVersion:   "2233445",
			Generation:        1,
			CreationTimestamp: start,
			Labels: map[string]string{
				"velero.io/schedule-name":    "shop-nightly",
				"velero.io/storage-location": "default",
			},
			Annotations: map[string]string{
				"velero.io/resource-timeout":                 "10m0s",
				"velero.io/source-cluster-k8s-gitversion":    "v1.33.4",
				"velero.io/source-cluster-k8s-major-version": "1",
				"velero.io/source-cluster-k8s-minor-version": "33",
			},
		},
		Spec: velerov1api.BackupSpec{
			IncludedNamespaces:       []string{"shop"},
			StorageLocation:          "default",
			VolumeSnapshotLocations:  []string{"aws-default"},
			SnapshotVolumes:          &snapshotVolumes,
			DefaultVolumesToFsBackup: &fsDefault,
			TTL:                      metav1.Duration{Duration: 720 * time.Hour},
			CSISnapshotTimeout:       metav1.Duration{Duration: 10 * time.Minute},
			ItemOperationTimeout:     metav1.Duration{Duration: 4 * time.Hour},
			Hooks: velerov1api.BackupHooks{Resources: []velerov1api.BackupResourceHookSpec{{
				Name:               "flush",
				IncludedNamespaces: []string{"shop"},
				LabelSelector:      &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": "redis"}},
				PreHooks: []velerov1api.BackupResourceHook{{Exec: &velerov1api.ExecHook{
					Container: "redis",
					Command:   []string{"redis-cli", "BGSAVE"},
					OnError:   velerov1api.HookErrorModeContinue,
					Timeout:   metav1.Duration{Duration: 30 * time.Second},
				}}},
			}}},
		},
		Status: velerov1api.BackupStatus{
			Version:        1,
			FormatVersion:  "1.1.0",
			Phase:          velerov1api.BackupPhaseInProgress,
			StartTimestamp: &start,
			Expiration:     &expiry,
		},
	}
}
