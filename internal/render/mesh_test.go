package render

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

// helmMesh is the mesh document of the istiod Helm chart's "istio" ConfigMap.
func helmMesh(t testing.TB) string {
	t.Helper()
	raw, err := os.ReadFile("testdata/helm-istio-1.28.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(raw, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data[MeshKey] == "" {
		t.Fatal("testdata ConfigMap has no mesh document")
	}
	return cm.Data[MeshKey]
}

func rawJSON(v string) apiextensionsv1.JSON { return apiextensionsv1.JSON{Raw: []byte(v)} }

func str(s string) *string { return &s }

// fullSpec sets every field that reaches the mesh document. None of its
// provider names is one of the Helm document's.
func fullSpec() *v1alpha1.MeshSettingsSpec {
	const otelSvc = "otel-collector.observability.svc.cluster.local"
	return &v1alpha1.MeshSettingsSpec{
		OutboundTrafficPolicy: &v1alpha1.OutboundTrafficPolicy{Mode: v1alpha1.OutboundRegistryOnly},
		DiscoverySelectors: []v1alpha1.LabelSelector{
			{MatchLabels: map[string]string{"istio-discovery": "enabled"}},
			{MatchExpressions: []v1alpha1.LabelSelectorRequirement{{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: []string{"istio-system"}}}},
		},
		Tracing: &v1alpha1.Tracing{
			Enabled:            ptrTo(true),
			SamplingPercentage: "10",
			Providers: []v1alpha1.TracingProvider{
				{Name: "otel", OpenTelemetry: &v1alpha1.OpenTelemetryProvider{
					Endpoint: v1alpha1.Endpoint{Service: otelSvc, Port: 4317}, MaxTagLength: ptrTo[int32](512),
					GRPC: &v1alpha1.OpenTelemetryGRPC{Timeout: dur(10 * time.Second)}}},
				{Name: "otel-http", OpenTelemetry: &v1alpha1.OpenTelemetryProvider{
					Endpoint: v1alpha1.Endpoint{Service: otelSvc, Port: 4318},
					HTTP: &v1alpha1.OpenTelemetryHTTP{Path: "/v1/traces", Timeout: dur(500 * time.Millisecond), Headers: []v1alpha1.HTTPHeader{
						{Name: "x-token", EnvName: str("OTEL_TOKEN")}, {Name: "x-tenant", Value: str("shop")},
					}}}},
				{Name: "zipkin-spec", Zipkin: &v1alpha1.ZipkinProvider{
					Endpoint: v1alpha1.Endpoint{Service: "zipkin.tracing.svc.cluster.local", Port: 9411}, Path: "/api/v2/spans", MaxTagLength: ptrTo[int32](256)}},
				{Name: "datadog", Datadog: &v1alpha1.DatadogProvider{Endpoint: v1alpha1.Endpoint{Service: "datadog-agent.datadog.svc.cluster.local", Port: 8126}}},
				{Name: "skywalking", SkyWalking: &v1alpha1.SkyWalkingProvider{Endpoint: v1alpha1.Endpoint{Service: "tracing/skywalking-oap.example.com", Port: 11800}}},
			},
			DefaultProviders: []string{"otel"},
		},
		AccessLogging: &v1alpha1.AccessLogging{
			File:     str("/dev/stdout"),
			Encoding: "JSON",
			Format:   str("[%START_TIME%] %REQ(:METHOD)%\n"),
			Providers: []v1alpha1.AccessLogProvider{
				{Name: "file-json", EnvoyFileAccessLog: &v1alpha1.EnvoyFileAccessLogProvider{Path: "/dev/stdout", Labels: map[string]string{"method": "%REQ(:METHOD)%", "status": "%RESPONSE_CODE%"}}},
				{Name: "file-text", EnvoyFileAccessLog: &v1alpha1.EnvoyFileAccessLogProvider{Path: "/var/log/access.log", Text: str("%START_TIME% %RESPONSE_CODE%\n")}},
				{Name: "otel-als", EnvoyOtelAls: &v1alpha1.EnvoyOtelAlsProvider{Endpoint: v1alpha1.Endpoint{Service: otelSvc, Port: 4317}, LogName: "mesh"}},
			},
			DefaultProviders: []string{"envoy", "file-json"},
		},
		Authorization: &v1alpha1.Authorization{Providers: []v1alpha1.AuthorizationProvider{
			{Name: "ext-authz-http", EnvoyExtAuthzHTTP: &v1alpha1.EnvoyExtAuthzHTTPProvider{
				Endpoint: v1alpha1.Endpoint{Service: "authz.security.svc.cluster.local", Port: 8000}, PathPrefix: "/check",
				IncludeRequestHeadersInCheck: []string{"authorization", "cookie"}, HeadersToUpstreamOnAllow: []string{"x-user"},
				HeadersToDownstreamOnDeny: []string{"set-cookie"}, Timeout: dur(600 * time.Millisecond), FailOpen: ptrTo(false)}},
			{Name: "ext-authz-grpc", EnvoyExtAuthzGRPC: &v1alpha1.EnvoyExtAuthzGRPCProvider{
				Endpoint: v1alpha1.Endpoint{Service: "10.0.0.12", Port: 9000}, Timeout: dur(2 * time.Second), FailOpen: ptrTo(true)}},
		}},
		RetryPolicy: &v1alpha1.RetryPolicy{
			Attempts: ptrTo[int32](3), RetryOn: []v1alpha1.RetryOnCondition{"5xx", "connect-failure", "503"},
			PerTryTimeout: dur(2 * time.Second), RetryRemoteLocalities: ptrTo(true),
		},
		Drain: &v1alpha1.Drain{
			DrainDuration:                   dur(90 * time.Second),
			Termination:                     &v1alpha1.DrainTermination{Strategy: v1alpha1.TerminationFixed, Duration: dur(20 * time.Second)},
			HoldApplicationUntilProxyStarts: ptrTo(true),
		},
		Proxy: &v1alpha1.Proxy{
			ImageType:  "distroless",
			DNSCapture: ptrTo(true),
			Metadata:   map[string]string{"BOOTSTRAP_XDS_AGENT": "true", "ISTIO_META_IDLE_TIMEOUT": "1h", "NUMBER": "42", "EMPTY": ""},
		},
		MeshConfig: map[string]apiextensionsv1.JSON{
			"ingressClass":   rawJSON(`"nginx-istio"`),
			"enableAutoMtls": rawJSON(`true`),
			"defaultConfig":  rawJSON(`{"concurrency": 2, "proxyStatsMatcher": {"inclusionPrefixes": ["cluster.outbound"]}}`),
		},
	}
}

