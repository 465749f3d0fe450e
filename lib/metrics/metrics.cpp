#include "metrics/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <optional>
#include <set>

#include "capabilities/capability_names.h"

#ifndef CAPWATCH_VERSION
#define CAPWATCH_VERSION "0.0.0-dev"
#endif

namespace capwatch {
namespace {

// The one list of metrics: the families below are built from it, and docs/metrics.md is
// checked against it by a test.
const std::vector<MetricInfo> kMetrics = {
    {"capwatch_violations", "gauge", "namespace, policy, rule, severity",
     "Containers that violate a policy rule now."},
    {"capwatch_capability_grants", "gauge", "namespace, capability, dangerous",
     "Containers that hold an explicitly added capability now."},
    {"capwatch_dangerous_grants_total", "counter", "namespace, capability",
     "Dangerous capabilities granted for the first time (a new workload or a changed spec)."},
    {"capwatch_workloads", "gauge", "namespace, compliant",
     "Workloads with a report, by compliance."},
    {"capwatch_watch_events_total", "counter", "resource, type", "Watch events received."},
    {"capwatch_watch_restarts_total", "counter", "resource, reason",
     "Watches restarted (timeouts, errors, 410 Gone relists)."},
    {"capwatch_api_requests_total", "counter", "verb, code",
     "Requests to the Kubernetes API server by verb and HTTP status code."},
    {"capwatch_report_writes_total", "counter", "result",
     "CapabilityReport writes by result (created, updated, deleted, conflict, invalid, error)."},
    {"capwatch_evaluation_duration_seconds", "histogram", "",
     "Time to evaluate one workload against the policies and build its report."},
    {"capwatch_cache_objects", "gauge", "resource", "Objects held in the informer caches."},
    {"capwatch_last_full_sync_timestamp_seconds", "gauge", "",
     "Unix time of the last completed full list of Pods."},
    {"capwatch_leader", "gauge", "", "1 when this replica is the leader and writes, else 0."},
    {"capwatch_build_info", "gauge", "version", "Always 1; the version in a label."},
    {"capwatch_events_total", "counter", "result",
     "Kubernetes Events capwatch posted (posted), failed and kept for a retry (retried), or "
     "gave up on (dropped)."},
    {"capwatch_reconciles_total", "counter", "outcome",
     "Workload reconciles by outcome (done, requeue, retry, gave_up: refused by the API server "
     "as invalid, not retried)."},
};

const MetricInfo& Info(std::string_view name) {
  for (const auto& m : kMetrics) {
    if (m.name == name) return m;
  }
  throw std::logic_error("metric not declared: " + std::string(name));
}

template <typename Builder>
auto& Build(Builder builder, prometheus::Registry& registry, std::string_view name) {
  const MetricInfo& info = Info(name);
  return builder.Name(std::string(info.name)).Help(std::string(info.help)).Register(registry);
}

}  // namespace

const std::vector<MetricInfo>& MetricCatalog() { return kMetrics; }

Metrics::Metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  auto& r = *registry_;
  violations_ = &Build(prometheus::BuildGauge(), r, "capwatch_violations");
  grants_ = &Build(prometheus::BuildGauge(), r, "capwatch_capability_grants");
  dangerous_grants_total_ =
      &Build(prometheus::BuildCounter(), r, "capwatch_dangerous_grants_total");
  workloads_ = &Build(prometheus::BuildGauge(), r, "capwatch_workloads");
  watch_events_ = &Build(prometheus::BuildCounter(), r, "capwatch_watch_events_total");
  watch_restarts_ = &Build(prometheus::BuildCounter(), r, "capwatch_watch_restarts_total");
  api_requests_ = &Build(prometheus::BuildCounter(), r, "capwatch_api_requests_total");
  report_writes_ = &Build(prometheus::BuildCounter(), r, "capwatch_report_writes_total");
  evaluation_seconds_ =
      &Build(prometheus::BuildHistogram(), r, "capwatch_evaluation_duration_seconds");
  cache_objects_ = &Build(prometheus::BuildGauge(), r, "capwatch_cache_objects");
  last_full_sync_ =
      &Build(prometheus::BuildGauge(), r, "capwatch_last_full_sync_timestamp_seconds");
  leader_ = &Build(prometheus::BuildGauge(), r, "capwatch_leader");
  build_info_ = &Build(prometheus::BuildGauge(), r, "capwatch_build_info");
  events_ = &Build(prometheus::BuildCounter(), r, "capwatch_events_total");
  reconciles_ = &Build(prometheus::BuildCounter(), r, "capwatch_reconciles_total");
  build_info_->Add({{"version", CAPWATCH_VERSION}}).Set(1);
  leader_->Add({}).Set(0);
}

Metrics::~Metrics() = default;

std::string Metrics::Render() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

