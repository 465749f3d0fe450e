package e2e

// The figures issue 5 asks for, measured on the real control plane and printed as lines that
// start with "FIGURE:": time from a Pod's creation to its report, report writes per Pod event
// during a 100-Pod rollout, and (with CAPWATCH_E2E_SCALE=1) capwatch's resident memory with
// 10,000 Pods.

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// TestControllerFigures measures the time from a Pod's creation to its report over 20 Pods, and
// the report writes during a 100-replica Deployment's creation and rollout.
func TestControllerFigures(t *testing.T) {
	ctx := context.Background()
	dyn := dynamicClient(t)
	ns := newNamespace(t, "ctrl-figures", nil)
	const policy = "e2e-figures"
	createPolicy(t, dyn, policy, defaultPolicySpec(ns))
	ctrl := startController(t)

	// Time to report: a watch on the namespace's reports sees each one appear.
	w, err := dyn.Resource(reportsGVR).Namespace(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	const pods = 20
	created := make(map[string]time.Time, pods)
	var mu sync.Mutex
	go func() {
		for i := 0; i < pods; i++ {
			name := fmt.Sprintf("p%02d", i)
			mu.Lock()
			created["pod-"+name] = time.Now()
			mu.Unlock()
			if _, err := clientset.CoreV1().Pods(ns).Create(ctx, podWith(name, withAdd(lockedDown, "NET_BIND_SERVICE")), metav1.CreateOptions{}); err != nil {
				t.Errorf("creating pod %s: %v", name, err)
			}
			time.Sleep(150 * time.Millisecond) // spread over 3 s, as Pods arrive in a cluster
		}
	}()
	var latencies []time.Duration
	timeout := time.After(60 * time.Second)
	for len(latencies) < pods {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("the watch on reports ended after %d of %d reports", len(latencies), pods)
			}
			if ev.Type != watch.Added {
				continue
			}
			seen := time.Now()
			name := ev.Object.(metav1.Object).GetName()
			mu.Lock()
			start, ok := created[name]
			mu.Unlock()
			if ok {
				latencies = append(latencies, seen.Sub(start))
			}
		case <-timeout:
			t.Fatalf("only %d of %d reports within 60 s", len(latencies), pods)
		}
	}
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	t.Logf("FIGURE: time from Pod creation to its CapabilityReport over %d Pods: median %s, max %s (events are coalesced 1 s per workload)",
		pods, percentile(latencies, 0.5).Round(time.Millisecond), latencies[len(latencies)-1].Round(time.Millisecond))
	if max := latencies[len(latencies)-1]; max > reportDeadline {
		t.Errorf("slowest report took %s, want within %s", max, reportDeadline)
	}

	// Report writes per Pod event during a 100-Pod rollout.
	settle(t, ctrl)
	podWatch, err := clientset.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{LabelSelector: "app=rollout"})
	if err != nil {
		t.Fatal(err)
	}
	defer podWatch.Stop()
	var podEvents atomic.Int64
	go func() {
		for range podWatch.ResultChan() {
			podEvents.Add(1)
		}
	}()
	writes := func() float64 { return metricSum(scrape(t, ctrl), "capwatch_report_writes_total", nil) }
	w0 := writes()
	d := deployment("rollout", 100, withAdd(lockedDown, "NET_BIND_SERVICE"))
	// A rolling update, but with nothing ever Ready here (no kubelet) it must be allowed to take
	// every old Pod down at once, or it stalls at maxUnavailable.
	everything, quarter := intstr.FromString("100%"), intstr.FromString("25%")
	d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &everything, MaxSurge: &quarter}}
	if _, err := clientset.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRollout(t, ns, "rollout", 100)
	waitReport(t, dyn, ns, "deployment-rollout", 10*time.Second, nil)
	settle(t, ctrl)
	w1, e1 := writes(), podEvents.Load()
	if _, err := clientset.AppsV1().Deployments(ns).Patch(ctx, "rollout", types.StrategicMergePatchType,
		[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"app","image":"app:2"}]}}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	rolloutStart := time.Now()
	waitRollout(t, ns, "rollout", 100)
	rolloutTook := time.Since(rolloutStart)
	settle(t, ctrl)
	w2, e2 := writes(), podEvents.Load()
	t.Logf("FIGURE: 100-replica Deployment created: %v report writes for %d Pod events (%.4f writes per Pod event)",
		w1-w0, e1, (w1-w0)/float64(max(e1, 1)))
	t.Logf("FIGURE: its rollout (image change, %s): %v report writes for %d Pod events (%.4f writes per Pod event)",
		rolloutTook.Round(time.Second), w2-w1, e2-e1, (w2-w1)/float64(max(e2-e1, 1)))
	// One spec change, one workload: at most one write for the content, and the Pod count may be
	// brought up to date once more.
	if w2-w1 > 2 {
		t.Errorf("the rollout of one template change made %v report writes, want at most 2", w2-w1)
	}
}

