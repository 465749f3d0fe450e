#include "controller/controller.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "kube/time_format.h"
#include "policy/evaluate.h"
#include "report/report_builder.h"

namespace capwatch::controller {
namespace {

using nlohmann::json;

kube::ReflectorOptions Options(kube::ResourceRef resource) {
  kube::ReflectorOptions o;
  o.resource = std::move(resource);
  return o;
}

std::string KeyOf(const std::string& ns, const std::string& report_name) {
  return ns + "/" + report_name;
}

// The Pods of one workload as one PodView: the newest Pod's spec (a rollout's new template),
// plus containers only other Pods have (an ephemeral debug container, say).
PodView MergePods(std::vector<std::shared_ptr<const PodView>> pods) {
  std::sort(pods.begin(), pods.end(), [](const auto& a, const auto& b) {
    return a->created != b->created ? a->created > b->created : a->name < b->name;
  });
  PodView merged = *pods.front();
  for (std::size_t i = 1; i < pods.size(); ++i) merged.AddContainersOnlyIn(*pods[i]);
  return merged;
}

// 403 with cause NamespaceTerminating: creating anything in a namespace being deleted.
bool NamespaceTerminating(const kube::ApiStatus& status) {
  if (status.http_status() != 403) return false;
  return std::any_of(status.causes().begin(), status.causes().end(),
                     [](const kube::StatusCause& c) { return c.reason == "NamespaceTerminating"; });
}

std::string ResultOf(const kube::ApiStatus& status, const char* ok_result) {
  if (status.ok()) return ok_result;
  if (status.IsConflict() || status.IsAlreadyExists()) return "conflict";
  return "error";
}

}  // namespace

Controller::Controller(kube::KubeClient& client, kube::Clock& clock, Metrics& metrics,
                       ControllerOptions options)
    : client_(client),
      clock_(clock),
      metrics_(metrics),
      options_(std::move(options)),
      pods_(client, clock, kube::PodReflectorOptions()),
      replica_sets_(client, clock,
                    kube::MetadataReflectorOptions(kube::ResourceRef::ReplicaSets())),
      jobs_(client, clock, kube::MetadataReflectorOptions(kube::ResourceRef::Jobs())),
      namespaces_(client, clock, Options(Namespaces())),
      policies_(client, clock, Options(CapabilityPolicies())),
      reports_(client, clock, Options(CapabilityReports())),
      owner_lookup_(kube::MakeOwnerLookup(replica_sets_, jobs_)),
      queue_(clock, options_.queue) {
  pods_.AddHandlers({
      [this](const PodView& p) { IndexPod(p); },
      // IndexPod moves the Pod when its owner changed (an orphaned Pod adopted, say).
      [this](const PodView&, const PodView& p) { IndexPod(p); },
      [this](const PodView& p) { UnindexPod(p); },
  });
  namespaces_.AddHandlers({
      [this](const NamespaceView& n) { EnqueueNamespace(n.name); },
      [this](const NamespaceView& old_ns, const NamespaceView& n) {
        if (old_ns.labels != n.labels) EnqueueNamespace(n.name);
      },
      nullptr,
  });
  policies_.AddHandlers({
      [this](const PolicyView&) { EnqueueAll(); },
      [this](const PolicyView& old_p, const PolicyView& p) {
        // A status write bumps the resourceVersion, not the generation: nothing to redo.
        if (old_p.generation != p.generation) EnqueueAll();
      },
      [this](const PolicyView&) { EnqueueAll(); },
  });
  reports_.AddHandlers({
      nullptr,
      nullptr,
      // A report deleted by someone else comes back if its workload still needs one.
      [this](const ReportView& r) {
        const std::string key = KeyOf(r.namespace_name, r.name);
        {
          std::lock_guard lock(mu_);
          written_hash_.erase(key);
        }
        queue_.AddAfter(key, options_.coalesce);
      },
  });
}

Controller::~Controller() {
  queue_.ShutDown();
  for (auto& t : threads_) t.request_stop();
  threads_.clear();  // joins
}

void Controller::StartInformers(std::stop_token stop) {
  auto start = [&](auto& informer) {
    threads_.emplace_back([&informer, stop](std::stop_token own) {
      std::stop_source both;
      std::stop_callback a(stop, [&] { both.request_stop(); });
      std::stop_callback b(own, [&] { both.request_stop(); });
      informer.Run(both.get_token());
    });
  };
  // Owners, namespaces, policies and reports first. Pods are attributed through their owners,
  // so the Pod informer starts once ReplicaSets and Jobs are cached: a Pod indexed before its
  // Job would be filed under the Job, and the CronJob's report would look orphaned.
  start(replica_sets_);
  start(jobs_);
  start(namespaces_);
  start(policies_);
  start(reports_);
  threads_.emplace_back([this, stop](std::stop_token own) {
    std::stop_source both;
    std::stop_callback a(stop, [&] { both.request_stop(); });
    std::stop_callback b(own, [&] { both.request_stop(); });
    const auto token = both.get_token();
    while (!token.stop_requested() && !(replica_sets_.WaitForSync(token, std::chrono::seconds(1)) &&
                                        jobs_.WaitForSync(token, std::chrono::seconds(1)))) {
    }
    if (!token.stop_requested()) pods_.Run(token);
  });
  threads_.emplace_back([this, stop](std::stop_token own) {
    while (!stop.stop_requested() && !own.stop_requested()) {
      ExportInformerStats();
      clock_.SleepFor(std::chrono::seconds(2), stop);
    }
  });
}

void Controller::ExportInformerStats() {
  auto export_one = [this](const std::string& resource, kube::Reflector& reflector,
                           std::size_t size) {
    const kube::ReflectorStats now = reflector.stats();
    kube::ReflectorStats& before = exported_[resource];
    auto delta = [](std::uint64_t a, std::uint64_t b) { return static_cast<double>(a - b); };
    if (now.events > before.events)
      metrics_.WatchEvent(resource, "applied", delta(now.events, before.events));
    if (now.bookmarks > before.bookmarks) {
      metrics_.WatchEvent(resource, "bookmark", delta(now.bookmarks, before.bookmarks));
    }
    if (now.error_events > before.error_events) {
      metrics_.WatchEvent(resource, "error", delta(now.error_events, before.error_events));
    }
    if (now.decode_errors > before.decode_errors) {
      metrics_.WatchEvent(resource, "undecodable", delta(now.decode_errors, before.decode_errors));
    }
    if (now.relists_gone > before.relists_gone) {
      metrics_.WatchRestart(resource, "gone", delta(now.relists_gone, before.relists_gone));
    }
    if (now.backoffs > before.backoffs) {
      metrics_.WatchRestart(resource, "error", delta(now.backoffs, before.backoffs));
    }
    if (now.list_restarts > before.list_restarts) {
      metrics_.WatchRestart(resource, "expired-continue",
                            delta(now.list_restarts, before.list_restarts));
    }
    if (resource == "pods" && now.lists > before.lists) {
      metrics_.SetLastFullSync(std::chrono::system_clock::now());
    }
    before = now;
    metrics_.SetCacheObjects(resource, static_cast<double>(size));
  };
  export_one("pods", pods_.reflector(), pods_.size());
  export_one("replicasets", replica_sets_.reflector(), replica_sets_.size());
  export_one("jobs", jobs_.reflector(), jobs_.size());
  export_one("namespaces", namespaces_.reflector(), namespaces_.size());
  export_one("capabilitypolicies", policies_.reflector(), policies_.size());
  export_one("capabilityreports", reports_.reflector(), reports_.size());
}

bool Controller::Synced() const {
  return pods_.HasSynced() && replica_sets_.HasSynced() && jobs_.HasSynced() &&
         namespaces_.HasSynced() && policies_.HasSynced() && reports_.HasSynced();
}

bool Controller::WaitForSync(const std::stop_token& stop, std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto left = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                 std::chrono::steady_clock::now());
  };
  return replica_sets_.WaitForSync(stop, left()) && jobs_.WaitForSync(stop, left()) &&
         namespaces_.WaitForSync(stop, left()) && policies_.WaitForSync(stop, left()) &&
         reports_.WaitForSync(stop, left()) && pods_.WaitForSync(stop, left());
}

