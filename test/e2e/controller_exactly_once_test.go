package e2e

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

// reportPods is the report's workload.pods.
func reportPods(r *unstructured.Unstructured) int64 {
	n, _, _ := unstructured.NestedInt64(r.Object, "workload", "pods")
	return n
}

// withPods is waitReport's condition for a report that says the workload has n Pods and still
// holds the finding want (policy/rule/container/capability, a prefix of its string).
func withPods(policy string, n int64, want string) func(r *unstructured.Unstructured) (bool, string) {
	return func(r *unstructured.Unstructured) (bool, string) {
		f := strings.Join(reportFindings(r, policy), " ")
		return reportPods(r) == n && strings.Contains(f, want), fmt.Sprintf("pods %d, findings %s", reportPods(r), f)
	}
}

// grantWant is one dangerous grant a workload must have been announced for exactly once.
type grantWant struct {
	ns, kind, name, capability string
}

// wantAnnouncedOnce checks capwatch_dangerous_grants_total per namespace and capability
// against the grants wanted (each counted once), and that every workload wanted has exactly
// one DangerousCapabilityGranted Event per capability, naming it.
func wantAnnouncedOnce(t *testing.T, p *controllerProcess, wants []grantWant) {
	t.Helper()
	ctx := context.Background()
	body := scrape(t, p)
	type nsCap struct{ ns, capability string }
	counts := map[nsCap]float64{}
	for _, w := range wants {
		counts[nsCap{w.ns, w.capability}]++
	}
	for k, want := range counts {
		if got := metricSum(body, "capwatch_dangerous_grants_total", map[string]string{"namespace": k.ns, "capability": k.capability}); got != want {
			t.Errorf("capwatch_dangerous_grants_total{namespace=%q,capability=%q} = %v, want %v\n%s",
				k.ns, k.capability, got, want, grepLines(body, "capwatch_dangerous_grants_total"))
		}
	}
	type workload struct{ ns, kind, name string }
	caps := map[workload][]string{}
	for _, w := range wants {
		k := workload{w.ns, w.kind, w.name}
		caps[k] = append(caps[k], w.capability)
	}
	for w, want := range caps {
		events, n, err := grantEvents(ctx, w.ns, w.kind, w.name)
		if err != nil {
			t.Errorf("listing the Events of %s %s/%s: %v", w.kind, w.ns, w.name, err)
			continue
		}
		var messages []string
		for _, e := range events {
			messages = append(messages, fmt.Sprintf("%q (count %d)", e.Message, e.Count))
		}
		if int(n) != len(want) {
			t.Errorf("%s %s/%s: %d DangerousCapabilityGranted Events, want exactly %d (%v): %v",
				w.kind, w.ns, w.name, n, len(want), want, messages)
			continue
		}
		for _, c := range want {
			if !strings.Contains(strings.Join(messages, " "), c) {
				t.Errorf("%s %s/%s: no DangerousCapabilityGranted Event names %s: %v", w.kind, w.ns, w.name, c, messages)
			}
		}
	}
}

// junkCapabilities returns n entries for capabilities.add that name no capability (nor ALL nor
// privileged): upper and lower case, CAP_ prefixes, blanks, quotes, non-ASCII, a long one.
func junkCapabilities(n int) []corev1.Capability {
	out := make([]corev1.Capability, 0, n)
	for i := 0; len(out) < n; i++ {
		var c string
		switch i % 8 {
		case 0:
			c = fmt.Sprintf("JUNK_%03d", i)
		case 1:
			c = fmt.Sprintf("cap_junk_%03d", i)
		case 2:
			c = fmt.Sprintf("CAP_NOT_A_CAP_%d", i)
		case 3:
			c = fmt.Sprintf("  spaced out %d  ", i)
		case 4:
			c = fmt.Sprintf(`"quoted" \ %d`, i)
		case 5:
			c = fmt.Sprintf("能力_%d_✓", i)
		case 6:
			c = ""
		case 7:
			c = fmt.Sprintf("%s_%d", strings.Repeat("LONG", 60), i)
		}
		out = append(out, corev1.Capability(c))
	}
	return out
}

// longPodName returns a legal 253-character Pod name (a DNS-1123 subdomain) that begins with
// lead and ends the part the report name keeps before its hash ("pod-" + name, cut to 236
// characters, so name[:232]) in cut: a name[231] of "." or "--" in name[230:232].
func longPodName(lead, cut string) string {
	b := []byte(strings.Repeat("x", 253))
	copy(b, lead)
	for _, i := range []int{60, 120, 180} { // labels in between, as a real name has
		b[i] = '.'
	}
	copy(b[232-len(cut):], cut)
	return string(b)
}

