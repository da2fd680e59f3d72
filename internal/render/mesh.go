// Package render translates a MeshSettings spec into exactly what Istio
// reads: the mesh document of the mesh ConfigMap, istiod environment entries
// and namespace labels. It is pure (no API calls) so the controller, the
// `render` command, tests and benchmarks share one translation.
package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

// Path addresses one key of the mesh document the operator owns. Segments
// are joined with "/"; a list item of extensionProviders is "name=<name>".
// No segment can contain "/": keys are MeshConfig field names, proxy
// metadata keys are environment variable names, provider names are checked
// at admission.
type Path string

func (p Path) segments() []string { return strings.Split(string(p), "/") }

// Dotted is the path as field paths and mesh paths are written: "a.b.c".
func (p Path) Dotted() string { return strings.ReplaceAll(string(p), "/", ".") }

const providerPrefix = "name="

// fragment is the part of the mesh document the spec sets, in spec order
// (so extensionProviders keep the order the user wrote).
type fragment struct {
	paths  []Path
	values map[Path]any
}

func newFragment() *fragment { return &fragment{values: map[Path]any{}} }

func (f *fragment) put(p Path, v any) {
	if _, dup := f.values[p]; !dup {
		f.paths = append(f.paths, p)
	}
	f.values[p] = v
}

// MeshResult is the rendered mesh document and the keys it owns.
type MeshResult struct {
	// Document is the complete mesh YAML to store under the ConfigMap key "mesh".
	Document string
	// Managed lists the paths the spec sets, sorted; record it so the next
	// render can remove what the spec stopped setting.
	Managed []Path
	// Replaced holds, for managed paths that already had a value when the
	// operator took them over (Helm's trustDomain, say), that value; record
	// it so a later render puts it back instead of deleting the key. A
	// value another manager wrote at a managed path since the last render
	// replaces the earlier record (see Written).
	Replaced map[Path]any
	// Written holds a digest of the value written at each managed path;
	// record it so the next render can tell another manager's write from
	// the operator's own value.
	Written map[Path]string
	// Rewritten lists the managed paths another manager wrote since the
	// last render (their new values are now in Replaced).
	Rewritten []Path
}

// MeshState is what earlier renders recorded about the document.
type MeshState struct {
	Managed  []Path
	Replaced map[Path]any
	Written  map[Path]string
}

// Mesh is MergeMesh for a document with only previouslyManaged recorded.
func Mesh(spec *v1alpha1.MeshSettingsSpec, current string, previouslyManaged []Path) (MeshResult, error) {
	return MergeMesh(spec, current, MeshState{Managed: previouslyManaged})
}

// MergeMesh merges what spec sets into the current mesh document. A path
// managed before but no longer set gets its replaced value back, or is
// removed; every other key of current is kept as it is. Merging follows
// istiod: top-level keys are replaced, defaultConfig and its proxyMetadata
// per key, extensionProviders by name, defaultProviders per sub-list. The
// output is deterministic.
//
// The result is judged as istiod judges it (internal/meshcheck): a value
// istiod rejects under a key the spec sets is a *FieldError; elsewhere, a
// *MeshDocumentError. Either way nothing should be written: istiod would
// drop the whole document.
func MergeMesh(spec *v1alpha1.MeshSettingsSpec, current string, prev MeshState) (MeshResult, error) {
	return mergeMesh(spec, current, prev, true)
}

// ReleaseMesh is MergeMesh for a spec that sets nothing, without judging
// the result: what a deleted MeshSettings leaves behind is the other
// managers' document, whatever istiod makes of it.
func ReleaseMesh(current string, prev MeshState) (MeshResult, error) {
	return mergeMesh(&v1alpha1.MeshSettingsSpec{}, current, prev, false)
}

