package level2

// The simulated backup: Velero's own backup engine (backup.NewKubernetesBackupper
// + BackupWithResolvers, as the backup controller calls it) over a fake
// cluster (Velero's pkg/test fakes), with the action lists the server builds
// from its plugin manager, and quiesce's hooks executed through fake-kube.
// CSI scenarios also run Velero's real CSI actions against fake-kube, whose
// simulated snapshot controller cuts the snapshots they ask for.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	corev1api "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	kbclient "sigs.k8s.io/controller-runtime/pkg/client"

	velerov1api "github.com/vmware-tanzu/velero/pkg/apis/velero/v1"
	"github.com/vmware-tanzu/velero/pkg/backup"
	"github.com/vmware-tanzu/velero/pkg/builder"
	"github.com/vmware-tanzu/velero/pkg/client"
	"github.com/vmware-tanzu/velero/pkg/discovery"
	"github.com/vmware-tanzu/velero/pkg/features"
	iba "github.com/vmware-tanzu/velero/pkg/itemblock/actions"
	"github.com/vmware-tanzu/velero/pkg/plugin/framework"
	"github.com/vmware-tanzu/velero/pkg/plugin/velero"
	biav2 "github.com/vmware-tanzu/velero/pkg/plugin/velero/backupitemaction/v2"
	ibav1 "github.com/vmware-tanzu/velero/pkg/plugin/velero/itemblockaction/v1"
	vsv1 "github.com/vmware-tanzu/velero/pkg/plugin/velero/volumesnapshotter/v1"
	"github.com/vmware-tanzu/velero/pkg/podexec"
	"github.com/vmware-tanzu/velero/pkg/podvolume"
	"github.com/vmware-tanzu/velero/pkg/test"

	"quiesce.dev/velero-host/internal/harness"
)

// snapshotProvider is the VolumeSnapshotLocation provider served by the
// in-process recording VolumeSnapshotter.
const snapshotProvider = "harness.quiesce.dev/recording-snapshotter"

// csiPositionAction is the in-process BIA placed where Velero's
// velero.io/csi-pvc-backupper sits in the server's list (after velero.io/pv,
// before external plugins). Its name must not contain "velero.io/csi-",
// which the engine special-cases.
const csiPositionAction = "harness.quiesce.dev/csi-pvc-position"

// cutLatency is how long fake-kube's simulated snapshot controller takes to
// cut a snapshot in the Level 2 scenarios: far below Velero's 5 s poll.
const cutLatency = 200 * time.Millisecond

// csiDriver provisions the CSI volumes of the scenarios; fake-kube holds its
// StorageClass, VolumeSnapshotClass and VolumeGroupSnapshotClass.
const csiDriver = "disk.csi.quiesce.dev"

var (
	fakeKube        *harness.FakeKube
	fakeKubeLatency time.Duration
)

// kube returns fake-kube, started once per test binary with cutLatency, and
// points the plugin processes (started later by the manager, inheriting the
// environment) and Velero's CSI actions at it.
func kube(t *testing.T) *harness.FakeKube {
	t.Helper()
	return kubeCutting(t, cutLatency)
}

