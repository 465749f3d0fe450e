#pragma once

#include <map>
#include <mutex>
#include <set>
#include <vector>

#include "controller/workload_key.h"
#include "report/dangerous_grants.h"

namespace capwatch::controller {

// Decides which dangerous grants are news, so each is counted and evented once per workload
// and capability (docs/alerts.md, "Exactly once"). The durable memory is the report's
// capwatch.io/dangerous-grants annotation; the ledger only holds, in memory, the grants of a
// write whose outcome is not yet known (a timeout after the API server may have committed it),
// so that the retry still announces them even though the stored report already shows them.
class GrantLedger {
 public:
  // Before a report write: the grants `desired` holds that `known` (the stored report's memory;
  // empty for a new workload) does not, plus those still pending from an unconfirmed write and
  // still held. They stay pending until Confirm.
  std::vector<DangerousGrant> Plan(const WorkloadKey& key, const std::set<DangerousGrant>& desired,
                                   const std::set<DangerousGrant>& known);
  // The report that records them is on the API server (the write succeeded, or the stored
  // report already says what we meant to write): returns the grants to announce, once.
  std::vector<DangerousGrant> Confirm(const WorkloadKey& key);
  void Forget(const WorkloadKey& key);
  std::size_t pending() const;

 private:
  mutable std::mutex mu_;
  std::map<WorkloadKey, std::set<DangerousGrant>> pending_;
};

}  // namespace capwatch::controller
