package e2e

import (
	"context"
	"encoding/json"
	"regexp"
	"sort"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
)

// TestControllerPodEncodings: the controller lists and watches Pods as protobuf by default and
// as JSON with --pod-encoding=json; against the real API server both write the same reports
// for the guide's Pods and the spellings around them (what a report says must not depend on
// how its Pods were encoded on the wire), whether a Pod came in the list or as a watch event,
// and the debug log says which encoding the list and the watch came in.
func TestControllerPodEncodings(t *testing.T) {
	ctx := context.Background()
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	applyDefaultPolicy(t, dyn)

	ns := newNamespace(t, "encodings", nil)
	sc := func(add, drop []corev1.Capability) *corev1.SecurityContext {
		return &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: add, Drop: drop}}
	}
	c := func(name string, s *corev1.SecurityContext) corev1.Container {
		return corev1.Container{Name: name, Image: "registry.example/" + name + ":1", SecurityContext: s}
	}
	root := int64(0)
	pods := map[string]corev1.PodSpec{
		// The guide's web server: drop everything, add back the one capability it needs.
		"nginx": {Containers: []corev1.Container{{
			Name: "nginx", Image: "nginx:1.27",
			SecurityContext: &corev1.SecurityContext{
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_BIND_SERVICE"}},
				RunAsNonRoot:             ptr(true),
				RunAsUser:                ptr(int64(101)),
				AllowPrivilegeEscalation: ptr(false),
			},
		}}},
		"sys-admin":  {Containers: []corev1.Container{c("tool", sc([]corev1.Capability{"SYS_ADMIN"}, nil))}},
		"privileged": {Containers: []corev1.Container{c("p", &corev1.SecurityContext{Privileged: ptr(true)})}},
		"spellings": {
			InitContainers: []corev1.Container{c("init", sc([]corev1.Capability{"cap_net_admin", "CAP_SYS_PTRACE"}, nil))},
			Containers:     []corev1.Container{c("app", sc(nil, []corev1.Capability{"all"})), c("plain", nil)},
		},
		"pod-root": {
			SecurityContext: &corev1.PodSecurityContext{RunAsUser: &root},
			Containers:      []corev1.Container{c("r", sc([]corev1.Capability{"NET_RAW", "DAC_OVERRIDE"}, []corev1.Capability{"CHOWN"}))},
		},
	}
	// Made after the first controller is watching: it reaches that one as a watch event.
	late := "late"
	pods[late] = corev1.PodSpec{
		InitContainers: []corev1.Container{c("migrate", sc([]corev1.Capability{"SYS_ADMIN", "net_raw"}, nil))},
		Containers:     []corev1.Container{c("app", sc([]corev1.Capability{"NET_BIND_SERVICE"}, []corev1.Capability{"ALL"}))},
	}
	create := func(name string) {
		if _, err := clientset.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name},
				Annotations: map[string]string{"capwatch.io/justification.SYS_ADMIN": "mounts for the backup"}},
			Spec: pods[name],
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for name := range pods {
		if name != late {
			create(name)
		}
	}

	// The reports of ns as the controller wrote them, without what changes from run to run.
	reports := func(ctrl *controllerProcess) map[string]string {
		out := map[string]string{}
		eventually(t, 2*time.Minute, "a report for each Pod", func(ctx context.Context) (bool, string, error) {
			list, err := dyn.Resource(reportsGVR).Namespace(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, "", err
			}
			for _, r := range list.Items {
				kept := map[string]any{}
				for _, k := range []string{"workload", "summary", "containers", "findings", "note"} {
					if v, ok := r.Object[k]; ok {
						kept[k] = v
					}
				}
				if w, ok := kept["workload"].(map[string]any); ok {
					delete(w, "uid") // the Pods are the same, the comparison is of two runs
				}
				b, _ := json.Marshal(kept)
				out[r.GetName()] = string(b)
			}
			return len(out) == len(pods), strconv.Itoa(len(out)) + " reports", nil
		})
		return out
	}
	encodingOf := func(ctrl *controllerProcess) (list, watch string) {
		list, watch = "no list of Pods logged", "no watch of Pods logged"
		if m := regexp.MustCompile(`list pods: \d+ items in \d+ pages \(\d+ bytes of (\w+)\)`).FindStringSubmatch(ctrl.log.String()); m != nil {
			list = m[1]
		}
		if m := regexp.MustCompile(`watch pods: (\w+) events`).FindStringSubmatch(ctrl.log.String()); m != nil {
			watch = m[1]
		}
		return list, watch
	}

	first := startController(t, "--log-level", "debug")
	create(late)
	viaProtobuf := reports(first)
	if list, watch := encodingOf(first); list != "protobuf" || watch != "protobuf" {
		t.Errorf("by default the Pods were listed as %s and watched as %s, want protobuf", list, watch)
	}
	first.stop(t)
	if err := dyn.Resource(reportsGVR).Namespace(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the reports deleted", func(ctx context.Context) (bool, string, error) {
		list, err := dyn.Resource(reportsGVR).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, "", err
		}
		return len(list.Items) == 0, strconv.Itoa(len(list.Items)) + " left", nil
	})

	second := startController(t, "--log-level", "debug", "--pod-encoding=json")
	viaJSON := reports(second)
	if list, watch := encodingOf(second); list != "JSON" || watch != "JSON" {
		t.Errorf("with --pod-encoding=json the Pods were listed as %s and watched as %s, want JSON", list, watch)
	}
	names := make([]string, 0, len(viaJSON))
	for n := range viaJSON {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if viaProtobuf[n] != viaJSON[n] {
			t.Errorf("report %s differs:\nprotobuf: %s\nJSON:     %s", n, viaProtobuf[n], viaJSON[n])
		}
	}
	// Both runs saw what the Pods hold (a comparison of two empty reports would prove nothing).
	for _, want := range []struct{ report, text string }{
		{"pod-sys-admin", `"capability":"SYS_ADMIN"`},
		{"pod-spellings", `"container":"init"`},
		{"pod-privileged", `"privileged"`},
		{"pod-late", `"container":"migrate"`},
	} {
		if !regexp.MustCompile(regexp.QuoteMeta(want.text)).MatchString(viaProtobuf[want.report]) {
			t.Errorf("report %s (protobuf) lacks %s: %s", want.report, want.text, viaProtobuf[want.report])
		}
	}
}
