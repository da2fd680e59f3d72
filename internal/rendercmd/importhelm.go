package rendercmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// ImportError lists every meshConfig value of a Helm release that a
// MeshSettings cannot express: the import never drops one silently.
type ImportError struct {
	Problems []string
}

func (e *ImportError) Error() string {
	return fmt.Sprintf("%d meshConfig values cannot be expressed by a MeshSettings (nothing was written):\n  %s",
		len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// ImportOptions name the MeshSettings an import produces.
type ImportOptions struct {
	Name, Namespace string
}

// ImportHelmValues turns the meshConfig values of an istio-discovery release
// (a values file, or `helm get values --all -o yaml`) into a MeshSettings
// with configMapOwnership Own. Keys a typed field covers go to that field,
// every other key to spec.meshConfig. The result is rendered back and
// compared with the values: any value the MeshSettings would not write as
// given is listed in an *ImportError.
func ImportHelmValues(values []byte, opts ImportOptions) (*v1alpha1.MeshSettings, error) {
	var vals map[string]any
	if err := yaml.Unmarshal(values, &vals); err != nil {
		return nil, fmt.Errorf("reading Helm values: %w", err)
	}
	imp := &importer{}
	// `helm get values --all` shows the chart's own defaults under
	// _internal_defaults_do_not_set; the chart merges the user's values over them.
	defaults, _ := vals["_internal_defaults_do_not_set"].(map[string]any)
	for _, key := range []string{"profile", "compatibilityVersion", "platform"} {
		for _, scope := range []map[string]any{vals, defaults, asMap(vals["global"]), asMap(asMap(defaults)["global"])} {
			if v, ok := scope[key]; ok && v != nil && v != "" {
				imp.valueProblem(key, fmt.Sprintf("%v: the chart merges that file's meshConfig, which the importer cannot read; write those values into meshConfig explicitly and import again", v))
			}
		}
	}
	mesh := mergeOverwrite(deepCopy(asMap(asMap(defaults)["meshConfig"])), asMap(vals["meshConfig"]))
	revision, _ := vals["revision"].(string)
	if revision == "" {
		revision, _ = asMap(defaults)["revision"].(string)
	}

	ms := &v1alpha1.MeshSettings{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "MeshSettings"},
		ObjectMeta: metav1.ObjectMeta{Name: opts.Name, Namespace: opts.Namespace},
		Spec:       v1alpha1.MeshSettingsSpec{Revision: revision, ConfigMapOwnership: v1alpha1.ConfigMapOwn},
	}
	imp.spec = &ms.Spec
	imp.mesh(mesh)

	// Rendered back and compared even after problems: every value is listed.
	if res, err := render.MergeMesh(&ms.Spec, "", render.MeshState{}); err != nil {
		imp.problem("", "the imported settings do not render: "+err.Error())
	} else {
		{
			var out map[string]any
			if err := yaml.Unmarshal([]byte(res.Document), &out); err != nil {
				return nil, err
			}
			imp.compare("", mesh, out)
		}
	}
	if len(imp.problems) > 0 {
		sort.Strings(imp.problems)
		return nil, &ImportError{Problems: slices.Compact(imp.problems)}
	}
	return ms, nil
}

type importer struct {
	spec     *v1alpha1.MeshSettingsSpec
	problems []string
	reported []string // paths already explained, not reported again by compare
}

// valueProblem is a problem with a value outside meshConfig.
func (imp *importer) valueProblem(key, msg string) {
	imp.problems = append(imp.problems, key+": "+msg)
}

func (imp *importer) problem(path, msg string) {
	if path != "" {
		imp.reported = append(imp.reported, path)
		msg = "meshConfig." + path + ": " + msg
	}
	imp.problems = append(imp.problems, msg)
}

// mesh maps the meshConfig value onto the spec.
func (imp *importer) mesh(mesh map[string]any) {
	spec := imp.spec
	extra := map[string]apiextensionsv1.JSON{}
	tracing := &v1alpha1.Tracing{}
	logging := &v1alpha1.AccessLogging{}
	authz := &v1alpha1.Authorization{}
	for _, k := range slices.Sorted(maps.Keys(mesh)) {
		v := mesh[k]
		switch k {
		case "outboundTrafficPolicy":
			spec.OutboundTrafficPolicy = &v1alpha1.OutboundTrafficPolicy{}
			imp.decode(k, v, spec.OutboundTrafficPolicy)
		case "discoverySelectors":
			imp.decode(k, v, &spec.DiscoverySelectors)
		case "enableTracing":
			imp.decode(k, v, &tracing.Enabled)
		case "accessLogFile":
			imp.decode(k, v, &logging.File)
		case "accessLogEncoding":
			imp.decode(k, v, &logging.Encoding)
		case "accessLogFormat":
			imp.decode(k, v, &logging.Format)
		case "defaultProviders":
			for _, sub := range slices.Sorted(maps.Keys(asMap(v))) {
				switch sub {
				case "tracing":
					imp.decode(k+"."+sub, asMap(v)[sub], &tracing.DefaultProviders)
				case "accessLogging":
					imp.decode(k+"."+sub, asMap(v)[sub], &logging.DefaultProviders)
				default:
					imp.problem(k+"."+sub, "no MeshSettings field sets it (defaultProviders is written by tracing and accessLogging only); keep it in the ConfigMap's baseline instead, or use a Telemetry resource")
				}
			}
		case "extensionProviders":
			list, _ := v.([]any)
			for i, item := range list {
				imp.provider(fmt.Sprintf("%s[%d]", k, i), asMap(item), tracing, logging, authz)
			}
		case "defaultHttpRetryPolicy":
			imp.retry(k, asMap(v))
		case "defaultConfig":
			imp.defaultConfig(asMap(v), extra)
		default:
			raw, err := json.Marshal(v)
			if err != nil {
				imp.problem(k, err.Error())
				continue
			}
			extra[k] = apiextensionsv1.JSON{Raw: raw}
		}
	}
	if !reflect.DeepEqual(*tracing, v1alpha1.Tracing{}) {
		spec.Tracing = tracing
	}
	if !reflect.DeepEqual(*logging, v1alpha1.AccessLogging{}) {
		spec.AccessLogging = logging
	}
	if len(authz.Providers) > 0 {
		spec.Authorization = authz
	}
	if len(extra) > 0 {
		spec.MeshConfig = extra
	}
}

func (imp *importer) provider(path string, item map[string]any, tracing *v1alpha1.Tracing, logging *v1alpha1.AccessLogging, authz *v1alpha1.Authorization) {
	name, _ := item["name"].(string)
	var kinds []string
	for k := range item {
		if k != "name" {
			kinds = append(kinds, k)
		}
	}
	if name == "" || len(kinds) != 1 {
		imp.problem(path, "an extension provider needs a name and exactly one kind")
		return
	}
	switch kind := kinds[0]; kind {
	case "zipkin", "opentelemetry", "datadog", "skywalking":
		var p v1alpha1.TracingProvider
		if imp.decode(path, item, &p) {
			tracing.Providers = append(tracing.Providers, p)
		}
	case "envoyExtAuthzHttp", "envoyExtAuthzGrpc":
		var p v1alpha1.AuthorizationProvider
		if imp.decode(path, item, &p) {
			authz.Providers = append(authz.Providers, p)
		}
	case "envoyOtelAls":
		var p v1alpha1.AccessLogProvider
		if imp.decode(path, item, &p) {
			logging.Providers = append(logging.Providers, p)
		}
	case "envoyFileAccessLog":
		f := asMap(item[kind])
		conv := map[string]any{"path": f["path"]}
		for k, v := range asMap(f["logFormat"]) {
			conv[k] = v // text or labels
		}
		p := v1alpha1.AccessLogProvider{Name: name, EnvoyFileAccessLog: &v1alpha1.EnvoyFileAccessLogProvider{}}
		if imp.decode(path, conv, p.EnvoyFileAccessLog) {
			logging.Providers = append(logging.Providers, p)
		}
	default:
		imp.problem(path, fmt.Sprintf("provider %q of kind %s: MeshSettings has no field for this kind", name, kind))
	}
}

func (imp *importer) retry(path string, v map[string]any) {
	r := &v1alpha1.RetryPolicy{}
	conv := maps.Clone(v)
	if on, ok := v["retryOn"].(string); ok {
		conv["retryOn"] = strings.Split(on, ",")
	}
	if imp.decode(path, conv, r) {
		imp.spec.RetryPolicy = r
	}
}

func (imp *importer) defaultConfig(dc map[string]any, extra map[string]apiextensionsv1.JSON) {
	drain := &v1alpha1.Drain{}
	proxy := &v1alpha1.Proxy{}
	rest := map[string]any{}
	for _, k := range slices.Sorted(maps.Keys(dc)) {
		v, path := dc[k], "defaultConfig."+k
		switch k {
		case "drainDuration":
			imp.decode(path, v, &drain.DrainDuration)
		case "terminationDrainDuration":
			if drain.Termination == nil { // WhenIdle, from proxyMetadata, is reported instead
				drain.Termination = &v1alpha1.DrainTermination{Strategy: v1alpha1.TerminationFixed}
				imp.decode(path, v, &drain.Termination.Duration)
			}
		case "holdApplicationUntilProxyStarts":
			imp.decode(path, v, &drain.HoldApplicationUntilProxyStarts)
		case "image":
			imp.decode(path, v, proxy)
		case "proxyMetadata":
			md := map[string]string{}
			imp.decode(path, v, &md)
			if md["EXIT_ON_ZERO_ACTIVE_CONNECTIONS"] == "true" {
				if _, fixed := dc["terminationDrainDuration"]; fixed {
					imp.problem(path+".EXIT_ON_ZERO_ACTIVE_CONNECTIONS", "set beside terminationDrainDuration: a MeshSettings drains either after a fixed time or when idle")
				}
				drain.Termination = &v1alpha1.DrainTermination{Strategy: v1alpha1.TerminationWhenIdle}
				if d, ok := md["MINIMUM_DRAIN_DURATION"]; ok {
					imp.decode(path+".MINIMUM_DRAIN_DURATION", d, &drain.Termination.Duration)
				}
				delete(md, "EXIT_ON_ZERO_ACTIVE_CONNECTIONS")
				delete(md, "MINIMUM_DRAIN_DURATION")
			}
			if c, ok := md["ISTIO_META_DNS_CAPTURE"]; ok && (c == "true" || c == "false") {
				capture := c == "true"
				proxy.DNSCapture = &capture
				delete(md, "ISTIO_META_DNS_CAPTURE")
			}
			if len(md) > 0 {
				proxy.Metadata = md
			}
		default:
			rest[k] = v
		}
	}
	if !reflect.DeepEqual(*drain, v1alpha1.Drain{}) {
		imp.spec.Drain = drain
	}
	if !reflect.DeepEqual(*proxy, v1alpha1.Proxy{}) {
		imp.spec.Proxy = proxy
	}
	if len(rest) > 0 {
		raw, err := json.Marshal(rest)
		if err != nil {
			imp.problem("defaultConfig", err.Error())
			return
		}
		extra["defaultConfig"] = apiextensionsv1.JSON{Raw: raw}
	}
}

// decode converts a values fragment into an API type; a value of the wrong
// shape is a problem. Unknown fields are left for compare to report.
func (imp *importer) decode(path string, v, out any) bool {
	raw, err := json.Marshal(v)
	if err == nil {
		err = json.Unmarshal(raw, out)
	}
	if err != nil {
		imp.problem(path, fmt.Sprintf("%s does not fit the MeshSettings field: %v", compact(v), err))
		return false
	}
	return true
}

// compare reports every value of want (the release's meshConfig) that got
// (the rendered MeshSettings) does not hold. Extension providers compare by
// name; durations by length of time ("1m" is "60s").
func (imp *importer) compare(path string, want, got any) {
	if imp.explained(path) {
		return
	}
	switch w := want.(type) {
	case map[string]any:
		g, _ := got.(map[string]any) // absent: each key is reported
		for _, k := range slices.Sorted(maps.Keys(w)) {
			p := k
			if path != "" {
				p = path + "." + k
			}
			if path == "" && k == "extensionProviders" {
				imp.compareProviders(asList(w[k]), asList(g[k]))
				continue
			}
			gv, present := g[k]
			if _, isMap := w[k].(map[string]any); !present && isMap && imp.explainedBelow(p) {
				imp.compare(p, w[k], nil) // the keys not explained yet are reported one by one
				continue
			}
			if !present && w[k] != nil && !imp.explained(p) {
				imp.problem(p, fmt.Sprintf("%s is not written by the MeshSettings", compact(w[k])))
				continue
			}
			imp.compare(p, w[k], gv)
		}
	default:
		if !sameValue(want, got) {
			imp.problem(path, fmt.Sprintf("%s would be written as %s", compact(want), compact(got)))
		}
	}
}

// explained: a problem was reported at path or above it.
func (imp *importer) explained(path string) bool {
	return slices.ContainsFunc(imp.reported, func(r string) bool { return within(path, r) })
}

// explainedBelow: a problem was reported under path.
func (imp *importer) explainedBelow(path string) bool {
	return slices.ContainsFunc(imp.reported, func(r string) bool { return within(r, path) })
}

func within(path, parent string) bool {
	return path == parent || strings.HasPrefix(path, parent+".") || strings.HasPrefix(path, parent+"[")
}

func (imp *importer) compareProviders(want, got []any) {
	for i, w := range want {
		name := asMap(w)["name"]
		path := fmt.Sprintf("extensionProviders[%d]", i)
		i := slices.IndexFunc(got, func(g any) bool { return asMap(g)["name"] == name })
		if i < 0 {
			imp.compare(path, w, nil)
			continue
		}
		imp.compare(path, w, got[i])
	}
}

func sameValue(want, got any) bool {
	if reflect.DeepEqual(want, got) {
		return true
	}
	if ws, ok := want.(string); ok {
		if gs, ok := got.(string); ok {
			wd, err1 := time.ParseDuration(ws)
			gd, err2 := time.ParseDuration(gs)
			return err1 == nil && err2 == nil && wd == gd
		}
	}
	wl, ok1 := want.([]any)
	gl, ok2 := got.([]any)
	if ok1 && ok2 && len(wl) == len(gl) {
		for i := range wl {
			if !sameValue(wl[i], gl[i]) {
				return false
			}
		}
		return true
	}
	wm, ok1 := want.(map[string]any)
	gm, ok2 := got.(map[string]any)
	if ok1 && ok2 && len(wm) == len(gm) {
		for k := range wm {
			if !sameValue(wm[k], gm[k]) {
				return false
			}
		}
		return true
	}
	return false
}

func compact(v any) string {
	if v == nil {
		return "nothing"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func deepCopy(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			v = deepCopy(sub)
		}
		out[k] = v
	}
	return out
}

// mergeOverwrite is sprig's: maps merge key by key, other values replace.
func mergeOverwrite(dst, src map[string]any) map[string]any {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				dst[k] = mergeOverwrite(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
	return dst
}

// importHandoff is printed above the imported MeshSettings.
const importHandoff = `# Imported from the Helm release's meshConfig values. Hand the ConfigMap over
# without a moment where istiod lacks it (docs/helm.md, "Migrating"):
#   1. kubectl -n %[1]s annotate configmap %[2]s helm.sh/resource-policy=keep
#   2. kubectl apply -f <this file>       # wait for Ready=True
#   3. helm upgrade <release> istio/istiod -n %[1]s --reuse-values --set configMap=false
`

// runImport is `render --import-helm-values`.
func runImport(file, name, namespace string, read func(string) ([]byte, error), stdout io.Writer) error {
	raw, err := read(file)
	if err != nil {
		return err
	}
	ms, err := ImportHelmValues(raw, ImportOptions{Name: name, Namespace: namespace})
	if err != nil {
		var ie *ImportError
		if errors.As(err, &ie) {
			return fmt.Errorf("%s: %w", file, err)
		}
		return err
	}
	out, err := yaml.Marshal(ms)
	if err != nil {
		return err
	}
	cleaned, err := dropEmpty(out)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, importHandoff+"%[3]s", namespace, render.TargetsFor(&ms.Spec).ConfigMap, cleaned)
	return err
}

// dropEmpty removes the empty status and creationTimestamp the API types marshal.
func dropEmpty(doc []byte) (string, error) {
	var m map[string]any
	if err := yaml.Unmarshal(doc, &m); err != nil {
		return "", err
	}
	delete(m, "status")
	if md := asMap(m["metadata"]); md != nil {
		delete(md, "creationTimestamp")
	}
	out, err := yaml.Marshal(m)
	return string(out), err
}
