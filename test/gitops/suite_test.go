package gitops

import (
	"context"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"k8s.io/client-go/dynamic"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshsettings/meshsettings-operator/controllers"
	"github.com/meshsettings/meshsettings-operator/test/harness"
)

// The GitOps suite runs the operator's real manager against a real API
// server (test/harness), as the controllers suite does, and plays Argo CD's
// part with server-side apply under Argo CD's field manager.
var (
	testEnv   *harness.Env
	ctx       context.Context
	k8sClient client.Client
	dyn       dynamic.Interface
)

func TestGitOps(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "GitOps Suite")
}

var _ = BeforeSuite(func() {
	testEnv = harness.Start()
	ctx, k8sClient, dyn = testEnv.Ctx, testEnv.Client, testEnv.Dynamic()
	testEnv.RunManager(controllers.Setup, ctrl.Options{Cache: controllers.CacheOptions("")})
})
