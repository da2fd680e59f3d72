package render

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

// allEnvSpec sets every typed field that becomes an istiod variable, plus
// free env entries given out of order.
func allEnvSpec() *v1alpha1.MeshSettingsSpec {
	return &v1alpha1.MeshSettingsSpec{
		Tracing: &v1alpha1.Tracing{SamplingPercentage: "0.5"},
		Istiod: &v1alpha1.Istiod{
			CertProvider:                    "k8s.io/example.com/signer",
			ClusterID:                       "east-1",
			WorkloadCertTTL:                 dur(12 * time.Hour),
			SelfSignedCACertTTL:             dur(87600 * time.Hour),
			SelfSignedRootCertCheckInterval: dur(90 * time.Minute),
			JWTPubKeyRefreshInterval:        dur(20*time.Minute + 30*time.Second),
			Features: &v1alpha1.IstiodFeatures{
				EnhancedResourceScoping:          ptrTo(true),
				DeferredClusterCreation:          ptrTo(false),
				DeferredStatsCreation:            ptrTo(true),
				EnhancedDestinationRuleMerge:     ptrTo(false),
				InboundRetryPolicy:               ptrTo(true),
				ExcludeUnsafe503FromDefaultRetry: ptrTo(false),
			},
			Env: []v1alpha1.EnvVar{
				{Name: "PILOT_PUSH_THROTTLE", Value: "200"},
				{Name: "AUTO_RELOAD_PLUGIN_CERTS", Value: "true"},
				{Name: "ZZ_LAST", Value: ""},
			},
		},
	}
}

// allEnvWant is every variable of allEnvSpec with its exact value.
var allEnvWant = map[string]string{
	"PILOT_TRACE_SAMPLING":                         "0.5",
	"PILOT_CERT_PROVIDER":                          "k8s.io/example.com/signer",
	"CLUSTER_ID":                                   "east-1",
	"DEFAULT_WORKLOAD_CERT_TTL":                    "12h",
	"CITADEL_SELF_SIGNED_CA_CERT_TTL":              "87600h",
	"CITADEL_SELF_SIGNED_ROOT_CERT_CHECK_INTERVAL": "1h30m",
	"PILOT_JWT_PUB_KEY_REFRESH_INTERVAL":           "20m30s",
	"ENABLE_ENHANCED_RESOURCE_SCOPING":             "true",
	"ENABLE_DEFERRED_CLUSTER_CREATION":             "false",
	"ENABLE_ENHANCED_DESTINATIONRULE_MERGE":        "false",
	"ENABLE_INBOUND_RETRY_POLICY":                  "true",
	"EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY":        "false",
	"PILOT_PUSH_THROTTLE":                          "200",
	"AUTO_RELOAD_PLUGIN_CERTS":                     "true",
	"ZZ_LAST":                                      "",
}

// deprecatedStats is how the deprecated deferredStatsCreation is reported
// whatever the version: accepted, never written.
func isDeprecatedStats(ig v1alpha1.IgnoredSetting) bool {
	return ig.Field == "spec.istiod.features.deferredStatsCreation" && ig.Name == "ENABLE_DEFERRED_STATS_CREATION" &&
		strings.Contains(ig.Reason, "deprecated") && strings.Contains(ig.Reason, "never written")
}

func TestEnvEveryTypedField(t *testing.T) {
	res := Env(allEnvSpec(), "1.24.0")
	if len(res.Ignored) != 1 || !isDeprecatedStats(res.Ignored[0]) {
		t.Fatalf("istiod 1.24 reads every variable but the deprecated one, got ignored %+v", res.Ignored)
	}
	got := map[string]string{}
	for _, e := range res.Env {
		if _, dup := got[e.Name]; dup {
			t.Errorf("variable %s written twice", e.Name)
		}
		if e.ValueFrom != nil {
			t.Errorf("variable %s has valueFrom", e.Name)
		}
		got[e.Name] = e.Value
	}
	if !reflect.DeepEqual(got, allEnvWant) {
		t.Errorf("env mismatch\n got: %v\nwant: %v", got, allEnvWant)
	}
}

