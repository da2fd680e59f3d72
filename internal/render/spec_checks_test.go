package render

import (
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

func TestCheckSpecRefusesWhatIstioRefuses(t *testing.T) {
	zipkin := func(name, service string) *v1alpha1.MeshSettingsSpec {
		return &v1alpha1.MeshSettingsSpec{Tracing: &v1alpha1.Tracing{Providers: []v1alpha1.TracingProvider{{
			Name: name, Zipkin: &v1alpha1.ZipkinProvider{Endpoint: v1alpha1.Endpoint{Service: service, Port: 9411}},
		}}}}
	}
	retry := func(on string, perTry time.Duration) *v1alpha1.MeshSettingsSpec {
		r := &v1alpha1.RetryPolicy{RetryOn: []v1alpha1.RetryOnCondition{v1alpha1.RetryOnCondition(on)}}
		if perTry != 0 {
			r.PerTryTimeout = &metav1.Duration{Duration: perTry}
		}
		return &v1alpha1.MeshSettingsSpec{RetryPolicy: r}
	}
	cases := []struct {
		name  string
		spec  *v1alpha1.MeshSettingsSpec
		field string // "" = accepted
		msg   string
	}{
		{"fqdn", zipkin("z", "zipkin.istio-system.svc.cluster.local"), "", ""},
		{"namespace/fqdn", zipkin("z", "tracing/zipkin.tracing.svc.cluster.local"), "", ""},
		{"ipv4", zipkin("z", "10.0.0.7"), "", ""},
		{"ipv6", zipkin("z", "fd00::7"), "", ""},
		{"short name", zipkin("z", "zipkin"), "spec.tracing.providers[0].zipkin.service", "fully qualified"},
		{"namespace/short name", zipkin("z", "tracing/zipkin"), "spec.tracing.providers[0].zipkin.service", "fully qualified"},
		{"numeric last label", zipkin("z", "agent.123"), "spec.tracing.providers[0].zipkin.service", "last label is numeric"},
		{"long label", zipkin("z", strings.Repeat("a", 64)+".example.com"), "spec.tracing.providers[0].zipkin.service", "not a DNS label"},
		{"built-in name", zipkin("envoy", "zipkin.istio-system.svc.cluster.local"), "spec.tracing.providers[0].name", "Istio defines itself"},
		{"status code", retry("503", 0), "", ""},
		{"unassigned status code", retry("299", 0), "spec.retryPolicy.retryOn[0]", "299"},
		{"ms per-try timeout", retry("5xx", 1500*time.Millisecond), "", ""},
		{"us per-try timeout", retry("5xx", 1500*time.Microsecond), "spec.retryPolicy.perTryTimeout", "millisecond"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Mesh(c.spec, "", nil)
			if c.field == "" {
				if err != nil {
					t.Fatalf("want accepted, got %v", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("want a FieldError for %s, got %v", c.field, err)
			}
			if fe.Field != c.field || !strings.Contains(fe.Msg, c.msg) {
				t.Fatalf("got %s: %s; want field %s with %q", fe.Field, fe.Msg, c.field, c.msg)
			}
		})
	}
}
