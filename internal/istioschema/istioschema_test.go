package istioschema

import (
	"strings"
	"testing"
)

func rel(s string) Release {
	r, ok := ParseRelease(s)
	if !ok {
		panic(s)
	}
	return r
}

// The facts of issue 15, read from istio.io/api's protos by hand.
func TestGeneratedTableHasTheReleaseFacts(t *testing.T) {
	s := Load()
	if got := s.Oldest().String() + "-" + s.Newest().String(); got != "1.22-1.32" {
		t.Fatalf("releases %s, want 1.22-1.32 (%v)", got, s.Versions)
	}
	if len(s.Versions) != 11 {
		t.Fatalf("want one istio.io/api version per minor 1.22..1.32, got %v", s.Versions)
	}
	facts := []struct {
		message, key, first string
	}{
		{MeshConfig, "inboundTrafficPolicy", "1.22"},
		{MeshConfig, "serviceScopeConfigs", "1.27"},
		{MeshConfig, "hboneIdleTimeout", "1.29"},
		{MeshConfig, "defaultTrafficPolicy", "1.31"},
		{MeshConfig, "serviceEntryVisibility", "1.31"},
		{MeshConfig, "zoneAwareLbSetting", "1.31"},
		{MeshConfig, "defaultInboundHttpRetryPolicy", "1.32"},
		{ProxyConfig, "fileFlushInterval", "1.29"},
		{ProxyConfig, "fileFlushMinSizeKb", "1.29"},
		{ProxyConfig, "statsCompression", "1.29"},
		{ProxyConfig, "connectionSettings", "1.31"},
		// Keys every release reads.
		{MeshConfig, "outboundTrafficPolicy", "1.22"},
		{MeshConfig, "defaultHttpRetryPolicy", "1.22"},
		{ProxyConfig, "drainDuration", "1.22"},
	}
	for _, f := range facts {
		first := rel(f.first)
		for _, r := range s.Releases() {
			fd, _ := s.Lookup(f.message, f.key, r)
			if want := !r.Less(first); (fd != nil) != want {
				t.Errorf("%s.%s in %s: read=%v, want %v", f.message, f.key, r, fd != nil, want)
			}
		}
	}
	// The proto name is read too (istiod's YAML parser accepts both).
	if fd, _ := s.Lookup(MeshConfig, "hbone_idle_timeout", rel("1.29")); fd == nil || fd.JSONName != "hboneIdleTimeout" {
		t.Errorf("proto name hbone_idle_timeout not found: %+v", fd)
	}
	mode := s.Enums["istio.mesh.v1alpha1.MeshConfig.OutboundTrafficPolicy.Mode"]
	if mode == nil {
		t.Fatal("no OutboundTrafficPolicy.Mode enum")
	}
	if sp := mode.Values["ALLOW_ANY_DYNAMIC_DNS"]; sp.First != rel("1.30") || sp.Last != rel("1.32") {
		t.Errorf("ALLOW_ANY_DYNAMIC_DNS span %v, want 1.30-1.32", sp)
	}
	if sp := mode.Values["REGISTRY_ONLY"]; sp.First != rel("1.22") {
		t.Errorf("REGISTRY_ONLY span %v, want from 1.22", sp)
	}
}

func TestParseRelease(t *testing.T) {
	for tag, want := range map[string]string{
		"1.28.1": "1.28", "1.28.1-distroless": "1.28", "v1.30": "1.30", "1.32.0+build": "1.32", "1.9.0": "1.9",
	} {
		r, ok := ParseRelease(tag)
		if !ok || r.String() != want {
			t.Errorf("ParseRelease(%q) = %v, %v; want %s", tag, r, ok, want)
		}
	}
	for _, tag := range []string{"latest", "", "sha256:abc", "master-2026", "1.x", "1.28foo"} {
		if r, ok := ParseRelease(tag); ok {
			t.Errorf("ParseRelease(%q) = %v; want not parsed", tag, r)
		}
	}
}

func TestCheckFindsKeysAndEnumValuesAtAnyDepth(t *testing.T) {
	s := Load()
	doc := map[string]any{
		"hboneIdleTimeout":      "1h",
		"outboundTrafficPolicy": map[string]any{"mode": "ALLOW_ANY_DYNAMIC_DNS"},
		"defaultConfig":         map[string]any{"statsCompression": true, "concurrency": 2.0},
		"extensionProviders": []any{map[string]any{"name": "z", "zipkin": map[string]any{
			"service": "z", "port": 9411.0, "traceContextOption": "USE_B3_WITH_W3C_PROPAGATION"}}},
		"noSuchKey": 1.0,
	}
	got := s.Check(MeshConfig, doc, rel("1.27"))
	var lines []string
	for _, p := range got {
		lines = append(lines, p.Path+"="+p.Value+" "+s.Describe(p.Spans))
	}
	want := []string{
		"defaultConfig.statsCompression= 1.29 and later",
		"extensionProviders[0].zipkin.traceContextOption= 1.28 and later", // the key itself is unread
		"hboneIdleTimeout= 1.29 and later",
		"noSuchKey= no release from 1.22 to 1.32",
		"outboundTrafficPolicy.mode=ALLOW_ANY_DYNAMIC_DNS 1.30 and later",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("Check on 1.27:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if got := s.Check(MeshConfig, doc, rel("1.32")); len(got) != 1 || got[0].Path != "noSuchKey" {
		t.Errorf("Check on 1.32: %+v, want only noSuchKey", got)
	}
}

func TestDescribe(t *testing.T) {
	s := Load()
	for _, c := range []struct {
		spans []Span
		want  string
	}{
		{[]Span{{rel("1.29"), rel("1.32")}}, "1.29 and later"},
		{[]Span{{rel("1.32"), rel("1.32")}}, "1.32 and later"},
		{[]Span{{rel("1.22"), rel("1.27")}}, "1.22 to 1.27"},
		{[]Span{{rel("1.22"), rel("1.22")}}, "1.22"},
		{nil, "no release from 1.22 to 1.32"},
	} {
		if got := s.Describe(c.spans); got != c.want {
			t.Errorf("Describe(%v) = %q, want %q", c.spans, got, c.want)
		}
	}
}

func TestParseRejectsDamagedTable(t *testing.T) {
	for _, text := range []string{
		"M x 1.22 1.32\n",                           // no releases line
		"releases 1.22.0\nM x 1.22\n",               // no last release
		"releases 1.22.0\nF a - string 1.22 1.22\n", // a field outside a message
		"releases 1.22.0\nM x 1.22 one\n",
	} {
		if _, err := Parse(text); err == nil {
			t.Errorf("Parse(%q): want an error", text)
		}
	}
}
