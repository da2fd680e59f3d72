package controllers

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

// Table tests of the executor's pure steps: what a Deployment is to a
// restart, and what a pass restarts; no API server.

const since = "2026-12-03T12:00:00Z"

func deployment(mut ...func(*appsv1.Deployment)) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cart", Generation: 2},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To[int32](3)},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 2, Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 3, AvailableReplicas: 3,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}}},
	}
	for _, m := range mut {
		m(d)
	}
	return d
}

func restartedFor(s string) func(*appsv1.Deployment) {
	return func(d *appsv1.Deployment) { d.Annotations = map[string]string{RestartedForAnnotation: s} }
}

func TestClassifyDeployment(t *testing.T) {
	cases := []struct {
		name string
		d    *appsv1.Deployment
		want rolloutState
	}{
		{"gone", nil, rolloutSkipped},
		{"never restarted", deployment(), rolloutFresh},
		{"restarted for an earlier change", deployment(restartedFor("2026-12-01T08:00:00Z")), rolloutFresh},
		{"paused", deployment(func(d *appsv1.Deployment) { d.Spec.Paused = true }), rolloutSkipped},
		{"restarted for this change and rolled out", deployment(restartedFor(since)), rolloutDone},
		{"restarted, the controller has not seen the new template", deployment(restartedFor(since), func(d *appsv1.Deployment) { d.Generation = 3 }), rolloutInProgress},
		{"restarted, 1 of 3 replicas updated", deployment(restartedFor(since), func(d *appsv1.Deployment) { d.Status.UpdatedReplicas = 1; d.Status.Replicas = 4 }), rolloutInProgress},
		{"restarted, every replica updated but an old one left", deployment(restartedFor(since), func(d *appsv1.Deployment) { d.Status.Replicas = 4 }), rolloutInProgress},
		{"restarted, updated but not yet available", deployment(restartedFor(since), func(d *appsv1.Deployment) { d.Status.AvailableReplicas = 2 }), rolloutInProgress},
		{"restarted, counts met but Available is False", deployment(restartedFor(since), func(d *appsv1.Deployment) {
			d.Status.Conditions[0].Status = corev1.ConditionFalse
		}), rolloutInProgress},
		{"restarted, the rollout failed", deployment(restartedFor(since), func(d *appsv1.Deployment) {
			d.Status.UpdatedReplicas = 1
			d.Status.Conditions = append(d.Status.Conditions, appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing,
				Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "cart-7d9" has timed out progressing.`})
		}), rolloutFailed},
		{"restarted and paused during its rollout: no longer waited for", deployment(restartedFor(since), func(d *appsv1.Deployment) {
			d.Spec.Paused = true
			d.Generation = 3
		}), rolloutFailed},
		{"scaled to zero and restarted", deployment(restartedFor(since), func(d *appsv1.Deployment) {
			d.Spec.Replicas = ptr.To[int32](0)
			d.Status = appsv1.DeploymentStatus{ObservedGeneration: 2}
		}), rolloutDone},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got, why := classifyDeployment(c.d, since); got != c.want {
				t.Errorf("got %d (%s), want %d", got, why, c.want)
			}
		})
	}
}

func seen(state rolloutState, names ...string) []seenDeployment {
	out := make([]seenDeployment, len(names))
	for i, n := range names {
		out[i] = seenDeployment{key: types.NamespacedName{Namespace: "shop", Name: n}, state: state}
	}
	return out
}

func names(keys []types.NamespacedName) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.Name
	}
	return out
}

func TestPlanRollout(t *testing.T) {
	cases := []struct {
		name                  string
		waited, candidates    []seenDeployment
		wantRestart, wantWait []string
	}{
		{"nothing pending", nil, nil, nil, nil},
		{"restarts at most the limit, in order", nil, seen(rolloutFresh, "a", "b", "c"), []string{"a", "b"}, nil},
		{"waits: no slot while two roll", seen(rolloutInProgress, "a", "b"), seen(rolloutFresh, "c"), nil, []string{"a", "b"}},
		{"one rolled out: one slot", append(seen(rolloutDone, "a"), seen(rolloutInProgress, "b")...), seen(rolloutFresh, "c", "d"),
			[]string{"c"}, []string{"b"}},
		{"never twice: done, failed or skipped candidates are not restarted",
			seen(rolloutDone, "a"), slices.Concat(seen(rolloutDone, "a", "b"), seen(rolloutFailed, "c"), seen(rolloutSkipped, "d"), seen(rolloutFresh, "e")),
			[]string{"e"}, nil},
		{"a rolling candidate the status lost takes a slot", nil, slices.Concat(seen(rolloutInProgress, "a"), seen(rolloutFresh, "b", "c")),
			[]string{"b"}, []string{"a"}},
		{"a waited Deployment listed again as a candidate counts once", seen(rolloutInProgress, "a"), slices.Concat(seen(rolloutInProgress, "a"), seen(rolloutFresh, "b")),
			[]string{"b"}, []string{"a"}},
		{"a failed rollout frees its slot", seen(rolloutFailed, "a"), seen(rolloutFresh, "b", "c"), []string{"b", "c"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := planRollout(2, c.waited, c.candidates)
			if got := names(p.restart); !slices.Equal(got, c.wantRestart) && (len(got) > 0 || len(c.wantRestart) > 0) {
				t.Errorf("restart: got %v, want %v", got, c.wantRestart)
			}
			if got := names(p.waiting); !slices.Equal(got, c.wantWait) && (len(got) > 0 || len(c.wantWait) > 0) {
				t.Errorf("waiting: got %v, want %v", got, c.wantWait)
			}
			if n := len(p.restart) + len(p.waiting); n > 2 {
				t.Errorf("%d Deployments would roll at once, limit 2", n)
			}
		})
	}
}

func TestRestartPatch(t *testing.T) {
	p := RestartPatch(since, "2026-12-03T12:00:05Z")
	if p.Type() != types.MergePatchType {
		t.Errorf("patch type %s, want a JSON merge patch", p.Type())
	}
	body, err := p.Data(nil)
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	if d.Annotations[RestartedForAnnotation] != since || d.Spec.Template.Annotations[RestartedAtAnnotation] != "2026-12-03T12:00:05Z" {
		t.Errorf("patch %s lacks the marker or kubectl's annotation", body)
	}
	var raw map[string]any
	_ = json.Unmarshal(body, &raw)
	spec, _ := raw["spec"].(map[string]any)
	if len(raw) != 2 || len(spec) != 1 {
		t.Errorf("patch %s sets more than the two annotations", body)
	}
}

func TestRolloutStatusAndEvents(t *testing.T) {
	st := &meshv1alpha1.MeshSettingsStatus{Proxies: &meshv1alpha1.ProxiesStatus{Pending: 3, Restarting: []string{"shop/old"}}}
	in := &pass{proxies: &proxyPass{}, rollout: &rolloutResult{since: since, restarting: []string{"shop/a", "shop/b"}, restarted: []string{"shop/b"},
		failed: []string{"shop/c: rollout failed: timed out"}}}
	setRolloutStatus(st, in)
	if !slices.Equal(st.Proxies.Restarting, []string{"shop/a", "shop/b"}) {
		t.Errorf("restarting %v", st.Proxies.Restarting)
	}
	ev := rolloutEvents(in)
	if len(ev) != 2 || ev[0].reason != reasonRolloutRestarted || ev[0].eventType != corev1.EventTypeNormal ||
		!strings.Contains(ev[0].note, "Restarted Deployment shop/b") || ev[1].reason != reasonRolloutFailed || !strings.Contains(ev[1].note, "shop/c") {
		t.Errorf("events %+v", ev)
	}

	// A pass that counted no proxies keeps what the status had.
	setRolloutStatus(st, &pass{})
	if !slices.Equal(st.Proxies.Restarting, []string{"shop/a", "shop/b"}) {
		t.Errorf("a pass without a proxy count changed restarting to %v", st.Proxies.Restarting)
	}
	// Without RolloutRestart (no result) nothing is waited for, and nothing is said.
	setRolloutStatus(st, &pass{proxies: &proxyPass{}})
	if st.Proxies.Restarting != nil || rolloutEvents(&pass{}) != nil {
		t.Errorf("without the executor: restarting %v", st.Proxies.Restarting)
	}

	// An error is said once, not on every recheck.
	var m rolloutMemo
	err := errors.New("deployments.apps \"a\" is forbidden")
	if !m.errorChanged("istio-system/mesh", err) || m.errorChanged("istio-system/mesh", err) {
		t.Error("the same error twice: want it reported once")
	}
	if !m.errorChanged("istio-system/mesh", nil) || !m.errorChanged("istio-system/mesh", err) {
		t.Error("an error gone and back: want both changes reported")
	}
	noisy := &pass{rollout: &rolloutResult{err: err, newErr: false}}
	if ev := rolloutEvents(noisy); len(ev) != 0 {
		t.Errorf("a repeated error made events %+v", ev)
	}
	if (&rolloutResult{err: err}).requeue() == 0 || (&rolloutResult{}).requeue() != 0 || (&rolloutResult{restarting: []string{"x"}}).requeue() != rolloutRecheck {
		t.Error("requeue: want a slow recheck on error, none when nothing rolls, rolloutRecheck while something rolls")
	}
}
