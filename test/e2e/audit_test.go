package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestAuditLivePods creates workloads on the real API server, lets kube-controller-manager
// turn them into Pods, and audits `kubectl get pods -A -o json` with capwatch's default policy.
func TestAuditLivePods(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "audit", nil)

	// Deployment "web": its container adds SYS_ADMIN and drops nothing.
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "web-app",
					Image: "nginx:1.27",
					SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{
						Add: []corev1.Capability{"SYS_ADMIN"},
					}},
				}}},
			},
		},
	}
	if _, err := clientset.AppsV1().Deployments(ns).Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Job "migrate": a privileged container.
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "migrate"},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "migrate", Image: "migrate:1",
				SecurityContext: &corev1.SecurityContext{Privileged: ptr(true)},
			}},
		}}},
	}
	if _, err := clientset.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Bare Pods.
	pods := []*corev1.Pod{
		// Everything the default policy asks for: drop ALL, non-root, no escalation.
		barePod("locked", &corev1.SecurityContext{
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			RunAsNonRoot:             ptr(true),
			RunAsUser:                ptr(int64(1000)),
			AllowPrivilegeEscalation: ptr(false),
		}),
		// A lower-case, prefixed name, and nothing dropped.
		barePod("lowercase", &corev1.SecurityContext{
			Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"cap_net_raw"}},
		}),
		// A name that is no capability at all.
		barePod("typo", &corev1.SecurityContext{
			Capabilities: &corev1.Capabilities{
				Add:  []corev1.Capability{"NET_BIND"},
				Drop: []corev1.Capability{"ALL"},
			},
			RunAsNonRoot:             ptr(true),
			AllowPrivilegeEscalation: ptr(false),
		}),
	}
	for _, p := range pods {
		if _, err := clientset.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating pod %s: %v", p.Name, err)
		}
	}

	// kube-controller-manager: Deployment -> ReplicaSet -> 2 Pods, Job -> 1 Pod.
	eventually(t, 2*time.Minute, "the Deployment's and the Job's Pods", func(ctx context.Context) (bool, string, error) {
		list, err := clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, "", err
		}
		web, migrate := 0, 0
		for _, p := range list.Items {
			if len(p.OwnerReferences) == 0 {
				continue
			}
			switch p.OwnerReferences[0].Kind {
			case "ReplicaSet":
				web++
			case "Job":
				migrate++
			}
		}
		return web == 2 && migrate == 1, fmt.Sprintf("%d pods of web, %d of migrate", web, migrate), nil
	})

	t.Run("pods only", func(t *testing.T) {
		reports, code := auditJSON(t, kubectl(t, "get", "pods", "-A", "-o", "json"))
		if code != 1 {
			t.Errorf("capwatch audit exited %d, want 1 (findings present)", code)
		}
		byContainer := reportsByContainer(t, reports, ns)

		web := byContainer["web-app"]
		if web != nil {
			if !strings.HasPrefix(web.Metadata.Name, "deployment-web") && !strings.HasPrefix(web.Metadata.Name, "replicaset-web-") {
				t.Errorf("report for the web Pods is named %q, want deployment-web or replicaset-web-<hash>", web.Metadata.Name)
			}
			if web.Workload.Pods != 2 {
				t.Errorf("report %s counts %d pods, want 2 (both replicas in one report)", web.Metadata.Name, web.Workload.Pods)
			}
			wantFinding(t, web, finding{Rule: "dangerous-capability", Container: "web-app", Capability: "SYS_ADMIN"})
			wantGranted(t, web, "web-app", "SYS_ADMIN", "NET_RAW", "DAC_OVERRIDE", "CHOWN")
			if c := web.container("web-app"); c != nil && !slices.Contains(c.Added, "SYS_ADMIN") {
				t.Errorf("report %s: container web-app added %v, want SYS_ADMIN among them", web.Metadata.Name, c.Added)
			}
		}

		if m := byContainer["migrate"]; m != nil {
			wantFinding(t, m, finding{Rule: "privileged", Container: "migrate"})
		}

		if locked := byContainer["locked"]; locked != nil {
			if locked.Metadata.Name != "pod-locked" {
				t.Errorf("report for bare Pod locked is named %q, want pod-locked", locked.Metadata.Name)
			}
			if f := locked.failures(); len(f) > 0 || !locked.Summary.Compliant || locked.Summary.Violations != 0 {
				t.Errorf("pod-locked should be compliant with the default policy, got:\n%s", locked)
			}
			if c := locked.container("locked"); c != nil {
				if len(c.Granted) != 0 || !slices.Equal(c.Dropped, []string{"ALL"}) {
					t.Errorf("pod-locked container locked: granted %v dropped %v, want none granted and [ALL] dropped", c.Granted, c.Dropped)
				}
			}
		}

		if lc := byContainer["lowercase"]; lc != nil {
			wantFinding(t, lc, finding{Rule: "drop-all-missing", Container: "lowercase"})
			wantGranted(t, lc, "lowercase", "NET_RAW", "DAC_OVERRIDE")
		}

		if typo := byContainer["typo"]; typo != nil {
			wantFinding(t, typo, finding{Rule: "unknown-capability", Container: "typo", Capability: "NET_BIND"})
		}
	})

	t.Run("pods with their owners", func(t *testing.T) {
		input := kubectl(t, "get", "deployments,replicasets,jobs,pods", "-n", ns, "-o", "json")
		reports, _ := auditJSON(t, input)
		byName := map[string]*capabilityReport{}
		for i := range reports.Items {
			r := &reports.Items[i]
			if r.Metadata.Namespace != ns {
				continue
			}
			byName[r.Metadata.Name] = r
			if strings.HasPrefix(r.Metadata.Name, "replicaset-web-") || strings.HasPrefix(r.Metadata.Name, "pod-web-") ||
				strings.HasPrefix(r.Metadata.Name, "pod-migrate-") {
				t.Errorf("report %s: Pods should be attributed to their top owner when it is in the input", r.Metadata.Name)
			}
		}
		if web := byName["deployment-web"]; web == nil {
			t.Errorf("no report deployment-web; reports in %s: %v", ns, keys(byName))
		} else {
			if web.Workload.Kind != "Deployment" || web.Workload.Name != "web" {
				t.Errorf("deployment-web names workload %s %s", web.Workload.Kind, web.Workload.Name)
			}
			wantFinding(t, web, finding{Rule: "dangerous-capability", Container: "web-app", Capability: "SYS_ADMIN"})
		}
		if m := byName["job-migrate"]; m == nil {
			t.Errorf("no report job-migrate; reports in %s: %v", ns, keys(byName))
		} else {
			wantFinding(t, m, finding{Rule: "privileged", Container: "migrate"})
		}
		if byName["pod-locked"] == nil {
			t.Errorf("no report pod-locked; reports in %s: %v", ns, keys(byName))
		}
	})
}