func mergeMesh(spec *v1alpha1.MeshSettingsSpec, current string, prev MeshState, judge bool) (MeshResult, error) {
	frag, err := meshFragment(spec)
	if err != nil {
		return MeshResult{}, err
	}
	if err := validateFragment(frag); err != nil {
		return MeshResult{}, err
	}

	doc := map[string]any{}
	if strings.TrimSpace(current) != "" {
		if err := yaml.Unmarshal([]byte(current), &doc); err != nil {
			return MeshResult{}, &MeshDocumentError{Problems: []DocumentProblem{{Msg: "the current mesh document is not a valid YAML mapping: " + err.Error(), Foreign: true}}}
		}
		if doc == nil { // a document of only comments or "null"
			doc = map[string]any{}
		}
	}
	prevReplaced, rewritten := refreshRecords(doc, prev)
	for _, p := range prev.Managed {
		if _, still := frag.values[p]; still {
			continue
		}
		if orig, ok := prevReplaced[p]; ok {
			set(doc, p.segments(), orig)
		} else {
			remove(doc, p.segments())
		}
	}
	replaced := map[Path]any{}
	written := map[Path]string{}
	for _, p := range frag.paths {
		if slices.Contains(prev.Managed, p) {
			if orig, ok := prevReplaced[p]; ok {
				replaced[p] = orig
			}
		} else if orig, ok := get(doc, p.segments()); ok {
			replaced[p] = orig
		}
		set(doc, p.segments(), frag.values[p])
		written[p] = digest(frag.values[p])
	}
	managed := slices.Sorted(maps.Keys(frag.values))

	out, err := yaml.Marshal(doc)
	if err != nil {
		return MeshResult{}, err
	}
	if len(doc) == 0 {
		out = nil
	}
	if current != "" && !strings.HasSuffix(current, "\n") {
		// Keep the document's own ending: Helm renders `mesh: |-`, without a
		// final newline, and a release must give its bytes back exactly.
		out = bytes.TrimSuffix(out, []byte("\n"))
	}
	if judge {
		if err := judgeDocument(spec, string(out), doc, frag, prev.Managed); err != nil {
			return MeshResult{}, err
		}
	}
	if len(replaced) == 0 {
		replaced = nil
	}
	if len(written) == 0 {
		written = nil
	}
	return MeshResult{Document: string(out), Managed: managed, Replaced: replaced, Written: written, Rewritten: rewritten}, nil
}

// get reads the value at path.
func get(doc map[string]any, path []string) (any, bool) {
	v, ok := doc[path[0]]
	if !ok || len(path) == 1 {
		return v, ok
	}
	if name, isItem := strings.CutPrefix(path[1], providerPrefix); isItem {
		list, _ := v.([]any)
		for _, item := range list {
			if m, ok := item.(map[string]any); ok && m["name"] == name {
				return m, true
			}
		}
		return nil, false
	}
	child, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	return get(child, path[1:])
}

// set writes v at path, creating parent maps; a "name=" segment replaces or
// appends the extensionProviders entry of that name.
func set(doc map[string]any, path []string, v any) {
	key := path[0]
	if len(path) == 1 {
		doc[key] = v
		return
	}
	if name, ok := strings.CutPrefix(path[1], providerPrefix); ok {
		list, _ := doc[key].([]any)
		for i, item := range list {
			if m, ok := item.(map[string]any); ok && m["name"] == name {
				list[i] = v
				doc[key] = list
				return
			}
		}
		doc[key] = append(list, v)
		return
	}
	child, ok := doc[key].(map[string]any)
	if !ok {
		child = map[string]any{}
		doc[key] = child
	}
	set(child, path[1:], v)
}

// remove deletes path and any map or list it leaves empty.
func remove(doc map[string]any, path []string) {
	key := path[0]
	if len(path) == 1 {
		delete(doc, key)
		return
	}
	if name, ok := strings.CutPrefix(path[1], providerPrefix); ok {
		list, _ := doc[key].([]any)
		list = slices.DeleteFunc(list, func(item any) bool {
			m, ok := item.(map[string]any)
			return ok && m["name"] == name
		})
		if len(list) == 0 {
			delete(doc, key)
		} else {
			doc[key] = list
		}
		return
	}
	child, ok := doc[key].(map[string]any)
	if !ok {
		return
	}
	remove(child, path[1:])
	if len(child) == 0 {
		delete(doc, key)
	}
}

