package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// leaseDuration is the controller's Lease duration: a follower takes over within it.
const leaseDuration = 15 * time.Second

// TestControllerLeaderElection: two replicas with --leader-elect; exactly one is the leader and
// writes reports, the other writes nothing; after the leader is killed (SIGKILL, no chance to
// release the Lease) the other takes over within the lease duration and writes.
func TestControllerLeaderElection(t *testing.T) {
	ctx := context.Background()
	dyn := dynamicClient(t)
	ns := newNamespace(t, "ctrl-leader", nil)
	// The chart's Role grants Leases in the release namespace only.
	leaseNS := controllerNamespace
	const policy = "e2e-leader"
	createPolicy(t, dyn, policy, defaultPolicySpec(ns))

	args := []string{"--leader-elect", "--leader-election-namespace", leaseNS, "--leader-election-id", "capwatch-e2e"}
	replicas := []*controllerProcess{startController(t, args...), startController(t, args...)}

	leaderIndex := func() (int, string) {
		var state string
		leader := -1
		for i, p := range replicas {
			code, body := p.getMetrics(ctx)
			if code != 200 {
				state += fmt.Sprintf(" replica %d: %d", i, code)
				continue
			}
			l := metricSum(body, "capwatch_leader", nil)
			state += fmt.Sprintf(" replica %d: leader=%v", i, l)
			if l == 1 {
				if leader >= 0 {
					return -2, state // two leaders
				}
				leader = i
			}
		}
		return leader, state
	}
	var leader int
	eventually(t, 30*time.Second, "one leader", func(context.Context) (bool, string, error) {
		var state string
		leader, state = leaderIndex()
		if leader == -2 {
			t.Fatalf("two replicas are leaders at once:%s", state)
		}
		return leader >= 0, state, nil
	})
	follower := 1 - leader

	if _, err := clientset.CoreV1().Pods(ns).Create(ctx, podWith("first", withAdd(lockedDown, "SYS_ADMIN")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReport(t, dyn, ns, "pod-first", reportDeadline+5*time.Second, nil)
	settle(t, replicas[leader])
	writes := func(i int) float64 {
		return metricSum(scrape(t, replicas[i]), "capwatch_report_writes_total", nil)
	}
	grants := func(i int) float64 {
		return metricSum(scrape(t, replicas[i]), "capwatch_dangerous_grants_total", nil)
	}
	if w := writes(leader); w < 1 {
		t.Errorf("leader (replica %d) made %v report writes, want at least 1", leader, w)
	}
	if w := writes(follower); w != 0 {
		t.Errorf("follower (replica %d) made %v report writes, want 0", follower, w)
	}
	if n := countGrantEvents(t, ns); n != 1 {
		t.Errorf("%d DangerousCapabilityGranted events for pod first, want 1 (from the leader only)", n)
	}
	if g := grants(follower); g != 0 {
		t.Errorf("follower counted %v dangerous grants, want 0", g)
	}

	// SIGKILL: the Lease is not released, so the follower must wait for it to expire.
	killed := time.Now()
	if err := replicas[leader].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-replicas[leader].exited
	lease, err := clientset.CoordinationV1().Leases(leaseNS).Get(ctx, "capwatch-e2e", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if lease.Spec.RenewTime == nil || lease.Spec.HolderIdentity == nil {
		t.Fatalf("Lease %s/capwatch-e2e has no holder or renewTime: %+v", leaseNS, lease.Spec)
	}
	deadHolder, lastRenew := *lease.Spec.HolderIdentity, lease.Spec.RenewTime.Time
	eventually(t, leaseDuration+15*time.Second, "the follower to take over", func(ctx context.Context) (bool, string, error) {
		code, body := replicas[follower].getMetrics(ctx)
		return code == 200 && metricSum(body, "capwatch_leader", nil) == 1, fmt.Sprintf("%d leader=%v", code, metricSum(body, "capwatch_leader", nil)), nil
	})
	handover := time.Since(killed)
	if lease, err = clientset.CoordinationV1().Leases(leaseNS).Get(ctx, "capwatch-e2e", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == deadHolder || lease.Spec.AcquireTime == nil {
		t.Fatalf("Lease after the handover: %+v, want a new holder instead of %s", lease.Spec, deadHolder)
	}
	sinceRenew := lease.Spec.AcquireTime.Sub(lastRenew)
	t.Logf("FIGURE: leader handover after SIGKILL: %s after the kill, %s after the dead leader's last renewal (lease duration %s)",
		handover.Round(100*time.Millisecond), sinceRenew.Round(100*time.Millisecond), leaseDuration)
	// A follower reads the Lease every retry period (2 s) and takes it once it has seen no
	// renewal for a lease duration by its own clock (as client-go does): it notices the last
	// renewal up to one retry period late and tries again up to one retry period after the
	// Lease expired. One more retry period of slack for a loaded machine.
	if limit := leaseDuration + 3*2*time.Second; sinceRenew > limit {
		t.Errorf("the follower took the Lease %s after its last renewal, want within the lease duration %s + 2 retry periods of 2 s (+2 s slack)", sinceRenew, leaseDuration)
	}

	if _, err := clientset.CoreV1().Pods(ns).Create(ctx, podWith("second", withAdd(lockedDown, "SYS_PTRACE")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReport(t, dyn, ns, "pod-second", reportDeadline+5*time.Second, nil)
	settle(t, replicas[follower])
	if w := writes(follower); w < 1 {
		t.Errorf("new leader (replica %d) made %v report writes, want at least 1", follower, w)
	}
	// Taking over is not a restart of history: pod first's grant is not counted again.
	if g := metricSum(scrape(t, replicas[follower]), "capwatch_dangerous_grants_total", map[string]string{"capability": "SYS_ADMIN"}); g != 0 {
		t.Errorf("new leader counted pod first's SYS_ADMIN again (%v)", g)
	}
	if n := countGrantEvents(t, ns); n != 2 {
		t.Errorf("%d DangerousCapabilityGranted events, want 2 (one per pod)", n)
	}
}
