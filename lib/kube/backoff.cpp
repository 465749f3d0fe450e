#include "kube/backoff.h"

#include <algorithm>
#include <cmath>

namespace capwatch::kube {

Backoff::Backoff(const Clock& clock, BackoffOptions options, std::uint64_t seed)
    : clock_(clock), options_(options), rng_(seed) {}

Clock::Duration Backoff::Jitter(Clock::Duration d, double jitter) {
  if (jitter <= 0) return d;
  std::uniform_real_distribution<double> dist(0.0, jitter);
  const double stretched = static_cast<double>(d.count()) * (1.0 + dist(rng_));
  return Clock::Duration(static_cast<Clock::Duration::rep>(stretched));
}

Clock::Duration Backoff::Next() {
  const auto now = clock_.Now();
  if (healthy_since_set_ && now - healthy_since_ >= options_.reset_after) attempt_ = 0;
  healthy_since_set_ = false;
  const double base =
      static_cast<double>(std::chrono::duration_cast<Clock::Duration>(options_.initial).count());
  const double cap =
      static_cast<double>(std::chrono::duration_cast<Clock::Duration>(options_.max).count());
  const double raw = std::min(cap, base * std::pow(options_.factor, std::min(attempt_, 62)));
  ++attempt_;
  last_failure_ = now;
  // Jitter, but never beyond the cap.
  auto d = Jitter(Clock::Duration(static_cast<Clock::Duration::rep>(raw)), options_.jitter);
  return std::min(d, Clock::Duration(static_cast<Clock::Duration::rep>(cap)));
}

void Backoff::MarkHealthy() {
  if (healthy_since_set_) return;
  healthy_since_set_ = true;
  healthy_since_ = clock_.Now();
}

}  // namespace capwatch::kube
