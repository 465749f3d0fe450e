#include "report/policy_report.h"

#include <set>

#include "base/text_hash.h"
#include "report/report_builder.h"

namespace capwatch {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxName = 253;
constexpr std::string_view kSource = "capwatch";
constexpr std::string_view kCategory = "Linux capabilities";

std::string Str(const json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : "";
}

// capwatch's severities, in the shared formats' words (which have no "none").
std::string Severity(const std::string& s) {
  if (s == "critical" || s == "high" || s == "medium" || s == "low") return s;
  return "info";
}

json Result(const json& finding) {
  json r = {{"source", kSource},
            {"policy", Str(finding, "policy")},
            {"rule", Str(finding, "rule")},
            {"category", kCategory},
            {"severity", Severity(Str(finding, "severity"))},
            {"scored", true}};
  const bool exempt = Str(finding, "result") == "exempt";
  r["result"] = exempt ? "skip" : "fail";
  r["message"] = Str(finding, "message");
  json properties = json::object();
  for (const char* key : {"container", "capability", "remediation", "pssControl"}) {
    if (std::string v = Str(finding, key); !v.empty()) properties[key] = std::move(v);
  }
  if (auto e = finding.find("exemption"); e != finding.end() && e->is_object()) {
    properties["exemption"] = Str(*e, "name");
    properties["exemptionReason"] = Str(*e, "reason");
    if (std::string expires = Str(*e, "expires"); !expires.empty()) {
      properties["exemptionExpires"] = std::move(expires);
    }
  }
  r["properties"] = std::move(properties);
  return r;
}

}  // namespace

std::string_view PolicyReportApiVersion(PolicyReportFormat format) {
  return format == PolicyReportFormat::kOpenReports ? "openreports.io/v1alpha1"
                                                    : "wgpolicyk8s.io/v1alpha2";
}

std::string_view PolicyReportKind(PolicyReportFormat format) {
  return format == PolicyReportFormat::kOpenReports ? "Report" : "PolicyReport";
}

std::string_view PolicyReportResource(PolicyReportFormat format) {
  return format == PolicyReportFormat::kOpenReports ? "reports" : "policyreports";
}

std::string PolicyReportName(std::string_view report_name) {
  std::string name = "capwatch-" + std::string(report_name);
  if (name.size() <= kMaxName) return name;
  const std::string hash = HashText(report_name).substr(0, 12);
  name.resize(kMaxName - hash.size() - 1);
  while (!name.empty() && (name.back() == '.' || name.back() == '-')) name.pop_back();
  return name + "-" + hash;
}

json ProjectPolicyReport(const json& capability_report, const std::vector<std::string>& policies,
                         PolicyReportFormat format, std::string_view report_uid,
                         std::chrono::system_clock::time_point now) {
  static const json kNone = json::object();
  auto child = [&](const char* key) -> const json& {
    auto it = capability_report.find(key);
    return it != capability_report.end() && it->is_object() ? *it : kNone;
  };
  const json& meta = child("metadata");
  const std::string report_name = Str(meta, "name");
  const std::string ns = Str(meta, "namespace");
  const json& workload = child("workload");

  json scope = {{"apiVersion", Str(workload, "apiVersion")},
                {"kind", Str(workload, "kind")},
                {"name", Str(workload, "name")},
                {"namespace", ns}};
  if (std::string uid = Str(workload, "uid"); !uid.empty()) scope["uid"] = std::move(uid);

  json results = json::array();
  json summary = {{"pass", 0}, {"fail", 0}, {"warn", 0}, {"error", 0}, {"skip", 0}};
  std::set<std::string> failing;
  for (const auto& finding : capability_report.value("findings", json::array())) {
    if (!finding.is_object()) continue;
    json r = Result(finding);
    if (r["result"] == "fail") failing.insert(r["policy"].get<std::string>());
    summary[r["result"].get<std::string>()] =
        summary[r["result"].get<std::string>()].get<int>() + 1;
    results.push_back(std::move(r));
  }
  // A size-capped report left findings out; its summary still counts them all.
  const json& counts = capability_report.value("summary", json::object());
  if (counts.is_object() && counts.contains("truncated")) {
    if (auto v = counts.find("violations"); v != counts.end() && v->is_number_integer()) {
      summary["fail"] = *v;
    }
    if (auto v = counts.find("exempted"); v != counts.end() && v->is_number_integer()) {
      summary["skip"] = *v;
    }
  }
  for (const auto& policy : policies) {
    if (failing.count(policy)) continue;
    summary["pass"] = summary["pass"].get<int>() + 1;
    results.push_back({{"source", kSource},
                       {"policy", policy},
                       {"rule", "capabilities"},
                       {"category", kCategory},
                       {"severity", "info"},
                       {"scored", true},
                       {"result", "pass"},
                       {"message", "no container breaks policy " + policy}});
  }

  json out = {
      {"apiVersion", PolicyReportApiVersion(format)},
      {"kind", PolicyReportKind(format)},
      {"metadata",
       {{"name", PolicyReportName(report_name)},
        {"namespace", ns},
        {"labels",
         {{"app.kubernetes.io/managed-by", "capwatch"},
          {"capwatch.io/report", report_name.size() <= 63 ? report_name : ""}}},
        {"ownerReferences", json::array({{{"apiVersion", kReportApiVersion},
                                          {"kind", "CapabilityReport"},
                                          {"name", report_name},
                                          {"uid", report_uid}}})}}},
      {"scope", std::move(scope)},
      {"summary", std::move(summary)},
      {"results", std::move(results)},
  };
  // The older format has no top-level source: each result carries it.
  if (format == PolicyReportFormat::kOpenReports) out["source"] = kSource;
  out["metadata"]["annotations"] = {{std::string(kContentHashAnnotation), HashText(out.dump())}};
  const auto seconds = std::chrono::floor<std::chrono::seconds>(now);
  const json timestamp = {
      {"seconds", seconds.time_since_epoch().count()},
      {"nanos", std::chrono::duration_cast<std::chrono::nanoseconds>(now - seconds).count()}};
  for (auto& r : out["results"]) r["timestamp"] = timestamp;
  return out;
}

}  // namespace capwatch
