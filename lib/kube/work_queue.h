#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "kube/clock.h"
#include "kube/rate_limiter.h"

namespace capwatch::kube {

struct WorkQueueOptions {
  // Per item: base * 2^failures, up to max (client-go's default controller rate limiter).
  std::chrono::milliseconds base_delay{5};
  std::chrono::milliseconds max_delay{1'000'000};
  // Overall: a token bucket across all items, so a storm of failures cannot hammer the API.
  double qps = 10;
  int burst = 100;
};

// A work queue of keys ("namespace/name"), as controllers use it (client-go workqueue):
//  - a key is queued at most once however often it is added;
//  - a key being processed is not handed to a second worker; added meanwhile, it comes back
//    after Done();
//  - AddRateLimited delays a key by the larger of its own exponential backoff and the global
//    token bucket; Forget resets the key's backoff after a success.
class WorkQueue {
 public:
  explicit WorkQueue(Clock& clock, WorkQueueOptions options = {});

  void Add(const std::string& key);
  void AddAfter(const std::string& key, Clock::Duration delay);
  void AddRateLimited(const std::string& key);
  void Forget(const std::string& key);
  int NumRequeues(const std::string& key) const;
  // The delay AddRateLimited would use now (and counts the failure), without queueing.
  Clock::Duration When(const std::string& key);

  // Blocks until a key is ready; false once the queue is shut down and drained of ready keys.
  [[nodiscard]] bool Get(std::string& key);
  // Get without blocking: false when no key is ready now (for tests driven by a fake clock).
  [[nodiscard]] bool TryGet(std::string& key);
  // The worker finished `key` (successfully or not).
  void Done(const std::string& key);
  // Wakes every Get(); keys still waiting for their delay are dropped.
  void ShutDown();
  bool shutting_down() const;
  // Keys ready now (not counting those being processed or waiting for a delay).
  std::size_t Len() const;
  std::size_t Waiting() const;
  // Keys a worker could take now: ready ones plus those whose delay is over.
  std::size_t Due() const;

 private:
  void AddLocked(const std::string& key);
  void PromoteDueLocked();

  Clock& clock_;
  WorkQueueOptions options_;
  TokenBucket bucket_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::unordered_set<std::string> dirty_;  // queued or to be re-queued after Done
  std::unordered_set<std::string> processing_;
  std::multimap<Clock::TimePoint, std::string> waiting_;
  std::unordered_map<std::string, Clock::TimePoint> waiting_at_;  // earliest due time per key
  std::unordered_map<std::string, int> failures_;
  bool shutting_down_ = false;
};

}  // namespace capwatch::kube
