package e2e

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

// reportDeadline is how soon after a workload's creation its report must exist (issue 5).
const reportDeadline = 5 * time.Second

// Containers used by the workloads below.
var (
	lockedDown = corev1.Container{Name: "app", Image: "app:1", SecurityContext: &corev1.SecurityContext{
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		RunAsNonRoot:             ptr(true),
		RunAsUser:                ptr(int64(1000)),
		AllowPrivilegeEscalation: ptr(false),
	}}
)

func withAdd(c corev1.Container, caps ...corev1.Capability) corev1.Container {
	sc := *c.SecurityContext
	sc.Capabilities = &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: caps}
	c.SecurityContext = &sc
	return c
}

func deployment(name string, replicas int32, c corev1.Container) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{c}},
			},
		},
	}
}

func podWith(name string, c corev1.Container) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{Containers: []corev1.Container{c}}}
}

// timeToReport creates a workload with create and returns how long its report took to appear,
// failing the test past reportDeadline (the report is still awaited a while longer to tell a
// slow controller from a missing report).
func timeToReport(t *testing.T, dyn dynamic.Interface, ns, report string, create func() error) (time.Duration, *unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	if err := create(); err != nil {
		t.Fatalf("creating the workload of %s: %v", report, err)
	}
	for {
		r, err := getReport(ctx, dyn, ns, report)
		if err == nil && r != nil {
			d := time.Since(start)
			if d > reportDeadline {
				t.Errorf("report %s/%s appeared %s after its workload's creation, want within %s", ns, report, d.Round(time.Millisecond), reportDeadline)
			}
			return d, r
		}
		if time.Since(start) > 60*time.Second {
			names, _ := reportNames(ctx, dyn, ns)
			t.Fatalf("report %s/%s missing 60 s after its workload's creation (want within %s); reports: %v", ns, report, reportDeadline, names)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func wantFindings(t *testing.T, r *unstructured.Unstructured, policy string, want ...string) {
	t.Helper()
	got := reportFindings(r, policy)
	sort.Strings(want)
	if len(want) == 0 {
		want = nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("report %s/%s: findings of policy %s\n got %v\nwant %v", r.GetNamespace(), r.GetName(), policy, got, want)
	}
}

func wantWorkload(t *testing.T, r *unstructured.Unstructured, kind, name string, uid types.UID) {
	t.Helper()
	w, _, _ := unstructured.NestedMap(r.Object, "workload")
	if w["kind"] != kind || w["name"] != name || w["uid"] != string(uid) {
		t.Errorf("report %s: workload %v, want %s %s (uid %s)", r.GetName(), w, kind, name, uid)
	}
	owners := r.GetOwnerReferences()
	if len(owners) != 1 || owners[0].Kind != kind || owners[0].Name != name || owners[0].UID != uid {
		t.Errorf("report %s: ownerReferences %+v, want the %s %s (uid %s)", r.GetName(), owners, kind, name, uid)
	}
}

// TestControllerLifecycle follows one controller through what a user does and sees: reports for
// every kind of workload within 5 s, a new dangerous grant counted once with one Event,
// deletions through the garbage collector, policy edits, an invalid policy beside a valid one,
// capwatch's own clean-up of reports it finds stale when it starts, and a restart that writes
// nothing.
func TestControllerLifecycle(t *testing.T) {
	ctx := context.Background()
	dyn := dynamicClient(t)
	ns := newNamespace(t, "ctrl-life", nil)
	other := newNamespace(t, "ctrl-life-other", nil)
	const policy = "e2e-lifecycle"
	createPolicy(t, dyn, policy, defaultPolicySpec(ns, other))
	ctrl := startController(t)

	// 1. A report per workload, within 5 s, with the findings the policy gives.
	var latencies []time.Duration
	var deploy *appsv1.Deployment
	d, r := timeToReport(t, dyn, ns, "deployment-admin", func() (err error) {
		deploy, err = clientset.AppsV1().Deployments(ns).Create(ctx, deployment("admin", 2, withAdd(lockedDown, "SYS_ADMIN")), metav1.CreateOptions{})
		return err
	})
	latencies = append(latencies, d)
	wantWorkload(t, r, "Deployment", "admin", deploy.UID)
	wantFindings(t, r, policy, policy+"/dangerous-capability/app/SYS_ADMIN/critical/fail")

	var pod *corev1.Pod
	d, r = timeToReport(t, dyn, ns, "pod-debug", func() (err error) {
		pod, err = clientset.CoreV1().Pods(ns).Create(ctx, podWith("debug", corev1.Container{Name: "shell", Image: "busybox"}), metav1.CreateOptions{})
		return err
	})
	latencies = append(latencies, d)
	wantWorkload(t, r, "Pod", "debug", pod.UID)
	// Nothing in its securityContext: the runtime's default set (with NET_RAW, DAC_OVERRIDE) is
	// kept, it may run as root and escalate.
	got := strings.Join(reportFindings(r, policy), " ")
	for _, rule := range []string{"drop-all-missing", "runs-as-root", "privilege-escalation", "dangerous-capability/shell/DAC_OVERRIDE"} {
		if !strings.Contains(got, rule) {
			t.Errorf("report pod-debug: no %s finding in %s", rule, got)
		}
	}

	// A Job made from a CronJob (what `kubectl create job --from=cronjob/...` does) is
	// attributed to the CronJob: Pod → Job → CronJob.
	cron, err := clientset.BatchV1().CronJobs(ns).Create(ctx, &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "backup"},
		Spec: batchv1.CronJobSpec{
			Schedule: "0 3 * * *",
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
				Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{lockedDown}},
			}}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d, r = timeToReport(t, dyn, ns, "cronjob-backup", func() error {
		_, err := clientset.BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: "backup-manual", OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "batch/v1", Kind: "CronJob", Name: cron.Name, UID: cron.UID, Controller: ptr(true),
			}}},
			Spec: cron.Spec.JobTemplate.Spec,
		}, metav1.CreateOptions{})
		return err
	})
	latencies = append(latencies, d)
	wantWorkload(t, r, "CronJob", "backup", cron.UID)
	wantFindings(t, r, policy)
	if c, _, _ := unstructured.NestedBool(r.Object, "summary", "compliant"); !c {
		t.Errorf("report cronjob-backup: summary.compliant false for a locked-down container: %v", r.Object["summary"])
	}

	var sts *appsv1.StatefulSet
	d, r = timeToReport(t, dyn, ns, "statefulset-db", func() (err error) {
		labels := map[string]string{"app": "db"}
		sts, err = clientset.AppsV1().StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: "db"},
			Spec: appsv1.StatefulSetSpec{
				Replicas: ptr(int32(1)),
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{withAdd(lockedDown, "NET_RAW")}},
				},
			},
		}, metav1.CreateOptions{})
		return err
	})
	latencies = append(latencies, d)
	wantWorkload(t, r, "StatefulSet", "db", sts.UID)
	wantFindings(t, r, policy, policy+"/capability-not-allowed/app/NET_RAW/"+severityOf(t, r, "NET_RAW")+"/fail")
	t.Logf("time from creation to report: Deployment %s, Pod %s, CronJob's Job %s, StatefulSet %s",
		latencies[0].Round(time.Millisecond), latencies[1].Round(time.Millisecond),
		latencies[2].Round(time.Millisecond), latencies[3].Round(time.Millisecond))

	// 2. Adding SYS_ADMIN to a Deployment: the counter rises by exactly 1, one Event.
	web, err := clientset.AppsV1().Deployments(ns).Create(ctx, deployment("web", 2, withAdd(lockedDown, "NET_BIND_SERVICE")), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitReport(t, dyn, ns, "deployment-web", reportDeadline+5*time.Second, nil)
	grants := func() float64 {
		return metricSum(scrape(t, ctrl), "capwatch_dangerous_grants_total", map[string]string{"namespace": ns, "capability": "SYS_ADMIN"})
	}
	before := grants()
	if _, n, err := grantEvents(ctx, ns, "Deployment", "web"); err != nil || n != 0 {
		t.Fatalf("before the change: %d DangerousCapabilityGranted events on deployment web (%v), want 0", n, err)
	}
	if _, err := clientset.AppsV1().Deployments(ns).Patch(ctx, "web", types.StrategicMergePatchType,
		[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"app","securityContext":{"capabilities":{"add":["NET_BIND_SERVICE","SYS_ADMIN"]}}}]}}}}`),
		metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReport(t, dyn, ns, "deployment-web", reportDeadline+5*time.Second, func(r *unstructured.Unstructured) (bool, string) {
		f := strings.Join(reportFindings(r, policy), " ")
		return strings.Contains(f, "dangerous-capability/app/SYS_ADMIN"), f
	})
	// Let the rollout finish: the new ReplicaSet's Pods replace the old ones, which must not
	// count again.
	eventually(t, time.Minute, "deployment web's rollout", func(ctx context.Context) (bool, string, error) {
		d, err := clientset.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		pods, err := clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, "", err
		}
		return d.Status.ObservedGeneration == d.Generation && d.Status.UpdatedReplicas == 2 && len(pods.Items) == 2,
			fmt.Sprintf("updated %d, pods %d", d.Status.UpdatedReplicas, len(pods.Items)), nil
	})
	eventually(t, 10*time.Second, "one DangerousCapabilityGranted Event on deployment web", func(ctx context.Context) (bool, string, error) {
		_, n, err := grantEvents(ctx, ns, "Deployment", "web")
		return n >= 1, fmt.Sprintf("%d events", n), err
	})
	settle(t, ctrl)
	if after := grants(); after-before != 1 {
		t.Errorf("capwatch_dangerous_grants_total{namespace=%q,capability=\"SYS_ADMIN\"} went from %v to %v, want +1", ns, before, after)
	}
	events, n, err := grantEvents(ctx, ns, "Deployment", "web")
	if err != nil || n != 1 {
		t.Errorf("%d DangerousCapabilityGranted events on deployment web (%v), want exactly 1: %+v", n, err, events)
	} else {
		e := events[0]
		if e.Type != corev1.EventTypeWarning || e.InvolvedObject.UID != web.UID || !strings.Contains(e.Message, "SYS_ADMIN") {
			t.Errorf("event %s: type %s, involvedObject %+v, message %q; want a Warning on deployment web naming SYS_ADMIN", e.Name, e.Type, e.InvolvedObject, e.Message)
		}
	}

	// 3a. Deleting a workload: the garbage collector follows the report's ownerReference.
	if err := clientset.AppsV1().Deployments(ns).Delete(ctx, "admin", metav1.DeleteOptions{PropagationPolicy: ptr(metav1.DeletePropagationBackground)}); err != nil {
		t.Fatal(err)
	}
	if err := clientset.CoreV1().Pods(ns).Delete(ctx, "debug", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReportGone(t, dyn, ns, "deployment-admin", time.Minute)
	waitReportGone(t, dyn, ns, "pod-debug", time.Minute)

	// 4a. Editing the policy re-evaluates: allowing NET_RAW clears the StatefulSet's finding.
	updatePolicySpec(t, dyn, policy, func(spec map[string]any) {
		spec["allowedCapabilities"] = []any{"NET_BIND_SERVICE", "NET_RAW"}
	})
	waitReport(t, dyn, ns, "statefulset-db", 10*time.Second, func(r *unstructured.Unstructured) (bool, string) {
		f := reportFindings(r, policy)
		return len(f) == 0, fmt.Sprint(f)
	})

	// 4b. An invalid policy: Ready=False naming the field; the valid policy is still served.
	const bad = "e2e-lifecycle-invalid"
	badSpec := defaultPolicySpec(ns)
	badSpec["allowedCapabilities"] = []any{"NET_BIND"}
	createPolicy(t, dyn, bad, badSpec)
	eventually(t, 15*time.Second, "CapabilityPolicy "+bad+" Ready=False", func(ctx context.Context) (bool, string, error) {
		p, err := dyn.Resource(policiesGVR).Get(ctx, bad, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		ready := readyCondition(p)
		msg, _ := ready["message"].(string)
		return ready["status"] == "False" && strings.Contains(msg, "allowedCapabilities") && strings.Contains(msg, "NET_BIND"),
			fmt.Sprint(ready), nil
	})
	eventually(t, 15*time.Second, "CapabilityPolicy "+policy+" Ready=True", func(ctx context.Context) (bool, string, error) {
		p, err := dyn.Resource(policiesGVR).Get(ctx, policy, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		ready := readyCondition(p)
		return ready["status"] == "True", fmt.Sprint(ready), nil
	})
	_, r = timeToReport(t, dyn, ns, "pod-after-invalid", func() error {
		_, err := clientset.CoreV1().Pods(ns).Create(ctx, podWith("after-invalid", withAdd(lockedDown, "SYS_PTRACE")), metav1.CreateOptions{})
		return err
	})
	wantFindings(t, r, policy, policy+"/dangerous-capability/app/SYS_PTRACE/critical/fail")
	wantFindings(t, r, bad)

	// The other namespace has a report too, for the clean-up below.
	if _, err := clientset.CoreV1().Pods(other).Create(ctx, podWith("tools", withAdd(lockedDown, "NET_ADMIN")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	toolsGrants := waitReport(t, dyn, other, "pod-tools", reportDeadline+5*time.Second, nil).GetAnnotations()[grantsAnnotation]
	if toolsGrants == "" { // a compact encoding; what matters is that it is kept
		t.Errorf("report pod-tools: %s missing for a NET_ADMIN grant", grantsAnnotation)
	}

	// 5. A restart over an unchanged cluster writes nothing and counts nothing.
	settle(t, ctrl)
	ctrl.stop(t)
	versions := reportVersions(t, dyn, ns, other)
	eventsBefore := countGrantEvents(t, ns, other)
	ctrl = startController(t)
	settle(t, ctrl)
	body := scrape(t, ctrl)
	var restartErrs []string
	if w := metricSum(body, "capwatch_report_writes_total", nil); w != 0 {
		restartErrs = append(restartErrs, fmt.Sprintf("capwatch_report_writes_total = %v, want 0\n%s", w, grepLines(body, "capwatch_report_writes_total")))
	}
	if g := metricSum(body, "capwatch_dangerous_grants_total", nil); g != 0 {
		restartErrs = append(restartErrs, fmt.Sprintf("capwatch_dangerous_grants_total = %v, want 0\n%s", g, grepLines(body, "capwatch_dangerous_grants_total")))
	}
	if after := reportVersions(t, dyn, ns, other); !reflect.DeepEqual(after, versions) {
		restartErrs = append(restartErrs, fmt.Sprintf("reports rewritten: resourceVersions before %v, after %v", versions, after))
	}
	if after := countGrantEvents(t, ns, other); after != eventsBefore {
		restartErrs = append(restartErrs, fmt.Sprintf("%d DangerousCapabilityGranted events before, %d after", eventsBefore, after))
	}
	if len(restartErrs) > 0 {
		t.Errorf("restart over an unchanged cluster:\n%s", strings.Join(restartErrs, "\n"))
	}

	// 3b. What changed while capwatch was not running, seen at its start: a namespace the
	// policy no longer matches (its report stays, with no findings and a note, and keeps the
	// grant memory), a Deployment deleted with --cascade=orphan (the garbage collector strips
	// the ownerReferences from its ReplicaSet and its report instead of deleting them, so only
	// capwatch can know the report is stale) and a report (with capwatch's label) for a
	// workload that does not exist: those two are deleted.
	ctrl.stop(t)
	if err := clientset.AppsV1().Deployments(ns).Delete(ctx, "web", metav1.DeleteOptions{PropagationPolicy: ptr(metav1.DeletePropagationOrphan)}); err != nil {
		t.Fatal(err)
	}
	waitReport(t, dyn, ns, "deployment-web", time.Minute, func(r *unstructured.Unstructured) (bool, string) {
		return len(r.GetOwnerReferences()) == 0, fmt.Sprintf("ownerReferences %v", r.GetOwnerReferences())
	})
	rsList, err := clientset.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	var orphanRS string
	for _, rs := range rsList.Items {
		if rs.Spec.Replicas != nil && *rs.Spec.Replicas > 0 {
			orphanRS = rs.Name
		}
	}
	if orphanRS == "" {
		t.Fatalf("no ReplicaSet with replicas left behind by deployment web: %d ReplicaSets", len(rsList.Items))
	}
	updatePolicySpec(t, dyn, policy, func(spec map[string]any) {
		spec["match"] = map[string]any{"namespaces": []any{ns, other}, "excludeNamespaces": []any{other}}
	})
	ghost := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "capwatch.io/v1alpha1",
		"kind":       "CapabilityReport",
		"metadata": map[string]any{
			"name":      "deployment-ghost",
			"namespace": ns,
			"labels":    map[string]any{"app.kubernetes.io/managed-by": "capwatch"},
		},
		"workload": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "ghost", "uid": "00000000-0000-0000-0000-000000000001", "pods": int64(1)},
		"summary":  map[string]any{"containers": int64(1), "violations": int64(0), "critical": int64(0), "high": int64(0), "medium": int64(0), "low": int64(0), "exempted": int64(0), "compliant": true},
	}}
	if _, err := dyn.Resource(reportsGVR).Namespace(ns).Create(ctx, ghost, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating a report for a workload that does not exist: %v", err)
	}
	startController(t)
	tools := waitReport(t, dyn, other, "pod-tools", 15*time.Second, unmatchedReport)
	if got := tools.GetAnnotations()[grantsAnnotation]; got != toolsGrants {
		t.Errorf("report pod-tools, no longer matched: %s %q, want it kept as %q", grantsAnnotation, got, toolsGrants)
	}
	waitReportGone(t, dyn, ns, "deployment-ghost", 15*time.Second)
	waitReportGone(t, dyn, ns, "deployment-web", 15*time.Second)
	// The orphaned ReplicaSet is now the Pods' top owner, with a report of its own.
	waitReport(t, dyn, ns, "replicaset-"+orphanRS, 15*time.Second, func(r *unstructured.Unstructured) (bool, string) {
		f := strings.Join(reportFindings(r, policy), " ")
		return strings.Contains(f, "dangerous-capability/app/SYS_ADMIN"), f
	})
	// What still matches stays.
	waitReport(t, dyn, ns, "statefulset-db", 15*time.Second, nil)
}

// grantsAnnotation is the report's memory of the dangerous grants already announced.
const grantsAnnotation = "capwatch.io/dangerous-grants"

// unmatchedNote is what a report says when no CapabilityPolicy matches its workload any more.
const unmatchedNote = "no CapabilityPolicy matches"

// unmatchedReport is waitReport's condition for a report whose workload no policy matches now:
// no findings, compliant, and the note.
func unmatchedReport(r *unstructured.Unstructured) (bool, string) {
	note, _, _ := unstructured.NestedString(r.Object, "note")
	findings, _, _ := unstructured.NestedSlice(r.Object, "findings")
	compliant, _, _ := unstructured.NestedBool(r.Object, "summary", "compliant")
	return strings.Contains(note, unmatchedNote) && len(findings) == 0 && compliant,
		fmt.Sprintf("note %q, %d findings, summary %v", note, len(findings), r.Object["summary"])
}

// severityOf returns the severity the report's finding about capability has (the catalog
// decides; the test does not hard-code it).
func severityOf(t *testing.T, r *unstructured.Unstructured, capability string) string {
	items, _, _ := unstructured.NestedSlice(r.Object, "findings")
	for _, i := range items {
		m, _ := i.(map[string]any)
		if m["capability"] == capability {
			s, _ := m["severity"].(string)
			return s
		}
	}
	return "?"
}

func readyCondition(p *unstructured.Unstructured) map[string]any {
	conds, _, _ := unstructured.NestedSlice(p.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Ready" {
			return m
		}
	}
	return nil
}

func reportVersions(t *testing.T, dyn dynamic.Interface, namespaces ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, ns := range namespaces {
		list, err := dyn.Resource(reportsGVR).Namespace(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range list.Items {
			out[ns+"/"+r.GetName()] = r.GetResourceVersion()
		}
	}
	return out
}

func countGrantEvents(t *testing.T, namespaces ...string) int {
	t.Helper()
	n := 0
	for _, ns := range namespaces {
		list, err := clientset.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "reason=DangerousCapabilityGranted"})
		if err != nil {
			t.Fatal(err)
		}
		n += len(list.Items)
	}
	return n
}

func grepLines(body, prefix string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// settle waits until the controller has been idle for quietFor: no report write, no POST or
// DELETE (Events, reports) and no watch event that changed an object between two scrapes that
// far apart. The controller coalesces a workload's events for 1 s before it reconciles, so 3 s
// of quiet means the queue has drained. (Lease renewals and bookmarks go on: they are ignored.)
func settle(t *testing.T, p *controllerProcess) {
	t.Helper()
	const quietFor = 3 * time.Second
	activity := func() string {
		body := scrape(t, p)
		return fmt.Sprint(metricSum(body, "capwatch_report_writes_total", nil),
			metricSum(body, "capwatch_api_requests_total", map[string]string{"verb": "POST"}),
			metricSum(body, "capwatch_api_requests_total", map[string]string{"verb": "DELETE"}),
			metricSum(body, "capwatch_watch_events_total", map[string]string{"type": "applied"}))
	}
	deadline := time.Now().Add(time.Minute)
	last := activity()
	for {
		time.Sleep(quietFor)
		now := activity()
		if now == last {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the controller did not settle within a minute (writes, API requests, watch events: %s → %s)", last, now)
		}
		last = now
	}
}
