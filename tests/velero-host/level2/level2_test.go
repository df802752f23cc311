// Package level2 is Level 2 of quiesce's conformance harness: a real backup
// through Velero's own backup engine (pkg/backup), with quiesce loaded
// through Velero's plugin registry and manager next to Velero's built-in
// actions, and quiesce's hooks executed over pods/exec against fake-kube.
// It records, in one append-only timeline, when Velero's engine calls each
// action, when each pod is frozen and thawed (lines written by the hook
// commands themselves) and when each volume snapshot is cut (the native
// VolumeSnapshotter's CreateSnapshot, and the position of Velero's CSI PVC
// action), and asserts DESIGN.md §3's order: freeze < snapshot < thaw.
package level2

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	corev1api "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apitypes "k8s.io/apimachinery/pkg/types"

	"quiesce.dev/velero-host/internal/harness"
)

func TestMain(m *testing.M) {
	code := harness.Main(m, harness.WithCSIBuiltins())
	if fakeKube != nil {
		fakeKube.Close()
	}
	os.Exit(code)
}

// workerCounts are the --item-block-worker-count values every scenario runs
// with (1 is the server default).
var workerCounts = []int{1, 4}

type hookSpec struct {
	preFails bool // the pre hook exits 3 with on-error Fail
}

func newPod(ns, name string, tl Timeline, claims []string, hs hookSpec) *corev1api.Pod {
	pre := fmt.Sprintf("echo freeze %s/%s >> %s", ns, name, tl)
	if hs.preFails {
		pre += "; exit 3"
	}
	post := fmt.Sprintf("echo thaw %s/%s >> %s", ns, name, tl)
	cmd := func(s string) string {
		b, _ := json.Marshal([]string{"sh", "-c", s})
		return string(b)
	}
	p := &corev1api.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: name, UID: apitypes.UID("uid-pod-" + ns + "-" + name),
			Labels: map[string]string{"app": name},
			Annotations: map[string]string{
				"pre.hook.backup.quiesce.dev/command":  cmd(pre),
				"pre.hook.backup.quiesce.dev/on-error": "Fail",
				"pre.hook.backup.quiesce.dev/timeout":  "20s",
				"post.hook.backup.quiesce.dev/command": cmd(post),
			},
		},
		Spec: corev1api.PodSpec{
			NodeName:   "node-1",
			Containers: []corev1api.Container{{Name: "app", Image: "registry.example/app:1"}},
		},
		Status: corev1api.PodStatus{Phase: corev1api.PodRunning},
	}
	for _, c := range claims {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1api.Volume{
			Name:         c,
			VolumeSource: corev1api.VolumeSource{PersistentVolumeClaim: &corev1api.PersistentVolumeClaimVolumeSource{ClaimName: c}},
		})
		p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1api.VolumeMount{Name: c, MountPath: "/" + c})
	}
	return p
}

func pvName(ns, claim string) string { return "pv-" + ns + "-" + claim }

// withClaim adds a PVC Bound to a PV (a native, non-CSI volume).
func (sc *Scenario) withClaim(claim string, mode corev1api.PersistentVolumeAccessMode) {
	pv := pvName(sc.Namespace, claim)
	qty := resource.MustParse("1Gi")
	sc.PVCs = append(sc.PVCs, &corev1api.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: sc.Namespace, Name: claim, UID: apitypes.UID("uid-pvc-" + sc.Namespace + "-" + claim)},
		Spec: corev1api.PersistentVolumeClaimSpec{
			AccessModes: []corev1api.PersistentVolumeAccessMode{mode},
			VolumeName:  pv,
			Resources:   corev1api.VolumeResourceRequirements{Requests: corev1api.ResourceList{corev1api.ResourceStorage: qty}},
		},
		Status: corev1api.PersistentVolumeClaimStatus{Phase: corev1api.ClaimBound},
	})
	sc.PVs = append(sc.PVs, &corev1api.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: pv, UID: apitypes.UID("uid-" + pv), Labels: map[string]string{"topology.kubernetes.io/zone": "zone-a"}},
		Spec: corev1api.PersistentVolumeSpec{
			AccessModes: []corev1api.PersistentVolumeAccessMode{mode},
			Capacity:    corev1api.ResourceList{corev1api.ResourceStorage: qty},
			PersistentVolumeSource: corev1api.PersistentVolumeSource{
				AWSElasticBlockStore: &corev1api.AWSElasticBlockStoreVolumeSource{VolumeID: "vol-" + pv},
			},
			ClaimRef:                      &corev1api.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: sc.Namespace, Name: claim, UID: apitypes.UID("uid-pvc-" + sc.Namespace + "-" + claim)},
			PersistentVolumeReclaimPolicy: corev1api.PersistentVolumeReclaimDelete,
		},
		Status: corev1api.PersistentVolumeStatus{Phase: corev1api.VolumeBound},
	})
}

