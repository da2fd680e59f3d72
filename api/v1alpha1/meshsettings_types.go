package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// No field of the spec carries a +kubebuilder:default: defaults are documented
// here and applied when rendering, so what a user (or Argo CD) applies is
// exactly what the API server stores. An unset field leaves Istio's value alone.

// MeshSettingsSpec is the desired mesh-wide Istio configuration of one
// control-plane revision.
//
// +kubebuilder:validation:XValidation:rule="!has(self.namespaces) || !has(self.revision) || self.revision.size() == 0 || self.namespaces.all(n, !has(n.sidecarLabel) || n.sidecarLabel != 'InjectionLabel')",message="namespaces[].sidecarLabel InjectionLabel selects the default revision; with spec.revision set use sidecarLabel Revision",fieldPath=".namespaces"
// +kubebuilder:validation:XValidation:rule="!(has(self.tracing) && has(self.tracing.providers)) || self.tracing.providers.all(p, !((has(self.accessLogging) && has(self.accessLogging.providers)) && self.accessLogging.providers.exists(q, q.name == p.name)) && !((has(self.authorization) && has(self.authorization.providers)) && self.authorization.providers.exists(q, q.name == p.name)))",message="provider names must be unique across tracing, accessLogging and authorization providers"
// +kubebuilder:validation:XValidation:rule="!(has(self.accessLogging) && has(self.accessLogging.providers)) || self.accessLogging.providers.all(p, !((has(self.authorization) && has(self.authorization.providers)) && self.authorization.providers.exists(q, q.name == p.name)))",message="provider names must be unique across tracing, accessLogging and authorization providers"
type MeshSettingsSpec struct {
	// revision is the Istio control-plane revision these settings target.
	// Empty (the default) is the default revision: ConfigMap "istio" and
	// Deployment "istiod"; otherwise ConfigMap "istio-<revision>" and
	// Deployment "istiod-<revision>". It is also the value of the
	// istio.io/rev namespace label. Immutable: it cannot be added, changed or
	// removed after creation (a new revision gets a new MeshSettings).
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$`
	Revision string `json:"revision,omitempty"`

	// target overrides the names of the objects written. By default they
	// follow the revision (see revision) in the MeshSettings' own namespace,
	// which should be istiod's namespace (usually istio-system). The names
	// are immutable, like revision: moving them would leave what was written
	// to the old objects behind, so other targets get a new MeshSettings.
	// +optional
	Target *Target `json:"target,omitempty"`

	// configMapOwnership declares who owns the mesh ConfigMap; the operator
	// cannot tell before Helm (or Argo CD) has run, so it is not guessed.
	//
	// Own: the operator owns the ConfigMap. It creates it, and recreates it
	// when it is deleted, holding a baseline plus what this spec sets. The
	// baseline is the document found when the operator first writes an
	// existing ConfigMap, or else what Istio's istio-discovery chart renders
	// for this revision (trustDomain, rootNamespace, defaultProviders,
	// defaultConfig.discoveryAddress, ...) and its meshNetworks key. When
	// the MeshSettings is deleted the ConfigMap stays, holding exactly the
	// baseline. Install the chart with configMap=false (docs/helm.md).
	//
	// Merge (the default when empty): another manager (Helm with
	// configMap=true) owns the ConfigMap. The operator never creates it, and
	// waits while it is missing (MeshConfigApplied=False, ConfigMapNotFound).
	// It merges this spec key by key into the live document, merges again
	// once after each write of the other manager, and on deletion restores
	// the other manager's current values. When the other manager owns the
	// mesh key by server-side apply (Helm 4 defaults, Argo CD with
	// ServerSideApply=true), taking it would make that manager's next apply
	// fail: the operator writes nothing and reports Stalled, reason
	// MeshConfigOwnedByApply, with the remedy.
	// +optional
	ConfigMapOwnership ConfigMapOwnership `json:"configMapOwnership,omitempty"`

	// outboundTrafficPolicy decides how sidecars treat traffic to hosts
	// outside the service registry. Written as mesh outboundTrafficPolicy,
	// always with an explicit mode (an empty policy means REGISTRY_ONLY).
	// +optional
	OutboundTrafficPolicy *OutboundTrafficPolicy `json:"outboundTrafficPolicy,omitempty"`

	// discoverySelectors limits the namespaces istiod watches. Selectors are
	// ORed; within one selector matchLabels and matchExpressions are ANDed.
	// Operators In and NotIn (with values), Exists and DoesNotExist (without),
	// checked at admission; a label key or value that does not parse stalls
	// the MeshSettings (checked by the controller).
	// The list must select istiod's own namespace or gateways there break:
	// the controller warns when it does not. Written as mesh discoverySelectors.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	DiscoverySelectors []LabelSelector `json:"discoverySelectors,omitempty"`

	// tracing configures distributed tracing.
	// +optional
	Tracing *Tracing `json:"tracing,omitempty"`

	// accessLogging configures Envoy access logs.
	// +optional
	AccessLogging *AccessLogging `json:"accessLogging,omitempty"`

	// authorization declares external authorization (ext_authz) providers
	// that AuthorizationPolicy CUSTOM actions refer to by name.
	// +optional
	Authorization *Authorization `json:"authorization,omitempty"`

	// retryPolicy is the mesh-wide default HTTP retry policy, used by routes
	// that set none. Written as the top-level mesh defaultHttpRetryPolicy.
	// +optional
	RetryPolicy *RetryPolicy `json:"retryPolicy,omitempty"`

	// drain configures how sidecars drain connections.
	// +optional
	Drain *Drain `json:"drain,omitempty"`

	// proxy configures the sidecar and gateway proxies (mesh defaultConfig).
	// +optional
	Proxy *Proxy `json:"proxy,omitempty"`

	// istiod configures istiod through environment variables of its
	// discovery container. istiod reads them at start, so a change rolls
	// the istiod Deployment. Durations are Go durations: units h, m, s, ms
	// (no d or y: one year is 8760h).
	// +optional
	Istiod *Istiod `json:"istiod,omitempty"`

	// namespaces labels namespaces for sidecar injection or the ambient data
	// plane. Injection labels act when pods are created: existing pods keep
	// their data plane until restarted.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Namespaces []NamespaceRule `json:"namespaces,omitempty"`

	// meshConfig holds any other top-level MeshConfig key (for example
	// trustDomain, enablePrometheusMerge, ingressSelector, proxyHttpPort,
	// caCertificates), merged into the mesh document as given. The controller
	// checks it strictly against Istio's MeshConfig: an unknown key or a
	// wrong type stalls the MeshSettings and nothing is written. Keys that a
	// typed field covers (outboundTrafficPolicy, discoverySelectors,
	// enableTracing, extensionProviders, defaultProviders, accessLogFile,
	// accessLogEncoding, accessLogFormat, defaultHttpRetryPolicy, and the
	// defaultConfig keys drainDuration, terminationDrainDuration,
	// holdApplicationUntilProxyStarts, image and proxyMetadata) are refused
	// the same way; other defaultConfig keys are allowed.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	MeshConfig map[string]apiextensionsv1.JSON `json:"meshConfig,omitempty"`

	// proxyRestart decides what happens to proxies that still run the
	// settings of before a change that reaches a proxy only when its pod is
	// created again (defaultConfig entries, injection labels; the table is
	// in docs/proxy-restart.md).
	//
	// Report (the default when empty): status.proxies counts them, per
	// namespace, with their owning workloads; condition ProxiesUpToDate is
	// False (reason RestartPending) until they are replaced, and an event
	// says which Deployments to restart. Nothing is restarted.
	//
	// RolloutRestart: as Report, and the operator also restarts the owning
	// Deployments itself, as kubectl rollout restart does, a few at a time.
	// It needs the optional ClusterRole that allows patching Deployments
	// (chart value rolloutRestart.enabled).
	// +optional
	ProxyRestart ProxyRestartPolicy `json:"proxyRestart,omitempty"`
}

// ProxyRestartPolicy is what the operator does about proxies that predate a
// change: Report or RolloutRestart.
// +kubebuilder:validation:Enum=Report;RolloutRestart
type ProxyRestartPolicy string

const (
	// ProxyRestartReport reports the proxies to restart and restarts nothing.
	ProxyRestartReport ProxyRestartPolicy = "Report"
	// ProxyRestartRolloutRestart also restarts the owning Deployments.
	ProxyRestartRolloutRestart ProxyRestartPolicy = "RolloutRestart"
)

// ConfigMapOwnership is who owns the mesh ConfigMap: Own or Merge.
// +kubebuilder:validation:Enum=Own;Merge
type ConfigMapOwnership string

const (
	// ConfigMapOwn means the operator creates and owns the mesh ConfigMap.
	ConfigMapOwn ConfigMapOwnership = "Own"
	// ConfigMapMerge means another manager owns it; the operator merges its keys in.
	ConfigMapMerge ConfigMapOwnership = "Merge"
)

// Target names the objects the operator writes, in the MeshSettings' namespace.
type Target struct {
	// configMapName is the mesh ConfigMap. Default: "istio", or
	// "istio-<revision>".
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	ConfigMapName string `json:"configMapName,omitempty"`

	// istiodDeploymentName is the istiod Deployment. Default: "istiod", or
	// "istiod-<revision>".
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	IstiodDeploymentName string `json:"istiodDeploymentName,omitempty"`

	// istiodContainerName is the container of the istiod Deployment whose
	// environment is written. Default: "discovery".
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	IstiodContainerName string `json:"istiodContainerName,omitempty"`

	// istiodVersion states the Istio release istiod runs ("1.28" or
	// "1.28.1") when its image tag names none (a digest, a custom build,
	// "latest"); when set it wins over the tag. Every key and enum value the
	// operator writes is checked against that release's MeshConfig. Without
	// it, a tag that names no release means the newest release known.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^v?[0-9]+[.][0-9]+([.][0-9]+)?$')",messageExpression="'istiodVersion must be an Istio release like 1.28 or 1.28.1, got ' + self"
	IstiodVersion string `json:"istiodVersion,omitempty"`
}

// OutboundTrafficMode is how sidecars treat traffic to unknown hosts.
// +kubebuilder:validation:Enum=ALLOW_ANY;REGISTRY_ONLY;ALLOW_ANY_DYNAMIC_DNS
type OutboundTrafficMode string

const (
	// OutboundAllowAny passes traffic to unknown hosts through.
	OutboundAllowAny OutboundTrafficMode = "ALLOW_ANY"
	// OutboundRegistryOnly blocks traffic to hosts not in the registry.
	OutboundRegistryOnly OutboundTrafficMode = "REGISTRY_ONLY"
	// OutboundAllowAnyDynamicDNS is ALLOW_ANY with dynamic DNS resolution (Istio 1.30+).
	OutboundAllowAnyDynamicDNS OutboundTrafficMode = "ALLOW_ANY_DYNAMIC_DNS"
)

// OutboundTrafficPolicy sets mesh outboundTrafficPolicy.
type OutboundTrafficPolicy struct {
	// mode: ALLOW_ANY, REGISTRY_ONLY or ALLOW_ANY_DYNAMIC_DNS (Istio 1.30+).
	// +required
	Mode OutboundTrafficMode `json:"mode"`
}

// Tracing configures distributed tracing.
//
// +kubebuilder:validation:XValidation:rule="!has(self.defaultProviders) || self.defaultProviders.all(d, has(self.providers) && self.providers.exists(p, p.name == d))",message="defaultProviders must name providers declared in tracing.providers",fieldPath=".defaultProviders"
type Tracing struct {
	// enabled turns tracing on or off for the mesh (mesh enableTracing).
	// Istio's default is true.
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// samplingPercentage is the percentage of requests sampled, a decimal
	// string from "0" to "100" (for example "1" or "0.5"). Written as istiod's
	// PILOT_TRACE_SAMPLING environment variable. Istio's default is 1; leave
	// unset to keep istiod's value.
	// +optional
	// +kubebuilder:validation:MaxLength=12
	// +kubebuilder:validation:XValidation:rule="self.matches('^(100(\\\\.0+)?|[0-9]{1,2}(\\\\.[0-9]+)?)$')",messageExpression="'samplingPercentage must be a decimal from 0 to 100, got ' + self"
	SamplingPercentage string `json:"samplingPercentage,omitempty"`

	// providers are the tracing backends, written as mesh extensionProviders.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	Providers []TracingProvider `json:"providers,omitempty"`

	// defaultProviders names the providers used when a Telemetry resource
	// names none (mesh defaultProviders.tracing). Each must be in providers.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=4
	// +kubebuilder:validation:items:MaxLength=63
	DefaultProviders []string `json:"defaultProviders,omitempty"`
}

// TracingProvider is a named tracing backend; set exactly one kind.
//
// +kubebuilder:validation:XValidation:rule="[has(self.zipkin), has(self.opentelemetry), has(self.datadog), has(self.skywalking)].filter(x, x).size() == 1",messageExpression="'tracing provider ' + self.name + ' must set exactly one of zipkin, opentelemetry, datadog, skywalking'"
type TracingProvider struct {
	// name identifies the provider in Telemetry resources and defaultProviders.
	// Unique across tracing, accessLogging and authorization providers.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`
	Name string `json:"name"`

	// zipkin sends spans to a Zipkin-compatible collector.
	// +optional
	Zipkin *ZipkinProvider `json:"zipkin,omitempty"`
	// opentelemetry sends spans to an OpenTelemetry collector over gRPC or
	// HTTP: set grpc or http, not both; neither means gRPC with Istio's defaults.
	// +optional
	OpenTelemetry *OpenTelemetryProvider `json:"opentelemetry,omitempty"`
	// datadog sends spans to a Datadog agent.
	// +optional
	Datadog *DatadogProvider `json:"datadog,omitempty"`
	// skywalking sends spans to an Apache SkyWalking OAP.
	// +optional
	SkyWalking *SkyWalkingProvider `json:"skywalking,omitempty"`
}

