// Package level1 is Level 1 of quiesce's conformance harness: the plugin
// binary is discovered, launched, called and stopped by Velero's own
// process.Registry and clientmgmt.Manager (the server's code path), with the
// backup controller's logger set-up (Velero's LogHook counting warnings and
// errors).
package level1

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	biav2cli "github.com/vmware-tanzu/velero/pkg/plugin/clientmgmt/backupitemaction/v2"
	ibav1cli "github.com/vmware-tanzu/velero/pkg/plugin/clientmgmt/itemblockaction/v1"
	"github.com/vmware-tanzu/velero/pkg/plugin/clientmgmt/process"
	"github.com/vmware-tanzu/velero/pkg/plugin/framework"
	"github.com/vmware-tanzu/velero/pkg/plugin/framework/common"
	"github.com/vmware-tanzu/velero/pkg/plugin/velero"
	biav2 "github.com/vmware-tanzu/velero/pkg/plugin/velero/backupitemaction/v2"
	ibav1 "github.com/vmware-tanzu/velero/pkg/plugin/velero/itemblockaction/v1"
	"github.com/vmware-tanzu/velero/pkg/test"

	"quiesce.dev/velero-host/internal/harness"
)

func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }

const callLimit = time.Minute

var allKinds = []common.PluginKind{
	common.PluginKindBackupItemAction, common.PluginKindBackupItemActionV2,
	common.PluginKindVolumeSnapshotter, common.PluginKindObjectStore,
	common.PluginKindRestoreItemAction, common.PluginKindRestoreItemActionV2,
	common.PluginKindDeleteItemAction, common.PluginKindItemBlockAction,
}

// TestDiscovery: DiscoverPlugins over a directory holding our binary; the
// registry lists quiesce.dev/pod-hooks under exactly BackupItemActionV2 and
// ItemBlockAction, after Velero's built-ins, with Command = the installed
// path; the ListPlugins process is stopped gracefully.
func TestDiscovery(t *testing.T) {
	h := harness.NewHost(t)
	p := h.Plugin
	h.MustDiscover()

	self := os.Args[0]
	wantBIA := []framework.PluginIdentifier{}
	for _, n := range harness.BuiltinBIAs {
		wantBIA = append(wantBIA, framework.PluginIdentifier{Command: self, Kind: common.PluginKindBackupItemAction, Name: n})
	}
	wantBIA = append(wantBIA, framework.PluginIdentifier{Command: p.Command, Kind: common.PluginKindBackupItemActionV2, Name: harness.PluginName})
	if got := h.Registry.List(common.PluginKindBackupItemActionV2); !reflect.DeepEqual(got, wantBIA) {
		t.Errorf("List(BackupItemActionV2):\n got  %+v\n want %+v", got, wantBIA)
	}
	wantIBA := []framework.PluginIdentifier{}
	for _, n := range harness.BuiltinIBAs {
		wantIBA = append(wantIBA, framework.PluginIdentifier{Command: self, Kind: common.PluginKindItemBlockAction, Name: n})
	}
	wantIBA = append(wantIBA, framework.PluginIdentifier{Command: p.Command, Kind: common.PluginKindItemBlockAction, Name: harness.PluginName})
	if got := h.Registry.List(common.PluginKindItemBlockAction); !reflect.DeepEqual(got, wantIBA) {
		t.Errorf("List(ItemBlockAction):\n got  %+v\n want %+v", got, wantIBA)
	}

	// Our binary advertises nothing else (in particular not a v1
	// BackupItemAction of the same name: it would run twice per item).
	for _, k := range allKinds {
		for _, id := range h.Registry.List(k) {
			if id.Command != p.Command {
				continue
			}
			if id.Name != harness.PluginName || (id.Kind != common.PluginKindBackupItemActionV2 && id.Kind != common.PluginKindItemBlockAction) {
				t.Errorf("unexpected registration from our binary under kind %s: %+v", k, id)
			}
		}
	}
	for _, k := range []common.PluginKind{common.PluginKindBackupItemActionV2, common.PluginKindItemBlockAction} {
		id, err := h.Registry.Get(k, harness.PluginName)
		if err != nil || id.Command != p.Command {
			t.Errorf("Get(%s, %s) = %+v, %v", k, harness.PluginName, id, err)
		}
	}

	es := h.Rec.Entries()
	procs := harness.Processes(es, p.Command)
	if len(procs) != 1 {
		t.Fatalf("want exactly one ListPlugins process of %s, saw %d", p.Command, len(procs))
	}
	assertExitedGracefully(t, es, procs)
	assertNoWarningsOrErrors(t, h)
	assertPluginLinesWellFormed(t, es, p.Basename())
	assertNoTempLeftovers(t, h)
}