// fullSpecMesh is what fullSpec writes, whatever the current document.
const fullSpecMesh = `
outboundTrafficPolicy:
  mode: REGISTRY_ONLY
discoverySelectors:
- matchLabels:
    istio-discovery: enabled
- matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: In
    values: [istio-system]
enableTracing: true
extensionProviders:
- name: otel
  opentelemetry: {service: otel-collector.observability.svc.cluster.local, port: 4317, maxTagLength: 512, grpc: {timeout: 10s}}
- name: otel-http
  opentelemetry:
    service: otel-collector.observability.svc.cluster.local
    port: 4318
    http:
      path: /v1/traces
      timeout: 0.500s
      headers: [{name: x-token, envName: OTEL_TOKEN}, {name: x-tenant, value: shop}]
- name: zipkin-spec
  zipkin: {service: zipkin.tracing.svc.cluster.local, port: 9411, path: /api/v2/spans, maxTagLength: 256}
- name: datadog
  datadog: {service: datadog-agent.datadog.svc.cluster.local, port: 8126}
- name: skywalking
  skywalking: {service: tracing/skywalking-oap.example.com, port: 11800}
- name: file-json
  envoyFileAccessLog: {path: /dev/stdout, logFormat: {labels: {method: "%REQ(:METHOD)%", status: "%RESPONSE_CODE%"}}}
- name: file-text
  envoyFileAccessLog: {path: /var/log/access.log, logFormat: {text: "%START_TIME% %RESPONSE_CODE%\n"}}
- name: otel-als
  envoyOtelAls: {service: otel-collector.observability.svc.cluster.local, port: 4317, logName: mesh}
- name: ext-authz-http
  envoyExtAuthzHttp:
    service: authz.security.svc.cluster.local
    port: 8000
    pathPrefix: /check
    includeRequestHeadersInCheck: [authorization, cookie]
    headersToUpstreamOnAllow: [x-user]
    headersToDownstreamOnDeny: [set-cookie]
    timeout: 0.600s
    failOpen: false
- name: ext-authz-grpc
  envoyExtAuthzGrpc: {service: 10.0.0.12, port: 9000, timeout: 2s, failOpen: true}
defaultProviders:
  tracing: [otel]
  accessLogging: [envoy, file-json]
accessLogFile: /dev/stdout
accessLogEncoding: JSON
accessLogFormat: "[%START_TIME%] %REQ(:METHOD)%\n"
defaultHttpRetryPolicy:
  attempts: 3
  retryOn: 5xx,connect-failure,503
  perTryTimeout: 2s
  retryRemoteLocalities: true
defaultConfig:
  drainDuration: 90s
  terminationDrainDuration: 20s
  holdApplicationUntilProxyStarts: true
  image: {imageType: distroless}
  proxyMetadata: {ISTIO_META_DNS_CAPTURE: "true", BOOTSTRAP_XDS_AGENT: "true", ISTIO_META_IDLE_TIMEOUT: 1h, NUMBER: "42", EMPTY: ""}
  concurrency: 2
  proxyStatsMatcher: {inclusionPrefixes: [cluster.outbound]}
ingressClass: nginx-istio
enableAutoMtls: true
`

var fullSpecManaged = []Path{
	"accessLogEncoding", "accessLogFile", "accessLogFormat",
	"defaultConfig/concurrency", "defaultConfig/drainDuration", "defaultConfig/holdApplicationUntilProxyStarts", "defaultConfig/image",
	"defaultConfig/proxyMetadata/BOOTSTRAP_XDS_AGENT", "defaultConfig/proxyMetadata/EMPTY", "defaultConfig/proxyMetadata/ISTIO_META_DNS_CAPTURE",
	"defaultConfig/proxyMetadata/ISTIO_META_IDLE_TIMEOUT", "defaultConfig/proxyMetadata/NUMBER",
	"defaultConfig/proxyStatsMatcher", "defaultConfig/terminationDrainDuration",
	"defaultHttpRetryPolicy", "defaultProviders/accessLogging", "defaultProviders/tracing",
	"discoverySelectors", "enableAutoMtls", "enableTracing",
	"extensionProviders/name=datadog", "extensionProviders/name=ext-authz-grpc", "extensionProviders/name=ext-authz-http",
	"extensionProviders/name=file-json", "extensionProviders/name=file-text", "extensionProviders/name=otel",
	"extensionProviders/name=otel-als", "extensionProviders/name=otel-http", "extensionProviders/name=skywalking",
	"extensionProviders/name=zipkin-spec",
	"ingressClass", "outboundTrafficPolicy",
}

func parse(t testing.TB, doc string) map[string]any {
	t.Helper()
	m := map[string]any{}
	if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
		t.Fatalf("not valid YAML: %v\n%s", err, doc)
	}
	return m
}

// flatten maps every leaf of a mesh document to its path. Paths use the
// render.Path syntax: extensionProviders entries are whole leaves named
// "extensionProviders/name=<name>", other lists are leaves. Empty maps carry
// no setting (Istio reads {} like an absent key) and are left out.
func flatten(doc map[string]any) map[string]any {
	out := map[string]any{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				p := k
				if prefix != "" {
					p = prefix + "/" + k
				}
				walk(p, c)
			}
		case []any:
			if prefix == "extensionProviders" {
				for _, item := range x {
					name, _ := item.(map[string]any)["name"].(string)
					out[prefix+"/name="+name] = item
				}
				return
			}
			out[prefix] = x
		default:
			out[prefix] = x
		}
	}
	walk("", doc)
	return out
}

func under(key string, p Path) bool {
	return key == string(p) || strings.HasPrefix(key, string(p)+"/")
}

// diffFlat reports every difference between two flattened documents.
func diffFlat(got, want map[string]any) []string {
	var diffs []string
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("missing %s (want %v)", k, w))
		case !reflect.DeepEqual(g, w):
			diffs = append(diffs, fmt.Sprintf("%s = %#v, want %#v", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("unexpected %s = %v", k, g))
		}
	}
	sort.Strings(diffs)
	return diffs
}

func providerNames(t testing.TB, doc string) []string {
	t.Helper()
	var names []string
	list, _ := parse(t, doc)["extensionProviders"].([]any)
	for _, item := range list {
		names = append(names, item.(map[string]any)["name"].(string))
	}
	return names
}

func mustMesh(t testing.TB, spec *v1alpha1.MeshSettingsSpec, current string, managed []Path) MeshResult {
	t.Helper()
	res, err := Mesh(spec, current, managed)
	if err != nil {
		t.Fatalf("Mesh: %v", err)
	}
	return res
}

func TestMeshKeepsHelmDocument(t *testing.T) {
	helm := helmMesh(t)
	res := mustMesh(t, fullSpec(), helm, nil)

	if !slices.Equal(res.Managed, fullSpecManaged) {
		t.Errorf("managed paths\n got: %q\nwant: %q", res.Managed, fullSpecManaged)
	}

	// Expected: Helm's document, minus what a managed path replaces, plus what the spec writes.
	want := flatten(parse(t, helm))
	for k := range want {
		for _, p := range res.Managed {
			if under(k, p) {
				delete(want, k)
			}
		}
	}
	for k, v := range flatten(parse(t, fullSpecMesh)) {
		want[k] = v
	}
	for _, d := range diffFlat(flatten(parse(t, res.Document)), want) {
		t.Error(d)
	}

	// Helm's own keys, spelled out, are untouched.
	out := parse(t, res.Document)
	dc := out["defaultConfig"].(map[string]any)
	if dc["discoveryAddress"] != "istiod.istio-system.svc:15012" {
		t.Errorf("defaultConfig.discoveryAddress = %v", dc["discoveryAddress"])
	}
	if !reflect.DeepEqual(dc["tracing"], map[string]any{"zipkin": map[string]any{"address": "zipkin.istio-system:9411"}}) {
		t.Errorf("defaultConfig.tracing = %v", dc["tracing"])
	}
	for k, v := range map[string]any{"rootNamespace": "istio-system", "trustDomain": "cluster.local", "enablePrometheusMerge": true} {
		if out[k] != v {
			t.Errorf("%s = %v, want %v", k, out[k], v)
		}
	}
	if m := out["defaultProviders"].(map[string]any)["metrics"]; !reflect.DeepEqual(m, []any{"prometheus"}) {
		t.Errorf("defaultProviders.metrics = %v", m)
	}
	// Helm's providers come first, in their order; the spec's follow in spec order.
	wantNames := []string{"otel-helm", "zipkin", "oauth2-proxy", "otel", "otel-http", "zipkin-spec", "datadog", "skywalking",
		"file-json", "file-text", "otel-als", "ext-authz-http", "ext-authz-grpc"}
	if got := providerNames(t, res.Document); !slices.Equal(got, wantNames) {
		t.Errorf("extensionProviders order\n got: %v\nwant: %v", got, wantNames)
	}
}

