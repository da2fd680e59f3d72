package controllers

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// pass is what one reconcile pass found and did. With the status the object
// had, it is the only input of the status: deriveStatus is pure.
type pass struct {
	generation int64
	namespace  string
	targets    render.Targets

	// deleting: the pass ran the finalizer; cleanupErr is why it must retry.
	deleting   bool
	cleanupErr error
	// conflictWith names the MeshSettings that writes the targets instead.
	conflictWith string
	// specErr: the spec cannot be written as it is.
	specErr *render.FieldError
	// docErr: istiod would reject the document the ConfigMap holds.
	docErr *render.MeshDocumentError
	// err is a transient failure before any write (reading, planning).
	err error
	// starting: the pass has planned a long write for a new generation; the
	// status says Reconciling before the writes.
	starting bool

	// rollout is what the RolloutRestart executor did; nil without it.
	rollout *rolloutResult

	// plan and the outcome of its writes; nil plan: nothing was applied.
	plan    *plan
	cmErr   error
	depErr  error
	ns      namespaceWrites
	cmSent  bool
	depSent bool

	// proxies is the proxy report of the pass (observeProxies), nil when
	// the pass applied nothing.
	proxies *proxyPass
}

// retryErr is the error that requeues the pass with backoff, if any.
func (in *pass) retryErr() error {
	switch {
	case in.deleting:
		return in.cleanupErr
	case in.conflictWith != "" || in.specErr != nil || in.docErr != nil:
		return nil
	case in.err != nil:
		return in.err
	}
	if in.plan == nil {
		return nil
	}
	return errors.Join(in.cmErr, in.depErr, in.ns.err)
}