// Endpoint is the service a provider sends to.
type Endpoint struct {
	// service is the host of the backend: a fully qualified name
	// ("zipkin.istio-system.svc.cluster.local"), an IP, or
	// "<namespace>/<hostname>" to pick a ServiceEntry host in one namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=317
	// +kubebuilder:validation:XValidation:rule="isIP(self) || self.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\\\\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*$')",messageExpression="'service must be a hostname (FQDN), an IP or <namespace>/<hostname>, got ' + self"
	Service string `json:"service"`

	// port of the backend service, 1-65535.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`
}

// ZipkinProvider configures a Zipkin-compatible tracer.
type ZipkinProvider struct {
	Endpoint `json:",inline"`
	// path of the span collection endpoint. Istio's default is /api/v2/spans.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/`
	Path string `json:"path,omitempty"`
	// maxTagLength truncates tag values to this many characters, 1-65536.
	// Istio's default is 256.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65536
	MaxTagLength *int32 `json:"maxTagLength,omitempty"`
}

// DatadogProvider configures the Datadog tracer.
type DatadogProvider struct {
	Endpoint `json:",inline"`
	// maxTagLength truncates tag values to this many characters, 1-65536.
	// Istio's default is 256.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65536
	MaxTagLength *int32 `json:"maxTagLength,omitempty"`
}

