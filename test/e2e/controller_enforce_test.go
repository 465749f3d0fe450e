package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

// TestControllerEnforcement: a CapabilityPolicy with spec.enforcement gets its
// ValidatingAdmissionPolicy and Binding from the controller, owned by the policy, and the API
// server acts on them as the policy says: Warn admits with a warning, Deny refuses, an
// exemption stops covering at its expiry although nothing in the cluster changed. A restart
// writes nothing; an edit made while capwatch was down is undone at start; an invalid edit
// keeps the last objects; removing spec.enforcement removes them, and so does deleting the
// policy (the garbage collector, through the ownerReferences).
func TestControllerEnforcement(t *testing.T) {
	ctx := context.Background()
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	ns := newNamespace(t, "ctlenforce", nil)
	const policyName = "e2e-controller-enforce"
	const objectName = "capwatch-" + policyName
	t.Cleanup(func() {
		_ = dyn.Resource(vapBindingGVR).Delete(context.Background(), objectName, metav1.DeleteOptions{})
		_ = dyn.Resource(vapGVR).Delete(context.Background(), objectName, metav1.DeleteOptions{})
	})
	// The exemption lets container tools add NET_RAW for another 40 s.
	expires := time.Now().Add(40 * time.Second).UTC().Truncate(time.Second)
	created := toolsPolicy(t, dyn, policyName, "ctlenforce-*", &expires,
		map[string]any{"enforcement": map[string]any{"action": "Warn"}})
	ctl := startController(t)

	enforced := func(ctx context.Context) (map[string]any, map[string]any, error) {
		p, err := dyn.Resource(policiesGVR).Get(ctx, policyName, metav1.GetOptions{})
		if err != nil {
			return nil, nil, err
		}
		status, _, _ := unstructured.NestedMap(p.Object, "status", "enforcement")
		conditions, _, _ := unstructured.NestedSlice(p.Object, "status", "conditions")
		for _, c := range conditions {
			if m, ok := c.(map[string]any); ok && m["type"] == "Enforced" {
				return status, m, nil
			}
		}
		return status, nil, nil
	}
	waitEnforced := func(reason string) map[string]any {
		var last map[string]any
		eventually(t, time.Minute, "policy status Enforced "+reason, func(ctx context.Context) (bool, string, error) {
			status, cond, err := enforced(ctx)
			last = status
			return cond != nil && cond["reason"] == reason, fmt.Sprintf("enforcement %v, condition %v", status, cond), err
		})
		return last
	}
	status := waitEnforced("InForce")
	if status["validatingAdmissionPolicy"] != objectName || status["binding"] != objectName || status["action"] != "Warn" {
		t.Errorf("status.enforcement = %v", status)
	}
	if status["nextChange"] != expires.Format(time.RFC3339) {
		t.Errorf("status.enforcement.nextChange = %v, want the exemption's expiry %s", status["nextChange"], expires.Format(time.RFC3339))
	}
	vap, err := dyn.Resource(vapGVR).Get(ctx, objectName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	binding, err := dyn.Resource(vapBindingGVR).Get(ctx, objectName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []*unstructured.Unstructured{vap, binding} {
		refs := o.GetOwnerReferences()
		if len(refs) != 1 || refs[0].UID != created.GetUID() || refs[0].Kind != "CapabilityPolicy" {
			t.Errorf("%s %s: ownerReferences %v, want the policy (uid %s)", o.GetKind(), o.GetName(), refs, created.GetUID())
		}
	}

	container := func(name string, add ...corev1.Capability) corev1.Container {
		return corev1.Container{Name: name, Image: "registry.example/" + name + ":1",
			SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: add, Drop: []corev1.Capability{"ALL"}}}}
	}
	// dryRun answers with the warnings the API server sent, and the error.
	dryRun := func(name string, c corev1.Container) ([]string, error) {
		var warnings []string
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: corev1.PodSpec{Containers: []corev1.Container{c}}}
		_, err := clientset.CoreV1().Pods(ns).Create(withWarnings(ctx, &warnings), pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return warnings, err
	}
	// Warn: admitted, with the denial as a warning.
	eventually(t, time.Minute, "a warning for a SYS_ADMIN Pod", func(ctx context.Context) (bool, string, error) {
		warnings, err := dryRun("sys-admin", container("app", "SYS_ADMIN"))
		if err != nil {
			return false, "", fmt.Errorf("Warn must admit: %v", err)
		}
		joined := strings.Join(warnings, "; ")
		return strings.Contains(joined, "(dangerous-capability)"), "warnings: " + joined, nil
	})

	// Deny: the binding is updated, and the same Pod is refused.
	if _, err := dyn.Resource(policiesGVR).Patch(ctx, policyName, types.MergePatchType,
		[]byte(`{"spec":{"enforcement":{"action":"Deny"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the SYS_ADMIN Pod refused under Deny", func(ctx context.Context) (bool, string, error) {
		_, err := dryRun("sys-admin", container("app", "SYS_ADMIN"))
		return err != nil && apierrors.IsForbidden(err) && strings.Contains(err.Error(), "(dangerous-capability)"), fmt.Sprint(err), nil
	})
	if _, err := dryRun("tools", container("tools", "NET_RAW")); err != nil && time.Now().Before(expires.Add(-5*time.Second)) {
		t.Errorf("container tools adding NET_RAW before the exemption expires: %v", err)
	}
	// The exemption expires: the API server refuses the same Pod again, nothing having
	// changed in the cluster (the controller regenerates the policy at the expiry).
	eventually(t, time.Until(expires)+time.Minute, "tools adding NET_RAW refused after the exemption expired", func(ctx context.Context) (bool, string, error) {
		_, err := dryRun("tools", container("tools", "NET_RAW"))
		return err != nil && apierrors.IsForbidden(err), fmt.Sprint(err), nil
	})
	if time.Now().Before(expires) {
		t.Errorf("refused before the exemption's expiry %s", expires)
	}
	waitEnforced("InForce")

	// A restart writes nothing: the objects and the policy keep their resourceVersions.
	versions := func() string {
		var out []string
		for _, get := range []func() (*unstructured.Unstructured, error){
			func() (*unstructured.Unstructured, error) {
				return dyn.Resource(vapGVR).Get(ctx, objectName, metav1.GetOptions{})
			},
			func() (*unstructured.Unstructured, error) {
				return dyn.Resource(vapBindingGVR).Get(ctx, objectName, metav1.GetOptions{})
			},
			func() (*unstructured.Unstructured, error) {
				return dyn.Resource(policiesGVR).Get(ctx, policyName, metav1.GetOptions{})
			},
		} {
			o, err := get()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, o.GetKind()+"@"+o.GetResourceVersion())
		}
		return strings.Join(out, " ")
	}
	// Quiet first: the regeneration at the expiry is followed by the API server's type
	// checking and capwatch's status write.
	before := versions()
	eventually(t, time.Minute, "no writes for 3 s", func(ctx context.Context) (bool, string, error) {
		time.Sleep(3 * time.Second)
		now := versions()
		quiet := now == before
		before = now
		return quiet, now, nil
	})
	ctl.stop(t)
	ctl = startController(t)
	time.Sleep(5 * time.Second) // a few leader ticks and the first sync
	if after := versions(); after != before {
		t.Errorf("a restart wrote: resourceVersions %s, before it %s", after, before)
	}

	// An edit made while capwatch was down is undone when it starts.
	ctl.stop(t)
	if _, err := dyn.Resource(vapGVR).Patch(ctx, objectName, types.MergePatchType,
		[]byte(`{"spec":{"failurePolicy":"Ignore"}}`), metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	ctl = startController(t)
	eventually(t, time.Minute, "failurePolicy restored to Fail", func(ctx context.Context) (bool, string, error) {
		o, err := dyn.Resource(vapGVR).Get(ctx, objectName, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		fp, _, _ := unstructured.NestedString(o.Object, "spec", "failurePolicy")
		return fp == "Fail", "failurePolicy " + fp, nil
	})

	// An invalid edit keeps what is in force.
	if _, err := dyn.Resource(policiesGVR).Patch(ctx, policyName, types.MergePatchType,
		[]byte(`{"spec":{"allowedCapabilities":["NET_BIND"]}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitEnforced("InvalidPolicy")
	if _, err := dryRun("sys-admin", container("app", "SYS_ADMIN")); err == nil {
		t.Errorf("a typo in the policy opened the gate: a SYS_ADMIN Pod is admitted")
	}

	// Without spec.enforcement: both objects go, and the status says nothing of enforcement.
	if _, err := dyn.Resource(policiesGVR).Patch(ctx, policyName, types.MergePatchType,
		[]byte(`{"spec":{"allowedCapabilities":null,"enforcement":null}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the generated objects deleted", func(ctx context.Context) (bool, string, error) {
		_, errP := dyn.Resource(vapGVR).Get(ctx, objectName, metav1.GetOptions{})
		_, errB := dyn.Resource(vapBindingGVR).Get(ctx, objectName, metav1.GetOptions{})
		status, cond, err := enforced(ctx)
		return apierrors.IsNotFound(errP) && apierrors.IsNotFound(errB) && len(status) == 0 && cond == nil,
			fmt.Sprintf("policy: %v, binding: %v, status.enforcement %v, Enforced %v", errP, errB, status, cond), err
	})

	// Enforced again, then the policy deleted with capwatch stopped: the garbage collector
	// removes the objects through their ownerReferences.
	if _, err := dyn.Resource(policiesGVR).Patch(ctx, policyName, types.MergePatchType,
		[]byte(`{"spec":{"enforcement":{"action":"Audit"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitEnforced("InForce")
	ctl.stop(t)
	if err := dyn.Resource(policiesGVR).Delete(ctx, policyName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the garbage collector to delete the objects", func(ctx context.Context) (bool, string, error) {
		_, errP := dyn.Resource(vapGVR).Get(ctx, objectName, metav1.GetOptions{})
		_, errB := dyn.Resource(vapBindingGVR).Get(ctx, objectName, metav1.GetOptions{})
		return apierrors.IsNotFound(errP) && apierrors.IsNotFound(errB), fmt.Sprintf("policy: %v, binding: %v", errP, errB), nil
	})
}
