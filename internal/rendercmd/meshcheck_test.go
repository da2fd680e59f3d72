package rendercmd

import (
	"strings"
	"testing"
)

// `render` refuses what istiod would reject, with the controller's verdict:
// the spec field for the spec's own value, the document key for another
// manager's.
func TestRunRefusesWhatIstiodRejects(t *testing.T) {
	const head = "apiVersion: mesh.meshsettings.io/v1alpha1\nkind: MeshSettings\nmetadata:\n  name: x\n  namespace: istio-system\n"
	cases := []struct {
		name    string
		args    []string
		mention []string
	}{
		{"connectTimeout 0s", []string{"-f", writeTemp(t, head+"spec:\n  meshConfig:\n    connectTimeout: 0s\n")},
			[]string{"spec.meshConfig.connectTimeout: istiod rejects the value", "duration must be greater than 1ms"}},
		{"discoveryAddress without port", []string{"-f", writeTemp(t, head+"spec:\n  meshConfig:\n    defaultConfig:\n      discoveryAddress: istiod.istio-system.svc\n")},
			[]string{"spec.meshConfig.defaultConfig.discoveryAddress: istiod rejects the value", "missing port in address"}},
		{"another manager's connectTimeout", []string{"-f", "testdata/registry-only.yaml", "--mesh-config", writeTemp(t, "connectTimeout: 10\n")},
			[]string{"istiod rejects the mesh document", "connectTimeout (written by another manager)", "duration string"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := run(c.args...)
			if code != 1 || out != "" {
				t.Errorf("exit %d with stdout %q; want 1 and nothing printed", code, out)
			}
			t.Log(errOut)
			for _, m := range c.mention {
				if !strings.Contains(errOut, m) {
					t.Errorf("stderr %q does not mention %q", errOut, m)
				}
			}
		})
	}
}
