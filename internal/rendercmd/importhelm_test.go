package rendercmd

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// expressible sets every key a typed field covers, in the chart's values
// form, plus free-form keys.
const expressible = `
revision: canary
meshConfig:
  trustDomain: prod.example.com
  enablePrometheusMerge: false
  outboundTrafficPolicy:
    mode: REGISTRY_ONLY
  discoverySelectors:
  - matchLabels:
      istio-discovery: enabled
  enableTracing: true
  accessLogFile: /dev/stdout
  accessLogEncoding: JSON
  accessLogFormat: "[%START_TIME%]\n"
  defaultProviders:
    tracing: [otel]
    accessLogging: [file-text]
  extensionProviders:
  - name: otel
    opentelemetry:
      service: otel-collector.observability.svc.cluster.local
      port: 4317
      maxTagLength: 256
      grpc:
        timeout: 10s
  - name: zipkin
    zipkin:
      service: zipkin.istio-system.svc.cluster.local
      port: 9411
      path: /api/v2/spans
  - name: file-text
    envoyFileAccessLog:
      path: /dev/stdout
      logFormat:
        text: "%REQ(:METHOD)%\n"
  - name: als
    envoyOtelAls:
      service: als.observability.svc.cluster.local
      port: 4317
      logName: mesh
  - name: oauth2-proxy
    envoyExtAuthzHttp:
      service: oauth2-proxy.auth.svc.cluster.local
      port: 4180
      includeRequestHeadersInCheck: [authorization, cookie]
      timeout: 1m
  defaultHttpRetryPolicy:
    attempts: 3
    retryOn: connect-failure,reset
    perTryTimeout: 2s
  defaultConfig:
    concurrency: 2
    drainDuration: 45s
    holdApplicationUntilProxyStarts: true
    image:
      imageType: distroless
    proxyMetadata:
      EXIT_ON_ZERO_ACTIVE_CONNECTIONS: "true"
      MINIMUM_DRAIN_DURATION: 10s
      ISTIO_META_DNS_CAPTURE: "true"
      TEAM: shop
`

func TestImportHelmValuesExpressesEveryValue(t *testing.T) {
	ms, err := ImportHelmValues([]byte(expressible), ImportOptions{Name: "default", Namespace: "istio-system"})
	if err != nil {
		t.Fatal(err)
	}
	if ms.Spec.ConfigMapOwnership != v1alpha1.ConfigMapOwn || ms.Spec.Revision != "canary" || ms.Namespace != "istio-system" {
		t.Errorf("ownership %q revision %q namespace %q", ms.Spec.ConfigMapOwnership, ms.Spec.Revision, ms.Namespace)
	}
	// Typed fields, not spec.meshConfig, hold the keys they cover.
	if ms.Spec.Drain == nil || ms.Spec.Drain.Termination == nil || ms.Spec.Drain.Termination.Strategy != v1alpha1.TerminationWhenIdle ||
		ms.Spec.Proxy == nil || ms.Spec.Proxy.DNSCapture == nil || !*ms.Spec.Proxy.DNSCapture || ms.Spec.Proxy.ImageType != "distroless" ||
		!reflect.DeepEqual(ms.Spec.Proxy.Metadata, map[string]string{"TEAM": "shop"}) ||
		ms.Spec.RetryPolicy == nil || len(ms.Spec.RetryPolicy.RetryOn) != 2 ||
		len(ms.Spec.Tracing.Providers) != 2 || len(ms.Spec.AccessLogging.Providers) != 2 || len(ms.Spec.Authorization.Providers) != 1 {
		t.Errorf("typed fields not filled: %+v", ms.Spec)
	}
	if got := slices.Sorted(func(yield func(string) bool) {
		for k := range ms.Spec.MeshConfig {
			if !yield(k) {
				return
			}
		}
	}); !slices.Equal(got, []string{"defaultConfig", "enablePrometheusMerge", "trustDomain"}) {
		t.Errorf("spec.meshConfig keys %v", got)
	}
	// The MeshSettings writes the release's meshConfig, value for value.
	res, err := render.MergeMesh(&ms.Spec, "", render.MeshState{})
	if err != nil {
		t.Fatal(err)
	}
	var vals struct {
		MeshConfig map[string]any `json:"meshConfig"`
	}
	if err := yaml.Unmarshal([]byte(expressible), &vals); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(res.Document), &doc); err != nil {
		t.Fatal(err)
	}
	check := &importer{}
	check.compare("", vals.MeshConfig, doc)
	if len(check.problems) > 0 {
		t.Errorf("the imported MeshSettings does not write the values: %v", check.problems)
	}
}

