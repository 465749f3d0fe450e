#include "controller/policy_status_writer.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <set>

namespace capwatch::controller {

using nlohmann::json;

PolicyStatusWriter::PolicyStatusWriter(kube::KubeClient& client, const PolicyInformer& policies,
                                       const AdmissionSync* admission)
    : client_(client), policies_(policies), admission_(admission) {}

void PolicyStatusWriter::SetTally(const WorkloadKey& key, std::map<std::string, int> tally) {
  std::lock_guard lock(mu_);
  tally_[key] = std::move(tally);
}

void PolicyStatusWriter::Forget(const WorkloadKey& key) {
  std::lock_guard lock(mu_);
  tally_.erase(key);
}

std::size_t PolicyStatusWriter::tracked_workloads() const {
  std::lock_guard lock(mu_);
  return tally_.size();
}

int PolicyStatusWriter::WriteChanged(const std::stop_token& stop,
                                     const std::function<bool()>& may_write) {
  std::map<std::string, std::pair<int, int>> totals;  // policy → workloads, violations
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, by_policy] : tally_) {
      for (const auto& [policy, violations] : by_policy) {
        totals[policy].first += 1;
        totals[policy].second += violations;
      }
    }
  }
  int written = 0;
  std::set<std::string> present;
  for (const auto& view : policies_.List()) {
    if (stop.stop_requested()) break;
    present.insert(view->name);
    json condition = {{"type", "Ready"}};
    if (view->policy) {
      condition["status"] = "True";
      condition["reason"] = "Valid";
      condition["message"] = "the policy is valid and in force";
    } else {
      std::string message;
      for (const auto& e : view->errors) {
        if (!message.empty()) message += "; ";
        message += e.ToString();
      }
      condition["status"] = "False";
      condition["reason"] = "InvalidPolicy";
      condition["message"] = message;
    }
    condition["observedGeneration"] = view->generation;
    const auto [workloads, violations] = totals[view->name];
    json status = {{"observedGeneration", view->generation},
                   {"conditions", json::array({condition})},
                   {"workloads", workloads},
                   {"violations", violations}};
    if (admission_ != nullptr) {
      const json enforced = admission_->StatusOf(*view);
      if (enforced.is_object()) {
        status["conditions"].push_back(enforced["condition"]);
        if (!enforced["enforcement"].empty()) status["enforcement"] = enforced["enforcement"];
      }
    }
    // Compared as the API server stores it (no nulls); a merge patch removes what is gone.
    const std::string text = status.dump();
    if (!status.contains("enforcement")) status["enforcement"] = nullptr;
    {
      std::lock_guard lock(mu_);
      if (written_[view->name] == text) continue;
    }
    if (view->status_fingerprint == text) {  // the API server holds it already (a restart)
      std::lock_guard lock(mu_);
      written_[view->name] = text;
      continue;
    }
    if (may_write && !may_write()) break;
    kube::WriteOptions options;
    options.subresource = "status";
    auto r = client_.Patch(CapabilityPolicies(), view->name, kube::PatchType::kMerge,
                           json({{"status", status}}).dump(), options, stop);
    if (!r.ok()) {
      spdlog::warn("writing status of policy {}: {}", view->name, r.error().ToString());
      continue;
    }
    ++written;
    if (!view->policy) {
      spdlog::warn("policy {} is invalid: {}", view->name, condition["message"].get<std::string>());
    }
    std::lock_guard lock(mu_);
    written_[view->name] = text;
  }
  // Deleted policies: forget what was written for them.
  std::lock_guard lock(mu_);
  if (!stop.stop_requested()) {
    std::erase_if(written_, [&](const auto& kv) { return present.count(kv.first) == 0; });
  }
  return written;
}

}  // namespace capwatch::controller
