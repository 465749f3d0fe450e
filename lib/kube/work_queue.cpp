#include "kube/work_queue.h"

#include <algorithm>
#include <cmath>

namespace capwatch::kube {

WorkQueue::WorkQueue(Clock& clock, WorkQueueOptions options)
    : clock_(clock), options_(options), bucket_(clock, options.qps, options.burst) {}

void WorkQueue::AddLocked(const std::string& key) {
  if (shutting_down_ || dirty_.count(key) != 0) return;
  dirty_.insert(key);
  if (processing_.count(key) != 0) return;  // re-queued by Done
  queue_.push_back(key);
  cv_.notify_one();
}

void WorkQueue::Add(const std::string& key) {
  std::lock_guard lock(mu_);
  AddLocked(key);
}

void WorkQueue::AddAfter(const std::string& key, Clock::Duration delay) {
  std::lock_guard lock(mu_);
  if (shutting_down_) return;
  if (delay <= Clock::Duration::zero()) {
    AddLocked(key);
    return;
  }
  const auto due = clock_.Now() + delay;
  auto it = waiting_at_.find(key);
  if (it != waiting_at_.end()) {
    if (it->second <= due) return;  // already waiting, and for less
    auto range = waiting_.equal_range(it->second);
    for (auto w = range.first; w != range.second; ++w) {
      if (w->second == key) {
        waiting_.erase(w);
        break;
      }
    }
  }
  waiting_.emplace(due, key);
  waiting_at_[key] = due;
  cv_.notify_all();
}

Clock::Duration WorkQueue::When(const std::string& key) {
  int failures;
  {
    std::lock_guard lock(mu_);
    failures = failures_[key]++;
  }
  const double base = std::chrono::duration<double>(options_.base_delay).count();
  const double max = std::chrono::duration<double>(options_.max_delay).count();
  const double item = std::min(max, base * std::pow(2.0, std::min(failures, 60)));
  const auto per_item =
      std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(item));
  return std::max(per_item, bucket_.Reserve());
}

void WorkQueue::AddRateLimited(const std::string& key) { AddAfter(key, When(key)); }

void WorkQueue::Forget(const std::string& key) {
  std::lock_guard lock(mu_);
  failures_.erase(key);
}

int WorkQueue::NumRequeues(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

void WorkQueue::PromoteDueLocked() {
  const auto now = clock_.Now();
  while (!waiting_.empty() && waiting_.begin()->first <= now) {
    std::string key = std::move(waiting_.begin()->second);
    waiting_.erase(waiting_.begin());
    waiting_at_.erase(key);
    AddLocked(key);
  }
}

bool WorkQueue::Get(std::string& key) {
  std::unique_lock lock(mu_);
  for (;;) {
    PromoteDueLocked();
    if (!queue_.empty()) {
      key = std::move(queue_.front());
      queue_.pop_front();
      dirty_.erase(key);
      processing_.insert(key);
      return true;
    }
    if (shutting_down_) return false;
    if (waiting_.empty()) {
      cv_.wait(lock);
    } else {
      const auto delay = waiting_.begin()->first - clock_.Now();
      cv_.wait_for(lock, std::max(delay, Clock::Duration(std::chrono::microseconds(100))));
    }
  }
}

bool WorkQueue::TryGet(std::string& key) {
  std::lock_guard lock(mu_);
  PromoteDueLocked();
  if (queue_.empty()) return false;
  key = std::move(queue_.front());
  queue_.pop_front();
  dirty_.erase(key);
  processing_.insert(key);
  return true;
}

void WorkQueue::Done(const std::string& key) {
  std::lock_guard lock(mu_);
  processing_.erase(key);
  if (dirty_.count(key) != 0 && !shutting_down_) {
    queue_.push_back(key);
    cv_.notify_one();
  }
}

void WorkQueue::ShutDown() {
  std::lock_guard lock(mu_);
  shutting_down_ = true;
  waiting_.clear();
  waiting_at_.clear();
  cv_.notify_all();
}

bool WorkQueue::shutting_down() const {
  std::lock_guard lock(mu_);
  return shutting_down_;
}

std::size_t WorkQueue::Len() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

std::size_t WorkQueue::Due() const {
  std::lock_guard lock(mu_);
  const auto now = clock_.Now();
  std::size_t due = queue_.size();
  for (auto it = waiting_.begin(); it != waiting_.end() && it->first <= now; ++it) ++due;
  return due;
}

std::size_t WorkQueue::Waiting() const {
  std::lock_guard lock(mu_);
  return waiting_.size();
}

}  // namespace capwatch::kube