// TestControllerExactlyOnce: what a user sees of capwatch's "once per workload and
// capability" promise and of its robustness, against the real control plane: a Deployment
// scaled to zero and back, CronJob runs, a Pod that lives for less than the coalescing window,
// a namespace that stops and starts matching, hostile Pods (300 capability entries, a
// 253-character name), policy status under Pod churn, and a restart that writes nothing.
func TestControllerExactlyOnce(t *testing.T) {
	ctx := context.Background()
	dyn := dynamicClient(t)
	const label = "capwatch.io/e2e-exactly-once"
	ns := newNamespace(t, "ctrl-once", map[string]string{label: "yes"})
	selNs := newNamespace(t, "ctrl-once-sel", map[string]string{label: "yes"})
	const policy = "e2e-exactly-once"
	spec := defaultPolicySpec()
	spec["match"] = map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{label: "yes"}}}
	createPolicy(t, dyn, policy, spec)
	ctrl := startController(t)
	grants := func(ns, capability string) float64 {
		return metricSum(scrape(t, ctrl), "capwatch_dangerous_grants_total", map[string]string{"namespace": ns, "capability": capability})
	}
	waitGrant := func(ns, kind, name, capability string, want float64) {
		t.Helper()
		eventually(t, 15*time.Second, fmt.Sprintf("%s %s counted and evented", kind, name), func(ctx context.Context) (bool, string, error) {
			g := grants(ns, capability)
			_, n, err := grantEvents(ctx, ns, kind, name)
			return g >= want && n >= 1, fmt.Sprintf("%s counted %v (want %v), %d Events", capability, g, want, n), err
		})
	}
	var wants []grantWant

	// a. A Deployment adding SYS_ADMIN, scaled to zero and back: one report throughout, which
	// says 0 Pods in between; counted and evented once.
	if _, err := clientset.AppsV1().Deployments(ns).Create(ctx, deployment("scaler", 1, withAdd(lockedDown, "SYS_ADMIN")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const adminFinding = policy + "/dangerous-capability/app/SYS_ADMIN"
	waitReport(t, dyn, ns, "deployment-scaler", reportDeadline+5*time.Second, withPods(policy, 1, adminFinding))
	waitGrant(ns, "Deployment", "scaler", "SYS_ADMIN", 1)
	wants = append(wants, grantWant{ns, "Deployment", "scaler", "SYS_ADMIN"})
	scale := func(replicas int32) {
		t.Helper()
		if _, err := clientset.AppsV1().Deployments(ns).Patch(ctx, "scaler", types.MergePatchType,
			[]byte(fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas)), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	scale(0)
	waitReport(t, dyn, ns, "deployment-scaler", 15*time.Second, withPods(policy, 0, adminFinding))
	scale(1)
	waitReport(t, dyn, ns, "deployment-scaler", 15*time.Second, withPods(policy, 1, adminFinding))

	// b. Two runs of a CronJob (Jobs made from it, one after the other): one report
	// cronjob-nightly, SYS_PTRACE counted once.
	cron, err := clientset.BatchV1().CronJobs(ns).Create(ctx, &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "nightly"},
		Spec: batchv1.CronJobSpec{
			Schedule: "0 3 * * *",
			Suspend:  ptr(true), // only the runs made here
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
				Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{withAdd(lockedDown, "SYS_PTRACE")}},
			}}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	run := func(name string) {
		t.Helper()
		if _, err := clientset.BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: name, OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "batch/v1", Kind: "CronJob", Name: cron.Name, UID: cron.UID, Controller: ptr(true),
			}}},
			Spec: cron.Spec.JobTemplate.Spec,
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	const ptraceFinding = policy + "/dangerous-capability/app/SYS_PTRACE"
	run("nightly-1")
	waitReport(t, dyn, ns, "cronjob-nightly", reportDeadline+5*time.Second, withPods(policy, 1, ptraceFinding))
	waitGrant(ns, "CronJob", "nightly", "SYS_PTRACE", 1)
	wants = append(wants, grantWant{ns, "CronJob", "nightly", "SYS_PTRACE"})
	if err := clientset.BatchV1().Jobs(ns).Delete(ctx, "nightly-1", metav1.DeleteOptions{PropagationPolicy: ptr(metav1.DeletePropagationBackground)}); err != nil {
		t.Fatal(err)
	}
	waitReport(t, dyn, ns, "cronjob-nightly", 30*time.Second, withPods(policy, 0, ptraceFinding))
	run("nightly-2")
	waitReport(t, dyn, ns, "cronjob-nightly", 15*time.Second, withPods(policy, 1, ptraceFinding))

	// c. A bare Pod deleted right after its creation, inside the coalescing window: still
	// evaluated, counted once, one Event naming it.
	flash := podWith("flash", withAdd(lockedDown, "SYS_MODULE"))
	if _, err := clientset.CoreV1().Pods(ns).Create(ctx, flash, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := clientset.CoreV1().Pods(ns).Delete(ctx, "flash", metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}); err != nil {
		t.Fatal(err)
	}
	waitGrant(ns, "Pod", "flash", "SYS_MODULE", 1)
	wants = append(wants, grantWant{ns, "Pod", "flash", "SYS_MODULE"})

	// d. A namespace that stops matching (relabelled) and matches again: the report stays, with
	// no findings and the note, and nothing is counted or evented again.
	if _, err := clientset.CoreV1().Pods(selNs).Create(ctx, podWith("labelled", withAdd(lockedDown, "SYS_ADMIN")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	memory := waitReport(t, dyn, selNs, "pod-labelled", reportDeadline+5*time.Second, withPods(policy, 1, adminFinding)).GetAnnotations()[grantsAnnotation]
	if memory == "" { // a compact encoding; what matters is that it is kept
		t.Errorf("report pod-labelled: %s missing for a SYS_ADMIN grant", grantsAnnotation)
	}
	waitGrant(selNs, "Pod", "labelled", "SYS_ADMIN", 1)
	wants = append(wants, grantWant{selNs, "Pod", "labelled", "SYS_ADMIN"})
	relabel := func(value string) {
		t.Helper()
		if _, err := clientset.CoreV1().Namespaces().Patch(ctx, selNs, types.MergePatchType,
			[]byte(fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, label, value)), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	relabel("no")
	unmatched := waitReport(t, dyn, selNs, "pod-labelled", 15*time.Second, unmatchedReport)
	if got := unmatched.GetAnnotations()[grantsAnnotation]; got != memory {
		t.Errorf("report pod-labelled, no longer matched: %s %q, want it kept as %q", grantsAnnotation, got, memory)
	}
	relabel("yes")
	back := waitReport(t, dyn, selNs, "pod-labelled", 15*time.Second, withPods(policy, 1, adminFinding))
	if note, ok, _ := unstructured.NestedString(back.Object, "note"); ok {
		t.Errorf("report pod-labelled, matched again, still has the note %q", note)
	}

	settle(t, ctrl)
	wantAnnouncedOnce(t, ctrl, wants)
	// The report of the Pod that lived for a moment goes with it (its owner is gone).
	waitReportGone(t, dyn, ns, "pod-flash", 30*time.Second)

	// e. Hostile Pods. (i) 300 capability entries, junk around SYS_ADMIN: still audited.
	adds := junkCapabilities(299)
	adds = append(adds[:150], append([]corev1.Capability{"SYS_ADMIN"}, adds[150:]...)...)
	if _, err := clientset.CoreV1().Pods(ns).Create(ctx, podWith("hoarder", withAdd(lockedDown, adds...)), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReport(t, dyn, ns, "pod-hoarder", reportDeadline+5*time.Second, withPods(policy, 1, adminFinding))
	waitGrant(ns, "Pod", "hoarder", "SYS_ADMIN", 2) // the Deployment's and this one
	wants = append(wants, grantWant{ns, "Pod", "hoarder", "SYS_ADMIN"})

	// (ii) Pod names of 253 characters whose report name ("pod-" + name, cut, "-<hash>") would
	// end its cut in '.' or '-': a valid report still exists, and nothing is given up.
	longNames := []string{longPodName("dot", "."), longPodName("dash", "--")}
	for _, name := range longNames {
		if _, err := clientset.CoreV1().Pods(ns).Create(ctx, podWith(name, lockedDown), metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating Pod %s (%d characters): %v", name, len(name), err)
		}
	}
	for _, name := range longNames {
		eventually(t, reportDeadline+5*time.Second, "a report for Pod "+name, func(ctx context.Context) (bool, string, error) {
			list, err := dyn.Resource(reportsGVR).Namespace(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, "", err
			}
			var names []string
			for _, r := range list.Items {
				if w, _, _ := unstructured.NestedString(r.Object, "workload", "name"); w == name {
					return true, "", nil
				}
				names = append(names, r.GetName())
			}
			gaveUp := metricSum(scrape(t, ctrl), "capwatch_reconciles_total", map[string]string{"outcome": "gave_up"})
			return false, fmt.Sprintf("reports %v; reconciles given up: %v", names, gaveUp), nil
		})
	}
	if g := metricSum(scrape(t, ctrl), "capwatch_reconciles_total", map[string]string{"outcome": "gave_up"}); g != 0 {
		t.Errorf("capwatch_reconciles_total{outcome=\"gave_up\"} = %v, want 0", g)
	}

	// f. Policy status under Pod churn: an invalid policy is Ready=False within 10 s, and
	// Ready=True within 10 s of its fix, however busy the queue.
	churnCtx, stopChurn := context.WithCancel(ctx)
	var churn sync.WaitGroup
	var churnErr error
	churned := 0
	churn.Add(1)
	go func() {
		defer churn.Done()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		remove := func(name string) {
			if err := clientset.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}); err != nil && churnErr == nil {
				churnErr = fmt.Errorf("deleting Pod %s: %w", name, err)
			}
		}
		prev := ""
		for i := 0; ; i++ {
			name := fmt.Sprintf("churn-%d", i)
			if _, err := clientset.CoreV1().Pods(ns).Create(ctx, podWith(name, lockedDown), metav1.CreateOptions{}); err != nil {
				if churnErr == nil {
					churnErr = fmt.Errorf("creating Pod %s: %w", name, err)
				}
				name = ""
			}
			if prev != "" {
				remove(prev)
			}
			prev, churned = name, i+1
			select {
			case <-churnCtx.Done():
				if prev != "" {
					remove(prev)
				}
				return
			case <-tick.C:
			}
		}
	}()
	endChurn := func() {
		stopChurn()
		churn.Wait()
	}
	defer endChurn()
	const bad = "e2e-exactly-once-invalid"
	badSpec := defaultPolicySpec(ns)
	badSpec["allowedCapabilities"] = []any{"NET_BIND"}
	createPolicy(t, dyn, bad, badSpec)
	ready := func(status string) {
		t.Helper()
		eventually(t, 10*time.Second, "CapabilityPolicy "+bad+" Ready="+status+" under Pod churn", func(ctx context.Context) (bool, string, error) {
			p, err := dyn.Resource(policiesGVR).Get(ctx, bad, metav1.GetOptions{})
			if err != nil {
				return false, "", err
			}
			r := readyCondition(p)
			msg, _ := r["message"].(string)
			return r["status"] == status && (status == "True" || strings.Contains(msg, "NET_BIND")), fmt.Sprint(r), nil
		})
	}
	ready("False")
	updatePolicySpec(t, dyn, bad, func(spec map[string]any) {
		spec["allowedCapabilities"] = []any{"NET_BIND_SERVICE"}
	})
	ready("True")
	endChurn()
	if churnErr != nil {
		t.Errorf("churn: %v", churnErr)
	}
	t.Logf("churn: %d Pods created and deleted", churned)
	eventually(t, 30*time.Second, "the churn Pods' reports to be garbage-collected", func(ctx context.Context) (bool, string, error) {
		names, err := reportNames(ctx, dyn, ns)
		var left []string
		for _, n := range names {
			if strings.HasPrefix(n, "pod-churn-") {
				left = append(left, n)
			}
		}
		return err == nil && len(left) == 0, fmt.Sprint(left), err
	})

	// g. Everything once more: still counted once; a restart then writes, counts and events
	// nothing.
	settle(t, ctrl)
	wantAnnouncedOnce(t, ctrl, wants)
	ctrl.stop(t)
	versions := reportVersions(t, dyn, ns, selNs)
	eventsBefore := countGrantEvents(t, ns, selNs)
	ctrl = startController(t)
	settle(t, ctrl)
	restartChecks(t, dyn, ctrl, versions, eventsBefore, ns, selNs)
}

// restartChecks: after a restart over an unchanged cluster, no report write, no count, the
// same Events and resourceVersions.
func restartChecks(t *testing.T, dyn dynamic.Interface, ctrl *controllerProcess, versions map[string]string, events int, namespaces ...string) {
	t.Helper()
	body := scrape(t, ctrl)
	var errs []string
	if w := metricSum(body, "capwatch_report_writes_total", nil); w != 0 {
		errs = append(errs, fmt.Sprintf("capwatch_report_writes_total = %v, want 0\n%s", w, grepLines(body, "capwatch_report_writes_total")))
	}
	if g := metricSum(body, "capwatch_dangerous_grants_total", nil); g != 0 {
		errs = append(errs, fmt.Sprintf("capwatch_dangerous_grants_total = %v, want 0\n%s", g, grepLines(body, "capwatch_dangerous_grants_total")))
	}
	if after := reportVersions(t, dyn, namespaces...); !reflect.DeepEqual(after, versions) {
		errs = append(errs, fmt.Sprintf("reports rewritten: resourceVersions before %v, after %v", versions, after))
	}
	if after := countGrantEvents(t, namespaces...); after != events {
		errs = append(errs, fmt.Sprintf("%d DangerousCapabilityGranted events before, %d after", events, after))
	}
	if len(errs) > 0 {
		t.Errorf("restart over an unchanged cluster:\n%s", strings.Join(errs, "\n"))
	}
}
