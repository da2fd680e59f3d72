package rendercmd

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshsettings/meshsettings-operator/internal/render"
)

func ms(name, spec string) string {
	return "apiVersion: mesh.meshsettings.io/v1alpha1\nkind: MeshSettings\nmetadata:\n  name: " + name + "\n  namespace: istio-system\nspec:\n" + spec
}

const (
	foreignKinds = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\ndata: {a: b}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n"
	portZero     = "  tracing:\n    providers:\n    - name: z\n      zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 0}\n"
)

func runIn(stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = RunWithInput(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// A folder: recursive, only *.yaml, *.yml and *.json, lexical order; every
// invalid MeshSettings is reported with file, document and every error;
// the valid ones are still printed.
func TestRunDirectory(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a-valid.yaml":           ms("a", "  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"),
		"b/broken-twice.yml":     foreignKinds + "---\n" + ms("b", "  revision: Bad_Rev\n  tracing: {samplingPercentage: \"101\"}\n"),
		"b/c/valid.json":         `{"apiVersion":"mesh.meshsettings.io/v1alpha1","kind":"MeshSettings","metadata":{"name":"c","namespace":"istio-system"},"spec":{"revision":"canary"}}`,
		"b/c/port-zero.yaml":     ms("d", portZero),
		"notes.txt":              ms("ignored", "  revision: Not_Read\n"),
		"kustomization.yaml.bak": ms("ignored2", "  revision: Not_Read\n"),
	})
	code, out, errOut := run("-f", dir)
	if code != ExitInvalid {
		t.Errorf("exit %d, want %d", code, ExitInvalid)
	}
	for _, want := range []string{
		filepath.Join(dir, "b/broken-twice.yml") + ", document 3: MeshSettings istio-system/b is invalid (2 errors, as the API server reports them):",
		`  - spec.revision: Invalid value: "Bad_Rev"`,
		`  - spec.tracing.samplingPercentage: Invalid value: "101": samplingPercentage must be a decimal from 0 to 100, got 101`,
		filepath.Join(dir, "b/c/port-zero.yaml") + ", document 1: MeshSettings istio-system/d is invalid (1 error, as the API server reports them):\n  - spec.tracing.providers[0].zipkin.port: Invalid value: 0",
		"render: 4 MeshSettings: 2 valid, 2 invalid; 2 documents of other kinds skipped\n",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr does not contain %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut+out, "Not_Read") || strings.Contains(out, "ignored") {
		t.Errorf("files other than *.yaml, *.yml, *.json were read:\n%s\n%s", out, errOut)
	}
	// The valid ones, in lexical order: a-valid.yaml, then b/c/valid.json.
	objects := strings.Split(out, "---\n# MeshSettings ")
	if len(objects) != 2 || !strings.HasPrefix(objects[0], "# MeshSettings istio-system/a ("+filepath.Join(dir, "a-valid.yaml")+", document 1)\n") ||
		!strings.HasPrefix(objects[1], "istio-system/c ("+filepath.Join(dir, "b/c/valid.json")+", document 1)\n") {
		t.Errorf("want the outputs of a then c, got:\n%s", out)
	}
	if !strings.Contains(objects[1], "name: istio-canary") {
		t.Errorf("c renders its own targets:\n%s", objects[1])
	}
}

// `kustomize build | render -f -`: a stream of several kinds, read once.
func TestRunStdinStream(t *testing.T) {
	stream := foreignKinds + "---\n# a comment-only document\n---\n" + ms("one", "  outboundTrafficPolicy: {mode: ALLOW_ANY}\n") + "---\n" + ms("two", "  revision: canary\n")
	code, out, errOut := runIn(stream, "-f", "-")
	if code != ExitValid {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "# MeshSettings istio-system/one (<stdin>, document 4)\n") || !strings.Contains(out, "# MeshSettings istio-system/two (<stdin>, document 5)\n") {
		t.Errorf("want both MeshSettings named with their document numbers:\n%s", out)
	}
	if errOut != assumedRelease("")+"render: 2 MeshSettings: 2 valid, 0 invalid; 2 documents of other kinds skipped\n" {
		t.Errorf("stderr %q", errOut)
	}
	if code, _, errOut := runIn(stream, "-f", "-", "-f", "-"); code != ExitUsage || !strings.Contains(errOut, "stdin can be read once") {
		t.Errorf("-f - twice: exit %d, %q", code, errOut)
	}
}

