package render

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

// FieldError is an invalid setting, named by its MeshSettings field path.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

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
	if err := protojson.Unmarshal(b, &meshv1alpha1.MeshConfig{}); err != nil {
		// Name the key: protojson's message only gives a position in a JSON
		// document the user never wrote (and "field value" for wrapper types).
		field := "spec.meshConfig"
		for _, p := range f.paths {
			one := map[string]any{}
			set(one, p.segments(), f.values[p])
			if b, merr := json.Marshal(one); merr == nil {
				if perr := protojson.Unmarshal(b, &meshv1alpha1.MeshConfig{}); perr != nil {
					field, err = "spec.meshConfig."+strings.ReplaceAll(string(p), "/", "."), perr
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
