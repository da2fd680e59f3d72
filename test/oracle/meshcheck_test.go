package oracle

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pkg/config/mesh"
	"sigs.k8s.io/yaml"

	"github.com/meshsettings/meshsettings-operator/internal/meshcheck"
	"github.com/meshsettings/meshsettings-operator/internal/meshcheck/meshchecktest"
)

// FuzzMeshCheck holds meshcheck.Compose, the operator's port of istiod's
// composition and validation, equal to Istio's own
// (mesh.ApplyMeshConfigDefaults, which runs agent.ValidateMeshConfig): the
// same verdict for every document and, when accepted, the same MeshConfig.
// The seeds are meshchecktest.Documents. Each input is a document, judged as is and again after the mutations
// ops asks for (values replaced by ones near a rule's edge, keys renamed,
// known keys added). `make test-oracle` fuzzes it for 20s.
func FuzzMeshCheck(f *testing.F) {
	for i, s := range meshchecktest.Documents {
		f.Add(s, []byte{byte(i), byte(i * 7), byte(i * 13), 3, 1, 4, 1, 5})
	}
	f.Fuzz(func(t *testing.T, doc string, ops []byte) {
		sameVerdict(t, doc)
		if mutated, ok := mutate(doc, ops); ok {
			sameVerdict(t, mutated)
		}
	})
}

// TestMeshCheckSeedsHaveBothVerdicts guards the corpus: it must keep
// documents Istio accepts and documents it rejects, each rejected one for
// the reason meant.
func TestMeshCheckSeedsHaveBothVerdicts(t *testing.T) {
	accepted, rejected := 0, 0
	for _, s := range meshchecktest.Documents {
		if _, err := mesh.ApplyMeshConfigDefaults(s); err != nil {
			rejected++
		} else {
			accepted++
		}
	}
	if accepted < 20 || rejected < 50 {
		t.Fatalf("seeds: %d accepted, %d rejected by Istio; want at least 20 and 50", accepted, rejected)
	}
}

func sameVerdict(t *testing.T, doc string) {
	t.Helper()
	if meshchecktest.IstioVerdictIsRandom(doc) {
		t.Skip("Istio's own verdict depends on map order here")
	}
	want, werr := mesh.ApplyMeshConfigDefaults(doc)
	got, gerr := meshcheck.Compose(doc)
	switch {
	case werr != nil && gerr == nil:
		t.Fatalf("Istio rejects, meshcheck accepts:\n%s\nIstio: %v", doc, werr)
	case werr == nil && gerr != nil:
		t.Fatalf("Istio accepts, meshcheck rejects:\n%s\nmeshcheck: %v", doc, gerr)
	case werr == nil && !proto.Equal(want, got):
		t.Fatalf("composed configs differ for\n%s\nIstio:     %v\nmeshcheck: %v", doc, want, got)
	}
}

// edgeValues sit on either side of the rules: ports, durations, hosts,
// host:port addresses, wrong types.
var edgeValues = []any{
	nil, true, false, 0, 1, -1, 65535, 65536, 70000, 100, 101, 1.5, "", " ", "0", "10",
	"0s", "1ms", "0.5ms", "1.5ms", "1s", "1.5s", "45s", "1h", "2h", "-1s", "100us", "bad",
	"istiod.istio-system.svc", "istiod.istio-system.svc:15012", "a.123:80", "10.0.0.1:80", "[::1]:80", "host:0", "host:x",
	"prod example.com", "cluster.local", "td.", "UPGRADE", "MUTUAL", "SIMPLE", "NONE", "INHERIT", "ALLOW_ANY", "REGISTRY_ONLY",
	"configmap://ns/name", "*", "a/b", "topology.kubernetes.io/zone",
	map[string]any{}, []any{}, []any{"a"}, map[string]any{"a": "b"}, map[string]any{"b": 100},
}

// mutate rewrites doc as ops says, one operation per 3 bytes: replace a
// leaf, rename a key, or add a known MeshConfig or ProxyConfig key.
func mutate(doc string, ops []byte) (string, bool) {
	var root map[string]any
	if yaml.Unmarshal([]byte(doc), &root) != nil || len(ops) == 0 {
		return "", false
	}
	if root == nil {
		root = map[string]any{}
	}
	g := &gen{b: ops}
	for len(g.b) > 0 {
		switch g.intn(4) {
		case 0, 1:
			replaceLeaf(g, root)
		case 2:
			renameKey(g, root)
		case 3:
			addKey(g, root)
		}
	}
	out, err := yaml.Marshal(root)
	return string(out), err == nil
}

func replaceLeaf(g *gen, v map[string]any) {
	keys := sortedKeysOf(v)
	if len(keys) == 0 {
		return
	}
	k := pick(g, keys)
	switch child := v[k].(type) {
	case map[string]any:
		if len(child) > 0 && g.intn(3) != 0 {
			replaceLeaf(g, child)
			return
		}
	case []any:
		if len(child) > 0 && g.intn(3) != 0 {
			i := g.intn(len(child))
			if m, ok := child[i].(map[string]any); ok {
				replaceLeaf(g, m)
			} else {
				child[i] = pick(g, edgeValues)
			}
			return
		}
	}
	v[k] = pick(g, edgeValues)
}

func renameKey(g *gen, v map[string]any) {
	keys := sortedKeysOf(v)
	if len(keys) == 0 {
		return
	}
	k := pick(g, keys)
	var to string
	switch g.intn(3) {
	case 0:
		to = snake(k)
	case 1:
		to = k + "x" // a typo: dropped by istiod
	default:
		if m, ok := v[k].(map[string]any); ok {
			renameKey(g, m)
			return
		}
		to = snake(k)
	}
	v[to] = v[k]
	if to != k {
		delete(v, k)
	}
}

// knownKeys are MeshConfig's top-level fields and ProxyConfig's, by JSON name.
var knownKeys, proxyKeys = fieldNames(&meshconfig.MeshConfig{}), fieldNames(&meshconfig.ProxyConfig{})

func addKey(g *gen, root map[string]any) {
	if g.bool() {
		root[pick(g, knownKeys)] = pick(g, edgeValues)
		return
	}
	dc, ok := root["defaultConfig"].(map[string]any)
	if !ok {
		dc = map[string]any{}
		root["defaultConfig"] = dc
	}
	dc[pick(g, proxyKeys)] = pick(g, edgeValues)
}

func fieldNames(m proto.Message) []string {
	var out []string
	fields := m.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		out = append(out, fields.Get(i).JSONName())
	}
	slices.Sort(out)
	return out
}

func snake(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func sortedKeysOf(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
