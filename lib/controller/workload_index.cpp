#include "controller/workload_index.h"

#include "kube/informer.h"

namespace capwatch::controller {

std::optional<WorkloadKey> WorkloadIndex::Upsert(const PodView& pod, const WorkloadKey& key,
                                                 const WorkloadRef& ref,
                                                 kube::Clock::TimePoint now) {
  const std::string pod_key = kube::ObjectKey(pod.namespace_name, pod.name);
  std::optional<WorkloadKey> moved_from;
  std::lock_guard lock(mu_);
  auto [it, inserted] = pods_.try_emplace(pod_key, PodRecord{key, std::nullopt, now});
  if (!inserted && it->second.workload != key) {
    moved_from = it->second.workload;
    if (auto w = workloads_.find(*moved_from); w != workloads_.end()) w->second.pods.erase(pod_key);
    it->second.workload = key;
  }
  Entry& entry = workloads_[key];
  if (entry.ref.uid.empty() || !ref.uid.empty()) entry.ref = ref;
  entry.pods.insert(pod_key);
  return moved_from;
}

std::optional<WorkloadKey> WorkloadIndex::Remove(const std::string& pod_key,
                                                 std::shared_ptr<const PodView> final_state,
                                                 kube::Clock::TimePoint now) {
  std::lock_guard lock(mu_);
  auto it = pods_.find(pod_key);
  if (it == pods_.end()) return std::nullopt;
  const WorkloadKey key = it->second.workload;
  const bool unseen =
      final_state != nullptr && it->second.evaluated_containers != final_state->containers.size();
  pods_.erase(it);
  auto w = workloads_.find(key);
  if (w == workloads_.end()) return key;
  w->second.pods.erase(pod_key);
  if (unseen) w->second.departed.push_back({std::move(final_state), now});
  return key;
}

std::optional<WorkloadKey> WorkloadIndex::WorkloadOf(const std::string& pod_key) const {
  std::lock_guard lock(mu_);
  auto it = pods_.find(pod_key);
  if (it == pods_.end()) return std::nullopt;
  return it->second.workload;
}

std::optional<kube::Clock::TimePoint> WorkloadIndex::FirstSeen(const std::string& pod_key) const {
  std::lock_guard lock(mu_);
  auto it = pods_.find(pod_key);
  if (it == pods_.end()) return std::nullopt;
  return it->second.first_seen;
}

std::optional<WorkloadIndex::Entry> WorkloadIndex::Get(const WorkloadKey& key) const {
  std::lock_guard lock(mu_);
  auto it = workloads_.find(key);
  if (it == workloads_.end()) return std::nullopt;
  return it->second;
}

void WorkloadIndex::MarkEvaluated(const WorkloadKey& key,
                                  const std::map<std::string, std::size_t>& pods,
                                  std::size_t departed_seen) {
  std::lock_guard lock(mu_);
  for (const auto& [pod_key, containers] : pods) {
    auto it = pods_.find(pod_key);
    if (it != pods_.end() && it->second.workload == key) {
      it->second.evaluated_containers = containers;
    }
  }
  auto w = workloads_.find(key);
  if (w == workloads_.end()) return;
  auto& departed = w->second.departed;
  departed.erase(departed.begin(), departed.begin() + static_cast<std::ptrdiff_t>(std::min(
                                                          departed_seen, departed.size())));
}

bool WorkloadIndex::EraseIfEmpty(const WorkloadKey& key) {
  std::lock_guard lock(mu_);
  auto it = workloads_.find(key);
  if (it == workloads_.end()) return true;
  if (!it->second.pods.empty() || !it->second.departed.empty()) return false;
  workloads_.erase(it);
  return true;
}

std::vector<WorkloadKey> WorkloadIndex::Prune(kube::Clock::TimePoint cutoff) {
  std::vector<WorkloadKey> erased;
  std::lock_guard lock(mu_);
  for (auto it = workloads_.begin(); it != workloads_.end();) {
    auto& departed = it->second.departed;
    std::erase_if(departed, [&](const Departed& d) { return d.at < cutoff; });
    if (it->second.pods.empty() && departed.empty()) {
      erased.push_back(it->first);
      it = workloads_.erase(it);
    } else {
      ++it;
    }
  }
  return erased;
}

std::vector<WorkloadKey> WorkloadIndex::Keys() const {
  std::lock_guard lock(mu_);
  std::vector<WorkloadKey> keys;
  keys.reserve(workloads_.size());
  for (const auto& [key, entry] : workloads_) keys.push_back(key);
  return keys;
}

std::vector<WorkloadKey> WorkloadIndex::KeysIn(std::string_view namespace_name) const {
  std::lock_guard lock(mu_);
  std::vector<WorkloadKey> keys;
  auto it = workloads_.lower_bound(WorkloadKey{std::string(namespace_name), ""});
  for (; it != workloads_.end() && it->first.namespace_name == namespace_name; ++it) {
    keys.push_back(it->first);
  }
  return keys;
}

bool WorkloadIndex::Contains(const WorkloadKey& key) const {
  std::lock_guard lock(mu_);
  return workloads_.count(key) != 0;
}

std::size_t WorkloadIndex::workloads() const {
  std::lock_guard lock(mu_);
  return workloads_.size();
}

std::size_t WorkloadIndex::pods() const {
  std::lock_guard lock(mu_);
  return pods_.size();
}

std::size_t WorkloadIndex::records() const {
  std::lock_guard lock(mu_);
  std::size_t n = pods_.size();
  for (const auto& [key, entry] : workloads_) n += 1 + entry.pods.size() + entry.departed.size();
  return n;
}

}  // namespace capwatch::controller
