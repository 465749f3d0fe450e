#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace capwatch {

enum class ContainerType { kContainer, kInitContainer, kEphemeralContainer };
std::string_view ContainerTypeName(ContainerType type);

// The security-relevant part of one container, exactly as written in the manifest (no
// defaulting, no normalisation: the engine does that, and Pod Security admission compares the
// raw strings).
struct ContainerView {
  std::string name;
  ContainerType type = ContainerType::kContainer;
  std::string image;
  std::vector<std::string> add;
  std::vector<std::string> drop;
  std::optional<bool> privileged;
  std::optional<bool> allow_privilege_escalation;
  std::optional<bool> run_as_non_root;
  std::optional<std::int64_t> run_as_user;
};

// A field that is there but could not be read (a wrong type: a number where a capability name
// belongs, "yes" where a boolean does). capwatch evaluates what it could read and reports each
// such field as a critical `unreadable-field` finding, so what it cannot see is never taken for
// compliant (fail closed).
struct UnreadableField {
  std::string path;    // in the object: ".spec.containers[0].securityContext.capabilities.add[3]"
  std::string reason;  // "expected a string, got a number"
  std::string container;  // the container the field belongs to; empty for the pod or unknown
};

struct OwnerReference {
  std::string api_version;
  std::string kind;
  std::string name;
  std::string uid;
  bool controller = false;
};

// A compact projection of a Pod (or a pod template): identity, ownership, labels and the
// fields capwatch evaluates. Never the whole JSON tree.
struct PodView {
  std::string namespace_name;
  std::string name;
  std::string uid;
  std::string resource_version;
  std::int64_t created = 0;  // metadata.creationTimestamp, Unix seconds (0 when absent)
  std::vector<std::pair<std::string, std::string>> labels;
  // Only the capwatch.io/justification.<CAP> annotations, keyed by the part after the dot.
  std::vector<std::pair<std::string, std::string>> justifications;
  std::vector<OwnerReference> owners;
  std::string os;                       // spec.os.name; "windows" pods hold no Linux capabilities
  std::optional<bool> run_as_non_root;  // spec.securityContext
  std::optional<std::int64_t> run_as_user;  // spec.securityContext
  std::optional<bool> host_users;           // spec.hostUsers; false: a user namespace
  std::vector<ContainerView> containers;    // containers, then init, then ephemeral
  std::vector<UnreadableField> unreadable;  // fields present but not readable, in JSON order

  const OwnerReference* controller_owner() const;
  // Adds the containers of `other` this pod lacks (same type and name), keeping containers,
  // init and ephemeral in that order, and the unreadable fields it lacks: one view of several
  // Pods of a workload.
  void AddContainersOnlyIn(const PodView& other);
  bool is_windows() const { return os == "windows"; }
  // Why this Pod of a list cannot be filed under its namespace and name (the unreadable field
  // that holds them), or null when it can.
  const UnreadableField* unfiled_because() const;
};

inline constexpr std::string_view kJustificationPrefix = "capwatch.io/justification.";

}  // namespace capwatch
