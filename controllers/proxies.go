package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// The proxy report (issue 19): which Envoy proxies of the MeshSettings'
// revision still run the settings of before a change they read only at
// start, and which run a revision their namespace no longer selects.

// Bounds of status.proxies (the CRD's MaxItems).
const (
	maxPendingNamespaces = 20
	maxPendingWorkloads  = 10
	maxProxyChanges      = 64
	// restartHintNamespaces is how many namespaces the event's restart
	// commands name.
	restartHintNamespaces = 3
)

// proxyPass is what a pass learned about proxies; deriveStatus turns it into
// status.proxies and ProxiesUpToDate.
type proxyPass struct {
	revision string
	// changedAt is set when this pass applied a mesh document whose change
	// reaches a proxy only in a new pod; changes are those mesh paths.
	changedAt *metav1.Time
	changes   []string
	// since is the restartRequiredSince the count used: changedAt, or the
	// one in status.
	since  *metav1.Time
	report *proxyReport
}

// pendingDeployments are all Deployments owning a pending proxy,
// "namespace/name", largest namespaces and Deployments first (nil-safe).
func (pp *proxyPass) pendingDeployments() []string {
	if pp == nil || pp.report == nil {
		return nil
	}
	return pp.report.deployments
}

// proxyReport counts the pending proxies of one revision.
type proxyReport struct {
	// predating: created before restartRequiredSince; mismatched: injected
	// with this revision in a namespace that now selects another (or none).
	// A pod both is counted once, in pending.
	pending, predating, mismatched int32
	namespaces                     []pendingNamespace
	// deployments are every Deployment owning a pending proxy,
	// "namespace/name", the largest namespaces and Deployments first: what
	// RolloutRestart restarts.
	deployments []string
}

type pendingNamespace struct {
	name      string
	pending   int32
	workloads []workloadCount
}

type workloadCount struct {
	name  string // "Deployment/web"
	count int32
}

// proxyPod is one proxy pod as the count sees it.
type proxyPod struct {
	namespace string
	workload  string
	created   time.Time
	// injected: a sidecar (or injected gateway), placed by the namespace's
	// injection labels; waypoints follow their Gateway instead.
	injected bool
	// selected is the revision the pod's namespace (or its own labels) now
	// selects for injection, "" for none.
	selected string
}

// countPending is the pure count: pods of revision rev that predate since
// (when set) or, injected, run a revision their namespace no longer selects.
func countPending(rev string, since *metav1.Time, pods []proxyPod) *proxyReport {
	rep := &proxyReport{}
	byNS := map[string]map[string]int32{}
	for _, p := range pods {
		predates := since != nil && p.created.Before(since.Time)
		mismatch := p.injected && p.selected != rev
		if !predates && !mismatch {
			continue
		}
		if predates {
			rep.predating++
		}
		if mismatch {
			rep.mismatched++
		}
		rep.pending++
		w := byNS[p.namespace]
		if w == nil {
			w = map[string]int32{}
			byNS[p.namespace] = w
		}
		w[p.workload]++
	}
	for ns, ws := range byNS {
		pn := pendingNamespace{name: ns}
		for name, n := range ws {
			pn.pending += n
			pn.workloads = append(pn.workloads, workloadCount{name, n})
		}
		slices.SortFunc(pn.workloads, func(a, b workloadCount) int {
			return cmp.Or(cmp.Compare(b.count, a.count), cmp.Compare(a.name, b.name))
		})
		rep.namespaces = append(rep.namespaces, pn)
	}
	slices.SortFunc(rep.namespaces, func(a, b pendingNamespace) int {
		return cmp.Or(cmp.Compare(b.pending, a.pending), cmp.Compare(a.name, b.name))
	})
	for _, pn := range rep.namespaces {
		for _, w := range pn.workloads {
			if name, ok := strings.CutPrefix(w.name, "Deployment/"); ok {
				rep.deployments = append(rep.deployments, pn.name+"/"+name)
			}
		}
	}
	return rep
}

