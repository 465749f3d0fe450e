#include "controller/controller.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace capwatch::controller {
namespace {

kube::ReflectorOptions Options(kube::ResourceRef resource) {
  kube::ReflectorOptions o;
  o.resource = std::move(resource);
  return o;
}

const char* OutcomeName(ReconcileOutcome::Kind kind) {
  switch (kind) {
    case ReconcileOutcome::Kind::kDone:
      return "done";
    case ReconcileOutcome::Kind::kRequeueAfter:
      return "requeue";
    case ReconcileOutcome::Kind::kRetry:
      return "retry";
    case ReconcileOutcome::Kind::kGiveUp:
      return "gave_up";
  }
  return "done";
}

// Each reflector counter and the metric it moves: a watch event of a type, or a restart for a
// reason (docs/metrics.md).
struct StatExport {
  std::uint64_t kube::ReflectorStats::*field;
  bool restart;
  const char* label;
};
constexpr StatExport kStatExports[] = {
    {&kube::ReflectorStats::events, false, "applied"},
    {&kube::ReflectorStats::bookmarks, false, "bookmark"},
    {&kube::ReflectorStats::error_events, false, "error"},
    {&kube::ReflectorStats::decode_errors, false, "undecodable"},
    {&kube::ReflectorStats::skipped_items, false, "skipped"},
    {&kube::ReflectorStats::relists_gone, true, "gone"},
    {&kube::ReflectorStats::backoffs, true, "error"},
    {&kube::ReflectorStats::relists_decode, true, "undecodable"},
    {&kube::ReflectorStats::list_restarts, true, "expired-continue"},
};

// Runs `fn` with a token that stops when either token does.
template <typename Fn>
void WithEither(const std::stop_token& a, const std::stop_token& b, Fn&& fn) {
  std::stop_source both;
  std::stop_callback ca(a, [&] { both.request_stop(); });
  std::stop_callback cb(b, [&] { both.request_stop(); });
  fn(both.get_token());
}

}  // namespace

Controller::Controller(kube::KubeClient& client, kube::Clock& clock, Metrics& metrics,
                       ControllerOptions options)
    : client_(client),
      clock_(clock),
      metrics_(metrics),
      options_(std::move(options)),
      pods_(client, clock, PodReflectorOptions({}, options_.pods_protobuf)),
      replica_sets_(client, clock, MetadataReflectorOptions(kube::ResourceRef::ReplicaSets())),
      jobs_(client, clock, MetadataReflectorOptions(kube::ResourceRef::Jobs())),
      namespaces_(client, clock, Options(Namespaces())),
      policies_(client, clock, Options(CapabilityPolicies())),
      reports_(client, clock, Options(CapabilityReports())),
      owner_lookup_(MakeOwnerLookup(replica_sets_, jobs_)),
      events_(client, clock, metrics, options_.events),
      admission_(client, clock, policies_, options_.admission),
      statuses_(client, policies_, &admission_),
      policy_reports_(client, clock, options_.policy_reports),
      reconciler_(client, clock, metrics,
                  ClusterCaches{pods_, owner_lookup_, namespaces_, policies_, reports_}, index_,
                  ledger_, events_, statuses_,
                  ReconcilerOptions{options_.pod_count_refresh, options_.identity},
                  &policy_reports_),
      queue_(clock, options_.queue) {
  last_progress_ = clock_.Now();
  pods_.AddHandlers({
      [this](const PodView& p) { OnPod(p); },
      // OnPod moves the Pod when its owner changed (an orphaned Pod adopted, say).
      [this](const PodView&, const PodView& p) { OnPod(p); },
      [this](const PodView& p) { OnPodDeleted(p); },
  });
  namespaces_.AddHandlers({
      [this](const NamespaceView& n) { EnqueueNamespace(n.name); },
      [this](const NamespaceView& old_ns, const NamespaceView& n) {
        if (old_ns.labels != n.labels) EnqueueNamespace(n.name);
      },
      [this](const NamespaceView& n) { metrics_.ForgetNamespace(n.name); },
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
      // The garbage collector strips the ownerReference of a workload deleted with
      // --cascade=orphan: only capwatch can tell the report is stale now.
      [this](const ReportView& before, const ReportView& r) {
        if (before.has_owner && !r.has_owner && r.managed) {
          Enqueue({r.namespace_name, r.name});
        }
      },
      // A report deleted by someone else comes back if its workload still needs one.
      [this](const ReportView& r) {
        const WorkloadKey key{r.namespace_name, r.name};
        reconciler_.ReportDeleted(key);
        Enqueue(key);
      },
  });
}

