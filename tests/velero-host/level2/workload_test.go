package level2

// Level 2 scenarios for the hooks that look beyond one pod (README "Beyond
// Velero's hooks"): consistency groups and run once per owner. quiesce finds
// the other pods of a group or workload by LISTing the namespace's pods from
// fake-kube, which Run fills with the same pod objects as Velero's fake
// cluster (same UIDs), so both sides agree on who the members are.

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1api "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apitypes "k8s.io/apimachinery/pkg/types"

	"quiesce.dev/velero-host/internal/harness"
)

// indexes returns the positions of the lines equal to one of want, in
// timeline order.
func indexes(lines []string, want ...string) []int {
	var out []int
	for i, l := range lines {
		if slices.Contains(want, l) {
			out = append(out, i)
		}
	}
	return out
}

// bracketed asserts that line (exactly once in the timeline) lies between
// "call <action> Execute <item>" and the matching "done …": it was written
// during that Execute (plugin RPCs are synchronous).
func (o order) bracketed(line, item string) {
	o.t.Helper()
	call := "call " + harness.PluginName + " Execute " + item
	o.before(call, line, "done "+harness.PluginName+" Execute "+item)
}

// pluginMessages returns the plugin's log entries whose message starts with prefix.
func pluginMessages(r *Result, prefix string) []harness.Entry {
	return harness.Filter(harness.FromPlugin(r.Entries, harness.Current().Basename()), func(e harness.Entry) bool {
		return strings.HasPrefix(e.Message, prefix)
	})
}

// itemBlocks reconstructs the item blocks Velero's engine formed, from its
// "adding <resource> <ns>/<name> to ItemBlock" lines, each block closed by
// "Backing Up Item Block including …". Blocks are formed by one goroutine,
// so these lines are in order even with several workers.
func itemBlocks(r *Result) [][]string {
	var blocks [][]string
	var cur []string
	for _, e := range r.Entries {
		switch {
		case strings.HasPrefix(e.Message, "adding ") && strings.HasSuffix(e.Message, " to ItemBlock"):
			cur = append(cur, strings.TrimSuffix(strings.TrimPrefix(e.Message, "adding "), " to ItemBlock"))
		case strings.HasPrefix(e.Message, "Backing Up Item Block including "):
			blocks = append(blocks, cur)
			cur = nil
		}
	}
	return blocks
}

// TestGroupFreezesTogether: pods a (claim data-a), b (claim data-b) and c (no
// claim) share quiesce.dev/group: orders. They share no claim, so Velero's
// engine puts each in its own item block (processed concurrently with 4
// workers). Every member is frozen before the first snapshot of any member
// (native VolumeSnapshotter and the CSI action's position) and thawed after
// the last; each pre and post hook runs exactly once.
func TestGroupFreezesTogether(t *testing.T) {
	forWorkers(t, "group", func(t *testing.T, ns string, tl Timeline, w int) {
		sc := Scenario{Namespace: ns}
		sc.withClaim("data-a", corev1api.ReadWriteOnce)
		sc.withClaim("data-b", corev1api.ReadWriteOnce)
		sc.Pods = []*corev1api.Pod{
			newPod(ns, "a", tl, []string{"data-a"}, hookSpec{}),
			newPod(ns, "b", tl, []string{"data-b"}, hookSpec{}),
			newPod(ns, "c", tl, nil, hookSpec{}),
		}
		for _, p := range sc.Pods {
			p.Annotations["quiesce.dev/group"] = "orders"
		}
		r := Run(t, sc, tl, w)
		pvA, pvB := pvName(ns, "data-a"), pvName(ns, "data-b")
		members := []string{"a", "b", "c"}
		var freezes, thaws []string
		for _, m := range members {
			freezes = append(freezes, "freeze "+ns+"/"+m)
			thaws = append(thaws, "thaw "+ns+"/"+m)
		}
		snapshots := []string{"snapshot " + pvA, "snapshot " + pvB, "csi-snapshot " + ns + "/data-a", "csi-snapshot " + ns + "/data-b"}

		o := order{t, r.Timeline}
		// Each freeze, thaw and snapshot exactly once.
		for _, l := range slices.Concat(freezes, thaws, snapshots) {
			o.at(l)
		}
		fi, si, ti := indexes(r.Timeline, freezes...), indexes(r.Timeline, snapshots...), indexes(r.Timeline, thaws...)
		if len(fi) == len(freezes) && len(si) == len(snapshots) && len(ti) == len(thaws) {
			if lastFreeze, firstSnap := slices.Max(fi), slices.Min(si); lastFreeze > firstSnap {
				t.Errorf("group not frozen before the first snapshot: %q (line %d) precedes %q (line %d)",
					r.Timeline[firstSnap], firstSnap, r.Timeline[lastFreeze], lastFreeze)
			}
			if lastSnap, firstThaw := slices.Max(si), slices.Min(ti); firstThaw < lastSnap {
				t.Errorf("group thawed before the last snapshot: %q (line %d) precedes %q (line %d)",
					r.Timeline[firstThaw], firstThaw, r.Timeline[lastSnap], lastSnap)
			}
		}
		// And each member's own freeze precedes its own thaw.
		for _, m := range members {
			o.before("freeze "+ns+"/"+m, "thaw "+ns+"/"+m)
		}
		if w == 1 {
			// One worker: blocks a, b, c in turn. The whole group freezes
			// inside the first member's PV Execute and thaws inside the last
			// member's (c's) pod Execute.
			for _, f := range freezes {
				o.bracketed(f, "PersistentVolume "+pvA)
			}
			for _, th := range thaws {
				o.bracketed(th, "Pod "+ns+"/c")
			}
			// The members' hooks run concurrently: any order within the
			// freeze and within the thaw.
			want := slices.Concat(sorted(freezes), []string{
				"snapshot " + pvA, "csi-snapshot " + ns + "/data-a",
				"snapshot " + pvB, "csi-snapshot " + ns + "/data-b",
			}, sorted(thaws))
			got := events(r.Timeline)
			if len(got) == len(want) {
				slices.Sort(got[:3])
				slices.Sort(got[7:])
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("events (freezes and thaws sorted):\n got  %q\n want %q", got, want)
			}
		}

		// Velero formed a block per pod (nothing pulled another pod in).
		blocks := itemBlocks(r)
		t.Logf("item blocks: %q", blocks)
		blockOf := map[string]int{}
		for i, b := range blocks {
			for _, it := range b {
				if name, ok := strings.CutPrefix(it, "pods "+ns+"/"); ok {
					if _, dup := blockOf[name]; dup {
						t.Errorf("pod %s added to two item blocks: %q", name, blocks)
					}
					blockOf[name] = i
				}
			}
		}
		if len(blockOf) != 3 || blockOf["a"] == blockOf["b"] || blockOf["b"] == blockOf["c"] || blockOf["a"] == blockOf["c"] {
			t.Errorf("want pods a, b, c in three separate item blocks; blocks: %q", blocks)
		}

		// The plugin's own account: membership listed once, thawed once.
		if got := pluginMessages(r, "Consistency group: "); len(got) != 1 || got[0].Str("members") != "a,b,c" || got[0].Str("group") != "orders" {
			t.Errorf("want one \"Consistency group: …\" line with group=orders members=a,b,c; got %v", got)
		}
		if got := pluginMessages(r, "Consistency group thawed"); len(got) != 1 || fmt.Sprint(got[0].Data["members"]) != "3" {
			t.Errorf("want one \"Consistency group thawed\" line with members=3; got %v", got)
		}
		checkClean(t, r)
		checkItems(t, sc, r)
	})
}

