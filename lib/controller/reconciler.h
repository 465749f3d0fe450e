#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <stop_token>
#include <string>
#include <vector>

#include "controller/cluster_views.h"
#include "controller/event_recorder.h"
#include "controller/grant_ledger.h"
#include "controller/metadata_informer.h"
#include "controller/pod_informer.h"
#include "controller/policy_report_writer.h"
#include "controller/policy_status_writer.h"
#include "controller/workload_index.h"
#include "controller/workload_key.h"
#include "kube/clock.h"
#include "kube/kube_client.h"
#include "metrics/metrics.h"

namespace capwatch::controller {

// What one reconcile asks of the loop around it (controller-runtime's Result): the loop maps
// it to Forget / AddAfter / AddRateLimited in one place (Controller::Process).
struct ReconcileOutcome {
  enum class Kind {
    kDone,          // nothing more to do until the next event
    kRequeueAfter,  // look again after `after` (a throttled Pod-count refresh)
    kRetry,         // a transient failure: again with per-key backoff
    kGiveUp,        // a failure no retry can fix (422 Invalid): logged and counted, not retried
  };
  Kind kind = Kind::kDone;
  kube::Clock::Duration after{};
  std::string reason;                // for kRetry and kGiveUp
  std::vector<WorkloadKey> enqueue;  // other workloads that changed (a Pod moved between them)

  static ReconcileOutcome Done() { return {}; }
  static ReconcileOutcome RequeueAfter(kube::Clock::Duration d) {
    return {Kind::kRequeueAfter, d, {}, {}};
  }
  static ReconcileOutcome Retry(std::string why) { return {Kind::kRetry, {}, std::move(why), {}}; }
  static ReconcileOutcome GiveUp(std::string why) {
    return {Kind::kGiveUp, {}, std::move(why), {}};
  }
};

// The caches a reconcile reads (const views; the informers own them).
struct ClusterCaches {
  const PodInformer& pods;
  const OwnerLookup& owners;
  const NamespaceInformer& namespaces;
  const PolicyInformer& policies;
  const ReportInformer& reports;
};

struct ReconcilerOptions {
  // A report whose only change is its Pod count is rewritten at most this often (except to 0).
  std::chrono::seconds pod_count_refresh{30};
  std::string identity = "capwatch";  // Events' reportingInstance
  // A Pod whose ReplicaSet or Job is not cached yet (their watches are separate streams) waits
  // this long for it before it is attributed to what its ownerReference names.
  std::chrono::seconds owner_wait{30};
};

// One workload at a time: its Pods from the cache (and those deleted before anyone looked),
// every matching valid policy, the report it should have, written only when its content
// changed; then the dangerous grants that are news, counted and evented once the write is
// confirmed. Returns its outcome and never touches the queue (STYLE 9).
//
// The report lives as long as the workload: with no Pods it stays, `pods: 0`, so that the
// garbage collector removes it with its owner and its grant memory survives a scale to zero or
// a CronJob between runs. It is deleted by capwatch only when it has no owner left (the
// workload was deleted with --cascade=orphan, or the report was made by hand). When no policy
// matches any more, it stays with no findings and a note, keeping the memory.
class Reconciler {
 public:
  Reconciler(kube::KubeClient& client, kube::Clock& clock, Metrics& metrics, ClusterCaches caches,
             WorkloadIndex& index, GrantLedger& ledger, EventRecorder& events,
             PolicyStatusWriter& statuses, ReconcilerOptions options,
             PolicyReportWriter* policy_reports = nullptr);

  ReconcileOutcome Reconcile(const WorkloadKey& key, const std::stop_token& stop);

  // The workload a Pod belongs to, resolved through the owner caches. A Pod already filed
  // whose ReplicaSet or Job has left the cache (deleted with its workload, the Pod terminating)
  // stays where it is: re-filing it under the vanished owner would announce its grants again.
  WorkloadKey KeyOf(const PodView& pod, WorkloadRef* ref = nullptr) const;
  // The Pod names a ReplicaSet or Job the owner caches do not hold (yet, or any more).
  bool OwnerUnknown(const PodView& pod) const;
  // Announce new grants (count + Event), or only record them in the reports (the first pass
  // of a first start with --initial-grants=record).
  void SetAnnounce(bool announce);
  // The leader fence, asked before every write.
  void SetWriteFence(std::function<bool()> may_write);
  // The stored report was deleted (by hand, or by the garbage collector): what we wrote is no
  // longer there, though its grant memory is kept for the workload's next report.
  void ReportDeleted(const WorkloadKey& key);
  // Drops everything kept for the workload (it is gone).
  void Forget(const WorkloadKey& key);
  std::size_t tracked() const;

 private:
  struct Written {
    std::string hash;
    kube::Clock::TimePoint at;
    std::string workload_uid;
    // The grant memory as written (EncodeGrants form, as compact as the annotation): kept for
    // a report deleted behind our back (by hand, or by the garbage collector while the
    // workload's Pods still terminate).
    std::string grants;
    std::string report_uid;  // the uid the API server gave the report we wrote
  };
  ReconcileOutcome WithoutPods(const WorkloadKey& key, const ReportView* stored,
                               const std::stop_token& stop);
  ReconcileOutcome Write(const WorkloadKey& key, const WorkloadRef& ref, nlohmann::json report,
                         const ReportView* stored, const std::string& grants,
                         const std::stop_token& stop, std::string& report_uid);
  // No Pod of the workload runs now: it leaves the metrics and the policy statuses, and the
  // index once nothing is left there; its report and grant memory stay.
  void NothingRuns(const WorkloadKey& key);
  ReconcileOutcome DeleteOrphan(const WorkloadKey& key, const ReportView& stored,
                                const std::stop_token& stop);
  void Announce(const WorkloadRef& ref, const WorkloadKey& key,
                const std::vector<DangerousGrant>& grants, const std::stop_token& stop);
  bool MayWrite() const;

  kube::KubeClient& client_;
  kube::Clock& clock_;
  Metrics& metrics_;
  ClusterCaches caches_;
  WorkloadIndex& index_;
  GrantLedger& ledger_;
  EventRecorder& events_;
  PolicyStatusWriter& statuses_;
  ReconcilerOptions options_;
  PolicyReportWriter* policy_reports_;

  mutable std::mutex mu_;  // guards the members below
  bool announce_ = true;
  std::function<bool()> may_write_;
  std::map<WorkloadKey, Written> written_;  // what this process last wrote, per workload
};

}  // namespace capwatch::controller