func TestMeshWithoutCurrentDocument(t *testing.T) {
	res := mustMesh(t, fullSpec(), "", nil)
	for _, d := range diffFlat(flatten(parse(t, res.Document)), flatten(parse(t, fullSpecMesh))) {
		t.Error(d)
	}
	for _, current := range []string{"", "   \n", "# only a comment\n", "null\n", "{}\n"} {
		res := mustMesh(t, &v1alpha1.MeshSettingsSpec{}, current, nil)
		if res.Document != "" || len(res.Managed) != 0 {
			t.Errorf("empty spec on %q: document %q, managed %v; want nothing", current, res.Document, res.Managed)
		}
	}
}

func TestMeshInvalidCurrentDocument(t *testing.T) {
	for _, current := range []string{"defaultConfig: [", "- a\n- b\n", "\tkey: value"} {
		if _, err := Mesh(fullSpec(), current, nil); err == nil || !strings.Contains(err.Error(), "current mesh document") {
			t.Errorf("current %q: want an error about the current document, got %v", current, err)
		}
	}
}

func TestMeshRerenderIsNoOp(t *testing.T) {
	specs := map[string]*v1alpha1.MeshSettingsSpec{
		"full":      fullSpec(),
		"empty":     {},
		"when idle": {Drain: &v1alpha1.Drain{Termination: &v1alpha1.DrainTermination{Strategy: v1alpha1.TerminationWhenIdle}}},
		"helm provider names": {Tracing: &v1alpha1.Tracing{Providers: []v1alpha1.TracingProvider{
			{Name: "zipkin", Zipkin: &v1alpha1.ZipkinProvider{Endpoint: v1alpha1.Endpoint{Service: "zipkin.tracing.svc.cluster.local", Port: 9411}}}}}},
	}
	for name, spec := range specs {
		for base, current := range map[string]string{"helm": helmMesh(t), "none": ""} {
			t.Run(name+" on "+base, func(t *testing.T) {
				first := mustMesh(t, spec, current, nil)
				second := mustMesh(t, spec, first.Document, first.Managed)
				if second.Document != first.Document {
					t.Errorf("re-render changed the document\nfirst:\n%s\nsecond:\n%s", first.Document, second.Document)
				}
				if !slices.Equal(second.Managed, first.Managed) {
					t.Errorf("re-render changed managed: %v -> %v", first.Managed, second.Managed)
				}
			})
		}
	}
}

func TestMeshRemovesExactlyWhatTheSpecStoppedSetting(t *testing.T) {
	cases := []struct {
		name    string
		change  func(*v1alpha1.MeshSettingsSpec)
		removed []Path // flattened keys at or below these disappear, nothing else changes
	}{
		{"outboundTrafficPolicy", func(s *v1alpha1.MeshSettingsSpec) { s.OutboundTrafficPolicy = nil }, []Path{"outboundTrafficPolicy"}},
		{"discoverySelectors", func(s *v1alpha1.MeshSettingsSpec) { s.DiscoverySelectors = nil }, []Path{"discoverySelectors"}},
		{"tracing.enabled", func(s *v1alpha1.MeshSettingsSpec) { s.Tracing.Enabled = nil }, []Path{"enableTracing"}},
		{"tracing.samplingPercentage (an env var, not a mesh key)", func(s *v1alpha1.MeshSettingsSpec) { s.Tracing.SamplingPercentage = "" }, nil},
		{"one tracing provider", func(s *v1alpha1.MeshSettingsSpec) { s.Tracing.Providers = slices.Delete(s.Tracing.Providers, 2, 3) },
			[]Path{"extensionProviders/name=zipkin-spec"}},
		{"tracing.defaultProviders", func(s *v1alpha1.MeshSettingsSpec) { s.Tracing.DefaultProviders = nil }, []Path{"defaultProviders/tracing"}},
		{"tracing", func(s *v1alpha1.MeshSettingsSpec) { s.Tracing = nil }, []Path{"enableTracing", "defaultProviders/tracing",
			"extensionProviders/name=otel", "extensionProviders/name=otel-http", "extensionProviders/name=zipkin-spec",
			"extensionProviders/name=datadog", "extensionProviders/name=skywalking"}},
		{"accessLogging.file", func(s *v1alpha1.MeshSettingsSpec) { s.AccessLogging.File = nil }, []Path{"accessLogFile"}},
		{"accessLogging.encoding", func(s *v1alpha1.MeshSettingsSpec) { s.AccessLogging.Encoding = "" }, []Path{"accessLogEncoding"}},
		{"accessLogging.format", func(s *v1alpha1.MeshSettingsSpec) { s.AccessLogging.Format = nil }, []Path{"accessLogFormat"}},
		{"accessLogging.providers", func(s *v1alpha1.MeshSettingsSpec) { s.AccessLogging.Providers = nil },
			[]Path{"extensionProviders/name=file-json", "extensionProviders/name=file-text", "extensionProviders/name=otel-als"}},
		{"accessLogging.defaultProviders", func(s *v1alpha1.MeshSettingsSpec) { s.AccessLogging.DefaultProviders = nil }, []Path{"defaultProviders/accessLogging"}},
		{"both defaultProviders lists", func(s *v1alpha1.MeshSettingsSpec) {
			s.AccessLogging.DefaultProviders = nil
			s.Tracing.DefaultProviders = nil
		}, []Path{"defaultProviders/accessLogging", "defaultProviders/tracing"}},
		{"authorization", func(s *v1alpha1.MeshSettingsSpec) { s.Authorization = nil },
			[]Path{"extensionProviders/name=ext-authz-http", "extensionProviders/name=ext-authz-grpc"}},
		{"retryPolicy", func(s *v1alpha1.MeshSettingsSpec) { s.RetryPolicy = nil }, []Path{"defaultHttpRetryPolicy"}},
		{"retryPolicy.retryOn (the policy is one key: replaced whole)", func(s *v1alpha1.MeshSettingsSpec) { s.RetryPolicy.RetryOn = nil },
			[]Path{"defaultHttpRetryPolicy/retryOn"}},
		{"drain.drainDuration", func(s *v1alpha1.MeshSettingsSpec) { s.Drain.DrainDuration = nil }, []Path{"defaultConfig/drainDuration"}},
		{"drain.termination", func(s *v1alpha1.MeshSettingsSpec) { s.Drain.Termination = nil }, []Path{"defaultConfig/terminationDrainDuration"}},
		{"drain.holdApplicationUntilProxyStarts", func(s *v1alpha1.MeshSettingsSpec) { s.Drain.HoldApplicationUntilProxyStarts = nil },
			[]Path{"defaultConfig/holdApplicationUntilProxyStarts"}},
		{"drain", func(s *v1alpha1.MeshSettingsSpec) { s.Drain = nil }, []Path{"defaultConfig/drainDuration",
			"defaultConfig/terminationDrainDuration", "defaultConfig/holdApplicationUntilProxyStarts"}},
		{"proxy.imageType", func(s *v1alpha1.MeshSettingsSpec) { s.Proxy.ImageType = "" }, []Path{"defaultConfig/image"}},
		{"proxy.dnsCapture", func(s *v1alpha1.MeshSettingsSpec) { s.Proxy.DNSCapture = nil }, []Path{"defaultConfig/proxyMetadata/ISTIO_META_DNS_CAPTURE"}},
		{"one proxy.metadata key", func(s *v1alpha1.MeshSettingsSpec) { delete(s.Proxy.Metadata, "NUMBER") }, []Path{"defaultConfig/proxyMetadata/NUMBER"}},
		{"proxy", func(s *v1alpha1.MeshSettingsSpec) { s.Proxy = nil }, []Path{"defaultConfig/image", "defaultConfig/proxyMetadata"}},
		{"one meshConfig key", func(s *v1alpha1.MeshSettingsSpec) { delete(s.MeshConfig, "ingressClass") }, []Path{"ingressClass"}},
		{"one meshConfig.defaultConfig key", func(s *v1alpha1.MeshSettingsSpec) {
			s.MeshConfig["defaultConfig"] = rawJSON(`{"concurrency": 2}`)
		}, []Path{"defaultConfig/proxyStatsMatcher"}},
		{"meshConfig", func(s *v1alpha1.MeshSettingsSpec) { s.MeshConfig = nil }, []Path{"ingressClass", "enableAutoMtls",
			"defaultConfig/concurrency", "defaultConfig/proxyStatsMatcher"}},
	}
	helm := helmMesh(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := mustMesh(t, fullSpec(), helm, nil)
			spec := fullSpec()
			c.change(spec)
			after := mustMesh(t, spec, before.Document, before.Managed)

			want := flatten(parse(t, before.Document))
			for k := range want {
				for _, p := range c.removed {
					if under(k, p) {
						delete(want, k)
					}
				}
			}
			got := flatten(parse(t, after.Document))
			if len(got) == len(flatten(parse(t, before.Document))) && len(c.removed) > 0 {
				t.Errorf("nothing was removed")
			}
			for _, d := range diffFlat(got, want) {
				t.Error(d)
			}
			for _, p := range after.Managed {
				for _, r := range c.removed {
					if under(string(p), r) {
						t.Errorf("%s is still listed as managed", p)
					}
				}
			}
			// The result does not depend on history: rendering the changed spec
			// on Helm's document directly gives the same settings.
			direct := mustMesh(t, spec, helm, nil)
			for _, d := range diffFlat(got, flatten(parse(t, direct.Document))) {
				t.Errorf("differs from a direct render: %s", d)
			}
			if !slices.Equal(direct.Managed, after.Managed) {
				t.Errorf("managed %v, direct render %v", after.Managed, direct.Managed)
			}
		})
	}
}

