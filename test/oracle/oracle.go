// Package oracle judges mesh documents with Istio's own code (istio.io/istio),
// kept in a module of its own so that istio.io/istio never enters the
// operator's go.mod or binary.
package oracle

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	meshconfig "istio.io/api/mesh/v1alpha1"
	networking "istio.io/api/networking/v1alpha3"
	"istio.io/istio/pkg/config"
	"istio.io/istio/pkg/config/mesh"
	"istio.io/istio/pkg/config/schema/gvk"
	"istio.io/istio/pkg/config/validation"
	"istio.io/istio/pkg/config/validation/agent"
	istiolog "istio.io/istio/pkg/log"
	"istio.io/istio/pkg/util/protomarshal"
)

func init() {
	// istiod logs what the oracle reports as errors or Result.Warnings.
	for _, s := range istiolog.Scopes() {
		s.SetOutputLevel(istiolog.ErrorLevel)
	}
}

// Result is what Istio makes of a mesh document.
type Result struct {
	// Mesh is the document merged over Istio's defaults, as istiod uses it.
	Mesh *meshconfig.MeshConfig
	// Warnings are what istiod would log and accept.
	Warnings []string
}

// Check judges a mesh document (the "mesh" key of the mesh ConfigMap) the
// way istiod does, and stricter where istiod is lenient in ways that hurt:
//
//  1. protomarshal.ApplyYAMLStrict into MeshConfig: no unknown field (istiod
//     parses leniently and silently drops them), every value of its type;
//  2. mesh.ApplyMeshConfigDefaults: istiod's own merge over its defaults,
//     which runs agent.ValidateMeshConfig and fails on any error;
//  3. agent.ValidateMeshConfig again, to collect its warnings;
//  4. extensionProviders: the checks istiod runs but only logs (unique names,
//     each provider's service and port), and defaultProviders naming
//     providers that exist;
//  5. defaultHttpRetryPolicy: the rules of a VirtualService retry policy
//     (istiod does not check the mesh default), through
//     validation.ValidateVirtualService.
func Check(doc string) (*Result, error) {
	raw := &meshconfig.MeshConfig{}
	if err := protomarshal.ApplyYAMLStrict(doc, raw); err != nil {
		return nil, fmt.Errorf("strict parse into MeshConfig: %w", err)
	}
	mc, err := mesh.ApplyMeshConfigDefaults(doc)
	if err != nil {
		return nil, fmt.Errorf("mesh.ApplyMeshConfigDefaults: %w", err)
	}
	res := &Result{Mesh: mc}
	warn, err := agent.ValidateMeshConfig(mc)
	if err != nil {
		return nil, fmt.Errorf("agent.ValidateMeshConfig: %w", err)
	}
	if warn != nil {
		res.Warnings = append(res.Warnings, warn.Error())
	}
	if err := checkProviders(raw, mc); err != nil {
		return nil, err
	}
	if err := checkRetry(mc.GetDefaultHttpRetryPolicy()); err != nil {
		return nil, err
	}
	return res, nil
}

