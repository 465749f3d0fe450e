package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

var (
	reportsGVR  = schema.GroupVersionResource{Group: "capwatch.io", Version: "v1alpha1", Resource: "capabilityreports"}
	policiesGVR = schema.GroupVersionResource{Group: "capwatch.io", Version: "v1alpha1", Resource: "capabilitypolicies"}
)

// TestCRDs checks crds/ against the API server and against capwatch: the reports
// `capwatch audit -o json` prints are the objects the controller writes, so the
// CapabilityReport CRD's schema must accept them as they are, and the CapabilityPolicy CRD
// must accept the policy of DESIGN §2. Creates are dry-run with strict field validation, so an
// unknown or misspelled field fails.
func TestCRDs(t *testing.T) {
	dirs, err := crdDirs()
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Skip("crds/ holds no CRD manifests yet")
	}
	ctx := context.Background()
	cfg := rest.CopyConfig(cluster.Config)
	cfg.WarningHandlerWithContext = requestWarnings{}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	strict := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"}

	t.Run("short names", func(t *testing.T) {
		for _, name := range []string{"capabilityreports", "caprep", "capabilitypolicies", "cappol"} {
			kubectl(t, "get", name, "-A")
		}
	})

	t.Run("capwatch audit reports fit the CapabilityReport schema", func(t *testing.T) {
		ns := newNamespace(t, "crd", nil)
		for _, p := range []*corev1.Pod{
			barePod("plain", nil),
			barePod("admin", &corev1.SecurityContext{
				Privileged:   ptr(true),
				Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN", "cap_net_raw", "NET_BIND"}},
			}),
			barePod("locked", &corev1.SecurityContext{
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				RunAsNonRoot:             ptr(true),
				AllowPrivilegeEscalation: ptr(false),
			}),
		} {
			if _, err := clientset.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		out, _ := runCapwatch(t, kubectl(t, "get", "pods", "-n", ns, "-o", "json"), "audit", "-f", "-", "-o", "json")
		var raw struct {
			Items []map[string]any `json:"items"`
		}
		if err := json.Unmarshal(out, &raw); err != nil {
			t.Fatal(err)
		}
		if len(raw.Items) != 3 {
			t.Fatalf("capwatch printed %d reports for 3 bare Pods", len(raw.Items))
		}
		for _, item := range raw.Items {
			obj := &unstructured.Unstructured{Object: item}
			var warnings []string
			_, err := dyn.Resource(reportsGVR).Namespace(ns).Create(withWarnings(ctx, &warnings), obj, strict)
			if err != nil || len(warnings) > 0 {
				y, _ := yaml.Marshal(item)
				t.Errorf("the API server refuses capwatch's report %s: %v %s\n%s",
					obj.GetName(), err, strings.Join(warnings, "; "), y)
			}
		}
	})

	t.Run("the DESIGN policy fits the CapabilityPolicy schema", func(t *testing.T) {
		var policy map[string]any
		if err := yaml.Unmarshal([]byte(designPolicy), &policy); err != nil {
			t.Fatal(err)
		}
		var warnings []string
		_, err := dyn.Resource(policiesGVR).Create(withWarnings(ctx, &warnings),
			&unstructured.Unstructured{Object: policy}, strict)
		if err != nil || len(warnings) > 0 {
			t.Errorf("the API server refuses the CapabilityPolicy of DESIGN §2: %v %s", err, strings.Join(warnings, "; "))
		}
	})

	t.Run("the example policies fit the CapabilityPolicy schema", func(t *testing.T) {
		files := policyFiles(t)
		if len(files) == 0 {
			t.Fatal("docs/examples/policies holds no CapabilityPolicy")
		}
		for f, docs := range files {
			for _, doc := range docs {
				var warnings []string
				obj := &unstructured.Unstructured{Object: doc}
				_, err := dyn.Resource(policiesGVR).Create(withWarnings(ctx, &warnings), obj, strict)
				if err != nil || len(warnings) > 0 {
					t.Errorf("%s: the API server refuses CapabilityPolicy %s: %v %s",
						f, obj.GetName(), err, strings.Join(warnings, "; "))
				}
			}
		}
	})

	// DESIGN §2: invalid input is rejected by the schema where a schema can express it.
	t.Run("the CapabilityPolicy schema rejects invalid policies", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			path  []string
			value any
		}{
			{"an unknown profile", []string{"spec", "profile"}, "strict"},
			{"an unknown runtime", []string{"spec", "runtimeDefaults"}, "podman"},
			{"an unknown severity", []string{"spec", "severities"}, map[string]any{"NET_RAW": "urgent"}},
			{"an exemption without a reason", []string{"spec", "exemptions"}, []any{
				map[string]any{"name": "no-reason", "capabilities": []any{"NET_RAW"}},
			}},
			{"an expiry that is no timestamp", []string{"spec", "exemptions"}, []any{
				map[string]any{"name": "bad-date", "reason": "r", "expires": "next tuesday"},
			}},
		} {
			var policy map[string]any
			if err := yaml.Unmarshal([]byte(designPolicy), &policy); err != nil {
				t.Fatal(err)
			}
			obj := &unstructured.Unstructured{Object: policy}
			if err := unstructured.SetNestedField(obj.Object, runtime.DeepCopyJSONValue(tc.value), tc.path...); err != nil {
				t.Fatal(err)
			}
			_, err := dyn.Resource(policiesGVR).Create(ctx, obj, strict)
			if !apierrors.IsInvalid(err) {
				t.Errorf("a policy with %s: the API server answered %v, want 422 Invalid", tc.name, err)
			}
		}
	})
}

// policyFiles returns the CapabilityPolicy documents of docs/examples/policies.
func policyFiles(t *testing.T) map[string][]map[string]any {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "docs", "examples", "policies", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]map[string]any{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range strings.Split(string(data), "\n---") {
			var obj map[string]any
			if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			if obj["kind"] == "CapabilityPolicy" {
				out[f] = append(out[f], obj)
			}
		}
	}
	return out
}

// designPolicy is the CapabilityPolicy example of DESIGN §2 (spec only; status is the
// controller's).
const designPolicy = `
apiVersion: capwatch.io/v1alpha1
kind: CapabilityPolicy
metadata:
  name: design-example
spec:
  profile: restricted
  match:
    namespaces: [prod-*]
    excludeNamespaces: [kube-system]
    namespaceSelector: {matchLabels: {team: payments}}
    podSelector: {matchExpressions: [{key: app, operator: In, values: [web]}]}
  runtimeDefaults: containerd
  requireDropAll: true
  allowedCapabilities: [NET_BIND_SERVICE]
  forbiddenCapabilities: [SYS_ADMIN, SYS_PTRACE]
  severities: {NET_RAW: high}
  disallowPrivileged: true
  requireNoPrivilegeEscalation: true
  requireRunAsNonRoot: true
  requireJustification: false
  exemptions:
  - name: netshoot-debug
    namespaces: [netops]
    podSelector: {matchLabels: {app: netshoot}}
    containers: [tools]
    capabilities: [NET_RAW, NET_ADMIN]
    reason: "network diagnostics"
    expires: "2027-01-31T00:00:00Z"
`