std::string Controller::WorkloadKeyOf(const PodView& pod, WorkloadRef* ref) const {
  WorkloadRef r = ResolveWorkload(pod, owner_lookup_);
  std::string key = KeyOf(pod.namespace_name, ReportName(r));
  if (ref != nullptr) *ref = std::move(r);
  return key;
}

void Controller::IndexPod(const PodView& pod) {
  WorkloadRef ref;
  const std::string key = WorkloadKeyOf(pod, &ref);
  const std::string pod_key = kube::ObjectKey(pod.namespace_name, pod.name);
  std::string moved_from;
  {
    std::lock_guard lock(mu_);
    auto [it, inserted] = pod_workload_.try_emplace(pod_key, key);
    if (!inserted && it->second != key) {
      moved_from = it->second;
      if (auto w = workloads_.find(moved_from); w != workloads_.end())
        w->second.pods.erase(pod_key);
      it->second = key;
    }
    WorkloadEntry& entry = workloads_[key];
    if (entry.ref.uid.empty()) entry.ref = ref;
    entry.namespace_name = pod.namespace_name;
    entry.pods.insert(pod_key);
  }
  queue_.AddAfter(key, options_.coalesce);
  if (!moved_from.empty()) queue_.AddAfter(moved_from, options_.coalesce);
}