// deriveStatus computes the status from the one it had and what the pass
// found and did. Every condition, the summary and observedGeneration are set
// here and only here.
func deriveStatus(old *meshv1alpha1.MeshSettingsStatus, in *pass, now metav1.Time) meshv1alpha1.MeshSettingsStatus {
	st := *old.DeepCopy()
	st.ObservedGeneration = in.generation
	set := func(t string, s metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: in.generation, LastTransitionTime: now,
		})
	}
	stall := func(reason, msg string) {
		meta.RemoveStatusCondition(&st.Conditions, meshv1alpha1.ConditionReconciling)
		set(meshv1alpha1.ConditionStalled, metav1.ConditionTrue, reason, msg)
		set(meshv1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg)
	}
	progressing := func(msg string) {
		meta.RemoveStatusCondition(&st.Conditions, meshv1alpha1.ConditionStalled)
		set(meshv1alpha1.ConditionReconciling, metav1.ConditionTrue, meshv1alpha1.ReasonProgressing, msg)
		set(meshv1alpha1.ConditionReady, metav1.ConditionFalse, meshv1alpha1.ReasonProgressing, msg)
	}
	t := in.targets

	switch {
	case in.deleting:
		msg := "Deleting: removing the mesh keys, istiod env entries and namespace labels it wrote"
		if in.cleanupErr != nil {
			msg += "; retrying after error: " + in.cleanupErr.Error()
		}
		progressing(msg)
		return st
	case in.conflictWith != "":
		msg := fmt.Sprintf("MeshSettings %s, created earlier, already targets ConfigMap %s or Deployment %s; this one writes nothing until it is removed",
			in.conflictWith, t.ConfigMap, t.IstiodDeployment)
		stall(meshv1alpha1.ReasonConflict, msg)
		return st
	case in.specErr != nil:
		stall(meshv1alpha1.ReasonInvalidSpec, in.specErr.Error()+"; nothing was written")
		return st
	case in.docErr != nil:
		msg := fmt.Sprintf("ConfigMap %s/%s key %q: %s; nothing is written until it is fixed", in.namespace, t.ConfigMap, render.MeshKey, in.docErr.Error())
		set(meshv1alpha1.ConditionMeshConfigApplied, metav1.ConditionFalse, meshv1alpha1.ReasonMeshDocumentRejected, msg)
		stall(meshv1alpha1.ReasonMeshDocumentRejected, msg)
		return st
	case in.err != nil:
		progressing("Retrying after error: " + in.err.Error())
		return st
	case in.plan == nil:
		return st
	}

	p := in.plan
	if in.starting {
		progressing(fmt.Sprintf("Applying generation %d: labeling %d namespaces", in.generation, len(p.namespaceApplies)))
		return st
	}

	// The targets, each on its own.
	switch {
	case in.cmErr != nil:
		set(meshv1alpha1.ConditionMeshConfigApplied, metav1.ConditionFalse, meshv1alpha1.ReasonApplyFailed, in.cmErr.Error())
	case p.configMapMissing:
		set(meshv1alpha1.ConditionMeshConfigApplied, metav1.ConditionFalse, meshv1alpha1.ReasonConfigMapNotFound, configMapMissingMessage(in))
	case p.meshApplyOwner != "":
		set(meshv1alpha1.ConditionMeshConfigApplied, metav1.ConditionFalse, meshv1alpha1.ReasonMeshConfigOwnedByApply, ownedByApplyMessage(in))
	default:
		set(meshv1alpha1.ConditionMeshConfigApplied, metav1.ConditionTrue, meshv1alpha1.ReasonUpToDate,
			fmt.Sprintf("ConfigMap %s holds the mesh document", t.ConfigMap))
	}
	switch {
	case p.istiodMissing:
		set(meshv1alpha1.ConditionIstiodEnvApplied, metav1.ConditionFalse, meshv1alpha1.ReasonIstiodNotFound,
			fmt.Sprintf("Deployment %s not found in %s; its environment is written when it appears", t.IstiodDeployment, in.namespace))
	case p.containerAbsent:
		set(meshv1alpha1.ConditionIstiodEnvApplied, metav1.ConditionFalse, meshv1alpha1.ReasonIstiodNotFound,
			fmt.Sprintf("Deployment %s has no container %s", t.IstiodDeployment, t.IstiodContainer))
	case in.depErr != nil && (apierrors.IsNotFound(in.depErr) || apierrors.IsConflict(in.depErr)):
		// changed while applying: the retry decides
	case in.depErr != nil:
		set(meshv1alpha1.ConditionIstiodEnvApplied, metav1.ConditionFalse, meshv1alpha1.ReasonApplyFailed, in.depErr.Error())
	case len(p.envHeld) > 0:
		set(meshv1alpha1.ConditionIstiodEnvApplied, metav1.ConditionFalse, meshv1alpha1.ReasonEnvHeldByOtherManager,
			fmt.Sprintf("Deployment %s: %s", t.IstiodDeployment, heldMessage(p.envHeld)))
	default:
		set(meshv1alpha1.ConditionIstiodEnvApplied, metav1.ConditionTrue, meshv1alpha1.ReasonUpToDate,
			fmt.Sprintf("Deployment %s has the %d environment entries", t.IstiodDeployment, len(p.env.Env)))
	}
	switch {
	case in.ns.err != nil:
		set(meshv1alpha1.ConditionNamespacesLabeled, metav1.ConditionFalse, meshv1alpha1.ReasonApplyFailed, in.ns.err.Error())
	case len(p.conflicts) > 0:
		set(meshv1alpha1.ConditionNamespacesLabeled, metav1.ConditionFalse, meshv1alpha1.ReasonLabelConflict, conflictMessage(p.conflicts))
	default:
		set(meshv1alpha1.ConditionNamespacesLabeled, metav1.ConditionTrue, meshv1alpha1.ReasonUpToDate,
			fmt.Sprintf("%d of %d selected namespaces labeled", p.labeled, p.selected))
	}
	// Proxies: also on a pass that retries, so a change it applied is kept.
	deriveProxies(&st, in.proxies, set)
	setRolloutStatus(&st, in)
	if err := in.retryErr(); err != nil {
		progressing("Retrying after error: " + err.Error())
		return st
	}

	// The summary.
	st.MeshConfig = &meshv1alpha1.MeshConfigStatus{ConfigMapName: t.ConfigMap, Hash: p.meshHash, Baseline: p.baseline}
	st.Istiod = &meshv1alpha1.IstiodStatus{DeploymentName: t.IstiodDeployment, Version: p.istiodTag,
		Release: p.release.Release.String(), ReleaseSource: p.release.Source}
	st.Namespaces = &meshv1alpha1.NamespacesStatus{Selected: p.selected, Labeled: p.labeled, Conflicts: p.conflicts}
	st.IgnoredSettings = p.env.Ignored
	meta.RemoveStatusCondition(&st.Conditions, meshv1alpha1.ConditionReconciling)
	suffix := ""
	if w := warnings(p); len(w) > 0 {
		suffix = "; warning: " + strings.Join(w, "; warning: ")
	}
	switch {
	case p.meshApplyOwner != "":
		stall(meshv1alpha1.ReasonMeshConfigOwnedByApply, ownedByApplyMessage(in)+suffix)
	case len(p.conflicts) > 0:
		stall(meshv1alpha1.ReasonLabelConflict, "Namespace labels held by other managers: "+conflictMessage(p.conflicts)+suffix)
	case p.configMapMissing:
		meta.RemoveStatusCondition(&st.Conditions, meshv1alpha1.ConditionStalled)
		set(meshv1alpha1.ConditionReady, metav1.ConditionFalse, meshv1alpha1.ReasonConfigMapNotFound, configMapMissingMessage(in)+suffix)
	case p.istiodMissing || p.containerAbsent:
		meta.RemoveStatusCondition(&st.Conditions, meshv1alpha1.ConditionStalled)
		set(meshv1alpha1.ConditionReady, metav1.ConditionFalse, meshv1alpha1.ReasonIstiodNotFound,
			"Mesh ConfigMap written; waiting for istiod Deployment "+t.IstiodDeployment+suffix)
	case len(p.envHeld) > 0:
		meta.RemoveStatusCondition(&st.Conditions, meshv1alpha1.ConditionStalled)
		set(meshv1alpha1.ConditionReady, metav1.ConditionFalse, meshv1alpha1.ReasonEnvHeldByOtherManager,
			"Mesh ConfigMap written; "+heldMessage(p.envHeld)+suffix)
	default:
		meta.RemoveStatusCondition(&st.Conditions, meshv1alpha1.ConditionStalled)
		set(meshv1alpha1.ConditionReady, metav1.ConditionTrue, meshv1alpha1.ReasonReconciled,
			fmt.Sprintf("Mesh configuration applied to ConfigMap %s, Deployment %s and %d namespaces%s",
				t.ConfigMap, t.IstiodDeployment, p.labeled, suffix))
	}
	return st
}

