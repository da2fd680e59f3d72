package meshcheck

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"

	"github.com/golang/protobuf/jsonpb" //nolint:staticcheck // istiod parses with exactly this decoder (protomarshal.ApplyJSON); protojson differs (merging, quoted numbers, both field names)
	"github.com/golang/protobuf/proto"  //nolint:staticcheck // jsonpb's message type
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"sigs.k8s.io/yaml"
)

// applyYAML is istio's protomarshal.ApplyYAML: YAML to JSON, then the
// legacy jsonpb decoder over pb, retried ignoring unknown fields. Every
// field present replaces pb's value; null leaves it.
func applyYAML(yml string, pb proto.Message) error {
	js, err := yaml.YAMLToJSON([]byte(yml))
	if err != nil {
		return err
	}
	return applyJSON(string(js), pb)
}

// ApplyJSON decodes js over pb as istiod does (protomarshal.ApplyJSON):
// values such as "250ms" durations that protojson refuses are accepted
// here, as istiod accepts them.
func ApplyJSON(js string, pb proto.Message) error { return applyJSON(js, pb) }

func applyJSON(js string, pb proto.Message) error {
	reader := strings.NewReader(js)
	m := jsonpb.Unmarshaler{}
	if err := m.Unmarshal(reader, pb); err != nil {
		m.AllowUnknownFields = true
		reader.Reset(js)
		return m.Unmarshal(reader, pb)
	}
	return nil
}

// locateParseErrors names the keys behind err, the decoder's first error
// for yml parsed into a message like pb: it tries each field of the
// document alone and descends into those that fail. It reports every
// failing key, not only the first, and err itself if it finds none.
func locateParseErrors(ps problems, yml string, pb proto.Message, err error) {
	js, yerr := yaml.YAMLToJSON([]byte(yml))
	if yerr != nil {
		ps.add("not valid YAML: " + yerr.Error())
		return
	}
	before := len(*ps.list)
	locate(ps, proto.MessageReflect(pb).Descriptor(), js)
	if len(*ps.list) == before {
		ps.addErr(err)
	}
}

// locate reports the fields of raw, a JSON value for a message of type md,
// that the decoder refuses.
func locate(ps problems, md protoreflect.MessageDescriptor, raw json.RawMessage) {
	err := decodeAs(md, raw)
	if err == nil {
		return
	}
	var obj map[string]json.RawMessage
	if strings.HasPrefix(string(md.FullName()), "google.protobuf.") || json.Unmarshal(raw, &obj) != nil {
		ps.add(describe(err, md, nil))
		return
	}
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		// The decoder reads the proto name, then the JSON name, which wins.
		key, v := "", json.RawMessage(nil)
		for _, name := range []string{string(fd.Name()), fd.JSONName()} {
			if r, ok := obj[name]; ok {
				key, v = name, r
			}
		}
		if v == nil || string(v) == "null" {
			continue
		}
		one, _ := json.Marshal(map[string]json.RawMessage{key: v})
		ferr := decodeAs(md, one)
		if ferr == nil {
			continue
		}
		at := ps.in(key)
		before := len(*ps.list)
		switch {
		case fd.IsMap():
			var items map[string]json.RawMessage
			if json.Unmarshal(v, &items) == nil {
				for _, k := range slices.Sorted(maps.Keys(items)) {
					if vmd := fd.MapValue().Message(); vmd != nil {
						locate(at.in(k), vmd, items[k])
					} else if one, _ := json.Marshal(map[string]any{key: map[string]json.RawMessage{k: items[k]}}); decodeAs(md, one) != nil {
						at.add(describe(decodeAs(md, one), md, fd.MapValue()), k)
					}
				}
			}
		case fd.IsList():
			var items []json.RawMessage
			if json.Unmarshal(v, &items) == nil {
				for j, item := range items {
					if fd.Message() != nil {
						locate(at.in(index(j)), fd.Message(), item)
					} else if one, _ := json.Marshal(map[string]any{key: []json.RawMessage{item}}); decodeAs(md, one) != nil {
						at.add(describeItem(decodeAs(md, one), fd), index(j))
					}
				}
			}
		case !fd.IsMap() && !fd.IsList() && fd.Message() != nil:
			locate(at, fd.Message(), v)
		}
		if len(*ps.list) == before {
			at.add(describe(ferr, md, fd))
		}
	}
}

// decodeAs decodes raw into a new message of type md as istiod would.
func decodeAs(md protoreflect.MessageDescriptor, raw json.RawMessage) error {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
	if err != nil {
		return err
	}
	return applyJSON(string(raw), proto.MessageV1(mt.New().Interface()))
}

// describe words a decoder error with what the field (fd), or the message
// (md, when fd is nil), takes.
func describe(err error, md protoreflect.MessageDescriptor, fd protoreflect.FieldDescriptor) string {
	return describeAs(err, md, fd, false)
}

// describeItem words a decoder error for an item of list field fd.
func describeItem(err error, fd protoreflect.FieldDescriptor) string {
	return describeAs(err, nil, fd, true)
}

func describeAs(err error, md protoreflect.MessageDescriptor, fd protoreflect.FieldDescriptor, item bool) string {
	msg := "istiod cannot parse the value (" + err.Error() + ")"
	want := ""
	switch {
	case fd == nil:
		want = wellKnownWant(md)
	case fd.IsMap():
		want = "a map"
	case fd.IsList() && !item:
		want = "a list"
	case fd.Enum() != nil:
		names := make([]string, 0, fd.Enum().Values().Len())
		for i := range fd.Enum().Values().Len() {
			names = append(names, string(fd.Enum().Values().Get(i).Name()))
		}
		want = "one of " + strings.Join(names, ", ")
	case fd.Message() != nil:
		if want = wellKnownWant(fd.Message()); want == "" {
			want = "an object (" + string(fd.Message().Name()) + ")"
		}
	default:
		want = "a " + fd.Kind().String()
	}
	if want != "" {
		msg += "; it takes " + want
	}
	return msg
}

func wellKnownWant(md protoreflect.MessageDescriptor) string {
	switch md.FullName() {
	case "google.protobuf.Duration":
		return `a duration string such as "5s" or "100ms"`
	case "google.protobuf.BoolValue":
		return "a bool"
	case "google.protobuf.StringValue":
		return "a string"
	case "google.protobuf.Int32Value", "google.protobuf.UInt32Value", "google.protobuf.Int64Value", "google.protobuf.UInt64Value":
		return "an integer"
	case "google.protobuf.DoubleValue", "google.protobuf.FloatValue":
		return "a number"
	}
	return ""
}
