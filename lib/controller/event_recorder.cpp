#include "controller/event_recorder.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "controller/api_outcomes.h"

namespace capwatch::controller {

EventRecorder::EventRecorder(kube::KubeClient& client, kube::Clock& clock, Metrics& metrics,
                             EventRecorderOptions options)
    : client_(client), clock_(clock), metrics_(metrics), options_(options) {}

EventRecorder::PostResult EventRecorder::Post(const Waiting& event, const std::stop_token& stop) {
  auto r = client_.Create({"", "v1", "events", event.namespace_name}, event.body, {}, stop);
  if (r.ok()) {
    metrics_.EventPosted("posted");
    return PostResult::kPosted;
  }
  const kube::ApiStatus& s = r.error();
  if (NamespaceTerminating(s) || s.IsNotFound() || s.reason() == kube::StatusReason::kInvalid) {
    spdlog::warn("recording an event in {}: {}; not retried", event.namespace_name, s.ToString());
    metrics_.EventPosted("dropped");
    return PostResult::kDrop;
  }
  spdlog::warn("recording an event in {} (attempt {}): {}; will retry", event.namespace_name,
               event.attempts + 1, s.ToString());
  return PostResult::kRetry;
}

void EventRecorder::Reschedule(Waiting event) {
  ++event.attempts;
  if (event.attempts >= options_.max_attempts) {
    spdlog::error("giving up on an event in {} after {} attempts", event.namespace_name,
                  event.attempts);
    metrics_.EventPosted("dropped");
    return;
  }
  metrics_.EventPosted("retried");
  auto delay = options_.base_delay * (1LL << std::min(event.attempts - 1, 20));
  event.due = clock_.Now() + std::min<kube::Clock::Duration>(delay, options_.max_delay);
  std::lock_guard lock(mu_);
  if (waiting_.size() >= options_.max_pending) {
    waiting_.pop_front();
    metrics_.EventPosted("dropped");
  }
  waiting_.push_back(std::move(event));
}

void EventRecorder::Record(const std::string& namespace_name, nlohmann::json event,
                           const std::stop_token& stop) {
  Waiting w{namespace_name, event.dump(), 0, clock_.Now()};
  if (Post(w, stop) == PostResult::kRetry) Reschedule(std::move(w));
}

std::size_t EventRecorder::Flush(const std::stop_token& stop) {
  std::deque<Waiting> due;
  {
    std::lock_guard lock(mu_);
    const auto now = clock_.Now();
    for (auto it = waiting_.begin(); it != waiting_.end();) {
      if (it->due <= now) {
        due.push_back(std::move(*it));
        it = waiting_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& w : due) {
    if (stop.stop_requested() || Post(w, stop) == PostResult::kRetry) Reschedule(std::move(w));
  }
  return pending();
}

std::size_t EventRecorder::pending() const {
  std::lock_guard lock(mu_);
  return waiting_.size();
}

}  // namespace capwatch::controller
