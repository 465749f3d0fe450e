#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "kube/backoff.h"
#include "kube/clock.h"
#include "kube/credentials.h"
#include "kube/kube_client.h"
#include "kube/kubeconfig.h"
#include "kube/rate_limiter.h"

namespace capwatch::kube {

std::string_view CapwatchUserAgent();  // "capwatch/<version>"

struct TransportOptions {
  // Every read of a plain request (connect, headers, each body chunk).
  std::chrono::milliseconds request_timeout{30'000};
  // A watch's reads may be quiet for its timeoutSeconds; its client's timeout is that plus this.
  std::chrono::milliseconds watch_read_grace{30'000};
  // Client-side rate limit (--kube-api-qps, --kube-api-burst); qps <= 0 turns it off.
  double qps = 20;
  int burst = 30;
  // Retries of reads on 429 and 5xx (and of writes on 429), after the first attempt.
  int max_retries = 4;
  BackoffOptions retry_backoff{std::chrono::milliseconds(250), std::chrono::milliseconds(8'000),
                               2.0, 0.5, std::chrono::milliseconds(60'000)};
  // A Retry-After larger than this is capped.
  std::chrono::milliseconds max_retry_after{60'000};
  std::string user_agent{CapwatchUserAgent()};
  // Called once per HTTP exchange (code 0 for a transport failure), for metrics.
  std::function<void(Verb verb, int code)> on_response;
  // Timeout and output limits of an exec credential plugin (users[].user.exec).
  ExecPluginOptions exec_plugin;
};

// The KubeClient on StreamingHttpClient: TLS verified against the configured CA (and only that CA),
// client certificates, bearer tokens from a CredentialSource, a token bucket, and retries.
class RestClient final : public KubeClient {
 public:
  // Checks the TLS material up front so a bad certificate is a configuration error, not a
  // failure of every request. Refuses an http:// server unless config.allow_insecure_http.
  static Result<std::unique_ptr<RestClient>> Make(RestConfig config, TransportOptions options = {},
                                                  Clock& clock = SystemClock());
  ~RestClient() override;

  Result<std::string> Send(const Request& request, const std::stop_token& stop) override;
  Result<std::unique_ptr<WatchStream>> Watch(const ResourceRef& resource,
                                             const ListOptions& options,
                                             const std::stop_token& stop) override;

  const RestConfig& config() const { return config_; }
  // HTTP exchanges made, retries included.
  std::uint64_t exchanges() const { return exchanges_.load(); }

 private:
  struct Impl;
  RestClient(RestConfig config, TransportOptions options, Clock& clock);
  // One exchange. A transport failure is the returned status; otherwise `code`, `body` and
  // `retry_after` are the server's answer.
  // `no_retry`: the request's on_body has seen part of the body, so a failure is final.
  ApiStatus Exchange(const Request& request, const std::string& token, const std::stop_token& stop,
                     int& code, std::string& body, std::optional<std::chrono::seconds>& retry_after,
                     bool& no_retry);

  RestConfig config_;
  TransportOptions options_;
  Clock& clock_;
  std::unique_ptr<Impl> impl_;
  std::atomic<std::uint64_t> exchanges_{0};
};

}  // namespace capwatch::kube
