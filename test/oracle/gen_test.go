package oracle

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

// gen turns fuzz bytes into decisions; once the bytes run out every
// decision is zero, so any input, even empty, gives a spec.
type gen struct{ b []byte }

func (g *gen) u8() byte {
	if len(g.b) == 0 {
		return 0
	}
	c := g.b[0]
	g.b = g.b[1:]
	return c
}

func (g *gen) u32() uint32 {
	var four [4]byte
	for i := range four {
		four[i] = g.u8()
	}
	return binary.LittleEndian.Uint32(four[:])
}

// intn is in [0, n).
func (g *gen) intn(n int) int {
	if n <= 256 {
		return int(g.u8()) % n
	}
	return int(g.u32() % uint32(n))
}

// between is in [lo, hi].
func (g *gen) between(lo, hi int) int { return lo + g.intn(hi-lo+1) }

func (g *gen) bool() bool { return g.u8()&1 == 1 }

// maybe is true about one time in n.
func (g *gen) maybe(n int) bool { return g.intn(n) == 0 }

func pick[T any](g *gen, from []T) T { return from[g.intn(len(from))] }

func (g *gen) word(charset string, lo, hi int) string {
	n := g.between(lo, hi)
	var b strings.Builder
	for range n {
		b.WriteByte(charset[g.intn(len(charset))])
	}
	return b.String()
}

const (
	lower    = "abcdefghijklmnopqrstuvwxyz"
	digits   = "0123456789"
	dnsChars = lower + digits + "-"
)

// dnsLabel is an RFC 1123 label: what both the API's patterns and Istio's
// hostname checks accept.
func (g *gen) dnsLabel(maxLen int) string {
	if maxLen == 1 || g.maybe(4) {
		return string(lower[g.intn(len(lower))])
	}
	s := string(lower[g.intn(len(lower))]) + g.word(dnsChars, 0, maxLen-2) + string((lower + digits)[g.intn(36)])
	return s
}