// SkyWalkingProvider configures the Apache SkyWalking tracer.
type SkyWalkingProvider struct {
	Endpoint `json:",inline"`
}

// OpenTelemetryProvider configures the OpenTelemetry tracer. With neither
// grpc nor http set, spans go over gRPC with Istio's defaults.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.grpc) && has(self.http))",message="opentelemetry takes grpc or http, not both"
type OpenTelemetryProvider struct {
	Endpoint `json:",inline"`
	// maxTagLength truncates tag values to this many characters, 1-65536.
	// Istio's default is 256.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65536
	MaxTagLength *int32 `json:"maxTagLength,omitempty"`
	// grpc exports spans over OTLP/gRPC.
	// +optional
	GRPC *OpenTelemetryGRPC `json:"grpc,omitempty"`
	// http exports spans over OTLP/HTTP.
	// +optional
	HTTP *OpenTelemetryHTTP `json:"http,omitempty"`
}

// OpenTelemetryGRPC is the OTLP/gRPC exporter.
type OpenTelemetryGRPC struct {
	// timeout of an export request, a duration such as "10s" (at least 1ms).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1ms')",messageExpression="'timeout must be a duration (like 500ms or 10s) of at least 1ms, got ' + self"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// OpenTelemetryHTTP is the OTLP/HTTP exporter.
type OpenTelemetryHTTP struct {
	// path of the collector's trace endpoint, e.g. /v1/traces.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/`
	Path string `json:"path"`
	// timeout of an export request, a duration such as "10s" (at least 1ms).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1ms')",messageExpression="'timeout must be a duration (like 500ms or 10s) of at least 1ms, got ' + self"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// headers added to each export request.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Headers []HTTPHeader `json:"headers,omitempty"`
}

// HTTPHeader is a header sent to a collector: a literal value or one read
// from the proxy's environment.
//
// +kubebuilder:validation:XValidation:rule="has(self.value) != has(self.envName)",messageExpression="'header ' + self.name + ' must set exactly one of value, envName'"
type HTTPHeader struct {
	// name of the header.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+.^_|~-]+$`
	Name string `json:"name"`
	// value of the header.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Value *string `json:"value,omitempty"`
	// envName is an environment variable holding the value. istiod reads it
	// from its own environment when it builds the proxies' config (not the
	// proxy's): set it in spec.istiod.env (valueFrom.secretKeyRef for a
	// token) or in istiod's Deployment. A name set in neither sends the header
	// empty; the Ready condition's message warns about it.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_]*$`
	EnvName *string `json:"envName,omitempty"`
}

// AccessLogEncoding is the format of the file access log.
// +kubebuilder:validation:Enum=TEXT;JSON
type AccessLogEncoding string

// AccessLogging configures Envoy access logs.
//
// +kubebuilder:validation:XValidation:rule="!has(self.defaultProviders) || self.defaultProviders.all(d, d == 'envoy' || (has(self.providers) && self.providers.exists(p, p.name == d)))",message="defaultProviders must name providers declared in accessLogging.providers or the built-in envoy",fieldPath=".defaultProviders"
type AccessLogging struct {
	// file is the absolute path of the access log; /dev/stdout sends it to
	// the proxy's log. Written as mesh accessLogFile. Istio's default is no
	// access log.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="self.size() == 0 || self.startsWith('/')",messageExpression="'file must be an absolute path, got ' + self"
	File *string `json:"file,omitempty"`

	// encoding of the access log: TEXT or JSON (mesh accessLogEncoding).
	// Istio's default is TEXT.
	// +optional
	Encoding AccessLogEncoding `json:"encoding,omitempty"`

	// format is an Envoy access log format string (mesh accessLogFormat).
	// Empty means Envoy's default format.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Format *string `json:"format,omitempty"`

	// providers are access log backends, written as mesh extensionProviders.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	Providers []AccessLogProvider `json:"providers,omitempty"`

	// defaultProviders names the providers used when a Telemetry resource
	// names none (mesh defaultProviders.accessLogging). Each must be in
	// providers or be Istio's built-in "envoy" (stdout).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=4
	// +kubebuilder:validation:items:MaxLength=63
	DefaultProviders []string `json:"defaultProviders,omitempty"`
}

// AccessLogProvider is a named access log backend; set exactly one kind.
//
// +kubebuilder:validation:XValidation:rule="has(self.envoyFileAccessLog) != has(self.envoyOtelAls)",messageExpression="'access log provider ' + self.name + ' must set exactly one of envoyFileAccessLog, envoyOtelAls'"
type AccessLogProvider struct {
	// name identifies the provider in Telemetry resources and defaultProviders.
	// Unique across tracing, accessLogging and authorization providers.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`
	Name string `json:"name"`

	// envoyFileAccessLog writes the log to a file of the proxy.
	// +optional
	EnvoyFileAccessLog *EnvoyFileAccessLogProvider `json:"envoyFileAccessLog,omitempty"`
	// envoyOtelAls sends the log to an OpenTelemetry collector.
	// +optional
	EnvoyOtelAls *EnvoyOtelAlsProvider `json:"envoyOtelAls,omitempty"`
}

// EnvoyFileAccessLogProvider writes access logs to a file.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.text) && has(self.labels))",message="envoyFileAccessLog takes text or labels, not both"
type EnvoyFileAccessLogProvider struct {
	// path is the absolute path of the log file, e.g. /dev/stdout.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/')",messageExpression="'path must be an absolute path, got ' + self"
	Path string `json:"path"`
	// text is an Envoy format string; the log is plain text.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Text *string `json:"text,omitempty"`
	// labels maps JSON keys to Envoy format strings; the log is JSON.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	Labels map[string]string `json:"labels,omitempty"`
}

// EnvoyOtelAlsProvider sends access logs to an OpenTelemetry collector.
type EnvoyOtelAlsProvider struct {
	Endpoint `json:",inline"`
	// logName is the name of the log stream. Istio's default is "otel_envoy_accesslog".
	// +optional
	// +kubebuilder:validation:MaxLength=256
	LogName string `json:"logName,omitempty"`
}

// Authorization declares external authorization providers.
type Authorization struct {
	// providers are ext_authz services, written as mesh extensionProviders.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	Providers []AuthorizationProvider `json:"providers,omitempty"`
}

// AuthorizationProvider is a named ext_authz service; set exactly one kind.
//
// +kubebuilder:validation:XValidation:rule="has(self.envoyExtAuthzHttp) != has(self.envoyExtAuthzGrpc)",messageExpression="'authorization provider ' + self.name + ' must set exactly one of envoyExtAuthzHttp, envoyExtAuthzGrpc'"
type AuthorizationProvider struct {
	// name identifies the provider in AuthorizationPolicy CUSTOM actions.
	// Unique across tracing, accessLogging and authorization providers.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`
	Name string `json:"name"`

	// envoyExtAuthzHttp checks requests with an HTTP authorization service.
	// +optional
	EnvoyExtAuthzHTTP *EnvoyExtAuthzHTTPProvider `json:"envoyExtAuthzHttp,omitempty"`
	// envoyExtAuthzGrpc checks requests with a gRPC authorization service.
	// +optional
	EnvoyExtAuthzGRPC *EnvoyExtAuthzGRPCProvider `json:"envoyExtAuthzGrpc,omitempty"`
}

// EnvoyExtAuthzHTTPProvider is an HTTP ext_authz service.
type EnvoyExtAuthzHTTPProvider struct {
	Endpoint `json:",inline"`
	// pathPrefix is prepended to the path of the check request.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/`
	PathPrefix string `json:"pathPrefix,omitempty"`
	// includeRequestHeadersInCheck lists request headers sent to the service.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=256
	IncludeRequestHeadersInCheck []string `json:"includeRequestHeadersInCheck,omitempty"`
	// headersToUpstreamOnAllow lists headers of the service's response
	// added to the request when it is allowed.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=256
	HeadersToUpstreamOnAllow []string `json:"headersToUpstreamOnAllow,omitempty"`
	// headersToDownstreamOnDeny lists headers of the service's response
	// sent to the client when the request is denied.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=256
	HeadersToDownstreamOnDeny []string `json:"headersToDownstreamOnDeny,omitempty"`
	// timeout of a check, a duration such as "600ms" (at least 1ms). Istio's default is 600s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1ms')",messageExpression="'timeout must be a duration (like 500ms or 10s) of at least 1ms, got ' + self"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// failOpen lets requests through when the service cannot be reached.
	// Istio's default is false.
	// +optional
	FailOpen *bool `json:"failOpen,omitempty"`
}

// EnvoyExtAuthzGRPCProvider is a gRPC ext_authz service.
type EnvoyExtAuthzGRPCProvider struct {
	Endpoint `json:",inline"`
	// timeout of a check, a duration such as "600ms" (at least 1ms). Istio's default is 600s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1ms')",messageExpression="'timeout must be a duration (like 500ms or 10s) of at least 1ms, got ' + self"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// failOpen lets requests through when the service cannot be reached.
	// Istio's default is false.
	// +optional
	FailOpen *bool `json:"failOpen,omitempty"`
}

// RetryPolicy is the default HTTP retry policy, with VirtualService's rules.
//
// +kubebuilder:validation:XValidation:rule="!has(self.attempts) || self.attempts != 0 || (!has(self.retryOn) && !has(self.perTryTimeout) && !has(self.retryRemoteLocalities))",message="with attempts 0 (retries disabled) retryOn, perTryTimeout and retryRemoteLocalities must not be set"
type RetryPolicy struct {
	// attempts is the number of retries of a request, 0-100; 0 disables
	// retries. Default: Istio's 2 (written explicitly when the policy is set).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Attempts *int32 `json:"attempts,omitempty"`

	// retryOn lists the conditions that trigger a retry: HTTP status codes
	// ("503") or Envoy/gRPC retry policies (5xx, gateway-error, reset,
	// reset-before-request, connect-failure, retriable-4xx, refused-stream,
	// retriable-status-codes, retriable-headers, envoy-ratelimited,
	// http3-post-connect-failure, cancelled, deadline-exceeded, internal,
	// resource-exhausted, unavailable). Written comma-joined. Istio's default
	// is connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=24
	RetryOn []RetryOnCondition `json:"retryOn,omitempty"`

	// perTryTimeout is the timeout of each attempt, a duration such as "2s"
	// (at least 1ms). Default: the route's timeout.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1ms')",messageExpression="'perTryTimeout must be a duration (like 500ms or 2s) of at least 1ms, got ' + self"
	PerTryTimeout *metav1.Duration `json:"perTryTimeout,omitempty"`

	// retryRemoteLocalities lets retries go to other localities. Istio's default is false.
	// +optional
	RetryRemoteLocalities *bool `json:"retryRemoteLocalities,omitempty"`
}

// RetryOnCondition is an HTTP status code or an Envoy/gRPC retry policy name.
//
// +kubebuilder:validation:MaxLength=32
// +kubebuilder:validation:XValidation:rule="self.matches('^[1-5][0-9][0-9]$') || self in ['5xx', 'gateway-error', 'reset', 'reset-before-request', 'connect-failure', 'retriable-4xx', 'refused-stream', 'retriable-status-codes', 'retriable-headers', 'envoy-ratelimited', 'http3-post-connect-failure', 'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable']",messageExpression="'unknown retryOn condition ' + self + ': use an HTTP status code or one of 5xx, gateway-error, reset, reset-before-request, connect-failure, retriable-4xx, refused-stream, retriable-status-codes, retriable-headers, envoy-ratelimited, http3-post-connect-failure, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable'"
type RetryOnCondition string

// TerminationStrategy is how a proxy drains when its pod stops.
// +kubebuilder:validation:Enum=Fixed;WhenIdle
type TerminationStrategy string

const (
	// TerminationFixed waits a fixed time (terminationDrainDuration).
	TerminationFixed TerminationStrategy = "Fixed"
	// TerminationWhenIdle waits a minimum time, then exits as soon as no
	// connection is active (EXIT_ON_ZERO_ACTIVE_CONNECTIONS).
	TerminationWhenIdle TerminationStrategy = "WhenIdle"
)

// Drain configures connection draining of the proxies.
type Drain struct {
	// drainDuration is Envoy's drain time on hot restart and listener
	// changes, whole seconds of at least 1s (mesh defaultConfig.drainDuration).
	// Istio's default is 45s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.size() > 0 && self.matches('^([0-9]+h)?([0-9]+m)?([0-9]+s)?$') && duration(self) >= duration('1s')",messageExpression="'drainDuration must be whole seconds (like 45s or 1m30s) of at least 1s, got ' + self"
	DrainDuration *metav1.Duration `json:"drainDuration,omitempty"`

	// termination is how the proxy drains when its pod stops.
	// +optional
	Termination *DrainTermination `json:"termination,omitempty"`

	// holdApplicationUntilProxyStarts starts application containers only
	// once the proxy is ready (defaultConfig.holdApplicationUntilProxyStarts).
	// Istio's default is false.
	// +optional
	HoldApplicationUntilProxyStarts *bool `json:"holdApplicationUntilProxyStarts,omitempty"`
}

// DrainTermination picks one of Istio's two shutdown behaviours.
type DrainTermination struct {
	// strategy: Fixed waits duration (defaultConfig.terminationDrainDuration,
	// Istio's default 5s); WhenIdle waits at least duration, then exits once
	// no connection is active (proxyMetadata EXIT_ON_ZERO_ACTIVE_CONNECTIONS
	// "true" and MINIMUM_DRAIN_DURATION; terminationDrainDuration is then
	// ignored by Istio and not written).
	// +required
	Strategy TerminationStrategy `json:"strategy"`

	// duration is the fixed (Fixed) or minimum (WhenIdle) drain time, whole
	// seconds of at least 1s. Default: 5s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.size() > 0 && self.matches('^([0-9]+h)?([0-9]+m)?([0-9]+s)?$') && duration(self) >= duration('1s')",messageExpression="'termination.duration must be whole seconds (like 45s or 1m30s) of at least 1s, got ' + self"
	Duration *metav1.Duration `json:"duration,omitempty"`
}

// ProxyImageType is the flavour of the proxy image.
// +kubebuilder:validation:Enum=default;debug;distroless
type ProxyImageType string

// Proxy configures the proxies (mesh defaultConfig).
type Proxy struct {
	// imageType selects the proxy image flavour: default, debug or
	// distroless (defaultConfig.image.imageType). Istio's default is default.
	// +optional
	ImageType ProxyImageType `json:"imageType,omitempty"`

	// dnsCapture makes the proxy answer DNS queries of the application
	// (proxyMetadata ISTIO_META_DNS_CAPTURE). Istio's default is false.
	// +optional
	DNSCapture *bool `json:"dnsCapture,omitempty"`

	// metadata is extra proxy metadata, environment variables of the
	// proxy (defaultConfig.proxyMetadata); values are strings. Keys written
	// by typed fields (EXIT_ON_ZERO_ACTIVE_CONNECTIONS, MINIMUM_DRAIN_DURATION,
	// ISTIO_META_DNS_CAPTURE) are refused.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.matches('^[A-Za-z_][A-Za-z0-9_]*$'))",message="metadata keys must be environment variable names ([A-Za-z_][A-Za-z0-9_]*)"
	// +kubebuilder:validation:XValidation:rule="!self.exists(k, k in ['EXIT_ON_ZERO_ACTIVE_CONNECTIONS', 'MINIMUM_DRAIN_DURATION', 'ISTIO_META_DNS_CAPTURE'])",message="metadata keys EXIT_ON_ZERO_ACTIVE_CONNECTIONS, MINIMUM_DRAIN_DURATION and ISTIO_META_DNS_CAPTURE are set by drain.termination and proxy.dnsCapture"
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Istiod configures istiod through its environment.
type Istiod struct {
	// certProvider issues istiod's own DNS certificate: istiod, none, custom
	// or k8s.io/<signer> (env PILOT_CERT_PROVIDER). "kubernetes" is refused:
	// current istiod fails to start with it. Leave unset to keep istiod's value.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self != 'kubernetes'",message="certProvider kubernetes was removed from Istio and makes istiod fail at start; use istiod or k8s.io/<signer>"
	// +kubebuilder:validation:XValidation:rule="self == 'kubernetes' || self in ['istiod', 'none', 'custom'] || self.matches('^k8s\\\\.io/[A-Za-z0-9][-A-Za-z0-9_.]*(/[-A-Za-z0-9_.]+)*$')",messageExpression="'certProvider must be istiod, none, custom or k8s.io/<signer>, got ' + self"
	CertProvider string `json:"certProvider,omitempty"`

	// clusterID names this cluster in a multicluster mesh (env CLUSTER_ID).
	// Istio's default is Kubernetes.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`
	ClusterID string `json:"clusterID,omitempty"`

	// workloadCertTTL is the default lifetime of workload certificates
	// (env DEFAULT_WORKLOAD_CERT_TTL), at least 1m. Istio's default is 24h.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1m')",messageExpression="'workloadCertTTL must be a duration (like 24h) of at least 1m, got ' + self"
	WorkloadCertTTL *metav1.Duration `json:"workloadCertTTL,omitempty"`

	// selfSignedCACertTTL is the lifetime of istiod's self-signed root
	// certificate (env CITADEL_SELF_SIGNED_CA_CERT_TTL), at least 1h.
	// Istio's default is 87600h (10 years).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1h')",messageExpression="'selfSignedCACertTTL must be a duration (like 87600h) of at least 1h, got ' + self"
	SelfSignedCACertTTL *metav1.Duration `json:"selfSignedCACertTTL,omitempty"`

	// selfSignedRootCertCheckInterval is how often istiod checks its
	// self-signed root for rotation (env
	// CITADEL_SELF_SIGNED_ROOT_CERT_CHECK_INTERVAL), at least 1m. Istio's default is 1h.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1m')",messageExpression="'selfSignedRootCertCheckInterval must be a duration (like 1h) of at least 1m, got ' + self"
	SelfSignedRootCertCheckInterval *metav1.Duration `json:"selfSignedRootCertCheckInterval,omitempty"`

	// jwtPubKeyRefreshInterval is how often istiod refreshes JWKS of
	// RequestAuthentication issuers (env PILOT_JWT_PUB_KEY_REFRESH_INTERVAL),
	// at least 1s. Istio's default is 20m.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+(\\\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$') && duration(self) >= duration('1s')",messageExpression="'jwtPubKeyRefreshInterval must be a duration (like 20m) of at least 1s, got ' + self"
	JWTPubKeyRefreshInterval *metav1.Duration `json:"jwtPubKeyRefreshInterval,omitempty"`

	// features toggles istiod feature flags. Flags the running istiod no
	// longer reads are skipped and listed in status.ignoredSettings.
	// +optional
	Features *IstiodFeatures `json:"features,omitempty"`

	// env holds other istiod environment variables. Names set by typed
	// fields are refused. Written in name order.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Env []EnvVar `json:"env,omitempty"`
}

// IstiodFeatures are istiod feature flags, each an environment variable.
type IstiodFeatures struct {
	// enhancedResourceScoping (ENABLE_ENHANCED_RESOURCE_SCOPING) scopes
	// config to discoverySelectors. Removed in Istio 1.25 (always on).
	// +optional
	EnhancedResourceScoping *bool `json:"enhancedResourceScoping,omitempty"`
	// deferredClusterCreation (ENABLE_DEFERRED_CLUSTER_CREATION) creates
	// Envoy clusters on first use. Removed in Istio 1.26.
	// +optional
	DeferredClusterCreation *bool `json:"deferredClusterCreation,omitempty"`
	// deferredStatsCreation is deprecated and has no effect: it named
	// ENABLE_DEFERRED_STATS_CREATION, which no istiod reads (it is not among
	// the variables pilot-discovery lists, and Istio's proxy bootstrap always
	// creates Envoy stats lazily). The field is still accepted, is never
	// written, and is listed in status.ignoredSettings.
	// +optional
	DeferredStatsCreation *bool `json:"deferredStatsCreation,omitempty"`
	// enhancedDestinationRuleMerge (ENABLE_ENHANCED_DESTINATIONRULE_MERGE)
	// merges DestinationRules with different exportTo.
	// +optional
	EnhancedDestinationRuleMerge *bool `json:"enhancedDestinationRuleMerge,omitempty"`
	// inboundRetryPolicy (ENABLE_INBOUND_RETRY_POLICY) retries inbound
	// connection resets. Removed in Istio 1.27.
	// +optional
	InboundRetryPolicy *bool `json:"inboundRetryPolicy,omitempty"`
	// excludeUnsafe503FromDefaultRetry (EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY)
	// keeps non-idempotent 503s out of default retries. Removed in Istio 1.27.
	// +optional
	ExcludeUnsafe503FromDefaultRetry *bool `json:"excludeUnsafe503FromDefaultRetry,omitempty"`
}

// EnvVar is one istiod environment variable: a literal value, or a key of
// a Secret in istiod's namespace (exactly one of value and valueFrom).
//
// +kubebuilder:validation:XValidation:rule="!(self.name in ['PILOT_TRACE_SAMPLING', 'PILOT_CERT_PROVIDER', 'CLUSTER_ID', 'DEFAULT_WORKLOAD_CERT_TTL', 'CITADEL_SELF_SIGNED_CA_CERT_TTL', 'CITADEL_SELF_SIGNED_ROOT_CERT_CHECK_INTERVAL', 'PILOT_JWT_PUB_KEY_REFRESH_INTERVAL', 'ENABLE_ENHANCED_RESOURCE_SCOPING', 'ENABLE_DEFERRED_CLUSTER_CREATION', 'ENABLE_DEFERRED_STATS_CREATION', 'ENABLE_ENHANCED_DESTINATIONRULE_MERGE', 'ENABLE_INBOUND_RETRY_POLICY', 'EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY'])",messageExpression="'env ' + self.name + ' is set by a typed field of spec.istiod or spec.tracing; set it there'"
// +kubebuilder:validation:XValidation:rule="has(self.value) != has(self.valueFrom)",messageExpression="'env ' + self.name + ' must set exactly one of value, valueFrom'"
type EnvVar struct {
	// name of the variable. Names the pinned istiod does not read are
	// written as given and reported in the Ready condition's message.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_]*$`
	Name string `json:"name"`
	// value of the variable; an empty value is written value: "".
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Value string `json:"value,omitempty"`
	// valueFrom sources the value from a Secret, for example the token an
	// OpenTelemetry provider's header names with envName. The entry is written
	// on istiod as a secretKeyRef: the kubelet reads the Secret when it starts
	// istiod's pods; the operator has no access to Secrets and never reads
	// it. A missing Secret or key stops istiod's new pods
	// (CreateContainerConfigError) while the old ones keep running.
	// +optional
	ValueFrom *EnvVarSource `json:"valueFrom,omitempty"`
}

// EnvVarSource is where an istiod environment variable's value comes from.
type EnvVarSource struct {
	// secretKeyRef selects a key of a Secret in istiod's namespace.
	// +required
	SecretKeyRef *SecretKeySelector `json:"secretKeyRef"`
}

// SecretKeySelector selects a key of a Secret in istiod's namespace.
type SecretKeySelector struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
	// key of the Secret's data.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key"`
}

// Dataplane is the data plane a namespace joins.
// +kubebuilder:validation:Enum=Sidecar;Ambient;Disabled
type Dataplane string

const (
	// DataplaneSidecar injects sidecars into new pods.
	DataplaneSidecar Dataplane = "Sidecar"
	// DataplaneAmbient enrols pods in the ambient data plane.
	DataplaneAmbient Dataplane = "Ambient"
	// DataplaneDisabled keeps the namespace out of the mesh.
	DataplaneDisabled Dataplane = "Disabled"
)

// SidecarLabel is how sidecar injection is requested.
// +kubebuilder:validation:Enum=Revision;InjectionLabel
type SidecarLabel string

const (
	// SidecarLabelRevision labels istio.io/rev=<revision or "default">.
	SidecarLabelRevision SidecarLabel = "Revision"
	// SidecarLabelInjection labels istio-injection=enabled.
	SidecarLabelInjection SidecarLabel = "InjectionLabel"
)

// NamespaceRule labels the namespaces it selects.
//
// +kubebuilder:validation:XValidation:rule="has(self.names) != has(self.selector)",message="set exactly one of names or selector"
// +kubebuilder:validation:XValidation:rule="!has(self.waypoint) || self.dataplane == 'Ambient'",message="waypoint is only allowed with dataplane Ambient"
// +kubebuilder:validation:XValidation:rule="!has(self.sidecarLabel) || self.dataplane == 'Sidecar'",message="sidecarLabel is only allowed with dataplane Sidecar"
type NamespaceRule struct {
	// names lists namespaces by name.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=128
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Names []string `json:"names,omitempty"`

	// selector selects namespaces by label.
	// +optional
	Selector *LabelSelector `json:"selector,omitempty"`

	// dataplane: Sidecar labels for sidecar injection (see sidecarLabel);
	// Ambient labels istio.io/dataplane-mode=ambient; Disabled labels
	// istio-injection=disabled.
	// +required
	Dataplane Dataplane `json:"dataplane"`

	// sidecarLabel, with Sidecar: Revision (the default) labels
	// istio.io/rev=<revision, or "default">; InjectionLabel labels
	// istio-injection=enabled (default revision only).
	// +optional
	SidecarLabel SidecarLabel `json:"sidecarLabel,omitempty"`

	// waypoint, with Ambient, routes the namespace's traffic through a
	// waypoint proxy (istio.io/use-waypoint, istio.io/use-waypoint-namespace).
	// +optional
	Waypoint *Waypoint `json:"waypoint,omitempty"`
}

// Waypoint names a waypoint proxy (a Gateway of class istio-waypoint).
type Waypoint struct {
	// name of the waypoint Gateway.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// namespace of the waypoint. Default: the labelled namespace itself.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace,omitempty"`
}

// MeshSettingsStatus is the observed state of a MeshSettings.
type MeshSettingsStatus struct {
	// observedGeneration is the metadata.generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions follow kstatus: Ready summarises; Reconciling and Stalled
	// are present only while True; MeshConfigApplied, IstiodEnvApplied and
	// NamespacesLabeled report each target; ProxiesUpToDate reports proxies
	// to restart and never changes Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// meshConfig reports the mesh ConfigMap written.
	// +optional
	MeshConfig *MeshConfigStatus `json:"meshConfig,omitempty"`

	// istiod reports the istiod Deployment.
	// +optional
	Istiod *IstiodStatus `json:"istiod,omitempty"`

	// namespaces reports the namespace labels.
	// +optional
	Namespaces *NamespacesStatus `json:"namespaces,omitempty"`

	// ignoredSettings lists settings not written because the running istiod
	// does not read them.
	// +optional
	// +listType=atomic
	IgnoredSettings []IgnoredSetting `json:"ignoredSettings,omitempty"`

	// proxies reports the Envoy proxies (injected sidecars, injected
	// gateways, waypoints) of this revision that still run the settings of
	// before the last change that reaches a proxy only in a new pod, or
	// whose injected revision their namespace no longer selects. Set once
	// the controller has applied the spec and looked at the pods.
	// +optional
	Proxies *ProxiesStatus `json:"proxies,omitempty"`
}

// ProxiesStatus reports proxies that need their pod created again to pick up
// the settings applied.
type ProxiesStatus struct {
	// restartRequiredSince is when the operator applied the last change that
	// reaches a proxy only when its pod is created again. Proxies of pods
	// created before it are pending. It stays once they are replaced
	// (pending 0) and moves on with the next such change.
	// +optional
	RestartRequiredSince *metav1.Time `json:"restartRequiredSince,omitempty"`

	// changes lists what that change was: the mesh paths whose new value a
	// running proxy does not see (defaultConfig.drainDuration, say), sorted.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=256
	Changes []string `json:"changes,omitempty"`

	// pending is the number of proxies to restart: those created before
	// restartRequiredSince, plus those whose injected revision is no longer
	// the one their namespace selects. Pods enrolled in ambient (ztunnel)
	// are not counted: they carry no defaultConfig.
	// +kubebuilder:validation:Minimum=0
	Pending int32 `json:"pending"`

	// namespaces lists the namespaces holding pending proxies, the largest
	// count first (then by name), at most 20.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=20
	Namespaces []PendingNamespace `json:"namespaces,omitempty"`

	// restarting lists, with proxyRestart RolloutRestart, the Deployments
	// the operator restarted for restartRequiredSince and waits for until
	// each has rolled out (every replica updated and available), as
	// namespace/name, sorted. At most two roll at a time; each Deployment is
	// restarted at most once per change (annotation
	// mesh.meshsettings.io/restarted-for on the Deployment).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=317
	Restarting []string `json:"restarting,omitempty"`
}

// PendingNamespace is the pending proxies of one namespace.
type PendingNamespace struct {
	// namespace holding the proxies.
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
	// pending is the number of pending proxies in the namespace.
	// +kubebuilder:validation:Minimum=0
	Pending int32 `json:"pending"`
	// workloads owning them, as Kind/name: Deployment/<name> for a pod of a
	// ReplicaSet that carries the pod-template-hash label (the Deployment's
	// name is the ReplicaSet's without that suffix), else the owner's kind
	// and name (StatefulSet/db, DaemonSet/x), or Pod/<name> for a bare pod.
	// The most pending first (then by name), at most 10.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	// +kubebuilder:validation:items:MaxLength=317
	Workloads []string `json:"workloads,omitempty"`
}

// MeshConfigStatus reports the mesh ConfigMap.
type MeshConfigStatus struct {
	// configMapName is the ConfigMap written.
	ConfigMapName string `json:"configMapName,omitempty"`
	// hash is a SHA-256 of the mesh document written.
	Hash string `json:"hash,omitempty"`
	// baseline is, with configMapOwnership Own, the mesh document the
	// ConfigMap returns to when the MeshSettings is deleted: the document
	// found when the operator took the ConfigMap over (what Helm derived,
	// meshId and the like), or Istio's chart defaults for the revision. A
	// deleted ConfigMap is recreated from it.
	// +optional
	Baseline string `json:"baseline,omitempty"`
}

// IstiodStatus reports the istiod Deployment.
type IstiodStatus struct {
	// deploymentName is the Deployment whose environment is written.
	DeploymentName string `json:"deploymentName,omitempty"`
	// version is istiod's version, from the discovery container's image tag.
	// +optional
	Version string `json:"version,omitempty"`
	// release is the Istio release whose MeshConfig the settings are
	// checked against (from spec.target.istiodVersion, else the image tag).
	// +optional
	Release string `json:"release,omitempty"`
	// releaseSource says where release comes from: IstiodVersion
	// (spec.target.istiodVersion), ImageTag, or Assumed (the tag names no
	// release: the newest release known is assumed).
	// +optional
	ReleaseSource string `json:"releaseSource,omitempty"`
}

// NamespacesStatus reports the namespace labels.
type NamespacesStatus struct {
	// selected is the number of namespaces the rules select.
	Selected int32 `json:"selected"`
	// labeled is the number of selected namespaces carrying all their labels.
	Labeled int32 `json:"labeled"`
	// conflicts lists labels another manager owns with a different value;
	// the operator does not overwrite them.
	// +optional
	// +listType=atomic
	Conflicts []LabelConflict `json:"conflicts,omitempty"`
}

// LabelConflict is a label the operator wants but another manager owns.
type LabelConflict struct {
	// namespace holding the label.
	Namespace string `json:"namespace"`
	// label key.
	Label string `json:"label"`
	// want is the value the operator would write; empty when the operator
	// needs the label absent (it forbids the operator's labels).
	Want string `json:"want"`
	// have is the value found.
	Have string `json:"have"`
	// manager owning the label, when known.
	// +optional
	Manager string `json:"manager,omitempty"`
	// message explains the conflict.
	// +optional
	Message string `json:"message,omitempty"`
}

// IgnoredSetting is a setting skipped for the running Istio version.
type IgnoredSetting struct {
	// field is the spec path of the setting.
	Field string `json:"field"`
	// name is the environment variable or mesh key it would have written.
	Name string `json:"name"`
	// reason explains why it is skipped.
	Reason string `json:"reason"`
}

// MeshSettings turns one typed resource into Istio's mesh-wide configuration:
// the mesh ConfigMap, istiod's environment and namespace labels.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mset,categories=istio-io
// +kubebuilder:validation:XValidation:rule="(has(self.spec) && has(self.spec.revision) && self.spec.revision.size() > 0) ? (has(oldSelf.spec) && has(oldSelf.spec.revision) && oldSelf.spec.revision == self.spec.revision) : !(has(oldSelf.spec) && has(oldSelf.spec.revision) && oldSelf.spec.revision.size() > 0)",message="revision is immutable",fieldPath=".spec.revision"
// +kubebuilder:validation:XValidation:rule="(has(self.spec) && has(self.spec.target) && has(self.spec.target.configMapName) ? self.spec.target.configMapName : \"\") == (has(oldSelf.spec) && has(oldSelf.spec.target) && has(oldSelf.spec.target.configMapName) ? oldSelf.spec.target.configMapName : \"\") && (has(self.spec) && has(self.spec.target) && has(self.spec.target.istiodDeploymentName) ? self.spec.target.istiodDeploymentName : \"\") == (has(oldSelf.spec) && has(oldSelf.spec.target) && has(oldSelf.spec.target.istiodDeploymentName) ? oldSelf.spec.target.istiodDeploymentName : \"\") && (has(self.spec) && has(self.spec.target) && has(self.spec.target.istiodContainerName) ? self.spec.target.istiodContainerName : \"\") == (has(oldSelf.spec) && has(oldSelf.spec.target) && has(oldSelf.spec.target.istiodContainerName) ? oldSelf.spec.target.istiodContainerName : \"\")",message="target is immutable: configMapName, istiodDeploymentName and istiodContainerName cannot be added, changed or removed after creation (other targets get a new MeshSettings)",fieldPath=".spec.target"
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.spec.revision`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Outbound",type=string,JSONPath=`.spec.outboundTrafficPolicy.mode`
// +kubebuilder:printcolumn:name="Pending",type=integer,JSONPath=`.status.proxies.pending`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="ConfigMap",type=string,JSONPath=`.status.meshConfig.configMapName`,priority=1
// +kubebuilder:printcolumn:name="Istiod",type=string,JSONPath=`.status.istiod.version`,priority=1
// +kubebuilder:printcolumn:name="Labeled",type=integer,JSONPath=`.status.namespaces.labeled`,priority=1
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
type MeshSettings struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec MeshSettingsSpec `json:"spec,omitempty"`
	// +optional
	Status MeshSettingsStatus `json:"status,omitempty"`
}

// MeshSettingsList is a list of MeshSettings.
//
// +kubebuilder:object:root=true
type MeshSettingsList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MeshSettings `json:"items"`
}
