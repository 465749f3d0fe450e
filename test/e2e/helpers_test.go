package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"
)

// newNamespace creates a namespace with a name derived from prefix and deletes it when the
// test ends; the namespace controller then removes what is left in it, in the background.
func newNamespace(t *testing.T, prefix string, labels map[string]string) string {
	t.Helper()
	ns, err := clientset.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-", Labels: labels},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace %s-*: %v", prefix, err)
	}
	t.Cleanup(func() {
		err := clientset.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
		switch {
		case err == nil:
			terminating.Store(ns.Name, struct{}{})
		case !apierrors.IsNotFound(err):
			t.Logf("deleting namespace %s: %v", ns.Name, err)
		}
	})
	return ns.Name
}

// terminating holds the namespaces deleted by earlier tests that may still be terminating.
var terminating sync.Map

// waitForTerminatingNamespaces waits until the namespaces earlier tests deleted are gone. A
// test that watches every namespace (a capwatch controller) calls it first, so that it does
// not meet another test's namespace half deleted: writes into a terminating namespace are
// refused (403).
func waitForTerminatingNamespaces(t *testing.T) {
	t.Helper()
	started := time.Now()
	terminating.Range(func(key, _ any) bool {
		name := key.(string)
		err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, 2*time.Minute, true,
			func(ctx context.Context) (bool, error) {
				_, err := clientset.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
				return apierrors.IsNotFound(err), nil
			})
		if err != nil {
			t.Logf("namespace %s still terminating after 2 minutes", name)
		}
		terminating.Delete(name)
		return true
	})
	if d := time.Since(started); d > time.Second {
		t.Logf("waited %s for earlier tests' namespaces to be deleted", d.Round(100*time.Millisecond))
	}
}

// eventually polls cond every 200 ms until it reports done, failing the test after timeout with
// what the last poll said. Errors from cond do not stop the polling.
func eventually(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) (bool, string, error)) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, timeout, true,
		func(ctx context.Context) (bool, error) {
			done, state, err := cond(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				// API errors are worth retrying: keep polling, but remember what happened.
				last = "error: " + err.Error()
			case err == nil:
				last = state
			}
			return done, nil
		})
	if err != nil {
		t.Fatalf("waiting %s for %s: %v (last seen: %s)", timeout, what, err, last)
	}
}

// kubectl runs the kubectl built with the control plane as the cluster admin.
func kubectl(t *testing.T, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cluster.KubectlPath(),
		append([]string{"--kubeconfig", cluster.AdminKubeconfig()}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

func ptr[T any](v T) *T { return &v }

// applyDefaultPolicy creates the CapabilityPolicy the chart ships (docs/examples/policies/
// default.yaml) and deletes it when the test ends.
func applyDefaultPolicy(t *testing.T, dyn dynamic.Interface) {
	t.Helper()
	policy := &unstructured.Unstructured{}
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "examples", "policies", "default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &policy.Object); err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(policiesGVR).Create(context.Background(), policy, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating CapabilityPolicy %s: %v", policy.GetName(), err)
	}
	t.Cleanup(func() {
		_ = dyn.Resource(policiesGVR).Delete(context.Background(), policy.GetName(), metav1.DeleteOptions{})
	})
}

// toolsPolicy creates CapabilityPolicy `name` for the namespaces matching `namespaces`: SYS_ADMIN
// and NET_RAW forbidden, NET_RAW exempted for container tools (until `expires`, when given),
// with `extra` merged into its spec. It is deleted when the test ends.
func toolsPolicy(t *testing.T, dyn dynamic.Interface, name, namespaces string, expires *time.Time, extra map[string]any) *unstructured.Unstructured {
	t.Helper()
	exemption := map[string]any{"name": "tools-net-raw", "containers": []any{"tools"},
		"capabilities": []any{"NET_RAW"}, "reason": "network diagnostics"}
	if expires != nil {
		exemption["expires"] = expires.Format(time.RFC3339)
	}
	spec := map[string]any{
		"match":                 map[string]any{"namespaces": []any{namespaces}},
		"forbiddenCapabilities": []any{"SYS_ADMIN", "NET_RAW"},
		"exemptions":            []any{exemption},
	}
	for k, v := range extra {
		spec[k] = v
	}
	policy := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "capwatch.io/v1alpha1",
		"kind":       "CapabilityPolicy",
		"metadata":   map[string]any{"name": name},
		"spec":       spec,
	}}
	created, err := dyn.Resource(policiesGVR).Create(context.Background(), policy, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating CapabilityPolicy %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = dyn.Resource(policiesGVR).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return created
}
