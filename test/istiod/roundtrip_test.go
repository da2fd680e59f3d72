package realistiod

import (
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/test/harness/istiod"
)

// roundTrip is one spec of the table: together they set every typed field
// that is written into the mesh document and several passthrough keys.
type roundTrip struct {
	name string
	spec string
}

var roundTrips = []roundTrip{
	{"outbound ALLOW_ANY", `outboundTrafficPolicy: {mode: ALLOW_ANY}`},
	{"outbound REGISTRY_ONLY (protojson omits the zero value)", `outboundTrafficPolicy: {mode: REGISTRY_ONLY}`},
	{"outbound ALLOW_ANY_DYNAMIC_DNS", `outboundTrafficPolicy: {mode: ALLOW_ANY_DYNAMIC_DNS}`},
	{"discoverySelectors with every operator", `
discoverySelectors:
- matchLabels: {istio-discovery: enabled}
  matchExpressions:
  - {key: environment, operator: NotIn, values: [sandbox, scratch]}
- matchExpressions:
  - {key: kubernetes.io/metadata.name, operator: In, values: [istio-system, istio-ingress]}
- matchExpressions:
  - {key: mesh, operator: Exists}
  - {key: legacy, operator: DoesNotExist}`},
	{"tracing disabled", `tracing: {enabled: false}`},
	{"zipkin provider with path and maxTagLength, default provider", `
tracing:
  enabled: true
  providers:
  - name: zipkin
    zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411, path: /api/v2/spans, maxTagLength: 300}
  defaultProviders: [zipkin]`},
	{"opentelemetry over HTTP with literal and env headers", `
tracing:
  providers:
  - name: otel-http
    opentelemetry:
      service: opentelemetry-collector.observability.svc.cluster.local
      port: 4318
      maxTagLength: 128
      http:
        path: /v1/traces
        timeout: 5s
        headers:
        - {name: x-scope-orgid, value: platform}
        - {name: authorization, envName: OTEL_AUTH}
  defaultProviders: [otel-http]`},
	{"opentelemetry over gRPC with a namespaced service", `
tracing:
  providers:
  - name: otel-grpc
    opentelemetry:
      service: observability/otel-collector.observability.svc.cluster.local
      port: 4317
      grpc: {timeout: 1500ms}`},
	{"opentelemetry with Istio's defaults (neither grpc nor http)", `
tracing:
  providers:
  - name: otel
    opentelemetry: {service: otel.observability.svc.cluster.local, port: 4317}`},
	{"datadog and skywalking", `
tracing:
  providers:
  - name: datadog
    datadog: {service: datadog-agent.datadog.svc.cluster.local, port: 8126, maxTagLength: 512}
  - name: skywalking
    skywalking: {service: skywalking-oap.skywalking.svc.cluster.local, port: 11800}
  defaultProviders: [datadog]`},
	{"access log file, JSON encoding and format", `
accessLogging:
  file: /dev/stdout
  encoding: JSON
  format: '{"code":"%RESPONSE_CODE%","path":"%REQ(:PATH)%"}'`},
	{"access log TEXT encoding, empty file", `accessLogging: {file: "", encoding: TEXT}`},
	{"access log providers: file text, file labels, OpenTelemetry ALS", `
accessLogging:
  providers:
  - name: file-text
    envoyFileAccessLog: {path: /dev/stdout, text: "%START_TIME% %RESPONSE_CODE%\n"}
  - name: file-json
    envoyFileAccessLog:
      path: /var/log/access.json
      labels: {method: "%REQ(:METHOD)%", status: "%RESPONSE_CODE%"}
  - name: otel-als
    envoyOtelAls: {service: otel.observability.svc.cluster.local, port: 4317, logName: mesh-log}
  defaultProviders: [envoy, otel-als]`},
	{"ext_authz HTTP with every field", `
authorization:
  providers:
  - name: oauth2-proxy
    envoyExtAuthzHttp:
      service: oauth2-proxy.auth.svc.cluster.local
      port: 4180
      pathPrefix: /oauth2/auth
      includeRequestHeadersInCheck: [authorization, cookie]
      headersToUpstreamOnAllow: [x-auth-request-user]
      headersToDownstreamOnDeny: [set-cookie, content-type]
      timeout: 600ms
      failOpen: true`},
	{"ext_authz gRPC", `
authorization:
  providers:
  - name: opa
    envoyExtAuthzGrpc: {service: opa.opa-istio.svc.cluster.local, port: 9191, timeout: 1s, failOpen: false}`},
	{"retry policy with every field", `
retryPolicy:
  attempts: 3
  retryOn: [connect-failure, refused-stream, "503"]
  perTryTimeout: 2s
  retryRemoteLocalities: true`},
	{"retries disabled (attempts 0)", `retryPolicy: {attempts: 0}`},
	{"drain: duration, Fixed termination, hold application", `
drain:
  drainDuration: 1m30s
  termination: {strategy: Fixed, duration: 20s}
  holdApplicationUntilProxyStarts: true`},
	{"drain: WhenIdle termination", `
drain:
  termination: {strategy: WhenIdle, duration: 15s}
  holdApplicationUntilProxyStarts: false`},
	{"proxy: image type, DNS capture, metadata", `
proxy:
  imageType: distroless
  dnsCapture: true
  metadata: {ISTIO_META_IDLE_TIMEOUT: 1h, BOOTSTRAP_XDS_AGENT: "true"}`},
	{"passthrough: trust domain, connect timeout, protocol detection, concurrency", `
meshConfig:
  trustDomain: prod.example.com
  connectTimeout: 7s
  protocolDetectionTimeout: 0.25s
  defaultConfig: {concurrency: 2}`},
	{"passthrough: Prometheus merge off, ingress class, DNS refresh, auto mTLS off", `
meshConfig:
  enablePrometheusMerge: false
  ingressClass: nginx-istio
  dnsRefreshRate: 30s
  enableAutoMtls: false
  # istiod runs the aliases sorted; a list in that order is compared item by item.
  trustDomainAliases: [legacy.example.com, old.example.com]`},
	{"everything at once", `
outboundTrafficPolicy: {mode: REGISTRY_ONLY}
discoverySelectors:
- matchLabels: {istio-discovery: enabled}
tracing:
  enabled: true
  providers:
  - name: zipkin
    zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}
  defaultProviders: [zipkin]
accessLogging: {file: /dev/stdout, encoding: TEXT}
retryPolicy: {attempts: 2, retryOn: [5xx, gateway-error], perTryTimeout: 500ms}
drain: {drainDuration: 30s, termination: {strategy: Fixed, duration: 10s}}
proxy: {imageType: debug, dnsCapture: false}
meshConfig:
  trustDomain: everything.example.com
  defaultConfig: {proxyStatsMatcher: {inclusionPrefixes: [cluster.outbound]}}`},
}

