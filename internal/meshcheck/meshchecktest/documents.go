// Package meshchecktest holds mesh documents for tests that compare the
// operator's judgement (internal/meshcheck) with Istio's: test/oracle's
// differential fuzz starts from them and checks each against Istio's own
// code, the real-istiod suite can replay them. They cover every rule
// meshcheck ports, on both sides of its edge.
package meshchecktest

import (
	"strings"

	"sigs.k8s.io/yaml"
)

// Documents are mesh documents ("mesh" key of the mesh ConfigMap), valid
// and invalid, at least one per ported rule.
var Documents = []string{
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

// IstioVerdictIsRandom tells documents whose verdict Istio itself draws at
// random: ValidateLocalityLbSetting walks the keys of a
// localityLbSetting.distribute[].to map in Go's map order, and the overlap
// check of a wildcard key beside others depends on that order. Tests that
// compare verdicts skip these.
func IstioVerdictIsRandom(doc string) bool {
	var m map[string]any
	if yaml.Unmarshal([]byte(doc), &m) != nil {
		return false
	}
	lb, _ := m["localityLbSetting"].(map[string]any)
	distribute, _ := lb["distribute"].([]any)
	for _, d := range distribute {
		item, _ := d.(map[string]any)
		to, _ := item["to"].(map[string]any)
		for k := range to {
			if len(to) > 1 && strings.Contains(k, "*") {
				return true
			}
		}
	}
	return false
}