func TestRunOneForeignKind(t *testing.T) {
	first, _, _ := strings.Cut(foreignKinds, "---")
	code, _, errOut := runIn(first, "-f", "-")
	if code != ExitValid || !strings.HasSuffix(errOut, "render: 0 MeshSettings: 0 valid, 0 invalid; 1 document of another kind skipped\n") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestRunOnlyForeignKinds(t *testing.T) {
	code, out, errOut := runIn(foreignKinds, "-f", "-")
	if code != ExitValid || out != "" || errOut != assumedRelease("")+"render: 0 MeshSettings: 0 valid, 0 invalid; 2 documents of other kinds skipped\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// kubectl get -o yaml prints a List.
func TestRunList(t *testing.T) {
	list := `{"apiVersion":"v1","kind":"List","items":[` +
		`{"apiVersion":"mesh.meshsettings.io/v1alpha1","kind":"MeshSettings","metadata":{"name":"ok","namespace":"istio-system"},"spec":{}},` +
		`{"apiVersion":"mesh.meshsettings.io/v1alpha1","kind":"MeshSettings","metadata":{"name":"bad","namespace":"istio-system"},"spec":{"revision":"X"}}]}`
	code, _, errOut := runIn(list, "-f", "-")
	if code != ExitInvalid || !strings.Contains(errOut, "<stdin>, document 1, item 2: MeshSettings istio-system/bad is invalid") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

// Several -f, and the exit codes: 0 valid, 1 invalid, 2 usage or I/O.
func TestRunExitCodes(t *testing.T) {
	dir := writeFiles(t, map[string]string{"ok.yaml": ms("ok", "  revision: canary\n"), "bad.yaml": ms("bad", portZero)})
	ok, bad := filepath.Join(dir, "ok.yaml"), filepath.Join(dir, "bad.yaml")
	cases := []struct {
		args []string
		code int
	}{
		{[]string{"-f", ok}, ExitValid},
		{[]string{"-f", ok, "-f", ok}, ExitValid},
		{[]string{"-f", ok, "-f", bad}, ExitInvalid},
		{[]string{"-f", bad, "-o", "json"}, ExitInvalid},
		{[]string{"-f", ok, "-f", filepath.Join(dir, "missing.yaml")}, ExitUsage}, // nothing judged on partial input
		{[]string{"-f", ok, "-o", "table"}, ExitUsage},
		{[]string{"-f", ok, "extra-arg"}, ExitUsage},
		{[]string{}, ExitUsage},
	}
	for _, c := range cases {
		code, out, errOut := run(c.args...)
		if code != c.code {
			t.Errorf("%q: exit %d, want %d (stderr %q)", c.args, code, c.code, errOut)
		}
		if c.code == ExitUsage && out != "" {
			t.Errorf("%q: printed %q on a usage or I/O error", c.args, out)
		}
	}
}

func TestRunHelpDocumentsExitCodes(t *testing.T) {
	code, _, errOut := run("-h")
	if code != ExitUsage {
		t.Errorf("exit %d", code)
	}
	for _, want := range []string{"Exit codes:", "0  every MeshSettings is valid", "1  at least one MeshSettings is invalid", "2  usage error, or an input that cannot be read", "kustomize build overlays/prod | meshsettings-operator render -f -", "-o string"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("help does not contain %q:\n%s", want, errOut)
		}
	}
}

// -o json: one object per MeshSettings, a stream jq reads.
func TestRunJSON(t *testing.T) {
	stream := ms("one", "  outboundTrafficPolicy: {mode: ALLOW_ANY}\n") + "---\n" + ms("two", "  revision: canary\n  namespaces:\n  - names: [bookinfo]\n    dataplane: Ambient\n")
	code, out, errOut := runIn(stream, "-f", "-", "-o", "json")
	if code != ExitValid {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	var got []jsonOutput
	for dec.More() {
		var o struct {
			jsonOutput
			ConfigMap struct {
				Kind string            `json:"kind"`
				Data map[string]string `json:"data"`
			} `json:"configMap"`
		}
		if err := dec.Decode(&o); err != nil {
			t.Fatalf("not a JSON stream: %v\n%s", err, out)
		}
		if o.ConfigMap.Kind != "ConfigMap" || o.ConfigMap.Data[render.MeshKey] == "" && o.MeshSettings.Name == "one" {
			t.Errorf("%s: ConfigMap %+v", o.MeshSettings.Name, o.ConfigMap)
		}
		got = append(got, o.jsonOutput)
	}
	if len(got) != 2 {
		t.Fatalf("want 2 objects, got %d:\n%s", len(got), out)
	}
	if s := got[0].MeshSettings; s != (jsonSource{Namespace: "istio-system", Name: "one", Source: stdinName, Document: 1}) {
		t.Errorf("first object names %+v", s)
	}
	if got[0].NamespaceRules == nil || len(got[0].NamespaceRules) != 0 {
		t.Errorf("no rules is an empty list, got %#v", got[0].NamespaceRules)
	}
	if r := got[1].NamespaceRules; len(r) != 1 || r[0].Labels["istio.io/dataplane-mode"] != "ambient" {
		t.Errorf("second object's rules %+v", r)
	}
	if got[1].IstiodEnv.Deployment != "istiod-canary" {
		t.Errorf("second object's istiod %+v", got[1].IstiodEnv)
	}
}
