#pragma once

#include <chrono>
#include <cstdint>
#include <random>

#include "kube/clock.h"

namespace capwatch::kube {

// Exponential backoff with jitter and a reset after a healthy period, as the watch loop and
// the transport's retries use it: Next() returns initial, 2x, 4x ... up to max, each
// stretched by up to `jitter` (0.5 = +0..50%).
struct BackoffOptions {
  std::chrono::milliseconds initial{800};
  std::chrono::milliseconds max{30'000};
  double factor = 2.0;
  double jitter = 0.5;
  // After this long without a failure the next failure starts from `initial` again.
  std::chrono::milliseconds reset_after{120'000};
};

class Backoff {
 public:
  Backoff(const Clock& clock, BackoffOptions options, std::uint64_t seed = std::random_device{}());

  // The delay before the next attempt.
  Clock::Duration Next();
  // Call when things work again: after `reset_after` of health the next failure starts over.
  void MarkHealthy();
  void Reset() { attempt_ = 0; }
  int attempt() const { return attempt_; }

  // A random duration in [d, d*(1+jitter)], for spreading reconnects of many clients.
  Clock::Duration Jitter(Clock::Duration d, double jitter);

 private:
  const Clock& clock_;
  BackoffOptions options_;
  std::mt19937_64 rng_;
  int attempt_ = 0;
  Clock::TimePoint last_failure_{};
  bool healthy_since_set_ = false;
  Clock::TimePoint healthy_since_{};
};

}  // namespace capwatch::kube
