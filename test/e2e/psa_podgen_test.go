package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Capability spellings the generator draws from: canonical names, lower case, the CAP_ prefix,
// mixed case, the ALL keyword in several cases (and CAP_ALL, which PodSecurity does not take
// for ALL), names that are no capability at all, and the empty string templating leaves behind.
// Canonical allowed names repeat so that compliant containers are common enough.
var (
	addVocabulary = []string{
		"NET_BIND_SERVICE", "NET_BIND_SERVICE", "NET_BIND_SERVICE", "net_bind_service",
		"CAP_NET_BIND_SERVICE", "cap_net_bind_service",
		"CHOWN", "KILL", "SETUID", "SETGID", "AUDIT_WRITE", "SYS_CHROOT", "MKNOD", "DAC_OVERRIDE",
		"FOWNER", "FSETID", "SETFCAP", "SETPCAP", "cap_chown", "CAP_KILL", "Setuid",
		"NET_RAW", "CAP_NET_RAW", "SYS_ADMIN", "CAP_SYS_ADMIN", "cap_sys_admin", "sys_ptrace",
		"NET_ADMIN", "BPF", "PERFMON", "SYS_MODULE", "DAC_READ_SEARCH", "CHECKPOINT_RESTORE",
		"ALL", "all", "CAP_ALL", "Net_Raw", "NET_BIND", "SYS_ADMINS", "CAP_FOO", "",
	}
	dropVocabulary = []string{
		"ALL", "ALL", "ALL", "all", "All", "NET_RAW", "CAP_NET_RAW", "cap_sys_admin", "SYS_ADMIN",
		"NET_BIND", "KILL", "chown", "CAP_ALL", "cap_all", "",
	}
)

// podGenerator makes random Pods that exercise only the Pod Security controls capwatch owns:
// the pod sets seccompProfile RuntimeDefault and uses no volumes, host namespaces, ports,
// probes or spec.os, so privileged, capabilities, allowPrivilegeEscalation, runAsNonRoot and
// runAsUser are the only checks that can fire. Some pods set hostUsers, which changes what
// runAsNonRoot and runAsUser mean.
type podGenerator struct {
	r *rand.Rand
	// hardened pods mostly follow the restricted profile with the odd slip, so that every
	// control sees compliant pods as well as violations.
	hardened bool
}

func newPodGenerator(seed uint64) *podGenerator {
	return &podGenerator{r: rand.New(rand.NewPCG(seed, 0x6361707761746368))}
}

func (g *podGenerator) pct(p int) bool { return g.r.IntN(100) < p }

// optBool is true with pTrue %, false with pFalse %, unset otherwise.
func (g *podGenerator) optBool(pTrue, pFalse int) *bool {
	switch n := g.r.IntN(100); {
	case n < pTrue:
		return ptr(true)
	case n < pTrue+pFalse:
		return ptr(false)
	}
	return nil
}

// optUser is 0 with pRoot %, a non-root UID with pUser %, unset otherwise.
func (g *podGenerator) optUser(pRoot, pUser int) *int64 {
	switch n := g.r.IntN(100); {
	case n < pRoot:
		return ptr(int64(0))
	case n < pRoot+pUser:
		return ptr(int64(1000 + g.r.IntN(60000)))
	}
	return nil
}