// TestManagerResolvesActions: the manager returns our actions after the
// built-ins; AppliesTo through Velero's client; Velero's resolvers select
// pods and persistentvolumes (BIA) and pods (IBA) only.
func TestManagerResolvesActions(t *testing.T) {
	h := harness.NewHost(t)
	h.MustDiscover()
	m := h.NewManager()

	var (
		bias []biav2.BackupItemAction
		ibas []ibav1.ItemBlockAction
		err  error
	)
	harness.Within(t, callLimit, "GetBackupItemActionsV2", func() { bias, err = m.GetBackupItemActionsV2() })
	if err != nil {
		t.Fatalf("GetBackupItemActionsV2: %v", err)
	}
	harness.Within(t, callLimit, "GetItemBlockActions", func() { ibas, err = m.GetItemBlockActions() })
	if err != nil {
		t.Fatalf("GetItemBlockActions: %v", err)
	}
	if got, want := biaNames(bias), append(append([]string{}, harness.BuiltinBIAs...), harness.PluginName); !reflect.DeepEqual(got, want) {
		t.Fatalf("BIA v2 list = %v, want %v (external actions run after Velero's built-ins)", got, want)
	}
	if got, want := ibaNames(ibas), append(append([]string{}, harness.BuiltinIBAs...), harness.PluginName); !reflect.DeepEqual(got, want) {
		t.Fatalf("IBA list = %v, want %v", got, want)
	}
	ours := bias[len(bias)-1]
	if _, ok := ours.(*biav2cli.RestartableBackupItemAction); !ok {
		t.Errorf("our BIA is %T, want *v2.RestartableBackupItemAction (a native v2 action, not an adapted v1)", ours)
	}
	oursIBA := ibas[len(ibas)-1]

	var sel velero.ResourceSelector
	harness.Within(t, callLimit, "BIA AppliesTo", func() { sel, err = ours.AppliesTo() })
	if err != nil {
		t.Fatalf("BIA AppliesTo: %v", err)
	}
	if want := (velero.ResourceSelector{IncludedResources: []string{"pods", "persistentvolumes"}}); !sameSelector(sel, want) {
		t.Errorf("BIA AppliesTo = %+v, want %+v", sel, want)
	}
	harness.Within(t, callLimit, "IBA AppliesTo", func() { sel, err = oursIBA.AppliesTo() })
	if err != nil {
		t.Fatalf("IBA AppliesTo: %v", err)
	}
	if want := (velero.ResourceSelector{IncludedResources: []string{"pods", "persistentvolumeclaims"}}); !sameSelector(sel, want) {
		t.Errorf("IBA AppliesTo = %+v, want %+v", sel, want)
	}

	// Velero's resolvers, as the backup engine runs them (AppliesTo once
	// per action, including the built-ins in the run-plugins child).
	helper := test.NewFakeDiscoveryHelper(true, nil)
	pod, pv, pvc := harness.MustItem(harness.PodJSON), harness.MustItem(harness.PVJSON), harness.MustItem(harness.PVCJSON)
	var resolved []framework.BackupItemResolvedActionV2
	harness.Within(t, callLimit, "ResolveActions(BIA)", func() {
		resolved, err = framework.NewBackupItemActionResolverV2(bias).ResolveActions(helper, h.Log)
	})
	if err != nil {
		t.Fatalf("BIA ResolveActions: %v", err)
	}
	var resolvedIBA []framework.ItemBlockResolvedAction
	harness.Within(t, callLimit, "ResolveActions(IBA)", func() {
		resolvedIBA, err = framework.NewItemBlockActionResolver(ibas).ResolveActions(helper, h.Log)
	})
	if err != nil {
		t.Fatalf("IBA ResolveActions: %v", err)
	}
	type probe struct {
		gr       string
		ns       string
		obj      *unstructured.Unstructured
		bia, iba bool
	}
	probes := []probe{
		{"pods", "shop", pod, true, true},
		{"persistentvolumes", "", pv, true, false},
		{"persistentvolumeclaims", "shop", pvc, false, true},
		{"secrets", "shop", nil, false, false},
		{"deployments.apps", "shop", nil, false, false},
	}
	for _, r := range resolved {
		if r.Name() != harness.PluginName {
			continue
		}
		for _, pr := range probes {
			if got := r.ShouldUse(schema.ParseGroupResource(pr.gr), pr.ns, metaOf(pr.obj), h.Log); got != pr.bia {
				t.Errorf("resolved BIA ShouldUse(%s, %q) = %v, want %v", pr.gr, pr.ns, got, pr.bia)
			}
		}
	}
	for _, r := range resolvedIBA {
		if r.Name() != harness.PluginName {
			continue
		}
		for _, pr := range probes {
			if got := r.ShouldUse(schema.ParseGroupResource(pr.gr), pr.ns, metaOf(pr.obj), h.Log); got != pr.iba {
				t.Errorf("resolved IBA ShouldUse(%s, %q) = %v, want %v", pr.gr, pr.ns, got, pr.iba)
			}
		}
	}

	cleanupAndCheck(t, h, m)
}

