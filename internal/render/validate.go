package render

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/meshcheck"
)

// FieldError is an invalid setting, named by its MeshSettings field path.
type FieldError struct {
	Field string
	Msg   string
	// Phrase: Msg continues the field name as a sentence ("spec.x is read
	// by istiod 1.29 and later; ...") instead of following a colon.
	Phrase bool
}

func (e *FieldError) Error() string {
	if e.Phrase {
		return e.Field + " " + e.Msg
	}
	return e.Field + ": " + e.Msg
}

var jsonPosition = regexp.MustCompile(` ?\(line \d+:\d+\)`)

// validateFragment checks what the operator would write against Istio's own
// MeshConfig type: every key must be a MeshConfig field (istiod silently
// drops unknown keys) and every value must have the field's type (istiod
// rejects the whole document otherwise). Keys the operator does not write
// are not checked: they are not the operator's to judge.
func validateFragment(f *fragment) error {
	doc := map[string]any{}
	for _, p := range f.paths {
		set(doc, p.segments(), f.values[p])
	}
	if err := checkKnownFields((&meshv1alpha1.MeshConfig{}).ProtoReflect().Descriptor(), doc, ""); err != nil {
		return err
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	if err := decodeLikeIstiod(b); err != nil {
		// Name the key: protojson's message only gives a position in a JSON
		// document the user never wrote (and "field value" for wrapper types).
		field := "spec.meshConfig"
		for _, p := range f.paths {
			one := map[string]any{}
			set(one, p.segments(), f.values[p])
			if b, merr := json.Marshal(one); merr == nil {
				if perr := decodeLikeIstiod(b); perr != nil {
					field, err = "spec.meshConfig."+p.Dotted(), perr
					break
				}
			}
		}
		// protobuf-go randomly puts non-breaking spaces in its messages.
		msg := strings.ReplaceAll(err.Error(), "\u00a0", " ")
		msg = strings.TrimPrefix(msg, "proto: ")
		msg = strings.TrimPrefix(jsonPosition.ReplaceAllString(msg, ""), ": ") // a position in JSON the user never wrote
		return &FieldError{Field: field, Msg: "Istio's MeshConfig refuses the value: " + msg}
	}
	return nil
}

// decodeLikeIstiod judges a MeshConfig JSON document with istiod's own
// decoder, which reads values protojson refuses (a "250ms" or "1m30s"
// duration). When protojson refuses it too, its message is returned: it
// quotes the bad value, the legacy decoder's does not.
func decodeLikeIstiod(b []byte) error {
	err := meshcheck.ApplyJSON(string(b), &meshv1alpha1.MeshConfig{})
	if err == nil {
		return nil
	}
	if perr := protojson.Unmarshal(b, &meshv1alpha1.MeshConfig{}); perr != nil {
		return perr
	}
	return err
}

// checkKnownFields walks v along message descriptor md and reports the first
// key that is not a field, as protojson would, but with the full path.
func checkKnownFields(md protoreflect.MessageDescriptor, v any, path string) error {
	if strings.HasPrefix(string(md.FullName()), "google.protobuf.") {
		return nil // well-known types (Duration, Struct, wrappers) have JSON forms of their own
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil // a wrong type: protojson reports it
	}
	for _, k := range sortedKeys(obj) {
		fd := md.Fields().ByJSONName(k)
		if fd == nil {
			fd = md.Fields().ByTextName(k)
		}
		at := k
		if path != "" {
			at = path + "." + k
		}
		if fd == nil {
			return &FieldError{
				Field: "spec.meshConfig." + at,
				Msg:   fmt.Sprintf("%q is not a field of Istio's %s (istiod would silently drop it)", k, md.Name()),
			}
		}
		switch {
		case fd.IsMap():
			if fd.MapValue().Message() == nil {
				continue
			}
			if m, ok := obj[k].(map[string]any); ok {
				for _, mk := range sortedKeys(m) {
					if err := checkKnownFields(fd.MapValue().Message(), m[mk], at+"."+mk); err != nil {
						return err
					}
				}
			}
		case fd.Message() == nil:
			continue
		case fd.IsList():
			if l, ok := obj[k].([]any); ok {
				for i, item := range l {
					if err := checkKnownFields(fd.Message(), item, fmt.Sprintf("%s[%d]", at, i)); err != nil {
						return err
					}
				}
			}
		default:
			if err := checkKnownFields(fd.Message(), obj[k], at); err != nil {
				return err
			}
		}
	}
	return nil
}

// MeshDocumentError is a mesh document istiod would reject for values the
// spec does not set: istiod keeps its last known configuration, so the
// operator writes nothing (MeshDocumentRejected).
type MeshDocumentError struct {
	Problems []DocumentProblem
}

// DocumentProblem is one value of the document that istiod rejects.
type DocumentProblem struct {
	// Key is the value's path in the mesh document (connectTimeout,
	// defaultConfig.discoveryAddress); empty for the whole document.
	Key string
	Msg string
	// Foreign is true when the operator's record of its keys does not hold
	// Key: another manager wrote it. False for a value the operator put back
	// from its record of what it had replaced.
	Foreign bool
}

// Error names each key with who wrote it, on one line.
func (e *MeshDocumentError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		who := " (written by another manager)"
		if !p.Foreign {
			who = " (a value the operator put back when the spec stopped setting the key)"
		}
		if p.Key == "" {
			msgs[i] = p.Msg + who
		} else {
			msgs[i] = p.Key + who + ": " + p.Msg
		}
	}
	return "istiod rejects the mesh document and keeps its last known configuration: " + strings.Join(msgs, "; ")
}