// withCSIClaim adds a PVC of StorageClass "csi" Bound to a CSI PV of
// csiDriver, labelled velero.io/volume-group=group unless group is "". The
// scenario becomes a CSI one (Scenario.CSI).
func (sc *Scenario) withCSIClaim(claim string, mode corev1api.PersistentVolumeAccessMode, group string) {
	sc.withClaim(claim, mode)
	sc.CSI = true
	storageClass := "csi"
	pvc, pv := sc.PVCs[len(sc.PVCs)-1], sc.PVs[len(sc.PVs)-1]
	pvc.Spec.StorageClassName = &storageClass
	if group != "" {
		pvc.Labels = map[string]string{"velero.io/volume-group": group}
	}
	pv.Spec.StorageClassName = storageClass
	pv.Spec.PersistentVolumeSource = corev1api.PersistentVolumeSource{
		CSI: &corev1api.CSIPersistentVolumeSource{Driver: csiDriver, VolumeHandle: "vol-" + pv.Name},
	}
}

// ---- timeline assertions ---------------------------------------------

type order struct {
	t     *testing.T
	lines []string
}

// at is the index of the only line equal to want (fails if absent or repeated).
func (o order) at(want string) int {
	o.t.Helper()
	idx := -1
	for i, l := range o.lines {
		if l == want {
			if idx >= 0 {
				o.t.Errorf("timeline has %q more than once", want)
				return idx
			}
			idx = i
		}
	}
	if idx < 0 {
		o.t.Errorf("timeline lacks %q", want)
	}
	return idx
}

// before asserts that each line occurs exactly once and in the given order.
func (o order) before(seq ...string) {
	o.t.Helper()
	prev := -1
	for i, s := range seq {
		at := o.at(s)
		if at < 0 {
			return
		}
		if i > 0 && at < prev {
			o.t.Errorf("order: %q (line %d) is not after %q (line %d)", s, at, seq[i-1], prev)
		}
		prev = at
	}
}

func (o order) absent(prefix string) {
	o.t.Helper()
	for _, l := range o.lines {
		if strings.HasPrefix(l, prefix) {
			o.t.Errorf("timeline has %q, want no line starting %q", l, prefix)
		}
	}
}

// events keeps the freeze/thaw/snapshot lines (drops the engine's calls).
func events(lines []string) []string {
	var out []string
	for _, l := range lines {
		if !strings.HasPrefix(l, "call ") && !strings.HasPrefix(l, "done ") {
			out = append(out, l)
		}
	}
	return out
}

// ---- common checks -----------------------------------------------------