func TestEnvSortedByName(t *testing.T) {
	res := Env(allEnvSpec(), "")
	names := make([]string, len(res.Env))
	for i, e := range res.Env {
		names[i] = e.Name
	}
	if !slices.IsSorted(names) {
		t.Errorf("env not sorted by name: %v", names)
	}
	// The order of spec.istiod.env does not leak into the output.
	spec := allEnvSpec()
	slices.Reverse(spec.Istiod.Env)
	if again := Env(spec, ""); !reflect.DeepEqual(again.Env, res.Env) {
		t.Errorf("reordering spec.istiod.env changed the output:\n%v\n%v", again.Env, res.Env)
	}
}

func TestEnvEmpty(t *testing.T) {
	for name, spec := range map[string]*v1alpha1.MeshSettingsSpec{
		"empty spec":           {},
		"empty istiod":         {Istiod: &v1alpha1.Istiod{Features: &v1alpha1.IstiodFeatures{}}},
		"tracing without rate": {Tracing: &v1alpha1.Tracing{Enabled: ptrTo(true)}},
	} {
		t.Run(name, func(t *testing.T) {
			res := Env(spec, "1.28.1")
			if len(res.Env) != 0 || len(res.Ignored) != 0 {
				t.Errorf("want nothing, got env %v ignored %v", res.Env, res.Ignored)
			}
		})
	}
}

func TestEnvIgnoredByVersion(t *testing.T) {
	removed := map[string]string{ // variable -> field
		"ENABLE_ENHANCED_RESOURCE_SCOPING":      "spec.istiod.features.enhancedResourceScoping",
		"ENABLE_DEFERRED_CLUSTER_CREATION":      "spec.istiod.features.deferredClusterCreation",
		"ENABLE_INBOUND_RETRY_POLICY":           "spec.istiod.features.inboundRetryPolicy",
		"EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY": "spec.istiod.features.excludeUnsafe503FromDefaultRetry",
	}
	cases := []struct {
		tag     string
		ignored []string // in spec order
	}{
		{"1.24.3", nil},
		{"1.25.0", []string{"ENABLE_ENHANCED_RESOURCE_SCOPING"}},
		{"1.26.2-distroless", []string{"ENABLE_ENHANCED_RESOURCE_SCOPING", "ENABLE_DEFERRED_CLUSTER_CREATION"}},
		{"1.27.0", []string{"ENABLE_ENHANCED_RESOURCE_SCOPING", "ENABLE_DEFERRED_CLUSTER_CREATION", "ENABLE_INBOUND_RETRY_POLICY", "EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY"}},
		{"1.28.1", []string{"ENABLE_ENHANCED_RESOURCE_SCOPING", "ENABLE_DEFERRED_CLUSTER_CREATION", "ENABLE_INBOUND_RETRY_POLICY", "EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY"}},
		{"1.31.0", []string{"ENABLE_ENHANCED_RESOURCE_SCOPING", "ENABLE_DEFERRED_CLUSTER_CREATION", "ENABLE_INBOUND_RETRY_POLICY", "EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY"}},
		{"2.0.0", []string{"ENABLE_ENHANCED_RESOURCE_SCOPING", "ENABLE_DEFERRED_CLUSTER_CREATION", "ENABLE_INBOUND_RETRY_POLICY", "EXCLUDE_UNSAFE_503_FROM_DEFAULT_RETRY"}},
		// An unknown version cannot prove a variable unread: everything is written.
		{"latest", nil},
		{"", nil},
	}
	for _, c := range cases {
		t.Run("tag="+c.tag, func(t *testing.T) {
			res := Env(allEnvSpec(), c.tag)
			var gotIgnored []string
			deprecated := slices.IndexFunc(res.Ignored, isDeprecatedStats)
			if deprecated < 0 {
				t.Fatalf("the deprecated deferredStatsCreation must be ignored whatever the version, got %+v", res.Ignored)
			}
			for _, ig := range slices.Delete(slices.Clone(res.Ignored), deprecated, deprecated+1) {
				gotIgnored = append(gotIgnored, ig.Name)
				if ig.Field != removed[ig.Name] {
					t.Errorf("%s: field %q, want %q", ig.Name, ig.Field, removed[ig.Name])
				}
				if !strings.Contains(ig.Reason, c.tag) || !strings.Contains(ig.Reason, ig.Name) || !strings.Contains(ig.Reason, "removed in Istio") {
					t.Errorf("%s: reason %q should name the tag, the variable and the removal", ig.Name, ig.Reason)
				}
			}
			if !slices.Equal(gotIgnored, c.ignored) {
				t.Errorf("ignored %v, want %v", gotIgnored, c.ignored)
			}
			written := map[string]bool{}
			for _, e := range res.Env {
				written[e.Name] = true
			}
			for name := range allEnvWant {
				if written[name] == slices.Contains(c.ignored, name) {
					t.Errorf("%s: written=%v but ignored=%v", name, written[name], slices.Contains(c.ignored, name))
				}
			}
		})
	}
}