// TestExecutePassThrough: Execute on a realistic Pod and a bound
// PersistentVolume returns the item deep-equal to the input, no additional
// items, no operation, no post-operation items; GetRelatedItems on the Pod
// returns nothing.
func TestExecutePassThrough(t *testing.T) {
	h := harness.NewHost(t)
	h.MustDiscover()
	apiMark := harness.Kube().Len()
	m := h.NewManager()
	bia, iba := ourActions(t, m)
	backup := harness.Backup()

	for _, tc := range []struct{ name, json string }{{"pod", harness.PodJSON}, {"persistentvolume", harness.PVJSON}} {
		t.Run(tc.name, func(t *testing.T) {
			in, want := harness.MustItem(tc.json), harness.MustItem(tc.json)
			var (
				out         runtime.Unstructured
				add, postOp []velero.ResourceIdentifier
				opID        string
				err         error
			)
			harness.Within(t, callLimit, "Execute", func() { out, add, opID, postOp, err = bia.Execute(in, backup) })
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			if out == nil {
				t.Fatal("Execute returned a nil item")
			}
			if !reflect.DeepEqual(out.UnstructuredContent(), want.UnstructuredContent()) {
				t.Errorf("Execute changed the item:\n got  %v\n want %v", out.UnstructuredContent(), want.UnstructuredContent())
			}
			if len(add) != 0 || opID != "" || len(postOp) != 0 {
				t.Errorf("Execute returned additional items %v, operation %q, post-operation items %v; want none", add, opID, postOp)
			}
		})
	}
	t.Run("pod-1.4MiB", func(t *testing.T) {
		// etcd's request limit is 1.5 MiB: the largest Pod Velero can
		// meet. Both sides keep gRPC's 4 MiB default message limit.
		in := harness.MustItem(harness.PodJSON)
		containers, _, _ := unstructured.NestedSlice(in.Object, "spec", "containers")
		c := containers[0].(map[string]any)
		env := c["env"].([]any)
		for i := 0; len(env)*72 < 1400*1024; i++ {
			env = append(env, map[string]any{"name": fmt.Sprintf("VAR_%05d", i), "value": strings.Repeat("x", 40)})
		}
		c["env"] = env
		if err := unstructured.SetNestedSlice(in.Object, containers, "spec", "containers"); err != nil {
			t.Fatal(err)
		}
		b, _ := in.MarshalJSON()
		t.Logf("item size %d bytes", len(b))
		want := in.DeepCopy()
		var (
			out runtime.Unstructured
			err error
		)
		harness.Within(t, callLimit, "Execute", func() { out, _, _, _, err = bia.Execute(in, backup) })
		if err != nil {
			t.Fatalf("Execute: %v", err)
		}
		if !reflect.DeepEqual(out.UnstructuredContent(), want.UnstructuredContent()) {
			t.Error("Execute changed the large item")
		}
	})
	for _, v := range harness.ItemVariety() {
		t.Run(v.Name, func(t *testing.T) {
			want := v.Item.DeepCopy()
			var (
				out         runtime.Unstructured
				add, postOp []velero.ResourceIdentifier
				opID        string
				err         error
			)
			harness.Within(t, callLimit, "Execute", func() { out, add, opID, postOp, err = bia.Execute(v.Item, backup) })
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			if out == nil || !reflect.DeepEqual(out.UnstructuredContent(), want.UnstructuredContent()) {
				t.Errorf("Execute changed the item")
			}
			if len(add) != 0 || opID != "" || len(postOp) != 0 {
				t.Errorf("Execute returned additional items %v, operation %q, post-operation items %v; want none", add, opID, postOp)
			}
			if want.GetKind() == "Pod" {
				var rel []velero.ResourceIdentifier
				harness.Within(t, callLimit, "GetRelatedItems", func() { rel, err = iba.GetRelatedItems(want.DeepCopy(), backup) })
				if err != nil || len(rel) != 0 {
					t.Errorf("GetRelatedItems = %v, %v; want no items, no error", rel, err)
				}
			}
		})
	}
	t.Run("get-related-items", func(t *testing.T) {
		var (
			rel []velero.ResourceIdentifier
			err error
		)
		harness.Within(t, callLimit, "GetRelatedItems", func() { rel, err = iba.GetRelatedItems(harness.MustItem(harness.PodJSON), backup) })
		if err != nil || len(rel) != 0 {
			t.Errorf("GetRelatedItems = %v, %v; want no items, no error", rel, err)
		}
	})
	if t.Failed() {
		return
	}
	cleanupAndCheck(t, h, m)
	// No quiesce hooks on these items: the plugin may read (its ConfigMap),
	// never write or exec.
	for _, r := range harness.Kube().Since(apiMark) {
		if !strings.HasPrefix(r, "GET ") || strings.Contains(r, "/exec") {
			t.Errorf("Kubernetes API call for items without quiesce hooks: %s", r)
		}
	}
	wantBackup := backup.Namespace + "/" + backup.Name
	if len(harness.Filter(harness.FromPlugin(h.Rec.Entries(), h.Plugin.Basename()), func(e harness.Entry) bool { return e.Str("backup") == wantBackup })) == 0 {
		t.Errorf("no plugin log line carries backup=%s (Velero's backup logs are per backup; plugin lines should say which)", wantBackup)
	}
}

