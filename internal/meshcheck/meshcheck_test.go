package meshcheck

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

// The documents of issue 13 item 5, and one case per rule besides: each
// must be rejected with the key named. test/oracle holds the same verdicts
// against Istio's own code (FuzzMeshCheck and its seeds).
func TestComposeRejects(t *testing.T) {
	cases := []struct {
		name, doc string
		path, msg string // one of the problems reported
	}{
		// The cases.
		{"connectTimeout 0s", "connectTimeout: 0s", "connectTimeout", "duration must be greater than 1ms"},
		{"proxyListenPort out of range", "proxyListenPort: 70000", "proxyListenPort", "port number 70000 must be in the range 1..65535"},
		{"discoveryAddress without port", "defaultConfig:\n  discoveryAddress: istiod.istio-system.svc", "defaultConfig.discoveryAddress", "missing port in address"},
		{"statusPort 0", "defaultConfig:\n  statusPort: 0", "defaultConfig.statusPort", "port number 0 must be in the range 1..65535"},
		{"trustDomain with a space", `trustDomain: "prod example.com"`, "trustDomain", `trust domain name "prod example.com" invalid`},
		{"connectTimeout a number", "connectTimeout: 10", "connectTimeout", "it takes a duration string"},

		// Parse failures (istiod's decoder): wrong type, bad duration, unknown enum.
		{"bad duration", "connectTimeout: 10 s", "connectTimeout", "bad Duration"},
		{"unknown enum", "outboundTrafficPolicy:\n  mode: ALLOW_ALL", "outboundTrafficPolicy.mode", "one of REGISTRY_ONLY, ALLOW_ANY"},
		{"string for a bool", "enableTracing: yes please", "enableTracing", "it takes a bool"},
		{"unquoted proxyMetadata bool", "defaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: true", "defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE", "it takes a string"},
		{"list item of wrong type", "extensionProviders:\n- name: z\n  zipkin:\n    service: z.svc\n    port: eighty", "extensionProviders[0].zipkin.port", "it takes a uint32"},
		{"not a mapping", "- a\n- b", "", "cannot unmarshal array"},
		{"proto field name", "connect_timeout: 1", "connect_timeout", "duration"},
		{"list item of a string list", "trustDomainAliases: [a, {b: c}]", "trustDomainAliases[1]", "it takes a string"},

		// Validation (agent.ValidateMeshConfig).
		{"connectTimeout above 1h", "connectTimeout: 2h", "connectTimeout", "must be >1ms and <1h0m0s"},
		{"connectTimeout sub-ms", "connectTimeout: 1.5ms", "connectTimeout", "only durations to ms precision"},
		{"protocolDetectionTimeout sub-ms", "protocolDetectionTimeout: 100us", "protocolDetectionTimeout", "ms precision"},
		{"drainDuration fraction", "defaultConfig:\n  drainDuration: 1.5s", "defaultConfig.drainDuration", "seconds precision"},
		{"drainDuration zero", "defaultConfig:\n  drainDuration: 0s", "defaultConfig.drainDuration", "invalid drain duration: duration must be greater than 1ms"},
		{"discoveryAddress empty", "defaultConfig:\n  discoveryAddress: ''", "defaultConfig.discoveryAddress", "must be set"},
		{"discoveryAddress bad host", "defaultConfig:\n  discoveryAddress: 'istiod_x:15012'", "defaultConfig.discoveryAddress", "not a valid hostname"},
		{"discoveryAddress numeric TLD", "defaultConfig:\n  discoveryAddress: 'a.123:15012'", "defaultConfig.discoveryAddress", "not a valid hostname"},
		{"configPath empty", "defaultConfig:\n  configPath: ''", "defaultConfig.configPath", "config path must be set"},
		{"binaryPath empty", "defaultConfig:\n  binaryPath: ''", "defaultConfig.binaryPath", "binary path must be set"},
		{"serviceCluster empty", "defaultConfig:\n  serviceCluster: ''", "defaultConfig.serviceCluster", "service cluster must be specified"},
		{"proxyAdminPort", "defaultConfig:\n  proxyAdminPort: 0", "defaultConfig.proxyAdminPort", "port number 0"},
		{"controlPlaneAuthPolicy INHERIT", "defaultConfig:\n  controlPlaneAuthPolicy: INHERIT", "defaultConfig.controlPlaneAuthPolicy", "unrecognized control plane auth policy"},
		{"statsd address", "defaultConfig:\n  statsdUdpAddress: statsd", "defaultConfig.statsdUdpAddress", "missing port"},
		{"envoyMetricsService address", "defaultConfig:\n  envoyMetricsService:\n    address: 'ms:0'", "defaultConfig.envoyMetricsService.address", "port number 0"},
		{"envoyAccessLogService address", "defaultConfig:\n  envoyAccessLogService:\n    address: als", "defaultConfig.envoyAccessLogService.address", "missing port"},
		{"zipkin address", "defaultConfig:\n  tracing:\n    zipkin:\n      address: zipkin", "defaultConfig.tracing.zipkin.address", "missing port"},
		{"datadog address", "defaultConfig:\n  tracing:\n    datadog:\n      address: ':8126'", "defaultConfig.tracing.datadog.address", "not a valid hostname"},
		{"lightstep token", "defaultConfig:\n  tracing:\n    lightstep:\n      address: 'ls:443'", "defaultConfig.tracing.lightstep.accessToken", "access token is required"},
		{"tracing TLS mutual", "defaultConfig:\n  tracing:\n    tlsSettings:\n      mode: MUTUAL", "defaultConfig.tracing.tlsSettings.clientCertificate", "client certificate required"},
		{"tracing TLS configmap", "defaultConfig:\n  tracing:\n    tlsSettings:\n      mode: SIMPLE\n      credentialName: configmap://ns/ca", "defaultConfig.tracing.tlsSettings.credentialName", "namespace must match"},
		{"private key provider empty", "defaultConfig:\n  privateKeyProvider: {}", "defaultConfig.privateKeyProvider", "private key provider configuration is required"},
		{"cryptomb pollDelay", "defaultConfig:\n  privateKeyProvider:\n    cryptomb:\n      pollDelay: 0s", "defaultConfig.privateKeyProvider.cryptomb.pollDelay", "non zero"},
		{"qat pollDelay missing", "defaultConfig:\n  privateKeyProvider:\n    qat: {}", "defaultConfig.privateKeyProvider.qat.pollDelay", "required"},
		{"connection settings window", "defaultConfig:\n  connectionSettings:\n    http2InitialStreamWindowSize: 100", "defaultConfig.connectionSettings.http2InitialStreamWindowSize", "at least 65535"},
		{"connection settings negative", "defaultConfig:\n  connectionSettings:\n    httpIdleTimeout: -1s", "defaultConfig.connectionSettings.httpIdleTimeout", "non-negative"},
		{"locality distribute and failover", "localityLbSetting:\n  distribute:\n  - from: a\n    to: {b: 100}\n  failover:\n  - from: a\n    to: b", "localityLbSetting", "simultaneously"},
		{"locality weights", "localityLbSetting:\n  distribute:\n  - from: a\n    to: {b: 50}", "localityLbSetting.distribute[0].to", "total locality weight 50 != 100"},
		{"locality overlap", "localityLbSetting:\n  distribute:\n  - from: a\n    to: {b: 100}\n  - from: a/z\n    to: {b: 100}", "localityLbSetting.distribute", "overlap"},
		{"locality failover same", "localityLbSetting:\n  failover:\n  - from: a\n    to: a", "localityLbSetting.failover[0]", "different regions"},
		{"zone aware priority", "zoneAwareLbSetting:\n  failoverPriority: [topology.kubernetes.io/zone]", "zoneAwareLbSetting.failoverPriority", "must not use topology label"},
		{"service settings host", "serviceSettings:\n- hosts: [ok.example.com, 'bad host']", "serviceSettings[0].hosts[1]", "invalid"},
		{"trust domain alias", "trustDomainAliases: [good.example, 'bad_alias']", "trustDomainAliases", "bad_alias"},
		{"trust domain empty", "trustDomain: ''", "trustDomain", "empty domain name"},
		{"mesh mTLS curves", "meshMTLS:\n  ecdhCurves: [P-256]", "meshMTLS.ecdhCurves", "does not support ECDH curves"},
		{"default traffic policy pool", "defaultTrafficPolicy:\n  connectionPool: {}", "defaultTrafficPolicy.connectionPool", "at least one field"},
		{"default traffic policy tcp", "defaultTrafficPolicy:\n  connectionPool:\n    tcp:\n      connectTimeout: 0.5ms", "defaultTrafficPolicy.connectionPool.tcp.connectTimeout", "greater than 1ms"},
		{"default traffic policy outlier", "defaultTrafficPolicy:\n  outlierDetection:\n    maxEjectionPercent: 120", "defaultTrafficPolicy.outlierDetection.maxEjectionPercent", "not in range 0..100"},
		{"default traffic policy h2", "defaultTrafficPolicy:\n  connectionPool:\n    http:\n      h2UpgradePolicy: UPGRADE\n      useClientProtocol: true", "defaultTrafficPolicy.connectionPool.http.useClientProtocol", "UPGRADE"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mc, err := Compose(c.doc)
			var me *Error
			if !errors.As(err, &me) {
				t.Fatalf("Compose(%q) = %v, %v; want an *Error", c.doc, mc, err)
			}
			t.Logf("%q: %v", c.doc, err) // each failing case shown
			for _, p := range me.Problems {
				if p.Path() == c.path && strings.Contains(p.Msg, c.msg) {
					return
				}
			}
			t.Fatalf("Compose(%q) = %v; want a problem at %q containing %q", c.doc, err, c.path, c.msg)
		})
	}
}

