#pragma once

#include <string>
#include <vector>

#include "policy/evaluate.h"
#include "workload/manifest_reader.h"

namespace capwatch::testing {

// The single workload in a YAML manifest; fails the test when there is not exactly one.
ManifestWorkload OneWorkload(const std::string& yaml);

// Evaluates a manifest's single workload against one policy.
PodEvaluation EvaluateYaml(const std::string& yaml, const Policy& policy,
                           Clock::time_point now = Clock::now());

// "rule container capability [pssControl]" per failing finding, for compact assertions.
std::vector<std::string> Summarise(const PodEvaluation& evaluation, bool include_exempt = false);

}  // namespace capwatch::testing