// TestUnknownName: a name that is not registered fails in the manager
// (never reaches the plugin); a request carrying a wrong plugin name is a
// gRPC error from the plugin, which keeps serving the right name on the same
// process.
func TestUnknownName(t *testing.T) {
	h := harness.NewHost(t)
	h.MustDiscover()
	m := h.NewManager()
	const bad = "quiesce.dev/no-such-action"
	if _, err := m.GetBackupItemActionV2(bad); err == nil {
		t.Error("manager GetBackupItemActionV2 of an unregistered name succeeded")
	}
	if _, err := m.GetItemBlockAction(bad); err == nil {
		t.Error("manager GetItemBlockAction of an unregistered name succeeded")
	} else if !strings.Contains(err.Error(), bad) {
		t.Errorf("GetItemBlockAction error does not name the plugin: %v", err)
	}
	m.CleanupClients()

	// Plugin side: Velero's restartable process and action clients, as the
	// manager builds them, but with a name our binary does not serve.
	mark := h.Rec.Len()
	var (
		rp  process.RestartableProcess
		err error
	)
	harness.Within(t, callLimit, "NewRestartableProcess", func() {
		rp, err = process.NewRestartableProcessFactory().NewRestartableProcess(h.Plugin.Command, h.Log, harness.LogLevel)
	})
	if err != nil {
		t.Fatalf("NewRestartableProcess: %v", err)
	}
	defer rp.Stop()
	backup := harness.Backup()
	badBIA := biav2cli.NewRestartableBackupItemAction(bad, rp)
	badIBA := ibav1cli.NewRestartableItemBlockAction(bad, rp)
	calls := map[string]func() error{
		"BIA AppliesTo":       func() error { _, err := badBIA.AppliesTo(); return err },
		"BIA Execute":         func() error { _, _, _, _, err := badBIA.Execute(harness.MustItem(harness.PodJSON), backup); return err },
		"BIA Progress":        func() error { _, err := badBIA.Progress("op-1", backup); return err },
		"IBA AppliesTo":       func() error { _, err := badIBA.AppliesTo(); return err },
		"IBA GetRelatedItems": func() error { _, err := badIBA.GetRelatedItems(harness.MustItem(harness.PodJSON), backup); return err },
	}
	for _, name := range []string{"BIA AppliesTo", "BIA Execute", "BIA Progress", "IBA AppliesTo", "IBA GetRelatedItems"} {
		var err error
		harness.Within(t, callLimit, name, func() { err = calls[name]() })
		if err == nil {
			t.Errorf("%s with plugin name %q succeeded; want an error", name, bad)
		} else {
			t.Logf("%s with unknown name -> %v", name, err)
		}
	}
	good := biav2cli.NewRestartableBackupItemAction(harness.PluginName, rp)
	var out runtime.Unstructured
	harness.Within(t, callLimit, "Execute", func() { out, _, _, _, err = good.Execute(harness.MustItem(harness.PVJSON), backup) })
	if err != nil || out == nil {
		t.Fatalf("Execute with the right name after wrong-name calls: %v", err)
	}
	var stopped time.Duration
	harness.Within(t, callLimit, "Stop", func() {
		start := time.Now()
		rp.Stop()
		stopped = time.Since(start)
	})
	t.Logf("RestartableProcess.Stop took %s", stopped)

	es := h.Rec.Since(mark)
	procs := harness.Processes(es, h.Plugin.Command)
	if len(procs) != 1 {
		t.Errorf("want one process for all calls (no crash, no restart), saw %d", len(procs))
	}
	assertExitedGracefully(t, es, procs)
	assertNoWarningsOrErrors(t, h)
	assertPluginLinesWellFormed(t, es, h.Plugin.Basename())
	assertNoTempLeftovers(t, h)
}

