package render

import (
	"flag"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

var updateDocs = flag.Bool("update", false, "rewrite the table of docs/proxy-restart.md from SpecImpacts")

const (
	impactDoc        = "../../docs/proxy-restart.md"
	impactTableBegin = "<!-- impact table: generated from internal/render/restart.go by `go test ./internal/render -run TestImpactDoc -update` -->"
	impactTableEnd   = "<!-- end of impact table -->"
)

// unclassified walks a spec type by its JSON field names and returns the
// fields no row covers (a row covers its Field and everything below it),
// and the rows naming no field of the type. A struct field with no row
// of its own is walked into; a field of any other kind (a scalar, a map,
// a list of scalars) must be covered.
func unclassified(spec reflect.Type, rows []Impact) (missing, stale []string) {
	under := func(path, parent string) bool {
		return strings.HasPrefix(path, parent+".") || strings.HasPrefix(path, parent+"[].")
	}
	// exact: a row names path or one of its parents.
	exact := func(path string) bool {
		return slices.ContainsFunc(rows, func(r Impact) bool { return r.Field == path || under(path, r.Field) })
	}
	// covered: some row names a field below path.
	covered := func(path string) bool {
		return slices.ContainsFunc(rows, func(r Impact) bool { return under(r.Field, path) })
	}
	known := map[string]bool{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if f.Anonymous && name == "" { // inlined (Endpoint): its fields are the parent's
				walk(ft, prefix)
				continue
			}
			if name == "" || name == "-" {
				continue
			}
			path := prefix + name
			known[path] = true
			child := path + "."
			if ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct {
				child = path + "[]."
				ft = ft.Elem()
			}
			switch {
			case exact(path):
				// covered by its row or an ancestor's
			case ft.Kind() == reflect.Struct && covered(path):
				walk(ft, child)
			case ft.Kind() == reflect.Map && covered(path):
				// a map whose keys have rows of their own (meshConfig.<key>)
			default:
				missing = append(missing, path)
			}
		}
	}
	walk(spec, "")
	for _, r := range rows {
		mapKey := strings.HasPrefix(r.Field, "meshConfig.") && known["meshConfig"]
		if !known[r.Field] && !mapKey {
			stale = append(stale, r.Field)
		}
	}
	return missing, stale
}

// TestEverySpecFieldIsClassified: a new spec field fails here until
// SpecImpacts says when it reaches the proxies.
func TestEverySpecFieldIsClassified(t *testing.T) {
	missing, stale := unclassified(reflect.TypeFor[v1alpha1.MeshSettingsSpec](), SpecImpacts)
	if len(missing) > 0 {
		t.Errorf("spec fields with no row in SpecImpacts (internal/render/restart.go): %v", missing)
	}
	if len(stale) > 0 {
		t.Errorf("rows of SpecImpacts naming no spec field: %v", stale)
	}
	for _, r := range SpecImpacts {
		if _, ok := effectText[r.Effect]; !ok || r.Why == "" || r.Writes == "" {
			t.Errorf("row %s: effect %q, writes %q, why %q: each row needs a known effect, what it writes and why", r.Field, r.Effect, r.Writes, r.Why)
		}
	}
}

// The check itself, shown failing: a spec type with a field no row
// covers, and a row naming a field that does not exist.
func TestUnclassifiedFieldFails(t *testing.T) {
	type drain struct {
		DrainDuration string `json:"drainDuration,omitempty"`
		NewKnob       *bool  `json:"newKnob,omitempty"`
	}
	type endpoint struct {
		Port int32 `json:"port"`
	}
	type provider struct {
		endpoint `json:",inline"`
		Name     string `json:"name"`
	}
	type spec struct {
		Drain     *drain     `json:"drain,omitempty"`
		Providers []provider `json:"providers,omitempty"`
		Free      map[string]string
		Extra     string `json:"extra,omitempty"`
	}
	rows := []Impact{{Field: "drain.drainDuration"}, {Field: "providers[].port"}, {Field: "gone.away"}}
	missing, stale := unclassified(reflect.TypeFor[spec](), rows)
	if want := []string{"drain.newKnob", "providers[].name", "extra"}; !slices.Equal(missing, want) {
		t.Errorf("unclassified fields: got %v, want %v", missing, want)
	}
	if want := []string{"gone.away"}; !slices.Equal(stale, want) {
		t.Errorf("stale rows: got %v, want %v", stale, want)
	}
	// Free has no JSON name tag: encoding/json would use "Free"; the spec
	// types always name their fields, so the walk skips untagged ones.
}

// TestEveryMeshKeyIsClassified: every top-level key of the pinned
// MeshConfig has a row (a new istio.io/api fails here), and no row names
// a key MeshConfig lacks.
func TestEveryMeshKeyIsClassified(t *testing.T) {
	fields := (&meshv1alpha1.MeshConfig{}).ProtoReflect().Descriptor().Fields()
	seen := map[string]bool{}
	for i := range fields.Len() {
		k := fields.Get(i).JSONName()
		seen[k] = true
		m, ok := MeshKeyImpacts[k]
		if !ok {
			t.Errorf("MeshConfig key %s has no row in MeshKeyImpacts", k)
			continue
		}
		if _, known := effectText[m.Effect]; !known || m.Why == "" {
			t.Errorf("MeshConfig key %s: effect %q, why %q", k, m.Effect, m.Why)
		}
	}
	for k := range MeshKeyImpacts {
		if !seen[k] {
			t.Errorf("MeshKeyImpacts names %s, which is not a MeshConfig key", k)
		}
	}
}

