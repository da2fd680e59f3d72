// Package admission judges a MeshSettings as the API server does when it is
// created, offline: the same libraries (k8s.io/apiextensions-apiserver) run
// the CRD's structural schema and its x-kubernetes-validations CEL rules,
// against the CRD embedded in the binary (a copy of config/crd/bases made by
// `make manifests`, checked by a test), so `render` refuses what
// `kubectl apply` refuses, with the same field paths and messages.
package admission

import (
	"context"
	_ "embed"
	"fmt"
	"maps"
	"sort"
	"sync"

	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structurallisttype "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	metavalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

// crdYAML is config/crd/bases/mesh.meshsettings.io_meshsettings.yaml, copied
// by `make manifests` (TestEmbeddedCRDIsGenerated fails when they differ).
//
//go:embed mesh.meshsettings.io_meshsettings.yaml
var crdYAML []byte

// Validator holds one CRD version's compiled schema and CEL programs.
type Validator struct {
	apiVersion, kind string
	structural       *structuralschema.Structural
	schema           apiservervalidation.SchemaValidator
	cel              *cel.Validator
}

var (
	defaultOnce      sync.Once
	defaultValidator *Validator
	defaultErr       error
)

// Default is the Validator of the embedded MeshSettings CRD, built once per
// process: compiling the CEL programs costs far more than running them.
func Default() (*Validator, error) {
	defaultOnce.Do(func() { defaultValidator, defaultErr = New(crdYAML) })
	return defaultValidator, defaultErr
}

// New builds the Validator of the storage version of a CRD manifest.
func New(crdManifest []byte) (*Validator, error) {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(crdManifest, &crd); err != nil {
		return nil, fmt.Errorf("CRD manifest: %w", err)
	}
	for _, ver := range crd.Spec.Versions {
		if !ver.Storage {
			continue
		}
		if ver.Schema == nil || ver.Schema.OpenAPIV3Schema == nil {
			return nil, fmt.Errorf("CRD %s version %s has no schema", crd.Name, ver.Name)
		}
		var internal apiextensionsinternal.JSONSchemaProps
		if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(ver.Schema.OpenAPIV3Schema, &internal, nil); err != nil {
			return nil, fmt.Errorf("CRD %s version %s: %w", crd.Name, ver.Name, err)
		}
		structural, err := structuralschema.NewStructural(&internal)
		if err != nil {
			return nil, fmt.Errorf("CRD %s version %s is not structural: %w", crd.Name, ver.Name, err)
		}
		sv, _, err := apiservervalidation.NewSchemaValidator(&internal)
		if err != nil {
			return nil, fmt.Errorf("CRD %s version %s: %w", crd.Name, ver.Name, err)
		}
		return &Validator{
			apiVersion: crd.Spec.Group + "/" + ver.Name,
			kind:       crd.Spec.Names.Kind,
			structural: structural,
			schema:     sv,
			// As the API server: every rule is compiled here, once.
			cel: cel.NewValidator(structural, true, celconfig.PerCallLimit),
		}, nil
	}
	return nil, fmt.Errorf("CRD %s has no storage version", crd.Name)
}

// APIVersion is the apiVersion the Validator judges (group/version).
func (v *Validator) APIVersion() string { return v.apiVersion }

// Kind is the kind the Validator judges.
func (v *Validator) Kind() string { return v.kind }

// ValidateCreate judges obj (a decoded manifest, numbers as int64 or float64
// as the API server decodes JSON: see Decode) the way the API server judges
// `kubectl apply` of a new object, in the same order:
//  1. fields the schema does not declare (kubectl's strict field validation
//     refuses them before anything else);
//  2. kind and apiVersion, metadata, the OpenAPI schema (types, enums,
//     bounds, formats, required), list-type invariants;
//  3. every CEL rule, unless step 2 found an error that blocks them.
//
// status is dropped first: the API server ignores it on create. obj is not
// modified. Safe for concurrent use.
func (v *Validator) ValidateCreate(ctx context.Context, obj map[string]any) field.ErrorList {
	if _, ok := obj["status"]; ok {
		obj = maps.Clone(obj) // shallow: only the top level changes
		delete(obj, "status")
	}

	unknown := structuralpruning.PruneWithOptions(runtime.DeepCopyJSON(obj), v.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	if len(unknown) > 0 {
		sort.Strings(unknown)
		errs := make(field.ErrorList, 0, len(unknown))
		for _, p := range unknown {
			errs = append(errs, UnknownField(p))
		}
		return errs
	}

	var errs field.ErrorList
	if k, _ := obj["kind"].(string); k != v.kind {
		errs = append(errs, field.Invalid(field.NewPath("kind"), obj["kind"], "must be "+v.kind))
	}
	if a, _ := obj["apiVersion"].(string); a != v.apiVersion {
		errs = append(errs, field.Invalid(field.NewPath("apiVersion"), obj["apiVersion"], "must be "+v.apiVersion))
	}
	if len(errs) > 0 {
		return errs
	}
	errs = append(errs, validateMetadata(obj)...)
	errs = append(errs, apiservervalidation.ValidateCustomResource(nil, obj, v.schema)...)
	errs = append(errs, schemaobjectmeta.Validate(ctx, nil, obj, v.structural, false)...)
	errs = append(errs, structurallisttype.ValidateListSetsAndMaps(nil, v.structural, obj)...)
	if blocked, note := blockingErr(errs); blocked {
		return append(errs, note)
	}
	celErrs, _ := v.cel.Validate(ctx, nil, v.structural, obj, nil, celconfig.RuntimeCELCostBudget)
	return append(errs, celErrs...)
}

// UnknownField is the error for a field the schema does not declare, with
// the message of the API server's strict decoding.
func UnknownField(path string) *field.Error {
	return &field.Error{
		Type:     field.ErrorTypeNotSupported,
		Field:    path,
		BadValue: nil,
		Detail:   fmt.Sprintf("strict decoding error: unknown field %q", path),
	}
}

// validateMetadata is the API server's check of metadata on create: name
// (a DNS subdomain), namespace, labels, annotations.
func validateMetadata(obj map[string]any) field.ErrorList {
	raw, ok := obj["metadata"]
	if !ok || raw == nil {
		raw = map[string]any{}
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return field.ErrorList{field.Invalid(field.NewPath("metadata"), raw, "must be an object")}
	}
	var meta metav1.ObjectMeta
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &meta); err != nil {
		return field.ErrorList{field.Invalid(field.NewPath("metadata"), nil, err.Error())}
	}
	if meta.Namespace == "" {
		// A manifest without a namespace gets kubectl's; judge it as given one.
		meta.Namespace = "default"
	}
	return metavalidation.ValidateObjectMeta(&meta, true, metavalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
}

// blockingErr mirrors the API server: schema errors of these types stop the
// CEL rules, and the server says so.
func blockingErr(errs field.ErrorList) (bool, *field.Error) {
	for _, err := range errs {
		switch err.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			return true, field.Invalid(nil, nil, RulesNotCheckedMessage)
		}
	}
	return false, nil
}

// RulesNotCheckedMessage is the API server's note that CEL rules did not run.
const RulesNotCheckedMessage = "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"