Metrics::ContributionLabels Metrics::ContributionOf(const nlohmann::json& report) {
  ContributionLabels c;
  const std::string ns = report.at("metadata").value("namespace", "");
  // capwatch_violations counts containers: one per (policy, rule, severity) however many
  // findings a container has for it.
  std::map<Labels, std::set<std::string>> violating;
  for (const auto& f : report.value("findings", nlohmann::json::array())) {
    if (f.value("result", "") != "fail") continue;
    Labels labels = {{"namespace", ns},
                     {"policy", f.value("policy", "")},
                     {"rule", f.value("rule", "")},
                     {"severity", f.value("severity", "")}};
    violating[labels].insert(f.value("container", ""));
  }
  for (auto& [labels, containers] : violating) {
    c.violations.emplace_back(labels, static_cast<double>(containers.size()));
  }
  const CapabilitySet dangerous = DangerousSet();
  std::map<Labels, double> grants;
  for (const auto& container : report.value("containers", nlohmann::json::array())) {
    for (const auto& added : container.value("added", nlohmann::json::array())) {
      const CapabilityName name = ParseCapabilityName(added.get<std::string>());
      if (name.is_unknown()) continue;
      const bool is_dangerous = name.is_all() || Contains(dangerous, name.number);
      const std::string cap =
          name.is_all() ? "ALL" : std::string(CapabilityByNumber(name.number).name);
      grants[{{"namespace", ns},
              {"capability", cap},
              {"dangerous", is_dangerous ? "true" : "false"}}] += 1;
    }
  }
  c.grants.assign(grants.begin(), grants.end());
  const bool compliant = report.at("summary").value("compliant", false);
  c.workloads.push_back({{{"namespace", ns}, {"compliant", compliant ? "true" : "false"}}, 1});
  return c;
}

namespace {

template <typename Map, typename Family>
typename Map::value_type* AddTo(Map& series, Family& family,
                                const typename Map::key_type& labels, double value) {
  auto [it, inserted] = series.try_emplace(labels);
  if (inserted) it->second.gauge = &family.Add(labels);
  it->second.total += value;
  it->second.gauge->Set(it->second.total);
  return &*it;
}

template <typename Map, typename Family>
void SubtractFrom(Map& series, Family& family, typename Map::value_type* ref, double value) {
  ref->second.total -= value;
  if (ref->second.total > 0) {
    ref->second.gauge->Set(ref->second.total);
    return;
  }
  // Drop series that fell to zero so that the series count follows what exists. Every
  // contribution is positive, so none still points here.
  family.Remove(ref->second.gauge);
  series.erase(ref->first);
}

}  // namespace

Metrics::Contribution Metrics::Add(ContributionLabels labels) {
  Contribution c;
  auto add = [](auto& from, auto& to, SeriesMap& series, auto& family) {
    to.reserve(from.size());
    for (auto& [l, v] : from) to.emplace_back(AddTo(series, family, l, v), v);
  };
  add(labels.violations, c.violations, violation_series_, *violations_);
  add(labels.grants, c.grants, grant_series_, *grants_);
  add(labels.workloads, c.workloads, workload_series_, *workloads_);
  return c;
}

void Metrics::Subtract(const Contribution& c) {
  for (const auto& [ref, v] : c.violations) SubtractFrom(violation_series_, *violations_, ref, v);
  for (const auto& [ref, v] : c.grants) SubtractFrom(grant_series_, *grants_, ref, v);
  for (const auto& [ref, v] : c.workloads) SubtractFrom(workload_series_, *workloads_, ref, v);
}

void Metrics::SetReport(const std::string& key, const nlohmann::json* report) {
  std::lock_guard<std::mutex> lock(mu_);
  // The new contribution first, then the old one out: a series both hold never falls to zero
  // on the way, so it is not dropped and made again at every update.
  std::optional<Contribution> added;
  if (report != nullptr) added = Add(ContributionOf(*report));
  auto it = by_workload_.find(key);
  if (it != by_workload_.end()) {
    Subtract(it->second);
    if (added) {
      it->second = std::move(*added);
    } else {
      by_workload_.erase(it);
    }
  } else if (added) {
    by_workload_.emplace(key, std::move(*added));
  }
}

void Metrics::CountNewDangerousGrant(const std::string& namespace_name,
                                     const std::string& capability) {
  std::lock_guard<std::mutex> lock(mu_);
  counted_[namespace_name].insert(capability);
  dangerous_grants_total_->Add({{"namespace", namespace_name}, {"capability", capability}})
      .Increment();
}

void Metrics::ForgetNamespace(const std::string& namespace_name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = counted_.find(namespace_name);
  if (it == counted_.end()) return;
  for (const auto& capability : it->second) {
    const Labels labels = {{"namespace", namespace_name}, {"capability", capability}};
    if (dangerous_grants_total_->Has(labels)) {
      dangerous_grants_total_->Remove(&dangerous_grants_total_->Add(labels));
    }
  }
  counted_.erase(it);
}

void Metrics::EventPosted(const std::string& result) {
  events_->Add({{"result", result}}).Increment();
}

void Metrics::Reconciled(const std::string& outcome) {
  reconciles_->Add({{"outcome", outcome}}).Increment();
}

void Metrics::WatchEvent(const std::string& resource, const std::string& type, double count) {
  watch_events_->Add({{"resource", resource}, {"type", type}}).Increment(count);
}

void Metrics::WatchRestart(const std::string& resource, const std::string& reason, double count) {
  watch_restarts_->Add({{"resource", resource}, {"reason", reason}}).Increment(count);
}

void Metrics::ApiRequest(const std::string& verb, int code) {
  api_requests_->Add({{"verb", verb}, {"code", std::to_string(code)}}).Increment();
}

void Metrics::ReportWrite(const std::string& result) {
  report_writes_->Add({{"result", result}}).Increment();
}

void Metrics::ObserveEvaluation(std::chrono::duration<double> seconds) {
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5};
  evaluation_seconds_->Add({}, kBuckets).Observe(seconds.count());
}

void Metrics::SetCacheObjects(const std::string& resource, double count) {
  cache_objects_->Add({{"resource", resource}}).Set(count);
}

void Metrics::SetLastFullSync(std::chrono::system_clock::time_point when) {
  last_full_sync_->Add({}).Set(std::chrono::duration<double>(when.time_since_epoch()).count());
}

void Metrics::SetLeader(bool leader) { leader_->Add({}).Set(leader ? 1 : 0); }

}  // namespace capwatch
