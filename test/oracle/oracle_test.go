package oracle

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pkg/config/mesh"
	"istio.io/istio/pkg/util/protomarshal"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

const (
	samplesDir = "../../config/samples"
	goldenDir  = "../../internal/rendercmd/testdata/golden"
	helmFile   = "../../internal/render/testdata/helm-istio-1.28.yaml"
)

// helmMesh is the mesh document of the istiod Helm chart's ConfigMap, the
// usual document the operator merges into.
func helmMesh(t testing.TB) string {
	t.Helper()
	raw, err := os.ReadFile(helmFile)
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.Unmarshal(raw, &cm); err != nil {
		t.Fatal(err)
	}
	return cm.Data[render.MeshKey]
}

// accept fails t unless Istio accepts doc; warnings are logged.
func accept(t testing.TB, what, doc string) *meshconfig.MeshConfig {
	t.Helper()
	res, err := Check(doc)
	if err != nil {
		t.Fatalf("%s: Istio refuses the mesh document: %v\n--- document ---\n%s", what, err, doc)
	}
	for _, w := range res.Warnings {
		t.Logf("%s: istiod would warn: %s", what, w)
	}
	return res.Mesh
}

func samples(t testing.TB) []string {
	t.Helper()
	all, err := filepath.Glob(filepath.Join(samplesDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	all = slices.DeleteFunc(all, func(p string) bool { return filepath.Base(p) == "kustomization.yaml" })
	if len(all) == 0 {
		t.Fatalf("no sample in %s", samplesDir)
	}
	return all
}

func readSpec(t testing.TB, path string) *v1alpha1.MeshSettingsSpec {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ms v1alpha1.MeshSettings
	if err := yaml.UnmarshalStrict(raw, &ms); err != nil {
		t.Fatal(err)
	}
	return &ms.Spec
}

// TestGoldens: the mesh document of every golden ConfigMap is accepted by Istio.
func TestGoldens(t *testing.T) {
	goldens, err := filepath.Glob(filepath.Join(goldenDir, "*.golden.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(samples(t)); len(goldens) != n {
		t.Fatalf("%d golden files for %d samples: run go test ./internal/rendercmd -update in the main module", len(goldens), n)
	}
	for _, g := range goldens {
		t.Run(filepath.Base(g), func(t *testing.T) {
			raw, err := os.ReadFile(g)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(raw), "\n---\n")
			var cm corev1.ConfigMap
			if err := yaml.UnmarshalStrict([]byte(first), &cm); err != nil {
				t.Fatal(err)
			}
			doc, ok := cm.Data[render.MeshKey]
			if cm.Kind != "ConfigMap" || !ok {
				t.Fatalf("the first document of %s is not a mesh ConfigMap", g)
			}
			accept(t, g, doc)
		})
	}
}

// TestSamplesOverHelm renders every sample alone and into Helm's document:
// Istio accepts the result, a re-render changes nothing, and an empty spec
// gives back the document it was rendered into.
func TestSamplesOverHelm(t *testing.T) {
	helm := helmMesh(t)
	accept(t, "Helm's document", helm)
	for _, s := range samples(t) {
		t.Run(filepath.Base(s), func(t *testing.T) {
			spec := readSpec(t, s)
			roundTrip(t, spec, helm)
			roundTrip(t, spec, "")
		})
	}
}

// roundTrip renders spec into base as the controller does (MergeMesh with
// the state recorded in the ConfigMap's annotations), checks the result with
// the oracle, that a re-render is a no-op, and that removing the spec gives
// back base as Istio reads it. It returns the mesh Istio makes of the result.
func roundTrip(t testing.TB, spec *v1alpha1.MeshSettingsSpec, base string) *meshconfig.MeshConfig {
	t.Helper()
	res, err := render.MergeMesh(spec, base, render.MeshState{})
	if err != nil {
		t.Fatalf("render refuses a valid spec: %v\nspec: %s", err, specJSON(spec))
	}
	mc := accept(t, "rendered document", res.Document)
	state := recorded(t, res)

	again, err := render.MergeMesh(spec, res.Document, state)
	if err != nil {
		t.Fatalf("re-render: %v", err)
	}
	if again.Document != res.Document || !slices.Equal(again.Managed, res.Managed) || render.EncodeReplaced(again.Replaced) != render.EncodeReplaced(res.Replaced) {
		t.Fatalf("re-render is not a no-op\nfirst:\n%s\nsecond:\n%s", res.Document, again.Document)
	}

	gone, err := render.MergeMesh(&v1alpha1.MeshSettingsSpec{}, res.Document, state)
	if err != nil {
		t.Fatalf("removing the spec: %v", err)
	}
	if len(gone.Managed) != 0 || gone.Replaced != nil {
		t.Fatalf("an empty spec still manages %v, replaced %v", gone.Managed, gone.Replaced)
	}
	accept(t, "document with the spec removed", gone.Document)
	if !sameMesh(t, gone.Document, base) {
		t.Fatalf("removing the spec does not give back the document it was rendered into\nbase:\n%s\nafter:\n%s", base, gone.Document)
	}
	return mc
}

// recorded passes the render state through the ConfigMap annotations.
func recorded(t testing.TB, res render.MeshResult) render.MeshState {
	t.Helper()
	managed, err := render.DecodeManaged(render.EncodeManaged(res.Managed))
	if err != nil {
		t.Fatal(err)
	}
	replaced, err := render.DecodeReplaced(render.EncodeReplaced(res.Replaced))
	if err != nil {
		t.Fatal(err)
	}
	return render.MeshState{Managed: managed, Replaced: replaced}
}

// sameMesh compares two documents as Istio reads them.
func sameMesh(t testing.TB, a, b string) bool {
	t.Helper()
	ma, mb := &meshconfig.MeshConfig{}, &meshconfig.MeshConfig{}
	if err := protomarshal.ApplyYAMLStrict(a, ma); err != nil {
		t.Fatal(err)
	}
	if err := protomarshal.ApplyYAMLStrict(b, mb); err != nil {
		t.Fatal(err)
	}
	return proto.Equal(ma, mb)
}

func specJSON(spec *v1alpha1.MeshSettingsSpec) string {
	b, _ := json.Marshal(spec)
	return string(b)
}

func d(v time.Duration) *metav1.Duration { return &metav1.Duration{Duration: v} }

func ptr[T any](v T) *T { return &v }

func provider(mc *meshconfig.MeshConfig, name string) *meshconfig.MeshConfig_ExtensionProvider {
	for _, p := range mc.GetExtensionProviders() {
		if p.GetName() == name {
			return p
		}
	}
	return nil
}

// TestRenderedSpecs renders specs and checks that Istio reads every value as
// the spec means it, with its defaults applied around.
func TestRenderedSpecs(t *testing.T) {
	istioDefault := mesh.DefaultMeshConfig()
	cases := []struct {
		name  string
		spec  *v1alpha1.MeshSettingsSpec
		check func(t *testing.T, mc *meshconfig.MeshConfig)
	}{
		{"REGISTRY_ONLY is explicit (Istio's default is ALLOW_ANY)",
			&v1alpha1.MeshSettingsSpec{OutboundTrafficPolicy: &v1alpha1.OutboundTrafficPolicy{Mode: v1alpha1.OutboundRegistryOnly}},
			func(t *testing.T, mc *meshconfig.MeshConfig) {
				if mc.GetOutboundTrafficPolicy().GetMode() != meshconfig.MeshConfig_OutboundTrafficPolicy_REGISTRY_ONLY {
					t.Errorf("mode %v", mc.GetOutboundTrafficPolicy().GetMode())
				}
			}},
		{"ALLOW_ANY_DYNAMIC_DNS",
			&v1alpha1.MeshSettingsSpec{OutboundTrafficPolicy: &v1alpha1.OutboundTrafficPolicy{Mode: v1alpha1.OutboundAllowAnyDynamicDNS}},
			func(t *testing.T, mc *meshconfig.MeshConfig) {
				if mc.GetOutboundTrafficPolicy().GetMode() != meshconfig.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY_DYNAMIC_DNS {
					t.Errorf("mode %v", mc.GetOutboundTrafficPolicy().GetMode())
				}
			}},
		{"retry policy at the top level",
			&v1alpha1.MeshSettingsSpec{RetryPolicy: &v1alpha1.RetryPolicy{Attempts: ptr[int32](4), RetryOn: []v1alpha1.RetryOnCondition{"5xx", "reset", "429"},
				PerTryTimeout: d(1500 * time.Millisecond), RetryRemoteLocalities: ptr(true)}},
			func(t *testing.T, mc *meshconfig.MeshConfig) {
				r := mc.GetDefaultHttpRetryPolicy()
				if r.GetAttempts() != 4 || r.GetRetryOn() != "5xx,reset,429" || r.GetPerTryTimeout().AsDuration() != 1500*time.Millisecond || !r.GetRetryRemoteLocalities().GetValue() {
					t.Errorf("retry policy %v", r)
				}
			}},
		{"retries off",
			&v1alpha1.MeshSettingsSpec{RetryPolicy: &v1alpha1.RetryPolicy{Attempts: ptr[int32](0)}},
			func(t *testing.T, mc *meshconfig.MeshConfig) {
				if r := mc.GetDefaultHttpRetryPolicy(); r == nil || r.GetAttempts() != 0 || r.GetRetryOn() != "" {
					t.Errorf("retry policy %v", r)
				}
			}},
		{"drain, fixed termination",
			&v1alpha1.MeshSettingsSpec{Drain: &v1alpha1.Drain{DrainDuration: d(90 * time.Second), HoldApplicationUntilProxyStarts: ptr(true),
				Termination: &v1alpha1.DrainTermination{Strategy: v1alpha1.TerminationFixed, Duration: d(20 * time.Second)}}},
			func(t *testing.T, mc *meshconfig.MeshConfig) {
				pc := mc.GetDefaultConfig()
				if pc.GetDrainDuration().AsDuration() != 90*time.Second || pc.GetTerminationDrainDuration().AsDuration() != 20*time.Second || !pc.GetHoldApplicationUntilProxyStarts().GetValue() {
					t.Errorf("drain %v, termination %v, hold %v", pc.GetDrainDuration(), pc.GetTerminationDrainDuration(), pc.GetHoldApplicationUntilProxyStarts())
				}
				if _, ok := pc.GetProxyMetadata()["EXIT_ON_ZERO_ACTIVE_CONNECTIONS"]; ok {
					t.Error("EXIT_ON_ZERO_ACTIVE_CONNECTIONS set with a fixed termination")
				}
			}},
		{"drain, termination when idle",
			&v1alpha1.MeshSettingsSpec{Drain: &v1alpha1.Drain{Termination: &v1alpha1.DrainTermination{Strategy: v1alpha1.TerminationWhenIdle, Duration: d(90 * time.Second)}}},
			func(t *testing.T, mc *meshconfig.MeshConfig) {
				pm := mc.GetDefaultConfig().GetProxyMetadata()
				if pm["EXIT_ON_ZERO_ACTIVE_CONNECTIONS"] != "true" {
					t.Errorf("EXIT_ON_ZERO_ACTIVE_CONNECTIONS = %q", pm["EXIT_ON_ZERO_ACTIVE_CONNECTIONS"])
				}
				// The agent reads MINIMUM_DRAIN_DURATION with time.ParseDuration.
				if v, err := time.ParseDuration(pm["MINIMUM_DRAIN_DURATION"]); err != nil || v != 90*time.Second {
					t.Errorf("MINIMUM_DRAIN_DURATION = %q", pm["MINIMUM_DRAIN_DURATION"])
				}
				if got, want := mc.GetDefaultConfig().GetTerminationDrainDuration(), mesh.DefaultProxyConfig().GetTerminationDrainDuration(); !proto.Equal(got, want) {
					t.Errorf("terminationDrainDuration %v, want Istio's default %v", got, want)
				}
			}},
		{"proxy metadata values stay strings",
			&v1alpha1.MeshSettingsSpec{Proxy: &v1alpha1.Proxy{ImageType: "distroless", DNSCapture: ptr(true),
				Metadata: map[string]string{"FLAG": "true", "NUM": "0755", "NULLISH": "null", "EMPTY": "", "YES": "yes"}}},
			func(t *testing.T, mc *meshconfig.MeshConfig) {
				want := map[string]string{"FLAG": "true", "NUM": "0755", "NULLISH": "null", "EMPTY": "", "YES": "yes", "ISTIO_META_DNS_CAPTURE": "true"}
				if got := mc.GetDefaultConfig().GetProxyMetadata(); !mapsEqual(got, want) {
					t.Errorf("proxyMetadata %v, want %v", got, want)
				}
				if got := mc.GetDefaultConfig().GetImage().GetImageType(); got != "distroless" {
					t.Errorf("imageType %q", got)
				}
			}},
		{"tracing off (Istio's default is on)",
			&v1alpha1.MeshSettingsSpec{Tracing: &v1alpha1.Tracing{Enabled: ptr(false)}},
			func(t *testing.T, mc *meshconfig.MeshConfig) {
				if mc.GetEnableTracing() {
					t.Error("enableTracing is true")
				}
			}},
		{"every provider kind",
			&v1alpha1.MeshSettingsSpec{
				Tracing: &v1alpha1.Tracing{Providers: []v1alpha1.TracingProvider{
					{Name: "zipkin", Zipkin: &v1alpha1.ZipkinProvider{Endpoint: v1alpha1.Endpoint{Service: "zipkin.tracing.svc.cluster.local", Port: 9411}, Path: "/api/v2/spans", MaxTagLength: ptr[int32](99)}},
					{Name: "otel-grpc", OpenTelemetry: &v1alpha1.OpenTelemetryProvider{Endpoint: v1alpha1.Endpoint{Service: "observability/otel.observability.svc.cluster.local", Port: 4317},
						GRPC: &v1alpha1.OpenTelemetryGRPC{Timeout: d(10 * time.Second)}}},
					{Name: "otel-http", OpenTelemetry: &v1alpha1.OpenTelemetryProvider{Endpoint: v1alpha1.Endpoint{Service: "10.1.2.3", Port: 4318},
						HTTP: &v1alpha1.OpenTelemetryHTTP{Path: "/v1/traces", Timeout: d(500 * time.Millisecond),
							Headers: []v1alpha1.HTTPHeader{{Name: "x-a", Value: ptr("true")}, {Name: "x-b", EnvName: ptr("TOKEN")}}}}},
					{Name: "otel-default", OpenTelemetry: &v1alpha1.OpenTelemetryProvider{Endpoint: v1alpha1.Endpoint{Service: "fd00::1", Port: 4317}}},
					{Name: "datadog", Datadog: &v1alpha1.DatadogProvider{Endpoint: v1alpha1.Endpoint{Service: "datadog.datadog.svc.cluster.local", Port: 8126}}},
					{Name: "skywalking", SkyWalking: &v1alpha1.SkyWalkingProvider{Endpoint: v1alpha1.Endpoint{Service: "oap.skywalking.svc.cluster.local", Port: 11800}}},
				}, DefaultProviders: []string{"otel-http", "zipkin"}},
				AccessLogging: &v1alpha1.AccessLogging{File: ptr("/dev/stdout"), Encoding: "JSON", Format: ptr("%START_TIME%\n"),
					Providers: []v1alpha1.AccessLogProvider{
						{Name: "file-text", EnvoyFileAccessLog: &v1alpha1.EnvoyFileAccessLogProvider{Path: "/dev/stdout", Text: ptr("%RESPONSE_CODE%\n")}},
						{Name: "file-json", EnvoyFileAccessLog: &v1alpha1.EnvoyFileAccessLogProvider{Path: "/dev/stdout", Labels: map[string]string{"code": "%RESPONSE_CODE%"}}},
						{Name: "file-plain", EnvoyFileAccessLog: &v1alpha1.EnvoyFileAccessLogProvider{Path: "/dev/stderr"}},
						{Name: "als", EnvoyOtelAls: &v1alpha1.EnvoyOtelAlsProvider{Endpoint: v1alpha1.Endpoint{Service: "otel.example.com", Port: 4317}, LogName: "mesh"}},
					}, DefaultProviders: []string{"envoy", "als"}},
				Authorization: &v1alpha1.Authorization{Providers: []v1alpha1.AuthorizationProvider{
					{Name: "authz-http", EnvoyExtAuthzHTTP: &v1alpha1.EnvoyExtAuthzHTTPProvider{Endpoint: v1alpha1.Endpoint{Service: "authz.example.com", Port: 8000},
						PathPrefix: "/check", IncludeRequestHeadersInCheck: []string{"cookie"}, HeadersToUpstreamOnAllow: []string{"x-user"},
						HeadersToDownstreamOnDeny: []string{"set-cookie"}, Timeout: d(600 * time.Millisecond), FailOpen: ptr(true)}},
					{Name: "authz-grpc", EnvoyExtAuthzGRPC: &v1alpha1.EnvoyExtAuthzGRPCProvider{Endpoint: v1alpha1.Endpoint{Service: "opa.opa.svc.cluster.local", Port: 9191},
						Timeout: d(2 * time.Second), FailOpen: ptr(false)}},
				}},
			},
			func(t *testing.T, mc *meshconfig.MeshConfig) {
				for _, n := range []string{"zipkin", "otel-grpc", "otel-http", "otel-default", "datadog", "skywalking", "file-text", "file-json", "file-plain", "als", "authz-http", "authz-grpc", "prometheus", "envoy"} {
					if provider(mc, n) == nil {
						t.Errorf("provider %s missing", n)
					}
				}
				if z := provider(mc, "zipkin").GetZipkin(); z.GetPort() != 9411 || z.GetPath() != "/api/v2/spans" || z.GetMaxTagLength() != 99 {
					t.Errorf("zipkin %v", z)
				}
				if h := provider(mc, "otel-http").GetOpentelemetry().GetHttp(); h.GetTimeout().AsDuration() != 500*time.Millisecond || len(h.GetHeaders()) != 2 ||
					h.GetHeaders()[0].GetValue() != "true" || h.GetHeaders()[1].GetEnvName() != "TOKEN" {
					t.Errorf("otel-http %v", h)
				}
				if a := provider(mc, "authz-http").GetEnvoyExtAuthzHttp(); a.GetTimeout().AsDuration() != 600*time.Millisecond || !a.GetFailOpen() || a.GetPathPrefix() != "/check" {
					t.Errorf("authz-http %v", a)
				}
				if l := provider(mc, "file-json").GetEnvoyFileAccessLog().GetLogFormat().GetLabels().GetFields()["code"].GetStringValue(); l != "%RESPONSE_CODE%" {
					t.Errorf("file-json label %q", l)
				}
				if got := mc.GetDefaultProviders().GetTracing(); !slices.Equal(got, []string{"otel-http", "zipkin"}) {
					t.Errorf("defaultProviders.tracing %v", got)
				}
				if mc.GetAccessLogEncoding() != meshconfig.MeshConfig_JSON || mc.GetAccessLogFile() != "/dev/stdout" || mc.GetAccessLogFormat() != "%START_TIME%\n" {
					t.Errorf("access log %v %q %q", mc.GetAccessLogEncoding(), mc.GetAccessLogFile(), mc.GetAccessLogFormat())
				}
			}},
		{"discovery selectors",
			&v1alpha1.MeshSettingsSpec{DiscoverySelectors: []v1alpha1.LabelSelector{
				{MatchLabels: map[string]string{"istio-discovery": "enabled"}},
				{MatchExpressions: []v1alpha1.LabelSelectorRequirement{{Key: "env", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"dev"}}, {Key: "x", Operator: metav1.LabelSelectorOpExists}}},
			}},
			func(t *testing.T, mc *meshconfig.MeshConfig) {
				s := mc.GetDiscoverySelectors()
				if len(s) != 2 || s[0].GetMatchLabels()["istio-discovery"] != "enabled" || s[1].GetMatchExpressions()[0].GetOperator() != "NotIn" ||
					s[1].GetMatchExpressions()[1].GetOperator() != "Exists" || len(s[1].GetMatchExpressions()[1].GetValues()) != 0 {
					t.Errorf("discoverySelectors %v", s)
				}
			}},
		{"free-form meshConfig",
			&v1alpha1.MeshSettingsSpec{MeshConfig: map[string]apiextensionsv1.JSON{
				"trustDomain":           {Raw: []byte(`"prod.example.com"`)},
				"enablePrometheusMerge": {Raw: []byte(`false`)},
				"connectTimeout":        {Raw: []byte(`"5s"`)},
				"defaultConfig":         {Raw: []byte(`{"concurrency": 3}`)},
			}},
			func(t *testing.T, mc *meshconfig.MeshConfig) {
				if mc.GetTrustDomain() != "prod.example.com" || mc.GetEnablePrometheusMerge().GetValue() || mc.GetConnectTimeout().AsDuration() != 5*time.Second ||
					mc.GetDefaultConfig().GetConcurrency().GetValue() != 3 {
					t.Errorf("trustDomain %q merge %v connectTimeout %v concurrency %v", mc.GetTrustDomain(), mc.GetEnablePrometheusMerge(), mc.GetConnectTimeout(), mc.GetDefaultConfig().GetConcurrency())
				}
				// defaultConfig merges per key: Istio's defaults around concurrency stay.
				if got, want := mc.GetDefaultConfig().GetDiscoveryAddress(), istioDefault.GetDefaultConfig().GetDiscoveryAddress(); got != want {
					t.Errorf("discoveryAddress %q, want Istio's default %q", got, want)
				}
			}},
	}
	helm := helmMesh(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.check(t, roundTrip(t, c.spec, ""))
			mc := roundTrip(t, c.spec, helm)
			c.check(t, mc)
			// Helm's own settings survive the merge.
			if mc.GetDefaultConfig().GetDiscoveryAddress() != "istiod.istio-system.svc:15012" || mc.GetDefaultConfig().GetTracing().GetZipkin().GetAddress() != "zipkin.istio-system:9411" ||
				!slices.Contains(mc.GetDefaultProviders().GetMetrics(), "prometheus") || provider(mc, "otel-helm") == nil {
				t.Errorf("Helm's settings lost: %v", mc)
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestOracleRefuses proves the oracle catches each mistake it is there for.
func TestOracleRefuses(t *testing.T) {
	cases := map[string]string{
		"unknown key":                          "outboundTrafficPolicy:\n  mode: ALLOW_ANY\ntrustDomian: example.org\n",
		"unknown nested key":                   "defaultConfig:\n  drainDurration: 45s\n",
		"retry policy under defaultConfig":     "defaultConfig:\n  defaultHttpRetryPolicy:\n    attempts: 2\n",
		"unquoted proxyMetadata value":         "defaultConfig:\n  proxyMetadata:\n    EXIT_ON_ZERO_ACTIVE_CONNECTIONS: true\n",
		"unknown enum value":                   "outboundTrafficPolicy:\n  mode: SOMETIMES\n",
		"drain duration below a second":        "defaultConfig:\n  drainDuration: 1.500s\n",
		"connect timeout out of range":         "connectTimeout: 0s\n",
		"wrong type":                           "enablePrometheusMerge: sometimes\n",
		"provider port 0":                      "extensionProviders:\n- name: z\n  zipkin:\n    service: zipkin.example.com\n    port: 0\n",
		"provider with a short name":           "extensionProviders:\n- name: z\n  zipkin:\n    service: tracing/zipkin\n    port: 9411\n",
		"provider with a numeric TLD":          "extensionProviders:\n- name: z\n  datadog:\n    service: agent.123\n    port: 8126\n",
		"provider host label over 63":          "extensionProviders:\n- name: z\n  skywalking:\n    service: " + strings.Repeat("a", 64) + ".example.com\n    port: 11800\n",
		"duplicate provider":                   "extensionProviders:\n- name: z\n  zipkin: {service: a.example.com, port: 1}\n- name: z\n  zipkin: {service: b.example.com, port: 1}\n",
		"default provider missing":             "defaultProviders:\n  tracing: [nowhere]\n",
		"default provider of the wrong kind":   "defaultProviders:\n  accessLogging: [prometheus]\n",
		"retry policy with attempts 0":         "defaultHttpRetryPolicy:\n  attempts: 0\n  retryOn: 5xx\n",
		"unknown retryOn policy":               "defaultHttpRetryPolicy:\n  attempts: 2\n  retryOn: 5xx,sometimes\n",
		"unregistered status code in retryOn":  "defaultHttpRetryPolicy:\n  attempts: 2\n  retryOn: \"299\"\n",
		"perTryTimeout below a millisecond":    "defaultHttpRetryPolicy:\n  attempts: 2\n  perTryTimeout: 0.000500s\n",
		"perTryTimeout finer than millisecond": "defaultHttpRetryPolicy:\n  attempts: 2\n  perTryTimeout: 1.000500s\n",
		"invalid YAML":                         "defaultConfig: [\n",
	}
	for name, doc := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Check(doc); err == nil {
				t.Errorf("the oracle accepts\n%s", doc)
			} else {
				t.Log(err)
			}
		})
	}
}
