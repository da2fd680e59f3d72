package controllers

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

var _ = Describe("MeshSettings API", func() {
	It("round-trips a MeshSettings through the API server", func() {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "roundtrip-"}}
		Expect(k8sClient.Create(ctx, ns)).To(Succeed())

		in := &meshv1alpha1.MeshSettings{
			ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: ns.Name},
			Spec:       meshv1alpha1.MeshSettingsSpec{Revision: "canary"},
		}
		Expect(k8sClient.Create(ctx, in)).To(Succeed())

		var out meshv1alpha1.MeshSettings
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(in), &out)).To(Succeed())
		Expect(out.Spec).To(Equal(in.Spec))
		Expect(out.Generation).To(BeEquivalentTo(1))

		By("listing it by kind")
		var list meshv1alpha1.MeshSettingsList
		Expect(k8sClient.List(ctx, &list, client.InNamespace(ns.Name))).To(Succeed())
		Expect(list.Items).To(HaveLen(1))

		By("refusing a change of the immutable revision")
		orig := out.DeepCopy()
		out.Spec.Revision = "stable"
		err := k8sClient.Patch(ctx, &out, client.MergeFrom(orig))
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
		Expect(err.Error()).To(ContainSubstring("revision is immutable"))

		Expect(k8sClient.Delete(ctx, in)).To(Succeed())
	})
})