// TestSpecRowsAgreeWithMeshKeys: a typed field writing a mesh key has the
// effect that key's row gives.
func TestSpecRowsAgreeWithMeshKeys(t *testing.T) {
	n := 0
	for _, r := range SpecImpacts {
		rest, ok := strings.CutPrefix(r.Writes, "mesh ")
		if !ok {
			continue
		}
		key, _, _ := strings.Cut(rest, ".")
		key, _, _ = strings.Cut(key, ",")
		m, ok := MeshKeyImpacts[key]
		if !ok {
			t.Errorf("row %s writes %q: no MeshKeyImpacts row for %s", r.Field, r.Writes, key)
			continue
		}
		n++
		if m.Effect != r.Effect {
			t.Errorf("row %s writes mesh %s: effect %s, but the key's row says %s", r.Field, key, r.Effect, m.Effect)
		}
	}
	if n < 20 {
		t.Fatalf("only %d rows write a mesh key: the parse of Writes is broken", n)
	}
}

// TestImpactTableAgreesWithRender renders, for each row of a typed field
// that writes the mesh document, a spec setting only that field (values
// from fullSpec) and checks ProxyRestartPaths against the row: a NewPod
// row yields paths, any other row none.
func TestImpactTableAgreesWithRender(t *testing.T) {
	full := fullSpec()
	checked := map[Effect]int{}
	for _, r := range SpecImpacts {
		if !strings.HasPrefix(r.Writes, "mesh ") {
			continue
		}
		spec, ok := onlyField(full, r.Field)
		if !ok {
			if r.Effect == EffectNewPod && !strings.HasPrefix(r.Field, "meshConfig.") {
				t.Errorf("row %s: fullSpec does not set it, so the row goes unchecked", r.Field)
			}
			continue
		}
		res, err := Mesh(spec, "", nil)
		if err != nil {
			t.Fatalf("row %s: %v", r.Field, err)
		}
		paths, err := ProxyRestartPaths("", res.Document)
		if err != nil {
			t.Fatalf("row %s: %v", r.Field, err)
		}
		if (r.Effect == EffectNewPod) != (len(paths) > 0) {
			t.Errorf("row %s says %s, but its document\n%s\nneeds a new pod for %v", r.Field, r.Effect, res.Document, paths)
		}
		checked[r.Effect]++
	}
	if checked[EffectNewPod] < 6 || checked[EffectLive] < 10 {
		t.Fatalf("checked too few rows: %v", checked)
	}
}

// onlyField copies the value at a spec path ("drain.drainDuration",
// "meshConfig.ingressClass") from full into an empty spec; false when full
// does not set it.
func onlyField(full *v1alpha1.MeshSettingsSpec, path string) (*v1alpha1.MeshSettingsSpec, bool) {
	out := &v1alpha1.MeshSettingsSpec{}
	if key, ok := strings.CutPrefix(path, "meshConfig."); ok {
		key = strings.TrimSuffix(key, ".*")
		v, set := full.MeshConfig[key]
		out.MeshConfig = map[string]apiextensionsv1.JSON{key: v}
		return out, set
	}
	src, dst := reflect.ValueOf(full).Elem(), reflect.ValueOf(out).Elem()
	segs := strings.Split(path, ".")
	for i, seg := range segs {
		f := fieldByJSON(src.Type(), seg)
		if f < 0 {
			return nil, false
		}
		src, dst = src.Field(f), dst.Field(f)
		if i == len(segs)-1 {
			break
		}
		if src.Kind() == reflect.Pointer {
			if src.IsNil() {
				return nil, false
			}
			dst.Set(reflect.New(src.Type().Elem()))
			src, dst = src.Elem(), dst.Elem()
		}
	}
	if src.IsZero() {
		return nil, false
	}
	dst.Set(src)
	return out, true
}

func fieldByJSON(t reflect.Type, name string) int {
	for i := range t.NumField() {
		if n, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); n == name {
			return i
		}
	}
	return -1
}

