package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/vmware-tanzu/velero/pkg/plugin/clientmgmt"
	"github.com/vmware-tanzu/velero/pkg/plugin/clientmgmt/process"
	"github.com/vmware-tanzu/velero/pkg/util/logging"
)

// LogLevel is the level of the simulated server and backup logger. Debug,
// so that lines go-plugin could not parse (it logs them raw at Debug) are
// visible to the assertions.
const LogLevel = logrus.DebugLevel

// Host is one simulated Velero server: a per-backup logger built like the
// backup controller's (Velero's DefaultLogger, JSON format, Velero's
// LogHook counting warnings and errors) plus a Recorder, and a registry over
// the plugin directory.
type Host struct {
	t testing.TB
	// Logger is the underlying logrus logger.
	Logger *logrus.Logger
	// Log is the per-backup field logger handed to Velero.
	Log logrus.FieldLogger
	// Counter is Velero's own counter: backup.Status.Warnings/Errors.
	Counter *logging.LogHook
	// Rec records every entry after Velero's hooks have run.
	Rec *Recorder
	// Registry is the plugin registry (not yet discovered).
	Registry process.Registry
	// Plugin is the binary under test.
	Plugin Plugin

	logFile   string
	tmpBefore map[string]bool
}

// NewHost builds a host over the prepared plugin directory.
func NewHost(t testing.TB) *Host {
	t.Helper()
	return NewHostWith(t, Current())
}

// NewHostWith builds a host over another layout of the plugin (see
// Plugin.Dir and Plugin.Command).
func NewHostWith(t testing.TB, p Plugin) *Host {
	t.Helper()
	tmpBefore := TempEntries()
	logger := logging.DefaultLogger(LogLevel, logging.FormatJSON)
	logFile := filepath.Join(t.TempDir(), "backup-log.json")
	f, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	logger.Out = f
	h := &Host{
		t:         t,
		Logger:    logger,
		Counter:   logging.NewLogHook(),
		Rec:       &Recorder{},
		Plugin:    p,
		logFile:   logFile,
		tmpBefore: tmpBefore,
	}
	logger.Hooks.Add(h.Counter)
	logger.Hooks.Add(h.Rec) // last: sees entries as Velero's hooks left them
	h.Log = logger.WithField("backup", "velero/quiesce-level1")
	h.Registry = process.NewRegistry(p.Dir, h.Log, LogLevel)
	t.Cleanup(func() {
		f.Close()
		if t.Failed() || os.Getenv("QUIESCE_HARNESS_DUMP") != "" {
			b, _ := os.ReadFile(logFile)
			lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
			if len(lines) > 120 {
				n := len(lines)
				lines = append(append(lines[:40:40], fmt.Sprintf("... %d lines omitted ...", n-120)), lines[n-80:]...)
			}
			t.Logf("simulated Velero backup log:\n%s", strings.Join(lines, "\n"))
		}
	})
	return h
}

// TempEntries lists what plugin processes left in $TMPDIR (the harness
// points TMPDIR at a private directory; t.TempDir's Test* entries are
// ignored).
func TempEntries() map[string]bool {
	out := map[string]bool{}
	des, _ := os.ReadDir(os.TempDir())
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), "Test") {
			out[de.Name()] = true
		}
	}
	return out
}