func TestMeshWithoutManagedListKeepsEverything(t *testing.T) {
	// Without the record of what it wrote, the operator cannot tell its keys
	// from others': it removes nothing.
	helm := helmMesh(t)
	before := mustMesh(t, fullSpec(), helm, nil)
	after := mustMesh(t, &v1alpha1.MeshSettingsSpec{}, before.Document, nil)
	if after.Document != before.Document {
		t.Errorf("document changed:\n%s", after.Document)
	}
	// With it, an empty spec gives Helm's settings back.
	back := mustMesh(t, &v1alpha1.MeshSettingsSpec{}, before.Document, before.Managed)
	for _, d := range diffFlat(flatten(parse(t, back.Document)), flatten(parse(t, helm))) {
		t.Error(d)
	}
	if len(back.Managed) != 0 {
		t.Errorf("managed %v, want none", back.Managed)
	}
}

func TestMeshRemovedKeyAlreadyGone(t *testing.T) {
	// Someone deleted a managed key by hand: removing it again is no error.
	res := mustMesh(t, &v1alpha1.MeshSettingsSpec{}, "trustDomain: example.org\n",
		[]Path{"accessLogFile", "defaultConfig/proxyMetadata/X", "extensionProviders/name=gone", "defaultProviders/tracing"})
	if res.Document != "trustDomain: example.org\n" {
		t.Errorf("document %q", res.Document)
	}
}

func TestMeshExtensionProvidersMergeByName(t *testing.T) {
	helm := helmMesh(t)
	spec := &v1alpha1.MeshSettingsSpec{
		Tracing: &v1alpha1.Tracing{Providers: []v1alpha1.TracingProvider{
			{Name: "zipkin", Zipkin: &v1alpha1.ZipkinProvider{Endpoint: v1alpha1.Endpoint{Service: "zipkin.tracing.svc.cluster.local", Port: 9412}}},
			{Name: "new-otel", OpenTelemetry: &v1alpha1.OpenTelemetryProvider{Endpoint: v1alpha1.Endpoint{Service: "otel.example.com", Port: 4317}}},
		}},
		Authorization: &v1alpha1.Authorization{Providers: []v1alpha1.AuthorizationProvider{
			{Name: "oauth2-proxy", EnvoyExtAuthzGRPC: &v1alpha1.EnvoyExtAuthzGRPCProvider{Endpoint: v1alpha1.Endpoint{Service: "authz.example.com", Port: 9000}}},
		}},
	}
	res := mustMesh(t, spec, helm, nil)
	if got, want := providerNames(t, res.Document), []string{"otel-helm", "zipkin", "oauth2-proxy", "new-otel"}; !slices.Equal(got, want) {
		t.Fatalf("providers %v, want %v (same names replaced in place, new ones appended)", got, want)
	}
	list := parse(t, res.Document)["extensionProviders"].([]any)
	helmList := parse(t, helm)["extensionProviders"].([]any)
	if !reflect.DeepEqual(list[0], helmList[0]) {
		t.Errorf("otel-helm changed: %v", list[0])
	}
	if want := map[string]any{"name": "zipkin", "zipkin": map[string]any{"service": "zipkin.tracing.svc.cluster.local", "port": float64(9412)}}; !reflect.DeepEqual(list[1], want) {
		t.Errorf("zipkin = %v, want the spec's whole entry %v", list[1], want)
	}
	if want := map[string]any{"name": "oauth2-proxy", "envoyExtAuthzGrpc": map[string]any{"service": "authz.example.com", "port": float64(9000)}}; !reflect.DeepEqual(list[2], want) {
		t.Errorf("oauth2-proxy = %v, want the spec's whole entry %v (no field of Helm's kept)", list[2], want)
	}

	// The spec stops setting zipkin: the entry it owned goes, the others stay in order.
	spec.Tracing.Providers = spec.Tracing.Providers[1:]
	after := mustMesh(t, spec, res.Document, res.Managed)
	if got, want := providerNames(t, after.Document), []string{"otel-helm", "oauth2-proxy", "new-otel"}; !slices.Equal(got, want) {
		t.Errorf("after removing zipkin: %v, want %v", got, want)
	}
	// And with no provider left of its own, Helm's first one is still there.
	after = mustMesh(t, &v1alpha1.MeshSettingsSpec{}, after.Document, after.Managed)
	if got, want := providerNames(t, after.Document), []string{"otel-helm"}; !slices.Equal(got, want) {
		t.Errorf("after removing every spec provider: %v, want %v", got, want)
	}
}

