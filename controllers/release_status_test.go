package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/istioschema"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// The target release is in status.istiod; an assumed release and other
// managers' unread keys (at most five by name) are warnings in Ready.
func TestStatusReportsTheTargetRelease(t *testing.T) {
	rel, _ := istioschema.ParseRelease("1.32")
	in := passWith(func(in *pass) {
		in.plan = appliedPlan(func(p *plan) {
			p.istiodTag = "latest"
			p.release = render.TargetRelease{Release: rel, Stated: "latest", Source: render.ReleaseAssumed, Note: "assumed 1.32 (note)"}
			for i := range 7 {
				p.unread = append(p.unread, fmt.Sprintf("mesh key k%d (not the operator's) ...", i))
			}
		})
	})
	st := deriveStatus(&meshv1alpha1.MeshSettingsStatus{}, in, metav1.NewTime(time.Unix(1000, 0)))
	if st.Istiod == nil || st.Istiod.Release != "1.32" || st.Istiod.ReleaseSource != render.ReleaseAssumed || st.Istiod.Version != "latest" {
		t.Fatalf("status.istiod %+v", st.Istiod)
	}
	ready := meta.FindStatusCondition(st.Conditions, meshv1alpha1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionTrue {
		t.Fatalf("Ready %+v", ready)
	}
	for _, want := range []string{"warning: assumed 1.32 (note)", "warning: mesh key k0 ", "warning: mesh key k4 ", "warning: 2 more mesh keys of other managers istiod 1.32 does not read"} {
		if !strings.Contains(ready.Message, want) {
			t.Errorf("Ready message %q lacks %q", ready.Message, want)
		}
	}
	if strings.Contains(ready.Message, "k5") {
		t.Errorf("Ready message names more than five unread keys: %q", ready.Message)
	}
}
