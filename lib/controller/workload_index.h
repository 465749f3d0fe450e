#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "controller/workload_key.h"
#include "kube/clock.h"
#include "workload/owner_resolution.h"
#include "workload/pod_view.h"

namespace capwatch::controller {

// Which Pods belong to which workload, as the Pod informer's handlers file them. Also keeps the
// last state of a Pod that was deleted before its workload was evaluated with it (a Pod that
// lived 200 ms inside the coalescing window): the next evaluation still sees it, so its grants
// are reported and counted. Thread-safe; handlers write, workers read.
class WorkloadIndex {
 public:
  struct Departed {
    std::shared_ptr<const PodView> pod;  // as the DELETED event had it
    kube::Clock::TimePoint at;
  };
  struct Entry {
    WorkloadRef ref;                 // from the Pods' owner chain
    std::set<std::string> pods;      // pod keys (namespace/name) in the cache now
    std::vector<Departed> departed;  // deleted before an evaluation saw them
  };

  // Files the Pod under `key`. Returns the workload it was filed under before, when that
  // differs (its owner arrived in the cache after it, or it was adopted or orphaned).
  std::optional<WorkloadKey> Upsert(const PodView& pod, const WorkloadKey& key,
                                    const WorkloadRef& ref, kube::Clock::TimePoint now);
  // The workload the Pod is filed under; nullopt for a Pod not in the index.
  std::optional<WorkloadKey> WorkloadOf(const std::string& pod_key) const;
  // When the Pod was first filed; nullopt for a Pod not in the index.
  std::optional<kube::Clock::TimePoint> FirstSeen(const std::string& pod_key) const;
  // The Pod was deleted; `final_state` is what the DELETED event carried. Returns its workload.
  std::optional<WorkloadKey> Remove(const std::string& pod_key,
                                    std::shared_ptr<const PodView> final_state,
                                    kube::Clock::TimePoint now);
  std::optional<Entry> Get(const WorkloadKey& key) const;
  // An evaluation of `key` saw these Pods in these states (pod key → containers), and every
  // departed Pod up to `departed_seen`.
  void MarkEvaluated(const WorkloadKey& key, const std::map<std::string, std::size_t>& pods,
                     std::size_t departed_seen);
  // Forgets a workload that has no Pods and nothing departed; true when it did.
  bool EraseIfEmpty(const WorkloadKey& key);
  // Drops departed Pods recorded before `cutoff` (nobody evaluated them: a follower, or a
  // workload given up on), and workloads left empty. Returns the keys it erased.
  std::vector<WorkloadKey> Prune(kube::Clock::TimePoint cutoff);

  std::vector<WorkloadKey> Keys() const;
  std::vector<WorkloadKey> KeysIn(std::string_view namespace_name) const;
  bool Contains(const WorkloadKey& key) const;
  std::size_t workloads() const;
  std::size_t pods() const;
  // Every per-Pod record, including the evaluated-state memory: for the bounded-memory test.
  std::size_t records() const;

 private:
  struct PodRecord {
    WorkloadKey workload;
    // Containers of the state an evaluation saw; nullopt when none has. A Pod's containers can
    // only grow (ephemeral containers), so a different count means an unseen state.
    std::optional<std::size_t> evaluated_containers;
    kube::Clock::TimePoint first_seen;
  };

  mutable std::mutex mu_;
  std::map<WorkloadKey, Entry> workloads_;
  std::unordered_map<std::string, PodRecord> pods_;  // pod key → its record
};

}  // namespace capwatch::controller
