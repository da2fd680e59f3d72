package controllers

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// podStore is the operator's own store of proxy pods. A reflector lists and
// watches pods as metadata only (RBAC: pods get, list, watch) and hands each
// object to the store, which keeps of a pod running a counted proxy only a
// podEntry (namespace, creation second, proxyRecord) and of any other pod
// nothing. controller-runtime's cache would keep a PartialObjectMetadata of
// every pod (about 580 bytes trimmed, 2.6 KB not; TestPodStoreHeap): the
// entries here cost about 150, so 50,000 pods fit issue 19's 32 MiB.
type podStore struct {
	mu   sync.RWMutex
	pods map[string]podEntry // "namespace/name" -> entry, counted proxies only
	// strs interns namespaces, revisions and workload names, which many
	// pods share; rebuilt on every relist, so it holds only current values.
	strs   map[string]string
	synced atomic.Bool
	// newestChange is the latest restartRequiredSince (Unix seconds) any
	// count used: a pod added with a creation time not before it is pending
	// for no MeshSettings, so its addition changes no count and moves
	// nothing (pod churn costs the passes nothing).
	newestChange atomic.Int64
	// changed is told what moved: the revisions of added, changed or
	// deleted entries (added says whether it was only an addition), or
	// all after a relist.
	changed func(revs []string, added, all bool)
}

// podEntry is what the store keeps of a pod running a counted proxy.
type podEntry struct {
	namespace string
	created   int64 // creationTimestamp, Unix seconds (the API server keeps seconds)
	rec       proxyRecord
}

func newPodStore(changed func(revs []string, added, all bool)) *podStore {
	return &podStore{pods: map[string]podEntry{}, strs: map[string]string{}, changed: changed}
}

// entryOf is the podEntry of a pod's metadata; ok is false for a pod that
// runs no counted proxy (none, or enrolled in ambient).
func entryOf(o *metav1.PartialObjectMetadata) (podEntry, bool) {
	rev, injected := proxyOf(o.Annotations, o.Labels)
	if rev == "" || o.Annotations[annoAmbient] == ambientEnabled {
		return podEntry{}, false
	}
	return podEntry{namespace: o.Namespace, created: o.CreationTimestamp.Unix(), rec: proxyRecord{
		revision: rev, injected: injected,
		podRevision: o.Labels[render.LabelRevision], podInject: o.Labels[labelInject],
		workload: workloadOf(o.Name, o.Labels, o.OwnerReferences),
	}}, true
}

func (s *podStore) intern(v string) string {
	if c, ok := s.strs[v]; ok {
		return c
	}
	s.strs[v] = v
	return v
}

func (s *podStore) internEntry(e podEntry) podEntry {
	e.namespace = s.intern(e.namespace)
	e.rec.revision = s.intern(e.rec.revision)
	e.rec.podRevision = s.intern(e.rec.podRevision)
	e.rec.podInject = s.intern(e.rec.podInject)
	e.rec.workload = s.intern(e.rec.workload)
	return e
}

// podLite is what the reflector's first list (streamed, WatchListClient)
// keeps of a pod until it hands the list to Replace: the store's
// Transformer turns each pod into one as it arrives, so the list of 50,000
// pods is never held as metadata.
type podLite struct {
	key   string
	entry podEntry
	proxy bool
}

// Transformer makes the reflector's temporary store of the first list keep
// podLite values (cache.TransformingStore).
func (s *podStore) Transformer() cache.TransformFunc {
	return func(obj any) (any, error) {
		if l, ok := obj.(*podLite); ok {
			return l, nil
		}
		o, key, err := metaOf(obj)
		if err != nil {
			return nil, err
		}
		e, ok := entryOf(o)
		return &podLite{key: key, entry: e, proxy: ok}, nil
	}
}

func metaOf(obj any) (*metav1.PartialObjectMetadata, string, error) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	o, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return nil, "", fmt.Errorf("pod store: unexpected %T", obj)
	}
	return o, o.Namespace + "/" + o.Name, nil
}

// Add and Update put a pod's entry in place of what the store had.
func (s *podStore) Add(obj any) error    { return s.put(obj) }
func (s *podStore) Update(obj any) error { return s.put(obj) }