// kubeCutting is kube with snapshots cut after latency: fake-kube is
// restarted when the latency changes (the freeze-window benchmark).
func kubeCutting(t *testing.T, latency time.Duration) *harness.FakeKube {
	t.Helper()
	if fakeKube != nil && fakeKubeLatency == latency {
		return fakeKube
	}
	fakeKube.Close()
	fakeKube = nil
	dir, err := os.MkdirTemp("", "quiesce-level2-")
	if err != nil {
		t.Fatal(err)
	}
	k, err := harness.StartFakeKube(dir, "--snapshot-latency", fmt.Sprintf("%dms", latency.Milliseconds()))
	if err != nil {
		t.Fatalf("starting fake-kube: %v", err)
	}
	// What a cluster with CSI snapshots has: a StorageClass of the driver and
	// the classes Velero picks by their labels.
	for path, obj := range map[string]any{
		"/apis/storage.k8s.io/v1/storageclasses": map[string]any{
			"metadata": map[string]any{"name": "csi"}, "provisioner": csiDriver,
		},
		"/apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses": map[string]any{
			"metadata": map[string]any{"name": "velero-csi-snapclass",
				"labels": map[string]any{"velero.io/csi-volumesnapshot-class": "true"}},
			"driver": csiDriver, "deletionPolicy": "Retain",
		},
		"/apis/groupsnapshot.storage.k8s.io/v1beta2/volumegroupsnapshotclasses": map[string]any{
			"metadata": map[string]any{"name": "velero-csi-groupsnapclass",
				"labels": map[string]any{"velero.io/csi-volumegroupsnapshot-class": "true"}},
			"driver": csiDriver, "deletionPolicy": "Delete",
		},
	} {
		if err := k.Create(path, obj); err != nil {
			k.Close()
			t.Fatalf("fake-kube: %v", err)
		}
	}
	os.Setenv("KUBECONFIG", k.Kubeconfig)
	fakeKube, fakeKubeLatency = k, latency
	return k
}

// Timeline is a file that hook commands (through fake-kube's exec) and the
// harness's recorders append lines to with O_APPEND: the order of its lines
// is the order of the events.
type Timeline string

// Add appends one line.
func (tl Timeline) Add(format string, args ...any) {
	f, err := os.OpenFile(string(tl), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, format+"\n", args...); err != nil {
		panic(err)
	}
}

