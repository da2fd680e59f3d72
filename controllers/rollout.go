package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

// RolloutRestart (spec.proxyRestart: RolloutRestart) restarts the
// Deployments that own proxies predating a change that reaches a proxy only
// in a new pod, as `kubectl rollout restart` does: it sets the pod template
// annotation kubectl.kubernetes.io/restartedAt, so the Deployment rolls its
// pods within its own maxSurge/maxUnavailable (and the PodDisruptionBudgets
// it meets). At most RolloutRestartConcurrency Deployments roll at a time;
// the next starts when one is available again.
//
// The write is a JSON merge patch (an Update operation of the field manager
// meshsettings-operator), as kubectl's own: it creates nothing when the
// Deployment is gone (404), and it claims no lasting ownership. A
// server-side apply would make the operator the owner of restartedAt, and
// the next `kubectl rollout restart` by a person, or Argo CD's restart
// action, would take it over or conflict with it.
//
// A Deployment is restarted at most once per change: the patch also sets
// RestartedForAnnotation on the Deployment (not its pod template) to the
// change's restartRequiredSince, and a Deployment carrying that value is
// never patched again for it, even when its pods are still counted (a
// rollout that failed, a pod that did not go away). The marker lives on the
// Deployment, so the record survives the operator's restarts and its size
// does not grow with the mesh; status.proxies lists only the Deployments
// being waited for (at most RolloutRestartConcurrency).
const (
	// RestartedAtAnnotation is the pod template annotation `kubectl rollout restart` sets.
	RestartedAtAnnotation = "kubectl.kubernetes.io/restartedAt"
	// RestartedForAnnotation names, on a Deployment, the change (its
	// restartRequiredSince, RFC 3339) the operator restarted it for.
	RestartedForAnnotation = "mesh.meshsettings.io/restarted-for"
	// RolloutRestartConcurrency is how many Deployments roll at a time. Two
	// keeps the extra capacity a restart needs (each Deployment's surge) small
	// while one slow rollout does not hold up the rest; each Deployment still
	// rolls within its own strategy.
	RolloutRestartConcurrency = 2
	// rolloutRecheck is how often a pass waiting for a rollout looks again:
	// the operator watches no Deployments outside istiod's namespace.
	rolloutRecheck = 10 * time.Second
	// maxRolloutReads bounds the Deployments one pass reads: a pass stays
	// cheap however many Deployments are pending.
	maxRolloutReads = 50
	// maxRolloutMemo bounds rolloutMemo.
	maxRolloutMemo = 10000
)

// rolloutState is what one Deployment is to the executor, for one change.
type rolloutState int

const (
	// rolloutFresh: not restarted for this change; may be restarted.
	rolloutFresh rolloutState = iota
	// rolloutInProgress: restarted for this change; not yet rolled out.
	rolloutInProgress
	// rolloutDone: restarted for this change and rolled out: every replica
	// updated and available.
	rolloutDone
	// rolloutFailed: restarted for this change, and the Deployment reports
	// ProgressDeadlineExceeded: no longer waited for, not restarted again.
	rolloutFailed
	// rolloutSkipped: cannot be restarted (gone, or paused).
	rolloutSkipped
)

// classifyDeployment says what d is to a restart for the change since
// (restartRequiredSince, RFC 3339). d nil: the Deployment is gone.
func classifyDeployment(d *appsv1.Deployment, since string) (rolloutState, string) {
	switch {
	case d == nil:
		return rolloutSkipped, "not found"
	case d.Annotations[RestartedForAnnotation] != since && d.Spec.Paused:
		return rolloutSkipped, "paused (a restart would not roll it)"
	case d.Annotations[RestartedForAnnotation] != since:
		return rolloutFresh, ""
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			return rolloutFailed, "rollout failed: " + c.Message
		}
	}
	switch {
	case rolledOut(d):
		return rolloutDone, ""
	case d.Spec.Paused:
		return rolloutFailed, "paused during its rollout"
	}
	return rolloutInProgress, ""
}

// rolledOut is `kubectl rollout status`'s test, with the Available
// condition: the controller saw the latest template, every replica runs it
// and is available, and no old replica is left.
func rolledOut(d *appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	s := d.Status
	if s.ObservedGeneration < d.Generation || s.UpdatedReplicas < want || s.Replicas > s.UpdatedReplicas || s.AvailableReplicas < s.UpdatedReplicas {
		return false
	}
	for _, c := range s.Conditions {
		if c.Type == appsv1.DeploymentAvailable {
			return c.Status == corev1.ConditionTrue
		}
	}
	return true
}

// seenDeployment is one Deployment read by a pass, with its state.
type seenDeployment struct {
	key   types.NamespacedName
	state rolloutState
	why   string
}

// rolloutPlan is what a pass does: which Deployments to restart, and which
// it waits for afterwards.
type rolloutPlan struct {
	restart []types.NamespacedName
	// waiting are restarted for this change and not rolled out: the ones
	// the previous pass waited for that still roll, and any other found
	// rolling (a status write that was lost). The restarted join them.
	waiting []types.NamespacedName
}

