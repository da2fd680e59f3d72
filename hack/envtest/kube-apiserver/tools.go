//go:build tools

// Package tools exists so the module has a package; the binary is built with
// `go build k8s.io/kubernetes/cmd/kube-apiserver` from this directory.
package tools