// Lines returns the lines so far.
func (tl Timeline) Lines() []string {
	b, err := os.ReadFile(string(tl))
	if err != nil && !os.IsNotExist(err) {
		panic(err)
	}
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// Scenario is a fake cluster: one namespace with pods, claims and volumes.
type Scenario struct {
	Namespace string
	Pods      []*corev1api.Pod
	PVCs      []*corev1api.PersistentVolumeClaim
	PVs       []*corev1api.PersistentVolume
	// CSI: the volumes are CSI volumes (withCSIClaim). Velero's engine runs
	// with the EnableCSI feature, so Velero's CSI actions snapshot them in
	// fake-kube, which also holds the claims and volumes; the engine reads the
	// snapshot objects (its additional items) from there.
	CSI bool
	// VeleroHooks: Velero's engine runs its own exec hooks (the
	// pre/post.hook.backup.velero.io/* annotations) through fake-kube.
	VeleroHooks bool
}

// Result is what one simulated backup produced.
type Result struct {
	Err      error
	Timeline []string
	// Entries is the whole backup log (Velero's and the plugins').
	Entries []harness.Entry
	// Errors and Warnings are Velero's own counter (backup.status.errors/warnings),
	// less the entries harness.HostNoise recognises. Entries includes those.
	Errors, Warnings int
	// Items maps "<group-resource>/<ns>/<name>" to the item's JSON in the tarball.
	Items     map[string][]byte
	Snapshots int
	// Cluster holds the items as the dynamic client serves them (what
	// Velero read), keyed like Items.
	Cluster map[string][]byte
	// Kube is fake-kube's timeline of the scenario's namespace: the execs of
	// every hook (quiesce's and Velero's) and the snapshot controller's steps.
	Kube []harness.KubeEvent
	// SnapshotClaims are the claims of the VolumeSnapshots fake-kube holds in
	// the namespace after the backup (Velero keeps them), sorted.
	SnapshotClaims []string
}

// Run performs one backup of sc with Velero's engine and returns its outcome.
func Run(t *testing.T, sc Scenario, tl Timeline, workers int) *Result {
	t.Helper()
	return RunOn(t, kube(t), sc, tl, workers)
}

// RunOn is Run against a given fake-kube.
func RunOn(t *testing.T, k *harness.FakeKube, sc Scenario, tl Timeline, workers int) *Result {
	t.Helper()
	for _, p := range sc.Pods {
		if err := k.CreatePod(p); err != nil {
			t.Fatalf("fake-kube: %v", err)
		}
	}
	if sc.CSI {
		// Velero's CSI actions read the claims and volumes, and the snapshot
		// controller the volume handles.
		for _, c := range sc.PVCs {
			if err := k.Create("/api/v1/namespaces/"+c.Namespace+"/persistentvolumeclaims", c); err != nil {
				t.Fatalf("fake-kube: %v", err)
			}
		}
		for _, v := range sc.PVs {
			if err := k.Create("/api/v1/persistentvolumes", v); err != nil {
				t.Fatalf("fake-kube: %v", err)
			}
		}
		// A server started with --features=EnableCSI.
		features.Enable(velerov1api.CSIFeatureFlag)
		defer features.Disable(velerov1api.CSIFeatureFlag)
	}
	kubeConfig, err := k.RestConfig()
	if err != nil {
		t.Fatal(err)
	}

	h := harness.NewHost(t)
	h.MustDiscover()
	mgr := h.NewManager()
	log := h.Log

	// --- the fake cluster the engine reads -----------------------------
	api := test.NewAPIServer(t)
	ns := builder.ForNamespace(sc.Namespace).Result()
	resources := []struct {
		res   *test.APIResource
		items []metav1.Object
	}{
		{test.Namespaces(), []metav1.Object{ns}},
		{test.Pods(), objs(sc.Pods)},
		{test.PVCs(), objs(sc.PVCs)},
		{test.PVs(), objs(sc.PVs)},
		{test.CRDs(), nil},
	}
	if sc.CSI {
		resources = append(resources, []struct {
			res   *test.APIResource
			items []metav1.Object
		}{
			{&test.APIResource{Group: "snapshot.storage.k8s.io", Version: "v1", Name: "volumesnapshots", ShortName: "vs", Kind: "VolumeSnapshot", Namespaced: true}, nil},
			{&test.APIResource{Group: "snapshot.storage.k8s.io", Version: "v1", Name: "volumesnapshotcontents", ShortName: "vsc", Kind: "VolumeSnapshotContent"}, nil},
			{&test.APIResource{Group: "snapshot.storage.k8s.io", Version: "v1", Name: "volumesnapshotclasses", ShortName: "vsclass", Kind: "VolumeSnapshotClass"}, nil},
		}...)
	}
	cluster := map[string][]byte{}
	kbObjs := []runtime.Object{}
	for _, r := range resources {
		api.DiscoveryClient.WithAPIResource(r.res)
		for _, it := range r.items {
			obj := it.(runtime.Object)
			kbObjs = append(kbObjs, obj.DeepCopyObject())
			content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
			if err != nil {
				t.Fatal(err)
			}
			u := &unstructured.Unstructured{Object: content}
			u.SetAPIVersion("v1")
			u.SetKind(r.res.Kind)
			created, err := api.DynamicClient.Resource(r.res.GVR()).Namespace(it.GetNamespace()).Create(context.Background(), u, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("creating %s %s/%s in the dynamic fake: %v", r.res.Name, it.GetNamespace(), it.GetName(), err)
			}
			b, _ := json.Marshal(created.Object)
			cluster[itemKey(r.res.Name, it.GetNamespace(), it.GetName())] = b
		}
	}
	discoveryHelper, err := discovery.NewHelper(api.DiscoveryClient, log)
	if err != nil {
		t.Fatal(err)
	}

	// The Backup as the backup controller hands it to the engine: defaults
	// filled in, a creation time, the volume group label key (1.17+).
	bk := builder.ForBackup(velerov1api.DefaultNamespace, "b-"+sc.Namespace).
		IncludedNamespaces(sc.Namespace).
		DefaultVolumesToFsBackup(false).
		CSISnapshotTimeout(time.Minute).
		Phase(velerov1api.BackupPhaseInProgress).
		Result()
	bk.UID = types.UID("0000-" + sc.Namespace)
	bk.CreationTimestamp = metav1.NewTime(time.Now().Add(-time.Second).Truncate(time.Second))
	setVolumeGroupLabelKey(bk, "velero.io/volume-group")
	kb := test.NewFakeControllerRuntimeClient(t, append(kbObjs, bk.DeepCopy())...)

	var dyn dynamic.Interface = api.DynamicClient
	if sc.CSI {
		there, err := dynamic.NewForConfig(kubeConfig)
		if err != nil {
			t.Fatal(err)
		}
		dyn = harness.RoutedDynamic(api.DynamicClient, there, harness.SnapshotGroups)
	}
	var executor podexec.PodCommandExecutor
	if sc.VeleroHooks {
		if executor, err = harness.NewWebSocketPodCommandExecutor(kubeConfig); err != nil {
			t.Fatal(err)
		}
	}
	backupper, err := backup.NewKubernetesBackupper(kb, discoveryHelper, client.NewDynamicFactory(dyn),
		executor, pvbFactory{}, time.Minute, false, 0, "kopia", nil, nil)
	if err != nil {
		t.Fatal(err)
	}

	// --- the action lists, as the server builds them -------------------
	bias, err := mgr.GetBackupItemActionsV2()
	if err != nil {
		t.Fatalf("GetBackupItemActionsV2: %v", err)
	}
	ibas, err := mgr.GetItemBlockActions()
	if err != nil {
		t.Fatalf("GetItemBlockActions: %v", err)
	}
	// Velero's server lists velero.io/csi-pvc-backupper right after the v1
	// built-ins and velero.io/pvc (IBA) right after velero.io/pod. Without
	// EnableCSI the engine skips the real CSI actions: record their position.
	wantBIA := []string{"velero.io/pod", "velero.io/pv"}
	if !sc.CSI {
		bias = insertAfter(bias, "velero.io/pv", biav2.BackupItemAction(&csiPosition{tl: tl}))
		wantBIA = append(wantBIA, csiPositionAction)
	}
	wantBIA = append(append(wantBIA, harness.CSIBuiltinBIAs...), harness.PluginName)
	pvcIBA, err := iba.NewPVCAction(kbFactory{kb: kb})(log)
	if err != nil {
		t.Fatal(err)
	}
	ibas = insertAfterIBA(ibas, "velero.io/pod", &namedIBA{ItemBlockAction: pvcIBA.(ibav1.ItemBlockAction), name: "velero.io/pvc"})
	var gotBIA, gotIBA []string
	for i, a := range bias {
		gotBIA = append(gotBIA, a.Name())
		bias[i] = &recBIA{BackupItemAction: a, tl: tl}
	}
	for i, a := range ibas {
		gotIBA = append(gotIBA, a.Name())
		ibas[i] = &recIBA{ItemBlockAction: a, tl: tl}
	}
	wantIBA := []string{"velero.io/pod", "velero.io/pvc", harness.PluginName}
	if fmt.Sprint(gotBIA) != fmt.Sprint(wantBIA) || fmt.Sprint(gotIBA) != fmt.Sprint(wantIBA) {
		t.Fatalf("action lists: BIA %v (want %v), IBA %v (want %v)", gotBIA, wantBIA, gotIBA, wantIBA)
	}

	// --- the request, as the backup controller prepares it -------------
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool := backup.StartItemBlockWorkerPool(ctx, workers, log)
	req := &backup.Request{
		Backup:            bk,
		SnapshotLocations: []*velerov1api.VolumeSnapshotLocation{builder.ForVolumeSnapshotLocation(velerov1api.DefaultNamespace, "default").Provider(snapshotProvider).Result()},
		BackedUpItems:     backup.NewBackedUpItemsMap(),
		SkippedPVTracker:  backup.NewSkipPVTracker(),
	}
	setWorkerPool(t, req, pool)
	snap := &recordingSnapshotter{tl: tl}
	var out bytes.Buffer
	res := &Result{Cluster: cluster}
	harness.Within(t, 3*time.Minute, "BackupWithResolvers", func() {
		res.Err = backupper.BackupWithResolvers(log, req, &out,
			framework.NewBackupItemActionResolverV2(bias), framework.NewItemBlockActionResolver(ibas),
			snapshotterGetter{snap: snap})
	})
	pool.Stop()
	// The server stops the plugins when the backup is done (quiesce thaws
	// anything still frozen on Shutdown).
	harness.Within(t, time.Minute, "CleanupClients", mgr.CleanupClients)

	// go-plugin logs a process's end asynchronously: let the log settle.
	for last, deadline := -1, time.Now().Add(2*time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		n := h.Rec.Len()
		if n == last {
			break
		}
		last = n
	}
	res.Timeline = tl.Lines()
	res.Errors = h.Counter.GetCount(logrus.ErrorLevel)
	res.Warnings = h.Counter.GetCount(logrus.WarnLevel)
	res.Entries = h.Rec.Entries()
	for _, e := range harness.AtOrAbove(res.Entries, logrus.WarnLevel) {
		if why := harness.HostNoise(e); why != "" {
			t.Logf("ignored host-side noise (%s): %s", why, e)
			if e.Level == logrus.ErrorLevel {
				res.Errors--
			} else {
				res.Warnings--
			}
		}
	}
	res.Snapshots = volumeSnapshots(req)
	res.Items = readTarball(t, out.Bytes())
	events, err := k.Timeline()
	if err != nil {
		t.Fatalf("fake-kube timeline: %v", err)
	}
	for _, e := range events {
		if e.Namespace() == sc.Namespace {
			res.Kube = append(res.Kube, e)
		}
	}
	var snapshots struct {
		Items []struct {
			Spec struct {
				Source struct {
					PersistentVolumeClaimName string `json:"persistentVolumeClaimName"`
				} `json:"source"`
			} `json:"spec"`
		} `json:"items"`
	}
	if err := k.Get("/apis/snapshot.storage.k8s.io/v1/namespaces/"+sc.Namespace+"/volumesnapshots", &snapshots); err != nil {
		t.Fatalf("fake-kube: %v", err)
	}
	for _, vs := range snapshots.Items {
		res.SnapshotClaims = append(res.SnapshotClaims, vs.Spec.Source.PersistentVolumeClaimName)
	}
	slices.Sort(res.SnapshotClaims)
	t.Logf("timeline (%d workers):\n  %s", workers, strings.Join(res.Timeline, "\n  "))
	if len(res.Kube) > 0 {
		var lines []string
		for _, e := range res.Kube {
			lines = append(lines, e.String())
		}
		t.Logf("fake-kube timeline:\n  %s", strings.Join(lines, "\n  "))
	}
	return res
}

// setVolumeGroupLabelKey sets Backup.spec.volumeGroupSnapshotLabelKey, which
// Velero's controller always fills in from 1.17 on; v1.16 has no such field.
func setVolumeGroupLabelKey(bk *velerov1api.Backup, key string) {
	if f := reflect.ValueOf(&bk.Spec).Elem().FieldByName("VolumeGroupSnapshotLabelKey"); f.IsValid() {
		f.SetString(key)
	}
}

// setWorkerPool hands the pool to the request the way the controller of the
// Velero line under test does: v1.18 sets Request.WorkerPool, v1.16/v1.17
// set Request.ItemBlockChannel to the pool's input channel. Reflection
// keeps one source for all lines (go test -modfile=compat/…).
func setWorkerPool(t *testing.T, req *backup.Request, pool *backup.ItemBlockWorkerPool) {
	t.Helper()
	v := reflect.ValueOf(req).Elem()
	if f := v.FieldByName("WorkerPool"); f.IsValid() {
		f.Set(reflect.ValueOf(pool))
		return
	}
	if f := v.FieldByName("ItemBlockChannel"); f.IsValid() {
		f.Set(reflect.ValueOf(pool.GetInputChannel()))
		return
	}
	t.Fatal("backup.Request has neither WorkerPool nor ItemBlockChannel")
}

// volumeSnapshots is len(Request.VolumeSnapshots): a SynchronizedVSList
// (v1.17+, Get()) or a plain slice (v1.16).
func volumeSnapshots(req *backup.Request) int {
	v := reflect.ValueOf(&req.VolumeSnapshots).Elem()
	if v.Kind() == reflect.Slice {
		return v.Len()
	}
	return reflect.ValueOf(&req.VolumeSnapshots).MethodByName("Get").Call(nil)[0].Len()
}

func objs[T metav1.Object](in []T) []metav1.Object {
	out := make([]metav1.Object, len(in))
	for i, o := range in {
		out[i] = o
	}
	return out
}

func itemKey(resource, ns, name string) string {
	if ns == "" {
		return resource + "/" + name
	}
	return resource + "/" + ns + "/" + name
}

// readTarball returns the items of Velero's backup tarball (not the
// preferred-version copies), keyed like itemKey.
func readTarball(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("backup tarball: %v", err)
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("backup tarball: %v", err)
		}
		parts := strings.Split(filepath.ToSlash(hdr.Name), "/")
		if len(parts) < 4 || parts[0] != velerov1api.ResourcesDir || strings.HasSuffix(parts[2], velerov1api.PreferredVersionDir) {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(parts[len(parts)-1], ".json")
		switch {
		case parts[2] == velerov1api.NamespaceScopedDir && len(parts) == 5:
			out[itemKey(parts[1], parts[3], name)] = data
		case parts[2] == velerov1api.ClusterScopedDir && len(parts) == 4:
			out[itemKey(parts[1], "", name)] = data
		}
	}
	return out
}