// TestRunOncePerOwner: three replicas db-0, db-1, db-2 of StatefulSet db
// (controller ownerReference, one UID), each with its own claim, annotated
// quiesce.dev/run-once-per: owner and quiesce.dev/run-on: role=primary;
// db-2 is labelled role=primary. Only db-2 runs its pre and post hooks, around
// its own snapshot; db-0 and db-1 run nothing but are backed up as usual.
func TestRunOncePerOwner(t *testing.T) {
	forWorkers(t, "run-once", func(t *testing.T, ns string, tl Timeline, w int) {
		sc := Scenario{Namespace: ns}
		roles := map[string]string{"db-0": "replica", "db-1": "replica", "db-2": "primary"}
		names := []string{"db-0", "db-1", "db-2"}
		for _, name := range names {
			claim := "data-" + name
			sc.withClaim(claim, corev1api.ReadWriteOnce)
			p := newPod(ns, name, tl, []string{claim}, hookSpec{})
			p.Labels = map[string]string{"app": "db", "role": roles[name]}
			p.Annotations["quiesce.dev/run-once-per"] = "owner"
			p.Annotations["quiesce.dev/run-on"] = "role=primary"
			p.OwnerReferences = []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db",
				UID: apitypes.UID("uid-sts-" + ns + "-db"), Controller: ptr(true), BlockOwnerDeletion: ptr(true),
			}}
			sc.Pods = append(sc.Pods, p)
		}
		r := Run(t, sc, tl, w)
		pv2 := pvName(ns, "data-db-2")
		o := order{t, r.Timeline}
		o.before("freeze "+ns+"/db-2", "snapshot "+pv2, "csi-snapshot "+ns+"/data-db-2", "thaw "+ns+"/db-2")
		o.bracketed("freeze "+ns+"/db-2", "PersistentVolume "+pv2)
		o.bracketed("thaw "+ns+"/db-2", "Pod "+ns+"/db-2")
		for _, name := range []string{"db-0", "db-1"} {
			o.absent("freeze " + ns + "/" + name)
			o.absent("thaw " + ns + "/" + name)
		}
		for _, name := range names {
			o.at("snapshot " + pvName(ns, "data-"+name))
			o.at("csi-snapshot " + ns + "/data-" + name)
		}

		// The choice is made once and said once; every skipped hook says
		// where it runs instead.
		if got := pluginMessages(r, "Run-once hooks of StatefulSet/db run in pod db-2 only: it matches run-on"); len(got) != 1 {
			t.Errorf("want one line naming db-2 as the runner; got %v", got)
		}
		skipped := map[string]int{}
		for _, e := range pluginMessages(r, "Hook skipped: it runs once per owner, in pod db-2") {
			if e.Str("runner") != "db-2" {
				t.Errorf("skip line with runner %q: %v", e.Str("runner"), e)
			}
			skipped[e.Str("pod")+"/"+e.Str("hookPhase")]++
		}
		wantSkipped := map[string]int{"db-0/pre": 1, "db-0/post": 1, "db-1/pre": 1, "db-1/post": 1}
		if !reflect.DeepEqual(skipped, wantSkipped) {
			t.Errorf("\"Hook skipped\" lines by pod/phase: %v, want %v", skipped, wantSkipped)
		}
		checkClean(t, r)
		checkItems(t, sc, r)
	})
}

func ptr[T any](v T) *T { return &v }

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }
