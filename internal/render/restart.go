package render

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/meshsettings/meshsettings-operator/internal/meshcheck"
)

// Effect is when a change of a setting reaches the mesh's Envoy proxies.
// The facts behind each row below were checked against istio/istio's
// sources; the Why of a row names where.
type Effect string

const (
	// EffectLive means istiod pushes the change to running proxies over xDS.
	// Every change of the mesh ConfigMap makes istiod do a full push
	// (pilot/pkg/bootstrap/server.go initMeshHandlers), and namespace labels
	// are watched.
	EffectLive Effect = "Live"
	// EffectIstiodRollout means a setting written as istiod environment, which istiod reads
	// at start. The write changes istiod's pod template, so its Deployment
	// rolls; proxies reconnect to the new istiod and get its configuration
	// over xDS without a new pod.
	EffectIstiodRollout Effect = "IstiodRollout"
	// EffectIstiodStart means a mesh key istiod reads only when it starts. A
	// mesh ConfigMap change does not restart istiod: it acts after istiod's
	// next restart (kubectl rollout restart deployment/istiod).
	EffectIstiodStart Effect = "IstiodStart"
	// EffectNewPod means a setting read when the pod is injected or the proxy starts (the
	// injection template, the PROXY_CONFIG environment of istio-proxy, its
	// bootstrap); it reaches a proxy only when its pod is created again.
	EffectNewPod Effect = "NewPod"
	// EffectNone means a setting that changes no proxy (which objects are written, who owns them).
	EffectNone Effect = "None"
)

// effectText is how the documentation says each effect.
var effectText = map[Effect]string{
	EffectLive:          "live",
	EffectIstiodRollout: "rolls istiod",
	EffectIstiodStart:   "at istiod's next restart",
	EffectNewPod:        "**new pod**",
	EffectNone:          "none",
}

// Impact is one row of the table: a spec field, what it writes and when
// that reaches the proxies.
type Impact struct {
	// Field is the spec path: "drain.drainDuration", "namespaces[].dataplane",
	// "meshConfig.trustDomain". It covers the fields below it.
	Field string
	// When qualifies a row whose effect depends on a value ("dataplane Ambient").
	When string
	// Writes is what the field writes: a mesh key, istiod env, a label.
	Writes string
	Effect Effect
	// Why says who reads it and when, with the Istio source that shows it.
	Why string
}

// Why texts shared by several rows.
const (
	whyPushed       = "istiod builds it into the proxies' xDS config on each push"
	whyProxyConfig  = "injected into istio-proxy's PROXY_CONFIG and read by pilot-agent at start; istiod prefers the proxy's own ProxyConfig over the mesh's (ProxyConfigOrDefault in pilot/pkg/networking/core)"
	whyProxyMeta    = "proxyMetadata entries become istio-proxy environment variables at injection (injection-template.yaml)"
	whyIstiodEnv    = "istiod reads its environment at start; the write rolls istiod"
	whyInjectLabels = "the injection webhook acts when a pod is created: running pods keep their sidecar (or lack of one) until recreated; pods whose injected revision no longer matches their namespace are reported"
	whyAmbientLabel = "istio-cni and ztunnel enrol running pods of a labelled namespace; no restart (pods that carry a sidecar stay on it)"
	whyNoProxy      = "names the objects written; immutable after creation"
	writesProviders = "mesh extensionProviders"
	writesRuleNS    = "which namespaces get the rule's labels"
	whenInjection   = "dataplane Sidecar or Disabled"
	whenAmbient     = "dataplane Ambient"
)

// SpecImpacts classifies every MeshSettings spec field, in spec order.
// A row covers the fields below its Field; rows are per leaf where a struct
// writes several places, and per subtree where a struct is written as one
// mesh key. TestEverySpecFieldIsClassified fails on a field no row covers.
// spec.meshConfig's rows come from MeshKeyImpacts (one per top-level key).
var SpecImpacts = append([]Impact{
	{Field: "revision", Writes: "which ConfigMap, istiod and istio.io/rev value", Effect: EffectNone, Why: whyNoProxy},
	{Field: "target", Writes: "which ConfigMap and istiod", Effect: EffectNone, Why: whyNoProxy + " (istiodVersion only picks the release the spec is checked against)"},
	{Field: "configMapOwnership", Writes: "who owns the mesh ConfigMap", Effect: EffectNone, Why: "istiod reads the same document whoever owns it"},
	{Field: "outboundTrafficPolicy.mode", Writes: "mesh outboundTrafficPolicy", Effect: EffectLive, Why: whyPushed + " (outbound listeners and PassthroughCluster)"},
	{Field: meshKeyDiscoverySelectors, Writes: "mesh " + meshKeyDiscoverySelectors, Effect: EffectLive, Why: "istiod re-filters the namespaces it watches when the mesh changes (pkg/kube/namespace/filter.go) and pushes"},
	{Field: "tracing.enabled", Writes: "mesh enableTracing", Effect: EffectLive, Why: whyPushed + " (pilot/pkg/networking/core/tracing.go)"},
	{Field: "tracing.samplingPercentage", Writes: "istiod env PILOT_TRACE_SAMPLING", Effect: EffectIstiodRollout, Why: whyIstiodEnv},
	{Field: "tracing.providers", Writes: writesProviders, Effect: EffectLive, Why: "Telemetry tracing is built from the providers on each push"},
	{Field: "tracing.defaultProviders", Writes: "mesh defaultProviders.tracing", Effect: EffectLive, Why: whyPushed},
	{Field: "accessLogging.file", Writes: "mesh accessLogFile", Effect: EffectLive, Why: whyPushed + " (listener access logs)"},
	{Field: "accessLogging.encoding", Writes: "mesh accessLogEncoding", Effect: EffectLive, Why: whyPushed},
	{Field: "accessLogging.format", Writes: "mesh accessLogFormat", Effect: EffectLive, Why: whyPushed},
	{Field: "accessLogging.providers", Writes: writesProviders, Effect: EffectLive, Why: "Telemetry access logging is built from the providers on each push"},
	{Field: "accessLogging.defaultProviders", Writes: "mesh defaultProviders.accessLogging", Effect: EffectLive, Why: whyPushed},
	{Field: "authorization.providers", Writes: writesProviders, Effect: EffectLive, Why: "AuthorizationPolicy CUSTOM filters are built from the providers on each push"},
	{Field: "retryPolicy", Writes: "mesh defaultHttpRetryPolicy", Effect: EffectLive, Why: whyPushed + " (routes without a retry policy)"},
	{Field: "drain.drainDuration", Writes: "mesh defaultConfig.drainDuration", Effect: EffectNewPod, Why: whyProxyConfig + " (Envoy's --drain-time-s)"},
	{Field: "drain.termination", Writes: "mesh defaultConfig.terminationDrainDuration, or proxyMetadata EXIT_ON_ZERO_ACTIVE_CONNECTIONS and MINIMUM_DRAIN_DURATION", Effect: EffectNewPod, Why: whyProxyConfig + "; " + whyProxyMeta},
	{Field: "drain.holdApplicationUntilProxyStarts", Writes: "mesh defaultConfig.holdApplicationUntilProxyStarts", Effect: EffectNewPod, Why: "the injection template puts istio-proxy first with a postStart hook"},
	{Field: "proxy.imageType", Writes: "mesh defaultConfig.image.imageType", Effect: EffectNewPod, Why: "the injector picks the proxy image when it injects the pod (pkg/kube/inject)"},
	{Field: "proxy.dnsCapture", Writes: "mesh defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE", Effect: EffectNewPod, Why: whyProxyMeta},
	{Field: "proxy.metadata", Writes: "mesh defaultConfig.proxyMetadata", Effect: EffectNewPod, Why: whyProxyMeta},
	{Field: "istiod.certProvider", Writes: "istiod env PILOT_CERT_PROVIDER", Effect: EffectIstiodRollout, Why: whyIstiodEnv},
	{Field: "istiod.clusterID", Writes: "istiod env CLUSTER_ID", Effect: EffectIstiodRollout, Why: whyIstiodEnv},
	{Field: "istiod.workloadCertTTL", Writes: "istiod env DEFAULT_WORKLOAD_CERT_TTL", Effect: EffectIstiodRollout, Why: whyIstiodEnv + "; workloads get it with their next certificate"},
	{Field: "istiod.selfSignedCACertTTL", Writes: "istiod env CITADEL_SELF_SIGNED_CA_CERT_TTL", Effect: EffectIstiodRollout, Why: whyIstiodEnv},
	{Field: "istiod.selfSignedRootCertCheckInterval", Writes: "istiod env CITADEL_SELF_SIGNED_ROOT_CERT_CHECK_INTERVAL", Effect: EffectIstiodRollout, Why: whyIstiodEnv},
	{Field: "istiod.jwtPubKeyRefreshInterval", Writes: "istiod env PILOT_JWT_PUB_KEY_REFRESH_INTERVAL", Effect: EffectIstiodRollout, Why: whyIstiodEnv},
	{Field: "istiod.features", Writes: "istiod env (one variable per flag)", Effect: EffectIstiodRollout, Why: whyIstiodEnv},
	{Field: "istiod.env", Writes: "istiod env", Effect: EffectIstiodRollout, Why: whyIstiodEnv},
	{Field: "namespaces[].dataplane", When: "Sidecar or Disabled", Writes: "label istio.io/rev, istio-injection", Effect: EffectNewPod, Why: whyInjectLabels},
	{Field: "namespaces[].dataplane", When: "Ambient", Writes: "label istio.io/dataplane-mode=ambient", Effect: EffectLive, Why: whyAmbientLabel},
	{Field: "namespaces[].names", When: whenInjection, Writes: writesRuleNS, Effect: EffectNewPod, Why: whyInjectLabels},
	{Field: "namespaces[].names", When: whenAmbient, Writes: writesRuleNS, Effect: EffectLive, Why: whyAmbientLabel},
	{Field: "namespaces[].selector", When: whenInjection, Writes: writesRuleNS, Effect: EffectNewPod, Why: whyInjectLabels},
	{Field: "namespaces[].selector", When: whenAmbient, Writes: writesRuleNS, Effect: EffectLive, Why: whyAmbientLabel},
	{Field: "namespaces[].sidecarLabel", Writes: "label istio.io/rev or istio-injection", Effect: EffectNewPod, Why: whyInjectLabels},
	{Field: "namespaces[].waypoint", Writes: "labels istio.io/use-waypoint, istio.io/use-waypoint-namespace", Effect: EffectLive, Why: "istiod watches the labels and pushes the waypoint to ztunnel and the waypoint"},
	{Field: "proxyRestart", Writes: "nothing in Istio (whether the operator restarts the Deployments owning pending proxies)", Effect: EffectNone, Why: "a restart it makes creates new pods; the setting itself reaches no proxy"},
}, meshConfigImpacts()...)

// MeshKeyImpact classifies one top-level MeshConfig key.
type MeshKeyImpact struct {
	Effect Effect
	Why    string
}

// MeshKeyImpacts classifies every top-level key of Istio's MeshConfig (the
// pinned istio.io/api): what spec.meshConfig passes through and what the
// typed fields write. TestEveryMeshKeyIsClassified fails on a key of the
// MeshConfig type missing here.
var MeshKeyImpacts = meshKeyImpacts([]meshKeyGroup{
	{meshKeyDefaultConfig, EffectNewPod, whyProxyConfig + "; " + whyProxyMeta},
	// Read by the injection template (injection-template.yaml).
	{"proxyListenPort proxyInboundListenPort", EffectNewPod, "istio-init's iptables ports are rendered at injection"},
	{"trustDomain", EffectNewPod, "injected as TRUST_DOMAIN (and ISTIO_META_MESH_ID without global.meshID) at injection; " +
		"istiod's CA also reads it at start (pilot/pkg/bootstrap/server.go caOptions)"},
	{"enablePrometheusMerge", EffectNewPod, "the injector rewrites the pod's Prometheus annotations at injection (pkg/kube/inject/webhook.go)"},
	{"inboundTrafficPolicy", EffectNewPod, "mode LOCALHOST adds REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION at injection; the inbound clusters follow live"},
	// Read by istiod when it starts (pilot/pkg/bootstrap/configcontroller.go).
	{"configSources ingressControllerMode", EffectIstiodStart, "istiod sets up its config sources and its Ingress controller at start"},
	// Pushed over xDS, or used by istiod live.
	{"proxyHttpPort connectTimeout hboneIdleTimeout protocolDetectionTimeout tcpKeepalive enableTracing " +
		"accessLogFile accessLogFormat accessLogEncoding enableEnvoyAccessLogService disableEnvoyListenerLog " +
		"outboundTrafficPolicy enableAutoMtls defaultServiceExportTo defaultVirtualServiceExportTo " +
		"defaultDestinationRuleExportTo localityLbSetting zoneAwareLbSetting dnsRefreshRate h2UpgradePolicy " +
		"inboundClusterStatName outboundClusterStatName serviceSettings serviceScopeConfigs pathNormalization " +
		"defaultHttpRetryPolicy defaultInboundHttpRetryPolicy meshMTLS tlsDefaults defaultTrafficPolicy " +
		"serviceEntryVisibility", EffectLive, whyPushed},
	{"trustDomainAliases", EffectLive, whyPushed + " (authorization policies)"},
	{"discoverySelectors rootNamespace", EffectLive, "istiod re-scopes the namespaces and configuration it reads (pkg/kube/namespace/filter.go) and pushes"},
	{"ingressClass ingressService ingressSelector", EffectLive, "istiod's Ingress controller reads them live"},
	{"caCertificates", EffectLive, "istiod's mesh handler updates its trust roots (pilot/pkg/bootstrap/istio_ca.go) and pushes"},
	{"extensionProviders defaultProviders", EffectLive, "Telemetry and CUSTOM authorization are built from the providers on each push; " +
		"only whether an opentelemetry provider sets serviceAttributeEnrichment OTEL_SEMANTIC_CONVENTIONS is read at injection " +
		"(OTEL_RESOURCE_ATTRIBUTES, pkg/kube/inject/template.go)"},
	{"certificates verifyCertificateAtClient", EffectNone, "deprecated; no Istio component reads it"},
	{"ca", EffectNone, "no Istio component reads it (workloads find the CA through CA_ADDR)"},
})

