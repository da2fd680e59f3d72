package admission

import (
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Decode turns one YAML or JSON document into the map the API server
// validates: keys case-sensitive, integers as int64, other numbers as
// float64 (a plain YAML decode makes every number a float64, which the
// schema's integer types and CEL would then judge differently).
func Decode(doc []byte) (map[string]any, error) {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := kjson.UnmarshalCaseSensitivePreserveInts(j, &obj); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, nil
	}
	return obj, nil
}
