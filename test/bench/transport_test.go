package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestResourceOf(t *testing.T) {
	for _, c := range []struct{ path, resource, name string }{
		{"/api/v1/namespaces/ns/configmaps/istio", "configmaps", "istio"},
		{"/api/v1/namespaces/ns/secrets", "secrets", ""},
		{"/apis/apps/v1/namespaces/ns/deployments/istiod/status", "deployments/status", "istiod"},
		{"/apis/rbac.authorization.k8s.io/v1/clusterroles/x", "clusterroles", "x"},
		{"/api/v1/namespaces/ns", "namespaces", "ns"},
		{"/api/v1/namespaces", "namespaces", ""},
		{"/openapi/v3", "/openapi/v3", ""},
		{"/version", "/version", ""},
	} {
		r, n := resourceOf(c.path)
		if r != c.resource || n != c.name {
			t.Errorf("resourceOf(%q) = %q, %q; want %q, %q", c.path, r, n, c.resource, c.name)
		}
	}
}

// The log counts a write as a change only when the answer's resourceVersion
// moved: a server-side apply that changes nothing answers with the old one.
func TestRequestLogCountsChangedObjects(t *testing.T) {
	rv := "1"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch && strings.Contains(r.URL.RawQuery, "change=1") {
			rv += "1"
		}
		_, _ = io.WriteString(w, `{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"istio","resourceVersion":"`+rv+`"}}`)
	}))
	defer srv.Close()
	log := newRequestLog()
	c := &http.Client{Transport: log.wrap(http.DefaultTransport)}
	do := func(method, query string) {
		req, _ := http.NewRequest(method, srv.URL+"/api/v1/namespaces/ns/configmaps/istio"+query, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if !strings.Contains(string(body), `"name":"istio"`) {
			t.Fatalf("the wrapped answer lost its body: %q", body)
		}
	}
	do(http.MethodPatch, "") // first sight: counted
	log.reset()
	do(http.MethodPatch, "")          // same resourceVersion: no change
	do(http.MethodGet, "")            // not a write
	do(http.MethodPatch, "?change=1") // moved: a change
	req, changed := log.snapshot()
	if req["PATCH configmaps"] != 2 || req["GET configmaps"] != 1 {
		t.Errorf("requests = %v", req)
	}
	if len(changed) != 1 || changed["PATCH configmaps istio"] != 1 {
		t.Errorf("changed = %v, want only PATCH configmaps istio 1", changed)
	}
}

func TestObjectsOfFoldsReleaseRecords(t *testing.T) {
	n, folded := objectsOf(map[string]int{
		"PATCH configmaps istio":                    1,
		"POST secrets sh.helm.release.v1.istiod.v7": 1,
		"PUT secrets sh.helm.release.v1.istiod.v7":  1,
		"PUT secrets sh.helm.release.v1.istiod.v6":  1,
	})
	if n != 3 {
		t.Errorf("distinct objects = %d, want 3 (istio, v7, v6)", n)
	}
	if folded["PUT secrets sh.helm.release.v1.istiod.vN"] != 2 || folded["POST secrets sh.helm.release.v1.istiod.vN"] != 1 {
		t.Errorf("folded = %v", folded)
	}
}

func TestWriteSVG(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c", "curve.svg")
	pts := []curvePoint{
		{namespaces: 1000, p50: 20 * time.Millisecond, p99: 30 * time.Millisecond, causal: 15 * time.Millisecond},
		{namespaces: 50000, p50: 25 * time.Millisecond, p99: 45 * time.Millisecond, causal: 16 * time.Millisecond},
	}
	if err := writeSVG(path, pts, "caption <x>"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"<svg", "</svg>", ">1k<", ">50k<", "p99 at 50000 namespaces: 45.0 ms", "caption &lt;x&gt;"} {
		if !strings.Contains(s, want) {
			t.Errorf("the SVG lacks %q", want)
		}
	}
	if err := writeSVG(path, nil, ""); err == nil {
		t.Error("no points: want an error")
	}
}
