package meshcheck

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	istiolabel "istio.io/api/label"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
)

// The port of istio.io/istio pkg/config/validation/agent: ValidateMeshConfig
// and what it calls. Messages are Istio's, without the prefix that named the
// field (the Problem's keys do). Checks whose failure istiod only logs
// (extension providers, ECDH curves, deprecated proxy metadata) are left out:
// they do not change the verdict.

// The topology labels of pilot/pkg/serviceregistry/util/label.
var (
	labelTopologyZone    = corev1.LabelTopologyZone
	labelTopologySubzone = istiolabel.TopologySubzone.Name
	labelTopologyRegion  = corev1.LabelTopologyRegion
)

const (
	connectTimeoutMax = time.Hour
	connectTimeoutMin = time.Millisecond

	// pilot/pkg/model/credentials
	kubernetesConfigMapTypeURI = "configmap://"
)

// pkg/config/labels
const (
	dns1123LabelMaxLength = 63
	dns1123LabelFmt       = "[a-zA-Z0-9](?:[-a-zA-Z0-9]*[a-zA-Z0-9])?"
	wildcardPrefix        = `(\*|(\*|\*-)?` + dns1123LabelFmt + `)`
)

var (
	dns1123LabelRegexp   = regexp.MustCompile("^" + dns1123LabelFmt + "$")
	wildcardPrefixRegexp = regexp.MustCompile("^" + wildcardPrefix + "$")
)

func isDNS1123Label(value string) bool {
	return len(value) <= dns1123LabelMaxLength && dns1123LabelRegexp.MatchString(value)
}

func isWildcardDNS1123Label(value string) bool {
	return len(value) <= dns1123LabelMaxLength && wildcardPrefixRegexp.MatchString(value)
}

func validate(mesh *meshv1alpha1.MeshConfig) []Problem {
	ps := newProblems()
	ps.addErr(validatePort(int(mesh.ProxyListenPort)), "proxyListenPort")
	ps.addErr(validateConnectTimeout(mesh.ConnectTimeout), "connectTimeout")
	ps.addErr(validateProtocolDetectionTimeout(mesh.ProtocolDetectionTimeout), "protocolDetectionTimeout")
	if mesh.DefaultConfig == nil {
		ps.add("missing default config", "defaultConfig")
	} else {
		validateProxyConfig(ps.in("defaultConfig"), mesh.DefaultConfig)
	}
	validateLocalityLbSetting(ps.in("localityLbSetting"), mesh.LocalityLbSetting)
	validateZoneAwareLbSetting(ps.in("zoneAwareLbSetting"), mesh.ZoneAwareLbSetting)
	for i, s := range mesh.ServiceSettings {
		for j, h := range s.Hosts {
			ps.addErr(validateWildcardDomain(h), "serviceSettings", index(i), "hosts", index(j))
		}
	}
	ps.addErr(validateTrustDomain(mesh.TrustDomain), "trustDomain")
	for _, tda := range mesh.TrustDomainAliases {
		// istiod sorts the aliases first: name the value, not an index.
		if err := validateTrustDomain(tda); err != nil {
			ps.add(fmt.Sprintf("domain `%s`: %v", tda, err), "trustDomainAliases")
		}
	}
	if m := mesh.MeshMTLS; m != nil && m.EcdhCurves != nil {
		ps.add("mesh TLS does not support ECDH curves configuration", "meshMTLS", "ecdhCurves")
	}
	validateDefaultTrafficPolicy(ps.in("defaultTrafficPolicy"), mesh.GetDefaultTrafficPolicy())
	return *ps.list
}

func index(i int) string { return fmt.Sprintf("[%d]", i) }

// validateDuration is agent.ValidateDuration.
func validateDuration(pd *durationpb.Duration) error {
	dur := pd.AsDuration()
	if dur < time.Millisecond {
		return errors.New("duration must be greater than 1ms")
	}
	if dur%time.Millisecond != 0 {
		return errors.New("only durations to ms precision are supported")
	}
	return nil
}

