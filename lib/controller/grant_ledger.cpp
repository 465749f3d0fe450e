#include "controller/grant_ledger.h"

namespace capwatch::controller {

std::vector<DangerousGrant> GrantLedger::Plan(const WorkloadKey& key,
                                              const std::set<DangerousGrant>& desired,
                                              const std::set<DangerousGrant>& known) {
  std::lock_guard lock(mu_);
  std::set<DangerousGrant> next;
  if (auto it = pending_.find(key); it != pending_.end()) {
    for (const auto& g : it->second) {
      if (desired.count(g) != 0) next.insert(g);  // still held: still news
    }
  }
  for (const auto& g : desired) {
    if (known.count(g) == 0) next.insert(g);
  }
  std::vector<DangerousGrant> out(next.begin(), next.end());
  if (next.empty()) {
    pending_.erase(key);
  } else {
    pending_[key] = std::move(next);
  }
  return out;
}

std::vector<DangerousGrant> GrantLedger::Confirm(const WorkloadKey& key) {
  std::lock_guard lock(mu_);
  auto it = pending_.find(key);
  if (it == pending_.end()) return {};
  std::vector<DangerousGrant> out(it->second.begin(), it->second.end());
  pending_.erase(it);
  return out;
}

void GrantLedger::Forget(const WorkloadKey& key) {
  std::lock_guard lock(mu_);
  pending_.erase(key);
}

std::size_t GrantLedger::pending() const {
  std::lock_guard lock(mu_);
  return pending_.size();
}

}  // namespace capwatch::controller