var _ = Describe("Round trip: every leaf the operator writes is what istiod runs", Ordered, func() {
	It("applies each config/samples document and istiod runs every leaf of the written mesh document", func() {
		samples, err := filepath.Glob(filepath.Join(env.Root, "config", "samples", "mesh_v1alpha1_meshsettings_*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(samples).NotTo(BeEmpty())
		installed := map[string]bool{"": true}
		for _, path := range samples {
			By("sample " + filepath.Base(path))
			raw, err := os.ReadFile(path)
			Expect(err).NotTo(HaveOccurred())
			ms := &meshv1alpha1.MeshSettings{}
			Expect(yaml.UnmarshalStrict(raw, ms)).To(Succeed())
			Expect(ms.Namespace).To(Equal(istioNS))
			rev := ms.Spec.Revision
			if !installed[rev] {
				installIstio(rev)
				installed[rev] = true
			}
			i := mainIstiod
			if rev != "" {
				i = startIstiod(rev, nil)
			}
			cmName := "istio"
			if rev != "" {
				cmName = "istio-" + rev
			}
			Expect(env.Client.Create(env.Ctx, ms)).To(Succeed())
			Eventually(func() bool { ok, _ := applied(ms.Name, ms.Generation); return ok }, 30*time.Second, 50*time.Millisecond).
				Should(BeTrue(), "sample %s was not applied", path)
			Eventually(func() ([]string, error) { return missingLeaves(i, cmName) }, 20*time.Second, 50*time.Millisecond).
				Should(BeEmpty(), "sample %s: leaves istiod does not run", path)
			deleteSettings(ms.Name)
			if rev != "" {
				Expect(i.Stop()).To(Succeed())
			}
		}
	})

	It("applies a table of specs and measures apply -> /debug/mesh", func() {
		Expect(len(roundTrips)).To(BeNumerically(">=", 20))
		var latencies []time.Duration
		for _, rt := range roundTrips {
			By(rt.name)
			spec := specFromYAML(rt.spec)
			start := time.Now()
			gen := applySpec("table", spec)
			var last []string
			Eventually(func() bool {
				if ok, _ := applied("table", gen); !ok {
					return false
				}
				var err error
				last, err = missingLeaves(mainIstiod, "istio")
				return err == nil && len(last) == 0
			}, 30*time.Second, 10*time.Millisecond).Should(BeTrue(), func() string {
				_, ms := applied("table", gen)
				return "case " + rt.name + ": leaves istiod does not run: " + stringList(last) + "\nstatus: " + statusText(ms)
			})
			latencies = append(latencies, time.Since(start))
		}
		report("apply MeshSettings -> written leaves in istiod's /debug/mesh over %d changes: p50 %s, max %s",
			len(latencies), percentile(latencies, 0.5).Round(time.Millisecond), percentile(latencies, 1).Round(time.Millisecond))
	})

	It("reports a typo'd key written by another manager as missing (the helper can fail)", func() {
		cm := &corev1.ConfigMap{}
		Expect(env.Client.Get(env.Ctx, client.ObjectKey{Namespace: istioNS, Name: "istio"}, cm)).To(Succeed())
		cm.Data["mesh"] += "conectTimeout: 5s\n"
		Expect(env.Client.Update(env.Ctx, cm, client.FieldOwner("helm"))).To(Succeed())
		Eventually(func() ([]string, error) { return missingLeaves(mainIstiod, "istio") }, 20*time.Second, 50*time.Millisecond).
			Should(ConsistOf(HavePrefix("conectTimeout: absent from istiod's effective config")))
	})

	AfterAll(func() {
		deleteSettings("table")
		By("restoring the chart's mesh document")
		cm := &corev1.ConfigMap{}
		Expect(env.Client.Get(env.Ctx, client.ObjectKey{Namespace: istioNS, Name: "istio"}, cm)).To(Succeed())
		cm.Data["mesh"] = helmMesh
		Expect(env.Client.Update(env.Ctx, cm, client.FieldOwner("helm"))).To(Succeed())
		Eventually(func() ([]string, error) { return missingLeaves(mainIstiod, "istio") }, 20*time.Second, 50*time.Millisecond).Should(BeEmpty())
	})
})

var _ = istiod.RejectedMessage

func stringList(s []string) string {
	out := ""
	for _, l := range s {
		out += "\n  " + l
	}
	return out
}

func statusText(ms *meshv1alpha1.MeshSettings) string {
	if ms == nil {
		return "(not found)"
	}
	b, _ := yaml.Marshal(ms.Status)
	return string(b)
}