// ReservedMeshConfigKeys are the top-level keys typed fields own; spec.meshConfig may not set them.
var ReservedMeshConfigKeys = []string{
	"outboundTrafficPolicy", "discoverySelectors", "enableTracing", "extensionProviders",
	"defaultProviders", "accessLogFile", "accessLogEncoding", "accessLogFormat", "defaultHttpRetryPolicy",
}

// ReservedProxyConfigKeys are the defaultConfig keys typed fields own.
var ReservedProxyConfigKeys = []string{
	"drainDuration", "terminationDrainDuration", "holdApplicationUntilProxyStarts", "image", "proxyMetadata",
}

// meshFragment collects every key the spec sets. Values are plain JSON
// types (map[string]any, []any, string, bool, float64) so they merge and
// marshal like the rest of the document.
func meshFragment(spec *v1alpha1.MeshSettingsSpec) (*fragment, error) {
	if err := checkSpec(spec); err != nil {
		return nil, err
	}
	f := newFragment()
	if p := spec.OutboundTrafficPolicy; p != nil {
		// Always explicit: an empty policy is REGISTRY_ONLY in Istio.
		f.put("outboundTrafficPolicy", map[string]any{"mode": string(p.Mode)})
	}
	if spec.DiscoverySelectors != nil {
		// Admission cannot afford CEL over LabelSelector (unbounded lists), so
		// operators and values are checked here, as istiod would.
		for i := range spec.DiscoverySelectors {
			if _, err := metav1.LabelSelectorAsSelector(spec.DiscoverySelectors[i].AsMetav1()); err != nil {
				return nil, &FieldError{Field: fmt.Sprintf("spec.discoverySelectors[%d]", i), Msg: err.Error()}
			}
		}
		sel, err := toJSON(spec.DiscoverySelectors)
		if err != nil {
			return nil, err
		}
		f.put("discoverySelectors", sel)
	}
	if t := spec.Tracing; t != nil {
		if t.Enabled != nil {
			f.put("enableTracing", *t.Enabled)
		}
		for _, p := range t.Providers {
			f.put(providerPath(p.Name), tracingProvider(p))
		}
		if t.DefaultProviders != nil {
			f.put("defaultProviders/tracing", stringList(t.DefaultProviders))
		}
	}
	if a := spec.AccessLogging; a != nil {
		if a.File != nil {
			f.put("accessLogFile", *a.File)
		}
		if a.Encoding != "" {
			f.put("accessLogEncoding", string(a.Encoding))
		}
		if a.Format != nil {
			f.put("accessLogFormat", *a.Format)
		}
		for _, p := range a.Providers {
			f.put(providerPath(p.Name), accessLogProvider(p))
		}
		if a.DefaultProviders != nil {
			f.put("defaultProviders/accessLogging", stringList(a.DefaultProviders))
		}
	}
	if a := spec.Authorization; a != nil {
		for _, p := range a.Providers {
			f.put(providerPath(p.Name), authorizationProvider(p))
		}
	}
	if r := spec.RetryPolicy; r != nil {
		f.put("defaultHttpRetryPolicy", retryPolicy(r))
	}
	if d := spec.Drain; d != nil {
		addDrain(f, d)
	}
	if p := spec.Proxy; p != nil {
		if p.ImageType != "" {
			f.put("defaultConfig/image", map[string]any{"imageType": string(p.ImageType)})
		}
		if p.DNSCapture != nil {
			f.put("defaultConfig/proxyMetadata/ISTIO_META_DNS_CAPTURE", fmt.Sprint(*p.DNSCapture))
		}
		for k, v := range p.Metadata {
			f.put(Path("defaultConfig/proxyMetadata/"+k), v)
		}
	}
	if err := addMeshConfig(f, spec.MeshConfig); err != nil {
		return nil, err
	}
	return f, nil
}

