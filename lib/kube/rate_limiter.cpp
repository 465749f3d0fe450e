#include "kube/rate_limiter.h"

#include <algorithm>

namespace capwatch::kube {

TokenBucket::TokenBucket(Clock& clock, double qps, int burst)
    : clock_(clock), qps_(qps), burst_(std::max(1, burst)), tokens_(burst_), last_(clock.Now()) {}

void TokenBucket::Refill() {
  const auto now = clock_.Now();
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  if (elapsed > 0) {
    tokens_ = std::min(burst_, tokens_ + elapsed * qps_);
    last_ = now;
  }
}

Clock::Duration TokenBucket::Reserve() {
  if (qps_ <= 0) return Clock::Duration::zero();
  std::lock_guard lock(mu_);
  return ReserveLocked();
}

Clock::Duration TokenBucket::ReserveLocked() {
  Refill();
  tokens_ -= 1.0;  // may go negative: the debt is what later callers wait for
  if (tokens_ >= 0) return Clock::Duration::zero();
  return std::chrono::duration_cast<Clock::Duration>(
      std::chrono::duration<double>(-tokens_ / qps_));
}

bool TokenBucket::Wait(const std::stop_token& stop) {
  if (qps_ <= 0) return true;
  Clock::Duration delay;
  {
    std::lock_guard lock(mu_);
    delay = ReserveLocked();
  }
  if (delay == Clock::Duration::zero()) return !stop.stop_requested();
  return clock_.SleepFor(delay, stop);
}

bool TokenBucket::TryTake() {
  if (qps_ <= 0) return true;
  std::lock_guard lock(mu_);
  Refill();
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

Clock::Duration TokenBucket::Delay() {
  if (qps_ <= 0) return Clock::Duration::zero();
  std::lock_guard lock(mu_);
  Refill();
  if (tokens_ >= 1.0) return Clock::Duration::zero();
  return std::chrono::duration_cast<Clock::Duration>(
      std::chrono::duration<double>((1.0 - tokens_) / qps_));
}

}  // namespace capwatch::kube
