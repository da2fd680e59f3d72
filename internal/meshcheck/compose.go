package meshcheck

import (
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	"sigs.k8s.io/yaml"
)

// Values of istio.io/istio pkg/config/constants the defaults use.
const (
	configPathDir             = "./etc/istio/proxy"
	binaryPathFilename        = "/usr/local/bin/envoy"
	serviceClusterName        = "istio-proxy"
	defaultClusterLocalDomain = "cluster.local"
	istioSystemNamespace      = "istio-system"
)

// DefaultProxyConfig is istiod's default defaultConfig (mesh.DefaultProxyConfig).
func DefaultProxyConfig() *meshv1alpha1.ProxyConfig {
	return &meshv1alpha1.ProxyConfig{
		ConfigPath:               configPathDir,
		ClusterName:              &meshv1alpha1.ProxyConfig_ServiceCluster{ServiceCluster: serviceClusterName},
		DrainDuration:            durationpb.New(45 * time.Second),
		TerminationDrainDuration: durationpb.New(5 * time.Second),
		ProxyAdminPort:           15000,
		ControlPlaneAuthPolicy:   meshv1alpha1.AuthenticationPolicy_MUTUAL_TLS,
		DiscoveryAddress:         "istiod.istio-system.svc:15012",
		BinaryPath:               binaryPathFilename,
		StatNameLength:           189,
		StatusPort:               15020,
	}
}

// Defaults is the MeshConfig istiod starts from (mesh.DefaultMeshConfig).
func Defaults() *meshv1alpha1.MeshConfig {
	return &meshv1alpha1.MeshConfig{
		EnableTracing:               true,
		AccessLogFile:               "",
		AccessLogEncoding:           meshv1alpha1.MeshConfig_TEXT,
		AccessLogFormat:             "",
		EnableEnvoyAccessLogService: false,
		ProtocolDetectionTimeout:    durationpb.New(0),
		IngressService:              "istio-ingressgateway",
		IngressControllerMode:       meshv1alpha1.MeshConfig_STRICT,
		IngressClass:                "istio",
		TrustDomain:                 defaultClusterLocalDomain,
		TrustDomainAliases:          []string{},
		EnableAutoMtls:              wrapperspb.Bool(true),
		OutboundTrafficPolicy:       &meshv1alpha1.MeshConfig_OutboundTrafficPolicy{Mode: meshv1alpha1.MeshConfig_OutboundTrafficPolicy_ALLOW_ANY},
		InboundTrafficPolicy:        &meshv1alpha1.MeshConfig_InboundTrafficPolicy{Mode: meshv1alpha1.MeshConfig_InboundTrafficPolicy_PASSTHROUGH},
		LocalityLbSetting:           &networkingv1alpha3.LocalityLoadBalancerSetting{Enabled: wrapperspb.Bool(true)},
		Certificates:                []*meshv1alpha1.Certificate{}, //nolint:staticcheck // deprecated, but istiod's defaults still set it
		DefaultConfig:               DefaultProxyConfig(),

		RootNamespace:                  istioSystemNamespace,
		ProxyListenPort:                15001,
		ProxyInboundListenPort:         15006,
		ConnectTimeout:                 durationpb.New(10 * time.Second),
		DefaultServiceExportTo:         []string{"*"},
		DefaultVirtualServiceExportTo:  []string{"*"},
		DefaultDestinationRuleExportTo: []string{"*"},
		DnsRefreshRate:                 durationpb.New(60 * time.Second),
		ServiceSettings:                make([]*meshv1alpha1.MeshConfig_ServiceSettings, 0),

		EnablePrometheusMerge: wrapperspb.Bool(true),
		DefaultProviders:      &meshv1alpha1.MeshConfig_DefaultProviders{},
		ExtensionProviders: []*meshv1alpha1.MeshConfig_ExtensionProvider{
			{
				Name: "prometheus",
				Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_Prometheus{
					Prometheus: &meshv1alpha1.MeshConfig_ExtensionProvider_PrometheusMetricsProvider{},
				},
			},
			{
				Name: "stackdriver",
				Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_Stackdriver{
					Stackdriver: &meshv1alpha1.MeshConfig_ExtensionProvider_StackdriverProvider{},
				},
			},
			{
				Name: "envoy",
				Provider: &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyFileAccessLog{
					EnvoyFileAccessLog: &meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyFileAccessLogProvider{
						Path: "/dev/stdout",
					},
				},
			},
		},
	}
}

