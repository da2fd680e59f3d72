// Package helm runs the operator beside Istio's real istio-discovery chart,
// installed and upgraded by the real Helm CLIs (Helm 4 with server-side apply,
// Helm 4 with client-side apply, Helm 3) on a real kube-apiserver and etcd.
// The chart comes from the istio.io/istio module that test/oracle pins; the
// CLIs from hack/helm.sh. It is a module of its own so that neither Helm nor
// Istio enters the operator's go.mod.
package helm

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/meshsettings/meshsettings-operator/controllers"
	"github.com/meshsettings/meshsettings-operator/test/harness"
)

var (
	env  *harness.Env
	kube kubernetes.Interface
	// chart is the istio-discovery chart directory of the pinned istio.io/istio.
	chart string
	// The three ways Helm writes: Helm 4 defaults (server-side apply), Helm 4
	// client-side, Helm 3 (client-side three-way merge).
	helm4, helm4CSA, helm3 helmCLI
)

func TestHelm(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Helm Suite")
}

var _ = BeforeSuite(func() {
	env = harness.Start()
	var err error
	kube, err = kubernetes.NewForConfig(env.Config)
	Expect(err).NotTo(HaveOccurred())
	env.RunManager(controllers.Setup, ctrl.Options{Cache: controllers.CacheOptions("")})

	chart = istioChart(env.Root, "istio-control/istio-discovery")
	home := GinkgoT().TempDir()
	bin4, bin3 := helmBinary(env.Root, "4"), helmBinary(env.Root, "3")
	helm4 = helmCLI{Name: "helm4", Bin: bin4, Home: home, Kubeconfig: env.Kubeconfig}
	helm4CSA = helmCLI{Name: "helm4 --server-side=false", Bin: bin4, Home: home, Kubeconfig: env.Kubeconfig,
		Write: []string{"--server-side=false"}}
	helm3 = helmCLI{Name: "helm3", Bin: bin3, Home: home, Kubeconfig: env.Kubeconfig}
	Expect(helm4.version()).To(HavePrefix("v4.3.2"))
	Expect(helm3.version()).To(HavePrefix("v3.21.4"))
})