func TestEnvNamesThePinnedIstiodDoesNotRead(t *testing.T) {
	release, names := IstiodEnvNames()
	if len(names) < 100 || !slices.Contains(names, "PILOT_TRACE_SAMPLING") || slices.Contains(names, "ENABLE_DEFERRED_STATS_CREATION") {
		t.Fatalf("istiod_env.txt does not look like pilot-discovery's list: %d names", len(names))
	}
	spec := allEnvSpec()
	spec.Istiod.Env = append(spec.Istiod.Env, v1alpha1.EnvVar{Name: "PILOT_ENABLE_STATUS", Value: "true"}, v1alpha1.EnvVar{Name: "GOMEMLIMIT", Value: "1GiB"})
	pinned := release.String() + ".2"
	res := Env(spec, pinned)
	written := map[string]bool{}
	for _, e := range res.Env {
		written[e.Name] = true
	}
	// Free-form names istiod does not read are written as asked, with a warning each.
	unread := []string{"AUTO_RELOAD_PLUGIN_CERTS", "ZZ_LAST", "PILOT_ENABLE_STATUS"}
	for _, name := range unread {
		if !written[name] {
			t.Errorf("%s: a spec.istiod.env entry must be written as given", name)
		}
	}
	if len(res.Warnings) != len(unread) {
		t.Fatalf("want one warning each for %v, got %q", unread, res.Warnings)
	}
	for n, name := range unread {
		if !strings.Contains(res.Warnings[n], "spec.istiod.env["+name+"]") || !strings.Contains(res.Warnings[n], pinned) {
			t.Errorf("warning %q should name spec.istiod.env[%s] and istiod %s", res.Warnings[n], name, pinned)
		}
	}
	// Every written name is one the pinned istiod reads, or a warned free-form one.
	for name := range written {
		if !slices.Contains(names, name) && !slices.Contains(unread, name) && name != "GOMEMLIMIT" {
			t.Errorf("%s is written but istiod %s does not read it", name, pinned)
		}
	}
	// Other releases: no list, no warnings.
	if res := Env(spec, "1.28.0"); len(res.Warnings) != 0 {
		t.Errorf("istiod 1.28: the generated list does not describe it, want no warnings, got %q", res.Warnings)
	}
}

func TestEnvFromSecret(t *testing.T) {
	spec := &v1alpha1.MeshSettingsSpec{Istiod: &v1alpha1.Istiod{Env: []v1alpha1.EnvVar{
		{Name: "OTEL_AUTH", ValueFrom: &v1alpha1.EnvVarSource{SecretKeyRef: &v1alpha1.SecretKeySelector{Name: "otel-token", Key: "header"}}},
	}}}
	want := []corev1.EnvVar{{Name: "OTEL_AUTH", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "otel-token"}, Key: "header"}}}}
	if got := Env(spec, "1.31.0").Env; !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestHeaderEnvWarnings(t *testing.T) {
	env := "OTEL_AUTH"
	spec := &v1alpha1.MeshSettingsSpec{Tracing: &v1alpha1.Tracing{Providers: []v1alpha1.TracingProvider{{
		Name: "otel", OpenTelemetry: &v1alpha1.OpenTelemetryProvider{HTTP: &v1alpha1.OpenTelemetryHTTP{Path: "/v1/traces",
			Headers: []v1alpha1.HTTPHeader{{Name: "x-literal", Value: ptrTo("v")}, {Name: "authorization", EnvName: &env}}}},
	}}}}
	w := HeaderEnvWarnings(spec, map[string]bool{"OTHER": true})
	if len(w) != 1 || !strings.Contains(w[0], "otel") || !strings.Contains(w[0], "authorization") || !strings.Contains(w[0], "OTEL_AUTH") {
		t.Errorf("want one warning naming provider, header and variable, got %q", w)
	}
	if w := HeaderEnvWarnings(spec, map[string]bool{"OTEL_AUTH": true}); len(w) != 0 {
		t.Errorf("a set variable needs no warning, got %q", w)
	}
}