func (s *podStore) put(obj any) error {
	o, key, err := metaOf(obj)
	if err != nil {
		return err
	}
	e, isProxy := entryOf(o)
	s.mu.Lock()
	old, had := s.pods[key]
	if isProxy {
		if had && old == e {
			s.mu.Unlock()
			return nil // a status update: nothing the report reads
		}
		s.pods[key] = s.internEntry(e)
		if !had && e.created >= s.newestChange.Load() {
			s.mu.Unlock()
			return nil // a new pod: pending for no change
		}
	} else {
		delete(s.pods, key)
	}
	s.mu.Unlock()
	var revs []string
	if had {
		revs = append(revs, old.rec.revision)
	}
	if isProxy {
		revs = append(revs, e.rec.revision)
	}
	if len(revs) > 0 {
		s.changed(revs, !had, false)
	}
	return nil
}

func (s *podStore) Delete(obj any) error {
	_, key, err := metaOf(obj)
	if err != nil {
		return err
	}
	s.mu.Lock()
	old, had := s.pods[key]
	delete(s.pods, key)
	s.mu.Unlock()
	if had {
		s.changed([]string{old.rec.revision}, false, false)
	}
	return nil
}

// Replace is a relist: the store becomes exactly the listed pods.
func (s *podStore) Replace(objs []any, _ string) error {
	pods := make(map[string]podEntry, len(objs)/2)
	s.mu.Lock()
	s.strs = map[string]string{}
	for _, obj := range objs {
		l, ok := obj.(*podLite)
		if !ok {
			lo, err := s.Transformer()(obj)
			if err != nil {
				s.mu.Unlock()
				return err
			}
			l = lo.(*podLite)
		}
		if l.proxy {
			pods[l.key] = s.internEntry(l.entry)
		}
	}
	s.pods = pods
	s.mu.Unlock()
	s.synced.Store(true)
	s.changed(nil, false, true)
	return nil
}

func (s *podStore) Resync() error { return nil }

// revision returns the entries of the proxies of one revision.
func (s *podStore) revision(rev string) []podEntry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []podEntry
	for _, e := range s.pods {
		if e.rec.revision == rev {
			out = append(out, e)
		}
	}
	return out
}

// watchPods runs the reflector that feeds the store, as a manager
// runnable, and returns the source that gives podEvents the controller's
// queue.
func (r *MeshSettingsReconciler) watchPods(mgr ctrl.Manager) (source.Source, error) {
	mc, err := metadata.NewForConfig(mgr.GetConfig())
	if err != nil {
		return nil, fmt.Errorf("pod metadata client: %w", err)
	}
	pods := mc.Resource(corev1.SchemeGroupVersion.WithResource("pods"))
	lw := &cache.ListWatch{
		// Used when the API server cannot stream the first list: the
		// pager holds every page until the end, so each page is trimmed
		// to what entryOf reads as it arrives.
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			list, err := pods.List(ctx, opts)
			if err == nil {
				for i := range list.Items {
					trimForEntry(&list.Items[i])
				}
			}
			return list, err
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return pods.Watch(ctx, opts)
		},
	}
	r.pods = newPodStore(r.podsChanged)
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		cache.NewReflectorWithOptions(lw, &metav1.PartialObjectMetadata{}, r.pods, cache.ReflectorOptions{Name: "proxy pods"}).
			RunWithContext(ctx)
		return nil
	})); err != nil {
		return nil, err
	}
	return source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		r.podQueue.Store(&q)
		return nil
	}), nil
}

// podsChanged turns store changes into passes, cheaply: every change moves
// proxyGen, so the next pass counts again; an added proxy pod starts no
// pass (a new pod is not pending, except in a race with a label change,
// which the label's event covers); a changed or deleted one starts the
// pass of the MeshSettings of its revision; a relist starts every pass.
func (r *MeshSettingsReconciler) podsChanged(revs []string, added, all bool) {
	r.proxyGen.Add(1)
	if added {
		return
	}
	qp := r.podQueue.Load()
	if qp == nil {
		return // the controller has not started: its first passes count
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if all {
		for _, req := range r.list(ctx) {
			(*qp).Add(req)
		}
		return
	}
	for _, rev := range revs {
		r.enqueueRevision(ctx, rev, *qp)
	}
}

// trimForEntry drops from a listed pod what entryOf does not read.
func trimForEntry(o *metav1.PartialObjectMetadata) {
	keep := func(m map[string]string, keys ...string) map[string]string {
		var out map[string]string
		for _, k := range keys {
			if v, ok := m[k]; ok {
				if out == nil {
					out = make(map[string]string, len(keys))
				}
				out[k] = v
			}
		}
		return out
	}
	o.Annotations = keep(o.Annotations, annoSidecarStatus, annoAmbient, annoRevision)
	o.Labels = keep(o.Labels, labelManaged, labelPodTemplateHash, render.LabelRevision, labelInject)
	o.ManagedFields = nil
}
