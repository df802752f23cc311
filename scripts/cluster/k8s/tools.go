//go:build tools

// Package tools names the commands this wrapper module builds, so that `go mod tidy` keeps
// everything they need in go.sum. scripts/cluster/build.sh runs
// `go build k8s.io/kubernetes/cmd/<name>` for each.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