// judgeDocument composes and validates out, the document the operator
// would write (doc, as a map), as istiod does. Problems under a key the
// spec sets (f) are the spec's: a *FieldError naming the spec field.
// Problems elsewhere are a *MeshDocumentError.
func judgeDocument(spec *v1alpha1.MeshSettingsSpec, out string, doc map[string]any, f *fragment, recorded []Path) error {
	key := sha256.Sum256([]byte(out))
	if accepted.has(key) {
		return nil
	}
	_, err := meshcheck.Compose(out)
	var me *meshcheck.Error
	if !errors.As(err, &me) {
		if err == nil {
			accepted.add(key)
		}
		return err
	}
	var own *FieldError // the first problem of the spec's own, the others listed after it
	docErr := &MeshDocumentError{}
	for _, p := range me.Problems {
		if fp, rest, ok := coveredBy(f.paths, p.Keys, doc); ok {
			field := specField(spec, fp, rest)
			if own == nil {
				own = &FieldError{Field: field, Msg: "istiod rejects the value and would keep its last known configuration: " + p.Msg}
			} else {
				own.Msg += "; also " + field + ": " + p.Msg
			}
			continue
		}
		_, _, mine := coveredBy(recorded, p.Keys, doc)
		docErr.Problems = append(docErr.Problems, DocumentProblem{Key: p.Path(), Msg: p.Msg, Foreign: !mine})
	}
	if own != nil {
		return own
	}
	return docErr
}

// accepted remembers documents istiod accepts: a reconcile that changes
// nothing renders the same document again, and judging it costs more than
// the rest of the render. The verdict depends on the document alone.
var accepted = &acceptedDocs{docs: map[[sha256.Size]byte]struct{}{}}

type acceptedDocs struct {
	mu   sync.Mutex
	docs map[[sha256.Size]byte]struct{}
}

// maxAccepted bounds the memo; a few documents per target ConfigMap live at a time.
const maxAccepted = 64

func (a *acceptedDocs) has(k [sha256.Size]byte) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.docs[k]
	return ok
}

func (a *acceptedDocs) add(k [sha256.Size]byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.docs) >= maxAccepted {
		clear(a.docs)
	}
	a.docs[k] = struct{}{}
}

// coveredBy finds the path of paths that holds the value at keys (a
// meshcheck.Problem's), and the keys below it. A "name=" segment matches
// the list index of the item of that name in doc.
func coveredBy(paths []Path, keys []string, doc map[string]any) (Path, []string, bool) {
	for _, p := range paths {
		if rest, ok := covers(p, keys, doc); ok {
			return p, rest, true
		}
	}
	return "", nil, false
}

