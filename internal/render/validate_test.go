package render

import (
	"errors"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

func meshConfigSpec(kv ...string) *v1alpha1.MeshSettingsSpec {
	mc := map[string]apiextensionsv1.JSON{}
	for i := 0; i < len(kv); i += 2 {
		mc[kv[i]] = rawJSON(kv[i+1])
	}
	return &v1alpha1.MeshSettingsSpec{MeshConfig: mc}
}

// Values of the spec that istiod rejects (issue 13 item 5) are the spec's
// error, named by the spec field, in MergeMesh and so in the controller
// (InvalidSpec) and in `render`.
func TestMergeMeshRefusesSpecValuesIstiodRejects(t *testing.T) {
	cases := []struct {
		name    string
		spec    *v1alpha1.MeshSettingsSpec
		current string
		field   string
		msg     string
	}{
		{"connectTimeout 0s", meshConfigSpec("connectTimeout", `"0s"`), "", "spec.meshConfig.connectTimeout", "duration must be greater than 1ms"},
		{"proxyListenPort 70000", meshConfigSpec("proxyListenPort", `70000`), "", "spec.meshConfig.proxyListenPort", "port number 70000 must be in the range 1..65535"},
		{"discoveryAddress without port", meshConfigSpec("defaultConfig", `{"discoveryAddress":"istiod.istio-system.svc"}`), helmMesh(t),
			"spec.meshConfig.defaultConfig.discoveryAddress", "missing port in address"},
		{"statusPort 0", meshConfigSpec("defaultConfig", `{"statusPort":0}`), "", "spec.meshConfig.defaultConfig.statusPort", "port number 0"},
		{"trustDomain with a space", meshConfigSpec("trustDomain", `"prod example.com"`), helmMesh(t), "spec.meshConfig.trustDomain", `trust domain name "prod example.com" invalid`},
		{"proto field name", meshConfigSpec("connect_timeout", `"7200s"`), "", "spec.meshConfig.connect_timeout", "must be >1ms and <1h0m0s"},
		{"nested key", meshConfigSpec("defaultTrafficPolicy", `{"connectionPool":{"tcp":{"connectTimeout":"0.000500s"}}}`), "",
			"spec.meshConfig.defaultTrafficPolicy.connectionPool.tcp.connectTimeout", "duration must be greater than 1ms"},
		{"typed field", &v1alpha1.MeshSettingsSpec{Drain: &v1alpha1.Drain{DrainDuration: &metav1.Duration{Duration: 1500 * time.Millisecond}}}, "",
			"spec.drain.drainDuration", "seconds precision"},
		{"own problem first, another manager's too", meshConfigSpec("proxyListenPort", `0`), "connectTimeout: 0s\n", "spec.meshConfig.proxyListenPort", "port number 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := MergeMesh(c.spec, c.current, MeshState{})
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("MergeMesh = %q, %v; want a *FieldError", res.Document, err)
			}
			t.Log(err)
			if fe.Field != c.field || !strings.Contains(fe.Msg, c.msg) || !strings.Contains(fe.Msg, "istiod rejects") {
				t.Fatalf("got %v; want field %s with %q", err, c.field, c.msg)
			}
		})
	}
}

// A bad value the spec does not set fails the whole document too: a
// *MeshDocumentError naming the key (MeshDocumentRejected), nothing to write.
func TestMergeMeshRefusesOtherManagersValues(t *testing.T) {
	spec := &v1alpha1.MeshSettingsSpec{
		OutboundTrafficPolicy: &v1alpha1.OutboundTrafficPolicy{Mode: v1alpha1.OutboundRegistryOnly},
		Proxy:                 &v1alpha1.Proxy{Metadata: map[string]string{"A": "b"}},
	}
	cases := []struct {
		name, current string
		prev          MeshState
		key, msg      string
		foreign       bool
	}{
		{"a number for a duration", "connectTimeout: 10\n", MeshState{}, "connectTimeout", "it takes a duration string", true},
		{"beside the operator's keys in defaultConfig", "defaultConfig:\n  statusPort: 0\n  proxyMetadata:\n    B: c\n", MeshState{},
			"defaultConfig.statusPort", "port number 0", true},
		{"an unquoted proxyMetadata bool", "defaultConfig:\n  proxyMetadata:\n    B: true\n", MeshState{}, "defaultConfig.proxyMetadata.B", "it takes a string", true},
		{"a value put back from the record", "trustDomain: td\n", MeshState{Managed: []Path{"trustDomain"}, Replaced: map[Path]any{"trustDomain": "bad td"}},
			"trustDomain", "invalid", false},
		{"not a mapping", "- a\n", MeshState{}, "", "not a valid YAML mapping", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, err := MergeMesh(spec, c.current, c.prev)
			var de *MeshDocumentError
			if !errors.As(err, &de) {
				t.Fatalf("MergeMesh = %q, %v; want a *MeshDocumentError", res.Document, err)
			}
			t.Log(err)
			if len(de.Problems) != 1 || de.Problems[0].Key != c.key || !strings.Contains(de.Problems[0].Msg, c.msg) || de.Problems[0].Foreign != c.foreign {
				t.Fatalf("got %+v; want one problem at %q with %q, foreign %v", de.Problems, c.key, c.msg, c.foreign)
			}
			if c.foreign && !strings.Contains(err.Error(), "written by another manager") {
				t.Fatalf("error %q does not say another manager wrote the key", err)
			}
		})
	}
}

func TestMergeMeshAcceptsWhatIstiodAccepts(t *testing.T) {
	// An unknown key is not rejected: istiod drops it silently.
	for _, current := range []string{"", helmMesh(t), "someTypo: 1\nconnectTimeout: 5s\n"} {
		if _, err := MergeMesh(fullSpec(), current, MeshState{}); err != nil {
			t.Errorf("MergeMesh(fullSpec, %q) = %v", current, err)
		}
	}
}

// ReleaseMesh does not judge: deletion must not wait for other managers to
// mend their keys.
func TestReleaseMeshDoesNotJudge(t *testing.T) {
	res, err := ReleaseMesh("connectTimeout: 10\noutboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n", MeshState{Managed: []Path{"outboundTrafficPolicy"}})
	if err != nil || res.Document != "connectTimeout: 10\n" {
		t.Fatalf("ReleaseMesh = %q, %v", res.Document, err)
	}
	if _, err := MergeMesh(&v1alpha1.MeshSettingsSpec{}, "connectTimeout: 10\n", MeshState{}); err == nil {
		t.Fatal("MergeMesh accepted a document istiod rejects")
	}
}

func TestMergeMeshNamesEverySpecValueIstiodRejects(t *testing.T) {
	_, err := MergeMesh(meshConfigSpec("connectTimeout", `"0s"`, "proxyListenPort", `70000`), "", MeshState{})
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "spec.meshConfig.proxyListenPort" ||
		!strings.Contains(fe.Msg, "also spec.meshConfig.connectTimeout: duration must be greater than 1ms") {
		t.Fatalf("MergeMesh = %v; want spec.meshConfig.proxyListenPort, also naming spec.meshConfig.connectTimeout", err)
	}
}
