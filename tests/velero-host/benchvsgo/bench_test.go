//go:build benchvsgo

package benchvsgo

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	velerov1api "github.com/vmware-tanzu/velero/pkg/apis/velero/v1"
	biav2cli "github.com/vmware-tanzu/velero/pkg/plugin/clientmgmt/backupitemaction/v2"
	"github.com/vmware-tanzu/velero/pkg/plugin/clientmgmt/process"
	"github.com/vmware-tanzu/velero/pkg/plugin/framework/common"

	"quiesce.dev/velero-host/internal/harness"
)

var (
	launches = flag.Int("launches", 20, "plugin launches per implementation")
	calls    = flag.Int("calls", 100, "measured Execute calls per launch")
	warmup   = flag.Int("warmup", 5, "unmeasured Execute calls per launch before the measured ones")
	settle   = flag.Duration("settle", 100*time.Millisecond, "wait after ready before reading the idle RSS")
)

// goPluginNote says which Go plugin is the baseline and why.
const goPluginNote = "in-repo Go reference plugin cmd/velero-plugin-quiesce-go (Velero's Go framework, " +
	"same names/kinds/selectors, pass-through Execute); Velero's example plugin " +
	"github.com/vmware-tanzu/velero-plugin-example could not be fetched here " +
	"(proxy.golang.org: 403 \"not available\"; GOPROXY=direct: github.com not resolvable)"

func TestMain(m *testing.M) {
	if !(len(os.Args) > 1 && os.Args[1] == "run-plugins") && os.Getenv(harness.EnvPluginBin) == "" {
		bin, err := harness.BuildRustPluginRelease()
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchvsgo:", err)
			os.Exit(1)
		}
		os.Setenv(harness.EnvPluginBin, bin)
	}
	os.Exit(harness.Main(m))
}

type subject struct {
	name string
	p    harness.Plugin
	h    *harness.Host

	ready, stop, exec []time.Duration
	idleRSS, peakRSS  []int // KiB
	forced            int   // launches whose process was still alive after Kill
}

