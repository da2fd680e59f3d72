package rendercmd

import (
	"fmt"
	"strings"
	"testing"
)

// render --istiod-version gives the controller's verdict for each release:
// a key is refused one release before the one that added it, with the
// controller's Stalled message, and accepted from that release on.
func TestRunPerRelease(t *testing.T) {
	for _, c := range []struct{ key, value, added string }{
		{"serviceScopeConfigs", `[{"scope":"LOCAL"}]`, "1.27"},
		{"hboneIdleTimeout", `"3600s"`, "1.29"},
		{"defaultConfig", `{"statsCompression":true}`, "1.29"},
		{"zoneAwareLbSetting", `{}`, "1.31"},
		{"defaultInboundHttpRetryPolicy", `{"attempts":2}`, "1.32"},
	} {
		f := writeTemp(t, "apiVersion: mesh.meshsettings.io/v1alpha1\nkind: MeshSettings\nmetadata:\n  name: x\n  namespace: istio-system\nspec:\n  revision: canary\n  meshConfig:\n    "+c.key+": "+c.value+"\n")
		var major, minor int
		_, _ = fmt.Sscanf(c.added, "%d.%d", &major, &minor)
		before := fmt.Sprintf("%d.%d.1", major, minor-1)
		code, _, errOut := run("-f", f, "--istiod-version", before)
		field := "spec.meshConfig." + c.key
		if c.key == "defaultConfig" {
			field += ".statsCompression"
		}
		want := field + " is read by istiod " + c.added + " and later; istiod-canary runs " + before + "; nothing was written"
		if code != 1 || !strings.Contains(errOut, "reason InvalidSpec)") || !strings.Contains(errOut, want) {
			t.Errorf("%s on %s: exit %d, stderr %q; want exit 1 and %q", c.key, before, code, errOut, want)
		}
		if code, out, errOut := run("-f", f, "--istiod-version", c.added+".0"); code != 0 || !strings.Contains(out, c.key) {
			t.Errorf("%s on %s.0: exit %d, stderr %q, stdout %q", c.key, c.added, code, errOut, out)
		}
	}
}

// Without --istiod-version render checks against the newest release and
// says so; spec.target.istiodVersion states the release instead.
func TestRunAssumesTheNewestRelease(t *testing.T) {
	f := writeTemp(t, "apiVersion: mesh.meshsettings.io/v1alpha1\nkind: MeshSettings\nmetadata:\n  name: x\nspec:\n  meshConfig:\n    defaultInboundHttpRetryPolicy: {attempts: 2}\n")
	code, out, errOut := run("-f", f)
	if code != 0 || !strings.Contains(out, "defaultInboundHttpRetryPolicy") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if want := "render: no --istiod-version: settings are checked against Istio 1.32, the newest release known"; !strings.HasPrefix(errOut, want) {
		t.Errorf("stderr %q, want it to start %q", errOut, want)
	}
	code, _, errOut = run("-f", f, "--istiod-version", "latest")
	if code != 0 || !strings.Contains(errOut, `--istiod-version "latest" names no Istio release`) {
		t.Errorf("latest: exit %d, stderr %q", code, errOut)
	}
	stated := writeTemp(t, "apiVersion: mesh.meshsettings.io/v1alpha1\nkind: MeshSettings\nmetadata:\n  name: x\nspec:\n  target:\n    istiodVersion: \"1.31.4\"\n  meshConfig:\n    defaultInboundHttpRetryPolicy: {attempts: 2}\n")
	code, _, errOut = run("-f", stated)
	if want := "spec.meshConfig.defaultInboundHttpRetryPolicy is read by istiod 1.32 and later; istiod runs 1.31.4 (spec.target.istiodVersion)"; code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("stated 1.31.4: exit %d, stderr %q, want %q", code, errOut, want)
	}
}
