package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestHelmChart installs helm/capwatch with the helm built beside the control plane, lets
// kube-controller-manager create capwatch's own Pods, and audits them: capwatch's own
// workload must pass the restricted Pod Security profile. Uninstalling removes it again.
func TestHelmChart(t *testing.T) {
	chart := os.Getenv("CAPWATCH_E2E_CHART") // another chart directory, for trying changes
	if chart == "" {
		chart = filepath.Join("..", "..", "helm", "capwatch")
	}
	chart, err := filepath.Abs(chart)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(chart, "Chart.yaml")); os.IsNotExist(err) {
		t.Skipf("%s holds no chart yet", chart)
	}
	ns := newNamespace(t, "helm", nil)

	helm(t, "lint", chart)
	helm(t, "install", "capwatch", chart, "--namespace", ns)
	eventually(t, 2*time.Minute, "the chart's Pods", func(ctx context.Context) (bool, string, error) {
		deploys, err := clientset.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, "", err
		}
		pods, err := clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, "", err
		}
		want := int32(0)
		for _, d := range deploys.Items {
			if d.Spec.Replicas != nil {
				want += *d.Spec.Replicas
			}
		}
		return len(deploys.Items) > 0 && int32(len(pods.Items)) >= want,
			fmt.Sprintf("%d deployments wanting %d pods, %d pods", len(deploys.Items), want, len(pods.Items)), nil
	})

	reports, code := auditJSON(t, kubectl(t, "get", "pods", "-n", ns, "-o", "json"), "--profile", "restricted")
	if code != 0 {
		for _, r := range reports.Items {
			if len(r.failures()) > 0 {
				t.Errorf("capwatch's own workload fails the restricted profile:\n%s", r.String())
			}
		}
		t.Errorf("capwatch audit --profile restricted of the chart's Pods exited %d, want 0", code)
	}

	helm(t, "uninstall", "capwatch", "--namespace", ns)
	eventually(t, 2*time.Minute, "the release's Pods to be garbage-collected", func(ctx context.Context) (bool, string, error) {
		pods, err := clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, "", err
		}
		return len(pods.Items) == 0, fmt.Sprintf("%d pods", len(pods.Items)), nil
	})
}

// helm runs the helm built with the control plane as the cluster admin, with its caches in a
// temporary directory.
func helm(t *testing.T, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	home := t.TempDir()
	cmd := exec.CommandContext(ctx, cluster.HelmPath(), args...)
	cmd.Env = append(os.Environ(),
		"KUBECONFIG="+cluster.AdminKubeconfig(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.Bytes()
}
