#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "controller/workload_key.h"
#include "kube/clock.h"
#include "kube/kube_client.h"
#include "report/policy_report.h"

namespace capwatch::controller {

// --policy-reports: which shared format the CapabilityReports are projected into.
enum class PolicyReportMode {
  kOff,
  kAuto,  // openreports.io when its Report CRD is served, else wgpolicyk8s.io
  kOpenReports,
  kWgPolicy,
};
std::optional<PolicyReportMode> ParsePolicyReportMode(std::string_view text);

// Writes each CapabilityReport's projection (report/policy_report.h) into the shared format,
// only when it changed: what is in the API server is listed once, when the first workload is
// reconciled (the hashes kept per workload, ~100 bytes each), and every write after that is
// remembered. The projection is owned by its CapabilityReport, so the garbage collector removes
// it with the report, whoever deletes that. Created when capwatch knows of none, replaced with
// server-side apply when it changed.
class PolicyReportWriter {
 public:
  PolicyReportWriter(kube::KubeClient& client, kube::Clock& clock, PolicyReportMode mode);

  bool enabled() const { return mode_ != PolicyReportMode::kOff; }
  // After the workload's CapabilityReport is in step (uid `report_uid`): brings its projection
  // in step. Returns what failed, empty when nothing did.
  std::string Sync(const WorkloadKey& key, const nlohmann::json& capability_report,
                   const std::vector<std::string>& policies, const std::string& report_uid,
                   const std::stop_token& stop);
  // The CapabilityReport is gone, and the garbage collector takes the projection with it.
  void Forget(const WorkloadKey& key);
  std::size_t tracked() const;

 private:
  // Finds the format (kAuto) and lists the projections in the API server; "" when done.
  std::string Load(const std::stop_token& stop);

  kube::KubeClient& client_;
  kube::Clock& clock_;
  const PolicyReportMode mode_;

  mutable std::mutex mu_;  // guards the members below
  std::optional<PolicyReportFormat> format_;
  bool loaded_ = false;
  std::string load_error_;  // why the last Load failed, answered until retry_load_at_
  kube::Clock::TimePoint retry_load_at_{};
  std::map<WorkloadKey, std::string> written_;  // workload → hash of its projection
};

}  // namespace capwatch::controller
