package e2e

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// apiServerOutage is how long kube-apiserver stays down.
const apiServerOutage = 30 * time.Second

// TestControllerAPIServerOutage stops kube-apiserver for 30 s while capwatch runs, and compacts
// etcd's history meanwhile, so that the resourceVersions capwatch resumes its watches from are
// gone (410). capwatch must stay up, relist, converge (a Pod created after the outage gets its
// report), and count and announce nothing twice: the relist finds the reports it already wrote.
func TestControllerAPIServerOutage(t *testing.T) {
	ctx := context.Background()
	dyn := dynamicClient(t)
	ns := newNamespace(t, "ctrl-outage", nil)
	const policy = "e2e-outage"
	createPolicy(t, dyn, policy, defaultPolicySpec(ns))
	ctrl := startController(t)

	if _, err := clientset.AppsV1().Deployments(ns).Create(ctx, deployment("before", 2, withAdd(lockedDown, "SYS_ADMIN")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReport(t, dyn, ns, "deployment-before", reportDeadline+5*time.Second, nil)
	eventually(t, 10*time.Second, "the grant event for deployment before", func(ctx context.Context) (bool, string, error) {
		_, n, err := grantEvents(ctx, ns, "Deployment", "before")
		return n == 1, fmt.Sprintf("%d events", n), err
	})
	settle(t, ctrl)
	body := scrape(t, ctrl)
	grantsBefore := metricSum(body, "capwatch_dangerous_grants_total", nil)
	writesBefore := metricSum(body, "capwatch_report_writes_total", nil)
	restartsBefore := metricSum(body, "capwatch_watch_restarts_total", nil)
	versions := reportVersions(t, dyn, ns)
	// A write after everything capwatch has seen, so that the compaction below passes every
	// resourceVersion capwatch holds.
	if _, err := clientset.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "bump"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	stopped := time.Now()
	if err := cluster.StopAPIServer(); err != nil {
		t.Fatalf("stopping kube-apiserver: %v", err)
	}
	down := true
	t.Cleanup(func() {
		if down { // the rest of the suite needs it
			if err := cluster.StartAPIServer(context.Background(), 3*time.Minute); err != nil {
				t.Errorf("starting kube-apiserver again: %v", err)
			}
		}
	})
	t.Logf("kube-apiserver stopped in %s", time.Since(stopped).Round(100*time.Millisecond))
	rev, err := cluster.CompactEtcd(ctx)
	if err != nil {
		t.Fatalf("compacting etcd: %v", err)
	}
	t.Logf("etcd compacted at revision %d", rev)
	select {
	case <-ctrl.exited:
		t.Fatalf("capwatch exited while kube-apiserver was down: %v", ctrl.exitErr)
	case <-time.After(apiServerOutage - time.Since(stopped)):
	}
	if err := cluster.StartAPIServer(ctx, 3*time.Minute); err != nil {
		t.Fatalf("starting kube-apiserver again: %v", err)
	}
	down = false
	restarted := time.Now()
	t.Logf("kube-apiserver was down %s", restarted.Sub(stopped).Round(100*time.Millisecond))

	// Converges: a Pod created now gets its report.
	var created time.Time
	eventually(t, time.Minute, "creating a Pod after the outage", func(ctx context.Context) (bool, string, error) {
		_, err := clientset.CoreV1().Pods(ns).Create(ctx, podWith("after", withAdd(lockedDown, "SYS_PTRACE")), metav1.CreateOptions{})
		created = time.Now()
		return err == nil, "", err
	})
	waitReport(t, dyn, ns, "pod-after", time.Minute, nil)
	t.Logf("FIGURE: after a %s kube-apiserver outage with etcd compacted: a Pod created %s after the restart had its report %s later",
		apiServerOutage, created.Sub(restarted).Round(100*time.Millisecond), time.Since(created).Round(100*time.Millisecond))
	eventually(t, 30*time.Second, "capwatch /readyz after the outage", func(ctx context.Context) (bool, string, error) {
		code, body := httpGet(ctx, ctrl.HealthURL+"/readyz")
		return code == 200, fmt.Sprintf("%d %s", code, body), nil
	})
	settle(t, ctrl)

	body = scrape(t, ctrl)
	restarts := grepLines(body, "capwatch_watch_restarts_total")
	t.Logf("watch restarts:\n%s", restarts)
	if metricSum(body, "capwatch_watch_restarts_total", nil) <= restartsBefore {
		t.Errorf("capwatch_watch_restarts_total did not rise through the outage:\n%s", restarts)
	}
	if gone := metricSum(body, "capwatch_watch_restarts_total", map[string]string{"reason": "gone"}); gone < 1 {
		t.Errorf("no watch restart for 410 Gone after etcd's compaction:\n%s", restarts)
	}
	// Exactly one new grant (pod after's SYS_PTRACE); the Deployment's is not counted again.
	if g := metricSum(body, "capwatch_dangerous_grants_total", nil); g != grantsBefore+1 {
		t.Errorf("capwatch_dangerous_grants_total %v after the outage, want %v (+1 for pod after)\n%s", g, grantsBefore+1,
			grepLines(body, "capwatch_dangerous_grants_total"))
	}
	if w := metricSum(body, "capwatch_report_writes_total", nil); w != writesBefore+1 {
		t.Errorf("capwatch_report_writes_total %v after the outage, want %v (+1 for pod after)\n%s", w, writesBefore+1,
			grepLines(body, "capwatch_report_writes_total"))
	}
	if _, n, err := grantEvents(ctx, ns, "Deployment", "before"); err != nil || n != 1 {
		t.Errorf("%d DangerousCapabilityGranted events on deployment before after the outage (%v), want still 1", n, err)
	}
	if _, n, err := grantEvents(ctx, ns, "Pod", "after"); err != nil || n != 1 {
		t.Errorf("%d DangerousCapabilityGranted events on pod after (%v), want 1", n, err)
	}
	after := reportVersions(t, dyn, ns)
	delete(after, ns+"/pod-after")
	if !reflect.DeepEqual(after, versions) {
		t.Errorf("reports rewritten through the outage: resourceVersions before %v, after %v", versions, after)
	}
}
