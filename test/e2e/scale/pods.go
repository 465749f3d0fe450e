package scale

import (
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The cluster's layout: every namespace holds ReplicaSetsPerNamespace ReplicaSets of
// PodsPerReplicaSet Pods, so 100,000 Pods are 100 namespaces and 10,000 workloads.
const (
	PodsPerReplicaSet       = 10
	ReplicaSetsPerNamespace = 100
	PodsPerNamespace        = PodsPerReplicaSet * ReplicaSetsPerNamespace
)

// securityMixes are the securityContexts of the app containers, one per ReplicaSet in turn:
// the hardened shape the guide recommends, a web server adding NET_BIND_SERVICE, no
// securityContext at all (the runtime defaults), network tooling, a privileged agent, and a
// container adding SYS_ADMIN in lower case with the CAP_ prefix.
var securityMixes = []func() *corev1.SecurityContext{
	func() *corev1.SecurityContext {
		return &corev1.SecurityContext{
			RunAsNonRoot:             ptr(true),
			RunAsUser:                ptr(int64(10001)),
			AllowPrivilegeEscalation: ptr(false),
			ReadOnlyRootFilesystem:   ptr(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		}
	},
	func() *corev1.SecurityContext {
		return &corev1.SecurityContext{
			RunAsNonRoot:             ptr(true),
			AllowPrivilegeEscalation: ptr(false),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_BIND_SERVICE"}},
		}
	},
	func() *corev1.SecurityContext { return nil },
	func() *corev1.SecurityContext {
		return &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "NET_RAW", "SYS_TIME"}}}
	},
	func() *corev1.SecurityContext { return &corev1.SecurityContext{Privileged: ptr(true)} },
	func() *corev1.SecurityContext {
		return &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"cap_sys_admin", "CHOWN"}, Drop: []corev1.Capability{"NET_RAW"}}}
	},
}

func ptr[T any](v T) *T { return &v }

func namespaceName(prefix string, i int) string { return fmt.Sprintf("%s-%03d", prefix, i) }

func replicaSetName(i int) string { return fmt.Sprintf("svc-%03d-7d9f8c6b5", i) }

// labels are a production workload's: the app's, the team's and the ReplicaSet's hash.
func labels(rs int) map[string]string {
	return map[string]string{
		"app.kubernetes.io/name":       fmt.Sprintf("svc-%03d", rs),
		"app.kubernetes.io/instance":   fmt.Sprintf("svc-%03d-prod", rs),
		"app.kubernetes.io/version":    "1.24.3",
		"app.kubernetes.io/part-of":    "storefront",
		"app.kubernetes.io/managed-by": "Helm",
		"team":                         fmt.Sprintf("team-%d", rs%7),
		"pod-template-hash":            "7d9f8c6b5",
	}
}

func annotations(rs int) map[string]string {
	return map[string]string{
		"prometheus.io/scrape":                           "true",
		"prometheus.io/port":                             "9090",
		"checksum/config":                                fmt.Sprintf("%064x", rs*7919+13),
		"kubectl.kubernetes.io/default-container":        "app",
		"cluster-autoscaler.kubernetes.io/safe-to-evict": "true",
	}
}

func env(n int) []corev1.EnvVar {
	out := []corev1.EnvVar{
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}},
		{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}},
	}
	for i := 0; i < n; i++ {
		out = append(out, corev1.EnvVar{Name: fmt.Sprintf("FEATURE_FLAG_%02d", i), Value: strings.Repeat("x", 12+i)})
	}
	return out
}

func resources(cpu, memory string) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory)},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(memory)},
	}
}

func probe(path string, port int) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(int32(port))}},
		PeriodSeconds:    10,
		FailureThreshold: 3,
		TimeoutSeconds:   2,
	}
}

// podSpec is the template of ReplicaSet rs: an init container, the app and a sidecar, with
// environment, probes, mounts and resources as production Pods carry them.
func podSpec(rs int) corev1.PodSpec {
	mounts := []corev1.VolumeMount{
		{Name: "config", MountPath: "/etc/app", ReadOnly: true},
		{Name: "tmp", MountPath: "/tmp"},
		{Name: "kube-api-access", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true},
	}
	security := securityMixes[rs%len(securityMixes)]
	return corev1.PodSpec{
		InitContainers: []corev1.Container{{
			Name:            "migrate",
			Image:           "registry.example.com/storefront/migrate:1.24.3",
			Command:         []string{"/bin/migrate", "--wait-for-db", "--timeout=120s"},
			Env:             env(0),
			Resources:       resources("50m", "64Mi"),
			VolumeMounts:    mounts[:1],
			SecurityContext: securityMixes[0](),
		}},
		Containers: []corev1.Container{
			{
				Name:            "app",
				Image:           "registry.example.com/storefront/svc:1.24.3@sha256:" + fmt.Sprintf("%064x", rs+1),
				Args:            []string{"--listen=:8080", "--metrics=:9090", "--log-format=json"},
				Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}, {Name: "metrics", ContainerPort: 9090, Protocol: corev1.ProtocolTCP}},
				Env:             env(2),
				Resources:       resources("250m", "512Mi"),
				VolumeMounts:    mounts,
				LivenessProbe:   probe("/healthz", 8080),
				SecurityContext: security(),
			},
			{
				Name:            "proxy",
				Image:           "registry.example.com/mesh/proxy:1.31.0",
				Args:            []string{"proxy", "sidecar", "--log-level=warning"},
				Ports:           []corev1.ContainerPort{{Name: "mesh", ContainerPort: 15001, Protocol: corev1.ProtocolTCP}},
				Env:             env(0),
				Resources:       resources("100m", "128Mi"),
				VolumeMounts:    mounts[1:],
				SecurityContext: securityMixes[1](),
			},
		},
		Volumes: []corev1.Volume{
			{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: fmt.Sprintf("svc-%03d-config", rs)}}}},
			{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "kube-api-access", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr(int64(3607))}},
			}}}},
		},
		ServiceAccountName:            "default",
		TerminationGracePeriodSeconds: ptr(int64(30)),
	}
}

func replicaSet(ns string, rs int) *appsv1.ReplicaSet {
	l := labels(rs)
	return &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: replicaSetName(rs), Namespace: ns, Labels: l},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: ptr(int32(PodsPerReplicaSet)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app.kubernetes.io/name": l["app.kubernetes.io/name"], "pod-template-hash": l["pod-template-hash"]}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: l, Annotations: annotations(rs)}, Spec: podSpec(rs)},
		},
	}
}

// pod is Pod p of ReplicaSet rs (whose UID is owner), as the ReplicaSet controller makes it.
func pod(ns string, rs, p int, owner types.UID) *corev1.Pod {
	name := replicaSetName(rs)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("%s-%05x", name, p*7919+rs), Namespace: ns,
			Labels: labels(rs), Annotations: annotations(rs),
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: "ReplicaSet", Name: name, UID: owner,
				Controller: ptr(true), BlockOwnerDeletion: ptr(true),
			}},
		},
		Spec: podSpec(rs),
	}
}
