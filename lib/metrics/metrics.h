#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "policy/evaluate.h"

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

  // The Prometheus text exposition of everything, as a scrape would see it.
  std::string Render() const;

  // The domain gauges follow the workloads' evaluations: call with a workload's current one,
  // or with nullptr when its report is gone. `key` identifies the workload (namespace/name).
  // The evaluation, not the report: a report of a large workload leaves its lowest-severity
  // findings out to stay under the API server's size limit, and the gauges must still count
  // every violating container.
  void SetWorkload(const std::string& key, const std::string& namespace_name,
                   const PodEvaluation* evaluation);
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
  // The domain families are kept here, not in prometheus-cpp: at 1,000 namespaces they are
  // 60,000 series, and prometheus-cpp holds each as a map of label strings plus a metric
  // object, then copies all of them into ClientMetrics at every scrape. Here a series is its
  // label values joined by '\0' (in the family's label order, which is also the order it is
  // rendered in) and one number; a workload's contribution points at the series it adds to.
  struct DomainFamily {
    std::string_view name;
    std::vector<std::string_view> label_names;  // sorted, as Prometheus renders them
    std::map<std::string, double> series;       // joined label values → value
  };
  using SeriesRef = std::map<std::string, double>::value_type*;
  struct Contribution {
    std::vector<std::pair<SeriesRef, double>> violations, grants, workloads;
  };
  struct ContributionKeys {
    std::vector<std::pair<std::string, double>> violations, grants, workloads;
  };
  static ContributionKeys ContributionOf(const std::string& namespace_name,
                                         const PodEvaluation& evaluation);
  Contribution Add(ContributionKeys keys);
  void Subtract(const Contribution& c);
  static void RenderFamily(const DomainFamily& family, std::string& out);

  mutable std::mutex mu_;
  std::map<std::string, Contribution> by_workload_;
  DomainFamily violations_, grants_, workloads_, dangerous_grants_total_;
  std::map<std::string, std::set<std::string>> counted_;  // namespace → capabilities counted

  std::shared_ptr<prometheus::Registry> registry_;
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