func configMapMissingMessage(in *pass) string {
	return fmt.Sprintf("ConfigMap %s not found in %s; with configMapOwnership Merge the operator never creates it and waits for its owner "+
		"(Helm with configMap=true) to create it; set configMapOwnership: Own to have the operator create and own it", in.targets.ConfigMap, in.namespace)
}

func ownedByApplyMessage(in *pass) string {
	return fmt.Sprintf("ConfigMap %s/%s key %q is owned by manager %q with server-side apply (Helm 4's default, Argo CD with ServerSideApply=true); "+
		"with configMapOwnership Merge, taking it would make that manager's next apply fail, so nothing is written to the ConfigMap. "+
		"Remedy: install the chart with configMap=false and set configMapOwnership: Own (docs/helm.md), "+
		"or have that manager write with client-side apply (helm --server-side=false, Argo CD without ServerSideApply)",
		in.namespace, in.targets.ConfigMap, render.MeshKey, in.plan.meshApplyOwner)
}

// warnings are the problems of an applied plan that need no retry but the
// user's attention; each appears in the Ready message.
func warnings(p *plan) []string {
	var w []string
	if p.selectorWarning != "" {
		w = append(w, p.selectorWarning)
	}
	if p.recordProblem != "" {
		w = append(w, p.recordProblem)
	}
	if p.release.Note != "" {
		w = append(w, p.release.Note)
	}
	// Other managers' keys the release does not read: a few by name, so a
	// large foreign document cannot flood the Ready message.
	const maxUnread = 5
	for i, u := range p.unread {
		if i == maxUnread {
			w = append(w, fmt.Sprintf("%d more mesh keys of other managers istiod %s does not read", len(p.unread)-maxUnread, p.release.Release))
			break
		}
		w = append(w, u)
	}
	if len(p.env.Ignored) > 0 {
		w = append(w, fmt.Sprintf("%d settings ignored by istiod %s (see status.ignoredSettings)", len(p.env.Ignored), p.istiodTag))
	}
	w = append(w, p.env.Warnings...)
	return w
}

// statusEvent is one Kubernetes event about the MeshSettings.
type statusEvent struct {
	eventType, reason, action, note string
}

