#pragma once

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "capabilities/capability_names.h"
#include "policy/finding.h"
#include "policy/policy.h"
#include "workload/pod_view.h"

namespace capwatch {

// What one container holds, derived once from its ContainerView (DESIGN §1): the runtime's
// default set, minus drop, plus add; everything when privileged or add: [ALL].
struct ContainerFacts {
  const ContainerView* view = nullptr;
  std::vector<CapabilityName> add_names;   // parsed entries of capabilities.add
  std::vector<CapabilityName> drop_names;  // parsed entries of capabilities.drop
  CapabilitySet added = 0;                 // known capabilities in add
  CapabilitySet dropped = 0;               // known capabilities in drop
  bool adds_all = false;
  bool drops_all = false;  // after normalisation (the runtime's view)
  bool privileged = false;
  CapabilitySet granted = 0;                // the bounding set the process starts with
  std::optional<bool> run_as_non_root;      // effective: container over pod
  std::optional<std::int64_t> run_as_user;  // effective: container over pod
  std::optional<bool> allow_privilege_escalation;
};

ContainerFacts AnalyzeContainer(const ContainerView& view, const PodView& pod,
                                CapabilitySet runtime_defaults);

struct PodEvaluation {
  std::vector<ContainerFacts> containers;  // parallel to PodView::containers
  std::vector<Finding> findings;           // stably ordered
  bool skipped = false;
  std::string note;  // why the pod was skipped, when it was
};

// Does the policy's match select this pod? `namespace_labels` may be null when unknown
// (offline audit), in which case a namespaceSelector sees no labels.
bool PolicyMatches(const Policy& policy, const PodView& pod,
                   const std::vector<std::pair<std::string, std::string>>* namespace_labels);

// Evaluates every given policy against the pod. Pure: the time only decides whether
// exemptions have expired.
PodEvaluation Evaluate(const PodView& pod, std::span<const Policy* const> policies,
                       Clock::time_point now);

}  // namespace capwatch
