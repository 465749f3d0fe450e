package hostileload

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
)

// refusingProxy stands between capwatch and the API server. It forwards every request with the
// identity it is given (the chart's ServiceAccount in the suite), and while a refusal window is
// open it answers writes (POST, PUT, PATCH, DELETE) itself with 429 Too Many Requests and
// Retry-After, the way an overloaded API server's priority-and-fairness filter does: every
// write, or (RefuseAllButReviewsFor) every write but the TokenReviews and SubjectAccessReviews that
// /metrics needs. Reads and watches pass.
type refusingProxy struct {
	server   *http.Server
	listener net.Listener
	URL      string // http://127.0.0.1:port

	mu          sync.Mutex
	refuseUntil time.Time
	passReviews bool // the window refuses every write but the reviews

	refused        atomic.Int64 // writes answered with 429
	refusedReviews atomic.Int64 // of them, TokenReviews and SubjectAccessReviews
	forwarded      atomic.Int64 // writes passed on
	retryAfter     int          // seconds
}

func startRefusingProxy(upstream *rest.Config, retryAfter int) (*refusingProxy, error) {
	target, err := url.Parse(upstream.Host)
	if err != nil {
		return nil, err
	}
	transport, err := rest.TransportFor(upstream)
	if err != nil {
		return nil, err
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = transport
	rp.FlushInterval = -1 // watches stream
	base := rp.Director
	rp.Director = func(r *http.Request) {
		base(r)
		// capwatch's kubeconfig has no credentials; the proxy's identity speaks for it.
		r.Header.Del("Authorization")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &refusingProxy{listener: l, URL: "http://" + l.Addr().String(), retryAfter: retryAfter}
	p.server = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			review := strings.Contains(r.URL.Path, "tokenreviews") || strings.Contains(r.URL.Path, "subjectaccessreviews")
			if p.refusing(review) {
				p.refused.Add(1)
				if review {
					p.refusedReviews.Add(1)
				}
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Retry-After", fmt.Sprint(p.retryAfter))
				w.WriteHeader(http.StatusTooManyRequests)
				fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",`+
					`"message":"the hostile-load proxy refuses every write for now","reason":"TooManyRequests",`+
					`"details":{"retryAfterSeconds":%d},"code":429}`, p.retryAfter)
				return
			}
			p.forwarded.Add(1)
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = p.server.Serve(l) }()
	return p, nil
}

// RefuseFor opens a window of d from now in which every write is refused.
func (p *refusingProxy) RefuseFor(d time.Duration) { p.open(d, false) }

// RefuseAllButReviewsFor opens a window of d from now in which every write but the
// TokenReviews and SubjectAccessReviews is refused.
func (p *refusingProxy) RefuseAllButReviewsFor(d time.Duration) { p.open(d, true) }

func (p *refusingProxy) open(d time.Duration, passReviews bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuseUntil = time.Now().Add(d)
	p.passReviews = passReviews
}

func (p *refusingProxy) refusing(review bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return time.Now().Before(p.refuseUntil) && !(review && p.passReviews)
}

func (p *refusingProxy) Close() { _ = p.server.Close() }

// kubeconfig points a client at the proxy, without credentials.
func (p *refusingProxy) kubeconfig() string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: hostile-load
  cluster:
    server: %s
users:
- name: hostile-load
  user: {}
contexts:
- name: hostile-load
  context: {cluster: hostile-load, user: hostile-load}
current-context: hostile-load
`, p.URL)
}
