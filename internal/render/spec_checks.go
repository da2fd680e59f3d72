package render

import (
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

// builtinProviders are extension providers istiod defines itself; a spec
// provider of the same name would silently replace them.
var builtinProviders = []string{"envoy", "prometheus", "stackdriver"}

var (
	dnsLabel  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	hostLabel = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?$`) // Istio compares hosts case-insensitively
)

// checkSpec refuses what admission lets through but Istio's own validation
// refuses, so the operator never writes it (found with the oracle in test/oracle).
func checkSpec(spec *v1alpha1.MeshSettingsSpec) error {
	type endpoint struct {
		field string
		e     v1alpha1.Endpoint
	}
	var endpoints []endpoint
	names := func(field, name string) error {
		for _, b := range builtinProviders {
			if name == b {
				return &FieldError{Field: field, Msg: fmt.Sprintf("%q is the name of a provider Istio defines itself; choose another name", name)}
			}
		}
		return nil
	}
	if t := spec.Tracing; t != nil {
		for i, p := range t.Providers {
			field := fmt.Sprintf("spec.tracing.providers[%d]", i)
			if err := names(field+".name", p.Name); err != nil {
				return err
			}
			switch {
			case p.Zipkin != nil:
				endpoints = append(endpoints, endpoint{field + ".zipkin.service", p.Zipkin.Endpoint})
			case p.OpenTelemetry != nil:
				endpoints = append(endpoints, endpoint{field + ".opentelemetry.service", p.OpenTelemetry.Endpoint})
			case p.Datadog != nil:
				endpoints = append(endpoints, endpoint{field + ".datadog.service", p.Datadog.Endpoint})
			case p.SkyWalking != nil:
				endpoints = append(endpoints, endpoint{field + ".skywalking.service", p.SkyWalking.Endpoint})
			}
		}
	}
	if a := spec.AccessLogging; a != nil {
		for i, p := range a.Providers {
			field := fmt.Sprintf("spec.accessLogging.providers[%d]", i)
			if err := names(field+".name", p.Name); err != nil {
				return err
			}
			if p.EnvoyOtelAls != nil {
				endpoints = append(endpoints, endpoint{field + ".envoyOtelAls.service", p.EnvoyOtelAls.Endpoint})
			}
		}
	}
	if a := spec.Authorization; a != nil {
		for i, p := range a.Providers {
			field := fmt.Sprintf("spec.authorization.providers[%d]", i)
			if err := names(field+".name", p.Name); err != nil {
				return err
			}
			switch {
			case p.EnvoyExtAuthzHTTP != nil:
				endpoints = append(endpoints, endpoint{field + ".envoyExtAuthzHttp.service", p.EnvoyExtAuthzHTTP.Endpoint})
			case p.EnvoyExtAuthzGRPC != nil:
				endpoints = append(endpoints, endpoint{field + ".envoyExtAuthzGrpc.service", p.EnvoyExtAuthzGRPC.Endpoint})
			}
		}
	}
	for _, ep := range endpoints {
		if msg := checkService(ep.e.Service); msg != "" {
			return &FieldError{Field: ep.field, Msg: msg}
		}
	}
	if r := spec.RetryPolicy; r != nil {
		for i, c := range r.RetryOn {
			if code, err := strconv.Atoi(string(c)); err == nil && http.StatusText(code) == "" {
				return &FieldError{Field: fmt.Sprintf("spec.retryPolicy.retryOn[%d]", i), Msg: fmt.Sprintf("%d is not an HTTP status code Istio accepts", code)}
			}
		}
		if err := msPrecision("spec.retryPolicy.perTryTimeout", r.PerTryTimeout); err != nil {
			return err
		}
	}
	return nil
}

// checkService mirrors Istio's check of a provider's service: an IP, or a
// fully qualified DNS name, optionally prefixed with "<namespace>/".
func checkService(service string) string {
	host := service
	if ns, h, ok := strings.Cut(service, "/"); ok {
		if !dnsLabel.MatchString(ns) {
			return fmt.Sprintf("namespace %q of service %q is not a DNS label", ns, service)
		}
		host = h
	}
	if net.ParseIP(host) != nil {
		return ""
	}
	host = strings.TrimSuffix(host, ".")
	labels := strings.Split(host, ".")
	if len(labels) < 2 {
		return fmt.Sprintf("service %q must be a fully qualified name such as zipkin.istio-system.svc.cluster.local (Istio refuses short names)", service)
	}
	if len(host) > 255 {
		return fmt.Sprintf("service %q is longer than 255 characters", service)
	}
	for _, l := range labels {
		if len(l) > 63 || !hostLabel.MatchString(l) {
			return fmt.Sprintf("%q in service %q is not a DNS label (letters, digits and '-', at most 63)", l, service)
		}
	}
	if _, err := strconv.Atoi(labels[len(labels)-1]); err == nil {
		return fmt.Sprintf("service %q is neither an IP nor a DNS name (its last label is numeric)", service)
	}
	return ""
}

// msPrecision refuses durations finer than a millisecond, as Istio does for retries.
func msPrecision(field string, d *metav1.Duration) error {
	if d != nil && d.Duration%time.Millisecond != 0 {
		return &FieldError{Field: field, Msg: fmt.Sprintf("%s: Istio supports only millisecond precision", d.Duration)}
	}
	return nil
}
