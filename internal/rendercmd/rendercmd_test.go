package rendercmd

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/render"
	"github.com/meshsettings/meshsettings-operator/test/textdiff"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from config/samples")

const (
	samplesDir = "../../config/samples"
	goldenDir  = "testdata/golden"
	goldenTag  = "1.28.1"
)

// samples lists config/samples/*.yaml except the kustomization.
func samples(t *testing.T) []string {
	t.Helper()
	all, err := filepath.Glob(filepath.Join(samplesDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	all = slices.DeleteFunc(all, func(p string) bool { return filepath.Base(p) == "kustomization.yaml" })
	if len(all) == 0 {
		t.Fatalf("no sample in %s", samplesDir)
	}
	return all
}

func goldenPath(sample string) string {
	return filepath.Join(goldenDir, strings.TrimSuffix(filepath.Base(sample), ".yaml")+".golden.yaml")
}

func run(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = Run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestGoldenSamples renders every sample as `render -f <sample>
// --istiod-version 1.28.1` and compares with its golden file. A sample
// without a golden file fails: run `go test ./internal/rendercmd -update`
// and review the new file.
func TestGoldenSamples(t *testing.T) {
	if *update {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]bool{}
	for _, sample := range samples(t) {
		golden := goldenPath(sample)
		want[golden] = true
		t.Run(filepath.Base(sample), func(t *testing.T) {
			code, out, errOut := run("-f", sample, "--istiod-version", goldenTag)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			if *update {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			expected, err := os.ReadFile(golden)
			if os.IsNotExist(err) {
				t.Fatalf("sample %s has no golden file %s: run `go test ./internal/rendercmd -update` and review it", sample, golden)
			}
			if err != nil {
				t.Fatal(err)
			}
			if out != string(expected) {
				t.Errorf("render of %s differs from %s (run with -update if the change is intended)\n%s", sample, golden, textdiff.FirstLine(out, string(expected)))
			}
		})
	}
	goldens, err := filepath.Glob(filepath.Join(goldenDir, "*.golden.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range goldens {
		if want[g] {
			continue
		}
		if *update {
			if err := os.Remove(g); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("golden file %s has no sample in %s: remove it (or run -update)", g, samplesDir)
	}
}

// output is the parsed YAML stream Print writes.
type output struct {
	configMap corev1.ConfigMap
	env       IstiodEnv
	rules     []NamespaceRule
	comments  []string
	header    string // "# MeshSettings <namespace>/<name> (<file>, document <n>)"
}

func parseOutput(t *testing.T, s string) output {
	t.Helper()
	docs := strings.Split(s, "\n---\n")
	if len(docs) != 3 {
		t.Fatalf("want 3 YAML documents, got %d:\n%s", len(docs), s)
	}
	var o output
	header, rest, _ := strings.Cut(docs[0], "\n")
	if !strings.HasPrefix(header, "# MeshSettings ") {
		t.Errorf("output does not start by naming the MeshSettings: %q", header)
	}
	o.header, docs[0] = header, rest
	for _, d := range docs {
		first, _, _ := strings.Cut(d, "\n")
		if !strings.HasPrefix(first, "# ") {
			t.Errorf("document does not start with a comment: %q", first)
		}
		o.comments = append(o.comments, first)
	}
	if err := yaml.UnmarshalStrict([]byte(docs[0]), &o.configMap); err != nil {
		t.Fatalf("ConfigMap: %v", err)
	}
	var env struct {
		IstiodEnv IstiodEnv `json:"istiodEnv"`
	}
	if err := yaml.UnmarshalStrict([]byte(docs[1]), &env); err != nil {
		t.Fatalf("istiodEnv: %v", err)
	}
	o.env = env.IstiodEnv
	var rules struct {
		NamespaceRules []NamespaceRule `json:"namespaceRules"`
	}
	if err := yaml.UnmarshalStrict([]byte(docs[2]), &rules); err != nil {
		t.Fatalf("namespaceRules: %v", err)
	}
	o.rules = rules.NamespaceRules
	return o
}

func readSample(t *testing.T, path string) *v1alpha1.MeshSettings {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ms v1alpha1.MeshSettings
	if err := yaml.UnmarshalStrict(raw, &ms); err != nil {
		t.Fatal(err)
	}
	return &ms
}

// TestGoldenOutputsAreConsistent checks what the golden files say, beyond
// their bytes: the right targets, a re-render that changes nothing, env
// sorted, labels as the rules ask.
func TestGoldenOutputsAreConsistent(t *testing.T) {
	for _, sample := range samples(t) {
		t.Run(filepath.Base(sample), func(t *testing.T) {
			_, out, _ := run("-f", sample, "--istiod-version", goldenTag)
			o := parseOutput(t, out)
			ms := readSample(t, sample)
			targets := render.TargetsFor(&ms.Spec)

			cm := o.configMap
			if cm.Kind != "ConfigMap" || cm.APIVersion != "v1" || cm.Name != targets.ConfigMap || cm.Namespace != ms.Namespace {
				t.Errorf("ConfigMap %s %s %s/%s, want v1 ConfigMap %s/%s", cm.APIVersion, cm.Kind, cm.Namespace, cm.Name, ms.Namespace, targets.ConfigMap)
			}
			wantKeys := 1 // Merge: the mesh key only
			if render.Ownership(&ms.Spec) == v1alpha1.ConfigMapOwn {
				wantKeys = 2 // the ConfigMap the operator creates: mesh and meshNetworks
			}
			if len(cm.Data) != wantKeys || cm.Data[render.MeshKey] == "" {
				t.Errorf("ConfigMap data keys %v, want %d", cm.Data, wantKeys)
			}
			managed, err := render.DecodeManaged(cm.Annotations[render.ManagedKeysAnnotation])
			if err != nil {
				t.Fatal(err)
			}
			again, err := render.Mesh(&ms.Spec, cm.Data[render.MeshKey], managed)
			if err != nil {
				t.Fatal(err)
			}
			if again.Document != cm.Data[render.MeshKey] || !slices.Equal(again.Managed, managed) {
				t.Errorf("re-rendering on the printed ConfigMap is not a no-op:\n%s", again.Document)
			}

			if o.env.Deployment != targets.IstiodDeployment || o.env.Container != targets.IstiodContainer {
				t.Errorf("istiod %s/%s, want %s/%s", o.env.Deployment, o.env.Container, targets.IstiodDeployment, targets.IstiodContainer)
			}
			if !slices.IsSortedFunc(o.env.Env, func(a, b corev1.EnvVar) int { return strings.Compare(a.Name, b.Name) }) {
				t.Errorf("env not sorted: %v", o.env.Env)
			}
			if want := render.Env(&ms.Spec, goldenTag); !reflect.DeepEqual(o.env.Env, want.Env) && (len(want.Env) > 0 || len(o.env.Env) > 0) {
				t.Errorf("env %v, want %v", o.env.Env, want.Env)
			}

			if len(o.rules) != len(ms.Spec.Namespaces) {
				t.Fatalf("%d rules printed for %d namespaces entries", len(o.rules), len(ms.Spec.Namespaces))
			}
			for i, r := range o.rules {
				want := render.RuleLabels(&ms.Spec.Namespaces[i], ms.Spec.Revision)
				if fmt.Sprint(r.Labels) != fmt.Sprint(want) || !slices.Equal(r.Names, ms.Spec.Namespaces[i].Names) {
					t.Errorf("rule %d: %+v, want labels %v for names %v", i, r, want, ms.Spec.Namespaces[i].Names)
				}
			}
		})
	}
}

func TestRunValid(t *testing.T) {
	code, out, errOut := run("-f", "testdata/registry-only.yaml")
	if code != 0 || errOut != assumedRelease("") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	o := parseOutput(t, out)
	if got := o.configMap.Data[render.MeshKey]; got != "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n" {
		t.Errorf("mesh document %q", got)
	}
	if got := o.configMap.Annotations[render.ManagedKeysAnnotation]; got != `["outboundTrafficPolicy"]` {
		t.Errorf("managed-keys annotation %q", got)
	}
	if o.configMap.Name != "istio" || o.configMap.Namespace != "istio-system" {
		t.Errorf("ConfigMap %s/%s", o.configMap.Namespace, o.configMap.Name)
	}
	if o.env.Deployment != "istiod" || o.env.Container != "discovery" || o.env.Env == nil || len(o.env.Env) != 0 {
		t.Errorf("istiod env %+v, want an empty list for istiod/discovery", o.env)
	}
	if !strings.Contains(out, "  env: []\n") {
		t.Errorf("an empty env is printed as an explicit empty list:\n%s", out)
	}
	for i, want := range []string{`# mesh ConfigMap istio-system/istio (key "mesh")`, "# istiod Deployment istio-system/istiod, container discovery", "# namespace label rules"} {
		if !strings.HasPrefix(o.comments[i], want) {
			t.Errorf("section %d starts %q, want %q", i, o.comments[i], want)
		}
	}
}

func TestRunNamespaceDefaultsToIstioSystem(t *testing.T) {
	f := writeTemp(t, "apiVersion: mesh.meshsettings.io/v1alpha1\nkind: MeshSettings\nmetadata:\n  name: x\nspec:\n  revision: canary\n")
	code, out, errOut := run("-f", f)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	o := parseOutput(t, out)
	if o.configMap.Namespace != "istio-system" || o.configMap.Name != "istio-canary" || o.env.Deployment != "istiod-canary" {
		t.Errorf("targets %s/%s, %s", o.configMap.Namespace, o.configMap.Name, o.env.Deployment)
	}
	if _, ok := o.configMap.Data[render.MeshKey]; !ok {
		t.Error("the mesh key is always printed, even empty")
	}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ms.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRunInvalid(t *testing.T) {
	const head = "apiVersion: mesh.meshsettings.io/v1alpha1\nkind: MeshSettings\nmetadata:\n  name: x\n  namespace: istio-system\n"
	const stalled = "passes admission, but the operator would stall it (Stalled=True, reason "
	cases := []struct {
		name    string
		args    []string
		code    int
		mention []string
	}{
		{"unknown meshConfig key", []string{"-f", "testdata/unknown-meshconfig-key.yaml"}, 1,
			[]string{"testdata/unknown-meshconfig-key.yaml, document 1: MeshSettings istio-system/typo " + stalled + "InvalidSpec):\n  - spec.meshConfig.trustDomian", "not a field of Istio's MeshConfig", "; nothing was written"}},
		{"wrong meshConfig type", []string{"-f", writeTemp(t, head+"spec:\n  meshConfig:\n    enablePrometheusMerge: \"yes\"\n")}, 1,
			[]string{stalled + "InvalidSpec)", "spec.meshConfig.enablePrometheusMerge"}},
		{"reserved meshConfig key", []string{"-f", writeTemp(t, head+"spec:\n  meshConfig:\n    outboundTrafficPolicy: {mode: ALLOW_ANY}\n")}, 1,
			[]string{stalled + "InvalidSpec)", "spec.meshConfig.outboundTrafficPolicy", "typed field"}},
		{"unknown spec field, refused as kubectl apply does", []string{"-f", writeTemp(t, head+"spec:\n  outboundTraficPolicy:\n    mode: ALLOW_ANY\n")}, 1,
			[]string{"MeshSettings istio-system/x is invalid (1 error, as the API server reports them):\n  - spec.outboundTraficPolicy: ", `unknown field "spec.outboundTraficPolicy"`}},
		{"port 0", []string{"-f", writeTemp(t, head+"spec:\n  tracing:\n    providers:\n    - name: z\n      zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 0}\n")}, 1,
			[]string{"spec.tracing.providers[0].zipkin.port: Invalid value: 0: spec.tracing.providers[0].zipkin.port in body should be greater than or equal to 1"}},
		{"wrong apiVersion", []string{"-f", writeTemp(t, "apiVersion: mesh.meshsettings.io/v1\nkind: MeshSettings\nmetadata:\n  name: x\n")}, 1,
			[]string{"MeshSettings x is invalid", `apiVersion: Invalid value: "mesh.meshsettings.io/v1": must be mesh.meshsettings.io/v1alpha1`}},
		{"does not parse", []string{"-f", writeTemp(t, "kind: [\n")}, 1, []string{"document 1: MeshSettings (unnamed) is invalid", "does not parse"}},
		{"missing file", []string{"-f", "testdata/does-not-exist.yaml"}, 2, []string{"does-not-exist.yaml"}},
		{"dynamic DNS on istiod 1.28", []string{"-f", writeTemp(t, head+"spec:\n  outboundTrafficPolicy:\n    mode: ALLOW_ANY_DYNAMIC_DNS\n"), "--istiod-version", "1.28.1"}, 1,
			[]string{stalled + "InvalidSpec)", "spec.outboundTrafficPolicy.mode", "1.30"}},
		{"missing --mesh-config file", []string{"-f", "testdata/registry-only.yaml", "--mesh-config", "testdata/none.yaml"}, 2, []string{"none.yaml"}},
		{"invalid current mesh document", []string{"-f", "testdata/registry-only.yaml", "--mesh-config", writeTemp(t, "defaultConfig: [\n")}, 1,
			[]string{stalled + "MeshDocumentRejected)", `ConfigMap istio-system/istio key "mesh": `, "current mesh document", "; nothing is written until it is fixed"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := run(c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d", code, c.code)
			}
			if out != "" {
				t.Errorf("nothing may be printed on stdout, got:\n%s", out)
			}
			if !strings.HasPrefix(errOut, "render: ") {
				t.Errorf("want a report starting \"render: \", got %q", errOut)
			}
			for _, m := range c.mention {
				if !strings.Contains(errOut, m) {
					t.Errorf("stderr %q does not mention %q", errOut, m)
				}
			}
		})
	}
}

func TestRunDynamicDNSOnNewIstiod(t *testing.T) {
	f := writeTemp(t, "apiVersion: mesh.meshsettings.io/v1alpha1\nkind: MeshSettings\nmetadata:\n  name: x\nspec:\n  outboundTrafficPolicy:\n    mode: ALLOW_ANY_DYNAMIC_DNS\n")
	for _, tag := range []string{"1.30.0", ""} {
		if code, _, errOut := run("-f", f, "--istiod-version", tag); code != 0 {
			t.Errorf("istiod %q: exit %d, %s", tag, code, errOut)
		}
	}
}

func TestRunUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"--mesh-config", "x.yaml"}, {"-x"}, {"-f"}} {
		code, out, errOut := run(args...)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
		if out != "" {
			t.Errorf("%q: stdout %q", args, out)
		}
		if !strings.Contains(errOut, "usage: meshsettings-operator render -f meshsettings.yaml") {
			t.Errorf("%q: no usage on stderr: %q", args, errOut)
		}
	}
}

func TestRunIgnoredSettings(t *testing.T) {
	f := writeTemp(t, "apiVersion: mesh.meshsettings.io/v1alpha1\nkind: MeshSettings\nmetadata:\n  name: x\nspec:\n  istiod:\n    features:\n      enhancedResourceScoping: true\n      enhancedDestinationRuleMerge: true\n      deferredStatsCreation: true\n")
	_, out, _ := run("-f", f, "--istiod-version", "1.28.1")
	o := parseOutput(t, out)
	if len(o.env.Env) != 1 || o.env.Env[0].Name != "ENABLE_ENHANCED_DESTINATIONRULE_MERGE" {
		t.Errorf("env %v", o.env.Env)
	}
	// Removed in 1.25 for this version; the deprecated flag whatever the version.
	if len(o.env.Ignored) != 2 || o.env.Ignored[0].Name != "ENABLE_ENHANCED_RESOURCE_SCOPING" || o.env.Ignored[0].Field != "spec.istiod.features.enhancedResourceScoping" ||
		o.env.Ignored[1].Name != "ENABLE_DEFERRED_STATS_CREATION" || o.env.Ignored[1].Field != "spec.istiod.features.deferredStatsCreation" {
		t.Errorf("ignored %v", o.env.Ignored)
	}
	// Without a version the newest release is assumed (issue 15): it does not read the 1.25 removal either.
	_, out, _ = run("-f", f)
	if o := parseOutput(t, out); len(o.env.Env) != 1 || len(o.env.Ignored) != 2 || o.env.Ignored[0].Name != "ENABLE_ENHANCED_RESOURCE_SCOPING" ||
		!strings.Contains(o.env.Ignored[0].Reason, "istiod 1.32 does not read") {
		t.Errorf("without --istiod-version: env %v, ignored %v", o.env.Env, o.env.Ignored)
	}
}

// The mesh document of testdata/current-configmap.yaml once the older spec's
// keys are removed and REGISTRY_ONLY is written; like the current document
// (Helm's "mesh: |-"), it has no final newline.
const afterRegistryOnly = `defaultConfig:
  discoveryAddress: istiod.istio-system.svc:15012
defaultProviders:
  metrics:
  - prometheus
enablePrometheusMerge: true
extensionProviders:
- name: otel-helm
  opentelemetry:
    port: 4317
    service: opentelemetry-collector.observability.svc.cluster.local
outboundTrafficPolicy:
  mode: REGISTRY_ONLY
rootNamespace: istio-system
trustDomain: cluster.local`

func TestRunMeshConfigManifestRemovesUnsetKeys(t *testing.T) {
	code, out, errOut := run("-f", "testdata/registry-only.yaml", "--mesh-config", "testdata/current-configmap.yaml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	o := parseOutput(t, out)
	if got := o.configMap.Data[render.MeshKey]; got != afterRegistryOnly {
		t.Errorf("mesh document\n%s\nwant\n%s", got, afterRegistryOnly)
	}
	if got := o.configMap.Annotations[render.ManagedKeysAnnotation]; got != `["outboundTrafficPolicy"]` {
		t.Errorf("managed-keys annotation %q", got)
	}
	// Only what the operator writes is printed: not Helm's other data keys,
	// labels or annotations (server-side apply leaves those alone).
	if len(o.configMap.Data) != 1 || len(o.configMap.Labels) != 0 || len(o.configMap.Annotations) != 2 || o.configMap.Annotations[render.WrittenValuesAnnotation] == "" {
		t.Errorf("printed ConfigMap carries more than the operator's fields: %+v", o.configMap.ObjectMeta)
	}
}

func TestRunBareMeshDocumentRemovesNothing(t *testing.T) {
	// A bare mesh document has no record of managed keys: nothing is removed.
	current := "accessLogFile: /dev/stdout\noutboundTrafficPolicy:\n  mode: ALLOW_ANY\ntrustDomain: cluster.local\n"
	code, out, errOut := run("-f", "testdata/registry-only.yaml", "--mesh-config", writeTemp(t, current))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := "accessLogFile: /dev/stdout\noutboundTrafficPolicy:\n  mode: REGISTRY_ONLY\ntrustDomain: cluster.local\n"
	if got := parseOutput(t, out).configMap.Data[render.MeshKey]; got != want {
		t.Errorf("mesh document\n%s\nwant\n%s", got, want)
	}
}

func TestRunIsDeterministic(t *testing.T) {
	for _, sample := range samples(t) {
		_, first, _ := run("-f", sample, "--istiod-version", goldenTag)
		for range 10 {
			if _, again, _ := run("-f", sample, "--istiod-version", goldenTag); again != first {
				t.Fatalf("%s: output differs between runs\n%s", sample, textdiff.FirstLine(again, first))
			}
		}
	}
}

// A damaged record gets the controller's policy: everything in the document
// is kept (nothing the record does not prove is removed), and it is reported.
func TestRunDamagedRecordKeepsEveryKey(t *testing.T) {
	cm := writeTemp(t, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: istio\n  annotations:\n    "+
		render.ManagedKeysAnnotation+": 'accessLogFile'\ndata:\n  mesh: 'accessLogFile: /dev/stdout'\n")
	code, out, errOut := run("-f", "testdata/registry-only.yaml", "--mesh-config", cm)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
	for _, m := range []string{"render: warning: ", render.ManagedKeysAnnotation, "ConfigMap istio", "damaged"} {
		if !strings.Contains(errOut, m) {
			t.Errorf("stderr %q does not mention %q", errOut, m)
		}
	}
	if !strings.Contains(out, "accessLogFile: /dev/stdout") {
		t.Errorf("the key the damaged record names is gone:\n%s", out)
	}
}

// A spec that can never fit a ConfigMap gets the controller's verdict
// (InvalidSpec on the largest spec field) from render too.
func TestRunRefusesWhatNoConfigMapHolds(t *testing.T) {
	f := writeTemp(t, "apiVersion: mesh.meshsettings.io/v1alpha1\nkind: MeshSettings\nmetadata:\n  name: x\nspec:\n  meshConfig:\n    ingressClass: "+
		strings.Repeat("x", render.MaxConfigMapData)+"\n")
	code, out, errOut := run("-f", f)
	if code != 1 || out != "" {
		t.Fatalf("exit %d, stdout %d bytes; want exit 1 and nothing printed", code, len(out))
	}
	for _, m := range []string{"spec.meshConfig", "1 MiB"} {
		if !strings.Contains(errOut, m) {
			t.Errorf("stderr %q does not mention %q", errOut, m)
		}
	}
}