// ---- stand-ins ----------------------------------------------------------

// recordingSnapshotter is a native VolumeSnapshotter: Velero's engine calls
// CreateSnapshot inside the PV item's processing (takePVSnapshot), at the
// moment a real provider would cut the snapshot.
type recordingSnapshotter struct{ tl Timeline }

func (s *recordingSnapshotter) Init(map[string]string) error { return nil }
func (s *recordingSnapshotter) CreateVolumeFromSnapshot(string, string, string, *int64) (string, error) {
	return "", fmt.Errorf("not supported")
}
func (s *recordingSnapshotter) GetVolumeID(pv runtime.Unstructured) (string, error) {
	name, _, _ := unstructured.NestedString(pv.UnstructuredContent(), "metadata", "name")
	return "vol-" + name, nil
}
func (s *recordingSnapshotter) SetVolumeID(pv runtime.Unstructured, _ string) (runtime.Unstructured, error) {
	return pv, nil
}
func (s *recordingSnapshotter) GetVolumeInfo(string, string) (string, *int64, error) {
	return "gp3", nil, nil
}
func (s *recordingSnapshotter) CreateSnapshot(volumeID, _ string, tags map[string]string) (string, error) {
	s.tl.Add("snapshot %s", tags["velero.io/pv"])
	return "snap-" + volumeID, nil
}
func (s *recordingSnapshotter) DeleteSnapshot(string) error { return nil }