// apply is mesh.ApplyMeshConfig without its final validation: doc over
// base (which it changes), every top-level key replacing base's value except
//   - defaultConfig: merged per key over base's, proxyMetadata per entry;
//   - defaultProviders: merged per list over base's;
//   - extensionProviders: an entry replaces the provider of base's entry of
//     the same name, or is appended;
//   - trustDomainAliases: united with base's, sorted, without duplicates.
func apply(doc string, base *meshv1alpha1.MeshConfig) (*meshv1alpha1.MeshConfig, []Problem) {
	ps := newProblems()
	prevProxyConfig := base.DefaultConfig
	prevDefaultProviders := base.DefaultProviders
	prevExtensionProviders := base.ExtensionProviders
	prevTrustDomainAliases := base.TrustDomainAliases

	base.DefaultConfig = DefaultProxyConfig()
	if err := applyYAML(doc, base); err != nil {
		locateParseErrors(ps, doc, base, err)
		return nil, *ps.list
	}
	base.DefaultConfig = prevProxyConfig

	raw := map[string]any{}
	if err := yaml.Unmarshal([]byte(doc), &raw); err != nil {
		ps.addErr(err)
		return nil, *ps.list
	}
	// istiod re-reads defaultConfig and defaultProviders from a generic
	// map, through float64 numbers: keep that, it can refuse what the first
	// parse took (integers beyond 2^53).
	pc, err := extractYAMLField("defaultConfig", raw)
	if err != nil {
		ps.addErr(err, "defaultConfig")
		return nil, *ps.list
	}
	if pc != "" {
		merged, err := mergeProxyConfig(pc, base.DefaultConfig)
		if err != nil {
			locateParseErrors(ps.in("defaultConfig"), pc, &meshv1alpha1.ProxyConfig{}, err)
			return nil, *ps.list
		}
		base.DefaultConfig = merged
	}

	base.DefaultProviders = prevDefaultProviders
	dp, err := extractYAMLField("defaultProviders", raw)
	if err != nil {
		ps.addErr(err, "defaultProviders")
		return nil, *ps.list
	}
	if dp != "" {
		if err := applyYAML(dp, base.DefaultProviders); err != nil {
			locateParseErrors(ps.in("defaultProviders"), dp, &meshv1alpha1.MeshConfig_DefaultProviders{}, err)
			return nil, *ps.list
		}
	}

	newExtensionProviders := base.ExtensionProviders
	base.ExtensionProviders = prevExtensionProviders
	for _, p := range newExtensionProviders {
		found := false
		for _, e := range base.ExtensionProviders {
			if p.Name == e.Name {
				e.Provider = p.Provider
				found = true
				break
			}
		}
		if !found {
			base.ExtensionProviders = append(base.ExtensionProviders, p)
		}
	}

	aliases := slices.Concat(base.TrustDomainAliases, prevTrustDomainAliases)
	slices.Sort(aliases)
	base.TrustDomainAliases = slices.Compact(aliases)
	if base.TrustDomainAliases == nil {
		base.TrustDomainAliases = []string{} // sets.SortedList never returns nil
	}
	return base, nil
}

// mergeProxyConfig is mesh.MergeProxyConfig: pc over proxyConfig per key,
// proxyMetadata per entry, empty proxyHeaders values kept from before.
func mergeProxyConfig(pc string, proxyConfig *meshv1alpha1.ProxyConfig) (*meshv1alpha1.ProxyConfig, error) {
	origMetadata := proxyConfig.ProxyMetadata
	origProxyHeaders := proxyConfig.ProxyHeaders
	if err := applyYAML(pc, proxyConfig); err != nil {
		return nil, err
	}
	proxyConfig.ProxyMetadata = mergeMap(origMetadata, proxyConfig.ProxyMetadata)
	if ph := proxyConfig.ProxyHeaders; ph != nil && origProxyHeaders != nil {
		ph.ForwardedClientCert = nonEmptyOrDefault(ph.ForwardedClientCert, origProxyHeaders.ForwardedClientCert)
		ph.RequestId = nonEmptyOrDefault(ph.RequestId, origProxyHeaders.RequestId)
		ph.AttemptCount = nonEmptyOrDefault(ph.AttemptCount, origProxyHeaders.AttemptCount)
		ph.Server = nonEmptyOrDefault(ph.Server, origProxyHeaders.Server)
		ph.EnvoyDebugHeaders = nonEmptyOrDefault(ph.EnvoyDebugHeaders, origProxyHeaders.EnvoyDebugHeaders)
	}
	return proxyConfig, nil
}

// nonEmptyOrDefault is istio's ptr.NonEmptyOrDefault.
func nonEmptyOrDefault[T comparable](t, def T) T {
	var empty T
	if t != empty {
		return t
	}
	return def
}

func mergeMap(original, merger map[string]string) map[string]string {
	if original == nil && merger == nil {
		return nil
	}
	if original == nil {
		original = map[string]string{}
	}
	for k, v := range merger {
		original[k] = v
	}
	return original
}

func extractYAMLField(key string, raw map[string]any) (string, error) {
	v := raw[key]
	if v == nil {
		return "", nil
	}
	b, err := yaml.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}
