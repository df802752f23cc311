package harness

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// SnapshotGroups are the API groups of the CSI snapshot objects: Velero's
// CSI actions create and read them in fake-kube, so the backup engine must
// read them (as additional items) from there too.
var SnapshotGroups = []string{"snapshot.storage.k8s.io", "groupsnapshot.storage.k8s.io"}

// RestConfig is a client configuration for fake-kube, from its kubeconfig.
func (k *FakeKube) RestConfig() (*rest.Config, error) {
	return clientcmd.BuildConfigFromFlags("", k.Kubeconfig)
}

// RoutedDynamic is a dynamic client that serves the resources of groups from
// there and everything else from elsewhere: Velero's engine reads the
// cluster's pods, claims and volumes from its in-process fake and the CSI
// snapshot objects from fake-kube, where Velero's CSI actions and the
// simulated snapshot controller write them.
func RoutedDynamic(elsewhere, there dynamic.Interface, groups []string) dynamic.Interface {
	routed := map[string]bool{}
	for _, g := range groups {
		routed[g] = true
	}
	return routedDynamic{elsewhere: elsewhere, there: there, groups: routed}
}

type routedDynamic struct {
	elsewhere, there dynamic.Interface
	groups           map[string]bool
}

func (r routedDynamic) Resource(resource schema.GroupVersionResource) dynamic.NamespaceableResourceInterface {
	if r.groups[resource.Group] {
		return r.there.Resource(resource)
	}
	return r.elsewhere.Resource(resource)
}