type snapshotterGetter struct{ snap *recordingSnapshotter }

func (g snapshotterGetter) GetVolumeSnapshotter(name string) (vsv1.VolumeSnapshotter, error) {
	if name != snapshotProvider {
		return nil, fmt.Errorf("no volume snapshotter %q", name)
	}
	return g.snap, nil
}

// csiPosition stands where velero.io/csi-pvc-backupper runs (a v2 BIA on
// PVCs after velero.io/pv): it records the moment a CSI snapshot of the
// claim would be created.
type csiPosition struct{ tl Timeline }

func (a *csiPosition) Name() string { return csiPositionAction }
func (a *csiPosition) AppliesTo() (velero.ResourceSelector, error) {
	return velero.ResourceSelector{IncludedResources: []string{"persistentvolumeclaims"}}, nil
}
func (a *csiPosition) Execute(item runtime.Unstructured, _ *velerov1api.Backup) (runtime.Unstructured, []velero.ResourceIdentifier, string, []velero.ResourceIdentifier, error) {
	ns, _, _ := unstructured.NestedString(item.UnstructuredContent(), "metadata", "namespace")
	name, _, _ := unstructured.NestedString(item.UnstructuredContent(), "metadata", "name")
	a.tl.Add("csi-snapshot %s/%s", ns, name)
	return item, nil, "", nil, nil
}
func (a *csiPosition) Progress(string, *velerov1api.Backup) (velero.OperationProgress, error) {
	return velero.OperationProgress{}, biav2.AsyncOperationsNotSupportedError()
}
func (a *csiPosition) Cancel(string, *velerov1api.Backup) error { return nil }

