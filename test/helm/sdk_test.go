package helm

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"k8s.io/cli-runtime/pkg/genericclioptions"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	helmkube "helm.sh/helm/v4/pkg/kube"
	release "helm.sh/helm/v4/pkg/release/v1"

	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// renderChart renders the real chart with the Helm v4 SDK as `helm install
// --dry-run=client` does, for the API server's Kubernetes version.
func renderChart(ns string, values map[string]any) manifest {
	GinkgoHelper()
	chrt, err := loader.Load(chart)
	Expect(err).NotTo(HaveOccurred())
	sv, err := kube.Discovery().ServerVersion()
	Expect(err).NotTo(HaveOccurred())
	kv, err := common.ParseKubeVersion(sv.GitVersion)
	Expect(err).NotTo(HaveOccurred())
	inst := action.NewInstall(action.NewConfiguration())
	inst.DryRunStrategy = action.DryRunClient
	inst.ReleaseName = "istiod"
	inst.Namespace = ns
	inst.Replace = true
	inst.KubeVersion = kv
	rel, err := inst.Run(chrt, values)
	Expect(err).NotTo(HaveOccurred())
	r, ok := rel.(*release.Release)
	Expect(ok).To(BeTrue(), "release is a %T", rel)
	return parseManifest(r.Manifest)
}

// The baseline an Own ConfigMap starts from and keeps (render.ChartBaseline)
// is written out by hand in the operator; here it is compared with what the
// real chart renders, so a chart change that moves the baseline fails.
var _ = Describe("render.ChartBaseline", func() {
	for _, c := range []struct{ ns, revision string }{
		{"istio-system", ""},
		{"istio-system", "canary"},
		{"mesh-control", "1-31-0"},
	} {
		It("equals the real chart's mesh ConfigMap for namespace "+c.ns+", revision "+c.revision+" (configMap=true, default values)", func() {
			m := renderChart(c.ns, map[string]any{
				"revision": c.revision,
				"global":   map[string]any{"istioNamespace": c.ns},
			})
			name := suffixed("istio", c.revision)
			cm := m.configMap(name)
			Expect(cm).NotTo(BeNil(), "the chart renders no ConfigMap %s", name)
			want := render.ChartBaseline(c.ns, c.revision)
			Expect(parseMesh(want.Mesh)).To(Equal(parseMesh(cm.Data["mesh"])))
			Expect(want.MeshNetworks).To(Equal(cm.Data["meshNetworks"]))
			Expect(cm.Data).To(HaveLen(2), "the chart's ConfigMap has keys the baseline lacks")
		})
	}

	It("differs from the chart when a value the baseline assumes is changed (the comparison can fail)", func() {
		m := renderChart("istio-system", map[string]any{"meshConfig": map[string]any{"trustDomain": "example.com"}})
		Expect(parseMesh(render.ChartBaseline("istio-system", "").Mesh)).NotTo(Equal(parseMesh(m.configMap("istio").Data["mesh"])))
	})
})

// sdkInstall installs the real chart as release "istiod" with the Helm v4
// SDK, as a program embedding Helm does: server-side apply (the SDK's and
// CLI's default), no wait (no kubelet runs).
func sdkInstall(ns string, values map[string]any) (*release.Release, error) {
	GinkgoHelper()
	chrt, err := loader.Load(chart)
	Expect(err).NotTo(HaveOccurred())
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &env.Kubeconfig
	flags.Namespace = &ns
	cfg := action.NewConfiguration()
	Expect(cfg.Init(flags, ns, "secret")).To(Succeed())
	inst := action.NewInstall(cfg)
	inst.ReleaseName = "istiod"
	inst.Namespace = ns
	inst.ServerSideApply = true
	inst.WaitStrategy = helmkube.HookOnlyStrategy
	rel, err := inst.RunWithContext(env.Ctx, chrt, values)
	if err != nil {
		return nil, err
	}
	r, ok := rel.(*release.Release)
	Expect(ok).To(BeTrue(), "release is a %T", rel)
	return r, nil
}
