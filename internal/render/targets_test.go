package render

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

func TestTargetsFor(t *testing.T) {
	cases := []struct {
		name string
		spec v1alpha1.MeshSettingsSpec
		want Targets
	}{
		{"default revision", v1alpha1.MeshSettingsSpec{},
			Targets{ConfigMap: "istio", IstiodDeployment: "istiod", IstiodContainer: "discovery"}},
		{"revision", v1alpha1.MeshSettingsSpec{Revision: "1-28"},
			Targets{ConfigMap: "istio-1-28", IstiodDeployment: "istiod-1-28", IstiodContainer: "discovery"}},
		{"empty target keeps the defaults", v1alpha1.MeshSettingsSpec{Revision: "canary", Target: &v1alpha1.Target{}},
			Targets{ConfigMap: "istio-canary", IstiodDeployment: "istiod-canary", IstiodContainer: "discovery"}},
		{"configMap override only", v1alpha1.MeshSettingsSpec{Revision: "canary", Target: &v1alpha1.Target{ConfigMapName: "mesh"}},
			Targets{ConfigMap: "mesh", IstiodDeployment: "istiod-canary", IstiodContainer: "discovery"}},
		{"deployment override only", v1alpha1.MeshSettingsSpec{Target: &v1alpha1.Target{IstiodDeploymentName: "pilot"}},
			Targets{ConfigMap: "istio", IstiodDeployment: "pilot", IstiodContainer: "discovery"}},
		{"container override only", v1alpha1.MeshSettingsSpec{Target: &v1alpha1.Target{IstiodContainerName: "pilot"}},
			Targets{ConfigMap: "istio", IstiodDeployment: "istiod", IstiodContainer: "pilot"}},
		{"every override wins over the revision", v1alpha1.MeshSettingsSpec{Revision: "canary", Target: &v1alpha1.Target{
			ConfigMapName: "cm", IstiodDeploymentName: "dep", IstiodContainerName: "c"}},
			Targets{ConfigMap: "cm", IstiodDeployment: "dep", IstiodContainer: "c"}},
	}
	for _, c := range cases {
		if got := TargetsFor(&c.spec); got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestManagedAnnotationRoundTrip(t *testing.T) {
	for _, paths := range [][]Path{
		{"accessLogFile"},
		{"defaultConfig/drainDuration", "defaultConfig/proxyMetadata/FOO", "extensionProviders/name=otel.collector-1", "outboundTrafficPolicy"},
		{"meshMTLS", `weird"key`},
	} {
		enc := EncodeManaged(paths)
		if !strings.HasPrefix(enc, "[") {
			t.Errorf("%v encodes to %q, want a JSON list", paths, enc)
		}
		dec, err := DecodeManaged(enc)
		if err != nil {
			t.Fatalf("DecodeManaged(%q): %v", enc, err)
		}
		if !reflect.DeepEqual(dec, paths) {
			t.Errorf("round trip of %v gave %v", paths, dec)
		}
	}
	if enc := EncodeManaged([]Path{"a", "b"}); enc != `["a","b"]` {
		t.Errorf("EncodeManaged = %s, want [\"a\",\"b\"]", enc)
	}
}

func TestDecodeManaged(t *testing.T) {
	for _, v := range []string{"", "[]", "null"} {
		paths, err := DecodeManaged(v)
		if err != nil || len(paths) != 0 {
			t.Errorf("DecodeManaged(%q) = %v, %v; want no paths", v, paths, err)
		}
	}
	for _, v := range []string{"outboundTrafficPolicy", `{"a":1}`, `["a",`, `[1]`} {
		_, err := DecodeManaged(v)
		if err == nil || !strings.Contains(err.Error(), ManagedKeysAnnotation) {
			t.Errorf("DecodeManaged(%q): want an error naming the annotation, got %v", v, err)
		}
	}
}

func TestProtoDuration(t *testing.T) {
	cases := map[time.Duration]string{
		90 * time.Second:             "90s",
		500 * time.Millisecond:       "0.500s",
		45 * time.Second:             "45s",
		time.Second:                  "1s",
		time.Hour:                    "3600s",
		1500 * time.Millisecond:      "1.500s",
		time.Millisecond:             "0.001s",
		time.Microsecond:             "0.000001s",
		time.Nanosecond:              "0.000000001s",
		0:                            "0s",
		10*time.Minute + time.Second: "601s",
	}
	for d, want := range cases {
		if got := protoDuration(d); got != want {
			t.Errorf("protoDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
