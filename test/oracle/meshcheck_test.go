package oracle

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pkg/config/mesh"
	"istio.io/istio/pkg/util/protomarshal"
	"sigs.k8s.io/yaml"

	"github.com/meshsettings/meshsettings-operator/internal/meshcheck"
)

// meshCheckSeeds are documents for every rule meshcheck ports, valid and
// invalid; FuzzMeshCheck starts from them.
var meshCheckSeeds = []string{
	"",
	"null",
	"- a",
	"'just a string'",
	"connectTimeout: 0s",
	"connectTimeout: 10",
	"connectTimeout: 1ms",
	"connectTimeout: 1h",
	"connectTimeout: 1h0m0.001s",
	"connectTimeout: 1.5ms",
	"connectTimeout: -1s",
	"connect_timeout: 2s\nconnectTimeout: 3s",
	"connect_timeout: x\nconnectTimeout: 3s",
	"proxyListenPort: 70000",
	"proxyListenPort: 0",
	"proxyListenPort: '15001'",
	"proxyListenPort: 1.5",
	"protocolDetectionTimeout: 100us",
	"protocolDetectionTimeout: -5ms",
	"enableTracing: 'yes'",
	"outboundTrafficPolicy:\n  mode: REGISTRY_ONLY",
	"outboundTrafficPolicy:\n  mode: ALLOW_ALL",
	"outboundTrafficPolicy:\n  mode: 7",
	"outboundTrafficPolicy: {}\nunknownKey: 1",
	"trustDomain: 'prod example.com'",
	"trustDomain: ''",
	"trustDomain: td.example.",
	"trustDomain: a..b",
	"trustDomainAliases: [b.example, a.example, 'bad alias', a.example]",
	"defaultConfig:\n  discoveryAddress: istiod.istio-system.svc",
	"defaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012",
	"defaultConfig:\n  discoveryAddress: ''",
	"defaultConfig:\n  discoveryAddress: 10.0.0.1:15012",
	"defaultConfig:\n  discoveryAddress: '[::1]:15012'",
	"defaultConfig:\n  discoveryAddress: 'a.123:15012'",
	"defaultConfig:\n  discoveryAddress: 'a.b:+80'",
	"defaultConfig:\n  statusPort: 0",
	"defaultConfig:\n  proxyAdminPort: 65536",
	"defaultConfig:\n  configPath: ''\n  binaryPath: ''",
	"defaultConfig:\n  serviceCluster: ''",
	"defaultConfig:\n  tracingServiceName: CANONICAL_NAME_ONLY",
	"defaultConfig:\n  drainDuration: 1.5s",
	"defaultConfig:\n  drainDuration: 0s",
	"defaultConfig:\n  drainDuration: 90s\n  terminationDrainDuration: 0s",
	"defaultConfig:\n  controlPlaneAuthPolicy: INHERIT",
	"defaultConfig:\n  controlPlaneAuthPolicy: NONE",
	"defaultConfig:\n  statsdUdpAddress: statsd",
	"defaultConfig:\n  envoyMetricsServiceAddress: 'ms:99999'",
	"defaultConfig:\n  envoyMetricsService:\n    address: 'ms:0'",
	"defaultConfig:\n  envoyAccessLogService:\n    address: als",
	"defaultConfig:\n  tracing:\n    zipkin:\n      address: zipkin",
	"defaultConfig:\n  tracing:\n    zipkin:\n      address: $(HOST_IP):9411",
	"defaultConfig:\n  tracing:\n    datadog:\n      address: ':8126'",
	"defaultConfig:\n  tracing:\n    lightstep:\n      address: ''",
	"defaultConfig:\n  tracing:\n    tlsSettings:\n      mode: MUTUAL",
	"defaultConfig:\n  tracing:\n    tlsSettings:\n      mode: SIMPLE\n      credentialName: configmap://ns/ca",
	"defaultConfig:\n  tracing:\n    tlsSettings:\n      mode: SIMPLE\n      insecureSkipVerify: true\n      caCertificates: /ca.pem",
	"defaultConfig:\n  tracing:\n    customTags:\n      a:\n        literal:\n          value: b",
	"defaultConfig:\n  privateKeyProvider: {}",
	"defaultConfig:\n  privateKeyProvider:\n    cryptomb:\n      pollDelay: 0s",
	"defaultConfig:\n  privateKeyProvider:\n    qat: {}",
	"defaultConfig:\n  connectionSettings:\n    http2InitialStreamWindowSize: 100\n    httpIdleTimeout: -1s\n    listenerConnectionLimit: 0",
	"defaultConfig:\n  connectionSettings:\n    httpMaxConcurrentStreams: 10\n    clusterPerConnectionBufferLimitBytes: -1",
	"defaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: true",
	"defaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: 'true'\n  holdApplicationUntilProxyStarts: true",
	"defaultConfig:\n  proxyHeaders:\n    server:\n      disabled: true",
	"defaultConfig:\n  concurrency: 9007199254740993",
	"defaultConfig:\n  statNameLength: 18446744073709551615",
	"defaultConfig: null\nconnectTimeout: null",
	"defaultConfig: 5",
	"defaultProviders:\n  tracing: [zipkin]\n  metrics: prometheus",
	"defaultProviders:\n  tracing: [zipkin]",
	"extensionProviders:\n- name: envoy\n  envoyFileAccessLog:\n    path: /dev/stderr\n- name: z\n  zipkin:\n    service: zipkin.istio-system.svc.cluster.local\n    port: 9411",
	"extensionProviders:\n- name: z\n  zipkin:\n    service: z\n    port: eighty",
	"extensionProviders:\n- name: a\n  zipkin: {service: a, port: 1}\n- name: a\n  datadog: {service: b, port: 2}",
	"localityLbSetting:\n  distribute:\n  - from: a\n    to: {b: 100}\n  failover:\n  - from: a\n    to: b",
	"localityLbSetting:\n  distribute:\n  - from: a\n    to: {b: 50}",
	"localityLbSetting:\n  distribute:\n  - from: a\n    to: {b: 0, c: 100}",
	"localityLbSetting:\n  distribute:\n  - from: a\n    to: {b: 100}\n  - from: a/z\n    to: {b: 100}",
	"localityLbSetting:\n  distribute:\n  - from: 'a/*'\n    to: {'b/c/d': 100}\n  - from: c//d\n    to: {b: 100}",
	"localityLbSetting:\n  failover:\n  - from: a\n    to: a\n  - from: a/b\n    to: '*'",
	"localityLbSetting:\n  failover:\n  - from: a\n    to: b\n  failoverPriority: [topology.istio.io/subzone]",
	"localityLbSetting:\n  enabled: false",
	"zoneAwareLbSetting:\n  failoverPriority: [topology.kubernetes.io/zone, custom]\n  failover:\n  - from: a\n    to: a/b",
	"serviceSettings:\n- hosts: [ok.example.com, 'bad host', '*.wild.example', 'a*.x']",
	"meshMTLS:\n  ecdhCurves: [P-256]",
	"meshMTLS:\n  ecdhCurves: []\n  minProtocolVersion: TLSV1_3",
	"tlsDefaults:\n  ecdhCurves: [P-256, nope, P-256]",
	"defaultTrafficPolicy:\n  connectionPool: {}",
	"defaultTrafficPolicy:\n  connectionPool:\n    tcp:\n      connectTimeout: 0.5ms\n      idleTimeout: 0.5ms\n      maxConnections: -1\n      tcpKeepalive:\n        time: 0s",
	"defaultTrafficPolicy:\n  connectionPool:\n    http:\n      h2UpgradePolicy: UPGRADE\n      useClientProtocol: true\n      maxRetries: -1\n      idleTimeout: 0s",
	"defaultTrafficPolicy:\n  outlierDetection:\n    maxEjectionPercent: 120\n    minHealthPercent: -1\n    consecutiveLocalOriginFailures: 3",
	"defaultHttpRetryPolicy:\n  attempts: 3\n  retryOn: 5xx",
	"accessLogFile: /dev/stdout\naccessLogEncoding: JSON\ndiscoverySelectors:\n- matchLabels: {a: b}",
	"rootNamespace: istio-system\ningressControllerMode: DEFAULT\ndnsRefreshRate: 0s",
	"a: [",
	"a: b: c",
	"enableAutoMtls: maybe\ndefaultConfig:\n  concurrency: two\n  tracing:\n    sampling: high",
	"defaultConfig:\n  tracing:\n    stackdriver:\n      maxNumberOfAttributes: 9223372036854775807",
	"defaultConfig:\n  tracing:\n    stackdriver:\n      maxNumberOfAttributes: 9223372036854775000",
	"defaultConfig:\n  discoveryAddress: " + strings.Repeat("a", 64) + ".example:15012",
	"defaultConfig:\n  discoveryAddress: " + strings.Repeat("abcdefgh.", 30) + "example:15012",
	"defaultConfig:\n  discoveryAddress: 'host:99999999999999999999'",
	"serviceSettings:\n- hosts: ['*', '*.a.b', 'a.*.b', '-a.b', '', 'a.b.1']",
	"defaultConfig:\n  tracing:\n    tlsSettings:\n      mode: MUTUAL\n      insecureSkipVerify: true\n      subjectAltNames: [a]\n      credentialName: configmap://ns",
	"defaultConfig:\n  tracing:\n    tlsSettings:\n      mode: MUTUAL\n      credentialName: configmap:///name\n      privateKey: /k",
	"defaultConfig:\n  tracing:\n    tlsSettings:\n      mode: SIMPLE\n      credentialName: configmap://ns/",
	"defaultConfig:\n  tracing:\n    tlsSettings:\n      mode: MUTUAL\n      clientCertificate: /c\n      privateKey: /k",
	"defaultConfig:\n  privateKeyProvider:\n    cryptomb: {}",
	"defaultConfig:\n  privateKeyProvider:\n    qat:\n      pollDelay: 0.001s",
	"defaultConfig:\n  connectionSettings:\n    listenerPerConnectionBufferLimitBytes: -1\n    httpMaxConnectionDuration: -1s\n    httpDrainTimeout: -1s\n    httpRequestTimeout: -1s\n    httpRequestHeadersTimeout: -1s\n    httpStreamIdleTimeout: -1s\n    httpMaxStreamDuration: -1s\n    httpMaxConcurrentStreams: 0\n    http2InitialConnectionWindowSize: 1\n    globalDownstreamConnectionLimit: 0",
	"defaultConfig:\n  connectionSettings:\n    http2InitialStreamWindowSize: 65535\n    listenerConnectionLimit: 1\n    httpIdleTimeout: 0s",
	"localityLbSetting:\n  distribute:\n  - from: 'a*/b'\n    to: {b: 100}",
	"localityLbSetting:\n  distribute:\n  - from: 'a/**'\n    to: {b: 100}",
	"localityLbSetting:\n  distribute:\n  - from: '*'\n    to: {b: 100}\n  - from: c\n    to: {b: 100}",
	"localityLbSetting:\n  distribute:\n  - from: a/b\n    to: {b: 100}\n  - from: a/b\n    to: {b: 100}",
	"localityLbSetting:\n  distribute:\n  - from: a/b\n    to: {b: 100}\n  - from: a/c\n    to: {b: 100}\n  - from: a/b/c\n    to: {b: 100}",
	"localityLbSetting:\n  distribute:\n  - from: a/b/c\n    to: {b: 100}\n  - from: a/b/d\n    to: {b: 100}\n  - from: a/c/d\n    to: {b: 100}\n  - from: a/b/c\n    to: {b: 100}",
	"localityLbSetting:\n  distribute:\n  - from: a/b/c\n    to: {b: 100}\n  - from: a/b\n    to: {b: 100}",
	"localityLbSetting:\n  distribute:\n  - from: a\n    to: {b: 100}\n  - from: a/b/c\n    to: {b: 100}",
	"localityLbSetting:\n  distribute:\n  - from: x/y/z\n    to: {b: 60, c: 40}\n  - from: x/y/w\n    to: {'b/c/d': 100}",
	"localityLbSetting:\n  distribute:\n  - from: a\n    to: {b: 101}",
	"localityLbSetting:\n  failover:\n  - from: a\n    to: b\n  failoverPriority: [custom/label]",
	"zoneAwareLbSetting:\n  failover:\n  - from: '*'\n    to: b\n  - from: a\n    to: b",
	"defaultTrafficPolicy:\n  connectionPool:\n    http:\n      http1MaxPendingRequests: -1\n      http2MaxRequests: -1\n      maxRequestsPerConnection: -1\n      maxConcurrentStreams: -1\n      idleTimeout: 1s",
	"defaultTrafficPolicy:\n  connectionPool:\n    tcp:\n      maxConnectionDuration: 0s\n      idleTimeout: 1.5ms\n      tcpKeepalive:\n        interval: 0.1ms",
	"defaultTrafficPolicy:\n  outlierDetection:\n    baseEjectionTime: 0s\n    interval: 1.0001s\n    consecutiveLocalOriginFailures: 3\n    splitExternalLocalOriginErrors: true\n    maxEjectionPercent: 100",
	"connectTimeout: 5s\nproxyListenPort: 15001\ntrustDomain: cluster.local\ndefaultConfig:\n  discoveryAddress: istiod.istio-system.svc:15012\n  tracing:\n    sampling: 10\n  proxyMetadata:\n    A: b",
}

