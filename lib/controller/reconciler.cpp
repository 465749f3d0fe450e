#include "controller/reconciler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/utf8.h"
#include "controller/api_outcomes.h"
#include "kube/json_codec.h"
#include "kube/time_format.h"
#include "policy/evaluate.h"
#include "report/report_builder.h"

namespace capwatch::controller {
namespace {

using nlohmann::json;

// The Pods of one workload as one PodView: the newest Pod's spec (a rollout's new template),
// plus containers only other Pods have (an ephemeral debug container, or a Pod deleted before
// it was evaluated).
PodView MergePods(std::vector<std::shared_ptr<const PodView>> pods) {
  std::sort(pods.begin(), pods.end(), [](const auto& a, const auto& b) {
    return a->created != b->created ? a->created > b->created : a->name < b->name;
  });
  PodView merged = *pods.front();
  for (std::size_t i = 1; i < pods.size(); ++i) merged.AddContainersOnlyIn(*pods[i]);
  return merged;
}

// `<report name>.`, cut so that the API server's random suffix still fits in a valid name.
std::string EventNamePrefix(const std::string& report_name) {
  std::string prefix = report_name.substr(0, 200);
  while (!prefix.empty() && (prefix.back() == '-' || prefix.back() == '.')) prefix.pop_back();
  return prefix + ".";
}

constexpr const char* kUnmatchedNote =
    "no CapabilityPolicy matches this workload now; the containers are listed as last seen "
    "and nothing is evaluated until a policy matches again";

}  // namespace

Reconciler::Reconciler(kube::KubeClient& client, kube::Clock& clock, Metrics& metrics,
                       ClusterCaches caches, WorkloadIndex& index, GrantLedger& ledger,
                       EventRecorder& events, PolicyStatusWriter& statuses,
                       ReconcilerOptions options, PolicyReportWriter* policy_reports)
    : client_(client),
      clock_(clock),
      metrics_(metrics),
      caches_(caches),
      index_(index),
      ledger_(ledger),
      events_(events),
      statuses_(statuses),
      options_(std::move(options)),
      policy_reports_(policy_reports) {}

WorkloadKey Reconciler::KeyOf(const PodView& pod, WorkloadRef* ref) const {
  if (OwnerUnknown(pod)) {
    const std::string pod_key = kube::ObjectKey(pod.namespace_name, pod.name);
    if (auto filed = index_.WorkloadOf(pod_key)) {
      if (ref != nullptr) {
        auto entry = index_.Get(*filed);
        *ref = entry ? entry->ref : WorkloadRef{};
      }
      return *filed;
    }
  }
  WorkloadRef r = ResolveWorkload(pod, caches_.owners);
  WorkloadKey key{pod.namespace_name, ReportName(r)};
  if (ref != nullptr) *ref = std::move(r);
  return key;
}

void Reconciler::SetAnnounce(bool announce) {
  std::lock_guard lock(mu_);
  announce_ = announce;
}

void Reconciler::SetWriteFence(std::function<bool()> may_write) {
  std::lock_guard lock(mu_);
  may_write_ = std::move(may_write);
}

bool Reconciler::OwnerUnknown(const PodView& pod) const {
  const OwnerReference* owner = pod.controller_owner();
  if (owner == nullptr || (owner->kind != "ReplicaSet" && owner->kind != "Job")) return false;
  return !caches_.owners(owner->kind, pod.namespace_name, owner->name).known;
}

bool Reconciler::MayWrite() const {
  std::lock_guard lock(mu_);
  return !may_write_ || may_write_();
}

void Reconciler::ReportDeleted(const WorkloadKey& key) {
  // The garbage collector takes the report's projection with it.
  if (policy_reports_ != nullptr) policy_reports_->Forget(key);
  std::lock_guard lock(mu_);
  if (auto it = written_.find(key); it != written_.end()) it->second.hash.clear();
}

void Reconciler::Forget(const WorkloadKey& key) {
  {
    std::lock_guard lock(mu_);
    written_.erase(key);
  }
  ledger_.Forget(key);
  statuses_.Forget(key);
  metrics_.SetWorkload(key.ToString(), key.namespace_name, nullptr);
}

std::size_t Reconciler::tracked() const {
  std::lock_guard lock(mu_);
  return written_.size();
}

ReconcileOutcome Reconciler::Reconcile(const WorkloadKey& key, const std::stop_token& stop) {
  const auto stored_ptr = caches_.reports.Get(key.namespace_name, key.report_name);
  const ReportView* stored = stored_ptr.get();
  const auto entry = index_.Get(key);
  if (!entry) return WithoutPods(key, stored, stop);

  // The workload's Pods as the cache has them now, each attributed again: its owner may have
  // arrived in the cache after it.
  ReconcileOutcome outcome;
  std::vector<std::shared_ptr<const PodView>> inputs;
  std::map<std::string, std::size_t> seen;  // pod key → containers evaluated
  WorkloadRef ref = entry->ref;
  int live = 0;
  for (const auto& pod_key : entry->pods) {
    const auto slash = pod_key.find('/');
    auto pod = caches_.pods.Get(pod_key.substr(0, slash), pod_key.substr(slash + 1));
    if (!pod) continue;
    if (OwnerUnknown(*pod)) {
      const auto first = index_.FirstSeen(pod_key);
      if (first && clock_.Now() - *first < options_.owner_wait) {
        // Its owner is on its way: attributing it now would file a CronJob's Pod under its Job.
        return ReconcileOutcome::RequeueAfter(std::chrono::seconds(1));
      }
    }
    WorkloadRef now;
    const WorkloadKey actual = KeyOf(*pod, &now);
    if (actual != key) {
      if (auto from = index_.Upsert(*pod, actual, now, clock_.Now())) {
        outcome.enqueue.push_back(*from);
      }
      outcome.enqueue.push_back(actual);
      continue;
    }
    if (!now.uid.empty()) ref = now;
    seen[pod_key] = pod->containers.size();
    inputs.push_back(std::move(pod));
    ++live;
  }
  for (const auto& d : entry->departed) inputs.push_back(d.pod);
  if (stored == nullptr && live > 0 && entry->departed.empty()) {
    // Every Pod names a ReplicaSet or Job that is gone while the report is gone too: the
    // workload is being deleted and its Pods terminate. Nothing to report any more.
    bool vanishing = true;
    for (const auto& pod : inputs) vanishing = vanishing && OwnerUnknown(*pod);
    if (vanishing) {
      index_.MarkEvaluated(key, seen, 0);
      return outcome;
    }
  }
  if (inputs.empty()) {
    auto without = WithoutPods(key, stored, stop);
    without.enqueue.insert(without.enqueue.end(), outcome.enqueue.begin(), outcome.enqueue.end());
    return without;
  }

  const auto started = std::chrono::steady_clock::now();
  const PodView merged = MergePods(inputs);
  std::vector<std::pair<std::string, std::string>> ns_labels;
  if (auto n = caches_.namespaces.Get("", key.namespace_name)) ns_labels = n->labels;
  std::vector<std::shared_ptr<const PolicyView>> views;
  std::vector<const Policy*> matching;
  for (auto& view : caches_.policies.List()) {
    if (!view->policy || !PolicyMatches(*view->policy, merged, &ns_labels)) continue;
    matching.push_back(view->policy.get());
    views.push_back(std::move(view));
  }
  std::sort(matching.begin(), matching.end(),
            [](const Policy* a, const Policy* b) { return a->name < b->name; });
  const bool same_workload =
      stored != nullptr &&
      (stored->workload_uid.empty() || ref.uid.empty() || stored->workload_uid == ref.uid);
  const bool managed = stored == nullptr || stored->managed;

  if (matching.empty() && (stored == nullptr || !managed)) {
    // Never matched (or someone else's object under our name): nothing to report.
    index_.MarkEvaluated(key, seen, entry->departed.size());
    statuses_.Forget(key);
    metrics_.SetWorkload(key.ToString(), key.namespace_name, nullptr);
    return outcome;
  }

  PodEvaluation evaluation = Evaluate(merged, matching, clock_.WallNow());
  if (matching.empty()) {
    evaluation.skipped = true;
    evaluation.note = kUnmatchedNote;
  }
  json report = BuildReport({ref, key.namespace_name, live, &merged, &evaluation});
  metrics_.ObserveEvaluation(std::chrono::steady_clock::now() - started);

  // The grant memory: what the stored report already knows of, for this very workload.
  std::set<DangerousGrant> known;
  if (same_workload) {
    known = DecodeGrants(stored->dangerous_grants);
  } else if (stored == nullptr) {
    std::lock_guard lock(mu_);
    if (auto it = written_.find(key);
        it != written_.end() && (it->second.workload_uid == ref.uid || ref.uid.empty())) {
      known = DecodeGrants(it->second.grants);
    }
  }
  std::set<DangerousGrant> desired = known;  // an unmatched workload keeps its memory
  if (!matching.empty()) desired = DangerousGrantsOf(evaluation);
  std::string encoded = EncodeGrants(desired);
  report["metadata"]["annotations"][std::string(kGrantsAnnotation)] = encoded;

  std::map<std::string, int> tally;
  for (const Policy* p : matching) tally[p->name] = 0;
  for (const auto& f : evaluation.findings) {
    if (!f.exempt) ++tally[f.policy];
  }
  if (matching.empty()) {
    statuses_.Forget(key);
    metrics_.SetWorkload(key.ToString(), key.namespace_name, nullptr);
  } else {
    statuses_.SetTally(key, std::move(tally));
    metrics_.SetWorkload(key.ToString(), key.namespace_name, &evaluation);
  }
  if (!matching.empty()) ledger_.Plan(key, desired, known);
  index_.MarkEvaluated(key, seen, entry->departed.size());

  const bool project = policy_reports_ != nullptr && policy_reports_->enabled();
  const json projected = project ? report : json();
  std::string report_uid;
  auto result = Write(key, ref, std::move(report), stored, encoded, stop, report_uid);
  if (project && result.kind != ReconcileOutcome::Kind::kRetry &&
      result.kind != ReconcileOutcome::Kind::kGiveUp && !report_uid.empty()) {
    // The report is in step: its projection follows it.
    std::vector<std::string> names;
    for (const Policy* p : matching) names.push_back(p->name);
    if (std::string error = policy_reports_->Sync(key, projected, names, report_uid, stop);
        !error.empty()) {
      result = ReconcileOutcome::Retry(error);
    }
  }
  result.enqueue.insert(result.enqueue.end(), outcome.enqueue.begin(), outcome.enqueue.end());
  if (result.kind == ReconcileOutcome::Kind::kDone && live > 0) {
    // An exemption that expires turns its finding back on with no event to say so: look again
    // just after the next expiry.
    const auto wall = clock_.WallNow();
    std::optional<kube::Clock::Duration> until;
    for (const Policy* p : matching) {
      for (const auto& e : p->exemptions) {
        if (!e.expires || *e.expires <= wall) continue;
        const auto d = std::chrono::duration_cast<kube::Clock::Duration>(*e.expires - wall);
        if (!until || d < *until) until = d;
      }
    }
    if (until) {
      result.kind = ReconcileOutcome::Kind::kRequeueAfter;
      result.after = *until + std::chrono::seconds(1);
    }
  }
  // Only departed Pods: recorded, and nothing runs now.
  if (live == 0 && result.kind == ReconcileOutcome::Kind::kDone) NothingRuns(key);
  return result;
}

void Reconciler::NothingRuns(const WorkloadKey& key) {
  metrics_.SetWorkload(key.ToString(), key.namespace_name, nullptr);
  statuses_.Forget(key);
  if (index_.EraseIfEmpty(key)) {
    std::lock_guard lock(mu_);
    written_.erase(key);
  }
}

ReconcileOutcome Reconciler::WithoutPods(const WorkloadKey& key, const ReportView* stored,
                                         const std::stop_token& stop) {
  if (stored == nullptr || !stored->managed) {
    // Nothing to keep: forget the workload.
    if (index_.EraseIfEmpty(key)) Forget(key);
    return ReconcileOutcome::Done();
  }
  if (!stored->has_owner) return DeleteOrphan(key, *stored, stop);
  // The workload still exists (the garbage collector would have removed the report with it):
  // it has no Pods now. Its report stays, with its findings and grant memory, and says 0 Pods.
  if (stored->pods != 0) {
    if (!MayWrite()) return ReconcileOutcome::Retry("not the leader");
    const std::string patch = R"({"workload":{"pods":0}})";
    auto r = client_.Patch(CapabilityReports(key.namespace_name), key.report_name,
                           kube::PatchType::kMerge, patch, {}, stop);
    metrics_.ReportWrite(r.ok() ? "updated" : r.error().IsNotFound() ? "conflict" : "error");
    if (!r.ok() && !r.error().IsNotFound() && !NamespaceTerminating(r.error())) {
      return ReconcileOutcome::Retry("setting pods to 0 in report " + key.ToString() + ": " +
                                     r.error().ToString());
    }
  }
  NothingRuns(key);
  return ReconcileOutcome::Done();
}

ReconcileOutcome Reconciler::DeleteOrphan(const WorkloadKey& key, const ReportView& stored,
                                          const std::stop_token& stop) {
  if (!MayWrite()) return ReconcileOutcome::Retry("not the leader");
  // Preconditions: delete exactly the report we looked at, never one another writer (a new
  // leader, a recreated workload) has put there since.
  kube::WriteOptions options;
  options.precondition_uid = stored.uid;
  options.precondition_resource_version = stored.resource_version;
  auto r = client_.Delete(CapabilityReports(key.namespace_name), key.report_name, options, stop);
  if (r.ok() || r.error().IsNotFound()) {
    metrics_.ReportWrite("deleted");
    if (policy_reports_ != nullptr) policy_reports_->Forget(key);
    spdlog::info("deleted report {}: it has no owner and no Pods", key.ToString());
    if (index_.EraseIfEmpty(key)) Forget(key);
    return ReconcileOutcome::Done();
  }
  metrics_.ReportWrite(r.error().IsConflict() ? "conflict" : "error");
  return ReconcileOutcome::Retry("deleting report " + key.ToString() + ": " + r.error().ToString());
}

ReconcileOutcome Reconciler::Write(const WorkloadKey& key, const WorkloadRef& ref, json report,
                                   const ReportView* stored, const std::string& grants,
                                   const std::stop_token& stop, std::string& report_uid) {
  const std::string hash =
      report["metadata"]["annotations"][std::string(kContentHashAnnotation)].get<std::string>();
  const int pods = report["workload"]["pods"].get<int>();
  const auto now = clock_.Now();
  std::optional<Written> last;
  {
    std::lock_guard lock(mu_);
    if (auto it = written_.find(key); it != written_.end()) last = it->second;
  }
  const bool stored_same = stored != nullptr && stored->content_hash == hash;
  // Written by us already; the report cache has not caught up yet.
  const bool cache_behind = !stored_same && last && last->hash == hash;
  if (stored_same || cache_behind) {
    report_uid = cache_behind ? last->report_uid : stored->uid;
    const bool same_pods = stored == nullptr || stored->pods == pods || cache_behind;
    if (same_pods) {
      Announce(ref, key, ledger_.Confirm(key), stop);
      return ReconcileOutcome::Done();
    }
    // Only the Pod count moved (a rollout in progress): refresh it, but not on every Pod.
    if (pods != 0 && last && now - last->at < options_.pod_count_refresh) {
      Announce(ref, key, ledger_.Confirm(key), stop);
      return ReconcileOutcome::RequeueAfter(options_.pod_count_refresh - (now - last->at));
    }
  }
  if (!MayWrite()) return ReconcileOutcome::Retry("not the leader");

  const char* result = stored != nullptr ? "updated" : "created";
  if (stored != nullptr) report["metadata"]["resourceVersion"] = stored->resource_version;
  auto answer = stored != nullptr ? client_.Update(CapabilityReports(key.namespace_name),
                                                   key.report_name, report.dump(), {}, stop)
                                  : client_.Create(CapabilityReports(key.namespace_name),
                                                   report.dump(), {}, stop);
  const kube::ApiStatus status = answer.error();
  if (status.ok()) {
    metrics_.ReportWrite(result);
    const json written = json::parse(answer.value(), nullptr, /*allow_exceptions=*/false);
    report_uid = kube::JsonStringAt(written, {"metadata", "uid"});
    {
      std::lock_guard lock(mu_);
      written_[key] = {hash, now, ref.uid, grants, report_uid};
    }
    spdlog::info("{} report {}: {} violation(s)", result, key.ToString(),
                 report["summary"]["violations"].get<int>());
    Announce(ref, key, ledger_.Confirm(key), stop);
    return ReconcileOutcome::Done();
  }
  if (NamespaceTerminating(status)) {
    // The namespace is going away with the workload in it: nothing to write, nothing to retry.
    metrics_.ReportWrite("error");
    return ReconcileOutcome::Done();
  }
  if (status.IsConflict() || status.IsAlreadyExists()) {
    metrics_.ReportWrite("conflict");
    return ReconcileOutcome::Retry("report " + key.ToString() + ": " + status.ToString() +
                                   "; retrying with the current version");
  }
  if (status.reason() == kube::StatusReason::kInvalid) {
    metrics_.ReportWrite("invalid");
    return ReconcileOutcome::GiveUp("the API server refuses report " + key.ToString() + ": " +
                                    status.ToString());
  }
  metrics_.ReportWrite("error");
  // The outcome is unknown (a timeout may follow a commit): the ledger keeps the grants
  // pending, and the retry announces them once the report is confirmed.
  return ReconcileOutcome::Retry("writing report " + key.ToString() + ": " + status.ToString());
}

namespace {

// What one reconcile's new grants say in an Event: one grant as before ("container "app" is
// granted SYS_ADMIN"); several (a workload of a hundred containers adding everything has a
// thousand) as one line naming every capability and how many containers, so a workload costs
// the API server one Event, not one per grant. Bounded to 1 KiB.
std::string GrantsMessage(const WorkloadRef& ref, const WorkloadKey& key,
                          const std::vector<DangerousGrant>& grants) {
  const std::string who = ref.kind + " " + ref.name + ": ";
  const std::string see = "; see CapabilityReport " + key.report_name;
  if (grants.size() == 1) {
    const auto& g = grants.front();
    return who + "container \"" + g.container + "\" is granted " + g.capability +
           (g.capability == "privileged" ? " (every capability)" : "") + see;
  }
  std::set<std::string> capabilities, containers;
  for (const auto& g : grants) {
    capabilities.insert(g.capability);
    containers.insert(g.container);
  }
  std::string message = who + std::to_string(grants.size()) + " new dangerous grants: ";
  bool first = true;
  for (const auto& c : capabilities) {
    message += (first ? "" : ", ") + c;
    first = false;
  }
  if (containers.size() == 1) {
    message += " in container \"" + *containers.begin() + "\"";
  } else {
    constexpr std::size_t kNamed = 3;
    message += " in " + std::to_string(containers.size()) + " containers (";
    std::size_t named = 0;
    for (const auto& c : containers) {
      if (named == kNamed) break;
      message += (named++ == 0 ? "\"" : ", \"") + c + "\"";
    }
    if (containers.size() > kNamed) {
      message += " and " + std::to_string(containers.size() - kNamed) + " more";
    }
    message += ")";
  }
  message += see;
  constexpr std::size_t kMaxMessage = 1024;  // bytes, with the 3 of Excerpt's "…"
  return Excerpt(message, kMaxMessage - 3);
}

}  // namespace

void Reconciler::Announce(const WorkloadRef& ref, const WorkloadKey& key,
                          const std::vector<DangerousGrant>& grants, const std::stop_token& stop) {
  if (grants.empty()) return;
  bool announce;
  {
    std::lock_guard lock(mu_);
    announce = announce_;
  }
  const std::string& ns = key.namespace_name;
  const std::string message = GrantsMessage(ref, key, grants);
  if (!announce) {
    spdlog::info("recorded existing dangerous grants in {}/{}: {}", ns, ref.name, message);
    return;
  }
  for (const auto& g : grants) metrics_.CountNewDangerousGrant(ns, g.capability);
  spdlog::warn("new dangerous grant in {}/{}: {}", ns, ref.name, message);
  const std::string when = kube::FormatMicroTime(clock_.WallNow());
  const std::string seconds = when.substr(0, 19) + "Z";
  json event = {
      {"apiVersion", "v1"},
      {"kind", "Event"},
      {"metadata", {{"generateName", EventNamePrefix(key.report_name)}, {"namespace", ns}}},
      {"involvedObject",
       {{"apiVersion", ref.api_version},
        {"kind", ref.kind},
        {"name", ref.name},
        {"namespace", ns},
        {"uid", ref.uid}}},
      {"reason", "DangerousCapabilityGranted"},
      {"message", message},
      {"type", "Warning"},
      {"source", {{"component", "capwatch"}}},
      {"reportingComponent", "capwatch"},
      {"reportingInstance", options_.identity},
      {"firstTimestamp", seconds},
      {"lastTimestamp", seconds},
      {"count", 1},
  };
  events_.Record(ns, std::move(event), stop);
}

}  // namespace capwatch::controller