// checkClean: the backup succeeded, Velero counted no error or warning, and
// nothing at Warn or above came from the plugin.
func checkClean(t *testing.T, r *Result) {
	t.Helper()
	if r.Err != nil {
		t.Errorf("BackupWithResolvers: %v", r.Err)
	}
	if r.Errors != 0 || r.Warnings != 0 {
		t.Errorf("Velero's counter: %d errors, %d warnings; want 0, 0:\n%s", r.Errors, r.Warnings, warnAndAbove(r.Entries))
	}
	plugin := harness.FromPlugin(r.Entries, harness.Current().Basename())
	if len(plugin) == 0 {
		t.Errorf("no log line from the plugin reached the backup log")
	}
	if bad := harness.AtOrAbove(plugin, logrus.WarnLevel); len(bad) > 0 {
		t.Errorf("plugin logged at Warn or above: %v", bad)
	}
	// Hook lines reach the backup log with Velero's fields
	// (`velero backup logs X | grep hookCommand`).
	for _, p := range []string{"pre", "post"} {
		if len(harness.Filter(plugin, func(e harness.Entry) bool { return e.Str("hookPhase") == p && e.Str("hookCommand") != "" })) == 0 {
			t.Errorf("no plugin line with hookPhase=%s and hookCommand in the backup log", p)
		}
	}
}

func warnAndAbove(es []harness.Entry) string {
	var b strings.Builder
	for _, e := range harness.AtOrAbove(es, logrus.WarnLevel) {
		if harness.HostNoise(e) != "" {
			continue
		}
		b.WriteString("  " + e.String() + "\n")
	}
	return b.String()
}

