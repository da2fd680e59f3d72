package istiod

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	meshapi "istio.io/api/mesh/v1alpha1"
	"sigs.k8s.io/yaml"
)

// EffectiveMesh is /debug/mesh with the fields protojson omits put back:
// /debug/mesh leaves out proto3 zero values (REGISTRY_ONLY shows as
// "outboundTrafficPolicy":{}), so the document is read into istio.io/api's
// MeshConfig, written again with every populated message's fields, and the
// raw document laid over it (keeping fields istio.io/api may not know).
func (i *Istiod) EffectiveMesh(ctx context.Context) (map[string]any, error) {
	body, err := i.MeshJSON(ctx)
	if err != nil {
		return nil, err
	}
	return Effective(body)
}

// Effective is EffectiveMesh's work on a /debug/mesh body.
func Effective(meshJSON []byte) (map[string]any, error) {
	var mc meshapi.MeshConfig
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(meshJSON, &mc); err != nil {
		return nil, fmt.Errorf("/debug/mesh is not a MeshConfig: %w", err)
	}
	full, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(&mc)
	if err != nil {
		return nil, err
	}
	var base, raw map[string]any
	if err := json.Unmarshal(full, &base); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(meshJSON, &raw); err != nil {
		return nil, err
	}
	return overlay(base, raw).(map[string]any), nil
}

func overlay(base, top any) any {
	b, ok1 := base.(map[string]any)
	t, ok2 := top.(map[string]any)
	if ok1 && ok2 {
		for k, v := range t {
			b[k] = overlay(b[k], v)
		}
		return b
	}
	bl, ok1 := base.([]any)
	tl, ok2 := top.([]any)
	if ok1 && ok2 && len(bl) == len(tl) {
		for n := range tl {
			bl[n] = overlay(bl[n], tl[n])
		}
		return bl
	}
	if top == nil {
		return base
	}
	return top
}

// MissingLeaves compares every leaf of written (a mesh document, YAML as it
// is in the ConfigMap) with effective (EffectiveMesh) and returns one line
// per leaf that istiod does not run with the written value: a key it
// dropped (a typo, a field it does not know) or a different value. Lists of
// objects that all carry a "name" are matched by name (istiod adds its own
// extensionProviders); other lists must match item by item. Durations are
// compared as durations ("600ms" is protojson's "0.600s"), numbers by value
// (protojson writes 64-bit integers as strings). Empty means every leaf is
// in force.
func MissingLeaves(written string, effective map[string]any) ([]string, error) {
	j, err := yaml.YAMLToJSON([]byte(written))
	if err != nil {
		return nil, fmt.Errorf("written document: %w", err)
	}
	var w any
	if err := json.Unmarshal(j, &w); err != nil {
		return nil, err
	}
	if w == nil {
		return nil, nil
	}
	var out []string
	diffLeaves("", w, effective, true, &out)
	sort.Strings(out)
	return out, nil
}

func diffLeaves(path string, w, e any, present bool, out *[]string) {
	at := func() string {
		if path == "" {
			return "(document)"
		}
		return path
	}
	if !present {
		*out = append(*out, fmt.Sprintf("%s: absent from istiod's effective config (written %s)", at(), short(w)))
		return
	}
	switch wv := w.(type) {
	case nil:
		return
	case map[string]any:
		ev, ok := e.(map[string]any)
		if !ok {
			*out = append(*out, fmt.Sprintf("%s: written an object, istiod has %s", at(), short(e)))
			return
		}
		for k, v := range wv {
			sub, has := ev[k]
			diffLeaves(join(path, k), v, sub, has, out)
		}
	case []any:
		el, ok := e.([]any)
		if !ok {
			*out = append(*out, fmt.Sprintf("%s: written a list, istiod has %s", at(), short(e)))
			return
		}
		if names, ok := itemNames(wv); ok {
			byName := map[string]any{}
			for _, item := range el {
				if m, ok := item.(map[string]any); ok {
					if n, ok := m["name"].(string); ok {
						byName[n] = item
					}
				}
			}
			for n, item := range wv {
				sub, has := byName[names[n]]
				diffLeaves(fmt.Sprintf("%s[name=%s]", path, names[n]), item, sub, has, out)
			}
			return
		}
		if len(el) != len(wv) {
			*out = append(*out, fmt.Sprintf("%s: written %d items, istiod has %d (%s)", at(), len(wv), len(el), short(e)))
			return
		}
		for n := range wv {
			diffLeaves(fmt.Sprintf("%s[%d]", path, n), wv[n], el[n], true, out)
		}
	default:
		if !scalarEqual(w, e) {
			*out = append(*out, fmt.Sprintf("%s: written %s, istiod has %s", at(), short(w), short(e)))
		}
	}
}

func itemNames(list []any) ([]string, bool) {
	if len(list) == 0 {
		return nil, false
	}
	names := make([]string, len(list))
	for n, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			return nil, false
		}
		name, ok := m["name"].(string)
		if !ok {
			return nil, false
		}
		names[n] = name
	}
	return names, true
}

func scalarEqual(w, e any) bool {
	if w == e {
		return true
	}
	ws, wIsString := w.(string)
	es, eIsString := e.(string)
	if wIsString && eIsString {
		wd, err1 := time.ParseDuration(ws)
		ed, err2 := time.ParseDuration(es)
		return err1 == nil && err2 == nil && wd == ed
	}
	// Numbers: JSON float64 on one side, maybe a protojson int64 string on the other.
	wn, ok1 := number(w)
	en, ok2 := number(e)
	return ok1 && ok2 && wn == en
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case string:
		f, err := strconv.ParseFloat(n, 64)
		return f, err == nil
	}
	return 0, false
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func short(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	s := string(b)
	if len(s) > 120 {
		s = s[:117] + "..."
	}
	return strings.ReplaceAll(s, "\n", " ")
}
