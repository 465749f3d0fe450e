#pragma once

#include <chrono>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stop_token>
#include <string>

#include "kube/clock.h"
#include "kube/kube_client.h"
#include "metrics/metrics.h"

namespace capwatch::controller {

struct EventRecorderOptions {
  int max_attempts = 10;  // then the Event is dropped, counted as result="dropped"
  std::chrono::milliseconds base_delay{1000};  // doubles per failed attempt
  std::chrono::milliseconds max_delay{60'000};
  std::size_t max_pending = 10'000;  // beyond this the oldest waiting Event is dropped
};

// Posts Kubernetes Events, retrying failed posts with backoff (an API server that is briefly
// away must not lose the DangerousCapabilityGranted Event of a grant already counted).
class EventRecorder {
 public:
  EventRecorder(kube::KubeClient& client, kube::Clock& clock, Metrics& metrics,
                EventRecorderOptions options = {});

  // Posts the Event now; a failed post is kept and retried by Flush.
  void Record(const std::string& namespace_name, nlohmann::json event, const std::stop_token& stop);
  // Retries the Events whose delay is over. Returns how many are still waiting.
  std::size_t Flush(const std::stop_token& stop);
  std::size_t pending() const;

 private:
  struct Waiting {
    std::string namespace_name;
    std::string body;
    int attempts = 0;
    kube::Clock::TimePoint due;
  };
  enum class PostResult { kPosted, kRetry, kDrop };
  PostResult Post(const Waiting& event, const std::stop_token& stop);
  void Reschedule(Waiting event);

  kube::KubeClient& client_;
  kube::Clock& clock_;
  Metrics& metrics_;
  EventRecorderOptions options_;
  mutable std::mutex mu_;
  std::deque<Waiting> waiting_;
};

}  // namespace capwatch::controller