// compare is what keeps the import honest: shown failing on a document
// that lost, changed or retyped a value.
func TestImportCompareFindsEveryDifference(t *testing.T) {
	want := map[string]any{
		"trustDomain":        "a",
		"defaultConfig":      map[string]any{"drainDuration": "60s", "concurrency": float64(2)},
		"extensionProviders": []any{map[string]any{"name": "z", "zipkin": map[string]any{"port": float64(1)}}},
	}
	got := map[string]any{
		"trustDomain":        "b",
		"defaultConfig":      map[string]any{"drainDuration": "1m"},
		"extensionProviders": []any{map[string]any{"name": "z", "zipkin": map[string]any{"port": "1"}}},
	}
	imp := &importer{}
	imp.compare("", want, got)
	wantProblems := []string{
		`meshConfig.trustDomain: "a" would be written as "b"`,
		`meshConfig.defaultConfig.concurrency: 2 is not written by the MeshSettings`,
		`meshConfig.extensionProviders[0].zipkin.port: 1 would be written as "1"`,
	}
	sort := slices.Sorted(slices.Values(imp.problems))
	if !slices.Equal(sort, slices.Sorted(slices.Values(wantProblems))) {
		t.Errorf("problems %q\nwant %q", imp.problems, wantProblems)
	}
}

func TestImportHelmValuesListsEverythingItCannotExpress(t *testing.T) {
	values := `
profile: ambient
meshConfig:
  trustDomain: prod.example.com
  outboundTrafficPolicy:
    mode: ALLOW_ANY
    egressProxy:
      host: egress.example.com
  defaultProviders:
    metrics: [prometheus]
  extensionProviders:
  - name: prom
    prometheus: {}
  - name: otel
    opentelemetry:
      service: otel.example.com
      port: 4317
      resourceDetectors:
        environment: {}
  defaultHttpRetryPolicy:
    attempts: 2
    backoff: 1s
  defaultConfig:
    terminationDrainDuration: 30s
    proxyMetadata:
      EXIT_ON_ZERO_ACTIVE_CONNECTIONS: "true"
`
	_, err := ImportHelmValues([]byte(values), ImportOptions{Name: "default", Namespace: "istio-system"})
	var ie *ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("want an *ImportError, got %v", err)
	}
	want := []string{
		`meshConfig.defaultConfig.proxyMetadata.EXIT_ON_ZERO_ACTIVE_CONNECTIONS: set beside terminationDrainDuration: a MeshSettings drains either after a fixed time or when idle`,
		`meshConfig.defaultConfig.terminationDrainDuration: "30s" is not written by the MeshSettings`,
		`meshConfig.defaultHttpRetryPolicy.backoff: "1s" is not written by the MeshSettings`,
		`meshConfig.defaultProviders.metrics: no MeshSettings field sets it (defaultProviders is written by tracing and accessLogging only); keep it in the ConfigMap's baseline instead, or use a Telemetry resource`,
		`meshConfig.extensionProviders[0]: provider "prom" of kind prometheus: MeshSettings has no field for this kind`,
		`meshConfig.extensionProviders[1].opentelemetry.resourceDetectors: {"environment":{}} is not written by the MeshSettings`,
		`meshConfig.outboundTrafficPolicy.egressProxy: {"host":"egress.example.com"} is not written by the MeshSettings`,
		`profile: ambient: the chart merges that file's meshConfig, which the importer cannot read; write those values into meshConfig explicitly and import again`,
	}
	if !slices.Equal(ie.Problems, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(ie.Problems, "\n"), strings.Join(want, "\n"))
	}
}

// With Own and no current document, render shows the ConfigMap the operator
// creates: the chart's baseline for the revision, the spec, meshNetworks.
func TestRenderOwnWithoutConfigMapStartsFromTheChartBaseline(t *testing.T) {
	ms := &v1alpha1.MeshSettings{Spec: v1alpha1.MeshSettingsSpec{
		Revision: "canary", ConfigMapOwnership: v1alpha1.ConfigMapOwn,
		OutboundTrafficPolicy: &v1alpha1.OutboundTrafficPolicy{Mode: v1alpha1.OutboundRegistryOnly},
	}}
	out, err := Render(ms, "", render.MeshState{}, "")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal([]byte(out.ConfigMap.Data[render.MeshKey]), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["trustDomain"] != "cluster.local" || doc["defaultConfig"].(map[string]any)["discoveryAddress"] != "istiod-canary.istio-system.svc:15012" ||
		doc["outboundTrafficPolicy"].(map[string]any)["mode"] != "REGISTRY_ONLY" || out.ConfigMap.Data[render.MeshNetworksKey] != "networks: {}" {
		t.Errorf("data %v", out.ConfigMap.Data)
	}
	ms.Spec.ConfigMapOwnership = ""
	out, err = Render(ms, "", render.MeshState{}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(out.ConfigMap.Data) != 1 || strings.Contains(out.ConfigMap.Data[render.MeshKey], "trustDomain") {
		t.Errorf("Merge adds a baseline: %v", out.ConfigMap.Data)
	}
}
