package level2

// CSI scenarios (issues 15 and 16): Velero's real CSI actions
// (velero.io/csi-pvc-backupper and the VolumeSnapshot, content and class
// actions, served by the re-executed test binary as Velero's run-plugins
// serves them) create VolumeSnapshots and VolumeGroupSnapshots in fake-kube,
// whose simulated snapshot controller cuts them after cutLatency; Velero
// polls for them as it does in a cluster (every 5 s for a VolumeSnapshot's
// handle, every 1 s for a group's members). fake-kube's own timeline orders
// the hooks' execs and the controller's steps; the harness's file timeline
// orders the engine's calls and the hooks' lines. A hook's line is written
// by the exec fake-kube records, which links the two.

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1api "k8s.io/api/core/v1"

	velerov1api "github.com/vmware-tanzu/velero/pkg/apis/velero/v1"

	"quiesce.dev/velero-host/internal/harness"
)

// kubeOrder finds events in fake-kube's timeline of one scenario.
type kubeOrder struct {
	t      *testing.T
	events []harness.KubeEvent
}

// hook is the position where the hook writing "<verb> ns/pod" (the newPod
// hooks) started (ExecStarted) or ended (ExecFinished); -1 if absent.
func (k kubeOrder) hook(typ, verb, ns, pod string) int {
	k.t.Helper()
	for i, e := range k.events {
		if e.Type == typ && e.Exec != nil && len(e.Exec.Argv) == 3 &&
			strings.HasPrefix(e.Exec.Argv[2], "echo "+verb+" "+ns+"/"+pod+" ") {
			return i
		}
	}
	k.t.Errorf("fake-kube's timeline has no %s of %s %s/%s", typ, verb, ns, pod)
	return -1
}

// snapshot is the position of the snapshot controller's step on a snapshot
// of kind holding claim ("" for any); -1 if absent.
func (k kubeOrder) snapshot(step, kind, claim string) int {
	k.t.Helper()
	for i, e := range k.events {
		if e.Type == "Snapshot" && e.Step == step && e.Snapshot.Kind == kind &&
			(claim == "" || slices.Contains(e.Snapshot.Claims, claim)) {
			return i
		}
	}
	k.t.Errorf("fake-kube's timeline has no %s %s of claim %q", kind, step, claim)
	return -1
}

// before asserts that the positions are present and increasing.
func (k kubeOrder) before(what string, positions ...int) {
	k.t.Helper()
	for i, p := range positions {
		if p < 0 || (i > 0 && p <= positions[i-1]) {
			k.t.Errorf("fake-kube's timeline: %s does not hold (positions %v)", what, positions)
			return
		}
	}
}

// thawedBy is the thawedBy field of the plugin's "Pod thawed" line for pod.
func thawedBy(r *Result, ns, pod string) string {
	for _, e := range harness.FromPlugin(r.Entries, harness.Current().Basename()) {
		if e.Message == "Pod thawed" && e.Str("namespace") == ns && e.Str("pod") == pod {
			return e.Str("thawedBy")
		}
	}
	return ""
}

// TestThawAtCut (issue 16): pod db's claim data is a CSI volume. The freeze
// is in quiesce's Execute of its volume; Velero's CSI action then creates the
// VolumeSnapshot and polls for its handle. fake-kube cuts it 200 ms later,
// and quiesce thaws db at the cut: its post hook starts after the cut and
// before Velero, its 5 s poll over, backs up the pod's item. Order only,
// never time. Without the thaw at the cut (QUIESCE_THAW_AT_CUT=false, or a
// plugin before issue 16) the thaw comes inside Execute(pod db).
func TestThawAtCut(t *testing.T) {
	forWorkers(t, "cut", func(t *testing.T, ns string, tl Timeline, w int) {
		sc := Scenario{Namespace: ns}
		sc.withCSIClaim("data", corev1api.ReadWriteOnce, "")
		sc.Pods = []*corev1api.Pod{newPod(ns, "db", tl, []string{"data"}, hookSpec{})}
		r := Run(t, sc, tl, w)
		k := kubeOrder{t, r.Kube}
		k.before("freeze < cut < thaw",
			k.hook("ExecFinished", "freeze", ns, "db"),
			k.snapshot("Requested", "VolumeSnapshot", ""),
			k.snapshot("Cut", "VolumeSnapshot", "data"),
			k.hook("ExecStarted", "thaw", ns, "db"))
		pv := pvName(ns, "data")
		o := order{t, r.Timeline}
		o.before(
			"call "+harness.PluginName+" Execute PersistentVolume "+pv,
			"freeze "+ns+"/db",
			"done "+harness.PluginName+" Execute PersistentVolume "+pv,
			"call velero.io/csi-pvc-backupper Execute PersistentVolumeClaim "+ns+"/data",
			"thaw "+ns+"/db",
			"call "+harness.PluginName+" Execute Pod "+ns+"/db",
		)
		if got := thawedBy(r, ns, "db"); got != "snapshot-cut" {
			t.Errorf("Pod thawed: thawedBy=%q, want snapshot-cut", got)
		}
		if !reflect.DeepEqual(r.SnapshotClaims, []string{"data"}) {
			t.Errorf("VolumeSnapshots of claims %v, want [data]", r.SnapshotClaims)
		}
		checkClean(t, r)
		checkItems(t, sc, r)
	})
}