// checkProviders repeats istiod's extension provider validation, which it
// only logs, on the document's own providers (raw: istiod's merge silently
// keeps the last of two providers of one name). Zipkin, Datadog and
// SkyWalking have unexported validators that check exactly a service and a
// port, the same checks as the exported EnvoyOtelAls validator, which stands
// in for them. defaultProviders are checked against the merged mesh (mc),
// which holds Istio's built-in providers.
func checkProviders(raw, mc *meshconfig.MeshConfig) error {
	var errs []error
	seen := map[string]bool{}
	endpoint := func(service string, port uint32) error {
		return agent.ValidateExtensionProviderEnvoyOtelAls(&meshconfig.MeshConfig_ExtensionProvider_EnvoyOpenTelemetryLogProvider{Service: service, Port: port})
	}
	for _, p := range raw.GetExtensionProviders() {
		if p.GetName() == "" {
			errs = append(errs, errors.New("extension provider without a name"))
		}
		if seen[p.GetName()] {
			errs = append(errs, fmt.Errorf("duplicate extension provider name %q", p.GetName()))
		}
		seen[p.GetName()] = true
		var err error
		switch k := p.GetProvider().(type) {
		case *meshconfig.MeshConfig_ExtensionProvider_EnvoyExtAuthzHttp:
			err = agent.ValidateExtensionProviderEnvoyExtAuthzHTTP(k.EnvoyExtAuthzHttp)
		case *meshconfig.MeshConfig_ExtensionProvider_EnvoyExtAuthzGrpc:
			err = agent.ValidateExtensionProviderEnvoyExtAuthzGRPC(k.EnvoyExtAuthzGrpc)
		case *meshconfig.MeshConfig_ExtensionProvider_Opentelemetry:
			err = agent.ValidateExtensionProviderTracingOpentelemetry(k.Opentelemetry)
		case *meshconfig.MeshConfig_ExtensionProvider_EnvoyOtelAls:
			err = agent.ValidateExtensionProviderEnvoyOtelAls(k.EnvoyOtelAls)
		case *meshconfig.MeshConfig_ExtensionProvider_EnvoyHttpAls:
			err = agent.ValidateExtensionProviderEnvoyHTTPAls(k.EnvoyHttpAls)
		case *meshconfig.MeshConfig_ExtensionProvider_EnvoyTcpAls:
			err = agent.ValidateExtensionProviderEnvoyTCPAls(k.EnvoyTcpAls)
		case *meshconfig.MeshConfig_ExtensionProvider_Zipkin:
			err = endpoint(k.Zipkin.GetService(), k.Zipkin.GetPort())
		case *meshconfig.MeshConfig_ExtensionProvider_Datadog:
			err = endpoint(k.Datadog.GetService(), k.Datadog.GetPort())
		case *meshconfig.MeshConfig_ExtensionProvider_Skywalking:
			err = endpoint(k.Skywalking.GetService(), k.Skywalking.GetPort())
		case *meshconfig.MeshConfig_ExtensionProvider_EnvoyFileAccessLog, *meshconfig.MeshConfig_ExtensionProvider_Prometheus,
			*meshconfig.MeshConfig_ExtensionProvider_Stackdriver:
			// istiod checks nothing of these.
		case nil:
			err = errors.New("no provider kind set")
		default:
			err = fmt.Errorf("provider kind %T is not judged by this oracle", k)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("extension provider %q: %w", p.GetName(), err))
		}
	}
	// defaultProviders must name providers of a kind the list can use
	// (istiod would fail only when translating Telemetry).
	kinds := map[string]string{}
	for _, p := range mc.GetExtensionProviders() {
		kinds[p.GetName()] = kindOf(p)
	}
	dp := mc.GetDefaultProviders()
	for _, list := range []struct {
		name  string
		names []string
	}{{"tracing", dp.GetTracing()}, {"metrics", dp.GetMetrics()}, {"accessLogging", dp.GetAccessLogging()}} {
		for _, n := range list.names {
			kind, ok := kinds[n]
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("defaultProviders.%s names %q, which is not an extension provider", list.name, n))
			case !slices.Contains(usableKinds[list.name], kind):
				errs = append(errs, fmt.Errorf("defaultProviders.%s names %q, a %s provider", list.name, n, kind))
			}
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// checkRetry judges the mesh default retry policy as Istio judges the retry
// policy of a VirtualService route.
func checkRetry(r *networking.HTTPRetry) error {
	if r == nil {
		return nil
	}
	vs := &networking.VirtualService{
		Hosts: []string{"oracle.example.com"},
		Http: []*networking.HTTPRoute{{
			Route:   []*networking.HTTPRouteDestination{{Destination: &networking.Destination{Host: "oracle.example.com"}}},
			Retries: r,
		}},
	}
	_, err := validation.ValidateVirtualService(config.Config{
		Meta: config.Meta{GroupVersionKind: gvk.VirtualService, Name: "oracle", Namespace: "default"},
		Spec: vs,
	})
	if err != nil {
		return fmt.Errorf("defaultHttpRetryPolicy as a VirtualService retry policy: %w", err)
	}
	return nil
}

// usableKinds are the provider kinds each defaultProviders list can use.
var usableKinds = map[string][]string{
	"tracing":       {"zipkin", "lightstep", "datadog", "opencensus", "skywalking", "opentelemetry", "stackdriver"},
	"metrics":       {"prometheus", "stackdriver"},
	"accessLogging": {"envoyFileAccessLog", "envoyHttpAls", "envoyTcpAls", "envoyOtelAls", "stackdriver"},
}

// kindOf names the provider's kind as the mesh document spells it.
func kindOf(p *meshconfig.MeshConfig_ExtensionProvider) string {
	m := p.ProtoReflect()
	if oneof := m.Descriptor().Oneofs().ByName("provider"); oneof != nil {
		if fd := m.WhichOneof(oneof); fd != nil {
			return fd.JSONName()
		}
	}
	return "unknown"
}
