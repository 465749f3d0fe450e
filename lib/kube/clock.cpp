#include "kube/clock.h"

#include <condition_variable>
#include <mutex>

namespace capwatch::kube {
namespace {

class RealClock final : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::steady_clock::now(); }
  std::chrono::system_clock::time_point WallNow() const override {
    return std::chrono::system_clock::now();
  }
  bool SleepFor(Duration d, const std::stop_token& stop) override {
    if (d <= Duration::zero()) return !stop.stop_requested();
    std::mutex mu;
    std::condition_variable_any cv;
    std::unique_lock lock(mu);
    return !cv.wait_for(lock, stop, d, [] { return false; }) && !stop.stop_requested();
  }
};

}  // namespace

Clock& SystemClock() {
  static RealClock clock;
  return clock;
}

}  // namespace capwatch::kube