// fqdn has an alphabetic top-level label (Istio refuses an all-numeric one)
// and labels of at most 63 characters (the API admits longer ones, Istio
// does not: see the report of issue 4). Upper case is admitted by both.
func (g *gen) fqdn() string {
	parts := []string{g.dnsLabel(63)}
	for range g.between(0, 3) {
		parts = append(parts, g.dnsLabel(12))
	}
	parts = append(parts, g.word(lower, 2, 6))
	if g.maybe(8) {
		for i, p := range parts {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, ".")
}

// service is a provider endpoint: FQDN, IP or <namespace>/<FQDN>.
func (g *gen) service() string {
	switch g.intn(6) {
	case 0:
		return fmt.Sprintf("%d.%d.%d.%d", g.between(1, 254), g.u8(), g.u8(), g.between(1, 254))
	case 1:
		return fmt.Sprintf("fd00::%x", g.between(1, 0xffff))
	case 2:
		return g.dnsLabel(20) + "/" + g.fqdn()
	default:
		return g.fqdn()
	}
}

func (g *gen) endpoint() v1alpha1.Endpoint {
	port := g.between(1, 65535)
	if g.bool() {
		port = pick(g, []int{1, 80, 443, 4317, 4318, 9411, 65535})
	}
	return v1alpha1.Endpoint{Service: g.service(), Port: int32(port)}
}

// duration is at least min, in steps of unit.
func (g *gen) duration(minimum, unit time.Duration, maxUnits int) *metav1.Duration {
	d := minimum + time.Duration(g.intn(maxUnits))*unit
	return &metav1.Duration{Duration: d}
}

// anyTimeout is >= 1ms at any precision the API admits.
func (g *gen) anyTimeout() *metav1.Duration {
	switch g.intn(4) {
	case 0:
		return g.duration(time.Millisecond, time.Nanosecond, 1<<30)
	case 1:
		return g.duration(time.Millisecond, time.Millisecond, 100000)
	default:
		return g.duration(time.Second, time.Second, 3600)
	}
}

// wholeSeconds is what drain durations admit.
func (g *gen) wholeSeconds() *metav1.Duration {
	if g.bool() {
		return g.duration(time.Second, time.Second, 120)
	}
	return g.duration(time.Second, time.Second, 1<<20)
}

func (g *gen) int32p(lo, hi int) *int32 {
	v := int32(g.between(lo, hi))
	return &v
}

func (g *gen) boolp() *bool {
	v := g.bool()
	return &v
}

func (g *gen) strp(s string) *string { return &s }

// text is any valid UTF-8, with the characters YAML treats specially.
func (g *gen) text(maxLen int) string {
	special := []string{"true", "false", "yes", "no", "on", "null", "~", "0", "1.5", "0x1F", "0755", "1e3", "-", ": ", "#", "'", `"`, "\n", "\t", " ", "{", "}", "[", "]", ",", "&a", "*a", "!", "%", "@", "`", "|", ">", "é", "日本", "\u00a0", "\\"}
	var b strings.Builder
	for range g.intn(maxLen / 4) {
		if g.bool() {
			b.WriteString(pick(g, special))
		} else {
			b.WriteString(g.word(lower+digits+"_-./%()=:", 1, 6))
		}
	}
	return strings.ToValidUTF8(b.String(), "?")
}

func (g *gen) envName() string {
	return string("ABCDEFGHIJKLMNOPQRSTUVWXYZ_"[g.intn(27)]) + g.word("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", 0, 24)
}

// names hands out provider names, unique across the whole spec as the API requires.
type names struct {
	g      *gen
	used   map[string]bool
	serial int
}

func (n *names) next() string {
	for {
		var s string
		if n.g.maybe(3) {
			// Names Helm charts use: the spec takes such a provider over.
			s = pick(n.g, []string{"otel-helm", "zipkin", "oauth2-proxy", "otel", "datadog"})
		} else {
			s = string("ABCxyz019"[n.g.intn(9)]) + n.g.word("abcXYZ019-_.", 0, 20) + string("aZ9"[n.g.intn(3)])
		}
		// Istio's built-ins (prometheus, stackdriver, envoy) are never drawn;
		// see the report of issue 4.
		if n.used[s] {
			// Out of bytes every draw is the same: number the name.
			n.serial++
			s = fmt.Sprintf("%s-%d", s, n.serial)
		}
		if !n.used[s] {
			n.used[s] = true
			return s
		}
	}
}

func (g *gen) selector() v1alpha1.LabelSelector {
	var s v1alpha1.LabelSelector
	key := func() string {
		k := g.dnsLabel(20)
		if g.bool() {
			k = pick(g, []string{"kubernetes.io/", "istio.io/", "example.com/"}) + k
		}
		return k
	}
	if g.bool() {
		s.MatchLabels = map[string]string{}
		for range g.between(1, 3) {
			s.MatchLabels[key()] = g.dnsLabel(20)
		}
	}
	for range g.intn(3) {
		r := v1alpha1.LabelSelectorRequirement{Key: key()}
		switch g.intn(4) {
		case 0:
			r.Operator = metav1.LabelSelectorOpIn
		case 1:
			r.Operator = metav1.LabelSelectorOpNotIn
		case 2:
			r.Operator = metav1.LabelSelectorOpExists
		default:
			r.Operator = metav1.LabelSelectorOpDoesNotExist
		}
		if r.Operator == metav1.LabelSelectorOpIn || r.Operator == metav1.LabelSelectorOpNotIn {
			for range g.between(1, 3) {
				r.Values = append(r.Values, g.dnsLabel(20))
			}
		}
		s.MatchExpressions = append(s.MatchExpressions, r)
	}
	return s
}

func (g *gen) tracingProvider(name string) v1alpha1.TracingProvider {
	p := v1alpha1.TracingProvider{Name: name}
	switch g.intn(4) {
	case 0:
		z := &v1alpha1.ZipkinProvider{Endpoint: g.endpoint()}
		if g.bool() {
			z.Path = "/" + g.word(lower+digits+"/_-.", 0, 30)
		}
		if g.bool() {
			z.MaxTagLength = g.int32p(1, 65536)
		}
		p.Zipkin = z
	case 1:
		o := &v1alpha1.OpenTelemetryProvider{Endpoint: g.endpoint()}
		if g.bool() {
			o.MaxTagLength = g.int32p(1, 65536)
		}
		switch g.intn(3) {
		case 0:
			o.GRPC = &v1alpha1.OpenTelemetryGRPC{}
			if g.bool() {
				o.GRPC.Timeout = g.anyTimeout()
			}
		case 1:
			h := &v1alpha1.OpenTelemetryHTTP{Path: "/" + g.word(lower+digits+"/_-.", 0, 30)}
			if g.bool() {
				h.Timeout = g.anyTimeout()
			}
			seen := map[string]bool{}
			for range g.intn(4) {
				hd := v1alpha1.HTTPHeader{Name: g.word(lower+digits+"!#$%&'*+.^_|~-", 1, 20)}
				if seen[hd.Name] {
					continue
				}
				seen[hd.Name] = true
				if g.bool() {
					hd.Value = g.strp(g.text(40))
				} else {
					hd.EnvName = g.strp(g.envName())
				}
				h.Headers = append(h.Headers, hd)
			}
			o.HTTP = h
		}
		p.OpenTelemetry = o
	case 2:
		d := &v1alpha1.DatadogProvider{Endpoint: g.endpoint()}
		if g.bool() {
			d.MaxTagLength = g.int32p(1, 65536)
		}
		p.Datadog = d
	default:
		p.SkyWalking = &v1alpha1.SkyWalkingProvider{Endpoint: g.endpoint()}
	}
	return p
}

func (g *gen) accessLogProvider(name string) v1alpha1.AccessLogProvider {
	p := v1alpha1.AccessLogProvider{Name: name}
	if g.bool() {
		f := &v1alpha1.EnvoyFileAccessLogProvider{Path: "/" + g.word(lower+digits+"/_-.", 0, 30)}
		switch g.intn(3) {
		case 0:
			f.Text = g.strp(g.text(60))
		case 1:
			f.Labels = map[string]string{}
			for range g.intn(5) {
				f.Labels[g.text(12)] = g.text(30)
			}
		}
		p.EnvoyFileAccessLog = f
		return p
	}
	o := &v1alpha1.EnvoyOtelAlsProvider{Endpoint: g.endpoint()}
	if g.bool() {
		o.LogName = g.text(30)
	}
	p.EnvoyOtelAls = o
	return p
}

func (g *gen) headerList() []string {
	var out []string
	for range g.intn(4) {
		out = append(out, g.word(lower+digits+"-", 1, 30))
	}
	return out
}

func (g *gen) authorizationProvider(name string) v1alpha1.AuthorizationProvider {
	p := v1alpha1.AuthorizationProvider{Name: name}
	if g.bool() {
		h := &v1alpha1.EnvoyExtAuthzHTTPProvider{Endpoint: g.endpoint()}
		if g.bool() {
			h.PathPrefix = "/" + g.word(lower+digits+"/_-.", 0, 30)
		}
		h.IncludeRequestHeadersInCheck = g.headerList()
		h.HeadersToUpstreamOnAllow = g.headerList()
		h.HeadersToDownstreamOnDeny = g.headerList()
		if g.bool() {
			h.Timeout = g.anyTimeout()
		}
		if g.bool() {
			h.FailOpen = g.boolp()
		}
		p.EnvoyExtAuthzHTTP = h
		return p
	}
	gr := &v1alpha1.EnvoyExtAuthzGRPCProvider{Endpoint: g.endpoint()}
	if g.bool() {
		gr.Timeout = g.anyTimeout()
	}
	if g.bool() {
		gr.FailOpen = g.boolp()
	}
	p.EnvoyExtAuthzGRPC = gr
	return p
}

var retryPolicies = []v1alpha1.RetryOnCondition{
	"5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "retriable-4xx", "refused-stream",
	"retriable-status-codes", "retriable-headers", "envoy-ratelimited", "http3-post-connect-failure", "cancelled",
	"deadline-exceeded", "internal", "resource-exhausted", "unavailable",
}

// statusCodes are the registered HTTP status codes. The API admits any
// [1-5][0-9][0-9], but Istio takes an unregistered one (e.g. 299) for an
// unknown policy name and refuses it: see the report of issue 4.
var statusCodes = []string{
	"100", "101", "102", "103", "200", "201", "202", "203", "204", "205", "206", "207", "208", "226",
	"300", "301", "302", "303", "304", "305", "307", "308",
	"400", "401", "402", "403", "404", "405", "406", "407", "408", "409", "410", "411", "412", "413", "414",
	"415", "416", "417", "418", "421", "422", "423", "424", "425", "426", "428", "429", "431", "451",
	"500", "501", "502", "503", "504", "505", "506", "507", "508", "510", "511",
}

func (g *gen) retryPolicy() *v1alpha1.RetryPolicy {
	r := &v1alpha1.RetryPolicy{}
	if g.maybe(5) {
		r.Attempts = g.int32p(0, 0) // retries off: nothing else may be set
		return r
	}
	if g.bool() {
		r.Attempts = g.int32p(1, 100)
	}
	seen := map[v1alpha1.RetryOnCondition]bool{}
	for range g.intn(5) {
		c := pick(g, retryPolicies)
		if g.maybe(3) {
			c = v1alpha1.RetryOnCondition(pick(g, statusCodes))
		}
		if !seen[c] {
			seen[c] = true
			r.RetryOn = append(r.RetryOn, c)
		}
	}
	if g.bool() {
		// Millisecond precision: Istio's retry rules refuse finer, the API does
		// not (see the report of issue 4).
		r.PerTryTimeout = g.duration(time.Millisecond, time.Millisecond, 600000)
	}
	if g.bool() {
		r.RetryRemoteLocalities = g.boolp()
	}
	return r
}

// meshConfigKeys are free-form keys with values Istio accepts.
func (g *gen) meshConfig() map[string]apiextensionsv1.JSON {
	out := map[string]apiextensionsv1.JSON{}
	put := func(k string, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			panic(err)
		}
		out[k] = apiextensionsv1.JSON{Raw: b}
	}
	options := []func(){
		func() { put("trustDomain", g.fqdn()) },
		func() { put("enablePrometheusMerge", g.bool()) },
		func() { put("ingressClass", g.dnsLabel(20)) },
		func() { put("connectTimeout", fmt.Sprintf("%ds", g.between(1, 3600))) },
		func() { put("enableAutoMtls", g.bool()) },
		func() { put("rootNamespace", g.dnsLabel(20)) },
		func() { put("trustDomainAliases", []string{g.fqdn(), g.fqdn()}) },
		func() { put("dnsRefreshRate", fmt.Sprintf("%ds", g.between(1, 600))) },
		func() { put("protocolDetectionTimeout", fmt.Sprintf("%d.%03ds", g.intn(10), g.intn(1000))) },
		func() { put("localityLbSetting", map[string]any{"enabled": g.bool()}) },
		func() { put("enableEnvoyAccessLogService", g.bool()) },
		func() {
			dc := map[string]any{}
			if g.bool() {
				dc["concurrency"] = g.intn(9)
			}
			if g.bool() {
				dc["proxyStatsMatcher"] = map[string]any{"inclusionPrefixes": []string{g.word(lower+".", 1, 20)}}
			}
			if g.bool() {
				dc["tracing"] = map[string]any{"sampling": float64(g.intn(1001)) / 10}
			}
			put("defaultConfig", dc)
		},
	}
	for range g.intn(5) {
		pick(g, options)()
	}
	return out
}

