// Package rendercmd is the `meshsettings-operator render` command: it prints
// what the operator would write for a MeshSettings file, without a cluster,
// so changes can be reviewed in CI.
package rendercmd

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/istioschema"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// Output is everything the operator would write for one MeshSettings.
type Output struct {
	ConfigMap *corev1.ConfigMap
	Istiod    IstiodEnv
	Rules     []NamespaceRule
}

// IstiodEnv is the istiod environment the operator owns.
type IstiodEnv struct {
	Deployment string                    `json:"deployment"`
	Container  string                    `json:"container"`
	Env        []corev1.EnvVar           `json:"env"`
	Ignored    []v1alpha1.IgnoredSetting `json:"ignored,omitempty"`
}

// NamespaceRule is one namespaces[] entry and the labels it sets.
type NamespaceRule struct {
	Names    []string              `json:"names,omitempty"`
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	Labels   map[string]string     `json:"labels"`
}

// Exit codes of Run.
const (
	ExitValid   = 0 // every MeshSettings is valid (or there is none)
	ExitInvalid = 1 // at least one MeshSettings is invalid
	ExitUsage   = 2 // bad flags, or an input that cannot be read
)

const usageText = `usage: meshsettings-operator render -f meshsettings.yaml [-f DIR] [-f -] [-o yaml|json] [--mesh-config current-mesh.yaml] [--istiod-version 1.28.1]

Prints what the operator would write for each MeshSettings: the mesh
ConfigMap, istiod's environment entries and the namespace label rules.
Each MeshSettings is first judged as the API server judges kubectl apply
(the CRD's schema and CEL rules, embedded in this binary), then by the
checks only the controller makes (what it would report as Stalled).

-f takes a file, a directory (every *.yaml, *.yml and *.json below it) or -
(stdin), and may be repeated; files may hold several documents separated by
---, and documents of other kinds are skipped, so
    kustomize build overlays/prod | meshsettings-operator render -f -
works. Every invalid MeshSettings is reported on stderr with its file,
document number, name and all of its errors.

Exit codes:
  0  every MeshSettings is valid
  1  at least one MeshSettings is invalid (the others are still printed)
  2  usage error, or an input that cannot be read (nothing is judged)

Flags:`

// sourceList is the repeatable -f flag.
type sourceList []string

func (s *sourceList) String() string     { return strings.Join(*s, ",") }
func (s *sourceList) Set(v string) error { *s = append(*s, v); return nil }

// Run is the command's entry point; it returns the process exit code.
func Run(args []string, stdout, stderr io.Writer) int {
	return RunWithInput(args, os.Stdin, stdout, stderr)
}

// RunWithInput is Run reading `-f -` from stdin.
func RunWithInput(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sources sourceList
	fs.Var(&sources, "f", "MeshSettings manifests: a file, a directory (recursive) or - for stdin; repeatable (required)")
	format := fs.String("o", "yaml", "output format: yaml or json (one JSON object per MeshSettings)")
	current := fs.String("mesh-config", "", "current mesh document, or a ConfigMap manifest holding it under data.mesh; every MeshSettings is rendered against it")
	istiodTag := fs.String("istiod-version", "", "istiod's release or image tag (e.g. 1.28.1): a key or enum value it does not read is refused, typed settings it no longer reads are skipped; default: the newest release known")
	importValues := fs.String("import-helm-values", "", "print a MeshSettings (configMapOwnership Own) holding the meshConfig of these istio-discovery Helm values (a values file or `helm get values --all -o yaml`); fails listing every value it cannot express")
	importName := fs.String("name", "default", "with --import-helm-values: the MeshSettings name")
	importNamespace := fs.String("namespace", "istio-system", "with --import-helm-values: istiod's namespace")
	fs.Usage = func() {
		fmt.Fprintln(stderr, usageText)
		fmt.Fprintln(stderr, "\nor: meshsettings-operator render --import-helm-values values.yaml [--name default] [--namespace istio-system]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if *importValues != "" {
		if err := runImport(*importValues, *importName, *importNamespace, os.ReadFile, stdout); err != nil {
			fmt.Fprintf(stderr, "render: %v\n", err)
			return 1
		}
		return 0
	}
	if len(sources) == 0 || fs.NArg() > 0 || (*format != "yaml" && *format != "json") {
		fs.Usage()
		return ExitUsage
	}
	if note := assumedRelease(*istiodTag); note != "" {
		fmt.Fprint(stderr, note)
	}
	// Without --mesh-config the ConfigMap is taken as absent: with Own, the
	// output is the ConfigMap the operator would create.
	cur := render.Current{IstiodVersion: *istiodTag, NoConfigMap: true}
	if *current != "" {
		var err error
		if cur, err = readCurrent(*current, *istiodTag); err != nil {
			var re *render.RecordError
			if !errors.As(err, &re) {
				fmt.Fprintf(stderr, "render: %v\n", err)
				return ExitUsage
			}
			// The controller's policy for a damaged record: keep every key, say so.
			fmt.Fprintf(stderr, "render: warning: %v\n", err)
		}
	}
	docs, err := readSources(sources, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "render: %v\n", err)
		return ExitUsage
	}
	verdicts, err := judgeAll(docs, cur, *format)
	if err != nil {
		fmt.Fprintf(stderr, "render: %v\n", err)
		return ExitUsage
	}
	return report(verdicts, *format, stdout, stderr)
}

