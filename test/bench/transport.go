package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

// requestLog counts the requests a client sends (by verb and resource, read
// from the URL) and the objects its writes changed: a write changed an
// object when the resourceVersion in the API server's answer differs from
// the one last seen for that object (a server-side apply that changes
// nothing answers with the old one). It wraps the Helm SDK's REST transport.
type requestLog struct {
	mu       sync.Mutex
	requests map[string]int    // "PATCH configmaps" -> n
	changed  map[string]int    // "configmaps istio-helm" -> n
	lastRV   map[string]string // object -> last resourceVersion answered
}

func newRequestLog() *requestLog {
	return &requestLog{requests: map[string]int{}, changed: map[string]int{}, lastRV: map[string]string{}}
}

// reset forgets the counts (not the resourceVersions) before a measured run.
func (l *requestLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requests, l.changed = map[string]int{}, map[string]int{}
}

// snapshot returns copies of the counts.
func (l *requestLog) snapshot() (requests, changed map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	requests, changed = map[string]int{}, map[string]int{}
	for k, v := range l.requests {
		requests[k] = v
	}
	for k, v := range l.changed {
		changed[k] = v
	}
	return requests, changed
}

func (l *requestLog) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resource, name := resourceOf(req.URL.Path)
		if req.Method == http.MethodGet && req.URL.Query().Get("watch") == "true" {
			resource += " (watch)"
		}
		resp, err := rt.RoundTrip(req)
		l.mu.Lock()
		l.requests[req.Method+" "+resource]++
		l.mu.Unlock()
		if err != nil || !isWrite(req.Method) || resp.StatusCode >= 300 {
			return resp, err
		}
		// Read the answer to learn the object's new resourceVersion, and
		// hand the same bytes on.
		body, rerr := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if rerr != nil {
			return resp, err
		}
		rv := ""
		if n, v := nameAndVersion(body); n != "" {
			name, rv = n, v
		}
		object := resource + " " + name
		l.mu.Lock()
		defer l.mu.Unlock()
		if req.Method == http.MethodDelete || rv == "" || l.lastRV[object] != rv {
			l.changed[req.Method+" "+object]++
		}
		l.lastRV[object] = rv
		return resp, err
	})
}

// nameAndVersion reads an answer's object name and resourceVersion, in
// JSON or, as client-go's typed clients may ask for, protobuf.
func nameAndVersion(body []byte) (name, resourceVersion string) {
	var obj struct {
		Metadata struct{ Name, ResourceVersion string } `json:"metadata"`
	}
	if json.Unmarshal(body, &obj) == nil && obj.Metadata.Name != "" {
		return obj.Metadata.Name, obj.Metadata.ResourceVersion
	}
	o, _, err := clientgoscheme.Codecs.UniversalDeserializer().Decode(body, nil, nil)
	if err != nil {
		return "", ""
	}
	m, err := meta.Accessor(o)
	if err != nil {
		return "", ""
	}
	return m.GetName(), m.GetResourceVersion()
}

// releaseRecord matches the Secrets in which Helm keeps a release's revisions.
var releaseRecord = regexp.MustCompile(`^(sh\.helm\.release\.v1\..+\.v)\d+$`)

// objectsOf are the distinct objects a run's writes changed, and the same
// counts with release records of any revision folded into one key.
func objectsOf(changed map[string]int) (distinct int, folded map[string]int) {
	seen := map[string]bool{}
	folded = map[string]int{}
	for k, v := range changed {
		f := strings.Fields(k) // verb resource name
		if len(f) == 3 {
			seen[f[1]+" "+f[2]] = true
			f[2] = releaseRecord.ReplaceAllString(f[2], "${1}N")
		}
		folded[strings.Join(f, " ")] += v
	}
	return len(seen), folded
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func isWrite(method string) bool { return slices.Contains(writeMethods, method) }

// resourceOf reads the resource (with its subresource) and the object name
// from an API path: /api/v1/namespaces/ns/configmaps/name,
// /apis/apps/v1/namespaces/ns/deployments/name/status,
// /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/name.
// Other paths (discovery, openapi) are returned as they are.
func resourceOf(path string) (resource, name string) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	var rest []string
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		rest = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		rest = parts[3:]
	default:
		return path, ""
	}
	if len(rest) > 2 && rest[0] == "namespaces" {
		rest = rest[2:]
	}
	if len(rest) == 0 {
		return path, ""
	}
	resource = rest[0]
	if len(rest) >= 2 {
		name = rest[1]
	}
	if len(rest) >= 3 {
		resource += "/" + rest[2]
	}
	return resource, name
}

// countsString lists counts as "k n, k n" in key order.
// none is what an empty listing says.
const none = "none"

func countsString(m map[string]int) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	if len(parts) == 0 {
		return none
	}
	return strings.Join(parts, ", ")
}