void Controller::UnindexPod(const PodView& pod) {
  const std::string pod_key = kube::ObjectKey(pod.namespace_name, pod.name);
  std::string key;
  {
    std::lock_guard lock(mu_);
    auto it = pod_workload_.find(pod_key);
    if (it == pod_workload_.end()) return;
    key = it->second;
    pod_workload_.erase(it);
    if (auto w = workloads_.find(key); w != workloads_.end()) w->second.pods.erase(pod_key);
  }
  queue_.AddAfter(key, options_.coalesce);
}

void Controller::EnqueueAll() {
  std::vector<std::string> keys;
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, entry] : workloads_) keys.push_back(key);
  }
  for (const auto& key : keys) queue_.AddAfter(key, options_.coalesce);
  EnqueueOrphans();
}

void Controller::EnqueueNamespace(const std::string& namespace_name) {
  std::vector<std::string> keys;
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, entry] : workloads_) {
      if (entry.namespace_name == namespace_name) keys.push_back(key);
    }
  }
  for (const auto& key : keys) queue_.AddAfter(key, options_.coalesce);
}

// Reports capwatch wrote whose workload it no longer knows (deleted while capwatch was down):
// their reconcile finds no Pods and removes them.
void Controller::EnqueueOrphans() {
  for (const auto& report : reports_.List()) {
    if (!report->managed) continue;
    const std::string key = KeyOf(report->namespace_name, report->name);
    bool known = false;
    {
      std::lock_guard lock(mu_);
      known = workloads_.count(key) != 0;
    }
    if (!known) queue_.Add(key);
  }
}

void Controller::RunWorkers(std::stop_token stop) {
  EnqueueAll();  // everything once: the reports are compared, not rewritten, when unchanged
  std::stop_callback shutdown(stop, [this] { queue_.ShutDown(); });
  std::vector<std::jthread> workers;
  for (int i = 0; i < options_.workers; ++i) {
    workers.emplace_back([this] {
      std::string key;
      while (queue_.Get(key)) {
        Reconcile(key);
        queue_.Done(key);
      }
    });
  }
  // Policy statuses sum up every workload, so the first is written once the initial pass over
  // all workloads is through; a restart does not flap them to zero.
  while (!stop.stop_requested() && (queue_.Len() > 0 || queue_.Waiting() > 0)) {
    clock_.SleepFor(std::chrono::milliseconds(200), stop);
  }
  while (!stop.stop_requested()) {
    WritePolicyStatuses(stop);
    clock_.SleepFor(options_.status_interval, stop);
  }
}

void Controller::DeleteReport(const std::string& key, const std::string& ns,
                              const std::string& name) {
  metrics_.SetReport(key, nullptr);
  {
    std::lock_guard lock(mu_);
    policy_tally_.erase(key);
    written_hash_.erase(key);
    if (auto w = workloads_.find(key); w != workloads_.end() && w->second.pods.empty()) {
      workloads_.erase(w);
    }
  }
  auto existing = reports_.Get(ns, name);
  if (!existing || !existing->managed) return;
  auto result = client_.Delete(CapabilityReports(ns), name);
  if (result.ok() || result.status().IsNotFound()) {
    metrics_.ReportWrite("deleted");
    spdlog::info("deleted report {}/{}: its workload has no Pods or no policy matches", ns, name);
    queue_.Forget(key);
    return;
  }
  metrics_.ReportWrite("error");
  spdlog::warn("deleting report {}/{}: {}", ns, name, result.status().ToString());
  queue_.AddRateLimited(key);
}