// selectedRevision is the revision Istio's injection webhooks would give a
// new pod with these labels in a namespace with these labels, "" for none:
// the namespace's istio-injection label wins (enabled: the default
// revision), then its istio.io/rev, then the pod's own istio.io/rev, then
// the pod's sidecar.istio.io/inject=true (the default revision). A revision
// tag in istio.io/rev is taken as a revision name.
func selectedRevision(nsLabels map[string]string, podRevision, podInject string) string {
	if v, ok := nsLabels[render.LabelInjection]; ok {
		if v == render.InjectionEnabled && podInject != "false" {
			return defaultRevision
		}
		return ""
	}
	if podInject == "false" {
		return ""
	}
	if v := nsLabels[render.LabelRevision]; v != "" {
		return v
	}
	if podRevision != "" {
		return podRevision
	}
	if podInject == "true" {
		return defaultRevision
	}
	return ""
}

// proxyMemo keeps each MeshSettings' last report, valid while no proxy pod
// and no injection label changed (proxyGen) and the change time is the
// same: a pass that no pod or injection-label event started reads no pod.
type proxyMemo struct {
	mu sync.Mutex
	m  map[types.UID]proxyMemoEntry
}

type proxyMemoEntry struct {
	gen      uint64
	since    time.Time
	revision string
	report   *proxyReport
}

// observeProxies is the proxies step of a pass, after the writes: when the
// mesh document this pass wrote changes something a proxy reads only at
// start, the change time is now; then the pending proxies of the revision
// are counted from the pod cache (only when pods, injection labels or the
// change time moved since the last count).
func (r *MeshSettingsReconciler) observeProxies(ctx context.Context, ms *meshv1alpha1.MeshSettings, obs *observed, in *pass) {
	pp := &proxyPass{revision: targetRevision(ms)}
	if in.cmSent && in.cmErr == nil {
		prev := ""
		if obs.configMap != nil {
			prev = obs.configMap.Data[render.MeshKey]
		}
		paths, err := render.ProxyRestartPaths(prev, in.plan.meshDocument)
		paths = withoutRewritten(paths, in.plan.rewritten)
		switch {
		case err != nil:
			// Which change it was is unknown: no restart is claimed.
			logf.FromContext(ctx).Error(err, "comparing the mesh documents for the proxy report")
		case len(paths) > 0:
			// Seconds, as the API server keeps creationTimestamp: a pod
			// created in the second of the write is not counted.
			now := metav1.NewTime(time.Now().Truncate(time.Second))
			pp.changedAt, pp.changes = &now, paths
		}
	}
	since := pp.changedAt
	if since == nil && ms.Status.Proxies != nil {
		since = ms.Status.Proxies.RestartRequiredSince
	}
	pp.since = since
	rep, err := r.countProxies(ctx, ms.UID, pp.revision, since)
	if err != nil {
		if !errors.Is(err, errPodsNotSynced) {
			logf.FromContext(ctx).Error(err, "counting pending proxies")
		}
		if pp.changedAt == nil {
			return // the status keeps the last report
		}
	}
	pp.report = rep
	in.proxies = pp
}

// errPodsNotSynced: the pod store has not listed the pods yet; the pass
// leaves the report as it was, and the list starts every pass.
var errPodsNotSynced = errors.New("the pod list has not been read yet")

// withoutRewritten drops the paths another manager rewrote since the
// operator's last write (Helm resetting the document, say): writing them
// again restores what the running proxies were started with, apart from
// pods created in the moment between the two writes.
func withoutRewritten(paths []string, rewritten []render.Path) []string {
	if len(rewritten) == 0 {
		return paths
	}
	out := paths[:0:0]
	for _, p := range paths {
		restored := slices.ContainsFunc(rewritten, func(rw render.Path) bool {
			r := rw.Dotted()
			return p == r || strings.HasPrefix(p, r+".")
		})
		if !restored {
			out = append(out, p)
		}
	}
	return out
}