// TestConcurrentExecute: 8 goroutines call Execute on one plugin process
// through the manager's action while 2 more call GetRelatedItems on the same
// process, as item-block workers and the main goroutine do.
func TestConcurrentExecute(t *testing.T) {
	h := harness.NewHost(t)
	h.MustDiscover()
	m := h.NewManager()
	bia, iba := ourActions(t, m)
	backup := harness.Backup()
	const workers, perWorker = 8, 25
	pod, pv := harness.MustItem(harness.PodJSON), harness.MustItem(harness.PVJSON)

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(errs) < 20 {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
	}
	harness.Within(t, 5*time.Minute, "concurrent calls", func() {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perWorker {
					want := pod
					if (w+i)%2 == 1 {
						want = pv
					}
					out, add, opID, postOp, err := bia.Execute(want.DeepCopy(), backup)
					switch {
					case err != nil:
						fail("worker %d call %d: Execute: %v", w, i, err)
					case out == nil || !reflect.DeepEqual(out.UnstructuredContent(), want.UnstructuredContent()):
						fail("worker %d call %d: item changed", w, i)
					case len(add) != 0 || opID != "" || len(postOp) != 0:
						fail("worker %d call %d: additional %v op %q post %v", w, i, add, opID, postOp)
					}
				}
			}()
		}
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perWorker {
					rel, err := iba.GetRelatedItems(pod.DeepCopy(), backup)
					if err != nil || len(rel) != 0 {
						fail("IBA worker %d call %d: %v %v", w, i, rel, err)
					}
				}
			}()
		}
		wg.Wait()
	})
	for _, e := range errs {
		t.Error(e)
	}
	if procs := harness.Processes(h.Rec.Entries(), h.Plugin.Command); len(procs) != 2 { // ListPlugins + manager
		t.Errorf("want 2 processes of our binary (discovery, manager), saw %d", len(procs))
	}
	if t.Failed() {
		return
	}
	cleanupAndCheck(t, h, m)
}

// TestRestartAfterKill: when the plugin process dies, Velero's restartable
// process relaunches it before the next call (full handshake again) and the
// call succeeds.
func TestRestartAfterKill(t *testing.T) {
	h := harness.NewHost(t)
	h.MustDiscover()
	m := h.NewManager()
	bia, _ := ourActions(t, m)
	backup := harness.Backup()
	procs := harness.Processes(h.Rec.Entries(), h.Plugin.Command)
	if len(procs) != 2 {
		t.Fatalf("want 2 processes so far (discovery, manager), saw %d", len(procs))
	}
	pid := procs[1].PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %d: %v", pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for harness.Processes(h.Rec.Entries(), h.Plugin.Command)[1].Exited == nil {
		if time.Now().After(deadline) {
			t.Fatal("go-plugin did not notice the killed process")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var (
		out runtime.Unstructured
		err error
	)
	harness.Within(t, callLimit, "Execute after restart", func() { out, _, _, _, err = bia.Execute(harness.MustItem(harness.PodJSON), backup) })
	if err != nil || out == nil || !reflect.DeepEqual(out.UnstructuredContent(), harness.MustItem(harness.PodJSON).UnstructuredContent()) {
		t.Fatalf("Execute after restart: %v", err)
	}
	harness.Within(t, callLimit, "CleanupClients", m.CleanupClients)
	procs = harness.Processes(h.Rec.Entries(), h.Plugin.Command)
	if len(procs) != 3 {
		t.Fatalf("want 3 processes (discovery, manager, restart), saw %d", len(procs))
	}
	assertExitedGracefully(t, h.Rec.Entries(), []harness.Process{procs[2]})
	// Only the SIGKILLed process may have left its socket behind.
	if left := h.NewTempEntries(); len(left) > 1 {
		t.Errorf("left in $TMPDIR: %v (at most the killed process's socket expected)", left)
	} else {
		t.Logf("left in $TMPDIR by the killed process: %v", left)
	}
}

// TestServerArgs: Velero forwards its own `velero server` flags to every
// plugin (os.Args[2:]); the plugin must start and work whatever they are,
// including none, unknown flags, positionals and every --log-level value
// the server accepts. At the server's default level (info) a successful
// session must not add anything at info or above from the plugin either.
func TestServerArgs(t *testing.T) {
	saved := os.Args
	defer func() { os.Args = saved }()
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"none", nil},
		{"velero-install-defaults", []string{"--features=", "--uploader-type=kopia"}},
		{"log-level-info-spaced", []string{"--log-level", "info", "--features", "EnableCSI,EnableAPIGroupVersions"}},
		{"log-level-warning", []string{"--log-level=warning"}},
		{"log-level-error", []string{"--log-level=error"}},
		{"log-level-trace", []string{"--log-level=trace"}},
		{"unknown-and-positional", []string{"-v=4", "--unknown-flag", "x", "positional", "--", "--after-dashes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Args = append([]string{saved[0], "server"}, tc.args...)
			h := harness.NewHost(t)
			h.MustDiscover()
			m := h.NewManager()
			bia, iba := ourActions(t, m)
			backup := harness.Backup()
			var (
				out runtime.Unstructured
				err error
			)
			harness.Within(t, callLimit, "Execute", func() { out, _, _, _, err = bia.Execute(harness.MustItem(harness.PodJSON), backup) })
			if err != nil || out == nil {
				t.Fatalf("Execute: %v", err)
			}
			harness.Within(t, callLimit, "GetRelatedItems", func() { _, err = iba.GetRelatedItems(harness.MustItem(harness.PodJSON), backup) })
			if err != nil {
				t.Fatalf("GetRelatedItems: %v", err)
			}
			harness.Within(t, callLimit, "CleanupClients", m.CleanupClients)
			es := h.Rec.Entries()
			assertExitedGracefully(t, es, harness.Processes(es, h.Plugin.Command))
			assertNoWarningsOrErrors(t, h)
			assertPluginLinesWellFormed(t, es, h.Plugin.Basename())
			assertNoTempLeftovers(t, h)
			if strings.Contains(strings.Join(tc.args, " "), "debug") || strings.Contains(strings.Join(tc.args, " "), "trace") {
				return
			}
			for _, e := range harness.FromPlugin(es, h.Plugin.Basename()) {
				if e.Level <= logrus.InfoLevel {
					t.Logf("plugin line at %s with server args %q: %s", e.Level, tc.args, e)
				}
			}
		})
	}
}

