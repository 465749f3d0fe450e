#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "workload/owner_resolution.h"
#include "workload/pod_view.h"

namespace capwatch {

// Where a workload came from, for messages and SARIF locations.
struct SourceLocation {
  std::string file;  // "-" for standard input
  int document = 0;  // 1-based index of the YAML/JSON document in the file
  int line = 0;      // 1-based, 0 when unknown (JSON input)
};

// One pod-bearing object of the input: a Pod, a workload's pod template, or a PodTemplate.
struct ManifestWorkload {
  WorkloadRef ref;
  std::string namespace_name;
  PodView pod;   // the Pod, or the template with the workload's name and namespace
  int pods = 0;  // Pod objects of the input attributed to this workload
  std::vector<OwnerReference> owners;  // the object's own ownerReferences
  SourceLocation source;
  std::map<std::string, int> container_lines;  // container name → line, where known
};

// One problem of the input: where it is, and which field (its JSON path in the object, e.g.
// ".spec.template.spec.containers[0]"; empty for the document as a whole) and what is wrong.
struct ManifestError {
  SourceLocation source;
  FieldError error;
  // "m.yaml, document 2, line 7, field .spec.containers: missing: ..."
  std::string ToString() const;
};

struct ManifestOptions {
  // YAML goes through yaml-cpp's tree, which costs far more memory than the input; JSON of any
  // size within max_json_bytes is fine (`kubectl get pods -A -o json` of a large cluster).
  std::size_t max_yaml_bytes = 32u << 20;
  std::size_t max_json_bytes = 1u << 30;
  bool ignore_unknown_kinds = false;
};

// A batch, not a Result: every object of the input is read, each valid or not, and one bad
// object does not lose the others. Its errors and warnings are FieldError-based (ManifestError).
struct ManifestResult {
  std::vector<ManifestWorkload> workloads;
  // Input that is no Kubernetes object capwatch can evaluate (not YAML or JSON, an unknown
  // kind, no pod template, no name): the object is left out and audit exits 2.
  std::vector<ManifestError> errors;
  // Fields of an evaluated object that could not be read (a wrong type): the object is
  // evaluated with what could be read, and each is an unreadable-field finding of it too.
  std::vector<ManifestError> warnings;
  std::vector<std::string> notes;  // skipped objects and the like
};

// Reads one file's content. `file` only names it in messages.
void ReadManifest(const std::string& file, const std::string& content,
                  const ManifestOptions& options, ManifestResult& result);

// Groups Pods under their top owner: Pods whose ReplicaSet/Job (and its owner) appear in the
// input, or whose names show their Deployment, are merged into that workload's entry.
void AttributePods(ManifestResult& result);

}  // namespace capwatch
