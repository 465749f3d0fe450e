package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"
)

// prometheusServer is Debian's prometheus, scraping capwatch through a file_sd target file
// that the test rewrites when it restarts the controller.
type prometheusServer struct {
	url     string
	targets string
}

// startPrometheus runs prometheus with a 1 s scrape and evaluation interval and the given
// rules file, scraping job "capwatch" at target; it is killed when the test ends.
func startPrometheus(t *testing.T, rules, target string) *prometheusServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus not found (Debian package prometheus; bash test/install-deps.sh installs it): %v", err)
	}
	dir := t.TempDir()
	p := &prometheusServer{targets: filepath.Join(dir, "capwatch-targets.json")}
	p.setTarget(t, target)
	// As the chart's ServiceMonitor scrapes: HTTPS, the self-signed certificate not verified,
	// the token of an account bound to the metrics-reader role.
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(metricsReaderToken(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
- job_name: capwatch
  scheme: https
  tls_config:
    insecure_skip_verify: true
  authorization:
    type: Bearer
    credentials_file: %q
  file_sd_configs:
  - files: [%q]
    refresh_interval: 1s
`, rules, tokenFile, p.targets)
	configFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := freeLoopbackAddr(t)
	p.url = "http://" + listen
	log := &syncBuffer{}
	cmd := exec.Command(bin, "--config.file="+configFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("prometheus output:\n%s", head(log.String(), 10000))
		}
	})
	eventually(t, time.Minute, "prometheus /-/ready", func(ctx context.Context) (bool, string, error) {
		select {
		case <-exited:
			return false, "", fmt.Errorf("prometheus exited:\n%s", log.String())
		default:
		}
		code, body := httpGet(ctx, p.url+"/-/ready")
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, body), nil
	})
	return p
}

// setTarget points the capwatch job at a new address (file_sd picks the change up).
func (p *prometheusServer) setTarget(t *testing.T, target string) {
	t.Helper()
	data, err := json.Marshal([]map[string]any{{"targets": []string{target}}})
	if err != nil {
		t.Fatal(err)
	}
	tmp := p.targets + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p.targets); err != nil {
		t.Fatal(err)
	}
}

// query evaluates an instant PromQL query and returns its vector's samples as label sets with
// a "value" key.
func (p *prometheusServer) query(ctx context.Context, q string) ([]map[string]string, error) {
	code, body := httpGet(ctx, p.url+"/api/v1/query?query="+url.QueryEscape(q))
	if code != http.StatusOK {
		return nil, fmt.Errorf("query %s: %d %s", q, code, body)
	}
	var resp struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  []any             `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		return nil, fmt.Errorf("query %s: %v", q, err)
	}
	var out []map[string]string
	for _, r := range resp.Data.Result {
		m := map[string]string{}
		for k, v := range r.Metric {
			m[k] = v
		}
		if len(r.Value) == 2 {
			m["value"] = fmt.Sprint(r.Value[1])
		}
		out = append(out, m)
	}
	return out, nil
}

// alerts returns the alerts of the given name and state whose namespace label is ns.
func (p *prometheusServer) alerts(ctx context.Context, name, state, ns string) ([]map[string]string, error) {
	code, body := httpGet(ctx, p.url+"/api/v1/alerts")
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /api/v1/alerts: %d %s", code, body)
	}
	var resp struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		return nil, err
	}
	var out []map[string]string
	for _, a := range resp.Data.Alerts {
		if a.Labels["alertname"] == name && a.State == state && a.Labels["namespace"] == ns {
			out = append(out, a.Labels)
		}
	}
	return out, nil
}