// TestPluginDirLayouts: Velero walks the plugin directory recursively and
// treats symlinks as executables; Command is whatever path it exec'd.
func TestPluginDirLayouts(t *testing.T) {
	base := harness.Current()
	for _, layout := range []string{"symlink", "subdirectory"} {
		t.Run(layout, func(t *testing.T) {
			p := base
			p.Dir = t.TempDir()
			switch layout {
			case "symlink":
				p.Command = p.Dir + "/" + base.Basename()
				if err := os.Symlink(base.Command, p.Command); err != nil {
					t.Fatal(err)
				}
			case "subdirectory":
				sub := p.Dir + "/quiesce"
				if err := os.Mkdir(sub, 0o755); err != nil {
					t.Fatal(err)
				}
				p.Command = sub + "/" + base.Basename()
				if err := os.Link(base.Command, p.Command); err != nil {
					t.Fatal(err)
				}
			}
			h := harness.NewHostWith(t, p)
			h.MustDiscover()
			for _, k := range []common.PluginKind{common.PluginKindBackupItemActionV2, common.PluginKindItemBlockAction} {
				id, err := h.Registry.Get(k, harness.PluginName)
				if err != nil || id.Command != p.Command {
					t.Errorf("Get(%s) = %+v, %v; want Command %s", k, id, err, p.Command)
				}
			}
			m := h.NewManager()
			bia, _ := ourActions(t, m)
			var err error
			harness.Within(t, callLimit, "Execute", func() { _, _, _, _, err = bia.Execute(harness.MustItem(harness.PVJSON), harness.Backup()) })
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			cleanupAndCheck(t, h, m)
		})
	}
}

// cleanupAndCheck stops all plugin processes like the backup controller's
// deferred CleanupClients and checks the whole session's log.
func cleanupAndCheck(t *testing.T, h *harness.Host, m interface{ CleanupClients() }) {
	t.Helper()
	var took time.Duration
	harness.Within(t, callLimit, "CleanupClients", func() {
		start := time.Now()
		m.CleanupClients()
		took = time.Since(start)
	})
	t.Logf("CleanupClients took %s", took)
	es := h.Rec.Entries()
	procs := harness.Processes(es, h.Plugin.Command)
	if len(procs) != 2 {
		t.Errorf("want 2 processes of our binary (discovery, manager), saw %d", len(procs))
	}
	assertExitedGracefully(t, es, procs)
	assertNoWarningsOrErrors(t, h)
	assertPluginLinesWellFormed(t, es, h.Plugin.Basename())
	assertNoTempLeftovers(t, h)
	if testing.Verbose() {
		t.Logf("Kubernetes API requests so far in this test process: %q", harness.Kube().Requests())
		seen := map[string]bool{}
		for _, e := range harness.FromPlugin(es, h.Plugin.Basename()) {
			if k := e.Level.String() + " " + e.Message; !seen[k] {
				seen[k] = true
				t.Logf("plugin line (first of its kind): %s", e)
			}
		}
	}
	if len(harness.FromPlugin(es, h.Plugin.Basename())) == 0 {
		t.Errorf("no log line from %s reached Velero's logger (expected at least one JSON line on stderr at debug level or above)", h.Plugin.Basename())
	}
}