// Mesh keys (and spec fields) named more than once here.
const (
	meshKeyDefaultConfig      = "defaultConfig" // the proxies' defaults (ProxyConfig)
	meshKeyProxyMetadata      = "proxyMetadata" // under defaultConfig
	meshKeyDiscoverySelectors = "discoverySelectors"
)

// meshKeyGroup classifies the space-separated keys alike.
type meshKeyGroup struct {
	keys   string
	effect Effect
	why    string
}

func meshKeyImpacts(groups []meshKeyGroup) map[string]MeshKeyImpact {
	out := map[string]MeshKeyImpact{}
	for _, g := range groups {
		for _, k := range strings.Fields(g.keys) {
			out[k] = MeshKeyImpact{Effect: g.effect, Why: g.why}
		}
	}
	return out
}

// meshConfigImpacts are spec.meshConfig's rows: one per top-level key it
// may pass through (the keys typed fields own are refused there).
func meshConfigImpacts() []Impact {
	var out []Impact
	for _, k := range sortedKeys(MeshKeyImpacts) {
		if slices.Contains(ReservedMeshConfigKeys, k) {
			continue
		}
		m := MeshKeyImpacts[k]
		field := "meshConfig." + k
		if k == meshKeyDefaultConfig {
			field += ".*"
		}
		out = append(out, Impact{Field: field, Writes: "mesh " + k, Effect: m.Effect, Why: m.Why})
	}
	return out
}

const proxyMetadataPath = meshKeyDefaultConfig + "." + meshKeyProxyMetadata + "."

// otelEnrichmentPath is the one part of extensionProviders the injector reads.
const otelEnrichmentPath = "extensionProviders[].opentelemetry.serviceAttributeEnrichment"

