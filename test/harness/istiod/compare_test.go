package istiod

import (
	"strings"
	"testing"
)

// A /debug/mesh body as the pinned istiod returns it (trimmed): REGISTRY_ONLY
// is the zero value and protojson leaves it out.
const debugMesh = `{"connectTimeout":"7s","enableTracing":true,
"defaultConfig":{"drainDuration":"45s","discoveryAddress":"istiod.istio-system.svc:15012","proxyMetadata":{"A":"1"},"concurrency":2},
"outboundTrafficPolicy":{},
"defaultHttpRetryPolicy":{"attempts":3,"perTryTimeout":"0.600s","retryOn":"5xx"},
"extensionProviders":[{"name":"prometheus","prometheus":{}},{"name":"z","zipkin":{"service":"zipkin.ns.svc","port":9411,"maxTagLength":256}}],
"discoverySelectors":[{"matchLabels":{"a":"b"}}]}`

func TestMissingLeavesAcceptsWhatIstiodRuns(t *testing.T) {
	eff, err := Effective([]byte(debugMesh))
	if err != nil {
		t.Fatal(err)
	}
	written := `
connectTimeout: 7s
outboundTrafficPolicy:
  mode: REGISTRY_ONLY
enableTracing: true
defaultConfig:
  drainDuration: 45s
  concurrency: 2
  proxyMetadata:
    A: "1"
defaultHttpRetryPolicy:
  attempts: 3
  perTryTimeout: 600ms
  retryOn: 5xx
extensionProviders:
- name: z
  zipkin: {service: zipkin.ns.svc, port: 9411, maxTagLength: 256}
discoverySelectors:
- matchLabels: {a: b}
`
	missing, err := MissingLeaves(written, eff)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) != 0 {
		t.Fatalf("want no missing leaves, got %q", missing)
	}
}

func TestMissingLeavesReportsWhatIstiodDoesNotRun(t *testing.T) {
	eff, err := Effective([]byte(debugMesh))
	if err != nil {
		t.Fatal(err)
	}
	written := `
conectTimeout: 5s
connectTimeout: 8s
outboundTrafficPolicy: {mode: ALLOW_ANY}
defaultConfig: {proxyMetadata: {A: "2"}}
extensionProviders:
- name: missing
  zipkin: {service: x, port: 1}
discoverySelectors: []
`
	missing, err := MissingLeaves(written, eff)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"conectTimeout: absent",
		"connectTimeout: written \"8s\", istiod has \"7s\"",
		"defaultConfig.proxyMetadata.A: written \"2\", istiod has \"1\"",
		"discoverySelectors: written 0 items, istiod has 1",
		"extensionProviders[name=missing]: absent",
		"outboundTrafficPolicy.mode: written \"ALLOW_ANY\", istiod has \"REGISTRY_ONLY\"",
	}
	if len(missing) != len(want) {
		t.Fatalf("want %d problems, got %q", len(want), missing)
	}
	for n, w := range want {
		if !strings.HasPrefix(missing[n], w) {
			t.Errorf("problem %d: want prefix %q, got %q", n, w, missing[n])
		}
	}
}