// planRollout decides a pass from what it read: the Deployments the last
// pass waited for (waited) and, in order, the pending ones (candidates). It
// restarts fresh candidates while fewer than limit Deployments roll.
func planRollout(limit int, waited, candidates []seenDeployment) rolloutPlan {
	var p rolloutPlan
	for _, w := range waited {
		if w.state == rolloutInProgress {
			p.waiting = append(p.waiting, w.key)
		}
	}
	for _, c := range candidates {
		if slices.Contains(p.waiting, c.key) || slices.Contains(p.restart, c.key) {
			continue
		}
		switch c.state {
		case rolloutInProgress:
			p.waiting = append(p.waiting, c.key)
		case rolloutFresh:
			if len(p.waiting)+len(p.restart) < limit {
				p.restart = append(p.restart, c.key)
			}
		}
	}
	return p
}

// rolloutResult is the outcome of a pass of the executor, for its status
// and events.
type rolloutResult struct {
	// restarting lists "namespace/name" of the Deployments rolling for the
	// change (restarted now or earlier), sorted.
	restarting []string
	// restarted lists the Deployments this pass patched.
	restarted []string
	// failed lists the Deployments given up on, with why.
	failed []string
	// err is the first failed read or patch; RBAC refusals say what to install.
	err error
	// since is the change (RFC 3339); newErr: err differs from the last pass's.
	since  string
	newErr bool
}

// requeue: a pass that waits for a rollout looks again after rolloutRecheck.
func (res *rolloutResult) requeue() time.Duration {
	switch {
	case res == nil:
		return 0
	case res.err != nil:
		return 6 * rolloutRecheck // a missing permission: look again now and then
	case len(res.restarting) > 0:
		return rolloutRecheck
	}
	return 0
}

// rolloutRestart runs one pass of the executor for the change since
// (restartRequiredSince, RFC 3339): it reads the Deployments the last pass
// waited for (waited, "namespace/name") and then the pending ones in order
// (pending, "namespace/name", every Deployment owning a pending proxy),
// until it knows enough to fill the free slots, and restarts what
// planRollout says.
func (r *MeshSettingsReconciler) rolloutRestart(ctx context.Context, since string, waited, pending []string) *rolloutResult {
	res := &rolloutResult{}
	reads := 0
	read := func(key string) (seenDeployment, bool) {
		ns, name, _ := strings.Cut(key, "/")
		k := types.NamespacedName{Namespace: ns, Name: name}
		reads++
		d := &appsv1.Deployment{}
		if err := r.APIReader.Get(ctx, k, d); apierrors.IsNotFound(err) {
			d = nil
		} else if err != nil {
			if res.err == nil {
				res.err = rbacHint(fmt.Errorf("reading Deployment %s: %w", key, err))
			}
			return seenDeployment{}, false
		}
		st, why := classifyDeployment(d, since)
		return seenDeployment{key: k, state: st, why: why}, true
	}
	var w, c []seenDeployment
	for _, key := range waited {
		if s, ok := read(key); ok {
			w = append(w, s)
			if s.state == rolloutFailed {
				res.failed = append(res.failed, key+": "+s.why)
			}
		}
	}
	for _, key := range pending {
		p := planRollout(RolloutRestartConcurrency, w, c)
		if len(p.waiting)+len(p.restart) >= RolloutRestartConcurrency || reads >= maxRolloutReads || res.err != nil {
			break
		}
		if slices.Contains(waited, key) || r.rollouts.settled(key, since) {
			continue
		}
		if s, ok := read(key); ok {
			c = append(c, s)
			if s.state != rolloutFresh && s.state != rolloutInProgress {
				r.rollouts.settle(key, since) // done, failed or skipped: not read again for this change
			}
		}
	}
	p := planRollout(RolloutRestartConcurrency, w, c)
	now := time.Now().UTC().Format(time.RFC3339)
	rolling := p.waiting
	for _, k := range p.restart {
		target := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name}}
		if err := r.Patch(ctx, target, RestartPatch(since, now), client.FieldOwner(FieldManager)); err != nil {
			if res.err == nil && !apierrors.IsNotFound(err) {
				res.err = rbacHint(fmt.Errorf("restarting Deployment %s: %w", k, err))
			}
			continue
		}
		rolling = append(rolling, k)
		res.restarted = append(res.restarted, k.String())
		logf.FromContext(ctx).Info("restarted Deployment", "deployment", k, "for", since)
	}
	for _, k := range rolling {
		res.restarting = append(res.restarting, k.String())
	}
	slices.Sort(res.restarting)
	return res
}

