#include "report/report_builder.h"

#include <algorithm>
#include <cstdio>
#include <numeric>

#include "base/text_hash.h"

namespace capwatch {
namespace {

using nlohmann::json;

json SortedNames(CapabilitySet set, bool all_keyword = false) {
  std::vector<std::string_view> names;
  if (all_keyword) names.emplace_back("ALL");
  for (int n = 0; n < kCapabilityCount; ++n) {
    if (Contains(set, n)) names.push_back(CapabilityByNumber(n).name);
  }
  std::sort(names.begin(), names.end());
  json out = json::array();
  for (auto n : names) out.push_back(n);
  return out;
}

// Normalised names of a list, plus the unknown entries as written.
json ListedNames(const std::vector<CapabilityName>& names, CapabilitySet known, bool all) {
  json out = SortedNames(known, all);
  for (const auto& n : names) {
    if (n.is_unknown()) out.push_back(std::string(n.written));
  }
  return out;
}

json ContainerJson(const ContainerFacts& c, const PodView& pod) {
  const ContainerView& v = *c.view;
  json j = {
      {"name", v.name},
      {"type", ContainerTypeName(v.type)},
      {"image", v.image},
      {"granted", SortedNames(c.granted)},
      {"added", ListedNames(c.add_names, c.added, c.adds_all)},
      {"dropped", ListedNames(c.drop_names, c.dropped, c.drops_all)},
      {"privileged", c.privileged},
      {"runAsNonRoot", c.run_as_non_root.value_or(false)},
      // Unset means true; a privileged container can always escalate.
      {"allowPrivilegeEscalation", c.privileged || c.allow_privilege_escalation.value_or(true)},
  };
  if (c.run_as_user) j["runAsUser"] = *c.run_as_user;
  json justifications = json::object();
  for (const auto& [cap, text] : pod.justifications) {
    const CapabilityName name = ParseCapabilityName(cap);
    if ((name.is_capability() && Contains(c.added, name.number)) || (name.is_all() && c.adds_all)) {
      justifications[cap] = text;
    }
  }
  if (!justifications.empty()) j["justifications"] = std::move(justifications);
  return j;
}

json FindingJson(const Finding& f) {
  json j = {{"policy", f.policy}, {"rule", RuleId(f.rule)}};
  if (!f.container.empty()) j["container"] = f.container;
  if (!f.capability.empty()) j["capability"] = f.capability;
  j["severity"] = SeverityName(f.severity);
  j["result"] = f.exempt ? "exempt" : "fail";
  j["message"] = f.message;
  j["remediation"] = f.remediation;
  if (f.pss_control != PssControl::kNone) j["pssControl"] = PssControlId(f.pss_control);
  if (f.exemption) {
    json e = {{"name", f.exemption->name}, {"reason", f.exemption->reason}};
    if (!f.exemption->expires.empty()) e["expires"] = f.exemption->expires;
    if (f.exemption->expired) e["expired"] = true;
    j["exemption"] = std::move(e);
  }
  return j;
}

json Summary(const ReportInput& in) {
  int counts[5] = {0, 0, 0, 0, 0};
  int violations = 0, exempted = 0;
  Severity highest = Severity::kNone;
  for (const auto& f : in.evaluation->findings) {
    if (f.exempt) {
      ++exempted;
      continue;
    }
    ++violations;
    ++counts[static_cast<int>(f.severity)];
    highest = std::max(highest, f.severity);
  }
  return {{"containers", in.pod->containers.size()},
          {"violations", violations},
          {"critical", counts[4]},
          {"high", counts[3]},
          {"medium", counts[2]},
          {"low", counts[1]},
          {"exempted", exempted},
          {"compliant", violations == 0},
          {"highestSeverity", SeverityName(highest)}};
}

constexpr const char* kContentFields[] = {"workload", "summary", "containers", "findings", "note"};

}  // namespace

std::string ContentHash(const json& report) {
  // The canonical dump (nlohmann sorts object keys) of what the report says. The Pod count is
  // left out: Pods coming and going in a rollout do not change what the workload is granted,
  // and the controller refreshes the count on its own, slower schedule.
  json content = json::object();
  for (const char* field : kContentFields) {
    if (auto it = report.find(field); it != report.end()) content[field] = *it;
  }
  if (content.contains("workload")) content["workload"].erase("pods");
  return HashText(content.dump());
}

json BuildReport(const ReportInput& in, const ReportOptions& options) {
  const WorkloadRef& w = in.workload;
  json report = {
      {"apiVersion", kReportApiVersion},
      {"kind", "CapabilityReport"},
      {"metadata",
       {{"name", ReportName(w)},
        {"namespace", in.namespace_name},
        {"labels",
         {{"app.kubernetes.io/managed-by", "capwatch"}, {"capwatch.io/workload-kind", w.kind}}}}},
  };
  if (!w.uid.empty()) {
    // Kubernetes garbage-collects the report with its workload.
    report["metadata"]["ownerReferences"] = json::array(
        {{{"apiVersion", w.api_version}, {"kind", w.kind}, {"name", w.name}, {"uid", w.uid}}});
  }
  json workload = {{"apiVersion", w.api_version}, {"kind", w.kind}, {"name", w.name}};
  if (!w.uid.empty()) workload["uid"] = w.uid;
  workload["pods"] = in.pods;
  report["workload"] = std::move(workload);
  json summary = Summary(in);
  report["metadata"]["labels"]["capwatch.io/compliant"] =
      summary["compliant"].get<bool>() ? "true" : "false";
  if (in.evaluation->skipped) report["note"] = in.evaluation->note;

  // The common case: everything fits. One dump gives both the size and the content hash.
  {
    json content = {{"workload", report["workload"]}, {"summary", summary}};
    content["workload"].erase("pods");  // as ContentHash does
    json& containers = content["containers"] = json::array();
    for (const auto& c : in.evaluation->containers) containers.push_back(ContainerJson(c, *in.pod));
    json& findings = content["findings"] = json::array();
    for (const auto& f : in.evaluation->findings) findings.push_back(FindingJson(f));
    if (report.contains("note")) content["note"] = report["note"];
    const std::string text = content.dump();
    const std::size_t skeleton = report.dump().size() + 128;  // metadata, and the hash itself
    if (text.size() + skeleton <= options.max_bytes) {
      report["metadata"]["annotations"] = {{kContentHashAnnotation, HashText(text)}};
      report["summary"] = std::move(content["summary"]);
      report["containers"] = std::move(containers);
      report["findings"] = std::move(findings);
      return report;
    }
  }

  // Too large: the lists are filled in order (findings by severity, worst first) until the
  // budget is spent.
  const std::size_t skeleton = report.dump().size() + summary.dump().size() + 256;
  const std::size_t budget = options.max_bytes > skeleton ? options.max_bytes - skeleton : 0;
  std::size_t used = 0;

  json containers = json::array();
  std::size_t omitted_containers = 0;
  const std::size_t container_budget = budget / 3;
  for (const auto& c : in.evaluation->containers) {
    json cj = ContainerJson(c, *in.pod);
    const std::size_t size = cj.dump().size() + 1;
    if (used + size > container_budget) {
      ++omitted_containers;
      continue;
    }
    used += size;
    containers.push_back(std::move(cj));
  }

  const auto& findings = in.evaluation->findings;
  std::vector<std::size_t> order(findings.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) {
    return findings[x].severity > findings[y].severity;
  });
  std::vector<bool> keep(findings.size(), false);
  std::vector<json> rendered(findings.size());
  std::size_t omitted_findings = 0;
  for (std::size_t i : order) {
    rendered[i] = FindingJson(findings[i]);
    const std::size_t size = rendered[i].dump().size() + 1;
    if (used + size > budget) {
      ++omitted_findings;
      continue;
    }
    used += size;
    keep[i] = true;
  }
  json findings_json = json::array();
  for (std::size_t i = 0; i < findings.size(); ++i) {
    if (keep[i]) findings_json.push_back(std::move(rendered[i]));
  }
  if (omitted_containers > 0 || omitted_findings > 0) {
    summary["truncated"] = {
        {"containersOmitted", omitted_containers},
        {"findingsOmitted", omitted_findings},
        {"reason", "the report would exceed " + std::to_string(options.max_bytes / 1024) +
                       " KiB; the lowest-severity findings were left out, and the counts "
                       "above cover everything"}};
  }
  report["summary"] = std::move(summary);
  report["containers"] = std::move(containers);
  report["findings"] = std::move(findings_json);
  report["metadata"]["annotations"] = {{kContentHashAnnotation, ContentHash(report)}};
  return report;
}

}  // namespace capwatch
