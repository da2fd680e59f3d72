//go:build tools

// Package tools exists so the module has a package; the binary is built with
// `go build go.etcd.io/etcd/server/v3` from this directory.
package tools
