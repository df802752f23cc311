// Package harness hosts quiesce's plugin binary inside Velero's own plugin
// machinery (process.Registry, clientmgmt.Manager, go-plugin, the logrus
// adapter and the backup log counter), the way a Velero server does.
//
// Velero always launches its own os.Args[0] with "run-plugins" as the first
// plugin binary (its built-in actions). Under `go test` that is the test
// binary, so every test package that uses this harness must call Main from
// its TestMain: in the re-executed child it serves a subset of Velero's real
// built-in actions, in the parent it prepares the plugin directory.
package harness

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	bia "github.com/vmware-tanzu/velero/pkg/backup/actions"
	csibia "github.com/vmware-tanzu/velero/pkg/backup/actions/csi"
	"github.com/vmware-tanzu/velero/pkg/client"
	iba "github.com/vmware-tanzu/velero/pkg/itemblock/actions"
	"github.com/vmware-tanzu/velero/pkg/plugin/framework"
)

// PluginName is the name quiesce registers under both kinds.
const PluginName = "quiesce.dev/pod-hooks"

// Environment variables understood by the harness.
const (
	// EnvPluginBin is an absolute path to an already built plugin binary.
	EnvPluginBin = "QUIESCE_PLUGIN_BIN"
	// EnvPluginImpl selects what to build when EnvPluginBin is unset:
	// "rust" (default: cargo build of velero-plugin-quiesce) or "go" (the
	// reference plugin in cmd/velero-plugin-quiesce-go, for harness
	// development and as the benchmark baseline).
	EnvPluginImpl = "QUIESCE_PLUGIN_IMPL"
)

// ServerArgs are the arguments after `velero server` that the simulated
// server forwards to every plugin (Velero appends its own os.Args[2:]). They
// mix the `--flag=value` and `--flag value` forms and include flags a plugin
// does not know, as a `velero install` deployment does.
var ServerArgs = []string{
	"--features=EnableCSI",
	"--uploader-type=kopia",
	"--log-level", "debug",
	"--log-format=json",
	"--default-volumes-to-fs-backup=false",
}

// BuiltinBIAs and BuiltinIBAs are the Velero built-in actions served by the
// re-executed test binary, in the order Velero's registry lists them.
var (
	BuiltinBIAs = []string{"velero.io/pod", "velero.io/pv"}
	BuiltinIBAs = []string{"velero.io/pod"}
)

// CSIBuiltinBIAs are Velero's CSI BackupItemActions (v2) as its run-plugins
// command registers them; the registry lists them, sorted, after the v1
// built-ins. Served only by a test binary whose Main has WithCSIBuiltins.
var CSIBuiltinBIAs = []string{
	"velero.io/csi-pvc-backupper",
	"velero.io/csi-volumesnapshot-backupper",
	"velero.io/csi-volumesnapshotclass-backupper",
	"velero.io/csi-volumesnapshotcontent-backupper",
}

// Option changes what Main sets up.
type Option func(*options)

type options struct{ csi bool }

// WithCSIBuiltins makes the re-executed test binary also serve Velero's real
// CSI actions (CSIBuiltinBIAs), built as Velero's run-plugins builds them:
// with Velero's own client factory, which finds the cluster through
// $KUBECONFIG — fake-kube in Level 2. Velero's engine runs them only when
// its process has the EnableCSI feature.
func WithCSIBuiltins() Option { return func(o *options) { o.csi = true } }

// Plugin describes the binary under test.
type Plugin struct {
	// Source is the binary that was built or given (not the copy).
	Source string
	// Impl is "rust", "go" or "external" (given through EnvPluginBin).
	Impl string
	// Dir is the plugin directory handed to process.NewRegistry.
	Dir string
	// Command is the path of the copy inside Dir: what Velero execs.
	Command string
}

// Basename is what go-plugin names the plugin's logger after; Velero's
// adapter turns it into the pluginName field.
func (p Plugin) Basename() string { return filepath.Base(p.Command) }

var current *Plugin

// Current returns the plugin prepared by Main.
func Current() Plugin {
	if current == nil {
		panic("harness.Main was not called from TestMain")
	}
	return *current
}

// Main is the body of a test package's TestMain.
func Main(m *testing.M, opts ...Option) int {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if len(os.Args) > 1 && os.Args[1] == "run-plugins" {
		// Child: we are "velero run-plugins ..." for the registry/manager.
		serveBuiltins(o)
		return 0
	}
	flag.Parse()
	tmp, err := os.MkdirTemp("", "quiesce-velero-host-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		return 1
	}
	defer os.RemoveAll(tmp)

	// Plugin processes inherit TMPDIR and create their sockets there: a
	// private directory lets tests check that nothing is left behind.
	pluginTmp := filepath.Join(tmp, "tmp")
	if err := os.MkdirAll(pluginTmp, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		return 1
	}
	os.Setenv("TMPDIR", pluginTmp)

	kubeAPI, err = startKubeAPI(tmp)
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness: starting the fake Kubernetes API:", err)
		return 1
	}
	defer kubeAPI.Close()

	p, err := preparePlugin(tmp)
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness: preparing the plugin binary:", err)
		return 1
	}
	current = &p
	fmt.Fprintf(os.Stderr, "harness: plugin under test: %s (%s), installed as %s\n", p.Source, p.Impl, p.Command)

	// What the registry forwards to every plugin is os.Args[2:]; the test
	// flags were parsed above and must not leak into the plugins.
	os.Args = append([]string{os.Args[0], "server"}, ServerArgs...)
	return m.Run()
}

