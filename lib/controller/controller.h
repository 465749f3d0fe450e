#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "controller/cluster_views.h"
#include "kube/clock.h"
#include "kube/kube_client.h"
#include "kube/metadata_informer.h"
#include "kube/pod_informer.h"
#include "kube/work_queue.h"
#include "metrics/metrics.h"

namespace capwatch::controller {

struct ControllerOptions {
  int workers = 2;
  // A workload is reconciled this long after the first event that touched it, so a burst of
  // Pod events (a rollout) becomes one evaluation and at most one report write.
  std::chrono::milliseconds coalesce{1000};
  // A report whose only change is its Pod count is rewritten at most this often.
  std::chrono::seconds pod_count_refresh{30};
  std::chrono::seconds status_interval{5};
  kube::WorkQueueOptions queue{std::chrono::milliseconds(50), std::chrono::milliseconds(60'000), 20,
                               50};
  std::string identity = "capwatch";  // Events' reportingInstance
};

// capwatch's controller (DESIGN §5, STYLE 3): informers keep compact caches, handlers only
// enqueue workload keys, workers reconcile one workload at a time and write its
// CapabilityReport only when its content changed.
class Controller {
 public:
  Controller(kube::KubeClient& client, kube::Clock& clock, Metrics& metrics,
             ControllerOptions options);
  ~Controller();
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // Starts the informers on their own threads; they run until `stop`.
  void StartInformers(std::stop_token stop);
  // True once every informer has listed once.
  bool Synced() const;
  bool WaitForSync(const std::stop_token& stop, std::chrono::milliseconds timeout) const;
  // Reconciles until `stop` (only the leader calls this: it is the only writer).
  void RunWorkers(std::stop_token stop);

 private:
  struct WorkloadEntry {
    WorkloadRef ref;
    std::string namespace_name;
    std::set<std::string> pods;  // pod keys
  };

  // Handlers: update the index, enqueue keys.
  void IndexPod(const PodView& pod);
  void UnindexPod(const PodView& pod);
  void EnqueueAll();
  void EnqueueNamespace(const std::string& namespace_name);
  void EnqueueOrphans();

  std::string WorkloadKeyOf(const PodView& pod, WorkloadRef* ref) const;
  void Reconcile(const std::string& key);
  void DeleteReport(const std::string& key, const std::string& ns, const std::string& name);
  void RecordGrantEvents(const WorkloadRef& ref, const std::string& ns, const std::string& name,
                         const std::vector<DangerousGrant>& grants);
  void WritePolicyStatuses(const std::stop_token& stop);
  // Moves the informers' counters into the metrics; every replica does this, leader or not.
  void ExportInformerStats();

  kube::KubeClient& client_;
  kube::Clock& clock_;
  Metrics& metrics_;
  ControllerOptions options_;

  kube::PodInformer pods_;
  kube::MetadataInformer replica_sets_;
  kube::MetadataInformer jobs_;
  NamespaceInformer namespaces_;
  PolicyInformer policies_;
  ReportInformer reports_;
  OwnerLookup owner_lookup_;
  kube::WorkQueue queue_;
  std::vector<std::jthread> threads_;

  mutable std::mutex mu_;                            // guards the maps below
  std::map<std::string, WorkloadEntry> workloads_;   // workload key → its Pods
  std::map<std::string, std::string> pod_workload_;  // pod key → workload key
  std::map<std::string, std::string> written_hash_;  // workload key → last hash written
  std::map<std::string, kube::Clock::TimePoint> written_at_;
  // workload key → policy → failing findings, for the policies' status.
  std::map<std::string, std::map<std::string, int>> policy_tally_;
  std::map<std::string, std::string> status_written_;     // policy → status JSON last written
  std::map<std::string, kube::ReflectorStats> exported_;  // resource → stats already exported
};

}  // namespace capwatch::controller