// countProxies reads the proxy pods of revision rev from the pod store and
// counts them.
func (r *MeshSettingsReconciler) countProxies(ctx context.Context, uid types.UID, rev string, since *metav1.Time) (*proxyReport, error) {
	gen := r.proxyGen.Load() // before reading: a change meanwhile invalidates this count
	var sinceT time.Time
	if since != nil {
		sinceT = since.Time
	}
	r.proxies.mu.Lock()
	e, hit := r.proxies.m[uid]
	r.proxies.mu.Unlock()
	if hit && e.gen == gen && e.since.Equal(sinceT) && e.revision == rev {
		return e.report, nil
	}

	if r.pods == nil || !r.pods.synced.Load() {
		return nil, errPodsNotSynced
	}
	if since != nil {
		for n := since.Unix(); ; {
			cur := r.pods.newestChange.Load()
			if cur >= n || r.pods.newestChange.CompareAndSwap(cur, n) {
				break
			}
		}
	}
	entries := r.pods.revision(rev)
	nsLabels := map[string]map[string]string{}
	in := make([]proxyPod, 0, len(entries))
	for _, e := range entries {
		rec := e.rec
		p := proxyPod{namespace: e.namespace, workload: rec.workload, created: time.Unix(e.created, 0), injected: rec.injected}
		if rec.injected {
			l, seen := nsLabels[e.namespace]
			if !seen {
				ns := &metav1.PartialObjectMetadata{}
				ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
				// Shallow: only its labels are read, during this count.
				err := r.Get(ctx, types.NamespacedName{Name: e.namespace}, ns, client.UnsafeDisableDeepCopy)
				if err != nil && !apierrors.IsNotFound(err) {
					return nil, fmt.Errorf("reading namespace %s: %w", e.namespace, err)
				}
				l = ns.Labels
				nsLabels[e.namespace] = l
			}
			p.selected = selectedRevision(l, rec.podRevision, rec.podInject)
		}
		in = append(in, p)
	}
	rep := countPending(rev, since, in)
	r.proxies.mu.Lock()
	if r.proxies.m == nil {
		r.proxies.m = map[types.UID]proxyMemoEntry{}
	}
	r.proxies.m[uid] = proxyMemoEntry{gen: gen, since: sinceT, revision: rev, report: rep}
	r.proxies.mu.Unlock()
	return rep, nil
}

// forget drops a deleted MeshSettings' memo.
func (m *proxyMemo) forget(uid types.UID) {
	m.mu.Lock()
	delete(m.m, uid)
	m.mu.Unlock()
}

// deriveProxies sets status.proxies and ProxiesUpToDate from the pass (pure;
// part of deriveStatus). It leaves Ready alone: restarting workloads is the
// user's part.
func deriveProxies(st *meshv1alpha1.MeshSettingsStatus, pp *proxyPass, set func(t string, s metav1.ConditionStatus, reason, msg string)) {
	if pp == nil {
		return
	}
	ps := &meshv1alpha1.ProxiesStatus{}
	if st.Proxies != nil {
		ps = st.Proxies.DeepCopy()
	}
	if pp.changedAt != nil {
		ps.RestartRequiredSince = pp.changedAt
		ps.Changes = pp.changes
		if len(ps.Changes) > maxProxyChanges {
			ps.Changes = ps.Changes[:maxProxyChanges]
		}
	}
	rep := pp.report
	if rep == nil {
		// Not counted this pass (the pod cache failed): the change is
		// recorded, the last count stays.
		st.Proxies = ps
		return
	}
	ps.Pending, ps.Namespaces = rep.pending, nil
	for i, pn := range rep.namespaces {
		if i == maxPendingNamespaces {
			break
		}
		n := meshv1alpha1.PendingNamespace{Namespace: pn.name, Pending: pn.pending}
		for j, w := range pn.workloads {
			if j == maxPendingWorkloads {
				break
			}
			n.Workloads = append(n.Workloads, w.name)
		}
		ps.Namespaces = append(ps.Namespaces, n)
	}
	st.Proxies = ps
	if rep.pending == 0 {
		msg := fmt.Sprintf("No proxy of revision %s runs a revision its namespace no longer selects", pp.revision)
		if ps.RestartRequiredSince != nil {
			msg = fmt.Sprintf("No proxy of revision %s predates the change applied at %s or runs a revision its namespace no longer selects",
				pp.revision, ps.RestartRequiredSince.UTC().Format(time.RFC3339))
		}
		set(meshv1alpha1.ConditionProxiesUpToDate, metav1.ConditionTrue, meshv1alpha1.ReasonUpToDate, msg)
		return
	}
	set(meshv1alpha1.ConditionProxiesUpToDate, metav1.ConditionFalse, meshv1alpha1.ReasonRestartPending, pendingMessage(ps, rep, pp.revision))
}