func validateConnectTimeout(timeout *durationpb.Duration) error {
	if err := validateDuration(timeout); err != nil {
		return err
	}
	if dur := timeout.AsDuration(); dur > connectTimeoutMax || dur < connectTimeoutMin {
		return fmt.Errorf("time %v must be >%v and <%v", dur.String(), connectTimeoutMin.String(), connectTimeoutMax.String())
	}
	return nil
}

func validateProtocolDetectionTimeout(timeout *durationpb.Duration) error {
	dur := timeout.AsDuration()
	// 0s disables the timeout.
	if dur == 0 {
		return nil
	}
	if dur%time.Millisecond != 0 {
		return errors.New("only durations to ms precision are supported")
	}
	return nil
}

// validateDrainDuration is agent.ValidateDrainDuration.
func validateDrainDuration(ps problems, drain *durationpb.Duration) {
	if err := validateDuration(drain); err != nil {
		ps.add("invalid drain duration: " + err.Error())
		return
	}
	if drain.AsDuration()%time.Second != 0 {
		ps.add("drain time only supports durations to seconds precision")
	}
}

func validatePort(port int) error {
	if 1 <= port && port <= 65535 {
		return nil
	}
	return fmt.Errorf("port number %d must be in the range 1..65535", port)
}

func checkDNS1123Preconditions(name string) error {
	if len(name) > 255 {
		return fmt.Errorf("domain name %q too long (max 255)", name)
	}
	if len(name) == 0 {
		return fmt.Errorf("empty domain name not allowed")
	}
	return nil
}

func validateDNS1123Labels(domain string) error {
	parts := strings.Split(domain, ".")
	topLevelDomain := parts[len(parts)-1]
	if _, err := strconv.Atoi(topLevelDomain); err == nil {
		return fmt.Errorf("domain name %q invalid (top level domain %q cannot be all-numeric)", domain, topLevelDomain)
	}
	for i, label := range parts {
		// The last part may be empty: "istio.io."
		if i == len(parts)-1 && label == "" {
			return nil
		}
		if !isDNS1123Label(label) {
			return fmt.Errorf("domain name %q invalid (label %q invalid)", domain, label)
		}
	}
	return nil
}

func validateFQDN(fqdn string) error {
	if err := checkDNS1123Preconditions(fqdn); err != nil {
		return err
	}
	return validateDNS1123Labels(fqdn)
}