// NewTempEntries returns $TMPDIR entries created since the host was built
// (sockets or socket directories a plugin did not remove).
func (h *Host) NewTempEntries() []string {
	var out []string
	for n := range TempEntries() {
		if !h.tmpBefore[n] {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Discover runs the registry's DiscoverPlugins with a time limit.
func (h *Host) Discover() error {
	h.t.Helper()
	var err error
	Within(h.t, 2*time.Minute, "DiscoverPlugins", func() { err = h.Registry.DiscoverPlugins() })
	return err
}

// MustDiscover is Discover that fails the test on error.
func (h *Host) MustDiscover() {
	h.t.Helper()
	if err := h.Discover(); err != nil {
		h.t.Fatalf("DiscoverPlugins: %v", err)
	}
}

// NewManager returns a plugin manager built like the server's
// newPluginManager, over the discovered registry. CleanupClients is
// registered as a backstop; tests call it themselves to assert on it.
func (h *Host) NewManager() clientmgmt.Manager {
	m := clientmgmt.NewManager(h.Log, h.Logger.Level, h.Registry)
	h.t.Cleanup(m.CleanupClients)
	return m
}

// Within runs fn and fails the test if it does not return within d.
func Within(t testing.TB, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %s", what, d)
	}
}

// Entry is a recorded log entry.
type Entry struct {
	Seq     int
	Level   logrus.Level
	Message string
	Data    logrus.Fields
}

func (e Entry) String() string {
	keys := make([]string, 0, len(e.Data))
	for k := range e.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "level=%s msg=%q", e.Level, e.Message)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%v", k, e.Data[k])
	}
	return b.String()
}

// Str returns a string field, or "".
func (e Entry) Str(key string) string {
	s, _ := e.Data[key].(string)
	return s
}

// Recorder is a logrus hook that keeps every entry.
type Recorder struct {
	mu      sync.Mutex
	entries []Entry
}

// Levels implements logrus.Hook.
func (r *Recorder) Levels() []logrus.Level { return logrus.AllLevels }

// Fire implements logrus.Hook.
func (r *Recorder) Fire(e *logrus.Entry) error {
	data := make(logrus.Fields, len(e.Data))
	for k, v := range e.Data {
		data[k] = v
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries = append(r.entries, Entry{Seq: len(r.entries), Level: e.Level, Message: e.Message, Data: data})
	return nil
}

// Entries returns a snapshot of all entries so far.
func (r *Recorder) Entries() []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Entry(nil), r.entries...)
}

// Len is the number of entries so far (a mark for Since).
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.entries)
}

// Since returns the entries recorded after mark.
func (r *Recorder) Since(mark int) []Entry {
	all := r.Entries()
	if mark > len(all) {
		return nil
	}
	return all[mark:]
}

// Filter returns the entries for which keep is true.
func Filter(es []Entry, keep func(Entry) bool) []Entry {
	var out []Entry
	for _, e := range es {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// AtOrAbove returns entries at level lvl or more severe.
func AtOrAbove(es []Entry, lvl logrus.Level) []Entry {
	return Filter(es, func(e Entry) bool { return e.Level <= lvl })
}

// FromPlugin returns the entries go-plugin produced from the stderr of the
// binary with the given basename (they carry pluginName).
func FromPlugin(es []Entry, basename string) []Entry {
	return Filter(es, func(e Entry) bool { return e.Str("pluginName") == basename })
}

// Process is one plugin process as seen in go-plugin's own log lines.
type Process struct {
	PID    int
	Path   string
	Exited *Entry // "plugin process exited", nil if not (yet) seen
}

// Processes lists the processes go-plugin started for path, from its
// "plugin started" (Debug) and "plugin process exited" entries.
func Processes(es []Entry, path string) []Process {
	var out []Process
	idx := map[int]int{}
	for _, e := range es {
		switch e.Message {
		case "plugin started":
			if e.Str("path") != path {
				continue
			}
			pid := toInt(e.Data["pid"])
			idx[pid] = len(out)
			out = append(out, Process{PID: pid, Path: path})
		case "plugin process exited":
			if e.Str("plugin") != path {
				continue
			}
			pid, _ := strconv.Atoi(fmt.Sprint(e.Data["id"]))
			if i, ok := idx[pid]; ok {
				e := e
				out[i].Exited = &e
			}
		}
	}
	return out
}

func toInt(v any) int {
	switch x := v.(type) {
	case int:
		return x
	case int64:
		return int(x)
	case float64:
		return int(x)
	default:
		n, _ := strconv.Atoi(fmt.Sprint(v))
		return n
	}
}