func TestBenchVsGo(t *testing.T) {
	rust := harness.Current()
	goSrc, err := harness.BuildGoReferencePlugin(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	goP, err := harness.InstallPlugin(goSrc, filepath.Join(t.TempDir(), "plugins"), "go")
	if err != nil {
		t.Fatal(err)
	}
	item, size := benchPod(t)
	backup := harness.Backup()

	subjects := []*subject{{name: "Rust", p: rust}, {name: "Go", p: goP}}
	for _, s := range subjects {
		s.h = harness.NewHostWith(t, s.p)
		s.h.MustDiscover() // the same registry check Level 1 does
		id, err := s.h.Registry.Get(common.PluginKindBackupItemActionV2, harness.PluginName)
		if err != nil || id.Command != s.p.Command {
			t.Fatalf("%s: registry Get(BackupItemActionV2, %s) = %+v, %v", s.name, harness.PluginName, id, err)
		}
	}
	// Alternate the order so that drift (thermal, background load) hits both.
	for i := 0; i < *launches; i++ {
		order := subjects
		if i%2 == 1 {
			order = []*subject{subjects[1], subjects[0]}
		}
		for _, s := range order {
			s.launch(t, item, backup, i == 0)
		}
	}
	printTable(subjects, size)
}

func (s *subject) launch(t *testing.T, item *unstructured.Unstructured, backup *velerov1api.Backup, check bool) {
	t.Helper()
	if left := harness.ChildPIDs(s.p.Command); len(left) != 0 {
		t.Fatalf("%s: plugin processes left from an earlier launch: %v", s.name, left)
	}
	key := process.KindAndName{Kind: common.PluginKindBackupItemActionV2, Name: harness.PluginName}

	// spawn -> ready: what the manager's GetBackupItemActionV2 plus the
	// first call do: go-plugin client start + handshake, then dispense.
	start := time.Now()
	rp, err := process.NewRestartableProcessFactory().NewRestartableProcess(s.p.Command, s.h.Log, harness.LogLevel)
	if err != nil {
		t.Fatalf("%s: starting the plugin: %v", s.name, err)
	}
	if _, err := rp.GetByKindAndName(key); err != nil {
		rp.Stop()
		t.Fatalf("%s: dispense: %v", s.name, err)
	}
	s.ready = append(s.ready, time.Since(start))

	pids := harness.ChildPIDs(s.p.Command)
	if len(pids) != 1 {
		rp.Stop()
		t.Fatalf("%s: want one plugin process, found %v", s.name, pids)
	}
	pid := pids[0]
	time.Sleep(*settle)
	rss, _, err := harness.ProcMem(pid)
	if err != nil {
		t.Fatal(err)
	}
	s.idleRSS = append(s.idleRSS, rss)

	// The client the manager hands to the backup engine.
	act := biav2cli.NewRestartableBackupItemAction(harness.PluginName, rp)
	for i := 0; i < *warmup+*calls; i++ {
		t0 := time.Now()
		out, _, _, _, err := act.Execute(item, backup)
		d := time.Since(t0)
		if err != nil {
			t.Fatalf("%s: Execute: %v", s.name, err)
		}
		if check && i == 0 && !reflect.DeepEqual(out.UnstructuredContent(), item.UnstructuredContent()) {
			t.Fatalf("%s: Execute did not pass the item through unchanged", s.name)
		}
		if i >= *warmup {
			s.exec = append(s.exec, d)
		}
	}
	_, hwm, err := harness.ProcMem(pid)
	if err != nil {
		t.Fatal(err)
	}
	s.peakRSS = append(s.peakRSS, hwm)

	// Shutdown -> exit: go-plugin's Kill (graceful shutdown RPC, waits for
	// the process to exit, force-kills after 2 s).
	t0 := time.Now()
	rp.Stop()
	s.stop = append(s.stop, time.Since(t0))
	if harness.Alive(pid) {
		s.forced++
		t.Errorf("%s: pid %d still alive after Kill returned", s.name, pid)
	}
}

// benchPod is harness.PodJSON without any hook annotations (neither
// Velero's nor quiesce's), padded to ~4 KiB of compact JSON.
func benchPod(t *testing.T) (*unstructured.Unstructured, int) {
	item := harness.MustItem(harness.PodJSON)
	ann := item.GetAnnotations()
	for k := range ann {
		if strings.Contains(k, "hook") || strings.Contains(k, "quiesce") {
			delete(ann, k)
		}
	}
	ann["example.com/padding"] = ""
	item.SetAnnotations(ann)
	b, _ := json.Marshal(item.Object)
	if n := 4096 - len(b); n > 0 {
		ann["example.com/padding"] = strings.Repeat("x", n)
		item.SetAnnotations(ann)
	}
	b, err := json.Marshal(item.Object)
	if err != nil {
		t.Fatal(err)
	}
	// Round-trip through JSON so that numbers are int64 as Velero's
	// dynamic client produces them.
	return harness.MustItem(string(b)), len(b)
}

func quantile(ds []time.Duration, q float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	i := int(q*float64(len(s)-1) + 0.5)
	return s[i]
}

func medianInt(xs []int) int {
	s := append([]int(nil), xs...)
	sort.Ints(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func maxInt(xs []int) int {
	m := 0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func fileSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}

// veleroVersion is the Velero module version this test was built with (as
// run.sh prints it; GOFLAGS=-modfile=… selects a compat line).
func veleroVersion() string {
	root, err := harness.ModuleRoot()
	if err != nil {
		return "?"
	}
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/vmware-tanzu/velero")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

func printTable(ss []*subject, podSize int) {
	r, g := ss[0], ss[1]
	type row struct {
		metric string
		a, b   float64
		unit   string
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	mib := func(k int) float64 { return float64(k) / 1024 }
	rows := []row{
		{"spawn → ready (start+handshake+dispense), median", ms(quantile(r.ready, .5)), ms(quantile(g.ready, .5)), "ms"},
		{"spawn → ready, max", ms(quantile(r.ready, 1)), ms(quantile(g.ready, 1)), "ms"},
		{"idle RSS after ready (VmRSS), median", mib(medianInt(r.idleRSS)), mib(medianInt(g.idleRSS)), "MiB"},
		{"peak RSS after calls (VmHWM), median", mib(medianInt(r.peakRSS)), mib(medianInt(g.peakRSS)), "MiB"},
		{"peak RSS after calls (VmHWM), max", mib(maxInt(r.peakRSS)), mib(maxInt(g.peakRSS)), "MiB"},
		{"Execute round trip, median", us(quantile(r.exec, .5)), us(quantile(g.exec, .5)), "µs"},
		{"Execute round trip, p99", us(quantile(r.exec, .99)), us(quantile(g.exec, .99)), "µs"},
		{"Shutdown → exit (go-plugin Kill), median", ms(quantile(r.stop, .5)), ms(quantile(g.stop, .5)), "ms"},
		{"Shutdown → exit, max", ms(quantile(r.stop, 1)), ms(quantile(g.stop, 1)), "ms"},
		{"binary size", mib(int(fileSize(r.p.Command) / 1024)), mib(int(fileSize(g.p.Command) / 1024)), "MiB"},
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nbench-vs-go: Velero %s client (process.RestartableProcess + BIA v2 gRPC client, go-plugin)\n", veleroVersion())
	fmt.Fprintf(&b, "  Rust: %s\n", r.p.Source)
	fmt.Fprintf(&b, "  Go:   %s\n", goPluginNote)
	fmt.Fprintf(&b, "  %d launches each (interleaved), %d measured Execute calls each (%d per launch after %d warm-up), pod %d bytes JSON, no hooks\n\n",
		len(r.ready), len(r.exec), *calls, *warmup, podSize)
	fmt.Fprintf(&b, "| %-50s | %12s | %12s | %16s |\n", "metric", "Rust", "Go", "ratio (Rust/Go)")
	fmt.Fprintf(&b, "|%s|%s|%s|%s|\n", strings.Repeat("-", 52), strings.Repeat("-", 14), strings.Repeat("-", 14), strings.Repeat("-", 18))
	for _, x := range rows {
		ratio := "n/a"
		if x.b != 0 {
			ratio = fmt.Sprintf("%.2f", x.a/x.b)
		}
		fmt.Fprintf(&b, "| %-50s | %8.2f %-3s | %8.2f %-3s | %16s |\n", x.metric, x.a, x.unit, x.b, x.unit, ratio)
	}
	fmt.Fprintf(&b, "\nprocesses still alive after Kill returned: Rust %d, Go %d\n", r.forced, g.forced)
	fmt.Fprintf(&b, "Velero backup-log warnings/errors (LogHook): Rust %d/%d, Go %d/%d\n",
		r.h.Counter.GetCount(logrus.WarnLevel), r.h.Counter.GetCount(logrus.ErrorLevel),
		g.h.Counter.GetCount(logrus.WarnLevel), g.h.Counter.GetCount(logrus.ErrorLevel))
	fmt.Print(b.String())
}