// pick returns up to max distinct entries of vocabulary.
func (g *podGenerator) pick(vocabulary []string, max int) []corev1.Capability {
	n := g.r.IntN(max + 1)
	var out []corev1.Capability
	for range n {
		c := corev1.Capability(vocabulary[g.r.IntN(len(vocabulary))])
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

func (g *podGenerator) pod(name string) *corev1.Pod {
	g.hardened = g.pct(45)
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"capwatch.io/e2e": "psa-oracle"}},
		Spec: corev1.PodSpec{
			SecurityContext: &corev1.PodSecurityContext{
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
		},
	}
	// hostUsers: false (a user namespace, GA in 1.36) makes PodSecurity 1.35+ relax its
	// runAsNonRoot and runAsUser checks.
	switch n := g.r.IntN(100); {
	case n < 12:
		pod.Spec.HostUsers = ptr(false)
	case n < 17:
		pod.Spec.HostUsers = ptr(true)
	}
	psc := pod.Spec.SecurityContext
	if g.hardened {
		psc.RunAsNonRoot = g.optBool(80, 4)
		psc.RunAsUser = g.optUser(3, 50)
	} else {
		psc.RunAsNonRoot = g.optBool(30, 30)
		psc.RunAsUser = g.optUser(25, 35)
	}

	for i := range 1 + g.r.IntN(3) {
		pod.Spec.Containers = append(pod.Spec.Containers, g.container(fmt.Sprintf("c%d", i)))
	}
	if g.pct(35) {
		for i := range 1 + g.r.IntN(2) {
			pod.Spec.InitContainers = append(pod.Spec.InitContainers, g.container(fmt.Sprintf("i%d", i)))
		}
	}
	if g.pct(30) {
		for i := range 1 + g.r.IntN(2) {
			c := g.container(fmt.Sprintf("e%d", i))
			pod.Spec.EphemeralContainers = append(pod.Spec.EphemeralContainers,
				corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon(c)})
		}
	}
	return pod
}

func (g *podGenerator) container(name string) corev1.Container {
	c := corev1.Container{Name: name, Image: "registry.example/psa/" + name + ":1"}
	if g.pct(map[bool]int{true: 3, false: 15}[g.hardened]) {
		return c // no securityContext at all
	}
	sc := &corev1.SecurityContext{}
	if g.hardened {
		sc.Privileged = g.optBool(2, 30)
		sc.AllowPrivilegeEscalation = g.optBool(3, 90)
		sc.RunAsNonRoot = g.optBool(30, 3)
		sc.RunAsUser = g.optUser(3, 30)
		if !g.pct(5) {
			sc.Capabilities = &corev1.Capabilities{}
			if g.pct(88) {
				sc.Capabilities.Drop = []corev1.Capability{"ALL"}
			} else {
				sc.Capabilities.Drop = g.pick(dropVocabulary, 2)
			}
			if g.pct(30) {
				sc.Capabilities.Add = g.pick(addVocabulary, 1)
			}
		}
	} else {
		sc.Privileged = g.optBool(15, 30)
		sc.AllowPrivilegeEscalation = g.optBool(30, 35)
		sc.RunAsNonRoot = g.optBool(25, 25)
		sc.RunAsUser = g.optUser(20, 30)
		if !g.pct(25) {
			sc.Capabilities = &corev1.Capabilities{
				Add:  g.pick(addVocabulary, 3),
				Drop: g.pick(dropVocabulary, 3),
			}
		}
	}
	// API validation rejects allowPrivilegeEscalation=false beside privileged=true or an added
	// "CAP_SYS_ADMIN" (that exact spelling); such pods never reach admission, so unset it.
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		if (sc.Privileged != nil && *sc.Privileged) ||
			(sc.Capabilities != nil && slices.Contains(sc.Capabilities.Add, "CAP_SYS_ADMIN")) {
			sc.AllowPrivilegeEscalation = nil
		}
	}
	c.SecurityContext = sc
	return c
}

// The generator is deterministic for a seed, which is what makes a printed seed useful.
func TestPodGeneratorIsDeterministic(t *testing.T) {
	a, b := newPodGenerator(42), newPodGenerator(42)
	for i := range 50 {
		ja, _ := json.Marshal(a.pod(fmt.Sprint(i)))
		jb, _ := json.Marshal(b.pod(fmt.Sprint(i)))
		if string(ja) != string(jb) {
			t.Fatalf("pod %d differs between two generators with seed 42", i)
		}
	}
}