func TestMeshExtensionProvidersKeepSpecOrder(t *testing.T) {
	names := []string{"zeta", "alpha", "mid", "beta"}
	spec := &v1alpha1.MeshSettingsSpec{Tracing: &v1alpha1.Tracing{}}
	for _, n := range names {
		spec.Tracing.Providers = append(spec.Tracing.Providers, v1alpha1.TracingProvider{
			Name: n, SkyWalking: &v1alpha1.SkyWalkingProvider{Endpoint: v1alpha1.Endpoint{Service: n + ".example.com", Port: 11800}}})
	}
	res := mustMesh(t, spec, "", nil)
	if got := providerNames(t, res.Document); !slices.Equal(got, names) {
		t.Errorf("providers %v, want spec order %v", got, names)
	}
}

func TestMeshDefaultProvidersPerSubList(t *testing.T) {
	helm := helmMesh(t)
	spec := &v1alpha1.MeshSettingsSpec{
		Tracing:       &v1alpha1.Tracing{DefaultProviders: []string{"otel-helm"}},
		AccessLogging: &v1alpha1.AccessLogging{DefaultProviders: []string{"envoy"}},
	}
	res := mustMesh(t, spec, helm, nil)
	want := map[string]any{"metrics": []any{"prometheus"}, "tracing": []any{"otel-helm"}, "accessLogging": []any{"envoy"}}
	if got := parse(t, res.Document)["defaultProviders"]; !reflect.DeepEqual(got, want) {
		t.Errorf("defaultProviders = %v, want %v", got, want)
	}
	spec.Tracing = nil
	after := mustMesh(t, spec, res.Document, res.Managed)
	want = map[string]any{"metrics": []any{"prometheus"}, "accessLogging": []any{"envoy"}}
	if got := parse(t, after.Document)["defaultProviders"]; !reflect.DeepEqual(got, want) {
		t.Errorf("after removing tracing: defaultProviders = %v, want %v", got, want)
	}
	after = mustMesh(t, &v1alpha1.MeshSettingsSpec{}, after.Document, after.Managed)
	want = map[string]any{"metrics": []any{"prometheus"}}
	if got := parse(t, after.Document)["defaultProviders"]; !reflect.DeepEqual(got, want) {
		t.Errorf("after removing both: defaultProviders = %v, want Helm's %v", got, want)
	}
	// An empty list is written as such (it clears Istio's default), not dropped.
	res = mustMesh(t, &v1alpha1.MeshSettingsSpec{Tracing: &v1alpha1.Tracing{DefaultProviders: []string{}}}, "", nil)
	if got := parse(t, res.Document)["defaultProviders"]; !reflect.DeepEqual(got, map[string]any{"tracing": []any{}}) {
		t.Errorf("empty tracing.defaultProviders written as %v", got)
	}
}

func TestMeshConfigUnknownKey(t *testing.T) {
	cases := []struct {
		meshConfig map[string]string
		field      string
	}{
		{map[string]string{"trustDomian": `"example.org"`}, "spec.meshConfig.trustDomian"},
		{map[string]string{"meshNetworks": `{}`}, "spec.meshConfig.meshNetworks"},
		{map[string]string{"defaultConfig": `{"concurency": 2}`}, "spec.meshConfig.defaultConfig.concurency"},
		{map[string]string{"defaultConfig": `{"proxyStatsMatcher": {"inclusionPrefixez": ["a"]}}`}, "spec.meshConfig.defaultConfig.proxyStatsMatcher.inclusionPrefixez"},
		{map[string]string{"defaultConfig": `{"tracing": {"customTags": {"env": {"literall": {"value": "x"}}}}}`}, "spec.meshConfig.defaultConfig.tracing.customTags.env.literall"},
		{map[string]string{"serviceSettings": `[{"hosts": ["a.example.com"], "settings": {"clusterLocal": true}}, {"settings": {"clusterLocall": true}}]`}, "spec.meshConfig.serviceSettings[1].settings.clusterLocall"},
		{map[string]string{"localityLbSetting": `{"enabled": true, "failovr": []}`}, "spec.meshConfig.localityLbSetting.failovr"},
		// The first unknown key in name order is reported.
		{map[string]string{"zzz": `1`, "aaa": `1`, "trustDomain": `"x"`}, "spec.meshConfig.aaa"},
	}
	for _, c := range cases {
		t.Run(c.field, func(t *testing.T) {
			spec := &v1alpha1.MeshSettingsSpec{MeshConfig: map[string]apiextensionsv1.JSON{}}
			for k, v := range c.meshConfig {
				spec.MeshConfig[k] = rawJSON(v)
			}
			res, err := Mesh(spec, helmMesh(t), nil)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("want *FieldError, got %v (document %q)", err, res.Document)
			}
			if fe.Field != c.field {
				t.Errorf("field %q, want %q", fe.Field, c.field)
			}
			if !strings.Contains(fe.Msg, "not a field of Istio's") || !strings.HasPrefix(err.Error(), c.field+": ") {
				t.Errorf("unclear error %q", err)
			}
			if res.Document != "" || res.Managed != nil {
				t.Errorf("an invalid spec must render nothing, got %+v", res)
			}
		})
	}
}

func TestMeshConfigKnownKeysAccepted(t *testing.T) {
	// Keys in protobuf's own (snake_case) spelling are MeshConfig fields too,
	// and so are nested messages, maps of messages and well-known types.
	spec := &v1alpha1.MeshSettingsSpec{MeshConfig: map[string]apiextensionsv1.JSON{
		"trust_domain":       rawJSON(`"example.org"`),
		"connectTimeout":     rawJSON(`"5s"`),
		"enableAutoMtls":     rawJSON(`false`),
		"trustDomainAliases": rawJSON(`["old.example.org"]`),
		"serviceSettings":    rawJSON(`[{"hosts": ["*.internal"], "settings": {"clusterLocal": true}}]`),
		"defaultConfig":      rawJSON(`{"tracing": {"sampling": 5, "customTags": {"env": {"literal": {"value": "prod"}}}}, "proxyStatsMatcher": {"inclusionRegexps": [".*"]}}`),
		"meshMTLS":           rawJSON(`{"minProtocolVersion": "TLSV1_3"}`),
	}}
	res := mustMesh(t, spec, "", nil)
	doc := parse(t, res.Document)
	if doc["trust_domain"] != "example.org" || doc["connectTimeout"] != "5s" || doc["enableAutoMtls"] != false {
		t.Errorf("free-form keys not written as given:\n%s", res.Document)
	}
}