// TestCSIFailedFreeze (issue 15): pod db's pre hook fails with on-error
// Fail while it freezes for its CSI volume. quiesce's Execute of the volume
// fails, so Velero's CSI action never runs on the claim: no VolumeSnapshot
// (and no native snapshot) of it, and db, its claim and its volume are not
// in the backup; db is thawed inside that Execute. Pod web's CSI volume, in
// the same backup, is snapshotted: VolumeSnapshots are created here. Velero
// counts 2 errors and 1 warning, as the README says.
func TestCSIFailedFreeze(t *testing.T) {
	forWorkers(t, "csi-fail", func(t *testing.T, ns string, tl Timeline, w int) {
		sc := failedFreeze(ns, tl, true)
		r := Run(t, sc, tl, w)
		pv := pvName(ns, "data")
		o := order{t, r.Timeline}
		o.thawedInRefusal(ns, pv)
		o.absent("call velero.io/csi-pvc-backupper Execute PersistentVolumeClaim " + ns + "/data")
		o.absent("snapshot ")
		if !reflect.DeepEqual(r.SnapshotClaims, []string{"www"}) {
			t.Errorf("VolumeSnapshots of claims %v, want [www] (none of the refused volume)", r.SnapshotClaims)
		}
		if got := thawedBy(r, ns, "db"); got != "pre-hook-failed" {
			t.Errorf("Pod thawed: thawedBy=%q, want pre-hook-failed", got)
		}
		if r.Err != nil {
			t.Errorf("BackupWithResolvers: %v", r.Err)
		}
		checkRefusal(t, r, ns, "db", pv, "data")
		checkItems(t, sc, r, "db")
	})
}

// TestVolumeGroup (issue 15, Velero 1.17+): claims data-a and data-b share
// velero.io/volume-group=orders; pods a and b mount one each; pod c mounts
// data-c, outside the group. Velero's PVC ItemBlockAction puts a, b and both
// claims in one block, and velero.io/csi-pvc-backupper creates one
// VolumeGroupSnapshot at the group's first claim. quiesce freezes both a and
// b in the Execute of that claim's volume: both freezes come before the
// VolumeGroupSnapshot is created, both thaws after fake-kube cut it. c is
// frozen in the Execute of its own volume. Before issue 15 the second pod
// of the group froze at its own volume, after the group was cut.
func TestVolumeGroup(t *testing.T) {
	if _, ok := reflect.TypeOf(velerov1api.BackupSpec{}).FieldByName("VolumeGroupSnapshotLabelKey"); !ok {
		t.Skip("this Velero line has no volume group snapshots (Backup.spec.volumeGroupSnapshotLabelKey came with Velero 1.17)")
	}
	forWorkers(t, "group", func(t *testing.T, ns string, tl Timeline, w int) {
		sc := Scenario{Namespace: ns}
		sc.withCSIClaim("data-a", corev1api.ReadWriteOnce, "orders")
		sc.withCSIClaim("data-b", corev1api.ReadWriteOnce, "orders")
		sc.withCSIClaim("data-c", corev1api.ReadWriteOnce, "")
		sc.Pods = []*corev1api.Pod{
			newPod(ns, "a", tl, []string{"data-a"}, hookSpec{}),
			newPod(ns, "b", tl, []string{"data-b"}, hookSpec{}),
			newPod(ns, "c", tl, []string{"data-c"}, hookSpec{}),
		}
		r := Run(t, sc, tl, w)
		k := kubeOrder{t, r.Kube}
		requested := k.snapshot("Requested", "VolumeGroupSnapshot", "")
		cut := k.snapshot("Cut", "VolumeGroupSnapshot", "data-a")
		for _, member := range []string{"a", "b"} {
			k.before("freeze of "+member+" < group created < cut < thaw of "+member,
				k.hook("ExecFinished", "freeze", ns, member), requested, cut,
				k.hook("ExecStarted", "thaw", ns, member))
		}
		if cut >= 0 && !slices.Equal(r.Kube[cut].Snapshot.Claims, []string{"data-a", "data-b"}) {
			t.Errorf("the group holds %v, want [data-a data-b]", r.Kube[cut].Snapshot.Claims)
		}
		// Both freezes are in the Execute of the volume Velero reaches first.
		o := order{t, r.Timeline}
		first := pvName(ns, "data-a")
		if o.at("call "+harness.PluginName+" Execute PersistentVolume "+pvName(ns, "data-b")) <
			o.at("call "+harness.PluginName+" Execute PersistentVolume "+first) {
			first = pvName(ns, "data-b")
		}
		for _, member := range []string{"a", "b"} {
			o.before("call "+harness.PluginName+" Execute PersistentVolume "+first, "freeze "+ns+"/"+member,
				"done "+harness.PluginName+" Execute PersistentVolume "+first)
		}
		o.before("call "+harness.PluginName+" Execute PersistentVolume "+pvName(ns, "data-c"), "freeze "+ns+"/c",
			"done "+harness.PluginName+" Execute PersistentVolume "+pvName(ns, "data-c"))
		if !reflect.DeepEqual(r.SnapshotClaims, []string{"data-a", "data-b", "data-c"}) {
			t.Errorf("VolumeSnapshots of claims %v, want [data-a data-b data-c]", r.SnapshotClaims)
		}
		checkClean(t, r)
		checkItems(t, sc, r)
	})
}
