#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>

#include "policy/evaluate.h"
#include "workload/owner_resolution.h"

namespace capwatch {

inline constexpr std::string_view kReportApiVersion = "capwatch.io/v1alpha1";
inline constexpr std::string_view kContentHashAnnotation = "capwatch.io/content-hash";

struct ReportInput {
  WorkloadRef workload;
  std::string namespace_name;
  int pods = 0;
  const PodView* pod = nullptr;  // the pod (or template) the evaluation is of
  const PodEvaluation* evaluation = nullptr;
};

struct ReportOptions {
  // The API server refuses objects over 1.5 MiB; reports stay well below.
  std::size_t max_bytes = 900 * 1024;
};

// Builds the CapabilityReport object of DESIGN §2: deterministic (the same input gives the
// same bytes), with the content hash in an annotation, and capped in size: when the workload
// is too large, the lowest-severity findings and the last containers are left out and the
// summary says how many.
nlohmann::json BuildReport(const ReportInput& input, const ReportOptions& options = {});

// A hash of what a report says (workload, summary, containers, findings; not the Pod count),
// so a writer can tell whether anything changed without comparing whole objects.
std::string ContentHash(const nlohmann::json& report);

}  // namespace capwatch