// checkItems: the pods, claims and volumes are in the tarball, each pod
// byte-for-byte the object Velero read (as JSON, deep-equal) — except the
// dropped pods, whose chains failed: neither they nor the claims and volumes
// only they mount are in it. Native scenarios have one volume snapshot per
// volume backed up; CSI ones none, but a VolumeSnapshot item per claim that
// fake-kube holds a snapshot of.
func checkItems(t *testing.T, sc Scenario, r *Result, dropped ...string) {
	t.Helper()
	keptClaims := map[string]bool{}
	for _, p := range sc.Pods {
		key := itemKey("pods", p.Namespace, p.Name)
		got, ok := r.Items[key]
		if slices.Contains(dropped, p.Name) {
			if ok {
				t.Errorf("pod %s is in the backup tarball; Velero should have dropped it", key)
			}
			continue
		}
		for _, v := range p.Spec.Volumes {
			if v.PersistentVolumeClaim != nil {
				keptClaims[v.PersistentVolumeClaim.ClaimName] = true
			}
		}
		if !ok {
			t.Errorf("pod %s missing from the backup tarball (have %v)", key, keys(r.Items))
			continue
		}
		var a, b map[string]any
		_ = json.Unmarshal(got, &a)
		_ = json.Unmarshal(r.Cluster[key], &b)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("pod %s changed in the backup:\n got  %s\n want %s", key, got, r.Cluster[key])
		}
	}
	native := 0
	for i, c := range sc.PVCs {
		v := sc.PVs[i]
		_, haveClaim := r.Items[itemKey("persistentvolumeclaims", c.Namespace, c.Name)]
		_, haveVolume := r.Items[itemKey("persistentvolumes", "", v.Name)]
		if haveClaim != keptClaims[c.Name] || haveVolume != keptClaims[c.Name] {
			t.Errorf("claim %s/%s in the tarball: %v, volume %s: %v; want %v (mounted by a pod kept: %v)",
				c.Namespace, c.Name, haveClaim, v.Name, haveVolume, keptClaims[c.Name], keptClaims[c.Name])
		}
		if keptClaims[c.Name] && !sc.CSI {
			native++
		}
	}
	if r.Snapshots != native {
		t.Errorf("Velero recorded %d native volume snapshots, want %d", r.Snapshots, native)
	}
	if sc.CSI {
		var items []string
		for k := range r.Items {
			if strings.HasPrefix(k, "volumesnapshots.snapshot.storage.k8s.io/"+sc.Namespace+"/") {
				items = append(items, k)
			}
		}
		if len(items) != len(r.SnapshotClaims) {
			t.Errorf("VolumeSnapshot items in the tarball %v; fake-kube holds snapshots of %v", items, r.SnapshotClaims)
		}
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// runs numbers the scenario runs: fake-kube lives as long as the test
// binary (go test -count=N), so every run gets its own namespace.
var runs int

func forWorkers(t *testing.T, base string, fn func(t *testing.T, ns string, tl Timeline, workers int)) {
	for _, w := range workerCounts {
		t.Run(fmt.Sprintf("workers=%d", w), func(t *testing.T) {
			runs++
			ns := fmt.Sprintf("%s-w%d-%d", base, w, runs)
			tl := Timeline(t.TempDir() + "/timeline")
			fn(t, ns, tl, w)
		})
	}
}

// ---- scenarios --------------------------------------------------------------

// TestOnePVC: pod db mounts claim data (Bound to a native PV). Velero's
// engine calls quiesce's Execute on the PV inside the claim's chain; the
// pod is frozen there, before the PV's native snapshot and before the CSI
// action's position on the claim; it is thawed at Execute(pod).
func TestOnePVC(t *testing.T) {
	forWorkers(t, "one-pvc", func(t *testing.T, ns string, tl Timeline, w int) {
		sc := Scenario{Namespace: ns}
		sc.withClaim("data", corev1api.ReadWriteOnce)
		sc.Pods = []*corev1api.Pod{newPod(ns, "db", tl, []string{"data"}, hookSpec{})}
		r := Run(t, sc, tl, w)
		pv := pvName(ns, "data")
		o := order{t, r.Timeline}
		o.before(
			"call velero.io/pod Execute Pod "+ns+"/db",
			"call velero.io/pv Execute PersistentVolumeClaim "+ns+"/data",
			"call "+harness.PluginName+" Execute PersistentVolume "+pv,
			"freeze "+ns+"/db",
			"done "+harness.PluginName+" Execute PersistentVolume "+pv,
			"snapshot "+pv,
			"csi-snapshot "+ns+"/data",
			"call "+harness.PluginName+" Execute Pod "+ns+"/db",
			"thaw "+ns+"/db",
			"done "+harness.PluginName+" Execute Pod "+ns+"/db",
		)
		want := []string{"freeze " + ns + "/db", "snapshot " + pv, "csi-snapshot " + ns + "/data", "thaw " + ns + "/db"}
		if got := events(r.Timeline); !reflect.DeepEqual(got, want) {
			t.Errorf("events:\n got  %q\n want %q", got, want)
		}
		checkClean(t, r)
		checkItems(t, sc, r)
	})
}

// TestTwoPVCs: one pod, two claims. Frozen once, at the first PV; both
// snapshots are cut while it is frozen; thawed once, after both.
func TestTwoPVCs(t *testing.T) {
	forWorkers(t, "two-pvcs", func(t *testing.T, ns string, tl Timeline, w int) {
		sc := Scenario{Namespace: ns}
		sc.withClaim("data", corev1api.ReadWriteOnce)
		sc.withClaim("wal", corev1api.ReadWriteOnce)
		sc.Pods = []*corev1api.Pod{newPod(ns, "db", tl, []string{"data", "wal"}, hookSpec{})}
		r := Run(t, sc, tl, w)
		pvData, pvWAL := pvName(ns, "data"), pvName(ns, "wal")
		o := order{t, r.Timeline}
		o.before("freeze "+ns+"/db", "snapshot "+pvData, "snapshot "+pvWAL, "thaw "+ns+"/db")
		o.before("call "+harness.PluginName+" Execute PersistentVolume "+pvData, "freeze "+ns+"/db", "done "+harness.PluginName+" Execute PersistentVolume "+pvData)
		o.before("csi-snapshot "+ns+"/data", "csi-snapshot "+ns+"/wal", "thaw "+ns+"/db")
		want := []string{"freeze " + ns + "/db", "snapshot " + pvData, "csi-snapshot " + ns + "/data", "snapshot " + pvWAL, "csi-snapshot " + ns + "/wal", "thaw " + ns + "/db"}
		if got := events(r.Timeline); !reflect.DeepEqual(got, want) {
			t.Errorf("events:\n got  %q\n want %q", got, want)
		}
		checkClean(t, r)
		checkItems(t, sc, r)
	})
}

// TestSharedRWXClaim: pods a and b mount one ReadWriteMany claim. Velero's
// velero.io/pvc ItemBlockAction puts both pods in one item block, so
// quiesce has indexed both when the PV is executed: both are frozen before
// the single snapshot, each thawed at its own Execute.
func TestSharedRWXClaim(t *testing.T) {
	forWorkers(t, "rwx", func(t *testing.T, ns string, tl Timeline, w int) {
		sc := Scenario{Namespace: ns}
		sc.withClaim("shared", corev1api.ReadWriteMany)
		sc.Pods = []*corev1api.Pod{
			newPod(ns, "a", tl, []string{"shared"}, hookSpec{}),
			newPod(ns, "b", tl, []string{"shared"}, hookSpec{}),
		}
		r := Run(t, sc, tl, w)
		pv := pvName(ns, "shared")
		o := order{t, r.Timeline}
		o.before("freeze "+ns+"/a", "snapshot "+pv, "thaw "+ns+"/a")
		o.before("freeze "+ns+"/b", "snapshot "+pv, "thaw "+ns+"/b")
		o.before("freeze "+ns+"/b", "csi-snapshot "+ns+"/shared", "thaw "+ns+"/a")
		o.before("call velero.io/pvc GetRelatedItems PersistentVolumeClaim "+ns+"/shared", "call "+harness.PluginName+" GetRelatedItems Pod "+ns+"/b", "call "+harness.PluginName+" Execute PersistentVolume "+pv)
		checkClean(t, r)
		checkItems(t, sc, r)
	})
}

// TestPodWithoutPVC: no volume, no snapshot: frozen and thawed at the pod's
// own Execute, without the "snapshots may have preceded the freeze" warning.
func TestPodWithoutPVC(t *testing.T) {
	forWorkers(t, "no-pvc", func(t *testing.T, ns string, tl Timeline, w int) {
		sc := Scenario{Namespace: ns}
		sc.Pods = []*corev1api.Pod{newPod(ns, "web", tl, nil, hookSpec{})}
		r := Run(t, sc, tl, w)
		o := order{t, r.Timeline}
		o.before(
			"call "+harness.PluginName+" Execute Pod "+ns+"/web",
			"freeze "+ns+"/web",
			"thaw "+ns+"/web",
			"done "+harness.PluginName+" Execute Pod "+ns+"/web",
		)
		o.absent("snapshot ")
		o.absent("csi-snapshot ")
		checkClean(t, r)
		checkItems(t, sc, r)
	})
}

// TestPreHookFail: the pre hook of db exits 3 with on-error Fail. The freeze
// runs in quiesce's Execute of db's volume, which therefore fails (issue 15):
// Velero's engine takes no native snapshot of that volume, its claim's CSI
// action never runs, and db, its claim and its volume are not in the backup.
// quiesce thaws db inside that same Execute (its post hook runs once,
// because the pre hook ran). Pod web, with a healthy freeze, is backed up
// with its snapshot in the same backup. Before issue 15 the volume's Execute
// succeeded and its snapshot was cut unquiesced.
func TestPreHookFail(t *testing.T) {
	forWorkers(t, "pre-fail", func(t *testing.T, ns string, tl Timeline, w int) {
		sc := failedFreeze(ns, tl, false)
		r := Run(t, sc, tl, w)
		pv := pvName(ns, "data")
		o := order{t, r.Timeline}
		o.thawedInRefusal(ns, pv)
		o.absent("snapshot " + pv)
		o.absent("csi-snapshot " + ns + "/data")
		o.absent("call " + harness.PluginName + " Execute Pod " + ns + "/db")
		o.before("freeze "+ns+"/web", "snapshot "+pvName(ns, "www"), "csi-snapshot "+ns+"/www", "thaw "+ns+"/web")
		if r.Err != nil {
			t.Errorf("BackupWithResolvers: %v (an item error must not fail the whole backup)", r.Err)
		}
		checkRefusal(t, r, ns, "db", pv, "data")
		checkItems(t, sc, r, "db")
	})
}

// failedFreeze: pod db (claim data) whose pre hook fails with on-error Fail,
// and pod web (claim www) with a healthy freeze; native or CSI volumes.
func failedFreeze(ns string, tl Timeline, csi bool) Scenario {
	sc := Scenario{Namespace: ns}
	for _, claim := range []string{"data", "www"} {
		if csi {
			sc.withCSIClaim(claim, corev1api.ReadWriteOnce, "")
		} else {
			sc.withClaim(claim, corev1api.ReadWriteOnce)
		}
	}
	sc.Pods = []*corev1api.Pod{
		newPod(ns, "db", tl, []string{"data"}, hookSpec{preFails: true}),
		newPod(ns, "web", tl, []string{"www"}, hookSpec{}),
	}
	return sc
}

// thawedInRefusal: db is frozen and thawed inside quiesce's Execute of its
// volume pv, which fails.
func (o order) thawedInRefusal(ns, pv string) {
	o.t.Helper()
	o.before(
		"call "+harness.PluginName+" Execute PersistentVolume "+pv,
		"freeze "+ns+"/db",
		"thaw "+ns+"/db",
		"done "+harness.PluginName+" Execute PersistentVolume "+pv+" error",
	)
}

// checkRefusal: Velero's counter has exactly 2 errors — the plugin's "Error
// executing hook" for pod's pre hook and the engine's one "Error backing up
// item" for the pod's chain, whose error is the volume's refusal — and 1
// warning, the plugin's "Volume not snapshotted" naming the volume, its claim
// and the pods thawed for it; nothing else at Warn or above.
func checkRefusal(t *testing.T, r *Result, ns, pod, pv, claim string) {
	t.Helper()
	if r.Errors != 2 || r.Warnings != 1 {
		t.Errorf("Velero's counter: %d errors, %d warnings; want 2, 1", r.Errors, r.Warnings)
	}
	refusal := fmt.Sprintf(`volume %s (claim %s/%s) is not snapshotted: pre hook "<from-annotation>" failed in container "app" of pod %s/%s`, pv, ns, claim, ns, pod)
	var hookErrs, itemErrs, refusedWarns, other []harness.Entry
	for _, e := range harness.AtOrAbove(r.Entries, logrus.WarnLevel) {
		switch {
		case harness.HostNoise(e) != "":
		case e.Message == "Error executing hook" && e.Str("pluginName") == harness.Current().Basename() &&
			e.Str("hookPhase") == "pre" && e.Str("namespace") == ns && e.Str("pod") == pod:
			hookErrs = append(hookErrs, e)
		case e.Message == "Error backing up item" && fmt.Sprint(e.Data["name"]) == pod &&
			strings.Contains(fmt.Sprint(e.Data["error.message"]), "error executing custom action (groupResource=persistentvolumes, namespace=, name="+pv+")") &&
			strings.Contains(fmt.Sprint(e.Data["error.message"]), refusal):
			itemErrs = append(itemErrs, e)
		case e.Level == logrus.WarnLevel && strings.HasPrefix(e.Message, "Volume not snapshotted") &&
			e.Str("persistentVolume") == pv && e.Str("claim") == claim && strings.Contains(e.Str("pods"), pod):
			refusedWarns = append(refusedWarns, e)
		default:
			other = append(other, e)
		}
	}
	if len(hookErrs) != 1 || len(itemErrs) != 1 || len(refusedWarns) != 1 || len(other) != 0 {
		t.Errorf("want one plugin \"Error executing hook\" and one Velero \"Error backing up item\" (%s) for pod %s, one \"Volume not snapshotted\" warning, nothing else at Warn+; got %d, %d, %d and:\n%v",
			refusal, pod, len(hookErrs), len(itemErrs), len(refusedWarns), other)
	}
}
