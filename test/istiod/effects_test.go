package realistiod

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshsettings/meshsettings-operator/test/harness/istiod"
)

const (
	appNS       = "bookinfo"
	collectorNS = "observability"
	hiddenNS    = "unselected"
	reviewsHost = "reviews.bookinfo.svc.cluster.local"
	otelHost    = "opentelemetry-collector.observability.svc.cluster.local"
)

// effectsSpec is the MeshSettings whose effects a sidecar in bookinfo must
// see; sampling and the header variable reach istiod as env.
const effectsSpec = `
outboundTrafficPolicy: {mode: REGISTRY_ONLY}
retryPolicy:
  attempts: 3
  retryOn: [connect-failure, refused-stream, "503"]
  perTryTimeout: 2s
tracing:
  samplingPercentage: "10"
  providers:
  - name: otel-http
    opentelemetry:
      service: opentelemetry-collector.observability.svc.cluster.local
      port: 4318
      http:
        path: /v1/traces
        timeout: 5s
        headers:
        - {name: x-scope-orgid, value: platform}
        - {name: authorization, envName: OTEL_AUTH}
  defaultProviders: [otel-http]
istiod:
  env:
  - name: OTEL_AUTH
    valueFrom: {secretKeyRef: {name: otel-token, key: header}}
namespaces:
- names: [bookinfo]
  dataplane: Sidecar
`

func service(ns, name string, port int32, labels map[string]string) {
	GinkgoHelper()
	if labels != nil {
		Expect(env.Client.Create(env.Ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}})).To(Succeed())
	}
	Expect(env.Client.Create(env.Ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: port}},
		},
	})).To(Succeed())
}

func sidecar(g Gomega) *Sidecar {
	sc, err := FetchSidecar(context.Background(), mainIstiod.GRPCAddr, appNS, "9080")
	g.Expect(err).NotTo(HaveOccurred())
	return sc
}

