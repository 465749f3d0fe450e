#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <stop_token>
#include <string>

#include "controller/admission_sync.h"
#include "controller/cluster_views.h"
#include "controller/workload_key.h"
#include "kube/kube_client.h"

namespace capwatch::controller {

// Keeps each CapabilityPolicy's status (Ready with every validation error, observedGeneration,
// how many workloads it matches and how many violations they have). Workers hand it each
// workload's tally; the controller calls WriteChanged on a timer, however busy the queue is, so
// a policy edit shows in its status within seconds under constant Pod churn.
class PolicyStatusWriter {
 public:
  // `admission`, when given, adds each policy's enforcement (status.enforcement and the
  // Enforced condition).
  PolicyStatusWriter(kube::KubeClient& client, const PolicyInformer& policies,
                     const AdmissionSync* admission = nullptr);

  // The workload's failing findings per matching policy (0 for a policy it passes).
  void SetTally(const WorkloadKey& key, std::map<std::string, int> violations_by_policy);
  void Forget(const WorkloadKey& key);
  // Patches the status of every policy whose status changed; returns how many it wrote.
  // `may_write` is the leader fence, asked before each write.
  int WriteChanged(const std::stop_token& stop, const std::function<bool()>& may_write);
  std::size_t tracked_workloads() const;

 private:
  kube::KubeClient& client_;
  const PolicyInformer& policies_;
  const AdmissionSync* admission_;
  mutable std::mutex mu_;
  std::map<WorkloadKey, std::map<std::string, int>> tally_;
  std::map<std::string, std::string> written_;  // policy → status JSON last written
};

}  // namespace capwatch::controller
