#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "policy/evaluate.h"
#include "workload/manifest_reader.h"

namespace capwatch {

// One evaluated workload of an audit: its source, evaluation and the report built from it.
struct AuditedWorkload {
  const ManifestWorkload* workload = nullptr;
  PodEvaluation evaluation;
  nlohmann::json report;
};

struct AuditOutput {
  std::vector<AuditedWorkload> workloads;
  std::vector<const Policy*> policies;
};

void WriteTable(const AuditOutput& audit, std::ostream& out, bool colour);
void WriteJson(const AuditOutput& audit, std::ostream& out);
void WriteSarif(const AuditOutput& audit, std::ostream& out);

}  // namespace capwatch