// addDrain adds the proxies' drain settings (defaultConfig and, for
// WhenIdle, proxyMetadata).
func addDrain(f *fragment, d *v1alpha1.Drain) {
	if d.DrainDuration != nil {
		f.put("defaultConfig/drainDuration", protoDuration(d.DrainDuration.Duration))
	}
	if t := d.Termination; t != nil {
		dur := DefaultTerminationDrainDuration
		if t.Duration != nil {
			dur = t.Duration.Duration
		}
		switch t.Strategy {
		case v1alpha1.TerminationWhenIdle:
			// Proxy metadata values must be strings: an unquoted true fails the whole document.
			f.put("defaultConfig/proxyMetadata/EXIT_ON_ZERO_ACTIVE_CONNECTIONS", "true")
			f.put("defaultConfig/proxyMetadata/MINIMUM_DRAIN_DURATION", goDuration(dur))
		default:
			f.put("defaultConfig/terminationDrainDuration", protoDuration(dur))
		}
	}
	if d.HoldApplicationUntilProxyStarts != nil {
		f.put("defaultConfig/holdApplicationUntilProxyStarts", *d.HoldApplicationUntilProxyStarts)
	}
}

// addMeshConfig adds the free-form keys: top-level keys whole, defaultConfig per key.
func addMeshConfig(f *fragment, mc map[string]apiextensionsv1.JSON) error {
	for _, k := range sortedKeys(mc) {
		if slices.Contains(ReservedMeshConfigKeys, k) {
			return &FieldError{Field: "spec.meshConfig." + k, Msg: "is set by a typed field of MeshSettings; use that field instead"}
		}
		var v any
		if err := json.Unmarshal(mc[k].Raw, &v); err != nil {
			return &FieldError{Field: "spec.meshConfig." + k, Msg: "is not valid JSON: " + err.Error()}
		}
		if k != "defaultConfig" {
			f.put(Path(k), v)
			continue
		}
		dc, ok := v.(map[string]any)
		if !ok {
			return &FieldError{Field: "spec.meshConfig.defaultConfig", Msg: "must be an object"}
		}
		for _, dk := range sortedKeys(dc) {
			if slices.Contains(ReservedProxyConfigKeys, dk) {
				return &FieldError{Field: "spec.meshConfig.defaultConfig." + dk, Msg: "is set by a typed field of MeshSettings (spec.drain or spec.proxy); use that field instead"}
			}
			f.put(Path("defaultConfig/"+dk), dc[dk])
		}
	}
	return nil
}

func providerPath(name string) Path { return Path("extensionProviders/" + providerPrefix + name) }

func endpoint(e v1alpha1.Endpoint) map[string]any {
	return map[string]any{"service": e.Service, "port": float64(e.Port)}
}

func tracingProvider(p v1alpha1.TracingProvider) map[string]any {
	out := map[string]any{"name": p.Name}
	switch {
	case p.Zipkin != nil:
		z := endpoint(p.Zipkin.Endpoint)
		putString(z, "path", p.Zipkin.Path)
		putInt(z, "maxTagLength", p.Zipkin.MaxTagLength)
		out["zipkin"] = z
	case p.OpenTelemetry != nil:
		o := endpoint(p.OpenTelemetry.Endpoint)
		putInt(o, "maxTagLength", p.OpenTelemetry.MaxTagLength)
		if g := p.OpenTelemetry.GRPC; g != nil {
			grpc := map[string]any{}
			putDuration(grpc, "timeout", g.Timeout)
			o["grpc"] = grpc
		}
		if h := p.OpenTelemetry.HTTP; h != nil {
			http := map[string]any{"path": h.Path}
			putDuration(http, "timeout", h.Timeout)
			if len(h.Headers) > 0 {
				headers := make([]any, 0, len(h.Headers))
				for _, hd := range h.Headers {
					m := map[string]any{"name": hd.Name}
					if hd.Value != nil {
						m["value"] = *hd.Value
					}
					if hd.EnvName != nil {
						m["envName"] = *hd.EnvName
					}
					headers = append(headers, m)
				}
				http["headers"] = headers
			}
			o["http"] = http
		}
		out["opentelemetry"] = o
	case p.Datadog != nil:
		d := endpoint(p.Datadog.Endpoint)
		putInt(d, "maxTagLength", p.Datadog.MaxTagLength)
		out["datadog"] = d
	case p.SkyWalking != nil:
		out["skywalking"] = endpoint(p.SkyWalking.Endpoint)
	}
	return out
}