// assertExitedGracefully: each process exited with status 0 ("plugin
// process exited" at Info), within go-plugin's 2 s grace period after
// Shutdown (no "plugin failed to exit gracefully"), and is gone.
func assertExitedGracefully(t *testing.T, es []harness.Entry, procs []harness.Process) {
	t.Helper()
	for _, e := range es {
		if e.Message == "plugin failed to exit gracefully" {
			t.Errorf("Velero log: %s", e)
		}
	}
	for _, p := range procs {
		switch {
		case p.Exited == nil:
			t.Errorf("pid %d: no \"plugin process exited\" entry", p.PID)
		case p.Exited.Level != logrus.InfoLevel:
			t.Errorf("pid %d did not exit with status 0: %s", p.PID, *p.Exited)
		}
		if p.PID > 0 {
			if err := syscall.Kill(p.PID, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("pid %d still exists after it was stopped (kill 0: %v)", p.PID, err)
			}
		}
	}
}

// assertNoTempLeftovers: a plugin stopped through Shutdown removes its
// socket (and socket directory) from $TMPDIR. Velero starts plugin processes
// for every backup, so a leak grows without bound in the server pod.
func assertNoTempLeftovers(t *testing.T, h *harness.Host) {
	t.Helper()
	if left := h.NewTempEntries(); len(left) > 0 {
		t.Errorf("left in $TMPDIR (%s) after graceful shutdown: %v", os.TempDir(), left)
	}
}

// assertNoWarningsOrErrors: Velero's own counter (what becomes
// backup.Status.Warnings/Errors) saw nothing, and no entry is at Warn or
// above, except known host-side noise (logged, not failed).
func assertNoWarningsOrErrors(t *testing.T, h *harness.Host) {
	t.Helper()
	noise := map[logrus.Level]int{}
	for _, e := range harness.AtOrAbove(h.Rec.Entries(), logrus.WarnLevel) {
		if why := hostNoise(e); why != "" {
			noise[e.Level]++
			t.Logf("ignored host-side noise (%s): %s", why, e)
			continue
		}
		t.Errorf("Velero log: %s", e)
	}
	if n := h.Counter.GetCount(logrus.ErrorLevel) - noise[logrus.ErrorLevel]; n != 0 {
		t.Errorf("Velero's LogHook counted %d error(s): the backup would be PartiallyFailed", n)
	}
	if n := h.Counter.GetCount(logrus.WarnLevel) - noise[logrus.WarnLevel]; n != 0 {
		t.Errorf("Velero's LogHook counted %d warning(s): backup.status.warnings would be %d", n, n)
	}
}

// hostNoise recognises entries caused by the host alone, whatever the
// plugin does. go-plugin v1.6.0 (Velero v1.16, v1.17, v1.18.0-1) calls
// cmd.Wait before its stdout scanner has finished, so a plugin that exits
// promptly after Shutdown races it: hashicorp/go-plugin#298, fixed by #299
// (in go-plugin v1.7.0, Velero v1.18.2+). It hits Velero's built-in plugin
// binary (here the test binary) as well.
func hostNoise(e harness.Entry) string {
	if e.Message == "error encountered while scanning stdout" && strings.Contains(fmt.Sprint(e.Data["error"]), "file already closed") {
		return "go-plugin v1.6.0 stdout/Wait race, hashicorp/go-plugin#298"
	}
	return ""
}

// assertPluginLinesWellFormed checks what reached Velero from the plugin's
// stderr: every line was parsed as JSON with a valid @level (go-plugin logs
// unparsable lines raw at Debug), carried the plugin's own logSource (so
// @logSourceSetBy was set: otherwise Velero stamps its adapter's location),
// and uses string values for the fields Velero's LogHook type-asserts.
func assertPluginLinesWellFormed(t *testing.T, es []harness.Entry, basename string) {
	t.Helper()
	for _, e := range harness.FromPlugin(es, basename) {
		msg := strings.TrimSpace(e.Message)
		switch {
		case strings.HasPrefix(msg, "{"):
			t.Errorf("plugin line was not parsed by go-plugin (bad JSON, @level or @timestamp); logged raw at %s: %s", e.Level, msg)
			continue
		case msg == "":
			t.Errorf("plugin line with an empty @message: %s", e)
		}
		if msg == "plugin address" {
			continue // go-plugin's own server line in Go plugins; carries no location
		}
		ls := e.Str("logSource")
		if ls == "" || strings.Contains(ls, "pkg/plugin/clientmgmt/process/logrus_adapter.go") {
			t.Errorf("plugin line without its own logSource (missing @logSourceSetBy?): %s", e)
		}
		if strings.Contains(ls, "/.cargo/registry/") || strings.Contains(ls, "/.cargo/git/") || strings.HasPrefix(ls, "/rustc/") {
			t.Errorf("plugin forwards a dependency library's log line (floods the backup log at --log-level debug): %s", e)
		}
		for _, k := range []string{"namespace", "resource", "name"} {
			if v, ok := e.Data[k]; ok {
				if _, isStr := v.(string); !isStr {
					t.Errorf("plugin field %q is %T, not a string: Velero's LogHook would panic: %s", k, v, e)
				}
			}
		}
	}
}