func barePod(name string, sc *corev1.SecurityContext) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: name, Image: "registry.example/" + name + ":1", SecurityContext: sc,
		}}},
	}
}

// reportsByContainer indexes the namespace's reports by container name (the test gives every
// workload its own container names) and checks that each container is in exactly one report.
func reportsByContainer(t *testing.T, reports *reportList, ns string) map[string]*capabilityReport {
	t.Helper()
	out := map[string]*capabilityReport{}
	for i := range reports.Items {
		r := &reports.Items[i]
		if r.Metadata.Namespace != ns {
			continue
		}
		for _, c := range r.Containers {
			if prev := out[c.Name]; prev != nil && prev != r {
				t.Errorf("container %s appears in reports %s and %s; the Pods of one workload belong in one report",
					c.Name, prev.Metadata.Name, r.Metadata.Name)
			}
			out[c.Name] = r
		}
	}
	for _, want := range []string{"web-app", "migrate", "locked", "lowercase", "typo"} {
		if out[want] == nil {
			t.Errorf("no report in namespace %s has container %s (reports: %d in all)", ns, want, len(reports.Items))
		}
	}
	return out
}

// wantFinding checks that r has a failing finding matching want's non-empty fields.
func wantFinding(t *testing.T, r *capabilityReport, want finding) {
	t.Helper()
	for _, f := range r.failures() {
		if f.Rule == want.Rule && f.Container == want.Container &&
			(want.Capability == "" || f.Capability == want.Capability) {
			if f.Severity == "" || f.Message == "" || f.Remediation == "" {
				t.Errorf("report %s: finding %s on %s lacks severity, message or remediation: %+v",
					r.Metadata.Name, f.Rule, f.Container, f)
			}
			return
		}
	}
	t.Errorf("report %s: no failing finding rule=%s container=%s capability=%q; report:\n%s",
		r.Metadata.Name, want.Rule, want.Container, want.Capability, r)
}

func wantGranted(t *testing.T, r *capabilityReport, container string, caps ...string) {
	t.Helper()
	c := r.container(container)
	if c == nil {
		t.Errorf("report %s has no container %s", r.Metadata.Name, container)
		return
	}
	for _, cp := range caps {
		if !slices.Contains(c.Granted, cp) {
			t.Errorf("report %s: container %s granted %v, want %s among them", r.Metadata.Name, container, c.Granted, cp)
		}
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
