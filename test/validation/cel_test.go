package validation

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

// The tables below follow gateway-api's tests/cel: each rule gets a table of
// cases that mutate a valid MeshSettings, and each case lists the error
// substrings the API server must return (none: the object is accepted).

// celCase is one row of a rule's table. With update set, the object built by
// mutate must be created, then update is applied and the Update is judged.
type celCase struct {
	name       string
	mutate     func(*meshv1alpha1.MeshSettings)
	update     func(*meshv1alpha1.MeshSettings)
	wantErrors []string
}

// celTable turns a table into one spec per row.
func celTable(cases []celCase) {
	for _, tc := range cases {
		It(tc.name, func() { validateCEL(tc) })
	}
}

func validateCEL(tc celCase) {
	GinkgoHelper()
	ns := newNamespace("cel")
	obj := &meshv1alpha1.MeshSettings{
		ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: ns},
	}
	if tc.mutate != nil {
		tc.mutate(obj)
	}
	err := k8sClient.Create(ctx, obj)
	if tc.update != nil {
		Expect(err).NotTo(HaveOccurred(), "creating the object to update")
		tc.update(obj)
		err = k8sClient.Update(ctx, obj)
	}
	expectErrors(err, tc.wantErrors)

	key := client.ObjectKeyFromObject(obj)
	if len(tc.wantErrors) > 0 && tc.update == nil {
		By("creating nothing")
		Expect(apierrors.IsNotFound(k8sClient.Get(ctx, key, &meshv1alpha1.MeshSettings{}))).To(BeTrue())
		return
	}
	Expect(k8sClient.Delete(ctx, obj)).To(Succeed())
}

func expectErrors(err error, wantErrors []string) {
	GinkgoHelper()
	if len(wantErrors) == 0 {
		Expect(err).NotTo(HaveOccurred())
		return
	}
	Expect(err).To(HaveOccurred(), "want errors %q", wantErrors)
	Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid error, got %v", err)
	for _, want := range wantErrors {
		Expect(err.Error()).To(ContainSubstring(want))
	}
}

// ---- builders -------------------------------------------------------------

func ptrTo[T any](v T) *T { return &v }

// dur parses a Go duration; metav1.Duration sends it as Duration.String().
func dur(s string) *metav1.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return &metav1.Duration{Duration: d}
}

func endpoint(service string, port int32) meshv1alpha1.Endpoint {
	return meshv1alpha1.Endpoint{Service: service, Port: port}
}

func zipkinProvider(name string) meshv1alpha1.TracingProvider {
	return meshv1alpha1.TracingProvider{Name: name, Zipkin: &meshv1alpha1.ZipkinProvider{
		Endpoint: endpoint("zipkin.istio-system.svc.cluster.local", 9411)}}
}

func otelProvider(name string) meshv1alpha1.TracingProvider {
	return meshv1alpha1.TracingProvider{Name: name, OpenTelemetry: &meshv1alpha1.OpenTelemetryProvider{
		Endpoint: endpoint("otel-collector.observability.svc.cluster.local", 4317)}}
}

func fileLogProvider(name string) meshv1alpha1.AccessLogProvider {
	return meshv1alpha1.AccessLogProvider{Name: name, EnvoyFileAccessLog: &meshv1alpha1.EnvoyFileAccessLogProvider{Path: "/dev/stdout"}}
}

func otelAlsProvider(name string) meshv1alpha1.AccessLogProvider {
	return meshv1alpha1.AccessLogProvider{Name: name, EnvoyOtelAls: &meshv1alpha1.EnvoyOtelAlsProvider{
		Endpoint: endpoint("otel-collector.observability.svc.cluster.local", 4317)}}
}

func authzHTTPProvider(name string) meshv1alpha1.AuthorizationProvider {
	return meshv1alpha1.AuthorizationProvider{Name: name, EnvoyExtAuthzHTTP: &meshv1alpha1.EnvoyExtAuthzHTTPProvider{
		Endpoint: endpoint("ext-authz.auth.svc.cluster.local", 8000)}}
}

func authzGRPCProvider(name string) meshv1alpha1.AuthorizationProvider {
	return meshv1alpha1.AuthorizationProvider{Name: name, EnvoyExtAuthzGRPC: &meshv1alpha1.EnvoyExtAuthzGRPCProvider{
		Endpoint: endpoint("ext-authz.auth.svc.cluster.local", 9000)}}
}

func withTracing(providers ...meshv1alpha1.TracingProvider) func(*meshv1alpha1.MeshSettings) {
	return func(m *meshv1alpha1.MeshSettings) {
		m.Spec.Tracing = &meshv1alpha1.Tracing{Providers: providers}
	}
}

func withNamespaceRule(r meshv1alpha1.NamespaceRule) func(*meshv1alpha1.MeshSettings) {
	return func(m *meshv1alpha1.MeshSettings) { m.Spec.Namespaces = []meshv1alpha1.NamespaceRule{r} }
}

func setRevision(rev string) func(*meshv1alpha1.MeshSettings) {
	return func(m *meshv1alpha1.MeshSettings) { m.Spec.Revision = rev }
}

const (
	msgRevisionImmutable = "revision is immutable"
	msgTargetImmutable   = "target is immutable"
	msgUniqueProviders   = "provider names must be unique across tracing, accessLogging and authorization providers"
	msgRetryAttemptsZero = "with attempts 0 (retries disabled) retryOn, perTryTimeout and retryRemoteLocalities must not be set"
	msgServiceFormat     = "service must be a hostname (FQDN), an IP or <namespace>/<hostname>"
	msgTimeout           = "timeout must be a duration (like 500ms or 10s) of at least 1ms"
	msgReservedMetadata  = "metadata keys EXIT_ON_ZERO_ACTIVE_CONNECTIONS, MINIMUM_DRAIN_DURATION and ISTIO_META_DNS_CAPTURE " +
		"are set by drain.termination and proxy.dnsCapture"
	msgNamesXorSelector = "set exactly one of names or selector"
)

// ---- tables ---------------------------------------------------------------