func TestMeshConfigReservedKeys(t *testing.T) {
	for _, k := range ReservedMeshConfigKeys {
		t.Run(k, func(t *testing.T) {
			spec := &v1alpha1.MeshSettingsSpec{MeshConfig: map[string]apiextensionsv1.JSON{k: rawJSON(`{}`)}}
			_, err := Mesh(spec, "", nil)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "spec.meshConfig."+k || !strings.Contains(fe.Msg, "typed field") {
				t.Errorf("want a FieldError on spec.meshConfig.%s naming the typed field, got %v", k, err)
			}
		})
	}
	for _, k := range ReservedProxyConfigKeys {
		t.Run("defaultConfig."+k, func(t *testing.T) {
			spec := &v1alpha1.MeshSettingsSpec{MeshConfig: map[string]apiextensionsv1.JSON{
				"defaultConfig": rawJSON(fmt.Sprintf(`{"concurrency": 2, %q: {}}`, k)),
			}}
			_, err := Mesh(spec, "", nil)
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != "spec.meshConfig.defaultConfig."+k || !strings.Contains(fe.Msg, "typed field") {
				t.Errorf("want a FieldError on spec.meshConfig.defaultConfig.%s, got %v", k, err)
			}
		})
	}
	// Every reserved key is a real MeshConfig / ProxyConfig field (else reserving it would be a typo).
	for _, k := range ReservedMeshConfigKeys {
		if err := checkKnownFields(meshDescriptor(), map[string]any{k: nil}, ""); err != nil {
			t.Errorf("reserved key %s: %v", k, err)
		}
	}
	for _, k := range ReservedProxyConfigKeys {
		if err := checkKnownFields(meshDescriptor(), map[string]any{"defaultConfig": map[string]any{k: nil}}, ""); err != nil {
			t.Errorf("reserved defaultConfig key %s: %v", k, err)
		}
	}
}

func TestMeshConfigWrongType(t *testing.T) {
	cases := []struct {
		key, value, field, mention string
	}{
		{"enablePrometheusMerge", `"yes"`, "spec.meshConfig.enablePrometheusMerge", `"yes"`},
		{"proxyListenPort", `true`, "spec.meshConfig.proxyListenPort", "proxyListenPort"},
		{"ingressControllerMode", `"SOMETIMES"`, "spec.meshConfig.ingressControllerMode", "SOMETIMES"},
		{"connectTimeout", `"soon"`, "spec.meshConfig.connectTimeout", `invalid google.protobuf.Duration value "soon"`},
		{"trustDomainAliases", `"old.example.org"`, "spec.meshConfig.trustDomainAliases", "old.example.org"},
		{"serviceSettings", `[{"settings": {"clusterLocal": "yes"}}]`, "spec.meshConfig.serviceSettings", "clusterLocal"},
		{"defaultConfig", `{"concurrency": "two"}`, "spec.meshConfig.defaultConfig.concurrency", `"two"`},
		{"defaultConfig", `{"drainDuration": "45s"}`, "spec.meshConfig.defaultConfig.drainDuration", "typed field"},
		{"defaultConfig", `"concurrency: 2"`, "spec.meshConfig.defaultConfig", "must be an object"},
		{"defaultConfig", `["concurrency"]`, "spec.meshConfig.defaultConfig", "must be an object"},
		{"trustDomain", `{not json`, "spec.meshConfig.trustDomain", "not valid JSON"},
	}
	for _, c := range cases {
		t.Run(c.key+"="+c.value, func(t *testing.T) {
			spec := &v1alpha1.MeshSettingsSpec{MeshConfig: map[string]apiextensionsv1.JSON{c.key: rawJSON(c.value)}}
			_, err := Mesh(spec, helmMesh(t), nil)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("want *FieldError, got %v", err)
			}
			if fe.Field != c.field || !strings.Contains(fe.Msg, c.mention) {
				t.Errorf("got %q; want field %s and a message mentioning %q", err, c.field, c.mention)
			}
			if strings.Contains(fe.Msg, "\u00a0") {
				t.Errorf("message carries a non-breaking space: %q", fe.Msg)
			}
		})
	}
}

func TestMeshProxyMetadataValuesAreStrings(t *testing.T) {
	metadata := map[string]string{
		"FLAG": "true", "OFF": "false", "YES": "yes", "NUM": "42", "FLOAT": "1.5", "NULLISH": "null",
		"EMPTY": "", "OCTAL": "0755", "TILDE": "~", "LIST": "[a]", "COLON": "a: b",
	}
	spec := &v1alpha1.MeshSettingsSpec{
		Proxy: &v1alpha1.Proxy{DNSCapture: ptrTo(false), Metadata: metadata},
		Drain: &v1alpha1.Drain{Termination: &v1alpha1.DrainTermination{Strategy: v1alpha1.TerminationWhenIdle, Duration: dur(90 * time.Second)}},
	}
	res := mustMesh(t, spec, helmMesh(t), nil)
	pm := parse(t, res.Document)["defaultConfig"].(map[string]any)["proxyMetadata"].(map[string]any)
	want := map[string]any{"ISTIO_META_DNS_CAPTURE": "false", "EXIT_ON_ZERO_ACTIVE_CONNECTIONS": "true", "MINIMUM_DRAIN_DURATION": "1m30s"}
	for k, v := range metadata {
		want[k] = v
	}
	if !reflect.DeepEqual(pm, want) {
		t.Errorf("proxyMetadata read back as %#v, want %#v", pm, want)
	}
	for _, line := range []string{`FLAG: "true"`, `EXIT_ON_ZERO_ACTIVE_CONNECTIONS: "true"`, `ISTIO_META_DNS_CAPTURE: "false"`, `NUM: "42"`} {
		if !strings.Contains(res.Document, line) {
			t.Errorf("document lacks %s:\n%s", line, res.Document)
		}
	}
}

func TestMeshDrainTermination(t *testing.T) {
	cases := []struct {
		name string
		term *v1alpha1.DrainTermination
		want map[string]any // flattened keys under defaultConfig
	}{
		{"fixed, default duration", &v1alpha1.DrainTermination{Strategy: v1alpha1.TerminationFixed},
			map[string]any{"defaultConfig/terminationDrainDuration": "5s"}},
		{"fixed 1m30s", &v1alpha1.DrainTermination{Strategy: v1alpha1.TerminationFixed, Duration: dur(90 * time.Second)},
			map[string]any{"defaultConfig/terminationDrainDuration": "90s"}},
		{"when idle, default minimum", &v1alpha1.DrainTermination{Strategy: v1alpha1.TerminationWhenIdle},
			map[string]any{"defaultConfig/proxyMetadata/EXIT_ON_ZERO_ACTIVE_CONNECTIONS": "true", "defaultConfig/proxyMetadata/MINIMUM_DRAIN_DURATION": "5s"}},
		{"when idle 30s", &v1alpha1.DrainTermination{Strategy: v1alpha1.TerminationWhenIdle, Duration: dur(30 * time.Second)},
			map[string]any{"defaultConfig/proxyMetadata/EXIT_ON_ZERO_ACTIVE_CONNECTIONS": "true", "defaultConfig/proxyMetadata/MINIMUM_DRAIN_DURATION": "30s"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := &v1alpha1.MeshSettingsSpec{Drain: &v1alpha1.Drain{Termination: c.term, DrainDuration: dur(45 * time.Second)}}
			res := mustMesh(t, spec, "", nil)
			c.want["defaultConfig/drainDuration"] = "45s"
			for _, d := range diffFlat(flatten(parse(t, res.Document)), c.want) {
				t.Error(d)
			}
		})
	}
	// Switching strategy swaps the keys: the two behaviours never stand together.
	fixed := &v1alpha1.MeshSettingsSpec{Drain: &v1alpha1.Drain{Termination: &v1alpha1.DrainTermination{Strategy: v1alpha1.TerminationFixed}}}
	idle := &v1alpha1.MeshSettingsSpec{Drain: &v1alpha1.Drain{Termination: &v1alpha1.DrainTermination{Strategy: v1alpha1.TerminationWhenIdle}}}
	first := mustMesh(t, fixed, helmMesh(t), nil)
	second := mustMesh(t, idle, first.Document, first.Managed)
	dc := parse(t, second.Document)["defaultConfig"].(map[string]any)
	if _, ok := dc["terminationDrainDuration"]; ok {
		t.Errorf("terminationDrainDuration kept beside EXIT_ON_ZERO_ACTIVE_CONNECTIONS:\n%s", second.Document)
	}
	third := mustMesh(t, fixed, second.Document, second.Managed)
	// Back to the first document, except Helm's empty proxyMetadata: removing
	// the operator's last metadata key drops the map it leaves empty ({} and
	// absent mean the same to Istio).
	if want := strings.Replace(first.Document, "  proxyMetadata: {}\n", "", 1); third.Document != want {
		t.Errorf("Fixed -> WhenIdle -> Fixed does not return to the first document:\n%s\n%s", want, third.Document)
	}
}

