//go:build benchfreeze

package level2

// make bench-freeze (issue 16's measurement): how long a pod's application
// stays frozen in one backup on Velero's own engine, with Velero's real CSI
// actions and their default polling, while fake-kube's simulated snapshot
// controller cuts each VolumeSnapshot after 50 ms, 500 ms or 2 s. The same
// pods, each with one CSI claim, are backed up with (a) Velero's own exec
// hooks (pre/post.hook.backup.velero.io/*, run by Velero's engine through a
// WebSocket executor into fake-kube), (b) quiesce with the thaw at the cut
// switched off (QUIESCE_THAW_AT_CUT=false), (c) quiesce as shipped. A pod's
// freeze window is measured the same way for all three, from fake-kube's
// exec timeline: its pre hook's end to its post hook's start.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1api "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apitypes "k8s.io/apimachinery/pkg/types"

	"quiesce.dev/velero-host/internal/harness"
)

// benchMode is one way of freezing the same pods.
type benchMode struct {
	name        string
	veleroHooks bool
	thawAtCut   bool
}

var benchModes = []benchMode{
	{name: "(a) Velero's hooks", veleroHooks: true},
	{name: "(b) quiesce, thaw at the cut off"},
	{name: "(c) quiesce, thaw at the cut on", thawAtCut: true},
}

// benchPod is pod name mounting claim, frozen by `true freeze` and thawed by
// `true thaw` in its container, under Velero's or quiesce's annotation keys.
func benchPod(ns, name, claim string, veleroHooks bool) *corev1api.Pod {
	domain := "quiesce.dev"
	if veleroHooks {
		domain = "velero.io"
	}
	cmd := func(verb string) string {
		b, _ := json.Marshal([]string{"true", verb})
		return string(b)
	}
	return &corev1api.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: name, UID: apitypes.UID("uid-pod-" + ns + "-" + name),
			Annotations: map[string]string{
				"pre.hook.backup." + domain + "/command":  cmd("freeze"),
				"post.hook.backup." + domain + "/command": cmd("thaw"),
			},
		},
		Spec: corev1api.PodSpec{
			NodeName:   "node-1",
			Containers: []corev1api.Container{{Name: "app", Image: "registry.example/app:1", VolumeMounts: []corev1api.VolumeMount{{Name: claim, MountPath: "/data"}}}},
			Volumes: []corev1api.Volume{{Name: claim, VolumeSource: corev1api.VolumeSource{
				PersistentVolumeClaim: &corev1api.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}},
		},
		Status: corev1api.PodStatus{Phase: corev1api.PodRunning},
	}
}

// freezeWindows are the pods' windows from fake-kube's timeline: from the end
// of the exec of `true freeze` to the start of `true thaw`.
func freezeWindows(t *testing.T, events []harness.KubeEvent) map[string]time.Duration {
	t.Helper()
	frozen := map[string]int64{}
	windows := map[string]time.Duration{}
	for _, e := range events {
		if e.Exec == nil || len(e.Exec.Argv) != 2 || e.Exec.Argv[0] != "true" {
			continue
		}
		switch {
		case e.Type == "ExecFinished" && e.Exec.Argv[1] == "freeze":
			frozen[e.Exec.Pod] = e.AtMicros
		case e.Type == "ExecStarted" && e.Exec.Argv[1] == "thaw":
			at, ok := frozen[e.Exec.Pod]
			if !ok {
				t.Fatalf("%s thawed before it was frozen", e.Exec.Pod)
			}
			windows[e.Exec.Pod] = time.Duration(e.AtMicros-at) * time.Microsecond
		}
	}
	return windows
}

// medianAndMax of the windows.
func medianAndMax(windows map[string]time.Duration) (time.Duration, time.Duration) {
	var all []time.Duration
	for _, w := range windows {
		all = append(all, w)
	}
	slices.Sort(all)
	n := len(all)
	if n == 0 {
		return 0, 0
	}
	median := all[n/2]
	if n%2 == 0 {
		median = (all[n/2-1] + all[n/2]) / 2
	}
	return median, all[n-1]
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 0, 64)
}

func TestBenchFreeze(t *testing.T) {
	pods := 5
	if n, err := strconv.Atoi(os.Getenv("QUIESCE_BENCH_PODS")); err == nil && n > 0 {
		pods = n
	}
	latencies := []time.Duration{50 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second}
	type cell struct{ median, max time.Duration }
	results := map[time.Duration][]cell{}
	for _, latency := range latencies {
		k := kubeCutting(t, latency)
		for _, mode := range benchModes {
			runs++
			ns := fmt.Sprintf("bench-%d-%d", latency.Milliseconds(), runs)
			sc := Scenario{Namespace: ns, VeleroHooks: mode.veleroHooks}
			for p := 0; p < pods; p++ {
				claim := fmt.Sprintf("data-%d", p)
				sc.withCSIClaim(claim, corev1api.ReadWriteOnce, "")
				sc.Pods = append(sc.Pods, benchPod(ns, fmt.Sprintf("db-%d", p), claim, mode.veleroHooks))
			}
			// The plugin processes the manager starts inherit the switch.
			if mode.thawAtCut {
				os.Unsetenv("QUIESCE_THAW_AT_CUT")
			} else {
				os.Setenv("QUIESCE_THAW_AT_CUT", "false")
			}
			r := RunOn(t, k, sc, Timeline(t.TempDir()+"/timeline"), 1)
			os.Unsetenv("QUIESCE_THAW_AT_CUT")
			if r.Err != nil || r.Errors != 0 {
				t.Fatalf("%s at %s: backup error %v, %d error lines:\n%s", mode.name, latency, r.Err, r.Errors, warnAndAbove(r.Entries))
			}
			windows := freezeWindows(t, r.Kube)
			if len(windows) != pods {
				t.Fatalf("%s at %s: %d freeze windows, want %d: %v", mode.name, latency, len(windows), pods, r.Kube)
			}
			median, max := medianAndMax(windows)
			results[latency] = append(results[latency], cell{median, max})
			t.Logf("%s, cut after %s: windows %v", mode.name, latency, windows)
		}
	}

	velero := "?"
	if out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/vmware-tanzu/velero").Output(); err == nil {
		velero = strings.TrimSpace(string(out))
	}
	fmt.Printf("\nfreeze window per pod (ms, median / max): %d pods, each with one CSI claim, Velero %s engine, 1 item-block worker, Velero's CSI polling (every 5 s)\n", pods, velero)
	fmt.Printf("| cut after | %s | %s | (b)/(a) | %s | (c)/(a) | (c) − cut |\n", benchModes[0].name, benchModes[1].name, benchModes[2].name)
	fmt.Println("|---|---|---|---|---|---|---|")
	ratio := func(x, y time.Duration) string { return strconv.FormatFloat(float64(x)/float64(y), 'f', 3, 64) }
	for _, latency := range latencies {
		c := results[latency]
		fmt.Printf("| %s | %s / %s | %s / %s | %s | %s / %s | %s | %s |\n", latency,
			ms(c[0].median), ms(c[0].max), ms(c[1].median), ms(c[1].max), ratio(c[1].median, c[0].median),
			ms(c[2].median), ms(c[2].max), ratio(c[2].median, c[0].median), ms(c[2].median-latency))
	}
	at500 := results[500*time.Millisecond]
	fmt.Printf("thaw-at-cut vs velero hooks at 500ms: %s\n", ratio(at500[2].median, at500[0].median))
}
