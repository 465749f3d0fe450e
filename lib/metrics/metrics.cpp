#include "metrics/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <charconv>
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

Metrics::Metrics()
    : violations_{"capwatch_violations", {"namespace", "policy", "rule", "severity"}, {}},
      grants_{"capwatch_capability_grants", {"capability", "dangerous", "namespace"}, {}},
      workloads_{"capwatch_workloads", {"compliant", "namespace"}, {}},
      dangerous_grants_total_{"capwatch_dangerous_grants_total", {"capability", "namespace"}, {}},
      registry_(std::make_shared<prometheus::Registry>()) {
  auto& r = *registry_;
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
  std::string out;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const DomainFamily* f : {&violations_, &grants_, &dangerous_grants_total_, &workloads_}) {
      RenderFamily(*f, out);
    }
  }
  out += prometheus::TextSerializer().Serialize(registry_->Collect());
  return out;
}

namespace {

// Label values the way the text format wants them: backslash, double quote and newline escaped.
void AppendLabelValue(std::string_view value, std::string& out) {
  for (const char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

// A series' key: its label values in the family's label order, joined by '\0'.
std::string Key(std::initializer_list<std::string_view> values) {
  std::string key;
  bool first = true;
  for (const auto v : values) {
    if (!first) key += '\0';
    first = false;
    key += v;
  }
  return key;
}

}  // namespace

void Metrics::RenderFamily(const DomainFamily& family, std::string& out) {
  if (family.series.empty()) return;  // as prometheus-cpp does with a family without series
  const MetricInfo& info = Info(family.name);
  out += "# HELP ";
  out += info.name;
  out += ' ';
  out += info.help;
  out += "\n# TYPE ";
  out += info.name;
  out += ' ';
  out += info.type;
  out += '\n';
  for (const auto& [key, value] : family.series) {
    out += info.name;
    out += '{';
    std::size_t start = 0;
    for (std::size_t i = 0; i < family.label_names.size(); ++i) {
      const std::size_t end = std::min(key.find('\0', start), key.size());
      if (i) out += ',';
      out += family.label_names[i];
      out += "=\"";
      AppendLabelValue(std::string_view(key).substr(start, end - start), out);
      out += '"';
      start = std::min(end + 1, key.size());
    }
    out += "} ";
    char number[32];
    out.append(number, std::to_chars(number, number + sizeof number, value).ptr);
    out += '\n';
  }
}

Metrics::ContributionKeys Metrics::ContributionOf(const std::string& ns,
                                                  const PodEvaluation& evaluation) {
  ContributionKeys c;
  // capwatch_violations counts containers: one per (policy, rule, severity) however many
  // findings a container has for it (a Pod-level finding counts as one).
  std::map<std::string, std::set<std::string_view>> violating;
  for (const Finding& f : evaluation.findings) {
    if (f.exempt) continue;
    violating[Key({ns, f.policy, RuleId(f.rule), SeverityName(f.severity)})].insert(f.container);
  }
  for (auto& [key, containers] : violating) {
    c.violations.emplace_back(key, static_cast<double>(containers.size()));
  }
  // capwatch_capability_grants counts the containers adding each capability they name
  // (the report's `added`, unknown names left out).
  const CapabilitySet dangerous = DangerousSet();
  std::map<std::string, double> grants;
  auto grant = [&](std::string_view cap, bool is_dangerous) {
    grants[Key({cap, is_dangerous ? "true" : "false", ns})] += 1;
  };
  for (const ContainerFacts& container : evaluation.containers) {
    if (container.adds_all) grant("ALL", true);
    for (int n = 0; n < kCapabilityCount; ++n) {
      if (Contains(container.added, n)) grant(CapabilityByNumber(n).name, Contains(dangerous, n));
    }
  }
  c.grants.assign(grants.begin(), grants.end());
  c.workloads.emplace_back(Key({violating.empty() ? "true" : "false", ns}), 1);
  return c;
}

Metrics::Contribution Metrics::Add(ContributionKeys keys) {
  Contribution c;
  auto add = [](auto& from, auto& to, DomainFamily& family) {
    to.reserve(from.size());
    for (auto& [key, v] : from) {
      auto& series = *family.series.try_emplace(std::move(key), 0.0).first;
      series.second += v;
      to.emplace_back(&series, v);
    }
  };
  add(keys.violations, c.violations, violations_);
  add(keys.grants, c.grants, grants_);
  add(keys.workloads, c.workloads, workloads_);
  return c;
}

void Metrics::Subtract(const Contribution& c) {
  auto subtract = [](const auto& from, DomainFamily& family) {
    for (const auto& [series, v] : from) {
      series->second -= v;
      // Drop series that fell to zero so that the series count follows what exists. Every
      // contribution is positive, so none still points here.
      if (series->second <= 0) family.series.erase(series->first);
    }
  };
  subtract(c.violations, violations_);
  subtract(c.grants, grants_);
  subtract(c.workloads, workloads_);
}

void Metrics::SetWorkload(const std::string& key, const std::string& namespace_name,
                          const PodEvaluation* evaluation) {
  std::lock_guard<std::mutex> lock(mu_);
  // The new contribution first, then the old one out: a series both hold never falls to zero
  // on the way, so it is not dropped and made again at every update.
  std::optional<Contribution> added;
  if (evaluation != nullptr) added = Add(ContributionOf(namespace_name, *evaluation));
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
  dangerous_grants_total_.series[Key({capability, namespace_name})] += 1;
}

void Metrics::ForgetNamespace(const std::string& namespace_name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = counted_.find(namespace_name);
  if (it == counted_.end()) return;
  for (const auto& capability : it->second) {
    dangerous_grants_total_.series.erase(Key({capability, namespace_name}));
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
