package hostileload

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"capwatch.io/test/e2e/procstat"
)

// memorySampler reads the controller's memory every second.
type memorySampler struct {
	mu      sync.Mutex
	last    procstat.Sample
	peakRSS int64
	samples int
}

func (m *memorySampler) run(ctx context.Context, pid int) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if s, err := procstat.Read(pid); err == nil {
			m.mu.Lock()
			m.last = s
			m.peakRSS = max(m.peakRSS, s.RSS)
			m.samples++
			m.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *memorySampler) snapshot() (last procstat.Sample, peakRSS int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last, m.peakRSS
}

// scrapeStats counts /metrics scrapes, overall and inside the storm.
type scrapeStats struct {
	OK, Failed           int
	StormOK, StormFailed int
	Max, StormMax        time.Duration
	FirstFailure         string
}

// scraper reads /metrics as Prometheus does (HTTPS, bearer token, 10 s timeout) every interval.
type scraper struct {
	url, token string
	interval   time.Duration
	timeout    time.Duration

	mu    sync.Mutex
	stats scrapeStats
	storm bool
}

func (s *scraper) setStorm(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.storm = on
}

func (s *scraper) snapshot() scrapeStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

func (s *scraper) run(ctx context.Context) {
	client := insecureClient(s.timeout)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		code, took, why := s.scrapeOnce(ctx, client)
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		st := &s.stats
		st.Max = max(st.Max, took)
		if s.storm {
			st.StormMax = max(st.StormMax, took)
		}
		if code == http.StatusOK {
			st.OK++
			if s.storm {
				st.StormOK++
			}
		} else {
			st.Failed++
			if s.storm {
				st.StormFailed++
			}
			if st.FirstFailure == "" {
				st.FirstFailure = fmt.Sprintf("%s: %d %s", time.Now().Format(time.TimeOnly), code, why)
			}
		}
		s.mu.Unlock()
	}
}

func (s *scraper) scrapeOnce(ctx context.Context, client *http.Client) (int, time.Duration, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return 0, 0, err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, time.Since(start), err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	took := time.Since(start)
	if err != nil {
		return 0, took, err.Error()
	}
	if resp.StatusCode == http.StatusOK && !strings.Contains(string(body), "capwatch_") {
		return 0, took, "200 without capwatch_ series"
	}
	return resp.StatusCode, took, strings.TrimSpace(string(body[:min(len(body), 200)]))
}

// insecureClient does not verify the controller's certificate: it is self-signed at its start.
func insecureClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
}