// ProxyRestartPaths compares two mesh documents as istiod runs them (each
// applied over Istio's defaults, as istiod does) and returns, sorted, the
// mesh paths whose change reaches an Envoy proxy only when its pod is
// created again: "defaultConfig.drainDuration",
// "defaultConfig.proxyMetadata.EXIT_ON_ZERO_ACTIVE_CONNECTIONS",
// "trustDomain", ... (the NewPod rows of MeshKeyImpacts; defaultConfig per
// key, proxyMetadata per entry). Formatting, key order and values equal to
// Istio's defaults are not changes; a change that acts live returns nothing.
// A document istiod would reject is an error naming which one.
func ProxyRestartPaths(oldDoc, newDoc string) ([]string, error) {
	oldMesh, err := meshcheck.Compose(oldDoc)
	if err != nil {
		return nil, fmt.Errorf("the previous mesh document: %w", err)
	}
	newMesh, err := meshcheck.Compose(newDoc)
	if err != nil {
		return nil, fmt.Errorf("the new mesh document: %w", err)
	}
	var out []string
	om, nm := oldMesh.ProtoReflect(), newMesh.ProtoReflect()
	fields := om.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if MeshKeyImpacts[fd.JSONName()].Effect != EffectNewPod || fieldEqual(om, nm, fd) {
			continue
		}
		if fd.JSONName() == meshKeyDefaultConfig {
			out = append(out, proxyConfigPaths(oldMesh.GetDefaultConfig(), newMesh.GetDefaultConfig())...)
			continue
		}
		out = append(out, fd.JSONName())
	}
	if otelEnrichment(oldMesh) != otelEnrichment(newMesh) {
		out = append(out, otelEnrichmentPath)
	}
	slices.Sort(out)
	return out, nil
}

// proxyConfigPaths lists the defaultConfig keys that differ, proxyMetadata per entry.
func proxyConfigPaths(a, b *meshv1alpha1.ProxyConfig) []string {
	var out []string
	am, bm := a.ProtoReflect(), b.ProtoReflect()
	fields := am.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fieldEqual(am, bm, fd) {
			continue
		}
		if fd.JSONName() != meshKeyProxyMetadata {
			out = append(out, meshKeyDefaultConfig+"."+fd.JSONName())
			continue
		}
		am, bm := a.GetProxyMetadata(), b.GetProxyMetadata()
		for k, v := range am {
			if w, ok := bm[k]; !ok || w != v {
				out = append(out, proxyMetadataPath+k)
			}
		}
		for k := range bm {
			if _, ok := am[k]; !ok {
				out = append(out, proxyMetadataPath+k)
			}
		}
	}
	return out
}

// fieldEqual compares one field of two messages of the same type.
func fieldEqual(a, b protoreflect.Message, fd protoreflect.FieldDescriptor) bool {
	only := func(m protoreflect.Message) proto.Message {
		c := m.New()
		if m.Has(fd) {
			c.Set(fd, m.Get(fd))
		}
		return c.Interface()
	}
	return proto.Equal(only(a), only(b))
}

// otelEnrichment is what the injector reads of extensionProviders: whether
// an opentelemetry provider enriches with OTel semantic conventions.
func otelEnrichment(mc *meshv1alpha1.MeshConfig) bool {
	for _, p := range mc.GetExtensionProviders() {
		if p.GetOpentelemetry().GetServiceAttributeEnrichment() == meshv1alpha1.MeshConfig_ExtensionProvider_OTEL_SEMANTIC_CONVENTIONS {
			return true
		}
	}
	return false
}

// ImpactTable is the Markdown table of SpecImpacts, as docs/proxy-restart.md shows it.
func ImpactTable() string {
	var b strings.Builder
	b.WriteString("\n| spec field | writes | reaches the proxies | why |\n|---|---|---|---|\n")
	for _, r := range SpecImpacts {
		field := "`" + r.Field + "`"
		if r.When != "" {
			field += " (" + r.When + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", field, mdCell(r.Writes), effectText[r.Effect], mdCell(r.Why))
	}
	b.WriteString("\n")
	return b.String()
}

func mdCell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }
