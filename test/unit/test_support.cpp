#include "test_support.h"

#include <gtest/gtest.h>

namespace capwatch::testing {

ManifestWorkload OneWorkload(const std::string& yaml) {
  ManifestResult result;
  ReadManifest("test.yaml", yaml, {}, result);
  for (const auto& e : result.errors) ADD_FAILURE() << e.ToString();
  if (result.workloads.size() != 1) {
    ADD_FAILURE() << "expected one workload, got " << result.workloads.size();
    return {};
  }
  return result.workloads.front();
}

PodEvaluation EvaluateYaml(const std::string& yaml, const Policy& policy, Clock::time_point now) {
  static thread_local ManifestWorkload keep;  // the evaluation points into the pod
  keep = OneWorkload(yaml);
  const Policy* policies[] = {&policy};
  return Evaluate(keep.pod, policies, now);
}

std::vector<std::string> Summarise(const PodEvaluation& evaluation, bool include_exempt) {
  std::vector<std::string> out;
  for (const auto& f : evaluation.findings) {
    if (f.exempt && !include_exempt) continue;
    std::string s = std::string(RuleId(f.rule)) + " " + (f.container.empty() ? "-" : f.container) +
                    " " + (f.capability.empty() ? "-" : f.capability);
    if (f.pss_control != PssControl::kNone)
      s += " [" + std::string(PssControlId(f.pss_control)) + "]";
    if (f.exempt) s += " (exempt)";
    out.push_back(s);
  }
  return out;
}

}  // namespace capwatch::testing
