package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

// probe waits for one object to reach a wanted state, as seen by a watch.
type probe struct {
	match func(client.Object) bool
	at    time.Time
	done  chan struct{}
}

// setProbe waits until every object of a set reaches a wanted state.
type setProbe struct {
	names     map[string]bool
	match     func(client.Object) bool
	satisfied map[string]bool
	at        time.Time
	done      chan struct{}
}

// watcher observes the targets through informers (a controller-runtime
// cache of its own, in the harness process) and timestamps every change.
type watcher struct {
	cache cache.Cache

	mu     sync.Mutex
	probes map[string][]*probe // kind/namespace/name
	sets   []*setProbe

	// Counters of observed writes, by kind/namespace/name (updates only).
	updates sync.Map // key -> *atomic.Int64
	// Namespace updates that changed labels or annotations.
	namespaceMetaUpdates atomic.Int64
	// MeshSettings updates that changed the status, and those that changed finalizers.
	statusUpdates    sync.Map // namespace/name -> *atomic.Int64
	finalizerUpdates sync.Map // namespace/name -> *atomic.Int64
	// Every update, as "Kind name" ("MeshSettings name (status)" when it
	// changed the status), for the comparison's object counts.
	writes sync.Map // string -> *atomic.Int64
}

// counts is a number per key.
type counts map[string]int

// minus is c - base, without the zeros.
func (c counts) minus(base counts) counts {
	out := counts{}
	for k, v := range c {
		if d := v - base[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// objectWrites is how often each object was updated so far.
func (w *watcher) objectWrites() counts {
	out := counts{}
	w.writes.Range(func(k, v any) bool {
		out[k.(string)] = int(v.(*atomic.Int64).Load())
		return true
	})
	return out
}

func key(kind string, o client.Object) string {
	return kind + "/" + o.GetNamespace() + "/" + o.GetName()
}

// The kinds the watcher counts writes of, as its keys name them.
const (
	kindConfigMap    = "ConfigMap"
	kindDeployment   = "Deployment"
	kindNamespace    = "Namespace"
	kindMeshSettings = "MeshSettings"
)

func newWatcher(ctx context.Context, c cache.Cache) (*watcher, error) {
	w := &watcher{cache: c, probes: map[string][]*probe{}}
	type kindOf struct {
		kind string
		obj  client.Object
	}
	for _, k := range []kindOf{
		{kindConfigMap, &corev1.ConfigMap{}},
		{kindDeployment, &appsv1.Deployment{}},
		{kindNamespace, &corev1.Namespace{}},
		{kindMeshSettings, &meshv1alpha1.MeshSettings{}},
	} {
		inf, err := c.GetInformer(ctx, k.obj)
		if err != nil {
			return nil, err
		}
		kind := k.kind
		_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) {
				if o, ok := obj.(client.Object); ok {
					w.observe(kind, o)
				}
			},
			UpdateFunc: func(oldObj, newObj any) {
				o, ok1 := oldObj.(client.Object)
				n, ok2 := newObj.(client.Object)
				if !ok1 || !ok2 {
					return
				}
				w.count(kind, o, n)
				w.observe(kind, n)
			},
		})
		if err != nil {
			return nil, err
		}
	}
	return w, nil
}

func counter(m *sync.Map, k string) *atomic.Int64 {
	v, _ := m.LoadOrStore(k, &atomic.Int64{})
	return v.(*atomic.Int64)
}

func (w *watcher) count(kind string, oldObj, newObj client.Object) {
	if oldObj.GetResourceVersion() == newObj.GetResourceVersion() {
		return // a resync, not a write
	}
	counter(&w.updates, key(kind, newObj)).Add(1)
	label := kind + " " + newObj.GetName()
	if kind == kindMeshSettings && !equality.Semantic.DeepEqual(oldObj.(*meshv1alpha1.MeshSettings).Status, newObj.(*meshv1alpha1.MeshSettings).Status) {
		label += " (status)"
	}
	counter(&w.writes, label).Add(1)
	switch kind {
	case kindNamespace:
		if !maps.Equal(oldObj.GetLabels(), newObj.GetLabels()) || !maps.Equal(oldObj.GetAnnotations(), newObj.GetAnnotations()) {
			w.namespaceMetaUpdates.Add(1)
		}
	case kindMeshSettings:
		o, n := oldObj.(*meshv1alpha1.MeshSettings), newObj.(*meshv1alpha1.MeshSettings)
		k := n.Namespace + "/" + n.Name
		if !equality.Semantic.DeepEqual(o.Status, n.Status) {
			counter(&w.statusUpdates, k).Add(1)
		}
		if !slices.Equal(o.Finalizers, n.Finalizers) {
			counter(&w.finalizerUpdates, k).Add(1)
		}
	}
}

func (w *watcher) observe(kind string, o client.Object) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	k := key(kind, o)
	if ps := w.probes[k]; len(ps) > 0 {
		kept := ps[:0]
		for _, p := range ps {
			if p.match(o) {
				p.at = now
				close(p.done)
			} else {
				kept = append(kept, p)
			}
		}
		if len(kept) == 0 {
			delete(w.probes, k)
		} else {
			w.probes[k] = kept
		}
	}
	if kind != kindNamespace {
		return
	}
	for _, s := range w.sets {
		if !s.names[o.GetName()] || s.at != (time.Time{}) {
			continue
		}
		if s.match(o) {
			s.satisfied[o.GetName()] = true
		} else {
			delete(s.satisfied, o.GetName())
		}
		if len(s.satisfied) == len(s.names) {
			s.at = now
			close(s.done)
		}
	}
}

// arm registers a probe; arm it before the write that should bring the state.
func (w *watcher) arm(kind, namespace, name string, match func(client.Object) bool) *probe {
	p := &probe{match: match, done: make(chan struct{})}
	w.mu.Lock()
	defer w.mu.Unlock()
	k := kind + "/" + namespace + "/" + name
	w.probes[k] = append(w.probes[k], p)
	return p
}

// armSet registers a set probe over namespaces.
func (w *watcher) armSet(names []string, match func(client.Object) bool) *setProbe {
	s := &setProbe{names: map[string]bool{}, match: match, satisfied: map[string]bool{}, done: make(chan struct{})}
	for _, n := range names {
		s.names[n] = true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sets = append(w.sets, s)
	return s
}

func (w *watcher) disarmSet(s *setProbe) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sets = slices.DeleteFunc(w.sets, func(x *setProbe) bool { return x == s })
}

// wait returns when every probe has matched, the latest match time, or an
// error after timeout naming the probes still waiting.
func wait(ctx context.Context, timeout time.Duration, names []string, probes ...*probe) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last time.Time
	for i, p := range probes {
		select {
		case <-p.done:
			if p.at.After(last) {
				last = p.at
			}
		case <-ctx.Done():
			var pending []string
			for j := i; j < len(probes); j++ {
				select {
				case <-probes[j].done:
				default:
					pending = append(pending, names[j])
				}
			}
			return time.Time{}, fmt.Errorf("after %s still waiting for %v", timeout, pending)
		}
	}
	return last, nil
}

// updatesOf counts the writes to one object in the control-plane namespace.
func (w *watcher) updatesOf(kind, name string) int64 {
	return counter(&w.updates, kind+"/"+istioNS+"/"+name).Load()
}
