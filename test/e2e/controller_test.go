package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
)

// controllerProcess is a `capwatch controller` running against the control plane.
type controllerProcess struct {
	cmd        *exec.Cmd
	MetricsURL string // https://127.0.0.1:port/metrics, read with MetricsToken (getMetrics)
	// A token of a ServiceAccount bound to the metrics-reader role, as Prometheus scrapes.
	MetricsToken string
	HealthURL    string
	log          *syncBuffer
	exited       chan struct{}
	exitErr      error
}

// syncBuffer collects the controller's output from the exec goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startController runs `capwatch controller` as the chart's ServiceAccount (with exactly the
// chart's RBAC, see identity_test.go) on free loopback ports, waits for /readyz, and stops it
// (SIGTERM) when the test ends, logging its output if the test failed.
func startController(t *testing.T, extraArgs ...string) *controllerProcess {
	t.Helper()
	return startControllerAs(t, controllerKubeconfig, extraArgs...)
}

// startControllerAs is startController with the identity of the given kubeconfig.
func startControllerAs(t *testing.T, kubeconfig string, extraArgs ...string) *controllerProcess {
	t.Helper()
	waitForTerminatingNamespaces(t)
	metrics, health := freeLoopbackAddr(t), freeLoopbackAddr(t)
	args := append([]string{"controller",
		"--kubeconfig", kubeconfig,
		"--metrics-bind-address", metrics,
		"--health-probe-bind-address", health,
	}, extraArgs...)
	p := &controllerProcess{
		cmd:          exec.Command(capwatchBin, args...),
		MetricsURL:   "https://" + metrics + "/metrics",
		MetricsToken: metricsReaderToken(t),
		HealthURL:    "http://" + health,
		log:          &syncBuffer{},
		exited:       make(chan struct{}),
	}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting capwatch controller: %v", err)
	}
	go func() {
		p.exitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("capwatch controller output:\n%s", head(p.log.String(), 20000))
		}
	})
	eventually(t, time.Minute, "capwatch controller /readyz", func(ctx context.Context) (bool, string, error) {
		select {
		case <-p.exited:
			return false, "", fmt.Errorf("capwatch controller exited: %v\n%s", p.exitErr, p.log.String())
		default:
		}
		code, body := httpGet(ctx, p.HealthURL+"/readyz")
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, body), nil
	})
	return p
}

func (p *controllerProcess) stop(t *testing.T) {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Errorf("capwatch controller did not exit within 20 s of SIGTERM; killing it")
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// httpGet returns the status code and body, or 0 and the error text.
func httpGet(ctx context.Context, url string) (int, string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestControllerSmoke: under the default CapabilityPolicy the controller writes a
// CapabilityReport for a Deployment, owned by the Deployment, serves metrics, and the garbage
// collector removes the report with the Deployment. (A first check that the controller works
// against the real API server; the controller's own suite belongs beside it.)
func TestControllerSmoke(t *testing.T) {
	if dirs, err := crdDirs(); err != nil || len(dirs) == 0 {
		t.Fatalf("the controller needs the CRDs from crds/ (found %v, %v)", dirs, err)
	}
	ctx := context.Background()
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	ns := newNamespace(t, "controller", nil)
	labels := map[string]string{"app": "admin-tool"}
	deploy, err := clientset.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "admin-tool"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "tool", Image: "tool:1",
					SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{
						Add: []corev1.Capability{"SYS_ADMIN"},
					}},
				}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// The controller evaluates the CapabilityPolicy objects in the cluster; the chart ships the
	// default one, which docs/examples/policies/default.yaml holds.
	applyDefaultPolicy(t, dyn)

	ctrl := startController(t)

	var report *unstructured.Unstructured
	eventually(t, 2*time.Minute, "CapabilityReport deployment-admin-tool", func(ctx context.Context) (bool, string, error) {
		r, err := dyn.Resource(reportsGVR).Namespace(ns).Get(ctx, "deployment-admin-tool", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			list, _ := dyn.Resource(reportsGVR).Namespace(ns).List(ctx, metav1.ListOptions{})
			var names []string
			if list != nil {
				for _, i := range list.Items {
					names = append(names, i.GetName())
				}
			}
			return false, fmt.Sprintf("reports in %s: %v", ns, names), nil
		}
		if err != nil {
			return false, "", err
		}
		report = r
		return true, "", nil
	})

	owners := report.GetOwnerReferences()
	if len(owners) != 1 || owners[0].Kind != "Deployment" || owners[0].UID != deploy.UID {
		t.Errorf("report deployment-admin-tool is owned by %+v, want the Deployment (uid %s)", owners, deploy.UID)
	}
	findings, _, _ := unstructured.NestedSlice(report.Object, "findings")
	found := false
	for _, f := range findings {
		m, _ := f.(map[string]any)
		if m["rule"] == "dangerous-capability" && m["capability"] == "SYS_ADMIN" && m["container"] == "tool" {
			found = true
		}
	}
	if !found {
		t.Errorf("report deployment-admin-tool has no dangerous-capability finding for SYS_ADMIN on tool: %v", findings)
	}

	code, body := ctrl.getMetrics(ctx)
	if code != http.StatusOK || !strings.Contains(body, "capwatch_") {
		t.Errorf("GET %s: %d, %d bytes, want capwatch_ metrics", ctrl.MetricsURL, code, len(body))
	}

	if err := clientset.AppsV1().Deployments(ns).Delete(ctx, deploy.Name, metav1.DeleteOptions{
		PropagationPolicy: ptr(metav1.DeletePropagationBackground),
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the report to be garbage-collected with the Deployment", func(ctx context.Context) (bool, string, error) {
		_, err := dyn.Resource(reportsGVR).Namespace(ns).Get(ctx, "deployment-admin-tool", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, "", nil
		}
		return false, fmt.Sprintf("still there (%v)", err), nil
	})
}
