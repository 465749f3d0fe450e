package e2e

// Helpers for the controller's end-to-end tests (controller_*_test.go): policies made for one
// test, reports read back, and the controller's /metrics scraped and summed.

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/dynamic"
)

func dynamicClient(t *testing.T) dynamic.Interface {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	return dyn
}

// defaultPolicySpec is the spec of docs/examples/policies/default.yaml with a match limited to
// the given namespaces, so that a test's policy judges only that test's workloads.
func defaultPolicySpec(namespaces ...string) map[string]any {
	ns := make([]any, len(namespaces))
	for i, n := range namespaces {
		ns[i] = n
	}
	return map[string]any{
		"profile":             "none",
		"match":               map[string]any{"namespaces": ns},
		"runtimeDefaults":     "containerd",
		"requireDropAll":      true,
		"allowedCapabilities": []any{"NET_BIND_SERVICE"},
		"forbiddenCapabilities": []any{"SYS_ADMIN", "SYS_PTRACE", "SYS_MODULE", "DAC_OVERRIDE",
			"SYS_RAWIO", "ALL", "privileged", "BPF", "PERFMON", "DAC_READ_SEARCH", "NET_ADMIN",
			"SYS_BOOT", "MAC_ADMIN", "MAC_OVERRIDE"},
		"disallowPrivileged":           true,
		"requireNoPrivilegeEscalation": true,
		"requireRunAsNonRoot":          true,
	}
}

// createPolicy creates a cluster-scoped CapabilityPolicy and deletes it when the test ends.
func createPolicy(t *testing.T, dyn dynamic.Interface, name string, spec map[string]any) {
	t.Helper()
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "capwatch.io/v1alpha1",
		"kind":       "CapabilityPolicy",
		"metadata":   map[string]any{"name": name},
		"spec":       spec,
	}}
	if _, err := dyn.Resource(policiesGVR).Create(context.Background(), obj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating CapabilityPolicy %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = dyn.Resource(policiesGVR).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
}

// updatePolicySpec applies change to the policy's spec, retrying on conflicts.
func updatePolicySpec(t *testing.T, dyn dynamic.Interface, name string, change func(spec map[string]any)) {
	t.Helper()
	eventually(t, 30*time.Second, "updating CapabilityPolicy "+name, func(ctx context.Context) (bool, string, error) {
		p, err := dyn.Resource(policiesGVR).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		spec, _, _ := unstructured.NestedMap(p.Object, "spec")
		change(spec)
		if err := unstructured.SetNestedMap(p.Object, spec, "spec"); err != nil {
			return false, "", err
		}
		_, err = dyn.Resource(policiesGVR).Update(ctx, p, metav1.UpdateOptions{})
		return err == nil, "", err
	})
}

// getReport returns the report, or nil when it does not exist.
func getReport(ctx context.Context, dyn dynamic.Interface, ns, name string) (*unstructured.Unstructured, error) {
	r, err := dyn.Resource(reportsGVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return r, err
}

// reportNames lists the reports in ns, sorted.
func reportNames(ctx context.Context, dyn dynamic.Interface, ns string) ([]string, error) {
	list, err := dyn.Resource(reportsGVR).Namespace(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, i := range list.Items {
		names = append(names, i.GetName())
	}
	sort.Strings(names)
	return names, nil
}

// waitReport waits for the report to exist and satisfy ok (nil: exists), and returns it.
func waitReport(t *testing.T, dyn dynamic.Interface, ns, name string, timeout time.Duration,
	ok func(r *unstructured.Unstructured) (bool, string)) *unstructured.Unstructured {
	t.Helper()
	var got *unstructured.Unstructured
	eventually(t, timeout, "CapabilityReport "+ns+"/"+name, func(ctx context.Context) (bool, string, error) {
		r, err := getReport(ctx, dyn, ns, name)
		if err != nil {
			return false, "", err
		}
		if r == nil {
			names, _ := reportNames(ctx, dyn, ns)
			return false, fmt.Sprintf("no such report; reports in %s: %v", ns, names), nil
		}
		if ok != nil {
			if done, why := ok(r); !done {
				return false, why, nil
			}
		}
		got = r
		return true, "", nil
	})
	return got
}

// waitReportGone waits until the report no longer exists.
func waitReportGone(t *testing.T, dyn dynamic.Interface, ns, name string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "CapabilityReport "+ns+"/"+name+" to be deleted", func(ctx context.Context) (bool, string, error) {
		r, err := getReport(ctx, dyn, ns, name)
		return err == nil && r == nil, "still there", err
	})
}

// reportFinding is one entry of a report's findings, the fields the tests compare.
type reportFinding struct {
	Policy, Rule, Container, Capability, Severity, Result string
}

func (f reportFinding) String() string {
	return fmt.Sprintf("%s/%s/%s/%s/%s/%s", f.Policy, f.Rule, f.Container, f.Capability, f.Severity, f.Result)
}

// reportFindings returns the report's findings from the given policy, as sorted strings.
func reportFindings(r *unstructured.Unstructured, policy string) []string {
	items, _, _ := unstructured.NestedSlice(r.Object, "findings")
	var out []string
	for _, i := range items {
		m, _ := i.(map[string]any)
		s := func(k string) string { v, _ := m[k].(string); return v }
		f := reportFinding{s("policy"), s("rule"), s("container"), s("capability"), s("severity"), s("result")}
		if f.Policy == policy {
			out = append(out, f.String())
		}
	}
	sort.Strings(out)
	return out
}

// scrape returns the controller's /metrics body.
func scrape(t *testing.T, p *controllerProcess) string {
	t.Helper()
	code, body := p.getMetrics(context.Background())
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", p.MetricsURL, code, head(body, 500))
	}
	return body
}

// metricSum adds up the samples of the metric whose labels include every one in want.
func metricSum(body, name string, want map[string]string) float64 {
	total := 0.0
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		labels := ""
		switch {
		case strings.HasPrefix(rest, "{"):
			end := strings.Index(rest, "}")
			if end < 0 {
				continue
			}
			labels, rest = rest[1:end], rest[end+1:]
		case strings.HasPrefix(rest, " "):
		default:
			continue // another metric with this prefix
		}
		fieldsOf := strings.Fields(rest)
		if len(fieldsOf) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fieldsOf[0], 64)
		if err != nil {
			continue
		}
		matched := true
		for k, val := range want {
			if !strings.Contains(","+labels+",", ","+k+"=\""+val+"\",") {
				matched = false
			}
		}
		if matched {
			total += v
		}
	}
	return total
}

// grantEvents returns the DangerousCapabilityGranted Events about the named object in ns and
// the sum of their counts.
func grantEvents(ctx context.Context, ns, kind, name string) ([]corev1.Event, int32, error) {
	list, err := clientset.CoreV1().Events(ns).List(ctx, metav1.ListOptions{
		FieldSelector: fields.Set{
			"involvedObject.kind": kind,
			"involvedObject.name": name,
			"reason":              "DangerousCapabilityGranted",
		}.AsSelector().String(),
	})
	if err != nil {
		return nil, 0, err
	}
	var n int32
	for _, e := range list.Items {
		c := e.Count
		if c == 0 {
			c = 1
		}
		n += c
	}
	return list.Items, n, nil
}

// percentile returns the p-quantile (0..1) of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}
