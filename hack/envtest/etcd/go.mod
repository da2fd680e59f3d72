// Wrapper module that builds etcd for envtest from the Go module proxy.
// `go install go.etcd.io/etcd/server/v3@...` is refused because that go.mod
// has replace directives, so it is required from here instead.
module github.com/meshsettings/meshsettings-operator/hack/envtest/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 v3.6.16