// readCurrent accepts a bare mesh document or a ConfigMap manifest, whose
// annotations tell what the operator manages and replaced. A damaged record
// gives a *render.RecordError along with a usable Current.
func readCurrent(file, istiodTag string) (render.Current, error) {
	cur := render.Current{IstiodVersion: istiodTag}
	raw, err := os.ReadFile(file)
	if err != nil {
		return cur, err
	}
	var probe struct {
		Kind string `json:"kind"`
	}
	if err := yaml.Unmarshal(raw, &probe); err == nil && probe.Kind == "ConfigMap" {
		var cm corev1.ConfigMap
		if err := yaml.Unmarshal(raw, &cm); err != nil {
			return cur, fmt.Errorf("%s: %w", file, err)
		}
		cur.MeshDocument = cm.Data[render.MeshKey]
		cur.MeshNetworks = cm.Data[render.MeshNetworksKey]
		cur.Record, err = render.ReadRecord(fmt.Sprintf("ConfigMap %s (%s)", cm.Name, file), cm.Annotations)
		cur.RecordLost = err != nil
		return cur, err
	}
	cur.MeshDocument = string(raw)
	return cur, nil
}

// Render computes the Output of ms against the current mesh document.
func Render(ms *v1alpha1.MeshSettings, current string, prev render.MeshState, istiodTag string) (*Output, error) {
	return RenderCurrent(ms, render.Current{MeshDocument: current, Record: prev, IstiodVersion: istiodTag, NoConfigMap: current == ""})
}

// RenderCurrent prints render.Desire, the controller's own desired state,
// so `render` and the operator cannot disagree.
func RenderCurrent(ms *v1alpha1.MeshSettings, cur render.Current) (*Output, error) {
	d, err := render.Desire(ms, cur)
	if err != nil {
		return nil, err
	}
	ns := ms.Namespace
	if ns == "" {
		ns = render.DefaultNamespace
	}
	data := map[string]string{render.MeshKey: d.Mesh.Document}
	if d.MeshNetworks != "" {
		data[render.MeshNetworksKey] = d.MeshNetworks
	}
	out := &Output{
		ConfigMap: &corev1.ConfigMap{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
			ObjectMeta: metav1.ObjectMeta{
				Name: d.Targets.ConfigMap, Namespace: ns,
				Annotations: d.MeshAnnotations,
			},
			Data: data,
		},
	}
	out.Istiod = IstiodEnv{Deployment: d.Targets.IstiodDeployment, Container: d.Targets.IstiodContainer, Env: d.Env.Env, Ignored: d.Env.Ignored}
	if out.Istiod.Env == nil {
		out.Istiod.Env = []corev1.EnvVar{}
	}
	for i := range ms.Spec.Namespaces {
		r := &ms.Spec.Namespaces[i]
		out.Rules = append(out.Rules, NamespaceRule{Names: r.Names, Selector: r.Selector.AsMetav1(), Labels: d.Rules[i].Labels})
	}
	return out, nil
}

// Print writes out as a YAML stream: the ConfigMap, then the istiod
// environment and the namespace rules, each introduced by a comment.
func Print(w io.Writer, out *Output) error {
	var b strings.Builder
	section := func(comment string, v any) error {
		y, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		if b.Len() > 0 {
			b.WriteString("---\n")
		}
		b.WriteString("# " + comment + "\n")
		b.Write(y)
		return nil
	}
	cm := out.ConfigMap
	errs := []error{
		section(fmt.Sprintf("mesh ConfigMap %s/%s (key %q)", cm.Namespace, cm.Name, render.MeshKey), cm),
		section(fmt.Sprintf("istiod Deployment %s/%s, container %s: environment entries owned by the operator", cm.Namespace, out.Istiod.Deployment, out.Istiod.Container), map[string]any{"istiodEnv": out.Istiod}),
		section("namespace label rules (first matching rule wins)", map[string]any{"namespaceRules": out.Rules}),
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// assumedRelease is the note render prints when --istiod-version names no
// release: like the controller for an image tag naming none, it checks
// against the newest release known.
func assumedRelease(tag string) string {
	if _, ok := istioschema.ParseRelease(tag); ok {
		return ""
	}
	what := "no --istiod-version"
	if tag != "" {
		what = fmt.Sprintf("--istiod-version %q names no Istio release", tag)
	}
	return fmt.Sprintf("render: %s: settings are checked against Istio %s, the newest release known (a MeshSettings' spec.target.istiodVersion wins)\n",
		what, istioschema.Load().Newest())
}