// validateProxyAddress is agent.ValidateProxyAddress: host:port, the host
// an FQDN or an IP address.
func validateProxyAddress(hostAddr string) error {
	hostname, p, err := net.SplitHostPort(hostAddr)
	if err != nil {
		return fmt.Errorf("unable to split %q: %w", hostAddr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return fmt.Errorf("port (%s) is not a number: %w", p, err)
	}
	if err = validatePort(port); err != nil {
		return err
	}
	if err = validateFQDN(hostname); err != nil {
		if !isValidIPAddress(hostname) {
			return fmt.Errorf("%q is not a valid hostname or an IP address", hostname)
		}
	}
	return nil
}

// isValidIPAddress is istio's pkg/util/net.IsValidIPAddress.
func isValidIPAddress(ip string) bool {
	ipa, err := netip.ParseAddr(ip)
	return err == nil && ipa.IsValid()
}

func validateWildcardDomain(domain string) error {
	if err := checkDNS1123Preconditions(domain); err != nil {
		return err
	}
	// Wildcards only in the first label.
	parts := strings.SplitN(domain, ".", 2)
	if !isWildcardDNS1123Label(parts[0]) {
		return fmt.Errorf("domain name %q invalid (label %q invalid)", domain, parts[0])
	} else if len(parts) > 1 {
		return validateDNS1123Labels(parts[1])
	}
	return nil
}

func validateTrustDomain(domain string) error {
	if len(domain) == 0 {
		return fmt.Errorf("empty domain name not allowed")
	}
	parts := strings.Split(domain, ".")
	for i, label := range parts {
		if i == len(parts)-1 && label == "" {
			return nil
		}
		if !isDNS1123Label(label) {
			return fmt.Errorf("trust domain name %q invalid", domain)
		}
	}
	return nil
}

// validateProxyConfig is agent.ValidateMeshConfigProxyConfig.
func validateProxyConfig(ps problems, config *meshv1alpha1.ProxyConfig) {
	if config.ConfigPath == "" {
		ps.add("config path must be set", "configPath")
	}
	if config.BinaryPath == "" {
		ps.add("binary path must be set", "binaryPath")
	}
	switch naming := config.GetClusterName().(type) {
	case *meshv1alpha1.ProxyConfig_ServiceCluster:
		if naming.ServiceCluster == "" {
			ps.add("service cluster must be specified", "serviceCluster")
		}
	case *meshv1alpha1.ProxyConfig_TracingServiceName_:
	default:
		ps.add("oneof service cluster or tracing service name must be specified", "serviceCluster")
	}
	validateDrainDuration(ps.in("drainDuration"), config.DrainDuration)

	// Mandatory: mutual TLS relies on CDS.
	if config.DiscoveryAddress == "" {
		ps.add("discovery address must be set to the proxy discovery service", "discoveryAddress")
	} else {
		ps.addErr(validateProxyAddress(config.DiscoveryAddress), "discoveryAddress")
	}

	tracing := ps.in("tracing")
	if ls := config.GetTracing().GetLightstep(); ls != nil {
		if ls.GetAddress() == "" {
			tracing.add("address is required", "lightstep", "address")
		}
		tracing.addErr(validateProxyAddress(ls.GetAddress()), "lightstep", "address")
		if ls.GetAccessToken() == "" {
			tracing.add("access token is required", "lightstep", "accessToken")
		}
	}
	if z := config.GetTracing().GetZipkin(); z != nil {
		tracing.addErr(validateProxyAddress(strings.Replace(z.GetAddress(), "$(HOST_IP)", "127.0.0.1", 1)), "zipkin", "address")
	}
	if d := config.GetTracing().GetDatadog(); d != nil {
		tracing.addErr(validateProxyAddress(strings.Replace(d.GetAddress(), "$(HOST_IP)", "127.0.0.1", 1)), "datadog", "address")
	}
	if tls := config.GetTracing().GetTlsSettings(); tls != nil {
		validateTLS(tracing.in("tlsSettings"), "", tls)
	}
	for name, tag := range config.GetTracing().GetCustomTags() {
		if tag == nil {
			tracing.add("encountered nil value for custom tag: "+name, "customTags", name)
		}
	}

	if config.StatsdUdpAddress != "" {
		ps.addErr(validateProxyAddress(config.StatsdUdpAddress), "statsdUdpAddress")
	}
	//nolint:staticcheck // deprecated, still validated by istiod
	if config.EnvoyMetricsServiceAddress != "" {
		ps.addErr(validateProxyAddress(config.EnvoyMetricsServiceAddress), "envoyMetricsServiceAddress") //nolint:staticcheck // as above
	}
	if s := config.EnvoyMetricsService; s != nil && s.Address != "" {
		ps.addErr(validateProxyAddress(s.Address), "envoyMetricsService", "address")
	}
	if s := config.EnvoyAccessLogService; s != nil && s.Address != "" {
		ps.addErr(validateProxyAddress(s.Address), "envoyAccessLogService", "address")
	}
	ps.addErr(validatePort(int(config.ProxyAdminPort)), "proxyAdminPort")
	if p := config.ControlPlaneAuthPolicy; p != meshv1alpha1.AuthenticationPolicy_NONE && p != meshv1alpha1.AuthenticationPolicy_MUTUAL_TLS {
		ps.add(fmt.Sprintf("unrecognized control plane auth policy %q", p), "controlPlaneAuthPolicy")
	}
	ps.addErr(validatePort(int(config.StatusPort)), "statusPort")
	if pkp := config.GetPrivateKeyProvider(); pkp != nil {
		validatePrivateKeyProvider(ps.in("privateKeyProvider"), pkp)
	}
	if cs := config.GetConnectionSettings(); cs != nil {
		validateConnectionSettings(ps.in("connectionSettings"), cs)
	}
}

// validateTLS is agent.ValidateTLS.
func validateTLS(ps problems, configNamespace string, settings *networkingv1alpha3.ClientTLSSettings) {
	if settings.CredentialName != "" && strings.HasPrefix(settings.CredentialName, kubernetesConfigMapTypeURI) {
		if ns, err := configMapNamespace(settings.CredentialName); err != nil {
			ps.add(fmt.Sprintf("invalid configmap:// credentialName: %v", err), "credentialName")
		} else if ns != configNamespace || configNamespace == "" {
			ps.add(fmt.Sprintf("invalid configmap:// credentialName: namespace must match the configuration namespace %q", configNamespace), "credentialName")
		}
	}
	if settings.GetInsecureSkipVerify().GetValue() {
		if settings.Mode == networkingv1alpha3.ClientTLSSettings_SIMPLE &&
			(settings.CaCertificates != "" || settings.CredentialName != "" || settings.SubjectAltNames != nil) {
			ps.add("cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true")
		}
		if settings.Mode == networkingv1alpha3.ClientTLSSettings_MUTUAL && (settings.CaCertificates != "" || settings.SubjectAltNames != nil) {
			ps.add("cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true")
		}
	}
	if (settings.Mode == networkingv1alpha3.ClientTLSSettings_SIMPLE || settings.Mode == networkingv1alpha3.ClientTLSSettings_MUTUAL) &&
		settings.CredentialName != "" {
		if settings.ClientCertificate != "" || settings.CaCertificates != "" || settings.PrivateKey != "" || settings.CaCrl != "" {
			ps.add("cannot specify client certificates or CA certificate or CA CRL If credentialName is set")
		}
		// Credentials are fetched remotely: no certificate fields needed.
		return
	}
	if settings.Mode == networkingv1alpha3.ClientTLSSettings_MUTUAL {
		if settings.ClientCertificate == "" {
			ps.add("client certificate required for mutual tls", "clientCertificate")
		}
		if settings.PrivateKey == "" {
			ps.add("private key required for mutual tls", "privateKey")
		}
	}
}

// configMapNamespace is the configmap:// branch of credentials.ParseResourceName.
func configMapNamespace(resourceName string) (string, error) {
	split := strings.Split(strings.TrimPrefix(resourceName, kubernetesConfigMapTypeURI), "/")
	if len(split) <= 1 {
		return "", fmt.Errorf("invalid resource name %q. Expected namespace and name", resourceName)
	}
	if len(split[0]) == 0 {
		return "", fmt.Errorf("invalid resource name %q. Expected namespace", resourceName)
	}
	if len(split[1]) == 0 {
		return "", fmt.Errorf("invalid resource name %q. Expected name", resourceName)
	}
	return split[0], nil
}

func validatePrivateKeyProvider(ps problems, pkp *meshv1alpha1.PrivateKeyProvider) {
	if pkp.GetProvider() == nil {
		ps.add("private key provider configuration is required")
	}
	pollDelay := func(kind string, d *durationpb.Duration) {
		if d == nil {
			ps.add("pollDelay is required", kind, "pollDelay")
		} else if d.GetSeconds() == 0 && d.GetNanos() == 0 {
			ps.add("pollDelay must be non zero", kind, "pollDelay")
		}
	}
	switch pkp.GetProvider().(type) {
	case *meshv1alpha1.PrivateKeyProvider_Cryptomb:
		if c := pkp.GetCryptomb(); c == nil {
			ps.add("cryptomb configuration is required", "cryptomb")
		} else {
			pollDelay("cryptomb", c.GetPollDelay())
		}
	case *meshv1alpha1.PrivateKeyProvider_Qat:
		if q := pkp.GetQat(); q == nil {
			ps.add("qat configuration is required", "qat")
		} else {
			pollDelay("qat", q.GetPollDelay())
		}
	default:
		ps.add("unknown private key provider")
	}
}

func validateConnectionSettings(ps problems, cs *meshv1alpha1.ProxyConfig_ConnectionSettings) {
	negative := func(key, name string, d *durationpb.Duration) {
		if d != nil && d.AsDuration() < 0 {
			ps.add(name+" must be non-negative", key)
		}
	}
	if v := cs.GetListenerPerConnectionBufferLimitBytes(); v != nil && v.GetValue() < 0 {
		ps.add("listener_per_connection_buffer_limit_bytes must be non-negative", "listenerPerConnectionBufferLimitBytes")
	}
	if v := cs.GetClusterPerConnectionBufferLimitBytes(); v != nil && v.GetValue() < 0 {
		ps.add("cluster_per_connection_buffer_limit_bytes must be non-negative", "clusterPerConnectionBufferLimitBytes")
	}
	negative("httpIdleTimeout", "http_idle_timeout", cs.GetHttpIdleTimeout())
	negative("httpMaxConnectionDuration", "http_max_connection_duration", cs.GetHttpMaxConnectionDuration())
	negative("httpDrainTimeout", "http_drain_timeout", cs.GetHttpDrainTimeout())
	negative("httpRequestTimeout", "http_request_timeout", cs.GetHttpRequestTimeout())
	negative("httpRequestHeadersTimeout", "http_request_headers_timeout", cs.GetHttpRequestHeadersTimeout())
	negative("httpStreamIdleTimeout", "http_stream_idle_timeout", cs.GetHttpStreamIdleTimeout())
	negative("httpMaxStreamDuration", "http_max_stream_duration", cs.GetHttpMaxStreamDuration())
	if v := cs.GetHttpMaxConcurrentStreams(); v != nil && v.GetValue() <= 0 {
		ps.add("http_max_concurrent_streams must be positive", "httpMaxConcurrentStreams")
	}
	if v := cs.GetHttp2InitialStreamWindowSize(); v != nil && v.GetValue() < 65535 {
		ps.add("http2_initial_stream_window_size must be at least 65535", "http2InitialStreamWindowSize")
	}
	if v := cs.GetHttp2InitialConnectionWindowSize(); v != nil && v.GetValue() < 65535 {
		ps.add("http2_initial_connection_window_size must be at least 65535", "http2InitialConnectionWindowSize")
	}
	if v := cs.GetListenerConnectionLimit(); v != nil && v.GetValue() <= 0 {
		ps.add("listener_connection_limit must be positive", "listenerConnectionLimit")
	}
	if v := cs.GetGlobalDownstreamConnectionLimit(); v != nil && v.GetValue() <= 0 {
		ps.add("global_downstream_connection_limit must be positive", "globalDownstreamConnectionLimit")
	}
}

// validateLocalityLbSetting is agent.ValidateLocalityLbSetting with a
// non-nil outlier detection (what ValidateMeshConfig passes), including its
// early returns.
func validateLocalityLbSetting(ps problems, lb *networkingv1alpha3.LocalityLoadBalancerSetting) {
	if lb == nil {
		return
	}
	if len(lb.GetDistribute()) > 0 && len(lb.GetFailover()) > 0 {
		ps.add("can not simultaneously specify 'distribute' and 'failover'")
		return
	}
	if len(lb.GetFailover()) > 0 && len(lb.GetFailoverPriority()) > 0 {
		for _, l := range lb.GetFailoverPriority() {
			switch l {
			case labelTopologyRegion, labelTopologyZone, labelTopologySubzone:
				ps.add(fmt.Sprintf("can not simultaneously set 'failover' and topology label '%s' in 'failover_priority'", l), "failoverPriority")
				return
			}
		}
	}
	srcLocalities := make([]string, 0, len(lb.GetDistribute()))
	for i, locality := range lb.GetDistribute() {
		srcLocalities = append(srcLocalities, locality.From)
		var totalWeight uint32
		destLocalities := make([]string, 0)
		// Istio walks the map in Go's random order; only the message can differ.
		for loc, weight := range locality.To {
			destLocalities = append(destLocalities, loc)
			if weight <= 0 || weight > 100 {
				ps.add("locality weight must be in range [1, 100]", "distribute", index(i), "to", loc)
				return
			}
			totalWeight += weight
		}
		if totalWeight != 100 {
			ps.add(fmt.Sprintf("total locality weight %v != 100", totalWeight), "distribute", index(i), "to")
			return
		}
		ps.addErr(validateLocalities(destLocalities), "distribute", index(i), "to")
	}
	ps.addErr(validateLocalities(srcLocalities), "distribute")
	for i, f := range lb.GetFailover() {
		at := ps.in("failover", index(i))
		if f.From == f.To {
			at.add("locality lb failover settings must specify different regions")
		}
		if strings.Contains(f.From, "/") || strings.Contains(f.To, "/") {
			at.add("locality lb failover only specify region")
		}
		if strings.Contains(f.To, "*") || strings.Contains(f.From, "*") {
			at.add("locality lb failover region should not contain '*' wildcard")
		}
	}
}

func validateZoneAwareLbSetting(ps problems, lb *networkingv1alpha3.ZoneAwareLoadBalancerSetting) {
	if lb == nil {
		return
	}
	for _, l := range lb.GetFailoverPriority() {
		switch l {
		case labelTopologyRegion, labelTopologyZone, labelTopologySubzone:
			ps.add(fmt.Sprintf("'failover_priority' for zone aware lb must not use topology label '%s'; region- and zone-level routing are handled automatically", l), "failoverPriority")
		}
	}
	for i, f := range lb.GetFailover() {
		at := ps.in("failover", index(i))
		if f.From == f.To {
			at.add("zone aware lb failover settings must specify different regions")
		}
		if strings.Contains(f.From, "/") || strings.Contains(f.To, "/") {
			at.add("zone aware lb failover only specifies region; zone and subzone failover are handled automatically")
		}
		if strings.Contains(f.To, "*") || strings.Contains(f.From, "*") {
			at.add("zone aware lb failover region should not contain '*' wildcard")
		}
	}
}

func validateLocalities(localities []string) error {
	regionZoneSubZoneMap := map[string]map[string]map[string]bool{}
	overlap := func(locality string) error {
		return fmt.Errorf("locality %s overlap with previous specified ones", locality)
	}
	for _, locality := range localities {
		if n := strings.Count(locality, "*"); n > 0 {
			if n > 1 || !strings.HasSuffix(locality, "*") {
				return fmt.Errorf("locality %s wildcard '*' number can not exceed 1 and must be in the end", locality)
			}
		}
		if _, exist := regionZoneSubZoneMap["*"]; exist {
			return overlap(locality)
		}
		items := strings.SplitN(locality, "/", 3)
		for _, item := range items {
			if item == "" {
				return fmt.Errorf("locality %s must not contain empty region/zone/subzone info", locality)
			}
		}
		region := items[0]
		switch len(items) - 1 {
		case 0:
			if _, exist := regionZoneSubZoneMap[region]; exist {
				return overlap(locality)
			}
			regionZoneSubZoneMap[region] = map[string]map[string]bool{"*": {"*": true}}
		case 1:
			zone := items[1]
			if zones, exist := regionZoneSubZoneMap[region]; exist {
				if _, exist := zones["*"]; exist {
					return overlap(locality)
				}
				if _, exist := zones[zone]; exist {
					return overlap(locality)
				}
				zones[zone] = map[string]bool{"*": true}
			} else {
				regionZoneSubZoneMap[region] = map[string]map[string]bool{zone: {"*": true}}
			}
		case 2:
			zone, subZone := items[1], items[2]
			if zones, exist := regionZoneSubZoneMap[region]; exist {
				if _, exist := zones["*"]; exist {
					return overlap(locality)
				}
				if subZones, exist := zones[zone]; exist {
					if subZones["*"] || subZones[subZone] {
						return overlap(locality)
					}
					subZones[subZone] = true
				} else {
					zones[zone] = map[string]bool{subZone: true}
				}
			} else {
				regionZoneSubZoneMap[region] = map[string]map[string]bool{zone: {subZone: true}}
			}
		}
	}
	return nil
}

// validateDefaultTrafficPolicy is validateMeshConfigDefaultTrafficPolicy.
func validateDefaultTrafficPolicy(ps problems, dtp *meshv1alpha1.MeshConfig_DefaultTrafficPolicy) {
	if dtp == nil {
		return
	}
	if cp := dtp.GetConnectionPool(); cp != nil {
		at := ps.in("connectionPool")
		if cp.Http == nil && cp.Tcp == nil {
			at.add("connection pool must have at least one field")
		}
		if http := cp.Http; http != nil {
			h := at.in("http")
			if http.Http1MaxPendingRequests < 0 {
				h.add("http1 max pending requests must be non-negative", "http1MaxPendingRequests")
			}
			if http.Http2MaxRequests < 0 {
				h.add("http2 max requests must be non-negative", "http2MaxRequests")
			}
			if http.MaxRequestsPerConnection < 0 {
				h.add("max requests per connection must be non-negative", "maxRequestsPerConnection")
			}
			if http.MaxRetries < 0 {
				h.add("max retries must be non-negative", "maxRetries")
			}
			if http.MaxConcurrentStreams < 0 {
				h.add("max concurrent streams must be non-negative", "maxConcurrentStreams")
			}
			if http.IdleTimeout != nil {
				h.addErr(validateDuration(http.IdleTimeout), "idleTimeout")
			}
			if http.H2UpgradePolicy == networkingv1alpha3.ConnectionPoolSettings_HTTPSettings_UPGRADE && http.UseClientProtocol {
				h.add("use client protocol must not be true when H2UpgradePolicy is UPGRADE", "useClientProtocol")
			}
		}
		if tcp := cp.Tcp; tcp != nil {
			t := at.in("tcp")
			if tcp.MaxConnections < 0 {
				t.add("max connections must be non-negative", "maxConnections")
			}
			if tcp.ConnectTimeout != nil {
				t.addErr(validateDuration(tcp.ConnectTimeout), "connectTimeout")
			}
			if tcp.MaxConnectionDuration != nil {
				t.addErr(validateDuration(tcp.MaxConnectionDuration), "maxConnectionDuration")
			}
			if tcp.IdleTimeout != nil && tcp.IdleTimeout.AsDuration().Milliseconds() != 0 {
				t.addErr(validateDuration(tcp.IdleTimeout), "idleTimeout")
			}
			if ka := tcp.TcpKeepalive; ka != nil {
				if ka.Time != nil {
					t.addErr(validateDuration(ka.Time), "tcpKeepalive", "time")
				}
				if ka.Interval != nil {
					t.addErr(validateDuration(ka.Interval), "tcpKeepalive", "interval")
				}
			}
		}
	}
	if od := dtp.GetOutlierDetection(); od != nil {
		at := ps.in("outlierDetection")
		if od.BaseEjectionTime != nil {
			at.addErr(validateDuration(od.BaseEjectionTime), "baseEjectionTime")
		}
		if od.Interval != nil {
			at.addErr(validateDuration(od.Interval), "interval")
		}
		if !od.SplitExternalLocalOriginErrors && od.ConsecutiveLocalOriginFailures.GetValue() > 0 {
			at.add("outlier detection consecutive local origin failures is specified, "+
				"but split external local origin errors is set to false", "consecutiveLocalOriginFailures")
		}
		at.addErr(validatePercent(od.MaxEjectionPercent), "maxEjectionPercent")
		at.addErr(validatePercent(od.MinHealthPercent), "minHealthPercent")
	}
}

func validatePercent(val int32) error {
	if val < 0 || val > 100 {
		return fmt.Errorf("percentage %v is not in range 0..100", val)
	}
	return nil
}
