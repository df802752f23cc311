//go:build tools

// Package tools names Velero's own command so that `go mod tidy` keeps everything it needs:
// scripts/cluster/build.sh builds `velero` (CLI and server) for the real-cluster stack from this
// module, at the Velero version the conformance harness tests, sharing its module graph and build
// cache. Velero's go.mod names k8s.io/cli-runtime v0.33.12, which the module proxy does not serve,
// so this module requires every k8s.io staging module at v0.33.13.
package tools

import _ "github.com/vmware-tanzu/velero/cmd/velero"