func TestMeshOutboundTrafficPolicyAlwaysHasMode(t *testing.T) {
	for _, mode := range []v1alpha1.OutboundTrafficMode{v1alpha1.OutboundRegistryOnly, v1alpha1.OutboundAllowAny, v1alpha1.OutboundAllowAnyDynamicDNS} {
		spec := &v1alpha1.MeshSettingsSpec{OutboundTrafficPolicy: &v1alpha1.OutboundTrafficPolicy{Mode: mode}}
		res := mustMesh(t, spec, "outboundTrafficPolicy: {}\n", nil)
		if got := parse(t, res.Document)["outboundTrafficPolicy"]; !reflect.DeepEqual(got, map[string]any{"mode": string(mode)}) {
			t.Errorf("%s written as %v", mode, got)
		}
		if !strings.Contains(res.Document, "mode: "+string(mode)) {
			t.Errorf("%s: document lacks an explicit mode:\n%s", mode, res.Document)
		}
	}
}

func TestMeshRetryPolicyAtTopLevel(t *testing.T) {
	cases := []struct {
		policy v1alpha1.RetryPolicy
		want   map[string]any
	}{
		{v1alpha1.RetryPolicy{Attempts: ptrTo[int32](3), RetryOn: []v1alpha1.RetryOnCondition{"gateway-error", "reset", "503"},
			PerTryTimeout: dur(1500 * time.Millisecond), RetryRemoteLocalities: ptrTo(false)},
			map[string]any{"attempts": float64(3), "retryOn": "gateway-error,reset,503", "perTryTimeout": "1.500s", "retryRemoteLocalities": false}},
		{v1alpha1.RetryPolicy{Attempts: ptrTo[int32](0)}, map[string]any{"attempts": float64(0)}},
		// Without attempts istiod disables retries: Istio's default 2 is written.
		{v1alpha1.RetryPolicy{PerTryTimeout: dur(time.Minute)}, map[string]any{"attempts": float64(2), "perTryTimeout": "60s"}},
		{v1alpha1.RetryPolicy{RetryOn: []v1alpha1.RetryOnCondition{"5xx"}}, map[string]any{"attempts": float64(2), "retryOn": "5xx"}},
		{v1alpha1.RetryPolicy{}, map[string]any{"attempts": float64(2)}},
	}
	for _, c := range cases {
		spec := &v1alpha1.MeshSettingsSpec{RetryPolicy: &c.policy, Drain: &v1alpha1.Drain{DrainDuration: dur(45 * time.Second)}}
		res := mustMesh(t, spec, helmMesh(t), nil)
		doc := parse(t, res.Document)
		if got := doc["defaultHttpRetryPolicy"]; !reflect.DeepEqual(got, c.want) {
			t.Errorf("defaultHttpRetryPolicy = %#v, want %#v", got, c.want)
		}
		for _, k := range []string{"defaultHttpRetryPolicy", "retryPolicy", "retries"} {
			if _, ok := doc["defaultConfig"].(map[string]any)[k]; ok {
				t.Errorf("defaultConfig.%s written; the retry policy belongs at the top level", k)
			}
		}
	}
}

func TestMeshDurationsInProtobufForm(t *testing.T) {
	spec := &v1alpha1.MeshSettingsSpec{
		Drain: &v1alpha1.Drain{DrainDuration: dur(time.Hour + 30*time.Second)},
		Tracing: &v1alpha1.Tracing{Providers: []v1alpha1.TracingProvider{{Name: "o", OpenTelemetry: &v1alpha1.OpenTelemetryProvider{
			Endpoint: v1alpha1.Endpoint{Service: "o.example.com", Port: 4317}, GRPC: &v1alpha1.OpenTelemetryGRPC{Timeout: dur(2 * time.Minute)}}}}},
	}
	res := mustMesh(t, spec, "", nil)
	for _, want := range []string{"drainDuration: 3630s", "timeout: 120s"} {
		if !strings.Contains(res.Document, want) {
			t.Errorf("document lacks %q:\n%s", want, res.Document)
		}
	}
}

func TestMeshDeterministic(t *testing.T) {
	helm := helmMesh(t)
	spec := fullSpec()
	for i := range 40 {
		spec.Proxy.Metadata[fmt.Sprintf("KEY_%02d", i)] = fmt.Sprint(i)
		spec.MeshConfig[fmt.Sprintf("x%d", i)] = rawJSON("1") // unknown: must fail the same way every time
	}
	_, firstErr := Mesh(spec, helm, nil)
	for k := range spec.MeshConfig {
		if strings.HasPrefix(k, "x") {
			delete(spec.MeshConfig, k)
		}
	}
	first := mustMesh(t, spec, helm, nil)
	for range 50 {
		if _, err := Mesh(withUnknownKeys(spec), helm, nil); err == nil || err.Error() != firstErr.Error() {
			t.Fatalf("errors differ: %v / %v", err, firstErr)
		}
		again := mustMesh(t, spec, helm, nil)
		if again.Document != first.Document || !slices.Equal(again.Managed, first.Managed) {
			t.Fatalf("output differs between runs:\n%s\n%s", first.Document, again.Document)
		}
	}
	if !slices.IsSorted(first.Managed) {
		t.Errorf("managed not sorted: %v", first.Managed)
	}
}

func withUnknownKeys(spec *v1alpha1.MeshSettingsSpec) *v1alpha1.MeshSettingsSpec {
	out := spec.DeepCopy()
	for i := range 40 {
		out.MeshConfig[fmt.Sprintf("x%d", i)] = rawJSON("1")
	}
	return out
}

func TestMeshDoesNotModifySpec(t *testing.T) {
	spec := fullSpec()
	before, _ := json.Marshal(spec)
	mustMesh(t, spec, helmMesh(t), nil)
	if after, _ := json.Marshal(spec); string(after) != string(before) {
		t.Errorf("Mesh modified its spec:\n%s\n%s", before, after)
	}
}

func meshDescriptor() protoreflect.MessageDescriptor {
	return (&meshv1alpha1.MeshConfig{}).ProtoReflect().Descriptor()
}

