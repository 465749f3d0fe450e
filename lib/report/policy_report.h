#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace capwatch {

// The shared report formats Policy Reporter and other tools read.
enum class PolicyReportFormat {
  kOpenReports,  // openreports.io/v1alpha1 Report
  kWgPolicy,     // wgpolicyk8s.io/v1alpha2 PolicyReport, the older one
};
std::string_view PolicyReportApiVersion(PolicyReportFormat format);
std::string_view PolicyReportKind(PolicyReportFormat format);
std::string_view PolicyReportResource(PolicyReportFormat format);  // "reports", "policyreports"

// The name the projection of a CapabilityReport gets: "capwatch-<report>", shortened with a
// hash when that would exceed 253 characters.
std::string PolicyReportName(std::string_view report_name);

// A CapabilityReport (as BuildReport makes it) in a shared format: source capwatch, the
// workload as scope, one result per finding (fail, or skip for an exempted one) with policy,
// rule, severity, message and the container and capability in properties, and one pass result
// for each of `policies` (the policies matching the workload) without a failing finding. The
// summary counts the results, or, for a size-capped report, every finding its summary counts.
// Owned by the CapabilityReport (uid `report_uid`), so it goes wherever the report goes. The
// capwatch.io/content-hash annotation covers everything but the results' timestamps, which say
// `now`: the same report gives the same hash.
nlohmann::json ProjectPolicyReport(const nlohmann::json& capability_report,
                                   const std::vector<std::string>& policies,
                                   PolicyReportFormat format, std::string_view report_uid,
                                   std::chrono::system_clock::time_point now);

}  // namespace capwatch
