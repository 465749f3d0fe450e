#pragma once

#include <chrono>
#include <stop_token>

namespace capwatch::kube {

// Time, behind an interface so tests can run backoffs and lease expiry without waiting.
class Clock {
 public:
  using Duration = std::chrono::steady_clock::duration;
  using TimePoint = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;

  // Monotonic time, for intervals, backoffs and rate limits.
  virtual TimePoint Now() const = 0;
  // Wall time, for what the API server stores (Lease renewTime) and credential expiry.
  virtual std::chrono::system_clock::time_point WallNow() const = 0;
  // Sleeps for `d` unless `stop` is requested first; returns false when it was.
  virtual bool SleepFor(Duration d, const std::stop_token& stop) = 0;
};

// The process's real clock.
Clock& SystemClock();

}  // namespace capwatch::kube