func TestMeshConfigWrongTypeNamesTheKey(t *testing.T) {
	spec := &v1alpha1.MeshSettingsSpec{
		OutboundTrafficPolicy: &v1alpha1.OutboundTrafficPolicy{Mode: v1alpha1.OutboundAllowAny},
		MeshConfig: map[string]apiextensionsv1.JSON{
			"trustDomain":           rawJSON(`"example.org"`),
			"enablePrometheusMerge": rawJSON(`"yes"`),
			"ingressClass":          rawJSON(`"nginx"`),
		},
	}
	_, err := Mesh(spec, "", nil)
	want := `spec.meshConfig.enablePrometheusMerge: Istio's MeshConfig refuses the value: invalid value for bool field value: "yes"`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

// takeOverSpec is fullSpec plus keys the Helm document already has.
func takeOverSpec() *v1alpha1.MeshSettingsSpec {
	spec := fullSpec()
	spec.MeshConfig["trustDomain"] = rawJSON(`"prod.example.com"`)
	spec.MeshConfig["defaultConfig"] = rawJSON(`{"concurrency": 2, "tracing": {"sampling": 10}}`)
	spec.Tracing.Providers = append(spec.Tracing.Providers, v1alpha1.TracingProvider{
		Name: "zipkin", Zipkin: &v1alpha1.ZipkinProvider{Endpoint: v1alpha1.Endpoint{Service: "zipkin.tracing.svc.cluster.local", Port: 9411}}})
	return spec
}

// encodeState passes a result through the ConfigMap annotations, as the controller does.
func encodeState(t *testing.T, res MeshResult) MeshState {
	t.Helper()
	managed, err := DecodeManaged(EncodeManaged(res.Managed))
	if err != nil {
		t.Fatal(err)
	}
	replaced, err := DecodeReplaced(EncodeReplaced(res.Replaced))
	if err != nil {
		t.Fatal(err)
	}
	return MeshState{Managed: managed, Replaced: replaced}
}

func TestMergeMeshRestoresReplacedValues(t *testing.T) {
	helm := helmMesh(t)
	helmDoc := parse(t, helm)
	first, err := MergeMesh(takeOverSpec(), helm, MeshState{})
	if err != nil {
		t.Fatal(err)
	}
	wantReplaced := map[Path]any{
		"trustDomain":                    "cluster.local",
		"defaultConfig/tracing":          helmDoc["defaultConfig"].(map[string]any)["tracing"],
		"extensionProviders/name=zipkin": helmDoc["extensionProviders"].([]any)[1],
	}
	if !reflect.DeepEqual(first.Replaced, wantReplaced) {
		t.Errorf("replaced %#v\nwant %#v", first.Replaced, wantReplaced)
	}
	state := encodeState(t, first)
	if !reflect.DeepEqual(state.Replaced, wantReplaced) {
		t.Errorf("replaced values do not survive the annotation: %#v", state.Replaced)
	}

	again, err := MergeMesh(takeOverSpec(), first.Document, state)
	if err != nil {
		t.Fatal(err)
	}
	if again.Document != first.Document || !slices.Equal(again.Managed, first.Managed) || !reflect.DeepEqual(again.Replaced, first.Replaced) {
		t.Errorf("re-render with the recorded state is not a no-op:\n%s\nreplaced %v", again.Document, again.Replaced)
	}

	// The spec stops setting trustDomain: Helm's value comes back, the rest stays.
	spec := takeOverSpec()
	delete(spec.MeshConfig, "trustDomain")
	partial, err := MergeMesh(spec, first.Document, state)
	if err != nil {
		t.Fatal(err)
	}
	if got := parse(t, partial.Document)["trustDomain"]; got != "cluster.local" {
		t.Errorf("trustDomain %v, want Helm's cluster.local back", got)
	}
	if _, ok := partial.Replaced["trustDomain"]; ok || len(partial.Replaced) != 2 {
		t.Errorf("replaced after giving trustDomain back: %v", partial.Replaced)
	}

	// The whole spec goes: Helm's document comes back, provider order included.
	gone, err := MergeMesh(&v1alpha1.MeshSettingsSpec{}, partial.Document, encodeState(t, partial))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range diffFlat(flatten(parse(t, gone.Document)), flatten(helmDoc)) {
		t.Error(d)
	}
	if got, want := providerNames(t, gone.Document), []string{"otel-helm", "zipkin", "oauth2-proxy"}; !slices.Equal(got, want) {
		t.Errorf("providers %v, want Helm's %v", got, want)
	}
	if len(gone.Managed) != 0 || gone.Replaced != nil {
		t.Errorf("an empty spec keeps state: managed %v, replaced %v", gone.Managed, gone.Replaced)
	}
}

func TestReplacedAnnotation(t *testing.T) {
	if v := EncodeReplaced(nil); v != "" {
		t.Errorf("EncodeReplaced(nil) = %q, want \"\"", v)
	}
	if v := EncodeReplaced(map[Path]any{}); v != "" {
		t.Errorf("EncodeReplaced(empty) = %q, want \"\"", v)
	}
	in := map[Path]any{"trustDomain": "cluster.local", "defaultConfig/concurrency": float64(2), "enableTracing": false,
		"extensionProviders/name=z": map[string]any{"name": "z", "zipkin": map[string]any{"port": float64(9411), "service": "z.example.com"}}}
	enc := EncodeReplaced(in)
	if want := `{"defaultConfig/concurrency":2,"enableTracing":false,"extensionProviders/name=z":{"name":"z","zipkin":{"port":9411,"service":"z.example.com"}},"trustDomain":"cluster.local"}`; enc != want {
		t.Errorf("EncodeReplaced = %s\nwant %s", enc, want)
	}
	out, err := DecodeReplaced(enc)
	if err != nil || !reflect.DeepEqual(out, in) {
		t.Errorf("round trip gave %v, %v", out, err)
	}
	if out, err := DecodeReplaced(""); out != nil || err != nil {
		t.Errorf("DecodeReplaced(\"\") = %v, %v", out, err)
	}
	for _, bad := range []string{"[]", "trustDomain", `{"a":`} {
		if _, err := DecodeReplaced(bad); err == nil || !strings.Contains(err.Error(), ReplacedValuesAnnotation) {
			t.Errorf("DecodeReplaced(%q): want an error naming the annotation, got %v", bad, err)
		}
	}
}

// istiod reads Go-style durations that protojson refuses: the operator must
// not refuse a value istiod accepts (the real-istiod suite found 250ms).
func TestMeshConfigDurationsIstiodReads(t *testing.T) {
	for _, c := range []struct{ key, value string }{
		{"protocolDetectionTimeout", `"250ms"`},
		{"connectTimeout", `"1m30s"`},
	} {
		spec := &v1alpha1.MeshSettingsSpec{MeshConfig: map[string]apiextensionsv1.JSON{c.key: rawJSON(c.value)}}
		res, err := Mesh(spec, helmMesh(t), nil)
		if err != nil {
			t.Errorf("%s: %s refused: %v", c.key, c.value, err)
			continue
		}
		if !strings.Contains(res.Document, strings.Trim(c.value[strings.LastIndex(c.value, ":")+1:], ` "}`)) {
			t.Errorf("%s: %s not written:\n%s", c.key, c.value, res.Document)
		}
	}
}