func pendingMessage(ps *meshv1alpha1.ProxiesStatus, rep *proxyReport, rev string) string {
	var why []string
	if rep.predating > 0 {
		why = append(why, fmt.Sprintf("%d predate the change of %s applied at %s", rep.predating,
			changesText(ps.Changes), ps.RestartRequiredSince.UTC().Format(time.RFC3339)))
	}
	if rep.mismatched > 0 {
		why = append(why, fmt.Sprintf("%d run revision %s, which their namespace no longer selects", rep.mismatched, rev))
	}
	largest := make([]string, 0, restartHintNamespaces)
	for i, n := range ps.Namespaces {
		if i == restartHintNamespaces {
			break
		}
		largest = append(largest, fmt.Sprintf("%s (%d)", n.Namespace, n.Pending))
	}
	return fmt.Sprintf("%d proxies of revision %s need their pods recreated: %s; most in %s (see status.proxies)",
		rep.pending, rev, strings.Join(why, "; "), strings.Join(largest, ", "))
}

func changesText(changes []string) string {
	const shown = 3
	if len(changes) <= shown {
		return strings.Join(changes, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(changes[:shown], ", "), len(changes)-shown)
}

// proxyEvents are the events of the proxy report from the status diff: one
// Normal event telling how to restart when proxies become pending (or a new
// change makes them pending again), one when they are all replaced. A count
// that only moves says nothing.
func proxyEvents(old, cur *meshv1alpha1.MeshSettingsStatus) []statusEvent {
	n := meta.FindStatusCondition(cur.Conditions, meshv1alpha1.ConditionProxiesUpToDate)
	if n == nil || cur.Proxies == nil {
		return nil
	}
	o := meta.FindStatusCondition(old.Conditions, meshv1alpha1.ConditionProxiesUpToDate)
	wasPending := o != nil && o.Status == metav1.ConditionFalse
	switch {
	case n.Status == metav1.ConditionFalse:
		var oldSince *metav1.Time
		if old.Proxies != nil {
			oldSince = old.Proxies.RestartRequiredSince
		}
		sinceMoved := cur.Proxies.RestartRequiredSince != nil && (oldSince == nil || !oldSince.Equal(cur.Proxies.RestartRequiredSince))
		if wasPending && !sinceMoved {
			return nil
		}
		return []statusEvent{{corev1.EventTypeNormal, meshv1alpha1.ReasonRestartPending, "ReportProxies", restartHint(cur.Proxies)}}
	case wasPending:
		return []statusEvent{{corev1.EventTypeNormal, meshv1alpha1.ConditionProxiesUpToDate, "ReportProxies", n.Message}}
	}
	return nil
}

// restartHint is the event's note: the count and the commands that restart
// the largest namespaces' Deployments. The events API keeps 1 KiB of a note.
func restartHint(ps *meshv1alpha1.ProxiesStatus) string {
	var cmds []string
	others := 0
	for _, n := range ps.Namespaces {
		var deps []string
		for _, w := range n.Workloads {
			if d, ok := strings.CutPrefix(w, "Deployment/"); ok {
				deps = append(deps, d)
			}
		}
		if len(deps) == 0 || len(cmds) == restartHintNamespaces {
			if len(deps) > 0 {
				others++
			}
			continue
		}
		// A few Deployments per command keep the note within the 1 KiB
		// the events API keeps.
		const perCommand = 4
		more := ""
		if len(deps) > perCommand {
			more = fmt.Sprintf(" (and %d more)", len(deps)-perCommand)
			deps = deps[:perCommand]
		}
		cmds = append(cmds, fmt.Sprintf("kubectl rollout restart deployment -n %s %s%s", n.Namespace, strings.Join(deps, " "), more))
	}
	note := fmt.Sprintf("%d proxies need their pods recreated to run the settings applied; restart their workloads", ps.Pending)
	if len(cmds) > 0 {
		note += ": " + strings.Join(cmds, "; ")
	}
	if others > 0 {
		note += fmt.Sprintf("; and %d more namespaces", others)
	}
	note += " (status.proxies lists them)"
	const maxNote = 1024
	if len(note) > maxNote {
		note = note[:maxNote-3] + "..."
	}
	return note
}
