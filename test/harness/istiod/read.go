package istiod

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
)

// Service is one Service istiod sees (an entry of /debug/registryz).
type Service struct {
	Hostname  string
	Name      string
	Namespace string
}

// Registry is /debug/registryz: the Services istiod knows, sorted by
// hostname. discoverySelectors act here.
func (i *Istiod) Registry(ctx context.Context) ([]Service, error) {
	body, err := i.Get(ctx, "/debug/registryz")
	if err != nil {
		return nil, err
	}
	var raw []struct {
		Hostname   string `json:"hostname"`
		Attributes struct {
			Name, Namespace string
		}
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("/debug/registryz: %w", err)
	}
	out := make([]Service, 0, len(raw))
	for _, s := range raw {
		out = append(out, Service{Hostname: s.Hostname, Name: s.Attributes.Name, Namespace: s.Attributes.Namespace})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Hostname < out[b].Hostname })
	return out, nil
}

// Mesh is /debug/mesh decoded into a generic JSON object (see MeshJSON and
// EffectiveMesh).
func (i *Istiod) Mesh(ctx context.Context) (map[string]any, error) {
	body, err := i.MeshJSON(ctx)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("/debug/mesh: %w", err)
	}
	return m, nil
}
