package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The control plane itself: what the other tests, the controller's tests and the demo rely on.

func TestControlPlaneRunsThePinnedRelease(t *testing.T) {
	want := pinnedVersion(t, "KUBERNETES_VERSION")
	if got := cluster.Version.GitVersion; got != want {
		t.Errorf("kube-apiserver /version reports %s, want the pinned %s", got, want)
	}
	out := string(kubectl(t, "version", "-o", "json"))
	if !strings.Contains(out, `"gitVersion": "`+want+`"`) {
		t.Errorf("kubectl version does not report %s for client and server:\n%s", want, out)
	}
}

func TestTokenRequest(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "token", nil)
	// The ServiceAccount admission plugin is off, but TokenRequest needs only the signing key.
	sa, err := clientset.CoreV1().ServiceAccounts(ns).Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "capwatch"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(600))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest: %v", err)
	}
	review, err := clientset.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: tr.Status.Token},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenReview: %v", err)
	}
	wantUser := fmt.Sprintf("system:serviceaccount:%s:capwatch", ns)
	if !review.Status.Authenticated || review.Status.User.Username != wantUser {
		t.Errorf("token authenticates as %q (authenticated=%v, error %q), want %s",
			review.Status.User.Username, review.Status.Authenticated, review.Status.Error, wantUser)
	}
}

// TestGarbageCollection: deleting a Deployment removes its ReplicaSet and Pods through their
// ownerReferences, and deleting a namespace removes the namespace.
func TestGarbageCollection(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "gc", nil)
	labels := map[string]string{"app": "gc"}
	_, err := clientset.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "gc"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(3)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "3 Pods of Deployment gc", func(ctx context.Context) (bool, string, error) {
		pods, err := clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, "", err
		}
		return len(pods.Items) == 3, fmt.Sprintf("%d pods", len(pods.Items)), nil
	})
	pods, _ := clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodPending || p.Spec.NodeName != "" {
			t.Errorf("pod %s is %s on node %q; without scheduler and kubelet it should stay Pending and unbound",
				p.Name, p.Status.Phase, p.Spec.NodeName)
		}
	}

	if err := clientset.AppsV1().Deployments(ns).Delete(ctx, "gc", metav1.DeleteOptions{
		PropagationPolicy: ptr(metav1.DeletePropagationBackground),
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the garbage collector to delete the ReplicaSet and Pods", func(ctx context.Context) (bool, string, error) {
		rs, err := clientset.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, "", err
		}
		pods, err := clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, "", err
		}
		return len(rs.Items)+len(pods.Items) == 0,
			fmt.Sprintf("%d replicasets, %d pods", len(rs.Items), len(pods.Items)), nil
	})

	if err := clientset.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the namespace controller to remove namespace "+ns, func(ctx context.Context) (bool, string, error) {
		n, err := clientset.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, "", nil
		}
		if err != nil {
			return false, "", err
		}
		return false, string(n.Status.Phase), nil
	})
}

// TestCronJobCreatesJobs: a CronJob due every minute gets a Job, and the Job a Pod. Runs in
// parallel with the other long tests, as the first schedule can be a minute away.
func TestCronJobCreatesJobs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := newNamespace(t, "cron", nil)
	_, err := clientset.BatchV1().CronJobs(ns).Create(ctx, &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "report"},
		Spec: batchv1.CronJobSpec{
			Schedule: "* * * * *",
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{{Name: "report", Image: "report:1"}},
				},
			}}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Minute, "a Job of CronJob report and its Pod", func(ctx context.Context) (bool, string, error) {
		jobs, err := clientset.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, "", err
		}
		pods, err := clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, "", err
		}
		jobOwned, podOwned := false, false
		for _, j := range jobs.Items {
			if o := metav1.GetControllerOf(&j); o != nil && o.Kind == "CronJob" && o.Name == "report" {
				jobOwned = true
			}
		}
		for _, p := range pods.Items {
			if o := metav1.GetControllerOf(&p); o != nil && o.Kind == "Job" {
				podOwned = true
			}
		}
		return jobOwned && podOwned, fmt.Sprintf("%d jobs, %d pods", len(jobs.Items), len(pods.Items)), nil
	})
}

// pinnedVersion reads a version pinned in versions.env.
func pinnedVersion(t *testing.T, key string) string {
	t.Helper()
	f, err := os.Open("versions.env")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(s.Text()), key+"="); ok {
			return v
		}
	}
	t.Fatalf("versions.env pins no %s", key)
	return ""
}