void Controller::Reconcile(const std::string& key) {
  const auto slash = key.find('/');
  const std::string ns = key.substr(0, slash);
  const std::string report_name = key.substr(slash + 1);

  // The workload's Pods as the cache has them now; each re-attributed, since its owner may
  // have arrived in the cache after it.
  WorkloadEntry entry;
  {
    std::lock_guard lock(mu_);
    if (auto it = workloads_.find(key); it != workloads_.end()) entry = it->second;
  }
  std::vector<std::shared_ptr<const PodView>> pods;
  WorkloadRef ref = entry.ref;
  for (const auto& pod_key : entry.pods) {
    const auto s = pod_key.find('/');
    auto pod = pods_.Get(pod_key.substr(0, s), pod_key.substr(s + 1));
    if (!pod) continue;
    WorkloadRef now;
    if (WorkloadKeyOf(*pod, &now) != key) {
      IndexPod(*pod);  // moves it, and enqueues both workloads
      continue;
    }
    if (!now.uid.empty()) ref = now;
    pods.push_back(std::move(pod));
  }
  if (pods.empty()) {
    DeleteReport(key, ns, report_name);
    return;
  }

  const auto started = std::chrono::steady_clock::now();
  PodView merged = MergePods(pods);
  std::vector<std::pair<std::string, std::string>> ns_labels;
  if (auto n = namespaces_.Get("", ns)) ns_labels = n->labels;
  std::vector<std::shared_ptr<const PolicyView>> views;
  std::vector<const Policy*> matching;
  for (auto& view : policies_.List()) {
    if (!view->policy || !PolicyMatches(*view->policy, merged, &ns_labels)) continue;
    matching.push_back(view->policy.get());
    views.push_back(std::move(view));
  }
  std::sort(matching.begin(), matching.end(),
            [](const Policy* a, const Policy* b) { return a->name < b->name; });
  if (matching.empty()) {
    DeleteReport(key, ns, report_name);
    return;
  }
  const PodEvaluation evaluation = Evaluate(merged, matching, std::chrono::system_clock::now());
  json report = BuildReport({ref, ns, static_cast<int>(pods.size()), &merged, &evaluation});
  metrics_.ObserveEvaluation(std::chrono::steady_clock::now() - started);
  const std::string hash =
      report["metadata"]["annotations"][std::string(kContentHashAnnotation)].get<std::string>();

  std::map<std::string, int> tally;
  for (const Policy* p : matching) tally[p->name] = 0;
  for (const auto& f : evaluation.findings) {
    if (!f.exempt) ++tally[f.policy];
  }
  metrics_.SetReport(key, &report);

  auto existing = reports_.Get(ns, report_name);
  const auto now = clock_.Now();
  {
    std::lock_guard lock(mu_);
    policy_tally_[key] = std::move(tally);
    const bool same_content = existing ? existing->content_hash == hash
                                       : written_hash_.count(key) && written_hash_[key] == hash;
    if (same_content) {
      const bool same_pods = !existing || existing->pods == static_cast<int>(pods.size());
      if (same_pods) return;
      // Only the Pod count moved (a rollout in progress): refresh it, but not on every Pod.
      auto last = written_at_.find(key);
      if (last != written_at_.end() && now - last->second < options_.pod_count_refresh) {
        queue_.AddAfter(key, options_.pod_count_refresh - (now - last->second));
        return;
      }
    } else if (written_hash_.count(key) && written_hash_[key] == hash) {
      return;  // written already; the report cache has not caught up yet
    }
  }

  const std::vector<DangerousGrant> new_grants = NewDangerousGrants(
      existing ? existing->dangerous_grants : std::set<DangerousGrant>{}, report);

  kube::ApiStatus status;
  const char* result = "created";
  if (existing) {
    report["metadata"]["resourceVersion"] = existing->resource_version;
    auto r = client_.Update(CapabilityReports(ns), report_name, report.dump());
    status = r.status();
    result = "updated";
  } else {
    auto r = client_.Create(CapabilityReports(ns), report.dump());
    status = r.status();
  }
  metrics_.ReportWrite(ResultOf(status, result));
  if (!status.ok()) {
    if (NamespaceTerminating(status)) {
      // The namespace is going away with the workload in it: nothing to write, nothing to retry.
      spdlog::debug("report {}: namespace {} is being deleted", key, ns);
      queue_.Forget(key);
      return;
    }
    if (status.IsConflict() || status.IsAlreadyExists()) {
      spdlog::debug("report {}: {}; retrying with the current version", key, status.ToString());
    } else {
      spdlog::warn("writing report {}: {}", key, status.ToString());
    }
    queue_.AddRateLimited(key);
    return;
  }
  queue_.Forget(key);
  {
    std::lock_guard lock(mu_);
    written_hash_[key] = hash;
    written_at_[key] = now;
  }
  spdlog::info("{} report {}: {} violation(s)", result, key,
               report["summary"]["violations"].get<int>());
  if (!new_grants.empty()) RecordGrantEvents(ref, ns, report_name, new_grants);
}