// FuzzMeshCheck holds meshcheck.Compose, the operator's port of istiod's
// composition and validation, equal to Istio's own
// (mesh.ApplyMeshConfigDefaults, which runs agent.ValidateMeshConfig): the
// same verdict for every document and, when accepted, the same MeshConfig.
// Each input is a document, judged as is and again after the mutations
// ops asks for (values replaced by ones near a rule's edge, keys renamed,
// known keys added). `make test-oracle` fuzzes it for 20s.
func FuzzMeshCheck(f *testing.F) {
	for i, s := range meshCheckSeeds {
		f.Add(s, []byte{byte(i), byte(i * 7), byte(i * 13), 3, 1, 4, 1, 5})
	}
	f.Fuzz(func(t *testing.T, doc string, ops []byte) {
		sameVerdict(t, doc)
		if mutated, ok := mutate(doc, ops); ok {
			sameVerdict(t, mutated)
		}
	})
}

// TestMeshCheckSeedsHaveBothVerdicts guards the corpus: it must keep
// documents Istio accepts and documents it rejects, each rejected one for
// the reason meant.
func TestMeshCheckSeedsHaveBothVerdicts(t *testing.T) {
	accepted, rejected := 0, 0
	for _, s := range meshCheckSeeds {
		if _, err := mesh.ApplyMeshConfigDefaults(s); err != nil {
			rejected++
		} else {
			accepted++
		}
	}
	if accepted < 20 || rejected < 50 {
		t.Fatalf("seeds: %d accepted, %d rejected by Istio; want at least 20 and 50", accepted, rejected)
	}
}