func accessLogProvider(p v1alpha1.AccessLogProvider) map[string]any {
	out := map[string]any{"name": p.Name}
	switch {
	case p.EnvoyFileAccessLog != nil:
		fl := map[string]any{"path": p.EnvoyFileAccessLog.Path}
		switch {
		case p.EnvoyFileAccessLog.Text != nil:
			fl["logFormat"] = map[string]any{"text": *p.EnvoyFileAccessLog.Text}
		case p.EnvoyFileAccessLog.Labels != nil:
			labels := map[string]any{}
			for k, v := range p.EnvoyFileAccessLog.Labels {
				labels[k] = v
			}
			fl["logFormat"] = map[string]any{"labels": labels}
		}
		out["envoyFileAccessLog"] = fl
	case p.EnvoyOtelAls != nil:
		o := endpoint(p.EnvoyOtelAls.Endpoint)
		putString(o, "logName", p.EnvoyOtelAls.LogName)
		out["envoyOtelAls"] = o
	}
	return out
}

func authorizationProvider(p v1alpha1.AuthorizationProvider) map[string]any {
	out := map[string]any{"name": p.Name}
	switch {
	case p.EnvoyExtAuthzHTTP != nil:
		h := p.EnvoyExtAuthzHTTP
		m := endpoint(h.Endpoint)
		putString(m, "pathPrefix", h.PathPrefix)
		putStrings(m, "includeRequestHeadersInCheck", h.IncludeRequestHeadersInCheck)
		putStrings(m, "headersToUpstreamOnAllow", h.HeadersToUpstreamOnAllow)
		putStrings(m, "headersToDownstreamOnDeny", h.HeadersToDownstreamOnDeny)
		putDuration(m, "timeout", h.Timeout)
		putBool(m, "failOpen", h.FailOpen)
		out["envoyExtAuthzHttp"] = m
	case p.EnvoyExtAuthzGRPC != nil:
		g := p.EnvoyExtAuthzGRPC
		m := endpoint(g.Endpoint)
		putDuration(m, "timeout", g.Timeout)
		putBool(m, "failOpen", g.FailOpen)
		out["envoyExtAuthzGrpc"] = m
	}
	return out
}

func retryPolicy(r *v1alpha1.RetryPolicy) map[string]any {
	// Always explicit: istiod reads a policy without attempts as attempts 0,
	// which disables retries (and is invalid beside any other field).
	attempts := int32(DefaultRetryAttempts)
	if r.Attempts != nil {
		attempts = *r.Attempts
	}
	m := map[string]any{"attempts": float64(attempts)}
	if len(r.RetryOn) > 0 {
		on := make([]string, len(r.RetryOn))
		for i, c := range r.RetryOn {
			on[i] = string(c)
		}
		m["retryOn"] = strings.Join(on, ",")
	}
	putDuration(m, "perTryTimeout", r.PerTryTimeout)
	putBool(m, "retryRemoteLocalities", r.RetryRemoteLocalities)
	return m
}

// protoDuration formats d in protobuf JSON's form ("90s", "0.500s"), the
// one every Istio version parses (recent istiod also reads "1m30s").
func protoDuration(d time.Duration) string {
	b, _ := protojson.Marshal(durationpb.New(d))
	return string(bytes.Trim(b, `"`))
}

func putString(m map[string]any, k, v string) {
	if v != "" {
		m[k] = v
	}
}

func putStrings(m map[string]any, k string, v []string) {
	if len(v) > 0 {
		m[k] = stringList(v)
	}
}

func putInt(m map[string]any, k string, v *int32) {
	if v != nil {
		m[k] = float64(*v)
	}
}

func putBool(m map[string]any, k string, v *bool) {
	if v != nil {
		m[k] = *v
	}
}

func putDuration(m map[string]any, k string, v *metav1.Duration) {
	if v != nil {
		m[k] = protoDuration(v.Duration)
	}
}

func stringList(v []string) []any {
	out := make([]any, len(v))
	for i, s := range v {
		out[i] = s
	}
	return out
}

func toJSON(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	return out, json.Unmarshal(b, &out)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