void Controller::RecordGrantEvents(const WorkloadRef& ref, const std::string& ns,
                                   const std::string& report_name,
                                   const std::vector<DangerousGrant>& grants) {
  const std::string when = kube::FormatMicroTime(std::chrono::system_clock::now());
  const std::string seconds = when.substr(0, 19) + "Z";
  for (const auto& g : grants) {
    metrics_.CountNewDangerousGrant(ns, g.capability);
    std::string message = ref.kind + " " + ref.name + ": container \"" + g.container +
                          "\" is granted " + g.capability +
                          (g.capability == "privileged" ? " (every capability)" : "") +
                          "; see CapabilityReport " + report_name;
    spdlog::warn("new dangerous grant in {}/{}: {}", ns, ref.name, message);
    json event = {
        {"apiVersion", "v1"},
        {"kind", "Event"},
        {"metadata", {{"generateName", report_name + "."}, {"namespace", ns}}},
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
    auto r = client_.Create({"", "v1", "events", ns}, event.dump());
    if (!r.ok() && !NamespaceTerminating(r.status()))
      spdlog::warn("recording event for {}/{}: {}", ns, ref.name, r.status().ToString());
  }
}

void Controller::WritePolicyStatuses(const std::stop_token& stop) {
  if (!Synced()) return;
  std::map<std::string, std::pair<int, int>> totals;  // policy → workloads, violations
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, by_policy] : policy_tally_) {
      for (const auto& [policy, violations] : by_policy) {
        totals[policy].first += 1;
        totals[policy].second += violations;
      }
    }
  }
  for (const auto& view : policies_.List()) {
    json condition = {{"type", "Ready"}};
    if (view->policy) {
      condition["status"] = "True";
      condition["reason"] = "Valid";
      condition["message"] = "the policy is valid and in force";
    } else {
      std::string message;
      for (const auto& e : view->errors) {
        if (!message.empty()) message += "; ";
        message += e.ToString();
      }
      condition["status"] = "False";
      condition["reason"] = "InvalidPolicy";
      condition["message"] = message;
    }
    condition["observedGeneration"] = view->generation;
    const auto [workloads, violations] = totals[view->name];
    json status = {{"observedGeneration", view->generation},
                   {"conditions", json::array({condition})},
                   {"workloads", workloads},
                   {"violations", violations}};
    const std::string text = status.dump();
    {
      std::lock_guard lock(mu_);
      if (status_written_[view->name] == text) continue;
    }
    if (view->status_fingerprint == text) {  // the API server holds it already (a restart)
      std::lock_guard lock(mu_);
      status_written_[view->name] = text;
      continue;
    }
    auto r = client_.Patch(CapabilityPolicies(), view->name, kube::PatchType::kMerge,
                           json({{"status", status}}).dump(), {"status", false, false}, stop);
    if (!r.ok()) {
      spdlog::warn("writing status of policy {}: {}", view->name, r.status().ToString());
      continue;
    }
    if (!view->policy) {
      spdlog::warn("policy {} is invalid: {}", view->name, condition["message"].get<std::string>());
    }
    std::lock_guard lock(mu_);
    status_written_[view->name] = text;
  }
}

}  // namespace capwatch::controller