Controller::~Controller() {
  queue_.ShutDown();
  for (auto& t : threads_) t.request_stop();
  threads_.clear();  // joins
}

void Controller::SetWriteFence(std::function<bool()> may_write) {
  may_write_ = may_write;
  reconciler_.SetWriteFence(std::move(may_write));
}

void Controller::StartInformers(std::stop_token stop) {
  auto start = [&](auto& informer) {
    threads_.emplace_back([&informer, stop](std::stop_token own) {
      WithEither(stop, own, [&](std::stop_token both) { informer.Run(both); });
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
    WithEither(stop, own, [&](std::stop_token token) {
      while (!token.stop_requested() &&
             !(replica_sets_.WaitForSync(token, std::chrono::seconds(1)) &&
               jobs_.WaitForSync(token, std::chrono::seconds(1)))) {
      }
      if (!token.stop_requested()) pods_.Run(token);
    });
  });
  threads_.emplace_back([this, stop](std::stop_token own) {
    WithEither(stop, own, [&](std::stop_token token) {
      while (!token.stop_requested()) {
        Housekeeping();
        clock_.SleepFor(std::chrono::seconds(1), token);
      }
    });
  });
}

void Controller::StepInformers(const std::stop_token& stop) {
  replica_sets_.reflector().Step(stop);
  jobs_.reflector().Step(stop);
  namespaces_.reflector().Step(stop);
  policies_.reflector().Step(stop);
  reports_.reflector().Step(stop);
  pods_.reflector().Step(stop);
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

void Controller::OnPod(const PodView& pod) {
  WorkloadRef ref;
  const WorkloadKey key = reconciler_.KeyOf(pod, &ref);
  if (auto moved_from = index_.Upsert(pod, key, ref, clock_.Now())) Enqueue(*moved_from);
  Enqueue(key);
}

void Controller::OnPodDeleted(const PodView& pod) {
  // The DELETED event's object is the Pod's last state: kept until an evaluation sees it.
  auto key = index_.Remove(kube::ObjectKey(pod.namespace_name, pod.name),
                           std::make_shared<const PodView>(pod), clock_.Now());
  if (key) Enqueue(*key);
}

void Controller::Enqueue(const WorkloadKey& key) {
  queue_.AddAfter(key.ToString(), options_.coalesce);
}

void Controller::EnqueueAll() {
  for (const auto& key : index_.Keys()) Enqueue(key);
  EnqueueOrphans();
}

void Controller::EnqueueNamespace(const std::string& namespace_name) {
  for (const auto& key : index_.KeysIn(namespace_name)) Enqueue(key);
}

// Reports capwatch wrote whose workload it does not know now (no Pods: scaled to zero,
// deleted while capwatch was down, or made by hand): their reconcile keeps, updates or
// removes them.
void Controller::EnqueueOrphans() {
  for (const auto& report : reports_.List()) {
    if (!report->managed) continue;
    const WorkloadKey key{report->namespace_name, report->name};
    if (!index_.Contains(key)) queue_.Add(key.ToString());
  }
}

void Controller::BeginWork() {
  // Every workload once, and every report of ours (those without Pods too). No report of ours
  // at all: the very first start in this cluster.
  std::set<std::string> initial;
  for (const auto& key : index_.Keys()) initial.insert(key.ToString());
  bool first_start = true;
  for (const auto& report : reports_.List()) {
    if (!report->managed) continue;
    first_start = false;
    initial.insert(WorkloadKey{report->namespace_name, report->name}.ToString());
  }
  const bool silent =
      first_start && !initial.empty() && options_.initial_grants == InitialGrants::kRecord;
  if (silent) {
    spdlog::info(
        "first start in this cluster: recording the dangerous grants that already run "
        "without announcing them (--initial-grants=record)");
  }
  reconciler_.SetAnnounce(!silent);
  {
    std::lock_guard lock(mu_);
    initial_pending_ = initial;
    initial_done_ = initial.empty();
    working_ = true;
    last_progress_ = clock_.Now();
  }
  // Everything once: the reports are compared, not rewritten, when unchanged.
  for (const auto& key : initial) queue_.Add(key);
}

void Controller::Process(const std::string& key_text, const std::stop_token& stop) {
  const auto key = WorkloadKey::Parse(key_text);
  ReconcileOutcome outcome =
      key ? reconciler_.Reconcile(*key, stop) : ReconcileOutcome::GiveUp("not a workload key");
  for (const auto& other : outcome.enqueue) Enqueue(other);
  metrics_.Reconciled(OutcomeName(outcome.kind));
  bool log_give_up = false;
  switch (outcome.kind) {
    case ReconcileOutcome::Kind::kDone:
      queue_.Forget(key_text);
      break;
    case ReconcileOutcome::Kind::kRequeueAfter:
      queue_.Forget(key_text);
      queue_.AddAfter(key_text, outcome.after);
      break;
    case ReconcileOutcome::Kind::kRetry: {
      const int failures = queue_.NumRequeues(key_text);
      // The first failure and then every tenth: a key that keeps failing stays visible in the
      // log without flooding it.
      if (failures % 10 == 0) {
        spdlog::warn("{} (attempt {}; retrying with backoff)", outcome.reason, failures + 1);
      } else {
        spdlog::debug("{} (attempt {})", outcome.reason, failures + 1);
      }
      if (!stop.stop_requested()) queue_.AddRateLimited(key_text);
      break;
    }
    case ReconcileOutcome::Kind::kGiveUp: {
      queue_.Forget(key_text);
      std::lock_guard lock(mu_);
      log_give_up = given_up_.insert(key_text).second;
      break;
    }
  }
  if (log_give_up) spdlog::error("{}; not retried until the workload changes", outcome.reason);
  std::lock_guard lock(mu_);
  if (outcome.kind != ReconcileOutcome::Kind::kGiveUp) given_up_.erase(key_text);
  last_progress_ = clock_.Now();
  if (!initial_done_ && initial_pending_.erase(key_text) != 0 && initial_pending_.empty()) {
    initial_done_ = true;
    reconciler_.SetAnnounce(true);
    spdlog::info("first pass over every workload done");
  }
}

int Controller::ProcessReady(const std::stop_token& stop) {
  int n = 0;
  std::string key;
  while (!stop.stop_requested() && queue_.TryGet(key)) {
    Process(key, stop);
    queue_.Done(key);
    ++n;
  }
  return n;
}

void Controller::LeaderTick(const std::stop_token& stop) {
  events_.Flush(stop);
  bool write_status = false;
  {
    std::lock_guard lock(mu_);
    const auto now = clock_.Now();
    // Statuses sum up every workload, so the first is written once the first pass is through
    // (a restart does not flap them to zero); after that on a timer, however busy the queue.
    if (initial_done_ && now - last_status_ >= options_.status_interval) {
      last_status_ = now;
      write_status = true;
    }
  }
  if (!Synced()) return;
  admission_.Tick(stop, may_write_);
  // After the first sync of the admission policies, so that a restart finds the statuses as
  // they were and writes none.
  if (write_status && admission_.synced_once()) statuses_.WriteChanged(stop, may_write_);
}

void Controller::RunWorkers(std::stop_token stop) {
  std::stop_source workers_stop;
  std::stop_callback on_stop(stop, [&] { workers_stop.request_stop(); });
  const std::stop_token token = workers_stop.get_token();
  // Stop taking keys at once, whatever the backlog; in-flight requests see the token.
  std::stop_callback shutdown(token, [this] { queue_.ShutDown(); });
  BeginWork();
  std::vector<std::jthread> workers;
  for (int i = 0; i < options_.workers; ++i) {
    workers.emplace_back([this, token] {
      std::string key;
      while (!token.stop_requested() && queue_.Get(key)) {
        Process(key, token);
        queue_.Done(key);
      }
    });
  }
  while (!token.stop_requested()) {
    if (may_write_ && !may_write_()) {
      spdlog::warn("the write fence closed (leadership lost); stopping the workers");
      workers_stop.request_stop();
      break;
    }
    LeaderTick(token);
    clock_.SleepFor(std::chrono::milliseconds(200), token);
  }
  workers.clear();  // joins
  std::lock_guard lock(mu_);
  working_ = false;
}

bool Controller::initial_pass_done() const {
  std::lock_guard lock(mu_);
  return initial_done_;
}

std::size_t Controller::tracked_keys() const {
  std::lock_guard lock(mu_);
  return initial_pending_.size() + given_up_.size();
}

void Controller::Housekeeping() {
  ExportInformerStats();
  for (const auto& key : index_.Prune(clock_.Now() - options_.departed_ttl)) {
    reconciler_.Forget(key);
  }
}

bool Controller::Ready(std::string* why) const {
  if (!Synced()) {
    if (why != nullptr) *why = "informers not synced yet";
    return false;
  }
  std::lock_guard lock(mu_);
  const auto now = clock_.Now();
  for (const auto& [resource, at] : last_watching_) {
    if (now - at > options_.unsynced_after) {
      if (why != nullptr) {
        *why = "the " + resource + " informer has not been watching for " +
               std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - at).count()) +
               " s";
      }
      return false;
    }
  }
  return true;
}