// transitions derives the events of a pass by comparing the status before
// and after it, as flux's notify does: one event per transition, so a
// repeated pass with the same outcome says nothing. Writes the pass sent are
// transitions of their target and get one Normal event each.
func transitions(old, cur *meshv1alpha1.MeshSettingsStatus, in *pass) []statusEvent {
	var out []statusEvent
	changed := func(t string) (*metav1.Condition, bool) {
		n := meta.FindStatusCondition(cur.Conditions, t)
		o := meta.FindStatusCondition(old.Conditions, t)
		if n == nil {
			return nil, false
		}
		return n, o == nil || o.Status != n.Status || o.Reason != n.Reason || o.Message != n.Message
	}
	stalled, stallChanged := changed(meshv1alpha1.ConditionStalled)
	if stallChanged && stalled.Status == metav1.ConditionTrue {
		out = append(out, statusEvent{corev1.EventTypeWarning, stalled.Reason, "Reconcile", stalled.Message})
	}
	for _, tc := range []struct{ cond, action string }{
		{meshv1alpha1.ConditionMeshConfigApplied, "ApplyConfigMap"},
		{meshv1alpha1.ConditionIstiodEnvApplied, "ApplyIstiodEnv"},
		{meshv1alpha1.ConditionNamespacesLabeled, "LabelNamespaces"},
	} {
		c, ch := changed(tc.cond)
		if ch && c.Status == metav1.ConditionFalse && (stalled == nil || stalled.Reason != c.Reason) {
			out = append(out, statusEvent{corev1.EventTypeWarning, c.Reason, tc.action, c.Message})
		}
	}
	out = append(out, passEvents(old, cur, in)...)
	out = append(out, proxyEvents(old, cur)...)
	out = append(out, rolloutEvents(in)...)
	ready, readyChanged := changed(meshv1alpha1.ConditionReady)
	if readyChanged && ready.Status == metav1.ConditionTrue {
		if o := meta.FindStatusCondition(old.Conditions, meshv1alpha1.ConditionReady); o == nil || o.Status != metav1.ConditionTrue {
			out = append(out, statusEvent{corev1.EventTypeNormal, meshv1alpha1.ReasonReconciled, "Reconcile", ready.Message})
		}
	}
	return slices.Clip(out)
}

// actionPlan is the action of the warnings about the plan itself.
const actionPlan = "Plan"

// passEvents are the events of what one pass wrote and of the warnings its
// plan carries that the Ready message did not carry already.
func passEvents(old, cur *meshv1alpha1.MeshSettingsStatus, in *pass) []statusEvent {
	if in.plan == nil || in.starting {
		return nil
	}
	var out []statusEvent
	p := in.plan
	if in.cmSent && in.cmErr == nil {
		out = append(out, statusEvent{corev1.EventTypeNormal, meshv1alpha1.ConditionMeshConfigApplied, "ApplyConfigMap",
			fmt.Sprintf("Wrote key %q of ConfigMap %s", render.MeshKey, in.targets.ConfigMap)})
	}
	if in.depSent && in.depErr == nil {
		out = append(out, statusEvent{corev1.EventTypeNormal, meshv1alpha1.ConditionIstiodEnvApplied, "ApplyIstiodEnv",
			fmt.Sprintf("Set %d environment entries of %s/%s (istiod restarts)", len(p.env.Env), in.targets.IstiodDeployment, in.targets.IstiodContainer)})
	}
	if in.ns.changed > 0 {
		out = append(out, statusEvent{corev1.EventTypeNormal, meshv1alpha1.ConditionNamespacesLabeled, "LabelNamespaces",
			fmt.Sprintf("Updated labels of %d namespaces", in.ns.changed)})
	}
	oldReady := ""
	if c := meta.FindStatusCondition(old.Conditions, meshv1alpha1.ConditionReady); c != nil {
		oldReady = c.Message
	}
	if p.selectorWarning != "" && !strings.Contains(oldReady, p.selectorWarning) {
		out = append(out, statusEvent{corev1.EventTypeWarning, "DiscoverySelectors", actionPlan, p.selectorWarning})
	}
	if p.recordProblem != "" && !strings.Contains(oldReady, p.recordProblem) {
		out = append(out, statusEvent{corev1.EventTypeWarning, "RecordDamaged", actionPlan, p.recordProblem})
	}
	if len(cur.IgnoredSettings) > 0 && !equality.Semantic.DeepEqual(old.IgnoredSettings, cur.IgnoredSettings) {
		// One event for all: the events API folds events of one reason
		// and action into a series, which shows only the first note.
		parts := make([]string, len(cur.IgnoredSettings))
		for i, s := range cur.IgnoredSettings {
			parts[i] = s.Field + ": " + s.Reason
		}
		out = append(out, statusEvent{corev1.EventTypeWarning, "SettingIgnored", actionPlan,
			fmt.Sprintf("%d settings not written: %s", len(parts), strings.Join(parts, "; "))})
	}
	return out
}