// waitRollout waits until the Deployment's Pods are all of the current template and the old
// ones are gone.
func waitRollout(t *testing.T, ns, name string, replicas int32) {
	t.Helper()
	eventually(t, 3*time.Minute, "deployment "+name+"'s rollout", func(ctx context.Context) (bool, string, error) {
		d, err := clientset.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		pods, err := clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err != nil {
			return false, "", err
		}
		return d.Status.ObservedGeneration == d.Generation && d.Status.UpdatedReplicas == replicas &&
				d.Status.Replicas == replicas && len(pods.Items) == int(replicas),
			fmt.Sprintf("updated %d, replicas %d, pods %d", d.Status.UpdatedReplicas, d.Status.Replicas, len(pods.Items)), nil
	})
}

// TestControllerScaleMemory (CAPWATCH_E2E_SCALE=1): capwatch's resident memory with 10,000
// Pods created, bare Pods in four namespaces.
func TestControllerScaleMemory(t *testing.T) {
	if os.Getenv("CAPWATCH_E2E_SCALE") != "1" {
		t.Skip("set CAPWATCH_E2E_SCALE=1 to create 10,000 Pods and measure capwatch's memory")
	}
	total := 10000
	if s := os.Getenv("CAPWATCH_E2E_SCALE_PODS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		total = n
	}
	ctx := context.Background()
	dyn := dynamicClient(t)
	var namespaces []string
	for i := 0; i < 4; i++ {
		namespaces = append(namespaces, newNamespace(t, fmt.Sprintf("ctrl-scale%d", i), nil))
	}
	createPolicy(t, dyn, "e2e-scale", defaultPolicySpec("ctrl-scale*"))
	ctrl := startController(t, "--kube-api-qps", "500", "--kube-api-burst", "1000")
	rss0 := vmRSS(t, ctrl)

	cfg := rest.CopyConfig(cluster.Config)
	cfg.QPS, cfg.Burst = 300, 300
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	next := make(chan int)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				ns := namespaces[i%len(namespaces)]
				c := withAdd(lockedDown, "NET_BIND_SERVICE")
				if i%10 == 0 {
					c = withAdd(lockedDown, "NET_RAW", "SYS_ADMIN")
				}
				c.Image = fmt.Sprintf("registry.example/team%d/app:%d", i%50, i%7)
				p := podWith(fmt.Sprintf("pod-%05d", i), c)
				p.Labels = map[string]string{"app": fmt.Sprintf("app%d", i%50), "tier": "web"}
				if _, err := cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
					if failed.Add(1) < 5 {
						t.Errorf("creating pod %d: %v", i, err)
					}
				}
			}
		}()
	}
	for i := 0; i < total; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d Pods could not be created", failed.Load())
	}
	t.Logf("created %d Pods in %s", total, time.Since(started).Round(time.Second))
	eventually(t, 10*time.Minute, "capwatch to cache every Pod and write every report", func(ctx context.Context) (bool, string, error) {
		code, body := ctrl.getMetrics(ctx)
		if code != 200 {
			return false, body, nil
		}
		pods := metricSum(body, "capwatch_cache_objects", map[string]string{"resource": "pods"})
		writes := metricSum(body, "capwatch_report_writes_total", nil)
		return pods >= float64(total) && writes >= float64(total), fmt.Sprintf("pods cached %v, report writes %v", pods, writes), nil
	})
	synced := time.Since(started)
	settle(t, ctrl)
	rss := vmRSS(t, ctrl)
	body := scrape(t, ctrl)
	t.Logf("FIGURE: capwatch resident memory (VmRSS) with %d Pods and %d reports cached: %.1f MiB (%.1f MiB before the Pods; %.0f bytes per Pod over that); every report written %s after the first Pod's creation",
		total, total, float64(rss)/(1<<20), float64(rss0)/(1<<20), float64(rss-rss0)/float64(total), synced.Round(time.Second))
	t.Logf("capwatch cache sizes:\n%s", grepLines(body, "capwatch_cache_objects"))
}

// vmRSS returns the controller process's resident set size in bytes.
func vmRSS(t *testing.T, p *controllerProcess) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb * 1024
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", p.cmd.Process.Pid)
	return 0
}
