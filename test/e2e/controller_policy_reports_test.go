package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

var (
	openReportsGVR   = schema.GroupVersionResource{Group: "openreports.io", Version: "v1alpha1", Resource: "reports"}
	wgPolicyGVR      = schema.GroupVersionResource{Group: "wgpolicyk8s.io", Version: "v1alpha2", Resource: "policyreports"}
	openReportsCRD   = filepath.Join("testdata", "openreports.io_reports.yaml")
	wgPolicyCRD      = filepath.Join("testdata", "wgpolicyk8s.io_policyreports.yaml")
	policyReportsCRD = map[string]string{openReportsCRD: "reports.openreports.io", wgPolicyCRD: "policyreports.wgpolicyk8s.io"}
)

// installReportCRD installs one of the shared report CRDs (minimal definitions in testdata)
// and removes it when the test ends.
func installReportCRD(t *testing.T, file string) {
	t.Helper()
	kubectl(t, "apply", "-f", file)
	kubectl(t, "wait", "--for=condition=Established", "--timeout=60s", "crd/"+policyReportsCRD[file])
	t.Cleanup(func() { removeReportCRD(t, file) })
}

func removeReportCRD(t *testing.T, file string) {
	t.Helper()
	kubectl(t, "delete", "--ignore-not-found", "--wait=true", "-f", file)
}

