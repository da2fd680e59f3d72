package rendercmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/admission"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// verdict is the judgement of one MeshSettings (or one document that is
// not one).
type verdict struct {
	doc  document
	item int // 1-based index in a List document, 0 otherwise
	// skipped: a document of another kind.
	skipped bool
	// namespace and name of the MeshSettings, as written.
	namespace, name string
	out             *Output
	// text is out, formatted for stdout (see printOne).
	text string
	// problems are every error found; any makes the MeshSettings invalid.
	problems []string
	// stalled is the reason of the Stalled condition the operator would
	// set (a check only the controller makes); empty for admission errors.
	stalled string
}

func (v *verdict) where() string {
	if v.item > 0 {
		return fmt.Sprintf("%s, item %d", v.doc.where(), v.item)
	}
	return v.doc.where()
}

func (v *verdict) object() string {
	switch {
	case v.name == "":
		return "MeshSettings (unnamed)"
	case v.namespace == "":
		return "MeshSettings " + v.name
	}
	return "MeshSettings " + v.namespace + "/" + v.name
}

// judgeAll judges every document, on every CPU: a MeshSettings' judgement
// does not depend on the others. Verdicts keep the input order.
//
// Each worker also formats its outputs: marshalling YAML costs as much as
// judging.
func judgeAll(docs []document, cur render.Current, format string) ([]verdict, error) {
	validator, err := admission.Default()
	if err != nil {
		return nil, err
	}
	results := make([][]verdict, len(docs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(docs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i] = judgeDocument(validator, docs[i], cur)
				for j := range results[i] {
					v := &results[i][j]
					if v.out == nil {
						continue
					}
					var b strings.Builder
					if err := printOne(&b, v, format); err != nil {
						v.out, v.problems = nil, []string{"cannot be printed: " + err.Error()}
						continue
					}
					v.text = b.String()
				}
			}
		}()
	}
	for i := range docs {
		next <- i
	}
	close(next)
	wg.Wait()
	var all []verdict
	for _, r := range results {
		all = append(all, r...)
	}
	return all, nil
}

// judgeDocument judges one document: a List's items one by one, another
// kind not at all.
func judgeDocument(validator *admission.Validator, doc document, cur render.Current) []verdict {
	obj, err := admission.Decode(doc.raw)
	if err != nil {
		return []verdict{{doc: doc, problems: []string{"does not parse: " + err.Error()}}}
	}
	if obj == nil {
		return []verdict{{doc: doc, skipped: true}}
	}
	if kind, _ := obj["kind"].(string); kind == "List" {
		items, _ := obj["items"].([]any)
		var out []verdict
		for i, item := range items {
			m, _ := item.(map[string]any)
			v := judgeObject(validator, m, cur)
			v.doc, v.item = doc, i+1
			out = append(out, v)
		}
		return out
	}
	v := judgeObject(validator, obj, cur)
	v.doc = doc
	return []verdict{v}
}

// judgeObject is the API server's admission, then the controller's own
// checks through render.Desire, the function the controller calls.
func judgeObject(validator *admission.Validator, obj map[string]any, cur render.Current) verdict {
	kind, _ := obj["kind"].(string)
	apiVersion, _ := obj["apiVersion"].(string)
	group, _, _ := strings.Cut(apiVersion, "/")
	if kind != validator.Kind() || group != v1alpha1.GroupVersion.Group {
		return verdict{skipped: true}
	}
	var v verdict
	if md, ok := obj["metadata"].(map[string]any); ok {
		v.namespace, _ = md["namespace"].(string)
		v.name, _ = md["name"].(string)
	}
	if errs := validator.ValidateCreate(context.Background(), obj); len(errs) > 0 {
		for _, e := range errs {
			v.problems = append(v.problems, e.Error())
		}
		return v
	}
	raw, err := json.Marshal(obj)
	var ms v1alpha1.MeshSettings
	if err == nil {
		err = json.Unmarshal(raw, &ms)
	}
	if err != nil {
		// Admission accepted it, so this is a bug of ours, not of the input.
		v.problems = []string{"cannot be read after admission accepted it: " + err.Error()}
		return v
	}
	out, err := RenderCurrent(&ms, cur)
	if err != nil {
		v.stalled, v.problems = stalledMessage(&ms, err)
		return v
	}
	v.out = out
	return v
}

// stalledMessage is the Stalled condition the controller would set for an
// error of render.Desire, with the controller's message.
func stalledMessage(ms *v1alpha1.MeshSettings, err error) (reason string, msgs []string) {
	var fe *render.FieldError
	if errors.As(err, &fe) {
		return v1alpha1.ReasonInvalidSpec, []string{fe.Error() + "; nothing was written"}
	}
	var de *render.MeshDocumentError
	if errors.As(err, &de) {
		ns := ms.Namespace
		if ns == "" {
			ns = defaultNamespace
		}
		return v1alpha1.ReasonMeshDocumentRejected, []string{fmt.Sprintf("ConfigMap %s/%s key %q: %s; nothing is written until it is fixed",
			ns, render.TargetsFor(&ms.Spec).ConfigMap, render.MeshKey, de.Error())}
	}
	return "", []string{err.Error()}
}

// defaultNamespace is the namespace of a MeshSettings written without one.
const defaultNamespace = "istio-system"