var _ = Describe("Envoy effects: what a sidecar in a labeled namespace receives over xDS", Ordered, func() {
	BeforeAll(func() {
		service(appNS, "reviews", 9080, map[string]string{"istio-discovery": "enabled"})
		service(collectorNS, "opentelemetry-collector", 4318, map[string]string{"istio-discovery": "enabled"})
		service(hiddenNS, "hidden", 8080, map[string]string{"team": "other"})
		By("the token Secret: the operator never reads it, the (emulated) kubelet does")
		Expect(env.Client.Create(env.Ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "otel-token", Namespace: istioNS},
			Data:       map[string][]byte{"header": []byte("Bearer s3cr3t")},
		})).To(Succeed())
		DeferCleanup(func() {
			deleteSettings("effects")
			By("rolling istiod back to the Deployment's env without the operator's entries")
			Expect(mainIstiod.Restart(env.Ctx, deploymentEnv("istiod"))).To(Succeed())
		})
	})

	It("REGISTRY_ONLY: catch-all to BlackHoleCluster and block_all 502; the retry policy on the service's route", func() {
		gen := applySpec("effects", specFromYAML(effectsSpec))
		Eventually(func() bool { ok, _ := applied("effects", gen); return ok }, 30*time.Second, 50*time.Millisecond).Should(BeTrue())
		By("the operator labeled the namespace for injection")
		Eventually(func(g Gomega) {
			ns := &corev1.Namespace{}
			g.Expect(env.Client.Get(env.Ctx, client.ObjectKey{Name: appNS}, ns)).To(Succeed())
			g.Expect(ns.Labels).To(HaveKeyWithValue("istio.io/rev", "default"))
		}, 30*time.Second, 50*time.Millisecond).Should(Succeed())

		Eventually(func(g Gomega) {
			sc := sidecar(g)
			g.Expect(sc.CatchAllCluster()).To(Equal("BlackHoleCluster"))
			block, err := sc.VirtualHost("9080", "block_all")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(block.Routes).NotTo(BeEmpty())
			g.Expect(block.Routes[0].GetDirectResponse().GetStatus()).To(BeEquivalentTo(502))

			vh, err := sc.VirtualHost("9080", reviewsHost+":9080")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(vh.Routes).NotTo(BeEmpty())
			rp := vh.Routes[0].GetRoute().GetRetryPolicy()
			g.Expect(rp).NotTo(BeNil(), Text(vh))
			g.Expect(rp.GetNumRetries().GetValue()).To(BeEquivalentTo(3))
			g.Expect(rp.GetRetryOn()).To(Equal("connect-failure,refused-stream,retriable-status-codes"))
			g.Expect(rp.GetRetriableStatusCodes()).To(Equal([]uint32{503}))
			g.Expect(rp.GetPerTryTimeout().AsDuration()).To(Equal(2 * time.Second))
		}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	})

	It("tracing: the OpenTelemetry tracer, its collector cluster and headers in the outbound HTTP connection manager", func() {
		Eventually(func(g Gomega) {
			h, err := sidecar(g).OutboundHCM(9080)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(h.GetTracing().GetProvider().GetName()).To(Equal("envoy.tracers.opentelemetry"), Text(h.GetTracing()))
			otel, err := OpenTelemetry(h)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(otel.GetHttpService().GetHttpUri().GetCluster()).To(Equal("outbound|4318||" + otelHost))
			g.Expect(otel.GetHttpService().GetHttpUri().GetUri()).To(HaveSuffix("/v1/traces"))
			hs := Headers(otel.GetHttpService().GetRequestHeadersToAdd())
			g.Expect(hs).To(HaveKeyWithValue("x-scope-orgid", "platform"))
			By("istiod resolves envName from its own environment: before a rollout it has no OTEL_AUTH")
			g.Expect(hs).To(HaveKeyWithValue("authorization", ""))
		}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
		By("the operator wrote the variable as a secretKeyRef, not a value")
		Expect(deploymentEnvEntry("istiod", "OTEL_AUTH")).To(Equal(corev1.EnvVar{Name: "OTEL_AUTH", ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "otel-token"}, Key: "header"}}}))
	})

	It("samplingPercentage: random_sampling after istiod restarts with the Deployment's env (a rollout)", func() {
		By("istiod still runs with the env it started with: Istio's default sampling 1%")
		sc, err := FetchSidecar(env.Ctx, mainIstiod.GRPCAddr, appNS, "9080")
		Expect(err).NotTo(HaveOccurred())
		h, err := sc.OutboundHCM(9080)
		Expect(err).NotTo(HaveOccurred())
		Expect(h.GetTracing().GetRandomSampling().GetValue()).To(BeNumerically("==", 1))

		vars := deploymentEnv("istiod")
		Expect(vars).To(ContainElement("PILOT_TRACE_SAMPLING=10"))
		Expect(mainIstiod.Restart(env.Ctx, vars)).To(Succeed())
		report("istiod ready time after an emulated rollout: %s", mainIstiod.ReadyAfter.Round(time.Millisecond))
		Eventually(func(g Gomega) {
			h, err := sidecar(g).OutboundHCM(9080)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(h.GetTracing().GetRandomSampling().GetValue()).To(BeNumerically("==", 10))
			otel, err := OpenTelemetry(h)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(Headers(otel.GetHttpService().GetRequestHeadersToAdd())).To(HaveKeyWithValue("authorization", "Bearer s3cr3t"),
				"the header carries the Secret's value once istiod runs with the Deployment's env")
		}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	})

	It("a Secret without the key stops istiod's new pods (CreateContainerConfigError, as the kubelet reports it)", func() {
		secret := &corev1.Secret{}
		Expect(env.Client.Get(env.Ctx, client.ObjectKey{Namespace: istioNS, Name: "otel-token"}, secret)).To(Succeed())
		secret.Data = map[string][]byte{"other": []byte("x")}
		Expect(env.Client.Update(env.Ctx, secret)).To(Succeed())
		DeferCleanup(func() {
			secret.Data = map[string][]byte{"header": []byte("Bearer s3cr3t")}
			Expect(env.Client.Update(env.Ctx, secret)).To(Succeed())
		})
		dep := &appsv1.Deployment{}
		Expect(env.Client.Get(env.Ctx, client.ObjectKey{Namespace: istioNS, Name: "istiod"}, dep)).To(Succeed())
		_, err := istiod.ContainerEnv(env.Ctx, clientset, dep, "discovery")
		Expect(err).To(MatchError(And(ContainSubstring("CreateContainerConfigError"), ContainSubstring("couldn't find key header in Secret istio-system/otel-token"))))
		By("the operator still reports its own writes applied: it cannot see Secrets (no RBAC, by design)")
		ok, _ := applied("effects", currentGeneration("effects"))
		Expect(ok).To(BeTrue())
	})

	It("ALLOW_ANY: catch-all to PassthroughCluster and the allow_any virtual host, live", func() {
		spec := specFromYAML(effectsSpec)
		spec.OutboundTrafficPolicy.Mode = "ALLOW_ANY"
		start := time.Now()
		applySpec("effects", spec)
		Eventually(func(g Gomega) {
			sc := sidecar(g)
			g.Expect(sc.CatchAllCluster()).To(Equal("PassthroughCluster"))
			_, err := sc.VirtualHost("9080", "allow_any")
			g.Expect(err).NotTo(HaveOccurred())
		}, 30*time.Second, 20*time.Millisecond).Should(Succeed())
		report("apply MeshSettings (REGISTRY_ONLY -> ALLOW_ANY) -> PassthroughCluster over xDS: %s", time.Since(start).Round(time.Millisecond))
	})

	It("discoverySelectors: only Services of selected namespaces in /debug/registryz", func() {
		hosts := func() ([]string, error) {
			svcs, err := mainIstiod.Registry(context.Background())
			var out []string
			for _, s := range svcs {
				out = append(out, s.Hostname)
			}
			return out, err
		}
		Eventually(hosts, 20*time.Second, 100*time.Millisecond).Should(ContainElement("hidden.unselected.svc.cluster.local"),
			"without selectors istiod sees every namespace")
		spec := specFromYAML(effectsSpec)
		spec.DiscoverySelectors = specFromYAML(`
discoverySelectors:
- matchLabels: {istio-discovery: enabled}
- matchExpressions:
  - {key: kubernetes.io/metadata.name, operator: In, values: [istio-system]}`).DiscoverySelectors
		applySpec("effects", spec)
		Eventually(hosts, 30*time.Second, 100*time.Millisecond).Should(SatisfyAll(
			ContainElement(reviewsHost),
			ContainElement(otelHost),
			Not(ContainElement("hidden.unselected.svc.cluster.local")),
			Not(ContainElement(HavePrefix("kubernetes.default."))),
		))
	})
})
