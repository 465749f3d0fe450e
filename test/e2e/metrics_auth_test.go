package e2e

// /metrics behind authentication and authorization: the harness scrapes as a ServiceAccount
// bound to a metrics-reader ClusterRole (as Prometheus does), and TestControllerMetricsAuth
// asserts what a scraper without a token, with a token but no role, with a bad token and with
// the role gets from the real API server's TokenReview and SubjectAccessReview.

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const metricsReaderNamespace = "capwatch-e2e-monitoring"

var metricsReader struct {
	once  sync.Once
	token string
	err   error
}

// metricsReaderToken is a token of ServiceAccount capwatch-e2e-monitoring/prometheus, bound to
// a ClusterRole that grants get on /metrics; made once per run.
func metricsReaderToken(t *testing.T) string {
	t.Helper()
	metricsReader.once.Do(func() {
		metricsReader.token, metricsReader.err = serviceAccountToken(metricsReaderNamespace, "prometheus", "capwatch-e2e-metrics-reader")
	})
	if metricsReader.err != nil {
		t.Fatalf("the metrics reader's token: %v", metricsReader.err)
	}
	return metricsReader.token
}

// serviceAccountToken creates namespace ns and ServiceAccount sa if missing, binds sa to a
// ClusterRole granting get on /metrics when role is not empty, and returns a TokenRequest token.
func serviceAccountToken(ns, sa, role string) (string, error) {
	ctx := context.Background()
	ignoreExists := func(err error) error {
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	}
	if _, err := clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); ignoreExists(err) != nil {
		return "", err
	}
	if _, err := clientset.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); ignoreExists(err) != nil {
		return "", err
	}
	if role != "" {
		if _, err := clientset.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: role},
			Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
		}, metav1.CreateOptions{}); ignoreExists(err) != nil {
			return "", err
		}
		if _, err := clientset.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role + "-" + ns + "-" + sa},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: sa}},
		}, metav1.CreateOptions{}); ignoreExists(err) != nil {
			return "", err
		}
	}
	tr, err := clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(6 * 3600))}},
		metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	return tr.Status.Token, nil
}

// metricsGet is GET url with the bearer token ("" for none). The controller's certificate is
// self-signed at its start, so it is not verified here (TestControllerMetricsAuth checks what
// it is made for).
func metricsGet(ctx context.Context, url, token string) (int, string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// getMetrics scrapes the controller as the metrics reader.
func (p *controllerProcess) getMetrics(ctx context.Context) (int, string) {
	return metricsGet(ctx, p.MetricsURL, p.MetricsToken)
}

// TestControllerMetricsAuth: no token → 401, a token of an account without the role → 403, a
// token the API server does not know → 401, the reader's token → 200 with the metrics; the
// probes need no token; plain HTTP on the metrics port gets no metrics; the certificate is
// made for the loopback address.
func TestControllerMetricsAuth(t *testing.T) {
	ctrl := startController(t)
	ctx := context.Background()
	nosy, err := serviceAccountToken(newNamespace(t, "metrics-nosy", nil), "nosy", "")
	if err != nil {
		t.Fatal(err)
	}

	code, body := metricsGet(ctx, ctrl.MetricsURL, "")
	if code != http.StatusUnauthorized || !strings.Contains(body, "no bearer token") {
		t.Errorf("no token: %d %q, want 401 saying there is no bearer token", code, body)
	}
	code, body = metricsGet(ctx, ctrl.MetricsURL, nosy)
	if code != http.StatusForbidden || !strings.Contains(body, ":nosy") || !strings.Contains(body, "metrics-reader") {
		t.Errorf("token without the role: %d %q, want 403 naming the user and the role to bind", code, body)
	}
	code, body = metricsGet(ctx, ctrl.MetricsURL, "forged."+nosy[6:])
	if code != http.StatusUnauthorized {
		t.Errorf("a forged token: %d %q, want 401", code, body)
	}
	code, body = ctrl.getMetrics(ctx)
	if code != http.StatusOK || !strings.Contains(body, "capwatch_last_full_sync_timestamp_seconds") {
		t.Errorf("the reader's token: %d %q, want 200 with capwatch_ metrics", code, head(body, 300))
	}
	// Scraped again within the cache TTL: no new reviews, same answer.
	for i := 0; i < 3; i++ {
		if code, _ := ctrl.getMetrics(ctx); code != http.StatusOK {
			t.Errorf("scrape %d: %d", i, code)
		}
	}
	if code, body := httpGet(ctx, ctrl.HealthURL+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz without a token: %d %q, want 200", code, body)
	}
	if code, body := httpGet(ctx, strings.Replace(ctrl.MetricsURL, "https://", "http://", 1)); code == http.StatusOK {
		t.Errorf("plain HTTP on the metrics port: %d %q, want no metrics", code, head(body, 200))
	}

	// The certificate is self-signed for the address it serves on.
	host := strings.TrimSuffix(strings.TrimPrefix(ctrl.MetricsURL, "https://"), "/metrics")
	conn, err := tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cert := conn.ConnectionState().PeerCertificates[0]
	if err := cert.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("the serving certificate: %v", err)
	}
	if cert.IsCA {
		t.Errorf("the serving certificate is a CA")
	}
	if v := conn.ConnectionState().Version; v < tls.VersionTLS12 {
		t.Errorf("TLS version %x, want 1.2 or later", v)
	}
}