func sameVerdict(t *testing.T, doc string) {
	t.Helper()
	if randomInIstio(doc) {
		t.Skip("Istio's own verdict depends on map order here")
	}
	want, werr := mesh.ApplyMeshConfigDefaults(doc)
	got, gerr := meshcheck.Compose(doc)
	switch {
	case werr != nil && gerr == nil:
		t.Fatalf("Istio rejects, meshcheck accepts:\n%s\nIstio: %v", doc, werr)
	case werr == nil && gerr != nil:
		t.Fatalf("Istio accepts, meshcheck rejects:\n%s\nmeshcheck: %v", doc, gerr)
	case werr == nil && !proto.Equal(want, got):
		t.Fatalf("composed configs differ for\n%s\nIstio:     %v\nmeshcheck: %v", doc, want, got)
	}
}

// randomInIstio tells documents whose verdict Istio itself draws at random:
// ValidateLocalityLbSetting checks the keys of a distribute[].to map in Go's
// map order, and a wildcard key's overlap check depends on that order.
func randomInIstio(doc string) bool {
	mc := &meshconfig.MeshConfig{}
	if protomarshal.ApplyYAML(doc, mc) != nil {
		return false
	}
	for _, d := range mc.GetLocalityLbSetting().GetDistribute() {
		if len(d.GetTo()) > 1 {
			for k := range d.GetTo() {
				if strings.Contains(k, "*") {
					return true
				}
			}
		}
	}
	return false
}