func covers(p Path, keys []string, doc map[string]any) ([]string, bool) {
	segs := p.segments()
	if len(segs) > len(keys) {
		return nil, false
	}
	var at any = doc
	for i, seg := range segs {
		key := keys[i]
		if name, isItem := strings.CutPrefix(seg, providerPrefix); isItem {
			list, _ := at.([]any)
			idx, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(key, "["), "]"))
			if !strings.HasPrefix(key, "[") || err != nil || idx < 0 || idx >= len(list) {
				return nil, false
			}
			item, _ := list[idx].(map[string]any)
			if item == nil || item["name"] != name {
				return nil, false
			}
			at = item
			continue
		}
		// istiod reads a field by its proto name too (connect_timeout), and
		// reports validation problems by the JSON name.
		if seg != key && jsonName(seg) != jsonName(key) {
			return nil, false
		}
		m, _ := at.(map[string]any)
		at = m[seg]
	}
	return keys[len(segs):], true
}

// jsonName is protobuf's JSON name of a field name: connect_timeout -> connectTimeout.
func jsonName(s string) string {
	var b strings.Builder
	upper := false
	for _, r := range s {
		switch {
		case r == '_':
			upper = true
		case upper && 'a' <= r && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
			upper = false
		default:
			b.WriteRune(r)
			upper = false
		}
	}
	return b.String()
}

// specField names the MeshSettings field that set p; rest are the keys of
// the problem below p.
func specField(spec *v1alpha1.MeshSettingsSpec, p Path, rest []string) string {
	segs := p.segments()
	switch {
	case segs[0] == "extensionProviders":
		name := strings.TrimPrefix(segs[1], providerPrefix)
		if t := spec.Tracing; t != nil {
			for i := range t.Providers {
				if t.Providers[i].Name == name {
					return fmt.Sprintf("spec.tracing.providers[%d]", i)
				}
			}
		}
		if a := spec.AccessLogging; a != nil {
			for i := range a.Providers {
				if a.Providers[i].Name == name {
					return fmt.Sprintf("spec.accessLogging.providers[%d]", i)
				}
			}
		}
		if a := spec.Authorization; a != nil {
			for i := range a.Providers {
				if a.Providers[i].Name == name {
					return fmt.Sprintf("spec.authorization.providers[%d]", i)
				}
			}
		}
	case len(segs) == 3 && segs[1] == "proxyMetadata":
		switch segs[2] {
		case "EXIT_ON_ZERO_ACTIVE_CONNECTIONS", "MINIMUM_DRAIN_DURATION":
			return "spec.drain.termination"
		case "ISTIO_META_DNS_CAPTURE":
			return "spec.proxy.dnsCapture"
		}
		return "spec.proxy.metadata." + segs[2]
	}
	if f, ok := typedFields[string(p)]; ok {
		return f
	}
	keys := slices.Concat(segs, rest)
	return "spec.meshConfig." + meshcheck.Problem{Keys: keys}.Path()
}

// typedFields are the typed spec fields behind the mesh keys they set.
var typedFields = map[string]string{
	"outboundTrafficPolicy":                         "spec.outboundTrafficPolicy",
	"discoverySelectors":                            "spec.discoverySelectors",
	"enableTracing":                                 "spec.tracing.enabled",
	"defaultProviders/tracing":                      "spec.tracing.defaultProviders",
	"defaultProviders/accessLogging":                "spec.accessLogging.defaultProviders",
	"accessLogFile":                                 "spec.accessLogging.file",
	"accessLogEncoding":                             "spec.accessLogging.encoding",
	"accessLogFormat":                               "spec.accessLogging.format",
	"defaultHttpRetryPolicy":                        "spec.retryPolicy",
	"defaultConfig/drainDuration":                   "spec.drain.drainDuration",
	"defaultConfig/terminationDrainDuration":        "spec.drain.termination",
	"defaultConfig/holdApplicationUntilProxyStarts": "spec.drain.holdApplicationUntilProxyStarts",
	"defaultConfig/image":                           "spec.proxy.imageType",
}