// RestartPatch is the merge patch of a restart for the change since, at
// now (both RFC 3339): kubectl's pod template annotation, and the
// operator's marker of the change on the Deployment.
func RestartPatch(since, now string) client.Patch {
	body, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]string{RestartedForAnnotation: since}},
		"spec": map[string]any{"template": map[string]any{
			"metadata": map[string]any{"annotations": map[string]string{RestartedAtAnnotation: now}},
		}},
	})
	return client.RawPatch(types.MergePatchType, body)
}

// rbacHint words a refusal: the patch needs the ClusterRole the chart and
// config/ install only when RolloutRestart is enabled.
func rbacHint(err error) error {
	if !apierrors.IsForbidden(err) {
		return err
	}
	return fmt.Errorf("%w; spec.proxyRestart RolloutRestart needs get and patch on deployments in every namespace: "+
		"install the chart with rolloutRestart.enabled=true (or config/rollout-restart)", err)
}

// rolloutMemo remembers the Deployments a change needs no more reads of
// (restarted and rolled out, failed, gone, paused) while their proxies are
// still counted, so a pass reads the next ones instead. It is a cache: lost
// on restart, the Deployments are read again and their marker decides.
type rolloutMemo struct {
	mu      sync.Mutex
	done    map[string]string // "namespace/name" -> since
	lastErr map[string]string // MeshSettings "namespace/name" -> the executor's last error
}

func (m *rolloutMemo) settled(key, since string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.done[key] == since
}

func (m *rolloutMemo) settle(key, since string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done == nil || len(m.done) >= maxRolloutMemo {
		m.done = map[string]string{} // a cache: start over rather than grow
	}
	m.done[key] = since
}

// rolloutPass runs the executor in a pass whose spec asks for
// RolloutRestart: since is status.proxies.restartRequiredSince as the pass
// computed it, pending every Deployment owning a pending proxy. Nil when
// the spec does not ask for it (nothing is read or written); an empty
// result when nothing is pending (nothing is waited for any more).
func (r *MeshSettingsReconciler) rolloutPass(ctx context.Context, ms *meshv1alpha1.MeshSettings, since *metav1.Time, pending []string) *rolloutResult {
	if ms.Spec.ProxyRestart != meshv1alpha1.ProxyRestartRolloutRestart {
		return nil
	}
	if since == nil || len(pending) == 0 {
		return &rolloutResult{}
	}
	var waited []string
	if ms.Status.Proxies != nil {
		waited = ms.Status.Proxies.Restarting
	}
	change := since.UTC().Format(time.RFC3339)
	res := r.rolloutRestart(ctx, change, waited, pending)
	res.since = change
	res.newErr = r.rollouts.errorChanged(client.ObjectKeyFromObject(ms).String(), res.err)
	return res
}

// setRolloutStatus puts what the executor waits for into the status; without
// RolloutRestart nothing is waited for. A pass that counted no proxies keeps
// what the status had.
func setRolloutStatus(st *meshv1alpha1.MeshSettingsStatus, in *pass) {
	if st.Proxies == nil || in.proxies == nil {
		return
	}
	st.Proxies.Restarting = nil
	if in.rollout != nil && len(in.rollout.restarting) > 0 {
		st.Proxies.Restarting = slices.Clone(in.rollout.restarting)
	}
}

// Event reasons of the executor.
const (
	reasonRolloutRestarted = "RolloutRestarted"
	reasonRolloutFailed    = "RolloutFailed"
	reasonRolloutError     = "RolloutRestartFailed"
	actionRolloutRestart   = "RolloutRestart"
)

// rolloutEvents are the events of what the executor did in a pass: one
// Normal event for the Deployments it restarted, a Warning for each rollout
// it gave up on, and a Warning when it could not read or patch (once per
// distinct error, not every recheck).
func rolloutEvents(in *pass) []statusEvent {
	res := in.rollout
	if res == nil {
		return nil
	}
	var out []statusEvent
	if len(res.restarted) > 0 {
		out = append(out, statusEvent{corev1.EventTypeNormal, reasonRolloutRestarted, actionRolloutRestart,
			fmt.Sprintf("Restarted Deployment %s (kubectl rollout restart) for the change applied at %s; at most %d roll at a time, each until available",
				strings.Join(res.restarted, ", "), res.since, RolloutRestartConcurrency)})
	}
	for _, f := range res.failed {
		out = append(out, statusEvent{corev1.EventTypeWarning, reasonRolloutFailed, actionRolloutRestart,
			"Gave up waiting for Deployment " + f + "; it is not restarted again for this change"})
	}
	if res.err != nil && res.newErr {
		out = append(out, statusEvent{corev1.EventTypeWarning, reasonRolloutError, actionRolloutRestart, res.err.Error()})
	}
	return out
}

// errorChanged remembers the executor's last error per MeshSettings and
// reports whether err differs from it.
func (m *rolloutMemo) errorChanged(key string, err error) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if m.lastErr == nil {
		m.lastErr = map[string]string{}
	}
	changed := m.lastErr[key] != msg
	if msg == "" {
		delete(m.lastErr, key)
	} else {
		m.lastErr[key] = msg
	}
	return changed
}