func TestEnvDurationsUseGoSyntax(t *testing.T) {
	// istiod reads these variables with time.ParseDuration: Go's form, not protobuf's.
	spec := &v1alpha1.MeshSettingsSpec{Istiod: &v1alpha1.Istiod{WorkloadCertTTL: dur(90 * time.Second)}}
	want := []corev1.EnvVar{{Name: "DEFAULT_WORKLOAD_CERT_TTL", Value: "1m30s"}}
	if got := Env(spec, "1.28.1").Env; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestIstiodVersion(t *testing.T) {
	cases := map[string]string{
		"docker.io/istio/pilot:1.28.1":                        "1.28.1",
		"istio/pilot:1.27.0-distroless":                       "1.27.0-distroless",
		"gcr.io/istio-release/pilot:1.26.3@sha256:0123456789": "1.26.3",
		"localhost:5000/istio/pilot:1.25.0":                   "1.25.0",
		"localhost:5000/istio/pilot":                          "",
		"istio/pilot@sha256:0123456789abcdef":                 "",
		"pilot":                                               "",
		"":                                                    "",
		"registry:443/pilot:latest":                           "latest",
	}
	for image, want := range cases {
		if got := IstiodVersion(image); got != want {
			t.Errorf("IstiodVersion(%q) = %q, want %q", image, got, want)
		}
	}
}

func TestParseVersion(t *testing.T) {
	cases := []struct {
		tag  string
		want Version
		ok   bool
	}{
		{"1.28.1", Version{1, 28}, true},
		{"1.28", Version{1, 28}, true},
		{"1.9.0", Version{1, 9}, true},
		{"v1.30.0-rc.1", Version{1, 30}, true},
		{"1.27.0-distroless", Version{1, 27}, true},
		{"10.100.0", Version{10, 100}, true},
		{"latest", Version{}, false},
		{"", Version{}, false},
		{"1", Version{}, false},
		{"1.x", Version{}, false},
		{"master-latest-daily", Version{}, false},
	}
	for _, c := range cases {
		got, ok := ParseVersion(c.tag)
		if got != c.want || ok != c.ok {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v, %v", c.tag, got, ok, c.want, c.ok)
		}
	}
}

func TestVersionLessAndString(t *testing.T) {
	ordered := []Version{{0, 99}, {1, 9}, {1, 10}, {1, 28}, {1, 30}, {2, 0}}
	for i, a := range ordered {
		for j, b := range ordered {
			if got := a.Less(b); got != (i < j) {
				t.Errorf("%v.Less(%v) = %v", a, b, got)
			}
		}
	}
	if s := (Version{1, 28}).String(); s != "1.28" {
		t.Errorf("String() = %q", s)
	}
}

func ptrTo[T any](v T) *T { return &v }

func TestDesireEnvFollowsStatedIstiodVersion(t *testing.T) {
	ms := &v1alpha1.MeshSettings{Spec: v1alpha1.MeshSettingsSpec{
		Target: &v1alpha1.Target{IstiodVersion: "1.27.2"},
		Istiod: &v1alpha1.Istiod{Features: &v1alpha1.IstiodFeatures{InboundRetryPolicy: ptrTo(true), EnhancedDestinationRuleMerge: ptrTo(true)}},
	}}
	// The image tag says nothing ("latest"); spec.target.istiodVersion does.
	d, err := Desire(ms, Current{IstiodVersion: "latest"})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Env.Env) != 1 || d.Env.Env[0].Name != "ENABLE_ENHANCED_DESTINATIONRULE_MERGE" {
		t.Errorf("env %v, want only ENABLE_ENHANCED_DESTINATIONRULE_MERGE", d.Env.Env)
	}
	if len(d.Env.Ignored) != 1 || d.Env.Ignored[0].Name != "ENABLE_INBOUND_RETRY_POLICY" || !strings.Contains(d.Env.Ignored[0].Reason, "1.27.2") {
		t.Errorf("ignored %+v, want ENABLE_INBOUND_RETRY_POLICY for istiod 1.27.2", d.Env.Ignored)
	}
}