bool Controller::Healthy(std::string* why) const {
  std::lock_guard lock(mu_);
  if (!working_ || queue_.Due() == 0) return true;
  const auto idle = clock_.Now() - last_progress_;
  if (idle <= options_.stalled_after) return true;
  if (why != nullptr) {
    *why = std::to_string(queue_.Due()) + " workloads wait and no reconcile finished for " +
           std::to_string(std::chrono::duration_cast<std::chrono::seconds>(idle).count()) + " s";
  }
  return false;
}

void Controller::ExportInformerStats() {
  const auto now = clock_.Now();
  auto export_one = [&](const std::string& resource, kube::Reflector& reflector, std::size_t size) {
    const kube::ReflectorStats stats = reflector.stats();
    std::lock_guard lock(mu_);
    if (!last_watching_.count(resource)) last_watching_[resource] = now;
    kube::ReflectorStats& before = exported_[resource];
    // Healthy since the last look: not backing off, and no failure in between.
    if (reflector.state() != kube::ReflectorState::kBackoff && stats.backoffs == before.backoffs) {
      last_watching_[resource] = now;
    }
    for (const auto& e : kStatExports) {
      const std::uint64_t now_count = stats.*e.field, was = before.*e.field;
      if (now_count <= was) continue;
      const auto delta = static_cast<double>(now_count - was);
      if (e.restart) {
        metrics_.WatchRestart(resource, e.label, delta);
      } else {
        metrics_.WatchEvent(resource, e.label, delta);
      }
    }
    if (resource == "pods" && stats.lists > before.lists) {
      metrics_.SetLastFullSync(clock_.WallNow());
    }
    before = stats;
    metrics_.SetCacheObjects(resource, static_cast<double>(size));
  };
  export_one("pods", pods_.reflector(), pods_.size());
  export_one("replicasets", replica_sets_.reflector(), replica_sets_.size());
  export_one("jobs", jobs_.reflector(), jobs_.size());
  export_one("namespaces", namespaces_.reflector(), namespaces_.size());
  export_one("capabilitypolicies", policies_.reflector(), policies_.size());
  export_one("capabilityreports", reports_.reflector(), reports_.size());
}

}  // namespace capwatch::controller