func TestComposeListsEveryProblem(t *testing.T) {
	doc := "connectTimeout: 0s\nproxyListenPort: 70000\ntrustDomain: 'prod example.com'\ndefaultConfig:\n  statusPort: 0\n  discoveryAddress: istiod.istio-system.svc\n"
	_, err := Compose(doc)
	var me *Error
	if !errors.As(err, &me) {
		t.Fatalf("want *Error, got %v", err)
	}
	var paths []string
	for _, p := range me.Problems {
		paths = append(paths, p.Path())
	}
	want := []string{"proxyListenPort", "connectTimeout", "defaultConfig.discoveryAddress", "defaultConfig.statusPort", "trustDomain"}
	if strings.Join(paths, ",") != strings.Join(want, ",") {
		t.Fatalf("problems at %v, want %v; error: %v", paths, want, err)
	}
	if !strings.Contains(err.Error(), "connectTimeout: duration must be greater than 1ms") {
		t.Fatalf("error text %q does not name the key", err)
	}
}

func TestComposeListsEveryParseProblem(t *testing.T) {
	_, err := Compose("connectTimeout: 10\nenableTracing: 'no'\nunknownKey: [1]\n")
	var me *Error
	if !errors.As(err, &me) || len(me.Problems) != 2 || me.Problems[0].Path() != "connectTimeout" || me.Problems[1].Path() != "enableTracing" {
		t.Fatalf("want problems at connectTimeout and enableTracing, got %v", err)
	}
}