// genSpec builds a MeshSettings spec that the API server admits (every
// OpenAPI and CEL rule of api/v1alpha1 holds) from fuzz bytes.
func genSpec(data []byte) *v1alpha1.MeshSettingsSpec {
	g := &gen{b: data}
	n := &names{g: g, used: map[string]bool{}}
	spec := &v1alpha1.MeshSettingsSpec{}
	if g.bool() {
		spec.OutboundTrafficPolicy = &v1alpha1.OutboundTrafficPolicy{Mode: pick(g, []v1alpha1.OutboundTrafficMode{
			v1alpha1.OutboundAllowAny, v1alpha1.OutboundRegistryOnly, v1alpha1.OutboundAllowAnyDynamicDNS})}
	}
	if g.maybe(3) {
		spec.DiscoverySelectors = []v1alpha1.LabelSelector{}
		for range g.between(1, 4) {
			spec.DiscoverySelectors = append(spec.DiscoverySelectors, g.selector())
		}
	}
	if g.bool() {
		t := &v1alpha1.Tracing{}
		if g.bool() {
			t.Enabled = g.boolp()
		}
		if g.bool() {
			t.SamplingPercentage = fmt.Sprintf("%d.%d", g.intn(100), g.intn(10))
		}
		for range g.intn(5) {
			t.Providers = append(t.Providers, g.tracingProvider(n.next()))
		}
		for _, p := range t.Providers {
			if g.maybe(2) && len(t.DefaultProviders) < 4 {
				t.DefaultProviders = append(t.DefaultProviders, p.Name)
			}
		}
		spec.Tracing = t
	}
	if g.bool() {
		a := &v1alpha1.AccessLogging{}
		if g.bool() {
			a.File = g.strp(pick(g, []string{"", "/dev/stdout", "/var/log/istio/" + g.dnsLabel(10) + ".log"}))
		}
		if g.bool() {
			a.Encoding = pick(g, []v1alpha1.AccessLogEncoding{"TEXT", "JSON"})
		}
		if g.bool() {
			a.Format = g.strp(g.text(80))
		}
		for range g.intn(4) {
			a.Providers = append(a.Providers, g.accessLogProvider(n.next()))
		}
		if g.bool() {
			a.DefaultProviders = []string{"envoy"}
		}
		for _, p := range a.Providers {
			if g.bool() && len(a.DefaultProviders) < 4 {
				a.DefaultProviders = append(a.DefaultProviders, p.Name)
			}
		}
		spec.AccessLogging = a
	}
	if g.bool() {
		a := &v1alpha1.Authorization{}
		for range g.intn(4) {
			a.Providers = append(a.Providers, g.authorizationProvider(n.next()))
		}
		spec.Authorization = a
	}
	if g.bool() {
		spec.RetryPolicy = g.retryPolicy()
	}
	if g.bool() {
		d := &v1alpha1.Drain{}
		if g.bool() {
			d.DrainDuration = g.wholeSeconds()
		}
		if g.bool() {
			d.Termination = &v1alpha1.DrainTermination{Strategy: pick(g, []v1alpha1.TerminationStrategy{v1alpha1.TerminationFixed, v1alpha1.TerminationWhenIdle})}
			if g.bool() {
				d.Termination.Duration = g.wholeSeconds()
			}
		}
		if g.bool() {
			d.HoldApplicationUntilProxyStarts = g.boolp()
		}
		spec.Drain = d
	}
	if g.bool() {
		p := &v1alpha1.Proxy{}
		if g.bool() {
			p.ImageType = pick(g, []v1alpha1.ProxyImageType{"default", "debug", "distroless"})
		}
		if g.bool() {
			p.DNSCapture = g.boolp()
		}
		if g.bool() {
			p.Metadata = map[string]string{}
			reserved := []string{"EXIT_ON_ZERO_ACTIVE_CONNECTIONS", "MINIMUM_DRAIN_DURATION", "ISTIO_META_DNS_CAPTURE"}
			for range g.intn(6) {
				k := g.envName()
				if !slices.Contains(reserved, k) {
					p.Metadata[k] = g.text(40)
				}
			}
		}
		spec.Proxy = p
	}
	if g.maybe(3) {
		spec.MeshConfig = g.meshConfig()
	}
	return spec
}
