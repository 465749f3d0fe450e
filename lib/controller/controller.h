#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "controller/admission_sync.h"
#include "controller/cluster_views.h"
#include "controller/event_recorder.h"
#include "controller/grant_ledger.h"
#include "controller/metadata_informer.h"
#include "controller/pod_informer.h"
#include "controller/policy_status_writer.h"
#include "controller/reconciler.h"
#include "controller/workload_index.h"
#include "kube/clock.h"
#include "kube/kube_client.h"
#include "kube/work_queue.h"
#include "metrics/metrics.h"

namespace capwatch::controller {

// What the very first start in a cluster (no CapabilityReport of capwatch's exists yet) does
// with the dangerous grants that already run: announce each once (count + Event), or record
// them in the reports silently (the violation gauges still show them).
enum class InitialGrants { kAnnounce, kRecord };

struct ControllerOptions {
  int workers = 2;
  // A workload is reconciled this long after the first event that touched it, so a burst of
  // Pod events (a rollout) becomes one evaluation and at most one report write.
  std::chrono::milliseconds coalesce{1000};
  // A report whose only change is its Pod count is rewritten at most this often.
  std::chrono::seconds pod_count_refresh{30};
  // Policy statuses are brought up to date this often, however busy the queue is.
  std::chrono::milliseconds status_interval{2000};
  kube::WorkQueueOptions queue{std::chrono::milliseconds(50), std::chrono::milliseconds(60'000), 20,
                               50};
  EventRecorderOptions events;
  std::string identity = "capwatch";  // Events' reportingInstance
  InitialGrants initial_grants = InitialGrants::kAnnounce;
  // A deleted Pod's last state waits this long for an evaluation (followers never do one).
  std::chrono::minutes departed_ttl{10};
  // /readyz fails while an informer has not been watching for longer than this.
  std::chrono::seconds unsynced_after{60};
  // /healthz fails when keys wait and no reconcile has finished for this long.
  std::chrono::seconds stalled_after{120};
  // Pods are listed and watched as protobuf: the API server serves it faster and in fewer
  // bytes than JSON. False: JSON, as for every other kind.
  bool pods_protobuf = true;
  // Generated ValidatingAdmissionPolicies for policies with spec.enforcement.
  AdmissionSyncOptions admission;
  // Each CapabilityReport projected into a shared report format (--policy-reports).
  PolicyReportMode policy_reports = PolicyReportMode::kOff;
};

// capwatch's controller (DESIGN §5, STYLE 3, 9): informers keep compact caches; handlers only
// file Pods in the WorkloadIndex and enqueue WorkloadKeys; workers hand each key to the
// Reconciler and act on the outcome it returns, in Process(); the GrantLedger, EventRecorder
// and PolicyStatusWriter each keep one concern.
class Controller {
 public:
  Controller(kube::KubeClient& client, kube::Clock& clock, Metrics& metrics,
             ControllerOptions options);
  ~Controller();
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // Starts the informers (and housekeeping) on their own threads; they run until `stop`.
  void StartInformers(std::stop_token stop);
  // True once every informer has listed once.
  bool Synced() const;
  bool WaitForSync(const std::stop_token& stop, std::chrono::milliseconds timeout) const;
  // Reconciles until `stop` (only the leader calls this: it is the only writer). Returns
  // promptly after `stop` or when the write fence closes, whatever the backlog.
  void RunWorkers(std::stop_token stop);
  // The leader fence: asked before every write; when it turns false, in-flight writes are
  // cancelled and the workers stop.
  void SetWriteFence(std::function<bool()> may_write);

  // Probes: ready while every informer is synced and watching (or was, within
  // unsynced_after); healthy unless keys wait and no reconcile finished within stalled_after.
  bool Ready(std::string* why = nullptr) const;
  bool Healthy(std::string* why = nullptr) const;

  // For tests, in place of the threads: one Step of every informer's reflector; the start of
  // RunWorkers; every key that is ready now, processed; the leader's periodic work; the
  // housekeeping every replica does.
  void StepInformers(const std::stop_token& stop);
  void BeginWork();
  int ProcessReady(const std::stop_token& stop);
  void LeaderTick(const std::stop_token& stop);
  void Housekeeping();

  const WorkloadIndex& index() const { return index_; }
  const GrantLedger& ledger() const { return ledger_; }
  const EventRecorder& events() const { return events_; }
  const Reconciler& reconciler() const { return reconciler_; }
  const PolicyStatusWriter& statuses() const { return statuses_; }
  const AdmissionSync& admission() const { return admission_; }
  const PolicyReportWriter& policy_reports() const { return policy_reports_; }
  const kube::WorkQueue& queue() const { return queue_; }
  bool initial_pass_done() const;
  // Per-key state the controller itself keeps (initial pass, given-up keys): for the
  // bounded-memory test.
  std::size_t tracked_keys() const;

 private:
  void OnPod(const PodView& pod);
  void OnPodDeleted(const PodView& pod);
  void Enqueue(const WorkloadKey& key);
  void EnqueueAll();
  void EnqueueNamespace(const std::string& namespace_name);
  void EnqueueOrphans();
  void Process(const std::string& key, const std::stop_token& stop);
  void ExportInformerStats();

  kube::KubeClient& client_;
  kube::Clock& clock_;
  Metrics& metrics_;
  ControllerOptions options_;

  PodInformer pods_;
  MetadataInformer replica_sets_;
  MetadataInformer jobs_;
  NamespaceInformer namespaces_;
  PolicyInformer policies_;
  ReportInformer reports_;
  OwnerLookup owner_lookup_;
  WorkloadIndex index_;
  GrantLedger ledger_;
  EventRecorder events_;
  AdmissionSync admission_;
  PolicyStatusWriter statuses_;
  PolicyReportWriter policy_reports_;
  Reconciler reconciler_;
  kube::WorkQueue queue_;
  std::vector<std::jthread> threads_;
  std::function<bool()> may_write_;

  mutable std::mutex mu_;                  // guards the members below
  std::set<std::string> initial_pending_;  // keys of the first pass not yet reconciled
  bool initial_done_ = false;
  bool working_ = false;
  std::set<std::string> given_up_;  // keys logged as given up (logged once)
  kube::Clock::TimePoint last_progress_{};
  kube::Clock::TimePoint last_status_{};
  std::map<std::string, kube::Clock::TimePoint> last_watching_;  // resource → when
  std::map<std::string, kube::ReflectorStats> exported_;         // resource → stats exported
};

}  // namespace capwatch::controller
