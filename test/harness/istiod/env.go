package istiod

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ContainerEnv resolves the environment a new pod of dep would give its
// container, the way the kubelet does for the sources istiod's chart and the
// operator use: literal values, fieldRef (metadata.name is "istiod-local",
// metadata.namespace the Deployment's, status.podIP 127.0.0.1,
// spec.serviceAccountName the pod template's), secretKeyRef and
// configMapKeyRef (read with cs, which needs that RBAC; the operator itself
// has none for Secrets). A missing Secret or key that is not optional is the
// error the kubelet reports as CreateContainerConfigError: the pod does not
// start. Use the result as Options.Env to emulate a rollout.
func ContainerEnv(ctx context.Context, cs kubernetes.Interface, dep *appsv1.Deployment, container string) ([]string, error) {
	var c *corev1.Container
	for n := range dep.Spec.Template.Spec.Containers {
		if dep.Spec.Template.Spec.Containers[n].Name == container {
			c = &dep.Spec.Template.Spec.Containers[n]
		}
	}
	if c == nil {
		return nil, fmt.Errorf("deployment %s/%s has no container %q", dep.Namespace, dep.Name, container)
	}
	env := []string{} // not nil: an empty env is a valid Restart argument
	for _, e := range c.Env {
		value, set, err := resolve(ctx, cs, dep, e)
		if err != nil {
			return nil, fmt.Errorf("CreateContainerConfigError: env %s: %w", e.Name, err)
		}
		if set {
			env = append(env, e.Name+"="+value)
		}
	}
	return env, nil
}

func resolve(ctx context.Context, cs kubernetes.Interface, dep *appsv1.Deployment, e corev1.EnvVar) (string, bool, error) {
	from := e.ValueFrom
	if from == nil {
		return e.Value, true, nil
	}
	switch {
	case from.FieldRef != nil:
		switch from.FieldRef.FieldPath {
		case "metadata.name":
			return "istiod-local", true, nil
		case "metadata.namespace":
			return dep.Namespace, true, nil
		case "status.podIP", "status.hostIP":
			return "127.0.0.1", true, nil
		case "spec.serviceAccountName":
			return dep.Spec.Template.Spec.ServiceAccountName, true, nil
		case "spec.nodeName":
			return "local", true, nil
		}
		return "", false, fmt.Errorf("fieldRef %s is not emulated", from.FieldRef.FieldPath)
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		optional := ref.Optional != nil && *ref.Optional
		s, err := cs.CoreV1().Secrets(dep.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) && optional {
			return "", false, nil
		}
		if err != nil {
			return "", false, fmt.Errorf("secret %q: %w", ref.Name, err)
		}
		v, ok := s.Data[ref.Key]
		if !ok {
			if optional {
				return "", false, nil
			}
			return "", false, fmt.Errorf("couldn't find key %s in Secret %s/%s", ref.Key, dep.Namespace, ref.Name)
		}
		return string(v), true, nil
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		optional := ref.Optional != nil && *ref.Optional
		cm, err := cs.CoreV1().ConfigMaps(dep.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) && optional {
			return "", false, nil
		}
		if err != nil {
			return "", false, fmt.Errorf("configmap %q: %w", ref.Name, err)
		}
		v, ok := cm.Data[ref.Key]
		if !ok {
			if optional {
				return "", false, nil
			}
			return "", false, fmt.Errorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, dep.Namespace, ref.Name)
		}
		return v, true, nil
	}
	return "", false, fmt.Errorf("valueFrom source is not emulated")
}
