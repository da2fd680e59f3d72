package controllers

import (
	"context"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshsettings/meshsettings-operator/test/harness"
)

// The suite runs the operator's manager, wired by Setup as main.go wires it,
// against a real kube-apiserver and etcd (test/harness).
var (
	testEnv   *harness.Env
	ctx       context.Context
	k8sClient client.Client
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controller Suite")
}

var _ = BeforeSuite(func() {
	testEnv = harness.Start()
	ctx, k8sClient = testEnv.Ctx, testEnv.Client
	testEnv.RunManager(Setup, ctrl.Options{Cache: CacheOptions("")})
})