func TestComposeAccepts(t *testing.T) {
	cases := []string{
		"",
		"# only a comment",
		"null",
		"connectTimeout: 1ms",
		"connectTimeout: 1h",
		"protocolDetectionTimeout: 0s",
		"unknownKey: 1\ndefaultConfig:\n  typo: x",                 // unknown keys are dropped
		"connect_timeout: 5s\nconnectTimeout: 6s",                  // the JSON name wins
		"connect_timeout: garbage\nconnectTimeout: 6s",             // and the other is never parsed
		"proxyListenPort: '15001'",                                 // quoted numbers parse
		"outboundTrafficPolicy:\n  mode: 1",                        // enums by number
		"defaultConfig:\n  discoveryAddress: 10.0.0.1:15012",       // an IP address
		"defaultConfig:\n  discoveryAddress: '[::1]:15012'",        // IPv6
		"defaultConfig:\n  discoveryAddress: istiod.ns.svc.:15012", // trailing dot
		"defaultConfig:\n  tracing:\n    zipkin:\n      address: $(HOST_IP):9411",
		"defaultConfig:\n  tracingServiceName: APP_LABEL_AND_NAMESPACE",
		"trustDomain: td.example.",
		"meshMTLS:\n  ecdhCurves: []",                                                  // an empty list decodes to nil
		"defaultTrafficPolicy:\n  connectionPool:\n    tcp:\n      idleTimeout: 0.5ms", // only whole ms are checked here
		"defaultConfig: null\nconnectTimeout: null",
		"extensionProviders: []",
	}
	for _, doc := range cases {
		if _, err := Compose(doc); err != nil {
			t.Errorf("Compose(%q) = %v, want accepted", doc, err)
		}
	}
}