// TestControllerPolicyReports: with --policy-reports auto, every CapabilityReport also appears
// as an OpenReports Report (or, with only the older CRD installed, a wgpolicyk8s.io
// PolicyReport) that Policy Reporter reads: source capwatch, the workload as scope, a result
// per finding (skip for an exempted one) with the container and capability, owned by the
// CapabilityReport. It is written once: a restart writes none; a new finding rewrites it.
func TestControllerPolicyReports(t *testing.T) {
	ctx := context.Background()
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	installReportCRD(t, openReportsCRD)
	ns := newNamespace(t, "polreports", nil)
	const policyName = "e2e-policy-reports"
	toolsPolicy(t, dyn, policyName, "polreports-*", nil, nil)
	d := deployment("web", 1, withAdd(lockedDown, "SYS_ADMIN"))
	d.Spec.Template.Spec.Containers = append(d.Spec.Template.Spec.Containers, withAdd(corev1.Container{
		Name: "tools", Image: "tools:1", SecurityContext: lockedDown.SecurityContext}, "NET_RAW"))
	if _, err := clientset.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ctl := startController(t, "--policy-reports", "auto")

	const name = "capwatch-deployment-web"
	waitFor := func(gvr schema.GroupVersionResource, what string, ok func(*unstructured.Unstructured) (bool, string)) *unstructured.Unstructured {
		var got *unstructured.Unstructured
		eventually(t, time.Minute, what, func(ctx context.Context) (bool, string, error) {
			o, err := dyn.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return false, "not there yet", nil
			}
			if err != nil {
				return false, "", err
			}
			got = o
			done, why := ok(o)
			return done, why, nil
		})
		return got
	}
	// result finds the result of the policy for the container and capability.
	result := func(o *unstructured.Unstructured, container, capability string) map[string]any {
		results, _, _ := unstructured.NestedSlice(o.Object, "results")
		for _, r := range results {
			m, _ := r.(map[string]any)
			props, _ := m["properties"].(map[string]any)
			if m["policy"] == policyName && props["container"] == container && props["capability"] == capability {
				return m
			}
		}
		return nil
	}
	complete := func(o *unstructured.Unstructured) (bool, string) {
		return result(o, "app", "SYS_ADMIN") != nil, fmt.Sprintf("results %v", o.Object["results"])
	}
	report := waitFor(openReportsGVR, "the OpenReports Report of deployment-web", complete)

	capReport, err := dyn.Resource(reportsGVR).Namespace(ns).Get(ctx, "deployment-web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if src, _, _ := unstructured.NestedString(report.Object, "source"); src != "capwatch" {
		t.Errorf("source %q, want capwatch", src)
	}
	scope, _, _ := unstructured.NestedMap(report.Object, "scope")
	if scope["kind"] != "Deployment" || scope["name"] != "web" || scope["namespace"] != ns {
		t.Errorf("scope %v, want Deployment %s/web", scope, ns)
	}
	if refs := report.GetOwnerReferences(); len(refs) != 1 || refs[0].UID != capReport.GetUID() {
		t.Errorf("ownerReferences %v, want the CapabilityReport (uid %s)", refs, capReport.GetUID())
	}
	if r := result(report, "app", "SYS_ADMIN"); r["result"] != "fail" || r["rule"] != "dangerous-capability" || r["severity"] != "critical" {
		t.Errorf("the SYS_ADMIN result %v, want fail / dangerous-capability / critical", r)
	}
	if r := result(report, "tools", "NET_RAW"); r == nil || r["result"] != "skip" {
		t.Errorf("the exempted NET_RAW result %v, want skip", r)
	} else if props, _ := r["properties"].(map[string]any); props["exemption"] != "tools-net-raw" {
		t.Errorf("the exempted result's properties %v lack the exemption", props)
	}
	fail, _, _ := unstructured.NestedInt64(report.Object, "summary", "fail")
	violations, _, _ := unstructured.NestedInt64(capReport.Object, "summary", "violations")
	if fail != violations || fail == 0 {
		t.Errorf("summary.fail %d, want the CapabilityReport's %d violations", fail, violations)
	}

	// A restart writes nothing.
	before := report.GetResourceVersion()
	ctl.stop(t)
	ctl = startController(t, "--policy-reports", "auto")
	time.Sleep(5 * time.Second) // the first pass over every workload
	if now, err := dyn.Resource(openReportsGVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{}); err != nil || now.GetResourceVersion() != before {
		t.Errorf("after a restart: %v, resourceVersion %s, before it %s", err, now.GetResourceVersion(), before)
	}

	// A new finding (NET_RAW in container app, which the exemption does not cover): the
	// report follows.
	if _, err := clientset.AppsV1().Deployments(ns).Patch(ctx, "web", "application/strategic-merge-patch+json",
		[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"app","securityContext":{"capabilities":{"add":["SYS_ADMIN","NET_RAW"]}}}]}}}}`),
		metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(openReportsGVR, "the NET_RAW finding of container app in the Report", func(o *unstructured.Unstructured) (bool, string) {
		r := result(o, "app", "NET_RAW")
		return r != nil && r["result"] == "fail", fmt.Sprintf("results %v", o.Object["results"])
	})

	// Only the older CRD installed: the same report as a wgpolicyk8s.io PolicyReport, the
	// source in each result.
	ctl.stop(t)
	removeReportCRD(t, openReportsCRD)
	installReportCRD(t, wgPolicyCRD)
	startController(t, "--policy-reports", "auto")
	older := waitFor(wgPolicyGVR, "the PolicyReport of deployment-web", complete)
	if _, found := older.Object["source"]; found {
		t.Errorf("a PolicyReport has no top-level source: %v", older.Object["source"])
	}
	if r := result(older, "app", "SYS_ADMIN"); r["source"] != "capwatch" || r["result"] != "fail" {
		t.Errorf("the PolicyReport's SYS_ADMIN result %v, want source capwatch, fail", r)
	}
	// And it follows the workload: NET_RAW taken away again.
	if _, err := clientset.AppsV1().Deployments(ns).Patch(ctx, "web", "application/strategic-merge-patch+json",
		[]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"app","securityContext":{"capabilities":{"add":["SYS_ADMIN"]}}}]}}}}`),
		metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(wgPolicyGVR, "the NET_RAW finding of container app gone from the PolicyReport", func(o *unstructured.Unstructured) (bool, string) {
		return result(o, "app", "NET_RAW") == nil && result(o, "app", "SYS_ADMIN") != nil, fmt.Sprintf("results %v", o.Object["results"])
	})
}