// recBIA / recIBA record every call of the engine into an action (Name and
// everything else delegated, so the engine's name-based cases still apply).
type recBIA struct {
	biav2.BackupItemAction
	tl Timeline
}

func (a *recBIA) Execute(item runtime.Unstructured, b *velerov1api.Backup) (runtime.Unstructured, []velero.ResourceIdentifier, string, []velero.ResourceIdentifier, error) {
	id := describe(item)
	a.tl.Add("call %s Execute %s", a.Name(), id)
	u, add, op, post, err := a.BackupItemAction.Execute(item, b)
	if err != nil {
		a.tl.Add("done %s Execute %s error", a.Name(), id)
	} else {
		a.tl.Add("done %s Execute %s", a.Name(), id)
	}
	return u, add, op, post, err
}

type recIBA struct {
	ibav1.ItemBlockAction
	tl Timeline
}

func (a *recIBA) GetRelatedItems(item runtime.Unstructured, b *velerov1api.Backup) ([]velero.ResourceIdentifier, error) {
	a.tl.Add("call %s GetRelatedItems %s", a.Name(), describe(item))
	return a.ItemBlockAction.GetRelatedItems(item, b)
}

type namedIBA struct {
	ibav1.ItemBlockAction
	name string
}

func (a *namedIBA) Name() string { return a.name }