func TestComposeMergesLikeIstiod(t *testing.T) {
	mc, err := Compose(`
connectTimeout: 3s
trustDomainAliases: [b.example, a.example, b.example]
defaultConfig:
  statusPort: 15021
  proxyMetadata:
    A: "1"
defaultProviders:
  tracing: [z]
extensionProviders:
- name: envoy
  envoyFileAccessLog:
    path: /dev/stderr
- name: z
  zipkin:
    service: zipkin.istio-system.svc.cluster.local
    port: 9411
`)
	if err != nil {
		t.Fatal(err)
	}
	want := Defaults()
	want.ConnectTimeout.Seconds = 3
	want.TrustDomainAliases = []string{"a.example", "b.example"}
	want.DefaultConfig.StatusPort = 15021
	want.DefaultConfig.ProxyMetadata = map[string]string{"A": "1"}
	want.DefaultProviders.Tracing = []string{"z"}
	want.ExtensionProviders[2].GetEnvoyFileAccessLog().Path = "/dev/stderr"
	want.ExtensionProviders = append(want.ExtensionProviders, &meshv1alpha1.MeshConfig_ExtensionProvider{
		Name: "z",
		Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_Zipkin{Zipkin: &meshv1alpha1.MeshConfig_ExtensionProvider_ZipkinTracingProvider{
			Service: "zipkin.istio-system.svc.cluster.local", Port: 9411,
		}},
	})
	if !proto.Equal(mc, want) {
		t.Fatalf("composed\n%v\nwant\n%v", mc, want)
	}
	if mc.DefaultConfig.DrainDuration.AsDuration() != 45*time.Second {
		t.Fatalf("defaultConfig lost its default drainDuration: %v", mc.DefaultConfig)
	}
}

func TestValidateDefaults(t *testing.T) {
	if err := Validate(Defaults()); err != nil {
		t.Fatalf("Istio's defaults are invalid: %v", err)
	}
	mc := Defaults()
	mc.DefaultConfig = nil
	if err := Validate(mc); err == nil || !strings.Contains(err.Error(), "defaultConfig: missing default config") {
		t.Fatalf("Validate without defaultConfig = %v", err)
	}
}

// apply composes over any base, as istiod layers a revision's document over
// the shared one (SHARED_MESH_CONFIG): proxyHeaders values the document
// leaves empty keep the base's, proxyMetadata merges per entry.
func TestApplyOverABase(t *testing.T) {
	base := Defaults()
	base.DefaultConfig.ProxyHeaders = &meshv1alpha1.ProxyConfig_ProxyHeaders{
		Server: &meshv1alpha1.ProxyConfig_ProxyHeaders_Server{Value: "base"},
	}
	base.DefaultConfig.ProxyMetadata = map[string]string{"A": "base", "B": "base"}
	mc, problems := apply("defaultConfig:\n  proxyHeaders:\n    requestId:\n      disabled: true\n  proxyMetadata:\n    B: doc\n", base)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	ph := mc.DefaultConfig.ProxyHeaders
	if ph.GetServer().GetValue() != "base" || !ph.GetRequestId().GetDisabled().GetValue() {
		t.Fatalf("proxyHeaders = %v, want the base's server and the document's requestId", ph)
	}
	if md := mc.DefaultConfig.ProxyMetadata; md["A"] != "base" || md["B"] != "doc" {
		t.Fatalf("proxyMetadata = %v", md)
	}
}