// edgeValues sit on either side of the rules: ports, durations, hosts,
// host:port addresses, wrong types.
var edgeValues = []any{
	nil, true, false, 0, 1, -1, 65535, 65536, 70000, 100, 101, 1.5, "", " ", "0", "10",
	"0s", "1ms", "0.5ms", "1.5ms", "1s", "1.5s", "45s", "1h", "2h", "-1s", "100us", "bad",
	"istiod.istio-system.svc", "istiod.istio-system.svc:15012", "a.123:80", "10.0.0.1:80", "[::1]:80", "host:0", "host:x",
	"prod example.com", "cluster.local", "td.", "UPGRADE", "MUTUAL", "SIMPLE", "NONE", "INHERIT", "ALLOW_ANY", "REGISTRY_ONLY",
	"configmap://ns/name", "*", "a/b", "topology.kubernetes.io/zone",
	map[string]any{}, []any{}, []any{"a"}, map[string]any{"a": "b"}, map[string]any{"b": 100},
}

// mutate rewrites doc as ops says, one operation per 3 bytes: replace a
// leaf, rename a key, or add a known MeshConfig or ProxyConfig key.
func mutate(doc string, ops []byte) (string, bool) {
	var root map[string]any
	if yaml.Unmarshal([]byte(doc), &root) != nil || len(ops) == 0 {
		return "", false
	}
	if root == nil {
		root = map[string]any{}
	}
	g := &gen{b: ops}
	for len(g.b) > 0 {
		switch g.intn(4) {
		case 0, 1:
			replaceLeaf(g, root)
		case 2:
			renameKey(g, root)
		case 3:
			addKey(g, root)
		}
	}
	out, err := yaml.Marshal(root)
	return string(out), err == nil
}

