#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <stop_token>
#include <string>
#include <string_view>

#include "kube/clock.h"
#include "kube/kube_client.h"
#include "kube/rate_limiter.h"

namespace capwatch::controller {

// Who may read /metrics, decided as controller-runtime's authentication filter does: the
// request's bearer token goes to a TokenReview, the user it names to a SubjectAccessReview
// for `get` on the non-resource URL. Both answers are cached by a hash of the token (the token
// itself is not kept), so a Prometheus scraping every 15 s costs the API server two reviews a
// TTL, not two a scrape.
struct MetricsAuthOptions {
  std::chrono::seconds allowed_ttl{60};
  // Short, so a newly bound role takes effect quickly; still enough to absorb a retry storm.
  std::chrono::seconds denied_ttl{10};
  // While the API server cannot answer a review (429 under load, 5xx, unreachable), an
  // allowance it gave for the same token keeps being served for this long past its TTL, so
  // Prometheus does not lose the controller exactly when the cluster is in trouble. A denial
  // is never kept that way; a token never allowed gets nothing from it.
  std::chrono::seconds allowed_stale_grace{300};
  // While serving a kept allowance, the API server is asked again at most this often; the
  // scrapes in between do not wait on it.
  std::chrono::seconds stale_recheck{10};
  std::size_t max_cached = 4096;
  // Reviews for tokens not in the cache, on their own budget so that whoever can reach the port
  // cannot spend the controller's API rate limit (--kube-api-qps) with made-up tokens.
  double reviews_per_second = 5;
  int review_burst = 20;
  // Reviews waiting on the API server at once; more are refused with 429. The listener's
  // threads are shared with the API client, so they must never all be waiting on it.
  int max_concurrent_reviews = 4;
};

struct AuthDecision {
  // 200 allowed; 401 no or bad token; 403 authenticated, not authorized; 429 review budget
  // spent; 503 the API server could not be asked.
  int code = 0;
  std::string message;  // for the response body and the log: what is wrong, what to do
  std::string user;     // the authenticated user, when there is one
  bool cached = false;
  // A kept allowance past its TTL: the API server could not be asked (allowed_stale_grace).
  bool stale = false;
};

class MetricsAuthorizer {
 public:
  MetricsAuthorizer(kube::KubeClient& client, kube::Clock& clock, MetricsAuthOptions options = {});

  // `authorization` is the request's Authorization header ("" when absent), `path` the URL
  // path asked for.
  AuthDecision Authorize(std::string_view authorization, std::string_view path,
                         const std::stop_token& stop = {});

  // Reviews sent to the API server so far (both kinds), for tests and figures.
  std::uint64_t reviews_sent() const;
  std::size_t cached_entries() const;

 private:
  struct Entry {
    AuthDecision decision;
    kube::Clock::TimePoint expires;
    kube::Clock::TimePoint ask_again{};  // serving it stale: no review before this
    bool stale_logged = false;
  };
  // `transient` is set when the API server could not answer (429, 5xx, transport).
  AuthDecision Review(const std::string& token, std::string_view path, const std::stop_token& stop,
                      bool& transient);
  kube::Clock::TimePoint KeptUntil(const Entry& entry) const;
  void Remember(const std::string& key, const AuthDecision& decision);

  kube::KubeClient& client_;
  kube::Clock& clock_;
  MetricsAuthOptions options_;
  kube::TokenBucket budget_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> cache_;  // sha256(token) + " " + path → decision
  std::uint64_t reviews_ = 0;
  int in_flight_ = 0;
};

}  // namespace capwatch::controller
