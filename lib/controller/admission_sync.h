#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "controller/cluster_views.h"
#include "kube/clock.h"
#include "kube/kube_client.h"

namespace capwatch::controller {

inline kube::ResourceRef ValidatingAdmissionPolicies() {
  return {"admissionregistration.k8s.io", "v1", "validatingadmissionpolicies", ""};
}
inline kube::ResourceRef ValidatingAdmissionPolicyBindings() {
  return {"admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings", ""};
}

struct AdmissionSyncOptions {
  // false (--enforcement=false): nothing is generated, and a policy asking for enforcement
  // says so in its status. The objects capwatch generated before are left alone.
  bool enabled = true;
  // Everything is compared with the API server this often, so an object deleted or edited by
  // hand comes back; and again after this long when a write failed.
  std::chrono::seconds resync{60};
  std::chrono::seconds retry{5};
  // After a write, the API server's type checking is looked for again this soon.
  std::chrono::seconds recheck{2};
};

// Keeps, for every CapabilityPolicy with spec.enforcement, the ValidatingAdmissionPolicy and
// Binding that GenerateAdmission makes of it (lib/enforce), owned by the policy so that the
// garbage collector removes them with it. Only the leader calls Tick. Each object carries the
// hash of what it was generated as (capwatch.io/content-hash): unchanged objects are never
// written, so a restart writes nothing. The objects are regenerated when a policy's generation
// changes, when an exemption expires (CEL has no clock), and on the resync. A policy that turns
// invalid keeps the objects of its last valid generation: a typo does not open the gate.
class AdmissionSync {
 public:
  AdmissionSync(kube::KubeClient& client, kube::Clock& clock, const PolicyInformer& policies,
                AdmissionSyncOptions options);

  // Brings the objects in step when something is due; returns the writes it made. `may_write`
  // is the leader fence, asked before each write.
  int Tick(const std::stop_token& stop, const std::function<bool()>& may_write);
  // True once a sync has been tried (the statuses wait for it, so that a restart does not
  // rewrite them with "not yet known").
  bool synced_once() const;

  // What the policy's status says of its enforcement: {"enforcement": {...}, "condition":
  // {...Enforced...}}; null when the policy does not ask for enforcement and nothing of it is
  // in force.
  nlohmann::json StatusOf(const PolicyView& view) const;

 private:
  struct State {
    std::int64_t generation = 0;  // of the policy the objects in force were generated from
    std::string action;
    std::string hash;  // of the generated ValidatingAdmissionPolicy in force
    // metadata.generation of each object as capwatch last wrote or checked it: another value
    // means someone edited it (0: not known yet).
    std::int64_t policy_generation = 0;
    std::int64_t binding_generation = 0;
    std::string error;  // the last failure to write or read them; empty when in step
    bool type_checked = false;
    std::vector<std::string> warnings;  // the API server's type checking of the expressions
    std::optional<std::chrono::system_clock::time_point> next_change;
  };

  bool Due(kube::Clock::TimePoint now, std::chrono::system_clock::time_point wall,
           const std::string& fingerprint) const;
  void Sync(const std::stop_token& stop, const std::function<bool()>& may_write, int& writes);
  // The objects of ours in the API server, by name; false with `error` set when the list fails
  // (and `absent` when the API server does not serve the resource at all).
  bool ListOurs(const kube::ResourceRef& resource, std::map<std::string, nlohmann::json>& out,
                std::string& error, bool& absent, const std::stop_token& stop);
  // Creates or replaces `desired` unless `existing` already carries its hash and nobody edited
  // it since `known_generation`, which it updates. Returns the error, empty on success.
  std::string Ensure(const kube::ResourceRef& resource, const nlohmann::json& desired,
                     const nlohmann::json* existing, const std::stop_token& stop,
                     const std::function<bool()>& may_write, int& writes, bool& wrote,
                     std::int64_t& known_generation);

  kube::KubeClient& client_;
  kube::Clock& clock_;
  const PolicyInformer& policies_;
  AdmissionSyncOptions options_;

  mutable std::mutex mu_;                // guards the members below
  std::map<std::string, State> states_;  // policy name → what is in force for it
  bool synced_once_ = false;
  std::string fingerprint_;  // the policies (name, uid, generation) the last sync saw
  kube::Clock::TimePoint next_sync_{};
  std::optional<std::chrono::system_clock::time_point> next_change_;
};

}  // namespace capwatch::controller