// serveBuiltins serves Velero's real built-in actions that need no cluster
// (option B of the harness notes): BIA v1 velero.io/pod and velero.io/pv and
// IBA velero.io/pod, under their real names; with o.csi also Velero's CSI
// BIAs v2, over Velero's client factory.
func serveBuiltins(o options) {
	server := framework.NewServer().
		RegisterBackupItemAction("velero.io/pod", func(l logrus.FieldLogger) (any, error) { return bia.NewPodAction(l), nil }).
		RegisterBackupItemAction("velero.io/pv", func(l logrus.FieldLogger) (any, error) { return bia.NewPVCAction(l), nil }).
		RegisterItemBlockAction("velero.io/pod", func(l logrus.FieldLogger) (any, error) { return iba.NewPodAction(l), nil })
	if o.csi {
		f := client.NewFactory("velero", client.VeleroConfig{})
		server = server.
			RegisterBackupItemActionV2("velero.io/csi-pvc-backupper", csibia.NewPvcBackupItemAction(f)).
			RegisterBackupItemActionV2("velero.io/csi-volumesnapshot-backupper", csibia.NewVolumeSnapshotBackupItemAction(f)).
			RegisterBackupItemActionV2("velero.io/csi-volumesnapshotcontent-backupper", csibia.NewVolumeSnapshotContentBackupItemAction).
			RegisterBackupItemActionV2("velero.io/csi-volumesnapshotclass-backupper", csibia.NewVolumeSnapshotClassBackupItemAction)
	}
	server.Serve()
}

func preparePlugin(tmp string) (Plugin, error) {
	var p Plugin
	switch bin := os.Getenv(EnvPluginBin); {
	case bin != "":
		if !filepath.IsAbs(bin) {
			return p, fmt.Errorf("%s must be an absolute path, got %q", EnvPluginBin, bin)
		}
		p.Source, p.Impl = bin, "external"
	case os.Getenv(EnvPluginImpl) == "go":
		root, err := ModuleRoot()
		if err != nil {
			return p, err
		}
		p.Source, p.Impl = filepath.Join(tmp, "build", "velero-plugin-quiesce-go"), "go"
		cmd := exec.Command("go", "build", "-o", p.Source, "./cmd/velero-plugin-quiesce-go")
		cmd.Dir = root
		if err := runLogged(cmd); err != nil {
			return p, err
		}
	case os.Getenv(EnvPluginImpl) == "" || os.Getenv(EnvPluginImpl) == "rust":
		root, err := ModuleRoot()
		if err != nil {
			return p, err
		}
		repo := filepath.Dir(filepath.Dir(root)) // tests/velero-host -> repo root
		cmd := exec.Command("cargo", "build", "--bin", "velero-plugin-quiesce")
		cmd.Dir = repo
		if err := runLogged(cmd); err != nil {
			return p, err
		}
		target := os.Getenv("CARGO_TARGET_DIR")
		if target == "" {
			target = filepath.Join(repo, "target")
		} else if !filepath.IsAbs(target) {
			target = filepath.Join(repo, target)
		}
		p.Source, p.Impl = filepath.Join(target, "debug", "velero-plugin-quiesce"), "rust"
	default:
		return p, fmt.Errorf("%s=%q: want rust or go", EnvPluginImpl, os.Getenv(EnvPluginImpl))
	}
	st, err := os.Stat(p.Source)
	if err != nil {
		return p, err
	}
	if st.Mode()&0o111 == 0 {
		return p, fmt.Errorf("%s is not executable", p.Source)
	}

	// Velero's image copies the binary into the plugins volume; do the same.
	p.Dir = filepath.Join(tmp, "plugins")
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return p, err
	}
	p.Command = filepath.Join(p.Dir, filepath.Base(p.Source))
	return p, copyFile(p.Source, p.Command)
}

func runLogged(cmd *exec.Cmd) error {
	start := time.Now()
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	err := cmd.Run()
	fmt.Fprintf(os.Stderr, "harness: %s (in %s) took %s\n", strings.Join(cmd.Args, " "), cmd.Dir, time.Since(start).Round(time.Millisecond))
	if err != nil {
		return fmt.Errorf("%s: %w", strings.Join(cmd.Args, " "), err)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// ModuleRoot finds the directory of this Go module (tests/velero-host) from
// the working directory (go test runs in the package directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module quiesce.dev/velero-host") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod of quiesce.dev/velero-host not found above the working directory")
		}
		dir = parent
	}
}
