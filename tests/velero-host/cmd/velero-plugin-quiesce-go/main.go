// Command velero-plugin-quiesce-go is a reference implementation, written with
// Velero's own Go plugin framework, of the wire contract that the Rust binary
// velero-plugin-quiesce implements (no hooks are run: it only mirrors the
// advertised kinds, selectors and pass-through behaviour).
//
// It exists for two reasons: to develop and self-check the conformance
// harness independently of the Rust binary, and as the side-by-side baseline
// for the benchmarks (a plugin built the way Velero expects plugins to be
// built).
package main

import (
	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"

	velerov1api "github.com/vmware-tanzu/velero/pkg/apis/velero/v1"
	"github.com/vmware-tanzu/velero/pkg/plugin/framework"
	"github.com/vmware-tanzu/velero/pkg/plugin/velero"
	biav2 "github.com/vmware-tanzu/velero/pkg/plugin/velero/backupitemaction/v2"
)

const pluginName = "quiesce.dev/pod-hooks"

func main() {
	framework.NewServer().
		BindFlags(pflag.CommandLine). // honours --log-level, ignores other server flags
		RegisterBackupItemActionV2(pluginName, newBIA).
		RegisterItemBlockAction(pluginName, newIBA).
		Serve()
}

type bia struct{ log logrus.FieldLogger }

func newBIA(log logrus.FieldLogger) (any, error) { return &bia{log: log}, nil }

func (a *bia) Name() string { return pluginName }

func (a *bia) AppliesTo() (velero.ResourceSelector, error) {
	return velero.ResourceSelector{IncludedResources: []string{"pods", "persistentvolumes"}}, nil
}

func (a *bia) Execute(item runtime.Unstructured, backup *velerov1api.Backup) (runtime.Unstructured, []velero.ResourceIdentifier, string, []velero.ResourceIdentifier, error) {
	fields := logrus.Fields{"backup": backup.Namespace + "/" + backup.Name}
	if m, err := meta.Accessor(item); err == nil {
		fields["namespace"] = m.GetNamespace()
		fields["name"] = m.GetName()
	}
	a.log.WithFields(fields).Info("quiesce: pass-through execute")
	return item, nil, "", nil, nil
}

func (a *bia) Progress(string, *velerov1api.Backup) (velero.OperationProgress, error) {
	return velero.OperationProgress{}, biav2.AsyncOperationsNotSupportedError()
}

func (a *bia) Cancel(string, *velerov1api.Backup) error { return nil }

type iba struct{ log logrus.FieldLogger }

func newIBA(log logrus.FieldLogger) (any, error) { return &iba{log: log}, nil }

func (a *iba) Name() string { return pluginName }

func (a *iba) AppliesTo() (velero.ResourceSelector, error) {
	return velero.ResourceSelector{IncludedResources: []string{"pods"}}, nil
}

func (a *iba) GetRelatedItems(item runtime.Unstructured, backup *velerov1api.Backup) ([]velero.ResourceIdentifier, error) {
	return nil, nil
}
