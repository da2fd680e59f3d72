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

// Run is the command's entry point; it returns the process exit code.
func Run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "", "MeshSettings manifest to render (required)")
	current := fs.String("mesh-config", "", "current mesh document, or a ConfigMap manifest holding it under data.mesh")
	istiodTag := fs.String("istiod-version", "", "istiod image tag (e.g. 1.28.1); settings it does not read are skipped")
	importValues := fs.String("import-helm-values", "", "print a MeshSettings (configMapOwnership Own) holding the meshConfig of these istio-discovery Helm values (a values file or `helm get values --all -o yaml`); fails listing every value it cannot express")
	importName := fs.String("name", "default", "with --import-helm-values: the MeshSettings name")
	importNamespace := fs.String("namespace", "istio-system", "with --import-helm-values: istiod's namespace")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: meshsettings-operator render -f meshsettings.yaml [--mesh-config current-mesh.yaml] [--istiod-version 1.28.1]")
		fmt.Fprintln(stderr, "       meshsettings-operator render --import-helm-values values.yaml [--name default] [--namespace istio-system]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *importValues != "" {
		if err := runImport(*importValues, *importName, *importNamespace, os.ReadFile, stdout); err != nil {
			fmt.Fprintf(stderr, "render: %v\n", err)
			return 1
		}
		return 0
	}
	if *file == "" {
		fs.Usage()
		return 2
	}
	out, err := renderFiles(*file, *current, *istiodTag, stderr)
	if err == nil {
		err = Print(stdout, out)
	}
	if err != nil {
		fmt.Fprintf(stderr, "render: %v\n", err)
		return 1
	}
	return 0
}

func renderFiles(file, currentFile, istiodTag string, stderr io.Writer) (*Output, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var ms v1alpha1.MeshSettings
	if err := yaml.UnmarshalStrict(raw, &ms); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if ms.Kind != "MeshSettings" || ms.APIVersion != v1alpha1.GroupVersion.String() {
		return nil, fmt.Errorf("%s: want kind MeshSettings, apiVersion %s; got %q, %q", file, v1alpha1.GroupVersion, ms.Kind, ms.APIVersion)
	}
	// Without --mesh-config the ConfigMap is taken as absent: with Own, the
	// output is the ConfigMap the operator would create.
	cur := render.Current{IstiodVersion: istiodTag, NoConfigMap: true}
	if currentFile != "" {
		if cur, err = readCurrent(currentFile, istiodTag); err != nil {
			var re *render.RecordError
			if !errors.As(err, &re) {
				return nil, err
			}
			// The controller's policy for a damaged record: keep every key, say so.
			fmt.Fprintf(stderr, "render: warning: %v\n", err)
		}
	}
	return RenderCurrent(&ms, cur)
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
		out.Rules = append(out.Rules, NamespaceRule{Names: r.Names, Selector: r.Selector, Labels: d.Rules[i].Labels})
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