func describe(item runtime.Unstructured) string {
	c := item.UnstructuredContent()
	kind, _, _ := unstructured.NestedString(c, "kind")
	ns, _, _ := unstructured.NestedString(c, "metadata", "namespace")
	name, _, _ := unstructured.NestedString(c, "metadata", "name")
	if ns != "" {
		name = ns + "/" + name
	}
	return kind + " " + name
}

func insertAfter(list []biav2.BackupItemAction, after string, a biav2.BackupItemAction) []biav2.BackupItemAction {
	for i, x := range list {
		if x.Name() == after {
			return append(list[:i+1], append([]biav2.BackupItemAction{a}, list[i+1:]...)...)
		}
	}
	return list
}

func insertAfterIBA(list []ibav1.ItemBlockAction, after string, a ibav1.ItemBlockAction) []ibav1.ItemBlockAction {
	for i, x := range list {
		if x.Name() == after {
			return append(list[:i+1], append([]ibav1.ItemBlockAction{a}, list[i+1:]...)...)
		}
	}
	return list
}

// kbFactory is the client.Factory handed to velero.io/pvc's initializer:
// only KubebuilderClient is used.
type kbFactory struct {
	client.Factory
	kb kbclient.Client
}

func (f kbFactory) KubebuilderClient() (kbclient.Client, error) { return f.kb, nil }

// pvbFactory / pvBackupper: no volume is selected for file-system backup,
// so BackupPodVolumes (which names an internal type) is never called.
type pvbFactory struct{}

func (pvbFactory) NewBackupper(context.Context, logrus.FieldLogger, *velerov1api.Backup, string) (podvolume.Backupper, error) {
	return pvBackupper{}, nil
}

type pvBackupper struct{ podvolume.Backupper }

func (pvBackupper) WaitAllPodVolumesProcessed(logrus.FieldLogger) []*velerov1api.PodVolumeBackup {
	return nil
}
func (pvBackupper) GetPodVolumeBackupByPodAndVolume(string, string, string) (*velerov1api.PodVolumeBackup, error) {
	return nil, nil
}
func (pvBackupper) ListPodVolumeBackupsByPod(string, string) ([]*velerov1api.PodVolumeBackup, error) {
	return nil, nil
}
