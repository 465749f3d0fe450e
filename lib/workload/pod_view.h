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

  const OwnerReference* controller_owner() const;
  // Adds the containers of `other` this pod lacks (same type and name), keeping containers,
  // init and ephemeral in that order: one view of several Pods of a workload.
  void AddContainersOnlyIn(const PodView& other);
  bool is_windows() const { return os == "windows"; }
};

inline constexpr std::string_view kJustificationPrefix = "capwatch.io/justification.";

}  // namespace capwatch