func TestProxyRestartPaths(t *testing.T) {
	const base = `
defaultConfig:
  discoveryAddress: istiod.istio-system.svc:15012
  drainDuration: 45s
  proxyMetadata:
    ISTIO_META_DNS_CAPTURE: "true"
outboundTrafficPolicy:
  mode: ALLOW_ANY
trustDomain: cluster.local
`
	cases := []struct {
		name     string
		old, new string
		want     []string
	}{
		{"unchanged", base, base, nil},
		{"reformatted, reordered, durations spelled otherwise", base, `
trustDomain: "cluster.local"
outboundTrafficPolicy: {mode: ALLOW_ANY}
defaultConfig: {proxyMetadata: {ISTIO_META_DNS_CAPTURE: "true"}, drainDuration: 0m45s, discoveryAddress: "istiod.istio-system.svc:15012"}
`, nil},
		{"a live change: outbound mode", base, strings.Replace(base, "ALLOW_ANY", "REGISTRY_ONLY", 1), nil},
		{"live changes only: retries, tracing, access log", base, base + `
defaultHttpRetryPolicy: {attempts: 3}
enableTracing: false
accessLogFile: /dev/stdout
extensionProviders:
- name: zipkin
  zipkin: {service: zipkin.tracing.svc.cluster.local, port: 9411}
`, nil},
		{"values equal to Istio's defaults are no change", "", `
defaultConfig: {discoveryAddress: istiod.istio-system.svc:15012, drainDuration: 45s, terminationDrainDuration: 5s}
outboundTrafficPolicy: {mode: ALLOW_ANY}
trustDomain: cluster.local
enablePrometheusMerge: true
`, nil},
		{"drain duration", base, strings.Replace(base, "drainDuration: 45s", "drainDuration: 90s", 1), []string{"defaultConfig.drainDuration"}},
		{"drain duration removed: back to the 45s default", strings.Replace(base, "45s", "90s", 1), base, []string{"defaultConfig.drainDuration"}},
		{"proxy metadata per entry", base, strings.Replace(base, `ISTIO_META_DNS_CAPTURE: "true"`,
			`ISTIO_META_DNS_CAPTURE: "false"`+"\n    EXIT_ON_ZERO_ACTIVE_CONNECTIONS: \"true\"", 1),
			[]string{"defaultConfig.proxyMetadata.EXIT_ON_ZERO_ACTIVE_CONNECTIONS", "defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE"}},
		{"proxy metadata entry removed", base, `
defaultConfig:
  discoveryAddress: istiod.istio-system.svc:15012
trustDomain: cluster.local
`, []string{"defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE"}},
		{"several start-time keys, sorted, beside a live one", base, `
defaultConfig:
  discoveryAddress: istiod.istio-system.svc:15012
  drainDuration: 45s
  terminationDrainDuration: 20s
  holdApplicationUntilProxyStarts: true
  image: {imageType: distroless}
  proxyMetadata:
    ISTIO_META_DNS_CAPTURE: "true"
outboundTrafficPolicy:
  mode: REGISTRY_ONLY
trustDomain: example.org
enablePrometheusMerge: false
`, []string{"defaultConfig.holdApplicationUntilProxyStarts", "defaultConfig.image", "defaultConfig.terminationDrainDuration", "enablePrometheusMerge", "trustDomain"}},
		{"the one part of extensionProviders read at injection", base, base + `
extensionProviders:
- name: otel
  opentelemetry: {service: otel.observability.svc.cluster.local, port: 4317, serviceAttributeEnrichment: OTEL_SEMANTIC_CONVENTIONS}
`, []string{otelEnrichmentPath}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ProxyRestartPaths(c.old, c.new)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestProxyRestartPathsRefusesDocumentsIstiodRejects(t *testing.T) {
	if _, err := ProxyRestartPaths("defaultConfig: {drainDuration: 45s}", "defaultConfig: {drainDuration: 1.5s}"); err == nil ||
		!strings.Contains(err.Error(), "the new mesh document") || !strings.Contains(err.Error(), "drainDuration") {
		t.Errorf("a new document with a fractional drainDuration: got %v, want an error naming it", err)
	}
	if _, err := ProxyRestartPaths("outboundTrafficPolicy: {mode: SOMETIMES}", ""); err == nil || !strings.Contains(err.Error(), "the previous mesh document") {
		t.Errorf("an old document with an unknown enum value: got %v, want an error naming it", err)
	}
}

// TestImpactDoc keeps the table of docs/proxy-restart.md equal to
// SpecImpacts: a changed row fails here until `-update` rewrites it.
func TestImpactDoc(t *testing.T) {
	raw, err := os.ReadFile(impactDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	i, j := strings.Index(doc, impactTableBegin), strings.Index(doc, impactTableEnd)
	if i < 0 || j < i {
		t.Fatalf("%s has no table between %q and %q", impactDoc, impactTableBegin, impactTableEnd)
	}
	i += len(impactTableBegin)
	want := ImpactTable()
	if *updateDocs {
		if err := os.WriteFile(impactDoc, []byte(doc[:i]+want+doc[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got := doc[i:j]; got != want {
		t.Errorf("the table of %s differs from SpecImpacts; run `go test ./internal/render -run TestImpactDoc -update`.\nwant:\n%s\ngot:\n%s", impactDoc, want, got)
	}
	for _, must := range []string{"`drain.drainDuration` | mesh defaultConfig.drainDuration | **new pod**", "`outboundTrafficPolicy.mode` | mesh outboundTrafficPolicy | live"} {
		if !strings.Contains(want, must) {
			t.Errorf("the table lacks %q", must)
		}
	}
}