// TestAlertLiveNewDangerousGrant: a real Prometheus scrapes a running capwatch controller with
// the chart's rules loaded. Adding SYS_ADMIN to a Deployment fires CapwatchNewDangerousGrant;
// once it has resolved, restarting capwatch does not fire it again; a grant after the restart
// (SYS_PTRACE) fires it, so the quiet was not a broken scrape.
//
// The rules are the chart's with the alert's 10-minute windows shortened to 20 s, so that the
// alert resolves within the test; the expressions are otherwise the same.
func TestAlertLiveNewDangerousGrant(t *testing.T) {
	chart := chartPath(t)
	ctx := context.Background()
	data, err := os.ReadFile(filepath.Join(chart, "files", "prometheus-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const window = 20 * time.Second
	short := strings.NewReplacer("[10m]", "[20s]", "offset 10m", "offset 20s").Replace(string(data))
	if !strings.Contains(short, "offset 20s") || !strings.Contains(short, "[20s]") {
		t.Fatal("the rules no longer hold the 10m windows this test shortens; update the test")
	}
	rules := filepath.Join(t.TempDir(), "capwatch-rules.yaml")
	if err := os.WriteFile(rules, []byte(short), 0o600); err != nil {
		t.Fatal(err)
	}

	// A policy of the default's rules that matches only this test's namespace.
	ns := newNamespace(t, "alert-live", nil)
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	policyData, err := os.ReadFile(filepath.Join("..", "..", "docs", "examples", "policies", "default.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	policy := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(policyData, &policy.Object); err != nil {
		t.Fatal(err)
	}
	policy.SetName(ns)
	if err := unstructured.SetNestedStringSlice(policy.Object, []string{ns}, "spec", "match", "namespaces"); err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(policiesGVR).Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = dyn.Resource(policiesGVR).Delete(context.Background(), policy.GetName(), metav1.DeleteOptions{})
	})

	labels := map[string]string{"app": "web"}
	deploy, err := clientset.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(1)),
			// Without a kubelet no Pod becomes ready, so a rolling update would keep the old
			// Pod beside the new one; Recreate replaces it.
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "web", Image: "web:1",
					SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{
						Drop: []corev1.Capability{"ALL"},
					}},
				}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	addCapability := func(c corev1.Capability) {
		t.Helper()
		d, err := clientset.AppsV1().Deployments(ns).Get(ctx, deploy.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		caps := d.Spec.Template.Spec.Containers[0].SecurityContext.Capabilities
		caps.Add = append(caps.Add, c)
		if _, err := clientset.AppsV1().Deployments(ns).Update(ctx, d, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	instance := func(c *controllerProcess) string {
		return strings.TrimSuffix(strings.TrimPrefix(c.MetricsURL, "https://"), "/metrics")
	}
	ctrl := startController(t)
	prom := startPrometheus(t, rules, instance(ctrl))
	scraping := func(instance string) {
		t.Helper()
		eventually(t, time.Minute, "prometheus scraping capwatch at "+instance, func(ctx context.Context) (bool, string, error) {
			r, err := prom.query(ctx, fmt.Sprintf(`capwatch_last_full_sync_timestamp_seconds{job="capwatch",instance=%q}`, instance))
			return err == nil && len(r) == 1, fmt.Sprintf("%v", r), err
		})
	}
	scraping(instance(ctrl))
	eventually(t, time.Minute, "the report of the Deployment", func(ctx context.Context) (bool, string, error) {
		_, err := dyn.Resource(reportsGVR).Namespace(ns).Get(ctx, "deployment-web", metav1.GetOptions{})
		return err == nil, "", err
	})

	firing := func(capability string, timeout time.Duration) {
		t.Helper()
		eventually(t, timeout, "CapwatchNewDangerousGrant firing for "+capability, func(ctx context.Context) (bool, string, error) {
			alerts, err := prom.alerts(ctx, "CapwatchNewDangerousGrant", "firing", ns)
			for _, a := range alerts {
				if a["capability"] == capability {
					return true, "", nil
				}
			}
			return false, fmt.Sprintf("firing: %v", alerts), err
		})
	}
	granted := time.Now()
	addCapability("SYS_ADMIN")
	firing("SYS_ADMIN", time.Minute)
	t.Logf("CapwatchNewDangerousGrant fired %s after adding SYS_ADMIN", time.Since(granted).Round(100*time.Millisecond))
	eventually(t, 2*time.Minute, "CapwatchNewDangerousGrant to resolve", func(ctx context.Context) (bool, string, error) {
		alerts, err := prom.alerts(ctx, "CapwatchNewDangerousGrant", "firing", ns)
		return err == nil && len(alerts) == 0, fmt.Sprintf("firing: %v", alerts), err
	})

	// Restart capwatch: a new process on new ports, as a new Pod would be.
	ctrl.stop(t)
	ctrl = startController(t)
	prom.setTarget(t, instance(ctrl))
	scraping(instance(ctrl))
	quietUntil := time.Now().Add(window + 10*time.Second)
	for time.Now().Before(quietUntil) {
		alerts, err := prom.alerts(ctx, "CapwatchNewDangerousGrant", "firing", ns)
		if err != nil {
			t.Fatal(err)
		}
		if len(alerts) > 0 {
			t.Fatalf("CapwatchNewDangerousGrant fired again after capwatch restarted: %v", alerts)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if r, err := prom.query(ctx, fmt.Sprintf(`capwatch_dangerous_grants_total{namespace=%q,instance=%q}`, ns, instance(ctrl))); err != nil || len(r) != 0 {
		t.Errorf("the restarted capwatch counted grants it already knew: %v (%v)", r, err)
	}

	addCapability("SYS_PTRACE")
	firing("SYS_PTRACE", time.Minute)
	if alerts, _ := prom.alerts(ctx, "CapwatchNewDangerousGrant", "firing", ns); len(alerts) != 1 {
		t.Errorf("after adding SYS_PTRACE, firing %v, want SYS_PTRACE alone", alerts)
	}
}
