package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

var (
	vapGVR        = schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicies"}
	vapBindingGVR = schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicybindings"}
)

const enforcePolicy = `apiVersion: capwatch.io/v1alpha1
kind: CapabilityPolicy
metadata:
  name: e2e-enforce
spec:
  match:
    namespaces: ["enforce-*"]
  forbiddenCapabilities: [SYS_ADMIN, NET_RAW, DAC_OVERRIDE]
  requireDropAll: true
  exemptions:
  - name: tools-net-raw
    containers: [tools]
    capabilities: [NET_RAW]
    reason: "network diagnostics"
    expires: "2099-01-01T00:00:00Z"
`

// applyEnforcement runs `capwatch enforce` on policyYAML (with extra flags) and creates what
// it prints. It waits until the API server has type-checked the policy, and fails on any
// expression warning.
func applyEnforcement(t *testing.T, dyn dynamic.Interface, policyFile string, flags ...string) string {
	t.Helper()
	ctx := context.Background()
	out, _ := runCapwatch(t, nil, append([]string{"enforce", "-f", policyFile}, flags...)...)
	var list struct {
		Items []map[string]any `json:"items"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatalf("capwatch enforce printed no JSON List: %v\n%s", err, head(string(out), 2000))
	}
	var policyName string
	for _, item := range list.Items {
		obj := &unstructured.Unstructured{Object: item}
		gvr := vapGVR
		if obj.GetKind() == "ValidatingAdmissionPolicyBinding" {
			gvr = vapBindingGVR
		} else {
			policyName = obj.GetName()
		}
		if _, err := dyn.Resource(gvr).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			t.Fatalf("the API server refused the generated %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
		name := obj.GetName()
		t.Cleanup(func() { _ = dyn.Resource(gvr).Delete(context.Background(), name, metav1.DeleteOptions{}) })
	}
	eventually(t, time.Minute, "type checking of "+policyName, func(ctx context.Context) (bool, string, error) {
		vap, err := dyn.Resource(vapGVR).Get(ctx, policyName, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		checking, found, _ := unstructured.NestedMap(vap.Object, "status", "typeChecking")
		if !found {
			return false, "no status.typeChecking yet", nil
		}
		if warnings, _, _ := unstructured.NestedSlice(checking, "expressionWarnings"); len(warnings) > 0 {
			b, _ := json.MarshalIndent(warnings, "", "  ")
			t.Fatalf("the API server's type checking warns about the generated CEL:\n%s", b)
		}
		return true, "", nil
	})
	return policyName
}

// TestEnforceAdmissionPolicy: the ValidatingAdmissionPolicy that `capwatch enforce` prints is
// accepted by the real API server without type-checking warnings, and the API server's
// allow/deny of the guide's Pods and workloads agrees with `capwatch audit --policy`.
func TestEnforceAdmissionPolicy(t *testing.T) {
	ctx := context.Background()
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	policyFile := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policyFile, []byte(enforcePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	applyEnforcement(t, dyn, policyFile)
	ns := newNamespace(t, "enforce", nil)
	other := newNamespace(t, "elsewhere", nil)

	caps := func(add, drop []corev1.Capability) *corev1.SecurityContext {
		return &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: add, Drop: drop}}
	}
	container := func(name string, sc *corev1.SecurityContext) corev1.Container {
		return corev1.Container{Name: name, Image: "registry.example/" + name + ":1", SecurityContext: sc}
	}
	dropAll := []corev1.Capability{"ALL"}
	type testCase struct {
		name      string
		namespace string
		spec      corev1.PodSpec
		wantRule  string // "" when the API server must admit it
	}
	cases := []testCase{
		{"guide-nginx", ns, corev1.PodSpec{Containers: []corev1.Container{container("nginx", caps([]corev1.Capability{"NET_BIND_SERVICE"}, dropAll))}}, ""},
		{"sys-admin", ns, corev1.PodSpec{Containers: []corev1.Container{container("app", caps([]corev1.Capability{"SYS_ADMIN"}, dropAll))}}, "dangerous-capability"},
		{"lower-case", ns, corev1.PodSpec{Containers: []corev1.Container{container("app", caps([]corev1.Capability{"cap_sys_admin"}, dropAll))}}, "dangerous-capability"},
		{"defaults-kept", ns, corev1.PodSpec{Containers: []corev1.Container{container("app", nil)}}, "dangerous-capability"},
		{"drops-dac-override", ns, corev1.PodSpec{Containers: []corev1.Container{container("app", caps(nil, []corev1.Capability{"DAC_OVERRIDE", "NET_RAW"}))}}, "drop-all-missing"},
		{"init-container", ns, corev1.PodSpec{
			InitContainers: []corev1.Container{container("setup", caps([]corev1.Capability{"SYS_ADMIN"}, dropAll))},
			Containers:     []corev1.Container{container("app", caps(nil, dropAll))}}, "dangerous-capability"},
		{"add-all", ns, corev1.PodSpec{Containers: []corev1.Container{container("app", caps([]corev1.Capability{"ALL"}, nil))}}, "dangerous-capability"},
		{"privileged", ns, corev1.PodSpec{Containers: []corev1.Container{container("app", &corev1.SecurityContext{Privileged: ptr(true), Capabilities: &corev1.Capabilities{Drop: dropAll}})}}, "dangerous-capability"},
		{"typo", ns, corev1.PodSpec{Containers: []corev1.Container{container("app", caps([]corev1.Capability{"NET_BIND_SERVIC"}, dropAll))}}, "unknown-capability"},
		{"exempt-tools", ns, corev1.PodSpec{Containers: []corev1.Container{container("tools", caps([]corev1.Capability{"NET_RAW"}, dropAll))}}, ""},
		{"exemption-is-per-container", ns, corev1.PodSpec{Containers: []corev1.Container{container("app", caps([]corev1.Capability{"NET_RAW"}, dropAll))}}, "dangerous-capability"},
		{"windows", ns, corev1.PodSpec{OS: &corev1.PodOS{Name: corev1.Windows}, Containers: []corev1.Container{container("app", nil)}}, ""},
		{"other-namespace", other, corev1.PodSpec{Containers: []corev1.Container{container("app", caps([]corev1.Capability{"SYS_ADMIN"}, nil))}}, ""},
	}
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	// The binding takes effect once the API server's policy informer has it: wait for a known
	// bad Pod to be refused.
	eventually(t, time.Minute, "the generated policy to take effect", func(ctx context.Context) (bool, string, error) {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns}, Spec: cases[1].spec}
		_, err := clientset.CoreV1().Pods(ns).Create(ctx, pod, dryRun)
		return err != nil, "a SYS_ADMIN Pod is still admitted", nil
	})

	auditSays := func(obj any) bool {
		data, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		_, code := runCapwatch(t, data, "audit", "--policy", policyFile, "-f", "-")
		return code == 1
	}
	for _, tc := range cases {
		pod := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: tc.name, Namespace: tc.namespace}, Spec: tc.spec}
		deploy := &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
			ObjectMeta: metav1.ObjectMeta{Name: tc.name, Namespace: tc.namespace},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": tc.name}},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": tc.name}}, Spec: tc.spec}}}
		rc := &corev1.ReplicationController{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ReplicationController"},
			ObjectMeta: metav1.ObjectMeta{Name: tc.name, Namespace: tc.namespace},
			Spec: corev1.ReplicationControllerSpec{Selector: map[string]string{"app": tc.name},
				Template: &corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": tc.name}}, Spec: tc.spec}}}
		for _, kind := range []string{"Pod", "Deployment", "ReplicationController"} {
			var err error
			var obj any = pod
			switch kind {
			case "Pod":
				_, err = clientset.CoreV1().Pods(tc.namespace).Create(ctx, pod, dryRun)
			case "Deployment":
				obj = deploy
				_, err = clientset.AppsV1().Deployments(tc.namespace).Create(ctx, deploy, dryRun)
			default:
				obj = rc
				_, err = clientset.CoreV1().ReplicationControllers(tc.namespace).Create(ctx, rc, dryRun)
			}
			denied := err != nil
			if denied && !apierrors.IsForbidden(err) {
				t.Errorf("%s %s: refused, but not by the policy: %v", kind, tc.name, err)
				continue
			}
			if want := tc.wantRule != ""; denied != want {
				t.Errorf("%s %s: denied=%v, want %v (err: %v)", kind, tc.name, denied, want, err)
			}
			if denied && !strings.Contains(err.Error(), "("+tc.wantRule+")") {
				t.Errorf("%s %s: the denial does not name rule %s: %v", kind, tc.name, tc.wantRule, err)
			}
			if audit := auditSays(obj); audit != denied {
				t.Errorf("%s %s: the API server denied=%v, capwatch audit finds=%v", kind, tc.name, denied, audit)
			}
		}
	}

	// kubectl debug does not walk around it: an ephemeral container is checked too.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "target", Namespace: ns}, Spec: cases[0].spec}
	created, err := clientset.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating Pod target: %v", err)
	}
	created.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
		Name: "debugger", Image: "registry.example/debug:1", SecurityContext: caps([]corev1.Capability{"SYS_ADMIN"}, dropAll)}}}
	_, err = clientset.CoreV1().Pods(ns).UpdateEphemeralContainers(ctx, "target", created, metav1.UpdateOptions{})
	if err == nil || !strings.Contains(err.Error(), "(dangerous-capability)") {
		t.Errorf("an ephemeral container adding SYS_ADMIN: err = %v, want a denial naming dangerous-capability", err)
	}
}

// TestEnforceExpiredExemptionEndsAtCreation: an exemption whose expiry has passed but which is
// still in the generated policy (generated before the expiry, and not regenerated since: the
// controller was down) no longer covers an object created after the expiry, because the API
// server stamps creationTimestamp before admission. One that has not expired still covers.
func TestEnforceExpiredExemptionEndsAtCreation(t *testing.T) {
	ctx := context.Background()
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	expired := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	policyFile := filepath.Join(t.TempDir(), "policy.yaml")
	policy := `apiVersion: capwatch.io/v1alpha1
kind: CapabilityPolicy
metadata:
  name: e2e-expired-exemption
spec:
  match:
    namespaces: ["expiry-*"]
  forbiddenCapabilities: [NET_RAW, SYS_PTRACE]
  exemptions:
  - {name: expired, containers: [tools], capabilities: [NET_RAW], reason: "was allowed", expires: "` + expired.Format(time.RFC3339) + `"}
  - {name: current, containers: [tools], capabilities: [SYS_PTRACE], reason: "is allowed", expires: "2099-01-01T00:00:00Z"}
`
	if err := os.WriteFile(policyFile, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	// Generated as it was two hours ago: both exemptions are in it.
	applyEnforcement(t, dyn, policyFile, "--now", expired.Add(-time.Hour).Format(time.RFC3339))
	ns := newNamespace(t, "expiry", nil)
	dryRun := func(container string, capability corev1.Capability) error {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: container, Namespace: ns}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: container, Image: "registry.example/" + container + ":1", SecurityContext: &corev1.SecurityContext{
				Capabilities: &corev1.Capabilities{Add: []corev1.Capability{capability}, Drop: []corev1.Capability{"ALL"}}}}}}}
		_, err := clientset.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}
	eventually(t, time.Minute, "the generated policy to take effect", func(ctx context.Context) (bool, string, error) {
		err := dryRun("app", "SYS_PTRACE")
		return err != nil, "container app adding SYS_PTRACE is still admitted", nil
	})
	if err := dryRun("tools", "NET_RAW"); err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "(dangerous-capability)") {
		t.Errorf("NET_RAW under an exemption that expired an hour ago: err = %v, want a denial", err)
	}
	if err := dryRun("tools", "SYS_PTRACE"); err != nil {
		t.Errorf("SYS_PTRACE under an exemption until 2099: %v, want it admitted", err)
	}
}
