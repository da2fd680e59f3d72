package controllers

import (
	"context"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// cacheSyncTimeout bounds how long a reconcile waits for the cache to show
// its own writes; a watch delivers them within milliseconds.
const cacheSyncTimeout = 5 * time.Second

// written is an object a reconcile wrote: an empty object of the cached kind
// carrying its key, and the resourceVersion the API server answered.
type written struct {
	obj             client.Object
	resourceVersion string
	// created: the write created the object, so until the cache shows it,
	// its absence there means "not seen yet" rather than "deleted since".
	created bool
}

// awaitCache gives the operator read-your-writes: it returns once the cache
// holds every written object at its answered resourceVersion or later (or
// after cacheSyncTimeout). The operator's own writes trigger the next
// reconcile; planned from a cache that lacks them, it would send writes that
// change nothing (a status patch, a namespace label), which cost requests and
// break the zero-write promise.
func (r *MeshSettingsReconciler) awaitCache(ctx context.Context, writes []written) {
	pending := make([]written, 0, len(writes))
	for _, w := range writes {
		if w.resourceVersion != "" {
			pending = append(pending, w)
		}
	}
	if len(pending) == 0 {
		return
	}
	err := wait.PollUntilContextTimeout(ctx, 2*time.Millisecond, cacheSyncTimeout, true, func(ctx context.Context) (bool, error) {
		left := pending[:0]
		for _, w := range pending {
			// A shallow copy of the cached object, read and dropped: after
			// thousands of namespace writes, deep copies would hold a second
			// cache's worth of memory while the watch catches up.
			probe, _ := w.obj.DeepCopyObject().(client.Object)
			err := r.Get(ctx, client.ObjectKeyFromObject(w.obj), probe, client.UnsafeDisableDeepCopy)
			switch {
			case apierrors.IsNotFound(err) && !w.created:
				// deleted since the write: nothing left to wait for
			case err != nil || !atOrAfter(probe.GetResourceVersion(), w.resourceVersion):
				left = append(left, w) // not in the cache yet, or an older version
			}
		}
		pending = left
		return len(pending) == 0, nil
	})
	if err != nil {
		logf.FromContext(ctx).V(1).Info("the cache did not show the operator's writes in time", "pending", len(pending), "timeout", cacheSyncTimeout)
	}
}

// atOrAfter compares resourceVersions. They are opaque to clients in
// general, but a cache and the writes it follows come from the same API
// server, whose versions are etcd revisions: integers that only grow.
// Anything else is compared for equality.
func atOrAfter(cached, want string) bool {
	c, errC := strconv.ParseUint(cached, 10, 64)
	w, errW := strconv.ParseUint(want, 10, 64)
	if errC != nil || errW != nil {
		return cached == want
	}
	return c >= w
}
