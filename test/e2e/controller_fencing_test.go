package e2e

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// renewDeadline is the controller's leader-election renew deadline: once its last renewal is
// this old it writes nothing more (sooner when a renewal sees another holder).
const renewDeadline = 10 * time.Second

// TestControllerFencing: a leader with a long backlog of reports to write (1,500 bare Pods, a
// client-side rate limit of 5 requests/s) that loses its Lease stops writing at its next
// renewal and exits; a leader asked to stop (SIGTERM) with the same backlog exits within 10 s
// and releases the Lease.
func TestControllerFencing(t *testing.T) {
	ctx := context.Background()
	dyn := dynamicClient(t)
	ns := newNamespace(t, "ctrl-fence", nil)
	// The chart's Role grants Leases in the release namespace only.
	leaseNS := controllerNamespace
	const leaseName = "capwatch-fence"
	createPolicy(t, dyn, "e2e-fence", defaultPolicySpec(ns))

	cfg := rest.CopyConfig(cluster.Config)
	cfg.QPS, cfg.Burst = 300, 300
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const pods = 1500
	next := make(chan int)
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if _, err := cs.CoreV1().Pods(ns).Create(ctx, podWith(fmt.Sprintf("b%04d", i), withAdd(lockedDown, "NET_BIND_SERVICE")), metav1.CreateOptions{}); err != nil {
					t.Errorf("creating pod %d: %v", i, err)
				}
			}
		}()
	}
	for i := 0; i < pods; i++ {
		next <- i
	}
	close(next)
	wg.Wait()

	args := []string{"--leader-elect", "--leader-election-namespace", leaseNS, "--leader-election-id", leaseName,
		"--kube-api-qps", "5", "--kube-api-burst", "5"}
	writing := func(p *controllerProcess) {
		t.Helper()
		eventually(t, time.Minute, "the leader writing reports", func(ctx context.Context) (bool, string, error) {
			code, body := p.getMetrics(ctx)
			w := metricSum(body, "capwatch_report_writes_total", nil)
			return code == 200 && metricSum(body, "capwatch_leader", nil) == 1 && w >= 3, fmt.Sprintf("%d writes=%v", code, w), nil
		})
	}

	// 1. The Lease is taken away while the leader writes.
	leader := startController(t, args...)
	writing(leader)
	list, err := dyn.Resource(reportsGVR).Namespace(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := dyn.Resource(reportsGVR).Namespace(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: list.GetResourceVersion()})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var mu sync.Mutex
	var lastWrite time.Time
	writes := 0
	go func() {
		for e := range w.ResultChan() {
			if e.Type == watch.Added || e.Type == watch.Modified {
				mu.Lock()
				lastWrite = time.Now()
				writes++
				mu.Unlock()
			}
		}
	}()
	stolen := time.Now()
	eventually(t, 10*time.Second, "taking the Lease", func(ctx context.Context) (bool, string, error) {
		l, err := clientset.CoordinationV1().Leases(leaseNS).Get(ctx, leaseName, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		intruder, duration := "intruder", int32(3600)
		now := metav1.NewMicroTime(time.Now())
		l.Spec = coordinationv1.LeaseSpec{HolderIdentity: &intruder, LeaseDurationSeconds: &duration, AcquireTime: &now, RenewTime: &now}
		_, err = clientset.CoordinationV1().Leases(leaseNS).Update(ctx, l, metav1.UpdateOptions{})
		return err == nil, fmt.Sprint(err), nil
	})
	select {
	case <-leader.exited:
	case <-time.After(renewDeadline + 15*time.Second):
		t.Fatalf("the controller still runs %s after its Lease was taken", time.Since(stolen).Round(time.Second))
	}
	exitedAfter := time.Since(stolen)
	time.Sleep(2 * time.Second) // the watch delivers what was written before the exit
	mu.Lock()
	last, n := lastWrite, writes
	mu.Unlock()
	t.Logf("FIGURE: lost Lease: %d report writes seen after the Lease was taken, the last %s after; exited %s after",
		n, last.Sub(stolen).Round(100*time.Millisecond), exitedAfter.Round(100*time.Millisecond))
	// The next renewal (every retry period of 2 s) sees the other holder and closes the fence;
	// one more retry period and a second of slack for a loaded machine. In any case before the
	// renew deadline, after which a leader that cannot renew stops writing.
	if limit := 2*2*time.Second + time.Second; n > 0 && last.Sub(stolen) > limit {
		t.Errorf("a report was written %s after the Lease was taken, want none after %s (the fence closes at the first renewal that sees another holder)",
			last.Sub(stolen).Round(100*time.Millisecond), limit)
	}
	if leader.exitErr == nil {
		t.Errorf("the controller exited with status 0 after losing its Lease, want a failure so that it restarts clean")
	}

	// 2. SIGTERM with a backlog: out within 10 s, the Lease released for a successor.
	if err := clientset.CoordinationV1().Leases(leaseNS).Delete(ctx, leaseName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	second := startController(t, args...)
	writing(second)
	body := scrape(t, second)
	done := metricSum(body, "capwatch_report_writes_total", nil)
	if done >= pods {
		t.Fatalf("the backlog is gone already (%v writes): the test needs one", done)
	}
	termed := time.Now()
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-second.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("the controller did not exit within 20 s of SIGTERM with %v of %d reports written", done, pods)
	}
	took := time.Since(termed)
	t.Logf("FIGURE: SIGTERM with a backlog of about %v workloads: exited in %s", float64(pods)-done, took.Round(10*time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("SIGTERM took %s to exit, want within 10 s", took.Round(100*time.Millisecond))
	}
	if second.exitErr != nil {
		t.Errorf("exit after SIGTERM: %v, want status 0", second.exitErr)
	}
	l, err := clientset.CoordinationV1().Leases(leaseNS).Get(ctx, leaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" {
		t.Errorf("the Lease still names %q after a graceful stop, want it released", *l.Spec.HolderIdentity)
	}
}