func ourActions(t *testing.T, m interface {
	GetBackupItemActionV2(string) (biav2.BackupItemAction, error)
	GetItemBlockAction(string) (ibav1.ItemBlockAction, error)
}) (biav2.BackupItemAction, ibav1.ItemBlockAction) {
	t.Helper()
	var (
		bia biav2.BackupItemAction
		iba ibav1.ItemBlockAction
		err error
	)
	harness.Within(t, callLimit, "GetBackupItemActionV2", func() { bia, err = m.GetBackupItemActionV2(harness.PluginName) })
	if err != nil {
		t.Fatalf("GetBackupItemActionV2(%s): %v", harness.PluginName, err)
	}
	harness.Within(t, callLimit, "GetItemBlockAction", func() { iba, err = m.GetItemBlockAction(harness.PluginName) })
	if err != nil {
		t.Fatalf("GetItemBlockAction(%s): %v", harness.PluginName, err)
	}
	if bia.Name() != harness.PluginName || iba.Name() != harness.PluginName {
		t.Fatalf("names %q, %q", bia.Name(), iba.Name())
	}
	return bia, iba
}

func biaNames(as []biav2.BackupItemAction) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Name())
	}
	return out
}

func ibaNames(as []ibav1.ItemBlockAction) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Name())
	}
	return out
}

// sameSelector compares selectors ignoring the order of resources and
// treating nil and empty lists alike.
func sameSelector(a, b velero.ResourceSelector) bool {
	norm := func(s []string) map[string]bool {
		m := map[string]bool{}
		for _, x := range s {
			m[x] = true
		}
		return m
	}
	return reflect.DeepEqual(norm(a.IncludedResources), norm(b.IncludedResources)) &&
		reflect.DeepEqual(norm(a.ExcludedResources), norm(b.ExcludedResources)) &&
		reflect.DeepEqual(norm(a.IncludedNamespaces), norm(b.IncludedNamespaces)) &&
		reflect.DeepEqual(norm(a.ExcludedNamespaces), norm(b.ExcludedNamespaces)) &&
		a.LabelSelector == b.LabelSelector
}

func metaOf(u *unstructured.Unstructured) *unstructured.Unstructured {
	if u == nil {
		return &unstructured.Unstructured{Object: map[string]any{}}
	}
	return u
}

// TestConcurrentManagers: with --concurrent-backups > 1 (Velero v1.18+)
// each backup has its own manager, hence its own process of our binary, at
// the same time. Then 25 short sessions in a row, as Velero starts a process
// per backup, finalizer and operations reconcile: every one must start,
// serve and exit gracefully.
func TestConcurrentManagers(t *testing.T) {
	h := harness.NewHost(t)
	h.MustDiscover()
	backup := harness.Backup()
	session := func(m interface {
		GetBackupItemActionV2(string) (biav2.BackupItemAction, error)
		GetItemBlockAction(string) (ibav1.ItemBlockAction, error)
		CleanupClients()
	}, calls int) error {
		bia, err := m.GetBackupItemActionV2(harness.PluginName)
		if err != nil {
			return err
		}
		for i := range calls {
			want := harness.MustItem(harness.PodJSON)
			out, _, _, _, err := bia.Execute(want.DeepCopy(), backup)
			if err != nil {
				return fmt.Errorf("call %d: %w", i, err)
			}
			if !reflect.DeepEqual(out.UnstructuredContent(), want.UnstructuredContent()) {
				return fmt.Errorf("call %d: item changed", i)
			}
		}
		m.CleanupClients()
		return nil
	}

	const parallel = 4
	errs := make(chan error, parallel)
	harness.Within(t, 2*time.Minute, "parallel managers", func() {
		var wg sync.WaitGroup
		for range parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- session(h.NewManager(), 20)
			}()
		}
		wg.Wait()
	})
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}

	const cycles = 25
	harness.Within(t, 5*time.Minute, "sequential sessions", func() {
		for i := range cycles {
			if err := session(h.NewManager(), 1); err != nil {
				t.Errorf("session %d: %v", i, err)
				return
			}
		}
	})

	es := h.Rec.Entries()
	procs := harness.Processes(es, h.Plugin.Command)
	if want := 1 + parallel + cycles; len(procs) != want {
		t.Errorf("want %d processes of our binary, saw %d", want, len(procs))
	}
	assertExitedGracefully(t, es, procs)
	assertNoWarningsOrErrors(t, h)
	assertPluginLinesWellFormed(t, es, h.Plugin.Basename())
	assertNoTempLeftovers(t, h)
}