func replaceLeaf(g *gen, v map[string]any) {
	keys := sortedKeysOf(v)
	if len(keys) == 0 {
		return
	}
	k := pick(g, keys)
	switch child := v[k].(type) {
	case map[string]any:
		if len(child) > 0 && g.intn(3) != 0 {
			replaceLeaf(g, child)
			return
		}
	case []any:
		if len(child) > 0 && g.intn(3) != 0 {
			i := g.intn(len(child))
			if m, ok := child[i].(map[string]any); ok {
				replaceLeaf(g, m)
			} else {
				child[i] = pick(g, edgeValues)
			}
			return
		}
	}
	v[k] = pick(g, edgeValues)
}

func renameKey(g *gen, v map[string]any) {
	keys := sortedKeysOf(v)
	if len(keys) == 0 {
		return
	}
	k := pick(g, keys)
	var to string
	switch g.intn(3) {
	case 0:
		to = snake(k)
	case 1:
		to = k + "x" // a typo: dropped by istiod
	default:
		if m, ok := v[k].(map[string]any); ok {
			renameKey(g, m)
			return
		}
		to = snake(k)
	}
	v[to] = v[k]
	if to != k {
		delete(v, k)
	}
}

// knownKeys are MeshConfig's top-level fields and ProxyConfig's, by JSON name.
var knownKeys, proxyKeys = fieldNames(&meshconfig.MeshConfig{}), fieldNames(&meshconfig.ProxyConfig{})

func addKey(g *gen, root map[string]any) {
	if g.bool() {
		root[pick(g, knownKeys)] = pick(g, edgeValues)
		return
	}
	dc, ok := root["defaultConfig"].(map[string]any)
	if !ok {
		dc = map[string]any{}
		root["defaultConfig"] = dc
	}
	dc[pick(g, proxyKeys)] = pick(g, edgeValues)
}

func fieldNames(m proto.Message) []string {
	var out []string
	fields := m.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		out = append(out, fields.Get(i).JSONName())
	}
	slices.Sort(out)
	return out
}

func snake(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func sortedKeysOf(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
