#include "controller/policy_report_writer.h"

#include <spdlog/spdlog.h>

#include "controller/api_outcomes.h"
#include "kube/json_codec.h"
#include "report/report_builder.h"

namespace capwatch::controller {
namespace {

using nlohmann::json;

std::string AnnotationOf(const json& object, std::string_view key) {
  auto m = object.find("metadata");
  if (m == object.end() || !m->is_object()) return "";
  auto a = m->find("annotations");
  if (a == m->end() || !a->is_object()) return "";
  auto v = a->find(std::string(key));
  return v != a->end() && v->is_string() ? v->get<std::string>() : "";
}

kube::ResourceRef ResourceOf(PolicyReportFormat format, std::string ns = {}) {
  const std::string_view api = PolicyReportApiVersion(format);
  const auto slash = api.find('/');
  return {std::string(api.substr(0, slash)), std::string(api.substr(slash + 1)),
          std::string(PolicyReportResource(format)), std::move(ns)};
}

}  // namespace

std::optional<PolicyReportMode> ParsePolicyReportMode(std::string_view text) {
  if (text == "off") return PolicyReportMode::kOff;
  if (text == "auto") return PolicyReportMode::kAuto;
  if (text == "openreports") return PolicyReportMode::kOpenReports;
  if (text == "wgpolicyk8s") return PolicyReportMode::kWgPolicy;
  return std::nullopt;
}

PolicyReportWriter::PolicyReportWriter(kube::KubeClient& client, kube::Clock& clock,
                                       PolicyReportMode mode)
    : client_(client), clock_(clock), mode_(mode) {
  if (mode == PolicyReportMode::kOpenReports) format_ = PolicyReportFormat::kOpenReports;
  if (mode == PolicyReportMode::kWgPolicy) format_ = PolicyReportFormat::kWgPolicy;
}

std::size_t PolicyReportWriter::tracked() const {
  std::lock_guard lock(mu_);
  return written_.size();
}

void PolicyReportWriter::Forget(const WorkloadKey& key) {
  std::lock_guard lock(mu_);
  written_.erase(key);
}

std::string PolicyReportWriter::Load(const std::stop_token& stop) {
  std::vector<PolicyReportFormat> candidates;
  {
    std::lock_guard lock(mu_);
    if (loaded_) return "";
    // Failed a moment ago: every workload's retry must not cost the API server a list (nor
    // spend the client's QPS that the CapabilityReports need).
    if (!load_error_.empty() && clock_.Now() < retry_load_at_) return load_error_;
    if (format_) {
      candidates = {*format_};
    } else {
      candidates = {PolicyReportFormat::kOpenReports, PolicyReportFormat::kWgPolicy};
    }
  }
  std::string missing;
  for (const PolicyReportFormat format : candidates) {
    std::map<WorkloadKey, std::string> found;
    kube::ListOptions options;
    options.label_selector = "app.kubernetes.io/managed-by=capwatch";
    options.limit = 500;
    bool served = true;
    std::string error;
    do {
      auto page = client_.List(ResourceOf(format), options, stop);
      if (!page.ok()) {
        if (page.error().IsNotFound()) {
          served = false;
        } else {
          error = "listing " + std::string(PolicyReportResource(format)) + ": " +
                  page.error().ToString();
        }
        break;
      }
      const json list = json::parse(page.value(), nullptr, /*allow_exceptions=*/false);
      if (!list.is_object() || !list.contains("items") || !list["items"].is_array()) {
        error = "listing " + std::string(PolicyReportResource(format)) + ": not a list";
        break;
      }
      for (const auto& item : list["items"]) {
        // The projection names its CapabilityReport as owner: that is the workload's key.
        const json& refs = kube::JsonAt(item, {"metadata", "ownerReferences"});
        const std::string ns = kube::JsonStringAt(item, {"metadata", "namespace"});
        if (!refs.is_array()) continue;
        for (const auto& ref : refs) {
          if (kube::JsonStringAt(ref, {"kind"}) == "CapabilityReport") {
            found[{ns, kube::JsonStringAt(ref, {"name"})}] =
                AnnotationOf(item, kContentHashAnnotation);
          }
        }
      }
      options.continue_token = kube::JsonStringAt(list, {"metadata", "continue"});
    } while (!options.continue_token.empty() && !stop.stop_requested());
    if (!error.empty()) {
      std::lock_guard lock(mu_);
      load_error_ = error;
      retry_load_at_ = clock_.Now() + std::chrono::seconds(5);
      return error;
    }
    if (!served) {
      missing += (missing.empty() ? "" : " nor ") + std::string(PolicyReportApiVersion(format)) +
                 " " + std::string(PolicyReportKind(format));
      continue;
    }
    std::lock_guard lock(mu_);
    format_ = format;
    loaded_ = true;
    for (auto& [key, hash] : found) written_.try_emplace(key, std::move(hash));
    spdlog::info("policy reports: writing {} {} ({} found)", PolicyReportApiVersion(format),
                 PolicyReportKind(format), found.size());
    return "";
  }
  std::lock_guard lock(mu_);
  load_error_ = (candidates.size() == 1 ? "the API server does not serve " + missing +
                                              ": install its CRD (--policy-reports)"
                                        : "the API server serves neither " + missing +
                                              ": install the CRD of one (--policy-reports)") +
                "; looked for again in 60 s";
  retry_load_at_ = clock_.Now() + std::chrono::seconds(60);
  return load_error_;
}

std::string PolicyReportWriter::Sync(const WorkloadKey& key, const json& capability_report,
                                     const std::vector<std::string>& policies,
                                     const std::string& report_uid, const std::stop_token& stop) {
  if (!enabled()) return "";
  if (report_uid.empty()) return "policy report of " + key.ToString() + ": report uid unknown";
  if (std::string error = Load(stop); !error.empty()) return "policy reports: " + error;
  PolicyReportFormat format;
  {
    std::lock_guard lock(mu_);
    format = *format_;
  }
  json projection =
      ProjectPolicyReport(capability_report, policies, format, report_uid, clock_.WallNow());
  const std::string hash = AnnotationOf(projection, kContentHashAnnotation);
  bool exists = false;
  {
    std::lock_guard lock(mu_);
    if (auto it = written_.find(key); it != written_.end()) {
      if (it->second == hash) return "";
      exists = true;
    }
  }
  const std::string name = projection["metadata"]["name"];
  const kube::ResourceRef resource = ResourceOf(format, key.namespace_name);
  // Created when capwatch knows of none; otherwise (or when one turns out to exist) applied,
  // taking every field back (capwatch owns what it projects).
  auto r = exists ? kube::Result<std::string>(kube::ApiStatus::Ok())
                  : client_.Create(resource, projection.dump(), {}, stop);
  if (exists || (!r.ok() && r.error().IsAlreadyExists())) {
    kube::WriteOptions options;
    options.force = true;
    r = client_.Patch(resource, name, kube::PatchType::kApply, projection.dump(), options, stop);
  }
  if (!r.ok() && NamespaceTerminating(r.error())) return "";  // going away with its workload
  if (!r.ok()) {
    return "writing " + std::string(PolicyReportKind(format)) + " " + key.namespace_name + "/" +
           name + ": " + r.error().ToString();
  }
  spdlog::debug("wrote {} {}/{}", PolicyReportKind(format), key.namespace_name, name);
  std::lock_guard lock(mu_);
  written_[key] = hash;
  return "";
}

}  // namespace capwatch::controller
