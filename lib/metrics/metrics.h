#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace prometheus {
class Registry;
template <typename T>
class Family;
class Gauge;
class Counter;
class Histogram;
}  // namespace prometheus

namespace capwatch {

// Every metric capwatch exports, declared in one place (DESIGN §3). No pod or container labels:
// the series count is bounded by namespaces × policies × rules × severities.
struct MetricInfo {
  std::string_view name;
  std::string_view type;  // gauge | counter | histogram
  std::string_view labels;
  std::string_view help;
};
const std::vector<MetricInfo>& MetricCatalog();

class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }
  // The Prometheus text exposition of everything, as a scrape would see it.
  std::string Render() const;

  // The domain gauges follow the reports: call with a workload's current report, or with
  // nullptr when its report is gone. `key` identifies the workload (namespace/name).
  void SetReport(const std::string& key, const nlohmann::json* report);
  void CountNewDangerousGrant(const std::string& namespace_name, const std::string& capability);
  // The namespace is gone: its counter series go with it (the gauges follow the reports).
  void ForgetNamespace(const std::string& namespace_name);
  // An Event posted, retried or dropped.
  void EventPosted(const std::string& result);
  // One reconcile's outcome: done, requeue, retry, gave_up.
  void Reconciled(const std::string& outcome);

  // Operational.
  void WatchEvent(const std::string& resource, const std::string& type, double count = 1);
  void WatchRestart(const std::string& resource, const std::string& reason, double count = 1);
  void ApiRequest(const std::string& verb, int code);
  void ReportWrite(const std::string& result);
  void ObserveEvaluation(std::chrono::duration<double> seconds);
  void SetCacheObjects(const std::string& resource, double count);
  void SetLastFullSync(std::chrono::system_clock::time_point when);
  void SetLeader(bool leader);

 private:
  using Labels = std::map<std::string, std::string>;
  // One domain series: its gauge and the sum of the workloads' contributions to it. Each label
  // set is held once, here; a workload's contribution points at its series, so 1,000 workloads
  // of 41 capabilities each cost 16 bytes a (workload, series) and not a copy of the labels.
  struct Series {
    prometheus::Gauge* gauge = nullptr;
    double total = 0;
  };
  using SeriesMap = std::map<Labels, Series>;
  using SeriesRef = SeriesMap::value_type*;
  struct Contribution {
    std::vector<std::pair<SeriesRef, double>> violations, grants, workloads;
  };
  struct ContributionLabels {
    std::vector<std::pair<Labels, double>> violations, grants, workloads;
  };
  static ContributionLabels ContributionOf(const nlohmann::json& report);
  Contribution Add(ContributionLabels labels);
  void Subtract(const Contribution& c);

  std::shared_ptr<prometheus::Registry> registry_;
  mutable std::mutex mu_;
  std::map<std::string, Contribution> by_workload_;
  SeriesMap violation_series_, grant_series_, workload_series_;
  std::map<std::string, std::set<std::string>> counted_;  // namespace → capabilities counted

  prometheus::Family<prometheus::Gauge>* violations_;
  prometheus::Family<prometheus::Gauge>* grants_;
  prometheus::Family<prometheus::Counter>* dangerous_grants_total_;
  prometheus::Family<prometheus::Gauge>* workloads_;
  prometheus::Family<prometheus::Counter>* watch_events_;
  prometheus::Family<prometheus::Counter>* watch_restarts_;
  prometheus::Family<prometheus::Counter>* api_requests_;
  prometheus::Family<prometheus::Counter>* report_writes_;
  prometheus::Family<prometheus::Histogram>* evaluation_seconds_;
  prometheus::Family<prometheus::Gauge>* cache_objects_;
  prometheus::Family<prometheus::Gauge>* last_full_sync_;
  prometheus::Family<prometheus::Gauge>* leader_;
  prometheus::Family<prometheus::Gauge>* build_info_;
  prometheus::Family<prometheus::Counter>* events_;
  prometheus::Family<prometheus::Counter>* reconciles_;
};

}  // namespace capwatch