var _ = Describe("CEL rules", func() {
	Describe("spec.revision is immutable", func() {
		celTable([]celCase{
			{
				name:       "changing the revision is rejected",
				mutate:     setRevision("canary"),
				update:     setRevision("stable"),
				wantErrors: []string{"spec.revision", msgRevisionImmutable},
			},
			{
				name:       "adding a revision is rejected",
				update:     setRevision("canary"),
				wantErrors: []string{"spec.revision", msgRevisionImmutable},
			},
			{
				name:       "removing the revision is rejected",
				mutate:     setRevision("canary"),
				update:     setRevision(""),
				wantErrors: []string{"spec.revision", msgRevisionImmutable},
			},
			{
				name:   "an update keeping the revision is accepted",
				mutate: setRevision("canary"),
				update: func(m *meshv1alpha1.MeshSettings) {
					m.Spec.OutboundTrafficPolicy = &meshv1alpha1.OutboundTrafficPolicy{Mode: meshv1alpha1.OutboundAllowAny}
				},
			},
			{
				name:   "an unchanged update is accepted",
				mutate: setRevision("1-28"),
				update: func(*meshv1alpha1.MeshSettings) {},
			},
			{
				name: "an update of the default revision that keeps it is accepted",
				update: func(m *meshv1alpha1.MeshSettings) {
					m.Spec.Tracing = &meshv1alpha1.Tracing{SamplingPercentage: "1"}
				},
			},
		})
	})

	Describe("spec.target is immutable", func() {
		target := func(t *meshv1alpha1.Target) func(*meshv1alpha1.MeshSettings) {
			return func(m *meshv1alpha1.MeshSettings) { m.Spec.Target = t }
		}
		celTable([]celCase{
			{
				name:       "changing the ConfigMap name is rejected",
				mutate:     target(&meshv1alpha1.Target{ConfigMapName: "istio"}),
				update:     target(&meshv1alpha1.Target{ConfigMapName: "istio-mesh"}),
				wantErrors: []string{"spec.target", msgTargetImmutable},
			},
			{
				name:       "changing the istiod Deployment name is rejected",
				mutate:     target(&meshv1alpha1.Target{IstiodDeploymentName: "istiod"}),
				update:     target(&meshv1alpha1.Target{IstiodDeploymentName: "istiod-blue"}),
				wantErrors: []string{"spec.target", msgTargetImmutable},
			},
			{
				name:       "changing the container name is rejected",
				mutate:     target(&meshv1alpha1.Target{IstiodContainerName: "discovery"}),
				update:     target(&meshv1alpha1.Target{IstiodContainerName: "pilot"}),
				wantErrors: []string{"spec.target", msgTargetImmutable},
			},
			{
				name:       "adding a target is rejected",
				update:     target(&meshv1alpha1.Target{ConfigMapName: "istio-mesh"}),
				wantErrors: []string{"spec.target", msgTargetImmutable},
			},
			{
				name:       "removing a target is rejected",
				mutate:     target(&meshv1alpha1.Target{IstiodDeploymentName: "istiod-blue"}),
				update:     target(nil),
				wantErrors: []string{"spec.target", msgTargetImmutable},
			},
			{
				name:   "an update keeping the target is accepted",
				mutate: target(&meshv1alpha1.Target{ConfigMapName: "istio-mesh", IstiodDeploymentName: "istiod-blue"}),
				update: func(m *meshv1alpha1.MeshSettings) {
					m.Spec.OutboundTrafficPolicy = &meshv1alpha1.OutboundTrafficPolicy{Mode: meshv1alpha1.OutboundAllowAny}
				},
			},
			{
				name:   "an empty target and no target are the same targets",
				mutate: target(&meshv1alpha1.Target{}),
				update: target(nil),
			},
			{
				name:   "an update without a target that keeps none is accepted",
				update: func(m *meshv1alpha1.MeshSettings) { m.Spec.Tracing = &meshv1alpha1.Tracing{SamplingPercentage: "1"} },
			},
		})
	})

	Describe("target.istiodVersion is an Istio release, and may change (istiod upgrades)", func() {
		version := func(v string) func(*meshv1alpha1.MeshSettings) {
			return func(m *meshv1alpha1.MeshSettings) { m.Spec.Target = &meshv1alpha1.Target{IstiodVersion: v} }
		}
		celTable([]celCase{
			{name: "1.28.1 is accepted", mutate: version("1.28.1")},
			{name: "1.28 is accepted", mutate: version("1.28")},
			{name: "v1.32.0 is accepted", mutate: version("v1.32.0")},
			{name: "latest is rejected", mutate: version("latest"),
				wantErrors: []string{"spec.target.istiodVersion", "istiodVersion must be an Istio release like 1.28 or 1.28.1, got latest"}},
			{name: "1.28.1-distroless (an image tag, not a release) is rejected", mutate: version("1.28.1-distroless"),
				wantErrors: []string{"spec.target.istiodVersion", "got 1.28.1-distroless"}},
			{name: "changing it is accepted: spec.target's immutability covers the names only", mutate: version("1.28.1"),
				update: version("1.29.0")},
		})
	})

	Describe("configMapOwnership is Own, Merge or empty, and may change", func() {
		setOwnership := func(o meshv1alpha1.ConfigMapOwnership) func(*meshv1alpha1.MeshSettings) {
			return func(m *meshv1alpha1.MeshSettings) { m.Spec.ConfigMapOwnership = o }
		}
		celTable([]celCase{
			{name: "Own is accepted", mutate: setOwnership(meshv1alpha1.ConfigMapOwn)},
			{name: "Merge is accepted", mutate: setOwnership(meshv1alpha1.ConfigMapMerge)},
			{name: "empty (Merge) is accepted and stays empty: no server-side default", mutate: setOwnership(""),
				update: func(m *meshv1alpha1.MeshSettings) {
					Expect(m.Spec.ConfigMapOwnership).To(BeEmpty())
				}},
			{name: "a lower-case value is rejected", mutate: setOwnership("own"),
				wantErrors: []string{`spec.configMapOwnership: Unsupported value: "own"`, `"Own"`, `"Merge"`}},
			{name: "switching Merge to Own (the migration) is accepted", mutate: setOwnership(meshv1alpha1.ConfigMapMerge),
				update: setOwnership(meshv1alpha1.ConfigMapOwn)},
		})
	})

	Describe("namespaces[].sidecarLabel InjectionLabel only for the default revision", func() {
		rule := func(label meshv1alpha1.SidecarLabel) meshv1alpha1.NamespaceRule {
			return meshv1alpha1.NamespaceRule{Names: []string{"bookinfo"}, Dataplane: meshv1alpha1.DataplaneSidecar, SidecarLabel: label}
		}
		celTable([]celCase{
			{name: "InjectionLabel on the default revision is accepted", mutate: withNamespaceRule(rule(meshv1alpha1.SidecarLabelInjection))},
			{name: "Revision on a revision is accepted", mutate: func(m *meshv1alpha1.MeshSettings) {
				m.Spec.Revision = "canary"
				withNamespaceRule(rule(meshv1alpha1.SidecarLabelRevision))(m)
			}},
			{name: "no sidecarLabel on a revision is accepted", mutate: func(m *meshv1alpha1.MeshSettings) {
				m.Spec.Revision = "canary"
				withNamespaceRule(rule(""))(m)
			}},
			{
				name: "InjectionLabel on a revision is rejected",
				mutate: func(m *meshv1alpha1.MeshSettings) {
					m.Spec.Revision = "canary"
					m.Spec.Namespaces = []meshv1alpha1.NamespaceRule{
						rule(meshv1alpha1.SidecarLabelRevision),
						{Names: []string{"legacy"}, Dataplane: meshv1alpha1.DataplaneSidecar, SidecarLabel: meshv1alpha1.SidecarLabelInjection},
					}
				},
				wantErrors: []string{"spec.namespaces",
					"namespaces[].sidecarLabel InjectionLabel selects the default revision; with spec.revision set use sidecarLabel Revision"},
			},
		})
	})

	Describe("provider names are unique across tracing, accessLogging and authorization", func() {
		celTable([]celCase{
			{name: "distinct names are accepted", mutate: func(m *meshv1alpha1.MeshSettings) {
				m.Spec.Tracing = &meshv1alpha1.Tracing{Providers: []meshv1alpha1.TracingProvider{otelProvider("otel-tracing")}}
				m.Spec.AccessLogging = &meshv1alpha1.AccessLogging{Providers: []meshv1alpha1.AccessLogProvider{otelAlsProvider("otel-logs")}}
				m.Spec.Authorization = &meshv1alpha1.Authorization{Providers: []meshv1alpha1.AuthorizationProvider{authzGRPCProvider("opa")}}
			}},
			{
				name: "tracing and accessLogging sharing a name is rejected",
				mutate: func(m *meshv1alpha1.MeshSettings) {
					m.Spec.Tracing = &meshv1alpha1.Tracing{Providers: []meshv1alpha1.TracingProvider{otelProvider("otel")}}
					m.Spec.AccessLogging = &meshv1alpha1.AccessLogging{Providers: []meshv1alpha1.AccessLogProvider{otelAlsProvider("otel")}}
				},
				wantErrors: []string{msgUniqueProviders},
			},
			{
				name: "tracing and authorization sharing a name is rejected",
				mutate: func(m *meshv1alpha1.MeshSettings) {
					m.Spec.Tracing = &meshv1alpha1.Tracing{Providers: []meshv1alpha1.TracingProvider{zipkinProvider("zipkin"), otelProvider("backend")}}
					m.Spec.Authorization = &meshv1alpha1.Authorization{Providers: []meshv1alpha1.AuthorizationProvider{authzHTTPProvider("backend")}}
				},
				wantErrors: []string{msgUniqueProviders},
			},
			{
				name: "accessLogging and authorization sharing a name is rejected",
				mutate: func(m *meshv1alpha1.MeshSettings) {
					m.Spec.AccessLogging = &meshv1alpha1.AccessLogging{Providers: []meshv1alpha1.AccessLogProvider{fileLogProvider("backend")}}
					m.Spec.Authorization = &meshv1alpha1.Authorization{Providers: []meshv1alpha1.AuthorizationProvider{authzGRPCProvider("opa"), authzHTTPProvider("backend")}}
				},
				wantErrors: []string{msgUniqueProviders},
			},
			{
				name:       "a name repeated within tracing is rejected",
				mutate:     withTracing(zipkinProvider("tracer"), otelProvider("tracer")),
				wantErrors: []string{"spec.tracing.providers[1]", "Duplicate value"},
			},
		})
	})

	Describe("tracing.defaultProviders name declared providers", func() {
		celTable([]celCase{
			{name: "a declared provider is accepted", mutate: func(m *meshv1alpha1.MeshSettings) {
				m.Spec.Tracing = &meshv1alpha1.Tracing{
					Providers:        []meshv1alpha1.TracingProvider{zipkinProvider("zipkin"), otelProvider("otel")},
					DefaultProviders: []string{"otel", "zipkin"},
				}
			}},
			{
				name: "an undeclared provider is rejected",
				mutate: func(m *meshv1alpha1.MeshSettings) {
					m.Spec.Tracing = &meshv1alpha1.Tracing{
						Providers:        []meshv1alpha1.TracingProvider{zipkinProvider("zipkin")},
						DefaultProviders: []string{"zipkin", "jaeger"},
					}
				},
				wantErrors: []string{"spec.tracing.defaultProviders", "defaultProviders must name providers declared in tracing.providers"},
			},
			{
				name: "a default without any provider is rejected",
				mutate: func(m *meshv1alpha1.MeshSettings) {
					m.Spec.Tracing = &meshv1alpha1.Tracing{DefaultProviders: []string{"zipkin"}}
				},
				wantErrors: []string{"spec.tracing.defaultProviders", "defaultProviders must name providers declared in tracing.providers"},
			},
			{
				name: "an authorization provider as tracing default is rejected",
				mutate: func(m *meshv1alpha1.MeshSettings) {
					m.Spec.Tracing = &meshv1alpha1.Tracing{DefaultProviders: []string{"opa"}}
					m.Spec.Authorization = &meshv1alpha1.Authorization{Providers: []meshv1alpha1.AuthorizationProvider{authzGRPCProvider("opa")}}
				},
				wantErrors: []string{"defaultProviders must name providers declared in tracing.providers"},
			},
		})
	})

	Describe("tracing.samplingPercentage is a decimal from 0 to 100", func() {
		sampling := func(s string) func(*meshv1alpha1.MeshSettings) {
			return func(m *meshv1alpha1.MeshSettings) { m.Spec.Tracing = &meshv1alpha1.Tracing{SamplingPercentage: s} }
		}
		var cases []celCase
		for _, ok := range []string{"0", "100", "0.5", "1", "99.99", "100.0", "0.001"} {
			cases = append(cases, celCase{name: fmt.Sprintf("%q is accepted", ok), mutate: sampling(ok)})
		}
		for _, bad := range []string{"101", "-1", "abc", "100.5", "1e2", ".5", "50%", "1,5"} {
			cases = append(cases, celCase{
				name:       fmt.Sprintf("%q is rejected", bad),
				mutate:     sampling(bad),
				wantErrors: []string{"spec.tracing.samplingPercentage", "samplingPercentage must be a decimal from 0 to 100, got " + bad},
			})
		}
		celTable(cases)
	})

	Describe("a tracing provider sets exactly one kind", func() {
		const msg = "must set exactly one of zipkin, opentelemetry, datadog, skywalking"
		ep := endpoint("collector.observability.svc.cluster.local", 9411)
		celTable([]celCase{
			{name: "zipkin alone is accepted", mutate: withTracing(zipkinProvider("t"))},
			{name: "opentelemetry alone is accepted", mutate: withTracing(otelProvider("t"))},
			{name: "datadog alone is accepted", mutate: withTracing(meshv1alpha1.TracingProvider{Name: "t", Datadog: &meshv1alpha1.DatadogProvider{Endpoint: ep}})},
			{name: "skywalking alone is accepted",
				mutate: withTracing(meshv1alpha1.TracingProvider{Name: "t", SkyWalking: &meshv1alpha1.SkyWalkingProvider{Endpoint: ep}})},
			{
				name:       "no kind is rejected",
				mutate:     withTracing(meshv1alpha1.TracingProvider{Name: "empty"}),
				wantErrors: []string{"spec.tracing.providers[0]", "tracing provider empty " + msg},
			},
			{
				name: "two kinds are rejected",
				mutate: withTracing(zipkinProvider("ok"), meshv1alpha1.TracingProvider{Name: "both",
					Zipkin:     &meshv1alpha1.ZipkinProvider{Endpoint: ep},
					SkyWalking: &meshv1alpha1.SkyWalkingProvider{Endpoint: ep}}),
				wantErrors: []string{"spec.tracing.providers[1]", "tracing provider both " + msg},
			},
			{
				name: "all four kinds are rejected",
				mutate: withTracing(meshv1alpha1.TracingProvider{Name: "all",
					Zipkin:        &meshv1alpha1.ZipkinProvider{Endpoint: ep},
					OpenTelemetry: &meshv1alpha1.OpenTelemetryProvider{Endpoint: ep},
					Datadog:       &meshv1alpha1.DatadogProvider{Endpoint: ep},
					SkyWalking:    &meshv1alpha1.SkyWalkingProvider{Endpoint: ep}}),
				wantErrors: []string{"tracing provider all " + msg},
			},
		})
	})

	Describe("a provider service is an FQDN, an IP or namespace/host", func() {
		service := func(s string) func(*meshv1alpha1.MeshSettings) {
			p := zipkinProvider("zipkin")
			p.Zipkin.Service = s
			return withTracing(p)
		}
		var cases []celCase
		for _, ok := range []string{
			"zipkin.istio-system.svc.cluster.local",
			"zipkin",
			"Zipkin.Example.COM",
			"10.96.0.15",
			"2001:db8::1",
			"::1",
			"istio-system/zipkin.istio-system.svc.cluster.local",
			"observability/collector.example.com",
		} {
			cases = append(cases, celCase{name: fmt.Sprintf("%q is accepted", ok), mutate: service(ok)})
		}
		for _, bad := range []string{
			"zipkin_collector.istio-system",
			"http://zipkin.istio-system:9411",
			"zipkin.istio-system:9411",
			"Istio-System/zipkin",
			"istio-system/",
			"-zipkin.example.com",
			"zipkin.example.com.",
			"*.example.com",
			"a/b/c",
		} {
			cases = append(cases, celCase{
				name:       fmt.Sprintf("%q is rejected", bad),
				mutate:     service(bad),
				wantErrors: []string{"spec.tracing.providers[0].zipkin.service", msgServiceFormat + ", got " + bad},
			})
		}
		celTable(cases)
	})

	Describe("a provider port is 1-65535", func() {
		port := func(p int32) func(*meshv1alpha1.MeshSettings) {
			return func(m *meshv1alpha1.MeshSettings) {
				a := authzGRPCProvider("opa")
				a.EnvoyExtAuthzGRPC.Port = p
				m.Spec.Authorization = &meshv1alpha1.Authorization{Providers: []meshv1alpha1.AuthorizationProvider{a}}
			}
		}
		celTable([]celCase{
			{name: "port 1 is accepted", mutate: port(1)},
			{name: "port 65535 is accepted", mutate: port(65535)},
			{name: "port 0 is rejected", mutate: port(0),
				wantErrors: []string{"spec.authorization.providers[0].envoyExtAuthzGrpc.port", "should be greater than or equal to 1"}},
			{name: "port 65536 is rejected", mutate: port(65536),
				wantErrors: []string{"spec.authorization.providers[0].envoyExtAuthzGrpc.port", "should be less than or equal to 65535"}},
		})
	})

	Describe("opentelemetry takes grpc or http, not both", func() {
		otel := func(grpc *meshv1alpha1.OpenTelemetryGRPC, http *meshv1alpha1.OpenTelemetryHTTP) func(*meshv1alpha1.MeshSettings) {
			p := otelProvider("otel")
			p.OpenTelemetry.GRPC, p.OpenTelemetry.HTTP = grpc, http
			return withTracing(p)
		}
		celTable([]celCase{
			{name: "neither is accepted (gRPC with defaults)", mutate: otel(nil, nil)},
			{name: "grpc is accepted", mutate: otel(&meshv1alpha1.OpenTelemetryGRPC{}, nil)},
			{name: "http is accepted", mutate: otel(nil, &meshv1alpha1.OpenTelemetryHTTP{Path: "/v1/traces"})},
			{
				name:       "both are rejected",
				mutate:     otel(&meshv1alpha1.OpenTelemetryGRPC{}, &meshv1alpha1.OpenTelemetryHTTP{Path: "/v1/traces"}),
				wantErrors: []string{"spec.tracing.providers[0].opentelemetry", "opentelemetry takes grpc or http, not both"},
			},
		})
	})

	Describe("provider timeouts are durations of at least 1ms", func() {
		otelGRPC := func(d *metav1.Duration) func(*meshv1alpha1.MeshSettings) {
			p := otelProvider("otel")
			p.OpenTelemetry.GRPC = &meshv1alpha1.OpenTelemetryGRPC{Timeout: d}
			return withTracing(p)
		}
		otelHTTP := func(d *metav1.Duration) func(*meshv1alpha1.MeshSettings) {
			p := otelProvider("otel")
			p.OpenTelemetry.HTTP = &meshv1alpha1.OpenTelemetryHTTP{Path: "/v1/traces", Timeout: d}
			return withTracing(p)
		}
		authzHTTP := func(d *metav1.Duration) func(*meshv1alpha1.MeshSettings) {
			return func(m *meshv1alpha1.MeshSettings) {
				a := authzHTTPProvider("ext-authz")
				a.EnvoyExtAuthzHTTP.Timeout = d
				m.Spec.Authorization = &meshv1alpha1.Authorization{Providers: []meshv1alpha1.AuthorizationProvider{a}}
			}
		}
		authzGRPC := func(d *metav1.Duration) func(*meshv1alpha1.MeshSettings) {
			return func(m *meshv1alpha1.MeshSettings) {
				a := authzGRPCProvider("opa")
				a.EnvoyExtAuthzGRPC.Timeout = d
				m.Spec.Authorization = &meshv1alpha1.Authorization{Providers: []meshv1alpha1.AuthorizationProvider{a}}
			}
		}
		celTable([]celCase{
			{name: "opentelemetry grpc 1ms is accepted", mutate: otelGRPC(dur("1ms"))},
			{name: "opentelemetry grpc 10s is accepted", mutate: otelGRPC(dur("10s"))},
			{name: "opentelemetry grpc 999µs is rejected", mutate: otelGRPC(dur("999us")),
				wantErrors: []string{"spec.tracing.providers[0].opentelemetry.grpc.timeout", msgTimeout + ", got 999µs"}},
			{name: "opentelemetry http 1m30s is accepted", mutate: otelHTTP(dur("1m30s"))},
			{name: "opentelemetry http 0s is rejected", mutate: otelHTTP(dur("0s")),
				wantErrors: []string{"spec.tracing.providers[0].opentelemetry.http.timeout", msgTimeout + ", got 0s"}},
			{name: "ext_authz http 600ms is accepted", mutate: authzHTTP(dur("600ms"))},
			{name: "ext_authz http 1.5ms is accepted", mutate: authzHTTP(dur("1.5ms"))},
			{name: "ext_authz http 0.5ms is rejected", mutate: authzHTTP(dur("0.5ms")),
				wantErrors: []string{"spec.authorization.providers[0].envoyExtAuthzHttp.timeout", msgTimeout + ", got 500µs"}},
			{name: "ext_authz grpc 1h is accepted", mutate: authzGRPC(dur("1h"))},
			{name: "ext_authz grpc -1s is rejected", mutate: authzGRPC(dur("-1s")),
				wantErrors: []string{"spec.authorization.providers[0].envoyExtAuthzGrpc.timeout", msgTimeout + ", got -1s"}},
		})
	})

	Describe("an opentelemetry header sets value or envName", func() {
		header := func(h meshv1alpha1.HTTPHeader) func(*meshv1alpha1.MeshSettings) {
			p := otelProvider("otel")
			p.OpenTelemetry.HTTP = &meshv1alpha1.OpenTelemetryHTTP{Path: "/v1/traces", Headers: []meshv1alpha1.HTTPHeader{h}}
			return withTracing(p)
		}
		const msg = "header x-api-key must set exactly one of value, envName"
		celTable([]celCase{
			{name: "value is accepted", mutate: header(meshv1alpha1.HTTPHeader{Name: "x-api-key", Value: ptrTo("secret")})},
			{name: "an empty value is accepted", mutate: header(meshv1alpha1.HTTPHeader{Name: "x-api-key", Value: ptrTo("")})},
			{name: "envName is accepted", mutate: header(meshv1alpha1.HTTPHeader{Name: "x-api-key", EnvName: ptrTo("OTEL_API_KEY")})},
			{name: "both are rejected", mutate: header(meshv1alpha1.HTTPHeader{Name: "x-api-key", Value: ptrTo("secret"), EnvName: ptrTo("OTEL_API_KEY")}),
				wantErrors: []string{"spec.tracing.providers[0].opentelemetry.http.headers[0]", msg}},
			{name: "neither is rejected", mutate: header(meshv1alpha1.HTTPHeader{Name: "x-api-key"}),
				wantErrors: []string{"spec.tracing.providers[0].opentelemetry.http.headers[0]", msg}},
		})
	})

	Describe("accessLogging.defaultProviders name declared providers or envoy", func() {
		const msg = "defaultProviders must name providers declared in accessLogging.providers or the built-in envoy"
		celTable([]celCase{
			{name: "the built-in envoy alone is accepted", mutate: func(m *meshv1alpha1.MeshSettings) {
				m.Spec.AccessLogging = &meshv1alpha1.AccessLogging{DefaultProviders: []string{"envoy"}}
			}},
			{name: "declared providers and envoy are accepted", mutate: func(m *meshv1alpha1.MeshSettings) {
				m.Spec.AccessLogging = &meshv1alpha1.AccessLogging{
					Providers:        []meshv1alpha1.AccessLogProvider{fileLogProvider("stdout-json"), otelAlsProvider("otel-als")},
					DefaultProviders: []string{"envoy", "otel-als", "stdout-json"},
				}
			}},
			{name: "an undeclared provider is rejected", mutate: func(m *meshv1alpha1.MeshSettings) {
				m.Spec.AccessLogging = &meshv1alpha1.AccessLogging{
					Providers:        []meshv1alpha1.AccessLogProvider{fileLogProvider("stdout-json")},
					DefaultProviders: []string{"stackdriver"},
				}
			}, wantErrors: []string{"spec.accessLogging.defaultProviders", msg}},
			{name: "a tracing provider is rejected", mutate: func(m *meshv1alpha1.MeshSettings) {
				withTracing(otelProvider("otel"))(m)
				m.Spec.AccessLogging = &meshv1alpha1.AccessLogging{DefaultProviders: []string{"otel"}}
			}, wantErrors: []string{"spec.accessLogging.defaultProviders", msg}},
		})
	})

	Describe("access log paths are absolute", func() {
		file := func(f string) func(*meshv1alpha1.MeshSettings) {
			return func(m *meshv1alpha1.MeshSettings) { m.Spec.AccessLogging = &meshv1alpha1.AccessLogging{File: ptrTo(f)} }
		}
		providerPath := func(p string) func(*meshv1alpha1.MeshSettings) {
			return func(m *meshv1alpha1.MeshSettings) {
				l := fileLogProvider("file")
				l.EnvoyFileAccessLog.Path = p
				m.Spec.AccessLogging = &meshv1alpha1.AccessLogging{Providers: []meshv1alpha1.AccessLogProvider{l}}
			}
		}
		celTable([]celCase{
			{name: "file /dev/stdout is accepted", mutate: file("/dev/stdout")},
			{name: "an empty file (no access log) is accepted", mutate: file("")},
			{name: "a relative file is rejected", mutate: file("access.log"),
				wantErrors: []string{"spec.accessLogging.file", "file must be an absolute path, got access.log"}},
			{name: "provider path /var/log/istio/access.log is accepted", mutate: providerPath("/var/log/istio/access.log")},
			{name: "a relative provider path is rejected", mutate: providerPath("./access.log"),
				wantErrors: []string{"spec.accessLogging.providers[0].envoyFileAccessLog.path", "path must be an absolute path, got ./access.log"}},
		})
	})

	Describe("an access log provider sets exactly one kind", func() {
		const msg = "must set exactly one of envoyFileAccessLog, envoyOtelAls"
		providers := func(p ...meshv1alpha1.AccessLogProvider) func(*meshv1alpha1.MeshSettings) {
			return func(m *meshv1alpha1.MeshSettings) { m.Spec.AccessLogging = &meshv1alpha1.AccessLogging{Providers: p} }
		}
		both := fileLogProvider("both")
		both.EnvoyOtelAls = otelAlsProvider("x").EnvoyOtelAls
		celTable([]celCase{
			{name: "envoyFileAccessLog is accepted", mutate: providers(fileLogProvider("file"))},
			{name: "envoyOtelAls is accepted", mutate: providers(otelAlsProvider("otel"))},
			{name: "no kind is rejected", mutate: providers(meshv1alpha1.AccessLogProvider{Name: "empty"}),
				wantErrors: []string{"spec.accessLogging.providers[0]", "access log provider empty " + msg}},
			{name: "both kinds are rejected", mutate: providers(fileLogProvider("file"), both),
				wantErrors: []string{"spec.accessLogging.providers[1]", "access log provider both " + msg}},
		})
	})

	Describe("envoyFileAccessLog takes text or labels", func() {
		file := func(text *string, labels map[string]string) func(*meshv1alpha1.MeshSettings) {
			return func(m *meshv1alpha1.MeshSettings) {
				l := fileLogProvider("file")
				l.EnvoyFileAccessLog.Text, l.EnvoyFileAccessLog.Labels = text, labels
				m.Spec.AccessLogging = &meshv1alpha1.AccessLogging{Providers: []meshv1alpha1.AccessLogProvider{l}}
			}
		}
		labels := map[string]string{"method": "%REQ(:METHOD)%"}
		celTable([]celCase{
			{name: "neither is accepted", mutate: file(nil, nil)},
			{name: "text is accepted", mutate: file(ptrTo("%START_TIME% %REQ(:METHOD)%\n"), nil)},
			{name: "labels are accepted", mutate: file(nil, labels)},
			{name: "both are rejected", mutate: file(ptrTo("%START_TIME%\n"), labels),
				wantErrors: []string{"spec.accessLogging.providers[0].envoyFileAccessLog", "envoyFileAccessLog takes text or labels, not both"}},
		})
	})

	Describe("an authorization provider sets exactly one kind", func() {
		const msg = "must set exactly one of envoyExtAuthzHttp, envoyExtAuthzGrpc"
		providers := func(p ...meshv1alpha1.AuthorizationProvider) func(*meshv1alpha1.MeshSettings) {
			return func(m *meshv1alpha1.MeshSettings) { m.Spec.Authorization = &meshv1alpha1.Authorization{Providers: p} }
		}
		both := authzHTTPProvider("both")
		both.EnvoyExtAuthzGRPC = authzGRPCProvider("x").EnvoyExtAuthzGRPC
		celTable([]celCase{
			{name: "envoyExtAuthzHttp is accepted", mutate: providers(authzHTTPProvider("http"))},
			{name: "envoyExtAuthzGrpc is accepted", mutate: providers(authzGRPCProvider("grpc"))},
			{name: "no kind is rejected", mutate: providers(meshv1alpha1.AuthorizationProvider{Name: "empty"}),
				wantErrors: []string{"spec.authorization.providers[0]", "authorization provider empty " + msg}},
			{name: "both kinds are rejected", mutate: providers(both),
				wantErrors: []string{"spec.authorization.providers[0]", "authorization provider both " + msg}},
		})
	})

	Describe("retryPolicy: attempts 0 disables retries and allows nothing else", func() {
		retry := func(r meshv1alpha1.RetryPolicy) func(*meshv1alpha1.MeshSettings) {
			return func(m *meshv1alpha1.MeshSettings) { m.Spec.RetryPolicy = &r }
		}
		celTable([]celCase{
			{name: "attempts 0 alone is accepted", mutate: retry(meshv1alpha1.RetryPolicy{Attempts: ptrTo[int32](0)})},
			{name: "attempts 3 with every setting is accepted", mutate: retry(meshv1alpha1.RetryPolicy{
				Attempts: ptrTo[int32](3), RetryOn: []meshv1alpha1.RetryOnCondition{"5xx"},
				PerTryTimeout: dur("2s"), RetryRemoteLocalities: ptrTo(true)})},
			{name: "retryOn without attempts is accepted", mutate: retry(meshv1alpha1.RetryPolicy{
				RetryOn: []meshv1alpha1.RetryOnCondition{"connect-failure"}})},
			{name: "attempts 0 with retryOn is rejected", mutate: retry(meshv1alpha1.RetryPolicy{
				Attempts: ptrTo[int32](0), RetryOn: []meshv1alpha1.RetryOnCondition{"5xx"}}),
				wantErrors: []string{"spec.retryPolicy", msgRetryAttemptsZero}},
			{name: "attempts 0 with perTryTimeout is rejected", mutate: retry(meshv1alpha1.RetryPolicy{
				Attempts: ptrTo[int32](0), PerTryTimeout: dur("2s")}),
				wantErrors: []string{"spec.retryPolicy", msgRetryAttemptsZero}},
			{name: "attempts 0 with retryRemoteLocalities false is rejected", mutate: retry(meshv1alpha1.RetryPolicy{
				Attempts: ptrTo[int32](0), RetryRemoteLocalities: ptrTo(false)}),
				wantErrors: []string{"spec.retryPolicy", msgRetryAttemptsZero}},
			{name: "attempts -1 is rejected", mutate: retry(meshv1alpha1.RetryPolicy{Attempts: ptrTo[int32](-1)}),
				wantErrors: []string{"spec.retryPolicy.attempts", "should be greater than or equal to 0"}},
		})
	})

	Describe("retryPolicy.perTryTimeout is a duration of at least 1ms", func() {
		timeout := func(d string) func(*meshv1alpha1.MeshSettings) {
			return func(m *meshv1alpha1.MeshSettings) {
				m.Spec.RetryPolicy = &meshv1alpha1.RetryPolicy{Attempts: ptrTo[int32](2), PerTryTimeout: dur(d)}
			}
		}
		celTable([]celCase{
			{name: "1ms is accepted", mutate: timeout("1ms")},
			{name: "2.5s is accepted", mutate: timeout("2.5s")},
			{name: "999µs is rejected", mutate: timeout("999us"),
				wantErrors: []string{"spec.retryPolicy.perTryTimeout", "perTryTimeout must be a duration (like 500ms or 2s) of at least 1ms, got 999µs"}},
			{name: "0s is rejected", mutate: timeout("0s"),
				wantErrors: []string{"spec.retryPolicy.perTryTimeout", "perTryTimeout must be a duration (like 500ms or 2s) of at least 1ms, got 0s"}},
		})
	})

	Describe("retryPolicy.retryOn holds status codes or known policies", func() {
		retryOn := func(c ...meshv1alpha1.RetryOnCondition) func(*meshv1alpha1.MeshSettings) {
			return func(m *meshv1alpha1.MeshSettings) {
				m.Spec.RetryPolicy = &meshv1alpha1.RetryPolicy{Attempts: ptrTo[int32](2), RetryOn: c}
			}
		}
		cases := []celCase{
			{name: "every documented policy is accepted", mutate: retryOn(
				"5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "retriable-4xx",
				"refused-stream", "retriable-status-codes", "retriable-headers", "envoy-ratelimited",
				"http3-post-connect-failure", "cancelled", "deadline-exceeded", "internal",
				"resource-exhausted", "unavailable")},
			{name: "status codes 100, 503 and 599 are accepted", mutate: retryOn("100", "503", "599")},
		}
		for _, bad := range []string{"600", "099", "5XX", "5xx,reset", "", "retry-on-everything", "50"} {
			cases = append(cases, celCase{
				name:       fmt.Sprintf("%q is rejected", bad),
				mutate:     retryOn("connect-failure", meshv1alpha1.RetryOnCondition(bad)),
				wantErrors: []string{"spec.retryPolicy.retryOn[1]", "unknown retryOn condition " + bad + ": use an HTTP status code or one of 5xx,"},
			})
		}
		celTable(cases)
	})

	Describe("drain durations are whole seconds of at least 1s", func() {
		drain := func(d string) func(*meshv1alpha1.MeshSettings) {
			return func(m *meshv1alpha1.MeshSettings) { m.Spec.Drain = &meshv1alpha1.Drain{DrainDuration: dur(d)} }
		}
		termination := func(s meshv1alpha1.TerminationStrategy, d string) func(*meshv1alpha1.MeshSettings) {
			return func(m *meshv1alpha1.MeshSettings) {
				m.Spec.Drain = &meshv1alpha1.Drain{Termination: &meshv1alpha1.DrainTermination{Strategy: s, Duration: dur(d)}}
			}
		}
		const drainMsg = "drainDuration must be whole seconds (like 45s or 1m30s) of at least 1s, got "
		const termMsg = "termination.duration must be whole seconds (like 45s or 1m30s) of at least 1s, got "
		celTable([]celCase{
			{name: "drainDuration 1s is accepted", mutate: drain("1s")},
			{name: "drainDuration 1m30s is accepted", mutate: drain("1m30s")},
			{name: "drainDuration 1h (sent as 1h0m0s) is accepted", mutate: drain("1h")},
			{name: "drainDuration 1.5s is rejected", mutate: drain("1.5s"),
				wantErrors: []string{"spec.drain.drainDuration", drainMsg + "1.5s"}},
			{name: "drainDuration 500ms is rejected", mutate: drain("500ms"),
				wantErrors: []string{"spec.drain.drainDuration", drainMsg + "500ms"}},
			{name: "drainDuration 0s is rejected", mutate: drain("0s"),
				wantErrors: []string{"spec.drain.drainDuration", drainMsg + "0s"}},
			{name: "Fixed 5s is accepted", mutate: termination(meshv1alpha1.TerminationFixed, "5s")},
			{name: "WhenIdle 1s is accepted", mutate: termination(meshv1alpha1.TerminationWhenIdle, "1s")},
			{name: "WhenIdle 2m is accepted", mutate: termination(meshv1alpha1.TerminationWhenIdle, "2m")},
			{name: "termination 0s is rejected", mutate: termination(meshv1alpha1.TerminationFixed, "0s"),
				wantErrors: []string{"spec.drain.termination.duration", termMsg + "0s"}},
			{name: "termination 2.5s is rejected", mutate: termination(meshv1alpha1.TerminationWhenIdle, "2.5s"),
				wantErrors: []string{"spec.drain.termination.duration", termMsg + "2.5s"}},
		})
	})

	Describe("proxy.metadata keys are env names not owned by typed fields", func() {
		metadata := func(md map[string]string) func(*meshv1alpha1.MeshSettings) {
			return func(m *meshv1alpha1.MeshSettings) { m.Spec.Proxy = &meshv1alpha1.Proxy{Metadata: md} }
		}
		cases := []celCase{
			{name: "ordinary keys are accepted", mutate: metadata(map[string]string{
				"ISTIO_META_DNS_AUTO_ALLOCATE": "true", "_PRIVATE": "x", "lower_case": "y"})},
		}
		for _, reserved := range []string{"EXIT_ON_ZERO_ACTIVE_CONNECTIONS", "MINIMUM_DRAIN_DURATION", "ISTIO_META_DNS_CAPTURE"} {
			cases = append(cases, celCase{
				name:       reserved + " is rejected",
				mutate:     metadata(map[string]string{"BOOTSTRAP_XDS_AGENT": "true", reserved: "true"}),
				wantErrors: []string{"spec.proxy.metadata", msgReservedMetadata},
			})
		}
		for _, bad := range []string{"ISTIO-META-FOO", "1FOO", "FOO BAR", "FOO.BAR"} {
			cases = append(cases, celCase{
				name:       fmt.Sprintf("key %q is rejected", bad),
				mutate:     metadata(map[string]string{bad: "x"}),
				wantErrors: []string{"spec.proxy.metadata", "metadata keys must be environment variable names ([A-Za-z_][A-Za-z0-9_]*)"},
			})
		}
		celTable(cases)
	})

	Describe("istiod.certProvider", func() {
		cert := func(c string) func(*meshv1alpha1.MeshSettings) {
			return func(m *meshv1alpha1.MeshSettings) { m.Spec.Istiod = &meshv1alpha1.Istiod{CertProvider: c} }
		}
		var cases []celCase
		for _, ok := range []string{
			"istiod", "none", "custom", "k8s.io/signer", "k8s.io/example.com/istiod-signer", "k8s.io/clusterissuers.cert-manager.io/istio-ca",
		} {
			cases = append(cases, celCase{name: fmt.Sprintf("%q is accepted", ok), mutate: cert(ok)})
		}
		cases = append(cases, celCase{
			name:   `"kubernetes" is rejected as removed`,
			mutate: cert("kubernetes"),
			wantErrors: []string{"spec.istiod.certProvider",
				"certProvider kubernetes was removed from Istio and makes istiod fail at start; use istiod or k8s.io/<signer>"},
		})
		for _, bad := range []string{"vault", "k8s.io/", "K8S.io/signer", "Istiod", "example.com/signer"} {
			cases = append(cases, celCase{
				name:       fmt.Sprintf("%q is rejected", bad),
				mutate:     cert(bad),
				wantErrors: []string{"spec.istiod.certProvider", "certProvider must be istiod, none, custom or k8s.io/<signer>, got " + bad},
			})
		}
		celTable(cases)
	})

	Describe("istiod durations respect their bounds", func() {
		istiod := func(set func(*meshv1alpha1.Istiod)) func(*meshv1alpha1.MeshSettings) {
			return func(m *meshv1alpha1.MeshSettings) {
				m.Spec.Istiod = &meshv1alpha1.Istiod{}
				set(m.Spec.Istiod)
			}
		}
		workload := func(d string) func(*meshv1alpha1.MeshSettings) {
			return istiod(func(i *meshv1alpha1.Istiod) { i.WorkloadCertTTL = dur(d) })
		}
		ca := func(d string) func(*meshv1alpha1.MeshSettings) {
			return istiod(func(i *meshv1alpha1.Istiod) { i.SelfSignedCACertTTL = dur(d) })
		}
		check := func(d string) func(*meshv1alpha1.MeshSettings) {
			return istiod(func(i *meshv1alpha1.Istiod) { i.SelfSignedRootCertCheckInterval = dur(d) })
		}
		jwt := func(d string) func(*meshv1alpha1.MeshSettings) {
			return istiod(func(i *meshv1alpha1.Istiod) { i.JWTPubKeyRefreshInterval = dur(d) })
		}
		celTable([]celCase{
			{name: "workloadCertTTL 1m is accepted", mutate: workload("1m")},
			{name: "workloadCertTTL 24h is accepted", mutate: workload("24h")},
			{name: "workloadCertTTL 59s is rejected", mutate: workload("59s"),
				wantErrors: []string{"spec.istiod.workloadCertTTL", "workloadCertTTL must be a duration (like 24h) of at least 1m, got 59s"}},
			{name: "selfSignedCACertTTL 1h is accepted", mutate: ca("1h")},
			{name: "selfSignedCACertTTL 87600h is accepted", mutate: ca("87600h")},
			{name: "selfSignedCACertTTL 59m59s is rejected", mutate: ca("59m59s"),
				wantErrors: []string{"spec.istiod.selfSignedCACertTTL", "selfSignedCACertTTL must be a duration (like 87600h) of at least 1h, got 59m59s"}},
			{name: "selfSignedRootCertCheckInterval 1m is accepted", mutate: check("1m")},
			{name: "selfSignedRootCertCheckInterval 59s is rejected", mutate: check("59s"),
				wantErrors: []string{"spec.istiod.selfSignedRootCertCheckInterval",
					"selfSignedRootCertCheckInterval must be a duration (like 1h) of at least 1m, got 59s"}},
			{name: "jwtPubKeyRefreshInterval 1s is accepted", mutate: jwt("1s")},
			{name: "jwtPubKeyRefreshInterval 20m is accepted", mutate: jwt("20m")},
			{name: "jwtPubKeyRefreshInterval 999ms is rejected", mutate: jwt("999ms"),
				wantErrors: []string{"spec.istiod.jwtPubKeyRefreshInterval", "jwtPubKeyRefreshInterval must be a duration (like 20m) of at least 1s, got 999ms"}},
		})
	})

	Describe("istiod.env refuses names owned by typed fields", func() {
		env := func(e ...meshv1alpha1.EnvVar) func(*meshv1alpha1.MeshSettings) {
			return func(m *meshv1alpha1.MeshSettings) { m.Spec.Istiod = &meshv1alpha1.Istiod{Env: e} }
		}
		cases := []celCase{
			{name: "other variables are accepted", mutate: env(
				meshv1alpha1.EnvVar{Name: "PILOT_ENABLE_STATUS", Value: "true"},
				meshv1alpha1.EnvVar{Name: "PILOT_TRACE_SAMPLING_EXTRA", Value: "1"})},
			{name: "valueFrom.secretKeyRef alone is accepted", mutate: env(meshv1alpha1.EnvVar{Name: "OTEL_AUTH",
				ValueFrom: &meshv1alpha1.EnvVarSource{SecretKeyRef: &meshv1alpha1.SecretKeySelector{Name: "otel-token", Key: "header"}}})},
			{name: "value and valueFrom together are rejected", mutate: env(meshv1alpha1.EnvVar{Name: "OTEL_AUTH", Value: "x",
				ValueFrom: &meshv1alpha1.EnvVarSource{SecretKeyRef: &meshv1alpha1.SecretKeySelector{Name: "otel-token", Key: "header"}}}),
				wantErrors: []string{"spec.istiod.env[0]", "env OTEL_AUTH must set exactly one of value, valueFrom"}},
			{name: "neither value nor valueFrom is rejected", mutate: env(meshv1alpha1.EnvVar{Name: "OTEL_AUTH"}),
				wantErrors: []string{"spec.istiod.env[0]", "env OTEL_AUTH must set exactly one of value, valueFrom"}},
			{name: "a secretKeyRef without key is rejected", mutate: env(meshv1alpha1.EnvVar{Name: "OTEL_AUTH",
				ValueFrom: &meshv1alpha1.EnvVarSource{SecretKeyRef: &meshv1alpha1.SecretKeySelector{Name: "otel-token"}}}),
				wantErrors: []string{"spec.istiod.env[0].valueFrom.secretKeyRef.key"}},
		}
		for _, reserved := range []string{
			"PILOT_TRACE_SAMPLING", "PILOT_CERT_PROVIDER", "CLUSTER_ID", "DEFAULT_WORKLOAD_CERT_TTL",
			"CITADEL_SELF_SIGNED_CA_CERT_TTL", "CITADEL_SELF_SIGNED_ROOT_CERT_CHECK_INTERVAL",
			"PILOT_JWT_PUB_KEY_REFRESH_INTERVAL", "ENABLE_ENHANCED_RESOURCE_SCOPING",
			"ENABLE_DEFERRED_CLUSTER_CREATION", "ENABLE_DEFERRED_STATS_CREATION",
			"ENABLE_ENHANCED_DESTINATIONRULE_MERGE", "ENABLE_INBOUND_RETRY_POLICY",
			"EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY",
		} {
			cases = append(cases, celCase{
				name:       reserved + " is rejected",
				mutate:     env(meshv1alpha1.EnvVar{Name: "PILOT_ENABLE_STATUS", Value: "true"}, meshv1alpha1.EnvVar{Name: reserved, Value: "1"}),
				wantErrors: []string{"spec.istiod.env[1]", "env " + reserved + " is set by a typed field of spec.istiod or spec.tracing; set it there"},
			})
		}
		celTable(cases)
	})

	Describe("namespace rules", func() {
		selector := &meshv1alpha1.LabelSelector{MatchLabels: map[string]string{"team": "payments"}}
		waypoint := &meshv1alpha1.Waypoint{Name: "waypoint"}
		celTable([]celCase{
			{name: "names alone are accepted", mutate: withNamespaceRule(meshv1alpha1.NamespaceRule{
				Names: []string{"bookinfo"}, Dataplane: meshv1alpha1.DataplaneSidecar})},
			{name: "a selector alone is accepted", mutate: withNamespaceRule(meshv1alpha1.NamespaceRule{
				Selector: selector, Dataplane: meshv1alpha1.DataplaneDisabled})},
			{name: "names and selector are rejected", mutate: withNamespaceRule(meshv1alpha1.NamespaceRule{
				Names: []string{"bookinfo"}, Selector: selector, Dataplane: meshv1alpha1.DataplaneSidecar}),
				wantErrors: []string{"spec.namespaces[0]", msgNamesXorSelector}},
			{name: "neither names nor selector is rejected", mutate: withNamespaceRule(meshv1alpha1.NamespaceRule{
				Dataplane: meshv1alpha1.DataplaneAmbient}),
				wantErrors: []string{"spec.namespaces[0]", msgNamesXorSelector}},
			{name: "a waypoint with Ambient is accepted", mutate: withNamespaceRule(meshv1alpha1.NamespaceRule{
				Names: []string{"bookinfo"}, Dataplane: meshv1alpha1.DataplaneAmbient,
				Waypoint: &meshv1alpha1.Waypoint{Name: "waypoint", Namespace: "mesh-waypoints"}})},
			{name: "a waypoint with Sidecar is rejected", mutate: withNamespaceRule(meshv1alpha1.NamespaceRule{
				Names: []string{"bookinfo"}, Dataplane: meshv1alpha1.DataplaneSidecar, Waypoint: waypoint}),
				wantErrors: []string{"spec.namespaces[0]", "waypoint is only allowed with dataplane Ambient"}},
			{name: "a waypoint with Disabled is rejected", mutate: withNamespaceRule(meshv1alpha1.NamespaceRule{
				Selector: selector, Dataplane: meshv1alpha1.DataplaneDisabled, Waypoint: waypoint}),
				wantErrors: []string{"spec.namespaces[0]", "waypoint is only allowed with dataplane Ambient"}},
			{name: "sidecarLabel Revision with Sidecar is accepted", mutate: withNamespaceRule(meshv1alpha1.NamespaceRule{
				Names: []string{"bookinfo"}, Dataplane: meshv1alpha1.DataplaneSidecar, SidecarLabel: meshv1alpha1.SidecarLabelRevision})},
			{name: "sidecarLabel InjectionLabel with Sidecar is accepted", mutate: withNamespaceRule(meshv1alpha1.NamespaceRule{
				Names: []string{"bookinfo"}, Dataplane: meshv1alpha1.DataplaneSidecar, SidecarLabel: meshv1alpha1.SidecarLabelInjection})},
			{name: "sidecarLabel with Ambient is rejected", mutate: withNamespaceRule(meshv1alpha1.NamespaceRule{
				Names: []string{"bookinfo"}, Dataplane: meshv1alpha1.DataplaneAmbient, SidecarLabel: meshv1alpha1.SidecarLabelRevision}),
				wantErrors: []string{"spec.namespaces[0]", "sidecarLabel is only allowed with dataplane Sidecar"}},
			{name: "sidecarLabel with Disabled is rejected", mutate: withNamespaceRule(meshv1alpha1.NamespaceRule{
				Names: []string{"legacy"}, Dataplane: meshv1alpha1.DataplaneDisabled, SidecarLabel: meshv1alpha1.SidecarLabelInjection}),
				wantErrors: []string{"spec.namespaces[0]", "sidecarLabel is only allowed with dataplane Sidecar"}},
		})
	})
})
